//! The two-person rule over HTTP: the requests held for a second person, their
//! approval and rejection (see [`crate::dispatch::approval`]).

use crate::http::Query;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use gridcast_protocol::ErrorCode;
use gridcast_protocol::api::{Approval, ApprovalState};
use serde::Deserialize;

use super::{ApiError, ApiResult, Operator, parse_body, query_filter};
use crate::Hub;

#[derive(Deserialize)]
pub(super) struct ApprovalQuery {
    state: Option<String>,
}

/// `GET /v1/approvals[?state=pending_approval|…]`: the held requests inside the
/// operator's jurisdiction, oldest first.
pub(super) async fn get_approvals(
    State(hub): State<Hub>,
    Operator(op): Operator,
    Query(q): Query<ApprovalQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let want: Option<ApprovalState> = query_filter(
        q.state.as_deref(),
        "state",
        "pending_approval, approving, active, rejected, expired or failed",
    )?;
    let list: Vec<Approval> = hub
        .core
        .approvals_for(&op)
        .await?
        .into_iter()
        .filter(|a| want.is_none_or(|w| a.state == w))
        .collect();
    Ok(Json(serde_json::json!({ "approvals": list })))
}

/// `GET /v1/incidents/{APR-…}`: a held request by the id its `202` gave.
pub(super) async fn get_approval(
    hub: &Hub,
    op: &crate::auth::Claims,
    id: &str,
) -> ApiResult<Approval> {
    hub.core
        .approvals_for(op)
        .await?
        .into_iter()
        .find(|a| a.id == id)
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("no request {id:?}")))
}

#[derive(Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ApproveBody {
    /// The digest of the content approved (as the request shows it), if the approver
    /// wants the approval bound to it.
    #[serde(default)]
    digest: Option<String>,
}

/// `POST /v1/incidents/{id}/approve`.
pub(super) async fn post_approve(
    State(hub): State<Hub>,
    Operator(op): Operator,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult<Json<Approval>> {
    let bytes = crate::http::read_body(&hub, body, hub.config.max_body_bytes).await?;
    let req: ApproveBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        ApproveBody::default()
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("invalid JSON body: {e}")))?
    };
    Ok(Json(hub.core.approve(&op, &id, req.digest).await?))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RejectBody {
    #[schemars(length(min = 1, max = 1000))]
    reason: String,
}

/// `POST /v1/incidents/{id}/reject`.
pub(super) async fn post_reject(
    State(hub): State<Hub>,
    Operator(op): Operator,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult<Json<Approval>> {
    let req: RejectBody = parse_body(&hub, body, hub.config.max_body_bytes).await?;
    Ok(Json(hub.core.reject(&op, &id, req.reason).await?))
}
