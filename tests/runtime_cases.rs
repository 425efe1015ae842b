//! Runtime cases: each folder of `tests/cases/` holds a `platform.toml`, the
//! manifests and components it names, and `expected.txt`. Loading the
//! platform must fail, and the error must contain every line of
//! `expected.txt`.

// Test helpers outside #[test] functions may panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use convergio_runtime::{Platform, Runtime};
use convergio_tests::workspace;

async fn load_error(platform: &std::path::Path) -> Option<String> {
    match Platform::load(platform) {
        Err(e) => Some(e.to_string()),
        Ok(p) => Runtime::new(&p).await.err().map(|e| e.to_string()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_case_fails_with_its_expected_error() {
    let cases = workspace().join("tests/cases");
    let mut dirs: Vec<_> = std::fs::read_dir(&cases)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(
        dirs.len() >= 20,
        "expected the runtime cases in {}",
        cases.display()
    );
    let mut failures = Vec::new();
    for dir in &dirs {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let expected = std::fs::read_to_string(dir.join("expected.txt")).unwrap();
        match load_error(&dir.join("platform.toml")).await {
            None => failures.push(format!("{name}: loaded, but should have failed")),
            Some(err) => {
                for line in expected.lines().filter(|l| !l.trim().is_empty()) {
                    if !err.contains(line) {
                        failures.push(format!("{name}: error lacks `{line}`\n  error was: {err}"));
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
