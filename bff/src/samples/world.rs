//! The sample backends' data and what each operation does to it. Routes
//! are read from the specs' path templates: `/orders` lists and creates
//! orders, `/orders/{id}` reads, updates and deletes one, a POST below an
//! item (`/orders/{id}/cancel`) is a command on it unless it answers with
//! another kind of record (`/orders/{id}/returns` creates a return for the
//! order), `/orders/search` (or a `q`/`query` parameter) searches, and any
//! other GET (`/orders/counts`) is computed from the data.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::values::{self, enum_of, properties, resolve, singular, type_of};

/// Items seeded into a collection that can be created and read.
const SEEDED: usize = 57;
/// Items seeded into a list-only collection without enum values.
const SEEDED_REFERENCE: usize = 6;
/// Items seeded into a collection with no list route.
const SEEDED_UNLISTED: usize = 5;

/// One segment of a path template.
#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Literal(String),
    Param(String),
}

/// What an operation does.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    List(String),
    Create {
        collection: String,
        parent: Option<(String, usize)>,
    },
    Get(String),
    Update(String),
    Delete(String),
    Command {
        collection: String,
        verb: String,
    },
    Search(String),
    Computed(Option<String>),
}

#[derive(Debug)]
struct Route {
    method: String,
    segments: Vec<Segment>,
    kind: Kind,
    /// The success response's schema and status.
    response: Value,
    status: u16,
    /// Query parameter names the spec declares.
    query: Vec<String>,
    service: String,
}

/// A collection of records.
#[derive(Debug, Default)]
struct Collection {
    schema: Value,
    key: String,
    items: Vec<Map<String, Value>>,
    next: usize,
    /// Which spec's schemas `schema` refers into.
    service: String,
}

/// Every sample backend's data, shared so references across services
/// (`customer_id` of an order) name records that exist.
pub struct World {
    specs: BTreeMap<String, Value>,
    routes: Vec<Route>,
    collections: BTreeMap<String, Collection>,
}

/// An answer: HTTP status and JSON body (`Null` for none).
pub type Answer = (u16, Value);

fn segments(path: &str) -> Vec<Segment> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(
            |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => Segment::Param(name.to_string()),
                None => Segment::Literal(s.to_string()),
            },
        )
        .collect()
}

fn success(spec: &Value, operation: &Value) -> (u16, Value) {
    let responses = operation.get("responses").and_then(Value::as_object);
    for (code, response) in responses.into_iter().flatten() {
        let Ok(status) = code.parse::<u16>() else {
            continue;
        };
        if (200..300).contains(&status) {
            let response = resolve(spec, response);
            let schema = response
                .pointer("/content/application~1json/schema")
                .cloned()
                .unwrap_or(Value::Null);
            return (status, schema);
        }
    }
    (200, Value::Null)
}

/// The array property of a list response and its item schema.
fn list_items(spec: &Value, schema: &Value) -> Option<(Option<String>, Value)> {
    if type_of(spec, schema) == "array" {
        return Some((
            None,
            resolve(spec, schema)
                .get("items")
                .cloned()
                .unwrap_or(Value::Null),
        ));
    }
    properties(spec, schema)
        .into_iter()
        .find_map(|(name, property)| {
            (type_of(spec, &property) == "array").then(|| {
                let items = resolve(spec, &property)
                    .get("items")
                    .cloned()
                    .unwrap_or(Value::Null);
                (Some(name), items)
            })
        })
}

