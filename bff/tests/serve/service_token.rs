//! `auth.strategy: service_token` against a local token endpoint.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{self, Bff, client, config, jwks, token};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bff_uses_its_own_token_caches_it_and_renews_it_on_401() {
    let (jwks, _stop) = jwks().await;
    let issued = Arc::new(AtomicUsize::new(0));
    let forms: Arc<Mutex<Vec<String>>> = Arc::default();
    let (issued_in, forms_in) = (issued.clone(), forms.clone());
    let token_endpoint = axum::Router::new().route(
        "/token",
        post(move |body: String| {
            let (issued, forms) = (issued_in.clone(), forms_in.clone());
            async move {
                forms.lock().unwrap().push(body);
                let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
                axum::Json(json!({"access_token": format!("svc-{n}"), "token_type": "Bearer", "expires_in": 3600}))
            }
        }),
    );
    let (idp, _s1) = harness::serve(token_endpoint).await;
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen_in = seen.clone();
    // The backend takes only the second token: the first one is "revoked".
    let backend = axum::Router::new().route(
        "/orders",
        get(move |headers: HeaderMap| {
            let seen = seen_in.clone();
            async move {
                let auth = headers["authorization"].to_str().unwrap().to_string();
                seen.lock().unwrap().push(auth.clone());
                if auth != "Bearer svc-2" {
                    return AxumStatus::UNAUTHORIZED.into_response();
                }
                axum::Json(json!({"data": [{"id": "o1"}], "total": 1})).into_response()
            }
        }),
    );
    let (orders, _s2) = harness::serve(backend).await;
    let extra = format!(
        "services:\n  orders-svc:\n    base_url: \"{orders}\"\n    auth: {{strategy: service_token, client_id: thesa-bff, token_endpoint: \"{idp}/token\"}}\n"
    );
    let bff = Bff::start(
        &config(&jwks, &extra),
        &[("THESA_SERVICE_TOKEN_SECRET", "s3cret")],
    );

    for _ in 0..2 {
        let response = client()
            .get(bff.url("/ui/pages/orders.list/data"))
            .bearer_auth(token(&["order_clerk"]))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(
        issued.load(Ordering::SeqCst),
        2,
        "renewed once after the 401, then cached"
    );
    assert_eq!(
        *seen.lock().unwrap(),
        ["Bearer svc-1", "Bearer svc-2", "Bearer svc-2"]
    );
    let form = forms.lock().unwrap()[0].clone();
    for part in [
        "grant_type=client_credentials",
        "client_id=thesa-bff",
        "client_secret=s3cret",
    ] {
        assert!(form.contains(part), "{form}");
    }

    // Without the secret the BFF does not start.
    let exited = Bff::try_start(&config(&jwks, &extra), &[])
        .err()
        .expect("must not start");
    assert_eq!(exited.status.code(), Some(1));
    assert!(
        exited
            .lines
            .iter()
            .any(|l| l.contains("THESA_SERVICE_TOKEN_SECRET")),
        "{:?}",
        exited.lines
    );
}
