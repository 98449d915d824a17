//! Area targeting and on-site check-in, on one embedded hub and across two cluster
//! nodes, over the sample city's grid geometries: a polygon and a circle reach exactly
//! the people of the grids they intersect (computed here independently: geo's own
//! polygon test, and distances in a local metric plane for the circle), phones on
//! either node get the activation, and check-ins inside and outside the area are
//! recorded as such on the timeline and in the after-action report.

// Test harnesses spawn and wait freely; the hub's conventions (hub/clippy.toml) are
// for the hub itself.
#![allow(clippy::disallowed_methods)]

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use geo::{Distance, Euclidean, Intersects};
use gridcast_clients::ClientError;
use gridcast_clients::console::ConsoleClient;
use gridcast_clients::lead::LeadClient;
use gridcast_hub::auth::TokenRole;
use gridcast_protocol::api::{AfterAction, CreatedIncident};
use gridcast_protocol::area::Datum;
use gridcast_protocol::frame::{ClientFrame, Location, ServerFrame};
use gridcast_protocol::registry::RegistryDoc;
use support::redis::RedisServer;
use support::*;

const WAIT: Duration = Duration::from_secs(15);

/// A polygon over part of Xixi Street, `[lat, lon]`.
const POLYGON: [[f64; 2]; 5] = [
    [30.2725, 120.0810],
    [30.2740, 120.0950],
    [30.2790, 120.0930],
    [30.2785, 120.0790],
    [30.2760, 120.0775],
];

fn grid_shapes(doc: &RegistryDoc) -> Vec<(String, geo::MultiPolygon<f64>)> {
    doc.grids
        .iter()
        .filter_map(|g| {
            let geom = g.geometry.as_ref()?;
            let shape = match geo::Geometry::<f64>::try_from(geom.value.clone()).ok()? {
                geo::Geometry::Polygon(p) => geo::MultiPolygon(vec![p]),
                geo::Geometry::MultiPolygon(m) => m,
                _ => return None,
            };
            Some((g.code.clone(), shape))
        })
        .collect()
}

/// Leads with an assignment in one of `grids`.
fn people_of(doc: &RegistryDoc, grids: &BTreeSet<String>) -> BTreeSet<String> {
    doc.staff
        .iter()
        .filter(|p| p.assignments.iter().any(|a| grids.contains(&a.grid)))
        .map(|p| p.id.clone())
        .collect()
}

/// Grids the polygon intersects, by geo's own polygon-polygon test.
fn polygon_grids(doc: &RegistryDoc) -> BTreeSet<String> {
    let ring: Vec<(f64, f64)> = POLYGON.iter().map(|&[lat, lon]| (lon, lat)).collect();
    let area = geo::Polygon::new(geo::LineString::from(ring), vec![]);
    grid_shapes(doc)
        .into_iter()
        .filter(|(_, s)| s.intersects(&area))
        .map(|(c, _)| c)
        .collect()
}

/// Grids within `r` metres of `(lat, lon)`: distances in a plane tangent at the centre
/// (exact enough over a kilometre), the centre inside a grid counting as distance 0.
/// Panics if a grid lies so near the edge (±1 %) that the two methods could differ.
fn circle_grids(doc: &RegistryDoc, lat: f64, lon: f64, r: f64) -> BTreeSet<String> {
    const M_PER_DEG: f64 = 111_195.0;
    let k = lat.to_radians().cos();
    let plane = |c: geo::Coord<f64>| geo::Coord {
        x: (c.x - lon) * k * M_PER_DEG,
        y: (c.y - lat) * M_PER_DEG,
    };
    let centre = geo::Point::new(0.0, 0.0);
    let mut out = BTreeSet::new();
    for (code, shape) in grid_shapes(doc) {
        let flat = geo::MapCoords::map_coords(&shape, plane);
        let d = if flat.intersects(&centre) {
            0.0
        } else {
            Euclidean.distance(&flat, &centre)
        };
        assert!(
            (d - r).abs() > r * 0.01,
            "grid {code} at {d:.0} m is too near the edge for an exact comparison"
        );
        if d <= r {
            out.insert(code);
        }
    }
    out
}

