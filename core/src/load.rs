//! Turning a document into a typed value, reporting every structural
//! problem at once: missing fields, wrong types, values outside their enum
//! or range, malformed strings, and unknown keys (as warnings).
//!
//! The rules come from the JSON Schema of the Rust type (the same schema the
//! CRDs embed), checked with the `jsonschema` crate. Where Thesa's Go loader
//! would store a boolean or number into a string field as its text
//! (`read_only: true`, `width: 120`), so does this loader.

use std::sync::OnceLock;

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::duration::ParseDurationError;
use crate::finding::{Code, Finding, Reporter};
use crate::model::DOMAIN_PATTERN;
use crate::node::{self, Node};
use crate::path::{Path, Segment};
use crate::suggest;

/// Most unknown-field warnings listed per document; the rest are counted.
const MAX_UNKNOWN_FIELDS: usize = 100;

/// The structural rules of one type: its JSON Schema, tightened so that
/// unknown keys are reported, compiled once.
pub struct Schema {
    schema: Value,
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schema").finish_non_exhaustive()
    }
}

impl Schema {
    /// Builds the rules for `T`.
    ///
    /// # Panics
    /// Only if the schema generated from `T` is not a valid JSON Schema,
    /// which is a bug in this crate (covered by tests), never a property of
    /// the input.
    pub fn for_type<T: JsonSchema>() -> Self {
        let mut settings = SchemaSettings::draft2020_12();
        settings.inline_subschemas = true;
        let mut schema = settings
            .into_generator()
            .into_root_schema_for::<T>()
            .to_value();
        tighten(&mut schema);
        let validator = jsonschema::options()
            .should_validate_formats(false)
            .build(&schema)
            .expect("the schema generated from a model type is valid");
        Self { schema, validator }
    }

    /// The tightened JSON Schema.
    pub fn as_value(&self) -> &Value {
        &self.schema
    }
}

/// Lazily built, shared rules for a type.
pub struct SchemaCell(OnceLock<Schema>);

impl SchemaCell {
    /// An empty cell (for a `static`).
    pub const fn new() -> Self {
        Self(OnceLock::new())
    }

    /// The rules for `T`, built on first use.
    pub fn get<T: JsonSchema>(&self) -> &Schema {
        self.0.get_or_init(Schema::for_type::<T>)
    }
}

impl Default for SchemaCell {
    fn default() -> Self {
        Self::new()
    }
}

/// Removes the `null` alternatives schemars adds for `Option` (an empty
/// value means "not set" and never reaches the checks) and forbids keys
/// that an object does not declare, so that they are reported.
fn tighten(schema: &mut Value) {
    let Value::Object(map) = schema else { return };
    if let Some(Value::Array(types)) = map.get_mut("type") {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            let only = types.remove(0);
            map.insert("type".into(), only);
        }
    }
    if let Some(Value::Array(values)) = map.get_mut("enum") {
        values.retain(|v| !v.is_null());
    }
    for keyword in ["anyOf", "oneOf"] {
        if let Some(Value::Array(options)) = map.get_mut(keyword) {
            options.retain(|o| {
                o.get("type").is_none_or(|t| t != "null")
                    && o.get("const").is_none_or(|c| !c.is_null())
            });
            if options.len() == 1 {
                let only = options.remove(0);
                map.remove(keyword);
                if let Value::Object(inner) = only {
                    for (k, v) in inner {
                        map.entry(k).or_insert(v);
                    }
                }
            }
        }
    }
    enum_from_consts(map);
    bound_integers(map);
    if map.contains_key("properties") && !map.contains_key("additionalProperties") {
        map.insert("additionalProperties".into(), Value::Bool(false));
    }
    for value in map.values_mut() {
        match value {
            Value::Object(_) => tighten(value),
            Value::Array(items) => items.iter_mut().for_each(tighten),
            _ => {}
        }
    }
}

/// schemars marks 32- and 16-bit integers with a `format` only; bounds make
/// an out-of-range number an `OUT_OF_RANGE` finding like any other.
fn bound_integers(map: &mut serde_json::Map<String, Value>) {
    let (min, max): (i64, i64) = match map.get("format").and_then(Value::as_str) {
        Some("int32") => (i32::MIN.into(), i32::MAX.into()),
        Some("uint32") => (0, u32::MAX.into()),
        Some("uint16") => (0, u16::MAX.into()),
        _ => return,
    };
    map.entry("minimum").or_insert(min.into());
    map.entry("maximum").or_insert(max.into());
}

