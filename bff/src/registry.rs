//! The definition registry: the validated set of definitions the BFF serves
//! (start-up step 4), with lookups by page and form ID. A registry is never
//! modified; hot reload builds a new one and swaps it in whole.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use thesa_core::checksum::{self, Checksum, Manifest};
use thesa_core::files::{self, SourceError};
use thesa_core::finding::{self, Code, Finding, Severity};
use thesa_core::model::{Command, Definition, Form, Lookup, Page, Workflow};
use thesa_core::openapi::OperationIndex;
use thesa_core::validate::{self, LoadedDefinition};

/// A definition being served.
#[derive(Debug)]
pub struct Served {
    /// The file it came from.
    pub source: String,
    /// The definition.
    pub definition: Definition,
    /// SHA-256 of its canonical form.
    pub checksum: Checksum,
}

/// The served definitions, by domain.
#[derive(Debug)]
pub struct Registry {
    definitions: Vec<Served>,
    pages: HashMap<String, (usize, usize)>,
    forms: HashMap<String, (usize, usize)>,
    commands: HashMap<String, (usize, usize)>,
    lookups: HashMap<String, (usize, usize)>,
    /// Command ID → the form that submits it (the first, by domain).
    submitted_by: HashMap<String, (usize, usize)>,
    checksum: Checksum,
}

/// Why a definition set could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A directory or file could not be read.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// At least one definition has errors; the findings say which.
    #[error("{errors} error(s) in the definitions, first: {first}")]
    Invalid {
        /// Number of errors.
        errors: usize,
        /// The first error, with file, line and path.
        first: String,
        /// Every finding, errors and warnings.
        findings: Vec<Finding>,
    },
}

impl Registry {
    /// Reads every definition under `directories`, validates the whole set
    /// against `index` (handler names against the built-in ones) and, when
    /// `strict_checksums`, compares each definition's checksum with the
    /// checksum manifest in the directories; builds the registry when
    /// nothing has errors. Warnings come back with the registry.
    pub fn load(
        directories: &[PathBuf],
        index: &OperationIndex,
        strict_checksums: bool,
    ) -> Result<(Self, Vec<Finding>), LoadError> {
        let texts = files::document_texts("definitions directory", directories)?;
        let mut findings = Vec::new();
        let loaded: Vec<LoadedDefinition> = texts
            .iter()
            .map(|(source, text)| LoadedDefinition::from_text(source.as_str(), text, &mut findings))
            .collect();
        let handlers = validate::known_handlers(None);
        findings.extend(validate::validate(&loaded, index, &handlers));
        // Computed once: for the manifest check and for the registry.
        let checksums: Vec<Option<Checksum>> = loaded
            .iter()
            .map(|l| l.definition.as_ref().map(checksum::definition_checksum))
            .collect();
        if strict_checksums {
            check_manifest(directories, &loaded, &checksums, &mut findings);
        }
        findings.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        let (errors, _) = finding::count(&findings);
        if errors > 0 {
            let first = findings
                .iter()
                .find(|f| f.severity == Severity::Error)
                .map(ToString::to_string)
                .unwrap_or_default();
            return Err(LoadError::Invalid {
                errors,
                first,
                findings,
            });
        }
        let served = loaded
            .into_iter()
            .zip(checksums)
            .filter_map(|(l, checksum)| {
                Some(Served {
                    checksum: checksum?,
                    definition: l.definition?,
                    source: l.source,
                })
            })
            .collect();
        Ok((Self::new(served), findings))
    }

    /// A registry of already validated definitions.
    pub fn new(mut definitions: Vec<Served>) -> Self {
        definitions.sort_by(|a, b| a.definition.domain.cmp(&b.definition.domain));
        let mut pages = HashMap::new();
        let mut forms = HashMap::new();
        let mut commands = HashMap::new();
        let mut lookups = HashMap::new();
        let mut submitted_by = HashMap::new();
        for (d, served) in definitions.iter().enumerate() {
            for (p, page) in served.definition.pages.iter().enumerate() {
                pages.insert(page.id.clone(), (d, p));
            }
            for (f, form) in served.definition.forms.iter().enumerate() {
                forms.insert(form.id.clone(), (d, f));
                submitted_by
                    .entry(form.submit_command.clone())
                    .or_insert((d, f));
            }
            for (c, command) in served.definition.commands.iter().enumerate() {
                commands.insert(command.id.clone(), (d, c));
            }
            for (l, lookup) in served.definition.lookups.iter().enumerate() {
                lookups.insert(lookup.id.clone(), (d, l));
            }
        }
        let checksum = checksum::set_checksum(
            definitions
                .iter()
                .map(|s| (s.definition.domain.as_str(), s.checksum)),
        );
        Self {
            definitions,
            pages,
            forms,
            commands,
            lookups,
            submitted_by,
            checksum,
        }
    }

