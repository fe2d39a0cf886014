//! Every validation rule, shown by a broken variant of a small valid
//! definition: the finding's code, path, and line and column.

use std::collections::{BTreeSet, HashSet};

use thesa_core::finding::{Code, Finding, Severity};
use thesa_core::openapi::{OperationIndex, SpecInput};
use thesa_core::validate::{self, LoadedDefinition};

mod common;
use common::{Case, check_cases};

const SPEC: &str = r##"openapi: 3.0.3
info: {title: Shop, version: 1.0.0}
paths:
  /orders:
    get:
      operationId: listOrders
      responses:
        '200':
          description: ok
          content:
            application/json:
              schema:
                type: object
                properties:
                  data: {type: array, items: {type: object}}
                  total: {type: integer}
  /orders/{orderId}/cancel:
    post:
      operationId: cancelOrder
      parameters: [{name: orderId, in: path, required: true, schema: {type: string}}]
      requestBody:
        content:
          application/json:
            schema: {type: object, properties: {reason: {type: string}}}
      responses: {'200': {description: ok}}
  /statuses:
    get:
      operationId: listStatuses
      responses: {'200': {description: ok}}
"##;

const BASE: &str = r#"domain: shop
version: 1.0.0
navigation:
  label: Shop
  capabilities: [shop:view]
  children:
    - label: Orders
      route: /orders
      page_id: shop.orders
      badge: {operation_id: listOrders, field: total}
pages:
  - id: shop.orders
    title: Orders
    route: /orders
    layout: table
    capabilities: [shop:view]
    table:
      data_source:
        operation_id: listOrders
        mapping: {items_path: data}
      columns:
        - {field: id, label: ID}
      filters:
        - field: status
          options: {lookup_id: shop.statuses}
      page_size: 25
      row_actions:
        - {id: cancel, label: Cancel, type: command, command_id: shop.cancel}
        - {id: edit, label: Edit, type: form, form_id: shop.edit}
        - {id: refund, label: Refund, type: workflow, workflow_id: shop.refund}
forms:
  - id: shop.edit
    title: Edit
    submit_command: shop.cancel
    sections:
      - fields:
          - {field: reason, label: Reason}
commands:
  - id: shop.cancel
    capabilities: [shop:cancel]
    operation: {type: openapi, operation_id: cancelOrder, service_id: shop-svc}
    input:
      path_params: {orderId: route.id}
      body_mapping: projection
      field_projection: {reason: input.reason}
workflows:
  - id: shop.refund
    name: Refund
    initial_step: review
    steps:
      - {id: review, type: human, form_id: shop.edit}
      - {id: pay, type: system, operation: {operation_id: cancelOrder}, input: {path_params: {orderId: workflow.order_id}}}
      - {id: done, type: terminal}
    transitions:
      - {from: review, to: pay, event: approved}
      - {from: pay, to: done, event: completed}
searches:
  - id: shop.search
    operation: {operation_id: listOrders}
    result_mapping: {items_path: data, title_field: id, route: '/orders/{id}', id_field: id}
lookups:
  - id: shop.statuses
    operation: {operation_id: listStatuses}
    label_field: label
    value_field: code
"#;

fn spec(service_id: &str, text: &str) -> SpecInput {
    SpecInput {
        service_id: service_id.to_string(),
        source: format!("specs/{service_id}.yaml"),
        text: text.to_string(),
    }
}

fn run(definitions: &[(&str, &str)], specs: Vec<SpecInput>, handlers: &[&str]) -> Vec<Finding> {
    let mut findings = Vec::new();
    let index = OperationIndex::build(specs, &mut findings);
    let loaded: Vec<LoadedDefinition> = definitions
        .iter()
        .map(|(source, text)| LoadedDefinition::from_text(*source, text, &mut findings))
        .collect();
    let handlers: BTreeSet<String> = handlers.iter().map(|h| h.to_string()).collect();
    findings.extend(validate::validate(&loaded, &index, &handlers));
    findings
}

fn run_one(text: &str) -> Vec<Finding> {
    run(&[("shop.yaml", text)], vec![spec("shop-svc", SPEC)], &[])
}

fn edit(from: &str, to: &str) -> String {
    assert_eq!(
        BASE.matches(from).count(),
        1,
        "{from:?} is not unique in BASE"
    );
    BASE.replacen(from, to, 1)
}

