//! `thesa-bff serve`: the start-up sequence of Thesa's deployment guide
//! (fail fast: any step that fails ends the process with exit 1 and one
//! log line saying why), then serving until SIGTERM or SIGINT, then the
//! graceful shutdown (stop accepting, drain up to
//! `server.shutdown_timeout`, stop background tasks, exit 0).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use thesa_core::config::{Config, ServerConfig, WorkflowDriver};
use thesa_core::finding::{Finding, Severity};
use thesa_core::openapi::OperationIndex;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::watch;

use crate::access::auth::Authenticator;
use crate::access::capabilities::Capabilities;
use crate::backends::invoker::Invoker;
use crate::backends::outbound;
use crate::features::analytics::Analytics;
use crate::features::handlers::Handlers;
use crate::features::idempotency;
use crate::features::lookups::LookupCache;
use crate::features::rate_limit::Limiter;
use crate::features::views::ViewCache;
use crate::features::workflow;
use crate::features::workflow::store::Store as WorkflowStore;
use crate::http::{limits, routes};
use crate::metrics::{Metrics, ReasonLabel};
use crate::registry::{LoadError, Registry};
use crate::settings;
use crate::state::{AppState, BUILD};
use crate::{reload, sources, telemetry};

/// Most time background tasks get to stop after the drain.
const BACKGROUND_STOP: Duration = Duration::from_secs(5);

/// Most time queued spans get to reach the collector at shutdown.
const TRACE_FLUSH: Duration = Duration::from_secs(5);

/// A start-up step that failed: which, and why.
#[derive(Debug)]
struct Failed {
    step: &'static str,
    error: String,
}

fn failed(step: &'static str) -> impl FnOnce(String) -> Failed {
    move |error| Failed { step, error }
}

/// Options of `thesa-bff serve`.
#[derive(Debug, Default, clap::Args)]
pub struct ServeArgs {
    /// Also start a sample backend for every spec whose service's base_url
    /// is http://127.0.0.1:PORT or http://localhost:PORT (development only:
    /// data in memory, seeded from the spec's schemas; `make run` uses it)
    #[arg(long)]
    pub sample_backends: bool,

    /// Set by `thesa-bff preview`: its definitions, specs and port.
    #[arg(skip)]
    pub preview: Option<crate::preview::command::PreviewArgs>,
}

/// Runs the server; the exit code is 0 after a clean shutdown, 1 when
/// start-up fails.
pub fn run(config_path: Option<PathBuf>, args: ServeArgs) -> ExitCode {
    let started = Instant::now();
    let level = telemetry::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!(error = %err, "start-up failed: cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async move {
        match start(config_path.as_deref(), &args, &level, started).await {
            Ok(server) => {
                let code = server.serve().await;
                // The guide's "flush the span exporter" (at most 5 s).
                level.traces().shutdown(TRACE_FLUSH).await;
                code
            }
            Err(Failed { step, error }) => {
                tracing::error!(step, error = %error, "start-up failed: {step}: {error}");
                ExitCode::FAILURE
            }
        }
    });
    // A reload still running on a blocking thread must not hold the exit.
    runtime.shutdown_timeout(BACKGROUND_STOP);
    code
}

/// A started server, listening and ready.
struct Server {
    state: Arc<AppState>,
    app: axum::Router,
    signals: Signals,
    listener: tokio::net::TcpListener,
    background: Vec<tokio::task::JoinHandle<()>>,
    stop_background: watch::Sender<bool>,
}

fn first_errors(findings: &[Finding]) -> String {
    let errors: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    settings::summary(&errors)
}

