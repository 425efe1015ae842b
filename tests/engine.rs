//! Engine-wide behaviour: the compiled-component cache.

// Test helpers outside #[test] functions may panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use convergio_tests::{TestPlugin, start, test_component};
use serde_json::json;

fn files_under(dir: &std::path::Path) -> usize {
    walk(dir).len()
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|e| {
            let path = e.path();
            if path.is_dir() {
                walk(&path)
            } else {
                vec![path]
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiled_components_are_cached_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let settings = format!("compile-cache = true\ncache-dir = {:?}", cache);
    let plugin = TestPlugin::new("plain", "tool", test_component("plain_tool"));
    {
        let runtime = start(dir.path(), &settings, std::slice::from_ref(&plugin)).await;
        let out = runtime
            .invoke_json("plain", "tool.invoke", &json!(["echo", "1"]))
            .await
            .unwrap();
        assert_eq!(out, json!({"ok": "1"}));
    }
    // wasmtime writes the cache in the background; give it a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while files_under(&cache) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "nothing was written to {}",
            cache.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // A second host with the same cache loads and answers.
    let runtime = start(dir.path(), &settings, &[plugin]).await;
    let out = runtime
        .invoke_json("plain", "tool.invoke", &json!(["echo", "2"]))
        .await
        .unwrap();
    assert_eq!(out, json!({"ok": "2"}));

    // A function answers to its qualified name, its short name and its bare name.
    for name in [
        "convergio:platform/tool@0.1.0#invoke",
        "tool.invoke",
        "invoke",
    ] {
        let out = runtime
            .invoke_json("plain", name, &json!(["echo", "3"]))
            .await
            .unwrap();
        assert_eq!(out, json!({"ok": "3"}), "{name}");
    }
    for wrong in [
        "tool.invok",
        "toolx.invoke",
        "convergio:platform/tool@0.1.0#invokes",
    ] {
        let err = runtime
            .invoke_json("plain", wrong, &json!(["echo", "3"]))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("tool@0.1.0#invoke"),
            "{wrong}: {err}"
        );
    }
}
