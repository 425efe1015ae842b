//! `fs_tool`: touches the filesystem through `wasi:filesystem`, to test
//! directory grants. Tools (arguments are the raw path or `path\ntext`):
//!
//! | tool | arguments | does |
//! | --- | --- | --- |
//! | `read` | `PATH` | returns the file's text |
//! | `write` | `PATH\nTEXT` | writes TEXT to the file, returns `"written"` |
//! | `list` | `PATH` | returns the entries' names, one per line |
//! | `env` | `NAME` | returns the environment variable, or an error |
//!
//! I/O failures come back as `ToolError::Failed` with the OS error text.

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

    use super::FsTool;

    export!(FsTool);
}

use bindings::exports::convergio::platform::tool::{Guest, ToolError, ToolInfo};

struct FsTool;

fn failed(e: std::io::Error) -> ToolError {
    ToolError::Failed(e.to_string())
}

impl Guest for FsTool {
    fn describe() -> Vec<ToolInfo> {
        ["read", "write", "list", "env"]
            .into_iter()
            .map(|name| ToolInfo {
                name: name.to_owned(),
                description: format!("Filesystem probe: {name}"),
                parameters: r#"{"type":"string"}"#.to_owned(),
            })
            .collect()
    }

    fn invoke(name: String, arguments: String) -> Result<String, ToolError> {
        match name.as_str() {
            "read" => std::fs::read_to_string(&arguments).map_err(failed),
            "write" => {
                let (path, text) = arguments.split_once('\n').ok_or_else(|| {
                    ToolError::InvalidArguments("expected PATH\\nTEXT".to_owned())
                })?;
                std::fs::write(path, text).map_err(failed)?;
                Ok("written".to_owned())
            }
            "list" => {
                let mut names = Vec::new();
                for entry in std::fs::read_dir(&arguments).map_err(failed)? {
                    names.push(
                        entry
                            .map_err(failed)?
                            .file_name()
                            .to_string_lossy()
                            .into_owned(),
                    );
                }
                names.sort();
                Ok(names.join("\n"))
            }
            "env" => std::env::var(&arguments).map_err(|e| ToolError::Failed(e.to_string())),
            _ => Err(ToolError::UnknownTool(name)),
        }
    }
}
