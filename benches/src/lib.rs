//! Shared setup of Convergio's benchmarks (`overhead.rs`, `paired.rs` and
//! `storage.rs` beside this crate).
//!
//! Each benchmark runs one path twice: through Convergio (a [`Convergio`]
//! platform built around the test components) and through raw wasmtime
//! ([`baseline::Raw`]) on the same [`Engine`](wasmtime::Engine), so the cost
//! of Convergio's layers shows as a ratio. See `docs/benchmarks.md`.
//!
//! The components come from `tests/components` and must be built first:
//!
//! ```text
//! cargo xtask bench
//! # or: cargo xtask build-components --release && cargo bench -p convergio-benches
//! ```
#![deny(missing_docs)]

pub mod baseline;
pub mod langgraph;
pub mod storage;

use std::path::PathBuf;

use convergio_runtime::Runtime;
use convergio_tests::{TestPlugin, bench_test_component, start};
use tempfile::TempDir;
use wasmtime::component::Val;

/// The interface tools export and agents import.
pub const TOOL_INTERFACE: &str = "convergio:platform/tool@0.1.0";
/// The interface agents export.
pub const AGENT_INTERFACE: &str = "convergio:platform/agent@0.1.0";

/// Plugin id of `bench_tool` (tools `noop` and `host-calls`).
pub const BENCH: &str = "bench";
/// Plugin id of `plain_tool`, the callee of [`AGENT`].
pub const TOOL: &str = "echo-tool";
/// Plugin id of `caller_agent`, linked to [`TOOL`].
pub const AGENT: &str = "agent";
/// Plugin id of `plain_tool` kept warm (`warm-instances = 4`).
pub const WARM_TOOL: &str = "warm-tool";
/// Plugin id of `caller_agent` kept warm, linked to [`WARM_TOOL`].
pub const WARM_AGENT: &str = "warm-agent";

/// The `wasi:config` key `bench_tool` reads, and its value.
pub const CONFIG: (&str, &str) = ("k", "v");

/// The built component files: `bench_tool`, `plain_tool`, `caller_agent`.
/// The release builds when measuring, the debug builds in a smoke test
/// under `cargo test`; panics, naming how to build them, if they are not.
#[derive(Debug, Clone)]
pub struct Components {
    /// `bench_tool.wasm`.
    pub bench: PathBuf,
    /// `plain_tool.wasm`.
    pub tool: PathBuf,
    /// `caller_agent.wasm`.
    pub agent: PathBuf,
}

impl Components {
    /// Locate the built test components.
    pub fn locate() -> Self {
        Self {
            bench: bench_test_component("bench_tool"),
            tool: bench_test_component("plain_tool"),
            agent: bench_test_component("caller_agent"),
        }
    }
}

/// A throwaway Convergio platform: `bench` (granted `config = { k = "v" }`),
/// `echo-tool` (no grants) and `agent` (granted `plugins = ["echo-tool"]`),
/// and the same two opted in to warm instances: `warm-tool` and `warm-agent`.
#[derive(Debug)]
pub struct Convergio {
    /// The runtime under test.
    pub runtime: Runtime,
    /// Holds `platform.toml` and the manifests.
    _dir: TempDir,
}

impl Convergio {
    /// Write the platform into a temporary directory and load it. Panics with
    /// the load errors if it does not load.
    pub async fn start(components: &Components) -> std::io::Result<Self> {
        let dir = tempfile::tempdir()?;
        let (key, value) = CONFIG;
        let plugins = [
            TestPlugin::new(BENCH, "tool", components.bench.clone())
                .declares(&["config"])
                .grants(&format!("config = {{ {key} = \"{value}\" }}")),
            TestPlugin::new(TOOL, "tool", components.tool.clone()),
            TestPlugin::new(AGENT, "agent", components.agent.clone())
                .declares(&["plugins"])
                .grants(&format!("plugins = [\"{TOOL}\"]")),
            TestPlugin::new(WARM_TOOL, "tool", components.tool.clone())
                .limits("warm-instances = 4"),
            TestPlugin::new(WARM_AGENT, "agent", components.agent.clone())
                .declares(&["plugins"])
                .grants(&format!("plugins = [\"{WARM_TOOL}\"]"))
                .limits("warm-instances = 4"),
        ];
        // Keep the platform's files (its storage database) in the temporary directory.
        let runtime = start(dir.path(), "data-dir = \".\"", &plugins).await;
        Ok(Self { runtime, _dir: dir })
    }
}

/// Parameters of `tool.invoke(name, arguments)`.
pub fn invoke_params(name: &str, arguments: &str) -> [Val; 2] {
    [Val::String(name.into()), Val::String(arguments.into())]
}

/// The parameter of `agent.run(task)`: a task with `input` and empty state.
pub fn task(input: &str) -> [Val; 1] {
    [Val::Record(vec![
        ("run-id".into(), Val::String("bench".into())),
        ("node-id".into(), Val::String("n1".into())),
        ("input".into(), Val::String(input.into())),
        ("state".into(), Val::List(Vec::new())),
    ])]
}

/// The text in `ok(text)` of a `result<string, _>`, or the `output` field in
/// `ok(outcome)` of a `result<outcome, _>`; `None` for anything else.
pub fn ok_text(result: &Val) -> Option<&str> {
    let Val::Result(Ok(Some(ok))) = result else {
        return None;
    };
    match ok.as_ref() {
        Val::String(text) => Some(text),
        Val::Record(fields) => fields.iter().find_map(|(name, value)| match value {
            Val::String(text) if name == "output" => Some(text.as_str()),
            _ => None,
        }),
        _ => None,
    }
}

/// The `q` quantile (0 to 1) of `sorted` (ascending, not empty), by linear
/// interpolation between the two nearest values, as the LangGraph scripts
/// compute theirs.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let at = (sorted.len() - 1) as f64 * q;
    let low = at.floor() as usize;
    let high = at.ceil() as usize;
    sorted[low] + (sorted[high] - sorted[low]) * (at - low as f64)
}
