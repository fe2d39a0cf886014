//! The middleware chain, outermost first, in the order of Thesa's
//! deployment guide — recovery → CORS → request ID → auth → context →
//! timeout → logging → metrics → tracing → handler — with one change:
//! logging and metrics sit right after the request ID, outside auth,
//! context and timeout, so that rejected (401, 403), unavailable (503) and
//! timed-out (504) requests are logged and counted too; inside, they would
//! never see those answers.
//!
//! The timeout step also bounds reading the request body by
//! `server.read_timeout`. `server.write_timeout` is accepted but not
//! enforced: hyper has no write timeout, and `handler_timeout` bounds the
//! handlers.
//!
//! Outside the chain, every answer gets the security headers; inside the
//! metrics, request bodies are limited (see `limits`).
//!
//! The layers run after routing (`Router::layer`), so each one sees the
//! matched route pattern; the public routes (`/ui/health`, `/ui/ready`,
//! `/healthz` for probes written for Thesa, the metrics path) pass auth and
//! context untouched.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use futures::FutureExt;
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::map_request_body::MapRequestBodyLayer;
use tower_http::timeout::RequestBodyTimeoutLayer;
use tracing::Instrument;

use crate::access::Caller;
use crate::access::auth::Principal;
use crate::error::{ApiError, CORRELATION_ID, TRACE_ID};
use crate::http::limits;
use crate::metrics::{ReasonLabel, ResponseLabels, RouteLabels};
use crate::state::AppState;
use thesa_core::config::CorsConfig;

/// The header carrying the correlation ID in and out.
pub const CORRELATION_HEADER: HeaderName = HeaderName::from_static("x-correlation-id");
/// The header narrowing the partition.
pub const PARTITION_HEADER: HeaderName = HeaderName::from_static("x-partition-id");

/// The request's correlation ID (the client's, when it sent a usable one).
#[derive(Debug, Clone)]
pub struct CorrelationId(pub String);

/// Wraps `router` in the chain; an error names a CORS setting that is
/// not a valid origin, method or header.
pub fn apply(
    router: Router<Arc<AppState>>,
    state: &Arc<AppState>,
) -> Result<Router<Arc<AppState>>, String> {
    Ok(router.layer(
        ServiceBuilder::new()
            .layer(limits::nosniff())
            .layer(limits::frame_options())
            .layer(limits::hsts(&state.config.server.hsts))
            .layer(from_fn(limits::no_store))
            .layer(from_fn(recovery))
            .layer(cors(&state.config.server.cors)?)
            .layer(from_fn(request_id))
            .layer(from_fn(trace))
            .layer(from_fn(logging))
            .layer(from_fn_with_state(state.clone(), metrics))
            .layer(from_fn_with_state(state.clone(), limits::request_body))
            .layer(limits::default_body_limit(&state.config.server))
            .layer(from_fn_with_state(state.clone(), authenticate))
            .layer(from_fn_with_state(state.clone(), context))
            .layer(from_fn_with_state(state.clone(), timeout))
            .layer(RequestBodyTimeoutLayer::new(
                state.config.server.read_timeout.get(),
            ))
            .layer(MapRequestBodyLayer::new(axum::body::Body::new)),
    ))
}

/// A correlation ID from the client is kept when it is short and plain;
/// anything else is replaced, so logs cannot be forged through it.
fn usable_correlation_id(value: &HeaderValue) -> Option<String> {
    let text = value.to_str().ok()?;
    let plain = !text.is_empty()
        && text.len() <= 128
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    plain.then(|| text.to_string())
}

/// Turns a panic in any inner layer or handler into a 500 with the error
/// shape. It also settles the correlation ID, so that even this response
/// carries it.
async fn recovery(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&CORRELATION_HEADER)
        .and_then(usable_correlation_id)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    request.extensions_mut().insert(CorrelationId(id.clone()));
    match AssertUnwindSafe(next.run(request)).catch_unwind().await {
        Ok(response) => response,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(ToString::to_string)
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(correlation_id = %id, panic = %message, "handler panicked");
            let mut response = ApiError::internal().response_with(id.clone());
            echo_correlation_id(&mut response, &id);
            response
        }
    }
}

