//! Per-node orchestration overhead of graph runs (issue 14), side by side
//! with LangGraph in the same run.
//!
//! Our side: the orchestrator component (`convergio_orchestrator`, a warm
//! instance) as the step function, the run driver `convergio-cap-runs`, the
//! journal `SqliteRunStore` and no-op tool nodes (`plain_tool`'s `echo`, a
//! warm instance). Two shapes of 100 tool nodes: a chain, and a fan-out
//! (`start → b0 … b99 → join`); each node adds 1 to a `count` state key, as
//! LangGraph's nodes do. One measurement is 20 runs after one warm-up run;
//! each run is timed from `Runs::start` to `Runs::wait` returning `Done`,
//! and µs per node is that time divided by 100 (also for the fan-out, whose
//! start and join count as overhead of the 100, as `bench.py` does).
//!
//! LangGraph's side is `benches/langgraph/bench.py` (one measurement per
//! process, after `benches/langgraph/setup.sh` installed LangGraph into a
//! virtualenv). Per shape and pair of modes the two alternate — ours,
//! LangGraph, ours, LangGraph, … — and each alternation gives one ratio
//! LangGraph ÷ ours of the medians; the report gives the ratios' min–max.
//!
//! Then: journal bytes per step of a 1000-step loop that appends one
//! 32-byte item per step (durability `process`), beside `bench.py --bytes`;
//! and where the time of a chain with durability `off` goes (the step
//! function in process instead of the component, and an executor that
//! answers at once instead of the tool).
//!
//! Run: `cargo bench -p convergio-benches --bench graph` (after `cargo
//! xtask build-components --release`). The journal files of `process` and
//! `sync` (and LangGraph's SqliteSaver files) go to the system's temp dir
//! and then to `/dev/shm` (tmpfs, no fsync cost); set
//! `CONVERGIO_BENCH_DB_DIRS=dir1:dir2` to choose. Set
//! `CONVERGIO_BENCH_NO_LANGGRAPH=1` to measure our side alone (when python
//! or PyPI is unavailable), `CONVERGIO_BENCH_BREAKDOWN=1` to measure only
//! where a chain's node goes (orchestrator component or in process, tool
//! plugin or an instant executor). Under `cargo test` (no `--bench` argument) it
//! runs one small run of each case, without LangGraph, as a smoke test.

// A benchmark's setup should fail loudly; there is no caller to return an error to.
#![allow(clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use convergio_benches::langgraph::LangGraph;
use convergio_benches::quantile;
use convergio_cap_runs::{
    NativeSteps, NodeCall, NodeExecutor, Options, PreparedGraph, Runs, Status, StepFunction,
};
use convergio_graph::engine::CallResult;
use convergio_graph::model::Graph;
use convergio_journal::{BoxFuture, Durability, RunStore, SqliteRunStore};
use convergio_runtime::Runtime;
use convergio_runtime::graphs::{ComponentSteps, PluginExecutor};
use convergio_tests::{TestPlugin, bench_crate_component, bench_test_component, start};
use serde_json::{Value, json};

/// Plugin id of the orchestrator.
const ORCHESTRATOR: &str = "orchestrator";
/// Plugin id of the no-op tool (`plain_tool`, tool `echo`).
const TOOL: &str = "noop";
/// `[plugin.limits]` of the tool: every call of a fan-out may find a warm instance.
const TOOL_LIMITS: &str = "max-instances = 16\nwarm-instances = 16";
/// `[plugin.limits]` of the orchestrator.
const ORCHESTRATOR_LIMITS: &str = "warm-instances = 4";
/// Nodes per graph.
const NODES: usize = 100;
/// Timed runs per measurement (after one warm-up run).
const REPS: usize = 20;
/// Alternations ours / LangGraph per pair.
const ALTERNATIONS: usize = 3;
/// Steps of the bytes loop.
const STEPS: usize = 1000;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Shape {
    Chain,
    Fanout,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Self::Chain => "chain",
            Self::Fanout => "fanout",
        }
    }
}

fn durability_name(d: Durability) -> &'static str {
    match d {
        Durability::Off => "off",
        Durability::Process => "process",
        Durability::Sync => "sync",
    }
}

