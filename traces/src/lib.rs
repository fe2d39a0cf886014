//! OpenTelemetry traces of thesa-bff (`observability.tracing`) and
//! thesa-operator (`--otlp-endpoint`): spans of `tracing` are exported over
//! OTLP (gRPC or HTTP/protobuf) by the official crates.
//!
//! The `tracing-opentelemetry` layer is installed with the log subscriber,
//! before the configuration is read, and stays off (a dynamic filter) until
//! [`Traces::start`] turns it on; with tracing disabled spans cost what
//! they cost before.
//!
//! Sampling: `ParentBased(TraceIdRatioBased(sampling_rate))` — an incoming
//! `traceparent` decides for its trace, else the trace ID's ratio. With
//! `force_sample_errors`, traces the ratio drops are still *recorded* (not
//! sampled: the `traceparent` sent on says so) and held in memory until
//! their local root span (the request) ends; when that ends with an error
//! status (a 5xx answer) the whole trace is exported, else it is dropped.
//! The cost is recording every request's spans, about what sampling 1.0
//! costs without the export (see BENCHMARKS.md).
//!
//! Export never slows a request: ended spans go into a bounded queue
//! (`queue_size`) with `try_send`; a full queue drops the span and counts
//! it (the program's [`Dropped`] callback, reason `queue_full`). A
//! background task sends batches of up to 512 spans, at least every
//! second, each export bounded by 3 s; failed exports count their spans as
//! dropped (`export_failed`). At shutdown the queue is closed and drained
//! within 5 s.
//!
//! Record-only spans are *not* exported by the batch processor of
//! `opentelemetry_sdk`, and it counts no drops a program can read; so the
//! queue and its processor are this crate's own, around the official
//! exporter.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{
    Link, SamplingDecision, SamplingResult, SpanId, SpanKind, Status, TraceContextExt, TraceId,
    TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    Sampler, SdkTracerProvider, ShouldSample, SpanData, SpanExporter, SpanProcessor,
};
use thesa_core::config::{OtlpProtocol, TraceExporter, TracingConfig};
use tokio::sync::mpsc;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::filter_fn;

/// Counts spans not exported, by reason (`queue_full`, `export_failed`).
pub type Dropped = Arc<dyn Fn(&'static str, u64) + Send + Sync>;

/// Whether spans go to OpenTelemetry (set once tracing is started).
static ON: AtomicBool = AtomicBool::new(false);

/// Most spans per export.
const MAX_BATCH: usize = 512;
/// Longest a span waits for a batch to fill.
const BATCH_DELAY: Duration = Duration::from_secs(1);
/// Most time one export may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(3);
/// Most spans of record-only traces held while their request runs.
const MAX_PENDING: usize = 10_000;

/// The tracer provider and the export queue, shared by the layer and the
/// server.
#[derive(Debug, Clone)]
pub struct Traces {
    provider: SdkTracerProvider,
    sampling: Arc<OnceLock<Decide>>,
    queue: Arc<Queue>,
}

/// The `tracing` layer that turns the spans and events `wanted` accepts
/// into OpenTelemetry spans of `service`, off until [`Traces::start`], and
/// the handle to start it.
pub fn layer<S>(
    service: &'static str,
    wanted: fn(&tracing::Metadata<'_>) -> bool,
) -> (impl Layer<S>, Traces)
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let sampling = Arc::new(OnceLock::new());
    let queue = Arc::new(Queue::default());
    let provider = SdkTracerProvider::builder()
        .with_sampler(Sampling(sampling.clone()))
        .with_span_processor(Processor(queue.clone()))
        .with_resource(Resource::builder().with_service_name(service).build())
        .build();
    let tracer = provider.tracer(service);
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(filter_fn(move |meta| {
            ON.load(Ordering::Relaxed) && wanted(meta)
        }));
    (
        layer,
        Traces {
            provider,
            sampling,
            queue,
        },
    )
}

impl Traces {
    /// Start-up step 2: exports spans as `config` says (nothing when
    /// tracing is disabled). Must run inside the async runtime.
    pub fn start(&self, config: &TracingConfig, dropped: Dropped) -> Result<(), String> {
        if !config.enabled {
            return Ok(());
        }
        if config.exporter != TraceExporter::Otlp {
            return Err(format!(
                "observability.tracing.exporter {:?} is not supported: use otlp (Jaeger and \
                 the OpenTelemetry Collector both accept it)",
                config.exporter
            ));
        }
        let exporter = exporter(config)?;
        let rate = config.sampling_rate.clamp(0.0, 1.0);
        let _ = self.sampling.set(Decide {
            sampler: Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(rate))),
            record_unsampled: config.force_sample_errors,
        });
        let (sender, receiver) = mpsc::channel(config.queue_size.max(1) as usize);
        let _ = self.queue.dropped.set(dropped.clone());
        *lock(&self.queue.sender) = Some(sender);
        let task = tokio::spawn(export_loop(exporter, receiver, dropped));
        *lock(&self.queue.task) = Some(task);
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        ON.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Exports what is queued and stops, within `limit`.
    pub async fn shutdown(&self, limit: Duration) {
        ON.store(false, Ordering::Relaxed);
        // Spans still open end into a closed queue and are dropped.
        lock(&self.queue.sender).take();
        let task = lock(&self.queue.task).take();
        if let Some(task) = task {
            if tokio::time::timeout(limit, task).await.is_err() {
                tracing::warn!(
                    limit_s = limit.as_secs(),
                    "spans still unexported at the shutdown deadline; dropped"
                );
            }
        }
        let _ = self.provider.shutdown();
    }
}

