//! The core of an activation: issue (resolve, record durably, then fan out), receipts and
//! acks (durable before `ok`), a lead's sync, and the operators' views.
//!
//! Nothing here knows a transport or a backend: it speaks to the [`Store`](crate::store)
//! trait and the [`Delivery`](crate::delivery) port, through the core's own handle
//! ([`Dispatch`](super::Dispatch)), and returns contract error codes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use tracing::Instrument;

use gridcast_protocol::api::{
    CreateIncident, CreatedIncident, GridRollup, IncidentDetail, PromoteReport, RecipientRow,
};
use gridcast_protocol::frame::{Me, ServerFrame};
use gridcast_protocol::model::IncidentState;
use gridcast_protocol::time::rfc3339;
use gridcast_protocol::{ErrorCode, GridCode, Status};

use super::Dispatch;
use crate::auth::Claims;
use crate::registry::Resolved;
use crate::session::{Frame, encode};
use crate::store::{
    IncidentMeta, IncidentSnapshot, Mark, MarkOutcome, NewIncident, RecipientState, ReviseOutcome,
    Revision, StoreError,
};

/// An activation checked and resolved, not yet recorded ([`Dispatch::prepare`]).
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    /// The request with its targets normalised (codes once, roles sorted, shapes in
    /// WGS 84).
    pub(crate) req: CreateIncident,
    /// Ack window in seconds.
    pub(crate) window: u32,
    /// Recipients in registry order.
    pub(crate) recipients: Vec<(String, GridCode, gridcast_protocol::Role)>,
    /// Grids the area reached, exactly.
    pub(crate) area_grids: Vec<GridCode>,
}

/// A refusal with a contract code and a message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Contract error code.
    pub code: ErrorCode,
    /// Why.
    pub message: String,
}

impl Refusal {
    /// A refusal.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store unavailable");
        Refusal::new(
            ErrorCode::Unavailable,
            "the hub could not record this; retry",
        )
    }
}

/// Longest title, body and ack note accepted.
pub const MAX_TITLE: usize = 200;
/// Longest body.
pub const MAX_BODY: usize = 16_000;
/// Longest note on an ack.
pub const MAX_NOTE: usize = 1_000;
/// Most target codes in one activation.
pub const MAX_TARGETS: usize = 100;
/// Longest ack window an activation may ask for, in seconds (one day).
pub const MAX_ACK_WITHIN_S: u32 = 86_400;

pub use crate::store::counts;

/// True when an operator with jurisdiction `scope` may see the incident: every target
/// lies inside the scope.
pub fn visible(scope: &str, meta: &IncidentMeta) -> bool {
    meta.within(scope)
}

/// The operator view of an incident.
pub fn detail(snap: &IncidentSnapshot) -> IncidentDetail {
    let mut grids: BTreeMap<&GridCode, GridRollup> = BTreeMap::new();
    for r in snap.recipients.iter() {
        let g = grids.entry(&r.grid).or_insert_with(|| GridRollup {
            code: r.grid.clone(),
            recipients: 0,
            delivered: 0,
            accepted: 0,
            declined: 0,
        });
        g.recipients += 1;
        match r.status {
            Status::Pending => {}
            Status::Delivered => g.delivered += 1,
            Status::Accepted => g.accepted += 1,
            Status::Declined => g.declined += 1,
        }
    }
    IncidentDetail {
        incident: snap.meta.view(),
        counts: counts(&snap.recipients),
        grids: grids.into_values().collect(),
    }
}

/// A recipient row of the operator API.
pub fn recipient_row(r: &RecipientState) -> RecipientRow {
    RecipientRow {
        lead: r.lead.clone(),
        grid: r.grid.clone(),
        role: r.role,
        status: r.status,
        delivered_at: r.delivered_at.map(rfc3339),
        acked_at: r.acked_at.map(rfc3339),
    }
}

/// The incident frame a lead gets, with its own status.
pub fn lead_frame(meta: &IncidentMeta, r: &RecipientState) -> Frame {
    encode(&ServerFrame::Incident {
        incident: meta.view(),
        me: Some(Me {
            status: r.status,
            grid: r.grid.clone(),
            role: r.role,
        }),
    })
}

pub(super) fn check_text(field: &str, s: &str, min: usize, max: usize) -> Result<(), Refusal> {
    let n = s.chars().count();
    if n < min || n > max {
        return Err(Refusal::new(
            ErrorCode::BadRequest,
            format!("{field} must have {min} to {max} characters (has {n})"),
        ));
    }
    Ok(())
}

