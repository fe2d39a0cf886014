//! The route table and its handlers (the workflow endpoints' are in
//! `workflows`). `docs/bff-api.yaml` describes the same routes as an OpenAPI
//! document (a test keeps the two equal).

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use axum::{Extension, Json, Router};
use serde::Serialize;

use crate::access::Caller;
use crate::access::permissions;
use crate::backends::invoker::InvokeError;
use crate::error::ApiError;
use crate::features::analytics::Kind;
use crate::features::badges;
use crate::features::commands::{self, CommandRequest};
use crate::features::data;
use crate::features::files;
use crate::features::idempotency::{self, Begin, Stored};
use crate::features::lookups;
use crate::features::metadata;
use crate::features::rate_limit;
use crate::features::search;
use crate::features::views::{Rendered, View};
use crate::http::extract::{QueryPairs, call_context, id, json_body, pairs};
use crate::http::health;
use crate::http::middleware;
use crate::http::workflows;
use crate::metrics::CommandLabel;
use crate::registry::Registry;
use crate::state::{AppState, BUILD};
use thesa_core::config::StoreFailure;
use thesa_core::model::OperationBinding;
use thesa_core::openapi::{Operation, ServiceSpec};

/// The default path of the metrics route (`observability.metrics.path`
/// moves it).
const METRICS: &str = "/metrics";

/// Every route: method, pattern and handler. The router is built from this
/// table and the test compares it with the OpenAPI document, so neither can
/// gain a route the other lacks.
fn table() -> Vec<(&'static str, &'static str, MethodRouter<Arc<AppState>>)> {
    vec![
        ("get", "/ui/health", get(health::health)),
        ("get", "/healthz", get(health::health)),
        ("get", "/ui/ready", get(health::ready)),
        ("get", METRICS, get(prometheus)),
        ("get", "/ui/capabilities", get(capabilities)),
        ("post", "/ui/capabilities/batch-check", post(batch_check)),
        ("get", "/ui/navigation", get(navigation)),
        ("get", "/ui/pages/{id}", get(page)),
        ("get", "/ui/forms/{id}", get(form)),
        ("get", "/ui/pages/{id}/data", get(page_data)),
        ("get", "/ui/forms/{id}/data", get(form_data)),
        ("post", "/ui/commands/{id}", post(command)),
        ("get", "/ui/lookups/{id}", get(lookup)),
        ("get", "/ui/search", get(search)),
        ("post", "/ui/upload", post(upload)),
        ("get", "/ui/download/{id}", get(download)),
        ("post", "/ui/workflows/{id}/start", post(workflows::start)),
        ("get", "/ui/workflows/instances", get(workflows::list)),
        (
            "get",
            "/ui/workflows/instances/{id}",
            get(workflows::instance),
        ),
        (
            "post",
            "/ui/workflows/instances/{id}/events",
            post(workflows::event),
        ),
        (
            "post",
            "/api/analytics/query/scalar",
            analytics(Kind::Scalar),
        ),
        (
            "post",
            "/api/analytics/query/timeseries",
            analytics(Kind::Timeseries),
        ),
        (
            "post",
            "/api/analytics/query/grouped",
            analytics(Kind::Grouped),
        ),
        ("post", "/api/analytics/query/topn", analytics(Kind::Topn)),
    ]
}

/// The router with its middleware; an error names a setting the router
/// cannot be built from.
pub fn router(state: Arc<AppState>) -> Result<Router, String> {
    let metrics = &state.config.observability.metrics;
    let metrics_path = metrics.path.as_str();
    let reserved = ["/ui", "/api"]
        .iter()
        .any(|r| metrics_path == *r || metrics_path.starts_with(&format!("{r}/")))
        || metrics_path == "/healthz";
    if !metrics_path.starts_with('/') || metrics_path.contains(['{', '}', '*']) || reserved {
        return Err(format!(
            "observability.metrics.path {metrics_path:?} must start with / and lie outside /ui, \
             /api and /healthz (no {{, }} or *)"
        ));
    }
    let mut routes = Router::new();
    for (_, pattern, handler) in table() {
        routes = match pattern {
            METRICS if !metrics.enabled => routes,
            METRICS => routes.route(metrics_path, handler),
            _ => routes.route(pattern, handler),
        };
    }
    let routes = routes
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "ROUTE_NOT_FOUND", "no such route")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                "method not allowed on this route",
            )
        });
    Ok(middleware::apply(routes, &state)?.with_state(state))
}

