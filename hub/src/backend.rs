//! Backend selection: the embedded store with the in-process bus (the default), or,
//! with `--redis`, the Redis store with the cluster's bus. The rest of the hub sees
//! only the [`Store`] and [`Bus`] traits.

use std::sync::Arc;
use std::time::Duration;

use gridcast_protocol::registry::RegistryDoc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bus::Bus;
use crate::metrics::Metrics;
use crate::presence::Presence;
use crate::store::Store;
use crate::{Config, StartError, bus, cluster, config, store};

/// What [`open`] chose and opened.
pub(crate) struct Backend {
    /// Durable state.
    pub(crate) store: Arc<dyn Store>,
    /// This node's sessions.
    pub(crate) presence: Arc<Presence>,
    /// The fast path to the sessions of this node and of the others.
    pub(crate) bus: Arc<dyn Bus>,
    /// The registry the store holds, if any.
    pub(crate) stored: Option<RegistryDoc>,
    /// True when nodes share the store (a stored registry wins over `--registry`).
    pub(crate) shared: bool,
    /// What the bus runs in the background, started with the hub's tasks.
    pub(crate) start: Option<crate::hub::Starter>,
}

/// What a node needs to join a cluster.
pub(crate) struct NodeParts<'a> {
    /// This node's name.
    pub(crate) node_id: &'a str,
    /// The token key (the cluster's seal derives from it without `--cluster-key`).
    pub(crate) secret: &'a [u8],
    /// Metrics.
    pub(crate) metrics: &'a Arc<Metrics>,
    /// Shutdown.
    pub(crate) shutdown: &'a CancellationToken,
    /// Tasks.
    pub(crate) tracker: &'a TaskTracker,
}

/// Opens the store and the bus `config` asks for.
pub(crate) async fn open(config: &Config, node: NodeParts<'_>) -> Result<Backend, StartError> {
    let Some(url) = &config.redis else {
        let d = config.data_dir.clone();
        let dir = d.clone();
        let store = tokio::task::spawn_blocking(move || store::embedded::EmbeddedStore::open(&d))
            .await
            .map_err(|e| store::embedded::OpenError::Io(dir, std::io::Error::other(e)))??;
        let stored = store
            .load_registry()
            .await
            .map_err(|e| StartError::Registry(e.to_string()))?;
        let presence = Arc::new(Presence::default());
        let bus = Arc::new(bus::local::LocalBus::new(
            presence.clone(),
            node.metrics.clone(),
        ));
        return Ok(Backend {
            store: Arc::new(store),
            presence,
            bus,
            stored,
            shared: false,
            start: None,
        });
    };
    let shown = config::redact_url(url);
    let certs = match &config.redis_ca {
        None => None,
        Some(ca) => Some(redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(
                tokio::fs::read(ca)
                    .await
                    .map_err(|e| StartError::Redis(format!("--redis-ca {}: {e}", ca.display())))?,
            ),
        }),
    };
    let target = store::redis::RedisTarget::parse(url, certs)
        .map_err(|e| StartError::Redis(format!("{shown}: {e}")))?;
    let min_replicas = config
        .redis_min_replicas
        .unwrap_or(usize::from(target.is_sentinel()));
    let store = tokio::time::timeout(
        Duration::from_secs(10),
        store::redis::RedisStore::open(target, min_replicas),
    )
    .await
    .map_err(|_| StartError::Redis(format!("{shown}: no answer in 10 s")))?
    .map_err(|e| StartError::Redis(format!("{shown}: {e}")))?;
    let (ver, stored) = store
        .load_registry_versioned()
        .await
        .map_err(|e| StartError::Redis(e.to_string()))?;
    let presence = Arc::new(Presence::tracked());
    let seal = cluster::seal::Seal::new(
        config.cluster_key.as_deref().map(str::as_bytes),
        node.secret,
        config.jwt_secret_previous.as_deref().map(str::as_bytes),
    );
    let cluster = Arc::new(cluster::Cluster::new(
        &node,
        store.clone(),
        ver,
        presence.clone(),
        seal,
    ));
    Ok(Backend {
        store: Arc::new(store),
        presence,
        bus: Arc::new(cluster::RedisBus::new(cluster.clone())),
        start: Some(Box::new(move |hub| cluster.start(hub))),
        stored,
        shared: true,
    })
}
