//! The BFF configuration (`config.yaml`), as in Thesa's deployment guide.
//! Every field has a compiled default, so an empty file is a valid config.
//! Secrets never appear here: fields ending in `_env` name the environment
//! variable that holds the secret.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::finding::Finding;
use crate::load::{self, Loaded, SchemaCell};

static CONFIG_SCHEMA: SchemaCell = SchemaCell::new();
static POLICIES_SCHEMA: SchemaCell = SchemaCell::new();

/// The whole BFF configuration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct Config {
    /// HTTP server.
    pub server: ServerConfig,
    /// Token validation.
    pub identity: IdentityConfig,
    /// Where definitions are read from.
    pub definitions: DefinitionsConfig,
    /// Where OpenAPI specs are read from and which service each describes.
    pub specs: SpecsConfig,
    /// Backend services by service ID.
    pub services: BTreeMap<String, ServiceConfig>,
    /// How capabilities are resolved.
    pub capability: CapabilityConfig,
    /// Workflow engine and its store.
    pub workflow: WorkflowConfig,
    /// Idempotency keys and their store.
    pub idempotency: IdempotencyConfig,
    /// Where commands' `rate_limit` counts are kept.
    pub rate_limit: RateLimitConfig,
    /// Global search.
    pub search: SearchConfig,
    /// Lookups.
    pub lookup: LookupConfig,
    /// SDK handlers built into the BFF (`type: sdk` operations).
    pub handlers: HandlersConfig,
    /// File upload and download through the files service
    /// (`POST /ui/upload`, `GET /ui/download/{id}`, the `files.upload`
    /// handler).
    pub files: FilesConfig,
    /// Logs, traces and metrics.
    pub observability: ObservabilityConfig,
    /// The analytics query API of the original Thesa's admin console
    /// (`/api/analytics/query/*`) over a Prometheus-compatible backend.
    pub analytics: AnalyticsConfig,
}

impl Config {
    /// Parses a config file, adding findings (unknown keys are warnings).
    pub fn from_text(source: &str, text: &str, findings: &mut Vec<Finding>) -> Option<Self> {
        let loaded: Loaded<Self> =
            load::from_text(CONFIG_SCHEMA.get::<Self>(), source, text, findings);
        loaded.value
    }

    /// Loads a config from a JSON value (a custom resource's field), adding
    /// findings without positions.
    pub fn from_value(
        source: &str,
        value: serde_json::Value,
        findings: &mut Vec<Finding>,
    ) -> Option<Self> {
        load::from_value(CONFIG_SCHEMA.get::<Self>(), source, value, findings)
    }

    /// The service ID for a spec file name, from `specs.sources`.
    pub fn service_for_spec_file(&self, file_name: &str) -> Option<&str> {
        self.specs
            .sources
            .iter()
            .find(|s| s.spec_file == file_name)
            .map(|s| s.service_id.as_str())
    }
}

/// HTTP server settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct ServerConfig {
    /// Port to listen on.
    pub port: u16,
    /// Most time to read a request.
    pub read_timeout: Duration,
    /// Most time to write a response.
    pub write_timeout: Duration,
    /// Most time a handler may take.
    pub handler_timeout: Duration,
    /// Most time to drain requests on shutdown (keep it below the pod's
    /// terminationGracePeriodSeconds).
    pub shutdown_timeout: Duration,
    /// Cross-origin requests.
    pub cors: CorsConfig,
    /// Largest request body accepted, in bytes; a larger one is answered
    /// 413 (uploads have `files.max_upload_bytes` instead).
    #[schemars(range(min = 1))]
    pub max_request_body_bytes: u64,
    /// Largest backend answer read, in bytes; a larger one is not read
    /// further and the request is answered 502.
    #[schemars(range(min = 1))]
    pub max_backend_response_bytes: u64,
    /// Largest request head (request line and headers), in bytes; a larger
    /// one is answered 431 and the connection closed.
    #[schemars(range(min = 1024))]
    pub max_header_bytes: u64,
    /// Most request headers; more are answered 431.
    #[schemars(range(min = 1))]
    pub max_headers: u32,
    /// HTTP Strict Transport Security, for a BFF reached over HTTPS.
    pub hsts: HstsConfig,
    /// Serve the preview page at `/preview/` (development only: start-up
    /// refuses it unless `identity.jwks_file` holds the development key).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub preview: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            port: 8080,
            read_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            handler_timeout: Duration::from_secs(25),
            shutdown_timeout: Duration::from_secs(30),
            cors: CorsConfig::default(),
            max_request_body_bytes: 1024 * 1024,
            max_backend_response_bytes: 10 * 1024 * 1024,
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            hsts: HstsConfig::default(),
            preview: false,
        }
    }
}

