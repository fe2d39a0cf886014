//! Status condition types and reasons, in one place, and the rule for
//! updating a condition list the Kubernetes way (`lastTransitionTime`
//! changes only when `status` does, so an unchanged list compares equal).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// ThesaDefinition: the current generation passed validation and is served.
pub const ACCEPTED: &str = "Accepted";
/// ThesaDeployment: the Deployment is rolled out and its pods are ready.
pub const READY: &str = "Ready";
/// ThesaDeployment: a rollout is under way.
pub const PROGRESSING: &str = "Progressing";
/// ThesaDeployment: something keeps the desired state from being reached.
pub const DEGRADED: &str = "Degraded";
/// ThesaDeployment: every selected definition passed validation.
pub const DEFINITIONS_VALID: &str = "DefinitionsValid";

/// ThesaDeployment: how the last canary rollout went (True while it runs
/// and after promotion, False after a rollback).
pub const ROLLOUT: &str = "Rollout";

/// Reasons.
pub mod reason {
    /// The definition passed validation.
    pub const VALID: &str = "Valid";
    /// The definition has errors.
    pub const INVALID: &str = "ValidationFailed";
    /// A definition it depends on was refused.
    pub const DEPENDENCY_REJECTED: &str = "DependencyRejected";
    /// All selected definitions are accepted.
    pub const ALL_ACCEPTED: &str = "AllAccepted";
    /// Some selected definitions are rejected.
    pub const SOME_REJECTED: &str = "DefinitionsRejected";
    /// The ThesaDeployment's own fields are wrong (config, specs, secrets).
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// The API refused or failed an apply.
    pub const APPLY_FAILED: &str = "ApplyFailed";
    /// Rolling out a new pod template.
    pub const ROLLING_OUT: &str = "RollingOut";
    /// Rollout complete.
    pub const COMPLETE: &str = "RolloutComplete";
    /// `spec.paused` is set.
    pub const PAUSED: &str = "Paused";
    /// Not every pod is ready.
    pub const PODS_NOT_READY: &str = "PodsNotReady";
    /// Every pod is ready and current.
    pub const PODS_READY: &str = "PodsReady";
    /// Nothing is wrong.
    pub const AS_EXPECTED: &str = "AsExpected";
    /// The Deployment reports a failure (quota, image pull, deadline).
    pub const DEPLOYMENT_FAILED: &str = "DeploymentFailed";
    /// The definition passed validation, but its canary was rolled back.
    pub const ROLLOUT_FAILED: &str = "RolloutFailed";
    /// A canary runs and is measured.
    pub const CANARY_PROGRESSING: &str = "CanaryProgressing";
    /// A canary is held at its step by `spec.rollout.paused`.
    pub const CANARY_PAUSED: &str = "CanaryPaused";
    /// The canary was promoted.
    pub const PROMOTED: &str = "Promoted";
    /// The canary was rolled back after bad intervals.
    pub const ROLLED_BACK: &str = "RolledBack";
    /// The canary was rolled back by the abort annotation.
    pub const ABORTED: &str = "Aborted";
}

/// Sets condition `type_` in `conditions`, keeping its transition time
/// when the status does not change.
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
) {
    let status = if status { "True" } else { "False" }.to_string();
    let message = message.into();
    let existing = conditions.iter().position(|c| c.type_ == type_);
    let last_transition_time = match existing.map(|i| &conditions[i]) {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => Time(Timestamp::now()),
    };
    let condition = Condition {
        type_: type_.to_string(),
        status,
        reason: reason.to_string(),
        message,
        observed_generation: generation,
        last_transition_time,
    };
    match existing {
        Some(i) => conditions[i] = condition,
        None => conditions.push(condition),
    }
}

/// Whether condition `type_` is `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_changes_only_with_status() {
        let mut conditions = Vec::new();
        set(
            &mut conditions,
            READY,
            false,
            reason::PODS_NOT_READY,
            "0/3",
            Some(1),
        );
        let first = conditions[0].last_transition_time.clone();
        conditions[0].last_transition_time = Time(Timestamp::UNIX_EPOCH);
        set(
            &mut conditions,
            READY,
            false,
            reason::PODS_NOT_READY,
            "1/3",
            Some(2),
        );
        assert_eq!(conditions.len(), 1);
        assert_eq!(
            conditions[0].last_transition_time,
            Time(Timestamp::UNIX_EPOCH)
        );
        assert_eq!(conditions[0].message, "1/3");
        assert_eq!(conditions[0].observed_generation, Some(2));
        set(
            &mut conditions,
            READY,
            true,
            reason::PODS_READY,
            "3/3",
            Some(2),
        );
        assert_ne!(
            conditions[0].last_transition_time,
            Time(Timestamp::UNIX_EPOCH)
        );
        assert!(conditions[0].last_transition_time >= first);
        assert!(is_true(&conditions, READY));
    }
}