async fn prometheus(State(state): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}

#[derive(Serialize)]
struct CapabilitiesView<'a> {
    subject_id: &'a str,
    tenant_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    partition_id: Option<&'a str>,
    /// `{"orders:view": {"enabled": true}}`: the admin console's map.
    capabilities: serde_json::Map<String, serde_json::Value>,
    user: UserView<'a>,
    tenant: TenantView<'a>,
    app: AppView,
}

#[derive(Serialize)]
struct UserView<'a> {
    id: &'a str,
    roles: &'a [String],
    /// The capabilities and their permission-key forms (what the
    /// console's fallback reads first).
    permissions: Vec<String>,
    features: &'static [&'static str],
}

#[derive(Serialize)]
struct TenantView<'a> {
    #[serde(rename = "tenantId")]
    tenant_id: &'a str,
    features: &'static [&'static str],
}

#[derive(Serialize)]
struct AppView {
    version: &'static str,
    commit: &'static str,
}

/// `GET /ui/capabilities`: the caller's capabilities, as a list in
/// `user.permissions` and a map in `capabilities` (the shapes the admin
/// console reads).
async fn capabilities(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
) -> Response {
    let granted = caller.capabilities.granted();
    Json(CapabilitiesView {
        subject_id: &caller.principal.subject,
        tenant_id: &caller.principal.tenant,
        partition_id: caller.partition.as_deref(),
        capabilities: granted
            .iter()
            .map(|c| (c.clone(), serde_json::json!({ "enabled": true })))
            .collect(),
        user: UserView {
            id: &caller.principal.subject,
            roles: &caller.principal.roles,
            permissions: state
                .capabilities
                .permission_keys()
                .listed(&caller.capabilities),
            features: &[],
        },
        tenant: TenantView {
            tenant_id: &caller.principal.tenant,
            features: &[],
        },
        app: AppView {
            version: BUILD.version,
            commit: BUILD.commit,
        },
    })
    .into_response()
}

/// `POST /ui/capabilities/batch-check`: which of the console's permission
/// keys the caller holds (see `access::permissions`).
async fn batch_check(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: permissions::BatchCheck = json_body(
        &body,
        "{\"checks\": [{\"namespace\": \"...\", \"permissions\": [\"...\"]}]}",
    )?;
    if request.pairs().len() > permissions::MAX_CHECKS {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "TOO_MANY_CHECKS",
            format!(
                "at most {} permissions per batch-check",
                permissions::MAX_CHECKS
            ),
        ));
    }
    let granted = permissions::batch_check(&state.capabilities, &caller, &request)
        .await
        .map_err(|err| {
            tracing::warn!("permission check failed: {err}");
            ApiError::unavailable(
                "CAPABILITIES_UNAVAILABLE",
                "the policy engine did not answer; try again shortly",
            )
        })?;
    Ok(Json(granted).into_response())
}

/// `POST /api/analytics/query/{kind}`: an analytics query (see
/// `features::analytics`); errors are `{"error": "<text>"}`.
fn analytics(kind: Kind) -> MethodRouter<Arc<AppState>> {
    post(
        move |State(state): State<Arc<AppState>>,
              Extension(caller): Extension<Caller>,
              body: Bytes| async move {
            match state.analytics.query(kind, &body, &caller).await {
                Ok(answer) => Json(answer).into_response(),
                Err(err) => err.into_response(),
            }
        },
    )
}

