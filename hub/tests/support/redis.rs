//! A real `redis-server` per test, on a free loopback port with its own directory, AOF
//! on with `appendfsync always` (an `ok` is on disk), killable and restartable.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use super::{free_port, tmp_dir};

pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// More flags (`--replicaof …`).
    extra: Vec<String>,
}

impl RedisServer {
    pub async fn start(name: &str) -> RedisServer {
        Self::start_with(name, &[]).await
    }

    /// [`RedisServer::start`] with more flags (a replica: `--replicaof 127.0.0.1 PORT`).
    pub async fn start_with(name: &str, extra: &[&str]) -> RedisServer {
        let dir = tmp_dir(&format!("redis-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut r = RedisServer {
            port: free_port(),
            dir,
            child: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        r.spawn().await;
        r
    }

    async fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .arg("--dir")
            .arg(&self.dir)
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--daemonize",
                "no",
                "--protected-mode",
                "no",
                "--loglevel",
                "warning",
            ])
            .args(&self.extra)
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start redis-server (apt-get install redis-server)");
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !self.answers().await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server on port {} did not answer PING",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// True when the server answers PING with PONG (not while loading its AOF).
    pub async fn answers(&self) -> bool {
        let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await else {
            return false;
        };
        if s.write_all(b"PING\r\n").await.is_err() {
            return false;
        }
        let mut buf = [0u8; 64];
        matches!(
            tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await,
            Ok(Ok(n)) if buf[..n].starts_with(b"+PONG")
        )
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// SIGKILL: no shutdown, no final save.
    pub async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().await.unwrap();
        }
    }

    /// Starts again on the same port and directory (its AOF is replayed).
    pub async fn restart(&mut self) {
        self.kill().await;
        self.spawn().await;
    }

    /// Runs one command with redis-cli semantics through redis-rs.
    pub async fn cmd(&self, args: &[&str]) -> ::redis::Value {
        let client = ::redis::Client::open(self.url()).unwrap();
        let mut c = client.get_multiplexed_async_connection().await.unwrap();
        let mut cmd = ::redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query_async(&mut c).await.unwrap()
    }
}

impl RedisServer {
    /// Cluster nodes on this Redis named `names`, all reading `clock`, with `tweak`
    /// applied to each; the first seeds `registry`, the others load it from Redis. Each
    /// is ready (`/readyz` 200) when this returns.
    /// Two nodes `a` and `b` on the system clock with the default configuration: the
    /// usual cluster of a flow test.
    pub async fn two_nodes(
        &self,
        test: &str,
        registry: gridcast_protocol::registry::RegistryDoc,
    ) -> Vec<super::TestHub> {
        self.cluster(
            test,
            &["a", "b"],
            registry,
            std::sync::Arc::new(gridcast_hub::clock::SystemClock),
            |_| {},
        )
        .await
    }

    pub async fn cluster(
        &self,
        test: &str,
        names: &[&str],
        registry: gridcast_protocol::registry::RegistryDoc,
        clock: std::sync::Arc<dyn gridcast_hub::clock::Clock>,
        tweak: impl Fn(&mut gridcast_hub::Config) + Clone + Send + 'static,
    ) -> Vec<super::TestHub> {
        let mut nodes = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let (url, id, tweak) = (self.url(), name.to_string(), tweak.clone());
            let hub = super::TestHub::start_in(
                tmp_dir(&format!("{test}-{}-{name}", self.port)),
                (i == 0).then(|| registry.clone()),
                move |c| {
                    c.redis = Some(url);
                    c.node_id = Some(id);
                    tweak(c);
                },
                clock.clone(),
            )
            .await;
            super::ready_is(&hub.http(), true, Duration::from_secs(20)).await;
            nodes.push(hub);
        }
        nodes
    }
}

/// A real Redis Sentinel (`redis-server … --sentinel`) watching one master as
/// `gridcast`, deciding alone (quorum 1) after a second of silence.
pub struct Sentinel {
    pub port: u16,
    _child: Child,
}

impl Sentinel {
    pub async fn start(name: &str, master_port: u16) -> Sentinel {
        let dir = tmp_dir(&format!("sentinel-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let conf = dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\nprotected-mode no\n\
                 sentinel monitor gridcast 127.0.0.1 {master_port} 1\n\
                 sentinel down-after-milliseconds gridcast 1000\n\
                 sentinel failover-timeout gridcast 10000\n\
                 sentinel parallel-syncs gridcast 1\n",
                dir.display()
            ),
        )
        .unwrap();
        let child = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start redis-server --sentinel");
        let s = Sentinel {
            port,
            _child: child,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while s.master().await != Some(master_port) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "sentinel on {port} does not name the master"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        s
    }

    /// The master's port as this sentinel says.
    pub async fn master(&self) -> Option<u16> {
        let client = ::redis::Client::open(format!("redis://127.0.0.1:{}/", self.port)).ok()?;
        let mut c = client.get_multiplexed_async_connection().await.ok()?;
        let addr: Option<(String, u16)> = ::redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg("gridcast")
            .query_async(&mut c)
            .await
            .ok()?;
        addr.map(|a| a.1)
    }

    /// Replicas this sentinel knows of the master.
    pub async fn replicas(&self) -> usize {
        let Ok(client) = ::redis::Client::open(format!("redis://127.0.0.1:{}/", self.port)) else {
            return 0;
        };
        let Ok(mut c) = client.get_multiplexed_async_connection().await else {
            return 0;
        };
        ::redis::cmd("SENTINEL")
            .arg("replicas")
            .arg("gridcast")
            .query_async::<Vec<::redis::Value>>(&mut c)
            .await
            .map(|v| v.len())
            .unwrap_or(0)
    }
}
