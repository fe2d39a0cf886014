//! The features of definitions written for the original Thesa, as its
//! deployment uses them (`../shared/thesa-corpus`): a definition using all
//! of them validates clean, each broken variant gives its finding (code,
//! path, line and column), and the conventions are reported only with the
//! lint on. The corpus itself is validated by `corpus_*` below.

use std::collections::BTreeSet;

use thesa_core::finding::{Code, Finding, Severity};
use thesa_core::openapi::{OperationIndex, SpecInput};
use thesa_core::validate::{self, Checks, LoadedDefinition};

mod common;
use common::{Case, check_cases, position};

/// A ConnectRPC-style spec as Thesa's deployments have them: every
/// operation a `POST` with a JSON body, and one REST operation with a path
/// parameter.
const SPEC: &str = r##"openapi: 3.0.3
info: {title: Links, version: 1.0.0}
paths:
  /links.v1.LinkService/ListLinks:
    post:
      operationId: listLinks
      requestBody:
        content: {application/json: {schema: {type: object, properties: {query: {type: string}}}}}
      responses:
        '200':
          description: ok
          content:
            application/json:
              schema: {type: object, properties: {data: {type: array, items: {$ref: '#/components/schemas/Link'}}}}
  /links.v1.LinkService/GetLink:
    post:
      operationId: getLink
      requestBody:
        content: {application/json: {schema: {type: object, properties: {id: {type: string}}}}}
      responses:
        '200':
          description: ok
          content:
            application/json:
              schema: {type: object, properties: {data: {$ref: '#/components/schemas/Link'}}}
  /links.v1.LinkService/ListClicks:
    post:
      operationId: listClicks
      requestBody:
        content: {application/json: {schema: {type: object, properties: {link_id: {type: string}}}}}
      responses:
        '200':
          description: ok
          content:
            application/json:
              schema: {type: object, properties: {data: {type: array, items: {type: object}}}}
  /links.v1.LinkService/UpdateLink:
    post:
      operationId: updateLink
      requestBody:
        content: {application/json: {schema: {type: object, properties: {id: {type: string}, state: {type: string}}}}}
      responses: {'200': {description: ok}}
  /owners/{ownerId}:
    get:
      operationId: getOwner
      parameters: [{name: ownerId, in: path, required: true, schema: {type: string}}]
      responses: {'200': {description: ok}}
components:
  schemas:
    Link:
      type: object
      properties: {id: {type: string}, title: {type: string}, state: {type: string}}
"##;

/// Every feature, used as Thesa's definitions use it.
const BASE: &str = r#"domain: links
version: "2024-06"
navigation:
  label: Links
  group: bottom
  capabilities: ["link:view"]
  children:
    - {label: All, route: /links, page_id: links.list}
    - {label: New, route: /links/new, page_id: links.create_form}
pages:
  - id: links.list
    title: Links
    route: /links
    layout: table
    table:
      data_source: {operation_id: listLinks, service_id: links-svc, mapping: {items_path: data}}
      columns:
        - {field: title, label: Title, sortable: true}
      filters:
        - field: owner_id
          type: reference
          lookup: {operation_id: listLinks, service_id: links-svc, label_field: title, value_field: id}
      row_actions:
        - {id: stats, label: Stats, type: navigate, route: "/links/{id}"}
        - {id: pause, label: Pause, type: confirm, command_id: links.pause, confirmation: {title: Pause, message: Sure?}}
      default_sort: created_at
  - id: links.detail
    title: "{title}"
    route: /links/{id}
    layout: detail
    capabilities: ["*"]
    data_source: {operation_id: getLink, service_id: links-svc, mapping: {items_path: data}}
    sections:
      - id: info
        fields:
          - {field: title, label: Title, read_only: always}
          - {field: secret, label: Secret, visibility: hidden}
      - id: clicks
        layout: table
        data_source:
          operation_id: listClicks
          service_id: links-svc
          mapping: {items_path: data, request_mapping: {link_id: "{id}"}}
        table:
          columns:
            - {field: country, label: Country}
          page_size: 50
forms:
  - id: links.create_form
    title: New link
    submit_command: links.pause
    sections:
      - fields:
          - {field: slug, label: Slug, hint: Short code}
          - field: owner_id
            type: reference
            lookup: {operation_id: listLinks, service_id: links-svc, label_field: title, value_field: id, search_field: query}
