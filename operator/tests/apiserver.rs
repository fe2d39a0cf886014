//! The `thesa-operator` binary against the fake API served over HTTPS the
//! way a real API server is reached (`support::apiserver`): a kubeconfig
//! with a CA and a token, watches, RBAC, restarts.
//!
//! The binary is the one cargo builds for these tests, with every rustls
//! provider the workspace compiles in (`ring`, and `aws-lc-rs` through the
//! test dependencies): a binary that left the choice to rustls would panic
//! at its first TLS connection.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use thesa_operator::crd::ThesaDefinition;

mod support;

/// An OTLP/gRPC collector (the official service definition) on 127.0.0.1:
/// its URL and the spans it received.
async fn collector() -> (String, Arc<Mutex<Vec<Span>>>) {
    #[derive(Clone, Default)]
    struct Received(Arc<Mutex<Vec<Span>>>);
    #[tonic::async_trait]
    impl TraceService for Received {
        async fn export(
            &self,
            request: tonic::Request<ExportTraceServiceRequest>,
        ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
            let mut spans = self.0.lock().expect("spans");
            for resource in request.into_inner().resource_spans {
                for scope in resource.scope_spans {
                    spans.extend(scope.spans);
                }
            }
            Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
        }
    }
    let received = Received::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("free port");
    let addr = listener.local_addr().expect("address");
    let service = TraceServiceServer::new(received.clone());
    let incoming = futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| stream);
        Some((accepted, listener))
    });
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(incoming)
            .await;
    });
    (format!("http://{addr}"), received.0)
}
use support::apiserver::{ApiServer, documented_permissions};
use support::{
    NS, TestResult, accepted_count, client_with, orders_copy, repo_file, sample_deployment, samples,
};

/// A running `thesa-operator run`, killed when dropped.
struct Operator {
    child: Child,
    metrics: u16,
    log: PathBuf,
}

impl Operator {
    fn start(server: &ApiServer, dir: &Path, extra: &[&str]) -> Self {
        let metrics = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let log = dir.join(format!("operator-{metrics}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_thesa-operator"))
            .args(["run", "--namespace", NS, "--leader-elect", "false"])
            .arg(format!("--metrics-addr=127.0.0.1:{metrics}"))
            .args(extra)
            .env("KUBECONFIG", server.kubeconfig(dir))
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(file.try_clone().expect("log file")))
            .stderr(Stdio::from(file))
            .spawn()
            .expect("start thesa-operator");
        Self {
            child,
            metrics,
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Fails the test when the process ended or panicked.
    fn assert_running(&mut self) {
        let log = self.log();
        assert!(!log.contains("panicked"), "thesa-operator panicked:\n{log}");
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("thesa-operator exited ({status}):\n{log}");
        }
    }
}

