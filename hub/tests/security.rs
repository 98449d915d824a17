//! Issue 13: a hub that faces the internet. Each test replays one attack of the issue
//! against a real `gridcast-hub` process, from another loopback address where it
//! matters, shows that it fails, and that nothing already recorded changed. Memory and
//! time are asserted as bounds, never as timings.

// Test harnesses spawn and wait freely; the hub's conventions (hub/clippy.toml) are
// for the hub itself.
#![allow(clippy::disallowed_methods)]

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use gridcast_clients::console::ConsoleClient;
use gridcast_clients::lead::LeadClient;
use gridcast_hub::auth::TokenRole;
use gridcast_protocol::api::ReportList;
use gridcast_protocol::frame::{ClientFrame, ServerFrame};
use gridcast_protocol::registry::RegistryDoc;
use support::attack::*;
use support::*;
use tokio::io::AsyncWriteExt;

const WAIT: Duration = Duration::from_secs(15);

fn now_s() -> u64 {
    gridcast_hub::now_ms() / 1000
}

/// A ping with a ref, and the pong back (other frames skipped); `false` if the
/// session was closed or the ping refused.
async fn pings(c: &mut LeadClient) -> bool {
    let r = format!("ping-{}", gridcast_hub::now_ms());
    if c.send(&ClientFrame::Ping {
        reference: Some(r.clone()),
    })
    .await
    .is_err()
    {
        return false;
    }
    loop {
        match tokio::time::timeout(WAIT, c.next()).await.expect("answer") {
            Ok(ServerFrame::Pong { reference }) if reference.as_deref() == Some(&r) => {
                return true;
            }
            Ok(ServerFrame::Error { reference, .. }) if reference.as_deref() == Some(&r) => {
                return false;
            }
            Ok(_) => {}
            Err(_) => return false,
        }
    }
}

async fn phone(hub: &ProcHub, lead: &str) -> LeadClient {
    let (mut c, _) = LeadClient::connect(&hub.ws_url(), &lead_token(lead))
        .await
        .unwrap();
    c.sync().await.unwrap();
    c
}

/// The value of a counter or gauge on `/metrics` at `url`.
async fn metric(url: &str, name: &str) -> i64 {
    let text = reqwest::get(url).await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in {url}"))
}

// 1. Memory before authentication.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i01_bodies_are_not_read_before_the_token_is_checked() {
    let hub = ProcHub::start("sec-body", &city(50), &["--body-timeout-s", "2"]).await;
    let admin = ConsoleClient::new(&hub.http(), &admin_token());
    let before: RegistryDoc = admin.get("/v1/registry").await.unwrap();
    let incidents_before = hub.console("").incidents(None).await.unwrap();
    let rss_before = hub.rss_kib();

    // Eight sockets announce 62 MiB each without a token: each is answered 401 before
    // it has sent a byte of its body, and then pushes the body anyway.
    let big = 62usize << 20;
    let mut attackers = Vec::new();
    for i in 0..8 {
        let addr = hub.addr();
        attackers.push(tokio::spawn(async move {
            let mut s = connect_from(ATTACKER, addr).await;
            let (line, auth) = match i % 4 {
                0 => ("PUT /v1/registry", String::new()),
                1 => ("POST /v1/incidents", String::new()),
                2 => ("PUT /v1/registry", "Authorization: Bearer not-a-token\r\n".into()),
                _ => ("POST /v1/reports/REP-000001/promote", String::new()),
            };
            let head = format!(
                "{line} HTTP/1.1\r\nHost: hub\r\n{auth}Content-Type: application/json\r\nContent-Length: {big}\r\n\r\n"
            );
            s.write_all(head.as_bytes()).await.unwrap();
            let answer = read_head(&mut s, WAIT).await;
            let pushed = push_bytes(&mut s, big).await;
            (answer, pushed)
        }));
    }
    for a in attackers {
        let (answer, _pushed) = a.await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    }
    // A lead's token and an operator's are refused the registry before its body, too.
    for t in [lead_token("P00000"), token("op", TokenRole::Operator, "")] {
        let mut s = connect_from(ATTACKER, hub.addr()).await;
        let head = format!(
            "PUT /v1/registry HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer {t}\r\nContent-Length: {big}\r\n\r\n"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let answer = read_head(&mut s, WAIT).await;
        assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    }
    let rss_after = hub.rss_kib();
    assert!(
        rss_after < rss_before + 48 * 1024,
        "RSS {rss_before} KiB -> {rss_after} KiB after 8 x 62 MiB unauthenticated bodies"
    );

    // Registry uploads: one at a time. Upload A sends half its body and stalls; while it
    // holds the upload, B (an invalid document: were it read, it would be a 400) is 429.
    let doc = serde_json::to_vec(&before).unwrap();
    let mut a = connect_from(PHONES, hub.addr()).await;
    let head = format!(
        "PUT /v1/registry HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        admin_token(),
        doc.len()
    );
    a.write_all(head.as_bytes()).await.unwrap();
    a.write_all(&doc[..doc.len() / 2]).await.unwrap();
    let http = reqwest::Client::new();
    let put = |body: Vec<u8>| {
        http.put(format!("{}/v1/registry", hub.http()))
            .bearer_auth(admin_token())
            .body(body)
            .send()
    };
    eventually(WAIT, "a second upload refused while one is read", || {
        let r = put(b"{\"grids\":[],\"staff\":[]}".to_vec());
        async move {
            let status = r.await.unwrap().status().as_u16();
            assert!(status == 429 || status == 400, "{status}");
            status == 429
        }
    })
    .await;
    // A never finishes: it is answered when its body timeout (2 s) passes.
    let answer = read_head(&mut a, WAIT).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    // The upload is free again.
    assert_eq!(put(doc.clone()).await.unwrap().status(), 200);

    let after: RegistryDoc = admin.get("/v1/registry").await.unwrap();
    assert_eq!(
        serde_json::to_value(&after).unwrap(),
        serde_json::to_value(&before).unwrap()
    );
    assert_eq!(
        hub.console("")
            .incidents(None)
            .await
            .unwrap()
            .incidents
            .len(),
        incidents_before.incidents.len()
    );
    hub.kill().await;
}

