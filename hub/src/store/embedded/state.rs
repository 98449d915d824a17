//! The store's state in memory, and the rules that decide a change on it. The readers'
//! copy and the writer's own copy are both a [`State`].

use std::collections::HashMap;
use std::sync::Arc;

use gridcast_protocol::api::{ReportView, TimelineEvent};
use gridcast_protocol::frame::TaskStatus;
use gridcast_protocol::model::IncidentState;

use super::log::Record;
use crate::store::{
    IncidentMeta, IncidentSnapshot, Mark, MarkOutcome, RecipientState, TaskOutcome, TaskRecord,
    answers_used_up, apply_mark, apply_revision, apply_task_update, issue_state, mark_event,
    task_event, task_key,
};

pub(super) struct Entry {
    pub(super) meta: Arc<IncidentMeta>,
    pub(super) recipients: Arc<Vec<RecipientState>>,
    pub(super) index: HashMap<String, usize>,
    pub(super) timeline: Vec<TimelineEvent>,
    pub(super) tasks: Vec<TaskRecord>,
}

impl Clone for Entry {
    /// A copy that shares nothing mutable: the writer's copy and the readers' state
    /// each change their own recipients in place (`Arc::make_mut`) without copying the
    /// other's. `meta` is replaced, never changed in place, so it is shared.
    fn clone(&self) -> Self {
        Self {
            meta: self.meta.clone(),
            recipients: Arc::new((*self.recipients).clone()),
            index: self.index.clone(),
            timeline: self.timeline.clone(),
            tasks: self.tasks.clone(),
        }
    }
}

#[derive(Default, Clone)]
pub(super) struct State {
    pub(super) seq: u64,
    pub(super) incidents: HashMap<String, Entry>,
    /// Incident ids in issue order.
    pub(super) order: Vec<String>,
    pub(super) by_lead: HashMap<String, Vec<String>>,
    /// (incident, rev) → pending since (Unix ms).
    pub(super) outbox: HashMap<(String, u64), u64>,
    /// Reports in the order taken.
    pub(super) reports: Vec<ReportView>,
    /// Escalation steps done per incident.
    pub(super) escalated: HashMap<String, u8>,
    /// Escalation claims (not persisted: a restart may act at once).
    pub(super) leases: HashMap<String, u64>,
}

impl State {
    pub(super) fn apply(&mut self, record: Record) {
        match record {
            Record::OutboxDone { incident, rev } => {
                self.outbox.remove(&(incident, rev));
            }
            Record::Report { report } => self.reports.push(report),
            Record::Task {
                incident,
                task,
                actor,
                lead,
                at,
            } => {
                if let Some(e) = self.incidents.get_mut(&incident) {
                    e.timeline
                        .push(task_event(&task, &actor, lead.as_deref(), at));
                    match e.tasks.iter_mut().find(|t| t.view.id == task.view.id) {
                        Some(t) => *t = task,
                        None => e.tasks.push(task),
                    }
                }
            }
            Record::Escalated {
                incident,
                step,
                events,
            } => {
                if let Some((inc, task)) = task_key(&incident) {
                    if let Some(e) = self.incidents.get_mut(inc) {
                        e.timeline.extend(events);
                        if let Some(t) = e.tasks.iter_mut().find(|t| t.view.id == task) {
                            t.escalated = step;
                        }
                    }
                    return;
                }
                if let Some(e) = self.incidents.get_mut(&incident) {
                    e.timeline.extend(events);
                }
                self.escalated.insert(incident, step);
            }
            Record::ReportLinked { report, incident } => {
                if let Some(r) = self.reports.iter_mut().find(|r| r.id == report) {
                    r.incident.get_or_insert(incident);
                }
            }
            Record::Revise {
                incident,
                revision,
                by,
                at,
                outbox,
            } => {
                let Some(e) = self.incidents.get_mut(&incident) else {
                    return;
                };
                if e.meta.state == IncidentState::Closed {
                    return;
                }
                let (meta, event) = apply_revision(&e.meta, &revision, &by, at);
                if outbox {
                    self.outbox.insert((incident, meta.rev), at);
                }
                e.meta = Arc::new(meta);
                e.timeline.push(event);
            }
            Record::Incident {
                meta,
                recipients,
                outbox,
            } => {
                if outbox {
                    self.outbox
                        .insert((meta.id.clone(), meta.rev), meta.issued_at);
                }
                if let Some(n) = meta
                    .id
                    .strip_prefix("INC-")
                    .and_then(|n| n.parse::<u64>().ok())
                {
                    self.seq = self.seq.max(n);
                }
                let (rs, issued) = issue_state(&meta, recipients);
                let mut index = HashMap::with_capacity(rs.len());
                for (i, r) in rs.iter().enumerate() {
                    self.by_lead
                        .entry(r.lead.clone())
                        .or_default()
                        .push(meta.id.clone());
                    index.insert(r.lead.clone(), i);
                }
                self.order.push(meta.id.clone());
                self.incidents.insert(
                    meta.id.clone(),
                    Entry {
                        meta: Arc::new(meta),
                        recipients: Arc::new(rs),
                        index,
                        timeline: vec![issued],
                        tasks: Vec::new(),
                    },
                );
            }
            Record::Mark {
                incident,
                lead,
                mark,
                at,
            } => {
                let Some(e) = self.incidents.get_mut(&incident) else {
                    return;
                };
                let Some(&i) = e.index.get(&lead) else { return };
                if let Some(next) = apply_mark(&e.recipients[i], &mark, at) {
                    Arc::make_mut(&mut e.recipients)[i] = next;
                    e.timeline.push(mark_event(&lead, &mark, at));
                }
            }
        }
    }

