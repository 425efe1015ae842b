//! `cargo xtask`: setup, component builds, tests and the demo.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

mod system;

const USAGE: &str = "\
cargo xtask <task>

Tasks:
  setup              install what a fresh machine needs (the wasm32-wasip2 target, wasm-tools,
                     cargo-component, cmake and libclang-dev for llama.cpp, the test model)
  build-components   build every guest component for wasm32-wasip2 (--release for optimized builds)
  bench              build-components --release, then run every benchmark (docs/benchmarks.md)
  test               build-components, then run every test of the workspace
  demo               build-components and the CLI, then run the demo platform
  wit-check          parse every WIT package and check it round-trips through wasm-tools
";

/// wasm-tools release that builds with the pinned toolchain.
const WASM_TOOLS_VERSION: &str = "1.263.0";
/// cargo-component release the scaffolding test builds with.
const CARGO_COMPONENT_VERSION: &str = "0.21.1";

fn main() -> Result<()> {
    let task = std::env::args().nth(1).unwrap_or_default();
    let root = root()?;
    std::env::set_current_dir(&root)?;
    match task.as_str() {
        "setup" => {
            setup(true)?;
            system::test_model().map(drop)
        }
        "build-components" => build_components(std::env::args().any(|a| a == "--release")),
        "bench" => {
            build_components(true)?;
            // Every target of convergio-benches, then the vault's request path.
            run(cargo().args(["bench", "-p", "convergio-benches"]))?;
            run(cargo().args(["bench", "-p", "convergio-cap-keys", "--bench", "resolve"]))
        }
        "test" => {
            // The scaffolding test builds with cargo-component too.
            setup(true)?;
            // The local-model tests run the real test model.
            system::test_model()?;
            // The benchmarks run once each as tests too, with these debug
            // builds (they measure with release builds: `cargo xtask bench`).
            build_components(false)?;
            run(cargo().args(["test", "--workspace", "--all-targets"]))?;
            // Doc tests are not part of --all-targets.
            run(cargo().args(["test", "--workspace", "--doc"]))
        }
        "demo" => demo(),
        "wit-check" => wit_check(),
        "" | "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown task `{other}`\n\n{USAGE}"),
    }
}

fn root() -> Result<PathBuf> {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(Path::to_path_buf)
        .context("xtask must live one level below the workspace root")
}

/// `cargo` through rustup, so `rust-toolchain.toml` picks the toolchain.
fn cargo() -> Command {
    Command::new("cargo")
}

pub(crate) fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