/// `GET /ui/navigation`: the menu the caller may see, with its badges'
/// values (see `badges`).
async fn navigation(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> Response {
    let registry = state.registry.load();
    let caps = &caller.capabilities;
    let rendered =
        state
            .views
            .get_or_render(registry.checksum(), View::Navigation, "", caps, || {
                Some(metadata::navigation(&registry, caps))
            });
    let Some(rendered) = rendered else {
        return ApiError::internal().into_response();
    };
    let context = call_context(&caller, &headers);
    let menu = badges::menu(
        &state.badges,
        &state.index,
        &state.invoker,
        &registry,
        &caller,
        &context,
        rendered,
    )
    .await;
    respond(&headers, &menu)
}

/// `GET /ui/pages/{id}`: a page as the caller may see it; 404 when it does
/// not exist or the caller may not see it (the same answer).
async fn page(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    element(
        &state,
        &caller,
        View::Page,
        path,
        &headers,
        |registry, id| {
            let (served, page) = registry.page(id)?;
            metadata::page(registry, served, page, &caller.capabilities)
        },
    )
}

/// `GET /ui/forms/{id}`: a form as the caller may see it; 404 like pages.
async fn form(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    element(
        &state,
        &caller,
        View::Form,
        path,
        &headers,
        |registry, id| {
            let (served, form) = registry.form(id)?;
            metadata::form(registry, served, form, &caller.capabilities)
        },
    )
}

/// The view of one page or form, from the cache or `render`; 404 when
/// `render` finds nothing the caller may see.
fn element<V: Serialize>(
    state: &AppState,
    caller: &Caller,
    view: View,
    path: Result<Path<String>, PathRejection>,
    headers: &HeaderMap,
    render: impl FnOnce(&Registry, &str) -> Option<V>,
) -> Result<Response, ApiError> {
    let id = id(path)?;
    let registry = state.registry.load();
    let rendered = state
        .views
        .get_or_render(registry.checksum(), view, &id, &caller.capabilities, || {
            render(&registry, &id)
        })
        .ok_or_else(|| ApiError::not_found(view.noun(), &id))?;
    Ok(respond(headers, &rendered))
}

/// The operation of a command or lookup.
fn bound_operation<'a>(
    state: &'a AppState,
    binding: &OperationBinding,
) -> Result<(&'a str, &'a Operation, Option<&'a ServiceSpec>), ApiError> {
    data::operation(
        state,
        binding.operation_id.as_deref(),
        binding.service_id.as_deref(),
    )
}

/// `GET /ui/search?q=&domain=`: every search provider the caller may use,
/// merged (see `search`).
async fn search(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    query: QueryPairs,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let query = pairs(query)?;
    let value = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim());
    let q = value("q").unwrap_or_default();
    if q.chars().count() < search::MIN_QUERY {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_QUERY",
            format!("q must have at least {} characters", search::MIN_QUERY),
        ));
    }
    let only_domain = value("domain").filter(|d| !d.is_empty());
    let registry = state.registry.load();
    let providers: Vec<(&str, &thesa_core::model::Search)> = registry
        .definitions()
        .iter()
        .flat_map(|served| {
            let domain = served.definition.domain.as_str();
            served.definition.searches.iter().map(move |s| (domain, s))
        })
        .filter(|(domain, s)| {
            caller.capabilities.has_all(&s.capabilities)
                && only_domain.is_none_or(|d| s.domain.as_deref().unwrap_or(domain) == d)
        })
        .collect();
    let answer = search::run(&state, &providers, q, &call_context(&caller, &headers)).await;
    Ok(Json(answer).into_response())
}

