//! `thesa-bff validate`: checks definitions against OpenAPI specs, as domain
//! teams do in CI and as the BFF does at start-up.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;
use thesa_core::checksum::{self, Checksum, Manifest};
use thesa_core::finding::{self, Finding};
use thesa_core::openapi::OperationIndex;
use thesa_core::validate::{self, LoadedDefinition};

use crate::sources::{self, SourceError};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One line per finding (`file:line:col: error[CODE] path: message`),
    /// then a summary.
    Text,
    /// One JSON document with findings, definitions and summary.
    Json,
}

/// Arguments of `validate`.
#[derive(Debug, Clone, clap::Args)]
pub struct ValidateArgs {
    /// Definition files or directories (searched recursively for *.yaml,
    /// *.yml, *.json) [default: definitions.directories of --config, else
    /// ./definitions]
    #[arg(long = "definitions", value_name = "DIR_OR_FILE", num_args = 1..)]
    pub definitions: Vec<PathBuf>,

    /// Directory of OpenAPI 3.0/3.1 specs; a spec's service ID comes from
    /// specs.sources of --config, else from its file name
    /// (orders-svc.yaml → orders-svc) [default: specs.directory of
    /// --config, else ./specs]
    #[arg(long, value_name = "DIR")]
    pub specs: Option<PathBuf>,

    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Treat NAME as a registered SDK handler too, for BFF builds with
    /// handlers of their own (the built-in `notify.webhook` is always
    /// known). Repeatable.
    #[arg(long = "handler", value_name = "NAME")]
    pub handlers: Vec<String>,

    /// When there are no errors, write the checksum manifest of the
    /// definitions to FILE (name it thesa-checksums.sha256 and ship it in
    /// the definitions directory: a BFF with definitions.strict_checksums
    /// serves only definitions it lists). With errors nothing is written
    #[arg(long, value_name = "FILE")]
    pub write_checksums: Option<PathBuf>,

    /// Also check the conventions, as warnings: capability namespaces that
    /// differ from the domain (CAPABILITY_NAMESPACE_MISMATCH), versions that
    /// are not semantic versions, unquoted literals in input mappings,
    /// default sorts on no sortable column [default: definitions.lint of
    /// --config]
    #[arg(long)]
    pub lint: bool,
}

impl Default for ValidateArgs {
    fn default() -> Self {
        Self {
            definitions: Vec::new(),
            specs: None,
            format: Format::Text,
            handlers: Vec::new(),
            write_checksums: None,
            lint: false,
        }
    }
}

/// What a run found.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Every finding, sorted by source and position.
    pub findings: Vec<Finding>,
    /// The definitions that loaded.
    pub definitions: Vec<DefinitionSummary>,
    /// Counts and the set checksum.
    pub summary: Summary,
}

/// One loaded definition.
#[derive(Debug, Serialize)]
pub struct DefinitionSummary {
    /// Its file.
    pub source: String,
    /// Its domain.
    pub domain: String,
    /// Its version.
    pub version: String,
    /// SHA-256 of its canonical form.
    pub checksum: Checksum,
}

/// Counts and the set checksum.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Definition files read.
    pub definitions: usize,
    /// Spec files read.
    pub specs: usize,
    /// Operations indexed.
    pub operations: usize,
    /// Findings that block.
    pub errors: usize,
    /// Findings that do not block.
    pub warnings: usize,
    /// SHA-256 over the checksums of the loaded definitions, by domain.
    pub checksum: Checksum,
}

