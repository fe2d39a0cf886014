//! `thesa-bff diff`: one test per kind of breaking change, and a change
//! that breaks nothing. Each edits a copy of the sample definitions.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `diff` between the samples and a copy edited by replacing `from`
/// with `to` in `domain`'s definition (each pair once).
fn diff_after(domain: &str, edits: &[(&str, &str)]) -> (Output, String) {
    let dir = tempfile::tempdir().unwrap();
    for d in ["orders", "customers", "inventory"] {
        let text =
            std::fs::read_to_string(repo().join("definitions").join(d).join("definition.yaml"))
                .unwrap();
        let text = if d == domain {
            edits.iter().fold(text, |t, (from, to)| {
                assert!(t.contains(from), "{from:?} not in {d}");
                t.replacen(from, to, 1)
            })
        } else {
            text
        };
        std::fs::write(dir.path().join(format!("{d}.yaml")), text).unwrap();
    }
    let output = Command::new(env!("CARGO_BIN_EXE_thesa-bff"))
        .arg("diff")
        .arg("--old")
        .arg(repo().join("definitions"))
        .arg("--new")
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    (output, stdout)
}

fn assert_breaking(domain: &str, edits: &[(&str, &str)], code: &str, element: &str) {
    let (output, stdout) = diff_after(domain, edits);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let line = format!("breaking[{code}] {element}:");
    assert!(stdout.contains(&line), "{line} missing from:\n{stdout}");
}

#[test]
fn removing_a_page_breaks() {
    // The page and what leads to it.
    let (output, stdout) = diff_after(
        "inventory",
        &[("- id: inventory.warehouses", "- id: inventory.depots")],
    );
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("breaking[PAGE_REMOVED] pages[inventory.warehouses]: page \"inventory.warehouses\" was removed (renamed? added: inventory.depots)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("change[PAGE_ADDED] pages[inventory.depots]"),
        "{stdout}"
    );
}

#[test]
fn renaming_a_command_breaks() {
    assert_breaking(
        "orders",
        &[("- id: orders.confirm", "- id: orders.approve")],
        "COMMAND_REMOVED",
        "commands[orders.confirm]",
    );
}

#[test]
fn changing_a_route_breaks() {
    assert_breaking(
        "customers",
        &[(
            "title: Customers\n    route: /customers\n",
            "title: Customers\n    route: /clients\n",
        )],
        "ROUTE_CHANGED",
        "pages[customers.list].route",
    );
}

#[test]
fn a_new_required_field_breaks() {
    assert_breaking(
        "orders",
        &[(
            "- {field: comment, label: Comment, type: textarea}",
            "- {field: comment, label: Comment, type: textarea, required: true}",
        )],
        "REQUIRED_FIELD_ADDED",
        "forms[orders.return_review_form].comment",
    );
}

#[test]
fn changed_capabilities_break() {
    assert_breaking(
        "orders",
        &[(
            "capabilities: [orders:returns:request]\n    initial_step",
            "capabilities: [orders:returns:create]\n    initial_step",
        )],
        "CAPABILITIES_CHANGED",
        "workflows[orders.return_approval]",
    );
}

#[test]
fn removing_a_workflow_step_breaks() {
    assert_breaking(
        "orders",
        &[
            (
                "      - id: notify_rejected\n        name: Tell the customer the return is rejected\n        type: notification\n",
                "",
            ),
            (
                "{from: review, to: notify_rejected, event: rejected}",
                "{from: review, to: rejected, event: rejected}",
            ),
            (
                "      - {from: notify_rejected, to: rejected, event: sent}\n",
                "",
            ),
        ],
        "WORKFLOW_STEP_REMOVED",
        "workflows[orders.return_approval].steps[notify_rejected]",
    );
}

#[test]
fn additions_and_wording_do_not_break() {
    let (output, stdout) = diff_after(
        "customers",
        &[
            ("title: Customers", "title: All customers"),
            (
                "pages:\n",
                "pages:\n  - id: customers.vip\n    title: VIP\n    route: /customers/vip\n    layout: custom\n",
            ),
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("change[PAGE_ADDED] pages[customers.vip]"),
        "{stdout}"
    );
    assert!(stdout.ends_with("1 change(s), 0 breaking\n"), "{stdout}");
}

#[test]
fn a_set_that_does_not_load_is_exit_2() {
    let (output, _) = diff_after("orders", &[("domain: orders", "domain: [orders")]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("must load"));
}

/// Runs the documented CI job (docs/ci/domain-ci.sh) with the samples as
/// the published set and `definitions` as the new one.
fn ci_job(definitions: &Path, out: &Path, allow_breaking: bool) -> (Option<i32>, String) {
    let output = Command::new("bash")
        .arg(repo().join("docs/ci/domain-ci.sh"))
        .arg(definitions)
        .arg(repo().join("specs"))
        .arg(repo().join("definitions"))
        .arg(out)
        .env("THESA_BFF", env!("CARGO_BIN_EXE_thesa-bff"))
        .env("ALLOW_BREAKING", if allow_breaking { "1" } else { "0" })
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), text)
}

fn copy_samples(to: &Path, edit: Option<(&str, &str)>) {
    for d in ["orders", "customers", "inventory"] {
        let text =
            std::fs::read_to_string(repo().join("definitions").join(d).join("definition.yaml"))
                .unwrap();
        let text = match edit {
            Some((from, to)) if d == "orders" => text.replacen(from, to, 1),
            _ => text,
        };
        std::fs::create_dir_all(to.join(d)).unwrap();
        std::fs::write(to.join(d).join("definition.yaml"), text).unwrap();
    }
}

#[test]
fn the_documented_ci_job_validates_diffs_and_writes_checksums() {
    let work = tempfile::tempdir().unwrap();
    let (same, out) = (work.path().join("same"), work.path().join("out"));
    copy_samples(&same, None);
    let (code, text) = ci_job(&same, &out, false);
    assert_eq!(code, Some(0), "{text}");
    let manifest = std::fs::read_to_string(out.join("thesa-checksums.sha256")).unwrap();
    assert_eq!(manifest.lines().filter(|l| !l.starts_with('#')).count(), 3);
    assert!(
        out.join("orders/definition.yaml").exists(),
        "the artifact has the definitions"
    );

    let moved = work.path().join("moved");
    copy_samples(
        &moved,
        Some(("\n    route: /orders\n", "\n    route: /all-orders\n")),
    );
    let (code, text) = ci_job(&moved, &work.path().join("out2"), false);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("breaking[ROUTE_CHANGED]"), "{text}");
    let (code, text) = ci_job(&moved, &work.path().join("out3"), true);
    assert_eq!(code, Some(0), "{text}");

    let broken = work.path().join("broken");
    copy_samples(
        &broken,
        Some(("operation_id: listOrders", "operation_id: listOrdrs")),
    );
    let (code, text) = ci_job(&broken, &work.path().join("out4"), false);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("OPERATION_NOT_FOUND"), "{text}");
    assert!(!work.path().join("out4/thesa-checksums.sha256").exists());
}
