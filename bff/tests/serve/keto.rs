//! `capability.evaluator: keto` against a local server implementing the
//! endpoints of Ory Keto's read API the evaluator uses, as Keto's
//! published OpenAPI (PermissionApi, health) describes them:
//!
//! - `POST /relation-tuples/batch/check[?max-depth=N]`, body
//!   `{"tuples": [{namespace, object, relation, subject_id}]}`, answering
//!   200 `{"results": [{"allowed": bool, "error"?: string}]}` in input
//!   order; more tuples than the batch limit (Keto's default 10) is a 400
//!   in Ory's error format;
//! - `POST /relation-tuples/check/openapi`, body one tuple, answering 200
//!   `{"allowed": bool}`;
//! - `GET /health/ready`, answering 200 `{"status": "ok"}`.
//!
//! A tuple is allowed when it is in the server's set, written
//! `namespace:object#relation@subject`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::http::StatusCode as AxumStatus;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{self, Bff, answer, client, config, get_json, jwks};

/// Keto's default `limit.max_batch_size`.
const MAX_BATCH: usize = 10;

#[derive(Default)]
struct Calls {
    /// Sizes of the batch checks received.
    batches: Vec<usize>,
    /// Single checks received.
    singles: usize,
}

fn written(tuple: &Value) -> String {
    format!(
        "{}:{}#{}@{}",
        tuple["namespace"].as_str().unwrap_or_default(),
        tuple["object"].as_str().unwrap_or_default(),
        tuple["relation"].as_str().unwrap_or_default(),
        tuple["subject_id"].as_str().unwrap_or_default()
    )
}

/// A Keto read API holding `tuples`; without `batch`, it is a Keto from
/// before the batch check (404 there).
async fn keto(
    tuples: &[&str],
    batch: bool,
) -> (String, tokio::sync::oneshot::Sender<()>, Arc<Mutex<Calls>>) {
    let store: Arc<HashSet<String>> = Arc::new(tuples.iter().map(|t| t.to_string()).collect());
    let calls = Arc::new(Mutex::new(Calls::default()));
    let mut router = axum::Router::new()
        .route(
            "/health/ready",
            get(|| async { Json(json!({"status": "ok"})) }),
        )
        .route(
            "/relation-tuples/check/openapi",
            post({
                let (store, calls) = (store.clone(), calls.clone());
                move |Json(tuple): Json<Value>| async move {
                    calls.lock().unwrap().singles += 1;
                    Json(json!({"allowed": store.contains(&written(&tuple))}))
                }
            }),
        );
    if batch {
        router = router.route(
            "/relation-tuples/batch/check",
            post({
                let (store, calls) = (store.clone(), calls.clone());
                move |Json(body): Json<Value>| async move {
                    let tuples = body["tuples"].as_array().cloned().unwrap_or_default();
                    calls.lock().unwrap().batches.push(tuples.len());
                    if tuples.len() > MAX_BATCH {
                        return (
                            AxumStatus::BAD_REQUEST,
                            Json(json!({"error": {"code": 400, "status": "Bad Request",
                                "message": format!("batch exceeds max size of {MAX_BATCH}")}})),
                        )
                            .into_response();
                    }
                    let results: Vec<Value> = tuples
                        .iter()
                        .map(|t| json!({"allowed": store.contains(&written(t))}))
                        .collect();
                    Json(json!({"results": results})).into_response()
                }
            }),
        );
    }
    let (url, stop) = harness::serve(router).await;
    (url, stop, calls)
}

/// Orders' namespace comes from its service's `authorization_namespace`,
/// inventory's from `keto.namespaces`; customers has none.
fn keto_config(url: &str) -> String {
    format!(
        r#"services:
  orders-svc:
    base_url: "http://127.0.0.1:9"
    authorization_namespace: service_orders
capability:
  evaluator: keto
  keto:
    read_url: "{url}"
    timeout: 1s
    namespaces:
      inventory: service_inventory
"#
    )
}

const TUPLES: &[&str] = &[
    "service_orders:acme/eu#orders_view@alice",
    "service_orders:acme/eu#orders_cancel@alice",
    "service_inventory:acme/eu#inventory_view@alice",
    "service_profile:acme/eu#profile_view@alice",
    // Another tenant's grants never reach acme's callers.
    "service_orders:globex/eu#orders_edit@alice",
    // Customers has no namespace: never asked.
    "customers:acme/eu#customers_view@alice",
];

