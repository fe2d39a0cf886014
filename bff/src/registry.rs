//! The definition registry: the validated set of definitions the BFF serves
//! (start-up step 4), with lookups by page and form ID. A registry is never
//! modified; hot reload builds a new one and swaps it in whole.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use thesa_core::checksum::{self, Checksum, Manifest};
use thesa_core::config::DefinitionsConfig;
use thesa_core::files::{self, SourceError};
use thesa_core::finding::{self, Code, Finding, Severity};
use thesa_core::model::{
    Command, Definition, Form, Lookup, OperationBinding, OperationType, Options, Page, Section,
    Workflow,
};
use thesa_core::openapi::OperationIndex;
use thesa_core::validate::{self, Checks, LoadedDefinition};

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
    /// Inline lookups of fields and filters, by the ID they are served under.
    inline_lookups: HashMap<String, InlineLookup>,
    /// Command ID → the form that submits it (the first, by domain).
    submitted_by: HashMap<String, (usize, usize)>,
    checksum: Checksum,
}

/// A lookup given inline on a field or a filter (`lookup: {operation_id,
/// label_field, value_field}`), served like a named lookup under the ID
/// [`inline_lookup_id`] gives it.
#[derive(Debug)]
pub struct InlineLookup {
    /// The lookup as if it were named (`id` is the ID it is served under).
    pub lookup: Lookup,
    /// What a caller needs to get its options: the capabilities of its page
    /// or form and of its section.
    pub capabilities: Vec<String>,
}

/// What declares an inline lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner<'a> {
    /// A page (its table's filters, its sections' fields and tables).
    Page(&'a str),
    /// A form (its sections' fields).
    Form(&'a str),
}

/// The ID an inline lookup is served under (`GET /ui/lookups/{id}`):
/// `page:<page id>:<field>` or `form:<form id>:<field>`. Pages and forms
/// have separate ID spaces, hence the prefix; named lookup IDs have no `:`
/// in practice, and a named lookup wins over an inline one.
pub fn inline_lookup_id(owner: Owner<'_>, field: &str) -> String {
    match owner {
        Owner::Page(id) => format!("page:{id}:{field}"),
        Owner::Form(id) => format!("form:{id}:{field}"),
    }
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
        config: &DefinitionsConfig,
    ) -> Result<(Self, Vec<Finding>), LoadError> {
        let texts = files::document_texts("definitions directory", directories)?;
        let mut findings = Vec::new();
        let loaded: Vec<LoadedDefinition> = texts
            .iter()
            .map(|(source, text)| LoadedDefinition::from_text(source.as_str(), text, &mut findings))
            .collect();
        let handlers = validate::known_handlers(None);
        let checks = Checks { lint: config.lint };
        findings.extend(validate::validate_with(&loaded, index, &handlers, checks));
        // Computed once: for the manifest check and for the registry.
        let checksums: Vec<Option<Checksum>> = loaded
            .iter()
            .map(|l| l.definition.as_ref().map(checksum::definition_checksum))
            .collect();
        if config.strict_checksums {
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
        let mut inline_lookups = HashMap::new();
        for (d, served) in definitions.iter().enumerate() {
            collect_inline_lookups(&served.definition, &mut inline_lookups);
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
            inline_lookups,
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

    /// The lookup with this ID, named or inline, and the capabilities a
    /// caller needs for its options (none for a named lookup).
    pub fn lookup(&self, id: &str) -> Option<(&Lookup, &[String])> {
        if let Some(&(d, l)) = self.lookups.get(id) {
            return Some((&self.definitions[d].definition.lookups[l], &[]));
        }
        let inline = self.inline_lookups.get(id)?;
        Some((&inline.lookup, &inline.capabilities))
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

/// Adds the inline lookups of `definition`'s pages and forms (the first of
/// an ID wins; the validator reports two different ones for one field).
fn collect_inline_lookups(definition: &Definition, out: &mut HashMap<String, InlineLookup>) {
    for page in &definition.pages {
        let owner = Owner::Page(&page.id);
        for filter in page.table.iter().flat_map(|t| &t.filters) {
            for options in filter.options.iter().chain(&filter.lookup) {
                add_inline(out, owner, &[&page.capabilities], &filter.field, options);
            }
        }
        add_sections(out, owner, &page.capabilities, &page.sections);
    }
    for form in &definition.forms {
        add_sections(
            out,
            Owner::Form(&form.id),
            &form.capabilities,
            &form.sections,
        );
    }
}

fn add_sections(
    out: &mut HashMap<String, InlineLookup>,
    owner: Owner<'_>,
    owner_caps: &[String],
    sections: &[Section],
) {
    for section in sections {
        let caps = [owner_caps, &section.capabilities[..]];
        for field in &section.fields {
            if let Some(options) = &field.lookup {
                add_inline(out, owner, &caps, &field.field, options);
            }
        }
        for filter in section.table.iter().flat_map(|t| &t.filters) {
            for options in filter.options.iter().chain(&filter.lookup) {
                add_inline(out, owner, &caps, &filter.field, options);
            }
        }
    }
}

fn add_inline(
    out: &mut HashMap<String, InlineLookup>,
    owner: Owner<'_>,
    caps: &[&[String]],
    field: &str,
    options: &Options,
) {
    if options.operation_id.is_none() {
        return;
    }
    let id = inline_lookup_id(owner, field);
    out.entry(id.clone()).or_insert_with(|| InlineLookup {
        lookup: Lookup {
            id,
            operation: Some(OperationBinding {
                kind: OperationType::Openapi,
                operation_id: options.operation_id.clone(),
                service_id: options.service_id.clone(),
                handler: None,
            }),
            label_field: options.label_field.clone().unwrap_or_default(),
            value_field: options.value_field.clone().unwrap_or_default(),
            search_field: options.search_field.clone(),
            cache: None,
        },
        capabilities: caps.iter().flat_map(|c| c.iter().cloned()).collect(),
    });
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
