//! Calls backend operations named in the definitions: the operation's
//! method and path template from the OpenAPI index, the base URL, timeout
//! and authentication from the service's configuration. One pooled HTTP
//! client serves every service (reqwest pools connections per host).
//!
//! Each service has a circuit breaker, and failed calls of idempotent
//! methods (all methods with `retry.idempotent_only: false`) are sent again
//! with exponential backoff, never past the handler timeout (see
//! `resilience`). A service is called with the caller's token
//! (`auth.strategy: forward_token`) or with the BFF's own from an OAuth2
//! client-credentials grant (`service_token`, see `service_token`). Every
//! request also carries the caller's context in the headers Thesa sends
//! (`X-Tenant-Id`, `X-Partition-Id`, `X-Request-Subject`,
//! `X-Correlation-Id`; renamed or left out per service with
//! `context_headers`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

use reqwest::Method;
use serde_json::Value;
use thesa_core::config::{AuthStrategy, Config, ContextHeaders, RetryConfig, ServiceConfig};
use thesa_core::openapi::{Operation, OperationIndex};
use tracing::Instrument;

use crate::backends::outbound::{ReadError, error_chain, read_limited};
use crate::backends::resilience::{Breaker, BreakerState, Permit, backoff, is_idempotent};
use crate::backends::service_token::ServiceToken;
use crate::metrics::{Metrics, ServiceLabel};

/// Why a backend call gave no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// The operation is in no loaded spec, or in several and no service is
    /// named (validation prevents this for served definitions).
    #[error("operation {0:?} cannot be resolved to one service")]
    Unresolved(String),
    /// The service has no entry under `services` in the configuration.
    #[error("service {0:?} has no base_url in the configuration (services.{0})")]
    NotConfigured(String),
    /// A path parameter has no value.
    #[error("path parameter {0:?} has no value")]
    MissingPathParam(String),
    /// The backend did not answer within the service's timeout.
    #[error("{service} did not answer within {timeout:?}")]
    Timeout {
        /// The service.
        service: String,
        /// Its timeout.
        timeout: Duration,
    },
    /// The backend could not be reached or its answer not read.
    #[error("{service} could not be reached: {message}")]
    Unreachable {
        /// The service.
        service: String,
        /// What went wrong.
        message: String,
    },
    /// The backend answered with an error status.
    #[error("{service} answered HTTP {status}")]
    Status {
        /// The service.
        service: String,
        /// The status.
        status: u16,
        /// The error body when it is JSON (for `error_map`; never passed on
        /// as it is).
        body: Option<Value>,
    },
    /// The service's circuit breaker is open: it failed repeatedly and is
    /// given time to recover.
    #[error("{service} is failing; its circuit breaker is open")]
    CircuitOpen {
        /// The service.
        service: String,
    },
    /// No service token could be had for a `service_token` service.
    #[error("{service}: {message}")]
    ServiceToken {
        /// The service.
        service: String,
        /// Why.
        message: String,
    },
    /// An SDK handler cannot use its input (the caller's mistake; the
    /// message says what to send).
    #[error("{0}")]
    InvalidInput(String),
    /// The backend's answer is larger than
    /// `server.max_backend_response_bytes`; it was not read further.
    #[error("{service} answered more than {limit} bytes (server.max_backend_response_bytes)")]
    TooLarge {
        /// The service.
        service: String,
        /// The limit, in bytes.
        limit: u64,
    },
    /// The backend's answer is not JSON.
    #[error("{service} answered something that is not JSON")]
    NotJson {
        /// The service.
        service: String,
    },
}

/// What a request carries from the caller to the backend.
#[derive(Debug, Clone, Default)]
pub struct CallContext {
    /// The caller's `Authorization` header (forwarded with `forward_token`).
    pub authorization: Option<String>,
    /// The request's correlation ID.
    pub correlation_id: String,
    /// The caller's tenant (from the token).
    pub tenant: Option<String>,
    /// The request's partition.
    pub partition: Option<String>,
    /// The caller's subject (from the token).
    pub subject: Option<String>,
}

