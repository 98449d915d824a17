//! A lead session as the core sees it: a bounded queue of frames to send and a way to end
//! it. Transports own the socket; the core only ever calls [`SessionHandle::push`], which
//! never waits: a full queue means the phone is not keeping up, and the session is ended
//! (the phone reconnects and resyncs from the store) instead of slowing anyone else.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};

use axum::extract::ws::Utf8Bytes;
use gridcast_protocol::error::close;
use gridcast_protocol::frame::ServerFrame;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A serialised frame, shared by every session it goes to (cloning is a refcount).
pub type Frame = Utf8Bytes;

/// Serialises a frame once.
pub fn encode(frame: &ServerFrame) -> Frame {
    Frame::from(serde_json::to_string(frame).expect("server frames always serialize"))
}

/// The transport a session uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// WebSocket.
    Ws,
    /// MQTT through a broker.
    Mqtt,
}

impl Channel {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ws => "ws",
            Self::Mqtt => "mqtt",
        }
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

#[derive(Debug)]
struct Control {
    kill: CancellationToken,
    close_code: AtomicU16,
    /// When the session's token expires (Unix s); `u64::MAX` until set.
    expiry: AtomicU64,
    /// The id (`jti`) of the session's token, for the revocation list.
    token_id: std::sync::Mutex<Option<Box<str>>>,
}

/// The core's handle on one session. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SessionHandle {
    /// Unique within this process.
    pub id: u64,
    /// Transport.
    pub channel: Channel,
    /// The frames this node carries to the phone; `None` when another system carries
    /// them (an MQTT lead: the broker, through the grid and lead topics).
    tx: Option<mpsc::Sender<Frame>>,
    control: Arc<Control>,
}

/// Why [`SessionHandle::push`] did not queue a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// The queue was full; the session is being dropped as a slow consumer.
    Full,
    /// The session has ended.
    Closed,
}

impl SessionHandle {
    /// A new session with a send queue of `capacity` frames; the transport drains the
    /// receiver and watches [`SessionHandle::killed`].
    pub fn new(
        channel: Channel,
        capacity: usize,
        parent: &CancellationToken,
    ) -> (Self, mpsc::Receiver<Frame>) {
        let (tx, rx) = mpsc::channel(capacity);
        (Self::with(channel, Some(tx), parent), rx)
    }

    /// A session whose frames another system carries (a lead online through the MQTT
    /// broker): it is in presence and counted online like any other, but fan-out
    /// queues nothing for it.
    pub fn carried_elsewhere(channel: Channel, parent: &CancellationToken) -> Self {
        Self::with(channel, None, parent)
    }

    fn with(channel: Channel, tx: Option<mpsc::Sender<Frame>>, parent: &CancellationToken) -> Self {
        let control = Arc::new(Control {
            kill: parent.child_token(),
            close_code: AtomicU16::new(close::GOING_AWAY),
            expiry: AtomicU64::new(u64::MAX),
            token_id: std::sync::Mutex::new(None),
        });
        Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            channel,
            tx,
            control,
        }
    }

    /// True when this node queues the session's frames (see
    /// [`SessionHandle::carried_elsewhere`]).
    pub fn queued(&self) -> bool {
        self.tx.is_some()
    }

    /// Queues a frame without waiting. A full queue ends the session (slow consumer).
    pub fn push(&self, frame: Frame) -> Result<(), PushError> {
        let Some(tx) = &self.tx else {
            return Err(PushError::Closed);
        };
        match tx.try_send(frame) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.end(close::SLOW_CONSUMER);
                Err(PushError::Full)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(PushError::Closed),
        }
    }

    /// Queues a frame, waiting for room: only for the session's own replies and sync,
    /// where waiting slows nobody else.
    pub async fn send(&self, frame: Frame) -> Result<(), PushError> {
        let Some(tx) = &self.tx else {
            return Err(PushError::Closed);
        };
        tokio::select! {
            r = tx.send(frame) => r.map_err(|_| PushError::Closed),
            () = self.control.kill.cancelled() => Err(PushError::Closed),
        }
    }

    /// Ends the session with a close code (the first reason given wins).
    pub fn end(&self, code: u16) {
        if !self.control.kill.is_cancelled() {
            let _ = self.control.close_code.compare_exchange(
                close::GOING_AWAY,
                code,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
            self.control.kill.cancel();
        }
    }

    /// Resolves when the session is to end.
    pub async fn killed(&self) {
        self.control.kill.cancelled().await
    }

    /// True once the session is to end.
    pub fn is_killed(&self) -> bool {
        self.control.kill.is_cancelled()
    }

    /// The session's token from now on: when it expires (Unix s) and its id.
    pub fn set_token(&self, exp: u64, jti: Option<&str>) {
        self.control.expiry.store(exp, Ordering::Release);
        *self
            .control
            .token_id
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = jti.map(Box::from);
    }

    /// The id of the session's token, if it has one.
    pub fn token_id(&self) -> Option<String> {
        self.control
            .token_id
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_deref()
            .map(str::to_owned)
    }

    /// When the session's token expires (Unix s).
    pub fn expiry(&self) -> u64 {
        self.control.expiry.load(Ordering::Acquire)
    }

    /// The close code to send.
    pub fn close_code(&self) -> u16 {
        self.control.close_code.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_ends_the_session_as_slow_consumer() {
        let root = CancellationToken::new();
        let (s, mut rx) = SessionHandle::new(Channel::Ws, 2, &root);
        let f = encode(&ServerFrame::Synced);
        assert_eq!(s.push(f.clone()), Ok(()));
        assert_eq!(s.push(f.clone()), Ok(()));
        assert_eq!(s.push(f.clone()), Err(PushError::Full));
        assert!(s.is_killed());
        assert_eq!(s.close_code(), close::SLOW_CONSUMER);
        assert_eq!(rx.recv().await.as_deref(), Some(r#"{"type":"synced"}"#));
    }

    #[tokio::test]
    async fn root_shutdown_reaches_every_session() {
        let root = CancellationToken::new();
        let (s, _rx) = SessionHandle::new(Channel::Ws, 2, &root);
        root.cancel();
        s.killed().await;
        assert_eq!(s.close_code(), close::GOING_AWAY);
    }
}
