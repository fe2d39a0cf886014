//! The benchmark ceiling: a bare axum handler returning a fixed body of the
//! given size, with nothing else (no auth, no middleware). `scripts/bench-bff.sh`
//! load-tests it next to the BFF so that the BFF's figures have a reference
//! measured on the same machine in the same run.
//!
//! `cargo run --release --example ceiling -- <port> <body-bytes>`

use axum::Router;
use axum::http::header;
use axum::routing::get;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|a| a.parse().ok()).unwrap_or(8090);
    let size: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1024);
    let body: &'static str =
        Box::leak(format!("\"{}\"", "x".repeat(size.saturating_sub(2))).into_boxed_str());
    let app = Router::new().route(
        "/",
        get(move || async move { ([(header::CONTENT_TYPE, "application/json")], body) }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    println!("ceiling listening on 127.0.0.1:{port}, body {size} bytes");
    axum::serve(listener, app).await.expect("serve");
}
