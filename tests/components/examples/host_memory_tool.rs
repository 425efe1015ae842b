//! `host_memory_tool`: makes the host allocate on the plugin's behalf, for
//! the host-memory budget tests. Arguments are JSON:
//!
//! | tool | arguments | does |
//! | --- | --- | --- |
//! | `get-many` | `{"bucket": B, "value-kib": V, "keys": N}` | stores one value of V KiB under `big`, then reads it back with one `wasi:keyvalue/batch.get-many` of N copies of the key; returns how many values came back |
//! | `fields` | `{"count": N, "value-kib": V}` | creates N `wasi:http/types` `fields`, each with one header of V KiB, and keeps them all open; returns N |
//! | `log` | `{"message": M}` | logs M at `warn` through `wasi:logging`, returns `"logged"` |
//!
//! Host errors come back as `ToolError::Failed` with the host's message.

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

    use super::HostMemoryTool;

    export!(HostMemoryTool);
}

use bindings::exports::convergio::platform::tool::{Guest, ToolError, ToolInfo};
use bindings::wasi::http::types::Fields;
use bindings::wasi::keyvalue::{batch, store};
use bindings::wasi::logging::logging;
use serde_json::Value;

struct HostMemoryTool;

fn failed(e: impl std::fmt::Debug) -> ToolError {
    ToolError::Failed(format!("{e:?}"))
}

fn number(args: &Value, name: &str) -> Result<u64, ToolError> {
    args[name]
        .as_u64()
        .ok_or_else(|| ToolError::InvalidArguments(format!("`{name}` must be a number")))
}

impl Guest for HostMemoryTool {
    fn describe() -> Vec<ToolInfo> {
        ["get-many", "fields", "log"]
            .iter()
            .map(|name| ToolInfo {
                name: (*name).to_owned(),
                description: "Makes the host allocate for the plugin.".to_owned(),
                parameters: r#"{"type":"object"}"#.to_owned(),
            })
            .collect()
    }

    fn invoke(name: String, arguments: String) -> Result<String, ToolError> {
        let args: Value = serde_json::from_str(&arguments)
            .map_err(|e| ToolError::InvalidArguments(e.to_string()))?;
        match name.as_str() {
            "get-many" => {
                let bucket =
                    store::open(args["bucket"].as_str().unwrap_or("data")).map_err(failed)?;
                let value = vec![b'v'; number(&args, "value-kib")? as usize * 1024];
                bucket.set("big", &value).map_err(failed)?;
                drop(value);
                let keys = vec!["big".to_owned(); number(&args, "keys")? as usize];
                let values = batch::get_many(&bucket, &keys).map_err(|e| match e {
                    store::Error::Other(message) => ToolError::Failed(message),
                    other => failed(other),
                })?;
                Ok(values.iter().flatten().count().to_string())
            }
            "fields" => {
                let value = vec![b'x'; number(&args, "value-kib")? as usize * 1024];
                let count = number(&args, "count")?;
                let mut open = Vec::new();
                for _ in 0..count {
                    let fields = Fields::new();
                    fields.append("x-filler", &value).map_err(failed)?;
                    open.push(fields);
                }
                Ok(open.len().to_string())
            }
            "log" => {
                let message = args["message"].as_str().unwrap_or_default();
                logging::log(logging::Level::Warn, "test", message);
                Ok("\"logged\"".to_owned())
            }
            other => Err(ToolError::UnknownTool(other.to_owned())),
        }
    }
}
