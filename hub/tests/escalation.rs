//! Escalation of missed acks with a 2-second window, on a clock the test moves: the
//! silent lead is re-notified and its grid lead escalated to, then the instructor, then
//! the console; an ack in between takes a lead out of the chain; the timeline lists
//! exactly those steps; a restart between two steps neither loses nor repeats one.

// Test harnesses spawn and wait freely; the hub's conventions (hub/clippy.toml) are
// for the hub itself.
#![allow(clippy::disallowed_methods)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use gridcast_clients::lead::LeadClient;
use gridcast_hub::clock::ManualClock;
use gridcast_protocol::frame::{ClientFrame, ServerFrame};
use gridcast_protocol::model::Response;
use support::*;

const WAIT: Duration = Duration::from_secs(15);

fn activation_2s() -> gridcast_protocol::api::CreateIncident {
    let mut a = activation(
        "Flood",
        &["330106004"],
        &["micro_lead", "part_time", "full_time"],
    );
    a.ack_within_s = Some(2);
    a
}

async fn phones(hub: &TestHub, ids: &[&str]) -> Vec<(String, LeadClient)> {
    let mut out = Vec::new();
    for id in ids {
        let (mut c, _) = LeadClient::connect(&hub.ws_url(), &lead_token(id))
            .await
            .unwrap();
        c.sync().await.unwrap();
        out.push((id.to_string(), c));
    }
    out
}

fn phone<'a>(all: &'a mut [(String, LeadClient)], id: &str) -> &'a mut LeadClient {
    &mut all.iter_mut().find(|(i, _)| i == id).unwrap().1
}

async fn next(c: &mut LeadClient) -> ServerFrame {
    tokio::time::timeout(WAIT, c.next())
        .await
        .expect("a frame in time")
        .unwrap()
}

/// The timeline's escalation steps: (kind, lead, detail prefix).
async fn steps(hub: &TestHub, id: &str) -> Vec<(String, Option<String>, String)> {
    hub.console("")
        .timeline(id)
        .await
        .unwrap()
        .events
        .into_iter()
        .filter(|e| e.kind == "escalated" || e.kind == "alerted")
        .map(|e| {
            let d = e.detail.unwrap_or_default();
            (e.kind, e.lead, d.split(':').next().unwrap_or("").to_owned())
        })
        .collect()
}

