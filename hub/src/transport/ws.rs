//! Lead sessions over WebSocket (`GET /v1/lead/ws`), exactly as the contract says:
//! `hello` within the deadline, `welcome`, the sync, `synced`, then live frames.
//!
//! Each session is two halves that end together: this task reads and answers client
//! frames; a writer task drains the session's bounded queue to the socket, batching what
//! is queued into one flush, and sends heartbeats. Fan-out only ever `try_send`s into the
//! queue, so a phone that stops reading fills its own queue and is dropped; nobody else
//! waits for it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use gridcast_protocol::ErrorCode;
use gridcast_protocol::error::close;
use gridcast_protocol::frame::ServerFrame;
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tracing::Instrument;

use super::protocol::{self, Payload, Upstream};
use crate::auth::Claims;
use crate::http::ApiError;
use crate::session::{Channel, Frame, SessionHandle, encode};
use crate::{Hub, now_ms};

/// Largest message tungstenite will assemble; the contract's 64 KiB limit is enforced
/// above it with a `too_large` error so that the connection stays usable. Twice the
/// contract's limit: a connection that has not said hello yet may make the hub hold
/// this much, so it is small (10,000 pending hellos × 128 KiB at worst).
const MAX_WIRE_MESSAGE: usize = 128 * 1024;
/// Read chunk size: small, since phones send little (tungstenite's default is 128 KiB).
const READ_BUFFER: usize = 2 * 1024;
/// Most bytes queued inside tungstenite before a write fails (a stalled peer).
const MAX_WRITE_BUFFER: usize = 512 * 1024;

/// Upgrades a lead connection after the per-address bound, into a slot of its own
/// while it has not said `hello` (`--max-pending-hellos`); a session slot
/// (`--max-sessions`) is taken only after a good `hello`.
pub async fn upgrade(
    State(hub): State<Hub>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: axum::http::HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let client = hub.proxies.client(addr.ip(), &headers);
    if !hub.connects.allow(crate::listen::limit_key(client)) {
        return ApiError::new(
            ErrorCode::RateLimited,
            "too many connection attempts from this address",
        )
        .into_response();
    }
    let Ok(pending) = hub.pending_hellos.clone().try_acquire_owned() else {
        hub.metrics.hellos_refused.fetch_add(1, Relaxed);
        return ApiError::new(
            ErrorCode::RateLimited,
            "too many connections are waiting to say hello; retry shortly",
        )
        .into_response();
    };
    ws.read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .max_message_size(MAX_WIRE_MESSAGE)
        .max_frame_size(MAX_WIRE_MESSAGE)
        .on_upgrade(move |socket| {
            let span = tracing::info_span!("ws", peer = %client);
            let tracker = hub.tracker.clone();
            // Tracked so that shutdown waits for sessions (axum does not); run in the
            // upgrade's own task rather than a second one per session.
            tracker.track_future(session(hub, socket, pending).instrument(span))
        })
}

async fn close_with(mut socket: WebSocket, code: u16, error: Option<(ErrorCode, String)>) {
    if let Some((code, message)) = error {
        let frame = encode(&ServerFrame::Error {
            reference: None,
            code,
            message,
        });
        let _ = socket.send(Message::Text(frame)).await;
    }
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: "".into(),
        })))
        .await;
}

enum HelloOutcome {
    Ok(protocol::Opened),
    Refused(u16, Option<(ErrorCode, String)>),
    Gone,
}

/// Waits (bounded) for the first frame and checks it with the protocol.
async fn hello(hub: &Hub, socket: &mut WebSocket) -> HelloOutcome {
    let deadline = Duration::from_millis(hub.config.hello_timeout_ms);
    // A connection still in hello is not in presence yet, so shutdown must reach it here.
    let first = tokio::select! {
        r = tokio::time::timeout(deadline, socket.recv()) => r,
        () = hub.shutdown.cancelled() => return HelloOutcome::Refused(close::GOING_AWAY, None),
    };
    let first = match first {
        Err(_) => return HelloOutcome::Refused(close::HELLO_TIMEOUT, None),
        Ok(None | Some(Err(_))) => return HelloOutcome::Gone,
        Ok(Some(Ok(m))) => m,
    };
    let payload = match &first {
        Message::Text(t) => Payload::Text(t.as_str()),
        Message::Binary(b) => Payload::Other(b.len()),
        _ => Payload::Other(0),
    };
    match protocol::first_hello(hub, payload) {
        Ok(opened) => HelloOutcome::Ok(opened),
        Err(r) => HelloOutcome::Refused(r.close, Some((r.code, r.message))),
    }
}

