//! Attack test support: a real `gridcast-hub` child process whose log is kept, and
//! clients that connect from another loopback address (the attacker's), raw or as a
//! WebSocket.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;

use super::{SECRET, eventually, free_port, tmp_dir};

/// The attacker's source address.
pub const ATTACKER: &str = "127.0.0.2";
/// Where phones come from.
pub const PHONES: &str = "127.0.0.1";

/// A hub process with its data dir, registry and log.
pub struct ProcHub {
    pub child: tokio::process::Child,
    pub port: u16,
    pub dir: PathBuf,
    pub log: PathBuf,
    /// The CA of the certificate the hub serves TLS with, if it does (`ca.pem` beside
    /// the `--tls-cert` file, as [`test_pki`] makes them).
    pub tls_ca: Option<PathBuf>,
}

impl ProcHub {
    /// Starts `gridcast-hub` on a free port with `registry`, a data dir of its own and
    /// these extra flags; returns once `/readyz` answers 200.
    pub async fn start(
        name: &str,
        registry: &gridcast_protocol::registry::RegistryDoc,
        args: &[&str],
    ) -> ProcHub {
        let dir = tmp_dir(name);
        std::fs::create_dir_all(&dir).unwrap();
        Self::start_in(dir, registry, args).await
    }

    /// [`ProcHub::start`] in `dir` (kept: a restart finds its data).
    pub async fn start_in(
        dir: PathBuf,
        registry: &gridcast_protocol::registry::RegistryDoc,
        args: &[&str],
    ) -> ProcHub {
        Self::start_with(dir, registry, args, &[]).await
    }

    /// [`ProcHub::start_in`] run by a wrapper command (`prlimit --fsize=N --`).
    pub async fn start_with(
        dir: PathBuf,
        registry: &gridcast_protocol::registry::RegistryDoc,
        args: &[&str],
        wrapper: &[&str],
    ) -> ProcHub {
        let registry_path = dir.join("registry.json");
        std::fs::write(&registry_path, serde_json::to_vec(registry).unwrap()).unwrap();
        let port = free_port();
        let log = dir.join(format!("hub-{port}.log"));
        let hub_bin = env!("CARGO_BIN_EXE_gridcast-hub");
        let mut cmd = match wrapper.split_first() {
            None => tokio::process::Command::new(hub_bin),
            Some((program, rest)) => {
                let mut c = tokio::process::Command::new(program);
                c.args(rest).arg(hub_bin);
                c
            }
        };
        // The key as an environment variable, so that a test may give `--jwt-secret`.
        cmd.arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .env("GRIDCAST_JWT_SECRET", SECRET)
            // One person issues level I and II here; approval.rs tests the rule.
            .env("GRIDCAST_APPROVAL_LEVELS", "none")
            .env("GRIDCAST_APPROVAL_COUNTY_WIDE", "false")
            .arg("--data-dir")
            .arg(dir.join("data"))
            .arg("--registry")
            .arg(&registry_path)
            .args(args)
            .env("GRIDCAST_LOG", "warn")
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::options().append(true).open(&log).unwrap())
            .kill_on_drop(true);
        if !wrapper.is_empty() {
            // A wrapper may limit file sizes: the log then goes nowhere (a log file
            // past the limit would make the log writer itself fail).
            cmd.stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
        }
        let child = cmd.spawn().expect("start gridcast-hub");
        let tls_ca = args
            .iter()
            .position(|a| *a == "--tls-cert")
            .and_then(|i| args.get(i + 1))
            .map(|cert| Path::new(cert).with_file_name("ca.pem"));
        let hub = ProcHub {
            child,
            port,
            dir,
            log,
            tls_ca,
        };
        hub.wait_ready().await;
        hub
    }

    /// Waits until `/readyz` answers 200 (from the phones' address); over TLS when the
    /// hub was given `--tls-cert`.
    pub async fn wait_ready(&self) {
        if let Some(ca) = &self.tls_ca {
            let (addr, ca) = (self.addr(), ca.clone());
            eventually(Duration::from_secs(30), "hub ready over TLS", || {
                let ca = ca.clone();
                async move {
                    match tls_connect(addr, &ca).await {
                        Ok(mut s) => get_over(&mut s, "/readyz")
                            .await
                            .starts_with("HTTP/1.1 200"),
                        Err(_) => false,
                    }
                }
            })
            .await;
            return;
        }
        let http = reqwest::Client::new();
        let url = format!("{}/readyz", self.http());
        eventually(Duration::from_secs(30), "hub ready", || {
            let (http, url) = (http.clone(), url.clone());
            async move { http.get(url).send().await.is_ok_and(|r| r.status() == 200) }
        })
        .await;
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn http(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/v1/lead/ws", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("hub running")
    }

    /// Resident memory of the hub process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// What the hub has logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The data dir of the embedded store.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// A console client for an operator of `scope`.
    pub fn console(&self, scope: &str) -> gridcast_clients::console::ConsoleClient {
        gridcast_clients::console::ConsoleClient::new(
            &self.http(),
            &super::token("op-1", gridcast_hub::auth::TokenRole::Operator, scope),
        )
    }

    /// Stops the hub (SIGKILL) and waits for it.
    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }
}

