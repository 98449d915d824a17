//! Leads over MQTT (`--mqtt URL`): the hub is a client of the broker (MQTT 5, QoS 1).
//!
//! Topics (DESIGN.md §3):
//! - `gridcast/v1/up/{lead}`: lead → hub. Every node subscribes with the shared
//!   subscription `$share/gridcast/gridcast/v1/up/+`, so each frame is handled once in a
//!   cluster. The lead id is the topic's (the broker's ACL lets a lead publish only on
//!   its own); `hello` must carry that lead's token and is answered with `welcome`, the
//!   sync and `synced` on the lead topic. Receipts and acks are answered `ok` only once
//!   durable, exactly as over WebSocket ([`super::answer`]).
//! - `gridcast/v1/lead/{lead}`: hub → one lead: sync, `ok`/`error`, status updates, and
//!   incident frames (with `me`) when the grid topic cannot be used.
//! - `gridcast/v1/grid/{code}`: hub → every reader of that grid, an incident frame
//!   without `me`, used only when every person assigned to the grid is a recipient (a
//!   role-filtered incident never reaches a non-recipient).
//! - `gridcast/v1/presence/{lead}`: retained `online`/`offline` from the phone, with
//!   `offline` as its Last Will.
//!
//! The node that records a change publishes it (once per topic, also in a cluster).
//! Frames carry a message expiry, so a broker never replays a stale order hours later.
//! Up frames go to a few workers by lead (one lead's frames stay in order); the event
//! loop never waits for them.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use gridcast_protocol::frame::ServerFrame;
use gridcast_protocol::{ErrorCode, GridCode};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, Publish, PublishProperties};
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::protocol::{self, Payload, Upstream};
use crate::backoff::Backoff;
use crate::delivery::Outlet;
use crate::incident::lead_frame;
use crate::registry::RegistryIndex;
use crate::session::{Channel, Frame, SessionHandle, encode};
use crate::store::{IncidentMeta, IncidentSnapshot, RecipientState};
use crate::{Hub, now_ms};

pub mod broker;
mod verified;

pub use crate::config::BrokerUrl;

pub use broker::mosquitto_acl;

/// Topic prefix of protocol v1.
pub const ROOT: &str = "gridcast/v1";
const UP_SHARED: &str = "$share/gridcast/gridcast/v1/up/+";
const PRESENCE_ALL: &str = "gridcast/v1/presence/+";
/// Incident frames expire after this long in the broker.
const INCIDENT_EXPIRY_S: u32 = 3_600;
/// Sync frames and replies expire sooner: a phone that is away asks again on `hello`.
const REPLY_EXPIRY_S: u32 = 300;
/// Workers for up frames (a lead always goes to the same one).
const WORKERS: usize = 4;
/// Up frames waiting per worker.
const WORKER_QUEUE: usize = 1_024;
/// Up frames waiting in tasks when a worker queue is full.
const OVERFLOW_TASKS: usize = 1_024;
/// Frames to a lead waiting for room in a full client queue, at most.
const LATER_MAX: usize = 4_096;
/// How long such a frame waits before it is given up.
const LATER_FOR: Duration = Duration::from_secs(60);
/// A payload and the properties every hub publish carries (its expiry in the broker).
fn message(payload: &[u8], expiry_s: u32) -> (Bytes, PublishProperties) {
    let props = PublishProperties {
        message_expiry_interval: Some(expiry_s),
        ..PublishProperties::default()
    };
    (Bytes::copy_from_slice(payload), props)
}

/// The lead topic.
pub fn lead_topic(lead: &str) -> String {
    format!("{ROOT}/lead/{lead}")
}
/// A grid topic.
pub fn grid_topic(code: &str) -> String {
    format!("{ROOT}/grid/{code}")
}

