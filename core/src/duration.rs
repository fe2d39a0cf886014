//! Durations as definitions and configs write them: an integer number of
//! seconds (`300`, `"300"`) or a Go-style duration string (`"5m"`,
//! `"1h30m"`, `"250ms"`).

use std::borrow::Cow;
use std::fmt;
use std::time::Duration as StdDuration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The pattern every duration string matches.
pub const PATTERN: &str = r"^([0-9]+|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$";

/// A non-negative duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub StdDuration);

impl Duration {
    /// A duration of whole seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Self(StdDuration::from_secs(secs))
    }

    /// A duration of whole milliseconds.
    pub const fn from_millis(millis: u64) -> Self {
        Self(StdDuration::from_millis(millis))
    }

    /// The standard-library duration.
    pub const fn get(self) -> StdDuration {
        self.0
    }
}

/// Why a text is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration {0:?}: write seconds (300) or a number with a unit: ns, us, ms, s, m, h (\"5m\", \"1h30m\")"
)]
pub struct ParseDurationError(pub String);

impl std::str::FromStr for Duration {
    type Err = ParseDurationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = || ParseDurationError(text.to_string());
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            return text.parse().map(Self::from_secs).map_err(|_| err());
        }
        let mut rest = text;
        let mut total_nanos: f64 = 0.0;
        if rest.is_empty() {
            return Err(err());
        }
        while !rest.is_empty() {
            let number_len = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(err)?;
            let (number, tail) = rest.split_at(number_len);
            let value: f64 = number.parse().map_err(|_| err())?;
            let unit_len = tail
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(tail.len());
            let (unit, tail) = tail.split_at(unit_len);
            let nanos_per_unit = match unit {
                "ns" => 1.0,
                "us" | "µs" => 1e3,
                "ms" => 1e6,
                "s" => 1e9,
                "m" => 60e9,
                "h" => 3600e9,
                _ => return Err(err()),
            };
            total_nanos += value * nanos_per_unit;
            rest = tail;
        }
        if !total_nanos.is_finite() || total_nanos > u64::MAX as f64 {
            return Err(err());
        }
        Ok(Self(StdDuration::from_nanos(total_nanos.round() as u64)))
    }
}

impl fmt::Display for Duration {
    /// Whole seconds print as `30s`, the rest as milliseconds or nanoseconds.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.subsec_nanos() == 0 {
            write!(f, "{}s", d.as_secs())
        } else if d.subsec_nanos() % 1_000_000 == 0 {
            write!(f, "{}ms", d.as_millis())
        } else {
            write!(f, "{}ns", d.as_nanos())
        }
    }
}

impl Serialize for Duration {
    /// The canonical form: an integer of seconds when whole, otherwise a
    /// string such as `"1500ms"`. `"5m"` and `300` thus serialize alike.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0.subsec_nanos() == 0 {
            serializer.serialize_u64(self.0.as_secs())
        } else {
            serializer.collect_str(self)
        }
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;

        impl Visitor<'_> for DurationVisitor {
            type Value = Duration;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("seconds or a duration string such as \"5m\"")
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
                Ok(Duration::from_secs(v))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
                u64::try_from(v)
                    .map(Duration::from_secs)
                    .map_err(|_| E::custom("a duration cannot be negative"))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                v.parse().map_err(E::custom)
            }
        }

        deserializer.deserialize_any(DurationVisitor)
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn inline_schema() -> bool {
        true
    }

    /// Integer or string, in the shape Kubernetes accepts in a CRD
    /// (`x-kubernetes-int-or-string`).
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Seconds (300) or a duration string (\"5m\", \"1h30m\", \"250ms\").",
            "x-kubernetes-int-or-string": true,
            "anyOf": [
                { "type": "integer", "minimum": 0 },
                { "type": "string", "pattern": PATTERN }
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_seconds_and_go_durations() {
        let parse = |s: &str| s.parse::<Duration>().unwrap().get();
        assert_eq!(parse("300"), StdDuration::from_secs(300));
        assert_eq!(parse("5m"), StdDuration::from_secs(300));
        assert_eq!(parse("1h30m"), StdDuration::from_secs(5400));
        assert_eq!(parse("250ms"), StdDuration::from_millis(250));
        assert_eq!(parse("1.5s"), StdDuration::from_millis(1500));
        assert_eq!(parse("2µs"), StdDuration::from_micros(2));
        for bad in ["", "5 minutes", "1d", "m", "-5s", "1.2.3s"] {
            assert!(bad.parse::<Duration>().is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn pattern_agrees_with_the_parser() {
        let re = regex_lite(PATTERN);
        for s in ["300", "5m", "1h30m", "250ms", "1.5s", "2µs", "0"] {
            assert!(re(s) && s.parse::<Duration>().is_ok(), "{s}");
        }
        for s in ["", "5 minutes", "1d", "m", "-5s"] {
            assert!(!re(s) && s.parse::<Duration>().is_err(), "{s}");
        }
    }

    /// Checks a string against the schema pattern with the same engine the
    /// validator uses.
    fn regex_lite(pattern: &str) -> impl Fn(&str) -> bool {
        let validator = jsonschema::validator_for(&serde_json::json!({
            "type": "string", "pattern": pattern
        }))
        .unwrap();
        move |s| validator.is_valid(&serde_json::json!(s))
    }

    #[test]
    fn serializes_canonically() {
        let json = |d: Duration| serde_json::to_string(&d).unwrap();
        assert_eq!(json("5m".parse().unwrap()), "300");
        assert_eq!(json("1500ms".parse().unwrap()), "\"1500ms\"");
        let back: Duration = serde_json::from_str("\"1500ms\"").unwrap();
        assert_eq!(back, Duration::from_millis(1500));
    }
}