/// The collector URL of `config`: `http://` added to an address without
/// a scheme, the protocol's default port on localhost when unset, and for
/// HTTP/protobuf `/v1/traces` added to a bare address.
fn endpoint(config: &TracingConfig) -> String {
    let base = match config.endpoint.as_deref().map(str::trim) {
        Some(endpoint) if endpoint.contains("://") => endpoint.to_string(),
        Some(endpoint) if !endpoint.is_empty() => format!("http://{endpoint}"),
        _ => match config.protocol {
            OtlpProtocol::Grpc => "http://localhost:4317".into(),
            OtlpProtocol::HttpProtobuf => "http://localhost:4318".into(),
        },
    };
    match (config.protocol, base.split_once("://")) {
        (OtlpProtocol::HttpProtobuf, Some((_, rest)))
            if !rest.trim_end_matches('/').contains('/') =>
        {
            format!("{}/v1/traces", base.trim_end_matches('/'))
        }
        _ => base,
    }
}

/// The OTLP exporter of `config`.
fn exporter(config: &TracingConfig) -> Result<opentelemetry_otlp::SpanExporter, String> {
    let endpoint = endpoint(config);
    let built = match config.protocol {
        OtlpProtocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint.clone())
            .with_timeout(EXPORT_TIMEOUT)
            .build(),
        OtlpProtocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(endpoint.clone())
            .with_timeout(EXPORT_TIMEOUT)
            .build(),
    };
    built.map_err(|e| format!("observability.tracing.endpoint {endpoint:?}: {e}"))
}

/// Sends batches until the queue closes, then what is left.
async fn export_loop(
    exporter: opentelemetry_otlp::SpanExporter,
    mut receiver: mpsc::Receiver<SpanData>,
    dropped: Dropped,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut tick = tokio::time::interval(BATCH_DELAY);
    let mut failing = false;
    loop {
        tokio::select! {
            span = receiver.recv() => match span {
                Some(span) => {
                    batch.push(span);
                    if batch.len() >= MAX_BATCH {
                        export(&exporter, &mut batch, &dropped, &mut failing).await;
                    }
                }
                None => break,
            },
            _ = tick.tick() => {
                if !batch.is_empty() {
                    export(&exporter, &mut batch, &dropped, &mut failing).await;
                }
            }
        }
    }
    while !batch.is_empty() {
        let rest = batch.split_off(batch.len().min(MAX_BATCH));
        export(&exporter, &mut batch, &dropped, &mut failing).await;
        batch = rest;
    }
}