impl World {
    /// Reads the routes of every spec (service ID → parsed document) and
    /// seeds the collections.
    pub fn new(specs: BTreeMap<String, Value>) -> Self {
        let mut routes = Vec::new();
        for (service, spec) in &specs {
            for (path, item) in spec
                .get("paths")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                let item = resolve(spec, item);
                let shared_params: Vec<Value> = item
                    .get("parameters")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                for method in ["get", "post", "put", "patch", "delete"] {
                    let Some(operation) = item.get(method) else {
                        continue;
                    };
                    let (status, response) = success(spec, operation);
                    let query = shared_params
                        .iter()
                        .chain(
                            operation
                                .get("parameters")
                                .and_then(Value::as_array)
                                .into_iter()
                                .flatten(),
                        )
                        .map(|p| resolve(spec, p))
                        .filter(|p| p.get("in").and_then(Value::as_str) == Some("query"))
                        .filter_map(|p| p.get("name").and_then(Value::as_str).map(str::to_string))
                        .collect();
                    routes.push(Route {
                        method: method.to_uppercase(),
                        segments: segments(path),
                        kind: Kind::Computed(None),
                        response,
                        status,
                        query,
                        service: service.clone(),
                    });
                }
            }
        }
        let mut world = World {
            specs,
            routes,
            collections: BTreeMap::new(),
        };
        world.classify();
        world.seed();
        world
    }

    fn spec(&self, service: &str) -> &Value {
        &self.specs[service]
    }

    fn props(&self, service: &str, schema: &Value) -> Vec<String> {
        properties(self.spec(service), schema)
            .keys()
            .cloned()
            .collect()
    }

    fn classify(&mut self) {
        let mut kinds = Vec::new();
        for route in &self.routes {
            let spec = self.spec(&route.service);
            let s = &route.segments;
            let literal_before = |i: usize| match i.checked_sub(1).map(|j| &s[j]) {
                Some(Segment::Literal(l)) => Some(l.clone()),
                _ => None,
            };
            let searches = route.query.iter().any(|q| q == "q" || q == "query");
            let kind = match s.last() {
                Some(Segment::Param(_)) => match literal_before(s.len() - 1) {
                    Some(collection) => match route.method.as_str() {
                        "GET" => Kind::Get(collection),
                        "PUT" | "PATCH" => Kind::Update(collection),
                        "DELETE" => Kind::Delete(collection),
                        _ => Kind::Command {
                            collection,
                            verb: String::new(),
                        },
                    },
                    None => Kind::Computed(None),
                },
                Some(Segment::Literal(last)) => {
                    let below_item = s.len() >= 2 && matches!(s[s.len() - 2], Segment::Param(_));
                    if below_item {
                        let parent = literal_before(s.len() - 2).unwrap_or_default();
                        let parent_props: Vec<String> = self
                            .routes
                            .iter()
                            .filter(|r| r.service == route.service && r.method == "GET")
                            .filter(|r| {
                                r.segments.len() == s.len() - 1
                                    && r.segments[..] == s[..s.len() - 1]
                            })
                            .flat_map(|r| self.props(&r.service, &r.response))
                            .collect();
                        let response_props = self.props(&route.service, &route.response);
                        let same_record = !response_props.is_empty()
                            && response_props.iter().all(|p| parent_props.contains(p));
                        match route.method.as_str() {
                            "GET" => Kind::List(last.clone()),
                            _ if same_record || response_props.is_empty() => Kind::Command {
                                collection: parent,
                                verb: last.clone(),
                            },
                            _ => Kind::Create {
                                collection: last.clone(),
                                parent: Some((parent, s.len() - 2)),
                            },
                        }
                    } else {
                        let owner = literal_before(s.len() - 1);
                        match (route.method.as_str(), owner) {
                            ("GET", Some(owner)) if searches || last == "search" => {
                                Kind::Search(owner)
                            }
                            ("GET", None) if searches => Kind::Search(last.clone()),
                            ("GET", owner) if owner.is_some() => Kind::Computed(owner),
                            ("GET", _) if list_items(spec, &route.response).is_some() => {
                                Kind::List(last.clone())
                            }
                            ("GET", _) => Kind::Computed(None),
                            (_, Some(owner)) if s.len() == 2 => Kind::Command {
                                collection: owner,
                                verb: last.clone(),
                            },
                            _ => Kind::Create {
                                collection: last.clone(),
                                parent: None,
                            },
                        }
                    }
                }
                None => Kind::Computed(None),
            };
            kinds.push(kind);
        }
        for (route, kind) in self.routes.iter_mut().zip(kinds) {
            route.kind = kind;
        }
    }

    /// The record schema and key of every collection: from a GET of one
    /// record, else a create's answer, else a list's items.
    fn seed(&mut self) {
        let mut schemas: BTreeMap<String, (u8, String, Value, String)> = BTreeMap::new();
        let mut listed: BTreeMap<String, bool> = BTreeMap::new();
        let mut creatable: BTreeMap<String, bool> = BTreeMap::new();
        for route in &self.routes {
            let spec = self.spec(&route.service);
            let candidate = match &route.kind {
                Kind::Get(c) => {
                    let key = match route.segments.last() {
                        Some(Segment::Param(p))
                            if properties(spec, &route.response).contains_key(p) =>
                        {
                            p.clone()
                        }
                        _ => "id".into(),
                    };
                    Some((c, 0, route.response.clone(), key))
                }
                Kind::Create { collection, .. } => {
                    creatable.insert(collection.clone(), true);
                    Some((collection, 1, route.response.clone(), "id".into()))
                }
                Kind::List(c) => {
                    listed.insert(c.clone(), true);
                    list_items(spec, &route.response).map(|(_, items)| {
                        let key = if properties(spec, &items).contains_key("id") {
                            "id"
                        } else {
                            ""
                        };
                        (c, 2, items, key.to_string())
                    })
                }
                Kind::Command { collection, .. } if !route.response.is_null() => {
                    Some((collection, 3, route.response.clone(), "id".into()))
                }
                _ => None,
            };
            if let Some((collection, rank, schema, key)) = candidate {
                if properties(spec, &schema).is_empty() {
                    continue;
                }
                let better = schemas.get(collection).is_none_or(|(r, ..)| rank < *r);
                if better {
                    schemas.insert(
                        collection.clone(),
                        (rank, route.service.clone(), schema, key),
                    );
                }
            }
        }
        for (name, (_, service, schema, mut key)) in schemas {
            let spec = &self.specs[&service];
            let props = properties(spec, &schema);
            if key.is_empty() || !props.contains_key(&key) {
                key = ["id", "sku", "slug", "code", "key"]
                    .iter()
                    .find(|k| props.contains_key(**k))
                    .map(|k| k.to_string())
                    .unwrap_or_else(|| "id".into());
            }
            let lookup_enum = props
                .values()
                .find_map(|p| enum_of(spec, p))
                .map(|v| v.len());
            let count = if !listed.contains_key(&name) {
                SEEDED_UNLISTED
            } else if creatable.contains_key(&name)
                || self
                    .routes
                    .iter()
                    .any(|r| r.kind == Kind::Get(name.clone()))
            {
                SEEDED
            } else {
                lookup_enum.unwrap_or(SEEDED_REFERENCE)
            };
            let items = (0..count)
                .map(|i| record(spec, &schema, &name, &key, i))
                .collect();
            self.collections.insert(
                name,
                Collection {
                    schema,
                    key,
                    items,
                    next: count,
                    service,
                },
            );
        }
        self.link();
    }

    /// `x_id` fields name records of collection `xs` when it exists, and
    /// `x_name` fields copy that record's name.
    fn link(&mut self) {
        let targets: BTreeMap<String, Vec<(Value, Option<Value>)>> = self
            .collections
            .iter()
            .map(|(name, c)| {
                let pairs = c
                    .items
                    .iter()
                    .map(|i| {
                        (
                            i.get(&c.key).cloned().unwrap_or(Value::Null),
                            display_name(i),
                        )
                    })
                    .collect();
                (singular(name), pairs)
            })
            .collect();
        for collection in self.collections.values_mut() {
            let key = collection.key.clone();
            for (index, item) in collection.items.iter_mut().enumerate() {
                link_item(item, &key, &targets, index);
            }
        }
    }

    /// Answers one request.
    pub fn handle(
        &mut self,
        service: &str,
        method: &str,
        path: &str,
        query: &[(String, String)],
        body: &Value,
    ) -> Answer {
        let decoded: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect();
        let parts: Vec<&str> = decoded.iter().map(String::as_str).collect();
        let found = self.routes.iter().find(|r| {
            r.service == service
                && r.method == method
                && r.segments.len() == parts.len()
                && r.segments.iter().zip(&parts).all(|(s, p)| match s {
                    Segment::Literal(l) => l == p,
                    Segment::Param(_) => true,
                })
        });
        let Some(route) = found else {
            return problem(
                404,
                "ROUTE_NOT_FOUND",
                &format!("{method} {path} is no operation of {service}'s spec"),
            );
        };
        if let Some(code) = requested_failure(body) {
            return problem(
                409,
                &code,
                &format!("failure {code} asked for by the request (a \"fail:CODE\" value)"),
            );
        }
        let (kind, response, status) = (route.kind.clone(), route.response.clone(), route.status);
        let spec = self.specs[service].clone();
        let id = parts.last().copied().unwrap_or_default().to_string();
        match kind {
            Kind::List(c) => self.list(&spec, &c, &response, query, None),
            Kind::Search(c) => self.list(&spec, &c, &response, query, Some(search_text(query))),
            Kind::Get(c) => match self.find(&c, &id) {
                Some(i) => (200, Value::Object(self.collections[&c].items[i].clone())),
                None => not_found(&c, &id),
            },
            Kind::Update(c) => match self.find(&c, &id) {
                Some(i) => {
                    let item = &mut self.collections.get_mut(&c).expect("collection").items[i];
                    merge(item, body);
                    touch(item);
                    (200, Value::Object(item.clone()))
                }
                None => not_found(&c, &id),
            },
            Kind::Delete(c) => match self.find(&c, &id) {
                Some(i) => {
                    self.collections
                        .get_mut(&c)
                        .expect("collection")
                        .items
                        .remove(i);
                    (204, Value::Null)
                }
                None => not_found(&c, &id),
            },
            Kind::Command { collection, verb } => {
                let target = if verb.is_empty() {
                    id.clone()
                } else {
                    parts[parts.len() - 2].to_string()
                };
                match self.find(&collection, &target) {
                    Some(i) => self.command(&collection, i, &verb, body, status),
                    None => not_found(&collection, &target),
                }
            }
            Kind::Create { collection, parent } => {
                let parent = parent.map(|(p, at)| (singular(&p), parts[at].to_string()));
                self.create(&collection, &response, body, parent, status)
            }
            Kind::Computed(owner) => (
                status,
                self.computed(&spec, &response, owner.as_deref(), query),
            ),
        }
    }

    fn find(&self, collection: &str, id: &str) -> Option<usize> {
        let c = self.collections.get(collection)?;
        c.items.iter().position(|i| match i.get(&c.key) {
            Some(Value::String(s)) => s == id,
            Some(other) => scalar_text(other) == id,
            None => false,
        })
    }

    fn list(
        &self,
        spec: &Value,
        collection: &str,
        response: &Value,
        query: &[(String, String)],
        text: Option<String>,
    ) -> Answer {
        let Some(c) = self.collections.get(collection) else {
            return (200, values::value(spec, response, "", collection, 0, 0));
        };
        let get = |names: &[&str]| {
            query
                .iter()
                .find(|(k, _)| names.contains(&k.as_str()))
                .map(|(_, v)| v.as_str())
        };
        let paging = [
            "offset",
            "limit",
            "page",
            "per_page",
            "page_size",
            "size",
            "first",
            "after",
            "cursor",
            "sort_by",
            "sort",
            "order_by",
            "order",
            "sort_dir",
            "direction",
            "q",
            "query",
        ];
        let mut items: Vec<&Map<String, Value>> = c
            .items
            .iter()
            .filter(|item| {
                query.iter().all(|(k, v)| {
                    if paging.contains(&k.as_str()) || v.is_empty() {
                        return true;
                    }
                    match dotted(item, k) {
                        Some(Value::String(s)) => s == v,
                        Some(other) => scalar_text(other) == *v,
                        None if k == "low_stock" => (v == "true") == below_reorder_level(item),
                        None => true,
                    }
                })
            })
            .filter(|item| match &text {
                Some(text) => contains_text(&Value::Object((*item).clone()), text),
                None => true,
            })
            .collect();
        if let Some(field) = get(&["sort_by", "sort", "order_by"]) {
            items.sort_by(|a, b| compare(dotted(a, field), dotted(b, field)));
            let direction = query
                .iter()
                .find(|(k, v)| {
                    ["order", "sort_dir", "direction"].contains(&k.as_str())
                        && (v == "asc" || v == "desc")
                })
                .map(|(_, v)| v.as_str());
            if direction == Some("desc") {
                items.reverse();
            }
        }
        let total = items.len();
        let limit: usize = get(&["limit", "per_page", "page_size", "size", "first"])
            .and_then(|v| v.parse().ok())
            .unwrap_or(if text.is_some() { 10 } else { 25 })
            .clamp(1, 200);
        let page: Option<usize> = get(&["page"]).and_then(|v| v.parse().ok());
        let offset = match (get(&["offset"]), page, get(&["after", "cursor"])) {
            (Some(o), _, _) => o.parse().unwrap_or(0),
            (_, Some(p), _) => p.max(1).saturating_sub(1) * limit,
            (_, _, Some(cursor)) => cursor.trim_start_matches('o').parse().unwrap_or(0),
            _ => 0,
        };
        let slice: Vec<Value> = items
            .iter()
            .skip(offset)
            .take(limit)
            .map(|i| Value::Object((*i).clone()))
            .collect();
        let end = offset + slice.len();
        let more = end < total;
        let cursor = if more {
            json!(format!("o{end}"))
        } else {
            Value::Null
        };
        let Some((field, _)) = list_items(spec, response) else {
            return (200, Value::Array(slice));
        };
        let Some(field) = field else {
            return (200, Value::Array(slice));
        };
        let mut out = Map::new();
        for (name, property) in properties(spec, response) {
            let value = if name == field {
                Value::Array(slice.clone())
            } else {
                match name.as_str() {
                    "total" | "total_count" | "count" | "total_items" => json!(total),
                    "offset" => json!(offset),
                    "limit" | "per_page" | "page_size" | "first" => json!(limit),
                    "page" => json!(page.unwrap_or(offset / limit + 1)),
                    "has_more" | "has_next" | "has_next_page" => json!(more),
                    "next_cursor" | "cursor" | "next" | "end_cursor" => cursor.clone(),
                    "page_info" | "pageInfo" => {
                        json!({"end_cursor": cursor, "has_next_page": more})
                    }
                    _ => values::value(spec, &property, &name, collection, 0, 1),
                }
            };
            out.insert(name, value);
        }
        (200, Value::Object(out))
    }

    fn command(
        &mut self,
        collection: &str,
        index: usize,
        verb: &str,
        body: &Value,
        status: u16,
    ) -> Answer {
        let c = self.collections.get_mut(collection).expect("collection");
        let spec = &self.specs[&c.service];
        let props = properties(spec, &c.schema);
        let states = props
            .get("status")
            .and_then(|s| enum_of(spec, s))
            .unwrap_or_default();
        let item = &mut c.items[index];
        // Body fields the record has are copied; `x_delta` adds to `x`.
        if let Some(fields) = body.as_object() {
            for (name, value) in fields {
                if let Some(target) = name.strip_suffix("_delta") {
                    add_delta(item, target, value.as_i64().unwrap_or(0));
                } else if props.contains_key(name) && name != "status" {
                    item.insert(name.clone(), value.clone());
                }
            }
        }
        let stem = verb.trim_end_matches('e');
        let chosen = body
            .as_object()
            .into_iter()
            .flat_map(|b| b.values())
            .find(|v| states.contains(v))
            .cloned()
            .or_else(|| {
                (!stem.is_empty())
                    .then(|| {
                        states
                            .iter()
                            .find(|s| s.as_str().is_some_and(|s| s.starts_with(stem)))
                            .cloned()
                    })
                    .flatten()
            });
        if let Some(state) = chosen {
            item.insert("status".into(), state);
        }
        if !stem.is_empty() {
            for (name, schema) in &props {
                if name.starts_with(stem) && type_of(spec, schema) == "boolean" {
                    item.insert(name.clone(), json!(true));
                }
            }
        }
        touch(item);
        (status, Value::Object(item.clone()))
    }

    fn create(
        &mut self,
        collection: &str,
        response: &Value,
        body: &Value,
        parent: Option<(String, String)>,
        status: u16,
    ) -> Answer {
        let Some(c) = self.collections.get_mut(collection) else {
            let mut answer = body.clone();
            if let Some(map) = answer.as_object_mut() {
                map.insert("id".into(), json!(values::uuid(collection, 0)));
            }
            return (
                status,
                if response.is_null() {
                    Value::Null
                } else {
                    answer
                },
            );
        };
        let spec = &self.specs[&c.service];
        let mut item = record(spec, &c.schema, collection, &c.key, c.next);
        c.next += 1;
        for (name, value) in properties(spec, &c.schema) {
            if let Some(states) = enum_of(spec, &value).filter(|_| name == "status") {
                item.insert(name, states[0].clone());
            }
        }
        merge(&mut item, body);
        if let Some((parent, id)) = parent {
            item.insert(format!("{parent}_id"), json!(id));
        }
        for field in ["created_at", "updated_at"] {
            if item.contains_key(field) {
                item.insert(field.into(), json!(values::now()));
            }
        }
        c.items.insert(0, item.clone());
        (status, Value::Object(item))
    }

    /// A computed answer: integer fields named after a status count the
    /// records in it, `x_...` counts records of collection `xs` in their
    /// first status, `count` counts the owner's records.
    fn computed(
        &self,
        spec: &Value,
        response: &Value,
        owner: Option<&str>,
        query: &[(String, String)],
    ) -> Value {
        let owner_collection = owner.and_then(|o| self.collections.get(o));
        if let Some((Some(field), item)) = list_items(spec, response) {
            let mut out = Map::new();
            let states = properties(spec, &item)
                .values()
                .find_map(|p| enum_of(spec, p));
            let rows: Vec<Value> = match states {
                Some(states) => (0..states.len())
                    .map(|i| values::value(spec, &item, "", "items", i, 1))
                    .collect(),
                None => (0..SEEDED_REFERENCE)
                    .map(|i| values::value(spec, &item, "", "items", i, 1))
                    .collect(),
            };
            out.insert(field, Value::Array(rows));
            return Value::Object(out);
        }
        let mut out = match values::value(spec, response, "", owner.unwrap_or("items"), 0, 0) {
            Value::Object(map) => map,
            other => return other,
        };
        for (name, value) in out.iter_mut() {
            if !value.is_number() {
                continue;
            }
            let by_status = |c: &Collection, state: &str| {
                c.items
                    .iter()
                    .filter(|i| i.get("status").and_then(Value::as_str) == Some(state))
                    .count()
            };
            if let Some(c) = owner_collection.filter(|c| {
                c.items
                    .iter()
                    .any(|i| i.get("status").and_then(Value::as_str) == Some(name))
            }) {
                *value = json!(by_status(c, name));
            } else if let Some((prefix, _)) = name.split_once('_')
                && let Some(c) = self.collections.get(prefix)
            {
                let first = c
                    .items
                    .iter()
                    .rev()
                    .find_map(|i| i.get("status").and_then(Value::as_str))
                    .map(str::to_string);
                *value = json!(match first {
                    Some(_) => c
                        .items
                        .iter()
                        .filter(|i| {
                            let spec = &self.specs[&c.service];
                            let initial = properties(spec, &c.schema)
                                .get("status")
                                .and_then(|s| enum_of(spec, s))
                                .and_then(|s| s.first().cloned());
                            i.get("status") == initial.as_ref()
                        })
                        .count(),
                    None => c.items.len(),
                });
            } else if name == "count" || name == "total" {
                if let Some(c) = owner_collection {
                    let low = c.items.iter().filter(|i| below_reorder_level(i)).count();
                    *value = json!(if query.is_empty() && low > 0 {
                        low
                    } else {
                        c.items.len()
                    });
                }
            }
        }
        Value::Object(out)
    }
}

