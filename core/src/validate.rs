//! The validator: the rules of the definition format over a *set* of
//! definitions, against the indexed OpenAPI specs and the registered SDK
//! handlers. One validator serves the operator, the BFF and the CLI.
//!
//! Structural rules (required fields, types, enums, ranges, formats,
//! unknown keys) run when a definition is loaded ([`LoadedDefinition`]);
//! [`validate`] adds the rules that need the whole set and the specs.

use std::borrow::Borrow;
use std::collections::hash_map::{Entry, HashMap};
use std::collections::{BTreeSet, HashSet, VecDeque};

use serde_json::Value;

use crate::checksum::{self, Checksum};
use crate::finding::{Code, Finding, Reporter};
use crate::load::{self, Schema, SchemaCell};
use crate::model::{
    ALWAYS_READ_ONLY, Action, ActionType, BodyMapping, DataSource, Definition, Filter, Form,
    HIDDEN, InputMapping, Layout, OperationBinding, OperationType, Options, Page, Section,
    StepType, Table, Workflow,
};
use crate::node::Node;
use crate::openapi::{Operation, OperationIndex, Presence, ServiceSpec};
use crate::path::Path;
use crate::suggest;

static SCHEMA: SchemaCell = SchemaCell::new();

/// The structural rules of a definition document.
pub fn definition_schema() -> &'static Schema {
    SCHEMA.get::<Definition>()
}

/// A definition as loaded from a file or a custom resource.
#[derive(Debug)]
pub struct LoadedDefinition {
    /// The file, or `namespace/name` of the custom resource.
    pub source: String,
    /// The parsed text, for positions (`None` for custom resources).
    pub document: Option<Node>,
    /// The definition, `None` when it did not load (see the findings).
    pub definition: Option<Definition>,
    /// The IDs a definition that did not load declares, so that the rest
    /// of the set is not blamed for referring to them.
    unloaded_ids: Vec<(Kind, String)>,
}

impl LoadedDefinition {
    /// Parses and loads a YAML or JSON text, adding structural findings.
    pub fn from_text(source: impl Into<String>, text: &str, findings: &mut Vec<Finding>) -> Self {
        let source = source.into();
        let loaded = load::from_text(definition_schema(), &source, text, findings);
        Self::new(source, loaded.document, loaded.value, Vec::new())
    }

    /// Loads a parsed tree, such as the `spec` of a manifest read from a
    /// file: findings carry the file's positions.
    pub fn from_node(source: impl Into<String>, node: Node, findings: &mut Vec<Finding>) -> Self {
        let source = source.into();
        let loaded = load::from_node(definition_schema(), &source, node, findings);
        Self::new(source, loaded.document, loaded.value, Vec::new())
    }

    /// Loads a JSON value (a custom resource's spec), adding structural
    /// findings without positions.
    pub fn from_value(
        source: impl Into<String>,
        value: Value,
        findings: &mut Vec<Finding>,
    ) -> Self {
        let source = source.into();
        let ids = raw_ids(&value);
        let definition = load::from_value(definition_schema(), &source, value, findings);
        Self::new(source, None, definition, ids)
    }

    fn new(
        source: String,
        document: Option<Node>,
        definition: Option<Definition>,
        raw: Vec<(Kind, String)>,
    ) -> Self {
        let unloaded_ids = match (&definition, &document) {
            (Some(_), _) => Vec::new(),
            (None, Some(document)) => raw_ids(&document.to_json()),
            (None, None) => raw,
        };
        Self {
            source,
            document,
            definition,
            unloaded_ids,
        }
    }

    /// The checksum of the definition's canonical form, if it loaded.
    pub fn checksum(&self) -> Option<Checksum> {
        self.definition.as_ref().map(checksum::definition_checksum)
    }

    fn reporter<'a>(&'a self, findings: &'a mut Vec<Finding>) -> Reporter<'a> {
        Reporter::new(&self.source, self.document.as_ref(), findings)
    }

    /// `file:line:col` of `path`, for messages that point elsewhere.
    fn location(&self, path: &Path) -> String {
        match &self.document {
            Some(document) => {
                let pos = document.locate(path);
                format!("{}:{}:{}", self.source, pos.line, pos.column)
            }
            None => self.source.clone(),
        }
    }
}

/// The checksum of the set of loaded definitions, independent of order.
pub fn set_checksum(definitions: &[LoadedDefinition]) -> Checksum {
    let members: Vec<(&str, Checksum)> = definitions
        .iter()
        .filter_map(|d| {
            let def = d.definition.as_ref()?;
            Some((def.domain.as_str(), checksum::definition_checksum(def)))
        })
        .collect();
    checksum::set_checksum(members)
}

/// Kinds of IDs that other elements look up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Page,
    Form,
    Command,
    Workflow,
    Search,
    Lookup,
}

impl Kind {
    const ALL: [Kind; 6] = [
        Kind::Page,
        Kind::Form,
        Kind::Command,
        Kind::Workflow,
        Kind::Search,
        Kind::Lookup,
    ];

    /// The definition's list of elements of this kind.
    fn list(self) -> &'static str {
        match self {
            Self::Page => "pages",
            Self::Form => "forms",
            Self::Command => "commands",
            Self::Workflow => "workflows",
            Self::Search => "searches",
            Self::Lookup => "lookups",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Page => "page",
            Self::Form => "form",
            Self::Command => "command",
            Self::Workflow => "workflow",
            Self::Search => "search",
            Self::Lookup => "lookup",
        }
    }
}

/// Where an ID was first defined: the definition's index and the path.
type Origin = (usize, Path);

/// The IDs and routes of the whole set.
#[derive(Default)]
struct Catalog<'a> {
    ids: HashMap<(Kind, &'a str), Origin>,
    names: HashMap<Kind, Vec<&'a str>>,
    /// IDs read from definitions that did not load: references to them are
    /// not reported again (their definition's errors already are).
    unloaded: HashSet<(Kind, String)>,
}

impl Catalog<'_> {
    fn contains(&self, kind: Kind, id: &str) -> bool {
        self.ids.contains_key(&(kind, id)) || self.unloaded.contains(&(kind, id.to_string()))
    }

    fn hint(&self, kind: Kind, id: &str) -> String {
        suggest::hint(id, self.names.get(&kind).into_iter().flatten().copied())
    }
}

