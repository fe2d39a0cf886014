//! Page and form data against mock backends on 127.0.0.1 that answer like
//! the sample specs and record what they were sent.

use std::sync::{Arc, Mutex};

use axum::extract::{Path, RawQuery};
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::routing::get;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{self, Bff, client, config, jwks, token};

/// What a mock backend saw: path, query string, Authorization, correlation ID.
type Seen = Arc<Mutex<Vec<(String, String, String, String)>>>;

fn record(seen: &Seen, path: &str, query: Option<String>, headers: &HeaderMap) {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    seen.lock().unwrap().push((
        path.to_string(),
        query.unwrap_or_default(),
        header("authorization"),
        header("x-correlation-id"),
    ));
}

/// orders-svc: a page of orders with fields the UI does not name, and one
/// order by ID.
async fn orders_backend(seen: Seen) -> (String, tokio::sync::oneshot::Sender<()>) {
    let list_seen = seen.clone();
    let router = axum::Router::new()
        .route(
            "/orders",
            get(move |RawQuery(query): RawQuery, headers: HeaderMap| {
                let seen = list_seen.clone();
                async move {
                    record(&seen, "/orders", query, &headers);
                    axum::Json(json!({
                        "data": [{
                            "id": "o1", "order_number": "A-1", "customer_name": "Ann",
                            "status": "pending", "created_at": "2026-11-01T10:00:00Z",
                            "total": {"amount": 10, "currency": "EUR"},
                            "internal_cost": 7
                        }],
                        "total": 41, "offset": 10, "limit": 10
                    }))
                }
            }),
        )
        .route(
            "/orders/{id}",
            get(move |Path(id): Path<String>, headers: HeaderMap| {
                let seen = seen.clone();
                async move {
                    record(&seen, &format!("/orders/{id}"), None, &headers);
                    if id != "o1" {
                        return Err((
                            AxumStatus::NOT_FOUND,
                            "{\"detail\": \"no order o1x in db shard 7\"}",
                        ));
                    }
                    Ok(axum::Json(
                        json!({"id": "o1", "priority": "high", "margin": 0.4}),
                    ))
                }
            }),
        );
    harness::serve(router).await
}

