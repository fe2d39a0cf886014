//! `make run` in a test: `thesa-bff serve --config config/config.yaml
//! --sample-backends` with its ports moved to free ones by THESA_*
//! overrides, and a client with a development token.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The BFF with its sample backends, stopped on drop.
pub struct Run {
    child: Child,
    pub url: String,
    pub http: reqwest::Client,
    pub token: String,
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn dev_token(roles: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_thesa-bff"))
        .current_dir(root())
        .args([
            "dev-token",
            "--sub",
            "alice",
            "--tenant",
            "acme",
            "--roles",
            roles,
        ])
        .output()
        .expect("dev-token");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

pub async fn start() -> Run {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let token = dev_token("admin");
    let port = free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_thesa-bff"));
    command
        .current_dir(root())
        .args([
            "serve",
            "--config",
            "config/config.yaml",
            "--sample-backends",
        ])
        .env("THESA_SERVER_PORT", port.to_string())
        .env("THESA_OBSERVABILITY_LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    command.env(
        "THESA_ANALYTICS_PROMETHEUS_URL",
        format!("http://127.0.0.1:{}", free_port()),
    );
    for service in ["ORDERS_SVC", "INVENTORY_SVC", "CUSTOMERS_SVC", "FILES_SVC"] {
        command.env(
            format!("THESA_SERVICES_{service}_BASE_URL"),
            format!("http://127.0.0.1:{}", free_port()),
        );
    }
    let child = command.spawn().expect("start thesa-bff");
    let run = Run {
        child,
        url: format!("http://127.0.0.1:{port}"),
        http,
        token,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = run.http.get(format!("{}/ui/ready", run.url)).send().await
            && r.status().is_success()
        {
            break run;
        }
        assert!(
            Instant::now() < deadline,
            "thesa-bff did not get ready in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Run {
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.url))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        if path.starts_with("/ui/commands/") {
            let key = format!(
                "key-{}",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos()
            );
            request = request.header("X-Idempotency-Key", key);
        }
        let response = request.send().await.expect(path);
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call("GET", path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    #[allow(dead_code)] // not every test posts
    pub async fn post(&self, path: &str, body: Value) -> Value {
        let (status, answer) = self.call("POST", path, Some(body)).await;
        assert!(
            (200..300).contains(&status),
            "POST {path}: {status} {answer}"
        );
        answer
    }
}
