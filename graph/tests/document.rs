//! Graph documents: reading, every validation rule with its message and
//! position, JSON input, and the example graphs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use convergio_graph::document::{self, Reader};
use convergio_graph::model::{Graph, NodeKind, OnError, Output, Reducer, RetryOnResume};
use convergio_graph::validate::{self, Catalog};

/// Every diagnostic of `src`, as printed.
fn errors(src: &str) -> Vec<String> {
    match document::read(src) {
        Ok(graph) => panic!("read without errors: {graph:?}"),
        Err(diagnostics) => diagnostics.iter().map(ToString::to_string).collect(),
    }
}

fn one_error(src: &str) -> String {
    let all = errors(src);
    assert_eq!(all.len(), 1, "{all:#?}");
    all.into_iter().next().unwrap()
}

fn ok(src: &str) -> Graph {
    document::read(src).unwrap_or_else(|d| panic!("{d}"))
}

fn examples() -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/graphs");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("yaml" | "json")
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_graph_is_valid() {
    let files = examples();
    assert!(files.len() >= 4, "{files:?}");
    for file in files {
        if let Err(d) = document::read_file(&file) {
            panic!("{d}");
        }
    }
}

#[test]
fn the_document_form_reads_into_the_model() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/graphs");
    let graph = document::read_file(&dir.join("triage.yaml")).unwrap();
    assert_eq!(graph.id.as_deref(), Some("triage"));
    let fetch = &graph.nodes["fetch"];
    assert_eq!(
        fetch.kind,
        NodeKind::Tool {
            plugin: "web".into(),
            tool: "fetch".into()
        }
    );
    assert_eq!(fetch.timeout_ms, Some(30_000));
    assert_eq!(
        (
            fetch.retry.attempts,
            fetch.retry.backoff_ms,
            fetch.retry.max_backoff_ms
        ),
        (3, 200, 5_000)
    );
    assert_eq!(fetch.output, Output::Key("page".into()));
    assert_eq!(fetch.on_error, OnError::Fail);
    assert_eq!(
        graph.nodes["drop"].kind,
        NodeKind::Tool {
            plugin: "tickets".into(),
            tool: "close".into()
        }
    );
    let Output::Map(map) = &graph.nodes["classify"].output else {
        panic!()
    };
    assert_eq!(map["total"], "len(output.labels)");
    let NodeKind::Map(spec) = &graph.nodes["lookup"].kind else {
        panic!()
    };
    assert_eq!(
        (spec.over.as_str(), spec.max_concurrency),
        ("state.tags", 4)
    );
    assert_eq!(
        spec.node,
        NodeKind::Tool {
            plugin: "kb".into(),
            tool: "lookup".into()
        }
    );
    assert_eq!(graph.nodes["send"].retry_on_resume, RetryOnResume::Never);
    assert_eq!(graph.state["tags"].reducer, Reducer::Append);
    assert_eq!(graph.state["tags"].default, Some(serde_json::json!([])));
    assert_eq!(graph.edges[0].from, "fetch");
    assert_eq!(
        graph.edges[6].when.as_deref(),
        Some("state.approved == true")
    );
    assert_eq!(graph.graphs["summarizer"].output, ["summary"]);
    assert_eq!(graph.output, ["answer", "approved"]);
    // The canonical form goes through serde and back unchanged.
    let json = serde_json::to_string(&graph).unwrap();
    assert_eq!(serde_json::from_str::<Graph>(&json).unwrap(), graph);
    assert!(validate::validate(&graph).is_empty());
}

#[test]
fn a_loop_edge_reads_with_its_bound() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/graphs");
    let graph = document::read_file(&dir.join("draft-review.yaml")).unwrap();
    assert_eq!(graph.edges[1].max_iterations, Some(3));
    assert!(graph.edges[1].is_loop());
}

// ---- the shape of the document ----

#[test]
fn an_unknown_node_kind_lists_the_kinds() {
    let src = "nodes:\n  fetch:\n    tol: web/fetch\n";
    assert_eq!(
        one_error(src),
        "3:5: unknown node kind `tol`; a node has exactly one of tool, agent, subgraph, map, condition, interrupt, planner"
    );
}

