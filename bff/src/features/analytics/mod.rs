//! The analytics query API of the original Thesa's admin console:
//! `POST /api/analytics/query/{scalar,timeseries,grouped,topn}` with
//! `{metric, aggregation, filters, group_by, limit, time_range {start,
//! end}, step, partition_ids}`, answered from a Prometheus-compatible API
//! (`analytics.prometheus_url`).
//!
//! Every query is the caller's: the tenant matcher comes from the token,
//! the partition matcher from the token's partitions (`partition_ids`
//! may only narrow them; `["*"]` is all of them), and filters on those
//! labels (or on Prometheus's own `__…` labels) are dropped, whatever
//! their spelling (`tenant.id`). Metric names must match
//! `analytics.allowed_metrics` as sent, then map to Prometheus names as
//! OpenTelemetry does (`rpc.server.duration` → `rpc_server_duration`).
//!
//! Errors are `{"error": "<text>"}` (the shape the console reads): 400 for
//! the request, 403 for the scope, 502/504 for the backend, 503 when no
//! backend is configured. Answers are cached for `analytics.cache.ttl` by
//! tenant, partitions, expression and times (to the minute).

pub mod prometheus;
pub mod promql;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use moka::sync::Cache;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use regex::RegexSet;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use thesa_core::config::AnalyticsConfig;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::access::Caller;
use crate::metrics::{Metrics, ReasonLabel};
use prometheus::{BackendError, Prometheus, Series};
use promql::{Aggregation, Scope, Shape};

/// The window when `time_range` is absent, as in the original.
const DEFAULT_RANGE: i64 = 30 * 86_400;
/// `limit` when absent or not positive.
const DEFAULT_LIMIT: i64 = 10;
/// Largest `limit`.
const MAX_LIMIT: i64 = 1000;
/// Most points per series of a time series (Prometheus refuses more than
/// 11,000).
const MAX_POINTS: i64 = 11_000;
/// Most filters per query.
const MAX_FILTERS: usize = 32;

/// The four query kinds, by route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// One number: `{"value": n}`.
    Scalar,
    /// Points over time: `{"points": [{timestamp, value, label?}]}`.
    Timeseries,
    /// Values by a label: `{"segments": [{label, value}]}`.
    Grouped,
    /// The largest values by a label: `{"items": [{label, value}]}`.
    Topn,
}

/// An analytics error: `{"error": "<text>"}` with its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalyticsError {
    /// HTTP status.
    pub status: StatusCode,
    /// What is wrong, for people.
    pub message: String,
}

impl AnalyticsError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }
}

impl IntoResponse for AnalyticsError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

/// The request body; unknown fields (the legacy console's `start`, `end`,
/// `granularity`) are ignored.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct Request {
    metric: String,
    aggregation: String,
    filters: BTreeMap<String, Value>,
    group_by: Option<String>,
    limit: Option<i64>,
    time_range: Option<TimeRange>,
    step: Option<String>,
    partition_ids: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct TimeRange {
    start: Option<String>,
    end: Option<String>,
}

/// The analytics engine: the backend, the allowlist and the answer cache.
#[derive(Debug)]
pub struct Analytics {
    backend: Option<Prometheus>,
    allowed: RegexSet,
    tenant_label: String,
    partition_label: String,
    cache: Option<Cache<[u8; 32], Arc<Value>>>,
    cache_hits: Counter,
    cache_misses: Counter,
    backend_duration: Histogram,
    backend_failures: Family<ReasonLabel, Counter>,
}

/// A validated query, ready to be sent.
#[derive(Debug, Clone, PartialEq)]
struct Prepared {
    kind: Kind,
    expression: String,
    start: i64,
    end: i64,
    /// Seconds between points (time series only).
    step: u64,
    /// The `group_by` label (sanitized), when the answer is by label.
    label: Option<String>,
    limit: usize,
}

