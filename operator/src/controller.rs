//! The controller: for each ThesaDeployment, *dereference* (read the
//! selected definitions, specs, secrets and what is served now) →
//! *validate and build* ([`crate::plan`]) → *apply* (server-side apply,
//! one field manager, then remove children no longer wanted) → *status*
//! (on the ThesaDeployment and on each selected ThesaDefinition).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, reflector as reflect, watcher};
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};
use thesa_core::checksum::MANIFEST_FILE;
use thesa_core::finding::Severity;
use tokio::sync::watch;
use tracing::{Instrument, info, warn};

use crate::certs;
use crate::conditions::{self, reason};
use crate::crd::{
    DefinitionCounts, StatusFinding, ThesaDefinition, ThesaDefinitionStatus, ThesaDeployment,
    ThesaDeploymentStatus,
};
use crate::desired::{self, CHECKSUM_ANNOTATION, MANAGER, SOURCES_ANNOTATION};
use crate::gate::{ServedFile, Verdict};
use crate::leader::{Elector, LeaseSettings};
use crate::plan::{self, DefinitionInput, Plan, Snapshot};
use crate::selector;
use crate::telemetry::{self, Telemetry};
use crate::webhook::{self, Webhook};

/// Most findings kept in a ThesaDefinition's status.
const MAX_STATUS_FINDINGS: usize = 50;
/// How often a ThesaDeployment is looked at again without any event.
const RESYNC: Duration = Duration::from_secs(600);

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
}

/// Why a reconcile failed; it is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the Kubernetes API failed.
    #[error("{action}: {source}")]
    Api {
        /// What the controller was doing, naming the object.
        action: String,
        /// The API error.
        source: kube::Error,
    },
}

impl Error {
    pub(crate) fn api(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Self {
        let action = action.into();
        move |source| Self::Api { action, source }
    }
}

/// What every reconcile shares.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// ThesaDefinitions, as the watch sees them.
    pub definitions: Store<ThesaDefinition>,
    /// Registered SDK handler names.
    pub handlers: BTreeSet<String>,
    /// Publishes Kubernetes events.
    pub recorder: Recorder,
    /// Consecutive failures per ThesaDeployment, for backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// Metrics and probe state.
    pub telemetry: Arc<Telemetry>,
}

impl Context {
    /// A context over `client` and a definitions cache.
    pub fn new(
        client: Client,
        definitions: Store<ThesaDefinition>,
        handlers: BTreeSet<String>,
    ) -> Self {
        let reporter = Reporter {
            controller: MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            definitions,
            handlers,
            failures: Mutex::new(HashMap::new()),
            telemetry: Arc::default(),
        }
    }
}