fn node(plugin: &str) -> Value {
    json!({"kind": {"tool": {"plugin": plugin, "tool": "echo"}}, "output": {"map": {"count": "1"}}})
}

/// The graph of `shape` with `n` no-op nodes on `plugin`; each adds 1 to `count`.
fn shape_graph(shape: Shape, n: usize, plugin: &str) -> Graph {
    let mut nodes = serde_json::Map::new();
    let mut edges = Vec::new();
    match shape {
        Shape::Chain => {
            for i in 0..n {
                nodes.insert(format!("n{i:03}"), node(plugin));
                if i > 0 {
                    edges.push(json!({"from": format!("n{:03}", i - 1), "to": format!("n{i:03}")}));
                }
            }
        }
        Shape::Fanout => {
            nodes.insert("start".into(), node(plugin));
            nodes.insert("join".into(), node(plugin));
            for i in 0..n {
                nodes.insert(format!("b{i:03}"), node(plugin));
                edges.push(json!({"from": "start", "to": format!("b{i:03}")}));
                edges.push(json!({"from": format!("b{i:03}"), "to": "join"}));
            }
        }
    }
    serde_json::from_value(json!({
        "state": {"count": {"reducer": "add", "default": 0}},
        "nodes": nodes,
        "edges": edges,
    }))
    .expect("a valid graph")
}

/// Nodes a run of `shape` with `n` nodes runs.
fn nodes_run(shape: Shape, n: usize) -> i64 {
    match shape {
        Shape::Chain => n as i64,
        Shape::Fanout => n as i64 + 2,
    }
}

/// A 1000-step loop: one node appending one 32-byte item per step.
fn loop_graph(steps: usize) -> Graph {
    serde_json::from_value(json!({
        "state": {"items": {"reducer": "append", "default": []}},
        "nodes": {"grow": {
            "kind": {"tool": {"plugin": TOOL, "tool": "echo"}},
            "input": "0123456789abcdef0123456789abcdef",
            "output": {"key": "items"},
        }},
        "edges": [{"from": "grow", "to": "grow", "when": format!("len(state.items) < {steps}"),
                   "max-iterations": steps}],
    }))
    .expect("a valid graph")
}

/// An executor that answers every call at once with `{}`: no plugin call.
#[derive(Debug)]
struct Instant0;

impl NodeExecutor for Instant0 {
    fn execute<'a>(&'a self, _call: &'a NodeCall) -> BoxFuture<'a, CallResult> {
        Box::pin(async {
            CallResult::Ok {
                output: json!({}).into(),
                updates: Vec::new(),
            }
        })
    }
}

/// One run to `Done`; returns its output. The graph is prepared once, as
/// LangGraph's is compiled once (`Runs::prepare`).
async fn run_once(runs: &Runs, graph: &PreparedGraph) -> Value {
    let run = runs
        .start_prepared(graph, json!({}), None)
        .await
        .expect("start");
    match runs.wait(&run).await.expect("wait") {
        Status::Done { output } => output,
        other => panic!("run {run} ended {other:?}"),
    }
}

/// CPU time of this process (all threads) in µs, from `/proc/self/stat`
/// (clock ticks of 10 ms: only meaningful over many runs); 0 elsewhere.
fn cpu_us() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name, which is in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) * 10_000.0
}

/// Median, p10 and p90 (linear interpolation, as `bench.py`).
#[derive(Clone, Copy, Debug)]
struct Stats {
    median: f64,
    p10: f64,
    p90: f64,
    /// CPU time of the whole process per node, averaged over the reps (ours only).
    cpu: Option<f64>,
}

fn stats(mut values: Vec<f64>) -> Stats {
    values.sort_by(f64::total_cmp);
    Stats {
        median: quantile(&values, 0.5),
        p10: quantile(&values, 0.1),
        p90: quantile(&values, 0.9),
        cpu: None,
    }
}

/// Where a measurement's runs are started and awaited from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Caller {
    /// A task on the runtime's workers, as the REST server's handlers
    /// start and await runs: a run's driver and its waiter share a worker,
    /// with no thread hand-off.
    Task,
    /// The bench's own thread, `block_on` per run: two cross-thread
    /// wake-ups per run (its driver task is woken on a worker, then the
    /// waiting thread), as in runs 1 – 13.
    Outside,
}

