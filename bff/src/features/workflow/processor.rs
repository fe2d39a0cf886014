//! The timeout processor: runs on every replica, every
//! `workflow.timeout_check_interval`, claims due instances (each by one
//! replica only: `FOR UPDATE SKIP LOCKED`), fires their timeouts once, and
//! runs the automatic steps a timeout leads to. It also refreshes the
//! active-instances gauge.

use std::sync::Arc;

use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::run::{self, Actor};
use super::{HistoryEntry, Instance, Status, end, fire_timeout};
use crate::backends::invoker::CallContext;
use crate::metrics::WorkflowLabel;
use crate::state::AppState;

/// Instances claimed per transaction.
const BATCH: i64 = 100;

/// Starts the processor; it stops when `shutdown` turns true.
pub fn spawn(state: Arc<AppState>, mut shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
    let interval = state.config.workflow.timeout_check_interval.get();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = tokio::time::sleep(interval) => {}
            }
            tick(&state).await;
        }
    })
}

/// One pass: fires every timeout due now; returns how many fired.
pub async fn tick(state: &AppState) -> usize {
    let registry = state.registry.load_full();
    let now = OffsetDateTime::now_utc();
    let mut fired = 0;
    loop {
        let claimed = state
            .workflows
            .claim_due(now, BATCH, |instance| {
                let change = timeout(&registry, instance, now);
                if let Some((after, _)) = &change {
                    run::observe(state, instance, after, now);
                    let label = WorkflowLabel {
                        workflow_id: instance.workflow_id.clone(),
                    };
                    state.metrics.workflow_timed_out.get_or_create(&label).inc();
                }
                change
            })
            .await;
        let changed = match claimed {
            Ok(changed) => changed,
            Err(err) => {
                tracing::warn!(error = %err, "workflow timeout processor: store failed");
                break;
            }
        };
        fired += changed.len();
        let full_batch = changed.len() as i64 == BATCH;
        for instance in &changed {
            tracing::info!(
                instance = %instance.id,
                workflow = instance.workflow_id,
                step = instance.step,
                status = instance.status.as_str(),
                "workflow timeout fired"
            );
        }
        for instance in changed {
            if instance.status != Status::Active {
                continue;
            }
            let Some(workflow) = registry.workflow(&instance.workflow_id) else {
                continue;
            };
            let actor = Actor {
                caller: None,
                context: CallContext {
                    authorization: None,
                    correlation_id: uuid::Uuid::new_v4().to_string(),
                    tenant: Some(instance.tenant.clone()).filter(|t| !t.is_empty()),
                    partition: Some(instance.partition.clone()).filter(|p| !p.is_empty()),
                    subject: None,
                },
            };
            run::advance(state, workflow, instance, &actor).await;
        }
        if !full_batch {
            break;
        }
    }
    refresh_gauge(state).await;
    fired
}

/// The timeout of `instance`, or its end when its workflow is no longer
/// defined (it would otherwise stay due forever).
fn timeout(
    registry: &crate::registry::Registry,
    instance: &Instance,
    now: OffsetDateTime,
) -> Option<(Instance, HistoryEntry)> {
    match registry.workflow(&instance.workflow_id) {
        Some(workflow) => fire_timeout(workflow, instance, now),
        None => Some(end(
            instance,
            Status::Failed,
            "workflow_not_defined",
            super::SYSTEM,
            now,
        )),
    }
}

async fn refresh_gauge(state: &AppState) {
    let Ok(counts) = state.workflows.active_counts().await else {
        return;
    };
    state.metrics.workflow_active.clear();
    for (workflow_id, count) in counts {
        state
            .metrics
            .workflow_active
            .get_or_create(&WorkflowLabel { workflow_id })
            .set(count);
    }
}
