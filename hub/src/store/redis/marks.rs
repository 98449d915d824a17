//! Receipts and acks in Redis: the marks that arrive while a node's previous script
//! calls are in flight go together in one call (one round trip for hundreds of phones).

use super::*;

/// Most marks in one script call.
pub(super) const MARK_BATCH: usize = 512;
/// Script calls in flight at once from one node.
const MARK_CALLS_IN_FLIGHT: usize = 4;

/// One receipt or ack waiting for its batch.
pub(super) struct MarkJob {
    pub(super) incident: String,
    pub(super) lead: String,
    pub(super) kind: &'static str,
    pub(super) at: u64,
    pub(super) event: String,
    pub(super) reply: tokio::sync::oneshot::Sender<Result<MarkOutcome, StoreError>>,
}

/// Turns the receipts and acks queued by every session of this node into few script
/// calls: it takes what is queued (up to [`MARK_BATCH`]), groups it by incident (an
/// incident's keys share one slot) keeping the order, and runs up to
/// [`MARK_CALLS_IN_FLIGHT`] calls at once; while they run, the next batch gathers.
pub(super) struct MarkBatcher {
    pub(super) conn: Arc<RwLock<ConnectionManager>>,
    pub(super) healthy: Arc<AtomicBool>,
    pub(super) script: Arc<redis::Script>,
    /// Replicas an ack must reach before its `ok` (see `replicas.rs`).
    pub(super) min_replicas: usize,
    /// The store's connection generation (a renewed connection counts none of the
    /// script's writes).
    pub(super) generation: Arc<std::sync::atomic::AtomicU64>,
}

impl MarkBatcher {
    pub(super) async fn run(self, mut rx: tokio::sync::mpsc::Receiver<MarkJob>) {
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
                #[allow(
                    clippy::disallowed_methods,
                    reason = "the store has no tracker: a call ends with its answer"
                )]
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
        let generation = self.generation.load(Ordering::Acquire);
        let mut c = self.conn.read().unwrap_or_else(|p| p.into_inner()).clone();
        let reply: redis::RedisResult<Vec<String>> = inv.invoke_async(&mut c).await;
        self.healthy.store(reply.is_ok(), Ordering::Release);
        let replicated = match &reply {
            Ok(_) if self.min_replicas > 0 && self.generation.load(Ordering::Acquire) != generation => {
                Err(StoreError::Io("redis: the connection was renewed before the acks' replicas were counted; try again".into()))
            }
            Ok(_) => super::replicas::replicated(&mut c, self.min_replicas, &self.healthy).await,
            Err(_) => Ok(()),
        };
        let reply = match reply
            .map_err(|e| StoreError::Io(format!("redis: {e}")))
            .and_then(|r| replicated.map(|()| r))
        {
            Ok(r) => r,
            Err(e) => {
                for j in jobs {
                    let _ = j.reply.send(Err(e.clone()));
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
