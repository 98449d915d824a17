//! An incident as a CAP 1.2 alert (or, on request, in the GB/T 35965.1 profile).
//!
//! Each `rev` is its own alert: `identifier` `<sender>.<incident>.r<rev>`, rev 1 an
//! `Alert`, later ones an `Update`, a closed incident a `Cancel`; each references every
//! earlier rev (and, for an incident that came as CAP, the alert it came from). The
//! native level, colour, category and roles travel in `<parameter>`s, so that a hub
//! reading its own export gets the same incident back.

use gridcast_protocol::api::TimelineEvent;
use gridcast_protocol::model::{Category, IncidentState, Level};
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};

use super::{CAP_NS, GEOCODE_GRID};
use crate::store::IncidentMeta;

/// Which dialect to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Profile {
    /// OASIS CAP 1.2 (valid against its schema).
    Cap12,
    /// GB/T 35965.1.
    Gbt35965,
}

/// `2026-12-01T16:30:00+08:00` (CAP wants an offset and no fraction; Beijing time).
fn cap_time(ms: u64, profile: Profile) -> String {
    let utc = gridcast_protocol::time::rfc3339(ms + 8 * 3600 * 1000);
    // rfc3339 gives 2026-12-01T08:30:00.000Z; shifted by 8 h it reads as Beijing time.
    let local = &utc[..19];
    match profile {
        Profile::Cap12 => format!("{local}+08:00"),
        Profile::Gbt35965 => format!("{}+08:00", local.replacen('T', " ", 1)),
    }
}

/// A time kept as it came, in the form `profile` writes (`T` or a space, an offset
/// rather than `Z`).
fn written(t: &str, profile: Profile) -> String {
    let t = match t.strip_suffix('Z') {
        Some(utc) => format!("{utc}+00:00"),
        None => t.to_owned(),
    };
    // Without a fraction of a second (CAP 1.2's pattern has none).
    let t = match (t.find('.'), t.len().checked_sub(6)) {
        (Some(dot), Some(zone)) if dot < zone => format!("{}{}", &t[..dot], &t[zone..]),
        _ => t,
    };
    match profile {
        Profile::Cap12 => t.replacen(' ', "T", 1),
        Profile::Gbt35965 => t.replacen('T', " ", 1),
    }
}

fn severity(level: Level, profile: Profile) -> &'static str {
    match (profile, level) {
        (Profile::Cap12, Level::I) => "Extreme",
        (Profile::Cap12, Level::II) => "Severe",
        (Profile::Cap12, Level::III) => "Moderate",
        (Profile::Cap12, Level::IV) => "Minor",
        (Profile::Gbt35965, Level::I) => "Red",
        (Profile::Gbt35965, Level::II) => "Orange",
        (Profile::Gbt35965, Level::III) => "Yellow",
        (Profile::Gbt35965, Level::IV) => "Blue",
    }
}

fn colour(level: Level) -> &'static str {
    match level {
        Level::I => "red",
        Level::II => "orange",
        Level::III => "yellow",
        Level::IV => "blue",
    }
}

fn cap_category(c: Category) -> &'static str {
    match c {
        Category::Natural => "Met",
        Category::Accident => "Rescue",
        Category::PublicHealth => "Health",
        Category::SocialSafety => "Security",
    }
}

fn event_name(c: Category) -> &'static str {
    match c {
        Category::Natural => "自然灾害 natural disaster",
        Category::Accident => "事故灾难 accident",
        Category::PublicHealth => "公共卫生事件 public health",
        Category::SocialSafety => "社会安全事件 social safety",
    }
}

struct Xml(Writer<Vec<u8>>);

