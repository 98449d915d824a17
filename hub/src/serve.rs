//! Serving a hub: its listeners, its background tasks, and a clean drain at shutdown.

use std::time::Duration;

use tokio::net::TcpListener;

use crate::{Hub, StartError, api, config, escalation, listen, outbox, transport, upkeep};

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
    let mut transports = transport::routes();
    let channels = hub
        .channel_routes
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    if let Some(r) = channels {
        transports = transports.merge(r);
    }
    let app = api::router(hub.clone(), transports);
    hub.tracker.spawn(upkeep::console_ticker(hub.clone()));
    hub.tracker.spawn(escalation::ticker(hub.core.clone()));
    if hub.core.outbox_wanted() {
        hub.tracker.spawn(outbox::sweeper(hub.core.clone()));
    }
    hub.tracker.spawn(upkeep::maintenance(hub.clone()));
    let starters = std::mem::take(&mut *hub.starters.lock().unwrap_or_else(|p| p.into_inner()));
    for start in starters {
        start(&hub);
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