/// A TCP connection to `to` from the loopback address `from`.
pub async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let ip: IpAddr = from.parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(ip, 0)).unwrap();
    socket.connect(to).await.unwrap()
}

/// Reads an HTTP response head (up to the blank line), or what came before EOF.
pub async fn read_head(s: &mut TcpStream, limit: Duration) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let read = async {
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    };
    tokio::time::timeout(limit, read)
        .await
        .expect("an answer (or a close) in time");
    String::from_utf8_lossy(&buf).into_owned()
}

/// True once the peer has closed `s` (EOF or reset), reading and dropping what comes.
pub async fn closed_by_peer(s: &mut TcpStream, limit: Duration) -> bool {
    let mut chunk = [0u8; 4096];
    tokio::time::timeout(limit, async {
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// Writes up to `total` bytes in 1 MiB chunks until the peer stops taking them;
/// returns how many were written.
pub async fn push_bytes(s: &mut TcpStream, total: usize) -> usize {
    let chunk = vec![b' '; 1024 * 1024];
    let mut sent = 0;
    while sent < total {
        let n = chunk.len().min(total - sent);
        if s.write_all(&chunk[..n]).await.is_err() {
            break;
        }
        sent += n;
    }
    sent
}

/// A WebSocket to `url` over a connection from `from`, with the hub's answer to the
/// upgrade (`Err(status)` when it was refused).
pub async fn ws_from(
    from: &str,
    to: SocketAddr,
    url: &str,
    headers: &[(&str, &str)],
) -> Result<WebSocketStream<TcpStream>, u16> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let stream = connect_from(from, to).await;
    let mut req = url.into_client_request().unwrap();
    for (k, v) in headers {
        let name: tokio_tungstenite::tungstenite::http::HeaderName = k.parse().unwrap();
        req.headers_mut()
            .insert(name, v.parse().expect("header value"));
    }
    match tokio_tungstenite::client_async_with_config(
        req,
        stream,
        Some(gridcast_clients::lead::ws_config()),
    )
    .await
    {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
        Err(e) => panic!("upgrade failed: {e}"),
    }
}

/// The close code a WebSocket ends with (reading and dropping frames before it).
pub async fn close_code<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    limit: Duration,
) -> Option<u16> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    tokio::time::timeout(limit, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(c))) => return c.map(|c| u16::from(c.code)),
                Some(Ok(_)) => {}
                _ => return None,
            }
        }
    })
    .await
    .expect("closed in time")
}

/// Sends a JSON frame.
pub async fn send_json<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    v: serde_json::Value,
) {
    use futures_util::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::text(v.to_string()))
        .await
        .unwrap();
}

/// The next text frame as JSON (pings answered by the library), or `None` at a close.
pub async fn next_json<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    limit: Duration,
) -> Option<serde_json::Value> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    tokio::time::timeout(limit, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).ok(),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => {}
            }
        }
    })
    .await
    .expect("a frame in time")
}

/// Says hello and reads up to `synced`; panics unless welcomed.
pub async fn hello_and_sync<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    token: &str,
) -> Vec<serde_json::Value> {
    send_json(ws, serde_json::json!({"type": "hello", "token": token})).await;
    let welcome = next_json(ws, Duration::from_secs(10))
        .await
        .expect("welcome");
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    let mut sync = Vec::new();
    loop {
        let f = next_json(ws, Duration::from_secs(10)).await.expect("sync");
        if f["type"] == "synced" {
            return sync;
        }
        sync.push(f);
    }
}

/// A file's permission bits.
pub fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// A test CA and a server certificate it signed for 127.0.0.1 and localhost (openssl),
/// in `dir`: `(ca.pem, cert.pem, key.pem)`.
pub fn test_pki(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let p = |n: &str| dir.join(n);
    let run = |args: &[&str]| {
        let st = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl (apt-get install openssl; .ci/run does)");
        assert!(st.success(), "openssl {args:?}");
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=gridcast test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "key.pem",
        "-out",
        "cert.csr",
    ]);
    std::fs::write(
        p("ext.cnf"),
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "cert.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "cert.pem",
    ]);
    (p("ca.pem"), p("cert.pem"), p("key.pem"))
}

/// A TLS connection to `to` that trusts only the certificate in `ca` (PEM).
pub async fn tls_connect(
    to: SocketAddr,
    ca: &Path,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = TcpStream::connect(to).await?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    connector.connect(name, tcp).await
}

/// One HTTP/1.1 GET over an established stream; the status line and what follows.
pub async fn get_over<S>(s: &mut S, path: &str) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let req = format!("GET {path} HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}
