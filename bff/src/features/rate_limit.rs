//! Commands' `rate_limit`: at most `max_requests` runs in any `window`,
//! counted per user, tenant or for everyone (`scope`).
//!
//! The algorithm is a sliding-window log: each allowed run leaves its time
//! in the log of its key; a run is allowed while fewer than `max_requests`
//! times lie within the last `window`. Unlike a fixed window it never
//! allows a burst of twice the limit across a window's edge, and unlike
//! GCRA it allows exactly `max_requests` in any window (GCRA allows the
//! burst and then a steady rate, more than `max_requests` in the first
//! window). It keeps one entry per allowed run, which is cheap at the
//! limits commands have (tens to thousands per window). `Retry-After` is
//! when the oldest run in the window leaves it.
//!
//! Two stores: Redis (`rate_limit.driver: redis`, shared by every replica;
//! one Lua script reads and updates a sorted set atomically, with Redis's
//! own clock, so replicas with skewed clocks still agree) and memory (one
//! replica). When Redis does not answer, `rate_limit.on_store_error`
//! decides: `allow` runs the command unlimited (fail open), `deny`
//! answers 503 (fail closed); readiness reports the store as failing
//! (degraded) either way.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use thesa_core::config::{RateLimitConfig, RateLimitDriver};
use thesa_core::model::{RateLimit, RateLimitScope};

use crate::access::Caller;
use crate::features::idempotency;

/// Prefix of every key this BFF writes in Redis.
const REDIS_PREFIX: &str = "thesa:ratelimit:";

/// The decision for one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The run is allowed (and counted).
    Allowed,
    /// The limit is reached; the caller may retry after this long.
    Limited {
        /// Until the oldest counted run leaves the window.
        retry_after: Duration,
    },
}

/// The store could not be asked.
#[derive(Debug, thiserror::Error)]
#[error("rate limit store: {0}")]
pub struct StoreError(String);

/// A limit as applied: how many in which window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Runs allowed per window.
    pub max: u32,
    /// The window.
    pub window: Duration,
}

impl Limit {
    /// The limit a command declares, when complete.
    pub fn of(rule: &RateLimit) -> Option<Self> {
        let max = rule.max_requests.filter(|m| *m > 0)?;
        let window = rule.window?.get();
        (!window.is_zero()).then_some(Self { max, window })
    }
}

/// The key a run is counted under: the command and its scope's value.
/// Parts carry their lengths, so no tenant or subject can make its key
/// equal another's.
pub fn key(command: &str, scope: RateLimitScope, caller: &Caller) -> String {
    let part = |s: &str| format!("{}:{s}", s.len());
    let tenant = &caller.principal.tenant;
    let who = match scope {
        RateLimitScope::User => {
            format!("user:{}:{}", part(tenant), part(&caller.principal.subject))
        }
        RateLimitScope::Tenant => format!("tenant:{}", part(tenant)),
        RateLimitScope::Global => "global".to_string(),
    };
    format!("{}:{who}", part(command))
}

/// Where counts are kept.
pub enum Limiter {
    /// In this process.
    Memory(MemoryLimiter),
    /// In Redis, shared by the replicas.
    Redis(RedisLimiter),
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.driver())
    }
}

impl Limiter {
    /// The store `rate_limit` names; for Redis the connection is made now
    /// and a failure ends start-up.
    pub async fn new(config: &RateLimitConfig) -> Result<Self, String> {
        match config.driver {
            RateLimitDriver::Memory => Ok(Self::Memory(MemoryLimiter::default())),
            RateLimitDriver::Redis => {
                let variable = &config.addr_env;
                let address = std::env::var(variable)
                    .map_err(|_| format!("rate_limit.driver is redis but {variable} is not set"))?;
                let connection = idempotency::connect_redis(&address, config.db)
                    .await
                    .map_err(|e| format!("redis at {variable}: {e}"))?;
                Ok(Self::Redis(RedisLimiter {
                    connection,
                    script: redis::Script::new(SLIDING_WINDOW),
                }))
            }
        }
    }

    /// `memory` or `redis`.
    pub fn driver(&self) -> &'static str {
        match self {
            Self::Memory(_) => "memory",
            Self::Redis(_) => "redis",
        }
    }

    /// Counts one run under `key` if `limit` allows it.
    #[tracing::instrument(name = "rate limit store", skip_all, fields(driver = self.driver()))]
    pub async fn check(&self, key: &str, limit: Limit) -> Result<Decision, StoreError> {
        match self {
            Self::Memory(store) => Ok(store.check(key, limit, Instant::now())),
            Self::Redis(store) => store.check(key, limit).await,
        }
    }

    /// For readiness: the store's latency, or why it does not answer.
    pub async fn ping(&self) -> Result<Duration, StoreError> {
        match self {
            Self::Memory(_) => Ok(Duration::ZERO),
            Self::Redis(store) => {
                let mut connection = store.connection.clone();
                let started = Instant::now();
                let _: String = redis::cmd("PING")
                    .query_async(&mut connection)
                    .await
                    .map_err(|e| StoreError(e.to_string()))?;
                Ok(started.elapsed())
            }
        }
    }
}

