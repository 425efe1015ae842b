//! `reload_v1`: version 1 of the hot-reload tool. `invoke("version", _)`
//! returns `"v1"` (a JSON string) after a small, fixed amount of work.

/// The JSON string returned by `version`.
const VERSION: &str = r#""v1""#;

#[path = "shared/reload_common.rs"]
mod reload_common;
