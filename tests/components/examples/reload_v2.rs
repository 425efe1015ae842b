//! `reload_v2`: version 2 of the hot-reload tool. `invoke("version", _)`
//! returns `"v2"` (a JSON string) after a small, fixed amount of work.

/// The JSON string returned by `version`.
const VERSION: &str = r#""v2""#;

#[path = "shared/reload_common.rs"]
mod reload_common;
