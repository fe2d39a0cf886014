//! PromQL built from an analytics query: pure text, no I/O. Everything a
//! client sends reaches the expression either as a sanitized name (metric,
//! label) or as an escaped string value; the tenant and partition
//! matchers come from the caller's token only.

use std::collections::BTreeMap;
use std::fmt::Write;

/// How values are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregation {
    /// Total increase of a counter.
    Sum,
    /// Average increase of a counter per series (or per group).
    Avg,
    /// Total increase of a counter of events (same as `Sum`, as in the
    /// original).
    Count,
    /// How many distinct series (or values of `group_by`) there are.
    CountDistinct,
    /// The latest value of a gauge, summed.
    Gauge,
}

impl Aggregation {
    /// The wire names; an empty one is `sum`.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "" | "sum" => Self::Sum,
            "avg" => Self::Avg,
            "count" => Self::Count,
            "count_distinct" => Self::CountDistinct,
            "gauge" => Self::Gauge,
            _ => return None,
        })
    }
}

/// A metric name as OpenTelemetry's Prometheus conventions write it:
/// characters other than letters, digits, `_` and `:` become `_`, runs of
/// `_` become one, and a leading digit gets a `_` before it
/// (`rpc.server.duration` → `rpc_server_duration`).
pub fn metric_name(raw: &str) -> String {
    let mut name = String::with_capacity(raw.len() + 1);
    for c in raw.chars() {
        let c = if c.is_ascii_alphanumeric() || c == ':' {
            c
        } else {
            '_'
        };
        if !(c == '_' && name.ends_with('_')) {
            name.push(c);
        }
    }
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    name
}

/// A label name: characters other than letters, digits and `_` become
/// `_`, and a leading digit gets a `_` before it (`tenant.id` →
/// `tenant_id`, `partition-id` → `partition_id`).
pub fn label_name(raw: &str) -> String {
    let mut name: String = raw
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    name
}

/// A PromQL double-quoted string's content.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out
}

/// Whose series a query may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope<'a> {
    /// The tenant label's name and the caller's tenant.
    pub tenant: (&'a str, &'a str),
    /// The partition label's name and the partitions (none: every
    /// partition of the tenant).
    pub partitions: (&'a str, &'a [String]),
}

impl Scope<'_> {
    /// Whether a (sanitized) label name is one the scope sets, or
    /// Prometheus's own (`__name__`): filters never set those.
    pub fn reserves(&self, label: &str) -> bool {
        label == self.tenant.0 || label == self.partitions.0 || label.starts_with("__")
    }
}

/// `metric{tenant="…",partition="…",filter="…",…}`: the scope first, then
/// the filters sorted by label name. Filters on reserved labels are
/// dropped, and so are filters whose names sanitize to the same label as
/// an earlier one.
pub fn selector(metric: &str, scope: &Scope, filters: &BTreeMap<String, String>) -> String {
    let mut matchers = vec![format!("{}=\"{}\"", scope.tenant.0, escape(scope.tenant.1))];
    match scope.partitions.1 {
        [] => {}
        [one] => matchers.push(format!("{}=\"{}\"", scope.partitions.0, escape(one))),
        many => {
            let alternatives: Vec<String> = many.iter().map(|p| regex::escape(p)).collect();
            matchers.push(format!(
                "{}=~\"{}\"",
                scope.partitions.0,
                escape(&alternatives.join("|"))
            ));
        }
    }
    let mut seen: Vec<String> = Vec::new();
    let mut labelled: Vec<(String, &String)> = filters
        .iter()
        .map(|(name, value)| (label_name(name), value))
        .filter(|(name, _)| !name.is_empty() && !scope.reserves(name))
        .collect();
    labelled.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, value) in labelled {
        if seen.contains(&name) {
            continue;
        }
        matchers.push(format!("{name}=\"{}\"", escape(value)));
        seen.push(name);
    }
    format!("{metric}{{{}}}", matchers.join(","))
}

/// A range-selector duration: whole days, hours, minutes when exact, else
/// seconds (at least `1s`).
pub fn duration(seconds: u64) -> String {
    let seconds = seconds.max(1);
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if seconds % size == 0 {
            return format!("{}{unit}", seconds / size);
        }
    }
    format!("{seconds}s")
}

