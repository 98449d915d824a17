//! CAP over HTTP: `POST /v1/cap` (and `POST /v1/incidents` with `Content-Type:
//! application/cap+xml`) imports an alert; `GET /v1/incidents/{id}/cap` exports one.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gridcast_protocol::ErrorCode;
use gridcast_protocol::api::TimelineEvent;
use gridcast_protocol::time::rfc3339;
use serde::Deserialize;

use super::{ApiError, ApiResult, Operator};
use crate::Hub;
use crate::auth::Claims;
use crate::cap::{self, CapAction, Profile};
use crate::incident;
use crate::store::Revision;

/// The media type of CAP.
pub(super) const CAP_TYPE: &str = "application/cap+xml";

/// True when a request body is CAP (`application/cap+xml`, or XML by its type).
pub(super) fn is_cap(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .is_some_and(|t| t == CAP_TYPE || t == "application/xml" || t == "text/xml")
}

pub(super) async fn post_cap(
    State(hub): State<Hub>,
    Operator(op): Operator,
    body: Body,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    import(&hub, &op, body).await
}

/// Reads, checks and applies one alert.
pub(super) async fn import(
    hub: &Hub,
    op: &Claims,
    body: Body,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let bytes = crate::http::read_body(hub, body, hub.config.max_body_bytes).await?;
    let xml = std::str::from_utf8(&bytes).map_err(|e| {
        ApiError::new(
            ErrorCode::BadRequest,
            format!("not valid CAP 1.2: the body must be UTF-8 ({e})"),
        )
    })?;
    let alert = cap::parse(xml).map_err(|e| ApiError::new(ErrorCode::BadRequest, e.to_string()))?;
    // One import at a time, on this node and across the cluster: a repeated alert
    // finds what the first one made, wherever it was posted.
    let _one = hub.cap_imports.lock().await;
    let token =
        crate::random_hex(8).map_err(|e| ApiError::new(ErrorCode::Unavailable, e.to_string()))?;
    let waited = std::time::Instant::now();
    let mut backoff = crate::backoff::Backoff::new(
        std::time::Duration::from_millis(10),
        std::time::Duration::from_millis(200),
    );
    while !hub
        .store
        .try_lock(CAP_LOCK, &token, CAP_LOCK_TTL_MS)
        .await?
    {
        if waited.elapsed() > CAP_LOCK_WAIT || !backoff.sleep(&hub.shutdown).await {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                "another node is importing a CAP alert; retry in a moment",
            ));
        }
    }
    let applied = apply(hub, op, alert).await;
    if let Err(e) = hub.store.unlock(CAP_LOCK, &token).await {
        tracing::warn!(error = %e, "CAP import lock not released; it expires by itself");
    }
    applied
}

