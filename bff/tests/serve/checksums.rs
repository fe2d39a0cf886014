//! The checksum manifest: `validate --write-checksums` writes it, and a BFF
//! with `strict_checksums` serves only definitions it lists unchanged.

use std::path::Path;
use std::process::Command;

use crate::harness::{Bff, config, jwks, repo};

/// The sample definitions, copied into `dir`.
fn copy_samples(dir: &Path) {
    for domain in ["orders", "customers", "inventory"] {
        let from = repo()
            .join("definitions")
            .join(domain)
            .join("definition.yaml");
        std::fs::copy(from, dir.join(format!("{domain}.yaml"))).unwrap();
    }
}

fn write_manifest(dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_thesa-bff"))
        .args(["validate", "--definitions"])
        .arg(dir)
        .arg("--specs")
        .arg(repo().join("specs"))
        .arg("--write-checksums")
        .arg(dir.join("thesa-checksums.sha256"))
        .output()
        .unwrap()
}

fn strict(jwks: &str, dir: &Path) -> String {
    config(
        jwks,
        &format!(
            "definitions:\n  directories: [\"{}\"]\n  strict_checksums: true\n",
            dir.display()
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_checksums_serve_listed_definitions_and_refuse_tampered_ones() {
    let (jwks, _stop) = jwks().await;
    let dir = tempfile::tempdir().unwrap();
    copy_samples(dir.path());

    // No manifest yet: refused.
    let exited = Bff::try_start(&strict(&jwks, dir.path()), &[])
        .err()
        .expect("refused");
    assert_eq!(exited.status.code(), Some(1));
    assert!(
        exited
            .lines
            .iter()
            .any(|l| l.contains("CHECKSUM_MANIFEST_INVALID")),
        "{:?}",
        exited.lines
    );

    let out = write_manifest(dir.path());
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest = std::fs::read_to_string(dir.path().join("thesa-checksums.sha256")).unwrap();
    assert_eq!(
        manifest.lines().filter(|l| !l.starts_with('#')).count(),
        3,
        "{manifest}"
    );
    let bff = Bff::start(&strict(&jwks, dir.path()), &[]);
    drop(bff);

    // Formatting is not content: a comment keeps the checksum.
    let orders = dir.path().join("orders.yaml");
    let text = std::fs::read_to_string(&orders).unwrap();
    std::fs::write(&orders, format!("# reviewed\n{text}")).unwrap();
    drop(Bff::start(&strict(&jwks, dir.path()), &[]));

    // A changed label is: refused, with the file and the domain named.
    std::fs::write(&orders, text.replacen("label: Orders", "label: Orderz", 1)).unwrap();
    let exited = Bff::try_start(&strict(&jwks, dir.path()), &[])
        .err()
        .expect("refused");
    assert_eq!(exited.status.code(), Some(1));
    let line = exited
        .lines
        .iter()
        .find(|l| l.contains("CHECKSUM_MISMATCH"))
        .unwrap_or_else(|| panic!("{:?}", exited.lines));
    assert!(
        line.contains("orders.yaml") && line.contains("outside the CI pipeline"),
        "{line}"
    );
}

#[test]
fn no_manifest_is_written_for_definitions_with_errors() {
    let dir = tempfile::tempdir().unwrap();
    copy_samples(dir.path());
    let orders = dir.path().join("orders.yaml");
    let text = std::fs::read_to_string(&orders).unwrap();
    std::fs::write(
        &orders,
        text.replacen("operation_id: listOrders", "operation_id: listOrdrs", 1),
    )
    .unwrap();
    let out = write_manifest(dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(!dir.path().join("thesa-checksums.sha256").exists());
}
