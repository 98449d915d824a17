//! The fast path between the node that records a change and the nodes that hold the
//! recipients' sessions. Single node: [`local::LocalBus`] hands events straight to this
//! node's presence index. Cluster mode adds a Redis pub/sub bus behind the same trait.
//! A bus is at-most-once; correctness comes from the store (every reconnect resyncs).

pub mod local;

use std::sync::Arc;

use crate::store::{IncidentMeta, RecipientState};

/// A change to push to online leads.
#[derive(Debug, Clone)]
pub enum BusEvent {
    /// An incident's view changed (issued, updated, closed): every recipient gets it.
    Incident {
        /// The incident.
        meta: Arc<IncidentMeta>,
        /// Its recipients with their current state.
        recipients: Arc<Vec<RecipientState>>,
    },
    /// One lead's own status changed (its ack): all its devices get the new `me`.
    Recipient {
        /// The incident.
        meta: Arc<IncidentMeta>,
        /// The lead's new state.
        state: RecipientState,
    },
}

/// Publishes changes; see the module docs.
pub trait Bus: Send + Sync + 'static {
    /// Publishes an event; returns how many recipients this node reached (its online
    /// count, for the issuing API call).
    fn publish(&self, event: BusEvent) -> usize;
}
