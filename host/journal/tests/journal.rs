//! The journal's behaviour, the same for every built-in store: appends with
//! expected seq, concurrent appenders, checkpoints, forks that share their
//! parent's prefix, leases, blobs and subscriptions. Each test generic over
//! a [`Backend`] runs against `SqliteRunStore` in each durability mode and
//! against `MemoryRunStore` (modules `sqlite_sync`, `sqlite_process`,
//! `sqlite_off`, `memory`). Then what only one store does: SQLite's group
//! commit, its file and acknowledged entries surviving `kill -9`; the memory
//! store's inline commit; and `open`'s choice between them.

// Test helpers outside #[test] functions may panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use convergio_journal::{
    CallStep, Durability, Entry, Error, MemoryRunStore, NewEntry, Options, RunId, RunStatus,
    RunStore, SqliteRunStore, Subscription,
};
use convergio_test_child::Child;

/// A store to run the behavioural tests against.
trait Backend {
    /// The store.
    type Store: RunStore + Clone + 'static;
    /// A new, empty store in `dir` whose broadcast keeps
    /// `broadcast_capacity` entries.
    fn open(dir: &Path, broadcast_capacity: usize) -> Self::Store;
    /// The entries the store keeps itself, without the prefixes forks share.
    fn stored(store: &Self::Store) -> u64;
}

fn sqlite_with(dir: &Path, durability: Durability, broadcast_capacity: usize) -> SqliteRunStore {
    SqliteRunStore::open_with(
        &dir.join("runs.db"),
        Options {
            durability,
            broadcast_capacity,
            ..Options::default()
        },
    )
    .unwrap()
}

struct SqliteSync;
struct SqliteProcess;
struct SqliteOff;
struct Memory;

impl Backend for SqliteSync {
    type Store = SqliteRunStore;
    fn open(dir: &Path, broadcast_capacity: usize) -> SqliteRunStore {
        sqlite_with(dir, Durability::Sync, broadcast_capacity)
    }
    fn stored(store: &SqliteRunStore) -> u64 {
        store.stored_entries().unwrap()
    }
}

impl Backend for SqliteProcess {
    type Store = SqliteRunStore;
    fn open(dir: &Path, broadcast_capacity: usize) -> SqliteRunStore {
        sqlite_with(dir, Durability::Process, broadcast_capacity)
    }
    fn stored(store: &SqliteRunStore) -> u64 {
        store.stored_entries().unwrap()
    }
}

impl Backend for SqliteOff {
    type Store = SqliteRunStore;
    fn open(dir: &Path, broadcast_capacity: usize) -> SqliteRunStore {
        sqlite_with(dir, Durability::Off, broadcast_capacity)
    }
    fn stored(store: &SqliteRunStore) -> u64 {
        store.stored_entries().unwrap()
    }
}

impl Backend for Memory {
    type Store = MemoryRunStore;
    fn open(_: &Path, broadcast_capacity: usize) -> MemoryRunStore {
        MemoryRunStore::with_broadcast_capacity(broadcast_capacity)
    }
    fn stored(store: &MemoryRunStore) -> u64 {
        store.stored_entries()
    }
}

/// A fresh store of `B` with the default broadcast capacity, and the
/// directory it lives in (kept until the test ends).
fn fresh<B: Backend>() -> (tempfile::TempDir, B::Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = B::open(dir.path(), Options::default().broadcast_capacity);
    (dir, store)
}

/// Each behavioural test, once per backend.
macro_rules! behaviour_tests {
    ($($test:ident),* $(,)?) => {
        behaviour_tests!(@backend sqlite_sync, SqliteSync, $($test),*);
        behaviour_tests!(@backend sqlite_process, SqliteProcess, $($test),*);
        behaviour_tests!(@backend sqlite_off, SqliteOff, $($test),*);
        behaviour_tests!(@backend memory, Memory, $($test),*);
    };
    (@backend $module:ident, $backend:ident, $($test:ident),*) => {
        mod $module {
            $(
                #[test]
                fn $test() {
                    super::$test::<super::$backend>();
                }
            )*
        }
    };
}

behaviour_tests!(
    append_read_and_expected_seq_conflict,
    async_append_status_and_listing,
    a_run_created_with_its_first_entries_is_never_seen_without_them,
    a_run_created_claimed_is_leased_from_its_first_commit,
    concurrent_appenders_on_one_run_one_winner_per_seq,
    concurrent_appenders_on_many_runs_keep_seq_order,
    concurrent_async_appends_on_many_runs,
    checkpoints_at_or_before_a_seq,
    forks_share_the_prefix_and_forks_of_forks_work,
    leases_exclude_other_owners_until_expiry_or_release,
    blobs_are_stored_once_by_content_hash,
    call_steps_are_kept_per_call_and_attempt_and_pruned_with_their_run,
    subscription_catches_up_follows_and_recovers_from_lag,
    prune_deletes_old_finished_runs_and_what_only_they_use,
);

/// The SQLite store at `dir/runs.db` (the SQLite-only tests below).
fn store(dir: &Path, durability: Durability) -> SqliteRunStore {
    SqliteRunStore::open(&dir.join("runs.db"), durability).unwrap()
}

fn entry(payload: &str) -> NewEntry {
    NewEntry::new("node.result", payload.as_bytes().to_vec())
}

/// Run `future` on a two-thread runtime of its own.
fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// The subscription's next entry, failing the test instead of hanging if
/// it never comes.
async fn next(sub: &mut Subscription) -> Entry {
    tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .expect("the subscription stalled")
        .unwrap()
        .expect("the subscription ended")
}

fn payloads(entries: &[Entry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| String::from_utf8(e.payload.clone()).unwrap())
        .collect()
}

