//! File upload and download through a mock files service: both stream
//! (a file several times larger than the BFF's memory growth allowed here
//! goes up and comes back), carry the caller's context, and are checked
//! for capabilities, size and type; the `files.upload` handler sends a
//! form's file as multipart.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode as AxumStatus, header};
use axum::routing::{get, post};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::harness::{self, Bff, client, config, jwks, token};

/// What the mock files service got in one upload.
#[derive(Debug, Clone, Default)]
struct Upload {
    content_type: String,
    tenant: String,
    partition: String,
    subject: String,
    authorization: String,
    size: u64,
    sha256: String,
    /// The body, when small (for the handler test).
    body: Vec<u8>,
}

type Uploads = Arc<Mutex<Vec<Upload>>>;

/// The bytes of a test file: position `i` holds `i % 251`.
fn pattern(from: u64, len: usize) -> Vec<u8> {
    static CYCLE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let cycle = CYCLE.get_or_init(|| (0..CHUNK + 251).map(|i| (i % 251) as u8).collect());
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let start = ((from + out.len() as u64) % 251) as usize;
        let take = (len - out.len()).min(CHUNK);
        out.extend_from_slice(&cycle[start..start + take]);
    }
    out
}

const CHUNK: usize = 64 * 1024;

/// The files service: `POST /upload` hashes what it receives as it
/// arrives; `GET /download/big` streams `size` bytes of the pattern.
async fn files_service(uploads: Uploads, size: u64) -> (String, tokio::sync::oneshot::Sender<()>) {
    let router = axum::Router::new()
        .route(
            "/upload",
            post(move |headers: HeaderMap, body: Body| {
                let uploads = uploads.clone();
                async move {
                    let header = |name: &str| {
                        headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_string()
                    };
                    let mut upload = Upload {
                        content_type: header("content-type"),
                        tenant: header("x-tenant-id"),
                        partition: header("x-partition-id"),
                        subject: header("x-request-subject"),
                        authorization: header("authorization"),
                        ..Upload::default()
                    };
                    let mut hash = Sha256::new();
                    let mut stream = body.into_data_stream();
                    while let Some(chunk) = stream.next().await {
                        let Ok(chunk) = chunk else {
                            return (AxumStatus::BAD_REQUEST, axum::Json(json!({"error": "cut"})));
                        };
                        hash.update(&chunk);
                        upload.size += chunk.len() as u64;
                        if upload.size <= 1024 * 1024 {
                            upload.body.extend_from_slice(&chunk);
                        }
                    }
                    upload.sha256 = hex(&hash.finalize());
                    let answer = json!({"id": "f1", "size": upload.size, "sha256": upload.sha256});
                    uploads.lock().unwrap().push(upload);
                    (AxumStatus::OK, axum::Json(answer))
                }
            }),
        )
        .route(
            "/download/{id}",
            get(move |Path(id): Path<String>| async move {
                if id != "big" {
                    return (AxumStatus::NOT_FOUND, "{\"error\": \"no such file\"}")
                        .into_response();
                }
                let chunks = futures::stream::iter((0..size).step_by(CHUNK).map(move |from| {
                    let len = CHUNK.min((size - from) as usize);
                    Ok::<_, std::io::Error>(axum::body::Bytes::from(pattern(from, len)))
                }));
                (
                    [
                        (header::CONTENT_TYPE, "application/x-test".to_string()),
                        (header::CONTENT_LENGTH, size.to_string()),
                        (
                            header::CONTENT_DISPOSITION,
                            "attachment; filename=\"big.bin\"".to_string(),
                        ),
                    ],
                    Body::from_stream(chunks),
                )
                    .into_response()
            }),
        );
    harness::serve(router).await
}

use axum::response::IntoResponse;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const BOUNDARY: &str = "thesa-test-boundary";

/// A multipart body with one file part of `size` pattern bytes, as a
/// stream of chunks, and the SHA-256 of the whole body.
fn multipart(size: u64) -> (reqwest::Body, u64, String) {
    let head = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    let tail = format!("\r\n--{BOUNDARY}--\r\n").into_bytes();
    let mut hash = Sha256::new();
    hash.update(&head);
    for from in (0..size).step_by(CHUNK) {
        hash.update(pattern(from, CHUNK.min((size - from) as usize)));
    }
    hash.update(&tail);
    let length = head.len() as u64 + size + tail.len() as u64;
    let chunks = futures::stream::iter(std::iter::once(head))
        .chain(futures::stream::iter((0..size).step_by(CHUNK).map(
            move |from| pattern(from, CHUNK.min((size - from) as usize)),
        )))
        .chain(futures::stream::iter(std::iter::once(tail)))
        .map(Ok::<_, std::io::Error>);
    (
        reqwest::Body::wrap_stream(chunks),
        length,
        hex(&hash.finalize()),
    )
}

