//! *Build*: the child objects of a ThesaDeployment, as a pure function of
//! validated input. The Deployment follows the deployment guide's manifest
//! (rolling update 1/0, probes, preStop sleep, grace period, security
//! contexts, read-only mounts, scrape annotations).

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::{Resource, ResourceExt};
use serde_json::{Map, Value, json};
use thesa_core::checksum::{Checksum, MANIFEST_FILE, Manifest};
use thesa_core::config::{Config, Policies, SpecSource};
use thesa_core::duration::Duration;

use crate::crd::{Autoscaling, DisruptionBudget, ScalingRule, ThesaDeployment};
use crate::gate::ServedFile;

/// The field manager of every server-side apply, and the value of the
/// `app.kubernetes.io/managed-by` label.
pub const MANAGER: &str = "thesa-operator";
/// Pod template annotation whose change rolls the pods.
pub const CHECKSUM_ANNOTATION: &str = "thesa.io/checksum";
/// ConfigMap annotation: which ThesaDefinition each key came from.
pub const SOURCES_ANNOTATION: &str = "thesa.io/definition-sources";
/// Largest ConfigMap `data` the operator writes (the API's limit is 1 MiB
/// for the whole object; the rest is left for metadata).
pub const MAX_CONFIG_MAP_BYTES: usize = 900 * 1024;

const CONFIG_DIR: &str = "/config";
const DEFINITIONS_DIR: &str = "/definitions";
const SPECS_DIR: &str = "/specs";
/// The container's preStop sleep, seconds.
const PRE_STOP_SECONDS: i64 = 5;

/// Everything `build` needs, already read and validated.
#[derive(Debug)]
pub struct Input<'a> {
    /// The ThesaDeployment.
    pub deployment: &'a ThesaDeployment,
    /// Its BFF config, loaded.
    pub config: Config,
    /// Its policies, loaded.
    pub policies: Policies,
    /// Spec texts by service ID.
    pub specs: BTreeMap<String, String>,
    /// The definitions the gate lets through.
    pub served: &'a [ServedFile],
    /// Their checksums, mounted beside them as `thesa-checksums.sha256`.
    pub manifest: &'a Manifest,
    /// Versions of referenced Secrets (`name=resourceVersion`): a rotated
    /// secret rolls the pods, which read it from the environment.
    pub secret_versions: Vec<String>,
}

/// A problem with the ThesaDeployment itself that stops a rollout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// A service token secret is given for a service whose config does not
    /// name the environment variable to put it in.
    #[error(
        "spec.secrets.serviceTokens.{0}: config.services.{0}.auth.client_secret_env is not set, so the BFF would not know where to read the secret"
    )]
    ServiceTokenWithoutEnv(String),
    /// One file is larger than a ConfigMap can hold.
    #[error("{0}: {1} bytes is more than a ConfigMap can hold ({MAX_CONFIG_MAP_BYTES})")]
    FileTooLarge(String, usize),
    /// Writing YAML failed.
    #[error("writing {0}: {1}")]
    Yaml(&'static str, String),
}

/// The child objects, in the order they are applied (what pods mount
/// comes before the pods).
#[derive(Debug, Clone, PartialEq)]
pub struct Children {
    /// ConfigMaps: config, specs shards, definitions shards.
    pub config_maps: Vec<ConfigMapChild>,
    /// ServiceAccount, Service, Deployment, then the HPA (when autoscaling
    /// is set) and the PodDisruptionBudget.
    pub workload: Vec<Value>,
}

impl Children {
    /// Every object as JSON, in apply order.
    pub fn objects(&self) -> Vec<Value> {
        self.config_maps
            .iter()
            .map(ConfigMapChild::to_value)
            .chain(self.workload.iter().cloned())
            .collect()
    }

    /// How many objects there are.
    pub fn len(&self) -> usize {
        self.config_maps.len() + self.workload.len()
    }

