//! Loading and validating arbitrary input never panics, and always ends in
//! a definition or in findings that say where the problem is.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use proptest::prelude::*;
use serde_json::{Map, Value};
use thesa_core::finding::{Finding, Severity};
use thesa_core::openapi::{OperationIndex, SpecInput};
use thesa_core::validate::{self, LoadedDefinition};

mod common;

use common::repo_file;

fn index() -> &'static OperationIndex {
    static INDEX: OnceLock<OperationIndex> = OnceLock::new();
    INDEX.get_or_init(|| {
        let specs = ["orders-svc", "inventory-svc", "customers-svc"].map(|id| SpecInput {
            service_id: id.to_string(),
            source: format!("specs/{id}.yaml"),
            text: repo_file(&format!("specs/{id}.yaml")),
        });
        let mut findings = Vec::new();
        let index = OperationIndex::build(specs, &mut findings);
        assert!(findings.is_empty(), "{findings:?}");
        index
    })
}

/// Loads and validates `text` alongside the orders sample; checks the
/// invariants every outcome must meet.
fn check(text: &str) -> Result<(), TestCaseError> {
    let mut findings: Vec<Finding> = Vec::new();
    let loaded = LoadedDefinition::from_text("input.yaml", text, &mut findings);
    let orders = LoadedDefinition::from_text(
        "orders.yaml",
        &repo_file("definitions/orders/definition.yaml"),
        &mut findings,
    );
    let load_errors = findings.iter().any(|f| f.severity == Severity::Error);
    prop_assert_eq!(loaded.definition.is_none(), load_errors, "{:?}", findings);
    findings.extend(validate::validate(
        &[loaded, orders],
        index(),
        &BTreeSet::new(),
    ));
    for finding in &findings {
        prop_assert!(!finding.message.is_empty());
        prop_assert_eq!(finding.severity, finding.code.severity());
        if finding.source == "input.yaml" {
            prop_assert!(finding.line.is_some_and(|l| l >= 1), "{}", finding);
            prop_assert!(finding.column.is_some_and(|c| c >= 1), "{}", finding);
        }
    }
    Ok(())
}

/// Keys of the definition format, so that generated documents reach deep
/// into the loader and the validator.
const KEYS: &[&str] = &[
    "domain",
    "version",
    "navigation",
    "label",
    "children",
    "route",
    "page_id",
    "badge",
    "operation_id",
    "service_id",
    "handler",
    "field",
    "pages",
    "id",
    "title",
    "layout",
    "table",
    "data_source",
    "mapping",
    "items_path",
    "columns",
    "filters",
    "options",
    "lookup_id",
    "static",
    "row_actions",
    "type",
    "command_id",
    "form_id",
    "workflow_id",
    "page_size",
    "sections",
    "fields",
    "read_only",
    "forms",
    "submit_command",
    "commands",
    "operation",
    "input",
    "path_params",
    "body_mapping",
    "field_projection",
    "workflows",
    "initial_step",
    "steps",
    "transitions",
    "from",
    "to",
    "event",
    "searches",
    "result_mapping",
    "lookups",
    "capabilities",
    "refresh_interval",
    "timeout",
    "cache",
    "ttl",
    "scope",
    "x",
];

const WORDS: &[&str] = &[
    "orders",
    "1.0.0",
    "table",
    "detail",
    "openapi",
    "sdk",
    "terminal",
    "human",
    "system",
    "listOrders",
    "getOrder",
    "cancelOrder",
    "orders-svc",
    "orders.list",
    "orders.detail",
    "orders.cancel",
    "orders:view",
    "projection",
    "template",
    "/orders/{id}",
    "5m",
    "-1",
    "",
];

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        prop::sample::select(WORDS).prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(6, 96, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..8).prop_map(|entries| {
                Value::Object(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

/// Documents that mostly have a valid header, so that many get past
/// loading into the set-level rules.
fn document() -> impl Strategy<Value = Value> {
    (value(), any::<bool>()).prop_map(|(mut doc, header)| {
        if let (Value::Object(map), true) = (&mut doc, header) {
            map.insert("domain".into(), Value::from("fuzz"));
            map.insert("version".into(), Value::from("1.0.0"));
        }
        doc
    })
}

#[test]
fn generated_documents_reach_the_validator() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    let strategy = document();
    let mut loaded = 0;
    for _ in 0..400 {
        let doc = strategy.new_tree(&mut runner).unwrap().current();
        let mut findings = Vec::new();
        let text = serde_json::to_string(&doc).unwrap();
        if LoadedDefinition::from_text("x.json", &text, &mut findings)
            .definition
            .is_some()
        {
            loaded += 1;
        }
    }
    assert!(
        loaded >= 40,
        "only {loaded} of 400 generated documents loaded"
    );
}

/// Block-style YAML of a JSON value, written with yaml-rust2's emitter.
fn to_yaml(value: &Value) -> String {
    use yaml_rust2::{Yaml, YamlEmitter, yaml::Hash};
    fn convert(value: &Value) -> Yaml {
        match value {
            Value::Null => Yaml::Null,
            Value::Bool(b) => Yaml::Boolean(*b),
            Value::Number(n) => n
                .as_i64()
                .map_or_else(|| Yaml::Real(n.to_string()), Yaml::Integer),
            Value::String(s) => Yaml::String(s.clone()),
            Value::Array(items) => Yaml::Array(items.iter().map(convert).collect()),
            Value::Object(map) => {
                let mut hash = Hash::new();
                for (k, v) in map {
                    hash.insert(Yaml::String(k.clone()), convert(v));
                }
                Yaml::Hash(hash)
            }
        }
    }
    let mut out = String::new();
    let mut emitter = YamlEmitter::new(&mut out);
    emitter.dump(&convert(value)).expect("emitting to a string");
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_text_never_panics(text in "(?s).{0,400}") {
        check(&text)?;
    }

    #[test]
    fn yaml_like_text_never_panics(text in "([ \\-:{}\\[\\],&*!|>'\"#a-z0-9\n]{0,300})") {
        check(&text)?;
    }

    #[test]
    fn arbitrary_documents_never_panic(doc in document(), block in any::<bool>()) {
        let text = if block { to_yaml(&doc) } else { serde_json::to_string_pretty(&doc).unwrap() };
        check(&text)?;
    }

    #[test]
    fn corrupted_samples_never_panic(
        sample in prop::sample::select(&["orders", "inventory", "customers"][..]),
        start in 0usize..20_000,
        len in 0usize..40,
        insert in "[ :\\-\\[\\]{}a-z\n]{0,8}",
    ) {
        let text = repo_file(&format!("definitions/{sample}/definition.yaml"));
        let start = start % text.len();
        let end = (start + len).min(text.len());
        if text.is_char_boundary(start) && text.is_char_boundary(end) {
            let corrupted = format!("{}{}{}", &text[..start], insert, &text[end..]);
            check(&corrupted)?;
        }
    }
}
