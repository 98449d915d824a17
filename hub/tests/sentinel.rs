//! Redis behind Sentinel, with real processes: a master, two replicas and a sentinel.
//! A hub on `redis+sentinel://…/gridcast` (so `--redis-min-replicas 1`) takes acks from
//! a hundred phones while the master is SIGKILLed: the sentinel promotes a replica,
//! the hub finds the new master by itself and is ready again, and no ack it answered
//! `ok` is missing from the new master.

// Test harnesses spawn and wait freely; the hub's conventions (hub/clippy.toml) are
// for the hub itself.
#![allow(clippy::disallowed_methods)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use gridcast_clients::lead::LeadClient;
use gridcast_protocol::frame::{ClientFrame, ServerFrame};
use gridcast_protocol::model::Response;
use support::redis::{RedisServer, Sentinel};
use support::*;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_killed_under_acks_loses_no_ok_and_the_hub_follows_the_failover() {
    let mut master = RedisServer::start("sentinel-master").await;
    let port = master.port.to_string();
    // Two replicas: after a failover one is left to hold every write (WAIT 1).
    let replicas = [
        RedisServer::start_with("sentinel-replica1", &["--replicaof", "127.0.0.1", &port]).await,
        RedisServer::start_with("sentinel-replica2", &["--replicaof", "127.0.0.1", &port]).await,
    ];
    for r in &replicas {
        eventually(WAIT, "the replica in sync", || async {
            format!("{:?}", r.cmd(&["INFO", "replication"]).await).contains("master_link_status:up")
        })
        .await;
    }
    let sentinel = Sentinel::start("s", master.port).await;
    eventually(WAIT, "the sentinel knows both replicas", || async {
        sentinel.replicas().await == 2
    })
    .await;
    let url = format!("redis+sentinel://127.0.0.1:{}/gridcast", sentinel.port);
    let doc = city(100);
    let hub = TestHub::start("sentinel-hub", Some(doc.clone()), move |c| {
        c.redis = Some(url);
        c.node_id = Some("a".into());
    })
    .await;
    ready_is(&hub.http(), true, WAIT).await;
    let mut phones = Vec::new();
    for p in &doc.staff {
        let (mut c, _) = LeadClient::connect(&hub.ws_url(), &lead_token(&p.id))
            .await
            .unwrap();
        c.sync().await.unwrap();
        phones.push((p.id.clone(), c));
    }
    let created = hub
        .console("")
        .activate(&activation("Flood", &["330106"], &[]))
        .await
        .unwrap();
    assert_eq!(created.recipients, 100);
    // Every phone acks until it gets its ok: half at once; then the other half, and
    // the master dies while their acks are in flight.
    let okd = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let (wave2, _) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for (n, (id, mut c)) in phones.into_iter().enumerate() {
        let (okd, refused, inc, http) =
            (okd.clone(), refused.clone(), created.id.clone(), hub.http());
        let mut go = wave2.subscribe();
        tasks.push(tokio::spawn(async move {
            loop {
                let f = tokio::time::timeout(WAIT, c.next()).await.unwrap().unwrap();
                if matches!(&f, ServerFrame::Incident { incident, .. } if incident.id == inc) {
                    break;
                }
            }
            if n >= 50 {
                go.wait_for(|g| *g).await.unwrap();
            }
            for attempt in 0.. {
                let ack = ClientFrame::Ack {
                    incident: inc.clone(),
                    response: Response::Accept,
                    note: None,
                    reference: Some(format!("a{n}-{attempt}")),
                };
                match c.request(&ack).await.unwrap().0 {
                    Ok(_) => {
                        okd.fetch_add(1, SeqCst);
                        return id;
                    }
                    Err(e) => {
                        assert!(
                            matches!(&e, gridcast_clients::ClientError::Hub { code, .. } if code == "unavailable"),
                            "{e:?}"
                        );
                        refused.fetch_add(1, SeqCst);
                        // Try again once the hub says it is ready.
                        ready_is(&http, true, WAIT).await;
                    }
                }
            }
            unreachable!()
        }));
    }
    eventually(WAIT, "the first half ok'd", || async {
        okd.load(SeqCst) >= 50
    })
    .await;
    wave2.send_replace(true);
    master.kill().await;
    let mut acked = Vec::new();
    for t in tasks {
        acked.push(tokio::time::timeout(WAIT, t).await.unwrap().unwrap());
    }
    eprintln!(
        "{} acks ok'd, {} refused while the master was away",
        okd.load(SeqCst),
        refused.load(SeqCst)
    );
    // A replica is the master now, and the hub is ready on it by itself.
    let promoted = sentinel.master().await.unwrap();
    let new_master = replicas
        .iter()
        .find(|r| r.port == promoted)
        .expect("a replica was promoted");
    ready_is(&hub.http(), true, WAIT).await;
    // Every ok'd ack is on the new master.
    let detail = hub.console("").incident(&created.id).await.unwrap();
    assert_eq!(detail.counts.accepted, 100, "{:?}", detail.counts);
    let stored = new_master
        .cmd(&["HGETALL", &format!("{{inc:{}}}:r", created.id)])
        .await;
    let text = format!("{stored:?}");
    assert_eq!(text.matches("accepted").count(), 100, "{text}");
    assert_eq!(acked.len(), 100);
    hub.stop().await;
}