impl CallContext {
    /// The context headers `names` asks for, with their values: header
    /// name and value, those without a name or a value left out.
    pub fn headers<'a>(&'a self, names: &'a ContextHeaders) -> Vec<(&'a str, &'a str)> {
        [
            (names.tenant.as_str(), self.tenant.as_deref()),
            (names.partition.as_str(), self.partition.as_deref()),
            (names.subject.as_str(), self.subject.as_deref()),
            (
                names.correlation.as_str(),
                Some(self.correlation_id.as_str()).filter(|c| !c.is_empty()),
            ),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name, value?)))
        // A value that cannot be a header (control characters) is left out
        // rather than failing the call.
        .filter(|(name, value)| {
            !name.is_empty() && reqwest::header::HeaderValue::from_str(value).is_ok()
        })
        .collect()
    }
}

/// Parameter values of one call, by name.
#[derive(Debug, Clone, Default)]
pub struct Params {
    /// Values for the path template.
    pub path: BTreeMap<String, String>,
    /// Query parameters, in order.
    pub query: Vec<(String, String)>,
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
}

/// One service the invoker can call.
#[derive(Debug)]
struct Service {
    base_url: String,
    context_headers: ContextHeaders,
    timeout: Duration,
    retry: RetryConfig,
    breaker: Breaker,
    label: ServiceLabel,
    /// The BFF's own token (`service_token`); `None` forwards the caller's.
    token: Option<ServiceToken>,
}

/// Calls backend operations.
#[derive(Debug)]
pub struct Invoker {
    http: reqwest::Client,
    services: BTreeMap<String, Service>,
    /// No attempt starts later than this after the call began (the
    /// handler timeout).
    budget: Duration,
    durations: Family<ServiceLabel, Histogram>,
    retries: Family<ServiceLabel, Counter>,
    breaker_states: Family<ServiceLabel, Gauge>,
    /// Largest answer read (`server.max_backend_response_bytes`).
    max_answer: u64,
}

impl Invoker {
    /// The invoker for the configured services; an error names a service
    /// whose configuration this release cannot serve.
    pub fn new(config: &Config, http: reqwest::Client, metrics: &Metrics) -> Result<Self, String> {
        let mut services = BTreeMap::new();
        for (id, service) in &config.services {
            check(id, service)?;
            let token = match service.auth.strategy {
                AuthStrategy::ServiceToken => {
                    Some(ServiceToken::new(id, &service.auth, http.clone())?)
                }
                AuthStrategy::ForwardToken => None,
            };
            let label = ServiceLabel {
                service_id: id.clone(),
            };
            metrics
                .breaker_state
                .get_or_create(&label)
                .set(BreakerState::Closed as i64);
            services.insert(
                id.clone(),
                Service {
                    base_url: service.base_url.trim_end_matches('/').to_string(),
                    context_headers: service.context_headers.clone(),
                    timeout: service.timeout.get(),
                    retry: service.retry.clone(),
                    breaker: Breaker::new(&service.circuit_breaker),
                    label,
                    token,
                },
            );
        }
        Ok(Self {
            http,
            services,
            budget: config.server.handler_timeout.get(),
            durations: metrics.backend_duration.clone(),
            retries: metrics.backend_retries.clone(),
            breaker_states: metrics.breaker_state.clone(),
            max_answer: config.server.max_backend_response_bytes,
        })
    }

