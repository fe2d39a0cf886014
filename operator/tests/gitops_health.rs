//! What GitOps tools read from our statuses:
//! - the Argo CD health checks (deploy/argocd/thesa.io/*/health.lua) run in
//!   a real Lua interpreter over the fixtures of every phase listed in each
//!   `health_test.yaml` (Argo CD's own layout), and over statuses the
//!   controller's status functions produce;
//! - kstatus (what Flux and kpt read): its rules for custom resources,
//!   applied to those same statuses, agree with the Argo CD verdicts.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use k8s_openapi::api::apps::v1::Deployment;
use serde_json::{Value, json};
use thesa_operator::controller::{deployment_status_of, merged_definition_status};
use thesa_operator::crd::{
    DefinitionCounts, ThesaDefinition, ThesaDefinitionStatus, ThesaDeployment,
    ThesaDeploymentStatus,
};
use thesa_operator::gate::Verdict;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn checks_dir(kind: &str) -> PathBuf {
    root().join("deploy/argocd/thesa.io").join(kind)
}

/// The Lua interpreter: Debian's lua5.4 (scripts/test-deps.sh installs it).
fn lua() -> &'static str {
    for candidate in ["lua5.4", "lua5.3", "lua5.1", "lua"] {
        if Command::new(candidate)
            .arg("-v")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return candidate;
        }
    }
    panic!(
        "no Lua interpreter on PATH: run `bash scripts/test-deps.sh` (installs Debian's lua5.4)"
    );
}

