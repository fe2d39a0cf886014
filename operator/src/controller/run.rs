//! `thesa-operator run`: the process around the controller — the API
//! client, probes and metrics, the admission webhook, leader election, and
//! the watches that trigger reconciles (one controller per watched
//! namespace, or one for all).

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, reflector as reflect, watcher};
use kube::{Client, Resource, ResourceExt};
use thesa_core::config::{OtlpProtocol, TracingConfig};
use tokio::sync::watch;
use tracing::{info, warn};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use super::dereference::secret_names;
use super::watches::{WatchHealth, resilient};
use super::{Context, DEFINITIONS_PAGE_SIZE, error_policy, reconcile};
use crate::certs;
use crate::crd::{ThesaDefinition, ThesaDeployment};
use crate::desired::MANAGER;
use crate::leader::{Elector, LeaseSettings};
use crate::revision::{CachedDefinition, Revisions, cached_event};
use crate::selector;
use crate::telemetry::{self, Telemetry};
use crate::webhook::{self, Webhook};

/// Options of `thesa-operator run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Watch only these namespaces, comma-separated (default: all). The
    /// RBAC must match: Roles in exactly these namespaces instead of a
    /// ClusterRole
    #[arg(
        long = "namespace",
        env = "THESA_OPERATOR_NAMESPACES",
        value_delimiter = ',',
        value_name = "NS,..."
    )]
    pub namespaces: Vec<String>,
    /// Names of SDK handlers the BFF image registers besides the built-in
    /// `notify.webhook` (for `type: sdk` operations), comma-separated.
    #[arg(long = "handler", value_delimiter = ',', value_name = "NAME")]
    pub handlers: Vec<String>,
    /// Log filter (`info`, `thesa_operator=debug,kube=info`, …).
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub log: String,
    /// Where /metrics, /healthz and /readyz are served
    #[arg(
        long,
        env = "THESA_OPERATOR_METRICS_ADDR",
        default_value = "0.0.0.0:8081"
    )]
    pub metrics_addr: std::net::SocketAddr,
    /// Elect a leader among replicas on a Lease (off: this replica always
    /// reconciles; run one replica only)
    #[arg(long, env = "THESA_OPERATOR_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub leader_elect: bool,
    /// Name of the Lease
    #[arg(long, default_value = "thesa-operator-leader")]
    pub lease_name: String,
    /// Namespace of the Lease (in a pod: its own, from POD_NAMESPACE)
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// This replica's identity in the Lease (in a pod: its name, from
    /// POD_NAME; else the host name)
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// How long a Lease stays valid without renewal
    #[arg(long, default_value = "15s", value_name = "DURATION")]
    pub lease_duration: thesa_core::duration::Duration,
    /// A leader that could not renew for this long steps down (less than
    /// --lease-duration)
    #[arg(long, default_value = "10s", value_name = "DURATION")]
    pub renew_deadline: thesa_core::duration::Duration,
    /// Time between Lease attempts
    #[arg(long, default_value = "2s", value_name = "DURATION")]
    pub retry_period: thesa_core::duration::Duration,
    /// Serve the validating admission webhook for ThesaDefinitions on this
    /// address over HTTPS (every replica serves it; off when not given)
    #[arg(long, env = "THESA_OPERATOR_WEBHOOK_ADDR", value_name = "ADDR")]
    pub webhook_addr: Option<std::net::SocketAddr>,
    /// Directory with the webhook's tls.crt and tls.key (the cert-manager
    /// Secret the chart mounts)
    #[arg(long, default_value = "/tls", value_name = "DIR")]
    pub webhook_cert_dir: std::path::PathBuf,
    /// Liveness fails when a watch has failed for this long without
    /// recovering (the kubelet then restarts the process)
    #[arg(long, default_value = "3m", value_name = "DURATION")]
    pub watch_stall_timeout: thesa_core::duration::Duration,
    /// Most time to judge one admission request
    #[arg(long, default_value = "5s", value_name = "DURATION")]
    pub webhook_timeout: thesa_core::duration::Duration,
    /// Allow a ThesaDefinition when it cannot be judged in time (the
    /// controller's gate still applies); refuse it otherwise
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub webhook_fail_open: bool,
    /// Without cert-manager: keep a generated CA and serving certificate in
    /// this Secret (in --lease-namespace) instead of --webhook-cert-dir
    #[arg(long, value_name = "SECRET")]
    pub webhook_self_signed: Option<String>,
    /// The webhook's Service, for the generated certificate's DNS names
    #[arg(long, default_value = "thesa-operator-webhook", value_name = "NAME")]
    pub webhook_service: String,
    /// The ValidatingWebhookConfiguration whose caBundle receives the
    /// generated CA
    #[arg(long, default_value = "thesa-operator", value_name = "NAME")]
    pub webhook_configuration: String,
    /// Export traces (a span per reconcile with the object's name, API
    /// calls as its children) to this OTLP collector (off when not given)
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// `grpc` or `http/protobuf`
    #[arg(long, env = "OTEL_EXPORTER_OTLP_PROTOCOL", default_value = "grpc", value_parser = protocol)]
    pub otlp_protocol: OtlpProtocol,
    /// Share of reconciles traced, 0 to 1 (failed ones are always kept)
    #[arg(long, default_value_t = 1.0, value_name = "RATE")]
    pub trace_sampling_rate: f64,
}

