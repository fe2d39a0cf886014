//! The whole path without a cluster: the operator reconciles the sample
//! custom resources on the in-memory API of `kube-fake-client`; the
//! ConfigMaps it generates are written to disk as the kubelet projects them
//! (timestamped directory, `..data` symlink swapped by rename, one symlink
//! per key); the real `thesa-bff` is started with the Deployment's args and
//! environment (Secrets resolved from the API, mount paths mapped to the
//! projected directories) against local mock backends, PostgreSQL and
//! Redis; the suite then calls it as a frontend would. Then definitions
//! change: a broken revision is rejected and the old one keeps being
//! served, a good one is projected and hot-reloaded, a removed one
//! disappears. Each verified stage is printed (`make e2e` shows them).
//! A second test runs a canary (`spec.rollout.strategy: canary`, second-long
//! steps): a stable and a canary `thesa-bff`, each on the projected
//! ConfigMaps of its Deployment, traffic from the test, the operator
//! judging their real `/metrics` (read over HTTP where the API server's pod
//! proxy would read them): a change whose new page's backend answers 500
//! is rolled back and the stable BFF never serves it; a good change is
//! promoted through every step.
//!
//! Needs `target/debug/thesa-bff` (`make e2e` and `make test` build it),
//! PostgreSQL server binaries and redis-server (`scripts/test-deps.sh`).

#[path = "../../bff/tests/support/postgres.rs"]
mod postgres;
#[path = "../../bff/tests/support/redis.rs"]
mod redis;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, Request};
use axum::routing::{get, post};
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::{reflector, watcher};
use kube_fake_client::ClientBuilder;
use reqwest::StatusCode;
use serde_json::{Value, json};
use thesa_operator::controller::{self, Context};
use thesa_operator::crd::{ThesaDefinition, ThesaDeployment};
use thesa_operator::revision::{Revisions, cached_event};

const NS: &str = "default";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn stage(text: &str) {
    println!("e2e: ✓ {text}");
}

/// A manifest from the repository, placed in the test namespace.
fn manifest(path: &str) -> Value {
    let text = std::fs::read_to_string(repo().join(path)).unwrap();
    let mut value = thesa_core::node::parse(&text).unwrap().to_json();
    value["metadata"]["namespace"] = json!(NS);
    value
}

fn bff_binary() -> PathBuf {
    // target/debug/deps/pipeline-… → target/debug/thesa-bff
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("thesa-bff");
    assert!(
        path.exists(),
        "{} is missing: build it first (cargo build -p thesa-bff; `make e2e` does)",
        path.display()
    );
    path
}

/// One kubelet-style volume: each projection writes a new timestamped
/// directory and swaps `..data` to it atomically.
struct Volume {
    dir: PathBuf,
    version: u32,
}

impl Volume {
    fn project(&mut self, files: &BTreeMap<String, String>) {
        use std::os::unix::fs::symlink;
        std::fs::create_dir_all(&self.dir).unwrap();
        self.version += 1;
        let name = format!("..2026_11_22_10_00_00.{}", self.version);
        let target = self.dir.join(&name);
        std::fs::create_dir(&target).unwrap();
        for (key, text) in files {
            std::fs::write(target.join(key), text).unwrap();
        }
        let tmp = self.dir.join("..data_tmp");
        let _ = std::fs::remove_file(&tmp);
        symlink(&name, &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.join("..data")).unwrap();
        for key in files.keys() {
            let link = self.dir.join(key);
            if std::fs::symlink_metadata(&link).is_err() {
                symlink(Path::new("..data").join(key), &link).unwrap();
            }
        }
        for entry in std::fs::read_dir(&self.dir).unwrap().flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            let stale_key = !file.starts_with("..") && !files.contains_key(&file);
            let stale_dir = file.starts_with("..20") && file != name;
            if stale_key {
                std::fs::remove_file(entry.path()).unwrap();
            } else if stale_dir {
                std::fs::remove_dir_all(entry.path()).unwrap();
            }
        }
    }
}

/// What the pod would see: one volume per mount path of the container.
struct Pod {
    root: tempfile::TempDir,
    volumes: BTreeMap<String, Volume>,
}

impl Pod {
    fn local(&self, mount_path: &str) -> PathBuf {
        self.root.path().join(mount_path.trim_start_matches('/'))
    }

