//! The journal's append cost per entry, for each durability mode, with one
//! appender and with 16 concurrent appenders (each on its own run, so the
//! writer thread commits what arrives during a commit in one transaction).
//!
//! Each round appends a batch of single-entry appends (100-byte payloads)
//! and divides the wall time by the appends; the report is the median over
//! the rounds, with the appends per commit (group commit) beside it. The
//! `direct` line of each mode is the baseline: the same statements on a
//! connection of the calling thread, one transaction per append, with no
//! writer thread. The `memory` lines are `MemoryRunStore`, the store
//! `convergio_journal::open` gives for durability `off` (the `off` lines
//! are `SqliteRunStore` on an in-memory database), on a fresh store each
//! round; its async line awaits `append` on a current-thread runtime.
//!
//! Run: `cargo bench -p convergio-benches --bench journal`. Under `cargo
//! test` (no `--bench` argument) it runs one tiny round of each case as a
//! smoke test.

// A benchmark's setup should fail loudly; there is no caller to return an error to.
#![allow(clippy::expect_used, clippy::panic)]

use std::time::Instant;

use convergio_journal::{Durability, MemoryRunStore, NewEntry, RunId, RunStore, SqliteRunStore};

/// Rounds per case (odd, for a plain median), after one warm-up round.
const ROUNDS: usize = 7;
/// Concurrent appenders of the group-commit cases.
const APPENDERS: usize = 16;

fn payload() -> Vec<u8> {
    vec![b'x'; 100]
}

/// One round: `appenders` threads, each appending `per` entries to a run
/// of its own. Returns the wall time per append (µs) and the appends per
/// commit.
fn round(store: &SqliteRunStore, name: &str, appenders: usize, per: u64) -> (f64, f64) {
    let commits = store.commits();
    let time = timed_round(store, name, appenders, per);
    let appends = appenders as u64 * per;
    let commits = store.commits() - commits;
    (time, appends as f64 / commits.max(1) as f64)
}

/// [`round`] on `store`, whatever it is: the wall time per append (µs).
fn timed_round(store: &dyn RunStore, name: &str, appenders: usize, per: u64) -> f64 {
    let runs: Vec<RunId> = (0..appenders)
        .map(|a| {
            let run = RunId::from(format!("{name}-{a}"));
            store.create_run(&run, "bench").expect("create run");
            run
        })
        .collect();
    let started = Instant::now();
    std::thread::scope(|scope| {
        for run in &runs {
            scope.spawn(move || {
                for seq in 0..per {
                    let last = store
                        .append_blocking(run, seq, vec![NewEntry::new("node.result", payload())])
                        .expect("append");
                    assert_eq!(last, seq + 1);
                }
            });
        }
    });
    started.elapsed().as_secs_f64() * 1e6 / (appenders as u64 * per) as f64
}

/// One appender awaiting `append` `per` times on a current-thread runtime:
/// the wall time per append (µs).
fn async_round(store: &dyn RunStore, name: &str, per: u64) -> f64 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let run = RunId::from(name.to_owned());
    store.create_run(&run, "bench").expect("create run");
    let started = Instant::now();
    runtime.block_on(async {
        for seq in 0..per {
            let last = store
                .append(&run, seq, vec![NewEntry::new("node.result", payload())])
                .await
                .expect("append");
            assert_eq!(last, seq + 1);
        }
    });
    started.elapsed().as_secs_f64() * 1e6 / per as f64
}

/// The memory store's lines: a fresh store each round (what the rounds
/// append stays in memory until the store is dropped).
fn memory(bench: bool) {
    let rounds = if bench { ROUNDS } else { 1 };
    let total: u64 = if bench { 128_000 } else { 2 };
    let cases: [(&str, usize); 3] = [("1", 1), ("16", APPENDERS), ("1 async", 1)];
    for (label, appenders) in cases {
        let per = if bench { total / appenders as u64 } else { 2 };
        let run = |r: usize| {
            let store = MemoryRunStore::new();
            let name = format!("memory-{appenders}-{r}");
            if label.ends_with("async") {
                async_round(&store, &name, per)
            } else {
                timed_round(&store, &name, appenders, per)
            }
        };
        if bench {
            run(0); // warm-up
        }
        let times: Vec<f64> = (1..=rounds).map(run).collect();
        println!(
            "{:<10} {label:>10} {:>14.2} {:>18}",
            "memory",
            median(times),
            "(inline)"
        );
    }
}

