//! `thesa-operator render`: the controller's work offline. Reads
//! ThesaDeployment, ThesaDefinition and ConfigMap manifests from files,
//! runs the same validation gate and builders, and prints every object the
//! controller would apply.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use serde_json::Value;
use thesa_core::files::{self, SourceError};
use thesa_core::node::{self, Node};
use thesa_core::path::Path;

use crate::crd::ThesaDeployment;
use crate::manifest;
use crate::plan::{self, DefinitionInput, Plan, Snapshot};
use crate::revision::Revision;
use crate::selector;

/// What `render` read.
#[derive(Debug, Default)]
pub struct Manifests {
    /// ThesaDeployments, with the file each came from.
    pub deployments: Vec<(String, ThesaDeployment)>,
    /// ThesaDefinitions.
    pub definitions: Vec<DefinitionManifest>,
    /// ConfigMaps, by `namespace/name`.
    pub config_maps: BTreeMap<String, ConfigMap>,
    /// Documents of other kinds, left alone.
    pub skipped: usize,
}

/// A ThesaDefinition read from a file.
#[derive(Debug)]
pub struct DefinitionManifest {
    /// Its file.
    pub file: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `metadata.generation`, if written.
    pub generation: Option<i64>,
    /// The `spec`, with positions.
    pub spec: Node,
}

/// Why manifests could not be read (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// A file or directory could not be read.
    #[error(transparent)]
    Files(#[from] SourceError),
    /// A file is not YAML.
    #[error("{file}:{line}:{column}: {message}")]
    Parse {
        /// The file.
        file: String,
        /// Line of the error.
        line: u32,
        /// Column of the error.
        column: u32,
        /// What is wrong.
        message: String,
    },
    /// A manifest of a known kind does not have that kind's shape.
    #[error("{file}:{line}: {kind} {name}: {message}")]
    Shape {
        /// The file.
        file: String,
        /// Line where the document starts.
        line: u32,
        /// The kind.
        kind: &'static str,
        /// `metadata.name`.
        name: String,
        /// What is wrong.
        message: String,
    },
}

/// Reads every manifest under `paths`; objects without a namespace get
/// `namespace`.
///
/// # Errors
/// A [`ReadError`] for the first file that cannot be read or parsed.
pub fn read(paths: &[PathBuf], namespace: &str) -> Result<Manifests, ReadError> {
    let mut manifests = Manifests::default();
    for (file, text) in files::document_texts("manifest path", paths)? {
        let documents = node::parse_documents(&text).map_err(|e| ReadError::Parse {
            file: file.clone(),
            line: e.pos.line,
            column: e.pos.column,
            message: e.message,
        })?;
        for document in documents {
            add(&mut manifests, &file, document, namespace)?;
        }
    }
    Ok(manifests)
}

fn add(
    manifests: &mut Manifests,
    file: &str,
    document: Node,
    namespace: &str,
) -> Result<(), ReadError> {
    let mut value = document.to_json();
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let api_version = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let meta = value.get("metadata").cloned().unwrap_or(Value::Null);
    let name = meta
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if meta.get("namespace").is_none() {
        if let Some(m) = value.get_mut("metadata").and_then(Value::as_object_mut) {
            m.insert("namespace".into(), namespace.into());
        }
    }
    let shape = |kind: &'static str, message: String| ReadError::Shape {
        file: file.to_string(),
        line: document.pos.line,
        kind,
        name: name.clone(),
        message,
    };
    match (api_version.as_str(), kind.as_str()) {
        ("thesa.io/v1alpha1", "ThesaDeployment") => {
            let tdep: ThesaDeployment = serde_json::from_value(value)
                .map_err(|e| shape("ThesaDeployment", e.to_string()))?;
            manifests.deployments.push((file.to_string(), tdep));
        }
        ("thesa.io/v1alpha1", "ThesaDefinition") => {
            if name.is_empty() {
                return Err(shape("ThesaDefinition", "metadata.name is missing".into()));
            }
            let spec = document
                .get(&Path::root().key("spec"))
                .cloned()
                .ok_or_else(|| shape("ThesaDefinition", "spec is missing".into()))?;
            let labels = serde_json::from_value(meta.get("labels").cloned().unwrap_or_default())
                .unwrap_or_default();
            manifests.definitions.push(DefinitionManifest {
                file: file.to_string(),
                namespace: meta
                    .get("namespace")
                    .and_then(Value::as_str)
                    .unwrap_or(namespace)
                    .to_string(),
                name,
                labels,
                generation: meta.get("generation").and_then(Value::as_i64),
                spec,
            });
        }
        ("v1", "ConfigMap") => {
            let config_map: ConfigMap =
                serde_json::from_value(value).map_err(|e| shape("ConfigMap", e.to_string()))?;
            manifests
                .config_maps
                .insert(plan::full_name(&config_map), config_map);
        }
        _ => manifests.skipped += 1,
    }
    Ok(())
}

