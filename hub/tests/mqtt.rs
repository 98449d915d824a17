//! MQTT leads through a real `mosquitto` started per test on a free port: MQTT and
//! WebSocket leads in one incident, Last Will presence, a broker restart, the shipped
//! ACL, and a stock `mosquitto_sub`/`mosquitto_pub` lead.

// Test harnesses spawn and wait freely; the hub's conventions (hub/clippy.toml) are
// for the hub itself.
#![allow(clippy::disallowed_methods)]

mod support;

use std::time::{Duration, Instant};

use gridcast_clients::lead::LeadClient;
use gridcast_protocol::Status;
use gridcast_protocol::frame::{ClientFrame, ServerFrame};
use gridcast_protocol::model::Response;
use gridcast_protocol::registry::RegistryDoc;
use support::mosquitto::Mosquitto;
use support::mqtt_phone::{MqttPhone, PhoneOpts};
use support::*;

async fn hub_on(name: &str, broker: &Mosquitto, registry: RegistryDoc) -> TestHub {
    let url = broker.url();
    let hub = TestHub::start(name, Some(registry), move |c| c.mqtt = Some(url)).await;
    ready_is(&hub.http(), true, Duration::from_secs(20)).await;
    hub
}

fn grids_of(doc: &RegistryDoc, lead: &str) -> Vec<String> {
    let p = doc.staff.iter().find(|p| p.id == lead).unwrap();
    let mut g: Vec<String> = p.assignments.iter().map(|a| a.grid.clone()).collect();
    g.dedup();
    g
}

/// An MQTT phone that is subscribed and has said hello (sync read).
async fn mqtt_lead(broker: &Mosquitto, doc: &RegistryDoc, lead: &str, clean: bool) -> MqttPhone {
    let opts = PhoneOpts {
        clean,
        ..PhoneOpts::default()
    };
    let mut p = MqttPhone::connect(broker.port, lead, opts).await;
    p.subscribe_own(&grids_of(doc, lead)).await;
    let sync = p.hello(&lead_token(lead)).await;
    assert!(
        matches!(sync.first(), Some(ServerFrame::Welcome { .. })),
        "{sync:?}"
    );
    p
}

fn ack(incident: &str, reference: &str) -> ClientFrame {
    ClientFrame::Ack {
        incident: incident.into(),
        response: Response::Accept,
        note: None,
        reference: Some(reference.into()),
    }
}

