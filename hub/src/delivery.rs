//! The delivery port: the core (incidents, tasks, escalation, reports) hands every
//! change to [`Delivery`] and knows nothing else.
//!
//! Behind it:
//! - the [`Bus`]: this node's sessions and the other nodes' (one node's own bus, or the
//!   cluster's bus through Redis pub/sub), the fast path;
//! - every [`Outlet`]: a channel whose phones another system carries (the MQTT broker
//!   today; an SMS gateway or a push service tomorrow, each one file implementing
//!   [`Outlet`], added where the hub is wired, which also starts what it runs);
//! - the console stream of this node, and through the bus that of the other nodes;
//! - a [`Fallback`]: a gateway for the leads who did not answer in time (SMS and voice
//!   calls, `transport/fallback.rs`), which queues durably what it will send and sends
//!   it on its own.
//!
//! Nothing here waits on a channel's far end: an outlet takes a change into its own
//! bounded queue or says it could not, and what an outlet could not take stays in the
//! outbox (`dispatch/outbox.rs`) until a sweeper hands it over again. So nothing on an ack's way
//! to its `ok` waits for a broker or a gateway.

use std::collections::HashSet;
use std::sync::Arc;

use crate::bus::{Bus, BusEvent};
use crate::console::Console;
use crate::presence::OnlineLead;
use crate::registry::{RegistryHandle, RegistryIndex};
use crate::session::Frame;
use crate::store::{IncidentMeta, IncidentSnapshot, RecipientState, StoreError, StoreFuture};

/// A channel whose phones another system carries. Every method returns at once.
pub(crate) trait Outlet: Send + Sync + 'static {
    /// Its name in logs and readiness answers.
    fn name(&self) -> &'static str;
    /// True while it can take changes (else `/readyz` says so, and a single node's
    /// sweeper waits for it).
    fn ready(&self) -> bool;
    /// An incident's current `rev` for the recipients it reaches. False when it could
    /// not take all of it: the outbox entry stays and a sweeper hands it over again.
    fn incident(&self, registry: &RegistryIndex, snap: &IncidentSnapshot) -> bool;
    /// A lead's own new status (its ack). May be dropped when the outlet is full: the
    /// lead's next sync has it.
    fn status(&self, meta: &IncidentMeta, state: &RecipientState);
    /// A frame for one lead (re-notification, escalation, a task).
    fn to_lead(&self, lead: &str, frame: &Frame);
}

/// A channel for the leads who did not answer in time; see the module docs.
pub(crate) trait Fallback: Send + Sync + 'static {
    /// Recipients of `snap` still silent when their window passed: what they will be
    /// sent is queued durably before the future resolves (the escalation step is
    /// recorded after it, so a step is never recorded without its messages).
    fn silent<'a>(
        &'a self,
        snap: &'a IncidentSnapshot,
        silent: &'a [&'a RecipientState],
    ) -> StoreFuture<'a, ()>;
    /// True when recipients offline at issue are sent a text at once.
    fn wants_offline(&self) -> bool;
    /// Recipients of `snap` who were offline when it was issued (not in `online`).
    fn offline<'a>(
        &'a self,
        snap: &'a IncidentSnapshot,
        online: &'a HashSet<String>,
    ) -> StoreFuture<'a, ()>;
}

/// The one port the core delivers through; see the module docs.
pub(crate) struct Delivery {
    bus: Arc<dyn Bus>,
    outlets: Vec<Arc<dyn Outlet>>,
    fallback: Option<Arc<dyn Fallback>>,
    console: Arc<Console>,
    registry: Arc<RegistryHandle>,
}

impl Delivery {
    /// A port over `bus` and `outlets`, emitting console events on `console`.
    pub(crate) fn new(
        bus: Arc<dyn Bus>,
        outlets: Vec<Arc<dyn Outlet>>,
        fallback: Option<Arc<dyn Fallback>>,
        console: Arc<Console>,
        registry: Arc<RegistryHandle>,
    ) -> Self {
        Self {
            bus,
            outlets,
            fallback,
            console,
            registry,
        }
    }

    /// True when a change must be recorded with an outbox entry: some recipients may
    /// be reached only through another node or an outlet.
    pub(crate) fn needs_outbox(&self) -> bool {
        self.bus.remote() || !self.outlets.is_empty()
    }

    /// True when the sweeper can do anything: the bus reaches other nodes, or every
    /// outlet can take changes.
    pub(crate) fn sweep_useful(&self) -> bool {
        self.bus.remote() || self.outlets.iter().all(|o| o.ready())
    }

    /// `Err(why)` while this node cannot deliver.
    pub(crate) fn ready(&self) -> Result<(), String> {
        self.bus.ready()?;
        match self.outlets.iter().find(|o| !o.ready()) {
            Some(o) => Err(format!("not connected to {}", o.name())),
            None => Ok(()),
        }
    }