/// schemars writes an enum whose variants have doc comments as `oneOf` a
/// list of `const`s; a plain `enum` gives one clear error ("not one of: ...").
fn enum_from_consts(map: &mut serde_json::Map<String, Value>) {
    let Some(Value::Array(options)) = map.get("oneOf") else {
        return;
    };
    let consts: Option<Vec<Value>> = options.iter().map(|o| o.get("const").cloned()).collect();
    if let Some(consts) = consts {
        map.remove("oneOf");
        map.insert("type".into(), Value::String("string".into()));
        // An `enum` set on the type itself (to list accepted aliases) wins.
        map.entry("enum").or_insert(Value::Array(consts));
    }
}

/// A document read from text: its tree (for positions) and, when it has no
/// structural errors, its typed value.
#[derive(Debug)]
pub struct Loaded<T> {
    /// The parsed tree, `None` when the text did not parse.
    pub document: Option<Node>,
    /// The typed value, `None` when there were structural errors.
    pub value: Option<T>,
}

/// Parses `text` and loads it as a `T`, adding findings for `source`.
pub fn from_text<T: DeserializeOwned>(
    schema: &Schema,
    source: &str,
    text: &str,
    findings: &mut Vec<Finding>,
) -> Loaded<T> {
    match node::parse(text) {
        Ok(document) => from_node(schema, source, document, findings),
        Err(err) => {
            Reporter::new(source, None, findings).report_at(
                Code::ParseError,
                &Path::root(),
                err.pos,
                err.message,
            );
            Loaded {
                document: None,
                value: None,
            }
        }
    }
}

/// Loads a parsed tree (a document, or part of one such as a manifest's
/// `spec`) as a `T`; findings carry the tree's positions and paths
/// relative to it.
pub fn from_node<T: DeserializeOwned>(
    schema: &Schema,
    source: &str,
    document: Node,
    findings: &mut Vec<Finding>,
) -> Loaded<T> {
    let value = document.to_json();
    let value = check_and_convert(schema, source, Some(&document), value, findings);
    Loaded {
        document: Some(document),
        value,
    }
}

/// Loads an already parsed JSON value (such as a custom resource's spec)
/// as a `T`; findings carry paths but no positions.
pub fn from_value<T: DeserializeOwned>(
    schema: &Schema,
    source: &str,
    value: Value,
    findings: &mut Vec<Finding>,
) -> Option<T> {
    check_and_convert(schema, source, None, value, findings)
}

fn check_and_convert<T: DeserializeOwned>(
    schema: &Schema,
    source: &str,
    document: Option<&Node>,
    mut value: Value,
    findings: &mut Vec<Finding>,
) -> Option<T> {
    let mut problems = collect(schema, &value);
    if coerce_scalars(&mut value, document, &problems) {
        problems = collect(schema, &value);
    }
    let mut reporter = Reporter::new(source, document, findings);
    let mut blocking = false;
    let mut unknown = 0;
    for problem in &problems {
        blocking |= report(schema, &value, problem, &mut reporter, &mut unknown);
    }
    if unknown > MAX_UNKNOWN_FIELDS {
        reporter.report(
            Code::UnknownField,
            &Path::root(),
            format!(
                "{unknown} unknown fields in all; only the first {MAX_UNKNOWN_FIELDS} are listed"
            ),
        );
    }
    if blocking {
        return None;
    }
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(typed) => Some(typed),
        Err(err) => {
            let path = path_from_serde(err.path());
            reporter.report(Code::InvalidType, &path, err.inner().to_string());
            None
        }
    }
}

/// A structural problem, detached from the validator's borrow of the value.
struct Problem {
    kind: jsonschema::error::ValidationErrorKind,
    instance_path: String,
    schema_path: String,
}

fn collect(schema: &Schema, value: &Value) -> Vec<Problem> {
    schema
        .validator
        .iter_errors(value)
        .map(|e| {
            let parts = e.into_parts();
            Problem {
                instance_path: parts.instance_path.as_str().to_string(),
                schema_path: parts.schema_path.as_str().to_string(),
                kind: parts.kind,
            }
        })
        .collect()
}