/// The `Strict-Transport-Security` header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct HstsConfig {
    /// Whether every answer carries the header (only behind HTTPS).
    pub enabled: bool,
    /// How long browsers keep to HTTPS (`max-age`).
    pub max_age: Duration,
    /// Whether subdomains are included (`includeSubDomains`).
    pub include_subdomains: bool,
}

impl Default for HstsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            max_age: Duration::from_secs(365 * 86_400),
            include_subdomains: false,
        }
    }
}

/// Cross-origin request settings.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct CorsConfig {
    /// Origins allowed to call the BFF.
    pub allowed_origins: Vec<String>,
    /// Methods allowed.
    pub allowed_methods: Vec<String>,
    /// Request headers allowed.
    pub allowed_headers: Vec<String>,
    /// How long browsers may cache a preflight answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_age: Option<Duration>,
}

/// Signature algorithms accepted on tokens (`none` and HMAC never are).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Algorithm {
    /// RSA PKCS#1 v1.5 with SHA-256.
    RS256,
    /// ECDSA P-256 with SHA-256.
    ES256,
}

/// Token validation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct IdentityConfig {
    /// Required `iss` of tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Required `aud` of tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// Where the signing keys are published.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    /// A local JWKS file instead of `jwks_url` (development).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_file: Option<String>,
    /// How long fetched keys are kept.
    pub jwks_cache_ttl: Duration,
    /// Accepted algorithms.
    pub algorithms: Vec<Algorithm>,
    /// Where claims are found in the token.
    pub claim_paths: ClaimPaths,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            issuer: None,
            audience: None,
            jwks_url: None,
            jwks_file: None,
            jwks_cache_ttl: Duration::from_secs(3600),
            algorithms: vec![Algorithm::RS256, Algorithm::ES256],
            claim_paths: ClaimPaths::default(),
        }
    }
}

/// Claim names (dotted or `custom:` prefixed paths) in the token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct ClaimPaths {
    /// The subject.
    pub subject_id: String,
    /// The tenant.
    pub tenant_id: String,
    /// The e-mail address.
    pub email: String,
    /// The roles.
    pub roles: String,
    /// The default partition.
    pub partition_id: String,
}

impl Default for ClaimPaths {
    fn default() -> Self {
        Self {
            subject_id: "sub".into(),
            tenant_id: "tenant_id".into(),
            email: "email".into(),
            roles: "roles".into(),
            partition_id: "partition_id".into(),
        }
    }
}

/// Where definitions come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct DefinitionsConfig {
    /// Directories searched (recursively) for `*.yaml`, `*.yml`, `*.json`.
    pub directories: Vec<String>,
    /// Reload definitions when the files change.
    pub hot_reload: bool,
    /// Verify definitions against a checksum manifest.
    pub strict_checksums: bool,
    /// Also report the conventions (`thesa-bff validate --lint`): capability
    /// namespaces that differ from the domain, versions that are not
    /// semantic versions, unquoted literals, default sorts on no sortable
    /// column. Warnings only; they never block a definition.
    pub lint: bool,
}

impl Default for DefinitionsConfig {
    fn default() -> Self {
        Self {
            directories: vec!["/definitions".into()],
            hot_reload: false,
            strict_checksums: false,
            lint: false,
        }
    }
}

/// Where OpenAPI specs come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct SpecsConfig {
    /// Directory of spec files.
    pub directory: String,
    /// Which service each spec file describes; files not listed use their
    /// file name without extension as the service ID.
    pub sources: Vec<SpecSource>,
}

impl Default for SpecsConfig {
    fn default() -> Self {
        Self {
            directory: "/specs".into(),
            sources: Vec::new(),
        }
    }
}

/// A spec file and the service it describes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SpecSource {
    /// The service ID definitions use.
    pub service_id: String,
    /// File name in the spec directory.
    pub spec_file: String,
}

