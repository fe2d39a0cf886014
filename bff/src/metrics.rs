//! Prometheus metrics with the names of Thesa's deployment guide, served at
//! `/metrics` in the OpenMetrics text format. Counters are registered
//! without the `_total` suffix; the encoder appends it.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Latency buckets in seconds: 1 ms to 10 s, for both fast metadata reads
/// and slow backend calls.
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Labels of a request: the route pattern (`/ui/pages/{id}`), never the raw
/// path, so that the series stay few.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RouteLabels {
    /// HTTP method (`other` for non-standard ones).
    pub method: &'static str,
    /// The matched route pattern, `unmatched` when no route matched.
    pub path_pattern: String,
}

/// Labels of a finished request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ResponseLabels {
    /// HTTP method (`other` for non-standard ones).
    pub method: &'static str,
    /// The matched route pattern.
    pub path_pattern: String,
    /// Response status code.
    pub status: u16,
}

/// A label with one value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct StatusLabel {
    /// `success` or `failure`.
    pub status: &'static str,
}

/// Why a request was not authenticated.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ReasonLabel {
    /// Stable reason, e.g. `expired`.
    pub reason: &'static str,
}

/// The backend service of a call.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ServiceLabel {
    /// The service ID from the configuration.
    pub service_id: String,
}

/// A workflow.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct WorkflowLabel {
    /// The workflow ID.
    pub workflow_id: String,
}

/// A command.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct CommandLabel {
    /// The command ID.
    pub command: String,
}

/// A step of a workflow.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct StepLabel {
    /// The workflow ID.
    pub workflow_id: String,
    /// The step ID.
    pub step: String,
}

/// Steps wait for people: seconds to weeks.
const STEP_BUCKETS: [f64; 10] = [
    0.01,
    0.1,
    1.0,
    10.0,
    60.0,
    600.0,
    3600.0,
    86_400.0,
    604_800.0,
    2_592_000.0,
];

/// Build labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    commit: String,
}

/// Every metric of the BFF. Handles are cheap clones of shared counters.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// `thesa_http_requests_total{method,path_pattern,status}`.
    pub http_requests: Family<ResponseLabels, Counter>,
    /// `thesa_http_request_duration_seconds{method,path_pattern}`.
    pub http_duration: Family<RouteLabels, Histogram>,
    /// `thesa_definition_reload_total{status}`.
    pub definition_reloads: Family<StatusLabel, Counter>,
    /// `thesa_definitions_loaded`: definitions being served.
    pub definitions_loaded: Gauge,
    /// `thesa_capability_cache_misses_total`.
    pub capability_cache_misses: Counter,
    /// `thesa_capability_cache_hits_total`.
    pub capability_cache_hits: Counter,
    /// `thesa_auth_rejections_total{reason}`: requests refused with 401.
    pub auth_rejections: Family<ReasonLabel, Counter>,
    /// `thesa_backend_request_duration_seconds{service_id}`: each attempt.
    pub backend_duration: Family<ServiceLabel, Histogram>,
    /// `thesa_backend_retries_total{service_id}`.
    pub backend_retries: Family<ServiceLabel, Counter>,
    /// `thesa_backend_circuit_breaker_state{service_id}`: 0 closed, 1 open,
    /// 2 half-open.
    pub breaker_state: Family<ServiceLabel, Gauge>,
    /// `thesa_workflow_instances_started_total{workflow_id}`.
    pub workflow_started: Family<WorkflowLabel, Counter>,
    /// `thesa_workflow_instances_completed_total{workflow_id}`: reached a
    /// terminal step.
    pub workflow_completed: Family<WorkflowLabel, Counter>,
    /// `thesa_workflow_instances_timed_out_total{workflow_id}`: step or
    /// workflow timeouts fired.
    pub workflow_timed_out: Family<WorkflowLabel, Counter>,
    /// `thesa_workflow_instances_active{workflow_id}`: updated by the
    /// timeout processor.
    pub workflow_active: Family<WorkflowLabel, Gauge>,
    /// `thesa_workflow_step_duration_seconds{workflow_id,step}`: time spent
    /// in a step, observed when it is left.
    pub workflow_step_duration: Family<StepLabel, Histogram>,
    /// `thesa_analytics_cache_hits_total`: analytics answers from the cache.
    pub analytics_cache_hits: Counter,
    /// `thesa_analytics_cache_misses_total`: analytics queries sent to the
    /// metrics backend.
    pub analytics_cache_misses: Counter,
    /// `thesa_analytics_backend_duration_seconds`: each query of the
    /// metrics backend.
    pub analytics_backend_duration: Histogram,
    /// `thesa_analytics_backend_failures_total{reason}`: `timeout`,
    /// `unreachable`, `status`, `answer`.
    pub analytics_backend_failures: Family<ReasonLabel, Counter>,
    /// `thesa_rate_limited_total{command}`: runs refused with 429.
    pub rate_limited: Family<CommandLabel, Counter>,
    /// `thesa_rate_limit_store_errors_total`: checks the store did not
    /// answer (the command then ran or was refused per
    /// `rate_limit.on_store_error`).
    pub rate_limit_store_errors: Counter,
    /// `thesa_trace_spans_dropped_total{reason}`: spans not exported,
    /// `queue_full` (the export queue was full) or `export_failed` (the
    /// collector refused them or did not answer).
    pub trace_spans_dropped: Family<ReasonLabel, Counter>,
}

