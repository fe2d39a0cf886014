//! Authentication: the caller's JWT, verified against the identity
//! provider's keys.
//!
//! Verification is strict and happens in this order, so a forged token is
//! turned away before it can influence anything: the header must be a
//! bearer token; its `alg` must be one of `identity.algorithms` (which
//! rules out `none`, HMAC and every algorithm a public key could be
//! confused with); the key is chosen from the key set by `kid` *and*
//! algorithm; then signature, `exp`, `nbf`, `iss` and `aud` are checked;
//! only then are the claims read at the configured claim paths.
//!
//! Keys come from a local JWKS file (read once) or the identity provider's
//! JWKS URL. Fetched keys are kept for `identity.jwks_cache_ttl`; a token
//! signed with a key the set does not have yet (key rotation) triggers one
//! refetch, at most once per [`REFETCH_INTERVAL`], so tokens with made-up
//! key IDs cannot turn the BFF into a load generator against the identity
//! provider.

use std::fmt;
use std::hash::BuildHasher;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;
use thesa_core::config::{self, ClaimPaths, IdentityConfig};

/// Who is calling, read from a verified token at the configured claim paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Subject (`claim_paths.subject_id`).
    pub subject: String,
    /// Tenant (`claim_paths.tenant_id`); every request is scoped by it.
    pub tenant: String,
    /// E-mail address, when the token has one.
    pub email: Option<String>,
    /// Roles (an array claim, or a string of comma- or space-separated roles).
    pub roles: Vec<String>,
    /// Partitions the caller may use (`claim_paths.partition_id`: a string or
    /// an array); the first is the default. Empty when the token has none.
    pub partitions: Vec<String>,
}

/// Clock skew tolerated on `exp` and `nbf`, in seconds: the BFF's clock and
/// the identity provider's are never exactly in step, and a minute is the
/// customary allowance (it is also jsonwebtoken's default).
const LEEWAY_SECS: u64 = 60;

/// Least time between two key-set fetches made on behalf of requests (an
/// unknown `kid`, an expired cache, a failed start-up fetch). Rotation is
/// still picked up within seconds, while a stream of tokens with random key
/// IDs costs the identity provider at most one request per interval.
const REFETCH_INTERVAL: Duration = Duration::from_secs(10);

/// Most time one key-set fetch may take, connecting and reading included;
/// requests wait for a fetch when no key can verify them, so it must be short.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest key-set document accepted; real ones are a few kilobytes.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// Longest token accepted; real ones are a few kilobytes, and a bound keeps
/// the parsing cost of garbage predictable.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Longest key ID quoted back in an error; the rest is cut off, since the
/// value is whatever the caller put in the token.
const MAX_SHOWN_KID: usize = 64;

/// How long a verified token is remembered. A signature check (RSA in
/// particular) costs far more than the rest of a metadata request, and a
/// frontend sends the same token with every request; remembering it for a
/// minute bounds how long a key withdrawn from the key set keeps working.
/// Expiry is still checked on every request.
const VERIFIED_TTL: Duration = Duration::from_secs(60);

/// Most verified tokens remembered (each entry holds the token and the
/// principal: about a kilobyte for a typical token, 10 MB at most).
const VERIFIED_MAX: u64 = 10_000;

/// A token verified recently, with its principal and `exp`.
struct Verified {
    token: Box<str>,
    principal: Principal,
    exp: u64,
}

/// Why a request is not authenticated. Messages describe the problem
/// without quoting the token, so they are safe to log and to return.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The request has no `Authorization` header, or `Bearer` without a
    /// token.
    #[error("no bearer token: send the header `Authorization: Bearer <token>`")]
    MissingToken,
    /// The header is not `Bearer <token>`, or the token is not a JWS in
    /// compact form with a header this BFF can read (an `alg` of `none` or
    /// one jsonwebtoken does not know lands here too, as does a header with
    /// `crit` extensions).
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The token's `alg` is not one of `identity.algorithms`.
    #[error("token algorithm {alg} is not accepted (accepted: {accepted})")]
    AlgorithmNotAllowed {
        /// The token's algorithm.
        alg: String,
        /// The configured algorithms.
        accepted: String,
    },
    /// No key of the key set matches the token's `kid` and algorithm, even
    /// after refetching the set (or the token has no `kid` and the set does
    /// not have exactly one key for the algorithm).
    #[error("{}", unknown_key_message(kid.as_deref(), alg))]
    UnknownKey {
        /// The token's key ID (cut to 64 characters), if it has one.
        kid: Option<String>,
        /// The token's algorithm.
        alg: String,
    },
    /// The signature does not verify with the selected key.
    #[error("token signature is not valid")]
    BadSignature,
    /// `exp` is in the past (beyond the leeway).
    #[error("token has expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token is not valid yet (nbf is in the future)")]
    NotYetValid,
    /// `iss` is not `identity.issuer`.
    #[error("token was issued by another issuer than the one configured")]
    WrongIssuer,
    /// `aud` does not contain `identity.audience`.
    #[error("token is meant for another audience than this BFF")]
    WrongAudience,
    /// A required claim is absent (or null): `exp`, `iss`, `aud`, or the
    /// subject or tenant at its claim path.
    #[error("token has no {claim:?} claim")]
    MissingClaim {
        /// The claim path.
        claim: String,
    },
    /// A claim has the wrong type or is empty, e.g. a numeric tenant or an
    /// array of roles containing a number.
    #[error("token claim {claim:?} must be {expected}")]
    InvalidClaim {
        /// The claim path.
        claim: String,
        /// What the claim must be.
        expected: &'static str,
    },
    /// The key set has never been loaded: the identity provider could not
    /// be reached at start-up nor since. Not the caller's fault; retrying
    /// later may succeed.
    #[error("the identity provider's signing keys are not available; try again later")]
    JwksUnavailable,
}

impl AuthError {
    /// A short, stable snake_case label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MissingToken => "missing_token",
            Self::Malformed(_) => "malformed",
            Self::AlgorithmNotAllowed { .. } => "algorithm_not_allowed",
            Self::UnknownKey { .. } => "unknown_key",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::MissingClaim { .. } => "missing_claim",
            Self::InvalidClaim { .. } => "invalid_claim",
            Self::JwksUnavailable => "jwks_unavailable",
        }
    }
}

fn unknown_key_message(kid: Option<&str>, alg: &str) -> String {
    match kid {
        Some(kid) => {
            format!("no {alg} signing key with kid {kid:?} in the identity provider's key set")
        }
        None => format!(
            "token names no signing key (kid) and the identity provider's key set does not have \
             exactly one {alg} key"
        ),
    }
}

