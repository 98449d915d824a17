//! Writes `ok`'d only once replicas have them: Redis replicates asynchronously, so a
//! write acknowledged by a master that then dies may be missing from the replica that
//! takes its place. With `--redis-min-replicas N` (1 by default behind Sentinel) every
//! change is followed by `WAIT N` on the connection that made it.
//!
//! What a shortfall (fewer than N replicas within [`WAIT_MS`], or the connection
//! replaced between the write and the WAIT) means depends on the change:
//! - one that is safe to repeat (an ack, a receipt, a revision, a task update…) is
//!   answered `unavailable`, and the phone or operator tries again;
//! - one that creates something (an incident, a task, a report, a held request) stands
//!   and goes out already: refusing it would make the operator create it twice, so it is
//!   answered as done and logged as not yet confirmed on a replica.
//!
//! Behind Sentinel a shortfall also asks for the master again at the next heartbeat (a
//! stale sentinel may have named a master its replicas left).

use super::*;

/// How long a write waits for its replicas.
pub(super) const WAIT_MS: u64 = 1_000;

/// What a shortfall means for a change (see the module docs).
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Shortfall {
    /// Answered `unavailable`: the change is safe to repeat.
    Refuse,
    /// Answered as done, logged: the change created something.
    Stand,
}

impl RedisStore {
    /// `write`, then `WAIT` for `--redis-min-replicas` on the same connection; a
    /// shortfall is refused (the change is safe to repeat).
    pub(super) async fn durable<T>(
        &self,
        write: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.durable_as(Shortfall::Refuse, write).await
    }

    /// [`RedisStore::durable`] for a change that creates something: a shortfall stands.
    pub(super) async fn created<T>(
        &self,
        write: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.durable_as(Shortfall::Stand, write).await
    }

    async fn durable_as<T>(
        &self,
        shortfall: Shortfall,
        write: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let generation = self.generation.load(Ordering::Acquire);
        let done = write.await?;
        if self.min_replicas == 0 {
            return Ok(done);
        }
        // WAIT counts the writes of the connection it runs on: a connection renewed
        // since the write would count nothing of it.
        let confirmed = if self.generation.load(Ordering::Acquire) == generation {
            replicated(&mut self.connection(), self.min_replicas, &self.healthy).await
        } else {
            Err(StoreError::Io(
                "redis: the connection was renewed before the change's replicas were counted; try again".into(),
            ))
        };
        match (confirmed, shortfall) {
            (Ok(()), _) => Ok(done),
            (Err(e), Shortfall::Stand) => {
                self.want_renew();
                tracing::error!(error = %e, "a new record stands without confirmation that a replica has it");
                Ok(done)
            }
            (Err(e), Shortfall::Refuse) => {
                self.want_renew();
                Err(e)
            }
        }
    }

    /// Behind Sentinel, the master is asked for again at the next heartbeat.
    pub(super) fn want_renew(&self) {
        if self.target.is_sentinel() {
            self.renew_wanted.store(true, Ordering::Release);
        }
    }

    /// True once since a shortfall asked for the master again.
    pub fn take_renew_wanted(&self) -> bool {
        self.renew_wanted.swap(false, Ordering::AcqRel)
    }
}

/// `WAIT min WAIT_MS` on `c`; `Err` when fewer replicas answered.
pub(super) async fn replicated(
    c: &mut ConnectionManager,
    min: usize,
    healthy: &AtomicBool,
) -> Result<(), StoreError> {
    if min == 0 {
        return Ok(());
    }
    let got: redis::RedisResult<usize> = redis::cmd("WAIT")
        .arg(min)
        .arg(WAIT_MS)
        .query_async(c)
        .await;
    healthy.store(got.is_ok(), Ordering::Release);
    match got {
        Ok(n) if n >= min => Ok(()),
        Ok(n) => Err(StoreError::Io(format!(
            "redis: the change reached {n} of the {min} replicas required (--redis-min-replicas) within {WAIT_MS} ms; try again"
        ))),
        Err(e) => Err(StoreError::Io(format!("redis: {e}"))),
    }
}
