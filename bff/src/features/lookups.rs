//! `GET /ui/lookups/{id}?q=`: option lists for dropdowns, from the
//! lookup's operation (`search_field` carries `q`), as `{label, value}`
//! pairs read at `label_field` and `value_field`.
//!
//! Options are cached for the lookup's `cache.ttl` (else
//! `lookup.cache.ttl`), at most `lookup.cache.max_entries` lists. A lookup
//! with `scope: tenant` (the default: the safe choice when unsure) is
//! cached per tenant; `partition` per tenant and partition; `global` once
//! for everyone. The key also holds the definition set's checksum, so a
//! reload never serves old options.
//!
//! Lookups given inline on a form field or a table filter are served and
//! cached the same way, under the ID `page:<page>:<field>` or
//! `form:<form>:<field>` (see `registry::inline_lookup_id`); their options
//! need the capabilities of their page or form and section.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::sync::Cache;
use serde_json::{Value, json};
use thesa_core::checksum::Checksum;
use thesa_core::config::LookupConfig;
use thesa_core::model::{CacheScope, Lookup};

use crate::features::data::get_path;

/// One cached option list and how long it lives.
#[derive(Debug, Clone)]
pub struct Options {
    /// `[{"label", "value"}]`.
    pub list: Arc<Value>,
    ttl: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    set: Checksum,
    lookup: String,
    tenant: Option<String>,
    partition: Option<String>,
    query: Option<String>,
}

struct PerEntryTtl;

impl Expiry<Key, Options> for PerEntryTtl {
    fn expire_after_create(&self, _: &Key, value: &Options, _: Instant) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// The lookup cache.
pub struct LookupCache {
    cache: Cache<Key, Options>,
    default_ttl: Duration,
}

impl std::fmt::Debug for LookupCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LookupCache")
            .field("entries", &self.cache.entry_count())
            .finish_non_exhaustive()
    }
}

/// Where a cached list belongs.
pub struct Scope<'a> {
    /// The definition set's checksum.
    pub set: Checksum,
    /// The caller's tenant.
    pub tenant: &'a str,
    /// The request's partition.
    pub partition: Option<&'a str>,
    /// The search text, if any.
    pub query: Option<&'a str>,
}

impl LookupCache {
    /// A cache as `lookup.cache` configures it.
    pub fn new(config: &LookupConfig) -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(config.cache.max_entries)
                .expire_after(PerEntryTtl)
                .build(),
            default_ttl: config.cache.ttl.get(),
        }
    }

    fn key(lookup: &Lookup, scope: &Scope) -> Key {
        let kind = lookup.cache.as_ref().and_then(|c| c.scope);
        let per_tenant = kind != Some(CacheScope::Global);
        let per_partition = kind == Some(CacheScope::Partition);
        Key {
            set: scope.set,
            lookup: lookup.id.clone(),
            tenant: per_tenant.then(|| scope.tenant.to_string()),
            partition: per_partition
                .then(|| scope.partition.map(String::from))
                .flatten(),
            query: scope.query.map(String::from),
        }
    }

    /// The cached options of `lookup` for this scope.
    pub fn get(&self, lookup: &Lookup, scope: &Scope) -> Option<Arc<Value>> {
        self.cache.get(&Self::key(lookup, scope)).map(|o| o.list)
    }

    /// Keeps options of `lookup` for this scope.
    pub fn insert(&self, lookup: &Lookup, scope: &Scope, list: Arc<Value>) {
        let ttl = lookup
            .cache
            .as_ref()
            .and_then(|c| c.ttl)
            .map_or(self.default_ttl, |t| t.get());
        self.cache
            .insert(Self::key(lookup, scope), Options { list, ttl });
    }
}

/// The option list of a backend answer: the answer itself when it is a
/// list, else its first list under `items`, `data`, `results` or
/// `options`; each item as `{label, value}`. Items without a value are
/// left out.
pub fn options(lookup: &Lookup, response: &Value) -> Value {
    let items = response.as_array().or_else(|| {
        ["items", "data", "results", "options"]
            .iter()
            .find_map(|key| response.get(key).and_then(Value::as_array))
    });
    let list: Vec<Value> = items
        .into_iter()
        .flatten()
        .filter_map(|item| {
            let value = get_path(item, &lookup.value_field)?.clone();
            let label = get_path(item, &lookup.label_field)
                .cloned()
                .unwrap_or_else(|| value.clone());
            Some(json!({"label": label, "value": value}))
        })
        .collect();
    Value::Array(list)
}
