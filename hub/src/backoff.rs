//! The one retry wait of the hub: exponential from `first`, each wait jittered within
//! one step (so that a fleet of nodes never retries in step) and never above `max`,
//! ended early by shutdown. Every reconnect and retry loop uses it; the delays come
//! from `backon`.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio_util::sync::CancellationToken;

/// A retry loop's waits; see the module docs.
#[derive(Debug)]
pub(crate) struct Backoff {
    builder: ExponentialBuilder,
    delays: <ExponentialBuilder as BackoffBuilder>::Backoff,
}

impl Backoff {
    /// Waits from `first` (to twice that), doubling, never above `max`.
    pub(crate) fn new(first: Duration, max: Duration) -> Self {
        // backon's jitter adds up to one step: steps stop at half the cap.
        let builder = ExponentialBuilder::new()
            .with_min_delay(first)
            .with_max_delay((max / 2).max(first))
            .with_factor(2.0)
            .with_jitter()
            .without_max_times();
        Self {
            delays: builder.build(),
            builder,
        }
    }

    /// After a success: the next wait is `first` again.
    pub(crate) fn reset(&mut self) {
        self.delays = self.builder.build();
    }

    /// The next wait.
    pub(crate) fn next_wait(&mut self) -> Duration {
        self.delays.next().unwrap_or(Duration::from_secs(1))
    }

    /// Sleeps the next wait; false when `shutdown` fired first.
    #[allow(clippy::disallowed_methods, reason = "the one place a retry waits")]
    pub(crate) async fn sleep(&mut self, shutdown: &CancellationToken) -> bool {
        let wait = self.next_wait();
        tokio::select! {
            () = tokio::time::sleep(wait) => true,
            () = shutdown.cancelled() => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn waits_double_up_to_the_cap_with_jitter_and_start_over_after_reset() {
        let mut b = Backoff::new(100 * MS, 800 * MS);
        let steps = [100, 200, 400, 400, 400, 400];
        for step in steps {
            let w = b.next_wait();
            assert!(
                (step * MS..2 * step * MS).contains(&w),
                "{w:?} outside [{step}, {}) ms",
                2 * step
            );
        }
        b.reset();
        assert!(b.next_wait() < 200 * MS);
    }

    #[test]
    fn two_loops_do_not_wait_in_step() {
        let mut a = Backoff::new(1_000 * MS, 2_000 * MS);
        let mut b = Backoff::new(1_000 * MS, 2_000 * MS);
        let same = (0..20).filter(|_| a.next_wait() == b.next_wait()).count();
        assert!(same < 20, "jitter makes the waits differ");
    }

    #[tokio::test]
    async fn shutdown_ends_the_wait() {
        let mut b = Backoff::new(60_000 * MS, 60_000 * MS);
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        assert!(!b.sleep(&shutdown).await);
    }
}