    /// An incident's current `rev` to every recipient on every channel: how many are
    /// online (as far as this node can tell), and whether every channel took it.
    pub(crate) async fn incident(&self, snap: &IncidentSnapshot) -> (usize, bool) {
        let (online, bus_sent) = self.bus.publish_confirmed(incident_event(snap)).await;
        (online, self.to_outlets(snap) && bus_sent)
    }

    /// The same `rev` again, for the sweeper: to the other nodes (this node's sessions
    /// had it when it was made here) and to every outlet. True when all took it.
    pub(crate) async fn incident_again(&self, snap: &IncidentSnapshot) -> bool {
        let bus_sent =
            !self.bus.remote() || self.bus.publish_confirmed(incident_event(snap)).await.1;
        self.to_outlets(snap) && bus_sent
    }

    fn to_outlets(&self, snap: &IncidentSnapshot) -> bool {
        let registry = self.registry.current();
        // Every outlet is tried, also after one failed.
        let mut all = true;
        for o in &self.outlets {
            all &= o.incident(&registry, snap);
        }
        all
    }

    /// Leads still silent when their window passed, to the fallback channel (if any):
    /// `Err` when what they will be sent could not be queued (the caller records the
    /// step later, and tries again).
    pub(crate) async fn silent(
        &self,
        snap: &IncidentSnapshot,
        silent: &[&RecipientState],
    ) -> Result<(), StoreError> {
        match &self.fallback {
            Some(f) if !silent.is_empty() => f.silent(snap, silent).await,
            _ => Ok(()),
        }
    }

    /// A new activation's recipients who are offline, to the fallback channel when it
    /// wants them. A failure is logged: they still get it when their window passes.
    pub(crate) async fn offline_at_issue(&self, snap: &IncidentSnapshot) {
        let Some(f) = self.fallback.as_ref().filter(|f| f.wants_offline()) else {
            return;
        };
        let online: HashSet<String> = match self.online().await {
            Ok(list) => list.into_iter().map(|l| l.id).collect(),
            Err(e) => {
                tracing::warn!(incident = %snap.meta.id, error = %e, "fallback: who is online unknown; texts wait for the window");
                return;
            }
        };
        if let Err(e) = f.offline(snap, &online).await {
            tracing::warn!(incident = %snap.meta.id, error = %e, "fallback: texts to the offline not queued; they wait for the window");
        }
    }

    /// A lead's new answer, to all its devices but the session it came from (`origin`,
    /// which has its `ok`).
    pub(crate) async fn status(
        &self,
        meta: Arc<IncidentMeta>,
        state: RecipientState,
        origin: Option<u64>,
    ) {
        for o in &self.outlets {
            o.status(&meta, &state);
        }
        self.bus
            .publish(BusEvent::Recipient {
                meta,
                state,
                except: origin,
            })
            .await;
    }

    /// A frame to every device of one lead.
    pub(crate) async fn to_lead(&self, lead: String, frame: Frame) {
        for o in &self.outlets {
            o.to_lead(&lead, &frame);
        }
        self.bus.publish(BusEvent::ToLead { lead, frame }).await;
    }

    /// A console event (`incident`, `report`, `escalation`) to this node's console
    /// streams and the other nodes'.
    pub(crate) async fn console(
        &self,
        name: &'static str,
        codes: Vec<String>,
        data: serde_json::Value,
    ) {
        self.bus
            .announce_console(Vec::new(), Some((name, codes.clone(), data.clone())))
            .await;
        self.console.emit(name, codes, data);
    }

    /// An incident's counts changed: the console ticker sends its progress.
    pub(crate) fn counts_changed(&self, incident: &str) {
        self.console.incident_changed(incident);
    }

    /// Tells the other nodes' consoles which incidents changed here.
    pub(crate) async fn announce_changed(&self, incidents: Vec<String>) {
        self.bus.announce_console(incidents, None).await;
    }

    /// Every lead online (in a cluster: on any node).
    pub(crate) async fn online(&self) -> Result<Vec<OnlineLead>, StoreError> {
        self.bus.online(&self.registry.current()).await
    }

    /// This node's sessions changed: what the bus follows (subscriptions) follows.
    pub(crate) fn sessions_changed(&self) {
        self.bus.sessions_changed();
    }

    /// Waits (bounded) until changes for this lead and its grids reach this node.
    pub(crate) async fn wait_routed(
        &self,
        lead: &str,
        assignments: &[gridcast_protocol::frame::Assignment],
    ) {
        self.bus.wait_routed(lead, assignments).await;
    }

    /// The registry in force changed here: what the bus follows follows.
    pub(crate) fn registry_changed(&self) {
        self.bus.sessions_changed();
    }

    /// The stored registry was replaced here: the other nodes reload it.
    pub(crate) async fn announce_registry(&self) {
        self.bus.announce_registry().await;
    }
}

/// The bus event of an incident's current `rev`.
fn incident_event(snap: &IncidentSnapshot) -> BusEvent {
    BusEvent::Incident {
        meta: snap.meta.clone(),
        recipients: snap.recipients.clone(),
    }
}