/// Sends `head`, then `chunks` (stopping when the BFF stops reading), and
/// returns the start of the answer.
async fn raw(bff: &Bff, head: String, chunks: Vec<Vec<u8>>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stream = tokio::net::TcpStream::connect(bff.addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    write.write_all(head.as_bytes()).await.unwrap();
    let writer = tokio::spawn(async move {
        for chunk in chunks {
            if write.write_all(&chunk).await.is_err() {
                break;
            }
        }
        write
    });
    let mut answer = vec![0u8; 4096];
    let mut filled = 0;
    while filled < answer.len() {
        match read.read(&mut answer[filled..]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => filled += n,
        }
        if String::from_utf8_lossy(&answer[..filled]).contains("}}") {
            break;
        }
    }
    drop(writer);
    String::from_utf8_lossy(&answer[..filled]).to_string()
}

/// The peak resident memory of a process (`VmHWM`), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/<pid>/status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap();
    kib * 1024
}

fn files_config(files: &str, max_upload_bytes: u64) -> String {
    format!(
        "services:\n  files-svc:\n    base_url: \"{files}\"\n\
         files:\n  max_upload_bytes: {max_upload_bytes}\n  \
         upload_capabilities: ['orders:view']\n  download_capabilities: ['orders:view']\n"
    )
}

