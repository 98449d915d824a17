//! The store's state in memory, and the rules that decide a change on it. The readers'
//! copy and the writer's own copy are both a [`State`].

use std::collections::HashMap;
use std::sync::Arc;

use gridcast_protocol::api::{ReportView, TimelineEvent};
use gridcast_protocol::frame::TaskStatus;
use gridcast_protocol::model::IncidentState;

use super::log::Record;
use crate::store::{
    Compacted, IncidentMeta, IncidentSnapshot, Mark, MarkOutcome, RecipientState, TaskOutcome,
    TaskRecord, answers_used_up, apply_mark, apply_revision, apply_task_update, issue_state,
    mark_event, task_event, task_key,
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
    /// The highest report number given out.
    pub(super) report_seq: u64,
    /// Reports in the order taken.
    pub(super) reports: Vec<ReportView>,
    /// Requests held under the two-person rule, in the order asked.
    pub(super) approvals: Vec<gridcast_protocol::api::Approval>,
    /// Escalation steps done per incident.
    pub(super) escalated: HashMap<String, u8>,
    /// Fallback messages by id (their incident kept, they are kept).
    pub(super) fallback: std::collections::BTreeMap<String, crate::store::FallbackRecord>,
    /// The queued and claimed ones by when they are next due.
    pub(super) fallback_due: std::collections::BTreeSet<(u64, String)>,
    /// Escalation claims (not persisted: a restart may act at once).
    pub(super) leases: HashMap<String, u64>,
}

/// The number of an id such as `INC-000042` or `REP-000042`.
fn number(id: &str, prefix: &str) -> Option<u64> {
    id.strip_prefix(prefix)?.parse().ok()
}

fn report_number(id: &str) -> Option<u64> {
    number(id, "REP-")
}

impl State {
    /// Adds an incident with its recipients' states, timeline and tasks.
    fn insert(
        &mut self,
        meta: IncidentMeta,
        rs: Vec<RecipientState>,
        timeline: Vec<TimelineEvent>,
        tasks: Vec<TaskRecord>,
    ) {
        if let Some(n) = number(&meta.id, "INC-") {
            self.seq = self.seq.max(n);
        }
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
                timeline,
                tasks,
            },
        );
    }

    /// True when some closed incident was closed before `cutoff`, or some report taken
    /// before it (what a compaction would let go).
    pub(super) fn has_expired(&self, cutoff: u64) -> bool {
        self.incidents.values().any(|e| {
            e.meta.state == IncidentState::Closed && e.meta.closed_at.is_some_and(|t| t < cutoff)
        }) || self
            .reports
            .iter()
            .any(|r| gridcast_protocol::time::parse_rfc3339(&r.at).is_some_and(|t| t < cutoff))
    }

    /// The records of a log that holds this state whole, without the closed incidents
    /// closed before `cutoff` (Unix ms) and the reports taken before it.
    pub(super) fn compacted(&self, cutoff: u64) -> (Vec<Record>, Compacted) {
        let mut dropped = Compacted::default();
        let mut records = vec![Record::Seq {
            incidents: self.seq,
            reports: self.report_seq,
        }];
        for id in &self.order {
            let Some(e) = self.incidents.get(id) else {
                continue;
            };
            if e.meta.state == IncidentState::Closed && e.meta.closed_at.is_some_and(|t| t < cutoff)
            {
                dropped.incidents += 1;
                continue;
            }
            let outbox = self
                .outbox
                .iter()
                .filter(|((i, _), _)| i == id)
                .map(|((_, rev), since)| (*rev, *since))
                .collect();
            records.push(Record::Snapshot {
                meta: (*e.meta).clone(),
                recipients: (*e.recipients).clone(),
                timeline: e.timeline.clone(),
                tasks: e.tasks.clone(),
                escalated: self.escalated.get(id).copied().unwrap_or(0),
                outbox,
            });
        }
        // Held requests are few and the record of who asked and who decided: all kept.
        for a in &self.approvals {
            records.push(Record::Approval {
                approval: a.clone(),
            });
        }
        // A fallback message goes with its incident.
        let kept: std::collections::HashSet<String> = records
            .iter()
            .filter_map(|r| match r {
                Record::Snapshot { meta, .. } => Some(meta.id.clone()),
                _ => None,
            })
            .collect();
        for f in self
            .fallback
            .values()
            .filter(|f| kept.contains(&f.incident))
        {
            records.push(Record::Fallback { record: f.clone() });
        }
        for r in &self.reports {
            let taken = gridcast_protocol::time::parse_rfc3339(&r.at).unwrap_or(u64::MAX);
            if taken < cutoff {
                dropped.reports += 1;
                continue;
            }
            records.push(Record::Report { report: r.clone() });
        }
        (records, dropped)
    }

    pub(super) fn apply(&mut self, record: Record) {
        match record {
            Record::OutboxDone { incident, rev } => {
                self.outbox.remove(&(incident, rev));
            }
            Record::Report { report } => {
                if let Some(n) = report_number(&report.id) {
                    self.report_seq = self.report_seq.max(n);
                }
                self.reports.push(report);
            }
            Record::Seq { incidents, reports } => {
                self.seq = self.seq.max(incidents);
                self.report_seq = self.report_seq.max(reports);
            }
            Record::Snapshot {
                meta,
                recipients,
                timeline,
                tasks,
                escalated,
                outbox,
            } => {
                for (rev, since) in outbox {
                    self.outbox.insert((meta.id.clone(), rev), since);
                }
                if escalated > 0 {
                    self.escalated.insert(meta.id.clone(), escalated);
                }
                self.insert(meta, recipients, timeline, tasks);
            }
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
            Record::Approval { approval } => {
                match self.approvals.iter_mut().find(|a| a.id == approval.id) {
                    Some(a) => *a = approval,
                    None => self.approvals.push(approval),
                }
            }
            Record::Fallback { record } => {
                if let Some(old) = self.fallback.get(&record.id) {
                    self.fallback_due.remove(&(old.next_at, old.id.clone()));
                }
                if record.state.is_due_kind() {
                    self.fallback_due
                        .insert((record.next_at, record.id.clone()));
                }
                self.fallback.insert(record.id.clone(), record);
            }
            Record::Events { incident, events } => {
                if let Some(e) = self.incidents.get_mut(&incident) {
                    e.timeline.extend(events);
                }
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
                let (rs, issued) = issue_state(&meta, recipients);
                self.insert(meta, rs, vec![issued], Vec::new());
            }
            Record::Mark {
                incident,
                lead,
                mark,
                at,
            } => self.mark(&incident, &lead, &mark, at),
        }
    }

    /// Applies a record it only borrows: a mark (what most records are) without copying
    /// it, anything else through [`State::apply`].
    pub(super) fn apply_ref(&mut self, record: &Record) {
        match record {
            Record::Mark {
                incident,
                lead,
                mark,
                at,
            } => self.mark(incident, lead, mark, *at),
            other => self.apply(other.clone()),
        }
    }

    fn mark(&mut self, incident: &str, lead: &str, mark: &Mark, at: u64) {
        let Some(e) = self.incidents.get_mut(incident) else {
            return;
        };
        let Some(&i) = e.index.get(lead) else { return };
        if let Some(next) = apply_mark(&e.recipients[i], mark, at) {
            Arc::make_mut(&mut e.recipients)[i] = next;
            e.timeline.push(mark_event(lead, mark, at));
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
