//! Cluster mode (`--redis URL`): several nodes behind a load balancer share one Redis.
//!
//! - **State** is in Redis ([`crate::store::redis`]); any node answers any API call.
//! - **Fan-out by grid code.** The node that records a change delivers it to its own
//!   sessions and publishes it on `gc:g:<grid>` for every grid of its recipients (each
//!   message carries only that grid's recipients). A node subscribes to the channels of
//!   the grids it holds sessions for, reference-counted through the presence index, and
//!   a new session waits (bounded) for its grids' subscriptions before it reads its sync,
//!   so nothing falls between the two.
//! - **A lead's own changes by lead.** The new status of an ack and frames for one lead
//!   (re-notification, escalation) go on `gc:l:<lead>`, which only the nodes holding a
//!   queued session of that lead subscribe to: an ack costs the other nodes nothing
//!   unless the lead has another device there (a grid channel would wake, and make
//!   decode the incident, every node with any session in the grid — O(acks × nodes)).
//! - **Presence.** Every [`HEARTBEAT`] a node refreshes its entry in `{gcp}:nodes`
//!   (score: expiry) and publishes its changed leads to `{gcp}:node:<id>`. A node whose
//!   entry expired is dead: its leads leave cluster presence within [`PRESENCE_TTL`] of
//!   its last heartbeat.
//! - **Resync.** Pub/sub is at-most-once. Each node publishes a probe to itself every
//!   heartbeat; a subscription that ends, or on which nothing (probe or other message)
//!   arrived for [`PROBE_DEAD`], or whose probe is [`PROBE_BEHIND`] late, is dropped
//!   and made again (a busy node whose subscription is behind keeps it), and then the
//!   node re-sends to its sessions every active incident whose `rev` it has not
//!   delivered, or delivered only in part (a fan-out is one
//!   message per grid: a subscription lost in the middle of one leaves grids unsent),
//!   and reloads the registry if its version moved.
//!   `/readyz` is false from the loss until the resync is done.
//! - **Registry** replacements are stored with a version and announced on `gc:registry`.
//! - **Console** progress: each node announces the incidents its leads changed every
//!   console tick on `gc:console`, so every node's console stream shows the whole
//!   cluster's counts (read from Redis).
//! - **Sealed.** Every message is sealed with the cluster key ([`seal`]) and opened
//!   before anything in it is looked at: a `PUBLISH` by anyone else who can reach Redis
//!   is dropped and counted, never delivered.

mod bus;
mod nodes;
mod publish;
mod resync;
pub mod seal;
mod subscription;
mod wire;

pub(crate) use bus::RedisBus;
use publish::publish_pipe;
use wire::{ConsoleWire, Message, Seen, WireIn, WireOut};

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashmap::DashMap;
use futures_util::StreamExt;
use gridcast_protocol::frame::Assignment;
use redis::aio::PubSubSink;
use tokio::sync::{Notify, mpsc, watch};

use crate::backoff::Backoff;
use crate::bus::{BusEvent, deliver};
use crate::metrics::Metrics;
use crate::presence::Presence;
use crate::store::redis::{REGISTRY_CHANNEL, RedisStore};
use crate::store::{IncidentMeta, StoreError};
use crate::{Hub, now_ms};
use gridcast_protocol::model::IncidentState;

/// How often a node refreshes its presence and probes its subscription.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// How long a node's presence lives after its last heartbeat.
pub const PRESENCE_TTL: Duration = Duration::from_secs(5);
/// A subscription that has not seen its own probe, nor any other message, for this
/// long is treated as lost.
pub const PROBE_DEAD: Duration = Duration::from_secs(3);
/// A subscription whose probe is this late is treated as lost even while other
/// messages still arrive on it (a node that is merely busy catches up before; what
/// it has not read yet waits in the client's buffer meanwhile).
pub const PROBE_BEHIND: Duration = Duration::from_secs(10);
/// How long a new session waits for its grids' subscriptions before reading its sync.
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(2);
/// How soon after a session change this node's presence entry is rewritten.
const PRESENCE_FLUSH_DELAY: Duration = Duration::from_millis(50);
/// Status updates waiting for the status publisher; when full, the ack that made one
/// publishes it itself (backpressure, never a drop).
const STATUS_QUEUE: usize = 8_192;
/// Most status updates in one pipeline.
const STATUS_BATCH: usize = 512;
/// Most failed publishes retried at once; beyond that the resync that follows a
/// reconnect (or a missed probe) delivers them.
const PUBLISH_RETRIES: usize = 64;
/// How long a failed publish is retried.
const PUBLISH_RETRY_FOR: Duration = Duration::from_secs(30);

