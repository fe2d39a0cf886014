//! The Thesa operator: custom resources, the validation gate, the desired
//! state of a ThesaDeployment's child objects, the controller, and the
//! offline renderer.

#![forbid(unsafe_code)]

pub mod certs;
pub mod conditions;
pub mod controller;
pub mod crd;
pub mod desired;
pub mod gate;
pub mod kstatus;
pub mod leader;
pub mod manifest;
pub mod plan;
pub mod render;
pub mod revision;
pub mod rollout;
pub mod selector;
pub mod telemetry;
pub mod webhook;
