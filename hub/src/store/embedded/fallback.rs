//! The fallback channel's queue in the embedded store: decided by the writer like
//! every other change (durable before the answer), read from the readers' state.

use gridcast_protocol::api::TimelineEvent;

use super::EmbeddedStore;
use super::log::Record;
use super::state::State;
use super::writer::{Replies, Reply, Request};
use crate::store::{FallbackRecord, StoreError};

/// A change to the queue, for the writer.
pub(super) enum FallbackRequest {
    /// New messages (ids already queued are left alone); answers how many were new.
    Add(Vec<FallbackRecord>, Reply<usize>),
    /// Claims due messages.
    Claim {
        now: u64,
        lease: u64,
        limit: usize,
        reply: Reply<Vec<FallbackRecord>>,
    },
    /// A sender's (or a status callback's) update under its claim.
    Update {
        record: Box<FallbackRecord>,
        expect: u64,
        events: Vec<TimelineEvent>,
        next: Option<FallbackRecord>,
        reply: Reply<bool>,
    },
}

impl FallbackRequest {
    /// Refuses it: nothing of it was kept.
    pub(super) fn fail(self, err: StoreError) {
        match self {
            Self::Add(_, reply) => drop(reply.send(Err(err))),
            Self::Claim { reply, .. } => drop(reply.send(Err(err))),
            Self::Update { reply, .. } => drop(reply.send(Err(err))),
        }
    }
}

/// Decides one queue change on the writer's copy; `record` applies and stages a record.
pub(super) fn stage(
    work: &mut State,
    req: FallbackRequest,
    record: &mut dyn FnMut(&mut State, Record),
    out: &mut Replies,
) {
    match req {
        FallbackRequest::Add(records, reply) => {
            let mut added = 0;
            for r in records {
                if !work.fallback.contains_key(&r.id) && work.incidents.contains_key(&r.incident) {
                    added += 1;
                    record(work, Record::Fallback { record: r });
                }
            }
            out.counts.push((added, reply));
        }
        FallbackRequest::Claim {
            now,
            lease,
            limit,
            reply,
        } => {
            let mut due: Vec<FallbackRecord> = work
                .fallback_due
                .iter()
                .take_while(|(at, _)| *at <= now)
                .take(limit)
                .filter_map(|(_, id)| work.fallback.get(id).cloned())
                .collect();
            for r in &mut due {
                r.claim(now, lease);
                record(work, Record::Fallback { record: r.clone() });
            }
            out.claimed.push((due, reply));
        }
        FallbackRequest::Update {
            record: new,
            expect,
            events,
            next,
            reply,
        } => {
            let fresh = work
                .fallback
                .get(&new.id)
                .is_some_and(|cur| cur.claims == expect);
            if fresh {
                let incident = new.incident.clone();
                record(work, Record::Fallback { record: *new });
                if let Some(next) = next.filter(|n| !work.fallback.contains_key(&n.id)) {
                    record(work, Record::Fallback { record: next });
                }
                if !events.is_empty() && work.incidents.contains_key(&incident) {
                    record(work, Record::Events { incident, events });
                }
            }
            out.flags.push((fresh, reply));
        }
    }
}

impl EmbeddedStore {
    /// See [`crate::store::Store::fallback_add`].
    pub(super) async fn queue_fallback(
        &self,
        records: Vec<FallbackRecord>,
    ) -> Result<usize, StoreError> {
        self.ask(|reply| Request::Fallback(FallbackRequest::Add(records, reply)))
            .await
    }

    /// See [`crate::store::Store::fallback_claim`].
    pub(super) async fn claim_fallback(
        &self,
        now: u64,
        lease: u64,
        limit: usize,
    ) -> Result<Vec<FallbackRecord>, StoreError> {
        // Most ticks find nothing due: answered from the readers' state, no write.
        let any = self
            .shared
            .state
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .fallback_due
            .first()
            .is_some_and(|(at, _)| *at <= now);
        if !any {
            return Ok(Vec::new());
        }
        self.ask(|reply| {
            Request::Fallback(FallbackRequest::Claim {
                now,
                lease,
                limit,
                reply,
            })
        })
        .await
    }

    /// See [`crate::store::Store::fallback_update`].
    pub(super) async fn update_fallback(
        &self,
        record: &FallbackRecord,
        expect: u64,
        events: Vec<TimelineEvent>,
        next: Option<FallbackRecord>,
    ) -> Result<bool, StoreError> {
        let record = Box::new(record.clone());
        self.ask(|reply| {
            Request::Fallback(FallbackRequest::Update {
                record,
                expect,
                events,
                next,
                reply,
            })
        })
        .await
    }

    /// See [`crate::store::Store::fallback_get`] and [`crate::store::Store::fallback_of`]:
    /// the messages `keep` picks.
    pub(super) fn read_fallback(
        &self,
        keep: impl Fn(&FallbackRecord) -> bool,
    ) -> Vec<FallbackRecord> {
        self.shared
            .state
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .fallback
            .values()
            .filter(|r| keep(r))
            .cloned()
            .collect()
    }
}
