//! Convergio's call paths beside raw wasmtime on the same engine.
//!
//! | group                    | what one iteration does                                         |
//! |--------------------------|-----------------------------------------------------------------|
//! | `instantiate_call`       | fresh store, instantiate `bench_tool` from its `InstancePre`, call `noop` |
//! | `instantiate_breakdown`  | raw only: a WASI context alone, a store alone, a store plus instantiation (no call) |
//! | `host_to_guest`          | call `noop` on a live instance (raw only: Convergio never reuses one) |
//! | `guest_to_host`          | `instantiate_call` of `host-calls N`, N = 0 and 1000; per hop = (t1000 − t0) / 1000 |
//! | `component_to_component` | `caller_agent.run` → host → fresh `plain_tool` `invoke("echo")`; beside it the agent alone (`describe`) and the tool alone |
//!
//! Run with `cargo xtask bench` (it builds the components in release mode
//! first). Results and how to read them are in
//! `docs/benchmarks.md`.

// A benchmark's setup should fail loudly; there is no caller to return an error to.
#![allow(clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::Instant;

use convergio_benches::baseline::{Raw, Target};
use convergio_benches::{AGENT, BENCH, Components, Convergio, TOOL, invoke_params, ok_text, task};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use tokio::runtime::Runtime as Tokio;
use wasmtime::component::Val;
use wasmtime_wasi::WasiCtxBuilder;

/// Host calls per iteration of the long `guest_to_host` run.
const HOPS: u32 = 1000;

fn overhead(c: &mut Criterion) {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let components = Components::locate();
    let convergio = tokio
        .block_on(Convergio::start(&components))
        .expect("temporary directory for the platform");
    // Same engine, hence the same configuration: pooling, epochs, Cranelift settings.
    let raw = Raw::new(convergio.runtime.engine(), &components).expect("raw wasmtime baseline");
    tokio.block_on(check(&convergio, &raw));

    instantiate_call(c, &tokio, &convergio, &raw);
    instantiate_breakdown(c, &tokio, &raw);
    host_to_guest(c, &tokio, &raw);
    guest_to_host(c, &tokio, &convergio, &raw);
    component_to_component(c, &tokio, &convergio, &raw);
}

/// Both sides answer what the benchmarks expect before anything is timed.
async fn check(convergio: &Convergio, raw: &Raw) {
    let runtime = &convergio.runtime;
    let n = HOPS.to_string();
    let cases: [(&str, &str, Vec<Val>, &Target, &str); 4] = [
        (
            BENCH,
            "tool.invoke",
            invoke_params("noop", "").to_vec(),
            &raw.bench_invoke,
            "",
        ),
        (
            BENCH,
            "tool.invoke",
            invoke_params("host-calls", &n).to_vec(),
            &raw.bench_invoke,
            &n,
        ),
        (
            TOOL,
            "tool.invoke",
            invoke_params("echo", "x").to_vec(),
            &raw.tool_invoke,
            "x",
        ),
        (AGENT, "agent.run", task("x").to_vec(), &raw.agent_run, "x"),
    ];
    for (plugin, function, params, target, expected) in cases {
        let out = runtime
            .invoke(plugin, function, &params)
            .await
            .unwrap_or_else(|e| panic!("convergio {plugin} {function}: {e}"));
        assert_eq!(
            out.first().and_then(ok_text),
            Some(expected),
            "convergio {plugin} {function}: {out:?}"
        );
        let mut results = [Val::Bool(false)];
        target
            .call(&params, &mut results)
            .await
            .unwrap_or_else(|e| panic!("raw {plugin} {function}: {e:?}"));
        assert_eq!(
            ok_text(&results[0]),
            Some(expected),
            "raw {plugin} {function}: {results:?}"
        );
    }
}

fn instantiate_call(c: &mut Criterion, tokio: &Tokio, convergio: &Convergio, raw: &Raw) {
    let mut group = c.benchmark_group("instantiate_call");
    let params = invoke_params("noop", "");
    group.bench_function("convergio", |b| {
        b.to_async(tokio)
            .iter(|| convergio_call(convergio, BENCH, "tool.invoke", &params));
    });
    group.bench_function("raw_wasmtime", |b| {
        b.to_async(tokio)
            .iter(|| raw_call(&raw.bench_invoke, &params));
    });
    group.finish();
}

