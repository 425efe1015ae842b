//! The run driver over a real journal (SQLite on a temporary file) with the
//! in-process engine and tools written here: parallel branches that really
//! overlap, per-plugin queues, maps, timeouts and retries, interrupts
//! answered after a restart, resume after a crash of the driver with the
//! same idempotency keys, forks, cancel, subgraphs, and an orchestrator that
//! fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use convergio_cap_runs::{
    NativeSteps, NodeCall, NodeExecutor, Options, Runs, Status, StepFailure, StepFunction,
    StepRequest, Target,
};
use convergio_graph::engine::{CallResult, Decision};
use convergio_graph::model::Graph;
use convergio_journal::{BoxFuture, Durability, RunId, RunStatus, RunStore, SqliteRunStore};
use serde_json::{Value, json};

/// Tools of plugin `t` (and `narrow`, which takes two calls at a time).
#[derive(Debug, Default)]
struct Tools {
    keys: Mutex<Vec<String>>,
    running: Mutex<HashMap<String, usize>>,
    max_running: Mutex<HashMap<String, usize>>,
    flaky_failures: AtomicUsize,
}

impl Tools {
    fn keys(&self) -> Vec<String> {
        self.keys.lock().unwrap().clone()
    }

    fn max_running(&self, plugin: &str) -> usize {
        self.max_running
            .lock()
            .unwrap()
            .get(plugin)
            .copied()
            .unwrap_or(0)
    }
}

impl NodeExecutor for Tools {
    fn execute<'a>(&'a self, call: &'a NodeCall) -> BoxFuture<'a, CallResult> {
        Box::pin(async move {
            let Target::Tool { plugin, tool } = &call.call.target else {
                return CallResult::Err {
                    error: "not a tool".into(),
                };
            };
            self.keys.lock().unwrap().push(call.idempotency_key.clone());
            {
                let mut running = self.running.lock().unwrap();
                let now = running.entry(plugin.clone()).or_default();
                *now += 1;
                let mut max = self.max_running.lock().unwrap();
                let m = max.entry(plugin.clone()).or_default();
                *m = (*m).max(*now);
            }
            let input = &call.call.input;
            let result = match tool.as_str() {
                "echo" => CallResult::Ok {
                    output: input.clone(),
                    updates: vec![],
                },
                "sleep" => {
                    let ms = input
                        .value()
                        .unwrap()
                        .get("ms")
                        .and_then(Value::as_u64)
                        .unwrap_or(10);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    CallResult::Ok {
                        output: input.clone(),
                        updates: vec![],
                    }
                }
                "hang" => std::future::pending().await,
                "flaky" => {
                    if self.flaky_failures.fetch_sub(1, Ordering::SeqCst) > 0 {
                        CallResult::Err {
                            error: "flaked".into(),
                        }
                    } else {
                        CallResult::Ok {
                            output: json!("steady").into(),
                            updates: vec![],
                        }
                    }
                }
                other => CallResult::Err {
                    error: format!("no tool {other}"),
                },
            };
            *self.running.lock().unwrap().get_mut(plugin).unwrap() -= 1;
            result
        })
    }

    fn concurrency(&self, plugin: &str) -> usize {
        if plugin == "narrow" { 2 } else { 64 }
    }
}

fn graph(value: Value) -> Graph {
    serde_json::from_value(value).expect("canonical graph")
}

fn tool(plugin: &str, name: &str) -> Value {
    json!({"tool": {"plugin": plugin, "tool": name}})
}

struct Fixture {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    store: Arc<dyn RunStore>,
    tools: Arc<Tools>,
    runs: Runs,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    let store: Arc<dyn RunStore> =
        Arc::new(SqliteRunStore::open(&path, Durability::Process).unwrap());
    let tools = Arc::new(Tools::default());
    let runs = Runs::new(
        Arc::clone(&store),
        Arc::new(NativeSteps::new()),
        Arc::clone(&tools) as Arc<dyn NodeExecutor>,
        Options::default(),
    );
    Fixture {
        _dir: dir,
        path,
        store,
        tools,
        runs,
    }
}

