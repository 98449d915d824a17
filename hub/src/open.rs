//! Opening a hub: configuration checked, the token key, the backend, the registry in
//! force, the delivery port and its outlets. Nothing is served yet.

use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Auth;
use crate::console::Console;
use crate::delivery::{Delivery, Outlet};
use crate::dispatch::{self, Dispatch};
use crate::hub::{RegistryFollower, Starter};
use crate::metrics::Metrics;
use crate::ratelimit::ConnectLimiter;
use crate::registry::{RegistryHandle, RegistryIndex};
use crate::{
    Config, Hub, StartError, backend, clock, config, listen, load_or_create_secret, now_ms,
    ratelimit, receipts, revocation, sample, transport, upkeep,
};

impl Hub {
    /// Opens the store, loads the registry and builds a hub (nothing is served yet).
    pub async fn open(config: Config, shutdown: CancellationToken) -> Result<Hub, StartError> {
        Self::open_with_clock(config, shutdown, Arc::new(clock::SystemClock)).await
    }

    /// [`Hub::open`] with the incident core reading `clock` (tests move time by hand).
    pub async fn open_with_clock(
        config: Config,
        shutdown: CancellationToken,
        clock: Arc<dyn clock::Clock>,
    ) -> Result<Hub, StartError> {
        config.validate()?;
        let data_dir = config.data_dir.clone();
        let secret = {
            let s = config.jwt_secret.clone();
            let d = data_dir.clone();
            tokio::task::spawn_blocking(move || load_or_create_secret(s.as_deref(), &d))
                .await
                .map_err(|e| StartError::Secret(std::io::Error::other(e)))?
                .map_err(StartError::Secret)?
        };
        let node_id = config
            .node_id
            .clone()
            .unwrap_or_else(|| format!("hub-{:x}", now_ms() & 0xffffff));
        let metrics = Arc::new(Metrics::default());
        let tracker = TaskTracker::new();
        let backend = backend::open(
            &config,
            backend::NodeParts {
                node_id: &node_id,
                secret: &secret,
                metrics: &metrics,
                shutdown: &shutdown,
                tracker: &tracker,
            },
        )
        .await?;
        let backend::Backend {
            store,
            presence,
            bus,
            stored,
            shared,
            start,
        } = backend;
        // Cluster mode: a registry stored in Redis wins, so that restarting a node never
        // undoes a run-time replacement; `--registry` (or the sample city) seeds an empty
        // cluster.
        let (doc, source, seed) = match (stored, &config.registry, shared) {
            (Some(doc), _, true) => (doc, "Redis (the cluster's registry)".to_owned(), false),
            (_, Some(path), _) => {
                let bytes = tokio::fs::read(path)
                    .await
                    .map_err(|e| StartError::Registry(format!("{}: {e}", path.display())))?;
                let doc = serde_json::from_slice(&bytes)
                    .map_err(|e| StartError::Registry(format!("{}: {e}", path.display())))?;
                (doc, path.display().to_string(), true)
            }
            (Some(doc), None, false) => (
                doc,
                "the data dir (last PUT /v1/registry)".to_owned(),
                false,
            ),
            (None, None, _) => (
                sample::sample_city(),
                "the built-in sample city".to_owned(),
                true,
            ),
        };
        let registry = doc.validate().map_err(|problems| {
            StartError::Registry(format!(
                "from {source} is invalid:\n  {}",
                problems.join("\n  ")
            ))
        })?;
        if seed && shared {
            store
                .save_registry(&registry.to_doc())
                .await
                .map_err(|e| StartError::Redis(e.to_string()))?;
        }
        for w in registry.warnings() {
            tracing::warn!(source = %source, "registry: {w}");
        }
        let index = RegistryIndex::new(registry);
        tracing::info!(source = %source, summary = %index.summary(), "registry loaded");
        // The outlets of the delivery port, and what each runs: a new channel is one
        // more block here.
        let mut outlets: Vec<Arc<dyn Outlet>> = Vec::new();
        let mut starters: Vec<Starter> = start.into_iter().collect();
        if let Some(url) = &config.mqtt {
            let url = transport::mqtt::BrokerUrl::parse(url)
                .map_err(|e| StartError::Config(config::ConfigError(e)))?;
            let mqtt =
                transport::mqtt::Mqtt::new(&url, &node_id, config.mqtt_queue, metrics.clone());
            outlets.push(mqtt.clone());
            starters.push(Box::new(move |hub| mqtt.start(hub)));
        }
        // The broker's ACL file (`--mqtt-acl-file`) follows the registry, with or
        // without `--mqtt`.
        let registry_followers: Vec<RegistryFollower> =
            vec![Box::new(transport::mqtt::broker::write_acl_file)];
        let console = Arc::new(Console::new(config.console_buffer));
        let registry = Arc::new(RegistryHandle::new(index));
        let templates = match &config.fallback.fallback_templates {
            None => transport::fallback::Templates::default(),
            Some(path) => {
                let bytes = tokio::fs::read(path).await.map_err(|e| {
                    StartError::Config(config::ConfigError(format!("{}: {e}", path.display())))
                })?;
                transport::fallback::Templates::parse(&bytes).map_err(|e| {
                    StartError::Config(config::ConfigError(format!("{}: {e}", path.display())))
                })?
            }
        };
        let webhook = transport::fallback::Webhook::new(
            &config,
            templates,
            store.clone(),
            registry.clone(),
            clock.clone(),
            metrics.clone(),
        );
        if let Some(w) = webhook.clone() {
            starters.push(Box::new(move |hub| w.start(hub)));
        }
        let fallback = webhook
            .clone()
            .map(|w| w as Arc<dyn crate::delivery::Fallback>);
        let revocations = Arc::new(match &config.revoked_tokens {
            None => revocation::Revocations::none(),
            Some(path) => revocation::Revocations::open(path).map_err(StartError::Revoked)?,
        });
        let (receipts, lane) = receipts::lane();
        let config = Arc::new(config);
        let delivery = Arc::new(Delivery::new(
            bus,
            outlets,
            fallback,
            console.clone(),
            registry.clone(),
        ));
        let lead_limits = Arc::new(ratelimit::LeadLimiter::new(ratelimit::LeadLimits {
            frames: (config.upstream_rate, config.upstream_burst),
            bytes: (config.upstream_bytes_rate, config.upstream_bytes_burst),
            reports_per_minute: config.report_quota,
        }));
        let core = Dispatch::new(dispatch::Parts {
            store: store.clone(),
            delivery: delivery.clone(),
            registry: registry.clone(),
            clock: clock.clone(),
            metrics: metrics.clone(),
            config: config.clone(),
            lead_limits: lead_limits.clone(),
            shutdown: shutdown.clone(),
        });
        let hub = Hub(Arc::new(crate::hub::Inner {
            auth: Auth::with_keys(
                &secret,
                config.jwt_secret_previous.as_deref().map(str::as_bytes),
                config.max_token_lifetime_h,
            ),
            revocations,
            delivery,
            core,
            registry,
            store,
            presence,
            console,
            metrics,
            shutdown,
            tracker,
            sessions: Arc::new(Semaphore::new(config.max_sessions)),
            pending_hellos: Arc::new(Semaphore::new(config.max_pending_hellos)),
            proxies: listen::TrustedProxies::parse(&config.trusted_proxies)
                .map_err(|e| StartError::Config(config::ConfigError(e)))?,
            registry_uploads: Arc::new(Semaphore::new(1)),
            connects: ConnectLimiter::new(config.connect_rate, config.connect_burst),
            directory_limits: ConnectLimiter::new(
                config.directory_rate,
                config.directory_rate.saturating_mul(4),
            ),
            directory_cache: std::sync::Mutex::new((None, std::collections::HashMap::new())),
            lead_limits,
            node_id,
            registry_writes: tokio::sync::Mutex::new(()),
            cap_imports: tokio::sync::Mutex::new(()),
            receipts,
            clock,
            config,
            starters: std::sync::Mutex::new(starters),
            registry_followers,
            channel_routes: std::sync::Mutex::new(webhook.as_ref().map(|w| w.routes())),
        }));
        // Started with the hub, not with `serve`: a queued receipt is always recorded.
        hub.tracker.spawn(receipts::run(hub.clone(), lane));
        hub.tracker
            .spawn(hub.revocations.clone().watch(hub.shutdown.clone()));
        hub.tracker.spawn(upkeep::end_revoked_sessions(hub.clone()));
        for follow in &hub.registry_followers {
            follow(&hub);
        }
        Ok(hub)
    }
}
