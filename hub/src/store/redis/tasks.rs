//! Assistance tasks in Redis: created, updated by compare-and-set (the first accept
//! wins across nodes), read, and escalated.

use super::*;

impl RedisStore {
    /// See [`Store::create_task`].
    pub(super) async fn insert_task(
        &self,
        incident: &str,
        mut task: TaskRecord,
        at: u64,
    ) -> Result<TaskOutcome, StoreError> {
        let mut c = self.connection();
        let meta: Option<String> = self.seen(c.get(meta_key(incident)).await)?;
        let Some(meta) = meta else {
            return Ok(TaskOutcome::NotFound);
        };
        if parse::<IncidentMeta>(&meta)?.state == IncidentState::Closed {
            return Ok(TaskOutcome::Closed);
        }
        let n: u64 = self.seen(c.incr(task_seq_key(incident), 1).await)?;
        task.view.id = format!("{incident}-T{n}");
        task.view.rev = 1;
        let event = task_event(&task, &task.created_by, None, at);
        let due = task.escalation_due(1);
        self.seen(
            redis::pipe()
                .atomic()
                .zadd(ESCALATIONS, &task.view.id, due)
                .ignore()
                .hset(
                    tasks_key(incident),
                    &task.view.id,
                    serde_json::to_string(&task).map_err(io)?,
                )
                .ignore()
                .xadd(
                    timeline_key(incident),
                    "*",
                    &[("e", serde_json::to_string(&event).map_err(io)?)],
                )
                .ignore()
                .query_async::<()>(&mut c)
                .await,
        )?;
        Ok(TaskOutcome::Changed(task))
    }

    /// See [`Store::update_task`].
    pub(super) async fn swap_task(
        &self,
        incident: &str,
        task: &str,
        lead: &str,
        status: TaskStatus,
        note: Option<String>,
        at: u64,
    ) -> Result<TaskOutcome, StoreError> {
        // The rules run in Rust (apply_task_update, as in the embedded store); the
        // write is a compare-and-set, so the first accept wins across nodes.
        for _ in 0..16 {
            let mut c = self.connection();
            let (meta, current): (Option<String>, Option<String>) = self.seen(
                redis::pipe()
                    .get(meta_key(incident))
                    .hget(tasks_key(incident), task)
                    .query_async(&mut c)
                    .await,
            )?;
            let (Some(meta), Some(current)) = (meta, current) else {
                return Ok(TaskOutcome::NotFound);
            };
            if parse::<IncidentMeta>(&meta)?.state == IncidentState::Closed {
                return Ok(TaskOutcome::Closed);
            }
            let record: TaskRecord = parse(&current)?;
            let mut next = match apply_task_update(&record, lead, status, note.clone()) {
                Ok(Some(next)) => next,
                Ok(None) => return Ok(TaskOutcome::Unchanged(record)),
                Err(r) => return Ok(TaskOutcome::Refused(r)),
            };
            next.note_by = Some(lead.to_owned());
            let event = task_event(&next, lead, Some(lead), at);
            let event = serde_json::to_string(&event).map_err(io)?;
            if self
                .swap_task_record(incident, task, &current, &next, event)
                .await?
            {
                return Ok(TaskOutcome::Changed(next));
            }
        }
        Err(StoreError::Io(format!("task {task} kept changing; retry")))
    }

    /// See [`Store::tasks`].
    pub(super) async fn read_tasks(&self, incident: &str) -> Result<Vec<TaskRecord>, StoreError> {
        let mut c = self.connection();
        let all: HashMap<String, String> = self.seen(c.hgetall(tasks_key(incident)).await)?;
        tasks_from(all)
    }

    /// Records an overdue task's escalation step: compare-and-set on the task (only the
    /// next step, only while open), then its next due time.
    pub(super) async fn task_escalated(
        &self,
        incident: &str,
        task: &str,
        step: u8,
        events: Vec<TimelineEvent>,
        next_due: Option<u64>,
    ) -> Result<bool, StoreError> {
        let mut c = self.connection();
        let current: Option<String> = self.seen(c.hget(tasks_key(incident), task).await)?;
        let fresh = match current {
            Some(current) => {
                let mut t: TaskRecord = parse(&current)?;
                if t.is_open() && t.escalated + 1 == step {
                    t.escalated = step;
                    let event = match events.first() {
                        Some(e) => serde_json::to_string(e).map_err(io)?,
                        None => String::new(),
                    };
                    self.swap_task_record(incident, task, &current, &t, event)
                        .await?
                } else {
                    false
                }
            }
            None => false,
        };
        match next_due {
            Some(due) if fresh => self.seen(c.zadd::<_, _, _, ()>(ESCALATIONS, task, due).await)?,
            Some(_) => {}
            None => self.seen(c.zrem::<_, _, ()>(ESCALATIONS, task).await)?,
        }
        Ok(fresh)
    }

    /// Replaces a task's record with `next` if it is still `current` (compare and set,
    /// one script) and appends `event` (JSON; none if empty) to the timeline.
    async fn swap_task_record(
        &self,
        incident: &str,
        task: &str,
        current: &str,
        next: &TaskRecord,
        event: String,
    ) -> Result<bool, StoreError> {
        let swapped: i64 = self.seen(
            redis::Script::new(TASK_SCRIPT)
                .key(tasks_key(incident))
                .key(timeline_key(incident))
                .arg(task)
                .arg(current)
                .arg(serde_json::to_string(next).map_err(io)?)
                .arg(event)
                .invoke_async(&mut self.connection())
                .await,
        )?;
        Ok(swapped == 1)
    }
}

/// An incident's tasks hash (task id → record), in creation order.
pub(super) fn tasks_from(all: HashMap<String, String>) -> Result<Vec<TaskRecord>, StoreError> {
    let mut out: Vec<TaskRecord> = all
        .values()
        .map(|j| parse::<TaskRecord>(j))
        .collect::<Result<_, _>>()?;
    let n = |t: &TaskRecord| {
        t.view
            .id
            .rsplit_once("-T")
            .and_then(|(_, n)| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    out.sort_by_key(n);
    Ok(out)
}
