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
