//! Pages, tables, sections, fields, actions and forms.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{DataSource, is_false};
use crate::duration::Duration;

/// A screen of the UI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Page {
    /// Page ID, unique among the loaded definitions.
    #[schemars(length(min = 1))]
    pub id: String,
    /// Page title.
    pub title: String,
    /// Route of the page, e.g. `/orders/{id}`; unique among the loaded
    /// definitions.
    #[schemars(length(min = 1))]
    pub route: String,
    /// `table`, `detail`, `form`, `dashboard` or `custom` (`list` is read as
    /// `table`).
    pub layout: Layout,
    /// Capabilities a user needs to see the page (all of them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    /// How often the frontend reloads the page data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_interval: Option<Duration>,
    /// Breadcrumb trail shown above the page.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub breadcrumb: Vec<Breadcrumb>,
    /// The table of a `table` page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<Box<Table>>,
    /// Where the record of a detail or dashboard page comes from: it fills
    /// the fields of the sections that have no `data_source` of their own.
    /// Parameters of the page's route are passed by name (see
    /// `mapping.request_mapping`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_source: Option<Box<DataSource>>,
    /// Sections of fields (detail and dashboard pages).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sections: Vec<Section>,
    /// Page-level actions (buttons).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<Action>,
}

/// How a page is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(extend("enum" = ["table", "list", "detail", "form", "dashboard", "custom"]))]
pub enum Layout {
    /// A list of rows (`list` is accepted as an older name).
    #[serde(alias = "list")]
    Table,
    /// One record in sections.
    Detail,
    /// A form.
    Form,
    /// Several widgets.
    Dashboard,
    /// Rendered by custom frontend code.
    Custom,
}

/// One entry of a breadcrumb trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Breadcrumb {
    /// Text of the entry.
    pub label: String,
    /// Route the entry links to (none for the current page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SortDir {
    /// Ascending.
    Asc,
    /// Descending.
    Desc,
}

/// A paginated, sortable, filterable table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Table {
    /// Where the rows come from. Required for a page's table; a table in a
    /// section may take its rows from the section's `data_source` instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_source: Option<DataSource>,
    /// Columns, at least one.
    #[schemars(length(min = 1))]
    pub columns: Vec<Column>,
    /// Filter controls above the table.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<Filter>,
    /// Actions on one row.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub row_actions: Vec<Action>,
    /// Actions on the selected rows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bulk_actions: Vec<Action>,
    /// Field sorted by at first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_sort: Option<String>,
    /// `asc` or `desc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort_dir: Option<SortDir>,
    /// Rows per page, 0 to 200 (0: the BFF's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 200))]
    pub page_size: Option<u32>,
    /// Whether rows can be selected for bulk actions.
    #[serde(default, skip_serializing_if = "is_false")]
    pub selectable: bool,
}

/// A table column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Column {
    /// Field of the row shown in the column.
    #[schemars(length(min = 1))]
    pub field: String,
    /// Column header.
    pub label: String,
    /// How the frontend renders the value: `text`, `number`, `currency`,
    /// `datetime`, `badge`, `link`, ...
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Whether the column can be sorted.
    #[serde(default, skip_serializing_if = "is_false")]
    pub sortable: bool,
    /// Whether the column can be filtered.
    #[serde(default, skip_serializing_if = "is_false")]
    pub filterable: bool,
    /// When the column shows: `always`, `desktop`, `hidden`, or a capability.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visible: Option<String>,
    /// Display format, e.g. a date pattern.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Column width, e.g. `120px`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<String>,
    /// Makes the cell a link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<Box<Link>>,
    /// Value to badge style, e.g. `shipped: success`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub status_map: BTreeMap<String, String>,
}

/// A link from a table cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Link {
    /// Route the link opens, e.g. `/orders/{id}`.
    pub route: String,
    /// Route parameter to row field.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
}

