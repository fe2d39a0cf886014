//! OpenTelemetry traces: an OTLP receiver in the test, built from the
//! official collector service definitions (`opentelemetry-proto`), over
//! gRPC (tonic) and HTTP/protobuf (prost), gets the BFF's spans.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use axum::routing::get;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode as SpanStatus;
use prost::Message;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{self, Bff, client, config, jwks, token};

/// Spans received, in arrival order.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<Span>>>);

impl Received {
    fn add(&self, request: ExportTraceServiceRequest) {
        let mut spans = self.0.lock().unwrap();
        for resource in request.resource_spans {
            for scope in resource.scope_spans {
                spans.extend(scope.spans);
            }
        }
    }

    fn spans(&self) -> Vec<Span> {
        self.0.lock().unwrap().clone()
    }

    /// Waits (at most 15 s) for a span `found` accepts.
    async fn wait_for(&self, what: &str, found: impl Fn(&Span) -> bool) -> Span {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(span) = self.spans().into_iter().find(|s| found(s)) {
                return span;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} span arrived; got {:?}",
                self.spans().iter().map(|s| &s.name).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tonic::async_trait]
impl TraceService for Received {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.add(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// An OTLP/gRPC collector on 127.0.0.1: its URL and what it receives.
async fn grpc_collector() -> (String, Received) {
    let received = Received::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = TraceServiceServer::new(received.clone());
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream_of(listener))
            .await
            .unwrap();
    });
    (format!("http://{addr}"), received)
}

/// The listener's connections as the stream tonic serves.
fn tokio_stream_of(
    listener: tokio::net::TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| stream);
        Some((accepted, listener))
    })
}

/// An OTLP/HTTP collector (`POST /v1/traces`, protobuf): its base URL and
/// what it receives.
async fn http_collector() -> (String, Received, tokio::sync::oneshot::Sender<()>) {
    let received = Received::default();
    let sink = received.clone();
    let router = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                let request = ExportTraceServiceRequest::decode(body).unwrap();
                sink.add(request);
                let mut answer = Vec::new();
                ExportTraceServiceResponse::default()
                    .encode(&mut answer)
                    .unwrap();
                ([("content-type", "application/x-protobuf")], answer)
            }
        }),
    );
    let (url, stop) = harness::serve(router).await;
    (url, received, stop)
}

/// orders-svc answering the orders list, recording each `traceparent`.
async fn orders(seen: Arc<Mutex<Vec<String>>>) -> (String, tokio::sync::oneshot::Sender<()>) {
    let router = axum::Router::new().route(
        "/orders",
        get(move |headers: HeaderMap| {
            let seen = seen.clone();
            async move {
                if let Some(parent) = headers.get("traceparent") {
                    seen.lock()
                        .unwrap()
                        .push(parent.to_str().unwrap().to_string());
                }
                axum::Json(json!({"data": [], "total": 0}))
            }
        }),
    );
    harness::serve(router).await
}

