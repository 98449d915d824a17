//! Acceptance 3: kill -9 of the hub process while acks stream in; after a restart every
//! ack that was answered `ok` is counted. The hub is a real child process.

// Test harnesses spawn and wait freely; the hub's conventions (hub/clippy.toml) are
// for the hub itself.
#![allow(clippy::disallowed_methods)]

mod support;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gridcast_clients::console::ConsoleClient;
use gridcast_clients::lead::LeadClient;
use gridcast_hub::auth::TokenRole;
use gridcast_protocol::frame::{ClientFrame, ServerFrame};
use gridcast_protocol::model::Response;
use support::*;
use tokio::process::Child;

async fn start_hub(dir: &std::path::Path, registry: &std::path::Path, port: u16) -> Child {
    spawn_hub(
        port,
        &[
            "--data-dir".as_ref(),
            dir.as_os_str(),
            "--registry".as_ref(),
            registry.as_os_str(),
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_answered_ok_survive_kill_9() {
    let dir = tmp_dir("crash");
    std::fs::create_dir_all(&dir).unwrap();
    let registry = dir.join("registry.json");
    let doc = city(400);
    std::fs::write(&registry, serde_json::to_vec(&doc).unwrap()).unwrap();
    let data = dir.join("data");
    let port = free_port();
    let mut child = start_hub(&data, &registry, port).await;
    let base = format!("http://127.0.0.1:{port}");
    let console = ConsoleClient::new(&base, &token("op", TokenRole::Operator, ""));
    let created = console
        .activate(&activation("Fire", &["330106"], &[]))
        .await
        .unwrap();
    assert_eq!(created.recipients, 400);

    // Every lead acks with a ref and retries until `ok`, as phones do; the oks are noted.
    let acked: Arc<Mutex<HashSet<String>>> = Arc::default();
    let url = format!("ws://127.0.0.1:{port}/v1/lead/ws");
    let mut tasks = Vec::new();
    for p in &doc.staff {
        let (id, url, acked, inc) = (p.id.clone(), url.clone(), acked.clone(), created.id.clone());
        tasks.push(tokio::spawn(async move {
            let Ok((mut c, _)) = LeadClient::connect(&url, &lead_token(&id)).await else {
                return;
            };
            if c.sync().await.is_err() {
                return;
            }
            let ack = ClientFrame::Ack {
                incident: inc,
                response: Response::Accept,
                note: None,
                reference: Some(id.clone()),
            };
            if c.send(&ack).await.is_err() {
                return;
            }
            while let Ok(f) = c.next().await {
                if let ServerFrame::Ok { reference } = f {
                    assert_eq!(reference, id);
                    acked.lock().unwrap().insert(id);
                    return;
                }
            }
        }));
    }
    // Kill once some, but not all, acks have been answered.
    eventually(Duration::from_secs(60), "first acks", || {
        let n = acked.lock().unwrap().len();
        async move { n >= 50 }
    })
    .await;
    child.start_kill().unwrap(); // SIGKILL
    child.wait().await.unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    let confirmed = acked.lock().unwrap().clone();
    assert!(confirmed.len() >= 50);

    let mut child = start_hub(&data, &registry, port).await;
    let accepted = console
        .recipients(&created.id, Some("accepted"))
        .await
        .unwrap()
        .recipients;
    let counted: HashSet<String> = accepted.into_iter().map(|r| r.lead).collect();
    let lost: Vec<&String> = confirmed.difference(&counted).collect();
    assert!(lost.is_empty(), "acks answered ok but lost: {lost:?}");
    let d = console.incident(&created.id).await.unwrap();
    assert_eq!(d.counts.accepted, counted.len());
    assert_eq!(d.counts.total(), 400);
    eprintln!(
        "ok'd before kill: {}, counted after restart: {}",
        confirmed.len(),
        counted.len()
    );

    // The restarted hub goes on: a new activation gets the next id.
    let next = console
        .activate(&activation("After", &[TOWN_A], &[]))
        .await
        .unwrap();
    assert_eq!(next.id, "INC-000002");
    child.start_kill().unwrap();
    child.wait().await.unwrap();
}
