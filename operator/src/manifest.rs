//! Manifests as text: the CRDs and YAML output in a stable form.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use serde::Serialize;
use serde_json::{Value, json};

use crate::crd::{ThesaDefinition, ThesaDeployment};

/// The CustomResourceDefinitions, each with the file it is kept in under
/// `crds/`.
pub fn crds() -> Vec<(&'static str, CustomResourceDefinition)> {
    vec![
        (
            "thesadefinitions.thesa.io.yaml",
            structural(ThesaDefinition::crd()),
        ),
        (
            "thesadeployments.thesa.io.yaml",
            structural(ThesaDeployment::crd()),
        ),
    ]
}

/// Brings a derived CRD schema into the form the API server accepts and
/// that keeps defaults in one place (the operator and the BFF):
/// - no `default` keyword: the API server would otherwise write every
///   compiled default of the BFF config into stored objects, and they would
///   go stale when the defaults change;
/// - integer-or-string fields use exactly the `anyOf` the structural-schema
///   rules allow (durations are checked by the validator instead);
/// - a field of any JSON type (a condition's `value`), or a string that may
///   also be written as a boolean or number, preserves its value.
fn structural(crd: CustomResourceDefinition) -> CustomResourceDefinition {
    let Ok(mut value) = serde_json::to_value(&crd) else {
        return crd;
    };
    if let Some(versions) = value
        .pointer_mut("/spec/versions")
        .and_then(Value::as_array_mut)
    {
        for version in versions {
            if let Some(schema) = version.pointer_mut("/schema/openAPIV3Schema") {
                normalize(schema);
            }
        }
    }
    serde_json::from_value(value).unwrap_or(crd)
}

fn normalize(schema: &mut Value) {
    let Some(node) = schema.as_object_mut() else {
        return;
    };
    node.remove("default");
    // A string the definition format also accepts as a boolean or number
    // (`read_only: true`), as Thesa's loader does: the API server keeps the
    // value as written and the validator checks it.
    // (Marked with a format of its own: the CRD schema type keeps no custom
    // keywords.)
    if node.get("format").and_then(Value::as_str) == Some("thesa-any-scalar") {
        node.retain(|k, _| k == "description");
        node.insert(
            "x-kubernetes-preserve-unknown-fields".into(),
            Value::Bool(true),
        );
        return;
    }
    if node.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        node.insert(
            "anyOf".into(),
            json!([{ "type": "integer" }, { "type": "string" }]),
        );
        return;
    }
    let typed = [
        "type",
        "anyOf",
        "allOf",
        "oneOf",
        "x-kubernetes-preserve-unknown-fields",
    ]
    .iter()
    .any(|k| node.contains_key(*k));
    if !typed {
        node.insert(
            "x-kubernetes-preserve-unknown-fields".into(),
            Value::Bool(true),
        );
    }
    for key in ["items", "additionalProperties"] {
        if let Some(child) = node.get_mut(key) {
            normalize(child);
        }
    }
    if let Some(Value::Object(properties)) = node.get_mut("properties") {
        properties.values_mut().for_each(normalize);
    }
    for key in ["anyOf", "allOf", "oneOf"] {
        if let Some(Value::Array(branches)) = node.get_mut(key) {
            branches.iter_mut().for_each(normalize);
        }
    }
}

/// Writes `value` as one YAML document starting with `---`.
///
/// # Errors
/// When `value` cannot be represented as YAML (not the case for the types
/// used here, whose maps have string keys).
pub fn to_yaml<T: Serialize>(value: &T) -> Result<String, serde_saphyr::ser_error::Error> {
    let body = serde_saphyr::to_string(value)?;
    let newline = if body.ends_with('\n') { "" } else { "\n" };
    Ok(format!("---\n{body}{newline}"))
}

/// A JSON value as YAML text without the document marker, for files in a
/// ConfigMap: block style; a string is written plain where YAML reads it
/// back as the same string, double-quoted (JSON escapes, which YAML
/// shares) otherwise. Written here because both YAML writers at hand spend
/// 200–270 µs on one definition where this takes a sixth of that, and a
/// thousand definitions at start-up were most of a first reconcile.
pub fn to_yaml_body(value: &Value) -> String {
    let mut out = String::with_capacity(4096);
    match value {
        Value::Object(map) if !map.is_empty() => write_map(map, 0, &mut out),
        Value::Array(items) if !items.is_empty() => write_seq(items, 0, &mut out),
        scalar => {
            write_scalar(scalar, &mut out);
            out.push('\n');
        }
    }
    out
}