async fn export(
    exporter: &opentelemetry_otlp::SpanExporter,
    batch: &mut Vec<SpanData>,
    dropped: &Dropped,
    failing: &mut bool,
) {
    let spans = std::mem::take(batch);
    let count = spans.len() as u64;
    let outcome = tokio::time::timeout(EXPORT_TIMEOUT, exporter.export(spans)).await;
    match outcome {
        Ok(Ok(())) => {
            if *failing {
                tracing::info!("span export works again");
            }
            *failing = false;
        }
        Ok(Err(err)) => failed(dropped, count, failing, &err.to_string()),
        Err(_) => failed(dropped, count, failing, "timed out"),
    }
}

fn failed(dropped: &Dropped, count: u64, failing: &mut bool, why: &str) {
    dropped("export_failed", count);
    if !*failing {
        // Once per outage, not once per batch.
        tracing::warn!(
            error = why,
            spans = count,
            "span export failed; spans dropped"
        );
    }
    *failing = true;
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The sampler as configured.
#[derive(Debug, Clone)]
struct Decide {
    sampler: Sampler,
    record_unsampled: bool,
}

/// Drops everything until tracing starts; then the configured sampler,
/// with its drops turned into record-only when errors are kept.
#[derive(Debug, Clone)]
struct Sampling(Arc<OnceLock<Decide>>);

impl ShouldSample for Sampling {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        span_kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        let Some(decide) = self.0.get() else {
            return SamplingResult {
                decision: SamplingDecision::Drop,
                attributes: Vec::new(),
                trace_state: parent_context
                    .map(|cx| cx.span().span_context().trace_state().clone())
                    .unwrap_or_default(),
            };
        };
        let mut result = decide.sampler.should_sample(
            parent_context,
            trace_id,
            name,
            span_kind,
            attributes,
            links,
        );
        if decide.record_unsampled && result.decision == SamplingDecision::Drop {
            result.decision = SamplingDecision::RecordOnly;
        }
        result
    }
}

/// The export queue and the record-only traces waiting for their root.
#[derive(Default)]
struct Queue {
    sender: Mutex<Option<mpsc::Sender<SpanData>>>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    pending: Mutex<Pending>,
    dropped: OnceLock<Dropped>,
}

#[derive(Debug, Default)]
struct Pending {
    by_trace: HashMap<TraceId, Vec<SpanData>>,
    spans: usize,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").finish_non_exhaustive()
    }
}

impl Queue {
    fn drop_spans(&self, count: usize) {
        if let Some(dropped) = self.dropped.get() {
            dropped("queue_full", count as u64);
        }
    }

    fn send(&self, span: SpanData) {
        let sender = lock(&self.sender);
        let sent = sender.as_ref().is_some_and(|s| s.try_send(span).is_ok());
        if !sent {
            self.drop_spans(1);
        }
    }

    /// A record-only span: held until its trace's local root ends, then
    /// exported with it when the root failed.
    fn hold(&self, span: SpanData) {
        let trace = span.span_context.trace_id();
        let root = span.parent_span_id == SpanId::INVALID || span.parent_span_is_remote;
        if !root {
            let mut pending = lock(&self.pending);
            if pending.spans >= MAX_PENDING {
                // Full, most likely of spans whose root ended before them
                // (tasks outliving their request): start afresh rather
                // than keep nothing more for good.
                let held = std::mem::take(&mut *pending).spans;
                drop(pending);
                self.drop_spans(held + 1);
                return;
            }
            pending.spans += 1;
            pending.by_trace.entry(trace).or_default().push(span);
            return;
        }
        let held = {
            let mut pending = lock(&self.pending);
            let held = pending.by_trace.remove(&trace).unwrap_or_default();
            pending.spans -= held.len();
            held
        };
        if matches!(span.status, Status::Error { .. }) {
            for child in held {
                self.send(child);
            }
            self.send(span);
        }
    }
}

/// The span processor: sampled spans to the queue, record-only ones held.
#[derive(Debug)]
struct Processor(Arc<Queue>);