/// `thesa-operator run`.
pub fn main(args: RunArgs) -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_env_filter(filter)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!(error = %err, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
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
    let telemetry = Arc::new(Telemetry::default());
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
    let owned =
        watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={MANAGER}"));
    let (definitions, writer) = reflector::store();
    let definition_events = reflect(
        writer,
        watcher(
            scoped::<ThesaDefinition>(client, ns),
            watcher::Config::default(),
        ),
    )
    .default_backoff()
    .touched_objects();
    let mut context = Context::new(client.clone(), definitions, handlers.clone());
    context.telemetry = telemetry.clone();
    let context = Arc::new(context);

    let controller = Controller::new(
        scoped::<ThesaDeployment>(client, ns),
        watcher::Config::default(),
    );
    let deployments = controller.store();
    let by_definition = deployments.clone();
    let by_config_map = deployments.clone();
    let by_secret = deployments.clone();
    let future = controller
        .owns(scoped::<ConfigMap>(client, ns), owned.clone())
        .owns(scoped::<Deployment>(client, ns), owned.clone())
        .owns(scoped::<Service>(client, ns), owned.clone())
        .owns(scoped::<ServiceAccount>(client, ns), owned.clone())
        .owns(scoped::<HorizontalPodAutoscaler>(client, ns), owned.clone())
        .owns(scoped::<PodDisruptionBudget>(client, ns), owned)
        .watches_stream(definition_events, move |tdef| {
            selecting(&by_definition.state(), &tdef)
        })
        .watches_stream(
            watcher(
                scoped::<PartialObjectMeta<ConfigMap>>(client, ns),
                watcher::Config::default(),
            )
            .default_backoff()
            .touched_objects(),
            move |cm| referencing(&by_config_map.state(), &cm, References::ConfigMap),
        )
        .watches_stream(
            watcher(
                scoped::<PartialObjectMeta<Secret>>(client, ns),
                watcher::Config::default(),
            )
            .default_backoff()
            .touched_objects(),
            move |secret| referencing(&by_secret.state(), &secret, References::Secret),
        )
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
    tdef: &ThesaDefinition,
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

fn secret_names(tdep: &ThesaDeployment) -> BTreeSet<&str> {
    let secrets = &tdep.spec.secrets;
    let keys = secrets.workflow_dsn.iter().chain(&secrets.redis_addr);
    keys.chain(secrets.service_tokens.values())
        .map(|s| s.name.as_str())
        .chain(secrets.env_from.iter().map(|r| r.name.as_str()))
        .collect()
}

/// Retries with exponential backoff: 5 s, 10 s, … up to 5 minutes.
pub fn error_policy(tdep: Arc<ThesaDeployment>, err: &Error, ctx: Arc<Context>) -> Action {
    let name = plan::full_name(tdep.as_ref());
    let failures = {
        let mut map = ctx.failures.lock().unwrap_or_else(|e| e.into_inner());
        let count = map.entry(name.clone()).or_insert(0);
        *count = count.saturating_add(1);
        *count
    };
    let delay = Duration::from_secs(5u64.saturating_mul(1 << failures.min(6).saturating_sub(1)));
    let delay = delay.min(Duration::from_secs(300));
    warn!(thesadeployment = %name, error = %err, retry_in_s = delay.as_secs(), "reconcile failed");
    Action::requeue(delay)
}

/// Brings one ThesaDeployment's children and statuses up to date.
///
/// # Errors
/// An [`Error`] when an API call fails; the caller retries.
pub async fn reconcile(tdep: Arc<ThesaDeployment>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = plan::full_name(tdep.as_ref());
    if tdep.meta().deletion_timestamp.is_some() {
        // Owner references let the garbage collector remove the children.
        ctx.telemetry.forget(&name);
        return Ok(Action::await_change());
    }
    // Every log line of the reconcile carries the object's name.
    let span = tracing::info_span!("reconcile", thesadeployment = %name);
    let started = std::time::Instant::now();
    let result = reconcile_inner(&tdep, &ctx).instrument(span).await;
    ctx.telemetry
        .reconciled(result.is_ok(), started.elapsed().as_secs_f64());
    if result.is_ok() {
        let mut map = ctx.failures.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&name);
    }
    result
}

async fn reconcile_inner(tdep: &ThesaDeployment, ctx: &Context) -> Result<Action, Error> {
    let namespace = tdep.namespace().unwrap_or_default();
    let (snapshot, mut problems) = dereference(tdep, ctx).await?;
    let plan = if problems.is_empty() {
        plan::plan(snapshot)
    } else {
        Plan::Blocked(Vec::new())
    };
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut counts = DefinitionCounts::default();
    let mut apply_error = None;
    match plan {
        Plan::Blocked(more) => {
            problems.extend(more);
            ctx.telemetry.definitions(&plan::full_name(tdep), 0, 0);
            warn!(problems = ?problems, "ThesaDeployment cannot be rolled out");
        }
        Plan::Ready { outcome, children } => {
            counts.accepted = count(&outcome.verdicts, true);
            counts.rejected = count(&outcome.verdicts, false);
            ctx.telemetry.definitions(
                &plan::full_name(tdep),
                i64::from(counts.accepted),
                i64::from(counts.rejected),
            );
            counts.checksum = Some(format!("sha256:{}", outcome.set_checksum));
            if !tdep.spec.paused {
                if let Err(err) = apply(ctx, &namespace, &children).await {
                    apply_error = Some(err.to_string());
                }
            }
            for verdict in &outcome.verdicts {
                definition_status(ctx, tdep, verdict).await?;
            }
            info!(
                accepted = counts.accepted,
                rejected = counts.rejected,
                checksum = %outcome.set_checksum,
                paused = tdep.spec.paused,
                "reconciled"
            );
        }
    }
    let deployment = deployments
        .get_opt(&tdep.name_any())
        .await
        .map_err(Error::api(format!(
            "reading Deployment {namespace}/{}",
            tdep.name_any()
        )))?;
    deployment_status(
        ctx,
        tdep,
        deployment.as_ref(),
        &problems,
        apply_error.as_deref(),
        counts,
    )
    .await?;
    match apply_error {
        Some(message) => Err(Error::Api {
            action: "applying the children".into(),
            source: kube::Error::Service(message.into()),
        }),
        None => Ok(Action::requeue(RESYNC)),
    }
}