    /// Whether there are none (never, for a built deployment).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A ConfigMap to apply, its files shared with the definition revisions
/// they came from rather than copied: with a thousand definitions the
/// texts are megabytes, and the plan that holds them is kept between
/// reconciles. Serializes as the ConfigMap object.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigMapChild {
    /// `metadata.name`.
    pub name: String,
    /// `metadata`.
    pub metadata: Value,
    /// `data`: file name to text.
    pub data: BTreeMap<String, Arc<str>>,
    /// A hash of the whole object: the controller skips applying one it
    /// applied unchanged before and nobody touched since.
    pub digest: u64,
}

impl ConfigMapChild {
    fn new(metadata: Value, data: BTreeMap<String, Arc<str>>) -> Self {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        metadata.to_string().hash(&mut hasher);
        data.hash(&mut hasher);
        Self {
            name: metadata["name"].as_str().unwrap_or_default().to_string(),
            metadata,
            data,
            digest: hasher.finish(),
        }
    }

    /// The object as JSON.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    /// An annotation of the object.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.metadata.get("annotations")?.get(key)?.as_str()
    }
}

impl serde::Serialize for ConfigMapChild {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(4))?;
        map.serialize_entry("apiVersion", "v1")?;
        map.serialize_entry("kind", "ConfigMap")?;
        map.serialize_entry("metadata", &self.metadata)?;
        map.serialize_entry("data", &Texts(&self.data))?;
        map.end()
    }
}

/// File texts as a JSON object of strings.
struct Texts<'a>(&'a BTreeMap<String, Arc<str>>);

impl serde::Serialize for Texts<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(k, v)| (k, &**v)))
    }
}

/// Builds the child objects.
///
/// # Errors
/// A [`BuildError`] naming the field of the ThesaDeployment to fix.
pub fn build(input: &Input<'_>) -> Result<Children, BuildError> {
    let tdep = input.deployment;
    let name = tdep.name_any();
    let config = effective_config(input);
    let config_yaml = format!(
        "# Written by thesa-operator from ThesaDeployment {}/{name}; edit that instead.\n{}",
        tdep.namespace().unwrap_or_default(),
        yaml("config.yaml", &config)?
    );
    let policies_yaml = yaml("policies.yaml", &input.policies)?;
    let config_data: BTreeMap<String, Arc<str>> = BTreeMap::from([
        ("config.yaml".to_string(), config_yaml.into()),
        ("policies.yaml".to_string(), policies_yaml.into()),
    ]);
    let spec_data: BTreeMap<String, Arc<str>> = input
        .specs
        .iter()
        .map(|(id, text)| (format!("{id}.yaml"), Arc::from(text.as_str())))
        .collect();
    let definition_data: BTreeMap<String, Arc<str>> = input
        .served
        .iter()
        .map(|f| (f.key.clone(), f.text.clone()))
        .chain([(MANIFEST_FILE.to_string(), input.manifest.render().into())])
        .collect();
    let sources: BTreeMap<&str, &str> = input
        .served
        .iter()
        .map(|f| (f.key.as_str(), f.owner.as_str()))
        .collect();

    let checksum = rollout_checksum(input, &config_data, &spec_data, &definition_data);
    let meta = Meta::new(tdep);
    let mut config_maps = vec![meta.config_map(&format!("{name}-config"), config_data, None)];
    let spec_shards = shard(spec_data)?;
    let definition_shards = shard(definition_data)?;
    let spec_names = shard_names(&name, "specs", spec_shards.len());
    let definition_names = shard_names(&name, "definitions", definition_shards.len());
    for (shard, shard_name) in spec_shards.into_iter().zip(&spec_names) {
        config_maps.push(meta.config_map(shard_name, shard, None));
    }
    let sources = serde_json::to_string(&sources).unwrap_or_default();
    for (shard, shard_name) in definition_shards.into_iter().zip(&definition_names) {
        config_maps.push(meta.config_map(shard_name, shard, Some(&sources)));
    }

    let mut workload = vec![
        meta.object(
            "v1",
            "ServiceAccount",
            &name,
            json!({ "automountServiceAccountToken": false }),
        ),
        service(&meta, tdep),
        deployment(
            &meta,
            input,
            &config,
            &checksum,
            &spec_names,
            &definition_names,
        )?,
    ];
    if let Some(autoscaling) = &tdep.spec.autoscaling {
        workload.push(hpa(&meta, autoscaling));
    }
    workload.push(pdb(&meta, tdep));
    Ok(Children {
        config_maps,
        workload,
    })
}

