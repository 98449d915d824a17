//! CAP 1.2 (OASIS Common Alerting Protocol) in and out, with the national early-warning
//! profile GB/T 35965.1 (its `sendTime`, colour severities, radius in metres, plain
//! comma-separated administrative geocodes, `senderCode`, `secClassification`).
//!
//! CAP comes from other systems, so it is read as hostile: a bounded body, no DTD (so no
//! external or custom entities, no entity expansion), bounded depth and element count,
//! and every refusal names the line and the element. quick-xml does the XML; this
//! module maps elements to the incident model (see the README's table).

use gridcast_protocol::api::CreateIncident;
use gridcast_protocol::area::{Area, Circle, Datum};
use gridcast_protocol::frame::Targets;
use gridcast_protocol::model::{Category, Level};
use gridcast_protocol::{Role, Target};
mod export;
mod xml;
pub use crate::store::{CapOrigin, Dialect};
pub(crate) use export::{Profile, export};
pub(crate) use xml::CapError;
use xml::{El, read_tree};

/// The CAP 1.2 namespace.
pub(crate) const CAP_NS: &str = "urn:oasis:names:tc:emergency:cap:1.2";
/// The `valueName` of a geocode that holds a grid or area code of this hub.
pub(crate) const GEOCODE_GRID: &str = "gridcast";
/// `valueName`s of geocodes that hold GB/T 2260 administrative codes (6 digits, a
/// province or city ending in `00`; or 9/12-digit town and community codes).
const GEOCODE_ADMIN: [&str; 4] = ["GB2260", "GB/T 2260", "ADCODE", "行政区划代码"];

/// What an alert asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CapAction {
    /// A new incident.
    Issue,
    /// An update of the incident the references name.
    Update,
    /// Close it.
    Cancel,
}

/// An alert mapped to the incident model.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CapAlert {
    pub(crate) origin: CapOrigin,
    pub(crate) action: CapAction,
    /// What the alert references (an Update or Cancel): `(sender, identifier)` of CAP's
    /// triples, `(None, identifier)` of the profile's bare first identifier.
    pub(crate) references: Vec<(Option<String>, String)>,
    /// `status` Exercise.
    pub(crate) drill: bool,
    /// The activation its `<info>` describes (absent only for a Cancel without one).
    pub(crate) request: Option<CreateIncident>,
    /// `note` of the alert (a Cancel's reason).
    pub(crate) note: Option<String>,
}

fn parse_lat_lon(el: &El, pair: &str) -> Result<[f64; 2], CapError> {
    let bad = || {
        el.err(format!(
            "{pair:?} is not \"lat,lon\" in degrees (CAP writes latitude first)"
        ))
    };
    let (lat, lon) = pair.split_once(',').ok_or_else(bad)?;
    let lat: f64 = lat.trim().parse().map_err(|_| bad())?;
    let lon: f64 = lon.trim().parse().map_err(|_| bad())?;
    Ok([lat, lon])
}

/// CAP category → the four categories (the README's table).
pub(crate) fn category_of(cap: &str) -> Option<Category> {
    Some(match cap {
        "Geo" | "Met" => Category::Natural,
        "Health" => Category::PublicHealth,
        "Safety" | "Security" | "Other" => Category::SocialSafety,
        "Rescue" | "Fire" | "Transport" | "Infra" | "CBRNE" | "Env" => Category::Accident,
        _ => return None,
    })
}

/// Severity (CAP words or the profile's colours) → level.
fn level_of(severity: &str) -> Option<Level> {
    Some(match severity {
        "Extreme" | "Red" | "红色" => Level::I,
        "Severe" | "Orange" | "橙色" => Level::II,
        "Moderate" | "Yellow" | "黄色" => Level::III,
        // Unknown: the lowest level (a person still reads it), as documented.
        "Minor" | "Blue" | "蓝色" | "Unknown" => Level::IV,
        _ => return None,
    })
}

