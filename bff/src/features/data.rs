//! Page and form data: the backend request built from a data source
//! (paging, sorting and filters mapped to the service's parameter names for
//! tables; the page's route parameters for records) and the answer mapped
//! back to the fields the definition names. Only those fields leave the BFF.
//!
//! Query string of `GET /ui/pages/{id}/data`: the parameters of the page's
//! route by name (`id` for `/tenants/{id}`), and for tables `page` (from 1),
//! `page_size` (1–200, default the table's), `sort` (a sortable column) and
//! `sort_dir` (`asc`/`desc`), `cursor` (cursor-paged services), one
//! parameter per declared filter (by its field), and the path parameters of
//! the operation by name. `section` narrows the answer to one section's
//! data. Anything else is ignored.
//!
//! A page answers with its table's rows (`items`, paging), its record
//! (`data`, from the page's `data_source`) and its sections' own data
//! (`sections.<id>`: a record as `data`, or a table's rows), whichever it
//! has; the calls run concurrently. Route parameters reach the backend by
//! name: as path parameters of the operation, as its query parameters when
//! it declares them, else as fields of the JSON body its request schema
//! declares (ConnectRPC-style `POST` operations); `mapping.request_mapping`
//! names other targets (`link_id: "{id}"`).

use std::collections::{BTreeMap, BTreeSet};

use futures::future::{BoxFuture, FutureExt, try_join_all};
use serde_json::{Map, Value};
use thesa_core::config::{PaginationConfig, PaginationStyle};
use thesa_core::model::{
    ActionType, Column, DataSource, Form, Page, ResponseMapping, Section, Table,
};
use thesa_core::openapi::{Operation, ParamLocation, Presence, ServiceSpec};
use thesa_core::validate::placeholders;

use crate::access::Caller;
use crate::access::capabilities::CapabilitySet;
use crate::backends::invoker::{CallContext, Invoker, Params};
use crate::error::ApiError;
use crate::state::AppState;
use axum::http::StatusCode;

/// Page size when neither the request nor the table gives one.
const DEFAULT_PAGE_SIZE: u32 = 25;
/// Largest page size a caller may ask for.
const MAX_PAGE_SIZE: u32 = 200;
/// Largest list index a field path may name (`contacts[0].detail`).
const MAX_INDEX: usize = 1024;

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "INVALID_QUERY", message)
}

fn query_value<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The page and size the caller asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    /// Page number, from 1.
    pub page: u32,
    /// Items per page.
    pub size: u32,
}

/// One backend request: parameters and, for operations with a request
/// body, the JSON body.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Path, query and header parameters.
    pub params: Params,
    /// The body (an object), for operations that take one.
    pub body: Option<Map<String, Value>>,
}

/// Where a named value goes in a request to `operation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// A parameter of the path template.
    Path,
    /// A query parameter the operation declares.
    Query,
    /// A field of the JSON body the request schema declares.
    Body,
    /// None of those: the operation does not take it.
    Nowhere,
}

/// Where `name` goes in a request to `operation` of `spec`.
pub fn slot(spec: Option<&ServiceSpec>, operation: &Operation, name: &str) -> Slot {
    if operation.path_template_params().contains(&name) {
        return Slot::Path;
    }
    let declared = |location: ParamLocation| {
        operation
            .parameters
            .iter()
            .any(|p| p.location == location && p.name == name)
    };
    if declared(ParamLocation::Path) {
        return Slot::Path;
    }
    if declared(ParamLocation::Query) {
        return Slot::Query;
    }
    match (spec, &operation.request_body) {
        (Some(spec), Some(schema)) => match spec.segments_presence(schema, &[name]) {
            Presence::Declared => Slot::Body,
            Presence::Undeclared | Presence::Unknown => Slot::Nowhere,
        },
        _ => Slot::Nowhere,
    }
}