/// µs per node of `reps` runs after one warm-up run, started and awaited
/// from `caller`.
fn measure(
    tokio: &tokio::runtime::Runtime,
    caller: Caller,
    runs: &Runs,
    shape: Shape,
    n: usize,
    reps: usize,
) -> Stats {
    let graph = runs
        .prepare(&shape_graph(shape, n, TOOL))
        .expect("the graph");
    let expect = nodes_run(shape, n);
    let out = tokio.block_on(run_once(runs, &graph));
    assert_eq!(out["count"], expect, "every node ran once");
    let cpu = cpu_us();
    let per_node = match caller {
        Caller::Task => {
            let (runs, graph) = (runs.clone(), graph.clone());
            tokio
                .block_on(tokio.spawn(async move { timed_runs(&runs, &graph, reps, expect).await }))
                .expect("the measured runs")
        }
        Caller::Outside => (0..reps)
            .map(|_| tokio.block_on(timed_runs(runs, &graph, 1, expect))[0])
            .collect(),
    };
    Stats {
        cpu: Some((cpu_us() - cpu) / (reps * n) as f64),
        ..stats(per_node.iter().map(|us| us / n as f64).collect())
    }
}

/// The µs each of `reps` runs of `graph` took; each must run `expect` nodes.
async fn timed_runs(runs: &Runs, graph: &PreparedGraph, reps: usize, expect: i64) -> Vec<f64> {
    let mut totals = Vec::with_capacity(reps);
    for _ in 0..reps {
        let started = Instant::now();
        let out = run_once(runs, graph).await;
        totals.push(started.elapsed().as_secs_f64() * 1e6);
        assert_eq!(out["count"], expect);
    }
    totals
}

/// The platform: the orchestrator and the no-op tool, both warm.
async fn platform(dir: &Path) -> Runtime {
    let plugins = [
        TestPlugin::new(
            ORCHESTRATOR,
            "orchestrator",
            bench_crate_component("convergio_orchestrator"),
        )
        .declares(&["plugins"])
        .grants(&format!("plugins = [\"{TOOL}\"]"))
        .limits(ORCHESTRATOR_LIMITS),
        TestPlugin::new(TOOL, "tool", bench_test_component("plain_tool")).limits(TOOL_LIMITS),
    ];
    start(dir, "data-dir = \".\"", &plugins).await
}

fn runs_over(
    store: Arc<dyn RunStore>,
    steps: Arc<dyn StepFunction>,
    exec: Arc<dyn NodeExecutor>,
) -> Runs {
    Runs::new(store, steps, exec, Options::default())
}

/// One `bench.py` measurement of `shape` with checkpointer `mode`.
fn langgraph_measure(lg: &LangGraph, shape: Shape, mode: &str, db_dir: &Path) -> Stats {
    let nodes = NODES.to_string();
    let reps = REPS.to_string();
    let db = db_dir.display().to_string();
    let r = lg.run(
        "bench.py",
        &[
            "--shape",
            shape.name(),
            "--nodes",
            &nodes,
            "--mode",
            mode,
            "--reps",
            &reps,
            "--db-dir",
            &db,
        ],
    );
    let get = |k: &str| {
        r[k].as_f64()
            .unwrap_or_else(|| panic!("bench.py: no {k} in {r}"))
    };
    Stats {
        median: get("us_per_node_median"),
        p10: get("p10"),
        p90: get("p90"),
        cpu: None,
    }
}

fn cell(s: Stats) -> String {
    let cpu = s.cpu.map_or(String::new(), |c| format!(" cpu {c:.0}"));
    format!("{:.1} [{:.1}–{:.1}]{cpu}", s.median, s.p10, s.p90)
}

