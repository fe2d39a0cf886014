//! *Apply*: the children by server-side apply (one field manager,
//! forced), then the removal of what is no longer wanted.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::{Resource, ResourceExt};
use serde_json::Value;
use tracing::{info, warn};

use super::{Context, Error};
use crate::desired::{self, MANAGER, SOURCES_ANNOTATION};

/// Applies every child (server-side apply, forced: the operator owns these
/// fields), then deletes the children it no longer wants (definition and
/// spec shards that went away, the HPA when autoscaling was turned off).
/// A ConfigMap applied unchanged before, whose resourceVersion has not
/// moved since (nobody edited it), is not sent again: with a thousand
/// definitions those are megabytes per reconcile.
pub(super) async fn apply(
    ctx: &Context,
    namespace: &str,
    children: &desired::Children,
) -> Result<(), Error> {
    let Some(owner) = children.workload.first().and_then(instance_label) else {
        return Ok(());
    };
    let lp = ListParams::default().labels(&desired::children_selector(&owner));
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), namespace);
    let live_config_maps = config_maps
        .list_metadata(&lp)
        .await
        .map_err(Error::api(format!("listing the ConfigMaps of {owner}")))?;
    let live_versions: HashMap<String, String> = live_config_maps
        .items
        .iter()
        .map(|cm| (cm.name_any(), cm.resource_version().unwrap_or_default()))
        .collect();

    let params = PatchParams::apply(MANAGER).force();
    let mut wanted: BTreeSet<(String, String)> = BTreeSet::new();
    for child in &children.config_maps {
        let name = &child.name;
        wanted.insert(("ConfigMap".to_string(), name.clone()));
        let key = format!("{namespace}/{name}");
        if let Some(version) = live_versions.get(name)
            && ctx.applied(&key) == Some((child.digest, version.clone()))
        {
            continue;
        }
        let api: Api<DynamicObject> = Api::namespaced_with(
            ctx.client.clone(),
            namespace,
            &ApiResource::erase::<ConfigMap>(&()),
        );
        let live = api
            .patch(name, &params, &Patch::Apply(child))
            .await
            .map_err(Error::api(format!("applying ConfigMap {key}")))?;
        if remove_foreign_keys(&api, name, &child.data, &live.data).await? {
            continue;
        }
        let version = live.metadata.resource_version.clone().unwrap_or_default();
        ctx.remember_applied(key.clone(), child.digest, version.clone());
        if child.annotation(SOURCES_ANNOTATION).is_some() {
            // A definitions ConfigMap: the next reconcile need not read it
            // again while its resourceVersion stays.
            ctx.served.remember(key, version, child);
        }
    }
    for object in &children.workload {
        let (api, kind, name) = dynamic_api(ctx, namespace, object);
        wanted.insert((kind.clone(), name.clone()));
        api.patch(&name, &params, &Patch::Apply(object))
            .await
            .map_err(Error::api(format!("applying {kind} {namespace}/{name}")))?;
    }
    delete_unwanted_listed("ConfigMap", &config_maps, live_config_maps.items, &wanted).await?;
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(ctx.client.clone(), namespace);
    delete_unwanted(&hpas, &lp, &wanted).await
}

/// Deletes the objects of `api` that `lp` selects and `wanted` (kind, name)
/// does not list: shards that went away, the HPA after autoscaling was
/// turned off.
async fn delete_unwanted<K>(
    api: &Api<K>,
    lp: &ListParams,
    wanted: &BTreeSet<(String, String)>,
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let kind = K::kind(&()).to_string();
    let listed = api
        .list_metadata(lp)
        .await
        .map_err(Error::api(format!("listing {kind}s")))?;
    delete_unwanted_listed(&kind, api, listed.items, wanted).await
}

/// Deletes the `listed` objects that `wanted` does not list.
async fn delete_unwanted_listed<K, L>(
    kind: &str,
    api: &Api<K>,
    listed: Vec<L>,
    wanted: &BTreeSet<(String, String)>,
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    L: ResourceExt,
{
    for object in listed {
        let name = object.name_any();
        if !wanted.contains(&(kind.to_string(), name.clone())) {
            info!(kind = %kind, name = %name, "deleting a child no longer wanted");
            api.delete(&name, &DeleteParams::default())
                .await
                .map_err(Error::api(format!("deleting {kind} {name}")))?;
        }
    }
    Ok(())
}

/// Server-side apply leaves keys that another field manager added to a
/// ConfigMap; in the definitions ConfigMap such a key would be a definition
/// that never passed the gate. The operator's ConfigMaps hold exactly
/// what it applied. Whether keys were removed.
async fn remove_foreign_keys(
    api: &Api<DynamicObject>,
    name: &str,
    wanted: &BTreeMap<String, Arc<str>>,
    live: &Value,
) -> Result<bool, Error> {
    let mut removals = serde_json::Map::new();
    for field in ["data", "binaryData"] {
        let extra: serde_json::Map<String, Value> = live
            .get(field)
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter(|(key, _)| field == "binaryData" || !wanted.contains_key(*key))
            .map(|(key, _)| (key.clone(), Value::Null))
            .collect();
        if !extra.is_empty() {
            removals.insert(field.to_string(), Value::Object(extra));
        }
    }
    if removals.is_empty() {
        return Ok(false);
    }
    warn!(configmap = %name, removed = ?removals, "removing keys the operator did not write");
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(Value::Object(removals)),
    )
    .await
    .map_err(Error::api(format!(
        "removing foreign keys from ConfigMap {name}"
    )))?;
    Ok(true)
}

fn instance_label(object: &Value) -> Option<String> {
    let labels = object.pointer("/metadata/labels")?;
    Some(
        labels
            .get("app.kubernetes.io/instance")?
            .as_str()?
            .to_string(),
    )
}

fn dynamic_api(
    ctx: &Context,
    namespace: &str,
    object: &Value,
) -> (Api<DynamicObject>, String, String) {
    let text = |pointer: &str| {
        object
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let api_version = text("/apiVersion");
    let kind = text("/kind");
    let (group, version) = api_version.split_once('/').unwrap_or(("", &api_version));
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, &kind));
    let api = Api::namespaced_with(ctx.client.clone(), namespace, &resource);
    (api, kind, text("/metadata/name"))
}