impl SpanProcessor for Processor {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if !ON.load(Ordering::Relaxed) {
            return;
        }
        if span.span_context.is_sampled() {
            self.0.send(span);
        } else {
            self.0.hold(span);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// Whether spans are exported (started and not shut down).
pub fn is_on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Continues the trace of an incoming `traceparent` (and `tracestate`).
pub fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    if !ON.load(Ordering::Relaxed) {
        return;
    }
    let parent =
        TraceContextPropagator::new().extract(&opentelemetry_http::HeaderExtractor(headers));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

/// Adds the `traceparent` of `span` to an outgoing request's headers.
pub fn inject(span: &tracing::Span, headers: &mut http::HeaderMap) {
    if !ON.load(Ordering::Relaxed) {
        return;
    }
    let cx = span.context();
    TraceContextPropagator::new()
        .inject_context(&cx, &mut opentelemetry_http::HeaderInjector(headers));
}

/// The trace ID of `span`, when it is traced.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    if !ON.load(Ordering::Relaxed) {
        return None;
    }
    let cx = span.context();
    let id = cx.span().span_context().trace_id();
    (id != TraceId::INVALID).then(|| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::InstrumentationScope;
    use opentelemetry::trace::{SpanContext, TraceFlags, TraceState};

    /// A record-only span of `trace`, a root when `parent` is invalid.
    fn span(trace: u128, id: u64, parent: u64, status: Status) -> SpanData {
        SpanData {
            span_context: SpanContext::new(
                TraceId::from(trace),
                SpanId::from(id),
                TraceFlags::default(),
                false,
                TraceState::default(),
            ),
            parent_span_id: SpanId::from(parent),
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: "span".into(),
            start_time: std::time::SystemTime::now(),
            end_time: std::time::SystemTime::now(),
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: Default::default(),
            links: Default::default(),
            status,
            instrumentation_scope: InstrumentationScope::builder("test").build(),
        }
    }

    #[test]
    fn record_only_traces_are_sent_whole_when_their_root_failed_and_dropped_else() {
        let queue = Queue::default();
        let (sender, mut receiver) = mpsc::channel(16);
        *lock(&queue.sender) = Some(sender);
        let failed = Status::error("502");

        queue.hold(span(1, 11, 10, Status::Unset));
        queue.hold(span(1, 10, 0, Status::Ok));
        assert!(receiver.try_recv().is_err(), "a trace that did not fail");

        queue.hold(span(2, 21, 20, Status::Unset));
        queue.hold(span(3, 31, 30, Status::Unset));
        queue.hold(span(2, 20, 0, failed));
        let sent: Vec<u64> = std::iter::from_fn(|| receiver.try_recv().ok())
            .map(|s| u64::from_be_bytes(s.span_context.span_id().to_bytes()))
            .collect();
        assert_eq!(sent, [21, 20], "the failed trace, child and root");
        assert_eq!(lock(&queue.pending).spans, 1, "trace 3 still waits");
    }

    fn config(protocol: OtlpProtocol, endpoint: Option<&str>) -> TracingConfig {
        TracingConfig {
            protocol,
            endpoint: endpoint.map(String::from),
            ..TracingConfig::default()
        }
    }

    #[test]
    fn endpoints_get_a_scheme_and_the_traces_path() {
        use OtlpProtocol::{Grpc, HttpProtobuf};
        let cases = [
            (Grpc, None, "http://localhost:4317"),
            (Grpc, Some("collector:4317"), "http://collector:4317"),
            (Grpc, Some("https://c:4317"), "https://c:4317"),
            (HttpProtobuf, None, "http://localhost:4318/v1/traces"),
            (
                HttpProtobuf,
                Some("http://c:4318/"),
                "http://c:4318/v1/traces",
            ),
            (
                HttpProtobuf,
                Some("http://c/otlp/v1/traces"),
                "http://c/otlp/v1/traces",
            ),
        ];
        for (protocol, given, expected) in cases {
            assert_eq!(endpoint(&config(protocol, given)), expected, "{given:?}");
        }
    }
}
