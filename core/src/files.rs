//! Finding and reading YAML and JSON files on disk, the way the BFF and
//! the operator's `render` find their inputs.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Why the inputs could not be read (exit code 2: usage or I/O).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A path given on the command line or in the config does not exist.
    #[error("{what} {path} does not exist")]
    Missing {
        /// What the path was for.
        what: &'static str,
        /// The path.
        path: PathBuf,
    },
    /// A file or directory could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The config names a spec file that is not in the spec directory.
    #[error(
        "specs.sources in {config} names {file:?} for service {service:?}, but {path} does not exist"
    )]
    MissingSpecSource {
        /// The config file.
        config: String,
        /// The file name from the config.
        file: String,
        /// The service it was for.
        service: String,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// The config file has errors.
    #[error("the configuration {0} is invalid")]
    InvalidConfig(String),
}

/// Reads a text file.
pub fn read(path: &Path) -> Result<String, SourceError> {
    fs::read_to_string(path).map_err(|source| SourceError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Whether the entry's name starts with `.`. Kubernetes mounts a ConfigMap
/// as symlinks into a hidden `..data` directory; skipping hidden entries
/// reads each file once.
fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

/// Files with a name the loaders read (`.yaml`, `.yml`, `.json`), not hidden.
pub fn is_document(path: &Path) -> bool {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    !is_hidden(path) && matches!(extension.as_deref(), Some("yaml" | "yml" | "json"))
}

/// The entries of `dir`, sorted.
pub fn list_dir(dir: &Path) -> Result<Vec<PathBuf>, SourceError> {
    let entries = fs::read_dir(dir).map_err(|source| SourceError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| SourceError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        paths.push(entry.path());
    }
    paths.sort();
    Ok(paths)
}

/// The YAML and JSON files under `paths` (files as given, directories searched
/// recursively), sorted, each with its text.
pub fn document_texts(
    what: &'static str,
    paths: &[PathBuf],
) -> Result<Vec<(String, String)>, SourceError> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_file() {
            files.push(path.clone());
        } else if path.is_dir() {
            collect(path, &mut files, &mut Vec::new())?;
        } else {
            return Err(SourceError::Missing {
                what,
                path: path.clone(),
            });
        }
    }
    files.sort();
    files.dedup();
    // The same file reached through two paths (a symlinked directory) is
    // read once.
    let mut seen = std::collections::HashSet::new();
    files.retain(|f| seen.insert(fs::canonicalize(f).unwrap_or_else(|_| f.clone())));
    files
        .into_iter()
        .map(|f| Ok((f.display().to_string(), read(&f)?)))
        .collect()
}

/// Searches `dir` recursively. `ancestors` holds the directories being
/// searched, so that a symlink back up the tree ends the search there.
fn collect(
    dir: &Path,
    files: &mut Vec<PathBuf>,
    ancestors: &mut Vec<PathBuf>,
) -> Result<(), SourceError> {
    let canonical = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    if ancestors.contains(&canonical) {
        return Ok(());
    }
    ancestors.push(canonical);
    for path in list_dir(dir)? {
        if path.is_dir() && !is_hidden(&path) {
            collect(&path, files, ancestors)?;
        } else if path.is_file() && is_document(&path) {
            files.push(path);
        }
    }
    ancestors.pop();
    Ok(())
}
