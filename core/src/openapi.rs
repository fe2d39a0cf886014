//! An index of the operations of OpenAPI 3.0 and 3.1 documents:
//! `operationId` → service, method, path template, parameters, request body
//! schema and success response schema, with local `$ref`s followed.
//!
//! No maintained crate reads both 3.0 and 3.1 (`openapiv3` stops at 3.0,
//! `oas3` starts at 3.1), and the index needs only a few fields, so it reads
//! the documents as JSON values.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

use crate::finding::{Code, Finding, Reporter};
use crate::node::{self, Node};
use crate::path::{Path, Segment};

/// HTTP methods an OpenAPI path item may hold.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Most `$ref` hops followed before giving up (guards against cycles).
const MAX_REF_HOPS: usize = 32;

/// Most schemas visited to answer one property lookup.
const MAX_SCHEMA_STEPS: usize = 10_000;

/// One OpenAPI document to index.
#[derive(Debug, Clone)]
pub struct SpecInput {
    /// The service the document describes (`orders-svc`).
    pub service_id: String,
    /// Where the text came from, for findings.
    pub source: String,
    /// The YAML or JSON text.
    pub text: String,
}

/// Where a parameter goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParamLocation {
    /// In the path template (`/orders/{id}`).
    Path,
    /// In the query string.
    Query,
    /// In a header.
    Header,
    /// In a cookie.
    Cookie,
}

/// A parameter of an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parameter {
    /// Its name.
    pub name: String,
    /// Where it goes.
    pub location: ParamLocation,
    /// Whether the operation requires it.
    pub required: bool,
}

/// One operation of a spec.
#[derive(Debug, Clone)]
pub struct Operation {
    /// The `operationId`.
    pub operation_id: String,
    /// HTTP method, upper case.
    pub method: String,
    /// Path template, e.g. `/orders/{id}`.
    pub path: String,
    /// Parameters, path-level ones merged with the operation's.
    pub parameters: Vec<Parameter>,
    /// Schema of the JSON request body, if any.
    pub request_body: Option<Value>,
    /// Schema of the JSON success (2xx) response, if any.
    pub response: Option<Value>,
}

impl Operation {
    /// The parameter names in the path template, in order.
    pub fn path_template_params(&self) -> Vec<&str> {
        let mut names = Vec::new();
        let mut rest = self.path.as_str();
        while let Some(open) = rest.find('{') {
            let Some(close) = rest[open..].find('}') else {
                break;
            };
            names.push(&rest[open + 1..open + close]);
            rest = &rest[open + close + 1..];
        }
        names
    }
}

/// Whether a schema has a property path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// The schema declares it.
    Declared,
    /// The schema declares its properties and this is not one of them.
    Undeclared,
    /// The schema does not say (free-form object, no schema, unresolvable).
    Unknown,
}

/// The indexed spec of one service.
#[derive(Debug)]
pub struct ServiceSpec {
    /// The service ID.
    pub service_id: String,
    /// Where the spec came from.
    pub source: String,
    /// False when the document did not parse or is not OpenAPI 3.
    pub loaded: bool,
    document: Value,
    operations: BTreeMap<String, Operation>,
}

impl ServiceSpec {
    /// The operation with this ID.
    pub fn operation(&self, operation_id: &str) -> Option<&Operation> {
        self.operations.get(operation_id)
    }

    /// All operation IDs, sorted.
    pub fn operation_ids(&self) -> impl Iterator<Item = &str> {
        self.operations.keys().map(String::as_str)
    }

    /// Whether `schema` has the dotted property `path` (`data.items`).
    /// Follows `$ref` (with sibling keywords, as OpenAPI 3.1 allows),
    /// `allOf`, `anyOf` and `oneOf`.
    pub fn property_presence(&self, schema: &Value, path: &str) -> Presence {
        let path = path.trim_start_matches("$.").trim_start_matches('.');
        let segments: Vec<&str> = path.split('.').filter(|s| !s.is_empty()).collect();
        self.segments_presence(schema, &segments)
    }

    /// Whether `schema` has the property path given as segments (a segment
    /// may itself contain dots).
    pub fn segments_presence(&self, schema: &Value, segments: &[&str]) -> Presence {
        let mut budget = MAX_SCHEMA_STEPS;
        self.presence(schema, segments, 0, &mut budget)
    }

