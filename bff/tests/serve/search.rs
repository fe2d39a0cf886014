//! Global search over three mock providers: fast, slow and filtered.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::RawQuery;
use axum::routing::get;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{self, Bff, config, jwks, token};

type Seen = Arc<Mutex<Vec<String>>>;

/// A provider at `path` answering `body` after `delay`, recording queries.
async fn provider(path: &'static str, body: Value, delay: Duration, seen: Seen) -> String {
    let router = axum::Router::new().route(
        path,
        get(move |RawQuery(query): RawQuery| {
            let (body, seen) = (body.clone(), seen.clone());
            async move {
                seen.lock()
                    .unwrap()
                    .push(format!("{path}?{}", query.unwrap_or_default()));
                tokio::time::sleep(delay).await;
                axum::Json(body)
            }
        }),
    );
    let (url, stop) = harness::serve(router).await;
    std::mem::forget(stop);
    url
}

async fn search(bff: &Bff, query: &str, roles: &[&str]) -> (StatusCode, Value) {
    harness::get_json(&bff.url(&format!("/ui/search?{query}")), &token(roles)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_merge_by_weight_and_slow_providers_are_named() {
    let (jwks, _stop) = jwks().await;
    let seen = Seen::default();
    let fast = Duration::ZERO;
    let orders = provider(
        "/orders/search",
        json!({"results": [
            {"id": "o1", "order_number": "A-1", "customer_name": "Ann", "status": "pending"},
            {"id": "o2", "order_number": "A-2", "customer_name": "Bob", "status": "shipped", "secret": 1}
        ]}),
        fast,
        seen.clone(),
    )
    .await;
    let inventory = provider(
        "/products/search",
        json!({"hits": [{"sku": "S-1", "name": "Bolt", "id": "p1"}]}),
        fast,
        seen.clone(),
    )
    .await;
    let customers = provider(
        "/customers/search",
        json!({"data": [{"id": "c1", "display_name": "Ann"}]}),
        Duration::from_secs(2),
        seen.clone(),
    )
    .await;
    let extra = format!(
        "services:\n  orders-svc: {{base_url: \"{orders}\"}}\n  inventory-svc: {{base_url: \"{inventory}\"}}\n  customers-svc: {{base_url: \"{customers}\"}}\nsearch:\n  timeout_per_provider: 300ms\n"
    );
    let bff = Bff::start(&config(&jwks, &extra), &[]);

    let (status, body) = search(&bff, "q=an", &["admin"]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ids: Vec<&str> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["o1", "S-1", "o2"], "weights 1.0 and 0.8, by rank");
    assert_eq!(
        body["results"][0],
        json!({"id": "o1", "title": "A-1", "subtitle": "Ann", "category": "pending",
               "route": "/orders/o1", "domain": "orders", "provider": "orders.search"})
    );
    assert_eq!(body["results"][1]["route"], "/inventory/products/S-1");
    assert_eq!(
        body["failed"],
        json!([{"provider": "customers.search", "reason": "timeout"}])
    );
    assert_eq!(body["partial"], true);
    let mut sent = seen.lock().unwrap().clone();
    sent.sort();
    assert_eq!(
        sent,
        [
            "/customers/search?term=an",
            "/orders/search?q=an",
            "/products/search?query=an"
        ],
        "each operation's own parameter"
    );

    // Only the providers the caller may use are asked.
    seen.lock().unwrap().clear();
    let (_, body) = search(&bff, "q=bolt", &["inventory_manager"]).await;
    assert_eq!(body["partial"], false, "{body}");
    assert_eq!(*seen.lock().unwrap(), ["/products/search?query=bolt"]);

    let (status, body) = search(&bff, "q=a", &["admin"]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "INVALID_QUERY");
}
