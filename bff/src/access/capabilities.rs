//! Capabilities: what a caller may see and do. Resolved per caller from the
//! static policy file (roles → capabilities) or from an OPA endpoint, and
//! kept in a TTL cache bounded by `capability.cache.max_entries`.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use moka::sync::Cache;
use prometheus_client::metrics::counter::Counter;
use sha2::{Digest, Sha256};
use thesa_core::config::{self, CapabilityConfig, Evaluator, Policies};
use thesa_core::finding::Severity;

use crate::access::auth::Principal;
use crate::metrics::Metrics;

/// The capabilities granted to one caller. Entries may be patterns: `*`
/// grants everything and `orders:*` everything in the `orders` namespace.
/// Cheap to clone; its fingerprint identifies the set in caches and ETags.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CapabilitySet {
    granted: Arc<[String]>,
    fingerprint: [u8; 16],
}

impl CapabilitySet {
    /// A set of granted capabilities (sorted, without duplicates).
    pub fn new(granted: impl IntoIterator<Item = String>) -> Self {
        let mut granted: Vec<String> = granted.into_iter().collect();
        granted.sort();
        granted.dedup();
        let mut hash = Sha256::new();
        for capability in &granted {
            hash.update(capability.as_bytes());
            hash.update([0]);
        }
        let digest = hash.finalize();
        let mut fingerprint = [0; 16];
        fingerprint.copy_from_slice(&digest[..16]);
        Self {
            granted: granted.into(),
            fingerprint,
        }
    }

    /// Equal for equal sets, different (with overwhelming probability) for
    /// different ones.
    pub fn fingerprint(&self) -> [u8; 16] {
        self.fingerprint
    }

    /// Whether `capability` is granted, honouring `*` and `namespace:*`.
    pub fn has(&self, capability: &str) -> bool {
        self.granted
            .iter()
            .any(|granted| config::grants(granted, capability))
    }

    /// Whether every one of `required` is granted (an empty list is).
    pub fn has_all(&self, required: &[String]) -> bool {
        required.iter().all(|c| self.has(c))
    }

    /// The granted entries, sorted.
    pub fn granted(&self) -> &[String] {
        &self.granted
    }
}

/// Why capabilities could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum CapabilityError {
    /// The static policy file could not be read or has errors.
    #[error("policy file {path}: {message}")]
    PolicyFile {
        /// The file.
        path: String,
        /// What is wrong (the first finding, with line and column).
        message: String,
    },
    /// `evaluator: opa` without an `opa` section.
    #[error("capability.evaluator is opa but capability.opa (url, policy_path) is not set")]
    OpaNotConfigured,
    /// The OPA endpoint did not answer, or answered something unusable.
    #[error("policy engine at {url}: {message}")]
    Opa {
        /// The URL asked.
        url: String,
        /// What went wrong.
        message: String,
    },
}

/// Where capabilities come from.
#[derive(Debug)]
enum Source {
    /// Roles → capabilities from the policy file.
    Static(Policies),
    /// An Open Policy Agent decision.
    Opa {
        http: reqwest::Client,
        decision_url: String,
        health_url: String,
        timeout: StdDuration,
    },
}

/// Resolves callers' capabilities through a TTL cache bounded by
/// `capability.cache.max_entries`.
#[derive(Debug)]
pub struct Capabilities {
    source: Source,
    cache: Cache<CacheKey, CapabilitySet>,
    misses: Counter,
    hits: Counter,
}

impl Capabilities {
    /// Start-up step 5: loads the static policy file, or checks that the OPA
    /// endpoint answers its health check.
    pub async fn new(
        config: &CapabilityConfig,
        http: reqwest::Client,
        metrics: &Metrics,
    ) -> Result<Self, CapabilityError> {
        let source = match config.evaluator {
            Evaluator::Static => Source::Static(read_policies(&config.static_policy_file)?),
            Evaluator::Opa => {
                let opa = config
                    .opa
                    .as_ref()
                    .ok_or(CapabilityError::OpaNotConfigured)?;
                let base = opa.url.trim_end_matches('/');
                Source::Opa {
                    http,
                    decision_url: format!("{base}/v1/data/{}", opa.policy_path.trim_matches('/')),
                    health_url: format!("{base}/health"),
                    timeout: opa.timeout.get(),
                }
            }
        };
        let capabilities = Self {
            source,
            cache: Cache::builder()
                .max_capacity(config.cache.max_entries)
                .time_to_live(config.cache.ttl.get())
                .build(),
            misses: metrics.capability_cache_misses.clone(),
            hits: metrics.capability_cache_hits.clone(),
        };
        capabilities.check().await?;
        Ok(capabilities)
    }

    /// The caller's capabilities, from the cache when it has them.
    pub async fn resolve(
        &self,
        principal: &Principal,
        partition: Option<&str>,
    ) -> Result<CapabilitySet, CapabilityError> {
        let key = cache_key(principal, partition);
        if let Some(set) = self.cache.get(&key) {
            self.hits.inc();
            return Ok(set);
        }
        self.misses.inc();
        let set = match &self.source {
            Source::Static(policies) => CapabilitySet::new(
                principal
                    .roles
                    .iter()
                    .filter_map(|role| policies.roles.get(role))
                    .flatten()
                    .cloned(),
            ),
            Source::Opa {
                http,
                decision_url,
                timeout,
                ..
            } => query_opa(http, decision_url, *timeout, principal, partition).await?,
        };
        self.cache.insert(key, set.clone());
        Ok(set)
    }

