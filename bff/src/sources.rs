//! Reading definitions, specs and the config from disk, the way the BFF
//! finds them at start-up (step 3 and 4 of the start-up sequence).

use std::path::{Path, PathBuf};

use thesa_core::config::Config;
pub use thesa_core::files::{SourceError, document_texts};
use thesa_core::files::{is_document, list_dir, read};
use thesa_core::finding::Finding;
use thesa_core::openapi::SpecInput;

/// The spec files of `dir`, each with its service ID: from `specs.sources`
/// of the config when it lists the file, otherwise the file name without
/// its extension.
pub fn spec_inputs(
    dir: &Path,
    config: Option<(&str, &Config)>,
) -> Result<Vec<SpecInput>, SourceError> {
    if !dir.is_dir() {
        return Err(SourceError::Missing {
            what: "spec directory",
            path: dir.to_path_buf(),
        });
    }
    if let Some((config_source, config)) = config {
        for source in &config.specs.sources {
            let path = dir.join(&source.spec_file);
            if !path.is_file() {
                return Err(SourceError::MissingSpecSource {
                    config: config_source.to_string(),
                    file: source.spec_file.clone(),
                    service: source.service_id.clone(),
                    path,
                });
            }
        }
    }
    let mut inputs = Vec::new();
    for path in list_dir(dir)? {
        if !path.is_file() || !is_document(&path) {
            continue;
        }
        let file_name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let stem = path
            .file_stem()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let service_id = config
            .and_then(|(_, c)| c.service_for_spec_file(file_name))
            .unwrap_or(stem)
            .to_string();
        inputs.push(SpecInput {
            service_id,
            source: path.display().to_string(),
            text: read(&path)?,
        });
    }
    Ok(inputs)
}

/// The config file the BFF reads when `--config` is not given (the seed's
/// "config/config.yaml (default path)"), if it exists.
pub fn default_config() -> Option<PathBuf> {
    let path = PathBuf::from("config/config.yaml");
    path.is_file().then_some(path)
}

/// Reads the config file, if one is named. Findings (unknown keys) are
/// added; errors make it invalid.
pub fn config(
    path: Option<&Path>,
    findings: &mut Vec<Finding>,
) -> Result<Option<(String, Config)>, SourceError> {
    let Some(path) = path else { return Ok(None) };
    if !path.is_file() {
        return Err(SourceError::Missing {
            what: "config file",
            path: path.to_path_buf(),
        });
    }
    let source = path.display().to_string();
    let text = read(path)?;
    match Config::from_text(&source, &text, findings) {
        Some(config) => Ok(Some((source, config))),
        None => Err(SourceError::InvalidConfig(source)),
    }
}