fn indent(depth: usize, out: &mut String) {
    out.extend(std::iter::repeat_n(' ', depth * 2));
}

fn write_map(map: &serde_json::Map<String, Value>, depth: usize, out: &mut String) {
    for (i, (key, value)) in map.iter().enumerate() {
        // The first key of a sequence item shares the item's line.
        if i > 0 || depth == 0 || !out.ends_with("- ") {
            indent(depth, out);
        }
        write_string(key, out);
        out.push(':');
        write_value(value, depth, out);
    }
}

fn write_seq(items: &[Value], depth: usize, out: &mut String) {
    for item in items {
        indent(depth, out);
        out.push_str("- ");
        match item {
            Value::Object(map) if !map.is_empty() => write_map(map, depth + 1, out),
            Value::Array(inner) if !inner.is_empty() => {
                out.push('\n');
                write_seq(inner, depth + 1, out);
            }
            scalar => {
                write_scalar(scalar, out);
                out.push('\n');
            }
        }
    }
}

/// The value after `key:` (the key at `depth`): a scalar on the same
/// line, a map indented below, a sequence below at the key's own
/// indentation (the compact form).
fn write_value(value: &Value, depth: usize, out: &mut String) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            write_map(map, depth + 1, out);
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            write_seq(items, depth, out);
        }
        scalar => {
            out.push(' ');
            write_scalar(scalar, out);
            out.push('\n');
        }
    }
}

fn write_scalar(value: &Value, out: &mut String) {
    match value {
        Value::String(text) => write_string(text, out),
        Value::Object(_) => out.push_str("{}"),
        Value::Array(_) => out.push_str("[]"),
        other => out.push_str(&other.to_string()),
    }
}

fn write_string(text: &str, out: &mut String) {
    if is_plain(text) {
        out.push_str(text);
    } else {
        out.push_str(&serde_json::to_string(text).unwrap_or_default());
    }
}

/// Whether YAML (1.1 or 1.2) reads `text` unquoted as this very string:
/// printable ASCII starting with a letter, `/` or `_` (so never a number
/// nor an indicator), no `: ` or ` #`, not ending in a space or `:`, not a
/// word YAML 1.1 reads as a boolean or null, nor infinity or NaN.
fn is_plain(text: &str) -> bool {
    let bytes = text.as_bytes();
    let Some(&first) = bytes.first() else {
        return false;
    };
    let safe = |b: &u8| (b' '..=b'~').contains(b);
    (first.is_ascii_alphabetic() || first == b'/' || first == b'_')
        && bytes.iter().all(safe)
        && !text.ends_with([' ', ':'])
        && !text.contains(": ")
        && !text.contains(" #")
        && !(text.len() <= 8
            && [
                "y", "n", "yes", "no", "true", "false", "on", "off", "null", "inf", "infinity",
                "nan",
            ]
            .iter()
            .any(|word| text.eq_ignore_ascii_case(word)))
}