fn traced(jwks: &str, orders: &str, endpoint: &str, protocol: &str, rate: f64) -> String {
    config(
        jwks,
        &format!(
            r#"services:
  orders-svc:
    base_url: "{orders}"
    retry: {{max_attempts: 1}}
  customers-svc:
    base_url: "http://127.0.0.1:9"
    retry: {{max_attempts: 1}}
"#
        ),
    )
    .replace(
        "observability:\n",
        &format!(
            "observability:\n  tracing:\n    enabled: true\n    exporter: otlp\n    \
             endpoint: \"{endpoint}\"\n    protocol: {protocol}\n    sampling_rate: {rate}\n    \
             force_sample_errors: true\n"
        ),
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref()?.value.as_ref())
        .map(|v| match v {
            AnyValue::StringValue(s) => s.clone(),
            AnyValue::IntValue(i) => i.to_string(),
            other => format!("{other:?}"),
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_data_spans_reach_the_collector_over_grpc_with_the_backend_call_as_child() {
    let (jwks, _stop) = jwks().await;
    let (collector, received) = grpc_collector().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (orders, _stop_orders) = orders(seen.clone()).await;
    let bff = Bff::start(&traced(&jwks, &orders, &collector, "grpc", 1.0), &[]);

    // A trace started by the caller is continued.
    let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let response = client()
        .get(bff.url("/ui/pages/orders.list/data"))
        .bearer_auth(token(&["order_clerk"]))
        .header(
            "traceparent",
            format!("00-{caller_trace}-00f067aa0ba902b7-01"),
        )
        .header("x-correlation-id", "corr-traced")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let request = received
        .wait_for("request", |s| s.name == "GET /ui/pages/{id}/data")
        .await;
    assert_eq!(hex(&request.trace_id), caller_trace);
    assert_eq!(hex(&request.parent_span_id), "00f067aa0ba902b7");
    assert_eq!(
        attribute(&request, "route").as_deref(),
        Some("/ui/pages/{id}/data")
    );
    assert_eq!(
        attribute(&request, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(attribute(&request, "tenant").as_deref(), Some("acme"));
    assert_eq!(
        attribute(&request, "correlation_id").as_deref(),
        Some("corr-traced")
    );

    let backend = received
        .wait_for("backend call", |s| s.name == "GET /orders")
        .await;
    assert_eq!(backend.trace_id, request.trace_id);
    assert_eq!(
        backend.parent_span_id, request.span_id,
        "a child of the request"
    );
    assert_eq!(
        attribute(&backend, "service").as_deref(),
        Some("orders-svc")
    );

    // The backend got the same trace, with the backend call as parent.
    let parents = seen.lock().unwrap().clone();
    assert_eq!(
        parents,
        [format!("00-{caller_trace}-{}-01", hex(&backend.span_id))]
    );
    // The capability check is a child span too.
    received
        .wait_for("capability check", |s| {
            s.name == "capability check" && s.parent_span_id == request.span_id
        })
        .await;

    // Log lines inside the request carry the trace ID.
    let logs = bff.drain_logs();
    assert!(
        logs.iter()
            .any(|l| l.contains("\"request\"") && l.contains(caller_trace)),
        "{logs:#?}"
    );

    // Shutdown exports what is still queued.
    let response = client()
        .get(bff.url("/ui/pages/orders.list/data"))
        .bearer_auth(token(&["order_clerk"]))
        .header("x-correlation-id", "corr-last")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    bff.terminate();
    let exited = bff.wait(Duration::from_secs(20));
    assert!(exited.status.success(), "{:?}", exited.lines);
    received
        .wait_for("last request", |s| {
            attribute(s, "correlation_id").as_deref() == Some("corr-last")
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_zero_over_http_exports_only_failed_requests() {
    let (jwks, _stop) = jwks().await;
    let (collector, received, _stop_collector) = http_collector().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (orders, _stop_orders) = orders(seen.clone()).await;
    let bff = Bff::start(
        &traced(&jwks, &orders, &collector, "http_protobuf", 0.0),
        &[],
    );
    let viewer = token(&["order_clerk", "viewer"]);

    // A success, then a failure (customers-svc cannot be reached: 502).
    let (status, _) = harness::get_json(&bff.url("/ui/pages/orders.list/data"), &viewer).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body): (StatusCode, Value) =
        harness::get_json(&bff.url("/ui/pages/customers.list/data"), &viewer).await;
    assert!(status.is_server_error(), "{status} {body}");
    let trace_id = body["error"]["trace_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no trace_id in the error body: {body}"))
        .to_string();

    let failed = received
        .wait_for("failed request", |s| s.name == "GET /ui/pages/{id}/data")
        .await;
    assert_eq!(hex(&failed.trace_id), trace_id);
    assert_eq!(
        failed.status.as_ref().map(|s| s.code),
        Some(SpanStatus::Error as i32)
    );
    // Its backend call came with it.
    received
        .wait_for("failed backend call", |s| {
            s.trace_id == failed.trace_id && s.name.starts_with("GET /customers")
        })
        .await;
    // The success was sent before the failure and was not exported: every
    // span received belongs to the failed trace.
    assert!(
        received
            .spans()
            .iter()
            .all(|s| s.trace_id == failed.trace_id),
        "{:?}",
        received.spans().iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    // The unsampled trace still went on to the backend, marked unsampled.
    let parents = seen.lock().unwrap().clone();
    assert_eq!(parents.len(), 1);
    assert!(parents[0].ends_with("-00"), "{parents:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_collector_fails_nothing_and_counts_dropped_spans() {
    let (jwks, _stop) = jwks().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (orders, _stop_orders) = orders(seen.clone()).await;
    let bff = Bff::start(
        &traced(&jwks, &orders, "http://127.0.0.1:9", "grpc", 1.0),
        &[],
    );
    let clerk = token(&["order_clerk"]);
    for _ in 0..3 {
        let (status, _) = harness::get_json(&bff.url("/ui/pages/orders.list/data"), &clerk).await;
        assert_eq!(status, StatusCode::OK);
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let line = harness::metric(
            &bff,
            "thesa_trace_spans_dropped_total{reason=\"export_failed\"}",
        )
        .await;
        if line.is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "failed exports were not counted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
