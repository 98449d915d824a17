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
//! | `gc:outbox` | zset | `ID:rev` → pending since (ms): fan-outs not yet finished on every channel |
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

mod escalation;
mod extra;
mod fallback;
mod marks;
mod outbox;
mod reads;
mod registry;
mod replicas;
mod reports;
mod scripts;
mod target;
mod tasks;

pub use target::RedisTarget;

use marks::{MARK_BATCH, MarkBatcher, MarkJob};
use tasks::tasks_from;

/// Fallback messages, as the store answers them.
type FallbackFuture<'a> = StoreFuture<'a, Vec<super::FallbackRecord>>;

use scripts::{
    APPROVAL_SCRIPT, CLAIM_SCRIPT, ESCALATED_SCRIPT, EVENTS_SCRIPT, MARK_SCRIPT, REVISE_SCRIPT,
    TASK_SCRIPT, UNLOCK_SCRIPT,
};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use std::collections::HashMap;

use gridcast_protocol::api::{Approval, ApprovalState, ReportView, TimelineEvent};
use gridcast_protocol::model::IncidentState;
use gridcast_protocol::registry::RegistryDoc;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

use super::{
    IncidentMeta, IncidentSnapshot, LeadSync, Mark, MarkOutcome, NewIncident, RecipientState,
    ReviseOutcome, Revision, Store, StoreError, StoreFuture, TaskOutcome, TaskRecord,
    apply_revision, apply_task_update, issue_state, mark_event, task_event, task_key,
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
/// Requests held under the two-person rule: id → JSON, and their counter.
const APPROVALS: &str = "gc:approvals";
const APPROVAL_SEQ: &str = "gc:approval:seq";
/// `gc:lock:{name}`: a short lock between nodes (its value names the holder).
const LOCK: &str = "gc:lock:";
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

/// The Redis store. Cheap to clone.
#[derive(Clone)]
pub struct RedisStore {
    target: Arc<RedisTarget>,
    /// Replicas every change must reach before it is `ok`'d ([`replicas`]).
    min_replicas: usize,
    /// Grows with every [`RedisStore::renew`]: a WAIT on a connection newer than the
    /// write's would count nothing of it.
    generation: Arc<std::sync::atomic::AtomicU64>,
    /// A replication shortfall asked for the master again (behind Sentinel).
    renew_wanted: Arc<AtomicBool>,
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
    pub async fn open(target: RedisTarget, min_replicas: usize) -> redis::RedisResult<Self> {
        let conn = Arc::new(RwLock::new(connect(&target.client().await?).await?));
        let healthy = Arc::new(AtomicBool::new(true));
        let generation: Arc<std::sync::atomic::AtomicU64> = Arc::default();
        let (marks, rx) = tokio::sync::mpsc::channel(MARK_BATCH * 16);
        let batcher = MarkBatcher {
            conn: conn.clone(),
            healthy: healthy.clone(),
            script: Arc::new(redis::Script::new(
                &MARK_SCRIPT.replace("MAX_ANSWERS", &super::MAX_ANSWERS.to_string()),
            )),
            min_replicas,
            generation: generation.clone(),
        };
        // Ends when the last clone of the store is dropped (the channel closes), so it
        // cannot be tracked: shutdown would wait for the store that holds it.
        #[allow(
            clippy::disallowed_methods,
            reason = "ends with the store, after the tracker"
        )]
        tokio::spawn(batcher.run(rx));
        Ok(Self {
            target: Arc::new(target),
            min_replicas,
            generation,
            renew_wanted: Arc::default(),
            conn,
            marks,
            healthy,
        })
    }

    /// Where Redis is (the cluster's subscriptions connect there too).
    pub fn target(&self) -> &RedisTarget {
        &self.target
    }

    /// The connection in use, for the cluster's own keys.
    pub fn connection(&self) -> ConnectionManager {
        self.conn.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the connection with a new one (after commands time out on a connection
    /// that looks open: a failover behind a proxy, a half-open TCP connection).
    pub async fn renew(&self) -> redis::RedisResult<()> {
        // Behind Sentinel: the master as the sentinels say now.
        let fresh = connect(&self.target.client().await?).await?;
        *self.conn.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Records the outcome of a call in `healthy` and maps the error.
    fn seen<T>(&self, r: redis::RedisResult<T>) -> Result<T, StoreError> {
        self.healthy.store(r.is_ok(), Ordering::Release);
        r.map_err(|e| StoreError::Io(format!("redis: {e}")))
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
        Box::pin(self.created(async move {
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
            let counts = super::counts(&recipients);
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
        }))
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
        Box::pin(self.durable(async move {
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
        }))
    }

    fn recent(&self, closed_since: u64) -> StoreFuture<'_, Vec<IncidentSnapshot>> {
        Box::pin(self.read_recent(closed_since))
    }

    fn recent_metas(&self, closed_since: u64) -> StoreFuture<'_, Vec<Arc<IncidentMeta>>> {
        Box::pin(self.read_recent_metas(closed_since))
    }

    fn incident<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<IncidentSnapshot>> {
        Box::pin(async move { Ok(self.snapshots(&[id.to_owned()]).await?.pop()) })
    }

    fn counts<'a>(
        &'a self,
        id: &'a str,
    ) -> StoreFuture<'a, Option<(Arc<IncidentMeta>, gridcast_protocol::api::Counts)>> {
        Box::pin(self.read_counts(id))
    }

    fn incidents(&self, state: Option<IncidentState>) -> StoreFuture<'_, Vec<IncidentSnapshot>> {
        Box::pin(self.read_incidents(state))
    }

    fn incidents_for_lead<'a>(
        &'a self,
        lead: &'a str,
        closed_since: u64,
    ) -> StoreFuture<'a, Vec<(Arc<IncidentMeta>, RecipientState)>> {
        Box::pin(self.read_incidents_for_lead(lead, closed_since))
    }

    fn sync_for_lead<'a>(
        &'a self,
        lead: &'a str,
        closed_since: u64,
    ) -> StoreFuture<'a, Vec<LeadSync>> {
        Box::pin(self.read_sync_for_lead(lead, closed_since))
    }

    fn timeline<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Vec<TimelineEvent>>> {
        Box::pin(self.read_timeline(id))
    }

    fn outbox_done<'a>(&'a self, incident: &'a str, rev: u64) -> StoreFuture<'a, ()> {
        Box::pin(self.clear_outbox(incident, rev))
    }

    fn outbox_claim(&self, older_than: u64, now: u64) -> StoreFuture<'_, Vec<(String, u64)>> {
        Box::pin(self.claim_outbox(older_than, now))
    }

    fn create_task<'a>(
        &'a self,
        incident: &'a str,
        task: TaskRecord,
        at: u64,
    ) -> StoreFuture<'a, TaskOutcome> {
        Box::pin(self.created(self.insert_task(incident, task, at)))
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
        Box::pin(self.durable(self.swap_task(incident, task, lead, status, note, at)))
    }

    fn tasks<'a>(&'a self, incident: &'a str) -> StoreFuture<'a, Vec<TaskRecord>> {
        Box::pin(self.read_tasks(incident))
    }

    fn escalations_due(&self, now: u64, lease: u64) -> StoreFuture<'_, Vec<(String, u8)>> {
        Box::pin(self.claim_escalations(now, lease))
    }

    fn escalation_done<'a>(
        &'a self,
        incident: &'a str,
        step: u8,
        events: Vec<TimelineEvent>,
        next_due: Option<u64>,
    ) -> StoreFuture<'a, bool> {
        Box::pin(self.durable(self.finish_escalation(incident, step, events, next_due)))
    }

    fn add_report(&self, report: ReportView) -> StoreFuture<'_, ReportView> {
        Box::pin(self.created(self.insert_report(report)))
    }

    fn reports(&self) -> StoreFuture<'_, Vec<ReportView>> {
        Box::pin(self.read_reports())
    }

    fn link_report<'a>(&'a self, report: &'a str, incident: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(self.durable(self.link_report_once(report, incident)))
    }

    fn add_approval(&self, approval: Approval) -> StoreFuture<'_, Approval> {
        Box::pin(self.created(self.insert_approval(approval)))
    }

    fn approvals(&self) -> StoreFuture<'_, Vec<Approval>> {
        Box::pin(self.read_approvals())
    }

    fn update_approval<'a>(
        &'a self,
        approval: &'a Approval,
        expect: ApprovalState,
    ) -> StoreFuture<'a, bool> {
        Box::pin(self.durable(self.replace_approval(approval, expect)))
    }

    fn add_events<'a>(
        &'a self,
        incident: &'a str,
        events: Vec<TimelineEvent>,
    ) -> StoreFuture<'a, bool> {
        Box::pin(self.durable(self.append_events(incident, events)))
    }

    fn fallback_add(&self, records: Vec<super::FallbackRecord>) -> StoreFuture<'_, usize> {
        Box::pin(self.durable(self.queue_fallback(records)))
    }

    fn fallback_claim(&self, now: u64, lease: u64, limit: usize) -> FallbackFuture<'_> {
        Box::pin(self.durable(self.claim_fallback(now, lease, limit)))
    }

    fn fallback_update<'a>(
        &'a self,
        record: &'a super::FallbackRecord,
        expect: u64,
        events: Vec<TimelineEvent>,
        next: Option<super::FallbackRecord>,
    ) -> StoreFuture<'a, bool> {
        Box::pin(self.durable(self.update_fallback(record, expect, events, next)))
    }

    fn fallback_get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<super::FallbackRecord>> {
        Box::pin(self.read_fallback(id))
    }

    fn fallback_of<'a>(&'a self, incident: &'a str) -> FallbackFuture<'a> {
        Box::pin(self.read_fallback_of(incident))
    }

    fn try_lock<'a>(&'a self, name: &'a str, token: &'a str, ttl_ms: u64) -> StoreFuture<'a, bool> {
        Box::pin(self.durable(self.take_lock(name, token, ttl_ms)))
    }

    fn unlock<'a>(&'a self, name: &'a str, token: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(self.release_lock(name, token))
    }

    fn save_registry<'a>(&'a self, doc: &'a RegistryDoc) -> StoreFuture<'a, ()> {
        Box::pin(self.durable(self.write_registry(doc)))
    }

    fn load_registry(&self) -> StoreFuture<'_, Option<RegistryDoc>> {
        Box::pin(self.read_registry())
    }

    fn remember_mqtt_lead<'a>(
        &'a self,
        lead: &'a str,
        exp: u64,
        jti: Option<&'a str>,
    ) -> StoreFuture<'a, ()> {
        Box::pin(self.durable(self.write_mqtt_lead(lead, exp, jti)))
    }

    fn mqtt_lead<'a>(&'a self, lead: &'a str) -> StoreFuture<'a, Option<super::MqttLead>> {
        Box::pin(self.read_mqtt_lead(lead))
    }

    fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }
}
