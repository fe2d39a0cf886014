//! Workflows against a real PostgreSQL (a throwaway database per test) and
//! a mock inventory backend for the system step.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{self, Bff, client, config, jwks, metric, repo, rs256, token};
use crate::postgres::{Database, Postgres};

const RETURNS: &str = "orders.return_approval";

type Log = Arc<Mutex<Vec<Value>>>;

/// inventory-svc: records each restock body.
async fn inventory(log: Log) -> (String, tokio::sync::oneshot::Sender<()>) {
    let router = axum::Router::new().route(
        "/restocks",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let log = log.clone();
            async move {
                log.lock().unwrap().push(body);
                (
                    axum::http::StatusCode::ACCEPTED,
                    axum::Json(json!({"restock_id": "rs-1"})),
                )
            }
        }),
    );
    harness::serve(router).await
}

/// Config for a BFF with workflows in PostgreSQL; `extra` adds YAML.
fn workflow_config(jwks: &str, inventory: &str, extra: &str) -> String {
    config(
        jwks,
        &format!(
            "services:\n  inventory-svc:\n    base_url: \"{inventory}\"\n\
             workflow:\n  enabled: true\n  timeout_check_interval: 100ms\n  store:\n    \
             driver: postgres\n    max_open_conns: 4\n    max_idle_conns: 0\n{extra}"
        ),
    )
}

fn start(config: &str, database: &Database) -> Bff {
    Bff::start(config, &[("THESA_WORKFLOW_DSN", &database.url)])
}

fn lead() -> String {
    rs256(&harness::claims("sam", "acme", &["support_lead"]))
}

async fn post(bff: &Bff, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
    harness::answer(client().post(bff.url(path)).bearer_auth(token).json(&body)).await
}

async fn event(bff: &Bff, id: &str, token: &str, event: &str, input: Value) -> (StatusCode, Value) {
    let path = format!("/ui/workflows/instances/{id}/events");
    post(bff, &path, token, json!({"event": event, "input": input})).await
}

