//! Rust clients for a gridcast hub: [`lead::LeadClient`] speaks the lead protocol over
//! WebSocket (what a phone does), [`console::ConsoleClient`] the command-center HTTP API.
//! The `gridcast` CLI and the drill tool are built on them.
#![warn(missing_docs)]

pub mod console;
pub mod lead;
pub mod registry_csv;

/// What went wrong talking to a hub.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// WebSocket failure.
    #[error("websocket: {0}")]
    Ws(#[from] tokio_tungstenite::tungstenite::Error),
    /// HTTP failure.
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    /// The hub answered with a contract error.
    #[error("{code}: {message}")]
    Hub {
        /// HTTP status (0 for WebSocket).
        status: u16,
        /// Contract error code.
        code: String,
        /// Message.
        message: String,
    },
    /// The hub closed the session.
    #[error("session closed by the hub (code {0})")]
    Closed(u16),
    /// The hub sent something unexpected.
    #[error("protocol: {0}")]
    Protocol(String),
}
