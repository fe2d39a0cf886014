//! Reconcile against the in-memory API of `kube-fake-client`: server-side
//! apply, the status subresource and resource versions are the fake's; it
//! has no watch, so each test fills the definitions cache from a list (what
//! the watch would deliver) and calls `reconcile` directly.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use kube_fake_client::ClientBuilder;
use serde_json::{Value, json};
use thesa_operator::controller::{self, Context};
use thesa_operator::crd::{ThesaDefinition, ThesaDeployment};
use thesa_operator::revision::{Revisions, cached_event};
use thesa_operator::telemetry::{self, Telemetry};
use thesa_operator::webhook::Webhook;

mod support;
use support::{
    NS, TestResult, client_with, fake_api, manifest, repo_file, sample_definition,
    sample_deployment, samples,
};

/// The definitions ConfigMap of the three samples: a file per domain and
/// their checksum manifest.
const SERVED_KEYS: [&str; 4] = [
    "customers.yaml",
    "inventory.yaml",
    "orders.yaml",
    "thesa-checksums.sha256",
];

/// One reconcile of the `thesa` ThesaDeployment, with the definitions
/// cache filled from the API as the watch would.
async fn reconcile(client: &Client) -> Result<(), controller::Error> {
    reconcile_with(client, Arc::default()).await
}

/// `reconcile`, recording into `telemetry`.
async fn reconcile_with(
    client: &Client,
    telemetry: Arc<Telemetry>,
) -> Result<(), controller::Error> {
    let definitions: Api<ThesaDefinition> = Api::all(client.clone());
    let revisions = Revisions::default();
    let (store, mut writer) = reflector::store();
    writer.apply_watcher_event(&watcher::Event::Init);
    for definition in definitions
        .list(&ListParams::default())
        .await
        .expect("list")
    {
        let event = cached_event(watcher::Event::InitApply(definition), &revisions);
        writer.apply_watcher_event(&event);
    }
    writer.apply_watcher_event(&watcher::Event::InitDone);
    let mut ctx = Context::new(client.clone(), store, BTreeSet::new());
    ctx.telemetry = telemetry;
    let ctx = Arc::new(ctx);
    let tdep = Api::<ThesaDeployment>::namespaced(client.clone(), NS)
        .get("thesa")
        .await
        .expect("tdep");
    controller::reconcile(Arc::new(tdep), ctx).await.map(|_| ())
}

async fn get<K>(client: &Client, name: &str) -> K
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    Api::<K>::namespaced(client.clone(), NS)
        .get(name)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

async fn definitions_data(client: &Client) -> BTreeMap<String, String> {
    get::<ConfigMap>(client, "thesa-definitions")
        .await
        .data
        .unwrap_or_default()
}

async fn checksum_annotation(client: &Client) -> String {
    let deployment: Deployment = get(client, "thesa").await;
    controller::rollout_checksum(&deployment)
        .expect("checksum annotation")
        .to_string()
}

