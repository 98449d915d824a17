//! CAP 1.2 in and out against real alerts (hub/tests/data/cap, SOURCES.md says where
//! each came from): each imports to the expected level, category, drill flag, title
//! and recipients or is refused with the line and element; an Update and a Cancel
//! change and close the same incident; a repeated alert changes nothing; hostile XML
//! is refused; every export validates against the OASIS schema (xmllint) and imports
//! back to the same targets.

// Test harnesses spawn and wait freely; the hub's conventions (hub/clippy.toml) are
// for the hub itself.
#![allow(clippy::disallowed_methods)]

mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;

use gridcast_hub::auth::TokenRole;
use gridcast_protocol::model::{Category, IncidentState, Level};
use gridcast_protocol::registry::{AssignmentDoc, GridDoc, RegistryDoc, StaffDoc};
use support::*;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/cap")
        .join(name)
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(data(name)).unwrap()
}

/// The sample city and one grid (one grid lead) around each place the fixtures name.
fn registry() -> RegistryDoc {
    let mut doc = gridcast_hub::sample::sample_city();
    let places = [
        ("001", 38.47, -119.95, 0.3), // Sierra thunderstorm
        ("002", 42.25, -82.4, 0.4),   // Essex County, Ontario
        ("003", 64.12, -21.85, 0.15), // Reykjavik
        ("004", 30.10, -92.62, 0.05), // Acadia, Louisiana
        ("005", 15.0, 125.0, 2.0),    // Philippine sea
        ("006", 52.0, 5.0, 0.1),      // nowhere a fixture names
    ];
    for (serial, lat, lon, r) in places {
        let code = format!("3301069990003{serial}");
        let ring = vec![
            vec![lon - r, lat - r],
            vec![lon + r, lat - r],
            vec![lon + r, lat + r],
            vec![lon - r, lat + r],
            vec![lon - r, lat - r],
        ];
        doc.grids.push(GridDoc {
            code: code.clone(),
            name: format!("fixture {serial}"),
            kind: Some("dedicated".into()),
            geometry: Some(
                serde_json::from_value(
                    serde_json::json!({"type": "Polygon", "coordinates": [ring]}),
                )
                .unwrap(),
            ),
            supervision_phone: None,
        });
        doc.staff.push(StaffDoc {
            id: format!("FX{serial}"),
            name: String::new(),
            phone: String::new(),
            work_contact: None,
            assignments: vec![AssignmentDoc {
                grid: code,
                role: "grid_lead".into(),
            }],
        });
    }
    doc
}

async fn post(hub: &str, path: &str, xml: &str) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new()
        .post(format!("{hub}{path}"))
        .bearer_auth(token("cap-feed", TokenRole::Operator, ""))
        .header("content-type", "application/cap+xml")
        .body(xml.to_owned())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn export(hub: &str, id: &str, profile: &str) -> String {
    let r = reqwest::Client::new()
        .get(format!("{hub}/v1/incidents/{id}/cap{profile}"))
        .bearer_auth(token("op", TokenRole::Operator, ""))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/cap+xml")
    );
    r.text().await.unwrap()
}