const NODES: &str = "{gcp}:nodes";
const CONSOLE_CHANNEL: &str = "gc:console";

fn node_key(node: &str) -> String {
    format!("{{gcp}}:node:{node}")
}
fn grid_channel(grid: &str) -> String {
    format!("gc:g:{grid}")
}
fn lead_channel(lead: &str) -> String {
    format!("gc:l:{lead}")
}
fn probe_channel(node: &str) -> String {
    format!("gc:probe:{node}")
}

/// One node's part in the cluster.
pub struct Cluster {
    node: String,
    store: RedisStore,
    presence: Arc<Presence>,
    metrics: Arc<Metrics>,
    ready: AtomicBool,
    /// The grid and lead channels this node is subscribed to.
    subscribed: Mutex<HashSet<String>>,
    subscribed_gen: watch::Sender<u64>,
    reconcile: Notify,
    /// Status updates (a lead's new answer) waiting to be published in one pipeline.
    status_tx: mpsc::Sender<Message>,
    status_rx: Mutex<Option<mpsc::Receiver<Message>>>,
    /// Bounds the publishes being retried in the background.
    retrying: Arc<tokio::sync::Semaphore>,
    /// The other live nodes, as of the last heartbeat.
    live: Mutex<Vec<String>>,
    /// What of each active incident reached this node's sessions.
    seen: DashMap<String, Seen>,
    /// The newest meta of each active incident this node delivered: a lead's status
    /// from another node names its incident and is shown with this.
    metas: DashMap<String, Arc<IncidentMeta>>,
    last_probe: AtomicU64,
    registry_ver: AtomicU64,
    /// The presence entry must be rewritten whole (start, or a failed heartbeat).
    presence_stale: AtomicBool,
    shutdown: tokio_util::sync::CancellationToken,
    tracker: tokio_util::task::TaskTracker,
    /// Seals what this node publishes, opens what it receives.
    seal: seal::Seal,
}

impl Cluster {
    /// A cluster node over an open store (holding registry version `registry_ver`);
    /// nothing runs until [`Cluster::start`].
    pub(crate) fn new(
        node: &crate::backend::NodeParts<'_>,
        store: RedisStore,
        registry_ver: u64,
        presence: Arc<Presence>,
        seal: seal::Seal,
    ) -> Self {
        let (status_tx, status_rx) = mpsc::channel(STATUS_QUEUE);
        Self {
            node: node.node_id.to_owned(),
            status_tx,
            status_rx: Mutex::new(Some(status_rx)),
            store,
            presence,
            metrics: node.metrics.clone(),
            ready: AtomicBool::new(false),
            subscribed: Mutex::default(),
            subscribed_gen: watch::channel(0).0,
            reconcile: Notify::new(),
            live: Mutex::default(),
            retrying: Arc::new(tokio::sync::Semaphore::new(PUBLISH_RETRIES)),
            seen: DashMap::new(),
            metas: DashMap::new(),
            last_probe: AtomicU64::new(0),
            registry_ver: AtomicU64::new(registry_ver),
            presence_stale: AtomicBool::new(true),
            shutdown: node.shutdown.clone(),
            tracker: node.tracker.clone(),
            seal,
        }
    }

    /// Starts the subscriber and the heartbeat.
    pub fn start(self: &Arc<Self>, hub: &Hub) {
        self.tracker.spawn(self.clone().subscriber(hub.clone()));
        self.tracker.spawn(self.clone().heartbeat());
        let rx = self
            .status_rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(rx) = rx {
            self.tracker.spawn(self.clone().status_publisher(rx));
        }
    }