fn condition(
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    type_: &str,
) -> (String, String, String) {
    let c = conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition"));
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

async fn accepted(client: &Client, name: &str) -> (String, String, String) {
    let tdef: ThesaDefinition = get(client, name).await;
    condition(&tdef.status.expect("status").conditions, "Accepted")
}

async fn replace_spec(
    client: &Client,
    name: &str,
    edit: impl FnOnce(&mut serde_json::Map<String, Value>),
) {
    let api: Api<ThesaDefinition> = Api::namespaced(client.clone(), NS);
    let mut tdef = api.get(name).await.expect("get");
    edit(&mut tdef.spec.document);
    api.replace(name, &PostParams::default(), &tdef)
        .await
        .expect("replace");
}

#[tokio::test]
async fn creates_the_children_with_the_expected_fields() -> TestResult {
    let client = samples().await;
    reconcile(&client).await?;
    let tdep: ThesaDeployment = get(&client, "thesa").await;

    let config: ConfigMap = get(&client, "thesa-config").await;
    let config_yaml = &config.data.as_ref().unwrap()["config.yaml"];
    assert!(config_yaml.contains("- /definitions"), "{config_yaml}");
    assert!(config.data.as_ref().unwrap().contains_key("policies.yaml"));
    let specs: ConfigMap = get(&client, "thesa-specs").await;
    let spec_keys: Vec<&String> = specs.data.as_ref().unwrap().keys().collect();
    assert_eq!(
        spec_keys,
        [
            "customers-svc.yaml",
            "inventory-svc.yaml",
            "orders-svc.yaml"
        ]
    );
    let keys: Vec<String> = definitions_data(&client).await.into_keys().collect();
    assert_eq!(keys, SERVED_KEYS);

    let sa: ServiceAccount = get(&client, "thesa").await;
    assert_eq!(sa.automount_service_account_token, Some(false));
    let service: Service = get(&client, "thesa").await;
    assert_eq!(service.spec.unwrap().ports.unwrap()[0].port, 80);

    let deployment: Deployment = get(&client, "thesa").await;
    let owner = &deployment.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("ThesaDeployment", "thesa")
    );
    assert_eq!(Some(&owner.uid), tdep.metadata.uid.as_ref());
    assert_eq!(owner.controller, Some(true));
    let spec = deployment.spec.unwrap();
    assert_eq!(spec.replicas, Some(3));
    let rolling = spec.strategy.unwrap().rolling_update.unwrap();
    assert_eq!(
        rolling.max_unavailable,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(0))
    );
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.termination_grace_period_seconds, Some(45));
    let container = &pod.containers[0];
    assert_eq!(
        container
            .liveness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .path
            .as_deref(),
        Some("/ui/health")
    );
    assert_eq!(
        container
            .readiness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .path
            .as_deref(),
        Some("/ui/ready")
    );
    let security = container.security_context.as_ref().unwrap();
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert!(
        container
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .filter(|m| m.name != "tmp")
            .all(|m| m.read_only == Some(true))
    );

    let pdb: PodDisruptionBudget = get(&client, "thesa").await;
    assert_eq!(
        pdb.spec.unwrap().min_available,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(2))
    );
    let hpas = Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), NS)
        .list(&ListParams::default())
        .await?;
    assert!(hpas.items.is_empty(), "no HPA without autoscaling");

    let status = tdep.status.expect("status");
    assert_eq!(condition(&status.conditions, "DefinitionsValid").0, "True");
    assert_eq!(
        (status.definitions.accepted, status.definitions.rejected),
        (3, 0)
    );
    assert!(status.definitions.checksum.unwrap().starts_with("sha256:"));
    assert_eq!(
        status.selector.as_deref(),
        Some("app.kubernetes.io/instance=thesa,app.kubernetes.io/name=thesa-bff")
    );
    for name in ["orders", "inventory", "customers"] {
        assert_eq!(accepted(&client, name).await.0, "True", "{name}");
        let tdef: ThesaDefinition = get(&client, name).await;
        let status = tdef.status.unwrap();
        assert_eq!(status.accepted_checksum, status.checksum);
        assert!(status.checksum.unwrap().starts_with("sha256:"));
    }
    Ok(())
}

#[tokio::test]
async fn an_invalid_revision_is_rejected_and_the_previous_one_keeps_serving() -> TestResult {
    let client = samples().await;
    reconcile(&client).await?;
    let served_before = definitions_data(&client).await["orders.yaml"].clone();
    let checksum_before = checksum_annotation(&client).await;

    replace_spec(&client, "orders", |spec| {
        spec["pages"][0]["table"]["data_source"]["operation_id"] = json!("listOrdersTypo");
    })
    .await;
    reconcile(&client).await?;

    let (status, reason, message) = accepted(&client, "orders").await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "ValidationFailed"),
        "{message}"
    );
    assert!(message.contains("keeps being served"), "{message}");
    let tdef: ThesaDefinition = get(&client, "orders").await;
    let findings = tdef.status.unwrap().findings;
    let finding = findings
        .iter()
        .find(|f| f.severity == "error")
        .expect("an error finding");
    assert_eq!(finding.code, "OPERATION_NOT_FOUND");
    assert_eq!(finding.path, "pages[0].table.data_source.operation_id");
    assert!(finding.message.contains("listOrdersTypo"));
    assert_eq!(finding.deployment.as_deref(), Some("default/thesa"));

    assert_eq!(
        definitions_data(&client).await["orders.yaml"],
        served_before
    );
    assert_eq!(
        checksum_annotation(&client).await,
        checksum_before,
        "nothing rolls"
    );
    let tdep: ThesaDeployment = get(&client, "thesa").await;
    let status = tdep.status.unwrap();
    assert_eq!(condition(&status.conditions, "DefinitionsValid").0, "False");
    assert_eq!(
        (status.definitions.accepted, status.definitions.rejected),
        (2, 1)
    );

    // A good revision afterwards is accepted and rolled out.
    replace_spec(&client, "orders", |spec| {
        spec["pages"][0]["table"]["data_source"]["operation_id"] = json!("listOrders");
        spec["version"] = json!("2.1.1");
    })
    .await;
    reconcile(&client).await?;
    assert_eq!(accepted(&client, "orders").await.0, "True");
    assert!(definitions_data(&client).await["orders.yaml"].contains("2.1.1"));
    assert_ne!(
        checksum_annotation(&client).await,
        checksum_before,
        "the pods roll"
    );
    let tdep: ThesaDeployment = get(&client, "thesa").await;
    assert_eq!(
        condition(&tdep.status.unwrap().conditions, "DefinitionsValid").0,
        "True"
    );
    Ok(())
}

