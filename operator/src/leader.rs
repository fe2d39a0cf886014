//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go does
//! it: the holder renews `renewTime` every `retry_period`; a candidate takes
//! the Lease over when its `renewTime` is older than `leaseDurationSeconds`;
//! every write carries the `resourceVersion` read, so of two candidates
//! only one wins (the other gets 409 Conflict). A leader that has not
//! renewed for `renew_deadline` steps down by itself, before its Lease can
//! expire for the others (`renew_deadline` < `lease_duration`), so two
//! replicas never both believe they lead.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use tokio::sync::watch;

/// Where and how long the Lease is held.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    /// Lease name.
    pub name: String,
    /// Lease namespace.
    pub namespace: String,
    /// This replica's identity (the pod name).
    pub identity: String,
    /// How long a Lease stays valid without renewal.
    pub lease_duration: Duration,
    /// A leader that could not renew for this long steps down.
    pub renew_deadline: Duration,
    /// Time between attempts.
    pub retry_period: Duration,
}

/// One candidate for the Lease.
#[derive(Clone)]
pub struct Elector {
    api: Api<Lease>,
    settings: LeaseSettings,
}

fn secs(d: Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

impl Elector {
    /// A candidate on `client`.
    pub fn new(client: Client, settings: LeaseSettings) -> Self {
        Self {
            api: Api::namespaced(client, &settings.namespace),
            settings,
        }
    }

    /// Tries once to take or keep the Lease at time `now`; whether this
    /// candidate holds it afterwards. Conflicts (someone else wrote first)
    /// are a plain `false`.
    pub async fn try_acquire_or_renew(&self, now: Timestamp) -> Result<bool, kube::Error> {
        let s = &self.settings;
        let duration_seconds = i32::try_from(s.lease_duration.as_secs()).unwrap_or(i32::MAX);
        let current = match self.api.get_opt(&s.name).await? {
            Some(lease) => lease,
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(s.name.clone()),
                        namespace: Some(s.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(s.identity.clone()),
                        lease_duration_seconds: Some(duration_seconds),
                        acquire_time: Some(MicroTime(now)),
                        renew_time: Some(MicroTime(now)),
                        lease_transitions: Some(0),
                        ..LeaseSpec::default()
                    }),
                };
                return conflict_is_false(self.api.create(&PostParams::default(), &lease).await);
            }
        };
        let spec = current.spec.clone().unwrap_or_default();
        let held_by_us = spec.holder_identity.as_deref() == Some(s.identity.as_str());
        let expired = match (&spec.renew_time, spec.lease_duration_seconds) {
            (Some(MicroTime(renewed)), Some(seconds)) => {
                now >= *renewed + SignedDuration::from_secs(i64::from(seconds))
            }
            _ => true,
        };
        let free = spec.holder_identity.as_deref().is_none_or(str::is_empty);
        if !held_by_us && !expired && !free {
            return Ok(false);
        }
        let mut next = current.clone();
        let next_spec = next.spec.get_or_insert_with(LeaseSpec::default);
        if !held_by_us {
            next_spec.holder_identity = Some(s.identity.clone());
            next_spec.acquire_time = Some(MicroTime(now));
            next_spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        next_spec.renew_time = Some(MicroTime(now));
        next_spec.lease_duration_seconds = Some(duration_seconds);
        // `replace` sends the resourceVersion read: a concurrent write wins.
        conflict_is_false(
            self.api
                .replace(&current.name_any(), &PostParams::default(), &next)
                .await,
        )
    }

    /// Gives the Lease up (on shutdown) so a standby takes over at once.
    pub async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.settings.name).await? else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.settings.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        let name = lease.name_any();
        conflict_is_false(
            self.api
                .replace(&name, &PostParams::default(), &lease)
                .await,
        )
        .map(|_| ())
    }

    /// Campaigns until `shutdown` turns true: `leading` is true while this
    /// replica holds the Lease, and turns false as soon as it has not
    /// renewed for `renew_deadline`. The Lease is not released here: the
    /// caller releases it (`release`) once its work has stopped, so that a
    /// standby never starts while this replica still reconciles.
    pub async fn run(self, leading: watch::Sender<bool>, mut shutdown: watch::Receiver<bool>) {
        let s = self.settings.clone();
        let mut last_renewal: Option<Timestamp> = None;
        loop {
            let now = Timestamp::now();
            // An attempt may not outlast the renew deadline: a stalled API
            // call must not keep a replica leading past its lease.
            let attempt = tokio::time::timeout(s.renew_deadline, self.try_acquire_or_renew(now));
            match attempt.await {
                Ok(Ok(true)) => last_renewal = Some(now),
                Ok(Ok(false)) => last_renewal = None,
                Ok(Err(err)) => {
                    tracing::warn!(error = %err, lease = s.name, "lease renewal failed")
                }
                Err(_) => tracing::warn!(lease = s.name, "lease renewal timed out"),
            }
            let now = Timestamp::now();
            let holds = still_leading(last_renewal, now, s.renew_deadline);
            if holds != *leading.borrow() {
                if holds {
                    tracing::info!(identity = s.identity, lease = s.name, "became the leader");
                } else {
                    tracing::warn!(identity = s.identity, lease = s.name, "stopped leading");
                }
                let _ = leading.send(holds);
            }
            tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => break,
                _ = tokio::time::sleep(s.retry_period) => {}
            }
        }
    }
}

/// Whether a replica whose last successful renewal was at `last_renewal`
/// may still act as the leader at `now`.
pub fn still_leading(
    last_renewal: Option<Timestamp>,
    now: Timestamp,
    renew_deadline: Duration,
) -> bool {
    last_renewal.is_some_and(|at| now < at + secs(renew_deadline))
}

/// 409 Conflict (another candidate wrote first) is "not ours", not an
/// error.
fn conflict_is_false<T>(result: Result<T, kube::Error>) -> Result<bool, kube::Error> {
    match result {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(err) => Err(err),
    }
}
