//! gridcast hub: the emergency dispatch server.
//!
//! A library with a thin binary: [`run`] serves a hub on a bound listener until the
//! shutdown token fires; tests and the drill tool start hubs through it on port 0.
//!
//! The folder tree is the architecture: `transport/` (WebSocket) ends in `session` and
//! `presence`; `incident` and `registry` are the core; `store/` (embedded) and `bus/`
//! (local) are backends behind the core's traits; `api` is the command center's HTTP API.
#![warn(missing_docs)]

pub mod after_action;
pub mod api;
pub mod auth;
pub mod bus;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod console;
pub mod escalation;
pub mod incident;
pub mod listen;
pub mod metrics;
pub mod outbox;
pub mod presence;
pub mod ratelimit;
pub mod receipts;
pub mod registry;
pub mod revocation;
pub mod sample;
pub mod session;
pub mod store;
pub mod task;
pub mod transport;
pub mod upkeep;
pub mod web;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::Config;

use crate::auth::Auth;
use crate::bus::Bus;
use crate::console::Console;
use crate::metrics::Metrics;
use crate::presence::Presence;
use crate::ratelimit::ConnectLimiter;
use crate::registry::{RegistryHandle, RegistryIndex};
use crate::store::Store;

/// Why a hub could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The store could not open.
    #[error(transparent)]
    Store(#[from] store::embedded::OpenError),
    /// Cluster mode could not reach Redis.
    #[error("redis: {0}")]
    Redis(String),
    /// The registry could not be read or is invalid.
    #[error("registry {0}")]
    Registry(String),
    /// The revocation list could not be read.
    #[error("--revoked-tokens {0}")]
    Revoked(String),
    /// The JWT secret could not be read or created.
    #[error("jwt secret: {0}")]
    Secret(std::io::Error),
    /// Serving failed.
    #[error("serve: {0}")]
    Serve(std::io::Error),
}

/// Shared state of one hub node. Cheap to clone.
#[derive(Clone)]
pub struct Hub(Arc<Inner>);

/// What a hub holds.
pub struct Inner {
    /// Settings.
    pub config: Config,
    /// Token signer/verifier.
    pub auth: Auth,
    /// Tokens refused although well signed.
    pub revocations: Arc<revocation::Revocations>,
    /// Registry in force.
    pub registry: RegistryHandle,
    /// Durable state.
    pub store: Arc<dyn Store>,
    /// This node's sessions.
    pub presence: Arc<Presence>,
    /// Fan-out.
    pub bus: Arc<dyn Bus>,
    /// Console stream.
    pub console: Console,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Root of every task's cancellation.
    pub shutdown: CancellationToken,
    /// Every session and background task, to wait for at shutdown.
    pub tracker: TaskTracker,
    /// Session slots, taken after a good `hello`.
    pub sessions: Arc<Semaphore>,
    /// Slots of WebSocket connections still waiting for their `hello`.
    pub pending_hellos: Arc<Semaphore>,
    /// Whose `X-Forwarded-For` is believed.
    pub proxies: listen::TrustedProxies,
    /// One registry upload at a time (taken before its body is read).
    pub registry_uploads: Arc<Semaphore>,
    /// Connection attempts per address.
    pub connects: ConnectLimiter,
    /// Upstream budget of every lead.
    pub lead_limits: ratelimit::LeadLimiter,
    /// This node's name.
    pub node_id: String,
    /// Held while a registry replacement is saved and put in force.
    pub registry_writes: tokio::sync::Mutex<()>,
    /// Cluster mode (`--redis`): this node's part in the cluster.
    pub cluster: Option<Arc<cluster::Cluster>>,
    /// `--mqtt`: leads through a broker.
    pub mqtt: Option<Arc<transport::mqtt::Mqtt>>,
    /// The incident core's time.
    pub clock: Arc<dyn clock::Clock>,
    /// Receipts without a `ref`, for the [`receipts`] lane.
    pub receipts: receipts::Lane,
    /// The MQTT event loop, until `serve` starts it.
    mqtt_loop: std::sync::Mutex<Option<rumqttc::v5::EventLoop>>,
}