/// A backend service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ServiceConfig {
    /// Base URL requests go to.
    pub base_url: String,
    /// Capability namespace of the service, if it differs from its domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_namespace: Option<String>,
    /// Most time per request.
    #[serde(default = "ServiceConfig::default_timeout")]
    pub timeout: Duration,
    /// How requests are authenticated.
    #[serde(default)]
    pub auth: AuthConfig,
    /// How list operations page.
    #[serde(default)]
    pub pagination: PaginationConfig,
    /// When to stop calling a failing service.
    #[serde(default)]
    pub circuit_breaker: CircuitBreakerConfig,
    /// Retries of idempotent calls.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Headers that carry the caller's context to the service.
    #[serde(default)]
    pub context_headers: ContextHeaders,
}

/// The headers a backend request carries besides the token, as Thesa sends
/// them: each names the header, and `""` leaves it out. Values come from
/// the verified token (never from the caller's headers), except the
/// partition, which `X-Partition-Id` may narrow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct ContextHeaders {
    /// The caller's tenant.
    pub tenant: String,
    /// The request's partition (sent when there is one).
    pub partition: String,
    /// The caller's subject.
    pub subject: String,
    /// The request's correlation ID.
    pub correlation: String,
}

impl Default for ContextHeaders {
    fn default() -> Self {
        Self {
            tenant: "X-Tenant-Id".into(),
            partition: "X-Partition-Id".into(),
            subject: "X-Request-Subject".into(),
            correlation: "X-Correlation-Id".into(),
        }
    }
}

impl ServiceConfig {
    fn default_timeout() -> Duration {
        Duration::from_secs(10)
    }
}

/// How the BFF authenticates to a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthStrategy {
    /// Passes the caller's token on.
    #[default]
    ForwardToken,
    /// Uses its own token from an OAuth2 client-credentials grant.
    ServiceToken,
}

/// Authentication to a service.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct AuthConfig {
    /// `forward_token` or `service_token`.
    pub strategy: AuthStrategy,
    /// OAuth2 client ID (for `service_token`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// OAuth2 token endpoint (for `service_token`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
    /// Environment variable holding the client secret (default
    /// `THESA_SERVICE_TOKEN_SECRET`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret_env: Option<String>,
}

/// How a service pages lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaginationStyle {
    /// `offset` and `limit`.
    #[default]
    Offset,
    /// Page number and page size.
    Page,
    /// An opaque cursor.
    Cursor,
}

/// Pagination parameters of a service.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct PaginationConfig {
    /// `offset`, `page` or `cursor`.
    pub style: PaginationStyle,
    /// Query parameter of the offset or page number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_param: Option<String>,
    /// Query parameter of the page size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_param: Option<String>,
    /// Query parameter of the sort field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sort_param: Option<String>,
    /// Query parameter of the sort direction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sort_dir_param: Option<String>,
    /// Query parameter of the cursor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor_param: Option<String>,
}

/// Circuit breaker of a service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct CircuitBreakerConfig {
    /// Consecutive failures that open the circuit.
    pub failure_threshold: u32,
    /// Consecutive successes that close it again.
    pub success_threshold: u32,
    /// How long the circuit stays open before a probe.
    pub timeout: Duration,
    /// Error rate (0 to 1) that also opens the circuit.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1))]
    pub error_rate_threshold: Option<f64>,
    /// Window the error rate is measured over.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_rate_window: Option<Duration>,
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            success_threshold: 2,
            timeout: Duration::from_secs(30),
            error_rate_threshold: None,
            error_rate_window: None,
        }
    }
}

/// Retries of a service's idempotent calls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct RetryConfig {
    /// Attempts in all, the first included.
    #[schemars(range(min = 1))]
    pub max_attempts: u32,
    /// Wait before the first retry.
    pub backoff_initial: Duration,
    /// Factor the wait grows by.
    #[schemars(range(min = 1))]
    pub backoff_multiplier: f64,
    /// Longest wait.
    pub backoff_max: Duration,
    /// Retry only idempotent methods (GET, PUT, DELETE, ...).
    pub idempotent_only: bool,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            backoff_initial: Duration::from_millis(100),
            backoff_multiplier: 2.0,
            backoff_max: Duration::from_secs(2),
            idempotent_only: true,
        }
    }
}

