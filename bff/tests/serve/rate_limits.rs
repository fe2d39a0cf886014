//! Commands' `rate_limit`: shared by replicas through one real Redis, per
//! user or tenant, in memory, and with Redis stopped.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{self, Bff, claims, client, config, jwks, rs256};
use crate::redis::Redis;

/// A backend that accepts every cancel.
async fn orders() -> (String, tokio::sync::oneshot::Sender<()>) {
    let router = axum::Router::new()
        .fallback(|| async { axum::Json(json!({"id": "o1", "status": "cancelled"})) });
    harness::serve(router).await
}

/// The sample definitions with `orders.cancel` limited to `max` per minute
/// per `scope`, in `dir`.
fn definitions(dir: &std::path::Path, max: u32, scope: &str) -> String {
    let repo = harness::repo();
    for domain in ["orders", "inventory", "customers"] {
        let text = std::fs::read_to_string(
            repo.join("definitions")
                .join(domain)
                .join("definition.yaml"),
        )
        .unwrap();
        let limited = text.replace(
            "max_requests: 10\n      window: 1m\n      scope: user",
            &format!("max_requests: {max}\n      window: 1m\n      scope: {scope}"),
        );
        assert!(
            domain != "orders" || limited != text,
            "the sample's rate_limit moved"
        );
        std::fs::create_dir_all(dir.join(domain)).unwrap();
        std::fs::write(dir.join(domain).join("definition.yaml"), limited).unwrap();
    }
    format!("definitions:\n  directories: [\"{}\"]\n", dir.display())
}

fn bff_config(jwks: &str, orders: &str, definitions: &str, rate_limit: &str) -> String {
    config(
        jwks,
        &format!("services:\n  orders-svc:\n    base_url: \"{orders}\"\n{definitions}{rate_limit}"),
    )
}

const REDIS: &str = "rate_limit:\n  driver: redis\n";

/// A tenant name of this run only: a Redis named by `REDIS_URL` outlives
/// the test, and its counts must not carry over.
fn unique(tenant: &str) -> String {
    format!("{tenant}-{}", uuid::Uuid::new_v4().simple())
}