/// What an expression combines by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape<'a> {
    /// One value.
    Total,
    /// One value per value of the label (grouped, top-N, labelled
    /// time series).
    By(&'a str),
    /// How many distinct values the label has (scalar `count_distinct`
    /// with `group_by`).
    DistinctValues(&'a str),
}

/// The expression of `aggregation` over `selector`, counters taken over
/// the window `window` (a `duration`).
pub fn expression(aggregation: Aggregation, selector: &str, window: &str, shape: Shape) -> String {
    let increase = format!("increase({selector}[{window}])");
    let (operator, inner) = match aggregation {
        Aggregation::Gauge => ("sum", selector.to_string()),
        Aggregation::Sum | Aggregation::Count => ("sum", increase),
        Aggregation::Avg => ("avg", increase),
        Aggregation::CountDistinct => ("count", increase),
    };
    let mut text = String::new();
    match shape {
        Shape::Total => {
            let _ = write!(text, "{operator}({inner})");
        }
        Shape::By(label) => {
            let _ = write!(text, "{operator} by ({label}) ({inner})");
        }
        Shape::DistinctValues(label) => {
            let _ = write!(text, "count(count by ({label}) ({inner}))");
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope<'a>(partitions: &'a [String]) -> Scope<'a> {
        Scope {
            tenant: ("tenant_id", "acme"),
            partitions: ("partition_id", partitions),
        }
    }

    #[test]
    fn metric_names_follow_the_opentelemetry_conventions() {
        assert_eq!(metric_name("rpc.server.duration"), "rpc_server_duration");
        assert_eq!(
            metric_name("engine.commands.executed"),
            "engine_commands_executed"
        );
        assert_eq!(
            metric_name("gocloud.dev/pubsub/latency"),
            "gocloud_dev_pubsub_latency"
        );
        assert_eq!(metric_name("a..b"), "a_b");
        assert_eq!(
            metric_name("loans_disbursed_total"),
            "loans_disbursed_total"
        );
        assert_eq!(metric_name("2xx.count"), "_2xx_count");
        assert_eq!(metric_name("job:rate5m"), "job:rate5m");
        assert_eq!(metric_name("x{y=\"z\"}"), "x_y_z_");
    }

    #[test]
    fn label_names_are_sanitized() {
        assert_eq!(label_name("tenant.id"), "tenant_id");
        assert_eq!(label_name("partition-id"), "partition_id");
        assert_eq!(label_name("status\"}or{"), "status__or_");
        assert_eq!(label_name("1st"), "_1st");
    }

    #[test]
    fn the_scope_comes_first_and_filters_cannot_widen_it() {
        let partitions = vec!["eu".to_string()];
        let filters: BTreeMap<String, String> = [
            ("tenant_id", "globex"),
            ("tenant.id", "globex"),
            ("partition-id", "us"),
            ("__name__", "node_cpu_seconds_total"),
            ("status", "approved"),
            ("region", "a\"b\\c\nd"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            selector("loans_total", &scope(&partitions), &filters),
            r#"loans_total{tenant_id="acme",partition_id="eu",region="a\"b\\c\nd",status="approved"}"#
        );
    }

    #[test]
    fn several_partitions_are_one_anchored_alternative() {
        let partitions = vec!["p.1".to_string(), "p2".to_string()];
        assert_eq!(
            selector("m", &scope(&partitions), &BTreeMap::new()),
            r#"m{tenant_id="acme",partition_id=~"p\\.1|p2"}"#
        );
        assert_eq!(
            selector("m", &scope(&[]), &BTreeMap::new()),
            r#"m{tenant_id="acme"}"#
        );
    }

    #[test]
    fn durations_use_the_largest_exact_unit() {
        assert_eq!(duration(7 * 86_400), "7d");
        assert_eq!(duration(36 * 3_600), "36h");
        assert_eq!(duration(90), "90s");
        assert_eq!(duration(120), "2m");
        assert_eq!(duration(0), "1s");
    }

    #[test]
    fn expressions_per_aggregation() {
        let s = "m{tenant_id=\"t\"}";
        assert_eq!(
            expression(Aggregation::Sum, s, "7d", Shape::Total),
            "sum(increase(m{tenant_id=\"t\"}[7d]))"
        );
        assert_eq!(
            expression(Aggregation::Gauge, s, "7d", Shape::By("status")),
            "sum by (status) (m{tenant_id=\"t\"})"
        );
        assert_eq!(
            expression(Aggregation::Avg, s, "1h", Shape::By("status")),
            "avg by (status) (increase(m{tenant_id=\"t\"}[1h]))"
        );
        assert_eq!(
            expression(
                Aggregation::CountDistinct,
                s,
                "1d",
                Shape::DistinctValues("user")
            ),
            "count(count by (user) (increase(m{tenant_id=\"t\"}[1d])))"
        );
        assert_eq!(
            expression(Aggregation::CountDistinct, s, "1d", Shape::Total),
            "count(increase(m{tenant_id=\"t\"}[1d]))"
        );
        assert_eq!(Aggregation::parse(""), Some(Aggregation::Sum));
        assert_eq!(Aggregation::parse("median"), None);
    }
}
