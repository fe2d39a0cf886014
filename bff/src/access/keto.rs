//! Ory Keto as the capability evaluator (`capability.evaluator: keto`).
//!
//! Keto answers one question: is `namespace:object#relation@subject` a
//! relation tuple (directly or through its permission rules)? It cannot
//! list what a subject holds, so, as the original Thesa does, the BFF
//! asks about every capability its definitions name (the `Catalog`):
//! namespace = the definition's Keto namespace, object =
//! `<tenant>/<partition>` (`<tenant>/` without a partition), relation =
//! the capability in permission-key form (`orders:view` → `orders_view`),
//! subject = the token's subject as a plain `subject_id`.
//!
//! Calls, as Keto's published OpenAPI describes its read API (port 4466):
//! `POST /relation-tuples/batch/check` with `{"tuples": [...]}` answering
//! `{"results": [{"allowed", "error"?}]}` in input order, at most
//! `max_batch_size` tuples per call; Keto versions without it (404 or
//! 405) are asked one tuple at a time with `POST
//! /relation-tuples/check/openapi`, answering `{"allowed"}`; readiness is
//! `GET /health/ready`. A tuple Keto answers with an error is denied.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration as StdDuration;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thesa_core::config::{KetoConfig, ServiceConfig};
use thesa_core::openapi::OperationIndex;

use crate::access::capabilities::CapabilityError;
use crate::access::permissions::PermissionKeys;
use crate::backends::outbound::error_chain;
use crate::registry::Registry;

/// Batch calls in flight at once for one caller.
const PARALLEL_BATCHES: usize = 4;

/// One question for Keto.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Tuple {
    /// The Keto namespace.
    pub namespace: String,
    /// `<tenant>/<partition>`.
    pub object: String,
    /// The relation or permission.
    pub relation: String,
    /// The caller.
    pub subject_id: String,
}

/// The object of a caller's tuples, as the original builds it.
pub fn object(tenant: &str, partition: Option<&str>) -> String {
    format!("{tenant}/{}", partition.unwrap_or_default())
}

/// A capability the definitions name and where Keto keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The capability (`orders:view`).
    pub capability: String,
    /// Its Keto namespace.
    pub namespace: String,
    /// Its relation (`orders_view`).
    pub relation: String,
}

/// Every capability of one definition set with its namespace.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// The definition set's checksum (part of cache keys).
    pub id: String,
    /// Sorted by capability.
    pub entries: Vec<Entry>,
    /// Domains whose capabilities have no namespace (never granted).
    pub without_namespace: Vec<String>,
}

impl Catalog {
    /// The catalog of `registry`: each definition's capabilities (its
    /// `capabilities` lists and the capabilities in `visibility`, `guard`,
    /// column `visible` and field `read_only`), in the Keto namespace of
    /// the domain the capability's first segment names when that domain
    /// has one, else of the definition naming it.
    pub fn build(
        registry: &Registry,
        index: &OperationIndex,
        services: &BTreeMap<String, ServiceConfig>,
        config: &KetoConfig,
        keys: &PermissionKeys,
    ) -> Self {
        let mut namespaces: BTreeMap<String, Option<String>> = BTreeMap::new();
        let mut named: Vec<(String, String)> = Vec::new();
        for served in registry.definitions() {
            let domain = served.definition.domain.clone();
            let tree = serde_json::to_value(&served.definition).unwrap_or_default();
            let namespace = config.namespaces.get(&domain).cloned().or_else(|| {
                let mut calls: HashMap<String, usize> = HashMap::new();
                operations(&tree, &mut |operation_id, service_id| {
                    let service = match service_id {
                        Some(id) => Some(id.to_string()),
                        None => match index.services_with(operation_id) {
                            [only] => Some(only.clone()),
                            _ => None,
                        },
                    };
                    if let Some(service) = service {
                        *calls.entry(service).or_default() += 1;
                    }
                });
                let mut ranked: Vec<(usize, String)> =
                    calls.into_iter().map(|(s, n)| (n, s)).collect();
                ranked.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
                ranked.into_iter().find_map(|(_, service)| {
                    services
                        .get(&service)
                        .and_then(|s| s.authorization_namespace.clone())
                })
            });
            let mut found = Vec::new();
            capabilities(&tree, None, &mut found);
            named.extend(found.into_iter().map(|c| (c, domain.clone())));
            namespaces.insert(domain, namespace);
        }
        let mut chosen: BTreeMap<String, String> = BTreeMap::new();
        for (capability, domain) in &named {
            let own = capability
                .split(':')
                .next()
                .and_then(|d| namespaces.get(d).cloned().flatten());
            let namespace = own.or_else(|| namespaces.get(domain).cloned().flatten());
            if let Some(namespace) = namespace {
                chosen.entry(capability.clone()).or_insert(namespace);
            }
        }
        Self {
            id: registry.checksum().to_string(),
            entries: chosen
                .into_iter()
                .map(|(capability, namespace)| Entry {
                    relation: keys.key(&capability),
                    capability,
                    namespace,
                })
                .collect(),
            without_namespace: namespaces
                .into_iter()
                .filter(|(_, n)| n.is_none())
                .map(|(d, _)| d)
                .collect(),
        }
    }
}

