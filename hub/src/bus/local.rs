//! The in-process bus of a single node: publishing is delivering.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use gridcast_protocol::frame::{Me, ServerFrame};

use super::{Bus, BusEvent};
use crate::metrics::Metrics;
use crate::presence::{Presence, Reach};
use crate::session::encode;

/// Delivers straight to this node's sessions.
pub struct LocalBus {
    presence: Arc<Presence>,
    metrics: Arc<Metrics>,
}

impl LocalBus {
    /// A bus over this node's presence index.
    pub fn new(presence: Arc<Presence>, metrics: Arc<Metrics>) -> Self {
        Self { presence, metrics }
    }
}

impl LocalBus {
    /// Counts what a delivery did; a slow session dropped here is never silent.
    fn account(&self, what: &str, incident: &str, reach: Reach) -> usize {
        self.metrics
            .frames_out
            .fetch_add(reach.frames as u64, Relaxed);
        self.metrics
            .slow_consumer_drops
            .fetch_add(reach.dropped as u64, Relaxed);
        if reach.dropped > 0 {
            tracing::warn!(incident = %incident, dropped = reach.dropped, "slow sessions dropped during {what}");
        }
        reach.online
    }
}

impl Bus for LocalBus {
    fn publish(&self, event: BusEvent) -> usize {
        match event {
            BusEvent::Incident { meta, recipients } => {
                let started = Instant::now();
                let reach = self.presence.fanout(&meta, &recipients);
                self.metrics.fanout_seconds.observe(started.elapsed());
                self.account("fan-out", &meta.id, reach)
            }
            BusEvent::Recipient { meta, state } => {
                let frame = encode(&ServerFrame::Incident {
                    incident: meta.view(),
                    me: Some(Me {
                        status: state.status,
                        grid: state.grid,
                        role: state.role,
                    }),
                });
                let reach = self.presence.send_to_lead(&state.lead, &frame);
                self.account("status update", &meta.id, reach)
            }
        }
    }
}