impl Request {
    /// Puts a value the definition names explicitly (`request_mapping`, a
    /// lookup's `search_field`) where the operation takes it; one it does
    /// not declare goes into the body when there is one, else the query.
    pub fn put_named(
        &mut self,
        spec: Option<&ServiceSpec>,
        operation: &Operation,
        name: &str,
        value: String,
    ) {
        let slot = match slot(spec, operation, name) {
            Slot::Nowhere if self.body.is_some() => Slot::Body,
            Slot::Nowhere => Slot::Query,
            other => other,
        };
        self.put(slot, name, value);
    }

    /// Puts `value` where `slot` says; nowhere for [`Slot::Nowhere`].
    fn put(&mut self, slot: Slot, name: &str, value: String) {
        match slot {
            Slot::Path => {
                self.params.path.insert(name.to_string(), value);
            }
            Slot::Query => self.params.query.push((name.to_string(), value)),
            Slot::Body => {
                if let Some(body) = &mut self.body {
                    set_path(body, name, Value::String(value));
                }
            }
            Slot::Nowhere => {}
        }
    }
}

/// The request of a reading data source: `route` values (the page's route
/// parameters, or a form's query string) and `mapping.request_mapping`
/// placed where the operation takes them (see [`slot`]); path parameters
/// not given that way come from the query string by name, as before.
pub fn read_request(
    spec: Option<&ServiceSpec>,
    operation: &Operation,
    mapping: Option<&ResponseMapping>,
    route: &[(String, String)],
    query: &[(String, String)],
) -> Result<Request, ApiError> {
    let mut request = Request {
        params: Params::default(),
        body: operation.request_body.is_some().then(Map::new),
    };
    let empty = BTreeMap::new();
    let request_mapping = mapping.map_or(&empty, |m| &m.request_mapping);
    for (target, template) in request_mapping {
        let value = fill(template, route)?;
        request.put_named(spec, operation, target, value);
    }
    for (name, value) in route {
        if request_mapping.contains_key(name) {
            continue;
        }
        let slot = slot(spec, operation, name);
        request.put(slot, name, value.clone());
    }
    for name in operation.path_template_params() {
        if request.params.path.contains_key(name) {
            continue;
        }
        let value = query_value(query, name)
            .ok_or_else(|| bad_request(format!("query parameter {name:?} is required")))?;
        request
            .params
            .path
            .insert(name.to_string(), value.to_string());
    }
    Ok(request)
}

/// A `request_mapping` template with its `{name}`s filled from `route`.
fn fill(template: &str, route: &[(String, String)]) -> Result<String, ApiError> {
    crate::backends::invoker::fill_template(template, |name| {
        query_value(route, name)
            .map(String::from)
            .ok_or_else(|| bad_request(format!("query parameter {name:?} is required")))
    })
}

/// The values of the page's route parameters in the query string.
pub fn route_values(page: &Page, query: &[(String, String)]) -> Vec<(String, String)> {
    placeholders(&page.route)
        .chain(colon_params(&page.route))
        .filter_map(|name| Some((name.to_string(), query_value(query, name)?.to_string())))
        .collect()
}

fn colon_params(route: &str) -> impl Iterator<Item = &str> {
    route
        .split('/')
        .filter_map(|segment| segment.strip_prefix(':'))
        .filter(|name| !name.is_empty())
}

