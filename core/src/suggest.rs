//! "Did you mean ...?" hints for misspelt names.

/// The candidate closest to `wrong`, if it is close enough to be a likely
/// typo (Jaro-Winkler similarity of at least 0.8).
pub fn closest<'a>(wrong: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(wrong, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0).then_with(|| b.1.cmp(a.1)))
        .map(|(_, c)| c)
}

/// ` (did you mean "x"?)`, or nothing.
pub fn hint<'a>(wrong: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    closest(wrong, candidates)
        .map(|c| format!(" (did you mean {c:?}?)"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let names = ["cancelOrder", "listOrders", "getOrder"];
        assert_eq!(closest("cancelOrdr", names), Some("cancelOrder"));
        assert_eq!(closest("deleteCustomer", names), None);
        assert_eq!(
            hint("capabilites", ["capabilities", "children"]),
            " (did you mean \"capabilities\"?)"
        );
    }
}
