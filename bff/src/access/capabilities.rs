//! Capabilities: what a caller may see and do. Resolved per caller from the
//! static policy file (roles → capabilities), from an OPA endpoint or from
//! Ory Keto (see `keto`), and kept in a TTL cache bounded by
//! `capability.cache.max_entries`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use arc_swap::ArcSwap;
use moka::sync::Cache;
use prometheus_client::metrics::counter::Counter;
use sha2::{Digest, Sha256};
use thesa_core::config::{self, CapabilityConfig, Evaluator, Policies, ServiceConfig};
use thesa_core::finding::Severity;
use thesa_core::openapi::OperationIndex;

use crate::access::auth::Principal;
use crate::access::keto::{self, Catalog, Keto, Tuple};
use crate::access::permissions::PermissionKeys;
use crate::metrics::Metrics;
use crate::registry::Registry;

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
    /// `evaluator: keto` without a `keto` section.
    #[error("capability.evaluator is keto but capability.keto (read_url) is not set")]
    KetoNotConfigured,
    /// Keto did not answer, or answered something unusable.
    #[error("Ory Keto at {url}: {message}")]
    Keto {
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
    /// Ory Keto, asked about every capability of the definitions.
    Keto {
        keto: Keto,
        /// The capabilities of the served definitions and their namespaces.
        catalog: ArcSwap<Catalog>,
        /// Services' `authorization_namespace`s and `keto.namespaces`.
        services: BTreeMap<String, ServiceConfig>,
        config: config::KetoConfig,
    },
}

/// Resolves callers' capabilities through a TTL cache bounded by
/// `capability.cache.max_entries`.
#[derive(Debug)]
pub struct Capabilities {
    source: Source,
    cache: Cache<CacheKey, CapabilitySet>,
    /// Keto's answers to the console's (namespace, key) questions.
    decisions: Cache<(CacheKey, Tuple), bool>,
    keys: PermissionKeys,
    misses: Counter,
    hits: Counter,
}