#[tokio::test]
async fn a_new_invalid_definition_is_left_out() -> TestResult {
    let mut definitions = ["orders", "inventory", "customers"]
        .map(sample_definition)
        .to_vec();
    definitions.push(manifest("samples/invalid/reports.yaml"));
    let client = client_with(sample_deployment(), definitions).await;
    reconcile(&client).await?;
    let (status, _, message) = accepted(&client, "reports").await;
    assert_eq!(status, "False");
    assert!(message.contains("left out"), "{message}");
    let data = definitions_data(&client).await;
    let keys: Vec<&String> = data.keys().collect();
    assert_eq!(keys, SERVED_KEYS);
    // The checksum manifest lists what is served, not the rejected one.
    let manifest = thesa_core::checksum::Manifest::parse(&data["thesa-checksums.sha256"])?;
    let domains: Vec<&String> = manifest.checksums.keys().collect();
    assert_eq!(domains, ["customers", "inventory", "orders"]);
    Ok(())
}

#[tokio::test]
async fn a_hand_edited_deployment_is_put_back() -> TestResult {
    let client = samples().await;
    reconcile(&client).await?;
    let api: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let edit = json!({ "spec": { "replicas": 7, "template": { "spec": {
        "terminationGracePeriodSeconds": 1 } } } });
    api.patch("thesa", &PatchParams::default(), &Patch::Merge(&edit))
        .await?;
    assert_eq!(api.get("thesa").await?.spec.unwrap().replicas, Some(7));

    reconcile(&client).await?;
    let spec = api.get("thesa").await?.spec.unwrap();
    assert_eq!(spec.replicas, Some(3));
    assert_eq!(
        spec.template.spec.unwrap().termination_grace_period_seconds,
        Some(45)
    );
    Ok(())
}

#[tokio::test]
async fn deleting_a_definition_removes_it_from_the_rollout() -> TestResult {
    let client = samples().await;
    reconcile(&client).await?;
    let checksum_before = checksum_annotation(&client).await;
    Api::<ThesaDefinition>::namespaced(client.clone(), NS)
        .delete("inventory", &DeleteParams::default())
        .await?;
    reconcile(&client).await?;
    let keys: Vec<String> = definitions_data(&client).await.into_keys().collect();
    assert_eq!(
        keys,
        ["customers.yaml", "orders.yaml", "thesa-checksums.sha256"]
    );
    assert_ne!(checksum_annotation(&client).await, checksum_before);
    let tdep: ThesaDeployment = get(&client, "thesa").await;
    assert_eq!(tdep.status.unwrap().definitions.accepted, 2);
    Ok(())
}

#[tokio::test]
async fn a_hand_added_definition_key_is_removed() -> TestResult {
    let client = samples().await;
    reconcile(&client).await?;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let sneak = json!({ "data": { "sneaky.yaml": "domain: sneaky" } });
    api.patch(
        "thesa-definitions",
        &PatchParams::default(),
        &Patch::Merge(&sneak),
    )
    .await?;
    reconcile(&client).await?;
    let keys: Vec<String> = definitions_data(&client).await.into_keys().collect();
    assert_eq!(keys, SERVED_KEYS);
    Ok(())
}

#[tokio::test]
async fn with_autoscaling_the_deployment_leaves_replicas_to_the_hpa() -> TestResult {
    let mut tdep = sample_deployment();
    tdep.spec.autoscaling = manifest::<ThesaDeployment>("samples/thesadeployment.yaml")
        .spec
        .autoscaling;
    let client = client_with(tdep, vec![sample_definition("orders")]).await;
    reconcile(&client).await?;
    let deployment: Deployment = get(&client, "thesa").await;
    assert_eq!(deployment.spec.unwrap().replicas, None);
    let hpa: HorizontalPodAutoscaler = get(&client, "thesa").await;
    let spec = hpa.spec.unwrap();
    assert_eq!((spec.min_replicas, spec.max_replicas), (Some(3), 20));
    assert_eq!(spec.scale_target_ref.name, "thesa");
    let behavior = spec.behavior.unwrap();
    assert_eq!(
        behavior.scale_down.unwrap().stabilization_window_seconds,
        Some(300)
    );

    // Turning autoscaling off removes the HPA.
    let api: Api<ThesaDeployment> = Api::namespaced(client.clone(), NS);
    api.patch(
        "thesa",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "autoscaling": null } })),
    )
    .await?;
    reconcile(&client).await?;
    let hpas = Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), NS)
        .list(&ListParams::default())
        .await?;
    assert!(hpas.items.is_empty());
    let deployment: Deployment = get(&client, "thesa").await;
    assert_eq!(deployment.spec.unwrap().replicas, Some(3));
    Ok(())
}