commands:
  - id: links.pause
    capabilities: ["link:manage"]
    operation: {type: openapi, operation_id: updateLink, service_id: links-svc}
    input:
      body_mapping: projection
      field_projection: {id: input.id, state: LINK_STATE_PAUSED}
    output: {type: full}
  - id: links.upload
    operation: {type: sdk, handler: files.upload}
searches:
  - id: links.search
    operation: {operation_id: listLinks, service_id: links-svc}
    result_mapping: {items_path: data, title_field: title, id_field: id, route: "/links/{id}"}
    weight: 0.5
lookups:
  - id: links.owners
    operation: {operation_id: listLinks, service_id: links-svc}
    label_field: title
    value_field: id
    cache: {scope: partition}
"#;

fn run(text: &str, checks: Checks) -> Vec<Finding> {
    let mut findings = Vec::new();
    let spec = SpecInput {
        service_id: "links-svc".into(),
        source: "specs/links-svc.yaml".into(),
        text: SPEC.into(),
    };
    let index = OperationIndex::build([spec], &mut findings);
    let loaded = LoadedDefinition::from_text("links.yaml", text, &mut findings);
    let handlers = validate::known_handlers(None);
    findings.extend(validate::validate_with(
        &[loaded],
        &index,
        &handlers,
        checks,
    ));
    findings
}

const PLAIN: Checks = Checks { lint: false };
const LINT: Checks = Checks { lint: true };

#[test]
fn every_feature_validates_clean() {
    let findings = run(BASE, PLAIN);
    assert!(findings.is_empty(), "{findings:#?}");
}

