//! Metadata views: navigation, pages and forms as the caller may see them.
//!
//! Pure functions from the registry and one caller's capabilities to the
//! documents of `GET /ui/navigation`, `GET /ui/pages/{id}` and
//! `GET /ui/forms/{id}`. Two rules shape them:
//!
//! - The UI never offers what would answer "not found". An element is
//!   dropped when the caller lacks its own capabilities *or* those of what it
//!   leads to: a menu item's page, an action's command, form, workflow or
//!   page, a form's submit command. Links and routes into pages the caller
//!   may not see lose their route but keep their text.
//! - Nothing about the backends leaves the BFF. The views are their own
//!   types that copy presentation only (no operation or service IDs,
//!   handlers, mappings, command definitions or capability lists), so a
//!   backend field added to the model later is not serialized along by
//!   accident. Leaf types that are nothing but presentation (`Options`,
//!   `Confirmation`, `Condition`, ...) are reused from the model; the tests
//!   serialize every view and look for backend names.
//!
//! Keys are the definition format's snake_case names, so the frontend sees
//! the names the definition authors wrote.

use std::collections::BTreeMap;

use serde::Serialize;
use thesa_core::duration::Duration;
use thesa_core::model::{
    ALWAYS_READ_ONLY, Action, ActionType, Breadcrumb, Column, Command, Condition, Confirmation,
    Definition, Dependency, Field, FieldValidation, Filter, Form, Layout, Link, NavigationChild,
    Options, Page, Section, SortDir, StaticOption, Table, Workflow,
};

use crate::access::capabilities::CapabilitySet;
use crate::registry::{Owner, Registry, Served, inline_lookup_id};

/// The navigation menu of one caller (`GET /ui/navigation`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NavigationView {
    /// The domains' entries, by `order` (entries without one last), then by
    /// label. Always present, empty when the caller may see nothing.
    pub items: Vec<NavigationItemView>,
}

/// A domain's entry in the menu.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NavigationItemView {
    /// The domain, e.g. `orders`.
    pub domain: String,
    /// Menu label.
    pub label: String,
    /// Icon name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icon: Option<String>,
    /// Position in the menu (lower first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order: Option<i32>,
    /// Where the frontend places the entry, e.g. `bottom`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The items the caller may open, sorted like the domains.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<NavigationChildView>,
}

/// A menu item under a domain's entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NavigationChildView {
    /// Menu label.
    pub label: String,
    /// Icon name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icon: Option<String>,
    /// Route the item opens.
    pub route: String,
    /// ID of the page the item opens (`GET /ui/pages/{page_id}`), or, as
    /// Thesa's format allows, of a form; then `form_id` says so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_id: Option<String>,
    /// ID of the form the item opens (`GET /ui/forms/{form_id}`), when its
    /// `page_id` names a form.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub form_id: Option<String>,
    /// Position among its siblings (lower first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order: Option<i32>,
    /// Present when the item shows a badge.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub badge: Option<BadgeView>,
}

/// A badge next to a menu item. Only its style: the operation that yields
/// the value is a backend detail, and the response `field` holding it is
/// meaningful only to the BFF, which will fill in the value itself.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BadgeView {
    /// Style: `info`, `warning`, `danger`, `success`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub style: Option<String>,
}

/// A page as one caller may see it (`GET /ui/pages/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PageView {
    /// Page ID.
    pub id: String,
    /// Page title.
    pub title: String,
    /// Route of the page, e.g. `/orders/{id}`.
    pub route: String,
    /// `table`, `detail`, `form`, `dashboard` or `custom`.
    pub layout: Layout,
    /// The domain that declares the page.
    pub domain: String,
    /// How often the frontend reloads the data, in whole seconds (rounded
    /// up, so that a sub-second interval does not read as 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_interval: Option<u64>,
    /// Breadcrumb trail; an entry whose page the caller may not see has no
    /// route.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub breadcrumb: Vec<Breadcrumb>,
    /// The table of a `table` page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<TableView>,
    /// Where the page's data comes from, `/ui/pages/{id}/data` (table rows,
    /// the page's record, its sections' data); only for pages that have
    /// data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_url: Option<String>,
    /// The sections the caller may see.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sections: Vec<SectionView>,
    /// The page actions the caller may use.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<ActionView>,
}

/// A table as one caller may see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableView {
    /// The columns the caller may see.
    pub columns: Vec<ColumnView>,
    /// Filter controls; a filter on a column the caller may not see is
    /// dropped, as filtering on it would reveal its values.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<FilterView>,
    /// Actions on one row the caller may use.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub row_actions: Vec<ActionView>,
    /// Actions on the selected rows the caller may use.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bulk_actions: Vec<ActionView>,
    /// Field sorted by at first (dropped when its column is hidden).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_sort: Option<String>,
    /// `asc` or `desc`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sort_dir: Option<SortDir>,
    /// Rows per page (0: the BFF's default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_size: Option<u32>,
    /// Whether rows can be selected for bulk actions.
    #[serde(skip_serializing_if = "is_false")]
    pub selectable: bool,
    /// Where the rows come from: `/ui/pages/{id}/data` (with
    /// `?section=<id>` for a table in a section).
    pub data_url: String,
}

/// A filter control.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FilterView {
    /// Field filtered on (the query parameter of the page data).
    pub field: String,
    /// Label of the control.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Control type.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Comparison.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    /// Choices (from `options` or `lookup` in the definition).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<OptionsView>,
    /// Initial value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

/// The choices of a field or filter: `GET /ui/lookups/{lookup_id}` (a
/// named lookup, or one given inline, served under an ID of its own), or a
/// fixed list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OptionsView {
    /// The lookup that serves the choices.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lookup_id: Option<String>,
    /// A fixed list of choices.
    #[serde(rename = "static", skip_serializing_if = "Vec::is_empty")]
    pub fixed: Vec<StaticOption>,
}

