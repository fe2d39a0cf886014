//! SDK handlers: a `type: sdk` command runs the built-in `notify.webhook`
//! handler against a local webhook receiver.

use std::sync::{Arc, Mutex};

use axum::extract::Request;
use axum::http::StatusCode as AxumStatus;
use axum::response::IntoResponse;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{self, Bff, client, config, jwks, repo, token};

const DEFINITION: &str = r#"
domain: notifications
version: 1.0.0
commands:
  - id: notifications.tell_team
    capabilities: [orders:cancel]
    operation: {type: sdk, handler: notify.webhook}
    input:
      body_mapping: template
      body_template:
        text: input.message
        channel: "'#orders'"
        sent_by: context.subject_id
    output:
      type: passthrough
      success_message: Team notified.
      error_map:
        channel_not_found: The team channel is gone.
"#;

/// (correlation id, body) of each webhook call.
type Log = Arc<Mutex<Vec<(String, Value)>>>;

/// A webhook receiver: `{"text": "fail"}` gets Slack's 404 error body.
async fn receiver(log: Log) -> (String, tokio::sync::oneshot::Sender<()>) {
    let router = axum::Router::new().fallback(move |request: Request| {
        let log = log.clone();
        async move {
            let correlation = request
                .headers()
                .get("x-correlation-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let bytes = axum::body::to_bytes(request.into_body(), 1 << 20)
                .await
                .unwrap();
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let fail = body["text"] == "fail";
            log.lock().unwrap().push((correlation, body));
            if fail {
                return (
                    AxumStatus::NOT_FOUND,
                    axum::Json(json!({"code": "channel_not_found"})),
                )
                    .into_response();
            }
            "ok".into_response()
        }
    });
    harness::serve(router).await
}

/// A BFF serving the samples plus the notifications definition.
fn start(jwks: &str, env: &[(&str, &str)]) -> (Bff, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notifications.yaml"), DEFINITION).unwrap();
    let extra = format!(
        "definitions:\n  directories: [\"{}/definitions\", \"{}\"]\n",
        repo().display(),
        dir.path().display()
    );
    (Bff::start(&config(jwks, &extra), env), dir)
}

async fn tell(bff: &Bff, message: &str) -> (StatusCode, Value) {
    harness::answer(
        client()
            .post(bff.url("/ui/commands/notifications.tell_team"))
            .bearer_auth(token(&["order_clerk"]))
            .header("X-Correlation-ID", "corr-77")
            .json(&json!({"input": {"message": message, "secret": "not sent"}})),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_webhook_posts_the_mapped_body_and_maps_errors() {
    let (jwks, _stop_jwks) = jwks().await;
    let log = Log::default();
    let (hook, _stop_hook) = receiver(log.clone()).await;
    let (bff, _dir) = start(
        &jwks,
        &[("THESA_NOTIFY_WEBHOOK_URL", &format!("{hook}/hooks/T1"))],
    );
    assert!(
        bff.startup
            .iter()
            .any(|l| l.contains("SDK handlers registered") && l.contains("notify.webhook")),
        "start-up lists the registered handler"
    );

    let (status, body) = tell(&bff, "Order o1 is late").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"success": true, "message": "Team notified.", "result": {"delivered": true, "status": 200}})
    );
    let (correlation, sent) = log.lock().unwrap()[0].clone();
    assert_eq!(correlation, "corr-77");
    assert_eq!(
        sent,
        json!({"text": "Order o1 is late", "channel": "#orders", "sent_by": "alice"}),
        "only the template's fields reach the webhook"
    );

    let (status, body) = tell(&bff, "fail").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "channel_not_found");
    assert_eq!(body["error"]["message"], "The team channel is gone.");

    // A caller without the capability sees no such command.
    let (status, _) = harness::answer(
        client()
            .post(bff.url("/ui/commands/notifications.tell_team"))
            .bearer_auth(token(&["viewer"]))
            .json(&json!({"input": {"message": "x"}})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(log.lock().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unregistered_handler_warns_at_start_up_and_answers_503() {
    let (jwks, _stop_jwks) = jwks().await;
    let (bff, _dir) = start(&jwks, &[]);
    let warning = bff
        .startup
        .iter()
        .find(|l| l.contains("SDK handler is not registered"))
        .expect("a start-up warning");
    assert!(warning.contains("\"level\":\"WARN\""), "{warning}");
    assert!(
        warning.contains("notifications.tell_team"),
        "names the element: {warning}"
    );
    assert!(
        warning.contains("THESA_NOTIFY_WEBHOOK_URL"),
        "says how to fix it: {warning}"
    );

    let (status, body) = tell(&bff, "Order o1 is late").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "HANDLER_NOT_AVAILABLE");
}
