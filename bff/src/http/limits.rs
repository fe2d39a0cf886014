//! Size limits and the headers every answer carries.
//!
//! - Request bodies: at most `server.max_request_body_bytes` (default
//!   1 MiB). A `Content-Length` above it is refused before the handler
//!   runs; a body without one (chunked) is cut off by axum's
//!   [`DefaultBodyLimit`] as the handler reads it. Both answer 413 in the
//!   error shape (`PAYLOAD_TOO_LARGE`). `POST /ui/upload` streams files
//!   and has its own limit (`files.max_upload_bytes`).
//! - Request heads: `server.max_header_bytes` and `server.max_headers` are
//!   hyper's; past them hyper answers 431 and closes the connection (see
//!   [`http1`]).
//! - Backend answers: see `backends::outbound::read_limited`.
//! - Headers: `X-Content-Type-Options: nosniff` and `X-Frame-Options: DENY`
//!   on every answer, `Strict-Transport-Security` when `server.hsts` is
//!   on, and `Cache-Control: no-store` on `/ui/*` answers that set no
//!   caching of their own (pages, forms and navigation keep `private,
//!   no-cache` with their ETag: they may be revalidated, never shared).

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use thesa_core::config::{HstsConfig, ServerConfig};

use crate::error::ApiError;

/// The upload route, whose body is streamed under its own limit.
const UPLOAD: &str = "/ui/upload";

/// axum's limit for the extractors that buffer a body (`Bytes`, `Json`).
pub fn default_body_limit(config: &ServerConfig) -> DefaultBodyLimit {
    DefaultBodyLimit::max(usize::try_from(config.max_request_body_bytes).unwrap_or(usize::MAX))
}

fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "PAYLOAD_TOO_LARGE",
        format!("the request body is larger than {limit} bytes (server.max_request_body_bytes)"),
    )
}

/// Refuses a declared body above `limit` at once, and gives axum's own
/// 413 (plain text, from the extractor) the error shape.
pub async fn request_body(limit: u64, request: Request, next: Next) -> Response {
    if request.uri().path() == UPLOAD {
        return next.run(request).await;
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit) {
        return too_large(limit).into_response();
    }
    let response = next.run(request).await;
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_json {
        return too_large(limit).into_response();
    }
    response
}

/// `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY`,
/// `Strict-Transport-Security` when on, and `Cache-Control: no-store` on
/// `/ui/*` answers without a caching header of their own: they are per
/// caller and often change. The state is [`hsts_value`].
pub async fn headers(
    State(hsts): State<Option<HeaderValue>>,
    request: Request,
    next: Next,
) -> Response {
    let ui = request.uri().path().starts_with("/ui/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if let Some(hsts) = hsts {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, hsts);
    }
    if ui && !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The `Strict-Transport-Security` value of `server.hsts`, when on.
pub fn hsts_value(config: &HstsConfig) -> Option<HeaderValue> {
    if !config.enabled {
        return None;
    }
    let mut value = format!("max-age={}", config.max_age.get().as_secs());
    if config.include_subdomains {
        value.push_str("; includeSubDomains");
    }
    HeaderValue::from_str(&value).ok()
}

/// Applies the head limits of `server` to hyper's HTTP/1 connections.
pub fn http1(builder: &mut hyper::server::conn::http1::Builder, config: &ServerConfig) {
    builder.max_header_size(usize::try_from(config.max_header_bytes).unwrap_or(usize::MAX));
    // hyper keeps 100 header slots on the stack; another number costs a
    // heap allocation per request, so it is set only when changed.
    if config.max_headers != 100 {
        builder.max_headers(config.max_headers as usize);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hsts_value_follows_the_config() {
        let mut config = HstsConfig::default();
        assert!(hsts_value(&config).is_none());
        config.enabled = true;
        assert_eq!(hsts_value(&config).unwrap(), "max-age=31536000");
        config.include_subdomains = true;
        assert_eq!(
            hsts_value(&config).unwrap(),
            "max-age=31536000; includeSubDomains"
        );
    }
}
