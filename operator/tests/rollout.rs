//! Canary rollouts reconciled against the in-memory API of
//! `kube-fake-client`, with a scripted metrics source and clock. Every
//! reconcile runs on a fresh `Context` (as after an operator restart), so
//! each test also shows that the rollout's state lives in the API only.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{reflector, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;
use thesa_operator::controller::{self, Context, MetricsSource, ReadRequest};
use thesa_operator::crd::{Counters, RolloutPhase, ThesaDefinition, ThesaDeployment};
use thesa_operator::revision::{Revisions, cached_event};
use thesa_operator::rollout::{Measured, Reading};
use thesa_operator::telemetry::Telemetry;

mod support;
use support::{NS, TestResult, fake_api, manifest, sample_definition, sample_deployment};

/// Cumulative counters of both tracks, as the pods' `/metrics` would
/// give them; the test moves them between reconciles.
#[derive(Default)]
struct Script {
    canary: Mutex<Counters>,
    stable: Mutex<Counters>,
    reads: Mutex<usize>,
}

impl Script {
    /// The canary answers `ok` more 200s and `failed` more 500s, all
    /// within `le` seconds.
    fn canary_serves(&self, ok: u32, failed: u32, le: &str) {
        let mut c = self.canary.lock().unwrap();
        let n = f64::from(ok + failed);
        c.requests += n;
        c.errors += f64::from(failed);
        for bound in ["0.1", "1", "2.5", "10", "+Inf"] {
            let upper: f64 = bound.parse().unwrap_or(f64::INFINITY);
            let entry = c.buckets.entry(bound.to_string()).or_insert(0.0);
            if upper >= le.parse::<f64>().unwrap_or(0.0) {
                *entry += n;
            }
        }
    }
}

impl MetricsSource for Script {
    fn read<'a>(&'a self, _request: &'a ReadRequest<'a>) -> BoxFuture<'a, Result<Reading, String>> {
        *self.reads.lock().unwrap() += 1;
        let reading = Reading {
            canary: Measured::Counters(self.canary.lock().unwrap().clone()),
            stable: Measured::Counters(self.stable.lock().unwrap().clone()),
        };
        Box::pin(async move { Ok(reading) })
    }
}

struct Harness {
    client: Client,
    script: Arc<Script>,
    telemetry: Arc<Telemetry>,
}

fn at(seconds: i64) -> Timestamp {
    Timestamp::UNIX_EPOCH + SignedDuration::from_secs(1_700_000_000 + seconds)
}

impl Harness {
    async fn new(tdep: ThesaDeployment) -> Self {
        let mut builder = fake_api().with_resource::<Pod>().with_object(tdep);
        for domain in ["orders", "inventory", "customers"] {
            builder = builder.with_object(sample_definition(domain));
        }
        Self {
            client: builder.build().await.expect("fake client"),
            script: Arc::default(),
            telemetry: Arc::default(),
        }
    }

    /// One reconcile at `now` seconds, on a fresh context.
    async fn reconcile(&self, now: i64) -> TestResult {
        let definitions: Api<ThesaDefinition> = Api::all(self.client.clone());
        let revisions = Revisions::default();
        let (store, mut writer) = reflector::store();
        writer.apply_watcher_event(&watcher::Event::Init);
        for definition in definitions.list(&ListParams::default()).await? {
            writer.apply_watcher_event(&cached_event(
                watcher::Event::InitApply(definition),
                &revisions,
            ));
        }
        writer.apply_watcher_event(&watcher::Event::InitDone);
        let mut ctx = Context::new(self.client.clone(), store, BTreeSet::new());
        ctx.metrics = self.script.clone();
        ctx.clock = Arc::new(move || at(now));
        ctx.telemetry = self.telemetry.clone();
        let tdep = self.tdep().await;
        controller::reconcile(Arc::new(tdep), Arc::new(ctx)).await?;
        // The cluster's part: the Deployments' pods come up.
        for name in ["thesa", "thesa-canary"] {
            if self.deployment(name).await.is_some() {
                self.pods_ready(name).await;
            }
        }
        Ok(())
    }

