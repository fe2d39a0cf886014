//! Performs workflow changes against the store and the backends: starting
//! an instance, applying a person's event, and running automatic steps.
//!
//! Every change is one optimistic update (`WHERE version = <read>`) with
//! its history entry. An automatic step's operation is called only after
//! the transition into the step was stored, so of two replicas racing on
//! one instance only the winner calls the backend.

use axum::http::StatusCode;
use serde_json::{Map, Value, json};
use thesa_core::model::{OperationType, Step, Workflow};
use time::OffsetDateTime;

use super::store::{StoreError, Updated};
use super::{Instance, Status, automatic_next, end, leaving, transition, waits};
use crate::access::Caller;
use crate::backends::invoker::{CallContext, Invoker};
use crate::error::ApiError;
use crate::features::commands::{self, CommandRequest, Sources};
use crate::features::data::{get_path, set_path};
use crate::metrics::{StepLabel, WorkflowLabel};
use crate::state::AppState;

/// The store failed: workflows are unavailable, the rest of the BFF works.
pub fn store_error(err: StoreError) -> ApiError {
    tracing::error!(error = %err, "workflow store failed");
    ApiError::unavailable(
        "WORKFLOW_STORE_UNAVAILABLE",
        "the workflow store does not answer; retry later",
    )
}

/// Who causes a change: a caller (with the context for backend calls) or
/// the BFF itself (timeouts).
pub struct Actor<'a> {
    /// The caller, for `context.*` expressions; a system actor has none.
    pub caller: Option<&'a Caller>,
    /// Carried to backends.
    pub context: CallContext,
}

impl Actor<'_> {
    fn name(&self) -> &str {
        self.caller
            .map_or(super::SYSTEM, |c| c.principal.subject.as_str())
    }
}

/// Counts the step left and, when the instance ended, its outcome.
pub(super) fn observe(state: &AppState, before: &Instance, after: &Instance, now: OffsetDateTime) {
    let seconds = (now - before.step_entered_at).as_seconds_f64().max(0.0);
    state
        .metrics
        .workflow_step_duration
        .get_or_create(&StepLabel {
            workflow_id: before.workflow_id.clone(),
            step: before.step.clone(),
        })
        .observe(seconds);
    let label = WorkflowLabel {
        workflow_id: after.workflow_id.clone(),
    };
    if after.status == Status::Completed {
        state.metrics.workflow_completed.get_or_create(&label).inc();
    }
}

/// Stores a change made to `before`; a conflict is 409.
pub async fn apply(
    state: &AppState,
    before: &Instance,
    (after, entry): (Instance, super::HistoryEntry),
) -> Result<Instance, ApiError> {
    let now = entry.at;
    match state
        .workflows
        .update(&after, before.version, std::slice::from_ref(&entry))
        .await
        .map_err(store_error)?
    {
        Updated::Applied => {
            observe(state, before, &after, now);
            Ok(after)
        }
        Updated::Conflict => Err(ApiError::new(
            StatusCode::CONFLICT,
            "WORKFLOW_CONFLICT",
            "the instance was changed by someone else; reload it and try again",
        )),
    }
}

/// Starts `workflow` for the caller with `input`, runs its automatic
/// steps, and returns the instance.
pub async fn start(
    state: &AppState,
    workflow: &Workflow,
    actor: &Actor<'_>,
    tenant: &str,
    partition: &str,
    input: Map<String, Value>,
) -> Result<Instance, ApiError> {
    let now = OffsetDateTime::now_utc();
    let (instance, entry) = super::start(workflow, tenant, partition, actor.name(), input, now);
    state
        .workflows
        .insert(&instance, std::slice::from_ref(&entry))
        .await
        .map_err(store_error)?;
    let label = WorkflowLabel {
        workflow_id: workflow.id.clone(),
    };
    state.metrics.workflow_started.get_or_create(&label).inc();
    if instance.status == Status::Completed {
        state.metrics.workflow_completed.get_or_create(&label).inc();
    }
    Ok(advance(state, workflow, instance, actor).await)
}

/// Most automatic steps one `advance` runs: a loop of automatic steps
/// (a retry transition back to itself) ends the instance as `failed`.
const MAX_AUTOMATIC_STEPS: usize = 50;

