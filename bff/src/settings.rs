//! Start-up step 1: the configuration. Read from the config file (`--config`,
//! else `config/config.yaml`, else compiled defaults) and overridden by
//! `THESA_*` environment variables, as the deployment guide's precedence
//! table says: environment > `--config` file > `config/config.yaml` >
//! compiled defaults.
//!
//! An environment variable names a config path in upper case with `_`
//! between and inside keys: `services.orders-svc.base_url` is
//! `THESA_SERVICES_ORDERS_SVC_BASE_URL`. The variables that can be set are
//! derived from the config's schema (and, for maps such as `services`, from
//! the keys the file has), so every leaf value has one. Lists are written
//! comma-separated (`THESA_IDENTITY_ALGORITHMS=RS256,ES256`); lists of
//! objects (`specs.sources`) can only be set in the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use thesa_core::config::Config;
use thesa_core::files::{self, SourceError};
use thesa_core::finding::{Code, Finding, Severity};
use thesa_core::node;

/// The prefix of every override variable.
const PREFIX: &str = "THESA_";

/// Variables with the prefix that are not config paths (besides the
/// secrets the config names): the config file itself.
const NOT_OVERRIDES: &[&str] = &["THESA_CONFIG"];

/// The effective configuration and where it came from.
#[derive(Debug)]
pub struct Settings {
    /// The configuration after overrides.
    pub config: Config,
    /// The file read, or `compiled defaults`.
    pub source: String,
    /// The override variables applied, by name.
    pub overrides: Vec<String>,
    /// `THESA_*` variables that are neither overrides nor secrets named by
    /// the config (probably typos), with a suggestion when one is close.
    pub ignored: Vec<String>,
}

/// Why the configuration is not usable.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The config file could not be read.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The file or an override has errors (unknown keys included).
    #[error("invalid configuration: {}", summary(.0))]
    Invalid(Vec<Finding>),
    /// Two config paths map to the same variable name, so the variable
    /// cannot be applied unambiguously.
    #[error("{var} could set both {first} and {second}; rename one of the keys in the config file")]
    Ambiguous {
        /// The variable.
        var: String,
        /// One path.
        first: String,
        /// The other path.
        second: String,
    },
}

/// The first three findings on one line, and how many more there are.
pub fn summary<F: std::fmt::Display>(findings: &[F]) -> String {
    let shown: Vec<String> = findings.iter().take(3).map(ToString::to_string).collect();
    let more = findings.len().saturating_sub(shown.len());
    let mut text = shown.join("; ");
    if more > 0 {
        text.push_str(&format!(" (and {more} more)"));
    }
    text
}