/// A filter control above a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Filter {
    /// Field filtered on.
    #[schemars(length(min = 1))]
    pub field: String,
    /// Label of the control.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Control type: `text`, `select`, `multi_select`, `date_range`, ...
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Comparison: `eq`, `contains`, `between`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    /// Choices of a select control.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Box<Options>>,
    /// Choices of a select or reference control, as on form fields (Thesa's
    /// format; the same as `options`, set one of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookup: Option<Box<Options>>,
    /// Initial value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "thesa-any-scalar"))]
    pub default: Option<String>,
}

/// Choices for a select control: a named lookup, a lookup given inline
/// (`operation_id`, `label_field`, `value_field`), or a fixed list. Set one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Options {
    /// ID of a lookup that provides the choices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookup_id: Option<String>,
    /// A fixed list of choices.
    #[serde(default, rename = "static", skip_serializing_if = "Vec::is_empty")]
    pub fixed: Vec<StaticOption>,
    /// An inline lookup: the operation that returns the choices. The BFF
    /// serves them like a named lookup's (cached the same way).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_id: Option<String>,
    /// The service whose spec has `operation_id`; needed only when several
    /// specs have an operation of that ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_id: Option<String>,
    /// Field of each item shown as the choice's label (inline lookups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_field: Option<String>,
    /// Field of each item used as the choice's value (inline lookups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_field: Option<String>,
    /// Parameter that carries the typed text (inline lookups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_field: Option<String>,
}

impl Options {
    /// Whether the choices come from an operation given inline.
    pub fn is_inline(&self) -> bool {
        self.operation_id.is_some()
            || self.label_field.is_some()
            || self.value_field.is_some()
            || self.search_field.is_some()
            || self.service_id.is_some()
    }
}

/// A fixed choice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StaticOption {
    /// Text shown.
    pub label: String,
    /// Value sent.
    pub value: String,
}

/// A group of fields on a page or a form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Section {
    /// Section ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Section heading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Layout hint: `card`, `grid`, `tabs`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<String>,
    /// Number of field columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<u32>,
    /// Capabilities a user needs to see the section (all of them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    /// Whether the section can be collapsed.
    #[serde(default, skip_serializing_if = "is_false")]
    pub collapsible: bool,
    /// Whether the section starts collapsed.
    #[serde(default, skip_serializing_if = "is_false")]
    pub collapsed: bool,
    /// The fields.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<Field>,
    /// Where this section's record (or its table's rows) comes from, when
    /// not from the page's `data_source` (page sections only; needs `id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_source: Option<Box<DataSource>>,
    /// A table shown in the section, served like a page's table (page
    /// sections only; needs `id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<Box<Table>>,
}

/// A field of a section: a display on detail pages, an input on forms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Field {
    /// Name of the data field.
    #[schemars(length(min = 1))]
    pub field: String,
    /// Label shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Input or display type: `text`, `number`, `select`, `textarea`, ...
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// `true` (or Thesa's `always`), or a capability that makes the field
    /// editable for those who have it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "thesa-any-scalar"))]
    pub read_only: Option<String>,
    /// Whether a value is required.
    #[serde(default, skip_serializing_if = "is_false")]
    pub required: bool,
    /// Input rules checked by the frontend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<Box<FieldValidation>>,
    /// Choices of a select field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookup: Option<Box<Options>>,
    /// Capability a user needs to see the field (`hidden`: no one sees it,
    /// as in Thesa's format).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility: Option<String>,
    /// Display format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Placeholder text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<String>,
    /// Help text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help_text: Option<String>,
    /// Help text (Thesa's name for `help_text`; set one of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// Number of grid columns the field spans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span: Option<u32>,
    /// Conditions on other fields that show or enable this one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<Dependency>,
}

impl Field {
    /// The help text, under either of its names.
    pub fn help(&self) -> Option<&String> {
        self.help_text.as_ref().or(self.hint.as_ref())
    }

