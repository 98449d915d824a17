//! A lead session over WebSocket, as a phone app would run it.

use futures_util::{SinkExt, StreamExt};
use gridcast_protocol::frame::{Assignment, ClientFrame, ClientInfo, ServerFrame};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::ClientError;

/// The hub's `welcome`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    /// Authenticated lead id.
    pub lead: String,
    /// Assignments.
    pub assignments: Vec<Assignment>,
    /// Heartbeat interval.
    pub heartbeat_s: u32,
}

/// An open lead session.
pub struct LeadClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// Small buffers: a drill opens thousands of these in one process.
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(256 * 1024)
}

impl LeadClient {
    /// Opens a WebSocket to `url` (`ws://host:port/v1/lead/ws`) without saying hello.
    pub async fn open(url: &str) -> Result<Self, ClientError> {
        let (ws, _) =
            tokio_tungstenite::connect_async_with_config(url, Some(ws_config()), true).await?;
        Ok(Self { ws })
    }

    /// Opens a session and authenticates; returns after `welcome`.
    pub async fn connect(url: &str, token: &str) -> Result<(Self, Welcome), ClientError> {
        let mut c = Self::open(url).await?;
        let info = ClientInfo {
            name: "gridcast-clients".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        };
        c.send(&ClientFrame::Hello {
            token: token.into(),
            client: Some(info),
        })
        .await?;
        match c.next().await? {
            ServerFrame::Welcome {
                lead,
                assignments,
                heartbeat_s,
            } => Ok((
                c,
                Welcome {
                    lead,
                    assignments,
                    heartbeat_s,
                },
            )),
            ServerFrame::Error { code, message, .. } => Err(ClientError::Hub {
                status: 0,
                code: code.as_str().into(),
                message,
            }),
            other => Err(ClientError::Protocol(format!(
                "expected welcome, got {other:?}"
            ))),
        }
    }

    /// Sends a frame.
    pub async fn send(&mut self, frame: &ClientFrame) -> Result<(), ClientError> {
        let text =
            serde_json::to_string(frame).map_err(|e| ClientError::Protocol(e.to_string()))?;
        self.ws.send(Message::text(text)).await?;
        Ok(())
    }

    /// Sends raw text (for tests of bad input).
    pub async fn send_text(&mut self, text: String) -> Result<(), ClientError> {
        self.ws.send(Message::text(text)).await?;
        Ok(())
    }

    /// The next frame from the hub (pings are answered by the library).
    pub async fn next(&mut self) -> Result<ServerFrame, ClientError> {
        loop {
            match self.ws.next().await {
                None => return Err(ClientError::Closed(1006)),
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(Message::Text(t))) => {
                    return serde_json::from_str(&t)
                        .map_err(|e| ClientError::Protocol(format!("{e}: {t}")));
                }
                Some(Ok(Message::Close(c))) => {
                    return Err(ClientError::Closed(
                        c.map(|c| u16::from(c.code)).unwrap_or(1005),
                    ));
                }
                Some(Ok(_)) => {}
            }
        }
    }

    /// Reads the sync that follows `welcome`: every frame up to `synced`.
    pub async fn sync(&mut self) -> Result<Vec<ServerFrame>, ClientError> {
        let mut out = Vec::new();
        loop {
            match self.next().await? {
                ServerFrame::Synced => return Ok(out),
                f => out.push(f),
            }
        }
    }

    /// Sends a frame with `ref` and waits for its `ok` or `error`; other frames that
    /// arrive meanwhile are returned too, in order.
    pub async fn request(
        &mut self,
        frame: &ClientFrame,
    ) -> Result<(Result<(), ClientError>, Vec<ServerFrame>), ClientError> {
        let want = frame
            .reference()
            .ok_or_else(|| ClientError::Protocol("request needs a ref".into()))?
            .to_owned();
        self.send(frame).await?;
        let mut other = Vec::new();
        loop {
            match self.next().await? {
                ServerFrame::Ok { reference } if reference == want => return Ok((Ok(()), other)),
                ServerFrame::Error {
                    reference: Some(r),
                    code,
                    message,
                } if r == want => {
                    return Ok((
                        Err(ClientError::Hub {
                            status: 0,
                            code: code.as_str().into(),
                            message,
                        }),
                        other,
                    ));
                }
                f => other.push(f),
            }
        }
    }

    /// Closes the session.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}
