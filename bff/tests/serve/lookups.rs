//! Lookups against a mock inventory service that counts its calls.

use std::sync::{Arc, Mutex};

use axum::extract::RawQuery;
use axum::routing::get;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{self, Bff, config, jwks};

async fn fetch(bff: &Bff, path: &str, tenant: &str) -> (StatusCode, Value) {
    let token = harness::rs256(&harness::claims("alice", tenant, &["viewer"]));
    harness::get_json(&bff.url(path), &token).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_are_mapped_and_cached_per_tenant_or_globally() {
    let (jwks, _stop) = jwks().await;
    let calls: Arc<Mutex<Vec<String>>> = Arc::default();
    let (warehouses, categories) = (calls.clone(), calls.clone());
    let inventory = axum::Router::new()
        .route(
            "/warehouses",
            get(move || {
                let calls = warehouses.clone();
                async move {
                    calls.lock().unwrap().push("warehouses".into());
                    axum::Json(json!({"items": [{"id": "w1", "name": "North", "capacity": 9}], "total_count": 1}))
                }
            }),
        )
        .route(
            "/categories",
            get(move |RawQuery(query): RawQuery| {
                let calls = categories.clone();
                async move {
                    calls.lock().unwrap().push(format!("categories?{}", query.unwrap_or_default()));
                    axum::Json(json!([{"slug": "bolts", "name": "Bolts"}, {"name": "no value"}]))
                }
            }),
        );
    let (inventory, _s) = harness::serve(inventory).await;
    let extra = format!("services:\n  inventory-svc:\n    base_url: \"{inventory}\"\n");
    let bff = Bff::start(&config(&jwks, &extra), &[]);

    let (status, body) = fetch(&bff, "/ui/lookups/inventory.warehouses", "acme").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"options": [{"label": "North", "value": "w1"}]})
    );
    fetch(&bff, "/ui/lookups/inventory.warehouses", "acme").await;
    assert_eq!(calls.lock().unwrap().len(), 1, "cached for the tenant");
    fetch(&bff, "/ui/lookups/inventory.warehouses", "globex").await;
    assert_eq!(
        calls.lock().unwrap().len(),
        2,
        "scope tenant: another tenant asks again"
    );

    // Global scope and a search field: q goes out as `query`; cached for all.
    let (_, body) = fetch(&bff, "/ui/lookups/inventory.categories?q=bo", "acme").await;
    assert_eq!(
        body,
        json!({"options": [{"label": "Bolts", "value": "bolts"}]}),
        "items without a value are left out"
    );
    fetch(&bff, "/ui/lookups/inventory.categories?q=bo", "globex").await;
    assert_eq!(
        calls.lock().unwrap()[2..],
        ["categories?query=bo".to_string()],
        "scope global: one call for both tenants"
    );

    let (status, body) = fetch(&bff, "/ui/lookups/nope", "acme").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "NOT_FOUND");
}
