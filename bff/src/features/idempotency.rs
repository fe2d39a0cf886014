//! Idempotency keys of commands: the first request with a key runs, a
//! duplicate while it runs gets 409, a later duplicate gets the stored
//! answer again, and the same key with a different input is refused.
//! Keys are scoped by tenant and command.
//!
//! Two stores: Redis (`driver: redis`, shared by every replica, address
//! from the variable `addr_env` names, `THESA_REDIS_ADDR` by default) and
//! an embedded one (`driver: memory`: one replica, lost on restart). When
//! Redis cannot be reached, idempotent commands answer 503 and never run:
//! running one without its key could run it twice.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use thesa_core::config::{IdempotencyConfig, IdempotencyDriver};

/// Most time one Redis command may take, and to connect.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// Prefix of every key this BFF writes in Redis.
const REDIS_PREFIX: &str = "thesa:idempotency:";

/// The store could not be asked.
#[derive(Debug, thiserror::Error)]
#[error("idempotency store: {0}")]
pub struct StoreError(String);

/// Where keys are kept.
#[derive(Debug)]
pub enum Store {
    /// In this process.
    Memory(MemoryStore),
    /// In Redis, shared by the replicas.
    Redis(RedisStore),
}

impl Store {
    /// Start-up step 7: the store `idempotency.store` names; for Redis, the
    /// connection is made now and a failure ends start-up.
    pub async fn new(config: &IdempotencyConfig) -> Result<Self, String> {
        match config.store.driver {
            IdempotencyDriver::Memory => Ok(Self::Memory(MemoryStore::default())),
            IdempotencyDriver::Redis => {
                let variable = &config.store.addr_env;
                let address = std::env::var(variable).map_err(|_| {
                    format!("idempotency.store.driver is redis but {variable} is not set")
                })?;
                RedisStore::connect(&address, config.store.db)
                    .await
                    .map(Self::Redis)
                    .map_err(|e| format!("redis at {variable}: {}", e.0))
            }
        }
    }

    /// Claims `key` for a run, unless it is running or ran.
    #[tracing::instrument(name = "idempotency store", skip_all, fields(call = "begin"))]
    pub async fn begin(
        &self,
        key: &str,
        fingerprint: [u8; 32],
        ttl: Duration,
    ) -> Result<Begin, StoreError> {
        match self {
            Self::Memory(store) => Ok(store.begin(key, fingerprint, ttl)),
            Self::Redis(store) => store.begin(key, fingerprint, ttl).await,
        }
    }

    /// Keeps the definitive answer of a run for replay.
    #[tracing::instrument(name = "idempotency store", skip_all, fields(call = "complete"))]
    pub async fn complete(&self, key: &str, fingerprint: [u8; 32], stored: Stored, ttl: Duration) {
        match self {
            Self::Memory(store) => store.complete(key, stored),
            Self::Redis(store) => {
                if let Err(err) = store.complete(key, fingerprint, stored, ttl).await {
                    tracing::error!(error = %err, "idempotency: cannot store an answer; a retry of this key will wait until it expires");
                }
            }
        }
    }

    /// Frees a key whose run ended without a definitive answer.
    #[tracing::instrument(name = "idempotency store", skip_all, fields(call = "abandon"))]
    pub async fn abandon(&self, key: &str) {
        match self {
            Self::Memory(store) => store.abandon(key),
            Self::Redis(store) => {
                if let Err(err) = store.abandon(key).await {
                    tracing::warn!(error = %err, "idempotency: cannot free a key; it frees itself when it expires");
                }
            }
        }
    }

    /// Readiness: `(driver, latency)` or why the store does not answer.
    pub async fn check(&self) -> (&'static str, Result<Duration, StoreError>) {
        match self {
            Self::Memory(_) => ("memory", Ok(Duration::ZERO)),
            Self::Redis(store) => ("redis", store.ping().await),
        }
    }
}

/// Keys in Redis: `{"fp"}` while running, `{"fp", "status", "body"}` after.
#[derive(Debug, Clone)]
pub struct RedisStore {
    connection: ConnectionManager,
}