/// A table column.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnView {
    /// Field of the row shown in the column.
    pub field: String,
    /// Column header.
    pub label: String,
    /// How the frontend renders the value.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Whether the column can be sorted.
    #[serde(skip_serializing_if = "is_false")]
    pub sortable: bool,
    /// Whether the column can be filtered.
    #[serde(skip_serializing_if = "is_false")]
    pub filterable: bool,
    /// `always`, `desktop` or `hidden`. A capability in the definition is
    /// resolved here: without it the column is not in the view, with it the
    /// column shows like `always` (no `visible`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visible: Option<String>,
    /// Display format.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Column width.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<String>,
    /// Makes the cell a link (absent when it leads to a page the caller may
    /// not see).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<Link>,
    /// Value to badge style.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub status_map: BTreeMap<String, String>,
}

/// A group of fields the caller may see. A section whose fields are all
/// hidden is dropped (one declared without fields stays).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SectionView {
    /// Section ID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Section heading.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Layout hint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layout: Option<String>,
    /// Number of field columns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub columns: Option<u32>,
    /// Whether the section can be collapsed.
    #[serde(skip_serializing_if = "is_false")]
    pub collapsible: bool,
    /// Whether the section starts collapsed.
    #[serde(skip_serializing_if = "is_false")]
    pub collapsed: bool,
    /// The fields the caller may see.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldView>,
    /// A table in the section (pages only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<TableView>,
    /// Where the section's own data comes from,
    /// `/ui/pages/{id}/data?section=<id>` (it is also in the page's data,
    /// under `sections.<id>`); only for sections with a data source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_url: Option<String>,
}

/// A field the caller may see.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldView {
    /// Name of the data field.
    pub field: String,
    /// Label shown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Input or display type.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Whether this caller may not edit the field. Always present: unlike
    /// the definition's `read_only` (`true` or a capability) it is already
    /// resolved for the caller, and an explicit `false` says so.
    pub read_only: bool,
    /// Whether a value is required.
    #[serde(skip_serializing_if = "is_false")]
    pub required: bool,
    /// Input rules checked by the frontend.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation: Option<FieldValidation>,
    /// Choices of a select field (`GET /ui/lookups/{lookup_id}` or a fixed
    /// list).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lookup: Option<OptionsView>,
    /// Display format.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Placeholder text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<String>,
    /// Help text (`help_text`, or Thesa's `hint`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help_text: Option<String>,
    /// Number of grid columns the field spans.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub span: Option<u32>,
    /// Conditions on other fields that show or enable this one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<Dependency>,
}

/// An action the caller may use.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionView {
    /// Action ID.
    pub id: String,
    /// Text shown.
    pub label: String,
    /// Icon name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icon: Option<String>,
    /// Style: `primary`, `secondary`, `danger`, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub style: Option<String>,
    /// `command`, `confirm` (a command run once the user confirms),
    /// `navigate`, `form` or `workflow`.
    #[serde(rename = "type")]
    pub kind: ActionType,
    /// Command run by a `command` or `confirm` action
    /// (`POST /ui/commands/{command_id}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command_id: Option<String>,
    /// Route opened by a `navigate` action (`navigate_to`, or Thesa's
    /// `route`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub navigate_to: Option<String>,
    /// Form opened by a `form` action (`GET /ui/forms/{form_id}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub form_id: Option<String>,
    /// Workflow started by a `workflow` action
    /// (`POST /ui/workflows/{workflow_id}/start`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow_id: Option<String>,
    /// Parameters passed along, name to expression.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
    /// A dialog the user confirms first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmation: Option<Confirmation>,
    /// Data-dependent rules that show, hide, enable or disable the action.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// A form as one caller may see it (`GET /ui/forms/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FormView {
    /// Form ID.
    pub id: String,
    /// Form title.
    pub title: String,
    /// The domain that declares the form.
    pub domain: String,
    /// The sections the caller may see.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sections: Vec<SectionView>,
    /// Where the form is submitted: `/ui/commands/{submit_command}`.
    pub submit_url: String,
    /// Where the record being edited comes from, `/ui/forms/{id}/data`;
    /// only for forms that load one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_url: Option<String>,
    /// Route opened after a successful submit (absent when the caller may
    /// not see its page).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub success_route: Option<String>,
    /// Message shown after a successful submit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub success_message: Option<String>,
}

/// The navigation menu `caps` may see. A domain shows when the caller has
/// its capabilities and at least one of its items shows (or it declares
/// none); an item shows when the caller has its capabilities and may see the
/// page it opens, so the menu never leads to a "not found".
pub fn navigation(registry: &Registry, caps: &CapabilitySet) -> NavigationView {
    let mut items: Vec<NavigationItemView> = registry
        .definitions()
        .iter()
        .filter_map(|served| {
            let navigation = served.definition.navigation.as_ref()?;
            if !caps.has_all(&navigation.capabilities) {
                return None;
            }
            let caller = Caller::new(registry, &served.definition, caps);
            let mut children: Vec<NavigationChildView> = navigation
                .children
                .iter()
                .filter(|child| caller.may_open_item(child))
                .map(|child| caller.navigation_child(child))
                .collect();
            if children.is_empty() && !navigation.children.is_empty() {
                return None;
            }
            children.sort_by(|a, b| menu_key(a.order, &a.label).cmp(&menu_key(b.order, &b.label)));
            Some(NavigationItemView {
                domain: served.definition.domain.clone(),
                label: navigation.label.clone(),
                icon: navigation.icon.clone(),
                order: navigation.order,
                group: navigation.group.clone(),
                children,
            })
        })
        .collect();
    items.sort_by(|a, b| menu_key(a.order, &a.label).cmp(&menu_key(b.order, &b.label)));
    NavigationView { items }
}

