//! Transports translate frames between a wire and the session protocol
//! ([`crate::transport::protocol`]): WebSocket sessions live in [`ws`]; MQTT leads reach
//! the hub through a broker in [`mqtt`]. They keep bytes, buffers and keepalive; what
//! a frame does, from its charge to its reply, is the protocol's.

pub(crate) mod fallback;
pub mod mqtt;
pub mod protocol;
pub mod ws;

use axum::Router;
use axum::routing::{get, post};

use crate::Hub;

/// The lead endpoints: `/v1/lead/ws`, and the broker's hooks `/v1/mqtt/auth` and
/// `/v1/mqtt/acl`.
pub fn routes() -> Router<Hub> {
    Router::new()
        .route("/v1/lead/ws", get(ws::upgrade))
        .route("/v1/mqtt/auth", post(mqtt::broker::auth))
        .route("/v1/mqtt/acl", post(mqtt::broker::acl))
}
