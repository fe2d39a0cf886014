//! `thesa-bff diff --old <dir> --new <dir>`: what changes for the frontend
//! and the other domains between two definition sets, for the CI step
//! "check for breaking changes".
//!
//! Breaking: a page, form, command, workflow, search or lookup ID that
//! disappears (a rename is a removal plus an addition), a page whose route
//! changes, a required field added to a form (or a field made required),
//! changed capabilities of a page, form, command or workflow, a workflow
//! step removed, a domain removed. Anything added is reported but does not
//! break. Exit 0 without breaking changes, 1 with, 2 when a set cannot be
//! read.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;
use thesa_core::finding::{Finding, Severity};
use thesa_core::model::{Definition, Form};
use thesa_core::validate::LoadedDefinition;

use crate::cli::validate::Format;
use crate::sources;

/// Options of `thesa-bff diff`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    thesa-bff diff --old published/definitions --new definitions\n  \
    thesa-bff diff --old a.yaml --new b.yaml --format json")]
pub struct DiffArgs {
    /// The definitions as published (files or directories, searched
    /// recursively)
    #[arg(long, value_name = "PATH", required = true, num_args = 1..)]
    pub old: Vec<PathBuf>,
    /// The definitions as they would be published
    #[arg(long, value_name = "PATH", required = true, num_args = 1..)]
    pub new: Vec<PathBuf>,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// One difference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Stable code, e.g. `PAGE_REMOVED`.
    pub code: &'static str,
    /// Whether it breaks frontends or other domains.
    pub breaking: bool,
    /// Domain of the element (the old one for removals).
    pub domain: String,
    /// What changed, e.g. `pages[orders.list]`.
    pub element: String,
    /// In words.
    pub message: String,
}

/// The elements of a set by kind and ID, with their domain.
struct Set<'a> {
    definitions: BTreeMap<&'a str, &'a Definition>,
}

impl<'a> Set<'a> {
    fn new(definitions: &'a [Definition]) -> Self {
        Self {
            definitions: definitions.iter().map(|d| (d.domain.as_str(), d)).collect(),
        }
    }

    /// (id, domain, element) for one kind.
    fn ids<T: 'a>(
        &self,
        list: impl Fn(&'a Definition) -> &'a [T],
        id: impl Fn(&'a T) -> &'a str,
    ) -> BTreeMap<&'a str, (&'a str, &'a T)> {
        self.definitions
            .iter()
            .flat_map(|(domain, d)| list(d).iter().map(move |e| (*domain, e)))
            .map(|(domain, e)| (id(e), (domain, e)))
            .collect()
    }
}

