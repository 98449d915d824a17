//! The HTTP listener: accepts connections under one global cap, gives every connection a
//! header-read deadline, and serves the router with hyper's HTTP/1 (upgrades included,
//! for WebSocket).
//!
//! It replaces `axum::serve`, which runs hyper without a timer and therefore without
//! any header deadline: 260 half-sent requests could hold every file descriptor of a
//! hub until their senders gave up (slowloris). Here a connection that has not sent a
//! whole request head within `--header-timeout-s` is closed; the same timer runs while
//! a kept-alive connection waits for its next request, so it is also the idle limit
//! between requests. Upgraded WebSocket sessions leave hyper and are bounded by their
//! hello deadline and heartbeats instead, but they keep their connection slot for as
//! long as the socket lives (the slot travels with the socket).
//!
//! With `--tls-cert`/`--tls-key` the listener speaks TLS itself (rustls, TLS 1.2 and
//! 1.3, HTTP/1.1), for a single node without a terminating proxy; the handshake runs in
//! the connection's own task under the same deadline as a request head.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use dashmap::DashMap;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::metrics::Metrics;

/// Bounds of the HTTP listener.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HttpLimits {
    /// Time to send a whole request head, and the longest idle wait between requests.
    pub(crate) header_timeout: Duration,
    /// Most open connections (HTTP and WebSocket together).
    pub(crate) max_connections: usize,
    /// Most open connections from one address (IPv6: one /64); a trusted proxy's
    /// connections are not counted (they carry many clients).
    pub(crate) max_per_address: usize,
}

/// Open connections per address, and the slot one connection holds in it.
#[derive(Default)]
struct PerAddress(DashMap<IpAddr, usize>);

struct AddressSlot {
    map: Arc<PerAddress>,
    key: IpAddr,
}

impl PerAddress {
    fn take(self: &Arc<Self>, key: IpAddr, max: usize) -> Option<AddressSlot> {
        let mut n = self.0.entry(key).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            map: self.clone(),
            key,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        // The entry goes when its last connection does: the map holds only addresses
        // with open connections.
        if let Some(mut n) = self.map.0.get_mut(&self.key) {
            *n = n.saturating_sub(1);
        }
        self.map.0.remove_if(&self.key, |_, n| *n == 0);
    }
}

/// Largest buffer hyper keeps per connection for a request head (hyper's default is
/// about 400 KiB; a request with a token needs a few KiB).
const MAX_HEAD_BUFFER: usize = 32 * 1024;
/// How long shutdown lets open HTTP requests finish.
const DRAIN: Duration = Duration::from_secs(5);
/// At most one "connection limit reached" line in this many milliseconds.
const LIMIT_LOG_EVERY_MS: u64 = 10_000;

/// A socket that holds its connection slot until it is dropped, wherever it goes (hyper
/// hands upgraded sockets to the WebSocket session).
struct Slotted<T> {
    io: T,
    _slot: OwnedSemaphorePermit,
    _address: Option<AddressSlot>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Slotted<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Slotted<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// Reads a certificate chain and its private key (PEM) into a TLS acceptor.
pub(crate) fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<_, _>>())
        .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "--tls-cert {}: no certificate in it",
            cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("--tls-key {}: {e}", key.display()))?;
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("--tls-cert/--tls-key: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Serves `app` on `listener` until `shutdown` fires, then lets open requests finish
/// (with a deadline). Upgraded sessions are the hub's to end, not this loop's.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    proxies: TrustedProxies,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let per_address = Arc::new(PerAddress::default());
    let connections = TaskTracker::new();
    let last_limit_log = AtomicU64::new(0);
    let mut failing =
        crate::backoff::Backoff::new(Duration::from_millis(50), Duration::from_secs(1));
    let mut failed = false;
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = shutdown.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => {
                if failed {
                    failed = false;
                    failing.reset();
                }
                a
            }
            Err(e) => {
                // Out of file descriptors (EMFILE/ENFILE) or a connection reset before it
                // was accepted: wait a moment (longer while it lasts) instead of
                // spinning on the error.
                tracing::warn!(error = %e, "accept failed");
                failed = true;
                if failing.sleep(&shutdown).await {
                    continue;
                }
                break;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics.connections_refused.fetch_add(1, Relaxed);
            let now = crate::now_ms();
            let last = last_limit_log.load(Relaxed);
            if now.saturating_sub(last) >= LIMIT_LOG_EVERY_MS
                && last_limit_log
                    .compare_exchange(last, now, Relaxed, Relaxed)
                    .is_ok()
            {
                tracing::warn!(
                    max_connections = limits.max_connections,
                    peer = %peer,
                    refused_total = metrics.connections_refused.load(Relaxed),
                    "connection limit reached (--max-connections): new connections are closed at once"
                );
            }
            drop(stream);
            continue;
        };
        let address = if proxies.trusts(peer.ip()) {
            None
        } else {
            match per_address.take(limit_key(peer.ip()), limits.max_per_address) {
                Some(a) => Some(a),
                None => {
                    metrics.connections_refused.fetch_add(1, Relaxed);
                    tracing::debug!(peer = %peer, "connection limit of one address reached");
                    drop(stream);
                    continue;
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let stop = shutdown.clone();
        match &tls {
            None => {
                let io = TokioIo::new(Slotted {
                    io: stream,
                    _slot: slot,
                    _address: address,
                });
                connections.spawn(serve_connection(io, peer, app, limits, stop));
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                connections.spawn(async move {
                    // The handshake has the deadline of a request head.
                    let shaken =
                        tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await;
                    let Ok(Ok(stream)) = shaken else {
                        tracing::debug!(peer = %peer, "TLS handshake failed or timed out");
                        return;
                    };
                    let io = TokioIo::new(Slotted {
                        io: stream,
                        _slot: slot,
                        _address: address,
                    });
                    serve_connection(io, peer, app, limits, stop).await;
                });
            }
        }
    }
    connections.close();
    if tokio::time::timeout(DRAIN + Duration::from_secs(1), connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            still_open = connections.len(),
            "HTTP connections still open at the shutdown deadline"
        );
    }
    Ok(())
}

async fn serve_connection<T>(
    io: TokioIo<T>,
    peer: SocketAddr,
    app: Router,
    limits: HttpLimits,
    stop: CancellationToken,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        let mut app = app.clone();
        async move {
            let r: Result<_, Infallible> =
                tower_service::Service::call(&mut app, req.map(axum::body::Body::new)).await;
            r
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_HEAD_BUFFER)
        .serve_connection(io, service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        // A header timeout or a peer gone mid-request ends the connection; nothing to do.
        _ = conn.as_mut() => {}
        () = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(DRAIN, conn).await;
        }
    }
}

