//! `convergio graph validate`, run as a graph author would.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Output;

use convergio_tests::process::convergio_in;

fn convergio(dir: &Path, args: &[&str]) -> Output {
    convergio_in(Path::new(env!("CARGO_BIN_EXE_convergio")), dir, args)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const BAD: &str = "\
state:
  total: { reducer: add, default: [] }
nodes:
  fetch: { tool: web/fetch, input: { u: '{{ state.url }}' } }
  parse: { tol: x/y }
  loop: { agent: x }
edges:
  - fetch -> loop
  - loop -> fetch
  - { from: fetch, to: nowhere }
";

#[test]
fn a_bad_graph_prints_every_error_at_its_position() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.yaml"), BAD).unwrap();
    let out = convergio(dir.path(), &["graph", "validate", "bad.yaml"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "bad.yaml:2:35: reducer `add` needs a number default, not an array",
            "bad.yaml:4:51: unknown state key `url`; declared: total",
            "bad.yaml:5:12: unknown node kind `tol`; a node has exactly one of tool, agent, subgraph, map, condition, interrupt, planner",
            "bad.yaml:9:5: cycle fetch -> loop -> fetch has no loop edge; a graph may loop only through an edge with `max-iterations`: add it to one of fetch -> loop, loop -> fetch",
            "bad.yaml:10:24: no node `nowhere`; nodes: fetch, loop, parse",
            "5 error(s) in bad.yaml",
        ]
    );
}

#[test]
fn a_good_graph_prints_a_summary() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/graphs");
    let dir = tempfile::tempdir().unwrap();
    let file = examples.join("triage.yaml");
    let out = convergio(dir.path(), &["graph", "validate", file.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        stdout(&out),
        format!(
            "ok: {}: 9 nodes, 7 edges, 10 state keys, 1 subgraph; plugins not checked: pass --config platform.toml\n",
            file.display()
        )
    );
}

#[test]
fn with_a_platform_plugins_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("platform.toml"),
        "[[plugin]]\nid = \"web\"\nmanifest = \"web/plugin.toml\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("g.json"),
        "{\"nodes\": {\n\t\"a\": {\"tool\": \"web/fetch\"},\n\t\"b\": {\"agent\": \"writer\"}\n}, \"edges\": [\"a -> b\"]}\n",
    )
    .unwrap();
    let out = convergio(
        dir.path(),
        &["--config", "platform.toml", "graph", "validate", "g.json"],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        stdout(&out),
        "g.json:3:17: no plugin `writer` in platform.toml\n1 error(s) in g.json\n"
    );
    // Without --config the plugins are not checked.
    let out = convergio(dir.path(), &["graph", "validate", "g.json"]);
    assert!(out.status.success(), "{out:?}");
    // A missing file is one error, named.
    let out = convergio(dir.path(), &["graph", "validate", "none.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).starts_with("none.yaml: cannot read the file: "),
        "{out:?}"
    );
}

/// The run verbs on a real platform: a run that waits for an answer, an
/// answer refused by its schema, then accepted; list, status, checkpoints,
/// state at a step, a fork with a patch, and prune.
#[test]
fn run_answer_inspect_fork_and_prune_a_graph() {
    use convergio_tests::{TestPlugin, crate_component, test_component, write_platform};
    let dir = tempfile::tempdir().unwrap();
    let path = write_platform(
        dir.path(),
        "",
        &[
            TestPlugin::new(
                "orchestrator",
                "orchestrator",
                crate_component("convergio_orchestrator"),
            )
            .declares(&["plugins"])
            .grants("plugins = [\"plain\"]"),
            TestPlugin::new("plain", "tool", test_component("plain_tool")),
        ],
    );
    let config = path.to_str().unwrap();
    std::fs::write(
        dir.path().join("ask.yaml"),
        "\
state:
  names: { default: [a, b, c] }
  echoed: {}
  ok: { schema: { type: boolean } }
nodes:
  each:
    map: { over: state.names, max-concurrency: 2, tool: plain/echo }
    input: { name: \"{{ item }}\" }
    output: echoed
  ask:
    interrupt: { prompt: \"Echo {{ len(state.echoed) }} names?\", schema: { type: boolean } }
    output: ok
edges:
  - each -> ask
",
    )
    .unwrap();
    let run = |args: &[&str]| {
        let mut all = vec!["--config", config, "graph"];
        all.extend_from_slice(args);
        convergio(dir.path(), &all)
    };
    let stderr = |out: &Output| String::from_utf8_lossy(&out.stderr).into_owned();

    let out = run(&["run", "ask.yaml", "--id", "r1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("run r1: waiting for input"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("interrupt `ask`: Echo 3 names?"),
        "{}",
        stderr(&out)
    );

    let out = run(&["resume", "r1", "--interrupt", "ask", "--input", "\"yes\""]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("does not match its schema"),
        "{}",
        stderr(&out)
    );

    let out = run(&["resume", "r1", "--interrupt", "ask", "--input", "true"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let output: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(output["ok"], true);
    assert_eq!(output["echoed"].as_array().unwrap().len(), 3);

    let out = run(&["list", "--json"]);
    let listed: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(
        (listed["id"].as_str(), listed["status"].as_str()),
        (Some("r1"), Some("done"))
    );

    let out = run(&["status", "r1"]);
    assert!(stdout(&out).contains("status    done"), "{}", stdout(&out));

    let out = run(&["checkpoints", "r1", "--json"]);
    let steps: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(steps.len() >= 3, "{steps:?}");
    let first = steps[0]["seq"].as_u64().unwrap().to_string();

    let out = run(&["state", "r1", "--at", &first]);
    let state: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(state, serde_json::json!({"names": ["a", "b", "c"]}));

    // Forked after the first step, with a patch: the map had taken its
    // items already, so the fork runs them again under its own keys, and
    // asks again.
    let out = run(&["fork", "r1", &first, "--patch", "{\"names\": [\"x\"]}"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("waiting for input"),
        "{}",
        stderr(&out)
    );
    let out = run(&["list", "--json"]);
    assert_eq!(stdout(&out).lines().count(), 2);

    // r1 is over, but the waiting fork shares its journal: it stays.
    let out = run(&["prune", "--older-than", "0s"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "");
    assert!(
        stderr(&out).contains("kept for their forks: r1"),
        "{}",
        stderr(&out)
    );
}
