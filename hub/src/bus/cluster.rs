//! Cluster mode (`--redis URL`): several nodes behind a load balancer share one Redis.
//!
//! - **State** is in Redis ([`crate::store::redis`]); any node answers any API call.
//! - **Fan-out by grid code.** The node that records a change delivers it to its own
//!   sessions and publishes it on `gc:g:<grid>` for every grid of its recipients (each
//!   message carries only that grid's recipients). A node subscribes to the channels of
//!   the grids it holds sessions for, reference-counted through the presence index, and
//!   a new session waits (bounded) for its grids' subscriptions before it reads its sync,
//!   so nothing falls between the two.
//! - **Presence.** Every [`HEARTBEAT`] a node refreshes its entry in `{gcp}:nodes`
//!   (score: expiry) and publishes its changed leads to `{gcp}:node:<id>`. A node whose
//!   entry expired is dead: its leads leave cluster presence within [`PRESENCE_TTL`] of
//!   its last heartbeat.
//! - **Resync.** Pub/sub is at-most-once. Each node publishes a probe to itself every
//!   heartbeat; a subscription that ends or misses probes for [`PROBE_DEAD`] is dropped
//!   and made again, and then the node re-sends to its sessions every active incident
//!   whose `rev` it has not delivered, or delivered only in part (a fan-out is one
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

mod nodes;
mod publish;
pub mod seal;
mod wire;

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
use crate::store::StoreError;
use crate::store::redis::{REGISTRY_CHANNEL, RedisStore};
use crate::{Hub, now_ms};

/// How often a node refreshes its presence and probes its subscription.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// How long a node's presence lives after its last heartbeat.
pub const PRESENCE_TTL: Duration = Duration::from_secs(5);
/// A subscription that has not seen its own probe for this long is treated as lost.
pub const PROBE_DEAD: Duration = Duration::from_secs(3);
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
fn probe_channel(node: &str) -> String {
    format!("gc:probe:{node}")
}

/// One node's part in the cluster.
pub struct Cluster {
    node: String,
    client: redis::Client,
    store: RedisStore,
    presence: Arc<Presence>,
    metrics: Arc<Metrics>,
    ready: AtomicBool,
    /// Grid codes whose channel this node is subscribed to.
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
        client: redis::Client,
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
            client,
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

    /// Waits (bounded) until this node is subscribed to every grid of `assignments`.
    pub async fn wait_subscribed(&self, assignments: &[Assignment]) {
        let mut rx = self.subscribed_gen.subscribe();
        let deadline = tokio::time::Instant::now() + SUBSCRIBE_WAIT;
        loop {
            let all = {
                let s = self.subscribed.lock().unwrap_or_else(|p| p.into_inner());
                assignments.iter().all(|a| s.contains(a.grid.as_str()))
            };
            if all {
                return;
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                _ => {
                    tracing::warn!(
                        "grid subscriptions not confirmed in time; the resync after Redis returns covers this session"
                    );
                    return;
                }
            }
        }
    }

    fn saw(&self, id: &str, rev: u64) {
        self.seen.entry(id.to_owned()).or_default().whole(rev);
    }