/// One seeded record: generated from the schema, its key set.
fn record(
    spec: &Value,
    schema: &Value,
    collection: &str,
    key: &str,
    index: usize,
) -> Map<String, Value> {
    let mut item = match values::value(spec, schema, "", collection, index, 0) {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    let id_schema = properties(spec, schema)
        .get(key)
        .cloned()
        .unwrap_or(Value::Null);
    let key_value = if resolve(spec, &id_schema)
        .get("format")
        .and_then(Value::as_str)
        == Some("uuid")
    {
        values::uuid(collection, index)
    } else if key == "sku" {
        format!("SKU-{}", 1001 + index)
    } else if key == "id" {
        format!("{}-{}", singular(collection), 1001 + index)
    } else {
        match item.get(key) {
            Some(Value::String(s)) => s.clone(),
            _ => format!("{}-{}", singular(collection), 1001 + index),
        }
    };
    item.insert(key.into(), json!(key_value));
    item
}

fn display_name(item: &Map<String, Value>) -> Option<Value> {
    ["name", "full_name", "display_name", "title", "label"]
        .iter()
        .find_map(|k| item.get(*k).filter(|v| v.is_string()).cloned())
}

fn link_item(
    item: &mut Map<String, Value>,
    key: &str,
    targets: &BTreeMap<String, Vec<(Value, Option<Value>)>>,
    index: usize,
) {
    let fields: Vec<String> = item
        .keys()
        .filter(|k| k.ends_with("_id") && *k != key)
        .cloned()
        .collect();
    for field in fields {
        let target = field.trim_end_matches("_id");
        let Some(records) = targets.get(target).filter(|r| !r.is_empty()) else {
            continue;
        };
        let (id, name) = &records[(index * 3 + 1) % records.len()];
        item.insert(field.clone(), id.clone());
        let name_field = format!("{target}_name");
        if let (Some(name), true) = (name, item.contains_key(&name_field)) {
            item.insert(name_field, name.clone());
        }
    }
    for value in item.values_mut() {
        if let Value::Array(rows) = value {
            for (i, row) in rows.iter_mut().enumerate() {
                if let Value::Object(row) = row {
                    link_item(row, "", targets, index + i);
                }
            }
        }
    }
}

fn merge(item: &mut Map<String, Value>, body: &Value) {
    let Some(fields) = body.as_object() else {
        return;
    };
    for (name, value) in fields {
        match (item.get_mut(name), value) {
            (Some(Value::Object(inner)), Value::Object(_)) => merge(inner, value),
            _ => {
                item.insert(name.clone(), value.clone());
            }
        }
    }
}

fn touch(item: &mut Map<String, Value>) {
    if item.contains_key("updated_at") {
        item.insert("updated_at".into(), json!(values::now()));
    }
}

/// Adds `delta` to field `target`, or to the first count in a list of
/// rows (`stock[0].on_hand` for `quantity_delta`).
fn add_delta(item: &mut Map<String, Value>, target: &str, delta: i64) {
    if let Some(n) = item.get(target).and_then(Value::as_i64) {
        item.insert(target.into(), json!(n + delta));
        return;
    }
    for value in item.values_mut() {
        if let Some(Value::Object(row)) = value.as_array_mut().and_then(|rows| rows.first_mut()) {
            if let Some((name, n)) = row
                .iter()
                .find_map(|(k, v)| v.as_i64().map(|n| (k.clone(), n)))
            {
                row.insert(name, json!(n + delta));
                return;
            }
        }
    }
}

fn below_reorder_level(item: &Map<String, Value>) -> bool {
    let Some(level) = item.get("reorder_level").and_then(Value::as_i64) else {
        return false;
    };
    let on_hand: i64 = item
        .get("stock")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.get("on_hand").and_then(Value::as_i64))
        .sum();
    on_hand < level
}