impl Dispatch {
    /// Checks an activation for `operator` and resolves its recipients from the
    /// registry in force; nothing is recorded yet.
    pub(crate) async fn prepare(
        &self,
        operator: &Claims,
        req: CreateIncident,
    ) -> Result<Prepared, Refusal> {
        check_text("title", &req.title, 1, MAX_TITLE)?;
        check_text("body", &req.body, 0, MAX_BODY)?;
        if req.targets.codes.len() > MAX_TARGETS {
            return Err(Refusal::new(
                ErrorCode::BadRequest,
                format!("at most {MAX_TARGETS} target codes"),
            ));
        }
        let window = match req.ack_within_s {
            Some(s) if !(1..=MAX_ACK_WITHIN_S).contains(&s) => {
                return Err(Refusal::new(
                    ErrorCode::BadRequest,
                    format!("ack_within_s must be 1 to {MAX_ACK_WITHIN_S}"),
                ));
            }
            Some(s) => s,
            None => self.config.ack_window_s(req.level),
        };
        if let Some(t) = req
            .targets
            .codes
            .iter()
            .find(|t| !t.as_str().starts_with(&operator.scope))
        {
            return Err(Refusal::new(
                ErrorCode::Forbidden,
                format!(
                    "target {t} is outside your jurisdiction {:?}",
                    operator.scope
                ),
            ));
        }
        let mut req = req;
        let mut targets = std::mem::replace(
            &mut req.targets,
            gridcast_protocol::frame::Targets {
                codes: Vec::new(),
                roles: Vec::new(),
                area: Vec::new(),
            },
        );
        gridcast_protocol::area::check_all(&targets.area)
            .map_err(|e| Refusal::new(ErrorCode::BadRequest, e))?;
        crate::area::normalise(&mut targets.area);
        let mut seen = std::collections::HashSet::new();
        targets.codes.retain(|c| seen.insert(c.clone()));
        targets.roles.sort_by_key(|r| r.as_str());
        targets.roles.dedup();
        // Resolved off the runtime: a county over 100,000 staff or an area over
        // thousands of grid outlines is milliseconds of CPU.
        let (registry, wanted) = (self.registry.current(), targets.clone());
        let Resolved {
            recipients,
            area_grids,
        } = tokio::task::spawn_blocking(move || registry.resolve(&wanted))
            .await
            .map_err(|e| Refusal::new(ErrorCode::Unavailable, e.to_string()))?
            .map_err(|e| Refusal::new(ErrorCode::BadRequest, e.to_string()))?;
        if let Some(g) = area_grids
            .iter()
            .find(|g| !g.as_str().starts_with(&operator.scope))
        {
            return Err(Refusal::new(
                ErrorCode::Forbidden,
                format!(
                    "targets.area reaches grid {g}, outside your jurisdiction {:?}",
                    operator.scope
                ),
            ));
        }
        req.targets = targets;
        Ok(Prepared {
            req,
            window,
            recipients,
            area_grids,
        })
    }

    /// Records a prepared activation durably, with `events` after its `issued` one on
    /// the timeline, then fans it out (span `activation`, with `store` and `publish`).
    #[tracing::instrument(name = "activation", skip_all, fields(operator = %operator.sub))]
    pub(crate) async fn commit(
        &self,
        operator: &Claims,
        prepared: Prepared,
        cap: Option<crate::store::CapOrigin>,
        events: Vec<gridcast_protocol::api::TimelineEvent>,
        approval: Option<String>,
    ) -> Result<CreatedIncident, Refusal> {
        let Prepared {
            req,
            window,
            recipients,
            area_grids,
        } = prepared;
        let now = self.clock.now_ms();
        let new = NewIncident {
            meta: IncidentMeta {
                id: String::new(),
                rev: 0,
                state: IncidentState::Active,
                title: req.title,
                body: req.body,
                level: req.level,
                category: req.category,
                drill: req.drill,
                issued_at: now,
                ack_by: now + u64::from(window) * 1000,
                targets: req.targets,
                area_grids: crate::store::reach_of(&area_grids),
                cap,
                issued_by: operator.sub.clone(),
                closed_at: None,
                fallback: req.drill && req.fallback,
                approval,
            },
            recipients,
            outbox: self.outbox_wanted(),
        };
        let started = Instant::now();
        let snap = self
            .store
            .create_incident(new)
            .instrument(tracing::info_span!("store"))
            .await?;
        // The incident stands once stored: the steps recorded beside it (approval,
        // override) failing now are logged loudly, never answered as "not issued".
        if !events.is_empty() {
            match self.store.add_events(&snap.meta.id, events).await {
                Ok(true) => {}
                Ok(false) | Err(_) => tracing::error!(
                    incident = %snap.meta.id,
                    "approval steps not added to the timeline of an issued incident"
                ),
            }
        }
        let stored = started.elapsed();
        self.metrics.store_seconds.observe(stored);
        self.metrics.incidents_issued.fetch_add(1, Relaxed);
        let online = self
            .fan_out(&snap)
            .instrument(tracing::info_span!("publish", incident = %snap.meta.id))
            .await;
        self.delivery.offline_at_issue(&snap).await;
        let meta = &snap.meta;
        tracing::info!(
            incident = %meta.id, operator = %operator.sub, incident_level = ?meta.level, drill = meta.drill,
            recipients = snap.recipients.len(), online,
            store_ms = stored.as_millis() as u64,
            published_ms = (started.elapsed() - stored).as_millis() as u64,
            "incident issued"
        );
        let codes = meta.route_codes();
        let event = serde_json::json!({
            "incident": meta.view(), "recipients": snap.recipients.len(), "online": online,
            "counts": counts(&snap.recipients),
        });
        self.delivery.console("incident", codes, event).await;
        Ok(CreatedIncident {
            id: meta.id.clone(),
            rev: meta.rev,
            recipients: snap.recipients.len(),
            online,
        })
    }

