//! Probes: `/ui/health` (liveness: the process answers; no dependencies)
//! and `/ui/ready` (readiness: every dependency, as the deployment guide's
//! JSON shows).
//!
//! Readiness is 503 (`not_ready`) when a critical check fails: the
//! definitions, the OpenAPI index, the identity provider's keys (never
//! loaded) or the policy engine; without them no request can be answered
//! correctly. The workflow, idempotency and rate limit stores
//! and the metrics backend of analytics are not critical: when one fails,
//! the BFF is `degraded` and still answers 200, because navigation, pages
//! and forms keep working (the guide's "Workflow Store Unavailable"
//! runbook). During shutdown readiness
//! is 503 (`shutting_down`), for probes on connections still open while the
//! listener is closed.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use crate::state::{AppState, BUILD};

/// `GET /ui/health`.
pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok", "version": BUILD.version, "commit": BUILD.commit }))
}

/// One check of the readiness answer.
#[derive(Debug, Serialize)]
struct Check {
    status: &'static str,
    #[serde(flatten)]
    detail: Value,
}

impl Check {
    fn ok(detail: Value) -> Self {
        Self {
            status: "ok",
            detail,
        }
    }

    fn error(error: String) -> Self {
        Self {
            status: "error",
            detail: json!({ "error": error }),
        }
    }
}

/// `GET /ui/ready`.
pub async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let registry = state.registry.load();
    let mut checks = serde_json::Map::new();
    let mut critical_failed = false;

    let definitions = Check::ok(json!({
        "count": registry.definitions().len(),
        "checksum": format!("sha256:{}", registry.checksum()),
    }));
    checks.insert("definitions".into(), json!(definitions));
    checks.insert(
        "openapi_index".into(),
        json!(Check::ok(
            json!({ "operations": state.index.operation_count() })
        )),
    );

    let identity = if state.auth.has_keys() {
        Check::ok(json!({}))
    } else {
        critical_failed = true;
        Check::error("no signing keys loaded from the identity provider yet".into())
    };
    checks.insert("identity".into(), json!(identity));

    // The probe is public: the answer names the failure, the log has the
    // details (URLs may carry credentials).
    let policy = if let Some(evaluator) = state.capabilities.remote() {
        let started = Instant::now();
        match state.capabilities.check().await {
            Ok(()) => Check::ok(json!({
                "evaluator": evaluator,
                "latency_ms": started.elapsed().as_millis() as u64,
            })),
            Err(err) => {
                critical_failed = true;
                tracing::warn!(error = %err, "readiness: policy engine check failed");
                Check::error("the policy engine did not answer its health check".into())
            }
        }
    } else {
        Check::ok(json!({ "evaluator": "static" }))
    };
    checks.insert("policy_engine".into(), json!(policy));

    // Stores are not critical: without them navigation, pages and forms
    // still work (the guide's runbook), so a failing store is "degraded".
    let mut degraded = false;
    if state.config.workflow.enabled {
        let store = &state.workflows;
        let check = match store.ping().await {
            Ok(latency) => Check::ok(json!({
                "driver": store.driver(),
                "latency_ms": latency.as_millis() as u64,
            })),
            Err(err) => {
                degraded = true;
                tracing::warn!(error = %err, "readiness: workflow store check failed");
                Check::error("the workflow store does not answer".into())
            }
        };
        checks.insert("workflow_store".into(), json!(check));
    }
    if let Some(store) = &state.idempotency {
        let check = match store.check().await {
            (driver, Ok(latency)) => Check::ok(json!({
                "driver": driver,
                "latency_ms": latency.as_millis() as u64,
            })),
            (_, Err(err)) => {
                degraded = true;
                tracing::warn!(error = %err, "readiness: idempotency store check failed");
                Check::error("the idempotency store does not answer".into())
            }
        };
        checks.insert("idempotency_store".into(), json!(check));
    }

    if let Some(limiter) = state.rate_limits.as_ref().filter(|l| l.driver() == "redis") {
        let check = match limiter.ping().await {
            Ok(latency) => Check::ok(json!({
                "driver": limiter.driver(),
                "latency_ms": latency.as_millis() as u64,
            })),
            Err(err) => {
                degraded = true;
                tracing::warn!(error = %err, "readiness: rate limit store check failed");
                Check::error("the rate limit store does not answer".into())
            }
        };
        checks.insert("rate_limit_store".into(), json!(check));
    }

    // Like the stores, the metrics backend serves one feature (analytics):
    // when it fails, the rest still works.
    if state.analytics.is_configured() {
        let started = Instant::now();
        let check = match state.analytics.ping().await {
            Ok(()) => Check::ok(json!({ "latency_ms": started.elapsed().as_millis() as u64 })),
            Err(err) => {
                degraded = true;
                tracing::warn!(error = %err, "readiness: metrics backend check failed");
                Check::error("the metrics backend (analytics) does not answer".into())
            }
        };
        checks.insert("metrics_backend".into(), json!(check));
    }

    let (status, code) = if state.draining.load(Ordering::Relaxed) {
        ("shutting_down", StatusCode::SERVICE_UNAVAILABLE)
    } else if critical_failed {
        ("not_ready", StatusCode::SERVICE_UNAVAILABLE)
    } else if degraded {
        ("degraded", StatusCode::OK)
    } else {
        ("ready", StatusCode::OK)
    };
    (code, Json(json!({ "status": status, "checks": checks }))).into_response()
}
