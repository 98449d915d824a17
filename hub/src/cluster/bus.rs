//! The cluster's bus: this node's sessions at once, the other nodes through Redis
//! pub/sub by grid code (the cluster node in `cluster/` does the work).

use std::sync::Arc;

use gridcast_protocol::frame::Assignment;

use super::Cluster;
use crate::bus::{
    Bus, BusEvent, BusFuture, ConfirmedFuture, ConsoleEvent, DoneFuture, OnlineFuture,
};
use crate::registry::RegistryIndex;

/// The bus of a node in a cluster.
pub(crate) struct RedisBus {
    cluster: Arc<Cluster>,
}

impl RedisBus {
    /// The bus of `cluster`'s node.
    pub(crate) fn new(cluster: Arc<Cluster>) -> Self {
        Self { cluster }
    }
}

impl Bus for RedisBus {
    fn publish(&self, event: BusEvent) -> BusFuture<'_> {
        Box::pin(async move { self.cluster.publish_event(event).await.0 })
    }

    fn publish_confirmed(&self, event: BusEvent) -> ConfirmedFuture<'_> {
        Box::pin(self.cluster.publish_event(event))
    }

    fn remote(&self) -> bool {
        true
    }

    fn ready(&self) -> Result<(), String> {
        if self.cluster.ready() {
            Ok(())
        } else {
            Err("cluster subscription down or resyncing: this node cannot deliver".into())
        }
    }

    fn sessions_changed(&self) {
        self.cluster.sessions_changed();
    }

    fn wait_routed<'a>(&'a self, lead: &'a str, assignments: &'a [Assignment]) -> DoneFuture<'a> {
        Box::pin(self.cluster.wait_subscribed(lead, assignments))
    }

    fn announce_console<'a>(
        &'a self,
        changed: Vec<String>,
        event: Option<ConsoleEvent<'a>>,
    ) -> DoneFuture<'a> {
        Box::pin(self.cluster.announce_console(changed, event))
    }

    fn announce_registry(&self) -> DoneFuture<'_> {
        Box::pin(self.cluster.announce_registry())
    }

    fn online<'a>(&'a self, registry: &'a RegistryIndex) -> OnlineFuture<'a> {
        Box::pin(self.cluster.online(registry))
    }
}
