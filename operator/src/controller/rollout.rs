//! *Rollout*: with `spec.rollout.strategy: canary`, the stage between
//! build and status that decides how the built children reach the pods.
//! The decisions are [`crate::rollout::next`]'s (pure); this stage reads
//! what they need (the live Deployments, the metrics), carries them out
//! (the canary's ConfigMaps and Deployment, the stable Deployment's
//! replicas or autoscaler bounds, promotion, rollback) and says what to
//! write in the status. Its whole state is in the API — `status.rollout`
//! and the annotations — so a restarted operator continues a canary where
//! it stopped.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
    PropagationPolicy,
};
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};
use tracing::{info, warn};

use super::apply::apply;
use super::{Context, Error};
use crate::crd::{
    AnalysisFigures, AnalysisSource, AnalysisSourceType, RolloutStatus, ThesaDeployment,
};
use crate::desired::{self, Children, MANAGER};
use crate::gate::{Outcome, ServedFile};
use crate::plan;
use crate::revision::CachedDefinition;
use crate::rollout::{
    self, ABORT_ANNOTATION, Action, CANARY_TRACK, Measured, Observed, PROMOTE_ANNOTATION, Reading,
    Settings, TRACK_LABEL,
};

/// One pod to read `/metrics` from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodTarget {
    /// The pod's name.
    pub name: String,
    /// The metrics port (number or name).
    pub port: String,
    /// The metrics path, such as `/metrics`.
    pub path: String,
}

/// What a metrics source is asked for: both tracks of one ThesaDeployment.
pub struct ReadRequest<'a> {
    /// The API client (source `pods` reads through the pod proxy).
    pub client: &'a Client,
    /// The namespace.
    pub namespace: &'a str,
    /// The ThesaDeployment's name.
    pub deployment: &'a str,
    /// `spec.rollout.analysis.source`.
    pub source: &'a AnalysisSource,
    /// The canary's running pods.
    pub canary: Vec<PodTarget>,
    /// The stable Deployment's running pods.
    pub stable: Vec<PodTarget>,
    /// The analysis interval.
    pub interval: Duration,
}

/// Where a canary's figures come from; injected into the [`Context`] so
/// that tests can script them.
pub trait MetricsSource: Send + Sync {
    /// Reads both tracks now.
    fn read<'a>(&'a self, request: &'a ReadRequest<'a>) -> BoxFuture<'a, Result<Reading, String>>;
}

/// The real source: the pods' `/metrics` through the API server's pod
/// proxy, or a Prometheus-compatible query API.
#[derive(Debug, Default)]
pub struct ApiMetrics {
    /// Made on first use (source `prometheus` only).
    http: std::sync::OnceLock<reqwest::Client>,
}

impl MetricsSource for ApiMetrics {
    fn read<'a>(&'a self, request: &'a ReadRequest<'a>) -> BoxFuture<'a, Result<Reading, String>> {
        Box::pin(async move {
            match request.source.type_ {
                AnalysisSourceType::Pods => Ok(Reading {
                    canary: Measured::Counters(scrape(request, &request.canary).await?),
                    stable: Measured::Counters(scrape(request, &request.stable).await?),
                }),
                AnalysisSourceType::Prometheus => {
                    let settings = request
                        .source
                        .prometheus
                        .as_ref()
                        .ok_or("analysis.source.prometheus is not set")?;
                    Ok(Reading {
                        canary: Measured::Figures(
                            self.query(request, settings, &request.canary).await?,
                        ),
                        stable: Measured::Figures(
                            self.query(request, settings, &request.stable).await?,
                        ),
                    })
                }
            }
        })
    }
}