const CASES: &[Case] = &[
    // A menu item's page_id names a page or a form.
    Case {
        from: "page_id: links.create_form",
        to: "page_id: links.create_frm",
        code: Code::ReferenceNotFound,
        path: "navigation.children[1].page_id",
        at: "links.create_frm",
    },
    // `group` is text.
    Case {
        from: "group: bottom",
        to: "group: [bottom]",
        code: Code::InvalidType,
        path: "navigation.group",
        at: "[bottom]",
    },
    // `version` is any text, but there must be one.
    Case {
        from: "version: \"2024-06\"",
        to: "version: \"\"",
        code: Code::MissingField,
        path: "version",
        at: "\"\"",
    },
    // A navigate action's route: `route` or `navigate_to`, one of them.
    Case {
        from: "type: navigate, route: \"/links/{id}\"}",
        to: "type: navigate}",
        code: Code::MissingField,
        path: "pages[0].table.row_actions[0].navigate_to",
        at: "{id: stats",
    },
    Case {
        from: "type: navigate, route: \"/links/{id}\"}",
        to: "type: navigate, route: \"/links/{id}\", navigate_to: /elsewhere}",
        code: Code::ConflictingFields,
        path: "pages[0].table.row_actions[0].route",
        at: "\"/links/{id}\", navigate_to",
    },
    // A confirm action runs a command.
    Case {
        from: "type: confirm, command_id: links.pause,",
        to: "type: confirm,",
        code: Code::MissingField,
        path: "pages[0].table.row_actions[1].command_id",
        at: "{id: pause",
    },
    Case {
        from: "type: confirm, command_id: links.pause,",
        to: "type: confirm, command_id: links.paws,",
        code: Code::ReferenceNotFound,
        path: "pages[0].table.row_actions[1].command_id",
        at: "links.paws",
    },
    // Inline lookups on filters and fields.
    Case {
        from: "lookup: {operation_id: listLinks, service_id: links-svc, label_field: title, value_field: id}",
        to: "lookup: {operation_id: listLinkz, service_id: links-svc, label_field: title, value_field: id}",
        code: Code::OperationNotFound,
        path: "pages[0].table.filters[0].lookup.operation_id",
        at: "listLinkz",
    },
    Case {
        from: "label_field: title, value_field: id, search_field: query}",
        to: "label_field: title, search_field: query}",
        code: Code::MissingField,
        path: "forms[0].sections[0].fields[1].lookup.value_field",
        at: "{operation_id: listLinks, service_id: links-svc, label_field: title, search_field",
    },
    Case {
        from: "label_field: title, value_field: id, search_field: query}",
        to: "label_field: title, value_field: id, search_field: query, static: [{label: A, value: a}]}",
        code: Code::ConflictingFields,
        path: "forms[0].sections[0].fields[1].lookup",
        at: "{operation_id: listLinks, service_id: links-svc, label_field: title, value_field: id, search_field: query, static",
    },
    Case {
        from: "          type: reference\n          lookup:",
        to: "          type: reference\n          options: {static: [{label: A, value: a}]}\n          lookup:",
        code: Code::ConflictingFields,
        path: "pages[0].table.filters[0].lookup",
        at: "{operation_id: listLinks, service_id: links-svc, label_field: title, value_field: id}",
    },
    Case {
        from: "        - {field: country, label: Country}\n",
        to: "        - {field: country, label: Country}\n          filters:\n            - {field: owner_id, lookup: {operation_id: getLink, label_field: title, value_field: id}}\n            - {field: owner_id, lookup: {operation_id: listLinks, label_field: title, value_field: id}}\n",
        code: Code::DuplicateId,
        path: "pages[1].sections[1].table.filters[1].lookup",
        at: "{operation_id: listLinks, label_field: title, value_field: id}}\n",
    },
    // Page and section data sources, section tables.
    Case {
        from: "data_source: {operation_id: getLink,",
        to: "data_source: {operation_id: getLnk,",
        code: Code::OperationNotFound,
        path: "pages[1].data_source.operation_id",
        at: "getLnk",
    },
    Case {
        from: "data_source: {operation_id: getLink, service_id: links-svc, mapping: {items_path: data}}",
        to: "data_source: {operation_id: getOwner, service_id: links-svc}",
        code: Code::PathParamMissing,
        path: "pages[1].data_source.operation_id",
        at: "getOwner",
    },
    Case {
        from: "request_mapping: {link_id: \"{id}\"}",
        to: "request_mapping: {link_id: \"{link}\"}",
        code: Code::RouteParamUnknown,
        path: "pages[1].sections[1].data_source.mapping.request_mapping.link_id",
        at: "\"{link}\"",
    },
    Case {
        from: "      - id: clicks\n",
        to: "      - title: Clicks\n",
        code: Code::MissingField,
        path: "pages[1].sections[1].id",
        at: "title: Clicks",
    },
    Case {
        from: "        layout: table\n        data_source:\n          operation_id: listClicks\n          service_id: links-svc\n          mapping: {items_path: data, request_mapping: {link_id: \"{id}\"}}\n",
        to: "        layout: table\n",
        code: Code::MissingField,
        path: "pages[1].sections[1].data_source",
        at: "id: clicks",
    },
    Case {
        from: "        table:\n          columns:",
        to: "        table:\n          data_source: {operation_id: listClicks}\n          columns:",
        code: Code::ConflictingFields,
        path: "pages[1].sections[1].table.data_source",
        at: "{operation_id: listClicks}",
    },
    Case {
        from: "      data_source: {operation_id: listLinks, service_id: links-svc, mapping: {items_path: data}}\n      columns:",
        to: "      columns:",
        code: Code::MissingField,
        path: "pages[0].table.data_source",
        at: "columns:\n        - {field: title",
    },
    // Sections of forms load no data.
    Case {
        from: "    sections:\n      - fields:\n",
        to: "    sections:\n      - data_source: {operation_id: getLink}\n        fields:\n",
        code: Code::UnknownField,
        path: "forms[0].sections[0].data_source",
        at: "data_source: {operation_id: getLink}",
    },
    // `hint` is `help_text` under Thesa's name.
    Case {
        from: "hint: Short code}",
        to: "hint: Short code, help_text: Long code}",
        code: Code::ConflictingFields,
        path: "forms[0].sections[0].fields[0].hint",
        at: "Short code, help_text",
    },
    // Lookup scopes, weights and output types.
    Case {
        from: "scope: partition",
        to: "scope: planet",
        code: Code::InvalidEnum,
        path: "lookups[0].cache.scope",
        at: "planet",
    },
    Case {
        from: "weight: 0.5",
        to: "weight: heavy",
        code: Code::InvalidType,
        path: "searches[0].weight",
        at: "heavy",
    },
    Case {
        from: "handler: files.upload",
        to: "handler: files.uplod",
        code: Code::HandlerNotRegistered,
        path: "commands[1].operation.handler",
        at: "files.uplod",
    },
];

#[test]
fn each_broken_variant_reports_code_path_and_position() {
    check_cases(BASE, "links.yaml", CASES, |text| run(text, PLAIN));
}

/// The conventions the lint checks, each where `BASE` breaks it.
const LINT_FINDINGS: &[(Code, &str, &str)] = &[
    (Code::VersionNotSemver, "version", "\"2024-06\""),
    (
        Code::CapabilityNamespaceMismatch,
        "navigation.capabilities[0]",
        "\"link:view\"",
    ),
    (
        Code::CapabilityNamespaceMismatch,
        "commands[0].capabilities[0]",
        "\"link:manage\"",
    ),
    (
        Code::UnquotedLiteral,
        "commands[0].input.field_projection.state",
        "LINK_STATE_PAUSED",
    ),
    (
        Code::DefaultSortNotSortable,
        "pages[0].table.default_sort",
        "created_at",
    ),
];

