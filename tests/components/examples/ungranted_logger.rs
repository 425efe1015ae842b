//! `ungranted_logger`: its one tool, `log`, writes one line through
//! `wasi:logging/logging` and returns `"logged"`. Loaded without a logging
//! grant, it must be refused at load time (an ungranted import).

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

    use super::UngrantedLogger;

    export!(UngrantedLogger);
}

use bindings::exports::convergio::platform::tool::{Guest, ToolError, ToolInfo};
use bindings::wasi::logging::logging::{Level, log};

struct UngrantedLogger;

impl Guest for UngrantedLogger {
    fn describe() -> Vec<ToolInfo> {
        vec![ToolInfo {
            name: "log".to_owned(),
            description: "Logs one line through wasi:logging and returns \"logged\".".to_owned(),
            parameters: r#"{"type":"object"}"#.to_owned(),
        }]
    }

    /// Logs whatever the tool name, so the import is exercised on any call.
    fn invoke(_name: String, _arguments: String) -> Result<String, ToolError> {
        log(
            Level::Info,
            "ungranted_logger",
            "hello from ungranted_logger",
        );
        Ok(r#""logged""#.to_owned())
    }
}
