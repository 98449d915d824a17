//! Escalation of missed acks (DESIGN.md §3): at `ack_by` every silent recipient is
//! notified again and its grid's lead gets an `escalation` frame (step 1; for a
//! micro-grid, the lead of its parent grid); one window later the grid's instructor
//! (step 2); one more window later the console is alerted (step 3). An ack at any point
//! takes the lead out of the chain.
//!
//! Due times come from the store (`ack_by` + steps done), never from one node's memory:
//! a ticker on every node claims due steps with a lease, and a step is recorded durably
//! (with its timeline events) *before* its frames go out, by whichever node gets there
//! first — so a restart or a node death neither loses nor doubles a step.

use std::time::Duration;

use gridcast_protocol::api::TimelineEvent;
use gridcast_protocol::frame::ServerFrame;
use gridcast_protocol::model::IncidentState;
use gridcast_protocol::time::rfc3339;
use gridcast_protocol::{GridCode, Role, Status};

use super::Dispatch;
use crate::incident::lead_frame;
use crate::session::{Frame, encode};
use crate::store::escalation_due;

/// How often each node looks for due steps.
pub(crate) const TICK: Duration = Duration::from_millis(200);
/// How long a claimed step is left to the node that claimed it.
const LEASE_MS: u64 = 30_000;
/// Most silent leads named in one console alert.
const ALERT_NAMES: usize = 50;

/// The grid whose lead and instructor answer for `grid` (a micro-grid's parent).
fn parent(grid: &GridCode) -> GridCode {
    if grid.as_str().len() > 16 {
        GridCode::parse(&grid.as_str()[..16]).unwrap_or_else(|_| grid.clone())
    } else {
        grid.clone()
    }
}

/// Runs until shutdown: claims due steps and carries them out.
pub(crate) async fn ticker(core: Dispatch) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = core.shutdown.cancelled() => return,
        }
        let now = core.clock.now_ms();
        let due = match core.store.escalations_due(now, LEASE_MS).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "escalation check failed");
                continue;
            }
        };
        for (id, step) in due {
            core.escalate(&id, step).await;
        }
    }
}

/// The people assigned to `grid` in `role` (its grid lead, its instructor).
fn responsible(
    registry: &crate::registry::RegistryIndex,
    grid: &GridCode,
    role: Role,
) -> Vec<String> {
    registry
        .people_in(grid)
        .filter(|p| {
            registry.person(p).is_some_and(|p| {
                p.assignments
                    .iter()
                    .any(|a| a.grid == *grid && a.role == role)
            })
        })
        .map(str::to_owned)
        .collect()
}

impl Dispatch {
    /// Carries out one escalation step of an incident, or of an overdue task when `id`
    /// is a task id (see the module docs).
    pub(crate) async fn escalate(&self, id: &str, step: u8) {
        if let Some((incident, _)) = crate::store::task_key(id) {
            return self.escalate_task(id, incident, step).await;
        }
        let snap = match self.store.incident(id).await {
            Ok(Some(s)) => s,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(incident = id, error = %e, "escalation: store unavailable");
                return;
            }
        };
        let meta = &snap.meta;
        let now = self.clock.now_ms();
        let next_due = (step < 3 && meta.state == IncidentState::Active)
            .then(|| escalation_due(meta, step + 1));
        if meta.state != IncidentState::Active {
            let _ = self.store.escalation_done(id, step, Vec::new(), None).await;
            return;
        }
        let silent: Vec<_> = snap
            .recipients
            .iter()
            // The service team is never part of the escalation chain (Art. 21).
            .filter(|r| {
                matches!(r.status, Status::Pending | Status::Delivered)
                    && r.role != gridcast_protocol::Role::ServiceTeam
            })
            .collect();
        let registry = self.registry.current();
        let mut events = Vec::new();
        let mut sends: Vec<(String, Frame)> = Vec::new();
        let event = |lead: Option<&str>, kind: &str, detail: String| TimelineEvent {
            at: rfc3339(now),
            kind: kind.into(),
            actor: "hub".into(),
            lead: lead.map(str::to_owned),
            detail: Some(detail),
            place: None,
            satisfaction: None,
        };
        let drill = if meta.drill { " (drill)" } else { "" };
        match step {
            1 | 2 => {
                let role = if step == 1 {
                    Role::GridLead
                } else {
                    Role::Instructor
                };
                for r in &silent {
                    let grid = parent(&r.grid);
                    let to = responsible(&registry, &grid, role);
                    let frame = encode(&ServerFrame::Escalation {
                        incident: meta.id.clone(),
                        lead: r.lead.clone(),
                        grid: r.grid.clone(),
                        role: r.role,
                        step,
                        drill: meta.drill,
                    });
                    for t in &to {
                        sends.push((t.clone(), frame.clone()));
                    }
                    let whom = if to.is_empty() {
                        format!("no {} registered for {grid}", role.as_str())
                    } else {
                        format!("{} {}", role.as_str(), to.join(", "))
                    };
                    let detail = if step == 1 {
                        sends.push((r.lead.clone(), lead_frame(meta, r)));
                        format!("step 1{drill}: re-notified; {whom}")
                    } else {
                        format!("step 2{drill}: {whom}")
                    };
                    events.push(event(Some(&r.lead), "escalated", detail));
                }
            }
            _ => {
                if !silent.is_empty() {
                    let names: Vec<&str> = silent
                        .iter()
                        .take(ALERT_NAMES)
                        .map(|r| r.lead.as_str())
                        .collect();
                    events.push(event(
                        None,
                        "alerted",
                        format!(
                            "step 3{drill}: {} silent: {}",
                            silent.len(),
                            names.join(", ")
                        ),
                    ));
                }
            }
        }
        // The fallback channel's messages for the silent are queued before the step is
        // recorded (queuing twice is harmless: a message is queued once per id).
        if step == 1
            && let Err(e) = self.delivery.silent(&snap, &silent).await
        {
            tracing::warn!(incident = id, error = %e, "fallback messages not queued; the step is retried after the lease");
            return;
        }
        // Durable first: whoever records the step sends it; nobody sends it twice.
        match self.store.escalation_done(id, step, events, next_due).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(incident = id, error = %e, "escalation step not recorded; retried after the lease");
                return;
            }
        }
        if silent.is_empty() {
            return;
        }
        tracing::info!(
            incident = id,
            step,
            silent = silent.len(),
            drill = meta.drill,
            "escalation step"
        );
        for (lead, frame) in sends {
            self.delivery.to_lead(lead, frame).await;
        }
        let codes = meta.route_codes();
        let data = serde_json::json!({
            "incident": meta.id, "title": meta.title, "at": rfc3339(now), "step": step,
            "drill": meta.drill,
            "silent": silent.iter().take(ALERT_NAMES).map(|r| &r.lead).collect::<Vec<_>>(),
            "silent_count": silent.len(),
        });
        self.delivery.console("escalation", codes, data).await;
    }
}

