//! Who is calling and what they may do: the caller's JWT verified against
//! the identity provider's keys (`auth`), their capabilities from the policy
//! (`capabilities`, with Ory Keto in `keto`), the admin console's permission
//! keys (`permissions`), and the `Caller` a request carries once both are
//! settled (the middleware builds it; features read it).

pub mod auth;
pub mod capabilities;
pub mod keto;
pub mod permissions;

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

/// Longest partition accepted from the header.
const MAX_PARTITION: usize = 128;

/// Whether `wanted` is one of `allowed` or a sub-partition of one
/// (`eu` allows `eu/west`): a request (`X-Partition-Id`, analytics
/// `partition_ids`) may narrow the token's partitions, never widen them. Segments are
/// letters, digits, `-` and `_` only (no `.`, `..` or empty segments), so a
/// partition can be passed on safely.
pub fn narrows(allowed: &[String], wanted: &str) -> bool {
    let plain = wanted.len() <= MAX_PARTITION
        && wanted.split('/').all(|segment| {
            !segment.is_empty()
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    plain
        && allowed.iter().any(|p| {
            wanted == p
                || wanted
                    .strip_prefix(p.as_str())
                    .is_some_and(|rest| rest.starts_with('/') && rest.len() > 1)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_header_may_narrow_but_not_widen() {
        let allowed = vec!["eu".to_string(), "us/east".to_string()];
        assert!(narrows(&allowed, "eu"));
        assert!(narrows(&allowed, "eu/west"));
        assert!(narrows(&allowed, "us/east/1"));
        assert!(!narrows(&allowed, "us"));
        assert!(!narrows(&allowed, "europe"));
        assert!(!narrows(&allowed, "eu/"));
        assert!(!narrows(&[], "eu"));
        assert!(!narrows(&allowed, "eu/../us"));
        assert!(!narrows(&allowed, "eu//x"));
        assert!(!narrows(&allowed, "eu/./x"));
        assert!(!narrows(&allowed, &format!("eu/{}", "x".repeat(200))));
    }
}
