//! The journal on SQLite: appends with expected seq, group commit,
//! checkpoints, forks that share their parent's prefix, leases, blobs,
//! subscriptions, and acknowledged entries surviving `kill -9`.

// Test helpers outside #[test] functions may panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use convergio_journal::{
    Durability, Error, NewEntry, Options, RunId, RunStatus, RunStore, SqliteRunStore,
};

fn store(dir: &Path, durability: Durability) -> SqliteRunStore {
    SqliteRunStore::open(&dir.join("runs.db"), durability).unwrap()
}

fn entry(payload: &str) -> NewEntry {
    NewEntry::new("node.result", payload.as_bytes().to_vec())
}

/// The subscription's next entry, failing the test instead of hanging if
/// it never comes.
async fn next(sub: &mut convergio_journal::Subscription) -> convergio_journal::Entry {
    tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .expect("the subscription stalled")
        .unwrap()
        .expect("the subscription ended")
}

fn payloads(entries: &[convergio_journal::Entry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| String::from_utf8(e.payload.clone()).unwrap())
        .collect()
}

#[test]
fn append_read_and_expected_seq_conflict() {
    for durability in [Durability::Sync, Durability::Process, Durability::Off] {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path(), durability);
        let run = RunId::from("r");
        store.create_run(&run, "g").unwrap();
        assert!(matches!(
            store.create_run(&run, "g"),
            Err(Error::RunExists(_))
        ));
        assert_eq!(store.last_seq(&run).unwrap(), 0);
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
        assert_eq!(store.append_blocking(&run, 2, vec![entry("b")]).unwrap(), 3);
        let all = store.read_after(&run, 0, 100).unwrap();
        assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(payloads(&all), ["d", "a", "b"]);
        assert_eq!(all[0].kind, "decision");
        assert_eq!(all[1].call_id.as_deref(), Some("c1"));
        assert_eq!(all[0].call_id, None);
        assert!(all[0].at_ms > 0);
        assert_eq!(payloads(&store.read_after(&run, 1, 1).unwrap()), ["a"]);
        assert!(store.read_after(&run, 3, 10).unwrap().is_empty());
        assert!(matches!(
            store.append_blocking(&RunId::from("nope"), 0, vec![entry("x")]),
            Err(Error::NoRun(_))
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_append_and_status() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path(), Durability::Process);
    let run = RunId::from("r");
    store.create_run(&run, "g").unwrap();
    assert_eq!(store.append(&run, 0, vec![entry("a")]).await.unwrap(), 1);
    assert!(matches!(
        store.append(&run, 0, vec![entry("b")]).await,
        Err(Error::Conflict { actual: 1, .. })
    ));
    store.set_status(&run, RunStatus::Waiting).unwrap();
    let info = store.run_info(&run).unwrap().unwrap();
    assert_eq!(info.status, RunStatus::Waiting);
    assert_eq!(info.graph_hash, "g");
    assert_eq!(info.parent, None);
    store.create_run(&RunId::from("s"), "h").unwrap();
    let ids: Vec<_> = store
        .list_runs()
        .unwrap()
        .into_iter()
        .map(|r| r.id.0)
        .collect();
    assert_eq!(ids, ["r", "s"]);
    assert!(matches!(
        store.set_status(&RunId::from("nope"), RunStatus::Done),
        Err(Error::NoRun(_))
    ));
    assert_eq!(store.run_info(&RunId::from("nope")).unwrap(), None);
}

/// Eight writers race on one run, each appending after the last seq it
/// knows: every seq has exactly one winner, whose payload is stored.
#[test]
fn concurrent_appenders_on_one_run_one_winner_per_seq() {
    const SEQS: u64 = 60;
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path(), Durability::Process);
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
    let mut winners = std::collections::BTreeMap::new();
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
    assert_eq!(store.stored_entries().unwrap(), SEQS);
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
                let run = RunId(format!("run-{r}"));
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
        let run = RunId(format!("run-{r}"));
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
            let other = RunId(format!("other-{i}"));
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

#[test]
fn checkpoints_at_or_before_a_seq() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path(), Durability::Process);
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
}

#[test]
fn forks_share_the_prefix_and_forks_of_forks_work() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path(), Durability::Process);
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
    assert_eq!(store.last_seq(&child).unwrap(), 6);
    // Nothing was copied.
    assert_eq!(store.stored_entries().unwrap(), 10);
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
    assert_eq!(store.stored_entries().unwrap(), 13);
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
    // The parent goes on; the fork does not see it.
    store
        .append_blocking(&root, 10, vec![entry("r11")])
        .unwrap();
    assert_eq!(store.read_after(&child, 8, 100).unwrap().len(), 1);
    // The parent's checkpoint is the fork's up to the fork point.
    let c = store.checkpoint_at_or_before(&child, 9).unwrap().unwrap();
    assert_eq!((c.seq, c.state.as_slice()), (4, b"root@4".as_slice()));
    store.write_checkpoint(&child, 6, b"child@6").unwrap();
    assert!(matches!(
        store.write_checkpoint(&child, 5, b"x"),
        Err(Error::BeforeFork { fork_seq: 6, .. })
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
    store.fork(&child, 8, &grandchild).unwrap();
    store
        .append_blocking(&grandchild, 8, vec![entry("g9"), entry("g10")])
        .unwrap();
    assert_eq!(store.stored_entries().unwrap(), 16);
    assert_eq!(
        payloads(&store.read_after(&grandchild, 0, 100).unwrap()),
        ["r1", "r2", "r3", "r4", "r5", "r6", "c7", "c8", "g9", "g10"]
    );
    // Pages that cross from one run's rows to another's.
    assert_eq!(
        payloads(&store.read_after(&grandchild, 5, 2).unwrap()),
        ["r6", "c7"]
    );
    assert_eq!(
        payloads(&store.read_after(&grandchild, 7, 2).unwrap()),
        ["c8", "g9"]
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
}

#[test]
fn leases_exclude_other_owners_until_expiry_or_release() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path(), Durability::Process);
    let run = RunId::from("r");
    store.create_run(&run, "g").unwrap();
    // Long enough that a loaded machine does not let it lapse between the
    // steps that expect it held.
    let ttl = Duration::from_secs(1);
    let lease = store.claim(&run, "host-a", ttl).unwrap();
    assert_eq!(lease.owner, "host-a");
    match store.claim(&run, "host-b", ttl) {
        Err(Error::Claimed { owner, .. }) => assert_eq!(owner, "host-a"),
        other => panic!("expected the run to be claimed, got {other:?}"),
    }
    let renewed = store.renew(&run, "host-a", ttl).unwrap();
    assert!(renewed.expires_ms >= lease.expires_ms);
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
    store.claim(&run, "host-a", ttl).unwrap();
    assert!(matches!(
        store.claim(&RunId::from("nope"), "host-a", ttl),
        Err(Error::NoRun(_))
    ));
}

