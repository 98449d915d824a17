//! The single writer thread: group commits, durable before visible.

use std::fs::File;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use gridcast_protocol::api::{Approval, ApprovalState, ReportView, TimelineEvent};
use gridcast_protocol::model::IncidentState;
use tokio::sync::{mpsc, oneshot};

use super::log::{Record, line};
use super::state::{State, TaskChange, last_actor};
use super::{COMPACT_FILE, LOG_FILE, MAX_BATCH, Shared, private_options};
use crate::store::{
    Compacted, IncidentSnapshot, MarkOutcome, MarkRequest, NewIncident, ReviseOutcome, Revision,
    StoreError, TaskOutcome, task_key,
};

pub(super) enum Request {
    /// Let go of what retention no longer keeps, and write the log anew.
    Compact {
        cutoff: u64,
        reply: Reply<Option<Compacted>>,
    },
    Create(
        Box<NewIncident>,
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
    Events {
        incident: String,
        events: Vec<TimelineEvent>,
        reply: oneshot::Sender<Result<bool, StoreError>>,
    },
    AddApproval(Approval, Reply<Approval>),
    UpdateApproval {
        approval: Approval,
        expect: ApprovalState,
        reply: Reply<bool>,
    },
    Fallback(super::fallback::FallbackRequest),
}

pub(super) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;
pub(super) type MarksReply = oneshot::Sender<Vec<Result<MarkOutcome, StoreError>>>;

/// What a batch's callers are told once the batch is durable (or refused).
#[derive(Default)]
pub(super) struct Replies {
    creates: Vec<(String, Reply<IncidentSnapshot>)>,
    marks: Vec<(Vec<MarkOutcome>, MarksReply)>,
    dones: Vec<Reply<()>>,
    /// The revised incident's id, or why nothing was revised.
    revisions: Vec<(Result<String, ReviseOutcome>, Reply<ReviseOutcome>)>,
    reports: Vec<(ReportView, Reply<ReportView>)>,
    approvals: Vec<(Approval, Reply<Approval>)>,
    pub(super) flags: Vec<(bool, Reply<bool>)>,
    pub(super) counts: Vec<(usize, Reply<usize>)>,
    pub(super) claimed: Vec<(
        Vec<crate::store::FallbackRecord>,
        Reply<Vec<crate::store::FallbackRecord>>,
    )>,
    tasks: Vec<(TaskOutcome, Reply<TaskOutcome>)>,
    /// Compactions asked for (done after the batch, with the latest cutoff).
    compactions: Vec<(u64, Reply<Option<Compacted>>)>,
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
        for (approval, reply) in self.approvals {
            let _ = reply.send(Ok(approval));
        }
        for (flag, reply) in self.flags {
            let _ = reply.send(Ok(flag));
        }
        for (n, reply) in self.counts {
            let _ = reply.send(Ok(n));
        }
        for (records, reply) in self.claimed {
            let _ = reply.send(Ok(records));
        }
        for (outcome, reply) in self.tasks {
            let _ = reply.send(Ok(outcome));
        }
    }

    /// Refuses everyone: nothing of the batch was kept.
    pub(super) fn fail(self, err: &StoreError) {
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
        for (_, reply) in self.approvals {
            let _ = reply.send(Err(err.clone()));
        }
        for (_, reply) in self.flags {
            let _ = reply.send(Err(err.clone()));
        }
        for (_, reply) in self.counts {
            let _ = reply.send(Err(err.clone()));
        }
        for (_, reply) in self.claimed {
            let _ = reply.send(Err(err.clone()));
        }
        for (_, reply) in self.tasks {
            let _ = reply.send(Err(err.clone()));
        }
    }
}

/// Decides one request on the writer's own copy of the state (`work`), applies what it
/// changes there, and stages the records to append. Nobody else sees `work`.
pub(super) fn stage(
    work: &mut State,
    next_seq: &mut u64,
    req: Request,
    records: &mut Vec<Record>,
    out: &mut Replies,
) {
    let mut record = |work: &mut State, r: Record| {
        work.apply_ref(&r);
        records.push(r);
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
            report.id = format!("REP-{:06}", work.report_seq + 1);
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
        Request::AddApproval(mut approval, reply) => {
            approval.id = format!("APR-{:06}", work.approvals.len() + 1);
            record(
                work,
                Record::Approval {
                    approval: approval.clone(),
                },
            );
            out.approvals.push((approval, reply));
        }
        Request::UpdateApproval {
            approval,
            expect,
            reply,
        } => {
            let current = work.approvals.iter().find(|a| a.id == approval.id);
            let fresh = current.is_some_and(|a| a.state == expect);
            if fresh {
                record(work, Record::Approval { approval });
            }
            out.flags.push((fresh, reply));
        }
        Request::Events {
            incident,
            events,
            reply,
        } => {
            let known = work.incidents.contains_key(&incident);
            if known {
                record(work, Record::Events { incident, events });
            }
            out.flags.push((known, reply));
        }
        Request::Compact { cutoff, reply } => out.compactions.push((cutoff, reply)),
        Request::Fallback(req) => super::fallback::stage(work, req, &mut record, out),
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
pub(super) fn writer(
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
    // The log's length after the last compaction (or at open).
    let mut base = len;
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
        let compactions = std::mem::take(&mut replies.compactions);
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
                    shared.refusing_since.store(0, Ordering::Release);
                }
                let mut st = shared.state.write().unwrap_or_else(|p| p.into_inner());
                for r in records.drain(..) {
                    st.apply(r);
                }
                // Answered under the lock: only this thread writes, and the snapshots
                // are a few refcounts each.
                replies.send(&st);
            }
            Err((e, sync_failed)) => {
                // Cut what was written of the batch, so that neither a later append nor
                // a restart finds any of it; the writer's copy goes back to what readers
                // see. After a failed fdatasync the kernel may have dropped pages it could
                // not write: the file is cut all the same, and the store stops for good.
                let cut = file
                    .set_len(len)
                    .and_then(|()| file.sync_all())
                    .and_then(|()| file.seek(std::io::SeekFrom::Start(len)).map(drop))
                    .is_ok();
                work = shared
                    .state
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                if cut && !sync_failed {
                    shared
                        .refusing_since
                        .store(crate::now_ms().max(1), Ordering::Release);
                    tracing::error!(error = %e, bytes = len, "store write refused; nothing of it was kept");
                } else {
                    shared.healthy.store(false, Ordering::Release);
                    tracing::error!(error = %e, bytes = len, cut, "store write or sync failed; refusing further writes until restarted");
                }
                replies.fail(&StoreError::Io(e.to_string()));
            }
        }
        if let Some(cutoff) = compactions.iter().map(|(c, _)| *c).max() {
            let done = if shared.healthy.load(Ordering::Acquire) {
                compact(&shared, &mut work, &mut file, &mut len, &mut base, cutoff)
            } else {
                Err(StoreError::Io(
                    "store failed earlier; restart the hub".into(),
                ))
            };
            for (_, reply) in compactions {
                let _ = reply.send(done.clone());
            }
        }
    }
}