async fn refused(ops: &ConsoleClient, body: serde_json::Value) -> (u16, String) {
    match ops
        .send_json::<serde_json::Value>(reqwest::Method::POST, "/v1/incidents", &body)
        .await
    {
        Err(ClientError::Hub {
            status,
            code,
            message,
        }) => {
            assert!(!message.is_empty());
            (status, code)
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn activation(targets: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "title": "Chemical plume", "level": "II", "category": "accident", "targets": targets,
    })
}

async fn until_incident(c: &mut LeadClient, id: &str) {
    loop {
        let f = tokio::time::timeout(WAIT, c.next())
            .await
            .expect("incident in time")
            .unwrap();
        if let ServerFrame::Incident { incident, .. } = f
            && incident.id == id
        {
            assert!(!incident.targets.area.is_empty(), "the view shows the area");
            return;
        }
    }
}

fn checkin(id: &str, lat: f64, lon: f64, r: &str) -> ClientFrame {
    ClientFrame::Checkin {
        incident: id.into(),
        location: Location {
            lat,
            lon,
            datum: Default::default(),
        },
        note: Some("at the east gate".into()),
        reference: Some(r.into()),
    }
}

/// The whole scenario; phones connect alternately to `ws[0]` and `ws[1]`.
async fn area_flow(api: &str, ws: &[String], doc: &RegistryDoc) {
    let ops = ConsoleClient::new(api, &token("op", TokenRole::Operator, ""));

    // A polygon: exactly the people of the grids geo says it intersects.
    let want_grids = polygon_grids(doc);
    assert!(
        want_grids.len() >= 3 && want_grids.len() < 40,
        "{want_grids:?}"
    );
    let want = people_of(doc, &want_grids);
    let mut phones = Vec::new();
    for (i, lead) in want.iter().take(4).enumerate() {
        let (mut c, _) = LeadClient::connect(&ws[i % ws.len()], &lead_token(lead))
            .await
            .unwrap();
        c.sync().await.unwrap();
        phones.push((lead.clone(), c));
    }
    let created: CreatedIncident = ops
        .send_json(
            reqwest::Method::POST,
            "/v1/incidents",
            &activation(serde_json::json!({ "area": { "polygon": POLYGON } })),
        )
        .await
        .unwrap();
    assert_eq!(recipient_leads(&ops, &created.id).await, want);
    assert_eq!(created.recipients, want.len());
    for (_, c) in &mut phones {
        until_incident(c, &created.id).await;
    }

    // Check-ins: one inside the area, one well outside it (the other street), and
    // one for an incident the lead was not sent.
    let inside = [30.2760, 120.0860];
    let outside = [30.3100, 120.1100];
    let (lead_in, c) = &mut phones[0];
    let lead_in = lead_in.clone();
    c.request(&checkin(&created.id, inside[0], inside[1], "c1"))
        .await
        .unwrap()
        .0
        .unwrap();
    let (lead_out, c) = &mut phones[1];
    let lead_out = lead_out.clone();
    c.request(&checkin(&created.id, outside[0], outside[1], "c2"))
        .await
        .unwrap()
        .0
        .unwrap();
    let not_mine = c
        .request(&checkin("INC-999999", inside[0], inside[1], "c3"))
        .await
        .unwrap()
        .0;
    assert!(
        matches!(&not_mine, Err(ClientError::Hub { code, .. }) if code == "not_found"),
        "{not_mine:?}"
    );
    // Longitude first is a classic mistake: refused, not recorded somewhere else.
    let swapped = c
        .request(&checkin(&created.id, inside[1], inside[0], "c4"))
        .await
        .unwrap()
        .0;
    assert!(
        matches!(&swapped, Err(ClientError::Hub { code, .. }) if code == "bad_request"),
        "{swapped:?}"
    );
    let timeline = ops.timeline(&created.id).await.unwrap();
    let places: Vec<(String, Option<bool>)> = timeline
        .events
        .iter()
        .filter(|e| e.kind == "checkin")
        .map(|e| (e.lead.clone().unwrap(), e.place.unwrap().inside))
        .collect();
    assert_eq!(
        places,
        [
            (lead_in.clone(), Some(true)),
            (lead_out.clone(), Some(false))
        ]
    );
    let report: AfterAction = ops
        .get(&format!("/v1/incidents/{}/report", created.id))
        .await
        .unwrap();
    assert_eq!(
        (
            report.checkins.people,
            report.checkins.inside,
            report.checkins.outside
        ),
        (2, 1, 1)
    );
    let on_site = |l: &str| report.people.iter().find(|p| p.lead == l).unwrap().on_site;
    assert_eq!(
        (on_site(&lead_in), on_site(&lead_out)),
        (Some(true), Some(false))
    );

    // GCJ-02, as a Chinese map SDK reports a point just inside the area's east edge:
    // about 500 m east of it around Hangzhou, so outside unless declared (then the hub
    // converts it to WGS 84 and it is inside).
    let (glon, glat) = coordtransform::wgs84_to_gcj02(120.0925, 30.2765);
    let (lead_gcj, c) = &mut phones[2];
    let lead_gcj = lead_gcj.clone();
    for (datum, r) in [(Datum::Wgs84, "g1"), (Datum::Gcj02, "g2")] {
        let frame = ClientFrame::Checkin {
            incident: created.id.clone(),
            location: Location {
                lat: glat,
                lon: glon,
                datum,
            },
            note: None,
            reference: Some(r.into()),
        };
        c.request(&frame).await.unwrap().0.unwrap();
    }
    let timeline = ops.timeline(&created.id).await.unwrap();
    let gcj: Vec<(Option<bool>, f64)> = timeline
        .events
        .iter()
        .filter(|e| e.kind == "checkin" && e.lead.as_deref() == Some(lead_gcj.as_str()))
        .map(|e| (e.place.unwrap().inside, e.place.unwrap().lon))
        .collect();
    assert_eq!(gcj.len(), 2);
    assert_eq!((gcj[0].0, gcj[1].0), (Some(false), Some(true)), "{gcj:?}");
    assert!(
        (gcj[1].1 - 120.0925).abs() < 1e-6,
        "stored in WGS 84: {gcj:?}"
    );

    // Check-ins have their own small quota (a stolen token cannot fill a timeline),
    // charged before anything is read.
    let (_, c) = &mut phones[3];
    let mut answers = Vec::new();
    for k in 0..8 {
        let frame = ClientFrame::Checkin {
            incident: created.id.clone(),
            location: Location {
                lat: 30.2760,
                lon: 120.0860,
                datum: Datum::Wgs84,
            },
            note: None,
            reference: Some(format!("q{k}")),
        };
        answers.push(match c.request(&frame).await.unwrap().0 {
            Ok(()) => "ok".to_owned(),
            Err(ClientError::Hub { code, .. }) => code,
            Err(e) => panic!("{e}"),
        });
    }
    assert_eq!(
        answers.iter().filter(|a| *a == "ok").count(),
        6,
        "{answers:?}"
    );
    assert_eq!(
        answers.last().map(String::as_str),
        Some("rate_limited"),
        "{answers:?}"
    );

    // A circle around the centre of a Sandun Town grid: exactly the grids within it.
    let centre_grid = doc
        .grids
        .iter()
        .find(|g| g.code.len() == 16 && g.code.starts_with("330106101"))
        .unwrap();
    let (_, shape) = grid_shapes(doc)
        .into_iter()
        .find(|(c, _)| *c == centre_grid.code)
        .unwrap();
    let c = geo::Centroid::centroid(&shape).unwrap();
    let radius = 700.0;
    let want_grids = circle_grids(doc, c.y(), c.x(), radius);
    assert!(want_grids.len() >= 3, "{want_grids:?}");
    let created: CreatedIncident = ops
        .send_json(
            reqwest::Method::POST,
            "/v1/incidents",
            &activation(serde_json::json!({
                "area": { "circle": { "lat": c.y(), "lon": c.x(), "radius_m": radius } },
                "roles": ["grid_lead"],
            })),
        )
        .await
        .unwrap();
    let leads: BTreeSet<String> = doc
        .staff
        .iter()
        .filter(|p| {
            p.assignments
                .iter()
                .any(|a| a.role == "grid_lead" && want_grids.contains(&a.grid))
        })
        .map(|p| p.id.clone())
        .collect();
    assert_eq!(recipient_leads(&ops, &created.id).await, leads);

    // What is refused, with a message, before anything is recorded.
    for bad in [
        serde_json::json!({ "area": { "polygon": [[30.0, 100.0], [30.1, 100.0], [30.1, 100.1]] } }),
        serde_json::json!({ "area": { "polygon": [[30.27, 120.08], [30.28, 120.09]] } }),
        serde_json::json!({ "area": { "polygon": POLYGON.map(|[a, b]| [b, a]) } }),
        serde_json::json!({ "area": { "circle": { "lat": 30.27, "lon": 120.08, "radius_m": -1 } } }),
        serde_json::json!({ "area": { "polygon": POLYGON, "circle": { "lat": 30.27, "lon": 120.08, "radius_m": 5 } } }),
        serde_json::json!({ "area": "330106" }),
    ] {
        assert_eq!(
            refused(&ops, activation(bad.clone())).await,
            (400, "bad_request".into()),
            "{bad}"
        );
    }
    // An area reaching past the operator's jurisdiction is refused like a code would be.
    let sandun_only = ConsoleClient::new(api, &token("op-b", TokenRole::Operator, "330106101"));
    assert_eq!(
        refused(
            &sandun_only,
            activation(serde_json::json!({ "area": { "polygon": POLYGON } }))
        )
        .await,
        (403, "forbidden".into())
    );
    let before = ops.incidents(None).await.unwrap().incidents.len();
    assert_eq!(before, 2, "nothing refused was recorded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn areas_reach_the_intersecting_grids_and_check_ins_are_placed_on_one_node() {
    let doc = gridcast_hub::sample::sample_city();
    let hub = TestHub::start("area-one", Some(doc.clone()), |_| {}).await;
    area_flow(&hub.http(), &[hub.ws_url()], &doc).await;
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn areas_reach_the_intersecting_grids_and_check_ins_are_placed_across_cluster_nodes() {
    let redis = RedisServer::start("area").await;
    let doc = gridcast_hub::sample::sample_city();
    let nodes = redis.two_nodes("area", doc.clone()).await;
    let ws: Vec<String> = nodes.iter().map(|n| n.ws_url()).collect();
    area_flow(&nodes[1].http(), &ws, &doc).await;
    for n in nodes {
        n.stop().await;
    }
}
