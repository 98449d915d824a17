//! Durable state: incidents, recipient states and timelines.
//!
//! The core talks to a [`Store`] only; the embedded store (default) keeps state in memory
//! and makes every change durable in an append-only log before answering, and a Redis
//! store (cluster mode) will implement the same trait. A store decides status changes
//! atomically (so two devices acking at once cannot lose one) and answers only once the
//! change is durable: an `ok` to a phone is sent after the future resolves.

pub mod embedded;
mod fallback;
mod origin;
pub mod redis;
pub mod rules;
mod task;

pub use rules::{
    answers_used_up, apply_mark, apply_revision, counts, escalation_due, issue_state, mark_event,
};

pub use fallback::{FallbackRecord, FallbackState};
pub use origin::{CapOrigin, Dialect};
pub use task::{
    TaskOutcome, TaskRecord, TaskRefusal, apply_task_update, task_event, task_key, task_status_name,
};

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use gridcast_protocol::api::{Approval, ApprovalState, ReportView, TimelineEvent};
use gridcast_protocol::frame::{IncidentView, Targets, TaskStatus};
use gridcast_protocol::model::{Category, IncidentState, Level, Response, Role, Status};
use gridcast_protocol::registry::RegistryDoc;
use gridcast_protocol::time::rfc3339;
use gridcast_protocol::{GridCode, Target};
use serde::{Deserialize, Serialize};

/// A boxed future, so that `Store` can be used as `dyn Store`.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Why the store could not do what was asked. Callers answer `unavailable` and keep
/// nothing in memory that the store did not confirm.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// Writing or syncing failed; the store refuses further writes until restarted.
    #[error("store I/O failed: {0}")]
    Io(String),
    /// The store's writer has stopped (shutdown).
    #[error("store is shut down")]
    Closed,
}

/// What does not change about an incident after issue (plus its `rev` and state).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentMeta {
    /// Incident id.
    pub id: String,
    /// Revision.
    pub rev: u64,
    /// Active or closed.
    pub state: IncidentState,
    /// Title.
    pub title: String,
    /// Body.
    pub body: String,
    /// Level.
    pub level: Level,
    /// Category.
    pub category: Category,
    /// Drill.
    pub drill: bool,
    /// Issue time, Unix ms.
    pub issued_at: u64,
    /// End of the ack window, Unix ms.
    pub ack_by: u64,
    /// Targets as requested (shapes in WGS 84).
    pub targets: Targets,
    /// Where `targets.area` reached when it was issued, as at most [`MAX_REACH`]
    /// prefixes: the grids themselves when there are few, else their communities,
    /// towns… (the recipients are exact and stored apart; this is for routing console
    /// events, jurisdiction checks and resync, where covering a little more is safe, and
    /// it keeps every copy of the incident small).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub area_grids: Vec<Target>,
    /// The CAP alert it came from, if it came as CAP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap: Option<CapOrigin>,
    /// Operator who issued it.
    pub issued_by: String,
    /// When it was closed, Unix ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<u64>,
    /// The held request (`APR-…`) it was issued from, under the two-person rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<String>,
    /// A drill that asked for the fallback channel (real activations always have it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fallback: bool,
}

impl IncidentMeta {
    /// The wire view.
    pub fn view(&self) -> IncidentView {
        IncidentView {
            id: self.id.clone(),
            rev: self.rev,
            state: self.state,
            title: self.title.clone(),
            body: self.body.clone(),
            level: self.level,
            category: self.category,
            drill: self.drill,
            issued_at: rfc3339(self.issued_at),
            ack_by: rfc3339(self.ack_by),
            targets: self.targets.clone(),
        }
    }
}

/// Most prefixes an incident keeps of where its area reached ([`IncidentMeta::area_grids`]).
pub const MAX_REACH: usize = 256;

/// `grids` in at most [`MAX_REACH`] prefixes: the codes themselves, or their 12-, 9-,
/// 6-, 4- or 2-digit prefixes, the longest that fit.
pub fn reach_of(grids: &[GridCode]) -> Vec<Target> {
    for len in [19, 12, 9, 6, 4, 2] {
        let mut prefixes: Vec<&str> = grids
            .iter()
            .map(|g| &g.as_str()[..g.as_str().len().min(len)])
            .collect();
        prefixes.sort_unstable();
        prefixes.dedup();
        if prefixes.len() <= MAX_REACH || len == 2 {
            return prefixes
                .into_iter()
                .filter_map(|p| Target::parse(p).ok())
                .collect();
        }
    }
    Vec::new()
}