#[test]
fn the_base_definition_is_clean() {
    let findings = run_one(BASE);
    assert!(findings.is_empty(), "{findings:#?}");
}

const CASES: &[Case] = &[
    // Rule 1: required fields, types, enums, ranges, formats.
    Case {
        from: "    title: Orders\n",
        to: "",
        code: Code::MissingField,
        path: "pages[0].title",
        at: "id: shop.orders\n    route",
    },
    Case {
        from: "[shop:view]\n  children",
        to: "shop:view\n  children",
        code: Code::InvalidType,
        path: "navigation.capabilities",
        at: "shop:view\n  children",
    },
    Case {
        from: "layout: table",
        to: "layout: grid",
        code: Code::InvalidEnum,
        path: "pages[0].layout",
        at: "grid",
    },
    Case {
        from: "page_size: 25",
        to: "page_size: 500",
        code: Code::OutOfRange,
        path: "pages[0].table.page_size",
        at: "500",
    },
    Case {
        from: "version: 1.0.0",
        to: "version: ''",
        code: Code::MissingField,
        path: "version",
        at: "''",
    },
    Case {
        from: "domain: shop",
        to: "domain: Shop",
        code: Code::InvalidFormat,
        path: "domain",
        at: "Shop\nversion",
    },
    Case {
        from: "layout: table",
        to: "layout: table\n    refresh_interval: 5 minutes",
        code: Code::InvalidFormat,
        path: "pages[0].refresh_interval",
        at: "5 minutes",
    },
    Case {
        from: "columns:\n        - {field: id, label: ID}",
        to: "columns: []",
        code: Code::MissingField,
        path: "pages[0].table.columns",
        at: "[]",
    },
    Case {
        from: "    title: Orders\n",
        to: "    title: Orders\n    colour: red\n",
        code: Code::UnknownField,
        path: "pages[0].colour",
        at: "colour",
    },
    Case {
        from: "operation_id: listOrders\n        mapping",
        to: "operation_id: listOrders\n        handler: h\n        mapping",
        code: Code::ConflictingFields,
        path: "pages[0].table.data_source",
        at: "operation_id: listOrders\n        handler",
    },
    Case {
        from: "options: {lookup_id: shop.statuses}",
        to: "options: {lookup_id: shop.statuses, static: [{label: A, value: a}]}",
        code: Code::ConflictingFields,
        path: "pages[0].table.filters[0].options",
        at: "{lookup_id: shop.statuses, static",
    },
    Case {
        from: ", command_id: shop.cancel}",
        to: "}",
        code: Code::MissingField,
        path: "pages[0].table.row_actions[0].command_id",
        at: "{id: cancel",
    },
    Case {
        from: "operation: {operation_id: listStatuses}",
        to: "operation: {type: openapi}",
        code: Code::MissingField,
        path: "lookups[0].operation.operation_id",
        at: "{type: openapi}",
    },
    Case {
        from: "body_mapping: projection",
        to: "body_mapping: template",
        code: Code::MissingField,
        path: "commands[0].input.body_template",
        at: "path_params: {orderId: route.id}",
    },
    Case {
        from: "{id: pay, type: system, operation: {operation_id: cancelOrder}, input: {path_params: {orderId: workflow.order_id}}}",
        to: "{id: pay, type: system}",
        code: Code::MissingField,
        path: "workflows[0].steps[1].operation",
        at: "{id: pay",
    },
    Case {
        from: "forms:\n",
        to: "  - {id: shop.x, title: X, route: /x, layout: table}\nforms:\n",
        code: Code::MissingField,
        path: "pages[1].table",
        at: "{id: shop.x",
    },
    // Rule 2: operations and handlers exist.
    Case {
        from: "operation_id: cancelOrder, service_id",
        to: "operation_id: cancelOrdr, service_id",
        code: Code::OperationNotFound,
        path: "commands[0].operation.operation_id",
        at: "cancelOrdr",
    },
    Case {
        from: "{operation_id: listStatuses}",
        to: "{operation_id: listStatus}",
        code: Code::OperationNotFound,
        path: "lookups[0].operation.operation_id",
        at: "listStatus}",
    },
    Case {
        from: "service_id: shop-svc}",
        to: "service_id: shop-sv}",
        code: Code::ServiceNotFound,
        path: "commands[0].operation.service_id",
        at: "shop-sv}",
    },
    Case {
        from: "{type: openapi, operation_id: cancelOrder, service_id: shop-svc}",
        to: "{type: sdk, handler: refunds.pay}",
        code: Code::HandlerNotRegistered,
        path: "commands[0].operation.handler",
        at: "refunds.pay",
    },
    // Rule 3: references resolve.
    Case {
        from: "page_id: shop.orders",
        to: "page_id: shop.order",
        code: Code::ReferenceNotFound,
        path: "navigation.children[0].page_id",
        at: "shop.order\n",
    },
    Case {
        from: "form_id: shop.edit}\n        - {id: refund",
        to: "form_id: shop.edt}\n        - {id: refund",
        code: Code::ReferenceNotFound,
        path: "pages[0].table.row_actions[1].form_id",
        at: "shop.edt",
    },
    Case {
        from: "command_id: shop.cancel}",
        to: "command_id: shop.cancl}",
        code: Code::ReferenceNotFound,
        path: "pages[0].table.row_actions[0].command_id",
        at: "shop.cancl",
    },
    Case {
        from: "submit_command: shop.cancel",
        to: "submit_command: shop.cncel",
        code: Code::ReferenceNotFound,
        path: "forms[0].submit_command",
        at: "shop.cncel",
    },
    Case {
        from: "lookup_id: shop.statuses",
        to: "lookup_id: shop.status",
        code: Code::ReferenceNotFound,
        path: "pages[0].table.filters[0].options.lookup_id",
        at: "shop.status}",
    },
    Case {
        from: "workflow_id: shop.refund",
        to: "workflow_id: shop.refnd",
        code: Code::ReferenceNotFound,
        path: "pages[0].table.row_actions[2].workflow_id",
        at: "shop.refnd",
    },
    Case {
        from: "initial_step: review",
        to: "initial_step: reviw",
        code: Code::ReferenceNotFound,
        path: "workflows[0].initial_step",
        at: "reviw",
    },
    Case {
        from: "to: done",
        to: "to: dne",
        code: Code::ReferenceNotFound,
        path: "workflows[0].transitions[1].to",
        at: "dne",
    },
    Case {
        from: "type: human, form_id: shop.edit}",
        to: "type: human, form_id: shop.edt}",
        code: Code::ReferenceNotFound,
        path: "workflows[0].steps[0].form_id",
        at: "shop.edt",
    },
    // Rule 4: unique IDs and routes.
    Case {
        from: "lookups:\n",
        to: "lookups:\n  - {id: shop.statuses, operation: {operation_id: listStatuses}, label_field: a, value_field: b}\n",
        code: Code::DuplicateId,
        path: "lookups[1].id",
        at: "shop.statuses\n    operation",
    },
    Case {
        from: "forms:\n",
        to: "  - {id: shop.other, title: Other, route: '/orders/', layout: detail}\nforms:\n",
        code: Code::DuplicateRoute,
        path: "pages[1].route",
        at: "'/orders/'",
    },
    Case {
        from: "{id: done, type: terminal}",
        to: "{id: pay, type: terminal}",
        code: Code::DuplicateId,
        path: "workflows[0].steps[2].id",
        at: "pay, type: terminal",
    },
    // Rule 5: path parameters.
    Case {
        from: "path_params: {orderId: route.id}",
        to: "path_params: {}",
        code: Code::PathParamMissing,
        path: "commands[0].input.path_params",
        at: "{}",
    },
    Case {
        from: "{orderId: route.id}",
        to: "{orderId: route.id, id: route.id}",
        code: Code::PathParamUnknown,
        path: "commands[0].input.path_params.id",
        at: "id: route.id}",
    },
    // Rule 6: capabilities.
    Case {
        from: "[shop:cancel]",
        to: "[shopcancel]",
        code: Code::InvalidCapability,
        path: "commands[0].capabilities[0]",
        at: "shopcancel",
    },
    Case {
        from: "[shop:cancel]",
        to: "['shop::cancel']",
        code: Code::InvalidCapability,
        path: "commands[0].capabilities[0]",
        at: "'shop::cancel'",
    },
    // Rule 7: workflows.
    Case {
        from: "{id: done, type: terminal}",
        to: "{id: done, type: terminal}\n      - {id: limbo, type: terminal}",
        code: Code::WorkflowUnreachableStep,
        path: "workflows[0].steps[3].id",
        at: "limbo",
    },
    Case {
        from: "{id: done, type: terminal}",
        to: "{id: done, type: terminal}\n      - {id: stuck, type: human}",
        code: Code::WorkflowDeadEnd,
        path: "workflows[0].steps[3].id",
        at: "stuck, type",
    },
    Case {
        from: "{id: done, type: terminal}",
        to: "{id: done, type: human}",
        code: Code::WorkflowNoTerminalPath,
        path: "workflows[0].steps",
        at: "- {id: review",
    },
    // Warnings.
    Case {
        from: "    operation: {operation_id: listStatuses}\n",
        to: "",
        code: Code::LookupWithoutOperation,
        path: "lookups[0]",
        at: "id: shop.statuses\n    label_field",
    },
    Case {
        from: "field_projection: {reason: input.reason}",
        to: "field_projection: {reason: row.reason}",
        code: Code::InvalidExpression,
        path: "commands[0].input.field_projection.reason",
        at: "row.reason}",
    },
    Case {
        from: "field_projection: {reason: input.reason}",
        to: "field_projection: {reasn: input.reason}",
        code: Code::ProjectionFieldUndeclared,
        path: "commands[0].input.field_projection.reasn",
        at: "reasn",
    },
    Case {
        from: "mapping: {items_path: data}",
        to: "mapping: {items_path: items}",
        code: Code::ItemsPathNotInResponse,
        path: "pages[0].table.data_source.mapping.items_path",
        at: "items}",
    },
];

