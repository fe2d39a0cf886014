//! The one shared state of the server, passed to handlers with `State`.

use std::sync::atomic::AtomicBool;

use arc_swap::ArcSwap;
use thesa_core::config::Config;
use thesa_core::openapi::OperationIndex;

use crate::access::auth::Authenticator;
use crate::access::capabilities::Capabilities;
use crate::backends::invoker::Invoker;
use crate::features::analytics::Analytics;
use crate::features::badges::BadgeCache;
use crate::features::handlers::Handlers;
use crate::features::idempotency::Store;
use crate::features::lookups::LookupCache;
use crate::features::views::ViewCache;
use crate::metrics::Metrics;
use crate::registry::Registry;

/// Version and commit baked in at build time (`THESA_BUILD_VERSION`,
/// `THESA_BUILD_COMMIT`, else the crate version and `git rev-parse`).
#[derive(Debug, Clone, Copy)]
pub struct Build {
    /// Release version.
    pub version: &'static str,
    /// Source commit.
    pub commit: &'static str,
}

/// This binary's build.
pub const BUILD: Build = Build {
    version: env!("THESA_VERSION"),
    commit: env!("THESA_COMMIT"),
};

/// Everything handlers and middleware share.
#[derive(Debug)]
pub struct AppState {
    /// The effective configuration.
    pub config: Config,
    /// Operations of the loaded specs (specs are not reloaded).
    pub index: OperationIndex,
    /// The definitions being served; hot reload swaps it whole.
    pub registry: ArcSwap<Registry>,
    /// Token verification.
    pub auth: Authenticator,
    /// Capability resolution.
    pub capabilities: Capabilities,
    /// Backend calls.
    pub invoker: Invoker,
    /// Registered SDK handlers.
    pub handlers: Handlers,
    /// Cached lookup options.
    pub lookups: LookupCache,
    /// Recent badge values.
    pub badges: BadgeCache,
    /// Idempotency keys of commands (`None` when `idempotency.enabled` is
    /// off: commands then run without keys).
    pub idempotency: Option<Store>,
    /// Counts of commands' rate limits (`None` when `rate_limit.enabled`
    /// is off).
    pub rate_limits: Option<crate::features::rate_limit::Limiter>,
    /// Workflow instances (memory when workflows are off: never used).
    pub workflows: crate::features::workflow::store::Store,
    /// The analytics query API over the metrics backend.
    pub analytics: Analytics,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Rendered metadata views.
    pub views: ViewCache,
    /// Set when shutdown begins: readiness fails so no new traffic comes.
    pub draining: AtomicBool,
}