/// `page` (declared by `served`) as `caps` may see it, or `None` when the
/// caller lacks one of the page's capabilities: the handler then answers
/// "not found". Targets of actions and links are looked up in `served`
/// first and then in the whole `registry`, as IDs are unique across it.
pub fn page(
    registry: &Registry,
    served: &Served,
    page: &Page,
    caps: &CapabilitySet,
) -> Option<PageView> {
    let caller = Caller::new(registry, &served.definition, caps);
    if !caller.may_see_page(page) {
        return None;
    }
    Some(PageView {
        id: page.id.clone(),
        title: page.title.clone(),
        route: page.route.clone(),
        layout: page.layout,
        domain: served.definition.domain.clone(),
        refresh_interval: page.refresh_interval.map(whole_seconds),
        breadcrumb: page
            .breadcrumb
            .iter()
            .map(|entry| Breadcrumb {
                label: entry.label.clone(),
                route: caller.followable(entry.route.as_ref()),
            })
            .collect(),
        table: page
            .table
            .as_ref()
            .map(|table| caller.table(&page.id, None, table)),
        data_url: has_data(page).then(|| format!("/ui/pages/{}/data", page.id)),
        sections: caller.sections(Owner::Page(&page.id), &page.sections),
        actions: caller.actions(&page.actions),
    })
}

/// `form` (declared by `served`) as `caps` may see it, or `None` when the
/// caller lacks the form's capabilities or those of its submit command: a
/// form that cannot be submitted is not offered.
pub fn form(
    registry: &Registry,
    served: &Served,
    form: &Form,
    caps: &CapabilitySet,
) -> Option<FormView> {
    let caller = Caller::new(registry, &served.definition, caps);
    if !caller.may_open_form(form) {
        return None;
    }
    Some(FormView {
        id: form.id.clone(),
        title: form.title.clone(),
        domain: served.definition.domain.clone(),
        sections: caller.sections(Owner::Form(&form.id), &form.sections),
        submit_url: format!("/ui/commands/{}", form.submit_command),
        data_url: form
            .load_source
            .as_ref()
            .map(|_| format!("/ui/forms/{}/data", form.id)),
        success_route: caller.followable(form.success_route.as_ref()),
        success_message: form.success_message.clone(),
    })
}

/// One caller looking at the registry from one definition: answers "may
/// they use this?" for every kind of target, and builds the views.
struct Caller<'a> {
    registry: &'a Registry,
    /// The definition being viewed; searched first because most references
    /// stay within a domain.
    home: &'a Definition,
    caps: &'a CapabilitySet,
}

impl<'a> Caller<'a> {
    fn new(registry: &'a Registry, home: &'a Definition, caps: &'a CapabilitySet) -> Self {
        Self {
            registry,
            home,
            caps,
        }
    }

    fn definitions(&self) -> impl Iterator<Item = &'a Definition> + use<'a> {
        std::iter::once(self.home).chain(self.registry.definitions().iter().map(|s| &s.definition))
    }

