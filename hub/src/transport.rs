//! Transports translate frames between a wire and the core. WebSocket sessions live in
//! [`ws`]; MQTT leads reach the hub through a broker in [`mqtt`]. What a lead's frame
//! does once it is decoded is the same for both: [`answer`].

pub mod mqtt;
pub mod ws;

use axum::Router;
use axum::routing::{get, post};
use gridcast_protocol::ErrorCode;
use gridcast_protocol::frame::{ClientFrame, ServerFrame};

use crate::Hub;
use crate::incident::Refusal;
use crate::store::Mark;

/// The lead endpoints: `/v1/lead/ws`, and the broker's hooks `/v1/mqtt/auth` and
/// `/v1/mqtt/acl`.
pub fn routes() -> Router<Hub> {
    Router::new()
        .route("/v1/lead/ws", get(ws::upgrade))
        .route("/v1/mqtt/auth", post(mqtt::broker::auth))
        .route("/v1/mqtt/acl", post(mqtt::broker::acl))
}

/// The reply a lead's frame gets: `ok`/`pong` or `error`, or nothing (no `ref`).
pub async fn answer(hub: &Hub, lead: &str, frame: ClientFrame) -> Option<ServerFrame> {
    let reference = frame.reference().map(str::to_owned);
    let result = match frame {
        ClientFrame::Ping { reference } => return Some(ServerFrame::Pong { reference }),
        ClientFrame::Hello { .. } => {
            Err(Refusal::new(ErrorCode::BadRequest, "already authenticated"))
        }
        ClientFrame::Receipt { incident, .. } => {
            if reference.is_none() && hub.receipt_later(lead, &incident) {
                return None;
            }
            hub.mark(lead, &incident, Mark::Receipt).await
        }
        ClientFrame::Ack {
            incident,
            response,
            note,
            ..
        } => {
            hub.mark(lead, &incident, Mark::Ack { response, note })
                .await
        }
        ClientFrame::TaskUpdate {
            task, status, note, ..
        } => hub.update_task(lead, &task, status, note).await,
        ClientFrame::Report {
            category,
            title,
            detail,
            grid,
            location,
            ..
        } => {
            hub.report(lead, category, title, detail, grid, location)
                .await
        }
    };
    match (result, reference) {
        (Ok(()), Some(reference)) => Some(ServerFrame::Ok { reference }),
        (Ok(()), None) => None,
        (Err(e), reference) => {
            hub.metrics
                .frame_errors
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Some(ServerFrame::Error {
                reference,
                code: e.code,
                message: e.message,
            })
        }
    }
}
