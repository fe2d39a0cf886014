//! `POST /ui/commands/{id}`: runs a command's backend operation.
//!
//! The request body is `{"input": {...}, "route_params": {...}}` (Thesa's
//! shape). Mapping expressions read from it: `input.<field>` (dotted),
//! `route.<param>`, `context.subject_id|tenant_id|partition_id|email`,
//! `'text'` and numbers; a bare word (`LINK_STATE_PAUSED`) is that text.
//! When the command is the submit command of a form,
//! the input is first checked against that form's field rules. The body
//! sent is the input as it is (`passthrough`), or only the mapped fields
//! (`projection`, `template`). A backend error whose code the command's
//! `error_map` names is answered with that code and the mapped message;
//! any other backend error gets a generic code, never the backend's body.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use thesa_core::model::{BodyMapping, Command, Form, InputMapping};

use crate::access::Caller;
use crate::backends::invoker::Params;
use crate::error::ApiError;
use crate::features::data::{get_in, get_path, set_path, text};

/// The request body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandRequest {
    /// What the user entered.
    #[serde(default)]
    pub input: Map<String, Value>,
    /// The route the command was started from (`{"id": "o1"}`).
    #[serde(default)]
    pub route_params: Map<String, Value>,
}

/// Where expressions read from.
pub struct Sources<'a> {
    /// The request.
    pub request: &'a CommandRequest,
    /// The caller.
    pub caller: &'a Caller,
    /// A workflow instance's state (`workflow.<field>`), for workflow steps.
    pub workflow: Option<&'a Map<String, Value>>,
}

impl Sources<'_> {
    /// The value of an expression; `None` when it names nothing present.
    pub fn eval(&self, expression: &str) -> Option<Value> {
        let e = expression.trim();
        if e.len() >= 2 && e.starts_with('\'') && e.ends_with('\'') {
            return Some(Value::String(e[1..e.len() - 1].to_string()));
        }
        if let Ok(n) = e.parse::<i64>() {
            return Some(n.into());
        }
        if let Ok(n) = e.parse::<f64>() {
            return Some(n.into());
        }
        if thesa_core::validate::is_bare_word(e) {
            return Some(Value::String(e.to_string()));
        }
        let (source, rest) = e.split_once('.')?;
        let principal = &self.caller.principal;
        match source {
            "input" => get_in(&self.request.input, rest).cloned(),
            "workflow" => get_in(self.workflow?, rest).cloned(),
            "route" => self.request.route_params.get(rest).cloned(),
            "context" => match rest {
                "subject_id" => Some(principal.subject.clone().into()),
                "tenant_id" => Some(principal.tenant.clone().into()),
                "partition_id" => self.caller.partition.clone().map(Value::from),
                "email" => principal.email.clone().map(Value::from),
                _ => None,
            },
            _ => None,
        }
    }

    /// An expression as parameter text (strings as they are, other values
    /// as JSON).
    fn text(&self, expression: &str) -> Option<String> {
        self.eval(expression).as_ref().map(text)
    }
}

fn invalid_input(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
}

/// Path, query and header parameters of a command or workflow step, from
/// its mappings. A path parameter without a value is an error; missing
/// query and header values are left out.
pub fn params(input: Option<&InputMapping>, sources: &Sources) -> Result<Params, ApiError> {
    let mut params = Params::default();
    let Some(input) = input else {
        return Ok(params);
    };
    for (name, expression) in &input.path_params {
        let value = sources.text(expression).ok_or_else(|| {
            invalid_input(format!(
                "path parameter {name:?} needs a value from {expression}"
            ))
        })?;
        params.path.insert(name.clone(), value);
    }
    for (name, expression) in &input.query_params {
        if let Some(value) = sources.text(expression) {
            params.query.push((name.clone(), value));
        }
    }
    for (name, expression) in &input.header_params {
        if let Some(value) = sources.text(expression) {
            params.headers.push((name.clone(), value));
        }
    }
    Ok(params)
}

/// The request body for the backend.
pub fn body(input: Option<&InputMapping>, sources: &Sources) -> Value {
    let mapping = input.and_then(|i| i.body_mapping).unwrap_or_default();
    let fields: &BTreeMap<String, String> = match (mapping, input) {
        (BodyMapping::Passthrough, _) | (_, None) => {
            return Value::Object(sources.request.input.clone());
        }
        (BodyMapping::Projection, Some(input)) => &input.field_projection,
        (BodyMapping::Template, Some(input)) => &input.body_template,
    };
    let mut out = Map::new();
    for (target, expression) in fields {
        if let Some(value) = sources.eval(expression) {
            set_path(&mut out, target, value);
        }
    }
    Value::Object(out)
}