impl Analytics {
    /// The engine of `config`; an error names the setting that is wrong.
    /// `token` is the bearer token for the backend, when one is set.
    pub fn new(
        config: &AnalyticsConfig,
        http: reqwest::Client,
        token: Option<String>,
        metrics: &Metrics,
    ) -> Result<Self, String> {
        let allowed = RegexSet::new(&config.allowed_metrics)
            .map_err(|e| format!("analytics.allowed_metrics: not a regular expression: {e}"))?;
        for (key, label) in [
            ("tenant_label", &config.tenant_label),
            ("partition_label", &config.partition_label),
        ] {
            if label.is_empty() || promql::label_name(label) != *label || label.starts_with("__") {
                return Err(format!(
                    "analytics.{key}: {label:?} is not a label name (letters, digits and _, \
                     not starting with a digit or __)"
                ));
            }
        }
        let backend = match config.prometheus_url.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(url) => {
                let parsed = reqwest::Url::parse(url)
                    .map_err(|e| format!("analytics.prometheus_url {url:?}: {e}"))?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(format!(
                        "analytics.prometheus_url {url:?}: must be an http or https URL"
                    ));
                }
                Some(Prometheus::new(http, url, token, config.timeout.get()))
            }
        };
        let ttl = config.cache.ttl.get();
        Ok(Self {
            backend,
            allowed,
            tenant_label: config.tenant_label.clone(),
            partition_label: config.partition_label.clone(),
            cache: (!ttl.is_zero() && config.cache.max_entries > 0).then(|| {
                Cache::builder()
                    .max_capacity(config.cache.max_entries)
                    .time_to_live(ttl)
                    .build()
            }),
            cache_hits: metrics.analytics_cache_hits.clone(),
            cache_misses: metrics.analytics_cache_misses.clone(),
            backend_duration: metrics.analytics_backend_duration.clone(),
            backend_failures: metrics.analytics_backend_failures.clone(),
        })
    }

    /// Whether a backend is configured (readiness checks it when it is).
    pub fn is_configured(&self) -> bool {
        self.backend.is_some()
    }

    /// Whether the backend answers (readiness).
    pub async fn ping(&self) -> Result<(), BackendError> {
        match &self.backend {
            Some(backend) => backend.ping().await,
            None => Ok(()),
        }
    }

    /// Answers a query of `kind` with the JSON `body` for `caller`.
    pub async fn query(
        &self,
        kind: Kind,
        body: &[u8],
        caller: &Caller,
    ) -> Result<Value, AnalyticsError> {
        let prepared = self.prepare(kind, body, caller, OffsetDateTime::now_utc())?;
        let Some(backend) = &self.backend else {
            return Err(AnalyticsError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "analytics is not configured on this BFF: set analytics.prometheus_url \
                 (THESA_ANALYTICS_PROMETHEUS_URL) to a Prometheus-compatible API",
            ));
        };
        let key = cache_key(&prepared, &caller.principal.tenant);
        if let Some(answer) = self.cache.as_ref().and_then(|c| c.get(&key)) {
            self.cache_hits.inc();
            return Ok((*answer).clone());
        }
        self.cache_misses.inc();
        let started = Instant::now();
        let series = match prepared.kind {
            Kind::Timeseries => {
                backend
                    .range(
                        &prepared.expression,
                        prepared.start as f64,
                        prepared.end as f64,
                        prepared.step,
                    )
                    .await
            }
            _ => {
                backend
                    .instant(&prepared.expression, prepared.end as f64)
                    .await
            }
        };
        self.backend_duration
            .observe(started.elapsed().as_secs_f64());
        let series = series.map_err(|err| {
            self.backend_failures
                .get_or_create(&ReasonLabel {
                    reason: err.reason(),
                })
                .inc();
            tracing::warn!(error = %err, query = prepared.expression, "analytics backend failed");
            backend_error(&err)
        })?;
        let answer = Arc::new(answer(&prepared, series));
        if let Some(cache) = &self.cache {
            cache.insert(key, answer.clone());
        }
        Ok((*answer).clone())
    }

    /// Validates the request and builds its expression, in the order the
    /// original checks: body, aggregation, metric, `group_by`, times,
    /// step, limit, scope.
    fn prepare(
        &self,
        kind: Kind,
        body: &[u8],
        caller: &Caller,
        now: OffsetDateTime,
    ) -> Result<Prepared, AnalyticsError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(AnalyticsError::bad(
                "invalid request body: empty; send {\"metric\": \"...\", \"aggregation\": \"sum\", ...}",
            ));
        }
        let request: Request = serde_json::from_slice(body)
            .map_err(|e| AnalyticsError::bad(format!("invalid request body: {e}")))?;
        let aggregation = Aggregation::parse(&request.aggregation).ok_or_else(|| {
            AnalyticsError::bad(format!(
                "invalid aggregation {:?}: use sum, avg, count, count_distinct or gauge",
                request.aggregation
            ))
        })?;
        if request.metric.trim().is_empty() {
            return Err(AnalyticsError::bad(
                "metric not allowed: metric name is required",
            ));
        }
        if !self.allowed.is_match(&request.metric) {
            return Err(AnalyticsError::bad(format!(
                "metric not allowed: {:?} matches none of analytics.allowed_metrics",
                request.metric
            )));
        }
        let metric = promql::metric_name(&request.metric);
        let group_by = request
            .group_by
            .as_deref()
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .map(promql::label_name);
        if matches!(kind, Kind::Grouped | Kind::Topn) && group_by.is_none() {
            return Err(AnalyticsError::bad("missing required field: group_by"));
        }
        let (start, end) = time_range(request.time_range.as_ref(), now)?;
        let step = match kind {
            Kind::Timeseries => {
                let name = request.step.as_deref().unwrap_or_default();
                let step = granularity(name).ok_or_else(|| {
                    AnalyticsError::bad(format!(
                        "invalid granularity {name:?}: use minute, hour, day, week, month, \
                         quarter or year"
                    ))
                })?;
                if (end - start) / step as i64 > MAX_POINTS {
                    return Err(AnalyticsError::bad(format!(
                        "invalid time range: more than {MAX_POINTS} points of {name:?}; \
                         choose a coarser step or a shorter range"
                    )));
                }
                step
            }
            _ => 0,
        };
        let limit = match request.limit {
            None => DEFAULT_LIMIT,
            Some(n) if n <= 0 => DEFAULT_LIMIT,
            Some(n) if n > MAX_LIMIT => {
                return Err(AnalyticsError::bad(format!(
                    "invalid limit {n}: at most {MAX_LIMIT}"
                )));
            }
            Some(n) => n,
        };
        if request.filters.len() > MAX_FILTERS {
            return Err(AnalyticsError::bad(format!(
                "too many filters: at most {MAX_FILTERS}"
            )));
        }
        let filters = request
            .filters
            .iter()
            .map(|(name, value)| {
                let text = match value {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => {
                        return Err(AnalyticsError::bad(format!(
                            "invalid filter {name:?}: the value must be a string, number or boolean"
                        )));
                    }
                };
                Ok((name.clone(), text))
            })
            .collect::<Result<BTreeMap<String, String>, AnalyticsError>>()?;
        let partitions = partitions(caller, &request.partition_ids)?;
        let scope = Scope {
            tenant: (&self.tenant_label, &caller.principal.tenant),
            partitions: (&self.partition_label, &partitions),
        };
        if group_by.as_deref().is_some_and(|g| scope.reserves(g)) {
            return Err(AnalyticsError::bad(format!(
                "invalid group_by {:?}: the tenant, partition and __ labels are not grouped by",
                request.group_by.unwrap_or_default()
            )));
        }
        let selector = promql::selector(&metric, &scope, &filters);
        let shape = match (kind, group_by.as_deref()) {
            (Kind::Scalar, Some(g)) if aggregation == Aggregation::CountDistinct => {
                Shape::DistinctValues(g)
            }
            (Kind::Scalar, _) | (_, None) => Shape::Total,
            (_, Some(g)) => Shape::By(g),
        };
        let window = match kind {
            Kind::Timeseries => step,
            _ => (end - start) as u64,
        };
        let label = match shape {
            Shape::By(g) => Some(g.to_string()),
            _ => None,
        };
        let mut expression =
            promql::expression(aggregation, &selector, &promql::duration(window), shape);
        if kind == Kind::Topn {
            expression = format!("topk({limit}, {expression})");
        }
        Ok(Prepared {
            kind,
            expression,
            start,
            end,
            step,
            label,
            limit: limit as usize,
        })
    }
}

