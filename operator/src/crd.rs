//! The custom resources: `ThesaDefinition` and `ThesaDeployment`
//! (group `thesa.io`, version `v1alpha1`). Doc comments here become the
//! text of `kubectl explain`.
//!
//! Fields whose content the validator checks (a definition, the BFF config,
//! the policies) are kept as JSON values with the schema of their typed
//! model: the API server rejects what the schema forbids, and anything it
//! lets through is loaded by `thesa-core`, so an odd object gives findings
//! in its status instead of breaking the controller's watch.

// kube's `printcolumn(...)` repeats `type_ = ...` per column, which clippy
// mistakes for a duplicated attribute.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, ConfigMapKeySelector, EnvVar, LocalObjectReference, ResourceRequirements,
    SecretKeySelector, Toleration, TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A domain's definition: navigation, pages, forms, commands, workflows,
/// searches and lookups, each bound to backend operations by `operationId`.
/// The operator validates it with the specs of every ThesaDeployment that
/// selects it and rolls it out only when it is valid.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[kube(
    group = "thesa.io",
    version = "v1alpha1",
    kind = "ThesaDefinition",
    derive = "Default",
    derive = "PartialEq",
    namespaced,
    shortname = "tdef",
    category = "thesa",
    status = "ThesaDefinitionStatus",
    doc = "A Thesa definition: one domain's part of the UI, validated against the backends' OpenAPI specs before it is rolled out.",
    printcolumn(name = "Domain", type_ = "string", json_path = ".spec.domain"),
    printcolumn(name = "Version", type_ = "string", json_path = ".spec.version"),
    printcolumn(
        name = "Accepted",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Accepted\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
pub struct ThesaDefinitionSpec {
    /// The definition document, in the format of `definitions/*.yaml`.
    #[serde(flatten)]
    #[schemars(with = "thesa_core::model::Definition")]
    pub document: Map<String, Value>,
}

/// What the operator concluded about a ThesaDefinition.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ThesaDefinitionStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// SHA-256 of the definition's canonical form (`sha256:…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// `Accepted`: True when the definition passed validation and is rolled
    /// out; False with the reason and the findings otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Validation findings (errors and warnings), at most 50.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<StatusFinding>,
    /// The last generation that passed validation and is being served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_generation: Option<i64>,
    /// The checksum of that accepted generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_checksum: Option<String>,
}

/// One validation finding.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusFinding {
    /// Stable code, such as `UNKNOWN_OPERATION` (see docs/validation.md).
    pub code: String,
    /// `error` or `warning`.
    pub severity: String,
    /// Field path inside `spec`, such as `pages[0].table.data_source`.
    pub path: String,
    /// What is wrong and how to fix it.
    pub message: String,
    /// The ThesaDeployment whose specs this finding was checked against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
}