    /// `budget` bounds the schemas visited in one lookup and `depth` the
    /// nesting: recursive schemas (`A: {allOf: [$ref A, $ref A]}`) would
    /// otherwise branch without end.
    fn presence(
        &self,
        schema: &Value,
        segments: &[&str],
        depth: usize,
        budget: &mut usize,
    ) -> Presence {
        if *budget == 0 || depth > MAX_REF_HOPS {
            return Presence::Unknown;
        }
        *budget -= 1;
        let depth = depth + 1;
        let mut answers = Vec::new();
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            answers.push(match lookup(&self.document, reference) {
                Some(target) => self.presence(target, segments, depth, budget),
                None => Presence::Unknown,
            });
        }
        let Some((first, rest)) = segments.split_first() else {
            return Presence::Declared;
        };
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            answers.push(match properties.get(*first) {
                Some(child) => self.presence(child, rest, depth, budget),
                None if schema
                    .get("additionalProperties")
                    .is_some_and(|a| a != false) =>
                {
                    Presence::Unknown
                }
                None => Presence::Undeclared,
            });
        }
        for keyword in ["allOf", "anyOf", "oneOf"] {
            for branch in schema
                .get(keyword)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                answers.push(self.presence(branch, segments, depth, budget));
            }
        }
        if answers.contains(&Presence::Declared) {
            Presence::Declared
        } else if answers.is_empty() || answers.contains(&Presence::Unknown) {
            Presence::Unknown
        } else {
            Presence::Undeclared
        }
    }
}

/// The value a local `$ref` (`#/components/schemas/Order`) points at.
/// The fragment is a JSON pointer, percent-encoded as URI fragments are.
fn lookup<'a>(document: &'a Value, reference: &str) -> Option<&'a Value> {
    let fragment = reference.strip_prefix('#')?;
    let pointer = percent_encoding::percent_decode_str(fragment)
        .decode_utf8()
        .ok()?;
    document.pointer(&pointer)
}

fn resolve<'a>(document: &'a Value, mut value: &'a Value) -> Option<&'a Value> {
    for _ in 0..MAX_REF_HOPS {
        match value.get("$ref").and_then(Value::as_str) {
            Some(reference) => value = lookup(document, reference)?,
            None => return Some(value),
        }
    }
    None
}

/// All operations of all loaded specs, by service and by `operationId`.
#[derive(Debug, Default)]
pub struct OperationIndex {
    services: BTreeMap<String, ServiceSpec>,
    by_operation: HashMap<String, Vec<String>>,
}

impl OperationIndex {
    /// Indexes the specs, adding findings for documents that do not parse,
    /// are not OpenAPI 3.0/3.1, have unresolved local `$ref`s or duplicate
    /// `operationId`s, or repeat a service ID.
    pub fn build(inputs: impl IntoIterator<Item = SpecInput>, findings: &mut Vec<Finding>) -> Self {
        let mut index = Self::default();
        for input in inputs {
            if let Some(existing) = index.services.get(&input.service_id) {
                let message = format!(
                    "service {:?} already has a spec, loaded from {}; give each spec its own service ID",
                    input.service_id, existing.source
                );
                Reporter::new(&input.source, None, findings).report(
                    Code::SpecDuplicateService,
                    &Path::root(),
                    message,
                );
                continue;
            }
            let spec = index_spec(input, findings);
            for id in spec.operations.keys() {
                index
                    .by_operation
                    .entry(id.clone())
                    .or_default()
                    .push(spec.service_id.clone());
            }
            index.services.insert(spec.service_id.clone(), spec);
        }
        index
    }

    /// The spec of a service.
    pub fn service(&self, service_id: &str) -> Option<&ServiceSpec> {
        self.services.get(service_id)
    }

    /// All specs, by service ID.
    pub fn services(&self) -> impl Iterator<Item = &ServiceSpec> {
        self.services.values()
    }

    /// The services whose specs have an operation with this ID.
    pub fn services_with(&self, operation_id: &str) -> &[String] {
        self.by_operation
            .get(operation_id)
            .map_or(&[], Vec::as_slice)
    }

    /// All operation IDs of all specs (for suggestions).
    pub fn operation_ids(&self) -> impl Iterator<Item = &str> {
        self.by_operation.keys().map(String::as_str)
    }

    /// How many operations are indexed.
    pub fn operation_count(&self) -> usize {
        self.services.values().map(|s| s.operations.len()).sum()
    }
}

