//! The baseline of every benchmark: a minimal WebSocket broadcaster (tokio-tungstenite,
//! tuned buffers, one pre-serialised frame written to every connection; no auth, no
//! state), run as its own process under the same load as the hub. Its clients may answer
//! as gridcast's phones do (`--receipts`: decode the frame, send a receipt; `--acks`:
//! also an ack with a `ref` after the drill's human-like delay, which the broadcaster
//! decodes and answers with `ok`, as a hub must, but without recording anything).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::{Event, FanoutOpts, Percentiles};

/// A frame of the size of a real incident frame.
pub const FRAME: &str = r#"{"type":"incident","incident":{"id":"INC-000001","rev":1,"state":"active","title":"DRILL: evacuation exercise","body":"This is a drill.","level":"III","category":"natural","drill":true,"issued_at":"2026-11-26T00:00:00.000Z","ack_by":"2026-11-26T00:10:00.000Z","targets":{"codes":["330106"]}},"me":{"status":"pending","grid":"3301060040051001","role":"grid_lead"}}"#;

fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(512 * 1024)
}

/// Serves until killed: every connection gets the frame once any client sends `go`.
pub async fn serve(listener: TcpListener) -> anyhow::Result<()> {
    let (tx, _) = broadcast::channel::<()>(4);
    loop {
        let (stream, _) = listener.accept().await?;
        let (tx, mut rx) = (tx.clone(), tx.subscribe());
        tokio::spawn(async move {
            let Ok(ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config())).await
            else {
                return;
            };
            let (mut sink, mut stream) = ws.split();
            loop {
                tokio::select! {
                    m = stream.next() => match m {
                        Some(Ok(Message::Text(t))) if t.as_str() == "go" => { let _ = tx.send(()); }
                        Some(Ok(Message::Text(t))) => {
                            // A frame with a `ref` is answered `ok`, as a hub answers it.
                            if let Some(reference) = gridcast_protocol::frame::reference_of(&t) {
                                let ok = gridcast_protocol::frame::ServerFrame::Ok { reference };
                                let Ok(text) = serde_json::to_string(&ok) else { return };
                                if sink.send(Message::text(text)).await.is_err() {
                                    return;
                                }
                            }
                        }
                        Some(Ok(_)) => {}
                        _ => return,
                    },
                    r = rx.recv() => {
                        if r.is_err() || sink.send(Message::text(FRAME)).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
}

/// How a baseline client answers the frame.
#[derive(Debug, Clone, Copy)]
pub struct Answers {
    /// Decode the frame and send a receipt, as a gridcast phone does.
    pub receipt: bool,
    /// Then, after this long, an ack with a `ref`, and wait for its `ok`.
    pub ack_after: Option<Duration>,
}

/// One baseline client: connects, reports ready, waits for the go, reports when the
/// frame arrived and answers it as `answers` says (reporting when its ack was answered
/// `ok`), stays connected.
pub async fn phone(
    url: String,
    answers: Answers,
    tx: mpsc::Sender<Event>,
    mut go: watch::Receiver<Option<Instant>>,
    gate: Arc<tokio::sync::Semaphore>,
) {
    let run = async {
        let mut ws = {
            let _slot = gate.acquire().await.ok()?;
            tokio_tungstenite::connect_async_with_config(url, Some(config()), true)
                .await
                .ok()?
                .0
        };
        tx.send(Event::Ready(false)).await.ok()?;
        let issued = crate::wait_go(&mut go).await?;
        let frame = loop {
            if let Message::Text(t) = ws.next().await?.ok()? {
                break t;
            }
        };
        tx.send(Event::Received(issued.elapsed(), false))
            .await
            .ok()?;
        if answers.receipt {
            use gridcast_protocol::frame::{ClientFrame, ServerFrame};
            let f: ServerFrame = serde_json::from_str(&frame).ok()?;
            if let ServerFrame::Incident { incident, .. } = f {
                let r = ClientFrame::Receipt {
                    incident: incident.id.clone(),
                    rev: incident.rev,
                    reference: None,
                };
                ws.send(Message::text(serde_json::to_string(&r).ok()?))
                    .await
                    .ok()?;
                if let Some(after) = answers.ack_after {
                    tokio::time::sleep(after).await; // the person reading and answering
                    let ack = crate::drill_ack(incident.id);
                    ws.send(Message::text(serde_json::to_string(&ack).ok()?))
                        .await
                        .ok()?;
                    loop {
                        if let Message::Text(t) = ws.next().await?.ok()?
                            && let Ok(ServerFrame::Ok { reference }) = serde_json::from_str(&t)
                            && reference == "a"
                        {
                            break;
                        }
                    }
                    tx.send(Event::Acked(issued.elapsed())).await.ok()?;
                }
            }
        }
        std::future::pending::<()>().await;
        Some(ws)
    };
    if run.await.is_none() {
        let _ = tx.send(Event::Failed("baseline client".into())).await;
    }
}

/// The result of a baseline run.
#[derive(Debug, Clone, Serialize)]
pub struct BaselineReport {
    /// Server processes.
    pub servers: usize,
    /// Clients connected.
    pub clients: usize,
    /// Clients connected per second.
    pub connect_per_s: f64,
    /// Clients that got the frame.
    pub delivered: usize,
    /// From the go to each client having the frame.
    pub delivery_ms: Percentiles,
    /// From the go to the last delivery.
    pub last_delivery_ms: f64,
    /// The servers' RSS with every client connected (summed).
    pub server_rss_mb: f64,
    /// Server memory per connected client (KiB).
    pub server_kib_per_conn: f64,
    /// The servers' CPU seconds from the go to the last delivery (summed).
    pub server_cpu_s: f64,
    /// Clients whose ack was answered `ok` (`--acks`).
    pub acked: usize,
    /// From the go to the last ack answered (`--acks`).
    pub last_ack_ms: f64,
    /// The servers' CPU seconds from the go to the last ack answered (`--acks`).
    pub server_cpu_acks_s: f64,
    /// Clients that failed.
    pub errors: usize,
}

/// Runs `servers` baseline broadcasters (`gridcast-drill baseline-serve`, children of
/// this process) and `opts.leads` clients spread over them round-robin (and over
/// worker processes past `opts.per_process`); broadcasts once.
pub async fn run(
    mut opts: FanoutOpts,
    servers: usize,
    job: crate::Job,
) -> anyhow::Result<BaselineReport> {
    let exe = std::env::current_exe()?;
    let mut children = Vec::new();
    let (mut urls, mut pids) = (Vec::new(), Vec::new());
    for _ in 0..servers.max(1) {
        let mut child = tokio::process::Command::new(&exe)
            .args(["baseline-serve", "--listen", "127.0.0.1:0"])
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        pids.push(child.id().context("baseline server pid")?);
        let mut out = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(
            child.stdout.take().context("baseline stdout")?,
        ));
        let addr = out
            .next_line()
            .await?
            .context("baseline server did not start")?;
        urls.push(format!("ws://{addr}"));
        children.push(child);
    }
    opts.hubs = urls.clone();
    let n = opts.leads;
    let idle = crate::procs_usage(&pids).context("reading the servers' /proc")?;
    let (tx, mut rx) = mpsc::channel(n * 2 + 16);
    let (go_tx, go_rx) = watch::channel(None);
    let started = Instant::now();
    let leads = vec![Default::default(); n];
    let acks = job == crate::Job::BaselineAcks;
    let phones = crate::Phones::start(job, &opts, &leads, tx, go_rx)?;
    let deadline = tokio::time::Instant::now() + opts.timeout;
    let (ready, _, errors) = crate::await_ready(&mut rx, n, deadline, opts.progress).await?;
    let connect_s = started.elapsed().as_secs_f64();
    let mut triggers = Vec::new();
    for u in &urls {
        triggers.push(
            tokio_tungstenite::connect_async_with_config(u.as_str(), Some(config()), true)
                .await?
                .0,
        );
    }
    let loaded = crate::procs_usage(&pids).context("reading the servers' /proc")?;
    let _ = go_tx.send(Some(Instant::now()));
    for t in &mut triggers {
        t.send(Message::text("go")).await?;
    }
    let c = collect(&mut rx, ready, acks, deadline, &pids).await?;
    drop(phones);
    Ok(c.report(urls.len(), ready, connect_s, (idle, loaded), errors))
}

/// The broker alone (`baseline --mqtt host:port`): `opts.leads` MQTT clients (QoS 1,
/// spread over worker processes past `opts.per_process`) read one topic; one message
/// of an incident frame's size is published to it; the time until every client has it,
/// and the broker's CPU if its pid is given.
pub async fn run_mqtt(
    mut opts: FanoutOpts,
    broker: (String, u16),
    broker_pid: Option<u32>,
    receipts: bool,
) -> anyhow::Result<BaselineReport> {
    opts.mqtt = Some(broker.clone());
    opts.hubs = Vec::new();
    let n = opts.leads;
    let pids: Vec<u32> = broker_pid.into_iter().collect();
    let usage = |pids: &[u32]| crate::procs_usage(pids).unwrap_or((0.0, 0.0));
    let idle = usage(&pids);
    let (tx, mut rx) = mpsc::channel(n * 2 + 16);
    let (go_tx, go_rx) = watch::channel(None);
    let started = Instant::now();
    let leads = vec![Default::default(); n];
    let job = if receipts {
        crate::Job::BaselineMqttReceipts
    } else {
        crate::Job::BaselineMqtt
    };
    let phones = crate::Phones::start(job, &opts, &leads, tx, go_rx)?;
    let deadline = tokio::time::Instant::now() + opts.timeout;
    let (ready, _, errors) = crate::await_ready(&mut rx, n, deadline, opts.progress).await?;
    let connect_s = started.elapsed().as_secs_f64();
    let loaded = usage(&pids);
    let _ = go_tx.send(Some(Instant::now()));
    let reader = crate::mqtt::baseline_publish(&broker.0, broker.1, receipts).await?;
    let c = collect(&mut rx, ready, false, deadline, &pids).await?;
    reader.abort();
    drop(phones);
    Ok(c.report(pids.len(), ready, connect_s, (idle, loaded), errors))
}

/// What the clients of a baseline run reported after the go.
struct Collected {
    delivered: usize,
    lost: usize,
    last: Duration,
    hist: hdrhistogram::Histogram<u64>,
    acked: usize,
    last_ack: Duration,
    /// The servers' (RSS, CPU) at the last delivery, and after the last ack.
    at_delivery: (f64, f64),
    after_acks: Option<(f64, f64)>,
}

/// Reads the clients' events until all have the frame (and, with `acks`, their ack
/// answered) or they failed or the deadline passed.
async fn collect(
    rx: &mut mpsc::Receiver<Event>,
    ready: usize,
    acks: bool,
    deadline: tokio::time::Instant,
    pids: &[u32],
) -> anyhow::Result<Collected> {
    // No pid given (the broker of `--mqtt` may run anywhere): no figures, zeros.
    let usage = || match pids {
        [] => Ok((0.0, 0.0)),
        _ => crate::procs_usage(pids).context("reading the servers' /proc"),
    };
    let mut hist = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    let (mut delivered, mut lost, mut last) = (0, 0, Duration::ZERO);
    let (mut acked, mut last_ack) = (0, Duration::ZERO);
    let mut at_delivery = None;
    while delivered + lost < ready || (acks && acked + lost < ready) {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(Event::Received(d, _))) => {
                delivered += 1;
                last = last.max(d);
                hist.record((d.as_micros() as u64).max(1))?;
            }
            Ok(Some(Event::Acked(d))) => {
                acked += 1;
                last_ack = last_ack.max(d);
            }
            Ok(Some(Event::Failed(_))) => lost += 1,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
        if at_delivery.is_none() && delivered + lost >= ready {
            at_delivery = Some(usage()?);
        }
    }
    let now = usage()?;
    Ok(Collected {
        delivered,
        lost,
        last,
        hist,
        acked,
        last_ack,
        at_delivery: at_delivery.unwrap_or(now),
        after_acks: acks.then_some(now),
    })
}

impl Collected {
    /// The run's report; `usage` is the servers' (RSS, CPU) idle and with every client
    /// connected.
    fn report(
        self,
        servers: usize,
        ready: usize,
        connect_s: f64,
        (idle, loaded): ((f64, f64), (f64, f64)),
        errors: usize,
    ) -> BaselineReport {
        BaselineReport {
            servers,
            clients: ready,
            connect_per_s: ready as f64 / connect_s.max(1e-9),
            delivered: self.delivered,
            delivery_ms: Percentiles::of(&self.hist),
            last_delivery_ms: self.last.as_secs_f64() * 1e3,
            server_rss_mb: loaded.0,
            server_kib_per_conn: (loaded.0 - idle.0) * 1024.0 / ready.max(1) as f64,
            server_cpu_s: self.at_delivery.1 - loaded.1,
            acked: self.acked,
            last_ack_ms: self.last_ack.as_secs_f64() * 1e3,
            server_cpu_acks_s: self.after_acks.map_or(0.0, |a| a.1 - loaded.1),
            errors: errors + self.lost,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answering_clients_get_the_frame_and_their_acks_answered() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(serve(listener));
        let (tx, mut rx) = mpsc::channel(64);
        let (go_tx, go_rx) = watch::channel(None);
        let gate = Arc::new(tokio::sync::Semaphore::new(8));
        let answers = Answers {
            receipt: true,
            ack_after: Some(Duration::from_millis(1)),
        };
        let mut phones = tokio::task::JoinSet::new();
        for _ in 0..10 {
            phones.spawn(phone(
                url.clone(),
                answers,
                tx.clone(),
                go_rx.clone(),
                gate.clone(),
            ));
        }
        let mut ready = 0;
        while ready < 10 {
            if let Some(Event::Ready(_)) = rx.recv().await {
                ready += 1;
            }
        }
        let (mut trigger, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .unwrap();
        let _ = go_tx.send(Some(Instant::now()));
        trigger.send(Message::text("go")).await.unwrap();
        let (mut received, mut acked) = (0, 0);
        while received < 10 || acked < 10 {
            match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
                Ok(Some(Event::Received(..))) => received += 1,
                Ok(Some(Event::Acked(_))) => acked += 1,
                Ok(Some(Event::Failed(why))) => panic!("{why}"),
                Ok(_) => {}
                Err(_) => panic!("{received} received, {acked} acked in 10 s"),
            }
        }
        phones.abort_all();
        server.abort();
    }

    #[test]
    fn the_baseline_frame_is_a_real_incident_frame() {
        let f: gridcast_protocol::frame::ServerFrame = serde_json::from_str(FRAME).unwrap();
        assert!(matches!(
            f,
            gridcast_protocol::frame::ServerFrame::Incident { .. }
        ));
    }
}
