//! Escalation steps in Redis: due steps claimed with a lease, and recorded once.

use super::*;

impl RedisStore {
    /// See [`Store::escalations_due`].
    pub(super) async fn claim_escalations(
        &self,
        now: u64,
        lease: u64,
    ) -> Result<Vec<(String, u8)>, StoreError> {
        // Claimed in one script: due entries get `now + lease` as their score.
        let ids: Vec<String> = self.seen(
            redis::Script::new(CLAIM_SCRIPT)
                .key(ESCALATIONS)
                .arg(now + 1)
                .arg(now + lease)
                .invoke_async(&mut self.connection())
                .await,
        )?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.get(escalation_key(id));
        }
        let done: Vec<Option<u8>> = self.seen(pipe.query_async(&mut self.connection()).await)?;
        let mut due = Vec::new();
        for (id, done) in ids.into_iter().zip(done) {
            let step = match task_key(&id) {
                // An overdue task: its own step count, and only while it is open.
                Some((incident, task)) => {
                    let json: Option<String> =
                        self.seen(self.connection().hget(tasks_key(incident), task).await)?;
                    match json.map(|j| parse::<TaskRecord>(&j)).transpose()? {
                        Some(t) if t.is_open() => t.escalated + 1,
                        _ => 4,
                    }
                }
                None => done.unwrap_or(0) + 1,
            };
            if step > 3 {
                let mut c = self.connection();
                self.seen(c.zrem::<_, _, ()>(ESCALATIONS, &id).await)?;
            } else {
                due.push((id, step));
            }
        }
        Ok(due)
    }

    /// See [`Store::escalation_done`].
    pub(super) async fn finish_escalation(
        &self,
        incident: &str,
        step: u8,
        events: Vec<TimelineEvent>,
        next_due: Option<u64>,
    ) -> Result<bool, StoreError> {
        if let Some((inc, task)) = task_key(incident) {
            return self.task_escalated(inc, task, step, events, next_due).await;
        }
        let script = redis::Script::new(ESCALATED_SCRIPT);
        let mut invocation = script.prepare_invoke();
        invocation
            .key(escalation_key(incident))
            .key(timeline_key(incident))
            .arg(step);
        for e in &events {
            invocation.arg(serde_json::to_string(e).map_err(io)?);
        }
        let fresh: i64 = self.seen(invocation.invoke_async(&mut self.connection()).await)?;
        let mut c = self.connection();
        match next_due {
            Some(due) => self.seen(c.zadd::<_, _, _, ()>(ESCALATIONS, incident, due).await)?,
            None => self.seen(c.zrem::<_, _, ()>(ESCALATIONS, incident).await)?,
        }
        Ok(fresh == 1)
    }
}