/// Parses and maps one alert. `Err` names the line and the element.
pub(crate) fn parse(xml: &str) -> Result<CapAlert, CapError> {
    let alert = read_tree(xml)?;
    if alert.name != "alert" {
        return Err(alert.err("the root element must be <alert>"));
    }
    let gbt = alert.first("sendTime").is_some()
        || alert.first("senderCode").is_some()
        || alert.first("secClassification").is_some();
    let dialect = if gbt {
        Dialect::Gbt35965
    } else {
        Dialect::Cap12
    };
    if dialect == Dialect::Cap12 && !alert.namespaces.iter().any(|n| n == CAP_NS) {
        let found = alert
            .namespaces
            .first()
            .cloned()
            .unwrap_or_else(|| "none".into());
        return Err(alert.err(format!(
            "namespace must be {CAP_NS} (found {found}); CAP 1.0 and 1.1 are not accepted"
        )));
    }
    let identifier = alert.required("identifier")?;
    let id_ok = |t: &str| {
        !t.trim()
            .contains(|c: char| c.is_whitespace() || c == ',' || c == '<' || c == '&')
    };
    if !id_ok(&identifier.text) {
        return Err(identifier.err("must not contain spaces, commas, < or &"));
    }
    let sender = alert.required("sender")?;
    if !id_ok(&sender.text) {
        return Err(sender.err("must not contain spaces, commas, < or &"));
    }
    let sent = match dialect {
        Dialect::Cap12 => alert.required("sent")?,
        Dialect::Gbt35965 => alert.required("sendTime")?,
    };
    let sent_text = sent.text.trim();
    let iso = sent_text.replacen(' ', "T", 1);
    if !valid_time(&iso) {
        return Err(sent.err(format!(
            "{sent_text:?} is not a time with its zone (2026-12-01T08:30:00+08:00{})",
            if gbt {
                " or 2026-12-01 08:30:00+08:00"
            } else {
                ""
            }
        )));
    }
    let status = alert.required("status")?;
    let drill = match status.text.trim() {
        "Actual" => false,
        "Exercise" => true,
        s @ ("Test" | "System" | "Draft") => {
            return Err(status.err(format!(
                "status {s} is not dispatched (Test and System are technical, Draft unfinished); send Exercise for a drill"
            )));
        }
        s => {
            return Err(status.err(format!(
                "{s:?} is not Actual, Exercise, System, Test or Draft"
            )));
        }
    };
    let msg_type = alert.required("msgType")?;
    let action = match msg_type.text.trim() {
        "Alert" => CapAction::Issue,
        "Update" => CapAction::Update,
        "Cancel" => CapAction::Cancel,
        s @ ("Ack" | "Error") => {
            return Err(msg_type.err(format!("msgType {s} carries no activation")));
        }
        s => return Err(msg_type.err(format!("{s:?} is not Alert, Update, Cancel, Ack or Error"))),
    };
    match alert.text_of("scope") {
        Some("Public" | "Restricted" | "Private") => {}
        Some(s) => {
            return Err(alert
                .first("scope")
                .expect("just read")
                .err(format!("{s:?} is not Public, Restricted or Private")));
        }
        None if gbt => {}
        None => return Err(alert.err("needs a <scope> element")),
    }
    // References: CAP writes "sender,identifier,sent" triples, the profile just the
    // first message's identifier.
    let references: Vec<(Option<String>, String)> = alert
        .text_of("references")
        .unwrap_or_default()
        .split_whitespace()
        .map(|r| match r.split(',').collect::<Vec<&str>>()[..] {
            [sender, identifier, _sent] => (Some(sender.to_owned()), identifier.to_owned()),
            _ => (None, r.to_owned()),
        })
        .collect();
    if action != CapAction::Issue && references.is_empty() {
        return Err(msg_type.err(format!(
            "an {} needs <references> naming the alert it changes",
            msg_type.text.trim()
        )));
    }
    // Several <info> blocks: the zh-CN one first (then any Chinese), else the first.
    let infos: Vec<&El> = alert.all("info").collect();
    let info = infos
        .iter()
        .find(|i| {
            i.text_of("language")
                .is_some_and(|l| l.eq_ignore_ascii_case("zh-CN"))
        })
        .or_else(|| {
            infos
                .iter()
                .find(|i| i.text_of("language").is_some_and(|l| l.starts_with("zh")))
        })
        .or_else(|| infos.first())
        .copied();
    let alert_of = |info: Option<&El>, request| CapAlert {
        origin: CapOrigin {
            identifier: identifier.text.trim().to_owned(),
            sender: sender.text.trim().to_owned(),
            sent: sent_text.to_owned(),
            dialect,
            onset: info.and_then(|i| i.text_of("onset")).map(str::to_owned),
            expires: info.and_then(|i| i.text_of("expires")).map(str::to_owned),
            sender_code: alert.text_of("senderCode").map(str::to_owned),
        },
        action: action.clone(),
        references: references.clone(),
        drill,
        request,
        note: alert
            .text_of("note")
            .map(|n| shortened(n, crate::incident::MAX_NOTE)),
    };
    let Some(info) = info else {
        if action == CapAction::Cancel {
            return Ok(alert_of(None, None));
        }
        return Err(alert.err("needs an <info> block (what happens and where)"));
    };
    let params: Vec<(&str, &str)> = info
        .all("parameter")
        .filter_map(|p| Some((p.text_of("valueName")?, p.text_of("value")?)))
        .collect();
    let param = |name: &str| params.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    let event = info.required("event")?;
    for name in ["urgency", "certainty"] {
        info.required(name)?;
    }
    let severity = info.required("severity")?;
    let level = match param("gridcast:level").and_then(gridcast_protocol::from_wire_name::<Level>) {
        Some(l) => l,
        None => level_of(severity.text.trim()).ok_or_else(|| {
            severity.err(format!(
                "{:?} is not Extreme, Severe, Moderate, Minor, Unknown (or Red, Orange, Yellow, Blue)",
                severity.text.trim()
            ))
        })?,
    };
    let category =
        match param("gridcast:category").and_then(gridcast_protocol::from_wire_name::<Category>) {
            Some(c) => c,
            None => {
                let first = info.required("category")?;
                category_of(first.text.trim()).ok_or_else(|| {
                    first.err(format!("{:?} is not a CAP category", first.text.trim()))
                })?
            }
        };
    let roles = match param("gridcast:roles") {
        None => Vec::new(),
        Some(v) => v
            .split(',')
            .map(|r| {
                gridcast_protocol::from_wire_name::<Role>(r.trim()).ok_or_else(|| {
                    info.err(format!("parameter gridcast:roles: {r:?} is not a role"))
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let title: String = info
        .text_of("headline")
        .filter(|h| !h.is_empty())
        .unwrap_or(event.text.trim())
        .chars()
        .take(crate::incident::MAX_TITLE)
        .collect();
    let body = [info.text_of("description"), info.text_of("instruction")]
        .into_iter()
        .flatten()
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n");
    let body = shortened(&body, crate::incident::MAX_BODY);
    for name in ["onset", "expires", "effective"] {
        if let Some(e) = info.first(name)
            && !valid_time(&e.text.trim().replacen(' ', "T", 1))
        {
            return Err(e.err(format!("{:?} is not a time with its zone", e.text.trim())));
        }
    }

    let mut codes = Vec::new();
    let mut areas = Vec::new();
    let mut ignored = Vec::new();
    for area in info.all("area") {
        area.required("areaDesc")?;
        for p in area.all("polygon") {
            let points = p
                .text
                .split_whitespace()
                .map(|pair| parse_lat_lon(p, pair))
                .collect::<Result<Vec<_>, _>>()?;
            if dialect == Dialect::Cap12 && (points.len() < 4 || points.first() != points.last()) {
                return Err(p.err("a CAP polygon needs at least 4 points, the first repeated last"));
            }
            let a = Area {
                polygon: Some(points),
                circle: None,
                datum: Datum::Wgs84,
            };
            a.check("polygon").map_err(|e| p.err(e))?;
            areas.push(a);
        }
        for c in area.all("circle") {
            let text = c.text.trim();
            let (centre, radius) = text
                .split_once(char::is_whitespace)
                .ok_or_else(|| c.err(format!("{text:?} is not \"lat,lon radius\"")))?;
            let [lat, lon] = parse_lat_lon(c, centre)?;
            let radius: f64 = radius
                .trim()
                .parse()
                .map_err(|_| c.err(format!("{radius:?} is not a radius")))?;
            // CAP: kilometres; the national profile: metres.
            let radius_m = match dialect {
                Dialect::Cap12 => radius * 1000.0,
                Dialect::Gbt35965 => radius,
            };
            let a = Area {
                polygon: None,
                circle: Some(Circle { lat, lon, radius_m }),
                datum: Datum::Wgs84,
            };
            a.check("circle").map_err(|e| c.err(e))?;
            areas.push(a);
        }
        for g in area.all("geocode") {
            let (name, values): (Option<&str>, Vec<&str>) =
                match (g.text_of("valueName"), g.text_of("value")) {
                    (Some(n), Some(v)) => (Some(n), vec![v]),
                    // The profile: a plain list of administrative codes.
                    _ if dialect == Dialect::Gbt35965 => (
                        None,
                        g.text
                            .split(|c: char| c == ',' || c == '，' || c.is_whitespace())
                            .collect(),
                    ),
                    _ => return Err(g.err("needs <valueName> and <value>")),
                };
            let admin = name.is_none_or(|n| GEOCODE_ADMIN.contains(&n));
            if name != Some(GEOCODE_GRID) && !admin {
                ignored.push(name.unwrap_or_default().to_owned());
                continue;
            }
            for v in values.into_iter().map(str::trim).filter(|v| !v.is_empty()) {
                let code = if admin { admin_prefix(v) } else { v };
                let t = Target::parse(code).map_err(|e| g.err(format!("geocode {v:?}: {e}")))?;
                if !codes.contains(&t) {
                    codes.push(t);
                }
            }
        }
    }
    gridcast_protocol::area::check_all(&areas).map_err(|e| info.err(e))?;
    if codes.is_empty() && areas.is_empty() {
        let hint = if ignored.is_empty() {
            String::new()
        } else {
            format!(
                " (geocodes {} are not codes of this hub)",
                ignored.join(", ")
            )
        };
        return Err(info.err(format!(
            "no target: an <area> needs a <polygon>, <circle> or a <geocode> with valueName {GEOCODE_GRID} or GB2260{hint}"
        )));
    }
    let request = CreateIncident {
        title,
        body,
        level,
        category,
        drill,
        targets: Targets {
            codes,
            roles,
            area: areas,
        },
        ack_within_s: None,
        approval_override: None,
        fallback: false,
    };
    Ok(alert_of(Some(info), Some(request)))
}

/// `text` within `max` characters: cut, and said to be cut (a long alert is still
/// delivered, not refused).
fn shortened(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    const CUT: &str = "…（后略 truncated）";
    let keep = max - CUT.chars().count();
    text.chars().take(keep).chain(CUT.chars()).collect()
}

/// A GB/T 2260 code as a target prefix: `330000` is the province `33`, `330100` the city
/// `3301`, `330106` the county; longer codes are used as they are.
fn admin_prefix(code: &str) -> &str {
    if code.len() == 6 {
        if code.ends_with("0000") {
            return &code[..2];
        }
        if code.ends_with("00") {
            return &code[..4];
        }
    }
    code
}

/// `YYYY-MM-DDThh:mm:ss[.fff](±hh:mm|Z)` (CAP 1.2 writes the offset; `Z` and a
/// fraction are read, and written back without them).
pub(crate) fn valid_time(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let head = b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19);
    if !head {
        return false;
    }
    let mut rest = &s[19..];
    if let Some(f) = rest.strip_prefix('.') {
        let n = f.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &f[n..];
    }
    let z = rest.as_bytes();
    rest == "Z"
        || (z.len() == 6
            && (z[0] == b'+' || z[0] == b'-')
            && z[1..3].iter().all(u8::is_ascii_digit)
            && z[3] == b':'
            && z[4..6].iter().all(u8::is_ascii_digit))
}
