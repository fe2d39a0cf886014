//! The watches behind the controller, made to survive an API server
//! restart, and their health for the liveness probe.
//!
//! A real API server that restarts (a control-plane upgrade, a crash) cuts
//! every watch; when it answers again its watch cache starts at the newest
//! resource version, and a watch resumed from an older one is refused with
//! an HTTP `410 Gone` *before* the stream starts. kube-runtime's watcher
//! re-lists on a 410 that arrives as an `ERROR` event inside a stream, but
//! a 410 *answer* to the watch request (which kube-client reads as an error
//! item of the event stream) leaves it retrying the same stale version for
//! ever: the process stays up and never sees a change again. [`resilient`] restarts such a
//! watcher from scratch (list, then watch), which is what the API
//! conventions ask of a client.
//!
//! Whatever else may keep a watch from recovering, [`WatchHealth`] notices:
//! a watch that keeps failing, with no success in between, for longer
//! than a bound makes `/healthz` fail, and the kubelet restarts the
//! process.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use kube::runtime::{WatchStreamExt, watcher};
use tracing::{info, warn};

/// A watch still counts as failing while its last error is this recent:
/// longer than the watcher's longest back-off (30 s, with jitter), so a
/// watch that keeps failing is never seen as quiet between two attempts.
const STILL_FAILING: Duration = Duration::from_secs(75);

/// How each watch is doing.
#[derive(Debug, Default)]
pub struct WatchHealth {
    watches: Mutex<BTreeMap<String, Failing>>,
}

/// Since when a watch has failed without a success in between, and when
/// it failed last.
#[derive(Debug, Clone, Copy)]
struct Failing {
    since: Instant,
    last: Instant,
}

impl WatchHealth {
    fn succeeded(&self, watch: &str) {
        let mut watches = self.watches.lock().unwrap_or_else(|e| e.into_inner());
        watches.remove(watch);
    }

    fn failed(&self, watch: &str, now: Instant) {
        let mut watches = self.watches.lock().unwrap_or_else(|e| e.into_inner());
        watches
            .entry(watch.to_string())
            .and_modify(|f| f.last = now)
            .or_insert(Failing {
                since: now,
                last: now,
            });
    }

    /// The watches that have failed for longer than `bound` and still
    /// fail, each with how long; empty when all is well. A watch that
    /// stopped failing without delivering anything (a quiet resource after
    /// a reconnect) is not stalled.
    pub fn stalled(&self, bound: Duration, now: Instant) -> Vec<(String, Duration)> {
        let watches = self.watches.lock().unwrap_or_else(|e| e.into_inner());
        watches
            .iter()
            .filter(|(_, f)| now.duration_since(f.last) < STILL_FAILING)
            .map(|(name, f)| (name.clone(), now.duration_since(f.since)))
            .filter(|(_, failing)| *failing > bound)
            .collect()
    }
}

/// The watcher `make` builds, made resilient:
/// - started over (a fresh list, then a watch) whenever the API server
///   refuses to resume it with `410 Gone`;
/// - its errors logged, recorded in `health` under `name`, and retried
///   with the watcher's own back-off, but never passed on. The
///   controller backs off its *whole* queue on an error from any watch,
///   so after an outage that cut ten watches it would wait out ten growing
///   delays (minutes) before it reconciled anything again.
pub fn resilient<K, S, F>(
    name: String,
    health: Arc<WatchHealth>,
    make: F,
) -> impl Stream<Item = watcher::Result<watcher::Event<K>>> + Send + 'static
where
    K: Send + 'static,
    S: Stream<Item = watcher::Result<watcher::Event<K>>> + Send + 'static,
    F: Fn() -> S + Send + 'static,
{
    restarted_on_410(name.clone(), make)
        .inspect(move |item| match item {
            Ok(_) => health.succeeded(&name),
            Err(err) => {
                health.failed(&name, Instant::now());
                warn!(watch = %name, error = %err, "watch failed; retrying with back-off");
            }
        })
        .default_backoff()
        .filter_map(|item| std::future::ready(item.ok().map(Ok)))
}

fn restarted_on_410<K, S, F>(
    name: String,
    make: F,
) -> impl Stream<Item = watcher::Result<watcher::Event<K>>> + Send + 'static
where
    K: Send + 'static,
    S: Stream<Item = watcher::Result<watcher::Event<K>>> + Send + 'static,
    F: Fn() -> S + Send + 'static,
{
    let stream = make().boxed();
    futures::stream::unfold(
        (stream, make, name),
        |(mut stream, make, name)| async move {
            loop {
                match stream.next().await? {
                    // kube-client reads a 410 answer to the watch request as the
                    // first (and only) item of the event stream.
                    Err(
                        watcher::Error::WatchStartFailed(kube::Error::Api(status))
                        | watcher::Error::WatchFailed(kube::Error::Api(status)),
                    ) if status.code == 410 => {
                        info!(watch = %name, message = %status.message,
                        "the API server no longer has this watch's history; listing again");
                        stream = make().boxed();
                    }
                    item => return Some((item, (stream, make, name))),
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watch_is_stalled_only_while_it_keeps_failing_past_the_bound() {
        let health = WatchHealth::default();
        let start = Instant::now();
        let bound = Duration::from_secs(60);
        health.failed("configmaps", start);
        assert!(health.stalled(bound, start).is_empty(), "just failed");
        for s in (20..=100).step_by(20) {
            health.failed("configmaps", start + Duration::from_secs(s));
        }
        let stalled = health.stalled(bound, start + Duration::from_secs(100));
        assert_eq!(
            stalled,
            [("configmaps".to_string(), Duration::from_secs(100))]
        );
        // It stopped failing and stayed quiet: recovered without an event.
        assert!(
            health
                .stalled(bound, start + Duration::from_secs(200))
                .is_empty()
        );
        // An event clears it at once.
        health.failed("configmaps", start + Duration::from_secs(201));
        health.succeeded("configmaps");
        assert!(
            health
                .stalled(Duration::ZERO, start + Duration::from_secs(202))
                .is_empty()
        );
    }
}