/// Where capabilities come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Evaluator {
    /// A static policy file mapping roles to capabilities.
    #[default]
    Static,
    /// An Open Policy Agent endpoint.
    Opa,
    /// Ory Keto's check API (relation tuples).
    Keto,
}

/// Capability resolution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct CapabilityConfig {
    /// `static`, `opa` or `keto`.
    pub evaluator: Evaluator,
    /// The policy file (for `static`).
    pub static_policy_file: String,
    /// Cache of resolved capabilities.
    pub cache: CacheConfig,
    /// The OPA endpoint (for `opa`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opa: Option<OpaConfig>,
    /// The Ory Keto read API (for `keto`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keto: Option<KetoConfig>,
    /// How permission keys of the admin console (`profile_view`) map to
    /// capabilities (`profile:view`) in `POST /ui/capabilities/batch-check`
    /// and to Keto relations.
    pub permission_keys: PermissionKeysConfig,
}

impl Default for CapabilityConfig {
    fn default() -> Self {
        Self {
            evaluator: Evaluator::Static,
            static_policy_file: "/config/policies.yaml".into(),
            cache: CacheConfig {
                ttl: Duration::from_secs(300),
                max_entries: 10_000,
            },
            opa: None,
            keto: None,
            permission_keys: PermissionKeysConfig::default(),
        }
    }
}

/// Permission keys as the admin console writes them: a capability with
/// `separator` in place of each `:` (`orders:view` is `orders_view`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct PermissionKeysConfig {
    /// What a key writes in place of `:`; empty compares keys with
    /// capabilities as they are.
    pub separator: String,
    /// Keys that name a capability some other way (key → capability),
    /// honoured besides the separator rule.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub aliases: BTreeMap<String, String>,
}

impl Default for PermissionKeysConfig {
    fn default() -> Self {
        Self {
            separator: "_".into(),
            aliases: BTreeMap::new(),
        }
    }
}

/// Ory Keto's read API (the port-4466 API: checks).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct KetoConfig {
    /// Base URL of the read API.
    pub read_url: String,
    /// Most time per request to Keto.
    #[serde(default = "KetoConfig::default_timeout")]
    pub timeout: Duration,
    /// Tuples per batch check (Keto refuses batches above its
    /// `limit.max_batch_size`, 10 by default).
    #[serde(default = "KetoConfig::default_max_batch_size")]
    #[schemars(range(min = 1))]
    pub max_batch_size: u32,
    /// `max-depth` of every check; unset uses Keto's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_depth: Option<u32>,
    /// Keto namespace per definition domain. A domain not listed uses the
    /// `authorization_namespace` of the service its operations call most;
    /// without either, its capabilities are never granted.
    #[serde(default)]
    pub namespaces: BTreeMap<String, String>,
}

impl KetoConfig {
    fn default_timeout() -> Duration {
        Duration::from_secs(2)
    }

    fn default_max_batch_size() -> u32 {
        10
    }
}

/// A cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CacheConfig {
    /// How long entries are kept.
    pub ttl: Duration,
    /// Most entries kept.
    pub max_entries: u64,
}

/// An Open Policy Agent endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OpaConfig {
    /// OPA base URL.
    pub url: String,
    /// Path of the policy decision.
    pub policy_path: String,
    /// Most time per decision.
    #[serde(default = "OpaConfig::default_timeout")]
    pub timeout: Duration,
}

impl OpaConfig {
    fn default_timeout() -> Duration {
        Duration::from_secs(2)
    }
}

/// Where workflow instances are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowDriver {
    /// PostgreSQL (shared by all replicas).
    Postgres,
    /// In memory (one replica, lost on restart).
    #[default]
    Memory,
}

/// The workflow engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct WorkflowConfig {
    /// Whether workflows are served.
    pub enabled: bool,
    /// The store.
    pub store: WorkflowStoreConfig,
    /// How often timed-out instances are looked for.
    pub timeout_check_interval: Duration,
}

impl Default for WorkflowConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            store: WorkflowStoreConfig::default(),
            timeout_check_interval: Duration::from_secs(60),
        }
    }
}

/// The workflow store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct WorkflowStoreConfig {
    /// `postgres` or `memory`.
    pub driver: WorkflowDriver,
    /// Environment variable holding the PostgreSQL DSN.
    pub dsn_env: String,
    /// Most open connections.
    pub max_open_conns: u32,
    /// Most idle connections.
    pub max_idle_conns: u32,
    /// Longest life of a connection.
    pub conn_max_lifetime: Duration,
    /// Run database migrations at start-up.
    pub auto_migrate: bool,
}