/// Networks whose `X-Forwarded-For` is believed (`--trusted-proxies`).
#[derive(Debug, Clone, Default)]
pub(crate) struct TrustedProxies(Vec<ipnet::IpNet>);

impl TrustedProxies {
    /// Parses `CIDR,CIDR,…` (a bare address is a /32 or /128).
    pub(crate) fn parse(list: &[String]) -> Result<Self, String> {
        list.iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<ipnet::IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| format!("--trusted-proxies: {s:?} is not a CIDR or an address"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    /// True when `ip` is one of the trusted proxies.
    pub(crate) fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client's address: the peer, unless the peer is a trusted proxy, in which case
    /// the right-most address of `X-Forwarded-For` that is not itself a trusted proxy
    /// (what a client puts further left is its own claim and is not believed).
    pub(crate) fn client(&self, peer: IpAddr, headers: &axum::http::HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        let hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        for hop in hops.into_iter().rev() {
            let Ok(ip) = hop.parse::<IpAddr>() else {
                // Garbage in the chain: stop at the last address we could trust.
                break;
            };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

/// The key a client address is rate-limited under: IPv4 as it is, IPv6 by its /64 (one
/// subscriber's network hands out as many addresses as it likes inside its /64).
pub(crate) fn limit_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xff(v: &str) -> axum::http::HeaderMap {
        let mut h = axum::http::HeaderMap::new();
        h.insert("x-forwarded-for", v.parse().unwrap());
        h
    }

    #[test]
    fn forwarded_for_is_read_only_from_trusted_proxies() {
        let t = TrustedProxies::parse(&["10.0.0.0/8".into(), "192.0.2.7".into()]).unwrap();
        let lb: IpAddr = "10.1.2.3".parse().unwrap();
        let stranger: IpAddr = "198.51.100.1".parse().unwrap();
        // A stranger's header is ignored.
        assert_eq!(t.client(stranger, &xff("1.2.3.4")), stranger);
        // Through the balancer: the address it saw.
        assert_eq!(
            t.client(lb, &xff("1.2.3.4, 203.0.113.9")),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        // Two trusted hops: skip both.
        assert_eq!(
            t.client(lb, &xff("203.0.113.9, 192.0.2.7")),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        // No header, or garbage: the balancer itself.
        assert_eq!(t.client(lb, &axum::http::HeaderMap::new()), lb);
        assert_eq!(t.client(lb, &xff("not-an-ip")), lb);
        assert!(TrustedProxies::parse(&["10.0.0.0/33".into()]).is_err());
    }

    #[test]
    fn ipv6_is_keyed_by_its_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(limit_key(a), limit_key(b));
        assert_ne!(limit_key(a), limit_key(c));
        let v4: IpAddr = "127.0.0.2".parse().unwrap();
        assert_eq!(limit_key(v4), v4);
        let mapped: IpAddr = "::ffff:127.0.0.2".parse().unwrap();
        assert_eq!(limit_key(mapped), v4);
    }
}