/// This node's MQTT side.
pub struct Mqtt {
    client: AsyncClient,
    /// Leads seen on the presence topic, with their session in presence while online.
    leads: DashMap<String, Option<u64>>,
    /// Leads whose hello this node knows to be good (from here or from the store),
    /// until their token expires; one entry per lead of the registry at most.
    verified: DashMap<String, crate::store::MqttLead>,
    connected: AtomicBool,
    metrics: Arc<crate::metrics::Metrics>,
    /// The client's event loop, until [`Outlet::start`] runs it.
    eventloop: std::sync::Mutex<Option<EventLoop>>,
    /// Where frames that wait for room in the queue run, once started.
    background: std::sync::OnceLock<(TaskTracker, CancellationToken)>,
    /// Frames to a lead waiting for room in the queue.
    later: Arc<tokio::sync::Semaphore>,
}

impl Mqtt {
    /// A client for the broker at `url`; nothing is sent until [`Outlet::start`].
    pub(crate) fn new(
        url: &BrokerUrl,
        node_id: &str,
        queue: usize,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Arc<Mqtt> {
        let mut options = MqttOptions::new(format!("gridcast-hub-{node_id}"), &url.host, url.port);
        options
            .set_keep_alive(Duration::from_secs(10))
            // Up frames sent while this node reconnects wait in the broker for it.
            .set_clean_start(false)
            .set_session_expiry_interval(Some(600))
            .set_max_packet_size(Some(gridcast_protocol::MAX_MESSAGE_BYTES as u32 * 2));
        if let Some((u, p)) = &url.credentials {
            options.set_credentials(u, p);
        }
        let (client, eventloop) = AsyncClient::new(options, queue.max(1));
        Arc::new(Mqtt {
            client,
            leads: DashMap::new(),
            verified: DashMap::new(),
            connected: AtomicBool::new(false),
            metrics,
            eventloop: std::sync::Mutex::new(Some(eventloop)),
            background: std::sync::OnceLock::new(),
            later: Arc::new(tokio::sync::Semaphore::new(LATER_MAX)),
        })
    }

    /// True while connected to the broker.
    pub fn connected(&self) -> bool {
        self.connected.load(Relaxed)
    }

    /// A lead's retained presence changed: online, it is a session in presence (carried
    /// by the broker), like a WebSocket one; offline, that session goes. Every node
    /// reads every presence topic, so each node's presence has every MQTT lead.
    fn presence_changed(&self, hub: &Hub, lead: &str, online: bool) {
        let registry = hub.registry.current();
        // Only people of the registry: anyone may publish on any presence topic.
        let Some(person) = registry.person(lead) else {
            return;
        };
        let session = self.leads.get(lead).and_then(|v| *v);
        let here = session.filter(|id| hub.presence.has_session(lead, *id));
        let grids = match (online, here) {
            (true, None) => {
                let handle = SessionHandle::carried_elsewhere(Channel::Mqtt, &hub.shutdown);
                let assignments = crate::registry::assignments(person);
                self.leads.insert(lead.to_owned(), Some(handle.id));
                let (came_online, _) =
                    hub.presence
                        .register(lead, assignments.clone(), handle, usize::MAX);
                came_online.then_some(assignments)
            }
            (false, Some(id)) => {
                self.leads.insert(lead.to_owned(), None);
                hub.presence.unregister(lead, id)
            }
            (false, None) => {
                self.leads.entry(lead.to_owned()).or_insert(None);
                return;
            }
            (true, Some(_)) => return,
        };
        tracing::info!(lead, online, "mqtt presence");
        if let Some(a) = grids {
            hub.console.grids_changed(a.iter().map(|a| &a.grid));
        }
    }

    async fn event_loop(
        self: Arc<Self>,
        hub: Hub,
        mut eventloop: EventLoop,
        shards: Vec<mpsc::Sender<(String, Bytes)>>,
    ) {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let overflow = Arc::new(tokio::sync::Semaphore::new(OVERFLOW_TASKS));
        loop {
            let event = tokio::select! {
                e = eventloop.poll() => e,
                () = hub.shutdown.cancelled() => break,
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    backoff.reset();
                    // Subscriptions are made again on every connection: a broker that
                    // restarted without our session has none.
                    let subs = [
                        self.client.try_subscribe(UP_SHARED, QoS::AtLeastOnce),
                        self.client.try_subscribe(PRESENCE_ALL, QoS::AtLeastOnce),
                    ];
                    if let Some(Err(e)) = subs.into_iter().find(Result::is_err) {
                        tracing::error!(error = %e, "mqtt subscribe could not be queued");
                    }
                    self.connected.store(true, Relaxed);
                    tracing::info!("mqtt connected");
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    self.dispatch(&hub, p, &shards, &overflow).await
                }
                Ok(_) => {}
                Err(e) => {
                    if self.connected.swap(false, Relaxed) {
                        tracing::warn!(error = %e, "mqtt connection lost; reconnecting");
                    } else {
                        tracing::debug!(error = %e, "mqtt connect failed");
                    }
                    if !backoff.sleep(&hub.shutdown).await {
                        break;
                    }
                }
            }
        }
        // Leave cleanly (bounded): the broker drops our session state as configured.
        if self.client.try_disconnect().is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                while let Ok(ev) = eventloop.poll().await {
                    if matches!(ev, Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                        break;
                    }
                }
            })
            .await;
        }
    }

    async fn dispatch(
        &self,
        hub: &Hub,
        p: Publish,
        shards: &[mpsc::Sender<(String, Bytes)>],
        overflow: &Arc<tokio::sync::Semaphore>,
    ) {
        let Ok(topic) = std::str::from_utf8(&p.topic) else {
            return;
        };
        if let Some(lead) = topic.strip_prefix("gridcast/v1/presence/") {
            self.presence_changed(hub, lead, p.payload.as_ref() == b"online");
        } else if let Some(lead) = topic.strip_prefix("gridcast/v1/up/") {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            lead.hash(&mut h);
            let shard = &shards[h.finish() as usize % shards.len()];
            let item = (lead.to_owned(), p.payload);
            if let Err(mpsc::error::TrySendError::Full(item)) = shard.try_send(item) {
                // Never dropped. A few waiting frames are handed to tasks so that the
                // event loop keeps serving keepalives; past that it waits (backpressure).
                match overflow.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let shard = shard.clone();
                        hub.tracker.spawn(async move {
                            let _ = shard.send(item).await;
                            drop(permit);
                        });
                    }
                    Err(_) => {
                        let _ = shard.send(item).await;
                    }
                }
            }
        }
    }

    async fn worker(self: Arc<Self>, hub: Hub, mut rx: mpsc::Receiver<(String, Bytes)>) {
        loop {
            let item = tokio::select! {
                i = rx.recv() => i,
                () = hub.shutdown.cancelled() => None,
            };
            let Some((lead, payload)) = item else { return };
            self.up(&hub, &lead, &payload).await;
        }
    }

    /// One frame from a lead, through the protocol. Until this node knows the lead's
    /// hello was good, its frames are charged to a budget of their own: whoever else
    /// publishes on the lead's topic cannot use up the lead's own budget (for its
    /// WebSocket sessions too), and nothing but a good `hello` counts.
    async fn up(&self, hub: &Hub, lead: &str, payload: &[u8]) {
        if hub.registry.current().person(lead).is_none() {
            // Not in the registry: there is no one to answer (the ACL should not have
            // let this through).
            tracing::warn!(lead, "mqtt frame from a lead not in the registry dropped");
            return;
        }
        let known = self
            .verified
            .get(lead)
            .is_some_and(|v| v.exp > now_ms() / 1000);
        let budget = if known {
            std::borrow::Cow::Borrowed(lead)
        } else {
            std::borrow::Cow::Owned(format!("?{lead}"))
        };
        let payload = match std::str::from_utf8(payload) {
            Ok(t) => Payload::Text(t),
            Err(_) => Payload::Other(payload.len()),
        };
        let reply = match protocol::admit(hub, &budget, payload) {
            Upstream::Refused(e) => e,
            Upstream::Hello(token) => match protocol::hello(hub, &token, Some(lead)) {
                Ok(opened) => return self.opened(hub, lead, opened).await,
                Err(r) => r.frame(hub),
            },
            Upstream::Frame(frame) => {
                // Anyone may publish on an anonymous or compromised broker: a frame
                // counts only from a lead whose hello was good, until its token expires
                // or is revoked.
                if let Err((code, why)) = self.check_verified(hub, lead).await {
                    hub.metrics.sessions_refused.fetch_add(1, Relaxed);
                    let r = frame.reference().map(str::to_owned);
                    protocol::error(hub, r, code, &why)
                } else {
                    match protocol::answer(hub, lead, frame, None).await {
                        Some(reply) => reply,
                        None => return,
                    }
                }
            }
        };
        self.reply(lead, &reply).await;
    }

    /// A good `hello`: remembered (from now until the token expires, this lead's frames
    /// count, on every node), then the welcome, the sync and `synced` on the lead topic.
    async fn opened(&self, hub: &Hub, lead: &str, opened: protocol::Opened) {
        let verified = crate::store::MqttLead {
            exp: opened.claims.exp,
            jti: opened.claims.jti.clone(),
        };
        if let Err(e) = hub
            .store
            .remember_mqtt_lead(lead, verified.exp, verified.jti.as_deref())
            .await
        {
            tracing::error!(lead, error = %e, "mqtt hello not remembered");
            let m = "the hub could not record your hello; send it again";
            let e = protocol::error(hub, None, ErrorCode::Unavailable, m);
            return self.reply(lead, &e).await;
        }
        self.verified.insert(lead.to_owned(), verified);
        let welcome = protocol::welcome(hub, &opened);
        self.publish(
            lead_topic(lead),
            welcome.as_str().as_bytes(),
            REPLY_EXPIRY_S,
        )
        .await;
        match protocol::sync(hub, lead).await {
            Ok(frames) => {
                for f in frames {
                    self.publish(lead_topic(lead), f.as_str().as_bytes(), REPLY_EXPIRY_S)
                        .await;
                }
            }
            Err(e) => {
                tracing::error!(lead, error = %e, "mqtt sync failed");
                let m = "the hub could not read your incidents; send hello again";
                let e = protocol::error(hub, None, ErrorCode::Unavailable, m);
                self.reply(lead, &e).await;
            }
        }
    }

    async fn reply(&self, lead: &str, frame: &ServerFrame) {
        let f = encode(frame);
        self.publish(lead_topic(lead), f.as_str().as_bytes(), REPLY_EXPIRY_S)
            .await;
    }

    async fn publish(&self, topic: String, payload: &[u8], expiry_s: u32) {
        let (payload, props) = message(payload, expiry_s);
        if let Err(e) = self
            .client
            .publish_with_properties(topic, QoS::AtLeastOnce, false, payload, props)
            .await
        {
            tracing::warn!(error = %e, "mqtt publish could not be queued");
        }
    }

    /// Publishes an incident to its MQTT readers: once on each grid topic whose every
    /// reader is a recipient, else on the lead topic of each recipient known to use MQTT.
    /// Returns true when the broker was connected, so the outbox entry may be cleared
    /// (else the sweeper publishes it again once connected).
    fn publish_incident(
        &self,
        registry: &RegistryIndex,
        meta: &IncidentMeta,
        recipients: &[RecipientState],
    ) -> bool {
        let ids: HashSet<&str> = recipients.iter().map(|r| r.lead.as_str()).collect();
        let mut by_grid: HashMap<&GridCode, Vec<&RecipientState>> = HashMap::new();
        for r in recipients {
            by_grid.entry(&r.grid).or_default().push(r);
        }
        let bare = encode(&ServerFrame::Incident {
            incident: meta.view(),
            me: None,
        });
        // Never waits for the broker: what the queue has no room for stays in the
        // outbox (false), and a sweeper publishes it again.
        let mut queued = self.connected();
        for (grid, rs) in by_grid {
            if registry.people_in(grid).all(|p| ids.contains(p)) {
                queued &= self.try_queue(
                    grid_topic(grid.as_str()),
                    bare.as_str().as_bytes(),
                    INCIDENT_EXPIRY_S,
                );
                continue;
            }
            for r in rs {
                if self.leads.contains_key(&r.lead) {
                    let f = lead_frame(meta, r);
                    queued &= self.try_queue(
                        lead_topic(&r.lead),
                        f.as_str().as_bytes(),
                        INCIDENT_EXPIRY_S,
                    );
                }
            }
        }
        queued
    }

    /// Queues a publish if the client's queue has room; false (and counted) if not.
    fn try_queue(&self, topic: String, payload: &[u8], expiry_s: u32) -> bool {
        let (payload, props) = message(payload, expiry_s);
        match self.client.try_publish_with_properties(
            topic,
            QoS::AtLeastOnce,
            false,
            payload,
            props,
        ) {
            Ok(()) => true,
            Err(e) => {
                self.metrics.mqtt_queue_full.fetch_add(1, Relaxed);
                tracing::warn!(error = %e, "mqtt publish not queued (the broker is not taking them)");
                false
            }
        }
    }
}