    fn command(&self, id: &str) -> Option<&'a Command> {
        self.definitions()
            .flat_map(|d| &d.commands)
            .find(|c| c.id == id)
    }

    fn workflow(&self, id: &str) -> Option<&'a Workflow> {
        self.definitions()
            .flat_map(|d| &d.workflows)
            .find(|w| w.id == id)
    }

    fn form(&self, id: &str) -> Option<&'a Form> {
        self.definitions()
            .flat_map(|d| &d.forms)
            .find(|f| f.id == id)
    }

    fn page(&self, id: &str) -> Option<&'a Page> {
        self.definitions()
            .flat_map(|d| &d.pages)
            .find(|p| p.id == id)
    }

    fn may_see_page(&self, page: &Page) -> bool {
        self.caps.has_all(&page.capabilities)
    }

    /// Whether the caller may follow `route`. Only a route that is some
    /// page's route template (`/orders/{id}`) is checked, against that page;
    /// other routes (custom frontend routes) are not the BFF's to judge.
    fn may_follow(&self, route: &str) -> bool {
        self.definitions()
            .flat_map(|d| &d.pages)
            .find(|p| p.route == route)
            .is_none_or(|p| self.may_see_page(p))
    }

    /// `route` when the caller may follow it.
    fn followable(&self, route: Option<&String>) -> Option<String> {
        route.filter(|r| self.may_follow(r)).cloned()
    }

    fn may_open_item(&self, item: &NavigationChild) -> bool {
        self.caps.has_all(&item.capabilities)
            && match &item.page_id {
                Some(id) => match (self.page(id), self.form(id)) {
                    (Some(page), _) => self.may_see_page(page),
                    (None, Some(form)) => self.may_open_form(form),
                    (None, None) => false,
                },
                None => self.may_follow(&item.route),
            }
    }

    fn navigation_child(&self, child: &NavigationChild) -> NavigationChildView {
        let names_form = child
            .page_id
            .as_deref()
            .is_some_and(|id| self.page(id).is_none() && self.form(id).is_some());
        NavigationChildView {
            label: child.label.clone(),
            icon: child.icon.clone(),
            route: child.route.clone(),
            page_id: child.page_id.clone(),
            form_id: child.page_id.clone().filter(|_| names_form),
            order: child.order,
            badge: child.badge.as_ref().map(|b| BadgeView {
                style: b.style.clone(),
            }),
        }
    }

    fn may_run(&self, command_id: &str) -> bool {
        self.command(command_id)
            .is_some_and(|c| self.caps.has_all(&c.capabilities))
    }

    fn may_open_form(&self, form: &Form) -> bool {
        self.caps.has_all(&form.capabilities) && self.may_run(&form.submit_command)
    }

    /// Whether the caller may use what `action` leads to. A missing or
    /// unknown target counts as unusable: the validator rejects those, and
    /// offering a button that fails is worse than not offering it.
    fn may_use_target(&self, action: &Action) -> bool {
        match action.kind {
            ActionType::Command | ActionType::Confirm => action
                .command_id
                .as_deref()
                .is_some_and(|id| self.may_run(id)),
            ActionType::Form => action
                .form_id
                .as_deref()
                .and_then(|id| self.form(id))
                .is_some_and(|f| self.may_open_form(f)),
            ActionType::Workflow => action
                .workflow_id
                .as_deref()
                .and_then(|id| self.workflow(id))
                .is_some_and(|w| self.caps.has_all(&w.capabilities)),
            ActionType::Navigate => action
                .target_route()
                .is_some_and(|route| self.may_follow(route)),
        }
    }

    /// `read_only` resolved for this caller: absent or `false` is editable,
    /// `true` is read-only, and anything else is a capability that makes the
    /// field editable for those who have it.
    fn read_only(&self, value: Option<&str>) -> bool {
        match value.map(str::trim) {
            None | Some("") => false,
            Some(v) if ALWAYS_READ_ONLY.iter().any(|a| v.eq_ignore_ascii_case(a)) => true,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            Some(capability) => !self.caps.has(capability),
        }
    }

    /// The table of page `page_id` (of its section `section`, for a table
    /// in a section).
    fn table(&self, page_id: &str, section: Option<&str>, table: &Table) -> TableView {
        let owner = Owner::Page(page_id);
        let hidden: Vec<&str> = table
            .columns
            .iter()
            .filter(|c| self.column(c).is_none())
            .map(|c| c.field.as_str())
            .collect();
        TableView {
            columns: table
                .columns
                .iter()
                .filter_map(|c| self.column(c))
                .collect(),
            filters: table
                .filters
                .iter()
                .filter(|f| !hidden.contains(&f.field.as_str()))
                .map(|f| filter_view(owner, f))
                .collect(),
            row_actions: self.actions(&table.row_actions),
            bulk_actions: self.actions(&table.bulk_actions),
            default_sort: table
                .default_sort
                .clone()
                .filter(|field| !hidden.contains(&field.as_str())),
            sort_dir: table.sort_dir,
            page_size: table.page_size,
            selectable: table.selectable,
            data_url: match section {
                Some(id) => format!("/ui/pages/{page_id}/data?section={id}"),
                None => format!("/ui/pages/{page_id}/data"),
            },
        }
    }

    /// The column, or `None` when its `visible` is a capability the caller
    /// lacks. Capabilities are told from `always`/`desktop`/`hidden` by
    /// their `:` (every capability has one).
    fn column(&self, column: &Column) -> Option<ColumnView> {
        let visible = match column.visible.as_deref() {
            Some(capability) if capability.contains(':') => {
                if !self.caps.has(capability) {
                    return None;
                }
                None
            }
            other => other.map(str::to_owned),
        };
        Some(ColumnView {
            field: column.field.clone(),
            label: column.label.clone(),
            kind: column.kind.clone(),
            sortable: column.sortable,
            filterable: column.filterable,
            visible,
            format: column.format.clone(),
            width: column.width.clone(),
            link: column
                .link
                .as_deref()
                .filter(|link| self.may_follow(&link.route))
                .cloned(),
            status_map: column.status_map.clone(),
        })
    }

    fn sections(&self, owner: Owner<'_>, sections: &[Section]) -> Vec<SectionView> {
        // Only page sections load data of their own (the validator warns
        // about a form section's).
        let page_id = match owner {
            Owner::Page(id) => Some(id),
            Owner::Form(_) => None,
        };
        sections
            .iter()
            .filter(|s| self.caps.has_all(&s.capabilities))
            .filter_map(|section| {
                let fields: Vec<FieldView> = section
                    .fields
                    .iter()
                    .filter_map(|f| self.field(owner, f))
                    .collect();
                if fields.is_empty() && !section.fields.is_empty() {
                    return None;
                }
                let served = page_id.zip(section.id.as_deref());
                let table = served.and_then(|(page, id)| {
                    let table = section.table.as_ref()?;
                    Some(self.table(page, Some(id), table))
                });
                let data_url = served
                    .filter(|_| section.data_source.is_some() || section.table.is_some())
                    .map(|(page, id)| format!("/ui/pages/{page}/data?section={id}"));
                Some(SectionView {
                    id: section.id.clone(),
                    title: section.title.clone(),
                    layout: section.layout.clone(),
                    columns: section.columns,
                    collapsible: section.collapsible,
                    collapsed: section.collapsed,
                    fields,
                    table,
                    data_url,
                })
            })
            .collect()
    }

    fn field(&self, owner: Owner<'_>, field: &Field) -> Option<FieldView> {
        if !field.visible_with(|c| self.caps.has(c)) {
            return None;
        }
        Some(FieldView {
            field: field.field.clone(),
            label: field.label.clone(),
            kind: field.kind.clone(),
            read_only: self.read_only(field.read_only.as_deref()),
            required: field.required,
            validation: field.validation.as_deref().cloned(),
            lookup: field
                .lookup
                .as_ref()
                .map(|o| options_view(owner, &field.field, o)),
            format: field.format.clone(),
            placeholder: field.placeholder.clone(),
            help_text: field.help().cloned(),
            span: field.span,
            depends_on: field.depends_on.clone(),
        })
    }

    fn actions(&self, actions: &[Action]) -> Vec<ActionView> {
        actions
            .iter()
            .filter(|a| self.caps.has_all(&a.capabilities) && self.may_use_target(a))
            .map(|a| ActionView {
                id: a.id.clone(),
                label: a.label.clone(),
                icon: a.icon.clone(),
                style: a.style.clone(),
                kind: a.kind,
                command_id: a.command_id.clone(),
                navigate_to: a.target_route().cloned(),
                form_id: a.form_id.clone(),
                workflow_id: a.workflow_id.clone(),
                params: a.params.clone(),
                confirmation: a.confirmation.as_deref().cloned(),
                conditions: a.conditions.clone(),
            })
            .collect()
    }
}

