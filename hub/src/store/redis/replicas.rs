//! Writes `ok`'d only once replicas have them: Redis replicates asynchronously, so a
//! write acknowledged by a master that then dies may be missing from the replica that
//! takes its place. With `--redis-min-replicas N` (1 by default behind Sentinel) every
//! change is followed by `WAIT N`, and a change that fewer replicas have within
//! [`WAIT_MS`] is answered as a failure (the phone or operator tries again; every
//! change is safe to repeat).

use super::*;

/// How long a write waits for its replicas.
pub(super) const WAIT_MS: u64 = 1_000;

impl RedisStore {
    /// `Ok` once `--redis-min-replicas` replicas have every write this node sent so far
    /// (WAIT counts the connection's writes: the store's writes share one connection).
    pub(super) async fn replicated(&self) -> Result<(), StoreError> {
        replicated(&mut self.connection(), self.min_replicas, &self.healthy).await
    }

    /// `write`, then [`RedisStore::replicated`].
    pub(super) async fn durable<T>(
        &self,
        write: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let done = write.await?;
        self.replicated().await?;
        Ok(done)
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