/// Codes shown by the separate tests below and by `openapi`'s unit tests.
const SHOWN_ELSEWHERE: &[Code] = &[
    Code::ParseError,
    Code::OperationAmbiguous,
    Code::DuplicateDomain,
    Code::SpecInvalid,
    Code::SpecRefUnresolved,
    Code::SpecDuplicateOperationId,
    Code::SpecDuplicateService,
    Code::SpecExternalRef,
    // The format features of Thesa's definitions and the lint
    // (core/tests/compat.rs).
    Code::RouteParamUnknown,
    Code::CapabilityNamespaceMismatch,
    Code::VersionNotSemver,
    Code::UnquotedLiteral,
    Code::DefaultSortNotSortable,
    // The BFF's strict_checksums check (bff/tests/serve/checksums.rs).
    Code::ChecksumMismatch,
    Code::ChecksumManifestInvalid,
];

#[test]
fn each_broken_variant_reports_code_path_and_position() {
    check_cases(BASE, "shop.yaml", CASES, run_one);
}

#[test]
fn every_code_is_shown_by_a_test() {
    let shown: HashSet<Code> = CASES
        .iter()
        .map(|c| c.code)
        .chain(SHOWN_ELSEWHERE.iter().copied())
        .collect();
    let missing: Vec<&Code> = Code::ALL.iter().filter(|c| !shown.contains(c)).collect();
    assert!(missing.is_empty(), "no test shows {missing:?}");
}

