use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::*;
use crate::crd::{Analysis, CanaryStep, RolloutSpec};

fn settings() -> Settings {
    Settings::of(&RolloutSpec {
        strategy: RolloutStrategy::Canary,
        steps: vec![
            CanaryStep {
                weight: 10,
                pause: thesa_core::duration::Duration::from_secs(60),
            },
            CanaryStep {
                weight: 50,
                pause: thesa_core::duration::Duration::from_secs(60),
            },
        ],
        analysis: Some(Analysis {
            interval: Some(thesa_core::duration::Duration::from_secs(20)),
            min_requests: Some(10),
            failure_limit: Some(2),
            ..Analysis::default()
        }),
        paused: false,
    })
}

fn at(seconds: i64) -> Timestamp {
    Timestamp::UNIX_EPOCH + SignedDuration::from_secs(1_700_000_000 + seconds)
}

/// Exposition text of one pod that answered each group's `ok` 200s and
/// `failed` 500s within that group's `le` seconds.
fn exposition_of(groups: &[(u64, u64, &str)]) -> String {
    let ok: u64 = groups.iter().map(|g| g.0).sum();
    let failed: u64 = groups.iter().map(|g| g.1).sum();
    let mut text = String::from(
        "# HELP thesa_http_requests HTTP requests by route pattern and status\n\
         # TYPE thesa_http_requests counter\n",
    );
    text.push_str(&format!(
        "thesa_http_requests_total{{method=\"GET\",path_pattern=\"/ui/pages/{{id}}\",status=\"200\"}} {ok}\n"
    ));
    text.push_str(&format!(
        "thesa_http_requests_total{{method=\"GET\",path_pattern=\"/ui/pages/{{id}}\",status=\"500\"}} {failed}\n"
    ));
    text.push_str("thesa_http_requests_total{method=\"GET\",path_pattern=\"/ui/health\",status=\"500\"} 999\n");
    for bound in ["0.1", "1.0", "2.5", "10.0", "+Inf"] {
        let upper: f64 = bound.parse().unwrap_or(f64::INFINITY);
        let count: u64 = groups
            .iter()
            .filter(|g| upper >= g.2.parse::<f64>().unwrap_or(0.0))
            .map(|g| g.0 + g.1)
            .sum();
        text.push_str(&format!(
            "thesa_http_request_duration_seconds_bucket{{le=\"{bound}\",method=\"GET\",path_pattern=\"/ui/pages/{{id}}\"}} {count}\n"
        ));
    }
    text.push_str("# EOF\n");
    text
}

fn exposition(ok: u64, failed: u64, le: &str) -> String {
    exposition_of(&[(ok, failed, le)])
}

fn counters(ok: u64, failed: u64, le: &str) -> Counters {
    parse_counters([exposition(ok, failed, le).as_str()]).expect("parses")
}

fn counters_of(groups: &[(u64, u64, &str)]) -> Counters {
    parse_counters([exposition_of(groups).as_str()]).expect("parses")
}

#[test]
fn defaults_are_the_guides_canary() {
    let s = Settings::of(&RolloutSpec::default());
    assert_eq!(
        s.steps,
        vec![
            (5, Duration::from_secs(600)),
            (25, Duration::from_secs(600)),
            (100, Duration::from_secs(1800))
        ]
    );
    assert_eq!(s.interval, Duration::from_secs(60));
    assert!((s.max_error_rate - 0.01).abs() < f64::EPSILON);
    assert!((s.max_latency_p99 - 2.0).abs() < f64::EPSILON);
    assert_eq!(s.failure_limit, 2);
}

#[test]
fn replica_split_at_one_three_and_twenty_pods() {
    // One pod: the canary gets one, the stable keeps one.
    assert_eq!(
        split(1, 5, None),
        Split {
            canary: 1,
            stable: 1,
            hpa: None
        }
    );
    assert_eq!(
        split(1, 100, None),
        Split {
            canary: 1,
            stable: 1,
            hpa: None
        }
    );
    assert_eq!(
        split(3, 5, None),
        Split {
            canary: 1,
            stable: 2,
            hpa: None
        }
    );
    assert_eq!(
        split(3, 25, None),
        Split {
            canary: 1,
            stable: 2,
            hpa: None
        }
    );
    assert_eq!(
        split(3, 50, None),
        Split {
            canary: 2,
            stable: 1,
            hpa: None
        }
    );
    assert_eq!(
        split(3, 100, None),
        Split {
            canary: 3,
            stable: 1,
            hpa: None
        }
    );
    assert_eq!(
        split(20, 5, None),
        Split {
            canary: 1,
            stable: 19,
            hpa: None
        }
    );
    assert_eq!(
        split(20, 25, None),
        Split {
            canary: 5,
            stable: 15,
            hpa: None
        }
    );
    assert_eq!(
        split(20, 100, None),
        Split {
            canary: 20,
            stable: 1,
            hpa: None
        }
    );
}