/// The partitions a query reads: the request's partition by default,
/// every partition of the token for `["*"]`, else the ones named, each of
/// which must be the token's or a part of one.
fn partitions(caller: &Caller, wanted: &[String]) -> Result<Vec<String>, AnalyticsError> {
    if caller.principal.tenant.trim().is_empty() {
        return Err(AnalyticsError::forbidden(
            "analytics queries require tenant scope",
        ));
    }
    let wanted: Vec<&String> = wanted.iter().filter(|p| !p.is_empty()).collect();
    if wanted.is_empty() {
        return Ok(caller.partition.iter().cloned().collect());
    }
    if wanted.iter().any(|p| *p == "*") {
        let mut all = caller.principal.partitions.clone();
        all.sort();
        all.dedup();
        return Ok(all);
    }
    let mut chosen = Vec::new();
    for partition in wanted {
        if !crate::access::narrows(&caller.principal.partitions, partition) {
            return Err(AnalyticsError::forbidden(format!(
                "partition {partition:?} is not accessible"
            )));
        }
        chosen.push(partition.clone());
    }
    chosen.sort();
    chosen.dedup();
    Ok(chosen)
}

/// Seconds of a step name; empty is `hour`.
fn granularity(name: &str) -> Option<u64> {
    Some(match name {
        "" | "hour" => 3_600,
        "minute" => 60,
        "day" => 86_400,
        "week" => 7 * 86_400,
        "month" => 30 * 86_400,
        "quarter" => 90 * 86_400,
        "year" => 365 * 86_400,
        _ => return None,
    })
}

