//! The two services `make run` needs besides the specs' backends: a files
//! service (upload and download, bytes in memory) for `/ui/upload` and
//! `/ui/download/{id}`, and a Prometheus-compatible query API for the
//! admin console's analytics, answering every query with a few plausible
//! series (one per value of the label a `by (label)` groups on).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// A stored file: name, content type, bytes.
type Stored = (String, String, Bytes);

/// The files service: `POST upload_path` (multipart, first file part
/// kept), `GET download_path` with `{id}`.
pub fn files_router(upload_path: &str, download_path: &str) -> axum::Router {
    let store: Arc<Mutex<HashMap<String, Stored>>> = Arc::default();
    axum::Router::new()
        .route(upload_path, post(upload))
        .route(download_path, get(download))
        .with_state(store)
}

async fn upload(
    State(store): State<Arc<Mutex<HashMap<String, Stored>>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let Some(boundary) = content_type
        .split("boundary=")
        .nth(1)
        .map(|b| b.trim_matches('"').to_string())
    else {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            axum::Json(json!({"code": "NOT_MULTIPART"})),
        )
            .into_response();
    };
    let (name, part_type, bytes) = first_part(&body, &boundary).unwrap_or_else(|| {
        (
            "upload.bin".into(),
            "application/octet-stream".into(),
            body.clone(),
        )
    });
    let Ok(mut files) = store.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let id = format!("file-{}", files.len() + 1);
    let size = bytes.len();
    files.insert(id.clone(), (name.clone(), part_type.clone(), bytes));
    (
        StatusCode::CREATED,
        axum::Json(json!({"id": id, "name": name, "size": size, "content_type": part_type})),
    )
        .into_response()
}

/// The first part of a multipart body: file name, content type, bytes.
fn first_part(body: &[u8], boundary: &str) -> Option<(String, String, Bytes)> {
    let delimiter = format!("--{boundary}");
    let start = find(body, delimiter.as_bytes())? + delimiter.len();
    let headers_end = start + find(&body[start..], b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&body[start..headers_end]).to_string();
    let content_start = headers_end + 4;
    let end = content_start
        + find(
            &body[content_start..],
            format!("\r\n{delimiter}").as_bytes(),
        )?;
    let name = head
        .split("filename=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or("upload.bin")
        .to_string();
    let part_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type:")
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_else(|| "application/octet-stream".into());
    Some((
        name,
        part_type,
        Bytes::copy_from_slice(&body[content_start..end]),
    ))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

async fn download(
    State(store): State<Arc<Mutex<HashMap<String, Stored>>>>,
    Path(id): Path<String>,
) -> Response {
    let found = store.lock().ok().and_then(|files| files.get(&id).cloned());
    match found {
        Some((name, content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, content_type),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{name}\""),
                ),
            ],
            bytes,
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"code": "FILE_NOT_FOUND"})),
        )
            .into_response(),
    }
}

/// The Prometheus query API: `/api/v1/query` and `/api/v1/query_range`.
pub fn prometheus_router() -> axum::Router {
    axum::Router::new()
        .route("/api/v1/query", get(instant).post(instant))
        .route("/api/v1/query_range", get(range).post(range))
}

/// Label values of the series a query answers: `by (status)` gives three.
fn series_labels(query: &str) -> Vec<Value> {
    let label = query
        .split("by (")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .map(|l| l.split(',').next().unwrap_or_default().trim().to_string())
        .filter(|l| !l.is_empty());
    match label {
        Some(label) => ["alpha", "beta", "gamma"]
            .iter()
            .map(|v| json!({ label.clone(): format!("{label}-{v}") }))
            .collect(),
        None => vec![json!({})],
    }
}

fn sample(series: usize, at: f64) -> String {
    format!(
        "{:.2}",
        40.0 + 25.0 * series as f64 + 10.0 * ((at / 3600.0) + series as f64).sin()
    )
}

async fn instant(Query(params): Query<HashMap<String, String>>) -> axum::Json<Value> {
    let query = params.get("query").cloned().unwrap_or_default();
    let at: f64 = params
        .get("time")
        .and_then(|t| t.parse().ok())
        .unwrap_or(1_795_600_800.0);
    let result: Vec<Value> = series_labels(&query)
        .into_iter()
        .enumerate()
        .map(|(i, metric)| json!({"metric": metric, "value": [at, sample(i, at)]}))
        .collect();
    axum::Json(json!({"status": "success", "data": {"resultType": "vector", "result": result}}))
}

async fn range(Query(params): Query<HashMap<String, String>>) -> axum::Json<Value> {
    let query = params.get("query").cloned().unwrap_or_default();
    let number = |k: &str, d: f64| {
        params
            .get(k)
            .and_then(|v| v.trim_end_matches('s').parse().ok())
            .unwrap_or(d)
    };
    let end = number("end", 1_795_600_800.0);
    let step = number("step", 3600.0).max(1.0);
    let start = number("start", end - 24.0 * step).max(end - 500.0 * step);
    let result: Vec<Value> = series_labels(&query)
        .into_iter()
        .enumerate()
        .map(|(i, metric)| {
            let mut values = Vec::new();
            let mut t = start;
            while t <= end {
                values.push(json!([t, sample(i, t)]));
                t += step;
            }
            json!({"metric": metric, "values": values})
        })
        .collect();
    axum::Json(json!({"status": "success", "data": {"resultType": "matrix", "result": result}}))
}