#[test]
fn replica_split_respects_the_autoscaler_bounds() {
    // 10 pods now, bounds 3..20: the canary takes 3 at 25%, the stable
    // autoscaler may use 1..17, so both together stay within 3..20.
    assert_eq!(
        split(10, 25, Some((3, 20))),
        Split {
            canary: 3,
            stable: 7,
            hpa: Some((1, 17))
        }
    );
    // Below the minimum, the total is raised to it first.
    assert_eq!(
        split(1, 5, Some((3, 20))),
        Split {
            canary: 1,
            stable: 2,
            hpa: Some((2, 19))
        }
    );
    // Above the maximum, lowered to it.
    assert_eq!(
        split(40, 50, Some((3, 20))),
        Split {
            canary: 10,
            stable: 10,
            hpa: Some((1, 10))
        }
    );
}

#[test]
fn exposition_text_is_summed_by_status_and_bucket() {
    let pod = exposition(90, 10, "0.1");
    let c = parse_counters([pod.as_str(), pod.as_str()]).expect("parses");
    assert_eq!(c.requests, 200.0, "probes are left out, pods summed");
    assert_eq!(c.errors, 20.0);
    assert_eq!(c.buckets.get("0.1"), Some(&200.0));
    assert_eq!(c.buckets.get("1"), Some(&200.0), "1.0 and 1 are one bound");
    assert_eq!(c.buckets.get("+Inf"), Some(&200.0));
    let err = parse_counters(["thesa_http_requests_total{status=\"200\" 3"]).unwrap_err();
    assert!(err.contains("line 1"), "{err}");
    assert!(parse_counters(["thesa_http_requests_total 1 1700000000"]).is_ok());
}

#[test]
fn figures_are_the_difference_of_two_readings() {
    let before = counters(100, 0, "0.1");
    let after = counters_of(&[(100, 0, "0.1"), (90, 10, "2.5")]);
    let f = figures(&before, &after).expect("no reset");
    assert_eq!(f.requests, 100.0);
    assert_eq!(f.error_rate, Some(0.1));
    // All 100 new requests took between 1 and 2.5 s: p99 interpolates in
    // that bucket.
    let p99 = f.latency_p99_seconds.expect("p99");
    assert!((p99 - 2.485).abs() < 1e-9, "{p99}");
    // A counter that went down (a restarted pod) gives no figures.
    assert_eq!(figures(&after, &before), None);
}

#[test]
fn quantile_follows_histogram_quantile() {
    let buckets = [(0.1, 50.0), (1.0, 100.0), (f64::INFINITY, 100.0)];
    assert_eq!(quantile(0.5, &buckets), Some(0.1));
    assert!((quantile(0.99, &buckets).unwrap() - 0.982).abs() < 1e-9);
    assert_eq!(
        quantile(0.99, &[(1.0, 0.0), (f64::INFINITY, 10.0)]),
        Some(1.0)
    );
    assert_eq!(quantile(0.99, &[(1.0, 0.0)]), None);
}

#[test]
fn verdicts_need_min_requests_and_name_the_limit() {
    let s = settings();
    let few = AnalysisFigures {
        requests: 9.0,
        error_rate: Some(1.0),
        latency_p99_seconds: Some(9.0),
    };
    assert!(matches!(judge(&s, Some(&few)), Verdict::None(why) if why.contains("minRequests")));
    let errors = AnalysisFigures {
        requests: 100.0,
        error_rate: Some(0.05),
        latency_p99_seconds: Some(0.1),
    };
    assert!(
        matches!(judge(&s, Some(&errors)), Verdict::Bad(why) if why.contains("error rate 5.00%"))
    );
    let slow = AnalysisFigures {
        requests: 100.0,
        error_rate: Some(0.0),
        latency_p99_seconds: Some(2.4),
    };
    assert!(matches!(judge(&s, Some(&slow)), Verdict::Bad(why) if why.contains("p99 2.400s")));
    let fine = AnalysisFigures {
        requests: 100.0,
        error_rate: Some(0.005),
        latency_p99_seconds: Some(0.3),
    };
    assert_eq!(judge(&s, Some(&fine)), Verdict::Good);
    assert!(matches!(judge(&s, None), Verdict::None(_)));
}

