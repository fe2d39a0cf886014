//! Validation benchmark: (a) the samples, (b) 1,000 generated definitions
//! against 50 generated specs. Each run starts from YAML text, so parsing,
//! indexing, structural checks, set validation and checksums all count.
//!
//! Run with `make bench`, or on one core:
//! `taskset -c 0 cargo bench -p thesa-core --bench validate`.
//! Figures and the machine they came from are in BENCHMARKS.md.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

use thesa_core::finding::{self, Finding};
use thesa_core::openapi::{OperationIndex, SpecInput};
use thesa_core::validate::{self, LoadedDefinition};

const SPECS: usize = 50;
const DEFINITIONS: usize = 1000;
const RESOURCES: usize = 4;

/// What one full validation found and how long each phase took.
struct Outcome {
    errors: usize,
    warnings: usize,
    operations: usize,
    /// Index the specs, load the definitions, validate the set, checksums.
    phases: [Duration; 4],
}

/// One full validation from text.
fn validate_all(specs: &[SpecInput], definitions: &[(String, String)]) -> Outcome {
    let mut findings: Vec<Finding> = Vec::new();
    let t0 = Instant::now();
    let index = OperationIndex::build(specs.iter().cloned(), &mut findings);
    let t1 = Instant::now();
    let loaded: Vec<LoadedDefinition> = definitions
        .iter()
        .map(|(source, text)| LoadedDefinition::from_text(source.as_str(), text, &mut findings))
        .collect();
    let t2 = Instant::now();
    findings.extend(validate::validate(&loaded, &index, &BTreeSet::new()));
    let t3 = Instant::now();
    black_box(validate::set_checksum(&loaded));
    let t4 = Instant::now();
    let (errors, warnings) = finding::count(&findings);
    if errors > 0 {
        for f in findings.iter().take(5) {
            eprintln!("{f}");
        }
    }
    Outcome {
        errors,
        warnings,
        operations: index.operation_count(),
        phases: [t1 - t0, t2 - t1, t3 - t2, t4 - t3],
    }
}

fn measure(name: &str, runs: usize, specs: &[SpecInput], definitions: &[(String, String)]) {
    let bytes: usize = specs.iter().map(|s| s.text.len()).sum::<usize>()
        + definitions.iter().map(|(_, t)| t.len()).sum::<usize>();
    let first = validate_all(specs, definitions);
    assert_eq!(
        first.errors, 0,
        "{name}: the benchmark input must validate clean"
    );
    let mut outcomes: Vec<(Duration, Outcome)> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            let outcome = black_box(validate_all(specs, definitions));
            (start.elapsed(), outcome)
        })
        .collect();
    outcomes.sort_by_key(|(total, _)| *total);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let (median, median_run) = &outcomes[outcomes.len() / 2];
    let [index, load, validate, checksum] = median_run.phases.map(ms);
    println!(
        "{name}: {} definitions, {} specs ({} operations), {:.0} KiB of YAML, {} warnings\n  \
         {runs} runs: min {:.1} ms, median {:.1} ms, max {:.1} ms ({:.1} MiB/s at the median)\n  \
         median run: index specs {index:.1} ms, load definitions {load:.1} ms, \
         validate set {validate:.1} ms, checksums {checksum:.1} ms",
        definitions.len(),
        specs.len(),
        first.operations,
        bytes as f64 / 1024.0,
        first.warnings,
        ms(outcomes[0].0),
        ms(*median),
        ms(outcomes[outcomes.len() - 1].0),
        bytes as f64 / 1_048_576.0 / median.as_secs_f64(),
    );
}

fn main() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let read = |path: &str| std::fs::read_to_string(format!("{root}/{path}")).expect("sample file");
    let sample_specs: Vec<SpecInput> = ["orders-svc", "inventory-svc", "customers-svc"]
        .iter()
        .map(|id| SpecInput {
            service_id: id.to_string(),
            source: format!("specs/{id}.yaml"),
            text: read(&format!("specs/{id}.yaml")),
        })
        .collect();
    let sample_definitions: Vec<(String, String)> = ["orders", "inventory", "customers"]
        .iter()
        .map(|d| {
            let path = format!("definitions/{d}/definition.yaml");
            (path.clone(), read(&path))
        })
        .collect();
    measure("(a) samples", 200, &sample_specs, &sample_definitions);

    let specs: Vec<SpecInput> = (0..SPECS)
        .map(|s| SpecInput {
            service_id: format!("svc-{s}"),
            source: format!("specs/svc-{s}.yaml"),
            text: spec_text(s),
        })
        .collect();
    let definitions: Vec<(String, String)> = (0..DEFINITIONS)
        .map(|d| (format!("definitions/d{d}.yaml"), definition_text(d)))
        .collect();
    measure("(b) generated", 10, &specs, &definitions);
}

