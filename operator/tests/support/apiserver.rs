//! The fake API served over HTTPS, reached the way a real API server is:
//! the operator binary connects to it with a kubeconfig (TLS with a CA, a
//! bearer token). It adds what `kube-fake-client` lacks and a real server
//! does:
//!
//! - **watches**: a `?watch=true` request polls the fake every 50 ms and
//!   streams the differences as watch events; lists carry a resource
//!   version to resume from;
//! - **authorization**: given rules `(group, resource, verb)`, every
//!   request is checked as the API server's RBAC authorizer checks it —
//!   including that a server-side apply of an object that does not exist
//!   yet is a `create` too, and that an owner reference with
//!   `blockOwnerDeletion` needs `update` on the owner's `finalizers`
//!   (the OwnerReferencesPermissionEnforcement admission plugin);
//! - **paging**: `limit` and `continue` on lists (the fake truncates at
//!   `limit` and never continues);
//! - **no-op writes**: a watch reports an object as modified only when
//!   more than its resource version changed (the fake bumps it on every
//!   apply; a real API server does not write an unchanged object);
//! - **restarts**: [`ApiServer::outage`] cuts every connection and refuses
//!   new ones; [`ApiServer::restart`] answers again, with `410 Gone` to a
//!   watch resumed from a resource version older than the restart, as a
//!   real API server's watch cache does;
//! - **the pod proxy**: `GET /api/v1/namespaces/NS/pods/NAME:PORT/proxy/PATH`
//!   answers what [`ApiServer::serve_pod_metrics`] set for the pod (its
//!   `/metrics` text), authorized as `pods/proxy` `get`.

use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use kube::Client;
use serde_json::{Value, json};

/// `(API group, resource, verb)`, as an RBAC rule names them (`""` is the
/// core group; subresources as `deployments/status`).
pub type Permission = (String, String, String);

/// A running fake API server.
pub struct ApiServer {
    /// Where it listens (`127.0.0.1`).
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    accept: tokio::task::JoinHandle<()>,
}

struct Shared {
    client: Client,
    /// Refuses and cuts connections while true.
    down: AtomicBool,
    /// Bumped to cut every open connection.
    cut: tokio::sync::watch::Sender<u64>,
    /// The highest resource version seen in the fake.
    newest: AtomicU64,
    /// A watch from an older resource version gets 410 Gone.
    oldest_watchable: AtomicU64,
    /// When set, only these permissions are granted.
    rules: Option<BTreeSet<Permission>>,
    /// Requests refused by the rules, as the API server words them.
    forbidden: Mutex<Vec<String>>,
    /// Every write (method other than GET) that passed: path and body.
    writes: Mutex<Vec<(String, Bytes)>>,
    /// What each pod's proxied `/metrics` answers, by pod name.
    pod_metrics: Mutex<HashMap<String, String>>,
}