    async fn subscriber(self: Arc<Self>, hub: Hub) {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        loop {
            let result = self.subscription(&hub).await;
            self.ready.store(false, Relaxed);
            self.subscribed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clear();
            match result {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(node = %self.node, error = %e, "cluster subscription lost; reconnecting and resyncing")
                }
            }
            if !backoff.sleep(&self.shutdown).await {
                return;
            }
        }
    }

    /// One life of the subscription: Ok at shutdown, Err when it is lost.
    async fn subscription(&self, hub: &Hub) -> Result<(), String> {
        let pubsub = tokio::time::timeout(Duration::from_secs(2), self.client.get_async_pubsub())
            .await
            .map_err(|_| "connect timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        let (mut sink, mut stream) = pubsub.split();
        sink.subscribe(&[
            probe_channel(&self.node),
            REGISTRY_CHANNEL.to_owned(),
            CONSOLE_CHANNEL.to_owned(),
        ])
        .await
        .map_err(|e| e.to_string())?;
        let mut channels = HashSet::new();
        self.reconcile_with(&mut sink, &mut channels)
            .await
            .map_err(|e| e.to_string())?;
        self.last_probe.store(now_ms(), Relaxed);
        // Redis may have come back without our presence (no AOF, failover): republish.
        self.presence_stale.store(true, Relaxed);
        self.resync(hub).await.map_err(|e| e.to_string())?;
        self.ready.store(true, Relaxed);
        tracing::info!(node = %self.node, grids = channels.len(), "cluster subscription ready");
        let mut check = tokio::time::interval(HEARTBEAT / 2);
        loop {
            tokio::select! {
                m = stream.next() => match m {
                    None => return Err("connection closed".into()),
                    Some(msg) => self.handle(hub, &msg).await,
                },
                () = self.reconcile.notified() => {
                    self.reconcile_with(&mut sink, &mut channels).await.map_err(|e| e.to_string())?;
                }
                _ = check.tick() => {
                    let silent = now_ms().saturating_sub(self.last_probe.load(Relaxed));
                    if silent > PROBE_DEAD.as_millis() as u64 {
                        // The probe goes out on the command connection: it may be the
                        // one that died silently, so it is renewed too.
                        if let Err(e) = self.store.renew().await {
                            tracing::warn!(error = %e, "redis connection renewal failed");
                        }
                        return Err(format!("no probe for {silent} ms"));
                    }
                }
                () = self.shutdown.cancelled() => return Ok(()),
            }
        }
    }

    /// Subscribes to the grids with sessions here and unsubscribes from the others.
    async fn reconcile_with(
        &self,
        sink: &mut PubSubSink,
        channels: &mut HashSet<String>,
    ) -> redis::RedisResult<()> {
        let desired: HashSet<String> = self
            .presence
            .grids()
            .iter()
            .map(|g| g.as_str().to_owned())
            .collect();
        let add: Vec<String> = desired
            .difference(channels)
            .map(|g| grid_channel(g))
            .collect();
        let drop: Vec<String> = channels
            .difference(&desired)
            .map(|g| grid_channel(g))
            .collect();
        if !add.is_empty() {
            sink.subscribe(&add).await?;
        }
        if !drop.is_empty() {
            sink.unsubscribe(&drop).await?;
        }
        channels.clone_from(&desired);
        *self.subscribed.lock().unwrap_or_else(|p| p.into_inner()) = desired;
        self.subscribed_gen.send_modify(|g| *g += 1);
        Ok(())
    }

    async fn handle(&self, hub: &Hub, msg: &redis::Msg) {
        let channel = msg.get_channel_name();
        let payload = match self.seal.open(channel, msg.get_payload_bytes(), now_ms()) {
            Ok(p) => p,
            Err(why) => {
                let n = self.metrics.cluster_forged.fetch_add(1, Relaxed);
                // Loud, but not one line per message of a flood.
                if n.is_power_of_two() || n == 0 {
                    tracing::error!(channel, error = %why, dropped_total = n + 1, "cluster message dropped: not sealed by a node of this cluster (someone else can PUBLISH on this Redis)");
                }
                return;
            }
        };
        if let Some(grid) = channel.strip_prefix("gc:g:") {
            let Ok(w) = serde_json::from_slice::<WireIn>(payload) else {
                tracing::warn!(channel, "undecodable cluster message dropped");
                return;
            };
            if w.origin == self.node {
                return; // delivered locally when it was published
            }
            if let Some((lead, frame)) = w.to {
                self.presence.send_to_lead(&lead, &frame.into());
                return;
            }
            let Some(meta) = w.meta else { return };
            let meta = Arc::new(meta);
            let event = if w.whole {
                self.seen
                    .entry(meta.id.clone())
                    .or_default()
                    .grid(meta.rev, grid);
                BusEvent::Incident {
                    meta,
                    recipients: Arc::new(w.recipients),
                }
            } else {
                let Some(state) = w.recipients.into_iter().next() else {
                    return;
                };
                BusEvent::Recipient { meta, state }
            };
            deliver(&self.presence, &self.metrics, &event);
        } else if channel == probe_channel(&self.node) {
            self.last_probe.store(now_ms(), Relaxed);
        } else if channel == REGISTRY_CHANNEL {
            if let Err(e) = self.reload_registry(hub).await {
                tracing::warn!(error = %e, "registry reload failed; retried at the next resync");
            }
        } else if channel == CONSOLE_CHANNEL {
            let Ok(w) = serde_json::from_slice::<ConsoleWire>(payload) else {
                return;
            };
            if w.origin == self.node {
                return;
            }
            for id in &w.changed {
                hub.console.incident_changed_remote(id);
            }
            if let Some((name, codes, data)) = w.event {
                match name.as_str() {
                    "incident" => hub.console.emit("incident", codes, data),
                    "report" => hub.console.emit("report", codes, data),
                    "escalation" => hub.console.emit("escalation", codes, data),
                    _ => {}
                }
            }
        }
    }

    /// After (re)subscribing: the registry if it moved, then every active or recently
    /// closed incident whose `rev` this node has not delivered goes to its local
    /// recipients.
    async fn resync(&self, hub: &Hub) -> Result<(), StoreError> {
        self.reload_registry(hub).await?;
        // Active incidents and those closed recently (a missed close must reach phones).
        let since = now_ms().saturating_sub(hub.config.closed_sync_hours * 3_600_000);
        let metas = hub.store.recent_metas(since).await?;
        let mut resent = 0;
        let local = self.presence.grids();
        for meta in &metas {
            let missed = self
                .seen
                .get(&meta.id)
                .is_none_or(|s| s.missed(meta, &local));
            if !missed {
                continue; // nothing missed: its recipients need not be read
            }
            let Some(s) = hub.store.incident(&meta.id).await? else {
                continue;
            };
            resent += deliver(
                &self.presence,
                &self.metrics,
                &BusEvent::Incident {
                    meta: s.meta.clone(),
                    recipients: s.recipients.clone(),
                },
            );
            self.saw(&s.meta.id, s.meta.rev);
        }
        let active: HashSet<&str> = metas.iter().map(|m| m.id.as_str()).collect();
        self.seen.retain(|id, _| active.contains(id.as_str()));
        self.metrics.cluster_resyncs.fetch_add(1, Relaxed);
        self.metrics
            .cluster_resent
            .fetch_add(resent as u64, Relaxed);
        tracing::info!(node = %self.node, active = metas.len(), resent, "cluster resync done");
        Ok(())
    }

    /// Puts the stored registry in force if its version is newer than ours.
    async fn reload_registry(&self, hub: &Hub) -> Result<(), StoreError> {
        let _one_at_a_time = hub.registry_writes.lock().await;
        let (ver, doc) = self.store.load_registry_versioned().await?;
        if ver <= self.registry_ver.load(Relaxed) {
            return Ok(());
        }
        let Some(doc) = doc else { return Ok(()) };
        match doc.validate() {
            Ok(registry) => {
                hub.apply_registry(registry);
                self.registry_ver.store(ver, Relaxed);
                tracing::info!(version = ver, "registry reloaded from the cluster");
            }
            Err(problems) => {
                tracing::error!(
                    version = ver,
                    ?problems,
                    "stored registry is invalid; keeping the one in force"
                )
            }
        }
        Ok(())
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
