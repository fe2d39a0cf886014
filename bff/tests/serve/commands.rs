//! Commands against a mock orders backend that records each request.

use std::sync::{Arc, Mutex};

use axum::extract::Request;
use axum::http::StatusCode as AxumStatus;
use axum::response::IntoResponse;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{self, Bff, client, config, jwks, token};

/// Method, path, headers of interest and JSON body of each request.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    source_header: Option<String>,
    body: Value,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// Answers like orders-svc: cancel of `shipped` fails with a mapped code,
/// of `weird` with an unmapped one; everything else succeeds with extra
/// fields.
async fn backend(log: Log) -> String {
    let router = axum::Router::new().fallback(move |request: Request| {
        let log = log.clone();
        async move {
            let method = request.method().to_string();
            let path = request.uri().path().to_string();
            let source_header = request
                .headers()
                .get("x-request-source")
                .and_then(|v| v.to_str().ok())
                .map(String::from);
            let bytes = axum::body::to_bytes(request.into_body(), 1 << 20).await.unwrap();
            let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            log.lock().unwrap().push(Seen { method, path: path.clone(), source_header, body });
            if path == "/orders/slow/cancel" {
                tokio::time::sleep(std::time::Duration::from_millis(800)).await;
            }
            match path.as_str() {
                "/orders/shipped/cancel" => (
                    AxumStatus::CONFLICT,
                    axum::Json(json!({"code": "ORDER_ALREADY_SHIPPED", "detail": "row 7 locked by batch 12"})),
                )
                    .into_response(),
                "/orders/weird/cancel" => (
                    AxumStatus::CONFLICT,
                    axum::Json(json!({"code": "SOMETHING_ELSE", "detail": "stack trace here"})),
                )
                    .into_response(),
                _ => axum::Json(json!({"id": "o1", "status": "cancelled", "internal": "x"})).into_response(),
            }
        }
    });
    let (url, stop) = harness::serve(router).await;
    std::mem::forget(stop);
    url
}

async fn post(bff: &Bff, command: &str, body: Value, roles: &[&str]) -> (StatusCode, Value) {
    harness::answer(
        client()
            .post(bff.url(&format!("/ui/commands/{command}")))
            .bearer_auth(token(roles))
            // A fresh key each time (orders.cancel requires one).
            .header("X-Idempotency-Key", uuid::Uuid::new_v4().to_string())
            .json(&body),
    )
    .await
}

