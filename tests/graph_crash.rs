//! The orchestrator's crash test: the real `convergio` process runs 200
//! runs of a graph with parallel branches, a chain, a map and a join, whose
//! tool nodes bump counters in storage once per idempotency key; it is
//! killed with SIGKILL at random moments (while it starts runs, then while
//! `graph resume --all` drives them), and resumed until every run finishes.
//!
//! What it proves:
//!
//! - **0 runs lost**: every run whose id `graph run` printed (it prints an
//!   id once the run's start is journaled: that is the acknowledgement) is
//!   `done` in the end, and so is every other run the journal holds (a run
//!   journaled by a process killed before it printed the id is driven to
//!   the end too; there is at most one per killed `graph run`).
//! - **0 lost and 0 duplicated side effects**: for every run in the
//!   journal, each counter is exactly what the graph implies (left 1,
//!   right-a 1, right-b 1, item 5, join 1), bumped by exactly the expected
//!   idempotency keys, and no counter exists for a run the journal does not
//!   hold.
//! - The kills were not vacuous: at least one landed while runs were
//!   running.
//!
//! The seed of the kill schedule is printed; `CONVERGIO_CRASH_SEED=N`
//! replays it. It runs `target/debug/convergio`, which `cargo test
//! --workspace` builds (alone: `cargo build --workspace --bin convergio`
//! first).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use convergio_tests::process::output;
use convergio_tests::{TestPlugin, convergio_binary, crate_component, test_component};
use serde_json::Value;

/// Runs the test asks for.
const RUNS: usize = 200;
/// `graph run` processes started (each killed) before all runs are started.
const RUN_PROCESSES: usize = 3;
/// `graph resume --all` processes killed before one may finish.
const RESUME_KILLS: usize = 5;
/// The whole test, after the build.
const BUDGET: Duration = Duration::from_secs(300);

/// Per run, each counter the graph bumps and how many times.
const EXPECTED: [(&str, u64); 5] = [
    ("left", 1),
    ("right-a", 1),
    ("right-b", 1),
    ("item", 5),
    ("join", 1),
];

const GRAPH: &str = r#"id: crash
description: Two parallel branches (one a chain of two), a map of five items, a join
state:
  items: { schema: { type: array }, default: [2, 7, 3, 12, 5] }
nodes:
  left:    { tool: counter/bump, input: { counter: left, sleep-ms: 15 } }
  right-a: { tool: counter/bump, input: { counter: right-a, sleep-ms: 4 } }
  right-b: { tool: counter/bump, input: { counter: right-b, sleep-ms: 9 } }
  each:
    map: { over: state.items, max-concurrency: 3, tool: counter/bump }
    input: { counter: item, sleep-ms: "{{ item }}" }
  join:    { tool: counter/bump, input: { counter: join, sleep-ms: 2 } }
edges:
  - right-a -> right-b
  - left -> join
  - right-b -> join
  - each -> join
"#;

/// splitmix64: a seeded schedule, replayable from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// A platform in `dir`: the orchestrator (granted `counter`), the counter
/// tool (granted the bucket `counters`), the compile cache and the journal
/// in `dir`, durability `process`.
fn platform(dir: &Path) -> PathBuf {
    let plugins = [
        TestPlugin::new(
            "orchestrator",
            "orchestrator",
            crate_component("convergio_orchestrator"),
        )
        .declares(&["plugins"])
        .grants("plugins = [\"counter\"]"),
        TestPlugin::new("counter", "tool", test_component("counter_tool"))
            .declares(&["storage"])
            .grants("storage = [\"counters\"]"),
    ];
    let cache = dir.join("cache");
    let path = convergio_tests::write_platform(
        dir,
        &format!("compile-cache = true\ncache-dir = {:?}", cache),
        &plugins,
    );
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        format!("[graphs]\njournal = \"journal/runs.db\"\ndurability = \"process\"\n\n{text}"),
    )
    .unwrap();
    path
}

/// A line a child printed.
enum Out {
    Stdout(String),
    Stderr(String),
}

