//! `plain_tool`: the healthy baseline. Its one tool, `echo`, returns its
//! arguments unchanged. It imports nothing beyond baseline WASI, so it loads
//! with no grants at all; used by the benchmarks and as the control case.

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

use bindings::exports::convergio::platform::tool::{Guest, ToolError, ToolInfo};

struct PlainTool;

impl Guest for PlainTool {
    fn describe() -> Vec<ToolInfo> {
        vec![ToolInfo {
            name: "echo".to_owned(),
            description: "Returns its arguments unchanged.".to_owned(),
            parameters: r#"{"type":"object"}"#.to_owned(),
        }]
    }

    fn invoke(name: String, arguments: String) -> Result<String, ToolError> {
        match name.as_str() {
            "echo" => Ok(arguments),
            _ => Err(ToolError::UnknownTool(name)),
        }
    }
}
