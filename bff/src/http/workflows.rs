//! The workflow endpoints:
//!
//! - `POST /ui/workflows/{id}/start` `{"input": {...}}` → 201 and the
//!   instance (after its automatic steps ran);
//! - `GET /ui/workflows/instances/{id}` → the instance, the events the
//!   caller may send now, and its history;
//! - `GET /ui/workflows/instances?status=&workflow=&assignee=&page=&page_size=`
//!   → a page of instances, newest first (`assignee=me`: assigned to the
//!   caller or one of the caller's roles);
//! - `POST /ui/workflows/instances/{id}/events` `{"event": "...", "input":
//!   {...}}` → the instance after the event.
//!
//! Instances are the caller's tenant's and partition's only, of workflows
//! whose capabilities the caller holds; anything else is 404, as if it did
//! not exist. The engine behind them is `features::workflow`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use thesa_core::model::Workflow;
use uuid::Uuid;

use crate::access::Caller;
use crate::error::ApiError;
use crate::features::workflow::run::{self, Actor, store_error};
use crate::features::workflow::store::ListFilter;
use crate::features::workflow::{self, Instance, Status};
use crate::http::extract::{self, QueryPairs};
use crate::registry::Registry;
use crate::state::AppState;

/// Most instances on one page.
const MAX_PAGE_SIZE: i64 = 100;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartRequest {
    #[serde(default)]
    input: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventRequest {
    event: String,
    #[serde(default)]
    input: Map<String, Value>,
}

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
}

/// Workflows are off: the routes exist but do nothing.
fn enabled(state: &AppState) -> Result<(), ApiError> {
    if state.config.workflow.enabled {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "WORKFLOWS_DISABLED",
        "workflows are disabled on this BFF (workflow.enabled)",
    ))
}

/// PostgreSQL's `jsonb` cannot hold U+0000: refused as bad input rather
/// than failing in the store.
fn no_nul(input: &Map<String, Value>) -> Result<(), ApiError> {
    fn has_nul(value: &Value) -> bool {
        match value {
            Value::String(s) => s.contains('\0'),
            Value::Array(items) => items.iter().any(has_nul),
            Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
            _ => false,
        }
    }
    if input.iter().any(|(k, v)| k.contains('\0') || has_nul(v)) {
        return Err(bad_request(
            "the input must not contain the character U+0000",
        ));
    }
    Ok(())
}

/// The caller's partition as stored (empty when there is none).
fn partition(caller: &Caller) -> &str {
    caller.partition.as_deref().unwrap_or_default()
}

fn actor<'a>(caller: &'a Caller, headers: &HeaderMap) -> Actor<'a> {
    Actor {
        caller: Some(caller),
        context: extract::call_context(caller, headers),
    }
}

/// The workflow `id` when the caller may use it.
fn visible<'a>(registry: &'a Registry, caller: &Caller, id: &str) -> Option<&'a Workflow> {
    registry
        .workflow(id)
        .filter(|w| caller.capabilities.has_all(&w.capabilities))
}

/// An instance as the caller sees it.
fn view(workflow: Option<&Workflow>, instance: &Instance, caller: &Caller) -> Value {
    let step = workflow.and_then(|w| workflow::step(w, &instance.step));
    let mut value = json!(instance);
    value["workflow_name"] = json!(workflow.map(|w| w.name.as_str()));
    value["step"] = json!({
        "id": instance.step,
        "name": step.and_then(|s| s.name.as_deref()),
        "type": step.map(|s| s.kind),
        "form_id": step.and_then(|s| s.form_id.as_deref()),
    });
    value["allowed_events"] = json!(
        workflow
            .map(|w| run::allowed_events(w, instance, caller))
            .unwrap_or_default()
    );
    value
}

/// `POST /ui/workflows/{id}/start`.
pub async fn start(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    enabled(&state)?;
    let id = extract::id(path)?;
    let request: StartRequest = extract::json_body(&bytes, "{\"input\": {...}}")?;
    no_nul(&request.input)?;
    let registry = state.registry.load_full();
    let workflow =
        visible(&registry, &caller, &id).ok_or_else(|| ApiError::not_found("workflow", &id))?;
    let actor = actor(&caller, &headers);
    let instance = run::start(
        &state,
        workflow,
        &actor,
        &caller.principal.tenant,
        partition(&caller),
        request.input,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(view(Some(workflow), &instance, &caller)),
    )
        .into_response())
}

