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
    Action, ActionType, BodyMapping, DataSource, Definition, Form, InputMapping, Layout,
    OperationBinding, OperationType, Options, Page, Section, StepType, Workflow,
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
pub const BUILTIN_HANDLERS: &[&str] = &["notify.webhook"];

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
}

impl<'a> Checker<'a> {
    fn definition(&mut self) {
        let def = self.def;
        let root = Path::root();
        if let Some(nav) = &def.navigation {
            let at = root.key("navigation");
            self.capabilities(&at, &nav.capabilities);
            for (i, child) in nav.children.iter().enumerate() {
                let at = at.key("children").index(i);
                self.capabilities(&at, &child.capabilities);
                if let Some(page_id) = &child.page_id {
                    self.reference(&at.key("page_id"), Kind::Page, page_id);
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

    fn page(&mut self, at: &Path, page: &Page) {
        self.capabilities(at, &page.capabilities);
        if page.layout == Layout::Table && page.table.is_none() {
            self.reporter.report(
                Code::MissingField,
                &at.key("table"),
                "a page with layout \"table\" needs a table",
            );
        }
        if let Some(table) = &page.table {
            let at = at.key("table");
            self.data_source(&at.key("data_source"), &table.data_source);
            for (i, filter) in table.filters.iter().enumerate() {
                if let Some(options) = &filter.options {
                    self.options(&at.key("filters").index(i).key("options"), options);
                }
            }
            self.actions(&at.key("row_actions"), &table.row_actions);
            self.actions(&at.key("bulk_actions"), &table.bulk_actions);
        }
        self.sections(&at.key("sections"), &page.sections);
        self.actions(&at.key("actions"), &page.actions);
    }

    fn form(&mut self, at: &Path, form: &Form) {
        self.capabilities(at, &form.capabilities);
        self.reference(
            &at.key("submit_command"),
            Kind::Command,
            &form.submit_command,
        );
        if let Some(source) = &form.load_source {
            self.data_source(&at.key("load_source"), source);
        }
        self.sections(&at.key("sections"), &form.sections);
    }

    fn sections(&mut self, at: &Path, sections: &[Section]) {
        for (i, section) in sections.iter().enumerate() {
            let at = at.index(i);
            self.capabilities(&at, &section.capabilities);
            for (j, field) in section.fields.iter().enumerate() {
                let at = at.key("fields").index(j);
                if let Some(capability) = &field.visibility {
                    self.capability(&at.key("visibility"), capability);
                }
                // `read_only` is `true`/`false` or the capability that makes
                // the field editable.
                if let Some(read_only) = &field.read_only {
                    if read_only != "true" && read_only != "false" {
                        self.capability(&at.key("read_only"), read_only);
                    }
                }
                if let Some(lookup) = &field.lookup {
                    self.options(&at.key("lookup"), lookup);
                }
            }
        }
    }

    fn options(&mut self, at: &Path, options: &Options) {
        match (&options.lookup_id, options.fixed.is_empty()) {
            (Some(_), false) => self.reporter.report(
                Code::ConflictingFields,
                at,
                "set either lookup_id or static choices, not both",
            ),
            (Some(id), true) => self.reference(&at.key("lookup_id"), Kind::Lookup, id),
            // Thesa's format allows options without a source (no choices).
            (None, _) => {}
        }
    }

    fn actions(&mut self, at: &Path, actions: &[Action]) {
        for (i, action) in actions.iter().enumerate() {
            let at = at.index(i);
            self.capabilities(&at, &action.capabilities);
            let (key, target, kind) = match action.kind {
                ActionType::Command => ("command_id", &action.command_id, Some(Kind::Command)),
                ActionType::Form => ("form_id", &action.form_id, Some(Kind::Form)),
                ActionType::Workflow => ("workflow_id", &action.workflow_id, Some(Kind::Workflow)),
                ActionType::Navigate => ("navigate_to", &action.navigate_to, None),
            };
            match (target, kind) {
                (None, _) => self.reporter.report(
                    Code::MissingField,
                    &at.key(key),
                    format!("an action of type {:?} needs {key}", type_name(action.kind)),
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

    fn data_source(&mut self, at: &Path, source: &DataSource) {
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
                if let Err(why) = check_expression(expression) {
                    let message = format!("{expression:?} {why}; {EXPRESSION_FORMS}");
                    let path = input_at.key(key).key(name.as_str());
                    self.reporter
                        .report(Code::InvalidExpression, &path, message);
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

    /// Rule 6 and the namespace warning.
    fn capability(&mut self, at: &Path, capability: &str) {
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
        if namespace != self.def.domain && namespace != "*" {
            let message = format!(
                "capability {capability:?} is in namespace {namespace:?}, not in this definition's domain {:?}",
                self.def.domain
            );
            self.reporter
                .report(Code::CapabilityNamespaceMismatch, at, message);
        }
    }
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

/// Checks an input mapping expression; says what is wrong with it.
fn check_expression(expression: &str) -> Result<(), &'static str> {
    let e = expression.trim();
    if e.len() >= 2 && e.starts_with('\'') && e.ends_with('\'') {
        return Ok(());
    }
    let unsigned = e.strip_prefix(['-', '+']).unwrap_or(e);
    let is_number = !unsigned.is_empty()
        && unsigned.chars().all(|c| c.is_ascii_digit() || c == '.')
        && unsigned.chars().filter(|&c| c == '.').count() <= 1
        && unsigned.chars().any(|c| c.is_ascii_digit());
    if is_number {
        return Ok(());
    }
    let Some((source, rest)) = e.split_once('.') else {
        return Err("has no source prefix");
    };
    let parts_ok = !rest.is_empty() && rest.split('.').all(|p| !p.is_empty());
    match source {
        "input" | "workflow" if parts_ok => Ok(()),
        "route" if parts_ok && !rest.contains('.') => Ok(()),
        "context" if matches!(rest, "subject_id" | "tenant_id" | "partition_id" | "email") => {
            Ok(())
        }
        "input" | "workflow" | "route" | "context" => Err("names no field the BFF knows"),
        _ => Err("has an unknown source prefix"),
    }
}

fn type_name(kind: ActionType) -> &'static str {
    match kind {
        ActionType::Command => "command",
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
            assert_eq!(check_expression(ok), Ok(()), "{ok}");
        }
        for bad in [
            "id",
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
    fn reaches_along_edges() {
        let edges = vec![vec![1], vec![2], vec![], vec![0]];
        assert_eq!(reach(&edges, [0]), vec![true, true, true, false]);
    }
}