/// `--otlp-protocol`: OpenTelemetry's names, and the BFF config's.
fn protocol(text: &str) -> Result<OtlpProtocol, String> {
    match text {
        "grpc" => Ok(OtlpProtocol::Grpc),
        "http/protobuf" | "http_protobuf" => Ok(OtlpProtocol::HttpProtobuf),
        other => Err(format!("{other:?} is not grpc or http/protobuf")),
    }
}

/// What the operator traces: its own spans and the Kubernetes client's
/// (the API calls, at debug level, whatever the log filter).
fn traced(meta: &tracing::Metadata<'_>) -> bool {
    let target = meta.target();
    target.starts_with("thesa_operator") || target.starts_with("kube")
}

/// Most time queued spans get to reach the collector at shutdown.
const TRACE_FLUSH: std::time::Duration = std::time::Duration::from_secs(5);

/// `thesa-operator run`.
pub fn main(args: RunArgs) -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (otel, traces) = thesa_traces::layer("thesa-operator", traced);
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_filter(filter),
        )
        .with(otel)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!(error = %err, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        if let Some(endpoint) = &args.otlp_endpoint {
            let config = TracingConfig {
                enabled: true,
                endpoint: Some(endpoint.clone()),
                protocol: args.otlp_protocol,
                sampling_rate: args.trace_sampling_rate,
                ..TracingConfig::default()
            };
            // Spans the collector does not get are not counted here (the
            // callback runs inside the subscriber, where logging is unsafe).
            traces.start(&config, Arc::new(|_, _| {}))?;
            info!(endpoint, "trace export started");
        }
        let outcome = run(args).await;
        traces.shutdown(TRACE_FLUSH).await;
        outcome
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "thesa-operator stopped");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: RunArgs) -> Result<(), String> {
    let client = Client::try_default()
        .await
        .map_err(|e| format!("connecting to the API server: {e}"))?;
    let namespaces: Vec<Option<String>> = if args.namespaces.is_empty() {
        vec![None]
    } else {
        args.namespaces.iter().cloned().map(Some).collect()
    };
    info!(
        version = env!("CARGO_PKG_VERSION"),
        namespaces = ?args.namespaces,
        leader_elect = args.leader_elect,
        metrics_addr = %args.metrics_addr,
        "thesa-operator starting"
    );
    let telemetry =
        Arc::new(Telemetry::default().with_stall_timeout(args.watch_stall_timeout.get()));
    let listener = tokio::net::TcpListener::bind(args.metrics_addr)
        .await
        .map_err(|e| format!("listening on {}: {e}", args.metrics_addr))?;
    let probes = telemetry::router(telemetry.clone());
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, probes).await {
            warn!(error = %err, "the metrics server stopped");
        }
    });

    let (shutdown_tx, shutdown) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        info!("shutdown signal received");
        let _ = shutdown_tx.send(true);
    });

    // The webhook answers on every replica, leader or not.
    let handlers = thesa_core::validate::known_handlers(args.handlers.iter().cloned());
    if let Some(addr) = args.webhook_addr {
        let webhook = Arc::new(Webhook {
            client: client.clone(),
            handlers: handlers.clone(),
            timeout: args.webhook_timeout.get(),
            fail_open: args.webhook_fail_open,
            namespaces: args.namespaces.clone(),
        });
        info!(%addr, fail_open = args.webhook_fail_open, "serving the admission webhook");
        match &args.webhook_self_signed {
            Some(secret) => {
                let ns = &args.lease_namespace;
                let service = &args.webhook_service;
                let names = vec![
                    format!("{service}.{ns}.svc"),
                    format!("{service}.{ns}.svc.cluster.local"),
                ];
                let pem = certs::ensure(&client, ns, secret, &names).await?;
                certs::inject(&client, &args.webhook_configuration, &pem.ca).await?;
                tokio::spawn(async move {
                    let served =
                        webhook::serve_pem(webhook, addr, pem.cert.as_bytes(), pem.key.as_bytes());
                    if let Err(err) = served.await {
                        tracing::error!(error = %err, "the admission webhook stopped");
                    }
                });
            }
            None => {
                let dir = args.webhook_cert_dir.clone();
                tokio::spawn(async move {
                    if let Err(err) = webhook::serve(webhook, addr, &dir).await {
                        tracing::error!(error = %err, "the admission webhook stopped");
                    }
                });
            }
        }
    }

    // Standby until this replica leads (or is told to stop).
    let (leading_tx, mut leading) = watch::channel(!args.leader_elect);
    let mut releaser: Option<Elector> = None;
    if args.leader_elect && args.renew_deadline.get() >= args.lease_duration.get() {
        return Err(format!(
            "--renew-deadline ({}) must be shorter than --lease-duration ({}), or a leader \
             could keep acting after its lease expired for the others",
            args.renew_deadline, args.lease_duration
        ));
    }
    if args.leader_elect {
        let identity = args
            .identity
            .clone()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| format!("thesa-operator-{}", std::process::id()));
        let settings = LeaseSettings {
            name: args.lease_name.clone(),
            namespace: args.lease_namespace.clone(),
            identity,
            lease_duration: args.lease_duration.get(),
            renew_deadline: args.renew_deadline.get(),
            retry_period: args.retry_period.get(),
        };
        info!(lease = %format!("{}/{}", settings.namespace, settings.name), identity = settings.identity, "standing by for the leader lease");
        let elector = Elector::new(client.clone(), settings);
        releaser = Some(elector.clone());
        tokio::spawn(elector.run(leading_tx, shutdown.clone()));
    }
    let mut stopping = shutdown.clone();
    tokio::select! {
        _ = leading.wait_for(|l| *l) => {}
        _ = stopping.wait_for(|s| *s) => return Ok(()),
    }
    telemetry.set_leading(true);

    // Reconcile until the lease is lost or a signal comes.
    let (stop_tx, stop) = watch::channel(false);
    let lost = {
        let mut leading = leading.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let lost = tokio::select! {
                _ = leading.wait_for(|l| !*l) => true,
                _ = shutdown.wait_for(|s| *s) => false,
            };
            let _ = stop_tx.send(true);
            lost
        })
    };
    let mut stores = Vec::new();
    let mut controllers = Vec::new();
    for ns in &namespaces {
        let (future, store) =
            controller(&client, ns.as_deref(), &handlers, &telemetry, stop.clone());
        stores.push(store);
        controllers.push(future);
    }
    let synced = telemetry.clone();
    tokio::spawn(async move {
        for store in stores {
            if store.wait_until_ready().await.is_err() {
                return;
            }
        }
        synced.set_synced();
        info!("caches synced");
    });
    futures::future::join_all(controllers).await;
    telemetry.set_leading(false);
    // Only now may a standby take over: nothing reconciles here any more.
    if let Some(elector) = releaser
        && let Err(err) = elector.release().await
    {
        warn!(error = %err, "could not release the leader lease");
    }
    if lost.await.unwrap_or(false) {
        return Err("lost the leader lease; exiting so that a standby takes over".into());
    }
    info!("thesa-operator stopped");
    Ok(())
}

