//! Storage through the host: `wasi:keyvalue` on SQLite, buckets granted per
//! plugin, quotas, and durability across a `kill -9` of the host.

// Test helpers outside #[test] functions may panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use convergio_runtime::Runtime;
use convergio_test_child::Child;
use convergio_tests::{TestPlugin, start, test_component};
use serde_json::{Value, json};

fn storage_plugin(id: &str, grants: &str, limits: &str) -> TestPlugin {
    TestPlugin::new(id, "tool", test_component("storage_tool"))
        .declares(&["storage"])
        .grants(grants)
        .limits(limits)
}

async fn call(runtime: &Runtime, plugin: &str, tool: &str, args: &str) -> Value {
    runtime
        .invoke_json(plugin, "tool.invoke", &json!([tool, args]))
        .await
        .expect("the call itself succeeds; denials are error values")
}

fn data_dir(dir: &std::path::Path) -> String {
    format!("data-dir = {:?}", dir.join("data"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn granted_buckets_work_and_others_are_denied() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = start(
        dir.path(),
        &data_dir(dir.path()),
        &[
            storage_plugin("alice", "storage = [\"notes\"]", ""),
            storage_plugin("bob", "storage = [\"secrets\"]", ""),
        ],
    )
    .await;
    assert_eq!(
        call(&runtime, "alice", "set", "notes greeting hello").await,
        json!({"ok": "ok"})
    );
    assert_eq!(
        call(&runtime, "alice", "get", "notes greeting").await,
        json!({"ok": "hello"})
    );
    assert_eq!(
        call(&runtime, "alice", "incr", "notes counter 5").await,
        json!({"ok": "5"})
    );
    assert_eq!(
        call(&runtime, "alice", "incr", "notes counter 2").await,
        json!({"ok": "7"})
    );
    assert_eq!(
        call(&runtime, "alice", "keys", "notes").await,
        json!({"ok": "counter\ngreeting"})
    );

    // Another plugin's bucket: denied, whichever way it is asked for.
    assert_eq!(
        call(&runtime, "bob", "get", "notes greeting").await,
        json!({"err": {"denied": "access-denied"}})
    );
    assert_eq!(
        call(&runtime, "bob", "set", "notes greeting pwned").await,
        json!({"err": {"denied": "access-denied"}})
    );
    assert_eq!(
        call(&runtime, "alice", "get", "secrets x").await,
        json!({"err": {"denied": "access-denied"}})
    );
    assert_eq!(
        call(&runtime, "alice", "get", "notes greeting").await,
        json!({"ok": "hello"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = start(
        dir.path(),
        &data_dir(dir.path()),
        &[storage_plugin(
            "small",
            "storage = [\"tiny\"]",
            "bucket-max-keys = 3\nbucket-max-bytes = 4096",
        )],
    )
    .await;
    assert_eq!(
        call(&runtime, "small", "fill", "tiny 3 10").await,
        json!({"ok": "ok"})
    );
    let out = call(&runtime, "small", "set", "tiny one-more x").await;
    let message = out["err"]["failed"]
        .as_str()
        .unwrap_or_else(|| panic!("{out}"));
    assert!(message.contains("3 keys"), "{message}");
    // Overwriting an existing key does not add a key.
    assert_eq!(
        call(&runtime, "small", "set", "tiny k0 y").await,
        json!({"ok": "ok"})
    );

    let out = call(&runtime, "small", "fill", "tiny 1 5000").await;
    let message = out["err"]["failed"]
        .as_str()
        .unwrap_or_else(|| panic!("{out}"));
    assert!(message.contains("4096 bytes"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_increments_are_exact() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = start(
        dir.path(),
        &data_dir(dir.path()),
        &[storage_plugin(
            "counter",
            "storage = [\"c\"]",
            "max-instances = 8",
        )],
    )
    .await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let runtime = runtime.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                let out = call(&runtime, "counter", "incr", "c n 1").await;
                assert!(out.get("ok").is_some(), "{out}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        call(&runtime, "counter", "get", "c n").await["ok"],
        json!("200")
    );
}

/// Read-modify-write through `wasi:keyvalue/atomics` compare-and-swap from
/// eight instances at once: every append lands, none is lost, and a swap over
/// a value changed behind its back fails with a handle on the new value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_and_swap_loses_no_update() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = start(
        dir.path(),
        &data_dir(dir.path()),
        &[storage_plugin(
            "writer",
            "storage = [\"c\"]",
            "max-instances = 8",
        )],
    )
    .await;
    assert_eq!(
        call(&runtime, "writer", "cas-race", "c race").await,
        json!({"ok": "failed:theirs"})
    );
    assert_eq!(
        call(&runtime, "writer", "get", "c race").await,
        json!({"ok": "mine"})
    );

    let (writers, appends) = (8, 20);
    let mut tasks = Vec::new();
    for w in 0..writers {
        let runtime = runtime.clone();
        tasks.push(tokio::spawn(async move {
            let letter = char::from(b'a' + w);
            let out = call(
                &runtime,
                "writer",
                "append",
                &format!("c log {letter} {appends}"),
            )
            .await;
            out["ok"]
                .as_str()
                .unwrap_or_else(|| panic!("{out}"))
                .parse::<u64>()
                .unwrap()
        }));
    }
    let mut failed_swaps = 0;
    for t in tasks {
        failed_swaps += t.await.unwrap();
    }
    let log = call(&runtime, "writer", "get", "c log").await["ok"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        log.len(),
        usize::from(writers) * appends,
        "{failed_swaps} swaps failed and were retried: {log}"
    );
    for w in 0..writers {
        let letter = char::from(b'a' + w);
        assert_eq!(log.matches(letter).count(), appends, "{log}");
    }
    // Counters are signed.
    assert_eq!(
        call(&runtime, "writer", "incr", "c n -3").await,
        json!({"ok": "-3"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_a_restart_of_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = [storage_plugin("p", "storage = [\"keep\"]", "")];
    {
        let runtime = start(dir.path(), &data_dir(dir.path()), &plugins).await;
        assert_eq!(
            call(&runtime, "p", "set", "keep k v1").await,
            json!({"ok": "ok"})
        );
    }
    let runtime = start(dir.path(), &data_dir(dir.path()), &plugins).await;
    assert_eq!(
        call(&runtime, "p", "get", "keep k").await,
        json!({"ok": "v1"})
    );
}

const KILL_DIR: &str = "CONVERGIO_KILL_TEST_DIR";
/// Writes the child acknowledges before it is killed.
const KILL_AFTER: u64 = 50;

/// The writer half of `acknowledged_writes_survive_kill_9`, run in a child
/// process: it writes keys through a plugin and prints each acknowledged one
/// until it is killed (or, never killed, for at most 60 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the child process of acknowledged_writes_survive_kill_9"]
async fn kill_9_writer() {
    use std::io::Write;
    let dir = std::path::PathBuf::from(std::env::var_os(KILL_DIR).unwrap_or_else(|| {
        panic!("kill_9_writer is the child process of acknowledged_writes_survive_kill_9; run that test instead")
    }));
    let runtime = start(
        &dir,
        &data_dir(&dir),
        &[storage_plugin("p", "storage = [\"keep\"]", "")],
    )
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    for i in 0u64.. {
        assert!(
            std::time::Instant::now() < deadline,
            "the parent never killed this writer"
        );
        let out = call(&runtime, "p", "set", &format!("keep k{i} v{i}")).await;
        assert_eq!(out, json!({"ok": "ok"}));
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "acked {i}").unwrap();
        stdout.flush().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Child::spawn("kill_9_writer", &[(KILL_DIR, dir.path().as_os_str())]);
    let acked_of = |line: &str| {
        line.strip_prefix("acked ")
            .map(|n| n.parse::<u64>().unwrap() + 1)
    };
    let mut acked = 0u64;
    while acked < KILL_AFTER {
        if let Some(n) = acked_of(&child.next_line(std::time::Duration::from_secs(30))) {
            acked = n;
        }
    }
    // Writes acknowledged between the last read and the kill count too.
    for line in child.kill_9() {
        if let Some(n) = acked_of(&line) {
            acked = acked.max(n);
        }
    }

    let runtime = start(
        dir.path(),
        &data_dir(dir.path()),
        &[storage_plugin("p", "storage = [\"keep\"]", "")],
    )
    .await;
    for i in 0..acked {
        let out = call(&runtime, "p", "get", &format!("keep k{i}")).await;
        assert_eq!(
            out,
            json!({"ok": format!("v{i}")}),
            "acknowledged write {i} was lost"
        );
    }
}