async fn start(log: &Log) -> (Bff, tokio::sync::oneshot::Sender<()>) {
    let (jwks, stop) = jwks().await;
    let orders = backend(log.clone()).await;
    let extra = format!(
        "services:\n  orders-svc:\n    base_url: \"{orders}\"\nidempotency:\n  enabled: true\n"
    );
    (Bff::start(&config(&jwks, &extra), &[]), stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_body_headers_and_projected_result() {
    let log = Log::default();
    let (bff, _stop) = start(&log).await;
    let (status, body) = post(
        &bff,
        "orders.cancel",
        json!({"input": {"reason": "late", "extra": "not sent"}, "route_params": {"id": "o1"}}),
        &["order_clerk"],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"success": true, "message": "Order cancelled.", "result": {"id": "o1", "status": "cancelled"}})
    );
    let seen = log.lock().unwrap()[0].clone();
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str()),
        ("POST", "/orders/o1/cancel")
    );
    assert_eq!(seen.source_header.as_deref(), Some("thesa-bff"));
    assert_eq!(
        seen.body,
        json!({"reason": "late", "cancelled_by": "alice", "notify_customer": "true"}),
        "only the template's fields"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projection_sends_only_projected_fields_after_form_validation() {
    let log = Log::default();
    let (bff, _stop) = start(&log).await;
    let input = json!({"priority": "high", "notes": "ring twice", "line1": "Main 1", "city": "Oslo", "is_admin": true});
    let (status, body) = post(
        &bff,
        "orders.update",
        json!({"input": input, "route_params": {"id": "o1"}}),
        &["order_clerk"],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let seen = log.lock().unwrap()[0].clone();
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str()),
        ("PATCH", "/orders/o1")
    );
    assert_eq!(
        seen.body,
        json!({"priority": "high", "notes": "ring twice", "shipping_address": {"line1": "Main 1", "city": "Oslo"}})
    );

    // orders.update is the submit command of orders.edit_form: its rules apply.
    let (status, body) = post(
        &bff,
        "orders.update",
        json!({"input": {"notes": "x".repeat(2001), "line1": "Main 1", "postal_code": "no!"}, "route_params": {"id": "o1"}}),
        &["order_clerk"],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "VALIDATION_ERROR");
    let fields: Vec<&str> = body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["priority", "notes", "city", "postal_code"],
        "{body}"
    );
    assert_eq!(
        log.lock().unwrap().len(),
        1,
        "an invalid input calls nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_errors_are_mapped_or_hidden_and_capabilities_apply() {
    let log = Log::default();
    let (bff, _stop) = start(&log).await;
    let cancel = |id: &str| json!({"input": {"reason": "r"}, "route_params": {"id": id}});

    let (status, body) = post(&bff, "orders.cancel", cancel("shipped"), &["order_clerk"]).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "ORDER_ALREADY_SHIPPED");
    assert_eq!(
        body["error"]["message"],
        "This order has shipped; start a return instead."
    );
    assert!(!body.to_string().contains("batch 12"), "{body}");

    let (status, body) = post(&bff, "orders.cancel", cancel("weird"), &["order_clerk"]).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(body["error"]["code"], "BACKEND_ERROR");
    assert!(!body.to_string().contains("stack trace"), "{body}");

    // Passthrough sends the input as it is.
    let (status, body) = post(
        &bff,
        "orders.confirm",
        json!({"input": {"id": "o1", "note": "ok"}}),
        &["order_clerk"],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let seen = log.lock().unwrap().last().unwrap().clone();
    assert_eq!(seen.path, "/orders/o1/confirm");

    // A caller without the capability sees no such command; a missing
    // path value and a malformed body are 400; none reaches the backend.
    let calls = log.lock().unwrap().len();
    let (status, _) = post(&bff, "orders.cancel", cancel("o1"), &["viewer"]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = post(
        &bff,
        "orders.cancel",
        json!({"input": {}}),
        &["order_clerk"],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = post(
        &bff,
        "orders.cancel",
        json!({"inputs": {}}),
        &["order_clerk"],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(log.lock().unwrap().len(), calls);
}

/// `orders.cancel` at `bff` (the server's base URL) with an idempotency key.
async fn post_keyed(
    bff: &str,
    key: Option<&str>,
    id: &str,
    reason: &str,
    tenant: &str,
) -> reqwest::Response {
    let mut request = client()
        .post(format!("{bff}/ui/commands/orders.cancel"))
        .bearer_auth(harness::rs256(&harness::claims(
            "alice",
            tenant,
            &["order_clerk"],
        )))
        .json(&json!({"input": {"reason": reason}, "route_params": {"id": id}}));
    if let Some(key) = key {
        request = request.header("X-Idempotency-Key", key);
    }
    request.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_run_once_replay_and_refuse_reuse() {
    let log = Log::default();
    let (server, _stop) = start(&log).await;
    let bff = &server.url("");
    let calls = || log.lock().unwrap().len();

    let response = post_keyed(bff, None, "o1", "late", "acme").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "IDEMPOTENCY_KEY_REQUIRED");
    assert_eq!(calls(), 0);

    let first = post_keyed(bff, Some("k1"), "o1", "late", "acme").await;
    assert_eq!(first.status(), StatusCode::OK);
    let first: Value = first.json().await.unwrap();
    let again = post_keyed(bff, Some("k1"), "o1", "late", "acme").await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    assert_eq!(calls(), 1, "the duplicate is replayed, not run");

    let reused = post_keyed(bff, Some("k1"), "o1", "other reason", "acme").await;
    assert_eq!(reused.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // Keys are per tenant.
    let other_tenant = post_keyed(bff, Some("k1"), "o1", "late", "globex").await;
    assert_eq!(other_tenant.status(), StatusCode::OK);
    assert!(other_tenant.headers().get("idempotent-replayed").is_none());
    assert_eq!(calls(), 2);

    // A mapped backend error is the answer too, and is replayed.
    let shipped = post_keyed(bff, Some("k2"), "shipped", "r", "acme").await;
    assert_eq!(shipped.status(), StatusCode::CONFLICT);
    let shipped_again = post_keyed(bff, Some("k2"), "shipped", "r", "acme").await;
    assert_eq!(shipped_again.status(), StatusCode::CONFLICT);
    assert_eq!(shipped_again.headers()["idempotent-replayed"], "true");
    assert_eq!(calls(), 3);

    // A backend failure (502) frees the key: the retry runs.
    let failed = post_keyed(bff, Some("k3"), "weird", "r", "acme").await;
    assert_eq!(failed.status(), StatusCode::BAD_GATEWAY);
    let retried = post_keyed(bff, Some("k3"), "weird", "r", "acme").await;
    assert_eq!(retried.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(calls(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_while_the_first_runs_gets_409() {
    let log = Log::default();
    let (server, _stop) = start(&log).await;
    let bff = server.url("");
    let first = {
        let bff = bff.clone();
        tokio::spawn(async move {
            post_keyed(&bff, Some("slow-1"), "slow", "r", "acme")
                .await
                .status()
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let duplicate = post_keyed(&bff, Some("slow-1"), "slow", "r", "acme").await;
    assert_eq!(duplicate.status(), StatusCode::CONFLICT);
    let body: Value = duplicate.json().await.unwrap();
    assert_eq!(body["error"]["code"], "IDEMPOTENCY_IN_FLIGHT");
    assert_eq!(first.await.unwrap(), StatusCode::OK);
    assert_eq!(log.lock().unwrap().len(), 1, "run once");
}

/// Two BFF processes sharing one Redis run a command once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_sharing_redis_run_a_command_once() {
    let redis = crate::redis::Redis::start();
    let log = Log::default();
    let (jwks, _stop) = jwks().await;
    let orders = backend(log.clone()).await;
    let extra = format!(
        "services:\n  orders-svc:\n    base_url: \"{orders}\"\nidempotency:\n  enabled: true\n  store: {{driver: redis}}\n"
    );
    let env = [("THESA_REDIS_ADDR", redis.addr.as_str())];
    let (a, b) = (
        Bff::start(&config(&jwks, &extra), &env),
        Bff::start(&config(&jwks, &extra), &env),
    );
    // The key is per test run, so a shared REDIS_URL holds no old answer.
    let key = uuid::Uuid::new_v4().to_string();

    let first = {
        let (url, key) = (a.url(""), key.clone());
        tokio::spawn(async move {
            post_keyed(&url, Some(&key), "slow", "r", "acme")
                .await
                .status()
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let during = post_keyed(&b.url(""), Some(&key), "slow", "r", "acme").await;
    assert_eq!(
        during.status(),
        StatusCode::CONFLICT,
        "the other instance sees it running"
    );
    assert_eq!(first.await.unwrap(), StatusCode::OK);
    let after = post_keyed(&b.url(""), Some(&key), "slow", "r", "acme").await;
    assert_eq!(after.status(), StatusCode::OK);
    assert_eq!(after.headers()["idempotent-replayed"], "true");
    assert_eq!(log.lock().unwrap().len(), 1, "run once across instances");

    let (_, ready) = harness::answer(client().get(a.url("/ui/ready"))).await;
    assert_eq!(ready["checks"]["idempotency_store"]["driver"], "redis");
}

/// Redis down: readiness degrades, keyed commands answer 503 and do not
/// run, everything else keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_keyed_commands_without_running_them() {
    let mut redis = crate::redis::Redis::start();
    if std::env::var("REDIS_URL").is_ok() {
        // A shared Redis cannot be stopped by this test; the embedded one can.
        redis = crate::redis::Redis::start_own();
    }
    let log = Log::default();
    let (jwks, _stop) = jwks().await;
    let orders = backend(log.clone()).await;
    let extra = format!(
        "services:\n  orders-svc:\n    base_url: \"{orders}\"\nidempotency:\n  enabled: true\n  store: {{driver: redis}}\n"
    );
    let bff = Bff::start(
        &config(&jwks, &extra),
        &[("THESA_REDIS_ADDR", redis.addr.as_str())],
    );
    redis.stop();

    let response = post_keyed(&bff.url(""), Some("k-down"), "o1", "r", "acme").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "IDEMPOTENCY_STORE_UNAVAILABLE");
    assert_eq!(log.lock().unwrap().len(), 0, "never run without its key");

    let ready = client().get(bff.url("/ui/ready")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK, "a store is not critical");
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["status"], "degraded");
    assert_eq!(ready["checks"]["idempotency_store"]["status"], "error");
    let navigation = client()
        .get(bff.url("/ui/navigation"))
        .bearer_auth(token(&["order_clerk"]))
        .send()
        .await
        .unwrap();
    assert_eq!(navigation.status(), StatusCode::OK);
}