/// SDK handlers every `thesa-bff` build registers (the BFF's `handlers`
/// module). `handler` names are checked against these and any others a
/// caller adds (builds with their own handlers).
pub const BUILTIN_HANDLERS: &[&str] = &["files.upload", "notify.webhook"];

/// The built-in handler names plus `extra`.
pub fn known_handlers(extra: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    BUILTIN_HANDLERS
        .iter()
        .map(|name| name.to_string())
        .chain(extra)
        .collect()
}

/// Runs the set-level rules over the loaded definitions: operations exist
/// (rule 2), references resolve (3), IDs and routes are unique (4), path
/// parameters are mapped (5), capabilities are well formed (6), workflows
/// are well formed (7), plus conditional required fields (1) and the
/// warnings. Definitions that did not load are skipped.
pub fn validate(
    definitions: &[impl Borrow<LoadedDefinition>],
    index: &OperationIndex,
    handlers: &BTreeSet<String>,
) -> Vec<Finding> {
    validate_with(definitions, index, handlers, Checks::default())
}

/// Which checks run besides the rules.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checks {
    /// The conventions (`thesa-bff validate --lint`, `definitions.lint`):
    /// capability namespaces that differ from the domain
    /// (`CAPABILITY_NAMESPACE_MISMATCH`), versions that are not semantic
    /// versions, unquoted literals in input mappings, default sorts on no
    /// sortable column. Warnings that teach; off by default because
    /// definitions written for Thesa break them by design (a domain
    /// `profiles` with capabilities `profile:view`).
    pub lint: bool,
}

/// [`validate`], with the conventions of `checks` too.
pub fn validate_with(
    definitions: &[impl Borrow<LoadedDefinition>],
    index: &OperationIndex,
    handlers: &BTreeSet<String>,
    checks: Checks,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let catalog = catalog(definitions, &mut findings);
    for loaded in definitions.iter().map(Borrow::borrow) {
        let Some(def) = &loaded.definition else {
            continue;
        };
        let mut checker = Checker {
            def,
            reporter: loaded.reporter(&mut findings),
            index,
            handlers,
            catalog: &catalog,
            checks,
        };
        checker.definition();
    }
    findings
}

/// Collects the IDs of the set, reporting duplicates (rule 4).
fn catalog<'a, D: Borrow<LoadedDefinition>>(
    definitions: &'a [D],
    findings: &mut Vec<Finding>,
) -> Catalog<'a> {
    let mut catalog = Catalog::default();
    let mut routes: HashMap<String, Origin> = HashMap::new();
    let mut domains: HashMap<&str, Origin> = HashMap::new();
    for (n, loaded) in definitions.iter().map(Borrow::borrow).enumerate() {
        let Some(def) = &loaded.definition else {
            catalog.unloaded.extend(loaded.unloaded_ids.iter().cloned());
            continue;
        };
        let mut reporter = loaded.reporter(findings);
        let domain_path = Path::root().key("domain");
        if let Some((first, _)) =
            first_definition(&mut domains, def.domain.as_str(), (n, domain_path.clone()))
        {
            let message = format!(
                "domain {:?} is also defined by {}; each domain has one definition",
                def.domain,
                definitions[first].borrow().source
            );
            reporter.report(Code::DuplicateDomain, &domain_path, message);
        }
        for (kind, id, path) in defined_ids(def) {
            match first_definition(&mut catalog.ids, (kind, id), (n, path.clone())) {
                Some((first, first_path)) => {
                    let message = format!(
                        "{} ID {id:?} is already defined at {}",
                        kind.name(),
                        definitions[first].borrow().location(&first_path)
                    );
                    reporter.report(Code::DuplicateId, &path, message);
                }
                None => catalog.names.entry(kind).or_default().push(id),
            }
        }
        for (i, page) in def.pages.iter().enumerate() {
            let path = Path::root().key("pages").index(i).key("route");
            let route = normalize_route(&page.route);
            if let Some((first, first_path)) =
                first_definition(&mut routes, route, (n, path.clone()))
            {
                let message = format!(
                    "route {:?} is already used at {}",
                    page.route,
                    definitions[first].borrow().location(&first_path)
                );
                reporter.report(Code::DuplicateRoute, &path, message);
            }
        }
    }
    catalog
}

/// Records where `key` is defined, unless it already was: then returns the
/// first definition.
fn first_definition<K: Eq + std::hash::Hash>(
    seen: &mut HashMap<K, Origin>,
    key: K,
    origin: Origin,
) -> Option<Origin> {
    match seen.entry(key) {
        Entry::Occupied(first) => Some(first.get().clone()),
        Entry::Vacant(slot) => {
            slot.insert(origin);
            None
        }
    }
}

/// The looked-up IDs in the JSON of a definition that did not load.
fn raw_ids(value: &Value) -> Vec<(Kind, String)> {
    Kind::ALL
        .iter()
        .flat_map(|kind| {
            let items = value.get(kind.list()).and_then(Value::as_array);
            items
                .into_iter()
                .flatten()
                .filter_map(|item| Some((*kind, item.get("id")?.as_str()?.to_string())))
        })
        .collect()
}

/// The looked-up IDs a definition defines, with their paths.
fn defined_ids(def: &Definition) -> Vec<(Kind, &str, Path)> {
    let ids = |kind: Kind| -> Vec<&str> {
        match kind {
            Kind::Page => def.pages.iter().map(|x| x.id.as_str()).collect(),
            Kind::Form => def.forms.iter().map(|x| x.id.as_str()).collect(),
            Kind::Command => def.commands.iter().map(|x| x.id.as_str()).collect(),
            Kind::Workflow => def.workflows.iter().map(|x| x.id.as_str()).collect(),
            Kind::Search => def.searches.iter().map(|x| x.id.as_str()).collect(),
            Kind::Lookup => def.lookups.iter().map(|x| x.id.as_str()).collect(),
        }
    };
    Kind::ALL
        .iter()
        .flat_map(|&kind| {
            ids(kind)
                .into_iter()
                .enumerate()
                .map(move |(i, id)| (kind, id, Path::root().key(kind.list()).index(i).key("id")))
        })
        .collect()
}

