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

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use gridcast_protocol::GridCode;
use gridcast_protocol::api::{ReportView, TimelineEvent};
use gridcast_protocol::model::{IncidentState, Role};
use gridcast_protocol::registry::RegistryDoc;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::{
    IncidentMeta, IncidentSnapshot, Mark, MarkOutcome, MarkRequest, MarksFuture, NewIncident,
    RecipientState, ReviseOutcome, Revision, Store, StoreError, StoreFuture, TaskOutcome,
    TaskRecord, answers_used_up, apply_mark, apply_revision, apply_task_update, issue_state,
    mark_event, task_event, task_key,
};
use gridcast_protocol::frame::TaskStatus;

const LOG_FILE: &str = "incidents.log";
const REGISTRY_FILE: &str = "registry.json";
const LOCK_FILE: &str = "LOCK";
/// Requests waiting for the writer; callers wait (backpressure) when it is full.
const QUEUE: usize = 16_384;
/// Most requests one group commit takes.
const MAX_BATCH: usize = 4_096;

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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
enum Record {
    Incident {
        meta: IncidentMeta,
        recipients: Vec<(String, GridCode, Role)>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        outbox: bool,
    },
    OutboxDone {
        incident: String,
        rev: u64,
    },
    Revise {
        incident: String,
        revision: Revision,
        by: String,
        at: u64,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        outbox: bool,
    },
    Mark {
        incident: String,
        lead: String,
        mark: Mark,
        at: u64,
    },
    Report {
        report: ReportView,
    },
    Escalated {
        incident: String,
        step: u8,
        events: Vec<TimelineEvent>,
    },
    /// A task as it is after a change (created or updated).
    Task {
        incident: String,
        task: TaskRecord,
        actor: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lead: Option<String>,
        at: u64,
    },
    ReportLinked {
        report: String,
        incident: String,
    },
}

struct Entry {
    meta: Arc<IncidentMeta>,
    recipients: Arc<Vec<RecipientState>>,
    index: HashMap<String, usize>,
    timeline: Vec<TimelineEvent>,
    tasks: Vec<TaskRecord>,
}

impl Clone for Entry {
    /// A copy that shares nothing mutable: the writer's copy and the readers' state
    /// each change their own recipients in place (`Arc::make_mut`) without copying the
    /// other's. `meta` is replaced, never changed in place, so it is shared.
    fn clone(&self) -> Self {
        Self {
            meta: self.meta.clone(),
            recipients: Arc::new((*self.recipients).clone()),
            index: self.index.clone(),
            timeline: self.timeline.clone(),
            tasks: self.tasks.clone(),
        }
    }
}

#[derive(Default, Clone)]
struct State {
    seq: u64,
    incidents: HashMap<String, Entry>,
    /// Incident ids in issue order.
    order: Vec<String>,
    by_lead: HashMap<String, Vec<String>>,
    /// (incident, rev) → pending since (Unix ms).
    outbox: HashMap<(String, u64), u64>,
    /// Reports in the order taken.
    reports: Vec<ReportView>,
    /// Escalation steps done per incident.
    escalated: HashMap<String, u8>,
    /// Escalation claims (not persisted: a restart may act at once).
    leases: HashMap<String, u64>,
}