impl Capabilities {
    /// Start-up step 5: loads the static policy file, or checks that the OPA
    /// endpoint or Keto answers its health check. `services` name Keto
    /// namespaces (`authorization_namespace`).
    pub async fn new(
        config: &CapabilityConfig,
        services: &BTreeMap<String, ServiceConfig>,
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
            Evaluator::Keto => {
                let keto = config
                    .keto
                    .as_ref()
                    .ok_or(CapabilityError::KetoNotConfigured)?;
                Source::Keto {
                    keto: Keto::new(keto, http),
                    catalog: ArcSwap::from_pointee(Catalog::default()),
                    services: services.clone(),
                    config: keto.clone(),
                }
            }
        };
        let capabilities = Self {
            source,
            cache: Cache::builder()
                .max_capacity(config.cache.max_entries)
                .time_to_live(config.cache.ttl.get())
                .build(),
            decisions: Cache::builder()
                .max_capacity(config.cache.max_entries)
                .time_to_live(config.cache.ttl.get())
                .build(),
            keys: PermissionKeys::new(&config.permission_keys),
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
        let key = self.cache_key(principal, partition);
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
            Source::Keto { keto, catalog, .. } => {
                let catalog = catalog.load();
                let object = keto::object(&principal.tenant, partition);
                let tuples: Vec<Tuple> = catalog
                    .entries
                    .iter()
                    .map(|entry| Tuple {
                        namespace: entry.namespace.clone(),
                        object: object.clone(),
                        relation: entry.relation.clone(),
                        subject_id: principal.subject.clone(),
                    })
                    .collect();
                let allowed = keto.check(&tuples).await?;
                CapabilitySet::new(
                    catalog
                        .entries
                        .iter()
                        .zip(allowed)
                        .filter(|(_, allowed)| *allowed)
                        .map(|(entry, _)| entry.capability.clone()),
                )
            }
        };
        self.cache.insert(key, set.clone());
        Ok(set)
    }

    /// Keto's answers about the console's (namespace, key) pairs for the
    /// caller, in order (`keto` only: the pair is the tuple's namespace and
    /// relation). Cached like capability sets.
    pub async fn check_keys(
        &self,
        principal: &Principal,
        partition: Option<&str>,
        pairs: &[(&str, &str)],
    ) -> Result<Vec<bool>, CapabilityError> {
        let Source::Keto { keto, .. } = &self.source else {
            return Ok(vec![false; pairs.len()]);
        };
        let key = self.cache_key(principal, partition);
        let object = keto::object(&principal.tenant, partition);
        let tuples: Vec<Tuple> = pairs
            .iter()
            .map(|(namespace, relation)| Tuple {
                namespace: namespace.to_string(),
                object: object.clone(),
                relation: relation.to_string(),
                subject_id: principal.subject.clone(),
            })
            .collect();
        let mut answers: Vec<Option<bool>> = tuples
            .iter()
            .map(|t| self.decisions.get(&(key.clone(), t.clone())))
            .collect();
        let unknown: Vec<Tuple> = tuples
            .iter()
            .zip(&answers)
            .filter(|(_, a)| a.is_none())
            .map(|(t, _)| t.clone())
            .collect();
        self.hits.inc_by((tuples.len() - unknown.len()) as u64);
        if !unknown.is_empty() {
            self.misses.inc_by(unknown.len() as u64);
            let allowed = keto.check(&unknown).await?;
            let mut fresh = unknown.into_iter().zip(allowed);
            for answer in answers.iter_mut().filter(|a| a.is_none()) {
                if let Some((tuple, allowed)) = fresh.next() {
                    self.decisions.insert((key.clone(), tuple), allowed);
                    *answer = Some(allowed);
                }
            }
        }
        Ok(answers.into_iter().map(|a| a.unwrap_or(false)).collect())
    }

    /// Learns the capabilities of a definition set about to be served
    /// (`keto` only: what to ask Keto about). Sets resolved for another
    /// set are not reused: the cache key names the set.
    pub fn use_definitions(&self, registry: &Registry, index: &OperationIndex) {
        let Source::Keto {
            catalog,
            services,
            config,
            ..
        } = &self.source
        else {
            return;
        };
        let built = Catalog::build(registry, index, services, config, &self.keys);
        for domain in &built.without_namespace {
            tracing::warn!(
                domain,
                "no Keto namespace for this domain (capability.keto.namespaces or the \
                 authorization_namespace of its services): its capabilities are never granted"
            );
        }
        tracing::info!(
            capabilities = built.entries.len(),
            "capabilities to ask Ory Keto about"
        );
        catalog.store(Arc::new(built));
    }

    /// The mapping between console permission keys and capabilities.
    pub fn permission_keys(&self) -> &PermissionKeys {
        &self.keys
    }

    /// Whether capabilities come from Ory Keto.
    pub fn is_keto(&self) -> bool {
        matches!(self.source, Source::Keto { .. })
    }

    fn cache_key(&self, principal: &Principal, partition: Option<&str>) -> CacheKey {
        let mut roles = principal.roles.clone();
        roles.sort();
        CacheKey {
            tenant: principal.tenant.clone(),
            subject: principal.subject.clone(),
            partition: partition.map(String::from),
            email: principal.email.clone(),
            roles,
            definitions: match &self.source {
                Source::Keto { catalog, .. } => Some(catalog.load().id.clone()),
                _ => None,
            },
        }
    }

    /// Whether the policy engine answers (readiness; always true for a
    /// static policy, which is in memory).
    pub async fn check(&self) -> Result<(), CapabilityError> {
        let (http, health_url, timeout) = match &self.source {
            Source::Static(_) => return Ok(()),
            Source::Keto { keto, .. } => return keto.ready().await,
            Source::Opa {
                http,
                health_url,
                timeout,
                ..
            } => (http, health_url, timeout),
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

    /// The remote policy engine, when capabilities come from one (a
    /// checked dependency): `opa` or `keto`.
    pub fn remote(&self) -> Option<&'static str> {
        match self.source {
            Source::Static(_) => None,
            Source::Opa { .. } => Some("opa"),
            Source::Keto { .. } => Some("keto"),
        }
    }
}

/// Everything a decision may depend on: what OPA is sent, and for Keto
/// the definition set whose capabilities were asked about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    tenant: String,
    subject: String,
    partition: Option<String>,
    email: Option<String>,
    /// Sorted.
    roles: Vec<String>,
    definitions: Option<String>,
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
            &BTreeMap::new(),
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
            &BTreeMap::new(),
            crate::backends::outbound::client().unwrap(),
            &Metrics::new("t", "t"),
        )
        .await
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("p.yaml:2"), "{text}");
    }
}
