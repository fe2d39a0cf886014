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

    /// The digest of `parts` one after the other, as [`Checksum::of`] their
    /// concatenation, without making it.
    pub fn of_parts<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> Self {
        use sha2::Digest as _;
        let mut hasher = Sha256::new();
        for part in parts {
            hasher.update(part);
        }
        Self(hasher.finalize().into())
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

impl std::str::FromStr for Checksum {
    type Err = String;

    /// 64 hex digits, with or without a `sha256:` prefix.
    fn from_str(text: &str) -> Result<Self, String> {
        let hex = text.strip_prefix("sha256:").unwrap_or(text);
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "{text:?} is not a SHA-256 checksum (64 hex digits)"
            ));
        }
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
        }
        Ok(Self(bytes))
    }
}

/// The file name of a checksum manifest in a definitions directory. Its
/// extension keeps it out of the definitions the directory holds.
pub const MANIFEST_FILE: &str = "thesa-checksums.sha256";

/// A checksum manifest: each domain's definition checksum, as CI computed
/// it (`thesa-bff checksum`). The text has `sha256sum`'s shape, one
/// `<64 hex digits>  <domain>` line per definition, `#` comments allowed,
/// so that CI can sign it and people can read a diff of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    /// Checksum by domain.
    pub checksums: std::collections::BTreeMap<String, Checksum>,
}

impl Manifest {
    /// Parses a manifest; an error names the line.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut checksums = std::collections::BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (hex, domain) = line
                .split_once(char::is_whitespace)
                .map(|(h, d)| (h, d.trim()))
                .filter(|(_, d)| !d.is_empty())
                .ok_or_else(|| format!("line {}: expected `<sha256>  <domain>`", n + 1))?;
            let checksum = hex.parse().map_err(|e| format!("line {}: {e}", n + 1))?;
            if checksums.insert(domain.to_string(), checksum).is_some() {
                return Err(format!("line {}: domain {domain:?} is listed twice", n + 1));
            }
        }
        Ok(Self { checksums })
    }

    /// The manifest's text.
    pub fn render(&self) -> String {
        let mut text = String::from(
            "# thesa definition checksums: SHA-256 of each definition's canonical form\n",
        );
        for (domain, checksum) in &self.checksums {
            text.push_str(&format!("{checksum}  {domain}\n"));
        }
        text
    }
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
    fn manifests_round_trip_and_name_bad_lines() {
        let manifest = Manifest {
            checksums: [("orders".to_string(), Checksum::of(b"o"))].into(),
        };
        assert_eq!(Manifest::parse(&manifest.render()), Ok(manifest.clone()));
        let sha = format!("sha256:{}", Checksum::of(b"o"));
        assert_eq!(Manifest::parse(&format!("{sha} orders\n")), Ok(manifest));
        let err = Manifest::parse("# x\nabc  orders\n").unwrap_err();
        assert!(err.starts_with("line 2:"), "{err}");
        let twice = format!("{0}  a\n{0}  a\n", Checksum::of(b"o"));
        assert!(Manifest::parse(&twice).unwrap_err().contains("twice"));
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
