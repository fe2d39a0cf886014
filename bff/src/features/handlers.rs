//! SDK handlers: operations of `type: sdk`, run by code in the BFF instead
//! of an HTTP call a spec describes. Handlers are registered by name at
//! start-up (step 8); the names every build knows are
//! `thesa_core::validate::BUILTIN_HANDLERS`, so the validator, the operator
//! and the BFF agree on them. A known handler whose settings are missing is
//! not registered: the BFF logs a warning naming each element that uses it
//! and those calls answer 503 `HANDLER_NOT_AVAILABLE`.
//!
//! Handlers run commands and workflow steps (they receive the request body
//! the element's input mapping builds); tables, lookups and searches read
//! through OpenAPI operations.
//!
//! Built in:
//! - `notify.webhook` posts the body as JSON to the webhook URL in the
//!   variable `handlers.notify_webhook.url_env` names (Slack, Teams and
//!   Mattermost incoming webhooks take `{"text": "..."}`), with the
//!   request's `X-Correlation-ID`; any 2xx is delivered.
//! - `files.upload` uploads the file in the body to the files service
//!   (see `files`); registered when `services` has the service
//!   `files.service` names.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use thesa_core::config::{Config, FilesConfig, NotifyWebhookConfig};

use crate::backends::invoker::{CallContext, InvokeError, Invoker};
use crate::backends::outbound::error_chain;
use crate::features::files::{self, UPLOAD_HANDLER};
use crate::registry::Registry;

/// The handler registry: every registered handler by name.
#[derive(Debug, Default)]
pub struct Handlers {
    registered: BTreeMap<&'static str, Handler>,
}

/// A registered handler.
#[derive(Debug)]
enum Handler {
    NotifyWebhook(NotifyWebhook),
    FilesUpload(FilesConfig),
}

/// `notify.webhook`.
#[derive(Debug)]
struct NotifyWebhook {
    http: reqwest::Client,
    url: String,
    timeout: Duration,
}

const NOTIFY_WEBHOOK: &str = "notify.webhook";

impl Handlers {
    /// Registers each built-in handler whose settings are present; `env`
    /// reads an environment variable.
    pub fn new(
        config: &Config,
        http: reqwest::Client,
        env: impl Fn(&str) -> Option<String>,
    ) -> Self {
        let mut registered = BTreeMap::new();
        if config.services.contains_key(&config.files.service) {
            registered.insert(UPLOAD_HANDLER, Handler::FilesUpload(config.files.clone()));
        }
        let NotifyWebhookConfig { url_env, timeout } = &config.handlers.notify_webhook;
        if let Some(url) = env(url_env).filter(|u| !u.trim().is_empty()) {
            let handler = NotifyWebhook {
                http,
                url: url.trim().to_string(),
                timeout: timeout.get(),
            };
            registered.insert(NOTIFY_WEBHOOK, Handler::NotifyWebhook(handler));
        }
        Self { registered }
    }

    /// Names of the registered handlers.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.registered.keys().copied()
    }

    /// Logs a warning for every element of `registry` that names a handler
    /// that is not registered (the seed's non-fatal start-up check); returns
    /// how many there are.
    pub fn warn_missing(&self, registry: &Registry) -> usize {
        let missing: Vec<(String, String)> = uses(registry)
            .filter(|(name, _)| !self.registered.contains_key(name.as_str()))
            .collect();
        for (handler, element) in &missing {
            tracing::warn!(
                handler,
                element,
                hint = hint(handler),
                "SDK handler is not registered; calls to it answer 503"
            );
        }
        missing.len()
    }

    /// Runs `name` with `input` (handlers that call services do so through
    /// `invoker`). `None` when no handler of that name is registered.
    pub async fn call(
        &self,
        name: &str,
        input: &Value,
        context: &CallContext,
        invoker: &Invoker,
    ) -> Option<Result<Value, InvokeError>> {
        Some(match self.registered.get(name)? {
            Handler::NotifyWebhook(webhook) => webhook.send(input, context).await,
            Handler::FilesUpload(config) => {
                files::upload_handler(config, invoker, input, context).await
            }
        })
    }
}

/// What to do so that a handler gets registered.
fn hint(handler: &str) -> String {
    match handler {
        NOTIFY_WEBHOOK => format!(
            "set the variable handlers.notify_webhook.url_env names (default {})",
            NotifyWebhookConfig::default().url_env
        ),
        UPLOAD_HANDLER => format!(
            "add the files service to services (files.service, default {})",
            FilesConfig::default().service
        ),
        _ => "this build has no such handler".into(),
    }
}

