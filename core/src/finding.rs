//! Findings: what the validator reports, each with a stable code, a
//! severity, the source, a path into the document and, for text input, a
//! line and column.

use std::fmt;

use serde::Serialize;

use crate::node::{Node, Pos};
use crate::path::Path;

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Blocks the definition (or spec, or config).
    Error,
    /// Reported; does not block.
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Error => "error",
            Self::Warning => "warning",
        })
    }
}

macro_rules! codes {
    ($( $(#[doc = $doc:literal])* $variant:ident = $text:literal, $severity:ident; )*) => {
        /// The stable code of a finding. Codes never change meaning; new
        /// rules get new codes. `docs/validation.md` lists them all.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl Code {
            /// Every code, in declaration order.
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];

            /// The code as written in reports, e.g. `OPERATION_NOT_FOUND`.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $text,)* }
            }

            /// The severity every finding with this code has.
            pub fn severity(self) -> Severity {
                match self { $(Code::$variant => Severity::$severity,)* }
            }
        }
    };
}

codes! {
    /// The text is not well-formed YAML or JSON (syntax, duplicate key,
    /// several documents in one file, nesting or aliases beyond the limits).
    ParseError = "PARSE_ERROR", Error;
    /// A required field is missing (rule 1).
    MissingField = "MISSING_FIELD", Error;
    /// A value has the wrong type, e.g. a list where a mapping belongs (rule 1).
    InvalidType = "INVALID_TYPE", Error;
    /// A value is not one of the allowed values of an enumeration (rule 1).
    InvalidEnum = "INVALID_ENUM", Error;
    /// A number is outside its allowed range (rule 1).
    OutOfRange = "OUT_OF_RANGE", Error;
    /// A string does not have the required form: domain name, semantic
    /// version, duration (rule 1).
    InvalidFormat = "INVALID_FORMAT", Error;
    /// Two fields that exclude each other are both set, e.g. a data source
    /// with both `operation_id` and `handler` (rule 1).
    ConflictingFields = "CONFLICTING_FIELDS", Error;
    /// No loaded spec of the named service has the `operation_id` (rule 2).
    OperationNotFound = "OPERATION_NOT_FOUND", Error;
    /// No `service_id` is given and several loaded specs have the
    /// `operation_id` (rule 2).
    OperationAmbiguous = "OPERATION_AMBIGUOUS", Error;
    /// The `service_id` names no loaded spec (rule 2).
    ServiceNotFound = "SERVICE_NOT_FOUND", Error;
    /// The `handler` of an `sdk` operation is not a registered handler (rule 2).
    HandlerNotRegistered = "HANDLER_NOT_REGISTERED", Error;
    /// A `page_id`, `form_id`, `command_id`, `submit_command`, `lookup_id`,
    /// `workflow_id`, `initial_step` or transition step names nothing (rule 3).
    ReferenceNotFound = "REFERENCE_NOT_FOUND", Error;
    /// An ID is defined twice among the loaded definitions (rule 4).
    DuplicateId = "DUPLICATE_ID", Error;
    /// Two pages have the same route (rule 4).
    DuplicateRoute = "DUPLICATE_ROUTE", Error;
    /// Two loaded definitions declare the same domain (rule 4).
    DuplicateDomain = "DUPLICATE_DOMAIN", Error;
    /// A path parameter of the operation's path template has no mapping (rule 5).
    PathParamMissing = "PATH_PARAM_MISSING", Error;
    /// A `{placeholder}` of a page's or section's `request_mapping` is not
    /// a parameter of the page's route (rule 3).
    RouteParamUnknown = "ROUTE_PARAM_UNKNOWN", Error;
    /// A `path_params` mapping names no path parameter of the operation (rule 5).
    PathParamUnknown = "PATH_PARAM_UNKNOWN", Error;
    /// A capability is not of the form `namespace:action[:scope]` (rule 6).
    InvalidCapability = "INVALID_CAPABILITY", Error;
    /// With `strict_checksums`, a definition's checksum is not the one the
    /// checksum manifest lists for its domain, or the domain is not listed
    /// (it was changed outside the CI pipeline that wrote the manifest).
    ChecksumMismatch = "CHECKSUM_MISMATCH", Error;
    /// With `strict_checksums`, there is no checksum manifest, or it cannot
    /// be read.
    ChecksumManifestInvalid = "CHECKSUM_MANIFEST_INVALID", Error;
    /// A workflow step cannot be reached from `initial_step` (rule 7).
    WorkflowUnreachableStep = "WORKFLOW_UNREACHABLE_STEP", Error;
    /// A non-terminal workflow step has no outgoing transition (rule 7).
    WorkflowDeadEnd = "WORKFLOW_DEAD_END", Error;
    /// No terminal step can be reached from a workflow step (rule 7).
    WorkflowNoTerminalPath = "WORKFLOW_NO_TERMINAL_PATH", Error;
    /// An OpenAPI document is not an OpenAPI 3.0 or 3.1 document.
    SpecInvalid = "SPEC_INVALID", Error;
    /// A local `$ref` of an OpenAPI document points at nothing.
    SpecRefUnresolved = "SPEC_REF_UNRESOLVED", Error;
    /// Two operations of one OpenAPI document share an `operationId`.
    SpecDuplicateOperationId = "SPEC_DUPLICATE_OPERATION_ID", Error;
    /// Two OpenAPI documents are loaded for the same service ID.
    SpecDuplicateService = "SPEC_DUPLICATE_SERVICE", Error;
    /// A `$ref` to another document is not followed (only local references are).
    SpecExternalRef = "SPEC_EXTERNAL_REF", Warning;
    /// A key that the format does not define; it is ignored.
    UnknownField = "UNKNOWN_FIELD", Warning;
    /// Lint (only on request): a capability's namespace differs from the
    /// definition's domain.
    CapabilityNamespaceMismatch = "CAPABILITY_NAMESPACE_MISMATCH", Warning;
    /// Lint (only on request): `version` is not a semantic version.
    VersionNotSemver = "VERSION_NOT_SEMVER", Warning;
    /// Lint (only on request): an input mapping value is a bare word, read
    /// as that text; Thesa's resolver refuses it at run time.
    UnquotedLiteral = "UNQUOTED_LITERAL", Warning;
    /// Lint (only on request): a table's `default_sort` names no sortable
    /// column, so the frontend cannot show or toggle that order.
    DefaultSortNotSortable = "DEFAULT_SORT_NOT_SORTABLE", Warning;
    /// A `field_projection` target that the operation's request schema does
    /// not declare.
    ProjectionFieldUndeclared = "PROJECTION_FIELD_UNDECLARED", Warning;
    /// An `items_path` that the operation's response schema does not have.
    ItemsPathNotInResponse = "ITEMS_PATH_NOT_IN_RESPONSE", Warning;
    /// A lookup without an operation: it has no options to serve.
    LookupWithoutOperation = "LOOKUP_WITHOUT_OPERATION", Warning;
    /// An input mapping value that is not an expression the BFF resolves
    /// (`input.x`, `route.x`, `context.tenant_id`, `workflow.x`, `'text'`, 42).
    InvalidExpression = "INVALID_EXPRESSION", Warning;
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// One problem found in a definition, a spec or a config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The stable code of the rule.
    pub code: Code,
    /// Error or warning (fixed by the code).
    pub severity: Severity,
    /// The file, or `namespace/name` of a custom resource.
    pub source: String,
    /// Line (1-based), for text input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// Column (1-based), for text input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
    /// Path into the document, e.g. `pages[2].table.data_source.operation_id`.
    pub path: String,
    /// What is wrong, in words, with a hint how to fix it where there is one.
    pub message: String,
}

