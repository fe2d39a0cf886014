//! The operator's metrics and probes, served on their own port
//! (`--metrics-addr`, default `0.0.0.0:8081`):
//!
//! - `GET /metrics` — OpenMetrics text:
//!   `thesa_operator_reconcile_total{kind,result}`,
//!   `thesa_operator_reconcile_duration_seconds{kind}`,
//!   `thesa_operator_definitions{state="accepted|rejected"}`,
//!   `thesa_operator_leader` (1 while this replica leads);
//! - `GET /healthz` — 200 while the process runs and, on the leader, its
//!   watches work; 503 naming the watch when one has failed without
//!   recovering for longer than `--watch-stall-timeout` (the kubelet then
//!   restarts the process);
//! - `GET /readyz` — 200 once this replica is either a standby or a leader
//!   whose caches are synced; 503 before.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::controller::WatchHealth;

/// Labels of a reconcile.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ReconcileLabels {
    /// The reconciled kind (`ThesaDeployment`).
    pub kind: &'static str,
    /// `success` or `error`.
    pub result: &'static str,
}

/// The kind label alone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct KindLabel {
    /// The reconciled kind.
    pub kind: &'static str,
}

/// `accepted` or `rejected`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct StateLabel {
    /// The definitions' state.
    pub state: &'static str,
}

/// What happened to a canary rollout.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RolloutLabels {
    /// `started`, `promoted` or `rolled_back`.
    pub event: &'static str,
}

/// One ThesaDeployment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct DeploymentLabel {
    /// `namespace/name`.
    pub thesadeployment: String,
}

/// Every metric and probe state of the operator.
#[derive(Debug)]
pub struct Telemetry {
    registry: Registry,
    reconciles: Family<ReconcileLabels, Counter>,
    durations: Family<KindLabel, Histogram>,
    definitions: Family<StateLabel, Gauge>,
    leader: Gauge,
    rollouts: Family<RolloutLabels, Counter>,
    rollout_step: Family<DeploymentLabel, Gauge>,
    /// Accepted and rejected definitions per ThesaDeployment, summed into
    /// the gauge.
    counts: Mutex<HashMap<String, (i64, i64)>>,
    /// Whether this replica leads.
    leading: AtomicBool,
    /// Whether the leader's caches are synced.
    synced: AtomicBool,
    /// How the leader's watches are doing.
    pub watches: Arc<WatchHealth>,
    /// How long a watch may fail without recovering before `/healthz`
    /// fails.
    stall_timeout: Duration,
}

impl Default for Telemetry {
    fn default() -> Self {
        let mut registry = Registry::default();
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        registry.register(
            "thesa_operator_reconcile",
            "Reconciles by kind and result",
            reconciles.clone(),
        );
        let durations = Family::<KindLabel, Histogram>::new_with_constructor(
            (|| {
                Histogram::new([
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ])
            }) as fn() -> Histogram,
        );
        registry.register(
            "thesa_operator_reconcile_duration_seconds",
            "Reconcile duration by kind",
            durations.clone(),
        );
        let definitions = Family::<StateLabel, Gauge>::default();
        registry.register(
            "thesa_operator_definitions",
            "Selected ThesaDefinitions by state, over every ThesaDeployment",
            definitions.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "thesa_operator_leader",
            "1 while this replica holds the leader lease",
            leader.clone(),
        );
        let rollouts = Family::<RolloutLabels, Counter>::default();
        registry.register(
            "thesa_operator_rollouts",
            "Canary rollouts started, promoted and rolled back",
            rollouts.clone(),
        );
        let rollout_step = Family::<DeploymentLabel, Gauge>::default();
        registry.register(
            "thesa_operator_rollout_step",
            "The running canary's step per ThesaDeployment (0: no canary runs)",
            rollout_step.clone(),
        );
        Self {
            registry,
            rollouts,
            rollout_step,
            reconciles,
            durations,
            definitions,
            leader,
            counts: Mutex::new(HashMap::new()),
            leading: AtomicBool::new(false),
            synced: AtomicBool::new(false),
            watches: Arc::default(),
            stall_timeout: Duration::from_secs(180),
        }
    }
}