/// `time_range` as unix seconds: RFC 3339 times, `end` defaulting to now
/// and `start` to 30 days before `end`; `start` must be before `end`.
fn time_range(
    range: Option<&TimeRange>,
    now: OffsetDateTime,
) -> Result<(i64, i64), AnalyticsError> {
    let parse = |which: &str, text: Option<&String>| -> Result<Option<i64>, AnalyticsError> {
        match text.map(|t| t.trim()).filter(|t| !t.is_empty()) {
            None => Ok(None),
            Some(text) => OffsetDateTime::parse(text, &Rfc3339)
                .map(|t| Some(t.unix_timestamp()))
                .map_err(|_| {
                    AnalyticsError::bad(format!(
                        "invalid {which}: expected RFC3339 format (2026-06-01T00:00:00Z), got {text:?}"
                    ))
                }),
        }
    };
    let start = parse("start", range.and_then(|r| r.start.as_ref()))?;
    let end = parse("end", range.and_then(|r| r.end.as_ref()))?.unwrap_or(now.unix_timestamp());
    let start = start.unwrap_or(end - DEFAULT_RANGE);
    if start >= end {
        return Err(AnalyticsError::bad(
            "invalid time range: start must be before end",
        ));
    }
    Ok((start, end))
}

/// The cache key: tenant, kind, expression (which carries the scope and
/// the filters), step, limit and the times to the minute.
fn cache_key(prepared: &Prepared, tenant: &str) -> [u8; 32] {
    let text = json!([
        tenant,
        prepared.kind,
        prepared.expression,
        prepared.step,
        prepared.limit,
        prepared.start.div_euclid(60),
        prepared.end.div_euclid(60),
    ])
    .to_string();
    Sha256::digest(text.as_bytes()).into()
}

