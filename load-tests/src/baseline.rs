//! The baseline of every benchmark: a minimal WebSocket broadcaster (tokio-tungstenite,
//! tuned buffers, one pre-serialised frame written to every connection; no auth, no
//! state, no acks), run as its own process under the same load as the hub.

use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

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

/// Baseline clients, connected.
pub type Clients = Vec<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
>;

/// Connects `n` clients to a baseline server at `url`; returns them and the connect rate.
pub async fn connect(url: &str, n: usize) -> anyhow::Result<(Clients, f64)> {
    let started = Instant::now();
    let mut clients = Vec::with_capacity(n);
    // The same ramp as the drill's phones: 256 connection attempts in flight.
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(256));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (url, gate) = (url.to_owned(), gate.clone());
        set.spawn(async move {
            let _slot = gate.acquire().await;
            tokio_tungstenite::connect_async_with_config(url, Some(config()), true)
                .await
                .map(|(ws, _)| ws)
        });
    }
    while let Some(r) = set.join_next().await {
        clients.push(r?.context("baseline client connect")?);
    }
    let connect_per_s = n as f64 / started.elapsed().as_secs_f64().max(1e-9);
    Ok((clients, connect_per_s))
}

/// Broadcasts once: the delivery time of every client, measured from the `go`.
pub async fn broadcast(clients: Clients, timeout: Duration) -> anyhow::Result<Vec<Duration>> {
    let n = clients.len();
    let go = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    let mut first = true;
    for mut ws in clients {
        let send_go = std::mem::take(&mut first);
        set.spawn(async move {
            if send_go {
                ws.send(Message::text("go")).await.ok()?;
            }
            loop {
                if let Message::Text(_) = ws.next().await?.ok()? {
                    return Some(go.elapsed());
                }
            }
        });
    }
    let mut times = Vec::with_capacity(n);
    while let Some(r) = tokio::time::timeout(timeout, set.join_next())
        .await
        .context("baseline broadcast timed out")?
    {
        if let Ok(Some(d)) = r {
            times.push(d);
        }
    }
    Ok(times)
}
