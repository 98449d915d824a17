//! The in-process bus of a single node: publishing is delivering.

use std::sync::Arc;

use super::{Bus, BusEvent, BusFuture, OnlineFuture, deliver};
use crate::metrics::Metrics;
use crate::presence::Presence;
use crate::registry::RegistryIndex;

/// Delivers straight to this node's sessions.
pub(crate) struct LocalBus {
    presence: Arc<Presence>,
    metrics: Arc<Metrics>,
}

impl LocalBus {
    /// A bus over this node's presence index.
    pub(crate) fn new(presence: Arc<Presence>, metrics: Arc<Metrics>) -> Self {
        Self { presence, metrics }
    }
}

impl Bus for LocalBus {
    fn publish(&self, event: BusEvent) -> BusFuture<'_> {
        let online = deliver(&self.presence, &self.metrics, &event);
        Box::pin(std::future::ready(online))
    }

    fn online<'a>(&'a self, _registry: &'a RegistryIndex) -> OnlineFuture<'a> {
        Box::pin(std::future::ready(Ok(self.presence.online())))
    }
}