    /// Projects every ConfigMap-backed volume of the Deployment.
    async fn project(&mut self, client: &Client, deployment: &Value) {
        let pod = &deployment["spec"]["template"]["spec"];
        let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
        for mount in pod["containers"][0]["volumeMounts"].as_array().unwrap() {
            let volume = pod["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["name"] == mount["name"])
                .unwrap();
            let names: Vec<&str> = match (&volume["configMap"], &volume["projected"]) {
                (Value::Object(cm), _) => vec![cm["name"].as_str().unwrap()],
                (_, Value::Object(p)) => p["sources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|s| s["configMap"]["name"].as_str())
                    .collect(),
                _ => continue,
            };
            let mut files = BTreeMap::new();
            for name in names {
                files.extend(
                    config_maps
                        .get(name)
                        .await
                        .unwrap()
                        .data
                        .unwrap_or_default(),
                );
            }
            let path = mount["mountPath"].as_str().unwrap().to_string();
            let dir = self.local(&path);
            self.volumes
                .entry(path)
                .or_insert(Volume { dir, version: 0 })
                .project(&files);
        }
    }
}

/// A running `thesa-bff`; killed when dropped.
struct Bff {
    child: Child,
    url: String,
    logs: mpsc::Receiver<String>,
}

impl Drop for Bff {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary as the Deployment's container would run: its args and
/// env (Secrets read from the API), mount paths mapped to the pod's
/// directories (as arguments, and for the file locations the operator put
/// in config.yaml), port 0.
async fn start_bff(client: &Client, pod: &Pod, deployment: &Value) -> Bff {
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let mounts: Vec<String> = pod.volumes.keys().cloned().collect();
    let map = |arg: &str| -> String {
        match mounts.iter().find(|m| arg.starts_with(m.as_str())) {
            Some(m) => format!("{}{}", pod.local(m).display(), &arg[m.len()..]),
            None => arg.to_string(),
        }
    };
    let mut command = Command::new(bff_binary());
    for arg in container["args"].as_array().unwrap() {
        command.arg(map(arg.as_str().unwrap()));
    }
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    for variable in container["env"].as_array().into_iter().flatten() {
        let name = variable["name"].as_str().unwrap();
        let value = match (&variable["value"], &variable["valueFrom"]["secretKeyRef"]) {
            (Value::String(v), _) => v.clone(),
            (_, Value::Object(r)) => {
                let secret = secrets.get(r["name"].as_str().unwrap()).await.unwrap();
                let bytes = &secret.data.unwrap()[r["key"].as_str().unwrap()];
                String::from_utf8(bytes.0.clone()).unwrap()
            }
            _ => continue,
        };
        command.env(name, value);
    }
    command
        .env("THESA_SERVER_PORT", "0")
        .env("THESA_DEFINITIONS_DIRECTORIES", map("/definitions"))
        .env("THESA_SPECS_DIRECTORY", map("/specs"))
        .env(
            "THESA_CAPABILITY_STATIC_POLICY_FILE",
            map("/config/policies.yaml"),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = command.spawn().unwrap();
    let (tx, logs) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    // Killed when dropped, also when the start fails below.
    let mut bff = Bff {
        child,
        url: String::new(),
        logs,
    };
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    loop {
        let line = bff
            .logs
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("the BFF did not start: {seen:#?}"));
        if line.contains("\"server started\"") {
            let event: Value = serde_json::from_str(&line).unwrap();
            bff.url = format!("http://127.0.0.1:{}", event["port"].as_u64().unwrap());
            return bff;
        }
        seen.push(line);
    }
}

/// Backend calls the mocks saw: (method path, body).
type Calls = Arc<Mutex<Vec<(String, Value)>>>;

/// orders-svc, inventory-svc and customers-svc (with its token endpoint),
/// all on one local server. `GET /order-statuses` answers 500: the canary
/// test's bad change adds a page on it.
async fn backends(calls: Calls) -> String {
    let record = move |request: Request| {
        let calls = calls.clone();
        async move {
            let key = format!("{} {}", request.method(), request.uri().path());
            let bytes = axum::body::to_bytes(request.into_body(), 1 << 20)
                .await
                .unwrap();
            let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            calls.lock().unwrap().push((key, body));
        }
    };
    let orders = json!({"data": [
        {"id": "o1", "order_number": "A-00001", "customer_name": "Ann", "status": "pending",
         "created_at": "2026-11-01T10:00:00Z", "total": {"amount": 100, "currency": "EUR"}},
        {"id": "o2", "order_number": "A-00002", "customer_name": "Bob", "status": "shipped",
         "created_at": "2026-11-02T10:00:00Z", "total": {"amount": 250, "currency": "EUR"}}
    ], "total": 2});
    let cancel = record.clone();
    let restock = record.clone();
    let router = axum::Router::new()
        .route(
            "/orders",
            get(move || async move { axum::Json(orders.clone()) }),
        )
        .route(
            "/orders/counts",
            get(|| async { axum::Json(json!({"pending": 1, "returns_open": 0})) }),
        )
        .route(
            "/orders/{id}/cancel",
            post(
                move |UrlPath(id): UrlPath<String>, request: Request| async move {
                    cancel(request).await;
                    axum::Json(json!({"id": id, "status": "cancelled"}))
                },
            ),
        )
        .route(
            "/restocks",
            post(move |request: Request| async move {
                restock(request).await;
                (
                    axum::http::StatusCode::ACCEPTED,
                    axum::Json(json!({"restock_id": "r1"})),
                )
            }),
        )
        .route(
            "/order-statuses",
            get(|| async {
                (
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    axum::Json(json!({"title": "statuses are down"})),
                )
            }),
        )
        .route(
            "/oauth/token",
            post(|| async {
                axum::Json(json!({"access_token": "t", "token_type": "Bearer", "expires_in": 3600}))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    url
}

/// The sample ThesaDeployment pointed at the local services: hot reload
/// on, the development key set, the mocks as every backend.
fn deployment(backends: &str) -> ThesaDeployment {
    let mut value = manifest("samples/thesadeployment.yaml");
    let spec = &mut value["spec"];
    spec["definitions"]["hotReload"] = json!(true);
    let config = &mut spec["config"];
    let identity = config["identity"].as_object_mut().unwrap();
    identity.remove("jwks_url");
    identity.insert(
        "jwks_file".into(),
        json!(repo().join("config/dev/jwks.json").display().to_string()),
    );
    for service in config["services"].as_object_mut().unwrap().values_mut() {
        service["base_url"] = json!(backends);
        if service["auth"]["token_endpoint"].is_string() {
            service["auth"]["token_endpoint"] = json!(format!("{backends}/oauth/token"));
        }
    }
    config["observability"]["tracing"]["enabled"] = json!(false);
    serde_json::from_value(value).unwrap()
}

fn secret(name: &str, key: &str, value: &str) -> Secret {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": NS},
        "data": {key: ByteString(value.as_bytes().to_vec())},
    }))
    .unwrap()
}

/// One reconcile, with the definitions cache filled from the API as the
/// watch would.
async fn reconcile(client: &Client) {
    let definitions: Api<ThesaDefinition> = Api::all(client.clone());
    let revisions = Revisions::default();
    let (store, mut writer) = reflector::store();
    writer.apply_watcher_event(&watcher::Event::Init);
    for definition in definitions.list(&ListParams::default()).await.unwrap() {
        let event = cached_event(watcher::Event::InitApply(definition), &revisions);
        writer.apply_watcher_event(&event);
    }
    writer.apply_watcher_event(&watcher::Event::InitDone);
    let handlers = thesa_core::validate::known_handlers(None);
    let ctx = Arc::new(Context::new(client.clone(), store, handlers));
    let tdep = Api::<ThesaDeployment>::namespaced(client.clone(), NS)
        .get("thesa")
        .await
        .unwrap();
    controller::reconcile(Arc::new(tdep), ctx).await.unwrap();
}

async fn deployment_json(client: &Client) -> Value {
    let deployment = Api::<Deployment>::namespaced(client.clone(), NS)
        .get("thesa")
        .await
        .unwrap();
    serde_json::to_value(deployment).unwrap()
}

/// `Accepted` of a ThesaDefinition: (status, reason).
async fn accepted(client: &Client, name: &str) -> (String, String) {
    let definition = Api::<ThesaDefinition>::namespaced(client.clone(), NS)
        .get(name)
        .await
        .unwrap();
    let status = definition.status.expect("status");
    let condition = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Accepted")
        .expect("Accepted");
    (condition.status.clone(), condition.reason.clone())
}

/// Replaces the spec of the ThesaDefinition `name` with `edit` applied to
/// its YAML text (each pair once).
async fn edit_definition(client: &Client, name: &str, edits: &[(&str, &str)]) {
    let api: Api<ThesaDefinition> = Api::namespaced(client.clone(), NS);
    let mut text =
        std::fs::read_to_string(repo().join(format!("samples/definitions/{name}.yaml"))).unwrap();
    for (from, to) in edits {
        assert!(text.contains(from), "{from:?}");
        text = text.replacen(from, to, 1);
    }
    let edited = thesa_core::node::parse(&text).unwrap().to_json();
    let mut current = serde_json::to_value(api.get(name).await.unwrap()).unwrap();
    current["spec"] = edited["spec"].clone();
    let current: ThesaDefinition = serde_json::from_value(current).unwrap();
    api.replace(name, &PostParams::default(), &current)
        .await
        .unwrap();
}

fn token(config: &Path, sub: &str, roles: &str) -> String {
    let output = Command::new(bff_binary())
        .args(["dev-token", "--config"])
        .arg(config)
        .arg("--key")
        .arg(repo().join("config/dev/jwt-dev-private.pem"))
        .args(["--sub", sub, "--tenant", "acme", "--roles", roles])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

async fn call(
    method: &str,
    url: String,
    token: &str,
    body: Option<Value>,
    key: Option<&str>,
) -> (StatusCode, Value, bool) {
    let client = reqwest::Client::new();
    let mut request = client
        .request(method.parse().unwrap(), url)
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    if let Some(key) = key {
        request = request.header("X-Idempotency-Key", key);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let replayed = response.headers().contains_key("idempotent-replayed");
    (
        status,
        response.json().await.unwrap_or(Value::Null),
        replayed,
    )
}

/// Polls until `check` holds (hot reload is debounced), at most 15 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn labels(navigation: &Value) -> Vec<String> {
    navigation["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["label"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definitions_flow_from_custom_resources_to_a_serving_bff() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let database_server = postgres::Postgres::start();
    let database = database_server.database();
    let redis = redis::Redis::start();
    let calls = Calls::default();
    let backends = backends(calls.clone()).await;

    // The custom resources and what they refer to, as a platform team and
    // the domain teams would apply them.
    let mut specs = BTreeMap::new();
    for service in ["orders-svc", "inventory-svc", "customers-svc"] {
        let file = format!("{service}.yaml");
        specs.insert(
            file.clone(),
            std::fs::read_to_string(repo().join("specs").join(&file)).unwrap(),
        );
    }
    let specs: ConfigMap = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "thesa-backend-specs", "namespace": NS},
        "data": specs,
    }))
    .unwrap();
    let mut builder = ClientBuilder::new()
        .with_resource::<ThesaDefinition>()
        .with_resource::<ThesaDeployment>()
        .with_status_subresource::<ThesaDefinition>()
        .with_status_subresource::<ThesaDeployment>()
        .with_status_subresource::<Deployment>()
        .with_object(deployment(&backends))
        .with_object(specs)
        .with_object(secret("thesa-db-credentials", "dsn", &database.url))
        .with_object(secret("thesa-redis", "addr", &redis.addr))
        .with_object(secret("thesa-service-tokens", "customers-svc", "s3cret"));
    for domain in ["orders", "inventory", "customers"] {
        let definition: ThesaDefinition =
            serde_json::from_value(manifest(&format!("samples/definitions/{domain}.yaml")))
                .unwrap();
        builder = builder.with_object(definition);
    }
    let client = builder.build().await.unwrap();

    reconcile(&client).await;
    for domain in ["orders", "inventory", "customers"] {
        assert_eq!(accepted(&client, domain).await.0, "True", "{domain}");
    }
    let deployment = deployment_json(&client).await;
    stage(
        "the operator accepted the three sample definitions and rendered the ConfigMaps and the Deployment",
    );

    let mut pod = Pod {
        root: tempfile::tempdir().unwrap(),
        volumes: BTreeMap::new(),
    };
    pod.project(&client, &deployment).await;
    let definitions = pod.local("/definitions");
    assert!(std::fs::read_link(definitions.join("..data")).is_ok());
    assert!(definitions.join("thesa-checksums.sha256").exists());
    stage(
        "the ConfigMaps are projected as the kubelet does (..data symlink, checksum manifest beside the definitions)",
    );

    let bff = start_bff(&client, &pod, &deployment).await;
    let config = pod.local("/config").join("config.yaml");
    let config_text = std::fs::read_to_string(&config).unwrap();
    assert!(
        config_text.contains("strict_checksums: true"),
        "the sample serves only checksummed definitions"
    );
    let (clerk, lead) = (
        token(&config, "alice", "order_clerk"),
        token(&config, "sam", "support_lead"),
    );
    let (status, ready, _) = call("GET", format!("{}/ui/ready", bff.url), &clerk, None, None).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert_eq!(
        ready["checks"]["workflow_store"]["driver"], "postgres",
        "{ready}"
    );
    assert_eq!(
        ready["checks"]["idempotency_store"]["driver"], "redis",
        "{ready}"
    );
    stage(
        "thesa-bff started with the Deployment's args and env (PostgreSQL and Redis from the Secrets, strict checksums against the operator's manifest) and is ready",
    );

    let (status, navigation, _) = call(
        "GET",
        format!("{}/ui/navigation", bff.url),
        &clerk,
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(labels(&navigation), ["Orders", "Customers"], "{navigation}");
    let (status, data, _) = call(
        "GET",
        format!("{}/ui/pages/orders.list/data", bff.url),
        &clerk,
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{data}");
    assert_eq!(data["total"], 2, "{data}");
    stage("navigation by role, and page data from the orders backend");

    let cancel = json!({"input": {"reason": "late"}, "route_params": {"id": "o1"}});
    let url = format!("{}/ui/commands/orders.cancel", bff.url);
    let (status, first, replayed) = call(
        "POST",
        url.clone(),
        &clerk,
        Some(cancel.clone()),
        Some("k-1"),
    )
    .await;
    assert_eq!((status, replayed), (StatusCode::OK, false), "{first}");
    let (status, second, replayed) = call("POST", url, &clerk, Some(cancel), Some("k-1")).await;
    assert_eq!((status, replayed), (StatusCode::OK, true), "{second}");
    assert_eq!(first, second);
    let cancels = calls
        .lock()
        .unwrap()
        .iter()
        .filter(|(k, _)| k == "POST /orders/o1/cancel")
        .count();
    assert_eq!(cancels, 1, "the backend saw the command once");
    stage("a command with an idempotency key ran once and was replayed from Redis");

    let (status, started, _) = call(
        "POST",
        format!("{}/ui/workflows/orders.return_approval/start", bff.url),
        &clerk,
        Some(json!({"input": {"order_id": "o1", "return_id": "r1"}})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{started}");
    let events = format!(
        "{}/ui/workflows/instances/{}/events",
        bff.url,
        started["id"].as_str().unwrap()
    );
    let (status, body, _) = call(
        "POST",
        events.clone(),
        &clerk,
        Some(json!({"event": "submitted", "input": {"reason": "damaged"}})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, done, _) = call(
        "POST",
        events,
        &lead,
        Some(json!({"event": "approved", "input": {"decision": "approved"}})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["status"], "completed", "{done}");
    assert!(
        calls
            .lock()
            .unwrap()
            .iter()
            .any(|(k, _)| k == "POST /restocks")
    );
    stage(
        "a return workflow ran to completion in PostgreSQL, its system step calling the inventory backend",
    );

    // A broken revision: rejected, the served one stays.
    let checksum =
        |d: &Value| d["spec"]["template"]["metadata"]["annotations"]["thesa.io/checksum"].clone();
    edit_definition(
        &client,
        "orders",
        &[("operation_id: listOrders", "operation_id: listOrdrs")],
    )
    .await;
    reconcile(&client).await;
    assert_eq!(
        accepted(&client, "orders").await,
        ("False".to_string(), "ValidationFailed".to_string())
    );
    pod.project(&client, &deployment_json(&client).await).await;
    let projected = std::fs::read_to_string(pod.local("/definitions").join("orders.yaml")).unwrap();
    assert!(
        projected.contains("listOrders") && !projected.contains("listOrdrs"),
        "the served revision stays in the ConfigMap"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, _, _) = call(
        "GET",
        format!("{}/ui/pages/orders.list", bff.url),
        &clerk,
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    stage(
        "a broken orders revision was rejected by the operator and the BFF keeps serving the previous one",
    );

    // A good revision with a new page: projected and hot-reloaded, no roll.
    let new_page = "  pages:\n    - id: orders.archive\n      title: Archive\n      route: /orders/archive\n      layout: custom\n      capabilities: [orders:view]\n";
    edit_definition(
        &client,
        "orders",
        &[("\n  pages:\n", &format!("\n{new_page}"))],
    )
    .await;
    reconcile(&client).await;
    assert_eq!(accepted(&client, "orders").await.0, "True");
    let after = deployment_json(&client).await;
    assert_eq!(
        checksum(&after),
        checksum(&deployment),
        "hotReload: no rolling restart for definition changes"
    );
    pod.project(&client, &after).await;
    eventually("the new page is served", || {
        let url = format!("{}/ui/pages/orders.archive", bff.url);
        let clerk = clerk.clone();
        async move { call("GET", url, &clerk, None, None).await.0 == StatusCode::OK }
    })
    .await;
    stage(
        "a good revision was projected (..data swap) and hot-reloaded: the new page appears without a restart",
    );

    // A removed definition: its domain disappears.
    Api::<ThesaDefinition>::namespaced(client.clone(), NS)
        .delete("customers", &DeleteParams::default())
        .await
        .unwrap();
    reconcile(&client).await;
    pod.project(&client, &deployment_json(&client).await).await;
    eventually("the customers domain is gone", || {
        let url = format!("{}/ui/navigation", bff.url);
        let clerk = clerk.clone();
        async move { labels(&call("GET", url, &clerk, None, None).await.1) == ["Orders"] }
    })
    .await;
    let (status, _, _) = call(
        "GET",
        format!("{}/ui/pages/customers.list", bff.url),
        &clerk,
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    stage(
        "a deleted definition was removed from the projection and its domain disappeared from the BFF",
    );
    drop(bff);
}

/// The canary's metrics source in the pipeline: the real `/metrics` of the
/// BFF processes, read over HTTP where the API server's pod proxy would
/// read them, by pod name.
struct ProcessMetrics {
    urls: Mutex<BTreeMap<String, String>>,
}

impl controller::MetricsSource for ProcessMetrics {
    fn read<'a>(
        &'a self,
        request: &'a controller::ReadRequest<'a>,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<thesa_operator::rollout::Reading, String>>
                + Send
                + 'a,
        >,
    > {
        Box::pin(async move {
            let mut tracks = Vec::new();
            for pods in [&request.canary, &request.stable] {
                let mut texts = Vec::new();
                for pod in pods.iter() {
                    let url = self.urls.lock().unwrap().get(&pod.name).cloned();
                    let Some(url) = url else {
                        return Err(format!("no process for pod {}", pod.name));
                    };
                    let text = reqwest::get(format!("{url}{}", pod.path))
                        .await
                        .map_err(|e| e.to_string())?
                        .text()
                        .await
                        .map_err(|e| e.to_string())?;
                    texts.push(text);
                }
                let counters =
                    thesa_operator::rollout::parse_counters(texts.iter().map(String::as_str))?;
                tracks.push(thesa_operator::rollout::Measured::Counters(counters));
            }
            let stable = tracks.pop().unwrap();
            let canary = tracks.pop().unwrap();
            Ok(thesa_operator::rollout::Reading { canary, stable })
        })
    }
}

/// A pod of the `thesa-canary` Deployment as it is now: its volumes
/// projected from the API, its thesa-bff started.
async fn start_canary(client: &Client) -> (Pod, Bff) {
    let deployment = serde_json::to_value(
        Api::<Deployment>::namespaced(client.clone(), NS)
            .get("thesa-canary")
            .await
            .unwrap(),
    )
    .unwrap();
    let mut pod = Pod {
        root: tempfile::tempdir().unwrap(),
        volumes: BTreeMap::new(),
    };
    pod.project(client, &deployment).await;
    let bff = start_bff(client, &pod, &deployment).await;
    (pod, bff)
}

/// A Running pod object of one track, for the operator's pod listing.
async fn pod_object(client: &Client, name: &str, canary: bool) {
    let mut labels =
        json!({"app.kubernetes.io/name": "thesa-bff", "app.kubernetes.io/instance": "thesa"});
    if canary {
        labels["thesa.io/track"] = json!("canary");
    }
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": labels,
                     "annotations": {"prometheus.io/port": "8080", "prometheus.io/path": "/metrics"}},
        "spec": {"containers": [{"name": "thesa-bff", "image": "thesa-bff"}]},
        "status": {"phase": "Running"},
    }))
    .unwrap();
    let api: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), NS);
    let _ = api.delete(name, &DeleteParams::default()).await;
    api.create(&PostParams::default(), &pod).await.unwrap();
}

/// One reconcile with the process metrics, then the kubelet's part: the
/// Deployments report their pods ready.
async fn reconcile_canary(client: &Client, metrics: &Arc<ProcessMetrics>) {
    let definitions: Api<ThesaDefinition> = Api::all(client.clone());
    let revisions = Revisions::default();
    let (store, mut writer) = reflector::store();
    writer.apply_watcher_event(&watcher::Event::Init);
    for definition in definitions.list(&ListParams::default()).await.unwrap() {
        writer.apply_watcher_event(&cached_event(
            watcher::Event::InitApply(definition),
            &revisions,
        ));
    }
    writer.apply_watcher_event(&watcher::Event::InitDone);
    let handlers = thesa_core::validate::known_handlers(None);
    let mut ctx = Context::new(client.clone(), store, handlers);
    ctx.metrics = metrics.clone();
    let tdep = Api::<ThesaDeployment>::namespaced(client.clone(), NS)
        .get("thesa")
        .await
        .unwrap();
    controller::reconcile(Arc::new(tdep), Arc::new(ctx))
        .await
        .unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    for name in ["thesa", "thesa-canary"] {
        if let Some(d) = deployments.get_opt(name).await.unwrap() {
            let n = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let status = json!({"status": {"observedGeneration": d.metadata.generation,
                "replicas": n, "readyReplicas": n, "updatedReplicas": n}});
            deployments
                .patch_status(
                    name,
                    &kube::api::PatchParams::default(),
                    &kube::api::Patch::Merge(status),
                )
                .await
                .unwrap();
        }
    }
}

async fn rollout_phase(client: &Client) -> Option<thesa_operator::crd::RolloutPhase> {
    Api::<ThesaDeployment>::namespaced(client.clone(), NS)
        .get("thesa")
        .await
        .unwrap()
        .status
        .and_then(|s| s.rollout)
        .map(|r| r.phase)
}

/// `n` requests for `path` to a BFF; their statuses.
async fn traffic(bff: &Bff, token: &str, path: &str, n: usize) -> Vec<u16> {
    let mut statuses = Vec::new();
    for _ in 0..n {
        let (status, _, _) = call("GET", format!("{}{path}", bff.url), token, None, None).await;
        statuses.push(status.as_u16());
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_rolls_back_a_failing_definition_and_promotes_a_good_one() {
    use thesa_operator::crd::RolloutPhase;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let database_server = postgres::Postgres::start();
    let database = database_server.database();
    let redis = redis::Redis::start();
    let backends = backends(Calls::default()).await;
    let mut specs = BTreeMap::new();
    for service in ["orders-svc", "inventory-svc", "customers-svc"] {
        let file = format!("{service}.yaml");
        specs.insert(
            file.clone(),
            std::fs::read_to_string(repo().join("specs").join(&file)).unwrap(),
        );
    }
    let specs: ConfigMap = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "thesa-backend-specs", "namespace": NS},
        "data": specs,
    }))
    .unwrap();
    // Second-long steps and intervals; one bad interval rolls back.
    let mut tdep = deployment(&backends);
    tdep.spec.rollout = Some(
        serde_json::from_value(json!({
            "strategy": "canary",
            "steps": [{"weight": 50, "pause": "1s"}, {"weight": 100, "pause": "1s"}],
            "analysis": {"interval": "1s", "minRequests": 5, "failureLimit": 1},
        }))
        .unwrap(),
    );
    let mut builder = ClientBuilder::new()
        .with_resource::<ThesaDefinition>()
        .with_resource::<ThesaDeployment>()
        .with_resource::<k8s_openapi::api::core::v1::Pod>()
        .with_status_subresource::<ThesaDefinition>()
        .with_status_subresource::<ThesaDeployment>()
        .with_status_subresource::<Deployment>()
        .with_object(tdep)
        .with_object(specs)
        .with_object(secret("thesa-db-credentials", "dsn", &database.url))
        .with_object(secret("thesa-redis", "addr", &redis.addr))
        .with_object(secret("thesa-service-tokens", "customers-svc", "s3cret"));
    for domain in ["orders", "inventory", "customers"] {
        let definition: ThesaDefinition =
            serde_json::from_value(manifest(&format!("samples/definitions/{domain}.yaml")))
                .unwrap();
        builder = builder.with_object(definition);
    }
    let client = builder.build().await.unwrap();
    let metrics = Arc::new(ProcessMetrics {
        urls: Mutex::new(BTreeMap::new()),
    });

    // The first rollout: the stable BFF.
    reconcile_canary(&client, &metrics).await;
    assert_eq!(
        rollout_phase(&client).await,
        None,
        "the first rollout is immediate"
    );
    let stable_deployment = deployment_json(&client).await;
    let mut stable_pod = Pod {
        root: tempfile::tempdir().unwrap(),
        volumes: BTreeMap::new(),
    };
    stable_pod.project(&client, &stable_deployment).await;
    let stable = start_bff(&client, &stable_pod, &stable_deployment).await;
    pod_object(&client, "thesa-stable-0", false).await;
    metrics
        .urls
        .lock()
        .unwrap()
        .insert("thesa-stable-0".into(), stable.url.clone());
    let config = stable_pod.local("/config").join("config.yaml");
    let clerk = token(&config, "alice", "order_clerk");
    stage("canary pipeline: the stable thesa-bff serves the first rollout");

    // A bad change: a new page on a backend that answers 500.
    let bad_page = "  pages:\n    - id: orders.statuses_page\n      title: Statuses\n      route: /orders/statuses\n      layout: table\n      capabilities: [orders:view]\n      table:\n        data_source:\n          operation_id: listOrderStatuses\n          service_id: orders-svc\n          mapping:\n            items_path: items\n        columns:\n          - field: label\n            label: Label\n            type: text\n";
    edit_definition(
        &client,
        "orders",
        &[("\n  pages:\n", &format!("\n{bad_page}"))],
    )
    .await;
    reconcile_canary(&client, &metrics).await;
    assert_eq!(
        rollout_phase(&client).await,
        Some(RolloutPhase::Progressing)
    );
    let (_canary_pod, canary) = start_canary(&client).await;
    pod_object(&client, "thesa-canary-0", true).await;
    metrics
        .urls
        .lock()
        .unwrap()
        .insert("thesa-canary-0".into(), canary.url.clone());
    stage(
        "a definition change started a canary: thesa-canary runs on its own ConfigMaps beside the stable BFF",
    );

    let deadline = Instant::now() + Duration::from_secs(20);
    let mut canary_statuses = Vec::new();
    while rollout_phase(&client).await != Some(RolloutPhase::RolledBack) {
        assert!(
            Instant::now() < deadline,
            "the bad canary was not rolled back"
        );
        canary_statuses
            .extend(traffic(&canary, &clerk, "/ui/pages/orders.statuses_page/data", 5).await);
        let stable_statuses = traffic(&stable, &clerk, "/ui/pages/orders.list/data", 5).await;
        assert!(
            stable_statuses.iter().all(|s| *s == 200),
            "{stable_statuses:?}"
        );
        reconcile_canary(&client, &metrics).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        canary_statuses.iter().all(|s| *s >= 500),
        "{canary_statuses:?}"
    );
    let rolled_back = Api::<ThesaDeployment>::namespaced(client.clone(), NS)
        .get("thesa")
        .await
        .unwrap()
        .status
        .and_then(|s| s.rollout)
        .unwrap();
    assert!(
        rolled_back
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("error rate 100.00%"),
        "figures from the canary's real /metrics: {:?}",
        rolled_back.message
    );
    assert_eq!(
        accepted(&client, "orders").await,
        ("False".to_string(), "RolloutFailed".to_string())
    );
    assert!(
        Api::<Deployment>::namespaced(client.clone(), NS)
            .get_opt("thesa-canary")
            .await
            .unwrap()
            .is_none()
    );
    drop(canary);
    // The stable BFF never served the page: neither its ConfigMap nor the
    // process has it.
    stable_pod
        .project(&client, &deployment_json(&client).await)
        .await;
    let served =
        std::fs::read_to_string(stable_pod.local("/definitions").join("orders.yaml")).unwrap();
    assert!(!served.contains("orders.statuses_page"));
    let (status, _, _) = call(
        "GET",
        format!("{}/ui/pages/orders.statuses_page", stable.url),
        &clerk,
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    stage(
        "the canary's 5xx rolled it back: canary removed, orders marked RolloutFailed, the stable BFF never served the page",
    );

    // A good change: promoted through every step.
    edit_definition(
        &client,
        "orders",
        &[("title: Orders\n", "title: All orders\n")],
    )
    .await;
    reconcile_canary(&client, &metrics).await;
    assert_eq!(
        rollout_phase(&client).await,
        Some(RolloutPhase::Progressing)
    );
    let (_canary_pod, canary) = start_canary(&client).await;
    metrics
        .urls
        .lock()
        .unwrap()
        .insert("thesa-canary-0".into(), canary.url.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    // The step the canary started at, as the status says.
    let mut steps: std::collections::BTreeSet<i32> =
        Api::<ThesaDeployment>::namespaced(client.clone(), NS)
            .get("thesa")
            .await
            .unwrap()
            .status
            .and_then(|s| s.rollout)
            .map(|r| r.step)
            .into_iter()
            .collect();
    while rollout_phase(&client).await != Some(RolloutPhase::Promoted) {
        assert!(
            Instant::now() < deadline,
            "the good canary was not promoted"
        );
        let statuses = traffic(&canary, &clerk, "/ui/pages/orders.list/data", 5).await;
        assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
        traffic(&stable, &clerk, "/ui/pages/orders.list/data", 5).await;
        reconcile_canary(&client, &metrics).await;
        if let Some(r) = Api::<ThesaDeployment>::namespaced(client.clone(), NS)
            .get("thesa")
            .await
            .unwrap()
            .status
            .and_then(|s| s.rollout)
        {
            assert_ne!(r.phase, RolloutPhase::RolledBack, "{:?}", r.message);
            steps.insert(r.step);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let promoted = Api::<ThesaDeployment>::namespaced(client.clone(), NS)
        .get("thesa")
        .await
        .unwrap()
        .status
        .and_then(|s| s.rollout)
        .unwrap();
    let figures = promoted.canary.expect("figures of a judged interval");
    assert!(
        figures.requests >= 5.0 && figures.error_rate == Some(0.0),
        "{figures:?}"
    );
    assert!(
        steps.contains(&1) && steps.contains(&2),
        "every step ran: {steps:?}"
    );
    assert!(
        Api::<Deployment>::namespaced(client.clone(), NS)
            .get_opt("thesa-canary")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(accepted(&client, "orders").await.0, "True");
    stable_pod
        .project(&client, &deployment_json(&client).await)
        .await;
    let served =
        std::fs::read_to_string(stable_pod.local("/definitions").join("orders.yaml")).unwrap();
    assert!(served.contains("title: All orders"));
    stage(
        "a good change went through every canary step on real /metrics and was promoted: the stable ConfigMaps serve it, the canary is gone",
    );
    drop(canary);
    drop(stable);
}