async fn wait_online(hub: &TestHub, n: usize) {
    let console = hub.console("");
    eventually(Duration::from_secs(10), &format!("{n} online"), || {
        let console = console.clone();
        async move { console.presence("", false).await.unwrap().online == n }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_and_websocket_leads_share_one_incident_and_exact_counts() {
    let broker = Mosquitto::start("mixed").await;
    let doc = city(40);
    let hub = hub_on("mqtt-mixed", &broker, doc.clone()).await;
    // 20 on MQTT (every other one with a persistent session), 20 on WebSocket.
    let mut mqtt = Vec::new();
    let mut ws = Vec::new();
    for (i, p) in doc.staff.iter().enumerate() {
        if i % 2 == 0 {
            mqtt.push(mqtt_lead(&broker, &doc, &p.id, i % 4 == 0).await);
        } else {
            let (mut c, _) = LeadClient::connect(&hub.ws_url(), &lead_token(&p.id))
                .await
                .unwrap();
            c.sync().await.unwrap();
            ws.push(c);
        }
    }
    wait_online(&hub, 40).await;
    // One lead on both channels is online once, with both listed.
    let both = doc.staff[0].id.clone();
    let (mut both_ws, _) = LeadClient::connect(&hub.ws_url(), &lead_token(&both))
        .await
        .unwrap();
    both_ws.sync().await.unwrap();
    let presence = hub.console("").presence("", true).await.unwrap();
    assert_eq!(presence.online, 40);
    let leads = presence.leads.unwrap();
    let row = leads.iter().find(|l| l.id == both).unwrap_or_else(|| {
        panic!(
            "{both} not in {:?}",
            leads
                .iter()
                .map(|l| (&l.id, &l.channels))
                .collect::<Vec<_>>()
        )
    });
    assert_eq!(row.channels, ["mqtt", "ws"]);

    let ops = hub.console("");
    let created = ops
        .activate(&activation("Flood", &["330106"], &[]))
        .await
        .unwrap();
    assert_eq!((created.recipients, created.online), (40, 40));
    for (n, p) in mqtt.iter_mut().enumerate() {
        let (topic, f) = p.incident(&created.id).await;
        assert!(topic.starts_with("gridcast/v1/"), "{topic}");
        let ServerFrame::Incident { incident, .. } = f else {
            unreachable!()
        };
        let receipt = ClientFrame::Receipt {
            incident: created.id.clone(),
            rev: incident.rev,
            reference: Some(format!("r{n}")),
        };
        assert!(matches!(p.request(&receipt).await, ServerFrame::Ok { .. }));
        assert!(matches!(
            p.request(&ack(&created.id, &format!("a{n}"))).await,
            ServerFrame::Ok { .. }
        ));
    }
    for (n, c) in ws.iter_mut().enumerate() {
        loop {
            if let ServerFrame::Incident { incident, .. } = c.next().await.unwrap()
                && incident.id == created.id
            {
                break;
            }
        }
        if n % 2 == 0 {
            c.request(&ack(&created.id, "a")).await.unwrap().0.unwrap();
        }
    }
    let d = ops.incident(&created.id).await.unwrap();
    assert_eq!(
        (d.counts.accepted, d.counts.delivered, d.counts.pending),
        (30, 0, 10),
        "20 MQTT + 10 WebSocket accepted, 10 WebSocket leads silent"
    );

    // A role-filtered incident reaches only its recipients, even on MQTT; a sentinel to
    // everyone proves the others never got it.
    let filtered = ops
        .activate(&activation("Leads only", &["330106"], &["grid_lead"]))
        .await
        .unwrap();
    let sentinel = ops
        .activate(&activation("Sentinel", &["330106"], &[]))
        .await
        .unwrap();
    let grid_leads: Vec<&str> = doc
        .staff
        .iter()
        .filter(|p| p.assignments.iter().any(|a| a.role == "grid_lead"))
        .map(|p| p.id.as_str())
        .collect();
    for p in &mut mqtt {
        let mut seen = Vec::new();
        loop {
            let (topic, f) = p.next().await;
            if let ServerFrame::Incident { incident, me } = f {
                // On a lead topic with `me`; on a grid topic (every reader of that grid
                // is a recipient) without.
                if incident.id == filtered.id {
                    match me {
                        Some(me) => assert_eq!(me.role, gridcast_protocol::Role::GridLead),
                        None => assert!(topic.starts_with("gridcast/v1/grid/"), "{topic}"),
                    }
                }
                seen.push(incident.id.clone());
                if incident.id == sentinel.id {
                    break;
                }
            }
        }
        assert_eq!(
            seen.contains(&filtered.id),
            grid_leads.contains(&p.lead.as_str()),
            "{}: {seen:?}",
            p.lead
        );
    }
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unclean_drop_fires_the_will_and_a_clean_reconnect_restores_presence() {
    let broker = Mosquitto::start("will").await;
    let doc = city(5);
    let hub = hub_on("mqtt-will", &broker, doc.clone()).await;
    let lead = doc.staff[0].id.clone();
    let opts = PhoneOpts {
        keep_alive_s: 5,
        ..PhoneOpts::default()
    };
    let phone = MqttPhone::connect(broker.port, &lead, opts).await;
    wait_online(&hub, 1).await;
    let dropped = Instant::now();
    phone.drop_unclean();
    // The will is `offline`; presence follows within the keepalive bound (1.5 × 5 s).
    let console = hub.console("");
    eventually(
        Duration::from_millis(7_500),
        "the will to take the lead offline",
        || {
            let console = console.clone();
            async move { console.presence("", false).await.unwrap().online == 0 }
        },
    )
    .await;
    eprintln!("offline {:?} after the unclean drop", dropped.elapsed());
    let phone = MqttPhone::connect(broker.port, &lead, PhoneOpts::default()).await;
    wait_online(&hub, 1).await;
    phone.disconnect().await;
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_killed_and_restarted_mid_incident_the_hub_and_leads_recover() {
    let mut broker = Mosquitto::start("restart").await;
    let doc = city(10);
    let hub = hub_on("mqtt-restart", &broker, doc.clone()).await;
    let mut phones = Vec::new();
    for p in &doc.staff {
        phones.push(mqtt_lead(&broker, &doc, &p.id, true).await);
    }
    let ops = hub.console("");
    let created = ops
        .activate(&activation("Fire", &["330106"], &[]))
        .await
        .unwrap();
    for p in &mut phones {
        p.incident(&created.id).await;
    }
    assert!(matches!(
        phones[0].request(&ack(&created.id, "a0")).await,
        ServerFrame::Ok { .. }
    ));

    broker.kill().await;
    ready_is(&hub.http(), false, Duration::from_secs(10)).await;
    broker.restart().await;
    ready_is(&hub.http(), true, Duration::from_secs(20)).await;
    // Phones reconnect by themselves (clean sessions: subscribe again) and say hello.
    for (n, p) in phones.iter_mut().enumerate() {
        p.until_connack().await;
        p.subscribe_own(&grids_of(&doc, &p.lead.clone())).await;
        let sync = p.hello(&lead_token(&p.lead.clone())).await;
        let mine: Vec<Status> = sync
            .iter()
            .filter_map(|f| match f {
                ServerFrame::Incident { incident, me } if incident.id == created.id => {
                    Some(me.as_ref().unwrap().status)
                }
                _ => None,
            })
            .collect();
        let want = if n == 0 {
            Status::Accepted
        } else {
            Status::Pending
        };
        assert_eq!(mine, [want], "{}", p.lead);
    }
    let second = ops
        .activate(&activation("Fire spreads", &["330106"], &[]))
        .await
        .unwrap();
    for p in &mut phones {
        p.incident(&second.id).await;
    }
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_acl_confines_each_lead_to_its_own_topics() {
    let doc = city(10);
    let dir = tmp_dir("mqtt-acl-files");
    std::fs::create_dir_all(&dir).unwrap();
    let registry = dir.join("registry.json");
    std::fs::write(&registry, serde_json::to_vec(&doc).unwrap()).unwrap();
    // The ACL as an operator makes it: `gridcast-hub mqtt-acl`.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gridcast-hub"))
        .arg("--registry")
        .arg(&registry)
        .arg("mqtt-acl")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let acl = dir.join("acl");
    std::fs::write(&acl, &out.stdout).unwrap();
    let passwd = dir.join("passwd");
    for (user, pw) in [
        ("gridcast-hub", "hub-pw"),
        ("P00000", "p0-pw"),
        ("P00001", "p1-pw"),
    ] {
        let mut cmd = std::process::Command::new("mosquitto_passwd");
        if !passwd.exists() {
            cmd.arg("-c");
        }
        let st = cmd
            .arg("-b")
            .arg(&passwd)
            .arg(user)
            .arg(pw)
            .status()
            .unwrap();
        assert!(st.success());
    }
    let broker = Mosquitto::start_with(
        "acl",
        &format!(
            "allow_anonymous false\npassword_file {}\nacl_file {}\n",
            passwd.display(),
            acl.display()
        ),
    )
    .await;
    let url = format!("mqtt://gridcast-hub:hub-pw@127.0.0.1:{}", broker.port);
    let hub = TestHub::start("mqtt-acl", Some(doc.clone()), move |c| c.mqtt = Some(url)).await;
    ready_is(&hub.http(), true, Duration::from_secs(20)).await;

    let opts = |pw: &str| PhoneOpts {
        password: Some(pw.into()),
        ..PhoneOpts::default()
    };
    let mut p0 = MqttPhone::connect(broker.port, "P00000", opts("p0-pw")).await;
    let mut p1 = MqttPhone::connect(broker.port, "P00001", opts("p1-pw")).await;
    p0.subscribe_own(&grids_of(&doc, "P00000")).await;
    p1.subscribe_own(&grids_of(&doc, "P00001")).await;
    // P00000 may not read P00001's grid nor its lead topic ...
    let other_grid = grids_of(&doc, "P00001")
        .into_iter()
        .find(|g| !grids_of(&doc, "P00000").contains(g))
        .unwrap();
    // (Mosquitto grants the subscriptions and then delivers nothing on them.)
    p0.subscribe(&format!("gridcast/v1/grid/{other_grid}"))
        .await;
    p0.subscribe("gridcast/v1/lead/P00001").await;
    // ... nor publish on P00001's up topic: the broker refuses, the hub never sees it.
    let created = hub
        .console("")
        .activate(&activation("Fire", &["330106"], &[]))
        .await
        .unwrap();
    p1.incident(&created.id).await;
    let forged = serde_json::to_vec(&ack(&created.id, "forged")).unwrap();
    assert_eq!(
        p0.publish_raw("gridcast/v1/up/P00001", forged).await,
        "NotAuthorized"
    );
    // P00001's own ack goes through once it has said hello; its status is its own
    // answer, counted once.
    p1.hello(&lead_token("P00001")).await;
    assert!(matches!(
        p1.request(&ack(&created.id, "own")).await,
        ServerFrame::Ok { .. }
    ));
    let d = hub.console("").incident(&created.id).await.unwrap();
    assert_eq!(d.counts.accepted, 1);
    // Up to a sentinel, P00000 saw the first incident once (its own grid only) and
    // nothing of P00001's lead topic (its `ok`).
    let sentinel = hub
        .console("")
        .activate(&activation("Sentinel", &["330106"], &[]))
        .await
        .unwrap();
    let mut seen = Vec::new();
    loop {
        let (topic, f) = p0.next().await;
        if let ServerFrame::Incident { incident, .. } = &f
            && incident.id == sentinel.id
        {
            break;
        }
        seen.push((topic, f));
    }
    let firsts = seen
        .iter()
        .filter(|(_, f)| matches!(f, ServerFrame::Incident { incident, .. } if incident.id == created.id))
        .count();
    assert_eq!(firsts, 1, "{seen:?}");
    assert!(
        seen.iter()
            .all(|(t, _)| !t.ends_with("/P00001") && !t.ends_with(&other_grid)),
        "{seen:?}"
    );
    hub.stop().await;
}

/// `mosquitto_sub -v` on some topics, read line by line.
struct StockSub {
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    _child: tokio::process::Child,
}

impl StockSub {
    fn start(port: u16, topics: &[String]) -> StockSub {
        let mut cmd = tokio::process::Command::new("mosquitto_sub");
        cmd.args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-V",
            "mqttv5",
            "-q",
            "1",
            "-v",
        ]);
        for t in topics {
            cmd.args(["-t", t]);
        }
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("mosquitto_sub (apt-get install mosquitto-clients)");
        let out = child.stdout.take().unwrap();
        StockSub {
            lines: tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(out)),
            _child: child,
        }
    }

    async fn line(&mut self, within: Duration) -> Option<String> {
        tokio::time::timeout(within, self.lines.next_line())
            .await
            .ok()
            .and_then(|l| l.ok().flatten())
    }

    /// The next line that is not a probe.
    async fn next(&mut self) -> String {
        loop {
            let l = self
                .line(Duration::from_secs(10))
                .await
                .expect("a line in time");
            if !l.ends_with(PROBE) {
                return l;
            }
        }
    }
}

const PROBE: &str = r#"{"type":"pong","ref":"probe"}"#;

async fn stock_pub(port: u16, topic: &str, message: &str) {
    let st = tokio::process::Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-q",
            "1",
            "-t",
            topic,
            "-m",
            message,
        ])
        .status()
        .await
        .expect("mosquitto_pub (apt-get install mosquitto-clients)");
    assert!(st.success());
}

/// Publishes probes on `topic` until `sub` shows one: it is subscribed.
async fn until_subscribed(port: u16, topic: &str, sub: &mut StockSub) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        stock_pub(port, topic, PROBE).await;
        if sub
            .line(Duration::from_millis(300))
            .await
            .is_some_and(|l| l.ends_with(PROBE))
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "mosquitto_sub never subscribed"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stock_mosquitto_client_gets_the_incident_and_its_ok() {
    let broker = Mosquitto::start("stock").await;
    let doc = city(5);
    let hub = hub_on("mqtt-stock", &broker, doc.clone()).await;
    let lead = doc.staff[0].id.clone();
    let grid = grids_of(&doc, &lead)[0].clone();
    let lead_topic = format!("gridcast/v1/lead/{lead}");
    let grid_topic = format!("gridcast/v1/grid/{grid}");
    // A phone that is nothing but mosquitto_sub and mosquitto_pub.
    let mut sub = StockSub::start(broker.port, &[lead_topic.clone(), grid_topic.clone()]);
    until_subscribed(broker.port, &lead_topic, &mut sub).await;

    let created = hub
        .console("")
        .activate(&activation("Flood", &["330106"], &[]))
        .await
        .unwrap();
    let line = sub.next().await;
    assert!(line.starts_with(&format!("{grid_topic} ")), "{line}");
    assert!(
        line.contains(&created.id) && line.contains(r#""type":"incident""#),
        "{line}"
    );

    let ack = format!(
        r#"{{"type":"ack","incident":"{}","response":"accept","ref":"a1"}}"#,
        created.id
    );
    let up = format!("gridcast/v1/up/{lead}");
    // Before a hello the ack does not count: anyone can publish on an open broker.
    stock_pub(broker.port, &up, &ack).await;
    let refused = sub.next().await;
    assert!(
        refused.starts_with(&lead_topic)
            && refused.contains(r#""code":"unauthorized""#)
            && refused.contains(r#""ref":"a1""#),
        "{refused}"
    );
    assert_eq!(
        hub.console("")
            .incident(&created.id)
            .await
            .unwrap()
            .counts
            .accepted,
        0
    );
    // After a hello with the lead's token it does.
    let hello = format!(r#"{{"type":"hello","token":"{}"}}"#, lead_token(&lead));
    stock_pub(broker.port, &up, &hello).await;
    loop {
        if sub.next().await.contains(r#""type":"synced""#) {
            break;
        }
    }
    stock_pub(broker.port, &up, &ack).await;
    loop {
        let line = sub.next().await;
        if line.contains(r#""ref":"a1""#) {
            assert_eq!(line, format!(r#"{lead_topic} {{"type":"ok","ref":"a1"}}"#));
            break;
        }
    }
    let d = hub.console("").incident(&created.id).await.unwrap();
    assert_eq!(d.counts.accepted, 1);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_activation_recorded_but_never_published_is_finished_by_the_outbox() {
    let mut broker = Mosquitto::start("outbox").await;
    broker.kill().await; // the broker is away while the first hub runs
    let doc = city(5);
    let dir = tmp_dir("mqtt-outbox");
    std::fs::create_dir_all(&dir).unwrap();
    let registry = dir.join("registry.json");
    std::fs::write(&registry, serde_json::to_vec(&doc).unwrap()).unwrap();
    let port = free_port();
    let broker_url = broker.url();
    let hub_process = || {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_gridcast-hub"))
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--jwt-secret")
            .arg(SECRET)
            .arg("--data-dir")
            .arg(dir.join("data"))
            .arg("--registry")
            .arg(&registry)
            .arg("--mqtt")
            .arg(&broker_url)
            .env("GRIDCAST_APPROVAL_LEVELS", "none")
            .env("GRIDCAST_APPROVAL_COUNTY_WIDE", "false")
            .env("GRIDCAST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    };
    let base = format!("http://127.0.0.1:{port}");
    let mut first = hub_process();
    let http = reqwest::Client::new();
    eventually(Duration::from_secs(30), "hub up", || {
        let (http, url) = (http.clone(), format!("{base}/healthz"));
        async move { http.get(url).send().await.is_ok() }
    })
    .await;
    let ops = gridcast_clients::console::ConsoleClient::new(
        &base,
        &token("op", gridcast_hub::auth::TokenRole::Operator, ""),
    );
    // Recorded (201) while the broker is away, then the node dies before publishing.
    let created = ops
        .activate(&activation("Fire", &["330106"], &[]))
        .await
        .unwrap();
    first.kill().await.unwrap();

    broker.restart().await;
    let lead = doc.staff[0].id.clone();
    let mut phone = MqttPhone::connect(broker.port, &lead, PhoneOpts::default()).await;
    phone.subscribe_own(&grids_of(&doc, &lead)).await;
    // The node comes back (or, in a cluster, any node sweeps): the outbox finishes it.
    let _second = hub_process();
    let (topic, _) = phone.incident(&created.id).await;
    assert!(topic.starts_with("gridcast/v1/grid/"), "{topic}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_cluster_each_change_is_published_once_and_each_frame_handled_once() {
    let redis = support::redis::RedisServer::start("mqtt-cluster").await;
    let broker = Mosquitto::start("cluster").await;
    let doc = city(5);
    let m = broker.url();
    let nodes = redis
        .cluster(
            "mqtt-cluster",
            &["a", "b"],
            doc.clone(),
            std::sync::Arc::new(gridcast_hub::clock::SystemClock),
            move |c| c.mqtt = Some(m.clone()),
        )
        .await;
    let lead = doc.staff[0].id.clone();
    let mut phone = mqtt_lead(&broker, &doc, &lead, true).await;
    wait_online(&nodes[1], 1).await;
    let ops = nodes[0].console("");
    let created = ops
        .activate(&activation("Fire", &["330106"], &[]))
        .await
        .unwrap();
    assert_eq!(created.online, 1, "the MQTT phone, counted once");
    let (topic, _) = phone.incident(&created.id).await;
    assert!(topic.starts_with("gridcast/v1/grid/"), "{topic}");
    // Two acks: each answered exactly once (one node took each from the shared
    // subscription), then a sentinel: the incident came once, not once per node.
    for r in ["x1", "x2"] {
        assert!(matches!(
            phone.request(&ack(&created.id, r)).await,
            ServerFrame::Ok { .. }
        ));
    }
    let sentinel = ops
        .activate(&activation("Sentinel", &["330106"], &[]))
        .await
        .unwrap();
    let (mut on_grid, mut on_lead, mut oks) = (0, 0, 0);
    // Whatever request() did not consume, up to the sentinel.
    loop {
        let (topic, f) = phone.next().await;
        match f {
            ServerFrame::Incident { incident, .. } if incident.id == sentinel.id => break,
            ServerFrame::Incident { incident, .. } if incident.id == created.id => {
                if topic.starts_with("gridcast/v1/grid/") {
                    on_grid += 1;
                } else {
                    on_lead += 1;
                }
            }
            ServerFrame::Ok { .. } => oks += 1,
            _ => {}
        }
    }
    assert_eq!(oks, 0, "no frame answered twice");
    assert_eq!(
        on_grid, 0,
        "the incident was not published again by the other node"
    );
    // Its own new status (accepted) may still be on its way after the first ok.
    assert!(on_lead <= 1, "{on_lead} status updates for one change");
    let d = nodes[1].console("").incident(&created.id).await.unwrap();
    assert_eq!(d.counts.accepted, 1);
    for n in nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mqtt_lead_is_held_to_the_upstream_frame_rate() {
    let broker = Mosquitto::start("rate").await;
    let doc = city(5);
    let hub = hub_on("mqtt-rate", &broker, doc.clone()).await;
    let lead = doc.staff[0].id.clone();
    let mut phone = mqtt_lead(&broker, &doc, &lead, true).await;
    // hello used one token of the burst of 50; 200 pings as fast as the broker takes
    // them (even at 10 ms each the refill of 20/s leaves well over 50 refused).
    for n in 0..200 {
        phone
            .send(&ClientFrame::Ping {
                reference: Some(format!("p{n}")),
            })
            .await;
    }
    let (mut pongs, mut limited) = (0, 0);
    while pongs + limited < 200 {
        match phone.next().await.1 {
            ServerFrame::Pong { .. } => pongs += 1,
            ServerFrame::Error {
                code: gridcast_protocol::ErrorCode::RateLimited,
                ..
            } => limited += 1,
            _ => {}
        }
    }
    eprintln!("{pongs} pongs, {limited} rate_limited");
    assert!(pongs >= 49, "the burst is honoured: {pongs}");
    assert!(limited >= 50, "the rest is refused: {limited}");
    hub.stop().await;
}

/// A broker that stops taking anything (SIGSTOP) fills the hub's MQTT queue. Nothing
/// waits for it: activations are answered (their MQTT publishes are left to the
/// outbox), and a WebSocket phone's ack is answered `ok` although the same lead has an
/// MQTT device whose status update cannot go out. Once the broker goes on, the outbox
/// delivers the activations to the MQTT device.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_broker_does_not_delay_a_websocket_phones_ok() {
    let broker = Mosquitto::start("stalled").await;
    let doc = city(10);
    let url = broker.url();
    let hub = TestHub::start("mqtt-stalled", Some(doc.clone()), move |c| {
        c.mqtt = Some(url);
        c.mqtt_queue = 20;
    })
    .await;
    ready_is(&hub.http(), true, Duration::from_secs(20)).await;
    let both = doc.staff[0].id.clone();
    let mut device = mqtt_lead(&broker, &doc, &both, true).await;
    let (mut phone, _) = LeadClient::connect(&hub.ws_url(), &lead_token(&both))
        .await
        .unwrap();
    phone.sync().await.unwrap();
    wait_online(&hub, 1).await;
    let ops = hub.console("");
    let first = ops
        .activate(&activation("Flood", &["330106"], &[]))
        .await
        .unwrap();
    loop {
        if let ServerFrame::Incident { incident, .. } = phone.next().await.unwrap()
            && incident.id == first.id
        {
            break;
        }
    }

    // The broker stops; activations go on until the hub's queue has no room left.
    let signal = |sig: &str| {
        std::process::Command::new("kill")
            .args([sig, &broker.pid().to_string()])
            .status()
            .unwrap()
    };
    assert!(signal("-STOP").success());
    let mut last = String::new();
    for i in 0..300 {
        let created = tokio::time::timeout(
            Duration::from_secs(10),
            ops.activate(&activation(&format!("pile {i}"), &["330106"], &[])),
        )
        .await
        .expect("an activation is answered while the broker is stalled")
        .unwrap();
        last = created.id;
        if metric(&hub.http(), "gridcast_mqtt_queue_full_total").await > 0 {
            break;
        }
    }
    assert!(
        metric(&hub.http(), "gridcast_mqtt_queue_full_total").await > 0,
        "the queue never filled"
    );

    // The WebSocket phone's ack is answered while the broker is still stopped.
    let (answer, _) = tokio::time::timeout(
        Duration::from_secs(10),
        phone.request(&ack(&first.id, "a1")),
    )
    .await
    .expect("ok while the broker is stalled")
    .unwrap();
    answer.unwrap();
    assert!(signal("-CONT").success());
    // What did not fit is finished by the outbox once the broker takes it again.
    device.incident(&last).await;
    let d = ops.incident(&first.id).await.unwrap();
    assert_eq!(d.counts.accepted, 1);
    hub.stop().await;
}

/// Reads console events from `sse` until a `presence` event satisfies `want`; returns it.
async fn presence_event(
    sse: &mut reqwest::Response,
    what: &str,
    want: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut text = String::new();
    loop {
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            if block.lines().any(|l| l == "event: presence") {
                let data = block
                    .lines()
                    .find_map(|l| l.strip_prefix("data: "))
                    .expect("a data line");
                let v: serde_json::Value = serde_json::from_str(data).unwrap();
                if want(&v) {
                    return v;
                }
            }
        }
        let chunk = tokio::time::timeout_at(deadline, sse.chunk())
            .await
            .unwrap_or_else(|_| panic!("no presence event with {what} in 10 s"))
            .unwrap()
            .expect("stream open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mqtt_lead_and_a_websocket_lead_are_in_one_presence() {
    let broker = Mosquitto::start("one-presence").await;
    let doc = city(40);
    let hub = hub_on("mqtt-one-presence", &broker, doc.clone()).await;
    // Two leads of different grids: one on MQTT only, one on WebSocket only.
    let on_mqtt = doc.staff[0].id.clone();
    let mqtt_grid = grids_of(&doc, &on_mqtt)[0].clone();
    let on_ws = doc
        .staff
        .iter()
        .find(|p| !grids_of(&doc, &p.id).contains(&mqtt_grid))
        .unwrap()
        .id
        .clone();
    let mut sse = console_stream(&hub.http()).await;
    let (mut ws, _) = LeadClient::connect(&hub.ws_url(), &lead_token(&on_ws))
        .await
        .unwrap();
    ws.sync().await.unwrap();
    let phone = mqtt_lead(&broker, &doc, &on_mqtt, true).await;

    // `GET /v1/presence` lists both, each with its channel.
    wait_online(&hub, 2).await;
    let presence = hub.console("").presence("", true).await.unwrap();
    let channels = |id: &str| {
        presence
            .leads
            .as_ref()
            .unwrap()
            .iter()
            .find(|l| l.id == id)
            .map(|l| l.channels.clone())
    };
    assert_eq!(channels(&on_mqtt), Some(vec!["mqtt".to_owned()]));
    assert_eq!(channels(&on_ws), Some(vec!["ws".to_owned()]));

    // The console's presence events count both, and both grids, from the same index.
    let grid_online = |v: &serde_json::Value, code: &str| {
        v["grids"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["code"] == code)
            .map(|g| g["online"].as_u64().unwrap())
    };
    let both = presence_event(&mut sse, "both leads online", |v| v["online"] == 2).await;
    assert_eq!(grid_online(&both, &mqtt_grid), Some(1), "{both}");

    // The MQTT lead goes offline (its retained presence): the same event says so.
    stock_pub(
        broker.port,
        &format!("gridcast/v1/presence/{on_mqtt}"),
        "offline",
    )
    .await;
    let one = presence_event(&mut sse, "the MQTT lead offline", |v| v["online"] == 1).await;
    assert_eq!(grid_online(&one, &mqtt_grid), Some(0), "{one}");
    wait_online(&hub, 1).await;
    phone.disconnect().await;
}