/// Cancels an order as `user` of `tenant`: status, `Retry-After`, body.
async fn cancel(bff: &Bff, user: &str, tenant: &str) -> (StatusCode, Option<u64>, Value) {
    let token = rs256(&claims(user, tenant, &["order_clerk"]));
    let response = client()
        .post(bff.url("/ui/commands/orders.cancel"))
        .bearer_auth(token)
        .json(&json!({"input": {"reason": "late"}, "route_params": {"id": "o1"}}))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    (
        status,
        retry_after,
        response.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_limit_through_redis() {
    let (jwks, _stop) = jwks().await;
    let (orders, _stop_orders) = orders().await;
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let text = bff_config(&jwks, &orders, &definitions(dir.path(), 4, "user"), REDIS);
    let env = [("THESA_REDIS_ADDR", redis.addr.as_str())];
    let replicas = [Bff::start(&text, &env), Bff::start(&text, &env)];
    let acme = unique("acme");

    let mut allowed = 0;
    let mut limited = Vec::new();
    for i in 0..10 {
        let (status, retry_after, body) = cancel(&replicas[i % 2], "alice", &acme).await;
        match status {
            StatusCode::OK => allowed += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(body["error"]["code"], "RATE_LIMITED", "{body}");
                limited.push(retry_after.expect("429 without Retry-After"));
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(allowed, 4, "exactly max_requests, across both replicas");
    assert_eq!(limited.len(), 6);
    // The first run leaves the one-minute window in just under a minute.
    assert!(
        limited.iter().all(|s| (50..=60).contains(s)),
        "Retry-After {limited:?}"
    );
    // Per user: another user of the tenant has a count of its own.
    assert_eq!(cancel(&replicas[0], "bob", &acme).await.0, StatusCode::OK);

    let counted = |line: Option<String>| {
        line.and_then(|l| l.rsplit(' ').next().map(|n| n.parse::<f64>().unwrap()))
            .unwrap_or(0.0)
    };
    let total = counted(
        harness::metric(
            &replicas[0],
            "thesa_rate_limited_total{command=\"orders.cancel\"}",
        )
        .await,
    ) + counted(
        harness::metric(
            &replicas[1],
            "thesa_rate_limited_total{command=\"orders.cancel\"}",
        )
        .await,
    );
    assert_eq!(total, 6.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_scope_is_shared_by_the_tenants_users() {
    let (jwks, _stop) = jwks().await;
    let (orders, _stop_orders) = orders().await;
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let text = bff_config(&jwks, &orders, &definitions(dir.path(), 3, "tenant"), REDIS);
    let bff = Bff::start(&text, &[("THESA_REDIS_ADDR", redis.addr.as_str())]);
    let (acme, globex) = (unique("acme"), unique("globex"));

    assert_eq!(cancel(&bff, "alice", &acme).await.0, StatusCode::OK);
    assert_eq!(cancel(&bff, "alice", &acme).await.0, StatusCode::OK);
    assert_eq!(cancel(&bff, "bob", &acme).await.0, StatusCode::OK);
    let (status, retry_after, _) = cancel(&bff, "bob", &acme).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after.is_some_and(|s| (50..=60).contains(&s)));
    assert_eq!(cancel(&bff, "carol", &globex).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_limits_one_replica() {
    let (jwks, _stop) = jwks().await;
    let (orders, _stop_orders) = orders().await;
    let dir = tempfile::tempdir().unwrap();
    let text = bff_config(&jwks, &orders, &definitions(dir.path(), 2, "global"), "");
    let bff = Bff::start(&text, &[]);
    let (acme, globex, initech) = (unique("acme"), unique("globex"), unique("initech"));

    assert_eq!(cancel(&bff, "alice", &acme).await.0, StatusCode::OK);
    assert_eq!(cancel(&bff, "bob", &globex).await.0, StatusCode::OK);
    let (status, retry_after, body) = cancel(&bff, "carol", &initech).await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "global scope: {body}"
    );
    assert!(retry_after.is_some_and(|s| (50..=60).contains(&s)));
    assert!(
        body["error"]["correlation_id"]
            .as_str()
            .is_some_and(|c| !c.is_empty())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_fails_open_or_closed_as_configured() {
    let (jwks, _stop) = jwks().await;
    let (orders, _stop_orders) = orders().await;
    let mut redis = Redis::start_own();
    let dir = tempfile::tempdir().unwrap();
    let definitions = definitions(dir.path(), 100, "user");
    let env = [("THESA_REDIS_ADDR", redis.addr.as_str())];
    let open = Bff::start(&bff_config(&jwks, &orders, &definitions, REDIS), &env);
    let closed = Bff::start(
        &bff_config(
            &jwks,
            &orders,
            &definitions,
            "rate_limit:\n  driver: redis\n  on_store_error: deny\n",
        ),
        &env,
    );
    let acme = unique("acme");
    assert_eq!(cancel(&open, "alice", &acme).await.0, StatusCode::OK);
    assert_eq!(cancel(&closed, "alice", &acme).await.0, StatusCode::OK);
    let (_, ready) = harness::answer(client().get(open.url("/ui/ready"))).await;
    assert_eq!(
        ready["checks"]["rate_limit_store"]["status"], "ok",
        "{ready}"
    );

    redis.stop();
    assert_eq!(
        cancel(&open, "alice", &acme).await.0,
        StatusCode::OK,
        "fails open"
    );
    let (status, _, body) = cancel(&closed, "alice", &acme).await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "fails closed: {body}"
    );
    assert_eq!(body["error"]["code"], "RATE_LIMIT_STORE_UNAVAILABLE");

    for bff in [&open, &closed] {
        let (status, ready) = harness::answer(client().get(bff.url("/ui/ready"))).await;
        assert_eq!(status, StatusCode::OK, "{ready}");
        assert_eq!(ready["status"], "degraded", "{ready}");
        assert_eq!(
            ready["checks"]["rate_limit_store"]["status"], "error",
            "{ready}"
        );
    }
    assert!(
        harness::metric(&open, "thesa_rate_limit_store_errors_total 1")
            .await
            .is_some()
    );
}