fn labels(navigation: &Value) -> Vec<&str> {
    navigation["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["label"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keto_decides_capabilities_and_console_checks() {
    let (keto_url, stop_keto, calls) = keto(TUPLES, true).await;
    let (jwks, _stop) = jwks().await;
    let bff = Bff::start(&config(&jwks, &keto_config(&keto_url)), &[]);
    let alice = harness::token(&["viewer"]);

    let (status, navigation) = get_json(&bff.url("/ui/navigation"), &alice).await;
    assert_eq!(status, StatusCode::OK, "{navigation}");
    assert_eq!(labels(&navigation), ["Orders", "Inventory"]);
    let (_, capabilities) = get_json(&bff.url("/ui/capabilities"), &alice).await;
    let granted: Vec<&String> = capabilities["capabilities"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(granted, ["inventory:view", "orders:cancel", "orders:view"]);
    {
        let calls = calls.lock().unwrap();
        // 8 orders and 5 inventory capabilities, at most 10 a call.
        assert_eq!(
            calls.batches.iter().sum::<usize>(),
            13,
            "{:?}",
            calls.batches
        );
        assert!(calls.batches.iter().all(|n| *n <= MAX_BATCH));
        assert_eq!(calls.singles, 0);
    }
    // The second request was answered by the cache.
    assert_eq!(
        harness::metric(&bff, "thesa_capability_cache_hits_total")
            .await
            .as_deref(),
        Some("thesa_capability_cache_hits_total 1")
    );

    // The console's keys are Keto's namespace and relation as they are.
    let (status, checked) = answer(
        client()
            .post(bff.url("/ui/capabilities/batch-check"))
            .bearer_auth(&alice)
            .json(&json!({"checks": [
                {"namespace": "service_orders", "permissions": ["orders_view", "orders_edit"]},
                {"namespace": "service_profile", "permissions": ["profile_view", "profile_create"]}
            ]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{checked}");
    assert_eq!(checked, json!({"granted": ["orders_view", "profile_view"]}));
    let asked = calls.lock().unwrap().batches.len();

    // The object is `<tenant>/<partition>`: in eu/west alice holds nothing.
    let west = client()
        .get(bff.url("/ui/navigation"))
        .bearer_auth(&alice)
        .header("X-Partition-Id", "eu/west")
        .send()
        .await
        .unwrap();
    assert_eq!(west.status(), StatusCode::OK);
    let west: Value = west.json().await.unwrap();
    assert!(labels(&west).is_empty(), "{west}");
    assert!(calls.lock().unwrap().batches.len() > asked);

    // Keto down: not ready; a caller the cache knows keeps working, one it
    // does not gets 503.
    let (_, ready) = answer(client().get(bff.url("/ui/ready"))).await;
    assert_eq!(ready["checks"]["policy_engine"]["evaluator"], "keto");
    stop_keto.send(()).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (status, ready) = answer(client().get(bff.url("/ui/ready"))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{ready}");
    assert_eq!(ready["checks"]["policy_engine"]["status"], "error");
    let (status, _) = get_json(&bff.url("/ui/navigation"), &alice).await;
    assert_eq!(status, StatusCode::OK);
    let bob = harness::rs256(&harness::claims("bob", "acme", &["viewer"]));
    let (status, body) = get_json(&bff.url("/ui/navigation"), &bob).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["code"], "CAPABILITIES_UNAVAILABLE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keto_without_batch_check_is_asked_one_tuple_at_a_time() {
    let (keto_url, _stop_keto, calls) = keto(TUPLES, false).await;
    let (jwks, _stop) = jwks().await;
    let bff = Bff::start(&config(&jwks, &keto_config(&keto_url)), &[]);
    let (status, navigation) =
        get_json(&bff.url("/ui/navigation"), &harness::token(&["viewer"])).await;
    assert_eq!(status, StatusCode::OK, "{navigation}");
    assert_eq!(labels(&navigation), ["Orders", "Inventory"]);
    assert_eq!(calls.lock().unwrap().singles, 13);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keto_without_its_section_stops_start_up() {
    let (jwks, _stop) = jwks().await;
    let extra = "capability:\n  evaluator: keto\n";
    let exited = Bff::try_start(&config(&jwks, extra), &[]).err().unwrap();
    assert_eq!(exited.status.code(), Some(1));
    let text = exited.lines.join("\n");
    assert!(text.contains("capability.keto"), "{text}");
}
