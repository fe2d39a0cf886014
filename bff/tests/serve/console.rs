//! What the original Thesa's admin console asks of the BFF for its menu:
//! `POST /ui/capabilities/batch-check` with its exact body (underscore
//! keys by namespace), and its fallback `GET /ui/capabilities`, read as
//! the console reads them.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Bff, answer, client, config, get_json, jwks, token};

/// The console's request: its permission registry by namespace, with
/// keys of the sample domains among its own.
fn console_body() -> Value {
    json!({"checks": [
        {"namespace": "service_profile", "permissions": ["profile_view", "profile_create"]},
        {"namespace": "service_tenancy", "permissions": ["tenancy_view"]},
        {"namespace": "service_orders", "permissions":
            ["orders_view", "orders_cancel", "orders_returns_view", "orders_delete"]},
        {"namespace": "service_inventory", "permissions": ["inventory_view", "inventory_stock_adjust"]}
    ]})
}

/// `RuntimePermissionBatchChecker.checkAll`: 200 and `granted` as a list
/// (null reads as empty).
async fn batch_check(bff: &Bff, roles: &[&str], body: &Value) -> (StatusCode, Vec<String>) {
    let (status, answer) = answer(
        client()
            .post(bff.url("/ui/capabilities/batch-check"))
            .bearer_auth(token(roles))
            .header("content-type", "application/json")
            .body(body.to_string()),
    )
    .await;
    let granted = match &answer["granted"] {
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().unwrap().to_string())
            .collect(),
        other => panic!("granted is not a list: {other}"),
    };
    (status, granted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_check_grants_the_keys_the_caller_holds() {
    let (jwks, _stop) = jwks().await;
    let bff = Bff::start(&config(&jwks, ""), &[]);
    let body = console_body();

    let (status, clerk) = batch_check(&bff, &["order_clerk"], &body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        clerk,
        ["orders_view", "orders_cancel", "orders_returns_view"]
    );
    let (_, viewer) = batch_check(&bff, &["viewer"], &body).await;
    assert_eq!(viewer, ["orders_view", "inventory_view"]);
    // `orders:*` grants every orders key, and only those.
    let (_, lead) = batch_check(&bff, &["support_lead"], &body).await;
    assert_eq!(
        lead,
        [
            "orders_view",
            "orders_cancel",
            "orders_returns_view",
            "orders_delete"
        ]
    );
    let (_, stock) = batch_check(&bff, &["inventory_manager"], &body).await;
    assert_eq!(stock, ["inventory_view", "inventory_stock_adjust"]);
    let (_, admin) = batch_check(&bff, &["admin"], &body).await;
    assert_eq!(admin.len(), 9, "{admin:?}");
    // Nothing granted is an empty list, never null.
    let (status, nobody) = batch_check(&bff, &[], &body).await;
    assert_eq!(status, StatusCode::OK);
    assert!(nobody.is_empty());
    let (status, none) = batch_check(&bff, &["admin"], &json!({"checks": []})).await;
    assert_eq!((status, none.len()), (StatusCode::OK, 0));

    // A body that is not the shape is 400 (the console then falls back).
    let response = client()
        .post(bff.url("/ui/capabilities/batch-check"))
        .bearer_auth(token(&["admin"]))
        .body("{\"checks\": 5}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // Without a token: 401, like every other route.
    let response = client()
        .post(bff.url("/ui/capabilities/batch-check"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

/// The console's fallback parse: `user.permissions` when it is a list,
/// else the `capabilities` keys whose value is enabled.
fn console_permissions(answer: &Value) -> BTreeSet<String> {
    if let Some(list) = answer["user"]["permissions"].as_array() {
        return list
            .iter()
            .map(|p| p.as_str().unwrap().to_string())
            .collect();
    }
    answer["capabilities"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, v)| v["enabled"] == true || **v == true)
        .map(|(k, _)| k.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capabilities_carry_what_the_console_falls_back_to() {
    let (jwks, _stop) = jwks().await;
    let bff = Bff::start(&config(&jwks, ""), &[]);
    let (status, body) = get_json(&bff.url("/ui/capabilities"), &token(&["viewer"])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Our own fields stay.
    assert_eq!(body["subject_id"], "alice");
    assert_eq!(body["tenant_id"], "acme");
    assert_eq!(body["partition_id"], "eu");
    // The console's.
    assert_eq!(
        body["capabilities"]["orders:view"],
        json!({"enabled": true})
    );
    assert_eq!(body["capabilities"].as_object().unwrap().len(), 3);
    assert_eq!(body["user"]["roles"], json!(["viewer"]));
    assert_eq!(body["tenant"]["tenantId"], "acme");
    assert!(
        body["app"]["version"]
            .as_str()
            .is_some_and(|v| !v.is_empty())
    );
    let permissions = console_permissions(&body);
    for key in [
        "orders:view",
        "orders_view",
        "inventory_view",
        "customers_view",
    ] {
        assert!(permissions.contains(key), "{key} in {permissions:?}");
    }
    assert!(!permissions.contains("orders_cancel"));
    // Without `user.permissions`, the map alone gives the capabilities.
    let mut map_only = body.clone();
    map_only["user"] = json!({});
    assert_eq!(
        console_permissions(&map_only),
        ["customers:view", "inventory:view", "orders:view"]
            .map(String::from)
            .into()
    );
}
