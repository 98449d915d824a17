//! Token buckets: upstream frames, bytes and reports per lead (all its sessions and
//! channels together), connection attempts per source address.

use std::net::IpAddr;
use std::time::Instant;

use dashmap::DashMap;

/// A token bucket: `rate` tokens a second, at most `burst` saved up.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) fn new(rate: u32, burst: u32) -> Self {
        Self {
            rate: rate as f64,
            burst: burst as f64,
            tokens: burst as f64,
            last: Instant::now(),
        }
    }

    /// A full bucket that refills `per_minute` tokens a minute.
    pub(crate) fn per_minute(per_minute: u32, burst: u32) -> Self {
        Self {
            rate: f64::from(per_minute) / 60.0,
            ..Self::new(0, burst)
        }
    }

    /// Takes a token at `now` if there is one.
    pub(crate) fn try_take_at(&mut self, now: Instant) -> bool {
        self.try_take_n_at(1.0, now)
    }

    /// Takes `n` tokens at `now` if there are that many (nothing is taken otherwise).
    pub(crate) fn try_take_n_at(&mut self, n: f64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }

    /// True when the bucket is full at `now` (as good as forgotten).
    fn full_at(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * self.rate >= self.burst
    }

    /// Takes a token now if there is one.
    pub(crate) fn try_take(&mut self) -> bool {
        self.try_take_at(Instant::now())
    }
}

/// Connection attempts per source address.
pub(crate) struct ConnectLimiter {
    rate: u32,
    burst: u32,
    buckets: DashMap<IpAddr, TokenBucket>,
    prune: Prune,
}

/// Addresses remembered before idle ones are forgotten.
const MAX_ADDRESSES: usize = 100_000;

impl ConnectLimiter {
    /// A limiter with the given rate and burst per address.
    pub(crate) fn new(rate: u32, burst: u32) -> Self {
        Self {
            rate,
            burst,
            buckets: DashMap::new(),
            prune: Prune::new(),
        }
    }

    /// True if `ip` may open another connection now.
    pub(crate) fn allow(&self, ip: IpAddr) -> bool {
        self.prune.maybe(self.buckets.len(), || {
            // A full bucket is the same as a forgotten one, so drop those.
            let now = Instant::now();
            self.buckets.retain(|_, b| !b.full_at(now));
            self.buckets.len()
        });
        self.buckets
            .entry(ip)
            .or_insert_with(|| TokenBucket::new(self.rate, self.burst))
            .try_take()
    }
}

/// Per-lead bounds (`--upstream-rate`/`--upstream-burst`, `--upstream-bytes-rate`/
/// `--upstream-bytes-burst`, `--report-quota`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LeadLimits {
    /// Frames a second, and the burst.
    pub(crate) frames: (u32, u32),
    /// Bytes a second, and the burst.
    pub(crate) bytes: (u32, u32),
    /// Reports a minute (also the burst).
    pub(crate) reports_per_minute: u32,
}

struct Budget {
    frames: TokenBucket,
    bytes: TokenBucket,
    reports: TokenBucket,
    /// On-site check-ins ([`CHECKINS_PER_MINUTE`]), apart from reports.
    checkins: TokenBucket,
}

/// What a lead went over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Over {
    /// Too many frames.
    Frames,
    /// Too many bytes.
    Bytes,
}

/// The upstream budget of every lead, shared by all its sessions and channels on this
/// node. Charged with a frame's length before the frame is decoded, so a malformed
/// frame costs the sender as much as a good one.
pub(crate) struct LeadLimiter {
    limits: LeadLimits,
    leads: DashMap<String, Budget>,
    prune: Prune,
}

/// When to sweep a map of buckets: past a size that doubles with what a sweep leaves, so
/// that a city with more live entries than [`MAX_ADDRESSES`] does not sweep at every
/// new key (amortised O(1)).
struct Prune(std::sync::atomic::AtomicUsize);

impl Prune {
    fn new() -> Self {
        Self(std::sync::atomic::AtomicUsize::new(MAX_ADDRESSES))
    }