#[test]
fn a_node_has_exactly_one_kind() {
    assert_eq!(
        one_error("nodes:\n  a: { input: {} }\n"),
        "2:6: node `a` has no kind; a node has exactly one of tool, agent, subgraph, map, condition, interrupt, planner"
    );
    assert_eq!(
        one_error("nodes:\n  a: { agent: x, tool: w/f }\n"),
        "2:18: node `a` has two kinds, `agent` and `tool`; a node has exactly one of tool, agent, subgraph, map, condition, interrupt, planner"
    );
}

#[test]
fn unknown_fields_name_the_allowed_ones() {
    assert_eq!(
        one_error("nodes:\n  a:\n    agent: x\n    timout: 3s\n"),
        "4:5: unknown field `timout` in node `a`; the fields are: tool, agent, subgraph, map, condition, interrupt, planner, input, output, timeout, retry, on-error, retry-on-resume, description"
    );
    assert_eq!(
        one_error("nodes: { a: { agent: x } }\nedge: []\n"),
        "2:1: unknown field `edge` in a graph document; the fields are: id, description, state, nodes, edges, graphs, agents, output"
    );
    assert_eq!(
        one_error("state:\n  k: { reduce: add }\nnodes: { a: { agent: x } }\n"),
        "2:8: unknown field `reduce` in a state key; the fields are: schema, reducer, default, description"
    );
    assert_eq!(
        one_error("nodes:\n  a: { agent: x, retry: { attempts: 2, wait: 1s } }\n"),
        "2:40: unknown field `wait` in `retry`; the fields are: attempts, backoff, max-backoff"
    );
}

#[test]
fn values_of_the_wrong_form_are_errors() {
    let src = "\
nodes:
  a: { tool: webfetch, timeout: 30 }
  b: { agent: x, timeout: soon, retry: { attempts: -1 }, retry-on-resume: sometimes }
  c: { map: { over: state.x, tool: w/f, agent: y } }
state:
  k: { reducer: sum }
edges: [a - b, { from: a }]
";
    assert_eq!(
        errors(src),
        [
            "2:14: `webfetch` is not a tool: write `plugin/tool`, e.g. `web/fetch`",
            "2:33: `timeout` is a string, not a number",
            "3:27: `soon` is not a duration (expected number at 0); write e.g. `30s`, `500ms`, `2m`",
            "3:52: `attempts` is a whole number from 0 to 4294967295, not -1",
            "3:75: `retry-on-resume` is `always` or `never`, not `sometimes`",
            "4:41: a map runs one of tool, agent, subgraph per item, not both `tool` and `agent`",
            "6:17: unknown reducer `sum`; the reducers are: replace, append, merge, add",
            "7:9: `a - b` is not an edge: write `from -> to`, or a mapping with `from` and `to`",
            "7:16: an edge needs `to`",
        ]
    );
}

#[test]
fn yaml_errors_have_positions() {
    assert_eq!(
        one_error("nodes:\n  a: { agent: x }\n  a: { agent: y }\n"),
        "3:3: duplicate key `a` (first at 2:3)"
    );
    let err = one_error("nodes:\n  a: { agent: x\n");
    assert!(err.contains(": not valid YAML: "), "{err}");
    assert_eq!(
        errors("nodes:\n  a: &n { agent: x }\n  b: *n\n").join("\n"),
        "2:9: anchors (`&name`) and aliases (`*name`) are not supported; write the value out\n3:6: anchors (`&name`) and aliases (`*name`) are not supported; write the value out"
    );
    assert_eq!(one_error(""), "1:1: the document is empty");
}

#[test]
fn the_size_and_depth_are_capped() {
    let big = format!(
        "nodes: {{ a: {{ agent: x }} }}\n#{}\n",
        "x".repeat(document::MAX_BYTES)
    );
    assert_eq!(
        one_error(&big),
        format!(
            "1:1: the document is {} bytes long; the limit is 4194304 (4 MiB)",
            big.len()
        )
    );
    let deep = format!(
        "nodes: {{ a: {{ agent: x, input: {}{} }} }}",
        "[".repeat(70),
        "]".repeat(70)
    );
    assert_eq!(
        one_error(&deep),
        "1:93: the document nests deeper than 64 levels"
    );
}