/// The BFF config as mounted: the user's settings with the file locations
/// and hot reload the operator controls.
fn effective_config(input: &Input<'_>) -> Config {
    let mut config = input.config.clone();
    config.definitions.directories = vec![DEFINITIONS_DIR.to_string()];
    config.definitions.hot_reload = input.deployment.spec.definitions.hot_reload;
    config.specs.directory = SPECS_DIR.to_string();
    config.specs.sources = input
        .specs
        .keys()
        .map(|id| SpecSource {
            service_id: id.clone(),
            spec_file: format!("{id}.yaml"),
        })
        .collect();
    config.capability.static_policy_file = format!("{CONFIG_DIR}/policies.yaml");
    config
}

fn yaml<T: serde::Serialize>(what: &'static str, value: &T) -> Result<String, BuildError> {
    serde_saphyr::to_string(value).map_err(|e| BuildError::Yaml(what, e.to_string()))
}

/// What a pod depends on: config, policies, specs, referenced secrets and,
/// unless the BFF hot-reloads them (and no canary measures them first),
/// the definitions.
fn rollout_checksum(
    input: &Input<'_>,
    config: &BTreeMap<String, Arc<str>>,
    specs: &BTreeMap<String, Arc<str>>,
    definitions: &BTreeMap<String, Arc<str>>,
) -> Checksum {
    let mut groups = vec![("config", config), ("specs", specs)];
    // With a canary, definition changes go through it like any change.
    if !input.deployment.spec.definitions.hot_reload || crate::rollout::is_canary(input.deployment)
    {
        groups.push(("definitions", definitions));
    }
    let mut parts: Vec<Vec<u8>> = Vec::new();
    let mut texts: Vec<&[u8]> = Vec::new();
    for (kind, data) in &groups {
        for (key, value) in data.iter() {
            parts.push(format!("{kind}/{key}\n{}\n", value.len()).into_bytes());
            texts.push(value.as_bytes());
        }
    }
    let secrets: Vec<Vec<u8>> = input
        .secret_versions
        .iter()
        .map(|v| format!("secret/{v}\n").into_bytes())
        .collect();
    let files = parts
        .iter()
        .zip(texts)
        .flat_map(|(head, text)| [head.as_slice(), text, b"\n".as_slice()]);
    Checksum::of_parts(files.chain(secrets.iter().map(Vec::as_slice)))
}

/// Splits files into groups that each fit in one ConfigMap, in key order.
fn shard(data: BTreeMap<String, Arc<str>>) -> Result<Vec<BTreeMap<String, Arc<str>>>, BuildError> {
    let mut shards = vec![BTreeMap::new()];
    let mut size = 0;
    for (key, value) in data {
        let len = key.len() + value.len();
        if len > MAX_CONFIG_MAP_BYTES {
            return Err(BuildError::FileTooLarge(key, len));
        }
        if size + len > MAX_CONFIG_MAP_BYTES {
            shards.push(BTreeMap::new());
            size = 0;
        }
        size += len;
        if let Some(last) = shards.last_mut() {
            last.insert(key, value);
        }
    }
    Ok(shards)
}

/// `<name>-<what>`, then `<name>-<what>-1`, `-2`, … for further shards.
fn shard_names(name: &str, what: &str, count: usize) -> Vec<String> {
    (0..count)
        .map(|i| match i {
            0 => format!("{name}-{what}"),
            i => format!("{name}-{what}-{i}"),
        })
        .collect()
}

/// Labels and owner shared by every child.
struct Meta {
    namespace: Option<String>,
    selector: BTreeMap<String, String>,
    labels: BTreeMap<String, String>,
    owner: Option<Value>,
}

impl Meta {
    fn new(tdep: &ThesaDeployment) -> Self {
        let selector = selector_labels(&tdep.name_any());
        let mut labels = selector.clone();
        labels.insert("app.kubernetes.io/managed-by".into(), MANAGER.into());
        labels.insert("app.kubernetes.io/part-of".into(), "thesa".into());
        Self {
            namespace: tdep.namespace(),
            selector,
            labels,
            owner: tdep
                .controller_owner_ref(&())
                .and_then(|owner| serde_json::to_value(owner).ok()),
        }
    }

