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
