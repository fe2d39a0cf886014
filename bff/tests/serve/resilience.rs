//! Retries and circuit breakers against a mock backend that fails on
//! command.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::StatusCode as AxumStatus;
use axum::response::IntoResponse;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{self, Bff, client, config, jwks, metric, token};

/// orders-svc whose first `failures` requests answer 503; counts requests.
async fn flaky(failures: usize) -> (String, Arc<AtomicUsize>) {
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    let router = axum::Router::new().fallback(move || {
        let counter = counter.clone();
        async move {
            if counter.fetch_add(1, Ordering::SeqCst) < failures {
                return (AxumStatus::SERVICE_UNAVAILABLE, "busy").into_response();
            }
            axum::Json(json!({"data": [], "total": 0, "id": "o1", "status": "cancelled"}))
                .into_response()
        }
    });
    let (url, stop) = harness::serve(router).await;
    std::mem::forget(stop);
    (url, seen)
}

fn services(orders: &str, breaker: &str, retry: &str) -> String {
    format!(
        "services:\n  orders-svc:\n    base_url: \"{orders}\"\n    circuit_breaker: {breaker}\n    retry: {retry}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_calls_are_retried_with_backoff_and_others_are_not() {
    let (jwks, _stop) = jwks().await;
    let (orders, seen) = flaky(2).await;
    let extra = services(
        &orders,
        "{failure_threshold: 10}",
        "{max_attempts: 3, backoff_initial: 20ms, backoff_max: 50ms, idempotent_only: true}",
    );
    let bff = Bff::start(&config(&jwks, &extra), &[]);
    let response = client()
        .get(bff.url("/ui/pages/orders.list/data"))
        .bearer_auth(token(&["order_clerk"]))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "GET retried past two 503s"
    );
    assert_eq!(seen.load(Ordering::SeqCst), 3);
    assert_eq!(
        metric(&bff, "thesa_backend_retries_total").await.as_deref(),
        Some("thesa_backend_retries_total{service_id=\"orders-svc\"} 2")
    );

    // A POST is not idempotent: one attempt only.
    seen.store(0, Ordering::SeqCst);
    let (status, _) = command(&bff).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(seen.load(Ordering::SeqCst), 1);
}

async fn command(bff: &Bff) -> (StatusCode, Value) {
    harness::answer(
        client()
            .post(bff.url("/ui/commands/orders.confirm"))
            .bearer_auth(token(&["order_clerk"]))
            .json(&json!({"input": {"id": "o1"}})),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_opens_after_the_threshold_and_half_opens_after_its_timeout() {
    let (jwks, _stop) = jwks().await;
    let (orders, seen) = flaky(2).await;
    let extra = services(
        &orders,
        "{failure_threshold: 2, success_threshold: 1, timeout: 400ms}",
        "{max_attempts: 1}",
    );
    let bff = Bff::start(&config(&jwks, &extra), &[]);
    let state = "thesa_backend_circuit_breaker_state{service_id=\"orders-svc\"}";
    assert_eq!(
        metric(&bff, state).await.as_deref(),
        Some(&*format!("{state} 0"))
    );

    for _ in 0..2 {
        assert_eq!(command(&bff).await.0, StatusCode::BAD_GATEWAY);
    }
    let (status, body) = command(&bff).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["code"], "BACKEND_CIRCUIT_OPEN");
    assert_eq!(
        seen.load(Ordering::SeqCst),
        2,
        "an open breaker sends nothing"
    );
    assert_eq!(
        metric(&bff, state).await.as_deref(),
        Some(&*format!("{state} 1"))
    );

    // After the timeout a probe goes through; the backend has recovered.
    tokio::time::sleep(Duration::from_millis(450)).await;
    let (status, body) = command(&bff).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(seen.load(Ordering::SeqCst), 3);
    assert_eq!(
        metric(&bff, state).await.as_deref(),
        Some(&*format!("{state} 0"))
    );
}