/// Reads scalars the way Thesa's Go loader (`gopkg.in/yaml.v3`) does: `true`
/// or `120` in a string field as `"true"` and `"120"` (the text as written:
/// `1.0` stays `1.0`), and YAML 1.1 words (`yes`, `off`, ...) in a boolean
/// field as booleans. Returns whether anything changed.
fn coerce_scalars(value: &mut Value, document: Option<&Node>, problems: &[Problem]) -> bool {
    use jsonschema::JsonType;
    use jsonschema::error::{TypeKind, ValidationErrorKind};
    let mut changed = false;
    for problem in problems {
        let ValidationErrorKind::Type { kind } = &problem.kind else {
            continue;
        };
        let wants = |t: JsonType| match kind {
            TypeKind::Single(single) => *single == t,
            TypeKind::Multiple(set) => set.contains(t),
        };
        let path = to_path(value, &problem.instance_path);
        let Some(slot) = value.pointer_mut(&problem.instance_path) else {
            continue;
        };
        if wants(JsonType::String) && (slot.is_boolean() || slot.is_number()) {
            let text = document
                .and_then(|d| d.get(&path))
                .and_then(Node::scalar_text)
                .unwrap_or_else(|| slot.to_string());
            *slot = Value::String(text);
            changed = true;
        } else if let (true, Some(b)) = (
            wants(JsonType::Boolean),
            slot.as_str().and_then(yaml11_bool),
        ) {
            *slot = Value::Bool(b);
            changed = true;
        }
    }
    changed
}

/// The YAML 1.1 boolean words that yaml.v3 still reads into boolean fields.
fn yaml11_bool(text: &str) -> Option<bool> {
    match text {
        "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => Some(true),
        "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => Some(false),
        _ => None,
    }
}

/// Converts a JSON pointer into a [`Path`], reading indices where the value
/// is a list (so that a key such as `"200"` stays a key).
fn to_path(root: &Value, pointer: &str) -> Path {
    let mut segments = Vec::new();
    let mut current = Some(root);
    for raw in pointer.split('/').skip(1) {
        let key = raw.replace("~1", "/").replace("~0", "~");
        match current {
            Some(Value::Array(items)) => {
                let index = key.parse::<usize>().unwrap_or(usize::MAX);
                current = items.get(index);
                segments.push(Segment::Index(index));
            }
            Some(Value::Object(map)) => {
                current = map.get(&key);
                segments.push(Segment::Key(key));
            }
            _ => {
                current = None;
                segments.push(Segment::Key(key));
            }
        }
    }
    Path::from_segments(segments)
}

fn path_from_serde(path: &serde_path_to_error::Path) -> Path {
    use serde_path_to_error::Segment as S;
    Path::from_segments(
        path.iter()
            .filter_map(|s| match s {
                S::Seq { index } => Some(Segment::Index(*index)),
                S::Map { key } => Some(Segment::Key(key.clone())),
                S::Enum { variant } => Some(Segment::Key(variant.clone())),
                S::Unknown => None,
            })
            .collect(),
    )
}

/// Words for the type of a value, as a reader of YAML thinks of it.
fn describe_type(value: Option<&Value>) -> &'static str {
    match value {
        Some(Value::Null) | None => "nothing",
        Some(Value::Bool(_)) => "true/false",
        Some(Value::Number(_)) => "a number",
        Some(Value::String(_)) => "text",
        Some(Value::Array(_)) => "a list",
        Some(Value::Object(_)) => "a mapping",
    }
}

fn describe_json_type(t: jsonschema::JsonType) -> &'static str {
    use jsonschema::JsonType as J;
    match t {
        J::Array => "a list",
        J::Boolean => "true/false",
        J::Integer => "a whole number",
        J::Null => "nothing",
        J::Number => "a number",
        J::Object => "a mapping",
        J::String => "text",
    }
}

