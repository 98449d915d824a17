//! The embedded store: state in memory, every change appended to a checksummed log and
//! fsynced before anyone is told it happened.
//!
//! Why a log and not an embedded database: the hub's state is a sequence of small events
//! (an incident issued, a receipt, an ack) that is always read whole at start-up, and the
//! hot path is thousands of receipts a second. One writer thread appends each batch of
//! requests with one `write` and one `fdatasync` (group commit), so a fan-out to 10,000
//! phones costs a handful of syncs, not 10,000. Each line is `CRC32(hex) JSON\n`; at
//! start-up a torn tail (a crash mid-write) is cut off, corruption before valid lines
//! stops the start with a clear error. Compaction is not needed yet: a busy year of
//! incidents is far below memory.
//!
//! The writer thread is a plain OS thread: `fdatasync` blocks, and it must never block
//! the runtime. Readers take the state's read lock briefly and never across `.await`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use gridcast_protocol::api::{Approval, ApprovalState, ReportView, TimelineEvent};
use gridcast_protocol::model::IncidentState;
use gridcast_protocol::registry::RegistryDoc;
use tokio::sync::{mpsc, oneshot};

use super::{
    IncidentMeta, IncidentSnapshot, Mark, MarkOutcome, MarkRequest, MarksFuture, NewIncident,
    RecipientState, ReviseOutcome, Revision, Store, StoreError, StoreFuture, TaskOutcome,
    TaskRecord,
};
use gridcast_protocol::frame::TaskStatus;

mod extra;
mod fallback;
mod files;
mod log;
mod state;
mod writer;

pub use files::{private_dir, private_options};
use files::{private_file, write_atomically};
use log::replay;
use state::{State, TaskChange};
use writer::{Request, writer};

const LOG_FILE: &str = "incidents.log";
/// A compacted log while it is written; renamed over the log once it is durable.
const COMPACT_FILE: &str = "incidents.log.compact";
const REGISTRY_FILE: &str = "registry.json";
const LOCK_FILE: &str = "LOCK";
/// How long a refused write keeps `/readyz` at 503 before the store is tried again.
const REFUSING_UNREADY_MS: u64 = 10_000;
/// Requests waiting for the writer; callers wait (backpressure) when it is full.
const QUEUE: usize = 16_384;
/// Most requests one group commit takes.
pub(super) const MAX_BATCH: usize = 4_096;

/// Why the store could not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The data directory could not be created or read.
    #[error("data dir {0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// Another hub holds the data directory.
    #[error("data dir {0} is in use by another gridcast-hub (lock file {LOCK_FILE})")]
    Locked(PathBuf),
    /// The log is damaged before its tail.
    #[error(
        "{path}: corrupt record at byte {offset} followed by valid records; refusing to start (restore a backup or truncate the file at that offset)"
    )]
    Corrupt {
        /// The log.
        path: PathBuf,
        /// Where the bad record starts.
        offset: usize,
    },
}

struct Shared {
    state: RwLock<State>,
    /// False once a write or sync failed in a way the store cannot undo (until restart).
    healthy: AtomicBool,
    /// MQTT leads whose hello was good (in memory only: after a restart an MQTT phone
    /// says hello again when its frame is refused as `unauthorized`).
    mqtt_leads: dashmap::DashMap<String, super::MqttLead>,
    /// Since when (Unix ms; 0 = not) writes are refused (disk full, file too large)
    /// while the log is intact; the next good write clears it.
    refusing_since: std::sync::atomic::AtomicU64,
    dir: PathBuf,
    /// Held for the life of the store so that no second hub opens the same directory.
    _lock: File,
}

/// The embedded store. Cheap to clone.
#[derive(Clone)]
pub struct EmbeddedStore {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Request>,
}