/// A `convergio` child process and what it printed.
struct Proc {
    what: String,
    child: Child,
    lines: mpsc::Receiver<Out>,
    stdout: Vec<String>,
    stderr: Vec<String>,
}

impl Proc {
    fn spawn(bin: &Path, config: &Path, args: &[&str]) -> Self {
        let mut child = Command::new(bin)
            .arg("--config")
            .arg(config)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx2.send(Out::Stdout(line));
            }
        });
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(Out::Stderr(line));
            }
        });
        Self {
            what: args.join(" "),
            child,
            lines,
            stdout: Vec::new(),
            stderr: Vec::new(),
        }
    }

    /// Take what arrived within `wait`; whether the readers are done (the
    /// child closed its output).
    fn pump(&mut self, wait: Duration) -> bool {
        let mut first = true;
        loop {
            let next = if first {
                first = false;
                self.lines.recv_timeout(wait)
            } else {
                self.lines.try_recv().map_err(|e| match e {
                    mpsc::TryRecvError::Empty => mpsc::RecvTimeoutError::Timeout,
                    mpsc::TryRecvError::Disconnected => mpsc::RecvTimeoutError::Disconnected,
                })
            };
            match next {
                Ok(Out::Stdout(line)) => self.stdout.push(line),
                Ok(Out::Stderr(line)) => self.stderr.push(line),
                Err(mpsc::RecvTimeoutError::Timeout) => return false,
                Err(mpsc::RecvTimeoutError::Disconnected) => return true,
            }
        }
    }

    /// Lines on stderr saying a resumed run finished.
    fn finished(&self) -> usize {
        self.stderr
            .iter()
            .filter(|l| l.starts_with("run ") && l.contains(": "))
            .count()
    }

    /// Wait until `until` holds (then `None`) or the child exits (its
    /// status), within the budget.
    fn wait_for(
        &mut self,
        deadline: Instant,
        mut until: impl FnMut(&Self) -> bool,
    ) -> Option<ExitStatus> {
        loop {
            if until(self) {
                return None;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                // Drain what is left to read.
                while !self.pump(Duration::from_millis(200)) {}
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "`convergio {}` was still going when the test's {} s ran out; it printed:\n{}",
                    self.what,
                    BUDGET.as_secs(),
                    self.tail()
                );
            }
            self.pump(Duration::from_millis(10));
        }
    }

    /// The child's status if it exited (what it printed all read).
    fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.try_wait().unwrap()?;
        while !self.pump(Duration::from_millis(200)) {}
        Some(status)
    }

    /// SIGKILL: no destructor, no flush, no lease released.
    fn kill(&mut self) -> ExitStatus {
        let _ = self.child.kill();
        let status = self.child.wait().unwrap();
        while !self.pump(Duration::from_millis(200)) {}
        status
    }

    fn tail(&self) -> String {
        let from = self.stderr.len().saturating_sub(30);
        self.stderr[from..].join("\n")
    }
}

/// Every run of the journal (`graph list --json`): id → status.
fn list(bin: &Path, config: &Path) -> BTreeMap<String, String> {
    let out = output(
        Command::new(bin)
            .arg("--config")
            .arg(config)
            .args(["graph", "list", "--json"]),
    );
    assert!(
        out.status.success(),
        "graph list failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            (
                v["id"].as_str().unwrap().to_owned(),
                v["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn count(runs: &BTreeMap<String, String>, status: &str) -> usize {
    runs.values().filter(|s| *s == status).count()
}

/// Every counter in storage: run → counter → (value, idempotency keys).
fn counters(db: &Path) -> BTreeMap<String, BTreeMap<String, (u64, Vec<String>)>> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut stmt = conn
        .prepare("SELECT key, value FROM kv WHERE bucket = 'counters'")
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
        })
        .unwrap();
    let mut out: BTreeMap<String, BTreeMap<String, (u64, Vec<String>)>> = BTreeMap::new();
    for row in rows {
        let (key, value) = row.unwrap();
        let (run, name) = key
            .split_once('/')
            .unwrap_or_else(|| panic!("counter `{key}` is not RUN/NAME"));
        let record: Value = serde_json::from_slice(&value).unwrap();
        let keys = record["applied"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_owned())
            .collect();
        out.entry(run.to_owned())
            .or_default()
            .insert(name.to_owned(), (record["value"].as_u64().unwrap(), keys));
    }
    out
}