impl State {
    fn apply(&mut self, record: Record) {
        match record {
            Record::OutboxDone { incident, rev } => {
                self.outbox.remove(&(incident, rev));
            }
            Record::Report { report } => self.reports.push(report),
            Record::Task {
                incident,
                task,
                actor,
                lead,
                at,
            } => {
                if let Some(e) = self.incidents.get_mut(&incident) {
                    e.timeline
                        .push(task_event(&task, &actor, lead.as_deref(), at));
                    match e.tasks.iter_mut().find(|t| t.view.id == task.view.id) {
                        Some(t) => *t = task,
                        None => e.tasks.push(task),
                    }
                }
            }
            Record::Escalated {
                incident,
                step,
                events,
            } => {
                if let Some((inc, task)) = task_key(&incident) {
                    if let Some(e) = self.incidents.get_mut(inc) {
                        e.timeline.extend(events);
                        if let Some(t) = e.tasks.iter_mut().find(|t| t.view.id == task) {
                            t.escalated = step;
                        }
                    }
                    return;
                }
                if let Some(e) = self.incidents.get_mut(&incident) {
                    e.timeline.extend(events);
                }
                self.escalated.insert(incident, step);
            }
            Record::ReportLinked { report, incident } => {
                if let Some(r) = self.reports.iter_mut().find(|r| r.id == report) {
                    r.incident.get_or_insert(incident);
                }
            }
            Record::Revise {
                incident,
                revision,
                by,
                at,
                outbox,
            } => {
                let Some(e) = self.incidents.get_mut(&incident) else {
                    return;
                };
                if e.meta.state == IncidentState::Closed {
                    return;
                }
                let (meta, event) = apply_revision(&e.meta, &revision, &by, at);
                if outbox {
                    self.outbox.insert((incident, meta.rev), at);
                }
                e.meta = Arc::new(meta);
                e.timeline.push(event);
            }
            Record::Incident {
                meta,
                recipients,
                outbox,
            } => {
                if outbox {
                    self.outbox
                        .insert((meta.id.clone(), meta.rev), meta.issued_at);
                }
                if let Some(n) = meta
                    .id
                    .strip_prefix("INC-")
                    .and_then(|n| n.parse::<u64>().ok())
                {
                    self.seq = self.seq.max(n);
                }
                let (rs, issued) = issue_state(&meta, recipients);
                let mut index = HashMap::with_capacity(rs.len());
                for (i, r) in rs.iter().enumerate() {
                    self.by_lead
                        .entry(r.lead.clone())
                        .or_default()
                        .push(meta.id.clone());
                    index.insert(r.lead.clone(), i);
                }
                self.order.push(meta.id.clone());
                self.incidents.insert(
                    meta.id.clone(),
                    Entry {
                        meta: Arc::new(meta),
                        recipients: Arc::new(rs),
                        index,
                        timeline: vec![issued],
                        tasks: Vec::new(),
                    },
                );
            }
            Record::Mark {
                incident,
                lead,
                mark,
                at,
            } => {
                let Some(e) = self.incidents.get_mut(&incident) else {
                    return;
                };
                let Some(&i) = e.index.get(&lead) else { return };
                if let Some(next) = apply_mark(&e.recipients[i], &mark, at) {
                    Arc::make_mut(&mut e.recipients)[i] = next;
                    e.timeline.push(mark_event(&lead, &mark, at));
                }
            }
        }
    }

    /// Decides a mark without applying it.
    fn judge(&self, incident: &str, lead: &str, mark: &Mark, at: u64) -> (MarkOutcome, bool) {
        let Some(e) = self.incidents.get(incident) else {
            return (MarkOutcome::NotFound, false);
        };
        let Some(&i) = e.index.get(lead) else {
            return (MarkOutcome::NotRecipient, false);
        };
        let current = &e.recipients[i];
        if e.meta.state == IncidentState::Closed && matches!(mark, Mark::Ack { .. }) {
            return (MarkOutcome::Closed, false);
        }
        if answers_used_up(current, mark) {
            return (MarkOutcome::TooManyAnswers, false);
        }
        match apply_mark(current, mark, at) {
            Some(next) => (MarkOutcome::Changed(e.meta.clone(), next), true),
            None => (
                MarkOutcome::Unchanged(e.meta.clone(), current.clone()),
                false,
            ),
        }
    }