// ---- the rules ----

#[test]
fn a_cycle_without_a_loop_edge_is_named() {
    let src = "nodes:\n  start: { agent: x }\n  a: { agent: x }\n  b: { agent: x }\nedges:\n  - start -> a\n  - a -> b\n  - b -> a\n";
    assert_eq!(
        one_error(src),
        "8:5: cycle a -> b -> a has no loop edge; a graph may loop only through an edge with `max-iterations`: add it to one of a -> b, b -> a"
    );
}

#[test]
fn a_cycle_through_routes_only_cannot_be_guarded() {
    let src = "\
nodes:
  start: { agent: x }
  c: { condition: { routes: [{ when: 'true', to: d }] } }
  d: { agent: x, on-error: c }
edges: [start -> c]
";
    assert_eq!(
        one_error(src),
        "4:28: cycle c -> d -> c runs only through routes and error edges, which cannot carry `max-iterations`; loop back with an edge that has `when` and `max-iterations`"
    );
}

#[test]
fn a_loop_edge_must_close_a_cycle() {
    let src = "nodes: { a: { agent: x }, b: { agent: x } }\nedges:\n  - a -> b\n  - { from: a, to: b, when: 'true', max-iterations: 2 }\n";
    assert_eq!(
        one_error(src),
        "4:53: a -> b has `max-iterations` but closes no cycle: `b` does not lead back to `a`; a loop edge goes back to an earlier node"
    );
}

#[test]
fn every_node_having_an_incoming_edge_leaves_no_entry() {
    // Only a cycle leaves no entry: each node of a graph without cycles
    // that has an incoming edge has a predecessor without one.
    let src = "nodes: { a: { agent: x }, b: { agent: x } }\nedges:\n  - a -> b\n  - { from: b, to: a, when: 'true' }\n";
    assert_eq!(
        errors(src),
        [
            "1:1: no entry node: every node has an incoming edge (loop edges aside), so a run has nowhere to start",
            "4:5: cycle a -> b -> a has no loop edge; a graph may loop only through an edge with `max-iterations`: add it to one of a -> b, b -> a",
        ]
    );
}

#[test]
fn names_must_exist() {
    let src = "\
state: { k: {} }
nodes:
  a: { agent: x, output: kk, on-error: zz }
  c: { condition: { routes: [{ when: 'true', to: nowhere }], default: b } }
  s: { subgraph: sub }
edges: [a -> b, { from: b, to: c }]
output: [k, q]
";
    assert_eq!(
        errors(src),
        [
            "3:26: unknown state key `kk`; declared: k",
            "3:40: no node `zz`; nodes: a, c, s",
            "4:50: no node `nowhere`; nodes: a, c, s",
            "4:71: no node `b`; nodes: a, c, s",
            "5:18: no graph `sub` in `graphs`; declared: none",
            "6:14: no node `b`; nodes: a, c, s",
            "6:25: no node `b`; nodes: a, c, s",
            "7:13: unknown state key `q`; declared: k",
        ]
    );
}

#[test]
fn a_condition_leads_on_through_routes_only() {
    let src = "nodes:\n  c: { condition: { routes: [{ when: 'true', to: b }] } }\n  b: { agent: x }\nedges:\n  - c -> b\n";
    let all = errors(src);
    assert!(
        all.contains(&"5:5: `c` is a condition: it leads on through its routes, not edges; make this edge a route or remove it".to_owned()),
        "{all:#?}"
    );
}

#[test]
fn bounds_are_at_least_one() {
    let src = "\
nodes:
  a: { agent: x, retry: { attempts: 0 }, timeout: 0s }
  m: { map: { over: 'state.k', max-concurrency: 0, agent: y } }
  b: { agent: x }
state: { k: {} }
edges: [a -> m, m -> b, { from: b, to: a, max-iterations: 0 }]
";
    assert_eq!(
        errors(src),
        [
            "2:37: attempts must be at least 1 (the first attempt counts)",
            "2:51: a timeout must be longer than 0",
            "3:49: max-concurrency must be at least 1",
            "6:59: max-iterations must be at least 1",
        ]
    );
}

