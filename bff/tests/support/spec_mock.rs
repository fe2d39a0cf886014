//! A mock backend generated from OpenAPI specs: one server on 127.0.0.1
//! for every service, each under its own path prefix (`/<service id>`),
//! where every operation answers with a value shaped by its success
//! response schema (`$ref`s, `allOf`, objects, lists, enums and formats
//! followed). Values are made from the property names and the position in
//! lists (`name-0`, `name-1`, numbers 10, 11, ...), so a test can compute
//! what any operation answers with [`sample_response`] and compare the
//! BFF's answer field by field. Every request is recorded: path, query,
//! headers, JSON body.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use serde_json::{Map, Value, json};

/// One request the mock received.
#[derive(Debug, Clone)]
pub struct Received {
    /// The service, from the path prefix.
    pub service: String,
    /// The path below the prefix.
    pub path: String,
    /// The query string.
    pub query: String,
    /// The headers.
    pub headers: HeaderMap,
    /// The body as JSON (`null` when empty or not JSON).
    pub body: Value,
}

impl Received {
    /// A header's value, empty when absent.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

/// The running mock.
pub struct SpecMock {
    /// `http://127.0.0.1:port`; service `s` is at `{url}/s`.
    pub url: String,
    /// Every request, in order.
    pub received: Arc<Mutex<Vec<Received>>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl SpecMock {
    /// The requests to `service` whose path ends with `suffix`.
    pub fn requests(&self, service: &str, suffix: &str) -> Vec<Received> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.service == service && r.path.ends_with(suffix))
            .cloned()
            .collect()
    }
}

struct Shared {
    specs: BTreeMap<String, Value>,
    received: Arc<Mutex<Vec<Received>>>,
}

/// Starts the mock for `specs` (service ID → parsed spec).
pub async fn start(specs: BTreeMap<String, Value>) -> SpecMock {
    let received: Arc<Mutex<Vec<Received>>> = Arc::default();
    let shared = Arc::new(Shared {
        specs,
        received: received.clone(),
    });
    let router = axum::Router::new().fallback(answer).with_state(shared);
    let (url, stop) = crate::harness::serve(router).await;
    SpecMock {
        url,
        received,
        _stop: stop,
    }
}

async fn answer(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, axum::Json<Value>) {
    let full = uri.path().trim_start_matches('/');
    let (service, rest) = full.split_once('/').unwrap_or((full, ""));
    let path = format!("/{rest}");
    shared.received.lock().unwrap().push(Received {
        service: service.to_string(),
        path: path.clone(),
        query: uri.query().unwrap_or_default().to_string(),
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    let Some(spec) = shared.specs.get(service) else {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": "no such service"})),
        );
    };
    match sample_response(spec, method.as_str(), &path) {
        Some(value) => (StatusCode::OK, axum::Json(value)),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": format!("no operation {method} {path}")})),
        ),
    }
}

/// Whether `path` matches the template (`{x}` matches one segment).
fn matches(template: &str, path: &str) -> bool {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(t, p)| (t.starts_with('{') && t.ends_with('}')) || t == p)
}

/// What the mock answers to `method path` of `spec`: a sample of the
/// lowest 2xx response's JSON schema (`{}` without one); `None` when no
/// operation matches.
pub fn sample_response(spec: &Value, method: &str, path: &str) -> Option<Value> {
    let operation = spec["paths"]
        .as_object()?
        .iter()
        .find(|(template, _)| matches(template, path))?
        .1
        .get(method.to_ascii_lowercase())?;
    Some(operation_sample(spec, operation))
}

/// The sample answer of the operation `operation_id` of `spec`.
pub fn sample_of(spec: &Value, operation_id: &str) -> Value {
    let operation = spec["paths"]
        .as_object()
        .into_iter()
        .flat_map(|paths| paths.values())
        .filter_map(Value::as_object)
        .flat_map(|item| item.values())
        .find(|op| op["operationId"] == operation_id)
        .unwrap_or_else(|| panic!("no operation {operation_id}"));
    operation_sample(spec, operation)
}

fn operation_sample(spec: &Value, operation: &Value) -> Value {
    let responses = operation["responses"].as_object();
    let mut codes: Vec<&String> = responses
        .into_iter()
        .flat_map(|r| r.keys())
        .filter(|c| c.starts_with('2'))
        .collect();
    codes.sort();
    codes
        .first()
        .and_then(|code| {
            let schema =
                &operation["responses"][code.as_str()]["content"]["application/json"]["schema"];
            (!schema.is_null()).then(|| sample(spec, schema, "value", 0, 0))
        })
        .unwrap_or_else(|| json!({}))
}

/// A value for `schema`: `name` is the property it is for, `index` its
/// position in the nearest list.
pub fn sample(spec: &Value, schema: &Value, name: &str, index: usize, depth: usize) -> Value {
    if depth > 12 {
        return Value::Null;
    }
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let target = reference
            .strip_prefix('#')
            .and_then(|pointer| spec.pointer(pointer))
            .unwrap_or(&Value::Null);
        return sample(spec, target, name, index, depth + 1);
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        let mut merged = Map::new();
        for part in all {
            if let Value::Object(object) = sample(spec, part, name, index, depth + 1) {
                merged.extend(object);
            }
        }
        return Value::Object(merged);
    }
    if let Some(first) = schema.get("enum").and_then(|e| e.get(0)) {
        return first.clone();
    }
    let kind = schema
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_else(|| {
            if schema.get("properties").is_some() {
                "object"
            } else {
                "string"
            }
        });
    match kind {
        "object" => {
            let mut object = Map::new();
            for (key, property) in schema["properties"].as_object().into_iter().flatten() {
                object.insert(key.clone(), sample(spec, property, key, index, depth + 1));
            }
            if let Some(extra) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                object.insert("key".into(), sample(spec, extra, "key", index, depth + 1));
            }
            Value::Object(object)
        }
        "array" => Value::Array(
            (0..2)
                .map(|i| sample(spec, &schema["items"], name, i, depth + 1))
                .collect(),
        ),
        "integer" => json!(10 + index),
        "number" => json!(1.5 + index as f64),
        "boolean" => json!(true),
        _ => match schema.get("format").and_then(Value::as_str) {
            Some("date-time") => json!(format!("2026-01-0{}T10:00:00Z", index + 1)),
            _ => json!(format!("{name}-{index}")),
        },
    }
}
