//! Convergio ÷ raw wasmtime, measured in alternation.
//!
//! On a shared or virtual machine the speed of one benchmark process can
//! differ from the next by tens of percent, and can drift within a process,
//! so two criterion benchmarks measured seconds apart do not give a stable
//! ratio. This target measures the same paths as `overhead.rs` in rounds:
//! each round runs every case of a path back to back (a batch of calls each,
//! in an order that rotates every round), and each round yields one ratio.
//! It prints the median of each case and the median ratio with its
//! interquartile range over the rounds.
//!
//! The last two paths are storage get and set per operation through a guest
//! (`storage_bench_tool`), beside rusqlite and `SqliteBackend` called
//! directly on databases with the same pragmas (`benches/src/storage.rs`).
//!
//! Run: `cargo bench -p convergio-benches --bench paired` (after
//! `cargo xtask build-components --release`). Under `cargo test` (no
//! `--bench` argument) it runs one tiny round of each path as a smoke test.

// A benchmark's setup should fail loudly; there is no caller to return an error to.
#![allow(clippy::expect_used, clippy::panic)]

use std::time::Instant;

use convergio_benches::baseline::{Raw, Target};
use convergio_benches::storage::{
    StorageBench, backend_gets, backend_sets, get_params, next_seed, set_params,
};
use convergio_benches::{
    AGENT, BENCH, Components, Convergio, TOOL, WARM_AGENT, WARM_TOOL, invoke_params, task,
};
use wasmtime::component::Val;

/// Rounds per path (odd, for a plain median), after one warm-up round.
const ROUNDS: usize = 31;
/// Storage gets per guest call (and per baseline batch).
const GETS: usize = 1000;
/// Storage sets per guest call (each waits for its `fsync`).
const SETS: usize = 20;