    /// The operation and its service: `service_id` when given, else the
    /// one spec that has the operation.
    pub fn resolve<'a>(
        index: &'a OperationIndex,
        operation_id: &str,
        service_id: Option<&str>,
    ) -> Result<(&'a str, &'a Operation), InvokeError> {
        let unresolved = || InvokeError::Unresolved(operation_id.to_string());
        let spec = match service_id {
            Some(id) => index.service(id),
            None => match index.services_with(operation_id) {
                [only] => index.service(only),
                _ => None,
            },
        }
        .ok_or_else(unresolved)?;
        let operation = spec.operation(operation_id).ok_or_else(unresolved)?;
        Ok((spec.service_id.as_str(), operation))
    }

    /// Calls `operation` of `service` and returns its JSON answer (`null`
    /// for an empty body), through the service's breaker and retries.
    pub async fn call(
        &self,
        service_id: &str,
        operation: &Operation,
        params: &Params,
        body: Option<&Value>,
        context: &CallContext,
    ) -> Result<Value, InvokeError> {
        let service = self
            .services
            .get(service_id)
            .ok_or_else(|| InvokeError::NotConfigured(service_id.to_string()))?;
        let deadline = Instant::now() + self.budget;
        let may_retry = !service.retry.idempotent_only || is_idempotent(&operation.method);
        let mut attempt = 1;
        let mut token_renewed = false;
        loop {
            let permit = self.permit(service_id, service)?;
            let started = Instant::now();
            let span = tracing::info_span!(
                "backend call",
                otel.name = %format!("{} {}", operation.method, operation.path),
                otel.kind = "client",
                otel.status_code = tracing::field::Empty,
                service = service_id,
                operation = %operation.operation_id,
                attempt,
                http.response.status_code = tracing::field::Empty,
            );
            let outcome = self
                .attempt(service_id, service, operation, params, body, context, &span)
                .instrument(span.clone())
                .await;
            match &outcome {
                Ok(_) => {}
                Err(InvokeError::Status { status, .. }) => {
                    span.record("http.response.status_code", *status);
                    span.record("otel.status_code", "ERROR");
                }
                Err(_) => {
                    span.record("otel.status_code", "ERROR");
                }
            }
            let failed = match &outcome {
                Err(InvokeError::Timeout { .. } | InvokeError::Unreachable { .. }) => true,
                Err(InvokeError::Status { status, .. }) => *status >= 500,
                _ => false,
            };
            self.settle(service, permit, started, failed);
            // The service refused the BFF's own token: fetch a new one and
            // try once more.
            if let (Some(token), Err(InvokeError::Status { status: 401, .. }), false) =
                (&service.token, &outcome, token_renewed)
            {
                token.forget().await;
                token_renewed = true;
                continue;
            }
            let transient = match &outcome {
                Err(InvokeError::Timeout { .. } | InvokeError::Unreachable { .. }) => true,
                Err(InvokeError::Status { status, .. }) => matches!(status, 502..=504),
                _ => false,
            };
            if !(transient && may_retry && attempt < service.retry.max_attempts) {
                return outcome;
            }
            let wait = backoff(&service.retry, attempt);
            if Instant::now() + wait >= deadline {
                return outcome;
            }
            self.retries.get_or_create(&service.label).inc();
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// A permit of the service's circuit breaker, or `CircuitOpen`.
    fn permit(&self, service_id: &str, service: &Service) -> Result<Permit, InvokeError> {
        service.breaker.try_acquire().ok_or_else(|| {
            self.show_state(service);
            InvokeError::CircuitOpen {
                service: service_id.to_string(),
            }
        })
    }

    /// Records one attempt that began at `started`: its duration, and its
    /// outcome with the breaker.
    fn settle(&self, service: &Service, permit: Permit, started: Instant, failed: bool) {
        self.durations
            .get_or_create(&service.label)
            .observe(started.elapsed().as_secs_f64());
        service.breaker.record(permit, !failed);
        self.show_state(service);
    }

    fn show_state(&self, service: &Service) {
        self.breaker_states
            .get_or_create(&service.label)
            .set(service.breaker.state() as i64);
    }

    /// Adds the service's authentication (its own token, or the caller's)
    /// and the context headers.
    async fn authorize(
        service_id: &str,
        service: &Service,
        mut request: reqwest::RequestBuilder,
        context: &CallContext,
    ) -> Result<reqwest::RequestBuilder, InvokeError> {
        for (name, value) in context.headers(&service.context_headers) {
            request = request.header(name, value);
        }
        match &service.token {
            Some(token) => {
                let token = token.get().await.map_err(|e| InvokeError::ServiceToken {
                    service: service_id.to_string(),
                    message: e.to_string(),
                })?;
                Ok(request.bearer_auth(token))
            }
            None => Ok(match &context.authorization {
                Some(authorization) => {
                    request.header(reqwest::header::AUTHORIZATION, authorization)
                }
                None => request,
            }),
        }
    }

    /// Sends a request to an endpoint of `service_id` that no spec
    /// describes (the files service's upload and download), with the
    /// service's authentication and context headers, through its circuit
    /// breaker; `body` adds the body. Never retried: a streamed body cannot
    /// be sent twice. No timeout of its own either: a large file takes as
    /// long as it takes (the handler timeout bounds the wait for the
    /// answer's head). The answer comes back unread when it is 2xx; else
    /// its status is the error (with the start of a JSON body).
    pub async fn send_raw(
        &self,
        service_id: &str,
        method: Method,
        path: &str,
        context: &CallContext,
        body: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, InvokeError> {
        let service = self
            .services
            .get(service_id)
            .ok_or_else(|| InvokeError::NotConfigured(service_id.to_string()))?;
        let permit = self.permit(service_id, service)?;
        let started = Instant::now();
        let request = self
            .http
            .request(method, format!("{}{path}", service.base_url));
        let outcome = match Self::authorize(service_id, service, request, context).await {
            Ok(request) => body(request)
                .send()
                .await
                .map_err(|err| InvokeError::Unreachable {
                    service: service_id.to_string(),
                    message: error_chain(&err),
                }),
            Err(err) => Err(err),
        };
        let failed = match &outcome {
            Ok(response) => response.status().is_server_error(),
            Err(InvokeError::Unreachable { .. }) => true,
            Err(_) => false,
        };
        self.settle(service, permit, started, failed);
        let response = outcome?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = error_body(response).await;
        Err(InvokeError::Status {
            service: service_id.to_string(),
            status: status.as_u16(),
            body,
        })
    }

    /// One attempt of a call, in `span` (whose `traceparent` it sends).
    #[allow(clippy::too_many_arguments)]
    async fn attempt(
        &self,
        service_id: &str,
        service: &Service,
        operation: &Operation,
        params: &Params,
        body: Option<&Value>,
        context: &CallContext,
        span: &tracing::Span,
    ) -> Result<Value, InvokeError> {
        let url = format!(
            "{}{}",
            service.base_url,
            fill(&operation.path, &params.path)?
        );
        let method = Method::from_bytes(operation.method.as_bytes()).unwrap_or(Method::GET);
        let request = self
            .http
            .request(method, url)
            .timeout(service.timeout)
            .query(&params.query)
            .header(reqwest::header::ACCEPT, "application/json");
        let mut request = Self::authorize(service_id, service, request, context).await?;
        for (name, value) in &params.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let mut trace_headers = reqwest::header::HeaderMap::new();
        thesa_traces::inject(span, &mut trace_headers);
        request = request.headers(trace_headers);
        let unreachable = |err: reqwest::Error| {
            if err.is_timeout() {
                InvokeError::Timeout {
                    service: service_id.to_string(),
                    timeout: service.timeout,
                }
            } else {
                InvokeError::Unreachable {
                    service: service_id.to_string(),
                    message: error_chain(&err),
                }
            }
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        if status.is_success() {
            span.record("http.response.status_code", status.as_u16());
        }
        let bytes = self
            .read(service_id, response)
            .await
            .map_err(|err| match err {
                ReadError::Read(err) => unreachable(err),
                too_large => self.read_error(service_id, too_large),
            })?;
        if !status.is_success() {
            return Err(InvokeError::Status {
                service: service_id.to_string(),
                status: status.as_u16(),
                body: serde_json::from_slice(&bytes).ok(),
            });
        }
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|_| InvokeError::NotJson {
            service: service_id.to_string(),
        })
    }
}

impl Invoker {
    /// The body of a backend answer, at most
    /// `server.max_backend_response_bytes` of it.
    pub async fn read(
        &self,
        service_id: &str,
        response: reqwest::Response,
    ) -> Result<Vec<u8>, ReadError> {
        let read = read_limited(response, self.max_answer).await;
        if matches!(read, Err(ReadError::TooLarge)) {
            tracing::warn!(
                service = service_id,
                limit = self.max_answer,
                "backend answer larger than server.max_backend_response_bytes; not read further"
            );
        }
        read
    }

    /// A failed [`Invoker::read`] as an [`InvokeError`].
    pub fn read_error(&self, service_id: &str, err: ReadError) -> InvokeError {
        match err {
            ReadError::TooLarge => InvokeError::TooLarge {
                service: service_id.to_string(),
                limit: self.max_answer,
            },
            ReadError::Read(err) => InvokeError::Unreachable {
                service: service_id.to_string(),
                message: error_chain(&err),
            },
        }
    }
}

/// Most bytes of an error answer read to find its code.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// The JSON of an error answer, when its first [`MAX_ERROR_BODY`] bytes
/// hold one.
pub(crate) async fn error_body(mut response: reqwest::Response) -> Option<Value> {
    let mut bytes = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        bytes.extend_from_slice(&chunk);
        if bytes.len() > MAX_ERROR_BODY {
            return None;
        }
    }
    serde_json::from_slice(&bytes).ok()
}

/// Services this release can call.
fn check(id: &str, service: &ServiceConfig) -> Result<(), String> {
    let url = reqwest::Url::parse(&service.base_url)
        .map_err(|e| format!("services.{id}.base_url {:?}: {e}", service.base_url))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("services.{id}.base_url must be http or https"));
    }
    let names = &service.context_headers;
    for (key, name) in [
        ("tenant", &names.tenant),
        ("partition", &names.partition),
        ("subject", &names.subject),
        ("correlation", &names.correlation),
    ] {
        if !name.is_empty() && reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(format!(
                "services.{id}.context_headers.{key}: {name:?} is not a header name"
            ));
        }
    }
    Ok(())
}