impl Xml {
    fn open(&mut self, name: &str) {
        let _ = self.0.write_event(Event::Start(BytesStart::new(name)));
    }
    fn close(&mut self, name: &str) {
        let _ = self.0.write_event(Event::End(BytesEnd::new(name)));
    }
    fn leaf(&mut self, name: &str, text: &str) {
        self.open(name);
        // XML 1.0 has no place for control characters, escaped or not.
        let clean: String = text
            .chars()
            .filter(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r'))
            .collect();
        let _ = self.0.write_event(Event::Text(BytesText::new(&clean)));
        self.close(name);
    }
    fn parameter(&mut self, name: &str, value: &str) {
        self.open("parameter");
        self.leaf("valueName", name);
        self.leaf("value", value);
        self.close("parameter");
    }
}

/// The times of each rev: rev 1 when issued, then each `updated`/`closed` event.
fn rev_times(meta: &IncidentMeta, timeline: &[TimelineEvent]) -> Vec<u64> {
    let mut out = vec![meta.issued_at];
    out.extend(
        timeline
            .iter()
            .filter(|e| e.kind == "updated" || e.kind == "closed")
            .filter_map(|e| gridcast_protocol::time::parse_rfc3339(&e.at)),
    );
    out
}

/// The incident at its current rev as one alert.
pub(crate) fn export(
    meta: &IncidentMeta,
    timeline: &[TimelineEvent],
    sender: &str,
    profile: Profile,
) -> String {
    let times = rev_times(meta, timeline);
    let at = |rev: u64| {
        times
            .get(rev as usize - 1)
            .copied()
            .unwrap_or(meta.issued_at)
    };
    let id_of = |rev: u64| format!("{sender}.{}.r{rev}", meta.id);
    let mut x = Xml(Writer::new_with_indent(Vec::new(), b' ', 2));
    let _ =
        x.0.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)));
    let mut root = BytesStart::new("alert");
    if profile == Profile::Cap12 {
        root.push_attribute(("xmlns", CAP_NS));
    }
    let _ = x.0.write_event(Event::Start(root));
    x.leaf("identifier", &id_of(meta.rev));
    x.leaf("sender", sender);
    if profile == Profile::Gbt35965 {
        let code = meta
            .cap
            .as_ref()
            .and_then(|c| c.sender_code.clone())
            .unwrap_or_else(|| sender.to_owned());
        x.leaf("senderCode", &code);
        x.leaf("sendTime", &cap_time(at(meta.rev), profile));
    } else {
        x.leaf("sent", &cap_time(at(meta.rev), profile));
    }
    x.leaf("status", if meta.drill { "Exercise" } else { "Actual" });
    let closed = meta.state == IncidentState::Closed;
    let msg_type = if closed {
        "Cancel"
    } else if meta.rev > 1 {
        "Update"
    } else {
        "Alert"
    };
    x.leaf("msgType", msg_type);
    match profile {
        Profile::Cap12 => {
            x.leaf("scope", "Restricted");
            x.leaf(
                "restriction",
                "grid staff of the targeted grids (网格服务管理人员)",
            );
        }
        Profile::Gbt35965 => {
            x.leaf("scope", "Public");
            x.leaf("secClassification", "Inner");
        }
    }
    if closed
        && let Some(reason) = timeline
            .iter()
            .rev()
            .find(|e| e.kind == "closed")
            .and_then(|e| e.detail.as_deref())
    {
        x.leaf("note", reason);
    }
    // What this alert follows: every earlier rev and the alert it came from.
    let origin = meta.cap.as_ref();
    let references: Vec<String> = match profile {
        // The profile references only the first message.
        Profile::Gbt35965 if meta.rev > 1 || origin.is_some() => vec![match origin {
            Some(o) => o.identifier.clone(),
            None => id_of(1),
        }],
        Profile::Gbt35965 => Vec::new(),
        Profile::Cap12 => origin
            .map(|o| {
                format!(
                    "{},{},{}",
                    o.sender,
                    o.identifier,
                    written(&o.sent, profile)
                )
            })
            .into_iter()
            .chain(
                (1..meta.rev)
                    .map(|r| format!("{sender},{},{}", id_of(r), cap_time(at(r), profile))),
            )
            .collect(),
    };
    if !references.is_empty() {
        x.leaf("references", &references.join(" "));
    }
    x.leaf("incidents", &meta.id);

    x.open("info");
    x.leaf("language", "zh-CN");
    x.leaf("category", cap_category(meta.category));
    x.leaf("event", event_name(meta.category));
    x.leaf("responseType", if closed { "AllClear" } else { "Monitor" });
    x.leaf("urgency", if closed { "Past" } else { "Immediate" });
    x.leaf("severity", severity(meta.level, profile));
    x.leaf("certainty", "Observed");
    if let Some(o) = origin {
        if let Some(t) = &o.onset {
            x.leaf("onset", &written(t, profile));
        }
        if let Some(t) = &o.expires {
            x.leaf("expires", &written(t, profile));
        }
    }
    x.leaf("senderName", sender);
    x.leaf("headline", &meta.title);
    if !meta.body.is_empty() {
        x.leaf("description", &meta.body);
    }
    x.parameter("gridcast:level", &gridcast_protocol::wire_name(&meta.level));
    x.parameter("gridcast:colour", colour(meta.level));
    x.parameter(
        "gridcast:category",
        &gridcast_protocol::wire_name(&meta.category),
    );
    if !meta.targets.roles.is_empty() {
        let roles: Vec<&str> = meta.targets.roles.iter().map(|r| r.as_str()).collect();
        x.parameter("gridcast:roles", &roles.join(","));
    }
    x.parameter(
        "gridcast:ack_by",
        &gridcast_protocol::time::rfc3339(meta.ack_by),
    );

    x.open("area");
    let mut desc: Vec<String> = meta.targets.codes.iter().map(|c| c.to_string()).collect();
    if !meta.targets.area.is_empty() {
        desc.push(format!("{} shape(s)", meta.targets.area.len()));
    }
    x.leaf("areaDesc", &desc.join(" "));
    for a in &meta.targets.area {
        if let Some(points) = &a.polygon {
            let text: Vec<String> = points
                .iter()
                .map(|[lat, lon]| format!("{lat},{lon}"))
                .collect();
            x.leaf("polygon", &text.join(" "));
        }
    }
    for a in &meta.targets.area {
        if let Some(c) = &a.circle {
            let radius = match profile {
                Profile::Cap12 => c.radius_m / 1000.0,
                Profile::Gbt35965 => c.radius_m,
            };
            x.leaf("circle", &format!("{},{} {radius}", c.lat, c.lon));
        }
    }
    match profile {
        Profile::Cap12 => {
            for c in &meta.targets.codes {
                x.open("geocode");
                x.leaf("valueName", GEOCODE_GRID);
                x.leaf("value", c.as_str());
                x.close("geocode");
            }
        }
        Profile::Gbt35965 if !meta.targets.codes.is_empty() => {
            let codes: Vec<&str> = meta.targets.codes.iter().map(|c| c.as_str()).collect();
            x.leaf("geocode", &codes.join(","));
        }
        Profile::Gbt35965 => {}
    }
    x.close("area");
    x.close("info");
    x.close("alert");
    String::from_utf8(x.0.into_inner()).expect("written from str")
}
