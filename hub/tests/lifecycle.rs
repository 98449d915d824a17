//! Incident updates and close, on one embedded hub and across two cluster nodes: every
//! recipient gets each new `rev` and the closed state; acks after close are
//! `incident_closed`; a lead that connects later finds the closed incident in its sync.

// Test harnesses spawn and wait freely; the hub's conventions (hub/clippy.toml) are
// for the hub itself.
#![allow(clippy::disallowed_methods)]

mod support;

use std::time::Duration;

use gridcast_clients::ClientError;
use gridcast_clients::console::ConsoleClient;
use gridcast_clients::lead::LeadClient;
use gridcast_hub::auth::TokenRole;
use gridcast_protocol::frame::{ClientFrame, IncidentView, ServerFrame};
use gridcast_protocol::model::{IncidentState, Response};
use support::redis::RedisServer;
use support::*;

const WAIT: Duration = Duration::from_secs(15);

/// The next incident frame for `id` with at least `rev`.
async fn frame(c: &mut LeadClient, id: &str, rev: u64) -> IncidentView {
    loop {
        let f = tokio::time::timeout(WAIT, c.next())
            .await
            .expect("frame in time")
            .unwrap();
        if let ServerFrame::Incident { incident, .. } = f
            && incident.id == id
            && incident.rev >= rev
        {
            return incident;
        }
    }
}

fn ack(id: &str, r: &str) -> ClientFrame {
    ClientFrame::Ack {
        incident: id.into(),
        response: Response::Accept,
        note: None,
        reference: Some(r.into()),
    }
}

async fn hub_error(ops: &ConsoleClient, path: &str, body: serde_json::Value) -> (u16, String) {
    match ops
        .send_json::<serde_json::Value>(reqwest::Method::POST, path, &body)
        .await
    {
        Err(ClientError::Hub { status, code, .. }) => (status, code),
        other => panic!("{path}: expected an error, got {other:?}"),
    }
}