/// What the BFF's memory may grow by while a file of [`BIG`] bytes goes up
/// and comes back; a BFF that held the file would exceed it several times.
const MEMORY_BOUND: u64 = 32 * 1024 * 1024;
/// The size of the file.
const BIG: u64 = 128 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_and_downloads_stream_through_a_bff_of_bounded_memory() {
    let (jwks, _stop) = jwks().await;
    let uploads = Uploads::default();
    let (files, _s) = files_service(uploads.clone(), BIG).await;
    let bff = Bff::start(&config(&jwks, &files_config(&files, 2 * BIG)), &[]);
    let caller = token(&["viewer"]);
    // Warm up (connection pools, the token cache) before measuring.
    let (status, _) = harness::get_json(&bff.url("/ui/download/missing"), &caller).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let before = peak_rss(bff.pid());

    let (body, length, sha256) = multipart(BIG);
    let response = client()
        .post(bff.url("/ui/upload"))
        .bearer_auth(&caller)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .header("content-length", length)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["size"], length, "{answer}");
    assert_eq!(
        answer["sha256"],
        sha256.as_str(),
        "the body arrives as sent"
    );
    let upload = uploads.lock().unwrap()[0].clone();
    assert_eq!(
        upload.content_type,
        format!("multipart/form-data; boundary={BOUNDARY}"),
        "the caller's boundary"
    );
    assert_eq!(
        (
            upload.tenant.as_str(),
            upload.partition.as_str(),
            upload.subject.as_str()
        ),
        ("acme", "eu", "alice"),
        "the caller's context"
    );
    assert_eq!(upload.authorization, format!("Bearer {caller}"));

    let response = client()
        .get(bff.url("/ui/download/big"))
        .bearer_auth(&caller)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "application/x-test");
    assert_eq!(headers["content-length"], BIG.to_string().as_str());
    assert_eq!(
        headers["content-disposition"],
        "attachment; filename=\"big.bin\""
    );
    let mut received = 0u64;
    let mut hash = Sha256::new();
    let mut expected = Sha256::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        expected.update(pattern(received, chunk.len()));
        hash.update(&chunk);
        received += chunk.len() as u64;
    }
    assert_eq!(received, BIG);
    assert_eq!(
        hash.finalize(),
        expected.finalize(),
        "the file comes back as sent"
    );

    let after = peak_rss(bff.pid());
    let grown = after.saturating_sub(before);
    eprintln!(
        "BFF peak RSS {} MiB before, {} MiB after {} MiB up and down",
        before >> 20,
        after >> 20,
        BIG >> 20
    );
    assert!(
        grown < MEMORY_BOUND,
        "the BFF's peak memory grew by {grown} bytes moving a {BIG}-byte file: it buffers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_routes_check_capabilities_size_and_type_and_the_handler_uploads_a_form_file() {
    let (jwks, _stop) = jwks().await;
    let uploads = Uploads::default();
    let (files, _s) = files_service(uploads.clone(), 1024).await;
    let definitions = tempfile::tempdir().unwrap();
    std::fs::write(
        definitions.path().join("docs.yaml"),
        "domain: docs\nversion: 1.0.0\ncommands:\n  - id: docs.upload\n    \
         capabilities: ['orders:view']\n    operation: {type: sdk, handler: files.upload}\n    \
         input:\n      body_mapping: projection\n      field_projection:\n        \
         data.file: input.file\n        data.access_level: input.access_level\n    \
         output: {type: full}\n",
    )
    .unwrap();
    let extra = format!(
        "{}definitions:\n  directories: [\"{}\", \"{}\"]\n",
        files_config(&files, 1024 * 1024),
        harness::repo().join("definitions").display(),
        definitions.path().display()
    );
    let bff = Bff::start(&config(&jwks, &extra), &[]);
    let caller = token(&["viewer"]);
    let multipart_type = format!("multipart/form-data; boundary={BOUNDARY}");
    let upload = |token: &str, content_type: &str, body: reqwest::Body| {
        client()
            .post(bff.url("/ui/upload"))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body)
    };

    // Larger than files.max_upload_bytes: refused by its Content-Length
    // before a byte of it is read, or cut off as it streams when it has
    // none. (Raw HTTP: the BFF answers before the client has sent it all.)
    let head = format!(
        "POST /ui/upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {caller}\r\n\
         Content-Type: {multipart_type}\r\n"
    );
    let answer = raw(
        &bff,
        format!("{head}Content-Length: {}\r\n\r\n", 2 << 20),
        Vec::new(),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("UPLOAD_TOO_LARGE"), "{answer}");
    let chunks: Vec<Vec<u8>> = (0..17)
        .map(|i| {
            let data = pattern(i * CHUNK as u64, CHUNK);
            let mut chunk = format!("{:x}\r\n", data.len()).into_bytes();
            chunk.extend_from_slice(&data);
            chunk.extend_from_slice(b"\r\n");
            chunk
        })
        .collect();
    let answer = raw(
        &bff,
        format!("{head}Transfer-Encoding: chunked\r\n\r\n"),
        chunks,
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        uploads.lock().unwrap().is_empty(),
        "nothing reached the files service whole"
    );

    let (status, body) = harness::answer(upload(&caller, "application/json", "{}".into())).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");

    // Capabilities: 403 for uploads, "not found" for downloads.
    let nobody = token(&[]);
    let (small, _, _) = multipart(10);
    let (status, body) = harness::answer(upload(&nobody, &multipart_type, small)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _) = harness::get_json(&bff.url("/ui/download/big"), &nobody).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = harness::get_json(&bff.url("/ui/download/nope"), &caller).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "NOT_FOUND");
    let (status, body) = harness::get_json(&bff.url("/ui/download/big"), &caller).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The handler: a form's file as a data URL becomes a multipart upload
    // with the other fields beside it.
    let request = client()
        .post(bff.url("/ui/commands/docs.upload"))
        .bearer_auth(&caller)
        .json(&json!({"input": {
            "file": "data:text/plain;name=hello.txt;base64,aGVsbG8=",
            "access_level": "PUBLIC",
        }}));
    let (status, body) = harness::answer(request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["result"]["id"], "f1",
        "output type full: the files service's answer"
    );
    let sent = uploads.lock().unwrap().last().cloned().unwrap();
    assert_eq!(sent.tenant, "acme");
    let boundary = sent
        .content_type
        .strip_prefix("multipart/form-data; boundary=")
        .expect("multipart");
    let text = String::from_utf8_lossy(&sent.body).to_string();
    let parts: Vec<&str> = text.split(&format!("--{boundary}")).collect();
    let file = parts
        .iter()
        .find(|p| p.contains("name=\"file\""))
        .expect("a file part");
    assert!(file.contains("filename=\"hello.txt\""), "{file}");
    assert!(
        file.contains("content-type: text/plain") || file.contains("Content-Type: text/plain"),
        "{file}"
    );
    assert!(file.ends_with("\r\n\r\nhello\r\n"), "{file:?}");
    let level = parts
        .iter()
        .find(|p| p.contains("name=\"access_level\""))
        .expect("an access_level part");
    assert!(level.ends_with("\r\n\r\nPUBLIC\r\n"), "{level:?}");

    // A file that is no data URL is the caller's mistake.
    let request = client()
        .post(bff.url("/ui/commands/docs.upload"))
        .bearer_auth(&caller)
        .json(&json!({"input": {"file": "hello", "access_level": "PUBLIC"}}));
    let (status, body) = harness::answer(request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "INVALID_INPUT");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("data URL"),
        "{body}"
    );
}