#[tokio::test]
async fn an_invalid_config_blocks_the_rollout_with_a_clear_status() -> TestResult {
    let mut tdep = sample_deployment();
    tdep.spec.config = Some(json!({ "server": { "port": "eighty" } }));
    let client = client_with(tdep, vec![sample_definition("orders")]).await;
    reconcile(&client).await?;
    let deployments = Api::<Deployment>::namespaced(client.clone(), NS)
        .list(&ListParams::default())
        .await?;
    assert!(deployments.items.is_empty(), "nothing is applied");
    let tdep: ThesaDeployment = get(&client, "thesa").await;
    let (status, reason, message) = condition(&tdep.status.unwrap().conditions, "Degraded");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "InvalidSpec"));
    assert!(message.contains("spec.config.server.port"), "{message}");
    Ok(())
}

#[tokio::test]
async fn a_missing_spec_config_map_is_named_in_the_status() -> TestResult {
    let mut tdep = sample_deployment();
    tdep.spec.specs[0].inline = None;
    tdep.spec.specs[0].config_map_key_ref =
        Some(k8s_openapi::api::core::v1::ConfigMapKeySelector {
            name: "backend-specs".into(),
            key: "orders-svc.yaml".into(),
            optional: None,
        });
    let client = client_with(tdep, vec![sample_definition("orders")]).await;
    reconcile(&client).await?;
    let tdep: ThesaDeployment = get(&client, "thesa").await;
    let (status, _, message) = condition(&tdep.status.unwrap().conditions, "Degraded");
    assert_eq!(status, "True");
    assert!(
        message.contains("spec.specs[orders-svc]: ConfigMap \"backend-specs\" not found"),
        "{message}"
    );
    let tdef: ThesaDefinition = get(&client, "orders").await;
    assert!(
        tdef.status.is_none(),
        "definitions are not judged without their specs"
    );
    Ok(())
}

#[tokio::test]
async fn hot_reload_keeps_definition_changes_from_rolling_the_pods() -> TestResult {
    let mut tdep = sample_deployment();
    tdep.spec.definitions.hot_reload = true;
    let client = client_with(tdep, vec![sample_definition("orders")]).await;
    reconcile(&client).await?;
    let before = checksum_annotation(&client).await;
    replace_spec(&client, "orders", |spec| spec["version"] = json!("2.2.0")).await;
    reconcile(&client).await?;
    assert!(definitions_data(&client).await["orders.yaml"].contains("2.2.0"));
    assert_eq!(checksum_annotation(&client).await, before);
    let config: ConfigMap = get(&client, "thesa-config").await;
    assert!(config.data.unwrap()["config.yaml"].contains("hot_reload: true"));
    Ok(())
}

#[tokio::test]
async fn reconcile_is_idempotent() -> TestResult {
    let client = samples().await;
    reconcile(&client).await?;
    let first: ThesaDeployment = get(&client, "thesa").await;
    let deployment_before: Deployment = get(&client, "thesa").await;
    reconcile(&client).await?;
    let second: ThesaDeployment = get(&client, "thesa").await;
    assert_eq!(
        first.resource_version(),
        second.resource_version(),
        "no status write when nothing changed"
    );
    let deployment_after: Deployment = get(&client, "thesa").await;
    assert_eq!(deployment_before.spec, deployment_after.spec);
    Ok(())
}

async fn get_text(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.expect("request");
    (
        response.status().as_u16(),
        response.text().await.unwrap_or_default(),
    )
}

