//! Label selectors, evaluated in memory (for the definitions a deployment
//! selects, in the controller's cache and in `render`).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Whether `selector` matches `labels`. No selector, or an empty one,
/// matches everything, as in Kubernetes. An operator the API does not
/// define matches nothing.
pub fn matches(selector: Option<&LabelSelector>, labels: &BTreeMap<String, String>) -> bool {
    let Some(selector) = selector else {
        return true;
    };
    let by_labels = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let by_expressions = selector.match_expressions.iter().flatten().all(|e| {
        let value = labels.get(&e.key);
        let values = e.values.as_deref().unwrap_or_default();
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    by_labels && by_expressions
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expression(key: &str, operator: &str, values: &[&str]) -> LabelSelector {
        LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: key.into(),
                operator: operator.into(),
                values: Some(values.iter().map(|v| v.to_string()).collect()),
            }]),
            match_labels: None,
        }
    }

    #[test]
    fn empty_and_missing_selectors_match_everything() {
        assert!(matches(None, &labels(&[])));
        assert!(matches(
            Some(&LabelSelector::default()),
            &labels(&[("a", "b")])
        ));
    }

    #[test]
    fn match_labels_need_every_pair() {
        let selector = LabelSelector {
            match_labels: Some(labels(&[("team", "orders"), ("tier", "bff")])),
            match_expressions: None,
        };
        assert!(matches(
            Some(&selector),
            &labels(&[("team", "orders"), ("tier", "bff"), ("x", "y")])
        ));
        assert!(!matches(Some(&selector), &labels(&[("team", "orders")])));
        assert!(!matches(
            Some(&selector),
            &labels(&[("team", "billing"), ("tier", "bff")])
        ));
    }

    #[test]
    fn expressions_follow_the_api() {
        let on = labels(&[("env", "prod")]);
        let off = labels(&[]);
        assert!(matches(
            Some(&expression("env", "In", &["prod", "stage"])),
            &on
        ));
        assert!(!matches(Some(&expression("env", "In", &["stage"])), &on));
        assert!(!matches(Some(&expression("env", "In", &["prod"])), &off));
        assert!(matches(Some(&expression("env", "NotIn", &["stage"])), &on));
        assert!(matches(Some(&expression("env", "NotIn", &["stage"])), &off));
        assert!(!matches(Some(&expression("env", "NotIn", &["prod"])), &on));
        assert!(matches(Some(&expression("env", "Exists", &[])), &on));
        assert!(!matches(Some(&expression("env", "Exists", &[])), &off));
        assert!(matches(Some(&expression("env", "DoesNotExist", &[])), &off));
        assert!(!matches(Some(&expression("env", "Bogus", &[])), &on));
    }
}