/// The whole scenario; `ws[i]` is where lead i connects, `api[0]`/`api[1]` are where
/// the operator updates and closes (different nodes in a cluster).
async fn update_and_close(
    api: [&str; 2],
    ws: &[String],
    doc: &gridcast_protocol::registry::RegistryDoc,
) {
    let ops = ConsoleClient::new(api[0], &token("op", TokenRole::Operator, ""));
    let ops2 = ConsoleClient::new(api[1], &token("op2", TokenRole::Operator, ""));
    let mut leads = Vec::new();
    for (i, p) in doc.staff.iter().take(10).enumerate() {
        let (mut c, _) = LeadClient::connect(&ws[i % ws.len()], &lead_token(&p.id))
            .await
            .unwrap();
        c.sync().await.unwrap();
        leads.push(c);
    }
    let created = ops
        .activate(&activation("Flood", &[TOWN_A], &[]))
        .await
        .unwrap();
    let recipients = created.recipients;
    // Only the first 10 staff are connected; those in town A got it.
    let mut mine = Vec::new();
    for (i, c) in leads.iter_mut().enumerate() {
        let p = &doc.staff[i];
        if p.assignments.iter().any(|a| a.grid.starts_with(TOWN_A)) {
            assert_eq!(frame(c, &created.id, 1).await.rev, 1);
            mine.push(i);
        }
    }
    assert!(mine.len() >= 3, "{mine:?}");
    let first = mine[0];
    leads[first]
        .request(&ack(&created.id, "a1"))
        .await
        .unwrap()
        .0
        .unwrap();

    // Update through one node: rev 2 with the new body reaches every recipient.
    let body = "Water rising on Wensan Road; use the school gym.";
    let detail: serde_json::Value = ops
        .send_json(
            reqwest::Method::POST,
            &format!("/v1/incidents/{}/updates", created.id),
            &serde_json::json!({ "body": body }),
        )
        .await
        .unwrap();
    assert_eq!(detail["incident"]["rev"], 2);
    for &i in &mine {
        let v = frame(&mut leads[i], &created.id, 2).await;
        assert_eq!(
            (v.rev, v.body.as_str(), v.state),
            (2, body, IncidentState::Active)
        );
    }

    // Bad closes change nothing.
    let close = format!("/v1/incidents/{}/close", created.id);
    assert_eq!(
        hub_error(&ops2, &close, serde_json::json!({ "reason": "" })).await,
        (400, "bad_request".into())
    );
    assert_eq!(
        hub_error(&ops2, &close, serde_json::json!({})).await,
        (400, "bad_request".into())
    );
    assert_eq!(
        hub_error(
            &ops2,
            "/v1/incidents/INC-999999/close",
            serde_json::json!({ "reason": "x" })
        )
        .await,
        (404, "not_found".into())
    );
    let outsider = ConsoleClient::new(api[1], &token("op3", TokenRole::Operator, TOWN_B));
    assert_eq!(
        hub_error(&outsider, &close, serde_json::json!({ "reason": "x" })).await,
        (404, "not_found".into()),
        "another jurisdiction cannot see it, let alone close it"
    );

    // Close through the other node: rev 3, closed, to every recipient.
    let closed: serde_json::Value = ops2
        .send_json(
            reqwest::Method::POST,
            &close,
            &serde_json::json!({ "reason": "Water receded; all residents back home." }),
        )
        .await
        .unwrap();
    assert_eq!(closed["incident"]["state"], "closed");
    assert_eq!(closed["incident"]["rev"], 3);
    assert_eq!(closed["counts"]["accepted"], 1);
    for &i in &mine {
        let v = frame(&mut leads[i], &created.id, 3).await;
        assert_eq!((v.rev, v.state), (3, IncidentState::Closed));
    }
    // After close: acks are refused, a receipt is harmless, revisions are refused.
    let second = mine[1];
    let (res, _) = leads[second]
        .request(&ack(&created.id, "late"))
        .await
        .unwrap();
    match res {
        Err(ClientError::Hub { code, .. }) => assert_eq!(code, "incident_closed"),
        other => panic!("ack after close: {other:?}"),
    }
    let receipt = ClientFrame::Receipt {
        incident: created.id.clone(),
        rev: 3,
        reference: Some("r".into()),
    };
    leads[second].request(&receipt).await.unwrap().0.unwrap();
    assert_eq!(
        hub_error(
            &ops,
            &format!("/v1/incidents/{}/updates", created.id),
            serde_json::json!({ "body": "more" })
        )
        .await,
        (409, "incident_closed".into())
    );
    assert_eq!(
        hub_error(&ops, &close, serde_json::json!({ "reason": "again" })).await,
        (409, "incident_closed".into())
    );
    let d = ops.incident(&created.id).await.unwrap();
    assert_eq!((d.counts.accepted, d.incident.rev), (1, 3));
    assert_eq!(
        d.counts.delivered, 1,
        "the receipt after close counted as delivery"
    );
    assert_eq!(
        d.counts.pending + d.counts.delivered + d.counts.accepted + d.counts.declined,
        recipients
    );
    // Listing by state.
    let closed_list = ops.incidents(Some("closed")).await.unwrap();
    assert!(
        closed_list
            .incidents
            .iter()
            .any(|s| s.incident.id == created.id)
    );
    let active_list = ops.incidents(Some("active")).await.unwrap();
    assert!(
        active_list
            .incidents
            .iter()
            .all(|s| s.incident.id != created.id)
    );
    // The timeline has the update and the close, in order, with who did them.
    let tl = ops.timeline(&created.id).await.unwrap();
    let kinds: Vec<(&str, &str)> = tl
        .events
        .iter()
        .filter(|e| e.kind == "updated" || e.kind == "closed")
        .map(|e| (e.kind.as_str(), e.actor.as_str()))
        .collect();
    assert_eq!(kinds, [("updated", "op"), ("closed", "op2")]);
    // A recipient connecting now finds the closed incident in its sync.
    let late = &doc.staff[*mine.last().unwrap()].id;
    let (mut c, _) = LeadClient::connect(&ws[ws.len() - 1], &lead_token(late))
        .await
        .unwrap();
    let sync = c.sync().await.unwrap();
    assert!(
        sync.iter()
            .any(|f| matches!(f, ServerFrame::Incident { incident, .. }
            if incident.id == created.id && incident.state == IncidentState::Closed)),
        "{sync:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_and_close_reach_every_recipient_on_one_node() {
    let doc = city(40);
    let hub = TestHub::start("lifecycle", Some(doc.clone()), |_| {}).await;
    update_and_close([&hub.http(), &hub.http()], &[hub.ws_url()], &doc).await;
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_and_close_reach_every_recipient_across_cluster_nodes() {
    let redis = RedisServer::start("lifecycle").await;
    let doc = city(40);
    let nodes = redis.two_nodes("lifecycle", doc.clone()).await;
    let ws: Vec<String> = nodes.iter().map(|n| n.ws_url()).collect();
    update_and_close([&nodes[0].http(), &nodes[1].http()], &ws, &doc).await;
    for n in nodes {
        n.stop().await;
    }
}

/// Reports from a lead are stored, shown on the console at once, listed for the
/// jurisdiction, and promotable once.
async fn reports_flow(api: [&str; 2], ws: &str, doc: &gridcast_protocol::registry::RegistryDoc) {
    let ops = ConsoleClient::new(api[0], &token("op", TokenRole::Operator, ""));
    let lead = &doc.staff[0];
    let grid = lead.assignments[0].grid.clone();
    // A console stream on the other node, open before the report.
    let mut sse = reqwest::Client::new()
        .get(format!("{}/v1/console/events", api[1]))
        .bearer_auth(token("op", TokenRole::Operator, ""))
        .send()
        .await
        .unwrap();
    let (mut c, _) = LeadClient::connect(ws, &lead_token(&lead.id))
        .await
        .unwrap();
    c.sync().await.unwrap();
    let report = serde_json::json!({
        "type": "report", "ref": "rep1", "category": "accident",
        "title": "Smoke from the market", "detail": "Grey smoke behind stall 12.",
        "grid": grid, "location": {"lat": 30.25, "lon": 120.17}
    });
    c.send_text(report.to_string()).await.unwrap();
    loop {
        match tokio::time::timeout(WAIT, c.next()).await.unwrap().unwrap() {
            ServerFrame::Ok { reference } if reference == "rep1" => break,
            ServerFrame::Error { message, .. } => panic!("report refused: {message}"),
            _ => {}
        }
    }
    // A report for a grid that does not exist is refused with a reason.
    let bad = serde_json::json!({
        "type": "report", "ref": "rep2", "category": "accident", "title": "x",
        "detail": "", "grid": "3301069990051001"
    });
    c.send_text(bad.to_string()).await.unwrap();
    loop {
        match tokio::time::timeout(WAIT, c.next()).await.unwrap().unwrap() {
            ServerFrame::Error {
                reference, code, ..
            } if reference.as_deref() == Some("rep2") => {
                assert_eq!(code, gridcast_protocol::ErrorCode::BadRequest);
                break;
            }
            _ => {}
        }
    }
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !text.contains("Smoke from the market") {
        let chunk = tokio::time::timeout_at(deadline, sse.chunk())
            .await
            .expect("the report on the console")
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains("event: report"), "{text}");

    let list: gridcast_protocol::api::ReportList = ops.get("/v1/reports").await.unwrap();
    assert_eq!(list.reports.len(), 1);
    let r = &list.reports[0];
    assert_eq!(
        (r.lead.as_str(), r.grid.as_str(), r.incident.as_ref()),
        (lead.id.as_str(), grid.as_str(), None)
    );
    let elsewhere = if grid.starts_with(TOWN_A) {
        TOWN_B
    } else {
        TOWN_A
    };
    let outsider = ConsoleClient::new(api[1], &token("op9", TokenRole::Operator, elsewhere));
    let theirs: gridcast_protocol::api::ReportList = outsider.get("/v1/reports").await.unwrap();
    assert!(
        theirs.reports.is_empty(),
        "reports stay in their jurisdiction"
    );

    // Promote: an incident for the report's grid, with the report's title; once.
    let path = format!("/v1/reports/{}/promote", r.id);
    let created: gridcast_protocol::api::CreatedIncident =
        ConsoleClient::new(api[1], &token("op2", TokenRole::Operator, ""))
            .send_json(
                reqwest::Method::POST,
                &path,
                &serde_json::json!({ "level": "III" }),
            )
            .await
            .unwrap();
    assert!(created.recipients >= 1);
    let v = frame(&mut c, &created.id, 1).await;
    assert_eq!(v.title, "Smoke from the market");
    assert!(v.body.contains(&r.id), "{}", v.body);
    let list: gridcast_protocol::api::ReportList = ops.get("/v1/reports").await.unwrap();
    assert_eq!(
        list.reports[0].incident.as_deref(),
        Some(created.id.as_str())
    );
    assert_eq!(
        hub_error(&ops, &path, serde_json::json!({ "level": "III" })).await,
        (409, "conflict".into())
    );
    assert_eq!(
        hub_error(
            &ops,
            "/v1/reports/REP-999999/promote",
            serde_json::json!({ "level": "III" })
        )
        .await,
        (404, "not_found".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_are_stored_shown_and_promotable_on_one_node() {
    let doc = city(20);
    let hub = TestHub::start("reports", Some(doc.clone()), |_| {}).await;
    reports_flow([&hub.http(), &hub.http()], &hub.ws_url(), &doc).await;
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_are_stored_shown_and_promotable_across_cluster_nodes() {
    let redis = RedisServer::start("reports").await;
    let doc = city(20);
    let nodes = redis.two_nodes("reports", doc.clone()).await;
    reports_flow(
        [&nodes[0].http(), &nodes[1].http()],
        &nodes[0].ws_url(),
        &doc,
    )
    .await;
    for n in nodes {
        n.stop().await;
    }
}

/// G1 of [`two_grid_city`] with its micro-grid and three of its people (GL1, S1, A1),
/// and one task kind.
fn task_city() -> gridcast_protocol::registry::RegistryDoc {
    let mut doc = two_grid_city();
    doc.grids.retain(|g| g.code.starts_with(G1));
    doc.staff
        .retain(|p| ["GL1", "S1", "A1"].contains(&p.id.as_str()));
    doc.task_kinds = vec![gridcast_protocol::registry::TaskKind {
        id: "evacuation".into(),
        name: "Evacuation".into(),
    }];
    doc
}

async fn next_task(c: &mut LeadClient) -> gridcast_protocol::frame::TaskView {
    loop {
        if let ServerFrame::Task { task } =
            tokio::time::timeout(WAIT, c.next()).await.unwrap().unwrap()
        {
            return task;
        }
    }
}

async fn task_update(
    c: &mut LeadClient,
    task: &str,
    status: &str,
    note: Option<&str>,
) -> Result<(), String> {
    let mut f =
        serde_json::json!({ "type": "task_update", "task": task, "status": status, "ref": "t" });
    if let Some(n) = note {
        f["note"] = n.into();
    }
    let frame: ClientFrame = serde_json::from_value(f).unwrap();
    match c.request(&frame).await.unwrap().0 {
        Ok(()) => Ok(()),
        Err(ClientError::Hub { code, .. }) => Err(code),
        Err(e) => panic!("{e}"),
    }
}

/// Tasks: the published list, first accept wins, done with a note, close rules.
async fn tasks_flow(api: [&str; 2], ws: &[String]) {
    let ops = ConsoleClient::new(api[0], &token("op", TokenRole::Operator, ""));
    let ids = ["GL1", "S1", "A1"];
    let mut leads = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let (mut c, _) = LeadClient::connect(&ws[i % ws.len()], &lead_token(id))
            .await
            .unwrap();
        c.sync().await.unwrap();
        leads.push(c);
    }
    let created = ops
        .activate(&activation("Fire", &["330106004"], &[]))
        .await
        .unwrap();
    assert_eq!(created.recipients, 3);
    for c in &mut leads {
        frame(c, &created.id, 1).await;
    }
    let tasks = format!("/v1/incidents/{}/tasks", created.id);
    let (status, code) = hub_error(
        &ops,
        &tasks,
        serde_json::json!({"kind": "dance", "title": "x", "assignee": {"grid": "3301060040051001"}}),
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (400, "bad_request"),
        "an unlisted kind"
    );
    // A grid task: every recipient of the grid (micro-grid included) gets it.
    let t1: gridcast_protocol::api::CreatedTask = ops
        .send_json(
            reqwest::Method::POST,
            &tasks,
            &serde_json::json!({"kind": "evacuation", "title": "Evacuate block 3",
                "detail": "Elderly on floors 5-6", "assignee": {"grid": "3301060040051001"}, "due_in_s": 900}),
        )
        .await
        .unwrap();
    assert_eq!(t1.id, format!("{}-T1", created.id));
    for c in &mut leads {
        let t = next_task(c).await;
        assert_eq!(
            (t.id.as_str(), t.status),
            (t1.id.as_str(), gridcast_protocol::frame::TaskStatus::Open)
        );
    }
    // First accept wins; the others see it taken.
    task_update(&mut leads[2], &t1.id, "accepted", None)
        .await
        .unwrap();
    assert_eq!(
        task_update(&mut leads[1], &t1.id, "accepted", None).await,
        Err("task_taken".into())
    );
    task_update(
        &mut leads[2],
        &t1.id,
        "done",
        Some("12 residents moved to the gym"),
    )
    .await
    .unwrap();
    // A lead task for S1; others may not touch it.
    let t2: gridcast_protocol::api::CreatedTask = ops
        .send_json(
            reqwest::Method::POST,
            &tasks,
            &serde_json::json!({"kind": "evacuation", "title": "Check stall 12",
                "assignee": {"lead": "S1"}}),
        )
        .await
        .unwrap();
    assert_eq!(
        task_update(&mut leads[0], &t2.id, "accepted", None).await,
        Err("not_recipient".into())
    );
    // S1 reconnects: its sync has the incident and its open task.
    let (mut s1, _) = LeadClient::connect(&ws[ws.len() - 1], &lead_token("S1"))
        .await
        .unwrap();
    let sync = s1.sync().await.unwrap();
    let open: Vec<&str> = sync
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Task { task } => Some(task.id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(open, [t2.id.as_str()], "done tasks are not in the sync");
    // Close is refused while T2 is open ...
    let close = format!("/v1/incidents/{}/close", created.id);
    assert_eq!(
        hub_error(&ops, &close, serde_json::json!({"reason": "done"})).await,
        (409, "conflict".into())
    );
    // ... and goes through once S1 declines it.
    task_update(&mut s1, &t2.id, "declined", Some("stall is locked"))
        .await
        .unwrap();
    let list: gridcast_protocol::api::TaskList = ops.get(&tasks).await.unwrap();
    let rows: Vec<(&str, &str, Option<&str>, Option<&str>)> = list
        .tasks
        .iter()
        .map(|t| {
            (
                t.task.id.as_str(),
                gridcast_hub::store::task_status_name(t.task.status),
                t.accepted_by.as_deref(),
                t.note.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (
                t1.id.as_str(),
                "done",
                Some("A1"),
                Some("12 residents moved to the gym")
            ),
            (t2.id.as_str(), "declined", None, Some("stall is locked")),
        ]
    );
    let _: serde_json::Value = ConsoleClient::new(api[1], &token("op2", TokenRole::Operator, ""))
        .send_json(
            reqwest::Method::POST,
            &close,
            &serde_json::json!({"reason": "done"}),
        )
        .await
        .unwrap();
    assert_eq!(
        task_update(&mut leads[2], &t1.id, "failed", None).await,
        Err("incident_closed".into())
    );
    let tl = ops.timeline(&created.id).await.unwrap();
    let task_events: Vec<String> = tl
        .events
        .iter()
        .filter(|e| e.kind == "task")
        .map(|e| e.detail.clone().unwrap_or_default())
        .collect();
    assert_eq!(task_events.len(), 5, "{task_events:?}");
    assert!(task_events[2].contains("done") && task_events[2].contains("12 residents"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_first_accept_wins_and_block_close_on_one_node() {
    let hub = TestHub::start("tasks", Some(task_city()), |_| {}).await;
    tasks_flow([&hub.http(), &hub.http()], &[hub.ws_url()]).await;
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_first_accept_wins_and_block_close_across_cluster_nodes() {
    let redis = RedisServer::start("tasks").await;
    let nodes = redis.two_nodes("tasks", task_city()).await;
    let ws: Vec<String> = nodes.iter().map(|n| n.ws_url()).collect();
    tasks_flow([&nodes[0].http(), &nodes[1].http()], &ws).await;
    for n in nodes {
        n.stop().await;
    }
}
