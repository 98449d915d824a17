//! The incident core: issue, revise, marks, tasks, reports, escalation, the outbox and
//! the after-action report. Its handle, [`Dispatch`], holds only what the core may
//! reach — the store, the delivery port, the registry, the clock, metrics, the settings
//! and the report quota — in private fields: nothing here can touch a transport, a
//! session or a backend, and nothing here names the hub's own handle.

pub(crate) mod after_action;
pub(crate) mod approval;
pub(crate) mod escalation;
pub mod incident;
pub(crate) mod outbox;
pub(crate) mod task;
mod upward;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::Config;
use crate::clock::Clock;
use crate::delivery::Delivery;
use crate::metrics::Metrics;
use crate::ratelimit::LeadLimiter;
use crate::registry::RegistryHandle;
use crate::store::Store;

/// The core's handle. Cheap to clone (every part is shared).
#[derive(Clone)]
pub(crate) struct Dispatch {
    store: Arc<dyn Store>,
    delivery: Arc<Delivery>,
    registry: Arc<RegistryHandle>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    config: Arc<Config>,
    lead_limits: Arc<LeadLimiter>,
    shutdown: CancellationToken,
    /// One satisfaction rating at a time on this node (the store's lock covers the
    /// others): a task is rated once.
    ratings: Arc<tokio::sync::Mutex<()>>,
}

/// What [`Dispatch::new`] is made of.
pub(crate) struct Parts {
    /// Durable state.
    pub(crate) store: Arc<dyn Store>,
    /// The one delivery port.
    pub(crate) delivery: Arc<Delivery>,
    /// The registry in force.
    pub(crate) registry: Arc<RegistryHandle>,
    /// The core's time.
    pub(crate) clock: Arc<dyn Clock>,
    /// Metrics.
    pub(crate) metrics: Arc<Metrics>,
    /// Settings.
    pub(crate) config: Arc<Config>,
    /// The leads' budgets (reports per minute).
    pub(crate) lead_limits: Arc<LeadLimiter>,
    /// Ends the core's tickers.
    pub(crate) shutdown: CancellationToken,
}

impl Dispatch {
    /// The core over its parts.
    pub(crate) fn new(p: Parts) -> Self {
        Self {
            store: p.store,
            delivery: p.delivery,
            registry: p.registry,
            clock: p.clock,
            metrics: p.metrics,
            config: p.config,
            lead_limits: p.lead_limits,
            shutdown: p.shutdown,
            ratings: Arc::default(),
        }
    }
}