    fn judge_task(&self, incident: &str, change: TaskChange) -> TaskOutcome {
        let Some(e) = self.incidents.get(incident) else {
            return TaskOutcome::NotFound;
        };
        if e.meta.state == IncidentState::Closed {
            return TaskOutcome::Closed;
        }
        match change {
            TaskChange::Create(task) => {
                let mut task = *task;
                task.view.id = format!("{incident}-T{}", e.tasks.len() + 1);
                task.view.rev = 1;
                TaskOutcome::Changed(task)
            }
            TaskChange::Update {
                task,
                lead,
                status,
                note,
            } => {
                let Some(t) = e.tasks.iter().find(|t| t.view.id == task) else {
                    return TaskOutcome::NotFound;
                };
                match apply_task_update(t, &lead, status, note) {
                    Ok(Some(mut next)) => {
                        next.note_by = Some(lead);
                        TaskOutcome::Changed(next)
                    }
                    Ok(None) => TaskOutcome::Unchanged(t.clone()),
                    Err(r) => TaskOutcome::Refused(r),
                }
            }
        }
    }

    fn snapshot(&self, id: &str) -> Option<IncidentSnapshot> {
        self.incidents.get(id).map(|e| IncidentSnapshot {
            meta: e.meta.clone(),
            recipients: e.recipients.clone(),
        })
    }
}

/// A task change for the writer to judge and apply.
enum TaskChange {
    Create(Box<TaskRecord>),
    Update {
        task: String,
        lead: String,
        status: TaskStatus,
        note: Option<String>,
    },
}

/// Who made a task's latest change (the lead who holds or answered it).
fn last_actor(task: &TaskRecord) -> String {
    task.note_by
        .clone()
        .or_else(|| task.accepted_by.clone())
        .unwrap_or_default()
}

