//! What leads send up besides acks: reports of what they found (Art. 18) and on-site
//! check-ins (签到). Both are durable before they are answered, within the lead's
//! report quota, and shown on the console at once.

use std::sync::atomic::Ordering::Relaxed;

use gridcast_protocol::api::{Place, PlaceRef, ReportView, TimelineEvent};
use gridcast_protocol::model::IncidentState;
use gridcast_protocol::time::rfc3339;
use gridcast_protocol::{ErrorCode, GridCode};

use super::Dispatch;
use super::incident::{MAX_BODY, MAX_NOTE, MAX_TITLE, Refusal, check_text};
use crate::ratelimit::CHECKINS_PER_MINUTE;

impl Dispatch {
    /// Takes a lead's upward report (Art. 18: nobody may block it): into one of the
    /// lead's own grids or their micro-grids, within the lead's report quota
    /// (`--report-quota` a minute), stored durably, shown on the console at once.
    pub(crate) async fn report(
        &self,
        lead: &str,
        category: gridcast_protocol::Category,
        title: String,
        detail: String,
        grid: GridCode,
        location: Option<gridcast_protocol::frame::Location>,
    ) -> Result<(), Refusal> {
        check_text("title", &title, 1, MAX_TITLE)?;
        check_text("detail", &detail, 0, MAX_BODY)?;
        let registry = self.registry.current();
        if !registry.registry.grids.iter().any(|g| g.code == grid) {
            return Err(Refusal::new(
                ErrorCode::BadRequest,
                format!("grid {grid} is not in the registry"),
            ));
        }
        let own = registry.person(lead).is_some_and(|p| {
            p.assignments
                .iter()
                .any(|a| grid.as_str().starts_with(a.grid.as_str()))
        });
        if !own {
            return Err(Refusal::new(
                ErrorCode::Forbidden,
                format!("grid {grid} is not one of your grids or their micro-grids"),
            ));
        }
        drop(registry);
        if !self.lead_limits.charge_report(lead) {
            self.metrics
                .rate_limited
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Err(Refusal::new(
                ErrorCode::RateLimited,
                format!(
                    "report quota used up ({} a minute); try again in a minute",
                    self.config.report_quota
                ),
            ));
        }
        let report = self
            .store
            .add_report(ReportView {
                id: String::new(),
                at: rfc3339(self.clock.now_ms()),
                lead: lead.to_owned(),
                grid,
                category,
                title,
                detail,
                // Kept in WGS 84 like every position the hub stores.
                location: location.map(|l| {
                    let w = crate::area::wgs84(l.lat, l.lon, l.datum);
                    gridcast_protocol::frame::Location {
                        lat: w.y,
                        lon: w.x,
                        datum: Default::default(),
                    }
                }),
                incident: None,
            })
            .await?;
        tracing::info!(report = %report.id, lead, grid = %report.grid, "report taken");
        let codes = vec![report.grid.to_string()];
        let data = serde_json::json!({ "report": report });
        self.delivery.console("report", codes, data).await;
        Ok(())
    }

    /// Records a lead's on-site check-in (签到) on the timeline of an incident it was
    /// sent, durable before it resolves, marked inside or outside the incident's area
    /// (or, for an incident targeted by codes, the lead's grid geometry).
    pub(crate) async fn checkin(
        &self,
        lead: &str,
        incident: &str,
        location: gridcast_protocol::frame::Location,
        note: Option<String>,
    ) -> Result<(), Refusal> {
        if let Some(n) = &note {
            check_text("note", n, 0, MAX_NOTE)?;
        }
        let probe = gridcast_protocol::area::Area {
            polygon: None,
            circle: Some(gridcast_protocol::area::Circle {
                lat: location.lat,
                lon: location.lon,
                radius_m: 0.0,
            }),
            datum: location.datum,
        };
        probe
            .check("location")
            .map_err(|e| Refusal::new(ErrorCode::BadRequest, e))?;
        let here = crate::area::wgs84(location.lat, location.lon, location.datum);
        // Charged before any read: a stolen token cannot make the store work for it.
        if !self.lead_limits.charge_checkin(lead) {
            self.metrics.rate_limited.fetch_add(1, Relaxed);
            return Err(Refusal::new(
                ErrorCode::RateLimited,
                format!("at most {CHECKINS_PER_MINUTE} check-ins a minute; try again in a minute"),
            ));
        }
        // The lead's own active incidents (its recipient row), not the whole incident.
        let now = self.clock.now_ms();
        let mine = self
            .store
            .incidents_for_lead(lead, now)
            .await?
            .into_iter()
            .find(|(m, _)| m.id == incident && m.state == IncidentState::Active);
        let Some((meta, me)) = mine else {
            return Err(Refusal::new(
                ErrorCode::NotFound,
                format!("no active incident {incident:?} was sent to you"),
            ));
        };
        // Against the area for a lead its area reached; else against the lead's grid.
        let by_area = meta
            .area_grids
            .iter()
            .any(|t| me.grid.as_str().starts_with(t.as_str()));
        let (inside, against) = if by_area && !meta.targets.area.is_empty() {
            let shape = crate::area::Shape::new(&meta.targets.area);
            (Some(shape.contains(here)), Some(PlaceRef::Area))
        } else {
            match self.registry.current().shape_of(&me.grid) {
                Some(grid) => (
                    Some(geo::Intersects::intersects(grid, &here)),
                    Some(PlaceRef::Grid),
                ),
                None => (None, None),
            }
        };
        let place = Place {
            lat: here.y,
            lon: here.x,
            inside,
            against,
        };
        let event = TimelineEvent {
            at: rfc3339(self.clock.now_ms()),
            kind: "checkin".into(),
            actor: lead.to_owned(),
            lead: Some(lead.to_owned()),
            detail: note,
            place: Some(place),
            satisfaction: None,
        };
        if !self.store.add_events(incident, vec![event.clone()]).await? {
            return Err(Refusal::new(
                ErrorCode::NotFound,
                format!("no incident {incident:?}"),
            ));
        }
        tracing::info!(incident, lead, inside = ?inside, "check-in recorded");
        let data = serde_json::json!({ "incident": incident, "event": event, "grid": me.grid });
        self.delivery
            .console("checkin", meta.route_codes(), data)
            .await;
        Ok(())
    }
}
