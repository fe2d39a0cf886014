//! The controller: for each ThesaDeployment, *dereference* (read the
//! selected definitions, specs, secrets and what is served now,
//! [`dereference`]) → *validate and build* ([`crate::plan`]) → *apply*
//! (server-side apply, one field manager, then remove children no longer
//! wanted, [`apply`]) → *status* (on the ThesaDeployment and on each
//! selected ThesaDefinition, [`status`]). The process around it — leader
//! election, watches, probes — is [`run`].

mod apply;
mod dereference;
mod rollout;
mod run;
mod status;
mod watches;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::Store;
use kube::{Client, Resource, ResourceExt};
use tracing::{Instrument, info, warn};

use crate::crd::{DefinitionCounts, ThesaDeployment};
use crate::desired::MANAGER;
use crate::gate::Verdict;
use crate::plan::{self, Plan};
use crate::revision::{CachedDefinition, Revisions};
use crate::telemetry::Telemetry;

use apply::apply;
pub(crate) use dereference::dereference;
pub use dereference::{ServedConfigMaps, definition_inputs};
pub use rollout::{ApiMetrics, MetricsSource, PodTarget, ReadRequest};
pub use run::{RunArgs, main};
use status::{definition_status, deployment_status};
pub use status::{deployment_status_of, merged_definition_status, rollout_checksum};
pub use watches::WatchHealth;

/// ThesaDefinitions per page of the watch's initial list: each page is
/// held whole while its definitions are prepared, so pages stay small.
pub const DEFINITIONS_PAGE_SIZE: u32 = 50;
/// How often a ThesaDeployment is looked at again without any event.
const RESYNC: Duration = Duration::from_secs(600);

/// Why a reconcile failed; it is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the Kubernetes API failed.
    #[error("{action}: {source}")]
    Api {
        /// What the controller was doing, naming the object.
        action: String,
        /// The API error.
        source: kube::Error,
    },
}

impl Error {
    pub(crate) fn api(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Self {
        let action = action.into();
        move |source| Self::Api { action, source }
    }
}

/// What every reconcile shares.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// ThesaDefinitions, as the watch sees them.
    pub definitions: Store<CachedDefinition>,
    /// Registered SDK handler names.
    pub handlers: BTreeSet<String>,
    /// Publishes Kubernetes events.
    pub recorder: Recorder,
    /// Consecutive failures per ThesaDeployment, for backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// Metrics and probe state.
    pub telemetry: Arc<Telemetry>,
    /// Definition revisions prepared so far, shared with the watch that
    /// fills `definitions`.
    pub revisions: Arc<Revisions>,
    /// What the definitions ConfigMaps held when last read or applied.
    pub served: ServedConfigMaps,
    /// The last plan of each ThesaDeployment.
    plans: plan::Plans,
    /// ConfigMaps as last applied, by `namespace/name`: their digest and the
    /// resourceVersion the apply returned.
    applied: Mutex<HashMap<String, (u64, String)>>,
    /// Where canary figures come from (the pods' `/metrics` through the
    /// API server, or Prometheus); tests inject their own.
    pub metrics: Arc<dyn MetricsSource>,
    /// The clock of the rollout stage; tests inject their own.
    pub clock: Arc<dyn Fn() -> k8s_openapi::jiff::Timestamp + Send + Sync>,
}

impl Context {
    /// Digest and resourceVersion of ConfigMap `key` as last applied.
    fn applied(&self, key: &str) -> Option<(u64, String)> {
        let applied = self.applied.lock().unwrap_or_else(|e| e.into_inner());
        applied.get(key).cloned()
    }

    fn remember_applied(&self, key: String, digest: u64, version: String) {
        let mut applied = self.applied.lock().unwrap_or_else(|e| e.into_inner());
        applied.insert(key, (digest, version));
    }

    /// A context over `client` and a definitions cache.
    pub fn new(
        client: Client,
        definitions: Store<CachedDefinition>,
        handlers: BTreeSet<String>,
    ) -> Self {
        let reporter = Reporter {
            controller: MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            definitions,
            handlers,
            failures: Mutex::new(HashMap::new()),
            telemetry: Arc::default(),
            revisions: Arc::default(),
            served: ServedConfigMaps::default(),
            plans: plan::Plans::default(),
            applied: Mutex::new(HashMap::new()),
            metrics: rollout::default_source(),
            clock: Arc::new(k8s_openapi::jiff::Timestamp::now),
        }
    }
}

/// Retries with exponential backoff: 5 s, 10 s, … up to 5 minutes.
pub fn error_policy(tdep: Arc<ThesaDeployment>, err: &Error, ctx: Arc<Context>) -> Action {
    let name = plan::full_name(tdep.as_ref());
    let failures = {
        let mut map = ctx.failures.lock().unwrap_or_else(|e| e.into_inner());
        let count = map.entry(name.clone()).or_insert(0);
        *count = count.saturating_add(1);
        *count
    };
    let delay = Duration::from_secs(5u64.saturating_mul(1 << failures.min(6).saturating_sub(1)));
    let delay = delay.min(Duration::from_secs(300));
    warn!(thesadeployment = %name, error = %err, retry_in_s = delay.as_secs(), "reconcile failed");
    Action::requeue(delay)
}