/// Sums the counters of `pods`, each read through the pod proxy
/// (`GET /api/v1/namespaces/{ns}/pods/{name}:{port}/proxy{path}`).
async fn scrape(
    request: &ReadRequest<'_>,
    pods: &[PodTarget],
) -> Result<crate::crd::Counters, String> {
    let mut texts = Vec::new();
    for pod in pods {
        let path = format!(
            "/api/v1/namespaces/{}/pods/{}:{}/proxy{}",
            request.namespace, pod.name, pod.port, pod.path
        );
        let http_request = http::Request::get(&path)
            .body(Vec::new())
            .map_err(|e| format!("{path}: {e}"))?;
        let text = request
            .client
            .request_text(http_request)
            .await
            .map_err(|e| format!("reading the metrics of pod {}: {e}", pod.name))?;
        texts.push(text);
    }
    rollout::parse_counters(texts.iter().map(String::as_str))
        .map_err(|e| format!("the metrics of {}: {e}", request.deployment))
}

impl ApiMetrics {
    async fn query(
        &self,
        request: &ReadRequest<'_>,
        settings: &crate::crd::PrometheusSource,
        pods: &[PodTarget],
    ) -> Result<AnalysisFigures, String> {
        let names: Vec<&str> = pods.iter().map(|p| p.name.as_str()).collect();
        let pods_regex = if names.is_empty() {
            "^$".to_string()
        } else {
            names.join("|")
        };
        let interval = format!("{}s", request.interval.as_secs().max(1));
        let fill = |query: &str| {
            query
                .replace("$namespace", request.namespace)
                .replace("$pods", &pods_regex)
                .replace("$interval", &interval)
        };
        let q = &settings.queries;
        let requests = self
            .scalar(
                &settings.url,
                &fill(q.requests.as_deref().unwrap_or(DEFAULT_REQUESTS)),
            )
            .await?;
        let error_rate = self
            .scalar(
                &settings.url,
                &fill(q.error_rate.as_deref().unwrap_or(DEFAULT_ERROR_RATE)),
            )
            .await?;
        let latency = self
            .scalar(
                &settings.url,
                &fill(q.latency_p99.as_deref().unwrap_or(DEFAULT_P99)),
            )
            .await?;
        Ok(AnalysisFigures {
            requests: requests.unwrap_or(0.0),
            error_rate,
            latency_p99_seconds: latency,
        })
    }

    /// The first sample of an instant query; `None` for an empty or NaN
    /// answer.
    async fn scalar(&self, url: &str, query: &str) -> Result<Option<f64>, String> {
        let endpoint = format!("{}/api/v1/query", url.trim_end_matches('/'));
        let http = self.http.get_or_init(|| {
            let _ = rustls::crypto::ring::default_provider().install_default();
            reqwest::Client::new()
        });
        let answer: Value = http
            .get(&endpoint)
            .query(&[("query", query)])
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| format!("querying {endpoint}: {e}"))?
            .json()
            .await
            .map_err(|e| format!("the answer of {endpoint}: {e}"))?;
        let value = answer
            .pointer("/data/result/0/value/1")
            .or_else(|| answer.pointer("/data/result/1"))
            .and_then(Value::as_str)
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| v.is_finite());
        Ok(value)
    }
}

/// Default Prometheus queries over the BFF's own metrics.
const DEFAULT_REQUESTS: &str = r#"sum(increase(thesa_http_requests_total{namespace="$namespace",pod=~"$pods",path_pattern!~"/ui/health|/ui/ready|/metrics"}[$interval]))"#;
const DEFAULT_ERROR_RATE: &str = r#"sum(increase(thesa_http_requests_total{namespace="$namespace",pod=~"$pods",status=~"5..",path_pattern!~"/ui/health|/ui/ready|/metrics"}[$interval])) / sum(increase(thesa_http_requests_total{namespace="$namespace",pod=~"$pods",path_pattern!~"/ui/health|/ui/ready|/metrics"}[$interval]))"#;
const DEFAULT_P99: &str = r#"histogram_quantile(0.99, sum by (le) (increase(thesa_http_request_duration_seconds_bucket{namespace="$namespace",pod=~"$pods",path_pattern!~"/ui/health|/ui/ready|/metrics"}[$interval])))"#;