// 2. Slow headers (slowloris).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i02_half_sent_requests_are_cut_and_the_connection_cap_holds() {
    let hub = ProcHub::start(
        "sec-slow",
        &city(10),
        &[
            "--header-timeout-s",
            "3",
            "--max-connections",
            "40",
            "--max-connections-per-address",
            "30",
        ],
    )
    .await;
    let mut established = phone(&hub, "P00000").await;
    let created = hub
        .console("")
        .activate(&activation("Fire", &[TOWN_A], &[]))
        .await
        .unwrap();

    // 35 half-sent requests from one attacker address: it may hold 30 of them ...
    let mut slow = Vec::new();
    for _ in 0..35 {
        let mut s = connect_from(ATTACKER, hub.addr()).await;
        let _ = s
            .write_all(b"GET /v1/incidents HTTP/1.1\r\nHost: hub\r\n")
            .await;
        slow.push(s);
    }
    // ... so the phone that was already in keeps working, and another still gets in.
    assert!(pings(&mut established).await);
    let mut during = phone(&hub, "P00006").await;
    assert!(pings(&mut during).await);
    // A second attacker address fills the rest: over the cap of 40 every connection
    // is closed at once, with a log line.
    for _ in 0..30 {
        let mut s = connect_from("127.0.0.3", hub.addr()).await;
        let _ = s
            .write_all(b"GET /v1/incidents HTTP/1.1\r\nHost: hub\r\n")
            .await;
        slow.push(s);
    }
    eventually(WAIT, "the connection-limit log line", || async {
        hub.log_text().contains("connection limit reached")
    })
    .await;
    // Every half-sent request is cut by the header deadline.
    for s in &mut slow {
        assert!(
            closed_by_peer(s, WAIT).await,
            "a half-sent request still open"
        );
    }
    // A kept-alive connection that goes quiet is closed too.
    let mut idle = connect_from(ATTACKER, hub.addr()).await;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n")
        .await
        .unwrap();
    assert!(read_head(&mut idle, WAIT).await.starts_with("HTTP/1.1 200"));
    assert!(closed_by_peer(&mut idle, WAIT).await);

    // Phones and the console are served again; nothing recorded changed.
    let mut late = LeadClient::connect(&hub.ws_url(), &lead_token("P00005"))
        .await
        .unwrap()
        .0;
    let sync = late.sync().await.unwrap();
    assert!(
        sync.iter().any(
            |f| matches!(f, ServerFrame::Incident { incident, .. } if incident.id == created.id)
        ),
        "the late phone has the incident"
    );
    let detail = hub.console("").incident(&created.id).await.unwrap();
    assert_eq!(detail.incident.rev, 1);
    let refused = metric(
        &format!("{}/metrics", hub.http()),
        "gridcast_connections_refused_total",
    )
    .await;
    // 5 over the first address's 30, and at least 20 of the second's over the cap.
    assert!(refused >= 25, "{refused} connections refused at the caps");
    hub.kill().await;
}

// 3. Session slots before hello; one lead's many sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i03_silent_upgrades_and_a_stolen_token_cannot_lock_phones_out() {
    let hub = ProcHub::start(
        "sec-slots",
        &city(20),
        &[
            "--max-sessions",
            "6",
            "--max-pending-hellos",
            "10",
            "--max-sessions-per-lead",
            "2",
            "--hello-timeout-ms",
            "60000",
        ],
    )
    .await;
    let url = hub.ws_url();
    // Ten silent upgrades fill the hello slots (not the six session slots) ...
    let mut silent = Vec::new();
    for _ in 0..10 {
        silent.push(ws_from(ATTACKER, hub.addr(), &url, &[]).await.unwrap());
    }
    // ... and the eleventh is refused at the upgrade.
    assert_eq!(
        ws_from(ATTACKER, hub.addr(), &url, &[]).await.err(),
        Some(429)
    );
    // Two give up; six phones get in one after another through the free hello slots:
    // before, ten silent upgrades held every session slot.
    silent.truncate(8);
    let mut phones = Vec::new();
    for i in 0..7 {
        let lead = format!("P{i:05}");
        let mut ws = loop {
            match ws_from(PHONES, hub.addr(), &url, &[]).await {
                Ok(ws) => break ws,
                Err(429) => tokio::task::yield_now().await,
                Err(s) => panic!("upgrade answered {s}"),
            }
        };
        if i < 6 {
            hello_and_sync(&mut ws, &lead_token(&lead)).await;
            phones.push(ws);
        } else {
            // The seventh is over --max-sessions: told so after its hello.
            send_json(
                &mut ws,
                serde_json::json!({"type": "hello", "token": lead_token(&lead)}),
            )
            .await;
            let e = next_json(&mut ws, WAIT).await.expect("an error");
            assert_eq!(e["code"], "rate_limited", "{e}");
            assert_eq!(close_code(&mut ws, WAIT).await, Some(1013));
        }
    }
    drop(silent);
    drop(phones);
    let metrics = format!("{}/metrics", hub.http());
    eventually(WAIT, "every session gone", || async {
        metric(&metrics, "gridcast_sessions").await == 0
    })
    .await;

    // One stolen token opens five sessions: it keeps two, the older ones are closed
    // with 4409 as newer ones come.
    let stolen = lead_token("P00010");
    let mut held = Vec::new();
    for _ in 0..5 {
        let mut ws = ws_from(ATTACKER, hub.addr(), &url, &[]).await.unwrap();
        hello_and_sync(&mut ws, &stolen).await;
        held.push(ws);
    }
    for ws in &mut held[..3] {
        assert_eq!(close_code(ws, WAIT).await, Some(4409));
    }
    eventually(WAIT, "the stolen token holds two sessions", || async {
        metric(&metrics, "gridcast_sessions").await == 2
    })
    .await;
    // Four other phones still get in (six slots).
    let mut others = Vec::new();
    for i in 0..4 {
        others.push(phone(&hub, &format!("P{i:05}")).await);
    }
    for c in &mut others {
        assert!(pings(c).await);
    }
    assert_eq!(
        metric(&metrics, "gridcast_sessions_displaced_total").await,
        3
    );
    hub.kill().await;
}