impl std::ops::Deref for Hub {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The token key: `--jwt-secret`, else a random key kept in `data_dir/jwt-secret`
/// (created on first use, readable by the owner only), so that the embedded default
/// and `gridcast-hub token` agree without any flag.
pub fn load_or_create_secret(
    config_secret: Option<&str>,
    data_dir: &Path,
) -> std::io::Result<Vec<u8>> {
    if let Some(s) = config_secret {
        return Ok(s.as_bytes().to_vec());
    }
    let path = data_dir.join("jwt-secret");
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().as_bytes().to_vec()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    store::embedded::private_dir(data_dir)?;
    let hex = random_hex(32)?;
    use std::io::Write;
    store::embedded::private_options()
        .write(true)
        .create_new(true)
        .open(&path)?
        .write_all(hex.as_bytes())?;
    Ok(hex.into_bytes())
}

/// `bytes` random bytes from the kernel, in hex.
pub fn random_hex(bytes: usize) -> std::io::Result<String> {
    use std::io::Read;
    let mut raw = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut raw)?;
    Ok(raw.iter().map(|b| format!("{b:02x}")).collect())
}

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
        let (store, presence, bus, cluster, stored): (
            Arc<dyn Store>,
            Arc<Presence>,
            Arc<dyn Bus>,
            _,
            _,
        ) = match &config.redis {
            None => {
                let d = data_dir.clone();
                let dir = d.clone();
                let store =
                    tokio::task::spawn_blocking(move || store::embedded::EmbeddedStore::open(&d))
                        .await
                        .map_err(|e| {
                            store::embedded::OpenError::Io(dir, std::io::Error::other(e))
                        })??;
                let stored = store
                    .load_registry()
                    .await
                    .map_err(|e| StartError::Registry(e.to_string()))?;
                let presence = Arc::new(Presence::default());
                let bus = Arc::new(bus::local::LocalBus::new(presence.clone(), metrics.clone()));
                (Arc::new(store), presence, bus, None, stored)
            }
            Some(url) => {
                let shown = config::redact_url(url);
                let client = match &config.redis_ca {
                    None => redis::Client::open(url.as_str()),
                    Some(ca) => {
                        let root = tokio::fs::read(ca).await.map_err(|e| {
                            StartError::Redis(format!("--redis-ca {}: {e}", ca.display()))
                        })?;
                        let certs = redis::TlsCertificates {
                            client_tls: None,
                            root_cert: Some(root),
                        };
                        redis::Client::build_with_tls(url.as_str(), certs)
                    }
                }
                .map_err(|e| StartError::Redis(format!("{shown}: {e}")))?;
                let store = tokio::time::timeout(
                    Duration::from_secs(10),
                    store::redis::RedisStore::open(client.clone()),
                )
                .await
                .map_err(|_| StartError::Redis(format!("{shown}: no answer in 10 s")))?
                .map_err(|e| StartError::Redis(format!("{shown}: {e}")))?;
                let (ver, stored) = store
                    .load_registry_versioned()
                    .await
                    .map_err(|e| StartError::Redis(e.to_string()))?;
                let presence = Arc::new(Presence::tracked());
                let cluster = Arc::new(cluster::Cluster::new(
                    node_id.clone(),
                    client,
                    store.clone(),
                    ver,
                    presence.clone(),
                    metrics.clone(),
                    shutdown.clone(),
                    tracker.clone(),
                    cluster::seal::Seal::new(
                        config.cluster_key.as_deref().map(str::as_bytes),
                        &secret,
                        config.jwt_secret_previous.as_deref().map(str::as_bytes),
                    ),
                ));
                let bus = Arc::new(cluster::ClusterBus {
                    cluster: cluster.clone(),
                });
                (Arc::new(store), presence, bus, Some(cluster), stored)
            }
        };
        // Cluster mode: a registry stored in Redis wins, so that restarting a node never
        // undoes a run-time replacement; `--registry` (or the sample city) seeds an empty
        // cluster.
        let (doc, source, seed) = match (stored, &config.registry, &config.redis) {
            (Some(doc), _, Some(_)) => (doc, "Redis (the cluster's registry)".to_owned(), false),
            (_, Some(path), _) => {
                let bytes = tokio::fs::read(path)
                    .await
                    .map_err(|e| StartError::Registry(format!("{}: {e}", path.display())))?;
                let doc = serde_json::from_slice(&bytes)
                    .map_err(|e| StartError::Registry(format!("{}: {e}", path.display())))?;
                (doc, path.display().to_string(), true)
            }
            (Some(doc), None, None) => (
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
        if seed && cluster.is_some() {
            store
                .save_registry(&registry.to_doc())
                .await
                .map_err(|e| StartError::Redis(e.to_string()))?;
        }
        let index = RegistryIndex::new(registry);
        tracing::info!(source = %source, summary = %index.summary(), "registry loaded");
        let (mqtt, mqtt_loop) = match &config.mqtt {
            None => (None, None),
            Some(url) => {
                let url = transport::mqtt::BrokerUrl::parse(url)
                    .map_err(|e| StartError::Config(config::ConfigError(e)))?;
                let (m, el) =
                    transport::mqtt::Mqtt::new(&url, &node_id, config.mqtt_queue, metrics.clone());
                (Some(m), Some(el))
            }
        };
        let revocations = Arc::new(match &config.revoked_tokens {
            None => revocation::Revocations::none(),
            Some(path) => revocation::Revocations::open(path).map_err(StartError::Revoked)?,
        });
        let (receipts, lane) = receipts::lane();
        let hub = Hub(Arc::new(Inner {
            auth: Auth::with_keys(
                &secret,
                config.jwt_secret_previous.as_deref().map(str::as_bytes),
                config.max_token_lifetime_h,
            ),
            revocations,
            registry: RegistryHandle::new(index),
            store,
            presence,
            bus,
            console: Console::new(config.console_buffer),
            metrics,
            shutdown,
            tracker,
            sessions: Arc::new(Semaphore::new(config.max_sessions)),
            pending_hellos: Arc::new(Semaphore::new(config.max_pending_hellos)),
            proxies: listen::TrustedProxies::parse(&config.trusted_proxies)
                .map_err(|e| StartError::Config(config::ConfigError(e)))?,
            registry_uploads: Arc::new(Semaphore::new(1)),
            connects: ConnectLimiter::new(config.connect_rate, config.connect_burst),
            lead_limits: ratelimit::LeadLimiter::new(ratelimit::LeadLimits {
                frames: (config.upstream_rate, config.upstream_burst),
                bytes: (config.upstream_bytes_rate, config.upstream_bytes_burst),
                reports_per_minute: config.report_quota,
            }),
            node_id,
            registry_writes: tokio::sync::Mutex::new(()),
            cluster,
            mqtt,
            mqtt_loop: std::sync::Mutex::new(mqtt_loop),
            receipts,
            clock,
            config,
        }));
        // Started with the hub, not with `serve`: a queued receipt is always recorded.
        hub.tracker.spawn(receipts::run(hub.clone(), lane));
        hub.tracker
            .spawn(hub.revocations.clone().watch(hub.shutdown.clone()));
        hub.tracker.spawn(upkeep::end_revoked_sessions(hub.clone()));
        transport::mqtt::broker::write_acl_file(&hub);
        Ok(hub)
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
        transport::mqtt::broker::write_acl_file(self);
        self.presence.refresh(
            &self.registry.current(),
            gridcast_protocol::error::close::FORBIDDEN,
        );
        if let Some(c) = &self.cluster {
            c.sessions_changed();
        }
    }
}

