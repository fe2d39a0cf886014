//! Start-up step 2: JSON logs on standard output (one object per line, as
//! log collectors expect). The subscriber starts at `info` before the
//! configuration is read, so that a configuration error is logged as
//! JSON too, then takes the configured level. The OpenTelemetry layer is
//! installed with it, off until the configuration turns traces on (see
//! `traces`).

use thesa_core::config::LogLevel;

use thesa_traces::Traces;
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, reload};

/// Changes the log level once the configuration is known; dropping it
/// flushes the log lines still queued (the guide's "flush log buffers").
pub struct LevelHandle {
    filter: reload::Handle<EnvFilter, Registry>,
    traces: Traces,
    _flush_on_drop: WorkerGuard,
}

/// Dependencies that are chatty at debug level.
const QUIET: &str = "hyper=info,hyper_util=info,reqwest=info,h2=info,rustls=info,notify=info";

fn filter(level: &str) -> EnvFilter {
    EnvFilter::new(format!("{level},{QUIET}"))
}

/// Installs the JSON subscriber at `info`. Lines are written by a
/// background thread, so a slow log collector does not stall requests and
/// writes are batched under load; when its queue is full, callers wait
/// rather than lines being dropped.
pub fn init() -> LevelHandle {
    let (filter, handle) = reload::Layer::new(filter("info"));
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::stdout());
    let json = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false);
    let (otel, traces) = thesa_traces::layer("thesa-bff", |_| true);
    tracing_subscriber::registry()
        .with(filter)
        .with(otel)
        .with(json)
        .init();
    LevelHandle {
        filter: handle,
        traces,
        _flush_on_drop: guard,
    }
}

impl LevelHandle {
    /// The trace export (off until started with the configuration).
    pub fn traces(&self) -> &Traces {
        &self.traces
    }

    /// Applies `observability.log_level`.
    pub fn set(&self, level: LogLevel) {
        let level = match level {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        };
        let _ = self.filter.modify(|f| *f = filter(level));
    }
}