/// The reconciled kind.
const KIND: &str = "ThesaDeployment";

impl Telemetry {
    /// Counts a canary rollout `event` (`started`, `promoted`,
    /// `rolled_back`).
    pub fn rollout(&self, event: &'static str) {
        self.rollouts.get_or_create(&RolloutLabels { event }).inc();
    }

    /// The running canary's step of ThesaDeployment `deployment` (0: none).
    pub fn rollout_step(&self, deployment: &str, step: i64) {
        self.rollout_step
            .get_or_create(&DeploymentLabel {
                thesadeployment: deployment.to_string(),
            })
            .set(step);
    }

    /// With `/healthz` failing after a watch has failed for `timeout`
    /// without recovering (default 3 minutes).
    #[must_use]
    pub fn with_stall_timeout(mut self, timeout: Duration) -> Self {
        self.stall_timeout = timeout;
        self
    }

    /// Counts one reconcile and its duration.
    pub fn reconciled(&self, ok: bool, seconds: f64) {
        let result = if ok { "success" } else { "error" };
        self.reconciles
            .get_or_create(&ReconcileLabels { kind: KIND, result })
            .inc();
        self.durations
            .get_or_create(&KindLabel { kind: KIND })
            .observe(seconds);
    }

    /// Records the accepted and rejected definitions of one ThesaDeployment
    /// (`namespace/name`).
    pub fn definitions(&self, deployment: &str, accepted: i64, rejected: i64) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.insert(deployment.to_string(), (accepted, rejected));
        let (a, r) = counts
            .values()
            .fold((0, 0), |(a, r), (x, y)| (a + x, r + y));
        self.definitions
            .get_or_create(&StateLabel { state: "accepted" })
            .set(a);
        self.definitions
            .get_or_create(&StateLabel { state: "rejected" })
            .set(r);
    }

    /// Forgets a ThesaDeployment that is gone.
    pub fn forget(&self, deployment: &str) {
        self.definitions(deployment, 0, 0);
        self.rollout_step.remove(&DeploymentLabel {
            thesadeployment: deployment.to_string(),
        });
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.remove(deployment);
    }

    /// Sets whether this replica leads.
    pub fn set_leading(&self, leading: bool) {
        self.leading.store(leading, Ordering::Relaxed);
        self.leader.set(i64::from(leading));
        if !leading {
            self.synced.store(false, Ordering::Relaxed);
        }
    }

    /// Marks the leader's caches synced.
    pub fn set_synced(&self) {
        self.synced.store(true, Ordering::Relaxed);
    }

    /// Ready: a standby, or a leader with synced caches.
    pub fn ready(&self) -> bool {
        !self.leading.load(Ordering::Relaxed) || self.synced.load(Ordering::Relaxed)
    }

    /// Alive: not a leader whose watches have stalled. The problem
    /// otherwise, naming each stalled watch.
    pub fn alive(&self) -> Result<(), String> {
        if !self.leading.load(Ordering::Relaxed) {
            return Ok(());
        }
        let stalled = self.watches.stalled(self.stall_timeout, Instant::now());
        if stalled.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = stalled
            .iter()
            .map(|(name, failing)| format!("{name} for {} s", failing.as_secs()))
            .collect();
        Err(format!(
            "watches failing without recovery: {}",
            names.join(", ")
        ))
    }

    /// The exposition text.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// The probe and metrics router.
pub fn router(telemetry: Arc<Telemetry>) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|State(t): State<Arc<Telemetry>>| async move {
                match t.alive() {
                    Ok(()) => (StatusCode::OK, "ok".to_string()),
                    Err(problem) => (StatusCode::SERVICE_UNAVAILABLE, problem),
                }
            }),
        )
        .route(
            "/readyz",
            get(|State(t): State<Arc<Telemetry>>| async move {
                if t.ready() {
                    (StatusCode::OK, "ready")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "caches not synced")
                }
            }),
        )
        .route(
            "/metrics",
            get(|State(t): State<Arc<Telemetry>>| async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    t.encode(),
                )
                    .into_response()
            }),
        )
        .with_state(telemetry)
}