/// Runs the command and prints the report; the exit code is 0 without
/// errors, 1 with errors, 2 on usage or I/O problems.
pub fn run(config: Option<PathBuf>, args: ValidateArgs) -> ExitCode {
    let mut findings = Vec::new();
    let report = match check(config, &args, &mut findings) {
        Ok(report) => report,
        Err(err) => {
            let mut stderr = io::stderr().lock();
            for finding in &findings {
                let _ = writeln!(stderr, "{finding}");
            }
            let _ = writeln!(stderr, "error: {err}");
            return ExitCode::from(2);
        }
    };
    let printed = match args.format {
        Format::Json => print_json(&report),
        Format::Text => print_text(&report),
    };
    if printed.is_err() {
        return ExitCode::from(2);
    }
    if report.summary.errors > 0 {
        return ExitCode::from(1);
    }
    if let Some(path) = &args.write_checksums {
        let manifest = Manifest {
            checksums: report
                .definitions
                .iter()
                .map(|d| (d.domain.clone(), d.checksum))
                .collect(),
        };
        if let Err(err) = std::fs::write(path, manifest.render()) {
            eprintln!("error: writing {}: {err}", path.display());
            return ExitCode::from(2);
        }
        eprintln!(
            "checksums of {} definition(s) written to {}",
            manifest.checksums.len(),
            path.display()
        );
    }
    ExitCode::SUCCESS
}

/// Reads everything and validates it. `findings` holds config findings
/// when reading fails.
pub fn check(
    config_path: Option<PathBuf>,
    args: &ValidateArgs,
    findings: &mut Vec<Finding>,
) -> Result<Report, SourceError> {
    let config = sources::config(config_path.as_deref(), findings)?;
    let definition_paths = if !args.definitions.is_empty() {
        args.definitions.clone()
    } else if let Some((_, config)) = &config {
        config
            .definitions
            .directories
            .iter()
            .map(PathBuf::from)
            .collect()
    } else {
        vec![PathBuf::from("definitions")]
    };
    let specs_dir = args.specs.clone().unwrap_or_else(|| match &config {
        Some((_, config)) => PathBuf::from(&config.specs.directory),
        None => PathBuf::from("specs"),
    });
    let texts = sources::document_texts("definitions path", &definition_paths)?;
    let spec_inputs = sources::spec_inputs(
        &specs_dir,
        config
            .as_ref()
            .map(|(source, config)| (source.as_str(), config)),
    )?;
    let spec_count = spec_inputs.len();

    let index = OperationIndex::build(spec_inputs, findings);
    let definitions: Vec<LoadedDefinition> = texts
        .iter()
        .map(|(source, text)| LoadedDefinition::from_text(source.as_str(), text, findings))
        .collect();
    let handlers = validate::known_handlers(args.handlers.iter().cloned());
    let lint = args.lint || config.as_ref().is_some_and(|(_, c)| c.definitions.lint);
    let checks = validate::Checks { lint };
    findings.extend(validate::validate_with(
        &definitions,
        &index,
        &handlers,
        checks,
    ));
    findings.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));

    let (errors, warnings) = finding::count(findings);
    let summaries: Vec<DefinitionSummary> = definitions
        .iter()
        .filter_map(|d| {
            let def = d.definition.as_ref()?;
            Some(DefinitionSummary {
                source: d.source.clone(),
                domain: def.domain.clone(),
                version: def.version.clone(),
                checksum: d.checksum()?,
            })
        })
        .collect();
    let set_checksum =
        checksum::set_checksum(summaries.iter().map(|s| (s.domain.as_str(), s.checksum)));
    Ok(Report {
        findings: std::mem::take(findings),
        definitions: summaries,
        summary: Summary {
            definitions: texts.len(),
            specs: spec_count,
            operations: index.operation_count(),
            errors,
            warnings,
            checksum: set_checksum,
        },
    })
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

fn print_text(report: &Report) -> io::Result<()> {
    let mut out = io::stdout().lock();
    for finding in &report.findings {
        writeln!(out, "{finding}")?;
    }
    let s = &report.summary;
    writeln!(
        out,
        "validated {} against {} ({}): {}, {}; set checksum sha256:{}",
        plural(s.definitions, "definition"),
        plural(s.specs, "spec"),
        plural(s.operations, "operation"),
        plural(s.errors, "error"),
        plural(s.warnings, "warning"),
        s.checksum
    )
}

fn print_json(report: &Report) -> io::Result<()> {
    let mut out = io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, report)?;
    writeln!(out)
}