enum Request {
    Create(
        NewIncident,
        oneshot::Sender<Result<IncidentSnapshot, StoreError>>,
    ),
    /// Receipts and acks, one or many (one outcome each, in order).
    Marks(
        Vec<MarkRequest>,
        oneshot::Sender<Vec<Result<MarkOutcome, StoreError>>>,
    ),
    OutboxDone {
        incident: String,
        rev: u64,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    Revise {
        incident: String,
        revision: Revision,
        by: String,
        at: u64,
        outbox: bool,
        reply: oneshot::Sender<Result<ReviseOutcome, StoreError>>,
    },
    Report(ReportView, oneshot::Sender<Result<ReportView, StoreError>>),
    Task {
        incident: String,
        change: TaskChange,
        at: u64,
        reply: oneshot::Sender<Result<TaskOutcome, StoreError>>,
    },
    Escalated {
        incident: String,
        step: u8,
        events: Vec<TimelineEvent>,
        reply: oneshot::Sender<Result<bool, StoreError>>,
    },
    LinkReport {
        report: String,
        incident: String,
        reply: oneshot::Sender<Result<bool, StoreError>>,
    },
}

struct Shared {
    state: RwLock<State>,
    /// False once a write or sync failed in a way the store cannot undo (until restart).
    healthy: AtomicBool,
    /// True while writes are refused (disk full, file too large) but the log is intact;
    /// the next good write clears it.
    refusing: AtomicBool,
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

fn line(record: &Record, out: &mut Vec<u8>) {
    let json = serde_json::to_vec(record).expect("records always serialize");
    let crc = crc32fast::hash(&json);
    let _ = write!(out, "{crc:08x} ");
    out.extend_from_slice(&json);
    out.push(b'\n');
}

fn parse_line(l: &[u8]) -> Option<Record> {
    if l.len() < 10 || l[8] != b' ' {
        return None;
    }
    let crc = u32::from_str_radix(std::str::from_utf8(&l[..8]).ok()?, 16).ok()?;
    let json = &l[9..];
    (crc32fast::hash(json) == crc)
        .then(|| serde_json::from_slice(json).ok())
        .flatten()
}

/// Reads the log; returns the state and the length of its valid prefix.
fn replay(path: &Path) -> Result<(State, usize), OpenError> {
    let data = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(OpenError::Io(path.to_owned(), e)),
    };
    let mut state = State::default();
    let mut offset = 0;
    while offset < data.len() {
        let end = data[offset..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|p| offset + p);
        let record = end.and_then(|end| parse_line(&data[offset..end]));
        match (record, end) {
            (Some(r), Some(end)) => {
                state.apply(r);
                offset = end + 1;
            }
            _ => {
                // A bad record is a torn tail only if nothing valid follows it.
                let rest_valid = data[offset..]
                    .split(|&b| b == b'\n')
                    .skip(1)
                    .any(|l| parse_line(l).is_some());
                if rest_valid {
                    return Err(OpenError::Corrupt {
                        path: path.to_owned(),
                        offset,
                    });
                }
                tracing::warn!(path = %path.display(), offset, dropped = data.len() - offset, "cut torn tail of the store log");
                break;
            }
        }
    }
    Ok((state, offset))
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
            refusing: AtomicBool::new(false),
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

/// What a batch's callers are told once the batch is durable (or refused).
#[derive(Default)]
struct Replies {
    creates: Vec<(
        String,
        oneshot::Sender<Result<IncidentSnapshot, StoreError>>,
    )>,
    marks: Vec<(
        Vec<MarkOutcome>,
        oneshot::Sender<Vec<Result<MarkOutcome, StoreError>>>,
    )>,
    dones: Vec<oneshot::Sender<Result<(), StoreError>>>,
    revisions: Vec<(
        Result<String, ReviseOutcome>,
        oneshot::Sender<Result<ReviseOutcome, StoreError>>,
    )>,
    reports: Vec<(ReportView, oneshot::Sender<Result<ReportView, StoreError>>)>,
    flags: Vec<(bool, oneshot::Sender<Result<bool, StoreError>>)>,
    tasks: Vec<(
        TaskOutcome,
        oneshot::Sender<Result<TaskOutcome, StoreError>>,
    )>,
}

impl Replies {
    /// Answers everyone: snapshots of new and revised incidents come from `shared`,
    /// which now holds the batch.
    fn send(self, shared: &State) {
        // A caller may have gone (request cancelled); what it asked for stands.
        for (id, reply) in self.creates {
            let _ = reply.send(shared.snapshot(&id).ok_or(StoreError::Closed));
        }
        for (outcomes, reply) in self.marks {
            let _ = reply.send(outcomes.into_iter().map(Ok).collect());
        }
        for reply in self.dones {
            let _ = reply.send(Ok(()));
        }
        for (outcome, reply) in self.revisions {
            let outcome = match outcome {
                Ok(id) => shared
                    .snapshot(&id)
                    .map_or(ReviseOutcome::NotFound, ReviseOutcome::Revised),
                Err(o) => o,
            };
            let _ = reply.send(Ok(outcome));
        }
        for (report, reply) in self.reports {
            let _ = reply.send(Ok(report));
        }
        for (flag, reply) in self.flags {
            let _ = reply.send(Ok(flag));
        }
        for (outcome, reply) in self.tasks {
            let _ = reply.send(Ok(outcome));
        }
    }