async fn wait_steps(hub: &TestHub, id: &str, n: usize) {
    eventually(
        WAIT,
        &format!("{n} escalation steps on the timeline"),
        || async { steps(hub, id).await.len() >= n },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_lead_is_renotified_then_escalated_to_its_grid_lead_instructor_and_console() {
    let clock = Arc::new(ManualClock::new(gridcast_hub::now_ms()));
    let hub = TestHub::start_in(
        tmp_dir("escalation"),
        Some(two_grid_city()),
        |_| {},
        clock.clone(),
    )
    .await;
    let mut all = phones(&hub, &["GL1", "IN1", "S1", "A1", "GL2", "IN2", "S2"]).await;
    let mut sse = console_stream(&hub.http()).await;
    let created = hub.console("").activate(&activation_2s()).await.unwrap();
    assert_eq!(created.recipients, 3, "S1, A1, S2");
    for id in ["S1", "A1", "S2"] {
        assert!(matches!(
            next(phone(&mut all, id)).await,
            ServerFrame::Incident { .. }
        ));
    }
    // A1 answers in time; S1 only confirms receipt (still silent).
    let ack = ClientFrame::Ack {
        incident: created.id.clone(),
        response: Response::Accept,
        note: None,
        reference: Some("a".into()),
    };
    phone(&mut all, "A1")
        .request(&ack)
        .await
        .unwrap()
        .0
        .unwrap();
    let receipt = ClientFrame::Receipt {
        incident: created.id.clone(),
        rev: 1,
        reference: Some("r".into()),
    };
    phone(&mut all, "S1")
        .request(&receipt)
        .await
        .unwrap()
        .0
        .unwrap();

    // The window passes: step 1.
    clock.advance(2_000);
    wait_steps(&hub, &created.id, 2).await;
    for (silent, lead) in [("S1", "GL1"), ("S2", "GL2")] {
        match next(phone(&mut all, silent)).await {
            ServerFrame::Incident { incident, me } => {
                assert_eq!(incident.id, created.id, "{silent} re-notified");
                assert!(me.is_some());
            }
            other => panic!("{silent}: {other:?}"),
        }
        match next(phone(&mut all, lead)).await {
            ServerFrame::Escalation {
                incident,
                lead: who,
                step,
                drill,
                ..
            } => {
                assert_eq!(
                    (incident.as_str(), who.as_str(), step, drill),
                    (created.id.as_str(), silent, 1, false)
                );
            }
            other => panic!("{lead}: {other:?}"),
        }
    }
    // S1 declines in between: it leaves the chain.
    let decline = ClientFrame::Ack {
        incident: created.id.clone(),
        response: Response::Decline,
        note: Some("on another call".into()),
        reference: Some("d".into()),
    };
    phone(&mut all, "S1")
        .request(&decline)
        .await
        .unwrap()
        .0
        .unwrap();

    clock.advance(2_000);
    wait_steps(&hub, &created.id, 3).await;
    match next(phone(&mut all, "IN2")).await {
        ServerFrame::Escalation { lead, step, .. } => assert_eq!((lead.as_str(), step), ("S2", 2)),
        other => panic!("IN2: {other:?}"),
    }
    clock.advance(2_000);
    wait_steps(&hub, &created.id, 4).await;
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !text.contains("\"step\":3") {
        let chunk = tokio::time::timeout_at(deadline, sse.chunk())
            .await
            .expect("the console alert")
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains("event: escalation"), "{text}");

    // Exactly those steps, in order.
    let got = steps(&hub, &created.id).await;
    let want = [
        ("escalated", Some("S1"), "step 1"),
        ("escalated", Some("S2"), "step 1"),
        ("escalated", Some("S2"), "step 2"),
        ("alerted", None, "step 3"),
    ];
    let got_ref: Vec<(&str, Option<&str>, &str)> = got
        .iter()
        .map(|(k, l, d)| (k.as_str(), l.as_deref(), d.as_str()))
        .collect();
    assert_eq!(got_ref, want);
    // Nobody else heard anything: a sentinel to everyone is their next frame.
    let sentinel = hub
        .console("")
        .activate(&activation("Sentinel", &["330106004"], &[]))
        .await
        .unwrap();
    clock.advance(60_000);
    for id in ["IN1", "A1", "GL1", "GL2", "IN2", "S1"] {
        match next(phone(&mut all, id)).await {
            ServerFrame::Incident { incident, .. } => assert_eq!(incident.id, sentinel.id, "{id}"),
            other => panic!("{id} got {other:?} before the sentinel"),
        }
    }
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_between_two_steps_neither_loses_nor_repeats_a_step() {
    let dir = tmp_dir("escalation-restart");
    let clock = Arc::new(ManualClock::new(gridcast_hub::now_ms()));
    let hub = TestHub::start_in(dir.clone(), Some(two_grid_city()), |_| {}, clock.clone()).await;
    let created = hub.console("").activate(&activation_2s()).await.unwrap();
    clock.advance(2_000);
    wait_steps(&hub, &created.id, 3).await; // step 1 for S1, A1, S2 (nobody answered)
    hub.stop().await;

    // Restarted on the same data: the next step is due one window later, once.
    let hub = TestHub::start_in(dir, Some(two_grid_city()), |_| {}, clock.clone()).await;
    let mut all = phones(&hub, &["IN1", "IN2"]).await;
    clock.advance(2_000);
    wait_steps(&hub, &created.id, 6).await;
    let got = steps(&hub, &created.id).await;
    let count = |prefix: &str| got.iter().filter(|(_, _, d)| d == prefix).count();
    assert_eq!((count("step 1"), count("step 2")), (3, 3), "{got:?}");
    for (id, want) in [("IN1", 2), ("IN2", 1)] {
        for _ in 0..want {
            assert!(matches!(
                next(phone(&mut all, id)).await,
                ServerFrame::Escalation { step: 2, .. }
            ));
        }
    }
    clock.advance(2_000);
    wait_steps(&hub, &created.id, 7).await;
    assert_eq!(
        steps(&hub, &created.id).await.len(),
        7,
        "step 3 once, nothing repeated"
    );
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_cluster_exactly_one_node_acts_on_each_step() {
    let redis = support::redis::RedisServer::start("escalation").await;
    let clock = Arc::new(ManualClock::new(gridcast_hub::now_ms()));
    let nodes = redis
        .cluster(
            "escalation",
            &["a", "b", "c"],
            two_grid_city(),
            clock.clone(),
            |_| {},
        )
        .await;
    // GL1 on node b, GL2 on node c; the activation on a.
    let (mut gl1, _) = LeadClient::connect(&nodes[1].ws_url(), &lead_token("GL1"))
        .await
        .unwrap();
    gl1.sync().await.unwrap();
    let (mut gl2, _) = LeadClient::connect(&nodes[2].ws_url(), &lead_token("GL2"))
        .await
        .unwrap();
    gl2.sync().await.unwrap();
    let created = nodes[0]
        .console("")
        .activate(&activation_2s())
        .await
        .unwrap();
    clock.advance(2_000);
    wait_steps(&nodes[1], &created.id, 3).await;
    // GL1 answers for S1 and A1 (both in G1), GL2 for S2: one frame each ...
    for (c, want) in [(&mut gl1, 2), (&mut gl2, 1)] {
        for _ in 0..want {
            assert!(matches!(
                next(c).await,
                ServerFrame::Escalation { step: 1, .. }
            ));
        }
    }
    // ... and no second copy from another node before a later sentinel.
    let sentinel = nodes[0]
        .console("")
        .activate(&activation("Sentinel", &["330106004"], &[]))
        .await
        .unwrap();
    for c in [&mut gl1, &mut gl2] {
        match next(c).await {
            ServerFrame::Incident { incident, .. } => assert_eq!(incident.id, sentinel.id),
            other => panic!("a second escalation: {other:?}"),
        }
    }
    let got = steps(&nodes[2], &created.id).await;
    assert_eq!(got.len(), 3, "three nodes ticking, each step once: {got:?}");
    for n in nodes {
        n.stop().await;
    }
}

/// The timeline's overdue-task steps: "T<n> step <k>".
async fn task_steps(hub: &TestHub, id: &str) -> Vec<String> {
    hub.console("")
        .timeline(id)
        .await
        .unwrap()
        .events
        .into_iter()
        .filter(|e| e.kind == "task_overdue")
        .map(|e| {
            let d = e.detail.unwrap_or_default();
            let head = d.split(':').next().unwrap_or("").to_owned();
            head.rsplit_once("-T")
                .map(|(_, t)| format!("T{t}"))
                .unwrap_or(head)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overdue_tasks_escalate_like_acks_until_done() {
    let clock = Arc::new(ManualClock::new(gridcast_hub::now_ms()));
    let mut doc = two_grid_city();
    doc.task_kinds = vec![gridcast_protocol::registry::TaskKind {
        id: "evacuation".into(),
        name: "Evacuation".into(),
    }];
    let hub = TestHub::start_in(tmp_dir("task-overdue"), Some(doc), |_| {}, clock.clone()).await;
    let mut all = phones(&hub, &["GL1", "IN1", "A1"]).await;
    let ops = hub.console("");
    let mut req = activation("Flood", &["330106004"], &[]);
    req.ack_within_s = Some(3_600);
    let created = ops.activate(&req).await.unwrap();
    let tasks = format!("/v1/incidents/{}/tasks", created.id);
    let mk = |assignee: serde_json::Value, due: u32| serde_json::json!({"kind": "evacuation", "title": "Carry Mrs Wang (room 302) out", "detail": "She is in a wheelchair", "assignee": assignee, "due_in_s": due});
    let t1: gridcast_protocol::api::CreatedTask = ops
        .send_json(
            reqwest::Method::POST,
            &tasks,
            &mk(serde_json::json!({"grid": G1}), 5),
        )
        .await
        .unwrap();
    let t2: gridcast_protocol::api::CreatedTask = ops
        .send_json(
            reqwest::Method::POST,
            &tasks,
            &mk(serde_json::json!({"lead": "S1"}), 10),
        )
        .await
        .unwrap();
    let accept = |task: &str, status: &str| -> ClientFrame {
        serde_json::from_value(serde_json::json!({
            "type": "task_update", "task": task, "status": status, "ref": "t"
        }))
        .unwrap()
    };
    phone(&mut all, "A1")
        .request(&accept(&t1.id, "accepted"))
        .await
        .unwrap()
        .0
        .unwrap();

    // T1 is due: step 1 sends it again to the grid (A1, GL1, IN1 …) and to its grid lead.
    clock.advance(5_000);
    eventually(WAIT, "T1 step 1", || async {
        task_steps(&hub, &created.id).await.len() == 1
    })
    .await;
    let overdue =
        |f: ServerFrame, id: &str| matches!(f, ServerFrame::Task { task } if task.id == id);
    loop {
        if overdue(next(phone(&mut all, "GL1")).await, &t1.id) {
            break;
        }
    }
    // A1 finishes T1: it leaves the chain. T2 (for S1, window 10 s) runs its course.
    phone(&mut all, "A1")
        .request(&accept(&t1.id, "done"))
        .await
        .unwrap()
        .0
        .unwrap();
    for (advance, n) in [(5_000, 2), (10_000, 3), (10_000, 4)] {
        clock.advance(advance);
        eventually(WAIT, &format!("{n} overdue steps"), || async {
            task_steps(&hub, &created.id).await.len() >= n
        })
        .await;
    }
    assert_eq!(
        task_steps(&hub, &created.id).await,
        ["T1 step 1", "T2 step 1", "T2 step 2", "T2 step 3"],
        "a done task stops; an open one goes to the grid lead, the instructor, the console"
    );
    // The instructor got T2 at step 2, without its text (T2 is S1's, not the
    // instructor's: kind, assignee, due time and status only).
    loop {
        if let ServerFrame::Task { task } = next(phone(&mut all, "IN1")).await
            && task.id == t2.id
        {
            assert_eq!(task.detail, "", "the task's text stays with its people");
            assert!(!task.title.contains("Wang"), "{}", task.title);
            assert!(task.title.contains("Evacuation"), "{}", task.title);
            break;
        }
    }
    hub.stop().await;
}
