//! One revision of a ThesaDefinition, prepared once: loaded by the
//! validator (its structural findings, its checksum) and written as the
//! YAML text the definitions ConfigMap holds. The controller keeps these by
//! `(uid, generation)`, so a reconcile loads and writes only the
//! definitions that changed since the last one, and its cache of
//! ThesaDefinitions holds each one in that form only ([`CachedDefinition`]):
//! metadata, status and the prepared revision, not the spec as JSON.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde_json::Value;
use thesa_core::checksum::Checksum;
use thesa_core::finding::Finding;
use thesa_core::node::Node;
use thesa_core::validate::LoadedDefinition;

use crate::crd::{ThesaDefinition, ThesaDefinitionStatus};

/// A prepared definition revision.
#[derive(Debug)]
pub struct Revision {
    /// As loaded by the validator.
    pub loaded: LoadedDefinition,
    /// Findings from loading it (structure).
    pub load_findings: Vec<Finding>,
    /// Its checksum, when it loaded.
    pub checksum: Option<Checksum>,
    /// The spec as the YAML text of its ConfigMap file.
    pub text: Arc<str>,
    /// A hash of `text`, to tell revisions apart cheaply.
    pub digest: u64,
}

impl Revision {
    /// From a custom resource's spec; findings name `source`.
    pub fn from_value(source: impl Into<String>, spec: Value) -> Self {
        let text = crate::manifest::to_yaml_body(&spec);
        let mut load_findings = Vec::new();
        let loaded = LoadedDefinition::from_value(source, spec, &mut load_findings);
        Self::new(loaded, load_findings, text)
    }

    /// From a spec read from a file: findings carry its positions.
    pub fn from_node(source: impl Into<String>, node: Node) -> Self {
        let text = crate::manifest::to_yaml_body(&node.to_json());
        let mut load_findings = Vec::new();
        let loaded = LoadedDefinition::from_node(source, node, &mut load_findings);
        Self::new(loaded, load_findings, text)
    }

    fn new(loaded: LoadedDefinition, load_findings: Vec<Finding>, text: String) -> Self {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        text.hash(&mut hasher);
        Self {
            checksum: loaded.checksum(),
            loaded,
            load_findings,
            text: text.into(),
            digest: hasher.finish(),
        }
    }
}

/// Prepared revisions by `(uid, generation)`.
#[derive(Debug, Default)]
pub struct Revisions {
    prepared: Mutex<HashMap<(String, i64), Arc<Revision>>>,
}

impl Revisions {
    /// The revision `(uid, generation)`, prepared by `prepare` if it is not
    /// kept yet.
    pub fn get_or_prepare(
        &self,
        uid: &str,
        generation: i64,
        prepare: impl FnOnce() -> Revision,
    ) -> Arc<Revision> {
        let key = (uid.to_string(), generation);
        if let Some(revision) = self.lock().get(&key) {
            return revision.clone();
        }
        // Prepared outside the lock: loading takes a while.
        let revision = Arc::new(prepare());
        self.lock().entry(key).or_insert(revision).clone()
    }

    /// Forgets every revision but those of `keep` (uid and generation).
    pub fn retain(&self, keep: &HashSet<(String, i64)>) {
        self.lock().retain(|key, _| keep.contains(key));
    }

    /// How many revisions are kept.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, i64), Arc<Revision>>> {
        self.prepared.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A ThesaDefinition as the controller's cache keeps it: its metadata
/// (without managed fields), its status, and its spec as a prepared
/// [`Revision`] shared with every other copy of the same generation.
#[derive(Debug, Clone)]
pub struct CachedDefinition {
    /// The object's metadata, managed fields left out.
    pub metadata: ObjectMeta,
    /// Its status.
    pub status: Option<ThesaDefinitionStatus>,
    /// Its spec, prepared.
    pub revision: Arc<Revision>,
}

impl CachedDefinition {
    /// `tdef` in cached form; its revision is taken from `revisions` when
    /// that generation was prepared before (a status update, a re-list),
    /// else prepared now.
    pub fn new(tdef: ThesaDefinition, revisions: &Revisions) -> Self {
        let ThesaDefinition {
            mut metadata,
            spec,
            status,
        } = tdef;
        metadata.managed_fields = None;
        let source = format!(
            "{}/{}",
            metadata.namespace.as_deref().unwrap_or_default(),
            metadata.name.as_deref().unwrap_or_default()
        );
        let prepare = move || Revision::from_value(source, Value::Object(spec.document));
        let revision = match (&metadata.uid, metadata.generation) {
            (Some(uid), Some(generation)) => revisions.get_or_prepare(uid, generation, prepare),
            _ => Arc::new(prepare()),
        };
        Self {
            metadata,
            status,
            revision,
        }
    }
}

/// Read as a ThesaDefinition, then prepared (kube-runtime's stream
/// adapters ask for it).
impl<'de> serde::Deserialize<'de> for CachedDefinition {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let tdef = ThesaDefinition::deserialize(deserializer)?;
        Ok(Self::new(tdef, &Revisions::default()))
    }
}

impl Resource for CachedDefinition {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(dt: &()) -> Cow<'_, str> {
        ThesaDefinition::kind(dt)
    }

    fn group(dt: &()) -> Cow<'_, str> {
        ThesaDefinition::group(dt)
    }

    fn version(dt: &()) -> Cow<'_, str> {
        ThesaDefinition::version(dt)
    }

    fn plural(dt: &()) -> Cow<'_, str> {
        ThesaDefinition::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// A watch event of ThesaDefinitions as one of [`CachedDefinition`]s.
pub fn cached_event(
    event: kube::runtime::watcher::Event<ThesaDefinition>,
    revisions: &Revisions,
) -> kube::runtime::watcher::Event<CachedDefinition> {
    use kube::runtime::watcher::Event;
    match event {
        Event::Apply(d) => Event::Apply(CachedDefinition::new(d, revisions)),
        Event::Delete(d) => Event::Delete(CachedDefinition::new(d, revisions)),
        Event::Init => Event::Init,
        Event::InitApply(d) => Event::InitApply(CachedDefinition::new(d, revisions)),
        Event::InitDone => Event::InitDone,
    }
}