/// Calls `found` with every operation a definition tree names.
fn operations(tree: &Value, found: &mut dyn FnMut(&str, Option<&str>)) {
    match tree {
        Value::Object(map) => {
            if let Some(Value::String(operation_id)) = map.get("operation_id") {
                found(operation_id, map.get("service_id").and_then(Value::as_str));
            }
            map.values().for_each(|v| operations(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| operations(v, found)),
        _ => {}
    }
}

/// Collects the capabilities a definition tree names (a capability always
/// has a `:`, which tells it from `true`, `always` and the like).
fn capabilities(tree: &Value, key: Option<&str>, found: &mut Vec<String>) {
    match tree {
        Value::Object(map) => map
            .iter()
            .for_each(|(k, v)| capabilities(v, Some(k.as_str()), found)),
        Value::Array(items) => items.iter().for_each(|item| {
            let in_list = key == Some("capabilities");
            match item {
                Value::String(c) if in_list => found.push(c.clone()),
                other => capabilities(other, None, found),
            }
        }),
        Value::String(text)
            if matches!(key, Some("visibility" | "guard" | "visible" | "read_only"))
                && text.contains(':') =>
        {
            found.push(text.trim().to_string())
        }
        _ => {}
    }
}

/// Keto's read API.
#[derive(Debug)]
pub struct Keto {
    http: reqwest::Client,
    base: String,
    timeout: StdDuration,
    max_batch_size: usize,
    max_depth: Option<u32>,
    /// Set once the batch endpoint answered 404 or 405.
    no_batch: AtomicBool,
}

#[derive(Deserialize)]
struct Allowed {
    allowed: bool,
}

#[derive(Deserialize)]
struct BatchAnswer {
    results: Vec<BatchResult>,
}

#[derive(Deserialize)]
struct BatchResult {
    #[serde(default)]
    allowed: bool,
    #[serde(default)]
    error: Option<String>,
}

impl Keto {
    /// A client of the read API `config` names.
    pub fn new(config: &KetoConfig, http: reqwest::Client) -> Self {
        Self {
            http,
            base: config.read_url.trim_end_matches('/').to_string(),
            timeout: config.timeout.get(),
            max_batch_size: config.max_batch_size.max(1) as usize,
            max_depth: config.max_depth,
            no_batch: AtomicBool::new(false),
        }
    }

    fn error(&self, path: &str, message: String) -> CapabilityError {
        CapabilityError::Keto {
            url: format!("{}{path}", self.base),
            message,
        }
    }

    /// Whether Keto's read API is ready.
    pub async fn ready(&self) -> Result<(), CapabilityError> {
        const PATH: &str = "/health/ready";
        let response = self
            .http
            .get(format!("{}{PATH}", self.base))
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| self.error(PATH, error_chain(&e)))?;
        if !response.status().is_success() {
            return Err(self.error(PATH, format!("answered {}", response.status())));
        }
        Ok(())
    }

    /// Keto's answer for each tuple, in order: batches of
    /// `max_batch_size`, a few in flight at once.
    pub async fn check(&self, tuples: &[Tuple]) -> Result<Vec<bool>, CapabilityError> {
        let calls: Vec<_> = tuples
            .chunks(self.max_batch_size)
            .map(|chunk| self.check_chunk(chunk))
            .collect();
        let answers: Vec<Result<Vec<bool>, CapabilityError>> = futures::stream::iter(calls)
            .buffered(PARALLEL_BATCHES)
            .collect()
            .await;
        let mut allowed = Vec::with_capacity(tuples.len());
        for answer in answers {
            allowed.extend(answer?);
        }
        Ok(allowed)
    }

    async fn check_chunk(&self, chunk: &[Tuple]) -> Result<Vec<bool>, CapabilityError> {
        if !self.no_batch.load(Ordering::Relaxed) {
            match self.batch(chunk).await? {
                Some(answers) => return Ok(answers),
                None => self.no_batch.store(true, Ordering::Relaxed),
            }
        }
        let mut answers = Vec::with_capacity(chunk.len());
        for tuple in chunk {
            answers.push(self.single(tuple).await?);
        }
        Ok(answers)
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .timeout(self.timeout);
        if let Some(depth) = self.max_depth {
            request = request.query(&[("max-depth", depth)]);
        }
        request
    }

    /// One batch call; `None` when this Keto has no batch endpoint.
    async fn batch(&self, chunk: &[Tuple]) -> Result<Option<Vec<bool>>, CapabilityError> {
        const PATH: &str = "/relation-tuples/batch/check";
        let response = self
            .post(PATH)
            .json(&serde_json::json!({ "tuples": chunk }))
            .send()
            .await
            .map_err(|e| self.error(PATH, error_chain(&e)))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND
            || status == reqwest::StatusCode::METHOD_NOT_ALLOWED
        {
            tracing::info!(
                url = %format!("{}{PATH}", self.base),
                "Keto has no batch check; asking one tuple at a time"
            );
            return Ok(None);
        }
        if !status.is_success() {
            return Err(self.error(PATH, format!("answered {status}")));
        }
        let answer: BatchAnswer = response
            .json()
            .await
            .map_err(|e| self.error(PATH, format!("unexpected answer: {e}")))?;
        if answer.results.len() != chunk.len() {
            return Err(self.error(
                PATH,
                format!(
                    "answered {} results for {} tuples",
                    answer.results.len(),
                    chunk.len()
                ),
            ));
        }
        Ok(Some(
            answer
                .results
                .into_iter()
                .zip(chunk)
                .map(|(result, tuple)| match result.error {
                    Some(error) if !error.is_empty() => {
                        tracing::debug!(?tuple, error, "Keto could not check a tuple; denied");
                        false
                    }
                    _ => result.allowed,
                })
                .collect(),
        ))
    }

    async fn single(&self, tuple: &Tuple) -> Result<bool, CapabilityError> {
        const PATH: &str = "/relation-tuples/check/openapi";
        let response = self
            .post(PATH)
            .json(tuple)
            .send()
            .await
            .map_err(|e| self.error(PATH, error_chain(&e)))?;
        if !response.status().is_success() {
            return Err(self.error(PATH, format!("answered {}", response.status())));
        }
        let answer: Allowed = response
            .json()
            .await
            .map_err(|e| self.error(PATH, format!("unexpected answer: {e}")))?;
        Ok(answer.allowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_tenant_slash_partition() {
        assert_eq!(object("acme", Some("eu")), "acme/eu");
        assert_eq!(object("acme", None), "acme/");
    }

    #[test]
    fn capabilities_are_found_wherever_definitions_name_them() {
        let tree = serde_json::json!({
            "navigation": {"capabilities": ["orders:view"]},
            "pages": [{
                "capabilities": ["orders:view", "orders:list"],
                "table": {"columns": [{"visible": "orders:finance:view"}, {"visible": "always"}]},
                "sections": [{"fields": [{"visibility": "orders:notes:view", "read_only": "true"}]}]
            }],
            "workflows": [{"transitions": [{"guard": "orders:approve"}]}],
            "title": "x:y"
        });
        let mut found = Vec::new();
        capabilities(&tree, None, &mut found);
        found.sort();
        found.dedup();
        assert_eq!(
            found,
            [
                "orders:approve",
                "orders:finance:view",
                "orders:list",
                "orders:notes:view",
                "orders:view"
            ]
        );
    }

    #[test]
    fn operations_are_found_with_their_services() {
        let tree = serde_json::json!({
            "pages": [{"table": {"data_source": {"operation_id": "listOrders", "service_id": "orders-svc"}}}],
            "commands": [{"operation": {"operation_id": "cancelOrder"}}]
        });
        let mut found = Vec::new();
        operations(&tree, &mut |op, svc| {
            found.push((op.to_string(), svc.map(String::from)))
        });
        found.sort();
        assert_eq!(
            found,
            [
                ("cancelOrder".to_string(), None),
                ("listOrders".to_string(), Some("orders-svc".to_string()))
            ]
        );
    }
}
