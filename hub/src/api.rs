//! The command center's HTTP API (DESIGN.md §3) and the operational routes.
//!
//! Every error is `{"error":{"code","message"}}` with the contract's status; bodies are
//! parsed by hand so that a malformed one gets that shape too, not a framework default.

use crate::http::Query;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use gridcast_protocol::api::{CreateIncident, IncidentList, IncidentSummary};
use gridcast_protocol::model::IncidentState;
use gridcast_protocol::{ErrorCode, Target};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::Hub;
use crate::auth::{Claims, TokenRole};
pub(crate) use crate::http::{ApiError, ApiResult, parse_body};
use crate::incident;

/// The authenticated operator of a request.
fn operator(hub: &Hub, headers: &HeaderMap) -> ApiResult<Claims> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::Unauthorized,
                "missing Authorization: Bearer <operator token>",
            )
        })?;
    let claims = hub
        .authenticate(token.trim())
        .map_err(|e| ApiError::new(ErrorCode::Unauthorized, e.to_string()))?;
    if claims.role == TokenRole::Lead {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "lead tokens cannot use the command-center API",
        ));
    }
    Ok(claims)
}

/// The authenticated operator of a request, read from the headers alone. axum runs
/// header extractors before the body extractor, which comes last in every handler, so a
/// request without a valid operator token is answered `401` before a byte of its body
/// is read (a 62 MiB body without a token costs the hub nothing).
pub(crate) struct Operator(pub Claims);

impl axum::extract::FromRequestParts<Hub> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        hub: &Hub,
    ) -> Result<Self, ApiError> {
        operator(hub, &parts.headers).map(Operator)
    }
}

/// An optional filter from the query string (`?state=active`): absent or empty is no
/// filter; anything but one of the wire names is a `bad_request` naming the choices.
fn query_filter<T: DeserializeOwned>(
    value: Option<&str>,
    name: &str,
    choices: &str,
) -> ApiResult<Option<T>> {
    match value {
        None | Some("") => Ok(None),
        Some(v) => gridcast_protocol::from_wire_name(v)
            .map(Some)
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::BadRequest,
                    format!("{name} {v:?} is not {choices}"),
                )
            }),
    }
}

/// `/metrics` alone, for `--metrics-listen`.
pub(crate) fn metrics_router(hub: Hub) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError::new(ErrorCode::NotFound, "no such route") })
        .with_state(hub)
}

mod approvals;
mod cap;
mod detail;
mod directory;
mod events;
mod map;
mod openapi;
mod registry;
mod reports;

/// The hub's routes (with `/metrics` unless `--metrics-listen` serves it elsewhere),
/// with `transports` (the lead endpoints, which the composition root supplies).
pub(crate) fn router(hub: Hub, transports: Router<Hub>) -> Router {
    let routes = Router::new();
    let routes = if hub.config.metrics_listen.is_none() {
        routes.route("/metrics", get(metrics))
    } else {
        routes
    };
    routes
        .route("/v1/incidents", post(create_incident).get(list_incidents))
        .route("/v1/incidents/{id}", get(get_incident))
        .route("/v1/incidents/{id}/recipients", get(detail::get_recipients))
        .route("/v1/incidents/{id}/timeline", get(detail::get_timeline))
        .route("/v1/escalations", get(detail::get_escalations))
        .route("/v1/limits", get(detail::get_limits))
        .route("/v1/incidents/{id}/updates", post(post_update))
        .route("/v1/incidents/{id}/tasks", post(post_task).get(get_tasks))
        .route("/v1/incidents/{id}/report", get(get_after_action))
        .route("/v1/incidents/{id}/cap", get(cap::get_cap))
        .route("/v1/incidents/{id}/approve", post(approvals::post_approve))
        .route("/v1/incidents/{id}/reject", post(approvals::post_reject))
        .route("/v1/approvals", get(approvals::get_approvals))
        .route("/v1/directory", get(directory::get_directory))
        .route("/v1/openapi.json", get(openapi::get_openapi))
        .route("/v1/tasks/{id}/satisfaction", post(post_satisfaction))
        .route("/v1/incidents/{id}/map", get(map::get_map))
        .route("/v1/cap", post(cap::post_cap))
        .route("/v1/stats", get(get_stats))
        .route("/v1/reports", get(reports::get_reports))
        .route("/v1/reports/{id}/promote", post(reports::post_promote))
        .route("/v1/incidents/{id}/close", post(post_close))
        .route("/v1/presence", get(get_presence))
        .route(
            "/v1/registry",
            get(registry::get_registry).put(registry::put_registry),
        )
        .route("/v1/task-kinds", get(registry::get_task_kinds))
        .route("/v1/console/events", get(events::console_events))
        .merge(transports)
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .merge(crate::web::routes())
        .fallback(|| async { ApiError::new(ErrorCode::NotFound, "no such route") })
        .with_state(hub)
}