impl Default for WorkflowStoreConfig {
    fn default() -> Self {
        Self {
            driver: WorkflowDriver::Memory,
            dsn_env: "THESA_WORKFLOW_DSN".into(),
            max_open_conns: 25,
            max_idle_conns: 5,
            conn_max_lifetime: Duration::from_secs(300),
            auto_migrate: true,
        }
    }
}

/// Where idempotency keys are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IdempotencyDriver {
    /// Redis (shared by all replicas).
    Redis,
    /// In memory (one replica only).
    #[default]
    Memory,
}

/// Idempotency of commands.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct IdempotencyConfig {
    /// Whether `X-Idempotency-Key` is honoured.
    pub enabled: bool,
    /// The store.
    pub store: IdempotencyStoreConfig,
}

/// The idempotency store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct IdempotencyStoreConfig {
    /// `redis` or `memory`.
    pub driver: IdempotencyDriver,
    /// Environment variable holding the Redis address.
    pub addr_env: String,
    /// Redis database number.
    pub db: u32,
    /// How long a key is remembered unless the command says otherwise.
    pub default_ttl: Duration,
}

impl Default for IdempotencyStoreConfig {
    fn default() -> Self {
        Self {
            driver: IdempotencyDriver::Memory,
            addr_env: "THESA_REDIS_ADDR".into(),
            db: 0,
            default_ttl: Duration::from_secs(86_400),
        }
    }
}

/// Where rate-limit counts are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RateLimitDriver {
    /// Redis (shared by all replicas).
    Redis,
    /// In memory (each replica counts alone).
    #[default]
    Memory,
}

/// What a rate-limited command gets when the store does not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StoreFailure {
    /// Run the command unlimited (fail open).
    #[default]
    Allow,
    /// Refuse the command with 503 (fail closed).
    Deny,
}

/// Commands' rate limits (`rate_limit` in a command's definition).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct RateLimitConfig {
    /// Whether commands' `rate_limit` is applied.
    pub enabled: bool,
    /// `redis` or `memory`.
    pub driver: RateLimitDriver,
    /// Environment variable holding the Redis address.
    pub addr_env: String,
    /// Redis database number.
    pub db: u32,
    /// `allow` (fail open) or `deny` (fail closed, 503) when Redis does not
    /// answer.
    pub on_store_error: StoreFailure,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            driver: RateLimitDriver::Memory,
            addr_env: "THESA_REDIS_ADDR".into(),
            db: 0,
            on_store_error: StoreFailure::Allow,
        }
    }
}

/// Global search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct SearchConfig {
    /// Most time per search provider.
    pub timeout_per_provider: Duration,
    /// Most results per provider.
    pub max_results_per_provider: u32,
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            timeout_per_provider: Duration::from_secs(3),
            max_results_per_provider: 50,
        }
    }
}

/// Lookups.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct LookupConfig {
    /// Cache of lookup options.
    pub cache: CacheConfig,
}

impl Default for LookupConfig {
    fn default() -> Self {
        Self {
            cache: CacheConfig {
                ttl: Duration::from_secs(300),
                max_entries: 1000,
            },
        }
    }
}

/// The SDK handlers built into the BFF. A handler whose settings are
/// missing (its URL variable unset) is not registered: the BFF warns at
/// start-up and calls naming it answer 503.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct HandlersConfig {
    /// `notify.webhook`: posts a JSON message to a webhook (Slack, Teams,
    /// Mattermost or any HTTP receiver).
    pub notify_webhook: NotifyWebhookConfig,
}

/// The `notify.webhook` handler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct NotifyWebhookConfig {
    /// Environment variable holding the webhook URL (a secret: webhook URLs
    /// carry their token).
    pub url_env: String,
    /// Most time for the webhook to answer.
    pub timeout: Duration,
}

impl Default for NotifyWebhookConfig {
    fn default() -> Self {
        Self {
            url_env: "THESA_NOTIFY_WEBHOOK_URL".into(),
            timeout: Duration::from_secs(5),
        }
    }
}