/// What the stage leaves for the status.
#[derive(Debug, Default)]
pub(super) struct Staged {
    /// `status.rollout` to write (`None`: remove it).
    pub rollout: Option<RolloutStatus>,
    /// When to look again, sooner than the resync.
    pub requeue: Option<Duration>,
    /// Definitions (`namespace/name`) this reconcile rolled back.
    pub failed: BTreeMap<String, i64>,
}

/// The rollout stage of one ThesaDeployment whose plan is ready.
pub(super) async fn stage(
    ctx: &Context,
    tdep: &ThesaDeployment,
    children: &Children,
    outcome: &Outcome,
    previous: &[ServedFile],
) -> Result<Staged, Error> {
    let namespace = tdep.namespace().unwrap_or_default();
    let name = tdep.name_any();
    let full = plan::full_name(tdep);
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);
    let old = tdep.status.as_ref().and_then(|s| s.rollout.clone());
    let built = children.workload.iter().find(|o| o["kind"] == "Deployment");
    let stable_live = deployments
        .get_opt(&name)
        .await
        .map_err(Error::api(format!("reading Deployment {namespace}/{name}")))?;
    if !rollout::is_canary(tdep) {
        // Back to `immediate`: the stable Deployment takes everything.
        if let (Some(live), Some(built)) = (&stable_live, built) {
            replace_if_selector_differs(ctx, &namespace, live, built).await?;
        }
        apply(ctx, &namespace, children).await?;
        delete_canary(ctx, &namespace, &name).await?;
        ctx.telemetry.rollout_step(&full, 0);
        return Ok(Staged::default());
    }
    let settings = Settings::of(&tdep.spec.rollout.clone().unwrap_or_default());
    let candidate = built.and_then(rollout::revision_of).unwrap_or_default();
    let stable_revision = stable_live.as_ref().map(|d| {
        serde_json::to_value(d)
            .ok()
            .and_then(|v| rollout::revision_of(&v))
            .unwrap_or_default()
    });
    let canary_name = format!("{name}-canary");
    let canary_live = deployments
        .get_opt(&canary_name)
        .await
        .map_err(Error::api(format!(
            "reading Deployment {namespace}/{canary_name}"
        )))?;
    let now = (ctx.clock)();
    let annotations = tdep.annotations();
    let reading = match old.as_ref() {
        Some(status)
            if status.revision.as_deref() == Some(candidate.as_str())
                && rollout::reading_due(&settings, Some(status), now) =>
        {
            read_metrics(ctx, tdep, &settings).await
        }
        _ => None,
    };
    let observed = Observed {
        candidate: &candidate,
        stable: stable_revision.as_deref(),
        status: old.as_ref(),
        promote: annotations.contains_key(PROMOTE_ANNOTATION),
        abort: annotations.contains_key(ABORT_ANNOTATION),
        canary_ready: canary_live.as_ref().is_some_and(all_ready),
        canary_failed: canary_live.as_ref().and_then(failed),
        reading,
        now,
    };
    let action = rollout::next(&settings, &observed);
    let mut staged = Staged::default();
    match action {
        Action::Apply { status } => {
            if let (Some(live), Some(built)) = (&stable_live, built) {
                replace_if_selector_differs(ctx, &namespace, live, built).await?;
            }
            apply(ctx, &namespace, children).await?;
            if canary_live.is_some() {
                delete_canary(ctx, &namespace, &name).await?;
            }
            staged.rollout = status;
        }
        Action::Hold { status } => {
            if canary_live.is_some() {
                delete_canary(ctx, &namespace, &name).await?;
            }
            staged.rollout = Some(status);
        }
        Action::Canary {
            mut status,
            requeue,
            event,
        } => {
            if let (Some(live), Some(built)) = (&stable_live, built) {
                replace_if_selector_differs(ctx, &namespace, live, built).await?;
            }
            let hpa = tdep
                .spec
                .autoscaling
                .as_ref()
                .map(crate::crd::Autoscaling::bounds);
            let total = match hpa {
                None => tdep.spec.replicas.unwrap_or(3),
                Some((min, _)) => {
                    let replicas =
                        |d: &Option<Deployment>| d.as_ref().and_then(|d| d.spec.as_ref()?.replicas);
                    let stable = replicas(&stable_live).unwrap_or(min);
                    let canary = if old.as_ref().is_some_and(|o| o.phase.running()) {
                        replicas(&canary_live).unwrap_or(0)
                    } else {
                        0
                    };
                    stable + canary
                }
            };
            let split = rollout::split(total, status.weight, hpa);
            status.canary_replicas = split.canary;
            status.stable_replicas = split.stable;
            run_canary(ctx, &namespace, &name, children, split).await?;
            let started = old
                .as_ref()
                .is_none_or(|o| !o.phase.running() || o.revision != status.revision);
            if started {
                ctx.telemetry.rollout("started");
            }
            if let Some(note) = event {
                publish(ctx, tdep, EventType::Normal, "CanaryStep", note).await;
            }
            ctx.telemetry.rollout_step(&full, i64::from(status.step));
            info!(
                step = status.step,
                weight = status.weight,
                canary = split.canary,
                stable = split.stable,
                "canary"
            );
            staged.rollout = Some(status);
            staged.requeue = Some(requeue);
        }
        Action::Promote { status } => {
            if let (Some(live), Some(built)) = (&stable_live, built) {
                replace_if_selector_differs(ctx, &namespace, live, built).await?;
            }
            apply(ctx, &namespace, children).await?;
            delete_canary(ctx, &namespace, &name).await?;
            ctx.telemetry.rollout("promoted");
            ctx.telemetry.rollout_step(&full, 0);
            let note = format!(
                "promoted {}: {}",
                status.revision.as_deref().unwrap_or_default(),
                status.message.as_deref().unwrap_or_default()
            );
            publish(ctx, tdep, EventType::Normal, "CanaryPromoted", note).await;
            staged.rollout = Some(status);
        }
        Action::Rollback { mut status } => {
            restore_stable(ctx, &namespace, tdep, children).await?;
            delete_canary(ctx, &namespace, &name).await?;
            ctx.telemetry.rollout("rolled_back");
            ctx.telemetry.rollout_step(&full, 0);
            status.failed_definitions = changed_definitions(outcome, previous);
            staged.failed = status.failed_definitions.clone();
            let note = format!(
                "rolled back {} ({}); stable revision kept; definitions refused: {}",
                status.revision.as_deref().unwrap_or_default(),
                status.message.as_deref().unwrap_or_default(),
                if staged.failed.is_empty() {
                    "none".to_string()
                } else {
                    staged.failed.keys().cloned().collect::<Vec<_>>().join(", ")
                }
            );
            warn!(%note, "canary rolled back");
            publish(ctx, tdep, EventType::Warning, "RolloutFailed", note.clone()).await;
            for definition in staged.failed.keys() {
                if let Some((ns, n)) = definition.split_once('/') {
                    let key = ObjectRef::<CachedDefinition>::new(n).within(ns);
                    if let Some(tdef) = ctx.definitions.get(&key) {
                        publish_on(
                            ctx,
                            &tdef.object_ref(&()),
                            EventType::Warning,
                            "RolloutFailed",
                            note.clone(),
                        )
                        .await;
                    }
                }
            }
            staged.rollout = Some(status);
        }
    }
    if observed.promote || observed.abort {
        clear_annotations(ctx, tdep).await?;
    }
    Ok(staged)
}