    fn metadata(&self, name: &str) -> Value {
        let mut meta = json!({ "name": name, "labels": self.labels });
        if let Some(namespace) = &self.namespace {
            meta["namespace"] = json!(namespace);
        }
        if let Some(owner) = &self.owner {
            meta["ownerReferences"] = json!([owner]);
        }
        meta
    }

    fn object(&self, api_version: &str, kind: &str, name: &str, body: Value) -> Value {
        let mut object = json!({
            "apiVersion": api_version,
            "kind": kind,
            "metadata": self.metadata(name),
        });
        if let (Some(object), Value::Object(body)) = (object.as_object_mut(), body) {
            object.extend(body);
        }
        object
    }

    fn config_map(
        &self,
        name: &str,
        data: BTreeMap<String, Arc<str>>,
        sources: Option<&str>,
    ) -> ConfigMapChild {
        let mut metadata = self.metadata(name);
        if let Some(sources) = sources {
            metadata["annotations"] = json!({ SOURCES_ANNOTATION: sources });
        }
        ConfigMapChild::new(metadata, data)
    }
}

/// The labels that select a deployment's pods.
pub fn selector_labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/name".to_string(),
            "thesa-bff".to_string(),
        ),
        ("app.kubernetes.io/instance".to_string(), name.to_string()),
    ])
}

/// The label selector of a deployment's children, for listing them.
pub fn children_selector(name: &str) -> String {
    format!("app.kubernetes.io/instance={name},app.kubernetes.io/managed-by={MANAGER}")
}

fn service(meta: &Meta, tdep: &ThesaDeployment) -> Value {
    let settings = &tdep.spec.service;
    meta.object(
        "v1",
        "Service",
        &tdep.name_any(),
        json!({
            "spec": {
                "type": settings.type_.map_or("ClusterIP", |t| t.as_str()),
                "selector": meta.selector,
                "ports": [{
                    "name": "http",
                    "port": settings.port.unwrap_or(80),
                    "targetPort": "http",
                    "protocol": "TCP",
                }],
            }
        }),
    )
}