/// The analytics query API (`POST /api/analytics/query/{scalar,
/// timeseries,grouped,topn}`), answered from a Prometheus-compatible HTTP
/// API. Every query is limited to the caller's tenant and partitions by
/// the labels named here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct AnalyticsConfig {
    /// Base URL of the Prometheus-compatible API (`/api/v1/query` and
    /// `/api/v1/query_range` are appended). Unset: the analytics routes
    /// answer 503.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prometheus_url: Option<String>,
    /// Environment variable holding a bearer token for that API (hosted
    /// backends such as Uptrace or Grafana Cloud); unset or empty sends
    /// none.
    pub token_env: String,
    /// Most time per query.
    pub timeout: Duration,
    /// Answers kept per tenant, partitions and query (`ttl: 0` keeps
    /// none).
    pub cache: CacheConfig,
    /// Regular expressions a metric name (as the client sends it) must
    /// match one of; an empty list allows none.
    pub allowed_metrics: Vec<String>,
    /// The series label holding the tenant.
    pub tenant_label: String,
    /// The series label holding the partition.
    pub partition_label: String,
}

impl Default for AnalyticsConfig {
    fn default() -> Self {
        Self {
            prometheus_url: None,
            token_env: "THESA_ANALYTICS_TOKEN".into(),
            timeout: Duration::from_secs(10),
            cache: CacheConfig {
                ttl: Duration::from_secs(120),
                max_entries: 4096,
            },
            // The original Thesa's defaults: the metric families of its
            // services and the OpenTelemetry semantic-convention ones.
            allowed_metrics: [
                r"^(loans|funding|savings|ops|identity|notifications|payments|fort|file_service|scheduler|workflow)_.+",
                r"^(engine|connector|events|formstore|queue|pipeline|scheduler)\..+",
                r"^(devices|service_geolocation)/.+",
                r".+/(latency|completed_calls)$",
                r"^http\.server\.request\.duration$",
                r"^db\.client\.operation\.duration$",
                r"^rpc\.client\.duration$",
                r"^rpc\.server\.duration$",
                r"^gocloud\.dev/pubsub/latency$",
            ]
            .map(String::from)
            .to_vec(),
            tenant_label: "tenant_id".into(),
            partition_label: "partition_id".into(),
        }
    }
}

/// File upload and download through the files service. The service is an
/// entry of `services` (base URL, timeout, authentication and context
/// headers come from there); its upload and download endpoints are not in
/// its spec, so their paths are set here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct FilesConfig {
    /// The service ID of the files service under `services`.
    pub service: String,
    /// Path of its upload endpoint (`POST`, multipart/form-data).
    pub upload_path: String,
    /// Path of its download endpoint (`GET`); `{id}` is the file ID.
    pub download_path: String,
    /// Largest upload accepted, in bytes; a larger one is cut off with 413.
    pub max_upload_bytes: u64,
    /// Multipart field the `files.upload` handler sends the file in.
    pub upload_field: String,
    /// Capabilities a caller needs to upload (all of them).
    pub upload_capabilities: Vec<String>,
    /// Capabilities a caller needs to download (all of them).
    pub download_capabilities: Vec<String>,
}

impl Default for FilesConfig {
    fn default() -> Self {
        Self {
            service: "files-svc".into(),
            upload_path: "/upload".into(),
            download_path: "/download/{id}".into(),
            max_upload_bytes: 32 * 1024 * 1024,
            upload_field: "file".into(),
            upload_capabilities: vec!["files:upload".into()],
            download_capabilities: vec!["files:download".into()],
        }
    }
}

/// Log levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    /// Everything.
    Debug,
    /// Normal operation.
    #[default]
    Info,
    /// Problems worth a look.
    Warn,
    /// Failures only.
    Error,
}

/// Trace exporters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TraceExporter {
    /// OpenTelemetry protocol.
    #[default]
    Otlp,
    /// Jaeger.
    Jaeger,
    /// Standard output.
    Stdout,
}

/// Logs, traces and metrics.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct ObservabilityConfig {
    /// `debug`, `info`, `warn` or `error`.
    pub log_level: LogLevel,
    /// Traces.
    pub tracing: TracingConfig,
    /// Prometheus metrics.
    pub metrics: MetricsConfig,
}

