//! `thesa-operator`: see `--help`.

#![forbid(unsafe_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use thesa_operator::{manifest, render};

/// Kubernetes operator for Thesa: validates ThesaDefinitions against the
/// backends' OpenAPI specs and deploys the Thesa BFF for each
/// ThesaDeployment.
///
/// Start with `thesa-operator crds | kubectl apply -f -`, then try your
/// manifests offline with `thesa-operator render -f samples/ --specs specs/`.
#[derive(Parser)]
#[command(version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller in the cluster of the current kubeconfig (or the
    /// pod's service account).
    Run(Box<thesa_operator::controller::RunArgs>),
    /// Print the CustomResourceDefinitions (`crds/` holds exactly this,
    /// one file per CRD: regenerate it with `thesa-operator crds --dir crds`).
    Crds {
        /// Write one file per CRD into this directory instead of printing.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Also write the CRD reference (Markdown, every field with its
        /// documentation) to FILE.
        #[arg(long, value_name = "FILE")]
        reference: Option<PathBuf>,
    },
    /// Print every object the controller would apply for the
    /// ThesaDeployments in the given manifests, offline.
    ///
    /// Findings and a summary go to stderr. Exit status: 0 when every
    /// selected definition is accepted, 1 when one is rejected (it is left
    /// out of the output) or a ThesaDeployment cannot be rendered, 2 when
    /// the input cannot be read.
    Render {
        /// Manifest files or directories (searched recursively for .yaml,
        /// .yml and .json): ThesaDeployments, ThesaDefinitions and the
        /// ConfigMaps their specs refer to.
        #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
        paths: Vec<PathBuf>,
        /// Directory of OpenAPI specs for specs not found in the manifests:
        /// a `configMapKeyRef` reads the file named by its key; a
        /// ThesaDeployment without `specs` gets every file (service ID =
        /// file name without extension).
        #[arg(long, value_name = "DIR")]
        specs: Option<PathBuf>,
        /// Namespace of manifests that do not name one.
        #[arg(short, long, default_value = "default")]
        namespace: String,
        /// For ThesaDeployments with `spec.rollout.strategy: canary`: print
        /// what step N (from 1) of a canary of this input applies instead
        /// (the canary's ConfigMaps and Deployment, the stable pods it
        /// takes)
        #[arg(long, value_name = "N")]
        canary_step: Option<usize>,
    },
}

/// mimalloc instead of the system allocator: loading and validating
/// definitions makes many small allocations, and a first reconcile of 200
/// definitions took 135 ms of CPU with glibc's malloc against 80 ms
/// (BENCHMARKS.md). `MIMALLOC_ARENA_EAGER_COMMIT=0` (set by the chart and
/// the image) keeps it from committing memory it has not used yet.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Chosen here, whatever else the build enables: with both `ring` and
    // `aws-lc-rs` compiled in (a workspace or test build unifies them),
    // rustls cannot pick a provider by itself and the first TLS connection
    // to the API server would panic.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => thesa_operator::controller::main(*args),
        Command::Crds { dir, reference } => {
            if let Some(path) = &reference
                && let Err(err) = std::fs::write(path, manifest::reference())
            {
                return fail(&format!("writing {}: {err}", path.display()));
            }
            let mut text = String::new();
            for (file, crd) in manifest::crds() {
                let yaml = match manifest::to_yaml(&crd) {
                    Ok(yaml) => yaml,
                    Err(err) => return fail(&format!("writing the CRDs: {err}")),
                };
                match &dir {
                    Some(dir) => {
                        let path = dir.join(file);
                        if let Err(err) = std::fs::write(&path, yaml) {
                            return fail(&format!("writing {}: {err}", path.display()));
                        }
                    }
                    None => text.push_str(&yaml),
                }
            }
            print_out(&text, ExitCode::SUCCESS)
        }
        Command::Render {
            paths,
            specs,
            namespace,
            canary_step,
        } => {
            let manifests = match render::read(&paths, &namespace) {
                Ok(manifests) => manifests,
                Err(err) => return fail(&err.to_string()),
            };
            match render::render_with(&manifests, specs.as_deref(), canary_step) {
                Ok(rendered) => {
                    eprint!("{}", rendered.report);
                    let code = if rendered.failed {
                        ExitCode::from(1)
                    } else {
                        ExitCode::SUCCESS
                    };
                    print_out(&rendered.manifests, code)
                }
                Err(err) => fail(&err.to_string()),
            }
        }
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

/// Writes to stdout; a closed pipe (`| head`) is not an error.
fn print_out(text: &str, code: ExitCode) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => fail(&err.to_string()),
        _ => code,
    }
}
