//! A simulated phone on MQTT: will + retained presence, its lead and grid topics,
//! `hello` for the sync, then receipt and ack for the drill over the up topic.

use std::time::{Duration, Instant};

use gridcast_protocol::frame::{ClientFrame, ServerFrame};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{LastWill, Packet};
use rumqttc::v5::{AsyncClient, Event as MqttEvent, MqttOptions};
use tokio::sync::{mpsc, watch};

use crate::Event;
use crate::phone::ACK_TRIES;

/// How often an MQTT phone sends its ack before it counts as failed, and how long it
/// waits for the `ok` (growing with each try, up to four times this).
const ACK_WAIT: Duration = Duration::from_secs(2);
/// Publishes a simulated phone has in flight at once, at most.
const PHONE_INFLIGHT: u16 = 16;

/// One MQTT phone.
pub struct Phone {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// Lead id.
    pub lead: String,
    /// Its grids (topics it reads).
    pub grids: Vec<String>,
    /// Its token for `hello`.
    pub token: String,
    /// Before answering.
    pub delay: Duration,
}

enum In {
    Connected,
    Subscribed,
    Frame(Box<ServerFrame>),
}

impl Phone {
    /// Runs the phone, reporting to `tx`; `gate` bounds connection attempts in flight.
    pub async fn run(
        self,
        tx: mpsc::Sender<Event>,
        go: watch::Receiver<Option<Instant>>,
        gate: std::sync::Arc<tokio::sync::Semaphore>,
    ) {
        if self.drive(&tx, go, &gate).await.is_none() {
            let _ = tx
                .send(Event::Failed(format!("mqtt phone {}", self.lead)))
                .await;
        }
    }

