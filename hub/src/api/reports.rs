//! Upward reports: the list, one page at a time, and promotion to an incident.

use crate::http::Query;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use gridcast_protocol::ErrorCode;
use serde::Deserialize;

use super::{ApiError, ApiResult, Operator, parse_body};
use crate::Hub;

/// `?limit=&before=`.
#[derive(Deserialize)]
pub(super) struct ReportsQuery {
    limit: Option<String>,
    before: Option<String>,
}

/// Reports one page holds by default, and at most.
const REPORTS_PAGE: usize = 100;
const REPORTS_PAGE_MAX: usize = 1_000;

/// The sequence number of a report id (`REP-000042` → 42), for ordering pages.
fn report_seq(id: &str) -> Option<u64> {
    id.strip_prefix("REP-")?.parse().ok()
}

/// `GET /v1/reports?limit=&before=`: the reports from the operator's jurisdiction,
/// newest first, one page at a time (`limit` 1..=1000, default 100; `before` a report
/// id: only older ones; `next_before` in the answer asks for the next page).
pub(super) async fn get_reports(
    State(hub): State<Hub>,
    Operator(op): Operator,
    Query(q): Query<ReportsQuery>,
) -> ApiResult<Json<gridcast_protocol::api::ReportList>> {
    let limit = match q.limit.as_deref().filter(|s| !s.is_empty()) {
        None => REPORTS_PAGE,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=REPORTS_PAGE_MAX).contains(n))
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::BadRequest,
                    format!("limit {l:?} must be a number from 1 to {REPORTS_PAGE_MAX}"),
                )
            })?,
    };
    let before = match q.before.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(b) => Some(report_seq(b).ok_or_else(|| {
            ApiError::new(
                ErrorCode::BadRequest,
                format!("before {b:?} must be a report id such as REP-000042"),
            )
        })?),
    };
    let mut reports: Vec<_> = hub
        .store
        .reports()
        .await?
        .into_iter()
        .filter(|r| r.grid.as_str().starts_with(&op.scope))
        .filter(|r| before.is_none_or(|b| report_seq(&r.id).is_some_and(|n| n < b)))
        .take(limit + 1)
        .collect();
    let next_before = if reports.len() > limit {
        reports.truncate(limit);
        reports.last().map(|r| r.id.clone())
    } else {
        None
    };
    Ok(Json(gridcast_protocol::api::ReportList {
        reports,
        next_before,
    }))
}

/// `POST /v1/reports/{id}/promote`: opens an incident from a report.
pub(super) async fn post_promote(
    State(hub): State<Hub>,
    Operator(op): Operator,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let req: gridcast_protocol::api::PromoteReport =
        parse_body(&hub, body, hub.config.max_body_bytes).await?;
    Ok(match hub.core.promote(&op, &id, req).await? {
        crate::dispatch::approval::Requested::Issued(created) => (
            StatusCode::CREATED,
            Json(serde_json::to_value(created).unwrap_or_default()),
        ),
        crate::dispatch::approval::Requested::Held(a) => (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({
                "id": a.id, "state": a.state, "recipients": a.recipients,
                "expires_at": a.expires_at, "digest": a.digest,
            })),
        ),
    })
}
