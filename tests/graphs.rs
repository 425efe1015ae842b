//! Graph runs on the real runtime: the orchestrator component decides, tool
//! plugins run in their own stores, the journal is SQLite. Node calls see
//! their run context and idempotency key; plugins the orchestrator is not
//! granted are refused; a hostile orchestrator fails its runs cleanly while
//! the host keeps serving.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use convergio_cap_runs::{Options, Runs, Status};
use convergio_graph::model::Graph;
use convergio_journal::{Durability, RunStore, SqliteRunStore};
use convergio_runtime::Runtime;
use convergio_runtime::graphs::{ComponentSteps, PluginExecutor};
use convergio_tests::{TestPlugin, crate_component, start, test_component};
use serde_json::{Value, json};

fn orchestrator(id: &str, component: std::path::PathBuf, callees: &[&str]) -> TestPlugin {
    let names: Vec<String> = callees.iter().map(|c| format!("{c:?}")).collect();
    TestPlugin::new(id, "orchestrator", component)
        .declares(&["plugins"])
        .grants(&format!("plugins = [{}]", names.join(", ")))
        .limits("warm-instances = 2\ndeadline-ms = 2000")
}

/// The platform's orchestrator component as plugin `orchestrator`,
/// granted `callees`.
fn the_orchestrator(callees: &[&str]) -> TestPlugin {
    orchestrator(
        "orchestrator",
        crate_component("convergio_orchestrator"),
        callees,
    )
}

fn counter() -> TestPlugin {
    TestPlugin::new("counter", "tool", test_component("counter_tool"))
        .declares(&["storage"])
        .grants("storage = [\"counters\"]")
}

fn plain() -> TestPlugin {
    TestPlugin::new("plain", "tool", test_component("plain_tool"))
}

fn runs(runtime: &Runtime, dir: &std::path::Path, orchestrator: &str) -> Runs {
    let store: Arc<dyn RunStore> =
        Arc::new(SqliteRunStore::open(&dir.join("runs.db"), Durability::Process).unwrap());
    Runs::new(
        store,
        Arc::new(ComponentSteps::new(runtime.clone(), orchestrator)),
        Arc::new(PluginExecutor::new(runtime.clone(), orchestrator)),
        Options::default(),
    )
}

fn graph(value: Value) -> Graph {
    serde_json::from_value(value).unwrap()
}

fn tool(plugin: &str, name: &str) -> Value {
    json!({"tool": {"plugin": plugin, "tool": name}})
}

