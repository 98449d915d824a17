//! A loopback TCP proxy whose open connections can be frozen: they stay open and
//! forward nothing, as a connection to a failed-over Redis can look healthy and carry
//! nothing. Connections made after the freeze work.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

pub struct FreezingProxy {
    pub port: u16,
    next_id: Arc<AtomicU64>,
    frozen_below: Arc<AtomicU64>,
    _tasks: JoinSet<()>,
}

impl FreezingProxy {
    pub async fn start(upstream: u16) -> FreezingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let next_id = Arc::new(AtomicU64::new(0));
        let frozen_below = Arc::new(AtomicU64::new(0));
        let mut tasks = JoinSet::new();
        let (ids, frozen) = (next_id.clone(), frozen_below.clone());
        tasks.spawn(async move {
            let mut conns = JoinSet::new();
            while let Ok((down, _)) = listener.accept().await {
                let Ok(up) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                    continue;
                };
                let id = ids.fetch_add(1, SeqCst);
                let (dr, dw) = down.into_split();
                let (ur, uw) = up.into_split();
                conns.spawn(pump(dr, uw, id, frozen.clone()));
                conns.spawn(pump(ur, dw, id, frozen.clone()));
            }
        });
        FreezingProxy {
            port,
            next_id,
            frozen_below,
            _tasks: tasks,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Every connection open now stops forwarding, silently.
    pub fn freeze(&self) {
        self.frozen_below.store(self.next_id.load(SeqCst), SeqCst);
    }
}

async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, id: u64, frozen: Arc<AtomicU64>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if id < frozen.load(SeqCst) {
            // Hold both sockets open and carry nothing, until the test ends.
            std::future::pending::<()>().await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
