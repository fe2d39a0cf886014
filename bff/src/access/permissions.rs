//! Permission keys as the original Thesa's admin console writes them, and
//! `POST /ui/capabilities/batch-check`.
//!
//! The console asks `{"namespace": "service_profile", "permissions":
//! ["profile_view"]}` while definitions name capabilities `profile:view`.
//! The original BFF compared the two as they are, so it granted nothing
//! and the console showed its whole menu. Here a key names a capability
//! with `capability.permission_keys.separator` in place of each `:`
//! (`profile_view` ⇄ `profile:view`), or through an alias; the same
//! rule names a capability's Keto relation. With the `keto` evaluator the
//! console's namespace and key are asked of Keto as they are (namespace
//! and relation of the tuple): that is how the console's permissions are
//! modelled there.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use thesa_core::config::{self, PermissionKeysConfig};

use crate::access::Caller;
use crate::access::capabilities::{Capabilities, CapabilityError, CapabilitySet};

/// Most permissions one batch-check may ask about.
pub const MAX_CHECKS: usize = 1000;

/// The body of `POST /ui/capabilities/batch-check`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct BatchCheck {
    /// Permission keys by namespace, in the console's order.
    #[serde(default)]
    pub checks: Vec<NamespaceChecks>,
}

/// The keys asked about in one namespace.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NamespaceChecks {
    /// The console's namespace (`service_profile`).
    #[serde(default)]
    pub namespace: String,
    /// Bare keys (`profile_view`).
    #[serde(default)]
    pub permissions: Vec<String>,
}

/// The answer: the bare keys asked about that the caller holds, in the
/// order asked, each once.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Granted {
    /// Never null: `[]` when nothing is granted.
    pub granted: Vec<String>,
}

impl BatchCheck {
    /// Every (namespace, key) pair asked about, in order, each once.
    pub fn pairs(&self) -> Vec<(&str, &str)> {
        let mut seen = HashSet::new();
        self.checks
            .iter()
            .flat_map(|c| {
                c.permissions
                    .iter()
                    .map(|k| (c.namespace.as_str(), k.as_str()))
            })
            .filter(|pair| !pair.1.is_empty() && seen.insert(*pair))
            .collect()
    }
}

/// The mapping between console keys and capabilities.
#[derive(Debug, Clone)]
pub struct PermissionKeys {
    separator: String,
    aliases: std::collections::BTreeMap<String, String>,
}

impl PermissionKeys {
    /// The mapping of `capability.permission_keys`.
    pub fn new(config: &PermissionKeysConfig) -> Self {
        Self {
            separator: config.separator.clone(),
            aliases: config.aliases.clone(),
        }
    }

    /// A capability written as a key: `orders:view` → `orders_view`.
    pub fn key(&self, capability: &str) -> String {
        if self.separator.is_empty() {
            capability.to_string()
        } else {
            capability.replace(':', &self.separator)
        }
    }

    /// Whether `set` grants the console key `key` asked in `namespace`:
    /// the key itself, `namespace:key` (what the original accepted), an
    /// alias's capability, or a granted capability (or pattern) whose key
    /// form is `key` (`orders:*` grants every key starting `orders_`).
    pub fn grants(&self, set: &CapabilitySet, namespace: &str, key: &str) -> bool {
        if set.has(key) || (!namespace.is_empty() && set.has(&format!("{namespace}:{key}"))) {
            return true;
        }
        if self.aliases.get(key).is_some_and(|c| set.has(c)) {
            return true;
        }
        !self.separator.is_empty()
            && set.granted().iter().any(|granted| {
                let pattern = self.key(granted);
                config::grants(&pattern, key)
                    || granted.strip_suffix(":*").is_some_and(|prefix| {
                        key.starts_with(&format!("{}{}", self.key(prefix), self.separator))
                    })
            })
    }

    /// Every granted capability and its key form, for the console's
    /// `user.permissions` (sorted, each once).
    pub fn listed(&self, set: &CapabilitySet) -> Vec<String> {
        let mut all: Vec<String> = set
            .granted()
            .iter()
            .flat_map(|c| [c.clone(), self.key(c)])
            .collect();
        all.sort();
        all.dedup();
        all
    }
}