impl EmbeddedStore {
    /// One request to the writer for any number of marks; one outcome each, in order.
    async fn marks(&self, batch: Vec<MarkRequest>) -> Vec<Result<MarkOutcome, StoreError>> {
        let n = batch.len();
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Request::Marks(batch, reply)).await.is_err() {
            return vec![Err(StoreError::Closed); n];
        }
        rx.await
            .unwrap_or_else(|_| vec![Err(StoreError::Closed); n])
    }

    /// Opens (or creates) the store in `dir`, replays its log and starts the writer.
    pub fn open(dir: &Path) -> Result<Self, OpenError> {
        let io = |e| OpenError::Io(dir.to_owned(), e);
        private_dir(dir).map_err(io)?;
        for name in [LOCK_FILE, LOG_FILE, REGISTRY_FILE] {
            private_file(&dir.join(name)).map_err(io)?;
        }
        let lock = private_options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))
            .map_err(io)?;
        // A store closed a moment ago in this process may still be finishing its last
        // batch on its writer thread, which holds the lock until it ends: wait briefly.
        let mut tries = 0;
        while lock.try_lock().is_err() {
            tries += 1;
            if tries > 100 {
                return Err(OpenError::Locked(dir.to_owned()));
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let path = dir.join(LOG_FILE);
        let (state, valid) = replay(&path)?;
        let file = private_options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io)?;
        file.set_len(valid as u64).map_err(io)?;
        file.sync_all().map_err(io)?;
        tracing::info!(dir = %dir.display(), incidents = state.order.len(), bytes = valid, "embedded store opened");
        // The writer decides on a copy of its own; readers see `state` only.
        let work = state.clone();
        let shared = Arc::new(Shared {
            state: RwLock::new(state),
            healthy: AtomicBool::new(true),
            refusing_since: std::sync::atomic::AtomicU64::new(0),
            mqtt_leads: dashmap::DashMap::new(),
            dir: dir.to_owned(),
            _lock: lock,
        });
        let (tx, rx) = mpsc::channel(QUEUE);
        let writer_shared = shared.clone();
        std::thread::Builder::new()
            .name("gridcast-store".into())
            .spawn(move || writer(writer_shared, work, rx, file, valid as u64))
            .map_err(io)?;
        Ok(Self { shared, tx })
    }

    async fn task_request(
        &self,
        incident: &str,
        change: TaskChange,
        at: u64,
    ) -> Result<TaskOutcome, StoreError> {
        let (reply, rx) = oneshot::channel();
        let req = Request::Task {
            incident: incident.to_owned(),
            change,
            at,
            reply,
        };
        self.tx.send(req).await.map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    fn read<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        let st = self.shared.state.read().unwrap_or_else(|p| p.into_inner());
        f(&st)
    }
}

