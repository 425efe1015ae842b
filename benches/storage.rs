//! Storage get and set through the guest interface, beside SQLite without it.
//!
//! | group                | what one iteration does                                                  |
//! |----------------------|--------------------------------------------------------------------------|
//! | `storage_get`        | `convergio_guest/N`: one call of `storage_bench_tool get bench N` (fresh instance, `open`, N gets); `rusqlite_direct/N` and `sqlite_backend/N`: the same N gets without the guest |
//! | `storage_set`        | the same with N sets of 100-byte values, new values every iteration (each set one durable transaction: WAL, `synchronous = FULL`, so an `fdatasync`) |
//! | `storage_contention` | a `noop` call spawned on the Tokio runtime, alone and beside [`WRITERS`] tasks that keep writing through the guest |
//!
//! Per operation through the guest: (t(N) − t(0)) / N; directly: t(N) / N.
//! The setup is in `benches/src/storage.rs`; results and how to read them are
//! in `docs/benchmarks.md`. Run with `cargo bench -p convergio-benches --bench
//! storage` after `cargo xtask build-components --release`.

// A benchmark's setup should fail loudly; there is no caller to return an error to.
#![allow(clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use convergio_benches::invoke_params;
use convergio_benches::storage::{
    STORE, StorageBench, backend_gets, backend_sets, get_params, next_seed, set_params,
};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use tokio::runtime::Runtime as Tokio;

/// Gets per iteration.
const GETS: usize = 1000;
/// Sets per iteration (each waits for its `fsync`).
const SETS: usize = 20;
/// Tasks writing in the background of `storage_contention`: more than the
/// runtime's two worker threads.
const WRITERS: usize = 4;

fn storage(c: &mut Criterion) {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let bench = tokio
        .block_on(StorageBench::start(GETS))
        .expect("storage benchmark setup");
    check(&tokio, &bench);

    get(c, &tokio, &bench);
    set(c, &tokio, &bench);
    contention(c, &tokio, &bench);
}

/// Every side finds the keys the gets look for before anything is timed.
fn check(tokio: &Tokio, bench: &StorageBench) {
    let found = tokio
        .block_on(bench.guest(&get_params(GETS)))
        .expect("guest gets");
    assert_eq!(found, GETS.to_string(), "guest gets");
    assert_eq!(bench.direct.gets(GETS).expect("direct gets"), GETS);
    assert_eq!(
        backend_gets(&bench.backend, GETS).expect("backend gets"),
        GETS
    );
}

fn get(c: &mut Criterion, tokio: &Tokio, bench: &StorageBench) {
    let mut group = c.benchmark_group("storage_get");
    for n in [0, GETS] {
        let params = get_params(n);
        group.bench_function(BenchmarkId::new("convergio_guest", n), |b| {
            b.to_async(tokio).iter(|| async {
                black_box(bench.guest(&params).await.expect("guest gets"));
            });
        });
    }
    group.bench_function(BenchmarkId::new("rusqlite_direct", GETS), |b| {
        b.iter(|| black_box(bench.direct.gets(GETS).expect("direct gets")));
    });
    group.bench_function(BenchmarkId::new("sqlite_backend", GETS), |b| {
        b.iter(|| black_box(backend_gets(&bench.backend, GETS).expect("backend gets")));
    });
    group.finish();
}

fn set(c: &mut Criterion, tokio: &Tokio, bench: &StorageBench) {
    let mut group = c.benchmark_group("storage_set");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(10));
    for n in [0, SETS] {
        group.bench_function(BenchmarkId::new("convergio_guest", n), |b| {
            b.to_async(tokio).iter(|| async move {
                let params = set_params(n, next_seed());
                black_box(bench.guest(&params).await.expect("guest sets"));
            });
        });
    }
    group.bench_function(BenchmarkId::new("rusqlite_direct", SETS), |b| {
        b.iter(|| bench.direct.sets(SETS, next_seed()).expect("direct sets"));
    });
    group.bench_function(BenchmarkId::new("sqlite_backend", SETS), |b| {
        b.iter(|| backend_sets(&bench.backend, SETS, next_seed()).expect("backend sets"));
    });
    group.finish();
}

/// What durable writes do to the latency of an unrelated call: a `noop`
/// spawned on the runtime's worker threads, as a server spawns each request,
/// with and without writers keeping the database busy.
fn contention(c: &mut Criterion, tokio: &Tokio, bench: &StorageBench) {
    let mut group = c.benchmark_group("storage_contention");
    group.sample_size(30);
    group.measurement_time(Duration::from_secs(10));
    let noop = Arc::new(invoke_params("noop", ""));
    let spawned_noop = || {
        let runtime = bench.runtime.clone();
        let noop = Arc::clone(&noop);
        async move {
            let out =
                tokio::spawn(async move { runtime.invoke(STORE, "tool.invoke", &*noop).await })
                    .await
                    .expect("noop task")
                    .expect("noop call");
            black_box(out);
        }
    };
    group.bench_function("noop_idle", |b| b.to_async(tokio).iter(spawned_noop));

    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..WRITERS)
        .map(|_| {
            let runtime = bench.runtime.clone();
            let (stop, written) = (Arc::clone(&stop), Arc::clone(&written));
            tokio.spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    runtime
                        .invoke(STORE, "tool.invoke", &set_params(1, next_seed()))
                        .await
                        .expect("background set");
                    written.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let start = Instant::now();
    group.bench_function(BenchmarkId::new("noop_beside_writers", WRITERS), |b| {
        b.to_async(tokio).iter(spawned_noop)
    });
    stop.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed();
    for writer in writers {
        tokio.block_on(writer).expect("writer task");
    }
    let written = written.load(Ordering::Relaxed);
    println!(
        "storage_contention: {WRITERS} writers made {written} durable sets in {elapsed:.1?} ({:.0}/s)",
        written as f64 / elapsed.as_secs_f64()
    );
    group.finish();
}

criterion_group!(benches, storage);
criterion_main!(benches);
