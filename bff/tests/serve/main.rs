//! Integration tests of `thesa-bff serve`: the real binary on 127.0.0.1,
//! real tokens signed by test keys, a JWKS and an OPA endpoint served over
//! HTTP by the test.

mod analytics;
mod checksums;
mod commands;
mod console;
mod corpus;
mod data;
mod files;
mod handlers;
mod harness;
mod keto;
mod limits;
mod lookups;
mod rate_limits;
mod resilience;
mod search;
mod service_token;
mod tls;
mod traces;
mod workflows;

#[path = "../support/postgres.rs"]
mod postgres;
#[path = "../support/prometheus.rs"]
mod prometheus;
#[path = "../support/redis.rs"]
mod redis;
#[path = "../support/spec_mock.rs"]
mod spec_mock;

use std::time::{Duration, Instant};

use axum::routing::{get, post};
use harness::{Bff, client, config, get_json, jwks, metric, token};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn labels(navigation: &Value) -> Vec<String> {
    navigation["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["label"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn navigation_differs_by_role() {
    let (jwks, _stop) = jwks().await;
    let bff = Bff::start(&config(&jwks, ""), &[]);
    let url = bff.url("/ui/navigation");

    let (status, viewer) = get_json(&url, &token(&["viewer"])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(labels(&viewer), ["Orders", "Inventory", "Customers"]);

    let (_, stock) = get_json(&url, &token(&["inventory_manager"])).await;
    assert_eq!(labels(&stock), ["Inventory"]);

    let (_, nobody) = get_json(&url, &token(&[])).await;
    assert_eq!(labels(&nobody), Vec::<String>::new());

    // Children follow capabilities too: the returns item needs
    // orders:returns:view, which the viewer lacks and the clerk has.
    let children = |nav: &Value| nav["items"][0]["children"].as_array().unwrap().len();
    let (_, clerk) = get_json(&url, &token(&["order_clerk"])).await;
    assert!(children(&clerk) > children(&viewer), "{clerk}\n{viewer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hidden_page_answers_like_a_missing_page() {
    let (jwks, _stop) = jwks().await;
    let bff = Bff::start(&config(&jwks, ""), &[]);
    let stock = token(&["inventory_manager"]);

    let (status, page) = get_json(&bff.url("/ui/pages/inventory.products"), &stock).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["id"], "inventory.products");

    let hidden = client()
        .get(bff.url("/ui/pages/orders.list"))
        .bearer_auth(&stock)
        .send()
        .await
        .unwrap();
    let missing = client()
        .get(bff.url("/ui/pages/orders.nope"))
        .bearer_auth(&stock)
        .send()
        .await
        .unwrap();
    assert_eq!(hidden.status(), StatusCode::NOT_FOUND);
    assert_eq!(hidden.status(), missing.status());
    let header_names = |r: &reqwest::Response| {
        let mut names: Vec<String> = r
            .headers()
            .keys()
            .map(|k| k.to_string())
            .filter(|k| k != "date" && k != "x-correlation-id" && k != "content-length")
            .collect();
        names.sort();
        names
    };
    assert_eq!(header_names(&hidden), header_names(&missing));
    let hidden: Value = hidden.json().await.unwrap();
    let missing: Value = missing.json().await.unwrap();
    assert_eq!(hidden["error"]["code"], "NOT_FOUND");
    assert_eq!(hidden["error"]["code"], missing["error"]["code"]);
    assert_eq!(
        hidden["error"]["message"]
            .as_str()
            .unwrap()
            .replace("orders.list", "ID"),
        missing["error"]["message"]
            .as_str()
            .unwrap()
            .replace("orders.nope", "ID")
    );

    // Forms the same way.
    let (status, _) = get_json(&bff.url("/ui/forms/orders.nope"), &stock).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_get_401() {
    let (jwks, _stop) = jwks().await;
    let bff = Bff::start(&config(&jwks, ""), &[]);
    let url = bff.url("/ui/capabilities");
    let good = harness::claims("alice", "acme", &["viewer"]);
    let with = |change: &dyn Fn(&mut Value)| {
        let mut claims = good.clone();
        change(&mut claims);
        claims
    };

    let (status, body) = get_json(&url, &harness::rs256(&good)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["tenant_id"], "acme");
    assert_eq!(body["partition_id"], "eu");
    let (status, _) = get_json(&url, &harness::es256(&good)).await;
    assert_eq!(status, StatusCode::OK, "ES256 is accepted too");

    let bad = [
        (
            "expired",
            harness::rs256(&with(&|c| c["exp"] = json!(1_000_000))),
        ),
        (
            "wrong audience",
            harness::rs256(&with(&|c| c["aud"] = json!("other"))),
        ),
        (
            "wrong issuer",
            harness::rs256(&with(&|c| c["iss"] = json!("https://evil"))),
        ),
        (
            "not yet valid",
            harness::rs256(&with(&|c| c["nbf"] = json!(4_000_000_000u64))),
        ),
        ("alg none", harness::unsigned(&good)),
        (
            "HS256 with the public key",
            harness::hs256_with_public_key(&good),
        ),
        (
            "no tenant",
            harness::rs256(&with(&|c| {
                c.as_object_mut().unwrap().remove("custom:tenant_id");
            })),
        ),
        ("garbage", "not.a.token".to_string()),
    ];
    for (what, token) in bad {
        let response = client().get(&url).bearer_auth(&token).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer", "{what}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "UNAUTHENTICATED", "{what}: {body}");
        assert!(!body["error"]["correlation_id"].as_str().unwrap().is_empty());
    }
    let response = client().get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "no token");

    // Each rejection is counted by reason.
    let metrics = client().get(bff.url("/metrics")).send().await.unwrap();
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains("thesa_auth_rejections_total{reason=\"expired\"} 1"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_header_may_only_narrow() {
    let (jwks, _stop) = jwks().await;
    let bff = Bff::start(&config(&jwks, ""), &[]);
    let send = |partition: &'static str| {
        client()
            .get(bff.url("/ui/capabilities"))
            .bearer_auth(token(&["viewer"]))
            .header("X-Partition-Id", partition)
            .send()
    };
    let narrowed = send("eu/west").await.unwrap();
    assert_eq!(narrowed.status(), StatusCode::OK);
    let body: Value = narrowed.json().await.unwrap();
    assert_eq!(body["partition_id"], "eu/west");
    let widened = send("us").await.unwrap();
    assert_eq!(widened.status(), StatusCode::FORBIDDEN);
    let body: Value = widened.json().await.unwrap();
    assert_eq!(body["error"]["code"], "PARTITION_FORBIDDEN");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etag_and_if_none_match() {
    let (jwks, _stop) = jwks().await;
    let bff = Bff::start(&config(&jwks, ""), &[]);
    let url = bff.url("/ui/pages/orders.list");
    let clerk = token(&["order_clerk"]);
    let first = client().get(&url).bearer_auth(&clerk).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let tag = first.headers()["etag"].to_str().unwrap().to_string();
    assert!(tag.starts_with("W/\""), "{tag}");

    let again = client()
        .get(&url)
        .bearer_auth(&clerk)
        .header("If-None-Match", &tag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(again.headers()["etag"].to_str().unwrap(), tag);

    // Other capabilities, other view, other tag.
    let viewer = client()
        .get(&url)
        .bearer_auth(token(&["viewer"]))
        .header("If-None-Match", &tag)
        .send()
        .await
        .unwrap();
    assert_eq!(viewer.status(), StatusCode::OK);
    assert_ne!(viewer.headers()["etag"].to_str().unwrap(), tag);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_metrics_and_errors() {
    let (jwks, _stop) = jwks().await;
    let bff = Bff::start(&config(&jwks, ""), &[]);

    let (_, health) = harness::answer(client().get(bff.url("/ui/health"))).await;
    assert_eq!(health["status"], "ok");
    assert!(health["version"].is_string() && health["commit"].is_string());

    let ready = client().get(bff.url("/ui/ready")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["checks"]["definitions"]["count"], 3);
    assert!(
        ready["checks"]["openapi_index"]["operations"]
            .as_u64()
            .unwrap()
            > 10
    );

    let (status, _) = get_json(&bff.url("/ui/pages/orders.list"), &token(&["viewer"])).await;
    assert_eq!(status, StatusCode::OK);
    let metrics = client().get(bff.url("/metrics")).send().await.unwrap();
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains(
            "thesa_http_requests_total{method=\"GET\",path_pattern=\"/ui/pages/{id}\",status=\"200\"} 1"
        ),
        "{text}"
    );
    assert!(
        !text.contains("orders.list"),
        "raw paths never become labels"
    );
    assert!(text.contains("thesa_http_request_duration_seconds_bucket"));
    assert!(text.contains("thesa_definitions_loaded 3"));
    assert!(text.contains("thesa_build_info{"));

    // Unknown routes and methods answer in the one error shape.
    let viewer = token(&["viewer"]);
    let (status, body) = get_json(&bff.url("/ui/nothing"), &viewer).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "ROUTE_NOT_FOUND");
    let response = client()
        .post(bff.url("/ui/navigation"))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);

    // The correlation ID of the caller comes back, in the header and in errors.
    let response = client()
        .get(bff.url("/ui/pages/x"))
        .bearer_auth(&viewer)
        .header("X-Correlation-Id", "req-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-correlation-id"], "req-42");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["correlation_id"], "req-42");

    // A path that is not UTF-8 still gets the error shape.
    let (status, body) = get_json(&bff.url("/ui/pages/%FF"), &viewer).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "BAD_REQUEST");

    // Made-up methods do not become label values.
    for n in 0..3 {
        let method = reqwest::Method::from_bytes(format!("ZZ{n}").as_bytes()).unwrap();
        client()
            .request(method, bff.url("/ui/health"))
            .send()
            .await
            .unwrap();
    }
    let text = client()
        .get(bff.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!text.contains("ZZ0"), "{text}");
    assert!(
        text.contains("method=\"other\",path_pattern=\"/ui/health\",status=\"405\"} 3"),
        "{text}"
    );

    // CORS preflight from the configured origin.
    let preflight = client()
        .request(reqwest::Method::OPTIONS, bff.url("/ui/navigation"))
        .header("Origin", "http://localhost:3000")
        .header("Access-Control-Request-Method", "GET")
        .header("Access-Control-Request-Headers", "authorization")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success());
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );
}