// 4. One token fills the disk: per-lead budgets, report quota, answer bound, pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i04_a_lead_is_one_budget_across_sessions_with_quotas_and_pages() {
    let hub = ProcHub::start("sec-quota", &city(10), &[]).await;
    let report = |grid: &str, i: usize| -> ClientFrame {
        serde_json::from_value(serde_json::json!({
            "type": "report", "ref": format!("r{i}"), "category": "accident",
            "title": format!("smoke {i}"), "detail": "", "grid": grid
        }))
        .unwrap()
    };
    // P00000 is the grid lead of city(10)'s first grid.
    let grid = "3301060040051001";
    // Four sessions of one lead file 40 reports at once (under the frame burst of 50):
    // 30 a minute is the quota of the lead, not of each session.
    let mut sessions = Vec::new();
    for _ in 0..4 {
        sessions.push(phone(&hub, "P00000").await);
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (s, mut c) in sessions.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut limited) = (0, 0);
            for i in 0..10 {
                match c.request(&report(grid, s * 10 + i)).await.unwrap().0 {
                    Ok(()) => ok += 1,
                    Err(gridcast_clients::ClientError::Hub { code, .. }) => {
                        assert_eq!(code, "rate_limited");
                        limited += 1;
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            (ok, limited, c)
        }));
    }
    let (mut ok, mut limited) = (0, 0);
    let mut sessions = Vec::new();
    for t in tasks {
        let (o, l, c) = t.await.unwrap();
        ok += o;
        limited += l;
        sessions.push(c);
    }
    let refill = (started.elapsed().as_secs_f64() / 2.0).ceil() as usize;
    assert!(
        (30..=30 + refill).contains(&ok),
        "{ok} reports accepted of 40 (quota 30 + {refill})"
    );
    assert_eq!(ok + limited, 40);
    let ops = hub.console("");
    let all: ReportList = ops.get("/v1/reports?limit=1000").await.unwrap();
    assert_eq!(
        all.reports.len(),
        ok,
        "only the accepted reports are stored"
    );
    // Another lead's quota is its own (P00005 leads 3301060040052002).
    let mut other = phone(&hub, "P00005").await;
    assert!(
        other
            .request(&report("3301060040052002", 99))
            .await
            .unwrap()
            .0
            .is_ok()
    );

    // Frames: four sessions of one lead share 20 a second with bursts of 50.
    let mut pingers = Vec::new();
    for _ in 0..4 {
        pingers.push(phone(&hub, "P00002").await);
    }
    let started = Instant::now();
    for c in &mut pingers {
        for i in 0..40 {
            c.send(&ClientFrame::Ping {
                reference: Some(format!("p{i}")),
            })
            .await
            .unwrap();
        }
    }
    let mut pongs = 0;
    for c in &mut pingers {
        let mut answered = 0;
        while answered < 40 {
            match tokio::time::timeout(WAIT, c.next()).await.unwrap().unwrap() {
                ServerFrame::Pong { .. } => {
                    pongs += 1;
                    answered += 1;
                }
                ServerFrame::Error { code, .. } => {
                    assert_eq!(code.as_str(), "rate_limited");
                    answered += 1;
                }
                _ => {}
            }
        }
    }
    let allowed = 50 + (20.0 * started.elapsed().as_secs_f64()).ceil() as usize;
    assert!(
        (50..=allowed).contains(&pongs),
        "{pongs} of 160 pings answered (at most {allowed})"
    );

    // Answers: at most 10 per lead and incident reach the timeline.
    let created = ops
        .activate(&activation("Flood", &[TOWN_A], &[]))
        .await
        .unwrap();
    let mut flipper = phone(&hub, "P00003").await;
    let mut oks = 0;
    for i in 0..12 {
        let response = if i % 2 == 0 { "accept" } else { "decline" };
        let ack: ClientFrame = serde_json::from_value(serde_json::json!({
            "type": "ack", "ref": format!("a{i}"), "incident": created.id, "response": response
        }))
        .unwrap();
        match flipper.request(&ack).await.unwrap().0 {
            Ok(()) => oks += 1,
            Err(gridcast_clients::ClientError::Hub { code, .. }) => {
                assert_eq!(code, "rate_limited");
                assert_eq!(i, 10, "answer {i} refused");
            }
            Err(e) => panic!("{e}"),
        }
    }
    // Ten changes, then the eleventh refused; the twelfth repeats the standing answer
    // (decline), which is a retry and answered ok.
    assert_eq!(oks, 11);
    let timeline = ops.timeline(&created.id).await.unwrap();
    let acked = timeline
        .events
        .iter()
        .filter(|e| e.kind == "acked" && e.lead.as_deref() == Some("P00003"))
        .count();
    assert_eq!(acked, 10, "{:#?}", timeline.events);
    let mine = ops.recipients(&created.id, None).await.unwrap();
    let me = mine.recipients.iter().find(|r| r.lead == "P00003").unwrap();
    assert_eq!(
        me.status,
        gridcast_protocol::Status::Declined,
        "the tenth answer stands"
    );

    // Reports come in pages.
    let total = ok + 1;
    let mut seen = std::collections::HashSet::new();
    let mut before: Option<String> = None;
    loop {
        let path = match &before {
            None => "/v1/reports?limit=7".to_owned(),
            Some(b) => format!("/v1/reports?limit=7&before={b}"),
        };
        let page: ReportList = ops.get(&path).await.unwrap();
        assert!(page.reports.len() <= 7);
        for r in &page.reports {
            assert!(seen.insert(r.id.clone()), "{} twice", r.id);
        }
        match page.next_before {
            Some(n) => before = Some(n),
            None => break,
        }
    }
    assert_eq!(seen.len(), total);
    for bad in [
        "/v1/reports?limit=0",
        "/v1/reports?limit=5000",
        "/v1/reports?before=x",
    ] {
        let e = ops.get::<ReportList>(bad).await.unwrap_err();
        assert!(
            matches!(&e, gridcast_clients::ClientError::Hub { status: 400, .. }),
            "{bad}: {e}"
        );
    }
    hub.kill().await;
}

// 4, continued: the embedded log is compacted; closed incidents past retention leave it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i04_closed_incidents_past_retention_leave_the_compacted_log() {
    let dir = tmp_dir("sec-compact");
    std::fs::create_dir_all(&dir).unwrap();
    let doc = city(10);
    // Retention of zero hours: a closed incident leaves at the next look (every second).
    let args = [
        "--closed-sync-hours",
        "0",
        "--retention-hours",
        "0",
        "--compact-every-s",
        "1",
    ];
    let hub = ProcHub::start_in(dir.clone(), &doc, &args).await;
    let ops = hub.console("");
    let kept = ops
        .activate(&activation("Flood", &[TOWN_A], &[]))
        .await
        .unwrap();
    let gone = ops
        .activate(&activation("Drill over", &[TOWN_A], &[]))
        .await
        .unwrap();
    let mut c = phone(&hub, "P00003").await;
    let ack: ClientFrame = serde_json::from_value(serde_json::json!({
        "type": "ack", "ref": "a", "incident": kept.id, "response": "accept"
    }))
    .unwrap();
    assert!(c.request(&ack).await.unwrap().0.is_ok());
    // The one to go has a history: twenty updates of 2 KB each.
    for i in 0..20 {
        let _: serde_json::Value = ops
            .send_json(
                reqwest::Method::POST,
                &format!("/v1/incidents/{}/updates", gone.id),
                &serde_json::json!({"body": format!("{i}: {}", "water level ".repeat(170))}),
            )
            .await
            .unwrap();
    }
    let _: serde_json::Value = ops
        .send_json(
            reqwest::Method::POST,
            &format!("/v1/incidents/{}/close", gone.id),
            &serde_json::json!({"reason": "over"}),
        )
        .await
        .unwrap();
    let log = hub.data_dir().join("incidents.log");
    let grown = std::fs::metadata(&log).unwrap().len();
    eventually(WAIT, "the closed incident leaves", || async {
        let list = ops.incidents(None).await.unwrap().incidents;
        !list.iter().any(|s| s.incident.id == gone.id)
    })
    .await;
    let compacted = std::fs::metadata(&log).unwrap().len();
    assert!(compacted < grown, "log {grown} -> {compacted} bytes");
    hub.kill().await;

    // After a restart: the kept incident with its ack, the other nowhere, ids go on.
    let hub = ProcHub::start_in(dir, &doc, &args).await;
    let ops = hub.console("");
    let list = ops.incidents(None).await.unwrap().incidents;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].incident.id, kept.id);
    assert_eq!(list[0].counts.accepted, 1);
    let timeline = ops.timeline(&kept.id).await.unwrap();
    assert!(timeline.events.iter().any(|e| e.kind == "acked"));
    let next = ops
        .activate(&activation("Next", &[TOWN_A], &[]))
        .await
        .unwrap();
    assert!(next.id > gone.id, "{} after {}", next.id, gone.id);
    hub.kill().await;
}

