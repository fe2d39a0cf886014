//! Progressive delivery, the pure part: the settings of `spec.rollout`
//! with their defaults, the replica split of a canary step, the figures of
//! an interval from two scrapes of the BFF's `/metrics`, the verdict on an
//! interval, and the state machine that takes (settings, status, what was
//! observed, now) to the next action. No I/O: the controller's rollout
//! stage (`controller/rollout.rs`) reads and applies.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use crate::crd::{
    AnalysisFigures, Baseline, Counters, RolloutPhase, RolloutSpec, RolloutStatus, RolloutStrategy,
    ThesaDeployment,
};
use crate::desired::CHECKSUM_ANNOTATION;

/// Pod label telling canary pods from stable ones (`canary`; stable pods
/// do not carry it).
pub const TRACK_LABEL: &str = "thesa.io/track";
/// Value of [`TRACK_LABEL`] on the canary's pods.
pub const CANARY_TRACK: &str = "canary";
/// Annotation on the ThesaDeployment: promote the running canary now.
pub const PROMOTE_ANNOTATION: &str = "thesa.io/rollout-promote";
/// Annotation on the ThesaDeployment: roll the running canary back now.
pub const ABORT_ANNOTATION: &str = "thesa.io/rollout-abort";
/// Request counts of these routes are left out of the analysis: the
/// kubelet's probes and the scrapes would dilute the error rate.
pub const IGNORED_ROUTES: [&str; 3] = ["/ui/health", "/ui/ready", "/metrics"];

/// `spec.rollout` with every default filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `(weight percent, pause)` per step.
    pub steps: Vec<(i32, Duration)>,
    /// One measured interval.
    pub interval: Duration,
    /// Highest 5xx share of an interval.
    pub max_error_rate: f64,
    /// Highest p99 of an interval, seconds.
    pub max_latency_p99: f64,
    /// Fewest canary requests for a verdict.
    pub min_requests: f64,
    /// Bad intervals in a row that roll back.
    pub failure_limit: i32,
    /// `spec.rollout.paused`.
    pub paused: bool,
}

/// The deployment guide's canary: 5% for 10 minutes, 25% for 10 minutes,
/// 100% for 30 minutes.
pub const DEFAULT_STEPS: [(i32, u64); 3] = [(5, 600), (25, 600), (100, 1800)];

impl Settings {
    /// The settings of `spec`, defaults filled in. Steps whose weight does
    /// not grow are dropped (the CRD refuses equal weights; an order that
    /// goes down would shrink the canary mid-way).
    pub fn of(spec: &RolloutSpec) -> Self {
        let mut steps: Vec<(i32, Duration)> = if spec.steps.is_empty() {
            DEFAULT_STEPS
                .iter()
                .map(|(w, s)| (*w, Duration::from_secs(*s)))
                .collect()
        } else {
            spec.steps
                .iter()
                .map(|s| (s.weight.clamp(1, 100), s.pause.get()))
                .collect()
        };
        let mut last = 0;
        steps.retain(|(w, _)| {
            let keep = *w > last;
            last = last.max(*w);
            keep
        });
        let analysis = spec.analysis.clone().unwrap_or_default();
        Self {
            steps,
            interval: analysis
                .interval
                .map_or(Duration::from_secs(60), |d| d.get())
                .max(Duration::from_secs(1)),
            max_error_rate: analysis.max_error_rate.unwrap_or(0.01),
            max_latency_p99: analysis
                .max_latency_p99
                .map_or(2.0, |d| d.get().as_secs_f64()),
            min_requests: analysis.min_requests.unwrap_or(20).max(0) as f64,
            failure_limit: analysis.failure_limit.unwrap_or(2).max(1),
            paused: spec.paused,
        }
    }
}

/// Whether `tdep` rolls changes out through a canary.
pub fn is_canary(tdep: &ThesaDeployment) -> bool {
    tdep.spec
        .rollout
        .as_ref()
        .is_some_and(|r| r.strategy == RolloutStrategy::Canary)
}