fn deployment(
    meta: &Meta,
    input: &Input<'_>,
    config: &Config,
    checksum: &Checksum,
    spec_shards: &[String],
    definition_shards: &[String],
) -> Result<Value, BuildError> {
    let tdep = input.deployment;
    let spec = &tdep.spec;
    let name = tdep.name_any();
    let port = config.server.port;

    let mut pod_labels = spec.pod_labels.clone();
    pod_labels.extend(meta.selector.clone());
    let mut annotations = spec.pod_annotations.clone();
    annotations.extend([
        ("prometheus.io/scrape".to_string(), "true".to_string()),
        ("prometheus.io/port".to_string(), port.to_string()),
        (
            "prometheus.io/path".to_string(),
            config.observability.metrics.path.clone(),
        ),
        (
            CHECKSUM_ANNOTATION.to_string(),
            format!("sha256:{checksum}"),
        ),
    ]);

    let grace = grace_period(config.server.shutdown_timeout);
    let mut container = json!({
        "name": "thesa-bff",
        "image": spec.image,
        "args": ["serve", "--config", format!("{CONFIG_DIR}/config.yaml")],
        "ports": [{ "name": "http", "containerPort": port, "protocol": "TCP" }],
        "resources": spec.resources.as_ref().map_or_else(default_resources, |r| json!(r)),
        "livenessProbe": probe("/ui/health", 5, 10, 3, None),
        "readinessProbe": probe("/ui/ready", 10, 15, 5, None),
        "startupProbe": probe("/ui/ready", 0, 5, 1, Some(30)),
        "securityContext": {
            "readOnlyRootFilesystem": true,
            "allowPrivilegeEscalation": false,
            "runAsNonRoot": true,
            "capabilities": { "drop": ["ALL"] },
        },
        "volumeMounts": [
            { "name": "config", "mountPath": CONFIG_DIR, "readOnly": true },
            { "name": "definitions", "mountPath": DEFINITIONS_DIR, "readOnly": true },
            { "name": "specs", "mountPath": SPECS_DIR, "readOnly": true },
            { "name": "tmp", "mountPath": "/tmp" },
        ],
        "lifecycle": {
            "preStop": { "exec": { "command": ["sleep", PRE_STOP_SECONDS.to_string()] } }
        },
    });
    if let Some(policy) = spec.image_pull_policy {
        container["imagePullPolicy"] = json!(policy.as_str());
    }
    let env = environment(input, config)?;
    if !env.is_empty() {
        container["env"] = json!(env);
    }
    if !spec.secrets.env_from.is_empty() {
        let env_from: Vec<Value> = spec
            .secrets
            .env_from
            .iter()
            .map(|r| json!({ "secretRef": { "name": r.name } }))
            .collect();
        container["envFrom"] = json!(env_from);
    }

    let mut pod = json!({
        "serviceAccountName": name,
        "automountServiceAccountToken": false,
        "terminationGracePeriodSeconds": grace,
        "securityContext": {
            "runAsNonRoot": true,
            "runAsUser": 65534,
            "runAsGroup": 65534,
            "fsGroup": 65534,
            "seccompProfile": { "type": "RuntimeDefault" },
        },
        "containers": [container],
        "volumes": [
            { "name": "config", "configMap": { "name": format!("{name}-config") } },
            projected("definitions", definition_shards),
            projected("specs", spec_shards),
            { "name": "tmp", "emptyDir": { "sizeLimit": "10Mi" } },
        ],
    });
    let scheduling: [(&str, Value); 5] = [
        ("imagePullSecrets", json!(spec.image_pull_secrets)),
        ("nodeSelector", json!(spec.node_selector)),
        ("tolerations", json!(spec.tolerations)),
        ("affinity", json!(spec.affinity)),
        (
            "topologySpreadConstraints",
            json!(spec.topology_spread_constraints),
        ),
    ];
    for (key, value) in scheduling {
        if !is_empty(&value) {
            pod[key] = value;
        }
    }

    let mut deployment_spec = json!({
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": { "maxSurge": 1, "maxUnavailable": 0 },
        },
        "selector": stable_selector(tdep, &meta.selector),
        "template": {
            "metadata": { "labels": pod_labels, "annotations": annotations },
            "spec": pod,
        },
    });
    // With autoscaling the HPA owns the count: leaving `replicas` out of
    // the applied object keeps the operator from fighting it.
    if spec.autoscaling.is_none() {
        deployment_spec["replicas"] = json!(spec.replicas.unwrap_or(3));
    }
    Ok(meta.object(
        "apps/v1",
        "Deployment",
        &name,
        json!({ "spec": deployment_spec }),
    ))
}

/// The stable Deployment's selector. With strategy `canary` it leaves out
/// the canary's pods (which carry the same labels plus the track label),
/// so that the two Deployments never select each other's pods; otherwise
/// it is the plain label selector. A Deployment's selector cannot change:
/// switching strategy replaces the Deployment, keeping its pods (see
/// `controller/rollout.rs`).
pub fn stable_selector(tdep: &ThesaDeployment, labels: &BTreeMap<String, String>) -> Value {
    if crate::rollout::is_canary(tdep) {
        json!({
            "matchLabels": labels,
            "matchExpressions": [{
                "key": crate::rollout::TRACK_LABEL,
                "operator": "NotIn",
                "values": [crate::rollout::CANARY_TRACK],
            }],
        })
    } else {
        json!({ "matchLabels": labels })
    }
}

