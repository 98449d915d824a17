//! Assistance tasks (DESIGN.md §3; Art. 11–13): created by operators from the published
//! task-kind list for a lead or a grid, answered by leads with `task_update`. The rules
//! (first accept wins, …) are the store's ([`crate::store::apply_task_update`]), applied
//! atomically; here: checks, who is concerned, and the `task` frames.

use gridcast_protocol::ErrorCode;
use gridcast_protocol::api::{CreateTask, CreatedTask};
use gridcast_protocol::frame::{Assignee, ServerFrame, TaskStatus, TaskView};
use gridcast_protocol::time::rfc3339;

use super::Dispatch;
use crate::auth::Claims;
use crate::incident::{MAX_BODY, MAX_NOTE, MAX_TITLE, Refusal, visible};
use crate::session::{Frame, encode};
use crate::store::{RecipientState, TaskOutcome, TaskRecord, TaskRefusal};

/// Default time to do a task.
const DEFAULT_DUE_S: u32 = 3_600;
/// Longest a task may be given.
pub(crate) const MAX_DUE_S: u32 = 7 * 86_400;

/// The leads a task concerns: the assigned lead, or every recipient whose assignment
/// lies in the assigned grid.
pub(crate) fn concerned(task: &TaskView, recipients: &[RecipientState]) -> Vec<String> {
    match &task.assignee {
        Assignee::Lead(l) => recipients
            .iter()
            .find(|r| r.lead == *l)
            .map(|r| vec![r.lead.clone()])
            .unwrap_or_default(),
        Assignee::Grid(g) => recipients
            .iter()
            .filter(|r| r.grid.as_str().starts_with(g.as_str()))
            .map(|r| r.lead.clone())
            .collect(),
    }
}

/// The `task` frames of a lead's sync: one per open task of `tasks` that concerns it.
pub(crate) fn task_frames(tasks: &[TaskRecord], me: &RecipientState) -> Vec<Frame> {
    tasks
        .iter()
        .filter(|t| t.is_open())
        .filter(|t| !concerned(&t.view, std::slice::from_ref(me)).is_empty())
        .map(|t| {
            encode(&ServerFrame::Task {
                task: t.view.clone(),
            })
        })
        .collect()
}

fn bad(message: impl Into<String>) -> Refusal {
    Refusal::new(ErrorCode::BadRequest, message)
}

impl Dispatch {
    /// `POST /v1/tasks/{id}/satisfaction`: a resident's satisfaction (1–5) with a
    /// finished task, recorded once on its incident's timeline (Art. 24 evaluation).
    pub(crate) async fn rate_task(
        &self,
        operator: &Claims,
        task: &str,
        rating: gridcast_protocol::api::RateTask,
    ) -> Result<serde_json::Value, Refusal> {
        if !(1..=5).contains(&rating.score) {
            return Err(Refusal::new(ErrorCode::BadRequest, "score must be 1 to 5"));
        }
        if let Some(n) = &rating.note {
            crate::incident::check_text("note", n, 0, MAX_NOTE)?;
        }
        let not_found = || Refusal::new(ErrorCode::NotFound, format!("no task {task:?}"));
        let (incident, _) = crate::store::task_key(task).ok_or_else(not_found)?;
        match self.store.incident(incident).await? {
            Some(s) if visible(&operator.scope, &s.meta) => {}
            _ => return Err(not_found()),
        }
        let record = self
            .store
            .tasks(incident)
            .await?
            .into_iter()
            .find(|t| t.view.id == task)
            .ok_or_else(not_found)?;
        if record.view.status != TaskStatus::Done {
            return Err(Refusal::new(
                ErrorCode::Conflict,
                format!("task {task} is not done; only a finished task is rated"),
            ));
        }
        // Rated once: the check and the write under this node's lock and the
        // cluster's (another node rating it at the same time waits its turn).
        let _one = self.ratings.lock().await;
        let lock = format!("rate:{task}");
        let token = crate::random_hex(8)
            .map_err(|e| Refusal::new(ErrorCode::Unavailable, e.to_string()))?;
        if !self.store.try_lock(&lock, &token, 10_000).await? {
            return Err(Refusal::new(
                ErrorCode::Conflict,
                format!("task {task} is being rated elsewhere; look again in a moment"),
            ));
        }
        let rated = self
            .rate_once(operator, incident, task, &record, rating)
            .await;
        if let Err(e) = self.store.unlock(&lock, &token).await {
            tracing::warn!(task, error = %e, "rating lock not released; it expires by itself");
        }
        rated
    }

    /// [`Dispatch::rate_task`] under its locks.
    async fn rate_once(
        &self,
        operator: &Claims,
        incident: &str,
        task: &str,
        record: &TaskRecord,
        rating: gridcast_protocol::api::RateTask,
    ) -> Result<serde_json::Value, Refusal> {
        let timeline = self.store.timeline(incident).await?.unwrap_or_default();
        if timeline
            .iter()
            .any(|e| e.satisfaction.as_ref().is_some_and(|s| s.task == task))
        {
            return Err(Refusal::new(
                ErrorCode::Conflict,
                format!("task {task} was rated already"),
            ));
        }
        let event = gridcast_protocol::api::TimelineEvent {
            at: rfc3339(self.clock.now_ms()),
            kind: "satisfaction".into(),
            actor: operator.sub.clone(),
            lead: record.accepted_by.clone(),
            detail: rating.note.clone(),
            place: None,
            satisfaction: Some(gridcast_protocol::api::Satisfaction {
                task: task.to_owned(),
                score: rating.score,
            }),
        };
        self.store.add_events(incident, vec![event]).await?;
        Ok(serde_json::json!({
            "task": task, "score": rating.score, "note": rating.note, "lead": record.accepted_by,
        }))
    }