/// The backend request for a table fed by `source`: the source's request,
/// then paging, sorting and filters in the query string.
pub fn table_request(
    table: &Table,
    source: &DataSource,
    request: Request,
    pagination: &PaginationConfig,
    query: &[(String, String)],
) -> Result<(Request, Paging), ApiError> {
    let field_map = source.mapping.as_ref().map(|m| &m.field_map);
    let backend_name = |field: &str| {
        field_map
            .and_then(|m| m.get(field))
            .cloned()
            .unwrap_or_else(|| field.to_string())
    };
    let mut request = request;

    let number = |name: &str, default: u32| -> Result<u32, ApiError> {
        match query_value(query, name) {
            None => Ok(default),
            Some(text) => text
                .parse::<u32>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| bad_request(format!("{name} must be a whole number from 1"))),
        }
    };
    let table_size = table
        .page_size
        .filter(|s| *s > 0)
        .unwrap_or(DEFAULT_PAGE_SIZE);
    let paging = Paging {
        page: number("page", 1)?,
        size: number("page_size", table_size)?.min(MAX_PAGE_SIZE),
    };
    let query_out = &mut request.params.query;
    match pagination.style {
        PaginationStyle::Offset => {
            let offset = u64::from(paging.page - 1) * u64::from(paging.size);
            query_out.push((param(&pagination.page_param, "offset"), offset.to_string()));
            query_out.push((
                param(&pagination.size_param, "limit"),
                paging.size.to_string(),
            ));
        }
        PaginationStyle::Page => {
            query_out.push((
                param(&pagination.page_param, "page"),
                paging.page.to_string(),
            ));
            query_out.push((
                param(&pagination.size_param, "page_size"),
                paging.size.to_string(),
            ));
        }
        PaginationStyle::Cursor => {
            if let Some(cursor) = query_value(query, "cursor") {
                query_out.push((
                    param(&pagination.cursor_param, "cursor"),
                    cursor.to_string(),
                ));
            }
            query_out.push((
                param(&pagination.size_param, "limit"),
                paging.size.to_string(),
            ));
        }
    }

    // The definition's default sort is the author's choice (Thesa's
    // definitions sort by fields that are no column); a caller's must be a
    // sortable column.
    let sort = match query_value(query, "sort") {
        Some(sort) => {
            let sortable = table.columns.iter().any(|c| c.field == sort && c.sortable)
                || table.default_sort.as_deref() == Some(sort);
            if !sortable {
                return Err(bad_request(format!(
                    "sort: {sort:?} is not a sortable column"
                )));
            }
            Some(sort)
        }
        None => table.default_sort.as_deref(),
    };
    if let Some(sort) = sort {
        query_out.push((param(&pagination.sort_param, "sort"), backend_name(sort)));
        let direction = match query_value(query, "sort_dir") {
            Some(d @ ("asc" | "desc")) => d.to_string(),
            Some(other) => {
                return Err(bad_request(format!(
                    "sort_dir: {other:?} is not asc or desc"
                )));
            }
            None => table
                .sort_dir
                .and_then(|d| serde_json::to_value(d).ok())
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_else(|| "asc".into()),
        };
        query_out.push((param(&pagination.sort_dir_param, "sort_dir"), direction));
    }

    for filter in &table.filters {
        let value = query_value(query, &filter.field)
            .map(String::from)
            .or_else(|| filter.default.clone());
        if let Some(value) = value {
            query_out.push((backend_name(&filter.field), value));
        }
    }
    Ok((request, paging))
}

fn param(configured: &Option<String>, default: &str) -> String {
    configured.clone().unwrap_or_else(|| default.to_string())
}

/// One step of a field path: `contacts[0].detail` is `contacts`, `0`,
/// `detail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// The steps of a dotted path with optional list indices. A segment whose
/// brackets do not read as indices (below [`MAX_INDEX`]) is a plain key.
fn steps(path: &str) -> Vec<Step<'_>> {
    let mut out = Vec::new();
    for segment in path.split('.') {
        match indexed(segment) {
            Some((key, indices)) => {
                if !key.is_empty() {
                    out.push(Step::Key(key));
                }
                out.extend(indices.into_iter().map(Step::Index));
            }
            None => out.push(Step::Key(segment)),
        }
    }
    out
}

fn indexed(segment: &str) -> Option<(&str, Vec<usize>)> {
    let open = segment.find('[')?;
    let (key, mut rest) = segment.split_at(open);
    let mut indices = Vec::new();
    while !rest.is_empty() {
        let inner = rest.strip_prefix('[')?;
        let close = inner.find(']')?;
        let index = inner[..close]
            .parse::<usize>()
            .ok()
            .filter(|i| *i < MAX_INDEX)?;
        indices.push(index);
        rest = &inner[close + 1..];
    }
    Some((key, indices))
}