/// A template such as `/orders/{id}` with each `{name}` replaced by
/// `value(name)`; the first error ends it. An unclosed `{` stays as it is.
pub fn fill_template<E>(
    template: &str,
    mut value: impl FnMut(&str) -> Result<String, E>,
) -> Result<String, E> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        out.push_str(&rest[..open]);
        out.push_str(&value(&rest[open + 1..open + close])?);
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The path template with its parameters filled in, each percent-encoded
/// as one path segment (a value cannot add segments or a query).
fn fill(template: &str, values: &BTreeMap<String, String>) -> Result<String, InvokeError> {
    fill_template(template, |name| {
        let value = values
            .get(name)
            .ok_or_else(|| InvokeError::MissingPathParam(name.to_string()))?;
        Ok(
            percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC)
                .to_string(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_headers_follow_the_names_and_skip_what_is_missing() {
        let context = CallContext {
            authorization: None,
            correlation_id: "c-1".into(),
            tenant: Some("acme".into()),
            partition: None,
            subject: Some("bad\nvalue".into()),
        };
        let mut names = ContextHeaders::default();
        assert_eq!(
            context.headers(&names),
            [("X-Tenant-Id", "acme"), ("X-Correlation-Id", "c-1")]
        );
        names.tenant = "X-Org".into();
        names.correlation = String::new();
        assert_eq!(context.headers(&names), [("X-Org", "acme")]);
    }

    #[test]
    fn path_values_are_one_encoded_segment() {
        let values = BTreeMap::from([("id".to_string(), "a/b?c=1".to_string())]);
        assert_eq!(
            fill("/orders/{id}/notes", &values).unwrap(),
            "/orders/a%2Fb%3Fc%3D1/notes"
        );
        assert!(matches!(
            fill("/orders/{id}", &BTreeMap::new()),
            Err(InvokeError::MissingPathParam(name)) if name == "id"
        ));
    }
}