    /// `POST /v1/incidents/{id}/tasks`.
    pub(crate) async fn create_task(
        &self,
        operator: &Claims,
        incident: &str,
        req: CreateTask,
    ) -> Result<CreatedTask, Refusal> {
        let registry = self.registry.current();
        let kinds = &registry.registry.task_kinds;
        if !kinds.iter().any(|k| k.id == req.kind) {
            let list: Vec<&str> = kinds.iter().map(|k| k.id.as_str()).collect();
            return Err(bad(format!(
                "task kind {:?} is not on the published list ({})",
                req.kind,
                list.join(", ")
            )));
        }
        let chars = |s: &str| s.chars().count();
        if !(1..=MAX_TITLE).contains(&chars(&req.title)) {
            return Err(bad(format!("title must have 1 to {MAX_TITLE} characters")));
        }
        if chars(&req.detail) > MAX_BODY {
            return Err(bad(format!(
                "detail must have at most {MAX_BODY} characters"
            )));
        }
        let due_s = req.due_in_s.unwrap_or(DEFAULT_DUE_S);
        if !(1..=MAX_DUE_S).contains(&due_s) {
            return Err(bad(format!("due_in_s must be 1 to {MAX_DUE_S}")));
        }
        let snap = match self.store.incident(incident).await? {
            Some(s) if visible(&operator.scope, &s.meta) => s,
            _ => {
                return Err(Refusal::new(
                    ErrorCode::NotFound,
                    format!("no incident {incident:?}"),
                ));
            }
        };
        match &req.assignee {
            Assignee::Lead(l) if !snap.recipients.iter().any(|r| r.lead == *l) => {
                return Err(bad(format!("lead {l} is not a recipient of {incident}")));
            }
            Assignee::Grid(g) if !registry.registry.grids.iter().any(|x| x.code == *g) => {
                return Err(bad(format!("grid {g} is not in the registry")));
            }
            _ => {}
        }
        let now = self.clock.now_ms();
        let record = TaskRecord {
            view: TaskView {
                id: String::new(),
                incident: incident.to_owned(),
                rev: 0,
                kind: req.kind,
                title: req.title,
                detail: req.detail,
                assignee: req.assignee,
                due_at: rfc3339(now + u64::from(due_s) * 1000),
                status: TaskStatus::Open,
            },
            accepted_by: None,
            created_by: operator.sub.clone(),
            note: None,
            note_by: None,
            created_ms: now,
            escalated: 0,
            declined_by: Vec::new(),
        };
        let task = match self.store.create_task(incident, record, now).await? {
            TaskOutcome::Changed(t) => t,
            TaskOutcome::Closed => {
                return Err(Refusal::new(
                    ErrorCode::IncidentClosed,
                    format!("incident {incident} is closed"),
                ));
            }
            _ => {
                return Err(Refusal::new(
                    ErrorCode::NotFound,
                    format!("no incident {incident:?}"),
                ));
            }
        };
        tracing::info!(task = %task.view.id, operator = %operator.sub, "task created");
        self.send_task(&task.view, &snap.recipients).await;
        self.delivery.counts_changed(incident);
        Ok(CreatedTask {
            id: task.view.id,
            rev: task.view.rev,
        })
    }

    /// A lead's `task_update`; resolves once durable.
    pub(crate) async fn update_task(
        &self,
        lead: &str,
        task: &str,
        status: TaskStatus,
        note: Option<String>,
    ) -> Result<(), Refusal> {
        if note.as_ref().is_some_and(|n| n.chars().count() > MAX_NOTE) {
            return Err(bad(format!("note must have at most {MAX_NOTE} characters")));
        }
        let not_found = || Refusal::new(ErrorCode::NotFound, format!("no task {task:?}"));
        let Some((incident, _)) = task.rsplit_once("-T") else {
            return Err(not_found());
        };
        let Some(snap) = self.store.incident(incident).await? else {
            return Err(not_found());
        };
        let tasks = self.store.tasks(incident).await?;
        let Some(current) = tasks.iter().find(|t| t.view.id == task) else {
            return Err(not_found());
        };
        if !concerned(&current.view, &snap.recipients)
            .iter()
            .any(|l| l == lead)
        {
            return Err(Refusal::new(
                ErrorCode::NotRecipient,
                format!("task {task} is not yours"),
            ));
        }
        let now = self.clock.now_ms();
        match self
            .store
            .update_task(incident, task, lead, status, note, now)
            .await?
        {
            TaskOutcome::Changed(t) => {
                // Everyone concerned sees the new state (a grid task taken by one lead
                // shows as accepted to the others).
                self.send_task(&t.view, &snap.recipients).await;
                self.delivery.counts_changed(incident);
                Ok(())
            }
            TaskOutcome::Unchanged(_) => Ok(()),
            TaskOutcome::NotFound => Err(not_found()),
            TaskOutcome::Closed => Err(Refusal::new(
                ErrorCode::IncidentClosed,
                format!("incident {incident} is closed"),
            )),
            TaskOutcome::Refused(TaskRefusal::Taken(by)) => Err(Refusal::new(
                ErrorCode::TaskTaken,
                format!("task {task} was accepted by {by} first"),
            )),
            TaskOutcome::Refused(TaskRefusal::Conflict(m)) => {
                Err(Refusal::new(ErrorCode::Conflict, m))
            }
        }
    }

    /// The `task` frame to every lead concerned, on every channel.
    async fn send_task(&self, task: &TaskView, recipients: &[RecipientState]) {
        let frame: Frame = encode(&ServerFrame::Task { task: task.clone() });
        for lead in concerned(task, recipients) {
            self.delivery.to_lead(lead, frame.clone()).await;
        }
    }
}