/// Pods of each track at one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    /// The canary's pods.
    pub canary: i32,
    /// The stable Deployment's pods (with autoscaling: what the lowered
    /// bounds allow; the autoscaler picks within them).
    pub stable: i32,
    /// With autoscaling: the stable HPA's `(minReplicas, maxReplicas)`
    /// while the canary runs, lowered by the canary's pods so that both
    /// together stay within the bounds the user set.
    pub hpa: Option<(i32, i32)>,
}

/// The split of `total` pods at `weight` percent: the canary gets
/// `ceil(total × weight / 100)` pods and at least one; the stable
/// Deployment gives up as many but keeps at least one, so that a rollback
/// never starts from zero pods. With autoscaling, `total` is clamped to the
/// user's `(min, max)` and the stable bounds are lowered by the canary.
pub fn split(total: i32, weight: i32, hpa: Option<(i32, i32)>) -> Split {
    let total = match hpa {
        Some((min, max)) => total.clamp(min.max(1), max.max(min).max(1)),
        None => total.max(0),
    };
    let weight = i64::from(weight.clamp(1, 100));
    let share = (i64::from(total) * weight + 99) / 100;
    let canary = i32::try_from(share)
        .unwrap_or(i32::MAX)
        .clamp(1, total.max(1));
    let stable = (total - canary).max(1);
    let hpa = hpa.map(|(min, max)| {
        let low = (min - canary).max(1);
        (low, (max - canary).max(low))
    });
    Split {
        canary,
        stable,
        hpa,
    }
}

/// The revision a Deployment object (as JSON) runs: its pod template's
/// checksum annotation and its image, `<checksum>@<image>`. What a canary
/// compares: a change of either starts one.
pub fn revision_of(deployment: &Value) -> Option<String> {
    let template = deployment.pointer("/spec/template")?;
    let checksum = template
        .pointer("/metadata/annotations")?
        .get(CHECKSUM_ANNOTATION)?
        .as_str()?;
    let image = template
        .pointer("/spec/containers/0/image")
        .and_then(Value::as_str)
        .unwrap_or_default();
    Some(format!("{checksum}@{image}"))
}

/// Cumulative counters summed over the `/metrics` texts of one track's
/// pods (Prometheus or OpenMetrics text exposition).
///
/// # Errors
/// The line that is not a sample.
pub fn parse_counters<'a>(texts: impl IntoIterator<Item = &'a str>) -> Result<Counters, String> {
    let mut counters = Counters::default();
    for text in texts {
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let sample = parse_sample(line)
                .ok_or_else(|| format!("line {}: not a sample: {line}", n + 1))?;
            if sample
                .labels
                .get("path_pattern")
                .is_some_and(|p| IGNORED_ROUTES.contains(&p.as_str()))
            {
                continue;
            }
            match sample.name {
                "thesa_http_requests_total" => {
                    counters.requests += sample.value;
                    if sample
                        .labels
                        .get("status")
                        .is_some_and(|s| s.starts_with('5'))
                    {
                        counters.errors += sample.value;
                    }
                }
                "thesa_http_request_duration_seconds_bucket" => {
                    if let Some(le) = sample.labels.get("le") {
                        *counters.buckets.entry(normalize_le(le)).or_insert(0.0) += sample.value;
                    }
                }
                _ => {}
            }
        }
    }
    Ok(counters)
}

/// `le` as written by different encoders (`1`, `1.0`, `+Inf`) in one
/// spelling.
fn normalize_le(le: &str) -> String {
    match le.parse::<f64>() {
        Ok(v) if v.is_infinite() => "+Inf".to_string(),
        Ok(v) => format!("{v}"),
        Err(_) => le.to_string(),
    }
}