impl ApiServer {
    /// Serves `client` (a `kube-fake-client`) over HTTPS on a free port,
    /// granting everything, or only `rules`.
    pub async fn start(client: Client, rules: Option<BTreeSet<Permission>>) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("listen");
        let addr = listener.local_addr().expect("address");
        let (cut, _) = tokio::sync::watch::channel(0);
        let shared = Arc::new(Shared {
            client,
            down: AtomicBool::new(false),
            cut,
            newest: AtomicU64::new(0),
            oldest_watchable: AtomicU64::new(0),
            rules,
            forbidden: Mutex::new(Vec::new()),
            writes: Mutex::new(Vec::new()),
            pod_metrics: Mutex::new(HashMap::new()),
        });
        let acceptor = tls_acceptor();
        let serving = shared.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                if serving.down.load(Ordering::SeqCst) {
                    drop(stream);
                    continue;
                }
                let (acceptor, shared) = (acceptor.clone(), serving.clone());
                let mut cut = shared.cut.subscribe();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let service =
                        hyper::service::service_fn(move |request| handle(shared.clone(), request));
                    let connection = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service);
                    // Dropping the connection cuts it mid-stream, as a
                    // dying API server does.
                    tokio::select! {
                        _ = connection => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Self {
            addr,
            shared,
            accept,
        }
    }

    /// Pod `pod`'s `/metrics`, as the pod proxy serves it from now on.
    pub fn serve_pod_metrics(&self, pod: &str, text: &str) {
        let mut served = self.shared.pod_metrics.lock().expect("lock");
        served.insert(pod.to_string(), text.to_string());
    }

    /// The fake behind it, for the test's own reads and writes.
    pub fn client(&self) -> &Client {
        &self.shared.client
    }

    /// A kubeconfig for this server (CA of `operator/tests/tls`, a token)
    /// written into `dir`.
    pub fn kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        let ca = tls_dir().join("ca.crt");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: https://localhost:{port}\n    certificate-authority: {ca}\nusers:\n- name: operator\n  user:\n    token: test-token\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: operator\n    namespace: {ns}\ncurrent-context: fake\n",
            port = self.addr.port(),
            ca = ca.display(),
            ns = super::NS,
        );
        std::fs::write(&path, text).expect("kubeconfig");
        path
    }

    /// The API server goes away: open connections are cut mid-stream, new
    /// ones are closed at once.
    pub fn outage(&self) {
        self.shared.down.store(true, Ordering::SeqCst);
        self.shared.cut.send_modify(|n| *n += 1);
    }

    /// It answers again, as a freshly started API server: its watch cache
    /// starts at the newest resource version, so watches resumed from an
    /// older one get 410 Gone and must list again.
    pub async fn restart(&self) {
        // Something changed meanwhile (as in any real cluster): the newest
        // resource version moves past every one the operator saw.
        let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
            kube::Api::namespaced(self.shared.client.clone(), "kube-system");
        let marker = serde_json::from_value(json!({
            "metadata": {"generateName": "apiserver-restart-", "name": format!("apiserver-restart-{}", self.shared.newest.load(Ordering::SeqCst))}
        }))
        .expect("marker");
        let created = api
            .create(&kube::api::PostParams::default(), &marker)
            .await
            .expect("marker ConfigMap");
        let version = created
            .metadata
            .resource_version
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        self.shared.newest.fetch_max(version, Ordering::SeqCst);
        self.shared
            .oldest_watchable
            .store(version, Ordering::SeqCst);
        self.shared.down.store(false, Ordering::SeqCst);
    }

    /// Requests refused by the rules so far.
    pub fn forbidden(&self) -> Vec<String> {
        self.shared.forbidden.lock().expect("lock").clone()
    }

    /// The bodies of the writes authorized so far to a path ending in
    /// `path_end`, in order.
    pub fn writes_to(&self, path_end: &str) -> Vec<Value> {
        let writes = self.shared.writes.lock().expect("lock");
        writes
            .iter()
            .filter(|(path, _)| path.ends_with(path_end))
            .filter_map(|(_, body)| serde_json::from_slice(body).ok())
            .collect()
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.accept.abort();
        self.shared.cut.send_modify(|n| *n += 1);
    }
}

fn tls_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tls")
}

fn tls_acceptor() -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(tls_dir().join("tls.crt"))
            .expect("tls.crt")
            .collect::<Result<_, _>>()
            .expect("tls.crt");
    let key = PrivateKeyDer::from_pem_file(tls_dir().join("tls.key")).expect("tls.key");
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("certificate");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

type Body = BoxBody<Bytes, Infallible>;

fn full(status: StatusCode, body: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body)).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        "application/json".parse().unwrap(),
    );
    response
}

/// A `Status` answer as the API server writes it.
fn status(code: StatusCode, reason: &str, message: &str) -> Response<Body> {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code.as_u16(),
    });
    full(code, body.to_string().into_bytes())
}

fn query_params(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| {
            let v = percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .to_string();
            (k.to_string(), v)
        })
        .collect()
}