fn services(orders: &str, inventory: &str, customers: &str) -> String {
    format!(
        r#"services:
  orders-svc:
    base_url: "{orders}"
    timeout: 2s
    pagination: {{style: offset, page_param: offset, size_param: limit, sort_param: sort_by, sort_dir_param: order}}
  inventory-svc:
    base_url: "{inventory}"
    pagination: {{style: page, page_param: page, size_param: per_page}}
  customers-svc:
    base_url: "{customers}"
    pagination: {{style: cursor, cursor_param: after, size_param: first}}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_data_maps_paging_sorting_filters_and_projects_fields() {
    let (jwks, _stop) = jwks().await;
    let seen = Seen::default();
    let (orders, stop_orders) = orders_backend(seen.clone()).await;
    let bff = Bff::start(
        &config(
            &jwks,
            &services(&orders, "http://127.0.0.1:9", "http://127.0.0.1:9"),
        ),
        &[],
    );
    let clerk = token(&["order_clerk"]);
    let response = client()
        .get(bff.url(
            "/ui/pages/orders.list/data?page=2&page_size=10&sort=total.amount&sort_dir=asc&status=pending&bogus=1",
        ))
        .bearer_auth(&clerk)
        .header("X-Correlation-Id", "corr-7")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["items"][0],
        json!({
            "id": "o1", "number": "A-1", "customer_name": "Ann", "status": "pending",
            "created_at": "2026-11-01T10:00:00Z", "total": {"amount": 10}
        }),
        "only named fields, under their UI names"
    );
    assert_eq!(body["total"], 41);
    assert_eq!(body["page"], 2);
    assert_eq!(body["page_size"], 10);

    let (path, query, authorization, correlation) = seen.lock().unwrap()[0].clone();
    assert_eq!(path, "/orders");
    assert_eq!(
        query,
        "offset=10&limit=10&sort_by=total.amount&order=asc&status=pending&priority=normal"
    );
    assert_eq!(authorization, format!("Bearer {clerk}"), "forward_token");
    assert_eq!(correlation, "corr-7");

    // Defaults: first page, the table's size and sort.
    client()
        .get(bff.url("/ui/pages/orders.list/data"))
        .bearer_auth(&clerk)
        .send()
        .await
        .unwrap();
    let (_, query, _, _) = seen.lock().unwrap()[1].clone();
    assert_eq!(
        query,
        "offset=0&limit=25&sort_by=created_at&order=desc&priority=normal"
    );

    // Not sortable, not a number, not visible: refused before any call.
    for (url, status, code) in [
        (
            "/ui/pages/orders.list/data?sort=customer_name",
            400,
            "INVALID_QUERY",
        ),
        ("/ui/pages/orders.list/data?page=0", 400, "INVALID_QUERY"),
        ("/ui/pages/orders.detail/data", 404, "NOT_FOUND"),
    ] {
        let response = client()
            .get(bff.url(url))
            .bearer_auth(&clerk)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{url}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{url}");
    }
    let hidden = client()
        .get(bff.url("/ui/pages/orders.list/data"))
        .bearer_auth(token(&["inventory_manager"]))
        .send()
        .await
        .unwrap();
    assert_eq!(hidden.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        seen.lock().unwrap().len(),
        2,
        "refused requests call nothing"
    );

    // Backend down: 502 in the error shape.
    stop_orders.send(()).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let response = client()
        .get(bff.url("/ui/pages/orders.list/data"))
        .bearer_auth(&clerk)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "BACKEND_UNAVAILABLE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn form_data_loads_the_record_and_maps_backend_errors() {
    let (jwks, _stop) = jwks().await;
    let seen = Seen::default();
    let (orders, _stop_orders) = orders_backend(seen.clone()).await;
    let bff = Bff::start(
        &config(
            &jwks,
            &services(&orders, "http://127.0.0.1:9", "http://127.0.0.1:9"),
        ),
        &[],
    );
    let clerk = token(&["order_clerk"]);
    let (status, body) = fetch(&bff, "/ui/forms/orders.edit_form/data?orderId=o1", &clerk).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"data": {"id": "o1", "priority": "high"}}),
        "margin stays behind"
    );
    assert_eq!(seen.lock().unwrap()[0].0, "/orders/o1");

    // The backend's 404 body never reaches the caller.
    let (status, body) = fetch(&bff, "/ui/forms/orders.edit_form/data?orderId=o1x", &clerk).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!body.to_string().contains("shard"), "{body}");

    // A path parameter is required.
    let (status, body) = fetch(&bff, "/ui/forms/orders.edit_form/data", &clerk).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("orderId"),
        "{body}"
    );

    // The viewer may not edit orders: the form's data is not found.
    let (status, _) = fetch(
        &bff,
        "/ui/forms/orders.edit_form/data?orderId=o1",
        &token(&["viewer"]),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_and_cursor_pagination_use_the_services_parameter_names() {
    let (jwks, _stop) = jwks().await;
    let seen = Seen::default();
    let inventory_seen = seen.clone();
    let inventory = axum::Router::new().route(
        "/products",
        get(move |RawQuery(query): RawQuery, headers: HeaderMap| {
            let seen = inventory_seen.clone();
            async move {
                record(&seen, "/products", query, &headers);
                axum::Json(json!({"items": [{"id": "p1", "sku": "S-1", "name": "Bolt", "cost": 1}], "total_count": 1}))
            }
        }),
    );
    let customers_seen = seen.clone();
    let customers = axum::Router::new().route(
        "/customers",
        get(move |RawQuery(query): RawQuery, headers: HeaderMap| {
            let seen = customers_seen.clone();
            async move {
                record(&seen, "/customers", query, &headers);
                axum::Json(json!({
                    "data": [{"id": "c1", "display_name": "Ann"}],
                    "page_info": {"end_cursor": "c1", "has_next_page": true}
                }))
            }
        }),
    );
    let (inventory, _s1) = harness::serve(inventory).await;
    let (customers, _s2) = harness::serve(customers).await;
    let bff = Bff::start(
        &config(
            &jwks,
            &services("http://127.0.0.1:9", &inventory, &customers),
        ),
        &[],
    );
    let admin = token(&["admin"]);

    let (status, body) = fetch(&bff, "/ui/pages/inventory.products/data?page=3", &admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["total"], 1);
    assert!(body["items"][0].get("cost").is_none(), "{body}");
    let (status, body) = fetch(&bff, "/ui/pages/customers.list/data?cursor=c0", &admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["items"][0]["name"], "Ann",
        "field_map name → display_name"
    );
    assert_eq!(body["next_cursor"], "c1");

    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].0, "/products");
    assert!(
        seen[0]
            .1
            .starts_with("page=3&per_page=50&sort=name&sort_dir=asc"),
        "{}",
        seen[0].1
    );
    assert_eq!(seen[1].0, "/customers");
    assert!(seen[1].1.starts_with("after=c0&first=20"), "{}", seen[1].1);
}

async fn fetch(bff: &Bff, path: &str, token: &str) -> (StatusCode, Value) {
    harness::get_json(&bff.url(path), token).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn navigation_badges_are_filled_cached_and_never_fail_the_menu() {
    let (jwks, _stop) = jwks().await;
    let calls: Seen = Seen::default();
    let calls_in = calls.clone();
    let orders = axum::Router::new().route(
        "/orders/counts",
        get(move |headers: HeaderMap| {
            let seen = calls_in.clone();
            async move {
                record(&seen, "/orders/counts", None, &headers);
                axum::Json(json!({"pending": 4, "returns_open": 2, "processing": 1}))
            }
        }),
    );
    let (orders, _s) = harness::serve(orders).await;
    // inventory-svc is down: its badge comes without a value.
    let bff = Bff::start(
        &config(
            &jwks,
            &services(&orders, "http://127.0.0.1:9", "http://127.0.0.1:9"),
        ),
        &[],
    );
    let (status, body) = fetch(&bff, "/ui/navigation", &token(&["admin"])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let orders_menu = &body["items"][0];
    assert_eq!(orders_menu["domain"], "orders");
    let badges: Vec<&Value> = orders_menu["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["badge"])
        .collect();
    assert_eq!(badges[0]["value"], 4, "{body}");
    assert_eq!(badges[1]["value"], 2, "{body}");
    let inventory = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["domain"] == "inventory")
        .unwrap();
    let low_stock = inventory["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c.get("badge").is_some())
        .unwrap();
    assert!(low_stock["badge"].get("value").is_none(), "{low_stock}");
    assert_eq!(low_stock["badge"]["style"], "danger");

    // One call for both orders badges; the second menu comes from the cache.
    fetch(&bff, "/ui/navigation", &token(&["admin"])).await;
    assert_eq!(calls.lock().unwrap().len(), 1);
}