struct Sample<'a> {
    name: &'a str,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// `name{label="value",...} value [timestamp]`.
fn parse_sample(line: &str) -> Option<Sample<'_>> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices();
        let mut key = String::new();
        let end;
        loop {
            let (i, c) = chars.next()?;
            match c {
                '}' => {
                    end = i;
                    break;
                }
                ',' | ' ' => {}
                '=' => {
                    let (_, quote) = chars.next()?;
                    if quote != '"' {
                        return None;
                    }
                    let mut value = String::new();
                    loop {
                        let (_, c) = chars.next()?;
                        match c {
                            '\\' => {
                                let (_, escaped) = chars.next()?;
                                value.push(if escaped == 'n' { '\n' } else { escaped });
                            }
                            '"' => break,
                            c => value.push(c),
                        }
                    }
                    labels.insert(std::mem::take(&mut key), value);
                }
                c => key.push(c),
            }
        }
        rest = &body[end + 1..];
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    (!name.is_empty()).then_some(Sample {
        name,
        labels,
        value,
    })
}

/// The figures of the interval between two readings of the same track;
/// `None` when a counter went down (a pod restarted or went away), which
/// makes the interval count neither way.
pub fn figures(before: &Counters, after: &Counters) -> Option<AnalysisFigures> {
    let requests = after.requests - before.requests;
    let errors = after.errors - before.errors;
    if requests < 0.0 || errors < 0.0 {
        return None;
    }
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    for (le, count) in &after.buckets {
        let delta = count - before.buckets.get(le).copied().unwrap_or(0.0);
        if delta < 0.0 {
            return None;
        }
        let bound = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse().ok()?
        };
        buckets.push((bound, delta));
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    Some(AnalysisFigures {
        requests,
        error_rate: (requests > 0.0).then(|| errors / requests),
        latency_p99_seconds: quantile(0.99, &buckets),
    })
}

/// The `q` quantile of a cumulative histogram (`(upper bound, count)`,
/// sorted), interpolated linearly inside the bucket as Prometheus'
/// `histogram_quantile` does; the highest finite bound when it falls in
/// the `+Inf` bucket.
pub fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(bound, count) in buckets {
        if count >= rank {
            if bound.is_infinite() {
                return Some(lower.0);
            }
            let in_bucket = count - lower.1;
            if in_bucket <= 0.0 {
                return Some(bound);
            }
            return Some(lower.0 + (bound - lower.0) * (rank - lower.1) / in_bucket);
        }
        lower = (bound, count);
    }
    Some(lower.0)
}

/// What one interval says about the canary.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Within the limits.
    Good,
    /// Over a limit: why, with the figures.
    Bad(String),
    /// Too few requests (or a counter reset): counts neither way.
    None(String),
}

/// Judges the canary's figures of one interval.
pub fn judge(settings: &Settings, canary: Option<&AnalysisFigures>) -> Verdict {
    let Some(canary) = canary else {
        return Verdict::None("a counter went down (a pod restarted); interval skipped".into());
    };
    if canary.requests < settings.min_requests {
        return Verdict::None(format!(
            "{} requests, fewer than minRequests {}: no verdict",
            canary.requests, settings.min_requests
        ));
    }
    let mut bad = Vec::new();
    if let Some(rate) = canary.error_rate
        && rate > settings.max_error_rate
    {
        bad.push(format!(
            "error rate {:.2}% over maxErrorRate {:.2}%",
            rate * 100.0,
            settings.max_error_rate * 100.0
        ));
    }
    if let Some(p99) = canary.latency_p99_seconds
        && p99 > settings.max_latency_p99
    {
        bad.push(format!(
            "p99 {p99:.3}s over maxLatencyP99 {:.3}s",
            settings.max_latency_p99
        ));
    }
    if bad.is_empty() {
        Verdict::Good
    } else {
        Verdict::Bad(format!("{} ({} requests)", bad.join(", "), canary.requests))
    }
}