/// The canary of a ThesaDeployment `name` from the candidate's children:
/// its ConfigMaps renamed `<name>-canary-<what>` (config, specs and
/// definitions shards, same content), and the Deployment `<name>-canary`
/// mounting them, its pods labelled `thesa.io/track: canary`, with
/// `replicas` pods and no autoscaler.
pub fn canary_children(
    children: &Children,
    name: &str,
    replicas: i32,
) -> (Vec<ConfigMapChild>, Option<Value>) {
    use crate::rollout::{CANARY_TRACK, TRACK_LABEL};
    let prefix = format!("{name}-");
    let rename = |child: &str| match child.strip_prefix(&prefix) {
        Some(rest) => format!("{name}-canary-{rest}"),
        None => child.to_string(),
    };
    let config_maps = children
        .config_maps
        .iter()
        .map(|cm| {
            let mut metadata = cm.metadata.clone();
            metadata["name"] = json!(rename(&cm.name));
            metadata["labels"][TRACK_LABEL] = json!(CANARY_TRACK);
            ConfigMapChild::new(metadata, cm.data.clone())
        })
        .collect();
    let deployment = children
        .workload
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .map(|stable| {
            let mut canary = stable.clone();
            canary["metadata"]["name"] = json!(format!("{name}-canary"));
            canary["metadata"]["labels"][TRACK_LABEL] = json!(CANARY_TRACK);
            let labels = stable
                .pointer("/spec/selector/matchLabels")
                .cloned()
                .unwrap_or_default();
            canary["spec"]["selector"] = json!({ "matchLabels": labels });
            canary["spec"]["selector"]["matchLabels"][TRACK_LABEL] = json!(CANARY_TRACK);
            canary["spec"]["template"]["metadata"]["labels"][TRACK_LABEL] = json!(CANARY_TRACK);
            canary["spec"]["replicas"] = json!(replicas);
            if let Some(volumes) = canary
                .pointer_mut("/spec/template/spec/volumes")
                .and_then(Value::as_array_mut)
            {
                for volume in volumes {
                    if let Some(cm) = volume.pointer_mut("/configMap/name") {
                        *cm = json!(rename(cm.as_str().unwrap_or_default()));
                    }
                    if let Some(sources) = volume
                        .pointer_mut("/projected/sources")
                        .and_then(Value::as_array_mut)
                    {
                        for source in sources {
                            if let Some(cm) = source.pointer_mut("/configMap/name") {
                                *cm = json!(rename(cm.as_str().unwrap_or_default()));
                            }
                        }
                    }
                }
            }
            canary
        });
    (config_maps, deployment)
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty(),
        _ => false,
    }
}

/// Longer than the BFF's drain (preStop sleep plus `shutdown_timeout`) by
/// ten seconds, and at least the guide's 45 s.
fn grace_period(shutdown_timeout: Duration) -> i64 {
    let shutdown = i64::try_from(shutdown_timeout.get().as_secs()).unwrap_or(i64::MAX / 2);
    (PRE_STOP_SECONDS + shutdown + 10).max(45)
}

fn default_resources() -> Value {
    json!({
        "requests": { "cpu": "100m", "memory": "128Mi" },
        "limits": { "cpu": "500m", "memory": "256Mi" },
    })
}

fn probe(path: &str, delay: i32, period: i32, timeout: i32, failures: Option<i32>) -> Value {
    let mut probe = json!({
        "httpGet": { "path": path, "port": "http" },
        "periodSeconds": period,
        "timeoutSeconds": timeout,
    });
    if delay > 0 {
        probe["initialDelaySeconds"] = json!(delay);
    }
    if let Some(failures) = failures {
        probe["failureThreshold"] = json!(failures);
    }
    probe
}

fn projected(volume: &str, config_maps: &[String]) -> Value {
    let sources: Vec<Value> = config_maps
        .iter()
        .map(|name| json!({ "configMap": { "name": name } }))
        .collect();
    json!({ "name": volume, "projected": { "sources": sources } })
}

/// The container's secret environment: each reference becomes a variable
/// named as the BFF config says, read from the Secret.
fn environment(input: &Input<'_>, config: &Config) -> Result<Vec<Value>, BuildError> {
    let secrets = &input.deployment.spec.secrets;
    let mut env: Vec<Value> = Vec::new();
    let mut push = |name: &str, selector: &k8s_openapi::api::core::v1::SecretKeySelector| {
        env.push(json!({ "name": name, "valueFrom": { "secretKeyRef": selector } }));
    };
    if let Some(dsn) = &secrets.workflow_dsn {
        push(&config.workflow.store.dsn_env, dsn);
    }
    if let Some(addr) = &secrets.redis_addr {
        push(&config.idempotency.store.addr_env, addr);
    }
    for (service, selector) in &secrets.service_tokens {
        let var = config
            .services
            .get(service)
            .and_then(|s| s.auth.client_secret_env.as_deref())
            .ok_or_else(|| BuildError::ServiceTokenWithoutEnv(service.clone()))?;
        push(var, selector);
    }
    env.extend(input.deployment.spec.env.iter().map(|e| json!(e)));
    Ok(env)
}