#[test]
fn warnings_do_not_stop_a_definition_from_loading() {
    let text = edit(
        "    title: Orders\n",
        "    title: Orders\n    colour: red\n",
    );
    let mut findings = Vec::new();
    let loaded = LoadedDefinition::from_text("shop.yaml", &text, &mut findings);
    assert!(loaded.definition.is_some());
    assert!(findings.iter().all(|f| f.severity == Severity::Warning));
}

#[test]
fn messages_suggest_the_likely_name() {
    let findings = run_one(&edit(
        "operation_id: cancelOrder, service_id",
        "operation_id: cancelOrdr, service_id",
    ));
    assert_eq!(
        findings[0].message,
        "operation \"cancelOrdr\" not found in service \"shop-svc\" (did you mean \"cancelOrder\"?)"
    );
}

#[test]
fn syntax_errors_have_a_position() {
    let text = edit("layout: table", "layout: [table");
    let findings = run_one(&text);
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].code, Code::ParseError);
    assert!(findings[0].line.is_some() && findings[0].column.is_some());
}

#[test]
fn a_loop_without_exit_has_no_terminal_path() {
    let text = edit(
        "      - {id: done, type: terminal}\n",
        "      - {id: done, type: terminal}\n      - {id: loop_a, type: human}\n      - {id: loop_b, type: human}\n",
    )
    .replace(
        "      - {from: pay, to: done, event: completed}\n",
        "      - {from: pay, to: done, event: completed}\n      - {from: review, to: loop_a, event: x}\n      - {from: loop_a, to: loop_b, event: y}\n      - {from: loop_b, to: loop_a, event: z}\n",
    );
    let findings = run_one(&text);
    let paths: Vec<(&Code, &str)> = findings
        .iter()
        .map(|f| (&f.code, f.path.as_str()))
        .collect();
    assert_eq!(
        paths,
        vec![
            (&Code::WorkflowNoTerminalPath, "workflows[0].steps[3].id"),
            (&Code::WorkflowNoTerminalPath, "workflows[0].steps[4].id"),
        ],
        "{findings:#?}"
    );
}

