//! A YAML (and so JSON) document tree that remembers where each value and
//! key came from, so that every finding can name a line and a column.
//!
//! The tree is built from the event stream of `yaml-rust2` without recursion,
//! with bounds on nesting and alias expansion, so that no input can exhaust
//! the stack or the memory. Scalars are resolved with the YAML 1.2 core
//! schema (`yes`/`no` stay strings, as in Thesa's Go loader).

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::path::{Path, Segment};

/// Deepest nesting of mappings and sequences a document may have.
pub const MAX_DEPTH: usize = 128;

/// Most values that anchors and aliases may copy within one document
/// (guards against "billion laughs" documents and nested anchors).
pub const MAX_COPIED_NODES: usize = 200_000;

/// A position in a source text: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    /// Line, starting at 1.
    pub line: u32,
    /// Column, starting at 1.
    pub column: u32,
}

impl Pos {
    /// yaml-rust2 counts lines from 1 and columns from 0.
    fn from_marker(marker: &Marker) -> Self {
        let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Self {
            line: clamp(marker.line()).max(1),
            column: clamp(marker.col()).saturating_add(1),
        }
    }
}

/// A value of the document with the position where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Where the value starts.
    pub pos: Pos,
    /// The value.
    pub kind: NodeKind,
}

/// The kinds of values a document holds.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// `~`, `null` or an empty value.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number and the text it was written as (`1.0`, `0x1F`), which is what
    /// Thesa's Go loader stores when a number stands where a string belongs.
    Number(Number, String),
    /// A string.
    String(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in document order.
    Map(Vec<Entry>),
}

/// A key and its value in a mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The key as text (numeric keys such as `200:` become `"200"`).
    pub key: String,
    /// Where the key starts.
    pub key_pos: Pos,
    /// The value.
    pub value: Node,
}

/// Why a text is not a usable document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    /// Where the problem was found.
    pub pos: Pos,
    /// What is wrong, in words.
    pub message: String,
}

impl Node {
    /// The value at `path`, if there is one.
    pub fn get(&self, path: &Path) -> Option<&Node> {
        path.segments()
            .iter()
            .try_fold(self, |node, segment| node.child(segment))
    }

    fn child(&self, segment: &Segment) -> Option<&Node> {
        match (&self.kind, segment) {
            (NodeKind::Map(entries), Segment::Key(key)) => {
                entries.iter().find(|e| &e.key == key).map(|e| &e.value)
            }
            (NodeKind::Seq(items), Segment::Index(i)) => items.get(*i),
            _ => None,
        }
    }

    /// The best position for a finding about `path`: the value if it exists,
    /// otherwise the nearest existing ancestor (a missing field is reported
    /// at the mapping that lacks it). An empty value (`title:`) is reported
    /// at its key: the parser places empty values at the next token.
    pub fn locate(&self, path: &Path) -> Pos {
        let mut node = self;
        for segment in path.segments() {
            match node.child(segment) {
                Some(child) => node = child,
                None => break,
            }
        }
        if node.kind == NodeKind::Null {
            if let Some(pos) = self.key_pos(path) {
                return pos;
            }
        }
        node.pos
    }

    /// Position of the key that ends `path` (for unknown or misplaced keys),
    /// or of the value when the path does not end at a mapping key.
    pub fn locate_key(&self, path: &Path) -> Pos {
        self.key_pos(path).unwrap_or_else(|| self.locate(path))
    }

    fn key_pos(&self, path: &Path) -> Option<Pos> {
        let Some(Segment::Key(key)) = path.segments().last() else {
            return None;
        };
        match &self.get(&path.parent())?.kind {
            NodeKind::Map(entries) => entries.iter().find(|e| &e.key == key).map(|e| e.key_pos),
            _ => None,
        }
    }