fn follow<'a>(value: &'a Value, steps: &[Step<'_>]) -> Option<&'a Value> {
    steps.iter().try_fold(value, |v, step| match step {
        Step::Key(key) => v.as_object()?.get(*key),
        Step::Index(i) => v.as_array()?.get(*i),
    })
}

fn follow_mut<'a>(value: &'a mut Value, steps: &[Step<'_>]) -> Option<&'a mut Value> {
    steps.iter().try_fold(value, |v, step| match step {
        Step::Key(key) => v.as_object_mut()?.get_mut(*key),
        Step::Index(i) => v.as_array_mut()?.get_mut(*i),
    })
}

/// The value at a dotted path (`data.items`, `total.amount`,
/// `contacts[0].detail`).
pub fn get_path<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    if !path.contains(['.', '[']) {
        return value.as_object()?.get(path);
    }
    follow(value, &steps(path))
}

/// The value at a dotted path of an object's fields.
pub fn get_in<'a>(object: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let steps = steps(path);
    let (Step::Key(first), rest) = steps.split_first()? else {
        return None;
    };
    follow(object.get(*first)?, rest)
}

/// Sets a dotted path, creating objects (and lists, for indices) on the
/// way.
pub fn set_path(target: &mut Map<String, Value>, path: &str, value: Value) {
    set_in(target, &steps(path), value);
}