// 5. Visible before durable; ids reused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i05_a_refused_write_leaves_no_trace_and_ids_never_repeat() {
    let dir = tmp_dir("sec-durable");
    std::fs::create_dir_all(&dir).unwrap();
    let doc = city(10);
    // One grid, one recipient (P00000): an incident's record is about 360 bytes and an
    // ack's about 120, so a file-size limit of 420 bytes takes the first incident and
    // cuts the next record, whatever it is, in the middle.
    let one_grid = || activation("Fire", &["3301060040051001"], &[]);
    let limit = ["prlimit", "--fsize=420", "--"];
    let hub = ProcHub::start_with(dir.clone(), &doc, &[], &limit).await;
    let log = hub.data_dir().join("incidents.log");
    let mut phone1 = phone(&hub, "P00000").await;
    let ops = hub.console("");
    let first = ops.activate(&one_grid()).await.unwrap();
    let size = std::fs::metadata(&log).unwrap().len();
    assert!(size < 420 && size > 300, "first record {size} bytes");
    for _ in 0..2 {
        let refused = ops.activate(&one_grid()).await.unwrap_err();
        assert!(
            matches!(&refused, gridcast_clients::ClientError::Hub { status: 503, code, .. } if code == "unavailable"),
            "{refused}"
        );
    }
    // No trace: not on disk, not listed, not synced, not sent.
    assert_eq!(std::fs::metadata(&log).unwrap().len(), size);
    let listed: Vec<String> = ops
        .incidents(None)
        .await
        .unwrap()
        .incidents
        .into_iter()
        .map(|s| s.incident.id)
        .collect();
    assert_eq!(listed, std::slice::from_ref(&first.id));
    let mut seen = std::collections::HashSet::new();
    let mut late = LeadClient::connect(&hub.ws_url(), &lead_token("P00000"))
        .await
        .unwrap()
        .0;
    for f in late.sync().await.unwrap() {
        if let ServerFrame::Incident { incident, .. } = f {
            seen.insert(incident.id);
        }
    }
    // The first phone: everything up to a pong.
    phone1
        .send(&ClientFrame::Ping {
            reference: Some("end".into()),
        })
        .await
        .unwrap();
    loop {
        match tokio::time::timeout(WAIT, phone1.next())
            .await
            .unwrap()
            .unwrap()
        {
            ServerFrame::Incident { incident, .. } => {
                seen.insert(incident.id);
            }
            ServerFrame::Pong { .. } => break,
            _ => {}
        }
    }
    assert_eq!(
        seen,
        [first.id.clone()].into(),
        "phones saw only the durable one"
    );
    // While writes are refused the hub says it is not ready.
    let ready = reqwest::get(format!("{}/readyz", hub.http()))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    // An ack it cannot record is `unavailable`, never `ok`.
    let ack: ClientFrame = serde_json::from_value(serde_json::json!({
        "type": "ack", "ref": "a1", "incident": first.id, "response": "accept"
    }))
    .unwrap();
    let r = late.request(&ack).await.unwrap().0;
    assert!(
        matches!(&r, Err(gridcast_clients::ClientError::Hub { code, .. }) if code == "unavailable"),
        "{r:?}"
    );
    hub.kill().await;

    // Restarted without the limit: the first incident as it was, the refused ones
    // nowhere; the next incident has an id no phone has seen.
    let hub = ProcHub::start_in(dir, &doc, &[]).await;
    let ops = hub.console("");
    let listed = ops.incidents(None).await.unwrap().incidents;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].incident.id, first.id);
    assert_eq!(listed[0].incident.rev, 1);
    assert_eq!(
        listed[0].counts.pending, 1,
        "the refused ack left no trace either"
    );
    let mut phone2 = LeadClient::connect(&hub.ws_url(), &lead_token("P00000"))
        .await
        .unwrap()
        .0;
    phone2.sync().await.unwrap();
    let next = ops.activate(&one_grid()).await.unwrap();
    assert!(!seen.contains(&next.id), "{} was seen before", next.id);
    loop {
        match tokio::time::timeout(WAIT, phone2.next())
            .await
            .unwrap()
            .unwrap()
        {
            ServerFrame::Incident { incident, .. } if incident.id == next.id => break,
            _ => {}
        }
    }
    assert!(
        phone2.request(&ack).await.unwrap().0.is_ok(),
        "the retried ack is recorded now"
    );
    hub.kill().await;
}

// 6. Reports into any grid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i06_a_lead_reports_only_into_its_own_grids() {
    let hub = ProcHub::start("sec-report", &city(10), &[]).await;
    let send = |grid: &str| -> ClientFrame {
        serde_json::from_value(serde_json::json!({
            "type": "report", "ref": "r", "category": "accident",
            "title": "smoke", "detail": "", "grid": grid
        }))
        .unwrap()
    };
    let code = |r: Result<(), gridcast_clients::ClientError>| match r {
        Ok(()) => "ok".to_owned(),
        Err(gridcast_clients::ClientError::Hub { code, .. }) => code,
        Err(e) => panic!("{e}"),
    };
    // P00000: grid lead of 3301060040051001; P00004: micro lead of 3301060040052001001.
    let mut gl = phone(&hub, "P00000").await;
    assert_eq!(
        code(gl.request(&send("3301060040051001")).await.unwrap().0),
        "ok"
    );
    assert_eq!(
        code(gl.request(&send("3301060040051001001")).await.unwrap().0),
        "ok"
    );
    for elsewhere in [
        "3301060040051002",
        "3301061010051001",
        "3301060040061001001",
    ] {
        assert_eq!(
            code(gl.request(&send(elsewhere)).await.unwrap().0),
            "forbidden",
            "{elsewhere}"
        );
    }
    let mut micro = phone(&hub, "P00004").await;
    assert_eq!(
        code(micro.request(&send("3301060040052001001")).await.unwrap().0),
        "ok"
    );
    assert_eq!(
        code(micro.request(&send("3301060040052001")).await.unwrap().0),
        "forbidden",
        "a micro-grid lead's grid is its micro-grid"
    );
    let all: ReportList = hub.console("").get("/v1/reports").await.unwrap();
    let mut grids: Vec<String> = all.reports.iter().map(|r| r.grid.to_string()).collect();
    grids.sort();
    assert_eq!(
        grids,
        [
            "3301060040051001",
            "3301060040051001001",
            "3301060040052001001"
        ]
    );
    hub.kill().await;
}

