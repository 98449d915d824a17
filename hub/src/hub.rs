//! The state of one hub node, shared by every task: the handle the API, the transports
//! and the core hold.

use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{self, Auth};
use crate::console::Console;
use crate::delivery::Delivery;
use crate::metrics::Metrics;
use crate::presence::Presence;
use crate::ratelimit::{self, ConnectLimiter};
use crate::registry::{RegistryHandle, RegistryIndex};
use crate::store::Store;
use crate::{Config, clock, listen, now_ms, revocation};

/// Background work that starts with the hub's tasks (`serve`), given the hub.
pub(crate) type Starter = Box<dyn FnOnce(&Hub) + Send>;

/// What follows every registry put in force (the broker's ACL file, for one).
pub(crate) type RegistryFollower = Box<dyn Fn(&Hub) + Send + Sync>;

/// Shared state of one hub node. Cheap to clone.
#[derive(Clone)]
pub struct Hub(pub(crate) Arc<Inner>);

/// What a hub holds.
pub struct Inner {
    /// Settings.
    pub(crate) config: Arc<Config>,
    /// Token signer/verifier.
    pub(crate) auth: Auth,
    /// Tokens refused although well signed.
    pub(crate) revocations: Arc<revocation::Revocations>,
    /// Registry in force.
    pub(crate) registry: Arc<RegistryHandle>,
    /// Durable state.
    pub(crate) store: Arc<dyn Store>,
    /// This node's sessions.
    pub(crate) presence: Arc<Presence>,
    /// The one port every change is delivered through.
    pub(crate) delivery: Arc<Delivery>,
    /// Console stream (operators' live view; the core emits through `delivery`).
    pub(crate) console: Arc<Console>,
    /// Metrics.
    pub(crate) metrics: Arc<Metrics>,
    /// Root of every task's cancellation.
    pub(crate) shutdown: CancellationToken,
    /// Every session and background task, to wait for at shutdown.
    pub(crate) tracker: TaskTracker,
    /// Routes of the channels wired at open (the fallback gateway's callbacks), merged
    /// beside the lead endpoints when serving starts.
    pub(crate) channel_routes: std::sync::Mutex<Option<axum::Router<Hub>>>,
    /// Session slots, taken after a good `hello`.
    pub(crate) sessions: Arc<Semaphore>,
    /// Slots of WebSocket connections still waiting for their `hello`.
    pub(crate) pending_hellos: Arc<Semaphore>,
    /// Whose `X-Forwarded-For` is believed.
    pub(crate) proxies: listen::TrustedProxies,
    /// One registry upload at a time (taken before its body is read).
    pub(crate) registry_uploads: Arc<Semaphore>,
    /// Connection attempts per address.
    pub(crate) connects: ConnectLimiter,
    /// Public directory requests per source address.
    pub(crate) directory_limits: ConnectLimiter,
    /// The directory's answers by prefix, for the registry they were built from (a
    /// new registry starts a new cache).
    pub(crate) directory_cache: std::sync::Mutex<DirectoryCache>,
    /// Upstream budget of every lead.
    pub(crate) lead_limits: Arc<ratelimit::LeadLimiter>,
    /// This node's name.
    pub(crate) node_id: String,
    /// Held while a registry replacement is saved and put in force.
    pub(crate) registry_writes: tokio::sync::Mutex<()>,
    /// One CAP import at a time: a repeated alert finds the incident the first made.
    pub(crate) cap_imports: tokio::sync::Mutex<()>,
    /// The incident core's time.
    pub(crate) clock: Arc<dyn clock::Clock>,
    /// Receipts without a `ref`, for the [`crate::receipts`] lane.
    pub(crate) receipts: tokio::sync::mpsc::Sender<crate::store::MarkRequest>,
    /// What the bus and the outlets run, until `serve` starts it.
    pub(crate) starters: std::sync::Mutex<Vec<Starter>>,
    /// Run after every registry put in force.
    pub(crate) registry_followers: Vec<RegistryFollower>,
    /// The incident core, on its own narrow handle.
    pub(crate) core: crate::dispatch::Dispatch,
}

impl std::ops::Deref for Hub {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl Hub {
    /// Checks a presented token: signature, claims, lifetime, and the revocation list.
    pub fn authenticate(&self, token: &str) -> Result<auth::Claims, auth::TokenError> {
        let claims = self.auth.verify(token, now_ms() / 1000)?;
        if self.revocations.is_revoked(&claims) {
            return Err(auth::TokenError::Revoked);
        }
        Ok(claims)
    }

    /// Puts a validated registry in force: new assignments for online leads, sessions
    /// of people no longer in it ended, subscriptions following.
    pub fn apply_registry(&self, registry: gridcast_protocol::registry::Registry) {
        self.registry.replace(RegistryIndex::new(registry));
        let offline = self.presence.refresh(
            &self.registry.current(),
            gridcast_protocol::error::close::FORBIDDEN,
        );
        for a in offline {
            self.console.grids_changed(a.iter().map(|a| &a.grid));
        }
        self.delivery.registry_changed();
        for follow in &self.registry_followers {
            follow(self);
        }
    }
}

/// The directory's answers by prefix and the registry they were built from.
pub(crate) type DirectoryCache = (
    Option<Arc<crate::registry::RegistryIndex>>,
    std::collections::HashMap<String, bytes::Bytes>,
);