/// Checks the input against the field rules of the form that submits the
/// command: required fields, lengths, ranges and patterns. Every failing
/// field is listed (422 `VALIDATION_ERROR`).
pub fn validate(form: &Form, input: &Map<String, Value>) -> Result<(), ApiError> {
    let mut problems = Vec::new();
    for field in form.sections.iter().flat_map(|s| &s.fields) {
        let value = get_in(input, &field.field).filter(|v| !v.is_null());
        let empty = match value {
            None => true,
            Some(Value::String(s)) => s.is_empty(),
            Some(_) => false,
        };
        if empty {
            if field.required {
                problems.push(json!({"field": field.field, "message": "is required"}));
            }
            continue;
        }
        let Some(rules) = &field.validation else {
            continue;
        };
        let fail = |rule: String| {
            let message = rules.message.clone().unwrap_or(rule);
            json!({"field": field.field, "message": message})
        };
        if let Some(Value::String(text)) = value {
            let length = text.chars().count() as u64;
            if rules.min_length.is_some_and(|min| length < min) {
                problems.push(fail(format!(
                    "needs at least {} characters",
                    rules.min_length.unwrap_or_default()
                )));
            } else if rules.max_length.is_some_and(|max| length > max) {
                problems.push(fail(format!(
                    "allows at most {} characters",
                    rules.max_length.unwrap_or_default()
                )));
            } else if let Some(pattern) = &rules.pattern {
                // An anchored whole-value match, as HTML's pattern attribute.
                let matches = regex::Regex::new(&format!("^(?:{pattern})$"))
                    .map(|re| re.is_match(text))
                    .unwrap_or(true);
                if !matches {
                    problems.push(fail("does not have the required form".into()));
                }
            }
        }
        let number = value.and_then(|v| match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        });
        if let Some(number) = number {
            if rules.min.is_some_and(|min| number < min) {
                problems.push(fail(format!(
                    "must be at least {}",
                    rules.min.unwrap_or_default()
                )));
            } else if rules.max.is_some_and(|max| number > max) {
                problems.push(fail(format!(
                    "must be at most {}",
                    rules.max.unwrap_or_default()
                )));
            }
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
        format!("{} field(s) failed validation", problems.len()),
    )
    .with_details(Value::Array(problems)))
}

/// The backend error's code, where Problem-style bodies put it.
fn backend_code(body: &Value) -> Option<&str> {
    ["code", "error_code", "type"]
        .iter()
        .find_map(|key| body.get(key).and_then(Value::as_str))
        .or_else(|| {
            body.get("error")
                .and_then(|e| e.get("code"))
                .and_then(Value::as_str)
        })
}

/// A backend error the command's `error_map` names: its code and message,
/// with the backend's status when it is a client error (else 502).
pub fn mapped_error(command: &Command, status: u16, body: Option<&Value>) -> Option<ApiError> {
    let error_map = &command.output.as_ref()?.error_map;
    let code = backend_code(body?)?;
    let message = error_map.get(code)?;
    let status = StatusCode::from_u16(status)
        .ok()
        .filter(StatusCode::is_client_error)
        .unwrap_or(StatusCode::BAD_GATEWAY);
    Some(ApiError::new(status, code.to_string(), message.clone()))
}

/// The answer to the caller: `success`, the command's message, and the
/// result as its output mapping allows (`type: full` or `passthrough`: the
/// backend's whole answer; `fields`: those fields, renamed; nothing
/// otherwise).
pub fn answer(command: &Command, response: Value) -> Value {
    let output = command.output.as_ref();
    let result = match output {
        Some(o) if matches!(o.kind.as_deref(), Some("full" | "passthrough")) => Some(response),
        Some(o) if !o.fields.is_empty() => {
            let mut out = Map::new();
            for (ui, backend) in &o.fields {
                if let Some(value) = get_path(&response, backend) {
                    set_path(&mut out, ui, value.clone());
                }
            }
            Some(Value::Object(out))
        }
        _ => None,
    };
    let mut answer = Map::new();
    answer.insert("success".into(), Value::Bool(true));
    if let Some(message) = output.and_then(|o| o.success_message.clone()) {
        answer.insert("message".into(), message.into());
    }
    if let Some(result) = result {
        answer.insert("result".into(), result);
    }
    Value::Object(answer)
}