impl IncidentMeta {
    /// True when `grid` may be targeted: inside a code target, or inside where the
    /// area reached.
    pub fn reaches(&self, grid: &str) -> bool {
        self.targets
            .codes
            .iter()
            .chain(&self.area_grids)
            .any(|t| grid.starts_with(t.as_str()))
    }

    /// True when everything targeted lies inside `prefix` (a jurisdiction).
    pub fn within(&self, prefix: &str) -> bool {
        self.targets
            .codes
            .iter()
            .all(|t| t.as_str().starts_with(prefix))
            && self
                .area_grids
                .iter()
                .all(|g| g.as_str().starts_with(prefix))
    }

    /// The codes a console event about it is routed by: its code targets and the grids
    /// its area reached.
    pub fn route_codes(&self) -> Vec<String> {
        self.targets
            .codes
            .iter()
            .map(|c| c.to_string())
            .chain(self.area_grids.iter().map(|g| g.to_string()))
            .collect()
    }
}

impl IncidentMeta {
    /// True when a lead's sync (and a resync) carries it: active, or closed at or after
    /// `closed_since` (Unix ms).
    pub fn in_sync_window(&self, closed_since: u64) -> bool {
        match self.state {
            IncidentState::Active => true,
            IncidentState::Closed => self.closed_at.unwrap_or(0) >= closed_since,
        }
    }
}

/// A new incident, before the store gives it an id.
#[derive(Debug, Clone)]
pub struct NewIncident {
    /// Everything but `id` and `rev` (ignored).
    pub meta: IncidentMeta,
    /// Recipients resolved from the registry at issue time, in registry order.
    pub recipients: Vec<(String, GridCode, Role)>,
    /// Record an outbox entry with the incident (MQTT on): its publish is finished by
    /// a sweeper if this node dies before it publishes.
    pub outbox: bool,
}

/// One recipient's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipientState {
    /// Lead id.
    pub lead: String,
    /// Grid of the matching assignment.
    pub grid: GridCode,
    /// Role of the matching assignment.
    pub role: Role,
    /// Latest status.
    pub status: Status,
    /// Unix ms of the receipt (or first ack).
    pub delivered_at: Option<u64>,
    /// Unix ms of the latest ack.
    pub acked_at: Option<u64>,
    /// Answers recorded (each change between accept and decline is one); bounded by
    /// [`MAX_ANSWERS`] so that one lead cannot flip its answer into the timeline without end.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub answers: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Most answers a lead may record for one incident (the first one included); later
/// changes are refused with `rate_limited` and the last recorded answer stands.
pub const MAX_ANSWERS: u32 = 10;

/// An incident and all its recipients, as of one moment.
#[derive(Debug, Clone)]
pub struct IncidentSnapshot {
    /// The incident.
    pub meta: Arc<IncidentMeta>,
    /// Recipients in registry order.
    pub recipients: Arc<Vec<RecipientState>>,
}

impl IncidentSnapshot {
    /// The incident with its recipients counted by status.
    pub fn counted(self) -> (Arc<IncidentMeta>, gridcast_protocol::api::Counts) {
        let counts = counts(&self.recipients);
        (self.meta, counts)
    }
}

/// A change a lead makes to its own status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
pub enum Mark {
    /// The phone has the incident.
    Receipt,
    /// The person answered.
    Ack {
        /// Accept or decline.
        response: Response,
        /// Optional note.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
}

/// What a [`Mark`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum MarkOutcome {
    /// Recorded durably; the recipient's new state.
    Changed(Arc<IncidentMeta>, RecipientState),
    /// Nothing to record (a retry, or a receipt after an answer); already durable.
    Unchanged(Arc<IncidentMeta>, RecipientState),
    /// No such incident.
    NotFound,
    /// The lead is not a recipient.
    NotRecipient,
    /// The incident is closed (acks only; receipts of closed incidents are harmless).
    Closed,
    /// The lead changed its answer [`MAX_ANSWERS`] times already; nothing changed.
    TooManyAnswers,
}