/// A reading of both tracks' counters.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// The canary's counters, or its figures directly (Prometheus).
    pub canary: Measured,
    /// The stable pods'.
    pub stable: Measured,
}

/// One track's reading.
#[derive(Debug, Clone, PartialEq)]
pub enum Measured {
    /// Cumulative counters (source `pods`): figures come from the
    /// difference with the baseline.
    Counters(Counters),
    /// Figures of the interval already (source `prometheus`).
    Figures(AnalysisFigures),
}

/// What the stage observed this reconcile.
#[derive(Debug, Clone)]
pub struct Observed<'a> {
    /// The revision the plan builds now.
    pub candidate: &'a str,
    /// The revision the stable Deployment runs (`None`: no Deployment yet).
    pub stable: Option<&'a str>,
    /// The rollout status as last written.
    pub status: Option<&'a RolloutStatus>,
    /// The promote annotation is set.
    pub promote: bool,
    /// The abort annotation is set.
    pub abort: bool,
    /// Whether every canary pod is ready.
    pub canary_ready: bool,
    /// The canary Deployment reports that its pods cannot come up (its
    /// progress deadline passed, or a replica failure): why.
    pub canary_failed: Option<String>,
    /// Metrics read now (taken only when [`reading_due`] said so).
    pub reading: Option<Reading>,
    /// Now.
    pub now: Timestamp,
}

/// What the stage does next.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// No canary: apply the plan to the stable Deployment as `immediate`
    /// does (first rollout, nothing changed, or the same revision).
    /// `status` is the rollout status to keep.
    Apply {
        /// The rollout status to write.
        status: Option<RolloutStatus>,
    },
    /// A rolled-back revision is still the candidate: leave the stable
    /// Deployment as it is and run no canary.
    Hold {
        /// The rollout status to write.
        status: RolloutStatus,
    },
    /// Run the canary at the status' step and look again after `requeue`.
    Canary {
        /// The rollout status to write.
        status: RolloutStatus,
        /// When to look again.
        requeue: Duration,
        /// What happened this time, for an event (a new step, a restart).
        event: Option<String>,
    },
    /// The stable Deployment takes the canary's revision, the canary goes.
    Promote {
        /// The rollout status to write.
        status: RolloutStatus,
    },
    /// The canary goes, the stable Deployment keeps its revision.
    Rollback {
        /// The rollout status to write (phase `RolledBack` or `Aborted`).
        status: RolloutStatus,
    },
}

fn time(t: Timestamp) -> Time {
    Time(t)
}

fn elapsed(since: Option<&Time>, now: Timestamp) -> Duration {
    since
        .map(|t| now.duration_since(t.0))
        .and_then(|d| Duration::try_from(d).ok())
        .unwrap_or_default()
}

/// Whether the stage should read metrics now: a canary runs and its
/// interval is over (or it has no baseline yet).
pub fn reading_due(settings: &Settings, status: Option<&RolloutStatus>, now: Timestamp) -> bool {
    let Some(status) = status.filter(|s| s.phase.running()) else {
        return false;
    };
    match &status.baseline {
        None => true,
        Some(baseline) => elapsed(Some(&baseline.at), now) >= settings.interval,
    }
}

/// A fresh rollout of `candidate` from `stable`.
fn start(settings: &Settings, candidate: &str, stable: &str, now: Timestamp) -> RolloutStatus {
    let (weight, _) = settings
        .steps
        .first()
        .copied()
        .unwrap_or((100, Duration::ZERO));
    RolloutStatus {
        phase: if settings.paused {
            RolloutPhase::Paused
        } else {
            RolloutPhase::Progressing
        },
        revision: Some(candidate.to_string()),
        stable_revision: Some(stable.to_string()),
        step: 1,
        steps: i32::try_from(settings.steps.len()).unwrap_or(i32::MAX),
        weight,
        started_at: Some(time(now)),
        step_started_at: Some(time(now)),
        message: Some(format!("canary started at {weight}%")),
        ..RolloutStatus::default()
    }
}