/// Compares the sets.
pub fn compare(old: &[Definition], new: &[Definition]) -> Vec<Change> {
    let (old, new) = (Set::new(old), Set::new(new));
    let mut changes = Vec::new();
    let mut push = |code, breaking, domain: &str, element: String, message: String| {
        changes.push(Change {
            code,
            breaking,
            domain: domain.to_string(),
            element,
            message,
        });
    };

    for domain in old.definitions.keys() {
        if !new.definitions.contains_key(domain) {
            push(
                "DOMAIN_REMOVED",
                true,
                domain,
                format!("domain {domain}"),
                format!("domain {domain:?} was removed"),
            );
        }
    }
    for domain in new.definitions.keys() {
        if !old.definitions.contains_key(domain) {
            push(
                "DOMAIN_ADDED",
                false,
                domain,
                format!("domain {domain}"),
                format!("domain {domain:?} was added"),
            );
        }
    }

    // Presence of every kind, and capabilities where the kind has them.
    macro_rules! kind {
        ($field:ident, $name:literal, $noun:literal, $removed:literal, $added:literal, $caps:expr) => {{
            let before = old.ids(|d| &d.$field, |e| e.id.as_str());
            let after = new.ids(|d| &d.$field, |e| e.id.as_str());
            let added: Vec<&str> = after
                .keys()
                .filter(|id| !before.contains_key(*id))
                .copied()
                .collect();
            for (id, (domain, element)) in &before {
                let at = format!("{}[{id}]", $name);
                match after.get(id) {
                    None => {
                        let hint = if added.is_empty() {
                            String::new()
                        } else {
                            format!(" (renamed? added: {})", added.join(", "))
                        };
                        push(
                            $removed,
                            true,
                            domain,
                            at,
                            format!("{} {id:?} was removed{hint}", $noun),
                        );
                    }
                    Some((_, now)) => {
                        let caps: Option<fn(&_) -> &[String]> = $caps;
                        if let Some(caps) = caps {
                            let (was, is): (BTreeSet<&String>, BTreeSet<&String>) =
                                (caps(element).iter().collect(), caps(now).iter().collect());
                            if was != is {
                                push(
                                    "CAPABILITIES_CHANGED",
                                    true,
                                    domain,
                                    at,
                                    format!("capabilities changed from {was:?} to {is:?}"),
                                );
                            }
                        }
                    }
                }
            }
            for id in added {
                let (domain, _) = after[id];
                push(
                    $added,
                    false,
                    domain,
                    format!("{}[{id}]", $name),
                    format!("{} {id:?} was added", $noun),
                );
            }
            (before, after)
        }};
    }
    let (pages_before, pages_after) = kind!(
        pages,
        "pages",
        "page",
        "PAGE_REMOVED",
        "PAGE_ADDED",
        Some(|p: &thesa_core::model::Page| p.capabilities.as_slice())
    );
    let (forms_before, forms_after) = kind!(
        forms,
        "forms",
        "form",
        "FORM_REMOVED",
        "FORM_ADDED",
        Some(|f: &Form| f.capabilities.as_slice())
    );
    kind!(
        commands,
        "commands",
        "command",
        "COMMAND_REMOVED",
        "COMMAND_ADDED",
        Some(|c: &thesa_core::model::Command| c.capabilities.as_slice())
    );
    let (flows_before, flows_after) = kind!(
        workflows,
        "workflows",
        "workflow",
        "WORKFLOW_REMOVED",
        "WORKFLOW_ADDED",
        Some(|w: &thesa_core::model::Workflow| w.capabilities.as_slice())
    );
    kind!(
        searches,
        "searches",
        "search",
        "SEARCH_REMOVED",
        "SEARCH_ADDED",
        None
    );
    kind!(
        lookups,
        "lookups",
        "lookup",
        "LOOKUP_REMOVED",
        "LOOKUP_ADDED",
        None
    );

    for (id, (domain, page)) in &pages_before {
        if let Some((_, now)) = pages_after.get(id)
            && now.route != page.route
        {
            push(
                "ROUTE_CHANGED",
                true,
                domain,
                format!("pages[{id}].route"),
                format!("route changed from {:?} to {:?}", page.route, now.route),
            );
        }
    }
    for (id, (domain, form)) in &forms_before {
        let Some((_, now)) = forms_after.get(id) else {
            continue;
        };
        let required = |f: &Form| -> BTreeSet<String> {
            f.sections
                .iter()
                .flat_map(|s| &s.fields)
                .filter(|f| f.required)
                .map(|f| f.field.clone())
                .collect()
        };
        for field in required(now).difference(&required(form)) {
            push(
                "REQUIRED_FIELD_ADDED",
                true,
                domain,
                format!("forms[{id}].{field}"),
                format!(
                    "field {field:?} is now required: clients that do not send it fail validation"
                ),
            );
        }
    }
    for (id, (domain, flow)) in &flows_before {
        let Some((_, now)) = flows_after.get(id) else {
            continue;
        };
        for step in &flow.steps {
            if !now.steps.iter().any(|s| s.id == step.id) {
                push(
                    "WORKFLOW_STEP_REMOVED",
                    true,
                    domain,
                    format!("workflows[{id}].steps[{}]", step.id),
                    format!(
                        "step {:?} was removed: instances waiting there cannot go on",
                        step.id
                    ),
                );
            }
        }
    }
    changes.sort_by(|a, b| {
        (!a.breaking, &a.domain, &a.element).cmp(&(!b.breaking, &b.domain, &b.element))
    });
    changes
}

/// Reads one set; findings of files that do not load.
fn read(paths: &[PathBuf]) -> Result<Vec<Definition>, String> {
    let texts = sources::document_texts("definitions path", paths).map_err(|e| e.to_string())?;
    let mut findings: Vec<Finding> = Vec::new();
    let definitions: Vec<Definition> = texts
        .iter()
        .filter_map(|(source, text)| {
            LoadedDefinition::from_text(source, text, &mut findings).definition
        })
        .collect();
    let errors: Vec<String> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(ToString::to_string)
        .collect();
    if errors.is_empty() {
        Ok(definitions)
    } else {
        Err(errors.join("\n"))
    }
}

/// Runs the command: 0 without breaking changes, 1 with, 2 when a set
/// cannot be read.
pub fn run(args: DiffArgs) -> ExitCode {
    let (old, new) = match (read(&args.old), read(&args.new)) {
        (Ok(old), Ok(new)) => (old, new),
        (Err(err), _) | (_, Err(err)) => {
            eprintln!("{err}\nerror: the definitions must load before they can be compared");
            return ExitCode::from(2);
        }
    };
    let changes = compare(&old, &new);
    let breaking = changes.iter().filter(|c| c.breaking).count();
    let mut out = io::stdout().lock();
    let written = match args.format {
        Format::Json => serde_json::to_writer_pretty(
            &mut out,
            &serde_json::json!({
                "changes": changes,
                "breaking": breaking,
            }),
        )
        .map_err(io::Error::other)
        .and_then(|()| writeln!(out)),
        Format::Text => changes
            .iter()
            .try_for_each(|c| {
                let kind = if c.breaking { "breaking" } else { "change" };
                writeln!(out, "{kind}[{}] {}: {}", c.code, c.element, c.message)
            })
            .and_then(|()| writeln!(out, "{} change(s), {breaking} breaking", changes.len())),
    };
    if written.is_err() {
        return ExitCode::from(2);
    }
    if breaking > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