    /// Applies an operator's update or close to an incident it can see: durable first,
    /// then every recipient gets the new `rev` (closed state included), on every
    /// channel.
    pub(crate) async fn revise(
        &self,
        operator: &Claims,
        id: &str,
        revision: Revision,
        force: bool,
    ) -> Result<IncidentDetail, Refusal> {
        match &revision {
            Revision::Update { body } => check_text("body", body, 1, MAX_BODY)?,
            Revision::Close { reason } => check_text("reason", reason, 1, MAX_NOTE)?,
        }
        let not_found = || Refusal::new(ErrorCode::NotFound, format!("no incident {id:?}"));
        match self.store.incident(id).await? {
            Some(s) if visible(&operator.scope, &s.meta) => {}
            _ => return Err(not_found()),
        }
        if matches!(revision, Revision::Close { .. }) && !force {
            let open: Vec<String> = self
                .store
                .tasks(id)
                .await?
                .into_iter()
                .filter(|t| t.is_open())
                .map(|t| t.view.id)
                .collect();
            if !open.is_empty() {
                return Err(Refusal::new(
                    ErrorCode::Conflict,
                    format!(
                        "{} task(s) still open ({}); finish them or close with \"force\": true",
                        open.len(),
                        open.join(", ")
                    ),
                ));
            }
        }
        let outcome = self
            .store
            .revise(
                id,
                revision,
                &operator.sub,
                self.clock.now_ms(),
                self.outbox_wanted(),
            )
            .await?;
        let snap = match outcome {
            ReviseOutcome::Revised(s) => s,
            ReviseOutcome::NotFound => return Err(not_found()),
            ReviseOutcome::Closed => {
                return Err(Refusal::new(
                    ErrorCode::IncidentClosed,
                    format!("incident {id} is closed"),
                ));
            }
        };
        let meta = &snap.meta;
        tracing::info!(incident = %meta.id, rev = meta.rev, state = ?meta.state, operator = %operator.sub, "incident revised");
        self.fan_out(&snap).await;
        self.delivery.counts_changed(&meta.id);
        Ok(detail(&snap))
    }

    /// Opens an incident from a report the operator can see; the report then names it.
    pub(crate) async fn promote(
        &self,
        operator: &Claims,
        report_id: &str,
        req: PromoteReport,
    ) -> Result<super::approval::Requested, Refusal> {
        let report = self
            .store
            .reports()
            .await?
            .into_iter()
            .find(|r| r.id == report_id && r.grid.as_str().starts_with(&operator.scope))
            .ok_or_else(|| Refusal::new(ErrorCode::NotFound, format!("no report {report_id:?}")))?;
        if let Some(inc) = &report.incident {
            return Err(Refusal::new(
                ErrorCode::Conflict,
                format!("report {report_id} was already promoted to {inc}"),
            ));
        }
        let targets = req
            .targets
            .unwrap_or_else(|| gridcast_protocol::frame::Targets {
                codes: vec![
                    gridcast_protocol::Target::parse(report.grid.as_str())
                        .expect("a grid code is a valid target"),
                ],
                roles: Vec::new(),
                area: Vec::new(),
            });
        let body = format!(
            "{}\n\n(Reported by {} at {}: {}.)",
            report.detail, report.lead, report.at, report.id
        );
        // Under the two-person rule like any activation: a held one is linked to its
        // report when it is approved.
        let requested = self
            .request(
                operator,
                CreateIncident {
                    title: report.title.clone(),
                    body,
                    level: req.level,
                    category: report.category,
                    drill: req.drill,
                    targets,
                    ack_within_s: req.ack_within_s,
                    approval_override: None,
                    fallback: false,
                },
                None,
            )
            .await?;
        let created = match requested {
            super::approval::Requested::Issued(c) => c,
            super::approval::Requested::Held(mut a) => {
                a.report = Some(report_id.to_owned());
                self.store
                    .update_approval(&a, gridcast_protocol::api::ApprovalState::PendingApproval)
                    .await?;
                return Ok(super::approval::Requested::Held(a));
            }
        };
        if !self.store.link_report(report_id, &created.id).await? {
            tracing::warn!(report = report_id, incident = %created.id, "report was promoted twice at once");
        }
        Ok(super::approval::Requested::Issued(created))
    }

