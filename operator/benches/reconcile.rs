//! The CPU and memory a reconcile spends outside API calls, through the
//! controller's own code: the definitions store the watch fills, the
//! selected definitions' revisions (prepared once per uid and generation),
//! the plan (validate + build) and the children.
//! `cargo bench -p thesa-operator --bench reconcile` (figures in
//! BENCHMARKS.md). Definitions are copies of the orders sample with their
//! own domain, IDs and routes.
//!
//! Each scenario runs in a process of its own (this binary, started again
//! with `THESA_BENCH_SCENARIO`), so that its peak RSS is its own.

#[path = "common/memory.rs"]
mod memory;

use std::collections::BTreeSet;
use std::time::Duration;

use kube::runtime::reflector::store::Writer;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use serde_json::{Value, json};
use thesa_operator::controller::DEFINITIONS_PAGE_SIZE;
use thesa_operator::controller::definition_inputs;
use thesa_operator::crd::{ThesaDefinition, ThesaDeployment};
use thesa_operator::gate::ServedFile;
use thesa_operator::plan::{self, Plan, Plans, Snapshot};
use thesa_operator::revision::{CachedDefinition, Revisions, cached_event};

/// The operator's allocator (see `operator/src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn repo_file(path: &str) -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::read_to_string(root.join(path)).expect(path)
}

/// The orders sample as copy `i`: its own domain, IDs and routes.
fn orders_copy(orders: &str, i: usize) -> Value {
    let text = orders
        .replace("domain: orders", &format!("domain: orders{i}"))
        .replace("orders.", &format!("orders{i}."))
        .replace("/orders", &format!("/orders{i}"))
        .replace("order_returns", &format!("order_returns{i}"));
    thesa_core::node::parse(&text).expect("parse").to_json()
}

/// What server-side apply records for a spec: every field, as `f:` keys.
fn fields_v1(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (format!("f:{k}"), fields_v1(v)))
                .collect(),
        ),
        _ => json!({}),
    }
}

/// ThesaDefinition `i` as the watch delivers it: JSON from the API server
/// (with the managed fields an apply leaves), deserialized.
fn definition(orders: &str, i: usize, generation: i64) -> ThesaDefinition {
    let spec = orders_copy(orders, i);
    let text = json!({
        "apiVersion": "thesa.io/v1alpha1",
        "kind": "ThesaDefinition",
        "metadata": {
            "name": format!("orders{i}"),
            "namespace": "bench",
            "uid": format!("00000000-0000-0000-0000-{i:012}"),
            "generation": generation,
            "resourceVersion": format!("{}", 1000 + i),
            "labels": {"thesa.io/deployment": "thesa"},
            "managedFields": [{
                "manager": "kubectl", "operation": "Apply", "apiVersion": "thesa.io/v1alpha1",
                "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": fields_v1(&spec)},
            }],
        },
        "spec": spec,
    })
    .to_string();
    serde_json::from_str(&text).expect("ThesaDefinition")
}

fn deployment() -> ThesaDeployment {
    let node = thesa_core::node::parse(&repo_file("samples/thesadeployment.yaml")).expect("parse");
    let mut tdep: ThesaDeployment = serde_json::from_value(node.to_json()).expect("tdep");
    tdep.metadata.namespace = Some("bench".into());
    tdep.spec.definitions.selector = None;
    for spec in &mut tdep.spec.specs {
        spec.config_map_key_ref = None;
        spec.inline = Some(repo_file(&format!("specs/{}.yaml", spec.service_id)));
    }
    tdep
}

/// The definitions store as the controller's watch fills it: listed in
/// pages of [`DEFINITIONS_PAGE_SIZE`], each ThesaDefinition kept as
/// metadata, status and its prepared revision.
fn store(
    count: usize,
    revisions: &Revisions,
) -> (Store<CachedDefinition>, Writer<CachedDefinition>) {
    let orders = repo_file("definitions/orders/definition.yaml");
    let (store, mut writer) = reflector::store();
    writer.apply_watcher_event(&watcher::Event::Init);
    let page = DEFINITIONS_PAGE_SIZE as usize;
    for start in (0..count).step_by(page) {
        let listed: Vec<ThesaDefinition> = (start..count.min(start + page))
            .map(|i| definition(&orders, i, 1))
            .collect();
        for tdef in listed {
            let event = cached_event(watcher::Event::InitApply(tdef), revisions);
            writer.apply_watcher_event(&event);
        }
    }
    writer.apply_watcher_event(&watcher::Event::InitDone);
    (store, writer)
}

