//! The validating admission webhook for ThesaDefinitions: on create and
//! update it runs the gate the controller runs, for every ThesaDeployment
//! that selects the definition, with the deployment's specs and the other
//! definitions it serves; a definition the gate would reject is refused at
//! `kubectl apply` time with its findings. A definition no deployment
//! selects is checked on its own (structure, references within it).
//!
//! Judging is bounded by `timeout`; when it runs out or the API fails, the
//! request is allowed (`fail_open`) or refused, as configured — the
//! controller's gate still stands behind an allowed definition.
//!
//! Served over HTTPS (`serve`) with the certificate and key from a
//! directory (`tls.crt`, `tls.key`: the cert-manager Secret the chart
//! mounts).

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use kube::api::{Api, ListParams};
use kube::runtime::{reflector, watcher};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use thesa_core::finding::{Finding, Severity};
use thesa_core::validate::LoadedDefinition;

use crate::controller::{self, Context};
use crate::crd::{ThesaDefinition, ThesaDeployment};
use crate::plan::{self, Plan};
use crate::revision::{CachedDefinition, Revisions};

/// How the webhook judges.
#[derive(Clone)]
pub struct Webhook {
    /// The API client.
    pub client: Client,
    /// Registered SDK handler names.
    pub handlers: BTreeSet<String>,
    /// Most time for one review.
    pub timeout: Duration,
    /// Allow the request when judging fails or times out.
    pub fail_open: bool,
    /// The namespaces the operator watches (empty: all), where it may
    /// list.
    pub namespaces: Vec<String>,
}

/// Most findings put in a refusal message.
const SHOWN_FINDINGS: usize = 10;

impl Webhook {
    /// Answers one AdmissionReview (JSON). `Err` names what is malformed.
    pub async fn review(&self, body: &[u8]) -> Result<Value, String> {
        let review: Value =
            serde_json::from_slice(body).map_err(|e| format!("not an AdmissionReview: {e}"))?;
        let request = &review["request"];
        let uid = request["uid"]
            .as_str()
            .ok_or("AdmissionReview without request.uid")?;
        let api_version = review["apiVersion"]
            .as_str()
            .unwrap_or("admission.k8s.io/v1");
        let operation = request["operation"].as_str().unwrap_or_default();
        let kind = request["kind"]["kind"].as_str().unwrap_or_default();
        let answer = |allowed: bool, message: Option<String>, warnings: Vec<String>| {
            let mut response = json!({ "uid": uid, "allowed": allowed });
            if let Some(message) = message {
                response["status"] =
                    json!({ "code": if allowed { 200 } else { 422 }, "message": message });
            }
            if !warnings.is_empty() {
                response["warnings"] = json!(warnings);
            }
            json!({ "apiVersion": api_version, "kind": "AdmissionReview", "response": response })
        };
        if kind != "ThesaDefinition" || !matches!(operation, "CREATE" | "UPDATE") {
            return Ok(answer(true, None, Vec::new()));
        }
        let mut object = request["object"].clone();
        if object["metadata"]["namespace"].is_null() {
            object["metadata"]["namespace"] = request["namespace"].clone();
        }
        let definition: ThesaDefinition = serde_json::from_value(object)
            .map_err(|e| format!("request.object is not a ThesaDefinition: {e}"))?;
        match tokio::time::timeout(self.timeout, self.judge(definition)).await {
            Ok(Ok(Judgement {
                refusal: None,
                warnings,
            })) => Ok(answer(true, None, warnings)),
            Ok(Ok(Judgement {
                refusal: Some(message),
                warnings,
            })) => Ok(answer(false, Some(message), warnings)),
            Ok(Err(err)) => Ok(self.undecided(&format!("could not judge: {err}"), answer)),
            Err(_) => Ok(self.undecided(
                &format!("could not judge within {:?}", self.timeout),
                answer,
            )),
        }
    }

    fn undecided(
        &self,
        why: &str,
        answer: impl Fn(bool, Option<String>, Vec<String>) -> Value,
    ) -> Value {
        tracing::warn!(
            reason = why,
            fail_open = self.fail_open,
            "admission review undecided"
        );
        let note = format!("thesa-operator {why}; the controller's gate still applies");
        if self.fail_open {
            answer(true, None, vec![note])
        } else {
            answer(false, Some(note), Vec::new())
        }
    }