/// Traces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct TracingConfig {
    /// Whether traces are exported.
    pub enabled: bool,
    /// `otlp`, `jaeger` or `stdout`.
    pub exporter: TraceExporter,
    /// Collector address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Share of requests traced, 0 to 1.
    #[schemars(range(min = 0, max = 1))]
    pub sampling_rate: f64,
    /// Always trace requests that fail.
    pub force_sample_errors: bool,
    /// `grpc` (collector port 4317) or `http_protobuf` (port 4318,
    /// `/v1/traces`).
    pub protocol: OtlpProtocol,
    /// Most spans waiting for export; past it spans are dropped (and
    /// counted), never waited for.
    #[schemars(range(min = 1))]
    pub queue_size: u32,
}

/// How spans are sent to the collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OtlpProtocol {
    /// OTLP over gRPC.
    #[default]
    Grpc,
    /// OTLP over HTTP with protobuf bodies.
    HttpProtobuf,
}

impl Default for TracingConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            exporter: TraceExporter::Otlp,
            endpoint: None,
            sampling_rate: 0.1,
            force_sample_errors: true,
            protocol: OtlpProtocol::Grpc,
            queue_size: 2048,
        }
    }
}

/// Prometheus metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct MetricsConfig {
    /// Whether `/metrics` is served.
    pub enabled: bool,
    /// Path of the metrics endpoint.
    pub path: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            path: "/metrics".into(),
        }
    }
}

/// The static policy file: which capabilities each role grants.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Policies {
    /// Role name to capabilities (`orders:view`, `orders:*`, `*`).
    pub roles: BTreeMap<String, Vec<String>>,
}

impl Policies {
    /// Parses a policy file, adding findings.
    pub fn from_text(source: &str, text: &str, findings: &mut Vec<Finding>) -> Option<Self> {
        let loaded: Loaded<Self> =
            load::from_text(POLICIES_SCHEMA.get::<Self>(), source, text, findings);
        loaded.value
    }

    /// Loads a policy document from a JSON value, adding findings.
    pub fn from_value(
        source: &str,
        value: serde_json::Value,
        findings: &mut Vec<Finding>,
    ) -> Option<Self> {
        load::from_value(POLICIES_SCHEMA.get::<Self>(), source, value, findings)
    }

    /// Whether any of `roles` grants `capability`, honouring wildcards:
    /// `*` grants everything and `orders:*` everything in `orders`.
    pub fn grants(&self, roles: &[&str], capability: &str) -> bool {
        roles
            .iter()
            .filter_map(|role| self.roles.get(*role))
            .flatten()
            .any(|granted| grants(granted, capability))
    }
}

/// Whether the granted capability (or pattern) covers `capability`: `*`
/// covers everything, `orders:*` everything in `orders`, anything else
/// only itself.
pub fn grants(granted: &str, capability: &str) -> bool {
    granted == "*"
        || granted == capability
        || granted
            .strip_suffix('*')
            .is_some_and(|prefix| prefix.ends_with(':') && capability.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_is_all_defaults() {
        let mut findings = Vec::new();
        let config = Config::from_text("c.yaml", "{}", &mut findings).unwrap();
        assert!(findings.is_empty());
        assert_eq!(config, Config::default());
        assert_eq!(config.server.port, 8080);
        assert_eq!(config.server.shutdown_timeout, Duration::from_secs(30));
    }

    #[test]
    fn rejects_algorithms_other_than_rs256_and_es256() {
        let mut findings = Vec::new();
        let config = Config::from_text(
            "c.yaml",
            "identity:\n  algorithms: [RS256, none]\n",
            &mut findings,
        );
        assert!(config.is_none());
        assert_eq!(findings[0].path, "identity.algorithms[1]");
        assert_eq!(findings[0].line, Some(2));
    }

    #[test]
    fn policies_grant_with_wildcards() {
        let mut findings = Vec::new();
        let text = "roles:\n  admin: ['*']\n  clerk: ['orders:*', 'customers:view']\n";
        let policies = Policies::from_text("p.yaml", text, &mut findings).unwrap();
        assert!(policies.grants(&["admin"], "billing:refund"));
        assert!(policies.grants(&["clerk"], "orders:cancel"));
        assert!(policies.grants(&["clerk"], "customers:view"));
        assert!(!policies.grants(&["clerk"], "customers:edit"));
        assert!(!policies.grants(&["clerk"], "ordersx:view"));
        assert!(!policies.grants(&["nobody"], "orders:view"));
    }
}
