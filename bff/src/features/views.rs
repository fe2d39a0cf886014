//! Rendered metadata views (navigation, pages, forms), cached as JSON
//! bytes with their ETag. A view depends only on the definition set and the
//! caller's capabilities, so both are in the key: a reload changes the set
//! checksum and old entries are simply never asked for again (they age out
//! of the size-bounded cache).

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::HeaderValue;
use moka::sync::Cache;
use serde::Serialize;
use sha2::{Digest, Sha256};
use thesa_core::checksum::Checksum;

use crate::access::capabilities::CapabilitySet;

/// Most bytes of rendered views kept.
const MAX_BYTES: u64 = 16 * 1024 * 1024;

/// Which view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum View {
    /// `GET /ui/navigation`.
    Navigation,
    /// `GET /ui/pages/{id}`.
    Page,
    /// `GET /ui/forms/{id}`.
    Form,
}

impl View {
    /// What the view shows, for messages.
    pub fn noun(self) -> &'static str {
        match self {
            Self::Navigation => "navigation",
            Self::Page => "page",
            Self::Form => "form",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    set: Checksum,
    view: View,
    id: String,
    capabilities: [u8; 16],
}

/// A view as sent: JSON and its ETag.
#[derive(Debug)]
pub struct Rendered {
    /// The JSON body.
    pub body: Bytes,
    /// A weak ETag over the set checksum and the capabilities.
    pub etag: HeaderValue,
}

/// The cache.
#[derive(Debug)]
pub struct ViewCache(Cache<Key, Arc<Rendered>>);

impl Default for ViewCache {
    fn default() -> Self {
        Self(
            Cache::builder()
                .max_capacity(MAX_BYTES)
                .weigher(|key: &Key, value: &Arc<Rendered>| {
                    u32::try_from(value.body.len() + key.id.len() + 128).unwrap_or(u32::MAX)
                })
                .build(),
        )
    }
}

impl ViewCache {
    /// The view from the cache, or rendered by `render` and kept. `None`
    /// (not found, or not visible to these capabilities) is not kept, so
    /// that made-up IDs cannot push real views out.
    pub fn get_or_render<V: Serialize>(
        &self,
        set: Checksum,
        view: View,
        id: &str,
        capabilities: &CapabilitySet,
        render: impl FnOnce() -> Option<V>,
    ) -> Option<Arc<Rendered>> {
        let key = Key {
            set,
            view,
            id: id.to_string(),
            capabilities: capabilities.fingerprint(),
        };
        if let Some(rendered) = self.0.get(&key) {
            return Some(rendered);
        }
        let body = serde_json::to_vec(&render()?).ok()?;
        let rendered = Arc::new(Rendered {
            body: Bytes::from(body),
            etag: etag(set, capabilities),
        });
        self.0.insert(key, rendered.clone());
        Some(rendered)
    }
}

impl Rendered {
    /// The view with a new body (filled with per-caller values such as
    /// badges), tagged over both the view's tag and the new body.
    pub fn with_body(&self, body: Vec<u8>) -> Rendered {
        let mut hash = Sha256::new();
        hash.update(self.etag.as_bytes());
        hash.update(&body);
        Rendered {
            body: Bytes::from(body),
            etag: weak_tag(&hash.finalize()),
        }
    }
}

fn weak_tag(digest: &[u8]) -> HeaderValue {
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    HeaderValue::from_str(&format!("W/\"{hex}\"")).unwrap_or(HeaderValue::from_static("W/\"\""))
}

/// A weak ETag over the definition set's checksum and the caller's
/// capabilities: the view changes when either does. The set's checksum,
/// not the one definition's, because views follow references into other
/// definitions (an action's form may live in another domain).
fn etag(set: Checksum, capabilities: &CapabilitySet) -> HeaderValue {
    let mut hash = Sha256::new();
    hash.update(set.to_string().as_bytes());
    hash.update(capabilities.fingerprint());
    weak_tag(&hash.finalize())
}
