//! The Redis store of cluster mode: every node reads and writes the same state.
//!
//! Key layout (all keys of one incident share the hash tag `{inc:ID}`, so that an
//! incident's writes are one slot on Redis Cluster and one script can touch them all):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `gc:seq` | string | last incident number (`INCR`) |
//! | `gc:incidents` | zset | incident id → issue time (ms) |
//! | `gc:active` | set | ids of active incidents |
//! | `gc:closed` | zset | id → close time (ms) |
//! | `gc:reports`, `gc:report:incident` | hash | report id → report (JSON); → incident opened from it |
//! | `gc:esc` | zset | id → when its next escalation step is due (ms) |
//! | `{inc:ID}:tasks`, `{inc:ID}:taskseq` | hash, string | task id → task (JSON); last task number |
//! | `{inc:ID}:esc` | string | escalation steps done |
//! | `gc:outbox` | zset | `ID:rev` → pending since (ms): MQTT publishes not yet done |
//! | `{inc:ID}:meta` | string | the incident (JSON) |
//! | `{inc:ID}:r` | hash | lead → recipient state (JSON, with its registry order `i`) |
//! | `{inc:ID}:tl` | stream | timeline events (field `e`, JSON) |
//! | `gc:registry`, `gc:registry:ver` | string | the registry in force and its version |
//!
//! A receipt or ack is one round trip: a Lua script reads the recipient, applies the
//! contract's rules and appends the timeline event atomically. The rules are the same as
//! [`apply_mark`](super::apply_mark); `tests/redis_store.rs` checks the two agree on
//! every status and mark. Durability is Redis's: run it with `appendonly yes` and
//! `appendfsync always` so that an `ok` survives a Redis restart.

mod scripts;

use scripts::{CLAIM_SCRIPT, ESCALATED_SCRIPT, MARK_SCRIPT, REVISE_SCRIPT, TASK_SCRIPT};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use std::collections::HashMap;

use gridcast_protocol::api::{ReportView, TimelineEvent};
use gridcast_protocol::model::IncidentState;
use gridcast_protocol::registry::RegistryDoc;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

use super::{
    IncidentMeta, IncidentSnapshot, Mark, MarkOutcome, NewIncident, RecipientState, ReviseOutcome,
    Revision, Store, StoreError, StoreFuture, TaskOutcome, TaskRecord, apply_revision,
    apply_task_update, issue_state, mark_event, task_event, task_key,
};
use gridcast_protocol::frame::TaskStatus;

/// Channel on which a registry replacement is announced (payload: its version).
pub const REGISTRY_CHANNEL: &str = "gc:registry";

const SEQ: &str = "gc:seq";
const INCIDENTS: &str = "gc:incidents";
const ACTIVE: &str = "gc:active";
const CLOSED: &str = "gc:closed";
const OUTBOX: &str = "gc:outbox";
const ESCALATIONS: &str = "gc:esc";
const REPORT_SEQ: &str = "gc:report:seq";
const REPORTS: &str = "gc:reports";
const REPORT_LINKS: &str = "gc:report:incident";
const REGISTRY: &str = "gc:registry";
const REGISTRY_VER: &str = "gc:registry:ver";
/// `gc:mqtt:lead:{lead}`: an MQTT lead's last good hello, until its token expires.
const MQTT_LEAD: &str = "gc:mqtt:lead:";

fn meta_key(id: &str) -> String {
    format!("{{inc:{id}}}:meta")
}
fn recipients_key(id: &str) -> String {
    format!("{{inc:{id}}}:r")
}
fn timeline_key(id: &str) -> String {
    format!("{{inc:{id}}}:tl")
}
fn tasks_key(id: &str) -> String {
    format!("{{inc:{id}}}:tasks")
}
fn task_seq_key(id: &str) -> String {
    format!("{{inc:{id}}}:taskseq")
}
/// Recipients counted by status (`pending`, `delivered`, …), kept by the mark script.
fn counts_key(id: &str) -> String {
    format!("{{inc:{id}}}:n")
}
fn escalation_key(id: &str) -> String {
    format!("{{inc:{id}}}:esc")
}

/// A recipient as stored: its state and its place in registry order.
#[derive(Serialize, Deserialize)]
struct Stored {
    i: usize,
    #[serde(flatten)]
    state: RecipientState,
}

/// Most marks in one script call.
const MARK_BATCH: usize = 512;
/// Script calls in flight at once from one node.
const MARK_CALLS_IN_FLIGHT: usize = 4;

