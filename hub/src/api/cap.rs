//! CAP over HTTP: `POST /v1/cap` (and `POST /v1/incidents` with `Content-Type:
//! application/cap+xml`) imports an alert; `GET /v1/incidents/{id}/cap` exports one.

use crate::http::Query;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gridcast_protocol::ErrorCode;
use gridcast_protocol::api::{ApprovalState, TimelineEvent};
use gridcast_protocol::model::IncidentState;
use gridcast_protocol::time::rfc3339;
use serde::Deserialize;

use super::{ApiError, ApiResult, Operator};
use crate::Hub;
use crate::auth::Claims;
use crate::cap::{self, CapAction, Profile};
use crate::dispatch::approval::Requested;
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
    // Parsed off the runtime: a large alert is milliseconds of CPU.
    let xml = xml.to_owned();
    let alert = tokio::task::spawn_blocking(move || cap::parse(&xml))
        .await
        .map_err(|e| ApiError::new(ErrorCode::Unavailable, e.to_string()))?
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, e.to_string()))?;
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
const CAP_LOCK_TTL_MS: u64 = 120_000;
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
    // Issued as any activation is: under the two-person rule, a held alert answers
    // `202` with the request's id.
    let issue = |alert: cap::CapAlert| async move {
        let Some(req) = alert.request else {
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                "an Alert needs an <info> block",
            ));
        };
        let o = &alert.origin;
        let key = format!("{},{},{}", o.sender, o.identifier, o.sent);
        let answer = |status: StatusCode, action: &str, id: &str, rev: u64| {
            (
                status,
                Json(serde_json::json!({ "action": action, "id": id, "rev": rev, "cap": key })),
            )
        };
        Ok(
            match hub
                .core
                .request(op, req, Some(alert.origin.clone()))
                .await?
            {
                Requested::Issued(created) => {
                    let mut out = answer(StatusCode::CREATED, "issued", &created.id, created.rev);
                    out.1["recipients"] = created.recipients.into();
                    out.1["online"] = created.online.into();
                    out
                }
                Requested::Held(a) => answer(StatusCode::ACCEPTED, "pending_approval", &a.id, 0),
            },
        )
    };
    if alert.action == CapAction::Issue {
        if let Some(s) = snaps.iter().find(|s| {
            s.meta
                .cap
                .as_ref()
                .is_some_and(|c| c.identifier == o.identifier && c.sender == o.sender)
        }) {
            if !incident::visible(&op.scope, &s.meta) {
                return Err(ApiError::new(
                    ErrorCode::Conflict,
                    "this alert was imported already, outside your jurisdiction",
                ));
            }
            return Ok(answer(StatusCode::OK, "unchanged", &s.meta.id, s.meta.rev));
        }
        // Held for a second person already (and not refused since).
        // (Those visible to the importer, expired ones marked so.)
        let held = hub.core.approvals_for(op).await?.into_iter().find(|a| {
            matches!(
                a.state,
                ApprovalState::PendingApproval | ApprovalState::Approving
            ) && a.cap.as_ref().is_some_and(|c| {
                c["identifier"] == o.identifier.as_str() && c["sender"] == o.sender.as_str()
            })
        });
        if let Some(a) = held {
            return Ok(answer(StatusCode::ACCEPTED, "pending_approval", &a.id, 0));
        }
        return issue(alert).await;
    }
    // An Update or Cancel: the incident its references name — the alert it came from
    // (same sender and identifier; the profile names the identifier only) or one of
    // this hub's exports (`<cap-sender>.<incident>.r<rev>`); active ones first.
    let own = |identifier: &str, id: &str| {
        identifier
            .strip_prefix(&format!("{}.{id}.r", hub.config.cap_sender))
            .is_some_and(|rev| !rev.is_empty() && rev.bytes().all(|b| b.is_ascii_digit()))
    };
    let named = |m: &crate::store::IncidentMeta| {
        alert.references.iter().any(|(sender, identifier)| {
            let from_cap = m.cap.as_ref().is_some_and(|c| {
                &c.identifier == identifier && sender.as_ref().is_none_or(|s| s == &c.sender)
            });
            let exported = sender.as_ref().is_none_or(|s| s == &hub.config.cap_sender)
                && own(identifier, &m.id);
            from_cap || exported
        })
    };
    // A held request of an alert it references: a Cancel withdraws it, an Update voids
    // it (the content changed) and is held or issued in its place.
    let held = hub.core.approvals_for(op).await?.into_iter().find(|a| {
        a.state == ApprovalState::PendingApproval
            && a.cap.as_ref().is_some_and(|c| {
                alert.references.iter().any(|(sender, identifier)| {
                    c["identifier"] == identifier.as_str()
                        && sender.as_ref().is_none_or(|s| c["sender"] == s.as_str())
                })
            })
    });
    if let Some(mut a) = held {
        a.state = ApprovalState::Rejected;
        a.decided_by = Some(op.sub.clone());
        a.decided_at = Some(rfc3339(crate::now_ms()));
        a.reason = Some(match alert.action {
            CapAction::Cancel => format!("withdrawn by CAP Cancel {}", o.identifier),
            _ => format!("replaced by CAP Update {}", o.identifier),
        });
        if !hub
            .store
            .update_approval(&a, ApprovalState::PendingApproval)
            .await?
        {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!(
                    "request {} was decided meanwhile; send the alert again",
                    a.id
                ),
            ));
        }
        hub.core.announce(&a).await;
        if alert.action == CapAction::Cancel {
            return Ok(answer(StatusCode::OK, "withdrawn", &a.id, 0));
        }
        return issue(alert).await;
    }
    let mut candidates: Vec<&crate::store::IncidentSnapshot> = snaps
        .iter()
        .filter(|s| incident::visible(&op.scope, &s.meta) && named(&s.meta))
        .collect();
    candidates.sort_by_key(|s| s.meta.state != IncidentState::Active);
    let Some(target) = candidates.first() else {
        if alert.action == CapAction::Update && alert.request.is_some() {
            // An update of an alert this hub never had is news to it: issued as new,
            // so that its area is warned rather than the message refused.
            return issue(alert).await;
        }
        let named: Vec<&str> = alert.references.iter().map(|(_, i)| i.as_str()).collect();
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!(
                "no incident you can see came from the alerts referenced ({})",
                named.join(" ")
            ),
        ));
    };
    let meta = &target.meta;
    let id = meta.id.clone();
    if meta.drill != alert.drill {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!(
                "an {} alert cannot change the {} incident {id}",
                if alert.drill { "Exercise" } else { "Actual" },
                if meta.drill { "drill" } else { "real" }
            ),
        ));
    }
    let timeline = hub.store.timeline(&id).await?.unwrap_or_default();
    if timeline
        .iter()
        .any(|e| e.kind == "cap" && e.detail.as_deref() == Some(key.as_str()))
    {
        return Ok(answer(StatusCode::OK, "unchanged", &id, meta.rev));
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
            // A running incident keeps its recipients: an Update that moves its area,
            // codes, roles or level is refused loudly rather than applied in part.
            let mut area = req.targets.area.clone();
            crate::area::normalise(&mut area);
            let set = |v: &[gridcast_protocol::Target]| {
                let mut v: Vec<String> = v.iter().map(|t| t.to_string()).collect();
                v.sort();
                v.dedup();
                v
            };
            let mut roles = req.targets.roles.clone();
            roles.sort_by_key(|r| r.as_str());
            roles.dedup();
            if set(&req.targets.codes) != set(&meta.targets.codes)
                || area != meta.targets.area
                || roles != meta.targets.roles
                || req.level != meta.level
            {
                return Err(ApiError::new(
                    ErrorCode::Conflict,
                    format!(
                        "this Update changes the targets or the level of {id}; a running incident keeps its recipients: close it and send a new Alert"
                    ),
                ));
            }
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
        satisfaction: None,
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
