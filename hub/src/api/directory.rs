//! The published grid directory (Art. 14): `GET /v1/directory?prefix=…`, without a
//! token. For each grid inside `prefix`: what the configuration publishes of it (name,
//! kind, geometry, supervision phone) and of the people in the published roles (grid
//! lead, full-time workers and instructor by default: name, role, work contact) — and
//! nobody else, never a personal phone. Rate-limited per source address, and each
//! prefix's answer cached for the registry in force.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::http::Query;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use gridcast_protocol::{ErrorCode, Target};
use serde::Deserialize;

use super::{ApiError, ApiResult};
use crate::Hub;

/// Most cached prefixes (the cache starts anew when full).
const CACHED: usize = 256;

#[derive(Deserialize)]
pub(super) struct DirectoryQuery {
    prefix: Option<String>,
}

pub(super) async fn get_directory(
    State(hub): State<Hub>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<DirectoryQuery>,
) -> ApiResult<Response> {
    let client = hub.proxies.client(addr.ip(), &headers);
    if !hub.directory_limits.allow(crate::listen::limit_key(client)) {
        return Err(ApiError::new(
            ErrorCode::RateLimited,
            "too many directory requests from this address; retry in a moment",
        ));
    }
    let prefix = match q.prefix.as_deref().filter(|p| !p.is_empty()) {
        Some(p) => {
            Target::parse(p).map_err(|e| ApiError::new(ErrorCode::BadRequest, e.to_string()))?
        }
        None => Target::everything(),
    };
    let registry = hub.registry.current();
    let same = |c: &Option<Arc<crate::registry::RegistryIndex>>| {
        c.as_ref().is_some_and(|r| Arc::ptr_eq(r, &registry))
    };
    let cached = {
        let cache = hub
            .directory_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        same(&cache.0)
            .then(|| cache.1.get(prefix.as_str()).cloned())
            .flatten()
    };
    let body = match cached {
        Some(b) => b,
        None => {
            // Built off the runtime: the whole city is every grid with its outline.
            let (h, r, p) = (hub.clone(), registry.clone(), prefix.clone());
            let body = tokio::task::spawn_blocking(move || {
                bytes::Bytes::from(serde_json::to_vec(&directory(&h, &r, &p)).unwrap_or_default())
            })
            .await
            .map_err(|e| ApiError::new(ErrorCode::Unavailable, e.to_string()))?;
            let mut cache = hub
                .directory_cache
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if !same(&cache.0) || cache.1.len() >= CACHED {
                *cache = (Some(registry.clone()), std::collections::HashMap::new());
            }
            cache.1.insert(prefix.as_str().to_owned(), body.clone());
            body
        }
    };
    Ok((
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "public, max-age=60"),
        ],
        body,
    )
        .into_response())
}

fn directory(
    hub: &Hub,
    registry: &crate::registry::RegistryIndex,
    prefix: &Target,
) -> serde_json::Value {
    let fields = &hub.config.directory_fields;
    let has = |f: &str| fields.iter().any(|x| x == f);
    let roles = &hub.config.directory_roles;
    let grids: Vec<serde_json::Value> = registry
        .registry
        .grids
        .iter()
        .filter(|g| prefix.covers(g.code.as_str()))
        .map(|g| {
            let mut out = serde_json::json!({ "code": g.code });
            if has("name") {
                out["name"] = g.name.clone().into();
            }
            if has("kind") {
                out["kind"] = g.kind.as_str().into();
            }
            if has("geometry")
                && let Some(geom) = &g.geometry
            {
                out["geometry"] = serde_json::to_value(geom).unwrap_or_default();
            }
            if has("supervision_phone")
                && let Some(p) = &g.supervision_phone
            {
                out["supervision_phone"] = p.clone().into();
            }
            let people: Vec<serde_json::Value> = registry
                .people_in(&g.code)
                .filter_map(|id| registry.person(id))
                .flat_map(|p| {
                    p.assignments
                        .iter()
                        .filter(|a| a.grid == g.code && roles.contains(&a.role))
                        .map(move |a| {
                            let mut row = serde_json::json!({ "role": a.role.as_str() });
                            if has("person_name") {
                                row["name"] = p.name.clone().into();
                            }
                            if has("work_contact")
                                && let Some(c) = &p.work_contact
                            {
                                row["work_contact"] = c.clone().into();
                            }
                            row
                        })
                })
                .collect();
            out["people"] = people.into();
            out
        })
        .collect();
    serde_json::json!({ "prefix": prefix.as_str(), "grids": grids })
}