/// Loads the configuration: `path` (which must exist) or the default file
/// when it exists, then the overrides from `env`.
pub fn load(
    path: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Settings, SettingsError> {
    let path: Option<PathBuf> = match path {
        Some(p) if !p.is_file() => {
            return Err(SourceError::Missing {
                what: "config file",
                path: p.to_path_buf(),
            }
            .into());
        }
        Some(p) => Some(p.to_path_buf()),
        None => crate::sources::default_config(),
    };
    let (source, text) = match &path {
        Some(p) => (p.display().to_string(), files::read(p)?),
        None => ("compiled defaults".to_string(), "{}".to_string()),
    };

    // The file alone first, so that its errors carry line and column.
    let mut findings = Vec::new();
    let from_file = Config::from_text(&source, &text, &mut findings);
    let blocking: Vec<Finding> = findings
        .into_iter()
        .filter(|f| f.severity == Severity::Error || f.code == Code::UnknownField)
        .map(|mut f| {
            // Unknown keys are ignored in definitions but refused here: a
            // misspelt setting would otherwise silently keep its default.
            f.severity = Severity::Error;
            f
        })
        .collect();
    let Some(from_file) = from_file.filter(|_| blocking.is_empty()) else {
        return Err(SettingsError::Invalid(blocking));
    };

    let mut value = node::parse(&text)
        .map(|d| d.to_json())
        .unwrap_or(Value::Null);
    if !value.is_object() {
        value = Value::Object(Default::default());
    }
    let (variables, shared) = variables(&value);
    let secrets = secret_variables(&from_file);
    let mut overrides = Vec::new();
    let mut ignored = Vec::new();
    let mut env: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(PREFIX))
        .collect();
    env.sort();
    for (name, text) in env {
        if let Some((first, second)) = shared.get(&name) {
            return Err(SettingsError::Ambiguous {
                var: name,
                first: first.clone(),
                second: second.clone(),
            });
        }
        match variables.get(&name) {
            Some(leaf) => {
                set(&mut value, &leaf.path, leaf.parse(&text));
                overrides.push(name);
            }
            None if NOT_OVERRIDES.contains(&name.as_str()) || secrets.contains(&name) => {}
            None => {
                let close = variables
                    .keys()
                    .map(|k| (strsim::levenshtein(k, &name), k))
                    .filter(|(d, _)| *d <= 3)
                    .min();
                ignored.push(match close {
                    Some((_, k)) => format!("{name} (did you mean {k}?)"),
                    None => name,
                });
            }
        }
    }
    if overrides.is_empty() {
        return Ok(Settings {
            config: from_file,
            source,
            overrides,
            ignored,
        });
    }

    let env_source = format!("{source} + environment");
    let mut findings = Vec::new();
    let config = Config::from_value(&env_source, value, &mut findings);
    let errors: Vec<Finding> = findings
        .into_iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|mut f| {
            if let Some(var) = overrides
                .iter()
                .find(|v| f.path.starts_with(&variables[*v].display))
            {
                f.message = format!("{var}: {}", f.message);
            }
            f
        })
        .collect();
    match config {
        Some(config) if errors.is_empty() => Ok(Settings {
            config,
            source,
            overrides,
            ignored,
        }),
        _ => Err(SettingsError::Invalid(errors)),
    }
}

/// The environment variables the config names as holding secrets.
fn secret_variables(config: &Config) -> Vec<String> {
    let mut names = vec![
        config.workflow.store.dsn_env.clone(),
        config.idempotency.store.addr_env.clone(),
        config.rate_limit.addr_env.clone(),
        config.handlers.notify_webhook.url_env.clone(),
        config.analytics.token_env.clone(),
        "THESA_SERVICE_TOKEN_SECRET".to_string(),
    ];
    names.extend(
        config
            .services
            .values()
            .filter_map(|s| s.auth.client_secret_env.clone()),
    );
    names
}

/// A config value an environment variable can set.
#[derive(Debug, Clone)]
struct Leaf {
    path: Vec<String>,
    /// The path as findings print it (`services.orders-svc.timeout`).
    display: String,
    list: bool,
    /// JSON types the value (or a list's items) may have, from the schema.
    types: Vec<String>,
}

impl Leaf {
    /// The variable's text as a config value of the type the schema
    /// wants: lists split at commas; a number or boolean only where the
    /// schema has one, so text such as an audience `007` stays text.
    fn parse(&self, text: &str) -> Value {
        if self.list {
            return Value::Array(
                text.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|item| self.scalar(item))
                    .collect(),
            );
        }
        self.scalar(text)
    }

    fn scalar(&self, text: &str) -> Value {
        let allows = |t: &str| self.types.iter().any(|have| have == t);
        if allows("boolean") {
            match text {
                "true" => return Value::Bool(true),
                "false" => return Value::Bool(false),
                _ => {}
            }
        }
        if allows("integer")
            && let Ok(n) = text.parse::<u64>()
        {
            return Value::from(n);
        }
        if allows("number")
            && let Some(n) = text.parse::<f64>().ok().filter(|n| n.is_finite())
        {
            return Value::from(n);
        }
        Value::String(text.to_string())
    }
}