impl Store for EmbeddedStore {
    fn create_incident(&self, new: NewIncident) -> StoreFuture<'_, IncidentSnapshot> {
        Box::pin(async move {
            let (reply, rx) = oneshot::channel();
            self.tx
                .send(Request::Create(Box::new(new), reply))
                .await
                .map_err(|_| StoreError::Closed)?;
            rx.await.map_err(|_| StoreError::Closed)?
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
            let req = MarkRequest {
                incident: incident.to_owned(),
                lead: lead.to_owned(),
                mark,
                at,
            };
            let mut outcomes = self.marks(vec![req]).await;
            outcomes.pop().unwrap_or(Err(StoreError::Closed))
        })
    }

    fn mark_many<'a>(&'a self, marks: &'a [MarkRequest]) -> MarksFuture<'a> {
        Box::pin(self.marks(marks.to_vec()))
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
            let (reply, rx) = oneshot::channel();
            let req = Request::Revise {
                incident: incident.to_owned(),
                revision,
                by: by.to_owned(),
                at,
                outbox,
                reply,
            };
            self.tx.send(req).await.map_err(|_| StoreError::Closed)?;
            rx.await.map_err(|_| StoreError::Closed)?
        })
    }

    fn recent(&self, closed_since: u64) -> StoreFuture<'_, Vec<IncidentSnapshot>> {
        Box::pin(async move {
            Ok(self.read(|st| {
                st.order
                    .iter()
                    .filter_map(|id| st.snapshot(id))
                    .filter(|s| s.meta.in_sync_window(closed_since))
                    .collect()
            }))
        })
    }

    fn incident<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<IncidentSnapshot>> {
        Box::pin(async move { Ok(self.read(|st| st.snapshot(id))) })
    }

    fn incidents(&self, state: Option<IncidentState>) -> StoreFuture<'_, Vec<IncidentSnapshot>> {
        Box::pin(async move {
            Ok(self.read(|st| {
                st.order
                    .iter()
                    .rev()
                    .filter_map(|id| st.snapshot(id))
                    .filter(|s| state.is_none_or(|want| s.meta.state == want))
                    .collect()
            }))
        })
    }

    fn incidents_for_lead<'a>(
        &'a self,
        lead: &'a str,
        closed_since: u64,
    ) -> StoreFuture<'a, Vec<(Arc<IncidentMeta>, RecipientState)>> {
        Box::pin(async move {
            Ok(self.read(|st| {
                let Some(ids) = st.by_lead.get(lead) else {
                    return Vec::new();
                };
                ids.iter()
                    .filter_map(|id| st.incidents.get(id))
                    .filter(|e| e.meta.in_sync_window(closed_since))
                    .filter_map(|e| {
                        e.index
                            .get(lead)
                            .map(|&i| (e.meta.clone(), e.recipients[i].clone()))
                    })
                    .collect()
            }))
        })
    }

    fn timeline<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Vec<TimelineEvent>>> {
        Box::pin(
            async move { Ok(self.read(|st| st.incidents.get(id).map(|e| e.timeline.clone()))) },
        )
    }

    fn outbox_done<'a>(&'a self, incident: &'a str, rev: u64) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let (reply, rx) = oneshot::channel();
            let req = Request::OutboxDone {
                incident: incident.to_owned(),
                rev,
                reply,
            };
            self.tx.send(req).await.map_err(|_| StoreError::Closed)?;
            rx.await.map_err(|_| StoreError::Closed)?
        })
    }

    fn outbox_claim(&self, older_than: u64, now: u64) -> StoreFuture<'_, Vec<(String, u64)>> {
        Box::pin(async move {
            let mut st = self.shared.state.write().unwrap_or_else(|p| p.into_inner());
            let mut claimed = Vec::new();
            for (key, since) in st.outbox.iter_mut() {
                if *since < older_than {
                    *since = now;
                    claimed.push(key.clone());
                }
            }
            claimed.sort();
            Ok(claimed)
        })
    }

    fn create_task<'a>(
        &'a self,
        incident: &'a str,
        task: TaskRecord,
        at: u64,
    ) -> StoreFuture<'a, TaskOutcome> {
        Box::pin(self.task_request(incident, TaskChange::Create(Box::new(task)), at))
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
        let change = TaskChange::Update {
            task: task.to_owned(),
            lead: lead.to_owned(),
            status,
            note,
        };
        Box::pin(self.task_request(incident, change, at))
    }

    fn tasks<'a>(&'a self, incident: &'a str) -> StoreFuture<'a, Vec<TaskRecord>> {
        Box::pin(async move {
            Ok(self.read(|st| {
                st.incidents
                    .get(incident)
                    .map(|e| e.tasks.clone())
                    .unwrap_or_default()
            }))
        })
    }

    fn escalations_due(&self, now: u64, lease: u64) -> StoreFuture<'_, Vec<(String, u8)>> {
        Box::pin(async move {
            let mut st = self.shared.state.write().unwrap_or_else(|p| p.into_inner());
            let st = &mut *st;
            let mut due = Vec::new();
            for (id, e) in &st.incidents {
                if e.meta.state != IncidentState::Active {
                    continue;
                }
                let done = st.escalated.get(id).copied().unwrap_or(0);
                let free = |key: &str| st.leases.get(key).is_none_or(|&until| until <= now);
                if done < 3 && free(id) && super::escalation_due(&e.meta, done + 1) <= now {
                    due.push((id.clone(), done + 1));
                }
                for t in e.tasks.iter().filter(|t| t.is_open() && t.escalated < 3) {
                    if free(&t.view.id) && t.escalation_due(t.escalated + 1) <= now {
                        due.push((t.view.id.clone(), t.escalated + 1));
                    }
                }
            }
            for (key, _) in &due {
                st.leases.insert(key.clone(), now + lease);
            }
            due.sort();
            Ok(due)
        })
    }

    fn escalation_done<'a>(
        &'a self,
        incident: &'a str,
        step: u8,
        events: Vec<TimelineEvent>,
        _next_due: Option<u64>,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let (reply, rx) = oneshot::channel();
            let req = Request::Escalated {
                incident: incident.to_owned(),
                step,
                events,
                reply,
            };
            self.tx.send(req).await.map_err(|_| StoreError::Closed)?;
            let fresh = rx.await.map_err(|_| StoreError::Closed)??;
            // The next step may be claimed as soon as it is due.
            self.shared
                .state
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .leases
                .remove(incident);
            Ok(fresh)
        })
    }

    fn add_report(&self, report: ReportView) -> StoreFuture<'_, ReportView> {
        Box::pin(async move {
            let (reply, rx) = oneshot::channel();
            self.tx
                .send(Request::Report(report, reply))
                .await
                .map_err(|_| StoreError::Closed)?;
            rx.await.map_err(|_| StoreError::Closed)?
        })
    }

    fn reports(&self) -> StoreFuture<'_, Vec<ReportView>> {
        Box::pin(async move { Ok(self.read(|st| st.reports.iter().rev().cloned().collect())) })
    }

    fn link_report<'a>(&'a self, report: &'a str, incident: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let (reply, rx) = oneshot::channel();
            let req = Request::LinkReport {
                report: report.to_owned(),
                incident: incident.to_owned(),
                reply,
            };
            self.tx.send(req).await.map_err(|_| StoreError::Closed)?;
            rx.await.map_err(|_| StoreError::Closed)?
        })
    }

    fn add_approval(&self, approval: Approval) -> StoreFuture<'_, Approval> {
        Box::pin(self.insert_approval(approval))
    }

    fn approvals(&self) -> StoreFuture<'_, Vec<Approval>> {
        Box::pin(async move { Ok(self.read(|st| st.approvals.clone())) })
    }

    fn update_approval<'a>(
        &'a self,
        approval: &'a Approval,
        expect: ApprovalState,
    ) -> StoreFuture<'a, bool> {
        Box::pin(self.replace_approval(approval, expect))
    }

    fn add_events<'a>(
        &'a self,
        incident: &'a str,
        events: Vec<TimelineEvent>,
    ) -> StoreFuture<'a, bool> {
        Box::pin(self.append_events(incident, events))
    }

    fn fallback_add(&self, records: Vec<crate::store::FallbackRecord>) -> StoreFuture<'_, usize> {
        Box::pin(self.queue_fallback(records))
    }

    fn fallback_claim(
        &self,
        now: u64,
        lease: u64,
        limit: usize,
    ) -> StoreFuture<'_, Vec<crate::store::FallbackRecord>> {
        Box::pin(self.claim_fallback(now, lease, limit))
    }

    fn fallback_update<'a>(
        &'a self,
        record: &'a crate::store::FallbackRecord,
        expect: u64,
        events: Vec<TimelineEvent>,
        next: Option<crate::store::FallbackRecord>,
    ) -> StoreFuture<'a, bool> {
        Box::pin(self.update_fallback(record, expect, events, next))
    }

    fn fallback_get<'a>(
        &'a self,
        id: &'a str,
    ) -> StoreFuture<'a, Option<crate::store::FallbackRecord>> {
        Box::pin(async move { Ok(self.read_fallback(|r| r.id == id).pop()) })
    }

    fn fallback_of<'a>(
        &'a self,
        incident: &'a str,
    ) -> StoreFuture<'a, Vec<crate::store::FallbackRecord>> {
        Box::pin(async move { Ok(self.read_fallback(|r| r.incident == incident)) })
    }

    fn save_registry<'a>(&'a self, doc: &'a RegistryDoc) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let json = serde_json::to_vec(doc).map_err(|e| StoreError::Io(e.to_string()))?;
            let dir = self.shared.dir.clone();
            tokio::task::spawn_blocking(move || write_atomically(&dir, REGISTRY_FILE, &json))
                .await
                .map_err(|e| StoreError::Io(e.to_string()))?
                .map_err(|e| StoreError::Io(e.to_string()))
        })
    }

    fn load_registry(&self) -> StoreFuture<'_, Option<RegistryDoc>> {
        Box::pin(async move {
            let path = self.shared.dir.join(REGISTRY_FILE);
            match tokio::fs::read(&path).await {
                Ok(bytes) => serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| StoreError::Io(format!("{}: {e}", path.display()))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(StoreError::Io(e.to_string())),
            }
        })
    }

    fn remember_mqtt_lead<'a>(
        &'a self,
        lead: &'a str,
        exp: u64,
        jti: Option<&'a str>,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            // One entry per lead of the registry at most (the MQTT transport verifies only
            // people it knows); an expired one is replaced at the lead's next hello.
            let jti = jti.map(str::to_owned);
            self.shared
                .mqtt_leads
                .insert(lead.to_owned(), super::MqttLead { exp, jti });
            Ok(())
        })
    }

    fn mqtt_lead<'a>(&'a self, lead: &'a str) -> StoreFuture<'a, Option<super::MqttLead>> {
        Box::pin(async move {
            let now = crate::now_ms() / 1000;
            Ok(self
                .shared
                .mqtt_leads
                .get(lead)
                .map(|l| l.clone())
                .filter(|l| l.exp > now))
        })
    }

    fn maintain(&self, cutoff: u64) -> StoreFuture<'_, Option<super::Compacted>> {
        Box::pin(async move {
            let (reply, rx) = oneshot::channel();
            let req = Request::Compact { cutoff, reply };
            self.tx.send(req).await.map_err(|_| StoreError::Closed)?;
            rx.await.map_err(|_| StoreError::Closed)?
        })
    }

    fn healthy(&self) -> bool {
        // A refused write makes the store unready for a while; then it is tried again
        // (a balancer that drained the node would otherwise never send the write that
        // shows the disk has room again).
        let since = self.shared.refusing_since.load(Ordering::Acquire);
        self.shared.healthy.load(Ordering::Acquire)
            && (since == 0 || crate::now_ms().saturating_sub(since) > REFUSING_UNREADY_MS)
    }
}

#[cfg(test)]
mod tests;
