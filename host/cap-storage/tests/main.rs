//! The storage capability's backend on real SQLite files: operations,
//! quotas, grants, concurrency and durability across `kill -9`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use convergio_cap_storage::{
    Backend, BucketGrant, CounterRange, Error, Quota, QuotaKind, ReadLimit, SqliteBackend,
    StoragePolicy, Swap, Usage,
};

const SIGNED: CounterRange = CounterRange::Signed;

fn db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("storage.db");
    (dir, path)
}

fn quota(max_keys: Option<u64>, max_bytes: Option<u64>) -> Quota {
    Quota {
        max_keys,
        max_bytes,
    }
}

const NONE: Quota = Quota::UNLIMITED;

fn all_keys(backend: &dyn Backend, bucket: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut cursor = None;
    loop {
        let page = backend.list_keys(bucket, cursor).unwrap();
        keys.extend(page.keys);
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    keys.sort();
    keys
}

// ---------------------------------------------------------------- operations

#[test]
fn single_key_operations() {
    let (_dir, path) = db();
    let kv = SqliteBackend::open(&path).unwrap();
    assert_eq!(kv.path(), path);

    assert_eq!(kv.get("b", "k").unwrap(), None);
    assert!(!kv.exists("b", "k").unwrap());
    kv.set("b", "k", b"one", NONE).unwrap();
    assert_eq!(kv.get("b", "k").unwrap().as_deref(), Some(&b"one"[..]));
    assert!(kv.exists("b", "k").unwrap());
    kv.set("b", "k", b"two", NONE).unwrap();
    assert_eq!(kv.get("b", "k").unwrap().as_deref(), Some(&b"two"[..]));

    // Values are bytes: empty, binary, NUL.
    kv.set("b", "empty", b"", NONE).unwrap();
    assert_eq!(kv.get("b", "empty").unwrap(), Some(vec![]));
    let binary: Vec<u8> = (0..=255).collect();
    kv.set("b", "bin", &binary, NONE).unwrap();
    assert_eq!(kv.get("b", "bin").unwrap(), Some(binary));
    // Keys are any string.
    kv.set("b", "", b"empty key", NONE).unwrap();
    kv.set("b", "ключ/🔑 %_'\"", b"x", NONE).unwrap();
    assert_eq!(kv.get("b", "ключ/🔑 %_'\"").unwrap(), Some(b"x".to_vec()));

    kv.delete("b", "k").unwrap();
    kv.delete("b", "k").unwrap(); // deleting a missing key is fine
    assert_eq!(kv.get("b", "k").unwrap(), None);
    assert_eq!(all_keys(&kv, "b"), ["", "bin", "empty", "ключ/🔑 %_'\""]);
}

#[test]
fn buckets_are_separate() {
    let (_dir, path) = db();
    let kv = SqliteBackend::open(&path).unwrap();
    kv.set("a", "k", b"in a", NONE).unwrap();
    kv.set("b", "k", b"in b", NONE).unwrap();
    assert_eq!(kv.get("a", "k").unwrap(), Some(b"in a".to_vec()));
    assert_eq!(kv.get("b", "k").unwrap(), Some(b"in b".to_vec()));
    kv.delete("a", "k").unwrap();
    assert!(kv.exists("b", "k").unwrap());
    assert_eq!(all_keys(&kv, "a"), Vec::<String>::new());
    assert_eq!(kv.usage("a").unwrap(), Usage::default());
    assert_eq!(kv.usage("b").unwrap(), Usage { keys: 1, bytes: 5 });
}

#[test]
fn batch_operations() {
    let (_dir, path) = db();
    let kv = SqliteBackend::open(&path).unwrap();
    let entries: Vec<(String, Vec<u8>)> = (0..50)
        .map(|i| (format!("k{i}"), format!("v{i}").into_bytes()))
        .collect();
    kv.set_many("b", &entries, NONE).unwrap();
    let got = kv
        .get_many(
            "b",
            &["k3".into(), "missing".into(), "k49".into(), "k3".into()],
            ReadLimit::NONE,
        )
        .unwrap();
    assert_eq!(
        got,
        vec![
            Some(b"v3".to_vec()),
            None,
            Some(b"v49".to_vec()),
            Some(b"v3".to_vec())
        ]
    );
    kv.delete_many("b", &["k0".into(), "k1".into(), "never".into()])
        .unwrap();
    assert_eq!(all_keys(&kv, "b").len(), 48);
    assert!(!kv.exists("b", "k0").unwrap());
    assert_eq!(
        kv.get_many("b", &[], ReadLimit::NONE).unwrap(),
        Vec::<Option<Vec<u8>>>::new()
    );
    kv.set_many("b", &[], NONE).unwrap();
    kv.delete_many("b", &[]).unwrap();
}

#[test]
fn listing_pages_cover_every_key_once() {
    let (_dir, path) = db();
    let kv = SqliteBackend::open(&path).unwrap();
    let entries: Vec<(String, Vec<u8>)> =
        (0..2345).map(|i| (format!("key-{i}"), vec![1])).collect();
    kv.set_many("b", &entries, NONE).unwrap();
    kv.set("other", "key-0", b"not listed", NONE).unwrap();

    // Writes between pages: a key deleted and re-added ends up later in the
    // listing, a new key may or may not be listed, but no key that exists
    // throughout is skipped or repeated.
    let mut listed = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = kv.list_keys("b", cursor).unwrap();
        listed.extend(page.keys);
        pages += 1;
        if pages == 1 {
            kv.delete("b", "key-2000").unwrap();
            kv.set("b", "new-key", b"", NONE).unwrap();
        }
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert!(pages >= 3, "{pages} pages");
    let mut want: Vec<String> = entries.into_iter().map(|(k, _)| k).collect();
    want.retain(|k| k != "key-2000");
    want.push("new-key".into());
    listed.sort();
    want.sort();
    assert_eq!(listed, want);
}

#[test]
fn counters() {
    let (_dir, path) = db();
    let kv = SqliteBackend::open(&path).unwrap();
    assert_eq!(kv.increment("b", "n", 5, SIGNED, NONE).unwrap(), 5);
    assert_eq!(kv.increment("b", "n", 0, SIGNED, NONE).unwrap(), 5);
    assert_eq!(kv.increment("b", "n", 37, SIGNED, NONE).unwrap(), 42);
    // A counter is a decimal i64 in ASCII, readable and writable with get/set.
    assert_eq!(kv.get("b", "n").unwrap(), Some(b"42".to_vec()));
    kv.set("b", "n", b"99", NONE).unwrap();
    assert_eq!(kv.increment("b", "n", 1, SIGNED, NONE).unwrap(), 100);
    assert_eq!(kv.increment("b", "n", -150, SIGNED, NONE).unwrap(), -50);
    assert_eq!(kv.get("b", "n").unwrap(), Some(b"-50".to_vec()));

    kv.set("b", "text", b"12abc", NONE).unwrap();
    let err = kv.increment("b", "text", 1, SIGNED, NONE).unwrap_err();
    assert!(
        matches!(&err, Error::NotACounter { bucket, key } if bucket == "b" && key == "text"),
        "{err}"
    );
    assert_eq!(kv.get("b", "text").unwrap(), Some(b"12abc".to_vec()));

    kv.set("b", "max", i64::MAX.to_string().as_bytes(), NONE)
        .unwrap();
    let err = kv.increment("b", "max", 1, SIGNED, NONE).unwrap_err();
    assert!(matches!(err, Error::OutOfRange { delta: 1, .. }), "{err}");
    assert_eq!(kv.increment("b", "max", 0, SIGNED, NONE).unwrap(), i64::MAX);

    // The non-negative range refuses to go below zero, and writes nothing.
    let err = kv
        .increment("b", "n", 10, CounterRange::NonNegative, NONE)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::OutOfRange {
                current: -50,
                delta: 10,
                range: CounterRange::NonNegative,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(kv.get("b", "n").unwrap(), Some(b"-50".to_vec()));
    assert_eq!(
        kv.increment("b", "n", 50, CounterRange::NonNegative, NONE)
            .unwrap(),
        0
    );
}

#[test]
fn compare_and_swap() {
    let (_dir, path) = db();
    let kv = SqliteBackend::open(&path).unwrap();
    // Missing, expected missing: created.
    assert_eq!(
        kv.compare_and_swap("b", "k", None, b"1", NONE).unwrap(),
        Swap::Done
    );
    // Missing expected, but it exists: the current value comes back.
    assert_eq!(
        kv.compare_and_swap("b", "k", None, b"2", NONE).unwrap(),
        Swap::Changed(Some(b"1".to_vec()))
    );
    assert_eq!(
        kv.compare_and_swap("b", "k", Some(b"1"), b"2", NONE)
            .unwrap(),
        Swap::Done
    );
    assert_eq!(
        kv.compare_and_swap("b", "k", Some(b"1"), b"3", NONE)
            .unwrap(),
        Swap::Changed(Some(b"2".to_vec()))
    );
    assert_eq!(kv.get("b", "k").unwrap(), Some(b"2".to_vec()));
    kv.delete("b", "k").unwrap();
    assert_eq!(
        kv.compare_and_swap("b", "k", Some(b"2"), b"3", NONE)
            .unwrap(),
        Swap::Changed(None)
    );
    assert_eq!(kv.get("b", "k").unwrap(), None);
    // Buckets are separate: the same key elsewhere is another value.
    assert_eq!(
        kv.compare_and_swap("c", "k", None, b"x", NONE).unwrap(),
        Swap::Done
    );
    // A swap past a quota fails and writes nothing.
    let q = Quota {
        max_keys: Some(1),
        max_bytes: None,
    };
    let err = kv.compare_and_swap("c", "k2", None, b"y", q).unwrap_err();
    assert!(
        matches!(
            err,
            Error::QuotaExceeded {
                kind: QuotaKind::Keys,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(kv.get("c", "k2").unwrap(), None);
}

/// Hosts that start together open one new database at the same moment,
/// while the first ones already write: each sets WAL mode and checks the
/// schema, and every one succeeds.
#[test]
fn many_connections_open_a_new_database_at_once() {
    let (threads, writes) = (8, 20);
    for _ in 0..5 {
        let (_dir, path) = db();
        let start = std::sync::Barrier::new(threads);
        thread::scope(|scope| {
            for i in 0..threads {
                let (path, start) = (&path, &start);
                scope.spawn(move || {
                    start.wait();
                    let kv = SqliteBackend::open(path).unwrap();
                    for n in 0..writes {
                        kv.set("b", &format!("k{i}-{n}"), b"v", NONE).unwrap();
                    }
                });
            }
        });
        let kv = SqliteBackend::open(&path).unwrap();
        assert_eq!(
            kv.list_keys("b", None).unwrap().keys.len(),
            threads * writes
        );
    }
}

/// Read-modify-write loops on two connections to the same file (as two
/// hosts would have): every update lands, none is lost.
#[test]
fn concurrent_swappers_lose_no_update() {
    let (_dir, path) = db();
    let (writers, rounds) = (4, 50);
    let conflicts: usize = thread::scope(|scope| {
        let handles: Vec<_> = (0..writers)
            .map(|_| {
                let path = &path;
                scope.spawn(move || {
                    let kv = SqliteBackend::open(path).unwrap();
                    let mut conflicts = 0;
                    for _ in 0..rounds {
                        let mut seen = kv.get("b", "list").unwrap();
                        loop {
                            let mut next = seen.clone().unwrap_or_default();
                            next.push(b'x');
                            match kv
                                .compare_and_swap("b", "list", seen.as_deref(), &next, NONE)
                                .unwrap()
                            {
                                Swap::Done => break,
                                Swap::Changed(now) => {
                                    conflicts += 1;
                                    seen = now;
                                }
                            }
                        }
                    }
                    conflicts
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    let value = SqliteBackend::open(&path)
        .unwrap()
        .get("b", "list")
        .unwrap()
        .unwrap();
    assert_eq!(value.len(), writers * rounds, "{conflicts} conflicts");
}

#[test]
fn data_survives_reopening() {
    let (_dir, path) = db();
    {
        let kv = SqliteBackend::open(&path).unwrap();
        kv.set("b", "k", b"kept", NONE).unwrap();
        kv.increment("b", "n", 3, SIGNED, NONE).unwrap();
    }
    let kv = SqliteBackend::open(&path).unwrap();
    assert_eq!(kv.get("b", "k").unwrap(), Some(b"kept".to_vec()));
    assert_eq!(kv.increment("b", "n", 1, SIGNED, NONE).unwrap(), 4);
}

#[test]
fn open_creates_missing_folders_and_reports_bad_paths() {
    let dir = tempfile::tempdir().unwrap();
    SqliteBackend::open(dir.path().join("a/b/c/storage.db")).unwrap();
    // A folder where the file should be.
    let err = SqliteBackend::open(dir.path()).unwrap_err();
    assert!(matches!(err, Error::Open { .. }), "{err}");
    assert!(err.to_string().contains(&dir.path().display().to_string()));
    // A file where a folder should be.
    std::fs::write(dir.path().join("file"), b"").unwrap();
    let err = SqliteBackend::open(dir.path().join("file/storage.db")).unwrap_err();
    assert!(matches!(err, Error::CreateDir { .. }), "{err}");
}

// ------------------------------------------------------------------- quotas

#[test]
fn max_keys_is_enforced_on_every_write() {
    let (_dir, path) = db();
    let kv = SqliteBackend::open(&path).unwrap();
    let q = quota(Some(3), None);
    kv.set("b", "a", b"1", q).unwrap();
    kv.set("b", "b", b"1", q).unwrap();
    kv.increment("b", "c", 1, SIGNED, q).unwrap();

    let err = kv.set("b", "d", b"1", q).unwrap_err();
    assert!(
        matches!(
            &err,
            Error::QuotaExceeded { bucket, kind: QuotaKind::Keys, limit: 3, usage: 3, after: 4 }
                if bucket == "b"
        ),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains("bucket `b` is full: its max-keys quota is 3 keys, it holds 3"),
        "{message}"
    );
    assert!(matches!(
        kv.increment("b", "d", 1, SIGNED, q),
        Err(Error::QuotaExceeded {
            kind: QuotaKind::Keys,
            ..
        })
    ));
    assert!(matches!(
        kv.set_many("b", &[("d".into(), vec![])], q),
        Err(Error::QuotaExceeded {
            kind: QuotaKind::Keys,
            ..
        })
    ));
    assert!(!kv.exists("b", "d").unwrap());

    // Overwrites and increments of existing keys do not add keys.
    kv.set("b", "a", b"2", q).unwrap();
    kv.increment("b", "c", 1, SIGNED, q).unwrap();
    kv.set_many("b", &[("a".into(), b"3".to_vec()), ("b".into(), vec![])], q)
        .unwrap();
    // Deleting makes room.
    kv.delete("b", "a").unwrap();
    kv.set("b", "d", b"1", q).unwrap();
    // Other buckets are not counted.
    kv.set("other", "x", b"1", q).unwrap();
    assert_eq!(kv.usage("b").unwrap().keys, 3);
}

#[test]
fn max_bytes_counts_keys_and_values() {
    let (_dir, path) = db();
    let kv = SqliteBackend::open(&path).unwrap();
    let q = quota(None, Some(20));
    kv.set("b", "key1", &[0; 6], q).unwrap(); // 10 bytes
    kv.set("b", "key2", &[0; 6], q).unwrap(); // 20 bytes
    let err = kv.set("b", "k", b"", q).unwrap_err(); // 21
    assert!(
        matches!(
            err,
            Error::QuotaExceeded {
                kind: QuotaKind::Bytes,
                limit: 20,
                usage: 20,
                after: 21,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("max-bytes quota is 20 bytes"),
        "{err}"
    );
    // Replacing a value with one of the same size is fine, a larger one is not.
    kv.set("b", "key1", &[1; 6], q).unwrap();
    assert!(kv.set("b", "key1", &[1; 7], q).is_err());
    assert_eq!(kv.get("b", "key1").unwrap(), Some(vec![1; 6]));

    // A counter that gains a digit needs a byte.
    kv.delete("b", "key2").unwrap();
    kv.set("b", "n", b"99999999", q).unwrap(); // 10 + 9 = 19
    assert_eq!(kv.increment("b", "n", 1, SIGNED, q).unwrap(), 100_000_000); // 10 + 10 = 20
    let err = kv.increment("b", "n", 900_000_000, SIGNED, q).unwrap_err(); // 10 + 11 = 21
    assert!(
        matches!(
            err,
            Error::QuotaExceeded {
                kind: QuotaKind::Bytes,
                usage: 20,
                after: 21,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(kv.get("b", "n").unwrap(), Some(b"100000000".to_vec()));
}

#[test]
fn a_batch_over_quota_writes_nothing() {
    let (_dir, path) = db();
    let kv = SqliteBackend::open(&path).unwrap();
    let q = quota(Some(5), Some(1000));
    kv.set("b", "existing", b"old", q).unwrap();
    let batch: Vec<(String, Vec<u8>)> = (0..10).map(|i| (format!("k{i}"), vec![])).collect();
    let err = kv.set_many("b", &batch, q).unwrap_err();
    assert!(
        matches!(
            err,
            Error::QuotaExceeded {
                kind: QuotaKind::Keys,
                usage: 1,
                after: 6,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(all_keys(&kv, "b"), ["existing"]);

    let batch = vec![
        ("existing".to_string(), b"new".to_vec()),
        ("huge".to_string(), vec![0; 2000]),
    ];
    assert!(matches!(
        kv.set_many("b", &batch, q),
        Err(Error::QuotaExceeded {
            kind: QuotaKind::Bytes,
            ..
        })
    ));
    assert_eq!(kv.get("b", "existing").unwrap(), Some(b"old".to_vec()));
}

// ------------------------------------------------------------------- grants

#[test]
fn ungranted_bucket_is_denied_with_the_fix() {
    let policy = StoragePolicy::new(vec![
        BucketGrant::new("notes").with_max_keys(10),
        BucketGrant::new("cache").with_max_bytes(1 << 20),
    ]);
    assert_eq!(
        policy.authorize("tutor", "notes").unwrap(),
        quota(Some(10), None)
    );
    let err = policy.authorize("tutor", "billing").unwrap_err();
    assert!(
        matches!(&err, Error::AccessDenied { plugin, bucket } if plugin == "tutor" && bucket == "billing")
    );
    assert_eq!(
        err.to_string(),
        "plugin `tutor` may not open bucket `billing`; grant it in platform.toml: storage = [\"billing\"] under [plugin.grants]"
    );
    assert!(
        StoragePolicy::default()
            .authorize("tutor", "notes")
            .is_err()
    );
}

// -------------------------------------------------------------- concurrency

#[test]
fn concurrent_increments_are_exact() {
    let (_dir, path) = db();
    // Two backends (two connections, as two hosts on one file would have),
    // each shared by several threads.
    let backends = [
        Arc::new(SqliteBackend::open(&path).unwrap()),
        Arc::new(SqliteBackend::open(&path).unwrap()),
    ];
    const THREADS_PER_BACKEND: i64 = 3;
    const INCREMENTS: i64 = 40;
    let threads: Vec<_> = backends
        .iter()
        .flat_map(|kv| (0..THREADS_PER_BACKEND).map(move |t| (Arc::clone(kv), t)))
        .map(|(kv, t)| {
            thread::spawn(move || {
                for _ in 0..INCREMENTS {
                    kv.increment("b", "counter", t + 1, SIGNED, NONE).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let per_backend: i64 = (1..=THREADS_PER_BACKEND).sum::<i64>() * INCREMENTS;
    assert_eq!(
        backends[0]
            .increment("b", "counter", 0, SIGNED, NONE)
            .unwrap(),
        2 * per_backend
    );
}

#[test]
fn concurrent_writers_cannot_overrun_a_quota() {
    let (_dir, path) = db();
    let backends = [
        Arc::new(SqliteBackend::open(&path).unwrap()),
        Arc::new(SqliteBackend::open(&path).unwrap()),
    ];
    let q = quota(Some(25), None);
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let kv = Arc::clone(&backends[t % 2]);
            thread::spawn(move || {
                (0..10)
                    .filter(|i| kv.set("b", &format!("t{t}-{i}"), b"", q).is_err())
                    .count()
            })
        })
        .collect();
    let refused: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(refused, 60 - 25);
    assert_eq!(backends[1].usage("b").unwrap().keys, 25);
}

// --------------------------------------------------------------- durability

const CHILD_DB: &str = "CONVERGIO_STORAGE_TEST_CHILD_DB";
const CHILD_START: &str = "CONVERGIO_STORAGE_TEST_CHILD_START";
const ACK: &str = "convergio-storage-ack:";

fn value_of(i: u64) -> Vec<u8> {
    format!("value {i} ").repeat(8).into_bytes()
}

/// The writer that `acknowledged_writes_survive_kill_9` starts and kills:
/// writes keys one by one and reports each write that returned `Ok`.
#[test]
#[ignore = "child process of acknowledged_writes_survive_kill_9"]
fn durability_child() {
    let path = std::env::var(CHILD_DB).unwrap_or_else(|_| {
        panic!("durability_child is the child process of acknowledged_writes_survive_kill_9; run that test instead")
    });
    let start: u64 = std::env::var(CHILD_START).unwrap().parse().unwrap();
    let kv = SqliteBackend::open(path).unwrap();
    let mut out = std::io::stdout().lock();
    let deadline = Instant::now() + Duration::from_secs(60);
    // Bounded in count and time: the child stops by itself if never killed.
    for i in start..start + 100_000 {
        if Instant::now() > deadline {
            break;
        }
        if i % 10 == 0 {
            let batch: Vec<(String, Vec<u8>)> = (0..5)
                .map(|j| (format!("batch-{i}-{j}"), value_of(i + j)))
                .collect();
            kv.set_many("durable", &batch, NONE).unwrap();
            writeln!(out, "{ACK}batch {i}").unwrap();
        }
        kv.set("durable", &format!("key-{i}"), &value_of(i), NONE)
            .unwrap();
        kv.increment("durable", "counter", 1, SIGNED, NONE).unwrap();
        writeln!(out, "{ACK}key {i}").unwrap();
        out.flush().unwrap();
    }
}

/// Start the writer, let it acknowledge `kill_after` writes, SIGKILL it and
/// return every write it acknowledged (including lines still in the pipe).
fn run_and_kill(path: &Path, start: u64, kill_after: usize) -> Vec<String> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["durability_child", "--exact", "--ignored", "--nocapture"])
        .args(["--test-threads", "1"])
        .env(CHILD_DB, path)
        .env(CHILD_START, start.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(at) = line.find(ACK) {
                let ack = line[at + ACK.len()..].to_string();
                if tx.send(ack).is_err() {
                    break;
                }
            }
        }
    });
    let mut acks = Vec::new();
    while acks.len() < kill_after {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(ack) => acks.push(ack),
            Err(e) => {
                let _ = child.kill();
                panic!("writer stopped after {} acks: {e}", acks.len());
            }
        }
    }
    child.kill().unwrap(); // SIGKILL on Unix: no destructors, no flush, no checkpoint
    let status = child.wait().unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "writer was not killed: {status}");
    }
    #[cfg(not(unix))]
    assert!(!status.success());
    reader.join().unwrap();
    acks.extend(rx.try_iter());
    acks
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let (_dir, path) = db();
    let mut acked: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut counted = 0i64;
    // Three crashes in a row, each recovering the previous one's log.
    for (round, kill_after) in [(0u64, 40), (1, 130), (2, 75)] {
        let acks = run_and_kill(&path, round * 1_000_000, kill_after);
        assert!(acks.len() >= kill_after);
        for ack in acks {
            match ack.split_once(' ') {
                Some(("key", i)) => {
                    let i: u64 = i.parse().unwrap();
                    acked.insert(format!("key-{i}"), value_of(i));
                    counted += 1;
                }
                Some(("batch", i)) => {
                    let i: u64 = i.parse().unwrap();
                    for j in 0..5 {
                        acked.insert(format!("batch-{i}-{j}"), value_of(i + j));
                    }
                }
                _ => panic!("unexpected ack `{ack}`"),
            }
        }

        let conn = rusqlite::Connection::open(&path).unwrap();
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
        drop(conn);

        let kv = SqliteBackend::open(&path).unwrap();
        let keys: Vec<String> = acked.keys().cloned().collect();
        let values = kv.get_many("durable", &keys, ReadLimit::NONE).unwrap();
        for ((key, want), got) in acked.iter().zip(values) {
            assert_eq!(
                got.as_ref(),
                Some(want),
                "acknowledged `{key}` lost in round {round}"
            );
        }
        // Each acknowledged key write was followed by an acknowledged
        // increment; an increment may have committed without being reported.
        let counter = kv.increment("durable", "counter", 0, SIGNED, NONE).unwrap();
        assert!(
            counter == counted || counter == counted + 1,
            "counter {counter}, acknowledged {counted}"
        );
        counted = counter;
    }
}
