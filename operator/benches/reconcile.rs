//! Plan (validate + build) of one ThesaDeployment selecting N definitions:
//! the CPU a reconcile spends outside API calls, and what `render` does.
//! `cargo bench -p thesa-operator --bench reconcile` (figures in
//! BENCHMARKS.md). Definitions are copies of the orders sample with their
//! own domain, IDs and routes.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;
use thesa_operator::crd::ThesaDeployment;
use thesa_operator::plan::{self, DefinitionInput, Plan, Snapshot};

fn repo_file(path: &str) -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::read_to_string(root.join(path)).expect(path)
}

fn definitions(count: usize) -> Vec<(String, Value)> {
    let orders = repo_file("definitions/orders/definition.yaml");
    (0..count)
        .map(|i| {
            let text = orders
                .replace("domain: orders", &format!("domain: orders{i}"))
                .replace("orders.", &format!("orders{i}."))
                .replace("/orders", &format!("/orders{i}"))
                .replace("order_returns", &format!("order_returns{i}"));
            let value = thesa_core::node::parse(&text).expect("parse").to_json();
            (format!("bench/orders{i}"), value)
        })
        .collect()
}

fn deployment() -> ThesaDeployment {
    let node = thesa_core::node::parse(&repo_file("samples/thesadeployment.yaml")).expect("parse");
    let mut tdep: ThesaDeployment = serde_json::from_value(node.to_json()).expect("tdep");
    tdep.metadata.namespace = Some("bench".into());
    for spec in &mut tdep.spec.specs {
        spec.config_map_key_ref = None;
        spec.inline = Some(repo_file(&format!("specs/{}.yaml", spec.service_id)));
    }
    tdep
}

fn run(tdep: &ThesaDeployment, defs: &[(String, Value)]) -> (usize, usize) {
    let snapshot = Snapshot {
        deployment: tdep,
        definitions: defs
            .iter()
            .map(|(name, spec)| DefinitionInput {
                name: name.clone(),
                source: name.clone(),
                generation: Some(1),
                spec: spec.clone(),
                node: None,
            })
            .collect(),
        specs: tdep
            .spec
            .specs
            .iter()
            .map(|s| (s.service_id.clone(), s.inline.clone().unwrap_or_default()))
            .collect(),
        previous: Vec::new(),
        secret_versions: Vec::new(),
        handlers: BTreeSet::new(),
    };
    match plan::plan(snapshot) {
        Plan::Ready { outcome, children } => {
            let accepted = outcome.verdicts.iter().filter(|v| v.accepted).count();
            (accepted, children.all().count())
        }
        Plan::Blocked(problems) => panic!("blocked: {problems:?}"),
    }
}

fn main() {
    let tdep = deployment();
    for count in [3, 200] {
        let defs = definitions(count);
        let (accepted, objects) = run(&tdep, &defs);
        assert_eq!(accepted, count, "every generated definition is valid");
        let mut times: Vec<Duration> = (0..7)
            .map(|_| {
                let start = Instant::now();
                std::hint::black_box(run(&tdep, &defs));
                start.elapsed()
            })
            .collect();
        times.sort();
        println!(
            "plan of 1 ThesaDeployment with {count} definitions ({objects} objects): median {:.1} ms (min {:.1}, max {:.1})",
            times[3].as_secs_f64() * 1e3,
            times[0].as_secs_f64() * 1e3,
            times[6].as_secs_f64() * 1e3,
        );
    }
}
