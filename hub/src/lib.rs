//! gridcast hub: the emergency dispatch server.
//!
//! A library with a thin binary: [`run`] serves a hub on a bound listener until the
//! shutdown token fires; tests and the drill tool start hubs through it on port 0.
//!
//! This file only wires: modules, the public names, [`run`]. The architecture is in
//! `docs/ARCHITECTURE.md`: the core (`incident`, `task`, `escalation`, `outbox`,
//! `receipts`) hands every change to the `delivery` port; behind it the `bus` (local, or
//! Redis in a cluster) and the outlets (`transport/mqtt`); the transports end in
//! `session` and `presence`; `store/` holds the durable state behind the `Store` trait;
//! `backend` chooses the store and the bus, `open` builds a hub, `serve` runs it.
#![warn(missing_docs)]

pub(crate) mod api;
pub(crate) mod area;
pub mod auth;
pub(crate) mod backend;
pub(crate) mod backoff;
pub(crate) mod bus;
pub mod cap;
pub mod clock;
pub mod cluster;

pub mod config;
pub(crate) mod console;
pub(crate) mod delivery;
pub mod dispatch;
pub(crate) mod http;
mod hub;
pub(crate) mod listen;
pub(crate) mod metrics;
mod open;
pub mod presence;
pub(crate) mod ratelimit;
pub(crate) mod receipts;
pub mod registry;
pub(crate) mod revocation;
pub mod sample;
mod secret;
mod serve;
pub mod session;
pub mod store;
pub mod transport;
pub(crate) mod upkeep;
pub(crate) mod web;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Config;
pub use dispatch::incident;
pub(crate) use dispatch::{after_action, escalation, outbox, task};
pub use hub::{Hub, Inner};
pub use secret::{load_or_create_secret, random_hex};
pub use serve::{LISTEN_BACKLOG, bind, serve};

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

/// Now, in Unix milliseconds.
#[allow(clippy::disallowed_methods, reason = "the one wall-clock read")]
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
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
