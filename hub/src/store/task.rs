//! Tasks as every store keeps them, and the rules of a task's changes (first accept
//! wins, a no to a grid task leaves it to the others), shared by both stores.

use gridcast_protocol::api::TimelineEvent;
use gridcast_protocol::frame::{Assignee, TaskStatus, TaskView};
use gridcast_protocol::time::rfc3339;
use serde::{Deserialize, Serialize};

/// A task as stored: its view plus who holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// The wire view (`rev` grows with each change).
    pub view: TaskView,
    /// The lead who accepted it (first accept wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_by: Option<String>,
    /// The operator who created it.
    pub created_by: String,
    /// The latest result note or reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The lead who made the latest change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note_by: Option<String>,
    /// When it was created (Unix ms); its due time minus this is its escalation window.
    #[serde(default)]
    pub created_ms: u64,
    /// Overdue escalation steps done.
    #[serde(default)]
    pub escalated: u8,
    /// Leads of the grid who said no to an open grid task (a second no from one of
    /// them changes nothing, so it cannot grow the timeline).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub declined_by: Vec<String>,
}

impl TaskRecord {
    /// Open or accepted: blocks a close without `force`.
    pub fn is_open(&self) -> bool {
        matches!(self.view.status, TaskStatus::Open | TaskStatus::Accepted)
    }

    /// When overdue escalation step `step` (1..=3) is due: at the due time, then one
    /// window (due − created, at least a second) per step, as for acks.
    pub fn escalation_due(&self, step: u8) -> u64 {
        let due = gridcast_protocol::time::parse_rfc3339(&self.view.due_at).unwrap_or(u64::MAX / 4);
        let window = due.saturating_sub(self.created_ms).max(1_000);
        due + u64::from(step.saturating_sub(1)) * window
    }
}

/// True when an escalation key names a task (`INC-…-T<n>`) rather than an incident.
pub fn task_key(key: &str) -> Option<(&str, &str)> {
    key.rsplit_once("-T").map(|(incident, _)| (incident, key))
}

/// Why a task update was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskRefusal {
    /// Another lead accepted it first.
    Taken(String),
    /// Not possible in the task's state.
    Conflict(String),
}

/// What a task change did.
#[derive(Debug, Clone)]
pub enum TaskOutcome {
    /// Recorded durably.
    Changed(TaskRecord),
    /// Nothing to record (a retry); already durable.
    Unchanged(TaskRecord),
    /// No such incident or task.
    NotFound,
    /// The incident is closed.
    Closed,
    /// Refused by the task rules.
    Refused(TaskRefusal),
}

/// A lead's task update under the contract's rules, shared by every store: the first
/// accept wins; done/failed by the holder (an open task is taken by doing it); a lead
/// task declined goes back to the command center, a grid task declined by one lead
/// stays open for the others. `Ok(None)` is a retry with nothing to change.
pub fn apply_task_update(
    task: &TaskRecord,
    lead: &str,
    status: TaskStatus,
    note: Option<String>,
) -> Result<Option<TaskRecord>, TaskRefusal> {
    let current = task.view.status;
    let held_by_other = task.accepted_by.as_deref().is_some_and(|h| h != lead);
    let mut next = task.clone();
    next.view.rev += 1;
    if note.is_some() {
        next.note = note;
    }
    let terminal = matches!(
        current,
        TaskStatus::Done | TaskStatus::Failed | TaskStatus::Declined
    );
    match status {
        TaskStatus::Open => {
            return Err(TaskRefusal::Conflict(
                "a task cannot be set back to open".into(),
            ));
        }
        _ if current == status
            && !held_by_other
            && (status != TaskStatus::Declined || terminal) =>
        {
            return Ok(None);
        }
        _ if terminal => {
            return Err(TaskRefusal::Conflict(format!(
                "task {} is already {}",
                task.view.id,
                crate::store::task_status_name(current)
            )));
        }
        _ if held_by_other => {
            return Err(TaskRefusal::Taken(
                task.accepted_by.clone().unwrap_or_default(),
            ));
        }
        TaskStatus::Accepted => {
            next.view.status = TaskStatus::Accepted;
            next.accepted_by = Some(lead.to_owned());
        }
        TaskStatus::Done | TaskStatus::Failed => {
            next.view.status = status;
            next.accepted_by = Some(lead.to_owned());
        }
        TaskStatus::Declined => match (&task.view.assignee, current) {
            // One lead of the grid says no: the others may still take it. Saying it
            // again is a retry.
            (Assignee::Grid(_), TaskStatus::Open) => {
                if task.declined_by.iter().any(|l| l == lead) {
                    return Ok(None);
                }
                next.declined_by.push(lead.to_owned());
            }
            _ => {
                next.view.status = TaskStatus::Declined;
                next.accepted_by = None;
            }
        },
    }
    Ok(Some(next))
}

/// Wire name of a task status.
pub fn task_status_name(s: TaskStatus) -> &'static str {
    match s {
        TaskStatus::Open => "open",
        TaskStatus::Accepted => "accepted",
        TaskStatus::Done => "done",
        TaskStatus::Failed => "failed",
        TaskStatus::Declined => "declined",
    }
}

/// The timeline event of a task change.
pub fn task_event(task: &TaskRecord, actor: &str, lead: Option<&str>, at: u64) -> TimelineEvent {
    let what = match task.view.status {
        TaskStatus::Open if task.view.rev == 1 => "created",
        s => task_status_name(s),
    };
    let mut detail = format!("{} {} ({})", task.view.id, what, task.view.kind);
    if let Some(n) = task.note.as_deref().filter(|n| !n.is_empty()) {
        detail.push_str(": ");
        detail.push_str(n);
    }
    TimelineEvent {
        at: rfc3339(at),
        kind: "task".into(),
        actor: actor.into(),
        lead: lead.map(str::to_owned),
        detail: Some(detail),
        place: None,
        satisfaction: None,
    }
}
