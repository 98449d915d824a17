//! The fallback channel: a generic HTTP webhook that SMS and voice gateways sit behind,
//! for the leads who did not answer in time.
//!
//! - When a lead's ack window passes and it is still silent, it is queued one text
//!   (`INC:lead:sms`); with `--fallback-offline-at-issue`, a lead offline at issue is
//!   queued the same text at once (the same id: one text either way).
//! - 叫应 (call until answered): for the levels of `--callout-levels`, a silent grid lead
//!   is also queued a voice call, and every call the gateway takes queues the next one
//!   `--callout-interval-s` later, until the lead answers on any channel, a call is
//!   picked up, `--callout-max` calls were made or the escalation chain ends.
//! - Drills reach the gateway only when they ask for it (`"fallback": true`).
//!
//! The queue is the store's ([`crate::store::FallbackRecord`]): a message is queued
//! before its escalation step is recorded, marked `sending` before its request leaves,
//! and sent again with the same `Idempotency-Key` only when a sender died holding it.
//! The sender ([`sender`]) checks at send time that the lead is still silent. Phone
//! numbers are read from the registry when a message is sent; they are never logged or
//! stored with the message.

mod callbacks;
mod http;
mod sender;
pub(crate) mod sign;
mod text;

use std::collections::HashSet;
use std::sync::Arc;

use gridcast_protocol::Role;
use gridcast_protocol::api::Channel;
use gridcast_protocol::model::Status;

use crate::clock::Clock;
use crate::config::FallbackConfig;
use crate::delivery::Fallback;
use crate::metrics::Metrics;
use crate::registry::RegistryHandle;
use crate::store::{
    FallbackRecord, IncidentMeta, IncidentSnapshot, RecipientState, Store, StoreFuture,
};

pub(crate) use text::Templates;

/// The webhook gateway; see the module docs.
pub(crate) struct Webhook {
    store: Arc<dyn Store>,
    registry: Arc<RegistryHandle>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    config: FallbackConfig,
    url: String,
    secret: Vec<u8>,
    /// The base of the status and reply URLs.
    public_url: String,
    templates: Templates,
    /// Wakes the sender when something was queued for now.
    wake: tokio::sync::Notify,
    /// Callback bodies read at a time.
    callbacks: tokio::sync::Semaphore,
    /// Signatures of the callbacks taken, until they could no longer be played again
    /// (their timestamp too old): a replay is refused. Bounded.
    taken: std::sync::Mutex<std::collections::HashMap<String, u64>>,
}

/// Callback bodies read at a time.
const CALLBACK_READS: usize = 16;
/// Most signatures remembered.
const MAX_TAKEN: usize = 100_000;

impl Webhook {
    /// The gateway of `config` (`None` when `--fallback-webhook` is not set).
    pub(crate) fn new(
        config: &crate::Config,
        templates: Templates,
        store: Arc<dyn Store>,
        registry: Arc<RegistryHandle>,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
    ) -> Option<Arc<Self>> {
        let f = &config.fallback;
        let url = f.fallback_webhook.clone()?;
        let public_url = f
            .fallback_public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", config.listen));
        Some(Arc::new(Self {
            store,
            registry,
            clock,
            metrics,
            url,
            secret: f.fallback_secret.clone().unwrap_or_default().into_bytes(),
            public_url: public_url.trim_end_matches('/').to_owned(),
            templates,
            config: f.clone(),
            wake: tokio::sync::Notify::new(),
            callbacks: tokio::sync::Semaphore::new(CALLBACK_READS),
            taken: std::sync::Mutex::default(),
        }))
    }

    /// The gateway's callback routes.
    pub(crate) fn routes(self: &Arc<Self>) -> axum::Router<crate::Hub> {
        http::routes(self.clone())
    }

