//! `crds/` holds exactly what `thesa-operator crds` prints, and the
//! schemas are structural (what the API server requires of a CRD).

use serde_json::Value;
use thesa_operator::manifest;

fn crds_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds")
}

#[test]
fn crds_directory_matches_the_generator() {
    let mut expected_files = Vec::new();
    for (file, crd) in manifest::crds() {
        expected_files.push(file.to_string());
        let generated = manifest::to_yaml(&crd).expect("yaml");
        let on_disk = std::fs::read_to_string(crds_dir().join(file)).unwrap_or_default();
        assert!(
            generated == on_disk,
            "crds/{file} is out of date: run `cargo run -p thesa-operator -- crds --dir crds`"
        );
    }
    let mut files: Vec<String> = std::fs::read_dir(crds_dir())
        .expect("crds/")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    files.sort();
    expected_files.sort();
    assert_eq!(
        files, expected_files,
        "crds/ holds a file the generator does not write"
    );
}

#[test]
fn the_crd_reference_is_current_and_documents_every_field() {
    let path = crds_dir().join("../docs/crd-reference.md");
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    let generated = manifest::reference();
    assert!(
        generated == on_disk,
        "docs/crd-reference.md is out of date: run `make crds`"
    );
    assert!(generated.contains("## ThesaDefinition") && generated.contains("## ThesaDeployment"));
    for field in [
        "| `spec.domain` | string |",
        "| `spec.definitions.hotReload` | boolean |",
        "| `status.conditions` | []object |",
    ] {
        assert!(generated.contains(field), "{field} missing");
    }
    let undocumented: Vec<&str> = generated
        .lines()
        .filter(|l| l.starts_with("| `") && l.ends_with("|  |"))
        .collect();
    assert!(
        undocumented.len() * 10 < generated.lines().count(),
        "most fields need a doc comment; undocumented: {undocumented:#?}"
    );
}

/// The rules of a structural schema that derived schemas can break.
fn structural_problems(schema: &Value, path: &str, problems: &mut Vec<String>) {
    let Some(node) = schema.as_object() else {
        return;
    };
    let int_or_string = node.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    let preserve = node.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    if !node.contains_key("type") && !int_or_string && !preserve {
        problems.push(format!("{path}: no type"));
    }
    for banned in [
        "$ref",
        "definitions",
        "$defs",
        "oneOf",
        "allOf",
        "not",
        "default",
    ] {
        if node.contains_key(banned) {
            problems.push(format!("{path}: uses {banned}"));
        }
    }
    if node.contains_key("properties") && node.contains_key("additionalProperties") {
        problems.push(format!(
            "{path}: properties and additionalProperties together"
        ));
    }
    if let Some(any_of) = node.get("anyOf") {
        let canonical = serde_json::json!([{ "type": "integer" }, { "type": "string" }]);
        if !int_or_string || any_of != &canonical {
            problems.push(format!("{path}: anyOf other than the int-or-string form"));
        }
    }
    if let Some(Value::Object(properties)) = node.get("properties") {
        for (key, child) in properties {
            structural_problems(child, &format!("{path}.{key}"), problems);
        }
    }
    if let Some(items) = node.get("items") {
        structural_problems(items, &format!("{path}[]"), problems);
    }
    if let Some(additional @ Value::Object(_)) = node.get("additionalProperties") {
        structural_problems(additional, &format!("{path}{{}}"), problems);
    }
}

#[test]
fn schemas_are_structural() {
    for (file, crd) in manifest::crds() {
        let value = serde_json::to_value(&crd).expect("json");
        let schema = &value["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        let mut problems = Vec::new();
        structural_problems(schema, file, &mut problems);
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
}

#[test]
fn the_checker_catches_what_the_api_server_refuses() {
    let mut problems = Vec::new();
    let broken = serde_json::json!({
        "type": "object",
        "properties": {
            "a": { "description": "untyped" },
            "b": { "type": "string", "default": "x" },
            "c": { "anyOf": [{ "type": "integer", "minimum": 0 }, { "type": "string" }], "x-kubernetes-int-or-string": true },
        }
    });
    structural_problems(&broken, "t", &mut problems);
    assert_eq!(problems.len(), 3, "{problems:?}");
}

#[test]
fn crds_carry_names_columns_and_subresources() {
    let crds = manifest::crds();
    let value = |i: usize| serde_json::to_value(&crds[i].1).expect("json");
    let tdef = value(0);
    let tdep = value(1);
    assert_eq!(tdef["spec"]["names"]["shortNames"][0], "tdef");
    assert_eq!(tdep["spec"]["names"]["shortNames"][0], "tdep");
    for crd in [&tdef, &tdep] {
        assert_eq!(crd["spec"]["group"], "thesa.io");
        assert_eq!(crd["spec"]["names"]["categories"][0], "thesa");
        assert_eq!(crd["spec"]["versions"][0]["name"], "v1alpha1");
        assert!(crd["spec"]["versions"][0]["subresources"]["status"].is_object());
    }
    let columns = |crd: &Value| -> Vec<String> {
        crd["spec"]["versions"][0]["additionalPrinterColumns"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| c["name"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(columns(&tdef), ["Domain", "Version", "Accepted", "Age"]);
    assert_eq!(
        columns(&tdep),
        ["Ready", "Replicas", "Definitions", "Rollout", "Age"]
    );
    let scale = &tdep["spec"]["versions"][0]["subresources"]["scale"];
    assert_eq!(scale["specReplicasPath"], ".spec.replicas");
    assert_eq!(scale["labelSelectorPath"], ".status.selector");
    let text = serde_json::to_string(&tdep).expect("json");
    assert!(
        text.contains("self.minReplicas <= self.maxReplicas"),
        "CEL rule for the replica range"
    );
    assert!(text.contains("has(self.configMapKeyRef) != has(self.inline)"));
    for rule in [
        "steps and analysis apply to strategy canary only",
        "each step needs its own weight",
        "type prometheus needs the prometheus settings",
    ] {
        assert!(text.contains(rule), "CEL rule of spec.rollout: {rule}");
    }
    let rollout = &tdep["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        ["rollout"];
    assert_eq!(
        rollout["properties"]["strategy"]["enum"],
        serde_json::json!(["immediate", "canary"])
    );
    let weight = &rollout["properties"]["steps"]["items"]["properties"]["weight"];
    assert_eq!(
        (weight["minimum"].as_f64(), weight["maximum"].as_f64()),
        (Some(1.0), Some(100.0))
    );
    let schema = &tdep["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    assert!(
        schema["description"]
            .as_str()
            .unwrap_or_default()
            .contains("Thesa BFF deployment")
    );
    assert_eq!(
        schema["properties"]["specs"]["x-kubernetes-list-type"],
        "map"
    );
}
