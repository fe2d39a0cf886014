//! `make run` as a new user meets it: `thesa-bff serve --sample-backends`
//! with config/config.yaml (ports moved to free ones by THESA_*
//! overrides), and every route of docs/bff-api.yaml answering with data
//! from the sample backends, the sample files service and the sample
//! Prometheus-compatible API included.

#[path = "support/make_run.rs"]
mod make_run;

use make_run::start;
use serde_json::{Value, json};

fn items(body: &Value) -> &Vec<Value> {
    body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_with_data_from_the_sample_backends() {
    let run = start().await;

    for probe in ["/ui/health", "/healthz", "/ui/ready"] {
        run.get(probe).await;
    }
    let metrics = run
        .http
        .get(format!("{}/metrics", run.url))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);

    let caps = run.get("/ui/capabilities").await;
    assert!(
        caps.to_string().contains('*') || caps.to_string().contains("orders"),
        "{caps}"
    );
    let batch = run
        .post(
            "/ui/capabilities/batch-check",
            json!({"checks": [{"namespace": "orders", "permissions": ["orders_view"]}]}),
        )
        .await;
    assert!(batch.to_string().contains("orders_view"), "{batch}");

    // Badges come from the backends.
    let navigation = run.get("/ui/navigation").await;
    let text = navigation.to_string();
    assert!(
        text.contains("\"badge\":{\"style\":\"warning\",\"value\":"),
        "{text}"
    );

    // Every table page pages through backend rows.
    for page in [
        "orders.list",
        "inventory.products",
        "inventory.warehouses",
        "customers.list",
    ] {
        run.get(&format!("/ui/pages/{page}")).await;
        let data = run.get(&format!("/ui/pages/{page}/data")).await;
        assert!(!items(&data).is_empty(), "{page}: {data}");
    }
    let first = run
        .get("/ui/pages/orders.list/data?page_size=10&priority=")
        .await;
    let second = run
        .get("/ui/pages/orders.list/data?page_size=10&page=2&priority=")
        .await;
    assert_eq!(items(&first).len(), 10, "{first}");
    assert_ne!(items(&first)[0]["id"], items(&second)[0]["id"]);
    assert!(first["total"].as_u64().unwrap() > 20, "{first}");
    let sorted = run
        .get("/ui/pages/orders.list/data?sort=total.amount&sort_dir=asc&page_size=50&priority=")
        .await;
    let amounts: Vec<f64> = items(&sorted)
        .iter()
        .map(|i| i["total"]["amount"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(amounts.windows(2).all(|w| w[0] <= w[1]), "{amounts:?}");
    let pending = run
        .get("/ui/pages/orders.list/data?status=pending&priority=")
        .await;
    assert!(
        items(&pending).iter().all(|i| i["status"] == "pending"),
        "{pending}"
    );
    let cursor = run.get("/ui/pages/customers.list/data?page_size=5").await;
    let next = cursor["next_cursor"]
        .as_str()
        .expect("a next cursor")
        .to_string();
    let later = run
        .get(&format!(
            "/ui/pages/customers.list/data?page_size=5&cursor={next}"
        ))
        .await;
    assert_ne!(items(&cursor)[0], items(&later)[0]);

    // Detail pages (the samples' have no data source: the record comes
    // from the edit form's load source) and forms read one record.
    let order = items(&first)[0]["id"].as_str().unwrap().to_string();
    for page in [
        "orders.detail",
        "orders.returns",
        "inventory.product_detail",
        "customers.detail",
    ] {
        run.get(&format!("/ui/pages/{page}")).await;
    }
    for form in [
        "orders.edit_form",
        "orders.return_request_form",
        "customers.create_form",
        "inventory.adjust_stock_form",
    ] {
        run.get(&format!("/ui/forms/{form}")).await;
    }
    let form = run
        .get(&format!("/ui/forms/orders.edit_form/data?orderId={order}"))
        .await;
    assert!(form["data"]["priority"].is_string(), "{form}");

    // A command changes what the list shows.
    let pending_id = items(&pending)[0]["id"].as_str().unwrap().to_string();
    let confirmed = run
        .post(
            "/ui/commands/orders.confirm",
            json!({"input": {"id": pending_id}}),
        )
        .await;
    assert_eq!(confirmed["message"], "Order confirmed.", "{confirmed}");
    let after = run
        .get("/ui/pages/orders.list/data?status=pending&priority=")
        .await;
    assert!(
        items(&after).iter().all(|i| i["id"] != pending_id.as_str()),
        "{after}"
    );
    assert_eq!(items(&after).len() + 1, items(&pending).len());

    // An error from the error map, asked for by `fail:CODE`.
    let (status, refused) = run
        .call(
            "POST",
            "/ui/commands/orders.cancel",
            Some(json!({"input": {"reason": "fail:ORDER_ALREADY_SHIPPED"}, "route_params": {"id": order}})),
        )
        .await;
    assert_eq!(status, 409, "{refused}");
    assert!(
        refused
            .to_string()
            .contains("This order has shipped; start a return instead."),
        "{refused}"
    );

    // Lookups and search.
    let statuses = run.get("/ui/lookups/orders.statuses").await;
    assert!(statuses.to_string().contains("Pending"), "{statuses}");
    let number = items(&first)[0]["number"].as_str().unwrap().to_string();
    let found = run.get(&format!("/ui/search?q={number}")).await;
    assert!(found.to_string().contains(&number), "{found}");

    // Files: upload, then download the same bytes.
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"hello, thesa".to_vec())
            .file_name("hello.txt")
            .mime_str("text/plain")
            .unwrap(),
    );
    let uploaded = run
        .http
        .post(format!("{}/ui/upload", run.url))
        .bearer_auth(&run.token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert!(
        uploaded.status().is_success(),
        "upload: {}",
        uploaded.status()
    );
    let uploaded: Value = uploaded.json().await.unwrap();
    let file = uploaded["id"].as_str().expect("a file id").to_string();
    let downloaded = run
        .http
        .get(format!("{}/ui/download/{file}", run.url))
        .bearer_auth(&run.token)
        .send()
        .await
        .unwrap();
    assert_eq!(downloaded.status(), 200);
    assert_eq!(downloaded.bytes().await.unwrap().as_ref(), b"hello, thesa");

    // Analytics from the sample Prometheus-compatible API.
    let range = json!({"start": "2026-11-20T00:00:00Z", "end": "2026-11-27T00:00:00Z"});
    for (kind, extra) in [
        ("scalar", json!({})),
        ("timeseries", json!({"interval": "1d"})),
        ("grouped", json!({"group_by": "status"})),
        ("topn", json!({"group_by": "customer_name", "limit": 3})),
    ] {
        let mut query = json!({"metric": "workflow_instances_started_total", "aggregation": "sum", "time_range": range});
        query
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let answer = run
            .post(&format!("/api/analytics/query/{kind}"), query)
            .await;
        assert!(
            answer.to_string().chars().any(|c| c.is_ascii_digit()),
            "{kind}: {answer}"
        );
    }

    // A workflow instance advances.
    let started = run
        .post(
            "/ui/workflows/orders.return_approval/start",
            json!({"input": {"order_id": order}}),
        )
        .await;
    let instance = started["id"]
        .as_str()
        .or(started["instance_id"].as_str())
        .expect("instance id")
        .to_string();
    let listed = run.get("/ui/workflows/instances").await;
    assert!(listed.to_string().contains(&instance), "{listed}");
    let advanced = run
        .post(
            &format!("/ui/workflows/instances/{instance}/events"),
            json!({"event": "submitted", "input": {"reason": "damaged"}}),
        )
        .await;
    assert!(advanced.to_string().contains("review"), "{advanced}");
    let shown = run
        .get(&format!("/ui/workflows/instances/{instance}"))
        .await;
    assert!(shown.to_string().contains("review"), "{shown}");
}

/// `thesa-bff preview --definitions D --specs S`: generated backends for
/// the specs, the preview page, data on the tables — here with the
/// samples as ThesaDefinition resources, as a team would apply them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_command_serves_a_definition_set_with_generated_backends() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let port = make_run::free_port();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_thesa-bff"))
        .current_dir(make_run::root())
        .args([
            "preview",
            "--definitions",
            "samples/definitions",
            "--specs",
            "specs",
        ])
        .args(["--port", &port.to_string()])
        .env("THESA_OBSERVABILITY_LOG_LEVEL", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start thesa-bff preview");
    struct Stop(std::process::Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _stop = Stop(child);
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !http
        .get(format!("{url}/ui/ready"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(
            std::time::Instant::now() < deadline,
            "preview not ready in 30 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let page = http.get(format!("{url}/preview/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Thesa preview"));
    let site: Value = http
        .get(format!("{url}/preview/site"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        site["roles"]
            .as_array()
            .is_some_and(|r| r.iter().any(|x| x == "admin")),
        "{site}"
    );
    let token: Value = http
        .post(format!("{url}/preview/token"))
        .json(&json!({"roles": ["admin"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["token"].as_str().expect("a token");
    let data: Value = http
        .get(format!("{url}/ui/pages/inventory.products/data"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(!items(&data).is_empty(), "{data}");
}