#[test]
fn reducers_fit_their_defaults_and_schemas() {
    let src = "\
state:
  tags: { reducer: append, default: 0 }
  total: { reducer: add, schema: { type: string } }
  notes: { reducer: merge, default: [] }
  name: { schema: { type: strin } }
  count: { schema: { type: integer }, default: 1.5 }
nodes: { a: { agent: x } }
";
    let all = errors(src);
    assert_eq!(all.len(), 5, "{all:#?}");
    assert_eq!(
        all[0],
        "2:37: reducer `append` needs a list default, not a number"
    );
    assert_eq!(
        all[1],
        "3:21: reducer `add` needs a key of type `number`, but the schema's type is `string`"
    );
    assert_eq!(
        all[2],
        "4:37: reducer `merge` needs an object default, not an array"
    );
    assert!(
        all[3].starts_with("5:19: not a valid JSON Schema: "),
        "{}",
        all[3]
    );
    assert_eq!(
        all[4],
        "6:48: the default does not match the key's schema: at the top: 1.5 is not of type \"integer\""
    );
}

#[test]
fn an_interrupt_schema_must_compile() {
    let src = "nodes:\n  ask: { interrupt: { prompt: ok?, schema: { type: 3 } } }\n";
    let err = one_error(src);
    assert!(err.starts_with("2:44: not a valid JSON Schema: "), "{err}");
}

#[test]
fn two_concurrent_writers_of_a_replace_key_conflict() {
    let src = "\
state: { answer: {}, log: { reducer: append, default: [] } }
nodes:
  start: { agent: x }
  left: { agent: x, output: answer }
  right: { agent: y, output: { answer: output.text, log: output } }
  after: { agent: z, output: answer }
edges: [start -> left, start -> right, left -> after, right -> after]
";
    assert_eq!(
        one_error(src),
        "5:40: state key `answer` (reducer replace) is written by `left` and `right`, which may run at the same time: declare a reducer (append, merge, add) or order the nodes with an edge"
    );
}

#[test]
fn writers_on_exclusive_ways_do_not_conflict() {
    // `yes` and `no-more` are on different routes of `pick`; `fine` and
    // `rescue` on the two ways out of `risky` (its edge or its error edge).
    let exclusive = "\
state: { answer: {} }
nodes:
  pick: { condition: { routes: [{ when: 'true', to: yes }], default: no } }
  yes: { agent: x, output: answer }
  no: { agent: y }
  no-more: { agent: y, output: answer }
  risky: { agent: z, on-error: rescue }
  fine: { agent: z, output: answer }
  rescue: { agent: z, output: answer }
edges: [no -> no-more, yes -> risky, no-more -> risky, risky -> fine]
";
    ok(exclusive);
    // A second entry runs beside all of them.
    let with_side = exclusive.replace("nodes:\n", "nodes:\n  side: { agent: q, output: answer }\n");
    let all = errors(&with_side);
    assert_eq!(all.len(), 4, "{all:#?}");
    assert!(
        all.iter()
            .all(|e| e.contains("`side`") && e.contains("may run at the same time")),
        "{all:#?}"
    );
}

// ---- expressions and templates, placed in the file ----

