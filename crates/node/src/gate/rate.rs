//! Token-bucket rate limits, per key, with a bounded number of keys.

use std::{hash::Hash, num::NonZeroUsize, time::Instant};

use lru::LruCache;

/// A token bucket: `rate` tokens a second, holding at most `burst`.
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(burst: f64, now: Instant) -> Self {
        Self {
            tokens: burst,
            last: now,
        }
    }

    /// Takes `cost` tokens if there are enough.
    fn try_take(&mut self, cost: f64, rate: f64, burst: f64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.last = now;
        if self.tokens >= cost {
            self.tokens -= cost;
            true
        } else {
            false
        }
    }
}

/// One bucket per key (least recently used keys forgotten first).
pub struct KeyedLimiter<K: Hash + Eq> {
    rate: f64,
    burst: f64,
    buckets: LruCache<K, TokenBucket>,
}

impl<K: Hash + Eq> KeyedLimiter<K> {
    /// `rate` units a second per key, bursts up to one second's worth.
    pub fn new(rate: f64, max_keys: usize) -> Self {
        Self::with_burst(rate, rate, max_keys)
    }

    /// `rate` units a second per key, bursts up to `burst` (at least one
    /// second's worth).
    pub fn with_burst(rate: f64, burst: f64, max_keys: usize) -> Self {
        Self {
            rate,
            burst: burst.max(rate).max(1.0),
            buckets: LruCache::new(NonZeroUsize::new(max_keys).unwrap_or(NonZeroUsize::MIN)),
        }
    }

    /// Whether `key` may spend `cost` now (and spends it if so).
    pub fn allow(&mut self, key: K, cost: f64, now: Instant) -> bool {
        let (rate, burst) = (self.rate, self.burst);
        self.buckets
            .get_or_insert_mut(key, || TokenBucket::new(burst, now))
            .try_take(cost, rate, burst, now)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn allows_the_rate_and_refills() {
        let mut limiter = KeyedLimiter::new(10.0, 4);
        let t0 = Instant::now();
        let allowed = (0..15).filter(|_| limiter.allow("a", 1.0, t0)).count();
        assert_eq!(allowed, 10, "a burst of one second's worth");
        assert!(limiter.allow("b", 1.0, t0), "keys are independent");
        assert!(!limiter.allow("a", 1.0, t0));
        assert!(
            limiter.allow("a", 1.0, t0 + Duration::from_millis(150)),
            "refilled"
        );
        assert!(!limiter.allow("a", 5.0, t0 + Duration::from_millis(150)));
    }
}
