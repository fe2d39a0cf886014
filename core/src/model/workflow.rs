//! Workflows: multi-step processes whose state the BFF keeps.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{InputMapping, OperationBinding, OutputMapping};
use crate::duration::Duration;

/// A multi-step process: steps joined by transitions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Workflow {
    /// Workflow ID, unique among the loaded definitions.
    #[schemars(length(min = 1))]
    pub id: String,
    /// Name shown.
    pub name: String,
    /// Capabilities a user needs to start the workflow (all of them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    /// ID of the step a new instance starts at.
    #[schemars(length(min = 1))]
    pub initial_step: String,
    /// How long an instance may run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// What happens when the workflow times out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_timeout: Option<String>,
    /// The steps, at least one.
    #[schemars(length(min = 1))]
    pub steps: Vec<Step>,
    /// The transitions between steps.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transitions: Vec<Transition>,
}

/// What kind of step it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepType {
    /// Waits for a person (usually through a form).
    Human,
    /// Waits for a person to act (Thesa's older name for `human`).
    Action,
    /// Waits for a person to approve or reject.
    Approval,
    /// Calls a backend operation.
    System,
    /// Waits for a time or an event.
    Wait,
    /// Sends a notification and moves on.
    Notification,
    /// Ends the workflow.
    Terminal,
}

/// A step of a workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Step {
    /// Step ID, unique within the workflow.
    #[schemars(length(min = 1))]
    pub id: String,
    /// Name shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `human`, `system`, `notification`, `terminal` (also `action`,
    /// `approval`, `wait`).
    #[serde(rename = "type")]
    pub kind: StepType,
    /// Form a person fills in at this step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form_id: Option<String>,
    /// Capabilities a user needs to act on this step (all of them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    /// How long the step may wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// What happens when the step times out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_timeout: Option<String>,
    /// Who acts on the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<Assignee>,
    /// The backend operation a `system` step calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<OperationBinding>,
    /// How the step's request is built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<InputMapping>,
    /// How the step's response is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<OutputMapping>,
}

/// Who acts on a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Assignee {
    /// `role`, `user`, `group` or `dynamic`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The role, user or group, or an expression for `dynamic`.
    pub value: String,
}

/// A move from one step to another on an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Transition {
    /// Step the transition leaves.
    #[schemars(length(min = 1))]
    pub from: String,
    /// Step the transition enters.
    #[schemars(length(min = 1))]
    pub to: String,
    /// Event that triggers it, e.g. `approved`.
    #[schemars(length(min = 1))]
    pub event: String,
    /// Expression on the workflow state that must hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// Capability a user needs to trigger the transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<String>,
}