/// The JSON types a schema allows (`type`, or the types of `anyOf`).
fn types(root: &Value, schema: &Value) -> Vec<String> {
    let schema = resolve(root, schema);
    let mut found: Vec<String> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.clone()],
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(|t| t.as_str().map(String::from))
            .collect(),
        _ => Vec::new(),
    };
    if let Some(options) = schema.get("anyOf").and_then(Value::as_array) {
        found.extend(options.iter().flat_map(|o| types(root, o)));
    }
    if found.is_empty() && schema.get("enum").is_some() {
        found.push("string".into());
    }
    found
}

fn set(root: &mut Value, path: &[String], value: Value) {
    let mut slot = root;
    for key in path {
        if !slot.is_object() {
            *slot = Value::Object(Default::default());
        }
        slot = slot
            .as_object_mut()
            .expect("made an object above")
            .entry(key.clone())
            .or_insert(Value::Null);
    }
    *slot = value;
}

/// Every variable name, derived from the config schema and the file's map
/// keys, and the names two paths share (an error only when such a
/// variable is set).
fn variables(file: &Value) -> (BTreeMap<String, Leaf>, BTreeMap<String, (String, String)>) {
    let schema = serde_json::to_value(schemars::schema_for!(Config)).unwrap_or_default();
    let mut leaves = Vec::new();
    walk(&schema, &schema, file, &mut Vec::new(), &mut leaves);
    let mut names: BTreeMap<String, Leaf> = BTreeMap::new();
    let mut shared = BTreeMap::new();
    for leaf in leaves {
        let name = format!(
            "{PREFIX}{}",
            leaf.path
                .join("_")
                .to_ascii_uppercase()
                .replace(['-', '.'], "_")
        );
        if let Some(other) = names.get(&name) {
            shared.insert(name, (other.display.clone(), leaf.display));
            continue;
        }
        names.insert(name, leaf);
    }
    (names, shared)
}

fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => reference
            .strip_prefix("#/")
            .and_then(|p| root.pointer(&format!("/{p}")))
            .unwrap_or(schema),
        None => schema,
    }
}