/// Where raw `instantiate_call` time goes: the WASI context, the store, the
/// instantiation (each includes dropping what it made, as a call does).
fn instantiate_breakdown(c: &mut Criterion, tokio: &Tokio, raw: &Raw) {
    let mut group = c.benchmark_group("instantiate_breakdown");
    group.bench_function("raw_wasmtime/wasi_ctx", |b| {
        b.iter(|| black_box(WasiCtxBuilder::new().build()));
    });
    group.bench_function("raw_wasmtime/store", |b| {
        b.iter(|| black_box(raw.bench_invoke.store()));
    });
    group.bench_function("raw_wasmtime/instantiate", |b| {
        b.to_async(tokio).iter(|| async {
            let warm = raw
                .bench_invoke
                .instantiate()
                .await
                .expect("instantiate bench_tool");
            black_box(warm);
        });
    });
    group.finish();
}

fn host_to_guest(c: &mut Criterion, tokio: &Tokio, raw: &Raw) {
    let mut group = c.benchmark_group("host_to_guest");
    let params = invoke_params("noop", "");
    let mut warm = tokio
        .block_on(raw.bench_invoke.instantiate())
        .expect("instantiate bench_tool");
    // The loop runs inside one `block_on`, as criterion's async `iter` does.
    group.bench_function("raw_wasmtime", |b| {
        b.iter_custom(|iters| {
            tokio.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let mut results = [Val::Bool(false)];
                    warm.call(&params, &mut results)
                        .await
                        .expect("noop on a live instance");
                    black_box(results);
                }
                start.elapsed()
            })
        });
    });
    group.finish();
}

fn guest_to_host(c: &mut Criterion, tokio: &Tokio, convergio: &Convergio, raw: &Raw) {
    let mut group = c.benchmark_group("guest_to_host");
    for n in [0, HOPS] {
        let params = invoke_params("host-calls", &n.to_string());
        group.bench_with_input(BenchmarkId::new("convergio", n), &params, |b, params| {
            b.to_async(tokio)
                .iter(|| convergio_call(convergio, BENCH, "tool.invoke", params));
        });
        group.bench_with_input(BenchmarkId::new("raw_wasmtime", n), &params, |b, params| {
            b.to_async(tokio)
                .iter(|| raw_call(&raw.bench_invoke, params));
        });
    }
    group.finish();
}

fn component_to_component(c: &mut Criterion, tokio: &Tokio, convergio: &Convergio, raw: &Raw) {
    let mut group = c.benchmark_group("component_to_component");
    let run = task("{}");
    let echo = invoke_params("echo", "{}");
    let cases: [(&str, &str, &str, &[Val], &Target); 3] = [
        ("agent_run", AGENT, "agent.run", &run, &raw.agent_run),
        (
            "agent_describe",
            AGENT,
            "agent.describe",
            &[],
            &raw.agent_describe,
        ),
        ("tool_direct", TOOL, "tool.invoke", &echo, &raw.tool_invoke),
    ];
    for (name, plugin, function, params, target) in cases {
        group.bench_function(BenchmarkId::new("convergio", name), |b| {
            b.to_async(tokio)
                .iter(|| convergio_call(convergio, plugin, function, params));
        });
        group.bench_function(BenchmarkId::new("raw_wasmtime", name), |b| {
            b.to_async(tokio).iter(|| raw_call(target, params));
        });
    }
    group.finish();
}

/// One call through Convergio: fresh store, instantiate, call, as in production.
async fn convergio_call(convergio: &Convergio, plugin: &str, function: &str, params: &[Val]) {
    let results = convergio
        .runtime
        .invoke(plugin, function, params)
        .await
        .expect("convergio call");
    black_box(results);
}

/// The same through raw wasmtime.
async fn raw_call(target: &Target, params: &[Val]) {
    let mut results = [Val::Bool(false)];
    target
        .call(params, &mut results)
        .await
        .expect("raw wasmtime call");
    black_box(results);
}

criterion_group!(benches, overhead);
criterion_main!(benches);