#[tokio::test]
async fn metrics_and_probes_are_served_over_http() -> TestResult {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let telemetry = Arc::new(Telemetry::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let router = telemetry::router(telemetry.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });

    assert_eq!(get_text(&format!("{base}/healthz")).await.0, 200);
    assert_eq!(
        get_text(&format!("{base}/readyz")).await.0,
        200,
        "a standby is ready"
    );
    telemetry.set_leading(true);
    assert_eq!(
        get_text(&format!("{base}/readyz")).await.0,
        503,
        "a leader before its caches sync"
    );
    telemetry.set_synced();
    assert_eq!(get_text(&format!("{base}/readyz")).await.0, 200);

    let mut definitions = ["orders", "inventory", "customers"]
        .map(sample_definition)
        .to_vec();
    definitions.push(manifest("samples/invalid/reports.yaml"));
    let client = client_with(sample_deployment(), definitions).await;
    reconcile_with(&client, telemetry.clone()).await?;
    let (status, text) = get_text(&format!("{base}/metrics")).await;
    assert_eq!(status, 200);
    for line in [
        "thesa_operator_reconcile_total{kind=\"ThesaDeployment\",result=\"success\"} 1",
        "thesa_operator_definitions{state=\"accepted\"} 3",
        "thesa_operator_definitions{state=\"rejected\"} 1",
        "thesa_operator_leader 1",
        "thesa_operator_reconcile_duration_seconds_count{kind=\"ThesaDeployment\"} 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line} missing from:\n{text}"
        );
    }
    Ok(())
}

#[test]
fn the_dashboard_queries_only_operator_metrics_that_exist() {
    let dashboard = repo_file("docs/grafana/thesa-bff.json");
    // Families without samples are not exposed: give each one.
    let telemetry = Telemetry::default();
    telemetry.reconciled(true, 0.1);
    telemetry.definitions("ns/thesa", 1, 0);
    telemetry.set_leading(true);
    telemetry.rollout("started");
    telemetry.rollout_step("ns/thesa", 1);
    let exported = telemetry.encode();
    for name in [
        "thesa_operator_reconcile_total",
        "thesa_operator_definitions",
        "thesa_operator_leader",
        "thesa_operator_rollouts_total",
        "thesa_operator_rollout_step",
    ] {
        assert!(dashboard.contains(name), "the dashboard shows {name}");
        let family = name.trim_end_matches("_total");
        assert!(
            exported.contains(&format!("# TYPE {family} ")),
            "{family} is not exported"
        );
    }
}

// The admission webhook, with AdmissionReview fixtures on the fake API.

fn webhook(client: &Client, timeout: std::time::Duration, fail_open: bool) -> Webhook {
    Webhook {
        client: client.clone(),
        handlers: thesa_core::validate::known_handlers(None),
        timeout,
        fail_open,
        namespaces: Vec::new(),
    }
}

/// An AdmissionReview of `operation` on `definition`.
fn admission(operation: &str, definition: &ThesaDefinition) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "3f1e7c0a-1111-2222-3333-444455556666",
            "kind": {"group": "thesa.io", "version": "v1alpha1", "kind": "ThesaDefinition"},
            "resource": {"group": "thesa.io", "version": "v1alpha1", "resource": "thesadefinitions"},
            "namespace": NS,
            "operation": operation,
            "object": definition,
        },
    }))
    .unwrap()
}

fn broken_orders() -> ThesaDefinition {
    let mut orders: Value = serde_json::to_value(sample_definition("orders")).unwrap();
    let text = serde_json::to_string(&orders).unwrap().replacen(
        "\"operation_id\":\"listOrders\"",
        "\"operation_id\":\"listOrdrs\"",
        1,
    );
    orders = serde_json::from_str(&text).unwrap();
    serde_json::from_value(orders).unwrap()
}

#[tokio::test]
async fn the_webhook_accepts_a_valid_definition_and_refuses_a_broken_one_with_findings()
-> TestResult {
    let client = samples().await;
    let hook = webhook(&client, std::time::Duration::from_secs(10), false);
    let review = hook
        .review(&admission("UPDATE", &sample_definition("orders")))
        .await?;
    assert_eq!(review["response"]["allowed"], true, "{review}");
    assert_eq!(
        review["response"]["uid"],
        "3f1e7c0a-1111-2222-3333-444455556666"
    );
    assert_eq!(review["kind"], "AdmissionReview");

    let review = hook.review(&admission("UPDATE", &broken_orders())).await?;
    assert_eq!(review["response"]["allowed"], false, "{review}");
    let message = review["response"]["status"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains("ThesaDeployment default/thesa"),
        "{message}"
    );
    assert!(
        message.contains("OPERATION_NOT_FOUND") && message.contains("listOrdrs"),
        "{message}"
    );
    assert_eq!(review["response"]["status"]["code"], 422);

    // Deleting, and other kinds, are not judged.
    let review = hook.review(&admission("DELETE", &broken_orders())).await?;
    assert_eq!(review["response"]["allowed"], true);
    Ok(())
}

