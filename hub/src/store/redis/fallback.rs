//! The fallback channel's queue in Redis: each incident's messages in its own hash
//! (`{inc:ID}:fb`, id → JSON, one slot with the incident), and `gc:fb:due`, a zset of
//! message ids by when a sender may next act on them.
//!
//! The record is the truth and the zset only an index: it is written before the record
//! (a crash in between leaves an entry whose record says "not yet" or "nothing to do",
//! which the next claim corrects), so no due message is ever missing from it.

use super::scripts::{FALLBACK_ADD_SCRIPT, FALLBACK_CLAIM_SCRIPT, FALLBACK_UPDATE_SCRIPT};
use super::*;
use crate::store::FallbackRecord;

/// Message ids by when they are next due (ms).
const DUE: &str = "gc:fb:due";
/// Removes an index entry only if its score is still the one read.
const UNINDEX: &str = "if redis.call('ZSCORE', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('ZREM', KEYS[1], ARGV[1]) end return 0";

fn fallback_key(incident: &str) -> String {
    format!("{{inc:{incident}}}:fb")
}

/// The incident of a message id (`INC-000001:lead:sms`).
fn incident_of(id: &str) -> &str {
    id.split(':').next().unwrap_or(id)
}

impl RedisStore {
    /// See [`Store::fallback_add`].
    pub(super) async fn queue_fallback(
        &self,
        records: Vec<FallbackRecord>,
    ) -> Result<usize, StoreError> {
        let mut by_incident: HashMap<String, Vec<FallbackRecord>> = HashMap::new();
        for r in records {
            by_incident.entry(r.incident.clone()).or_default().push(r);
        }
        let mut added = 0;
        for (incident, records) in by_incident {
            let mut index = redis::cmd("ZADD");
            index.arg(DUE).arg("NX");
            for r in &records {
                index.arg(r.next_at).arg(&r.id);
            }
            self.seen(index.query_async::<i64>(&mut self.connection()).await)?;
            let script = redis::Script::new(FALLBACK_ADD_SCRIPT);
            let mut invocation = script.prepare_invoke();
            invocation
                .key(fallback_key(&incident))
                .key(meta_key(&incident));
            for r in &records {
                invocation
                    .arg(&r.id)
                    .arg(serde_json::to_string(r).map_err(io)?);
            }
            let n: usize = self.seen(invocation.invoke_async(&mut self.connection()).await)?;
            added += n;
        }
        Ok(added)
    }

    /// See [`Store::fallback_claim`].
    pub(super) async fn claim_fallback(
        &self,
        now: u64,
        lease: u64,
        limit: usize,
    ) -> Result<Vec<FallbackRecord>, StoreError> {
        let ids: Vec<(String, String)> = self.seen(
            redis::cmd("ZRANGEBYSCORE")
                .arg(DUE)
                .arg("-inf")
                .arg(now)
                .arg("WITHSCORES")
                .arg("LIMIT")
                .arg(0)
                .arg(limit)
                .query_async(&mut self.connection())
                .await,
        )?;
        let mut claimed = Vec::new();
        for (id, score) in ids {
            let answer: Vec<String> = self.seen(
                redis::Script::new(FALLBACK_CLAIM_SCRIPT)
                    .key(fallback_key(incident_of(&id)))
                    .arg(&id)
                    .arg(now)
                    .arg(lease)
                    .invoke_async(&mut self.connection())
                    .await,
            )?;
            let mut c = self.connection();
            match answer.first().map(String::as_str) {
                Some("claimed") => {
                    let record: FallbackRecord = parse(answer.get(1).map_or("", String::as_str))?;
                    self.seen(c.zadd::<_, _, _, ()>(DUE, &id, record.next_at).await)?;
                    claimed.push(record);
                }
                Some("later") => {
                    let at: u64 = answer.get(1).and_then(|s| s.parse().ok()).unwrap_or(now);
                    self.seen(c.zadd::<_, _, _, ()>(DUE, &id, at).await)?;
                }
                // Nothing to send: the entry goes, unless it was queued again meanwhile
                // (a new score).
                _ => self
                    .seen(
                        redis::Script::new(UNINDEX)
                            .key(DUE)
                            .arg(&id)
                            .arg(&score)
                            .invoke_async::<i64>(&mut c)
                            .await,
                    )
                    .map(drop)?,
            }
        }
        Ok(claimed)
    }

    /// See [`Store::fallback_update`].
    pub(super) async fn update_fallback(
        &self,
        record: &FallbackRecord,
        expect: u64,
        events: Vec<TimelineEvent>,
        next: Option<FallbackRecord>,
    ) -> Result<bool, StoreError> {
        let mut c = self.connection();
        if let Some(n) = &next {
            self.seen(
                redis::cmd("ZADD")
                    .arg(DUE)
                    .arg("NX")
                    .arg(n.next_at)
                    .arg(&n.id)
                    .query_async::<i64>(&mut c)
                    .await,
            )?;
        }
        if record.state.is_due_kind() {
            self.seen(c.zadd::<_, _, _, ()>(DUE, &record.id, record.next_at).await)?;
        }
        let script = redis::Script::new(FALLBACK_UPDATE_SCRIPT);
        let mut invocation = script.prepare_invoke();
        invocation
            .key(fallback_key(&record.incident))
            .key(meta_key(&record.incident))
            .key(timeline_key(&record.incident))
            .arg(&record.id)
            .arg(expect)
            .arg(serde_json::to_string(record).map_err(io)?);
        match &next {
            Some(n) => invocation
                .arg(&n.id)
                .arg(serde_json::to_string(n).map_err(io)?),
            None => invocation.arg("").arg(""),
        };
        for e in &events {
            invocation.arg(serde_json::to_string(e).map_err(io)?);
        }
        // A message done with stays indexed until a claim finds it so (removing it here
        // could remove the entry of a status callback that queued it again).
        let done: i64 = self.seen(invocation.invoke_async(&mut c).await)?;
        Ok(done == 1)
    }

    /// See [`Store::fallback_get`].
    pub(super) async fn read_fallback(
        &self,
        id: &str,
    ) -> Result<Option<FallbackRecord>, StoreError> {
        let json: Option<String> = self.seen(
            self.connection()
                .hget(fallback_key(incident_of(id)), id)
                .await,
        )?;
        json.map(|j| parse(&j)).transpose()
    }

    /// See [`Store::fallback_of`].
    pub(super) async fn read_fallback_of(
        &self,
        incident: &str,
    ) -> Result<Vec<FallbackRecord>, StoreError> {
        let all: HashMap<String, String> =
            self.seen(self.connection().hgetall(fallback_key(incident)).await)?;
        let mut out: Vec<FallbackRecord> = all
            .values()
            .map(|j| parse::<FallbackRecord>(j))
            .collect::<Result<_, _>>()?;
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }
}