/// A spec with `RESOURCES` resources of five operations each.
fn spec_text(s: usize) -> String {
    let mut out = format!("openapi: 3.0.3\ninfo: {{title: Service {s}, version: 1.0.0}}\npaths:\n");
    for r in 0..RESOURCES {
        let _ = write!(
            out,
            r#"  /r{r}:
    get:
      operationId: list_s{s}_r{r}
      parameters:
        - {{name: offset, in: query, schema: {{type: integer}}}}
        - {{name: limit, in: query, schema: {{type: integer}}}}
      responses:
        '200':
          description: A page.
          content:
            application/json:
              schema:
                type: object
                properties:
                  data: {{type: array, items: {{$ref: '#/components/schemas/Item'}}}}
                  total: {{type: integer}}
    post:
      operationId: create_s{s}_r{r}
      requestBody:
        content:
          application/json:
            schema: {{$ref: '#/components/schemas/ItemInput'}}
      responses:
        '201':
          description: Created.
          content:
            application/json:
              schema: {{$ref: '#/components/schemas/Item'}}
  /r{r}/{{id}}:
    parameters:
      - {{name: id, in: path, required: true, schema: {{type: string}}}}
    get:
      operationId: get_s{s}_r{r}
      responses:
        '200':
          description: One item.
          content:
            application/json:
              schema: {{$ref: '#/components/schemas/Item'}}
    patch:
      operationId: update_s{s}_r{r}
      requestBody:
        content:
          application/json:
            schema: {{$ref: '#/components/schemas/ItemInput'}}
      responses:
        '200': {{description: Updated.}}
  /r{r}/{{id}}/archive:
    post:
      operationId: archive_s{s}_r{r}
      parameters:
        - {{name: id, in: path, required: true, schema: {{type: string}}}}
      requestBody:
        content:
          application/json:
            schema: {{type: object, properties: {{reason: {{type: string}}, by: {{type: string}}}}}}
      responses:
        '202': {{description: Archived.}}
"#
        );
    }
    out.push_str(
        r#"components:
  schemas:
    Item:
      type: object
      properties:
        id: {type: string}
        name: {type: string}
        status: {type: string, enum: [draft, active, archived]}
        owner: {type: string}
        amount: {type: number}
        created_at: {type: string, format: date-time}
        tags: {type: array, items: {type: string}}
    ItemInput:
      type: object
      properties:
        name: {type: string}
        status: {type: string}
        owner: {type: string}
        amount: {type: number}
"#,
    );
    out
}