#[test]
fn expression_errors_point_into_the_scalar() {
    let src = "\
state: { name: {} }
nodes:
  a: { agent: x, input: { q: \"hi {{ state.nmae }}\" } }
  b: { agent: x, input: 'x {{ nodes.clasify.output }}' }
  c:
    agent: x
    input: { q: 'see {{ state.nme }}' }
  d:
    condition:
      routes:
        - when: state.name == \"x\" && state.ag > 3
          to: e
  e: { agent: x }
edges:
  - a -> b
  - b -> c
  - c -> d
  - { from: a, to: b, when: '  state.x = 1' }
";
    assert_eq!(
        errors(src),
        [
            "3:43: unknown state key `nmae`; declared: name",
            "4:37: unknown node `clasify`; declared: a, b, c, d, e",
            "7:31: unknown state key `nme`; declared: name",
            "11:44: unknown state key `ag`; declared: name",
            "18:40: expected '==' (a single '=' is not an operator)",
        ]
    );
}

#[test]
fn escaped_and_block_scalars_report_at_their_start() {
    let src = "\
nodes:
  a:
    agent: x
    input: \"say \\\"{{ state.nope }}\\\"\"
  b:
    agent: x
    input: |
      line one
      {{ state.nope }}
edges: [a -> b]
";
    assert_eq!(
        errors(src),
        [
            "4:12: unknown state key `nope`; declared: none",
            "8:7: unknown state key `nope`; declared: none",
        ]
    );
}

#[test]
fn item_index_and_output_have_their_places() {
    let src = "\
state: { xs: { default: [] }, out: {} }
nodes:
  m: { map: { over: state.xs, agent: y }, input: { v: '{{ item }}', i: '{{ index }}' }, output: { out: output } }
  a: { agent: x, input: '{{ item }}', output: { out: item } }
  b: { agent: x, input: '{{ output }}' }
edges: [m -> a, a -> b]
";
    assert_eq!(
        errors(src),
        [
            "4:29: `item` is defined only in a map node's input",
            "4:54: `item` is defined only in a map node's input",
            "5:29: `output` is defined only in a node's output mapping",
        ]
    );
}

#[test]
fn template_syntax_errors_are_placed() {
    let src = "nodes:\n  a: { agent: x, input: { q: 'a {{ state.x' } }\n";
    assert_eq!(
        one_error(src),
        "2:33: `{{` is not closed by `}}` (a literal `{{` is written `{{ \"{{\" }}`)"
    );
    let src = "nodes:\n  a: { interrupt: { prompt: 'ok {{ 1 + }}?' } }\n";
    assert_eq!(one_error(src), "2:39: expected a value after '+'");
}

// ---- plugins and tools ----

struct Platform;

impl Catalog for Platform {
    fn plugin_exists(&self, id: &str) -> bool {
        matches!(id, "web" | "classifier")
    }

    fn tools(&self, plugin: &str) -> Option<Vec<String>> {
        (plugin == "web").then(|| vec!["fetch".to_owned(), "search".to_owned()])
    }
}

#[test]
fn plugins_and_tools_are_checked_against_the_catalog() {
    let src = "\
nodes:
  a: { tool: web/fetsh }
  b: { tool: wbe/fetch }
  c: { agent: clasifier }
  d: { map: { over: nodes.a.output, tool: { plugin: web, tool: serch } } }
  e: { tool: web/search }
edges: [a -> b, b -> c, c -> d, d -> e]
";
    let all: Vec<String> = Reader::new()
        .catalog(&Platform)
        .read(src)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        all,
        [
            "2:18: plugin `web` has no tool `fetsh`; it has: fetch, search",
            "3:14: no plugin `wbe` in platform.toml",
            "4:15: no plugin `clasifier` in platform.toml",
            "5:64: plugin `web` has no tool `serch`; it has: fetch, search",
        ]
    );
    // Without a catalog plugins are not checked.
    assert!(document::read(src).is_ok());
}

// ---- all at once, JSON, files, subgraphs, canonical graphs ----

#[test]
fn every_error_is_reported_at_once() {
    let src = "\
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
    let all = errors(src);
    assert_eq!(
        all,
        [
            "2:35: reducer `add` needs a number default, not an array",
            "4:51: unknown state key `url`; declared: total",
            "5:12: unknown node kind `tol`; a node has exactly one of tool, agent, subgraph, map, condition, interrupt, planner",
            "9:5: cycle fetch -> loop -> fetch has no loop edge; a graph may loop only through an edge with `max-iterations`: add it to one of fetch -> loop, loop -> fetch",
            "10:24: no node `nowhere`; nodes: fetch, loop, parse",
        ]
    );
}

#[test]
fn json_documents_have_positions_too() {
    let src = "{\n\t\"nodes\": {\n\t\t\"a\": {\"agent\": \"x\", \"input\": \"{{ state.q }}\"},\n\t\t\"b\": {\"tol\": \"w/f\"}\n\t},\n\t\"edges\": [\"a -> b\"]\n}\n";
    assert_eq!(
        errors(src),
        [
            "3:42: unknown state key `q`; declared: none",
            "4:9: unknown node kind `tol`; a node has exactly one of tool, agent, subgraph, map, condition, interrupt, planner",
        ]
    );
    let graph = ok("{\"nodes\":{\"a\":{\"agent\":\"x\",\"timeout\":\"1s\"}},\"edges\":[]}");
    assert_eq!(graph.nodes["a"].timeout_ms, Some(1000));
}

#[test]
fn a_file_is_named_in_each_diagnostic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, "nodes:\n  a: { tol: x }\n").unwrap();
    let err = document::read_file(&path).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}:2:8: unknown node kind `tol`; a node has exactly one of tool, agent, subgraph, map, condition, interrupt, planner",
            path.display()
        )
    );
    assert_eq!(err.0[0].pointer, "/nodes/a/tol");
    let missing = document::read_file(&dir.path().join("none.yaml")).unwrap_err();
    assert!(
        missing
            .to_string()
            .contains("none.yaml: cannot read the file: "),
        "{missing}"
    );
}

