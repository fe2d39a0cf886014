//! *Dereference*: what a ThesaDeployment refers to, read from the API —
//! spec ConfigMaps, Secrets (their versions), namespaces, the selected
//! ThesaDefinitions (from the watch's cache) and what its definitions
//! ConfigMaps serve now.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, ListParams};
use kube::{Resource, ResourceExt};
use thesa_core::checksum::MANIFEST_FILE;

use super::{Context, Error};
use crate::crd::ThesaDeployment;
use crate::desired::{self, ConfigMapChild, SOURCES_ANNOTATION};
use crate::gate::ServedFile;
use crate::plan::{self, DefinitionInput, Snapshot};
use crate::revision::CachedDefinition;
use crate::selector;

pub(super) fn secret_names(tdep: &ThesaDeployment) -> BTreeSet<&str> {
    let secrets = &tdep.spec.secrets;
    let keys = secrets.workflow_dsn.iter().chain(&secrets.redis_addr);
    keys.chain(secrets.service_tokens.values())
        .map(|s| s.name.as_str())
        .chain(secrets.env_from.iter().map(|r| r.name.as_str()))
        .collect()
}

/// Reads what the ThesaDeployment refers to. Missing references are
/// problems of the ThesaDeployment (returned), API failures are errors.
pub(crate) async fn dereference<'a>(
    tdep: &'a ThesaDeployment,
    ctx: &Context,
) -> Result<(Snapshot<'a>, Vec<String>), Error> {
    let namespace = tdep.namespace().unwrap_or_default();
    let mut problems = Vec::new();

    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut specs = BTreeMap::new();
    for source in &tdep.spec.specs {
        let field = format!("spec.specs[{}]", source.service_id);
        if let Some(text) = &source.inline {
            specs.insert(source.service_id.clone(), text.clone());
        } else if let Some(reference) = &source.config_map_key_ref {
            let cm = config_maps
                .get_opt(&reference.name)
                .await
                .map_err(Error::api(format!(
                    "reading ConfigMap {namespace}/{}",
                    reference.name
                )))?;
            match cm
                .as_ref()
                .and_then(|cm| cm.data.as_ref()?.get(&reference.key))
            {
                Some(text) => {
                    specs.insert(source.service_id.clone(), text.clone());
                }
                None if cm.is_none() => problems.push(format!(
                    "{field}: ConfigMap {:?} not found in namespace {namespace}",
                    reference.name
                )),
                None => problems.push(format!(
                    "{field}: ConfigMap {:?} has no key {:?}",
                    reference.name, reference.key
                )),
            }
        }
    }

    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut secret_versions = Vec::new();
    for name in secret_names(tdep) {
        let secret = secrets
            .get_metadata_opt(name)
            .await
            .map_err(Error::api(format!("reading Secret {namespace}/{name}")))?;
        match secret {
            Some(secret) => secret_versions.push(format!(
                "{name}={}",
                secret.metadata.resource_version.unwrap_or_default()
            )),
            None => problems.push(format!(
                "spec.secrets: Secret {name:?} not found in namespace {namespace}"
            )),
        }
    }

    let (previous, previous_versions) = served_now(ctx, &config_maps, tdep).await?;
    let namespaces = match &tdep.spec.definitions.namespace_selector {
        None => BTreeSet::from([namespace.clone()]),
        Some(selector) => {
            let all = Api::<Namespace>::all(ctx.client.clone())
                .list_metadata(&ListParams::default())
                .await
                .map_err(Error::api("listing namespaces"))?;
            all.items
                .iter()
                .filter(|ns| selector::matches(Some(selector), ns.labels()))
                .map(|ns| ns.name_any())
                .collect()
        }
    };
    let selector = tdep.spec.definitions.selector.as_ref();
    let mut selected: Vec<Arc<CachedDefinition>> = ctx
        .definitions
        .state()
        .into_iter()
        .filter(|d| d.meta().deletion_timestamp.is_none())
        .filter(|d| namespaces.contains(&d.namespace().unwrap_or_default()))
        .filter(|d| selector::matches(selector, d.labels()))
        .collect();
    selected.sort_by_key(|d| plan::full_name(d.as_ref()));
    let definitions = definition_inputs(&selected);
    // Revisions of definitions that are gone, or changed since, are
    // dropped; those of definitions other deployments select stay.
    ctx.revisions.retain(
        &ctx.definitions
            .state()
            .iter()
            .filter_map(|d| Some((d.uid()?, d.meta().generation?)))
            .collect(),
    );
    let snapshot = Snapshot {
        deployment: tdep,
        definitions,
        specs,
        previous,
        previous_versions,
        secret_versions,
        handlers: ctx.handlers.clone(),
        rollout_failed: tdep
            .status
            .as_ref()
            .and_then(|s| s.rollout.as_ref())
            .map(|r| r.failed_definitions.clone())
            .unwrap_or_default(),
    };
    Ok((snapshot, problems))
}