fn index_spec(input: SpecInput, findings: &mut Vec<Finding>) -> ServiceSpec {
    let mut spec = ServiceSpec {
        service_id: input.service_id,
        source: input.source,
        loaded: false,
        document: Value::Null,
        operations: BTreeMap::new(),
    };
    let document = match node::parse(&input.text) {
        Ok(document) => document,
        Err(err) => {
            Reporter::new(&spec.source, None, findings).report_at(
                Code::ParseError,
                &Path::root(),
                err.pos,
                err.message,
            );
            return spec;
        }
    };
    let mut reporter = Reporter::new(&spec.source, Some(&document), findings);
    let value = document.to_json();
    if let Err(message) = check_version(&document, &value) {
        reporter.report(Code::SpecInvalid, &Path::root().key("openapi"), message);
        return spec;
    }
    check_refs(&value, &value, &mut Vec::new(), &mut reporter);
    spec.operations = collect_operations(&value, &document, &mut reporter);
    spec.document = value;
    spec.loaded = true;
    spec
}

fn check_version(document: &Node, value: &Value) -> Result<(), String> {
    if value.get("swagger").is_some() {
        return Err(
            "Swagger 2.0 documents are not supported; convert the spec to OpenAPI 3".into(),
        );
    }
    let version = document
        .get(&Path::root().key("openapi"))
        .and_then(Node::scalar_text);
    match version {
        Some(v) if v.starts_with("3.0") || v.starts_with("3.1") => Ok(()),
        Some(v) => Err(format!(
            "OpenAPI version {v:?} is not supported; use 3.0 or 3.1"
        )),
        None => Err("not an OpenAPI document: the \"openapi\" version field is missing".into()),
    }
}

/// Reports every local `$ref` that points at nothing, and every reference
/// to another document (which is not followed).
fn check_refs(root: &Value, value: &Value, at: &mut Vec<Segment>, reporter: &mut Reporter<'_>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                let path = Path::from_segments(at.clone()).key("$ref");
                match reference.strip_prefix('#') {
                    Some(_) if lookup(root, reference).is_none() => reporter.report(
                        Code::SpecRefUnresolved,
                        &path,
                        format!("$ref {reference:?} points at nothing in this document"),
                    ),
                    Some(_) => {}
                    None => reporter.report(
                        Code::SpecExternalRef,
                        &path,
                        format!(
                            "$ref {reference:?} points into another document and is not followed"
                        ),
                    ),
                }
            }
            for (key, child) in map {
                // Example data may hold anything, `$ref` keys included.
                let in_examples = matches!(at.last(), Some(Segment::Key(k)) if k == "examples")
                    || at.len() >= 2
                        && matches!(&at[at.len() - 2], Segment::Key(k) if k == "examples");
                if key == "example" || (key == "value" && in_examples) {
                    continue;
                }
                at.push(Segment::Key(key.clone()));
                check_refs(root, child, at, reporter);
                at.pop();
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                at.push(Segment::Index(i));
                check_refs(root, child, at, reporter);
                at.pop();
            }
        }
        _ => {}
    }
}

fn collect_operations(
    root: &Value,
    document: &Node,
    reporter: &mut Reporter<'_>,
) -> BTreeMap<String, Operation> {
    let mut operations: BTreeMap<String, Operation> = BTreeMap::new();
    let mut first_seen: HashMap<String, Path> = HashMap::new();
    let Some(paths) = root.get("paths").and_then(Value::as_object) else {
        return operations;
    };
    for (template, item) in paths {
        let Some(item) = path_item(root, item) else {
            continue;
        };
        let shared = parameters(root, &item);
        for method in METHODS {
            let Some(op) = item.get(method).and_then(Value::as_object) else {
                continue;
            };
            let id_path = Path::root()
                .key("paths")
                .key(template.as_str())
                .key(method)
                .key("operationId");
            let id = match op.get("operationId") {
                None => continue,
                Some(Value::String(id)) => id.as_str(),
                Some(_) => {
                    reporter.report(Code::SpecInvalid, &id_path, "operationId must be text");
                    continue;
                }
            };
            if let Some(first) = first_seen.get(id) {
                let pos = document.locate(first);
                reporter.report(
                    Code::SpecDuplicateOperationId,
                    &id_path,
                    format!(
                        "operationId {id:?} is already used at line {}, column {}; operation IDs must be unique",
                        pos.line, pos.column
                    ),
                );
                continue;
            }
            first_seen.insert(id.to_string(), id_path);
            let mut params = shared.clone();
            for own in parameters(root, op) {
                params.retain(|p: &Parameter| !(p.name == own.name && p.location == own.location));
                params.push(own);
            }
            let request_body = op
                .get("requestBody")
                .and_then(|b| resolve(root, b))
                .and_then(|b| json_schema(root, b));
            operations.insert(
                id.to_string(),
                Operation {
                    operation_id: id.to_string(),
                    method: method.to_ascii_uppercase(),
                    path: template.clone(),
                    parameters: params,
                    request_body,
                    response: success_response(root, op),
                },
            );
        }
    }
    operations
}