    /// Starts the sender on the hub's tracker (it ends with the hub).
    pub(crate) fn start(self: Arc<Self>, hub: &crate::Hub) {
        hub.tracker.spawn(sender::run(self, hub.shutdown.clone()));
    }

    /// The shared key, for the callbacks' signatures.
    pub(crate) fn secret(&self) -> &[u8] {
        &self.secret
    }

    /// Takes a callback's signature for as long as the request could be played again
    /// (its timestamp's window, twice): false when it was taken already, here or on
    /// another node of the cluster (a replay). [`Webhook::forget`] gives it back when
    /// the request failed, so that the gateway's own retry goes through.
    pub(crate) async fn take(&self, signature: &str) -> Result<bool, crate::store::StoreError> {
        let now = self.clock.now_ms();
        let window = 2 * sign::SKEW_S * 1000;
        {
            let mut t = self.taken.lock().unwrap_or_else(|p| p.into_inner());
            t.retain(|_, until| *until > now);
            if t.contains_key(signature) {
                return Ok(false);
            }
            if t.len() >= MAX_TAKEN {
                t.clear();
            }
            t.insert(signature.to_owned(), now + window);
        }
        // A store that cannot say refuses the callback (the gateway sends it again):
        // a replay must not pass while Redis is away.
        let free = self
            .store
            .try_lock(&format!("fb-sig:{signature}"), signature, window)
            .await;
        if !matches!(free, Ok(true)) {
            self.taken
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(signature);
        }
        free
    }

    /// Gives back a signature taken by a request that failed.
    pub(crate) async fn forget(&self, signature: &str) {
        self.taken
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(signature);
        let _ = self
            .store
            .unlock(&format!("fb-sig:{signature}"), signature)
            .await;
    }

    /// True when `meta` may reach the gateway: real, or a drill that asked for it.
    fn reaches(meta: &IncidentMeta) -> bool {
        !meta.drill || meta.fallback
    }

    /// Queues `records`, and wakes the sender.
    async fn queue(&self, records: Vec<FallbackRecord>) -> Result<(), crate::store::StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let n = records.len();
        let added = self.store.fallback_add(records).await?;
        tracing::info!(queued = added, asked = n, "fallback messages queued");
        self.wake.notify_one();
        Ok(())
    }
}

impl Fallback for Webhook {
    fn silent<'a>(
        &'a self,
        snap: &'a IncidentSnapshot,
        silent: &'a [&'a RecipientState],
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let meta = &snap.meta;
            if !Self::reaches(meta) {
                return Ok(());
            }
            let now = self.clock.now_ms();
            let calls = self.config.calls(meta.level) && self.config.callout_max > 0;
            let mut records = Vec::with_capacity(silent.len());
            for r in silent.iter().filter(|r| is_silent(r.status)) {
                records.push(FallbackRecord::new(&meta.id, &r.lead, Channel::Sms, 0, now));
                if calls && r.role == Role::GridLead {
                    records.push(FallbackRecord::new(
                        &meta.id,
                        &r.lead,
                        Channel::Voice,
                        1,
                        now,
                    ));
                }
            }
            self.queue(records).await
        })
    }

    fn wants_offline(&self) -> bool {
        self.config.fallback_offline_at_issue
    }

    fn offline<'a>(
        &'a self,
        snap: &'a IncidentSnapshot,
        online: &'a HashSet<String>,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            if !Self::reaches(&snap.meta) {
                return Ok(());
            }
            let now = self.clock.now_ms();
            let records = snap
                .recipients
                .iter()
                .filter(|r| r.role != Role::ServiceTeam && is_silent(r.status))
                .filter(|r| !online.contains(&r.lead))
                .map(|r| FallbackRecord::new(&snap.meta.id, &r.lead, Channel::Sms, 0, now))
                .collect();
            self.queue(records).await
        })
    }
}

/// True for a recipient who has not answered.
fn is_silent(status: Status) -> bool {
    matches!(status, Status::Pending | Status::Delivered)
}
