//! The workflow engine: instances of the definitions' `workflows` move from
//! step to step on events. Human steps (`human`, `action`, `approval`,
//! `wait`) wait for an event from a caller with the step's capabilities
//! (and its assignee, when set); `system` and `notification` steps run their
//! operation and fire `completed` (or `failed`); terminal steps end the
//! instance. Step and workflow timeouts are fired by the timeout processor
//! (`processor`). Instances are kept in a `store::Store`.
//!
//! This module is the pure part: what a transition, a timeout or a start
//! does to an instance. `run` performs them against the store and the
//! backends; the endpoints in `http::workflows` serve them.

pub mod processor;
pub mod run;
pub mod store;

use serde::Serialize;
use serde_json::{Map, Value};
use thesa_core::model::{Step, StepType, Transition, Workflow};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::features::data::{get_in, text};

/// Where an instance is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting at or running a step.
    Active,
    /// Reached a terminal step.
    Completed,
    /// A system step failed and no transition handles the failure.
    Failed,
    /// A timeout fired and no step handles it.
    TimedOut,
}

impl Status {
    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::TimedOut => "timed_out",
        }
    }

    /// The status of a stored or queried name.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Active, Self::Completed, Self::Failed, Self::TimedOut]
            .into_iter()
            .find(|s| s.as_str() == name)
    }
}

/// One run of a workflow.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Instance {
    /// Instance ID.
    pub id: Uuid,
    /// Owning tenant; every query filters by it.
    #[serde(skip)]
    pub tenant: String,
    /// Owning partition (empty when the caller had none).
    #[serde(skip)]
    pub partition: String,
    /// The workflow's ID.
    pub workflow_id: String,
    /// The current step's ID.
    pub step: String,
    /// Life-cycle status.
    pub status: Status,
    /// Data gathered so far: the start input, each event's input and the
    /// mapped outputs of system steps (`workflow.<field>` in mappings).
    pub state: Map<String, Value>,
    /// Who acts on the current step (`role:x`, `user:y`, `group:z`).
    pub assignee: Option<String>,
    /// Subject that started it.
    pub started_by: String,
    /// When the current step was entered.
    #[serde(with = "time::serde::rfc3339")]
    pub step_entered_at: OffsetDateTime,
    /// When the current step times out.
    #[serde(with = "time::serde::rfc3339::option")]
    pub step_due_at: Option<OffsetDateTime>,
    /// When the whole workflow times out.
    #[serde(with = "time::serde::rfc3339::option")]
    pub due_at: Option<OffsetDateTime>,
    /// Created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Optimistic-locking version; each change adds one.
    pub version: i64,
}

