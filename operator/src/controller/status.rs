//! *Status*: what the gate concluded, on each ThesaDefinition (with a
//! Warning event when a generation is rejected), and the rollout's state
//! on the ThesaDeployment.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::json;
use thesa_core::finding::Severity;
use tracing::warn;

use super::{Context, Error};
use crate::conditions::{self, reason};
use crate::crd::{
    DefinitionCounts, RolloutPhase, RolloutStatus, StatusFinding, ThesaDefinition,
    ThesaDefinitionStatus, ThesaDeployment, ThesaDeploymentStatus,
};
use crate::desired::{self, CHECKSUM_ANNOTATION};
use crate::gate::Verdict;
use crate::plan;
use crate::revision::CachedDefinition;

/// Most findings kept in a ThesaDefinition's status.
const MAX_STATUS_FINDINGS: usize = 50;

/// Writes the verdict of `tdep` into the definition's status, keeping what
/// other ThesaDeployments concluded about the same generation.
pub(super) async fn definition_status(
    ctx: &Context,
    tdep: &ThesaDeployment,
    verdict: &Verdict,
    rolled_back: Option<RolledBack<'_>>,
) -> Result<(), Error> {
    let Some((namespace, name)) = verdict.name.split_once('/') else {
        return Ok(());
    };
    let key = ObjectRef::<CachedDefinition>::new(name).within(namespace);
    let Some(tdef) = ctx.definitions.get(&key) else {
        return Ok(());
    };
    let deployment = plan::full_name(tdep);
    let old = tdef.status.clone().unwrap_or_default();
    let mut status = merged_definition_status(&old, &deployment, verdict);
    if let Some(rolled_back) = &rolled_back {
        rollout_failed_status(&mut status, &deployment, verdict, rolled_back);
    }
    if status == old {
        return Ok(());
    }
    let api: Api<ThesaDefinition> = Api::namespaced(ctx.client.clone(), namespace);
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await
    .map_err(Error::api(format!(
        "updating the status of ThesaDefinition {}",
        verdict.name
    )))?;
    let was_rejected = rolled_back.is_some()
        || old.observed_generation == verdict.generation
            && old
                .conditions
                .iter()
                .any(|c| c.type_ == conditions::ACCEPTED && c.status == "False");
    if !verdict.accepted && !was_rejected {
        let errors = verdict
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Error);
        let first = errors
            .clone()
            .next()
            .map(ToString::to_string)
            .unwrap_or_default();
        let note = format!(
            "generation {} rejected by ThesaDeployment {deployment} ({} errors); first: {first}",
            verdict.generation.unwrap_or_default(),
            errors.count()
        );
        let event = Event {
            type_: EventType::Warning,
            reason: "DefinitionRejected".into(),
            note: Some(truncate(note, 1000)),
            action: "Validate".into(),
            secondary: None,
        };
        if let Err(err) = ctx.recorder.publish(&event, &tdef.object_ref(&())).await {
            warn!(error = %err, thesadefinition = %verdict.name, "could not record an event");
        }
    }
    Ok(())
}

/// A definition generation whose canary was rolled back.
pub(super) struct RolledBack<'a> {
    /// The rollout status, with the figures in its message.
    pub rollout: Option<&'a RolloutStatus>,
    /// Whether the stable Deployment serves an earlier revision of it.
    pub kept_previous: bool,
}