/// `xmllint --schema` of the OASIS CAP 1.2 schema over `xml`.
fn schema_valid(xml: &str, name: &str) {
    let path = tmp_dir("cap-export").join(format!("{name}.xml"));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, xml).unwrap();
    let out = std::process::Command::new("xmllint")
        .arg("--noout")
        .arg("--nonet")
        .arg("--schema")
        .arg(data("CAP-v1.2.xsd"))
        .arg(&path)
        .output()
        .expect("xmllint (libxml2-utils) is installed; .ci/run installs it");
    assert!(
        out.status.success(),
        "{name} does not validate:\n{}\n{xml}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_alerts_import_update_cancel_and_export_as_valid_cap() {
    let doc = registry();
    let hub = TestHub::start("cap", Some(doc.clone()), |_| {}).await;
    let http = hub.http();
    let ops = hub.console("");

    // Each fixture: what it becomes.
    struct Want {
        level: Level,
        category: Category,
        title: &'static str,
        leads: &'static [&'static str],
    }
    let imported = [
        (
            "oasis-thunderstorm.xml".to_owned(),
            fixture("oasis-thunderstorm.xml"),
            Want { level: Level::II, category: Category::Natural, title: "SEVERE THUNDERSTORM WARNING", leads: &["FX001"] },
        ),
        (
            // Two languages, neither Chinese: the first block.
            "iceland-imo-bilingual.xml".to_owned(),
            fixture("iceland-imo-bilingual.xml"),
            Want { level: Level::III, category: Category::Natural, title: "Hvöss suðaustanátt", leads: &["FX003"] },
        ),
        (
            // The Canadian update as a first alert (its originals are not here); two
            // polygons in one area.
            "canada-eccc-update.xml as Alert".to_owned(),
            fixture("canada-eccc-update.xml")
                .replace("<msgType>Update</msgType>", "<msgType>Alert</msgType>")
                .replace("2.49.0.1.124.6bddbc91.2012", "2.49.0.1.124.6bddbc91.2012.a"),
            Want { level: Level::IV, category: Category::Natural, title: "severe thunderstorm watch", leads: &["FX002"] },
        ),
        (
            // A zh-CN block added before the others is the one taken.
            "iceland with zh-CN".to_owned(),
            fixture("iceland-imo-bilingual.xml")
                .replace("is-IMO-2a4c2db8", "is-IMO-zh-2a4c2db8")
                .replacen(
                    "<info>",
                    "<info><language>zh-CN</language><category>Met</category><event>大风</event>\
                     <urgency>Expected</urgency><severity>Severe</severity><certainty>Likely</certainty>\
                     <headline>东南大风</headline><area><areaDesc>雷克雅未克</areaDesc>\
                     <circle>64.12,-21.85 5</circle></area></info><info>",
                    1,
                ),
            Want { level: Level::II, category: Category::Natural, title: "东南大风", leads: &["FX003"] },
        ),
        (
            "gbt35965-typhoon.xml".to_owned(),
            fixture("gbt35965-typhoon.xml"),
            Want { level: Level::IV, category: Category::Natural, title: "西湖区气象台发布台风蓝色预警[IV/一般]", leads: &[] },
        ),
        (
            // An Update of alerts this hub never had is news: issued, so that its area
            // is warned (two polygons, one of them a 4-point sliver).
            "nws-hurricane-update.xml".to_owned(),
            fixture("nws-hurricane-update.xml"),
            Want {
                level: Level::I,
                category: Category::Natural,
                title: "Hurricane Warning issued August 26 at 4:14AM CDT by NWS Lake Charles LA",
                leads: &["FX004"],
            },
        ),
    ];
    let mut ids = Vec::new();
    for (name, xml, want) in &imported {
        let (status, body) = post(&http, "/v1/incidents", xml).await;
        assert_eq!(status, 201, "{name}: {body}");
        let id = body["id"].as_str().unwrap().to_owned();
        let d = ops.incident(&id).await.unwrap();
        assert_eq!(
            (
                d.incident.level,
                d.incident.category,
                d.incident.drill,
                d.incident.title.as_str()
            ),
            (want.level, want.category, false, want.title),
            "{name}"
        );
        if !want.leads.is_empty() {
            let leads: BTreeSet<String> = want.leads.iter().map(|s| s.to_string()).collect();
            assert_eq!(recipient_leads(&ops, &id).await, leads, "{name}");
        }
        ids.push(id);
    }
    // The profile's circle is in metres and its geocode a town: the union of Sandun
    // Town and the grids within 800 m of a point in Xixi Street (not 800 km: the
    // fixture grids elsewhere in the world are not reached).
    let typhoon = recipient_leads(&ops, &ids[4]).await;
    let sandun: BTreeSet<String> = doc
        .staff
        .iter()
        .filter(|p| {
            p.assignments
                .iter()
                .any(|a| a.grid.starts_with("330106101"))
        })
        .map(|p| p.id.clone())
        .collect();
    assert!(typhoon.is_superset(&sandun) && typhoon.len() > sandun.len());
    assert!(typhoon.len() < 300 && !typhoon.iter().any(|l| l.starts_with("FX")));

    // Re-posting an alert (also through /v1/cap) changes nothing.
    let (status, again) = post(&http, "/v1/cap", &fixture("oasis-thunderstorm.xml")).await;
    assert_eq!(
        (status, again["action"].as_str(), again["id"].as_str()),
        (200, Some("unchanged"), Some(ids[0].as_str()))
    );

    // An Update and a Cancel referencing the thunderstorm change and close it, once.
    let update = fixture("oasis-thunderstorm.xml")
        .replace("<identifier>KSTO1055887203</identifier>", "<identifier>KSTO1055887203.2</identifier>")
        .replace("<msgType>Alert</msgType>", "<msgType>Update</msgType><references>KSTO@NWS.NOAA.GOV,KSTO1055887203,2003-06-17T14:57:00-07:00</references>")
        .replace("TAKE COVER IN A SUBSTANTIAL SHELTER", "STAY IN THE SHELTER");
    let (status, body) = post(&http, "/v1/cap", &update).await;
    assert_eq!(
        (
            status,
            body["action"].as_str(),
            body["id"].as_str(),
            body["rev"].as_u64()
        ),
        (200, Some("updated"), Some(ids[0].as_str()), Some(2)),
        "{body}"
    );
    let (status, body) = post(&http, "/v1/cap", &update).await;
    assert_eq!(
        (status, body["action"].as_str(), body["rev"].as_u64()),
        (200, Some("unchanged"), Some(2))
    );
    assert!(
        ops.incident(&ids[0])
            .await
            .unwrap()
            .incident
            .body
            .contains("STAY IN THE SHELTER")
    );
    // Refused, and the incident untouched: an Update that moves the area (a running
    // incident keeps its recipients), an Exercise changing a real incident, a reference
    // by another sender to the same identifier.
    let moved = update
        .replace("KSTO1055887203.2", "KSTO1055887203.2b")
        .replace("38.47,-120.14", "38.47,-120.24");
    let (status, body) = post(&http, "/v1/cap", &moved).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("conflict")),
        "{body}"
    );
    let exercise = update
        .replace("KSTO1055887203.2", "KSTO1055887203.2c")
        .replace("<status>Actual</status>", "<status>Exercise</status>");
    let (status, body) = post(&http, "/v1/cap", &exercise).await;
    assert_eq!(status, 409, "{body}");
    let stranger = update
        .replace("KSTO1055887203.2", "KSTO1055887203.2d")
        .replace("<msgType>Update</msgType>", "<msgType>Cancel</msgType>")
        .replace(
            "KSTO@NWS.NOAA.GOV,KSTO1055887203,",
            "OTHER@EXAMPLE.ORG,KSTO1055887203,",
        );
    let (status, body) = post(&http, "/v1/cap", &stranger).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(ops.incident(&ids[0]).await.unwrap().incident.rev, 2);

    // The Cancel: closed, its long note kept in part (an all-clear is never refused
    // for its length).
    let cancel = update
        .replace("KSTO1055887203.2", "KSTO1055887203.3")
        .replace("<msgType>Update</msgType>", "<msgType>Cancel</msgType>")
        .replace(
            "<scope>Public</scope>",
            &format!("<scope>Public</scope><note>{}</note>", "解除。".repeat(600)),
        );
    let (status, body) = post(&http, "/v1/cap", &cancel).await;
    assert_eq!(
        (status, body["action"].as_str(), body["rev"].as_u64()),
        (200, Some("closed"), Some(3)),
        "{body}"
    );
    assert_eq!(
        ops.incident(&ids[0]).await.unwrap().incident.state,
        IncidentState::Closed
    );
    let closed = ops.timeline(&ids[0]).await.unwrap();
    let reason = closed
        .events
        .iter()
        .find(|e| e.kind == "closed")
        .unwrap()
        .detail
        .clone()
        .unwrap();
    assert!(
        reason.starts_with("解除。")
            && reason.ends_with("truncated）")
            && reason.chars().count() == 1000,
        "{reason}"
    );

    // Refused, with the line and the element, and nothing recorded.
    let before = ops.incidents(None).await.unwrap().incidents.len();
    let refusals = [
        ("xee.xml", fixture("xee.xml"), 400, "<!DOCTYPE>"),
        ("pagasa-test.xml", fixture("pagasa-test.xml"), 400, "status Test is not dispatched"),
        ("oasis-amber-bilingual.xml", fixture("oasis-amber-bilingual.xml"), 400, "geocodes SAME"),
        ("oasis-homeland-security.xml", fixture("oasis-homeland-security.xml"), 400, "no target"),
        ("bom-au-prefixed.xml", fixture("bom-au-prefixed.xml"), 400, "AMOC-AreaCode"),
        ("oasis-earthquake-update.xml", fixture("oasis-earthquake-update.xml"), 400, "touches no grid"),
        ("ipaws-nv-cancel.xml", fixture("ipaws-nv-cancel.xml"), 404, "AS-NV-e18921c7"),
        ("missing scope", fixture("oasis-thunderstorm.xml").replace("<scope>Public</scope>", ""), 400, "line 2, <alert>: needs a <scope>"),
        ("bad severity", fixture("oasis-thunderstorm.xml").replace("<severity>Severe</severity>", "<severity>Bad</severity>"), 400, "line 14, <severity>"),
        ("CAP 1.1", fixture("oasis-thunderstorm.xml").replace("cap:1.2", "cap:1.1"), 400, "namespace"),
        ("not XML", "<alert xmlns='urn:oasis:names:tc:emergency:cap:1.2'><identifier>x</sender>".into(), 400, "not well-formed"),
        ("billion laughs", r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><alert>&lol2;</alert>"#.into(), 400, "DTD"),
        ("undeclared entity", fixture("oasis-thunderstorm.xml").replace("KSTO1055887203", "&xxe;"), 400, "entity &xxe;"),
        ("deep", format!("<alert xmlns='urn:oasis:names:tc:emergency:cap:1.2'>{}", "<a>".repeat(100)), 400, "too deep"),
        (
            "a flood of empty elements",
            format!(
                "<alert xmlns='urn:oasis:names:tc:emergency:cap:1.2'>{}</alert>",
                "<x/>".repeat(30_000)
            ),
            400,
            "too many elements",
        ),
    ];
    for (name, xml, want_status, needle) in refusals {
        let (status, body) = post(&http, "/v1/incidents", &xml).await;
        let message = body["error"]["message"]
            .as_str()
            .or(body["message"].as_str())
            .unwrap_or_default()
            .to_owned();
        assert_eq!(status, want_status, "{name}: {body}");
        assert!(
            message.contains(needle),
            "{name}: {message:?} lacks {needle:?}"
        );
    }
    // Over the body limit: refused before parsing.
    let huge = format!("<alert>{}</alert>", "x".repeat(300 * 1024));
    assert_eq!(post(&http, "/v1/cap", &huge).await.0, 413);
    assert_eq!(ops.incidents(None).await.unwrap().incidents.len(), before);

    // Exports: issued, updated, closed, drill and real, by code, polygon and circle.
    let drill: gridcast_protocol::api::CreatedIncident = ops
        .send_json(
            reqwest::Method::POST,
            "/v1/incidents",
            &serde_json::json!({
                "title": "演练：化工泄漏", "body": "疏散 & 清点 <人数>", "level": "I", "category": "accident",
                "drill": true, "targets": {"codes": ["330106004"], "roles": ["grid_lead", "full_time"],
                "area": [{"circle": {"lat": 30.31, "lon": 120.11, "radius_m": 600}}]},
            }),
        )
        .await
        .unwrap();
    let mut exported = Vec::new();
    for (id, label) in [
        (&ids[0], "closed"),
        (&ids[1], "issued"),
        (&ids[4], "gbt-origin"),
        (&drill.id, "drill"),
    ] {
        let xml = export(&http, id, "").await;
        schema_valid(&xml, label);
        exported.push((id.clone(), xml));
    }
    let updated: serde_json::Value = ops
        .send_json(
            reqwest::Method::POST,
            &format!("/v1/incidents/{}/updates", drill.id),
            &serde_json::json!({"body": "第二次通报"}),
        )
        .await
        .unwrap();
    assert_eq!(updated["incident"]["rev"], 2);
    let xml = export(&http, &drill.id, "").await;
    schema_valid(&xml, "drill-updated");
    assert!(
        xml.contains("<msgType>Update</msgType>")
            && xml.contains(&format!("gridcast.{}.r1", drill.id))
    );
    assert!(
        exported[0].1.contains("<msgType>Cancel</msgType>")
            && exported[0].1.contains("KSTO@NWS.NOAA.GOV,KSTO1055887203,")
    );
    assert!(exported[3].1.contains("<status>Exercise</status>"));

    // import(export(x)) names the same targets: each export as a new alert.
    for (id, xml) in &exported[1..] {
        let fresh = xml
            .replace("<msgType>Update</msgType>", "<msgType>Alert</msgType>")
            .replace(&format!("gridcast.{id}.r"), &format!("again.{id}.r"));
        let fresh = match fresh.find("<references>") {
            Some(a) => {
                let b = fresh.find("</references>").unwrap() + "</references>".len();
                format!("{}{}", &fresh[..a], &fresh[b..])
            }
            None => fresh,
        };
        let (status, body) = post(&http, "/v1/cap", &fresh).await;
        assert_eq!(status, 201, "{id}: {body}");
        let back = ops
            .incident(body["id"].as_str().unwrap())
            .await
            .unwrap()
            .incident;
        let orig = ops.incident(id).await.unwrap().incident;
        assert_eq!(
            (back.targets.codes.clone(), back.targets.roles.clone()),
            (orig.targets.codes.clone(), orig.targets.roles.clone()),
            "{id}"
        );
        assert_eq!(back.targets.area.len(), orig.targets.area.len(), "{id}");
        for (a, b) in back.targets.area.iter().zip(&orig.targets.area) {
            assert_eq!(a.polygon, b.polygon, "{id}");
            if let (Some(a), Some(b)) = (a.circle, b.circle) {
                assert!(
                    (a.lat, a.lon) == (b.lat, b.lon) && (a.radius_m - b.radius_m).abs() < 1e-6,
                    "{id}"
                );
            }
        }
        assert_eq!(
            (back.level, back.category, back.drill),
            (orig.level, orig.category, orig.drill),
            "{id}"
        );
        assert_eq!(
            recipient_leads(&ops, body["id"].as_str().unwrap()).await,
            recipient_leads(&ops, id).await,
            "{id}"
        );
    }

    // The national profile on request: colours, sendTime with a space, metres.
    let gbt = export(&http, &drill.id, "?profile=gbt35965").await;
    for needle in [
        "<severity>Red</severity>",
        "<secClassification>Inner</secClassification>",
        " 600</circle>",
        "+08:00</sendTime>",
    ] {
        assert!(gbt.contains(needle), "{needle} in\n{gbt}");
    }
    assert!(
        gbt.contains(&format!(
            "<references>gridcast.{}.r1</references>",
            drill.id
        )),
        "{gbt}"
    );
    hub.stop().await;
}

