//! Helpers for Convergio's integration tests: where the built test
//! components are, and throwaway platforms built around them.
#![allow(clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use convergio_runtime::{Platform, Runtime};

pub mod fake_providers;
pub mod healthy;
pub mod process;
pub mod upstream;

/// The tests run the host as the `convergio` binary does: host memory that
/// plugins cause is counted per plugin.
#[global_allocator]
static ALLOCATOR: convergio_runtime::HostAllocator = convergio_runtime::HostAllocator;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the workspace")
        .to_path_buf()
}

/// The cargo target directory (honours `CARGO_TARGET_DIR`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| {
            if p.is_absolute() {
                p
            } else {
                workspace().join(p)
            }
        })
        .unwrap_or_else(|| workspace().join("target"))
}

/// The test model (SmolLM2-135M-Instruct Q4_1, 98 MB), which `cargo xtask
/// setup` fetches. Panics with what to run if it is missing.
pub use convergio_test_model::require as test_model;

/// A built test component from `tests/components` (an example of that crate), debug build.
pub fn test_component(name: &str) -> PathBuf {
    built("debug", &format!("examples/{name}.wasm"))
}

/// A test component built in release mode (`cargo xtask build-components --release`),
/// as benchmarks use them.
pub fn release_test_component(name: &str) -> PathBuf {
    built("release", &format!("examples/{name}.wasm"))
}

/// A built component of a workspace crate (its cdylib), debug build.
pub fn crate_component(crate_name: &str) -> PathBuf {
    built("debug", &format!("{crate_name}.wasm"))
}

/// A built component of a workspace crate (its cdylib), release build.
pub fn release_crate_component(crate_name: &str) -> PathBuf {
    built("release", &format!("{crate_name}.wasm"))
}

/// Whether a benchmark binary measures (`cargo bench` passes `--bench`) or
/// runs once as a smoke test under `cargo test`.
pub fn measuring() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// A crate's component for a benchmark: the release build when it
/// measures, the debug build (which `cargo test` has) when it runs as a
/// smoke test.
pub fn bench_crate_component(crate_name: &str) -> PathBuf {
    if measuring() {
        release_crate_component(crate_name)
    } else {
        crate_component(crate_name)
    }
}

/// A test component for a benchmark: release or debug, as
/// [`bench_crate_component`].
pub fn bench_test_component(name: &str) -> PathBuf {
    if measuring() {
        release_test_component(name)
    } else {
        test_component(name)
    }
}

fn built(profile: &str, relative: &str) -> PathBuf {
    let path = target_dir()
        .join("wasm32-wasip2")
        .join(profile)
        .join(relative);
    let flag = if profile == "release" {
        " --release"
    } else {
        ""
    };
    assert!(
        path.is_file(),
        "{} is missing: build the guest components first with `cargo xtask build-components{flag}` (`cargo xtask test` and `cargo xtask bench` do it for you)",
        path.display()
    );
    path
}

/// One plugin of a throwaway platform.
#[derive(Debug, Clone)]
pub struct TestPlugin {
    /// Plugin id (the instance's name).
    pub id: String,
    /// The manifest's `id` (the component's name), if not the plugin id.
    pub component_id: Option<String>,
    /// Kind (`tool`, `agent`, ...).
    pub kind: String,
    /// Component file.
    pub component: PathBuf,
    /// Capabilities declared in the manifest.
    pub declares: Vec<String>,
    /// Optional capabilities declared in the manifest.
    pub optional: Vec<String>,
    /// `[plugin.grants]` body, TOML.
    pub grants: String,
    /// `[plugin.limits]` body, TOML.
    pub limits: String,
}

impl TestPlugin {
    /// A plugin with no declarations, grants or limits.
    pub fn new(id: &str, kind: &str, component: PathBuf) -> Self {
        Self {
            id: id.into(),
            component_id: None,
            kind: kind.into(),
            component,
            declares: Vec::new(),
            optional: Vec::new(),
            grants: String::new(),
            limits: String::new(),
        }
    }

    /// Load the component as an instance named `id` of the component
    /// `component_id`: the manifest says `id = "component_id"`.
    pub fn instance_of(mut self, component_id: &str) -> Self {
        self.component_id = Some(component_id.into());
        self
    }

    /// Declare capabilities in the manifest.
    pub fn declares(mut self, caps: &[&str]) -> Self {
        self.declares = caps.iter().map(|c| c.to_string()).collect();
        self
    }

    /// Declare optional capabilities in the manifest.
    pub fn optional(mut self, caps: &[&str]) -> Self {
        self.optional = caps.iter().map(|c| c.to_string()).collect();
        self
    }

    /// Set the `[plugin.grants]` table body.
    pub fn grants(mut self, toml: &str) -> Self {
        self.grants = toml.into();
        self
    }

    /// Set the `[plugin.limits]` table body.
    pub fn limits(mut self, toml: &str) -> Self {
        self.limits = toml.into();
        self
    }
}

/// The LLM agent component (`components/agent-llm`) as plugin `id`, with
/// its manifest's capabilities (storage and runs optional) and `grants`.
pub fn agent_llm(id: &str, grants: &str) -> TestPlugin {
    TestPlugin::new(id, "agent", crate_component("convergio_agent_llm"))
        .declares(&["inference", "plugins", "logging"])
        .optional(&["storage", "runs"])
        .grants(grants)
}

