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
/// ConfigMap.
pub fn to_yaml_body(value: &Value) -> String {
    serde_saphyr::to_string(value).unwrap_or_else(|_| value.to_string())
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
