//! `thesa-bff validate` end to end: exit codes, output, config handling.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn thesa_bff(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_thesa-bff"))
        .args(args)
        .current_dir(dir)
        .env_remove("THESA_CONFIG")
        .output()
        .expect("thesa-bff runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A scratch copy of the samples: definitions/, specs/ and config/.
fn scratch() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for sub in [
        "definitions/orders",
        "definitions/inventory",
        "definitions/customers",
        "specs",
        "config",
    ] {
        fs::create_dir_all(dir.path().join(sub)).unwrap();
    }
    for file in [
        "definitions/orders/definition.yaml",
        "definitions/inventory/definition.yaml",
        "definitions/customers/definition.yaml",
        "specs/orders-svc.yaml",
        "specs/inventory-svc.yaml",
        "specs/customers-svc.yaml",
    ] {
        fs::copy(repo().join(file), dir.path().join(file)).unwrap();
    }
    dir
}

#[test]
fn the_samples_validate_with_a_summary() {
    let output = thesa_bff(
        &repo(),
        &[
            "validate",
            "--definitions",
            "definitions",
            "--specs",
            "specs",
        ],
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    let out = stdout(&output);
    assert!(
        out.starts_with("validated 3 definitions against 3 specs (28 operations): 0 errors, 0 warnings; set checksum sha256:"),
        "{out}"
    );
    assert_eq!(out.trim_end().rsplit(':').next().unwrap().len(), 64);
}

#[test]
fn a_broken_definition_exits_1_with_code_path_and_position() {
    let dir = scratch();
    let file = dir.path().join("definitions/orders/definition.yaml");
    let text = fs::read_to_string(&file).unwrap();
    assert_eq!(text.matches("operation_id: cancelOrder").count(), 1);
    fs::write(
        &file,
        text.replace("operation_id: cancelOrder", "operation_id: cancelOrdr"),
    )
    .unwrap();
    let line = text[..text.find("operation_id: cancelOrder").unwrap()]
        .matches('\n')
        .count()
        + 1;

    let output = thesa_bff(
        dir.path(),
        &[
            "validate",
            "--definitions",
            "definitions",
            "--specs",
            "specs",
        ],
    );
    assert_eq!(output.status.code(), Some(1));
    let expected = format!(
        "definitions/orders/definition.yaml:{line}:21: error[OPERATION_NOT_FOUND] commands[1].operation.operation_id: \
         operation \"cancelOrdr\" not found in service \"orders-svc\" (did you mean \"cancelOrder\"?)"
    );
    let out = stdout(&output);
    assert_eq!(out.lines().next(), Some(expected.as_str()), "{out}");
    assert!(
        out.lines()
            .last()
            .unwrap()
            .contains(": 1 error, 0 warnings;"),
        "{out}"
    );
}

#[test]
fn json_output_has_findings_definitions_and_summary() {
    let dir = scratch();
    let file = dir.path().join("definitions/inventory/definition.yaml");
    let text = fs::read_to_string(&file).unwrap();
    fs::write(&file, text.replacen("page_size: 50", "page_size: 500", 1)).unwrap();
    let output = thesa_bff(
        dir.path(),
        &[
            "validate",
            "--definitions",
            "definitions",
            "--specs",
            "specs",
            "--format",
            "json",
        ],
    );
    assert_eq!(output.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["summary"]["errors"], 1);
    assert_eq!(report["summary"]["definitions"], 3);
    assert_eq!(
        report["definitions"].as_array().unwrap().len(),
        2,
        "the broken one did not load"
    );
    let finding = &report["findings"][0];
    assert_eq!(finding["code"], "OUT_OF_RANGE");
    assert_eq!(finding["severity"], "error");
    assert_eq!(finding["path"], "pages[0].table.page_size");
    assert_eq!(finding["source"], "definitions/inventory/definition.yaml");
    assert!(finding["line"].as_u64().unwrap() > 1);
}

#[test]
fn serve_is_the_default_command_and_fails_fast() {
    // Compiled defaults read specs from /specs, which does not exist here.
    let dir = scratch();
    let output = thesa_bff(dir.path(), &[]);
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let error = stdout
        .lines()
        .find(|l| l.contains("\"level\":\"ERROR\""))
        .expect("an error line");
    assert!(error.contains("start-up failed"), "{error}");
    assert!(
        error.contains("spec directory /specs does not exist"),
        "{error}"
    );
}

#[test]
fn usage_and_io_problems_exit_2() {
    let dir = scratch();
    for args in [
        vec!["validate", "--definitions", "nowhere", "--specs", "specs"],
        vec![
            "validate",
            "--definitions",
            "definitions",
            "--specs",
            "nowhere",
        ],
        vec!["validate", "--config", "missing.yaml"],
        vec!["validate", "--format", "xml"],
        vec!["bogus-command"],
    ] {
        let output = thesa_bff(dir.path(), &args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(!stderr(&output).is_empty(), "{args:?}");
    }
    let output = thesa_bff(
        dir.path(),
        &["validate", "--definitions", "nowhere", "--specs", "specs"],
    );
    assert_eq!(
        stderr(&output).trim(),
        "error: definitions path nowhere does not exist"
    );
}

#[test]
fn service_ids_come_from_the_config_then_the_file_name() {
    let dir = scratch();
    fs::rename(
        dir.path().join("specs/orders-svc.yaml"),
        dir.path().join("specs/orders-v2.yaml"),
    )
    .unwrap();
    // Without a config the spec is service "orders-v2", which no definition names.
    let output = thesa_bff(dir.path(), &["validate"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout(&output).contains("error[SERVICE_NOT_FOUND]"),
        "{}",
        stdout(&output)
    );

    let config = "definitions:\n  directories: [definitions]\nspecs:\n  directory: specs\n  sources:\n    - {service_id: orders-svc, spec_file: orders-v2.yaml}\n";
    fs::write(dir.path().join("config/config.yaml"), config).unwrap();
    // `validate` reads a config only when told to.
    let output = thesa_bff(dir.path(), &["validate"]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    let output = thesa_bff(dir.path(), &["validate", "--config", "config/config.yaml"]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    // The seed's flag reads config/config.yaml by default, as the BFF does.
    let output = thesa_bff(dir.path(), &["--validate-definitions"]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));

    let missing = config.replace("orders-v2.yaml", "orders-v3.yaml");
    fs::write(dir.path().join("config/config.yaml"), missing).unwrap();
    let output = thesa_bff(dir.path(), &["validate", "--config", "config/config.yaml"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("names \"orders-v3.yaml\" for service \"orders-svc\""),
        "{}",
        stderr(&output)
    );
}

#[test]
fn an_invalid_config_exits_2_and_says_where() {
    let dir = scratch();
    fs::write(
        dir.path().join("config/config.yaml"),
        "server:\n  port: eighty\n",
    )
    .unwrap();
    let output = thesa_bff(dir.path(), &["validate", "--config", "config/config.yaml"]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(
        err.contains("config/config.yaml:2:9: error[INVALID_TYPE] server.port"),
        "{err}"
    );
    assert!(
        err.contains("error: the configuration config/config.yaml is invalid"),
        "{err}"
    );
}

#[test]
fn the_seed_flag_validates_what_the_config_names() {
    let output = thesa_bff(
        &repo(),
        &["--validate-definitions", "--config", "config/config.yaml"],
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    assert!(stdout(&output).starts_with("validated 3 definitions against 3 specs"));
}

#[test]
fn configmap_mounts_are_read_once() {
    // A ConfigMap volume holds each key twice: as a symlink and in a hidden
    // timestamped directory behind `..data`.
    let dir = scratch();
    let hidden = dir.path().join("definitions/..2026_11_22_10_00_00.123");
    fs::create_dir_all(&hidden).unwrap();
    fs::copy(
        dir.path().join("definitions/orders/definition.yaml"),
        hidden.join("orders.yaml"),
    )
    .unwrap();
    fs::write(dir.path().join("definitions/README.md"), "not a definition").unwrap();
    let output = thesa_bff(dir.path(), &["validate"]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert!(stdout(&output).starts_with("validated 3 definitions"));
}

#[test]
fn symlinked_directories_are_read_once() {
    let dir = scratch();
    std::os::unix::fs::symlink("..", dir.path().join("definitions/orders/loop")).unwrap();
    std::os::unix::fs::symlink("orders", dir.path().join("definitions/alias")).unwrap();
    let output = thesa_bff(dir.path(), &["validate"]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert!(
        stdout(&output).starts_with("validated 3 definitions"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn help_teaches_the_command() {
    let output = thesa_bff(&repo(), &["validate", "--help"]);
    assert_eq!(output.status.code(), Some(0));
    let help = stdout(&output);
    for needle in [
        "--definitions",
        "--specs",
        "--format",
        "--handler",
        "OPERATION_NOT_FOUND",
        "specs.sources",
    ] {
        assert!(help.contains(needle), "{needle} missing from:\n{help}");
    }
}

/// `../shared/thesa-corpus` beside the repository (never copied into it);
/// a clear failure when it is missing.
fn corpus() -> PathBuf {
    let dir = repo().join("../shared/thesa-corpus");
    assert!(
        dir.join("definitions").is_dir() && dir.join("specs").is_dir(),
        "the Thesa corpus is missing: this test reads {} (definitions/ and specs/ of a \
         deployment of the original Thesa); put it there to run it",
        dir.display()
    );
    dir
}

fn count(out: &str, code: &str) -> usize {
    out.lines()
        .filter(|l| l.contains(&format!("[{code}]")))
        .count()
}

#[test]
fn the_thesa_corpus_validates_and_the_lint_is_opt_in() {
    let corpus = corpus();
    let args = |extra: &[&str]| {
        let mut args = vec![
            "validate",
            "--definitions",
            "definitions",
            "--specs",
            "specs",
        ];
        args.extend_from_slice(extra);
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        thesa_bff(&corpus, &args)
    };
    let plain = run(args(&[]));
    let out = stdout(&plain);
    assert_eq!(plain.status.code(), Some(0), "{out}{}", stderr(&plain));
    assert!(
        out.contains(
            "validated 6 definitions against 12 specs (96 operations): 0 errors, 5 warnings"
        ),
        "{out}"
    );
    assert_eq!(count(&out, "CAPABILITY_NAMESPACE_MISMATCH"), 0);
    assert_eq!(
        count(&out, "UNKNOWN_FIELD"),
        0,
        "every key the corpus uses is read"
    );

    let linted = run(args(&["--lint"]));
    let out = stdout(&linted);
    assert_eq!(linted.status.code(), Some(0), "warnings only: {out}");
    assert_eq!(count(&out, "CAPABILITY_NAMESPACE_MISMATCH"), 77, "{out}");
    assert_eq!(count(&out, "UNQUOTED_LITERAL"), 1, "{out}");
    assert!(
        out.contains(
            "redirect.yaml:485:16: warning[UNQUOTED_LITERAL] commands[2].input.field_projection.state:"
        ),
        "{out}"
    );

    // The config switch does the same.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    fs::write(&config, "definitions:\n  lint: true\n").unwrap();
    let config = config.display().to_string();
    let switched = run(["--config", config.as_str()]
        .iter()
        .map(|s| s.to_string())
        .chain(args(&[]))
        .collect());
    assert_eq!(
        count(&stdout(&switched), "CAPABILITY_NAMESPACE_MISMATCH"),
        77,
        "{}{}",
        stdout(&switched),
        stderr(&switched)
    );
}
