//! The definition format: one document per domain describing its
//! navigation, pages, forms, commands, workflows, searches and lookups.
//!
//! Compatible with Thesa's existing format (YAML, snake_case keys): where
//! Thesa's Go loader stores any scalar into a string field, the loader here
//! does the same (see [`crate::load`]), and durations may be seconds or
//! strings. The doc comments become the `kubectl explain` text of the CRDs.

mod command;
mod page;
mod workflow;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use command::{
    BodyMapping, Command, Idempotency, InputMapping, OutputMapping, RateLimit, RateLimitScope,
};
pub use page::{
    ALWAYS_READ_ONLY, Action, ActionType, Breadcrumb, Column, Condition, Confirmation, Dependency,
    Field, FieldValidation, Filter, Form, HIDDEN, Layout, Link, Options, Page, Section, SortDir,
    StaticOption, Table,
};
pub use workflow::{Assignee, Step, StepType, Transition, Workflow};

use crate::duration::Duration;

/// Domain names: lowercase letters, digits, `-` and `_`, starting with a
/// letter, at most 63 characters (a DNS label, plus `_` which Thesa allows).
pub const DOMAIN_PATTERN: &str = r"^[a-z]([a-z0-9_-]{0,61}[a-z0-9])?$";

/// Semantic versions (semver.org 2.0.0): what `validate --lint` expects of
/// `version`.
pub const SEMVER_PATTERN: &str = r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$";

pub(crate) fn is_false(b: &bool) -> bool {
    !b
}

/// One domain's part of the UI: what the BFF serves and which backend
/// operations it calls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Definition {
    /// The domain this definition describes, e.g. `orders`. Lowercase
    /// letters, digits, `-` and `_`; unique among the loaded definitions.
    #[schemars(regex(pattern = DOMAIN_PATTERN))]
    pub domain: String,
    /// Version of this definition: any text, as in Thesa's format; a
    /// semantic version such as `1.4.0` is recommended (`validate --lint`
    /// says when it is not one).
    #[schemars(length(min = 1))]
    pub version: String,
    /// The domain's entry in the navigation menu.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub navigation: Option<Navigation>,
    /// Pages (screens) of the domain.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pages: Vec<Page>,
    /// Data entry forms.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forms: Vec<Form>,
    /// Commands: named mutations that call a backend operation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<Command>,
    /// Workflows: multi-step processes kept by the BFF.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workflows: Vec<Workflow>,
    /// Providers for the global search.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub searches: Vec<Search>,
    /// Option lists for dropdowns and reference fields.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lookups: Vec<Lookup>,
}

/// The domain's entry in the navigation menu.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Navigation {
    /// Menu label of the domain.
    pub label: String,
    /// Icon name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon: Option<String>,
    /// Position in the menu (lower first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<i32>,
    /// Where the frontend places the entry, e.g. `bottom` (passed on as
    /// it is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Capabilities a user needs to see the entry (all of them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    /// Menu items under the domain entry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<NavigationChild>,
}

/// A menu item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NavigationChild {
    /// Menu label.
    pub label: String,
    /// Icon name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon: Option<String>,
    /// Route the item opens, e.g. `/orders`.
    pub route: String,
    /// ID of the page the item opens, or of a form (Thesa's format lets a
    /// menu item open a form by its ID here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_id: Option<String>,
    /// Capabilities a user needs to see the item (all of them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    /// Position among its siblings (lower first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<i32>,
    /// A count or status shown next to the item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub badge: Option<Badge>,
}

/// A count or status next to a menu item, read from a backend operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Badge {
    /// The operation that returns the value.
    pub operation_id: String,
    /// The service whose spec has the operation; needed only when several
    /// specs have an operation of that ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_id: Option<String>,
    /// Field of the response that holds the value.
    pub field: String,
    /// Style: `info`, `warning`, `danger`, `success`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub style: Option<String>,
}

/// Where a table, a page, a page section or a form gets its data: a
/// backend operation or a registered handler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DataSource {
    /// The operation to call (set this or `handler`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_id: Option<String>,
    /// The service whose spec has the operation; needed only when several
    /// specs have an operation of that ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_id: Option<String>,
    /// A registered SDK handler to call instead of an operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handler: Option<String>,
    /// How to read the response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapping: Option<ResponseMapping>,
}

/// How to read a list response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ResponseMapping {
    /// Dotted path of the item list in the response, e.g. `data.items`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items_path: Option<String>,
    /// Dotted path of the total count in the response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_path: Option<String>,
    /// UI field name to backend field name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub field_map: BTreeMap<String, String>,
    /// Request field to value, for the data sources of pages, page
    /// sections and forms: `{name}` placeholders are filled with the
    /// parameters of the page's route (`link_id: "{id}"`). A field the
    /// operation has as a path or query parameter goes there, anything
    /// else into the JSON body.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub request_mapping: BTreeMap<String, String>,
}

/// Whether an operation is called over HTTP from its OpenAPI spec or by a
/// handler compiled into the BFF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OperationType {
    /// An operation of an OpenAPI spec (`operation_id`, optional `service_id`).
    #[default]
    Openapi,
    /// A registered SDK handler (`handler`).
    Sdk,
}

/// The backend operation an element calls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OperationBinding {
    /// `openapi` (default) or `sdk`.
    #[serde(default, rename = "type")]
    pub kind: OperationType,
    /// The operation's `operationId` (for `openapi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_id: Option<String>,
    /// The service whose spec has the operation; needed only when several
    /// specs have an operation of that ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_id: Option<String>,
    /// The registered handler name (for `sdk`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handler: Option<String>,
}

/// A provider for the global search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Search {
    /// Search provider ID, unique among the loaded definitions.
    #[schemars(length(min = 1))]
    pub id: String,
    /// Domain shown as the result category (defaults to the definition's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Capabilities a user needs to get results from this provider.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    /// The operation that searches.
    pub operation: OperationBinding,
    /// How to read the results.
    pub result_mapping: SearchResultMapping,
    /// Ranking weight of this provider's results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub weight: Option<f64>,
    /// Most results taken from this provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_results: Option<u32>,
}

/// How to turn search results into UI results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SearchResultMapping {
    /// Dotted path of the result list in the response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items_path: Option<String>,
    /// Field shown as the result title.
    pub title_field: String,
    /// Field shown under the title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtitle_field: Option<String>,
    /// Field used as the result category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category_field: Option<String>,
    /// Field holding an icon name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon_field: Option<String>,
    /// Route a result opens, e.g. `/orders/{id}`.
    pub route: String,
    /// Field holding the result's ID.
    pub id_field: String,
}

/// Where a lookup caches its options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CacheScope {
    /// One cache for all tenants.
    Global,
    /// One cache per tenant.
    Tenant,
    /// One cache per tenant and partition.
    Partition,
}

/// An option list for dropdowns and reference fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Lookup {
    /// Lookup ID, unique among the loaded definitions.
    #[schemars(length(min = 1))]
    pub id: String,
    /// The operation that returns the options (Thesa's format allows a
    /// lookup without one; it then has no options).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<OperationBinding>,
    /// Field shown as the option label.
    pub label_field: String,
    /// Field used as the option value.
    pub value_field: String,
    /// Query parameter used to filter options by typed text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_field: Option<String>,
    /// Caching of the options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<LookupCache>,
}

/// Caching of lookup options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LookupCache {
    /// How long options are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<Duration>,
    /// `global`, `tenant` (the default) or `partition`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<CacheScope>,
}
