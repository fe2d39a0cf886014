//! Files through the files service (`files` in the configuration): the
//! routes `POST /ui/upload` and `GET /ui/download/{id}` Thesa's frontends
//! call, and the `files.upload` SDK handler its definitions name.
//!
//! Upload and download are streamed both ways: the BFF holds one chunk of
//! a file at a time, never the whole file. An upload is the caller's
//! `multipart/form-data` body as it is (boundary and field names included),
//! cut off with 413 at `files.max_upload_bytes`; a download is the files
//! service's answer with its `Content-Type`, `Content-Length` and
//! `Content-Disposition`. Both need the capabilities `files` names and
//! carry the caller's token and context headers (tenant, partition,
//! subject, correlation ID) like any backend call, so the files service
//! scopes them to the caller's tenant.
//!
//! `files.upload` (for commands with `type: sdk`) takes the JSON a form
//! submits: the file as a data URL (`data:text/plain;base64,...`) or as
//! `{"name", "content_type", "content"}` (base64) under the field
//! `files.upload_field` (at the top level or under `data`); the other
//! scalar fields beside it become text fields of the multipart upload.
//! Such a file travels inside a JSON body, so it is limited by the body
//! size a command accepts; large files belong on `POST /ui/upload`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use futures::TryStreamExt;
use reqwest::Method;
use serde_json::{Map, Value};
use thesa_core::config::FilesConfig;

use crate::access::Caller;
use crate::backends::invoker::{CallContext, InvokeError, Invoker};
use crate::error::ApiError;

/// The name `files.upload` handlers are registered under.
pub const UPLOAD_HANDLER: &str = "files.upload";

/// Headers of the files service's answer passed on to the caller.
const PASSED_ON: [header::HeaderName; 3] = [
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    header::CONTENT_DISPOSITION,
];

fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "UPLOAD_TOO_LARGE",
        format!("the upload is larger than the {limit} bytes allowed (files.max_upload_bytes)"),
    )
}

/// `POST /ui/upload`: streams the caller's multipart body to the files
/// service and its answer back.
pub async fn upload(
    config: &FilesConfig,
    invoker: &Invoker,
    caller: &Caller,
    context: &CallContext,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if !caller.capabilities.has_all(&config.upload_capabilities) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            "uploading files needs capabilities this caller lacks",
        ));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .filter(|v| {
            v.to_str()
                .is_ok_and(|t| t.to_ascii_lowercase().starts_with("multipart/form-data"))
        })
        .cloned()
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UNSUPPORTED_MEDIA_TYPE",
                "an upload is a multipart/form-data body",
            )
        })?;
    let limit = config.max_upload_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(too_large(limit));
    }
    // Counted as it streams: a body without Content-Length (chunked) is cut
    // off at the limit too.
    let seen = Arc::new(AtomicU64::new(0));
    let exceeded = Arc::new(AtomicBool::new(false));
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let counted = stream.and_then({
        let exceeded = exceeded.clone();
        move |chunk| {
            let total = seen.fetch_add(chunk.len() as u64, Ordering::Relaxed) + chunk.len() as u64;
            let result = if total > limit {
                exceeded.store(true, Ordering::Relaxed);
                Err(std::io::Error::other(
                    "upload larger than files.max_upload_bytes",
                ))
            } else {
                Ok(chunk)
            };
            std::future::ready(result)
        }
    });
    let outcome = invoker
        .send_raw(
            &config.service,
            Method::POST,
            &config.upload_path,
            context,
            |request| {
                let request = request
                    .header(header::CONTENT_TYPE, content_type)
                    .body(reqwest::Body::wrap_stream(counted));
                match declared {
                    Some(length) => request.header(header::CONTENT_LENGTH, length),
                    None => request,
                }
            },
        )
        .await;
    if exceeded.load(Ordering::Relaxed) {
        return Err(too_large(limit));
    }
    let response = outcome.map_err(|err| files_error(err, "upload"))?;
    Ok(streamed(response))
}

/// `GET /ui/download/{id}`: streams the file from the files service; 404
/// when the caller may not download files or the file does not exist.
pub async fn download(
    config: &FilesConfig,
    invoker: &Invoker,
    caller: &Caller,
    context: &CallContext,
    id: &str,
) -> Result<Response, ApiError> {
    if !caller.capabilities.has_all(&config.download_capabilities) {
        return Err(ApiError::not_found("file", id));
    }
    let segment =
        percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC).to_string();
    let path = config.download_path.replace("{id}", &segment);
    let response = invoker
        .send_raw(&config.service, Method::GET, &path, context, |r| r)
        .await
        .map_err(|err| match err {
            InvokeError::Status { status: 404, .. } => ApiError::not_found("file", id),
            other => files_error(other, "download"),
        })?;
    Ok(streamed(response))
}

/// A failed call to the files service; one that is not configured says so.
fn files_error(err: InvokeError, what: &str) -> ApiError {
    match err {
        InvokeError::NotConfigured(service) => ApiError::unavailable(
            "FILES_NOT_CONFIGURED",
            format!("file {what} needs the files service {service:?} under services"),
        ),
        other => ApiError::backend(other),
    }
}

/// The files service's answer as the caller's: its status, the headers in
/// [`PASSED_ON`] and its body, chunk by chunk.
fn streamed(response: reqwest::Response) -> Response {
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::OK);
    let mut headers = HeaderMap::new();
    for name in PASSED_ON {
        if let Some(value) = response.headers().get(name.as_str()) {
            if let Ok(value) = HeaderValue::from_bytes(value.as_bytes()) {
                headers.insert(name, value);
            }
        }
    }
    let body = Body::from_stream(response.bytes_stream());
    (status, headers, body).into_response()
}