/// The CORS layer of `server.cors`; `*` in `allowed_origins` allows any
/// origin.
fn cors(config: &CorsConfig) -> Result<CorsLayer, String> {
    fn parsed<T>(
        key: &str,
        values: &[String],
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Vec<T>, String> {
        values
            .iter()
            .map(|v| parse(v).ok_or_else(|| format!("server.cors.{key}: {v:?} is not valid")))
            .collect()
    }
    let origins = if config.allowed_origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(parsed("allowed_origins", &config.allowed_origins, |o| {
            HeaderValue::from_str(o).ok()
        })?)
    };
    let methods: Vec<Method> = parsed("allowed_methods", &config.allowed_methods, |m| {
        m.parse().ok()
    })?;
    let headers: Vec<HeaderName> = parsed("allowed_headers", &config.allowed_headers, |h| {
        h.parse().ok()
    })?;
    let mut layer = CorsLayer::new()
        .allow_origin(origins)
        .allow_methods(methods)
        .allow_headers(headers)
        .expose_headers([CORRELATION_HEADER, header::ETAG]);
    if let Some(max_age) = config.max_age {
        layer = layer.max_age(max_age.get());
    }
    Ok(layer)
}

/// Makes the correlation ID the request's for everything inside (error
/// bodies read it) and echoes it in the response.
async fn request_id(request: Request, next: Next) -> Response {
    let id = request
        .extensions()
        .get::<CorrelationId>()
        .map(|c| c.0.clone())
        .unwrap_or_default();
    let mut response = CORRELATION_ID.scope(id.clone(), next.run(request)).await;
    echo_correlation_id(&mut response, &id);
    response
}

fn echo_correlation_id(response: &mut Response, id: &str) {
    if let Ok(value) = HeaderValue::from_str(id) {
        response.headers_mut().insert(CORRELATION_HEADER, value);
    }
}

/// Routes anyone may call: probes and metrics.
fn is_public(state: &AppState, path: &str) -> bool {
    path == "/ui/health"
        || path == "/healthz"
        || path == "/ui/ready"
        || (state.config.observability.metrics.enabled
            && path == state.config.observability.metrics.path)
}

/// Verifies the bearer token and stores the principal.
async fn authenticate(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    // CORS (outside) answers preflights itself, so OPTIONS needs no bypass.
    if is_public(&state, request.uri().path()) {
        return next.run(request).await;
    }
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match state.auth.authenticate(header).await {
        Ok(principal) => {
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(err) => {
            let reason = err.reason();
            state
                .metrics
                .auth_rejections
                .get_or_create(&ReasonLabel { reason })
                .inc();
            tracing::info!(reason, path = %request.uri().path(), "request not authenticated: {err}");
            match reason {
                "jwks_unavailable" => {
                    ApiError::unavailable("IDENTITY_UNAVAILABLE", err.to_string()).into_response()
                }
                _ => {
                    let mut response = ApiError::unauthenticated(err.to_string()).into_response();
                    response
                        .headers_mut()
                        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                    response
                }
            }
        }
    }
}

/// Settles tenant, partition and capabilities for the request.
async fn context(State(state): State<Arc<AppState>>, mut request: Request, next: Next) -> Response {
    let Some(principal) = request.extensions_mut().remove::<Principal>() else {
        return next.run(request).await;
    };
    let partition = match request.headers().get(&PARTITION_HEADER) {
        None => principal.partitions.first().cloned(),
        Some(value) => match value.to_str() {
            Ok(wanted) if crate::access::narrows(&principal.partitions, wanted) => {
                Some(wanted.to_string())
            }
            _ => {
                return ApiError::new(
                    axum::http::StatusCode::FORBIDDEN,
                    "PARTITION_FORBIDDEN",
                    "X-Partition-Id may only name a partition of the token or a part of one",
                )
                .into_response();
            }
        },
    };
    let capabilities = match state
        .capabilities
        .resolve(&principal, partition.as_deref())
        .instrument(tracing::info_span!("capability check"))
        .await
    {
        Ok(set) => set,
        Err(err) => {
            tracing::warn!("capabilities unavailable: {err}");
            return ApiError::unavailable(
                "CAPABILITIES_UNAVAILABLE",
                "the policy engine did not answer; try again shortly",
            )
            .into_response();
        }
    };
    let tenant = Tenant(principal.tenant.clone());
    request.extensions_mut().insert(Caller {
        principal,
        partition,
        capabilities,
    });
    let mut response = next.run(request).await;
    // For the access log, which runs outside this layer.
    response.extensions_mut().insert(tenant);
    response
}

/// The caller's tenant, on the response for the access log.
#[derive(Debug, Clone)]
struct Tenant(String);

/// Ends a handler that runs past `server.handler_timeout` with 504.
async fn timeout(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let limit = state.config.server.handler_timeout.get();
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            axum::http::StatusCode::GATEWAY_TIMEOUT,
            "TIMEOUT",
            format!(
                "the request took longer than {}",
                state.config.server.handler_timeout
            ),
        )
        .into_response(),
    }
}

