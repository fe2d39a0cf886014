//! The validation gate: decides which revision of each selected definition
//! a deployment serves.
//!
//! The current revisions of all selected definitions are validated
//! together against the deployment's specs. A definition with errors is
//! rejected: the revision of it that is being served (if any) stays, and
//! otherwise its domain is left out. The set actually served is validated
//! again, because leaving a revision out or keeping an older one can break
//! references from the others; whatever fails then is rejected or dropped
//! in turn, until the served set is valid. An invalid definition therefore
//! never reaches a pod, and a valid one is only held back when something
//! it depends on was refused.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use thesa_core::checksum::{self, Checksum, Manifest};
use thesa_core::finding::{Finding, Severity};
use thesa_core::openapi::OperationIndex;
use thesa_core::validate::{self, LoadedDefinition};

use crate::revision::Revision;

/// A selected definition, in its current revision.
#[derive(Debug)]
pub struct Candidate {
    /// `namespace/name` of the ThesaDefinition.
    pub name: String,
    /// Its `metadata.generation`.
    pub generation: Option<i64>,
    /// The revision: loaded, and its ConfigMap text.
    pub revision: Arc<Revision>,
    /// This generation was rolled back by a canary: refused like an
    /// invalid one, its previous revision kept.
    pub rollout_failed: bool,
}

/// A definition file in the definitions ConfigMap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedFile {
    /// The ConfigMap key, `<domain>.yaml`.
    pub key: String,
    /// The YAML text.
    pub text: Arc<str>,
    /// `namespace/name` of the ThesaDefinition it came from.
    pub owner: String,
}

/// The gate's conclusion about one selected definition.
#[derive(Debug)]
pub struct Verdict {
    /// `namespace/name`.
    pub name: String,
    /// The generation judged.
    pub generation: Option<i64>,
    /// Whether this generation passed and is served.
    pub accepted: bool,
    /// Errors and warnings, sorted.
    pub findings: Vec<Finding>,
    /// Checksum of the judged revision, when it loaded.
    pub checksum: Option<Checksum>,
    /// Whether an earlier revision keeps being served instead.
    pub kept_previous: bool,
    /// Refused because a canary of this generation was rolled back.
    pub rollout_failed: bool,
}

/// What the deployment serves and why.
#[derive(Debug)]
pub struct Outcome {
    /// One verdict per candidate, in candidate order.
    pub verdicts: Vec<Verdict>,
    /// The files of the definitions ConfigMap, sorted by key.
    pub served: Vec<ServedFile>,
    /// Checksum of the served set (domains and their checksums).
    pub set_checksum: Checksum,
    /// Each served domain's checksum, written beside the definitions for
    /// BFFs with `strict_checksums`.
    pub manifest: Manifest,
}

/// One member of the set being validated.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Member {
    Candidate(usize),
    Previous(usize),
}