/// Brings one ThesaDeployment's children and statuses up to date.
///
/// # Errors
/// An [`Error`] when an API call fails; the caller retries.
pub async fn reconcile(tdep: Arc<ThesaDeployment>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = plan::full_name(tdep.as_ref());
    if tdep.meta().deletion_timestamp.is_some() {
        // Owner references let the garbage collector remove the children.
        ctx.telemetry.forget(&name);
        ctx.plans.forget(&name);
        return Ok(Action::await_change());
    }
    // Every log line of the reconcile carries the object's name.
    // Traced (with `--otlp-endpoint`) with the API calls as children; a
    // failed reconcile marks its span failed.
    let span = tracing::info_span!(
        "reconcile",
        thesadeployment = %name,
        otel.status_code = tracing::field::Empty,
    );
    let started = std::time::Instant::now();
    let result = reconcile_inner(&tdep, &ctx).instrument(span.clone()).await;
    if result.is_err() {
        span.record("otel.status_code", "ERROR");
    }
    ctx.telemetry
        .reconciled(result.is_ok(), started.elapsed().as_secs_f64());
    if result.is_ok() {
        let mut map = ctx.failures.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&name);
    }
    result
}

async fn reconcile_inner(tdep: &ThesaDeployment, ctx: &Context) -> Result<Action, Error> {
    // Never plan from a half-filled cache: until the first full list of
    // ThesaDefinitions (in pages) is in, every definition not yet listed
    // would look deleted, and the served set would shrink for a moment.
    let listed = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        ctx.definitions.wait_until_ready(),
    )
    .await;
    if !matches!(listed, Ok(Ok(()))) {
        tracing::info!("ThesaDefinitions not listed yet; trying again in 1 s");
        return Ok(Action::requeue(std::time::Duration::from_secs(1)));
    }
    let namespace = tdep.namespace().unwrap_or_default();
    let (snapshot, mut problems) = dereference(tdep, ctx).await?;
    let staged_rollout = crate::rollout::is_canary(tdep)
        || tdep.status.as_ref().is_some_and(|s| s.rollout.is_some());
    // What the stable definitions ConfigMaps serve, for telling which
    // definitions a rolled-back canary changed.
    let previous = if staged_rollout {
        snapshot.previous.clone()
    } else {
        Vec::new()
    };
    let plan = if problems.is_empty() {
        ctx.plans.plan(snapshot)
    } else {
        Arc::new(Plan::Blocked(Vec::new()))
    };
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut counts = DefinitionCounts::default();
    let mut apply_error = None;
    let mut rollout_status = tdep.status.as_ref().and_then(|s| s.rollout.clone());
    let mut requeue = RESYNC;
    match plan.as_ref() {
        Plan::Blocked(more) => {
            problems.extend(more.iter().cloned());
            ctx.telemetry.definitions(&plan::full_name(tdep), 0, 0);
            warn!(problems = ?problems, "ThesaDeployment cannot be rolled out");
        }
        Plan::Ready { outcome, children } => {
            counts.accepted = count(&outcome.verdicts, true);
            counts.rejected = count(&outcome.verdicts, false);
            ctx.telemetry.definitions(
                &plan::full_name(tdep),
                i64::from(counts.accepted),
                i64::from(counts.rejected),
            );
            counts.checksum = Some(format!("sha256:{}", outcome.set_checksum));
            let mut failed = std::collections::BTreeMap::new();
            if !tdep.spec.paused {
                if staged_rollout {
                    match rollout::stage(ctx, tdep, children, outcome, &previous).await {
                        Ok(staged) => {
                            rollout_status = staged.rollout;
                            if let Some(sooner) = staged.requeue {
                                requeue = requeue.min(sooner);
                            }
                            failed = staged.failed;
                        }
                        Err(err) => apply_error = Some(err.to_string()),
                    }
                } else if let Err(err) = apply(ctx, &namespace, children).await {
                    apply_error = Some(err.to_string());
                }
            }
            for verdict in &outcome.verdicts {
                let rolled_back = verdict.rollout_failed || failed.contains_key(&verdict.name);
                let rolled_back = rolled_back.then(|| status::RolledBack {
                    rollout: rollout_status.as_ref(),
                    kept_previous: verdict.kept_previous
                        || previous.iter().any(|f| f.owner == verdict.name),
                });
                definition_status(ctx, tdep, verdict, rolled_back).await?;
            }
            info!(
                accepted = counts.accepted,
                rejected = counts.rejected,
                checksum = %outcome.set_checksum,
                paused = tdep.spec.paused,
                "reconciled"
            );
        }
    }
    let deployment = deployments
        .get_opt(&tdep.name_any())
        .await
        .map_err(Error::api(format!(
            "reading Deployment {namespace}/{}",
            tdep.name_any()
        )))?;
    deployment_status(
        ctx,
        tdep,
        deployment.as_ref(),
        &problems,
        apply_error.as_deref(),
        counts,
        rollout_status,
    )
    .await?;
    match apply_error {
        Some(message) => Err(Error::Api {
            action: "applying the children".into(),
            source: kube::Error::Service(message.into()),
        }),
        None => Ok(Action::requeue(requeue)),
    }
}

fn count(verdicts: &[Verdict], accepted: bool) -> i32 {
    let n = verdicts.iter().filter(|v| v.accepted == accepted).count();
    i32::try_from(n).unwrap_or(i32::MAX)
}