/// One mark of a batch ([`Store::mark_many`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkRequest {
    /// Incident id.
    pub incident: String,
    /// The lead marking.
    pub lead: String,
    /// What.
    pub mark: Mark,
    /// When (Unix ms).
    pub at: u64,
}

/// What [`Store::mark_many`] resolves to: one outcome per mark, in order.
pub type MarksFuture<'a> =
    Pin<Box<dyn Future<Output = Vec<Result<MarkOutcome, StoreError>>> + Send + 'a>>;

/// A change to the incident itself: it bumps `rev` and reaches every recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
pub enum Revision {
    /// A new body (what changed on the ground).
    Update {
        /// The new body.
        body: String,
    },
    /// The incident is over.
    Close {
        /// Why, for the record.
        reason: String,
    },
}

/// What a [`Revision`] did.
#[derive(Debug, Clone)]
pub enum ReviseOutcome {
    /// Recorded durably; the incident as it is now.
    Revised(IncidentSnapshot),
    /// No such incident.
    NotFound,
    /// The incident was already closed; nothing changed.
    Closed,
}

/// One incident of a lead's sync: its meta, the lead's state, and (active incidents)
/// its tasks.
pub type LeadSync = (Arc<IncidentMeta>, RecipientState, Vec<TaskRecord>);