/// Whether every wanted pod of a Deployment is ready and current.
fn all_ready(deployment: &Deployment) -> bool {
    let wanted = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    let Some(status) = &deployment.status else {
        return false;
    };
    let current = status.observed_generation >= deployment.meta().generation;
    current
        && wanted > 0
        && status.ready_replicas.unwrap_or(0) >= wanted
        && status.updated_replicas.unwrap_or(0) >= wanted
}

/// Why a Deployment's pods cannot come up, when it says so: its progress
/// deadline passed (`Progressing=False`) or a replica failure.
fn failed(deployment: &Deployment) -> Option<String> {
    let conditions = deployment.status.as_ref()?.conditions.as_ref()?;
    conditions
        .iter()
        .find(|c| {
            (c.type_ == "Progressing" && c.status == "False")
                || (c.type_ == "ReplicaFailure" && c.status == "True")
        })
        .map(|c| {
            format!(
                "{}: {}",
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default()
            )
        })
}

/// Reads both tracks through the context's metrics source; a failure is
/// logged and the interval read again on the next reconcile.
async fn read_metrics(
    ctx: &Context,
    tdep: &ThesaDeployment,
    settings: &Settings,
) -> Option<Reading> {
    let namespace = tdep.namespace().unwrap_or_default();
    let name = tdep.name_any();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let selector = desired::selector_labels(&name)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let listed = match pods.list(&ListParams::default().labels(&selector)).await {
        Ok(list) => list.items,
        Err(err) => {
            warn!(error = %err, "cannot list the pods for the canary analysis");
            return None;
        }
    };
    let (mut canary, mut stable) = (Vec::new(), Vec::new());
    for pod in listed {
        let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        if !running || pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let annotations = pod.annotations();
        let target = PodTarget {
            name: pod.name_any(),
            port: annotations
                .get("prometheus.io/port")
                .cloned()
                .unwrap_or_else(|| "8080".into()),
            path: annotations
                .get("prometheus.io/path")
                .cloned()
                .unwrap_or_else(|| "/metrics".into()),
        };
        if pod.labels().get(TRACK_LABEL).map(String::as_str) == Some(CANARY_TRACK) {
            canary.push(target);
        } else {
            stable.push(target);
        }
    }
    let source = tdep
        .spec
        .rollout
        .as_ref()
        .and_then(|r| r.analysis.as_ref())
        .and_then(|a| a.source.clone())
        .unwrap_or_default();
    let request = ReadRequest {
        client: &ctx.client,
        namespace: &namespace,
        deployment: &name,
        source: &source,
        canary,
        stable,
        interval: settings.interval,
    };
    match ctx.metrics.read(&request).await {
        Ok(reading) => Some(reading),
        Err(err) => {
            warn!(error = %err, "cannot read the canary's metrics; trying again next time");
            None
        }
    }
}