/// The state machine: the next action from the settings, the status last
/// written and what was observed now.
pub fn next(settings: &Settings, observed: &Observed<'_>) -> Action {
    let now = observed.now;
    let candidate = observed.candidate;
    let previous = observed.status.cloned();
    let Some(stable) = observed.stable else {
        // First rollout (or the stable Deployment was deleted): nothing
        // to compare with; a canary that ran is dropped.
        return Action::Apply {
            status: previous.filter(|s| !s.phase.running()),
        };
    };
    let running = previous.as_ref().filter(|s| s.phase.running());
    match running {
        None => {
            if candidate == stable {
                return Action::Apply { status: previous };
            }
            if let Some(done) = previous.as_ref().filter(|s| {
                matches!(s.phase, RolloutPhase::RolledBack | RolloutPhase::Aborted)
                    && s.revision.as_deref() == Some(candidate)
            }) {
                return Action::Hold {
                    status: done.clone(),
                };
            }
            // Definitions refused by an earlier rollback stay refused.
            let mut status = start(settings, candidate, stable, now);
            if let Some(old) = &previous {
                status.failed_definitions = old.failed_definitions.clone();
            }
            let event = status.message.clone();
            Action::Canary {
                requeue: settings.interval.min(first_pause(settings)),
                status,
                event,
            }
        }
        Some(current) => advance(settings, observed, current.clone(), stable),
    }
}

fn first_pause(settings: &Settings) -> Duration {
    settings.steps.first().map_or(Duration::ZERO, |s| s.1)
}

