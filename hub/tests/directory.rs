//! The published grid directory (Art. 14): without a token, exactly the configured
//! roles and fields for a prefix, never a personal phone nor a part-time worker by
//! default; rate-limited per address; and its page, Chinese first, in Chromium.

// Test harnesses spawn and wait freely; the hub's conventions (hub/clippy.toml) are
// for the hub itself.
#![allow(clippy::disallowed_methods)]

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use support::chromium::Browser;
use support::*;

const WAIT: Duration = Duration::from_secs(15);
const COMMUNITY: &str = "330106004005";

async fn directory(http: &str, prefix: &str) -> (u16, String) {
    let r = reqwest::get(format!("{http}/v1/directory?prefix={prefix}"))
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_publishes_the_configured_roles_and_fields_and_nothing_else() {
    let doc = gridcast_hub::sample::sample_city();
    let hub = TestHub::start("directory", Some(doc.clone()), |_| {}).await;
    let (status, body) = directory(&hub.http(), COMMUNITY).await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let grids = v["grids"].as_array().unwrap();
    let want: BTreeSet<&str> = doc
        .grids
        .iter()
        .map(|g| g.code.as_str())
        .filter(|c| c.starts_with(COMMUNITY))
        .collect();
    let got: BTreeSet<&str> = grids.iter().map(|g| g["code"].as_str().unwrap()).collect();
    assert_eq!(got, want);
    let grid = grids
        .iter()
        .find(|g| g["code"] == "3301060040051001")
        .unwrap();
    assert!(
        grid["supervision_phone"]
            .as_str()
            .unwrap()
            .starts_with("0571-8800")
    );
    assert!(
        grid["geometry"]["type"] == "Polygon"
            && grid["name"].is_string()
            && grid["kind"] == "community"
    );
    let roles: BTreeSet<&str> = grids
        .iter()
        .flat_map(|g| g["people"].as_array().unwrap())
        .map(|p| p["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        BTreeSet::from(["full_time", "grid_lead", "instructor"])
    );
    assert!(body.contains("0571-8765"), "work contacts published");
    // Never a personal phone (the sample city's are 1380000…), never a part-time worker.
    assert!(!body.contains("1380000"), "{body}");
    assert!(
        !body.contains("part_time")
            && !body.contains("micro_lead")
            && !body.contains("service_team")
    );
    // A bad prefix is a clear refusal.
    assert_eq!(directory(&hub.http(), "3301060").await.0, 400);

    // Its page, Chinese first, rendered by a browser from the same endpoint.
    let b = Browser::start("directory").await;
    // A Chinese browser (the directory is for residents).
    let page = b
        .page_in(
            Some("zh-CN,zh"),
            &format!("{}/directory?prefix={COMMUNITY}", hub.http()),
            1024,
            800,
            false,
        )
        .await;
    page.wait_for(
        "document.querySelectorAll('table.directory tbody tr').length > 0",
        WAIT,
        "the directory rows",
    )
    .await;
    assert_eq!(page.eval("document.documentElement.lang").await, "zh-CN");
    let rows = page
        .eval("document.querySelectorAll('table.directory tbody tr').length")
        .await;
    assert_eq!(rows.as_u64().unwrap() as usize, want.len());
    assert!(
        page.text("tr[data-grid=\"3301060040051001\"] .people")
            .await
            .unwrap()
            .contains("网格长")
    );
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fewer_roles_and_fields_publish_less_and_the_endpoint_is_rate_limited() {
    let hub = TestHub::start(
        "directory-config",
        Some(gridcast_hub::sample::sample_city()),
        |c| {
            c.directory_roles = vec![gridcast_protocol::Role::GridLead];
            c.directory_fields = vec!["name".into(), "person_name".into()];
            c.directory_rate = 1;
        },
    )
    .await;
    let (status, body) = directory(&hub.http(), COMMUNITY).await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    for g in v["grids"].as_array().unwrap() {
        assert!(
            g.get("supervision_phone").is_none()
                && g.get("geometry").is_none()
                && g.get("kind").is_none()
        );
        for p in g["people"].as_array().unwrap() {
            assert_eq!(p["role"], "grid_lead");
            assert!(p.get("work_contact").is_none() && p["name"].is_string());
        }
    }
    // A burst of 4, then 1 a second: a quick run of requests is refused past it.
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(directory(&hub.http(), COMMUNITY).await.0);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    assert_eq!(&statuses[..3], [200, 200, 200]);
    hub.stop().await;
}