/// A Thesa BFF deployment: the image, the BFF configuration, the OpenAPI
/// specs of its backends and the ThesaDefinitions it serves. The operator
/// turns it into ConfigMaps, a ServiceAccount, a Service, a Deployment, a
/// HorizontalPodAutoscaler and a PodDisruptionBudget.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[kube(
    group = "thesa.io",
    version = "v1alpha1",
    kind = "ThesaDeployment",
    derive = "Default",
    derive = "PartialEq",
    namespaced,
    shortname = "tdep",
    category = "thesa",
    status = "ThesaDeploymentStatus",
    doc = "A Thesa BFF deployment: image, configuration, backend specs and the definitions it serves.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Replicas",
        type_ = "integer",
        json_path = ".status.readyReplicas"
    ),
    printcolumn(
        name = "Definitions",
        type_ = "integer",
        json_path = ".status.definitions.accepted"
    ),
    printcolumn(
        name = "Rollout",
        type_ = "string",
        json_path = ".status.rollout.phase"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ThesaDeploymentSpec {
    /// The `thesa-bff` container image, such as
    /// `registry.example.com/thesa-bff:1.2.3`.
    #[schemars(length(min = 1))]
    pub image: String,
    /// `Always`, `IfNotPresent` or `Never`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,
    /// Secrets for pulling the image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// Pod count when autoscaling is off (default 3). With autoscaling the
    /// HorizontalPodAutoscaler owns the count and this field is ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub replicas: Option<i32>,
    /// Container resources (default: requests 100m CPU / 128Mi, limits
    /// 500m / 256Mi, the deployment guide's sizing for small installs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Node labels the pods must run on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Pod tolerations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Pod affinity and anti-affinity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// How pods spread across zones and nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
    /// Extra labels on the pods (the operator's own labels win).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_labels: BTreeMap<String, String>,
    /// Extra annotations on the pods (the operator's own annotations win).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_annotations: BTreeMap<String, String>,
    /// Extra environment variables of the BFF container, such as `THESA_*`
    /// overrides.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Which ThesaDefinitions this deployment serves.
    #[serde(default)]
    pub definitions: DefinitionSelection,
    /// The OpenAPI spec of each backend service the definitions call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["serviceId"]))]
    pub specs: Vec<SpecSource>,
    /// The BFF configuration, in the format of `config/config.yaml`
    /// (snake_case keys). File locations (definitions, specs, policies) and
    /// `definitions.hot_reload` are set by the operator. Secrets never go
    /// here: see `secrets`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<thesa_core::config::Config>")]
    pub config: Option<Value>,
    /// The static capability policy (`roles: {role: [capability, ...]}`),
    /// written to `policies.yaml` for `capability.evaluator: static`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<thesa_core::config::Policies>")]
    pub policies: Option<Value>,
    /// Secrets, by reference only: each becomes an environment variable of
    /// the BFF container read from a Kubernetes Secret.
    #[serde(default)]
    pub secrets: SecretRefs,
    /// Horizontal pod autoscaling. When set, the HorizontalPodAutoscaler
    /// owns the replica count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Autoscaling>,
    /// The PodDisruptionBudget (default `minAvailable: 2`, lowered so that a
    /// single-replica deployment can still be drained).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disruption_budget: Option<DisruptionBudget>,
    /// The Service in front of the pods.
    #[serde(default)]
    pub service: ServiceSettings,
    /// Stop rolling out changes: the child objects keep their current
    /// state until this is false again. Status is still reported.
    #[serde(default)]
    pub paused: bool,
    /// How a change of what the pods serve (accepted definitions, config,
    /// policies, specs, secrets, image) reaches them: at once (`immediate`,
    /// the default) or through a canary that is measured step by step and
    /// rolled back automatically (`canary`). See docs/operator.md,
    /// "Progressive delivery".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutSpec>,
}

/// Progressive delivery of changes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("(has(self.strategy) && self.strategy == 'canary') || (!has(self.steps) && !has(self.analysis))").message("steps and analysis apply to strategy canary only"))]
pub struct RolloutSpec {
    /// `immediate` (default): every pod takes a change at once, by the
    /// Deployment's rolling update. `canary`: a second Deployment
    /// `<name>-canary` runs the change on a share of the pods first.
    #[serde(default)]
    pub strategy: RolloutStrategy,
    /// The canary's steps, in order; the canary is promoted after the last
    /// one. Default: the deployment guide's 5% for 10m, 25% for 10m, 100%
    /// for 30m.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(min = 1, max = 20))]
    #[x_kube(validation = kube::core::Rule::new("self.all(a, self.exists_one(b, b.weight == a.weight))").message("each step needs its own weight"))]
    pub steps: Vec<CanaryStep>,
    /// How each interval of the canary is judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<Analysis>,
    /// Hold the canary at its current step: analysis goes on (and can
    /// still roll back), but no step is taken until this is false again.
    /// The annotation `thesa.io/rollout-promote` promotes at once, and
    /// `thesa.io/rollout-abort` rolls back at once.
    #[serde(default)]
    pub paused: bool,
}

/// How changes reach the pods.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RolloutStrategy {
    /// Every pod at once (the Deployment's rolling update).
    #[default]
    Immediate,
    /// A measured canary first, promoted or rolled back automatically.
    Canary,
}

