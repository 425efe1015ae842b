//! `misbehaving_tool`: one healthy tool and a set of hostile ones, for the
//! host's isolation and limit tests. Each tool name selects one behaviour:
//!
//! | Tool       | Arguments                    | Behaviour                                            |
//! |------------|------------------------------|------------------------------------------------------|
//! | `echo`     | any                          | returns the arguments unchanged                      |
//! | `spin`     | —                            | loops forever (needs fuel or epoch interruption)     |
//! | `hog`      | —                            | allocates 1 MiB blocks without end (memory limit)    |
//! | `recurse`  | —                            | unbounded, non-tail recursion (stack limit)          |
//! | `panic`    | —                            | panics, which traps                                  |
//! | `sleep-ms` | `{"ms": N}`                  | busy-waits N ms on the monotonic clock, then `"done"`|
//! | `config`   | `{"key": "..."}`             | `wasi:config/store.get(key)` as a JSON string or `null` |
//! | `publish`  | `{"topic": "...", "payload": any}` | publishes on `events`, returns `"published"`   |
//!
//! Results are JSON text, as the `tool` interface says. Because `config` and
//! `publish` call them, the component imports `wasi:config/store` and
//! `convergio:platform/events`; tests must grant them to load it.

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

    use super::MisbehavingTool;

    export!(MisbehavingTool);
}

use std::hint::black_box;
use std::time::{Duration, Instant};

use bindings::convergio::platform::events::{EventError, publish};
use bindings::exports::convergio::platform::tool::{Guest, ToolError, ToolInfo};
use serde_json::Value;

/// Size of each block the `hog` tool allocates.
const MIB: usize = 1 << 20;
/// Distance between the bytes `hog` writes, so every page of a block is touched.
const PAGE: usize = 4096;