/// `Accepted=False`, reason `RolloutFailed`, with the canary's figures:
/// the generation passed validation but its canary was rolled back. The
/// accepted generation, set when the canary started, goes back to unknown
/// when it named the rolled-back generation.
fn rollout_failed_status(
    status: &mut ThesaDefinitionStatus,
    deployment: &str,
    verdict: &Verdict,
    rolled_back: &RolledBack<'_>,
) {
    let figures = rolled_back
        .rollout
        .and_then(|r| r.message.clone())
        .unwrap_or_else(|| "the canary was rolled back".into());
    if status.accepted_generation == verdict.generation {
        status.accepted_generation = None;
        status.accepted_checksum = None;
    }
    let served = match status.accepted_generation {
        Some(generation) if rolled_back.kept_previous => {
            format!("generation {generation} keeps being served")
        }
        _ if rolled_back.kept_previous => {
            "the revision served before the canary keeps being served".into()
        }
        _ => "its domain is left out".into(),
    };
    conditions::set(
        &mut status.conditions,
        conditions::ACCEPTED,
        false,
        reason::ROLLOUT_FAILED,
        truncate(
            format!(
                "generation {} was rolled back by the canary of ThesaDeployment {deployment}: {figures}; {served} until a new generation arrives",
                verdict.generation.unwrap_or_default()
            ),
            1000,
        ),
        verdict.generation,
    );
}

