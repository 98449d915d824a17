//! What the Redis store reads: incidents, counts, timelines, a lead's incidents.

use super::*;

/// Up to this many incidents in a lead's sync window, the tasks of all of them are
/// read in the pipeline of their metas (one round trip less per sync); beyond, a third
/// round trip reads only those of the lead's active incidents.
const SYNC_TASKS_INLINE: usize = 8;

impl RedisStore {
    /// Ids of the active incidents and of those closed at or after `closed_since`.
    pub(super) async fn recent_ids(&self, closed_since: u64) -> Result<Vec<String>, StoreError> {
        let mut c = self.connection();
        let (mut ids, closed): (Vec<String>, Vec<String>) = self.seen(
            redis::pipe()
                .smembers(ACTIVE)
                .zrangebyscore(CLOSED, closed_since, "+inf")
                .query_async(&mut c)
                .await,
        )?;
        ids.extend(closed);
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    /// See [`Store::recent`].
    pub(super) async fn read_recent(
        &self,
        closed_since: u64,
    ) -> Result<Vec<IncidentSnapshot>, StoreError> {
        let ids = self.recent_ids(closed_since).await?;
        let mut snaps = self.snapshots(&ids).await?;
        snaps.retain(|s| s.meta.in_sync_window(closed_since));
        Ok(snaps)
    }

    /// See [`Store::recent_metas`].
    pub(super) async fn read_recent_metas(
        &self,
        closed_since: u64,
    ) -> Result<Vec<Arc<IncidentMeta>>, StoreError> {
        let ids = self.recent_ids(closed_since).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.get(meta_key(id));
        }
        let mut c = self.connection();
        let metas: Vec<Option<String>> = self.seen(pipe.query_async(&mut c).await)?;
        let mut out = Vec::with_capacity(metas.len());
        for m in metas.into_iter().flatten() {
            let meta: IncidentMeta = parse(&m)?;
            if meta.in_sync_window(closed_since) {
                out.push(Arc::new(meta));
            }
        }
        Ok(out)
    }

    /// One incident's meta, without its recipients.
    pub(crate) async fn read_meta(&self, id: &str) -> Result<Option<IncidentMeta>, StoreError> {
        let mut c = self.connection();
        let meta: Option<String> = self.seen(c.get(meta_key(id)).await)?;
        meta.map(|m| parse(&m)).transpose()
    }

    /// See [`Store::counts`].
    pub(super) async fn read_counts(
        &self,
        id: &str,
    ) -> Result<Option<(Arc<IncidentMeta>, gridcast_protocol::api::Counts)>, StoreError> {
        let mut c = self.connection();
        let (meta, n): (Option<String>, HashMap<String, i64>) = self.seen(
            redis::pipe()
                .get(meta_key(id))
                .hgetall(counts_key(id))
                .query_async(&mut c)
                .await,
        )?;
        let Some(meta) = meta else { return Ok(None) };
        if n.is_empty() {
            // Recorded before the counts were kept: count the recipients.
            return Ok(self.incident(id).await?.map(IncidentSnapshot::counted));
        }
        let get = |k: &str| n.get(k).copied().unwrap_or(0).max(0) as usize;
        let counts = gridcast_protocol::api::Counts {
            pending: get("pending"),
            delivered: get("delivered"),
            accepted: get("accepted"),
            declined: get("declined"),
        };
        Ok(Some((Arc::new(parse(&meta)?), counts)))
    }

    /// See [`Store::incidents`].
    pub(super) async fn read_incidents(
        &self,
        state: Option<IncidentState>,
    ) -> Result<Vec<IncidentSnapshot>, StoreError> {
        let mut c = self.connection();
        let ids: Vec<String> = match state {
            Some(IncidentState::Active) => {
                let mut ids: Vec<String> = self.seen(c.smembers(ACTIVE).await)?;
                // Newest first, like the embedded store: ids grow with time.
                ids.sort_by(|a, b| b.cmp(a));
                ids
            }
            _ => self.seen(c.zrevrange(INCIDENTS, 0, -1).await)?,
        };
        let mut snaps = self.snapshots(&ids).await?;
        snaps.retain(|s| state.is_none_or(|want| s.meta.state == want));
        Ok(snaps)
    }

    /// See [`Store::incidents_for_lead`].
    pub(super) async fn read_incidents_for_lead(
        &self,
        lead: &str,
        closed_since: u64,
    ) -> Result<Vec<(Arc<IncidentMeta>, RecipientState)>, StoreError> {
        let all = self.read_for_lead(lead, closed_since, false).await?;
        Ok(all.into_iter().map(|(m, r, _)| (m, r)).collect())
    }