#[tokio::test]
async fn the_webhook_refuses_malformed_requests_and_fails_open_or_closed_on_timeout() -> TestResult
{
    let client = samples().await;
    let hook = webhook(&client, std::time::Duration::from_secs(10), false);
    assert!(hook.review(b"not json").await.is_err());
    assert!(
        hook.review(b"{\"request\": {}}")
            .await
            .unwrap_err()
            .contains("uid")
    );
    let not_a_definition = json!({"request": {"uid": "u", "operation": "CREATE",
        "kind": {"kind": "ThesaDefinition"}, "object": {"spec": 5}}});
    assert!(
        hook.review(&serde_json::to_vec(&not_a_definition)?)
            .await
            .is_err()
    );

    let instant = std::time::Duration::ZERO;
    let review = webhook(&client, instant, true)
        .review(&admission("CREATE", &broken_orders()))
        .await?;
    assert_eq!(review["response"]["allowed"], true, "fail open: {review}");
    assert!(
        review["response"]["warnings"][0]
            .as_str()
            .unwrap_or_default()
            .contains("could not judge")
    );
    let review = webhook(&client, instant, false)
        .review(&admission("CREATE", &sample_definition("orders")))
        .await?;
    assert_eq!(
        review["response"]["allowed"], false,
        "fail closed: {review}"
    );
    Ok(())
}

#[tokio::test]
async fn an_unselected_definition_is_checked_for_structure_only() -> TestResult {
    let client = samples().await;
    let hook = webhook(&client, std::time::Duration::from_secs(10), false);
    let mut lone: Value = serde_json::to_value(sample_definition("inventory"))?;
    lone["metadata"]["labels"] = json!({});
    lone["metadata"]["name"] = json!("lone");
    let review = hook
        .review(&admission("CREATE", &serde_json::from_value(lone.clone())?))
        .await?;
    assert_eq!(review["response"]["allowed"], true, "{review}");
    assert!(
        review["response"]["warnings"][0]
            .as_str()
            .unwrap_or_default()
            .contains("no ThesaDeployment selects lone")
    );
    lone["spec"]["version"] = json!("");
    let review = hook
        .review(&admission("CREATE", &serde_json::from_value(lone)?))
        .await?;
    assert_eq!(review["response"]["allowed"], false, "{review}");
    Ok(())
}