/// A file given in a command's JSON body.
#[derive(Debug, PartialEq, Eq)]
struct InlineFile {
    name: String,
    content_type: String,
    bytes: Vec<u8>,
}

/// Why a `files.upload` body cannot be uploaded (the caller's mistake).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FileInputError {
    /// No file under the upload field.
    #[error("the input has no file under {0:?} (or data.{0})")]
    Missing(String),
    /// The file is neither a data URL nor `{name, content_type, content}`.
    #[error(
        "{0:?} must be a data URL (data:<type>;base64,...) or {{\"name\", \"content_type\", \"content\"}} with base64 content"
    )]
    Shape(String),
    /// The content is not base64.
    #[error("the content of {0:?} is not base64")]
    Encoding(String),
}

/// The object holding the file (the input, or its `data`), and the file.
fn find_file<'a>(
    input: &'a Value,
    field: &str,
) -> Result<(&'a Map<String, Value>, &'a Value), FileInputError> {
    let candidates = [Some(input), input.get("data")];
    candidates
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .find_map(|object| Some((object, object.get(field)?)))
        .ok_or_else(|| FileInputError::Missing(field.to_string()))
}

fn decode(field: &str, text: &str) -> Result<Vec<u8>, FileInputError> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| FileInputError::Encoding(field.to_string()))
}

/// Reads the file of a `files.upload` input.
fn inline_file(field: &str, value: &Value) -> Result<InlineFile, FileInputError> {
    let shape = || FileInputError::Shape(field.to_string());
    match value {
        Value::String(url) => {
            let rest = url.strip_prefix("data:").ok_or_else(shape)?;
            let (meta, content) = rest.split_once(',').ok_or_else(shape)?;
            let mut parts = meta.split(';');
            let content_type = parts.next().filter(|t| !t.is_empty());
            let mut name = None;
            let mut base64 = false;
            for part in parts {
                match part.split_once('=') {
                    Some(("name", value)) => name = Some(value.to_string()),
                    _ if part == "base64" => base64 = true,
                    _ => {}
                }
            }
            if !base64 {
                return Err(shape());
            }
            Ok(InlineFile {
                name: name.unwrap_or_else(|| field.to_string()),
                content_type: content_type
                    .unwrap_or("application/octet-stream")
                    .to_string(),
                bytes: decode(field, content)?,
            })
        }
        Value::Object(object) => {
            let text = |key: &str| object.get(key).and_then(Value::as_str);
            Ok(InlineFile {
                name: text("name").unwrap_or(field).to_string(),
                content_type: text("content_type")
                    .unwrap_or("application/octet-stream")
                    .to_string(),
                bytes: decode(field, text("content").ok_or_else(shape)?)?,
            })
        }
        _ => Err(shape()),
    }
}

/// The `files.upload` handler: uploads the file in `input` (see the module
/// doc) as `multipart/form-data` and answers the files service's JSON.
pub async fn upload_handler(
    config: &FilesConfig,
    invoker: &Invoker,
    input: &Value,
    context: &CallContext,
) -> Result<Value, InvokeError> {
    let field = config.upload_field.as_str();
    let invalid = |err: FileInputError| InvokeError::InvalidInput(err.to_string());
    let (object, value) = find_file(input, field).map_err(invalid)?;
    let file = inline_file(field, value).map_err(invalid)?;
    let part = reqwest::multipart::Part::bytes(file.bytes)
        .file_name(file.name)
        .mime_str(&file.content_type)
        .map_err(|_| invalid(FileInputError::Shape(field.to_string())))?;
    let mut form = reqwest::multipart::Form::new().part(field.to_string(), part);
    for (key, value) in object {
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => continue,
        };
        if key != field {
            form = form.text(key.clone(), text);
        }
    }
    let response = invoker
        .send_raw(
            &config.service,
            Method::POST,
            &config.upload_path,
            context,
            |request| request.multipart(form),
        )
        .await?;
    let service = config.service.clone();
    let bytes = invoker
        .read(&service, response)
        .await
        .map_err(|err| invoker.read_error(&service, err))?;
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&bytes).map_err(|_| InvokeError::NotJson { service })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_data_urls_and_objects() {
        let file = inline_file("file", &json!("data:text/plain;name=a.txt;base64,aGk=")).unwrap();
        assert_eq!(
            file,
            InlineFile {
                name: "a.txt".into(),
                content_type: "text/plain".into(),
                bytes: b"hi".to_vec()
            }
        );
        let file = inline_file(
            "file",
            &json!({"name": "b.bin", "content": "AAE=", "content_type": "application/x-b"}),
        )
        .unwrap();
        assert_eq!(file.bytes, [0, 1]);
        assert_eq!(file.name, "b.bin");
        assert_eq!(
            inline_file("file", &json!("data:text/plain,hi")),
            Err(FileInputError::Shape("file".into())),
            "not base64-encoded"
        );
        assert_eq!(
            inline_file("file", &json!("data:;base64,***")),
            Err(FileInputError::Encoding("file".into()))
        );
        assert_eq!(
            inline_file("file", &json!(42)),
            Err(FileInputError::Shape("file".into()))
        );
    }

    #[test]
    fn finds_the_file_at_the_top_or_under_data() {
        let input = json!({"data": {"file": "x", "access_level": "PUBLIC"}});
        let (object, value) = find_file(&input, "file").unwrap();
        assert_eq!(value, "x");
        assert!(object.contains_key("access_level"));
        assert_eq!(
            find_file(&json!({"other": 1}), "file").unwrap_err(),
            FileInputError::Missing("file".into())
        );
    }
}