/// Routes that differ only in parameter names (`/o/{id}`, `/o/:order`) or a
/// trailing slash are the same route.
fn normalize_route(route: &str) -> String {
    route
        .trim_end_matches('/')
        .split('/')
        .map(|segment| {
            if segment.starts_with(':') || (segment.starts_with('{') && segment.ends_with('}')) {
                "{}"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The transitions of a workflow between steps, by step index.
struct StepGraph {
    /// Resolved transitions, from → to.
    edges: Vec<Vec<usize>>,
    /// Whether a step has any transition out (even to an unknown step).
    exits: Vec<bool>,
    /// Whether every transition resolved.
    complete: bool,
}

/// A resolved backend operation.
type Resolved<'a> = (&'a ServiceSpec, &'a Operation);

fn describe_operation(op: &Operation) -> String {
    format!("{} ({} {})", op.operation_id, op.method, op.path)
}

struct Checker<'a> {
    def: &'a Definition,
    reporter: Reporter<'a>,
    index: &'a OperationIndex,
    handlers: &'a BTreeSet<String>,
    catalog: &'a Catalog<'a>,
    checks: Checks,
}

impl<'a> Checker<'a> {
    fn definition(&mut self) {
        let def = self.def;
        let root = Path::root();
        if self.checks.lint && !is_semver(&def.version) {
            self.reporter.report(
                Code::VersionNotSemver,
                &root.key("version"),
                format!(
                    "{:?} is not a semantic version such as \"1.0.0\"; `thesa-bff diff` and \
                     reviewers read versions as MAJOR.MINOR.PATCH",
                    def.version
                ),
            );
        }
        if let Some(nav) = &def.navigation {
            let at = root.key("navigation");
            self.capabilities(&at, &nav.capabilities);
            for (i, child) in nav.children.iter().enumerate() {
                let at = at.key("children").index(i);
                self.capabilities(&at, &child.capabilities);
                if let Some(page_id) = &child.page_id {
                    // Thesa lets a menu item open a form by its ID here.
                    if !self.catalog.contains(Kind::Form, page_id) {
                        self.reference(&at.key("page_id"), Kind::Page, page_id);
                    }
                }
                if let Some(badge) = &child.badge {
                    let at = at.key("badge");
                    self.openapi_operation(&at, &badge.operation_id, badge.service_id.as_deref());
                }
            }
        }
        for (i, page) in def.pages.iter().enumerate() {
            self.page(&root.key("pages").index(i), page);
        }
        for (i, form) in def.forms.iter().enumerate() {
            self.form(&root.key("forms").index(i), form);
        }
        for (i, command) in def.commands.iter().enumerate() {
            let at = root.key("commands").index(i);
            self.capabilities(&at, &command.capabilities);
            let resolved = self.operation(&at.key("operation"), &command.operation);
            self.input(&at, command.input.as_ref(), resolved);
        }
        for (i, workflow) in def.workflows.iter().enumerate() {
            self.workflow(&root.key("workflows").index(i), workflow);
        }
        for (i, search) in def.searches.iter().enumerate() {
            let at = root.key("searches").index(i);
            self.capabilities(&at, &search.capabilities);
            let resolved = self.operation(&at.key("operation"), &search.operation);
            if let Some(items_path) = &search.result_mapping.items_path {
                let at = at.key("result_mapping").key("items_path");
                self.items_path(&at, items_path, resolved);
            }
        }
        for (i, lookup) in def.lookups.iter().enumerate() {
            let at = root.key("lookups").index(i);
            match &lookup.operation {
                Some(op) => {
                    self.operation(&at.key("operation"), op);
                }
                None => self.reporter.report(
                    Code::LookupWithoutOperation,
                    &at,
                    format!(
                        "lookup {:?} has no operation, so it has no options to serve",
                        lookup.id
                    ),
                ),
            }
        }
    }

    fn page(&mut self, at: &Path, page: &'a Page) {
        self.capabilities(at, &page.capabilities);
        if page.layout == Layout::Table && page.table.is_none() {
            self.reporter.report(
                Code::MissingField,
                &at.key("table"),
                "a page with layout \"table\" needs a table",
            );
        }
        let route = RouteParams::of(&page.route);
        let mut inline = InlineLookups::default();
        if let Some(table) = &page.table {
            let at = at.key("table");
            match &table.data_source {
                Some(source) => {
                    self.page_source(&at.key("data_source"), source, &route, false);
                }
                None => self.reporter.report(
                    Code::MissingField,
                    &at.key("data_source"),
                    "a page's table needs data_source",
                ),
            }
            self.table(&at, table, &mut inline);
        }
        if let Some(source) = &page.data_source {
            self.page_source(&at.key("data_source"), source, &route, true);
        }
        self.sections(&at.key("sections"), &page.sections, &mut inline);
        self.page_sections(&at.key("sections"), &page.sections, &route, &mut inline);
        self.actions(&at.key("actions"), &page.actions);
    }

    /// What a table has besides its data source: filters, actions and, with
    /// `--lint`, its default sort.
    fn table(&mut self, at: &Path, table: &'a Table, inline: &mut InlineLookups<'a>) {
        for (i, filter) in table.filters.iter().enumerate() {
            self.filter(&at.key("filters").index(i), filter, inline);
        }
        self.actions(&at.key("row_actions"), &table.row_actions);
        self.actions(&at.key("bulk_actions"), &table.bulk_actions);
        if let Some(sort) = table.default_sort.as_deref().filter(|_| self.checks.lint) {
            let sortable = table.columns.iter().any(|c| c.field == sort && c.sortable);
            if !sortable {
                let columns: Vec<&str> = table
                    .columns
                    .iter()
                    .filter(|c| c.sortable)
                    .map(|c| c.field.as_str())
                    .collect();
                self.reporter.report(
                    Code::DefaultSortNotSortable,
                    &at.key("default_sort"),
                    format!(
                        "default_sort {sort:?} is not a sortable column (sortable: {}); the \
                         rows are sorted by it, but the frontend cannot show that order",
                        list_or_none(&columns)
                    ),
                );
            }
        }
    }

    fn filter(&mut self, at: &Path, filter: &'a Filter, inline: &mut InlineLookups<'a>) {
        if let (Some(_), Some(_)) = (&filter.options, &filter.lookup) {
            self.reporter.report(
                Code::ConflictingFields,
                &at.key("lookup"),
                "set either options or lookup, not both",
            );
        }
        if let Some(options) = &filter.options {
            self.options(&at.key("options"), options);
        }
        if let Some(lookup) = &filter.lookup {
            self.options(&at.key("lookup"), lookup);
            inline.add(&mut self.reporter, &filter.field, lookup, at.key("lookup"));
        }
    }

    /// The data source of a page (`record`: of its record) or of its table
    /// (`record` false), whose `{placeholders}` and path parameters come
    /// from the page's route.
    fn page_source(&mut self, at: &Path, source: &DataSource, route: &RouteParams, record: bool) {
        let resolved = self.data_source(at, source);
        let empty = Default::default();
        let request_mapping = source
            .mapping
            .as_ref()
            .map_or(&empty, |m| &m.request_mapping);
        let mapping_at = at.key("mapping").key("request_mapping");
        for (target, template) in request_mapping {
            for name in placeholders(template) {
                if !route.names.contains(&name) {
                    let message = format!(
                        "{{{name}}} is not a parameter of the page's route {:?}{}",
                        route.route,
                        match route.names.is_empty() {
                            true => " (it has none)".to_string(),
                            false => suggest::hint(name, route.names.iter().copied()),
                        }
                    );
                    self.reporter.report(
                        Code::RouteParamUnknown,
                        &mapping_at.key(target.as_str()),
                        message,
                    );
                }
            }
        }
        // A table's path parameters may also come from the query string
        // (filters of the caller's choosing); a record's only from the route.
        let Some((_, op)) = resolved.filter(|_| record) else {
            return;
        };
        for name in op.path_template_params() {
            if !route.names.contains(&name) && !request_mapping.contains_key(name) {
                let message = format!(
                    "path parameter {name:?} of {} is neither a parameter of the page's route \
                     {:?} nor in mapping.request_mapping",
                    describe_operation(op),
                    route.route
                );
                self.reporter
                    .report(Code::PathParamMissing, &at.key("operation_id"), message);
            }
        }
    }

    /// What only page sections have: their own data source and table.
    fn page_sections(
        &mut self,
        at: &Path,
        sections: &'a [Section],
        route: &RouteParams,
        inline: &mut InlineLookups<'a>,
    ) {
        let mut ids: HashMap<&str, Path> = HashMap::new();
        for (i, section) in sections.iter().enumerate() {
            let at = at.index(i);
            if section.data_source.is_none() && section.table.is_none() {
                continue;
            }
            match &section.id {
                None => self.reporter.report(
                    Code::MissingField,
                    &at.key("id"),
                    "a section with its own data_source or table needs an id: its data is \
                     served under it",
                ),
                Some(id) => {
                    if let Some(first) = ids.get(id.as_str()) {
                        let message = format!(
                            "section ID {id:?} is already used at {} of this page",
                            first
                        );
                        self.reporter
                            .report(Code::DuplicateId, &at.key("id"), message);
                    } else {
                        ids.insert(id, at.key("id"));
                    }
                }
            }
            if let Some(source) = &section.data_source {
                let record = section.table.is_none();
                self.page_source(&at.key("data_source"), source, route, record);
            }
            let Some(table) = &section.table else {
                continue;
            };
            let table_at = at.key("table");
            match (&section.data_source, &table.data_source) {
                (Some(_), Some(_)) => self.reporter.report(
                    Code::ConflictingFields,
                    &table_at.key("data_source"),
                    "the section has a data_source already; set it on the section or on its \
                     table, not both",
                ),
                (None, Some(source)) => {
                    self.page_source(&table_at.key("data_source"), source, route, false);
                }
                (None, None) => self.reporter.report(
                    Code::MissingField,
                    &at.key("data_source"),
                    "a section with a table needs a data_source (on the section or its table)",
                ),
                (Some(_), None) => {}
            }
            self.table(&table_at, table, inline);
        }
    }

    fn form(&mut self, at: &Path, form: &'a Form) {
        self.capabilities(at, &form.capabilities);
        self.reference(
            &at.key("submit_command"),
            Kind::Command,
            &form.submit_command,
        );
        if let Some(source) = &form.load_source {
            self.data_source(&at.key("load_source"), source);
        }
        let mut inline = InlineLookups::default();
        self.sections(&at.key("sections"), &form.sections, &mut inline);
        for (i, section) in form.sections.iter().enumerate() {
            let at = at.key("sections").index(i);
            for (key, set) in [
                ("data_source", section.data_source.is_some()),
                ("table", section.table.is_some()),
            ] {
                if set {
                    self.reporter.report_key(
                        Code::UnknownField,
                        &at.key(key),
                        format!(
                            "{key} of a form section is ignored: only page sections load \
                             data (a form's record comes from load_source)"
                        ),
                    );
                }
            }
        }
    }

    fn sections(&mut self, at: &Path, sections: &'a [Section], inline: &mut InlineLookups<'a>) {
        for (i, section) in sections.iter().enumerate() {
            let at = at.index(i);
            self.capabilities(&at, &section.capabilities);
            for (j, field) in section.fields.iter().enumerate() {
                let at = at.key("fields").index(j);
                if let (Some(help), Some(hint)) = (&field.help_text, &field.hint) {
                    if help != hint {
                        self.reporter.report(
                            Code::ConflictingFields,
                            &at.key("hint"),
                            "hint and help_text are two names of the help text; set one",
                        );
                    }
                }
                if let Some(capability) = field.visibility.as_ref().filter(|v| *v != HIDDEN) {
                    self.capability(&at.key("visibility"), capability);
                }
                // `read_only` is `true`/`always`/`false` or the capability
                // that makes the field editable.
                if let Some(read_only) = &field.read_only {
                    let fixed =
                        read_only == "false" || ALWAYS_READ_ONLY.contains(&read_only.as_str());
                    if !fixed {
                        self.capability(&at.key("read_only"), read_only);
                    }
                }
                if let Some(lookup) = &field.lookup {
                    self.options(&at.key("lookup"), lookup);
                    inline.add(&mut self.reporter, &field.field, lookup, at.key("lookup"));
                }
            }
        }
    }

    /// The choices of a field or filter: at most one source (a lookup ID,
    /// an inline lookup or static choices); an inline lookup's operation
    /// exists and it names the fields of its choices.
    fn options(&mut self, at: &Path, options: &Options) {
        let sources = usize::from(options.lookup_id.is_some())
            + usize::from(!options.fixed.is_empty())
            + usize::from(options.is_inline());
        if sources > 1 {
            self.reporter.report(
                Code::ConflictingFields,
                at,
                "set one source of choices: lookup_id, an inline lookup (operation_id, \
                 label_field, value_field) or static",
            );
            return;
        }
        if let Some(id) = &options.lookup_id {
            self.reference(&at.key("lookup_id"), Kind::Lookup, id);
        }
        if !options.is_inline() {
            // Thesa's format allows options without a source (no choices).
            return;
        }
        match &options.operation_id {
            Some(id) => {
                self.openapi_operation(at, id, options.service_id.as_deref());
            }
            None => self.reporter.report(
                Code::MissingField,
                &at.key("operation_id"),
                "an inline lookup needs operation_id",
            ),
        }
        for (key, value) in [
            ("label_field", &options.label_field),
            ("value_field", &options.value_field),
        ] {
            if value.is_none() {
                self.reporter.report(
                    Code::MissingField,
                    &at.key(key),
                    format!("an inline lookup needs {key}"),
                );
            }
        }
    }

    fn actions(&mut self, at: &Path, actions: &[Action]) {
        for (i, action) in actions.iter().enumerate() {
            let at = at.index(i);
            self.capabilities(&at, &action.capabilities);
            if let (ActionType::Navigate, Some(to), Some(route)) =
                (action.kind, &action.navigate_to, &action.route)
            {
                if to != route {
                    self.reporter.report(
                        Code::ConflictingFields,
                        &at.key("route"),
                        "route and navigate_to are two names of the route a navigate action \
                         opens; set one",
                    );
                }
            }
            let (key, target, kind) = match action.kind {
                ActionType::Command | ActionType::Confirm => {
                    ("command_id", &action.command_id, Some(Kind::Command))
                }
                ActionType::Form => ("form_id", &action.form_id, Some(Kind::Form)),
                ActionType::Workflow => ("workflow_id", &action.workflow_id, Some(Kind::Workflow)),
                ActionType::Navigate => ("navigate_to", &action.target_route().cloned(), None),
            };
            match (target, kind) {
                (None, _) => self.reporter.report(
                    Code::MissingField,
                    &at.key(key),
                    match action.kind {
                        ActionType::Navigate => {
                            "an action of type \"navigate\" needs navigate_to (or route)"
                                .to_string()
                        }
                        kind => format!("an action of type {:?} needs {key}", type_name(kind)),
                    },
                ),
                (Some(id), Some(kind)) => self.reference(&at.key(key), kind, id),
                (Some(_), None) => {}
            }
        }
    }

    fn workflow(&mut self, at: &Path, workflow: &Workflow) {
        self.capabilities(at, &workflow.capabilities);
        let mut steps: HashMap<&str, usize> = HashMap::new();
        for (i, step) in workflow.steps.iter().enumerate() {
            let step_at = at.key("steps").index(i);
            if steps.contains_key(step.id.as_str()) {
                self.reporter.report(
                    Code::DuplicateId,
                    &step_at.key("id"),
                    format!("step ID {:?} is used twice in this workflow", step.id),
                );
            } else {
                steps.insert(&step.id, i);
            }
            self.capabilities(&step_at, &step.capabilities);
            if let Some(form_id) = &step.form_id {
                self.reference(&step_at.key("form_id"), Kind::Form, form_id);
            }
            match &step.operation {
                Some(op) => {
                    let resolved = self.operation(&step_at.key("operation"), op);
                    self.input(&step_at, step.input.as_ref(), resolved);
                }
                None if step.kind == StepType::System => self.reporter.report(
                    Code::MissingField,
                    &step_at.key("operation"),
                    "a system step needs an operation to call",
                ),
                None => {}
            }
        }
        let step_ids = || workflow.steps.iter().map(|s| s.id.as_str());
        let step_ref = |reporter: &mut Reporter<'_>, path: &Path, id: &str, what: &str| {
            if steps.contains_key(id) {
                return true;
            }
            let hint = suggest::hint(id, step_ids());
            reporter.report(
                Code::ReferenceNotFound,
                path,
                format!("{what} {id:?} is not a step of this workflow{hint}"),
            );
            false
        };
        let initial = step_ref(
            &mut self.reporter,
            &at.key("initial_step"),
            &workflow.initial_step,
            "initial step",
        )
        .then(|| steps[workflow.initial_step.as_str()]);
        let mut graph = StepGraph {
            edges: vec![Vec::new(); workflow.steps.len()],
            exits: vec![false; workflow.steps.len()],
            complete: true,
        };
        for (i, transition) in workflow.transitions.iter().enumerate() {
            let t_at = at.key("transitions").index(i);
            let from = step_ref(
                &mut self.reporter,
                &t_at.key("from"),
                &transition.from,
                "step",
            )
            .then(|| steps[transition.from.as_str()]);
            let to = step_ref(&mut self.reporter, &t_at.key("to"), &transition.to, "step")
                .then(|| steps[transition.to.as_str()]);
            if let Some(guard) = &transition.guard {
                self.capability(&t_at.key("guard"), guard);
            }
            if let Some(from) = from {
                graph.exits[from] = true;
            }
            match (from, to) {
                (Some(from), Some(to)) => graph.edges[from].push(to),
                _ => graph.complete = false,
            }
        }
        // Steps with a duplicate ID were reported above; judge the first.
        let firsts: Vec<usize> = steps.values().copied().collect();
        self.workflow_graph(at, workflow, initial, &graph, &firsts);
    }

    /// Rule 7: every step reachable from the initial step, every non-terminal
    /// step has a way out, and a terminal step is reachable from every step.
    /// Where a transition names an unknown step, reachability is uncertain,
    /// so only the verdicts that do not depend on it are given.
    fn workflow_graph(
        &mut self,
        at: &Path,
        workflow: &Workflow,
        initial: Option<usize>,
        graph: &StepGraph,
        steps: &[usize],
    ) {
        let edges = &graph.edges;
        let mut reverse: Vec<Vec<usize>> = vec![Vec::new(); edges.len()];
        for (from, tos) in edges.iter().enumerate() {
            for &to in tos {
                reverse[to].push(from);
            }
        }
        let is_terminal = |i: usize| workflow.steps[i].kind == StepType::Terminal;
        let terminals: Vec<usize> = steps.iter().copied().filter(|&i| is_terminal(i)).collect();
        if terminals.is_empty() {
            self.reporter.report(
                Code::WorkflowNoTerminalPath,
                &at.key("steps"),
                "the workflow has no terminal step, so no instance can ever finish",
            );
        }
        let reachable = initial
            .filter(|_| graph.complete)
            .map(|i| reach(edges, [i]));
        let finishing = reach(&reverse, terminals.iter().copied());
        let mut sorted = steps.to_vec();
        sorted.sort_unstable();
        for i in sorted {
            let step = &workflow.steps[i];
            let step_at = at.key("steps").index(i);
            if reachable.as_ref().is_some_and(|r| !r[i]) {
                self.reporter.report(
                    Code::WorkflowUnreachableStep,
                    &step_at.key("id"),
                    format!(
                        "step {:?} cannot be reached from the initial step {:?}",
                        step.id, workflow.initial_step
                    ),
                );
            }
            if is_terminal(i) {
                continue;
            }
            if !graph.exits[i] {
                self.reporter.report(
                    Code::WorkflowDeadEnd,
                    &step_at.key("id"),
                    format!(
                        "step {:?} is not terminal and has no outgoing transition",
                        step.id
                    ),
                );
            } else if graph.complete && !finishing[i] && !terminals.is_empty() {
                self.reporter.report(
                    Code::WorkflowNoTerminalPath,
                    &step_at.key("id"),
                    format!("no terminal step can be reached from step {:?}", step.id),
                );
            }
        }
    }

    /// Rule 2 for an operation binding, with rule 1's conditional fields.
    fn operation(&mut self, at: &Path, op: &OperationBinding) -> Option<Resolved<'a>> {
        match op.kind {
            OperationType::Openapi => match &op.operation_id {
                Some(id) => self.openapi_operation(at, id, op.service_id.as_deref()),
                None => {
                    self.reporter.report(
                        Code::MissingField,
                        &at.key("operation_id"),
                        "an operation of type \"openapi\" needs operation_id",
                    );
                    None
                }
            },
            OperationType::Sdk => {
                match &op.handler {
                    Some(handler) => self.handler(&at.key("handler"), handler),
                    None => self.reporter.report(
                        Code::MissingField,
                        &at.key("handler"),
                        "an operation of type \"sdk\" needs handler",
                    ),
                }
                None
            }
        }
    }

    fn data_source(&mut self, at: &Path, source: &DataSource) -> Option<Resolved<'a>> {
        let resolved = match (&source.operation_id, &source.handler) {
            (Some(_), Some(_)) => {
                self.reporter.report(
                    Code::ConflictingFields,
                    at,
                    "set either operation_id or handler, not both",
                );
                None
            }
            (Some(id), None) => self.openapi_operation(at, id, source.service_id.as_deref()),
            (None, Some(handler)) => {
                self.handler(&at.key("handler"), handler);
                None
            }
            (None, None) => {
                self.reporter.report(
                    Code::MissingField,
                    &at.key("operation_id"),
                    "a data source needs operation_id (or handler)",
                );
                None
            }
        };
        if let Some(items_path) = source.mapping.as_ref().and_then(|m| m.items_path.as_ref()) {
            self.items_path(&at.key("mapping").key("items_path"), items_path, resolved);
        }
        resolved
    }

    /// Finds `operation_id` in the named service, or in the one spec that
    /// has it. `at` is the path of the binding holding `operation_id` and
    /// `service_id`.
    fn openapi_operation(
        &mut self,
        at: &Path,
        id: &str,
        service_id: Option<&str>,
    ) -> Option<Resolved<'a>> {
        let index = self.index;
        let id_path = at.key("operation_id");
        let Some(service_id) = service_id else {
            return match index.services_with(id) {
                [one] => index.service(one).and_then(|s| Some((s, s.operation(id)?))),
                [] => {
                    let hint = suggest::hint(id, index.operation_ids());
                    let message = format!(
                        "operation {id:?} not found in any loaded spec{hint}{}",
                        broken_specs(index)
                    );
                    self.reporter
                        .report(Code::OperationNotFound, &id_path, message);
                    None
                }
                several => {
                    let message = format!(
                        "operation {id:?} is in the specs of several services ({}); set service_id",
                        several.join(", ")
                    );
                    self.reporter
                        .report(Code::OperationAmbiguous, &id_path, message);
                    None
                }
            };
        };
        let Some(spec) = index.service(service_id) else {
            let known: Vec<&str> = index.services().map(|s| s.service_id.as_str()).collect();
            let message = format!(
                "service {service_id:?} has no loaded spec{} (loaded: {})",
                suggest::hint(service_id, known.iter().copied()),
                list_or_none(&known)
            );
            self.reporter
                .report(Code::ServiceNotFound, &at.key("service_id"), message);
            return None;
        };
        if let Some(op) = spec.operation(id) {
            return Some((spec, op));
        }
        if !spec.loaded {
            // The spec's own errors are already reported.
            return None;
        }
        let elsewhere = index.services_with(id);
        let message = if elsewhere.is_empty() {
            format!(
                "operation {id:?} not found in service {service_id:?}{}",
                suggest::hint(id, spec.operation_ids())
            )
        } else {
            format!(
                "operation {id:?} not found in service {service_id:?}; it is in {}",
                elsewhere.join(", ")
            )
        };
        self.reporter
            .report(Code::OperationNotFound, &id_path, message);
        None
    }

    fn handler(&mut self, at: &Path, handler: &str) {
        if self.handlers.contains(handler) {
            return;
        }
        let registered: Vec<&str> = self.handlers.iter().map(String::as_str).collect();
        let message = format!(
            "handler {handler:?} is not registered{} (registered: {})",
            suggest::hint(handler, registered.iter().copied()),
            list_or_none(&registered)
        );
        self.reporter
            .report(Code::HandlerNotRegistered, at, message);
    }

    /// Rule 5 (path parameters), rule 1 for body mappings, and the
    /// projection warning. `at` is the element holding `input`.
    fn input(&mut self, at: &Path, input: Option<&InputMapping>, resolved: Option<Resolved<'_>>) {
        let empty = InputMapping::default();
        let input_at = at.key("input");
        let mapping = input.unwrap_or(&empty);
        match mapping.body_mapping.unwrap_or_default() {
            BodyMapping::Projection if mapping.field_projection.is_empty() => self.reporter.report(
                Code::MissingField,
                &input_at.key("field_projection"),
                "body_mapping \"projection\" needs field_projection",
            ),
            BodyMapping::Template if mapping.body_template.is_empty() => self.reporter.report(
                Code::MissingField,
                &input_at.key("body_template"),
                "body_mapping \"template\" needs body_template",
            ),
            _ => {}
        }
        let mappings = [
            ("path_params", &mapping.path_params),
            ("query_params", &mapping.query_params),
            ("header_params", &mapping.header_params),
            ("body_template", &mapping.body_template),
            ("field_projection", &mapping.field_projection),
        ];
        for (key, values) in mappings {
            for (name, expression) in values {
                let path = input_at.key(key).key(name.as_str());
                match check_expression(expression) {
                    Err(why) => {
                        let message = format!("{expression:?} {why}; {EXPRESSION_FORMS}");
                        self.reporter
                            .report(Code::InvalidExpression, &path, message);
                    }
                    Ok(Expression::BareWord) if self.checks.lint => {
                        let word = expression.trim();
                        let message = format!(
                            "{word:?} is read as the text '{word}'; quote it to say so, \
                             \"'{word}'\" in YAML (Thesa's resolver refuses a bare word at run \
                             time)"
                        );
                        self.reporter.report(Code::UnquotedLiteral, &path, message);
                    }
                    Ok(_) => {}
                }
            }
        }
        let Some((spec, op)) = resolved else { return };
        let params_at = input_at.key("path_params");
        let template = op.path_template_params();
        for name in &template {
            if !mapping.path_params.contains_key(*name) {
                let message = format!(
                    "path parameter {name:?} of {} has no mapping in input.path_params",
                    describe_operation(op)
                );
                self.reporter
                    .report(Code::PathParamMissing, &params_at, message);
            }
        }
        for name in mapping.path_params.keys() {
            if !template.contains(&name.as_str()) {
                let message = format!(
                    "{name:?} is not a path parameter of {}{}",
                    describe_operation(op),
                    match template.is_empty() {
                        true => " (it has none)".to_string(),
                        false => suggest::hint(name, template.iter().copied()),
                    }
                );
                self.reporter.report_key(
                    Code::PathParamUnknown,
                    &params_at.key(name.as_str()),
                    message,
                );
            }
        }
        if mapping.body_mapping == Some(BodyMapping::Projection) {
            let Some(schema) = &op.request_body else {
                return;
            };
            for target in mapping.field_projection.keys() {
                // Thesa sends `data.name: ...` as the flat key "data.name";
                // a schema may also declare it nested.
                let flat = spec.segments_presence(schema, &[target.as_str()]);
                let nested = spec.property_presence(schema, target);
                if flat == Presence::Undeclared && nested == Presence::Undeclared {
                    let message = format!(
                        "field_projection target {target:?} is not declared by the request schema of {}",
                        describe_operation(op)
                    );
                    let path = input_at.key("field_projection").key(target.as_str());
                    self.reporter
                        .report_key(Code::ProjectionFieldUndeclared, &path, message);
                }
            }
        }
    }

    fn items_path(&mut self, at: &Path, items_path: &str, resolved: Option<Resolved<'_>>) {
        let Some((spec, op)) = resolved else { return };
        let Some(schema) = &op.response else { return };
        if spec.property_presence(schema, items_path) == Presence::Undeclared {
            let message = format!(
                "items_path {items_path:?} is not in the response schema of {}",
                describe_operation(op)
            );
            self.reporter
                .report(Code::ItemsPathNotInResponse, at, message);
        }
    }

    fn reference(&mut self, at: &Path, kind: Kind, id: &str) {
        if !self.catalog.contains(kind, id) {
            let message = format!(
                "{} {id:?} is not defined in any loaded definition{}",
                kind.name(),
                self.catalog.hint(kind, id)
            );
            self.reporter.report(Code::ReferenceNotFound, at, message);
        }
    }

    fn capabilities(&mut self, at: &Path, capabilities: &[String]) {
        for (i, capability) in capabilities.iter().enumerate() {
            self.capability(&at.key("capabilities").index(i), capability);
        }
    }

    /// Rule 6 and the namespace warning. `*` (every capability) is one too,
    /// as in Thesa's format.
    fn capability(&mut self, at: &Path, capability: &str) {
        if capability == "*" {
            return;
        }
        let segments: Vec<&str> = capability.split(':').collect();
        let well_formed = segments.len() >= 2
            && segments
                .iter()
                .all(|s| !s.is_empty() && !s.contains(char::is_whitespace));
        if !well_formed {
            let message = format!(
                "capability {capability:?} must look like namespace:action[:scope], e.g. \"{}:view\"",
                self.def.domain
            );
            self.reporter.report(Code::InvalidCapability, at, message);
            return;
        }
        let namespace = segments[0];
        if self.checks.lint && namespace != self.def.domain && namespace != "*" {
            let message = format!(
                "capability {capability:?} is in namespace {namespace:?}, not in this definition's domain {:?}",
                self.def.domain
            );
            self.reporter
                .report(Code::CapabilityNamespaceMismatch, at, message);
        }
    }
}