/// Sets the value at `steps` of an object's fields (which must begin with
/// a key).
fn set_in(target: &mut Map<String, Value>, steps: &[Step<'_>], value: Value) {
    match steps {
        [Step::Key(key)] => {
            target.insert((*key).to_string(), value);
        }
        [Step::Key(first), rest @ ..] => {
            let slot = target.entry((*first).to_string()).or_insert(Value::Null);
            set_steps(slot, rest, value);
        }
        _ => {}
    }
}

fn set_steps(slot: &mut Value, steps: &[Step<'_>], value: Value) {
    let Some((step, rest)) = steps.split_first() else {
        *slot = value;
        return;
    };
    match step {
        Step::Key(key) => {
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            if let Value::Object(object) = slot {
                let next = object.entry(key.to_string()).or_insert(Value::Null);
                set_steps(next, rest, value);
            }
        }
        Step::Index(index) => {
            if !slot.is_array() {
                *slot = Value::Array(Vec::new());
            }
            if let Value::Array(items) = slot {
                if items.len() <= *index {
                    items.resize(index + 1, Value::Null);
                }
                set_steps(&mut items[*index], rest, value);
            }
        }
    }
}

/// A value as parameter or route text: strings as they are, anything
/// else as JSON.
pub fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Whether the caller may see a column: a `visible` value with a `:` is a
/// capability (as in the page view).
fn column_visible(column: &Column, caps: &CapabilitySet) -> bool {
    column
        .visible
        .as_deref()
        .filter(|v| v.contains(':'))
        .is_none_or(|capability| caps.has(capability))
}

/// The fields of a row the frontend needs: the visible columns, the fields
/// of links, action routes, parameters (`row.id`) and conditions, and `id`.
pub fn row_fields(table: &Table, caps: &CapabilitySet) -> BTreeSet<String> {
    let mut fields: BTreeSet<String> = table
        .columns
        .iter()
        .filter(|c| column_visible(c, caps))
        .map(|c| c.field.clone())
        .collect();
    fields.insert("id".into());
    for column in &table.columns {
        if let Some(link) = &column.link {
            fields.extend(placeholders(&link.route).map(String::from));
            fields.extend(
                link.params
                    .values()
                    .map(|v| v.trim_start_matches("row.").to_string()),
            );
        }
    }
    for action in table.row_actions.iter().chain(&table.bulk_actions) {
        if action.kind == ActionType::Navigate
            && let Some(route) = action.target_route()
        {
            fields.extend(placeholders(route).map(String::from));
        }
        fields.extend(
            action
                .params
                .values()
                .filter_map(|v| v.strip_prefix("row."))
                .map(String::from),
        );
        fields.extend(action.conditions.iter().map(|c| c.field.clone()));
    }
    fields
}

/// The fields of `sections` the caller may see (section capabilities,
/// field `visibility`), and `id`.
pub fn section_fields<'a>(
    sections: impl IntoIterator<Item = &'a Section>,
    caps: &CapabilitySet,
) -> BTreeSet<String> {
    let mut fields: BTreeSet<String> = sections
        .into_iter()
        .filter(|s| caps.has_all(&s.capabilities))
        .flat_map(|s| &s.fields)
        .filter(|f| f.visible_with(|c| caps.has(c)))
        .map(|f| f.field.clone())
        .collect();
    fields.insert("id".into());
    fields
}

/// The fields of a form's sections the caller may see, and `id`.
pub fn form_fields(form: &Form, caps: &CapabilitySet) -> BTreeSet<String> {
    section_fields(&form.sections, caps)
}

/// The fields a page's own record fills: those of its sections without a
/// data source of their own, and the `{placeholders}` of its title and
/// breadcrumb (`title: "{name}"`).
pub fn page_record_fields(page: &Page, caps: &CapabilitySet) -> BTreeSet<String> {
    let mut fields = section_fields(
        page.sections
            .iter()
            .filter(|s| s.data_source.is_none() && s.table.is_none()),
        caps,
    );
    let texts = std::iter::once(&page.title).chain(page.breadcrumb.iter().map(|b| &b.label));
    for text in texts {
        fields.extend(placeholders(text).map(String::from));
    }
    fields
}

/// The record a data source answered, reduced to `fields`: the object at
/// `mapping.items_path` (else the whole answer); `null` when that is not
/// an object. The fields are moved out of `response`.
pub fn record_answer(source: &DataSource, mut response: Value, fields: &BTreeSet<String>) -> Value {
    let (record, field_map) = mapped(source, &mut response);
    match record {
        Some(record @ Value::Object(_)) => Projection::new(fields, field_map).take(record),
        _ => Value::Null,
    }
}

/// What a data source's answer holds at its `items_path` (else the whole
/// answer), and its `field_map`.
fn mapped<'a>(
    source: &'a DataSource,
    response: &'a mut Value,
) -> (Option<&'a mut Value>, &'a BTreeMap<String, String>) {
    static EMPTY: BTreeMap<String, String> = BTreeMap::new();
    let mapping = source.mapping.as_ref();
    let at = match mapping.and_then(|m| m.items_path.as_deref()) {
        Some(path) => follow_mut(response, &steps(path)),
        None => Some(response),
    };
    (at, mapping.map_or(&EMPTY, |m| &m.field_map))
}

/// The reduction of backend records to UI fields, with each field's paths
/// read once for all the records it is applied to (a table's rows).
pub struct Projection<'a> {
    fields: Vec<Copy<'a>>,
}

/// One field of a [`Projection`].
struct Copy<'a> {
    /// Where the value is in the backend record.
    source: Vec<Step<'a>>,
    /// Where it goes in the answer.
    target: Vec<Step<'a>>,
    /// Whether another field reads the same value, a part of it or the
    /// value it is part of (so it cannot be moved out).
    shared: bool,
}