/// Applies the canary's ConfigMaps and Deployment, and gives up the
/// stable Deployment's pods (its replicas, or its autoscaler's bounds).
async fn run_canary(
    ctx: &Context,
    namespace: &str,
    name: &str,
    children: &Children,
    split: rollout::Split,
) -> Result<(), Error> {
    let params = PatchParams::apply(MANAGER).force();
    let (config_maps, deployment) = desired::canary_children(children, name, split.canary);
    let cm_api: Api<DynamicObject> = Api::namespaced_with(
        ctx.client.clone(),
        namespace,
        &ApiResource::erase::<ConfigMap>(&()),
    );
    for cm in &config_maps {
        cm_api
            .patch(&cm.name, &params, &Patch::Apply(cm))
            .await
            .map_err(Error::api(format!(
                "applying ConfigMap {namespace}/{}",
                cm.name
            )))?;
    }
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), namespace);
    if let Some(deployment) = deployment {
        deployments
            .patch(
                &format!("{name}-canary"),
                &params,
                &Patch::Apply(&deployment),
            )
            .await
            .map_err(Error::api(format!(
                "applying Deployment {namespace}/{name}-canary"
            )))?;
    }
    match split.hpa {
        None => {
            deployments
                .patch(
                    name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "spec": { "replicas": split.stable } })),
                )
                .await
                .map_err(Error::api(format!("scaling Deployment {namespace}/{name}")))?;
        }
        Some((min, max)) => {
            if let Some(hpa) = children
                .workload
                .iter()
                .find(|o| o["kind"] == "HorizontalPodAutoscaler")
            {
                let mut hpa = hpa.clone();
                hpa["spec"]["minReplicas"] = json!(min);
                hpa["spec"]["maxReplicas"] = json!(max);
                apply_object(ctx, namespace, &hpa).await?;
            }
        }
    }
    Ok(())
}