/// The parameters of a page's route: `{id}` and `:id` segments.
struct RouteParams<'r> {
    route: &'r str,
    names: Vec<&'r str>,
}

impl<'r> RouteParams<'r> {
    fn of(route: &'r str) -> Self {
        let names = route
            .split('/')
            .filter_map(|segment| {
                segment
                    .strip_prefix(':')
                    .or_else(|| segment.strip_prefix('{')?.strip_suffix('}'))
            })
            .filter(|name| !name.is_empty())
            .collect();
        Self { route, names }
    }
}

/// The `{name}` placeholders of a template such as `"{id}"`.
pub fn placeholders(template: &str) -> impl Iterator<Item = &str> {
    template
        .split('{')
        .skip(1)
        .filter_map(|part| part.split_once('}').map(|(name, _)| name))
}

/// The inline lookups of one page or form by field: the BFF serves each
/// under an ID made of the page or form and the field, so one field may
/// not have two different ones.
#[derive(Default)]
struct InlineLookups<'a> {
    by_field: HashMap<&'a str, (&'a Options, Path)>,
}

impl<'a> InlineLookups<'a> {
    fn add(&mut self, reporter: &mut Reporter<'_>, field: &'a str, options: &'a Options, at: Path) {
        if !options.is_inline() {
            return;
        }
        match self.by_field.get(field) {
            Some((first, _)) if same_source(first, options) => {}
            Some((_, first_at)) => {
                let message = format!(
                    "field {field:?} already has a different inline lookup at {first_at}; both \
                     would be served under one ID (make them the same, or use named lookups)"
                );
                reporter.report(Code::DuplicateId, &at, message);
            }
            None => {
                self.by_field.insert(field, (options, at));
            }
        }
    }
}

