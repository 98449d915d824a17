//! Acceptance 2 and 4: late connect sync, and bad input of every kind gets the
//! contract's error without changing anything already recorded.

// Test harnesses spawn and wait freely; the hub's conventions (hub/clippy.toml) are
// for the hub itself.
#![allow(clippy::disallowed_methods)]

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use gridcast_clients::ClientError;
use gridcast_clients::lead::LeadClient;
use gridcast_hub::auth::TokenRole;
use gridcast_protocol::Status;
use gridcast_protocol::api::CreatedIncident;
use gridcast_protocol::frame::{ClientFrame, ServerFrame};
use gridcast_protocol::model::Response;
use support::*;
use tokio_tungstenite::tungstenite::Message;

fn incident_status(frames: &[ServerFrame], id: &str) -> Option<Status> {
    frames.iter().find_map(|f| match f {
        ServerFrame::Incident { incident, me } if incident.id == id => {
            me.as_ref().map(|m| m.status)
        }
        _ => None,
    })
}

async fn expect_error(c: &mut LeadClient, code: &str) -> Option<String> {
    loop {
        let f = tokio::time::timeout(Duration::from_secs(10), c.next())
            .await
            .expect("reply in time")
            .unwrap();
        if let ServerFrame::Error {
            code: got,
            reference,
            ..
        } = f
        {
            assert_eq!(got.as_str(), code);
            return reference;
        }
    }
}

/// One activation of town A (the test's leads) and one of town B (someone else's).
async fn mine_and_theirs(
    console: &gridcast_clients::console::ConsoleClient,
) -> (CreatedIncident, CreatedIncident) {
    let (a, b) = (
        activation("Mine", &[TOWN_A], &[]),
        activation("Theirs", &[TOWN_B], &[]),
    );
    let mine = console.activate(&a).await.unwrap();
    (mine, console.activate(&b).await.unwrap())
}

async fn ping_pong(c: &mut LeadClient) {
    c.send(&ClientFrame::Ping {
        reference: Some("p".into()),
    })
    .await
    .unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), c.next())
            .await
            .expect("pong in time")
            .unwrap()
        {
            ServerFrame::Pong { reference } => {
                assert_eq!(reference.as_deref(), Some("p"));
                return;
            }
            _ => continue,
        }
    }
}

#[tokio::test]
async fn leads_offline_at_issue_get_it_in_their_sync_with_their_own_status() {
    let hub = TestHub::start("late", Some(city(60)), |_| {}).await;
    let console = hub.console("");
    let created = console
        .activate(&activation("Chemical leak", &[TOWN_A], &[]))
        .await
        .unwrap();
    let doc = city(60);
    let recipient = doc
        .staff
        .iter()
        .find(|p| p.assignments[0].grid.starts_with(TOWN_A))
        .unwrap();
    let outsider = doc
        .staff
        .iter()
        .find(|p| p.assignments.iter().all(|a| !a.grid.starts_with(TOWN_A)))
        .unwrap();

    let (mut c, welcome) = LeadClient::connect(&hub.ws_url(), &lead_token(&recipient.id))
        .await
        .unwrap();
    assert_eq!(welcome.lead, recipient.id);
    let sync = c.sync().await.unwrap();
    assert_eq!(incident_status(&sync, &created.id), Some(Status::Pending));
    let ServerFrame::Incident { me: Some(me), .. } = &sync[0] else {
        panic!("{sync:?}")
    };
    assert_eq!(me.grid.as_str(), recipient.assignments[0].grid);

    let ack = ClientFrame::Ack {
        incident: created.id.clone(),
        response: Response::Accept,
        note: Some("coming".into()),
        reference: Some("a1".into()),
    };
    let (res, _) = c.request(&ack).await.unwrap();
    res.unwrap();
    // A retry of the same ack is idempotent.
    let (res, _) = c.request(&ack).await.unwrap();
    res.unwrap();
    c.close().await;

    // Another device (or a reconnect) sees the lead's own answer in its sync.
    let (mut c2, _) = LeadClient::connect(&hub.ws_url(), &lead_token(&recipient.id))
        .await
        .unwrap();
    assert_eq!(
        incident_status(&c2.sync().await.unwrap(), &created.id),
        Some(Status::Accepted)
    );
    c2.close().await;

    let (mut o, _) = LeadClient::connect(&hub.ws_url(), &lead_token(&outsider.id))
        .await
        .unwrap();
    assert!(
        o.sync().await.unwrap().is_empty(),
        "a non-recipient sees nothing"
    );
    o.close().await;

    let d = console.incident(&created.id).await.unwrap();
    assert_eq!(d.counts.accepted, 1);
    hub.stop().await;
}

