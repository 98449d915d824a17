//! The fallback channel against a local HTTP sink standing in for an SMS/voice gateway:
//! one text per silent lead after its window (none for a lead who answered), tries
//! again on 503 with the same idempotency key, holds a second message to one number
//! back by the gap, takes status callbacks and replies (a `1` counts as an accept),
//! sends nothing for a drill unless it asks, calls grid leads of level I until they
//! answer (叫应), and across a SIGKILL of a real hub child sends no text twice and skips
//! none.

// Test harnesses spawn and wait freely; the hub's conventions (hub/clippy.toml) are
// for the hub itself.
#![allow(clippy::disallowed_methods)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use gridcast_clients::lead::LeadClient;
use gridcast_hub::clock::{Clock, ManualClock};
use gridcast_protocol::api::{AfterAction, FallbackSend, MessageState, TimelineEvent};
use gridcast_protocol::frame::{ClientFrame, ServerFrame};
use gridcast_protocol::model::Response;
use gridcast_protocol::registry::RegistryDoc;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use support::*;

const WAIT: Duration = Duration::from_secs(20);
const KEY: &str = "gateway-shared-key-0123";

fn hmac_hex(ts: &str, body: &[u8]) -> String {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(KEY.as_bytes()).unwrap();
    m.update(ts.as_bytes());
    m.update(b".");
    m.update(body);
    let tag = m.finalize().into_bytes();
    tag.iter().map(|b| format!("{b:02x}")).collect()
}

/// One request the sink got.
#[derive(Clone, Debug)]
struct Got {
    key: String,
    body: FallbackSend,
    /// The hub's clock when it came.
    at: u64,
    /// What the sink answered (0: it never answered).
    answered: u16,
}

/// What the sink does with a request: answer with a status, or never answer.
#[derive(Clone, Copy)]
enum Plan {
    Answer(u16),
    Hold,
}

type Script = Arc<dyn Fn(&FallbackSend, usize, usize) -> Plan + Send + Sync>;

/// A gateway on a free loopback port that checks every signature, records every
/// request and answers as its script says (given the body, how many times this key
/// came before, and how many requests came before in all).
#[derive(Clone)]
struct Sink {
    url: String,
    got: Arc<Mutex<Vec<Got>>>,
}

#[derive(Clone)]
struct SinkState {
    got: Arc<Mutex<Vec<Got>>>,
    script: Script,
    clock: Arc<dyn Clock>,
}

async fn receive(State(s): State<SinkState>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let h = |n: &str| headers.get(n).unwrap().to_str().unwrap().to_owned();
    let ts = h("x-gridcast-timestamp");
    assert_eq!(
        h("x-gridcast-signature"),
        format!("sha256={}", hmac_hex(&ts, &body)),
        "every request is signed"
    );
    let sent: FallbackSend = serde_json::from_slice(&body).unwrap();
    let key = h("idempotency-key");
    assert_eq!(key, sent.message_id);
    let plan = {
        let got = s.got.lock().unwrap();
        let before = got.iter().filter(|g| g.key == key).count();
        (s.script)(&sent, before, got.len())
    };
    let i = {
        let mut got = s.got.lock().unwrap();
        got.push(Got {
            key,
            body: sent,
            at: s.clock.now_ms(),
            answered: 0,
        });
        got.len() - 1
    };
    match plan {
        Plan::Answer(code) => {
            s.got.lock().unwrap()[i].answered = code;
            StatusCode::from_u16(code).unwrap()
        }
        Plan::Hold => std::future::pending().await,
    }
}