/// Pending connections the listener queues (the kernel caps it at `somaxconn`): a
/// reconnect storm of thousands of phones must not lose SYNs to a short queue (a lost
/// SYN costs the phone a second before it retries).
pub const LISTEN_BACKLOG: u32 = 8_192;

/// Binds the hub's listener with [`LISTEN_BACKLOG`].
pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// How long shutdown waits for sessions and tasks to finish.
const DRAIN_DEADLINE: Duration = Duration::from_secs(5);

/// Serves `hub` on `listener` until its shutdown token fires, then ends every session
/// with "going away" and waits (with a deadline) for them.
pub async fn serve(hub: Hub, listener: TcpListener) -> Result<(), StartError> {
    let app = api::router(hub.clone());
    hub.tracker.spawn(console_ticker(hub.clone()));
    hub.tracker.spawn(escalation::ticker(hub.clone()));
    if hub.outbox_wanted() {
        hub.tracker.spawn(outbox::sweeper(hub.clone()));
    }
    hub.tracker.spawn(upkeep::maintenance(hub.clone()));
    if let Some(c) = &hub.cluster {
        c.start(&hub);
    }
    let mqtt_loop = hub
        .mqtt_loop
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    if let (Some(m), Some(el)) = (&hub.mqtt, mqtt_loop) {
        m.start(&hub, el);
    }
    tracing::info!(addr = ?listener.local_addr().ok(), node = %hub.node_id, "gridcast hub listening");
    let limits = listen::HttpLimits {
        header_timeout: Duration::from_secs(hub.config.header_timeout_s),
        max_connections: hub.config.max_connections,
        max_per_address: hub.config.max_connections_per_address,
    };
    if let Some(addr) = hub.config.metrics_listen {
        let l = bind(addr).map_err(StartError::Serve)?;
        tracing::info!(addr = ?l.local_addr().ok(), "metrics listening");
        let metrics_limits = listen::HttpLimits {
            max_connections: 64,
            ..limits
        };
        hub.tracker.spawn(listen::serve(
            l,
            api::metrics_router(hub.clone()),
            metrics_limits,
            None,
            hub.proxies.clone(),
            hub.metrics.clone(),
            hub.shutdown.clone(),
        ));
    }
    let tls = match (&hub.config.tls_cert, &hub.config.tls_key) {
        (Some(cert), Some(key)) => Some(
            listen::tls_acceptor(cert, key)
                .map_err(|e| StartError::Config(config::ConfigError(e)))?,
        ),
        _ => None,
    };
    let served = listen::serve(
        listener,
        app,
        limits,
        tls,
        hub.proxies.clone(),
        hub.metrics.clone(),
        hub.shutdown.clone(),
    )
    .await;
    // The listener does not wait for upgraded sockets: sessions are ours to end.
    hub.presence
        .end_all(gridcast_protocol::error::close::GOING_AWAY);
    hub.tracker.close();
    if tokio::time::timeout(DRAIN_DEADLINE, hub.tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            still_running = hub.tracker.len(),
            "shutdown deadline passed with tasks still running"
        );
    }
    served.map_err(StartError::Serve)
}

