//! The middleware chain, outermost first. Thesa's deployment guide orders
//! it recovery → CORS → request ID → auth → context → timeout → logging →
//! metrics → tracing → handler; here the same steps run in four layers:
//!
//! 1. `headers`: the security headers on every answer (see `limits`),
//!    preflight answers included;
//! 2. CORS;
//! 3. `observe`: request ID, recovery, the request's span, the access log
//!    line, the HTTP metrics and the request body limit (see `limits`).
//!    Logging and metrics sit outside auth, context and timeout, so that
//!    rejected (401, 403), unavailable (503), timed-out (504) and panicked
//!    (500) requests are logged and counted too; inside, they would never
//!    see those answers;
//! 4. `access`: authentication, the caller's context (tenant, partition,
//!    capabilities) and the handler timeout.
//!
//! One layer per group rather than one per step: each `from_fn` layer
//! boxes a future and clones the inner service per request, and merging
//! them was measurable (BENCHMARKS.md).
//!
//! The timeout step also bounds reading the request body by
//! `server.read_timeout`. `server.write_timeout` is accepted but not
//! enforced: hyper has no write timeout, and `handler_timeout` bounds the
//! handlers.
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
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use axum::middleware::{Next, from_fn_with_state};
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

/// Wraps `router` in the chain; an error names a CORS setting that is
/// not a valid origin, method or header.
pub fn apply(
    router: Router<Arc<AppState>>,
    state: &Arc<AppState>,
) -> Result<Router<Arc<AppState>>, String> {
    let hsts = limits::hsts_value(&state.config.server.hsts);
    Ok(router.layer(
        ServiceBuilder::new()
            .layer(from_fn_with_state(hsts, limits::headers))
            .layer(cors(&state.config.server.cors)?)
            .layer(from_fn_with_state(state.clone(), observe))
            .layer(limits::default_body_limit(&state.config.server))
            .layer(from_fn_with_state(state.clone(), access))
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

/// What a panic carried, as text.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(ToString::to_string)
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

/// Everything a request passes once, around the rest: the correlation ID
/// (the client's, when usable) is the request's for everything inside
/// (error bodies and log lines read it) and echoed in the answer; a panic
/// inside becomes a 500 in the error shape; the request's span, the access
/// log line, the HTTP metrics and the request body limit.
async fn observe(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request
        .headers()
        .get(&CORRELATION_HEADER)
        .and_then(usable_correlation_id)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let method = method_label(request.method());
    let route = request.extensions().get::<MatchedPath>().cloned();
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let path = request.uri().clone();
    let span = request_span(method, route, &id);
    thesa_traces::continue_trace(&span, request.headers());
    let trace_id = thesa_traces::trace_id(&span).unwrap_or_default();
    if !trace_id.is_empty() {
        span.record("trace_id", trace_id.as_str());
    }
    let limit = state.config.server.max_request_body_bytes;
    let inner = recovering(limits::request_body(limit, request, next));
    let logged = async {
        let response = inner.instrument(span.clone()).await;
        access_log(method, path.path(), route, &response, started);
        response
    };
    let mut response = CORRELATION_ID
        .scope(id.clone(), TRACE_ID.scope(trace_id, logged))
        .await;
    let status = response.status().as_u16();
    span.record("http.response.status_code", status);
    if let Some(tenant) = response.extensions().get::<Tenant>() {
        span.record("tenant", tenant.0.as_str());
    }
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
    }
    count(&state, method, route, status, started);
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(CORRELATION_HEADER, value);
    }
    response
}

/// `handler`'s answer, or a 500 in the error shape when it panics.
async fn recovering(handler: impl Future<Output = Response>) -> Response {
    match AssertUnwindSafe(handler).catch_unwind().await {
        Ok(response) => response,
        Err(panic) => {
            let message = panic_message(&*panic);
            tracing::error!(panic = %message, "handler panicked");
            ApiError::internal().into_response()
        }
    }
}

/// The request's span (exported when tracing is on, see `traces`): route
/// pattern, method, correlation ID, then status and tenant; an incoming
/// `traceparent` is continued; a 5xx marks it failed. Error bodies carry
/// its trace ID.
fn request_span(method: &str, route: &str, correlation_id: &str) -> tracing::Span {
    tracing::info_span!(
        "request",
        otel.name = %format!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        route = %route,
        http.request.method = method,
        http.response.status_code = tracing::field::Empty,
        correlation_id = %correlation_id,
        tenant = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    )
}

/// One log line per request (its correlation ID and trace ID added by the
/// log format); probes at debug level so they do not drown the rest.
fn access_log(method: &str, path: &str, route: &str, response: &Response, started: Instant) {
    let status = response.status().as_u16();
    let tenant = response.extensions().get::<Tenant>().map(|t| t.0.as_str());
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    if matches!(route, "/ui/health" | "/healthz" | "/ui/ready") && status < 500 {
        tracing::debug!(method, path, route, status, duration_ms, "request");
    } else if status >= 500 {
        tracing::error!(method, path, route, status, duration_ms, tenant, "request");
    } else {
        tracing::info!(method, path, route, status, duration_ms, tenant, "request");
    }
}

/// `thesa_http_requests_total` and `thesa_http_request_duration_seconds`
/// by route pattern.
fn count(state: &AppState, method: &'static str, route: &str, status: u16, started: Instant) {
    let metrics = &state.metrics;
    metrics
        .http_duration
        .get_or_create(&RouteLabels {
            method,
            path_pattern: route.to_string(),
        })
        .observe(started.elapsed().as_secs_f64());
    metrics
        .http_requests
        .get_or_create(&ResponseLabels {
            method,
            path_pattern: route.to_string(),
            status,
        })
        .inc();
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

/// Routes anyone may call: probes and metrics.
fn is_public(state: &AppState, path: &str) -> bool {
    path == "/ui/health"
        || path == "/healthz"
        || path == "/ui/ready"
        || (state.config.observability.metrics.enabled
            && path == state.config.observability.metrics.path)
}

/// Authentication, the caller's context and the handler timeout: the
/// caller goes into the request's extensions as a [`Caller`], and the
/// tenant onto the answer for the access log. Public routes skip the first
/// two.
async fn access(State(state): State<Arc<AppState>>, mut request: Request, next: Next) -> Response {
    // CORS (outside) answers preflights itself, so OPTIONS needs no bypass.
    if is_public(&state, request.uri().path()) {
        return within_timeout(&state, next.run(request)).await;
    }
    let principal = match authenticate(&state, request.headers(), request.uri().path()).await {
        Ok(principal) => principal,
        Err(response) => return response,
    };
    let tenant = Tenant(principal.tenant.clone());
    let caller = match context(&state, request.headers(), principal).await {
        Ok(caller) => caller,
        Err(response) => return response,
    };
    request.extensions_mut().insert(caller);
    let mut response = within_timeout(&state, next.run(request)).await;
    response.extensions_mut().insert(tenant);
    response
}

/// The verified principal of the bearer token, else the 401 (or 503 when
/// no keys can be had).
async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    path: &str,
) -> Result<Principal, Response> {
    let header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    state.auth.authenticate(header).await.map_err(|err| {
        let reason = err.reason();
        state
            .metrics
            .auth_rejections
            .get_or_create(&ReasonLabel { reason })
            .inc();
        tracing::info!(reason, path, "request not authenticated: {err}");
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
    })
}

/// The caller: the principal with the request's partition and the
/// capabilities resolved for both.
async fn context(
    state: &AppState,
    headers: &HeaderMap,
    principal: Principal,
) -> Result<Caller, Response> {
    let partition = match headers.get(&PARTITION_HEADER) {
        None => principal.partitions.first().cloned(),
        Some(value) => match value.to_str() {
            Ok(wanted) if crate::access::narrows(&principal.partitions, wanted) => {
                Some(wanted.to_string())
            }
            _ => {
                return Err(ApiError::new(
                    axum::http::StatusCode::FORBIDDEN,
                    "PARTITION_FORBIDDEN",
                    "X-Partition-Id may only name a partition of the token or a part of one",
                )
                .into_response());
            }
        },
    };
    let capabilities = state
        .capabilities
        .resolve(&principal, partition.as_deref())
        .instrument(tracing::info_span!("capability check"))
        .await
        .map_err(|err| {
            tracing::warn!("capabilities unavailable: {err}");
            ApiError::unavailable(
                "CAPABILITIES_UNAVAILABLE",
                "the policy engine did not answer; try again shortly",
            )
            .into_response()
        })?;
    Ok(Caller {
        principal,
        partition,
        capabilities,
    })
}

/// The caller's tenant, on the response for the access log.
#[derive(Debug, Clone)]
struct Tenant(String);

/// Ends a handler that runs past `server.handler_timeout` with 504.
async fn within_timeout(state: &AppState, handler: impl Future<Output = Response>) -> Response {
    let limit = state.config.server.handler_timeout.get();
    match tokio::time::timeout(limit, handler).await {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_is_a_500_in_the_error_shape_with_the_correlation_id() {
        let response = CORRELATION_ID
            .scope("c-1".to_string(), recovering(async { panic!("boom") }))
            .await;
        assert_eq!(response.status(), 500);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "INTERNAL", "{body}");
        assert_eq!(body["error"]["correlation_id"], "c-1", "{body}");
    }

    #[test]
    fn forged_correlation_ids_are_replaced() {
        let ok = HeaderValue::from_static("abc-123_x.y:z");
        assert_eq!(usable_correlation_id(&ok).as_deref(), Some("abc-123_x.y:z"));
        assert!(usable_correlation_id(&HeaderValue::from_static("a b")).is_none());
        assert!(usable_correlation_id(&HeaderValue::from_str(&"x".repeat(129)).unwrap()).is_none());
    }
}
