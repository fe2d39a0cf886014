//! `thesa-bff preview --definitions D --specs S`: the server with the
//! preview page on any definition set, every spec answered by a generated
//! sample backend, so a domain team sees its screens before publishing.

use std::path::PathBuf;

use serde_json::json;
use thesa_core::config::{Config, ServiceConfig};

/// Options of `thesa-bff preview`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Example:\n  \
    thesa-bff preview --definitions definitions --specs specs\n  \
    # then open http://localhost:8080/preview/ and pick a role\n\n\
    The rest of the configuration (identity with the development keys, the \
    static policy, stores) comes from --config, else config/config.yaml.")]
pub struct PreviewArgs {
    /// Definitions: a directory (searched recursively) or a file
    #[arg(long, value_name = "PATH")]
    pub definitions: PathBuf,

    /// Directory of OpenAPI specs; each gets a generated sample backend
    #[arg(long, value_name = "DIR")]
    pub specs: PathBuf,

    /// Port of the preview and the BFF
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
}

impl PreviewArgs {
    /// Points `config` at the definitions and specs, turns the preview on
    /// and gives every spec's service a free local port for its sample
    /// backend (keeping the service's other settings when it has some).
    ///
    /// # Errors
    /// The spec directory cannot be listed, or no local port is free.
    pub fn apply(&self, config: &mut Config) -> Result<(), String> {
        config.server.port = self.port;
        config.server.preview = true;
        config.definitions.directories = vec![unwrap_resources(&self.definitions)?];
        config.definitions.hot_reload = false;
        config.specs.directory = self.specs.display().to_string();
        let inputs =
            crate::sources::spec_inputs(&self.specs, None).map_err(|e| format!("--specs: {e}"))?;
        config
            .specs
            .sources
            .retain(|s| self.specs.join(&s.spec_file).is_file());
        for input in inputs {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| {
                    format!(
                        "no free local port for {}'s sample backend: {e}",
                        input.service_id
                    )
                })?
                .port();
            let base_url = format!("http://127.0.0.1:{port}");
            let service_id = config
                .specs
                .sources
                .iter()
                .find(|s| input.source.ends_with(&s.spec_file))
                .map_or(input.service_id.clone(), |s| s.service_id.clone());
            match config.services.get_mut(&service_id) {
                Some(service) => service.base_url = base_url,
                None => {
                    let service: ServiceConfig =
                        serde_json::from_value(json!({"base_url": base_url}))
                            .map_err(|e| format!("services.{service_id}: {e}"))?;
                    config.services.insert(service_id, service);
                }
            }
        }
        Ok(())
    }
}

/// The definitions directory to serve: `path` itself, or — when its files
/// hold ThesaDefinition resources (what a team applies with kubectl) — a
/// directory under the system's temporary one with each resource's `spec`
/// as a plain definition, so the same files preview either way.
fn unwrap_resources(path: &std::path::Path) -> Result<String, String> {
    let texts = thesa_core::files::document_texts("definitions", &[path.to_path_buf()])
        .map_err(|e| format!("--definitions: {e}"))?;
    let mut specs = Vec::new();
    for (source, text) in &texts {
        let Ok(documents) = thesa_core::node::parse_documents(text) else {
            continue;
        };
        for document in documents {
            let value = document.to_json();
            if value.get("kind").and_then(|k| k.as_str()) == Some("ThesaDefinition") {
                let spec = value.get("spec").cloned().unwrap_or_default();
                specs.push((source.clone(), spec));
            }
        }
    }
    if specs.is_empty() {
        return Ok(path.display().to_string());
    }
    let dir = std::env::temp_dir().join(format!("thesa-preview-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (index, (source, spec)) in specs.iter().enumerate() {
        let file = dir.join(format!("{index:03}.json"));
        std::fs::write(&file, spec.to_string())
            .map_err(|e| format!("{} (from {source}): {e}", file.display()))?;
    }
    tracing::info!(from = %path.display(), to = %dir.display(), definitions = specs.len(), "ThesaDefinition resources unwrapped for the preview");
    Ok(dir.display().to_string())
}