impl Metrics {
    /// Registers every metric; `thesa_build_info` carries version and commit.
    pub fn new(version: &str, commit: &str) -> Self {
        let mut registry = Registry::default();
        let http_requests = Family::<ResponseLabels, Counter>::default();
        registry.register(
            "thesa_http_requests",
            "HTTP requests by route pattern and status",
            http_requests.clone(),
        );
        let http_duration = Family::<RouteLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(LATENCY_BUCKETS)) as fn() -> Histogram,
        );
        registry.register(
            "thesa_http_request_duration_seconds",
            "HTTP request duration by route pattern",
            http_duration.clone(),
        );
        let definition_reloads = Family::<StatusLabel, Counter>::default();
        registry.register(
            "thesa_definition_reload",
            "Definition reloads by outcome",
            definition_reloads.clone(),
        );
        let definitions_loaded = Gauge::default();
        registry.register(
            "thesa_definitions_loaded",
            "Definitions being served",
            definitions_loaded.clone(),
        );
        let capability_cache_misses = Counter::default();
        registry.register(
            "thesa_capability_cache_misses",
            "Capability resolutions not answered by the cache",
            capability_cache_misses.clone(),
        );
        let capability_cache_hits = Counter::default();
        registry.register(
            "thesa_capability_cache_hits",
            "Capability resolutions answered by the cache",
            capability_cache_hits.clone(),
        );
        let auth_rejections = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "thesa_auth_rejections",
            "Requests refused because the token was missing or invalid, by reason",
            auth_rejections.clone(),
        );
        let backend_duration = Family::<ServiceLabel, Histogram>::new_with_constructor(
            (|| Histogram::new(LATENCY_BUCKETS)) as fn() -> Histogram,
        );
        registry.register(
            "thesa_backend_request_duration_seconds",
            "Backend call duration by service, each attempt",
            backend_duration.clone(),
        );
        let backend_retries = Family::<ServiceLabel, Counter>::default();
        registry.register(
            "thesa_backend_retries",
            "Backend calls sent again after a failure",
            backend_retries.clone(),
        );
        let breaker_state = Family::<ServiceLabel, Gauge>::default();
        registry.register(
            "thesa_backend_circuit_breaker_state",
            "Circuit breaker by service: 0 closed, 1 open, 2 half-open",
            breaker_state.clone(),
        );
        let workflow_started = Family::<WorkflowLabel, Counter>::default();
        registry.register(
            "thesa_workflow_instances_started",
            "Workflow instances started",
            workflow_started.clone(),
        );
        let workflow_completed = Family::<WorkflowLabel, Counter>::default();
        registry.register(
            "thesa_workflow_instances_completed",
            "Workflow instances that reached a terminal step",
            workflow_completed.clone(),
        );
        let workflow_timed_out = Family::<WorkflowLabel, Counter>::default();
        registry.register(
            "thesa_workflow_instances_timed_out",
            "Step and workflow timeouts fired",
            workflow_timed_out.clone(),
        );
        let workflow_active = Family::<WorkflowLabel, Gauge>::default();
        registry.register(
            "thesa_workflow_instances_active",
            "Active workflow instances (all tenants)",
            workflow_active.clone(),
        );
        let workflow_step_duration = Family::<StepLabel, Histogram>::new_with_constructor(
            (|| Histogram::new(STEP_BUCKETS)) as fn() -> Histogram,
        );
        registry.register(
            "thesa_workflow_step_duration_seconds",
            "Time spent in a workflow step",
            workflow_step_duration.clone(),
        );
        let analytics_cache_hits = Counter::default();
        registry.register(
            "thesa_analytics_cache_hits",
            "Analytics answers served from the cache",
            analytics_cache_hits.clone(),
        );
        let analytics_cache_misses = Counter::default();
        registry.register(
            "thesa_analytics_cache_misses",
            "Analytics queries sent to the metrics backend",
            analytics_cache_misses.clone(),
        );
        let analytics_backend_duration = Histogram::new(LATENCY_BUCKETS);
        registry.register(
            "thesa_analytics_backend_duration_seconds",
            "Duration of each query of the metrics backend",
            analytics_backend_duration.clone(),
        );
        let analytics_backend_failures = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "thesa_analytics_backend_failures",
            "Metrics backend queries that failed, by reason",
            analytics_backend_failures.clone(),
        );
        let rate_limited = Family::<CommandLabel, Counter>::default();
        registry.register(
            "thesa_rate_limited",
            "Command runs refused by their rate limit, by command",
            rate_limited.clone(),
        );
        let rate_limit_store_errors = Counter::default();
        registry.register(
            "thesa_rate_limit_store_errors",
            "Rate limit checks the store did not answer",
            rate_limit_store_errors.clone(),
        );
        let trace_spans_dropped = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "thesa_trace_spans_dropped",
            "Spans not exported, by reason (queue_full, export_failed)",
            trace_spans_dropped.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: version.to_string(),
                commit: commit.to_string(),
            })
            .set(1);
        registry.register(
            "thesa_build_info",
            "Version and commit of the binary",
            build,
        );
        Self {
            registry,
            http_requests,
            http_duration,
            definition_reloads,
            definitions_loaded,
            capability_cache_misses,
            capability_cache_hits,
            auth_rejections,
            backend_duration,
            backend_retries,
            breaker_state,
            workflow_started,
            workflow_completed,
            workflow_timed_out,
            workflow_active,
            workflow_step_duration,
            analytics_cache_hits,
            analytics_cache_misses,
            analytics_backend_duration,
            analytics_backend_failures,
            rate_limited,
            rate_limit_store_errors,
            trace_spans_dropped,
        }
    }

    /// Counts a definition reload.
    pub fn reload(&self, success: bool) {
        let status = if success { "success" } else { "failure" };
        self.definition_reloads
            .get_or_create(&StatusLabel { status })
            .inc();
    }

    /// The exposition text.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `thesa_*` metric families a text names (sample suffixes removed).
    pub fn families(text: &str) -> std::collections::BTreeSet<String> {
        regex::Regex::new(r"thesa_[a-z0-9_]+")
            .unwrap()
            .find_iter(text)
            .map(|m| {
                let name = m.as_str();
                ["_bucket", "_count", "_sum", "_total"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s))
                    .unwrap_or(name)
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn the_dashboard_queries_only_metrics_the_bff_exports() {
        let dashboard = include_str!("../../docs/grafana/thesa-bff.json");
        // Families without samples are not exposed: give each one.
        let m = Metrics::new("v", "c");
        let route = "/ui/x".to_string();
        m.http_requests
            .get_or_create(&ResponseLabels {
                method: "GET",
                path_pattern: route.clone(),
                status: 200,
            })
            .inc();
        m.http_duration
            .get_or_create(&RouteLabels {
                method: "GET",
                path_pattern: route,
            })
            .observe(0.1);
        m.reload(true);
        m.auth_rejections
            .get_or_create(&ReasonLabel { reason: "expired" })
            .inc();
        let service = ServiceLabel {
            service_id: "s".into(),
        };
        m.backend_duration.get_or_create(&service).observe(0.1);
        m.backend_retries.get_or_create(&service).inc();
        m.breaker_state.get_or_create(&service).set(0);
        let workflow = WorkflowLabel {
            workflow_id: "w".into(),
        };
        m.workflow_started.get_or_create(&workflow).inc();
        m.workflow_completed.get_or_create(&workflow).inc();
        m.workflow_timed_out.get_or_create(&workflow).inc();
        m.workflow_active.get_or_create(&workflow).set(1);
        m.workflow_step_duration
            .get_or_create(&StepLabel {
                workflow_id: "w".into(),
                step: "s".into(),
            })
            .observe(1.0);
        let exported = families(&m.encode());
        let missing: Vec<String> = families(dashboard)
            .into_iter()
            .filter(|m| !m.starts_with("thesa_operator_") && !exported.contains(m))
            .collect();
        assert!(
            missing.is_empty(),
            "the dashboard queries unknown metrics: {missing:?}"
        );
    }
}