/// One way of running one call.
#[derive(Clone, Copy)]
enum Call<'a> {
    Convergio(&'a str, &'a str, &'a [Val]),
    Raw(&'a Target, &'a [Val]),
    /// `storage_bench_tool` through Convergio.
    StorageGuest(&'a StorageBench, &'a [Val]),
    /// `storage_bench_tool` setting N keys to new values, through Convergio.
    StorageSets(&'a StorageBench, usize),
    /// Host code alone (the storage baselines).
    Native(&'a dyn Fn()),
}

async fn once(convergio: &Convergio, call: Call<'_>) {
    match call {
        Call::StorageGuest(bench, params) => {
            std::hint::black_box(bench.guest(params).await.expect("storage guest call"));
        }
        Call::StorageSets(bench, n) => {
            let params = set_params(n, next_seed());
            std::hint::black_box(bench.guest(&params).await.expect("storage guest sets"));
        }
        Call::Native(f) => f(),
        Call::Convergio(plugin, function, params) => {
            let results = convergio
                .runtime
                .invoke(plugin, function, params)
                .await
                .expect("convergio call");
            std::hint::black_box(results);
        }
        Call::Raw(target, params) => {
            let mut results = [Val::Bool(false)];
            target
                .call(params, &mut results)
                .await
                .expect("raw wasmtime call");
            std::hint::black_box(results);
        }
    }
}

/// Mean nanoseconds per call over `batch` calls.
async fn per_call_ns(convergio: &Convergio, call: Call<'_>, batch: u32) -> f64 {
    let start = Instant::now();
    for _ in 0..batch {
        once(convergio, call).await;
    }
    start.elapsed().as_nanos() as f64 / f64::from(batch)
}

/// Per round, the time per call of each case (`[round][case]`).
async fn rounds(
    convergio: &Convergio,
    cases: &[Call<'_>],
    batch: u32,
    rounds: usize,
    warm_up: bool,
) -> Vec<Vec<f64>> {
    let mut out = Vec::with_capacity(rounds);
    for round in 0..rounds + usize::from(warm_up) {
        let mut times = vec![0.0; cases.len()];
        for k in 0..cases.len() {
            let i = (round + k) % cases.len();
            times[i] = per_call_ns(convergio, cases[i], batch).await;
        }
        if warm_up && round == 0 {
            continue;
        }
        out.push(times);
    }
    out
}

/// Median and quartiles.
fn quartiles(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.25), at(0.75))
}

fn time(ns: f64) -> String {
    if ns >= 1000.0 {
        format!("{:.1} µs", ns / 1000.0)
    } else {
        format!("{ns:.0} ns")
    }
}

/// One line: the median of each side and the median ratio with its IQR.
/// `derive` turns one round's case times into (convergio, raw).
fn report(name: &str, data: &[Vec<f64>], derive: impl Fn(&[f64]) -> (f64, f64)) -> String {
    let pairs: Vec<(f64, f64)> = data.iter().map(|round| derive(round)).collect();
    let (conv, _, _) = quartiles(pairs.iter().map(|p| p.0).collect());
    let (raw, _, _) = quartiles(pairs.iter().map(|p| p.1).collect());
    let (ratio, low, high) = quartiles(pairs.iter().map(|p| p.0 / p.1).collect());
    format!(
        "{name:<40} {:>10} {:>10} {ratio:>6.2}× [{low:.2}–{high:.2}]",
        time(conv),
        time(raw)
    )
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    // Under `cargo test`: one tiny round per path, to check that it runs.
    let (n, scale, warm_up) = if bench {
        (ROUNDS, 1, true)
    } else {
        (1, 0, false)
    };
    let batch = |calls: u32| (calls * scale).max(1);

    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let components = Components::locate();
    let convergio = tokio
        .block_on(Convergio::start(&components))
        .expect("temporary directory for the platform");
    let raw = Raw::new(convergio.runtime.engine(), &components).expect("raw wasmtime baseline");

    let noop = invoke_params("noop", "");
    let zero = invoke_params("host-calls", "0");
    let thousand = invoke_params("host-calls", "1000");
    let run = task("{}");
    let echo = invoke_params("echo", "{}");

    let lines = tokio.block_on(async {
        let mut lines = vec![format!(
            "{:<40} {:>10} {:>10} {:>7} [IQR]   ({n} rounds, medians per call)",
            "path", "convergio", "raw", "ratio"
        )];

        let cases = [
            Call::Convergio(BENCH, "tool.invoke", &noop),
            Call::Raw(&raw.bench_invoke, &noop),
        ];
        let data = rounds(&convergio, &cases, batch(400), n, warm_up).await;
        lines.push(report("instantiate_call (noop)", &data, |t| (t[0], t[1])));

        let cases = [
            Call::Convergio(BENCH, "tool.invoke", &zero),
            Call::Convergio(BENCH, "tool.invoke", &thousand),
            Call::Raw(&raw.bench_invoke, &zero),
            Call::Raw(&raw.bench_invoke, &thousand),
        ];
        let data = rounds(&convergio, &cases, batch(40), n, warm_up).await;
        lines.push(report(
            "guest_to_host per hop ((t1000-t0)/1000)",
            &data,
            |t| ((t[1] - t[0]) / 1000.0, (t[3] - t[2]) / 1000.0),
        ));

        let cases = [
            Call::Convergio(AGENT, "agent.run", &run),
            Call::Convergio(AGENT, "agent.describe", &[]),
            Call::Convergio(TOOL, "tool.invoke", &echo),
            Call::Raw(&raw.agent_run, &run),
            Call::Raw(&raw.agent_describe, &[]),
            Call::Raw(&raw.tool_invoke, &echo),
        ];
        let data = rounds(&convergio, &cases, batch(150), n, warm_up).await;
        lines.push(report("agent.run (agent -> host -> tool)", &data, |t| {
            (t[0], t[3])
        }));
        lines.push(report("agent.describe (agent alone)", &data, |t| {
            (t[1], t[4])
        }));
        lines.push(report("tool.invoke (tool alone)", &data, |t| (t[2], t[5])));
        lines.push(report("component hop (run - describe)", &data, |t| {
            (t[0] - t[1], t[3] - t[4])
        }));
        lines.push(report("forwarding (run - describe - tool)", &data, |t| {
            (t[0] - t[1] - t[2], t[3] - t[4] - t[5])
        }));

        // The same agent and tool opted in to warm instances (`warm-instances`),
        // beside raw wasmtime instantiating afresh as above: what opting in saves.
        let cases = [
            Call::Convergio(WARM_AGENT, "agent.run", &run),
            Call::Convergio(WARM_AGENT, "agent.describe", &[]),
            Call::Convergio(WARM_TOOL, "tool.invoke", &echo),
            Call::Raw(&raw.agent_run, &run),
            Call::Raw(&raw.agent_describe, &[]),
            Call::Raw(&raw.tool_invoke, &echo),
        ];
        let data = rounds(&convergio, &cases, batch(150), n, warm_up).await;
        lines.push(report("tool.invoke, warm / raw fresh", &data, |t| {
            (t[2], t[5])
        }));
        lines.push(report("component hop, warm / raw fresh", &data, |t| {
            (t[0] - t[1], t[3] - t[4])
        }));

        // Storage: per operation through the guest, (t(N) - t(0)) / N, beside
        // rusqlite and SqliteBackend called directly (t(N) / N).
        let storage = StorageBench::start(GETS)
            .await
            .expect("storage benchmark setup");
        let (get_zero, get_n) = (get_params(0), get_params(GETS));
        let direct_gets = || {
            std::hint::black_box(storage.direct.gets(GETS).expect("direct gets"));
        };
        let backend_get = || {
            std::hint::black_box(backend_gets(&storage.backend, GETS).expect("backend gets"));
        };
        let cases = [
            Call::StorageGuest(&storage, &get_zero),
            Call::StorageGuest(&storage, &get_n),
            Call::Native(&direct_gets),
            Call::Native(&backend_get),
        ];
        let data = rounds(&convergio, &cases, batch(5), n, warm_up).await;
        let per = GETS as f64;
        lines.push(report("storage get per op: guest / rusqlite", &data, |t| {
            ((t[1] - t[0]) / per, t[2] / per)
        }));
        lines.push(report("storage get per op: guest / backend", &data, |t| {
            ((t[1] - t[0]) / per, t[3] / per)
        }));

        // A new seed for each set call, so every set writes a new value.
        let set_zero = set_params(0, 0);
        let direct_sets = || storage.direct.sets(SETS, next_seed()).expect("direct sets");
        let backend_set =
            || backend_sets(&storage.backend, SETS, next_seed()).expect("backend sets");
        let cases = [
            Call::StorageGuest(&storage, &set_zero),
            Call::StorageSets(&storage, SETS),
            Call::Native(&direct_sets),
            Call::Native(&backend_set),
        ];
        let data = rounds(&convergio, &cases, 1, n, warm_up).await;
        let per = SETS as f64;
        lines.push(report("storage set per op: guest / rusqlite", &data, |t| {
            ((t[1] - t[0]) / per, t[2] / per)
        }));
        lines.push(report("storage set per op: guest / backend", &data, |t| {
            ((t[1] - t[0]) / per, t[3] / per)
        }));
        lines
    });
    if bench {
        println!("{}", lines.join("\n"));
    } else {
        println!(
            "paired: smoke test passed; run `cargo bench -p convergio-benches --bench paired` to measure"
        );
    }
}
