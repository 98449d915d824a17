//! A real `mosquitto` per test on a free loopback port, killable and restartable.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use super::{free_port, tmp_dir};

pub struct Mosquitto {
    pub port: u16,
    pub dir: PathBuf,
    conf: PathBuf,
    child: Option<Child>,
}

impl Mosquitto {
    /// Anonymous access (the hub's own tests of the protocol).
    pub async fn start(name: &str) -> Mosquitto {
        Self::start_with(name, "allow_anonymous true\n").await
    }

    /// With extra configuration lines (authentication, ACL).
    pub async fn start_with(name: &str, extra: &str) -> Mosquitto {
        let dir = tmp_dir(&format!("mosquitto-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\npersistence false\nuser root\nlog_type error\n{extra}"
            ),
        )
        .unwrap();
        let mut m = Mosquitto {
            port,
            dir,
            conf,
            child: None,
        };
        m.spawn().await;
        m
    }

    async fn spawn(&mut self) {
        // Debian puts the broker in /usr/sbin, which is not on every PATH.
        let bin = if std::path::Path::new("/usr/sbin/mosquitto").exists() {
            "/usr/sbin/mosquitto"
        } else {
            "mosquitto"
        };
        let child = Command::new(bin)
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            // It warns about running as root (tests run as whoever runs them).
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start mosquitto (apt-get install mosquitto)");
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "mosquitto on port {} did not listen",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The broker's process id (to stop and continue it).
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .and_then(|c| c.id())
            .expect("mosquitto running")
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    pub async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().await.unwrap();
        }
    }

    pub async fn restart(&mut self) {
        self.kill().await;
        self.spawn().await;
    }
}
