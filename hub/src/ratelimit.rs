//! Token buckets: upstream frames per session, connection attempts per source address.

use std::net::IpAddr;
use std::time::Instant;

use dashmap::DashMap;

/// A token bucket: `rate` tokens a second, at most `burst` saved up.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: u32, burst: u32) -> Self {
        Self {
            rate: rate as f64,
            burst: burst as f64,
            tokens: burst as f64,
            last: Instant::now(),
        }
    }

    /// Takes a token at `now` if there is one.
    pub fn try_take_at(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Takes a token now if there is one.
    pub fn try_take(&mut self) -> bool {
        self.try_take_at(Instant::now())
    }
}

/// Connection attempts per source address.
pub struct ConnectLimiter {
    rate: u32,
    burst: u32,
    buckets: DashMap<IpAddr, TokenBucket>,
}

/// Addresses remembered before idle ones are forgotten.
const MAX_ADDRESSES: usize = 100_000;

impl ConnectLimiter {
    /// A limiter with the given rate and burst per address.
    pub fn new(rate: u32, burst: u32) -> Self {
        Self {
            rate,
            burst,
            buckets: DashMap::new(),
        }
    }

    /// True if `ip` may open another connection now.
    pub fn allow(&self, ip: IpAddr) -> bool {
        if self.buckets.len() > MAX_ADDRESSES {
            // A full bucket is the same as a forgotten one, so drop those.
            let (rate, burst) = (self.rate, self.burst);
            self.buckets.retain(|_, b| {
                let mut probe = b.clone();
                let _ = probe.try_take();
                probe.tokens + 1.0 < burst as f64 || rate == 0
            });
        }
        self.buckets
            .entry(ip)
            .or_insert_with(|| TokenBucket::new(self.rate, self.burst))
            .try_take()
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
}