#[tokio::test]
async fn the_webhook_is_served_over_tls() -> TestResult {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = samples().await;
    let hook = Arc::new(webhook(&client, std::time::Duration::from_secs(10), false));
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tls");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let server =
        tokio::spawn(async move { thesa_operator::webhook::serve(hook, addr, &dir).await });
    let ca = reqwest::Certificate::from_pem(&std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tls/ca.crt"),
    )?)?;
    let https = reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()?;
    let url = format!("https://localhost:{port}/validate-thesadefinition");
    let mut response = None;
    let mut last_error = String::new();
    for _ in 0..50 {
        assert!(!server.is_finished(), "the webhook server stopped");
        match https
            .post(&url)
            .body(admission("CREATE", &broken_orders()))
            .send()
            .await
        {
            Ok(r) => {
                response = Some(r);
                break;
            }
            Err(err) => {
                last_error = format!("{err:?}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
    let response = response.unwrap_or_else(|| panic!("no answer over TLS: {last_error}"));
    assert_eq!(response.status().as_u16(), 200);
    let review: Value = response.json().await?;
    assert_eq!(review["response"]["allowed"], false);
    let malformed = https.post(&url).body("{}").send().await?;
    assert_eq!(malformed.status().as_u16(), 400);
    Ok(())
}

#[tokio::test]
async fn without_cert_manager_the_operator_makes_keeps_and_injects_its_certificate() -> TestResult {
    use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
    use thesa_operator::certs;

    let _ = rustls::crypto::ring::default_provider().install_default();
    let configuration: ValidatingWebhookConfiguration = serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "thesa-operator"},
        "webhooks": [{
            "name": "thesadefinitions.thesa.io",
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "clientConfig": {"service": {"name": "thesa-operator-webhook", "namespace": "thesa-system"}},
        }],
    }))?;
    let client = ClientBuilder::new()
        .with_resource::<ThesaDefinition>()
        .with_resource::<ThesaDeployment>()
        .with_object(configuration)
        .build()
        .await?;
    let names = vec!["localhost".to_string()];
    let first = certs::ensure(&client, "thesa-system", "webhook-tls", &names).await?;
    let second = certs::ensure(&client, "thesa-system", "webhook-tls", &names).await?;
    assert_eq!(first, second, "generated once, then read from the Secret");
    certs::inject(&client, "thesa-operator", &first.ca).await?;
    let stored = Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .get("thesa-operator")
        .await?;
    let bundle = &stored.webhooks.unwrap()[0].client_config.ca_bundle;
    assert_eq!(
        bundle.as_ref().map(|b| b.0.clone()),
        Some(first.ca.clone().into_bytes())
    );

    // The generated certificate serves the webhook; clients trust the CA.
    let hook = Arc::new(webhook(&client, std::time::Duration::from_secs(10), false));
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let (cert, key) = (first.cert.clone(), first.key.clone());
    tokio::spawn(async move {
        thesa_operator::webhook::serve_pem(hook, addr, cert.as_bytes(), key.as_bytes()).await
    });
    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(first.ca.as_bytes())?)
        .build()?;
    let url = format!("https://localhost:{port}/validate-thesadefinition");
    let mut status = None;
    for _ in 0..50 {
        if let Ok(r) = https.post(&url).body("{}").send().await {
            status = Some(r.status().as_u16());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(status, Some(400), "a TLS answer (to a malformed review)");
    Ok(())
}

/// What was sent: method, path, content type, body, whether a watch.
type RequestLog = Arc<std::sync::Mutex<Vec<(http::Method, String, Option<String>, Vec<u8>, bool)>>>;

/// A client that records every API request it sends to the fake API.
fn recording(inner: Client) -> (Client, RequestLog) {
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = log.clone();
    let service = tower::service_fn(move |request: http::Request<kube::client::Body>| {
        let (inner, seen) = (inner.clone(), seen.clone());
        async move {
            let (parts, body) = request.into_parts();
            let bytes = body.collect_bytes().await.unwrap_or_default().to_vec();
            let query = parts.uri.query().unwrap_or_default().to_string();
            let watch = query.split('&').any(|p| p == "watch=true");
            let content_type = parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            seen.lock().unwrap().push((
                parts.method.clone(),
                parts.uri.path().to_string(),
                content_type,
                bytes.clone(),
                watch,
            ));
            let request = http::Request::from_parts(parts, kube::client::Body::from(bytes));
            inner.send(request).await
        }
    });
    (Client::new(service, NS), log)
}

/// Every permission the API server checks for the calls the code makes
/// (reconciles with and without autoscaling, leader election, the webhook,
/// its self-signed certificate) is in docs/rbac-calls.txt — the list the chart's RBAC is checked against —
/// and every entry there is made by the code (watches and the deletes of
/// children are made by the controller's watchers and stale-child cleanup,
/// which the fake API cannot drive: listed below by name).
#[tokio::test]
async fn the_rbac_list_is_exactly_the_calls_the_code_makes() -> TestResult {
    use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;

    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut tdep = sample_deployment();
    tdep.spec.autoscaling = serde_json::from_value(json!({"minReplicas": 2, "maxReplicas": 4}))?;
    let configuration: ValidatingWebhookConfiguration = serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "thesa-operator"},
        "webhooks": [{"name": "thesadefinitions.thesa.io", "admissionReviewVersions": ["v1"],
                      "sideEffects": "None", "clientConfig": {"url": "https://x"}}],
    }))?;
    let mut definitions = ["orders", "inventory", "customers"]
        .map(sample_definition)
        .to_vec();
    // A rejected definition: its Warning event is published.
    definitions.push(manifest("samples/invalid/reports.yaml"));
    // A running canary pod: the canary analysis reads its metrics.
    let canary_pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "thesa-canary-1", "namespace": NS,
            "labels": {"app.kubernetes.io/name": "thesa-bff", "app.kubernetes.io/instance": "thesa",
                       "thesa.io/track": "canary"},
            "annotations": {"prometheus.io/port": "8080", "prometheus.io/path": "/metrics"}},
        "spec": {"containers": [{"name": "thesa-bff", "image": "x"}]},
        "status": {"phase": "Running"},
    }))?;
    let mut builder = fake_api()
        .with_resource::<k8s_openapi::api::coordination::v1::Lease>()
        .with_resource::<k8s_openapi::api::core::v1::Pod>()
        .with_object(canary_pod)
        .with_object(tdep)
        .with_object(configuration);
    for definition in definitions {
        builder = builder.with_object(definition);
    }
    let (client, log) = recording(builder.build().await?);

    reconcile(&client).await?;
    // Autoscaling off: the HPA is deleted.
    let api: Api<ThesaDeployment> = Api::namespaced(client.clone(), NS);
    let mut tdep = api.get("thesa").await?;
    tdep.spec.autoscaling = None;
    api.replace("thesa", &PostParams::default(), &tdep).await?;
    reconcile(&client).await?;
    // A canary: switching strategy replaces the Deployment (delete), a
    // change starts the canary, the next reconcile reads the pods' metrics
    // through the pod proxy, the abort annotation rolls back (delete) and
    // is removed (patch).
    let mut tdep = api.get("thesa").await?;
    tdep.spec.rollout = Some(serde_json::from_value(json!({"strategy": "canary"}))?);
    api.replace("thesa", &PostParams::default(), &tdep).await?;
    reconcile(&client).await?;
    replace_spec(&client, "orders", |doc| {
        doc.insert("version".into(), json!("9.9.9"));
    })
    .await;
    reconcile(&client).await?;
    reconcile(&client).await?;
    let mut tdep = api.get("thesa").await?;
    tdep.metadata
        .annotations
        .get_or_insert_default()
        .insert("thesa.io/rollout-abort".into(), "true".into());
    api.replace("thesa", &PostParams::default(), &tdep).await?;
    reconcile(&client).await?;
    assert_eq!(
        api.get("thesa")
            .await?
            .status
            .and_then(|s| s.rollout)
            .map(|r| r.phase),
        Some(thesa_operator::crd::RolloutPhase::Aborted)
    );

    let elector = thesa_operator::leader::Elector::new(
        client.clone(),
        thesa_operator::leader::LeaseSettings {
            name: "lease".into(),
            namespace: NS.into(),
            identity: "a".into(),
            lease_duration: std::time::Duration::from_secs(15),
            renew_deadline: std::time::Duration::from_secs(10),
            retry_period: std::time::Duration::from_secs(2),
        },
    );
    let now = k8s_openapi::jiff::Timestamp::now();
    elector.try_acquire_or_renew(now).await?;
    elector.try_acquire_or_renew(now).await?;
    webhook(&client, std::time::Duration::from_secs(10), false)
        .review(&admission("UPDATE", &sample_definition("orders")))
        .await?;
    let pem =
        thesa_operator::certs::ensure(&client, NS, "webhook-tls", &["localhost".into()]).await?;
    thesa_operator::certs::inject(&client, "thesa-operator", &pem.ca).await?;

    // The test's own set-up calls are not the operator's. Every apply
    // counts as one that may create: whether the object existed in this
    // run is luck.
    let made: BTreeSet<(String, String, String)> = log
        .lock()
        .unwrap()
        .iter()
        .flat_map(|(method, path, content_type, body, watch)| {
            support::apiserver::authorized_as(
                method,
                path,
                content_type.as_deref(),
                body,
                *watch,
                false,
            )
        })
        .map(|(permission, _)| permission)
        .filter(|(_, r, v)| {
            !((r == "thesadeployments" || r == "thesadefinitions") && (v == "update" || v == "get"))
        })
        .collect();
    for kind in [
        "configmaps",
        "deployments",
        "services",
        "serviceaccounts",
        "poddisruptionbudgets",
        "horizontalpodautoscalers",
    ] {
        assert!(
            made.iter().any(|(_, r, v)| r == kind && v == "create"),
            "an apply of {kind} may create it: `create` must be among the permissions"
        );
    }
    let documented = support::apiserver::documented_permissions(true);
    let undocumented: Vec<_> = made.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "calls missing from docs/rbac-calls.txt: {undocumented:?}"
    );
    // Made by what the fake API cannot drive: the controller's watchers
    // (list + watch of every watched kind), a definitions shard going away
    // (ConfigMap delete), specs from a ConfigMap (the test deployment has
    // them inline), a namespaceSelector, an event series.
    let call = |g: &str, r: &str, v: &str| (g.to_string(), r.to_string(), v.to_string());
    let mut not_driven: BTreeSet<(String, String, String)> = documented
        .iter()
        .filter(|(_, _, v)| v == "watch")
        .cloned()
        .collect();
    for (g, r) in [
        ("", "services"),
        ("", "serviceaccounts"),
        ("", "secrets"),
        ("apps", "deployments"),
        ("policy", "poddisruptionbudgets"),
    ] {
        not_driven.insert(call(g, r, "list"));
    }
    not_driven.extend([
        call("", "configmaps", "delete"),
        call("", "configmaps", "get"),
        call("", "namespaces", "list"),
        call("events.k8s.io", "events", "patch"),
    ]);
    let unused: Vec<_> = documented
        .difference(&made)
        .filter(|c| !not_driven.contains(*c))
        .collect();
    println!("made: {made:#?}\nlisted but not made here: {unused:#?}");
    assert!(unused.is_empty(), "listed but never made: {unused:?}");
    Ok(())
}
