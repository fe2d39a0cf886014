//! Helpers shared by the integration tests.

/// The text of a file of the repository (samples, specs, config).
#[allow(dead_code)]
pub fn repo_file(path: &str) -> String {
    let full = format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

/// 1-based line and column where `needle` starts in `text` (it must occur
/// once).
#[allow(dead_code)]
pub fn position(text: &str, needle: &str) -> (u32, u32) {
    let offset = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in the text"));
    assert_eq!(text.matches(needle).count(), 1, "{needle:?} is not unique");
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line as u32, column as u32)
}

/// The directory of the Thesa corpus (`../shared/thesa-corpus` beside the
/// repository): definitions and specs of a deployment of the original
/// Thesa, read at test time and never copied into the repository. Panics
/// with what to do when it is missing: the tests that need it must not
/// pass silently without it.
#[allow(dead_code)]
pub fn corpus() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/thesa-corpus");
    assert!(
        dir.join("definitions").is_dir() && dir.join("specs").is_dir(),
        "the Thesa corpus is missing: these tests read {} (definitions/ and specs/ of the \
         original Thesa's deployment, kept beside the repository as ../shared/thesa-corpus); \
         put it there to run them",
        dir.display()
    );
    dir
}

/// A broken variant of a base definition: the text to replace and its
/// replacement, and the finding expected: code, path, and the text the
/// finding must point at.
#[allow(dead_code)]
pub struct Case {
    pub from: &'static str,
    pub to: &'static str,
    pub code: thesa_core::finding::Code,
    pub path: &'static str,
    pub at: &'static str,
}

/// Runs every case on `base` (each edit must match once) with `run`, and
/// fails naming every case whose finding is missing (code, path, line,
/// column, severity, and `source`).
#[allow(dead_code)]
pub fn check_cases(
    base: &str,
    source: &str,
    cases: &[Case],
    run: impl Fn(&str) -> Vec<thesa_core::finding::Finding>,
) {
    let mut failures = Vec::new();
    for case in cases {
        assert_eq!(
            base.matches(case.from).count(),
            1,
            "{:?} is not unique",
            case.from
        );
        let text = base.replacen(case.from, case.to, 1);
        let findings = run(&text);
        let (line, column) = position(&text, case.at);
        let hit = findings.iter().any(|f| {
            f.code == case.code
                && f.path == case.path
                && f.line == Some(line)
                && f.column == Some(column)
                && f.source == source
                && f.severity == case.code.severity()
        });
        if !hit {
            failures.push(format!(
                "{:?} at {} {line}:{column}, got:\n  {}",
                case.code,
                case.path,
                findings
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n  ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