    async fn tdep(&self) -> ThesaDeployment {
        Api::<ThesaDeployment>::namespaced(self.client.clone(), NS)
            .get("thesa")
            .await
            .expect("tdep")
    }

    async fn rollout(&self) -> thesa_operator::crd::RolloutStatus {
        self.tdep()
            .await
            .status
            .and_then(|s| s.rollout)
            .expect("status.rollout")
    }

    async fn deployment(&self, name: &str) -> Option<Deployment> {
        Api::<Deployment>::namespaced(self.client.clone(), NS)
            .get_opt(name)
            .await
            .expect("get deployment")
    }

    async fn replicas(&self, name: &str) -> Option<i32> {
        self.deployment(name).await?.spec?.replicas
    }

    /// The kubelet's part: every pod of Deployment `name` is up and ready
    /// (after each reconcile).
    async fn pods_ready(&self, name: &str) {
        let api = Api::<Deployment>::namespaced(self.client.clone(), NS);
        let deployment = api.get(name).await.expect("deployment");
        let n = deployment
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(1);
        let status = json!({ "status": {
            "observedGeneration": deployment.metadata.generation,
            "replicas": n, "readyReplicas": n, "updatedReplicas": n, "availableReplicas": n,
        }});
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(status))
            .await
            .expect("deployment status");
    }

    async fn config_map(&self, name: &str) -> Option<BTreeMap<String, String>> {
        Api::<ConfigMap>::namespaced(self.client.clone(), NS)
            .get_opt(name)
            .await
            .expect("get configmap")
            .map(|cm| cm.data.unwrap_or_default())
    }

    /// A new generation of the orders definition: its version changes.
    async fn change_orders(&self, version: &str) {
        let api: Api<ThesaDefinition> = Api::namespaced(self.client.clone(), NS);
        let mut tdef = api.get("orders").await.expect("orders");
        tdef.spec.document.insert("version".into(), json!(version));
        api.replace("orders", &PostParams::default(), &tdef)
            .await
            .expect("replace");
    }

    async fn annotate(&self, key: &str) {
        let api: Api<ThesaDeployment> = Api::namespaced(self.client.clone(), NS);
        let patch = json!({ "metadata": { "annotations": { key: "true" } } });
        api.patch("thesa", &PatchParams::default(), &Patch::Merge(patch))
            .await
            .expect("annotate");
    }

    async fn accepted(&self, name: &str) -> (String, String, String) {
        let tdef: ThesaDefinition = Api::namespaced(self.client.clone(), NS)
            .get(name)
            .await
            .expect("tdef");
        let status = tdef.status.expect("status");
        let c = status
            .conditions
            .iter()
            .find(|c| c.type_ == "Accepted")
            .expect("Accepted");
        (c.status.clone(), c.reason.clone(), c.message.clone())
    }

    async fn condition(&self, type_: &str) -> (String, String) {
        let status = self.tdep().await.status.expect("status");
        let c = status
            .conditions
            .iter()
            .find(|c| c.type_ == type_)
            .unwrap_or_else(|| panic!("no {type_}"));
        (c.status.clone(), c.reason.clone())
    }

    /// Installed with a canary strategy (the first rollout is immediate),
    /// then a change of orders starts a canary at `now` = 0; its pods come
    /// up and the first reading (the baseline) is taken at 1.
    async fn canary_started(tdep: ThesaDeployment) -> Self {
        let h = Self::new(tdep).await;
        h.reconcile(-100).await.expect("install");
        h.change_orders("2.2.0").await;
        h.reconcile(0).await.expect("start");
        h.reconcile(1).await.expect("baseline");
        h
    }
}

/// The sample deployment with a canary: 10% then 50%, a minute each,
/// 20-second intervals, at least 10 requests, two bad intervals to roll
/// back.
fn canary_deployment() -> ThesaDeployment {
    let mut tdep = sample_deployment();
    tdep.spec.rollout = Some(
        serde_json::from_value(json!({
            "strategy": "canary",
            "steps": [{"weight": 10, "pause": "60s"}, {"weight": 50, "pause": "60s"}],
            "analysis": {"interval": "20s", "minRequests": 10, "failureLimit": 2},
        }))
        .expect("rollout"),
    );
    tdep
}

