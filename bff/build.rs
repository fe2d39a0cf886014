//! Bakes the version and commit into the binary, as the deployment guide's
//! `-X main.version -X main.commit` does: `THESA_BUILD_VERSION` and
//! `THESA_BUILD_COMMIT` when set (image builds), else the crate version and
//! `git rev-parse --short=12 HEAD`, else `unknown`.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=THESA_BUILD_VERSION");
    println!("cargo:rerun-if-env-changed=THESA_BUILD_COMMIT");
    for watched in ["../.git/HEAD", "../.git/refs/heads"] {
        if Path::new(watched).exists() {
            println!("cargo:rerun-if-changed={watched}");
        }
    }
    let version = std::env::var("THESA_BUILD_VERSION")
        .unwrap_or_else(|_| env!("CARGO_PKG_VERSION").to_string());
    let commit = std::env::var("THESA_BUILD_COMMIT")
        .ok()
        .or_else(|| {
            let output = Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()?;
            output
                .status
                .success()
                .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=THESA_VERSION={version}");
    println!("cargo:rustc-env=THESA_COMMIT={commit}");
}