/// After a rollback: the stable Deployment's pod count (or its
/// autoscaler's bounds) as the spec says; its pod template is not touched.
async fn restore_stable(
    ctx: &Context,
    namespace: &str,
    tdep: &ThesaDeployment,
    children: &Children,
) -> Result<(), Error> {
    let name = tdep.name_any();
    match children
        .workload
        .iter()
        .find(|o| o["kind"] == "HorizontalPodAutoscaler")
    {
        Some(hpa) => apply_object(ctx, namespace, hpa).await,
        None => {
            let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), namespace);
            deployments
                .patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(
                        json!({ "spec": { "replicas": tdep.spec.replicas.unwrap_or(3) } }),
                    ),
                )
                .await
                .map_err(Error::api(format!("scaling Deployment {namespace}/{name}")))?;
            Ok(())
        }
    }
}

async fn apply_object(ctx: &Context, namespace: &str, object: &Value) -> Result<(), Error> {
    let text = |pointer: &str| {
        object
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let (group, version) = text("/apiVersion")
        .split_once('/')
        .unwrap_or(("", text("/apiVersion")));
    let resource = ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
        group,
        version,
        text("/kind"),
    ));
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), namespace, &resource);
    let name = text("/metadata/name");
    api.patch(
        name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
    .map_err(Error::api(format!(
        "applying {} {namespace}/{name}",
        text("/kind")
    )))?;
    Ok(())
}

/// Removes the canary: its Deployment and its ConfigMaps.
async fn delete_canary(ctx: &Context, namespace: &str, name: &str) -> Result<(), Error> {
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), namespace);
    let canary = format!("{name}-canary");
    match deployments
        .delete(&canary, &DeleteParams::background())
        .await
    {
        Ok(_) => info!(deployment = %canary, "canary removed"),
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(err) => {
            return Err(Error::api(format!(
                "deleting Deployment {namespace}/{canary}"
            ))(err));
        }
    }
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), namespace);
    let selector = format!(
        "{},{TRACK_LABEL}={CANARY_TRACK}",
        desired::children_selector(name)
    );
    let listed = config_maps
        .list_metadata(&ListParams::default().labels(&selector))
        .await
        .map_err(Error::api(format!(
            "listing the canary ConfigMaps of {name}"
        )))?;
    for cm in listed {
        let cm_name = cm.name_any();
        match config_maps.delete(&cm_name, &DeleteParams::default()).await {
            Ok(_) | Err(kube::Error::Api(_)) => {}
            Err(err) => {
                return Err(Error::api(format!(
                    "deleting ConfigMap {namespace}/{cm_name}"
                ))(err));
            }
        }
    }
    Ok(())
}

