//! What the operator's integration tests share: the repository's samples as
//! objects, and a fake API (`kube-fake-client`) holding them.

#![allow(dead_code)] // each test file uses a part

pub mod apiserver;

use k8s_openapi::api::apps::v1::Deployment;
use kube::Client;
use kube_fake_client::ClientBuilder;
use serde_json::json;
use thesa_operator::crd::{ThesaDefinition, ThesaDeployment};

/// What a test returns.
pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The namespace of every test object.
pub const NS: &str = "default";

/// A file of the repository.
pub fn repo_file(path: &str) -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A manifest of the repository as an object in [`NS`].
pub fn manifest<T: serde::de::DeserializeOwned>(path: &str) -> T {
    let node =
        thesa_core::node::parse(&repo_file(path)).unwrap_or_else(|e| panic!("{path}: {e:?}"));
    let mut value = node.to_json();
    value["metadata"]["namespace"] = json!(NS);
    serde_json::from_value(value).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The sample ThesaDeployment with its specs inline (the fake has no
/// ConfigMap for them) and no secrets.
pub fn sample_deployment() -> ThesaDeployment {
    let mut tdep: ThesaDeployment = manifest("samples/thesadeployment.yaml");
    for spec in &mut tdep.spec.specs {
        spec.config_map_key_ref = None;
        spec.inline = Some(repo_file(&format!("specs/{}.yaml", spec.service_id)));
    }
    tdep.spec.secrets = Default::default();
    tdep.spec.autoscaling = None;
    tdep.spec.replicas = Some(3);
    tdep
}

/// A sample ThesaDefinition (`orders`, `inventory`, `customers`).
pub fn sample_definition(domain: &str) -> ThesaDefinition {
    manifest(&format!("samples/definitions/{domain}.yaml"))
}

/// The fake API's builder with the operator's kinds registered.
pub fn fake_api() -> ClientBuilder {
    ClientBuilder::new()
        .with_resource::<ThesaDefinition>()
        .with_resource::<ThesaDeployment>()
        .with_status_subresource::<ThesaDefinition>()
        .with_status_subresource::<ThesaDeployment>()
        .with_status_subresource::<Deployment>()
}

/// A fake API holding `tdep` and `definitions`.
pub async fn client_with(tdep: ThesaDeployment, definitions: Vec<ThesaDefinition>) -> Client {
    let mut builder = fake_api().with_object(tdep);
    for definition in definitions {
        builder = builder.with_object(definition);
    }
    builder.build().await.expect("fake client")
}

/// A fake API holding the sample ThesaDeployment and the three sample
/// definitions.
pub async fn samples() -> Client {
    let definitions = ["orders", "inventory", "customers"]
        .map(sample_definition)
        .to_vec();
    client_with(sample_deployment(), definitions).await
}

/// Copy `i` of the orders sample as a ThesaDefinition named `orders{i}`
/// (its own domain, IDs and routes), for tests and benchmarks with many.
pub fn orders_copy(orders: &str, i: usize) -> ThesaDefinition {
    let text = orders
        .replace("domain: orders", &format!("domain: orders{i}"))
        .replace("orders.", &format!("orders{i}."))
        .replace("/orders", &format!("/orders{i}"))
        .replace("order_returns", &format!("order_returns{i}"));
    let spec = thesa_core::node::parse(&text).expect("parse").to_json();
    serde_json::from_value(serde_json::json!({
        "apiVersion": "thesa.io/v1alpha1",
        "kind": "ThesaDefinition",
        "metadata": {"name": format!("orders{i}"), "namespace": NS,
                     "labels": {"thesa.io/deployment": "thesa"}},
        "spec": spec,
    }))
    .expect("ThesaDefinition")
}

/// How many ThesaDefinitions in [`NS`] are `Accepted=True` (0 when they
/// cannot be listed).
pub async fn accepted_count(client: &Client) -> usize {
    let api: kube::Api<ThesaDefinition> = kube::Api::namespaced(client.clone(), NS);
    let Ok(list) = api.list(&Default::default()).await else {
        return 0;
    };
    list.items
        .iter()
        .filter(|d| {
            d.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Accepted" && c.status == "True")
            })
        })
        .count()
}