fn done(status: Status) -> Value {
    match status {
        Status::Done { output } => output,
        other => panic!("expected done, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_orchestrator_component_drives_parallel_branches_a_map_and_a_join() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = start(
        dir.path(),
        "",
        &[the_orchestrator(&["counter", "plain"]), counter(), plain()],
    )
    .await;
    let runs = runs(&runtime, dir.path(), "orchestrator");
    let g = graph(json!({
        "state": {"items": {}, "seen": {"reducer": "append", "default": []}, "context": {}},
        "nodes": {
            "left": {"kind": tool("counter", "bump"), "input": {"counter": "left"}, "output": {"map": {"seen": "output.counter"}}},
            "right": {"kind": tool("counter", "bump"), "input": {"counter": "right"}, "output": {"map": {"seen": "output.counter"}}},
            "each": {
                "kind": {"map": {"over": "state.items", "max-concurrency": 2, "node": tool("plain", "echo")}},
                "input": {"item": "{{ item }}"},
            },
            "join": {"kind": tool("counter", "context"), "output": {"key": "context"}},
        },
        "edges": [
            {"from": "left", "to": "join"}, {"from": "right", "to": "join"}, {"from": "each", "to": "join"},
        ],
    }));
    let run = runs
        .start(&g, json!({"items": [1, 2, 3]}), None)
        .await
        .unwrap();
    let out = done(runs.wait(&run).await.unwrap());
    let mut seen: Vec<String> = serde_json::from_value(out["seen"].clone()).unwrap();
    seen.sort();
    // Bumped in the run's own counters.
    assert_eq!(seen, [format!("{run}/left"), format!("{run}/right")]);
    assert_eq!(
        out["context"],
        json!({"run-id": run.as_str(), "node-id": "join", "call-id": "join", "attempt": 1,
               "idempotency-key": format!("{run}:join:1")})
    );
    let view = runs.view(&run).await.unwrap();
    assert_eq!(
        view.snapshot["nodes"]["each"]["output"],
        json!([{"item": 1}, {"item": 2}, {"item": 3}])
    );
    // A second run of the same graph reuses the instance's compiled graph.
    let again = runs.start(&g, json!({"items": []}), None).await.unwrap();
    assert!(matches!(
        runs.wait(&again).await.unwrap(),
        Status::Done { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_on_a_plugin_the_orchestrator_is_not_granted_fails_with_the_grant_to_add() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = start(
        dir.path(),
        "",
        &[the_orchestrator(&["plain"]), counter(), plain()],
    )
    .await;
    let runs = runs(&runtime, dir.path(), "orchestrator");
    let g = graph(
        json!({"nodes": {"x": {"kind": tool("counter", "bump"), "input": {"counter": "x"}}}}),
    );
    let run = runs.start(&g, json!({}), None).await.unwrap();
    match runs.wait(&run).await.unwrap() {
        Status::Failed { error } => assert!(
            error.starts_with(
                "node `x` failed: plugin `orchestrator` may not call plugin `counter`"
            ) && error.contains("plugins = [\"counter\"]"),
            "{error}"
        ),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_orchestrator_fails_its_runs_and_the_host_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = start(
        dir.path(),
        "",
        &[
            orchestrator(
                "hostile",
                test_component("hostile_orchestrator"),
                &["plain"],
            )
            .limits("deadline-ms = 300"),
            the_orchestrator(&["plain"]),
            plain(),
        ],
    )
    .await;
    let hostile = runs(&runtime, dir.path(), "hostile");
    let g = graph(json!({"nodes": {"x": {"kind": tool("plain", "echo")}}}));
    for (id, expect) in [
        ("loop-1", "deadline"),
        ("trap-1", "panicked"),
        ("junk-1", "patch value at /values/x is not JSON"),
        ("path-1", "patch path `values/x` is not a JSON pointer"),
    ] {
        let err = hostile
            .start(&g, json!({}), Some(id.into()))
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains(expect), "{id}: {text}");
    }
    // The host still serves: the real orchestrator runs the same graph.
    let good = runs(&runtime, dir.path(), "orchestrator");
    let run = good.start(&g, json!({}), None).await.unwrap();
    assert!(matches!(
        good.wait(&run).await.unwrap(),
        Status::Done { .. }
    ));
}

/// An orchestrator built against the earlier interface (JSON documents
/// in and out of `step`) fails its runs with a message that says so, as
/// docs/graphs.md promises; the host keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orchestrator_of_the_earlier_interface_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = start(
        dir.path(),
        "",
        &[
            orchestrator("old", test_component("old_orchestrator"), &["plain"]),
            the_orchestrator(&["plain"]),
            plain(),
        ],
    )
    .await;
    let g = graph(json!({"nodes": {"x": {"kind": tool("plain", "echo")}}}));
    let err = runs(&runtime, dir.path(), "old")
        .start(&g, json!({}), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`step` does not have the type this host calls it with"),
        "{err}"
    );
    let good = runs(&runtime, dir.path(), "orchestrator");
    let run = good.start(&g, json!({}), None).await.unwrap();
    assert!(matches!(
        good.wait(&run).await.unwrap(),
        Status::Done { .. }
    ));
}

/// A platform in `dir` with the orchestrator and the `plain` tool, and
/// `graphs` (TOML lines) as its `[graphs]` table; its runtime.
async fn with_graphs(
    dir: &std::path::Path,
    graphs: &str,
) -> (convergio_runtime::config::Platform, Runtime) {
    let plugins = [the_orchestrator(&["plain"]), plain()];
    let path = convergio_tests::write_platform(dir, "", &plugins);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("[graphs]\n{graphs}\n\n{text}")).unwrap();
    let platform = convergio_runtime::config::Platform::load(&path).unwrap();
    let runtime = Runtime::new(&platform).await.unwrap();
    (platform, runtime)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_from_platform_toml_publish_their_events_on_the_bus() {
    let dir = tempfile::tempdir().unwrap();
    let (platform, runtime) = with_graphs(
        dir.path(),
        "journal = \"journal/runs.db\"\ncheckpoint-every = 2",
    )
    .await;
    let runs = convergio_runtime::graphs::runs(&runtime, &platform, None).unwrap();
    let mut bus = runtime.subscribe();
    let g = graph(
        json!({"nodes": {"a": {"kind": tool("plain", "echo"), "input": {"n": 1}}, "b": {"kind": tool("plain", "echo")}}, "edges": [{"from": "a", "to": "b"}]}),
    );
    let run = runs.start(&g, json!({}), None).await.unwrap();
    assert!(matches!(
        runs.wait(&run).await.unwrap(),
        Status::Done { .. }
    ));
    assert!(dir.path().join("journal/runs.db").is_file());
    let mut topics = Vec::new();
    while let Ok(Ok(event)) =
        tokio::time::timeout(std::time::Duration::from_secs(2), bus.recv()).await
    {
        assert_eq!(event.source, "runs");
        let payload: Value = serde_json::from_str(&event.payload).unwrap();
        assert_eq!(payload["run"], run.as_str());
        topics.push(event.topic);
        if topics.last().map(String::as_str) == Some("run.done") {
            break;
        }
    }
    assert_eq!(
        topics,
        [
            "run.started",
            "node.started",
            "node.result",
            "node.finished",
            "node.started",
            "node.result",
            "node.finished",
            "run.done"
        ]
    );
    // With no subscriber the host stops following the journal; a new
    // subscriber gets every event of a run started after it subscribed.
    drop(bus);
    let unseen = runs.start(&g, json!({}), None).await.unwrap();
    runs.wait(&unseen).await.unwrap();
    let mut bus = runtime.subscribe();
    let seen = runs.start(&g, json!({}), None).await.unwrap();
    runs.wait(&seen).await.unwrap();
    let mut topics = Vec::new();
    while let Ok(Ok(event)) =
        tokio::time::timeout(std::time::Duration::from_secs(2), bus.recv()).await
    {
        let payload: Value = serde_json::from_str(&event.payload).unwrap();
        if payload["run"] != seen.as_str() {
            continue;
        }
        topics.push(event.topic);
        if topics.last().map(String::as_str) == Some("run.done") {
            break;
        }
    }
    assert_eq!(topics.first().map(String::as_str), Some("run.started"));
    assert_eq!(topics.len(), 8, "{topics:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_from_before_the_runs_exist_gets_their_events() {
    let dir = tempfile::tempdir().unwrap();
    let (platform, runtime) = with_graphs(dir.path(), "durability = \"off\"").await;
    // As `convergio run` does: subscribed before the run driver starts.
    let mut bus = runtime.subscribe();
    let runs = convergio_runtime::graphs::runs(&runtime, &platform, None).unwrap();
    let g = graph(json!({"nodes": {"a": {"kind": tool("plain", "echo"), "input": {"n": 1}}}}));
    let run = runs.start(&g, json!({}), None).await.unwrap();
    runs.wait(&run).await.unwrap();
    let first = tokio::time::timeout(std::time::Duration::from_secs(2), bus.recv())
        .await
        .expect("an event")
        .unwrap();
    assert_eq!(
        (first.source.as_str(), first.topic.as_str()),
        ("runs", "run.started")
    );
}

fn runs_agent(grants: &str) -> TestPlugin {
    let mut plugin = TestPlugin::new("runner", "agent", test_component("runs_agent"));
    if !grants.is_empty() {
        plugin = plugin.declares(&["runs"]).grants(grants);
    }
    plugin
}

/// Call the runs agent with `command`; its output (JSON) or its error text.
async fn runner(runtime: &Runtime, command: Value) -> Result<Value, String> {
    let task = json!([{"run-id": "", "node-id": "", "input": command.to_string(), "state": []}]);
    let out = runtime
        .invoke_json("runner", "run", &task)
        .await
        .map_err(|e| e.to_string())?;
    match (out.get("ok"), out.get("err")) {
        (Some(ok), _) => Ok(serde_json::from_str(ok["output"].as_str().unwrap()).unwrap()),
        (_, Some(err)) => Err(err.to_string()),
        _ => panic!("unexpected {out}"),
    }
}

/// A plugin granted `runs` starts a graph run (a YAML document), waits for
/// it and reads it through `convergio:platform/runs`; a bad document comes
/// back with its line; an unknown run and a run that is over are refused;
/// before the host drives graphs the interface says it is unavailable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_granted_runs_starts_and_reads_graph_runs() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = [
        the_orchestrator(&["plain"]),
        plain(),
        runs_agent("runs = true"),
    ];
    let path = convergio_tests::write_platform(dir.path(), "", &plugins);
    let platform = convergio_runtime::config::Platform::load(&path).unwrap();
    let runtime = Runtime::new(&platform).await.unwrap();
    let yaml =
        "state:\n  n: {}\nnodes:\n  a:\n    tool: plain/echo\n    input: {n: \"{{ state.n }}\"}\n";

    let before = runner(&runtime, json!({"start": yaml, "input": {"n": 1}}))
        .await
        .unwrap_err();
    assert!(before.contains("unavailable"), "{before}");

    let runs = convergio_runtime::graphs::runs(&runtime, &platform, None).unwrap();
    let out = runner(&runtime, json!({"start": yaml, "input": {"n": 7}}))
        .await
        .unwrap();
    assert_eq!(out["status"]["status"], "done", "{out}");
    assert_eq!(out["info"]["status"], "done");
    assert!(
        out["snapshot-keys"]
            .as_array()
            .unwrap()
            .contains(&json!("values"))
    );
    // The run is the host's own: its driver and journal know it.
    let run = convergio_journal::RunId::from(out["run"].as_str().unwrap().to_owned());
    let view = runs.view(&run).await.unwrap();
    assert_eq!(view.snapshot["nodes"]["a"]["output"], json!({"n": 7}));

    let bad = runner(&runtime, json!({"start": "nodes:\n  a:\n    nope: 1\n"}))
        .await
        .unwrap_err();
    assert!(
        bad.contains("invalid-graph: 3:5: unknown node kind `nope`"),
        "{bad}"
    );
    let missing = runner(&runtime, json!({"cancel": "no-such-run"}))
        .await
        .unwrap_err();
    assert!(missing.contains("no-run"), "{missing}");
    let over = runner(&runtime, json!({"cancel": run.as_str(), "reason": "late"}))
        .await
        .unwrap_err();
    assert!(over.contains("bad-status"), "{over}");
    drop(runs);
}

/// A plugin that imports `runs` without the grant is refused at load, with
/// the line to add.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn importing_runs_without_the_grant_is_refused_with_the_grant_to_add() {
    let dir = tempfile::tempdir().unwrap();
    let error = convergio_tests::start_err(dir.path(), "", &[runs_agent("")]).await;
    assert!(error.contains("runs = true"), "{error}");
}
