//! `thesa-bff`: the Thesa Backend-For-Frontend. `serve` (the default)
//! runs the server; `validate` checks definitions against OpenAPI specs;
//! `diff` reports breaking changes between two definition sets;
//! `dev-token` prints a development token.
//!
//! The server's modules are layered: `http` (routes, middleware, probes)
//! uses `features` (what the BFF answers), which use `backends` (calls out)
//! and `access` (who calls, what they may do); any of them may use the
//! shared pieces at the top level (`state`, `registry`, `metrics`, `error`,
//! the API's one error shape). `server` wires everything together at
//! start-up, with `settings`, `telemetry`, `sources` and `reload`; `cli`
//! holds the other subcommands.

#![deny(unsafe_code)]

mod access;
mod backends;
mod cli;
mod error;
mod features;
mod http;
mod metrics;
mod preview;
mod registry;
mod reload;
mod samples;
mod server;
mod settings;
mod sources;
mod state;
mod telemetry;

/// Throwaway PostgreSQL for the store tests (shared with the integration
/// tests).
#[cfg(test)]
#[path = "../tests/support/postgres.rs"]
mod test_postgres;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use cli::{dev_token, diff, validate};

/// mimalloc instead of the system allocator: a request makes many small
/// allocations (headers, labels, log fields), and glibc's malloc showed
/// up at the top of the server's profile (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// No transparent huge pages for this process. mimalloc asks for them on
/// its arenas (`MADV_HUGEPAGE`), and a 2 MiB page per arena is counted in
/// full however little of it is used: idle RSS measured 39.7 MB with them,
/// 29.0 MB without (BENCHMARKS.md). Best effort: a kernel without THP
/// refuses the call, which changes nothing.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn no_huge_pages() {
    // SAFETY: prctl(PR_SET_THP_DISABLE) takes integers only and sets a
    // flag of the calling process; no memory is passed.
    let _ = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
}

#[cfg(not(target_os = "linux"))]
fn no_huge_pages() {}

/// Thesa Backend-For-Frontend.
///
/// Domain teams describe their part of a UI in definitions (pages, forms,
/// commands, workflows, searches, lookups); every data-bearing element names
/// an operation of a backend's OpenAPI spec. The BFF serves them to the
/// frontend, filtered by each caller's capabilities.
///
/// `thesa-bff serve` (the default) starts the server: configuration from
/// --config (else config/config.yaml, else compiled defaults), overridden by
/// THESA_* environment variables (server.port → THESA_SERVER_PORT,
/// services.orders-svc.base_url → THESA_SERVICES_ORDERS_SVC_BASE_URL).
/// Secrets come only from the environment. Any start-up problem ends the
/// process with exit code 1 and one log line naming the step and the cause.
///
/// `thesa-bff validate` checks definitions against specs, as the BFF does
/// before it serves them and as domain teams do in CI (exit 0 no errors,
/// 1 errors found, 2 usage or I/O problem).
#[derive(Debug, Parser)]
#[command(
    name = "thesa-bff",
    version = concat!(env!("THESA_VERSION"), " (commit ", env!("THESA_COMMIT"), ")"),
    after_help = "Examples:\n  \
        thesa-bff serve --config config/config.yaml\n  \
        THESA_SERVER_PORT=9090 thesa-bff serve\n  \
        TOKEN=$(thesa-bff dev-token --sub alice --tenant acme --roles order_clerk)\n  \
        curl -H \"Authorization: Bearer $TOKEN\" localhost:8080/ui/navigation\n  \
        thesa-bff validate --definitions definitions --specs specs\n  \
        thesa-bff diff --old published/ --new definitions/\n  \
        thesa-bff --validate-definitions --config /config/config.yaml"
)]
struct Cli {
    /// Configuration file [default: config/config.yaml when it exists,
    /// else compiled defaults]. `validate` reads one only when given
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
    /// Run the server (the default command)
    ///
    /// Start-up follows Thesa's deployment guide: configuration, telemetry,
    /// OpenAPI specs, definitions, identity and capabilities, stores,
    /// router, background tasks, listen, ready. JSON logs go to standard
    /// output. SIGTERM or SIGINT drains in-flight requests for up to
    /// server.shutdown_timeout, then the process exits 0.
    Serve(server::ServeArgs),
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
    /// Print a development token the sample configuration accepts
    DevToken(dev_token::DevTokenArgs),
    /// Serve the preview page on a definition set, with generated backends
    ///
    /// The server with server.preview on, the given definitions and specs,
    /// and a sample backend for every spec (data seeded from its schemas,
    /// in memory): open http://localhost:PORT/preview/ to see the menu,
    /// tables, forms, commands and workflows as a frontend would render
    /// them, for a role chosen in the page. Development only: the page
    /// signs tokens with the development key (config/dev/).
    Preview(preview::command::PreviewArgs),
    /// Report breaking changes between two definition sets
    ///
    /// Breaking: page, form, command, workflow, search or lookup IDs removed
    /// (or renamed), page routes changed, required form fields added,
    /// capabilities of pages, forms, commands or workflows changed,
    /// workflow steps removed, domains removed. Additions are listed too.
    /// Exit 0 without breaking changes, 1 with, 2 when a set cannot be read.
    Diff(diff::DiffArgs),
}

fn main() -> ExitCode {
    no_huge_pages();
    // Chosen here, whatever else the build enables: with both `ring` and
    // `aws-lc-rs` compiled in, rustls cannot pick a provider by itself and
    // the first TLS connection (JWKS, OPA, a backend) would panic.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Validate(args)) => validate::run(cli.config, args),
        Some(Command::DevToken(args)) => dev_token::run(cli.config, args),
        Some(Command::Diff(args)) => diff::run(args),
        None if cli.validate_definitions => validate::run(
            cli.config.or_else(sources::default_config),
            validate::ValidateArgs::default(),
        ),
        Some(Command::Serve(args)) => server::run(cli.config, args),
        Some(Command::Preview(args)) => server::run(
            cli.config,
            server::ServeArgs {
                sample_backends: true,
                preview: Some(args),
            },
        ),
        None => server::run(cli.config, server::ServeArgs::default()),
    }
}