/// Whether `GET /ui/pages/{id}/data` has something to serve for the page.
fn has_data(page: &Page) -> bool {
    page.table.as_ref().is_some_and(|t| t.data_source.is_some())
        || page.data_source.is_some()
        || page
            .sections
            .iter()
            .any(|s| s.id.is_some() && (s.data_source.is_some() || s.table.is_some()))
}

/// The choices of `field` of `owner`: an inline lookup becomes the ID it is
/// served under, so the frontend asks `GET /ui/lookups/{lookup_id}` as for
/// a named one.
fn options_view(owner: Owner<'_>, field: &str, options: &Options) -> OptionsView {
    let lookup_id = match &options.operation_id {
        Some(_) => Some(inline_lookup_id(owner, field)),
        None => options.lookup_id.clone(),
    };
    OptionsView {
        lookup_id,
        fixed: options.fixed.clone(),
    }
}

fn filter_view(owner: Owner<'_>, filter: &Filter) -> FilterView {
    FilterView {
        field: filter.field.clone(),
        label: filter.label.clone(),
        kind: filter.kind.clone(),
        operator: filter.operator.clone(),
        options: filter
            .options
            .as_ref()
            .or(filter.lookup.as_ref())
            .map(|o| options_view(owner, &filter.field, o)),
        default: filter.default.clone(),
    }
}

/// Menu position: by `order`, entries without one after all others, then
/// by label. Sorting with it is stable, so full ties keep declaration order
/// (for domains: domain name order, as the registry sorts by it).
fn menu_key(order: Option<i32>, label: &str) -> (bool, i32, &str) {
    (order.is_none(), order.unwrap_or_default(), label)
}

