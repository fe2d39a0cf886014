//! Idempotency keys of commands: the first request with a key runs, a
//! duplicate while it runs gets 409, a later duplicate gets the stored
//! answer again, and the same key with a different input is refused.
//! Keys are scoped by tenant and command.
//!
//! This release has the embedded store (one replica; keys live in memory
//! and are lost on restart). The Redis store that replicas share comes
//! with the next release; start-up refuses `driver: redis` until then.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};

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