async fn handle(
    shared: Arc<Shared>,
    request: Request<hyper::body::Incoming>,
) -> Result<Response<Body>, Infallible> {
    let (parts, body) = request.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let params = query_params(parts.uri.query().unwrap_or_default());
    let watching =
        parts.method == Method::GET && params.get("watch").is_some_and(|w| w == "true" || w == "1");
    if let Some(refusal) = authorize(&shared, &parts, &bytes, watching).await {
        return Ok(refusal);
    }
    if watching {
        return Ok(watch(shared, parts.uri.path().to_string(), params));
    }
    if parts.method != Method::GET {
        let write = (parts.uri.path().to_string(), bytes.clone());
        shared.writes.lock().expect("lock").push(write);
    }
    // Pages are cut here: the fake would truncate without a continue token.
    let page = (parts.method == Method::GET)
        .then(|| Page::of(&params))
        .flatten();
    let mut parts = parts;
    if page.is_some() {
        let rest: Vec<&str> = parts
            .uri
            .query()
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.starts_with("limit=") && !p.starts_with("continue="))
            .collect();
        let uri = format!("{}?{}", parts.uri.path(), rest.join("&"));
        parts.uri = uri.parse().expect("the request's own path and query");
    }
    if let Some(target) = target(parts.uri.path())
        && target.resource == "pods"
        && target.subresource.as_deref() == Some("proxy")
    {
        // `NAME:PORT`: the pod's name before the port.
        let name = target.name.unwrap_or_default();
        let pod = name.split(':').next().unwrap_or_default().to_string();
        let text = shared.pod_metrics.lock().expect("lock").get(&pod).cloned();
        return Ok(match text {
            Some(text) if parts.uri.path().ends_with("/proxy/metrics") => {
                full(StatusCode::OK, text.into_bytes())
            }
            _ => status(
                StatusCode::NOT_FOUND,
                "NotFound",
                &format!("pods \"{pod}\" not found"),
            ),
        });
    }
    let request = Request::from_parts(parts, kube::client::Body::from(bytes.to_vec()));
    let response = match shared.client.send(request).await {
        Ok(response) => response,
        Err(err) => {
            return Ok(status(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                &err.to_string(),
            ));
        }
    };
    let (parts, body) = response.into_parts();
    let body = body.collect_bytes().await.unwrap_or_default();
    let body = match serde_json::from_slice::<Value>(&body) {
        Ok(mut value) => {
            note_versions(&shared, &value);
            if value.get("items").is_some() {
                // The fake answers every list with resourceVersion "1".
                value["metadata"]["resourceVersion"] =
                    json!(shared.newest.load(Ordering::SeqCst).to_string());
                if let Some(page) = page {
                    page.cut(&mut value);
                }
            }
            value.to_string().into_bytes()
        }
        Err(_) => body.to_vec(),
    };
    let mut answer = full(parts.status, body);
    *answer.headers_mut() = parts.headers;
    answer.headers_mut().remove(http::header::CONTENT_LENGTH);
    Ok(answer)
}

/// A page of a list: `limit` items from offset `continue`.
#[derive(Clone, Copy)]
struct Page {
    offset: usize,
    limit: usize,
}

impl Page {
    fn of(params: &HashMap<String, String>) -> Option<Self> {
        let limit = params.get("limit").and_then(|l| l.parse().ok());
        let offset = params.get("continue").and_then(|c| c.parse().ok());
        (limit.is_some() || offset.is_some()).then(|| Page {
            offset: offset.unwrap_or(0),
            limit: limit.filter(|l| *l > 0).unwrap_or(usize::MAX),
        })
    }

    /// Keeps this page of `list.items` (in name order, as the API server
    /// lists) and sets `metadata.continue` when more follow.
    fn cut(self, list: &mut Value) {
        let Some(items) = list["items"].as_array_mut() else {
            return;
        };
        let key = |v: &Value| {
            (
                v.pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                v.pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            )
        };
        items.sort_by_key(key);
        let total = items.len();
        let end = self.offset.saturating_add(self.limit).min(total);
        let page: Vec<Value> = items.drain(self.offset.min(total)..end).collect();
        *items = page;
        if end < total {
            list["metadata"]["continue"] = json!(end.to_string());
            list["metadata"]["remainingItemCount"] = json!(total - end);
        }
    }
}

/// Remembers the highest resource version in an answer.
fn note_versions(shared: &Shared, value: &Value) {
    let version = |v: &Value| {
        v.pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<u64>().ok())
    };
    let mut newest = version(value).filter(|_| value.get("items").is_none());
    for item in value["items"].as_array().into_iter().flatten() {
        newest = newest.max(version(item));
    }
    if let Some(newest) = newest {
        shared.newest.fetch_max(newest, Ordering::SeqCst);
    }
}

/// Where a request points: group, namespace, resource, name,
/// subresource.
struct Target {
    group: String,
    namespace: Option<String>,
    resource: String,
    name: Option<String>,
    subresource: Option<String>,
}