#[tokio::test]
async fn an_ack_from_one_device_reaches_the_others() {
    let hub = TestHub::start("devices", Some(city(20)), |_| {}).await;
    let id = "P00000";
    let (mut a, _) = LeadClient::connect(&hub.ws_url(), &lead_token(id))
        .await
        .unwrap();
    let (mut b, _) = LeadClient::connect(&hub.ws_url(), &lead_token(id))
        .await
        .unwrap();
    a.sync().await.unwrap();
    b.sync().await.unwrap();
    let created = hub
        .console("")
        .activate(&activation("Fire", &[TOWN_A], &["grid_lead"]))
        .await
        .unwrap();
    for c in [&mut a, &mut b] {
        let f = c.next().await.unwrap();
        assert_eq!(incident_status(&[f], &created.id), Some(Status::Pending));
    }
    let ack = ClientFrame::Ack {
        incident: created.id.clone(),
        response: Response::Decline,
        note: None,
        reference: Some("x".into()),
    };
    a.request(&ack).await.unwrap().0.unwrap();
    let f = tokio::time::timeout(Duration::from_secs(10), b.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(incident_status(&[f], &created.id), Some(Status::Declined));
    hub.stop().await;
}

#[tokio::test]
async fn bad_frames_get_the_contract_errors_and_the_session_stays_usable() {
    let hub = TestHub::start("badframes", Some(city(60)), |_| {}).await;
    let console = hub.console("");
    let doc = city(60);
    let (mine, theirs) = mine_and_theirs(&console).await;
    let lead = doc
        .staff
        .iter()
        .find(|p| p.assignments.iter().all(|a| a.grid.starts_with(TOWN_A)))
        .unwrap();
    let (mut c, _) = LeadClient::connect(&hub.ws_url(), &lead_token(&lead.id))
        .await
        .unwrap();
    c.sync().await.unwrap();
    c.request(&ClientFrame::Receipt {
        incident: mine.id.clone(),
        rev: 1,
        reference: Some("ok1".into()),
    })
    .await
    .unwrap()
    .0
    .unwrap();
    let before_mine = console.incident(&mine.id).await.unwrap().counts;
    let before_theirs = console.incident(&theirs.id).await.unwrap().counts;

    c.send_text("{not json".into()).await.unwrap();
    expect_error(&mut c, "bad_request").await;
    ping_pong(&mut c).await;

    c.send_text(r#"{"type":"dance","ref":"u1"}"#.into())
        .await
        .unwrap();
    assert_eq!(
        expect_error(&mut c, "unknown_type").await.as_deref(),
        Some("u1")
    );

    let big = format!(
        r#"{{"type":"report","ref":"big","detail":"{}"}}"#,
        "x".repeat(70 * 1024)
    );
    c.send_text(big).await.unwrap();
    expect_error(&mut c, "too_large").await;
    ping_pong(&mut c).await;

    let (res, _) = c
        .request(&ClientFrame::Ack {
            incident: theirs.id.clone(),
            response: Response::Accept,
            note: None,
            reference: Some("n1".into()),
        })
        .await
        .unwrap();
    assert!(
        matches!(res, Err(ClientError::Hub { ref code, .. }) if code == "not_recipient"),
        "{res:?}"
    );
    let (res, _) = c
        .request(&ClientFrame::Ack {
            incident: "INC-999999".into(),
            response: Response::Accept,
            note: None,
            reference: Some("n2".into()),
        })
        .await
        .unwrap();
    assert!(
        matches!(res, Err(ClientError::Hub { ref code, .. }) if code == "not_recipient"),
        "{res:?}"
    );
    c.send_text(r#"{"type":"ack","incident":"INC-000001","response":"maybe","ref":"m"}"#.into())
        .await
        .unwrap();
    assert_eq!(
        expect_error(&mut c, "bad_request").await.as_deref(),
        Some("m")
    );
    ping_pong(&mut c).await;

    assert_eq!(
        console.incident(&mine.id).await.unwrap().counts,
        before_mine
    );
    assert_eq!(
        console.incident(&theirs.id).await.unwrap().counts,
        before_theirs
    );
    hub.stop().await;
}

#[tokio::test]
async fn upstream_rate_limit_answers_rate_limited_and_keeps_the_session() {
    let hub = TestHub::start("rate", Some(city(10)), |c| {
        c.upstream_rate = 1;
        c.upstream_burst = 3;
    })
    .await;
    let (mut c, _) = LeadClient::connect(&hub.ws_url(), &lead_token("P00000"))
        .await
        .unwrap();
    c.sync().await.unwrap();
    for i in 0..5 {
        c.send(&ClientFrame::Ping {
            reference: Some(format!("p{i}")),
        })
        .await
        .unwrap();
    }
    let mut pongs = 0;
    let mut limited = 0;
    while pongs + limited < 5 {
        match c.next().await.unwrap() {
            ServerFrame::Pong { .. } => pongs += 1,
            ServerFrame::Error { code, .. } => {
                assert_eq!(code.as_str(), "rate_limited");
                limited += 1;
            }
            _ => {}
        }
    }
    assert_eq!((pongs, limited), (3, 2));
    hub.stop().await;
}

fn err<T: std::fmt::Debug>(r: Result<T, ClientError>) -> (u16, String, String) {
    match r {
        Err(ClientError::Hub {
            status,
            code,
            message,
        }) => (status, code, message),
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => panic!("{e}"),
    }
}

async fn raw_close(hub: &TestHub, first: Option<String>) -> (Option<String>, u16) {
    let (mut ws, _) = tokio_tungstenite::connect_async(hub.ws_url())
        .await
        .unwrap();
    if let Some(t) = first {
        ws.send(Message::text(t)).await.unwrap();
    }
    let mut error = None;
    loop {
        match tokio::time::timeout(Duration::from_secs(15), ws.next())
            .await
            .expect("closed in time")
        {
            Some(Ok(Message::Text(t))) => {
                let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                assert_eq!(v["type"], "error");
                error = v["code"].as_str().map(str::to_owned);
            }
            Some(Ok(Message::Close(Some(c)))) => return (error, u16::from(c.code)),
            Some(Ok(_)) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn hello_failures_close_with_the_contract_codes() {
    let hub = TestHub::start("hello", Some(city(10)), |_| {}).await;
    let hello = |t: &str| Some(serde_json::json!({"type": "hello", "token": t}).to_string());
    assert_eq!(
        raw_close(&hub, hello("garbage")).await,
        (Some("unauthorized".into()), 4401)
    );
    let foreign = gridcast_hub::auth::Auth::new(b"another-secret-entirely").sign(
        &gridcast_hub::auth::Claims {
            sub: "P00000".into(),
            role: TokenRole::Lead,
            scope: String::new(),
            exp: gridcast_hub::now_ms() / 1000 + 60,
            jti: None,
        },
    );
    assert_eq!(
        raw_close(&hub, hello(&foreign)).await,
        (Some("unauthorized".into()), 4401)
    );
    let expired = support::auth().sign(&gridcast_hub::auth::Claims {
        sub: "P00000".into(),
        role: TokenRole::Lead,
        scope: String::new(),
        exp: 1,
        jti: None,
    });
    assert_eq!(
        raw_close(&hub, hello(&expired)).await,
        (Some("unauthorized".into()), 4401)
    );
    assert_eq!(
        raw_close(&hub, hello(&lead_token("NOBODY"))).await,
        (Some("forbidden".into()), 4403)
    );
    assert_eq!(
        raw_close(&hub, Some(r#"{"type":"ping"}"#.into())).await,
        (Some("bad_request".into()), 4400)
    );
    // No hello at all: the hub closes after its 5 s deadline.
    assert_eq!(raw_close(&hub, None).await, (None, 4408));
    hub.stop().await;
}

#[tokio::test]
async fn a_phone_that_stops_answering_pings_is_dropped_after_two_intervals() {
    let hub = TestHub::start("heartbeat", Some(city(10)), |c| c.heartbeat_s = 1).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(hub.ws_url())
        .await
        .unwrap();
    let hello = serde_json::json!({"type": "hello", "token": lead_token("P00000")});
    ws.send(Message::text(hello.to_string())).await.unwrap();
    // Not reading means not answering pings: the hub must drop the session by itself.
    let console = hub.console("");
    eventually(
        Duration::from_secs(15),
        "presence to see the silent phone",
        || {
            let console = console.clone();
            async move { console.presence("", false).await.unwrap().online == 1 }
        },
    )
    .await;
    eventually(
        Duration::from_secs(15),
        "the silent phone to be dropped",
        || {
            let console = console.clone();
            async move { console.presence("", false).await.unwrap().online == 0 }
        },
    )
    .await;
    let metrics = reqwest::get(format!("{}/metrics", hub.http()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("gridcast_heartbeat_drops_total 1"),
        "the drop is counted as a heartbeat drop"
    );
    // The close frame says why, if the phone's socket still gets it: a phone that
    // never read may have its unread bytes discarded by the reset that follows.
    while let Some(Ok(m)) = ws.next().await {
        if let Message::Close(c) = m {
            assert_eq!(c.map(|c| u16::from(c.code)), Some(4410));
            break;
        }
    }
    hub.stop().await;
}

#[tokio::test]
async fn shutdown_reaches_connections_still_in_hello() {
    let hub = TestHub::start("shutdown-hello", Some(city(10)), |c| {
        c.hello_timeout_ms = 120_000;
    })
    .await;
    let (mut ws, _) = tokio_tungstenite::connect_async(hub.ws_url())
        .await
        .unwrap();
    let (mut lead, _) = LeadClient::connect(&hub.ws_url(), &lead_token("P00000"))
        .await
        .unwrap();
    lead.sync().await.unwrap();
    hub.shutdown.cancel();
    // Both the silent connection and the open session are told "going away" at once,
    // long before the 120 s hello deadline.
    let silent = tokio::time::timeout(Duration::from_secs(4), ws.next())
        .await
        .expect("closed at shutdown");
    assert!(
        matches!(&silent, Some(Ok(Message::Close(Some(c)))) if u16::from(c.code) == 1001),
        "{silent:?}"
    );
    let open = tokio::time::timeout(Duration::from_secs(4), lead.next())
        .await
        .expect("closed at shutdown");
    assert!(matches!(open, Err(ClientError::Closed(1001))), "{open:?}");
    tokio::time::timeout(Duration::from_secs(10), hub.task)
        .await
        .expect("hub stops")
        .unwrap();
}

#[tokio::test]
async fn bad_api_requests_are_refused_and_change_nothing() {
    let hub = TestHub::start("badapi", Some(city(60)), |_| {}).await;
    let console = hub.console("");
    let first = console
        .activate(&activation("First", &[TOWN_A], &[]))
        .await
        .unwrap();

    let raw = |v: serde_json::Value| {
        let console = console.clone();
        async move {
            let r: Result<serde_json::Value, _> = console
                .send_json(reqwest::Method::POST, "/v1/incidents", &v)
                .await;
            err(r)
        }
    };
    let mut bad = serde_json::to_value(activation("x", &[TOWN_A], &[])).unwrap();
    bad["targets"]["codes"] = serde_json::json!(["3301060"]);
    let (status, code, message) = raw(bad).await;
    assert_eq!((status, code.as_str()), (400, "bad_request"));
    assert!(
        message.contains("2, 4, 6, 9, 12, 13, 16 or 19 digits"),
        "{message}"
    );

    let mut unknown = serde_json::to_value(activation("x", &["34"], &[])).unwrap();
    unknown["targets"]["codes"] = serde_json::json!(["34"]);
    assert_eq!(raw(unknown).await.0, 400);
    let micro = format!("{TOWN_A}0051001001");
    let (status, _, message) = err(console
        .activate(&activation("x", &[&micro], &["grid_lead"]))
        .await);
    assert_eq!(status, 400);
    assert!(message.contains("resolves to nobody"), "{message}");

    let scoped = hub.console(TOWN_B);
    let (status, code, _) = err(scoped.activate(&activation("x", &[TOWN_A], &[])).await);
    assert_eq!((status, code.as_str()), (403, "forbidden"));
    let (status, _, _) = err(scoped.incident(&first.id).await);
    assert_eq!(status, 404, "out-of-jurisdiction incidents are not visible");

    let lead = gridcast_clients::console::ConsoleClient::new(&hub.http(), &lead_token("P00000"));
    assert_eq!(err(lead.incidents(None).await).0, 403);
    let nobody = gridcast_clients::console::ConsoleClient::new(&hub.http(), "nope");
    assert_eq!(err(nobody.incidents(None).await).0, 401);

    let r: Result<serde_json::Value, _> = console
        .send_json(
            reqwest::Method::POST,
            "/v1/incidents",
            &serde_json::json!("not an object"),
        )
        .await;
    assert_eq!(err(r).1, "bad_request");

    // An invalid registry is refused whole with every problem listed.
    let admin = gridcast_clients::console::ConsoleClient::new(&hub.http(), &admin_token());
    let mut doc = city(60);
    doc.grids.push(gridcast_protocol::registry::GridDoc {
        code: "12345".into(),
        name: String::new(),
        kind: None,
        geometry: None,
        supervision_phone: None,
    });
    doc.staff[0].assignments[0].role = "boss".into();
    doc.staff.truncate(5);
    let r: Result<serde_json::Value, _> = admin
        .send_json(reqwest::Method::PUT, "/v1/registry", &doc)
        .await;
    let (status, code, message) = err(r);
    assert_eq!((status, code.as_str()), (400, "bad_request"));
    assert!(
        message.contains("12345") && message.contains("boss"),
        "{message}"
    );
    let r: Result<serde_json::Value, _> = console
        .send_json(reqwest::Method::PUT, "/v1/registry", &city(5))
        .await;
    assert_eq!(err(r).0, 403, "operators cannot replace the registry");
    let current: gridcast_protocol::registry::RegistryDoc =
        console.get("/v1/registry").await.unwrap();
    assert_eq!(
        current.staff.len(),
        60,
        "the registry in force is unchanged"
    );

    let (status, _, message) = err(console.incidents(Some("bogus")).await);
    assert_eq!(status, 400);
    assert!(message.contains("active or closed"), "{message}");
    let (status, _, message) = err(console.recipients(&first.id, Some("lost")).await);
    assert_eq!(status, 400);
    assert!(message.contains("pending, delivered"), "{message}");

    let list = console.incidents(None).await.unwrap().incidents;
    assert_eq!(list.len(), 1, "no refused request recorded anything");
    assert_eq!(list[0].counts.pending, first.recipients);
    hub.stop().await;
}

#[tokio::test]
async fn registry_changes_apply_at_run_time_and_incidents_keep_their_recipients() {
    let hub = TestHub::start("registry", Some(city(60)), |_| {}).await;
    let console = hub.console("");
    let before = console
        .activate(&activation("Before", &[TOWN_A], &[]))
        .await
        .unwrap();
    let admin = gridcast_clients::console::ConsoleClient::new(&hub.http(), &admin_token());
    let r: serde_json::Value = admin
        .send_json(reqwest::Method::PUT, "/v1/registry", &city(20))
        .await
        .unwrap();
    assert_eq!(r["ok"], true);
    let after = console
        .activate(&activation("After", &[TOWN_A], &[]))
        .await
        .unwrap();
    assert!(after.recipients < before.recipients);
    assert_eq!(
        console.incident(&before.id).await.unwrap().counts.total(),
        before.recipients
    );
    let scoped: gridcast_protocol::registry::RegistryDoc =
        hub.console(TOWN_B).get("/v1/registry").await.unwrap();
    assert!(scoped.grids.iter().all(|g| g.code.starts_with(TOWN_B)));
    assert!(
        scoped
            .staff
            .iter()
            .all(|s| s.assignments.iter().all(|a| a.grid.starts_with(TOWN_B)))
    );
    hub.stop().await;
}

/// Receipts without a `ref` go to the hub's receipt lane: nothing is answered, a bad one
/// still gets its `error`, and every receipt the hub has read when it stops is on disk
/// when it starts again (the lane records what is queued before it ends).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_without_ref_are_recorded_and_none_read_is_lost_at_a_stop() {
    let doc = city(300);
    let hub = TestHub::start("receipt-lane", Some(doc.clone()), |_| {}).await;
    let console = hub.console("");
    let (mine, theirs) = mine_and_theirs(&console).await;
    let leads: Vec<&str> = doc
        .staff
        .iter()
        .filter(|p| p.assignments.iter().all(|a| a.grid.starts_with(TOWN_A)))
        .map(|p| p.id.as_str())
        .collect();
    assert!(leads.len() > 50, "{}", leads.len());
    let mut phones = Vec::new();
    for lead in &leads {
        let (mut c, _) = LeadClient::connect(&hub.ws_url(), &lead_token(lead))
            .await
            .unwrap();
        let synced = c.sync().await.unwrap();
        assert_eq!(incident_status(&synced, &mine.id), Some(Status::Pending));
        phones.push(c);
    }
    let receipt = |id: &str| ClientFrame::Receipt {
        incident: id.to_owned(),
        rev: 1,
        reference: None,
    };
    phones[0].send(&receipt(&theirs.id)).await.unwrap();
    assert_eq!(expect_error(&mut phones[0], "not_recipient").await, None);

    for c in &mut phones {
        c.send(&receipt(&mine.id)).await.unwrap();
    }
    // A session answers its frames in order: its pong means its receipt was taken.
    for c in &mut phones {
        ping_pong(c).await;
    }
    let dir = hub.dir.clone();
    hub.stop().await;
    let clock = std::sync::Arc::new(gridcast_hub::clock::SystemClock);
    let n = leads.len();
    let hub = TestHub::start_in(dir, Some(doc), |_| {}, clock).await;
    let counts = hub.console("").incident(&mine.id).await.unwrap().counts;
    assert_eq!(counts.delivered, n);
    let counts = hub.console("").incident(&theirs.id).await.unwrap().counts;
    assert_eq!(counts.delivered, 0);
    hub.stop().await;
}

#[tokio::test]
async fn an_ack_reaches_the_leads_other_devices_and_not_the_one_that_sent_it() {
    let hub = TestHub::start("other-devices", Some(city(60)), |_| {}).await;
    let created = hub
        .console("")
        .activate(&activation("Chemical leak", &[TOWN_A], &[]))
        .await
        .unwrap();
    let doc = city(60);
    let lead = &doc
        .staff
        .iter()
        .find(|p| p.assignments[0].grid.starts_with(TOWN_A))
        .unwrap()
        .id;
    let (mut phone, _) = LeadClient::connect(&hub.ws_url(), &lead_token(lead))
        .await
        .unwrap();
    phone.sync().await.unwrap();
    let (mut tablet, _) = LeadClient::connect(&hub.ws_url(), &lead_token(lead))
        .await
        .unwrap();
    tablet.sync().await.unwrap();

    let ack = ClientFrame::Ack {
        incident: created.id.clone(),
        response: Response::Accept,
        note: None,
        reference: Some("a1".into()),
    };
    let (res, before_ok) = phone.request(&ack).await.unwrap();
    res.unwrap();
    // The other device gets the incident with the lead's new answer in `me`.
    loop {
        match tokio::time::timeout(Duration::from_secs(10), tablet.next())
            .await
            .expect("the other device hears of the ack in time")
            .unwrap()
        {
            ServerFrame::Incident {
                incident,
                me: Some(me),
            } if incident.id == created.id => {
                assert_eq!(me.status, Status::Accepted);
                break;
            }
            _ => continue,
        }
    }
    // The device that acked has its `ok` and is not sent the incident again: nothing
    // about it arrives before the `ok`, nor before the answer to a ping sent after it.
    let mut seen = before_ok;
    phone
        .send(&ClientFrame::Ping {
            reference: Some("after".into()),
        })
        .await
        .unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), phone.next())
            .await
            .expect("pong in time")
            .unwrap()
        {
            ServerFrame::Pong { .. } => break,
            other => seen.push(other),
        }
    }
    assert!(
        !seen.iter().any(
            |f| matches!(f, ServerFrame::Incident { incident, .. } if incident.id == created.id)
        ),
        "{seen:?}"
    );
    phone.close().await;
    tablet.close().await;
    hub.stop().await;
}