#[test]
fn blobs_are_stored_once_by_content_hash() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path(), Durability::Process);
    let hash = store.put_blob(b"abc").unwrap();
    assert_eq!(
        hash,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(store.put_blob(b"abc").unwrap(), hash);
    let other = store.put_blob(&vec![7u8; 1 << 20]).unwrap();
    assert_ne!(other, hash);
    assert_eq!(store.get_blob(&hash).unwrap().unwrap(), b"abc");
    assert_eq!(store.get_blob(&other).unwrap().unwrap().len(), 1 << 20);
    assert_eq!(store.get_blob("00").unwrap(), None);
    let conn = rusqlite::Connection::open(dir.path().join("runs.db")).unwrap();
    let rows: i64 = conn
        .query_row("SELECT COUNT(*) FROM blobs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 2);
}

/// A subscriber catches up from the table, follows live entries, and
/// after lagging behind a broadcast of two entries re-reads what it
/// missed: nothing lost, nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_catches_up_follows_and_recovers_from_lag() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteRunStore::open_with(
        &dir.path().join("runs.db"),
        Options {
            broadcast_capacity: 2,
            ..Options::default()
        },
    )
    .unwrap();
    let run = RunId::from("r");
    let other = RunId::from("other");
    store.create_run(&run, "g").unwrap();
    store.create_run(&other, "g").unwrap();
    store
        .append_blocking(&run, 0, (1..=300).map(|i| entry(&i.to_string())).collect())
        .unwrap();

    let mut sub = store.subscribe(run.clone(), 0);
    let mut seen = Vec::new();
    // Catch-up (more than one page of the table).
    for _ in 0..300 {
        seen.push(next(&mut sub).await.seq);
    }
    // Lag: 50 entries of the run and others' entries while the subscriber
    // reads nothing; the broadcast keeps two.
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
    // Live: an entry appended while the subscriber waits.
    let writer = {
        let store = store.clone();
        let run = run.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            store.append(&run, 350, vec![entry("351")]).await.unwrap();
        })
    };
    let live = next(&mut sub).await;
    seen.push(live.seq);
    writer.await.unwrap();
    assert_eq!(seen, (1..=351).collect::<Vec<_>>());
    assert_eq!(sub.last_seq(), 351);
    // Nothing more has committed.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), sub.next())
            .await
            .is_err()
    );

    // A subscription from the middle of a fork.
    let fork = RunId::from("fork");
    store.fork(&run, 10, &fork).unwrap();
    store
        .append_blocking(&fork, 10, vec![entry("f11")])
        .unwrap();
    let mut sub = store.subscribe(fork.clone(), 8);
    let got: Vec<_> = [
        next(&mut sub).await,
        next(&mut sub).await,
        next(&mut sub).await,
    ]
    .into_iter()
    .map(|e| (e.seq, String::from_utf8(e.payload).unwrap()))
    .collect();
    assert_eq!(
        got,
        [(9, "9".into()), (10, "10".into()), (11, "f11".to_string())]
    );
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
        store.create_run(&RunId(format!("run-{t}")), "g").unwrap();
    }
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                let run = RunId(format!("run-{t}"));
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
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "kill_9_appender",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(KILL_DIR, dir.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    // Read on a thread, so an appender that stalls fails the test instead
    // of hanging it.
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.strip_prefix("acked ") {
                let (t, seq) = rest.split_once(' ').unwrap();
                if tx
                    .send((t.parse::<usize>().unwrap(), seq.parse::<u64>().unwrap()))
                    .is_err()
                {
                    break;
                }
            }
        }
    });
    let mut acked = [0u64; 4];
    let mut total = 0;
    while total < KILL_AFTER {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok((t, seq)) => {
                acked[t] = acked[t].max(seq);
                total += 1;
            }
            Err(e) => {
                let _ = child.kill();
                let status = child.wait().unwrap();
                panic!(
                    "the appender stopped after {total} acknowledged appends ({e}); it exited with {status}"
                );
            }
        }
    }
    child.kill().unwrap(); // SIGKILL: no destructor, no flush, no checkpoint
    let status = child.wait().unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.signal(),
            Some(9),
            "the appender was not killed: {status}"
        );
    }
    reader.join().unwrap();
    // Appends acknowledged between the last read and the kill count too.
    for (t, seq) in rx.try_iter() {
        acked[t] = acked[t].max(seq);
    }
    let store = store(dir.path(), Durability::Process);
    for (t, &last) in acked.iter().enumerate() {
        let run = RunId(format!("run-{t}"));
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