/// One step of a canary.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStep {
    /// Share of the pods (and so of the traffic the Service spreads over
    /// them) that run the change, in percent. The canary gets at least one
    /// pod; the stable Deployment gives up as many.
    #[schemars(range(min = 1, max = 100))]
    pub weight: i32,
    /// How long the step lasts before the next one (`10m`, `30s`).
    pub pause: thesa_core::duration::Duration,
}

/// How the canary is measured and judged.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Analysis {
    /// Length of one measured interval (default `1m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<thesa_core::duration::Duration>,
    /// Highest share of 5xx answers among the canary's requests in an
    /// interval, as a fraction (default `0.01`, the guide's 1%).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub max_error_rate: Option<f64>,
    /// Highest 99th percentile of the canary's request durations in an
    /// interval (default `2s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_latency_p99: Option<thesa_core::duration::Duration>,
    /// Fewest canary requests in an interval for a verdict (default 20):
    /// with fewer, the interval counts neither way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub min_requests: Option<i64>,
    /// Consecutive bad intervals that roll the canary back (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub failure_limit: Option<i32>,
    /// Where the figures come from (default: the pods' own `/metrics`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<AnalysisSource>,
}

/// Where the analysis reads the figures.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!has(self.type) || self.type != 'prometheus' || has(self.prometheus)").message("type prometheus needs the prometheus settings"))]
pub struct AnalysisSource {
    /// `pods` (default): the BFF pods' own `/metrics`, read through the API
    /// server's pod proxy, nothing else to install. `prometheus`: a
    /// Prometheus-compatible query API.
    #[serde(default, rename = "type")]
    pub type_: AnalysisSourceType,
    /// The Prometheus settings, for type `prometheus`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusSource>,
}

/// Kinds of analysis source.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AnalysisSourceType {
    /// The pods' `/metrics`, through the API server's pod proxy.
    #[default]
    Pods,
    /// A Prometheus-compatible query API.
    Prometheus,
}

/// A Prometheus-compatible query API and the queries to ask it. In each
/// query `$namespace` is the namespace, `$pods` a regular expression of
/// the pod names of one track (canary or stable) and `$interval` the
/// analysis interval in seconds (`60s`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusSource {
    /// Base URL of the API, such as `http://prometheus.monitoring:9090`.
    #[schemars(regex(pattern = r"^https?://"))]
    pub url: String,
    /// Queries; each has a default over the BFF's own metrics.
    #[serde(default)]
    pub queries: PrometheusQueries,
}

/// The queries of a Prometheus source (each returns one number).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusQueries {
    /// Requests in the interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<String>,
    /// Share of 5xx answers in the interval (a fraction).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<String>,
    /// 99th percentile of request durations in the interval, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_p99: Option<String>,
}

/// Image pull policy.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum PullPolicy {
    /// Pull on every start.
    Always,
    /// Pull when the node does not have the image.
    IfNotPresent,
    /// Never pull.
    Never,
}

impl PullPolicy {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "Always",
            Self::IfNotPresent => "IfNotPresent",
            Self::Never => "Never",
        }
    }
}

/// Which ThesaDefinitions a deployment serves.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DefinitionSelection {
    /// Label selector over ThesaDefinitions. Empty selects every
    /// ThesaDefinition in the namespace(s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// Also look in the namespaces whose labels match. Unset: only the
    /// deployment's own namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// Let the BFF reload changed definitions itself instead of rolling the
    /// pods (the BFF's `definitions.hot_reload`).
    #[serde(default)]
    pub hot_reload: bool,
}