// 7. Tokens: expiry ends sessions and streams; scope; lifetime; rotation; revocation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i07_tokens_end_sessions_rotate_and_can_be_revoked() {
    let revoked = tmp_dir("sec-revoked-list");
    std::fs::create_dir_all(&revoked).unwrap();
    let list = revoked.join("revoked.txt");
    std::fs::write(&list, "# nothing revoked yet\n").unwrap();
    let new_key = "the-new-key-0123456789";
    let hub = ProcHub::start(
        "sec-tokens",
        &city(10),
        &[
            "--jwt-secret",
            new_key,
            "--jwt-secret-previous",
            SECRET,
            "--revoked-tokens",
            list.to_str().unwrap(),
            // A session past its token's expiry ends at the next heartbeat tick.
            "--heartbeat-s",
            "1",
        ],
    )
    .await;
    let new_auth = gridcast_hub::auth::Auth::new(new_key.as_bytes());
    let lead_with = |auth: &gridcast_hub::auth::Auth, exp: u64, jti: Option<&str>| {
        auth.sign(&gridcast_hub::auth::Claims {
            sub: "P00001".into(),
            role: TokenRole::Lead,
            scope: String::new(),
            exp,
            jti: jti.map(str::to_owned),
        })
    };

    // A session ends when its token expires (4401) unless a new hello renewed it.
    // Four seconds: time for both sessions to connect and sync on a loaded machine
    // before the token runs out (the renewal must land before its expiry).
    let short = lead_with(&new_auth, now_s() + 4, None);
    let (mut a, _) = LeadClient::connect(&hub.ws_url(), &short).await.unwrap();
    a.sync().await.unwrap();
    let (mut b, _) = LeadClient::connect(&hub.ws_url(), &short).await.unwrap();
    b.sync().await.unwrap();
    b.send(&ClientFrame::Hello {
        token: lead_with(&new_auth, now_s() + 3600, None),
        client: None,
    })
    .await
    .unwrap();
    // A session's frames are handled in order: the pong says the renewal is in force.
    assert!(pings(&mut b).await, "the session renewing itself answers");
    // Both read meanwhile, as phones do: reading answers the hub's heartbeat pings
    // (a session that answers none is rightly dropped after two heartbeats).
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            tokio::select! {
                r = a.next() => match r {
                    Err(gridcast_clients::ClientError::Closed(code)) => break code,
                    Err(e) => panic!("{e}"),
                    Ok(_) => {}
                },
                r = b.next() => {
                    r.expect("the renewed session stays open");
                }
            }
        }
    })
    .await
    .expect("closed in time");
    assert_eq!(closed, 4401);
    // Past the old token's expiry by more than two heartbeat ticks, b is still open:
    // its every tick saw the renewed expiry (each ending tick would have closed it).
    let stayed = tokio::time::timeout(Duration::from_millis(2_500), async {
        loop {
            if let Err(e) = b.next().await {
                panic!("the renewed session was closed: {e}");
            }
        }
    })
    .await;
    assert!(stayed.is_err(), "b read until the window ended");
    assert!(pings(&mut b).await, "the renewed session lives on");

    // An operator's event stream ends when its token expires.
    let op_short = new_auth.sign(&gridcast_hub::auth::Claims {
        sub: "op-short".into(),
        role: TokenRole::Operator,
        scope: String::new(),
        exp: now_s() + 2,
        jti: None,
    });
    let mut stream = reqwest::Client::new()
        .get(format!("{}/v1/console/events", hub.http()))
        .bearer_auth(&op_short)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    tokio::time::timeout(WAIT, async {
        while stream.chunk().await.unwrap().is_some() {}
    })
    .await
    .expect("the stream ends with its token");

    let get = |t: String| {
        let url = format!("{}/v1/incidents", hub.http());
        async move {
            let r = reqwest::Client::new()
                .get(url)
                .bearer_auth(t)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    // scope is required on operator tokens; an empty one is the whole city.
    let no_scope = new_auth.sign_json(&serde_json::json!({
        "sub": "op", "role": "operator", "exp": now_s() + 600
    }));
    let (status, body) = get(no_scope).await;
    assert_eq!(status, 401);
    assert!(body.contains("scope"), "{body}");
    let city_wide = new_auth.sign_json(&serde_json::json!({
        "sub": "op", "role": "operator", "scope": "", "exp": now_s() + 600
    }));
    assert_eq!(get(city_wide).await.0, 200);
    // No token lives for ever: exp in the year 2140.
    let forever = new_auth.sign_json(&serde_json::json!({
        "sub": "op", "role": "admin", "scope": "", "exp": 5_364_662_400u64
    }));
    let (status, body) = get(forever).await;
    assert_eq!(status, 401);
    assert!(body.contains("longer"), "{body}");
    // Rotation: the previous key's tokens still work, a stranger's do not.
    assert_eq!(get(token("op", TokenRole::Operator, "")).await.0, 200);
    let stranger =
        gridcast_hub::auth::Auth::new(b"someone-elses-key-123").sign(&gridcast_hub::auth::Claims {
            sub: "op".into(),
            role: TokenRole::Admin,
            scope: String::new(),
            exp: now_s() + 600,
            jti: None,
        });
    assert_eq!(get(stranger).await.0, 401);

    // Revocation by token id and by subject, at run time.
    let stolen = lead_with(&new_auth, now_s() + 3600, Some("stolen-1"));
    let (mut victim, _) = LeadClient::connect(&hub.ws_url(), &stolen).await.unwrap();
    victim.sync().await.unwrap();
    let mut bystander = phone(&hub, "P00002").await;
    let fired = token("op-fired", TokenRole::Operator, "");
    assert_eq!(get(fired.clone()).await.0, 200);
    std::fs::write(&list, "jti:stolen-1\nsub:op-fired # left the service\n").unwrap();
    let closed = loop {
        match tokio::time::timeout(WAIT, victim.next())
            .await
            .expect("closed in time")
        {
            Err(gridcast_clients::ClientError::Closed(code)) => break code,
            Err(e) => panic!("{e}"),
            Ok(_) => {}
        }
    };
    assert_eq!(closed, 4401);
    let e = LeadClient::connect(&hub.ws_url(), &stolen).await.err();
    assert!(
        matches!(&e, Some(gridcast_clients::ClientError::Hub { code, .. }) if code == "unauthorized"),
        "{e:?}"
    );
    let (status, body) = get(fired).await;
    assert_eq!(status, 401);
    assert!(body.contains("revoked"), "{body}");
    assert!(pings(&mut bystander).await);
    // A broken list keeps the one in force.
    std::fs::write(&list, "this is not a revocation list\n").unwrap();
    eventually(WAIT, "the bad list logged", || async {
        hub.log_text().contains("revocation list not reloaded")
    })
    .await;
    assert!(LeadClient::connect(&hub.ws_url(), &stolen).await.is_err());
    hub.kill().await;
}

// 8. Malformed frames are free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i08_malformed_frames_are_charged_before_decoding() {
    let hub = ProcHub::start("sec-frames", &city(10), &[]).await;
    let created = hub
        .console("")
        .activate(&activation("Fire", &[TOWN_A], &[]))
        .await
        .unwrap();
    let mut c = phone(&hub, "P00000").await;
    let junk = format!("{{{}", "x".repeat(60_000));
    let started = Instant::now();
    for _ in 0..2_000 {
        c.send_text(junk.clone()).await.unwrap();
    }
    let (mut decoded, mut limited) = (0, 0);
    while decoded + limited < 2_000 {
        match tokio::time::timeout(WAIT, c.next()).await.unwrap().unwrap() {
            ServerFrame::Error { code, .. } if code.as_str() == "bad_request" => decoded += 1,
            ServerFrame::Error { code, .. } if code.as_str() == "rate_limited" => limited += 1,
            other => panic!("{other:?}"),
        }
    }
    // 256 KiB of burst and 64 KiB a second hold about four such frames, then one a second.
    let secs = started.elapsed().as_secs_f64();
    let bound = 5 + (secs * 64.0 * 1024.0 / 60_000.0).ceil() as usize;
    assert!(
        decoded <= bound,
        "{decoded} of 2,000 malformed frames decoded in {secs:.1} s (bound {bound})"
    );
    // The session stays usable once the budget refills, and nothing changed.
    let deadline = Instant::now() + WAIT;
    while !pings(&mut c).await {
        assert!(Instant::now() < deadline, "no pong after the flood");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let detail = hub.console("").incident(&created.id).await.unwrap();
    assert_eq!(detail.counts.accepted + detail.counts.declined, 0);
    hub.kill().await;
}

// 9. MQTT trusts anyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i09_mqtt_frames_count_only_after_a_good_hello_until_the_token_expires() {
    use support::mosquitto::Mosquitto;
    use support::mqtt_phone::{MqttPhone, PhoneOpts};
    let broker = Mosquitto::start("sec-mqtt").await;
    let doc = city(5);
    let hub = ProcHub::start("sec-mqtt", &doc, &["--mqtt", &broker.url()]).await;
    let ops = hub.console("");
    let created = ops
        .activate(&activation("Fire", &[TOWN_A], &[]))
        .await
        .unwrap();
    let ack = |r: &str, response: &str| -> ClientFrame {
        serde_json::from_value(serde_json::json!({
            "type": "ack", "ref": r, "incident": created.id, "response": response
        }))
        .unwrap()
    };
    let code = |f: ServerFrame| match f {
        ServerFrame::Ok { .. } => "ok".to_owned(),
        ServerFrame::Error { code, .. } => code.as_str().to_owned(),
        other => panic!("{other:?}"),
    };
    let own = |lead: &str| -> Vec<String> {
        let p = doc.staff.iter().find(|p| p.id == lead).unwrap();
        p.assignments.iter().map(|a| a.grid.clone()).collect()
    };
    // On an anonymous broker the attacker answers for P00001 without a hello, then
    // with a forged token: neither counts.
    let mut attacker = MqttPhone::connect(broker.port, "P00001", PhoneOpts::default()).await;
    attacker.subscribe_own(&own("P00001")).await;
    assert_eq!(
        code(attacker.request(&ack("f1", "accept")).await),
        "unauthorized"
    );
    attacker
        .send(&ClientFrame::Hello {
            token: "forged".into(),
            client: None,
        })
        .await;
    loop {
        if let (_, ServerFrame::Error { code, .. }) = attacker.next().await {
            assert_eq!(code.as_str(), "unauthorized");
            break;
        }
    }
    assert_eq!(
        code(attacker.request(&ack("f2", "accept")).await),
        "unauthorized"
    );
    let counts = ops.incident(&created.id).await.unwrap().counts;
    assert_eq!(
        counts.accepted + counts.declined,
        0,
        "nothing the attacker sent counted"
    );
    attacker.disconnect().await;

    // The lead itself, with a token good for two more seconds: its ack counts, and once
    // the token has expired its frames do not, until it says hello again.
    let mut phone = MqttPhone::connect(broker.port, "P00001", PhoneOpts::default()).await;
    phone.subscribe_own(&own("P00001")).await;
    phone
        .hello(&token_until("P00001", TokenRole::Lead, now_s() + 2, None))
        .await;
    assert_eq!(code(phone.request(&ack("a1", "accept")).await), "ok");
    let deadline = Instant::now() + WAIT;
    let mut n = 0;
    loop {
        n += 1;
        let r = format!("p{n}");
        phone
            .send(&ClientFrame::Ping {
                reference: Some(r.clone()),
            })
            .await;
        let refused = loop {
            match phone.next().await.1 {
                ServerFrame::Pong { reference } if reference.as_deref() == Some(&r) => break false,
                ServerFrame::Error {
                    code,
                    reference: Some(e),
                    ..
                } if e == r => {
                    assert_eq!(code.as_str(), "unauthorized");
                    break true;
                }
                _ => {}
            }
        };
        if refused {
            break;
        }
        assert!(Instant::now() < deadline, "frames still count past expiry");
    }
    assert_eq!(
        code(phone.request(&ack("a2", "decline")).await),
        "unauthorized"
    );
    let d = ops.incident(&created.id).await.unwrap();
    assert_eq!((d.counts.accepted, d.counts.declined), (1, 0));
    phone.hello(&lead_token("P00001")).await;
    assert_eq!(code(phone.request(&ack("a3", "decline")).await), "ok");
    phone.disconnect().await;
    hub.kill().await;

    // In a cluster the nodes share what they know: one hello, and frames that the
    // shared subscription hands to either node all count. (A broker of its own: the
    // killed hub's persistent session would still hold a share of the up topic.)
    let broker = Mosquitto::start("sec-mqtt-cluster").await;
    let redis = support::redis::RedisServer::start("sec-mqtt-cluster").await;
    let m = broker.url();
    let nodes = redis
        .cluster(
            "sec-mqtt-cluster",
            &["a", "b"],
            doc.clone(),
            std::sync::Arc::new(gridcast_hub::clock::SystemClock),
            move |c| c.mqtt = Some(m.clone()),
        )
        .await;
    let created = nodes[0]
        .console("")
        .activate(&activation("Flood", &[TOWN_A], &[]))
        .await
        .unwrap();
    let mut phone = MqttPhone::connect(broker.port, "P00000", PhoneOpts::default()).await;
    phone.subscribe_own(&own("P00000")).await;
    phone.hello(&lead_token("P00000")).await;
    for i in 0..8 {
        let response = if i % 2 == 0 { "accept" } else { "decline" };
        let f: ClientFrame = serde_json::from_value(serde_json::json!({
            "type": "ack", "ref": format!("c{i}"), "incident": created.id, "response": response
        }))
        .unwrap();
        assert_eq!(code(phone.request(&f).await), "ok", "frame {i}");
    }
    let ttl = redis.cmd(&["TTL", "gc:mqtt:lead:P00000"]).await;
    assert!(
        matches!(ttl, ::redis::Value::Int(t) if t > 0),
        "the verified lead expires with its token in Redis: {ttl:?}"
    );
    phone.disconnect().await;
    for n in nodes {
        n.stop().await;
    }
}