pub(crate) fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// Install the wasm target (and, with `tools`, wasm-tools) if missing.
fn setup(tools: bool) -> Result<()> {
    // llama.cpp (host/cap-local-model) builds with cmake and libclang.
    system::packages()?;
    let installed = output(Command::new("rustup").args(["target", "list", "--installed"]))?;
    if !installed.lines().any(|l| l.trim() == "wasm32-wasip2") {
        run(Command::new("rustup").args(["target", "add", "wasm32-wasip2"]))?;
    }
    if tools
        && Command::new("wasm-tools")
            .arg("--version")
            .output()
            .is_err()
    {
        run(cargo().args([
            "install",
            &format!("wasm-tools@{WASM_TOOLS_VERSION}"),
            "--locked",
            "--no-default-features",
            "--features",
            "component,print,parse,validate",
        ]))?;
    }
    let has_cargo_component = cargo()
        .args(["component", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if tools && !has_cargo_component {
        run(cargo().args([
            "install",
            &format!("cargo-component@{CARGO_COMPONENT_VERSION}"),
            "--locked",
        ]))?;
    }
    Ok(())
}

/// Build every package that has a `cdylib` library or example: those are guest components.
fn build_components(release: bool) -> Result<()> {
    setup(false)?;
    let metadata = output(cargo().args(["metadata", "--format-version", "1", "--no-deps"]))?;
    let metadata: serde_json::Value = serde_json::from_str(&metadata)?;
    let mut packages_with_lib: Vec<String> = Vec::new();
    let mut examples: Vec<String> = Vec::new();
    let packages = metadata["packages"]
        .as_array()
        .context("cargo metadata has no packages")?;
    for package in packages {
        let name = package["name"].as_str().unwrap_or_default();
        for target in package["targets"].as_array().into_iter().flatten() {
            let is_cdylib = target["crate_types"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t == "cdylib"));
            if !is_cdylib {
                continue;
            }
            let is_example = target["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "example"));
            if is_example {
                examples.extend(["-p".into(), name.into()]);
                examples.extend([
                    "--example".into(),
                    target["name"].as_str().unwrap_or_default().into(),
                ]);
            } else {
                packages_with_lib.extend(["-p".into(), name.into()]);
            }
        }
    }
    let mut args: Vec<String> = vec!["build".into(), "--target".into(), "wasm32-wasip2".into()];
    if release {
        args.push("--release".into());
    }
    args.extend(packages_with_lib);
    args.push("--lib".into());
    args.extend(examples);
    run(cargo().args(&args))
}

fn demo() -> Result<()> {
    setup(false)?;
    let model = system::test_model()?;
    build_components(false)?;
    run(cargo().args(["build", "-p", "convergio-cli"]))?;
    let exe = Path::new("target/debug/convergio");
    let config = "examples/platform.toml";
    let model = model.to_string_lossy().into_owned();
    let steps: [&[&str]; 12] = [
        &["check"],
        &["plugin", "list"],
        &[
            "invoke",
            "hello-tool",
            "tool.invoke",
            r#"["greet", "{\"name\": \"Ada\"}"]"#,
        ],
        &[
            "invoke",
            "greeter-agent",
            "agent.run",
            r#"[{"run-id": "demo", "node-id": "greet", "input": "{\"name\": \"Grace\"}", "state": []}]"#,
        ],
        // The local model: into the platform's model cache (once), then a
        // question answered on this machine, with no key and no network.
        &["models", "pull", &model, "--name", "smollm2"],
        &[
            "chat",
            "--model",
            "local/smollm2",
            "--max-tokens",
            "48",
            "--temperature",
            "0",
            "What is the capital of France?",
        ],
        // An agent graph on the same platform: a map greeting three people
        // two at a time, a tool and a condition beside it, and the agent to
        // sign off, every step journaled, shown live.
        &["graph", "run", "examples/graphs/hello.yaml", "--follow"],
        // The LLM agent alone, on the local model: a one-node graph run.
        &[
            "agent",
            "run",
            "examples/agents/tutor.yaml",
            "Why is the sky blue?",
            "--follow",
        ],
        // A multi-agent graph on the local model: two agents at once (JSON
        // answers of a schema, grammar-constrained), a tool, a condition and
        // a writer agent.
        &["graph", "run", "examples/graphs/study.yaml", "--follow"],
        // The planning layer: the local model writes a graph of two agents
        // and a tool for a goal (JSON of a schema), the plan is checked and
        // runs as a run of its own.
        &["graph", "run", "examples/graphs/plan.yaml", "--follow"],
        // Retrieval: documents embedded by the local model, then a search.
        &[
            "knowledge",
            "add",
            "school",
            "examples/knowledge/water-cycle.md",
            "examples/knowledge/volcanoes.md",
        ],
        &[
            "knowledge",
            "search",
            "school",
            "Why does it rain?",
            "-k",
            "1",
        ],
    ];
    for step in steps {
        println!("\n$ convergio --config {config} {}", step.join(" "));
        run(Command::new(exe).arg("--config").arg(config).args(step))?;
    }
    Ok(())
}

fn wit_check() -> Result<()> {
    setup(true)?;
    let dir = tempdir()?;
    // Encode the whole contract (our package and its vendored dependencies) and print it.
    let wasm = dir.join("platform.wasm");
    run(Command::new("wasm-tools")
        .args(["component", "wit", "wit", "--wasm", "-o"])
        .arg(&wasm))?;
    let printed = output(
        Command::new("wasm-tools")
            .args(["component", "wit"])
            .arg(&wasm),
    )?;
    // Round trip: write the printed packages out, parse them again, and print again.
    let out_dir = dir.join("printed");
    let _ = std::fs::remove_dir_all(&out_dir);
    run(Command::new("wasm-tools")
        .args(["component", "wit", "--out-dir"])
        .arg(&out_dir)
        .arg(&wasm))?;
    let wasm2 = dir.join("reparsed.wasm");
    run(Command::new("wasm-tools")
        .args(["component", "wit"])
        .arg(&out_dir)
        .args(["--wasm", "-o"])
        .arg(&wasm2))?;
    let reprinted = output(
        Command::new("wasm-tools")
            .args(["component", "wit"])
            .arg(&wasm2),
    )?;
    if printed != reprinted {
        bail!(
            "the WIT does not round-trip through wasm-tools: compare {} with {}",
            out_dir.display(),
            wasm2.display()
        );
    }
    println!("wit-check: wit/ and its vendored packages parse and round-trip through wasm-tools");
    Ok(())
}

fn tempdir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("convergio-wit-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