    /// Whether the policy engine answers (readiness; always true for a
    /// static policy, which is in memory).
    pub async fn check(&self) -> Result<(), CapabilityError> {
        let Source::Opa {
            http,
            health_url,
            timeout,
            ..
        } = &self.source
        else {
            return Ok(());
        };
        let opa_error = |message: String| CapabilityError::Opa {
            url: health_url.clone(),
            message,
        };
        let response = http
            .get(health_url)
            .timeout(*timeout)
            .send()
            .await
            .map_err(|e| opa_error(crate::backends::outbound::error_chain(&e)))?;
        if !response.status().is_success() {
            return Err(opa_error(format!(
                "health check answered {}",
                response.status()
            )));
        }
        Ok(())
    }

    /// Whether capabilities come from OPA (a remote, checked dependency).
    pub fn is_remote(&self) -> bool {
        matches!(self.source, Source::Opa { .. })
    }
}

/// Everything a decision may depend on: what OPA is sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    tenant: String,
    subject: String,
    partition: Option<String>,
    email: Option<String>,
    /// Sorted.
    roles: Vec<String>,
}

fn cache_key(principal: &Principal, partition: Option<&str>) -> CacheKey {
    let mut roles = principal.roles.clone();
    roles.sort();
    CacheKey {
        tenant: principal.tenant.clone(),
        subject: principal.subject.clone(),
        partition: partition.map(String::from),
        email: principal.email.clone(),
        roles,
    }
}

fn read_policies(path: &str) -> Result<Policies, CapabilityError> {
    let policy_error = |message: String| CapabilityError::PolicyFile {
        path: path.to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| policy_error(e.to_string()))?;
    let mut findings = Vec::new();
    let policies = Policies::from_text(path, &text, &mut findings);
    let first = findings.iter().find(|f| f.severity == Severity::Error);
    match (policies, first) {
        (Some(policies), None) => Ok(policies),
        (_, Some(first)) => Err(policy_error(first.to_string())),
        (None, None) => Err(policy_error("not a policy document".into())),
    }
}

/// The OPA data API answer: `{"result": [...]}` or
/// `{"result": {"capabilities": [...]}}`; no result (an undefined decision)
/// grants nothing.
#[derive(serde::Deserialize)]
struct OpaAnswer {
    #[serde(default)]
    result: Option<OpaResult>,
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum OpaResult {
    List(Vec<String>),
    Object { capabilities: Vec<String> },
}

async fn query_opa(
    http: &reqwest::Client,
    url: &str,
    timeout: StdDuration,
    principal: &Principal,
    partition: Option<&str>,
) -> Result<CapabilitySet, CapabilityError> {
    let opa_error = |message: String| CapabilityError::Opa {
        url: url.to_string(),
        message,
    };
    let input = serde_json::json!({
        "input": {
            "subject": principal.subject,
            "tenant_id": principal.tenant,
            "partition_id": partition,
            "email": principal.email,
            "roles": principal.roles,
        }
    });
    let response = http
        .post(url)
        .timeout(timeout)
        .json(&input)
        .send()
        .await
        .map_err(|e| opa_error(crate::backends::outbound::error_chain(&e)))?;
    if !response.status().is_success() {
        return Err(opa_error(format!("answered {}", response.status())));
    }
    let answer: OpaAnswer = response
        .json()
        .await
        .map_err(|e| opa_error(format!("unexpected answer: {e}")))?;
    Ok(CapabilitySet::new(match answer.result {
        None => Vec::new(),
        Some(OpaResult::List(list)) | Some(OpaResult::Object { capabilities: list }) => list,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(caps: &[&str]) -> CapabilitySet {
        CapabilitySet::new(caps.iter().map(|c| c.to_string()))
    }

    #[test]
    fn wildcards_grant_a_namespace_or_everything() {
        let clerk = set(&["orders:*", "customers:view"]);
        assert!(clerk.has("orders:cancel"));
        assert!(clerk.has("orders:notes:view"));
        assert!(!clerk.has("ordersx:view"));
        assert!(!clerk.has("customers:edit"));
        assert!(set(&["*"]).has("billing:refund"));
        assert!(clerk.has_all(&[]));
        assert!(!clerk.has_all(&["orders:view".into(), "customers:edit".into()]));
    }

    #[tokio::test]
    async fn static_policy_is_cached_and_bounded() {
        let metrics = Metrics::new("test", "test");
        let config = CapabilityConfig {
            static_policy_file: concat!(env!("CARGO_MANIFEST_DIR"), "/../config/policies.yaml")
                .into(),
            ..CapabilityConfig::default()
        };
        let caps = Capabilities::new(
            &config,
            crate::backends::outbound::client().unwrap(),
            &metrics,
        )
        .await
        .unwrap();
        let principal = Principal {
            subject: "u1".into(),
            tenant: "acme".into(),
            email: None,
            roles: vec!["order_clerk".into(), "unknown".into()],
            partitions: vec![],
        };
        let set = caps.resolve(&principal, None).await.unwrap();
        assert!(set.has("orders:cancel"));
        assert!(!set.has("inventory:view"));
        caps.resolve(&principal, None).await.unwrap();
        assert_eq!(metrics.capability_cache_misses.get(), 1);
        assert_eq!(metrics.capability_cache_hits.get(), 1);
    }

    #[tokio::test]
    async fn broken_policy_file_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.yaml");
        std::fs::write(&path, "roles:\n  admin: 5\n").unwrap();
        let config = CapabilityConfig {
            static_policy_file: path.display().to_string(),
            ..CapabilityConfig::default()
        };
        let err = Capabilities::new(
            &config,
            crate::backends::outbound::client().unwrap(),
            &Metrics::new("t", "t"),
        )
        .await
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("p.yaml:2"), "{text}");
    }
}