/// A Deployment's selector cannot change. When the stable Deployment's
/// live selector is not the built one (a ThesaDeployment switching to or
/// from `canary`, or one created by an operator before canaries), the
/// Deployment is deleted with its pods orphaned and created again from its
/// live spec with the new selector: the new Deployment adopts the
/// orphaned ReplicaSet (same template, labels within the new selector), so
/// no pod restarts.
async fn replace_if_selector_differs(
    ctx: &Context,
    namespace: &str,
    live: &Deployment,
    built: &Value,
) -> Result<(), Error> {
    let Some(spec) = &live.spec else {
        return Ok(());
    };
    let live_selector = serde_json::to_value(&spec.selector).unwrap_or_default();
    let wanted = built.pointer("/spec/selector").cloned().unwrap_or_default();
    let wanted_selector: k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector =
        serde_json::from_value(wanted.clone()).unwrap_or_default();
    if live_selector == serde_json::to_value(&wanted_selector).unwrap_or_default() {
        return Ok(());
    }
    let name = live.name_any();
    info!(deployment = %name, "replacing the Deployment to change its selector; its pods are kept");
    let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), namespace);
    api.delete(
        &name,
        &DeleteParams {
            propagation_policy: Some(PropagationPolicy::Orphan),
            ..DeleteParams::default()
        },
    )
    .await
    .map_err(Error::api(format!(
        "deleting Deployment {namespace}/{name} (orphaning its pods)"
    )))?;
    // The garbage collector orphans the ReplicaSet before the Deployment
    // goes: wait for it, a bounded while.
    for _ in 0..50 {
        let gone = api
            .get_opt(&name)
            .await
            .map_err(Error::api(format!("reading Deployment {namespace}/{name}")))?
            .is_none();
        if gone {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut spec = spec.clone();
    spec.selector = wanted_selector;
    let replacement = Deployment {
        metadata: kube::api::ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.to_string()),
            labels: live.metadata.labels.clone(),
            annotations: live.metadata.annotations.clone(),
            owner_references: live.metadata.owner_references.clone(),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    };
    api.create(
        &PostParams {
            field_manager: Some(MANAGER.into()),
            ..PostParams::default()
        },
        &replacement,
    )
    .await
    .map_err(Error::api(format!(
        "creating Deployment {namespace}/{name} with the new selector"
    )))?;
    Ok(())
}

/// The selected definitions whose served revision the candidate changes
/// (new or different text), with the generation that was rolled back.
fn changed_definitions(outcome: &Outcome, previous: &[ServedFile]) -> BTreeMap<String, i64> {
    let before: BTreeMap<&str, &str> = previous
        .iter()
        .map(|f| (f.key.as_str(), &*f.text))
        .collect();
    let generations: BTreeMap<&str, Option<i64>> = outcome
        .verdicts
        .iter()
        .map(|v| (v.name.as_str(), v.generation))
        .collect();
    outcome
        .served
        .iter()
        .filter(|f| before.get(f.key.as_str()) != Some(&&*f.text))
        .filter_map(|f| {
            let generation = (*generations.get(f.owner.as_str())?)?;
            Some((f.owner.clone(), generation))
        })
        .collect()
}

async fn clear_annotations(ctx: &Context, tdep: &ThesaDeployment) -> Result<(), Error> {
    let api: Api<ThesaDeployment> =
        Api::namespaced(ctx.client.clone(), &tdep.namespace().unwrap_or_default());
    let patch = json!({ "metadata": { "annotations": {
        PROMOTE_ANNOTATION: null, ABORT_ANNOTATION: null } } });
    api.patch(
        &tdep.name_any(),
        &PatchParams::default(),
        &Patch::Merge(patch),
    )
    .await
    .map_err(Error::api(format!(
        "removing the rollout annotations of ThesaDeployment {}",
        tdep.name_any()
    )))?;
    Ok(())
}

async fn publish(
    ctx: &Context,
    tdep: &ThesaDeployment,
    type_: EventType,
    reason: &str,
    note: String,
) {
    publish_on(ctx, &tdep.object_ref(&()), type_, reason, note).await;
}

async fn publish_on(
    ctx: &Context,
    object: &k8s_openapi::api::core::v1::ObjectReference,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let mut note = note;
    if note.len() > 1000 {
        let mut end = 1000;
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
    }
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: "Rollout".into(),
        secondary: None,
    };
    if let Err(err) = ctx.recorder.publish(&event, object).await {
        warn!(error = %err, "could not record an event");
    }
}

/// The default metrics source, shared.
pub fn default_source() -> Arc<dyn MetricsSource> {
    Arc::new(ApiMetrics::default())
}
