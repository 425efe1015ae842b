//! Hostile components are stopped with a clear report; the host and every
//! other plugin keep working in the same process, and keep answering while
//! the hostile call runs.

// Test helpers outside #[test] functions may panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use convergio_runtime::Error;
use convergio_tests::{TestPlugin, healthy, start, start_err, test_component};
use serde_json::json;

fn misbehaving() -> TestPlugin {
    TestPlugin::new("misbehaving", "tool", test_component("misbehaving_tool"))
        .declares(&["config", "events"])
        .grants("config = { colour = \"blue\" }\nevents = [\"test.*\"]")
        .limits("deadline-ms = 1000\nmemory-mib = 32\nmax-instances = 4")
}

fn healthy_plugin() -> TestPlugin {
    TestPlugin::new("healthy", "tool", test_component("plain_tool"))
}

async fn stopped_reason(runtime: &convergio_runtime::Runtime, tool: &str) -> String {
    let err = runtime
        .invoke_json("misbehaving", "tool.invoke", &json!([tool, "{}"]))
        .await
        .expect_err("hostile call must fail");
    match err {
        Error::Stopped { plugin, reason } => {
            assert_eq!(plugin, "misbehaving");
            reason
        }
        other => panic!("expected Stopped, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostile_behaviour_is_contained() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = start(dir.path(), "", &[misbehaving(), healthy_plugin()]).await;
    healthy::answers(&runtime).await;

    let reason = healthy::throughout(&runtime, stopped_reason(&runtime, "spin")).await;
    assert!(reason.contains("deadline of 1000 ms exceeded"), "{reason}");
    healthy::answers(&runtime).await;

    let reason = healthy::throughout(&runtime, stopped_reason(&runtime, "hog")).await;
    assert!(reason.contains("memory limit of 32 MiB"), "{reason}");
    healthy::answers(&runtime).await;

    // Rust keeps its stack in linear memory: endless recursion runs off its bottom.
    let reason = healthy::throughout(&runtime, stopped_reason(&runtime, "recurse")).await;
    assert!(
        reason.contains("call stack exhausted") || reason.contains("stack overflow in the plugin"),
        "{reason}"
    );
    assert!(
        !reason.contains("wasm backtrace"),
        "the reason is one short line: {reason}"
    );
    healthy::answers(&runtime).await;

    let reason = healthy::throughout(&runtime, stopped_reason(&runtime, "panic")).await;
    assert!(reason.contains("unreachable"), "{reason}");
    healthy::answers(&runtime).await;

    // The plugin that misbehaved is not poisoned: a fresh store serves its next call.
    let out = runtime
        .invoke_json("misbehaving", "tool.invoke", &json!(["echo", "\"again\""]))
        .await
        .unwrap();
    assert_eq!(out, json!({"ok": "\"again\""}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuel_limit_stops_a_loop() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = misbehaving().limits("deadline-ms = 20000\nfuel = 5000000");
    let runtime = start(dir.path(), "", &[plugin, healthy_plugin()]).await;
    let reason = healthy::throughout(&runtime, stopped_reason(&runtime, "spin")).await;
    assert!(
        reason.contains("fuel limit of 5000000 exhausted"),
        "{reason}"
    );
    healthy::answers(&runtime).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limit_reports_busy() {
    let dir = tempfile::tempdir().unwrap();
    // One instance at a time; a call waits at most 100 ms for it.
    let plugin = misbehaving().limits("deadline-ms = 5000\nmax-instances = 1\nqueue-ms = 100");
    let runtime = start(dir.path(), "", &[plugin]).await;
    // A call of 1.5 s holds the only instance (long enough to have started
    // on a loaded machine by the time the second call comes)...
    let slow: Vec<_> = (0..1)
        .map(|_| {
            let runtime = runtime.clone();
            tokio::spawn(async move {
                runtime
                    .invoke_json(
                        "misbehaving",
                        "tool.invoke",
                        &json!(["sleep-ms", "{\"ms\": 1500}"]),
                    )
                    .await
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    // ...so a second call cannot get it within its 100 ms of queueing.
    let err = runtime
        .invoke_json("misbehaving", "tool.invoke", &json!(["echo", "1"]))
        .await
        .expect_err("second call finds no free instance in time");
    assert!(matches!(err, Error::Busy { limit: 1, .. }), "{err}");
    assert!(
        err.to_string()
            .contains("is busy: all 1 instance slots stayed in use"),
        "{err}"
    );
    for call in slow {
        assert_eq!(call.await.unwrap().unwrap(), json!({"ok": "\"done\""}));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_not_granted_fails_to_load_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let logger = TestPlugin::new("logger", "tool", test_component("ungranted_logger"))
        .declares(&["logging"]);
    let err = start_err(dir.path(), "", &[logger, healthy_plugin()]).await;
    assert!(err.contains("plugin `logger` imports `wasi:logging/logging@0.1.0-draft` but is not granted `logging`"), "{err}");
    assert!(
        err.contains("add `logging = true` under [plugin.grants]"),
        "{err}"
    );
    assert!(err.contains("platform.toml:"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_to_a_plugin_not_granted_fails_to_load() {
    let dir = tempfile::tempdir().unwrap();
    let agent =
        TestPlugin::new("agent", "agent", test_component("caller_agent")).declares(&["plugins"]);
    let err = start_err(dir.path(), "", &[healthy_plugin(), agent]).await;
    assert!(
        err.contains(
            "plugin `agent` imports `convergio:platform/tool@0.1.0` but is not granted `plugins`"
        ),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_and_events_reach_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = start(dir.path(), "", &[misbehaving()]).await;
    let out = runtime
        .invoke_json(
            "misbehaving",
            "tool.invoke",
            &json!(["config", "{\"key\": \"colour\"}"]),
        )
        .await
        .unwrap();
    assert_eq!(out, json!({"ok": "\"blue\""}));
    let out = runtime
        .invoke_json(
            "misbehaving",
            "tool.invoke",
            &json!(["config", "{\"key\": \"missing\"}"]),
        )
        .await
        .unwrap();
    assert_eq!(out, json!({"ok": "null"}));

    let mut events = runtime.subscribe();
    let out = runtime
        .invoke_json(
            "misbehaving",
            "tool.invoke",
            &json!([
                "publish",
                json!({"topic": "test.done", "payload": {"n": 1}}).to_string()
            ]),
        )
        .await
        .unwrap();
    assert_eq!(out, json!({"ok": "\"published\""}));
    let event = events.try_recv().unwrap();
    assert_eq!(
        (
            event.source.as_str(),
            event.topic.as_str(),
            event.payload.as_str()
        ),
        ("misbehaving", "test.done", "{\"n\":1}")
    );

    let out = runtime
        .invoke_json(
            "misbehaving",
            "tool.invoke",
            &json!(["publish", "{\"topic\": \"other\", \"payload\": \"{}\"}"]),
        )
        .await
        .unwrap();
    let denied = out["err"]["denied"].as_str().unwrap_or_default();
    assert!(denied.contains("may not publish on `other`"), "{out}");
}