    async fn drive(
        &self,
        tx: &mpsc::Sender<Event>,
        mut go: watch::Receiver<Option<Instant>>,
        gate: &tokio::sync::Semaphore,
    ) -> Option<()> {
        // Connecting (until synced) holds a slot; rumqttc itself reconnects on failure.
        let slot = gate.acquire().await.ok()?;
        let mut o = MqttOptions::new(format!("drill-{}", self.lead), &self.host, self.port);
        // rumqttc sizes its table of publishes in flight by this limit (65,535 entries,
        // about 9 MB per client, by default): a phone has a few in flight at most.
        o.set_outgoing_inflight_upper_limit(PHONE_INFLIGHT);
        o.set_keep_alive(Duration::from_secs(30))
            .set_last_will(LastWill::new(
                format!("gridcast/v1/presence/{}", self.lead),
                "offline",
                QoS::AtLeastOnce,
                true,
                None,
            ));
        let (client, mut eventloop) = AsyncClient::new(o, 64);
        let (itx, mut irx) = mpsc::channel(256);
        let pump = tokio::spawn(async move {
            loop {
                let m = match eventloop.poll().await {
                    Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => In::Connected,
                    Ok(MqttEvent::Incoming(Packet::SubAck(_))) => In::Subscribed,
                    Ok(MqttEvent::Incoming(Packet::Publish(p))) => {
                        match serde_json::from_slice(&p.payload) {
                            Ok(f) => In::Frame(Box::new(f)),
                            Err(_) => continue,
                        }
                    }
                    Ok(_) => continue,
                    // Like a phone: try again (the drill's timeout bounds it).
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                };
                if itx.send(m).await.is_err() {
                    return;
                }
            }
        });
        let result = async {
            let up = format!("gridcast/v1/up/{}", self.lead);
            let send = |f: &ClientFrame| {
                let (client, up) = (client.clone(), up.clone());
                let payload = serde_json::to_vec(f).unwrap_or_default();
                async move {
                    client
                        .publish(up, QoS::AtLeastOnce, false, payload)
                        .await
                        .ok()
                }
            };
            while !matches!(irx.recv().await?, In::Connected) {}
            client
                .publish(
                    format!("gridcast/v1/presence/{}", self.lead),
                    QoS::AtLeastOnce,
                    true,
                    "online",
                )
                .await
                .ok()?;
            let mut topics = vec![format!("gridcast/v1/lead/{}", self.lead)];
            topics.extend(self.grids.iter().map(|g| format!("gridcast/v1/grid/{g}")));
            for t in &topics {
                client.subscribe(t, QoS::AtLeastOnce).await.ok()?;
            }
            let mut acks = 0;
            while acks < topics.len() {
                if matches!(irx.recv().await?, In::Subscribed) {
                    acks += 1;
                }
            }
            send(&ClientFrame::Hello {
                token: self.token.clone(),
                client: None,
            })
            .await?;
            loop {
                if let In::Frame(f) = irx.recv().await?
                    && matches!(*f, ServerFrame::Synced)
                {
                    break;
                }
            }
            drop(slot);
            tx.send(Event::Ready(true)).await.ok()?;
            let issued = loop {
                if let Some(t) = *go.borrow_and_update() {
                    break t;
                }
                go.changed().await.ok()?;
            };
            let incident = loop {
                if let In::Frame(f) = irx.recv().await?
                    && let ServerFrame::Incident { incident, .. } = *f
                    && incident.drill
                {
                    break incident;
                }
            };
            tx.send(Event::Received(issued.elapsed(), true))
                .await
                .ok()?;
            send(&ClientFrame::Receipt {
                incident: incident.id.clone(),
                rev: incident.rev,
                reference: None,
            })
            .await?;
            tokio::time::sleep(self.delay).await;
            let ack = crate::drill_ack(incident.id);
            // Like a phone, the ack is sent again (the same `ref`: idempotent) until it
            // is answered `ok`: a broker may drop a frame, a hub may be away. A
            // transient error (`unavailable`, `rate_limited`) is retried too.
            let mut answered = false;
            for attempt in 1..=ACK_TRIES {
                send(&ack).await?;
                let wait = tokio::time::sleep(ACK_WAIT * attempt.min(4));
                tokio::pin!(wait);
                let outcome = loop {
                    let next = tokio::select! {
                        m = irx.recv() => m?,
                        () = &mut wait => break None,
                    };
                    let In::Frame(f) = next else { continue };
                    match *f {
                        ServerFrame::Ok { reference } if reference == "a" => break Some(true),
                        ServerFrame::Error {
                            reference: Some(r),
                            code,
                            ..
                        } if r == "a" => {
                            let transient = matches!(
                                code,
                                gridcast_protocol::ErrorCode::Unavailable
                                    | gridcast_protocol::ErrorCode::RateLimited
                            );
                            break if transient { None } else { Some(false) };
                        }
                        _ => {}
                    }
                };
                match outcome {
                    Some(true) => {
                        answered = true;
                        break;
                    }
                    Some(false) => return None,
                    None => {}
                }
            }
            if !answered {
                return None;
            }
            tx.send(Event::Acked(issued.elapsed())).await.ok()?;
            // Leaving cleanly fires no will: say offline first.
            let _ = client
                .publish(
                    format!("gridcast/v1/presence/{}", self.lead),
                    QoS::AtLeastOnce,
                    true,
                    "offline",
                )
                .await;
            let _ = client.disconnect().await;
            Some(())
        }
        .await;
        pump.abort();
        result
    }
}

/// The topic every client of the MQTT baseline reads.
pub const BASELINE_TOPIC: &str = "gridcast-baseline/all";
/// Where the baseline's clients publish their receipts (`/<i>` each).
const BASELINE_UP: &str = "gridcast-baseline/up";

/// A receipt of the size a phone sends (`{"type":"receipt","incident":…}`).
const BASELINE_RECEIPT: &[u8] =
    br#"{"type":"receipt","incident":"20261201-0001-abcdef","ref":"r-00000000"}"#;