fn search_text(query: &[(String, String)]) -> String {
    query
        .iter()
        .find(|(k, _)| k == "q" || k == "query")
        .map(|(_, v)| v.to_lowercase())
        .unwrap_or_default()
}

fn contains_text(value: &Value, text: &str) -> bool {
    match value {
        Value::String(s) => s.to_lowercase().contains(text),
        Value::Object(map) => map.values().any(|v| contains_text(v, text)),
        Value::Array(items) => items.iter().any(|v| contains_text(v, text)),
        _ => false,
    }
}

/// A scalar as query text (`true`, `12`).
fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `total.amount` in a record.
fn dotted<'a>(item: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut value = item.get(parts.next()?)?;
    for part in parts {
        value = value.get(part)?;
    }
    Some(value)
}

fn sort_key(value: Option<&Value>) -> (f64, String) {
    match value {
        Some(Value::Number(n)) => (n.as_f64().unwrap_or(0.0), String::new()),
        Some(Value::String(s)) => match s.parse::<f64>() {
            Ok(n) if !s.contains('-') => (n, String::new()),
            _ => (0.0, s.clone()),
        },
        Some(Value::Object(map)) => sort_key(map.get("amount").or_else(|| map.values().next())),
        Some(other) => (0.0, other.to_string()),
        None => (0.0, String::new()),
    }
}

fn compare(a: Option<&Value>, b: Option<&Value>) -> std::cmp::Ordering {
    let (a, b) = (sort_key(a), sort_key(b));
    a.0.partial_cmp(&b.0)
        .unwrap_or(std::cmp::Ordering::Equal)
        .then(a.1.cmp(&b.1))
}

/// A string value `fail:CODE` anywhere in the body asks for an error.
fn requested_failure(body: &Value) -> Option<String> {
    match body {
        Value::String(s) => s.strip_prefix("fail:").map(|c| c.trim().to_string()),
        Value::Object(map) => map.values().find_map(requested_failure),
        Value::Array(items) => items.iter().find_map(requested_failure),
        _ => None,
    }
}

fn problem(status: u16, code: &str, detail: &str) -> Answer {
    (
        status,
        json!({"type": "about:blank", "title": values::humanize(&code.to_lowercase()), "status": status, "detail": detail, "code": code}),
    )
}

fn not_found(collection: &str, id: &str) -> Answer {
    let code = format!(
        "{}_NOT_FOUND",
        singular(collection).to_uppercase().replace('-', "_")
    );
    problem(
        404,
        &code,
        &format!("no {} with key {id:?}", singular(collection)),
    )
}