fn count(verdicts: &[Verdict], accepted: bool) -> i32 {
    let n = verdicts.iter().filter(|v| v.accepted == accepted).count();
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Reads what the ThesaDeployment refers to. Missing references are
/// problems of the ThesaDeployment (returned), API failures are errors.
pub(crate) async fn dereference<'a>(
    tdep: &'a ThesaDeployment,
    ctx: &Context,
) -> Result<(Snapshot<'a>, Vec<String>), Error> {
    let namespace = tdep.namespace().unwrap_or_default();
    let mut problems = Vec::new();

    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut specs = BTreeMap::new();
    for source in &tdep.spec.specs {
        let field = format!("spec.specs[{}]", source.service_id);
        if let Some(text) = &source.inline {
            specs.insert(source.service_id.clone(), text.clone());
        } else if let Some(reference) = &source.config_map_key_ref {
            let cm = config_maps
                .get_opt(&reference.name)
                .await
                .map_err(Error::api(format!(
                    "reading ConfigMap {namespace}/{}",
                    reference.name
                )))?;
            match cm
                .as_ref()
                .and_then(|cm| cm.data.as_ref()?.get(&reference.key))
            {
                Some(text) => {
                    specs.insert(source.service_id.clone(), text.clone());
                }
                None if cm.is_none() => problems.push(format!(
                    "{field}: ConfigMap {:?} not found in namespace {namespace}",
                    reference.name
                )),
                None => problems.push(format!(
                    "{field}: ConfigMap {:?} has no key {:?}",
                    reference.name, reference.key
                )),
            }
        }
    }

    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut secret_versions = Vec::new();
    for name in secret_names(tdep) {
        let secret = secrets
            .get_metadata_opt(name)
            .await
            .map_err(Error::api(format!("reading Secret {namespace}/{name}")))?;
        match secret {
            Some(secret) => secret_versions.push(format!(
                "{name}={}",
                secret.metadata.resource_version.unwrap_or_default()
            )),
            None => problems.push(format!(
                "spec.secrets: Secret {name:?} not found in namespace {namespace}"
            )),
        }
    }

    let previous = served_now(&config_maps, tdep).await?;
    let namespaces = match &tdep.spec.definitions.namespace_selector {
        None => BTreeSet::from([namespace.clone()]),
        Some(selector) => {
            let all = Api::<Namespace>::all(ctx.client.clone())
                .list_metadata(&ListParams::default())
                .await
                .map_err(Error::api("listing namespaces"))?;
            all.items
                .iter()
                .filter(|ns| selector::matches(Some(selector), ns.labels()))
                .map(|ns| ns.name_any())
                .collect()
        }
    };
    let selector = tdep.spec.definitions.selector.as_ref();
    let mut selected: Vec<Arc<ThesaDefinition>> = ctx
        .definitions
        .state()
        .into_iter()
        .filter(|d| d.meta().deletion_timestamp.is_none())
        .filter(|d| namespaces.contains(&d.namespace().unwrap_or_default()))
        .filter(|d| selector::matches(selector, d.labels()))
        .collect();
    selected.sort_by_key(|d| plan::full_name(d.as_ref()));
    let definitions = selected
        .iter()
        .map(|d| {
            let name = plan::full_name(d.as_ref());
            DefinitionInput {
                source: name.clone(),
                name,
                generation: d.meta().generation,
                spec: Value::Object(d.spec.document.clone()),
                node: None,
            }
        })
        .collect();
    let snapshot = Snapshot {
        deployment: tdep,
        definitions,
        specs,
        previous,
        secret_versions,
        handlers: ctx.handlers.clone(),
    };
    Ok((snapshot, problems))
}