impl Finding {
    /// The sort key that orders findings by source and position.
    pub fn sort_key(&self) -> (&str, u32, u32, Code, &str) {
        (
            &self.source,
            self.line.unwrap_or(0),
            self.column.unwrap_or(0),
            self.code,
            &self.message,
        )
    }
}

impl fmt::Display for Finding {
    /// `file:line:col: severity[CODE] path: message`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": {}[{}] ", self.severity, self.code)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Collects findings about one document, placing each at the line and
/// column of its path when the document came from text.
#[derive(Debug)]
pub struct Reporter<'a> {
    source: &'a str,
    document: Option<&'a Node>,
    findings: &'a mut Vec<Finding>,
}

impl<'a> Reporter<'a> {
    /// A reporter for `source` whose text parsed to `document` (`None` for
    /// documents that did not come from text, such as custom resources).
    pub fn new(
        source: &'a str,
        document: Option<&'a Node>,
        findings: &'a mut Vec<Finding>,
    ) -> Self {
        Self {
            source,
            document,
            findings,
        }
    }

    /// Reports a finding about the value at `path`.
    pub fn report(&mut self, code: Code, path: &Path, message: impl Into<String>) {
        let pos = self.document.map(|d| d.locate(path));
        self.push(code, path, pos, message.into());
    }

    /// Reports a finding about the key that ends `path` (unknown keys).
    pub fn report_key(&mut self, code: Code, path: &Path, message: impl Into<String>) {
        let pos = self.document.map(|d| d.locate_key(path));
        self.push(code, path, pos, message.into());
    }

    /// Reports a finding at a known position.
    pub fn report_at(&mut self, code: Code, path: &Path, pos: Pos, message: impl Into<String>) {
        self.push(code, path, Some(pos), message.into());
    }

    fn push(&mut self, code: Code, path: &Path, pos: Option<Pos>, message: String) {
        self.findings.push(Finding {
            code,
            severity: code.severity(),
            source: self.source.to_string(),
            line: pos.map(|p| p.line),
            column: pos.map(|p| p.column),
            path: path.to_string(),
            message,
        });
    }
}

/// Counts errors and warnings.
pub fn count(findings: &[Finding]) -> (usize, usize) {
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    (errors, findings.len() - errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_and_upper_snake_case() {
        let mut seen = HashSet::new();
        for code in Code::ALL {
            assert!(seen.insert(code.as_str()), "duplicate {code}");
            assert!(
                code.as_str()
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c == '_')
            );
        }
    }

    #[test]
    fn displays_like_a_compiler() {
        let finding = Finding {
            code: Code::OperationNotFound,
            severity: Severity::Error,
            source: "definitions/orders/definition.yaml".into(),
            line: Some(42),
            column: Some(9),
            path: "commands[1].operation.operation_id".into(),
            message: "operation \"cancelOrdr\" not found".into(),
        };
        assert_eq!(
            finding.to_string(),
            "definitions/orders/definition.yaml:42:9: error[OPERATION_NOT_FOUND] \
             commands[1].operation.operation_id: operation \"cancelOrdr\" not found"
        );
    }
}
