//! The ceiling for backend calls: a bare pass-through proxy — axum and the
//! BFF's HTTP client (reqwest, as `backends::outbound` builds it), no auth,
//! no mapping, no middleware — answering the BFF's page-data and command
//! routes with the backend requests the BFF makes for them, body bytes
//! passed through. `scripts/bench-backend.sh` load-tests it next to the BFF
//! in front of the same mock backend.
//!
//! `cargo run --release --example passthrough -- <port> <backend-base-url>`

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

#[derive(Clone)]
struct Backend {
    client: reqwest::Client,
    list: String,
    confirm: String,
}

async fn relay(answer: reqwest::Result<reqwest::Response>) -> Response {
    let Ok(answer) = answer else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    match answer.bytes().await {
        Ok(body) => (status, [(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}

async fn page_data(State(b): State<Backend>) -> Response {
    relay(b.client.get(&b.list).send().await).await
}

async fn command(State(b): State<Backend>, body: Bytes) -> Response {
    let request = b
        .client
        .post(&b.confirm)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body);
    relay(request.send().await).await
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|a| a.parse().ok()).unwrap_or(8091);
    let base = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:18191".into());
    // As thesa-bff does: the client's TLS provider is chosen here.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let backend = Backend {
        client: reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(5))
            .build()
            .expect("HTTP client"),
        list: format!(
            "{base}/orders?offset=0&limit=25&sort_by=created_at&order=desc&priority=normal"
        ),
        confirm: format!("{base}/orders/o1/confirm"),
    };
    let app = Router::new()
        .route("/ui/pages/orders.list/data", get(page_data))
        .route("/ui/commands/orders.confirm", post(command))
        .with_state(backend);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    println!("pass-through proxy on 127.0.0.1:{port} in front of {base}");
    axum::serve(listener, app).await.expect("serve");
}
