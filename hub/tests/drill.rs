//! The small drill `.ci/run` runs on every change: 2,000 phones, a fifth of them over
//! MQTT through a real mosquitto, one drill activation; it fails unless every phone got
//! the activation and every ack was recorded.

// Test harnesses spawn and wait freely; the hub's conventions (hub/clippy.toml) are
// for the hub itself.
#![allow(clippy::disallowed_methods)]

mod support;

use std::time::Duration;

use gridcast_hub::auth::TokenRole;
use gridcast_load_tests::{FanoutOpts, fanout};
use gridcast_protocol::Target;
use support::mosquitto::Mosquitto;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_of_2000_phones_on_websocket_and_mqtt_reaches_and_records_everyone() {
    let broker = Mosquitto::start("drill").await;
    let doc = gridcast_hub::sample::drill_city(2_000);
    let url = broker.url();
    let hub = TestHub::start("drill", Some(doc), move |c| c.mqtt = Some(url)).await;
    ready_is(&hub.http(), true, Duration::from_secs(20)).await;
    let report = fanout(FanoutOpts {
        hubs: vec![hub.http()],
        admin_token: token("drill-admin", TokenRole::Admin, ""),
        jwt_secret: SECRET.into(),
        prefix: Target::parse("330106").unwrap(),
        leads: 2_000,
        mqtt: Some(("127.0.0.1".into(), broker.port)),
        mqtt_share: 0.2,
        ack_delay_ms: (10, 200),
        timeout: Duration::from_secs(120),
        hub_pids: vec![],
        per_process: 20_000,
        progress: false,
        kill: None,
    })
    .await
    .unwrap();
    eprintln!(
        "drill: {} recipients, {} connected ({} MQTT), delivery p50 {:.1} p99 {:.1} max {:.1} ms, last ack {:.0} ms",
        report.recipients,
        report.connected,
        report.connected_mqtt,
        report.delivery_ms.p50,
        report.delivery_ms.p99,
        report.delivery_ms.max,
        report.last_ack_ms
    );
    assert_eq!(report.connected, 2_000);
    assert_eq!(report.connected_mqtt, 400);
    assert_eq!(report.recipients, 2_000);
    assert_eq!(
        (report.delivered, report.acked, report.errors),
        (2_000, 2_000, 0)
    );
    // The hub agrees: every ack is recorded.
    let d = hub.console("").incident(&report.incident).await.unwrap();
    assert_eq!(d.counts.accepted, 2_000);
    hub.stop().await;
}
