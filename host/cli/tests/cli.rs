//! The `convergio` binary, run as an operator or a plugin author would.

// Test helpers outside #[test] functions may panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use convergio_tests::process::{finish, output};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn convergio(args: &[&str]) -> Output {
    output(
        Command::new(env!("CARGO_BIN_EXE_convergio"))
            .args(args)
            .env(
                "CONVERGIO_HOME",
                workspace().join("target/convergio-test-home"),
            )
            .env_remove("CONVERGIO_CONFIG"),
    )
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn demo_built() -> bool {
    workspace()
        .join("target/wasm32-wasip2/debug/hello_tool.wasm")
        .is_file()
}

#[test]
fn check_reports_every_problem_at_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("platform.toml"),
        "[[plugin]]\nid = \"a\"\nmanifest = \"missing-a.toml\"\n\n[[plugin]]\nid = \"B\"\nmanifest = \"missing-b.toml\"\n",
    )
    .unwrap();
    let config = dir.path().join("platform.toml");
    let out = convergio(&["--config", config.to_str().unwrap(), "check"]);
    let stdout = text(&out.stdout);
    assert!(!out.status.success());
    assert!(
        stdout.contains("platform.toml:2: plugin `a`: cannot read"),
        "{stdout}"
    );
    assert!(
        stdout.contains("platform.toml:6: field `id`: `B` is not a plugin id"),
        "{stdout}"
    );
    assert!(stdout.contains("3 problem(s) found"), "{stdout}");
}

#[test]
fn a_typo_in_platform_toml_is_one_located_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("platform.toml"),
        "[runtime]\nepoch-tick = 5\n",
    )
    .unwrap();
    let config = dir.path().join("platform.toml");
    let out = convergio(&["--config", config.to_str().unwrap(), "check"]);
    let stdout = text(&out.stdout);
    assert!(!out.status.success());
    let line = stdout.lines().next().unwrap();
    assert!(
        line.contains("platform.toml:2:1: unknown field `epoch-tick`, expected one of"),
        "{stdout}"
    );
}