    /// Decides a mark without applying it.
    pub(super) fn judge(
        &self,
        incident: &str,
        lead: &str,
        mark: &Mark,
        at: u64,
    ) -> (MarkOutcome, bool) {
        let Some(e) = self.incidents.get(incident) else {
            return (MarkOutcome::NotFound, false);
        };
        let Some(&i) = e.index.get(lead) else {
            return (MarkOutcome::NotRecipient, false);
        };
        let current = &e.recipients[i];
        if e.meta.state == IncidentState::Closed && matches!(mark, Mark::Ack { .. }) {
            return (MarkOutcome::Closed, false);
        }
        if answers_used_up(current, mark) {
            return (MarkOutcome::TooManyAnswers, false);
        }
        match apply_mark(current, mark, at) {
            Some(next) => (MarkOutcome::Changed(e.meta.clone(), next), true),
            None => (
                MarkOutcome::Unchanged(e.meta.clone(), current.clone()),
                false,
            ),
        }
    }

    pub(super) fn judge_task(&self, incident: &str, change: TaskChange) -> TaskOutcome {
        let Some(e) = self.incidents.get(incident) else {
            return TaskOutcome::NotFound;
        };
        if e.meta.state == IncidentState::Closed {
            return TaskOutcome::Closed;
        }
        match change {
            TaskChange::Create(task) => {
                let mut task = *task;
                task.view.id = format!("{incident}-T{}", e.tasks.len() + 1);
                task.view.rev = 1;
                TaskOutcome::Changed(task)
            }
            TaskChange::Update {
                task,
                lead,
                status,
                note,
            } => {
                let Some(t) = e.tasks.iter().find(|t| t.view.id == task) else {
                    return TaskOutcome::NotFound;
                };
                match apply_task_update(t, &lead, status, note) {
                    Ok(Some(mut next)) => {
                        next.note_by = Some(lead);
                        TaskOutcome::Changed(next)
                    }
                    Ok(None) => TaskOutcome::Unchanged(t.clone()),
                    Err(r) => TaskOutcome::Refused(r),
                }
            }
        }
    }

    pub(super) fn snapshot(&self, id: &str) -> Option<IncidentSnapshot> {
        self.incidents.get(id).map(|e| IncidentSnapshot {
            meta: e.meta.clone(),
            recipients: e.recipients.clone(),
        })
    }
}

/// A task change for the writer to judge and apply.
pub(super) enum TaskChange {
    Create(Box<TaskRecord>),
    Update {
        task: String,
        lead: String,
        status: TaskStatus,
        note: Option<String>,
    },
}

/// Who made a task's latest change (the lead who holds or answered it).
pub(super) fn last_actor(task: &TaskRecord) -> String {
    task.note_by
        .clone()
        .or_else(|| task.accepted_by.clone())
        .unwrap_or_default()
}