async fn start(
    config_path: Option<&Path>,
    args: &ServeArgs,
    level: &telemetry::LevelHandle,
    started: Instant,
) -> Result<Server, Failed> {
    // 1. Configuration.
    let settings = settings::load(config_path, std::env::vars())
        .map_err(|err| failed("configuration")(err.to_string()))?;
    let mut config = settings.config;
    if let Some(preview) = &args.preview {
        preview
            .apply(&mut config)
            .map_err(failed("configuration"))?;
    }
    let config = config;

    // 2. Telemetry.
    level.set(config.observability.log_level);
    let metrics = Metrics::new(BUILD.version, BUILD.commit);
    tracing::info!(
        version = BUILD.version,
        commit = BUILD.commit,
        config = settings.source,
        overrides = ?settings.overrides,
        "starting thesa-bff"
    );
    for variable in &settings.ignored {
        tracing::warn!(
            variable,
            "environment variable ignored: it is not a configuration path"
        );
    }
    level
        .traces()
        .start(&config.observability.tracing, {
            let dropped = metrics.trace_spans_dropped.clone();
            Arc::new(move |reason, count| {
                dropped.get_or_create(&ReasonLabel { reason }).inc_by(count);
            })
        })
        .map_err(failed("tracing"))?;
    if config.observability.tracing.enabled {
        let tracing = &config.observability.tracing;
        tracing::info!(
            endpoint = tracing.endpoint.as_deref().unwrap_or("default"),
            protocol = ?tracing.protocol,
            sampling_rate = tracing.sampling_rate,
            force_sample_errors = tracing.force_sample_errors,
            "trace export started"
        );
    }

    if config.server.preview {
        crate::preview::check(&config).map_err(failed("configuration"))?;
    }

    // 3. OpenAPI specs.
    let config_source = (settings.source.as_str(), &config);
    let spec_dir = PathBuf::from(&config.specs.directory);
    let inputs = sources::spec_inputs(&spec_dir, Some(config_source))
        .map_err(|e| failed("openapi specs")(e.to_string()))?;
    if args.sample_backends {
        crate::samples::start(&config, &inputs)
            .await
            .map_err(failed("sample backends"))?;
    }
    let mut findings = Vec::new();
    let index = OperationIndex::build(inputs, &mut findings);
    if findings.iter().any(|f| f.severity == Severity::Error) {
        return Err(failed("openapi specs")(first_errors(&findings)));
    }
    tracing::info!(
        services = index.services().count(),
        operations = index.operation_count(),
        "openapi specs loaded"
    );

    // 4. Definitions.
    let directories: Vec<PathBuf> = config
        .definitions
        .directories
        .iter()
        .map(PathBuf::from)
        .collect();
    let (registry, warnings) =
        Registry::load(&directories, &index, &config.definitions).map_err(|err| match &err {
            LoadError::Invalid { findings, .. } => {
                failed("definitions")(format!("{err}; all errors: {}", first_errors(findings)))
            }
            LoadError::Source(_) => failed("definitions")(err.to_string()),
        })?;
    for warning in &warnings {
        tracing::warn!(finding = %warning, "definition warning");
    }
    for served in registry.definitions() {
        tracing::info!(
            domain = served.definition.domain,
            version = served.definition.version,
            source = served.source,
            checksum = %format!("sha256:{}", served.checksum),
            "definition loaded"
        );
    }
    tracing::info!(
        definitions = registry.definitions().len(),
        checksum = %format!("sha256:{}", registry.checksum()),
        "definitions loaded"
    );
    metrics
        .definitions_loaded
        .set(registry.definitions().len() as i64);

    // 5. Identity and capability system.
    let http = outbound::client().map_err(|e| failed("http client")(e.to_string()))?;
    let auth = Authenticator::new(&config.identity, http.clone())
        .await
        .map_err(|e| failed("identity")(e.to_string()))?;
    let capabilities =
        Capabilities::new(&config.capability, &config.services, http.clone(), &metrics)
            .await
            .map_err(|e| failed("capability system")(e.to_string()))?;
    capabilities.use_definitions(&registry, &index);

    // 6. Workflow store (PostgreSQL is connected, pinged and migrated now:
    // the guide's "database unreachable → exit 1").
    let workflows = workflow_store(&config)
        .await
        .map_err(failed("workflow store"))?;

    // 8. SDK handlers: those whose settings are present are registered; a
    // definition naming one that is not gets a warning, not a failure.
    let handlers = Handlers::new(&config, http.clone(), |name| std::env::var(name).ok());
    let handler_names: Vec<&str> = handlers.names().collect();
    tracing::info!(handlers = ?handler_names, "SDK handlers registered");
    handlers.warn_missing(&registry);

    // 9.-10. Service layer and router.
    let invoker =
        Invoker::new(&config, http.clone(), &metrics).map_err(failed("backend services"))?;
    // 7. Idempotency store (Redis is connected now: without it commands
    // with keys cannot run safely).
    let idempotency = if config.idempotency.enabled {
        let store = idempotency::Store::new(&config.idempotency)
            .await
            .map_err(failed("idempotency store"))?;
        Some(store)
    } else {
        None
    };
    // Rate limits (Redis is connected now, like the idempotency store).
    let rate_limits = if config.rate_limit.enabled {
        Some(
            Limiter::new(&config.rate_limit)
                .await
                .map_err(failed("rate limit store"))?,
        )
    } else {
        None
    };
    let lookups = LookupCache::new(&config.lookup);
    // The analytics API: without a backend URL its routes answer 503.
    let analytics_token = std::env::var(&config.analytics.token_env)
        .ok()
        .filter(|t| !t.trim().is_empty());
    let analytics = Analytics::new(&config.analytics, http.clone(), analytics_token, &metrics)
        .map_err(failed("analytics"))?;
    if !analytics.is_configured() {
        tracing::info!("analytics.prometheus_url is not set: the analytics routes answer 503");
    }
    let state = Arc::new(AppState {
        config,
        index,
        registry: ArcSwap::from_pointee(registry),
        auth,
        capabilities,
        invoker,
        handlers,
        lookups,
        badges: Default::default(),
        idempotency,
        rate_limits,
        workflows,
        analytics,
        metrics,
        views: ViewCache::default(),
        draining: AtomicBool::new(false),
    });

    let app = routes::router(state.clone()).map_err(failed("router"))?;
    let app = if state.config.server.preview {
        tracing::info!("preview page at /preview/ (development only)");
        app.merge(crate::preview::router(state.clone()))
    } else {
        app
    };

    // 11. Background tasks. (The capability cache expires entries itself.)
    let (stop_background, stopped) = watch::channel(false);
    let mut background = Vec::new();
    if state.config.definitions.hot_reload {
        let watcher = reload::spawn(state.clone(), directories, stopped.clone())
            .map_err(|e| failed("definition watcher")(e.to_string()))?;
        background.push(watcher);
    }
    if state.config.workflow.enabled {
        background.push(workflow::processor::spawn(state.clone(), stopped.clone()));
    }

    // 12. Listen, with the signal handlers in place first so that a
    // SIGTERM from here on is a graceful shutdown.
    let signals = Signals::new().map_err(|e| failed("signal handlers")(e.to_string()))?;
    let address = SocketAddr::from((Ipv4Addr::UNSPECIFIED, state.config.server.port));
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| failed("listen")(format!("cannot listen on {address}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| failed("listen")(e.to_string()))?;
    // 13. Ready: the probes answer from here on.
    tracing::info!(
        port = local.port(),
        address = %local,
        version = BUILD.version,
        commit = BUILD.commit,
        startup_ms = started.elapsed().as_millis() as u64,
        hot_reload = state.config.definitions.hot_reload,
        "server started"
    );
    Ok(Server {
        state,
        app,
        signals,
        listener,
        background,
        stop_background,
    })
}

/// The workflow store: PostgreSQL (DSN from the variable `dsn_env` names)
/// when workflows are on with that driver, else memory.
async fn workflow_store(config: &Config) -> Result<WorkflowStore, String> {
    let store = &config.workflow.store;
    if !config.workflow.enabled || store.driver == WorkflowDriver::Memory {
        return Ok(WorkflowStore::Memory(Default::default()));
    }
    let dsn = std::env::var(&store.dsn_env)
        .ok()
        .filter(|d| !d.trim().is_empty())
        .ok_or_else(|| {
            format!(
                "workflow.store.driver is postgres but {} (workflow.store.dsn_env) is not set",
                store.dsn_env
            )
        })?;
    let started = Instant::now();
    let connected = WorkflowStore::postgres(store, &dsn)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(
        driver = "postgres",
        migrated = store.auto_migrate,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "workflow store connected"
    );
    Ok(connected)
}

impl Server {
    async fn serve(self) -> ExitCode {
        let Self {
            state,
            app,
            mut signals,
            listener,
            background,
            stop_background,
        } = self;
        let (signalled_tx, signalled) = watch::channel(false);
        let draining_state = state.clone();
        tokio::spawn(async move {
            signals.next().await;
            tracing::info!("shutdown initiated");
            draining_state.draining.store(true, Ordering::Relaxed);
            let _ = signalled_tx.send(true);
            signals.next().await;
            tracing::warn!("second signal during shutdown; exiting without draining");
            std::process::exit(1);
        });
        let connections = accept(listener, app, &state.config.server, signalled).await;

        // Draining: in-flight requests get `shutdown_timeout`; idle
        // keep-alive connections close at once.
        let limit = state.config.server.shutdown_timeout.get();
        if tokio::time::timeout(limit, connections.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                timeout_s = limit.as_secs(),
                "requests still in flight at the shutdown deadline; closing them"
            );
        }

        let _ = stop_background.send(true);
        for task in background {
            if tokio::time::timeout(BACKGROUND_STOP, task).await.is_err() {
                tracing::warn!("a background task did not stop in time");
            }
        }
        state.workflows.close().await;
        // Other pools (the HTTP client's) close when the state is dropped.
        drop(state);
        tracing::info!("shutdown complete");
        ExitCode::SUCCESS
    }
}

/// Accepts connections until `stop` turns true, then closes the listener
/// and returns the open connections for draining. Each connection gets
/// `read_timeout` to send its request headers, so a client that trickles
/// them (or never sends any) cannot hold a connection, nor the shutdown,
/// for long; heads past `max_header_bytes` or `max_headers` are answered
/// 431.
async fn accept(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    config: &ServerConfig,
    mut stop: watch::Receiver<bool>,
) -> GracefulShutdown {
    let connections = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.read_timeout.get());
    limits::http1(&mut http, config);
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(err) => {
                        // Out of file descriptors and the like: wait, retry.
                        tracing::warn!(error = %err, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let service = TowerToHyperService::new(app.clone());
                let connection = http.serve_connection(TokioIo::new(stream), service);
                let connection = connections.watch(connection);
                tokio::spawn(async move {
                    // Client resets and timeouts end a connection; nothing to do.
                    let _ = connection.await;
                });
            }
        }
    }
    connections
}

/// SIGTERM (Kubernetes) and SIGINT (Ctrl-C), registered when created.
struct Signals {
    terminate: Signal,
    interrupt: Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        Ok(Self {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    /// The next SIGTERM or SIGINT.
    async fn next(&mut self) {
        tokio::select! {
            _ = self.terminate.recv() => {}
            _ = self.interrupt.recv() => {}
        }
    }
}