impl Instance {
    /// The earlier of the step and workflow deadlines.
    pub fn next_due(&self) -> Option<OffsetDateTime> {
        match (self.step_due_at, self.due_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// One transition in an instance's history (append-only).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryEntry {
    /// The instance version it produced.
    pub seq: i64,
    /// The step left (`None` for the start).
    pub from_step: Option<String>,
    /// The step entered (the same step when the instance ended there).
    pub to_step: String,
    /// `start`, the event's name, `timeout`, `completed`, `failed`, ….
    pub event: String,
    /// Subject ID of the person, or `system`.
    pub actor: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// The actor of transitions the BFF makes itself.
pub const SYSTEM: &str = "system";

/// Whether a step waits for a person's event.
pub fn waits(step: &Step) -> bool {
    matches!(
        step.kind,
        StepType::Human | StepType::Action | StepType::Approval | StepType::Wait
    )
}

/// The step `id` of `workflow`.
pub fn step<'a>(workflow: &'a Workflow, id: &str) -> Option<&'a Step> {
    workflow.steps.iter().find(|s| s.id == id)
}

/// The transitions leaving `step`.
pub fn leaving<'a>(workflow: &'a Workflow, step: &'a str) -> impl Iterator<Item = &'a Transition> {
    workflow.transitions.iter().filter(move |t| t.from == step)
}

/// A new instance at `initial_step`, and its first history entry.
pub fn start(
    workflow: &Workflow,
    tenant: &str,
    partition: &str,
    actor: &str,
    input: Map<String, Value>,
    now: OffsetDateTime,
) -> (Instance, HistoryEntry) {
    let due_at = workflow.timeout.map(|t| now + t.get());
    let mut instance = Instance {
        id: Uuid::new_v4(),
        tenant: tenant.to_string(),
        partition: partition.to_string(),
        workflow_id: workflow.id.clone(),
        step: String::new(),
        status: Status::Active,
        state: input,
        assignee: None,
        started_by: actor.to_string(),
        step_entered_at: now,
        step_due_at: None,
        due_at,
        created_at: now,
        updated_at: now,
        version: 0,
    };
    enter(workflow, &mut instance, &workflow.initial_step, now);
    let entry = HistoryEntry {
        seq: instance.version,
        from_step: None,
        to_step: instance.step.clone(),
        event: "start".into(),
        actor: actor.to_string(),
        at: now,
    };
    (instance, entry)
}

/// The instance after moving to `to` on `event`, and the history entry.
pub fn transition(
    workflow: &Workflow,
    instance: &Instance,
    to: &str,
    event: &str,
    actor: &str,
    now: OffsetDateTime,
) -> (Instance, HistoryEntry) {
    let mut next = instance.clone();
    enter(workflow, &mut next, to, now);
    let entry = HistoryEntry {
        seq: next.version,
        from_step: Some(instance.step.clone()),
        to_step: to.to_string(),
        event: event.to_string(),
        actor: actor.to_string(),
        at: now,
    };
    (next, entry)
}

/// The instance ended where it is with `status`, and the history entry.
pub fn end(
    instance: &Instance,
    status: Status,
    event: &str,
    actor: &str,
    now: OffsetDateTime,
) -> (Instance, HistoryEntry) {
    let mut next = instance.clone();
    next.status = status;
    next.step_due_at = None;
    next.due_at = None;
    next.updated_at = now;
    next.version += 1;
    let entry = HistoryEntry {
        seq: next.version,
        from_step: Some(instance.step.clone()),
        to_step: instance.step.clone(),
        event: event.to_string(),
        actor: actor.to_string(),
        at: now,
    };
    (next, entry)
}

/// Puts `instance` at step `id`: deadline, assignee, status.
fn enter(workflow: &Workflow, instance: &mut Instance, id: &str, now: OffsetDateTime) {
    let step = step(workflow, id);
    instance.step = id.to_string();
    instance.step_entered_at = now;
    instance.updated_at = now;
    instance.version += 1;
    instance.step_due_at = step.and_then(|s| s.timeout).map(|t| now + t.get());
    instance.assignee = step.and_then(|s| assignee(s, &instance.state));
    if step.is_none_or(|s| s.kind == StepType::Terminal) {
        instance.status = Status::Completed;
        instance.step_due_at = None;
        instance.due_at = None;
    }
}

/// The assignee of `step`: `role:x`, `user:y`, `group:z`; `dynamic` reads
/// a user ID from the state (`workflow.manager_id`).
fn assignee(step: &Step, state: &Map<String, Value>) -> Option<String> {
    let a = step.assignee.as_ref()?;
    match a.kind.as_str() {
        "dynamic" => {
            let path = a.value.trim();
            let path = path.strip_prefix("workflow.").unwrap_or(path);
            // Unresolved: nobody may act (not anybody).
            Some(
                get_in(state, path)
                    .map(|v| format!("user:{}", text(v)))
                    .unwrap_or_else(|| format!("unresolved:{path}")),
            )
        }
        kind => Some(format!("{kind}:{}", a.value)),
    }
}

/// Whether a caller with `subject` and `roles` is the assignee (anyone is,
/// when there is none).
pub fn is_assignee(assignee: Option<&str>, subject: &str, roles: &[String]) -> bool {
    let Some(assignee) = assignee else {
        return true;
    };
    match assignee.split_once(':') {
        Some(("user", user)) => user == subject,
        Some(("role" | "group", role)) => roles.iter().any(|r| r == role),
        _ => false,
    }
}

/// What a timeout due at `now` does to `instance`: the workflow's own
/// deadline moves it to the workflow's `on_timeout` step (else ends it as
/// `timed_out`); a step's deadline takes the step's `timeout` transition,
/// else its `on_timeout` step, else ends it as `timed_out`. `None` when
/// nothing is due.
pub fn fire_timeout(
    workflow: &Workflow,
    instance: &Instance,
    now: OffsetDateTime,
) -> Option<(Instance, HistoryEntry)> {
    let is_step = |id: &Option<String>| {
        id.as_deref()
            .filter(|id| step(workflow, id).is_some())
            .map(String::from)
    };
    let workflow_deadline = instance.due_at.is_some_and(|d| d <= now);
    let target = if workflow_deadline {
        is_step(&workflow.on_timeout)
    } else if instance.step_due_at.is_some_and(|d| d <= now) {
        let current = step(workflow, &instance.step);
        leaving(workflow, &instance.step)
            .find(|t| t.event == "timeout")
            .map(|t| t.to.clone())
            .or_else(|| current.and_then(|s| is_step(&s.on_timeout)))
    } else {
        return None;
    };
    let (mut next, entry) = match target {
        Some(to) => transition(workflow, instance, &to, "timeout", SYSTEM, now),
        None => end(instance, Status::TimedOut, "timeout", SYSTEM, now),
    };
    if workflow_deadline {
        // The workflow's own deadline fires once.
        next.due_at = None;
    }
    Some((next, entry))
}

/// Events that end an automatic step, by outcome, in order of preference.
const SUCCESS_EVENTS: [&str; 4] = ["completed", "sent", "success", "done"];
const FAILURE_EVENTS: [&str; 2] = ["failed", "error"];

/// Where an automatic step goes after it ran: the first transition for the
/// outcome's events (a step with a single way out takes it on success).
pub fn automatic_next<'a>(
    workflow: &'a Workflow,
    step: &'a str,
    succeeded: bool,
) -> Option<&'a Transition> {
    let events: &[&str] = if succeeded {
        &SUCCESS_EVENTS
    } else {
        &FAILURE_EVENTS
    };
    events
        .iter()
        .find_map(|e| leaving(workflow, step).find(|t| t.event == *e))
        .or_else(|| {
            let mut ways = leaving(workflow, step);
            match (succeeded, ways.next(), ways.next()) {
                (true, Some(only), None) => Some(only),
                _ => None,
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workflow() -> Workflow {
        serde_json::from_value(serde_json::json!({
            "id": "w", "name": "W", "initial_step": "review", "timeout": 3600, "on_timeout": "expired",
            "steps": [
                {"id": "review", "type": "human", "timeout": 60,
                 "assignee": {"type": "dynamic", "value": "workflow.manager"}},
                {"id": "book", "type": "system", "timeout": 60, "on_timeout": "expired"},
                {"id": "done", "type": "terminal"},
                {"id": "expired", "type": "terminal"}
            ],
            "transitions": [
                {"from": "review", "to": "book", "event": "approved"},
                {"from": "review", "to": "done", "event": "timeout"},
                {"from": "book", "to": "done", "event": "ok"}
            ]
        }))
        .unwrap()
    }

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000 + seconds).unwrap()
    }

    #[test]
    fn start_sets_deadlines_and_the_dynamic_assignee() {
        let w = workflow();
        let input = serde_json::json!({"manager": "bob"});
        let (i, entry) = start(
            &w,
            "t",
            "",
            "alice",
            input.as_object().unwrap().clone(),
            at(0),
        );
        assert_eq!(
            (i.step.as_str(), i.version, i.status),
            ("review", 1, Status::Active)
        );
        assert_eq!(i.assignee.as_deref(), Some("user:bob"));
        assert_eq!(i.step_due_at, Some(at(60)));
        assert_eq!(i.next_due(), Some(at(60)));
        assert_eq!((entry.seq, entry.event.as_str()), (1, "start"));
        assert!(is_assignee(i.assignee.as_deref(), "bob", &[]));
        let (nobody, _) = start(&w, "t", "", "alice", Map::new(), at(0));
        assert!(
            !is_assignee(nobody.assignee.as_deref(), "alice", &[]),
            "an unresolved dynamic assignee lets nobody act"
        );
        assert!(!is_assignee(
            i.assignee.as_deref(),
            "alice",
            &["bob".into()]
        ));
    }

    #[test]
    fn timeouts_prefer_the_timeout_transition_then_on_timeout_then_end() {
        let w = workflow();
        let (i, _) = start(&w, "t", "", "alice", Map::new(), at(0));
        assert!(fire_timeout(&w, &i, at(59)).is_none(), "not due yet");
        let (moved, entry) = fire_timeout(&w, &i, at(60)).unwrap();
        assert_eq!(
            (moved.step.as_str(), moved.status),
            ("done", Status::Completed)
        );
        assert_eq!(
            (entry.event.as_str(), entry.actor.as_str(), entry.seq),
            ("timeout", SYSTEM, 2)
        );

        let (book, _) = transition(&w, &i, "book", "approved", "bob", at(10));
        let (expired, _) = fire_timeout(&w, &book, at(70)).unwrap();
        assert_eq!(expired.step, "expired", "the step's on_timeout");

        let (whole, _) = fire_timeout(&w, &book, at(3600)).unwrap();
        assert_eq!(whole.step, "expired", "the workflow's on_timeout");
        let mut w3 = w.clone();
        w3.on_timeout = Some("review".into());
        let (escalated, _) = fire_timeout(&w3, &book, at(3600)).unwrap();
        assert_eq!(
            (escalated.step.as_str(), escalated.due_at),
            ("review", None)
        );
        assert!(
            fire_timeout(&w3, &escalated, at(3601)).is_none(),
            "the workflow deadline fires once"
        );

        let mut w2 = w.clone();
        w2.on_timeout = None;
        let (ended, entry) = fire_timeout(&w2, &book, at(3600)).unwrap();
        assert_eq!(
            (ended.step.as_str(), ended.status),
            ("book", Status::TimedOut)
        );
        assert_eq!(entry.to_step, "book");
        assert_eq!(
            ended.next_due(),
            None,
            "an ended instance is never due again"
        );
    }

    #[test]
    fn automatic_steps_take_their_outcome_or_only_way_out() {
        let w = workflow();
        assert_eq!(automatic_next(&w, "book", true).unwrap().to, "done");
        assert!(automatic_next(&w, "book", false).is_none());
        assert!(
            automatic_next(&w, "review", true).is_none(),
            "two ways out, none named"
        );
    }
}