/// How far the log may grow past twice its size after the last compaction before it
/// is written anew even when nothing expired (marks fold into recipient states).
const GROWTH: u64 = 64 << 20;

/// Writes the log anew as one record per kept incident and report (a snapshot; what is
/// appended after it is the tail), without what `cutoff` lets go. The new log is
/// written beside the old one, synced, and renamed over it: a crash at any point leaves
/// one whole log, old or new. The readers' state then loses the expired incidents too.
fn compact(
    shared: &Shared,
    work: &mut State,
    file: &mut File,
    len: &mut u64,
    base: &mut u64,
    cutoff: u64,
) -> Result<Option<Compacted>, StoreError> {
    // Cheap first: nothing expired and a log of modest size is left as it is.
    if !work.has_expired(cutoff) && *len <= 2 * *base + GROWTH {
        return Ok(None);
    }
    let (records, mut done) = work.compacted(cutoff);
    let mut buf = Vec::with_capacity(*len as usize / 2);
    for r in &records {
        line(r, &mut buf);
    }
    let io = |e: std::io::Error| StoreError::Io(format!("compaction: {e}"));
    let tmp = shared.dir.join(COMPACT_FILE);
    let fresh_file = private_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(&buf)?;
            f.sync_all()?;
            std::fs::rename(&tmp, shared.dir.join(LOG_FILE))?;
            Ok(f)
        });
    let fresh_file = match fresh_file {
        Ok(f) => f,
        Err(e) => {
            // The old log is untouched and still the one appended to.
            let _ = std::fs::remove_file(&tmp);
            tracing::error!(error = %e, "compaction failed; the log stays as it was");
            return Err(io(e));
        }
    };
    // From the rename on, the new file is the log: appends go there.
    *file = fresh_file;
    done.bytes_before = *len;
    done.bytes_after = buf.len() as u64;
    *len = done.bytes_after;
    *base = *len;
    let mut fresh = State::default();
    for r in records {
        fresh.apply(r);
    }
    {
        let mut st = shared.state.write().unwrap_or_else(|p| p.into_inner());
        // Held in memory only, by the readers' state: escalation leases, and the times
        // the outbox sweeper claimed its entries (so that it does not publish them all
        // again at once).
        let leases = std::mem::take(&mut st.leases);
        let mut claimed = std::mem::take(&mut st.outbox);
        *st = fresh.clone();
        st.leases = leases;
        for (key, since) in st.outbox.iter_mut() {
            if let Some(c) = claimed.remove(key) {
                *since = c;
            }
        }
    }
    *work = fresh;
    if let Err(e) = File::open(&shared.dir).and_then(|d| d.sync_all()) {
        // Not sure the rename is durable: after a crash the old log could come back
        // without what is appended from now on.
        shared.healthy.store(false, Ordering::Release);
        tracing::error!(error = %e, "compaction: syncing the data dir failed; refusing further writes");
        return Err(io(e));
    }
    Ok(Some(done))
}

pub(super) fn fail(req: Request, err: StoreError) {
    // The caller may have gone; nothing was recorded either way.
    match req {
        Request::Create(_, reply) => drop(reply.send(Err(err))),
        Request::Marks(batch, reply) => drop(reply.send(vec![Err(err); batch.len()])),
        Request::OutboxDone { reply, .. } => drop(reply.send(Err(err))),
        Request::Revise { reply, .. } => drop(reply.send(Err(err))),
        Request::Report(_, reply) => drop(reply.send(Err(err))),
        Request::Task { reply, .. } => drop(reply.send(Err(err))),
        Request::Escalated { reply, .. } => drop(reply.send(Err(err))),
        Request::LinkReport { reply, .. }
        | Request::Events { reply, .. }
        | Request::UpdateApproval { reply, .. } => drop(reply.send(Err(err))),
        Request::AddApproval(_, reply) => drop(reply.send(Err(err))),
        Request::Compact { reply, .. } => drop(reply.send(Err(err))),
        Request::Fallback(req) => req.fail(err),
    }
}