    /// Refuses everyone: nothing of the batch was kept.
    fn fail(self, err: &StoreError) {
        for (_, reply) in self.creates {
            let _ = reply.send(Err(err.clone()));
        }
        for (outcomes, reply) in self.marks {
            let _ = reply.send(vec![Err(err.clone()); outcomes.len()]);
        }
        for reply in self.dones {
            let _ = reply.send(Err(err.clone()));
        }
        for (_, reply) in self.revisions {
            let _ = reply.send(Err(err.clone()));
        }
        for (_, reply) in self.reports {
            let _ = reply.send(Err(err.clone()));
        }
        for (_, reply) in self.flags {
            let _ = reply.send(Err(err.clone()));
        }
        for (_, reply) in self.tasks {
            let _ = reply.send(Err(err.clone()));
        }
    }
}

/// Decides one request on the writer's own copy of the state (`work`), applies what it
/// changes there, and stages the records to append. Nobody else sees `work`.
fn stage(
    work: &mut State,
    next_seq: &mut u64,
    req: Request,
    records: &mut Vec<Record>,
    out: &mut Replies,
) {
    let mut record = |work: &mut State, r: Record| {
        records.push(r.clone());
        work.apply(r);
    };
    match req {
        Request::Create(mut new, reply) => {
            // Ids only go up, even past a refused batch: an id given out once is never
            // given out again by this process.
            *next_seq = (*next_seq).max(work.seq) + 1;
            new.meta.id = format!("INC-{:06}", *next_seq);
            new.meta.rev = 1;
            let id = new.meta.id.clone();
            let r = Record::Incident {
                meta: new.meta,
                recipients: new.recipients,
                outbox: new.outbox,
            };
            record(work, r);
            out.creates.push((id, reply));
        }
        Request::Marks(batch, reply) => {
            let mut outcomes = Vec::with_capacity(batch.len());
            for MarkRequest {
                incident,
                lead,
                mark,
                at,
            } in batch
            {
                let (outcome, changed) = work.judge(&incident, &lead, &mark, at);
                if changed {
                    let r = Record::Mark {
                        incident,
                        lead,
                        mark,
                        at,
                    };
                    record(work, r);
                }
                outcomes.push(outcome);
            }
            out.marks.push((outcomes, reply));
        }
        Request::Revise {
            incident,
            revision,
            by,
            at,
            outbox,
            reply,
        } => {
            let outcome = match work.incidents.get(&incident) {
                None => Err(ReviseOutcome::NotFound),
                Some(e) if e.meta.state == IncidentState::Closed => Err(ReviseOutcome::Closed),
                Some(_) => {
                    let r = Record::Revise {
                        incident: incident.clone(),
                        revision,
                        by,
                        at,
                        outbox,
                    };
                    record(work, r);
                    Ok(incident)
                }
            };
            out.revisions.push((outcome, reply));
        }
        Request::Report(mut report, reply) => {
            report.id = format!("REP-{:06}", work.reports.len() + 1);
            let r = Record::Report {
                report: report.clone(),
            };
            record(work, r);
            out.reports.push((report, reply));
        }
        Request::Task {
            incident,
            change,
            at,
            reply,
        } => {
            let outcome = work.judge_task(&incident, change);
            if let TaskOutcome::Changed(task) = &outcome {
                let (actor, lead) = if task.view.rev == 1 {
                    (task.created_by.clone(), None)
                } else {
                    (last_actor(task), Some(last_actor(task)))
                };
                let r = Record::Task {
                    incident,
                    task: task.clone(),
                    actor,
                    lead,
                    at,
                };
                record(work, r);
            }
            out.tasks.push((outcome, reply));
        }
        Request::Escalated {
            incident,
            step,
            events,
            reply,
        } => {
            let fresh = match task_key(&incident) {
                Some((inc, task)) => work.incidents.get(inc).is_some_and(|e| {
                    e.tasks
                        .iter()
                        .any(|t| t.view.id == task && t.is_open() && t.escalated + 1 == step)
                }),
                None => {
                    let done = work.escalated.get(&incident).copied().unwrap_or(0);
                    done + 1 == step && work.incidents.contains_key(&incident)
                }
            };
            if fresh {
                let r = Record::Escalated {
                    incident,
                    step,
                    events,
                };
                record(work, r);
            }
            out.flags.push((fresh, reply));
        }
        Request::LinkReport {
            report,
            incident,
            reply,
        } => {
            let free = work
                .reports
                .iter()
                .any(|r| r.id == report && r.incident.is_none());
            if free {
                record(work, Record::ReportLinked { report, incident });
            }
            out.flags.push((free, reply));
        }
        Request::OutboxDone {
            incident,
            rev,
            reply,
        } => {
            if work.outbox.contains_key(&(incident.clone(), rev)) {
                record(work, Record::OutboxDone { incident, rev });
            }
            out.dones.push(reply);
        }
    }
}

/// The single writer: takes a batch, decides it on its own copy of the state, appends
/// it and syncs once; only then applies it to the state readers see and answers
/// everyone in the batch. So nothing is visible before it is durable, and a batch
/// whose write fails leaves no trace: the file is cut back to its last good length and
/// the writer's copy is taken again from what readers see. Ends when every sender is
/// gone.
fn writer(
    shared: Arc<Shared>,
    mut work: State,
    mut rx: mpsc::Receiver<Request>,
    mut file: File,
    mut len: u64,
) {
    use std::io::Seek;
    let mut buf = Vec::with_capacity(1 << 16);
    let mut batch = Vec::with_capacity(64);
    let mut records = Vec::with_capacity(64);
    let mut next_seq = work.seq;
    let _ = file.seek(std::io::SeekFrom::Start(len));
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        if !shared.healthy.load(Ordering::Acquire) {
            for req in batch.drain(..) {
                fail(
                    req,
                    StoreError::Io("store failed earlier; restart the hub".into()),
                );
            }
            continue;
        }
        buf.clear();
        records.clear();
        let mut replies = Replies::default();
        for req in batch.drain(..) {
            stage(&mut work, &mut next_seq, req, &mut records, &mut replies);
        }
        for r in &records {
            line(r, &mut buf);
        }
        let written = if buf.is_empty() {
            Ok(())
        } else {
            file.write_all(&buf).map_err(|e| (e, false)).and_then(|()| {
                // After a failed fdatasync the kernel may have dropped the pages it
                // could not write: the file can no longer be trusted to hold them.
                file.sync_data().map_err(|e| (e, true))
            })
        };
        match written {
            Ok(()) => {
                len += buf.len() as u64;
                if !buf.is_empty() {
                    shared.refusing.store(false, Ordering::Release);
                }
                let mut st = shared.state.write().unwrap_or_else(|p| p.into_inner());
                for r in records.drain(..) {
                    st.apply(r);
                }
                let st = std::sync::RwLockWriteGuard::downgrade(st);
                replies.send(&st);
            }
            Err((e, synced)) => {
                // Cut what was written of the batch, so that a later append follows the
                // last good record; the writer's copy goes back to what readers see.
                let cut = !synced
                    && file
                        .set_len(len)
                        .and_then(|()| file.sync_all())
                        .and_then(|()| file.seek(std::io::SeekFrom::Start(len)).map(drop))
                        .is_ok();
                work = shared
                    .state
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                if cut {
                    shared.refusing.store(true, Ordering::Release);
                    tracing::error!(error = %e, bytes = len, "store write refused; nothing of it was kept");
                } else {
                    shared.healthy.store(false, Ordering::Release);
                    tracing::error!(error = %e, bytes = len, "store write or sync failed; refusing further writes until restarted");
                }
                replies.fail(&StoreError::Io(e.to_string()));
            }
        }
    }
}

fn fail(req: Request, err: StoreError) {
    // The caller may have gone; nothing was recorded either way.
    match req {
        Request::Create(_, reply) => drop(reply.send(Err(err))),
        Request::Marks(batch, reply) => drop(reply.send(vec![Err(err); batch.len()])),
        Request::OutboxDone { reply, .. } => drop(reply.send(Err(err))),
        Request::Revise { reply, .. } => drop(reply.send(Err(err))),
        Request::Report(_, reply) => drop(reply.send(Err(err))),
        Request::Task { reply, .. } => drop(reply.send(Err(err))),
        Request::Escalated { reply, .. } => drop(reply.send(Err(err))),
        Request::LinkReport { reply, .. } => drop(reply.send(Err(err))),
    }
}

impl Store for EmbeddedStore {
    fn create_incident(&self, new: NewIncident) -> StoreFuture<'_, IncidentSnapshot> {
        Box::pin(async move {
            let (reply, rx) = oneshot::channel();
            self.tx
                .send(Request::Create(new, reply))
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

    fn healthy(&self) -> bool {
        self.shared.healthy.load(Ordering::Acquire) && !self.shared.refusing.load(Ordering::Acquire)
    }
}

/// Creates `dir` (and its parents) and makes it the owner's alone (0700): the store
/// holds names and phone numbers of staff and what residents reported (Art. 17).
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Makes an existing file the owner's alone (0600); a missing one is left missing.
fn private_file(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        match std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            r => return r,
        }
    }
    Ok(())
}

/// Options that create files readable and writable by the owner only (0600).
pub fn private_options() -> OpenOptions {
    let mut o = OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o
}

/// Writes a file so that a crash leaves either the old or the new content.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = private_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridcast_protocol::frame::Targets;
    use gridcast_protocol::model::{Category, Level, Response, Status};

