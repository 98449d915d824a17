//! The gateway's callbacks, signed with the shared secret like what the hub sends it
//! (`transport/fallback/sign.rs`): `POST /v1/fallback/status` (what became of a message)
//! and `POST /v1/fallback/inbound` (a lead's reply, which counts as its ack).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Extension, Json, Router};
use gridcast_protocol::ErrorCode;
use gridcast_protocol::api::{
    FallbackInbound, FallbackStatus, InboundRecorded, StatusRecorded, TimelineEvent,
};
use gridcast_protocol::model::{Response, Status};

use super::{Webhook, sign};
use crate::Hub;
use crate::http::{ApiError, ApiResult, read_body};
use crate::store::Mark;

/// Largest status callback (a batch of statuses).
const STATUS_LIMIT: usize = 256 * 1024;
/// Most statuses in one callback.
const MAX_STATUSES: usize = 1_000;
/// Largest reply.
const INBOUND_LIMIT: usize = 16 * 1024;

/// The gateway's routes (merged beside the lead endpoints).
pub(crate) fn routes(gw: Arc<Webhook>) -> Router<Hub> {
    Router::new()
        .route("/v1/fallback/status", post(post_status))
        .route("/v1/fallback/inbound", post(post_inbound))
        .layer(Extension(gw))
}

/// A request the gateway signed: its body, and its signature (to remember once it
/// was taken, so that a replay is refused). The headers are checked before the body
/// is read, and a few bodies at a time are read (an unsigned caller holds no memory).
async fn signed(
    hub: &Hub,
    gw: &Webhook,
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> ApiResult<(bytes::Bytes, String)> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let now_s = hub.clock.now_ms() / 1000;
    let unauthorized = |why: &str| ApiError::new(ErrorCode::Unauthorized, why);
    let (ts, signature) = (header(sign::TIMESTAMP), header(sign::SIGNATURE));
    sign::check_headers(ts, signature, now_s).map_err(unauthorized)?;
    let _reading = gw.callbacks.try_acquire().map_err(|_| {
        ApiError::new(
            ErrorCode::Unavailable,
            "too many callbacks at once; try again",
        )
    })?;
    let bytes = read_body(hub, body, limit).await?;
    sign::verify(gw.secret(), ts, signature, &bytes, now_s).map_err(unauthorized)?;
    let signature = signature.unwrap_or_default().to_owned();
    if !gw.take(&signature).await? {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "this signed request was taken already (a replay)",
        ));
    }
    Ok((bytes, signature))
}

fn bad_json(e: serde_json::Error) -> ApiError {
    ApiError::new(ErrorCode::BadRequest, format!("invalid JSON body: {e}"))
}

/// `POST /v1/fallback/status`: one status or a list of them (Aliyun's receipts come in
/// batches). Unknown message ids are named in the answer, not refused: the gateway
/// must not retry them forever.
async fn post_status(
    State(hub): State<Hub>,
    Extension(gw): Extension<Arc<Webhook>>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<StatusRecorded>> {
    let (bytes, signature) = signed(&hub, &gw, &headers, body, STATUS_LIMIT).await?;
    let answer: ApiResult<Json<StatusRecorded>> = async {
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(bad_json)?;
        let list: Vec<FallbackStatus> = if value.is_array() {
            serde_json::from_value(value).map_err(bad_json)?
        } else {
            vec![serde_json::from_value(value).map_err(bad_json)?]
        };
        if list.len() > MAX_STATUSES {
            return Err(ApiError::new(
                ErrorCode::TooLarge,
                format!("at most {MAX_STATUSES} statuses per callback"),
            ));
        }
        let mut answer = StatusRecorded {
            recorded: 0,
            unknown: Vec::new(),
        };
        // A few at a time: the embedded store commits them together.
        let mut outcomes = Vec::with_capacity(list.len());
        for chunk in list.chunks(16) {
            outcomes.extend(
                futures_util::future::join_all(chunk.iter().map(|s| gw.apply_status(s))).await,
            );
        }
        for (s, outcome) in list.iter().zip(outcomes) {
            if outcome? {
                answer.recorded += 1;
            } else {
                answer.unknown.push(s.message_id.clone());
            }
        }
        Ok(Json(answer))
    }
    .await;
    if answer.is_err() {
        gw.forget(&signature).await;
    }
    answer
}

/// `POST /v1/fallback/inbound`: a lead's reply (`1`/接受 accepts, `2`/无法前往 declines),
/// recorded as its ack and on the timeline; the same reply again changes nothing.
async fn post_inbound(
    State(hub): State<Hub>,
    Extension(gw): Extension<Arc<Webhook>>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<InboundRecorded>> {
    let (bytes, signature) = signed(&hub, &gw, &headers, body, INBOUND_LIMIT).await?;
    let answer: ApiResult<Json<InboundRecorded>> = async {
        let reply: FallbackInbound = serde_json::from_slice(&bytes).map_err(bad_json)?;
        let r = gw.resolve_reply(&reply).await?;
        let status = match r.response {
            Response::Accept => Status::Accepted,
            Response::Decline => Status::Declined,
        };
        let current = hub.store.incident(&r.incident).await?.and_then(|s| {
            s.recipients
                .iter()
                .find(|x| x.lead == r.lead)
                .map(|x| x.status)
        });
        if current != Some(status) {
            hub.core
                .mark(
                    &r.lead,
                    &r.incident,
                    Mark::Ack {
                        response: r.response,
                        note: r.note.clone(),
                    },
                    None,
                )
                .await?;
            let event = TimelineEvent {
                at: gridcast_protocol::time::rfc3339(hub.clock.now_ms()),
                kind: "fallback_reply".into(),
                actor: r.lead.clone(),
                lead: Some(r.lead.clone()),
                detail: Some(format!("{}: {}", r.via, status.as_str())),
                place: None,
                satisfaction: None,
            };
            if !matches!(
                hub.store.add_events(&r.incident, vec![event]).await,
                Ok(true)
            ) {
                tracing::warn!(incident = %r.incident, "fallback reply recorded as an ack, not on the timeline");
            }
        }
        Ok(Json(InboundRecorded {
            incident: r.incident,
            lead: r.lead,
            status,
        }))
    }
    .await;
    if answer.is_err() {
        gw.forget(&signature).await;
    }
    answer
}
