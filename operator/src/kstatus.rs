//! The two conditions kstatus reads (`Reconciling`, `Stalled`), derived
//! from our own conditions so that Flux, `kubectl wait`-style tools and
//! kpt see the same state Argo CD's health checks report.
//!
//! kstatus judges a custom resource by `status.observedGeneration`
//! (behind `metadata.generation` → InProgress), then `Reconciling=True`
//! (InProgress) and `Stalled=True` (Failed); anything else is Current. Our
//! own conditions say more (`Ready`, `Progressing`, `Degraded`,
//! `Accepted`), so these two are a summary written next to them:
//!
//! - `Reconciling=True` when `Progressing=True` (a rollout is under way)
//!   and the resource is not stalled (kstatus reads `Reconciling` first, so
//!   a rollout past its deadline would otherwise wait forever);
//! - `Stalled=True` when `Degraded=True`, `Accepted=False` or any
//!   condition has reason `RolloutFailed` (a rolled-back canary): nothing
//!   changes until the resource is edited.
//!
//! Both are always present (True or False), so a reader can tell "not
//! reconciling" from "never judged".

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use crate::conditions;

/// kstatus: the controller is still working towards the spec.
pub const RECONCILING: &str = "Reconciling";
/// kstatus: the controller cannot make progress without a change.
pub const STALLED: &str = "Stalled";
/// Reason of a derived condition that is False.
pub const REASON_NONE: &str = "AsExpected";
/// A canary rollout that failed and was rolled back.
pub const REASON_ROLLOUT_FAILED: &str = "RolloutFailed";

/// Sets `Reconciling` and `Stalled` from the other conditions of `list`.
pub fn summarize(list: &mut Vec<Condition>, generation: Option<i64>) {
    let find = |type_: &str, status: &str| {
        list.iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .map(|c| (c.reason.clone(), c.message.clone()))
    };
    let stalled = find(conditions::DEGRADED, "True")
        .or_else(|| find(conditions::ACCEPTED, "False"))
        .or_else(|| {
            list.iter()
                .find(|c| c.reason == REASON_ROLLOUT_FAILED)
                .map(|c| (c.reason.clone(), c.message.clone()))
        });
    let reconciling = match stalled {
        Some(_) => None,
        None => find(conditions::PROGRESSING, "True"),
    };
    for (type_, found) in [(RECONCILING, reconciling), (STALLED, stalled)] {
        match found {
            Some((reason, message)) => {
                conditions::set(list, type_, true, &reason, message, generation)
            }
            None => conditions::set(list, type_, false, REASON_NONE, "", generation),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(type_: &str, status: bool, reason: &str) -> Vec<Condition> {
        let mut list = Vec::new();
        conditions::set(&mut list, type_, status, reason, "m", Some(3));
        list
    }

    fn state(list: &[Condition], type_: &str) -> (String, String) {
        let c = list.iter().find(|c| c.type_ == type_).expect(type_);
        (c.status.clone(), c.reason.clone())
    }

    #[test]
    fn progressing_reconciles_and_degraded_stalls() {
        let mut list = with(conditions::PROGRESSING, true, "RollingOut");
        summarize(&mut list, Some(3));
        assert_eq!(
            state(&list, RECONCILING),
            ("True".into(), "RollingOut".into())
        );
        assert_eq!(state(&list, STALLED), ("False".into(), REASON_NONE.into()));

        let mut list = with(conditions::DEGRADED, true, "InvalidSpec");
        summarize(&mut list, Some(3));
        assert_eq!(state(&list, STALLED), ("True".into(), "InvalidSpec".into()));
        assert_eq!(state(&list, RECONCILING).0, "False");

        // A rollout past its deadline: stalled, not reconciling.
        let mut list = with(conditions::PROGRESSING, true, "RollingOut");
        conditions::set(
            &mut list,
            conditions::DEGRADED,
            true,
            "DeploymentFailed",
            "",
            Some(3),
        );
        summarize(&mut list, Some(3));
        assert_eq!(state(&list, RECONCILING).0, "False");
        assert_eq!(state(&list, STALLED).0, "True");
    }

    #[test]
    fn rejected_definition_and_failed_rollout_stall() {
        let mut list = with(conditions::ACCEPTED, false, "ValidationFailed");
        summarize(&mut list, Some(3));
        assert_eq!(
            state(&list, STALLED),
            ("True".into(), "ValidationFailed".into())
        );

        let mut list = with("Rollout", false, REASON_ROLLOUT_FAILED);
        summarize(&mut list, Some(3));
        assert_eq!(state(&list, STALLED).0, "True");
        assert!(list.iter().all(|c| c.observed_generation == Some(3)));
    }
}