impl Dispatch {
    /// An open task past its due time: step 1 sends it again to the leads concerned and
    /// to the grid lead, step 2 to the instructor, step 3 alerts the console; done,
    /// failed or declined tasks leave the chain.
    async fn escalate_task(&self, key: &str, incident: &str, step: u8) {
        let (snap, tasks) = match (
            self.store.incident(incident).await,
            self.store.tasks(incident).await,
        ) {
            (Ok(Some(s)), Ok(t)) => (s, t),
            (Ok(None), _) => return,
            _ => {
                tracing::warn!(task = key, "task escalation: store unavailable");
                return;
            }
        };
        let task = tasks.into_iter().find(|t| t.view.id == key);
        let Some(task) = task.filter(|t| t.is_open() && snap.meta.state == IncidentState::Active)
        else {
            let _ = self
                .store
                .escalation_done(key, step, Vec::new(), None)
                .await;
            return;
        };
        let meta = &snap.meta;
        let grid = match &task.view.assignee {
            gridcast_protocol::frame::Assignee::Grid(g) => Some(parent(g)),
            gridcast_protocol::frame::Assignee::Lead(l) => snap
                .recipients
                .iter()
                .find(|r| r.lead == *l)
                .map(|r| parent(&r.grid)),
        };
        let registry = self.registry.current();
        // The task's own people get it whole; a grid lead or instructor who is told of it
        // gets its kind, assignee, due time and status, not its text (which may name
        // residents: personal data stays with the people doing the task).
        let concerned = crate::task::concerned(&task.view, &snap.recipients);
        let frame = encode(&ServerFrame::Task {
            task: task.view.clone(),
        });
        let kind_name = registry
            .registry
            .task_kinds
            .iter()
            .find(|k| k.id == task.view.kind)
            .map_or_else(|| task.view.kind.clone(), |k| k.name.clone());
        let outline = encode(&ServerFrame::Task {
            task: gridcast_protocol::frame::TaskView {
                title: format!("{kind_name} ({})", task.view.id),
                detail: String::new(),
                ..task.view.clone()
            },
        });
        let mut sends: Vec<String> = Vec::new();
        let whom = match (step, &grid) {
            (1 | 2, Some(grid)) => {
                let role = if step == 1 {
                    Role::GridLead
                } else {
                    Role::Instructor
                };
                if step == 1 {
                    sends.extend(concerned.iter().cloned());
                }
                let to = responsible(&registry, grid, role);
                sends.extend(to.iter().cloned());
                if to.is_empty() {
                    format!("no {} registered for {grid}", role.as_str())
                } else {
                    format!("{} {}", role.as_str(), to.join(", "))
                }
            }
            _ => "console alerted".to_owned(),
        };
        let drill = if meta.drill { " (drill)" } else { "" };
        let event = TimelineEvent {
            at: rfc3339(self.clock.now_ms()),
            kind: "task_overdue".into(),
            actor: "hub".into(),
            lead: task.accepted_by.clone(),
            detail: Some(format!("{} step {step}{drill}: {whom}", task.view.id)),
            place: None,
            satisfaction: None,
        };
        let next_due = (step < 3).then(|| task.escalation_due(step + 1));
        match self
            .store
            .escalation_done(key, step, vec![event], next_due)
            .await
        {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(task = key, error = %e, "task escalation not recorded; retried after the lease");
                return;
            }
        }
        tracing::info!(
            task = key,
            step,
            drill = meta.drill,
            "overdue task escalated"
        );
        for lead in sends {
            let frame = if concerned.contains(&lead) {
                frame.clone()
            } else {
                outline.clone()
            };
            self.delivery.to_lead(lead, frame).await;
        }
        let codes = meta.route_codes();
        let data = serde_json::json!({
            "incident": meta.id, "title": meta.title, "at": rfc3339(self.clock.now_ms()),
            "task": task.view.id, "step": step, "drill": meta.drill,
        });
        self.delivery.console("escalation", codes, data).await;
    }
}