/// A path item, with a `$ref`'d item's fields under its own (OpenAPI 3.1
/// lets a path item add operations next to its `$ref`).
fn path_item(root: &Value, item: &Value) -> Option<Map<String, Value>> {
    let own = item.as_object()?;
    let mut merged = match own.get("$ref").and_then(Value::as_str) {
        Some(reference) => lookup(root, reference)?.as_object()?.clone(),
        None => Map::new(),
    };
    for (key, value) in own {
        if key != "$ref" {
            merged.insert(key.clone(), value.clone());
        }
    }
    Some(merged)
}

fn parameters(root: &Value, owner: &Map<String, Value>) -> Vec<Parameter> {
    owner
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| resolve(root, p))
        .filter_map(|p| {
            let location = match p.get("in")?.as_str()? {
                "path" => ParamLocation::Path,
                "query" => ParamLocation::Query,
                "header" => ParamLocation::Header,
                "cookie" => ParamLocation::Cookie,
                _ => return None,
            };
            Some(Parameter {
                name: p.get("name")?.as_str()?.to_string(),
                location,
                required: p.get("required").and_then(Value::as_bool).unwrap_or(false),
            })
        })
        .collect()
}

/// The schema of the lowest 2xx response (then `2XX`), preferring JSON.
fn success_response(root: &Value, op: &Map<String, Value>) -> Option<Value> {
    let responses = op.get("responses")?.as_object()?;
    let mut codes: Vec<&String> = responses
        .keys()
        .filter(|k| k.len() == 3 && k.starts_with('2') && k.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    codes.sort();
    let code = codes
        .first()
        .copied()
        .or_else(|| responses.keys().find(|k| k.eq_ignore_ascii_case("2XX")))?;
    let response = resolve(root, responses.get(code)?)?;
    json_schema(root, response)
}

/// The schema of the JSON content of a request body or response.
fn json_schema(root: &Value, holder: &Value) -> Option<Value> {
    let content = holder.get("content")?.as_object()?;
    let media = content
        .get("application/json")
        .or_else(|| {
            content
                .iter()
                .find(|(k, _)| k.contains("json"))
                .map(|(_, v)| v)
        })
        .or_else(|| content.values().next())?;
    resolve(root, media)?.get("schema").cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = r##"
openapi: 3.0.3
info: {title: Orders, version: 1.0.0}
paths:
  /orders:
    get:
      operationId: listOrders
      parameters:
        - $ref: '#/components/parameters/Limit'
      responses:
        '200':
          content:
            application/json:
              schema: {$ref: '#/components/schemas/OrderPage'}
  /orders/{id}:
    parameters:
      - {name: id, in: path, required: true, schema: {type: string}}
    post:
      operationId: cancelOrder
      requestBody:
        content:
          application/json:
            schema:
              type: object
              properties: {reason: {type: string}}
      responses:
        '202': {description: accepted}
components:
  parameters:
    Limit: {name: limit, in: query, schema: {type: integer}}
  schemas:
    OrderPage:
      allOf:
        - $ref: '#/components/schemas/Page'
        - type: object
          properties:
            data: {type: array, items: {$ref: '#/components/schemas/Order'}}
    Page:
      type: object
      properties: {total: {type: integer}}
    Order:
      type: object
      additionalProperties: true
"##;

    fn index(specs: &[(&str, &str)]) -> (OperationIndex, Vec<Finding>) {
        let mut findings = Vec::new();
        let inputs = specs.iter().map(|(id, text)| SpecInput {
            service_id: (*id).to_string(),
            source: format!("specs/{id}.yaml"),
            text: (*text).to_string(),
        });
        (OperationIndex::build(inputs, &mut findings), findings)
    }

    #[test]
    fn indexes_operations_with_parameters_and_schemas() {
        let (index, findings) = index(&[("orders-svc", SPEC)]);
        assert!(findings.is_empty(), "{findings:?}");
        let spec = index.service("orders-svc").unwrap();
        let list = spec.operation("listOrders").unwrap();
        assert_eq!(
            (list.method.as_str(), list.path.as_str()),
            ("GET", "/orders")
        );
        assert_eq!(list.parameters[0].name, "limit");
        let cancel = spec.operation("cancelOrder").unwrap();
        assert_eq!(cancel.path_template_params(), vec!["id"]);
        assert_eq!(cancel.parameters[0].location, ParamLocation::Path);
        assert_eq!(
            index.services_with("cancelOrder"),
            ["orders-svc".to_string()]
        );
        assert_eq!(index.operation_count(), 2);

        let page = list.response.as_ref().unwrap();
        assert_eq!(spec.property_presence(page, "data"), Presence::Declared);
        assert_eq!(spec.property_presence(page, "total"), Presence::Declared);
        assert_eq!(spec.property_presence(page, "items"), Presence::Undeclared);
        let body = cancel.request_body.as_ref().unwrap();
        assert_eq!(spec.property_presence(body, "reason"), Presence::Declared);
        assert_eq!(spec.property_presence(body, "reasn"), Presence::Undeclared);
        let order = serde_json::json!({"$ref": "#/components/schemas/Order"});
        assert_eq!(
            spec.property_presence(&order, "anything"),
            Presence::Unknown
        );
    }

    #[test]
    fn recursive_schemas_end_in_unknown_quickly() {
        let spec = r##"
openapi: 3.1.0
paths:
  /a:
    get:
      operationId: getA
      responses:
        '200':
          content:
            application/json:
              schema: {$ref: '#/components/schemas/A'}
components:
  schemas:
    A: {allOf: [{$ref: '#/components/schemas/A'}, {$ref: '#/components/schemas/A'}]}
"##;
        let (index, findings) = index(&[("a", spec)]);
        assert!(findings.is_empty(), "{findings:?}");
        let spec = index.service("a").unwrap();
        let schema = spec.operation("getA").unwrap().response.clone().unwrap();
        assert_eq!(
            spec.property_presence(&schema, "data.items"),
            Presence::Unknown
        );
    }

    #[test]
    fn follows_percent_encoded_refs_ref_siblings_and_path_item_refs() {
        let spec = r##"
openapi: 3.1.0
paths:
  /items/{itemId}:
    $ref: '#/components/pathItems/Item'
    delete:
      operationId: deleteItem
      responses: {'204': {description: gone}}
components:
  pathItems:
    Item:
      parameters: [{name: itemId, in: path, required: true}]
      get:
        operationId: getItem
        responses:
          '200':
            content:
              application/json:
                schema:
                  $ref: '#/components/schemas/Item%20%7BBody%7D'
                  properties: {extra: {type: string}}
  schemas:
    Item {Body}:
      type: object
      properties: {name: {type: string}}
      example: {$ref: not a reference}
"##;
        let (index, findings) = index(&[("a", spec)]);
        assert!(findings.is_empty(), "{findings:?}");
        let spec = index.service("a").unwrap();
        let get = spec.operation("getItem").unwrap();
        assert_eq!(get.parameters[0].name, "itemId");
        assert!(spec.operation("deleteItem").is_some());
        let body = get.response.clone().unwrap();
        assert_eq!(spec.property_presence(&body, "name"), Presence::Declared);
        assert_eq!(spec.property_presence(&body, "extra"), Presence::Declared);
        assert_eq!(spec.property_presence(&body, "other"), Presence::Undeclared);
    }

    #[test]
    fn reports_bad_specs_with_positions() {
        let broken_ref = SPEC.replace(
            "'#/components/schemas/Page'",
            "'#/components/schemas/Pager'",
        );
        let duplicate = SPEC.replace("operationId: cancelOrder", "operationId: listOrders");
        let numeric_id = SPEC.replace("operationId: cancelOrder", "operationId: 123");
        let (index, findings) = index(&[
            ("a", &broken_ref),
            ("b", &duplicate),
            ("c", "swagger: '2.0'\npaths: {}\n"),
            ("d", "openapi: [3\n"),
            ("e", &numeric_id),
            ("a", SPEC),
        ]);
        let got: Vec<String> = findings.iter().map(ToString::to_string).collect();
        let want = [
            "specs/a.yaml:34:17: error[SPEC_REF_UNRESOLVED] components.schemas.OrderPage.allOf[0].$ref",
            "specs/b.yaml:19:20: error[SPEC_DUPLICATE_OPERATION_ID] paths[\"/orders/{id}\"].post.operationId: operationId \"listOrders\" is already used at line 7",
            "specs/c.yaml:1:1: error[SPEC_INVALID] openapi: Swagger 2.0",
            "specs/d.yaml:2:1: error[PARSE_ERROR]",
            "specs/e.yaml:19:20: error[SPEC_INVALID] paths[\"/orders/{id}\"].post.operationId: operationId must be text",
            "specs/a.yaml: error[SPEC_DUPLICATE_SERVICE] service \"a\" already has a spec",
        ];
        for w in want {
            assert!(
                got.iter().any(|g| g.starts_with(w)),
                "missing {w:?} in {got:#?}"
            );
        }
        assert!(!index.service("c").unwrap().loaded);
    }
}
