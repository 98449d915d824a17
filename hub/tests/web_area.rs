//! The console with areas, check-ins and CAP in a real headless Chromium, over the
//! sample city's geometries: an activation by a pasted polygon, the sketch of the
//! grids it reaches, two phones' check-ins shown inside and outside the area (live,
//! on the sketch and in the table), the CAP download and a CAP file import.

// Test harnesses spawn and wait freely; the hub's conventions (hub/clippy.toml) are
// for the hub itself.
#![allow(clippy::disallowed_methods)]

mod support;

use std::time::Duration;

use gridcast_clients::lead::LeadClient;
use gridcast_protocol::frame::{ClientFrame, Location, ServerFrame};
use serde_json::json;
use support::chromium::Browser;
use support::*;

const WAIT: Duration = Duration::from_secs(15);

/// The polygon of `tests/area.rs` over part of Xixi Street, in CAP's text form.
const POLYGON: &str =
    "30.2725,120.0810 30.2740,120.0950 30.2790,120.0930 30.2785,120.0790 30.2760,120.0775";

async fn next_incident(c: &mut LeadClient) -> String {
    loop {
        let f = tokio::time::timeout(WAIT, c.next())
            .await
            .expect("incident")
            .unwrap();
        if let ServerFrame::Incident { incident, .. } = f {
            return incident.id;
        }
    }
}