    /// The text of a scalar as Thesa's Go loader reads it into a string
    /// field: booleans and numbers as written; `None` for other kinds.
    pub fn scalar_text(&self) -> Option<String> {
        match &self.kind {
            NodeKind::Bool(b) => Some(b.to_string()),
            NodeKind::Number(_, text) => Some(text.clone()),
            NodeKind::String(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// Converts the tree to a JSON value. Keys whose value is null are left
    /// out: an empty value means "not set", as in Thesa's Go loader.
    pub fn to_json(&self) -> Value {
        match &self.kind {
            NodeKind::Null => Value::Null,
            NodeKind::Bool(b) => Value::Bool(*b),
            NodeKind::Number(n, _) => Value::Number(n.clone()),
            NodeKind::String(s) => Value::String(s.clone()),
            NodeKind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeKind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .filter(|e| e.value.kind != NodeKind::Null)
                    .map(|e| (e.key.clone(), e.value.to_json()))
                    .collect::<Map<_, _>>(),
            ),
        }
    }

    fn size_and_depth(&self) -> (usize, usize) {
        match &self.kind {
            NodeKind::Seq(items) => children_size_and_depth(items.iter()),
            NodeKind::Map(entries) => children_size_and_depth(entries.iter().map(|e| &e.value)),
            _ => (1, 0),
        }
    }
}

fn children_size_and_depth<'a>(children: impl Iterator<Item = &'a Node>) -> (usize, usize) {
    children.fold((1, 1), |(size, depth), child| {
        let (s, d) = child.size_and_depth();
        (size + s, depth.max(d + 1))
    })
}

/// Parses one YAML or JSON document.
///
/// # Errors
/// A [`ParseError`] with the position of the first syntax error, of a
/// duplicate key, of a non-scalar key, of a second document in the same
/// text, or of nesting or alias expansion beyond the limits.
pub fn parse(text: &str) -> Result<Node, ParseError> {
    let mut roots = parse_stream(text, false)?;
    roots.pop().ok_or(ParseError {
        pos: Pos { line: 1, column: 1 },
        message: "the document is empty".to_string(),
    })
}

/// Parses a stream of YAML documents separated by `---` (such as a file of
/// Kubernetes manifests); empty documents are left out.
///
/// # Errors
/// A [`ParseError`] as for [`parse`], for the first document that fails.
pub fn parse_documents(text: &str) -> Result<Vec<Node>, ParseError> {
    parse_stream(text, true)
}

fn parse_stream(text: &str, many: bool) -> Result<Vec<Node>, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let text = join_surrogate_escapes(text);
    let mut builder = Builder {
        many,
        ..Builder::default()
    };
    let mut parser = Parser::new_from_str(&text);
    loop {
        let (event, marker) = parser.next_token().map_err(|e| ParseError {
            pos: Pos::from_marker(e.marker()),
            message: e.info().to_string(),
        })?;
        let pos = Pos::from_marker(&marker);
        if builder.event(event, pos)? {
            break;
        }
    }
    Ok(builder.roots)
}