fn output(status: Status) -> Value {
    match status {
        Status::Done { output } => output,
        other => panic!("expected done, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_branches_run_at_the_same_time() {
    let f = fixture();
    let g = graph(json!({
        "state": {"done": {"reducer": "append", "default": []}},
        "nodes": {
            "a": {"kind": tool("t", "sleep"), "input": {"ms": 300}, "output": {"map": {"done": "\"a\""}}},
            "b": {"kind": tool("t", "sleep"), "input": {"ms": 300}, "output": {"map": {"done": "\"b\""}}},
            "join": {"kind": tool("t", "echo"), "input": "{{ len(state.done) }}", "output": {"map": {"done": "\"join\""}}},
        },
        "edges": [{"from": "a", "to": "join"}, {"from": "b", "to": "join"}],
    }));
    let started = Instant::now();
    let run = f.runs.start(&g, json!({}), None).await.unwrap();
    let out = output(f.runs.wait(&run).await.unwrap());
    let took = started.elapsed();
    assert_eq!(out["done"].as_array().unwrap().len(), 3);
    assert_eq!(out["done"][2], "join");
    // Sequential would be 600 ms or more.
    assert!(
        took < Duration::from_millis(550),
        "two 300 ms branches took {took:?}"
    );
    assert_eq!(
        f.store.run_info(&run).unwrap().unwrap().status,
        RunStatus::Done
    );
}

/// A prepared graph starts runs like the graph itself, each with its own
/// input; the journal holds the graph under the prepared hash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepared_graph_starts_runs_and_is_stored_once() {
    let f = fixture();
    let g = graph(json!({
        "state": {"a": {}, "out": {}},
        "nodes": {"x": {"kind": tool("t", "echo"), "input": "{{ state.a }}", "output": {"key": "out"}}},
    }));
    let prepared = f.runs.prepare(&g).unwrap();
    for a in 0..3 {
        let run = f
            .runs
            .start_prepared(&prepared, json!({ "a": a }), None)
            .await
            .unwrap();
        assert_eq!(output(f.runs.wait(&run).await.unwrap())["out"], json!(a));
        assert_eq!(
            f.store.run_info(&run).unwrap().unwrap().graph_hash,
            prepared.hash()
        );
    }
    // The same graph started unprepared is the same graph in the journal.
    let run = f.runs.start(&g, json!({"a": 9}), None).await.unwrap();
    f.runs.wait(&run).await.unwrap();
    assert_eq!(
        f.store.run_info(&run).unwrap().unwrap().graph_hash,
        prepared.hash()
    );
    let text = f.store.get_blob(prepared.hash()).unwrap().unwrap();
    assert_eq!(text, serde_json::to_vec(&g).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wide_fan_out_queues_at_the_plugins_concurrency() {
    let f = fixture();
    let items: Vec<i64> = (0..20).collect();
    let g = graph(json!({
        "state": {"items": {}, "out": {}},
        "nodes": {"each": {
            "kind": {"map": {"over": "state.items", "max-concurrency": 20, "node": tool("narrow", "sleep")}},
            "input": {"ms": 5, "i": "{{ item }}"},
            "output": {"map": {"out": "len(output)"}},
        }},
    }));
    let run = f
        .runs
        .start(&g, json!({"items": items}), None)
        .await
        .unwrap();
    assert_eq!(output(f.runs.wait(&run).await.unwrap())["out"], 20);
    assert_eq!(
        f.tools.max_running("narrow"),
        2,
        "queued, never more than the plugin takes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_map_runs_at_most_its_concurrency_and_keeps_input_order() {
    let f = fixture();
    let items: Vec<Value> = (0..50)
        .map(|i| json!({"ms": (50 - i) % 7, "i": i}))
        .collect();
    let g = graph(json!({
        "state": {"items": {}, "out": {}},
        "nodes": {"each": {
            "kind": {"map": {"over": "state.items", "max-concurrency": 4, "node": tool("t", "sleep")}},
            "output": {"key": "out"},
        }},
    }));
    let run = f
        .runs
        .start(&g, json!({"items": items}), None)
        .await
        .unwrap();
    let out = output(f.runs.wait(&run).await.unwrap());
    let order: Vec<i64> = out["out"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["i"].as_i64().unwrap())
        .collect();
    assert_eq!(order, (0..50).collect::<Vec<_>>());
    assert!(
        f.tools.max_running("t") <= 4,
        "at most 4 at once, saw {}",
        f.tools.max_running("t")
    );
    assert_eq!(f.tools.max_running("t"), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_fails_the_attempt_and_a_retry_follows() {
    let f = fixture();
    f.tools.flaky_failures.store(1, Ordering::SeqCst);
    let g = graph(json!({
        "state": {"r": {}},
        "nodes": {
            "slow": {"kind": tool("t", "sleep"), "input": {"ms": 5000}, "timeout-ms": 50, "on-error": {"route": "steady"}},
            "steady": {"kind": tool("t", "flaky"), "retry": {"attempts": 2, "backoff-ms": 10}, "output": {"key": "r"}},
        },
    }));
    let run = f.runs.start(&g, json!({}), None).await.unwrap();
    let out = output(f.runs.wait(&run).await.unwrap());
    assert_eq!(out["r"], "steady");
    let view = f.runs.view(&run).await.unwrap();
    assert_eq!(
        view.snapshot["nodes"]["slow"]["error"],
        "failed: timed out after 50 ms"
    );
    let keys = f.tools.keys();
    assert!(keys.contains(&format!("{run}:steady:1")) && keys.contains(&format!("{run}:steady:2")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupt_is_answered_after_a_restart() {
    let f = fixture();
    let g = graph(json!({
        "state": {"ok": {}, "echo": {}},
        "nodes": {
            "ask": {"kind": {"interrupt": {"prompt": "ok?", "schema": {"type": "boolean"}}}, "output": {"key": "ok"}},
            "after": {"kind": tool("t", "echo"), "input": "{{ state.ok }}", "output": {"key": "echo"}},
        },
        "edges": [{"from": "ask", "to": "after"}],
    }));
    let run = f.runs.start(&g, json!({}), None).await.unwrap();
    assert_eq!(f.runs.wait(&run).await.unwrap(), Status::Waiting);
    assert_eq!(
        f.store.run_info(&run).unwrap().unwrap().status,
        RunStatus::Waiting
    );
    // A new host process: a new driver on the same journal file.
    let store: Arc<dyn RunStore> =
        Arc::new(SqliteRunStore::open(&f.path, Durability::Process).unwrap());
    let runs = Runs::new(
        store,
        Arc::new(NativeSteps::new()),
        Arc::clone(&f.tools) as _,
        Options::default(),
    );
    let err = runs.answer(&run, "ask", json!("yes")).await.unwrap_err();
    assert!(
        err.to_string().contains("does not match its schema"),
        "{err}"
    );
    runs.answer(&run, "ask", json!(true)).await.unwrap();
    assert_eq!(
        output(runs.wait(&run).await.unwrap()),
        json!({"ok": true, "echo": true})
    );
}

#[test]
fn a_crashed_driver_resumes_with_the_same_idempotency_keys() {
    let f = {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async { fixture() })
    };
    let g = graph(json!({
        "state": {"out": {"reducer": "append", "default": []}},
        "nodes": {
            "first": {"kind": tool("t", "echo"), "input": 1, "output": {"key": "out"}},
            "stuck": {"kind": tool("t", "hang"), "input": 2, "output": {"key": "out"}},
        },
        "edges": [{"from": "first", "to": "stuck"}],
    }));
    // The first host runs `first`, dispatches `stuck`, and dies.
    let crashed = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let run = crashed.block_on(async {
        let run = f.runs.start(&g, json!({}), None).await.unwrap();
        for _ in 0..200 {
            if f.tools.keys().len() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        run
    });
    crashed.shutdown_background();
    assert_eq!(
        f.tools.keys(),
        [format!("{run}:first:1"), format!("{run}:stuck:1")]
    );

    // The next host: `stuck` now answers; `first` must not run again.
    let tools = Arc::new(Tools::default());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store: Arc<dyn RunStore> =
            Arc::new(SqliteRunStore::open(&f.path, Durability::Process).unwrap());
        #[derive(Debug)]
        struct Unstuck(Arc<Tools>);
        impl NodeExecutor for Unstuck {
            fn execute<'a>(&'a self, call: &'a NodeCall) -> BoxFuture<'a, CallResult> {
                Box::pin(async move {
                    self.0
                        .keys
                        .lock()
                        .unwrap()
                        .push(call.idempotency_key.clone());
                    CallResult::Ok {
                        output: call.call.input.clone(),
                        updates: vec![],
                    }
                })
            }
        }
        // The dead driver's lease is taken over (its process is this one,
        // which lives on, so give it a lease that has lapsed instead).
        let options = Options {
            owner: "next-host:1".into(),
            ..Options::default()
        };
        store.release(&run, &Options::default().owner).unwrap();
        let runs = Runs::new(
            Arc::clone(&store),
            Arc::new(NativeSteps::new()),
            Arc::new(Unstuck(Arc::clone(&tools))),
            options,
        );
        let resumed = runs.resume_all().await.unwrap();
        assert_eq!(resumed, std::slice::from_ref(&run));
        assert_eq!(
            output(runs.wait(&run).await.unwrap()),
            json!({"out": [1, 2]})
        );
    });
    assert_eq!(
        tools.keys(),
        [format!("{run}:stuck:1")],
        "only the call with no journaled result ran again, with its key"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_diverges_from_its_parent() {
    let f = fixture();
    let g = graph(json!({
        "state": {"x": {"schema": {"type": "integer"}}, "y": {}},
        "nodes": {
            "a": {"kind": tool("t", "echo"), "input": "{{ state.x }}"},
            "b": {"kind": tool("t", "echo"), "input": "{{ state.x * 10 }}", "output": {"key": "y"}},
        },
        "edges": [{"from": "a", "to": "b"}],
    }));
    let run = f.runs.start(&g, json!({"x": 1}), None).await.unwrap();
    assert_eq!(output(f.runs.wait(&run).await.unwrap())["y"], 10);
    let steps = f.runs.steps(&run).await.unwrap();
    assert_eq!(steps.len(), 3, "start, a's result, b's result");
    // Fork after the first step (a dispatched), with x patched.
    let bad = f
        .runs
        .fork(&run, steps[0].seq, Some(json!({"x": "two"})))
        .await
        .unwrap_err();
    assert!(
        bad.to_string().contains("does not match its schema"),
        "{bad}"
    );
    let fork = f
        .runs
        .fork(&run, steps[0].seq, Some(json!({"x": 2})))
        .await
        .unwrap();
    assert_eq!(output(f.runs.wait(&fork).await.unwrap())["y"], 20);
    assert_eq!(
        output(f.runs.wait(&run).await.unwrap())["y"],
        10,
        "the parent is unchanged"
    );
    let info = f.store.run_info(&fork).unwrap().unwrap();
    assert_eq!(info.parent, Some((run.clone(), steps[0].seq)));
    let state = f.runs.view_at(&run, steps[1].seq).await.unwrap();
    assert_eq!(state.snapshot["sched"]["a"]["s"], "done");
    assert_eq!(state.snapshot["sched"]["b"]["s"], "running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_a_running_graph() {
    let f = fixture();
    let g = graph(json!({"nodes": {"forever": {"kind": tool("t", "hang")}}}));
    let run = f.runs.start(&g, json!({}), None).await.unwrap();
    f.runs.cancel(&run, "operator").await.unwrap();
    assert_eq!(
        f.runs.wait(&run).await.unwrap(),
        Status::Cancelled {
            reason: "operator".into()
        }
    );
    assert_eq!(
        f.store.run_info(&run).unwrap().unwrap().status,
        RunStatus::Cancelled
    );
    let again = f.runs.cancel(&run, "twice").await.unwrap_err();
    assert!(again.to_string().contains("is cancelled"), "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subgraph_runs_as_a_journaled_child_run() {
    let f = fixture();
    let g = graph(json!({
        "state": {"text": {}, "summary": {}},
        "nodes": {"sum": {"kind": {"subgraph": {"graph": "inner"}}, "input": {"text": "{{ state.text }}"}, "output": {"map": {"summary": "output.summary"}}}},
        "graphs": {"inner": {
            "state": {"text": {}, "summary": {}},
            "nodes": {"s": {"kind": tool("t", "echo"), "input": "short: {{ state.text }}", "output": {"key": "summary"}}},
        }},
    }));
    let run = f
        .runs
        .start(&g, json!({"text": "long"}), None)
        .await
        .unwrap();
    assert_eq!(
        output(f.runs.wait(&run).await.unwrap())["summary"],
        "short: long"
    );
    let child = RunId::from(format!("{run}.sum.1"));
    assert_eq!(
        f.store.run_info(&child).unwrap().unwrap().status,
        RunStatus::Done
    );
}

#[derive(Debug)]
struct Broken;

impl StepFunction for Broken {
    fn step<'a>(
        &'a self,
        request: StepRequest<'a>,
    ) -> BoxFuture<'a, Result<Decision, StepFailure>> {
        let first = request.version == 0;
        Box::pin(async move {
            if first {
                NativeSteps::new().step(request).await
            } else {
                Err(StepFailure::Failed("trapped: unreachable".into()))
            }
        })
    }

    fn forget<'a>(&'a self, _: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orchestrator_that_fails_fails_the_run_cleanly() {
    let f = fixture();
    let runs = Runs::new(
        Arc::clone(&f.store),
        Arc::new(Broken),
        Arc::clone(&f.tools) as _,
        Options::default(),
    );
    let g = graph(
        json!({"nodes": {"a": {"kind": tool("t", "echo")}, "b": {"kind": tool("t", "echo")}}, "edges": [{"from": "a", "to": "b"}]}),
    );
    let run = runs.start(&g, json!({}), None).await.unwrap();
    match runs.wait(&run).await.unwrap() {
        Status::Failed { error } => {
            assert_eq!(error, "the orchestrator failed: trapped: unreachable")
        }
        other => panic!("{other:?}"),
    }
    // The driver keeps serving: another run on a working orchestrator.
    let run = f.runs.start(&g, json!({}), None).await.unwrap();
    assert!(matches!(
        f.runs.wait(&run).await.unwrap(),
        Status::Done { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_input_leaves_no_run_behind() {
    let f = fixture();
    let g = graph(json!({"state": {"a": {}}, "nodes": {"x": {"kind": tool("t", "echo")}}}));
    let err = f
        .runs
        .start(&g, json!({"nope": 1}), Some("r1".into()))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "run `r1`: the input names state keys the graph does not declare: nope; declared: a"
    );
    assert!(f.store.run_info(&RunId::from("r1")).unwrap().is_none());
}

/// A new host for the runs of `f`'s journal: `f`'s driver is dead (its
/// leases released, as the next host on the same machine takes over those
/// of a dead process).
fn next_host(f: &Fixture, run: &RunId, tools: Arc<Tools>) -> Runs {
    let store: Arc<dyn RunStore> =
        Arc::new(SqliteRunStore::open(&f.path, Durability::Process).unwrap());
    store.release(run, &Options::default().owner).unwrap();
    Runs::new(
        store,
        Arc::new(NativeSteps::new()),
        tools,
        Options {
            owner: "next-host:1".into(),
            ..Options::default()
        },
    )
}

/// `start` returns once the run and its first step (with its input) are
/// journaled, in one commit: a host killed right after `start` returned
/// (`graph run --repeat` has printed the id) loses nothing. (It used to
/// create the run, return, and journal the first step after: a kill in
/// between left a run with no input that no resume could drive.)
#[test]
fn a_run_is_journaled_with_its_input_when_start_returns() {
    let f = {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async { fixture() })
    };
    let g = graph(json!({
        "state": {"a": {}, "out": {}},
        "nodes": {"x": {"kind": tool("t", "echo"), "input": "{{ state.a }}", "output": {"key": "out"}}},
    }));
    // The host dies as soon as `start` returns: its driver never runs.
    let crashed = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let run = crashed.block_on(f.runs.start(&g, json!({"a": 7}), None));
    crashed.shutdown_background();
    let run = run.unwrap();
    assert!(
        f.store.last_seq(&run).unwrap() >= 1,
        "the run exists without its first step"
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let runs = next_host(&f, &run, Arc::new(Tools::default()));
        assert_eq!(runs.resume_all().await.unwrap(), std::slice::from_ref(&run));
        assert_eq!(
            output(runs.wait(&run).await.unwrap()),
            json!({"a": 7, "out": 7})
        );
    });
}

/// The driver records a run's status in the store right after journaling
/// the decision that set it; a host killed between the two leaves a
/// finished run listed as running. Resuming it repairs the status from the
/// journal instead of leaving it running for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_run_listed_as_running_after_a_crash_is_repaired_on_resume() {
    let f = fixture();
    let g = graph(json!({"nodes": {"x": {"kind": tool("t", "echo"), "input": 1}}}));
    let run = f.runs.start(&g, json!({}), None).await.unwrap();
    assert!(matches!(
        f.runs.wait(&run).await.unwrap(),
        Status::Done { .. }
    ));
    // The crash: the status write never happened.
    f.store.set_status(&run, RunStatus::Running).unwrap();

    let runs = next_host(&f, &run, Arc::new(Tools::default()));
    assert!(runs.resume_all().await.unwrap().is_empty());
    assert_eq!(
        f.store.run_info(&run).unwrap().unwrap().status,
        RunStatus::Done
    );
    assert!(f.tools.keys().len() == 1, "nothing ran again");
}

/// A large output is journaled once, as a blob: no entry of the run holds
/// it inline (the final decision's status says `done` without it), and
/// every reader gets it back — `wait` on another host, `steps`, `fold` and
/// the `run.done` event (which names the blob).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_output_is_stored_once_and_read_back_everywhere() {
    let f = fixture();
    let big = "x".repeat(40 * 1024);
    let g = graph(json!({
        "state": {"text": {}, "copy": {}},
        "nodes": {
            "a": {"kind": tool("t", "echo"), "input": "{{ state.text }}", "output": {"key": "copy"}},
        },
    }));
    let run = f.runs.start(&g, json!({"text": big}), None).await.unwrap();
    assert_eq!(output(f.runs.wait(&run).await.unwrap())["copy"], big);

    let entries = f.store.read_after(&run, 0, 100).unwrap();
    for e in &entries {
        assert!(
            e.payload.len() < convergio_cap_runs::BLOB_THRESHOLD,
            "entry {} ({}) holds {} bytes inline",
            e.seq,
            e.kind,
            e.payload.len()
        );
    }
    // Another host reads it from the journal alone.
    let other = next_host(&f, &run, Arc::new(Tools::default()));
    assert_eq!(output(other.wait(&run).await.unwrap())["copy"], big);
    let steps = other.steps(&run).await.unwrap();
    assert_eq!(output(steps.last().unwrap().status.clone())["copy"], big);
    let view = other.view(&run).await.unwrap();
    assert_eq!(view.snapshot["output"]["copy"], big);
    let done: Vec<_> = entries
        .iter()
        .flat_map(convergio_cap_runs::events_of)
        .filter(|e| e.topic == "run.done")
        .collect();
    assert_eq!(done.len(), 1);
    let hash = done[0].data["output-blob"].as_str().expect("a blob's hash");
    let stored: Value = serde_json::from_slice(&f.store.get_blob(hash).unwrap().unwrap()).unwrap();
    assert_eq!(stored["copy"], big);
}

/// The in-process engine, whose `values` patch values come back re-encoded
/// with indentation: JSON all the same, spelled differently.
#[derive(Debug)]
struct Indenting(NativeSteps);

impl StepFunction for Indenting {
    fn step<'a>(
        &'a self,
        request: StepRequest<'a>,
    ) -> BoxFuture<'a, Result<Decision, StepFailure>> {
        Box::pin(async move {
            let mut decision = self.0.step(request).await?;
            for patch in &mut decision.patches {
                if patch.path.keys().next().as_deref() != Some("values") {
                    continue;
                }
                if let Some(text) = &patch.value {
                    let value: Value = serde_json::from_str(text.get()).unwrap();
                    let pretty = serde_json::to_string_pretty(&value).unwrap();
                    patch.value = Some(serde_json::value::RawValue::from_string(pretty).unwrap());
                }
            }
            Ok(decision)
        })
    }

    fn forget<'a>(&'a self, run: &'a str) -> BoxFuture<'a, ()> {
        self.0.forget(run)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_value_is_journaled_as_the_orchestrator_wrote_it() {
    let f = fixture();
    let runs = Runs::new(
        Arc::clone(&f.store),
        Arc::new(Indenting(NativeSteps::new())),
        Arc::clone(&f.tools) as _,
        Options::default(),
    );
    let g = graph(json!({
        "state": {"doc": {}},
        "nodes": {"a": {"kind": tool("t", "echo"), "input": {"x": [1, 2]}, "output": {"key": "doc"}}},
    }));
    let run = runs.start(&g, json!({}), None).await.unwrap();
    assert_eq!(
        output(runs.wait(&run).await.unwrap())["doc"],
        json!({"x": [1, 2]})
    );
    let payloads: Vec<String> = f
        .store
        .read_after(&run, 0, 100)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "decision")
        .map(|e| String::from_utf8(e.payload).unwrap())
        .collect();
    let pretty = serde_json::to_string_pretty(&json!({"x": [1, 2]})).unwrap();
    assert!(
        payloads.iter().any(|p| p.contains(&pretty)),
        "no decision holds the value as written: {payloads:?}"
    );
    // Folded from the journal, it is the same value.
    let view = runs.view(&run).await.unwrap();
    assert_eq!(view.snapshot["values"]["doc"], json!({"x": [1, 2]}));
}

/// A chain of `n` echo nodes, each adding its input to `sum`.
fn counting_chain(n: usize) -> Graph {
    let mut nodes = serde_json::Map::new();
    let mut edges = Vec::new();
    for i in 0..n {
        nodes.insert(
            format!("n{i}"),
            json!({"kind": tool("t", "echo"), "input": 1, "output": {"key": "sum"}}),
        );
        if i > 0 {
            edges.push(json!({"from": format!("n{}", i - 1), "to": format!("n{i}")}));
        }
    }
    graph(
        json!({"state": {"sum": {"reducer": "add", "default": 0}}, "nodes": nodes, "edges": edges}),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_in_memory_gets_no_checkpoints_and_folds_from_its_first_step() {
    let options = Options {
        checkpoint_every: 4,
        ..Options::default()
    };
    let g = counting_chain(30);
    let memory: Arc<dyn RunStore> = Arc::new(convergio_journal::MemoryRunStore::new());
    let f = fixture();
    for (store, checkpoints) in [(memory, false), (Arc::clone(&f.store), true)] {
        let runs = Runs::new(
            Arc::clone(&store),
            Arc::new(NativeSteps::new()),
            Arc::clone(&f.tools) as _,
            options.clone(),
        );
        let run = runs.start(&g, json!({}), None).await.unwrap();
        assert_eq!(output(runs.wait(&run).await.unwrap())["sum"], json!(30));
        let last = store.last_seq(&run).unwrap();
        assert_eq!(
            store.checkpoint_at_or_before(&run, last).unwrap().is_some(),
            checkpoints,
            "outlives the process: {}",
            store.outlives_process()
        );
        let view = runs.view(&run).await.unwrap();
        assert_eq!(view.snapshot["values"]["sum"], json!(30));
        assert_eq!(view.snapshot["status"], json!("done"));
        // Half-way, folded from the first step (memory) or a checkpoint.
        let steps = runs.steps(&run).await.unwrap();
        let middle = &steps[steps.len() / 2];
        let then = runs.view_at(&run, middle.seq).await.unwrap();
        let sum = then.snapshot["values"]["sum"].as_i64().unwrap();
        assert!((1..30).contains(&sum), "sum half-way: {sum}");
    }
}
