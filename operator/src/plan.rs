//! *Validate*: from what was read for one ThesaDeployment (by the
//! controller from the API, or by `render` from files) to the gate's
//! verdicts and the child objects. Pure: no I/O.

use std::collections::{BTreeMap, BTreeSet};

use kube::ResourceExt;
use serde_json::Value;
use thesa_core::config::{Config, Policies};
use thesa_core::finding::{Finding, Severity};
use thesa_core::node::Node;
use thesa_core::openapi::{OperationIndex, SpecInput};
use thesa_core::validate::LoadedDefinition;

use crate::crd::ThesaDeployment;
use crate::desired::{self, Children, Input};
use crate::gate::{self, Candidate, Outcome, ServedFile};

/// A selected ThesaDefinition as read.
#[derive(Debug)]
pub struct DefinitionInput {
    /// `namespace/name`.
    pub name: String,
    /// Where findings point: the CR's name, or `file[namespace/name]`.
    pub source: String,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// The `spec`.
    pub spec: Value,
    /// The `spec` as parsed from a file, for line and column in findings.
    pub node: Option<Node>,
}

/// Everything read for one ThesaDeployment.
#[derive(Debug)]
pub struct Snapshot<'a> {
    /// The ThesaDeployment.
    pub deployment: &'a ThesaDeployment,
    /// The ThesaDefinitions its selector matches.
    pub definitions: Vec<DefinitionInput>,
    /// Spec texts by service ID (read from ConfigMaps or inline).
    pub specs: BTreeMap<String, String>,
    /// What the definitions ConfigMap(s) hold now.
    pub previous: Vec<ServedFile>,
    /// `name=resourceVersion` of referenced Secrets.
    pub secret_versions: Vec<String>,
    /// Registered SDK handler names.
    pub handlers: BTreeSet<String>,
}

/// What to do for one ThesaDeployment.
#[derive(Debug)]
pub enum Plan {
    /// The ThesaDeployment itself is broken (config, policies, specs):
    /// nothing is validated or applied. Each line names the field.
    Blocked(Vec<String>),
    /// The verdicts and the objects to apply.
    Ready {
        /// The gate's verdicts and the served set.
        outcome: Outcome,
        /// The child objects.
        children: Children,
    },
}

/// Validates and builds.
pub fn plan(snapshot: Snapshot<'_>) -> Plan {
    let tdep = snapshot.deployment;
    let mut problems = Vec::new();
    let mut findings = Vec::new();
    let config = match &tdep.spec.config {
        Some(value) => Config::from_value("spec.config", value.clone(), &mut findings),
        None => Some(Config::default()),
    };
    let policies = match &tdep.spec.policies {
        Some(value) => Policies::from_value("spec.policies", value.clone(), &mut findings),
        None => Some(Policies::default()),
    };
    let inputs = snapshot.specs.iter().map(|(id, text)| SpecInput {
        service_id: id.clone(),
        source: format!("spec.specs[{id}]"),
        text: text.clone(),
    });
    let index = OperationIndex::build(inputs, &mut findings);
    for finding in findings.iter().filter(|f| f.severity == Severity::Error) {
        problems.push(describe(finding));
    }
    let (Some(config), Some(policies)) = (config, policies) else {
        return Plan::Blocked(problems);
    };
    if !problems.is_empty() {
        return Plan::Blocked(problems);
    }

    let candidates = snapshot
        .definitions
        .into_iter()
        .map(|d| {
            let mut load_findings = Vec::new();
            let loaded = match d.node {
                Some(node) => LoadedDefinition::from_node(d.source, node, &mut load_findings),
                None => LoadedDefinition::from_value(d.source, d.spec.clone(), &mut load_findings),
            };
            Candidate {
                name: d.name,
                generation: d.generation,
                document: d.spec,
                loaded,
                load_findings,
            }
        })
        .collect();
    let outcome = gate::decide(candidates, &snapshot.previous, &index, &snapshot.handlers);
    let input = Input {
        deployment: tdep,
        config,
        policies,
        specs: snapshot.specs,
        served: &outcome.served,
        manifest: &outcome.manifest,
        secret_versions: snapshot.secret_versions,
    };
    match desired::build(&input) {
        Ok(children) => Plan::Ready { outcome, children },
        Err(err) => Plan::Blocked(vec![err.to_string()]),
    }
}

/// A finding about the ThesaDeployment as one line naming its field.
fn describe(finding: &Finding) -> String {
    let mut place = match finding.path.as_str() {
        "" => finding.source.clone(),
        path if path.starts_with('[') => format!("{}{path}", finding.source),
        path => format!("{}.{path}", finding.source),
    };
    if let (Some(line), Some(column)) = (finding.line, finding.column) {
        place.push_str(&format!(" (line {line}, column {column})"));
    }
    format!("{place}: {} ({})", finding.message, finding.code)
}

/// `namespace/name` of an object.
pub fn full_name<K: ResourceExt>(object: &K) -> String {
    format!(
        "{}/{}",
        object.namespace().unwrap_or_default(),
        object.name_any()
    )
}