/// Why the identity settings cannot be used; the BFF does not start.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    /// A required setting is absent or empty.
    #[error("{key} is not set: set it to {meaning}")]
    MissingSetting {
        /// The setting, e.g. `identity.issuer`.
        key: &'static str,
        /// What it must hold.
        meaning: &'static str,
    },
    /// Neither `identity.jwks_url` nor `identity.jwks_file` is set.
    #[error(
        "identity.jwks_url and identity.jwks_file are both unset: set jwks_url to the identity \
         provider's JWKS endpoint (or, for development, jwks_file to a local JWKS file)"
    )]
    NoKeySource,
    /// Both `identity.jwks_url` and `identity.jwks_file` are set.
    #[error("identity.jwks_url and identity.jwks_file are both set: keep only one")]
    ConflictingKeySources,
    /// `identity.algorithms` is empty.
    #[error("identity.algorithms is empty: list RS256, ES256 or both")]
    NoAlgorithms,
    /// `identity.jwks_url` is not an http(s) URL.
    #[error("identity.jwks_url {url:?} is not an http or https URL")]
    InvalidJwksUrl {
        /// The configured value.
        url: String,
    },
    /// The `identity.jwks_file` cannot be read.
    #[error("cannot read identity.jwks_file {path}: {source}")]
    ReadJwksFile {
        /// The configured path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The `identity.jwks_file` is not a usable key set.
    #[error("identity.jwks_file {path}: {source}")]
    InvalidJwksFile {
        /// The configured path.
        path: String,
        /// What is wrong with it.
        source: JwksError,
    },
}

/// Why a key set (from the URL or the file) cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// The request failed: connection, TLS, timeout or body.
    #[error("request failed: {0}")]
    Fetch(#[source] reqwest::Error),
    /// The server answered with a status other than 2xx.
    #[error("the server answered HTTP {0}")]
    Status(u16),
    /// The document exceeds the size limit.
    #[error("the key set is larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    /// The document is not a JSON object with a `keys` array.
    #[error("not a JWKS document (a JSON object with a \"keys\" array): {0}")]
    NotJwks(#[source] serde_json::Error),
    /// No key in the set can verify any configured algorithm.
    #[error(
        "no key usable for {algorithms} (RSA keys for RS256, EC P-256 keys for ES256, with \"use\" \
         absent or \"sig\" and \"alg\" absent or matching)"
    )]
    NoUsableKeys {
        /// The configured algorithms.
        algorithms: String,
    },
}

/// One key of the key set, checked usable for one algorithm.
struct VerificationKey {
    /// The JWK's `kid`.
    kid: Option<String>,
    /// The only algorithm this key verifies.
    alg: Algorithm,
    key: DecodingKey,
}

/// The keys in use and when they were loaded.
struct KeySet {
    keys: Vec<VerificationKey>,
    /// `None` until the first successful fetch.
    loaded_at: Option<Instant>,
}

impl KeySet {
    fn loaded(keys: Vec<VerificationKey>) -> Self {
        Self {
            keys,
            loaded_at: Some(Instant::now()),
        }
    }

    /// The key for a token: the one with its `kid` and algorithm, or, when
    /// the token names no key, the only key for its algorithm.
    fn find(&self, kid: Option<&str>, alg: Algorithm) -> Option<&DecodingKey> {
        let mut candidates = self.keys.iter().filter(|k| k.alg == alg);
        let found = match kid {
            Some(kid) => candidates.find(|k| k.kid.as_deref() == Some(kid)),
            None => match (candidates.next(), candidates.next()) {
                (Some(only), None) => Some(only),
                _ => None,
            },
        };
        found.map(|k| &k.key)
    }

    fn is_fresh(&self, ttl: Duration) -> bool {
        self.loaded_at.is_some_and(|at| at.elapsed() < ttl)
    }
}

/// Where the keys come from.
enum KeySource {
    /// A local file, read once at construction.
    File,
    /// The identity provider's JWKS endpoint.
    Url {
        url: reqwest::Url,
        http: reqwest::Client,
    },
}

