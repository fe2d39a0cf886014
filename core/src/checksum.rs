//! SHA-256 checksums of definitions over a canonical form, and of a set of
//! definitions independent of the order the files were read in.
//!
//! The canonical form of a definition is the JSON of its typed model with
//! object keys sorted and no whitespace. So formatting, comments, key order,
//! quoting, `300` versus `"5m"`, and unknown (ignored) keys do not change a
//! checksum; any change of meaning does.

use std::fmt;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::model::Definition;

/// A SHA-256 digest, shown as 64 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Checksum([u8; 32]);

impl Checksum {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl Serialize for Checksum {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The canonical JSON text of a value: keys sorted, no whitespace.
pub fn canonical_json(value: &Value) -> String {
    let mut out = Vec::new();
    write_canonical(value, &mut out);
    // serde_json writes valid UTF-8.
    String::from_utf8(out).unwrap_or_default()
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (key, child)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_scalar(key, out);
                out.push(b':');
                write_canonical(child, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, child) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(child, out);
            }
            out.push(b']');
        }
        scalar => write_scalar(scalar, out),
    }
}

fn write_scalar<T: Serialize + ?Sized>(scalar: &T, out: &mut Vec<u8>) {
    // Writing a string or scalar into a Vec cannot fail.
    let _ = serde_json::to_writer(out, scalar);
}

/// The checksum of one definition's canonical form.
pub fn definition_checksum(definition: &Definition) -> Checksum {
    // Serializing plain data structs to a JSON value cannot fail.
    let value = serde_json::to_value(definition).unwrap_or(Value::Null);
    let mut canonical = Vec::new();
    write_canonical(&value, &mut canonical);
    Checksum::of(&canonical)
}

/// The checksum of a set of definitions, given as (domain, checksum) pairs,
/// whatever their order.
pub fn set_checksum<'a>(members: impl IntoIterator<Item = (&'a str, Checksum)>) -> Checksum {
    let mut members: Vec<_> = members.into_iter().collect();
    members.sort();
    let mut text = String::new();
    for (domain, checksum) in members {
        text.push_str(domain);
        text.push(' ');
        text.push_str(&checksum.to_string());
        text.push('\n');
    }
    Checksum::of(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let a = json!({"b": 1, "a": {"d": [1, {"y": 2, "x": 1}], "c": "é\""}});
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"c":"é\"","d":[1,{"x":1,"y":2}]},"b":1}"#
        );
    }

    #[test]
    fn set_checksum_ignores_order() {
        let x = Checksum::of(b"x");
        let y = Checksum::of(b"y");
        assert_eq!(
            set_checksum([("orders", x), ("billing", y)]),
            set_checksum([("billing", y), ("orders", x)])
        );
        assert_ne!(set_checksum([("orders", x)]), set_checksum([("orders", y)]));
        assert_eq!(x.to_string().len(), 64);
    }
}