impl Mqtt {
    /// Runs the event loop and the up-frame workers until shutdown.
    pub(crate) fn start(self: Arc<Self>, hub: &Hub) {
        let Some(eventloop) = self
            .eventloop
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        else {
            return;
        };
        let _ = self
            .background
            .set((hub.tracker.clone(), hub.shutdown.clone()));
        let mut shards = Vec::with_capacity(WORKERS);
        for _ in 0..WORKERS {
            let (tx, rx) = mpsc::channel(WORKER_QUEUE);
            shards.push(tx);
            hub.tracker.spawn(self.clone().worker(hub.clone(), rx));
        }
        hub.tracker
            .spawn(self.clone().event_loop(hub.clone(), eventloop, shards));
    }
}

/// The broker is an outlet of the delivery port: phones it carries get changes on their
/// grid and lead topics. Nothing waits for the broker: a full client queue (the broker
/// stalled) leaves an incident in the outbox, makes a frame to a lead wait (bounded) and
/// drops a status update (counted; the phone's next sync has it).
impl Outlet for Mqtt {
    fn name(&self) -> &'static str {
        "the MQTT broker"
    }

    fn ready(&self) -> bool {
        self.connected()
    }

    fn incident(&self, registry: &RegistryIndex, snap: &IncidentSnapshot) -> bool {
        self.publish_incident(registry, &snap.meta, &snap.recipients)
    }

    fn status(&self, meta: &IncidentMeta, state: &RecipientState) {
        if self.leads.contains_key(&state.lead) {
            let f = lead_frame(meta, state);
            self.try_queue(
                lead_topic(&state.lead),
                f.as_str().as_bytes(),
                INCIDENT_EXPIRY_S,
            );
        }
    }

    /// A re-notification, an escalation step or a task has no outbox entry and an MQTT
    /// phone reads no sync until its next `hello`: with the queue full it is not
    /// dropped but waits for room in the background (bounded in number and time).
    fn to_lead(&self, lead: &str, frame: &Frame) {
        if !self.leads.contains_key(lead) {
            return;
        }
        let topic = lead_topic(lead);
        if self.try_queue(topic.clone(), frame.as_str().as_bytes(), INCIDENT_EXPIRY_S) {
            return;
        }
        let (Some((tracker, shutdown)), Ok(permit)) = (
            self.background.get(),
            self.later.clone().try_acquire_owned(),
        ) else {
            tracing::warn!(
                lead,
                "frame to an mqtt lead dropped: the broker queue is full and so are the frames waiting for it"
            );
            return;
        };
        let (client, shutdown) = (self.client.clone(), shutdown.clone());
        let (payload, props) = message(frame.as_str().as_bytes(), INCIDENT_EXPIRY_S);
        tracker.spawn(async move {
            let _permit = permit;
            let publish = client.publish_with_properties(topic, QoS::AtLeastOnce, false, payload, props);
            tokio::select! {
                r = tokio::time::timeout(LATER_FOR, publish) => {
                    if !matches!(r, Ok(Ok(()))) {
                        tracing::warn!("frame to an mqtt lead given up: the broker took nothing for {LATER_FOR:?}");
                    }
                }
                () = shutdown.cancelled() => {}
            }
        });
    }
}
