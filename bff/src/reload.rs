//! Hot reload (`definitions.hot_reload: true`): watches the definition
//! directories, waits until the files are quiet, validates the whole new
//! set against the loaded specs and swaps it in at once. A set with errors
//! is never served: the previous one stays, the findings are logged and
//! `thesa_definition_reload_total{status="failure"}` counts it.
//!
//! Kubernetes updates a mounted ConfigMap by writing a new hidden
//! directory and renaming the `..data` symlink onto it; the rename is an
//! event in the watched directory, so a recursive watch sees it when the
//! configured directory is the mount point (as the operator mounts it).
//! A configured path that is itself a symlink or a file replaced by a
//! rename is watched through the inode it pointed to at start-up, so later
//! swaps of it are not seen: configure the mount point.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use thesa_core::finding::Severity;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::registry::{LoadError, Registry};
use crate::state::AppState;

/// How long the files must be quiet before a reload: a ConfigMap update
/// and an editor's save both come as bursts of events.
pub const DEBOUNCE: Duration = Duration::from_millis(500);

/// Longest a burst of events may postpone a reload: files written without
/// pause are still picked up.
pub const MAX_DELAY: Duration = Duration::from_secs(5);

/// Most findings written to the log per failed reload.
const LOGGED_FINDINGS: usize = 20;

/// Starts watching; the task ends when `shutdown` turns true.
pub fn spawn(
    state: Arc<AppState>,
    directories: Vec<PathBuf>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<JoinHandle<()>, notify::Error> {
    let (events, mut changes) = mpsc::unbounded_channel();
    let mut watcher: RecommendedWatcher =
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
            Ok(event) if event.kind.is_access() => {}
            Ok(_) => {
                let _ = events.send(());
            }
            // A lost event (queue overflow, watch limit) may hide a change:
            // reload to be sure.
            Err(err) => {
                tracing::warn!(error = %err, "definition watcher error; reloading to be sure");
                let _ = events.send(());
            }
        })?;
    for directory in &directories {
        watcher.watch(directory, RecursiveMode::Recursive)?;
    }
    // Changes between the start-up load and the watch would otherwise be
    // missed until the next one; a reload of an unchanged set does nothing.
    reload(&state, &directories);
    Ok(tokio::spawn(async move {
        // Owned by the task: dropping it stops the watch.
        let _watcher = watcher;
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                event = changes.recv() => if event.is_none() { return },
            }
            // Quiet period: every further event restarts it, up to MAX_DELAY.
            let deadline = tokio::time::Instant::now() + MAX_DELAY;
            loop {
                tokio::select! {
                    _ = shutdown.changed() => return,
                    event = changes.recv() => if event.is_none() { return },
                    _ = tokio::time::sleep(DEBOUNCE) => break,
                    _ = tokio::time::sleep_until(deadline) => break,
                }
            }
            let (state, directories) = (state.clone(), directories.clone());
            // Reading and validating is blocking work.
            let _ = tokio::task::spawn_blocking(move || reload(&state, &directories)).await;
        }
    }))
}

/// Loads and validates the set under `directories` and swaps it in when it
/// is valid and differs from the one served.
pub fn reload(state: &AppState, directories: &[PathBuf]) {
    match Registry::load(directories, &state.index, &state.config.definitions) {
        Ok((registry, warnings)) => {
            let served = state.registry.load();
            if registry.checksum() == served.checksum() {
                tracing::debug!(
                    "definitions changed on disk but not in content; nothing to reload"
                );
                return;
            }
            for warning in &warnings {
                tracing::warn!(finding = %warning, "definition warning");
            }
            state.handlers.warn_missing(&registry);
            state.capabilities.use_definitions(&registry, &state.index);
            let count = registry.definitions().len();
            let checksum = registry.checksum();
            state.registry.store(Arc::new(registry));
            state.metrics.definitions_loaded.set(count as i64);
            state.metrics.reload(true);
            tracing::info!(
                definitions = count,
                checksum = %format!("sha256:{checksum}"),
                "definitions reloaded"
            );
        }
        Err(err) => {
            state.metrics.reload(false);
            if let LoadError::Invalid { findings, .. } = &err {
                for finding in findings
                    .iter()
                    .filter(|f| f.severity == Severity::Error)
                    .take(LOGGED_FINDINGS)
                {
                    tracing::error!(finding = %finding, "definition reload finding");
                }
            }
            tracing::error!(
                error = %err,
                "definition reload failed; still serving the previous definitions"
            );
        }
    }
}
