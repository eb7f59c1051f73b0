//! A token bucket for per-stream and per-connection rates.

use std::time::Instant;

/// A token bucket: `burst` tokens, refilled at `per_sec`. Time comes in as an argument so the
/// limiter is tested without sleeping.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    capacity: f64,
    per_sec: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub(crate) fn new(burst: u32, per_sec: f64, now: Instant) -> Self {
        let capacity = f64::from(burst.max(1));
        Self {
            capacity,
            per_sec: per_sec.max(0.0),
            tokens: capacity,
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub(crate) fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_refill() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(3, 1.0, t0);
        assert!(b.try_take(t0));
        assert!(b.try_take(t0));
        assert!(b.try_take(t0));
        assert!(!b.try_take(t0));
        assert!(!b.try_take(t0 + Duration::from_millis(500)));
        assert!(b.try_take(t0 + Duration::from_millis(1000)));
        assert!(!b.try_take(t0 + Duration::from_millis(1000)));
    }

    #[test]
    fn never_exceeds_capacity_after_long_idle() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(2, 10.0, t0);
        let later = t0 + Duration::from_secs(3600);
        assert!(b.try_take(later));
        assert!(b.try_take(later));
        assert!(!b.try_take(later));
    }
}