fn observed<'a>(
    status: Option<&'a RolloutStatus>,
    candidate: &'a str,
    now: Timestamp,
) -> Observed<'a> {
    Observed {
        candidate,
        stable: Some("old"),
        status,
        promote: false,
        abort: false,
        canary_ready: true,
        canary_failed: None,
        reading: None,
        now,
    }
}

fn canary_status(action: Action) -> RolloutStatus {
    match action {
        Action::Canary { status, .. } => status,
        other => panic!("expected a canary, got {other:?}"),
    }
}

fn reading(canary: Counters) -> Option<Reading> {
    Some(Reading {
        canary: Measured::Counters(canary),
        stable: Measured::Counters(counters(0, 0, "0.1")),
    })
}

#[test]
fn no_canary_without_a_change_or_before_the_first_rollout() {
    let s = settings();
    let mut o = observed(None, "old", at(0));
    assert_eq!(next(&s, &o), Action::Apply { status: None });
    o.stable = None;
    o.candidate = "new";
    assert_eq!(next(&s, &o), Action::Apply { status: None });
}

#[test]
fn steps_progress_by_pause_then_promote() {
    let s = settings();
    let started = canary_status(next(&s, &observed(None, "new", at(0))));
    assert_eq!(
        (started.step, started.weight, started.phase),
        (1, 10, RolloutPhase::Progressing)
    );
    // First reading: only a baseline, no verdict.
    let mut o = observed(Some(&started), "new", at(1));
    o.reading = reading(counters(0, 0, "0.1"));
    assert!(reading_due(&s, Some(&started), at(1)));
    let based = canary_status(next(&s, &o));
    assert!(based.baseline.is_some() && based.canary.is_none());
    assert!(!reading_due(&s, Some(&based), at(10)));
    // Mid-step: same step, requeued before the interval ends.
    match next(&s, &observed(Some(&based), "new", at(10))) {
        Action::Canary {
            status, requeue, ..
        } => {
            assert_eq!(status.step, 1);
            assert_eq!(requeue, Duration::from_secs(11));
        }
        other => panic!("{other:?}"),
    }
    // Pause over: step 2 at 50%.
    let mut o = observed(Some(&based), "new", at(61));
    o.reading = reading(counters(100, 0, "0.1"));
    let step2 = match next(&s, &o) {
        Action::Canary { status, event, .. } => {
            assert!(event.is_some_and(|e| e.contains("50%")));
            status
        }
        other => panic!("{other:?}"),
    };
    assert_eq!((step2.step, step2.weight), (2, 50));
    assert_eq!(step2.canary.as_ref().map(|f| f.requests), Some(100.0));
    // Paused: the step is held.
    let paused = Settings {
        paused: true,
        ..s.clone()
    };
    let held = canary_status(next(&paused, &observed(Some(&step2), "new", at(200))));
    assert_eq!((held.step, held.phase), (2, RolloutPhase::Paused));
    // A canary pod not ready holds the step too.
    let mut o = observed(Some(&step2), "new", at(200));
    o.canary_ready = false;
    o.reading = reading(counters(500, 500, "0.1"));
    let waiting = canary_status(next(&s, &o));
    assert_eq!(waiting.step, 2);
    assert_eq!(waiting.consecutive_failures, 0, "not ready is no verdict");
    assert!(
        waiting
            .message
            .as_deref()
            .is_some_and(|m| m.contains("waiting"))
    );
    // Pods that cannot come up (progress deadline): rolled back.
    o.canary_failed = Some("ProgressDeadlineExceeded".into());
    assert!(
        matches!(next(&s, &o), Action::Rollback { status } if status.message.as_deref().is_some_and(|m| m.contains("ProgressDeadlineExceeded")))
    );
    // Last pause over: promoted.
    match next(&s, &observed(Some(&step2), "new", at(200))) {
        Action::Promote { status } => {
            assert_eq!(status.phase, RolloutPhase::Promoted);
            assert!(status.finished_at.is_some() && status.baseline.is_none());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn failure_limit_bad_intervals_in_a_row_roll_back() {
    let s = settings();
    let started = canary_status(next(&s, &observed(None, "new", at(0))));
    let mut o = observed(Some(&started), "new", at(0));
    o.reading = reading(counters(0, 0, "0.1"));
    let base = canary_status(next(&s, &o));
    // Bad (10% errors), then good, then bad: no rollback yet.
    let mut o = observed(Some(&base), "new", at(20));
    o.reading = reading(counters(90, 10, "0.1"));
    let one = canary_status(next(&s, &o));
    assert_eq!(one.consecutive_failures, 1);
    let mut o = observed(Some(&one), "new", at(40));
    o.reading = reading(counters(190, 10, "0.1"));
    let good = canary_status(next(&s, &o));
    assert_eq!(
        good.consecutive_failures, 0,
        "a good interval resets the count"
    );
    // Below minRequests: no verdict either way.
    let mut o = observed(Some(&good), "new", at(50));
    o.reading = reading(counters(190, 15, "0.1"));
    let none = canary_status(next(&s, &o));
    assert_eq!(none.consecutive_failures, 0);
    assert!(
        none.message
            .as_deref()
            .is_some_and(|m| m.contains("minRequests"))
    );
    // Slow (p99 in the 2.5 s bucket), twice: rolled back.
    let mut o = observed(Some(&none), "new", at(52));
    o.reading = reading(counters_of(&[(190, 15, "0.1"), (100, 0, "2.5")]));
    let slow = canary_status(next(&s, &o));
    assert_eq!(slow.consecutive_failures, 1);
    let mut o = observed(Some(&slow), "new", at(55));
    o.reading = reading(counters_of(&[(190, 15, "0.1"), (200, 0, "2.5")]));
    match next(&s, &o) {
        Action::Rollback { status } => {
            assert_eq!(status.phase, RolloutPhase::RolledBack);
            assert!(
                status.message.as_deref().is_some_and(|m| m.contains("p99")),
                "{:?}",
                status.message
            );
            assert!(
                status
                    .canary
                    .as_ref()
                    .and_then(|f| f.latency_p99_seconds)
                    .is_some()
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn annotations_promote_or_abort_and_a_rolled_back_revision_is_held() {
    let s = settings();
    let started = canary_status(next(&s, &observed(None, "new", at(0))));
    let mut o = observed(Some(&started), "new", at(1));
    o.promote = true;
    assert!(matches!(next(&s, &o), Action::Promote { .. }));
    o.promote = false;
    o.abort = true;
    let aborted = match next(&s, &o) {
        Action::Rollback { status } => status,
        other => panic!("{other:?}"),
    };
    assert_eq!(aborted.phase, RolloutPhase::Aborted);
    // The same candidate again: held, no new canary.
    assert!(matches!(
        next(&s, &observed(Some(&aborted), "new", at(5))),
        Action::Hold { .. }
    ));
    // A newer one: a new canary.
    assert_eq!(
        canary_status(next(&s, &observed(Some(&aborted), "newer", at(5)))).step,
        1
    );
}

#[test]
fn a_new_revision_mid_canary_restarts_on_it() {
    let s = settings();
    let started = canary_status(next(&s, &observed(None, "new", at(0))));
    let mut o = observed(Some(&started), "new", at(61));
    o.reading = reading(counters(0, 0, "0.1"));
    let step2 = canary_status(next(&s, &o));
    assert_eq!(step2.step, 2);
    let restarted = canary_status(next(&s, &observed(Some(&step2), "newer", at(70))));
    assert_eq!(restarted.revision.as_deref(), Some("newer"));
    assert_eq!((restarted.step, restarted.weight), (1, 10));
    assert!(restarted.baseline.is_none());
}

#[test]
fn revision_is_checksum_and_image() {
    let deployment = serde_json::json!({"spec": {"template": {
        "metadata": {"annotations": {"thesa.io/checksum": "sha256:ab"}},
        "spec": {"containers": [{"image": "bff:1"}]},
    }}});
    assert_eq!(revision_of(&deployment).as_deref(), Some("sha256:ab@bff:1"));
    assert_eq!(revision_of(&serde_json::json!({})), None);
}

#[test]
fn a_reverted_change_or_a_deleted_stable_ends_the_canary() {
    let s = settings();
    let started = canary_status(next(&s, &observed(None, "new", at(0))));
    // The candidate is the stable revision again.
    match next(&s, &observed(Some(&started), "old", at(5))) {
        Action::Rollback { status } => {
            assert_eq!(status.phase, RolloutPhase::Aborted);
            assert!(
                status
                    .message
                    .as_deref()
                    .is_some_and(|m| m.contains("reverted"))
            );
        }
        other => panic!("{other:?}"),
    }
    // No stable Deployment any more: applied as a first rollout, the
    // canary's state dropped.
    let mut o = observed(Some(&started), "new", at(5));
    o.stable = None;
    assert_eq!(next(&s, &o), Action::Apply { status: None });
}