/// The same alert posted to two cluster nodes at once makes one incident; an Update
/// through the other node changes that incident.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_posted_to_two_nodes_at_once_is_one_incident() {
    let redis = support::redis::RedisServer::start("cap-cluster").await;
    let nodes = redis.two_nodes("cap-cluster", registry()).await;
    let (a, b) = (nodes[0].http(), nodes[1].http());
    let xml = fixture("oasis-thunderstorm.xml");
    let ((sa, ba), (sb, bb)) = tokio::join!(post(&a, "/v1/cap", &xml), post(&b, "/v1/cap", &xml));
    let mut statuses = [sa, sb];
    statuses.sort();
    assert_eq!(statuses, [200, 201], "{ba} {bb}");
    assert_eq!(ba["id"], bb["id"]);
    let ops = nodes[0].console("");
    assert_eq!(ops.incidents(None).await.unwrap().incidents.len(), 1);

    let update = xml
        .replace("<identifier>KSTO1055887203</identifier>", "<identifier>KSTO1055887203.2</identifier>")
        .replace("<msgType>Alert</msgType>", "<msgType>Update</msgType><references>KSTO@NWS.NOAA.GOV,KSTO1055887203,2003-06-17T14:57:00-07:00</references>")
        .replace("TAKE COVER IN A SUBSTANTIAL SHELTER", "STAY IN THE SHELTER");
    let ((s1, u1), (s2, u2)) =
        tokio::join!(post(&b, "/v1/cap", &update), post(&a, "/v1/cap", &update));
    let mut actions = [
        u1["action"].as_str().unwrap().to_owned(),
        u2["action"].as_str().unwrap().to_owned(),
    ];
    actions.sort();
    assert_eq!(
        (s1, s2, actions),
        (200, 200, ["unchanged".to_owned(), "updated".to_owned()])
    );
    let d = ops.incident(ba["id"].as_str().unwrap()).await.unwrap();
    assert_eq!(d.incident.rev, 2, "one update, not two");
    assert!(d.incident.body.contains("STAY IN THE SHELTER"));
    for n in nodes {
        n.stop().await;
    }
}
