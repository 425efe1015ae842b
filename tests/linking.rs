//! Runtime linking: an agent's `tool` import is resolved by the host to a
//! tool plugin's export; each side runs in its own store with its own grants.

// Test helpers outside #[test] functions may panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use convergio_tests::{TestPlugin, start, start_err, test_component};
use serde_json::json;

fn tool(id: &str) -> TestPlugin {
    TestPlugin::new(id, "tool", test_component("misbehaving_tool"))
        .declares(&["config", "events"])
        .grants("config = {}\nevents = [\"x\"]")
        .limits("deadline-ms = 1000")
}

fn agent(grants: &str) -> TestPlugin {
    TestPlugin::new("agent", "agent", test_component("caller_agent"))
        .declares(&["plugins"])
        .grants(grants)
}

fn task(input: &str) -> serde_json::Value {
    json!([{"run-id": "r1", "node-id": "n1", "input": input, "state": []}])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_calls_granted_tool_through_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = start(
        dir.path(),
        "",
        &[tool("echo-tool"), agent("plugins = [\"echo-tool\"]")],
    )
    .await;
    let out = runtime
        .invoke_json("agent", "agent.run", &task("{\"hello\":1}"))
        .await
        .unwrap();
    assert_eq!(out["ok"]["output"], json!("{\"hello\":1}"), "{out}");
}

/// A task that makes `caller_agent` call `tool` instead of `echo`.
fn task_calling(tool: &str, input: &str) -> serde_json::Value {
    json!([{
        "run-id": "r1",
        "node-id": "n1",
        "input": input,
        "state": [{"key": "tool", "value": tool}]
    }])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trapping_callee_fails_the_call_not_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = start(
        dir.path(),
        "",
        &[tool("callee"), agent("plugins = [\"callee\"]")],
    )
    .await;
    // The callee starts, runs its `panic` tool and traps in the middle of the call.
    let err = runtime
        .invoke_json("agent", "agent.run", &task_calling("panic", "{}"))
        .await
        .expect_err("the callee traps");
    let text = err.to_string();
    assert!(
        text.contains(
            "call from `agent` to `convergio:platform/tool@0.1.0#invoke` of `callee` failed"
        ),
        "{text}"
    );
    assert!(
        text.contains("unreachable code reached (the plugin panicked or aborted)"),
        "the reason names the trap: {text}"
    );
    // Both plugins still serve: the same link carries a real call, and the
    // callee answers directly too.
    let out = runtime
        .invoke_json("agent", "agent.run", &task("{\"after\":\"trap\"}"))
        .await
        .unwrap();
    assert_eq!(out["ok"]["output"], json!("{\"after\":\"trap\"}"), "{out}");
    let out = runtime
        .invoke_json("callee", "tool.invoke", &json!(["echo", "[1,2]"]))
        .await
        .unwrap();
    assert_eq!(out, json!({"ok": "[1,2]"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_granted_exporters_are_ambiguous() {
    let dir = tempfile::tempdir().unwrap();
    let err = start_err(
        dir.path(),
        "",
        &[
            tool("one"),
            tool("two"),
            agent("plugins = [\"one\", \"two\"]"),
        ],
    )
    .await;
    assert!(
        err.contains("which several plugins it may call export (one, two)"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn granted_callee_that_does_not_export_the_interface() {
    let dir = tempfile::tempdir().unwrap();
    let other_agent = TestPlugin::new("other", "agent", test_component("caller_agent"))
        .declares(&["plugins"])
        .grants("plugins = [\"echo-tool\"]");
    let err = start_err(
        dir.path(),
        "",
        &[
            tool("echo-tool"),
            other_agent,
            agent("plugins = [\"other\"]"),
        ],
    )
    .await;
    assert!(
        err.contains("exported by echo-tool, but may not call it"),
        "{err}"
    );
    assert!(err.contains("plugins = [\"echo-tool\"]"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grant_naming_an_unknown_plugin_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = start_err(dir.path(), "", &[agent("plugins = [\"ghost\"]")]).await;
    assert!(
        err.contains("may call `ghost`, but no [[plugin]] has id = \"ghost\""),
        "{err}"
    );
}

/// `Runtime::invoke_as`: one plugin calling others by id (as a run driver
/// does for the orchestrator), only those its `plugins` grant names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoke_as_calls_only_the_plugins_the_caller_is_granted() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = start(
        dir.path(),
        "",
        &[
            tool("first"),
            tool("second"),
            tool("ungranted"),
            // A plugin that imports no `tool` interface, so granting it
            // several plugins that export one is not ambiguous.
            TestPlugin::new("driver", "tool", test_component("plain_tool"))
                .grants("plugins = [\"first\", \"second\"]"),
        ],
    )
    .await;
    for callee in ["first", "second"] {
        let out = runtime
            .invoke_as(
                "driver",
                callee,
                "tool.invoke",
                &json!(["echo", "{\"n\":1}"]),
            )
            .await
            .unwrap();
        assert_eq!(out, json!({"ok": "{\"n\":1}"}), "{callee}: {out}");
    }
    let err = runtime
        .invoke_as("driver", "ungranted", "tool.invoke", &json!(["echo", "{}"]))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, convergio_runtime::Error::CallDenied { .. }),
        "{text}"
    );
    assert!(
        text.contains("plugin `driver` may not call plugin `ungranted`")
            && text.contains("plugins = [\"ungranted\"]")
            && text.contains("platform.toml:"),
        "{text}"
    );
    let err = runtime
        .invoke_as("nobody", "first", "tool.invoke", &json!(["echo", "{}"]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, convergio_runtime::Error::UnknownPlugin(ref id) if id == "nobody"),
        "{err}"
    );
}