/// `GET /healthz` of the operator whose metrics are on `port`.
async fn healthz(port: u16) -> (u16, String) {
    let url = format!("http://127.0.0.1:{port}/healthz");
    match reqwest::get(&url).await {
        Ok(response) => {
            let status = response.status().as_u16();
            (status, response.text().await.unwrap_or_default())
        }
        Err(err) => (0, err.to_string()),
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` every 100 ms until it holds; fails with the operator's
/// log after `bound`. Returns how long it took.
async fn eventually<F, Fut>(
    operator: &mut Operator,
    bound: Duration,
    what: &str,
    mut check: F,
) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        operator.assert_running();
        if check().await {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < bound,
            "not within {bound:?}: {what}\noperator log:\n{}",
            operator.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `Accepted` condition's status of a ThesaDefinition, if any.
async fn accepted(server: &ApiServer, name: &str) -> Option<String> {
    let api: Api<ThesaDefinition> = Api::namespaced(server.client().clone(), NS);
    let tdef = api.get(name).await.ok()?;
    let status = tdef.status?;
    let condition = status.conditions.iter().find(|c| c.type_ == "Accepted")?;
    Some(condition.status.clone())
}

async fn all_accepted(server: &ApiServer) -> bool {
    for name in ["orders", "inventory", "customers"] {
        if accepted(server, name).await.as_deref() != Some("True") {
            return false;
        }
    }
    let config_maps: Api<ConfigMap> = Api::namespaced(server.client().clone(), NS);
    config_maps
        .get_opt("thesa-definitions")
        .await
        .ok()
        .flatten()
        .is_some()
}

/// Breaks the orders definition (an operation that does not exist).
async fn break_orders(server: &ApiServer) -> TestResult {
    let api: Api<ThesaDefinition> = Api::namespaced(server.client().clone(), NS);
    let mut tdef = api.get("orders").await?;
    tdef.spec.document["pages"][0]["table"]["data_source"]["operation_id"] =
        serde_json::json!("listOrdersTypo");
    api.replace("orders", &PostParams::default(), &tdef).await?;
    Ok(())
}

#[tokio::test]
async fn the_built_binary_reconciles_over_tls_with_only_the_documented_permissions() -> TestResult {
    let dir = tempfile::tempdir()?;

    // First with the permissions the chart granted before: `patch` alone
    // for applied kinds. A real API server refuses the first apply, which
    // creates the object; so does this one.
    let without_create = documented_permissions(false)
        .into_iter()
        .filter(|(_, _, verb)| verb != "create")
        .collect();
    let server = ApiServer::start(samples().await, Some(without_create)).await;
    let mut operator = Operator::start(&server, dir.path(), &[]);
    eventually(
        &mut operator,
        Duration::from_secs(60),
        "an apply that creates a ConfigMap is refused without `create`",
        || async {
            server
                .forbidden()
                .iter()
                .any(|m| m.contains("cannot create resource \"configmaps\""))
        },
    )
    .await;
    drop(operator);
    drop(server);

    // With docs/rbac-calls.txt (what the chart grants): every child is
    // created, every definition judged, nothing refused.
    let server = ApiServer::start(samples().await, Some(documented_permissions(false))).await;
    let mut operator = Operator::start(&server, dir.path(), &[]);
    let took = eventually(
        &mut operator,
        Duration::from_secs(60),
        "the samples are reconciled",
        || all_accepted(&server),
    )
    .await;
    println!("reconciled over TLS in {took:?}");
    assert!(
        server.forbidden().is_empty(),
        "refused: {:?}",
        server.forbidden()
    );
    let (status, body) = healthz(operator.metrics).await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    Ok(())
}

#[tokio::test]
async fn after_the_api_server_restarts_a_change_is_reconciled_within_30_seconds() -> TestResult {
    let dir = tempfile::tempdir()?;
    let server = ApiServer::start(samples().await, None).await;
    let mut operator = Operator::start(&server, dir.path(), &[]);
    eventually(
        &mut operator,
        Duration::from_secs(60),
        "the samples are reconciled",
        || all_accepted(&server),
    )
    .await;

    // The API server goes away for a few seconds, as in a control-plane
    // upgrade; every watch is cut. When it is back, resuming a watch from
    // the old resource version gets 410 Gone.
    server.outage();
    tokio::time::sleep(Duration::from_secs(3)).await;
    server.restart().await;
    break_orders(&server).await?;
    let took = eventually(
        &mut operator,
        Duration::from_secs(30),
        "the broken orders definition is judged after the restart",
        || async { accepted(&server, "orders").await.as_deref() == Some("False") },
    )
    .await;
    println!("a change after the API server came back was reconciled in {took:?}");
    assert!(
        operator.log().contains("listing again"),
        "the watches were started over after 410 Gone"
    );
    let (status, _) = healthz(operator.metrics).await;
    assert_eq!(status, 200, "alive after recovering");
    Ok(())
}

#[tokio::test]
async fn liveness_fails_while_the_watches_cannot_recover_and_passes_again_after() -> TestResult {
    let dir = tempfile::tempdir()?;
    let server = ApiServer::start(samples().await, None).await;
    let mut operator = Operator::start(&server, dir.path(), &["--watch-stall-timeout=2s"]);
    eventually(
        &mut operator,
        Duration::from_secs(60),
        "the samples are reconciled",
        || all_accepted(&server),
    )
    .await;
    server.outage();
    let port = operator.metrics;
    eventually(
        &mut operator,
        Duration::from_secs(30),
        "/healthz fails while the API server is gone",
        || async { healthz(port).await.0 == 503 },
    )
    .await;
    let (_, body) = healthz(port).await;
    assert!(body.contains("watches failing without recovery"), "{body}");
    server.restart().await;
    // Each watch retries on its own back-off (up to 30 s): the bound leaves
    // room for that and for a loaded machine.
    let took = eventually(
        &mut operator,
        Duration::from_secs(90),
        "/healthz passes once the watches work again",
        || async { healthz(port).await.0 == 200 },
    )
    .await;
    println!("alive again {took:?} after the API server came back");
    Ok(())
}

/// More definitions than one page of the operator's paged list: until the
/// last page is in, a reconcile would see only some of them and apply a
/// smaller set. Every Deployment the operator applies must carry the
/// checksum of all of them.
#[tokio::test]
async fn nothing_is_applied_before_every_page_of_definitions_is_listed() -> TestResult {
    const COUNT: usize = 60; // the operator lists 50 at a time
    let dir = tempfile::tempdir()?;
    let orders = repo_file("definitions/orders/definition.yaml");
    let mut tdep = sample_deployment();
    tdep.spec.definitions.selector = None;
    let definitions = (0..COUNT).map(|i| orders_copy(&orders, i)).collect();
    let server = ApiServer::start(client_with(tdep, definitions).await, None).await;
    let mut operator = Operator::start(&server, dir.path(), &[]);
    eventually(
        &mut operator,
        Duration::from_secs(120),
        "every definition is accepted",
        || async { accepted_count(server.client()).await == COUNT },
    )
    .await;
    let checksums: std::collections::BTreeSet<String> = server
        .writes_to("/deployments/thesa")
        .iter()
        .filter_map(|d| {
            d.pointer("/spec/template/metadata/annotations/thesa.io~1checksum")
                .and_then(|c| c.as_str())
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(
        checksums.len(),
        1,
        "the Deployment was applied with more than one set of definitions: {checksums:?}"
    );
    Ok(())
}

/// The canary analysis' `pods` source reads each pod's `/metrics` through
/// the API server's pod proxy, with exactly the permissions the chart
/// grants (`pods/proxy` `get`), and sums the counters per track.
#[tokio::test]
async fn the_pods_source_reads_metrics_through_the_pod_proxy_under_rbac() -> TestResult {
    use thesa_operator::controller::{ApiMetrics, MetricsSource, PodTarget, ReadRequest};
    use thesa_operator::crd::AnalysisSource;
    use thesa_operator::rollout::Measured;

    let server = ApiServer::start(samples().await, Some(documented_permissions(false))).await;
    let metrics = |ok: u32, failed: u32| {
        format!(
            "# TYPE thesa_http_requests counter\n\
             thesa_http_requests_total{{method=\"GET\",path_pattern=\"/ui/pages/{{id}}\",status=\"200\"}} {ok}\n\
             thesa_http_requests_total{{method=\"GET\",path_pattern=\"/ui/pages/{{id}}\",status=\"502\"}} {failed}\n\
             thesa_http_request_duration_seconds_bucket{{le=\"0.1\",method=\"GET\",path_pattern=\"/ui/pages/{{id}}\"}} {}\n\
             # EOF\n",
            ok + failed
        )
    };
    server.serve_pod_metrics("thesa-canary-a", &metrics(8, 2));
    server.serve_pod_metrics("thesa-b", &metrics(30, 0));
    server.serve_pod_metrics("thesa-c", &metrics(20, 1));
    let dir = tempfile::tempdir()?;
    let kubeconfig = kube::config::Kubeconfig::read_from(server.kubeconfig(dir.path()))?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    let client = kube::Client::try_from(config)?;
    let target = |name: &str| PodTarget {
        name: name.into(),
        port: "8080".into(),
        path: "/metrics".into(),
    };
    let source = AnalysisSource::default();
    let request = ReadRequest {
        client: &client,
        namespace: NS,
        deployment: "thesa",
        source: &source,
        canary: vec![target("thesa-canary-a")],
        stable: vec![target("thesa-b"), target("thesa-c")],
        interval: Duration::from_secs(60),
    };
    let reading = ApiMetrics::default().read(&request).await?;
    let (Measured::Counters(canary), Measured::Counters(stable)) = (reading.canary, reading.stable)
    else {
        panic!("the pods source gives counters");
    };
    assert_eq!((canary.requests, canary.errors), (10.0, 2.0));
    assert_eq!((stable.requests, stable.errors), (51.0, 1.0));
    assert_eq!(stable.buckets.get("0.1"), Some(&51.0));
    assert!(server.forbidden().is_empty(), "{:?}", server.forbidden());
    // A pod that does not answer is an error naming it.
    let request = ReadRequest {
        canary: vec![target("thesa-canary-gone")],
        ..request
    };
    let err = ApiMetrics::default().read(&request).await.unwrap_err();
    assert!(err.contains("thesa-canary-gone"), "{err}");
    Ok(())
}

#[tokio::test]
async fn reconciles_are_traced_with_their_api_calls_as_children() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (endpoint, spans) = collector().await;
    let server = ApiServer::start(samples().await, None).await;
    let mut operator = Operator::start(&server, dir.path(), &["--otlp-endpoint", &endpoint]);
    eventually(
        &mut operator,
        Duration::from_secs(60),
        "the samples are reconciled",
        || all_accepted(&server),
    )
    .await;
    let names = |span: &Span| {
        span.attributes
            .iter()
            .find(|a| a.key == "thesadeployment")
            .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                AnyValue::StringValue(s) => Some(s.clone()),
                _ => None,
            })
    };
    let traced = |spans: &[Span]| {
        spans.iter().find_map(|reconcile| {
            let name = names(reconcile)?;
            // An API call: the client's span, with the URL it called.
            let call = spans.iter().find(|s| {
                s.parent_span_id == reconcile.span_id
                    && s.trace_id == reconcile.trace_id
                    && s.kind == SpanKind::Client as i32
            })?;
            let url = call.attributes.iter().find(|a| a.key == "http.url")?;
            Some((name, format!("{:?}", url.value)))
        })
    };
    let mut found = None;
    eventually(
        &mut operator,
        Duration::from_secs(20),
        "a reconcile span with an API call as its child reaches the collector",
        || {
            found = traced(&spans.lock().expect("spans"));
            let done = found.is_some();
            async move { done }
        },
    )
    .await;
    let (name, call) = found.expect("found above");
    assert!(name.ends_with("thesa"), "the object's name: {name}");
    assert!(call.contains("/api"), "an API call's URL: {call}");
    Ok(())
}