/// The definition files the deployment's definitions ConfigMaps hold now,
/// with the ThesaDefinition each came from.
async fn served_now(
    config_maps: &Api<ConfigMap>,
    tdep: &ThesaDeployment,
) -> Result<Vec<ServedFile>, Error> {
    let name = tdep.name_any();
    let prefix = format!("{name}-definitions");
    let list = config_maps
        .list(&ListParams::default().labels(&desired::children_selector(&name)))
        .await
        .map_err(Error::api(format!("listing the ConfigMaps of {name}")))?;
    let mut files = Vec::new();
    for cm in list
        .items
        .iter()
        .filter(|cm| cm.name_any().starts_with(&prefix))
    {
        let sources: BTreeMap<String, String> = cm
            .annotations()
            .get(SOURCES_ANNOTATION)
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default();
        for (key, text) in cm.data.iter().flatten() {
            if key == MANIFEST_FILE {
                continue;
            }
            files.push(ServedFile {
                key: key.clone(),
                text: text.clone(),
                owner: sources.get(key).cloned().unwrap_or_default(),
            });
        }
    }
    Ok(files)
}

/// Applies every child (server-side apply, forced: the operator owns these
/// fields), then deletes the children it no longer wants (definition and
/// spec shards that went away, the HPA when autoscaling was turned off).
async fn apply(ctx: &Context, namespace: &str, children: &desired::Children) -> Result<(), Error> {
    let params = PatchParams::apply(MANAGER).force();
    let mut wanted: BTreeSet<(String, String)> = BTreeSet::new();
    for object in children.all() {
        let (api, kind, name) = dynamic_api(ctx, namespace, object);
        wanted.insert((kind.clone(), name.clone()));
        let live = api
            .patch(&name, &params, &Patch::Apply(object))
            .await
            .map_err(Error::api(format!("applying {kind} {namespace}/{name}")))?;
        if kind == "ConfigMap" {
            remove_foreign_keys(&api, &name, object, &live.data).await?;
        }
    }
    let Some(owner) = children.all().next().and_then(instance_label) else {
        return Ok(());
    };
    let lp = ListParams::default().labels(&desired::children_selector(&owner));
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), namespace);
    delete_unwanted(&config_maps, &lp, &wanted).await?;
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(ctx.client.clone(), namespace);
    delete_unwanted(&hpas, &lp, &wanted).await
}

/// Deletes the objects of `api` that `lp` selects and `wanted` (kind, name)
/// does not list: shards that went away, the HPA after autoscaling was
/// turned off.
async fn delete_unwanted<K>(
    api: &Api<K>,
    lp: &ListParams,
    wanted: &BTreeSet<(String, String)>,
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let kind = K::kind(&()).to_string();
    let listed = api
        .list_metadata(lp)
        .await
        .map_err(Error::api(format!("listing {kind}s")))?;
    for object in listed.items {
        let name = object.name_any();
        if !wanted.contains(&(kind.clone(), name.clone())) {
            info!(kind = %kind, name = %name, "deleting a child no longer wanted");
            api.delete(&name, &DeleteParams::default())
                .await
                .map_err(Error::api(format!("deleting {kind} {name}")))?;
        }
    }
    Ok(())
}

