//! Start-up step 2: JSON logs on standard output (one object per line, as
//! log collectors expect). The subscriber starts at `info` before the
//! configuration is read, so that a configuration error is logged as
//! JSON too, then takes the configured level. The OpenTelemetry layer is
//! installed with it, off until the configuration turns traces on (see
//! `traces`).
//!
//! A line is `timestamp`, `level`, `message`, the event's fields, and,
//! for lines written while a request is served, the request's
//! `correlation_id` and (when it is traced) `trace_id`. The log layer sees
//! events only, never spans: spans exist for the trace export (none are
//! made while it is off), and keeping their fields formatted for the logs
//! was a tenth of a request's CPU time (BENCHMARKS.md).

use std::fmt::Write as _;

use thesa_core::config::LogLevel;

use thesa_traces::Traces;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

use crate::error::{CORRELATION_ID, TRACE_ID};

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
/// background thread, so a slow log collector does not stall requests;
/// when its queue is full, callers wait rather than lines being dropped.
/// The thread writes what is queued in one system call and flushes when
/// the queue is empty (standard output alone would write each line on
/// its own: a system call per request).
pub fn init() -> LevelHandle {
    let (filter, handle) = reload::Layer::new(filter("info"));
    let (writer, guard) =
        NonBlockingBuilder::default()
            .lossy(false)
            .finish(std::io::BufWriter::with_capacity(
                64 * 1024,
                std::io::stdout(),
            ));
    let json = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .event_format(JsonLine)
        .with_filter(filter_fn(|meta| meta.is_event()));
    let (otel, traces) = thesa_traces::layer("thesa-bff", |_| true);
    tracing_subscriber::registry()
        .with(filter)
        // Spans serve the trace export only: none at all while it is off.
        .with(filter_fn(|meta| meta.is_event() || thesa_traces::is_on()))
        .with(otel)
        .with(json)
        .init();
    LevelHandle {
        filter: handle,
        traces,
        _flush_on_drop: guard,
    }
}

/// The JSON line of an event (see the module doc).
struct JsonLine;

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut line = String::with_capacity(256);
        line.push_str("{\"timestamp\":\"");
        SystemTime.format_time(&mut Writer::new(&mut line))?;
        line.push_str("\",\"level\":\"");
        line.push_str(event.metadata().level().as_str());
        line.push('"');
        let mut fields = JsonFields(&mut line);
        event.record(&mut fields);
        let own = |name: &str| event.metadata().fields().field(name).is_some();
        if !own("correlation_id") {
            let _ = CORRELATION_ID.try_with(|id| push_field(&mut line, "correlation_id", id));
        }
        if !own("trace_id") {
            let _ = TRACE_ID.try_with(|id| {
                if !id.is_empty() {
                    push_field(&mut line, "trace_id", id);
                }
            });
        }
        line.push_str("}\n");
        writer.write_str(&line)
    }
}

/// `,"name":"value"` with the value as a JSON string.
fn push_field(line: &mut String, name: &str, value: &str) {
    line.push(',');
    push_str(line, name);
    line.push(':');
    push_str(line, value);
}

/// A JSON string (serde_json escapes it).
fn push_str(line: &mut String, text: &str) {
    // Writing a str into a String cannot fail.
    let _ = serde_json::to_writer(StringWriter(line), text);
}

/// `io::Write` into a `String`, for serde_json (which writes UTF-8 only).
struct StringWriter<'a>(&'a mut String);

impl std::io::Write for StringWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = std::str::from_utf8(buf).map_err(std::io::Error::other)?;
        self.0.push_str(text);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes each field of an event as `,"name":value`: numbers and booleans
/// as JSON numbers and booleans, anything else as a string.
struct JsonFields<'a>(&'a mut String);

impl JsonFields<'_> {
    fn raw(&mut self, field: &Field, value: std::fmt::Arguments<'_>) {
        self.0.push(',');
        push_str(self.0, field.name());
        self.0.push(':');
        let _ = self.0.write_fmt(value);
    }
}

impl Visit for JsonFields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        push_field(self.0, field.name(), value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        push_field(self.0, field.name(), &format!("{value:?}"));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        push_field(self.0, field.name(), &value.to_string());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.raw(field, format_args!("{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.raw(field, format_args!("{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.raw(field, format_args!("{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.raw(field, format_args!("{value}"));
        } else {
            push_field(self.0, field.name(), &value.to_string());
        }
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