fn target(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", _version, rest @ ..] => (String::new(), rest),
        ["apis", group, _version, rest @ ..] => (group.to_string(), rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
        rest => (None, rest),
    };
    let (resource, name, subresource) = match rest {
        [resource] => (resource.to_string(), None, None),
        [resource, name] => (resource.to_string(), Some(name.to_string()), None),
        [resource, name, sub] => (
            resource.to_string(),
            Some(name.to_string()),
            Some(sub.to_string()),
        ),
        // `pods/{name}:{port}/proxy/{path}`: authorized as `pods/proxy`.
        [resource, name, "proxy", ..] => (
            resource.to_string(),
            Some(name.to_string()),
            Some("proxy".to_string()),
        ),
        _ => return None,
    };
    Some(Target {
        group,
        namespace,
        resource,
        name,
        subresource,
    })
}

/// The permissions the API server checks for a request, each with the
/// namespace it is checked in: the verb of its method (`watch` for a
/// watch), and
/// - for a server-side apply of an object that does not exist yet
///   (`object_exists` false), `create` as well: the apply creates it;
/// - for each owner reference with `blockOwnerDeletion`, `update` on the
///   owner's `finalizers` (the OwnerReferencesPermissionEnforcement
///   admission plugin).
pub fn authorized_as(
    method: &Method,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
    watching: bool,
    object_exists: bool,
) -> Vec<(Permission, Option<String>)> {
    let Some(target) = target(path) else {
        return Vec::new();
    };
    let resource = match &target.subresource {
        Some(sub) => format!("{}/{sub}", target.resource),
        None => target.resource.clone(),
    };
    let named = target.name.is_some();
    let verb = match (method, named) {
        _ if watching => "watch",
        (&Method::GET, true) => "get",
        (&Method::GET, false) => "list",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, true) => "delete",
        (&Method::DELETE, false) => "deletecollection",
        _ => "unknown",
    };
    let at = |group: &str, resource: &str, verb: &str| {
        (
            (group.to_string(), resource.to_string(), verb.to_string()),
            target.namespace.clone(),
        )
    };
    let mut needed = vec![at(&target.group, &resource, verb)];
    let apply = content_type.is_some_and(|v| v.starts_with("application/apply-patch"));
    if apply && target.subresource.is_none() && !object_exists {
        needed.push(at(&target.group, &resource, "create"));
    }
    if matches!(verb, "create" | "update" | "patch")
        && let Ok(object) = serde_json::from_slice::<Value>(body)
    {
        for owner in object
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|o| o["blockOwnerDeletion"] == json!(true))
        {
            let api_version = owner["apiVersion"].as_str().unwrap_or_default();
            let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
            let kind = owner["kind"].as_str().unwrap_or_default().to_lowercase();
            needed.push(at(group, &format!("{kind}s/finalizers"), "update"));
        }
    }
    needed
}

/// What the API server authorizes a request to this server as.
async fn required(
    shared: &Shared,
    parts: &http::request::Parts,
    body: &[u8],
    watching: bool,
) -> Vec<(Permission, Option<String>)> {
    let content_type = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let exists = parts.method == Method::PATCH && exists(shared, parts.uri.path()).await;
    authorized_as(
        &parts.method,
        parts.uri.path(),
        content_type,
        body,
        watching,
        exists,
    )
}

async fn exists(shared: &Shared, path: &str) -> bool {
    let request = Request::get(path)
        .body(kube::client::Body::from(Vec::new()))
        .expect("request");
    shared
        .client
        .send(request)
        .await
        .is_ok_and(|r| r.status().is_success())
}

/// A 403 as the RBAC authorizer words it, when a permission is missing.
async fn authorize(
    shared: &Shared,
    parts: &http::request::Parts,
    body: &[u8],
    watching: bool,
) -> Option<Response<Body>> {
    let rules = shared.rules.as_ref()?;
    for ((group, resource, verb), namespace) in required(shared, parts, body, watching).await {
        if rules.contains(&(group.clone(), resource.clone(), verb.clone())) {
            continue;
        }
        let name = target(parts.uri.path())
            .and_then(|t| t.name)
            .unwrap_or_default();
        let message = format!(
            "{resource} {name:?} is forbidden: User \"system:serviceaccount:thesa-system:thesa-operator\" cannot {verb} resource {resource:?} in API group {group:?}{}",
            namespace
                .map(|ns| format!(" in the namespace {ns:?}"))
                .unwrap_or_default()
        );
        shared.forbidden.lock().expect("lock").push(message.clone());
        return Some(status(StatusCode::FORBIDDEN, "Forbidden", &message));
    }
    None
}