fn hpa(meta: &Meta, autoscaling: &Autoscaling) -> Value {
    let name = meta.selector["app.kubernetes.io/instance"].clone();
    let mut metrics = vec![json!({
        "type": "Resource",
        "resource": {
            "name": "cpu",
            "target": {
                "type": "Utilization",
                "averageUtilization": autoscaling.target_cpu_utilization_percentage.unwrap_or(70),
            },
        },
    })];
    if let Some(custom) = &autoscaling.custom_metric {
        metrics.push(json!({
            "type": "Pods",
            "pods": {
                "metric": { "name": custom.name },
                "target": { "type": "AverageValue", "averageValue": custom.average_value },
            },
        }));
    }
    let rule = |rule: Option<&ScalingRule>, window: i32, pods: i32, period: i32| {
        let rule = rule.cloned().unwrap_or(ScalingRule {
            stabilization_window_seconds: None,
            pods: None,
            period_seconds: None,
        });
        json!({
            "stabilizationWindowSeconds": rule.stabilization_window_seconds.unwrap_or(window),
            "policies": [{
                "type": "Pods",
                "value": rule.pods.unwrap_or(pods),
                "periodSeconds": rule.period_seconds.unwrap_or(period),
            }],
        })
    };
    meta.object(
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        &name,
        json!({
            "spec": {
                "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": name },
                "minReplicas": autoscaling.bounds().0,
                "maxReplicas": autoscaling.bounds().1,
                "metrics": metrics,
                "behavior": {
                    "scaleUp": rule(autoscaling.scale_up.as_ref(), 60, 2, 60),
                    "scaleDown": rule(autoscaling.scale_down.as_ref(), 300, 1, 120),
                },
            }
        }),
    )
}

/// The budget, never one that blocks every eviction: `minAvailable` is
/// lowered below the smallest pod count, and `maxUnavailable` raised to
/// at least one.
fn pdb(meta: &Meta, tdep: &ThesaDeployment) -> Value {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    let spec = &tdep.spec;
    let fewest_pods = match &spec.autoscaling {
        Some(a) => a.min_replicas.unwrap_or(3),
        None => spec.replicas.unwrap_or(3),
    };
    let budget = spec.disruption_budget.clone().unwrap_or(DisruptionBudget {
        min_available: Some(IntOrString::Int(2)),
        max_unavailable: None,
    });
    let mut body = Map::new();
    match (budget.min_available, budget.max_unavailable) {
        (_, Some(max)) => {
            let max = match max {
                IntOrString::Int(n) => IntOrString::Int(n.max(1)),
                IntOrString::String(p) if percent(&p) == Some(0) => IntOrString::Int(1),
                other => other,
            };
            body.insert("maxUnavailable".into(), json!(max));
        }
        (Some(IntOrString::Int(n)), None) => {
            body.insert("minAvailable".into(), json!(n.min(fewest_pods - 1).max(0)));
        }
        (Some(IntOrString::String(p)), None) if percent(&p) == Some(100) => {
            body.insert("maxUnavailable".into(), json!(1));
        }
        (Some(min), None) => {
            body.insert("minAvailable".into(), json!(min));
        }
        (None, None) => {
            body.insert("maxUnavailable".into(), json!(1));
        }
    }
    body.insert("selector".into(), json!({ "matchLabels": meta.selector }));
    meta.object(
        "policy/v1",
        "PodDisruptionBudget",
        &tdep.name_any(),
        json!({ "spec": body }),
    )
}

fn percent(text: &str) -> Option<u32> {
    text.strip_suffix('%')?.trim().parse().ok()
}
