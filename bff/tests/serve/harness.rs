//! Starts the real `thesa-bff serve` binary on 127.0.0.1 with a config in a
//! temporary directory, and serves what it depends on (a JWKS, an OPA
//! endpoint) from this test process over real HTTP.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn key(name: &str) -> Vec<u8> {
    std::fs::read(repo().join("bff/tests/keys").join(name)).unwrap()
}

pub const ISSUER: &str = "https://idp.test";
pub const AUDIENCE: &str = "thesa-bff";

/// A config for the samples, with `identity.jwks_url` at `jwks`; `extra`
/// is appended as more top-level YAML (and may replace the `specs`,
/// `definitions` and `capability` sections).
pub fn config(jwks: &str, extra: &str) -> String {
    let repo = repo();
    let repo = repo.display();
    let specs = if extra.contains("\nspecs:") || extra.starts_with("specs:") {
        String::new()
    } else {
        format!("specs:\n  directory: \"{repo}/specs\"\n")
    };
    let mut text = format!(
        r#"
{specs}server:
  port: 0
  shutdown_timeout: 10s
  cors:
    allowed_origins: ["http://localhost:3000"]
    allowed_methods: ["GET", "POST"]
    allowed_headers: ["Authorization", "X-Partition-Id"]
identity:
  issuer: "{ISSUER}"
  audience: "{AUDIENCE}"
  jwks_url: "{jwks}"
  claim_paths:
    subject_id: sub
    tenant_id: "custom:tenant_id"
    roles: "custom:roles"
    partition_id: "custom:partitions"
observability:
  log_level: info
"#
    );
    if !extra.contains("\ndefinitions:") && !extra.starts_with("definitions:") {
        text.push_str(&format!(
            "definitions:\n  directories: [\"{repo}/definitions\"]\n"
        ));
    }
    if !extra.contains("capability:") {
        text.push_str(&format!(
            "capability:\n  evaluator: static\n  static_policy_file: \"{repo}/config/policies.yaml\"\n"
        ));
    }
    text.push_str(extra);
    text
}

/// A running BFF process; killed when dropped.
pub struct Bff {
    child: Option<Child>,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Log lines written before it was ready.
    pub startup: Vec<String>,
    /// The start-up time it logged (`startup_ms` of "server started").
    pub startup_ms: u64,
    logs: mpsc::Receiver<String>,
    _dir: tempfile::TempDir,
}

/// How a start ended when it did not become ready.
#[derive(Debug)]
pub struct Exited {
    pub status: ExitStatus,
    pub lines: Vec<String>,
}

impl Bff {
    /// Starts the binary with `config` and extra environment; waits for
    /// "server started".
    pub fn start(config: &str, env: &[(&str, &str)]) -> Bff {
        match Self::try_start(config, env) {
            Ok(bff) => bff,
            Err(exited) => panic!("BFF did not start: {exited:?}"),
        }
    }

    /// Like `start`, but returns the exit status and log lines when the
    /// process ends before it is ready.
    pub fn try_start(config: &str, env: &[(&str, &str)]) -> Result<Bff, Exited> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, config).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_thesa-bff"));
        command
            .args(["serve", "--config"])
            .arg(&path)
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().unwrap();
        let (tx, logs) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut lines = Vec::new();
        loop {
            match logs.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => {
                    if line.contains("\"server started\"") {
                        let event: Value = serde_json::from_str(&line).unwrap();
                        let port = event["port"].as_u64().unwrap() as u16;
                        return Ok(Bff {
                            child: Some(child),
                            addr: SocketAddr::from(([127, 0, 0, 1], port)),
                            startup: lines,
                            startup_ms: event["startup_ms"].as_u64().unwrap_or_default(),
                            logs,
                            _dir: dir,
                        });
                    }
                    lines.push(line);
                }
                Err(_) => {
                    let status = child.wait().unwrap();
                    return Err(Exited { status, lines });
                }
            }
        }
    }

    /// The process ID.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// `http://127.0.0.1:port` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success());
    }

    /// Waits for the process to end (at most `limit`) and returns its
    /// status and remaining log lines.
    pub fn wait(mut self, limit: Duration) -> Exited {
        let mut child = self.child.take().unwrap();
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let lines = self.logs.try_iter().collect();
                return Exited { status, lines };
            }
            assert!(
                std::time::Instant::now() < deadline,
                "BFF did not exit in {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Log lines so far.
    pub fn drain_logs(&self) -> Vec<String> {
        self.logs.try_iter().collect()
    }
}

impl Drop for Bff {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Standard claims for a caller.
pub fn claims(sub: &str, tenant: &str, roles: &[&str]) -> Value {
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": sub,
        "exp": now() + 600,
        "iat": now(),
        "custom:tenant_id": tenant,
        "custom:roles": roles,
        "custom:partitions": ["eu"],
    })
}

/// Signs with the test RSA key (kid `test-rsa-1`).
pub fn rs256(claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("test-rsa-1".into());
    let key = EncodingKey::from_rsa_pem(&key("rsa-test.pem")).unwrap();
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

/// Signs with the test EC key (kid `test-ec-1`).
pub fn es256(claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("test-ec-1".into());
    let key = EncodingKey::from_ec_pem(&key("ec-test.pem")).unwrap();
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

/// A token for `roles`.
pub fn token(roles: &[&str]) -> String {
    rs256(&claims("alice", "acme", roles))
}

/// An unsigned token (`alg: none`).
pub fn unsigned(claims: &Value) -> String {
    let b64 = |v: &Value| base64url(serde_json::to_vec(v).unwrap().as_slice());
    format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT", "kid": "test-rsa-1"})),
        b64(claims)
    )
}

/// HS256 with the RSA public key as the HMAC secret: the algorithm
/// confusion attack.
pub fn hs256_with_public_key(claims: &Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("test-rsa-1".into());
    let key = EncodingKey::from_secret(&key("rsa-test.pub.pem"));
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

fn base64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Serves `router` on 127.0.0.1; the server stops when the returned
/// sender is dropped or sent to.
pub async fn serve(router: axum::Router) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    (format!("http://{addr}"), stop)
}

/// A JWKS endpoint with the test keys; returns its URL.
pub async fn jwks() -> (String, tokio::sync::oneshot::Sender<()>) {
    let keys: Value = serde_json::from_slice(&key("jwks-test.json")).unwrap();
    let router = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let keys = keys.clone();
            async move { axum::Json(keys) }
        }),
    );
    let (base, stop) = serve(router).await;
    (format!("{base}/jwks.json"), stop)
}

/// An HTTP client (rustls needs its provider installed once).
pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// Sends `request`: status and JSON body (`null` when not JSON).
pub async fn answer(request: reqwest::RequestBuilder) -> (reqwest::StatusCode, Value) {
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// GET with a bearer token: status and JSON body (`null` when not JSON).
pub async fn get_json(url: &str, token: &str) -> (reqwest::StatusCode, Value) {
    answer(client().get(url).bearer_auth(token)).await
}

/// The first line of `/metrics` that starts with `prefix`.
pub async fn metric(bff: &Bff, prefix: &str) -> Option<String> {
    let text = client()
        .get(bff.url("/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find(|l| l.starts_with(prefix))
        .map(ToString::to_string)
}
