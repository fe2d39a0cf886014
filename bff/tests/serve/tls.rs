//! The binary against an identity provider reached over HTTPS: the JWKS is
//! served over TLS by the test (the throwaway CA and `localhost`
//! certificate of `operator/tests/tls`), the BFF trusts that CA through
//! `SSL_CERT_FILE`. The binary is the one cargo builds for the tests, with
//! every rustls provider the workspace compiles in: one that left the
//! choice to rustls would panic at its first TLS connection.

use std::sync::Arc;

use crate::harness::{Bff, config, get_json, repo, token};

/// Serves `router` over HTTPS on a free port of 127.0.0.1.
async fn serve_tls(router: axum::Router) -> u16 {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = repo().join("operator/tests/tls");
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("tls.crt"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("tls.key")).unwrap();
    let mut tls = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (acceptor, router) = (acceptor.clone(), router.clone());
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(stream).await else {
                    return;
                };
                let service = hyper_util::service::TowerToHyperService::new(router);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    port
}

#[tokio::test]
async fn the_built_binary_fetches_its_keys_over_https() {
    let jwks = std::fs::read_to_string(repo().join("bff/tests/keys/jwks-test.json")).unwrap();
    let router = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            let jwks = jwks.clone();
            async move { ([("content-type", "application/json")], jwks) }
        }),
    );
    let port = serve_tls(router).await;
    let url = format!("https://localhost:{port}/jwks");
    let ca = repo().join("operator/tests/tls/ca.crt");
    let bff = Bff::start(
        &config(&url, ""),
        &[("SSL_CERT_FILE", ca.to_str().unwrap())],
    );
    let (status, body) = get_json(&bff.url("/ui/navigation"), &token(&["admin"])).await;
    let logs = bff.drain_logs().join("\n");
    assert!(!logs.contains("panicked"), "{logs}");
    assert_eq!(
        status, 200,
        "a token checked against keys fetched over HTTPS: {body}\n{logs}"
    );
}
