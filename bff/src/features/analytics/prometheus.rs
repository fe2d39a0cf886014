//! The Prometheus HTTP API (`/api/v1/query`, `/api/v1/query_range`), as
//! Prometheus and compatible backends (Thanos, Mimir, VictoriaMetrics,
//! Uptrace) serve it.

use std::collections::BTreeMap;
use std::time::Duration as StdDuration;

use serde::Deserialize;

use crate::backends::outbound::error_chain;

/// One series of an answer: its labels and its samples (one for an
/// instant query). Values Prometheus writes as text (`"NaN"`, `"+Inf"`)
/// are parsed; callers decide what to do with non-finite ones.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The series' labels.
    pub labels: BTreeMap<String, String>,
    /// `(unix seconds, value)` in time order.
    pub samples: Vec<(f64, f64)>,
}

/// Why the metrics backend gave no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// No answer within `analytics.timeout`, or the backend's own query
    /// timeout (`errorType: timeout`).
    #[error("{url}: no answer within {after:?}")]
    Timeout {
        /// The URL asked.
        url: String,
        /// The limit.
        after: StdDuration,
    },
    /// Not reachable (connection refused, DNS, TLS).
    #[error("{url}: {message}")]
    Unreachable {
        /// The URL asked.
        url: String,
        /// The cause.
        message: String,
    },
    /// An answer other than success.
    #[error("{url}: answered {status} ({error_type}): {error}")]
    Status {
        /// The URL asked.
        url: String,
        /// The HTTP status.
        status: u16,
        /// Prometheus's `errorType`.
        error_type: String,
        /// Prometheus's `error`.
        error: String,
    },
    /// A success whose body is not the documented shape.
    #[error("{url}: unexpected answer: {message}")]
    Answer {
        /// The URL asked.
        url: String,
        /// What is wrong.
        message: String,
    },
}

impl BackendError {
    /// A stable reason for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Timeout { .. } => "timeout",
            Self::Unreachable { .. } => "unreachable",
            Self::Status { .. } => "status",
            Self::Answer { .. } => "answer",
        }
    }
}

/// A Prometheus-compatible API.
#[derive(Debug)]
pub struct Prometheus {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    timeout: StdDuration,
}

#[derive(Deserialize)]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct RawSeries {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    #[serde(default)]
    value: Option<(f64, String)>,
    #[serde(default)]
    values: Vec<(f64, String)>,
}

/// Seconds with millisecond precision, as the API takes times.
fn seconds(time: f64) -> String {
    format!("{time:.3}")
}

impl Prometheus {
    /// A client of the API at `base` (its path kept: hosted backends serve
    /// the API under a prefix).
    pub fn new(
        http: reqwest::Client,
        base: &str,
        token: Option<String>,
        timeout: StdDuration,
    ) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            token,
            timeout,
        }
    }

    /// An instant query at `time` (unix seconds): a vector.
    pub async fn instant(&self, query: &str, time: f64) -> Result<Vec<Series>, BackendError> {
        self.ask(
            "/api/v1/query",
            &[("query", query.to_string()), ("time", seconds(time))],
            "vector",
        )
        .await
    }

    /// A range query: a matrix.
    pub async fn range(
        &self,
        query: &str,
        start: f64,
        end: f64,
        step: u64,
    ) -> Result<Vec<Series>, BackendError> {
        self.ask(
            "/api/v1/query_range",
            &[
                ("query", query.to_string()),
                ("start", seconds(start)),
                ("end", seconds(end)),
                ("step", format!("{step}s")),
            ],
            "matrix",
        )
        .await
    }

    /// Whether the API answers a trivial query (readiness).
    pub async fn ping(&self) -> Result<(), BackendError> {
        self.ask("/api/v1/query", &[("query", "1".to_string())], "")
            .await
            .map(|_| ())
    }

    /// Asks `path`; the answer must be a success of `expected` result type
    /// (any type when empty, for the ping).
    async fn ask(
        &self,
        path: &str,
        params: &[(&str, String)],
        expected: &str,
    ) -> Result<Vec<Series>, BackendError> {
        let url = format!("{}{path}", self.base);
        let mut request = self
            .http
            .get(&url)
            .query(params)
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(self.timeout);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| self.failed(&url, &e))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| self.failed(&url, &e))?;
        let envelope: Result<Envelope, _> = serde_json::from_slice(&body);
        let envelope = match envelope {
            Ok(envelope) if status.is_success() && envelope.status == "success" => envelope,
            Ok(envelope) => {
                let error_type = envelope.error_type.unwrap_or_default();
                if error_type == "timeout" {
                    return Err(BackendError::Timeout {
                        url,
                        after: self.timeout,
                    });
                }
                return Err(BackendError::Status {
                    url,
                    status: status.as_u16(),
                    error_type,
                    error: envelope.error.unwrap_or_default(),
                });
            }
            Err(_) if !status.is_success() => {
                return Err(BackendError::Status {
                    url,
                    status: status.as_u16(),
                    error_type: String::new(),
                    error: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
                });
            }
            Err(e) => {
                return Err(BackendError::Answer {
                    url,
                    message: e.to_string(),
                });
            }
        };
        let answer = |message: String| BackendError::Answer {
            url: url.clone(),
            message,
        };
        let data = envelope.data.ok_or_else(|| answer("no data".to_string()))?;
        if expected.is_empty() {
            return Ok(Vec::new());
        }
        if data.result_type != expected {
            return Err(answer(format!(
                "resultType {:?}, expected {expected:?}",
                data.result_type
            )));
        }
        let raw: Vec<RawSeries> =
            serde_json::from_value(data.result).map_err(|e| answer(e.to_string()))?;
        Ok(raw
            .into_iter()
            .map(|series| Series {
                labels: series.metric,
                samples: series
                    .value
                    .into_iter()
                    .chain(series.values)
                    .map(|(time, value)| (time, parse_value(&value)))
                    .collect(),
            })
            .collect())
    }

    fn failed(&self, url: &str, error: &reqwest::Error) -> BackendError {
        if error.is_timeout() {
            BackendError::Timeout {
                url: url.to_string(),
                after: self.timeout,
            }
        } else {
            BackendError::Unreachable {
                url: url.to_string(),
                message: error_chain(error),
            }
        }
    }
}

/// A sample value as the API writes it: a decimal, `NaN`, `+Inf`, `-Inf`.
fn parse_value(text: &str) -> f64 {
    match text {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        _ => text.parse().unwrap_or(f64::NAN),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_values_parse() {
        assert_eq!(parse_value("1.5"), 1.5);
        assert_eq!(parse_value("+Inf"), f64::INFINITY);
        assert_eq!(parse_value("-Inf"), f64::NEG_INFINITY);
        assert!(parse_value("NaN").is_nan());
        assert!(parse_value("garbage").is_nan());
    }

    #[test]
    fn times_have_millisecond_precision() {
        assert_eq!(seconds(1_700_000_000.0), "1700000000.000");
        assert_eq!(seconds(1.23456), "1.235");
    }
}