impl<'a> Projection<'a> {
    /// `fields` (UI names), each read from its backend name (`field_map`,
    /// else the same name).
    pub fn new(fields: &'a BTreeSet<String>, field_map: &'a BTreeMap<String, String>) -> Self {
        let mut fields: Vec<Copy<'a>> = fields
            .iter()
            .map(|field| Copy {
                source: steps(field_map.get(field).map_or(field.as_str(), String::as_str)),
                target: steps(field),
                shared: false,
            })
            .collect();
        for i in 0..fields.len() {
            fields[i].shared = (0..fields.len()).any(|j| {
                let (a, b) = (&fields[i].source, &fields[j].source);
                let n = a.len().min(b.len());
                i != j && a[..n] == b[..n]
            });
        }
        Self { fields }
    }

    /// `record` reduced to the fields, which are moved out of it (copied
    /// when shared).
    pub fn take(&self, record: &mut Value) -> Value {
        let mut out = Map::new();
        for copy in &self.fields {
            let value = if copy.shared {
                follow(record, &copy.source).cloned()
            } else {
                follow_mut(record, &copy.source).map(Value::take)
            };
            if let Some(value) = value {
                set_in(&mut out, &copy.target, value);
            }
        }
        Value::Object(out)
    }
}

/// The answer of a table's data source as sent to the frontend: `items`
/// (projected), `total` when the backend gives one, the paging, and
/// `next_cursor` for cursor-paged services. The rows' fields are moved out
/// of `response`.
pub fn table_answer(
    table: &Table,
    source: &DataSource,
    mut response: Value,
    paging: Paging,
    caps: &CapabilitySet,
) -> Value {
    let mapping = source.mapping.as_ref();
    let mut answer = Map::new();
    if let Some(total) = mapping
        .and_then(|m| m.total_path.as_deref())
        .and_then(|p| get_path(&response, p))
        .filter(|t| t.is_number())
    {
        answer.insert("total".into(), total.clone());
    }
    answer.insert("page".into(), paging.page.into());
    answer.insert("page_size".into(), paging.size.into());
    let has_next = get_path(&response, "page_info.has_next_page").and_then(Value::as_bool);
    let cursor = get_path(&response, "next_cursor")
        .or_else(|| get_path(&response, "page_info.end_cursor").filter(|_| has_next != Some(false)))
        .filter(|c| c.is_string());
    if let Some(cursor) = cursor {
        answer.insert("next_cursor".into(), cursor.clone());
    }
    let fields = row_fields(table, caps);
    let (items, field_map) = mapped(source, &mut response);
    let projection = Projection::new(&fields, field_map);
    let items: Vec<Value> = items
        .and_then(Value::as_array_mut)
        .map(|list| list.iter_mut().map(|r| projection.take(r)).collect())
        .unwrap_or_default();
    answer.insert("items".into(), Value::Array(items));
    Value::Object(answer)
}

/// The operation a data source (or a binding) calls, resolved to its
/// service and that service's spec.
pub fn operation<'a>(
    state: &'a AppState,
    operation_id: Option<&str>,
    service_id: Option<&str>,
) -> Result<(&'a str, &'a Operation, Option<&'a ServiceSpec>), ApiError> {
    let operation_id = operation_id.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "HANDLER_NOT_AVAILABLE",
            "this element reads through an SDK handler; handlers run commands and \
             workflow steps, reads need an OpenAPI operation",
        )
    })?;
    let (service, operation) =
        Invoker::resolve(&state.index, operation_id, service_id).map_err(ApiError::backend)?;
    Ok((service, operation, state.index.service(service)))
}

/// Calls a reading operation for the caller.
pub async fn read(
    state: &AppState,
    service: &str,
    operation: &Operation,
    request: &Request,
    context: &CallContext,
) -> Result<Value, ApiError> {
    let body = request.body.clone().map(Value::Object);
    state
        .invoker
        .call(service, operation, &request.params, body.as_ref(), context)
        .await
        .map_err(ApiError::backend)
}

/// The operation `source` reads and its request for `route` and `query`.
fn source_request<'a>(
    state: &'a AppState,
    source: &DataSource,
    route: &[(String, String)],
    query: &[(String, String)],
) -> Result<(&'a str, &'a Operation, Request), ApiError> {
    let (service, operation, spec) = self::operation(
        state,
        source.operation_id.as_deref(),
        source.service_id.as_deref(),
    )?;
    let request = read_request(spec, operation, source.mapping.as_ref(), route, query)?;
    Ok((service, operation, request))
}

