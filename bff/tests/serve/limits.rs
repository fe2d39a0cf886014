//! Size limits (request bodies, backend answers, request heads) and the
//! headers every answer carries.

use axum::body::Body;
use axum::extract::Path;
use axum::response::IntoResponse;
use axum::routing::get;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{self, Bff, client, config, jwks, token};

/// Backend answers of 256 KiB: `/orders` streamed in chunks without a
/// Content-Length, `/orders/{id}` with one; `/orders/small` is small.
async fn big_backend() -> (String, tokio::sync::oneshot::Sender<()>) {
    let router = axum::Router::new()
        .route(
            "/orders",
            get(|| async {
                let chunks = (0..256).map(|_| Ok::<_, std::io::Error>(vec![b' '; 1024]));
                axum::response::Response::builder()
                    .header("content-type", "application/json")
                    .body(Body::from_stream(futures::stream::iter(chunks)))
                    .unwrap()
            }),
        )
        .route(
            "/orders/{id}",
            get(|Path(id): Path<String>| async move {
                if id == "small" {
                    return axum::Json(json!({"id": "small", "priority": "low"})).into_response();
                }
                let mut body = vec![b' '; 256 * 1024];
                body.extend_from_slice(b"{}");
                ([("content-type", "application/json")], body).into_response()
            }),
        );
    harness::serve(router).await
}

fn limited(jwks: &str, orders: &str) -> String {
    config(
        jwks,
        &format!(
            r#"services:
  orders-svc:
    base_url: "{orders}"
    timeout: 5s
    retry: {{max_attempts: 1}}
"#
        ),
    )
    .replace(
        "server:\n",
        "server:\n  max_request_body_bytes: 4096\n  max_backend_response_bytes: 65536\n  \
         max_header_bytes: 16384\n  hsts: {enabled: true, max_age: 1h}\n",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_answers_and_heads_are_limited() {
    let (jwks, _stop) = jwks().await;
    let (orders, _stop_orders) = big_backend().await;
    let bff = Bff::start(&limited(&jwks, &orders), &[]);
    let clerk = token(&["order_clerk"]);

    // A backend answer past the limit: 502, whether it declares its length
    // or streams.
    for path in [
        "/ui/pages/orders.list/data",
        "/ui/forms/orders.edit_form/data?orderId=o1",
    ] {
        let (status, body) = harness::get_json(&bff.url(path), &clerk).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{path}: {body}");
        assert_eq!(
            body["error"]["code"], "BACKEND_RESPONSE_TOO_LARGE",
            "{body}"
        );
    }
    let (status, body) = harness::get_json(
        &bff.url("/ui/forms/orders.edit_form/data?orderId=small"),
        &clerk,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A request body past the limit: 413 in the error shape, whether it
    // declares its length or is chunked.
    let url = bff.url("/ui/commands/orders.update");
    let big = json!({"input": {"notes": "x".repeat(5000)}, "route_params": {"id": "o1"}});
    let response = client()
        .post(&url)
        .bearer_auth(&clerk)
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let correlation = response.headers()["x-correlation-id"].clone();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "PAYLOAD_TOO_LARGE", "{body}");
    assert_eq!(
        body["error"]["correlation_id"],
        correlation.to_str().unwrap()
    );

    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![Ok(serde_json::to_vec(&big).unwrap())];
    let response = client()
        .post(&url)
        .bearer_auth(&clerk)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "PAYLOAD_TOO_LARGE", "{body}");

    // A head past the limit: 431 from hyper.
    let response = client()
        .get(bff.url("/ui/health"))
        .header("x-padding", "p".repeat(20_000))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_the_security_headers() {
    let (jwks, _stop) = jwks().await;
    let (orders, _stop_orders) = big_backend().await;
    let bff = Bff::start(&limited(&jwks, &orders), &[]);
    let viewer = token(&["viewer"]);
    let get = |path: &str, token: Option<&str>| {
        let request = client().get(bff.url(path));
        let request = match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        async move { request.send().await.unwrap() }
    };
    let header = |response: &reqwest::Response, name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    for (path, token, status, cache) in [
        (
            "/ui/capabilities",
            Some(viewer.as_str()),
            200,
            Some("no-store"),
        ),
        (
            "/ui/pages/orders.list",
            Some(viewer.as_str()),
            200,
            Some("private, no-cache"),
        ),
        ("/ui/navigation", None, 401, Some("no-store")),
        (
            "/ui/nothing-here",
            Some(viewer.as_str()),
            404,
            Some("no-store"),
        ),
        ("/metrics", None, 200, None),
        ("/healthz", None, 200, None),
    ] {
        let response = get(path, token).await;
        assert_eq!(response.status().as_u16(), status, "{path}");
        assert_eq!(
            header(&response, "x-content-type-options").as_deref(),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(
            header(&response, "x-frame-options").as_deref(),
            Some("DENY"),
            "{path}"
        );
        assert_eq!(
            header(&response, "strict-transport-security").as_deref(),
            Some("max-age=3600"),
            "{path}"
        );
        assert_eq!(
            header(&response, "cache-control").as_deref(),
            cache,
            "{path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_hsts_unless_configured() {
    let (jwks, _stop) = jwks().await;
    let bff = Bff::start(&config(&jwks, ""), &[]);
    let response = client().get(bff.url("/ui/health")).send().await.unwrap();
    assert!(
        response
            .headers()
            .get("strict-transport-security")
            .is_none()
    );
    assert_eq!(response.headers()["x-frame-options"], "DENY");
}