    /// Publishes queued status updates, as many as are waiting in one pipeline: under
    /// an ack storm that is a few round trips instead of one per ack.
    async fn status_publisher(self: Arc<Self>, mut rx: mpsc::Receiver<Message>) {
        loop {
            let first = tokio::select! {
                m = rx.recv() => m,
                () = self.shutdown.cancelled() => None,
            };
            let Some(first) = first else { break };
            let mut batch = vec![first];
            while batch.len() < STATUS_BATCH {
                match rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            self.publish_and_count(batch, &[]).await;
        }
        // What is still queued at shutdown goes out once, best effort.
        let mut rest = Vec::new();
        while let Ok(m) = rx.try_recv() {
            rest.push(m);
        }
        if !rest.is_empty() {
            let rest = self.sealed(rest);
            let mut c = self.store.connection();
            let _ = publish_pipe(&rest).query_async::<()>(&mut c).await;
        }
    }

    /// True while this node can deliver: subscribed, probe seen, resync done, and its
    /// presence published since the last Redis failure.
    pub fn ready(&self) -> bool {
        self.ready.load(Relaxed) && !self.presence_stale.load(Relaxed)
    }

    /// The sessions of this node changed: subscriptions follow.
    pub fn sessions_changed(&self) {
        self.reconcile.notify_one();
    }

    /// Waits (bounded) until this node is subscribed to `lead`'s channel and to every
    /// grid of its `assignments`.
    pub async fn wait_subscribed(&self, lead: &str, assignments: &[Assignment]) {
        let mut rx = self.subscribed_gen.subscribe();
        let deadline = tokio::time::Instant::now() + SUBSCRIBE_WAIT;
        let mut wanted: Vec<String> = assignments
            .iter()
            .map(|a| grid_channel(a.grid.as_str()))
            .collect();
        wanted.push(lead_channel(lead));
        loop {
            let all = {
                let s = self.subscribed.lock().unwrap_or_else(|p| p.into_inner());
                wanted.iter().all(|c| s.contains(c))
            };
            if all {
                return;
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                _ => {
                    tracing::warn!(
                        "grid and lead subscriptions not confirmed in time; the resync after Redis returns covers this session's incidents, its next sync what was sent to the lead alone"
                    );
                    return;
                }
            }
        }
    }

    /// All of `meta`'s rev reached this node's sessions.
    fn saw(&self, meta: &Arc<IncidentMeta>) {
        self.seen
            .entry(meta.id.clone())
            .or_default()
            .whole(meta.rev);
        self.remember(meta);
    }

    /// Keeps `meta` if it is the newest of its incident here; a closed incident's is
    /// dropped (no answer changes once it is closed).
    fn remember(&self, meta: &Arc<IncidentMeta>) {
        if meta.state == IncidentState::Closed {
            self.metas.remove_if(&meta.id, |_, m| m.rev <= meta.rev);
            return;
        }
        let mut e = self
            .metas
            .entry(meta.id.clone())
            .or_insert_with(|| meta.clone());
        if e.rev < meta.rev {
            *e = meta.clone();
        }
    }

    /// Tells the other nodes' consoles which incidents changed here, and optionally one
    /// event to show as is.
    pub async fn announce_console(
        &self,
        changed: Vec<String>,
        event: Option<(&str, Vec<String>, serde_json::Value)>,
    ) {
        let w = ConsoleWire {
            origin: self.node.clone(),
            changed,
            event: event.map(|(n, c, d)| (n.to_owned(), c, d)),
        };
        let Ok(payload) = serde_json::to_vec(&w) else {
            return;
        };
        let payload = self.seal.seal(CONSOLE_CHANNEL, &payload, now_ms());
        let mut c = self.store.connection();
        let r: redis::RedisResult<()> =
            redis::AsyncCommands::publish(&mut c, CONSOLE_CHANNEL, payload).await;
        if let Err(e) = r {
            tracing::debug!(error = %e, "console announcement failed");
        }
    }

    /// Tells every node that the registry in Redis changed (each reloads it; a node that
    /// misses this reloads at its next resync).
    pub async fn announce_registry(&self) {
        let payload = self.seal.seal(REGISTRY_CHANNEL, b"", now_ms());
        let mut c = self.store.connection();
        let r: redis::RedisResult<()> =
            redis::AsyncCommands::publish(&mut c, REGISTRY_CHANNEL, payload).await;
        if let Err(e) = r {
            tracing::warn!(error = %e, "registry saved but its announcement failed; nodes pick it up on resync");
        }
    }
}

#[cfg(test)]
mod tests;