fn route_of(request: &Request) -> String {
    request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string())
}

/// One log line per request; probes at debug level so they do not drown
/// the rest.
async fn logging(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let route = route_of(&request);
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let tenant = response.extensions().get::<Tenant>().map(|t| t.0.as_str());
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    let correlation_id = crate::error::correlation_id();
    if matches!(route.as_str(), "/ui/health" | "/healthz" | "/ui/ready") && status < 500 {
        tracing::debug!(%method, path, route, status, duration_ms, correlation_id, "request");
    } else if status >= 500 {
        tracing::error!(%method, path, route, status, duration_ms, correlation_id, tenant, "request");
    } else {
        tracing::info!(%method, path, route, status, duration_ms, correlation_id, tenant, "request");
    }
    response
}

/// The method as a label: the standard ones by name, anything else
/// `other`, so that made-up methods cannot create series.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// `thesa_http_requests_total` and `thesa_http_request_duration_seconds`
/// by route pattern.
async fn metrics(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let method = method_label(request.method());
    let path_pattern = route_of(&request);
    let started = Instant::now();
    let response = next.run(request).await;
    state
        .metrics
        .http_duration
        .get_or_create(&RouteLabels {
            method,
            path_pattern: path_pattern.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    state
        .metrics
        .http_requests
        .get_or_create(&ResponseLabels {
            method,
            path_pattern,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

/// The request's span (exported when tracing is on, see `traces`): route
/// pattern, method, correlation ID, then status and tenant; an incoming
/// `traceparent` is continued; a 5xx marks it failed. Log lines inside it
/// carry its fields, the trace ID among them, and error bodies the trace ID.
async fn trace(request: Request, next: Next) -> Response {
    let route = route_of(&request);
    let method = method_label(request.method());
    let span = tracing::info_span!(
        "request",
        otel.name = %format!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        route = %route,
        http.request.method = method,
        http.response.status_code = tracing::field::Empty,
        correlation_id = %crate::error::correlation_id(),
        tenant = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    );
    thesa_traces::continue_trace(&span, request.headers());
    let trace_id = thesa_traces::trace_id(&span).unwrap_or_default();
    if !trace_id.is_empty() {
        span.record("trace_id", trace_id.as_str());
    }
    let response = TRACE_ID
        .scope(trace_id, next.run(request).instrument(span.clone()))
        .await;
    let status = response.status().as_u16();
    span.record("http.response.status_code", status);
    if let Some(tenant) = response.extensions().get::<Tenant>() {
        span.record("tenant", tenant.0.as_str());
    }
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forged_correlation_ids_are_replaced() {
        let ok = HeaderValue::from_static("abc-123_x.y:z");
        assert_eq!(usable_correlation_id(&ok).as_deref(), Some("abc-123_x.y:z"));
        assert!(usable_correlation_id(&HeaderValue::from_static("a b")).is_none());
        assert!(usable_correlation_id(&HeaderValue::from_str(&"x".repeat(129)).unwrap()).is_none());
    }
}