/// Runs automatic steps from where `instance` is until it waits for a
/// person or ends. What was stored stays stored: a store failure or a
/// conflict stops the run (logged) and the instance as last stored is
/// returned, so a caller never retries a change that happened.
pub async fn advance(
    state: &AppState,
    workflow: &Workflow,
    mut instance: Instance,
    actor: &Actor<'_>,
) -> Instance {
    let mut steps = 0;
    while instance.status == Status::Active {
        if steps == MAX_AUTOMATIC_STEPS {
            let now = OffsetDateTime::now_utc();
            let change = end(
                &instance,
                Status::Failed,
                "too_many_automatic_steps",
                super::SYSTEM,
                now,
            );
            match apply(state, &instance, change).await {
                Ok(ended) => instance = ended,
                Err(err) => {
                    tracing::warn!(error = %err.message, "workflow: could not end a looping instance")
                }
            }
            break;
        }
        steps += 1;
        let Some(step) = super::step(workflow, &instance.step) else {
            break;
        };
        if waits(step) {
            break;
        }
        let outcome = run_step(state, step, &instance, actor).await;
        let mut current = instance.clone();
        let succeeded = match outcome {
            Ok(output) => {
                for (key, value) in output {
                    current.state.insert(key, value);
                }
                true
            }
            Err(err) => {
                tracing::warn!(
                    workflow = workflow.id,
                    step = step.id,
                    instance = %instance.id,
                    error = %err,
                    "workflow step failed"
                );
                false
            }
        };
        let now = OffsetDateTime::now_utc();
        let change = match automatic_next(workflow, &step.id, succeeded) {
            Some(t) => {
                let event = t.event.clone();
                transition(workflow, &current, &t.to, &event, super::SYSTEM, now)
            }
            None if succeeded => end(
                &current,
                Status::Failed,
                "no_transition",
                super::SYSTEM,
                now,
            ),
            None => end(&current, Status::Failed, "failed", super::SYSTEM, now),
        };
        match apply(state, &instance, change).await {
            Ok(next) => instance = next,
            Err(err) => {
                tracing::warn!(
                    instance = %instance.id,
                    error = %err.message,
                    "workflow: an automatic step's result could not be stored; it stays where it is"
                );
                break;
            }
        }
    }
    instance
}

/// Calls a system or notification step's operation with the body its
/// `input` mapping builds from the state; the answer's fields named by
/// `output.fields` (state field → response field) go into the state. A
/// step without an operation succeeds at once.
async fn run_step(
    state: &AppState,
    step: &Step,
    instance: &Instance,
    actor: &Actor<'_>,
) -> Result<Map<String, Value>, String> {
    use tracing::Instrument;
    let span = tracing::info_span!(
        "workflow step",
        otel.name = %format!("workflow step {}", step.id),
        workflow_instance = %instance.id,
        step = %step.id,
    );
    run_step_in_span(state, step, instance, actor)
        .instrument(span)
        .await
}

async fn run_step_in_span(
    state: &AppState,
    step: &Step,
    instance: &Instance,
    actor: &Actor<'_>,
) -> Result<Map<String, Value>, String> {
    let Some(binding) = &step.operation else {
        return Ok(Map::new());
    };
    let request = CommandRequest {
        input: instance.state.clone(),
        route_params: Map::new(),
    };
    let system = system_caller(instance);
    let sources = Sources {
        request: &request,
        caller: actor.caller.unwrap_or(&system),
        workflow: Some(&instance.state),
    };
    let input = step.input.as_ref();
    let response = match (binding.kind, &binding.handler) {
        (OperationType::Sdk, Some(handler)) => {
            let body = commands::body(input, &sources);
            state
                .handlers
                .call(handler, &body, &actor.context, &state.invoker)
                .await
                .ok_or_else(|| format!("SDK handler {handler:?} is not registered"))?
                .map_err(|e| e.to_string())?
        }
        _ => {
            let (service, operation) = Invoker::resolve(
                &state.index,
                binding.operation_id.as_deref().unwrap_or_default(),
                binding.service_id.as_deref(),
            )
            .map_err(|e| e.to_string())?;
            let params = commands::params(input, &sources).map_err(|e| e.message.clone())?;
            let body = operation
                .request_body
                .is_some()
                .then(|| commands::body(input, &sources));
            state
                .invoker
                .call(service, operation, &params, body.as_ref(), &actor.context)
                .await
                .map_err(|e| e.to_string())?
        }
    };
    let mut output = Map::new();
    for (field, path) in step.output.iter().flat_map(|o| &o.fields) {
        if let Some(value) = get_path(&response, path) {
            set_path(&mut output, field, value.clone());
        }
    }
    Ok(output)
}