/// A session past its hello: what the read loop and the closing need.
struct Open {
    lead: String,
    _slot: OwnedSemaphorePermit,
    handle: SessionHandle,
    stream: SplitStream<WebSocket>,
    writer: tokio::task::JoinHandle<()>,
    last_seen: Arc<AtomicU64>,
}

// A session's future is allocated at the size of its largest state for as long as the
// phone is connected, so the opening, the answering of a frame and the closing are
// boxed steps: an idle session holds little more than its read loop's `select!`
// (about 5 KiB less per phone when they were inline).
async fn session(hub: Hub, socket: WebSocket, pending: OwnedSemaphorePermit) {
    let Some(open) = Box::pin(open_session(&hub, socket, pending)).await else {
        return;
    };
    read_loop(&hub, &open.lead, open.stream, &open.handle, &open.last_seen).await;
    let Open {
        lead,
        handle,
        writer,
        ..
    } = open;
    handle.end(close::GOING_AWAY);
    let _ = writer.await;
    if let Some(assignments) = hub.presence.unregister(&lead, handle.id) {
        hub.console
            .grids_changed(assignments.iter().map(|a| &a.grid));
    }
    // Also when the lead stays online through another channel: this node may no
    // longer carry any of its sessions (subscriptions follow).
    hub.delivery.sessions_changed();
    hub.metrics.sessions.fetch_sub(1, Relaxed);
    tracing::info!(lead = %lead, session = handle.id, close = handle.close_code(), "session closed");
}

/// Hello, welcome, presence, the writer, the sync: `None` if the phone was refused or
/// went away.
async fn open_session(
    hub: &Hub,
    mut socket: WebSocket,
    pending: OwnedSemaphorePermit,
) -> Option<Open> {
    let outcome = hello(hub, &mut socket).await;
    // Past hello, good or bad: the pending slot is free again.
    drop(pending);
    let opened = match outcome {
        HelloOutcome::Ok(opened) => opened,
        HelloOutcome::Refused(code, error) => {
            hub.metrics.sessions_refused.fetch_add(1, Relaxed);
            tracing::info!(close = code, "session refused at hello");
            close_with(socket, code, error).await;
            return None;
        }
        HelloOutcome::Gone => return None,
    };
    let Ok(slot) = hub.sessions.clone().try_acquire_owned() else {
        hub.metrics.sessions_refused.fetch_add(1, Relaxed);
        let e = (
            ErrorCode::RateLimited,
            "the hub is at its session limit".into(),
        );
        close_with(socket, close::TRY_AGAIN_LATER, Some(e)).await;
        return None;
    };
    let (handle, rx) = SessionHandle::new(Channel::Ws, hub.config.session_queue, &hub.shutdown);
    // The session lives as long as its token: the writer's heartbeat tick ends it past
    // `exp`, the revocation watcher when its token is listed (a timer or a watch of its
    // own per session would cost every idle phone); a new `hello` renews it.
    handle.set_token(opened.claims.exp, opened.claims.jti.as_deref());
    // Welcome goes first into the empty queue; then the session is visible to fan-out,
    // and only then is the sync read, so an incident issued meanwhile is in one or both.
    let _ = handle.push(protocol::welcome(hub, &opened));
    let protocol::Opened {
        claims,
        assignments,
    } = opened;
    let lead = claims.sub;
    let (came_online, displaced) = hub.presence.register(
        &lead,
        assignments.clone(),
        handle.clone(),
        hub.config.max_sessions_per_lead,
    );
    if came_online {
        hub.console
            .grids_changed(assignments.iter().map(|a| &a.grid));
    }
    for old in displaced {
        hub.metrics.sessions_displaced.fetch_add(1, Relaxed);
        tracing::info!(lead = %lead, session = old.id, "oldest session closed for a newer one");
        old.end(close::SESSION_REPLACED);
    }
    // Routed to this node (in a cluster: subscribed to this lead's channel and grids)
    // before its sync is read: a change made meanwhile is then in the sync, on the bus,
    // or both.
    hub.delivery.sessions_changed();
    hub.delivery.wait_routed(&lead, &assignments).await;
    hub.metrics.sessions.fetch_add(1, Relaxed);
    hub.metrics.sessions_opened.fetch_add(1, Relaxed);
    tracing::info!(lead = %lead, session = handle.id, "session opened");

    let (sink, stream) = socket.split();
    let last_seen = Arc::new(AtomicU64::new(now_ms()));
    let writer = hub.tracker.spawn(write_loop(
        hub.clone(),
        sink,
        rx,
        handle.clone(),
        last_seen.clone(),
    ));

    match protocol::sync(hub, &lead).await {
        Ok(frames) => {
            for f in frames {
                if handle.send(f).await.is_err() {
                    break;
                }
            }
        }
        Err(e) => {
            tracing::error!(lead = %lead, error = %e, "sync failed; ending session so the phone retries");
            handle.end(close::GOING_AWAY);
        }
    }
    Some(Open {
        lead,
        _slot: slot,
        handle,
        stream,
        writer,
        last_seen,
    })
}