/// The OpenAPI spec of one backend service: from a ConfigMap key, or
/// inline.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.configMapKeyRef) != has(self.inline)").message("set exactly one of configMapKeyRef and inline"))]
pub struct SpecSource {
    /// The service ID the definitions' operations belong to, such as
    /// `orders-svc`; also the key of `config.services`.
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$"))]
    pub service_id: String,
    /// A key of a ConfigMap in the deployment's namespace that holds the
    /// spec (YAML or JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_key_ref: Option<ConfigMapKeySelector>,
    /// The spec itself (YAML or JSON text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<String>,
}

/// Secrets of the BFF, by reference. Each becomes an environment variable
/// with `valueFrom.secretKeyRef`; the variable's name is the one the BFF
/// config names (`workflow.store.dsn_env`, `idempotency.store.addr_env`,
/// `services.<id>.auth.client_secret_env`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRefs {
    /// The PostgreSQL DSN of the workflow store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_dsn: Option<SecretKeySelector>,
    /// The Redis address of the idempotency store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_addr: Option<SecretKeySelector>,
    /// OAuth2 client secrets of `service_token` services, by service ID.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub service_tokens: BTreeMap<String, SecretKeySelector>,
    /// Secrets whose every key becomes an environment variable
    /// (`envFrom.secretRef`), such as `THESA_*` overrides.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_from: Vec<LocalObjectReference>,
}

/// Horizontal pod autoscaling (autoscaling/v2). Defaults follow the
/// deployment guide: 3–20 replicas at 70% CPU, up by 2 pods a minute, down
/// by 1 pod every two minutes after a five-minute window.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas").message("minReplicas must not exceed maxReplicas"))]
pub struct Autoscaling {
    /// Fewest pods (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub min_replicas: Option<i32>,
    /// Most pods (default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_replicas: Option<i32>,
    /// Average CPU utilisation to aim for, in percent of the request
    /// (default 70).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(rename = "targetCPUUtilizationPercentage")]
    #[schemars(range(min = 1, max = 100))]
    pub target_cpu_utilization_percentage: Option<i32>,
    /// A per-pod custom metric to scale on as well, such as
    /// `thesa_http_request_duration_seconds` at `500m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_metric: Option<CustomMetric>,
    /// Scale-up rate limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_up: Option<ScalingRule>,
    /// Scale-down rate limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down: Option<ScalingRule>,
}

impl Autoscaling {
    /// `(minReplicas, maxReplicas)` with their defaults (3, 20).
    pub fn bounds(&self) -> (i32, i32) {
        (
            self.min_replicas.unwrap_or(3),
            self.max_replicas.unwrap_or(20),
        )
    }
}

/// A `Pods` metric target of the HorizontalPodAutoscaler.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomMetric {
    /// The metric's name as the metrics adapter serves it.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Average value per pod to aim for (a quantity, such as `500m`).
    pub average_value: String,
}

/// How fast the autoscaler may change the pod count in one direction.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScalingRule {
    /// Seconds of history the autoscaler looks back over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 3600))]
    pub stabilization_window_seconds: Option<i32>,
    /// Pods added or removed per period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub pods: Option<i32>,
    /// The period, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1800))]
    pub period_seconds: Option<i32>,
}

/// The PodDisruptionBudget: at most one of the two.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!(has(self.minAvailable) && has(self.maxUnavailable))").message("set minAvailable or maxUnavailable, not both"))]
pub struct DisruptionBudget {
    /// Pods (or percentage) that must stay up during voluntary
    /// disruptions. Lowered to `replicas - 1` when it would block every
    /// eviction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_available: Option<IntOrString>,
    /// Pods (or percentage) that may be down during voluntary disruptions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
}

/// The Service in front of the BFF pods.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSettings {
    /// `ClusterIP` (default), `NodePort` or `LoadBalancer`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<ServiceType>,
    /// The Service port (default 80); it targets the pods' `http` port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
}

/// Kubernetes Service type.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ServiceType {
    /// Reachable inside the cluster.
    ClusterIP,
    /// Also on a port of every node.
    NodePort,
    /// Also through a cloud load balancer.
    LoadBalancer,
}

impl ServiceType {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClusterIP => "ClusterIP",
            Self::NodePort => "NodePort",
            Self::LoadBalancer => "LoadBalancer",
        }
    }
}

