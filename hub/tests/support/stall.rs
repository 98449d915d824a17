//! A loopback HTTP proxy in front of a hub whose console event streams can be stalled
//! (the hub's side stops being read, as a slow console would) or refused (a stream
//! that cannot reconnect), while every other request goes through.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::JoinSet;

pub struct StallingProxy {
    pub port: u16,
    stalled: watch::Sender<bool>,
    refused: Arc<watch::Sender<bool>>,
    _tasks: JoinSet<()>,
}

const STREAM: &[u8] = b"GET /v1/console/events";

impl StallingProxy {
    pub async fn start(upstream: std::net::SocketAddr) -> StallingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stalled, _) = watch::channel(false);
        let refused = Arc::new(watch::channel(false).0);
        let mut tasks = JoinSet::new();
        let (st, rf) = (stalled.clone(), refused.clone());
        tasks.spawn(async move {
            let mut conns = JoinSet::new();
            while let Ok((down, _)) = listener.accept().await {
                // A small window towards the hub, so that a stalled stream backs up
                // into the hub quickly.
                let sock = TcpSocket::new_v4().unwrap();
                sock.set_recv_buffer_size(4096).unwrap();
                let Ok(up) = sock.connect(upstream).await else {
                    continue;
                };
                let (mut dr, dw) = down.into_split();
                let (mut ur, mut uw) = up.into_split();
                // 0: not (yet) a stream, 1: a console stream, 2: a refused one.
                let (is_stream_tx, is_stream) = watch::channel(0u8);
                let refused = rf.subscribe();
                conns.spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        let n = match dr.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        if buf[..n].starts_with(STREAM) {
                            if *refused.borrow() {
                                let _ = is_stream_tx.send(2); // the other half ends too
                                return;
                            }
                            let _ = is_stream_tx.send(1);
                        }
                        if uw.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
                let mut stalled = st.subscribe();
                let mut cut = rf.subscribe();
                let mut is_stream = is_stream;
                conns.spawn(async move {
                    let mut dw = dw;
                    let mut buf = vec![0u8; 4096];
                    loop {
                        // A stream reads nothing from the hub while stalled.
                        while *is_stream.borrow() == 1 && *stalled.borrow() {
                            if stalled.changed().await.is_err() {
                                return;
                            }
                        }
                        let n = tokio::select! {
                            r = ur.read(&mut buf) => match r {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            },
                            Ok(()) = cut.changed() => {
                                if *cut.borrow() && *is_stream.borrow() == 1 {
                                    return; // an open stream is cut too
                                }
                                continue;
                            }
                            Ok(()) = is_stream.changed() => {
                                if *is_stream.borrow() == 2 {
                                    return;
                                }
                                continue;
                            }
                        };
                        if dw.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        StallingProxy {
            port,
            stalled,
            refused,
            _tasks: tasks,
        }
    }

    pub fn http(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Console streams stop reading from the hub (they stay open).
    pub fn stall(&self) {
        self.stalled.send_replace(true);
    }

    /// Stalled streams go on.
    pub fn release(&self) {
        self.stalled.send_replace(false);
    }

    /// Open console streams are cut, and new ones are cut at once (until allowed again).
    pub fn refuse_streams(&self, refuse: bool) {
        // send_replace: the value changes even while no connection listens.
        self.refused.send_replace(refuse);
    }
}
