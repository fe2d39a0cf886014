//! *Dereference*: what a ThesaDeployment refers to, read from the API —
//! spec ConfigMaps, Secrets (their versions), namespaces, the selected
//! ThesaDefinitions (from the watch's cache) and what its definitions
//! ConfigMaps serve now.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, ListParams};
use kube::{Resource, ResourceExt};
use serde_json::Value;
use thesa_core::checksum::MANIFEST_FILE;

use super::{Context, Error};
use crate::crd::{ThesaDefinition, ThesaDeployment};
use crate::desired::{self, SOURCES_ANNOTATION};
use crate::gate::ServedFile;
use crate::plan::{self, DefinitionInput, Snapshot};
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

    let previous = served_now(&config_maps, tdep).await?;
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
    let mut selected: Vec<Arc<ThesaDefinition>> = ctx
        .definitions
        .state()
        .into_iter()
        .filter(|d| d.meta().deletion_timestamp.is_none())
        .filter(|d| namespaces.contains(&d.namespace().unwrap_or_default()))
        .filter(|d| selector::matches(selector, d.labels()))
        .collect();
    selected.sort_by_key(|d| plan::full_name(d.as_ref()));
    let definitions = selected
        .iter()
        .map(|d| {
            let name = plan::full_name(d.as_ref());
            DefinitionInput {
                source: name.clone(),
                name,
                generation: d.meta().generation,
                spec: Value::Object(d.spec.document.clone()),
                node: None,
            }
        })
        .collect();
    let snapshot = Snapshot {
        deployment: tdep,
        definitions,
        specs,
        previous,
        secret_versions,
        handlers: ctx.handlers.clone(),
    };
    Ok((snapshot, problems))
}

/// The definition files the deployment's definitions ConfigMaps hold now,
/// with the ThesaDefinition each came from.
async fn served_now(
    config_maps: &Api<ConfigMap>,
    tdep: &ThesaDeployment,
) -> Result<Vec<ServedFile>, Error> {
    let name = tdep.name_any();
    let prefix = format!("{name}-definitions");
    let list = config_maps
        .list(&ListParams::default().labels(&desired::children_selector(&name)))
        .await
        .map_err(Error::api(format!("listing the ConfigMaps of {name}")))?;
    let mut files = Vec::new();
    for cm in list
        .items
        .iter()
        .filter(|cm| cm.name_any().starts_with(&prefix))
    {
        let sources: BTreeMap<String, String> = cm
            .annotations()
            .get(SOURCES_ANNOTATION)
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default();
        for (key, text) in cm.data.iter().flatten() {
            if key == MANIFEST_FILE {
                continue;
            }
            files.push(ServedFile {
                key: key.clone(),
                text: text.clone(),
                owner: sources.get(key).cloned().unwrap_or_default(),
            });
        }
    }
    Ok(files)
}