/// Verifies bearer tokens and reads the [`Principal`] from them. Share it
/// behind an `Arc`; all methods take `&self`.
pub struct Authenticator {
    algorithms: Vec<Algorithm>,
    /// One validation per accepted algorithm (issuer, audience, leeway).
    validations: Vec<(Algorithm, Validation)>,
    claim_paths: ClaimPaths,
    source: KeySource,
    cache_ttl: Duration,
    keys: RwLock<Arc<KeySet>>,
    /// When the last fetch made on behalf of a request started. Held across
    /// the fetch, so concurrent requests needing fresh keys wait for that
    /// one fetch instead of starting their own.
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
    /// Tokens verified recently, by a fast hash of the token (a hit counts
    /// only when the whole token is equal, so a collision is a miss).
    verified: moka::sync::Cache<u64, Arc<Verified>>,
    hasher: foldhash::fast::RandomState,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.source {
            KeySource::File => "file".to_string(),
            KeySource::Url { url, .. } => url.to_string(),
        };
        f.debug_struct("Authenticator")
            .field("algorithms", &self.algorithms)
            .field("key_source", &source)
            .field("keys", &self.snapshot().keys.len())
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Checks the identity settings and loads the keys: a `jwks_file` is
    /// read now (failure is an error); a `jwks_url` is fetched now, but if
    /// that fails the BFF still starts, logs a warning and fetches on the
    /// first request, so an identity provider hiccup cannot crash-loop it.
    pub async fn new(
        config: &IdentityConfig,
        http: reqwest::Client,
    ) -> Result<Self, AuthSetupError> {
        let issuer = setting(&config.issuer).ok_or(AuthSetupError::MissingSetting {
            key: "identity.issuer",
            meaning: "the `iss` claim of the identity provider's tokens",
        })?;
        let audience = setting(&config.audience).ok_or(AuthSetupError::MissingSetting {
            key: "identity.audience",
            meaning: "the `aud` value tokens for this BFF carry",
        })?;
        if config.claim_paths.subject_id.is_empty() {
            return Err(AuthSetupError::MissingSetting {
                key: "identity.claim_paths.subject_id",
                meaning: "the claim holding the caller's ID, e.g. `sub`",
            });
        }
        if config.claim_paths.tenant_id.is_empty() {
            return Err(AuthSetupError::MissingSetting {
                key: "identity.claim_paths.tenant_id",
                meaning: "the claim holding the caller's tenant, e.g. `custom:tenant_id`",
            });
        }
        let mut algorithms = Vec::new();
        for alg in &config.algorithms {
            let alg = match alg {
                config::Algorithm::RS256 => Algorithm::RS256,
                config::Algorithm::ES256 => Algorithm::ES256,
            };
            if !algorithms.contains(&alg) {
                algorithms.push(alg);
            }
        }
        if algorithms.is_empty() {
            return Err(AuthSetupError::NoAlgorithms);
        }
        let validations = algorithms
            .iter()
            .map(|&alg| (alg, validation(alg, issuer, audience)))
            .collect();

        let (source, keys) = match (setting(&config.jwks_url), setting(&config.jwks_file)) {
            (Some(_), Some(_)) => return Err(AuthSetupError::ConflictingKeySources),
            (None, None) => return Err(AuthSetupError::NoKeySource),
            (None, Some(path)) => {
                let bytes = std::fs::read(path).map_err(|source| AuthSetupError::ReadJwksFile {
                    path: path.to_string(),
                    source,
                })?;
                let keys = parse_key_set(&bytes, &algorithms).map_err(|source| {
                    AuthSetupError::InvalidJwksFile {
                        path: path.to_string(),
                        source,
                    }
                })?;
                (KeySource::File, KeySet::loaded(keys))
            }
            (Some(url), None) => {
                let invalid = || AuthSetupError::InvalidJwksUrl {
                    url: url.to_string(),
                };
                let url = reqwest::Url::parse(url).map_err(|_| invalid())?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err(invalid());
                }
                // The start-up fetch does not count towards REFETCH_INTERVAL:
                // a key rotated just after start-up is picked up at once.
                let keys = match fetch_key_set(&http, &url, &algorithms).await {
                    Ok(keys) => KeySet::loaded(keys),
                    Err(err) => {
                        tracing::warn!(
                            jwks_url = %url,
                            error = %crate::backends::outbound::error_chain(&err),
                            "cannot fetch the identity provider's signing keys; starting anyway, \
                             requests will retry"
                        );
                        KeySet {
                            keys: Vec::new(),
                            loaded_at: None,
                        }
                    }
                };
                (KeySource::Url { url, http }, keys)
            }
        };
        Ok(Self {
            algorithms,
            validations,
            claim_paths: config.claim_paths.clone(),
            source,
            cache_ttl: config.jwks_cache_ttl.get(),
            keys: RwLock::new(Arc::new(keys)),
            last_fetch: tokio::sync::Mutex::new(None),
            verified: moka::sync::Cache::builder()
                .max_capacity(VERIFIED_MAX)
                .time_to_live(VERIFIED_TTL)
                .build(),
            hasher: foldhash::fast::RandomState::default(),
        })
    }

    /// Verifies the token in an `Authorization` header value and reads the
    /// caller from its claims.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Principal, AuthError> {
        let token = bearer_token(authorization)?;
        let cache_key = self.hasher.hash_one(token);
        if let Some(entry) = self.verified.get(&cache_key).filter(|e| *e.token == *token) {
            if entry.exp.saturating_add(LEEWAY_SECS) >= unix_now() {
                return Ok(entry.principal.clone());
            }
            self.verified.invalidate(&cache_key);
            return Err(AuthError::Expired);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| {
            AuthError::Malformed(
                "the token header is not base64url JSON with a known algorithm (alg)",
            )
        })?;
        // RFC 7515 §4.1.11: extensions listed in `crit` must be understood,
        // and this BFF understands none.
        if header.crit.is_some() {
            return Err(AuthError::Malformed(
                "the token header lists critical extensions (crit), which are not supported",
            ));
        }
        let alg = header.alg;
        let Some((_, validation)) = self.validations.iter().find(|(a, _)| *a == alg) else {
            return Err(AuthError::AlgorithmNotAllowed {
                alg: format!("{alg:?}"),
                accepted: self.accepted(),
            });
        };
        let kid = header.kid.as_deref();

        let mut keys = self.current_keys().await;
        if keys.find(kid, alg).is_none() {
            keys = self.refresh(&keys, true).await;
        }
        let Some(key) = keys.find(kid, alg) else {
            if keys.loaded_at.is_none() {
                return Err(AuthError::JwksUnavailable);
            }
            return Err(AuthError::UnknownKey {
                kid: kid.map(shown_kid),
                alg: format!("{alg:?}"),
            });
        };

        let claims = jsonwebtoken::decode::<Value>(token, key, validation)
            .map_err(verification_error)?
            .claims;
        let principal = principal(&claims, &self.claim_paths)?;
        // Validation requires `exp`, so it is there.
        if let Some(exp) = claims.get("exp").and_then(Value::as_u64) {
            let entry = Verified {
                token: token.into(),
                principal: principal.clone(),
                exp,
            };
            self.verified.insert(cache_key, Arc::new(entry));
        }
        Ok(principal)
    }

    /// Whether a key set has been loaded (for readiness: without one no
    /// token can be verified). Does not fetch.
    pub fn has_keys(&self) -> bool {
        self.snapshot().loaded_at.is_some()
    }

    fn accepted(&self) -> String {
        algorithm_list(&self.algorithms)
    }

    fn snapshot(&self) -> Arc<KeySet> {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The keys to verify with, refreshed when the cache has expired. Stale
    /// keys keep verifying while another request refreshes them, and when
    /// the refresh fails: an identity provider outage must not lock
    /// everybody out.
    async fn current_keys(&self) -> Arc<KeySet> {
        let keys = self.snapshot();
        if matches!(self.source, KeySource::File) || keys.is_fresh(self.cache_ttl) {
            return keys;
        }
        let wait = keys.loaded_at.is_none();
        self.refresh(&keys, wait).await
    }

    /// Fetches the key set again unless another request has done so since
    /// `seen` was taken, or the last fetch is less than [`REFETCH_INTERVAL`]
    /// ago. With `wait` false, returns `seen` rather than wait for a fetch
    /// in progress. A failed fetch keeps the keys already loaded.
    async fn refresh(&self, seen: &Arc<KeySet>, wait: bool) -> Arc<KeySet> {
        let KeySource::Url { url, http } = &self.source else {
            return seen.clone();
        };
        let mut last_fetch = if wait {
            self.last_fetch.lock().await
        } else {
            match self.last_fetch.try_lock() {
                Ok(guard) => guard,
                Err(_) => return seen.clone(),
            }
        };
        let current = self.snapshot();
        if !Arc::ptr_eq(&current, seen)
            || last_fetch.is_some_and(|at| at.elapsed() < REFETCH_INTERVAL)
        {
            return current;
        }
        *last_fetch = Some(Instant::now());
        match fetch_key_set(http, url, &self.algorithms).await {
            Ok(keys) => {
                tracing::debug!(jwks_url = %url, keys = keys.len(), "fetched signing keys");
                let fresh = Arc::new(KeySet::loaded(keys));
                *self.keys.write().unwrap_or_else(PoisonError::into_inner) = fresh.clone();
                fresh
            }
            Err(err) => {
                tracing::warn!(
                    jwks_url = %url,
                    error = %crate::backends::outbound::error_chain(&err),
                    kept = current.keys.len(),
                    "cannot fetch the identity provider's signing keys; keeping the keys loaded"
                );
                current
            }
        }
    }
}

/// The value of an optional setting, treating an empty string as unset.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn setting(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

fn validation(alg: Algorithm, issuer: &str, audience: &str) -> Validation {
    let mut validation = Validation::new(alg);
    validation.leeway = LEEWAY_SECS;
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.validate_aud = true;
    // jsonwebtoken checks `iss` and `aud` only when present; requiring them
    // makes a token without them fail instead of pass.
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation
}