/// Runs the gate. `previous` is what the definitions ConfigMap holds now.
pub fn decide(
    candidates: Vec<Candidate>,
    previous: &[ServedFile],
    index: &OperationIndex,
    handlers: &BTreeSet<String>,
) -> Outcome {
    let mut findings: Vec<Vec<Finding>> = candidates
        .iter()
        .map(|c| c.revision.load_findings.clone())
        .collect();
    let loaded: Vec<&LoadedDefinition> = candidates.iter().map(|c| &c.revision.loaded).collect();
    let mut accepted: Vec<bool> = findings
        .iter()
        .zip(&candidates)
        .map(|(f, c)| !has_errors(f) && !c.rollout_failed)
        .collect();

    // Round one: every current revision, together.
    let by_source: HashMap<&str, usize> = loaded
        .iter()
        .enumerate()
        .map(|(i, l)| (l.source.as_str(), i))
        .collect();
    for finding in validate::validate(&loaded, index, handlers) {
        if let Some(&i) = by_source.get(finding.source.as_str()) {
            accepted[i] &= finding.severity != Severity::Error;
            findings[i].push(finding);
        }
    }

    // Served revisions of rejected candidates, loaded when first needed:
    // with nothing rejected, none is.
    let mut kept: BTreeMap<usize, LoadedDefinition> = BTreeMap::new();
    let mut dropped: BTreeSet<usize> = BTreeSet::new();

    // Later rounds: the set that would be served, until it is valid.
    loop {
        let rejected: BTreeSet<&str> = candidates
            .iter()
            .zip(&accepted)
            .filter(|(_, ok)| !**ok)
            .map(|(c, _)| c.name.as_str())
            .collect();
        for (j, file) in previous.iter().enumerate() {
            if rejected.contains(file.owner.as_str()) && !kept.contains_key(&j) {
                let source = format!("{} (served revision)", file.owner);
                let revision = LoadedDefinition::from_text(source, &file.text, &mut Vec::new());
                kept.insert(j, revision);
            }
        }
        let mut set: Vec<(Member, &LoadedDefinition)> = (0..loaded.len())
            .filter(|&i| accepted[i])
            .map(|i| (Member::Candidate(i), loaded[i]))
            .collect();
        set.extend(
            kept.iter()
                .filter(|(j, _)| !dropped.contains(*j))
                .filter(|(j, _)| rejected.contains(previous[**j].owner.as_str()))
                .map(|(j, l)| (Member::Previous(*j), l)),
        );
        let definitions: Vec<&LoadedDefinition> = set.iter().map(|(_, l)| *l).collect();
        // With nothing rejected the set is the one round one passed.
        let errors: Vec<Finding> = if rejected.is_empty() {
            Vec::new()
        } else {
            validate::validate(&definitions, index, handlers)
                .into_iter()
                .filter(|f| f.severity == Severity::Error)
                .collect()
        };
        if errors.is_empty() {
            let served = served_files(&set, &candidates, previous);
            let set_checksum =
                checksum::set_checksum(served.iter().map(|(f, sum)| (f.key.as_str(), *sum)));
            let manifest = Manifest {
                checksums: served
                    .iter()
                    .map(|(f, sum)| (f.key.trim_end_matches(".yaml").to_string(), *sum))
                    .collect(),
            };
            let served: Vec<ServedFile> = served.into_iter().map(|(f, _)| f).collect();
            let verdicts = verdicts(candidates, findings, accepted, &served);
            return Outcome {
                verdicts,
                served,
                set_checksum,
                manifest,
            };
        }
        for finding in errors {
            match set
                .iter()
                .find(|(_, l)| l.source == finding.source)
                .map(|(m, _)| *m)
            {
                Some(Member::Candidate(i)) => {
                    accepted[i] = false;
                    findings[i].push(finding);
                }
                Some(Member::Previous(j)) => {
                    dropped.insert(j);
                }
                None => {}
            }
        }
    }
}

fn has_errors(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.severity == Severity::Error)
}

fn served_files(
    set: &[(Member, &LoadedDefinition)],
    candidates: &[Candidate],
    previous: &[ServedFile],
) -> Vec<(ServedFile, Checksum)> {
    let mut files: Vec<(ServedFile, Checksum)> = set
        .iter()
        .filter_map(|(member, loaded)| {
            let definition = loaded.definition.as_ref()?;
            let file = match *member {
                Member::Candidate(i) => {
                    let revision = &candidates[i].revision;
                    let file = ServedFile {
                        key: format!("{}.yaml", definition.domain),
                        text: revision.text.clone(),
                        owner: candidates[i].name.clone(),
                    };
                    return Some((file, revision.checksum?));
                }
                Member::Previous(j) => previous[j].clone(),
            };
            Some((file, checksum::definition_checksum(definition)))
        })
        .collect();
    files.sort_by(|a, b| a.0.key.cmp(&b.0.key));
    files
}

fn verdicts(
    candidates: Vec<Candidate>,
    findings: Vec<Vec<Finding>>,
    accepted: Vec<bool>,
    served: &[ServedFile],
) -> Vec<Verdict> {
    candidates
        .into_iter()
        .zip(findings.into_iter().zip(accepted))
        .map(|(candidate, (mut findings, accepted))| {
            findings.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
            findings.dedup();
            let kept_previous = !accepted && served.iter().any(|f| f.owner == candidate.name);
            Verdict {
                rollout_failed: candidate.rollout_failed,
                checksum: candidate.revision.checksum,
                name: candidate.name,
                generation: candidate.generation,
                accepted,
                findings,
                kept_previous,
            }
        })
        .collect()
}
