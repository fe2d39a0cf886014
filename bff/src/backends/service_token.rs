//! `auth.strategy: service_token`: the BFF calls a service with its own
//! token from an OAuth2 client-credentials grant (`token_endpoint`,
//! `client_id`, the secret from the variable `client_secret_env` names,
//! `THESA_SERVICE_TOKEN_SECRET` by default). The token is kept until
//! shortly before it expires; concurrent requests share one fetch; a
//! backend's 401 drops it so that the next attempt fetches a new one.

use std::time::{Duration, Instant};

use serde::Deserialize;
use thesa_core::config::AuthConfig;
use tokio::sync::Mutex;

/// A token is renewed this long before it expires.
const RENEW_BEFORE: Duration = Duration::from_secs(30);
/// Lifetime assumed when the token endpoint names none.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);
/// Most time a token request may take.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(5);

/// Why no service token could be had.
#[derive(Debug, thiserror::Error)]
#[error("service token from {endpoint}: {message}")]
pub struct TokenError {
    endpoint: String,
    message: String,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// One service's token source.
#[derive(Debug)]
pub struct ServiceToken {
    endpoint: String,
    client_id: String,
    secret: String,
    http: reqwest::Client,
    current: Mutex<Option<(String, Instant)>>,
}

impl ServiceToken {
    /// The token source of a service's `auth`; an error names what is
    /// missing.
    pub fn new(service: &str, auth: &AuthConfig, http: reqwest::Client) -> Result<Self, String> {
        let endpoint = auth.token_endpoint.clone().ok_or_else(|| {
            format!("services.{service}.auth.token_endpoint is required for service_token")
        })?;
        let client_id = auth.client_id.clone().ok_or_else(|| {
            format!("services.{service}.auth.client_id is required for service_token")
        })?;
        let variable = auth
            .client_secret_env
            .clone()
            .unwrap_or_else(|| "THESA_SERVICE_TOKEN_SECRET".into());
        let secret = std::env::var(&variable).map_err(|_| {
            format!("services.{service}.auth: the client secret is read from {variable}, which is not set")
        })?;
        Ok(Self {
            endpoint,
            client_id,
            secret,
            http,
            current: Mutex::new(None),
        })
    }

    /// A valid token, fetched when there is none or it is about to expire.
    pub async fn get(&self) -> Result<String, TokenError> {
        // Held across the fetch: concurrent callers wait for one request.
        let mut current = self.current.lock().await;
        if let Some((token, expires)) = current.as_ref()
            && Instant::now() + RENEW_BEFORE < *expires
        {
            return Ok(token.clone());
        }
        let fail = |message: String| TokenError {
            endpoint: self.endpoint.clone(),
            message,
        };
        let response = self
            .http
            .post(&self.endpoint)
            .timeout(TOKEN_TIMEOUT)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", self.client_id.as_str()),
                ("client_secret", self.secret.as_str()),
            ])
            .send()
            .await
            .map_err(|e| fail(crate::backends::outbound::error_chain(&e)))?;
        if !response.status().is_success() {
            return Err(fail(format!("answered {}", response.status())));
        }
        let answer: TokenAnswer = response
            .json()
            .await
            .map_err(|e| fail(format!("unexpected answer: {e}")))?;
        let lifetime = answer
            .expires_in
            .map_or(DEFAULT_LIFETIME, Duration::from_secs);
        *current = Some((answer.access_token.clone(), Instant::now() + lifetime));
        Ok(answer.access_token)
    }

    /// Drops the token (the backend refused it).
    pub async fn forget(&self) {
        *self.current.lock().await = None;
    }
}
