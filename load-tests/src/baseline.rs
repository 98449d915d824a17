//! The baseline of every benchmark: a minimal WebSocket broadcaster (tokio-tungstenite,
//! tuned buffers, one pre-serialised frame written to every connection; no auth, no
//! state, no acks), run as its own process under the same load as the hub.

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

/// One baseline client: connects, reports ready, waits for the go, reports when the
/// frame arrived (and with `receipt`, decodes it and answers with a receipt frame as a
/// gridcast phone does), stays connected.
pub async fn phone(
    url: String,
    receipt: bool,
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
        tx.send(Event::Received(issued.elapsed())).await.ok()?;
        if receipt {
            let f: gridcast_protocol::frame::ServerFrame = serde_json::from_str(&frame).ok()?;
            if let gridcast_protocol::frame::ServerFrame::Incident { incident, .. } = f {
                let r = gridcast_protocol::frame::ClientFrame::Receipt {
                    incident: incident.id,
                    rev: incident.rev,
                    reference: None,
                };
                let text = serde_json::to_string(&r).ok()?;
                ws.send(Message::text(text)).await.ok()?;
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
    /// Clients that failed.
    pub errors: usize,
}

/// Runs `servers` baseline broadcasters (`gridcast-drill baseline-serve`, children of
/// this process) and `opts.leads` clients spread over them round-robin (and over
/// worker processes past `opts.per_process`); broadcasts once.
pub async fn run(
    mut opts: FanoutOpts,
    servers: usize,
    receipts: bool,
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
    let job = if receipts {
        crate::Job::BaselineReceipts
    } else {
        crate::Job::Baseline
    };
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
    let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    let (mut delivered, mut lost, mut last) = (0, 0, Duration::ZERO);
    while delivered + lost < ready {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(Event::Received(d))) => {
                delivered += 1;
                last = last.max(d);
                h.record((d.as_micros() as u64).max(1))?;
            }
            Ok(Some(Event::Failed(_))) => lost += 1,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    let done = crate::procs_usage(&pids).context("reading the servers' /proc")?;
    drop(phones);
    Ok(BaselineReport {
        servers: urls.len(),
        clients: ready,
        connect_per_s: ready as f64 / connect_s.max(1e-9),
        delivered,
        delivery_ms: Percentiles::of(&h),
        last_delivery_ms: last.as_secs_f64() * 1e3,
        server_rss_mb: loaded.0,
        server_kib_per_conn: (loaded.0 - idle.0) * 1024.0 / ready.max(1) as f64,
        server_cpu_s: done.1 - loaded.1,
        errors: errors + lost,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_baseline_frame_is_a_real_incident_frame() {
        let f: gridcast_protocol::frame::ServerFrame = serde_json::from_str(FRAME).unwrap();
        assert!(matches!(
            f,
            gridcast_protocol::frame::ServerFrame::Incident { .. }
        ));
    }
}
