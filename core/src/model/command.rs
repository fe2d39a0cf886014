//! Commands: named mutations that call a backend operation.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::OperationBinding;
use crate::duration::Duration;

/// A named, authorized mutation (`POST /ui/commands/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Command {
    /// Command ID, unique among the loaded definitions.
    #[schemars(length(min = 1))]
    pub id: String,
    /// Capabilities a user needs to run the command (all of them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    /// The backend operation called.
    pub operation: OperationBinding,
    /// How the request is built from the input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<InputMapping>,
    /// How the response is shaped for the frontend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<OutputMapping>,
    /// Deduplication of repeated submissions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency: Option<Box<Idempotency>>,
    /// Rate limit of the command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<Box<RateLimit>>,
}

/// How the request body is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BodyMapping {
    /// The input is sent as it is.
    #[default]
    Passthrough,
    /// Fields of `field_projection` are sent.
    Projection,
    /// `body_template` is filled in and sent.
    Template,
}

/// How a backend request is built. Values are expressions: `input.id`,
/// `route.id`, `context.tenant_id`, `workflow.order_id`, `'literal'`, `42`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct InputMapping {
    /// Path parameter to expression; must cover every parameter of the
    /// operation's path template.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub path_params: BTreeMap<String, String>,
    /// Query parameter to expression.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub query_params: BTreeMap<String, String>,
    /// Header to expression.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub header_params: BTreeMap<String, String>,
    /// `passthrough` (default), `projection` or `template`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_mapping: Option<BodyMapping>,
    /// Body field to expression, for `template`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub body_template: BTreeMap<String, String>,
    /// Body field (dotted for nesting) to expression, for `projection`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub field_projection: BTreeMap<String, String>,
}

/// How a backend response is shaped for the frontend.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct OutputMapping {
    /// Shape: `passthrough`, `project`, `full`, ...
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// UI field to response field.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
    /// Backend error code to message shown.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub error_map: BTreeMap<String, String>,
    /// Message shown on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_message: Option<String>,
}

/// Deduplication of repeated submissions (`X-Idempotency-Key`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Idempotency {
    /// Where the key comes from: `header`, `client`, `input_hash`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_source: Option<String>,
    /// How long a key is remembered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<Duration>,
}

/// A rate limit: at most `max_requests` runs of the command in any
/// `window`, counted per `scope`. Without `max_requests` or `window` the
/// command is not limited.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RateLimit {
    /// Requests allowed per window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_requests: Option<u32>,
    /// Length of the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Duration>,
    /// Who shares a limit: `user` (the default), `tenant`, `global`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<RateLimitScope>,
}

/// Who shares one rate limit's count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RateLimitScope {
    /// Each user (subject within a tenant).
    #[default]
    User,
    /// Each tenant.
    Tenant,
    /// Every caller together.
    Global,
}