/// JSON writes characters outside the Basic Multilingual Plane as a pair of
/// escapes (`"\ud83d\ude00"`), which YAML parsers reject; YAML writes them
/// as one (`"\U0001f600"`). Rewrites the pairs inside double-quoted strings
/// of JSON documents (those that start with `{` or `[`). Columns after a
/// rewritten pair on the same line shift left by two.
fn join_surrogate_escapes(text: &str) -> std::borrow::Cow<'_, str> {
    let looks_like_json = text.trim_start().starts_with(['{', '[']);
    if !looks_like_json || !text.contains("\\u") {
        return std::borrow::Cow::Borrowed(text);
    }
    let hex = |s: &str| u32::from_str_radix(s, 16).ok();
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut in_string = false;
    while let Some(c) = rest.chars().next() {
        if in_string && c == '\\' {
            let pair = (
                rest.get(2..6).and_then(hex),
                rest.get(6..8),
                rest.get(8..12).and_then(hex),
            );
            if rest.starts_with("\\u") {
                if let (Some(high @ 0xD800..=0xDBFF), Some("\\u"), Some(low @ 0xDC00..=0xDFFF)) =
                    pair
                {
                    let code = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
                    out.push_str(&format!("\\U{code:08x}"));
                    rest = &rest[12..];
                    continue;
                }
            }
            // Any other escape: copy the backslash and the escaped character.
            let len = rest[1..].chars().next().map_or(1, |e| 1 + e.len_utf8());
            out.push_str(&rest[..len]);
            rest = &rest[len..];
            continue;
        }
        if c == '"' {
            in_string = !in_string;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    std::borrow::Cow::Owned(out)
}

enum Frame {
    Seq {
        pos: Pos,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        pos: Pos,
        anchor: usize,
        entries: Vec<Entry>,
        keys: HashSet<String>,
        pending_key: Option<(String, Pos, bool)>,
        merges: Vec<Node>,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, (Node, usize, usize)>,
    copied: usize,
    documents: usize,
    many: bool,
    roots: Vec<Node>,
}

impl Builder {
    /// Handles one event; returns true when the stream has ended.
    fn event(&mut self, event: Event, pos: Pos) -> Result<bool, ParseError> {
        match event {
            Event::StreamEnd => return Ok(true),
            Event::DocumentStart => {
                self.documents += 1;
                if self.documents > 1 && !self.many {
                    return Err(ParseError {
                        pos,
                        message:
                            "a second YAML document starts here; put each document in its own file"
                                .to_string(),
                    });
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                let plain = style == TScalarStyle::Plain;
                let node = Node {
                    pos,
                    kind: resolve_scalar(text, plain, tag.as_ref()),
                };
                self.complete(node, anchor, plain)?;
            }
            Event::SequenceStart(anchor, _) => {
                self.check_depth(pos, 1)?;
                self.stack.push(Frame::Seq {
                    pos,
                    anchor,
                    items: Vec::new(),
                });
            }
            Event::MappingStart(anchor, _) => {
                self.check_depth(pos, 1)?;
                self.stack.push(Frame::Map {
                    pos,
                    anchor,
                    entries: Vec::new(),
                    keys: HashSet::new(),
                    pending_key: None,
                    merges: Vec::new(),
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match self.stack.pop() {
                    Some(Frame::Seq { pos, anchor, items }) => (
                        Node {
                            pos,
                            kind: NodeKind::Seq(items),
                        },
                        anchor,
                    ),
                    Some(Frame::Map {
                        pos,
                        anchor,
                        entries,
                        keys,
                        merges,
                        ..
                    }) => (
                        Node {
                            // A block mapping's start event sits at its first
                            // `:`; people expect the first key.
                            pos: entries.first().map_or(pos, |e| e.key_pos.min(pos)),
                            kind: NodeKind::Map(apply_merges(entries, keys, merges)),
                        },
                        anchor,
                    ),
                    None => return Ok(false),
                };
                self.complete(node, anchor, false)?;
            }
            Event::Alias(id) => {
                let Some((node, size, depth)) = self.anchors.get(&id).cloned() else {
                    return Err(ParseError {
                        pos,
                        message: "alias refers to an unknown anchor".to_string(),
                    });
                };
                self.copy(size, pos)?;
                self.check_depth(pos, depth)?;
                self.complete(Node { pos, ..node }, 0, false)?;
            }
            Event::Nothing | Event::StreamStart | Event::DocumentEnd => {}
        }
        Ok(false)
    }

    /// Counts values copied for anchors and aliases against the budget.
    fn copy(&mut self, size: usize, pos: Pos) -> Result<(), ParseError> {
        self.copied += size;
        if self.copied > MAX_COPIED_NODES {
            return Err(ParseError {
                pos,
                message: format!(
                    "anchors and aliases copy more than {MAX_COPIED_NODES} values; the document is too large"
                ),
            });
        }
        Ok(())
    }

    fn check_depth(&self, pos: Pos, extra: usize) -> Result<(), ParseError> {
        if self.stack.len() + extra > MAX_DEPTH {
            return Err(ParseError {
                pos,
                message: format!("values are nested deeper than {MAX_DEPTH} levels"),
            });
        }
        Ok(())
    }

    /// Places a finished value in its parent (or as the root).
    fn complete(&mut self, node: Node, anchor: usize, plain: bool) -> Result<(), ParseError> {
        if anchor != 0 {
            let (size, depth) = node.size_and_depth();
            self.copy(size, node.pos)?;
            self.anchors.insert(anchor, (node.clone(), size, depth));
        }
        match self.stack.last_mut() {
            None => {
                if !matches!(node.kind, NodeKind::Null) || !self.many {
                    self.roots.push(node);
                }
            }
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries,
                keys,
                pending_key,
                merges,
                ..
            }) => match pending_key.take() {
                None => {
                    let key = node
                        .scalar_text()
                        .or_else(|| (node.kind == NodeKind::Null).then(|| "null".to_string()));
                    let Some(key) = key else {
                        return Err(ParseError {
                            pos: node.pos,
                            message: "mapping keys must be strings or numbers".to_string(),
                        });
                    };
                    *pending_key = Some((key, node.pos, plain));
                }
                Some((key, key_pos, key_plain)) => {
                    if key == "<<" && key_plain {
                        merges.push(node);
                    } else if !keys.insert(key.clone()) {
                        let first = entries.iter().find(|e| e.key == key).map(|e| e.key_pos);
                        return Err(ParseError {
                            pos: key_pos,
                            message: match first {
                                Some(p) => format!(
                                    "duplicate key {key:?} (first set at line {}, column {})",
                                    p.line, p.column
                                ),
                                None => format!("duplicate key {key:?}"),
                            },
                        });
                    } else {
                        entries.push(Entry {
                            key,
                            key_pos,
                            value: node,
                        });
                    }
                }
            },
        }
        Ok(())
    }
}

/// YAML merge keys (`<<: *defaults`): keys written in the mapping win over
/// merged ones, and earlier merge sources win over later ones.
fn apply_merges(
    mut entries: Vec<Entry>,
    mut keys: HashSet<String>,
    merges: Vec<Node>,
) -> Vec<Entry> {
    let sources = merges.into_iter().flat_map(|node| match node.kind {
        NodeKind::Seq(items) => items,
        _ => vec![node],
    });
    for source in sources {
        if let NodeKind::Map(merged) = source.kind {
            for entry in merged {
                if keys.insert(entry.key.clone()) {
                    entries.push(entry);
                }
            }
        }
    }
    entries
}

fn resolve_scalar(text: String, plain: bool, tag: Option<&Tag>) -> NodeKind {
    let core_tag = tag
        .filter(|t| t.handle == "tag:yaml.org,2002:")
        .map(|t| t.suffix.as_str());
    match core_tag {
        Some("str") => return NodeKind::String(text),
        Some("null") => return NodeKind::Null,
        _ => {}
    }
    if !plain && core_tag.is_none() {
        return NodeKind::String(text);
    }
    match text.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => return NodeKind::Null,
        "true" | "True" | "TRUE" => return NodeKind::Bool(true),
        "false" | "False" | "FALSE" => return NodeKind::Bool(false),
        _ => {}
    }
    match parse_number(&text) {
        Some(number) => NodeKind::Number(number, text),
        None => NodeKind::String(text),
    }
}

/// Integers (decimal, `0x`, `0o`) and floats of the YAML 1.2 core schema.
/// Infinities and NaN have no JSON form and stay strings.
fn parse_number(text: &str) -> Option<Number> {
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    let negative = text.starts_with('-');
    if let Some(hex) = text.strip_prefix("0x") {
        return i64::from_str_radix(hex, 16).ok().map(Number::from);
    }
    if let Some(oct) = text.strip_prefix("0o") {
        return i64::from_str_radix(oct, 8).ok().map(Number::from);
    }
    if !unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit()) {
        return if negative {
            text.parse::<i64>().ok().map(Number::from)
        } else {
            unsigned.parse::<u64>().ok().map(Number::from)
        };
    }
    let looks_numeric = unsigned
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
        && unsigned
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_digit() || b == b'.')
        && unsigned.bytes().any(|b| b.is_ascii_digit());
    if looks_numeric {
        return text.parse::<f64>().ok().and_then(Number::from_f64);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind_at<'a>(node: &'a Node, path: &Path) -> &'a NodeKind {
        &node.get(path).expect("path exists").kind
    }

    #[test]
    fn records_positions_of_values_and_keys() {
        let doc = parse("domain: orders\npages:\n  - id: list\n    title: Orders\n").unwrap();
        let id = Path::root().key("pages").index(0).key("id");
        assert_eq!(doc.locate(&id), Pos { line: 3, column: 9 });
        assert_eq!(doc.locate_key(&id), Pos { line: 3, column: 5 });
        // A missing key is located at the mapping that lacks it.
        let missing = Path::root().key("pages").index(0).key("route");
        assert_eq!(doc.locate(&missing), Pos { line: 3, column: 5 });
    }

    #[test]
    fn resolves_scalars_with_the_core_schema() {
        let doc = parse("a: 1\nb: 1.0\nc: yes\nd: true\ne: '1'\nf: 0x1F\ng: ~\nh: .inf\n").unwrap();
        let at = |k: &str| kind_at(&doc, &Path::root().key(k)).clone();
        assert_eq!(at("a"), NodeKind::Number(1.into(), "1".into()));
        assert!(matches!(at("b"), NodeKind::Number(_, t) if t == "1.0"));
        assert_eq!(at("c"), NodeKind::String("yes".into()));
        assert_eq!(at("d"), NodeKind::Bool(true));
        assert_eq!(at("e"), NodeKind::String("1".into()));
        assert_eq!(at("f"), NodeKind::Number(31.into(), "0x1F".into()));
        assert_eq!(at("g"), NodeKind::Null);
        assert_eq!(at("h"), NodeKind::String(".inf".into()));
        assert_eq!(
            doc.get(&Path::root().key("b"))
                .unwrap()
                .scalar_text()
                .unwrap(),
            "1.0"
        );
    }

    #[test]
    fn rejects_duplicate_keys_with_both_positions() {
        let err = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.pos, Pos { line: 3, column: 1 });
        assert!(
            err.message.contains("first set at line 1"),
            "{}",
            err.message
        );
    }

    #[test]
    fn applies_merge_keys_and_aliases() {
        let doc = parse("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\n").unwrap();
        let json = doc.to_json();
        assert_eq!(json["other"], serde_json::json!({"x": 1, "y": 3}));
    }

    #[test]
    fn bounds_nesting_and_alias_expansion() {
        let deep = "[".repeat(MAX_DEPTH + 1);
        assert!(parse(&deep).unwrap_err().message.contains("nested deeper"));
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            let p = i - 1;
            bomb.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        assert!(
            parse(&bomb)
                .unwrap_err()
                .message
                .contains("anchors and aliases copy")
        );
    }

    #[test]
    fn rejects_second_document_and_empty_text() {
        assert!(
            parse("a: 1\n---\nb: 2\n")
                .unwrap_err()
                .message
                .contains("second YAML document")
        );
        assert_eq!(parse("").unwrap_err().message, "the document is empty");
        assert_eq!(
            parse("# only a comment\n").unwrap_err().message,
            "the document is empty"
        );
    }

    #[test]
    fn reads_json() {
        let doc = parse(r#"{"openapi": "3.1.0", "paths": {"/a": {}}}"#).unwrap();
        assert_eq!(doc.to_json()["openapi"], "3.1.0");
        assert_eq!(
            doc.locate(&Path::root().key("paths")),
            Pos {
                line: 1,
                column: 31
            }
        );
    }

    #[test]
    fn reads_json_surrogate_pairs_and_byte_order_marks() {
        let doc = parse("\u{feff}{\"title\": \"\\ud83d\\ude00 \\\\ud83d\", \"n\": 1}").unwrap();
        assert_eq!(doc.to_json()["title"], "\u{1F600} \\ud83d");
        let doc = parse("\u{feff}domain: orders\n").unwrap();
        assert_eq!(doc.to_json()["domain"], "orders");
    }

    #[test]
    fn empty_values_are_located_at_their_key() {
        let doc = parse("a:\n  title:\n  route: /x\nb: [~, 1]\n").unwrap();
        let title = Path::root().key("a").key("title");
        assert_eq!(doc.locate(&title), Pos { line: 2, column: 3 });
        assert_eq!(
            doc.locate(&Path::root().key("b").index(0)),
            Pos { line: 4, column: 5 }
        );
    }

    #[test]
    fn nested_anchors_count_against_the_budget() {
        let mut text = String::from("x: ");
        for i in 0..40 {
            text.push_str(&format!("&a{i} ["));
        }
        text.push_str(&"1, ".repeat(10_000));
        text.push_str(&"]".repeat(40));
        assert!(
            parse(&text)
                .unwrap_err()
                .message
                .contains("anchors and aliases copy more than")
        );
    }

    #[test]
    fn null_values_mean_absent() {
        let doc = parse("a:\nb: 1\n").unwrap();
        assert_eq!(doc.to_json(), serde_json::json!({"b": 1}));
    }
}