/// Journal bytes of the 1000-step loop with durability `process`.
async fn journal_bytes(runtime: &Runtime, db_root: &Path, steps: usize) -> Value {
    let dir = tempfile::tempdir_in(db_root).expect("temp dir for the journal");
    let path = dir.path().join("bytes.db");
    let store = Arc::new(SqliteRunStore::open(&path, Durability::Process).expect("journal"));
    let runs = runs_over(
        store.clone(),
        Arc::new(ComponentSteps::new(runtime.clone(), ORCHESTRATOR)),
        Arc::new(PluginExecutor::new(runtime.clone(), ORCHESTRATOR)),
    );
    let graph = runs.prepare(&loop_graph(steps)).expect("the graph");
    let out = run_once(&runs, &graph).await;
    let items = out["items"].as_array().map_or(0, Vec::len);
    assert_eq!(items, steps, "the loop ran {steps} steps");
    let entries = store.stored_entries().expect("entries");
    drop(runs);
    drop(store);
    let conn = rusqlite::Connection::open(&path).expect("open the journal");
    let sum = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).expect(sql) };
    let payload = sum("SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM entries");
    let checkpoints = sum("SELECT COALESCE(SUM(LENGTH(state)), 0) FROM checkpoints");
    let checkpoint_rows = sum("SELECT COUNT(*) FROM checkpoints");
    let largest_checkpoint = sum("SELECT COALESCE(MAX(LENGTH(state)), 0) FROM checkpoints");
    let blobs = sum("SELECT COALESCE(SUM(LENGTH(bytes)), 0) FROM blobs");
    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    let before = size(&path) + size(&wal);
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .expect("checkpoint");
    let checkpointed = size(&path);
    conn.execute_batch("VACUUM").expect("vacuum");
    let vacuumed = size(&path);
    let total = payload + checkpoints + blobs;
    json!({
        "steps": steps,
        "entries": entries,
        "entry_payload_bytes": payload,
        "checkpoint_rows": checkpoint_rows,
        "checkpoint_bytes": checkpoints,
        "largest_checkpoint": largest_checkpoint,
        "blob_bytes": blobs,
        "stored_bytes_total": total,
        "stored_bytes_per_step": total as f64 / steps as f64,
        "file_bytes_after_run": before,
        "file_bytes_after_wal_checkpoint": checkpointed,
        "file_bytes_after_vacuum": vacuumed,
        "file_bytes_per_step": vacuumed as f64 / steps as f64,
    })
}

