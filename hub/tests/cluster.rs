//! Cluster mode on a real `redis-server` per test (free loopback port, AOF with
//! `appendfsync always`): fan-out across nodes, a node killed with -9, Redis killed and
//! restarted mid-incident, and an activation whose pub/sub message is lost.

// Test harnesses spawn and wait freely; the hub's conventions (hub/clippy.toml) are
// for the hub itself.
#![allow(clippy::disallowed_methods)]

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use gridcast_clients::ClientError;
use gridcast_clients::console::ConsoleClient;
use gridcast_clients::lead::LeadClient;
use gridcast_hub::auth::TokenRole;
use gridcast_hub::cluster::{HEARTBEAT, PRESENCE_TTL};
use gridcast_protocol::Status;
use gridcast_protocol::frame::{ClientFrame, ServerFrame};
use gridcast_protocol::model::Response;
use gridcast_protocol::registry::{AssignmentDoc, RegistryDoc, StaffDoc};
use support::redis::RedisServer;
use support::*;

const FRAME_WAIT: Duration = Duration::from_secs(15);

async fn node(name: &str, redis: &RedisServer, registry: Option<RegistryDoc>) -> TestHub {
    node_via(name, redis, redis.url(), registry).await
}

/// A node that reaches `redis` at `url` (directly, or through a proxy).
async fn node_via(
    name: &str,
    redis: &RedisServer,
    url: String,
    registry: Option<RegistryDoc>,
) -> TestHub {
    let id = name.to_owned();
    let hub = TestHub::start(
        &format!("cluster-{}-{name}", redis.port),
        registry,
        move |c| {
            c.redis = Some(url);
            c.node_id = Some(id);
        },
    )
    .await;
    ready_is(&hub.http(), true, Duration::from_secs(20)).await;
    hub
}

/// Connects lead `id` to `ws` and reads its sync.
async fn lead(ws: &str, id: &str) -> (LeadClient, Vec<ServerFrame>) {
    let (mut c, _) = LeadClient::connect(ws, &lead_token(id)).await.unwrap();
    let sync = tokio::time::timeout(FRAME_WAIT, c.sync())
        .await
        .expect("sync in time")
        .unwrap();
    (c, sync)
}

/// The next incident frame with this id: its `rev` and the lead's own status.
async fn incident(c: &mut LeadClient, id: &str) -> (u64, Status) {
    loop {
        let f = tokio::time::timeout(FRAME_WAIT, c.next())
            .await
            .unwrap_or_else(|_| panic!("incident {id} in time"))
            .unwrap();
        if let ServerFrame::Incident { incident, me } = f
            && incident.id == id
        {
            return (incident.rev, me.unwrap().status);
        }
    }
}

fn ack(incident: &str, n: usize) -> ClientFrame {
    ClientFrame::Ack {
        incident: incident.into(),
        response: Response::Accept,
        note: None,
        reference: Some(format!("a{n}")),
    }
}

fn operator(hub: &TestHub) -> ConsoleClient {
    ConsoleClient::new(&hub.http(), &token("op", TokenRole::Operator, ""))
}