fn whole_seconds(duration: Duration) -> u64 {
    let duration = duration.get();
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

fn is_false(b: &bool) -> bool {
    !b
}

#[cfg(test)]
mod tests {
    use super::*;

    use thesa_core::checksum::definition_checksum;
    use thesa_core::config::Policies;
    use thesa_core::validate::LoadedDefinition;

    const ORDERS: &str = include_str!("../../../definitions/orders/definition.yaml");
    const INVENTORY: &str = include_str!("../../../definitions/inventory/definition.yaml");
    const CUSTOMERS: &str = include_str!("../../../definitions/customers/definition.yaml");
    const POLICIES: &str = include_str!("../../../config/policies.yaml");

    fn served(source: &str, text: &str) -> Served {
        let mut findings = Vec::new();
        let definition = LoadedDefinition::from_text(source, text, &mut findings)
            .definition
            .unwrap_or_else(|| panic!("{source} does not load: {findings:?}"));
        Served {
            source: source.to_string(),
            checksum: definition_checksum(&definition),
            definition,
        }
    }

    fn samples() -> Registry {
        Registry::new(vec![
            served("orders", ORDERS),
            served("inventory", INVENTORY),
            served("customers", CUSTOMERS),
        ])
    }

    fn role(name: &str) -> CapabilitySet {
        let mut findings = Vec::new();
        let policies = Policies::from_text("policies.yaml", POLICIES, &mut findings).unwrap();
        CapabilitySet::new(policies.roles[name].clone())
    }

    fn caps(granted: &[&str]) -> CapabilitySet {
        CapabilitySet::new(granted.iter().map(|c| c.to_string()))
    }

    /// Domains and their children's labels, in menu order.
    fn menu(registry: &Registry, caps: &CapabilitySet) -> Vec<(String, Vec<String>)> {
        navigation(registry, caps)
            .items
            .into_iter()
            .map(|item| {
                let children = item.children.into_iter().map(|c| c.label).collect();
                (item.domain, children)
            })
            .collect()
    }

    fn menu_of(entries: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
        entries
            .iter()
            .map(|(d, c)| (d.to_string(), c.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    fn page_view(registry: &Registry, id: &str, caps: &CapabilitySet) -> Option<PageView> {
        let (served, p) = registry.page(id).expect("page exists");
        page(registry, served, p, caps)
    }

    fn form_view(registry: &Registry, id: &str, caps: &CapabilitySet) -> Option<FormView> {
        let (served, f) = registry.form(id).expect("form exists");
        form(registry, served, f, caps)
    }

    fn field_names(sections: &[SectionView]) -> Vec<&str> {
        sections
            .iter()
            .flat_map(|s| &s.fields)
            .map(|f| f.field.as_str())
            .collect()
    }

    fn action_ids(actions: &[ActionView]) -> Vec<&str> {
        actions.iter().map(|a| a.id.as_str()).collect()
    }

    fn field<'v>(sections: &'v [SectionView], name: &str) -> &'v FieldView {
        sections
            .iter()
            .flat_map(|s| &s.fields)
            .find(|f| f.field == name)
            .unwrap_or_else(|| panic!("no field {name}"))
    }

    #[test]
    fn navigation_differs_by_role() {
        let registry = samples();
        assert_eq!(
            menu(&registry, &role("viewer")),
            menu_of(&[
                ("orders", &["All orders"]),
                ("inventory", &["Products"]),
                ("customers", &["Customers"]),
            ])
        );
        assert_eq!(
            menu(&registry, &role("order_clerk")),
            menu_of(&[
                ("orders", &["All orders", "Open returns"]),
                ("customers", &["Customers"]),
            ])
        );
        assert_eq!(
            menu(&registry, &role("inventory_manager")),
            menu_of(&[("inventory", &["Products", "Warehouses"])])
        );
        assert_eq!(
            menu(&registry, &role("admin")),
            menu_of(&[
                ("orders", &["All orders", "Open returns"]),
                ("inventory", &["Products", "Warehouses"]),
                ("customers", &["Customers", "New customer"]),
            ])
        );
        assert!(navigation(&registry, &caps(&[])).items.is_empty());
    }

    #[test]
    fn navigation_sorts_by_order_then_label_with_unordered_last() {
        let registry = Registry::new(vec![
            served(
                "a",
                "domain: a\nversion: 1.0.0\nnavigation:\n  label: Zeta\n  children:\n    \
                 - {label: Late, route: /a/late}\n    \
                 - {label: Beta, route: /a/beta, order: 2}\n    \
                 - {label: Alpha, route: /a/alpha, order: 2}\n    \
                 - {label: First, route: /a/first, order: -1}\n",
            ),
            served(
                "b",
                "domain: b\nversion: 1.0.0\nnavigation: {label: Beta, order: 5}\n",
            ),
            served(
                "c",
                "domain: c\nversion: 1.0.0\nnavigation: {label: Alpha, order: 5}\n",
            ),
        ]);
        let nav = navigation(&registry, &caps(&["*"]));
        let domains: Vec<&str> = nav.items.iter().map(|i| i.label.as_str()).collect();
        assert_eq!(domains, ["Alpha", "Beta", "Zeta"]);
        let children: Vec<&str> = nav.items[2]
            .children
            .iter()
            .map(|c| c.label.as_str())
            .collect();
        assert_eq!(children, ["First", "Alpha", "Beta", "Late"]);

        let samples = samples();
        let orders: Vec<Option<i32>> = navigation(&samples, &role("admin"))
            .items
            .iter()
            .map(|i| i.order)
            .collect();
        assert_eq!(orders, [Some(10), Some(20), Some(30)]);
    }

    #[test]
    fn navigation_hides_items_leading_to_hidden_pages_and_then_their_domain() {
        let registry = Registry::new(vec![served(
            "a",
            "domain: a\nversion: 1.0.0\n\
             navigation:\n  label: A\n  children:\n    \
             - {label: Secret, route: /a/secret, page_id: a.secret}\n    \
             - {label: Missing, route: /a/missing, page_id: a.missing}\n\
             pages:\n  \
             - {id: a.secret, title: Secret, route: /a/secret, layout: detail, capabilities: ['a:secret']}\n",
        )]);
        // The item itself asks for nothing, but its page does.
        assert!(navigation(&registry, &caps(&["a:view"])).items.is_empty());
        assert_eq!(
            menu(&registry, &caps(&["a:secret"])),
            menu_of(&[("a", &["Secret"])])
        );

        // A domain declared without children is an entry of its own.
        let bare = Registry::new(vec![served(
            "b",
            "domain: b\nversion: 1.0.0\nnavigation: {label: B}\n",
        )]);
        assert_eq!(menu(&bare, &caps(&[])), menu_of(&[("b", &[])]));
    }

    #[test]
    fn navigation_badge_exposes_only_its_style() {
        let nav = navigation(&samples(), &role("viewer"));
        let json = serde_json::to_value(&nav.items[0].children[0]).unwrap();
        assert_eq!(json["badge"], serde_json::json!({"style": "warning"}));
    }

    #[test]
    fn page_hidden_without_its_capabilities() {
        let registry = samples();
        assert!(page_view(&registry, "orders.list", &role("inventory_manager")).is_none());
        assert!(page_view(&registry, "inventory.warehouses", &role("viewer")).is_none());
        assert!(page_view(&registry, "customers.new", &role("viewer")).is_none());
        assert!(page_view(&registry, "orders.returns", &role("viewer")).is_none());
        assert!(page_view(&registry, "orders.returns", &role("order_clerk")).is_some());
    }

    #[test]
    fn page_view_carries_table_and_urls() {
        let registry = samples();
        let view = page_view(&registry, "orders.list", &role("order_clerk")).unwrap();
        assert_eq!(view.domain, "orders");
        assert_eq!(view.layout, Layout::Table);
        assert_eq!(view.refresh_interval, Some(60));
        let table = view.table.unwrap();
        assert_eq!(table.data_url, "/ui/pages/orders.list/data");
        assert_eq!(table.columns.len(), 5);
        assert_eq!(table.filters.len(), 2);
        assert_eq!(
            table.filters[0]
                .options
                .as_ref()
                .unwrap()
                .lookup_id
                .as_deref(),
            Some("orders.statuses")
        );
        assert_eq!(table.filters[1].options.as_ref().unwrap().fixed.len(), 3);
        assert_eq!(action_ids(&table.row_actions), ["view", "cancel"]);
        assert_eq!(action_ids(&table.bulk_actions), ["confirm_selected"]);
        assert_eq!(table.default_sort.as_deref(), Some("created_at"));
        assert_eq!(table.sort_dir, Some(SortDir::Desc));
        assert_eq!(table.page_size, Some(25));
        assert!(table.selectable);

        let returns = page_view(&registry, "orders.returns", &role("order_clerk")).unwrap();
        assert_eq!(returns.refresh_interval, Some(300), "5m in seconds");
    }

    #[test]
    fn field_with_visibility_disappears_without_the_capability() {
        let registry = samples();
        let viewer = page_view(&registry, "orders.detail", &role("viewer")).unwrap();
        assert!(!field_names(&viewer.sections).contains(&"notes"));
        assert!(field_names(&viewer.sections).contains(&"priority"));
        let clerk = page_view(&registry, "orders.detail", &role("order_clerk")).unwrap();
        assert!(field_names(&clerk.sections).contains(&"notes"));
    }

    #[test]
    fn a_hidden_field_is_shown_to_no_one() {
        let registry = Registry::new(vec![served(
            "a",
            "domain: a\nversion: 1.0.0\npages:\n  \
             - id: a.p\n    title: P\n    route: /a\n    layout: detail\n    sections:\n      \
             - {id: s, fields: [{field: x, visibility: hidden}, {field: y}]}\n",
        )]);
        let view = page_view(&registry, "a.p", &caps(&["*"])).unwrap();
        assert_eq!(field_names(&view.sections), ["y"]);
    }

    #[test]
    fn section_with_capabilities_disappears_without_them() {
        let registry = samples();
        let sections = |role_name| {
            page_view(&registry, "customers.detail", &role(role_name))
                .unwrap()
                .sections
                .into_iter()
                .filter_map(|s| s.id)
                .collect::<Vec<_>>()
        };
        assert_eq!(sections("viewer"), ["contact"]);
        assert_eq!(sections("customer_service"), ["contact", "value"]);
    }

    #[test]
    fn section_whose_fields_are_all_hidden_disappears() {
        let registry = Registry::new(vec![served(
            "a",
            "domain: a\nversion: 1.0.0\npages:\n  \
             - id: a.p\n    title: P\n    route: /a\n    layout: detail\n    sections:\n      \
             - {id: secret, fields: [{field: x, visibility: 'a:secret'}]}\n      \
             - {id: empty}\n",
        )]);
        let ids = |caps: &CapabilitySet| {
            page_view(&registry, "a.p", caps)
                .unwrap()
                .sections
                .into_iter()
                .filter_map(|s| s.id)
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&caps(&[])), ["empty"]);
        assert_eq!(ids(&caps(&["a:secret"])), ["secret", "empty"]);
    }

    #[test]
    fn column_with_capability_visibility_and_its_filters_disappear() {
        let registry = Registry::new(vec![served(
            "a",
            "domain: a\nversion: 1.0.0\npages:\n  \
             - id: a.list\n    title: L\n    route: /a\n    layout: table\n    table:\n      \
             data_source: {operation_id: listA}\n      \
             columns:\n        - {field: name, label: Name, visible: desktop}\n        \
             - {field: value, label: Value, visible: 'a:finance'}\n      \
             filters:\n        - {field: value, operator: gt}\n        - {field: name}\n      \
             default_sort: value\n",
        )]);
        let table =
            |caps: &CapabilitySet| page_view(&registry, "a.list", caps).unwrap().table.unwrap();
        let without = table(&caps(&[]));
        let columns: Vec<_> = without.columns.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(columns, ["name"]);
        assert_eq!(without.columns[0].visible.as_deref(), Some("desktop"));
        assert_eq!(without.filters.len(), 1);
        assert_eq!(without.default_sort, None);
        let with = table(&caps(&["a:finance"]));
        assert_eq!(with.columns.len(), 2);
        assert_eq!(with.columns[1].visible, None, "the capability is resolved");
        assert_eq!(with.filters.len(), 2);
        assert_eq!(with.default_sort.as_deref(), Some("value"));

        // The sample: lifetime value only for those who may see finances.
        let samples = samples();
        let fields = |role_name| {
            page_view(&samples, "customers.list", &role(role_name))
                .unwrap()
                .table
                .unwrap()
                .columns
                .into_iter()
                .map(|c| c.field)
                .collect::<Vec<_>>()
        };
        assert!(!fields("viewer").contains(&"lifetime_value".to_string()));
        assert!(fields("customer_service").contains(&"lifetime_value".to_string()));
    }

    #[test]
    fn actions_follow_their_own_capabilities() {
        let registry = samples();
        let viewer = page_view(&registry, "orders.list", &role("viewer")).unwrap();
        let table = viewer.table.unwrap();
        assert_eq!(action_ids(&table.row_actions), ["view"]);
        assert!(table.bulk_actions.is_empty());
        let detail = page_view(&registry, "orders.detail", &role("viewer")).unwrap();
        assert!(detail.actions.is_empty());
        let clerk = page_view(&registry, "orders.detail", &role("order_clerk")).unwrap();
        assert_eq!(action_ids(&clerk.actions), ["edit", "return", "cancel"]);
    }

    /// A definition whose actions ask for nothing themselves, but lead to a
    /// command, a form, a workflow and a page that do.
    const TARGETS: &str = "domain: t\nversion: 1.0.0\n\
        pages:\n  \
        - id: t.page\n    title: T\n    route: /t\n    layout: detail\n    actions:\n      \
        - {id: run, label: Run, type: command, command_id: t.run}\n      \
        - {id: open, label: Open, type: form, form_id: t.form}\n      \
        - {id: start, label: Start, type: workflow, workflow_id: t.flow}\n      \
        - {id: go, label: Go, type: navigate, navigate_to: /t/secret}\n      \
        - {id: away, label: Away, type: navigate, navigate_to: /elsewhere}\n      \
        - {id: lost, label: Lost, type: command, command_id: t.unknown}\n  \
        - {id: t.secret, title: S, route: /t/secret, layout: detail, capabilities: ['t:secret']}\n\
        forms:\n  \
        - {id: t.form, title: F, submit_command: t.submit, success_route: /t/secret}\n\
        commands:\n  \
        - {id: t.run, capabilities: ['t:run'], operation: {operation_id: runT}}\n  \
        - {id: t.submit, capabilities: ['t:submit'], operation: {operation_id: submitT}}\n\
        workflows:\n  \
        - id: t.flow\n    name: Flow\n    capabilities: ['t:flow']\n    initial_step: done\n    \
        steps: [{id: done, type: terminal}]\n";

    #[test]
    fn action_disappears_when_its_target_is_out_of_reach() {
        let registry = Registry::new(vec![served("t", TARGETS)]);
        let actions = |granted: &[&str]| {
            page_view(&registry, "t.page", &caps(granted))
                .unwrap()
                .actions
                .into_iter()
                .map(|a| a.id)
                .collect::<Vec<_>>()
        };
        assert_eq!(actions(&[]), ["away"]);
        assert_eq!(actions(&["t:run"]), ["run", "away"]);
        assert_eq!(actions(&["t:submit"]), ["open", "away"]);
        assert_eq!(actions(&["t:flow"]), ["start", "away"]);
        assert_eq!(actions(&["t:secret"]), ["go", "away"]);
        assert_eq!(
            actions(&["t:run", "t:submit", "t:flow", "t:secret"]),
            ["run", "open", "start", "go", "away"],
            "an unknown command is never offered"
        );
    }

    #[test]
    fn command_target_found_in_another_definition() {
        let registry = Registry::new(vec![
            served(
                "a",
                "domain: a\nversion: 1.0.0\npages:\n  \
                 - id: a.p\n    title: P\n    route: /a\n    layout: detail\n    actions:\n      \
                 - {id: run, label: Run, type: command, command_id: b.run}\n",
            ),
            served(
                "b",
                "domain: b\nversion: 1.0.0\ncommands:\n  \
                 - {id: b.run, capabilities: ['b:run'], operation: {operation_id: runB}}\n",
            ),
        ]);
        let ids = |granted: &[&str]| {
            action_ids(&page_view(&registry, "a.p", &caps(granted)).unwrap().actions)
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert!(ids(&[]).is_empty());
        assert_eq!(ids(&["b:run"]), ["run"]);
    }

    #[test]
    fn read_only_is_resolved_for_the_caller() {
        let registry = samples();
        let viewer = page_view(&registry, "orders.detail", &role("viewer")).unwrap();
        let clerk = page_view(&registry, "orders.detail", &role("order_clerk")).unwrap();
        // `read_only: orders:edit`: editable only with the capability.
        assert!(field(&viewer.sections, "priority").read_only);
        assert!(!field(&clerk.sections, "priority").read_only);
        // `read_only: true` for everyone, absent for no one.
        assert!(field(&clerk.sections, "order_number").read_only);
        assert!(!field(&viewer.sections, "shipping_address.city").read_only);

        let viewer_caps = role("viewer");
        let caller = Caller::new(
            &registry,
            &registry.definitions()[0].definition,
            &viewer_caps,
        );
        assert!(caller.read_only(Some("TRUE")));
        assert!(caller.read_only(Some("always")), "Thesa's word");
        assert!(!caller.read_only(Some("false")));
        assert!(!caller.read_only(None));
        assert!(!caller.read_only(Some("orders:view")));
        assert!(caller.read_only(Some("orders:edit")));

        let json = serde_json::to_value(field(&clerk.sections, "priority")).unwrap();
        assert_eq!(
            json["read_only"],
            serde_json::json!(false),
            "always serialized"
        );
    }

    #[test]
    fn breadcrumbs_and_links_to_hidden_pages_lose_their_route() {
        let registry = Registry::new(vec![served(
            "a",
            "domain: a\nversion: 1.0.0\npages:\n  \
             - id: a.list\n    title: L\n    route: /a\n    layout: table\n    \
             capabilities: ['a:list']\n    table:\n      data_source: {operation_id: listA}\n      \
             columns: [{field: id, label: ID}]\n  \
             - id: a.item\n    title: I\n    route: /a/{id}\n    layout: table\n    \
             breadcrumb: [{label: All, route: /a}, {label: Item}]\n    table:\n      \
             data_source: {operation_id: listB}\n      \
             columns: [{field: id, label: ID, link: {route: /a, params: {}}}]\n",
        )]);
        let view = page_view(&registry, "a.item", &caps(&[])).unwrap();
        assert_eq!(view.breadcrumb[0].label, "All");
        assert_eq!(view.breadcrumb[0].route, None);
        assert_eq!(view.table.unwrap().columns[0].link, None);
        let view = page_view(&registry, "a.item", &caps(&["a:list"])).unwrap();
        assert_eq!(view.breadcrumb[0].route.as_deref(), Some("/a"));
        assert!(view.table.unwrap().columns[0].link.is_some());
    }

    #[test]
    fn form_needs_its_capabilities_and_its_submit_command() {
        let registry = samples();
        assert!(form_view(&registry, "orders.edit_form", &role("viewer")).is_none());
        let view = form_view(&registry, "orders.edit_form", &role("order_clerk")).unwrap();
        assert_eq!(view.domain, "orders");
        assert_eq!(view.submit_url, "/ui/commands/orders.update");
        assert_eq!(
            view.data_url.as_deref(),
            Some("/ui/forms/orders.edit_form/data")
        );
        assert_eq!(view.success_route.as_deref(), Some("/orders/{id}"));
        assert_eq!(view.success_message.as_deref(), Some("Order saved."));
        assert_eq!(view.sections.len(), 2);
        assert!(field(&view.sections, "priority").required);

        let create = form_view(
            &registry,
            "customers.create_form",
            &role("customer_service"),
        );
        assert_eq!(
            create.unwrap().data_url,
            None,
            "no load_source, no data URL"
        );

        // The form itself asks for nothing, its command does.
        let targets = Registry::new(vec![served("t", TARGETS)]);
        assert!(form_view(&targets, "t.form", &caps(&[])).is_none());
        let view = form_view(&targets, "t.form", &caps(&["t:submit"])).unwrap();
        assert_eq!(view.success_route, None, "its page is out of reach");
    }

    #[test]
    fn views_never_expose_backend_details() {
        let registry = samples();
        let forbidden = [
            "operation_id",
            "service_id",
            "handler",
            "field_map",
            "data_source",
            "load_source",
            "items_path",
            "capabilities",
            "body_mapping",
            "path_params",
            "getOrderCounts",
            "listOrders",
            "orders-svc",
        ];
        let mut documents =
            vec![serde_json::to_string(&navigation(&registry, &role("admin"))).unwrap()];
        for served in registry.definitions() {
            for p in &served.definition.pages {
                let view = page(&registry, served, p, &role("admin")).unwrap();
                documents.push(serde_json::to_string(&view).unwrap());
            }
            for f in &served.definition.forms {
                let view = form(&registry, served, f, &role("admin")).unwrap();
                documents.push(serde_json::to_string(&view).unwrap());
            }
        }
        for document in &documents {
            for word in forbidden {
                assert!(!document.contains(word), "{word} in {document}");
            }
        }
    }
}