fn algorithm_list(algorithms: &[Algorithm]) -> String {
    algorithms
        .iter()
        .map(|a| format!("{a:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The token of a `Bearer` authorization header (scheme case-insensitive).
fn bearer_token(authorization: Option<&str>) -> Result<&str, AuthError> {
    let value = authorization.map(str::trim).unwrap_or_default();
    if value.is_empty() {
        return Err(AuthError::MissingToken);
    }
    let (scheme, token) = value
        .split_once(|c: char| c.is_ascii_whitespace())
        .unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Malformed(
            "the Authorization header must use the Bearer scheme",
        ));
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthError::MissingToken);
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(AuthError::Malformed("the token is longer than 16 KiB"));
    }
    if token.split('.').count() != 3 {
        return Err(AuthError::Malformed(
            "the token is not a JWS in compact form (header.payload.signature)",
        ));
    }
    Ok(token)
}

/// An error of jsonwebtoken's decoding as the caller's problem.
fn verification_error(err: jsonwebtoken::errors::Error) -> AuthError {
    match err.into_kind() {
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::MissingRequiredClaim(claim) => AuthError::MissingClaim { claim },
        ErrorKind::InvalidClaimFormat(claim) => AuthError::InvalidClaim {
            claim,
            expected: "a number of seconds since the epoch",
        },
        // Keys are checked when loaded, so the key itself failing is not
        // expected; it is still the signature that cannot be verified.
        ErrorKind::InvalidRsaKey(_) | ErrorKind::InvalidEcdsaKey | ErrorKind::InvalidKeyFormat => {
            AuthError::BadSignature
        }
        _ => AuthError::Malformed(
            "the token is not a JWS with base64url JSON header and payload and a signature",
        ),
    }
}

fn shown_kid(kid: &str) -> String {
    match kid.char_indices().nth(MAX_SHOWN_KID) {
        Some((end, _)) => format!("{}...", &kid[..end]),
        None => kid.to_string(),
    }
}

/// The caller, read from verified claims.
fn principal(claims: &Value, paths: &ClaimPaths) -> Result<Principal, AuthError> {
    Ok(Principal {
        subject: required_string(claims, &paths.subject_id)?,
        tenant: required_string(claims, &paths.tenant_id)?,
        email: optional_string(claims, &paths.email)?,
        roles: string_list(
            claims,
            &paths.roles,
            "an array of strings or a string of comma- or space-separated roles",
            |text| {
                text.split(|c: char| c == ',' || c.is_whitespace())
                    .filter(|role| !role.is_empty())
                    .map(str::to_string)
                    .collect()
            },
        )?,
        partitions: string_list(
            claims,
            &paths.partition_id,
            "a string or an array of strings",
            |text| vec![text.to_string()],
        )?,
    })
}

/// The claim at `path`: the top-level claim named exactly `path` when there
/// is one (namespaced claims such as `https://example.com/roles` contain
/// dots), else the dotted path walked through nested objects
/// (`realm_access.roles`). Every segment is a literal key, so
/// `custom:tenant_id` is one key. A null claim counts as absent.
fn claim<'a>(claims: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return None;
    }
    claims
        .get(path)
        .or_else(|| {
            path.split('.')
                .try_fold(claims, |value, segment| value.get(segment))
        })
        .filter(|value| !value.is_null())
}

fn required_string(claims: &Value, path: &str) -> Result<String, AuthError> {
    optional_string(claims, path)?.ok_or_else(|| AuthError::MissingClaim {
        claim: path.to_string(),
    })
}

fn optional_string(claims: &Value, path: &str) -> Result<Option<String>, AuthError> {
    match claim(claims, path) {
        None => Ok(None),
        Some(Value::String(text)) if !text.trim().is_empty() => Ok(Some(text.clone())),
        Some(_) => Err(AuthError::InvalidClaim {
            claim: path.to_string(),
            expected: "a non-empty string",
        }),
    }
}

/// A claim holding a list: an array of strings, or a string that `split`
/// turns into one. Absent means empty; empty strings are dropped.
fn string_list(
    claims: &Value,
    path: &str,
    expected: &'static str,
    split: impl Fn(&str) -> Vec<String>,
) -> Result<Vec<String>, AuthError> {
    let invalid = || AuthError::InvalidClaim {
        claim: path.to_string(),
        expected,
    };
    match claim(claims, path) {
        None => Ok(Vec::new()),
        Some(Value::String(text)) if text.trim().is_empty() => Ok(Vec::new()),
        Some(Value::String(text)) => Ok(split(text.trim())),
        Some(Value::Array(items)) => items
            .iter()
            .filter(|item| item.as_str() != Some(""))
            .map(|item| item.as_str().map(str::to_string).ok_or_else(invalid))
            .collect(),
        Some(_) => Err(invalid()),
    }
}

/// A JWKS document; keys are parsed one by one so that one key of a type
/// this BFF cannot use does not make the whole set unusable.
#[derive(Deserialize)]
struct JwksDocument {
    keys: Vec<Value>,
}

/// The keys of a JWKS document usable for the configured algorithms.
fn parse_key_set(
    bytes: &[u8],
    algorithms: &[Algorithm],
) -> Result<Vec<VerificationKey>, JwksError> {
    let document: JwksDocument = serde_json::from_slice(bytes).map_err(JwksError::NotJwks)?;
    let keys: Vec<_> = document
        .keys
        .into_iter()
        .filter_map(|key| usable_key(key, algorithms))
        .collect();
    if keys.is_empty() {
        return Err(JwksError::NoUsableKeys {
            algorithms: algorithm_list(algorithms),
        });
    }
    Ok(keys)
}

/// The key as a verification key, if it can verify one of `algorithms`:
/// a signing key (`use` absent or `sig`) whose type fits the algorithm (RSA
/// for RS256, EC P-256 for ES256) and whose declared `alg`, if any, is that
/// algorithm. Symmetric (`oct`) keys never qualify.
fn usable_key(value: Value, algorithms: &[Algorithm]) -> Option<VerificationKey> {
    let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
        tracing::debug!("skipping a JWKS entry of a key type this BFF does not use");
        return None;
    };
    let kid = jwk.common.key_id.clone();
    let skip = |why: &str| {
        tracing::debug!(
            kid = kid.as_deref().unwrap_or(""),
            "skipping JWKS key: {why}"
        );
        None
    };
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|key_use| *key_use != PublicKeyUse::Signature)
    {
        return skip("not a signing key");
    }
    let (alg, declared) = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => (Algorithm::RS256, KeyAlgorithm::RS256),
        AlgorithmParameters::EllipticCurve(params) if params.curve == EllipticCurve::P256 => {
            (Algorithm::ES256, KeyAlgorithm::ES256)
        }
        _ => return skip("key type is neither RSA nor EC P-256"),
    };
    if !algorithms.contains(&alg) {
        return skip("its algorithm is not in identity.algorithms");
    }
    if jwk.common.key_algorithm.is_some_and(|a| a != declared) {
        return skip("its alg does not match its key type");
    }
    let Ok(key) = DecodingKey::from_jwk(&jwk) else {
        return skip("cannot decode its parameters");
    };
    // Verifying an empty signature fails for a good key and errors for a
    // key the crypto backend cannot load: find out now, not per request.
    if jsonwebtoken::crypto::verify("", b"", &key, alg).is_err() {
        return skip("the crypto backend cannot load it");
    }
    Some(VerificationKey { kid, alg, key })
}