/// The status a ThesaDefinition gets from one deployment's verdict.
pub fn merged_definition_status(
    old: &ThesaDefinitionStatus,
    deployment: &str,
    verdict: &Verdict,
) -> ThesaDefinitionStatus {
    let same_generation = old.observed_generation == verdict.generation;
    let mut findings: Vec<StatusFinding> = old
        .findings
        .iter()
        .filter(|f| same_generation && f.deployment.as_deref() != Some(deployment))
        .cloned()
        .collect();
    findings.extend(verdict.findings.iter().map(|f| StatusFinding {
        code: f.code.as_str().to_string(),
        severity: f.severity.to_string(),
        path: f.path.clone(),
        message: f.message.clone(),
        deployment: Some(deployment.to_string()),
    }));
    findings.truncate(MAX_STATUS_FINDINGS);
    let errors: Vec<StatusFinding> = findings
        .iter()
        .filter(|f| f.severity == "error")
        .cloned()
        .collect();
    let accepted = verdict.accepted
        && errors
            .iter()
            .all(|f| f.deployment.as_deref() == Some(deployment));
    let mut status = ThesaDefinitionStatus {
        observed_generation: verdict.generation,
        checksum: verdict.checksum.map(|c| format!("sha256:{c}")),
        conditions: old.conditions.clone(),
        findings,
        accepted_generation: old.accepted_generation,
        accepted_checksum: old.accepted_checksum.clone(),
    };
    if accepted {
        status.accepted_generation = verdict.generation;
        status.accepted_checksum = status.checksum.clone();
        conditions::set(
            &mut status.conditions,
            conditions::ACCEPTED,
            true,
            reason::VALID,
            format!("passed validation against the specs of ThesaDeployment {deployment}"),
            verdict.generation,
        );
    } else {
        let served = match (verdict.kept_previous, status.accepted_generation) {
            (true, Some(generation)) => format!("generation {generation} keeps being served"),
            (true, None) => "the revision served before keeps being served".to_string(),
            (false, _) => "its domain is left out until a valid revision is applied".to_string(),
        };
        let reason = if verdict
            .findings
            .iter()
            .any(|f| f.severity == Severity::Error)
        {
            reason::INVALID
        } else {
            reason::DEPENDENCY_REJECTED
        };
        let first = errors
            .first()
            .map(|f| format!("; first: {}[{}] {}", f.path, f.code, f.message))
            .unwrap_or_default();
        conditions::set(
            &mut status.conditions,
            conditions::ACCEPTED,
            false,
            reason,
            truncate(
                format!("{} errors{first}; {served}", errors.len().max(1)),
                1000,
            ),
            verdict.generation,
        );
    }
    crate::kstatus::summarize(&mut status.conditions, verdict.generation);
    status
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

pub(super) async fn deployment_status(
    ctx: &Context,
    tdep: &ThesaDeployment,
    deployment: Option<&Deployment>,
    problems: &[String],
    apply_error: Option<&str>,
    counts: DefinitionCounts,
    rollout: Option<RolloutStatus>,
) -> Result<(), Error> {
    let old = tdep.status.clone().unwrap_or_default();
    let mut status = deployment_status_of(tdep, &old, deployment, problems, apply_error, counts);
    match rollout {
        Some(rollout) => with_rollout(&mut status, tdep, rollout),
        None => status.rollout = None,
    }
    // `conditions::set` keeps transition times of unchanged conditions, so
    // equal means nothing to write.
    if status == old {
        return Ok(());
    }
    let name = tdep.name_any();
    let api: Api<ThesaDeployment> =
        Api::namespaced(ctx.client.clone(), &tdep.namespace().unwrap_or_default());
    // A merge patch keeps what it does not name: the rollout's fields that
    // went away are named with null.
    let mut patch = json!({ "status": status });
    let old_rollout = serde_json::to_value(&old.rollout).unwrap_or_default();
    let new_rollout = serde_json::to_value(&status.rollout).unwrap_or_default();
    patch["status"]["rollout"] = merge_patch(&old_rollout, &new_rollout);
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map_err(Error::api(format!(
            "updating the status of ThesaDeployment {name}"
        )))?;
    Ok(())
}

/// The ThesaDeployment's status from what happened and what its
/// Deployment reports.
pub fn deployment_status_of(
    tdep: &ThesaDeployment,
    old: &ThesaDeploymentStatus,
    deployment: Option<&Deployment>,
    problems: &[String],
    apply_error: Option<&str>,
    counts: DefinitionCounts,
) -> ThesaDeploymentStatus {
    let generation = tdep.meta().generation;
    let empty = DeploymentStatus::default();
    let live = deployment.and_then(|d| d.status.as_ref()).unwrap_or(&empty);
    let wanted = deployment
        .and_then(|d| d.spec.as_ref()?.replicas)
        .unwrap_or(0);
    let current = deployment.is_some_and(|d| live.observed_generation >= d.meta().generation);
    let replicas = live.replicas.unwrap_or(0);
    let ready = live.ready_replicas.unwrap_or(0);
    let updated = live.updated_replicas.unwrap_or(0);
    let rolled_out = current && updated >= wanted && replicas == updated;
    let failed_condition = live.conditions.iter().flatten().find(|c| {
        (c.type_ == "ReplicaFailure" && c.status == "True")
            || (c.type_ == "Progressing" && c.status == "False")
    });

    let mut conditions_list = old.conditions.clone();
    let set = |list: &mut Vec<_>, type_: &str, ok: bool, reason: &str, message: String| {
        conditions::set(list, type_, ok, reason, message, generation);
    };
    let blocked = !problems.is_empty();
    if !blocked {
        let (ok, why, message) = if counts.rejected == 0 {
            (
                true,
                reason::ALL_ACCEPTED,
                format!("{} definitions accepted", counts.accepted),
            )
        } else {
            (
                false,
                reason::SOME_REJECTED,
                format!(
                    "{} of {} selected definitions rejected (see `kubectl get tdef`); the last accepted revisions keep being served",
                    counts.rejected,
                    counts.accepted + counts.rejected
                ),
            )
        };
        set(
            &mut conditions_list,
            conditions::DEFINITIONS_VALID,
            ok,
            why,
            message,
        );
    }
    let degraded = if blocked {
        Some((reason::INVALID_SPEC, truncate(problems.join("; "), 1000)))
    } else if let Some(error) = apply_error {
        Some((reason::APPLY_FAILED, truncate(error.to_string(), 1000)))
    } else {
        failed_condition.map(|c| {
            (
                reason::DEPLOYMENT_FAILED,
                format!(
                    "{}: {}",
                    c.reason.clone().unwrap_or_default(),
                    c.message.clone().unwrap_or_default()
                ),
            )
        })
    };
    match &degraded {
        Some((why, message)) => set(
            &mut conditions_list,
            conditions::DEGRADED,
            true,
            why,
            message.clone(),
        ),
        None => set(
            &mut conditions_list,
            conditions::DEGRADED,
            false,
            reason::AS_EXPECTED,
            String::new(),
        ),
    }
    let (progressing, why, message) = if tdep.spec.paused {
        (
            false,
            reason::PAUSED,
            "spec.paused is set: changes are not rolled out".to_string(),
        )
    } else if rolled_out {
        (
            false,
            reason::COMPLETE,
            format!("{updated} pods run the current template"),
        )
    } else {
        (
            true,
            reason::ROLLING_OUT,
            format!("{updated} of {wanted} pods updated"),
        )
    };
    set(
        &mut conditions_list,
        conditions::PROGRESSING,
        progressing,
        why,
        message,
    );
    let is_ready = degraded.is_none() && rolled_out && wanted > 0 && ready >= wanted;
    let (why, message) = if is_ready {
        (reason::PODS_READY, format!("{ready}/{wanted} pods ready"))
    } else {
        (
            reason::PODS_NOT_READY,
            format!("{ready}/{wanted} pods ready"),
        )
    };
    set(
        &mut conditions_list,
        conditions::READY,
        is_ready,
        why,
        message,
    );
    crate::kstatus::summarize(&mut conditions_list, generation);

    let selector = desired::selector_labels(&tdep.name_any())
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    ThesaDeploymentStatus {
        observed_generation: generation,
        conditions: conditions_list,
        replicas,
        ready_replicas: ready,
        updated_replicas: updated,
        selector: Some(selector),
        definitions: if blocked {
            old.definitions.clone()
        } else {
            counts
        },
        image: Some(tdep.spec.image.clone()),
        rollout: old.rollout.clone(),
    }
}

/// The JSON merge patch from `old` to `new`: `new`, with null for every
/// key of `old` that `new` lacks, object by object.
pub fn merge_patch(old: &serde_json::Value, new: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match (old, new) {
        (Value::Object(old), Value::Object(new)) => {
            let mut patch = serde_json::Map::new();
            for (key, value) in new {
                let before = old.get(key).unwrap_or(&Value::Null);
                patch.insert(key.clone(), merge_patch(before, value));
            }
            for key in old.keys().filter(|k| !new.contains_key(*k)) {
                patch.insert(key.clone(), Value::Null);
            }
            Value::Object(patch)
        }
        (_, new) => new.clone(),
    }
}

/// The rollout's state in `status`: `status.rollout`, the `Rollout`
/// condition, and while a canary runs `Progressing=True` and `Ready=False`
/// (GitOps tools wait for Ready).
pub fn with_rollout(
    status: &mut ThesaDeploymentStatus,
    tdep: &ThesaDeployment,
    rollout: RolloutStatus,
) {
    let generation = tdep.meta().generation;
    let message = rollout.message.clone().unwrap_or_default();
    let (ok, why) = match rollout.phase {
        RolloutPhase::Progressing => (true, reason::CANARY_PROGRESSING),
        RolloutPhase::Paused => (true, reason::CANARY_PAUSED),
        RolloutPhase::Promoted => (true, reason::PROMOTED),
        RolloutPhase::RolledBack => (false, reason::ROLLED_BACK),
        RolloutPhase::Aborted => (false, reason::ABORTED),
    };
    let list = &mut status.conditions;
    conditions::set(
        list,
        conditions::ROLLOUT,
        ok,
        why,
        message.clone(),
        generation,
    );
    if rollout.phase.running() {
        let progress = format!(
            "canary step {} of {} at {}% ({} canary, {} stable pods): {message}",
            rollout.step,
            rollout.steps,
            rollout.weight,
            rollout.canary_replicas,
            rollout.stable_replicas
        );
        conditions::set(
            list,
            conditions::PROGRESSING,
            true,
            why,
            progress.clone(),
            generation,
        );
        conditions::set(list, conditions::READY, false, why, progress, generation);
    }
    status.rollout = Some(rollout);
}

/// The checksum annotation of a Deployment's pod template, if any.
pub fn rollout_checksum(deployment: &Deployment) -> Option<&str> {
    deployment
        .spec
        .as_ref()?
        .template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get(CHECKSUM_ANNOTATION)
        .map(String::as_str)
}