/// SIGTERM or SIGINT.
async fn wait_for_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}

/// The controller of one namespace (or of all), stopping when `stop`
/// turns true; and its ThesaDeployment cache.
fn controller(
    client: &Client,
    ns: Option<&str>,
    handlers: &BTreeSet<String>,
    telemetry: &Arc<Telemetry>,
    mut stop: watch::Receiver<bool>,
) -> (
    impl std::future::Future<Output = ()> + use<>,
    Store<ThesaDeployment>,
) {
    let scope = ns.unwrap_or("all namespaces");
    let health = telemetry.watches.clone();
    let owned =
        watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={MANAGER}"));

    // ThesaDefinitions are kept as metadata, status and the prepared
    // revision (loaded and written once per generation, off the async
    // workers); ThesaDeployments without their managed fields.
    let revisions = Arc::new(Revisions::default());
    let (definitions, writer) = reflector::store();
    let api = scoped::<ThesaDefinition>(client, ns);
    let preparing = revisions.clone();
    let definition_events = reflect(
        writer,
        resilient(
            format!("thesadefinitions ({scope})"),
            health.clone(),
            move || {
                watcher(
                    api.clone(),
                    watcher::Config::default().page_size(DEFINITIONS_PAGE_SIZE),
                )
            },
        )
        .then(move |event| {
            let revisions = preparing.clone();
            async move {
                let event = event?;
                tokio::task::spawn_blocking(move || cached_event(event, &revisions))
                    .await
                    .map_err(|e| watcher::Error::WatchStartFailed(kube::Error::Service(e.into())))
            }
        }),
    )
    .touched_objects();
    let (deployments, writer) = reflector::store();
    let api = scoped::<ThesaDeployment>(client, ns);
    let deployment_events = reflect(
        writer,
        resilient(
            format!("thesadeployments ({scope})"),
            health.clone(),
            move || watcher(api.clone(), watcher::Config::default()),
        )
        .modify(|d| d.managed_fields_mut().clear()),
    )
    .applied_objects();

    let mut context = Context::new(client.clone(), definitions, handlers.clone());
    context.telemetry = telemetry.clone();
    context.revisions = revisions;
    let context = Arc::new(context);

    // Everything else only triggers reconciles: metadata is enough.
    let metadata = |kind: &str, config: watcher::Config| {
        let name = format!("{kind} ({scope})");
        (name, config)
    };
    let by_definition = deployments.clone();
    let by_config_map = deployments.clone();
    let by_secret = deployments.clone();
    let controller = Controller::for_stream(deployment_events, deployments.clone())
        .owns_stream(owned_watch::<ConfigMap>(
            client,
            ns,
            metadata("configmaps", owned.clone()),
            &health,
        ))
        .owns_stream(owned_watch::<Deployment>(
            client,
            ns,
            metadata("deployments", owned.clone()),
            &health,
        ))
        .owns_stream(owned_watch::<Service>(
            client,
            ns,
            metadata("services", owned.clone()),
            &health,
        ))
        .owns_stream(owned_watch::<ServiceAccount>(
            client,
            ns,
            metadata("serviceaccounts", owned.clone()),
            &health,
        ))
        .owns_stream(owned_watch::<HorizontalPodAutoscaler>(
            client,
            ns,
            metadata("horizontalpodautoscalers", owned.clone()),
            &health,
        ))
        .owns_stream(owned_watch::<PodDisruptionBudget>(
            client,
            ns,
            metadata("poddisruptionbudgets", owned),
            &health,
        ))
        .watches_stream(definition_events, move |tdef| {
            selecting(&by_definition.state(), &tdef)
        })
        .watches_stream(
            owned_watch::<ConfigMap>(
                client,
                ns,
                metadata("configmaps, all", watcher::Config::default()),
                &health,
            ),
            move |cm| referencing(&by_config_map.state(), &cm, References::ConfigMap),
        )
        .watches_stream(
            owned_watch::<Secret>(
                client,
                ns,
                metadata("secrets", watcher::Config::default()),
                &health,
            ),
            move |secret| referencing(&by_secret.state(), &secret, References::Secret),
        );
    let future = controller
        .graceful_shutdown_on(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .run(reconcile, error_policy, context)
        .for_each(|result| async move {
            if let Err(err) = result {
                warn!(error = %err, "reconcile failed");
            }
        });
    (future, deployments)
}

/// A metadata-only watch of `K` (named for the health report), for
/// triggering reconciles.
fn owned_watch<K>(
    client: &Client,
    ns: Option<&str>,
    (name, config): (String, watcher::Config),
    health: &Arc<WatchHealth>,
) -> impl futures::Stream<Item = Result<PartialObjectMeta<K>, watcher::Error>> + Send + 'static
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let api = scoped::<PartialObjectMeta<K>>(client, ns);
    resilient(name, health.clone(), move || {
        watcher(api.clone(), config.clone())
    })
    .touched_objects()
}