/// Server-side apply leaves keys that another field manager added to a
/// ConfigMap; in the definitions ConfigMap such a key would be a definition
/// that never passed the gate. The operator's ConfigMaps hold exactly
/// what it applied.
async fn remove_foreign_keys(
    api: &Api<DynamicObject>,
    name: &str,
    desired: &Value,
    live: &Value,
) -> Result<(), Error> {
    let wanted = desired.get("data").and_then(Value::as_object);
    let mut removals = serde_json::Map::new();
    for field in ["data", "binaryData"] {
        let extra: serde_json::Map<String, Value> = live
            .get(field)
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter(|(key, _)| {
                field == "binaryData" || !wanted.is_some_and(|w| w.contains_key(*key))
            })
            .map(|(key, _)| (key.clone(), Value::Null))
            .collect();
        if !extra.is_empty() {
            removals.insert(field.to_string(), Value::Object(extra));
        }
    }
    if removals.is_empty() {
        return Ok(());
    }
    warn!(configmap = %name, removed = ?removals, "removing keys the operator did not write");
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(Value::Object(removals)),
    )
    .await
    .map_err(Error::api(format!(
        "removing foreign keys from ConfigMap {name}"
    )))?;
    Ok(())
}

fn instance_label(object: &Value) -> Option<String> {
    let labels = object.pointer("/metadata/labels")?;
    Some(
        labels
            .get("app.kubernetes.io/instance")?
            .as_str()?
            .to_string(),
    )
}

fn dynamic_api(
    ctx: &Context,
    namespace: &str,
    object: &Value,
) -> (Api<DynamicObject>, String, String) {
    let text = |pointer: &str| {
        object
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let api_version = text("/apiVersion");
    let kind = text("/kind");
    let (group, version) = api_version.split_once('/').unwrap_or(("", &api_version));
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, &kind));
    let api = Api::namespaced_with(ctx.client.clone(), namespace, &resource);
    (api, kind, text("/metadata/name"))
}

/// Writes the verdict of `tdep` into the definition's status, keeping what
/// other ThesaDeployments concluded about the same generation.
async fn definition_status(
    ctx: &Context,
    tdep: &ThesaDeployment,
    verdict: &Verdict,
) -> Result<(), Error> {
    let Some((namespace, name)) = verdict.name.split_once('/') else {
        return Ok(());
    };
    let key = ObjectRef::<ThesaDefinition>::new(name).within(namespace);
    let Some(tdef) = ctx.definitions.get(&key) else {
        return Ok(());
    };
    let deployment = plan::full_name(tdep);
    let old = tdef.status.clone().unwrap_or_default();
    let status = merged_definition_status(&old, &deployment, verdict);
    if status == old {
        return Ok(());
    }
    let api: Api<ThesaDefinition> = Api::namespaced(ctx.client.clone(), namespace);
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await
    .map_err(Error::api(format!(
        "updating the status of ThesaDefinition {}",
        verdict.name
    )))?;
    let was_rejected = old.observed_generation == verdict.generation
        && old
            .conditions
            .iter()
            .any(|c| c.type_ == conditions::ACCEPTED && c.status == "False");
    if !verdict.accepted && !was_rejected {
        let errors = verdict
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Error);
        let first = errors
            .clone()
            .next()
            .map(ToString::to_string)
            .unwrap_or_default();
        let note = format!(
            "generation {} rejected by ThesaDeployment {deployment} ({} errors); first: {first}",
            verdict.generation.unwrap_or_default(),
            errors.count()
        );
        let event = Event {
            type_: EventType::Warning,
            reason: "DefinitionRejected".into(),
            note: Some(truncate(note, 1000)),
            action: "Validate".into(),
            secondary: None,
        };
        if let Err(err) = ctx.recorder.publish(&event, &tdef.object_ref(&())).await {
            warn!(error = %err, thesadefinition = %verdict.name, "could not record an event");
        }
    }
    Ok(())
}