/// Opens a hub with `config` and serves it on `listener` until `shutdown` fires.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), StartError> {
    run_with_clock(config, listener, shutdown, Arc::new(clock::SystemClock)).await
}

/// [`run`] with the incident core reading `clock`.
pub async fn run_with_clock(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
    clock: Arc<dyn clock::Clock>,
) -> Result<(), StartError> {
    let hub = Hub::open_with_clock(config, shutdown, clock).await?;
    serve(hub, listener).await
}

/// Turns dirty incidents and grids into aggregated console events a few times a second.
async fn console_ticker(hub: Hub) {
    let mut tick = tokio::time::interval(console::TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = hub.shutdown.cancelled() => return,
        }
        let (here, remote, grids) = hub.console.take_dirty();
        if let Some(c) = &hub.cluster
            && !here.is_empty()
        {
            c.announce_console(here.clone(), None).await;
        }
        for id in here.into_iter().chain(remote) {
            if let Ok(Some((meta, counts))) = hub.store.counts(&id).await {
                let state = if meta.state == gridcast_protocol::model::IncidentState::Active {
                    "active"
                } else {
                    "closed"
                };
                hub.console.emit(
                    "progress",
                    meta.targets.codes.iter().map(|c| c.to_string()).collect(),
                    console::progress(&id, meta.rev, state, &counts),
                );
            }
        }
        if !grids.is_empty() {
            let rows: Vec<serde_json::Value> = grids
                .iter()
                .map(|g| serde_json::json!({ "code": g, "online": hub.presence.grid_online(g) }))
                .collect();
            hub.console.emit(
                "presence",
                Vec::new(),
                serde_json::json!({ "online": hub.presence.online_leads(), "grids": rows }),
            );
        }
    }
}
