//! The admin console's analytics queries against a real Prometheus (the
//! Debian package, started by the test) scraping an exporter this test
//! serves. The exporter gives each series a short history with explicit
//! timestamps one minute apart (one sample per scrape), so that every
//! expected value below can be computed by hand: with samples exactly on
//! both ends of a window, `increase` is last minus first, with no
//! extrapolation.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{self, Bff, answer, client, config, get_json, jwks};
use crate::prometheus::Prometheus;

/// Samples per series; the history spans `(SAMPLES - 1)` minutes.
const SAMPLES: usize = 5;

/// `(metric, type, labels, values by sample)`.
type SeriesDef = (&'static str, &'static str, &'static str, [f64; SAMPLES]);

const SERIES: &[SeriesDef] = &[
    (
        "loans_disbursed_total",
        "counter",
        r#"tenant_id="acme",partition_id="eu",status="approved",customer_name="Alice""#,
        [0.0, 10.0, 30.0, 60.0, 100.0],
    ),
    (
        "loans_disbursed_total",
        "counter",
        r#"tenant_id="acme",partition_id="eu",status="rejected",customer_name="Bob""#,
        [0.0, 5.0, 5.0, 10.0, 20.0],
    ),
    (
        "loans_disbursed_total",
        "counter",
        r#"tenant_id="acme",partition_id="us",status="approved",customer_name="Carol""#,
        [0.0, 50.0, 100.0, 150.0, 200.0],
    ),
    (
        "loans_disbursed_total",
        "counter",
        r#"tenant_id="globex",partition_id="eu",status="approved",customer_name="Mallory""#,
        [0.0, 1000.0, 2000.0, 3000.0, 4000.0],
    ),
    (
        "loans_outstanding_count",
        "gauge",
        r#"tenant_id="acme",partition_id="eu""#,
        [7.0; SAMPLES],
    ),
    (
        "loans_outstanding_count",
        "gauge",
        r#"tenant_id="acme",partition_id="us""#,
        [11.0; SAMPLES],
    ),
    (
        "loans_outstanding_count",
        "gauge",
        r#"tenant_id="globex",partition_id="eu""#,
        [1000.0; SAMPLES],
    ),
    // What an OpenTelemetry exporter makes of `engine.commands.executed`.
    (
        "engine_commands_executed",
        "counter",
        r#"tenant_id="acme",partition_id="eu""#,
        [0.0, 2.0, 4.0, 6.0, 8.0],
    ),
];

/// The exposition text of scrape number `scrape`: sample
/// `min(scrape, SAMPLES - 1)` of every series, at `t0` plus that many
/// minutes.
fn exposition(t0: i64, scrape: usize) -> String {
    let i = scrape.min(SAMPLES - 1);
    let ts_ms = (t0 + 60 * i as i64) * 1000;
    let mut text = String::new();
    let mut typed = Vec::new();
    for (metric, kind, labels, values) in SERIES {
        if !typed.contains(metric) {
            text.push_str(&format!("# TYPE {metric} {kind}\n"));
            typed.push(metric);
        }
        text.push_str(&format!("{metric}{{{labels}}} {} {ts_ms}\n", values[i]));
    }
    text
}

/// Serves the exporter; returns its `host:port`.
async fn exporter(t0: i64) -> (String, tokio::sync::oneshot::Sender<()>) {
    let scrapes = Arc::new(AtomicUsize::new(0));
    let router = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let n = scrapes.fetch_add(1, Ordering::SeqCst);
            async move {
                (
                    [("content-type", "text/plain; version=0.0.4")],
                    exposition(t0, n),
                )
            }
        }),
    );
    let (url, stop) = harness::serve(router).await;
    (url.trim_start_matches("http://").to_string(), stop)
}

