//! Calls out of the BFF: the shared outbound HTTP client (`outbound`),
//! backend operations (`invoker`) with their circuit breakers and retries
//! (`resilience`), and the BFF's own service tokens (`service_token`).

pub mod invoker;
pub mod outbound;
pub mod resilience;
pub mod service_token;