/// `GET /ui/lookups/{id}?q=`: a lookup's options, named or inline (see
/// `lookups`); an inline lookup answers 404 to callers who may not see its
/// page or form.
async fn lookup(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
    query: QueryPairs,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = id(path)?;
    let query = pairs(query)?;
    let q = query
        .iter()
        .find(|(k, v)| k == "q" && !v.is_empty())
        .map(|(_, v)| v.as_str());
    let registry = state.registry.load();
    let lookup = registry
        .lookup(&id)
        .filter(|(_, needs)| caller.capabilities.has_all(needs))
        .map(|(lookup, _)| lookup)
        .ok_or_else(|| ApiError::not_found("lookup", &id))?;
    let scope = lookups::Scope {
        set: registry.checksum(),
        tenant: &caller.principal.tenant,
        partition: caller.partition.as_deref(),
        query: q,
    };
    if let Some(list) = state.lookups.get(lookup, &scope) {
        return Ok(Json(serde_json::json!({ "options": *list })).into_response());
    }
    let Some(binding) = &lookup.operation else {
        return Ok(Json(serde_json::json!({ "options": [] })).into_response());
    };
    let (service, operation, spec) = bound_operation(&state, binding)?;
    let mut request = data::read_request(spec, operation, None, &[], &query)?;
    if let (Some(field), Some(q)) = (&lookup.search_field, q) {
        request.put_named(spec, operation, field, q.to_string());
    }
    let context = call_context(&caller, &headers);
    let response = data::read(&state, service, operation, &request, &context).await?;
    let list = Arc::new(lookups::options(lookup, &response));
    state.lookups.insert(lookup, &scope, list.clone());
    Ok(Json(serde_json::json!({ "options": *list })).into_response())
}

/// `GET /ui/pages/{id}/data`: the page's table rows, record and sections'
/// data (see `data::page`); 404 when the caller may not see the page or it
/// has no data.
async fn page_data(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
    query: QueryPairs,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = id(path)?;
    let query = pairs(query)?;
    let registry = state.registry.load();
    let (_, page) = registry
        .page(&id)
        .filter(|(_, page)| caller.capabilities.has_all(&page.capabilities))
        .ok_or_else(|| ApiError::not_found("page data", &id))?;
    let context = call_context(&caller, &headers);
    let answer = data::page(&state, &caller, &context, page, &query)
        .await
        .ok_or_else(|| ApiError::not_found("page data", &id))??;
    Ok(Json(answer).into_response())
}

/// `GET /ui/forms/{id}/data`: the record a form edits, from its load
/// source; the query string carries the route's parameters by name (path
/// parameters, declared query parameters and body fields of the operation).
async fn form_data(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
    query: QueryPairs,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = id(path)?;
    let query = pairs(query)?;
    let registry = state.registry.load();
    let (form, source) = registry
        .form(&id)
        .filter(|(_, form)| caller.capabilities.has_all(&form.capabilities))
        .and_then(|(_, form)| Some((form, form.load_source.as_ref()?)))
        .ok_or_else(|| ApiError::not_found("form data", &id))?;
    let fields = data::form_fields(form, &caller.capabilities);
    let context = call_context(&caller, &headers);
    let record = data::record(&state, &context, source, &fields, &query, &query).await?;
    Ok(Json(serde_json::json!({ "data": record })).into_response())
}

/// `POST /ui/upload`: a multipart upload streamed to the files service (see
/// `files`).
async fn upload(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let context = call_context(&caller, &headers);
    files::upload(
        &state.config.files,
        &state.invoker,
        &caller,
        &context,
        &headers,
        body,
    )
    .await
}

/// `GET /ui/download/{id}`: a file streamed from the files service.
async fn download(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = id(path)?;
    let context = call_context(&caller, &headers);
    files::download(&state.config.files, &state.invoker, &caller, &context, &id).await
}