/// The status a ThesaDefinition gets from one deployment's verdict.
pub fn merged_definition_status(
    old: &ThesaDefinitionStatus,
    deployment: &str,
    verdict: &Verdict,
) -> ThesaDefinitionStatus {
    let same_generation = old.observed_generation == verdict.generation;
    let mut findings: Vec<StatusFinding> = old
        .findings
        .iter()
        .filter(|f| same_generation && f.deployment.as_deref() != Some(deployment))
        .cloned()
        .collect();
    findings.extend(verdict.findings.iter().map(|f| StatusFinding {
        code: f.code.as_str().to_string(),
        severity: f.severity.to_string(),
        path: f.path.clone(),
        message: f.message.clone(),
        deployment: Some(deployment.to_string()),
    }));
    findings.truncate(MAX_STATUS_FINDINGS);
    let errors: Vec<StatusFinding> = findings
        .iter()
        .filter(|f| f.severity == "error")
        .cloned()
        .collect();
    let accepted = verdict.accepted
        && errors
            .iter()
            .all(|f| f.deployment.as_deref() == Some(deployment));
    let mut status = ThesaDefinitionStatus {
        observed_generation: verdict.generation,
        checksum: verdict.checksum.map(|c| format!("sha256:{c}")),
        conditions: old.conditions.clone(),
        findings,
        accepted_generation: old.accepted_generation,
        accepted_checksum: old.accepted_checksum.clone(),
    };
    if accepted {
        status.accepted_generation = verdict.generation;
        status.accepted_checksum = status.checksum.clone();
        conditions::set(
            &mut status.conditions,
            conditions::ACCEPTED,
            true,
            reason::VALID,
            format!("passed validation against the specs of ThesaDeployment {deployment}"),
            verdict.generation,
        );
    } else {
        let served = match (verdict.kept_previous, status.accepted_generation) {
            (true, Some(generation)) => format!("generation {generation} keeps being served"),
            (true, None) => "the revision served before keeps being served".to_string(),
            (false, _) => "its domain is left out until a valid revision is applied".to_string(),
        };
        let reason = if verdict
            .findings
            .iter()
            .any(|f| f.severity == Severity::Error)
        {
            reason::INVALID
        } else {
            reason::DEPENDENCY_REJECTED
        };
        let first = errors
            .first()
            .map(|f| format!("; first: {}[{}] {}", f.path, f.code, f.message))
            .unwrap_or_default();
        conditions::set(
            &mut status.conditions,
            conditions::ACCEPTED,
            false,
            reason,
            truncate(
                format!("{} errors{first}; {served}", errors.len().max(1)),
                1000,
            ),
            verdict.generation,
        );
    }
    status
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

async fn deployment_status(
    ctx: &Context,
    tdep: &ThesaDeployment,
    deployment: Option<&Deployment>,
    problems: &[String],
    apply_error: Option<&str>,
    counts: DefinitionCounts,
) -> Result<(), Error> {
    let old = tdep.status.clone().unwrap_or_default();
    let status = deployment_status_of(tdep, &old, deployment, problems, apply_error, counts);
    // `conditions::set` keeps transition times of unchanged conditions, so
    // equal means nothing to write.
    if status == old {
        return Ok(());
    }
    let name = tdep.name_any();
    let api: Api<ThesaDeployment> =
        Api::namespaced(ctx.client.clone(), &tdep.namespace().unwrap_or_default());
    api.patch_status(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await
    .map_err(Error::api(format!(
        "updating the status of ThesaDeployment {name}"
    )))?;
    Ok(())
}

/// The ThesaDeployment's status from what happened and what its
/// Deployment reports.
pub fn deployment_status_of(
    tdep: &ThesaDeployment,
    old: &ThesaDeploymentStatus,
    deployment: Option<&Deployment>,
    problems: &[String],
    apply_error: Option<&str>,
    counts: DefinitionCounts,
) -> ThesaDeploymentStatus {
    let generation = tdep.meta().generation;
    let empty = DeploymentStatus::default();
    let live = deployment.and_then(|d| d.status.as_ref()).unwrap_or(&empty);
    let wanted = deployment
        .and_then(|d| d.spec.as_ref()?.replicas)
        .unwrap_or(0);
    let current = deployment.is_some_and(|d| live.observed_generation >= d.meta().generation);
    let replicas = live.replicas.unwrap_or(0);
    let ready = live.ready_replicas.unwrap_or(0);
    let updated = live.updated_replicas.unwrap_or(0);
    let rolled_out = current && updated >= wanted && replicas == updated;
    let failed_condition = live.conditions.iter().flatten().find(|c| {
        (c.type_ == "ReplicaFailure" && c.status == "True")
            || (c.type_ == "Progressing" && c.status == "False")
    });

    let mut conditions_list = old.conditions.clone();
    let set = |list: &mut Vec<_>, type_: &str, ok: bool, reason: &str, message: String| {
        conditions::set(list, type_, ok, reason, message, generation);
    };
    let blocked = !problems.is_empty();
    if !blocked {
        let (ok, why, message) = if counts.rejected == 0 {
            (
                true,
                reason::ALL_ACCEPTED,
                format!("{} definitions accepted", counts.accepted),
            )
        } else {
            (
                false,
                reason::SOME_REJECTED,
                format!(
                    "{} of {} selected definitions rejected (see `kubectl get tdef`); the last accepted revisions keep being served",
                    counts.rejected,
                    counts.accepted + counts.rejected
                ),
            )
        };
        set(
            &mut conditions_list,
            conditions::DEFINITIONS_VALID,
            ok,
            why,
            message,
        );
    }
    let degraded = if blocked {
        Some((reason::INVALID_SPEC, truncate(problems.join("; "), 1000)))
    } else if let Some(error) = apply_error {
        Some((reason::APPLY_FAILED, truncate(error.to_string(), 1000)))
    } else {
        failed_condition.map(|c| {
            (
                reason::DEPLOYMENT_FAILED,
                format!(
                    "{}: {}",
                    c.reason.clone().unwrap_or_default(),
                    c.message.clone().unwrap_or_default()
                ),
            )
        })
    };
    match &degraded {
        Some((why, message)) => set(
            &mut conditions_list,
            conditions::DEGRADED,
            true,
            why,
            message.clone(),
        ),
        None => set(
            &mut conditions_list,
            conditions::DEGRADED,
            false,
            reason::AS_EXPECTED,
            String::new(),
        ),
    }
    let (progressing, why, message) = if tdep.spec.paused {
        (
            false,
            reason::PAUSED,
            "spec.paused is set: changes are not rolled out".to_string(),
        )
    } else if rolled_out {
        (
            false,
            reason::COMPLETE,
            format!("{updated} pods run the current template"),
        )
    } else {
        (
            true,
            reason::ROLLING_OUT,
            format!("{updated} of {wanted} pods updated"),
        )
    };
    set(
        &mut conditions_list,
        conditions::PROGRESSING,
        progressing,
        why,
        message,
    );
    let is_ready = degraded.is_none() && rolled_out && wanted > 0 && ready >= wanted;
    let (why, message) = if is_ready {
        (reason::PODS_READY, format!("{ready}/{wanted} pods ready"))
    } else {
        (
            reason::PODS_NOT_READY,
            format!("{ready}/{wanted} pods ready"),
        )
    };
    set(
        &mut conditions_list,
        conditions::READY,
        is_ready,
        why,
        message,
    );

    let selector = desired::selector_labels(&tdep.name_any())
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    ThesaDeploymentStatus {
        observed_generation: generation,
        conditions: conditions_list,
        replicas,
        ready_replicas: ready,
        updated_replicas: updated,
        selector: Some(selector),
        definitions: if blocked {
            old.definitions.clone()
        } else {
            counts
        },
        image: Some(tdep.spec.image.clone()),
    }
}

/// The checksum annotation of a Deployment's pod template, if any.
pub fn rollout_checksum(deployment: &Deployment) -> Option<&str> {
    deployment
        .spec
        .as_ref()?
        .template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get(CHECKSUM_ANNOTATION)
        .map(String::as_str)
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