/// One receipt or ack waiting for its batch.
struct MarkJob {
    incident: String,
    lead: String,
    kind: &'static str,
    at: u64,
    event: String,
    reply: tokio::sync::oneshot::Sender<Result<MarkOutcome, StoreError>>,
}

/// The Redis store. Cheap to clone.
#[derive(Clone)]
pub struct RedisStore {
    client: redis::Client,
    /// Replaced whole by [`RedisStore::renew`]: the connection manager reconnects after
    /// a dropped connection, not after one that silently stopped answering.
    conn: Arc<RwLock<ConnectionManager>>,
    marks: tokio::sync::mpsc::Sender<MarkJob>,
    healthy: Arc<AtomicBool>,
}

/// How long one command may take before the store answers `unavailable`.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(3);

/// A connection manager that reconnects by itself, with bounded waits.
pub async fn connect(client: &redis::Client) -> redis::RedisResult<ConnectionManager> {
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_millis(500));
    client.get_connection_manager_with_config(config).await
}

impl RedisStore {
    /// Connects (bounded by the manager's connection timeout).
    pub async fn open(client: redis::Client) -> redis::RedisResult<Self> {
        let conn = Arc::new(RwLock::new(connect(&client).await?));
        let healthy = Arc::new(AtomicBool::new(true));
        let (marks, rx) = tokio::sync::mpsc::channel(MARK_BATCH * 16);
        let batcher = MarkBatcher {
            conn: conn.clone(),
            healthy: healthy.clone(),
            script: Arc::new(redis::Script::new(
                &MARK_SCRIPT.replace("MAX_ANSWERS", &super::MAX_ANSWERS.to_string()),
            )),
        };
        // Ends when the last clone of the store is dropped (the channel closes).
        tokio::spawn(batcher.run(rx));
        Ok(Self {
            client,
            conn,
            marks,
            healthy,
        })
    }