    /// See [`Store::sync_for_lead`].
    pub(super) async fn read_sync_for_lead(
        &self,
        lead: &str,
        closed_since: u64,
    ) -> Result<Vec<LeadSync>, StoreError> {
        self.read_for_lead(lead, closed_since, true).await
    }

    /// The incidents of a lead's sync window it is a recipient of, oldest first, with
    /// its state and, if `with_tasks`, the tasks of the active ones: the window's ids,
    /// then one pipeline for all of them. Past [`SYNC_TASKS_INLINE`] incidents in the
    /// window the tasks are read in a third round trip, of the lead's active ones only
    /// (not every task of every incident for every phone of a storm).
    async fn read_for_lead(
        &self,
        lead: &str,
        closed_since: u64,
        with_tasks: bool,
    ) -> Result<Vec<LeadSync>, StoreError> {
        let ids = self.recent_ids(closed_since).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let inline = with_tasks && ids.len() <= SYNC_TASKS_INLINE;
        let per = if inline { 3 } else { 2 };
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.get(meta_key(id)).hget(recipients_key(id), lead);
            if inline {
                pipe.hgetall(tasks_key(id));
            }
        }
        let mut c = self.connection();
        let raw: Vec<redis::Value> = self.seen(pipe.query_async(&mut c).await)?;
        let value = |v: &redis::Value| -> Result<Option<String>, StoreError> {
            redis::FromRedisValue::from_redis_value_ref(v).map_err(io)
        };
        let mut out = Vec::new();
        for one in raw.chunks(per) {
            let (Some(meta), Some(r)) = (value(&one[0])?, value(&one[1])?) else {
                continue;
            };
            let meta = Arc::new(parse::<IncidentMeta>(&meta)?);
            let tasks = match one.get(2) {
                Some(t) if meta.state == IncidentState::Active => {
                    tasks_from(redis::FromRedisValue::from_redis_value_ref(t).map_err(io)?)?
                }
                _ => Vec::new(),
            };
            out.push((meta, parse::<Stored>(&r)?.state, tasks));
        }
        if with_tasks && !inline {
            let active: Vec<usize> = (0..out.len())
                .filter(|&i| out[i].0.state == IncidentState::Active)
                .collect();
            if !active.is_empty() {
                let mut pipe = redis::pipe();
                for &i in &active {
                    pipe.hgetall(tasks_key(&out[i].0.id));
                }
                let all: Vec<HashMap<String, String>> =
                    self.seen(pipe.query_async(&mut c).await)?;
                for (&i, tasks) in active.iter().zip(all) {
                    out[i].2 = tasks_from(tasks)?;
                }
            }
        }
        // Oldest first: ids are zero-padded and grow with time.
        out.sort_by(|a, b| a.0.id.cmp(&b.0.id));
        Ok(out)
    }

    /// See [`Store::timeline`].
    pub(super) async fn read_timeline(
        &self,
        id: &str,
    ) -> Result<Option<Vec<TimelineEvent>>, StoreError> {
        let mut c = self.connection();
        let (exists, entries): (bool, redis::streams::StreamRangeReply) = self.seen(
            redis::pipe()
                .exists(meta_key(id))
                .xrange_all(timeline_key(id))
                .query_async(&mut c)
                .await,
        )?;
        if !exists {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(entries.ids.len());
        for e in entries.ids {
            let json: String = e.get("e").ok_or_else(|| io("timeline entry without e"))?;
            out.push(parse(&json)?);
        }
        Ok(Some(out))
    }
}

impl RedisStore {
    pub(super) async fn snapshots(
        &self,
        ids: &[String],
    ) -> Result<Vec<IncidentSnapshot>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.get(meta_key(id)).hgetall(recipients_key(id));
        }
        let mut c = self.connection();
        let raw: Vec<redis::Value> = self.seen(pipe.query_async(&mut c).await)?;
        let mut out = Vec::with_capacity(ids.len());
        for pair in raw.chunks(2) {
            let meta: Option<String> = redis::from_redis_value_ref(&pair[0]).map_err(io)?;
            let Some(meta) = meta else { continue };
            let rs: Vec<(String, String)> = redis::from_redis_value_ref(&pair[1]).map_err(io)?;
            out.push(IncidentSnapshot {
                meta: Arc::new(parse(&meta)?),
                recipients: Arc::new(ordered(rs)?),
            });
        }
        Ok(out)
    }
}
