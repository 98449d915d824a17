//! The fan-out outbox in Redis: entries cleared by their node, or claimed by a sweeper.

use super::*;

impl RedisStore {
    /// See [`Store::outbox_done`].
    pub(super) async fn clear_outbox(&self, incident: &str, rev: u64) -> Result<(), StoreError> {
        let mut c = self.connection();
        self.seen(
            c.zrem::<_, _, ()>(OUTBOX, format!("{incident}:{rev}"))
                .await,
        )
    }

    /// See [`Store::outbox_claim`].
    pub(super) async fn claim_outbox(
        &self,
        older_than: u64,
        now: u64,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        // One script so that two nodes never claim the same entry at once.
        let claimed: Vec<String> = self.seen(
            redis::Script::new(CLAIM_SCRIPT)
                .key(OUTBOX)
                .arg(older_than)
                .arg(now)
                .invoke_async(&mut self.connection())
                .await,
        )?;
        Ok(claimed
            .iter()
            .filter_map(|m| {
                let (id, rev) = m.rsplit_once(':')?;
                Some((id.to_owned(), rev.parse().ok()?))
            })
            .collect())
    }
}
