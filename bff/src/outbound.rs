//! The HTTP client the BFF uses for its own calls (JWKS, OPA; backends in
//! a later release): rustls on the `ring` provider, which the rest of the
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