async fn read_loop(
    hub: &Hub,
    lead: &str,
    mut stream: SplitStream<WebSocket>,
    handle: &SessionHandle,
    last_seen: &AtomicU64,
) {
    // Made once: a cancellation future registers itself with the token when made.
    let killed = handle.killed();
    tokio::pin!(killed);
    loop {
        let msg = tokio::select! {
            m = stream.next() => m,
            () = &mut killed => return,
        };
        match msg {
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
            Some(Ok(m)) => {
                last_seen.store(now_ms(), Relaxed);
                if let Some(renewed) = Box::pin(on_message(hub, lead, handle, m)).await {
                    handle.set_token(renewed.exp, renewed.jti.as_deref());
                }
            }
        }
    }
}

/// One message from the phone, through the protocol: charged to the lead's budget,
/// decoded, answered. A `hello` with a good token of the same lead renews the session:
/// the claims it returns are the session's from then on.
async fn on_message(hub: &Hub, lead: &str, handle: &SessionHandle, m: Message) -> Option<Claims> {
    let payload = match &m {
        Message::Text(t) => Payload::Text(t.as_str()),
        Message::Binary(b) => Payload::Other(b.len()),
        // WebSocket pings and pongs cost their sender too (tungstenite answers pings).
        Message::Ping(b) | Message::Pong(b) => {
            let _ = hub.lead_limits.charge_frame(lead, b.len());
            return None;
        }
        Message::Close(_) => return None,
    };
    let reply = match protocol::admit(hub, lead, payload) {
        Upstream::Refused(e) => e,
        Upstream::Hello(token) => match protocol::hello(hub, &token, Some(lead)) {
            Ok(opened) => return Some(opened.claims),
            Err(r) => r.frame(hub),
        },
        Upstream::Frame(frame) => protocol::answer(hub, lead, frame, Some(handle.id)).await?,
    };
    let _ = handle.send(encode(&reply)).await;
    None
}

async fn write_loop(
    hub: Hub,
    mut sink: SplitSink<WebSocket, Message>,
    mut rx: mpsc::Receiver<Frame>,
    handle: SessionHandle,
    last_seen: Arc<AtomicU64>,
) {
    let interval = Duration::from_secs(u64::from(hub.config.heartbeat_s));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let killed = handle.killed();
    tokio::pin!(killed);
    loop {
        let step = async {
            tokio::select! {
                f = rx.recv() => {
                    let Some(f) = f else { return Err(()) };
                    sink.feed(Message::Text(f)).await.map_err(drop)?;
                    // Everything already queued goes out in the same flush.
                    while let Ok(f) = rx.try_recv() {
                        sink.feed(Message::Text(f)).await.map_err(drop)?;
                    }
                    sink.flush().await.map_err(drop)
                }
                _ = tick.tick() => {
                    if now_ms() / 1000 >= handle.expiry() {
                        hub.metrics.sessions_expired.fetch_add(1, Relaxed);
                        tracing::info!(session = handle.id, "token expired; session ended");
                        handle.end(close::UNAUTHORIZED);
                        return Ok(());
                    }
                    let silent = now_ms().saturating_sub(last_seen.load(Relaxed));
                    if silent > 2 * interval.as_millis() as u64 {
                        hub.metrics.heartbeat_drops.fetch_add(1, Relaxed);
                        handle.end(close::HEARTBEAT_TIMEOUT);
                        return Ok(());
                    }
                    sink.send(Message::Ping(Default::default())).await.map_err(drop)
                }
            }
        };
        tokio::select! {
            biased;
            () = &mut killed => break,
            r = step => if r.is_err() { handle.end(close::GOING_AWAY); return; }
        }
    }
    // What is already queued (an ack's `ok` made just before the end) goes out first,
    // then the phone is told why, if its socket still takes writes.
    let flushed = async {
        while let Ok(f) = rx.try_recv() {
            sink.feed(Message::Text(f)).await?;
        }
        sink.flush().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), flushed).await;
    let code = handle.close_code();
    let close_frame = Message::Close(Some(CloseFrame {
        code,
        reason: "".into(),
    }));
    let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(close_frame)).await;
}