/// Node A in this process and node K as a real child process (to kill or stop), both
/// on `redis`, with every person of `doc` connected: even ones to A, odd ones to K (with
/// their ids); once presence counts them all.
async fn node_and_child(
    redis: &RedisServer,
    doc: &RegistryDoc,
    k_dir: &str,
) -> (
    TestHub,
    tokio::process::Child,
    Vec<LeadClient>,
    Vec<(String, LeadClient)>,
    ConsoleClient,
) {
    let a = node("a", redis, Some(doc.clone())).await;
    let k_port = free_port();
    let k_dir = tmp_dir(k_dir);
    let k = spawn_hub(
        k_port,
        &[
            "--redis".as_ref(),
            redis.url().as_ref(),
            "--node-id".as_ref(),
            "k".as_ref(),
            "--data-dir".as_ref(),
            k_dir.as_os_str(),
        ],
    )
    .await;
    let k_ws = format!("ws://127.0.0.1:{k_port}/v1/lead/ws");
    let mut on_a = Vec::new();
    let mut on_k = Vec::new();
    for (i, p) in doc.staff.iter().enumerate() {
        if i % 2 == 0 {
            on_a.push(lead(&a.ws_url(), &p.id).await.0);
        } else {
            on_k.push((p.id.clone(), lead(&k_ws, &p.id).await.0));
        }
    }
    let ops = operator(&a);
    let all = doc.staff.len();
    eventually(Duration::from_secs(5), "presence of both nodes", || {
        let ops = ops.clone();
        async move { ops.presence("", false).await.unwrap().online == all }
    })
    .await;
    (a, k, on_a, on_k, ops)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_deliver_to_every_recipient_and_agree_on_counts() {
    let redis = RedisServer::start("three").await;
    let doc = city(300);
    // A seeds the cluster's registry; B and C start without one and load it from Redis.
    let nodes = [
        node("a", &redis, Some(doc.clone())).await,
        node("b", &redis, None).await,
        node("c", &redis, None).await,
    ];
    let mut leads = Vec::new();
    for (i, p) in doc.staff.iter().enumerate() {
        let (c, sync) = lead(&nodes[i % 3].ws_url(), &p.id).await;
        assert!(sync.is_empty());
        leads.push(c);
    }
    // Every node sees the whole cluster's presence.
    for n in &nodes {
        let ops = operator(n);
        eventually(Duration::from_secs(5), "cluster presence", || {
            let ops = ops.clone();
            async move { ops.presence("", false).await.unwrap().online == 300 }
        })
        .await;
    }

    // Node C's console stream, opened before the activation.
    let sse = reqwest::Client::new()
        .get(format!("{}/v1/console/events", nodes[2].http()))
        .bearer_auth(token("op", TokenRole::Operator, ""))
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 200);

    // The first lead (on A) also has a second phone, on C.
    let (mut second_phone, _) = lead(&nodes[2].ws_url(), &doc.staff[0].id).await;

    let created = operator(&nodes[0])
        .activate(&activation("Flood", &["330106"], &[]))
        .await
        .unwrap();
    assert_eq!(created.recipients, 300);
    assert_eq!(created.online, 300, "online counts every node's sessions");
    assert_eq!(
        incident(&mut second_phone, &created.id).await,
        (1, Status::Pending)
    );
    for c in &mut leads {
        assert_eq!(incident(c, &created.id).await, (1, Status::Pending));
    }
    for (n, c) in leads.iter_mut().enumerate() {
        let (res, _) = c.request(&ack(&created.id, n)).await.unwrap();
        res.unwrap();
    }
    let last_ack = Instant::now();
    // The answer given on A reaches the same lead's phone on C.
    assert_eq!(
        incident(&mut second_phone, &created.id).await,
        (1, Status::Accepted)
    );
    for n in &nodes {
        let ops = operator(n);
        let id = created.id.clone();
        eventually(Duration::from_secs(1), "counts agree on every node", || {
            let (ops, id) = (ops.clone(), id.clone());
            async move { ops.incident(&id).await.unwrap().counts.accepted == 300 }
        })
        .await;
    }
    eprintln!(
        "all 3 nodes count 300 accepted {:?} after the last ack",
        last_ack.elapsed()
    );

    // C's console showed the new incident (issued on A) and cluster-wide progress.
    let mut sse = sse;
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !(text.contains("event: incident") && text.contains("\"accepted\":300")) {
        let chunk = tokio::time::timeout_at(deadline, sse.chunk())
            .await
            .expect("console events on C in time")
            .unwrap()
            .expect("stream open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }

    // A registry change made through B reaches C without a restart.
    let mut doc2 = doc.clone();
    doc2.staff.push(StaffDoc {
        id: "NEW-LEAD".into(),
        name: "New".into(),
        phone: "13900000000".into(),
        work_contact: None,
        assignments: vec![AssignmentDoc {
            grid: doc.staff[0].assignments[0].grid.clone(),
            role: "grid_lead".into(),
        }],
    });
    let admin = ConsoleClient::new(&nodes[1].http(), &admin_token());
    let _: serde_json::Value = admin
        .send_json(reqwest::Method::PUT, "/v1/registry", &doc2)
        .await
        .unwrap();
    let ws_c = nodes[2].ws_url();
    eventually(Duration::from_secs(5), "C knows NEW-LEAD", || {
        let ws = ws_c.clone();
        async move {
            LeadClient::connect(&ws, &lead_token("NEW-LEAD"))
                .await
                .is_ok()
        }
    })
    .await;

    for n in nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_leads_resync_elsewhere_and_leave_presence_in_bound() {
    let redis = RedisServer::start("kill").await;
    let doc = city(120);
    // K is a real process, to be killed with SIGKILL.
    let (a, mut k, mut on_a, mut on_k, ops) = node_and_child(&redis, &doc, "cluster-k").await;
    let created = ops
        .activate(&activation("Gas leak", &["330106"], &[]))
        .await
        .unwrap();
    assert_eq!((created.recipients, created.online), (120, 120));
    for c in &mut on_a {
        incident(c, &created.id).await;
    }
    // K's leads: a third accept, a third only confirm receipt, a third do nothing.
    let mut expected = HashMap::new();
    for (n, (id, c)) in on_k.iter_mut().enumerate() {
        assert_eq!(incident(c, &created.id).await, (1, Status::Pending));
        let (frame, status) = match n % 3 {
            0 => (ack(&created.id, n), Status::Accepted),
            1 => (
                ClientFrame::Receipt {
                    incident: created.id.clone(),
                    rev: 1,
                    reference: Some(format!("r{n}")),
                },
                Status::Delivered,
            ),
            _ => {
                expected.insert(id.clone(), Status::Pending);
                continue;
            }
        };
        c.request(&frame).await.unwrap().0.unwrap();
        expected.insert(id.clone(), status);
    }

    k.kill().await.unwrap();
    let killed = Instant::now();
    let bound = PRESENCE_TTL + HEARTBEAT + Duration::from_secs(1);
    eventually(bound, "the dead node's leads leave presence", || {
        let ops = ops.clone();
        async move { ops.presence("", false).await.unwrap().online == 60 }
    })
    .await;
    eprintln!(
        "dead node's 60 leads left presence {:?} after kill -9 (documented bound {:?})",
        killed.elapsed(),
        PRESENCE_TTL + HEARTBEAT
    );

    // They reconnect to A; the sync carries the incident with their own status.
    let mut moved = Vec::new();
    for (id, old) in on_k {
        drop(old);
        let (c, sync) = lead(&a.ws_url(), &id).await;
        let [ServerFrame::Incident { incident, me }] = sync.as_slice() else {
            panic!("{id}: sync {sync:?}");
        };
        assert_eq!(incident.id, created.id);
        assert_eq!(me.as_ref().unwrap().status, expected[&id], "{id}");
        moved.push(c);
    }
    assert_eq!(ops.presence("", false).await.unwrap().online, 120);
    let detail = ops.incident(&created.id).await.unwrap();
    assert_eq!((detail.counts.accepted, detail.counts.delivered), (20, 20));
    a.stop().await;
}

/// How many nodes listen on a lead's channel.
async fn listening_for(redis: &RedisServer, lead: &str) -> i64 {
    let client = ::redis::Client::open(redis.url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let (_, n): (String, i64) = ::redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(format!("gc:l:{lead}"))
        .query_async(&mut c)
        .await
        .unwrap();
    n
}

/// An ack's new status goes on its lead's channel, which only the nodes holding a
/// session of that lead listen on: no grid channel carries it, so a node with other
/// sessions in the grid does no work for it. It names its incident; a node that never
/// had the incident on the bus (its phone read it in its sync) reads the meta once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acks_status_goes_only_to_the_nodes_holding_a_device_of_its_lead() {
    let redis = RedisServer::start("by-lead").await;
    let doc = city(10);
    let nodes = [
        node("a", &redis, Some(doc.clone())).await,
        node("b", &redis, None).await,
        node("c", &redis, None).await,
    ];
    let (x, y, w) = (
        doc.staff[0].id.as_str(),
        doc.staff[1].id.as_str(),
        doc.staff[2].id.as_str(),
    );
    let (mut w_on_a, _) = lead(&nodes[0].ws_url(), w).await;
    let (mut x_on_a, _) = lead(&nodes[0].ws_url(), x).await;
    let (mut y_on_b, _) = lead(&nodes[1].ws_url(), y).await;
    assert_eq!(listening_for(&redis, x).await, 1, "only A listens for {x}");
    assert_eq!(listening_for(&redis, y).await, 1, "only B listens for {y}");
    // X's second phone, on B: B listens for X too before the phone's sync is read.
    let (mut x_on_b, _) = lead(&nodes[1].ws_url(), x).await;
    assert_eq!(listening_for(&redis, x).await, 2);

    // Everything the nodes publish on grid and lead channels, in order.
    let watcher = ::redis::Client::open(redis.url()).unwrap();
    let mut pubsub = watcher.get_async_pubsub().await.unwrap();
    pubsub.psubscribe("gc:[gl]:*").await.unwrap();
    let mut published = pubsub.on_message();

    let created = operator(&nodes[0])
        .activate(&activation("Flood", &["330106"], &[]))
        .await
        .unwrap();
    for c in [&mut x_on_a, &mut x_on_b, &mut y_on_b] {
        assert_eq!(incident(c, &created.id).await, (1, Status::Pending));
    }
    x_on_a
        .request(&ack(&created.id, 1))
        .await
        .unwrap()
        .0
        .unwrap();
    // The answer given on A reaches X's phone on B.
    assert_eq!(
        incident(&mut x_on_b, &created.id).await,
        (1, Status::Accepted)
    );
    y_on_b
        .request(&ack(&created.id, 2))
        .await
        .unwrap()
        .0
        .unwrap();

    let mut channels = Vec::new();
    let wanted = [format!("gc:l:{x}"), format!("gc:l:{y}")];
    while !wanted.iter().all(|w| channels.contains(w)) {
        let m = tokio::time::timeout(FRAME_WAIT, published.next())
            .await
            .unwrap_or_else(|_| panic!("both statuses published in time; saw {channels:?}"))
            .unwrap();
        channels.push(m.get_channel_name().to_owned());
    }
    let first_lead = channels
        .iter()
        .position(|c| c.starts_with("gc:l:"))
        .unwrap();
    assert!(
        channels[..first_lead]
            .iter()
            .all(|c| c.starts_with("gc:g:")),
        "the activation goes by grid: {channels:?}"
    );
    assert!(
        channels[first_lead..]
            .iter()
            .all(|c| c.starts_with("gc:l:")),
        "acks go by lead, never on a grid channel: {channels:?}"
    );
    drop(published);

    // W's second phone comes to C after the activation: C had no session at the
    // issue, so it has the incident only from Redis.
    assert_eq!(
        incident(&mut w_on_a, &created.id).await,
        (1, Status::Pending)
    );
    let (mut w_on_c, sync) = lead(&nodes[2].ws_url(), w).await;
    assert!(
        sync.iter().any(
            |f| matches!(f, ServerFrame::Incident { incident, .. } if incident.id == created.id)
        ),
        "the sync of W's phone on C has the incident"
    );
    w_on_a
        .request(&ack(&created.id, 3))
        .await
        .unwrap()
        .0
        .unwrap();
    assert_eq!(
        incident(&mut w_on_c, &created.id).await,
        (1, Status::Accepted),
        "C shows W's answer given on A"
    );

    // The second phone hangs up: B stops listening for X.
    drop(x_on_b);
    let r = &redis;
    eventually(
        Duration::from_secs(5),
        "B leaves X's channel",
        || async move { listening_for(r, x).await == 1 },
    )
    .await;
    for n in nodes {
        n.stop().await;
    }
}

/// One phone acking until it gets `ok`, as phones do (retry on `unavailable`).
async fn ack_until_ok(
    mut c: LeadClient,
    incident: String,
    n: usize,
    refusals: &AtomicUsize,
) -> (LeadClient, u32) {
    let mut tries = 0;
    loop {
        tries += 1;
        match c.request(&ack(&incident, n)).await.unwrap().0 {
            Ok(()) => return (c, tries),
            Err(ClientError::Hub { code, .. }) if code == "unavailable" => {
                refusals.fetch_add(1, SeqCst);
                // A phone's retry back-off, not test synchronisation.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("ack refused: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_mid_incident_loses_no_ok_and_delivers_after() {
    let mut redis = RedisServer::start("restart").await;
    let doc = city(200);
    let nodes = [
        node("a", &redis, Some(doc.clone())).await,
        node("b", &redis, None).await,
    ];
    let mut leads = Vec::new();
    for (i, p) in doc.staff.iter().enumerate() {
        leads.push(lead(&nodes[i % 2].ws_url(), &p.id).await.0);
    }
    let created = operator(&nodes[0])
        .activate(&activation("Fire", &["330106"], &[]))
        .await
        .unwrap();
    assert_eq!(created.recipients, 200);
    for c in &mut leads {
        incident(c, &created.id).await;
    }
    // Four phones at a time ack, each retrying until `ok`, so that acks keep arriving
    // before, during and after the outage.
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    let queue = Arc::new(std::sync::Mutex::new(
        leads.into_iter().enumerate().collect::<Vec<_>>(),
    ));
    let refusals = Arc::new(AtomicUsize::new(0));
    for _ in 0..4 {
        let (tx, id, queue) = (done_tx.clone(), created.id.clone(), queue.clone());
        let refusals = refusals.clone();
        tokio::spawn(async move {
            loop {
                let Some((n, c)) = queue.lock().unwrap().pop() else {
                    return;
                };
                let _ = tx.send(ack_until_ok(c, id.clone(), n, &refusals).await);
            }
        });
    }
    let mut oked = Vec::new();
    while oked.len() < 50 {
        oked.push(done_rx.recv().await.unwrap());
    }
    redis.kill().await;
    let killed_at = oked.len();
    ready_is(&nodes[0].http(), false, Duration::from_secs(10)).await;
    // Redis stays down until phones have been told `unavailable` (within the 3 s
    // command timeout): the outage is one that acks really meet.
    eventually(
        Duration::from_secs(15),
        "an ack refused during the outage",
        || {
            let n = refusals.load(SeqCst);
            async move { n > 0 }
        },
    )
    .await;
    redis.restart().await;
    for n in &nodes {
        ready_is(&n.http(), true, Duration::from_secs(20)).await;
    }
    while oked.len() < 200 {
        let got = tokio::time::timeout(Duration::from_secs(60), done_rx.recv())
            .await
            .expect("every phone gets its ok after Redis is back");
        oked.push(got.unwrap());
    }
    let retried = oked.iter().filter(|(_, t)| *t > 1).count();
    let detail = operator(&nodes[1]).incident(&created.id).await.unwrap();
    eprintln!(
        "ok'd before kill: {killed_at}; phones that had to retry: {retried}; accepted after restart: {}",
        detail.counts.accepted
    );
    assert_eq!(
        detail.counts.accepted, 200,
        "every ack answered ok is counted"
    );
    assert!(retried > 0, "some acks met the outage and were retried");

    // A new activation reaches every online recipient on both nodes.
    let second = operator(&nodes[1])
        .activate(&activation("Fire spreads", &["330106"], &[]))
        .await
        .unwrap();
    assert_eq!((second.recipients, second.online), (200, 200));
    for (c, _) in &mut oked {
        incident(c, &second.id).await;
    }
    for n in nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_activation_issued_just_before_a_redis_outage_reaches_the_leads_after_resync() {
    let mut redis = RedisServer::start("outage").await;
    let proxy = support::proxy::FreezingProxy::start(redis.port).await;
    let doc = city(100);
    let a = node("a", &redis, Some(doc.clone())).await;
    let b = node_via("b", &redis, proxy.url(), None).await;
    let mut leads = Vec::new();
    for p in &doc.staff {
        leads.push(lead(&b.ws_url(), &p.id).await.0);
    }
    let resent_before = metric(&b.http(), "gridcast_cluster_resent_total").await;
    // B's link to Redis goes quiet first (as it does when Redis is failing), so the
    // activation A records and publishes now is surely lost for B ...
    proxy.freeze();
    let created = operator(&a)
        .activate(&activation("Chemical leak", &["330106"], &[]))
        .await
        .unwrap();
    assert_eq!(created.recipients, 100);
    // ... then Redis is down, and back (the AOF has the activation).
    redis.kill().await;
    redis.restart().await;
    for c in &mut leads {
        assert_eq!(incident(c, &created.id).await, (1, Status::Pending));
    }
    let resent = metric(&b.http(), "gridcast_cluster_resent_total").await - resent_before;
    assert!(
        resent >= 100,
        "B's leads got it from B's resync ({resent} re-sent)"
    );
    ready_is(&a.http(), true, Duration::from_secs(20)).await;
    ready_is(&b.http(), true, Duration::from_secs(20)).await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_that_dies_silently_is_noticed_by_its_probe_and_resynced() {
    let redis = RedisServer::start("silent").await;
    let proxy = support::proxy::FreezingProxy::start(redis.port).await;
    let doc = city(60);
    let a = node("a", &redis, Some(doc.clone())).await;
    // B reaches Redis through the proxy.
    let b = node_via("b", &redis, proxy.url(), None).await;
    let mut leads = Vec::new();
    for p in &doc.staff {
        leads.push(lead(&b.ws_url(), &p.id).await.0);
    }
    let resent_before = metric(&b.http(), "gridcast_cluster_resent_total").await;
    // Every connection of B now looks open and carries nothing.
    proxy.freeze();
    let created = operator(&a)
        .activate(&activation("Dam alert", &["330106"], &[]))
        .await
        .unwrap();
    let frozen = Instant::now();
    ready_is(&b.http(), false, Duration::from_secs(10)).await;
    eprintln!(
        "B noticed its dead subscription after {:?}",
        frozen.elapsed()
    );
    for c in &mut leads {
        assert_eq!(incident(c, &created.id).await, (1, Status::Pending));
    }
    eprintln!(
        "B's leads had the incident {:?} after the freeze",
        frozen.elapsed()
    );
    ready_is(&b.http(), true, Duration::from_secs(20)).await;
    let resent = metric(&b.http(), "gridcast_cluster_resent_total").await - resent_before;
    assert!(resent >= 60, "delivered by B's resync ({resent} re-sent)");
    a.stop().await;
    b.stop().await;
}

/// Issue 15's data-path hole: the issuing node records an activation, then dies before
/// its publish reaches Redis (its `PUBLISH` to the grid channels is swallowed by a proxy,
/// then the node is killed with SIGKILL). The outbox entry written with the record lets
/// another node finish the fan-out: every phone on the other nodes has it within 5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_between_the_record_and_the_publish_loses_no_activation() {
    let redis = RedisServer::start("outbox").await;
    let doc = city(60);
    let b = node("b", &redis, Some(doc.clone())).await;
    let c = node("c", &redis, None).await;
    let proxy = support::proxy::FreezingProxy::start(redis.port).await;
    let a_port = free_port();
    let a_dir = tmp_dir("cluster-outbox-a");
    let mut a = spawn_hub(
        a_port,
        &[
            "--redis".as_ref(),
            proxy.url().as_ref(),
            "--node-id".as_ref(),
            "a".as_ref(),
            "--data-dir".as_ref(),
            a_dir.as_os_str(),
        ],
    )
    .await;
    ready_is(
        &format!("http://127.0.0.1:{a_port}"),
        true,
        Duration::from_secs(20),
    )
    .await;
    let a_ws = format!("ws://127.0.0.1:{a_port}/v1/lead/ws");
    let mut elsewhere = Vec::new();
    let mut on_a = Vec::new();
    for (i, p) in doc.staff.iter().enumerate() {
        match i % 3 {
            0 => on_a.push(lead(&a_ws, &p.id).await.0),
            1 => elsewhere.push(lead(&b.ws_url(), &p.id).await.0),
            _ => elsewhere.push(lead(&c.ws_url(), &p.id).await.0),
        }
    }
    let ops_b = operator(&b);
    eventually(Duration::from_secs(10), "all 60 online", || {
        let ops = ops_b.clone();
        async move { ops.presence("", false).await.unwrap().online == 60 }
    })
    .await;

    // A records, then its publish to the grid channels never reaches Redis.
    proxy.freeze_on(&[b"PUBLISH", b"gc:g:"]);
    let ops_a = ConsoleClient::new(
        &format!("http://127.0.0.1:{a_port}"),
        &token("op", TokenRole::Operator, ""),
    );
    let _issuing = tokio::spawn(async move {
        let _ = ops_a
            .activate(&activation("Chemical plume", &["330106"], &[]))
            .await;
    });
    // Recorded: the shared store has it (read through B).
    let deadline = Instant::now() + Duration::from_secs(10);
    let id = loop {
        let list: serde_json::Value = ops_b.get("/v1/incidents?state=active").await.unwrap();
        if let Some(i) = list["incidents"][0]["incident"]["id"].as_str() {
            break i.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "the activation was never recorded"
        );
        tokio::task::yield_now().await;
    };
    a.kill().await.unwrap();
    let killed = Instant::now();
    for phone in &mut elsewhere {
        assert_eq!(incident(phone, &id).await, (1, Status::Pending));
    }
    let took = killed.elapsed();
    eprintln!("every phone on B and C had the activation {took:?} after the issuing node died");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    b.stop().await;
    c.stop().await;
}

/// Kubernetes' drain (deploy/k8s): a node told SIGTERM in the middle of a fan-out
/// closes its sessions with 1001 (going away) and exits cleanly; its phones reconnect
/// to the other node, whose sync carries the activation; every ack, on either node,
/// is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopped_with_sigterm_mid_fanout_loses_nothing_and_its_phones_move() {
    let redis = RedisServer::start("drain").await;
    let doc = city(200);
    let (a, mut k, mut on_a, on_k, ops) = node_and_child(&redis, &doc, "cluster-drain-k").await;
    let created = ops
        .activate(&activation("Gas leak", &["330106"], &[]))
        .await
        .unwrap();
    // SIGTERM at once: K's fan-out is under way.
    let pid = k.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let mut closes = Vec::new();
    let mut acked_on_k = 0;
    for (n, (id, mut c)) in on_k.into_iter().enumerate() {
        // Until the incident comes (then ack it here) or the session is closed.
        let acked = loop {
            match tokio::time::timeout(FRAME_WAIT, c.next())
                .await
                .expect("a frame or a close")
            {
                Ok(ServerFrame::Incident { incident, .. }) if incident.id == created.id => {
                    match c.request(&ack(&created.id, n)).await {
                        Ok((answer, _)) => break answer.is_ok(),
                        Err(ClientError::Closed(code)) => {
                            closes.push(code);
                            break false;
                        }
                        Err(e) => panic!("{id}: {e}"),
                    }
                }
                Ok(_) => {}
                Err(ClientError::Closed(code)) => {
                    closes.push(code);
                    break false;
                }
                Err(e) => panic!("{id}: {e}"),
            }
        };
        if acked {
            acked_on_k += 1;
            continue;
        }
        // The Service sends it to the other node; the sync has the activation.
        let (mut moved, sync) = lead(&a.ws_url(), &id).await;
        assert!(
            sync.iter().any(
                |f| matches!(f, ServerFrame::Incident { incident, .. } if incident.id == created.id)
            ),
            "{id}: sync {sync:?}"
        );
        moved
            .request(&ack(&created.id, n))
            .await
            .unwrap()
            .0
            .unwrap();
    }
    let status = tokio::time::timeout(Duration::from_secs(15), k.wait())
        .await
        .expect("K drains and exits")
        .unwrap();
    assert!(status.success(), "K exits cleanly: {status:?}");
    assert!(
        closes.iter().all(|&c| c == 1001),
        "sessions are told to go elsewhere: {closes:?}"
    );
    for (n, c) in on_a.iter_mut().enumerate() {
        incident(c, &created.id).await;
        c.request(&ack(&created.id, 1000 + n))
            .await
            .unwrap()
            .0
            .unwrap();
    }
    eprintln!(
        "{acked_on_k} acks ok'd by K before it stopped, {} moved",
        closes.len()
    );
    let detail = ops.incident(&created.id).await.unwrap();
    assert_eq!(
        detail.counts.accepted, 200,
        "every ack kept: {:?}",
        detail.counts
    );
    a.stop().await;
}