    /// The gate's verdict on `definition` for every deployment selecting it.
    async fn judge(&self, definition: ThesaDefinition) -> Result<Judgement, controller::Error> {
        let full_name = plan::full_name(&definition);
        // The definitions as they would be after this request.
        let revisions = Revisions::default();
        let (store, mut writer) = reflector::store();
        writer.apply_watcher_event(&watcher::Event::Init);
        for d in self.list::<ThesaDefinition>("ThesaDefinitions").await? {
            if plan::full_name(&d) != full_name {
                let cached = CachedDefinition::new(d, &revisions);
                writer.apply_watcher_event(&watcher::Event::InitApply(cached));
            }
        }
        let cached = CachedDefinition::new(definition.clone(), &revisions);
        writer.apply_watcher_event(&watcher::Event::InitApply(cached));
        writer.apply_watcher_event(&watcher::Event::InitDone);
        let ctx = Context::new(self.client.clone(), store, self.handlers.clone());

        let mut refusals = Vec::new();
        let mut judged = 0;
        for tdep in self.list::<ThesaDeployment>("ThesaDeployments").await? {
            let (snapshot, problems) = controller::dereference(&tdep, &ctx).await?;
            if !problems.is_empty() || !snapshot.definitions.iter().any(|d| d.name == full_name) {
                continue;
            }
            judged += 1;
            let Plan::Ready { outcome, .. } = plan::plan(snapshot) else {
                continue;
            };
            if let Some(verdict) = outcome
                .verdicts
                .iter()
                .find(|v| v.name == full_name && !v.accepted)
            {
                refusals.push(format!(
                    "ThesaDeployment {}: {}",
                    plan::full_name(&tdep),
                    errors(&verdict.findings)
                ));
            }
        }
        if judged == 0 {
            // Selected by nobody: its own structure only.
            let mut findings = Vec::new();
            let spec = Value::Object(definition.spec.document.clone());
            LoadedDefinition::from_value(&full_name, spec, &mut findings);
            if findings.iter().any(|f| f.severity == Severity::Error) {
                refusals.push(errors(&findings));
            }
            return Ok(Judgement {
                refusal: (!refusals.is_empty()).then(|| refusals.join("; ")),
                warnings: vec![format!(
                    "no ThesaDeployment selects {}; only its structure was checked",
                    definition.name_any()
                )],
            });
        }
        Ok(Judgement {
            refusal: (!refusals.is_empty()).then(|| refusals.join("; ")),
            warnings: Vec::new(),
        })
    }
}

impl Webhook {
    /// Every `K` in the watched namespaces.
    async fn list<K>(&self, what: &str) -> Result<Vec<K>, controller::Error>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let apis: Vec<Api<K>> = if self.namespaces.is_empty() {
            vec![Api::all(self.client.clone())]
        } else {
            self.namespaces
                .iter()
                .map(|ns| Api::namespaced(self.client.clone(), ns))
                .collect()
        };
        let mut items = Vec::new();
        for api in apis {
            let list = api
                .list(&ListParams::default())
                .await
                .map_err(controller::Error::api(format!("listing {what}")))?;
            items.extend(list.items);
        }
        Ok(items)
    }
}

/// What judging concluded.
struct Judgement {
    refusal: Option<String>,
    warnings: Vec<String>,
}

/// The errors among `findings`, as one line each (at most ten).
fn errors(findings: &[Finding]) -> String {
    let errors: Vec<String> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| format!("{}[{}] {}: {}", f.severity, f.code, f.path, f.message))
        .collect();
    let more = errors.len().saturating_sub(SHOWN_FINDINGS);
    let mut text = errors
        .into_iter()
        .take(SHOWN_FINDINGS)
        .collect::<Vec<_>>()
        .join("; ");
    if more > 0 {
        text.push_str(&format!("; and {more} more"));
    }
    text
}

/// `POST /validate-thesadefinition`.
pub fn router(webhook: Arc<Webhook>) -> Router {
    Router::new()
        .route(
            "/validate-thesadefinition",
            post(|State(w): State<Arc<Webhook>>, body: Bytes| async move {
                match w.review(&body).await {
                    Ok(review) => axum::Json(review).into_response(),
                    Err(message) => (StatusCode::BAD_REQUEST, message).into_response(),
                }
            }),
        )
        .with_state(webhook)
}

/// Serves the webhook over HTTPS on `addr` with `dir/tls.crt` and
/// `dir/tls.key` until the process ends.
pub async fn serve(
    webhook: Arc<Webhook>,
    addr: std::net::SocketAddr,
    dir: &Path,
) -> Result<(), String> {
    let read = |file: &str| {
        std::fs::read(dir.join(file)).map_err(|e| format!("{}: {e}", dir.join(file).display()))
    };
    serve_pem(webhook, addr, &read("tls.crt")?, &read("tls.key")?).await
}

/// Serves the webhook over HTTPS on `addr` with a certificate chain and
/// key in PEM until the process ends.
pub async fn serve_pem(
    webhook: Arc<Webhook>,
    addr: std::net::SocketAddr,
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<(), String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("webhook certificate: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| format!("webhook key: {e}"))?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("webhook certificate: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("listening on {addr}: {e}"))?;
    let app = router(webhook);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else {
                return;
            };
            let service = hyper_util::service::TowerToHyperService::new(app);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await;
        });
    }
}
