//! The one error shape of the API:
//!
//! ```json
//! {"error": {"code": "NOT_FOUND", "message": "page \"x\" not found", "correlation_id": "…"}}
//! ```
//!
//! Codes are stable; messages are for people. The correlation ID is the
//! request's (see the middleware), so a user's report finds the log lines;
//! when the request is traced, `trace_id` finds its trace.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::backends::invoker::InvokeError;

tokio::task_local! {
    /// The correlation ID of the request being handled on this task.
    pub static CORRELATION_ID: String;
}

tokio::task_local! {
    /// The trace ID of the request being handled on this task, empty when
    /// it is not traced.
    pub static TRACE_ID: String;
}

/// The trace ID of the current request, when it is traced.
pub fn trace_id() -> Option<String> {
    TRACE_ID
        .try_with(Clone::clone)
        .ok()
        .filter(|id| !id.is_empty())
}

/// The correlation ID of the current request, empty outside one.
pub fn correlation_id() -> String {
    CORRELATION_ID.try_with(Clone::clone).unwrap_or_default()
}

/// An error answered to the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code (a backend's own code when the
    /// command's `error_map` maps it).
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
    /// Structured details, e.g. the fields that failed validation.
    pub details: Option<serde_json::Value>,
    /// `Retry-After` in seconds, for answers that say when to come back.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    /// The same error with a `Retry-After` header of `seconds`.
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// The same error with structured details.
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    /// 404 for anything the caller may not see or that does not exist; the
    /// two are indistinguishable on purpose.
    pub fn not_found(kind: &str, id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("{kind} {id:?} not found"),
        )
    }

    /// 401: no valid token.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", message)
    }

    /// 503: a dependency needed for the answer is down.
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }

    /// A failed backend call as the caller sees it: a stable code, never
    /// the backend's own error body (the log has the details).
    pub fn backend(err: InvokeError) -> Self {
        tracing::warn!(error = %err, "backend call failed");
        match err {
            InvokeError::Status { status: 404, .. } => Self::new(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "the record was not found",
            ),
            InvokeError::Status {
                status: 401 | 403, ..
            } => Self::new(
                StatusCode::FORBIDDEN,
                "BACKEND_FORBIDDEN",
                "the backend refused the request for this caller",
            ),
            InvokeError::Timeout { .. } => Self::new(
                StatusCode::GATEWAY_TIMEOUT,
                "BACKEND_TIMEOUT",
                "the backend did not answer in time",
            ),
            InvokeError::Unreachable { .. } => Self::new(
                StatusCode::BAD_GATEWAY,
                "BACKEND_UNAVAILABLE",
                "the backend could not be reached",
            ),
            InvokeError::ServiceToken { .. } => Self::new(
                StatusCode::BAD_GATEWAY,
                "BACKEND_AUTH_FAILED",
                "the BFF could not get its token for the backend",
            ),
            InvokeError::InvalidInput(message) => {
                Self::new(StatusCode::BAD_REQUEST, "INVALID_INPUT", message)
            }
            InvokeError::TooLarge { .. } => Self::new(
                StatusCode::BAD_GATEWAY,
                "BACKEND_RESPONSE_TOO_LARGE",
                "the backend's answer is larger than this BFF accepts",
            ),
            InvokeError::CircuitOpen { .. } => Self::unavailable(
                "BACKEND_CIRCUIT_OPEN",
                "the backend is failing and is given time to recover; retry later",
            ),
            _ => Self::new(
                StatusCode::BAD_GATEWAY,
                "BACKEND_ERROR",
                "the backend answered with an error",
            ),
        }
    }

    /// 500 without details (they are in the log).
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "internal error; the correlation ID finds the details in the BFF's log",
        )
    }
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: Body<'a>,
}

#[derive(Serialize)]
struct Body<'a> {
    code: &'a str,
    message: &'a str,
    correlation_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a serde_json::Value>,
}

impl ApiError {
    /// The response, with the given correlation ID (for layers outside the
    /// request's task-local scope).
    pub fn response_with(self, correlation_id: String) -> Response {
        let mut response = (self.status, Json(self.body(correlation_id))).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }

    /// The JSON body of the error shape.
    pub fn body(&self, correlation_id: String) -> serde_json::Value {
        let envelope = Envelope {
            error: Body {
                code: &self.code,
                message: &self.message,
                correlation_id,
                trace_id: trace_id(),
                details: self.details.as_ref(),
            },
        };
        serde_json::to_value(envelope).unwrap_or_default()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.response_with(correlation_id())
    }
}