async fn fetch_key_set(
    http: &reqwest::Client,
    url: &reqwest::Url,
    algorithms: &[Algorithm],
) -> Result<Vec<VerificationKey>, JwksError> {
    let mut response = http
        .get(url.clone())
        .header(reqwest::header::ACCEPT, "application/json")
        .timeout(FETCH_TIMEOUT)
        .send()
        .await
        .map_err(JwksError::Fetch)?;
    if !response.status().is_success() {
        return Err(JwksError::Status(response.status().as_u16()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(JwksError::Fetch)? {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(JwksError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    parse_key_set(&body, algorithms)
}

/// An error with its sources, for logs (reqwest's message alone hides the
/// cause, e.g. "connection refused").
#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};

    use axum::extract::State;
    use axum::http::{StatusCode, header};
    use axum::response::{IntoResponse, Response};
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    use super::*;

    const RSA_1: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/keys/rsa-test.pem"
    ));
    const RSA_1_PUBLIC: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/keys/rsa-test.pub.pem"
    ));
    const RSA_2: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/keys/rsa-test-2.pem"
    ));
    const EC_1: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/keys/ec-test.pem"
    ));
    const JWKS_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys/jwks-test.json");
    const ISSUER: &str = "https://idp.test/realms/thesa";
    const AUDIENCE: &str = "thesa-bff";

    /// A JWKS endpoint on 127.0.0.1 that counts its requests and serves
    /// whatever key set the test puts in it (503 while there is none).
    struct JwksServer {
        url: String,
        fetches: Arc<AtomicUsize>,
        body: Arc<Mutex<Option<String>>>,
    }

    #[derive(Clone)]
    struct ServerState {
        fetches: Arc<AtomicUsize>,
        body: Arc<Mutex<Option<String>>>,
    }

    async fn jwks_endpoint(State(state): State<ServerState>) -> Response {
        state.fetches.fetch_add(1, Ordering::SeqCst);
        match state.body.lock().unwrap().clone() {
            Some(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
            None => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        }
    }

    impl JwksServer {
        async fn start(kids: Option<&[&str]>) -> Self {
            let state = ServerState {
                fetches: Arc::new(AtomicUsize::new(0)),
                body: Arc::new(Mutex::new(kids.map(jwks_with))),
            };
            let app = axum::Router::new()
                .route("/jwks.json", axum::routing::get(jwks_endpoint))
                .with_state(state.clone());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            Self {
                url,
                fetches: state.fetches,
                body: state.body,
            }
        }

        fn serve(&self, kids: Option<&[&str]>) {
            *self.body.lock().unwrap() = kids.map(jwks_with);
        }

        fn fetches(&self) -> usize {
            self.fetches.load(Ordering::SeqCst)
        }
    }

    /// The test key set with only the keys named.
    fn jwks_with(kids: &[&str]) -> String {
        let all: Value =
            serde_json::from_str(&std::fs::read_to_string(JWKS_FILE).unwrap()).unwrap();
        let keys: Vec<&Value> = all["keys"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|k| kids.contains(&k["kid"].as_str().unwrap()))
            .collect();
        json!({ "keys": keys }).to_string()
    }

    fn http() -> reqwest::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::new()
    }

    fn identity() -> IdentityConfig {
        IdentityConfig {
            issuer: Some(ISSUER.into()),
            audience: Some(AUDIENCE.into()),
            claim_paths: ClaimPaths {
                subject_id: "sub".into(),
                tenant_id: "custom:tenant_id".into(),
                email: "email".into(),
                roles: "realm_access.roles".into(),
                partition_id: "custom:default_partition".into(),
            },
            ..IdentityConfig::default()
        }
    }

    fn with_url(url: &str) -> IdentityConfig {
        IdentityConfig {
            jwks_url: Some(url.into()),
            ..identity()
        }
    }

    async fn authenticator(server: &JwksServer) -> Authenticator {
        Authenticator::new(&with_url(&server.url), http())
            .await
            .unwrap()
    }

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn claims() -> Value {
        json!({
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": now(),
            "exp": now() + 600,
            "sub": "user-1",
            "custom:tenant_id": "acme",
            "email": "user-1@acme.test",
            "realm_access": { "roles": ["admin", "clerk"] },
            "custom:default_partition": "eu",
        })
    }

    fn claims_with(changes: Value) -> Value {
        let mut claims = claims();
        for (name, value) in changes.as_object().unwrap() {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(name);
            } else {
                claims[name] = value.clone();
            }
        }
        claims
    }

    fn sign(pem: &[u8], alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
        let key = match alg {
            Algorithm::ES256 => EncodingKey::from_ec_pem(pem).unwrap(),
            _ => EncodingKey::from_rsa_pem(pem).unwrap(),
        };
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_string);
        jsonwebtoken::encode(&header, claims, &key).unwrap()
    }

    fn rs256(claims: &Value) -> String {
        sign(RSA_1, Algorithm::RS256, Some("test-rsa-1"), claims)
    }

    fn bearer(token: &str) -> String {
        format!("Bearer {token}")
    }

    async fn rejected(auth: &Authenticator, token: &str) -> AuthError {
        let err = auth.authenticate(Some(&bearer(token))).await.unwrap_err();
        assert!(
            !err.to_string().contains(token),
            "the message quotes the token: {err}"
        );
        err
    }

    #[test]
    fn authenticator_is_shareable() {
        fn shareable<T: Send + Sync + 'static>() {}
        shareable::<Authenticator>();
    }

    #[tokio::test]
    async fn accepts_rs256_token_reading_nested_and_custom_claim_paths() {
        let server = JwksServer::start(Some(&["test-rsa-1", "test-ec-1"])).await;
        let auth = authenticator(&server).await;
        let principal = auth
            .authenticate(Some(&bearer(&rs256(&claims()))))
            .await
            .unwrap();
        assert_eq!(
            principal,
            Principal {
                subject: "user-1".into(),
                tenant: "acme".into(),
                email: Some("user-1@acme.test".into()),
                roles: vec!["admin".into(), "clerk".into()],
                partitions: vec!["eu".into()],
            }
        );
        assert_eq!(server.fetches(), 1);
    }

    #[tokio::test]
    async fn accepts_es256_token() {
        let server = JwksServer::start(Some(&["test-rsa-1", "test-ec-1"])).await;
        let auth = authenticator(&server).await;
        let token = sign(EC_1, Algorithm::ES256, Some("test-ec-1"), &claims());
        let principal = auth.authenticate(Some(&bearer(&token))).await.unwrap();
        assert_eq!(principal.subject, "user-1");
        assert_eq!(principal.tenant, "acme");
    }

    #[tokio::test]
    async fn scheme_is_case_insensitive_and_kidless_token_uses_the_only_key_for_its_alg() {
        let server = JwksServer::start(Some(&["test-rsa-1", "test-ec-1"])).await;
        let auth = authenticator(&server).await;
        let token = sign(RSA_1, Algorithm::RS256, None, &claims());
        let principal = auth
            .authenticate(Some(&format!("bearer  {token}")))
            .await
            .unwrap();
        assert_eq!(principal.subject, "user-1");
    }

    #[tokio::test]
    async fn rejects_expired_and_not_yet_valid_tokens() {
        let server = JwksServer::start(Some(&["test-rsa-1"])).await;
        let auth = authenticator(&server).await;
        let expired = rs256(&claims_with(json!({ "exp": now() - 3600 })));
        assert_eq!(rejected(&auth, &expired).await, AuthError::Expired);
        let early = rs256(&claims_with(json!({ "nbf": now() + 3600 })));
        let err = rejected(&auth, &early).await;
        assert_eq!(err, AuthError::NotYetValid);
        assert_eq!(err.reason(), "not_yet_valid");
        // Within the leeway both are fine.
        let skewed = rs256(&claims_with(
            json!({ "exp": now() - 30, "nbf": now() + 30 }),
        ));
        auth.authenticate(Some(&bearer(&skewed))).await.unwrap();
        let no_exp = rs256(&claims_with(json!({ "exp": null })));
        assert_eq!(
            rejected(&auth, &no_exp).await,
            AuthError::MissingClaim {
                claim: "exp".into()
            }
        );
    }

    #[tokio::test]
    async fn remembered_tokens_are_served_from_memory_and_still_expire() {
        let server = JwksServer::start(Some(&["test-rsa-1"])).await;
        let auth = authenticator(&server).await;
        // Valid for one more second, counting the leeway.
        let exp = now() + 1 - LEEWAY_SECS;
        let token = rs256(&claims_with(json!({ "exp": exp })));
        let first = auth.authenticate(Some(&bearer(&token))).await.unwrap();
        auth.verified.run_pending_tasks();
        assert_eq!(auth.verified.entry_count(), 1);
        let again = auth.authenticate(Some(&bearer(&token))).await.unwrap();
        assert_eq!(first, again);
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert_eq!(rejected(&auth, &token).await, AuthError::Expired);
    }

    #[tokio::test]
    async fn a_remembered_token_is_found_only_by_the_whole_token() {
        let server = JwksServer::start(Some(&["test-rsa-1"])).await;
        let auth = authenticator(&server).await;
        let token = rs256(&claims());
        auth.authenticate(Some(&bearer(&token))).await.unwrap();
        // An entry under another token's cache key (as a hash collision
        // would put it) is not that token's.
        let other = rs256(&claims_with(json!({ "sub": "mallory" })));
        let (head, _) = other.rsplit_once('.').unwrap();
        let (_, signature) = token.rsplit_once('.').unwrap();
        let forged = format!("{head}.{signature}");
        let key = auth.hasher.hash_one(token.as_str());
        let entry = auth.verified.get(&key).unwrap();
        auth.verified
            .insert(auth.hasher.hash_one(forged.as_str()), entry);
        assert_eq!(rejected(&auth, &forged).await, AuthError::BadSignature);
    }

    #[tokio::test]
    async fn rejects_wrong_audience_and_wrong_issuer() {
        let server = JwksServer::start(Some(&["test-rsa-1"])).await;
        let auth = authenticator(&server).await;
        let other_audience = rs256(&claims_with(json!({ "aud": ["account", "other-app"] })));
        assert_eq!(
            rejected(&auth, &other_audience).await,
            AuthError::WrongAudience
        );
        let no_audience = rs256(&claims_with(json!({ "aud": null })));
        assert_eq!(
            rejected(&auth, &no_audience).await,
            AuthError::MissingClaim {
                claim: "aud".into()
            }
        );
        let listed_audience = rs256(&claims_with(json!({ "aud": ["account", AUDIENCE] })));
        auth.authenticate(Some(&bearer(&listed_audience)))
            .await
            .unwrap();

        let other_issuer = rs256(&claims_with(json!({ "iss": "https://evil.test" })));
        let err = rejected(&auth, &other_issuer).await;
        assert_eq!(err, AuthError::WrongIssuer);
        assert_eq!(err.reason(), "wrong_issuer");
    }

    #[tokio::test]
    async fn rejects_unsigned_alg_none_token() {
        let server = JwksServer::start(Some(&["test-rsa-1"])).await;
        let auth = authenticator(&server).await;
        let valid = rs256(&claims());
        let payload = valid.split('.').nth(1).unwrap();
        // {"alg":"none","typ":"JWT"}
        let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
        let err = rejected(&auth, &none).await;
        assert!(matches!(err, AuthError::Malformed(_)), "{err:?}");
        assert_eq!(err.reason(), "malformed");
        // {"alg":"None"} and a signature copied from a valid token change nothing.
        let signature = valid.split('.').nth(2).unwrap();
        let none = format!("eyJhbGciOiJOb25lIn0.{payload}.{signature}");
        assert!(matches!(
            rejected(&auth, &none).await,
            AuthError::Malformed(_)
        ));
        assert_eq!(server.fetches(), 1);
    }

    #[tokio::test]
    async fn rejects_hs256_signed_with_the_rsa_public_key() {
        let server = JwksServer::start(Some(&["test-rsa-1"])).await;
        let auth = authenticator(&server).await;
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let mut header = Header::new(alg);
            header.kid = Some("test-rsa-1".into());
            let forged =
                jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_secret(RSA_1_PUBLIC))
                    .unwrap();
            let err = rejected(&auth, &forged).await;
            assert_eq!(err.reason(), "algorithm_not_allowed", "{alg:?}: {err}");
        }
        // Rejected before any key is looked at: even an unknown kid does not
        // make it refetch.
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("never-seen".into());
        let forged =
            jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_secret(b"x")).unwrap();
        assert_eq!(
            rejected(&auth, &forged).await,
            AuthError::AlgorithmNotAllowed {
                alg: "HS256".into(),
                accepted: "RS256, ES256".into()
            }
        );
        assert_eq!(server.fetches(), 1);
    }

    #[tokio::test]
    async fn rejects_an_algorithm_the_config_does_not_list() {
        let server = JwksServer::start(Some(&["test-rsa-1", "test-ec-1"])).await;
        let config = IdentityConfig {
            algorithms: vec![config::Algorithm::RS256],
            ..with_url(&server.url)
        };
        let auth = Authenticator::new(&config, http()).await.unwrap();
        let token = sign(EC_1, Algorithm::ES256, Some("test-ec-1"), &claims());
        assert_eq!(
            rejected(&auth, &token).await,
            AuthError::AlgorithmNotAllowed {
                alg: "ES256".into(),
                accepted: "RS256".into()
            }
        );
        auth.authenticate(Some(&bearer(&rs256(&claims()))))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn rejects_a_signature_by_another_key_and_a_kid_of_another_key_type() {
        let server = JwksServer::start(Some(&["test-rsa-1", "test-ec-1"])).await;
        let auth = authenticator(&server).await;
        let forged = sign(RSA_2, Algorithm::RS256, Some("test-rsa-1"), &claims());
        assert_eq!(rejected(&auth, &forged).await, AuthError::BadSignature);
        // An ES256 token naming the RSA key: the key does not fit the algorithm.
        let confused = sign(EC_1, Algorithm::ES256, Some("test-rsa-1"), &claims());
        assert_eq!(
            rejected(&auth, &confused).await,
            AuthError::UnknownKey {
                kid: Some("test-rsa-1".into()),
                alg: "ES256".into()
            }
        );
    }

    #[tokio::test]
    async fn ignores_keys_not_meant_for_signatures() {
        let server = JwksServer::start(Some(&["test-rsa-1", "test-rsa-enc"])).await;
        let auth = authenticator(&server).await;
        let token = sign(RSA_2, Algorithm::RS256, Some("test-rsa-enc"), &claims());
        assert_eq!(rejected(&auth, &token).await.reason(), "unknown_key");
    }

    #[tokio::test]
    async fn unknown_kid_refetches_once_and_accepts_the_rotated_key() {
        let server = JwksServer::start(Some(&["test-rsa-1"])).await;
        let auth = authenticator(&server).await;
        assert_eq!(server.fetches(), 1);
        server.serve(Some(&["test-rsa-1", "test-rsa-2"]));
        let rotated = sign(RSA_2, Algorithm::RS256, Some("test-rsa-2"), &claims());
        let principal = auth.authenticate(Some(&bearer(&rotated))).await.unwrap();
        assert_eq!(principal.subject, "user-1");
        assert_eq!(server.fetches(), 2);
        // Known now: no further fetch, for either key.
        auth.authenticate(Some(&bearer(&rotated))).await.unwrap();
        auth.authenticate(Some(&bearer(&rs256(&claims()))))
            .await
            .unwrap();
        assert_eq!(server.fetches(), 2);
    }

    #[tokio::test]
    async fn random_unknown_kids_do_not_refetch_within_the_interval() {
        let server = JwksServer::start(Some(&["test-rsa-1"])).await;
        let auth = authenticator(&server).await;
        for i in 0..5 {
            let kid = format!("random-{i}");
            let token = sign(RSA_2, Algorithm::RS256, Some(&kid), &claims());
            let err = rejected(&auth, &token).await;
            assert_eq!(
                err,
                AuthError::UnknownKey {
                    kid: Some(kid),
                    alg: "RS256".into()
                }
            );
        }
        assert_eq!(server.fetches(), 2, "one start-up fetch, one refetch");
    }

    #[tokio::test]
    async fn concurrent_unknown_kids_share_one_refetch() {
        let server = JwksServer::start(Some(&["test-rsa-1"])).await;
        let auth = Arc::new(authenticator(&server).await);
        server.serve(Some(&["test-rsa-1", "test-rsa-2"]));
        let rotated = bearer(&sign(
            RSA_2,
            Algorithm::RS256,
            Some("test-rsa-2"),
            &claims(),
        ));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (auth, header) = (auth.clone(), rotated.clone());
                tokio::spawn(async move { auth.authenticate(Some(&header)).await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        assert_eq!(server.fetches(), 2);
    }

    #[tokio::test]
    async fn expired_cache_is_refetched_at_most_once_per_interval() {
        let server = JwksServer::start(Some(&["test-rsa-1"])).await;
        let config = IdentityConfig {
            jwks_cache_ttl: thesa_core::duration::Duration::from_secs(0),
            ..with_url(&server.url)
        };
        let auth = Authenticator::new(&config, http()).await.unwrap();
        for _ in 0..3 {
            auth.authenticate(Some(&bearer(&rs256(&claims()))))
                .await
                .unwrap();
        }
        assert_eq!(server.fetches(), 2);
        // A failing refresh keeps the stale keys working.
        server.serve(None);
        auth.authenticate(Some(&bearer(&rs256(&claims()))))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn failed_start_up_fetch_is_retried_on_the_first_request() {
        let server = JwksServer::start(None).await;
        let auth = authenticator(&server).await;
        assert_eq!(server.fetches(), 1);
        server.serve(Some(&["test-rsa-1"]));
        auth.authenticate(Some(&bearer(&rs256(&claims()))))
            .await
            .unwrap();
        assert_eq!(server.fetches(), 2);
    }

    #[tokio::test]
    async fn unreachable_key_set_is_jwks_unavailable() {
        let server = JwksServer::start(None).await;
        let auth = authenticator(&server).await;
        let err = rejected(&auth, &rs256(&claims())).await;
        assert_eq!(err, AuthError::JwksUnavailable);
        assert_eq!(err.reason(), "jwks_unavailable");
        assert_eq!(server.fetches(), 2);
        // Within the interval nobody fetches again, even though it is back.
        server.serve(Some(&["test-rsa-1"]));
        assert_eq!(
            rejected(&auth, &rs256(&claims())).await,
            AuthError::JwksUnavailable
        );
        assert_eq!(server.fetches(), 2);
    }

    #[tokio::test]
    async fn rejects_tokens_without_tenant_or_with_claims_of_the_wrong_type() {
        let server = JwksServer::start(Some(&["test-rsa-1"])).await;
        let auth = authenticator(&server).await;
        let no_tenant = rs256(&claims_with(json!({ "custom:tenant_id": null })));
        let err = rejected(&auth, &no_tenant).await;
        assert_eq!(
            err,
            AuthError::MissingClaim {
                claim: "custom:tenant_id".into()
            }
        );
        assert_eq!(err.reason(), "missing_claim");
        assert!(err.to_string().contains("custom:tenant_id"), "{err}");
        let numeric_tenant = rs256(&claims_with(json!({ "custom:tenant_id": 42 })));
        assert_eq!(
            rejected(&auth, &numeric_tenant).await.reason(),
            "invalid_claim"
        );
        let empty_subject = rs256(&claims_with(json!({ "sub": "" })));
        assert_eq!(
            rejected(&auth, &empty_subject).await.reason(),
            "invalid_claim"
        );
    }

    #[tokio::test]
    async fn rejects_malformed_authorization_headers() {
        let server = JwksServer::start(Some(&["test-rsa-1"])).await;
        let auth = authenticator(&server).await;
        let token = rs256(&claims());
        for header in [None, Some(""), Some("Bearer"), Some("Bearer   ")] {
            let err = auth.authenticate(header).await.unwrap_err();
            assert_eq!(err, AuthError::MissingToken, "{header:?}");
        }
        let basic = format!("Basic {token}");
        let garbage_json = format!("Bearer {}", "e30.e30.e30");
        for header in [
            token.as_str(),
            basic.as_str(),
            "garbage",
            "Bearer garbage",
            "Bearer a.b",
            "Bearer a.b.c.d",
            "Bearer !!!.???.###",
            garbage_json.as_str(),
        ] {
            let err = auth.authenticate(Some(header)).await.unwrap_err();
            assert!(matches!(err, AuthError::Malformed(_)), "{header}: {err:?}");
            assert!(!err.to_string().contains(&token));
        }
        let huge = format!("Bearer {}", "a".repeat(MAX_TOKEN_BYTES + 1));
        assert_eq!(
            auth.authenticate(Some(&huge)).await.unwrap_err().reason(),
            "malformed"
        );
        assert_eq!(server.fetches(), 1);
    }

    #[tokio::test]
    async fn jwks_file_is_read_once_and_verifies_tokens() {
        let config = IdentityConfig {
            jwks_file: Some(JWKS_FILE.into()),
            ..identity()
        };
        let auth = Authenticator::new(&config, http()).await.unwrap();
        auth.authenticate(Some(&bearer(&rs256(&claims()))))
            .await
            .unwrap();
        let rotated = sign(RSA_2, Algorithm::RS256, Some("test-rsa-2"), &claims());
        auth.authenticate(Some(&bearer(&rotated))).await.unwrap();
        let unknown = sign(RSA_2, Algorithm::RS256, Some("nope"), &claims());
        assert_eq!(rejected(&auth, &unknown).await.reason(), "unknown_key");
        // No kid and two RSA keys: ambiguous.
        let kidless = sign(RSA_1, Algorithm::RS256, None, &claims());
        assert_eq!(
            rejected(&auth, &kidless).await,
            AuthError::UnknownKey {
                kid: None,
                alg: "RS256".into()
            }
        );
    }

    #[tokio::test]
    async fn setup_errors_name_the_settings() {
        let message = |config: IdentityConfig| async move {
            Authenticator::new(&config, http())
                .await
                .unwrap_err()
                .to_string()
        };
        let file = Some(JWKS_FILE.to_string());
        let cases = [
            (
                IdentityConfig {
                    issuer: None,
                    jwks_file: file.clone(),
                    ..identity()
                },
                "identity.issuer",
            ),
            (
                IdentityConfig {
                    audience: Some(" ".into()),
                    jwks_file: file.clone(),
                    ..identity()
                },
                "identity.audience",
            ),
            (
                identity(),
                "identity.jwks_url and identity.jwks_file are both unset",
            ),
            (
                IdentityConfig {
                    jwks_url: Some("http://x".into()),
                    jwks_file: file.clone(),
                    ..identity()
                },
                "identity.jwks_url and identity.jwks_file are both set",
            ),
            (
                IdentityConfig {
                    algorithms: vec![],
                    jwks_file: file.clone(),
                    ..identity()
                },
                "identity.algorithms",
            ),
            (
                IdentityConfig {
                    jwks_url: Some("file:///etc/jwks.json".into()),
                    ..identity()
                },
                "identity.jwks_url \"file:///etc/jwks.json\"",
            ),
            (
                IdentityConfig {
                    jwks_file: Some("/nonexistent/jwks.json".into()),
                    ..identity()
                },
                "cannot read identity.jwks_file /nonexistent/jwks.json",
            ),
            (
                IdentityConfig {
                    jwks_file: Some(
                        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys/rsa-test.pub.pem").into(),
                    ),
                    ..identity()
                },
                "not a JWKS document",
            ),
        ];
        for (config, expected) in cases {
            let message = message(config).await;
            assert!(
                message.contains(expected),
                "{message:?} should contain {expected:?}"
            );
        }
    }

    #[test]
    fn key_set_keeps_only_signing_keys_that_fit_their_algorithm() {
        let all = [Algorithm::RS256, Algorithm::ES256];
        let keys =
            parse_key_set(std::fs::read_to_string(JWKS_FILE).unwrap().as_bytes(), &all).unwrap();
        let kids: Vec<_> = keys
            .iter()
            .map(|k| (k.kid.as_deref().unwrap(), k.alg))
            .collect();
        assert_eq!(
            kids,
            [
                ("test-rsa-1", Algorithm::RS256),
                ("test-ec-1", Algorithm::ES256),
                ("test-rsa-2", Algorithm::RS256)
            ]
        );
        let rsa_as_es256: Value = json!({ "keys": [{
            "kty": "RSA", "kid": "k", "alg": "ES256", "n": "AQAB", "e": "AQAB"
        }, {
            "kty": "oct", "kid": "h", "alg": "HS256", "k": "c2VjcmV0"
        }, {
            "kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
        }]});
        let err = parse_key_set(rsa_as_es256.to_string().as_bytes(), &all)
            .err()
            .unwrap();
        assert!(matches!(err, JwksError::NoUsableKeys { .. }), "{err}");
    }

    #[test]
    fn claims_are_read_at_dotted_and_literal_paths() {
        let paths = ClaimPaths {
            subject_id: "sub".into(),
            tenant_id: "org.tenant".into(),
            email: "email".into(),
            roles: "custom:roles".into(),
            partition_id: "https://thesa.test/partitions".into(),
        };
        let claims = json!({
            "sub": "u",
            "org": { "tenant": "acme" },
            "custom:roles": " admin, clerk  viewer,",
            "https://thesa.test/partitions": ["eu", "", "us"],
        });
        let principal = principal(&claims, &paths).unwrap();
        assert_eq!(principal.tenant, "acme");
        assert_eq!(principal.email, None);
        assert_eq!(principal.roles, ["admin", "clerk", "viewer"]);
        assert_eq!(principal.partitions, ["eu", "us"]);

        let bad_roles = json!({ "sub": "u", "org": { "tenant": "t" }, "custom:roles": ["a", 1] });
        assert_eq!(
            super::principal(&bad_roles, &paths).unwrap_err(),
            AuthError::InvalidClaim {
                claim: "custom:roles".into(),
                expected: "an array of strings or a string of comma- or space-separated roles"
            }
        );
        let nested_miss = json!({ "sub": "u", "org": "acme" });
        assert_eq!(
            super::principal(&nested_miss, &paths).unwrap_err(),
            AuthError::MissingClaim {
                claim: "org.tenant".into()
            }
        );
    }

    #[test]
    fn long_kids_are_cut_in_messages() {
        let err = AuthError::UnknownKey {
            kid: Some(shown_kid(&"k".repeat(1000))),
            alg: "RS256".into(),
        };
        assert!(err.to_string().len() < 200, "{err}");
    }
}
