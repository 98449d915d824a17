//! `GET /v1/incidents/{id}/map`: what the console draws as the incident's sketch — the
//! target shapes, the outlines of the grids it reaches (from the registry in force) and
//! every recipient's latest on-site check-in. Drawn by the page itself: no map tiles.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use gridcast_protocol::api::Place;
use serde::Serialize;

use super::{ApiResult, Operator, visible_snapshot};
use crate::Hub;

/// Most grid outlines in one answer (a county of small grids); the rest are counted.
const MAX_OUTLINES: usize = 5_000;

#[derive(Serialize)]
pub(super) struct Outline {
    code: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    name: String,
    geometry: geojson::Geometry,
}

#[derive(Serialize)]
pub(super) struct Checkin {
    lead: String,
    grid: String,
    at: String,
    #[serde(flatten)]
    place: Place,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

#[derive(Serialize)]
pub(super) struct IncidentMap {
    area: Vec<gridcast_protocol::area::Area>,
    grids: Vec<Outline>,
    /// Grids reached that have no geometry, or past [`MAX_OUTLINES`].
    without_outline: usize,
    checkins: Vec<Checkin>,
}

pub(super) async fn get_map(
    State(hub): State<Hub>,
    Operator(op): Operator,
    Path(id): Path<String>,
) -> ApiResult<Json<IncidentMap>> {
    let snap = visible_snapshot(&hub, &op, &id).await?;
    let meta = &snap.meta;
    // The grids of its recipients (where the area reached grids without anyone of a
    // matching role, there is nobody to show).
    let mut codes: Vec<&gridcast_protocol::GridCode> =
        snap.recipients.iter().map(|r| &r.grid).collect();
    codes.sort_unstable();
    codes.dedup();
    let registry = hub.registry.current();
    let mut grids = Vec::new();
    let mut without_outline = 0;
    for code in codes {
        let grid = registry.grid(code);
        match grid.and_then(|g| g.geometry.clone().map(|geo| (g, geo))) {
            Some((g, geometry)) if grids.len() < MAX_OUTLINES => grids.push(Outline {
                code: code.to_string(),
                name: g.name.clone(),
                geometry,
            }),
            _ => without_outline += 1,
        }
    }
    let grid_of: BTreeMap<&str, &str> = snap
        .recipients
        .iter()
        .map(|r| (r.lead.as_str(), r.grid.as_str()))
        .collect();
    let timeline = hub.store.timeline(&id).await?.unwrap_or_default();
    let mut latest: BTreeMap<String, Checkin> = BTreeMap::new();
    for e in timeline.into_iter().filter(|e| e.kind == "checkin") {
        let (Some(lead), Some(place)) = (e.lead, e.place) else {
            continue;
        };
        let grid = grid_of
            .get(lead.as_str())
            .copied()
            .unwrap_or_default()
            .to_owned();
        latest.insert(
            lead.clone(),
            Checkin {
                lead,
                grid,
                at: e.at,
                place,
                note: e.detail,
            },
        );
    }
    Ok(Json(IncidentMap {
        area: meta.targets.area.clone(),
        grids,
        without_outline,
        checkins: latest.into_values().collect(),
    }))
}
