//! The token buckets behind the per-socket rate limits ([`SocketLimits`], settings
//! `WS_MESSAGES_PER_SECOND` … in `config::limits`). The original has no limits (README,
//! "Documented differences").
//!
//! Pure: the clock is passed in, so the rules are unit-tested without sleeping.

use std::time::Duration;

use tokio::time::Instant;

pub use crate::config::{Rate, SocketLimits};

/// A token bucket: starts full, refills continuously, never above `burst`.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    rate: Rate,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    pub fn new(rate: Rate, now: Instant) -> Self {
        TokenBucket {
            rate,
            tokens: rate.burst,
            at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate.per_second).min(self.rate.burst);
        self.at = now;
    }

    /// Whether `cost` tokens are there now (nothing is taken).
    pub fn has(&mut self, cost: f64, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= cost
    }

    /// Takes `cost` tokens if they are there; otherwise takes nothing and returns false.
    pub fn take(&mut self, cost: f64, now: Instant) -> bool {
        if !self.has(cost, now) {
            return false;
        }
        self.tokens -= cost;
        true
    }

    /// How long until `cost` tokens are there (zero when they are).
    pub fn wait_for(&mut self, cost: f64, now: Instant) -> Duration {
        self.refill(now);
        let missing = (cost - self.tokens).max(0.0);
        if missing == 0.0 || self.rate.per_second <= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(missing / self.rate.per_second)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: Rate = Rate {
        per_second: 10.0,
        burst: 3.0,
    };

    #[test]
    fn a_full_bucket_allows_the_burst_then_refills_at_the_rate() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(RATE, t0);
        assert!(bucket.take(1.0, t0));
        assert!(bucket.take(1.0, t0));
        assert!(bucket.take(1.0, t0));
        assert!(!bucket.take(1.0, t0), "the burst is spent");
        assert_eq!(bucket.wait_for(1.0, t0), Duration::from_millis(100));
        assert!(!bucket.take(1.0, t0 + Duration::from_millis(50)));
        assert!(bucket.take(1.0, t0 + Duration::from_millis(100)));
        // A long pause refills up to the burst, no more.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(bucket.take(1.0, later));
        }
        assert!(!bucket.take(1.0, later));
    }

    #[test]
    fn a_refused_take_costs_nothing() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(RATE, t0);
        assert!(!bucket.take(5.0, t0), "more than the burst");
        assert!(bucket.take(3.0, t0), "the refusal took nothing");
    }

    #[test]
    fn a_clock_that_goes_back_adds_nothing() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut bucket = TokenBucket::new(RATE, t0);
        assert!(bucket.take(3.0, t0));
        assert!(!bucket.take(1.0, t0 - Duration::from_secs(5)));
    }
}
