//! The shared core of Thesa on Kubernetes: the definition model, the
//! OpenAPI operation index, the validator and checksums.
//!
//! It knows nothing about Kubernetes or HTTP; the operator and the BFF are
//! adapters around it.

#![forbid(unsafe_code)]

pub mod checksum;
pub mod config;
pub mod duration;
pub mod files;
pub mod finding;
pub mod load;
pub mod model;
pub mod node;
pub mod openapi;
pub mod path;
mod suggest;
pub mod validate;