/// One client of the broker-only baseline.
pub struct BaselineClient {
    /// The broker.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// The client's number (its id and receipt topic).
    pub i: usize,
    /// Whether it answers the message with a receipt.
    pub receipt: bool,
}

/// One client of the broker-only baseline (`baseline --mqtt`): connects, subscribes to
/// [`BASELINE_TOPIC`] at QoS 1, reports ready, and reports when the one message
/// arrived (then, with `receipt`, publishes a receipt at QoS 1); nothing of gridcast in
/// between.
pub async fn baseline_phone(
    c: BaselineClient,
    tx: mpsc::Sender<Event>,
    mut go: watch::Receiver<Option<Instant>>,
    gate: std::sync::Arc<tokio::sync::Semaphore>,
) {
    let BaselineClient {
        host,
        port,
        i,
        receipt,
    } = c;
    let run = async {
        let mut o = MqttOptions::new(format!("baseline-{i}-{}", std::process::id()), host, port);
        o.set_outgoing_inflight_upper_limit(PHONE_INFLIGHT)
            .set_keep_alive(Duration::from_secs(30));
        let (client, mut eventloop) = AsyncClient::new(o, 16);
        let slot = gate.acquire().await.ok()?;
        loop {
            if let MqttEvent::Incoming(Packet::ConnAck(_)) = eventloop.poll().await.ok()? {
                break;
            }
        }
        client
            .subscribe(BASELINE_TOPIC, QoS::AtLeastOnce)
            .await
            .ok()?;
        loop {
            if let MqttEvent::Incoming(Packet::SubAck(_)) = eventloop.poll().await.ok()? {
                break;
            }
        }
        drop(slot);
        tx.send(Event::Ready(true)).await.ok()?;
        let issued = crate::wait_go(&mut go).await?;
        loop {
            if let MqttEvent::Incoming(Packet::Publish(_)) = eventloop.poll().await.ok()? {
                break;
            }
        }
        tx.send(Event::Received(issued.elapsed(), true))
            .await
            .ok()?;
        if receipt {
            client
                .try_publish(
                    format!("{BASELINE_UP}/{i}"),
                    QoS::AtLeastOnce,
                    false,
                    BASELINE_RECEIPT,
                )
                .ok()?;
        }
        // Stay connected (and keep answering the broker) until the run ends.
        while eventloop.poll().await.is_ok() {}
        Some(())
    };
    if run.await.is_none() {
        let _ = tx.send(Event::Failed("mqtt baseline client".into())).await;
    }
}

/// Publishes the baseline's one message (QoS 1, the size of an incident frame) and
/// waits (bounded) for the broker to take it. With `receipts` it first subscribes to
/// the clients' receipts (QoS 1, as the hub reads its phones' frames) and goes on
/// reading them until the returned task is aborted.
pub async fn baseline_publish(
    host: &str,
    port: u16,
    receipts: bool,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let o = MqttOptions::new(format!("baseline-go-{}", std::process::id()), host, port);
    let (client, mut eventloop) = AsyncClient::new(o, 4);
    let wait = async {
        loop {
            match eventloop.poll().await? {
                MqttEvent::Incoming(Packet::ConnAck(_)) if receipts => {
                    client
                        .subscribe(format!("{BASELINE_UP}/+"), QoS::AtLeastOnce)
                        .await?;
                }
                MqttEvent::Incoming(Packet::ConnAck(_))
                | MqttEvent::Incoming(Packet::SubAck(_)) => {
                    client
                        .publish(
                            BASELINE_TOPIC,
                            QoS::AtLeastOnce,
                            false,
                            crate::baseline::FRAME,
                        )
                        .await?;
                }
                MqttEvent::Incoming(Packet::PubAck(_)) => return anyhow::Ok(()),
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait).await??;
    Ok(tokio::spawn(async move {
        let _client = client;
        while eventloop.poll().await.is_ok() {}
    }))
}