/// Answers a batch-check for `caller`: from its resolved capabilities, or
/// with the `keto` evaluator by asking Keto about each (namespace, key).
pub async fn batch_check(
    capabilities: &Capabilities,
    caller: &Caller,
    request: &BatchCheck,
) -> Result<Granted, CapabilityError> {
    let pairs = request.pairs();
    let allowed: Vec<bool> = if capabilities.is_keto() {
        capabilities
            .check_keys(&caller.principal, caller.partition.as_deref(), &pairs)
            .await?
    } else {
        let keys = capabilities.permission_keys();
        pairs
            .iter()
            .map(|(namespace, key)| keys.grants(&caller.capabilities, namespace, key))
            .collect()
    };
    let mut granted: Vec<String> = Vec::new();
    for ((_, key), allowed) in pairs.iter().zip(allowed) {
        if allowed && !granted.iter().any(|g| g == key) {
            granted.push(key.to_string());
        }
    }
    Ok(Granted { granted })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(caps: &[&str]) -> CapabilitySet {
        CapabilitySet::new(caps.iter().map(|c| c.to_string()))
    }

    fn keys() -> PermissionKeys {
        PermissionKeys::new(&PermissionKeysConfig::default())
    }

    #[test]
    fn underscore_keys_name_colon_capabilities() {
        let caps = set(&["profile:view", "orders:returns:view", "tenant_admin:edit"]);
        let keys = keys();
        assert!(keys.grants(&caps, "service_profile", "profile_view"));
        assert!(keys.grants(&caps, "x", "orders_returns_view"));
        // Underscores inside a segment are compared in key form.
        assert!(keys.grants(&caps, "x", "tenant_admin_edit"));
        assert!(!keys.grants(&caps, "service_profile", "profile_create"));
        assert!(!keys.grants(&caps, "x", "profile"));
        // The colon form and the original's `namespace:key` still work.
        assert!(keys.grants(&caps, "x", "profile:view"));
        assert!(keys.grants(
            &set(&["service_profile:profile_view"]),
            "service_profile",
            "profile_view"
        ));
    }

    #[test]
    fn patterns_grant_keys_of_their_namespace() {
        let keys = keys();
        let clerk = set(&["orders:*"]);
        assert!(keys.grants(&clerk, "x", "orders_cancel"));
        assert!(keys.grants(&clerk, "x", "orders_notes_view"));
        assert!(!keys.grants(&clerk, "x", "ordersx_view"));
        assert!(!keys.grants(&clerk, "x", "orders"));
        assert!(keys.grants(&set(&["*"]), "x", "anything_at_all"));
    }

    #[test]
    fn aliases_and_an_empty_separator() {
        let config = PermissionKeysConfig {
            separator: String::new(),
            aliases: [("tenancy_view".to_string(), "tenants:view".to_string())].into(),
        };
        let keys = PermissionKeys::new(&config);
        let caps = set(&["tenants:view", "profile:view"]);
        assert!(keys.grants(&caps, "service_tenancy", "tenancy_view"));
        assert!(!keys.grants(&caps, "service_profile", "profile_view"));
        assert_eq!(keys.key("profile:view"), "profile:view");
    }

    #[test]
    fn pairs_keep_order_and_drop_repeats() {
        let request: BatchCheck = serde_json::from_value(serde_json::json!({
            "checks": [
                {"namespace": "a", "permissions": ["x_view", "y_view", "x_view", ""]},
                {"namespace": "b", "permissions": ["x_view"]}
            ]
        }))
        .unwrap();
        assert_eq!(
            request.pairs(),
            [("a", "x_view"), ("a", "y_view"), ("b", "x_view")]
        );
    }

    #[test]
    fn listed_has_both_forms() {
        assert_eq!(
            keys().listed(&set(&["orders:view", "*"])),
            ["*", "orders:view", "orders_view"]
        );
    }
}