/// The record of `source` for the caller, reduced to `fields`.
pub async fn record(
    state: &AppState,
    context: &CallContext,
    source: &DataSource,
    fields: &BTreeSet<String>,
    route: &[(String, String)],
    query: &[(String, String)],
) -> Result<Value, ApiError> {
    let (service, operation, request) = source_request(state, source, route, query)?;
    let response = read(state, service, operation, &request, context).await?;
    Ok(record_answer(source, response, fields))
}

/// A page of `table`'s rows from `source`, for the caller.
pub async fn rows(
    state: &AppState,
    caller: &Caller,
    context: &CallContext,
    table: &Table,
    source: &DataSource,
    route: &[(String, String)],
    query: &[(String, String)],
) -> Result<Value, ApiError> {
    let (service, operation, request) = source_request(state, source, route, query)?;
    let pagination = state
        .config
        .services
        .get(service)
        .map(|s| s.pagination.clone())
        .unwrap_or_default();
    let (request, paging) = table_request(table, source, request, &pagination, query)?;
    let response = read(state, service, operation, &request, context).await?;
    Ok(table_answer(
        table,
        source,
        response,
        paging,
        &caller.capabilities,
    ))
}

/// A section's own data: its table's rows, or its record. `None` for a
/// section without either.
fn section_data<'a>(
    state: &'a AppState,
    caller: &'a Caller,
    context: &'a CallContext,
    section: &'a Section,
    route: &'a [(String, String)],
    query: &'a [(String, String)],
) -> Option<BoxFuture<'a, Result<Value, ApiError>>> {
    match (&section.table, &section.data_source) {
        (Some(table), source) => {
            let source = source.as_deref().or(table.data_source.as_ref())?;
            Some(rows(state, caller, context, table, source, route, query).boxed())
        }
        (None, Some(source)) => {
            let fields = section_fields([section], &caller.capabilities);
            Some(
                async move {
                    let record = record(state, context, source, &fields, route, query).await?;
                    Ok(serde_json::json!({ "data": record }))
                }
                .boxed(),
            )
        }
        (None, None) => None,
    }
}

