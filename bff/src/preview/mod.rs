//! The preview page (`/preview/`): what a frontend would render from the
//! definitions — menu, tables with live data, detail pages, forms,
//! commands, workflows — for a role chosen in the page. Development only:
//! served when `server.preview` is on, which start-up refuses unless the
//! identity settings accept the development key (the page signs its own
//! tokens with it). Plain HTML, CSS and JavaScript compiled into the
//! binary; the page calls the ordinary `/ui/*` API with those tokens.

pub mod command;

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use thesa_core::config::Config;

use crate::cli::dev_token::{self, DevTokenArgs};
use crate::state::AppState;

/// The key ID of the development key pair under config/dev/.
const DEV_KID: &str = "thesa-dev-1";
/// The development signing key, relative to the working directory.
const DEV_KEY: &str = "config/dev/jwt-dev-private.pem";

const INDEX: &str = include_str!("index.html");
const SCRIPT: &str = include_str!("app.js");
const STYLE: &str = include_str!("app.css");

/// Checks that `config` may serve the preview: its JWKS file holds the
/// development key and the private key is readable.
///
/// # Errors
/// Says which setting is missing, for the start-up failure.
pub fn check(config: &Config) -> Result<(), String> {
    let jwks = config.identity.jwks_file.as_deref().unwrap_or_default();
    let development = !jwks.is_empty()
        && std::fs::read_to_string(jwks).is_ok_and(|text| text.contains(DEV_KID))
        && Path::new(DEV_KEY).is_file();
    if development {
        Ok(())
    } else {
        Err(format!(
            "server.preview is on, but this config has no development keys \
             (identity.jwks_file with key {DEV_KID:?} and {DEV_KEY}); the preview signs its own \
             tokens and is for development configs only: turn server.preview off"
        ))
    }
}

/// The preview's routes, merged into the BFF's router.
pub fn router(state: Arc<AppState>) -> axum::Router {
    axum::Router::new()
        .route(
            "/preview",
            get(|| async { axum::response::Redirect::permanent("/preview/") }),
        )
        .route(
            "/preview/",
            get(|| async { asset("text/html; charset=utf-8", INDEX) }),
        )
        .route(
            "/preview/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/preview/app.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
        .route("/preview/site", get(site))
        .route("/preview/token", post(token))
        .with_state(state)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// Roles of the static policy, every page's route, every workflow's graph.
async fn site(State(state): State<Arc<AppState>>) -> Json<Value> {
    let roles: Vec<String> = std::fs::read_to_string(&state.config.capability.static_policy_file)
        .ok()
        .and_then(|text| thesa_core::node::parse(&text).ok())
        .and_then(|node| {
            node.to_json()
                .get("roles")?
                .as_object()
                .map(|r| r.keys().cloned().collect())
        })
        .unwrap_or_default();
    let registry = state.registry.load();
    let pages: Vec<Value> = registry
        .definitions()
        .iter()
        .flat_map(|served| &served.definition.pages)
        .map(|page| json!({"id": page.id, "route": page.route, "title": page.title, "layout": page.layout}))
        .collect();
    let workflows: Vec<Value> = registry.workflows().map(|w| json!(w)).collect();
    // The path parameters of each form's load source, so a detail page
    // without a data source can show the record its edit form loads.
    let mut forms = serde_json::Map::new();
    for form in registry
        .definitions()
        .iter()
        .flat_map(|s| &s.definition.forms)
    {
        let Some(source) = &form.load_source else {
            continue;
        };
        let Some(operation_id) = source.operation_id.as_deref() else {
            continue;
        };
        let operation = match source.service_id.as_deref() {
            Some(service) => state
                .index
                .service(service)
                .and_then(|s| s.operation(operation_id)),
            None => state
                .index
                .services_with(operation_id)
                .first()
                .and_then(|s| state.index.service(s))
                .and_then(|s| s.operation(operation_id)),
        };
        if let Some(operation) = operation {
            forms.insert(
                form.id.clone(),
                json!({"load_params": operation.path_template_params()}),
            );
        }
    }
    Json(json!({"roles": roles, "pages": pages, "workflows": workflows, "forms": forms}))
}

#[derive(Deserialize)]
struct TokenRequest {
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    tenant: Option<String>,
}

/// A development token for the chosen roles.
async fn token(State(state): State<Arc<AppState>>, Json(request): Json<TokenRequest>) -> Response {
    let args = DevTokenArgs {
        sub: request.sub.unwrap_or_else(|| "preview-user".into()),
        tenant: request.tenant.unwrap_or_else(|| "acme".into()),
        roles: request.roles,
        email: Some("preview@example.com".into()),
        partition: Vec::new(),
        ttl: thesa_core::duration::Duration::from_secs(8 * 3600),
        key: DEV_KEY.into(),
        kid: DEV_KID.into(),
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match dev_token::token(&state.config.identity, "the preview", &args, now) {
        Ok(token) => Json(json!({"token": token})).into_response(),
        Err(err) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": {"code": "PREVIEW_TOKEN", "message": err.to_string()}})),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_without_the_development_keys_cannot_serve_the_preview() {
        let mut config = Config::default();
        let error = check(&config).unwrap_err();
        assert!(
            error.contains("server.preview") && error.contains("development keys"),
            "{error}"
        );
        config.identity.jwks_file = Some("/nonexistent/jwks.json".into());
        assert!(check(&config).is_err());
    }
}