/// Reports one problem; returns whether it blocks loading. `unknown` counts
/// unknown fields; only the first [`MAX_UNKNOWN_FIELDS`] are listed.
fn report(
    schema: &Schema,
    value: &Value,
    problem: &Problem,
    reporter: &mut Reporter<'_>,
    unknown: &mut usize,
) -> bool {
    use jsonschema::error::{TypeKind, ValidationErrorKind as K};
    let path = to_path(value, &problem.instance_path);
    let instance = value.pointer(&problem.instance_path);
    let shown = || instance.map(Value::to_string).unwrap_or_default();
    let (code, message) = match &problem.kind {
        K::AdditionalProperties { unexpected } => {
            let known = schema
                .schema
                .pointer(
                    problem
                        .schema_path
                        .trim_end_matches("/additionalProperties"),
                )
                .and_then(|s| s.get("properties"))
                .and_then(Value::as_object);
            for key in unexpected {
                *unknown += 1;
                if *unknown > MAX_UNKNOWN_FIELDS {
                    continue;
                }
                let hint = known
                    .map(|k| suggest::hint(key, k.keys().map(String::as_str)))
                    .unwrap_or_default();
                reporter.report_key(
                    Code::UnknownField,
                    &path.key(key.as_str()),
                    format!("unknown field {key:?} is ignored{hint}"),
                );
            }
            return false;
        }
        K::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            let message = format!("required field {name:?} is missing");
            reporter.report(Code::MissingField, &path.key(name), message);
            return true;
        }
        K::Type { kind } => {
            let expected = match kind {
                TypeKind::Single(t) => describe_json_type(*t).to_string(),
                TypeKind::Multiple(set) => set
                    .iter()
                    .map(describe_json_type)
                    .collect::<Vec<_>>()
                    .join(" or "),
            };
            (
                Code::InvalidType,
                format!("expected {expected}, found {}", describe_type(instance)),
            )
        }
        K::Enum { options } => {
            let allowed: Vec<&str> = options
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let found = instance.and_then(Value::as_str).unwrap_or_default();
            (
                Code::InvalidEnum,
                format!(
                    "{} is not one of: {}{}",
                    shown(),
                    allowed.join(", "),
                    suggest::hint(found, allowed.iter().copied())
                ),
            )
        }
        K::Minimum { limit } | K::ExclusiveMinimum { limit } => (
            Code::OutOfRange,
            format!("{} is below the minimum of {limit}", shown()),
        ),
        K::Maximum { limit } | K::ExclusiveMaximum { limit } => (
            Code::OutOfRange,
            format!("{} is above the maximum of {limit}", shown()),
        ),
        K::MinLength { .. } => (Code::MissingField, "must not be empty".to_string()),
        K::MinItems { limit } => (
            Code::MissingField,
            format!(
                "needs at least {limit} entr{}",
                if *limit == 1 { "y" } else { "ies" }
            ),
        ),
        K::Pattern { pattern } => (Code::InvalidFormat, pattern_message(pattern, &shown())),
        K::AnyOf { .. } if is_duration_schema(schema, &problem.schema_path) => {
            let text = instance
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                .unwrap_or_default();
            (Code::InvalidFormat, ParseDurationError(text).to_string())
        }
        other => (
            Code::InvalidType,
            format!("{} is not valid here: {other:?}", shown()),
        ),
    };
    reporter.report(code, &path, message);
    true
}

fn is_duration_schema(schema: &Schema, schema_path: &str) -> bool {
    schema
        .schema
        .pointer(schema_path.trim_end_matches("/anyOf"))
        .and_then(|s| s.get("x-kubernetes-int-or-string"))
        .is_some()
}

