//! What the BFF does for the frontend, behind the HTTP surface: metadata
//! views and their cache, page and form data, commands and their
//! idempotency keys, search, lookups, navigation badges, SDK handlers, the
//! workflow engine and the admin console's analytics queries. Features call backends through `backends` and judge
//! callers with `access`; they know nothing of routes or middleware.

pub mod analytics;
pub mod badges;
pub mod commands;
pub mod data;
pub mod files;
pub mod handlers;
pub mod idempotency;
pub mod lookups;
pub mod metadata;
pub mod rate_limit;
pub mod search;
pub mod views;
pub mod workflow;