/// Durable incident state. See the module docs.
pub trait Store: Send + Sync + 'static {
    /// Records a new incident and returns it with its id and `rev` 1, once durable.
    fn create_incident(&self, new: NewIncident) -> StoreFuture<'_, IncidentSnapshot>;
    /// Applies a lead's receipt or ack; durable before the future resolves.
    fn mark<'a>(
        &'a self,
        incident: &'a str,
        lead: &'a str,
        mark: Mark,
        at: u64,
    ) -> StoreFuture<'a, MarkOutcome>;
    /// Applies many marks, each exactly as [`Store::mark`] would, in order; durable
    /// before the future resolves. Backends that can record them together override it.
    fn mark_many<'a>(&'a self, marks: &'a [MarkRequest]) -> MarksFuture<'a> {
        Box::pin(futures_util::future::join_all(
            marks
                .iter()
                .map(|m| self.mark(&m.incident, &m.lead, m.mark.clone(), m.at)),
        ))
    }
    /// Applies an operator's revision (update or close), durable before the future
    /// resolves; with `outbox`, the new `rev` gets an outbox entry (MQTT on).
    fn revise<'a>(
        &'a self,
        incident: &'a str,
        revision: Revision,
        by: &'a str,
        at: u64,
        outbox: bool,
    ) -> StoreFuture<'a, ReviseOutcome>;
    /// Active incidents and those closed at or after `closed_since` (Unix ms).
    fn recent(&self, closed_since: u64) -> StoreFuture<'_, Vec<IncidentSnapshot>>;
    /// The incidents of [`Store::recent`] without their recipients (a resync compares
    /// revisions first and reads recipients only for what it must resend).
    fn recent_metas(&self, closed_since: u64) -> StoreFuture<'_, Vec<Arc<IncidentMeta>>> {
        Box::pin(async move {
            Ok(self
                .recent(closed_since)
                .await?
                .into_iter()
                .map(|s| s.meta)
                .collect())
        })
    }
    /// One incident.
    fn incident<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<IncidentSnapshot>>;
    /// One incident with its recipients counted by status, without reading every
    /// recipient where the store keeps the counts (the console asks a few times a
    /// second for every incident that changed).
    fn counts<'a>(
        &'a self,
        id: &'a str,
    ) -> StoreFuture<'a, Option<(Arc<IncidentMeta>, gridcast_protocol::api::Counts)>> {
        Box::pin(async move { Ok(self.incident(id).await?.map(IncidentSnapshot::counted)) })
    }
    /// All incidents, newest first, optionally of one state.
    fn incidents(&self, state: Option<IncidentState>) -> StoreFuture<'_, Vec<IncidentSnapshot>>;
    /// The incidents a lead is a recipient of that are active, or closed at or after
    /// `closed_since` (Unix ms), with the lead's own state; oldest first.
    fn incidents_for_lead<'a>(
        &'a self,
        lead: &'a str,
        closed_since: u64,
    ) -> StoreFuture<'a, Vec<(Arc<IncidentMeta>, RecipientState)>>;
    /// What a lead's sync shows: [`Store::incidents_for_lead`], each active incident
    /// with all its tasks (the caller keeps the lead's open ones). The Redis store reads
    /// it in two round trips however many incidents there are (a reconnect storm is
    /// one sync per phone).
    fn sync_for_lead<'a>(
        &'a self,
        lead: &'a str,
        closed_since: u64,
    ) -> StoreFuture<'a, Vec<LeadSync>> {
        Box::pin(async move {
            let mut out = Vec::new();
            for (meta, state) in self.incidents_for_lead(lead, closed_since).await? {
                let tasks = if meta.state == IncidentState::Active {
                    self.tasks(&meta.id).await?
                } else {
                    Vec::new()
                };
                out.push((meta, state, tasks));
            }
            Ok(out)
        })
    }
    /// An incident's timeline, in order.
    fn timeline<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Vec<TimelineEvent>>>;
    /// The outbox entry of an incident's `rev` is done (its MQTT publish went out).
    fn outbox_done<'a>(&'a self, incident: &'a str, rev: u64) -> StoreFuture<'a, ()>;
    /// Outbox entries pending since before `older_than` (Unix ms), claimed for this
    /// caller: their age restarts at `now`, so a claimer that dies is retried later.
    fn outbox_claim(&self, older_than: u64, now: u64) -> StoreFuture<'_, Vec<(String, u64)>>;
    /// Escalation: incidents whose next step is due at `now`, each with that step (1 grid
    /// lead, 2 instructor, 3 console), claimed until `now + lease` so that one node at a
    /// time acts on each. Step `k` is due at `ack_by + (k - 1) × window`. Open tasks past
    /// their due time come the same way, keyed by task id ([`task_key`]).
    fn escalations_due(&self, now: u64, lease: u64) -> StoreFuture<'_, Vec<(String, u8)>>;
    /// Records `step` as done with its timeline events, durably; false when it was done
    /// already (by another node, or before a restart). `next_due` is when the following
    /// step is due (`None` after the last).
    fn escalation_done<'a>(
        &'a self,
        incident: &'a str,
        step: u8,
        events: Vec<TimelineEvent>,
        next_due: Option<u64>,
    ) -> StoreFuture<'a, bool>;
    /// Records a request held under the two-person rule, durably; the store gives its
    /// id (`APR-000001`, …).
    fn add_approval(&self, approval: Approval) -> StoreFuture<'_, Approval>;
    /// Every held request, oldest first.
    fn approvals(&self) -> StoreFuture<'_, Vec<Approval>>;
    /// Replaces a held request, durably, if it is still in state `expect`; false when
    /// it is not (another person or node decided first) or does not exist.
    fn update_approval<'a>(
        &'a self,
        approval: &'a Approval,
        expect: ApprovalState,
    ) -> StoreFuture<'a, bool>;
    /// Queues fallback messages durably ([`FallbackRecord`]); an id already queued is
    /// left as it is (a text queued at issue and again when the window passes is one
    /// text). Returns how many were new.
    fn fallback_add(&self, records: Vec<FallbackRecord>) -> StoreFuture<'_, usize>;
    /// Claims up to `limit` messages due at `now` for `lease` ms
    /// ([`FallbackRecord::claim`]), durably.
    fn fallback_claim(
        &self,
        now: u64,
        lease: u64,
        limit: usize,
    ) -> StoreFuture<'_, Vec<FallbackRecord>>;
    /// Replaces a message with `record` if the stored one still has `expect` claims
    /// (nobody claimed or changed it since: a sender passes its claim's, a status
    /// callback the one it read and writes one more), with `events` added to its
    /// incident's timeline and `next` queued (a 叫应's next call), all in one durable
    /// write; false when it changed meanwhile.
    fn fallback_update<'a>(
        &'a self,
        record: &'a FallbackRecord,
        expect: u64,
        events: Vec<TimelineEvent>,
        next: Option<FallbackRecord>,
    ) -> StoreFuture<'a, bool>;
    /// One message.
    fn fallback_get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<FallbackRecord>>;
    /// An incident's messages.
    fn fallback_of<'a>(&'a self, incident: &'a str) -> StoreFuture<'a, Vec<FallbackRecord>>;
    /// Appends events to an incident's timeline (a check-in, …), durably; false when
    /// there is no such incident.
    fn add_events<'a>(
        &'a self,
        incident: &'a str,
        events: Vec<TimelineEvent>,
    ) -> StoreFuture<'a, bool>;
    /// Adds a task to an active incident; its id is `<incident>-T<n>` and its rev 1.
    fn create_task<'a>(
        &'a self,
        incident: &'a str,
        task: TaskRecord,
        at: u64,
    ) -> StoreFuture<'a, TaskOutcome>;
    /// Applies a lead's task update ([`apply_task_update`]) atomically, durably.
    fn update_task<'a>(
        &'a self,
        incident: &'a str,
        task: &'a str,
        lead: &'a str,
        status: TaskStatus,
        note: Option<String>,
        at: u64,
    ) -> StoreFuture<'a, TaskOutcome>;
    /// The tasks of an incident, in creation order.
    fn tasks<'a>(&'a self, incident: &'a str) -> StoreFuture<'a, Vec<TaskRecord>>;
    /// Records a lead's report; durable before the future resolves. `report.id` is
    /// ignored: the store numbers reports (`REP-000001`, …).
    fn add_report(&self, report: ReportView) -> StoreFuture<'_, ReportView>;
    /// Every report, newest first.
    fn reports(&self) -> StoreFuture<'_, Vec<ReportView>>;
    /// Links a report to the incident opened from it; false if it was already linked
    /// (first promotion wins) or does not exist.
    fn link_report<'a>(&'a self, report: &'a str, incident: &'a str) -> StoreFuture<'a, bool>;
    /// Persists the registry in force (so a restart keeps run-time changes).
    fn save_registry<'a>(&'a self, doc: &'a RegistryDoc) -> StoreFuture<'a, ()>;
    /// The last registry saved, if any.
    fn load_registry(&self) -> StoreFuture<'_, Option<RegistryDoc>>;
    /// False once the store has failed and refuses writes.
    fn healthy(&self) -> bool;
    /// Remembers, for every node, that MQTT lead `lead` said `hello` with a good token
    /// that expires at `exp` (Unix s) and has id `jti`; an MQTT lead's other frames
    /// count only while this holds.
    fn remember_mqtt_lead<'a>(
        &'a self,
        lead: &'a str,
        exp: u64,
        jti: Option<&'a str>,
    ) -> StoreFuture<'a, ()>;
    /// The `(exp, jti)` of an MQTT lead's last good `hello`, if any and not expired.
    fn mqtt_lead<'a>(&'a self, lead: &'a str) -> StoreFuture<'a, Option<MqttLead>>;
    /// Lets go of the incidents closed before `cutoff` (Unix ms) and of the reports
    /// taken before it, and compacts what the store keeps; `None` when there was
    /// nothing worth doing. The default does nothing.
    fn maintain(&self, _cutoff: u64) -> StoreFuture<'_, Option<Compacted>> {
        Box::pin(async { Ok(None) })
    }
    /// Takes the lock `name` for every node of a cluster until [`Store::unlock`] or
    /// `ttl_ms` passes (a holder that dies lets go by itself); false when another
    /// holder has it. `token` names the holder. A store for one node has no other
    /// node to exclude: the default always grants it (callers also lock locally).
    fn try_lock<'a>(
        &'a self,
        _name: &'a str,
        _token: &'a str,
        _ttl_ms: u64,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async { Ok(true) })
    }
    /// Lets go of a lock taken with `token` (another holder's lock is left alone).
    fn unlock<'a>(&'a self, _name: &'a str, _token: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async { Ok(()) })
    }
}

/// An MQTT lead's last good `hello`: when its token expires (Unix s) and its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MqttLead {
    /// Expiry of the token, Unix seconds.
    pub exp: u64,
    /// The token's id, for revocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

/// What [`Store::maintain`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Compacted {
    /// Closed incidents that left the store.
    pub incidents: usize,
    /// Reports that left the store.
    pub reports: usize,
    /// Size of what the store keeps before and after, in bytes.
    pub bytes_before: u64,
    /// After.
    pub bytes_after: u64,
}

#[cfg(test)]
mod tests;