/// `GET /ui/pages/{id}/data` of a page the caller may see: its table's
/// rows, its record and its sections' own data (see the module doc); with
/// `section=<id>`, that section's data only. `None` when there is nothing
/// to serve (no data source, or no such section for the caller).
pub async fn page(
    state: &AppState,
    caller: &Caller,
    context: &CallContext,
    page: &Page,
    query: &[(String, String)],
) -> Option<Result<Value, ApiError>> {
    let route = route_values(page, query);
    let visible = |s: &&Section| caller.capabilities.has_all(&s.capabilities);
    if let Some(id) = query_value(query, "section") {
        let section = page
            .sections
            .iter()
            .filter(visible)
            .find(|s| s.id.as_deref() == Some(id))?;
        return Some(section_data(state, caller, context, section, &route, query)?.await);
    }
    let table = page.table.as_ref().and_then(|table| {
        let source = table.data_source.as_ref()?;
        Some(rows(state, caller, context, table, source, &route, query))
    });
    let fields = page_record_fields(page, &caller.capabilities);
    let own = page
        .data_source
        .as_ref()
        .map(|source| record(state, context, source, &fields, &route, query));
    let sections: Vec<(&str, BoxFuture<'_, Result<Value, ApiError>>)> = page
        .sections
        .iter()
        .filter(visible)
        .filter_map(|section| {
            let id = section.id.as_deref()?;
            Some((
                id,
                section_data(state, caller, context, section, &route, query)?,
            ))
        })
        .collect();
    if table.is_none() && own.is_none() && sections.is_empty() {
        return None;
    }
    let (ids, calls): (Vec<&str>, Vec<_>) = sections.into_iter().unzip();
    let answer = async {
        let table = async {
            match table {
                Some(call) => call.await.map(Some),
                None => Ok(None),
            }
        };
        let own = async {
            match own {
                Some(call) => call.await.map(Some),
                None => Ok(None),
            }
        };
        let (table, own, sections) = futures::try_join!(table, own, try_join_all(calls))?;
        let mut answer = match table {
            Some(Value::Object(rows)) => rows,
            _ => Map::new(),
        };
        if let Some(record) = own {
            answer.insert("data".into(), record);
        }
        if !ids.is_empty() {
            let sections: Map<String, Value> =
                ids.into_iter().map(String::from).zip(sections).collect();
            answer.insert("sections".into(), Value::Object(sections));
        }
        Ok(Value::Object(answer))
    };
    Some(answer.await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn projection_keeps_only_named_fields_under_their_ui_names() {
        let record = json!({"id": "o1", "order_number": "A-1", "total": {"amount": 5, "cost": 3}, "secret": 1});
        let fields: BTreeSet<String> = ["id", "number", "total.amount"].map(String::from).into();
        let map = BTreeMap::from([("number".to_string(), "order_number".to_string())]);
        assert_eq!(
            Projection::new(&fields, &map).take(&mut record.clone()),
            json!({"id": "o1", "number": "A-1", "total": {"amount": 5}})
        );
    }

    #[test]
    fn fields_read_by_two_ui_fields_are_copied_not_moved() {
        let mut record = json!({"id": "o1", "total": {"amount": 5}, "customer": {"name": "Ann"}});
        let fields: BTreeSet<String> = ["id", "ref", "total", "amount", "customer.name"]
            .map(String::from)
            .into();
        let map = BTreeMap::from([
            ("ref".to_string(), "id".to_string()),
            ("amount".to_string(), "total.amount".to_string()),
        ]);
        assert_eq!(
            Projection::new(&fields, &map).take(&mut record),
            json!({"id": "o1", "ref": "o1", "total": {"amount": 5}, "amount": 5,
                   "customer": {"name": "Ann"}})
        );
        // Unshared fields were moved out of the answer.
        assert_eq!(record["customer"]["name"], Value::Null);
    }

    #[test]
    fn paths_with_list_indices() {
        let record = json!({"contacts": [{"detail": "a@b"}, {"detail": "c@d"}], "x.y": 1});
        assert_eq!(get_path(&record, "contacts[1].detail"), Some(&json!("c@d")));
        assert_eq!(get_path(&record, "contacts[2].detail"), None);
        assert_eq!(
            get_path(&record, "contacts[x]"),
            None,
            "not an index: a key"
        );
        let fields: BTreeSet<String> = ["contacts[1].detail"].map(String::from).into();
        assert_eq!(
            Projection::new(&fields, &BTreeMap::new()).take(&mut record.clone()),
            json!({"contacts": [null, {"detail": "c@d"}]})
        );
        let mut out = Map::new();
        set_path(&mut out, "a[99999].b", json!(1));
        assert_eq!(
            Value::Object(out),
            json!({"a[99999]": {"b": 1}}),
            "no huge lists"
        );
    }

    #[test]
    fn records_are_read_at_items_path() {
        let source: DataSource = serde_json::from_value(
            json!({"operation_id": "getLink", "mapping": {"items_path": "data"}}),
        )
        .unwrap();
        let fields: BTreeSet<String> = ["id", "title"].map(String::from).into();
        let response = json!({"data": {"id": "l1", "title": "T", "secret": 1}});
        assert_eq!(
            record_answer(&source, response.clone(), &fields),
            json!({"id": "l1", "title": "T"})
        );
        assert_eq!(
            record_answer(&source, json!({"data": [1]}), &fields),
            Value::Null
        );
    }
}