/// The result of rendering: manifests for stdout, report for stderr.
#[derive(Debug, Default)]
pub struct Rendered {
    /// Multi-document YAML of every object to apply.
    pub manifests: String,
    /// Findings and a summary per ThesaDeployment.
    pub report: String,
    /// Whether a selected definition was rejected or a deployment is
    /// blocked.
    pub failed: bool,
}

/// Renders every ThesaDeployment in `manifests`, in `namespace/name`
/// order. Specs not found in the manifests are read from `specs_dir`
/// (`<serviceId>.yaml`, or the ConfigMap key's file name); a deployment
/// that lists no specs gets every file of `specs_dir`.
///
/// # Errors
/// When a spec file cannot be read.
pub fn render(
    manifests: &Manifests,
    specs_dir: Option<&std::path::Path>,
) -> Result<Rendered, SourceError> {
    render_with(manifests, specs_dir, None)
}

/// [`render`]; with `canary_step` (counted from 1), a ThesaDeployment with
/// strategy `canary` is rendered as that step of a canary of its input
/// applies it: the canary's ConfigMaps and Deployment, the stable
/// autoscaler's lowered bounds (or, in a comment, the stable Deployment's
/// lowered replica count; its pod template stays the served one).
///
/// # Errors
/// When a spec file cannot be read.
pub fn render_with(
    manifests: &Manifests,
    specs_dir: Option<&std::path::Path>,
    canary_step: Option<usize>,
) -> Result<Rendered, SourceError> {
    let mut out = Rendered::default();
    let mut deployments: Vec<&(String, ThesaDeployment)> = manifests.deployments.iter().collect();
    deployments.sort_by_key(|(_, d)| plan::full_name(d));
    if deployments.is_empty() {
        out.report
            .push_str("no ThesaDeployment in the manifests: nothing to render\n");
        out.failed = true;
    }
    for (_, tdep) in deployments {
        let name = plan::full_name(tdep);
        let specs = specs_for(tdep, manifests, specs_dir)?;
        let definitions = selected(tdep, manifests);
        let snapshot = Snapshot {
            deployment: tdep,
            definitions,
            specs,
            previous: Vec::new(),
            previous_versions: String::new(),
            secret_versions: Vec::new(),
            handlers: BTreeSet::new(),
            rollout_failed: Default::default(),
        };
        match plan::plan(snapshot) {
            Plan::Blocked(problems) => {
                out.failed = true;
                let _ = writeln!(out.report, "ThesaDeployment {name}: not rendered");
                for problem in problems {
                    let _ = writeln!(out.report, "  error: {problem}");
                }
            }
            Plan::Ready { outcome, children } => {
                let accepted = outcome.verdicts.iter().filter(|v| v.accepted).count();
                let rejected = outcome.verdicts.len() - accepted;
                out.failed |= rejected > 0;
                let _ = writeln!(
                    out.report,
                    "ThesaDeployment {name}: {accepted} definitions accepted, {rejected} rejected; set checksum sha256:{}",
                    outcome.set_checksum
                );
                for verdict in &outcome.verdicts {
                    if !verdict.accepted {
                        let _ = writeln!(
                            out.report,
                            "  ThesaDefinition {} rejected: left out",
                            verdict.name
                        );
                    }
                    for finding in &verdict.findings {
                        let _ = writeln!(out.report, "    {finding}");
                    }
                }
                let objects = match canary_step {
                    Some(step) if crate::rollout::is_canary(tdep) => {
                        canary_objects(tdep, &children, step, &mut out)
                    }
                    _ => children.objects(),
                };
                for object in objects {
                    match manifest::to_yaml(&object) {
                        Ok(text) => out.manifests.push_str(&text),
                        Err(err) => {
                            let _ = writeln!(out.report, "  error: writing YAML: {err}");
                            out.failed = true;
                        }
                    }
                }
            }
        }
    }
    Ok(out)
}