async fn check_in(c: &mut LeadClient, id: &str, lat: f64, lon: f64, r: &str) {
    let frame = ClientFrame::Checkin {
        incident: id.into(),
        location: Location {
            lat,
            lon,
            datum: Default::default(),
        },
        note: Some(format!("note {r}")),
        reference: Some(r.into()),
    };
    c.request(&frame).await.unwrap().0.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_area_activation_is_sketched_and_check_ins_show_inside_and_outside() {
    let doc = gridcast_hub::sample::sample_city();
    let hub = TestHub::start("web-area", Some(doc.clone()), |_| {}).await;
    let b = Browser::start("area").await;
    let url = format!("{}/console#token={}", hub.http(), admin_token());
    let console = b.online_page(None, &url, 1280, 1400, false).await;

    // Two grid leads of grids the polygon crosses (grids 002 and 003 of community 005).
    let (mut inside, _) = LeadClient::connect(&hub.ws_url(), &lead_token("L0006"))
        .await
        .unwrap();
    inside.sync().await.unwrap();
    let (mut outside, _) = LeadClient::connect(&hub.ws_url(), &lead_token("L0011"))
        .await
        .unwrap();
    outside.sync().await.unwrap();

    console.fill("#f-title", "化工泄漏 Chemical plume").await;
    console
        .fill("#f-body", "Close windows; stay indoors.")
        .await;
    console.fill("#f-area", POLYGON).await;
    console.click("#f-drill").await;
    console.click("#f-submit").await;
    let id = next_incident(&mut inside).await;
    assert_eq!(next_incident(&mut outside).await, id);

    // The sketch: one outline per grid the area reaches (21 grids and micro-grids, as
    // tests/area.rs computes independently) and the area itself.
    console
        .wait_for(
            "document.querySelectorAll('#d-map svg path.grid').length === 21",
            WAIT,
            "21 grid outlines",
        )
        .await;
    assert_eq!(
        console
            .eval("document.querySelectorAll('#d-map svg path.area').length")
            .await,
        json!(1)
    );
    assert!(
        console
            .text("#d-checkins")
            .await
            .unwrap()
            .contains("Nobody")
    );
    assert!(console.text("#d-head .meta").await.unwrap().contains("▱"));

    // Check-ins arrive live: one inside, one on the other street.
    check_in(&mut inside, &id, 30.2760, 120.0860, "c1").await;
    check_in(&mut outside, &id, 30.3100, 120.1100, "c2").await;
    console
        .wait_for(
            "document.querySelectorAll('#d-checkins tr[data-where]').length === 2",
            WAIT,
            "two check-ins listed",
        )
        .await;
    assert_eq!(
        console
            .eval("document.querySelector('#d-checkins tr[data-lead=\"L0006\"]').dataset.where")
            .await,
        json!("inside")
    );
    assert_eq!(
        console
            .eval("document.querySelector('#d-checkins tr[data-lead=\"L0011\"]').dataset.where")
            .await,
        json!("outside")
    );
    assert!(
        console
            .text("#d-checkins tr[data-lead=\"L0011\"] .where")
            .await
            .unwrap()
            .contains("OUTSIDE")
    );
    assert_eq!(
        console
            .eval("document.querySelectorAll('#d-map svg circle.checkin.inside').length")
            .await,
        json!(1)
    );
    assert_eq!(
        console
            .eval("document.querySelectorAll('#d-map svg circle.checkin.outside').length")
            .await,
        json!(1)
    );
    assert!(
        console
            .text(".checkin-summary")
            .await
            .unwrap()
            .contains("1 inside, 1 outside")
    );

    // A third lead checks in from the phone page with the phone's own position.
    let phone = b
        .online_page(
            None,
            &format!("{}/lead#token={}", hub.http(), lead_token("L0016")),
            360,
            740,
            true,
        )
        .await;
    phone.set_position(30.2770, 120.0900).await;
    let card = format!("#incidents [data-id=\"{id}\"]");
    phone.click(&format!("{card} .checkin")).await;
    phone
        .wait_for(
            &format!("(document.querySelector('{card} .checkin-note') || {{}}).className === 'checkin-note ok'"),
            WAIT,
            "the phone's check-in recorded",
        )
        .await;
    console
        .wait_for(
            "(document.querySelector('#d-checkins tr[data-lead=\"L0016\"]') || {dataset: {}}).dataset.where === 'inside'",
            WAIT,
            "the phone's check-in inside on the console",
        )
        .await;

    // The CAP download is the export (fetched with the token, saved from memory).
    console
        .eval("window.__blobs = []; const o = URL.createObjectURL; URL.createObjectURL = (b) => { window.__blobs.push(b); return o(b); }; true")
        .await;
    console.click("#d-cap [data-profile=\"\"]").await;
    console
        .wait_for("window.__blobs.length === 1", WAIT, "a CAP download")
        .await;
    let xml = console.eval("window.__blobs[0].text()").await;
    let xml = xml.as_str().unwrap();
    assert!(
        xml.contains("<msgType>Alert</msgType>") && xml.contains("<status>Exercise</status>"),
        "{xml}"
    );
    assert!(xml.contains("<polygon>30.2725,120.081 "), "{xml}");

    // A CAP file chosen in the form is imported (a real alert asks first: accepted).
    let cap = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/cap/gbt35965-typhoon.xml"),
    )
    .unwrap();
    console
        .eval(&format!(
            "window.confirm = () => true; const dt = new DataTransfer(); \
             dt.items.add(new File([{}], 'typhoon.xml', {{type: 'application/cap+xml'}})); \
             document.getElementById('f-cap').files = dt.files; true",
            serde_json::to_string(&cap).unwrap()
        ))
        .await;
    console.click("#f-cap-import").await;
    console
        .wait_for(
            "document.getElementById('issue-result').textContent.includes('issued')",
            WAIT,
            "the CAP import answered",
        )
        .await;
    console
        .wait_for(
            "(document.querySelector('#d-head .title') || {}).textContent === '西湖区气象台发布台风蓝色预警[IV/一般]'",
            WAIT,
            "the imported incident selected",
        )
        .await;
    // A polygon the hub cannot read is said in the form, nothing is sent.
    console.fill("#f-title", "bad").await;
    console.fill("#f-body", "bad").await;
    console.fill("#f-area", "30.27;120.08 nonsense").await;
    console.click("#f-submit").await;
    console
        .wait_for(
            "document.getElementById('issue-result').className.includes('error')",
            WAIT,
            "the area refused",
        )
        .await;
    assert_eq!(
        hub.console("")
            .incidents(None)
            .await
            .unwrap()
            .incidents
            .len(),
        2
    );
    hub.stop().await;
}
