//! `thesa-bff`: the Thesa Backend-For-Frontend. This version validates
//! definitions against OpenAPI specs; serving arrives in a later release.

#![forbid(unsafe_code)]

mod sources;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Thesa Backend-For-Frontend.
///
/// Domain teams describe their part of a UI in definitions (pages, forms,
/// commands, workflows, searches, lookups); every data-bearing element names
/// an operation of a backend's OpenAPI spec. `thesa-bff validate` checks a
/// set of definitions against the specs, as the BFF does before it serves
/// them and as domain teams do in CI.
///
/// Exit codes: 0 no errors, 1 errors found, 2 usage or I/O problem.
#[derive(Debug, Parser)]
#[command(
    name = "thesa-bff",
    version,
    after_help = "Examples:\n  \
        thesa-bff validate --definitions definitions --specs specs\n  \
        thesa-bff validate --definitions definitions/orders/definition.yaml --specs specs --format json\n  \
        thesa-bff --validate-definitions --config /config/config.yaml"
)]
struct Cli {
    /// Configuration file. `validate` reads one only when given;
    /// `--validate-definitions` falls back to config/config.yaml
    #[arg(long, global = true, value_name = "FILE", env = "THESA_CONFIG")]
    config: Option<PathBuf>,

    /// Validate the definitions and specs named by the configuration
    /// (--config, else config/config.yaml when it exists) and exit, as the
    /// BFF checks them at start-up
    #[arg(long)]
    validate_definitions: bool,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate definitions against OpenAPI specs and print every finding
    ///
    /// Each finding has a stable code, a path into the document and, for
    /// YAML/JSON files, the line and column:
    ///
    ///   definitions/orders/definition.yaml:42:9: error[OPERATION_NOT_FOUND]
    ///   commands[1].operation.operation_id: operation "cancelOrdr" not found
    ///   in service "orders-svc" (did you mean "cancelOrder"?)
    ///
    /// A summary line follows with the counts and the checksum of the set.
    Validate(validate::ValidateArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Validate(args)) => validate::run(cli.config, args),
        None if cli.validate_definitions => validate::run(
            cli.config.or_else(sources::default_config),
            validate::ValidateArgs::default(),
        ),
        None => {
            eprintln!(
                "error: no command given. This version of thesa-bff validates definitions; \
                 serving is not available yet.\n\nTry: thesa-bff validate --help"
            );
            ExitCode::from(2)
        }
    }
}
