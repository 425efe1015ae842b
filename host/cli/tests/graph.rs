//! `convergio graph validate`, run as a graph author would.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

fn convergio(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_convergio"))
        .args(args)
        .current_dir(dir)
        .env("CONVERGIO_HOME", dir.join("home"))
        .env_remove("CONVERGIO_CONFIG")
        .output()
        .unwrap()
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
            "bad.yaml:5:12: unknown node kind `tol`; a node has exactly one of tool, agent, subgraph, map, condition, interrupt",
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