/// The selected definitions as the plan takes them.
pub fn definition_inputs(selected: &[Arc<CachedDefinition>]) -> Vec<DefinitionInput> {
    selected
        .iter()
        .map(|d| DefinitionInput {
            name: plan::full_name(d.as_ref()),
            generation: d.meta().generation,
            revision: d.revision.clone(),
        })
        .collect()
}

/// What each definitions ConfigMap held when last read or applied, by
/// `namespace/name`: its resourceVersion and its files. A reconcile lists
/// the ConfigMaps by metadata and reads again only those whose
/// resourceVersion moved, instead of every definition's text each time.
#[derive(Debug, Default)]
pub struct ServedConfigMaps {
    by_name: Mutex<HashMap<String, Held>>,
}

/// A ConfigMap's resourceVersion and the files it held at that version.
type Held = (String, Arc<[ServedFile]>);

impl ServedConfigMaps {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        self.by_name.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, key: &str, version: &str) -> Option<Arc<[ServedFile]>> {
        let kept = self.lock();
        let (kept_version, files) = kept.get(key)?;
        (kept_version == version).then(|| files.clone())
    }

    /// Keeps what the definitions ConfigMap `child` holds at `version`
    /// (`key` is its `namespace/name`), sharing its texts.
    pub fn remember(&self, key: String, version: String, child: &ConfigMapChild) {
        let sources = sources(child.annotation(SOURCES_ANNOTATION));
        let files: Arc<[ServedFile]> = child
            .data
            .iter()
            .filter(|(key, _)| key.as_str() != MANIFEST_FILE)
            .map(|(key, text)| ServedFile {
                key: key.clone(),
                text: text.clone(),
                owner: sources.get(key).cloned().unwrap_or_default(),
            })
            .collect();
        self.lock().insert(key, (version, files));
    }

    /// Keeps what ConfigMap `cm`, read from the API, holds.
    fn remember_read(&self, key: String, cm: ConfigMap) -> Arc<[ServedFile]> {
        let sources = sources(
            cm.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(SOURCES_ANNOTATION))
                .map(String::as_str),
        );
        let files: Arc<[ServedFile]> = cm
            .data
            .unwrap_or_default()
            .into_iter()
            .filter(|(key, _)| key.as_str() != MANIFEST_FILE)
            .map(|(key, text)| ServedFile {
                owner: sources.get(&key).cloned().unwrap_or_default(),
                key,
                text: text.into(),
            })
            .collect();
        let version = cm.metadata.resource_version.unwrap_or_default();
        self.lock().insert(key, (version, files.clone()));
        files
    }
}

/// The definitions sources annotation: file name to `namespace/name`.
fn sources(annotation: Option<&str>) -> BTreeMap<String, String> {
    annotation
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default()
}

/// The definition files the deployment's definitions ConfigMaps hold now,
/// with the ThesaDefinition each came from, and their `name=version` list.
async fn served_now(
    ctx: &Context,
    config_maps: &Api<ConfigMap>,
    tdep: &ThesaDeployment,
) -> Result<(Vec<ServedFile>, String), Error> {
    let name = tdep.name_any();
    let namespace = tdep.namespace().unwrap_or_default();
    let prefix = format!("{name}-definitions");
    let list = config_maps
        .list_metadata(&ListParams::default().labels(&desired::children_selector(&name)))
        .await
        .map_err(Error::api(format!("listing the ConfigMaps of {name}")))?;
    let mut files = Vec::new();
    let mut versions = String::new();
    for cm in list
        .items
        .iter()
        .filter(|cm| cm.name_any().starts_with(&prefix))
    {
        let cm_name = cm.name_any();
        let version = cm.resource_version().unwrap_or_default();
        versions.push_str(&format!("{cm_name}={version};"));
        let key = format!("{namespace}/{cm_name}");
        let held = match ctx.served.get(&key, &version) {
            Some(held) => held,
            None => {
                let full = config_maps
                    .get(&cm_name)
                    .await
                    .map_err(Error::api(format!("reading ConfigMap {key}")))?;
                ctx.served.remember_read(key, full)
            }
        };
        files.extend(held.iter().cloned());
    }
    Ok((files, versions))
}