/// What the operator reports about a ThesaDeployment.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ThesaDeploymentStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Progressing`, `Degraded` and `DefinitionsValid`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Pods of the Deployment.
    #[serde(default)]
    pub replicas: i32,
    /// Pods that are ready.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Pods running the current pod template.
    #[serde(default)]
    pub updated_replicas: i32,
    /// Label selector of the pods, for the scale subresource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Definitions served and refused.
    #[serde(default)]
    pub definitions: DefinitionCounts,
    /// The image being rolled out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The canary rollout under way, or the last one (strategy `canary`).
    /// The operator keeps its whole state here, so a restart continues
    /// where it stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutStatus>,
}

/// Where a canary rollout stands.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    /// `Progressing`, `Paused`, `Promoted`, `RolledBack` or `Aborted`.
    pub phase: RolloutPhase,
    /// The revision the canary runs (`<pod template checksum>@<image>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// The revision the stable Deployment runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_revision: Option<String>,
    /// The current step, counted from 1 (0 before the first).
    #[serde(default)]
    pub step: i32,
    /// How many steps there are.
    #[serde(default)]
    pub steps: i32,
    /// The current step's weight, percent.
    #[serde(default)]
    pub weight: i32,
    /// Pods of the canary.
    #[serde(default)]
    pub canary_replicas: i32,
    /// Pods of the stable Deployment while the canary runs.
    #[serde(default)]
    pub stable_replicas: i32,
    /// When the rollout started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When the current step started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_started_at: Option<Time>,
    /// When the rollout was promoted or rolled back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// Bad intervals in a row so far.
    #[serde(default)]
    pub consecutive_failures: i32,
    /// The last judged interval: the canary's figures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<AnalysisFigures>,
    /// The last judged interval: the stable pods' figures, for comparison.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable: Option<AnalysisFigures>,
    /// The counters at the start of the interval being measured (source
    /// `pods`), by track.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Baseline>,
    /// What happened last, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// After a rollback: the ThesaDefinitions (`namespace/name`) whose
    /// generation was rolled back; those generations stay refused, and
    /// their previous revisions served, until a new generation arrives.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub failed_definitions: BTreeMap<String, i64>,
}

/// Phases of a canary rollout.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum RolloutPhase {
    /// The canary runs and is measured.
    #[default]
    Progressing,
    /// Held at its step by `spec.rollout.paused`.
    Paused,
    /// Promoted: the stable Deployment runs the revision.
    Promoted,
    /// Rolled back after bad intervals: the stable Deployment kept its
    /// revision.
    RolledBack,
    /// Rolled back by the abort annotation.
    Aborted,
}

impl RolloutPhase {
    /// Whether a canary runs in this phase.
    pub fn running(self) -> bool {
        matches!(self, Self::Progressing | Self::Paused)
    }
}

/// One track's figures over one interval.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisFigures {
    /// Requests answered.
    pub requests: f64,
    /// Share answered with a 5xx status (a fraction).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    /// 99th percentile of the request durations, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_p99_seconds: Option<f64>,
}

/// Cumulative counters of both tracks at the start of an interval.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Baseline {
    /// When they were read.
    pub at: Time,
    /// The canary's counters.
    pub canary: Counters,
    /// The stable pods' counters.
    pub stable: Counters,
}

/// Cumulative request counters summed over one track's pods.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Counters {
    /// Requests answered.
    pub requests: f64,
    /// Requests answered with a 5xx status.
    pub errors: f64,
    /// The request-duration histogram: upper bound (seconds, as written
    /// in the `le` label) to cumulative count.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub buckets: BTreeMap<String, f64>,
}

/// Counts of the selected definitions.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DefinitionCounts {
    /// Selected definitions whose current generation passed validation.
    pub accepted: i32,
    /// Selected definitions whose current generation was refused.
    pub rejected: i32,
    /// Checksum of the set of definitions being served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
}