/// A definition with navigation, a table page, a detail page, a form, three
/// commands, a workflow, a search and a lookup, using one spec's resource.
fn definition_text(d: usize) -> String {
    let s = d % SPECS;
    let r = (d / SPECS) % RESOURCES;
    let op = |verb: &str| format!("{verb}_s{s}_r{r}");
    let (list, get, create, update, archive) = (
        op("list"),
        op("get"),
        op("create"),
        op("update"),
        op("archive"),
    );
    format!(
        r#"domain: dom{d}
version: 1.0.{d}
navigation:
  label: Domain {d}
  icon: folder
  order: {d}
  capabilities: [dom{d}:view]
  children:
    - label: Items
      route: /d{d}/items
      page_id: d{d}.list
      capabilities: [dom{d}:view]
      badge: {{operation_id: {list}, service_id: svc-{s}, field: total, style: info}}
pages:
  - id: d{d}.list
    title: Items
    route: /d{d}/items
    layout: table
    capabilities: [dom{d}:view]
    refresh_interval: 1m
    table:
      data_source:
        operation_id: {list}
        service_id: svc-{s}
        mapping: {{items_path: data, total_path: total, field_map: {{title: name}}}}
      columns:
        - {{field: title, label: Title, type: link, sortable: true, link: {{route: '/d{d}/items/{{id}}', params: {{id: id}}}}}}
        - {{field: status, label: Status, type: badge, status_map: {{draft: info, active: success, archived: danger}}}}
        - {{field: owner, label: Owner, type: text}}
        - {{field: amount, label: Amount, type: currency, sortable: true}}
        - {{field: created_at, label: Created, type: datetime}}
      filters:
        - {{field: status, label: Status, type: select, operator: eq, options: {{lookup_id: d{d}.statuses}}}}
        - field: owner
          label: Owner
          type: select
          options: {{static: [{{label: Me, value: me}}, {{label: Anyone, value: any}}]}}
      row_actions:
        - {{id: edit, label: Edit, type: form, form_id: d{d}.edit, capabilities: [dom{d}:edit]}}
        - {{id: archive, label: Archive, type: workflow, workflow_id: d{d}.archive, capabilities: [dom{d}:archive]}}
      bulk_actions:
        - {{id: create, label: New, type: command, command_id: d{d}.create, capabilities: [dom{d}:create]}}
      page_size: 50
      sort_dir: desc
  - id: d{d}.detail
    title: Item
    route: /d{d}/items/{{id}}
    layout: detail
    capabilities: [dom{d}:view]
    sections:
      - id: main
        title: Main
        fields:
          - {{field: name, label: Name, type: text, read_only: dom{d}:edit}}
          - {{field: status, label: Status, type: select, lookup: {{lookup_id: d{d}.statuses}}}}
          - {{field: owner, label: Owner, type: text, read_only: true}}
          - {{field: amount, label: Amount, type: currency, validation: {{min: 0}}}}
    actions:
      - {{id: edit, label: Edit, type: form, form_id: d{d}.edit}}
      - {{id: back, label: Back, type: navigate, navigate_to: /d{d}/items}}
forms:
  - id: d{d}.edit
    title: Edit item
    capabilities: [dom{d}:edit]
    submit_command: d{d}.update
    load_source: {{operation_id: {get}, service_id: svc-{s}}}
    sections:
      - fields:
          - {{field: name, label: Name, type: text, required: true, validation: {{max_length: 80}}}}
          - {{field: status, label: Status, type: select, lookup: {{lookup_id: d{d}.statuses}}}}
          - {{field: amount, label: Amount, type: number}}
commands:
  - id: d{d}.create
    capabilities: [dom{d}:create]
    operation: {{type: openapi, operation_id: {create}, service_id: svc-{s}}}
    input:
      body_mapping: projection
      field_projection: {{name: input.name, status: input.status, owner: context.subject_id, amount: input.amount}}
    idempotency: {{key_source: header, ttl: 24h}}
  - id: d{d}.update
    capabilities: [dom{d}:edit]
    operation: {{type: openapi, operation_id: {update}, service_id: svc-{s}}}
    input:
      path_params: {{id: route.id}}
      body_mapping: projection
      field_projection: {{name: input.name, status: input.status, amount: input.amount}}
  - id: d{d}.archive
    capabilities: [dom{d}:archive]
    operation: {{type: openapi, operation_id: {archive}, service_id: svc-{s}}}
    input:
      path_params: {{id: input.id}}
      body_mapping: template
      body_template: {{reason: input.reason, by: context.subject_id}}
workflows:
  - id: d{d}.archive
    name: Archive
    capabilities: [dom{d}:archive]
    initial_step: request
    timeout: 72h
    steps:
      - {{id: request, type: human, form_id: d{d}.edit}}
      - {{id: review, type: approval, assignee: {{type: role, value: lead}}}}
      - id: apply
        type: system
        operation: {{operation_id: {archive}, service_id: svc-{s}}}
        input: {{path_params: {{id: workflow.item_id}}}}
      - {{id: notify, type: notification}}
      - {{id: done, type: terminal}}
      - {{id: rejected, type: terminal}}
    transitions:
      - {{from: request, to: review, event: submitted}}
      - {{from: review, to: apply, event: approved}}
      - {{from: review, to: rejected, event: rejected}}
      - {{from: apply, to: notify, event: completed}}
      - {{from: apply, to: review, event: error}}
      - {{from: notify, to: done, event: sent}}
searches:
  - id: d{d}.search
    capabilities: [dom{d}:view]
    operation: {{operation_id: {list}, service_id: svc-{s}}}
    result_mapping: {{items_path: data, title_field: name, route: '/d{d}/items/{{id}}', id_field: id}}
    weight: 0.5
lookups:
  - id: d{d}.statuses
    operation: {{operation_id: {list}, service_id: svc-{s}}}
    label_field: name
    value_field: id
    cache: {{ttl: 5m, scope: tenant}}
"#
    )
}
