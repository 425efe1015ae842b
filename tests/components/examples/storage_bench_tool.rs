//! `storage_bench_tool`: many `wasi:keyvalue` operations inside one call, so
//! a benchmark can take the per-operation cost of storage through the guest
//! interface without the instantiation of each call dominating it. Arguments
//! are whitespace-separated words, parsed by hand (no serde):
//!
//! | tool | arguments | does |
//! | --- | --- | --- |
//! | `noop` | ignored | returns `""` at once (no storage call) |
//! | `get` | `BUCKET N` | opens BUCKET, then `get("k{i}")` for i in 0..N; returns the number of values found |
//! | `set` | `BUCKET N SIZE SEED` | opens BUCKET, then `set("k{i}", value)` for i in 0..N, where the value is `"{SEED}.{i}."` padded with `x` to SIZE bytes; returns N |
//!
//! `N = 0` opens the bucket and does nothing else, the fixed cost to subtract.
//! Pass a new SEED to every `set` call: SQLite does not write a row whose
//! new value equals the old one, so rewriting the same values would measure
//! commits with nothing to write and nothing to flush.
//! Store errors come back as `ToolError::Failed` with the error's text.

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

    use super::StorageBenchTool;

    export!(StorageBenchTool);
}

use bindings::exports::convergio::platform::tool::{Guest, ToolError, ToolInfo};
use bindings::wasi::keyvalue::store;

struct StorageBenchTool;

fn failed(e: store::Error) -> ToolError {
    ToolError::Failed(format!("{e:?}"))
}

fn words<const N: usize>(arguments: &str) -> Result<[&str; N], ToolError> {
    let parts: Vec<&str> = arguments.split_whitespace().collect();
    parts
        .try_into()
        .map_err(|_| ToolError::InvalidArguments(format!("expected {N} words, got `{arguments}`")))
}

fn number(word: &str) -> Result<usize, ToolError> {
    word.parse()
        .map_err(|_| ToolError::InvalidArguments(format!("`{word}` is not a number")))
}

impl Guest for StorageBenchTool {
    fn describe() -> Vec<ToolInfo> {
        ["noop", "get", "set"]
            .into_iter()
            .map(|name| ToolInfo {
                name: name.to_owned(),
                description: format!("Storage benchmark loop: {name}"),
                parameters: r#"{"type":"string"}"#.to_owned(),
            })
            .collect()
    }

    fn invoke(name: String, arguments: String) -> Result<String, ToolError> {
        match name.as_str() {
            "noop" => Ok(String::new()),
            "get" => {
                let [bucket, n] = words(&arguments)?;
                let bucket = store::open(bucket).map_err(failed)?;
                let mut found = 0usize;
                for i in 0..number(n)? {
                    if bucket.get(&format!("k{i}")).map_err(failed)?.is_some() {
                        found += 1;
                    }
                }
                Ok(found.to_string())
            }
            "set" => {
                let [bucket, n, size, seed] = words(&arguments)?;
                let bucket = store::open(bucket).map_err(failed)?;
                let (n, size) = (number(n)?, number(size)?);
                for i in 0..n {
                    let mut value = format!("{seed}.{i}.").into_bytes();
                    value.resize(size, b'x');
                    bucket.set(&format!("k{i}"), &value).map_err(failed)?;
                }
                Ok(n.to_string())
            }
            _ => Err(ToolError::UnknownTool(name)),
        }
    }
}