impl Sink {
    async fn start(clock: Arc<dyn Clock>, script: Script) -> Sink {
        let got = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .route("/send", axum::routing::post(receive))
            .with_state(SinkState {
                got: got.clone(),
                script,
                clock,
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/send", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Sink { url, got }
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    /// Keys the sink answered 2xx, in order.
    fn taken(&self) -> Vec<String> {
        self.got()
            .into_iter()
            .filter(|g| (200..300).contains(&g.answered))
            .map(|g| g.key)
            .collect()
    }

    async fn wait_taken(&self, n: usize) {
        eventually(WAIT, &format!("{n} messages taken by the sink"), || async {
            self.taken().len() >= n
        })
        .await;
    }
}

/// [`two_grid_city`] with a number of its own for every person.
fn city_with_numbers() -> RegistryDoc {
    let mut doc = two_grid_city();
    for (i, p) in doc.staff.iter_mut().enumerate() {
        p.phone = format!("1390000000{i}");
    }
    doc
}

fn phone_of(doc: &RegistryDoc, lead: &str) -> String {
    doc.staff
        .iter()
        .find(|p| p.id == lead)
        .unwrap()
        .phone
        .clone()
}

/// POSTs `body` to the hub signed with [`KEY`] (or not): status and JSON answer.
async fn signed_post(
    hub: &str,
    path: &str,
    body: &serde_json::Value,
    sign: bool,
) -> (u16, serde_json::Value) {
    signed_post_at(hub, path, body, sign, gridcast_hub::now_ms() / 1000).await
}

/// [`signed_post`] with the timestamp `ts` (Unix seconds).
async fn signed_post_at(
    hub: &str,
    path: &str,
    body: &serde_json::Value,
    sign: bool,
    ts: u64,
) -> (u16, serde_json::Value) {
    let bytes = serde_json::to_vec(body).unwrap();
    let ts = ts.to_string();
    let mut req = reqwest::Client::new()
        .post(format!("{hub}{path}"))
        .header("content-type", "application/json")
        .header("x-gridcast-timestamp", &ts);
    if sign {
        req = req.header(
            "x-gridcast-signature",
            format!("sha256={}", hmac_hex(&ts, &bytes)),
        );
    }
    let r = req.body(bytes).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

async fn events(hub: &TestHub, id: &str, kind: &str) -> Vec<TimelineEvent> {
    hub.console("")
        .timeline(id)
        .await
        .unwrap()
        .events
        .into_iter()
        .filter(|e| e.kind == kind)
        .collect()
}

async fn report(hub: &TestHub, id: &str) -> AfterAction {
    hub.console("")
        .get(&format!("/v1/incidents/{id}/report"))
        .await
        .unwrap()
}

fn gateway(sink: &Sink, calls: bool) -> impl FnOnce(&mut gridcast_hub::Config) {
    let url = sink.url.clone();
    move |c| {
        c.fallback.fallback_webhook = Some(url);
        c.fallback.fallback_secret = Some(KEY.into());
        if !calls {
            c.fallback.callout_levels = Vec::new();
        }
    }
}

async fn connect(hub: &TestHub, id: &str) -> LeadClient {
    let (mut c, _) = LeadClient::connect(&hub.ws_url(), &lead_token(id))
        .await
        .unwrap();
    c.sync().await.unwrap();
    c
}

async fn accept(c: &mut LeadClient, incident: &str) {
    loop {
        let f = tokio::time::timeout(WAIT, c.next()).await.unwrap().unwrap();
        if matches!(&f, ServerFrame::Incident { incident: i, .. } if i.id == incident) {
            break;
        }
    }
    let ack = ClientFrame::Ack {
        incident: incident.into(),
        response: Response::Accept,
        note: None,
        reference: Some("a".into()),
    };
    c.request(&ack).await.unwrap().0.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_leads_get_one_text_and_their_reply_counts_as_an_ack() {
    let start = gridcast_hub::now_ms();
    let clock = Arc::new(ManualClock::new(start));
    // The gateway is busy for the first two tries of S1's first text; every other
    // text goes through.
    let script: Script = Arc::new(|m: &FallbackSend, before: usize, _| {
        if m.message_id == "INC-000001:S1:sms" && before < 2 {
            Plan::Answer(503)
        } else {
            Plan::Answer(202)
        }
    });
    let sink = Sink::start(clock.clone(), script).await;
    let doc = city_with_numbers();
    let hub = TestHub::start_in(
        tmp_dir("fallback-texts"),
        Some(doc.clone()),
        gateway(&sink, false),
        clock.clone(),
    )
    .await;
    let mut a1 = connect(&hub, "A1").await;
    let mut req = activation(
        "Flood",
        &["330106004"],
        &["micro_lead", "part_time", "full_time"],
    );
    req.ack_within_s = Some(30);
    let inc = hub.console("").activate(&req).await.unwrap().id;
    // A1 answers inside its window; S1 and S2 stay silent.
    accept(&mut a1, &inc).await;
    clock.advance(31_000);
    sink.wait_taken(1).await;
    eventually(WAIT, "S1's two refused tries recorded", || async {
        events(&hub, &inc, "fallback_retry").await.len() == 1
    })
    .await;
    // Each retry waits its jittered backoff on the hub's clock (2–4 s, then 4–8 s).
    clock.advance(5_000);
    eventually(WAIT, "S1's second try", || async {
        events(&hub, &inc, "fallback_retry").await.len() == 2
    })
    .await;
    clock.advance(9_000);
    sink.wait_taken(2).await;
    let got = sink.got();
    let mut taken = sink.taken();
    taken.sort();
    assert_eq!(
        taken,
        [format!("{inc}:S1:sms"), format!("{inc}:S2:sms")],
        "exactly one text per silent lead, none for A1"
    );
    let s1: Vec<&Got> = got.iter().filter(|g| g.body.lead == "S1").collect();
    assert_eq!(
        s1.iter()
            .map(|g| (g.answered, g.body.attempt))
            .collect::<Vec<_>>(),
        [(503, 1), (503, 2), (202, 3)],
        "tried again after 503, with the same key"
    );
    let s2 = got.iter().find(|g| g.body.lead == "S2").unwrap();
    assert_eq!(s2.body.to, phone_of(&doc, "S2"));
    assert!(
        s2.body.text.contains("Flood") && s2.body.text.contains("回复1接受"),
        "{}",
        s2.body.text
    );
    assert!(s2.at >= start + 30_000, "sent only after the window");
    // What the hub recorded: two tries refused, two texts taken.
    assert_eq!(events(&hub, &inc, "fallback_sent").await.len(), 2);

    // A status callback reaches the timeline, once however often it comes; an
    // unsigned or forged one is refused.
    let s2_id = format!("{inc}:S2:sms");
    let status = serde_json::json!([{ "message_id": s2_id, "status": "delivered" },
                                     { "message_id": "INC-999999:X:sms", "status": "sent" }]);
    let now_s = gridcast_hub::now_ms() / 1000;
    for ts in [now_s, now_s - 1] {
        let (code, body) =
            signed_post_at(&hub.http(), "/v1/fallback/status", &status, true, ts).await;
        assert_eq!(code, 200, "{body}");
        assert_eq!(body["recorded"], 1);
        assert_eq!(body["unknown"][0], "INC-999999:X:sms");
    }
    // The very same signed request again is a replay.
    let (code, _) = signed_post_at(&hub.http(), "/v1/fallback/status", &status, true, now_s).await;
    assert_eq!(code, 409);
    // A late `sent` never undoes `delivered`.
    let late = serde_json::json!({ "message_id": s2_id, "status": "sent" });
    let (code, _) = signed_post(&hub.http(), "/v1/fallback/status", &late, true).await;
    assert_eq!(code, 200);
    let (code, _) = signed_post(&hub.http(), "/v1/fallback/status", &status, false).await;
    assert_eq!(code, 401);
    let delivered = events(&hub, &inc, "fallback_status").await;
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    assert_eq!(delivered[0].detail.as_deref(), Some("text delivered"));

    // S2 replies 1 by SMS (its number as the carrier writes it): an accept, once.
    let number = format!("+86 {}", phone_of(&doc, "S2"));
    let reply = serde_json::json!({ "from": number, "body": "1" });
    for ts in [now_s, now_s - 1] {
        let (code, body) =
            signed_post_at(&hub.http(), "/v1/fallback/inbound", &reply, true, ts).await;
        assert_eq!(code, 200, "{body}");
        assert_eq!(body["lead"], "S2");
        assert_eq!(body["status"], "accepted");
    }
    let rs = hub
        .console("")
        .recipients(&inc, None)
        .await
        .unwrap()
        .recipients;
    let s2_state = rs.iter().find(|r| r.lead == "S2").unwrap();
    assert_eq!(s2_state.status, gridcast_protocol::model::Status::Accepted);
    assert_eq!(events(&hub, &inc, "fallback_reply").await.len(), 1);
    let (code, _) = signed_post(
        &hub.http(),
        "/v1/fallback/inbound",
        &serde_json::json!({ "from": number, "body": "ok" }),
        true,
    )
    .await;
    assert_eq!(code, 400, "a reply that is neither 1 nor 2");
    let (code, _) = signed_post(
        &hub.http(),
        "/v1/fallback/inbound",
        &serde_json::json!({ "from": "13100000000", "body": "1" }),
        true,
    )
    .await;
    assert_eq!(code, 404, "a number nobody has");
    let rows = report(&hub, &inc).await.fallback;
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter()
            .any(|r| r.lead == "S1" && r.attempts == 3 && r.state == MessageState::Sent)
    );
    assert!(
        rows.iter()
            .any(|r| r.lead == "S2" && r.state == MessageState::Delivered)
    );

    // A second activation to S1 within the number's gap waits for the gap.
    let mut again = activation(
        "Flood, east bank",
        &["3301060040051001001"],
        &["micro_lead"],
    );
    again.ack_within_s = Some(1);
    let second = hub.console("").activate(&again).await.unwrap().id;
    clock.advance(2_000);
    eventually(WAIT, "the second text held back by the gap", || async {
        metric(&hub.http(), "gridcast_fallback_throttled_total").await >= 1
    })
    .await;
    clock.advance(30_000);
    sink.wait_taken(3).await;
    let got = sink.got();
    let first_s1 = got
        .iter()
        .rfind(|g| g.key == format!("{inc}:S1:sms"))
        .unwrap();
    let second_s1 = got
        .iter()
        .find(|g| g.key == format!("{second}:S1:sms"))
        .unwrap();
    assert!(
        second_s1.at >= first_s1.at + 30_000,
        "one number, one text per 30 s: {} then {}",
        first_s1.at,
        second_s1.at
    );

    // S1 had a text for both: a bare reply answers the newest, one naming the
    // incident answers that one.
    let s1_number = phone_of(&doc, "S1");
    let bare = serde_json::json!({ "from": s1_number, "body": "2" });
    let (code, body) = signed_post(&hub.http(), "/v1/fallback/inbound", &bare, true).await;
    assert_eq!(
        (code, body["incident"].as_str()),
        (200, Some(second.as_str())),
        "{body}"
    );
    let named = serde_json::json!({ "from": s1_number, "body": format!("1 {inc}") });
    let (code, body) = signed_post(&hub.http(), "/v1/fallback/inbound", &named, true).await;
    assert_eq!(
        (code, body["incident"].as_str()),
        (200, Some(inc.as_str())),
        "{body}"
    );
    assert_eq!(body["status"], "accepted");

    // A drill reaches no gateway unless it asks to.
    let mut drill = activation("Drill", &["3301060040051002"], &["part_time"]);
    drill.drill = true;
    drill.ack_within_s = Some(1);
    let quiet = hub.console("").activate(&drill).await.unwrap().id;
    drill.fallback = true;
    let loud = hub.console("").activate(&drill).await.unwrap().id;
    clock.advance(2_000);
    for id in [&quiet, &loud] {
        eventually(WAIT, "the drill's step 1", || async {
            !events(&hub, id, "escalated").await.is_empty()
        })
        .await;
    }
    assert!(
        report(&hub, &quiet).await.fallback.is_empty(),
        "nothing queued for a drill"
    );
    sink.wait_taken(4).await;
    let drill_text = sink
        .got()
        .into_iter()
        .find(|g| g.body.incident == loud)
        .unwrap();
    assert!(drill_text.body.drill && drill_text.body.text.starts_with("【演练】"));
    assert!(!sink.got().iter().any(|g| g.body.incident == quiet));
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn level_one_grid_leads_are_called_until_a_call_is_picked_up() {
    let clock = Arc::new(ManualClock::new(gridcast_hub::now_ms()));
    let sink = Sink::start(
        clock.clone(),
        Arc::new(|_: &FallbackSend, _, _| Plan::Answer(200)),
    )
    .await;
    let hub = TestHub::start_in(
        tmp_dir("fallback-calls"),
        Some(city_with_numbers()),
        |c| {
            gateway(&sink, true)(c);
            c.fallback.callout_interval_s = 30;
        },
        clock.clone(),
    )
    .await;
    let mut gl2 = connect(&hub, "GL2").await;
    let mut req = activation("Chemical leak", &["330106004"], &["grid_lead"]);
    req.level = gridcast_protocol::Level::I;
    req.ack_within_s = Some(60);
    let inc = hub.console("").activate(&req).await.unwrap().id;
    // GL2 answers; GL1 does not.
    accept(&mut gl2, &inc).await;
    clock.advance(61_000);
    sink.wait_taken(2).await;
    let calls = |g: &[Got]| -> Vec<u32> {
        let mut v: Vec<u32> = g
            .iter()
            .filter(|g| g.body.channel == gridcast_protocol::api::Channel::Voice)
            .map(|g| g.key.rsplit("call").next().unwrap().parse().unwrap())
            .collect();
        v.sort();
        v
    };
    assert_eq!(calls(&sink.got()), [1], "GL1 called once, GL2 not at all");
    assert!(sink.got().iter().all(|g| g.body.lead == "GL1"));
    // Call 1 rings out; call 2 comes one interval later and is picked up.
    let (code, _) = signed_post(
        &hub.http(),
        "/v1/fallback/status",
        &serde_json::json!({ "message_id": format!("{inc}:GL1:call1"), "status": "no_answer" }),
        true,
    )
    .await;
    assert_eq!(code, 200);
    clock.advance(31_000);
    sink.wait_taken(3).await;
    assert_eq!(calls(&sink.got()), [1, 2]);
    let (code, _) = signed_post(
        &hub.http(),
        "/v1/fallback/status",
        &serde_json::json!({ "message_id": format!("{inc}:GL1:call2"), "status": "answered" }),
        true,
    )
    .await;
    assert_eq!(code, 200);
    clock.advance(31_000);
    eventually(WAIT, "call 3 cancelled", || async {
        report(&hub, &inc)
            .await
            .fallback
            .iter()
            .any(|r| r.call == 3 && r.state == MessageState::Cancelled)
    })
    .await;
    assert_eq!(
        calls(&sink.got()),
        [1, 2],
        "no call after one was picked up"
    );
    // Every attempt and its outcome, on the timeline and in the report.
    let statuses: Vec<String> = events(&hub, &inc, "fallback_status")
        .await
        .into_iter()
        .filter_map(|e| e.detail)
        .collect();
    assert_eq!(
        statuses,
        [
            "call 1: no answer",
            "call 2 picked up; the message was read to the lead"
        ]
    );
    let rows = report(&hub, &inc).await.fallback;
    let states: Vec<(u32, MessageState)> = rows
        .iter()
        .filter(|r| r.channel == gridcast_protocol::api::Channel::Voice)
        .map(|r| (r.call, r.state))
        .collect();
    assert_eq!(
        states,
        [
            (1, MessageState::Sent),
            (2, MessageState::Answered),
            (3, MessageState::Cancelled)
        ]
    );
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_killed_while_sending_sends_no_text_twice_and_skips_none() {
    const LEADS: usize = 20;
    let dir = tmp_dir("fallback-restart");
    std::fs::create_dir_all(&dir).unwrap();
    let mut doc = two_grid_city();
    let template = doc.staff[3].clone();
    doc.staff = (0..LEADS)
        .map(|i| {
            let mut p = template.clone();
            p.id = format!("W{i:02}");
            p.phone = format!("1381234{i:04}");
            p
        })
        .collect();
    let registry = dir.join("registry.json");
    std::fs::write(&registry, serde_json::to_vec(&doc).unwrap()).unwrap();
    // Until the kill, the sink never answers the 5th request nor any from the 10th on:
    // those are in flight when the hub dies. After it, it answers everything.
    let after_kill = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let phase = after_kill.clone();
    let script: Script = Arc::new(move |_: &FallbackSend, _, n: usize| {
        if phase.load(std::sync::atomic::Ordering::SeqCst) || (n != 4 && n < 9) {
            Plan::Answer(200)
        } else {
            Plan::Hold
        }
    });
    let sink = Sink::start(Arc::new(gridcast_hub::clock::SystemClock), script).await;
    let port = free_port();
    let http = format!("http://127.0.0.1:{port}");
    let log = dir.join("hub.log");
    let args: Vec<String> = [
        "--data-dir",
        dir.join("data").to_str().unwrap(),
        "--registry",
        registry.to_str().unwrap(),
        "--fallback-webhook",
        &sink.url,
        "--fallback-secret",
        KEY,
        "--fallback-rate",
        "5",
    ]
    .map(str::to_owned)
    .to_vec();
    let mut first = spawn_hub_logged(port, &args, &log).await;
    let ops = gridcast_clients::console::ConsoleClient::new(
        &http,
        &token("op-1", gridcast_hub::auth::TokenRole::Operator, ""),
    );
    let mut req = activation("Typhoon", &["330106004"], &["full_time"]);
    req.level = gridcast_protocol::Level::III;
    req.ack_within_s = Some(1);
    let inc = ops.activate(&req).await.unwrap().id;
    // The kill comes once ten requests left and the eight answered ones are recorded.
    eventually(WAIT, "ten requests, eight recorded", || async {
        let sent = ops
            .timeline(&inc)
            .await
            .map(|t| {
                t.events
                    .iter()
                    .filter(|e| e.kind == "fallback_sent")
                    .count()
            })
            .unwrap_or(0);
        sink.got().len() >= 10 && sent == 8
    })
    .await;
    first.start_kill().unwrap();
    first.wait().await.unwrap();
    let before_kill = sink.got();
    after_kill.store(true, std::sync::atomic::Ordering::SeqCst);
    let _second = spawn_hub_logged(port, &args, &log).await;
    // The messages the dead hub held are its lease's (15 s) away from any sender.
    eventually(
        Duration::from_secs(60),
        "every lead's text taken",
        || async {
            let mut keys = sink.taken();
            keys.sort();
            keys.dedup();
            keys.len() == LEADS
        },
    )
    .await;
    let got = sink.got();
    for i in 0..LEADS {
        let key = format!("{inc}:W{i:02}:sms");
        let tries: Vec<&Got> = got.iter().filter(|g| g.key == key).collect();
        let taken = tries
            .iter()
            .filter(|g| (200..300).contains(&g.answered))
            .count();
        assert_eq!(taken, 1, "{key}: taken once ({} requests)", tries.len());
        let answered_before = before_kill
            .iter()
            .any(|g| g.key == key && g.answered == 200);
        if answered_before {
            assert_eq!(
                tries.len(),
                1,
                "{key} was taken before the kill: never sent again"
            );
        }
        assert!(
            tries.iter().all(|g| g.body.text == tries[0].body.text),
            "{key}: the same text each time"
        );
    }
    assert!(
        got.len() > LEADS,
        "the messages in flight at the kill were sent again (same key)"
    );
    // Phone numbers never reach the log.
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("fallback"),
        "the log has the fallback channel's lines"
    );
    for p in &doc.staff {
        assert!(!text.contains(&p.phone), "{} appears in the log", p.phone);
    }
}
