//! A token bucket: how a controller bounds the rate of the work it starts.
//!
//! A Kubernetes controller's writes are bounded by its client's QPS limit,
//! so a burst of objects (a thousand Experiments created at once) is
//! accepted by the API server at its own pace and started by the
//! controller at the controller's. In one process the two share the CPUs
//! and the database; a controller that starts work for each new object
//! takes a token first ([`TokenBucket::reserve`]: now, or a slot in the
//! future to wait for, in the order asked), so the API keeps its throughput
//! and the backlog drains at the bucket's rate, each waiter woken once.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// `burst` tokens, refilled at `per_second`.
#[derive(Debug)]
pub struct TokenBucket {
    burst: f64,
    per_second: f64,
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    /// A full bucket of `burst` tokens refilled at `per_second`
    /// (both at least 1).
    pub fn new(burst: u32, per_second: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            burst,
            per_second: f64::from(per_second.max(1)),
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// Takes a token: `Ok(())`, or `Err(wait)`, how long until one is there.
    pub fn take(&self) -> Result<(), Duration> {
        self.take_at(Instant::now())
    }

    /// Takes a token now or reserves the next free one: how long to wait
    /// for it (zero when there was one). Reservations queue: the tenth
    /// caller of an empty bucket refilled at 10/s waits a second.
    pub fn reserve(&self) -> Duration {
        self.reserve_at(Instant::now())
    }

    fn reserve_at(&self, now: Instant) -> Duration {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, at) = *state;
        let tokens = (tokens + now.saturating_duration_since(at).as_secs_f64() * self.per_second)
            .min(self.burst)
            - 1.0;
        *state = (tokens, now);
        if tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-tokens / self.per_second)
        }
    }

    fn take_at(&self, now: Instant) -> Result<(), Duration> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, at) = *state;
        let tokens = (tokens + now.saturating_duration_since(at).as_secs_f64() * self.per_second)
            .min(self.burst);
        if tokens >= 1.0 {
            *state = (tokens - 1.0, now);
            Ok(())
        } else {
            *state = (tokens, now);
            Err(Duration::from_secs_f64((1.0 - tokens) / self.per_second))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_queue_at_the_rate() {
        let b = TokenBucket::new(2, 10);
        let t0 = Instant::now();
        let waits: Vec<f64> = (0..5).map(|_| b.reserve_at(t0).as_secs_f64()).collect();
        let want = [0.0, 0.0, 0.1, 0.2, 0.3];
        for (w, e) in waits.iter().zip(want) {
            assert!((w - e).abs() < 1e-6, "{waits:?}");
        }
        // Once the reserved slots have passed, the bucket refills from zero.
        let later = t0 + Duration::from_millis(300);
        assert_eq!(b.reserve_at(later), Duration::from_millis(100));
    }

    #[test]
    fn a_burst_then_the_rate() {
        let b = TokenBucket::new(3, 10);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(b.take_at(t0).is_ok());
        }
        // Empty: the next token is a tenth of a second away.
        let wait = b.take_at(t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-6, "{wait:?}");
        // Half of it later, half the wait is left; after it, one token.
        let wait = b.take_at(t0 + Duration::from_millis(50)).unwrap_err();
        assert!((wait.as_secs_f64() - 0.05).abs() < 1e-6, "{wait:?}");
        assert!(b.take_at(t0 + Duration::from_millis(100)).is_ok());
        assert!(b.take_at(t0 + Duration::from_millis(100)).is_err());
        // A long pause refills to the burst, no more.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(b.take_at(later).is_ok());
        }
        assert!(b.take_at(later).is_err());
    }
}
