//! Start-up step 2: JSON logs on standard output (one object per line, as
//! log collectors expect). The subscriber starts at `info` before the
//! configuration is read, so that a configuration error is logged as
//! JSON too, then takes the configured level.

use thesa_core::config::LogLevel;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, reload};

/// Changes the log level once the configuration is known.
pub struct LevelHandle(reload::Handle<EnvFilter, Registry>);

/// Dependencies that are chatty at debug level.
const QUIET: &str = "hyper=info,hyper_util=info,reqwest=info,h2=info,rustls=info,notify=info";

fn filter(level: &str) -> EnvFilter {
    EnvFilter::new(format!("{level},{QUIET}"))
}

/// Installs the JSON subscriber at `info`.
pub fn init() -> LevelHandle {
    let (filter, handle) = reload::Layer::new(filter("info"));
    let json = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false);
    tracing_subscriber::registry()
        .with(filter)
        .with(json)
        .init();
    LevelHandle(handle)
}

impl LevelHandle {
    /// Applies `observability.log_level`.
    pub fn set(&self, level: LogLevel) {
        let level = match level {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        };
        let _ = self.0.modify(|f| *f = filter(level));
    }
}