/// Starts a return and submits its request: the instance waits at review.
async fn at_review(bff: &Bff) -> String {
    let clerk = token(&["order_clerk"]);
    let path = format!("/ui/workflows/{RETURNS}/start");
    let (status, body) = post(
        bff,
        &path,
        &clerk,
        json!({"input": {"order_id": "o1", "return_id": "r9"}}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    let (status, body) = event(bff, &id, &clerk, "submitted", json!({"reason": "damaged"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["step"]["id"], "review");
    id
}

/// A directory holding `definition` (as `ops.yaml`), and the config lines
/// that serve it beside the samples.
fn with_samples_and(definition: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ops.yaml"), definition).unwrap();
    let extra = format!(
        "definitions:\n  directories: [\"{}/definitions\", \"{}\"]\n",
        repo().display(),
        dir.path().display()
    );
    (dir, extra)
}

fn events(instance: &Value) -> Vec<(String, String)> {
    instance["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["event"].as_str().unwrap().to_string(),
                h["actor"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_runs_to_completion_with_its_whole_history() {
    let server = Postgres::start();
    let database = server.database();
    let (jwks, _stop_jwks) = jwks().await;
    let restocks = Log::default();
    let (inventory, _stop_inventory) = inventory(restocks.clone()).await;
    let bff = start(&workflow_config(&jwks, &inventory, ""), &database);
    assert!(
        bff.startup
            .iter()
            .any(|l| l.contains("workflow store connected")),
        "connected and migrated at start-up"
    );
    let clerk = token(&["order_clerk"]);

    let path = format!("/ui/workflows/{RETURNS}/start");
    let (status, started) = post(
        &bff,
        &path,
        &clerk,
        json!({"input": {"order_id": "o1", "return_id": "r9"}}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{started}");
    assert_eq!(started["step"]["id"], "request");
    assert_eq!(started["status"], "active");
    assert_eq!(started["allowed_events"], json!(["submitted"]));
    let id = started["id"].as_str().unwrap();

    // The step's form applies to the event's input.
    let (status, body) = event(&bff, id, &clerk, "submitted", json!({})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    // An event that does not leave the step: 409 with the allowed ones.
    let (status, body) = event(&bff, id, &clerk, "approved", json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "INVALID_EVENT");
    assert_eq!(
        body["error"]["details"]["allowed_events"],
        json!(["submitted"])
    );

    // Only the form's fields enter the state.
    let (status, review) = event(
        &bff,
        id,
        &clerk,
        "submitted",
        json!({"reason": "damaged", "manager_id": "alice"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{review}");
    assert_eq!(review["step"]["id"], "review");
    assert_eq!(review["assignee"], "role:support_lead");
    assert_eq!(
        review["allowed_events"],
        json!([]),
        "the clerk is not the assignee"
    );
    let (status, body) = event(
        &bff,
        id,
        &clerk,
        "approved",
        json!({"decision": "approved"}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // The lead approves: restock (system) and notification run, then the end.
    let (status, done) = event(
        &bff,
        id,
        &lead(),
        "approved",
        json!({"decision": "approved"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["status"], "completed");
    assert_eq!(done["step"]["id"], "completed");
    assert_eq!(
        *restocks.lock().unwrap(),
        [json!({"order_id": "o1", "return_id": "r9", "reason": "customer_return"})],
        "the system step's projection, once"
    );

    let (status, read) =
        harness::get_json(&bff.url(&format!("/ui/workflows/instances/{id}")), &clerk).await;
    assert_eq!(status, StatusCode::OK, "{read}");
    let expected: Vec<(String, String)> = [
        ("start", "alice"),
        ("submitted", "alice"),
        ("approved", "sam"),
        ("completed", "system"),
        ("sent", "system"),
    ]
    .iter()
    .map(|(e, a)| (e.to_string(), a.to_string()))
    .collect();
    assert_eq!(events(&read), expected);
    assert_eq!(read["state"]["reason"], "damaged");
    assert!(read["state"].get("manager_id").is_none(), "{read}");
    assert_eq!(read["version"], 5);

    let (status, list) =
        harness::get_json(&bff.url("/ui/workflows/instances?status=completed"), &clerk).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["total"], 1);
    assert_eq!(list["items"][0]["id"], id);
    let started = metric(
        &bff,
        "thesa_workflow_instances_started_total{workflow_id=\"orders.return_approval\"}",
    )
    .await;
    assert!(started.unwrap().ends_with(" 1"));
    let completed = metric(&bff, "thesa_workflow_instances_completed_total{").await;
    assert!(completed.unwrap().ends_with(" 1"));
    assert!(metric(&bff, "thesa_workflow_step_duration_seconds_count{workflow_id=\"orders.return_approval\",step=\"review\"}").await.is_some());

    // The reject path: no restock, ends at `rejected`.
    let second = at_review(&bff).await;
    let (status, rejected) = event(
        &bff,
        &second,
        &lead(),
        "rejected",
        json!({"decision": "rejected"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{rejected}");
    assert_eq!(
        (rejected["step"]["id"].as_str(), rejected["status"].as_str()),
        (Some("rejected"), Some("completed"))
    );
    assert_eq!(restocks.lock().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_tenants_and_partitions_cannot_read_list_or_act() {
    let server = Postgres::start();
    let database = server.database();
    let (jwks, _stop_jwks) = jwks().await;
    let (inventory, _stop_inventory) = inventory(Log::default()).await;
    let bff = start(&workflow_config(&jwks, &inventory, ""), &database);
    let id = at_review(&bff).await;

    let mut other_tenant = harness::claims("sam", "globex", &["support_lead"]);
    let globex = rs256(&other_tenant);
    other_tenant["custom:partitions"] = json!(["eu", "us"]);
    let acme_two_partitions = {
        let mut c = harness::claims("sam", "acme", &["support_lead"]);
        c["custom:partitions"] = json!(["eu", "us"]);
        rs256(&c)
    };
    let url = bff.url(&format!("/ui/workflows/instances/{id}"));
    let (status, _) = harness::get_json(&url, &globex).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, list) = harness::get_json(&bff.url("/ui/workflows/instances"), &globex).await;
    assert_eq!((status, &list["total"]), (StatusCode::OK, &json!(0)));
    let (status, _) = event(
        &bff,
        &id,
        &globex,
        "approved",
        json!({"decision": "approved"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Same tenant, narrowed to another partition.
    let (status, _) = harness::answer(
        client()
            .get(&url)
            .bearer_auth(&acme_two_partitions)
            .header("X-Partition-Id", "us"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = harness::answer(client().get(&url).bearer_auth(&acme_two_partitions)).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "its own partition (the default, eu)"
    );

    // `timeout` is the processor's event: a person sending it is refused.
    let (status, body) = event(&bff, &id, &lead(), "timeout", json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "INVALID_EVENT");
    // U+0000 cannot be stored: bad input, not a store failure.
    let path = format!("/ui/workflows/{RETURNS}/start");
    let (status, body) = post(
        &bff,
        &path,
        &token(&["order_clerk"]),
        json!({"input": {"x": "a\u{0}b"}}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Without the workflow's capabilities the instance does not exist.
    let (status, _) = harness::get_json(&url, &token(&["viewer"])).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, read) = harness::get_json(&url, &token(&["order_clerk"])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["step"]["id"], "review", "nothing moved it");
    assert_eq!(read["history"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_replicas_racing_on_one_instance_one_event_applies() {
    let server = Postgres::start();
    let database = server.database();
    let (jwks, _stop_jwks) = jwks().await;
    let restocks = Log::default();
    let (inventory, _stop_inventory) = inventory(restocks.clone()).await;
    let config = workflow_config(&jwks, &inventory, "");
    let (a, b) = (start(&config, &database), start(&config, &database));
    for _ in 0..5 {
        let id = at_review(&a).await;
        let lead = lead();
        let (first, second) = tokio::join!(
            event(&a, &id, &lead, "approved", json!({"decision": "approved"})),
            event(&b, &id, &lead, "rejected", json!({"decision": "rejected"})),
        );
        let statuses = [first.0, second.0];
        assert_eq!(
            statuses.iter().filter(|s| **s == StatusCode::OK).count(),
            1,
            "exactly one applies: {first:?} {second:?}"
        );
        let loser = if first.0 == StatusCode::OK {
            &second
        } else {
            &first
        };
        assert_eq!(loser.0, StatusCode::CONFLICT, "{loser:?}");
        let (_, read) = harness::get_json(
            &a.url(&format!("/ui/workflows/instances/{id}")),
            &token(&["order_clerk"]),
        )
        .await;
        let decisions = events(&read)
            .iter()
            .filter(|(e, _)| e == "approved" || e == "rejected")
            .count();
        assert_eq!(decisions, 1, "{read}");
    }
    let approvals = restocks.lock().unwrap().len();
    assert!(
        approvals <= 5,
        "a restock per applied approval only: {approvals}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_fire_once_with_two_processors() {
    let server = Postgres::start();
    let database = server.database();
    let (jwks, _stop_jwks) = jwks().await;
    let (_definitions, extra) = with_samples_and(
        r#"
domain: ops
version: 1.0.0
workflows:
  - id: ops.expiring
    name: Expiring
    capabilities: [orders:view]
    initial_step: wait
    steps:
      - {id: wait, type: human, capabilities: [orders:view], timeout: 1}
      - {id: late, type: terminal}
      - {id: done, type: terminal}
    transitions:
      - {from: wait, to: done, event: ok}
      - {from: wait, to: late, event: timeout}
"#,
    );
    let config = workflow_config(&jwks, "http://127.0.0.1:9", &extra);
    let (a, b) = (start(&config, &database), start(&config, &database));
    let clerk = token(&["order_clerk"]);
    let count = 30;
    for _ in 0..count {
        let (status, body) = post(&a, "/ui/workflows/ops.expiring/start", &clerk, json!({})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    let list = loop {
        let (_, list) = harness::get_json(
            &a.url("/ui/workflows/instances?status=completed&page_size=100"),
            &clerk,
        )
        .await;
        if list["total"] == count || Instant::now() > deadline {
            break list;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(list["total"], count, "every instance timed out");
    for item in list["items"].as_array().unwrap() {
        assert_eq!(item["step"]["id"], "late");
        let url = a.url(&format!(
            "/ui/workflows/instances/{}",
            item["id"].as_str().unwrap()
        ));
        let (_, read) = harness::get_json(&url, &clerk).await;
        let timeouts = events(&read).iter().filter(|(e, _)| e == "timeout").count();
        assert_eq!(timeouts, 1, "{read}");
    }
    let fired = |line: Option<String>| -> u64 {
        line.and_then(|l| l.rsplit(' ').next().map(str::to_string))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let total = fired(metric(&a, "thesa_workflow_instances_timed_out_total{").await)
        + fired(metric(&b, "thesa_workflow_instances_timed_out_total{").await);
    assert_eq!(
        total, count as u64,
        "each timeout counted by exactly one replica"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_degrades_readiness_and_only_workflows_fail() {
    let mut server = Postgres::start_own();
    let database = server.database();
    let (jwks, _stop_jwks) = jwks().await;
    let (inventory, _stop_inventory) = inventory(Log::default()).await;
    let config = workflow_config(&jwks, &inventory, "");
    let bff = start(&config, &database);
    let clerk = token(&["order_clerk"]);
    let ready = client().get(bff.url("/ui/ready")).send().await.unwrap();
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["workflow_store"]["status"], "ok", "{body}");
    assert_eq!(body["checks"]["workflow_store"]["driver"], "postgres");

    server.stop();
    let ready = client().get(bff.url("/ui/ready")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK, "degraded still serves");
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["checks"]["workflow_store"]["status"], "error");
    let (status, body) = harness::get_json(&bff.url("/ui/workflows/instances"), &clerk).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["code"], "WORKFLOW_STORE_UNAVAILABLE");
    let (status, _) = harness::get_json(&bff.url("/ui/navigation"), &clerk).await;
    assert_eq!(status, StatusCode::OK, "everything else keeps working");

    // Start-up needs the database: exit 1 with the step named.
    let exited = Bff::try_start(&config, &[("THESA_WORKFLOW_DSN", &database.url)])
        .err()
        .unwrap();
    assert_eq!(exited.status.code(), Some(1));
    assert!(
        exited
            .lines
            .iter()
            .any(|l| l.contains("start-up failed: workflow store")),
        "{:?}",
        exited.lines
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loop_of_automatic_steps_ends_the_instance_as_failed() {
    let server = Postgres::start();
    let database = server.database();
    let (jwks, _stop_jwks) = jwks().await;
    let (_definitions, extra) = with_samples_and(
        r#"
domain: ops
version: 1.0.0
workflows:
  - id: ops.retrying
    name: Retries for ever
    capabilities: [orders:view]
    initial_step: book
    steps:
      - id: book
        type: system
        operation: {type: openapi, operation_id: createRestock, service_id: inventory-svc}
        input: {body_mapping: projection, field_projection: {order_id: "'o1'"}}
      - {id: done, type: terminal}
    transitions:
      - {from: book, to: book, event: failed}
      - {from: book, to: done, event: completed}
"#,
    );
    // inventory-svc points at a closed port: every call fails at once.
    let bff = start(
        &workflow_config(&jwks, "http://127.0.0.1:9", &extra),
        &database,
    );
    let clerk = token(&["order_clerk"]);
    let (status, body) = post(&bff, "/ui/workflows/ops.retrying/start", &clerk, json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["status"], "failed", "{body}");
    let url = bff.url(&format!(
        "/ui/workflows/instances/{}",
        body["id"].as_str().unwrap()
    ));
    let (_, read) = harness::get_json(&url, &clerk).await;
    let history = events(&read);
    assert_eq!(
        history.last().unwrap().0,
        "too_many_automatic_steps",
        "{read}"
    );
    assert_eq!(history.iter().filter(|(e, _)| e == "failed").count(), 50);
}