fn same_source(a: &Options, b: &Options) -> bool {
    (
        &a.operation_id,
        &a.service_id,
        &a.label_field,
        &a.value_field,
        &a.search_field,
    ) == (
        &b.operation_id,
        &b.service_id,
        &b.label_field,
        &b.value_field,
        &b.search_field,
    )
}

/// Whether `version` is a semantic version (semver.org 2.0.0).
fn is_semver(version: &str) -> bool {
    let identifiers_ok = |text: &str, numeric_rule: bool| {
        text.split('.').all(|id| {
            !id.is_empty()
                && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !(numeric_rule
                    && id.len() > 1
                    && id.starts_with('0')
                    && id.chars().all(|c| c.is_ascii_digit()))
        })
    };
    let (rest, build) = match version.split_once('+') {
        Some((rest, build)) => (rest, Some(build)),
        None => (version, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (rest, None),
    };
    let numbers: Vec<&str> = core.split('.').collect();
    numbers.len() == 3
        && numbers.iter().all(|n| {
            !n.is_empty()
                && n.chars().all(|c| c.is_ascii_digit())
                && (n.len() == 1 || !n.starts_with('0'))
        })
        && pre.is_none_or(|p| identifiers_ok(p, true))
        && build.is_none_or(|b| identifiers_ok(b, false))
}

/// `a, b, c`, or `none`.
fn list_or_none(names: &[&str]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

/// The expressions an input mapping may use, as Thesa's resolver reads them.
const EXPRESSION_FORMS: &str = "use input.<field>, route.<param>, workflow.<field>, \
     context.subject_id|tenant_id|partition_id|email, 'text' or a number";

/// What kind of value an input mapping expression is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expression {
    /// A reference (`input.x`), a quoted text or a number.
    Plain,
    /// A bare word such as `LINK_STATE_PAUSED`: read as that text.
    BareWord,
}

/// Whether `expression` is a bare word (letters, digits, `_` and `-`,
/// starting with a letter or `_`), which the BFF reads as literal text.
pub fn is_bare_word(expression: &str) -> bool {
    let mut chars = expression.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Checks an input mapping expression; says what is wrong with it.
fn check_expression(expression: &str) -> Result<Expression, &'static str> {
    let e = expression.trim();
    if e.len() >= 2 && e.starts_with('\'') && e.ends_with('\'') {
        return Ok(Expression::Plain);
    }
    let unsigned = e.strip_prefix(['-', '+']).unwrap_or(e);
    let is_number = !unsigned.is_empty()
        && unsigned.chars().all(|c| c.is_ascii_digit() || c == '.')
        && unsigned.chars().filter(|&c| c == '.').count() <= 1
        && unsigned.chars().any(|c| c.is_ascii_digit());
    if is_number {
        return Ok(Expression::Plain);
    }
    if is_bare_word(e) {
        return Ok(Expression::BareWord);
    }
    let Some((source, rest)) = e.split_once('.') else {
        return Err("has no source prefix");
    };
    let parts_ok = !rest.is_empty() && rest.split('.').all(|p| !p.is_empty());
    match source {
        "input" | "workflow" if parts_ok => Ok(Expression::Plain),
        "route" if parts_ok && !rest.contains('.') => Ok(Expression::Plain),
        "context" if matches!(rest, "subject_id" | "tenant_id" | "partition_id" | "email") => {
            Ok(Expression::Plain)
        }
        "input" | "workflow" | "route" | "context" => Err("names no field the BFF knows"),
        _ => Err("has an unknown source prefix"),
    }
}

fn type_name(kind: ActionType) -> &'static str {
    match kind {
        ActionType::Command => "command",
        ActionType::Confirm => "confirm",
        ActionType::Navigate => "navigate",
        ActionType::Form => "form",
        ActionType::Workflow => "workflow",
    }
}