#[test]
fn subgraphs_are_checked_with_their_own_positions() {
    let src = "\
nodes:
  s: { subgraph: inner }
graphs:
  inner:
    state: { a: {} }
    nodes:
      x: { agent: y, input: '{{ state.b }}' }
      z: { subgraph: deeper }
";
    let all = document::read(src).unwrap_err();
    let shown: Vec<(String, String)> = all
        .iter()
        .map(|d| (d.to_string(), d.pointer.clone()))
        .collect();
    assert_eq!(
        shown,
        [
            (
                "7:39: unknown state key `b`; declared: a".to_owned(),
                "/graphs/inner/nodes/x/input".to_owned()
            ),
            (
                "8:22: no graph `deeper` in `graphs`; declared: none".to_owned(),
                "/graphs/inner/nodes/z/subgraph".to_owned()
            ),
        ]
    );
}

#[test]
fn a_subgraph_input_names_its_state_keys() {
    let src = "\
nodes:
  s: { subgraph: inner, input: { text: hi, txt: typo } }
  m: { map: { over: state.xs, subgraph: inner }, input: { text: '{{ item }}', lang: en } }
edges: [s -> m]
state: { xs: {} }
graphs:
  inner:
    state: { text: {} }
    nodes: { x: { agent: y } }
";
    assert_eq!(
        errors(src),
        [
            "2:49: graph `inner` has no state key `txt`; its keys: text",
            "3:85: graph `inner` has no state key `lang`; its keys: text",
        ]
    );
}

#[test]
fn ids_are_names() {
    let src = "nodes:\n  a b: { agent: x }\n  fail: { agent: x }\n";
    assert_eq!(
        errors(src),
        [
            "2:3: `a b` is not an id: an id has only letters, digits, `_` and `-`",
            "3:3: `fail` is not a node id: `on-error: fail` means failing the run",
        ]
    );
}

#[test]
fn canonical_graphs_are_validated_by_pointer() {
    let graph: Graph = serde_json::from_value(serde_json::json!({
        "nodes": {
            "a": {"kind": {"agent": {"plugin": "x"}}, "input": {"q": "{{ state.q }}"}},
            "b": {"kind": {"agent": {"plugin": "x"}}}
        },
        "edges": [{"from": "a", "to": "b"}, {"from": "b", "to": "a"}]
    }))
    .unwrap();
    let problems: Vec<String> = validate::validate(&graph)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        problems,
        [
            "/nodes/a/input/q: unknown state key `q`; declared: none",
            "/nodes: no entry node: every node has an incoming edge (loop edges aside), so a run has nowhere to start",
            "/edges/1: cycle a -> b -> a has no loop edge; a graph may loop only through an edge with `max-iterations`: add it to one of a -> b, b -> a",
        ]
    );
    assert_eq!(validate::validate(&graph)[0].offset, Some(9));
}