fn served_version(data: &BTreeMap<String, String>) -> String {
    let orders = &data["orders.yaml"];
    orders
        .lines()
        .find(|l| l.starts_with("version:"))
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn a_good_change_goes_through_every_step_and_is_promoted() -> TestResult {
    let h = Harness::new(canary_deployment()).await;
    h.reconcile(-100).await?;
    // The first rollout has nothing to compare with: no canary.
    assert!(h.deployment("thesa-canary").await.is_none());
    let stable = h.deployment("thesa").await.expect("stable");
    let selector = serde_json::to_value(stable.spec.unwrap().selector)?;
    assert_eq!(
        selector["matchExpressions"][0],
        json!({"key": "thesa.io/track", "operator": "NotIn", "values": ["canary"]}),
        "the stable Deployment never selects canary pods"
    );
    let old = served_version(&h.config_map("thesa-definitions").await.unwrap());

    h.change_orders("2.2.0").await;
    h.reconcile(0).await?;
    let canary = h.deployment("thesa-canary").await.expect("canary");
    let labels = canary
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .clone()
        .unwrap();
    assert_eq!(labels["thesa.io/track"], "canary");
    assert_eq!(
        labels["app.kubernetes.io/instance"], "thesa",
        "the Service selects it too"
    );
    // 10% of 3 pods: one canary pod, the stable gives one up.
    assert_eq!(h.replicas("thesa-canary").await, Some(1));
    assert_eq!(h.replicas("thesa").await, Some(2));
    let canary_served = h
        .config_map("thesa-canary-definitions")
        .await
        .expect("canary ConfigMap");
    assert!(served_version(&canary_served).contains("2.2.0"));
    assert_eq!(
        served_version(&h.config_map("thesa-definitions").await.unwrap()),
        old,
        "the stable ConfigMaps keep the served revision"
    );
    let status = h.rollout().await;
    assert_eq!(
        (status.phase, status.step, status.weight),
        (RolloutPhase::Progressing, 1, 10)
    );
    assert_eq!(h.condition("Progressing").await.0, "True");
    assert_eq!(
        h.condition("Ready").await,
        ("False".into(), "CanaryProgressing".into())
    );
    assert_eq!(h.condition("Rollout").await.0, "True");
    assert!(
        h.telemetry
            .encode()
            .contains("thesa_operator_rollouts_total{event=\"started\"} 1")
    );

    h.reconcile(1).await?; // baseline
    h.script.canary_serves(100, 0, "0.1");
    h.reconcile(61).await?;
    let status = h.rollout().await;
    assert_eq!((status.step, status.weight), (2, 50));
    assert_eq!(status.canary.as_ref().map(|f| f.requests), Some(100.0));
    assert_eq!(h.replicas("thesa-canary").await, Some(2));
    assert_eq!(h.replicas("thesa").await, Some(1));
    assert!(
        h.telemetry
            .encode()
            .contains("thesa_operator_rollout_step{thesadeployment=\"default/thesa\"} 2")
    );

    h.script.canary_serves(100, 0, "0.1");
    h.reconcile(122).await?;
    let status = h.rollout().await;
    assert_eq!(status.phase, RolloutPhase::Promoted);
    assert!(status.finished_at.is_some());
    assert!(
        h.deployment("thesa-canary").await.is_none(),
        "the canary goes"
    );
    assert!(h.config_map("thesa-canary-definitions").await.is_none());
    assert!(served_version(&h.config_map("thesa-definitions").await.unwrap()).contains("2.2.0"));
    assert_eq!(h.replicas("thesa").await, Some(3));
    assert_eq!(
        h.condition("Rollout").await,
        ("True".into(), "Promoted".into())
    );
    assert!(
        h.telemetry
            .encode()
            .contains("thesa_operator_rollouts_total{event=\"promoted\"} 1")
    );
    assert_eq!(h.accepted("orders").await.0, "True");
    // Nothing changes after that: no new canary.
    h.reconcile(200).await?;
    assert!(h.deployment("thesa-canary").await.is_none());
    Ok(())
}

#[tokio::test]
async fn a_high_error_rate_rolls_back_and_the_previous_revision_stays_served() -> TestResult {
    let h = Harness::canary_started(canary_deployment()).await;
    let old = served_version(&h.config_map("thesa-definitions").await.unwrap());
    h.script.canary_serves(50, 50, "0.1");
    h.reconcile(21).await?;
    let status = h.rollout().await;
    assert_eq!(
        (status.phase, status.consecutive_failures),
        (RolloutPhase::Progressing, 1)
    );
    assert!(
        h.deployment("thesa-canary").await.is_some(),
        "one bad interval is not enough"
    );
    h.script.canary_serves(50, 50, "0.1");
    h.reconcile(42).await?;
    let status = h.rollout().await;
    assert_eq!(status.phase, RolloutPhase::RolledBack);
    assert!(
        status
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("error rate 50.00%")
    );
    let generation = Api::<ThesaDefinition>::namespaced(h.client.clone(), NS)
        .get("orders")
        .await?
        .metadata
        .generation
        .expect("generation");
    assert_eq!(
        status.failed_definitions,
        BTreeMap::from([("default/orders".to_string(), generation)])
    );
    assert!(h.deployment("thesa-canary").await.is_none());
    assert!(h.config_map("thesa-canary-config").await.is_none());
    assert_eq!(
        h.replicas("thesa").await,
        Some(3),
        "the stable gets its pods back"
    );
    assert_eq!(
        served_version(&h.config_map("thesa-definitions").await.unwrap()),
        old
    );
    let (accepted, reason, message) = h.accepted("orders").await;
    assert_eq!(
        (accepted.as_str(), reason.as_str()),
        ("False", "RolloutFailed")
    );
    assert!(
        message.contains("error rate 50.00%") && message.contains("keeps being served"),
        "{message}"
    );
    assert_eq!(
        h.accepted("inventory").await.0,
        "True",
        "an unchanged definition is not blamed"
    );
    assert_eq!(
        h.condition("Rollout").await,
        ("False".into(), "RolledBack".into())
    );
    assert!(
        h.telemetry
            .encode()
            .contains("thesa_operator_rollouts_total{event=\"rolled_back\"} 1")
    );

    // Later reconciles keep the stable revision and start no canary.
    h.reconcile(100).await?;
    assert!(h.deployment("thesa-canary").await.is_none());
    assert_eq!(
        served_version(&h.config_map("thesa-definitions").await.unwrap()),
        old
    );
    assert_eq!(h.accepted("orders").await.1, "RolloutFailed");
    // A new generation is a new candidate: a new canary.
    h.change_orders("2.3.0").await;
    h.reconcile(200).await?;
    assert!(h.deployment("thesa-canary").await.is_some());
    assert_eq!(h.rollout().await.phase, RolloutPhase::Progressing);
    Ok(())
}

#[tokio::test]
async fn a_slow_canary_rolls_back_on_p99() -> TestResult {
    let h = Harness::canary_started(canary_deployment()).await;
    h.script.canary_serves(100, 0, "2.5");
    h.reconcile(21).await?;
    h.script.canary_serves(100, 0, "2.5");
    h.reconcile(42).await?;
    let status = h.rollout().await;
    assert_eq!(status.phase, RolloutPhase::RolledBack);
    assert!(
        status
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("p99"),
        "{:?}",
        status.message
    );
    assert!(
        status
            .canary
            .and_then(|f| f.latency_p99_seconds)
            .is_some_and(|p| p > 2.0)
    );
    Ok(())
}

#[tokio::test]
async fn failure_limit_counts_bad_intervals_in_a_row_and_min_requests_gives_no_verdict()
-> TestResult {
    let h = Harness::canary_started(canary_deployment()).await;
    // Bad, good, bad: never two in a row.
    h.script.canary_serves(50, 50, "0.1");
    h.reconcile(21).await?;
    h.script.canary_serves(100, 0, "0.1");
    h.reconcile(42).await?;
    assert_eq!(h.rollout().await.consecutive_failures, 0);
    h.script.canary_serves(50, 50, "0.1");
    h.reconcile(63).await?;
    let status = h.rollout().await;
    assert_eq!(
        (status.phase, status.consecutive_failures),
        (RolloutPhase::Progressing, 1)
    );
    // Below minRequests, even all errors give no verdict.
    h.script.canary_serves(0, 5, "0.1");
    h.reconcile(84).await?;
    let status = h.rollout().await;
    assert_eq!(
        (status.phase, status.consecutive_failures),
        (RolloutPhase::Progressing, 1)
    );
    assert!(
        status
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("minRequests")
    );
    Ok(())
}

#[tokio::test]
async fn paused_holds_the_step_and_the_annotations_promote_or_abort() -> TestResult {
    // Paused: analysis goes on, the step does not move.
    let mut tdep = canary_deployment();
    if let Some(r) = tdep.spec.rollout.as_mut() {
        r.paused = true;
    }
    let h = Harness::canary_started(tdep).await;
    h.script.canary_serves(100, 0, "0.1");
    h.reconcile(61).await?;
    let status = h.rollout().await;
    assert_eq!((status.phase, status.step), (RolloutPhase::Paused, 1));
    assert_eq!(h.condition("Rollout").await.1, "CanaryPaused");
    // Promote now.
    h.annotate("thesa.io/rollout-promote").await;
    h.reconcile(62).await?;
    assert_eq!(h.rollout().await.phase, RolloutPhase::Promoted);
    assert!(h.deployment("thesa-canary").await.is_none());
    assert!(served_version(&h.config_map("thesa-definitions").await.unwrap()).contains("2.2.0"));
    assert!(
        !h.tdep()
            .await
            .annotations()
            .contains_key("thesa.io/rollout-promote"),
        "the annotation is used once"
    );

    // Abort: rolled back at once, and held.
    let h = Harness::canary_started(canary_deployment()).await;
    let old = served_version(&h.config_map("thesa-definitions").await.unwrap());
    h.annotate("thesa.io/rollout-abort").await;
    h.reconcile(5).await?;
    assert_eq!(h.rollout().await.phase, RolloutPhase::Aborted);
    assert!(h.deployment("thesa-canary").await.is_none());
    assert_eq!(
        served_version(&h.config_map("thesa-definitions").await.unwrap()),
        old
    );
    assert!(
        !h.tdep()
            .await
            .annotations()
            .contains_key("thesa.io/rollout-abort")
    );
    h.reconcile(10).await?;
    assert!(
        h.deployment("thesa-canary").await.is_none(),
        "no canary after an abort"
    );
    Ok(())
}

#[tokio::test]
async fn a_new_generation_mid_canary_restarts_on_the_newest_revision() -> TestResult {
    let h = Harness::canary_started(canary_deployment()).await;
    h.script.canary_serves(100, 0, "0.1");
    h.reconcile(61).await?;
    assert_eq!(h.rollout().await.step, 2);
    h.change_orders("2.4.0").await;
    h.reconcile(70).await?;
    let status = h.rollout().await;
    assert_eq!((status.step, status.weight), (1, 10));
    assert!(status.baseline.is_none(), "measured afresh");
    let canary_served = h
        .config_map("thesa-canary-definitions")
        .await
        .expect("canary");
    assert!(served_version(&canary_served).contains("2.4.0"));
    assert_eq!(h.replicas("thesa-canary").await, Some(1));
    Ok(())
}

#[tokio::test]
async fn an_operator_restart_mid_canary_continues_from_the_status() -> TestResult {
    let h = Harness::canary_started(canary_deployment()).await;
    h.script.canary_serves(100, 0, "0.1");
    h.reconcile(61).await?;
    let before = h.rollout().await;
    assert_eq!(before.step, 2);
    // A new process: fresh context, fresh metrics source, fresh telemetry.
    let restarted = Harness {
        client: h.client.clone(),
        script: Arc::new(Script::default()),
        telemetry: Arc::default(),
    };
    *restarted.script.canary.lock().unwrap() = h.script.canary.lock().unwrap().clone();
    restarted.reconcile(70).await?;
    let after = restarted.rollout().await;
    assert_eq!(
        (after.step, after.started_at.clone()),
        (2, before.started_at.clone())
    );
    assert_eq!(
        after.baseline, before.baseline,
        "no new interval yet: the baseline stays"
    );
    assert_eq!(
        *restarted.script.reads.lock().unwrap(),
        0,
        "nothing read before the interval ends"
    );
    Ok(())
}

#[tokio::test]
async fn with_autoscaling_the_canary_comes_out_of_the_hpa_bounds() -> TestResult {
    let mut tdep = canary_deployment();
    tdep.spec.autoscaling = manifest::<ThesaDeployment>("samples/thesadeployment.yaml")
        .spec
        .autoscaling;
    let h = Harness::canary_started(tdep).await;
    // The HPA's minimum, 3 pods: 10% is one canary pod; the stable
    // autoscaler's bounds go down by one so both together stay in 3..20.
    assert_eq!(h.replicas("thesa-canary").await, Some(1));
    let hpa: HorizontalPodAutoscaler = Api::namespaced(h.client.clone(), NS).get("thesa").await?;
    let spec = hpa.spec.unwrap();
    assert_eq!((spec.min_replicas, spec.max_replicas), (Some(2), 19));
    h.annotate("thesa.io/rollout-promote").await;
    h.reconcile(5).await?;
    let hpa: HorizontalPodAutoscaler = Api::namespaced(h.client.clone(), NS).get("thesa").await?;
    let spec = hpa.spec.unwrap();
    assert_eq!(
        (spec.min_replicas, spec.max_replicas),
        (Some(3), 20),
        "bounds back after promotion"
    );
    Ok(())
}

#[tokio::test]
async fn switching_an_installed_deployment_to_canary_replaces_its_selector() -> TestResult {
    let h = Harness::new(sample_deployment()).await;
    h.reconcile(0).await?;
    let selector = |d: Deployment| serde_json::to_value(d.spec.unwrap().selector).unwrap();
    assert!(selector(h.deployment("thesa").await.unwrap())["matchExpressions"].is_null());
    let api: Api<ThesaDeployment> = Api::namespaced(h.client.clone(), NS);
    let mut tdep = api.get("thesa").await?;
    tdep.spec.rollout = canary_deployment().spec.rollout;
    api.replace("thesa", &PostParams::default(), &tdep).await?;
    h.reconcile(10).await?;
    let replaced = h.deployment("thesa").await.expect("stable");
    assert_eq!(
        selector(replaced)["matchExpressions"][0]["operator"],
        "NotIn",
        "the Deployment was replaced with the canary-excluding selector"
    );
    assert!(
        h.deployment("thesa-canary").await.is_none(),
        "no change, no canary"
    );
    Ok(())
}

/// The `prometheus` source asks the query API for each track's figures,
/// with `$namespace`, `$pods` and `$interval` filled in.
#[tokio::test]
async fn the_prometheus_source_asks_the_query_api_per_track() -> TestResult {
    use axum::extract::Query;
    use thesa_operator::controller::{ApiMetrics, PodTarget};
    use thesa_operator::crd::AnalysisSource;

    let asked: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = asked.clone();
    let router = axum::Router::new().route(
        "/api/v1/query",
        axum::routing::get(move |Query(q): Query<BTreeMap<String, String>>| {
            let seen = seen.clone();
            async move {
                let query = q.get("query").cloned().unwrap_or_default();
                seen.lock().unwrap().push(query.clone());
                let canary = query.contains("thesa-canary-x");
                let value = if query.starts_with("histogram_quantile") {
                    if canary { "2.5" } else { "0.2" }
                } else if query.contains("status=~") {
                    if canary { "0.25" } else { "0" }
                } else if canary {
                    "40"
                } else {
                    "400"
                };
                axum::Json(json!({"status": "success", "data": {"resultType": "vector",
                    "result": [{"metric": {}, "value": [1700000000, value]}]}}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, router).await });

    let source: AnalysisSource = serde_json::from_value(json!({
        "type": "prometheus", "prometheus": {"url": url},
    }))?;
    let client = support::samples().await;
    let target = |name: &str| PodTarget {
        name: name.into(),
        port: "8080".into(),
        path: "/metrics".into(),
    };
    let request = ReadRequest {
        client: &client,
        namespace: NS,
        deployment: "thesa",
        source: &source,
        canary: vec![target("thesa-canary-x")],
        stable: vec![target("thesa-a"), target("thesa-b")],
        interval: std::time::Duration::from_secs(60),
    };
    let reading = ApiMetrics::default().read(&request).await?;
    let figures = |m: Measured| match m {
        Measured::Figures(f) => f,
        Measured::Counters(_) => panic!("prometheus gives figures"),
    };
    let canary = figures(reading.canary);
    assert_eq!(
        (
            canary.requests,
            canary.error_rate,
            canary.latency_p99_seconds
        ),
        (40.0, Some(0.25), Some(2.5))
    );
    let stable = figures(reading.stable);
    assert_eq!(stable.requests, 400.0);
    let asked = asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 6, "three queries per track");
    assert!(
        asked.iter().any(|q| q.contains("pod=~\"thesa-a|thesa-b\"")),
        "{asked:#?}"
    );
    assert!(
        asked
            .iter()
            .all(|q| q.contains("namespace=\"default\"") && q.contains("[60s]"))
    );
    Ok(())
}

/// A canary whose Deployment gives up (progress deadline) is rolled back.
#[tokio::test]
async fn a_canary_whose_pods_cannot_come_up_is_rolled_back() -> TestResult {
    let h = Harness::canary_started(canary_deployment()).await;
    let failing = json!({"status": {"conditions": [{"type": "Progressing", "status": "False",
        "reason": "ProgressDeadlineExceeded",
        "message": "ReplicaSet \"thesa-canary-1\" has timed out progressing."}]}});
    Api::<Deployment>::namespaced(h.client.clone(), NS)
        .patch_status(
            "thesa-canary",
            &PatchParams::default(),
            &Patch::Merge(failing),
        )
        .await?;
    h.reconcile(5).await?;
    let status = h.rollout().await;
    assert_eq!(status.phase, RolloutPhase::RolledBack);
    assert!(
        status
            .message
            .as_deref()
            .is_some_and(|m| m.contains("ProgressDeadlineExceeded")),
        "{:?}",
        status.message
    );
    assert!(h.deployment("thesa-canary").await.is_none());
    assert_eq!(h.accepted("orders").await.1, "RolloutFailed");
    Ok(())
}

/// The split of a step at 1 and 20 replicas: at least one canary pod, the
/// stable Deployment gives up as many but keeps one.
#[tokio::test]
async fn the_canary_split_at_one_and_twenty_replicas() -> TestResult {
    for (replicas, canary, stable) in [(1, 1, 1), (20, 2, 18)] {
        let mut tdep = canary_deployment();
        tdep.spec.replicas = Some(replicas);
        let h = Harness::canary_started(tdep).await;
        assert_eq!(
            (h.replicas("thesa-canary").await, h.replicas("thesa").await),
            (Some(canary), Some(stable)),
            "{replicas} replicas at 10%"
        );
        let status = h.rollout().await;
        assert_eq!(
            (status.canary_replicas, status.stable_replicas),
            (canary, stable)
        );
        // Rolled back: the stable Deployment gets all its pods again.
        h.annotate("thesa.io/rollout-abort").await;
        h.reconcile(5).await?;
        assert_eq!(h.replicas("thesa").await, Some(replicas));
    }
    Ok(())
}
