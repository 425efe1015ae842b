//! What the host allocates on a plugin's behalf counts against the plugin's
//! `host-memory-mib`: a plugin cannot make the host hold more than that (plus
//! at most one host call's worth), the process's memory stays bounded, and a
//! healthy plugin in the same process keeps answering throughout.
//!
//! One test per binary: it measures the process's resident memory.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use convergio_runtime::Error;
use convergio_tests::{TestPlugin, healthy, start, test_component};
use serde_json::json;

/// The most resident memory the attacks may add, as the issue asks.
const MAX_GROWTH_MIB: u64 = 256;

fn hoarder() -> TestPlugin {
    TestPlugin::new("hoarder", "tool", test_component("host_memory_tool"))
        .declares(&["storage", "http", "logging"])
        .grants("storage = [\"data\"]\nhttp = [\"http://127.0.0.1:9\"]\nlogging = true")
        .limits("memory-mib = 64\ndeadline-ms = 5000")
}

fn healthy_plugin() -> TestPlugin {
    TestPlugin::new("healthy", "tool", test_component("plain_tool"))
}

/// A value of `/proc/self/status` in KiB (`VmRSS`, `VmHWM`).
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_memory_attacks_are_stopped_and_the_host_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = start(dir.path(), "", &[hoarder(), healthy_plugin()]).await;
    // Warm up both plugins, so what the first calls load is in the baseline.
    healthy::answers(&runtime).await;
    let small = runtime
        .invoke_json(
            "hoarder",
            "tool.invoke",
            &json!(["get-many", json!({"value-kib": 1, "keys": 10}).to_string()]),
        )
        .await
        .unwrap();
    assert_eq!(small, json!({"ok": "10"}));
    let baseline_kib = status_kib("VmRSS");

    // 1. One 150 KB value read back under a million repeated keys: 150 GB
    // if the host read them all. The read stops at the plugin's budget and
    // the guest gets an error that says how to fix it.
    let out = healthy::throughout(
        &runtime,
        runtime.invoke_json(
            "hoarder",
            "tool.invoke",
            &json!([
                "get-many",
                json!({"value-kib": 150, "keys": 1_000_000}).to_string()
            ]),
        ),
    )
    .await
    .unwrap();
    let failed = out["err"]["failed"].as_str().unwrap_or_default();
    assert!(
        failed.contains("one batch read returns at most 67108864 bytes")
            && failed.contains("read fewer keys per call"),
        "{out}"
    );

    // 2. A million `wasi:http` fields of 120 KB each, all kept open: the
    // call is stopped once the host holds the plugin's 64 MiB.
    let err = healthy::throughout(
        &runtime,
        runtime.invoke_json(
            "hoarder",
            "tool.invoke",
            &json!([
                "fields",
                json!({"count": 1_000_000, "value-kib": 120}).to_string()
            ]),
        ),
    )
    .await
    .expect_err("the hoarding call is stopped");
    match &err {
        Error::Stopped { plugin, reason } => {
            assert_eq!(plugin, "hoarder");
            assert!(
                reason.contains("host memory limit of 64 MiB reached")
                    && reason.contains("limits.host-memory-mib"),
                "{reason}"
            );
        }
        other => panic!("expected Stopped, got {other}"),
    }

    // 3. Small handles, many of them: the handle table is bounded too.
    let err = runtime
        .invoke_json(
            "hoarder",
            "tool.invoke",
            &json!([
                "fields",
                json!({"count": 1_000_000, "value-kib": 0}).to_string()
            ]),
        )
        .await
        .expect_err("the call is stopped at the handle limit");
    assert!(
        err.to_string().contains("resource handles open at once"),
        "{err}"
    );

    let peak_kib = status_kib("VmHWM");
    let growth_mib = peak_kib.saturating_sub(baseline_kib) / 1024;
    assert!(
        growth_mib < MAX_GROWTH_MIB,
        "resident memory grew by {growth_mib} MiB during the attacks (limit {MAX_GROWTH_MIB} MiB)"
    );

    // The plugin is not poisoned: its next call runs in a fresh store.
    let out = runtime
        .invoke_json(
            "hoarder",
            "tool.invoke",
            &json!(["fields", json!({"count": 10, "value-kib": 1}).to_string()]),
        )
        .await
        .unwrap();
    assert_eq!(out, json!({"ok": "10"}));
    healthy::answers(&runtime).await;
}