/// One reconcile's plan: the store's definitions (sorted as the controller
/// sorts them), validated and built. Returns the accepted count, the
/// number of children and the served files.
fn reconcile(
    tdep: &ThesaDeployment,
    store: &Store<CachedDefinition>,
    plans: &Plans,
    previous: Vec<ServedFile>,
) -> (usize, usize, Vec<ServedFile>) {
    let mut selected = store.state();
    selected.sort_by_key(|d| plan::full_name(d.as_ref()));
    let snapshot = Snapshot {
        deployment: tdep,
        definitions: definition_inputs(&selected),
        specs: tdep
            .spec
            .specs
            .iter()
            .map(|s| (s.service_id.clone(), s.inline.clone().unwrap_or_default()))
            .collect(),
        previous,
        previous_versions: String::new(),
        secret_versions: Vec::new(),
        handlers: BTreeSet::new(),
        rollout_failed: Default::default(),
    };
    match plans.plan(snapshot).as_ref() {
        Plan::Ready { outcome, children } => {
            let accepted = outcome.verdicts.iter().filter(|v| v.accepted).count();
            (accepted, children.len(), outcome.served.clone())
        }
        Plan::Blocked(problems) => panic!("blocked: {problems:?}"),
    }
}

/// CPU time this thread has run (wall time on this shared machine varies
/// with its neighbours; CPU time much less).
fn cpu_time() -> Duration {
    cpu_time::ThreadTime::now().as_duration()
}

/// Median, min and max CPU time of `runs` runs of `f`, in ms.
fn timed(runs: usize, mut f: impl FnMut()) -> (f64, f64, f64) {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = cpu_time();
            f();
            cpu_time() - start
        })
        .collect();
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (ms(times[runs / 2]), ms(times[0]), ms(times[runs - 1]))
}

/// A controller's first reconcile (or `render`): every revision prepared
/// as the watch delivers the definitions, then the plan.
fn cold(count: usize) {
    let tdep = deployment();
    let orders = repo_file("definitions/orders/definition.yaml");
    let delivered: Vec<ThesaDefinition> = (0..count).map(|i| definition(&orders, i, 1)).collect();
    let first = || {
        let revisions = Revisions::default();
        let (store, mut writer) = reflector::store();
        writer.apply_watcher_event(&watcher::Event::Init);
        for tdef in delivered.clone() {
            writer.apply_watcher_event(&cached_event(watcher::Event::InitApply(tdef), &revisions));
        }
        writer.apply_watcher_event(&watcher::Event::InitDone);
        reconcile(&tdep, &store, &Plans::default(), Vec::new())
    };
    let (accepted, objects, _) = first();
    assert_eq!(accepted, count, "every generated definition is valid");
    let (median, min, max) = timed(7, || {
        std::hint::black_box(first());
    });
    println!(
        "first reconcile, {count} definitions ({objects} objects): CPU median {median:.1} ms (min {min:.1}, max {max:.1})"
    );
}

/// Steady state: the store filled, `changed` definitions delivered at a
/// new generation before each reconcile, what is served now as `previous`.
fn warm(count: usize, changed: usize) {
    let tdep = deployment();
    let revisions = Revisions::default();
    let plans = Plans::default();
    let (store, mut writer) = store(count, &revisions);
    let (_, in_store) = memory::rss("self");
    let (_, _, served) = reconcile(&tdep, &store, &plans, Vec::new());
    let (_, after_first) = memory::rss("self");
    let orders = repo_file("definitions/orders/definition.yaml");
    let mut generation = 1;
    let (median, min, max) = timed(7, || {
        generation += 1;
        for i in 0..changed {
            let event = watcher::Event::Apply(definition(&orders, i, generation));
            writer.apply_watcher_event(&cached_event(event, &revisions));
        }
        let (accepted, _, _) = reconcile(&tdep, &store, &plans, served.clone());
        assert_eq!(accepted, count);
        // As the controller does after each reconcile's dereference.
        let current = store
            .state()
            .iter()
            .filter_map(|d| Some((d.metadata.uid.clone()?, d.metadata.generation?)))
            .collect();
        revisions.retain(&current);
    });
    let what = match changed {
        0 => "unchanged re-reconcile".to_string(),
        n => format!("reconcile after {n} changed"),
    };
    let (peak, now) = memory::rss("self");
    println!(
        "{what}, {count} definitions: CPU median {median:.1} ms (min {min:.1}, max {max:.1}); peak RSS {peak:.0} MiB, now {now:.0} MiB (store filled {in_store:.0}, after the first reconcile {after_first:.0})"
    );
}

fn main() {
    if let Ok(scenario) = std::env::var("THESA_BENCH_SCENARIO") {
        let args: Vec<usize> = scenario
            .split(',')
            .skip(1)
            .map(|n| n.parse().expect("number"))
            .collect();
        match scenario.split(',').next() {
            Some("cold") => cold(args[0]),
            Some("warm") => warm(args[0], args[1]),

            _ => panic!("unknown scenario {scenario}"),
        }
        return;
    }
    let exe = std::env::current_exe().expect("this benchmark");
    for scenario in [
        "cold,3",
        "cold,200",
        "warm,200,1",
        "warm,1000,1",
        "warm,1000,0",
    ] {
        // As the chart and the image run the operator.
        let status = std::process::Command::new(&exe)
            .env("MIMALLOC_ARENA_EAGER_COMMIT", "0")
            .env("THESA_BENCH_SCENARIO", scenario)
            .status()
            .expect("run a scenario");
        assert!(status.success(), "scenario {scenario} failed");
    }
}
