//! `plain_tool`: the healthy baseline. Its tool `echo` returns its arguments
//! unchanged; `calls` returns how many calls this instance has served, so a
//! test can tell a warm instance from a fresh one. It imports nothing beyond
//! baseline WASI, so it loads with no grants at all; used by the benchmarks
//! and as the control case.

/// Bindings generated from the WIT contract. The export glue that
/// wit-bindgen emits is `unsafe` (raw ABI, `export_name`), so the workspace's
/// `unsafe_code` denial is lifted for this module only.
#[allow(unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "convergio:platform/tool-plugin@0.1.0",
        generate_all,
    });

    use super::PlainTool;

    export!(PlainTool);
}

use std::sync::atomic::{AtomicU32, Ordering};

use bindings::exports::convergio::platform::tool::{Guest, ToolError, ToolInfo};

struct PlainTool;

/// Calls this instance has served (a guest global: it survives between
/// calls only in a warm instance).
static CALLS: AtomicU32 = AtomicU32::new(0);

impl Guest for PlainTool {
    fn describe() -> Vec<ToolInfo> {
        vec![
            ToolInfo {
                name: "echo".to_owned(),
                description: "Returns its arguments unchanged.".to_owned(),
                parameters: r#"{"type":"object"}"#.to_owned(),
            },
            ToolInfo {
                name: "calls".to_owned(),
                description: "How many calls this instance has served, this one included."
                    .to_owned(),
                parameters: r#"{"type":"object"}"#.to_owned(),
            },
        ]
    }

    fn invoke(name: String, arguments: String) -> Result<String, ToolError> {
        let calls = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
        match name.as_str() {
            "echo" => Ok(arguments),
            "calls" => Ok(calls.to_string()),
            _ => Err(ToolError::UnknownTool(name)),
        }
    }
}
