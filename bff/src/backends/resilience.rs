//! Per-service circuit breakers and retry backoff, from
//! `services.<id>.circuit_breaker` and `services.<id>.retry`.
//!
//! A breaker counts consecutive failures (unreachable, timed out, 5xx; a
//! 4xx is the backend's answer, not a failure). At `failure_threshold` it
//! opens: calls fail at once for `timeout`. Then it is half-open: one call
//! at a time goes through as a probe; `success_threshold` successes close
//! it, a failure opens it again. Each replica keeps its own view of each
//! backend, as the deployment guide intends.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use thesa_core::config::{CircuitBreakerConfig, RetryConfig};

/// What a breaker is doing, as exported in
/// `thesa_backend_circuit_breaker_state` (0, 1, 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed = 0,
    /// Calls fail at once.
    Open = 1,
    /// One probe at a time goes through.
    HalfOpen = 2,
}

#[derive(Debug)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { successes: u32, probing: bool },
}

/// One service's circuit breaker.
#[derive(Debug)]
pub struct Breaker {
    failure_threshold: u32,
    success_threshold: u32,
    open_for: Duration,
    state: Mutex<State>,
}

/// Permission to make one call; report its outcome with `record`.
#[derive(Debug)]
#[must_use]
pub struct Permit {
    probe: bool,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(config: &CircuitBreakerConfig) -> Self {
        Self {
            failure_threshold: config.failure_threshold.max(1),
            success_threshold: config.success_threshold.max(1),
            open_for: config.timeout.get(),
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A permit to call, or `None` while the breaker is open (or a probe
    /// is already out).
    pub fn try_acquire(&self) -> Option<Permit> {
        let mut state = self.lock();
        match &mut *state {
            State::Closed { .. } => Some(Permit { probe: false }),
            State::Open { until } if Instant::now() < *until => None,
            State::Open { .. } => {
                *state = State::HalfOpen {
                    successes: 0,
                    probing: true,
                };
                Some(Permit { probe: true })
            }
            State::HalfOpen { probing: true, .. } => None,
            State::HalfOpen { probing, .. } => {
                *probing = true;
                Some(Permit { probe: true })
            }
        }
    }

    /// Records how a permitted call ended.
    pub fn record(&self, permit: Permit, success: bool) {
        let mut state = self.lock();
        let open = State::Open {
            until: Instant::now() + self.open_for,
        };
        match &mut *state {
            State::Closed { failures } => {
                if success {
                    *failures = 0;
                } else {
                    *failures += 1;
                    if *failures >= self.failure_threshold {
                        *state = open;
                    }
                }
            }
            State::HalfOpen { successes, probing } if permit.probe => {
                *probing = false;
                if !success {
                    *state = open;
                } else {
                    *successes += 1;
                    if *successes >= self.success_threshold {
                        *state = State::Closed { failures: 0 };
                    }
                }
            }
            // A call permitted before the breaker opened: its outcome says
            // nothing new.
            _ => {}
        }
    }

    /// The current state (an open breaker whose time is up reads as
    /// half-open).
    pub fn state(&self) -> BreakerState {
        match &*self.lock() {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { until } if Instant::now() < *until => BreakerState::Open,
            State::Open { .. } | State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }
}

/// The wait before retry number `retry` (1 for the first retry):
/// `backoff_initial × backoff_multiplier^(retry−1)`, at most `backoff_max`.
pub fn backoff(config: &RetryConfig, retry: u32) -> Duration {
    let factor = config
        .backoff_multiplier
        .max(1.0)
        .powi(i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX));
    let wait = config.backoff_initial.get().as_secs_f64() * factor;
    Duration::from_secs_f64(wait.min(config.backoff_max.get().as_secs_f64()))
}

/// Whether a method may be sent again without changing the outcome.
pub fn is_idempotent(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "PUT" | "DELETE" | "OPTIONS")
}

#[cfg(test)]
mod tests {
    use super::*;
    use thesa_core::duration::Duration as ConfigDuration;

    fn breaker(open_for_ms: u64) -> Breaker {
        Breaker::new(&CircuitBreakerConfig {
            failure_threshold: 3,
            success_threshold: 2,
            timeout: ConfigDuration::from_millis(open_for_ms),
            ..CircuitBreakerConfig::default()
        })
    }

    fn call(b: &Breaker, success: bool) -> bool {
        match b.try_acquire() {
            Some(permit) => {
                b.record(permit, success);
                true
            }
            None => false,
        }
    }

    #[test]
    fn opens_after_the_threshold_and_closes_after_probes() {
        let b = breaker(50);
        assert!(call(&b, false) && call(&b, false));
        assert!(call(&b, true), "a success resets the count");
        assert!(call(&b, false) && call(&b, false) && call(&b, false));
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!call(&b, true), "open: refused");
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let probe = b.try_acquire().expect("one probe");
        assert!(b.try_acquire().is_none(), "one probe at a time");
        b.record(probe, true);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(call(&b, true));
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn a_failed_probe_opens_again() {
        let b = breaker(30);
        for _ in 0..3 {
            call(&b, false);
        }
        std::thread::sleep(Duration::from_millis(40));
        assert!(call(&b, false));
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let config = RetryConfig::default(); // 100 ms × 2, at most 2 s
        assert_eq!(backoff(&config, 1), Duration::from_millis(100));
        assert_eq!(backoff(&config, 2), Duration::from_millis(200));
        assert_eq!(backoff(&config, 3), Duration::from_millis(400));
        assert_eq!(backoff(&config, 10), Duration::from_secs(2));
        assert!(is_idempotent("GET") && is_idempotent("PUT"));
        assert!(!is_idempotent("POST") && !is_idempotent("PATCH"));
    }
}