#[test]
fn demo_platform_checks_lists_and_invokes() {
    assert!(
        demo_built(),
        "build the components first: cargo xtask build-components"
    );
    let config = workspace().join("examples/platform.toml");
    let config = config.to_str().unwrap();

    let out = convergio(&["--config", config, "check"]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("ok: 6 plugin(s) load and link"),
        "{}",
        text(&out.stdout)
    );

    let out = convergio(&["--config", config, "plugin", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "agent-llm",
            "greeter-agent",
            "hello-tool",
            "knowledge",
            "orchestrator",
            "provider-local"
        ]
    );

    let out = convergio(&[
        "--config",
        config,
        "invoke",
        "hello-tool",
        "tool.invoke",
        r#"["add", "{\"a\": 2, \"b\": 40}"]"#,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sum: serde_json::Value = serde_json::from_str(result["ok"].as_str().unwrap()).unwrap();
    assert_eq!(sum["sum"], serde_json::json!(42.0));

    let out = convergio(&[
        "--config",
        config,
        "invoke",
        "hello-tool",
        "tool.invoke",
        r#"["nope", "{}"]"#,
    ]);
    assert!(!out.status.success(), "an `err` result exits non-zero");
    assert!(
        text(&out.stdout).contains("unknown-tool"),
        "{}",
        text(&out.stdout)
    );

    let out = convergio(&[
        "--config",
        config,
        "invoke",
        "hello-tool",
        "tool.invoke",
        "[1]",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("expected 2 argument(s) (name, arguments), got 1"),
        "{}",
        text(&out.stderr)
    );

    let out = convergio(&["--config", config, "invoke", "hello-tool", "launch"]);
    assert!(
        text(&out.stderr).contains("has no export `launch`; it exports:"),
        "{}",
        text(&out.stderr)
    );

    // The demo's graph: a map, a tool, a condition and the agent, offline.
    let graph = workspace().join("examples/graphs/hello.yaml");
    let out = convergio(&[
        "--config",
        config,
        "graph",
        "run",
        graph.to_str().unwrap(),
        "--follow",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let output: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(output["score"], serde_json::json!(3.5));
    assert_eq!(output["verdict"], "Hello, everyone!");
    assert_eq!(output["greetings"][2]["greeting"], "Hello, Alan!");
    assert!(
        text(&out.stderr).contains("– few skipped"),
        "{}",
        text(&out.stderr)
    );
}

/// Load `component` as the scaffolded `my-tool` and call its `echo` tool.
fn invoke_echo(dir: &Path, component: &Path) -> serde_json::Value {
    std::fs::write(
        dir.join("platform.toml"),
        format!(
            "[runtime]\ncompile-cache = false\n\n[[plugin]]\nid = \"my-tool\"\nmanifest = \"my-tool/plugin.toml\"\ncomponent = {component:?}\n[plugin.grants]\nlogging = true\n"
        ),
    )
    .unwrap();
    let config = dir.join("platform.toml");
    let out = convergio(&[
        "--config",
        config.to_str().unwrap(),
        "invoke",
        "my-tool",
        "tool.invoke",
        r#"["echo", "{\"text\": \"hi\"}"]"#,
    ]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The toolchain the workspace pins, so the scaffolded crate builds with it too.
fn pinned_toolchain() -> String {
    let text = std::fs::read_to_string(workspace().join("rust-toolchain.toml")).unwrap();
    let line = text.lines().find(|l| l.starts_with("channel")).unwrap();
    line.split('"').nth(1).unwrap().to_string()
}

#[test]
fn a_scaffolded_tool_builds_and_runs_in_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let crate_dir = dir.path().join("my-tool");
    let out = convergio(&[
        "new",
        "tool",
        "my-tool",
        "--dir",
        crate_dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for file in ["Cargo.toml", "src/lib.rs", "plugin.toml", "README.md"] {
        assert!(crate_dir.join(file).is_file(), "{file} was not created");
    }

    // Plain cargo, as a plugin author would build it; target dir shared across runs to save time.
    let target = workspace().join("target/scaffold-test");
    let status = Command::new("cargo")
        .args(["build", "--target", "wasm32-wasip2", "--release"])
        .current_dir(&crate_dir)
        .env("CARGO_TARGET_DIR", &target)
        .env("RUSTUP_TOOLCHAIN", pinned_toolchain())
        .status()
        .unwrap();
    assert!(status.success(), "the scaffolded crate does not build");

    // The scaffold's own plugin.toml, unchanged; the operator points at the built file.
    let plain = target.join("wasm32-wasip2/release/my_tool.wasm");
    assert_eq!(
        invoke_echo(dir.path(), &plain),
        serde_json::json!({"ok": "{\"text\":\"hi\"}"})
    );

    // The same crate through cargo component (WASI preview 1 plus its adapter).
    let status = Command::new("cargo")
        .args(["component", "build", "--release"])
        .current_dir(&crate_dir)
        .env("CARGO_TARGET_DIR", &target)
        .env("RUSTUP_TOOLCHAIN", pinned_toolchain())
        .status()
        .unwrap();
    assert!(
        status.success(),
        "`cargo component build` failed (is cargo-component installed? `cargo xtask setup`)"
    );
    let adapted = target.join("wasm32-wasip1/release/my_tool.wasm");
    assert_eq!(
        invoke_echo(dir.path(), &adapted),
        serde_json::json!({"ok": "{\"text\":\"hi\"}"})
    );

    // A second `new` into the same folder is refused rather than overwriting.
    let out = convergio(&[
        "new",
        "tool",
        "my-tool",
        "--dir",
        crate_dir.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("already exists and is not empty"));
}

#[test]
fn new_refuses_a_bad_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = convergio(&[
        "new",
        "agent",
        "My_Agent",
        "--dir",
        dir.path().join("x").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("is not a plugin id"),
        "{}",
        text(&out.stderr)
    );
}

/// Every file under `dir`, read as bytes.
fn all_bytes(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(all_bytes(&path));
        } else {
            out.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    out
}

fn keys(home: &Path, args: &[&str], stdin: &str) -> Output {
    keys_with("/nonexistent/platform.toml", Some(home), args, stdin)
}

/// `convergio --config CONFIG keys ARGS` with `stdin` piped in (and
/// `CONVERGIO_HOME` set to `home`, if given).
fn keys_with(config: &str, home: Option<&Path>, args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut command = Command::new(env!("CARGO_BIN_EXE_convergio"));
    command
        .args(["--config", config, "keys"])
        .args(args)
        .env_remove("CONVERGIO_MASTER_KEY")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    if let Some(home) = home {
        command.env("CONVERGIO_HOME", home);
    }
    let mut child = command.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    finish(child)
}

#[test]
fn keys_lifecycle_never_shows_the_secret() {
    let home = tempfile::tempdir().unwrap();
    let marker = "sk-MARKER-5f3c9a7e1d2b4c6a8e0f";
    let rotated = "sk-ROTATED-0a1b2c3d4e5f6a7b8c9d";
    let mut printed = String::new();
    let mut step = |args: &[&str], stdin: &str| {
        let out = keys(home.path(), args, stdin);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        printed.push_str(&stdout);
        printed.push_str(&stderr);
        assert!(out.status.success(), "keys {args:?}: {stdout}{stderr}");
        stdout
    };

    let added = step(
        &["add", "openai", "--expires", "2099-01-31"],
        &format!("{marker}\n"),
    );
    assert!(added.contains("added openai/default version 1"), "{added}");
    let listed = step(&["list"], "");
    assert!(listed.contains("openai/default v1 active"), "{listed}");
    assert!(
        listed.contains("…8e0f"),
        "masked to the last 4 characters: {listed}"
    );

    let out = step(&["rotate", "openai", "--grace", "1h"], rotated);
    assert!(out.contains("version 2 is active"), "{out}");
    let listed = step(&["list"], "");
    assert!(
        listed.contains("v2 active") && listed.contains("v1 grace"),
        "{listed}"
    );
    step(&["usage"], "");
    let out = step(&["remove", "openai"], "");
    assert!(
        out.contains("removed openai/default (2 version(s))"),
        "{out}"
    );

    for secret in [marker, rotated] {
        assert!(!printed.contains(secret), "a secret was printed");
        for (path, bytes) in all_bytes(home.path()) {
            let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!found, "the secret is in {} in plain text", path.display());
        }
    }

    // No secret on stdin is a clear error, not an empty key.
    let out = keys(home.path(), &["add", "anthropic"], "");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no secret given"),
        "{}",
        text(&out.stderr)
    );
}

/// The issue's leak test: a key with a known marker, a workload that sends it
/// upstream, and the marker nowhere but on the wire to its bound host — not
/// in the data directory, not in trace-level logs, not on stdout or stderr.
#[test]
fn a_used_key_never_leaks_into_files_logs_or_output() {
    use convergio_tests::upstream::{Reply, Upstream};
    use convergio_tests::{TestPlugin, test_component, write_platform};

    let marker = "sk-LEAK-MARKER-9e8d7c6b5a4f3e2d1c0b";
    let home = tempfile::tempdir().unwrap();
    let out = keys(
        home.path(),
        &["add", "openai", "--host", "127.0.0.1"],
        &format!("{marker}\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    let server = tokio::runtime::Runtime::new().unwrap();
    let upstream = server.block_on(Upstream::start(|r| {
        let ok = r
            .header("authorization")
            .is_some_and(|a| a.starts_with("Bearer sk-"));
        Reply::json(
            if ok { 200 } else { 401 },
            &serde_json::json!({"choices": []}),
        )
    }));
    let platform_dir = tempfile::tempdir().unwrap();
    let plugin = TestPlugin::new("fetcher", "tool", test_component("http_tool"))
        .declares(&["http", "keys"])
        .grants(&format!(
            "http = [\"{}\"]\nkeys = [\"openai\"]",
            upstream.origin()
        ));
    // The platform keeps its data in the same home as `convergio keys`.
    let data_dir = format!("data-dir = {:?}\n", home.path());
    let platform = write_platform(platform_dir.path(), &data_dir, &[plugin]);

    let mut printed = String::new();
    for (url, key) in [
        (
            format!("{}/v1/chat/completions", upstream.origin()),
            "key:openai/default",
        ),
        // A refused attempt logs its reasons too.
        (
            "http://169.254.169.254/latest".to_owned(),
            "key:openai/default",
        ),
    ] {
        let args = serde_json::json!({ "url": url, "method": "POST", "body": "{}", "key": key });
        let out = output(
            Command::new(env!("CARGO_BIN_EXE_convergio"))
                .args([
                    "--config",
                    platform.to_str().unwrap(),
                    "--log",
                    "trace",
                    "invoke",
                ])
                .args(["fetcher", "tool.invoke"])
                .arg(serde_json::json!(["fetch", args.to_string()]).to_string())
                .env("CONVERGIO_HOME", home.path())
                .env_remove("CONVERGIO_MASTER_KEY")
                .env_remove("RUST_LOG"),
        );
        printed.push_str(&text(&out.stdout));
        printed.push_str(&text(&out.stderr));
    }
    assert!(
        printed.contains(r#"\"status\":200"#),
        "the workload ran: {printed}"
    );
    assert!(
        printed.contains("convergio.http.request"),
        "trace logging was on: {printed}"
    );
    let sent = upstream.received();
    assert_eq!(
        sent[0].header("authorization"),
        Some(format!("Bearer {marker}").as_str()),
        "the key went to its bound host"
    );

    assert!(!printed.contains(marker), "the secret was printed");
    assert!(
        !printed.contains(&marker[3..]),
        "part of the secret was printed"
    );
    for dir in [home.path(), platform_dir.path()] {
        for (path, bytes) in all_bytes(dir) {
            let found = bytes.windows(marker.len()).any(|w| w == marker.as_bytes());
            assert!(!found, "the secret is in {} in plain text", path.display());
        }
    }
}

#[test]
fn chat_streams_an_answer_through_the_router() {
    use convergio_tests::{TestPlugin, test_component, write_platform};

    let dir = tempfile::tempdir().unwrap();
    let provider = TestPlugin::new("echo", "provider", test_component("echo_provider"));
    let platform = write_platform(dir.path(), "", &[provider]);
    let config = platform.to_str().unwrap();

    let out = convergio(&[
        "--config",
        config,
        "chat",
        "--model",
        "echo/echo-1",
        "hello there",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "echo: hello there \n");
    assert!(
        text(&out.stderr).contains("[echo/echo-1: 2 tokens in, 3 out, $0.000008]"),
        "{}",
        text(&out.stderr)
    );

    // The cheapest model by default; the list shows prices.
    let out = convergio(&["--config", config, "chat", "hi"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = convergio(&["--config", config, "chat", "--list"]);
    assert!(
        text(&out.stdout).contains("echo/echo-1  context 4096  $1/$2 per Mtok"),
        "{}",
        text(&out.stdout)
    );

    // Both calls are in the usage ledger of the platform's data directory.
    let out = convergio(&["--config", config, "usage"]);
    assert!(
        text(&out.stdout).contains("cli  echo/echo-1  2 calls  3 in  5 out  $0.000013"),
        "{}",
        text(&out.stdout)
    );

    let out = convergio(&["--config", config, "chat", "--model", "nope/x", "hi"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no provider `nope`"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn keys_list_warns_by_the_platforms_key_policy() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("platform.toml");
    std::fs::write(
        &config,
        "[runtime]\ndata-dir = \"data\"\n\n[keys]\nmax-age-days = { openai = 5 }\nwarn-days = 7\n",
    )
    .unwrap();
    let keys = |args: &[&str], stdin: &str| keys_with(config.to_str().unwrap(), None, args, stdin);
    let out = keys(&["add", "openai"], "sk-policy-test-0123456789\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = keys(&["add", "anthropic"], "sk-ant-policy-test-0123456789\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed = text(&keys(&["list"], "").stdout);
    let line = |provider: &str| {
        listed
            .lines()
            .skip_while(|l| !l.starts_with(provider))
            .take_while(|l| l.starts_with(provider) || l.starts_with(' '))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(
        line("openai").contains("the policy's maximum age is 5 days"),
        "{listed}"
    );
    assert!(!line("anthropic").contains("maximum age"), "{listed}");
    assert!(
        dir.path().join("data/vault.db").is_file(),
        "data-dir is used"
    );
}

/// `convergio` with the demo platform and its own home (data directory).
fn in_home(home: &Path, args: &[&str]) -> Output {
    let config = workspace().join("examples/platform.toml");
    output(
        Command::new(env!("CARGO_BIN_EXE_convergio"))
            .args(["--config", config.to_str().unwrap()])
            .args(args)
            .env("CONVERGIO_HOME", home),
    )
}

/// The model cache from the command line, and the demo's answer from the
/// local model: no key, no network.
#[test]
fn models_pull_list_rm_and_a_local_answer() {
    assert!(
        demo_built(),
        "build the components first: cargo xtask build-components"
    );
    let home = tempfile::tempdir().unwrap();
    let model = convergio_tests::test_model();

    // A file that is not a model is refused, and nothing is added.
    let junk = home.path().join("junk.gguf");
    std::fs::write(&junk, b"this is not a model").unwrap();
    let out = in_home(home.path(), &["models", "pull", junk.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not a GGUF file"),
        "{}",
        text(&out.stderr)
    );

    // A wrong --sha256 is refused.
    let out = in_home(
        home.path(),
        &[
            "models",
            "pull",
            model.to_str().unwrap(),
            "--name",
            "smollm2",
            "--sha256",
            &"0".repeat(64),
        ],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("sha256"),
        "{}",
        text(&out.stderr)
    );

    let out = in_home(
        home.path(),
        &[
            "models",
            "pull",
            model.to_str().unwrap(),
            "--name",
            "smollm2",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("added smollm2"),
        "{}",
        text(&out.stdout)
    );

    let out = in_home(home.path(), &["models", "list", "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed[0]["name"], "smollm2");
    assert_eq!(listed[0]["quantization"], "Q4_1");
    assert_eq!(listed[0]["context_length"], 8192);
    assert_eq!(listed[0]["sha256"], convergio_test_model::SHA256);

    let out = in_home(
        home.path(),
        &[
            "chat",
            "--model",
            "local/smollm2",
            "--temperature",
            "0",
            "--max-tokens",
            "32",
            "What is the capital of France?",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("Paris"), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("[local/smollm2:"),
        "{}",
        text(&out.stderr)
    );

    let out = in_home(home.path(), &["models", "rm", "smollm2"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = in_home(home.path(), &["models", "list"]);
    assert!(
        text(&out.stdout).contains("no models in"),
        "{}",
        text(&out.stdout)
    );
}

/// `convergio` with `args` in `cwd`, with `env` set (and no CONVERGIO_CONFIG unless given).
fn convergio_in(cwd: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_convergio"));
    command
        .args(args)
        .current_dir(cwd)
        .env(
            "CONVERGIO_HOME",
            workspace().join("target/convergio-test-home"),
        )
        .env_remove("CONVERGIO_CONFIG");
    for (name, value) in env {
        command.env(name, value);
    }
    output(&mut command)
}

#[test]
fn a_missing_platform_file_says_which_and_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let out = convergio_in(dir.path(), &[], &["chat", "hi"]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    let cwd = dir.path().canonicalize().unwrap();
    assert!(
        stderr.contains(&format!("no platform.toml in {}", cwd.display())),
        "{stderr}"
    );
    for fix in ["--config FILE", "CONVERGIO_CONFIG=FILE", "`convergio init`"] {
        assert!(stderr.contains(fix), "{fix}: {stderr}");
    }
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    let out = convergio_in(dir.path(), &[], &["--config", "nope.toml", "check"]);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("nope.toml does not exist (named by --config)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("`convergio --config nope.toml init`"),
        "{stderr}"
    );

    let out = convergio_in(
        dir.path(),
        &[("CONVERGIO_CONFIG", "elsewhere.toml")],
        &["plugin", "list"],
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("elsewhere.toml does not exist (named by CONVERGIO_CONFIG)"),
        "{stderr}"
    );

    // A file that exists but cannot be read names its cause once.
    std::fs::create_dir(dir.path().join("platform.toml")).unwrap();
    let out = convergio_in(dir.path(), &[], &["invoke", "x", "y"]);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("cannot read platform.toml: "), "{stderr}");
    let cause = stderr.trim_end().rsplit(": ").next().unwrap().to_owned();
    assert_eq!(stderr.matches(&cause).count(), 1, "{stderr}");
}

#[test]
fn init_writes_a_zero_cloud_platform_that_checks() {
    let dir = tempfile::tempdir().unwrap();
    // In a folder without components: the default path, and a note about it.
    let out = convergio_in(dir.path(), &[], &["init"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("wrote platform.toml"), "{stdout}");
    assert!(stdout.contains("does not exist yet"), "{stdout}");
    let written = std::fs::read_to_string(dir.path().join("platform.toml")).unwrap();
    assert!(written.contains("zero-cloud = true"), "{written}");
    assert!(
        written.contains("manifest = \"components/provider-local/plugin.toml\""),
        "{written}"
    );
    assert!(written.lines().filter(|l| l.starts_with('#')).count() > 5);

    // Never over an existing file, unless --force.
    std::fs::write(dir.path().join("platform.toml"), "# mine\n").unwrap();
    let out = convergio_in(dir.path(), &[], &["init"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("platform.toml already exists")
            && text(&out.stderr).contains("--force"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("platform.toml")).unwrap(),
        "# mine\n"
    );

    // Pointed at the checkout's components, it passes `check` once they are built.
    assert!(
        workspace()
            .join("target/wasm32-wasip2/debug/convergio_provider_local.wasm")
            .is_file(),
        "build the components first: cargo xtask build-components"
    );
    let components = workspace().join("components");
    let config = dir.path().join("sub/platform.toml");
    let config = config.to_str().unwrap();
    let home = dir.path().join("home");
    let home = home.to_str().unwrap();
    let env = [("CONVERGIO_HOME", home)];
    let out = convergio_in(
        dir.path(),
        &env,
        &[
            "--config",
            config,
            "init",
            "--components",
            components.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).contains("does not exist"));
    let out = convergio_in(dir.path(), &env, &["--config", config, "check"]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("ok: 1 plugin(s) load and link: provider-local"),
        "{}",
        text(&out.stdout)
    );
    let out = convergio_in(dir.path(), &env, &["--config", config, "init", "--force"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn two_instances_of_one_component() {
    assert!(
        demo_built(),
        "build the components first: cargo xtask build-components"
    );
    let dir = tempfile::tempdir().unwrap();
    let manifest = workspace().join("examples/hello-tool/plugin.toml");
    let mut platform = String::new();
    for (id, greeting) in [("hello-en", "Hello"), ("hello-fr", "Bonjour")] {
        platform.push_str(&format!(
            "[[plugin]]\nid = \"{id}\"\nmanifest = {manifest:?}\n[plugin.grants]\nlogging = true\nconfig = {{ greeting = \"{greeting}\" }}\n\n"
        ));
    }
    let config = dir.path().join("platform.toml");
    std::fs::write(&config, platform).unwrap();
    let config = config.to_str().unwrap();

    let out = convergio(&["--config", config, "check"]);
    assert!(
        text(&out.stdout).contains("ok: 2 plugin(s) load and link: hello-en, hello-fr"),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    for (id, greeting) in [("hello-en", "Hello, Ada!"), ("hello-fr", "Bonjour, Ada!")] {
        let out = convergio(&[
            "--config",
            config,
            "invoke",
            id,
            "tool.invoke",
            r#"["greet", "{\"name\": \"Ada\"}"]"#,
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let answer: serde_json::Value =
            serde_json::from_str(result["ok"].as_str().unwrap()).unwrap();
        assert_eq!(answer["greeting"], greeting, "{id}");
    }

    let out = convergio(&["--config", config, "plugin", "list"]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("hello-en: hello-tool 0.1.0 (tool), generation 1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("hello-fr: hello-tool 0.1.0 (tool), generation 1"),
        "{stdout}"
    );
    let out = convergio(&["--config", config, "plugin", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pairs: Vec<(&str, &str)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap(),
                p["component_id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        pairs,
        [("hello-en", "hello-tool"), ("hello-fr", "hello-tool")]
    );
}

#[test]
fn plugin_list_shows_names_and_types_on_request() {
    assert!(
        demo_built(),
        "build the components first: cargo xtask build-components"
    );
    let config = workspace().join("examples/platform.toml");
    let config = config.to_str().unwrap();
    let out = convergio(&["--config", config, "plugin", "list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let names = text(&out.stdout);
    assert!(
        names
            .lines()
            .any(|l| l == "  export convergio:platform/tool@0.1.0#invoke"),
        "{names}"
    );
    assert!(!names.contains("func("), "no types by default: {names}");
    let longest = names.lines().map(str::len).max().unwrap();
    assert!(longest < 120, "a line of {longest} characters: {names}");

    let out = convergio(&["--config", config, "plugin", "list", "--verbose"]);
    let verbose = text(&out.stdout);
    let lines: Vec<&str> = verbose.lines().collect();
    let at = lines
        .iter()
        .position(|l| *l == "  export convergio:platform/tool@0.1.0#invoke")
        .unwrap_or_else(|| panic!("{verbose}"));
    assert!(
        lines[at + 1]
            .starts_with("    func(name: string, arguments: string) -> result<string, variant{"),
        "the type under the name: {verbose}"
    );

    let out = convergio(&["--config", config, "plugin", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let tool = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "hello-tool")
        .unwrap();
    let invoke = tool["exports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e[0] == "convergio:platform/tool@0.1.0#invoke")
        .unwrap();
    assert!(invoke[1].as_str().unwrap().starts_with("func("), "{invoke}");
}