    /// Runs `sweep` (which returns the size it left) when `len` is past the mark.
    fn maybe(&self, len: usize, sweep: impl FnOnce() -> usize) {
        use std::sync::atomic::Ordering::Relaxed;
        if len > self.0.load(Relaxed) {
            let left = sweep();
            self.0.store(MAX_ADDRESSES.max(2 * left), Relaxed);
        }
    }
}

/// On-site check-ins a lead may make a minute (a burst of as many): a person at a scene
/// checks in now and then; a stolen token cannot fill a timeline, and never uses up the
/// report quota (Art. 18: nobody may block a report).
pub(crate) const CHECKINS_PER_MINUTE: u32 = 6;

impl LeadLimiter {
    /// A limiter with these bounds.
    pub(crate) fn new(limits: LeadLimits) -> Self {
        Self {
            limits,
            leads: DashMap::new(),
            prune: Prune::new(),
        }
    }

    fn with<R>(&self, lead: &str, f: impl FnOnce(&mut Budget, Instant) -> R) -> R {
        let now = Instant::now();
        // The hot path: a lead seen before, no allocation.
        if let Some(mut b) = self.leads.get_mut(lead) {
            return f(&mut b, now);
        }
        self.prune.maybe(self.leads.len(), || {
            // Full buckets are the same as forgotten ones.
            self.leads.retain(|_, b| {
                !(b.frames.full_at(now)
                    && b.bytes.full_at(now)
                    && b.reports.full_at(now)
                    && b.checkins.full_at(now))
            });
            self.leads.len()
        });
        let l = self.limits;
        let mut entry = self.leads.entry(lead.to_owned()).or_insert_with(|| Budget {
            frames: TokenBucket::new(l.frames.0, l.frames.1),
            bytes: TokenBucket::new(l.bytes.0, l.bytes.1),
            reports: TokenBucket::per_minute(l.reports_per_minute, l.reports_per_minute),
            checkins: TokenBucket::per_minute(CHECKINS_PER_MINUTE, CHECKINS_PER_MINUTE),
        });
        f(&mut entry, now)
    }

    /// Charges one frame of `len` bytes to `lead`.
    pub(crate) fn charge_frame(&self, lead: &str, len: usize) -> Result<(), Over> {
        self.with(lead, |b, now| {
            if !b.frames.try_take_at(now) {
                Err(Over::Frames)
            } else if !b.bytes.try_take_n_at(len as f64, now) {
                Err(Over::Bytes)
            } else {
                Ok(())
            }
        })
    }

    /// Charges one on-site check-in to `lead`; false past [`CHECKINS_PER_MINUTE`].
    pub(crate) fn charge_checkin(&self, lead: &str) -> bool {
        self.with(lead, |b, now| b.checkins.try_take_at(now))
    }

    /// Charges one report to `lead`'s quota; false when the quota is used up.
    pub(crate) fn charge_report(&self, lead: &str) -> bool {
        self.with(lead, |b, now| b.reports.try_take_at(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_allows_burst_then_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(20, 50);
        b.last = t0;
        assert_eq!((0..60).filter(|_| b.try_take_at(t0)).count(), 50);
        assert!(!b.try_take_at(t0));
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!((0..10).filter(|_| b.try_take_at(t1)).count(), 2);
    }

    #[test]
    fn a_lead_is_one_budget_of_frames_bytes_and_reports() {
        let l = LeadLimiter::new(LeadLimits {
            frames: (1, 5),
            bytes: (1, 1000),
            reports_per_minute: 2,
        });
        assert_eq!(l.charge_frame("L1", 600), Ok(()));
        assert_eq!(l.charge_frame("L1", 600), Err(Over::Bytes));
        assert_eq!(l.charge_frame("L2", 600), Ok(()));
        for _ in 0..3 {
            let _ = l.charge_frame("L1", 1);
        }
        assert_eq!(l.charge_frame("L1", 1), Err(Over::Frames));
        assert!(l.charge_report("L1") && l.charge_report("L1"));
        assert!(!l.charge_report("L1"));
        assert!(l.charge_report("L2"));
    }
}
