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
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use thesa_operator::crd::ThesaDefinition;

mod support;
use support::apiserver::{ApiServer, documented_permissions};
use support::{NS, TestResult, client_with, orders_copy, repo_file, sample_deployment, samples};

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
        || async {
            let api: Api<ThesaDefinition> = Api::namespaced(server.client().clone(), NS);
            let Ok(list) = api.list(&Default::default()).await else {
                return false;
            };
            list.items.len() == COUNT
                && list.items.iter().all(|d| {
                    d.status.as_ref().is_some_and(|s| {
                        s.conditions
                            .iter()
                            .any(|c| c.type_ == "Accepted" && c.status == "True")
                    })
                })
        },
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
