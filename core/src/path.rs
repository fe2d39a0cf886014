//! Paths into a document, written the way people read them:
//! `pages[2].table.data_source.operation_id`.

use std::fmt;

/// One step of a [`Path`]: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// A key of a mapping.
    Key(String),
    /// A position in a sequence (0-based).
    Index(usize),
}

/// A path from the root of a document to one of its values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Path(Vec<Segment>);

impl Path {
    /// The path of the document root.
    pub fn root() -> Self {
        Self::default()
    }

    /// This path extended by a mapping key.
    #[must_use]
    pub fn key(&self, key: impl Into<String>) -> Self {
        let mut segments = self.0.clone();
        segments.push(Segment::Key(key.into()));
        Self(segments)
    }

    /// This path extended by a sequence index.
    #[must_use]
    pub fn index(&self, index: usize) -> Self {
        let mut segments = self.0.clone();
        segments.push(Segment::Index(index));
        Self(segments)
    }

    /// The segments from the root down.
    pub fn segments(&self) -> &[Segment] {
        &self.0
    }

    /// Whether this is the root path.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The path without its last segment (the root stays the root).
    #[must_use]
    pub fn parent(&self) -> Self {
        let mut segments = self.0.clone();
        segments.pop();
        Self(segments)
    }

    /// Builds a path from its segments.
    pub fn from_segments(segments: Vec<Segment>) -> Self {
        Self(segments)
    }
}

/// Keys that are plain identifiers print bare; others (`/orders/{id}`, `a.b`)
/// print quoted so that the path stays unambiguous.
fn is_bare_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '$'))
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if is_bare_key(key) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(key)?;
                }
                Segment::Key(key) => write!(f, "[{key:?}]")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_keys_indices_and_quoted_keys() {
        let path = Path::root()
            .key("pages")
            .index(2)
            .key("table")
            .key("field_map")
            .key("a.b");
        assert_eq!(path.to_string(), r#"pages[2].table.field_map["a.b"]"#);
        assert_eq!(Path::root().to_string(), "");
        assert_eq!(Path::root().key("x").parent(), Path::root());
    }
}