/// A note naming specs that failed to load, which may be why an operation
/// is missing.
fn broken_specs(index: &OperationIndex) -> String {
    let broken: Vec<&str> = index
        .services()
        .filter(|s| !s.loaded)
        .map(|s| s.service_id.as_str())
        .collect();
    if broken.is_empty() {
        String::new()
    } else {
        format!(" (the specs of {} did not load)", broken.join(", "))
    }
}

/// Which nodes can be reached from `start` along `edges`.
fn reach(edges: &[Vec<usize>], start: impl IntoIterator<Item = usize>) -> Vec<bool> {
    let mut seen = vec![false; edges.len()];
    let mut queue: VecDeque<usize> = VecDeque::new();
    for s in start {
        if !seen[s] {
            seen[s] = true;
            queue.push_back(s);
        }
    }
    while let Some(node) = queue.pop_front() {
        for &next in &edges[node] {
            if !seen[next] {
                seen[next] = true;
                queue.push_back(next);
            }
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_routes() {
        assert_eq!(
            normalize_route("/orders/{id}/"),
            normalize_route("/orders/:order_id")
        );
        assert_ne!(
            normalize_route("/orders/{id}"),
            normalize_route("/orders/new")
        );
    }

    #[test]
    fn checks_expressions_like_thesas_resolver() {
        for ok in [
            "input.id",
            "input.address.city",
            "route.id",
            "workflow.order_id",
            "context.tenant_id",
            "'csv'",
            "42",
            "-1.5",
        ] {
            assert_eq!(check_expression(ok), Ok(Expression::Plain), "{ok}");
        }
        for word in ["id", "LINK_STATE_PAUSED", "a-b"] {
            assert_eq!(check_expression(word), Ok(Expression::BareWord), "{word}");
        }
        for bad in [
            "row.id",
            "route.a.b",
            "context.roles",
            "input.",
            "input..x",
            "''x",
            "1.2.3",
            "",
        ] {
            assert!(check_expression(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tells_semantic_versions() {
        for ok in ["1.0.0", "0.1.2-rc.1", "10.20.30+build.7", "1.0.0-alpha-1"] {
            assert!(is_semver(ok), "{ok}");
        }
        for bad in [
            "1.0", "v1.0.0", "01.0.0", "1.0.0-01", "1.0.0-", "latest", "",
        ] {
            assert!(!is_semver(bad), "{bad}");
        }
    }

    #[test]
    fn reads_route_parameters() {
        assert_eq!(RouteParams::of("/a/{id}/b/:x").names, ["id", "x"]);
        assert!(RouteParams::of("/a").names.is_empty());
        assert_eq!(placeholders("{a}-{b}").collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn reaches_along_edges() {
        let edges = vec![vec![1], vec![2], vec![], vec![0]];
        assert_eq!(reach(&edges, [0]), vec![true, true, true, false]);
    }
}