    /// Whether a caller who has the capabilities `has` accepts sees the
    /// field: `visibility` is a capability, or Thesa's `hidden` (no one).
    pub fn visible_with(&self, has: impl Fn(&str) -> bool) -> bool {
        match self.visibility.as_deref().map(str::trim) {
            None | Some("") => true,
            Some(HIDDEN) => false,
            Some(capability) => has(capability),
        }
    }
}

/// The `visibility` Thesa's format gives a field no one sees.
pub const HIDDEN: &str = "hidden";

/// The `read_only` values that make a field read-only for everyone
/// (`always` is Thesa's); `false` makes it editable; anything else is a
/// capability.
pub const ALWAYS_READ_ONLY: [&str; 2] = ["true", "always"];

/// Input rules for a field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FieldValidation {
    /// Fewest characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_length: Option<u64>,
    /// Most characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u64>,
    /// Smallest number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Largest number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Regular expression the value must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// Message shown when a rule fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A dependency of a field on another field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Dependency {
    /// The other field.
    pub field: String,
    /// `equals`, `not_empty`, `in`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// Value compared with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// What an action does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActionType {
    /// Runs the command `command_id`.
    Command,
    /// Runs the command `command_id` once the user confirms (Thesa's
    /// format; `confirmation` gives the dialog).
    Confirm,
    /// Opens the route `navigate_to` (or `route`).
    Navigate,
    /// Opens the form `form_id`.
    Form,
    /// Starts the workflow `workflow_id`.
    Workflow,
}

/// A button or menu item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Action {
    /// Action ID.
    #[schemars(length(min = 1))]
    pub id: String,
    /// Text shown.
    pub label: String,
    /// Icon name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon: Option<String>,
    /// Style: `primary`, `secondary`, `danger`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub style: Option<String>,
    /// Capabilities a user needs to see the action (all of them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    /// `command`, `confirm`, `navigate`, `form` or `workflow`.
    #[serde(rename = "type")]
    pub kind: ActionType,
    /// Command run by a `command` action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_id: Option<String>,
    /// Route opened by a `navigate` action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub navigate_to: Option<String>,
    /// Route opened by a `navigate` action (Thesa's name for
    /// `navigate_to`; set one of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// Form opened by a `form` action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form_id: Option<String>,
    /// Workflow started by a `workflow` action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_id: Option<String>,
    /// Parameters passed along, name to expression.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
    /// A dialog the user confirms first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmation: Option<Box<Confirmation>>,
    /// Data-dependent rules that show, hide, enable or disable the action.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

impl Action {
    /// The route a `navigate` action opens, under either of its names.
    pub fn target_route(&self) -> Option<&String> {
        self.navigate_to.as_ref().or(self.route.as_ref())
    }
}

/// A confirmation dialog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Confirmation {
    /// Dialog title.
    pub title: String,
    /// Dialog text.
    pub message: String,
    /// Label of the confirm button.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm: Option<String>,
    /// Label of the cancel button.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel: Option<String>,
    /// Style: `info`, `warning`, `danger`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub style: Option<String>,
}

/// A rule on the data of a row or record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Condition {
    /// Field tested.
    pub field: String,
    /// `eq`, `neq`, `in`, `not_in`, `empty`, `not_empty`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    /// Value compared with (any JSON value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
    /// `show`, `hide`, `enable` or `disable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<String>,
}

/// A data entry form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Form {
    /// Form ID, unique among the loaded definitions.
    #[schemars(length(min = 1))]
    pub id: String,
    /// Form title.
    pub title: String,
    /// Capabilities a user needs to open the form (all of them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    /// ID of the command run on submit.
    #[schemars(length(min = 1))]
    pub submit_command: String,
    /// Where existing data comes from when the form edits a record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_source: Option<DataSource>,
    /// Route opened after a successful submit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_route: Option<String>,
    /// Message shown after a successful submit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_message: Option<String>,
    /// Sections of fields.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sections: Vec<Section>,
}
