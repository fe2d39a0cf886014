//! Plausible values for a schema: `$ref`s and `allOf` followed, then a
//! value made from the property's name, format and constraints and the
//! item's position, so the same backend always seeds the same data.

use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const MAX_DEPTH: usize = 4;
const FIRST: [&str; 12] = [
    "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret", "Niklaus",
    "Radia", "Tim",
];
const LAST: [&str; 10] = [
    "Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Hamilton",
    "Wirth",
];
const PRODUCTS: [&str; 10] = [
    "Desk lamp",
    "Office chair",
    "Standing desk",
    "Monitor arm",
    "Keyboard",
    "Notebook",
    "Fountain pen",
    "Cable tray",
    "Headset",
    "Webcam",
];
const CITIES: [&str; 6] = ["Berlin", "Lyon", "Utrecht", "Turin", "Valencia", "Gdansk"];
const COUNTRIES: [&str; 6] = ["DE", "FR", "NL", "IT", "ES", "PL"];
const TEXTS: [&str; 5] = [
    "Leave at the reception.",
    "Customer asked for a call before delivery.",
    "Gift wrapping requested.",
    "Second attempt; first parcel was damaged.",
    "Priority customer.",
];

/// The schema `$ref` points to in `spec` (local references only).
pub fn resolve<'a>(spec: &'a Value, mut schema: &'a Value) -> &'a Value {
    for _ in 0..32 {
        let Some(reference) = schema.get("$ref").and_then(Value::as_str) else {
            return schema;
        };
        let Some(pointer) = reference.strip_prefix('#') else {
            return schema;
        };
        match spec.pointer(pointer) {
            Some(target) => schema = target,
            None => return schema,
        }
    }
    schema
}

/// The properties of an object schema, `allOf` parts merged.
pub fn properties(spec: &Value, schema: &Value) -> Map<String, Value> {
    let schema = resolve(spec, schema);
    let mut out = Map::new();
    for part in schema
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        out.extend(properties(spec, part));
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        out.extend(props.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    out
}

/// The schema's type (the first non-null one of a type list).
pub fn type_of(spec: &Value, schema: &Value) -> String {
    let schema = resolve(spec, schema);
    match schema.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(types)) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("string")
            .to_string(),
        _ if schema.get("properties").is_some() || schema.get("allOf").is_some() => "object".into(),
        _ if schema.get("items").is_some() => "array".into(),
        _ => "string".into(),
    }
}

/// The enum values of a schema, if any.
pub fn enum_of(spec: &Value, schema: &Value) -> Option<Vec<Value>> {
    resolve(spec, schema)
        .get("enum")
        .and_then(Value::as_array)
        .filter(|values| !values.is_empty())
        .cloned()
}

/// A deterministic UUID for item `index` of `collection`.
pub fn uuid(collection: &str, index: usize) -> String {
    let tag = collection
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32));
    format!("{:08x}-0000-4000-8000-{:012x}", tag, index + 1)
}