/// The sliding-window log in Redis. KEYS[1]: the sorted set; ARGV: the
/// window in microseconds, the limit, a unique member. Answers
/// `{1, 0}` when allowed, `{0, retry_after_us}` when not.
const SLIDING_WINDOW: &str = r"
local now = redis.call('TIME')
local now_us = tonumber(now[1]) * 1000000 + tonumber(now[2])
local window = tonumber(ARGV[1])
local max = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_us - window)
local count = redis.call('ZCARD', KEYS[1])
if count < max then
  redis.call('ZADD', KEYS[1], now_us, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000))
  return {1, 0}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, tonumber(oldest[2]) + window - now_us}
";

/// Counts in Redis.
pub struct RedisLimiter {
    connection: ConnectionManager,
    script: redis::Script,
}

impl RedisLimiter {
    async fn check(&self, key: &str, limit: Limit) -> Result<Decision, StoreError> {
        let mut connection = self.connection.clone();
        let window_us = u64::try_from(limit.window.as_micros()).unwrap_or(u64::MAX);
        let (allowed, retry_us): (i64, i64) = self
            .script
            .key(format!("{REDIS_PREFIX}{key}"))
            .arg(window_us)
            .arg(limit.max)
            .arg(uuid::Uuid::new_v4().simple().to_string())
            .invoke_async(&mut connection)
            .await
            .map_err(|e| StoreError(e.to_string()))?;
        Ok(if allowed == 1 {
            Decision::Allowed
        } else {
            Decision::Limited {
                retry_after: Duration::from_micros(retry_us.max(0) as u64),
            }
        })
    }
}

/// Keys kept before stale ones are swept.
const SWEEP_AT: usize = 10_000;

/// Counts in this process.
#[derive(Debug, Default)]
pub struct MemoryLimiter {
    logs: Mutex<Logs>,
}

#[derive(Debug, Default)]
struct Logs {
    by_key: HashMap<String, (Duration, VecDeque<Instant>)>,
    sweep_at: usize,
}

impl MemoryLimiter {
    fn check(&self, key: &str, limit: Limit, now: Instant) -> Decision {
        let mut logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        if logs.by_key.len() >= logs.sweep_at.max(SWEEP_AT) {
            // Keys whose runs all left their window hold nothing.
            logs.by_key.retain(|_, (window, times)| {
                times
                    .back()
                    .is_some_and(|last| now.duration_since(*last) < *window)
            });
            logs.sweep_at = logs.by_key.len() * 2;
        }
        let (window, times) = logs
            .by_key
            .entry(key.to_string())
            .or_insert_with(|| (limit.window, VecDeque::new()));
        *window = limit.window;
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= limit.window)
        {
            times.pop_front();
        }
        if times.len() < limit.max as usize {
            times.push_back(now);
            return Decision::Allowed;
        }
        let oldest = times.front().copied().unwrap_or(now);
        Decision::Limited {
            retry_after: limit.window.saturating_sub(now.duration_since(oldest)),
        }
    }
}

/// `Retry-After` in whole seconds, rounded up (at least 1).
pub fn retry_after_seconds(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0).max(u64::from(wait.is_zero()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_allows_exactly_max_in_any_window() {
        let store = MemoryLimiter::default();
        let limit = Limit {
            max: 3,
            window: Duration::from_secs(10),
        };
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(store.check("k", limit, start), Decision::Allowed);
        }
        let later = start + Duration::from_secs(4);
        assert_eq!(
            store.check("k", limit, later),
            Decision::Limited {
                retry_after: Duration::from_secs(6)
            }
        );
        assert_eq!(store.check("other", limit, later), Decision::Allowed);
        // The first runs leave the window at start + 10 s.
        let after = start + Duration::from_secs(10);
        assert_eq!(store.check("k", limit, after), Decision::Allowed);
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_seconds(Duration::from_millis(5_001)), 6);
        assert_eq!(retry_after_seconds(Duration::from_secs(5)), 5);
        assert_eq!(retry_after_seconds(Duration::ZERO), 1);
    }
}
