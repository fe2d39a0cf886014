//! Page and form data: the backend request built from a table's data
//! source (paging, sorting and filters mapped to the service's parameter
//! names) or a form's load source, and the answer mapped back to the
//! fields the definition names. Only those fields leave the BFF.
//!
//! Query string of `GET /ui/pages/{id}/data`: `page` (from 1), `page_size`
//! (1–200, default the table's), `sort` (a sortable column) and `sort_dir`
//! (`asc`/`desc`), `cursor` (cursor-paged services), one parameter per
//! declared filter (by its field), and the path parameters of the
//! operation by name (`id` for `/orders/{id}`). Anything else is ignored.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};
use thesa_core::config::{PaginationConfig, PaginationStyle};
use thesa_core::model::{ActionType, Column, Form, Table};
use thesa_core::openapi::{Operation, ParamLocation};

use crate::access::capabilities::CapabilitySet;
use crate::backends::invoker::Params;
use crate::error::ApiError;
use axum::http::StatusCode;

/// Page size when neither the request nor the table gives one.
const DEFAULT_PAGE_SIZE: u32 = 25;
/// Largest page size a caller may ask for.
const MAX_PAGE_SIZE: u32 = 200;

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

/// The backend parameters for a table's data source.
pub fn table_params(
    table: &Table,
    operation: &Operation,
    pagination: &PaginationConfig,
    query: &[(String, String)],
) -> Result<(Params, Paging), ApiError> {
    let field_map = table.data_source.mapping.as_ref().map(|m| &m.field_map);
    let backend_name = |field: &str| {
        field_map
            .and_then(|m| m.get(field))
            .cloned()
            .unwrap_or_else(|| field.to_string())
    };
    let mut params = path_params(operation, query)?;

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
    let query_out = &mut params.query;
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

    let sort = query_value(query, "sort").or(table.default_sort.as_deref());
    if let Some(sort) = sort {
        let sortable = table.columns.iter().any(|c| c.field == sort && c.sortable);
        if !sortable {
            return Err(bad_request(format!(
                "sort: {sort:?} is not a sortable column"
            )));
        }
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
    Ok((params, paging))
}

fn param(configured: &Option<String>, default: &str) -> String {
    configured.clone().unwrap_or_else(|| default.to_string())
}

/// The operation's path parameters, from the query string by name.
pub fn path_params(operation: &Operation, query: &[(String, String)]) -> Result<Params, ApiError> {
    let mut params = Params::default();
    for parameter in &operation.parameters {
        if parameter.location != ParamLocation::Path {
            continue;
        }
        let value = query_value(query, &parameter.name).ok_or_else(|| {
            bad_request(format!("query parameter {:?} is required", parameter.name))
        })?;
        params
            .path
            .insert(parameter.name.clone(), value.to_string());
    }
    Ok(params)
}

/// The value at a dotted path (`data.items`, `total.amount`).
pub fn get_path<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(value, |v, key| v.as_object().and_then(|o| o.get(key)))
}

/// The value at a dotted path of an object's fields.
pub fn get_in<'a>(object: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let (first, rest) = path.split_once('.').unwrap_or((path, ""));
    let value = object.get(first)?;
    if rest.is_empty() {
        Some(value)
    } else {
        get_path(value, rest)
    }
}

/// Sets a dotted path, creating objects on the way.
pub fn set_path(target: &mut Map<String, Value>, path: &str, value: Value) {
    let mut keys = path.split('.').peekable();
    let mut object = target;
    while let Some(key) = keys.next() {
        if keys.peek().is_none() {
            object.insert(key.to_string(), value);
            return;
        }
        let slot = object
            .entry(key.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        let Value::Object(next) = slot else { return };
        object = next;
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

/// The `{name}` placeholders of a route such as `/orders/{id}`.
fn placeholders(route: &str) -> impl Iterator<Item = &str> {
    route
        .split('{')
        .skip(1)
        .filter_map(|part| part.split_once('}').map(|(name, _)| name))
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
            && let Some(route) = &action.navigate_to
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

/// The fields of a form's sections the caller may see (section
/// capabilities, field `visibility`), and `id`.
pub fn form_fields(form: &Form, caps: &CapabilitySet) -> BTreeSet<String> {
    let mut fields: BTreeSet<String> = form
        .sections
        .iter()
        .filter(|s| caps.has_all(&s.capabilities))
        .flat_map(|s| &s.fields)
        .filter(|f| f.visibility.as_deref().is_none_or(|c| caps.has(c)))
        .map(|f| f.field.clone())
        .collect();
    fields.insert("id".into());
    fields
}

/// One backend record reduced to `fields` (UI names), each read from its
/// backend name (`field_map`, else the same name).
pub fn project(
    record: &Value,
    fields: &BTreeSet<String>,
    field_map: &BTreeMap<String, String>,
) -> Value {
    let mut out = Map::new();
    for field in fields {
        let source = field_map.get(field).map_or(field.as_str(), String::as_str);
        if let Some(value) = get_path(record, source) {
            set_path(&mut out, field, value.clone());
        }
    }
    Value::Object(out)
}

/// The answer of a table's data source as sent to the frontend: `items`
/// (projected), `total` when the backend gives one, the paging, and
/// `next_cursor` for cursor-paged services.
pub fn table_answer(
    table: &Table,
    response: &Value,
    paging: Paging,
    caps: &CapabilitySet,
) -> Value {
    let source = &table.data_source;
    let empty = BTreeMap::new();
    let mapping = source.mapping.as_ref();
    let field_map = mapping.map_or(&empty, |m| &m.field_map);
    let items = match mapping.and_then(|m| m.items_path.as_deref()) {
        Some(path) => get_path(response, path),
        None => Some(response),
    };
    let fields = row_fields(table, caps);
    let items: Vec<Value> = items
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|r| project(r, &fields, field_map))
                .collect()
        })
        .unwrap_or_default();
    let mut answer = Map::new();
    answer.insert("items".into(), Value::Array(items));
    if let Some(total) = mapping
        .and_then(|m| m.total_path.as_deref())
        .and_then(|p| get_path(response, p))
        .filter(|t| t.is_number())
    {
        answer.insert("total".into(), total.clone());
    }
    answer.insert("page".into(), paging.page.into());
    answer.insert("page_size".into(), paging.size.into());
    let has_next = get_path(response, "page_info.has_next_page").and_then(Value::as_bool);
    let cursor = get_path(response, "next_cursor")
        .or_else(|| get_path(response, "page_info.end_cursor").filter(|_| has_next != Some(false)))
        .filter(|c| c.is_string());
    if let Some(cursor) = cursor {
        answer.insert("next_cursor".into(), cursor.clone());
    }
    Value::Object(answer)
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
            project(&record, &fields, &map),
            json!({"id": "o1", "number": "A-1", "total": {"amount": 5}})
        );
    }

    #[test]
    fn placeholders_of_routes() {
        assert_eq!(
            placeholders("/orders/{id}/lines/{line}").collect::<Vec<_>>(),
            ["id", "line"]
        );
    }
}