/// Waits until Prometheus has every sample of the history.
async fn wait_for_history(prometheus: &Prometheus, t0: i64) {
    let end = t0 + 60 * (SAMPLES as i64 - 1);
    let mut metrics: Vec<&str> = SERIES.iter().map(|s| s.0).collect();
    metrics.dedup();
    let deadline = Instant::now() + Duration::from_secs(60);
    for metric in metrics {
        loop {
            let response = client()
                .get(format!("{}/api/v1/query", prometheus.url))
                .query(&[
                    ("query", format!("min(count_over_time({metric}[30m]))")),
                    ("time", end.to_string()),
                ])
                .send()
                .await;
            if let Ok(response) = response {
                let body: Value = response.json().await.unwrap_or_default();
                if body["data"]["result"][0]["value"][1] == json!(SAMPLES.to_string()) {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus did not scrape the whole history of {metric}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

fn rfc3339(seconds: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(seconds)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// A token of `tenant` holding partitions `eu` and `us` (`eu` the default).
fn token(tenant: &str) -> String {
    let mut claims = harness::claims("alice", tenant, &["viewer"]);
    claims["custom:partitions"] = json!(["eu", "us"]);
    harness::rs256(&claims)
}

async fn query(bff: &Bff, kind: &str, token: &str, body: Value) -> (StatusCode, Value) {
    answer(
        client()
            .post(bff.url(&format!("/api/analytics/query/{kind}")))
            .bearer_auth(token)
            .json(&body),
    )
    .await
}

fn analytics_config(url: &str, extra: &str) -> String {
    format!(
        "analytics:\n  prometheus_url: \"{url}\"\n  timeout: 2s\n  cache:\n    ttl: 60s\n    max_entries: 100\n{extra}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_queries_against_a_real_prometheus() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let t0 = (now - 20 * 60) / 60 * 60;
    let end = t0 + 60 * (SAMPLES as i64 - 1);
    let (target, _stop_exporter) = exporter(t0).await;
    let mut prometheus = Prometheus::start(&[&target]);
    let (jwks, _stop_jwks) = jwks().await;
    let bff = Bff::start(&config(&jwks, &analytics_config(&prometheus.url, "")), &[]);
    wait_for_history(&prometheus, t0).await;

    let acme = token("acme");
    let range = json!({"start": rfc3339(t0), "end": rfc3339(end)});
    let value = |body: &Value| body["value"].as_f64();
    let scalar = |body: Value| {
        let bff = &bff;
        let acme = &acme;
        async move {
            let (status, answer) = query(bff, "scalar", acme, body.clone()).await;
            assert_eq!(status, StatusCode::OK, "{body}: {answer}");
            value(&answer).unwrap_or_else(|| panic!("{body}: {answer}"))
        }
    };

    // Scalar, the console's body: the default partition is the token's
    // first (eu): Alice 100 + Bob 20.
    let sum = json!({"metric": "loans_disbursed_total", "aggregation": "sum", "time_range": range});
    assert_eq!(scalar(sum.clone()).await, 120.0);
    let mut approved = sum.clone();
    approved["filters"] = json!({"status": "approved"});
    assert_eq!(scalar(approved).await, 100.0);
    // Every partition of the token: + Carol 200 in us.
    let mut everywhere = sum.clone();
    everywhere["partition_ids"] = json!(["*"]);
    assert_eq!(scalar(everywhere.clone()).await, 320.0);
    let mut us = sum.clone();
    us["partition_ids"] = json!(["us"]);
    assert_eq!(scalar(us).await, 200.0);
    assert_eq!(
        scalar(
            json!({"metric": "loans_disbursed_total", "aggregation": "avg", "time_range": range})
        )
        .await,
        60.0,
        "(100 + 20) / 2"
    );
    assert_eq!(
        scalar(
            json!({"metric": "loans_disbursed_total", "aggregation": "count_distinct",
                      "time_range": range})
        )
        .await,
        2.0,
        "two series in eu"
    );
    assert_eq!(
        scalar(
            json!({"metric": "loans_disbursed_total", "aggregation": "count_distinct",
                      "group_by": "customer_name", "partition_ids": ["*"], "time_range": range})
        )
        .await,
        3.0,
        "Alice, Bob, Carol"
    );
    assert_eq!(
        scalar(
            json!({"metric": "loans_outstanding_count", "aggregation": "gauge",
                      "partition_ids": ["*"], "time_range": range})
        )
        .await,
        18.0,
        "7 + 11"
    );

    // Tenant isolation: whatever the filters say, globex's 4000 never
    // appears, and globex sees only its own.
    for filters in [
        json!({"tenant_id": "globex"}),
        json!({"tenant.id": "globex", "partition-id": "eu"}),
        json!({"__name__": "loans_disbursed_total", "tenant_id": "globex"}),
    ] {
        let mut body = everywhere.clone();
        body["filters"] = filters.clone();
        assert_eq!(scalar(body).await, 320.0, "{filters}");
    }
    let mut injected = everywhere.clone();
    injected["filters"] =
        json!({"status": "approved\"} or loans_disbursed_total{tenant_id=\"globex"});
    assert_eq!(scalar(injected).await, 0.0, "a value stays a value");
    let mut bad_label = everywhere.clone();
    bad_label["filters"] = json!({"status\"} or vector(4000) or x{a": "b"});
    assert_eq!(
        scalar(bad_label).await,
        0.0,
        "a label name stays a label name"
    );
    let (status, globex) = query(&bff, "scalar", &token("globex"), everywhere.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(value(&globex), Some(4000.0));

    // Grouped by status over every partition, largest first.
    let (status, grouped) = query(
        &bff,
        "grouped",
        &acme,
        json!({"metric": "loans_disbursed_total", "aggregation": "count", "group_by": "status",
               "partition_ids": ["*"], "time_range": range}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{grouped}");
    assert_eq!(
        grouped,
        json!({"segments": [{"label": "approved", "value": 300.0}, {"label": "rejected", "value": 20.0}]})
    );

    // Top 2 customers.
    let (status, top) = query(
        &bff,
        "topn",
        &acme,
        json!({"metric": "loans_disbursed_total", "aggregation": "sum",
               "group_by": "customer_name", "limit": 2, "partition_ids": ["*"],
               "time_range": range}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{top}");
    assert_eq!(
        top,
        json!({"items": [{"label": "Carol", "value": 200.0}, {"label": "Alice", "value": 100.0}]})
    );

    // A time series of a dotted OpenTelemetry name, one point a minute:
    // each minute's increase is 2 (the first step has no earlier sample).
    let (status, series) = query(
        &bff,
        "timeseries",
        &acme,
        json!({"metric": "engine.commands.executed", "aggregation": "sum", "step": "minute",
               "partition_ids": ["*"], "time_range": range}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{series}");
    let expected: Vec<Value> = (1..SAMPLES as i64)
        .map(|i| json!({"timestamp": rfc3339(t0 + 60 * i), "value": 2.0}))
        .collect();
    assert_eq!(series, json!({"points": expected}));
    // Grouped time series carry labels.
    let (status, labelled) = query(
        &bff,
        "timeseries",
        &acme,
        json!({"metric": "loans_disbursed_total", "aggregation": "sum", "step": "minute",
               "group_by": "status", "time_range": range}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{labelled}");
    let last: Vec<&Value> = labelled["points"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["timestamp"] == json!(rfc3339(end)))
        .collect();
    assert_eq!(
        last,
        [
            &json!({"timestamp": rfc3339(end), "value": 40.0, "label": "approved"}),
            &json!({"timestamp": rfc3339(end), "value": 10.0, "label": "rejected"})
        ]
    );
    // No data is an empty list, never null.
    let (status, empty) = query(
        &bff,
        "timeseries",
        &acme,
        json!({"metric": "loans_never_seen_total", "step": "minute", "time_range": range}),
    )
    .await;
    assert_eq!((status, empty), (StatusCode::OK, json!({"points": []})));

    // Errors, each `{"error": "<text>"}`.
    let errors = [
        (
            "scalar",
            json!("not a query"),
            StatusCode::BAD_REQUEST,
            "invalid request body",
        ),
        (
            "scalar",
            json!({"metric": "node_cpu_seconds_total"}),
            StatusCode::BAD_REQUEST,
            "metric not allowed",
        ),
        (
            "scalar",
            json!({"metric": "loans_disbursed_total", "aggregation": "p99"}),
            StatusCode::BAD_REQUEST,
            "invalid aggregation",
        ),
        (
            "scalar",
            json!({"metric": "loans_disbursed_total",
                          "time_range": {"start": rfc3339(end), "end": rfc3339(t0)}}),
            StatusCode::BAD_REQUEST,
            "start must be before end",
        ),
        (
            "scalar",
            json!({"metric": "loans_disbursed_total", "time_range": {"start": "monday"}}),
            StatusCode::BAD_REQUEST,
            "invalid start",
        ),
        (
            "timeseries",
            json!({"metric": "loans_disbursed_total", "step": "fortnight"}),
            StatusCode::BAD_REQUEST,
            "invalid granularity \"fortnight\"",
        ),
        (
            "grouped",
            json!({"metric": "loans_disbursed_total"}),
            StatusCode::BAD_REQUEST,
            "missing required field: group_by",
        ),
        (
            "scalar",
            json!({"metric": "loans_disbursed_total", "partition_ids": ["p9"]}),
            StatusCode::FORBIDDEN,
            "partition \"p9\" is not accessible",
        ),
    ];
    for (kind, body, status, text) in errors {
        let (got, error) = query(&bff, kind, &acme, body.clone()).await;
        assert_eq!(got, status, "{kind} {body}: {error}");
        let message = error["error"].as_str().unwrap_or_else(|| panic!("{error}"));
        assert!(message.contains(text), "{kind} {body}: {message}");
    }

    // Prometheus stopped: a cached answer is still served, a new query is
    // 502, readiness is degraded and everything else keeps working.
    prometheus.stop();
    assert_eq!(scalar(sum.clone()).await, 120.0, "from the cache");
    let cached = harness::metric(&bff, "thesa_analytics_cache_hits_total").await;
    assert!(
        cached.as_deref().is_some_and(|l| !l.ends_with(" 0")),
        "{cached:?}"
    );
    let mut uncached = sum.clone();
    uncached["filters"] = json!({"status": "rejected"});
    let (status, error) = query(&bff, "scalar", &acme, uncached).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{error}");
    assert_eq!(error["error"], "the metrics backend could not be reached");
    let (status, ready) = answer(client().get(bff.url("/ui/ready"))).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert_eq!(ready["status"], "degraded");
    assert_eq!(ready["checks"]["metrics_backend"]["status"], "error");
    let (status, _) = get_json(&bff.url("/ui/navigation"), &acme).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analytics_without_a_backend_url_answers_503() {
    let (jwks, _stop) = jwks().await;
    let bff = Bff::start(&config(&jwks, ""), &[]);
    let (status, error) = query(
        &bff,
        "scalar",
        &token("acme"),
        json!({"metric": "loans_disbursed_total", "aggregation": "sum"}),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        error["error"]
            .as_str()
            .is_some_and(|e| e.contains("analytics.prometheus_url")),
        "{error}"
    );
    // Requests are still checked first: a bad one is 400, not 503.
    let (status, _) = query(
        &bff,
        "grouped",
        &token("acme"),
        json!({"metric": "loans_x"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Readiness does not mention a backend that is not configured.
    let (status, ready) = answer(client().get(bff.url("/ui/ready"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(ready["checks"].get("metrics_backend").is_none(), "{ready}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_does_not_answer_is_504() {
    // Accepts connections (the kernel does) but never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let (jwks, _stop) = jwks().await;
    let extra = format!(
        "analytics:\n  prometheus_url: \"{url}\"\n  timeout: 300ms\n  cache:\n    ttl: 0s\n    max_entries: 10\n"
    );
    let bff = Bff::start(&config(&jwks, &extra), &[]);
    let started = Instant::now();
    let (status, error) = query(
        &bff,
        "scalar",
        &token("acme"),
        json!({"metric": "loans_disbursed_total", "aggregation": "sum"}),
    )
    .await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{error}");
    assert!(
        error["error"]
            .as_str()
            .is_some_and(|e| e.contains("did not answer within")),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_allowlist_pattern_stops_start_up() {
    let (jwks, _stop) = jwks().await;
    let extra = "analytics:\n  allowed_metrics: [\"(unclosed\"]\n";
    let exited = Bff::try_start(&config(&jwks, extra), &[]).err().unwrap();
    assert_eq!(exited.status.code(), Some(1));
    let text = exited.lines.join("\n");
    assert!(text.contains("analytics.allowed_metrics"), "{text}");
}