/// A connection to Redis at `address` (`host:port` or a `redis://` URL),
/// made now; every command is bounded by [`REDIS_TIMEOUT`]. Shared with
/// the rate limiter.
pub async fn connect_redis(address: &str, db: u32) -> Result<ConnectionManager, redis::RedisError> {
    let url = if address.contains("://") {
        address.to_string()
    } else {
        format!("redis://{address}/{db}")
    };
    let client = redis::Client::open(url)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(REDIS_TIMEOUT))
        .set_response_timeout(Some(REDIS_TIMEOUT))
        .set_number_of_retries(1);
    ConnectionManager::new_with_config(client, config).await
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn redis_error(err: redis::RedisError) -> StoreError {
    StoreError(err.to_string())
}

impl RedisStore {
    /// Connects to `address` (`host:port` or a `redis://` URL).
    pub async fn connect(address: &str, db: u32) -> Result<Self, StoreError> {
        let connection = connect_redis(address, db).await.map_err(redis_error)?;
        Ok(Self { connection })
    }

    async fn begin(
        &self,
        key: &str,
        fingerprint: [u8; 32],
        ttl: Duration,
    ) -> Result<Begin, StoreError> {
        let mut connection = self.connection.clone();
        let redis_key = format!("{REDIS_PREFIX}{key}");
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let fp = hex(&fingerprint);
        // SET NX claims the key; when it exists, read what it holds. A key
        // that expires between the two is claimed on the second round.
        for _ in 0..2 {
            let claimed: Option<String> = redis::cmd("SET")
                .arg(&redis_key)
                .arg(json!({ "fp": fp }).to_string())
                .arg("NX")
                .arg("PX")
                .arg(ttl_ms)
                .query_async(&mut connection)
                .await
                .map_err(redis_error)?;
            if claimed.is_some() {
                return Ok(Begin::Started);
            }
            let held: Option<String> = redis::cmd("GET")
                .arg(&redis_key)
                .query_async(&mut connection)
                .await
                .map_err(redis_error)?;
            let Some(held) = held else { continue };
            let held: Value = serde_json::from_str(&held).unwrap_or(Value::Null);
            if held["fp"].as_str() != Some(fp.as_str()) {
                return Ok(Begin::Reused);
            }
            let status = held["status"]
                .as_u64()
                .and_then(|s| u16::try_from(s).ok())
                .and_then(|s| StatusCode::from_u16(s).ok());
            return Ok(match status {
                None => Begin::InFlight,
                Some(status) => Begin::Replay(Stored {
                    status,
                    body: held["body"].clone(),
                }),
            });
        }
        Ok(Begin::InFlight)
    }

    async fn complete(
        &self,
        key: &str,
        fingerprint: [u8; 32],
        stored: Stored,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        let value = json!({
            "fp": hex(&fingerprint),
            "status": stored.status.as_u16(),
            "body": stored.body,
        });
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let _: () = redis::cmd("SET")
            .arg(format!("{REDIS_PREFIX}{key}"))
            .arg(value.to_string())
            .arg("PX")
            .arg(ttl_ms)
            .query_async(&mut connection)
            .await
            .map_err(redis_error)?;
        Ok(())
    }

    async fn abandon(&self, key: &str) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        // Only a running claim is removed, never a stored answer.
        let script = redis::Script::new(
            "local v = redis.call('GET', KEYS[1]) \
             if v and not string.find(v, '\"status\"') then return redis.call('DEL', KEYS[1]) end \
             return 0",
        );
        let _: i64 = script
            .key(format!("{REDIS_PREFIX}{key}"))
            .invoke_async(&mut connection)
            .await
            .map_err(redis_error)?;
        Ok(())
    }

    async fn ping(&self) -> Result<Duration, StoreError> {
        let mut connection = self.connection.clone();
        let started = Instant::now();
        let _: String = redis::cmd("PING")
            .query_async(&mut connection)
            .await
            .map_err(redis_error)?;
        Ok(started.elapsed())
    }
}

/// Most keys kept; past it, expired keys are dropped and, if none has
/// expired, new keys are refused (503) rather than memory growing.
const MAX_KEYS: usize = 100_000;

/// A definitive answer, kept for replay.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// The HTTP status answered.
    pub status: StatusCode,
    /// The JSON body answered.
    pub body: Value,
}

