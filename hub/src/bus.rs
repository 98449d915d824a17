//! The fast path between the node that records a change and the nodes that hold the
//! recipients' sessions. Single node: [`local::LocalBus`] hands events straight to this
//! node's presence index. Cluster mode: [`crate::cluster::RedisBus`] delivers to this
//! node's sessions the same way and publishes the event by grid code through Redis.
//! A bus is at-most-once; correctness comes from the store (every reconnect resyncs).

pub(crate) mod local;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use gridcast_protocol::frame::{Assignment, Me, ServerFrame};

use crate::metrics::Metrics;
use crate::presence::{OnlineLead, Presence};
use crate::registry::RegistryIndex;
use crate::session::{Frame, encode};
use crate::store::{IncidentMeta, RecipientState, StoreError};

/// A change to push to online leads.
#[derive(Debug, Clone)]
pub(crate) enum BusEvent {
    /// An incident's view changed (issued, updated, closed): every recipient gets it.
    Incident {
        /// The incident.
        meta: Arc<IncidentMeta>,
        /// Its recipients with their current state.
        recipients: Arc<Vec<RecipientState>>,
    },
    /// One lead's own status changed (its ack): its other devices get the new `me`.
    Recipient {
        /// The incident.
        meta: Arc<IncidentMeta>,
        /// The lead's new state.
        state: RecipientState,
        /// The session the ack came from (on this node): it has its `ok` and knows its
        /// own answer, so it is not sent the frame again.
        except: Option<u64>,
    },
    /// A frame for every device of one lead (re-notification, escalation).
    ToLead {
        /// The lead.
        lead: String,
        /// The frame.
        frame: Frame,
    },
}

/// What [`Bus::publish`] resolves to: how many recipients are online.
pub(crate) type BusFuture<'a> = Pin<Box<dyn Future<Output = usize> + Send + 'a>>;

/// What [`Bus::publish_confirmed`] resolves to: how many recipients are online, and
/// whether every node that may hold a session was handed the event.
pub(crate) type ConfirmedFuture<'a> = Pin<Box<dyn Future<Output = (usize, bool)> + Send + 'a>>;

/// A console event shown as is on every node: its name, the area codes it concerns,
/// its data.
pub(crate) type ConsoleEvent<'a> = (&'a str, Vec<String>, serde_json::Value);

/// What the bus's background steps resolve to.
pub(crate) type DoneFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// What [`Bus::online`] resolves to.
pub(crate) type OnlineFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Vec<OnlineLead>, StoreError>> + Send + 'a>>;

/// Publishes changes; see the module docs.
pub(crate) trait Bus: Send + Sync + 'static {
    /// True when it reaches other nodes (whose phones only it reaches).
    fn remote(&self) -> bool {
        false
    }

    /// `Err(why)` while it cannot deliver.
    fn ready(&self) -> Result<(), String> {
        Ok(())
    }

    /// This node's sessions changed (subscriptions follow).
    fn sessions_changed(&self) {}

    /// Waits (bounded) until changes for `lead` and the grids of its `assignments`
    /// reach this node.
    fn wait_routed<'a>(&'a self, _lead: &'a str, _assignments: &'a [Assignment]) -> DoneFuture<'a> {
        Box::pin(std::future::ready(()))
    }

    /// Tells the other nodes' consoles which incidents changed here, and optionally
    /// one event to show as is.
    fn announce_console<'a>(
        &'a self,
        _changed: Vec<String>,
        _event: Option<ConsoleEvent<'a>>,
    ) -> DoneFuture<'a> {
        Box::pin(std::future::ready(()))
    }

    /// Tells the other nodes that the stored registry changed.
    fn announce_registry(&self) -> DoneFuture<'_> {
        Box::pin(std::future::ready(()))
    }

    /// Every lead online wherever this bus reaches.
    fn online<'a>(&'a self, registry: &'a RegistryIndex) -> OnlineFuture<'a>;

    /// Publishes an event; resolves to how many recipients are online (in the cluster,
    /// as far as this node can tell), for the issuing API call. Never fails: what the
    /// bus cannot deliver, the leads get from the store when they or the bus resync.
    fn publish(&self, event: BusEvent) -> BusFuture<'_>;

    /// [`Bus::publish`], also saying whether the other nodes were handed the event (a
    /// single node's bus always is): the outbox entry of a change is cleared only then
    /// (see `dispatch/outbox.rs`).
    fn publish_confirmed(&self, event: BusEvent) -> ConfirmedFuture<'_> {
        Box::pin(async move { (self.publish(event).await, true) })
    }
}

/// Queues an event to this node's sessions and counts what happened; returns how many
/// recipients have a session here. A slow session dropped here is never silent.
pub(crate) fn deliver(presence: &Presence, metrics: &Metrics, event: &BusEvent) -> usize {
    let (what, incident, reach) = match event {
        BusEvent::Incident { meta, recipients } => {
            let started = Instant::now();
            let reach = presence.fanout(meta, recipients);
            metrics.fanout_seconds.observe(started.elapsed());
            ("fan-out", &meta.id, reach)
        }
        BusEvent::Recipient {
            meta,
            state,
            except,
        } => {
            // Encoded only if another session of the lead is here.
            let frame = || {
                encode(&ServerFrame::Incident {
                    incident: meta.view(),
                    me: Some(Me {
                        status: state.status,
                        grid: state.grid.clone(),
                        role: state.role,
                    }),
                })
            };
            (
                "status update",
                &meta.id,
                presence.send_to_lead_except(&state.lead, *except, frame),
            )
        }
        BusEvent::ToLead { lead, frame, .. } => {
            ("frame to a lead", lead, presence.send_to_lead(lead, frame))
        }
    };
    metrics.frames_out.fetch_add(reach.frames as u64, Relaxed);
    metrics
        .slow_consumer_drops
        .fetch_add(reach.dropped as u64, Relaxed);
    if reach.dropped > 0 {
        tracing::warn!(incident = %incident, dropped = reach.dropped, "slow sessions dropped during {what}");
    }
    reach.online
}