// ---- docs/graphs.md shows what the code does ----

fn graphs_md() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/graphs.md")).unwrap()
}

/// The first fenced block after `marker`.
fn block_after<'a>(doc: &'a str, marker: &str) -> &'a str {
    let rest = doc.split(marker).nth(1).unwrap();
    let start = rest.find("```").unwrap();
    let body = &rest[start..];
    let body = &body[body.find('\n').unwrap() + 1..];
    &body[..body.find("```").unwrap()]
}

#[test]
fn the_documented_example_is_valid() {
    let doc = graphs_md();
    ok(block_after(&doc, "## A document"));
}

#[test]
fn the_documented_bad_graph_gives_the_documented_errors() {
    let doc = graphs_md();
    let src = block_after(&doc, "<!-- bad-graph -->");
    let expected = block_after(&doc, "<!-- bad-graph-output -->");
    let diagnostics = Reader::new().file("bad.yaml").read(src).unwrap_err();
    let printed = format!(
        "{diagnostics}\n{} error(s) in bad.yaml\n",
        diagnostics.len()
    );
    assert_eq!(printed, expected);
}

#[test]
fn every_documented_message_is_tested() {
    let doc = graphs_md();
    let table = doc
        .split("| rule | message |")
        .nth(1)
        .unwrap()
        .split("\n\n")
        .next()
        .unwrap();
    let tests = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/document.rs"))
        .unwrap()
        .replace("\\\"", "\"");
    let mut checked = 0;
    for row in table.lines().skip(2) {
        let message = row
            .rsplit(" | ")
            .next()
            .unwrap()
            .trim_end_matches(" |")
            .trim()
            .trim_start_matches("`` ")
            .trim_end_matches(" ``");
        assert!(tests.contains(message), "not tested: {message}");
        checked += 1;
    }
    assert!(checked >= 10, "{checked}");
}

#[test]
fn a_large_graph_on_one_line_is_read_in_linear_time() {
    // 5000 nodes in a chain, each writing a replace key after the one
    // before: minified JSON on one line, about 400 KB.
    let n = 5_000;
    let nodes: Vec<String> = (0..n)
        .map(|i| format!("\"n{i}\":{{\"agent\":\"a\",\"input\":{{\"x\":\"{{{{ state.k }}}}\"}},\"output\":\"k\"}}"))
        .collect();
    let edges: Vec<String> = (1..n).map(|i| format!("\"n{} -> n{i}\"", i - 1)).collect();
    let src = format!(
        "{{\"state\":{{\"k\":{{\"default\":0}}}},\"nodes\":{{{}}},\"edges\":[{}]}}",
        nodes.join(","),
        edges.join(",")
    );
    let started = std::time::Instant::now();
    let graph = ok(&src);
    assert_eq!(graph.nodes.len(), n);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let too_many: Vec<String> = (0..=validate::MAX_NODES)
        .map(|i| format!("n{i}: {{ agent: a }}"))
        .collect();
    let src = format!("nodes: {{ {} }}", too_many.join(", "));
    assert_eq!(
        one_error(&src),
        "1:1: a graph has at most 10000 nodes; this one has 10001: split it into subgraphs"
    );
}

// ---- planner nodes ----