/// The error the caller gets for a backend failure (the log has the URL
/// and the backend's own words).
fn backend_error(err: &BackendError) -> AnalyticsError {
    match err {
        BackendError::Timeout { after, .. } => AnalyticsError::new(
            StatusCode::GATEWAY_TIMEOUT,
            format!("the metrics backend did not answer within {after:?}"),
        ),
        BackendError::Unreachable { .. } => AnalyticsError::new(
            StatusCode::BAD_GATEWAY,
            "the metrics backend could not be reached",
        ),
        BackendError::Status {
            status, error_type, ..
        } => AnalyticsError::new(
            StatusCode::BAD_GATEWAY,
            format!("the metrics backend answered {status} ({error_type}) to the query"),
        ),
        BackendError::Answer { .. } => AnalyticsError::new(
            StatusCode::BAD_GATEWAY,
            "the metrics backend answered something that is not a Prometheus API answer",
        ),
    }
}

/// A finite value as JSON; NaN and ±Inf (an average of nothing, a ratio
/// over zero) are not numbers in JSON.
fn finite(value: f64) -> Option<f64> {
    value.is_finite().then_some(value)
}

fn timestamp(seconds: f64) -> String {
    let nanos = (seconds * 1e9).round() as i128;
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

fn label_of(series: &Series, label: Option<&str>) -> String {
    label
        .and_then(|l| series.labels.get(l))
        .filter(|v| !v.is_empty())
        .cloned()
        .unwrap_or_else(|| "unknown".to_string())
}

/// Labelled values, largest first (then by label).
fn ranked(series: &[Series], label: Option<&str>) -> Vec<Value> {
    let mut values: Vec<(String, f64)> = series
        .iter()
        .filter_map(|s| {
            let value = finite(s.samples.first()?.1)?;
            Some((label_of(s, label), value))
        })
        .collect();
    values.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    values
        .into_iter()
        .map(|(label, value)| json!({ "label": label, "value": value }))
        .collect()
}

/// The answer of a kind: scalar `{"value"}` (0 when there is no series,
/// `null` when the value is NaN or infinite), `{"points"}` in time order
/// (non-finite points left out), `{"segments"}` and `{"items"}` largest
/// first (non-finite ones left out). Lists are never null.
fn answer(prepared: &Prepared, series: Vec<Series>) -> Value {
    let label = prepared.label.as_deref();
    match prepared.kind {
        Kind::Scalar => {
            let value = match series.first().and_then(|s| s.samples.first()) {
                None => Some(0.0),
                Some((_, value)) => finite(*value),
            };
            json!({ "value": value })
        }
        Kind::Timeseries => {
            let mut points: Vec<(f64, Option<String>, f64)> = series
                .iter()
                .flat_map(|s| {
                    let name = label.map(|_| label_of(s, label));
                    s.samples.iter().filter_map(move |(time, value)| {
                        Some((*time, name.clone(), finite(*value)?))
                    })
                })
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
            let points: Vec<Value> = points
                .into_iter()
                .map(|(time, name, value)| {
                    let mut point = json!({ "timestamp": timestamp(time), "value": value });
                    if let Some(name) = name {
                        point["label"] = json!(name);
                    }
                    point
                })
                .collect();
            json!({ "points": points })
        }
        Kind::Grouped => json!({ "segments": ranked(&series, label) }),
        Kind::Topn => {
            let mut items = ranked(&series, label);
            items.truncate(prepared.limit);
            json!({ "items": items })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::auth::Principal;
    use crate::access::capabilities::CapabilitySet;

    fn caller(partitions: &[&str], partition: Option<&str>) -> Caller {
        Caller {
            principal: Principal {
                subject: "alice".into(),
                tenant: "acme".into(),
                email: None,
                roles: vec![],
                partitions: partitions.iter().map(|p| p.to_string()).collect(),
            },
            partition: partition.map(String::from),
            capabilities: CapabilitySet::default(),
        }
    }

    fn engine() -> Analytics {
        let config = AnalyticsConfig {
            prometheus_url: Some("http://127.0.0.1:1".into()),
            ..AnalyticsConfig::default()
        };
        Analytics::new(
            &config,
            crate::backends::outbound::client().unwrap(),
            None,
            &Metrics::new("t", "t"),
        )
        .unwrap()
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::parse("2026-06-08T12:00:00Z", &Rfc3339).unwrap()
    }

    fn prepare(kind: Kind, body: Value) -> Result<Prepared, AnalyticsError> {
        engine().prepare(
            kind,
            body.to_string().as_bytes(),
            &caller(&["part-01", "part-02"], Some("part-01")),
            now(),
        )
    }

    #[test]
    fn the_originals_examples_build_the_same_queries() {
        let scalar = prepare(
            Kind::Scalar,
            json!({"metric": "loans_disbursed_total", "aggregation": "sum",
                   "filters": {"status": "approved"},
                   "time_range": {"start": "2026-06-01T00:00:00Z", "end": "2026-06-08T00:00:00Z"}}),
        )
        .unwrap();
        assert_eq!(
            scalar.expression,
            r#"sum(increase(loans_disbursed_total{tenant_id="acme",partition_id="part-01",status="approved"}[7d]))"#
        );
        let series = prepare(
            Kind::Timeseries,
            json!({"metric": "engine.commands.executed", "aggregation": "sum", "step": "day",
                   "partition_ids": ["*"],
                   "time_range": {"start": "2026-06-01T00:00:00.000Z", "end": "2026-06-08T00:00:00.000Z"}}),
        )
        .unwrap();
        assert_eq!(
            series.expression,
            r#"sum(increase(engine_commands_executed{tenant_id="acme",partition_id=~"part\\-01|part\\-02"}[1d]))"#
        );
        assert_eq!(series.step, 86_400);
        let top = prepare(
            Kind::Topn,
            json!({"metric": "loans_disbursed_total", "aggregation": "sum",
                   "group_by": "customer_name", "limit": 5}),
        )
        .unwrap();
        assert_eq!(
            top.expression,
            r#"topk(5, sum by (customer_name) (increase(loans_disbursed_total{tenant_id="acme",partition_id="part-01"}[30d])))"#
        );
        assert_eq!(top.end - top.start, DEFAULT_RANGE);
    }

    #[test]
    fn each_request_error() {
        let cases = [
            (Kind::Scalar, json!("not an object"), "invalid request body"),
            (
                Kind::Scalar,
                json!({"metric": "loans_x", "aggregation": "median"}),
                "invalid aggregation",
            ),
            (
                Kind::Scalar,
                json!({"aggregation": "sum"}),
                "metric name is required",
            ),
            (
                Kind::Scalar,
                json!({"metric": "node_cpu_seconds_total"}),
                "metric not allowed",
            ),
            (
                Kind::Grouped,
                json!({"metric": "loans_x"}),
                "missing required field: group_by",
            ),
            (
                Kind::Topn,
                json!({"metric": "loans_x", "group_by": " "}),
                "missing required field: group_by",
            ),
            (
                Kind::Scalar,
                json!({"metric": "loans_x", "time_range": {"start": "yesterday"}}),
                "invalid start",
            ),
            (
                Kind::Scalar,
                json!({"metric": "loans_x", "time_range": {"end": "2026-13-01T00:00:00Z"}}),
                "invalid end",
            ),
            (
                Kind::Scalar,
                json!({"metric": "loans_x", "time_range": {"start": "2026-06-08T00:00:00Z", "end": "2026-06-01T00:00:00Z"}}),
                "start must be before end",
            ),
            (
                Kind::Timeseries,
                json!({"metric": "loans_x", "step": "fortnight"}),
                "invalid granularity \"fortnight\"",
            ),
            (
                Kind::Timeseries,
                json!({"metric": "loans_x", "step": "minute"}),
                "more than 11000 points",
            ),
            (
                Kind::Topn,
                json!({"metric": "loans_x", "group_by": "a", "limit": 5000}),
                "invalid limit",
            ),
            (
                Kind::Grouped,
                json!({"metric": "loans_x", "group_by": "tenant.id"}),
                "invalid group_by",
            ),
            (
                Kind::Scalar,
                json!({"metric": "loans_x", "filters": {"a": ["b"]}}),
                "invalid filter",
            ),
        ];
        for (kind, body, expected) in cases {
            let err = prepare(kind, body.clone()).unwrap_err();
            assert_eq!(err.status, StatusCode::BAD_REQUEST, "{body}");
            assert!(err.message.contains(expected), "{body}: {}", err.message);
        }
        let err = engine()
            .prepare(Kind::Scalar, b"", &caller(&[], None), now())
            .unwrap_err();
        assert!(
            err.message.starts_with("invalid request body"),
            "{}",
            err.message
        );
    }

    #[test]
    fn partitions_may_only_narrow_the_token() {
        let c = caller(&["eu", "us"], Some("eu"));
        assert_eq!(partitions(&c, &[]).unwrap(), ["eu"]);
        assert_eq!(partitions(&c, &["*".into()]).unwrap(), ["eu", "us"]);
        assert_eq!(
            partitions(&c, &["us".into(), "eu/west".into()]).unwrap(),
            ["eu/west", "us"]
        );
        let err = partitions(&c, &["p9".into()]).unwrap_err();
        assert_eq!(err.status, StatusCode::FORBIDDEN);
        assert_eq!(err.message, "partition \"p9\" is not accessible");
        // A token without partitions reads its whole tenant by default and
        // with `*`, and may name none.
        let tenant_wide = caller(&[], None);
        assert!(partitions(&tenant_wide, &[]).unwrap().is_empty());
        assert!(partitions(&tenant_wide, &["*".into()]).unwrap().is_empty());
        assert!(partitions(&tenant_wide, &["eu".into()]).is_err());
        let mut no_tenant = caller(&["eu"], Some("eu"));
        no_tenant.principal.tenant = String::new();
        let err = partitions(&no_tenant, &[]).unwrap_err();
        assert_eq!(err.status, StatusCode::FORBIDDEN);
        assert_eq!(err.message, "analytics queries require tenant scope");
    }

    #[test]
    fn answers_never_carry_nan_and_lists_are_never_null() {
        let series = |label: &str, samples: Vec<(f64, f64)>| Series {
            labels: [("status".to_string(), label.to_string())].into(),
            samples,
        };
        let prepared = |kind, label: Option<&str>, limit| Prepared {
            kind,
            expression: String::new(),
            start: 0,
            end: 60,
            step: 60,
            label: label.map(String::from),
            limit,
        };
        assert_eq!(
            answer(&prepared(Kind::Scalar, None, 10), vec![]),
            json!({"value": 0.0})
        );
        assert_eq!(
            answer(
                &prepared(Kind::Scalar, None, 10),
                vec![series("a", vec![(1.0, f64::NAN)])]
            ),
            json!({"value": null})
        );
        assert_eq!(
            answer(&prepared(Kind::Timeseries, None, 10), vec![]),
            json!({"points": []})
        );
        assert_eq!(
            answer(&prepared(Kind::Grouped, Some("status"), 10), vec![]),
            json!({"segments": []})
        );
        let grouped = answer(
            &prepared(Kind::Grouped, Some("status"), 10),
            vec![
                series("a", vec![(1.0, 3.0)]),
                series("", vec![(1.0, 5.0)]),
                series("b", vec![(1.0, f64::INFINITY)]),
            ],
        );
        assert_eq!(
            grouped,
            json!({"segments": [{"label": "unknown", "value": 5.0}, {"label": "a", "value": 3.0}]})
        );
        let top = answer(
            &prepared(Kind::Topn, Some("status"), 1),
            vec![series("a", vec![(1.0, 3.0)]), series("b", vec![(1.0, 9.0)])],
        );
        assert_eq!(top, json!({"items": [{"label": "b", "value": 9.0}]}));
        let points = answer(
            &prepared(Kind::Timeseries, Some("status"), 10),
            vec![
                series(
                    "b",
                    vec![(1_780_272_000.0, 1.0), (1_780_272_060.0, f64::NAN)],
                ),
                series("a", vec![(1_780_272_000.0, 2.0)]),
            ],
        );
        assert_eq!(
            points,
            json!({"points": [
                {"timestamp": "2026-06-01T00:00:00Z", "value": 2.0, "label": "a"},
                {"timestamp": "2026-06-01T00:00:00Z", "value": 1.0, "label": "b"}
            ]})
        );
    }
}