/// `POST /ui/commands/{id}`: runs a command (see `commands`); 404 when it
/// does not exist or the caller lacks its capabilities.
async fn command(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = id(path)?;
    let request: CommandRequest = json_body(&body, "{\"input\": {...}, \"route_params\": {...}}")?;
    let registry = state.registry.load();
    let command = registry
        .command(&id)
        .filter(|c| caller.capabilities.has_all(&c.capabilities))
        .ok_or_else(|| ApiError::not_found("command", &id))?;
    rate_limit(&state, command, &caller).await?;
    if let Some(form) = registry.form_submitting(&id) {
        commands::validate(form, &request.input)?;
    }
    let sources = commands::Sources {
        request: &request,
        caller: &caller,
        workflow: None,
    };
    let claim = match (&command.idempotency, &state.idempotency) {
        (Some(rule), Some(store)) => {
            let key = idempotency_key(rule.key_source.as_deref(), &headers, &sources)?;
            let scoped = idempotency::scoped_key(&caller.principal.tenant, &id, &key);
            let ttl = rule
                .ttl
                .unwrap_or(state.config.idempotency.store.default_ttl)
                .get();
            let input = serde_json::json!([request.input, request.route_params]);
            let fingerprint = idempotency::fingerprint(&input);
            let begun = store
                .begin(&scoped, fingerprint, ttl)
                .await
                .map_err(|err| {
                    tracing::error!(error = %err, "idempotency store unavailable");
                    ApiError::unavailable(
                        "IDEMPOTENCY_STORE_UNAVAILABLE",
                        "the idempotency store does not answer; the command was not run",
                    )
                })?;
            match begun {
                Begin::Started => Some((store, scoped, fingerprint, ttl)),
                Begin::Replay(stored) => {
                    let mut response = (stored.status, Json(stored.body)).into_response();
                    response
                        .headers_mut()
                        .insert("idempotent-replayed", HeaderValue::from_static("true"));
                    return Ok(response);
                }
                Begin::InFlight => {
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        "IDEMPOTENCY_IN_FLIGHT",
                        "a request with this idempotency key is still running; retry later",
                    ));
                }
                Begin::Reused => {
                    return Err(ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "IDEMPOTENCY_KEY_REUSED",
                        "this idempotency key was used with a different input",
                    ));
                }
                Begin::Full => {
                    return Err(ApiError::unavailable(
                        "IDEMPOTENCY_STORE_FULL",
                        "too many idempotency keys are held; retry later",
                    ));
                }
            }
        }
        _ => None,
    };
    let outcome = execute(&state, command, &sources, &headers).await;
    if let Some((store, key, fingerprint, ttl)) = claim {
        // A success or a client error is the command's answer and is kept;
        // after 5xx (backend unreachable, timed out, failing) a retry may run.
        let stored = match &outcome {
            Ok(answer) => Some(Stored {
                status: StatusCode::OK,
                body: answer.clone(),
            }),
            Err(err) if err.status.is_client_error() => Some(Stored {
                status: err.status,
                body: err.body(crate::error::correlation_id()),
            }),
            Err(_) => None,
        };
        match stored {
            Some(stored) => store.complete(&key, fingerprint, stored, ttl).await,
            None => store.abandon(&key).await,
        }
    }
    Ok(Json(outcome?).into_response())
}

/// Counts the run against the command's `rate_limit`: 429 with
/// `Retry-After` past it; when the store does not answer, the run goes on
/// or gets 503 per `rate_limit.on_store_error`.
async fn rate_limit(
    state: &AppState,
    command: &thesa_core::model::Command,
    caller: &Caller,
) -> Result<(), ApiError> {
    let (Some(limiter), Some(rule)) = (&state.rate_limits, &command.rate_limit) else {
        return Ok(());
    };
    let Some(limit) = rate_limit::Limit::of(rule) else {
        return Ok(());
    };
    let key = rate_limit::key(&command.id, rule.scope.unwrap_or_default(), caller);
    match limiter.check(&key, limit).await {
        Ok(rate_limit::Decision::Allowed) => Ok(()),
        Ok(rate_limit::Decision::Limited { retry_after }) => {
            state
                .metrics
                .rate_limited
                .get_or_create(&CommandLabel {
                    command: command.id.clone(),
                })
                .inc();
            let seconds = rate_limit::retry_after_seconds(retry_after);
            Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "RATE_LIMITED",
                format!(
                    "{} runs of this command are allowed per {}; retry in {seconds} s",
                    limit.max,
                    rule.window.map(|w| w.to_string()).unwrap_or_default()
                ),
            )
            .with_retry_after(seconds))
        }
        Err(err) => {
            state.metrics.rate_limit_store_errors.inc();
            match state.config.rate_limit.on_store_error {
                StoreFailure::Allow => {
                    tracing::warn!(error = %err, "rate limit store unavailable; the command runs unlimited");
                    Ok(())
                }
                StoreFailure::Deny => {
                    tracing::error!(error = %err, "rate limit store unavailable; the command is refused");
                    Err(ApiError::unavailable(
                        "RATE_LIMIT_STORE_UNAVAILABLE",
                        "the rate limit store does not answer; the command was not run",
                    ))
                }
            }
        }
    }
}