/// The CRD reference (`docs/crd-reference.md`): for each CRD its names and
/// printer columns, then every field with its type and its documentation
/// (the doc comments of the Rust types, as `kubectl explain` shows them).
pub fn reference() -> String {
    let mut out = String::from(
        "# CRD reference\n\nGenerated from the Rust types by `thesa-operator crds --dir crds \
         --reference docs/crd-reference.md` (`make crds`); a test keeps it current. \
         `kubectl explain` shows the same text.\n",
    );
    for (_, crd) in crds() {
        let spec = &crd.spec;
        let names = &spec.names;
        out.push_str(&format!("\n## {}\n\n", names.kind));
        out.push_str(&format!(
            "`{}/{}`, {}; plural `{}`, short names {}.\n",
            spec.group,
            spec.versions
                .first()
                .map(|v| v.name.as_str())
                .unwrap_or_default(),
            if spec.scope == "Namespaced" {
                "namespaced"
            } else {
                "cluster-scoped"
            },
            names.plural,
            names
                .short_names
                .iter()
                .flatten()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        let Some(version) = spec.versions.first() else {
            continue;
        };
        let columns: Vec<String> = version
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| format!("{} (`{}`)", c.name, c.json_path))
            .collect();
        if !columns.is_empty() {
            out.push_str(&format!("Printer columns: {}.\n", columns.join(", ")));
        }
        out.push_str("\n| field | type | description |\n| --- | --- | --- |\n");
        let schema = version
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .and_then(|s| serde_json::to_value(s).ok())
            .unwrap_or(Value::Null);
        for key in ["spec", "status"] {
            if let Some(field) = schema["properties"].get(key) {
                fields(key, field, &mut out);
            }
        }
    }
    out
}

fn fields(path: &str, schema: &Value, out: &mut String) {
    let kind = match schema["type"].as_str() {
        Some("array") => format!("[]{}", schema["items"]["type"].as_str().unwrap_or("object")),
        Some(t) => t.to_string(),
        None if schema["x-kubernetes-int-or-string"] == Value::Bool(true) => "int-or-string".into(),
        None => "any".into(),
    };
    let description = schema["description"]
        .as_str()
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|");
    out.push_str(&format!("| `{path}` | {kind} | {description} |\n"));
    let (children, prefix) = match schema["type"].as_str() {
        Some("array") => (&schema["items"]["properties"], format!("{path}[]")),
        _ => (&schema["properties"], path.to_string()),
    };
    if let Some(children) = children.as_object() {
        for (name, child) in children {
            fields(&format!("{prefix}.{name}"), child, out);
        }
    }
    if let Some(values) = schema["additionalProperties"].as_object() {
        fields(
            &format!("{prefix}.<key>"),
            &Value::Object(values.clone()),
            out,
        );
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::to_yaml_body;

    fn round_trip(value: &Value) {
        let text = to_yaml_body(value);
        let read = thesa_core::node::parse(&text)
            .unwrap_or_else(|e| panic!("{e:?} in\n{text}"))
            .to_json();
        assert_eq!(&read, value, "read back from\n{text}");
    }

    #[test]
    fn the_yaml_of_a_file_reads_back_as_the_same_value() {
        let tricky = [
            "",
            " ",
            "a ",
            " a",
            "yes",
            "No",
            "ON",
            "null",
            "~",
            "true",
            "1.5",
            "0x1F",
            "1e3",
            "12",
            "-1",
            ".inf",
            "a: b",
            "a #b",
            "a:b",
            "orders:view",
            "x:",
            "- item",
            "[x]",
            "{x}",
            "*ref",
            "&anchor",
            "!tag",
            "%dir",
            "@at",
            "`tick`",
            "'single'",
            "\"double\"",
            "inf",
            "NaN",
            "Infinity",
            "y",
            "Off",
            "a{b}",
            "x?",
            "a [b]",
            "a, b: c",
            "a&b",
            "a*b",
            "a|b",
            "a>b",
            "a!b",
            "a%b",
            "a@b",
            "a=b",
            "a\"b",
            "a\\b",
            "a'b",
            "a`b",
            "a~",
            "a#b",
            "back\\slash",
            "line\nbreak",
            "tab\there",
            "é ünïcode",
            "emoji 🚀",
            "/orders/{id}",
            "input.id",
            "it's",
            "a, b",
            "(x)",
            "#hash",
            "?q",
            "|pipe",
            ">fold",
            "=eq",
        ];
        for text in tricky {
            round_trip(&json!({ "value": text, text: 1, "list": [text, [text], {text: text}] }));
        }
        round_trip(&json!({
            "b": false, "i": -3, "f": 2.5, "empty_map": {}, "empty_list": [],
            "nested": [[1, 2], [], [{}], [{"a": [{"b": "c"}]}]],
        }));
    }

    #[test]
    fn the_samples_read_back_as_themselves() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../definitions");
        for domain in ["orders", "inventory", "customers"] {
            let text =
                std::fs::read_to_string(root.join(domain).join("definition.yaml")).expect("sample");
            round_trip(&thesa_core::node::parse(&text).expect("parse").to_json());
        }
    }
}