/// A moment `index` steps into the past from a fixed day.
pub fn timestamp(index: usize) -> String {
    let base =
        OffsetDateTime::from_unix_timestamp(1_795_600_800).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    (base - time::Duration::minutes((index as i64) * 437))
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// Now, for records changed by commands.
pub fn now() -> String {
    OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// "pending_review" → "Pending review".
pub fn humanize(text: &str) -> String {
    let text = text.replace(['_', '-'], " ");
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => text,
    }
}

/// A value for `schema`, for property `name` of an item of `collection`.
pub fn value(
    spec: &Value,
    schema: &Value,
    name: &str,
    collection: &str,
    index: usize,
    depth: usize,
) -> Value {
    if let Some(values) = enum_of(spec, schema) {
        let spread = if name == "status" || name == "state" {
            index * 7 / 3
        } else {
            index
        };
        return values[spread % values.len()].clone();
    }
    let resolved = resolve(spec, schema);
    match type_of(spec, schema).as_str() {
        "object" => {
            if depth >= MAX_DEPTH {
                return json!({});
            }
            let mut out = Map::new();
            for (key, property) in properties(spec, resolved) {
                out.insert(
                    key.clone(),
                    value(spec, &property, &key, collection, index, depth + 1),
                );
            }
            fill_labels(&mut out);
            Value::Object(out)
        }
        "array" => {
            if depth >= MAX_DEPTH {
                return json!([]);
            }
            let items = resolved.get("items").cloned().unwrap_or(Value::Null);
            let singular = singular(name);
            (0..1 + index % 3)
                .map(|i| {
                    value(
                        spec,
                        &items,
                        &singular,
                        collection,
                        index * 3 + i,
                        depth + 1,
                    )
                })
                .collect()
        }
        "integer" => json!(integer(name, resolved, index)),
        "number" => {
            let cents = integer(name, resolved, index) * 100 + ((index * 37) % 100) as i64 + 99;
            json!(cents as f64 / 100.0)
        }
        "boolean" => json!(index % 5 == 4),
        _ => json!(string(name, resolved, collection, index)),
    }
}

fn integer(name: &str, schema: &Value, index: usize) -> i64 {
    let n = index as i64;
    let raw = if name.contains("capacity") {
        1000 + n * 250
    } else if name.contains("reorder") || name.contains("threshold") {
        20
    } else if name.contains("quantity") || name.contains("on_hand") || name.contains("stock") {
        (n * 17) % 120
    } else if name.contains("reserved") {
        n % 7
    } else if name.contains("price") {
        5 + (n * 13) % 300
    } else {
        1 + (n * 13) % 100
    };
    let min = schema
        .get("minimum")
        .and_then(Value::as_i64)
        .unwrap_or(i64::MIN);
    let max = schema
        .get("maximum")
        .and_then(Value::as_i64)
        .unwrap_or(i64::MAX);
    raw.clamp(min, max)
}

fn string(name: &str, schema: &Value, collection: &str, index: usize) -> String {
    let format = schema
        .get("format")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let lower = name.to_ascii_lowercase();
    let person = (
        FIRST[index % FIRST.len()],
        LAST[(index / 2 + index) % LAST.len()],
    );
    let text = if format == "uuid" {
        uuid(collection, index)
    } else if format == "date-time" || lower.ends_with("_at") {
        timestamp(index)
    } else if format == "date" || lower.ends_with("_on") || lower.ends_with("date") {
        timestamp(index)[..10].to_string()
    } else if format == "email" || lower.contains("email") {
        format!("{}.{}@example.com", person.0, person.1).to_lowercase()
    } else if lower == "sku" {
        format!("SKU-{}", 1001 + index)
    } else if lower.ends_with("number") {
        let prefix: String = collection.chars().take(3).collect();
        format!("{}-{}", prefix.to_uppercase(), 10001 + index)
    } else if lower == "currency" {
        "EUR".into()
    } else if lower == "amount" {
        format!("{}.{:02}", 10 + (index * 37) % 490, (index * 13) % 100)
    } else if lower.contains("country") {
        COUNTRIES[index % COUNTRIES.len()].into()
    } else if lower.contains("city") {
        CITIES[index % CITIES.len()].into()
    } else if lower.contains("line1") || lower.contains("street") {
        format!("{} Market Street", 1 + index * 3)
    } else if lower.contains("postal") || lower.contains("zip") {
        format!("{}", 10115 + index * 7)
    } else if lower.contains("phone") {
        format!("+49 30 555 {:04}", index)
    } else if lower.ends_with("_id") || lower == "id" {
        format!("{}-{}", singular(lower.trim_end_matches("_id")), index + 1)
    } else if lower == "slug" || lower == "code" || lower == "category" {
        ["office", "furniture", "electronics", "stationery"][index % 4].into()
    } else if lower.contains("name") || lower == "title" || lower == "label" {
        if is_people(collection) || lower.contains("customer") || lower.contains("user") {
            format!("{} {}", person.0, person.1)
        } else if collection.contains("product") || collection.contains("item") {
            format!(
                "{} {}",
                PRODUCTS[index % PRODUCTS.len()],
                1 + index / PRODUCTS.len()
            )
        } else if collection.contains("warehouse") {
            format!("{} warehouse", CITIES[index % CITIES.len()])
        } else {
            format!("{} {}", humanize(&singular(collection)), index + 1)
        }
    } else if lower.contains("note")
        || lower.contains("description")
        || lower.contains("comment")
        || lower.contains("reason")
        || lower.contains("text")
    {
        TEXTS[index % TEXTS.len()].into()
    } else {
        format!("{} {}", humanize(name), index + 1)
    };
    fit(text, schema)
}

/// Keeps a string within the schema's length limits.
fn fit(mut text: String, schema: &Value) -> String {
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64) {
        text = text.chars().take(max as usize).collect();
    }
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64) {
        while (text.chars().count() as u64) < min {
            text.push('x');
        }
    }
    text
}

/// `label`/`name` next to a `code`/`value`/`slug`: the humanized code.
fn fill_labels(item: &mut Map<String, Value>) {
    let code = ["code", "value", "slug"]
        .iter()
        .find_map(|k| item.get(*k).and_then(Value::as_str).map(str::to_string));
    if let Some(code) = code {
        for key in ["label", "name"] {
            if item.get(key).is_some_and(Value::is_string) {
                item.insert(key.into(), json!(humanize(&code)));
            }
        }
    }
}

/// Whether a collection holds people (names are person names).
pub fn is_people(collection: &str) -> bool {
    [
        "customer", "user", "people", "person", "employee", "contact", "member",
    ]
    .iter()
    .any(|w| collection.contains(w))
}

/// "orders" → "order", "categories" → "category", "addresses" → "address".
pub fn singular(word: &str) -> String {
    if let Some(stem) = word.strip_suffix("ies") {
        format!("{stem}y")
    } else if let Some(stem) = word.strip_suffix("sses") {
        format!("{stem}ss")
    } else if let Some(stem) = word.strip_suffix('s') {
        stem.to_string()
    } else {
        word.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_follow_refs_names_and_limits() {
        let spec = json!({"components": {"schemas": {
            "Status": {"type": "string", "enum": ["pending", "done"]},
            "Item": {"allOf": [{"properties": {"id": {"type": "string", "format": "uuid"}}},
                {"properties": {"status": {"$ref": "#/components/schemas/Status"},
                 "country": {"type": "string", "maxLength": 2}, "email": {"type": "string"}}}]}
        }}});
        let item = value(
            &spec,
            &json!({"$ref": "#/components/schemas/Item"}),
            "",
            "customers",
            2,
            0,
        );
        assert_eq!(item["id"], uuid("customers", 2));
        assert!(["pending", "done"].contains(&item["status"].as_str().unwrap()));
        assert_eq!(item["country"].as_str().unwrap().len(), 2);
        assert!(item["email"].as_str().unwrap().ends_with("@example.com"));
        assert_eq!(singular("categories"), "category");
    }
}