/// Write `platform.toml` and one manifest per plugin into `dir`; returns the platform path.
pub fn write_platform(dir: &Path, runtime: &str, plugins: &[TestPlugin]) -> PathBuf {
    // Tests compile afresh unless they ask for the cache, and keep their data in `dir`.
    let cache = if runtime.contains("compile-cache") {
        ""
    } else {
        "compile-cache = false\n"
    };
    let data = if runtime.contains("data-dir") {
        ""
    } else {
        "data-dir = \"platform-data\"\n"
    };
    let mut platform = format!("[runtime]\n{cache}{data}{runtime}\n");
    for p in plugins {
        let manifest = dir.join(format!("{}.plugin.toml", p.id));
        let quoted = |caps: &[String]| {
            caps.iter()
                .map(|c| format!("\"{c}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        std::fs::write(
            &manifest,
            format!(
                "id = \"{}\"\nversion = \"0.1.0\"\nkind = \"{}\"\ncomponent = {:?}\n\n[requires]\ncapabilities = [{}]\noptional-capabilities = [{}]\n",
                p.component_id.as_deref().unwrap_or(&p.id),
                p.kind,
                p.component,
                quoted(&p.declares),
                quoted(&p.optional)
            ),
        )
        .expect("write manifest");
        platform.push_str(&format!(
            "\n[[plugin]]\nid = \"{}\"\nmanifest = \"{}.plugin.toml\"\n[plugin.grants]\n{}\n[plugin.limits]\n{}\n",
            p.id, p.id, p.grants, p.limits
        ));
    }
    let path = dir.join("platform.toml");
    std::fs::write(&path, platform).expect("write platform.toml");
    path
}

/// Load a throwaway platform; panics with the load errors if it fails.
pub async fn start(dir: &Path, runtime: &str, plugins: &[TestPlugin]) -> Runtime {
    let path = write_platform(dir, runtime, plugins);
    let platform = Platform::load(&path).unwrap_or_else(|e| panic!("platform: {e}"));
    Runtime::new(&platform)
        .await
        .unwrap_or_else(|e| panic!("runtime: {e}"))
}

/// Load a throwaway platform and return the error text it must fail with.
pub async fn start_err(dir: &Path, runtime: &str, plugins: &[TestPlugin]) -> String {
    let path = write_platform(dir, runtime, plugins);
    match Platform::load(&path) {
        Err(e) => e.to_string(),
        Ok(platform) => match Runtime::new(&platform).await {
            Err(e) => e.to_string(),
            Ok(_) => panic!("the platform loaded, but it should have failed"),
        },
    }
}

/// The `convergio` binary of this workspace, built by cargo. `cargo test
/// --workspace` builds it before any test runs (the CLI's own integration
/// tests need it); a test run of this file alone does not, so it must not
/// be missing or older than the sources it is built from. (It is not built
/// from here: cargo runs tests with an environment that would make the
/// build differ from the developer's, and rebuild twice.)
pub fn convergio_binary() -> PathBuf {
    let bin = target_dir().join("debug").join("convergio");
    let build = "build it first: `cargo build --workspace --bin convergio` (`cargo test --workspace` does it)";
    let built = std::fs::metadata(&bin)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| panic!("{} is missing: {build}", bin.display()));
    let root = workspace();
    let mut newer = Vec::new();
    for dir in ["host", "graph", "agent", "wit", "Cargo.lock"] {
        newest_source(&root.join(dir), built, &mut newer);
    }
    assert!(
        newer.is_empty(),
        "{} is older than {} source file(s), e.g. {}: {build}",
        bin.display(),
        newer.len(),
        newer[0].display()
    );
    bin
}

/// The files under `path` (Rust, TOML, WIT; not tests or benches)
/// changed after `built`.
fn newest_source(path: &Path, built: std::time::SystemTime, newer: &mut Vec<PathBuf>) {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    if meta.is_dir() {
        // A crate's tests and benches are not part of the binary.
        if path
            .file_name()
            .is_some_and(|n| n == "tests" || n == "benches")
        {
            return;
        }
        let entries = std::fs::read_dir(path).expect("a source directory can be listed");
        for entry in entries.map_while(Result::ok) {
            newest_source(&entry.path(), built, newer);
        }
    } else if meta.is_file()
        && path
            .extension()
            .is_some_and(|e| e == "rs" || e == "toml" || e == "wit" || e == "lock")
        && meta.modified().is_ok_and(|m| m > built)
    {
        newer.push(path.to_path_buf());
    }
}

/// The orchestrator component as a test plugin, granted to call `plugins`.
pub fn orchestrator(plugins: &[&str]) -> TestPlugin {
    let list: Vec<String> = plugins.iter().map(|p| format!("{p:?}")).collect();
    TestPlugin::new(
        "orchestrator",
        "orchestrator",
        crate_component("convergio_orchestrator"),
    )
    .declares(&["plugins"])
    .grants(&format!("plugins = [{}]", list.join(", ")))
}

/// Run `graph` (a graph document as JSON) with `input` under the id `id`
/// on `runs`, to its end; the run and how it ended.
pub async fn run_graph(
    runs: &convergio_cap_runs::Runs,
    graph: &serde_json::Value,
    input: serde_json::Value,
    id: &str,
) -> (convergio_journal::RunId, convergio_graph::engine::Status) {
    let graph = convergio_graph::document::read(&graph.to_string())
        .unwrap_or_else(|e| panic!("the graph: {e}"));
    let run = runs
        .start(&graph, input, Some(id.to_owned()))
        .await
        .unwrap_or_else(|e| panic!("start: {e}"));
    let status = runs
        .wait_final(&run)
        .await
        .unwrap_or_else(|e| panic!("wait: {e}"));
    (run, status)
}

/// The output of a run that is done (a panic shows how it ended instead).
pub fn done(status: convergio_graph::engine::Status) -> serde_json::Value {
    match status {
        convergio_graph::engine::Status::Done { output } => output,
        other => panic!("the run did not finish: {other:?}"),
    }
}