fn walk(root: &Value, schema: &Value, file: &Value, path: &mut Vec<String>, out: &mut Vec<Leaf>) {
    let schema = resolve(root, schema);
    // `Option<T>` is `anyOf: [T, null]`; a duration's anyOf has no object.
    if let Some(options) = schema.get("anyOf").and_then(Value::as_array) {
        let objects: Vec<&Value> = options
            .iter()
            .map(|o| resolve(root, o))
            .filter(|o| o.get("properties").is_some())
            .collect();
        if let [object] = objects[..] {
            return walk(root, object, file, path, out);
        }
    }
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (key, child) in properties {
            path.push(key.clone());
            walk(
                root,
                child,
                file.get(key).unwrap_or(&Value::Null),
                path,
                out,
            );
            path.pop();
        }
        return;
    }
    if let Some(values) = schema.get("additionalProperties").filter(|v| v.is_object()) {
        if let Some(entries) = file.as_object() {
            for (key, child) in entries {
                path.push(key.clone());
                walk(root, values, child, path, out);
                path.pop();
            }
        }
        return;
    }
    let own = types(root, schema);
    let is_array = own.iter().any(|t| t == "array");
    let types = if is_array {
        let items = schema.get("items").map(|i| resolve(root, i));
        if items.is_some_and(|i| i.get("properties").is_some()) {
            return;
        }
        items.map(|i| types(root, i)).unwrap_or_default()
    } else {
        own
    };
    out.push(Leaf {
        path: path.clone(),
        display: path.join("."),
        list: is_array,
        types,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const FILE: &str =
        "server:\n  port: 9000\nservices:\n  orders-svc:\n    base_url: http://file\n";

    #[test]
    fn environment_beats_file_beats_defaults() {
        let f = file(FILE);
        let settings = load(
            Some(f.path()),
            env(&[
                ("THESA_SERVICES_ORDERS_SVC_BASE_URL", "http://env"),
                ("THESA_SERVER_HANDLER_TIMEOUT", "7s"),
                ("THESA_IDENTITY_ALGORITHMS", "ES256"),
                ("THESA_OBSERVABILITY_LOG_LEVEL", "warn"),
                ("THESA_DEFINITIONS_HOT_RELOAD", "true"),
                ("HOME", "/root"),
            ]),
        )
        .unwrap();
        let c = &settings.config;
        assert_eq!(c.server.port, 9000, "file beats default");
        assert_eq!(c.services["orders-svc"].base_url, "http://env");
        assert_eq!(c.server.handler_timeout.get().as_secs(), 7);
        assert_eq!(c.server.shutdown_timeout.get().as_secs(), 30, "default");
        assert_eq!(c.identity.algorithms.len(), 1);
        assert!(c.definitions.hot_reload);
        assert_eq!(settings.overrides.len(), 5);
    }

    #[test]
    fn unknown_key_in_the_file_is_an_error_with_its_line() {
        let f = file("server:\n  prot: 9000\n");
        let err = load(Some(f.path()), env(&[])).unwrap_err();
        let SettingsError::Invalid(findings) = &err else {
            panic!("{err}")
        };
        assert_eq!(findings[0].path, "server.prot");
        assert_eq!(findings[0].line, Some(2));
        assert!(err.to_string().contains("server.prot"), "{err}");
    }

    #[test]
    fn bad_override_names_the_variable() {
        let f = file(FILE);
        let err = load(Some(f.path()), env(&[("THESA_SERVER_PORT", "http")])).unwrap_err();
        assert!(err.to_string().contains("THESA_SERVER_PORT"), "{err}");
    }

    #[test]
    fn secrets_are_not_overrides_and_typos_are_reported() {
        let f = file(FILE);
        let settings = load(
            Some(f.path()),
            env(&[
                ("THESA_WORKFLOW_DSN", "postgres://secret"),
                ("THESA_REDIS_ADDR", "redis:6379"),
                ("THESA_SERVER_PROT", "1"),
            ]),
        )
        .unwrap();
        assert!(settings.overrides.is_empty());
        assert_eq!(
            settings.ignored,
            ["THESA_SERVER_PROT (did you mean THESA_SERVER_PORT?)"]
        );
    }

    #[test]
    fn values_keep_the_type_the_schema_wants() {
        let f = file(FILE);
        let settings = load(
            Some(f.path()),
            env(&[
                ("THESA_IDENTITY_AUDIENCE", "007"),
                ("THESA_SERVER_PORT", "8081"),
                ("THESA_SERVER_SHUTDOWN_TIMEOUT", "45"),
                ("THESA_TRACING_SAMPLING", "x"),
                ("THESA_OBSERVABILITY_TRACING_SAMPLING_RATE", "0.25"),
            ]),
        )
        .unwrap();
        let c = &settings.config;
        assert_eq!(c.identity.audience.as_deref(), Some("007"));
        assert_eq!(c.server.port, 8081);
        assert_eq!(c.server.shutdown_timeout.get().as_secs(), 45);
        assert_eq!(c.observability.tracing.sampling_rate, 0.25);
    }

    #[test]
    fn keys_sharing_a_variable_fail_only_when_it_is_set() {
        let f = file("services:\n  a-b: {base_url: x}\n  a_b: {base_url: y}\n");
        assert!(load(Some(f.path()), env(&[])).is_ok());
        let err = load(Some(f.path()), env(&[("THESA_SERVICES_A_B_BASE_URL", "z")])).unwrap_err();
        assert!(matches!(err, SettingsError::Ambiguous { .. }), "{err}");
    }

    #[test]
    fn missing_config_file_is_an_error() {
        let err = load(Some(Path::new("/nonexistent/c.yaml")), env(&[])).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/c.yaml"), "{err}");
    }
}