#[test]
fn the_lint_reports_the_conventions_and_only_when_asked() {
    let findings = run(BASE, LINT);
    let mut expected: Vec<(Code, String, Option<u32>, Option<u32>)> = LINT_FINDINGS
        .iter()
        .map(|(code, path, at)| {
            let (line, column) = position(BASE, at);
            (*code, path.to_string(), Some(line), Some(column))
        })
        .collect();
    let mut got: Vec<(Code, String, Option<u32>, Option<u32>)> = findings
        .iter()
        .map(|f| (f.code, f.path.clone(), f.line, f.column))
        .collect();
    expected.sort();
    got.sort();
    assert_eq!(got, expected);
    assert!(findings.iter().all(|f| f.severity == Severity::Warning));
    // Quoted, in the domain's namespace, semver and sortable: quiet.
    let tidy = BASE
        .replace("version: \"2024-06\"", "version: 1.0.0")
        .replace("\"link:", "\"links:")
        .replace("state: LINK_STATE_PAUSED", "state: \"'LINK_STATE_PAUSED'\"")
        .replace("      default_sort: created_at\n", "");
    let quiet = run(&tidy, LINT);
    assert!(quiet.is_empty(), "{quiet:#?}");
}

/// The corpus as a set, with service IDs from the spec file names.
fn corpus(checks: Checks) -> Vec<Finding> {
    let dir = common::corpus();
    let mut findings = Vec::new();
    let mut specs = Vec::new();
    let mut texts = Vec::new();
    for (sub, out) in [("specs", &mut specs), ("definitions", &mut texts)] {
        let mut paths: Vec<_> = std::fs::read_dir(dir.join(sub))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        paths.sort();
        for path in paths {
            let stem = path.file_stem().unwrap().to_string_lossy().to_string();
            out.push((
                stem,
                path.display().to_string(),
                std::fs::read_to_string(&path).unwrap(),
            ));
        }
    }
    let index = OperationIndex::build(
        specs
            .into_iter()
            .map(|(service_id, source, text)| SpecInput {
                service_id,
                source,
                text,
            }),
        &mut findings,
    );
    let loaded: Vec<LoadedDefinition> = texts
        .iter()
        .map(|(_, source, text)| LoadedDefinition::from_text(source.as_str(), text, &mut findings))
        .collect();
    assert!(loaded.iter().all(|l| l.definition.is_some()));
    findings.extend(validate::validate_with(
        &loaded,
        &index,
        &validate::known_handlers(None),
        checks,
    ));
    findings
}

fn codes(findings: &[Finding]) -> BTreeSet<(Code, usize)> {
    let mut counts = std::collections::BTreeMap::new();
    for f in findings {
        *counts.entry(f.code).or_insert(0) += 1;
    }
    counts.into_iter().collect()
}

#[test]
fn the_corpus_validates_without_errors_and_warns_only_about_real_problems() {
    let findings = corpus(PLAIN);
    assert!(
        findings.iter().all(|f| f.severity == Severity::Warning),
        "{findings:#?}"
    );
    // Four projection targets its specs do not declare, and `context.id`,
    // which names nothing (the command sends no id): both true. No
    // UNKNOWN_FIELD: every key the corpus uses is read.
    assert_eq!(
        codes(&findings),
        BTreeSet::from([
            (Code::ProjectionFieldUndeclared, 4),
            (Code::InvalidExpression, 1),
        ]),
        "{findings:#?}"
    );
    let expression = findings
        .iter()
        .find(|f| f.code == Code::InvalidExpression)
        .unwrap();
    assert!(expression.source.ends_with("redirect.yaml"));
    assert_eq!(
        expression.path, "commands[1].input.field_projection.id",
        "{expression}"
    );
}

#[test]
fn the_corpus_breaks_conventions_only_the_lint_reports() {
    let findings = corpus(LINT);
    let counts = codes(&findings);
    // Capabilities such as `tenant:view` in domain `access-control`.
    assert!(
        counts.contains(&(Code::CapabilityNamespaceMismatch, 77)),
        "{counts:?}"
    );
    assert!(counts.contains(&(Code::UnquotedLiteral, 1)), "{counts:?}");
    assert!(findings.iter().all(|f| f.severity == Severity::Warning));
}