    /// The connection in use, for the cluster's own keys.
    pub fn connection(&self) -> ConnectionManager {
        self.conn.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the connection with a new one (after commands time out on a connection
    /// that looks open: a failover behind a proxy, a half-open TCP connection).
    pub async fn renew(&self) -> redis::RedisResult<()> {
        let fresh = connect(&self.client).await?;
        *self.conn.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(())
    }

    /// Records the outcome of a call in `healthy` and maps the error.
    fn seen<T>(&self, r: redis::RedisResult<T>) -> Result<T, StoreError> {
        self.healthy.store(r.is_ok(), Ordering::Release);
        r.map_err(|e| StoreError::Io(format!("redis: {e}")))
    }

    /// Records an overdue task's escalation step: compare-and-set on the task (only the
    /// next step, only while open), then its next due time.
    async fn task_escalated(
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
                    let swapped: i64 = self.seen(
                        redis::Script::new(TASK_SCRIPT)
                            .key(tasks_key(incident))
                            .key(timeline_key(incident))
                            .arg(task)
                            .arg(&current)
                            .arg(serde_json::to_string(&t).map_err(io)?)
                            .arg(event)
                            .invoke_async(&mut c)
                            .await,
                    )?;
                    swapped == 1
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

    /// Ids of the active incidents and of those closed at or after `closed_since`.
    async fn recent_ids(&self, closed_since: u64) -> Result<Vec<String>, StoreError> {
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

    /// The registry stored and its version, read together.
    pub async fn load_registry_versioned(&self) -> Result<(u64, Option<RegistryDoc>), StoreError> {
        let mut c = self.connection();
        let (ver, json): (Option<u64>, Option<String>) = self.seen(
            redis::pipe()
                .atomic()
                .get(REGISTRY_VER)
                .get(REGISTRY)
                .query_async(&mut c)
                .await,
        )?;
        Ok((ver.unwrap_or(0), json.map(|j| parse(&j)).transpose()?))
    }

    async fn snapshots(&self, ids: &[String]) -> Result<Vec<IncidentSnapshot>, StoreError> {
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

/// Turns the receipts and acks queued by every session of this node into few script
/// calls: it takes what is queued (up to [`MARK_BATCH`]), groups it by incident (an
/// incident's keys share one slot) keeping the order, and runs up to
/// [`MARK_CALLS_IN_FLIGHT`] calls at once; while they run, the next batch gathers.
struct MarkBatcher {
    conn: Arc<RwLock<ConnectionManager>>,
    healthy: Arc<AtomicBool>,
    script: Arc<redis::Script>,
}

impl MarkBatcher {
    async fn run(self, mut rx: tokio::sync::mpsc::Receiver<MarkJob>) {
        let this = Arc::new(self);
        let calls = Arc::new(tokio::sync::Semaphore::new(MARK_CALLS_IN_FLIGHT));
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while batch.len() < MARK_BATCH {
                match rx.try_recv() {
                    Ok(j) => batch.push(j),
                    Err(_) => break,
                }
            }
            let mut groups: Vec<(String, Vec<MarkJob>)> = Vec::new();
            for job in batch {
                match groups.iter_mut().find(|(id, _)| *id == job.incident) {
                    Some((_, jobs)) => jobs.push(job),
                    None => groups.push((job.incident.clone(), vec![job])),
                }
            }
            for (incident, jobs) in groups {
                let Ok(permit) = calls.clone().acquire_owned().await else {
                    return;
                };
                let this = this.clone();
                tokio::spawn(async move {
                    this.call(&incident, jobs).await;
                    drop(permit);
                });
            }
        }
    }

    async fn call(&self, incident: &str, jobs: Vec<MarkJob>) {
        let mut inv = self.script.prepare_invoke();
        inv.key(meta_key(incident))
            .key(recipients_key(incident))
            .key(timeline_key(incident))
            .key(counts_key(incident));
        for j in &jobs {
            inv.arg(&j.lead).arg(j.kind).arg(j.at).arg(&j.event);
        }
        let mut c = self.conn.read().unwrap_or_else(|p| p.into_inner()).clone();
        let reply: redis::RedisResult<Vec<String>> = inv.invoke_async(&mut c).await;
        self.healthy.store(reply.is_ok(), Ordering::Release);
        let reply = match reply {
            Ok(r) => r,
            Err(e) => {
                let msg = format!("redis: {e}");
                for j in jobs {
                    let _ = j.reply.send(Err(StoreError::Io(msg.clone())));
                }
                return;
            }
        };
        if reply.first().map(String::as_str) == Some("not_found") {
            for j in jobs {
                let _ = j.reply.send(Ok(MarkOutcome::NotFound));
            }
            return;
        }
        let meta: Result<Arc<IncidentMeta>, StoreError> = reply
            .first()
            .ok_or_else(|| io("empty mark reply"))
            .and_then(|m| parse(m).map(Arc::new));
        for (i, j) in jobs.into_iter().enumerate() {
            let outcome = meta.clone().and_then(|meta| {
                let (Some(what), Some(state)) = (reply.get(1 + 2 * i), reply.get(2 + 2 * i)) else {
                    return Err(io("short mark reply"));
                };
                let state = || parse::<Stored>(state).map(|s| s.state);
                Ok(match what.as_str() {
                    "changed" => MarkOutcome::Changed(meta, state()?),
                    "unchanged" => MarkOutcome::Unchanged(meta, state()?),
                    "not_recipient" => MarkOutcome::NotRecipient,
                    "closed" => MarkOutcome::Closed,
                    "too_many" => MarkOutcome::TooManyAnswers,
                    other => return Err(io(format!("unexpected mark reply {other:?}"))),
                })
            });
            let _ = j.reply.send(outcome);
        }
    }
}

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(format!("redis data: {e}"))
}

fn parse<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(io)
}

fn ordered(fields: Vec<(String, String)>) -> Result<Vec<RecipientState>, StoreError> {
    let mut v: Vec<Stored> = fields
        .iter()
        .map(|(_, s)| parse(s))
        .collect::<Result<_, _>>()?;
    v.sort_by_key(|s| s.i);
    Ok(v.into_iter().map(|s| s.state).collect())
}

fn mark_kind(mark: &Mark) -> &'static str {
    match mark {
        Mark::Receipt => "receipt",
        Mark::Ack {
            response: gridcast_protocol::model::Response::Accept,
            ..
        } => "accept",
        Mark::Ack { .. } => "decline",
    }
}

impl Store for RedisStore {
    fn create_incident(&self, new: NewIncident) -> StoreFuture<'_, IncidentSnapshot> {
        Box::pin(async move {
            let mut c = self.connection();
            let n: u64 = self.seen(c.incr(SEQ, 1).await)?;
            let outbox = new.outbox;
            let mut meta = new.meta;
            meta.id = format!("INC-{n:06}");
            meta.rev = 1;
            let id = meta.id.clone();
            let (recipients, issued) = issue_state(&meta, new.recipients);
            let fields: Vec<(String, String)> = recipients
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let s = Stored {
                        i,
                        state: r.clone(),
                    };
                    (
                        r.lead.clone(),
                        serde_json::to_string(&s).unwrap_or_default(),
                    )
                })
                .collect();
            // The incident's own keys in one transaction (one slot), then the indexes,
            // all sent as one pipeline: a reader never finds an id without its incident.
            let mut pipe = redis::pipe();
            pipe.atomic()
                .set(meta_key(&id), serde_json::to_string(&meta).map_err(io)?)
                .ignore()
                .xadd(
                    timeline_key(&id),
                    "*",
                    &[("e", serde_json::to_string(&issued).map_err(io)?)],
                )
                .ignore();
            if !fields.is_empty() {
                pipe.hset_multiple(recipients_key(&id), &fields).ignore();
            }
            let counts = crate::incident::counts(&recipients);
            pipe.hset_multiple(
                counts_key(&id),
                &[
                    ("pending", counts.pending),
                    ("delivered", counts.delivered),
                    ("accepted", counts.accepted),
                    ("declined", counts.declined),
                ],
            )
            .ignore();
            self.seen(pipe.query_async::<()>(&mut c).await)?;
            let mut index = redis::pipe();
            index
                .atomic()
                .zadd(INCIDENTS, &id, meta.issued_at)
                .ignore()
                .sadd(ACTIVE, &id)
                .ignore()
                .zadd(ESCALATIONS, &id, meta.ack_by)
                .ignore();
            if outbox {
                index
                    .zadd(OUTBOX, format!("{id}:{}", meta.rev), meta.issued_at)
                    .ignore();
            }
            self.seen(index.query_async::<()>(&mut c).await)?;
            Ok(IncidentSnapshot {
                meta: Arc::new(meta),
                recipients: Arc::new(recipients),
            })
        })
    }

    fn mark<'a>(
        &'a self,
        incident: &'a str,
        lead: &'a str,
        mark: Mark,
        at: u64,
    ) -> StoreFuture<'a, MarkOutcome> {
        Box::pin(async move {
            let gone = || StoreError::Io("redis: the mark batcher stopped".into());
            let (reply, answer) = tokio::sync::oneshot::channel();
            let job = MarkJob {
                incident: incident.to_owned(),
                lead: lead.to_owned(),
                kind: mark_kind(&mark),
                at,
                event: serde_json::to_string(&mark_event(lead, &mark, at)).map_err(io)?,
                reply,
            };
            self.marks.send(job).await.map_err(|_| gone())?;
            answer.await.map_err(|_| gone())?
        })
    }

    fn revise<'a>(
        &'a self,
        incident: &'a str,
        revision: Revision,
        by: &'a str,
        at: u64,
        outbox: bool,
    ) -> StoreFuture<'a, ReviseOutcome> {
        Box::pin(async move {
            // Revisions are rare operator actions: read, compute in Rust (the same
            // apply_revision as the embedded store), then compare-and-set in one script;
            // a concurrent revision makes us read again.
            for _ in 0..16 {
                let mut c = self.connection();
                let current: Option<String> = self.seen(c.get(meta_key(incident)).await)?;
                let Some(current) = current else {
                    return Ok(ReviseOutcome::NotFound);
                };
                let meta: IncidentMeta = parse(&current)?;
                if meta.state == IncidentState::Closed {
                    return Ok(ReviseOutcome::Closed);
                }
                let (next, event) = apply_revision(&meta, &revision, by, at);
                let swapped: i64 = self.seen(
                    redis::Script::new(REVISE_SCRIPT)
                        .key(meta_key(incident))
                        .key(timeline_key(incident))
                        .arg(&current)
                        .arg(serde_json::to_string(&next).map_err(io)?)
                        .arg(serde_json::to_string(&event).map_err(io)?)
                        .invoke_async(&mut c)
                        .await,
                )?;
                if swapped == 0 {
                    continue;
                }
                let mut index = redis::pipe();
                index.atomic();
                if next.state == IncidentState::Closed {
                    index
                        .srem(ACTIVE, incident)
                        .ignore()
                        .zadd(CLOSED, incident, at)
                        .ignore()
                        .zrem(ESCALATIONS, incident)
                        .ignore();
                }
                if outbox {
                    index
                        .zadd(OUTBOX, format!("{incident}:{}", next.rev), at)
                        .ignore();
                }
                self.seen(index.query_async::<()>(&mut c).await)?;
                return Ok(match self.snapshots(&[incident.to_owned()]).await?.pop() {
                    Some(s) => ReviseOutcome::Revised(s),
                    None => ReviseOutcome::NotFound,
                });
            }
            Err(StoreError::Io(format!(
                "incident {incident} kept changing under a revision; retry"
            )))
        })
    }

    fn recent(&self, closed_since: u64) -> StoreFuture<'_, Vec<IncidentSnapshot>> {
        Box::pin(async move {
            let ids = self.recent_ids(closed_since).await?;
            let mut snaps = self.snapshots(&ids).await?;
            snaps.retain(|s| s.meta.in_sync_window(closed_since));
            Ok(snaps)
        })
    }

    fn recent_metas(&self, closed_since: u64) -> StoreFuture<'_, Vec<Arc<IncidentMeta>>> {
        Box::pin(async move {
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
        })
    }

    fn incident<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<IncidentSnapshot>> {
        Box::pin(async move { Ok(self.snapshots(&[id.to_owned()]).await?.pop()) })
    }

    fn counts<'a>(
        &'a self,
        id: &'a str,
    ) -> StoreFuture<'a, Option<(Arc<IncidentMeta>, gridcast_protocol::api::Counts)>> {
        Box::pin(async move {
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
        })
    }

    fn incidents(&self, state: Option<IncidentState>) -> StoreFuture<'_, Vec<IncidentSnapshot>> {
        Box::pin(async move {
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
        })
    }

    fn incidents_for_lead<'a>(
        &'a self,
        lead: &'a str,
        closed_since: u64,
    ) -> StoreFuture<'a, Vec<(Arc<IncidentMeta>, RecipientState)>> {
        Box::pin(async move {
            let ids = self.recent_ids(closed_since).await?;
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let mut pipe = redis::pipe();
            for id in &ids {
                pipe.get(meta_key(id)).hget(recipients_key(id), lead);
            }
            let mut c = self.connection();
            let raw: Vec<Option<String>> = self.seen(pipe.query_async(&mut c).await)?;
            let mut out = Vec::new();
            for pair in raw.chunks(2) {
                if let (Some(meta), Some(r)) = (&pair[0], &pair[1]) {
                    out.push((
                        Arc::new(parse::<IncidentMeta>(meta)?),
                        parse::<Stored>(r)?.state,
                    ));
                }
            }
            // Oldest first: ids are zero-padded and grow with time.
            out.sort_by(|a, b| a.0.id.cmp(&b.0.id));
            Ok(out)
        })
    }

    fn timeline<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Vec<TimelineEvent>>> {
        Box::pin(async move {
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
        })
    }

    fn outbox_done<'a>(&'a self, incident: &'a str, rev: u64) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut c = self.connection();
            self.seen(
                c.zrem::<_, _, ()>(OUTBOX, format!("{incident}:{rev}"))
                    .await,
            )
        })
    }

    fn outbox_claim(&self, older_than: u64, now: u64) -> StoreFuture<'_, Vec<(String, u64)>> {
        Box::pin(async move {
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
        })
    }

    fn create_task<'a>(
        &'a self,
        incident: &'a str,
        mut task: TaskRecord,
        at: u64,
    ) -> StoreFuture<'a, TaskOutcome> {
        Box::pin(async move {
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
        })
    }

    fn update_task<'a>(
        &'a self,
        incident: &'a str,
        task: &'a str,
        lead: &'a str,
        status: TaskStatus,
        note: Option<String>,
        at: u64,
    ) -> StoreFuture<'a, TaskOutcome> {
        Box::pin(async move {
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
                let swapped: i64 = self.seen(
                    redis::Script::new(TASK_SCRIPT)
                        .key(tasks_key(incident))
                        .key(timeline_key(incident))
                        .arg(task)
                        .arg(&current)
                        .arg(serde_json::to_string(&next).map_err(io)?)
                        .arg(serde_json::to_string(&event).map_err(io)?)
                        .invoke_async(&mut c)
                        .await,
                )?;
                if swapped == 1 {
                    return Ok(TaskOutcome::Changed(next));
                }
            }
            Err(StoreError::Io(format!("task {task} kept changing; retry")))
        })
    }

    fn tasks<'a>(&'a self, incident: &'a str) -> StoreFuture<'a, Vec<TaskRecord>> {
        Box::pin(async move {
            let mut c = self.connection();
            let all: HashMap<String, String> = self.seen(c.hgetall(tasks_key(incident)).await)?;
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
        })
    }

    fn escalations_due(&self, now: u64, lease: u64) -> StoreFuture<'_, Vec<(String, u8)>> {
        Box::pin(async move {
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
            let done: Vec<Option<u8>> =
                self.seen(pipe.query_async(&mut self.connection()).await)?;
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
        })
    }

    fn escalation_done<'a>(
        &'a self,
        incident: &'a str,
        step: u8,
        events: Vec<TimelineEvent>,
        next_due: Option<u64>,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
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
        })
    }

    fn add_report(&self, mut report: ReportView) -> StoreFuture<'_, ReportView> {
        Box::pin(async move {
            let mut c = self.connection();
            let n: u64 = self.seen(c.incr(REPORT_SEQ, 1).await)?;
            report.id = format!("REP-{n:06}");
            let json = serde_json::to_string(&report).map_err(io)?;
            self.seen(c.hset::<_, _, _, ()>(REPORTS, &report.id, json).await)?;
            Ok(report)
        })
    }

    fn reports(&self) -> StoreFuture<'_, Vec<ReportView>> {
        Box::pin(async move {
            let mut c = self.connection();
            let (all, links): (HashMap<String, String>, HashMap<String, String>) = self.seen(
                redis::pipe()
                    .hgetall(REPORTS)
                    .hgetall(REPORT_LINKS)
                    .query_async(&mut c)
                    .await,
            )?;
            let mut out: Vec<ReportView> = all
                .values()
                .map(|j| parse::<ReportView>(j))
                .collect::<Result<_, _>>()?;
            for r in &mut out {
                r.incident = links.get(&r.id).cloned();
            }
            // Newest first: ids are zero-padded and grow.
            out.sort_by(|a, b| b.id.cmp(&a.id));
            Ok(out)
        })
    }

    fn link_report<'a>(&'a self, report: &'a str, incident: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut c = self.connection();
            let exists: bool = self.seen(c.hexists(REPORTS, report).await)?;
            if !exists {
                return Ok(false);
            }
            // First promotion wins.
            self.seen(c.hset_nx(REPORT_LINKS, report, incident).await)
        })
    }

    fn save_registry<'a>(&'a self, doc: &'a RegistryDoc) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let json = serde_json::to_string(doc).map_err(io)?;
            let mut c = self.connection();
            // The cluster announces it, sealed (`Cluster::announce_registry`).
            self.seen(
                redis::pipe()
                    .atomic()
                    .set(REGISTRY, json)
                    .ignore()
                    .incr(REGISTRY_VER, 1)
                    .ignore()
                    .query_async::<()>(&mut c)
                    .await,
            )
        })
    }

    fn load_registry(&self) -> StoreFuture<'_, Option<RegistryDoc>> {
        Box::pin(async move {
            let mut c = self.connection();
            let json: Option<String> = self.seen(c.get(REGISTRY).await)?;
            json.map(|j| parse(&j)).transpose()
        })
    }

    fn remember_mqtt_lead<'a>(
        &'a self,
        lead: &'a str,
        exp: u64,
        jti: Option<&'a str>,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut c = self.connection();
            let v = super::MqttLead {
                exp,
                jti: jti.map(str::to_owned),
            };
            let json = serde_json::to_string(&v).map_err(io)?;
            // Redis forgets it when the token expires (EXAT).
            let set = redis::cmd("SET")
                .arg(format!("{MQTT_LEAD}{lead}"))
                .arg(json)
                .arg("EXAT")
                .arg(exp)
                .query_async::<()>(&mut c)
                .await;
            self.seen(set)
        })
    }

    fn mqtt_lead<'a>(&'a self, lead: &'a str) -> StoreFuture<'a, Option<super::MqttLead>> {
        Box::pin(async move {
            let mut c = self.connection();
            let v: Option<String> = self.seen(c.get(format!("{MQTT_LEAD}{lead}")).await)?;
            let now = crate::now_ms() / 1000;
            Ok(v.map(|j| parse::<super::MqttLead>(&j))
                .transpose()?
                .filter(|l| l.exp > now))
        })
    }

    fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }
}
