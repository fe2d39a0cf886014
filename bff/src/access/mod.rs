//! Who is calling and what they may do: the caller's JWT verified against
//! the identity provider's keys (`auth`), their capabilities from the policy
//! (`capabilities`), and the `Caller` a request carries once both are
//! settled (the middleware builds it; features read it).

pub mod auth;
pub mod capabilities;

use auth::Principal;
use capabilities::CapabilitySet;

/// The authenticated caller, its partition and its capabilities.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who is calling.
    pub principal: Principal,
    /// The partition of this request: the token's default, or the one
    /// `X-Partition-Id` narrowed it to.
    pub partition: Option<String>,
    /// What the caller may see and do.
    pub capabilities: CapabilitySet,
}
