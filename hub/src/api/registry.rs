//! The registry over HTTP: each operator sees its jurisdiction's part; an admin for the
//! whole city replaces it (durable first, then in force, one upload at a time, decided
//! before its body is read).

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use gridcast_protocol::ErrorCode;
use gridcast_protocol::registry::RegistryDoc;

use super::{ApiError, ApiResult, Operator, parse_body};
use crate::Hub;
use crate::auth::TokenRole;
use crate::registry::RegistryIndex;

/// The registry as an operator may see it: grids inside its jurisdiction and the people
/// with an assignment there (personal data stays within the jurisdiction).
fn scoped_registry(index: &RegistryIndex, scope: &str) -> RegistryDoc {
    let mut doc = index.registry.to_doc();
    if !scope.is_empty() {
        doc.grids.retain(|g| g.code.starts_with(scope));
        doc.areas
            .retain(|a| a.code.starts_with(scope) || scope.starts_with(&a.code));
        doc.staff
            .retain(|s| s.assignments.iter().any(|a| a.grid.starts_with(scope)));
        for s in &mut doc.staff {
            s.assignments.retain(|a| a.grid.starts_with(scope));
        }
    }
    doc
}

pub(super) async fn get_registry(
    State(hub): State<Hub>,
    Operator(op): Operator,
) -> ApiResult<Json<RegistryDoc>> {
    Ok(Json(scoped_registry(&hub.registry.current(), &op.scope)))
}

pub(super) async fn put_registry(
    State(hub): State<Hub>,
    Operator(op): Operator,
    body: Body,
) -> ApiResult<Json<serde_json::Value>> {
    if op.role != TokenRole::Admin || !op.scope.is_empty() {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "replacing the registry needs an admin token for the whole city",
        ));
    }
    // One upload at a time, decided before its body is read: a second admin upload
    // while one is being read waits for nothing and holds no memory.
    let Ok(_one_upload) = hub.registry_uploads.clone().try_acquire_owned() else {
        return Err(ApiError::new(
            ErrorCode::RateLimited,
            "another registry upload is in progress; retry when it is done",
        ));
    };
    let doc: RegistryDoc = parse_body(&hub, body, hub.config.max_registry_bytes).await?;
    let registry = doc.validate().map_err(|problems| ApiError {
        code: ErrorCode::BadRequest,
        message: format!(
            "registry refused: {} problem(s); nothing was changed",
            problems.len()
        ),
        problems,
    })?;
    // Durable first, then in force: a restart never goes back to an older registry
    // than one that was answered 200. One replacement at a time, so that the registry
    // saved and the one in force are always the same document.
    let _one_at_a_time = hub.registry_writes.lock().await;
    hub.store.save_registry(&registry.to_doc()).await?;
    hub.apply_registry(registry);
    hub.delivery.announce_registry().await;
    let current = hub.registry.current();
    let summary = current.summary();
    let warnings = current.registry.warnings();
    tracing::info!(admin = %op.sub, summary = %summary, warnings = warnings.len(), "registry replaced");
    Ok(Json(
        serde_json::json!({ "ok": true, "summary": summary, "warnings": warnings }),
    ))
}

pub(super) async fn get_task_kinds(
    State(hub): State<Hub>,
    _op: Operator,
) -> ApiResult<Json<serde_json::Value>> {
    Ok(Json(
        serde_json::json!({ "task_kinds": hub.registry.current().registry.task_kinds }),
    ))
}
