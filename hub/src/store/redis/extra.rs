//! Held requests of the two-person rule, events added to a timeline, and short locks
//! between nodes, in Redis.

use super::*;

impl RedisStore {
    /// See [`Store::add_approval`].
    pub(super) async fn insert_approval(
        &self,
        mut approval: Approval,
    ) -> Result<Approval, StoreError> {
        let mut c = self.connection();
        let n: u64 = self.seen(c.incr(APPROVAL_SEQ, 1).await)?;
        approval.id = format!("APR-{n:06}");
        let json = serde_json::to_string(&approval).map_err(io)?;
        self.seen(c.hset::<_, _, _, ()>(APPROVALS, &approval.id, json).await)?;
        Ok(approval)
    }

    /// See [`Store::approvals`].
    pub(super) async fn read_approvals(&self) -> Result<Vec<Approval>, StoreError> {
        let all: HashMap<String, String> = self.seen(self.connection().hgetall(APPROVALS).await)?;
        let mut out: Vec<Approval> = all
            .values()
            .map(|j| parse::<Approval>(j))
            .collect::<Result<_, _>>()?;
        // Oldest first: ids are zero-padded and grow.
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// See [`Store::update_approval`].
    pub(super) async fn replace_approval(
        &self,
        approval: &Approval,
        expect: ApprovalState,
    ) -> Result<bool, StoreError> {
        let json = serde_json::to_string(approval).map_err(io)?;
        let done: i64 = self.seen(
            redis::Script::new(APPROVAL_SCRIPT)
                .key(APPROVALS)
                .arg(&approval.id)
                .arg(gridcast_protocol::wire_name(&expect))
                .arg(json)
                .invoke_async(&mut self.connection())
                .await,
        )?;
        Ok(done == 1)
    }

    /// See [`Store::add_events`].
    pub(super) async fn append_events(
        &self,
        incident: &str,
        events: Vec<TimelineEvent>,
    ) -> Result<bool, StoreError> {
        let script = redis::Script::new(EVENTS_SCRIPT);
        let mut invocation = script.prepare_invoke();
        invocation
            .key(meta_key(incident))
            .key(timeline_key(incident));
        for e in &events {
            invocation.arg(serde_json::to_string(e).map_err(io)?);
        }
        let known: i64 = self.seen(invocation.invoke_async(&mut self.connection()).await)?;
        Ok(known == 1)
    }

    /// See [`Store::try_lock`].
    pub(super) async fn take_lock(
        &self,
        name: &str,
        token: &str,
        ttl_ms: u64,
    ) -> Result<bool, StoreError> {
        let set: Option<String> = self.seen(
            redis::cmd("SET")
                .arg(format!("{LOCK}{name}"))
                .arg(token)
                .arg("NX")
                .arg("PX")
                .arg(ttl_ms)
                .query_async(&mut self.connection())
                .await,
        )?;
        Ok(set.is_some())
    }

    /// See [`Store::unlock`].
    pub(super) async fn release_lock(&self, name: &str, token: &str) -> Result<(), StoreError> {
        let _: i64 = self.seen(
            redis::Script::new(UNLOCK_SCRIPT)
                .key(format!("{LOCK}{name}"))
                .arg(token)
                .invoke_async(&mut self.connection())
                .await,
        )?;
        Ok(())
    }
}
