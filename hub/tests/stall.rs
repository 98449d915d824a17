//! Acceptance 5: a phone that stops reading never delays the others. The stalled phone
//! has a tiny receive buffer and is flooded with its own incidents until its socket, its
//! tungstenite buffer and its queue are full; meanwhile activations to everyone reach
//! the other 999 within a bound, and the stalled one is dropped as a slow consumer.

// Test harnesses spawn and wait freely; the hub's conventions (hub/clippy.toml) are
// for the hub itself.
#![allow(clippy::disallowed_methods)]

mod support;

use std::time::{Duration, Instant};

use gridcast_clients::lead::{LeadClient, ws_config};
use gridcast_protocol::frame::ServerFrame;
use support::*;
use tokio::sync::mpsc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_phone_does_not_delay_the_other_999() {
    let mut doc = city(999);
    // The stalled phone is alone in a grid of its own.
    let lonely = format!("{TOWN_B}0063999");
    doc.grids.push(gridcast_protocol::registry::GridDoc {
        code: lonely.clone(),
        name: "lonely".into(),
        kind: Some("dedicated".into()),
        geometry: None,
        supervision_phone: None,
    });
    doc.staff.push(gridcast_protocol::registry::StaffDoc {
        id: "STALLED".into(),
        name: String::new(),
        phone: String::new(),
        work_contact: None,
        assignments: vec![gridcast_protocol::registry::AssignmentDoc {
            grid: lonely.clone(),
            role: "grid_lead".into(),
        }],
    });
    let hub = TestHub::start("stall", Some(doc.clone()), |c| c.session_queue = 16).await;

    // The stalled phone: says hello, then never reads again.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(hub.addr).await.unwrap();
    let (mut stalled, _) =
        tokio_tungstenite::client_async_with_config(hub.ws_url(), stream, Some(ws_config()))
            .await
            .unwrap();
    futures_util::SinkExt::send(
        &mut stalled,
        tokio_tungstenite::tungstenite::Message::text(
            serde_json::json!({"type":"hello","token": lead_token("STALLED")}).to_string(),
        ),
    )
    .await
    .unwrap();

    // 999 phones that read everything and report each incident they get.
    let (tx, mut rx) = mpsc::unbounded_channel::<(String, Instant)>();
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    for p in doc.staff.iter().filter(|p| p.id != "STALLED") {
        let (url, id, tx, ready) = (hub.ws_url(), p.id.clone(), tx.clone(), ready_tx.clone());
        tokio::spawn(async move {
            let (mut c, _) = LeadClient::connect(&url, &lead_token(&id)).await.unwrap();
            c.sync().await.unwrap();
            ready.send(()).unwrap();
            while let Ok(f) = c.next().await {
                if let ServerFrame::Incident { incident, .. } = f
                    && tx.send((incident.id, Instant::now())).is_err()
                {
                    return;
                }
            }
        });
    }
    for _ in 0..999 {
        tokio::time::timeout(Duration::from_secs(60), ready_rx.recv())
            .await
            .expect("phones connect")
            .unwrap();
    }
    let console = hub.console("");
    let presence = console.presence("", false).await.unwrap();
    assert_eq!(presence.online, 1000);

    // Flood the stalled phone (~9 MB, more than its socket, write buffer and queue hold)
    // and interleave activations to everyone.
    let big = "x".repeat(15_900);
    let mut broadcasts = Vec::new();
    for i in 0..600 {
        let mut a = activation(&format!("For the stalled phone {i}"), &[&lonely], &[]);
        a.body = big.clone();
        console.activate(&a).await.unwrap();
        if i % 120 == 119 {
            let issued = Instant::now();
            let c = console
                .activate(&activation(&format!("Everyone {i}"), &["330106"], &[]))
                .await
                .unwrap();
            broadcasts.push((c.id, issued));
        }
    }
    let bound = Duration::from_secs(10);
    let mut got: std::collections::HashMap<String, usize> =
        broadcasts.iter().map(|(id, _)| (id.clone(), 0)).collect();
    let mut slowest = Duration::ZERO;
    while got.values().any(|&n| n < 999) {
        let (id, at) = tokio::time::timeout(bound, rx.recv())
            .await
            .expect("the others keep receiving")
            .unwrap();
        if let Some((_, issued)) = broadcasts.iter().find(|(b, _)| *b == id) {
            let took = at.duration_since(*issued);
            slowest = slowest.max(took);
            assert!(took < bound, "{id} took {took:?}");
            *got.get_mut(&id).unwrap() += 1;
        }
    }
    eprintln!("5 activations reached all 999 readers; slowest delivery {slowest:?}");

    // The stalled phone was really stalled: the hub dropped it as a slow consumer.
    let http = reqwest::Client::new();
    let metrics_url = format!("{}/metrics", hub.http());
    eventually(Duration::from_secs(30), "slow consumer drop", || {
        let (http, url) = (http.clone(), metrics_url.clone());
        async move {
            let text = http.get(url).send().await.unwrap().text().await.unwrap();
            text.lines()
                .any(|l| l.starts_with("gridcast_slow_consumer_drops_total ") && !l.ends_with(" 0"))
        }
    })
    .await;
    // Its session ends once its writer gives up on the stalled socket (close frame
    // attempt bounded by 1 s), then it leaves presence.
    eventually(
        Duration::from_secs(10),
        "stalled phone leaves presence",
        || {
            let console = console.clone();
            async move { console.presence("", false).await.unwrap().online == 999 }
        },
    )
    .await;
    let presence = console.presence("", true).await.unwrap();
    assert_eq!(presence.online, 999);
    assert!(presence.leads.unwrap().iter().all(|l| l.id != "STALLED"));
    drop(stalled);
    hub.stop().await;
}