/// What step `step` of a canary applies, with a line about it in the
/// report and the manifests.
fn canary_objects(
    tdep: &ThesaDeployment,
    children: &crate::desired::Children,
    step: usize,
    out: &mut Rendered,
) -> Vec<Value> {
    let settings = crate::rollout::Settings::of(&tdep.spec.rollout.clone().unwrap_or_default());
    let index = step.clamp(1, settings.steps.len().max(1)) - 1;
    let weight = settings.steps.get(index).map_or(100, |s| s.0);
    let hpa = tdep
        .spec
        .autoscaling
        .as_ref()
        .map(crate::crd::Autoscaling::bounds);
    let total = match hpa {
        Some((min, _)) => min,
        None => tdep.spec.replicas.unwrap_or(3),
    };
    let split = crate::rollout::split(total, weight, hpa);
    let name = tdep.name_any();
    let line = format!(
        "canary step {} of {} at {weight}%: {} canary pods ({name}-canary), {} stable pods ({name}, pod template unchanged){}",
        index + 1,
        settings.steps.len(),
        split.canary,
        split.stable,
        split
            .hpa
            .map(|(min, max)| format!(", stable autoscaler bounds {min}..{max}"))
            .unwrap_or_default()
    );
    let _ = writeln!(out.report, "  {line}");
    let _ = writeln!(out.manifests, "# {line}");
    let (config_maps, deployment) = crate::desired::canary_children(children, &name, split.canary);
    let mut objects: Vec<Value> = config_maps.iter().map(|c| c.to_value()).collect();
    objects.extend(deployment);
    if let (Some((min, max)), Some(hpa)) = (
        split.hpa,
        children
            .workload
            .iter()
            .find(|o| o["kind"] == "HorizontalPodAutoscaler"),
    ) {
        let mut hpa = hpa.clone();
        hpa["spec"]["minReplicas"] = serde_json::json!(min);
        hpa["spec"]["maxReplicas"] = serde_json::json!(max);
        objects.push(hpa);
    }
    objects
}

fn specs_for(
    tdep: &ThesaDeployment,
    manifests: &Manifests,
    specs_dir: Option<&std::path::Path>,
) -> Result<BTreeMap<String, String>, SourceError> {
    let mut specs = BTreeMap::new();
    let namespace = tdep.namespace().unwrap_or_default();
    for source in &tdep.spec.specs {
        if let Some(text) = &source.inline {
            specs.insert(source.service_id.clone(), text.clone());
            continue;
        }
        let Some(reference) = &source.config_map_key_ref else {
            continue;
        };
        let from_manifest = manifests
            .config_maps
            .get(&format!("{namespace}/{}", reference.name))
            .and_then(|cm| cm.data.as_ref()?.get(&reference.key).cloned());
        let text = match (from_manifest, specs_dir) {
            (Some(text), _) => Some(text),
            (None, Some(dir)) => {
                let path = dir.join(&reference.key);
                path.is_file().then(|| files::read(&path)).transpose()?
            }
            (None, None) => None,
        };
        if let Some(text) = text {
            specs.insert(source.service_id.clone(), text);
        }
    }
    if let (true, Some(dir)) = (tdep.spec.specs.is_empty(), specs_dir) {
        for path in files::list_dir(dir)? {
            if path.is_file() && files::is_document(&path) {
                let stem = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or_default();
                specs.insert(stem.to_string(), files::read(&path)?);
            }
        }
    }
    Ok(specs)
}

/// The definitions of the deployment's namespace its selector matches.
/// (`namespaceSelector` needs the cluster's namespace labels: offline,
/// only the deployment's own namespace is searched.)
fn selected(tdep: &ThesaDeployment, manifests: &Manifests) -> Vec<DefinitionInput> {
    let namespace = tdep.namespace().unwrap_or_default();
    let selector = tdep.spec.definitions.selector.as_ref();
    let mut definitions: Vec<&DefinitionManifest> = manifests
        .definitions
        .iter()
        .filter(|d| d.namespace == namespace && selector::matches(selector, &d.labels))
        .collect();
    definitions.sort_by(|a, b| a.name.cmp(&b.name));
    definitions
        .into_iter()
        .map(|d| {
            let name = format!("{}/{}", d.namespace, d.name);
            let source = format!("{}[{name}]", d.file);
            DefinitionInput {
                name,
                generation: d.generation,
                revision: Arc::new(Revision::from_node(source, d.spec.clone())),
            }
        })
        .collect()
}
