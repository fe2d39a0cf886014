//! The HTTP client the BFF uses for its own calls (JWKS, OPA, service
//! tokens, backends): rustls on the `ring` provider, which the rest of the
//! workspace already builds, instead of reqwest's default aws-lc.

use std::time::Duration;

/// A pooled client. Installs the process-wide rustls provider first
/// (idempotent).
pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()
}

/// An error with its causes, `a: b: c` (reqwest hides the useful part, such
/// as "connection refused", in the source chain).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Why a bounded read of an answer stopped.
#[derive(Debug)]
pub enum ReadError {
    /// The body is larger than the limit (declared or as it came in); it
    /// was not read further.
    TooLarge,
    /// The connection failed while reading.
    Read(reqwest::Error),
}

/// The body of `response`, at most `limit` bytes: a `Content-Length` above
/// the limit is refused before reading, and a body without one is read
/// chunk by chunk and dropped as soon as it passes the limit, so no more
/// than `limit` bytes (plus one chunk) are ever held.
pub async fn read_limited(
    mut response: reqwest::Response,
    limit: u64,
) -> Result<Vec<u8>, ReadError> {
    let declared = response.content_length();
    if declared.is_some_and(|length| length > limit) {
        return Err(ReadError::TooLarge);
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(0) as usize);
    while let Some(chunk) = response.chunk().await.map_err(ReadError::Read)? {
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