fn db_dirs() -> Vec<PathBuf> {
    match std::env::var_os("CONVERGIO_BENCH_DB_DIRS") {
        Some(dirs) => std::env::split_paths(&dirs).collect(),
        None => {
            let mut dirs = vec![std::env::temp_dir()];
            if Path::new("/dev/shm").is_dir() {
                dirs.push(PathBuf::from("/dev/shm"));
            }
            dirs
        }
    }
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (n, reps, alternations, steps) = if bench {
        (NODES, REPS, ALTERNATIONS, STEPS)
    } else {
        (10, 1, 1, 20)
    };
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temp dir for the platform");
    let runtime = tokio.block_on(platform(dir.path()));
    let component_steps = || -> Arc<dyn StepFunction> {
        Arc::new(ComponentSteps::new(runtime.clone(), ORCHESTRATOR))
    };
    let plugin_exec = || -> Arc<dyn NodeExecutor> {
        Arc::new(PluginExecutor::new(runtime.clone(), ORCHESTRATOR))
    };

    // For a profiler: `CONVERGIO_BENCH_PROFILE=SECS` runs chain-100 runs with
    // durability off (`CONVERGIO_BENCH_PROFILE_DURABILITY=process|sync` for
    // another; component steps and the tool plugin, or with
    // `CONVERGIO_BENCH_PROFILE_NATIVE=1` native steps and an instant
    // executor, `=steps` native steps and the tool plugin;
    // `CONVERGIO_BENCH_PROFILE_EVENTS=1` with run events forwarded to the
    // events bus; `CONVERGIO_BENCH_PROFILE_NODES=N` chains of N nodes;
    // `CONVERGIO_BENCH_PROFILE_OUTSIDE=1` each run started and awaited
    // from the bench's thread, not a runtime task) for SECS seconds, and
    // nothing else.
    if let Some(secs) = std::env::var("CONVERGIO_BENCH_PROFILE")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
        let durability = match std::env::var("CONVERGIO_BENCH_PROFILE_DURABILITY").as_deref() {
            Ok("process") => Durability::Process,
            Ok("sync") => Durability::Sync,
            _ => Durability::Off,
        };
        let store: Arc<dyn RunStore> =
            convergio_journal::open(&dir.path().join("profile.db"), durability).expect("journal");
        // `CONVERGIO_BENCH_PROFILE_EVENTS=1`: journal entries forwarded to
        // the events bus, as `convergio run` does.
        if std::env::var_os("CONVERGIO_BENCH_PROFILE_EVENTS").is_some() {
            let _entered = tokio.enter();
            convergio_runtime::graphs::forward_events(&runtime, &store);
        }
        let runs = match std::env::var("CONVERGIO_BENCH_PROFILE_NATIVE").as_deref() {
            Ok("steps") => runs_over(store, Arc::new(NativeSteps::new()), plugin_exec()),
            Ok(_) => runs_over(store, Arc::new(NativeSteps::new()), Arc::new(Instant0)),
            Err(_) => runs_over(store, component_steps(), plugin_exec()),
        };
        let shape = match std::env::var("CONVERGIO_BENCH_PROFILE_SHAPE").as_deref() {
            Ok("fanout") => Shape::Fanout,
            _ => Shape::Chain,
        };
        let nodes = std::env::var("CONVERGIO_BENCH_PROFILE_NODES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(NODES);
        let graph = runs
            .prepare(&shape_graph(shape, nodes, TOOL))
            .expect("the graph");
        let until = Instant::now() + std::time::Duration::from_secs(secs);
        while Instant::now() < until {
            // The total of each run, in ms, sorted: shows a bimodal spread.
            let expect = nodes_run(shape, nodes);
            let mut totals: Vec<f64> = if std::env::var_os("CONVERGIO_BENCH_PROFILE_OUTSIDE")
                .is_some()
            {
                (0..REPS)
                    .map(|_| tokio.block_on(timed_runs(&runs, &graph, 1, expect))[0] / 1e3)
                    .collect()
            } else {
                let (runs, graph) = (runs.clone(), graph.clone());
                tokio
                    .block_on(
                        tokio.spawn(async move { timed_runs(&runs, &graph, REPS, expect).await }),
                    )
                    .expect("the runs")
                    .into_iter()
                    .map(|us| us / 1e3)
                    .collect()
            };
            totals.sort_by(f64::total_cmp);
            let totals: Vec<String> = totals.iter().map(|t| format!("{t:.3}")).collect();
            println!(
                "profile: {}-{nodes} {durability:?}, ms per run: {}",
                shape.name(),
                totals.join(" ")
            );
        }
        return;
    }

    println!(
        "graph: µs per node, {n} no-op tool nodes (`plain_tool` echo, {TOOL_LIMITS:?}), orchestrator component ({ORCHESTRATOR_LIMITS:?}); median [p10–p90] of {reps} runs after one warm-up"
    );
    // `CONVERGIO_BENCH_BREAKDOWN=1`: only where a chain's node goes (no
    // LangGraph, no durability pairs, no bytes).
    let breakdown_only = std::env::var_os("CONVERGIO_BENCH_BREAKDOWN").is_some();
    let langgraph = if bench && !breakdown_only {
        LangGraph::setup("there are no ratios and no targets are checked in this run.")
    } else {
        None
    };

    // Pairs: our durability against LangGraph's mode; the disk matters
    // only for the durable ones.
    let pairs = [
        (Durability::Off, "none"),
        (Durability::Off, "memory"),
        (Durability::Process, "sqlite"),
        (Durability::Sync, "sqlite-sync"),
    ];
    let mut summary = Vec::new();
    let roots = if breakdown_only {
        Vec::new()
    } else {
        db_dirs()
    };
    for (d, db_root) in roots.iter().enumerate() {
        let journal_dir = tempfile::tempdir_in(db_root).expect("temp dir for the journals");
        println!("\n== journals in {} ==", db_root.display());
        for (durability, mode) in pairs {
            if d > 0 && durability == Durability::Off {
                continue; // in memory: the disk does not matter
            }
            let path = journal_dir
                .path()
                .join(format!("{}.db", durability_name(durability)));
            // As the platform opens it: the memory store for `off`.
            let store: Arc<dyn RunStore> =
                convergio_journal::open(&path, durability).expect("journal");
            let runs = runs_over(store, component_steps(), plugin_exec());
            for shape in [Shape::Chain, Shape::Fanout] {
                let mut ratios = Vec::new();
                for a in 0..alternations {
                    let ours = measure(&tokio, Caller::Task, &runs, shape, n, reps);
                    let theirs = langgraph
                        .as_ref()
                        .map(|lg| langgraph_measure(lg, shape, mode, db_root));
                    let ratio = theirs.map(|t| t.median / ours.median);
                    println!(
                        "{:<7} {:<8} alt {a}: ours {:<24} langgraph {:<12} {:<24} ratio {}",
                        shape.name(),
                        durability_name(durability),
                        cell(ours),
                        mode,
                        theirs.map_or("-".into(), cell),
                        ratio.map_or("-".into(), |r| format!("{r:.1}×"))
                    );
                    if let Some(r) = ratio {
                        ratios.push(r);
                    }
                }
                if !ratios.is_empty() {
                    let min = ratios.iter().copied().fold(f64::INFINITY, f64::min);
                    let max = ratios.iter().copied().fold(0.0, f64::max);
                    summary.push(format!(
                        "{:<16} {:<7} {:<8} vs {:<12} LangGraph ÷ ours: {min:.1}× – {max:.1}×",
                        db_root.display(),
                        shape.name(),
                        durability_name(durability),
                        mode
                    ));
                }
            }
        }
    }
    if !summary.is_empty() {
        println!("\nratios (min – max over {alternations} alternations):");
        for line in &summary {
            println!("  {line}");
        }
    }

    // Where the time of a chain with durability `off` goes.
    println!("\n== chain-{n}, durability off: where the time goes (µs per node) ==");
    let off = || -> Arc<dyn RunStore> {
        convergio_journal::open(Path::new(":memory:"), Durability::Off).expect("journal")
    };
    let native = || -> Arc<dyn StepFunction> { Arc::new(NativeSteps::new()) };
    let instant = || -> Arc<dyn NodeExecutor> { Arc::new(Instant0) };
    let cases: Vec<(&str, Caller, Runs)> = vec![
        (
            "component steps + tool plugin",
            Caller::Task,
            runs_over(off(), component_steps(), plugin_exec()),
        ),
        (
            "the same, each run from outside (block_on)",
            Caller::Outside,
            runs_over(off(), component_steps(), plugin_exec()),
        ),
        (
            "native steps + tool plugin",
            Caller::Task,
            runs_over(off(), native(), plugin_exec()),
        ),
        (
            "component steps + instant executor",
            Caller::Task,
            runs_over(off(), component_steps(), instant()),
        ),
        (
            "native steps + instant executor",
            Caller::Task,
            runs_over(off(), native(), instant()),
        ),
    ];
    // Rounds in rotating order, so drift hits every case alike.
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    let mut cpus: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    for round in 0..alternations.max(1) * 2 {
        for k in 0..cases.len() {
            let i = (round + k) % cases.len();
            let (_, caller, runs) = &cases[i];
            let s = measure(&tokio, *caller, runs, Shape::Chain, n, reps);
            times[i].push(s.median);
            cpus[i].push(s.cpu.unwrap_or(0.0));
        }
    }
    for (((name, _, _), t), c) in cases.iter().zip(&times).zip(&cpus) {
        let s = stats(t.clone());
        println!(
            "  {name:<44} median of run medians {:.1} (range {:.1}–{:.1}), process CPU per node {:.1}",
            s.median,
            t.iter().copied().fold(f64::INFINITY, f64::min),
            t.iter().copied().fold(0.0, f64::max),
            stats(c.clone()).median
        );
    }

    if breakdown_only {
        return;
    }
    // Journal bytes per step.
    println!("\n== bytes: a {steps}-step loop appending one 32-byte item per step ==");
    let ours = tokio.block_on(journal_bytes(&runtime, &std::env::temp_dir(), steps));
    println!("  ours (durability process): {ours}");
    if let Some(lg) = &langgraph {
        let theirs = lg.run("bench.py", &["--bytes", "--steps", &steps.to_string()]);
        println!("  langgraph (SqliteSaver):   {theirs}");
    }
    if !bench {
        println!(
            "graph: smoke test passed; run `cargo bench -p convergio-benches --bench graph` to measure"
        );
    }
}
