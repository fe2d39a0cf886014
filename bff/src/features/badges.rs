//! Navigation badges: the value next to a menu item (`badge.field` of its
//! operation's answer), filled into the navigation the caller sees. Values
//! are kept for a short time per caller (counts may depend on who asks),
//! fetched in parallel, each within `BADGE_TIMEOUT`; a badge whose value
//! cannot be had is sent without one: badges never fail the navigation.

use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderValue;
use futures::future::join_all;
use moka::sync::Cache;
use serde_json::Value;
use thesa_core::model::Badge;
use thesa_core::openapi::OperationIndex;

use crate::access::Caller;
use crate::backends::invoker::{CallContext, Invoker, Params};
use crate::features::data::get_path;
use crate::features::views::Rendered;
use crate::registry::Registry;

/// How long a badge value is kept.
const BADGE_TTL: Duration = Duration::from_secs(30);
/// Most time one badge may take.
const BADGE_TIMEOUT: Duration = Duration::from_secs(1);
/// Most badge values kept.
const MAX_VALUES: u64 = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    tenant: String,
    subject: String,
    partition: Option<String>,
    operation_id: String,
    service_id: Option<String>,
}

/// A caller's menu: who, and which rendered view it was filled from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct MenuKey {
    tenant: String,
    subject: String,
    partition: Option<String>,
    view: HeaderValue,
}

/// Badge answers and filled menus of recent callers.
#[derive(Debug)]
pub struct BadgeCache {
    answers: Cache<Key, Arc<Value>>,
    menus: Cache<MenuKey, Arc<Rendered>>,
}

impl Default for BadgeCache {
    fn default() -> Self {
        Self {
            answers: Cache::builder()
                .max_capacity(MAX_VALUES)
                .time_to_live(BADGE_TTL)
                .build(),
            menus: Cache::builder()
                .max_capacity(MAX_VALUES)
                .time_to_live(BADGE_TTL)
                .build(),
        }
    }
}

/// The caller's menu: the rendered navigation with its badges' values,
/// kept as long as the values are (so most requests cost one look-up).
/// Badge operations are resolved in `index` and called through `invoker`.
pub async fn menu(
    badges: &BadgeCache,
    index: &OperationIndex,
    invoker: &Invoker,
    registry: &Registry,
    caller: &Caller,
    context: &CallContext,
    rendered: Arc<Rendered>,
) -> Arc<Rendered> {
    let key = MenuKey {
        tenant: caller.principal.tenant.clone(),
        subject: caller.principal.subject.clone(),
        partition: caller.partition.clone(),
        view: rendered.etag.clone(),
    };
    if let Some(menu) = badges.menus.get(&key) {
        return menu;
    }
    let menu = match fill(
        badges,
        index,
        invoker,
        registry,
        caller,
        context,
        &rendered.body,
    )
    .await
    {
        Some(filled) => {
            Arc::new(rendered.with_body(serde_json::to_vec(&filled).unwrap_or_default()))
        }
        None => rendered,
    };
    badges.menus.insert(key, menu.clone());
    menu
}

/// The model's badge of each menu item in the view, by domain and route.
fn badge_of<'a>(registry: &'a Registry, domain: &str, route: &str) -> Option<&'a Badge> {
    registry
        .definitions()
        .iter()
        .find(|d| d.definition.domain == domain)?
        .definition
        .navigation
        .as_ref()?
        .children
        .iter()
        .find(|c| c.route == route)?
        .badge
        .as_ref()
}

/// The answer of a badge's operation for this caller, from the cache or
/// the backend; `None` when it cannot be had in time.
async fn answer(
    badges: &BadgeCache,
    index: &OperationIndex,
    invoker: &Invoker,
    caller: &Caller,
    badge: &Badge,
    context: &CallContext,
) -> Option<Arc<Value>> {
    let key = Key {
        tenant: caller.principal.tenant.clone(),
        subject: caller.principal.subject.clone(),
        partition: caller.partition.clone(),
        operation_id: badge.operation_id.clone(),
        service_id: badge.service_id.clone(),
    };
    if let Some(answer) = badges.answers.get(&key) {
        return Some(answer);
    }
    let (service, operation) =
        Invoker::resolve(index, &badge.operation_id, badge.service_id.as_deref()).ok()?;
    let params = Params::default();
    let call = invoker.call(service, operation, &params, None, context);
    // A failure is kept too (as no answer), so that a failing service
    // costs one attempt per caller and TTL, not one per menu.
    let answer = match tokio::time::timeout(BADGE_TIMEOUT, call).await {
        Ok(Ok(answer)) => Arc::new(answer),
        Ok(Err(err)) => {
            tracing::debug!(operation = badge.operation_id, error = %err, "badge value unavailable");
            Arc::new(Value::Null)
        }
        Err(_) => Arc::new(Value::Null),
    };
    badges.answers.insert(key, answer.clone());
    Some(answer)
}

/// The navigation view with its badges' values (`badge.value`), or `None`
/// when no item of it has a badge.
async fn fill(
    badges: &BadgeCache,
    index: &OperationIndex,
    invoker: &Invoker,
    registry: &Registry,
    caller: &Caller,
    context: &CallContext,
    view: &[u8],
) -> Option<Value> {
    let mut navigation: Value = serde_json::from_slice(view).ok()?;
    let mut wanted = Vec::new();
    for (i, item) in navigation["items"].as_array()?.iter().enumerate() {
        let domain = item["domain"].as_str().unwrap_or_default();
        for (j, child) in item["children"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let route = child["route"].as_str().unwrap_or_default();
            if child.get("badge").is_some()
                && let Some(badge) = badge_of(registry, domain, route)
            {
                wanted.push((i, j, badge));
            }
        }
    }
    if wanted.is_empty() {
        return None;
    }
    // One call per operation, however many items show it.
    let mut operations: Vec<&Badge> = Vec::new();
    for (_, _, badge) in &wanted {
        if !operations
            .iter()
            .any(|b| b.operation_id == badge.operation_id && b.service_id == badge.service_id)
        {
            operations.push(badge);
        }
    }
    let answers = join_all(
        operations
            .iter()
            .map(|badge| answer(badges, index, invoker, caller, badge, context)),
    )
    .await;
    for (i, j, badge) in &wanted {
        let value = operations
            .iter()
            .zip(&answers)
            .find(|(b, _)| b.operation_id == badge.operation_id && b.service_id == badge.service_id)
            .and_then(|(_, answer)| answer.as_ref())
            .and_then(|answer| get_path(answer, &badge.field));
        if let Some(value) = value {
            navigation["items"][*i]["children"][*j]["badge"]["value"] = value.clone();
        }
    }
    Some(navigation)
}