async fn create_incident(
    State(hub): State<Hub>,
    Operator(op): Operator,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    if cap::is_cap(&headers) {
        return Ok(cap::import(&hub, &op, body).await?.into_response());
    }
    let req: CreateIncident = parse_body(&hub, body, hub.config.max_body_bytes).await?;
    Ok(match hub.core.request(&op, req, None).await? {
        crate::dispatch::approval::Requested::Issued(created) => {
            (StatusCode::CREATED, Json(created)).into_response()
        }
        crate::dispatch::approval::Requested::Held(a) => (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({
                "id": a.id, "state": a.state, "recipients": a.recipients,
                "expires_at": a.expires_at, "digest": a.digest,
            })),
        )
            .into_response(),
    })
}

#[derive(Deserialize)]
struct StateQuery {
    state: Option<String>,
    limit: Option<String>,
}

/// A whole number from the query, `min..=max`, or a clear `bad_request` (not the
/// framework's plain-text refusal).
fn query_number(
    value: Option<&str>,
    name: &str,
    min: usize,
    max: usize,
) -> ApiResult<Option<usize>> {
    let Some(v) = value.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    match v.parse::<usize>() {
        Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
        _ => Err(ApiError::new(
            ErrorCode::BadRequest,
            format!("{name} {v:?} must be a number from {min} to {max}"),
        )),
    }
}

async fn list_incidents(
    State(hub): State<Hub>,
    Operator(op): Operator,
    Query(q): Query<StateQuery>,
) -> ApiResult<Json<IncidentList>> {
    let state: Option<IncidentState> =
        query_filter(q.state.as_deref(), "state", "active or closed")?;
    let limit = query_number(q.limit.as_deref(), "limit", 1, 10_000)?;
    let mut all = hub.store.incidents(state).await?;
    // Newest first, so that `limit` keeps the latest.
    all.sort_by(|a, b| {
        b.meta
            .issued_at
            .cmp(&a.meta.issued_at)
            .then_with(|| b.meta.id.cmp(&a.meta.id))
    });
    let incidents = all
        .iter()
        .filter(|s| incident::visible(&op.scope, &s.meta))
        .take(limit.unwrap_or(usize::MAX))
        .map(|s| IncidentSummary {
            incident: s.meta.view(),
            counts: incident::counts(&s.recipients),
        })
        .collect();
    Ok(Json(IncidentList { incidents }))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    #[schemars(length(min = 1, max = 16000))]
    body: String,
}