/// The idempotency key: the `X-Idempotency-Key` header (`key_source:
/// header`, the default) or the value of the expression `key_source` names.
fn idempotency_key(
    source: Option<&str>,
    headers: &HeaderMap,
    sources: &commands::Sources,
) -> Result<String, ApiError> {
    let key = match source {
        None | Some("header") => headers
            .get("x-idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(String::from),
        Some(expression) => sources.eval(expression).as_ref().map(data::text),
    };
    key.filter(|k| !k.is_empty() && k.len() <= 256)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "IDEMPOTENCY_KEY_REQUIRED",
                "this command needs an idempotency key (X-Idempotency-Key, 1 to 256 characters)",
            )
        })
}

/// Calls the command's operation and builds the answer.
async fn execute(
    state: &AppState,
    command: &thesa_core::model::Command,
    sources: &commands::Sources<'_>,
    headers: &HeaderMap,
) -> Result<serde_json::Value, ApiError> {
    if let Some(handler) = &command.operation.handler {
        let body = commands::body(command.input.as_ref(), sources);
        let context = call_context(sources.caller, headers);
        let response = state
            .handlers
            .call(handler, &body, &context, &state.invoker)
            .await
            .ok_or_else(|| {
                ApiError::unavailable(
                    "HANDLER_NOT_AVAILABLE",
                    format!("the SDK handler {handler:?} is not registered on this BFF"),
                )
            })?
            .map_err(|err| command_error(command, err))?;
        return Ok(commands::answer(command, response));
    }
    let (service, operation, _) = bound_operation(state, &command.operation)?;
    let params = commands::params(command.input.as_ref(), sources)?;
    let body = operation
        .request_body
        .is_some()
        .then(|| commands::body(command.input.as_ref(), sources));
    let response = state
        .invoker
        .call(
            service,
            operation,
            &params,
            body.as_ref(),
            &call_context(sources.caller, headers),
        )
        .await
        .map_err(|err| command_error(command, err))?;
    Ok(commands::answer(command, response))
}

/// A failed call of a command: through its `error_map` when the backend
/// named a code it maps, else as any backend failure.
fn command_error(command: &thesa_core::model::Command, err: InvokeError) -> ApiError {
    match &err {
        InvokeError::Status { status, body, .. } => {
            commands::mapped_error(command, *status, body.as_ref())
                .unwrap_or_else(|| ApiError::backend(err))
        }
        _ => ApiError::backend(err),
    }
}

/// Whether `If-None-Match` lists `tag` (weak comparison) or `*`.
fn matches(headers: &HeaderMap, tag: &HeaderValue) -> bool {
    let Ok(tag) = tag.to_str() else { return false };
    let bare = tag.trim_start_matches("W/");
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/") == bare)
}

/// 304 when the caller has this version, else the JSON; with the ETag and
/// headers that keep shared caches from storing per-caller views.
fn respond(headers: &HeaderMap, rendered: &Rendered) -> Response {
    let mut response = if matches(headers, &rendered.etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            rendered.body.clone(),
        )
            .into_response()
    };
    let response_headers = response.headers_mut();
    response_headers.insert(header::ETAG, rendered.etag.clone());
    response_headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    response_headers.insert(
        header::VARY,
        HeaderValue::from_static("Authorization, X-Partition-Id"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `docs/bff-api.yaml` lists exactly the routes of the table.
    #[test]
    fn the_openapi_document_matches_the_route_table() {
        let text = include_str!("../../../docs/bff-api.yaml");
        let document = thesa_core::node::parse(text).unwrap().to_json();
        let mut documented: Vec<(String, String)> = document["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .unwrap()
                    .keys()
                    .map(move |method| (method.clone(), path.clone()))
            })
            .collect();
        documented.sort();
        let mut table: Vec<(String, String)> = table()
            .into_iter()
            .map(|(m, p, _)| (m.to_string(), p.to_string()))
            .collect();
        table.sort();
        assert_eq!(documented, table);
    }
}