fn pattern_message(pattern: &str, shown: &str) -> String {
    if pattern == DOMAIN_PATTERN {
        format!(
            "{shown} is not a valid domain: use lowercase letters, digits, '-' and '_', \
             start with a letter, at most 63 characters"
        )
    } else {
        format!("{shown} does not match the pattern {pattern}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Definition;

    fn load(text: &str) -> (Option<Definition>, Vec<Finding>) {
        static SCHEMA: SchemaCell = SchemaCell::new();
        let mut findings = Vec::new();
        let loaded =
            from_text::<Definition>(SCHEMA.get::<Definition>(), "d.yaml", text, &mut findings);
        (loaded.value, findings)
    }

    #[test]
    fn schema_has_no_null_alternatives_and_closes_objects() {
        let schema = Schema::for_type::<Definition>();
        let text = schema.as_value().to_string();
        assert!(!text.contains("\"null\""), "{text}");
        assert_eq!(schema.as_value()["additionalProperties"], false);
    }

    #[test]
    fn coerces_scalars_where_strings_belong() {
        let (def, findings) = load(
            "domain: orders\nversion: 1.0.0\npages:\n- id: p\n  title: 42\n  route: /p\n  layout: detail\n  sections:\n  - fields:\n    - field: x\n      read_only: true\n",
        );
        assert!(findings.is_empty(), "{findings:?}");
        let def = def.unwrap();
        assert_eq!(def.pages[0].title, "42");
        assert_eq!(
            def.pages[0].sections[0].fields[0].read_only.as_deref(),
            Some("true")
        );
    }

    #[test]
    fn reports_all_structural_problems_with_positions() {
        let (def, findings) =
            load("domain: Orders\nversion: ''\npages:\n- id: p\n  layout: grid\n  colour: red\n");
        assert!(def.is_none());
        let got: Vec<String> = findings.iter().map(ToString::to_string).collect();
        let expected = [
            "d.yaml:1:9: error[INVALID_FORMAT] domain: \"Orders\" is not a valid domain",
            "d.yaml:2:10: error[MISSING_FIELD] version: must not be empty",
            "d.yaml:4:3: error[MISSING_FIELD] pages[0].title: required field \"title\" is missing",
            "d.yaml:4:3: error[MISSING_FIELD] pages[0].route: required field \"route\" is missing",
            "d.yaml:5:11: error[INVALID_ENUM] pages[0].layout: \"grid\" is not one of: table, list, detail, form, dashboard, custom",
            "d.yaml:6:3: warning[UNKNOWN_FIELD] pages[0].colour: unknown field \"colour\" is ignored",
        ];
        for want in expected {
            assert!(
                got.iter().any(|g| g.starts_with(want)),
                "missing {want:?} in {got:#?}"
            );
        }
    }

    #[test]
    fn unknown_fields_alone_do_not_block() {
        let (def, findings) = load(
            "domain: orders\nversion: 1.0.0\nnavigation:\n  label: Orders\n  colour: red\n  capabilites: []\n",
        );
        assert!(def.is_some());
        assert_eq!(findings.len(), 2);
        assert!(
            findings
                .iter()
                .any(|f| f.message.contains("did you mean \"capabilities\"")),
            "{findings:?}"
        );
    }

    #[test]
    fn reads_yaml_1_1_booleans_in_boolean_fields() {
        let (def, findings) = load(
            "domain: orders\nversion: 1.0.0\npages:\n- id: p\n  title: P\n  route: /p\n  layout: detail\n  sections:\n  - collapsible: yes\n    collapsed: off\n    title: no\n",
        );
        assert!(findings.is_empty(), "{findings:?}");
        let section = &def.unwrap().pages[0].sections[0];
        assert!(section.collapsible && !section.collapsed);
        assert_eq!(section.title.as_deref(), Some("no"));
    }

    #[test]
    fn bounds_32_bit_integers() {
        let (_, findings) =
            load("domain: orders\nversion: 1.0.0\nnavigation: {label: O, order: 3000000000}\n");
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].code, Code::OutOfRange);
        assert_eq!(findings[0].path, "navigation.order");
    }

    #[test]
    fn lists_at_most_a_hundred_unknown_fields() {
        let keys: String = (0..150).map(|i| format!("  k{i}: 1\n")).collect();
        let (def, findings) = load(&format!(
            "domain: orders\nversion: 1.0.0\nnavigation:\n  label: O\n{keys}"
        ));
        assert!(def.is_some());
        assert_eq!(findings.len(), 101);
        assert_eq!(
            findings[100].message,
            "150 unknown fields in all; only the first 100 are listed"
        );
    }

    #[test]
    fn reports_bad_durations_and_ranges() {
        let (_, findings) = load(
            "domain: orders\nversion: 1.0.0\nlookups:\n- id: l\n  operation: {operation_id: x}\n  label_field: a\n  value_field: b\n  cache: {ttl: 5 minutes, scope: planet}\n",
        );
        let codes: Vec<_> = findings.iter().map(|f| (f.code, f.path.as_str())).collect();
        assert!(
            codes.contains(&(Code::InvalidFormat, "lookups[0].cache.ttl")),
            "{findings:?}"
        );
        assert!(
            codes.contains(&(Code::InvalidEnum, "lookups[0].cache.scope")),
            "{findings:?}"
        );
    }

    #[test]
    fn reads_json_values_without_positions() {
        static SCHEMA: SchemaCell = SchemaCell::new();
        let mut findings = Vec::new();
        let value =
            serde_json::json!({"domain": "orders", "version": "1.0.0", "pages": [{"id": "p"}]});
        let def = from_value::<Definition>(
            SCHEMA.get::<Definition>(),
            "ns/orders",
            value,
            &mut findings,
        );
        assert!(def.is_none());
        assert!(
            findings
                .iter()
                .all(|f| f.line.is_none() && f.source == "ns/orders")
        );
        assert_eq!(findings[0].path, "pages[0].title");
    }
}