/// The objects a list of `path` returns, by `namespace/name`.
async fn list(shared: &Shared, path: &str, selectors: &str) -> Option<HashMap<String, Value>> {
    let uri = if selectors.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{selectors}")
    };
    let request = Request::get(uri)
        .body(kube::client::Body::from(Vec::new()))
        .ok()?;
    let response = shared.client.send(request).await.ok()?;
    let body = response.into_body().collect_bytes().await.ok()?;
    let value: Value = serde_json::from_slice(&body).ok()?;
    note_versions(shared, &value);
    let items = value["items"].as_array()?;
    Some(
        items
            .iter()
            .map(|item| {
                let meta = &item["metadata"];
                let key = format!(
                    "{}/{}",
                    meta["namespace"].as_str().unwrap_or_default(),
                    meta["name"].as_str().unwrap_or_default()
                );
                (key, item.clone())
            })
            .collect(),
    )
}

/// Whether two versions of an object differ only in what the fake changes
/// on a write that changes nothing (resource version, managed fields).
fn same_but_version(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
            meta.remove("managedFields");
        }
        v
    };
    strip(old) == strip(new)
}

fn version_of(object: &Value) -> u64 {
    object
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// A watch: 410 Gone from a version older than the last restart;
/// otherwise every change after `resourceVersion`, until `timeoutSeconds`.
fn watch(shared: Arc<Shared>, path: String, params: HashMap<String, String>) -> Response<Body> {
    let from: u64 = params
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let oldest = shared.oldest_watchable.load(Ordering::SeqCst);
    if from != 0 && from < oldest {
        return status(
            StatusCode::GONE,
            "Expired",
            &format!("too old resource version: {from} ({oldest})"),
        );
    }
    let timeout = params
        .get("timeoutSeconds")
        .and_then(|v| v.parse().ok())
        .unwrap_or(290);
    let selectors: Vec<String> = ["labelSelector", "fieldSelector"]
        .iter()
        .filter_map(|k| {
            let v = params.get(*k)?;
            let encoded =
                percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC);
            Some(format!("{k}={encoded}"))
        })
        .collect();
    let selectors = selectors.join("&");
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(64);
    tokio::spawn(async move {
        let deadline = Instant::now() + Duration::from_secs(timeout);
        let mut known: HashMap<String, Value> = HashMap::new();
        let mut first = true;
        while Instant::now() < deadline {
            let listing = Instant::now();
            let Some(now) = list(&shared, &path, &selectors).await else {
                return;
            };
            // Large lists are polled less often, so that the polling does
            // not take the machine.
            let pause = Duration::from_millis(50).max(listing.elapsed() * 4);
            let mut events = Vec::new();
            for (key, object) in &now {
                let changed = match known.get(key) {
                    None if first && version_of(object) <= from => false,
                    None => {
                        events.push(("ADDED", object.clone()));
                        false
                    }
                    Some(old) => {
                        version_of(old) != version_of(object) && !same_but_version(old, object)
                    }
                };
                if changed {
                    events.push(("MODIFIED", object.clone()));
                }
            }
            for (key, object) in &known {
                if !now.contains_key(key) {
                    events.push(("DELETED", object.clone()));
                }
            }
            known = now;
            first = false;
            for (kind, object) in events {
                let line = format!("{}\n", json!({"type": kind, "object": object}));
                if tx.send(Ok(Frame::data(Bytes::from(line)))).await.is_err() {
                    return;
                }
            }
            tokio::time::sleep(pause).await;
        }
    });
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let mut response = Response::new(StreamBody::new(stream).boxed());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        "application/json".parse().unwrap(),
    );
    response
}

/// docs/rbac-calls.txt as permissions: the namespaced rules, and with
/// `self_signed` those of the webhook's own certificate too.
pub fn documented_permissions(self_signed: bool) -> BTreeSet<Permission> {
    super::repo_file("docs/rbac-calls.txt")
        .lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .filter(|l| !l.is_empty())
        .filter_map(|l| match l.strip_prefix("webhook-self-signed ") {
            Some(rest) => self_signed.then_some(rest),
            None => Some(l),
        })
        .flat_map(|l| {
            let mut words = l.split_whitespace();
            let group = words.next().unwrap_or_default();
            let group = if group == "core" { "" } else { group }.to_string();
            let resource = words.next().unwrap_or_default().to_string();
            let verbs = words.next().unwrap_or_default().to_string();
            verbs
                .split(',')
                .map(|v| (group.clone(), resource.clone(), v.to_string()))
                .collect::<Vec<_>>()
        })
        .collect()
}