/// The baseline: the same statements an append runs (read the run's last
/// seq, insert the entry, update the run), one `IMMEDIATE` transaction per
/// append, on a connection of the calling thread: SQLite's own cost,
/// without the writer thread and the hand-offs to and from it.
fn direct_round(conn: &mut rusqlite::Connection, name: &str, per: u64) -> f64 {
    conn.execute(
        "INSERT INTO runs (id, last_seq) VALUES (?1, 0)",
        rusqlite::params![name],
    )
    .expect("create run");
    let started = Instant::now();
    for seq in 0..per {
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .expect("begin");
        let last: i64 = tx
            .prepare_cached("SELECT last_seq FROM runs WHERE id = ?1")
            .and_then(|mut s| s.query_row([name], |r| r.get(0)))
            .expect("last seq");
        assert_eq!(last, seq as i64);
        tx.prepare_cached(
            "INSERT INTO entries (run, seq, kind, call_id, payload, at_ms) VALUES (?1, ?2, 'node.result', NULL, ?3, 0)",
        )
        .and_then(|mut s| s.execute(rusqlite::params![name, last + 1, payload()]))
        .expect("insert");
        tx.prepare_cached("UPDATE runs SET last_seq = ?2 WHERE id = ?1")
            .and_then(|mut s| s.execute(rusqlite::params![name, last + 1]))
            .expect("update");
        tx.commit().expect("commit");
    }
    started.elapsed().as_secs_f64() * 1e6 / per as f64
}

fn direct_conn(path: &std::path::Path, durability: Durability) -> rusqlite::Connection {
    let conn = match durability {
        Durability::Off => rusqlite::Connection::open_in_memory(),
        _ => rusqlite::Connection::open(path),
    }
    .expect("open");
    if durability != Durability::Off {
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .expect("WAL");
        assert_eq!(mode, "wal");
    }
    let sync = if durability == Durability::Sync {
        "FULL"
    } else {
        "NORMAL"
    };
    conn.pragma_update(None, "synchronous", sync)
        .expect("synchronous");
    conn.execute_batch(
        "CREATE TABLE runs (id TEXT PRIMARY KEY, last_seq INTEGER NOT NULL) STRICT;
         CREATE TABLE entries (run TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL,
             call_id TEXT, payload BLOB NOT NULL, at_ms INTEGER NOT NULL,
             PRIMARY KEY (run, seq)) STRICT, WITHOUT ROWID;",
    )
    .expect("schema");
    conn
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let dir = tempfile::tempdir().expect("temporary directory");
    println!("journal: append cost per entry (median of {ROUNDS} rounds)");
    println!(
        "{:<10} {:>10} {:>14} {:>18}",
        "mode", "appenders", "µs / append", "appends / commit"
    );
    for (mode, durability, total) in [
        ("sync", Durability::Sync, 400u64),
        ("process", Durability::Process, 8_000),
        ("off", Durability::Off, 32_000),
    ] {
        let rounds = if bench { ROUNDS } else { 1 };
        let mut conn = direct_conn(&dir.path().join(format!("{mode}-direct.db")), durability);
        let per = if bench { total } else { 2 };
        let times: Vec<f64> = (0..=rounds)
            .map(|r| direct_round(&mut conn, &format!("direct-{r}"), per))
            .skip(1) // warm-up
            .collect();
        println!(
            "{mode:<10} {:>10} {:>14.2} {:>18}",
            "direct",
            median(times),
            "(baseline)"
        );
        let store = SqliteRunStore::open(&dir.path().join(format!("{mode}.db")), durability)
            .expect("open the journal");
        for appenders in [1, APPENDERS] {
            let per = if bench { total / appenders as u64 } else { 2 };
            let mut name = 0;
            let mut run = |store: &SqliteRunStore| {
                name += 1;
                round(store, &format!("{mode}-{appenders}-{name}"), appenders, per)
            };
            if bench {
                run(&store); // warm-up
            }
            let (times, batches): (Vec<f64>, Vec<f64>) = (0..rounds).map(|_| run(&store)).unzip();
            println!(
                "{mode:<10} {appenders:>10} {:>14.2} {:>18.1}",
                median(times),
                median(batches)
            );
        }
    }
    memory(bench);
    if !bench {
        println!(
            "journal: smoke test passed; run `cargo bench -p convergio-benches --bench journal` to measure"
        );
    }
}