#[test]
fn a_broken_transition_does_not_hide_a_dead_end() {
    let text = edit(
        "      - {id: done, type: terminal}\n",
        "      - {id: done, type: terminal}\n      - {id: limbo, type: human}\n",
    )
    .replace(
        "{from: pay, to: done, event: completed}",
        "{from: pay, to: nowhere, event: completed}",
    );
    let findings = run_one(&text);
    let got: Vec<(Code, &str)> = findings.iter().map(|f| (f.code, f.path.as_str())).collect();
    assert_eq!(
        got,
        vec![
            (Code::ReferenceNotFound, "workflows[0].transitions[1].to"),
            (Code::WorkflowDeadEnd, "workflows[0].steps[3].id"),
        ],
        "{findings:#?}"
    );
}

#[test]
fn a_duplicate_step_is_reported_once() {
    let findings = run_one(&edit(
        "{id: done, type: terminal}",
        "{id: done, type: terminal}\n      - {id: review, type: human}",
    ));
    let got: Vec<(Code, &str)> = findings.iter().map(|f| (f.code, f.path.as_str())).collect();
    assert_eq!(
        got,
        vec![(Code::DuplicateId, "workflows[0].steps[3].id")],
        "{findings:#?}"
    );
}

#[test]
fn options_without_a_source_load_as_in_thesa() {
    let findings = run_one(&edit("options: {lookup_id: shop.statuses}", "options: {}"));
    assert!(findings.is_empty(), "{findings:#?}");
}

#[test]
fn references_into_a_definition_that_did_not_load_are_not_reported_again() {
    let (forms_start, forms_end) = (
        BASE.find("forms:\n").unwrap(),
        BASE.find("commands:\n").unwrap(),
    );
    let without_forms = format!("{}{}", &BASE[..forms_start], &BASE[forms_end..]);
    let broken_forms = format!(
        "domain: shared\nversion: 1.0.0\n{}",
        &BASE[forms_start..forms_end]
    )
    .replace("title: Edit", "title: [Edit]");
    let findings = run(
        &[
            ("shop.yaml", &without_forms),
            ("shared.yaml", &broken_forms),
        ],
        vec![spec("shop-svc", SPEC)],
        &[],
    );
    assert!(
        findings.iter().all(|f| f.source == "shared.yaml"),
        "{findings:#?}"
    );
    assert!(!findings.is_empty());
}

#[test]
fn an_operation_in_several_specs_needs_a_service_id() {
    let findings = run(
        &[("shop.yaml", BASE)],
        vec![spec("shop-svc", SPEC), spec("copy-svc", SPEC)],
        &[],
    );
    let ambiguous: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.code == Code::OperationAmbiguous)
        .collect();
    // The badge, the table, the workflow step, the search and the lookup
    // name operations without a service; the command names its service.
    assert_eq!(ambiguous.len(), 5, "{findings:#?}");
    assert!(
        ambiguous[0].message.contains("copy-svc, shop-svc")
            || ambiguous[0].message.contains("shop-svc, copy-svc")
    );
    assert!(
        !findings
            .iter()
            .any(|f| f.path.starts_with("commands[0].operation"))
    );
}

