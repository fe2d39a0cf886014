//! Sample backends: one HTTP server per service, answering every operation
//! of its OpenAPI spec from in-memory data seeded from the spec's schemas
//! (lists that page, sort, filter and search; records to read; commands and
//! creates that change what the lists show; errors on request). `make run`
//! starts them for the samples (`thesa-bff serve --sample-backends`), and
//! `thesa-bff preview` for any definition set. Not for production: the
//! data lives in memory and anyone may change it.
//!
//! Asking for an error: any string value `fail:CODE` in a request body
//! (a command's input) makes the backend answer 409 with a problem whose
//! `code` is CODE, so a definition's `error_map` can be seen at work.

mod extras;
mod values;
mod world;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use thesa_core::openapi::SpecInput;

pub use world::World;

/// The shared data and the service a server answers for.
#[derive(Clone)]
struct Backend {
    world: Arc<Mutex<World>>,
    service: String,
}

/// Parses the spec texts (service ID → text).
pub fn world(specs: &[SpecInput]) -> Result<World, String> {
    let mut parsed = BTreeMap::new();
    for spec in specs {
        let node = thesa_core::node::parse(&spec.text)
            .map_err(|e| format!("sample backends: {}: {e}", spec.source))?;
        parsed.insert(spec.service_id.clone(), node.to_json());
    }
    Ok(World::new(parsed))
}

/// The router answering for `service` from `world`.
pub fn router(world: Arc<Mutex<World>>, service: &str) -> axum::Router {
    axum::Router::new().fallback(answer).with_state(Backend {
        world,
        service: service.to_string(),
    })
}

/// Starts one server per `(service, listener)` pair; they stop with the
/// runtime.
pub fn spawn(world: World, listeners: Vec<(String, tokio::net::TcpListener)>) {
    let world = Arc::new(Mutex::new(world));
    for (service, listener) in listeners {
        let app = router(world.clone(), &service);
        tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app).await {
                tracing::error!(service, error = %err, "sample backend stopped");
            }
        });
    }
}

async fn answer(State(backend): State<Backend>, method: Method, uri: Uri, body: Bytes) -> Response {
    let query: Vec<(String, String)> = uri
        .query()
        .map(|q| {
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (decode(k), decode(v))
                })
                .collect()
        })
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (status, value) = match backend.world.lock() {
        Ok(mut world) => world.handle(&backend.service, method.as_str(), uri.path(), &query, &body),
        Err(_) => (500, Value::Null),
    };
    tracing::debug!(service = backend.service, %method, uri = %uri, status, "sample backend answered");
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    if value.is_null() {
        return status.into_response();
    }
    let content_type = if status.is_success() {
        "application/json"
    } else {
        "application/problem+json"
    };
    (
        status,
        [(header::CONTENT_TYPE, content_type)],
        value.to_string(),
    )
        .into_response()
}

fn decode(text: &str) -> String {
    percent_encoding::percent_decode_str(&text.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// Starts a sample backend for every spec whose service's `base_url` is a
/// local address (`http://127.0.0.1:PORT`, `http://localhost:PORT`).
///
/// # Errors
/// A spec that does not parse, a service with a remote `base_url`, or a
/// port that cannot be bound.
pub async fn start(config: &thesa_core::config::Config, specs: &[SpecInput]) -> Result<(), String> {
    let world = world(specs)?;
    let mut listeners = Vec::new();
    for spec in specs {
        let Some(service) = config.services.get(&spec.service_id) else {
            tracing::warn!(
                service = spec.service_id,
                "no services entry: no sample backend started"
            );
            continue;
        };
        let address = local_address(&service.base_url).ok_or_else(|| {
            format!(
                "services.{}.base_url {:?} is not http://127.0.0.1:PORT or http://localhost:PORT; sample backends listen only there",
                spec.service_id, service.base_url
            )
        })?;
        let listener = tokio::net::TcpListener::bind(&address).await.map_err(|e| {
            format!(
                "sample backend for {}: cannot listen on {address}: {e}",
                spec.service_id
            )
        })?;
        tracing::info!(
            service = spec.service_id,
            address,
            "sample backend listening"
        );
        listeners.push((spec.service_id.clone(), listener));
    }
    spawn(world, listeners);

    // The files service and the analytics API, when the config points them
    // at a local address nothing else serves.
    let files = &config.files;
    if let Some(service) = config.services.get(&files.service)
        && !specs.iter().any(|s| s.service_id == files.service)
        && let Some(address) = local_address(&service.base_url)
    {
        let app = extras::files_router(&files.upload_path, &files.download_path);
        serve_extra("files", &address, app).await?;
    }
    if let Some(address) = config
        .analytics
        .prometheus_url
        .as_deref()
        .and_then(local_address)
    {
        serve_extra("prometheus", &address, extras::prometheus_router()).await?;
    }
    Ok(())
}

async fn serve_extra(what: &'static str, address: &str, app: axum::Router) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| format!("sample {what} service: cannot listen on {address}: {e}"))?;
    tracing::info!(service = what, address, "sample backend listening");
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            tracing::error!(service = what, error = %err, "sample backend stopped");
        }
    });
    Ok(())
}

/// `127.0.0.1:PORT` for a local `http://` base URL.
fn local_address(base_url: &str) -> Option<String> {
    let rest = base_url.strip_prefix("http://")?;
    let authority = rest.split('/').next()?;
    let (host, port) = authority.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    matches!(host, "127.0.0.1" | "localhost").then(|| format!("127.0.0.1:{port}"))
}