fn advance(
    settings: &Settings,
    observed: &Observed<'_>,
    mut status: RolloutStatus,
    stable: &str,
) -> Action {
    let now = observed.now;
    if observed.candidate == stable {
        // The change was undone mid-canary: nothing left to roll out.
        status.message = Some("the change was reverted mid-canary; canary removed".into());
        return finish(status, RolloutPhase::Aborted, now);
    }
    if status.revision.as_deref() != Some(observed.candidate) {
        // A newer change: start over on the newest revision.
        let mut fresh = start(settings, observed.candidate, stable, now);
        fresh.failed_definitions = status.failed_definitions;
        fresh.message = Some(format!(
            "a newer revision arrived mid-canary; restarted at {}%",
            fresh.weight
        ));
        let event = fresh.message.clone();
        return Action::Canary {
            requeue: settings.interval.min(first_pause(settings)),
            status: fresh,
            event,
        };
    }
    if observed.abort {
        status.message = Some("aborted by the thesa.io/rollout-abort annotation".into());
        return finish(status, RolloutPhase::Aborted, now);
    }
    if observed.promote {
        status.message = Some("promoted by the thesa.io/rollout-promote annotation".into());
        return finish(status, RolloutPhase::Promoted, now);
    }
    if let Some(why) = &observed.canary_failed {
        status.message = Some(format!("the canary's pods cannot come up: {why}"));
        return finish(status, RolloutPhase::RolledBack, now);
    }
    // Analysis of the interval that ended.
    if let Some(reading) = &observed.reading {
        let baseline = status.baseline.clone();
        let (canary, stable_figures, counters) = interval_figures(baseline.as_ref(), reading);
        let had_baseline = baseline.is_some() || matches!(reading.canary, Measured::Figures(_));
        if let Some((canary_counters, stable_counters)) = counters {
            status.baseline = Some(Baseline {
                at: time(now),
                canary: canary_counters,
                stable: stable_counters,
            });
        } else {
            status.baseline = Some(Baseline {
                at: time(now),
                canary: Counters::default(),
                stable: Counters::default(),
            });
        }
        if had_baseline {
            let verdict = if observed.canary_ready {
                judge(settings, canary.as_ref())
            } else {
                Verdict::None(format!(
                    "waiting for the {} canary pods to be ready",
                    status.canary_replicas
                ))
            };
            status.canary = canary;
            status.stable = stable_figures;
            match verdict {
                Verdict::Good => {
                    status.consecutive_failures = 0;
                    status.message = Some(format!("step {}: interval passed", status.step));
                }
                Verdict::None(why) => status.message = Some(format!("step {}: {why}", status.step)),
                Verdict::Bad(why) => {
                    status.consecutive_failures += 1;
                    status.message = Some(format!(
                        "step {}: bad interval {} of {}: {why}",
                        status.step, status.consecutive_failures, settings.failure_limit
                    ));
                    if status.consecutive_failures >= settings.failure_limit {
                        return finish(status, RolloutPhase::RolledBack, now);
                    }
                }
            }
        }
    }
    // Steps move by time, never while paused or while a pod is not ready.
    status.phase = if settings.paused {
        RolloutPhase::Paused
    } else {
        RolloutPhase::Progressing
    };
    let index = usize::try_from(status.step.max(1) - 1).unwrap_or(0);
    let pause = settings.steps.get(index).map_or(Duration::ZERO, |s| s.1);
    let in_step = elapsed(status.step_started_at.as_ref(), now);
    let mut event = None;
    if !settings.paused && observed.canary_ready && in_step >= pause {
        if index + 1 >= settings.steps.len() {
            status.message = Some(format!(
                "every step passed ({} of {})",
                status.step, status.steps
            ));
            return finish(status, RolloutPhase::Promoted, now);
        }
        let (weight, _) = settings.steps[index + 1];
        status.step += 1;
        status.weight = weight;
        status.step_started_at = Some(time(now));
        status.message = Some(format!("step {}: canary at {weight}%", status.step));
        event = status.message.clone();
    }
    let index = usize::try_from(status.step.max(1) - 1).unwrap_or(0);
    let pause = settings.steps.get(index).map_or(Duration::ZERO, |s| s.1);
    let step_left = pause.saturating_sub(elapsed(status.step_started_at.as_ref(), now));
    let interval_left = status.baseline.as_ref().map_or(Duration::ZERO, |b| {
        settings.interval.saturating_sub(elapsed(Some(&b.at), now))
    });
    let mut requeue = step_left.min(settings.interval);
    if !interval_left.is_zero() {
        requeue = requeue.min(interval_left);
    }
    Action::Canary {
        status,
        requeue: requeue.max(Duration::from_secs(1)),
        event,
    }
}

type IntervalFigures = (
    Option<AnalysisFigures>,
    Option<AnalysisFigures>,
    Option<(Counters, Counters)>,
);

fn interval_figures(baseline: Option<&Baseline>, reading: &Reading) -> IntervalFigures {
    match (&reading.canary, &reading.stable) {
        (Measured::Counters(canary), Measured::Counters(stable)) => {
            let figures_of = |before: Option<&Counters>, after: &Counters| {
                before.and_then(|b| figures(b, after))
            };
            (
                figures_of(baseline.map(|b| &b.canary), canary),
                figures_of(baseline.map(|b| &b.stable), stable),
                Some((canary.clone(), stable.clone())),
            )
        }
        (canary, stable) => {
            let direct = |m: &Measured| match m {
                Measured::Figures(f) => Some(f.clone()),
                Measured::Counters(_) => None,
            };
            (direct(canary), direct(stable), None)
        }
    }
}

fn finish(mut status: RolloutStatus, phase: RolloutPhase, now: Timestamp) -> Action {
    status.phase = phase;
    status.finished_at = Some(time(now));
    status.baseline = None;
    match phase {
        RolloutPhase::Promoted => {
            status.failed_definitions.clear();
            Action::Promote { status }
        }
        _ => Action::Rollback { status },
    }
}

#[cfg(test)]
mod tests;