/// Name, description and JSON Schema of each tool.
const TOOLS: &[(&str, &str, &str)] = &[
    (
        "echo",
        "Returns its arguments unchanged.",
        r#"{"type":"object"}"#,
    ),
    ("spin", "Loops forever.", r#"{"type":"object"}"#),
    (
        "hog",
        "Allocates memory without end.",
        r#"{"type":"object"}"#,
    ),
    ("recurse", "Recurses without end.", r#"{"type":"object"}"#),
    ("panic", "Panics.", r#"{"type":"object"}"#),
    (
        "sleep-ms",
        "Busy-waits for `ms` milliseconds, then returns \"done\".",
        r#"{"type":"object","properties":{"ms":{"type":"integer","minimum":0}},"required":["ms"]}"#,
    ),
    (
        "config",
        "Returns the wasi:config value of `key` as a JSON string, or null.",
        r#"{"type":"object","properties":{"key":{"type":"string"}},"required":["key"]}"#,
    ),
    (
        "publish",
        "Publishes `payload` (any JSON) on `topic`, then returns \"published\".",
        r#"{"type":"object","properties":{"topic":{"type":"string"},"payload":{}},"required":["topic"]}"#,
    ),
];

struct MisbehavingTool;

impl Guest for MisbehavingTool {
    fn describe() -> Vec<ToolInfo> {
        TOOLS
            .iter()
            .map(|(name, description, parameters)| ToolInfo {
                name: (*name).to_owned(),
                description: (*description).to_owned(),
                parameters: (*parameters).to_owned(),
            })
            .collect()
    }

    fn invoke(name: String, arguments: String) -> Result<String, ToolError> {
        match name.as_str() {
            "echo" => Ok(arguments),
            "spin" => spin(),
            "hog" => hog(),
            "recurse" => Ok(recurse(0).to_string()),
            "panic" => deliberate_panic(),
            "sleep-ms" => sleep_ms(&arguments),
            "config" => config(&arguments),
            "publish" => publish_event(&arguments),
            _ => Err(ToolError::UnknownTool(name)),
        }
    }
}

/// Loops forever; `black_box` keeps the optimizer from removing the loop.
fn spin() -> ! {
    let mut counter: u64 = 0;
    loop {
        counter = black_box(counter.wrapping_add(1));
    }
}

/// Allocates 1 MiB blocks without end, writing one byte per page of each so
/// the allocation cannot be elided and linear memory really grows. Ends when
/// the host refuses to grow memory (allocation failure aborts, a trap).
fn hog() -> ! {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut block = vec![0_u8; MIB];
        for byte in block.iter_mut().step_by(PAGE) {
            *byte = black_box(1);
        }
        blocks.push(black_box(block));
        black_box(&blocks);
    }
}

/// Recurses without end. The call is not in tail position (its result is
/// combined with a local array afterwards) and `black_box` hides the values,
/// so it cannot become a loop. Ends with a stack-overflow trap.
// Deliberate: this is the behaviour under test.
#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let frame = black_box([depth; 8]);
    let below = recurse(black_box(depth.wrapping_add(1)));
    black_box(frame.iter().fold(below, |acc, x| acc.wrapping_add(*x)))
}

/// Panics; in a component a panic is a trap.
// Deliberate: the trap is the behaviour under test.
#[allow(clippy::panic)]
fn deliberate_panic() -> ! {
    panic!("misbehaving_tool: deliberate panic")
}

/// Busy-waits for `{"ms": N}` milliseconds on the monotonic clock (no
/// sleeping import), so a call holds its instance for that long.
fn sleep_ms(arguments: &str) -> Result<String, ToolError> {
    let args = parse(arguments)?;
    let ms = args.get("ms").and_then(Value::as_u64).ok_or_else(|| {
        ToolError::InvalidArguments("`ms` must be a non-negative integer".to_owned())
    })?;
    let deadline = Duration::from_millis(ms);
    let start = Instant::now();
    while black_box(start.elapsed()) < deadline {}
    Ok(r#""done""#.to_owned())
}

/// Reads `{"key": "..."}` from `wasi:config/store`: the value as a JSON
/// string, or `null` when the key is not set.
fn config(arguments: &str) -> Result<String, ToolError> {
    let args = parse(arguments)?;
    let key = string_field(&args, "key")?;
    match bindings::wasi::config::store::get(key) {
        Ok(Some(value)) => Ok(Value::String(value).to_string()),
        Ok(None) => Ok("null".to_owned()),
        Err(bindings::wasi::config::store::Error::Upstream(m)) => {
            Err(ToolError::Failed(format!("config upstream: {m}")))
        }
        Err(bindings::wasi::config::store::Error::Io(m)) => {
            Err(ToolError::Failed(format!("config io: {m}")))
        }
    }
}

/// Publishes `{"topic": "...", "payload": any}` on `events`; the payload is
/// sent as JSON text (`null` when absent). A denied topic comes back as
/// `denied`; a payload the host rejects as `failed`.
fn publish_event(arguments: &str) -> Result<String, ToolError> {
    let args = parse(arguments)?;
    let topic = string_field(&args, "topic")?;
    let payload = args.get("payload").unwrap_or(&Value::Null).to_string();
    match publish(topic, &payload) {
        Ok(()) => Ok(r#""published""#.to_owned()),
        Err(EventError::AccessDenied(m)) => Err(ToolError::Denied(m)),
        Err(EventError::Invalid(m)) => Err(ToolError::Failed(format!("invalid event: {m}"))),
    }
}

/// Parses the arguments as a JSON value.
fn parse(arguments: &str) -> Result<Value, ToolError> {
    serde_json::from_str(arguments)
        .map_err(|e| ToolError::InvalidArguments(format!("arguments are not JSON: {e}")))
}

/// The string field `name` of the arguments object.
fn string_field<'a>(args: &'a Value, name: &str) -> Result<&'a str, ToolError> {
    args.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| ToolError::InvalidArguments(format!("`{name}` must be a string")))
}