// 9, continued: the broker never holds the token key; its ACL follows the registry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i09_the_broker_asks_the_hub_and_its_acl_follows_the_registry() {
    let dir = tmp_dir("sec-hook");
    std::fs::create_dir_all(&dir).unwrap();
    let acl_path = dir.join("mosquitto.acl");
    let broker_key = "the-brokers-own-key-0123";
    let mut doc = city(5);
    let hub = ProcHub::start_in(
        dir.clone(),
        &doc,
        &[
            "--mqtt-hook-secret",
            broker_key,
            "--mqtt-acl-file",
            acl_path.to_str().unwrap(),
        ],
    )
    .await;
    let http = reqwest::Client::new();
    let ask = |path: &'static str, key: Option<&'static str>, body: serde_json::Value| {
        let mut r = http.post(format!("{}{path}", hub.http())).json(&body);
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        async move {
            let resp = r.send().await.unwrap();
            resp.status().as_u16()
        }
    };
    let me = "P00000";
    let grid = doc.staff[0].assignments[0].grid.clone();
    let login = serde_json::json!({"username": me, "password": lead_token(me)});
    // Without the broker's key the hook says nothing (and the token key is not it).
    assert_eq!(ask("/v1/mqtt/auth", None, login.clone()).await, 401);
    assert_eq!(ask("/v1/mqtt/auth", Some(SECRET), login.clone()).await, 401);
    let key = Some(broker_key);
    assert_eq!(ask("/v1/mqtt/auth", key, login).await, 200);
    for (user, password) in [
        ("P00001", lead_token(me)),
        (me, token("op", TokenRole::Operator, "")),
        (me, token_until(me, TokenRole::Lead, 1, None)),
        (me, "garbage".into()),
    ] {
        let q = serde_json::json!({"username": user, "password": password});
        assert_eq!(ask("/v1/mqtt/auth", key, q).await, 403, "{user}");
    }
    // (topic, acc: 1 read, 2 write, 4 subscribe, status)
    for (topic, acc, want) in [
        (format!("gridcast/v1/grid/{grid}"), 4, 200),
        (format!("gridcast/v1/up/{me}"), 2, 200),
        ("gridcast/v1/up/P00001".to_owned(), 2, 403),
        ("gridcast/v1/lead/P00001".to_owned(), 1, 403),
        ("gridcast/v1/#".to_owned(), 4, 403),
    ] {
        let q = serde_json::json!({"username": me, "topic": topic, "acc": acc});
        assert_eq!(ask("/v1/mqtt/acl", key, q).await, want, "{topic} {acc}");
    }
    // A new lead joins at run time: the hook and the ACL file know it at once.
    eventually(WAIT, "the ACL file", || async { acl_path.exists() }).await;
    let before = std::fs::read_to_string(&acl_path).unwrap();
    assert!(!before.contains("user NEW01"));
    doc.staff.push(gridcast_protocol::registry::StaffDoc {
        id: "NEW01".into(),
        name: "New".into(),
        phone: "13900000001".into(),
        work_contact: None,
        assignments: vec![gridcast_protocol::registry::AssignmentDoc {
            grid: grid.clone(),
            role: "part_time".into(),
        }],
    });
    let admin = ConsoleClient::new(&hub.http(), &admin_token());
    let _: serde_json::Value = admin
        .send_json(reqwest::Method::PUT, "/v1/registry", &doc)
        .await
        .unwrap();
    let q = serde_json::json!({"username": "NEW01", "topic": format!("gridcast/v1/grid/{grid}"), "acc": 4});
    assert_eq!(ask("/v1/mqtt/acl", key, q).await, 200);
    let want = format!("user NEW01\ntopic read gridcast/v1/grid/{grid}");
    eventually(WAIT, "the ACL file follows the registry", || async {
        std::fs::read_to_string(&acl_path).is_ok_and(|a| a.contains(&want))
    })
    .await;
    // Mosquitto takes the file as written.
    let broker = support::mosquitto::Mosquitto::start_with(
        "sec-hook",
        &format!("allow_anonymous true\nacl_file {}\n", acl_path.display()),
    )
    .await;
    drop(broker);
    hub.kill().await;
}