    /// The served definitions, sorted by domain.
    pub fn definitions(&self) -> &[Served] {
        &self.definitions
    }

    /// The page with this ID and the definition that declares it.
    pub fn page(&self, id: &str) -> Option<(&Served, &Page)> {
        let &(d, p) = self.pages.get(id)?;
        let served = &self.definitions[d];
        Some((served, &served.definition.pages[p]))
    }

    /// The form with this ID and the definition that declares it.
    pub fn form(&self, id: &str) -> Option<(&Served, &Form)> {
        let &(d, f) = self.forms.get(id)?;
        let served = &self.definitions[d];
        Some((served, &served.definition.forms[f]))
    }

    /// The workflow with this ID.
    pub fn workflow(&self, id: &str) -> Option<&Workflow> {
        self.workflows().find(|w| w.id == id)
    }

    /// Every workflow, in domain order.
    pub fn workflows(&self) -> impl Iterator<Item = &Workflow> {
        self.definitions
            .iter()
            .flat_map(|served| &served.definition.workflows)
    }

    /// The command with this ID.
    pub fn command(&self, id: &str) -> Option<&Command> {
        let &(d, c) = self.commands.get(id)?;
        Some(&self.definitions[d].definition.commands[c])
    }

    /// The lookup with this ID.
    pub fn lookup(&self, id: &str) -> Option<&Lookup> {
        let &(d, l) = self.lookups.get(id)?;
        Some(&self.definitions[d].definition.lookups[l])
    }

    /// The form whose submit command this is, if any.
    pub fn form_submitting(&self, command_id: &str) -> Option<&Form> {
        let &(d, f) = self.submitted_by.get(command_id)?;
        Some(&self.definitions[d].definition.forms[f])
    }

    /// The checksum of the whole set (independent of file order).
    pub fn checksum(&self) -> Checksum {
        self.checksum
    }
}

/// Compares each loaded definition's checksum with the manifest
/// (`thesa-checksums.sha256`) found in `directories` (the seed's integrity
/// check: a definition changed outside the pipeline that wrote the manifest
/// is refused).
fn check_manifest(
    directories: &[PathBuf],
    loaded: &[LoadedDefinition],
    checksums: &[Option<Checksum>],
    findings: &mut Vec<Finding>,
) {
    let mut problem = |source: String, code: Code, path: &str, message: String| {
        findings.push(Finding {
            code,
            severity: code.severity(),
            source,
            line: None,
            column: None,
            path: path.to_string(),
            message,
        });
    };
    // Each directory's manifest vouches for the definitions under it only.
    let mut manifests: Vec<(&PathBuf, Option<Manifest>)> = Vec::new();
    for directory in directories {
        let path = directory.join(checksum::MANIFEST_FILE);
        let manifest = match std::fs::read_to_string(&path) {
            Ok(text) => match Manifest::parse(&text) {
                Ok(manifest) => Some(manifest),
                Err(err) => {
                    problem(
                        path.display().to_string(),
                        Code::ChecksumManifestInvalid,
                        "",
                        err,
                    );
                    None
                }
            },
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                problem(
                    directory.display().to_string(),
                    Code::ChecksumManifestInvalid,
                    "",
                    format!(
                        "definitions.strict_checksums is on but {} is missing from this \
                         definitions directory (write it in CI with `thesa-bff validate \
                         --write-checksums`)",
                        checksum::MANIFEST_FILE
                    ),
                );
                None
            }
            Err(err) => {
                problem(
                    path.display().to_string(),
                    Code::ChecksumManifestInvalid,
                    "",
                    err.to_string(),
                );
                None
            }
        };
        manifests.push((directory, manifest));
    }
    for (l, actual) in loaded.iter().zip(checksums) {
        let (Some(definition), Some(actual)) = (&l.definition, actual) else {
            continue;
        };
        // The directory the file was found under (the longest match).
        let home = manifests
            .iter()
            .filter(|(dir, _)| Path::new(&l.source).starts_with(dir))
            .max_by_key(|(dir, _)| dir.as_os_str().len());
        let Some((_, Some(manifest))) = home else {
            continue; // reported above (or a file given directly)
        };
        let domain = &definition.domain;
        let message = match manifest.checksums.get(domain) {
            Some(expected) if expected == actual => continue,
            Some(expected) => format!(
                "checksum sha256:{actual} differs from the manifest's sha256:{expected} for \
                 domain {domain:?}: the definition was changed outside the CI pipeline"
            ),
            None => format!("domain {domain:?} is not in its directory's checksum manifest"),
        };
        problem(l.source.clone(), Code::ChecksumMismatch, "domain", message);
    }
}
