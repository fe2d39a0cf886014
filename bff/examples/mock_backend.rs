//! A stand-in orders-svc for benchmarks: `GET /orders` answers a page of
//! 25 orders and `POST /orders/{id}/confirm` a confirmed order, as the
//! sample spec describes, with no work besides building the JSON.
//! `scripts/bench-backend.sh` measures the BFF against calling it directly.
//!
//! `cargo run --release --example mock_backend -- <port>`

use axum::Router;
use axum::extract::Path;
use axum::routing::{get, post};
use serde_json::{Value, json};

fn page() -> Value {
    let orders: Vec<Value> = (0..25)
        .map(|n| {
            json!({
                "id": format!("o{n}"), "order_number": format!("A-{n:05}"),
                "customer_name": "Ann Example", "status": "pending",
                "created_at": "2026-11-01T10:00:00Z",
                "total": {"amount": 100 + n, "currency": "EUR"}
            })
        })
        .collect();
    json!({"data": orders, "total": 1000, "offset": 0, "limit": 25})
}

#[tokio::main]
async fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(9001);
    let body = page();
    let app = Router::new()
        .route(
            "/orders",
            get(move || async move { axum::Json(body.clone()) }),
        )
        .route(
            "/orders/{id}/confirm",
            post(|Path(id): Path<String>| async move {
                axum::Json(json!({"id": id, "status": "confirmed"}))
            }),
        )
        // An OTLP/HTTP collector that accepts and discards spans (an empty
        // protobuf answer is an empty ExportTraceServiceResponse), for
        // scripts/bench-tracing.sh.
        .route(
            "/v1/traces",
            post(|_body: axum::body::Bytes| async {
                (
                    [("content-type", "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }),
        );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    println!("mock orders-svc on 127.0.0.1:{port}");
    axum::serve(listener, app).await.expect("serve");
}