    /// Applies a lead's receipt or ack, which came from the session `origin` (if a
    /// session of this node). Resolves only once the change is durable.
    pub(crate) async fn mark(
        &self,
        lead: &str,
        incident: &str,
        mark: Mark,
        origin: Option<u64>,
    ) -> Result<(), Refusal> {
        if let Mark::Ack { note: Some(n), .. } = &mark {
            check_text("note", n, 0, MAX_NOTE)?;
        }
        let is_ack = matches!(mark, Mark::Ack { .. });
        let started = Instant::now();
        let outcome = self
            .store
            .mark(incident, lead, mark, self.clock.now_ms())
            .instrument(tracing::info_span!("store"))
            .await?;
        if let Some((meta, state)) = self.marked(incident, is_ack, outcome, started)?
            && is_ack
        {
            // Every other device of the lead learns the new answer.
            self.delivery.status(meta, state, origin).await;
        }
        Ok(())
    }

    /// What a recorded mark means (counted, the console told), whichever way it was
    /// recorded: the new state if it changed, or the lead's refusal.
    pub(crate) fn marked(
        &self,
        incident: &str,
        is_ack: bool,
        outcome: MarkOutcome,
        started: Instant,
    ) -> Result<Option<(Arc<IncidentMeta>, RecipientState)>, Refusal> {
        match outcome {
            MarkOutcome::Changed(meta, state) => {
                self.metrics.store_seconds.observe(started.elapsed());
                let since_issue = |t: Option<u64>| {
                    t.map(|t| Duration::from_millis(t.saturating_sub(meta.issued_at)))
                };
                // An ack that came before any receipt delivered it too.
                let delivered_now = !is_ack || state.delivered_at == state.acked_at;
                if let Some(d) = since_issue(state.delivered_at).filter(|_| delivered_now) {
                    self.metrics.deliver_seconds.observe(d);
                }
                if let Some(d) = since_issue(state.acked_at).filter(|_| is_ack) {
                    self.metrics.ack_seconds.observe(d);
                }
                self.delivery.counts_changed(&meta.id);
                let counter = if is_ack {
                    &self.metrics.acks
                } else {
                    &self.metrics.receipts
                };
                counter.fetch_add(1, Relaxed);
                Ok(Some((meta, state)))
            }
            MarkOutcome::Unchanged(..) => Ok(None),
            MarkOutcome::NotFound | MarkOutcome::NotRecipient => Err(Refusal::new(
                ErrorCode::NotRecipient,
                format!("you are not a recipient of incident {incident:?}"),
            )),
            MarkOutcome::Closed => Err(Refusal::new(
                ErrorCode::IncidentClosed,
                format!("incident {incident} is closed"),
            )),
            MarkOutcome::TooManyAnswers => Err(Refusal::new(
                ErrorCode::RateLimited,
                format!(
                    "your answer to {incident} was changed {} times; the last one stands (call the command center to change it)",
                    crate::store::MAX_ANSWERS
                ),
            )),
        }
    }

    /// The incident frames of a lead's sync: every active incident it is a recipient of
    /// and every one closed within the configured hours, with its own status.
    pub(crate) async fn sync_frames(&self, lead: &str) -> Result<Vec<Frame>, StoreError> {
        let since = self
            .clock
            .now_ms()
            .saturating_sub(self.config.closed_sync_hours * 3_600_000);
        let list = self.store.sync_for_lead(lead, since).await?;
        let mut frames: Vec<Frame> = list
            .iter()
            .map(|(meta, r, _)| lead_frame(meta, r))
            .collect();
        // Then one task frame per open task of theirs (DESIGN.md §3).
        for (_, r, tasks) in &list {
            frames.extend(crate::task::task_frames(tasks, r));
        }
        Ok(frames)
    }
}