fn append_read_and_expected_seq_conflict<B: Backend>() {
    let (_dir, store) = fresh::<B>();
    let run = RunId::from("r");
    store.create_run(&run, "g").unwrap();
    assert!(matches!(
        store.create_run(&run, "g"),
        Err(Error::RunExists(_))
    ));
    assert_eq!(store.last_seq(&run).unwrap(), 0);
    assert!(store.read_after(&run, 0, 10).unwrap().is_empty());
    let last = store
        .append_blocking(
            &run,
            0,
            vec![
                NewEntry::new("decision", b"d".to_vec()),
                entry("a").call("c1"),
            ],
        )
        .unwrap();
    assert_eq!(last, 2);
    match store.append_blocking(&run, 1, vec![entry("late")]) {
        Err(Error::Conflict {
            run: r,
            expected,
            actual,
        }) => {
            assert_eq!((r, expected, actual), (run.clone(), 1, 2));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    // Ahead of the run is a conflict too.
    assert!(matches!(
        store.append_blocking(&run, 5, vec![entry("early")]),
        Err(Error::Conflict {
            expected: 5,
            actual: 2,
            ..
        })
    ));
    assert_eq!(store.append_blocking(&run, 2, vec![entry("b")]).unwrap(), 3);
    // An empty append checks the seq and adds nothing.
    assert_eq!(store.append_blocking(&run, 3, Vec::new()).unwrap(), 3);
    let all = store.read_after(&run, 0, 100).unwrap();
    assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(payloads(&all), ["d", "a", "b"]);
    assert!(all.iter().all(|e| e.run == run));
    assert_eq!(all[0].kind, "decision");
    assert_eq!(all[1].call_id.as_deref(), Some("c1"));
    assert_eq!(all[0].call_id, None);
    assert!(all[0].at_ms > 0);
    assert_eq!(payloads(&store.read_after(&run, 1, 1).unwrap()), ["a"]);
    assert!(store.read_after(&run, 1, 0).unwrap().is_empty());
    assert!(store.read_after(&run, 3, 10).unwrap().is_empty());
    assert!(store.read_after(&run, 30, 10).unwrap().is_empty());
    assert_eq!(B::stored(&store), 3);
    let nope = RunId::from("nope");
    assert!(matches!(
        store.append_blocking(&nope, 0, vec![entry("x")]),
        Err(Error::NoRun(_))
    ));
    assert!(matches!(
        store.read_after(&nope, 0, 10),
        Err(Error::NoRun(_))
    ));
    assert!(matches!(store.last_seq(&nope), Err(Error::NoRun(_))));
}

fn async_append_status_and_listing<B: Backend>() {
    block_on(async {
        let (_dir, store) = fresh::<B>();
        let run = RunId::from("r");
        let created = store.create_run(&run, "g").unwrap();
        assert_eq!(created.status, RunStatus::Running);
        assert_eq!(created.created_ms, created.updated_ms);
        assert_eq!(store.run_info(&run).unwrap().unwrap(), created);
        assert_eq!(store.append(&run, 0, vec![entry("a")]).await.unwrap(), 1);
        assert!(matches!(
            store.append(&run, 0, vec![entry("b")]).await,
            Err(Error::Conflict { actual: 1, .. })
        ));
        assert!(matches!(
            store
                .append(&RunId::from("nope"), 0, vec![entry("b")])
                .await,
            Err(Error::NoRun(_))
        ));
        let appended = store.run_info(&run).unwrap().unwrap();
        assert!(appended.updated_ms >= created.updated_ms);
        store.set_status(&run, RunStatus::Waiting).unwrap();
        let info = store.run_info(&run).unwrap().unwrap();
        assert_eq!(info.status, RunStatus::Waiting);
        assert_eq!(info.graph_hash, "g");
        assert_eq!(info.parent, None);
        assert_eq!(info.created_ms, created.created_ms);
        assert!(info.updated_ms >= appended.updated_ms);
        store.create_run(&RunId::from("s"), "h").unwrap();
        // Created in the same millisecond or later: oldest first, then by id.
        std::thread::sleep(Duration::from_millis(5));
        store.fork(&run, 1, &RunId::from("a-fork")).unwrap();
        let listed = store.list_runs().unwrap();
        let ids: Vec<_> = listed.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["r", "s", "a-fork"]);
        assert_eq!(listed[0], info);
        assert_eq!(listed[2].parent, Some((run.clone(), 1)));
        assert!(matches!(
            store.set_status(&RunId::from("nope"), RunStatus::Done),
            Err(Error::NoRun(_))
        ));
        assert_eq!(store.run_info(&RunId::from("nope")).unwrap(), None);
    });
}

/// `create_run_with` creates the run and appends its first entries in one
/// commit (the run driver starts runs so, so that a crash never leaves a
/// run whose input was not journaled); subscribers see the entries; an id
/// taken fails and changes nothing.
fn a_run_created_with_its_first_entries_is_never_seen_without_them<B: Backend>() {
    block_on(async {
        let (_dir, store) = fresh::<B>();
        let run = RunId::from("r");
        let mut sub = convergio_journal::subscribe(Arc::new(store.clone()), run.clone(), 0);
        assert_eq!(
            store
                .create_run_with(&run, "g", vec![entry("a"), entry("b")])
                .unwrap(),
            2
        );
        let info = store.run_info(&run).unwrap().unwrap();
        assert_eq!(
            (info.status, info.graph_hash.as_str(), info.parent),
            (RunStatus::Running, "g", None)
        );
        assert_eq!(store.last_seq(&run).unwrap(), 2);
        assert_eq!(
            payloads(&store.read_after(&run, 0, 10).unwrap()),
            ["a", "b"]
        );
        assert_eq!(
            payloads(&[next(&mut sub).await, next(&mut sub).await]),
            ["a", "b"]
        );
        assert!(matches!(
            store.create_run_with(&run, "h", vec![entry("c")]),
            Err(Error::RunExists(_))
        ));
        assert_eq!(store.last_seq(&run).unwrap(), 2);
        assert_eq!(store.run_info(&run).unwrap().unwrap().graph_hash, "g");
        assert_eq!(store.append(&run, 2, vec![entry("c")]).await.unwrap(), 3);
    });
}

/// `create_run_claimed` creates the run with its first entries and its
/// lease (how the run driver starts a run); an id taken fails and leaves
/// the lease as it was.
fn a_run_created_claimed_is_leased_from_its_first_commit<B: Backend>() {
    let (_dir, store) = fresh::<B>();
    let run = RunId::from("r");
    let ttl = Duration::from_secs(60);
    assert_eq!(
        store
            .create_run_claimed(&run, "g", vec![entry("a")], "host:1", ttl)
            .unwrap(),
        1
    );
    assert_eq!(payloads(&store.read_after(&run, 0, 10).unwrap()), ["a"]);
    assert!(matches!(
        store.claim(&run, "host:2", ttl),
        Err(Error::Claimed { owner, .. }) if owner == "host:1"
    ));
    assert!(matches!(
        store.create_run_claimed(&run, "g", vec![entry("b")], "host:2", ttl),
        Err(Error::RunExists(_))
    ));
    assert_eq!(store.last_seq(&run).unwrap(), 1);
    store.renew(&run, "host:1", ttl).unwrap();
}

/// Eight writers race on one run, each appending after the last seq it
/// knows: every seq has exactly one winner, whose payload is stored.
fn concurrent_appenders_on_one_run_one_winner_per_seq<B: Backend>() {
    const SEQS: u64 = 60;
    let (_dir, store) = fresh::<B>();
    let run = RunId::from("r");
    store.create_run(&run, "g").unwrap();
    let threads: Vec<_> = (0..8)
        .map(|me| {
            let store = store.clone();
            let run = run.clone();
            std::thread::spawn(move || {
                let mut won = Vec::new();
                let mut conflicts = 0;
                let mut expected = 0;
                while expected < SEQS {
                    match store.append_blocking(&run, expected, vec![entry(&format!("w{me}"))]) {
                        Ok(last) => {
                            won.push(last);
                            expected = last;
                        }
                        Err(Error::Conflict { actual, .. }) => {
                            assert!(actual > expected);
                            conflicts += 1;
                            expected = actual;
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
                (me, won, conflicts)
            })
        })
        .collect();
    let mut winners = BTreeMap::new();
    for t in threads {
        let (me, won, _) = t.join().unwrap();
        for seq in won {
            assert!(
                winners.insert(seq, format!("w{me}")).is_none(),
                "seq {seq} won twice"
            );
        }
    }
    assert_eq!(
        winners.keys().copied().collect::<Vec<_>>(),
        (1..=SEQS).collect::<Vec<_>>()
    );
    let stored = store.read_after(&run, 0, 1000).unwrap();
    assert_eq!(stored.len() as u64, SEQS);
    for e in &stored {
        assert_eq!(
            String::from_utf8(e.payload.clone()).unwrap(),
            winners[&e.seq]
        );
    }
    assert_eq!(B::stored(&store), SEQS);
}

/// Six threads append to runs of their own and, in turns, to one shared
/// run: each run's seqs have no gap, and the broadcast gives each run's
/// entries in seq order.
fn concurrent_appenders_on_many_runs_keep_seq_order<B: Backend>() {
    const THREADS: usize = 6;
    const APPENDS: u64 = 50;
    let (_dir, store) = fresh::<B>();
    let shared = RunId::from("shared");
    store.create_run(&shared, "g").unwrap();
    for t in 0..THREADS {
        store
            .create_run(&RunId::from(format!("own-{t}")), "g")
            .unwrap();
    }
    let mut events = store.events();
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let store = &store;
            let shared = &shared;
            scope.spawn(move || {
                let own = RunId::from(format!("own-{t}"));
                for i in 0..APPENDS {
                    // Two entries per append: seqs 2i + 1 and 2i + 2.
                    let last = store
                        .append_blocking(
                            &own,
                            2 * i,
                            vec![entry(&format!("{t}.{i}.a")), entry(&format!("{t}.{i}.b"))],
                        )
                        .unwrap();
                    assert_eq!(last, 2 * i + 2);
                    // The shared run: retry from the seq the conflict gives.
                    let mut expected = store.last_seq(shared).unwrap();
                    loop {
                        match store.append_blocking(shared, expected, vec![entry(&t.to_string())]) {
                            Ok(_) => break,
                            Err(Error::Conflict { actual, .. }) => expected = actual,
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
            });
        }
    });
    for t in 0..THREADS {
        let entries = store
            .read_after(&RunId::from(format!("own-{t}")), 0, 1000)
            .unwrap();
        assert_eq!(
            entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
            (1..=2 * APPENDS).collect::<Vec<_>>()
        );
        let expected: Vec<String> = (0..APPENDS)
            .flat_map(|i| [format!("{t}.{i}.a"), format!("{t}.{i}.b")])
            .collect();
        assert_eq!(payloads(&entries), expected);
    }
    let shared_entries = store.read_after(&shared, 0, 1000).unwrap();
    let total = THREADS as u64 * APPENDS;
    assert_eq!(
        shared_entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=total).collect::<Vec<_>>()
    );
    for t in 0..THREADS {
        let mine = payloads(&shared_entries)
            .iter()
            .filter(|p| **p == t.to_string())
            .count();
        assert_eq!(mine as u64, APPENDS);
    }
    // Every commit was broadcast (fewer than the broadcast keeps), each
    // run's in seq order.
    let mut broadcast: BTreeMap<RunId, Vec<u64>> = BTreeMap::new();
    while let Ok(e) = events.try_recv() {
        broadcast.entry(e.run.clone()).or_default().push(e.seq);
    }
    assert_eq!(broadcast[&shared], (1..=total).collect::<Vec<_>>());
    for t in 0..THREADS {
        assert_eq!(
            broadcast[&RunId::from(format!("own-{t}"))],
            (1..=2 * APPENDS).collect::<Vec<_>>()
        );
    }
    assert_eq!(B::stored(&store), total + THREADS as u64 * 2 * APPENDS);
}

/// Sixteen tasks append to sixteen runs at once with the async `append`:
/// every entry is there, in order.
fn concurrent_async_appends_on_many_runs<B: Backend>() {
    const RUNS: usize = 16;
    const APPENDS: u64 = 40;
    let (_dir, store) = fresh::<B>();
    block_on(async {
        let tasks: Vec<_> = (0..RUNS)
            .map(|r| {
                let store = store.clone();
                tokio::spawn(async move {
                    let run = RunId::from(format!("run-{r}"));
                    store.create_run(&run, "g").unwrap();
                    for i in 0..APPENDS {
                        let last = store
                            .append(&run, i, vec![entry(&format!("{r}.{i}"))])
                            .await
                            .unwrap();
                        assert_eq!(last, i + 1);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    for r in 0..RUNS {
        let run = RunId::from(format!("run-{r}"));
        let entries = store.read_after(&run, 0, 1000).unwrap();
        assert_eq!(
            payloads(&entries),
            (0..APPENDS).map(|i| format!("{r}.{i}")).collect::<Vec<_>>()
        );
        assert_eq!(
            entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
            (1..=APPENDS).collect::<Vec<_>>()
        );
    }
    assert_eq!(B::stored(&store), RUNS as u64 * APPENDS);
}

fn checkpoints_at_or_before_a_seq<B: Backend>() {
    let (_dir, store) = fresh::<B>();
    let run = RunId::from("r");
    store.create_run(&run, "g").unwrap();
    store
        .append_blocking(&run, 0, (0..6).map(|i| entry(&i.to_string())).collect())
        .unwrap();
    store.write_checkpoint(&run, 2, b"two").unwrap();
    store.write_checkpoint(&run, 5, b"five").unwrap();
    assert_eq!(store.checkpoint_at_or_before(&run, 1).unwrap(), None);
    let at = |seq| {
        let c = store.checkpoint_at_or_before(&run, seq).unwrap().unwrap();
        assert_eq!(c.run, run);
        (c.seq, String::from_utf8(c.state).unwrap())
    };
    assert_eq!(at(2), (2, "two".into()));
    assert_eq!(at(4), (2, "two".into()));
    assert_eq!(at(6), (5, "five".into()));
    store.write_checkpoint(&run, 5, b"five again").unwrap();
    assert_eq!(at(100), (5, "five again".into()));
    assert!(matches!(
        store.write_checkpoint(&run, 7, b"x"),
        Err(Error::PastEnd {
            seq: 7,
            last: 6,
            ..
        })
    ));
    let nope = RunId::from("nope");
    assert!(matches!(
        store.write_checkpoint(&nope, 0, b"x"),
        Err(Error::NoRun(_))
    ));
    assert!(matches!(
        store.checkpoint_at_or_before(&nope, 1),
        Err(Error::NoRun(_))
    ));
}

fn forks_share_the_prefix_and_forks_of_forks_work<B: Backend>() {
    let (_dir, store) = fresh::<B>();
    let root = RunId::from("root");
    store.create_run(&root, "g").unwrap();
    store
        .append_blocking(
            &root,
            0,
            (1..=10).map(|i| entry(&format!("r{i}"))).collect(),
        )
        .unwrap();
    store.write_checkpoint(&root, 4, b"root@4").unwrap();

    let child = RunId::from("child");
    let info = store.fork(&root, 6, &child).unwrap();
    assert_eq!(info.parent, Some((root.clone(), 6)));
    assert_eq!(info.graph_hash, "g");
    assert_eq!(info.status, RunStatus::Running);
    assert_eq!(store.run_info(&child).unwrap().unwrap(), info);
    assert_eq!(store.last_seq(&child).unwrap(), 6);
    // Nothing was copied.
    assert_eq!(B::stored(&store), 10);
    assert!(matches!(
        store.append_blocking(&child, 10, vec![entry("x")]),
        Err(Error::Conflict { actual: 6, .. })
    ));
    store
        .append_blocking(
            &child,
            6,
            (7..=9).map(|i| entry(&format!("c{i}"))).collect(),
        )
        .unwrap();
    assert_eq!(B::stored(&store), 13);
    let read = store.read_after(&child, 0, 100).unwrap();
    assert_eq!(
        payloads(&read),
        ["r1", "r2", "r3", "r4", "r5", "r6", "c7", "c8", "c9"]
    );
    assert!(read.iter().all(|e| e.run == child));
    assert_eq!(
        read.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=9).collect::<Vec<_>>()
    );
    // The parent goes on; the fork does not see it, nor the parent the fork.
    store
        .append_blocking(&root, 10, vec![entry("r11")])
        .unwrap();
    assert_eq!(store.read_after(&child, 8, 100).unwrap().len(), 1);
    assert_eq!(
        payloads(&store.read_after(&root, 5, 100).unwrap()),
        ["r6", "r7", "r8", "r9", "r10", "r11"]
    );
    // The parent's checkpoints are the fork's up to the fork point, no
    // further; the fork's own at its fork point hides its parent's there.
    let c = store.checkpoint_at_or_before(&child, 9).unwrap().unwrap();
    assert_eq!((c.seq, c.state.as_slice()), (4, b"root@4".as_slice()));
    assert_eq!(c.run, child);
    store.write_checkpoint(&root, 8, b"root@8").unwrap();
    store.write_checkpoint(&root, 6, b"root@6").unwrap();
    let c = store.checkpoint_at_or_before(&child, 9).unwrap().unwrap();
    assert_eq!((c.seq, c.state.as_slice()), (6, b"root@6".as_slice()));
    store.write_checkpoint(&child, 6, b"child@6").unwrap();
    let c = store.checkpoint_at_or_before(&child, 9).unwrap().unwrap();
    assert_eq!((c.seq, c.state.as_slice()), (6, b"child@6".as_slice()));
    let c = store.checkpoint_at_or_before(&root, 9).unwrap().unwrap();
    assert_eq!((c.seq, c.state.as_slice()), (8, b"root@8".as_slice()));
    assert!(matches!(
        store.write_checkpoint(&child, 5, b"x"),
        Err(Error::BeforeFork { fork_seq: 6, .. })
    ));
    assert!(matches!(
        store.write_checkpoint(&child, 10, b"x"),
        Err(Error::PastEnd {
            seq: 10,
            last: 9,
            ..
        })
    ));

    // Before its fork point, a fork's seqs are its parent's.
    assert!(matches!(
        store.fork(&child, 5, &RunId::from("early")),
        Err(Error::BeforeFork {
            seq: 5,
            fork_seq: 6,
            ..
        })
    ));
    let grandchild = RunId::from("grandchild");
    let info = store.fork(&child, 8, &grandchild).unwrap();
    assert_eq!(info.parent, Some((child.clone(), 8)));
    store
        .append_blocking(&grandchild, 8, vec![entry("g9"), entry("g10")])
        .unwrap();
    assert_eq!(B::stored(&store), 16);
    assert_eq!(
        payloads(&store.read_after(&grandchild, 0, 100).unwrap()),
        ["r1", "r2", "r3", "r4", "r5", "r6", "c7", "c8", "g9", "g10"]
    );
    // Pages that cross from one run's entries to another's.
    assert_eq!(
        payloads(&store.read_after(&grandchild, 5, 2).unwrap()),
        ["r6", "c7"]
    );
    assert_eq!(
        payloads(&store.read_after(&grandchild, 7, 2).unwrap()),
        ["c8", "g9"]
    );
    assert_eq!(
        payloads(&store.read_after(&grandchild, 4, 5).unwrap()),
        ["r5", "r6", "c7", "c8", "g9"]
    );
    let c = store
        .checkpoint_at_or_before(&grandchild, 10)
        .unwrap()
        .unwrap();
    assert_eq!((c.seq, c.state.as_slice()), (6, b"child@6".as_slice()));
    let c = store
        .checkpoint_at_or_before(&grandchild, 5)
        .unwrap()
        .unwrap();
    assert_eq!((c.seq, c.state.as_slice()), (4, b"root@4".as_slice()));
    assert_eq!(c.run, grandchild);

    // A fork at its parent's fork point, and one of a fork at its end.
    let twin = RunId::from("twin");
    store.fork(&child, 6, &twin).unwrap();
    assert_eq!(
        payloads(&store.read_after(&twin, 0, 100).unwrap()),
        ["r1", "r2", "r3", "r4", "r5", "r6"]
    );
    let great = RunId::from("great");
    store.fork(&grandchild, 10, &great).unwrap();
    store
        .append_blocking(&great, 10, vec![entry("x11")])
        .unwrap();
    assert_eq!(store.read_after(&great, 0, 100).unwrap().len(), 11);
    // A fork of an empty run at 0.
    let empty = RunId::from("empty");
    store.create_run(&empty, "h").unwrap();
    let info = store.fork(&empty, 0, &RunId::from("empty-fork")).unwrap();
    assert_eq!(info.graph_hash, "h");
    assert_eq!(store.last_seq(&RunId::from("empty-fork")).unwrap(), 0);
    assert_eq!(B::stored(&store), 17);

    assert!(matches!(
        store.fork(&root, 12, &RunId::from("late")),
        Err(Error::PastEnd {
            seq: 12,
            last: 11,
            ..
        })
    ));
    assert!(matches!(
        store.fork(&root, 1, &child),
        Err(Error::RunExists(_))
    ));
    assert!(matches!(
        store.fork(&RunId::from("nope"), 0, &RunId::from("orphan")),
        Err(Error::NoRun(_))
    ));
    assert_eq!(store.run_info(&RunId::from("late")).unwrap(), None);
}

fn leases_exclude_other_owners_until_expiry_or_release<B: Backend>() {
    let (_dir, store) = fresh::<B>();
    let run = RunId::from("r");
    store.create_run(&run, "g").unwrap();
    // Long enough that a loaded machine does not let it lapse between the
    // steps that expect it held.
    let ttl = Duration::from_secs(1);
    let lease = store.claim(&run, "host-a", ttl).unwrap();
    assert_eq!(lease.owner, "host-a");
    assert_eq!(lease.run, run);
    match store.claim(&run, "host-b", ttl) {
        Err(Error::Claimed {
            owner, expires_ms, ..
        }) => {
            assert_eq!(owner, "host-a");
            assert_eq!(expires_ms, lease.expires_ms);
        }
        other => panic!("expected the run to be claimed, got {other:?}"),
    }
    // The holder's claim renews it.
    let again = store.claim(&run, "host-a", ttl).unwrap();
    assert!(again.expires_ms >= lease.expires_ms);
    let renewed = store.renew(&run, "host-a", ttl).unwrap();
    assert!(renewed.expires_ms >= again.expires_ms);
    assert!(matches!(
        store.renew(&run, "host-b", ttl),
        Err(Error::NotHeld { .. })
    ));
    std::thread::sleep(ttl + Duration::from_millis(100));
    // Lapsed: another owner may claim it, and the first no longer renews.
    store.claim(&run, "host-b", ttl).unwrap();
    assert!(matches!(
        store.renew(&run, "host-a", ttl),
        Err(Error::NotHeld { .. })
    ));
    // A release by someone else does nothing; the holder's frees the run.
    store.release(&run, "host-a").unwrap();
    assert!(matches!(
        store.claim(&run, "host-a", ttl),
        Err(Error::Claimed { .. })
    ));
    store.release(&run, "host-b").unwrap();
    assert!(matches!(
        store.renew(&run, "host-b", ttl),
        Err(Error::NotHeld { .. })
    ));
    store.claim(&run, "host-a", ttl).unwrap();
    let nope = RunId::from("nope");
    assert!(matches!(
        store.claim(&nope, "host-a", ttl),
        Err(Error::NoRun(_))
    ));
    assert!(matches!(
        store.renew(&nope, "host-a", ttl),
        Err(Error::NotHeld { .. })
    ));
    store.release(&nope, "host-a").unwrap();
}

fn blobs_are_stored_once_by_content_hash<B: Backend>() {
    let (_dir, store) = fresh::<B>();
    let hash = store.put_blob(b"abc").unwrap();
    assert_eq!(
        hash,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(store.put_blob(b"abc").unwrap(), hash);
    let other = store.put_blob(&vec![7u8; 1 << 20]).unwrap();
    assert_ne!(other, hash);
    assert_eq!(store.get_blob(&hash).unwrap().unwrap(), b"abc");
    assert_eq!(store.get_blob(&other).unwrap().unwrap(), vec![7u8; 1 << 20]);
    assert_eq!(store.get_blob("00").unwrap(), None);
    assert!(store.has_blob(&hash).unwrap() && store.has_blob(&other).unwrap());
    assert!(!store.has_blob("00").unwrap());
    let empty = store.put_blob(b"").unwrap();
    assert_eq!(
        empty,
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(store.get_blob(&empty).unwrap().unwrap(), b"");
}

/// Steps a node call records come back for that call, attempt and index
/// only (and all of a run's in call, attempt and index order); recording an index again replaces it; they go with their
/// run when it is pruned.
fn call_steps_are_kept_per_call_and_attempt_and_pruned_with_their_run<B: Backend>() {
    let (_dir, store) = fresh::<B>();
    let run = RunId::from("r");
    store.create_run(&run, "g").unwrap();
    let step = |index: u32, result: &str| CallStep {
        index,
        kind: "model".into(),
        key: format!("k{index}"),
        result: result.as_bytes().to_vec(),
    };
    store
        .record_step(&run, "agent", 1, &step(1, "second"))
        .unwrap();
    store
        .record_step(&run, "agent", 1, &step(0, "first"))
        .unwrap();
    store
        .record_step(&run, "agent", 2, &step(0, "retry"))
        .unwrap();
    store
        .record_step(&run, "other", 1, &step(0, "elsewhere"))
        .unwrap();
    let get =
        |call: &str, attempt: u32, index: u32| store.call_step(&run, call, attempt, index).unwrap();
    assert_eq!(
        (get("agent", 1, 0), get("agent", 1, 1)),
        (Some(step(0, "first")), Some(step(1, "second")))
    );
    store
        .record_step(&run, "agent", 1, &step(1, "again"))
        .unwrap();
    assert_eq!(get("agent", 1, 1).unwrap().result, b"again");
    assert_eq!(get("agent", 2, 0), Some(step(0, "retry")));
    assert_eq!(get("agent", 2, 1), None);
    assert_eq!(get("agent", 3, 0), None);
    let all: Vec<(String, u32, u32)> = store
        .run_steps(&run)
        .unwrap()
        .into_iter()
        .map(|(call, attempt, step)| (call, attempt, step.index))
        .collect();
    assert_eq!(
        all,
        [
            ("agent".to_owned(), 1, 0),
            ("agent".to_owned(), 1, 1),
            ("agent".to_owned(), 2, 0),
            ("other".to_owned(), 1, 0)
        ]
    );
    assert!(matches!(
        store.record_step(&RunId::from("nobody"), "a", 1, &step(0, "x")),
        Err(Error::NoRun(_))
    ));
    store.set_status(&run, RunStatus::Done).unwrap();
    store.prune(u64::MAX).unwrap();
    assert!(store.run_steps(&run).unwrap().is_empty());
}

/// Prune deletes the runs that are over and old enough with what only
/// they use, keeps running runs and a parent whose entries a fork shares,
/// and frees that parent once its fork goes.
fn prune_deletes_old_finished_runs_and_what_only_they_use<B: Backend>() {
    let (_dir, store) = fresh::<B>();
    let graph = store.put_blob(b"the graph").unwrap();
    let big = store.put_blob(b"a large output").unwrap();
    let kept_blob = store.put_blob(b"still used").unwrap();
    for id in ["old", "parent", "live", "uses-kept"] {
        store.create_run(&RunId::from(id), &graph).unwrap();
    }
    let payload = |hash: &str| {
        NewEntry::new(
            "node.result",
            format!("{{\"blob\":\"{hash}\"}}").into_bytes(),
        )
    };
    store
        .append_blocking(&RunId::from("old"), 0, vec![payload(&big), entry("x")])
        .unwrap();
    store
        .append_blocking(&RunId::from("parent"), 0, vec![entry("p1"), entry("p2")])
        .unwrap();
    store
        .append_blocking(&RunId::from("uses-kept"), 0, vec![payload(&kept_blob)])
        .unwrap();
    store
        .write_checkpoint(&RunId::from("old"), 1, b"{}")
        .unwrap();
    store
        .fork(&RunId::from("parent"), 1, &RunId::from("fork"))
        .unwrap();
    for id in ["old", "parent", "fork"] {
        store.set_status(&RunId::from(id), RunStatus::Done).unwrap();
    }
    // Nothing is old enough before its time.
    let none = store.prune(0).unwrap();
    assert!(none.runs.is_empty() && none.blobs == 0, "{none:?}");
    std::thread::sleep(Duration::from_millis(5));
    let cutoff = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let pruned = store.prune(cutoff).unwrap();
    let mut ids: Vec<&str> = pruned.runs.iter().map(RunId::as_str).collect();
    // Newest first: the fork goes before its parent, which then goes too
    // (or, created in the same millisecond and listed first, waits for the
    // next prune, kept for its fork).
    assert!(ids.contains(&"fork") && ids.contains(&"old"), "{pruned:?}");
    let again = store.prune(cutoff).unwrap();
    ids.extend(again.runs.iter().map(RunId::as_str));
    ids.sort();
    assert_eq!(ids, ["fork", "old", "parent"]);
    assert!(store.run_info(&RunId::from("old")).unwrap().is_none());
    let gone = store.read_after(&RunId::from("old"), 0, 10);
    assert!(matches!(gone, Err(Error::NoRun(_))), "{gone:?}");
    let gone = store.checkpoint_at_or_before(&RunId::from("old"), 1);
    assert!(!matches!(gone, Ok(Some(_))), "{gone:?}");
    let live: Vec<String> = store
        .list_runs()
        .unwrap()
        .into_iter()
        .map(|r| String::from(r.id))
        .collect();
    assert_eq!(live.len(), 2, "{live:?}");
    assert_eq!(store.get_blob(&big).unwrap(), None, "only `old` used it");
    assert!(
        store.get_blob(&kept_blob).unwrap().is_some(),
        "a live run's entry names it"
    );
    assert!(
        store.get_blob(&graph).unwrap().is_some(),
        "live runs run this graph"
    );
}

/// A subscriber catches up from the store, follows live entries, and
/// after lagging behind a broadcast of two entries re-reads what it
/// missed: nothing lost, nothing twice.
fn subscription_catches_up_follows_and_recovers_from_lag<B: Backend>() {
    let dir = tempfile::tempdir().unwrap();
    let store = B::open(dir.path(), 2);
    let subscribe = |run: &RunId, after| {
        convergio_journal::subscribe(Arc::new(store.clone()), run.clone(), after)
    };
    block_on(async {
        let run = RunId::from("r");
        let other = RunId::from("other");
        store.create_run(&run, "g").unwrap();
        store.create_run(&other, "g").unwrap();
        store
            .append_blocking(&run, 0, (1..=300).map(|i| entry(&i.to_string())).collect())
            .unwrap();

        let mut sub = subscribe(&run, 0);
        let mut seen = Vec::new();
        // Catch-up (more than one page of the store).
        for _ in 0..300 {
            seen.push(next(&mut sub).await.seq);
        }
        // Lag: 50 entries of the run and others' entries while the
        // subscriber reads nothing; the broadcast keeps two.
        for i in 300..350u64 {
            store
                .append_blocking(&run, i, vec![entry(&(i + 1).to_string())])
                .unwrap();
            store
                .append_blocking(&other, i - 300, vec![entry("x")])
                .unwrap();
        }
        for _ in 0..50 {
            let e = next(&mut sub).await;
            assert_eq!(e.run, run);
            assert_eq!(String::from_utf8(e.payload).unwrap(), e.seq.to_string());
            seen.push(e.seq);
        }
        // Live: entries appended while the subscriber waits.
        let writer = {
            let store = store.clone();
            let run = run.clone();
            tokio::spawn(async move {
                for seq in 350..353 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    store
                        .append(&run, seq, vec![entry(&(seq + 1).to_string())])
                        .await
                        .unwrap();
                }
            })
        };
        for _ in 0..3 {
            let live = next(&mut sub).await;
            assert_eq!(
                String::from_utf8(live.payload).unwrap(),
                live.seq.to_string()
            );
            seen.push(live.seq);
        }
        writer.await.unwrap();
        assert_eq!(seen, (1..=353).collect::<Vec<_>>());
        assert_eq!(sub.last_seq(), 353);
        // Nothing more has committed.
        assert!(
            tokio::time::timeout(Duration::from_millis(200), sub.next())
                .await
                .is_err()
        );

        // A subscription from the middle of a fork, then live on the fork
        // while its parent goes on.
        let fork = RunId::from("fork");
        store.fork(&run, 10, &fork).unwrap();
        store
            .append_blocking(&fork, 10, vec![entry("f11")])
            .unwrap();
        let mut sub = subscribe(&fork, 8);
        let mut got = Vec::new();
        for _ in 0..3 {
            let e = next(&mut sub).await;
            assert_eq!(e.run, fork);
            got.push((e.seq, String::from_utf8(e.payload).unwrap()));
        }
        store
            .append_blocking(&run, 353, vec![entry("354")])
            .unwrap();
        store
            .append_blocking(&fork, 11, vec![entry("f12")])
            .unwrap();
        let e = next(&mut sub).await;
        got.push((e.seq, String::from_utf8(e.payload).unwrap()));
        assert_eq!(
            got,
            [
                (9, "9".into()),
                (10, "10".into()),
                (11, "f11".into()),
                (12, "f12".to_string())
            ]
        );
    });
}

// ---- SQLite only --------------------------------------------------------

/// A journal of the earlier schema (payload tables `WITHOUT ROWID`) is
/// converted when opened, its rows kept.
#[test]
fn a_journal_of_the_earlier_schema_is_converted_with_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE runs (id TEXT PRIMARY KEY, graph_hash TEXT NOT NULL, parent TEXT,
                 fork_seq INTEGER, status TEXT NOT NULL, created_ms INTEGER NOT NULL,
                 updated_ms INTEGER NOT NULL, last_seq INTEGER NOT NULL) STRICT;
             CREATE TABLE entries (run TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL,
                 call_id TEXT, payload BLOB NOT NULL, at_ms INTEGER NOT NULL,
                 PRIMARY KEY (run, seq)) STRICT, WITHOUT ROWID;
             CREATE TABLE checkpoints (run TEXT NOT NULL, seq INTEGER NOT NULL,
                 state BLOB NOT NULL, PRIMARY KEY (run, seq)) STRICT, WITHOUT ROWID;
             CREATE TABLE blobs (hash TEXT PRIMARY KEY, bytes BLOB NOT NULL) STRICT, WITHOUT ROWID;
             INSERT INTO runs VALUES ('r', 'g', NULL, NULL, 'done', 1, 1, 0);
             INSERT INTO entries VALUES ('r', 1, 'run.start', NULL, X'6131', 1);
             INSERT INTO entries VALUES ('r', 2, 'decision', NULL, X'6132', 1);
             INSERT INTO checkpoints VALUES ('r', 2, X'7b7d');
             INSERT INTO blobs VALUES ('h', X'00');",
        )
        .unwrap();
    }
    let store = store(dir.path(), Durability::Process);
    assert_eq!(
        payloads(&store.read_after(&RunId::from("r"), 0, 10).unwrap()),
        ["a1", "a2"]
    );
    assert_eq!(
        store
            .checkpoint_at_or_before(&RunId::from("r"), 5)
            .unwrap()
            .unwrap()
            .state,
        b"{}"
    );
    assert_eq!(store.get_blob("h").unwrap(), Some(vec![0]));
    // Keys stay unique, and the run goes on.
    store
        .append_blocking(&RunId::from("r"), 2, vec![entry("a3")])
        .unwrap();
    assert!(
        store
            .append_blocking(&RunId::from("r"), 2, vec![entry("x")])
            .is_err()
    );
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let without_rowid: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE sql LIKE '%WITHOUT ROWID%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(without_rowid, 0);
}

/// Sixteen tasks append to sixteen runs at once: the writer commits them
/// in batches (fewer commits than appends), and every entry is there, in
/// order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_batches_concurrent_appends() {
    const RUNS: usize = 16;
    const APPENDS: u64 = 40;
    let dir = tempfile::tempdir().unwrap();
    // `fsync` per commit: commits are slow, so appends pile up behind them.
    let store = store(dir.path(), Durability::Sync);
    let tasks: Vec<_> = (0..RUNS)
        .map(|r| {
            let store = store.clone();
            tokio::spawn(async move {
                let run = RunId::from(format!("run-{r}"));
                store.create_run(&run, "g").unwrap();
                for i in 0..APPENDS {
                    let last = store
                        .append(&run, i, vec![entry(&format!("{r}.{i}"))])
                        .await
                        .unwrap();
                    assert_eq!(last, i + 1);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let appends = RUNS as u64 * APPENDS;
    let commits = store.commits();
    assert!(
        commits < appends,
        "{commits} commits for {appends} appends: no group commit"
    );
    for r in 0..RUNS {
        let run = RunId::from(format!("run-{r}"));
        let entries = store.read_after(&run, 0, 1000).unwrap();
        assert_eq!(
            payloads(&entries),
            (0..APPENDS).map(|i| format!("{r}.{i}")).collect::<Vec<_>>()
        );
        assert_eq!(
            entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
            (1..=APPENDS).collect::<Vec<_>>()
        );
    }
    assert_eq!(store.stored_entries().unwrap(), appends);
}

/// A failing append in a batch leaves the others of the batch committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failing_append_does_not_fail_its_batch() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path(), Durability::Sync);
    let run = RunId::from("r");
    store.create_run(&run, "g").unwrap();
    // Many appends at once, half of them with a stale expected seq.
    let mut tasks = Vec::new();
    for i in 0..40u64 {
        let store = store.clone();
        let run = run.clone();
        tasks.push(tokio::spawn(async move {
            let other = RunId::from(format!("other-{i}"));
            store.create_run(&other, "g").unwrap();
            let good = store.append(&other, 0, vec![entry("ok")]);
            let bad = store.append(&run, 7, vec![entry("stale")]);
            let (good, bad) = tokio::join!(good, bad);
            (good.unwrap(), bad)
        }));
    }
    for t in tasks {
        let (good, bad) = t.await.unwrap();
        assert_eq!(good, 1);
        assert!(matches!(
            bad,
            Err(Error::Conflict {
                expected: 7,
                actual: 0,
                ..
            })
        ));
    }
    assert_eq!(store.last_seq(&run).unwrap(), 0);
    assert_eq!(store.stored_entries().unwrap(), 40);
    // The failing appends shared transactions with the good ones.
    assert!(
        store.commits() < 80,
        "{} commits for 80 appends",
        store.commits()
    );
}

/// A blob put twice is one row of the file.
#[test]
fn blobs_are_one_row_per_hash_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path(), Durability::Process);
    store.put_blob(b"abc").unwrap();
    store.put_blob(b"abc").unwrap();
    store.put_blob(&vec![7u8; 1 << 20]).unwrap();
    let conn = rusqlite::Connection::open(dir.path().join("runs.db")).unwrap();
    let rows: i64 = conn
        .query_row("SELECT COUNT(*) FROM blobs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 2);
}

// ---- the memory store only ----------------------------------------------

/// The memory store commits at the first poll of `append`: no thread to
/// wait for.
#[test]
fn memory_append_is_ready_at_its_first_poll() {
    let store = MemoryRunStore::new();
    let run = RunId::from("r");
    store.create_run(&run, "g").unwrap();
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    for seq in 0..3 {
        let mut append = store.append(&run, seq, vec![entry("a")]);
        match append.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(last) => assert_eq!(last.unwrap(), seq + 1),
            std::task::Poll::Pending => panic!("the append waited"),
        }
    }
    let mut stale = store.append(&run, 0, vec![entry("b")]);
    assert!(matches!(
        stale.as_mut().poll(&mut cx),
        std::task::Poll::Ready(Err(Error::Conflict { actual: 3, .. }))
    ));
    // A future never polled appends nothing.
    drop(store.append(&run, 3, vec![entry("never")]));
    assert_eq!(store.last_seq(&run).unwrap(), 3);
}

/// An append moves its payload into the store: the broadcast entry holds
/// the caller's buffer, and the stored one is the same `Arc`.
#[test]
fn memory_append_does_not_copy_the_payload() {
    let store = MemoryRunStore::new();
    let run = RunId::from("r");
    store.create_run(&run, "g").unwrap();
    let mut events = store.events();
    let payload = vec![1u8; 4096];
    let buffer = payload.as_ptr();
    store
        .append_blocking(&run, 0, vec![NewEntry::new("node.result", payload)])
        .unwrap();
    let broadcast = events.try_recv().unwrap();
    assert_eq!(broadcast.payload.as_ptr(), buffer);
    assert_eq!(broadcast.seq, 1);
    // The store and the broadcast share the entry; reads copy it.
    assert_eq!(Arc::strong_count(&broadcast), 2);
    let read = store.read_after(&run, 0, 1).unwrap();
    assert_eq!(read[0], *broadcast);
    assert_ne!(read[0].payload.as_ptr(), buffer);
}

/// A run of `n` entries of 1000 bytes each, finished with `status`
/// unless none.
fn memory_run(store: &MemoryRunStore, id: &str, n: usize, status: Option<RunStatus>) -> RunId {
    let run = RunId::from(id);
    store.create_run(&run, "g").unwrap();
    let entries = (0..n)
        .map(|_| NewEntry::new("node.result", vec![b'x'; 1000]))
        .collect();
    store.append_blocking(&run, 0, entries).unwrap();
    if let Some(status) = status {
        store.set_status(&run, status).unwrap();
    }
    run
}

/// The memory store is bounded: over its limit, the runs that finished
/// longest ago go first; a run still going, and a run a fork shares
/// entries with, stay.
#[test]
fn memory_drops_the_runs_that_finished_longest_ago_over_its_limit() {
    let store = MemoryRunStore::new().with_limit(20_000);
    let live = memory_run(&store, "live", 8, None);
    let parent = memory_run(&store, "parent", 4, None);
    let fork = RunId::from("fork");
    store.fork(&parent, 2, &fork).unwrap();
    store.set_status(&parent, RunStatus::Done).unwrap();
    let finished: Vec<RunId> = (0..6)
        .map(|i| memory_run(&store, &format!("done-{i}"), 3, Some(RunStatus::Done)))
        .collect();
    assert!(store.stored_bytes() <= 20_000, "{}", store.stored_bytes());
    // The newest finished runs are there, whole; the oldest are gone.
    assert!(store.run_info(&finished[0]).unwrap().is_none());
    let newest = &finished[5];
    assert_eq!(store.read_after(newest, 0, 100).unwrap().len(), 3);
    // Never a run still going, nor the parent of a fork (which reads its
    // entries through it).
    assert_eq!(store.last_seq(&live).unwrap(), 8);
    assert!(store.run_info(&parent).unwrap().is_some());
    assert_eq!(store.read_after(&fork, 0, 100).unwrap().len(), 2);
    // Once the fork is over and gone, the parent can go too.
    store.set_status(&fork, RunStatus::Failed).unwrap();
    for i in 6..12 {
        memory_run(&store, &format!("done-{i}"), 3, Some(RunStatus::Done));
    }
    assert!(store.run_info(&fork).unwrap().is_none());
    assert!(store.run_info(&parent).unwrap().is_none());
    assert_eq!(store.last_seq(&live).unwrap(), 8);
    // A limit below what live runs hold keeps them all the same.
    let store = store.with_limit(0);
    assert_eq!(store.list_runs().unwrap().len(), 1);
    assert!(store.stored_bytes() > 0);
}

// ---- choosing a store ---------------------------------------------------

#[test]
fn open_gives_memory_for_off_and_sqlite_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("off.db");
    let off = convergio_journal::open(&path, Durability::Off).unwrap();
    assert!(format!("{off:?}").starts_with("MemoryRunStore"), "{off:?}");
    off.create_run(&RunId::from("r"), "g").unwrap();
    assert!(!path.exists(), "durability off wrote {}", path.display());
    for (name, durability) in [
        ("sync.db", Durability::Sync),
        ("process.db", Durability::Process),
    ] {
        let path = dir.path().join(name);
        let store = convergio_journal::open(&path, durability).unwrap();
        assert!(
            format!("{store:?}").starts_with("SqliteRunStore"),
            "{store:?}"
        );
        store.create_run(&RunId::from("r"), "g").unwrap();
        assert!(path.exists());
        drop(store);
        // Reopened, the run is there.
        let store = convergio_journal::open(&path, durability).unwrap();
        assert_eq!(store.list_runs().unwrap().len(), 1);
    }
    // `open_with` passes the broadcast capacity on.
    let small = convergio_journal::open_with(
        &path,
        Options {
            durability: Durability::Off,
            broadcast_capacity: 1,
            ..Options::default()
        },
    )
    .unwrap();
    let run = RunId::from("r");
    small.create_run(&run, "g").unwrap();
    let mut events = small.events();
    small
        .append_blocking(&run, 0, vec![entry("a"), entry("b")])
        .unwrap();
    assert!(matches!(
        events.try_recv(),
        Err(tokio::sync::broadcast::error::TryRecvError::Lagged(1))
    ));
}

const KILL_DIR: &str = "CONVERGIO_JOURNAL_KILL_DIR";
/// Appends the child acknowledges before it is killed.
const KILL_AFTER: u64 = 300;

/// The writer half of `acknowledged_entries_survive_kill_9`, run in a
/// child process: four threads append to four runs in `Process` mode and
/// print each acknowledged seq until killed (or, never killed, for 60 s).
#[test]
#[ignore = "the child process of acknowledged_entries_survive_kill_9"]
fn kill_9_appender() {
    use std::io::Write;
    let dir = std::path::PathBuf::from(std::env::var_os(KILL_DIR).unwrap_or_else(|| {
        panic!("kill_9_appender is the child process of acknowledged_entries_survive_kill_9; run that test instead")
    }));
    let store = store(&dir, Durability::Process);
    // Every run exists before the first append, so the parent can read each
    // one however early the kill comes.
    for t in 0..4 {
        store
            .create_run(&RunId::from(format!("run-{t}")), "g")
            .unwrap();
    }
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                let run = RunId::from(format!("run-{t}"));
                let deadline = std::time::Instant::now() + Duration::from_secs(60);
                for seq in 1u64.. {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "the parent never killed this appender"
                    );
                    let payload = format!("{t}:{seq}:{}", "x".repeat(200));
                    let last = store
                        .append_blocking(&run, seq - 1, vec![entry(&payload)])
                        .unwrap();
                    assert_eq!(last, seq);
                    let mut stdout = std::io::stdout().lock();
                    writeln!(stdout, "acked {t} {seq}").unwrap();
                    stdout.flush().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn acknowledged_entries_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Child::spawn("kill_9_appender", &[(KILL_DIR, dir.path().as_os_str())]);
    let mut acked = [0u64; 4];
    let mut note = |line: &str| {
        if let Some(rest) = line.strip_prefix("acked ") {
            let (t, seq) = rest.split_once(' ').unwrap();
            let (t, seq) = (t.parse::<usize>().unwrap(), seq.parse::<u64>().unwrap());
            acked[t] = acked[t].max(seq);
            return 1;
        }
        0
    };
    let mut total = 0;
    while total < KILL_AFTER {
        total += note(&child.next_line(Duration::from_secs(30)));
    }
    // Appends acknowledged between the last read and the kill count too.
    for line in child.kill_9() {
        note(&line);
    }
    let store = store(dir.path(), Durability::Process);
    for (t, &last) in acked.iter().enumerate() {
        let run = RunId::from(format!("run-{t}"));
        let entries = store.read_after(&run, 0, 100_000).unwrap();
        assert!(
            entries.len() as u64 >= last,
            "run-{t}: {last} appends acknowledged, {} found",
            entries.len()
        );
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(e.seq, i as u64 + 1);
            assert_eq!(
                String::from_utf8(e.payload.clone()).unwrap(),
                format!("{t}:{}:{}", e.seq, "x".repeat(200))
            );
        }
        // The journal goes on where it stopped.
        let next = store.last_seq(&run).unwrap();
        assert_eq!(next, entries.len() as u64);
        store
            .append_blocking(&run, next, vec![entry("after")])
            .unwrap();
    }
}
