//! Hot reload under load: 8 callers invoke a plugin while it is swapped 20
//! times between two versions. No call fails, and every answer is one
//! version's whole answer.

// Test helpers outside #[test] functions may panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use convergio_runtime::Runtime;
use convergio_tests::{TestPlugin, start, test_component};
use serde_json::{Value, json};

/// Write then rename, as a build or a deploy would, so no reader sees half a file.
fn copy(from: &Path, to: &Path) {
    let tmp = to.with_extension("tmp");
    std::fs::copy(from, &tmp).unwrap();
    std::fs::rename(&tmp, to).unwrap();
}

/// A platform whose one plugin, `versioned`, runs a copy of `reload_v1` that the test may replace.
async fn start_versioned(dir: &Path) -> (Runtime, PathBuf) {
    let live = dir.join("live.wasm");
    copy(&test_component("reload_v1"), &live);
    let plugin = TestPlugin::new("versioned", "tool", live.clone()).limits("max-instances = 16");
    (start(dir, "", &[plugin]).await, live)
}

async fn version(runtime: &Runtime) -> Value {
    runtime
        .invoke_json("versioned", "tool.invoke", &json!(["version", "{}"]))
        .await
        .expect("no call fails")
}

/// Poll until the watcher has swapped in `reload_v2`.
async fn wait_for_v2(runtime: &Runtime) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while version(runtime).await != json!({"ok": "\"v2\""}) {
        assert!(
            std::time::Instant::now() < deadline,
            "the watcher did not reload within 30 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn swaps_under_load_lose_no_call() {
    let dir = tempfile::tempdir().unwrap();
    let (runtime, live) = start_versioned(dir.path()).await;
    let (v1, v2) = (test_component("reload_v1"), test_component("reload_v2"));

    let stop = Arc::new(AtomicBool::new(false));
    let mut callers = Vec::new();
    for _ in 0..8 {
        let runtime = runtime.clone();
        let stop = stop.clone();
        callers.push(tokio::spawn(async move {
            let (mut v1, mut v2) = (0u32, 0u32);
            while !stop.load(Ordering::Relaxed) {
                let out = version(&runtime).await;
                match out["ok"].as_str() {
                    Some("\"v1\"") => v1 += 1,
                    Some("\"v2\"") => v2 += 1,
                    _ => panic!("answer from neither version: {out}"),
                }
            }
            (v1, v2)
        }));
    }

    for swap in 0..20 {
        copy(if swap % 2 == 0 { &v2 } else { &v1 }, &live);
        let info = runtime.reload("versioned").await.expect("reload succeeds");
        assert_eq!(info.generation, swap + 2);
    }
    stop.store(true, Ordering::Relaxed);
    let (mut v1_total, mut v2_total) = (0, 0);
    for caller in callers {
        let (a, b) = caller.await.unwrap();
        v1_total += a;
        v2_total += b;
    }
    assert!(
        v1_total > 0 && v2_total > 0,
        "both versions answered: v1 {v1_total}, v2 {v2_total}"
    );
    // 20 swaps from v1 end on v1.
    assert_eq!(version(&runtime).await, json!({"ok": "\"v1\""}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_update_keeps_the_old_version() {
    let dir = tempfile::tempdir().unwrap();
    let (runtime, live) = start_versioned(dir.path()).await;

    std::fs::write(&live, b"not a component").unwrap();
    let err = runtime
        .reload("versioned")
        .await
        .expect_err("garbage does not load");
    assert!(
        err.to_string().contains("is not a valid component"),
        "{err}"
    );
    let info = runtime.plugin("versioned").unwrap();
    assert_eq!(info.generation, 1);
    assert!(
        info.last_error
            .as_deref()
            .unwrap_or_default()
            .contains("not a valid component")
    );
    assert_eq!(version(&runtime).await, json!({"ok": "\"v1\""}));

    // A component that imports something it was not granted is refused too.
    copy(&test_component("ungranted_logger"), &live);
    let err = runtime
        .reload("versioned")
        .await
        .expect_err("ungranted import");
    assert!(
        err.to_string().contains("is not granted `logging`"),
        "{err}"
    );
    assert_eq!(runtime.plugin("versioned").unwrap().generation, 1);
    assert_eq!(version(&runtime).await, json!({"ok": "\"v1\""}));

    // A good version afterwards clears the error.
    copy(&test_component("reload_v2"), &live);
    let info = runtime.reload("versioned").await.unwrap();
    assert_eq!((info.generation, info.last_error), (2, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watcher_reloads_a_changed_file() {
    let dir = tempfile::tempdir().unwrap();
    let (runtime, live) = start_versioned(dir.path()).await;
    let _watch = runtime.watch().unwrap();
    copy(&test_component("reload_v2"), &live);
    wait_for_v2(&runtime).await;
    assert_eq!(runtime.plugin("versioned").unwrap().generation, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_setting_starts_the_watcher() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live.wasm");
    copy(&test_component("reload_v1"), &live);
    let runtime = start(
        dir.path(),
        "watch = true",
        &[TestPlugin::new("versioned", "tool", live.clone())],
    )
    .await;
    copy(&test_component("reload_v2"), &live);
    wait_for_v2(&runtime).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_reloads_its_component_and_refuses_another() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live.wasm");
    copy(&test_component("reload_v1"), &live);
    // The plugin `versioned` is an instance of the component `version-tool`.
    let plugin = TestPlugin::new("versioned", "tool", live.clone()).instance_of("version-tool");
    let runtime = start(dir.path(), "", &[plugin]).await;
    assert_eq!(
        runtime.plugin("versioned").unwrap().component_id,
        "version-tool"
    );
    copy(&test_component("reload_v2"), &live);
    let info = runtime.reload("versioned").await.expect("same component");
    assert_eq!(info.generation, 2);

    // The manifest now names another component: refused, v2 keeps running.
    let manifest = dir.path().join("versioned.plugin.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replace("id = \"version-tool\"", "id = \"other-tool\""),
    )
    .unwrap();
    copy(&test_component("reload_v1"), &live);
    let err = runtime
        .reload("versioned")
        .await
        .expect_err("another component");
    assert!(
        err.to_string().contains(
            "now says id = \"other-tool\", but this plugin runs component `version-tool`"
        ),
        "{err}"
    );
    assert_eq!(runtime.plugin("versioned").unwrap().generation, 2);
    assert_eq!(version(&runtime).await, json!({"ok": "\"v2\""}));
}