// 10. Redis and the network: a forged PUBLISH is not delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i10_a_publish_by_anyone_who_reaches_redis_is_not_delivered() {
    let redis = support::redis::RedisServer::start("sec-seal").await;
    let doc = city(10);
    let url = redis.url();
    let a = ProcHub::start("sec-seal-a", &doc, &["--redis", &url, "--node-id", "a"]).await;
    let b = ProcHub::start("sec-seal-b", &doc, &["--redis", &url, "--node-id", "b"]).await;
    let mut phone = phone(&b, "P00000").await;
    let grid = "3301060040051001";
    let channel = format!("gc:g:{grid}");
    let now = gridcast_hub::now_ms();
    let forged = serde_json::json!({
        "origin": "a", "whole": true,
        "meta": {
            "id": "INC-999999", "rev": 1, "state": "active", "title": "Evacuate now",
            "body": "Forged", "level": "I", "category": "natural", "drill": false,
            "issued_at": now, "ack_by": now + 60_000,
            "targets": {"codes": [grid], "roles": []}, "issued_by": "attacker"
        },
        "recipients": [{
            "lead": "P00000", "grid": grid, "role": "grid_lead", "status": "pending",
            "delivered_at": null, "acked_at": null
        }]
    })
    .to_string();
    let client = ::redis::Client::open(redis.url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let metrics = format!("{}/metrics", b.http());
    // Published as anyone on this Redis could: dropped, counted, not delivered.
    let _: () = ::redis::AsyncCommands::publish(&mut c, &channel, forged.as_bytes())
        .await
        .unwrap();
    eventually(WAIT, "the forged message dropped", || async {
        metric(&metrics, "gridcast_cluster_forged_total").await >= 1
    })
    .await;
    // The same message sealed with the cluster's key is delivered: only the seal was
    // missing. (An attacker does not have the key.)
    let seal = gridcast_hub::cluster::seal::Seal::new(None, SECRET.as_bytes(), None);
    let sealed = seal.seal(&channel, forged.as_bytes(), gridcast_hub::now_ms());
    let real = a
        .console("")
        .activate(&activation("Real", &[grid], &[]))
        .await
        .unwrap();
    let mut seen = Vec::new();
    loop {
        if let ServerFrame::Incident { incident, .. } = tokio::time::timeout(WAIT, phone.next())
            .await
            .unwrap()
            .unwrap()
        {
            seen.push(incident.id.clone());
            if incident.id == real.id {
                break;
            }
        }
    }
    assert_eq!(
        seen,
        std::slice::from_ref(&real.id),
        "only the real activation reached the phone"
    );
    let _: () = ::redis::AsyncCommands::publish(&mut c, &channel, sealed)
        .await
        .unwrap();
    loop {
        if let ServerFrame::Incident { incident, .. } = tokio::time::timeout(WAIT, phone.next())
            .await
            .unwrap()
            .unwrap()
        {
            assert_eq!(incident.id, "INC-999999");
            break;
        }
    }
    assert_eq!(metric(&metrics, "gridcast_cluster_forged_total").await, 1);
    a.kill().await;
    b.kill().await;
}

// 10, continued: TLS on the hub itself, and a cluster on Redis over TLS with an ACL user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i10_the_hub_serves_tls_and_a_cluster_runs_on_rediss_with_an_acl_user() {
    let dir = tmp_dir("sec-tls");
    let (ca, cert, key) = test_pki(&dir.join("tls"));
    let (cert_s, key_s) = (cert.to_str().unwrap(), key.to_str().unwrap());
    // One node with its own TLS: phones on wss://, the API on https://.
    let hub = ProcHub::start(
        "sec-tls-hub",
        &city(10),
        &["--tls-cert", cert_s, "--tls-key", key_s],
    )
    .await;
    let mut s = tls_connect(hub.addr(), &ca).await.unwrap();
    assert!(
        get_over(&mut s, "/healthz")
            .await
            .starts_with("HTTP/1.1 200")
    );
    let tls = tls_connect(hub.addr(), &ca).await.unwrap();
    let url = format!("wss://127.0.0.1:{}/v1/lead/ws", hub.port);
    let (mut ws, _) = tokio_tungstenite::client_async(url, tls).await.unwrap();
    let sync = hello_and_sync(&mut ws, &lead_token("P00000")).await;
    assert!(sync.is_empty());
    // Plain HTTP on the TLS port gets nothing.
    let mut plain = connect_from(ATTACKER, hub.addr()).await;
    let answer = get_over(&mut plain, "/healthz").await;
    assert!(!answer.contains("200 OK"), "{answer}");
    hub.kill().await;

    // Redis with TLS only and no default user; the hub nodes log in as their own user.
    let port = free_port();
    let acl = dir.join("users.acl");
    std::fs::write(
        &acl,
        "user default off\nuser gridcast on >hub-pass-0123456789 ~gc:* ~{gcp}:* ~{inc:* &gc:* +@all -@admin -@dangerous\n",
    )
    .unwrap();
    let mut redis = tokio::process::Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .args([
            "--tls-cert-file",
            cert_s,
            "--tls-key-file",
            key_s,
            "--tls-ca-cert-file",
            cert_s,
        ])
        .args([
            "--tls-auth-clients",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--aclfile")
        .arg(&acl)
        .arg("--dir")
        .arg(&dir)
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server");
    eventually(WAIT, "redis over TLS", || async {
        tls_connect(SocketAddr::from(([127, 0, 0, 1], port)), &ca)
            .await
            .is_ok()
    })
    .await;
    let url = format!("rediss://gridcast:hub-pass-0123456789@127.0.0.1:{port}/0");
    let args = |node: &'static str| {
        vec![
            "--redis".to_owned(),
            url.clone(),
            "--redis-ca".to_owned(),
            ca.to_str().unwrap().to_owned(),
            "--node-id".to_owned(),
            node.to_owned(),
        ]
    };
    let (aa, ba) = (args("a"), args("b"));
    let aa: Vec<&str> = aa.iter().map(String::as_str).collect();
    let ba: Vec<&str> = ba.iter().map(String::as_str).collect();
    let doc = city(10);
    let a = ProcHub::start("sec-rediss-a", &doc, &aa).await;
    let b = ProcHub::start("sec-rediss-b", &doc, &ba).await;
    let mut phone = phone(&b, "P00000").await;
    let created = a
        .console("")
        .activate(&activation("Fire", &[TOWN_A], &[]))
        .await
        .unwrap();
    loop {
        if let ServerFrame::Incident { incident, .. } = tokio::time::timeout(WAIT, phone.next())
            .await
            .unwrap()
            .unwrap()
        {
            assert_eq!(incident.id, created.id);
            break;
        }
    }
    // A wrong password is refused, and the error does not print it.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_gridcast-hub"))
        .arg("--listen")
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--jwt-secret")
        .arg(SECRET)
        .arg("--redis")
        .arg(format!(
            "rediss://gridcast:wrong-pass-0123456@127.0.0.1:{port}/0"
        ))
        .arg("--redis-ca")
        .arg(&ca)
        .arg("--data-dir")
        .arg(dir.join("wrong"))
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(!text.contains("wrong-pass"), "{text}");
    a.kill().await;
    b.kill().await;
    let _ = redis.kill().await;
}