/// What `begin` found.
#[derive(Debug, Clone, PartialEq)]
pub enum Begin {
    /// The key is new: run the command, then `complete` or `abandon`.
    Started,
    /// The same key is running now.
    InFlight,
    /// The key ran with the same input: answer this again.
    Replay(Stored),
    /// The key ran (or runs) with a different input.
    Reused,
    /// The store is full.
    Full,
}

#[derive(Debug)]
struct Entry {
    fingerprint: [u8; 32],
    outcome: Option<Stored>,
    expires: Instant,
}

/// The embedded store.
#[derive(Debug, Default)]
pub struct MemoryStore {
    entries: Mutex<HashMap<String, Entry>>,
}

/// The store key: tenant, command and the caller's key.
pub fn scoped_key(tenant: &str, command: &str, key: &str) -> String {
    format!("{}\u{0}{}\u{0}{}", tenant, command, key)
}

/// SHA-256 of the canonical input, to tell a duplicate from a reuse.
pub fn fingerprint(input: &Value) -> [u8; 32] {
    Sha256::digest(thesa_core::checksum::canonical_json(input).as_bytes()).into()
}

impl MemoryStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Claims `key` for a run, unless it is running or ran.
    pub fn begin(&self, key: &str, fingerprint: [u8; 32], ttl: Duration) -> Begin {
        let now = Instant::now();
        let mut entries = self.lock();
        if let Some(entry) = entries.get(key).filter(|e| e.expires > now) {
            return match (&entry.outcome, entry.fingerprint == fingerprint) {
                (_, false) => Begin::Reused,
                (None, true) => Begin::InFlight,
                (Some(stored), true) => Begin::Replay(stored.clone()),
            };
        }
        if entries.len() >= MAX_KEYS {
            entries.retain(|_, e| e.expires > now);
            if entries.len() >= MAX_KEYS {
                return Begin::Full;
            }
        }
        entries.insert(
            key.to_string(),
            Entry {
                fingerprint,
                outcome: None,
                expires: now + ttl,
            },
        );
        Begin::Started
    }

    /// Keeps the definitive answer of a run for replay.
    pub fn complete(&self, key: &str, stored: Stored) {
        if let Some(entry) = self.lock().get_mut(key) {
            entry.outcome = Some(stored);
        }
    }

    /// Releases a key whose run ended without a definitive answer (the
    /// backend could not be reached), so that a retry may run.
    pub fn abandon(&self, key: &str) {
        let mut entries = self.lock();
        if entries.get(key).is_some_and(|e| e.outcome.is_none()) {
            entries.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn duplicates_wait_replay_or_are_refused() {
        let store = MemoryStore::default();
        let ttl = Duration::from_secs(60);
        let a = fingerprint(&json!({"x": 1, "y": 2}));
        let same = fingerprint(&json!({"y": 2, "x": 1}));
        let other = fingerprint(&json!({"x": 2}));
        assert_eq!(a, same, "key order does not matter");
        assert_eq!(store.begin("k", a, ttl), Begin::Started);
        assert_eq!(store.begin("k", same, ttl), Begin::InFlight);
        assert_eq!(store.begin("k", other, ttl), Begin::Reused);
        let stored = Stored {
            status: StatusCode::OK,
            body: json!({"success": true}),
        };
        store.complete("k", stored.clone());
        assert_eq!(store.begin("k", a, ttl), Begin::Replay(stored));
        // Abandoned runs free the key; expired keys are new again.
        assert_eq!(store.begin("j", a, ttl), Begin::Started);
        store.abandon("j");
        assert_eq!(store.begin("j", a, ttl), Begin::Started);
        assert_eq!(store.begin("e", a, Duration::ZERO), Begin::Started);
        assert_eq!(store.begin("e", other, ttl), Begin::Started);
    }

    #[test]
    fn keys_are_scoped_by_tenant_and_command() {
        assert_ne!(scoped_key("t1", "c", "k"), scoped_key("t2", "c", "k"));
        assert_ne!(scoped_key("t", "c1", "k"), scoped_key("t", "c2", "k"));
    }
}