/// The caller of steps the BFF runs by itself: the instance's tenant and
/// partition, no roles, no capabilities.
fn system_caller(instance: &Instance) -> Caller {
    Caller {
        principal: crate::access::auth::Principal {
            subject: super::SYSTEM.into(),
            tenant: instance.tenant.clone(),
            email: None,
            roles: Vec::new(),
            partitions: Vec::new(),
        },
        partition: Some(instance.partition.clone()).filter(|p| !p.is_empty()),
        capabilities: Default::default(),
    }
}

/// Applies a person's `event` to `instance` with `input`: the step must
/// wait for people, the caller must hold its capabilities and be its
/// assignee, the event must leave the step (409 lists the allowed ones),
/// and the input must satisfy the step's form.
pub async fn event(
    state: &AppState,
    workflow: &Workflow,
    instance: Instance,
    caller: &Caller,
    actor: &Actor<'_>,
    event: &str,
    input: Map<String, Value>,
) -> Result<Instance, ApiError> {
    if instance.status != Status::Active {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "WORKFLOW_ENDED",
            format!("the instance is {}", instance.status.as_str()),
        ));
    }
    let step = super::step(workflow, &instance.step).filter(|s| waits(s));
    let allowed = allowed_events(workflow, &instance, caller);
    let Some(step) = step else {
        return Err(invalid_event(event, &allowed));
    };
    if !may_act(step, &instance, caller) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "NOT_ASSIGNEE",
            "this step is for someone else (its capabilities or assignee)",
        ));
    }
    // `timeout` is the timeout processor's event, never a person's.
    let Some(to) = leaving(workflow, &step.id)
        .filter(|_| event != "timeout")
        .find(|t| t.event == event && guard_allows(t.guard.as_deref(), caller))
        .map(|t| t.to.clone())
    else {
        return Err(invalid_event(event, &allowed));
    };
    let form = step
        .form_id
        .as_deref()
        .and_then(|id| state.registry.load().form(id).map(|(_, f)| f.clone()));
    if let Some(form) = &form {
        commands::validate(form, &input)?;
    }
    let mut current = instance.clone();
    for (key, value) in input {
        // With a form, only its fields enter the state (an actor cannot
        // set, say, the next step's assignee).
        let declared = form.as_ref().is_none_or(|f| {
            f.sections
                .iter()
                .flat_map(|s| &s.fields)
                .any(|field| field.field == key || field.field.starts_with(&format!("{key}.")))
        });
        if declared {
            current.state.insert(key, value);
        }
    }
    let now = OffsetDateTime::now_utc();
    let change = transition(workflow, &current, &to, event, actor.name(), now);
    let moved = apply(state, &instance, change).await?;
    Ok(advance(state, workflow, moved, actor).await)
}

fn invalid_event(event: &str, allowed: &[String]) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "INVALID_EVENT",
        format!(
            "event {event:?} is not allowed at this step; allowed: {}",
            if allowed.is_empty() {
                "none".to_string()
            } else {
                allowed.join(", ")
            }
        ),
    )
    .with_details(json!({ "allowed_events": allowed }))
}

/// Whether the caller holds the step's capabilities and is its assignee.
fn may_act(step: &Step, instance: &Instance, caller: &Caller) -> bool {
    caller.capabilities.has_all(&step.capabilities)
        && super::is_assignee(
            instance.assignee.as_deref(),
            &caller.principal.subject,
            &caller.principal.roles,
        )
}

fn guard_allows(guard: Option<&str>, caller: &Caller) -> bool {
    guard.is_none_or(|capability| caller.capabilities.has(capability))
}

/// The events the caller may send to `instance` now.
pub fn allowed_events(workflow: &Workflow, instance: &Instance, caller: &Caller) -> Vec<String> {
    let Some(step) = super::step(workflow, &instance.step)
        .filter(|s| instance.status == Status::Active && waits(s))
        .filter(|s| may_act(s, instance, caller))
    else {
        return Vec::new();
    };
    let mut events: Vec<String> = leaving(workflow, &step.id)
        .filter(|t| t.event != "timeout" && guard_allows(t.guard.as_deref(), caller))
        .map(|t| t.event.clone())
        .collect();
    events.dedup();
    events
}