#[test]
fn a_planner_node_reads_its_settings_and_reports_every_problem() {
    let graph = ok("nodes:
  plan:
    planner:
      model: local/smollm2
      agents:
        - { name: researcher, instructions: You find facts. }
      tools: [hello-tool/greet]
    input: \"{{ state.goal }}\"
state: { goal: {} }
");
    let NodeKind::Planner(planner) = &graph.nodes["plan"].kind else {
        panic!("{:?}", graph.nodes["plan"].kind);
    };
    assert_eq!(
        (planner.max_nodes, planner.attempts, planner.plugin.as_str()),
        (6, 3, "agent-llm")
    );
    assert_eq!(planner.agents[0].name, "researcher");

    let errs = errors(
        "nodes:
  plan:
    planner:
      model: gpt
      tools: [web]
      max-nodes: 0
",
    );
    assert_eq!(
        errs,
        [
            "4:14: planner: field `model`: `gpt` is not `provider/model`, e.g. `local/smollm2`",
            "5:7: planner: field `tools`: `web` is not `plugin/tool`, e.g. `search/web`",
            "6:18: planner: field `max-nodes`: 0 is not between 1 and 32"
        ]
    );
    assert_eq!(
        one_error("nodes:\n  plan:\n    planner: { model: local/x, tool: [a/b] }\n"),
        "3:14: planner: unknown field `tool`, expected one of `model`, `policy`, `instructions`, `agents`, `tools`, `max-nodes`, `attempts`, `temperature`, `seed`, `max-output-tokens`, `plugin`"
    );

    // With a catalog, the planner's plugin and tools must exist.
    struct Only;
    impl Catalog for Only {
        fn plugin_exists(&self, id: &str) -> bool {
            id == "hello-tool"
        }
        fn tools(&self, _plugin: &str) -> Option<Vec<String>> {
            Some(vec!["greet".to_owned()])
        }
    }
    let graph = ok(
        "nodes:\n  plan:\n    planner: { model: local/x, tools: [hello-tool/greet, hello-tool/wave] }\n",
    );
    let problems: Vec<String> = validate::validate_with(&graph, Some(&Only))
        .into_iter()
        .map(|p| p.message)
        .collect();
    assert_eq!(
        problems,
        [
            "no plugin `agent-llm` in platform.toml",
            "plugin `hello-tool` has no tool `wave`; it has: greet"
        ]
    );
}

// ---- named agent definitions ----

#[test]
fn agent_nodes_name_the_graphs_agent_definitions() {
    let graph = ok("agents:
  tutor: { instructions: You teach., model: local/smollm2 }
state: { q: {} }
nodes:
  ask:
    agent: agent-llm
    input: { agent: tutor, task: \"{{ state.q }}\" }
");
    assert_eq!(graph.agents["tutor"].name, "tutor");
    let input = graph.nodes["ask"].input.as_ref().unwrap();
    let with = graph.with_definition(input);
    assert_eq!(with["agent"]["instructions"], "You teach.");
    assert_eq!(with["task"], "{{ state.q }}");

    let errs = errors(
        "agents:
  tutor: { instructions: \" \", model: gpt }
nodes:
  ask:
    agent: agent-llm
    input: { agent: tutr, task: hi }
",
    );
    assert_eq!(
        errs,
        [
            "2:26: agent `tutor`: field `instructions`: the instructions are empty",
            "2:38: agent `tutor`: field `model`: `gpt` is not `provider/model`, e.g. `local/smollm2`",
            "6:21: no agent definition `tutr` in the graph's `agents`; declared: tutor"
        ]
    );
}

#[test]
fn a_planner_names_the_graphs_agent_definitions() {
    let graph = ok("agents:
  tutor: { instructions: You teach., model: local/smollm2 }
nodes:
  plan:
    planner: { model: local/smollm2, agents: [tutor] }
");
    let NodeKind::Planner(planner) = &graph.nodes["plan"].kind else {
        panic!("{:?}", graph.nodes["plan"].kind);
    };
    assert_eq!(planner.agents[0].instructions, "You teach.");
    assert_eq!(
        one_error(
            "nodes:\n  plan:\n    planner: { model: local/x, agents: [tutr], tools: [a/b] }\n"
        ),
        "3:14: planner: no agent definition `tutr` in the graph's `agents`; declared: none"
    );
    // The planner's other rules are checked all the same.
    let errs = errors("nodes:\n  plan:\n    planner: { model: gpt, agents: [tutr] }\n");
    assert_eq!(errs.len(), 3, "{errs:?}");
    assert!(
        errs.iter()
            .any(|e| e.contains("`gpt` is not `provider/model`")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("`agents` and `tools` are both empty")),
        "{errs:?}"
    );
}
