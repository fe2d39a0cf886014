//! Request helpers the handlers share: the `{id}` of a route, a JSON body,
//! the query string as pairs (each refused with 400 in the error shape, as
//! axum's own rejections are plain text), and the call context a backend
//! call carries from the caller.

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode, header};

use crate::access::Caller;
use crate::backends::invoker::CallContext;
use crate::error::ApiError;

/// The `{id}` of a route, or 400 in the error shape (axum's own rejection
/// is plain text).
pub(crate) fn id(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    path.map(|Path(id)| id).map_err(|rejection| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            rejection.body_text(),
        )
    })
}

/// A JSON request body as `T`; an empty body reads as `{}`. A body that
/// does not fit is 400 naming the expected `shape`.
pub(crate) fn json_body<T: serde::de::DeserializeOwned>(
    bytes: &Bytes,
    shape: &str,
) -> Result<T, ApiError> {
    let bytes: &[u8] = if bytes.is_empty() { b"{}" } else { bytes };
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            format!("the body must be {shape}: {e}"),
        )
    })
}

/// The query string as pairs, in order.
pub(crate) type QueryPairs = Result<Query<Vec<(String, String)>>, QueryRejection>;

pub(crate) fn pairs(query: QueryPairs) -> Result<Vec<(String, String)>, ApiError> {
    query.map(|Query(pairs)| pairs).map_err(|rejection| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_QUERY",
            rejection.body_text(),
        )
    })
}

/// What the backend call carries from the caller.
pub(crate) fn call_context(caller: &Caller, headers: &HeaderMap) -> CallContext {
    CallContext {
        authorization: headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(String::from),
        correlation_id: crate::error::correlation_id(),
        tenant: Some(caller.principal.tenant.clone()),
        partition: caller.partition.clone(),
        subject: Some(caller.principal.subject.clone()),
    }
}
