//! The samples in `definitions/`, `specs/` and `config/` validate clean, use
//! every kind of element, and have checksums that are stable under file
//! order and change with content.

use std::collections::BTreeSet;

use thesa_core::config::{Config, Policies};
use thesa_core::model::{BodyMapping, Definition, Layout, StepType};
use thesa_core::openapi::{OperationIndex, SpecInput};
use thesa_core::validate::{self, LoadedDefinition};

const DOMAINS: [&str; 3] = ["orders", "inventory", "customers"];

mod common;

use common::repo_file;

fn config(name: &str) -> Config {
    let mut findings = Vec::new();
    let config = Config::from_text(name, &repo_file(&format!("config/{name}")), &mut findings);
    assert!(findings.is_empty(), "{findings:#?}");
    config.expect("config loads")
}

fn index() -> OperationIndex {
    let config = config("config.yaml");
    let specs = config.specs.sources.iter().map(|s| SpecInput {
        service_id: s.service_id.clone(),
        source: format!("specs/{}", s.spec_file),
        text: repo_file(&format!("specs/{}", s.spec_file)),
    });
    let mut findings = Vec::new();
    let index = OperationIndex::build(specs, &mut findings);
    assert!(findings.is_empty(), "{findings:#?}");
    index
}

fn load(domains: &[&str]) -> Vec<LoadedDefinition> {
    let mut findings = Vec::new();
    let loaded = domains
        .iter()
        .map(|d| {
            let path = format!("definitions/{d}/definition.yaml");
            LoadedDefinition::from_text(path.clone(), &repo_file(&path), &mut findings)
        })
        .collect();
    assert!(findings.is_empty(), "{findings:#?}");
    loaded
}

#[test]
fn samples_validate_clean() {
    let index = index();
    let definitions = load(&DOMAINS);
    let findings = validate::validate(&definitions, &index, &BTreeSet::new());
    assert!(findings.is_empty(), "{findings:#?}");
    assert_eq!(index.services().count(), 3);
}

#[test]
fn both_configs_and_the_policies_load() {
    let dev = config("config.yaml");
    let prod = config("config.production.yaml");
    assert_eq!(dev.specs.sources, prod.specs.sources);
    assert!(prod.server.shutdown_timeout.get().as_secs() < 45);
    let mut findings = Vec::new();
    let policies = Policies::from_text(
        "policies.yaml",
        &repo_file("config/policies.yaml"),
        &mut findings,
    )
    .unwrap();
    assert!(findings.is_empty(), "{findings:#?}");
    // Every capability the samples require is granted by some role other
    // than the catch-all admin.
    let roles: Vec<&str> = policies
        .roles
        .keys()
        .map(String::as_str)
        .filter(|r| *r != "admin")
        .collect();
    for loaded in load(&DOMAINS) {
        let text = serde_json::to_string(loaded.definition.as_ref().unwrap()).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        for capability in capabilities(&value) {
            assert!(
                policies.grants(&roles, &capability),
                "no role grants {capability}"
            );
        }
    }
}

fn capabilities(value: &serde_json::Value) -> Vec<String> {
    let mut found = Vec::new();
    match value {
        serde_json::Value::Object(map) => {
            for (key, child) in map {
                match (key.as_str(), child) {
                    ("capabilities", serde_json::Value::Array(items)) => {
                        found.extend(items.iter().filter_map(|c| c.as_str().map(String::from)));
                    }
                    _ => found.extend(capabilities(child)),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| found.extend(capabilities(i))),
        _ => {}
    }
    found
}

#[test]
fn samples_use_every_kind_of_element() {
    let loaded = load(&DOMAINS);
    let defs: Vec<&Definition> = loaded
        .iter()
        .map(|d| d.definition.as_ref().unwrap())
        .collect();
    let pages = || defs.iter().flat_map(|d| &d.pages);
    assert!(
        defs.iter()
            .filter_map(|d| d.navigation.as_ref())
            .flat_map(|n| &n.children)
            .any(|c| c.badge.is_some())
    );
    for layout in [Layout::Table, Layout::Detail] {
        assert!(pages().any(|p| p.layout == layout), "{layout:?}");
    }
    assert!(defs.iter().any(|d| !d.forms.is_empty()));
    let mappings: BTreeSet<String> = defs
        .iter()
        .flat_map(|d| &d.commands)
        .map(|c| {
            format!(
                "{:?}",
                c.input
                    .as_ref()
                    .and_then(|i| i.body_mapping)
                    .unwrap_or_default()
            )
        })
        .collect();
    for mapping in [
        BodyMapping::Passthrough,
        BodyMapping::Projection,
        BodyMapping::Template,
    ] {
        assert!(mappings.contains(&format!("{mapping:?}")), "{mapping:?}");
    }
    let workflow = defs
        .iter()
        .flat_map(|d| &d.workflows)
        .next()
        .expect("a workflow");
    for kind in [
        StepType::Human,
        StepType::System,
        StepType::Notification,
        StepType::Terminal,
    ] {
        assert!(workflow.steps.iter().any(|s| s.kind == kind), "{kind:?}");
    }
    assert!(defs.iter().all(|d| !d.searches.is_empty()));
    assert!(defs.iter().all(|d| !d.lookups.is_empty()));
}

#[test]
fn set_checksum_ignores_file_order_and_follows_content() {
    let forward = validate::set_checksum(&load(&DOMAINS));
    let backward = validate::set_checksum(&load(&["customers", "inventory", "orders"]));
    assert_eq!(forward, backward);

    let mut findings = Vec::new();
    let text = repo_file("definitions/orders/definition.yaml");
    let reformatted =
        text.replace("refresh_interval: 60", "refresh_interval: 1m") + "\n# a comment\n";
    let same = LoadedDefinition::from_text("o.yaml", &reformatted, &mut findings);
    let original = LoadedDefinition::from_text("o.yaml", &text, &mut findings);
    assert_eq!(
        same.checksum(),
        original.checksum(),
        "formatting and duration spelling do not count"
    );

    let changed = LoadedDefinition::from_text(
        "o.yaml",
        &text.replace("title: Orders", "title: All orders"),
        &mut findings,
    );
    assert_ne!(changed.checksum(), original.checksum());
    let mut with_change = load(&["inventory", "customers"]);
    with_change.push(changed);
    assert_ne!(validate::set_checksum(&with_change), forward);
    assert!(findings.is_empty());
}