#[test]
fn an_operation_of_another_service_is_named() {
    let other = SPEC.replace("operationId: cancelOrder", "operationId: refundOrder");
    let text = edit(
        "operation_id: cancelOrder, service_id",
        "operation_id: refundOrder, service_id",
    );
    let findings = run(
        &[("shop.yaml", &text)],
        vec![spec("shop-svc", SPEC), spec("pay-svc", &other)],
        &[],
    );
    let finding = findings
        .iter()
        .find(|f| f.code == Code::OperationNotFound)
        .unwrap();
    assert!(
        finding.message.ends_with("it is in pay-svc"),
        "{}",
        finding.message
    );
}

#[test]
fn registered_handlers_pass() {
    let text = edit(
        "{type: openapi, operation_id: cancelOrder, service_id: shop-svc}",
        "{type: sdk, handler: refunds.pay}",
    );
    let findings = run(
        &[("shop.yaml", &text)],
        vec![spec("shop-svc", SPEC)],
        &["refunds.pay"],
    );
    assert!(findings.is_empty(), "{findings:#?}");
}

#[test]
fn ids_routes_and_domains_are_unique_across_the_set() {
    let findings = run(
        &[("a/shop.yaml", BASE), ("b/shop.yaml", BASE)],
        vec![spec("shop-svc", SPEC)],
        &[],
    );
    let codes: HashSet<(Code, &str)> = findings
        .iter()
        .filter(|f| f.source == "b/shop.yaml")
        .map(|f| (f.code, f.path.as_str()))
        .collect();
    for expected in [
        (Code::DuplicateDomain, "domain"),
        (Code::DuplicateId, "pages[0].id"),
        (Code::DuplicateId, "forms[0].id"),
        (Code::DuplicateId, "commands[0].id"),
        (Code::DuplicateId, "workflows[0].id"),
        (Code::DuplicateId, "searches[0].id"),
        (Code::DuplicateId, "lookups[0].id"),
        (Code::DuplicateRoute, "pages[0].route"),
    ] {
        assert!(
            codes.contains(&expected),
            "missing {expected:?} in {findings:#?}"
        );
    }
    assert!(findings.iter().all(|f| f.source == "b/shop.yaml"));
    let page = findings.iter().find(|f| f.path == "pages[0].id").unwrap();
    assert_eq!(
        page.message,
        "page ID \"shop.orders\" is already defined at a/shop.yaml:12:9"
    );
}

#[test]
fn references_resolve_across_definitions() {
    let (forms_start, forms_end) = (
        BASE.find("forms:\n").unwrap(),
        BASE.find("commands:\n").unwrap(),
    );
    let without_forms = format!("{}{}", &BASE[..forms_start], &BASE[forms_end..]);
    let forms_only = format!(
        "domain: shared\nversion: 1.0.0\n{}",
        &BASE[forms_start..forms_end]
    );
    let findings = run(
        &[("shop.yaml", &without_forms), ("shared.yaml", &forms_only)],
        vec![spec("shop-svc", SPEC)],
        &[],
    );
    assert!(findings.is_empty(), "{findings:#?}");
}

#[test]
fn external_refs_are_reported_not_followed() {
    let text = SPEC.replace(
        "schema: {type: object, properties: {reason: {type: string}}}",
        "schema: {$ref: 'common.yaml#/Reason'}",
    );
    let findings = run(&[("shop.yaml", BASE)], vec![spec("shop-svc", &text)], &[]);
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0].code, Code::SpecExternalRef);
    assert_eq!(findings[0].severity, Severity::Warning);
}

#[test]
fn custom_resource_specs_load_without_positions() {
    let value: serde_json::Value = thesa_core::node::parse(BASE).unwrap().to_json();
    let mut findings = Vec::new();
    let loaded = LoadedDefinition::from_value("shop/shop", value, &mut findings);
    assert!(findings.is_empty());
    let mut index_findings = Vec::new();
    let index = OperationIndex::build(vec![spec("shop-svc", SPEC)], &mut index_findings);
    let broken = thesa_core::node::parse(&edit("page_size: 25", "page_size: 500"))
        .unwrap()
        .to_json();
    let broken = LoadedDefinition::from_value("shop/broken", broken, &mut findings);
    assert!(broken.definition.is_none());
    assert_eq!(
        findings[0].to_string(),
        "shop/broken: error[OUT_OF_RANGE] pages[0].table.page_size: 500 is above the maximum of 200"
    );
    assert!(validate::validate(&[loaded], &index, &BTreeSet::new()).is_empty());
}
