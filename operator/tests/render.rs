//! `render` of the samples: a golden file of everything the controller
//! would apply, the invalid sample left out with its findings, and the
//! sample CRs kept equal to the sample definition files.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn render(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_thesa-operator"))
        .current_dir(root())
        .arg("render")
        .args(args)
        .output()
        .expect("run thesa-operator");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn samples_render_as_the_golden_file() {
    let (code, stdout, stderr) = render(&[
        "-f",
        "samples/thesadeployment.yaml",
        "samples/definitions",
        "--specs",
        "specs",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("3 definitions accepted, 0 rejected"),
        "{stderr}"
    );
    let golden = root().join("operator/tests/golden/samples.yaml");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &stdout).expect("write golden");
    }
    let expected = std::fs::read_to_string(&golden).unwrap_or_default();
    assert!(
        stdout == expected,
        "render output differs from {}; if the change is intended, run \
         `UPDATE_GOLDEN=1 cargo test -p thesa-operator --test render` and review the diff",
        golden.display()
    );
    let kinds: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("kind: "))
        .collect();
    assert_eq!(
        kinds,
        [
            "ConfigMap",
            "ConfigMap",
            "ConfigMap",
            "ServiceAccount",
            "Service",
            "Deployment",
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget"
        ]
    );
}

#[test]
fn the_invalid_sample_is_left_out_with_its_findings() {
    let (code, stdout, stderr) = render(&["-f", "samples", "--specs", "specs"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("3 definitions accepted, 1 rejected"),
        "{stderr}"
    );
    assert!(
        stderr.contains("ThesaDefinition default/reports rejected: left out"),
        "{stderr}"
    );
    assert!(
        stderr.contains("samples/invalid/reports.yaml[default/reports]:32:25: error[OPERATION_NOT_FOUND] pages[0].table.data_source.operation_id"),
        "{stderr}"
    );
    assert!(
        !stdout.contains("reports.yaml:"),
        "the rejected domain is not in the definitions ConfigMap"
    );
    assert!(stdout.contains("orders.yaml:"));
}

#[test]
fn unreadable_input_exits_2_naming_the_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bad.yaml");
    std::fs::write(&file, "apiVersion: thesa.io/v1alpha1\nkind: ThesaDeployment\nmetadata: {name: x}\nspec: {image: [\n").expect("write");
    let (code, _, stderr) = render(&["-f", file.to_str().expect("utf-8")]);
    assert_eq!(code, 2);
    assert!(stderr.contains("bad.yaml:"), "{stderr}");

    std::fs::write(&file, "apiVersion: thesa.io/v1alpha1\nkind: ThesaDeployment\nmetadata: {name: x}\nspec: {image: 3, replicas: many}\n").expect("write");
    let (code, _, stderr) = render(&["-f", file.to_str().expect("utf-8")]);
    assert_eq!(code, 2);
    assert!(stderr.contains("ThesaDeployment x"), "{stderr}");
}

#[test]
fn sample_definition_crs_equal_the_definition_files() {
    for domain in ["orders", "inventory", "customers"] {
        let cr = std::fs::read_to_string(root().join(format!("samples/definitions/{domain}.yaml")))
            .expect("cr");
        let file =
            std::fs::read_to_string(root().join(format!("definitions/{domain}/definition.yaml")))
                .expect("file");
        let cr = thesa_core::node::parse(&cr).expect("parse cr").to_json();
        let file = thesa_core::node::parse(&file)
            .expect("parse file")
            .to_json();
        assert_eq!(
            cr["spec"], file,
            "samples/definitions/{domain}.yaml drifted from definitions/{domain}/definition.yaml"
        );
    }
}

/// `--canary-step N` prints what that step of a canary applies: the
/// canary's ConfigMaps and Deployment (track label, its own ConfigMaps,
/// the step's pod count) and the stable autoscaler's lowered bounds.
#[test]
fn render_shows_what_a_canary_step_applies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sample =
        std::fs::read_to_string(root().join("samples/thesadeployment.yaml")).expect("sample");
    let canary = sample.replace("spec:\n", "spec:\n  rollout:\n    strategy: canary\n");
    let file = dir.path().join("canary.yaml");
    std::fs::write(&file, canary).expect("write");
    let path = file.to_str().expect("utf-8");
    let (code, stdout, stderr) = render(&[
        "-f",
        path,
        "samples/definitions",
        "--specs",
        "specs",
        "--canary-step",
        "2",
    ]);
    assert_eq!(code, 0, "{stderr}");
    // The sample autoscales from 3 pods: 25% is one canary pod.
    assert!(
        stderr.contains("canary step 2 of 3 at 25%: 1 canary pods (thesa-canary), 2 stable pods"),
        "{stderr}"
    );
    let kinds: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("kind: "))
        .collect();
    assert_eq!(
        kinds,
        [
            "ConfigMap",
            "ConfigMap",
            "ConfigMap",
            "Deployment",
            "HorizontalPodAutoscaler"
        ]
    );
    for name in [
        "thesa-canary-config",
        "thesa-canary-specs",
        "thesa-canary-definitions",
    ] {
        assert!(
            stdout.contains(&format!("name: {name}\n")),
            "{name} missing"
        );
    }
    assert!(stdout.contains("thesa.io/track: canary"));
    assert!(stdout.contains("minReplicas: 2") && stdout.contains("maxReplicas: 19"));
    // Without the flag: the usual objects, with the stable selector that
    // leaves the canary's pods out.
    let (code, stdout, _) = render(&["-f", path, "samples/definitions", "--specs", "specs"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("operator: NotIn") && !stdout.contains("thesa-canary"));
}
