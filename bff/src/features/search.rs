//! `GET /ui/search?q=`: asks every search provider the caller may use, in
//! parallel, each within `search.timeout_per_provider`, and merges the
//! results by the providers' weights. Providers that fail or time out are
//! named in `failed`; the others' results still come back (`partial`).
//!
//! The search text goes to the operation's query parameter `q` when it has
//! one, else to its only required query parameter (`term`, `query`, ...).

use std::time::Duration;

use futures::future::join_all;
use serde_json::{Map, Value, json};
use thesa_core::model::Search;
use thesa_core::openapi::{Operation, ParamLocation};

use crate::backends::invoker::{CallContext, Invoker, Params, fill_template};
use crate::features::data::{get_path, text};
use crate::state::AppState;

/// Shortest search text.
pub const MIN_QUERY: usize = 2;

/// One merged result.
struct Hit {
    score: f64,
    result: Value,
}

/// The query parameter the search text goes to.
fn text_param(operation: &Operation) -> String {
    let query_params: Vec<_> = operation
        .parameters
        .iter()
        .filter(|p| p.location == ParamLocation::Query)
        .collect();
    if query_params.iter().any(|p| p.name == "q") {
        return "q".into();
    }
    let required: Vec<_> = query_params.iter().filter(|p| p.required).collect();
    match required[..] {
        [only] => only.name.clone(),
        _ => "q".into(),
    }
}

/// The route with `{field}` placeholders filled from the item.
fn fill_route(route: &str, item: &Value) -> String {
    let filled = fill_template(route, |field| {
        Ok::<_, std::convert::Infallible>(
            get_path(item, field).map_or_else(|| format!("{{{field}}}"), text),
        )
    });
    filled.unwrap_or_else(|never| match never {})
}

/// The results of one provider's answer, at most `cap`.
fn results(search: &Search, domain: &str, response: &Value, cap: usize) -> Vec<Value> {
    let mapping = &search.result_mapping;
    let items = match &mapping.items_path {
        Some(path) => get_path(response, path),
        None => Some(response),
    };
    let text = |item: &Value, field: &Option<String>| {
        field.as_deref().and_then(|f| get_path(item, f)).cloned()
    };
    items
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .take(cap)
        .filter_map(|item| {
            let mut result = Map::new();
            result.insert("id".into(), get_path(item, &mapping.id_field)?.clone());
            result.insert(
                "title".into(),
                get_path(item, &mapping.title_field)
                    .cloned()
                    .unwrap_or(Value::Null),
            );
            if let Some(subtitle) = text(item, &mapping.subtitle_field) {
                result.insert("subtitle".into(), subtitle);
            }
            let category = text(item, &mapping.category_field).unwrap_or_else(|| domain.into());
            result.insert("category".into(), category);
            if let Some(icon) = text(item, &mapping.icon_field) {
                result.insert("icon".into(), icon);
            }
            result.insert("route".into(), fill_route(&mapping.route, item).into());
            result.insert("domain".into(), domain.into());
            result.insert("provider".into(), search.id.clone().into());
            Some(Value::Object(result))
        })
        .collect()
}

/// Runs the search over `providers` (with their definitions' domains,
/// already filtered by capabilities).
pub async fn run(
    state: &AppState,
    providers: &[(&str, &Search)],
    query: &str,
    context: &CallContext,
) -> Value {
    let (invoker, index) = (&state.invoker, &state.index);
    let timeout: Duration = state.config.search.timeout_per_provider.get();
    let max_per_provider = state.config.search.max_results_per_provider as usize;
    let calls = providers.iter().map(|(domain, search)| async move {
        let binding = &search.operation;
        let Some(operation_id) = binding.operation_id.as_deref() else {
            return (*search, *domain, Err("handler"));
        };
        let Ok((service, operation)) =
            Invoker::resolve(index, operation_id, binding.service_id.as_deref())
        else {
            return (*search, *domain, Err("error"));
        };
        let params = Params {
            query: vec![(text_param(operation), query.to_string())],
            ..Params::default()
        };
        let call = invoker.call(service, operation, &params, None, context);
        let outcome = match tokio::time::timeout(timeout, call).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(err)) => {
                tracing::warn!(provider = search.id, error = %err, "search provider failed");
                Err("error")
            }
            Err(_) => Err("timeout"),
        };
        (*search, *domain, outcome)
    });
    let mut hits = Vec::new();
    let mut failed = Vec::new();
    for (search, domain, outcome) in join_all(calls).await {
        match outcome {
            Ok(response) => {
                let cap = search
                    .max_results
                    .map_or(max_per_provider, |m| (m as usize).min(max_per_provider));
                let weight = search.weight.unwrap_or(1.0);
                let domain = search.domain.as_deref().unwrap_or(domain);
                for (rank, result) in results(search, domain, &response, cap)
                    .into_iter()
                    .enumerate()
                {
                    hits.push(Hit {
                        score: weight / (rank as f64 + 1.0),
                        result,
                    });
                }
            }
            Err(reason) => failed.push(json!({"provider": search.id, "reason": reason})),
        }
    }
    // Stable: equal scores keep the providers' order.
    hits.sort_by(|a, b| b.score.total_cmp(&a.score));
    let partial = !failed.is_empty();
    json!({
        "results": hits.into_iter().map(|h| h.result).collect::<Vec<_>>(),
        "failed": failed,
        "partial": partial,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_filled_from_the_item() {
        let item = json!({"id": "o1", "sku": {"code": 7}});
        assert_eq!(fill_route("/orders/{id}", &item), "/orders/o1");
        assert_eq!(
            fill_route("/p/{sku.code}/{missing}", &item),
            "/p/7/{missing}"
        );
    }
}