/// The cluster-wide lock of CAP imports.
const CAP_LOCK: &str = "cap-import";
/// How long a node holds it at most (one that dies lets go by itself).
const CAP_LOCK_TTL_MS: u64 = 30_000;
/// How long an import waits for it before answering `409`.
const CAP_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Applies a parsed alert (under the import lock).
async fn apply(
    hub: &Hub,
    op: &Claims,
    alert: cap::CapAlert,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let snaps = hub.store.incidents(None).await?;
    let o = &alert.origin;
    let key = format!("{},{},{}", o.sender, o.identifier, o.sent);
    let answer = |status: StatusCode, action: &str, id: &str, rev: u64| {
        (
            status,
            Json(serde_json::json!({ "action": action, "id": id, "rev": rev, "cap": key })),
        )
    };
    if alert.action == CapAction::Issue {
        if let Some(s) = snaps.iter().find(|s| {
            s.meta
                .cap
                .as_ref()
                .is_some_and(|c| c.identifier == o.identifier && c.sender == o.sender)
        }) {
            return Ok(answer(StatusCode::OK, "unchanged", &s.meta.id, s.meta.rev));
        }
        let Some(req) = alert.request else {
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                "an Alert needs an <info> block",
            ));
        };
        let created = hub.core.issue_from(op, req, Some(alert.origin)).await?;
        let mut out = answer(StatusCode::CREATED, "issued", &created.id, created.rev);
        out.1["recipients"] = created.recipients.into();
        out.1["online"] = created.online.into();
        return Ok(out);
    }
    // An Update or Cancel: the incident its references name (an alert it came from,
    // or one of this hub's exports, `<sender>.<incident>.r<rev>`).
    let target = snaps.iter().find(|s| {
        incident::visible(&op.scope, &s.meta)
            && alert.references.iter().any(|r| {
                s.meta.cap.as_ref().is_some_and(|c| &c.identifier == r)
                    || r.split('.').rev().nth(1) == Some(s.meta.id.as_str())
            })
    });
    let Some(target) = target else {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!(
                "no incident you can see came from the alerts referenced ({})",
                alert.references.join(" ")
            ),
        ));
    };
    let id = target.meta.id.clone();
    let timeline = hub.store.timeline(&id).await?.unwrap_or_default();
    if timeline
        .iter()
        .any(|e| e.kind == "cap" && e.detail.as_deref() == Some(key.as_str()))
    {
        return Ok(answer(StatusCode::OK, "unchanged", &id, target.meta.rev));
    }
    let (revision, action) = match alert.action {
        CapAction::Cancel => (
            Revision::Close {
                reason: alert
                    .note
                    .clone()
                    .filter(|n| !n.trim().is_empty())
                    .unwrap_or_else(|| format!("CAP Cancel {}", o.identifier)),
            },
            "closed",
        ),
        _ => {
            let Some(req) = &alert.request else {
                return Err(ApiError::new(
                    ErrorCode::BadRequest,
                    "an Update needs an <info> block",
                ));
            };
            let body = if req.body.is_empty() {
                &req.title
            } else {
                &req.body
            };
            (Revision::Update { body: body.clone() }, "updated")
        }
    };
    let detail = hub.core.revise(op, &id, revision, true).await?;
    let event = TimelineEvent {
        at: rfc3339(crate::now_ms()),
        kind: "cap".into(),
        actor: op.sub.clone(),
        lead: None,
        detail: Some(key.clone()),
        place: None,
    };
    hub.store.add_events(&id, vec![event]).await?;
    Ok(answer(StatusCode::OK, action, &id, detail.incident.rev))
}

#[derive(Deserialize)]
pub(super) struct CapQuery {
    profile: Option<String>,
}

/// `GET /v1/incidents/{id}/cap[?profile=gbt35965]`.
pub(super) async fn get_cap(
    State(hub): State<Hub>,
    Operator(op): Operator,
    Path(id): Path<String>,
    Query(q): Query<CapQuery>,
) -> ApiResult<Response> {
    let profile = match q.profile.as_deref() {
        None | Some("" | "cap") => Profile::Cap12,
        Some("gbt35965") => Profile::Gbt35965,
        Some(p) => {
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                format!("profile {p:?} is not cap or gbt35965"),
            ));
        }
    };
    let snap = match hub.store.incident(&id).await? {
        Some(s) if incident::visible(&op.scope, &s.meta) => s,
        _ => {
            return Err(ApiError::new(
                ErrorCode::NotFound,
                format!("no incident {id:?}"),
            ));
        }
    };
    let timeline = hub.store.timeline(&id).await?.unwrap_or_default();
    let xml = cap::export(&snap.meta, &timeline, &hub.config.cap_sender, profile);
    let name = format!("attachment; filename=\"{id}-r{}.cap.xml\"", snap.meta.rev);
    Ok((
        [
            (header::CONTENT_TYPE, format!("{CAP_TYPE}; charset=utf-8")),
            (header::CONTENT_DISPOSITION, name),
        ],
        xml,
    )
        .into_response())
}