/// Every handler name the served definitions use, with the element using
/// it (`domain orders: commands[notify-team]`).
fn uses(registry: &Registry) -> impl Iterator<Item = (String, String)> + '_ {
    registry.definitions().iter().flat_map(|served| {
        let d = &served.definition;
        let at = move |kind: &str, id: &str| format!("domain {}: {kind}[{id}]", d.domain);
        let commands = d
            .commands
            .iter()
            .filter_map(move |c| Some((c.operation.handler.clone()?, at("commands", &c.id))));
        let steps = d.workflows.iter().flat_map(move |w| {
            w.steps.iter().filter_map(move |s| {
                let handler = s.operation.as_ref()?.handler.clone()?;
                Some((
                    handler,
                    at("workflows", &format!("{}].steps[{}", w.id, s.id)),
                ))
            })
        });
        let tables = d.pages.iter().flat_map(move |p| {
            let sources = p
                .table
                .as_deref()
                .into_iter()
                .chain(p.sections.iter().filter_map(|s| s.table.as_deref()))
                .filter_map(|t| t.data_source.as_ref())
                .chain(p.data_source.as_deref())
                .chain(p.sections.iter().filter_map(|s| s.data_source.as_deref()));
            sources.filter_map(move |source| Some((source.handler.clone()?, at("pages", &p.id))))
        });
        let forms = d.forms.iter().filter_map(move |f| {
            let handler = f.load_source.as_ref()?.handler.clone()?;
            Some((handler, at("forms", &f.id)))
        });
        let searches = d
            .searches
            .iter()
            .filter_map(move |s| Some((s.operation.handler.clone()?, at("searches", &s.id))));
        let lookups = d.lookups.iter().filter_map(move |l| {
            let handler = l.operation.as_ref()?.handler.clone()?;
            Some((handler, at("lookups", &l.id)))
        });
        commands
            .chain(steps)
            .chain(tables)
            .chain(forms)
            .chain(searches)
            .chain(lookups)
    })
}

impl NotifyWebhook {
    async fn send(&self, input: &Value, context: &CallContext) -> Result<Value, InvokeError> {
        let service = || NOTIFY_WEBHOOK.to_string();
        let response = self
            .http
            .post(&self.url)
            .timeout(self.timeout)
            .header("x-correlation-id", &context.correlation_id)
            .json(input)
            .send()
            .await
            .map_err(|err| {
                // The URL carries the webhook's token: never in a message.
                let err = err.without_url();
                if err.is_timeout() {
                    InvokeError::Timeout {
                        service: service(),
                        timeout: self.timeout,
                    }
                } else {
                    InvokeError::Unreachable {
                        service: service(),
                        message: error_chain(&err),
                    }
                }
            })?;
        let status = response.status();
        if !status.is_success() {
            return Err(InvokeError::Status {
                service: service(),
                status: status.as_u16(),
                body: crate::backends::invoker::error_body(response).await,
            });
        }
        Ok(json!({ "delivered": true, "status": status.as_u16() }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handlers(url: Option<&str>) -> Handlers {
        handlers_with(url, &Config::default())
    }

    fn handlers_with(url: Option<&str>, config: &Config) -> Handlers {
        let url = url.map(String::from);
        Handlers::new(
            config,
            crate::backends::outbound::client().unwrap(),
            move |name| {
                (name == "THESA_NOTIFY_WEBHOOK_URL")
                    .then(|| url.clone())
                    .flatten()
            },
        )
    }

    #[test]
    fn notify_webhook_is_registered_only_with_its_url() {
        assert_eq!(handlers(None).names().count(), 0);
        assert_eq!(handlers(Some("  ")).names().count(), 0);
        let with_url = handlers(Some("http://127.0.0.1:9/hook"));
        assert_eq!(with_url.names().collect::<Vec<_>>(), ["notify.webhook"]);
    }

    #[test]
    fn every_built_in_handler_can_be_registered() {
        // The validator's list and this module must not drift apart.
        let mut config = Config::default();
        let files: thesa_core::config::ServiceConfig =
            serde_json::from_value(json!({"base_url": "http://127.0.0.1:9"})).unwrap();
        config.services.insert("files-svc".into(), files);
        let all = handlers_with(Some("http://127.0.0.1:9/hook"), &config);
        let names: Vec<&str> = all.names().collect();
        assert_eq!(names, thesa_core::validate::BUILTIN_HANDLERS);
    }

    #[tokio::test]
    async fn unknown_handler_is_none() {
        let context = CallContext::default();
        let config = Config::default();
        let invoker = Invoker::new(
            &config,
            crate::backends::outbound::client().unwrap(),
            &crate::metrics::Metrics::new("test", "test"),
        )
        .unwrap();
        assert!(
            handlers(None)
                .call("notify.webhook", &Value::Null, &context, &invoker)
                .await
                .is_none()
        );
    }
}