/// An API over `K` in the watched namespace, or in all of them.
fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// The ThesaDeployments whose selector takes `tdef` (all of them that use
/// a namespace selector: the namespace labels are checked in reconcile).
fn selecting(
    deployments: &[Arc<ThesaDeployment>],
    tdef: &CachedDefinition,
) -> Vec<ObjectRef<ThesaDeployment>> {
    deployments
        .iter()
        .filter(|d| {
            let selection = &d.spec.definitions;
            (selection.namespace_selector.is_some() || d.namespace() == tdef.namespace())
                && selector::matches(selection.selector.as_ref(), tdef.labels())
        })
        .map(|d| ObjectRef::from_obj(d.as_ref()))
        .collect()
}

/// What kind of object a reference names.
#[derive(Clone, Copy)]
enum References {
    ConfigMap,
    Secret,
}

/// The ThesaDeployments of the object's namespace that refer to it.
fn referencing<K: Resource>(
    deployments: &[Arc<ThesaDeployment>],
    object: &K,
    kind: References,
) -> Vec<ObjectRef<ThesaDeployment>> {
    let name = object.meta().name.as_deref().unwrap_or_default();
    deployments
        .iter()
        .filter(|d| d.namespace() == object.meta().namespace)
        .filter(|d| match kind {
            References::ConfigMap => d.spec.specs.iter().any(|s| {
                s.config_map_key_ref
                    .as_ref()
                    .is_some_and(|r| r.name == name)
            }),
            References::Secret => secret_names(d).contains(name),
        })
        .map(|d| ObjectRef::from_obj(d.as_ref()))
        .collect()
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::RunArgs;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    #[test]
    fn namespaces_and_lease_settings_parse() {
        let cli = Cli::parse_from(["thesa-operator", "--namespace", "team-a,team-b"]);
        assert_eq!(cli.run.namespaces, ["team-a", "team-b"]);
        assert!(cli.run.leader_elect, "leader election is on by default");
        assert_eq!(cli.run.lease_duration.get().as_secs(), 15);
        assert_eq!(cli.run.renew_deadline.get().as_secs(), 10);
        let cli = Cli::parse_from([
            "thesa-operator",
            "--leader-elect",
            "false",
            "--retry-period",
            "500ms",
        ]);
        assert!(cli.run.namespaces.is_empty(), "all namespaces");
        assert!(!cli.run.leader_elect);
        assert_eq!(cli.run.retry_period.get().as_millis(), 500);
    }
}