/// The instance `id` of the caller's tenant and partition, of a workflow
/// the caller may use.
async fn load<'a>(
    state: &AppState,
    registry: &'a Registry,
    caller: &Caller,
    id: &str,
) -> Result<(Option<&'a Workflow>, Instance), ApiError> {
    let not_found = || ApiError::not_found("workflow instance", id);
    let uuid = Uuid::parse_str(id).map_err(|_| not_found())?;
    let instance = state
        .workflows
        .get(&caller.principal.tenant, partition(caller), uuid)
        .await
        .map_err(store_error)?
        .ok_or_else(not_found)?;
    let workflow = registry.workflow(&instance.workflow_id);
    // A workflow no longer defined stays readable; one the caller may not
    // use does not exist for them.
    if workflow.is_some_and(|w| !caller.capabilities.has_all(&w.capabilities)) {
        return Err(not_found());
    }
    Ok((workflow, instance))
}

/// `GET /ui/workflows/instances/{id}`.
pub async fn instance(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    enabled(&state)?;
    let id = extract::id(path)?;
    let registry = state.registry.load_full();
    let (workflow, instance) = load(&state, &registry, &caller, &id).await?;
    let history = state
        .workflows
        .history(&caller.principal.tenant, partition(&caller), instance.id)
        .await
        .map_err(store_error)?;
    let mut value = view(workflow, &instance, &caller);
    value["history"] = json!(history);
    Ok(Json(value).into_response())
}

/// `POST /ui/workflows/instances/{id}/events`.
pub async fn event(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    enabled(&state)?;
    let id = extract::id(path)?;
    let request: EventRequest =
        extract::json_body(&bytes, "{\"event\": \"...\", \"input\": {...}}")?;
    no_nul(&request.input)?;
    let registry = state.registry.load_full();
    let (workflow, instance) = load(&state, &registry, &caller, &id).await?;
    let workflow = workflow.ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "WORKFLOW_NOT_DEFINED",
            "the instance's workflow is no longer defined; it can be read, not changed",
        )
    })?;
    let actor = actor(&caller, &headers);
    let instance = run::event(
        &state,
        workflow,
        instance,
        &caller,
        &actor,
        &request.event,
        request.input,
    )
    .await?;
    Ok(Json(view(Some(workflow), &instance, &caller)).into_response())
}

/// `GET /ui/workflows/instances`.
pub async fn list(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    enabled(&state)?;
    let query = extract::pairs(query)?;
    let value = |name: &str| {
        query
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    };
    let number = |name: &str, default: i64| -> Result<i64, ApiError> {
        value(name).map_or(Ok(default), |v| {
            v.parse::<i64>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| bad_request(format!("{name} must be a positive integer")))
        })
    };
    let page = number("page", 1)?;
    let page_size = number("page_size", 20)?.min(MAX_PAGE_SIZE);
    let status = value("status")
        .map(|s| {
            Status::parse(s)
                .ok_or_else(|| bad_request("status must be active, completed, failed or timed_out"))
        })
        .transpose()?;
    let registry = state.registry.load_full();
    let workflows: Vec<String> = registry
        .workflows()
        .filter(|w| caller.capabilities.has_all(&w.capabilities))
        .filter(|w| value("workflow").is_none_or(|id| w.id == id))
        .map(|w| w.id.clone())
        .collect();
    let principal = &caller.principal;
    let assignees = value("assignee").map(|a| match a {
        "me" => std::iter::once(format!("user:{}", principal.subject))
            .chain(principal.roles.iter().map(|r| format!("role:{r}")))
            .chain(principal.roles.iter().map(|r| format!("group:{r}")))
            .collect(),
        a if a.contains(':') => vec![a.to_string()],
        user => vec![format!("user:{user}")],
    });
    let filter = ListFilter {
        status,
        workflows,
        assignees,
        limit: page_size,
        offset: (page - 1).saturating_mul(page_size),
    };
    let (items, total) = state
        .workflows
        .list(&principal.tenant, partition(&caller), &filter)
        .await
        .map_err(store_error)?;
    let items: Vec<Value> = items
        .iter()
        .map(|i| view(registry.workflow(&i.workflow_id), i, &caller))
        .collect();
    Ok(Json(json!({
        "items": items,
        "total": total,
        "page": page,
        "page_size": page_size,
    }))
    .into_response())
}
