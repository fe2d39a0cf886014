//! *Validate*: from what was read for one ThesaDeployment (by the
//! controller from the API, or by `render` from files) to the gate's
//! verdicts and the child objects. Pure: no I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kube::ResourceExt;
use thesa_core::config::{Config, Policies};
use thesa_core::finding::{Finding, Severity};
use thesa_core::openapi::{OperationIndex, SpecInput};

use crate::crd::ThesaDeployment;
use crate::desired::{self, Children, Input};
use crate::gate::{self, Candidate, Outcome, ServedFile};
use crate::revision::Revision;

/// A selected ThesaDefinition as read.
#[derive(Debug)]
pub struct DefinitionInput {
    /// `namespace/name`.
    pub name: String,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// Its spec, prepared; findings point at the CR's name, or at
    /// `file[namespace/name]` with line and column.
    pub revision: Arc<Revision>,
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
    /// Their `name=resourceVersion` list (empty offline): what
    /// [`Snapshot::fingerprint`] takes for `previous`.
    pub previous_versions: String,
    /// `name=resourceVersion` of referenced Secrets.
    pub secret_versions: Vec<String>,
    /// Registered SDK handler names.
    pub handlers: BTreeSet<String>,
    /// Definition generations a canary rolled back (`namespace/name` to
    /// generation, from `status.rollout.failedDefinitions`): refused.
    pub rollout_failed: BTreeMap<String, i64>,
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

impl Snapshot<'_> {
    /// A hash of everything [`plan`] reads: equal fingerprints give equal
    /// plans, so an unchanged ThesaDeployment is not validated and built
    /// again. What the definitions ConfigMaps hold is represented by their
    /// resourceVersions, each definition by its name, generation and the
    /// digest of its text.
    pub fn fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        let tdep = self.deployment;
        tdep.metadata.uid.hash(&mut hasher);
        tdep.metadata.generation.hash(&mut hasher);
        // The spec (a generation without the status) and the annotations
        // that steer a rollout.
        serde_json::to_string(&tdep.spec)
            .unwrap_or_default()
            .hash(&mut hasher);
        tdep.metadata.annotations.hash(&mut hasher);
        for d in &self.definitions {
            (&d.name, d.generation, d.revision.digest).hash(&mut hasher);
        }
        self.specs.hash(&mut hasher);
        self.previous_versions.hash(&mut hasher);
        self.secret_versions.hash(&mut hasher);
        self.handlers.hash(&mut hasher);
        self.rollout_failed.hash(&mut hasher);
        hasher.finish()
    }
}

/// The last plan of each ThesaDeployment with the fingerprint of its
/// input: an unchanged input is not validated and built again.
#[derive(Debug, Default)]
pub struct Plans {
    by_deployment: std::sync::Mutex<std::collections::HashMap<String, (u64, Arc<Plan>)>>,
}

impl Plans {
    /// The plan of `snapshot`: the last one when its input is unchanged.
    pub fn plan(&self, snapshot: Snapshot<'_>) -> Arc<Plan> {
        let name = full_name(snapshot.deployment);
        let fingerprint = snapshot.fingerprint();
        if let Some((kept, plan)) = self.lock().get(&name)
            && *kept == fingerprint
        {
            return plan.clone();
        }
        let plan = Arc::new(plan(snapshot));
        self.lock().insert(name, (fingerprint, plan.clone()));
        plan
    }

    /// Forgets the plan of ThesaDeployment `namespace/name`.
    pub fn forget(&self, name: &str) {
        self.lock().remove(name);
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, (u64, Arc<Plan>)>> {
        self.by_deployment.lock().unwrap_or_else(|e| e.into_inner())
    }
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
        .map(|d| Candidate {
            rollout_failed: d.generation.is_some()
                && snapshot.rollout_failed.get(&d.name) == d.generation.as_ref(),
            name: d.name,
            generation: d.generation,
            revision: d.revision,
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
