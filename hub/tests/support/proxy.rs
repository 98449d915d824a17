//! A loopback TCP proxy whose open connections can be frozen: they stay open and
//! forward nothing, as a connection to a failed-over Redis can look healthy and carry
//! nothing. Connections made after the freeze work. It can also freeze a connection at
//! the first command that contains given bytes (e.g. a node's `PUBLISH` to a grid
//! channel), which is not forwarded: a node that dies between a write and its publish.

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
    trigger: Trigger,
    _tasks: JoinSet<()>,
}

/// Byte strings that, all in one chunk from the client, freeze its connection.
type Trigger = Arc<std::sync::Mutex<Option<Vec<Vec<u8>>>>>;

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

impl FreezingProxy {
    pub async fn start(upstream: u16) -> FreezingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let next_id = Arc::new(AtomicU64::new(0));
        let frozen_below = Arc::new(AtomicU64::new(0));
        let trigger = Trigger::default();
        let mut tasks = JoinSet::new();
        let (ids, frozen, trig) = (next_id.clone(), frozen_below.clone(), trigger.clone());
        tasks.spawn(async move {
            let mut conns = JoinSet::new();
            while let Ok((down, _)) = listener.accept().await {
                let Ok(up) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                    continue;
                };
                let id = ids.fetch_add(1, SeqCst);
                let (dr, dw) = down.into_split();
                let (ur, uw) = up.into_split();
                let hit = Arc::new(std::sync::atomic::AtomicBool::new(false));
                conns.spawn(pump(
                    dr,
                    uw,
                    id,
                    frozen.clone(),
                    Some(trig.clone()),
                    hit.clone(),
                ));
                conns.spawn(pump(ur, dw, id, frozen.clone(), None, hit));
            }
        });
        FreezingProxy {
            port,
            next_id,
            frozen_below,
            trigger,
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

    /// From now on, a connection whose client sends a chunk containing every one of
    /// `needles` is frozen at that chunk (which is not forwarded).
    pub fn freeze_on(&self, needles: &[&[u8]]) {
        *self.trigger.lock().unwrap() = Some(needles.iter().map(|n| n.to_vec()).collect());
    }
}

async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    id: u64,
    frozen: Arc<AtomicU64>,
    trigger: Option<Trigger>,
    hit: Arc<std::sync::atomic::AtomicBool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if let Some(t) = &trigger
            && let Some(needles) = &*t.lock().unwrap()
            && needles.iter().all(|x| contains(&buf[..n], x))
        {
            hit.store(true, SeqCst);
        }
        if id < frozen.load(SeqCst) || hit.load(SeqCst) {
            // Hold both sockets open and carry nothing, until the test ends.
            std::future::pending::<()>().await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
