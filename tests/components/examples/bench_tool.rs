//! `bench_tool`: the smallest tool that exercises each benchmarked path.
//!
//! | Tool         | Arguments          | Behaviour                                                   |
//! |--------------|--------------------|-------------------------------------------------------------|
//! | `noop`       | ignored            | returns an empty string at once (instantiate-and-call cost) |
//! | `host-calls` | decimal integer N  | calls `wasi:config/store.get("k")` N times, returns N       |
//!
//! `noop` returns `""`, not JSON text: it measures the call path, not the
//! tool contract. The arguments of `host-calls` are parsed by hand, without
//! serde, so the guest does as little as possible besides the host calls.
//! Imports: baseline WASI + `wasi:config/store` (grant `config` to load it).

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

    use super::BenchTool;

    export!(BenchTool);
}

use bindings::exports::convergio::platform::tool::{Guest, ToolError, ToolInfo};
use bindings::wasi::config::store::get;

struct BenchTool;

impl Guest for BenchTool {
    fn describe() -> Vec<ToolInfo> {
        vec![
            ToolInfo {
                name: "noop".to_owned(),
                description: "Returns an empty string at once.".to_owned(),
                parameters: r#"{"type":"string"}"#.to_owned(),
            },
            ToolInfo {
                name: "host-calls".to_owned(),
                description: "Calls wasi:config/store.get(\"k\") N times (arguments: N in decimal) and returns N.".to_owned(),
                parameters: r#"{"type":"string"}"#.to_owned(),
            },
        ]
    }

    fn invoke(name: String, arguments: String) -> Result<String, ToolError> {
        match name.as_str() {
            "noop" => Ok(String::new()),
            "host-calls" => host_calls(&arguments),
            _ => Err(ToolError::UnknownTool(name)),
        }
    }
}

/// Calls `wasi:config/store.get("k")` N times; N is the arguments in decimal.
fn host_calls(arguments: &str) -> Result<String, ToolError> {
    let n: u32 = arguments.trim().parse().map_err(|_| {
        ToolError::InvalidArguments(format!("expected a decimal integer, got {arguments:?}"))
    })?;
    let mut count: u32 = 0;
    for _ in 0..n {
        get("k").map_err(|_| ToolError::Failed("wasi:config/store.get failed".to_owned()))?;
        count += 1;
    }
    Ok(count.to_string())
}