/// The idempotency keys that bump `counter` in `run`: one per node call,
/// first attempt (the graph has no retries).
fn expected_keys(run: &str, counter: &str) -> Vec<String> {
    let mut keys: Vec<String> = match counter {
        "item" => (0..5).map(|i| format!("{run}:each[{i}]:1")).collect(),
        node => vec![format!("{run}:{node}:1")],
    };
    keys.sort();
    keys
}

#[test]
fn two_hundred_runs_survive_kill_9_with_no_run_lost_and_no_side_effect_lost_or_duplicated() {
    let bin = convergio_binary();
    let dir = tempfile::tempdir().unwrap();
    let config = platform(dir.path());
    let graph = dir.path().join("crash.yaml");
    std::fs::write(&graph, GRAPH).unwrap();
    let graph = graph.to_str().unwrap().to_owned();

    let seed = std::env::var("CONVERGIO_CRASH_SEED")
        .ok()
        .map(|s| s.parse::<u64>().expect("CONVERGIO_CRASH_SEED is a number"))
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("crash test seed {seed} (CONVERGIO_CRASH_SEED={seed} replays the kill schedule)");
    let mut rng = Rng(seed);
    let started = Instant::now();
    let deadline = started + BUDGET;

    // What `graph run` acknowledged: the ids it printed, each once.
    let mut acked: BTreeSet<String> = BTreeSet::new();
    let mut kills: Vec<String> = Vec::new();
    let mut running_at_kills = 0;

    // Start the runs: each `graph run` is killed, the first ones after a
    // random number of acknowledged starts (so it dies while starting runs
    // and driving the ones started), the last one once it started them all
    // (while it drives them).
    for process in 0..RUN_PROCESSES {
        let remaining = RUNS - acked.len();
        if remaining == 0 {
            break;
        }
        let n = remaining.to_string();
        let mut p = Proc::spawn(
            &bin,
            &config,
            &[
                "graph",
                "run",
                &graph,
                "--repeat",
                &n,
                "--durability",
                "process",
            ],
        );
        let target = if process + 1 == RUN_PROCESSES {
            remaining
        } else {
            rng.range(1, remaining as u64) as usize
        };
        let exited = p.wait_for(deadline, |p| p.stdout.len() >= target);
        if let Some(status) = exited {
            // It finished every run before the kill: nothing to kill.
            assert!(
                status.success(),
                "`convergio {}` failed ({status}):\n{}",
                p.what,
                p.tail()
            );
        } else {
            std::thread::sleep(Duration::from_millis(rng.range(0, 400)));
            let status = p.kill();
            let runs = list(&bin, &config);
            let running = count(&runs, "running");
            running_at_kills += running;
            kills.push(format!(
                "graph run ({status}) after {} of {remaining} starts: {running} runs running, {} done",
                p.stdout.len(),
                count(&runs, "done")
            ));
        }
        for id in &p.stdout {
            assert!(
                id.starts_with("run-"),
                "`graph run --repeat` printed `{id}`, not a run id"
            );
            assert!(acked.insert(id.clone()), "run {id} was printed twice");
        }
    }
    assert_eq!(
        acked.len(),
        RUNS,
        "the `graph run` processes acknowledged {} runs, not {RUNS}",
        acked.len()
    );

    // Resume: `graph resume --all`, killed at random moments, until one is
    // let run to the end.
    let mut resumed_lines = Vec::new();
    let mut resume_kills = 0;
    loop {
        let runs = list(&bin, &config);
        let pending = count(&runs, "running");
        let mut p = Proc::spawn(&bin, &config, &["graph", "resume", "--all"]);
        let kill = resume_kills < RESUME_KILLS && pending > 0;
        let exited = if kill {
            // After some runs finished (0 to half of them), then a little more.
            let after = rng.range(0, (pending / 2) as u64) as usize;
            let exited = p.wait_for(deadline, |p| p.finished() >= after);
            if exited.is_none() {
                std::thread::sleep(Duration::from_millis(rng.range(0, 800)));
            }
            exited.or_else(|| p.exited())
        } else {
            p.wait_for(deadline, |_| false)
        };
        if let Some(status) = exited {
            assert!(
                status.success(),
                "`convergio graph resume --all` failed ({status}):\n{}",
                p.tail()
            );
            resumed_lines.extend(
                p.stderr
                    .iter()
                    .filter(|l| l.contains("runs resumed") || l.contains("no run to resume"))
                    .cloned(),
            );
            break;
        }
        let status = p.kill();
        resume_kills += 1;
        let runs = list(&bin, &config);
        let running = count(&runs, "running");
        running_at_kills += running;
        kills.push(format!(
            "graph resume --all ({status}) of {pending} running, after {} finished: {running} runs running, {} done",
            p.finished(),
            count(&runs, "done")
        ));
    }

    // 0 runs lost: every acknowledged run, and every other run the journal
    // holds, is done.
    let runs = list(&bin, &config);
    let not_done: Vec<String> = runs
        .iter()
        .filter(|(_, s)| *s != "done")
        .map(|(id, s)| format!("{id}: {s}"))
        .collect();
    assert!(
        not_done.is_empty(),
        "{} runs are not done after the last resume (seed {seed}):\n{}",
        not_done.len(),
        not_done.join("\n")
    );
    let lost: Vec<&String> = acked.iter().filter(|id| !runs.contains_key(*id)).collect();
    assert!(
        lost.is_empty(),
        "acknowledged runs missing from the journal (seed {seed}): {lost:?}"
    );
    let unacked: Vec<&String> = runs.keys().filter(|id| !acked.contains(*id)).collect();
    assert!(
        unacked.len() <= RUN_PROCESSES,
        "{} runs in the journal were never printed by `graph run`; at most one per killed `graph run` can be (seed {seed}): {unacked:?}",
        unacked.len()
    );

    // 0 lost and 0 duplicated side effects.
    let stored = counters(&dir.path().join("platform-data").join("convergio.db"));
    let mut wrong = Vec::new();
    for run in runs.keys() {
        let Some(have) = stored.get(run) else {
            wrong.push(format!("{run}: no counter at all"));
            continue;
        };
        for (name, value) in EXPECTED {
            match have.get(name) {
                None => wrong.push(format!("{run}/{name}: missing, expected {value}")),
                Some((got, keys)) => {
                    let mut keys = keys.clone();
                    keys.sort();
                    if *got != value || keys != expected_keys(run, name) {
                        wrong.push(format!(
                            "{run}/{name}: {got}, expected {value}; bumped by {keys:?}"
                        ));
                    }
                }
            }
        }
        for name in have.keys() {
            if !EXPECTED.iter().any(|(n, _)| n == name) {
                wrong.push(format!("{run}/{name}: a counter the graph does not bump"));
            }
        }
    }
    for run in stored.keys() {
        if !runs.contains_key(run) {
            wrong.push(format!(
                "{run}: counters of a run the journal does not hold"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} counters are off (seed {seed}):\n{}",
        wrong.len(),
        wrong.join("\n")
    );

    // Not vacuous: the kills landed while runs were running.
    assert!(
        running_at_kills > 0,
        "no kill landed while a run was running (seed {seed}): {kills:#?}"
    );
    println!(
        "crash test: {} runs done ({} acknowledged, {} journaled but not acknowledged), every counter exact; {} kills in {:.1} s (seed {seed}):",
        runs.len(),
        acked.len(),
        unacked.len(),
        kills.len(),
        started.elapsed().as_secs_f64()
    );
    for kill in &kills {
        println!("  killed {kill}");
    }
    for line in &resumed_lines {
        println!("  last resume: {line}");
    }
}