/// A JSON value as a Lua table constructor (what Argo CD hands the script
/// as `obj`).
fn lua_literal(value: &Value) -> String {
    match value {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => {
            let mut out = String::from("\"");
            for c in s.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    c if (c as u32) < 0x20 => out.push_str(&format!("\\{}", c as u32)),
                    c => out.push(c),
                }
            }
            out.push('"');
            out
        }
        Value::Array(items) => format!(
            "{{{}}}",
            items.iter().map(lua_literal).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!(
                    "[{}] = {}",
                    lua_literal(&Value::String(k.clone())),
                    lua_literal(v)
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Runs `kind`'s health check over `obj`: (status, message).
fn health(kind: &str, obj: &Value) -> (String, String) {
    let script = std::fs::read_to_string(checks_dir(kind).join("health.lua")).expect("health.lua");
    let program = format!(
        "obj = {}\nlocal hs = (function()\n{script}\nend)()\nio.write(hs.status, \"\\n\", hs.message or \"\")\n",
        lua_literal(obj)
    );
    let mut child = Command::new(lua())
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start lua");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(program.as_bytes())
        .expect("write script");
    let output = child.wait_with_output().expect("run lua");
    assert!(
        output.status.success(),
        "{kind} health.lua failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("utf-8");
    let (status, message) = text.split_once('\n').unwrap_or((&text, ""));
    (status.to_string(), message.to_string())
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn run_fixtures(kind: &str) {
    let dir = checks_dir(kind);
    let tests = yaml(&dir.join("health_test.yaml"));
    let tests = tests["tests"].as_array().expect("tests: a list");
    let mut seen = std::collections::BTreeSet::new();
    for test in tests {
        let input = test["inputPath"].as_str().expect("inputPath");
        let want = &test["healthStatus"];
        let (status, message) = health(kind, &yaml(&dir.join(input)));
        assert_eq!(
            status,
            want["status"].as_str().unwrap(),
            "{kind} {input}: {message}"
        );
        if let Some(want) = want["message"].as_str() {
            assert_eq!(message, want, "{kind} {input}");
        }
        seen.insert(status);
    }
    for phase in ["Healthy", "Progressing", "Degraded", "Suspended"] {
        assert!(seen.contains(phase), "{kind}: no fixture is {phase}");
    }
}

#[test]
fn argocd_health_of_thesa_deployment_fixtures() {
    run_fixtures("ThesaDeployment");
}

#[test]
fn argocd_health_of_thesa_definition_fixtures() {
    run_fixtures("ThesaDefinition");
}

/// kstatus's rules for a custom resource (sigs.k8s.io/cli-utils
/// pkg/kstatus/status, generic checks), restated: a deletion timestamp is
/// Terminating; `status.observedGeneration` behind `metadata.generation` is
/// InProgress; `Reconciling=True` is InProgress; `Stalled=True` is Failed;
/// anything else is Current.
fn kstatus(obj: &Value) -> &'static str {
    if !obj["metadata"]["deletionTimestamp"].is_null() {
        return "Terminating";
    }
    let observed = &obj["status"]["observedGeneration"];
    if !observed.is_null() && observed != &obj["metadata"]["generation"] {
        return "InProgress";
    }
    let is_true = |type_: &str| {
        obj["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == type_ && c["status"] == "True")
    };
    if is_true("Reconciling") {
        "InProgress"
    } else if is_true("Stalled") {
        "Failed"
    } else {
        "Current"
    }
}

fn sample_tdep(generation: i64) -> ThesaDeployment {
    let mut value = yaml(&root().join("samples/thesadeployment.yaml"));
    value["metadata"]["generation"] = json!(generation);
    value["metadata"]["namespace"] = json!("shop");
    serde_json::from_value(value).expect("sample ThesaDeployment")
}

fn deployment(wanted: i32, updated: i32, ready: i32, failed: bool) -> Deployment {
    let mut conditions = vec![];
    if failed {
        conditions.push(json!({"type": "Progressing", "status": "False",
            "reason": "ProgressDeadlineExceeded", "message": "timed out"}));
    }
    serde_json::from_value(json!({
        "metadata": {"name": "thesa", "generation": 7},
        "spec": {"replicas": wanted, "selector": {}, "template": {}},
        "status": {"observedGeneration": 7, "replicas": updated.max(wanted),
            "updatedReplicas": updated, "readyReplicas": ready, "conditions": conditions}
    }))
    .expect("Deployment")
}

fn as_object(tdep: &ThesaDeployment, status: &ThesaDeploymentStatus) -> Value {
    let mut obj = serde_json::to_value(tdep).unwrap();
    obj["status"] = serde_json::to_value(status).unwrap();
    obj
}

/// The controller's ThesaDeployment statuses, judged by both readers.
#[test]
fn deployment_statuses_read_the_same_by_argocd_and_kstatus() {
    let counts = DefinitionCounts {
        accepted: 3,
        rejected: 0,
        checksum: None,
    };
    let tdep = sample_tdep(3);
    let old = ThesaDeploymentStatus::default();
    let cases = [
        (
            "rolled out",
            deployment(3, 3, 3, false),
            vec![],
            None,
            "Healthy",
            "Current",
        ),
        (
            "rolling out",
            deployment(3, 1, 2, false),
            vec![],
            None,
            "Progressing",
            "InProgress",
        ),
        (
            "invalid spec",
            deployment(3, 3, 3, false),
            vec!["spec.config.server.port: must be a number".to_string()],
            None,
            "Degraded",
            "Failed",
        ),
        (
            "apply failed",
            deployment(3, 3, 3, false),
            vec![],
            Some("forbidden"),
            "Degraded",
            "Failed",
        ),
        (
            "deadline passed",
            deployment(3, 1, 1, true),
            vec![],
            None,
            "Degraded",
            "Failed",
        ),
    ];
    for (name, live, problems, apply_error, argocd, flux) in cases {
        let status = deployment_status_of(
            &tdep,
            &old,
            Some(&live),
            &problems,
            apply_error,
            counts.clone(),
        );
        let obj = as_object(&tdep, &status);
        assert_eq!(health("ThesaDeployment", &obj).0, argocd, "{name}: {obj:#}");
        assert_eq!(kstatus(&obj), flux, "{name}: {obj:#}");
    }

    // A spec change the operator has not seen yet: both wait.
    let status = deployment_status_of(
        &tdep,
        &old,
        Some(&deployment(3, 3, 3, false)),
        &[],
        None,
        counts,
    );
    let newer = sample_tdep(4);
    let obj = as_object(&newer, &status);
    assert_eq!(health("ThesaDeployment", &obj).0, "Progressing");
    assert_eq!(kstatus(&obj), "InProgress");
}

/// The controller's ThesaDefinition statuses, judged by both readers.
#[test]
fn definition_statuses_read_the_same_by_argocd_and_kstatus() {
    let tdef: ThesaDefinition = serde_json::from_value(json!({
        "apiVersion": "thesa.io/v1alpha1", "kind": "ThesaDefinition",
        "metadata": {"name": "orders", "namespace": "shop", "generation": 2},
        "spec": {"document": {"domain": "orders"}}
    }))
    .unwrap();
    let verdict = |accepted, rollout_failed| Verdict {
        name: "shop/orders".into(),
        generation: Some(2),
        accepted,
        findings: vec![],
        checksum: None,
        kept_previous: true,
        rollout_failed,
    };
    for (accepted, rollout_failed, argocd, flux) in [
        (true, false, "Healthy", "Current"),
        (false, false, "Degraded", "Failed"),
        // Refused because its canary was rolled back.
        (false, true, "Degraded", "Failed"),
    ] {
        let status: ThesaDefinitionStatus = merged_definition_status(
            &ThesaDefinitionStatus::default(),
            "shop/thesa",
            &verdict(accepted, rollout_failed),
        );
        let mut obj = serde_json::to_value(&tdef).unwrap();
        obj["status"] = serde_json::to_value(&status).unwrap();
        assert_eq!(health("ThesaDefinition", &obj).0, argocd, "{obj:#}");
        assert_eq!(kstatus(&obj), flux, "{obj:#}");
    }
    // Not judged yet: Argo CD waits; kstatus (no observedGeneration, no
    // conditions) cannot tell and says Current, a limit of kstatus.
    let obj = serde_json::to_value(&tdef).unwrap();
    assert_eq!(health("ThesaDefinition", &obj).0, "Progressing");
    assert_eq!(kstatus(&obj), "Current");
}