/// `POST /v1/incidents/{id}/updates`: a new body, `rev` + 1, to every recipient.
async fn post_update(
    State(hub): State<Hub>,
    Operator(op): Operator,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult<Json<gridcast_protocol::api::IncidentDetail>> {
    let req: UpdateBody = parse_body(&hub, body, hub.config.max_body_bytes).await?;
    let revision = crate::store::Revision::Update { body: req.body };
    Ok(Json(hub.core.revise(&op, &id, revision, false).await?))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct CloseBody {
    #[schemars(length(min = 1, max = 1000))]
    reason: String,
    /// Close even with open tasks.
    #[serde(default)]
    force: bool,
}

/// `POST /v1/incidents/{id}/close`: every recipient gets the closed state; acks after
/// it are `incident_closed`.
async fn post_close(
    State(hub): State<Hub>,
    Operator(op): Operator,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult<Json<gridcast_protocol::api::IncidentDetail>> {
    let req: CloseBody = parse_body(&hub, body, hub.config.max_body_bytes).await?;
    let revision = crate::store::Revision::Close { reason: req.reason };
    Ok(Json(hub.core.revise(&op, &id, revision, req.force).await?))
}

/// `POST /v1/incidents/{id}/tasks`.
async fn post_task(
    State(hub): State<Hub>,
    Operator(op): Operator,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult<(StatusCode, Json<gridcast_protocol::api::CreatedTask>)> {
    let req: gridcast_protocol::api::CreateTask =
        parse_body(&hub, body, hub.config.max_body_bytes).await?;
    let created = hub.core.create_task(&op, &id, req).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// `POST /v1/tasks/{id}/satisfaction`.
async fn post_satisfaction(
    State(hub): State<Hub>,
    Operator(op): Operator,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult<Json<serde_json::Value>> {
    let req: gridcast_protocol::api::RateTask =
        parse_body(&hub, body, hub.config.max_body_bytes).await?;
    Ok(Json(hub.core.rate_task(&op, &id, req).await?))
}

/// `GET /v1/incidents/{id}/tasks`.
async fn get_tasks(
    State(hub): State<Hub>,
    Operator(op): Operator,
    Path(id): Path<String>,
) -> ApiResult<Json<gridcast_protocol::api::TaskList>> {
    visible_snapshot(&hub, &op, &id).await?;
    let tasks = hub
        .store
        .tasks(&id)
        .await?
        .into_iter()
        .map(|t| gridcast_protocol::api::TaskRow {
            task: t.view,
            accepted_by: t.accepted_by,
            note: t.note,
        })
        .collect();
    Ok(Json(gridcast_protocol::api::TaskList { tasks }))
}

/// `GET /v1/incidents/{id}/report`: the after-action report; `Accept: text/csv` gives
/// one row per person.
async fn get_after_action(
    State(hub): State<Hub>,
    Operator(op): Operator,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let snap = visible_snapshot(&hub, &op, &id).await?;
    let timeline = hub.store.timeline(&id).await?.unwrap_or_default();
    let tasks = hub.store.tasks(&id).await?;
    let mut report = crate::after_action::report(&snap, &timeline, &tasks);
    report.fallback = hub
        .store
        .fallback_of(&id)
        .await?
        .iter()
        .map(crate::store::FallbackRecord::row)
        .collect();
    let wants_csv = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/csv"));
    Ok(if wants_csv {
        (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            crate::after_action::people_csv(&report),
        )
            .into_response()
    } else {
        Json(report).into_response()
    })
}

#[derive(Deserialize)]
struct StatsQuery {
    prefix: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// `GET /v1/stats?prefix=&from=&to=`: response figures over a period.
async fn get_stats(
    State(hub): State<Hub>,
    Operator(op): Operator,
    Query(q): Query<StatsQuery>,
) -> ApiResult<Json<gridcast_protocol::api::Stats>> {
    let prefix = scoped_prefix(&op, q.prefix.as_deref())?;
    let when = |v: &Option<String>, name: &str| -> ApiResult<Option<u64>> {
        match v.as_deref().filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(s) => gridcast_protocol::time::parse_rfc3339(s)
                .map(Some)
                .ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::BadRequest,
                        format!("{name} must be an RFC 3339 UTC time or a date (2026-11-26)"),
                    )
                }),
        }
    };
    let (from, to) = (when(&q.from, "from")?, when(&q.to, "to")?);
    let mut real = gridcast_protocol::api::StatsBlock::default();
    let mut drill = gridcast_protocol::api::StatsBlock::default();
    let (mut rd, mut ra, mut dd, mut da) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for snap in hub.store.incidents(None).await? {
        let m = &snap.meta;
        let inside = m.within(prefix.as_str());
        if !inside
            || !incident::visible(&op.scope, m)
            || from.is_some_and(|f| m.issued_at < f)
            || to.is_some_and(|t| m.issued_at >= t)
        {
            continue;
        }
        let timeline = hub.store.timeline(&m.id).await?.unwrap_or_default();
        let r = crate::after_action::report(&snap, &timeline, &[]);
        if m.drill {
            crate::after_action::add(&mut drill, &r, &mut dd, &mut da);
        } else {
            crate::after_action::add(&mut real, &r, &mut rd, &mut ra);
        }
    }
    use gridcast_protocol::api::Spread;
    (real.deliver, real.ack) = (Spread::of(rd), Spread::of(ra));
    (drill.deliver, drill.ack) = (Spread::of(dd), Spread::of(da));
    Ok(Json(gridcast_protocol::api::Stats {
        prefix: prefix.to_string(),
        from: from.map(gridcast_protocol::time::rfc3339),
        to: to.map(gridcast_protocol::time::rfc3339),
        real,
        drill,
    }))
}

async fn visible_snapshot(
    hub: &Hub,
    op: &Claims,
    id: &str,
) -> ApiResult<crate::store::IncidentSnapshot> {
    match hub.store.incident(id).await? {
        Some(s) if incident::visible(&op.scope, &s.meta) => Ok(s),
        _ => Err(ApiError::new(
            ErrorCode::NotFound,
            format!("no incident {id:?}"),
        )),
    }
}

async fn get_incident(
    State(hub): State<Hub>,
    Operator(op): Operator,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    if id.starts_with("APR-") {
        return Ok(Json(approvals::get_approval(&hub, &op, &id).await?).into_response());
    }
    let snap = visible_snapshot(&hub, &op, &id).await?;
    Ok(Json(incident::detail(&snap)).into_response())
}

#[derive(Deserialize)]
struct PresenceQuery {
    prefix: Option<String>,
    leads: Option<bool>,
}

fn scoped_prefix(op: &Claims, prefix: Option<&str>) -> ApiResult<Target> {
    let prefix = match prefix.filter(|p| !p.is_empty()) {
        Some(p) => {
            Target::parse(p).map_err(|e| ApiError::new(ErrorCode::BadRequest, e.to_string()))?
        }
        None if op.scope.is_empty() => Target::everything(),
        None => Target::parse(&op.scope)
            .map_err(|e| ApiError::new(ErrorCode::Forbidden, e.to_string()))?,
    };
    if !prefix.as_str().starts_with(&op.scope) {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("{prefix} is outside your jurisdiction {:?}", op.scope),
        ));
    }
    Ok(prefix)
}

async fn get_presence(
    State(hub): State<Hub>,
    Operator(op): Operator,
    Query(q): Query<PresenceQuery>,
) -> ApiResult<Json<gridcast_protocol::api::Presence>> {
    let prefix = scoped_prefix(&op, q.prefix.as_deref())?;
    let registry = hub.registry.current();
    let with_leads = q.leads.unwrap_or(false);
    let online = hub.delivery.online().await?;
    Ok(Json(crate::presence::body(
        &prefix, &registry, with_leads, online,
    )))
}

async fn readyz(State(hub): State<Hub>) -> Response {
    if hub.shutdown.is_cancelled() {
        return ApiError::new(ErrorCode::Unavailable, "shutting down").into_response();
    }
    if !hub.store.healthy() {
        return ApiError::new(ErrorCode::Unavailable, "the store cannot record").into_response();
    }
    if let Err(why) = hub.delivery.ready() {
        return ApiError::new(ErrorCode::Unavailable, why).into_response();
    }
    (StatusCode::OK, "ready").into_response()
}

async fn metrics(State(hub): State<Hub>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        hub.metrics.render(),
    )
}