    fn new_incident(leads: &[&str]) -> NewIncident {
        let grid = GridCode::parse("3301060040051012").unwrap();
        NewIncident {
            meta: IncidentMeta {
                id: String::new(),
                rev: 0,
                state: IncidentState::Active,
                title: "Fire".into(),
                body: "b".into(),
                level: Level::I,
                category: Category::Accident,
                drill: false,
                issued_at: 1,
                ack_by: 2,
                targets: Targets {
                    codes: vec![],
                    roles: vec![],
                },
                issued_by: "op".into(),
                closed_at: None,
            },
            recipients: leads
                .iter()
                .map(|l| (l.to_string(), grid.clone(), Role::GridLead))
                .collect(),
            outbox: false,
        }
    }

    fn tmp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("gridcast-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[tokio::test]
    async fn reports_and_their_links_survive_a_restart() {
        let dir = tmp_dir("reports");
        let report = ReportView {
            id: String::new(),
            at: "2026-11-26T00:00:00.000Z".into(),
            lead: "L1".into(),
            grid: GridCode::parse("3301060040051012").unwrap(),
            category: gridcast_protocol::Category::Accident,
            title: "smoke".into(),
            detail: String::new(),
            location: None,
            incident: None,
        };
        {
            let s = EmbeddedStore::open(&dir).unwrap();
            assert_eq!(s.add_report(report.clone()).await.unwrap().id, "REP-000001");
            assert_eq!(s.add_report(report).await.unwrap().id, "REP-000002");
            assert!(s.link_report("REP-000001", "INC-000007").await.unwrap());
            assert!(
                !s.link_report("REP-000001", "INC-000008").await.unwrap(),
                "first wins"
            );
            assert!(!s.link_report("REP-000009", "INC-000008").await.unwrap());
        }
        let s = EmbeddedStore::open(&dir).unwrap();
        let list = s.reports().await.unwrap();
        let ids: Vec<(&str, Option<&str>)> = list
            .iter()
            .map(|r| (r.id.as_str(), r.incident.as_deref()))
            .collect();
        assert_eq!(
            ids,
            [("REP-000002", None), ("REP-000001", Some("INC-000007"))]
        );
    }

    #[tokio::test]
    async fn revisions_survive_a_restart() {
        let dir = tmp_dir("revise");
        {
            let s = EmbeddedStore::open(&dir).unwrap();
            s.create_incident(new_incident(&["L1"])).await.unwrap();
            let update = Revision::Update { body: "b2".into() };
            s.revise("INC-000001", update, "op", 10, true)
                .await
                .unwrap();
            let close = Revision::Close {
                reason: "done".into(),
            };
            s.revise("INC-000001", close, "op", 11, false)
                .await
                .unwrap();
        }
        let s = EmbeddedStore::open(&dir).unwrap();
        let snap = s.incident("INC-000001").await.unwrap().unwrap();
        assert_eq!(
            (snap.meta.rev, snap.meta.state, snap.meta.body.as_str()),
            (3, IncidentState::Closed, "b2")
        );
        assert_eq!(snap.meta.closed_at, Some(11));
        assert_eq!(
            s.outbox_claim(100, 200).await.unwrap(),
            [("INC-000001".to_owned(), 2)]
        );
        let kinds: Vec<String> = s
            .timeline("INC-000001")
            .await
            .unwrap()
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(kinds, ["issued", "updated", "closed"]);
    }

    #[tokio::test]
    async fn outbox_entries_survive_a_restart_until_done() {
        let dir = tmp_dir("outbox");
        {
            let s = EmbeddedStore::open(&dir).unwrap();
            let mut pending = new_incident(&["L1"]);
            pending.outbox = true;
            s.create_incident(pending.clone()).await.unwrap();
            s.create_incident(pending).await.unwrap();
            s.create_incident(new_incident(&["L1"])).await.unwrap();
            s.outbox_done("INC-000002", 1).await.unwrap();
        }
        let s = EmbeddedStore::open(&dir).unwrap();
        // issued_at is 1: due for any grace period.
        assert_eq!(
            s.outbox_claim(10, 100).await.unwrap(),
            [("INC-000001".to_owned(), 1)]
        );
        assert!(
            s.outbox_claim(50, 200).await.unwrap().is_empty(),
            "a claim restarts the entry's age"
        );
        assert_eq!(s.outbox_claim(150, 300).await.unwrap().len(), 1);
        s.outbox_done("INC-000001", 1).await.unwrap();
        assert!(s.outbox_claim(u64::MAX, 400).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn state_survives_reopen_and_torn_tail_is_cut() {
        let dir = tmp_dir("reopen");
        {
            let s = EmbeddedStore::open(&dir).unwrap();
            let snap = s
                .create_incident(new_incident(&["L1", "L2"]))
                .await
                .unwrap();
            assert_eq!(snap.meta.id, "INC-000001");
            let ack = Mark::Ack {
                response: Response::Accept,
                note: Some("on my way".into()),
            };
            assert!(matches!(
                s.mark("INC-000001", "L1", ack, 5).await.unwrap(),
                MarkOutcome::Changed(..)
            ));
            assert!(matches!(
                s.mark("INC-000001", "L2", Mark::Receipt, 6).await.unwrap(),
                MarkOutcome::Changed(..)
            ));
            assert_eq!(
                s.mark("INC-000001", "L9", Mark::Receipt, 6).await.unwrap(),
                MarkOutcome::NotRecipient
            );
            assert_eq!(
                s.mark("INC-9", "L1", Mark::Receipt, 6).await.unwrap(),
                MarkOutcome::NotFound
            );
        }
        // A crash mid-write leaves half a line.
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.join(LOG_FILE))
            .unwrap();
        f.write_all(b"0000abcd {\"t\":\"mark\",\"inc").unwrap();
        drop(f);
        let s = EmbeddedStore::open(&dir).unwrap();
        let snap = s.incident("INC-000001").await.unwrap().unwrap();
        let st: Vec<Status> = snap.recipients.iter().map(|r| r.status).collect();
        assert_eq!(st, vec![Status::Accepted, Status::Delivered]);
        let t = s.timeline("INC-000001").await.unwrap().unwrap();
        let kinds: Vec<&str> = t.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["issued", "acked", "delivered"]);
        assert_eq!(t[1].detail.as_deref(), Some("accept: on my way"));
        let next = s.create_incident(new_incident(&["L1"])).await.unwrap();
        assert_eq!(next.meta.id, "INC-000002", "ids continue after restart");
        let mine = s.incidents_for_lead("L1", 0).await.unwrap();
        assert_eq!(mine.len(), 2);
    }

    #[tokio::test]
    async fn corruption_before_valid_records_refuses_to_start() {
        let dir = tmp_dir("corrupt");
        {
            let s = EmbeddedStore::open(&dir).unwrap();
            s.create_incident(new_incident(&["L1"])).await.unwrap();
            s.mark("INC-000001", "L1", Mark::Receipt, 3).await.unwrap();
        }
        let path = dir.join(LOG_FILE);
        let mut data = std::fs::read(&path).unwrap();
        data[12] ^= 0x20;
        std::fs::write(&path, data).unwrap();
        assert!(matches!(
            EmbeddedStore::open(&dir),
            Err(OpenError::Corrupt { offset: 0, .. })
        ));
    }

    #[tokio::test]
    async fn a_second_hub_cannot_open_the_same_dir() {
        let dir = tmp_dir("lock");
        let _first = EmbeddedStore::open(&dir).unwrap();
        assert!(matches!(
            EmbeddedStore::open(&dir),
            Err(OpenError::Locked(_))
        ));
    }
}