/// Every route the OpenAPI document lists is served (none answers
/// ROUTE_NOT_FOUND).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_route_is_served() {
    let (jwks, _stop) = jwks().await;
    let bff = Bff::start(&config(&jwks, ""), &[]);
    let text = std::fs::read_to_string(harness::repo().join("docs/bff-api.yaml")).unwrap();
    let document: Value = serde_saphyr::from_str(&text).unwrap();
    let admin = token(&["admin"]);
    let mut checked = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let url = bff.url(&path.replace("{id}", "orders.list"));
            let request = client().request(method.to_uppercase().parse().unwrap(), url);
            let response = request.bearer_auth(&admin).send().await.unwrap();
            let status = response.status();
            let body = response.text().await.unwrap();
            assert!(
                !body.contains("ROUTE_NOT_FOUND"),
                "{method} {path}: {status} {body}"
            );
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            checked += 1;
        }
    }
    assert!(checked >= 7, "{checked}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_when_the_policy_engine_is_down() {
    let (jwks, _stop_jwks) = jwks().await;
    let opa = axum::Router::new()
        .route("/health", get(|| async { "{}" }))
        .route(
            "/v1/data/thesa/capabilities",
            post(|| async { axum::Json(json!({"result": ["orders:view"]})) }),
        );
    let (opa_url, stop_opa) = harness::serve(opa).await;
    let extra = format!(
        "capability:\n  evaluator: opa\n  opa:\n    url: \"{opa_url}\"\n    policy_path: thesa/capabilities\n    timeout: 1s\n"
    );
    let bff = Bff::start(&config(&jwks, &extra), &[]);

    let (status, body) = get_json(&bff.url("/ui/capabilities"), &token(&["viewer"])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["capabilities"],
        json!({"orders:view": {"enabled": true}})
    );
    let ready = client().get(bff.url("/ui/ready")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);

    stop_opa.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ready = client().get(bff.url("/ui/ready")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["checks"]["policy_engine"]["status"], "error");
    // Liveness does not depend on it.
    let health = client().get(bff.url("/ui/health")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    // A caller the cache does not know cannot be resolved: 503, not 200.
    let (status, body) = get_json(&bff.url("/ui/navigation"), &token(&["order_clerk"])).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["code"], "CAPABILITIES_UNAVAILABLE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_an_in_flight_request() {
    let (jwks, _stop_jwks) = jwks().await;
    // A slow policy engine makes a slow request.
    let opa = axum::Router::new()
        .route("/health", get(|| async { "{}" }))
        .route(
            "/v1/data/thesa/capabilities",
            post(|| async {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                axum::Json(json!({"result": ["orders:view"]}))
            }),
        );
    let (opa_url, _stop_opa) = harness::serve(opa).await;
    let extra = format!(
        "capability:\n  evaluator: opa\n  opa:\n    url: \"{opa_url}\"\n    policy_path: thesa/capabilities\n    timeout: 10s\n"
    );
    let bff = Bff::start(&config(&jwks, &extra), &[]);
    let url = bff.url("/ui/navigation");
    let slow = tokio::spawn(async move {
        let started = Instant::now();
        let (status, body) = get_json(&url, &token(&["viewer"])).await;
        (status, body, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    bff.terminate();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // New connections are refused while the slow one drains.
    assert!(client().get(bff.url("/ui/health")).send().await.is_err());

    let (status, body, took) = slow.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(labels(&body), ["Orders"]);
    assert!(took >= Duration::from_millis(1400), "{took:?}");

    let exited = bff.wait(Duration::from_secs(15));
    assert!(exited.status.success(), "{exited:?}");
    let logs = exited.lines.join("\n");
    assert!(logs.contains("shutdown initiated"), "{logs}");
    assert!(logs.contains("shutdown complete"), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_overrides_the_file() {
    let (jwks, _stop) = jwks().await;
    let bff = Bff::start(
        &config(&jwks, ""),
        &[("THESA_OBSERVABILITY_METRICS_PATH", "/internal/metrics")],
    );
    let moved = client()
        .get(bff.url("/internal/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status(), StatusCode::OK);
    let (status, _) = get_json(&bff.url("/metrics"), &token(&["viewer"])).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_failures_exit_1_with_one_clear_line() {
    let (jwks, _stop) = jwks().await;
    let cases = [
        (
            config(&jwks, "").replace("  port: 0\n", "  port: 0\n  prot: 1\n"),
            vec![],
            "server.prot",
        ),
        (
            config(&jwks, ""),
            vec![("THESA_SERVER_PORT", "eighty")],
            "THESA_SERVER_PORT",
        ),
        (
            config(
                &jwks,
                "definitions:\n  directories: [\"/nonexistent/defs\"]\n",
            ),
            vec![],
            "/nonexistent/defs",
        ),
    ];
    for (config, env, needle) in cases {
        let exited = Bff::try_start(&config, &env).err().expect("must not start");
        assert_eq!(exited.status.code(), Some(1), "{needle}: {exited:?}");
        let errors: Vec<&String> = exited
            .lines
            .iter()
            .filter(|l| l.contains("\"level\":\"ERROR\""))
            .collect();
        assert_eq!(errors.len(), 1, "{needle}: {:?}", exited.lines);
        assert!(errors[0].contains(needle), "{needle}: {}", errors[0]);
        let _: Value = serde_json::from_str(errors[0]).expect("JSON log line");
    }
}

/// Polls `check` every 100 ms for up to 10 s.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for: {what}");
}

fn sample(domain: &str) -> String {
    std::fs::read_to_string(
        harness::repo()
            .join("definitions")
            .join(domain)
            .join("definition.yaml"),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_swaps_good_sets_and_keeps_the_old_one_on_bad_sets() {
    let (jwks, _stop) = jwks().await;
    let defs = tempfile::tempdir().unwrap();
    for domain in ["orders", "inventory", "customers"] {
        std::fs::write(defs.path().join(format!("{domain}.yaml")), sample(domain)).unwrap();
    }
    let extra = format!(
        "definitions:\n  directories: [\"{}\"]\n  hot_reload: true\n",
        defs.path().display()
    );
    let bff = Bff::start(&config(&jwks, &extra), &[]);
    let url = bff.url("/ui/navigation");
    let viewer = token(&["viewer"]);

    // A broken revision: the operation does not exist. Still the old set.
    let broken = sample("orders").replace("operation_id: listOrders", "operation_id: listOrdrs");
    assert_ne!(broken, sample("orders"));
    std::fs::write(defs.path().join("orders.yaml"), broken).unwrap();
    eventually("the failed reload to be counted", async || {
        metric(&bff, "thesa_definition_reload_total{status=\"failure\"}")
            .await
            .is_some_and(|l| l.ends_with(" 1"))
    })
    .await;
    let (_, navigation) = get_json(&url, &viewer).await;
    assert_eq!(labels(&navigation), ["Orders", "Inventory", "Customers"]);
    let logs = bff.drain_logs().join("\n");
    assert!(logs.contains("OPERATION_NOT_FOUND"), "{logs}");
    assert!(
        logs.contains("still serving the previous definitions"),
        "{logs}"
    );

    // A good revision is swapped in.
    let renamed = sample("orders").replacen("label: Orders", "label: Sales orders", 1);
    std::fs::write(defs.path().join("orders.yaml"), renamed).unwrap();
    eventually("the new label", async || {
        let (_, navigation) = get_json(&url, &viewer).await;
        labels(&navigation).contains(&"Sales orders".to_string())
    })
    .await;
    let success = metric(&bff, "thesa_definition_reload_total{status=\"success\"}").await;
    assert_eq!(
        success.as_deref(),
        Some("thesa_definition_reload_total{status=\"success\"} 1")
    );

    // A removed domain disappears.
    std::fs::remove_file(defs.path().join("customers.yaml")).unwrap();
    eventually("customers to disappear", async || {
        let (_, navigation) = get_json(&url, &viewer).await;
        labels(&navigation) == ["Sales orders", "Inventory"]
    })
    .await;
}

/// Kubernetes updates a mounted ConfigMap by writing a new hidden
/// directory and renaming the `..data` symlink onto it.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_follows_a_configmap_symlink_swap() {
    use std::os::unix::fs::symlink;
    let (jwks, _stop) = jwks().await;
    let mount = tempfile::tempdir().unwrap();
    let write_revision = |name: &str, orders: &str| {
        let dir = mount.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("orders.yaml"), orders).unwrap();
        std::fs::write(dir.join("inventory.yaml"), sample("inventory")).unwrap();
    };
    write_revision("..2026_11_22_10_00_00.1", &sample("orders"));
    symlink("..2026_11_22_10_00_00.1", mount.path().join("..data")).unwrap();
    for file in ["orders.yaml", "inventory.yaml"] {
        symlink(format!("..data/{file}"), mount.path().join(file)).unwrap();
    }
    let extra = format!(
        "definitions:\n  directories: [\"{}\"]\n  hot_reload: true\n",
        mount.path().display()
    );
    let bff = Bff::start(&config(&jwks, &extra), &[]);
    let url = bff.url("/ui/navigation");
    let viewer = token(&["viewer"]);
    let (_, navigation) = get_json(&url, &viewer).await;
    assert_eq!(labels(&navigation), ["Orders", "Inventory"]);

    // The kubelet's atomic update.
    write_revision(
        "..2026_11_22_10_05_00.2",
        &sample("orders").replacen("label: Orders", "label: Sales orders", 1),
    );
    symlink("..2026_11_22_10_05_00.2", mount.path().join("..data_tmp")).unwrap();
    std::fs::rename(mount.path().join("..data_tmp"), mount.path().join("..data")).unwrap();
    std::fs::remove_dir_all(mount.path().join("..2026_11_22_10_00_00.1")).unwrap();

    eventually("the new revision", async || {
        let (_, navigation) = get_json(&url, &viewer).await;
        labels(&navigation) == ["Sales orders", "Inventory"]
    })
    .await;
}

/// A client that trickles its request headers is cut off after
/// `server.read_timeout`, so it can hold neither a connection nor the
/// shutdown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_are_cut_off_after_read_timeout() {
    use std::io::{Read, Write};
    let (jwks, _stop) = jwks().await;
    let bff = Bff::start(&config(&jwks, ""), &[("THESA_SERVER_READ_TIMEOUT", "1s")]);
    let mut stream = std::net::TcpStream::connect(bff.addr).unwrap();
    stream
        .write_all(b"GET /ui/health HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    let mut buffer = Vec::new();
    // Ends when the server closes the connection (a read timeout would
    // be an error here).
    stream.read_to_end(&mut buffer).unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
}