// 11. Behind a load balancer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i11_forwarded_for_is_believed_only_from_trusted_proxies() {
    let balancer = "127.0.0.3";
    let hub = ProcHub::start(
        "sec-proxy",
        &city(10),
        &[
            "--trusted-proxies",
            "127.0.0.3/32",
            "--connect-rate",
            "1",
            "--connect-burst",
            "3",
        ],
    )
    .await;
    let url = hub.ws_url();
    let t0 = Instant::now();
    // Seconds since the first burst, rounded up: what any bucket may have refilled.
    let refilled = || t0.elapsed().as_secs_f64().ceil() as usize;
    // How many upgrades from `from` with these X-Forwarded-For values get in.
    let burst = |from: &'static str, xff: Vec<String>| {
        let (addr, url) = (hub.addr(), url.clone());
        async move {
            let mut ok = 0;
            let mut held = Vec::new();
            for x in &xff {
                match ws_from(from, addr, &url, &[("x-forwarded-for", x)]).await {
                    Ok(ws) => {
                        ok += 1;
                        held.push(ws);
                    }
                    Err(429) => {}
                    Err(s) => panic!("{s}"),
                }
            }
            ok
        }
    };
    // Through the balancer: each client address has its own bucket.
    let ok = burst(balancer, vec!["203.0.113.1".into(); 8]).await;
    assert!(
        (3..=3 + refilled()).contains(&ok),
        "{ok} of 8 from one client"
    );
    let ok = burst(balancer, vec!["203.0.113.2".into(); 3]).await;
    assert_eq!(ok, 3, "another client behind the same balancer");
    // A client's own claims further left are not believed.
    let spoofed = (0..8)
        .map(|i| format!("198.51.100.{i}, 203.0.113.1"))
        .collect();
    let ok = burst(balancer, spoofed).await;
    assert!(
        ok <= refilled(),
        "{ok}: the spoofed left part opened buckets"
    );
    // The attacker is not a trusted proxy: its header is ignored, its address counts.
    let claims = (0..8).map(|i| format!("198.51.100.{i}")).collect();
    let ok = burst(ATTACKER, claims).await;
    assert!(
        (3..=3 + refilled()).contains(&ok),
        "{ok} of 8 from the attacker"
    );
    // IPv6 clients share one bucket per /64.
    let v6 = (1..=8).map(|i| format!("2001:db8:1:2::{i:x}")).collect();
    let ok = burst(balancer, v6).await;
    assert!((3..=3 + refilled()).contains(&ok), "{ok} of 8 from one /64");
    let ok = burst(balancer, vec!["2001:db8:1:3::1".into(); 3]).await;
    assert_eq!(ok, 3, "the next /64 is someone else");
    hub.kill().await;
}

// 12. Small leaks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i12_personal_data_counts_metrics_and_passwords_stay_private() {
    let metrics_port = free_port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let hub = ProcHub::start("sec-leaks", &city(10), &["--metrics-listen", &metrics_addr]).await;
    // Data dir 0700, every file in it 0600.
    let data = hub.data_dir();
    assert_eq!(mode(&data), 0o700);
    for f in std::fs::read_dir(&data).unwrap() {
        let p = f.unwrap().path();
        assert_eq!(mode(&p), 0o600, "{}", p.display());
    }
    // The console hello counts only the operator's jurisdiction.
    // city(10): P00000..P00009 cycle over town A's grids; P00001 and P00006 also
    // have an assignment in town B, so these three are town A's alone.
    let mut phones = Vec::new();
    for i in [0, 2, 3] {
        phones.push(phone(&hub, &format!("P{i:05}")).await);
    }
    let hello_online = |scope: &'static str| {
        let url = format!("{}/v1/console/events", hub.http());
        async move {
            let mut r = reqwest::Client::new()
                .get(url)
                .bearer_auth(token("op", TokenRole::Operator, scope))
                .send()
                .await
                .unwrap();
            let mut text = String::new();
            while !text.contains("\n\n") {
                let chunk = tokio::time::timeout(WAIT, r.chunk())
                    .await
                    .unwrap()
                    .unwrap()
                    .unwrap();
                text.push_str(&String::from_utf8_lossy(&chunk));
            }
            let data = text
                .lines()
                .find_map(|l| l.strip_prefix("data:"))
                .unwrap()
                .trim()
                .to_owned();
            serde_json::from_str::<serde_json::Value>(&data).unwrap()["online"]
                .as_u64()
                .unwrap()
        }
    };
    assert_eq!(hello_online("").await, 3);
    assert_eq!(hello_online(TOWN_A).await, 3);
    assert_eq!(
        hello_online(TOWN_B).await,
        0,
        "another town sees none of them"
    );
    // /metrics only on --metrics-listen.
    let mut s = connect_from(ATTACKER, hub.addr()).await;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: hub\r\n\r\n")
        .await
        .unwrap();
    assert!(read_head(&mut s, WAIT).await.starts_with("HTTP/1.1 404"));
    assert_eq!(
        metric(
            &format!("http://{metrics_addr}/metrics"),
            "gridcast_sessions"
        )
        .await,
        3
    );
    hub.kill().await;

    // Start-up errors name Redis and the broker without their passwords.
    for args in [
        vec!["--redis", "redis://:hunter2-secret@127.0.0.1:1/0"],
        vec!["--mqtt", "mqtt://hub:hunter2-secret@127.0.0.1:notaport"],
    ] {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_gridcast-hub"))
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", free_port()))
            .arg("--data-dir")
            .arg(tmp_dir("sec-redact"))
            .arg("--jwt-secret")
            .arg(SECRET)
            .args(&args)
            .output()
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("***"), "{text}");
    }
}
