//! Warm instances of tool and agent plugins: opt-in per plugin
//! (`warm-instances` in its own `[plugin.limits]`), because a warm instance
//! keeps its guest globals from one call to the next. `plain_tool`'s `calls`
//! tool counts the calls its instance has served.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use convergio_runtime::Runtime;
use convergio_tests::{TestPlugin, start, test_component};
use serde_json::json;

async fn calls(runtime: &Runtime, plugin: &str) -> serde_json::Value {
    let out = runtime
        .invoke_json(plugin, "tool.invoke", &json!(["calls", "{}"]))
        .await
        .unwrap();
    out["ok"].clone()
}

/// `caller_agent` calling its `tool` import with the tool `calls`.
async fn calls_through_agent(runtime: &Runtime) -> serde_json::Value {
    let task = json!([{
        "run-id": "r1",
        "node-id": "n1",
        "input": "{}",
        "state": [{"key": "tool", "value": "calls"}]
    }]);
    let out = runtime
        .invoke_json("agent", "agent.run", &task)
        .await
        .unwrap();
    out["ok"]["output"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_start_fresh_unless_their_plugin_opts_in() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = TestPlugin::new("fresh", "tool", test_component("plain_tool"));
    let warm =
        TestPlugin::new("warm", "tool", test_component("plain_tool")).limits("warm-instances = 2");
    // The platform-wide default applies to provider plugins only.
    let runtime = start(
        dir.path(),
        "[runtime.default-limits]\nwarm-instances = 3",
        &[fresh, warm],
    )
    .await;

    for _ in 0..3 {
        assert_eq!(calls(&runtime, "fresh").await, json!("1"));
    }
    assert_eq!(calls(&runtime, "warm").await, json!("1"));
    assert_eq!(calls(&runtime, "warm").await, json!("2"));
    assert_eq!(calls(&runtime, "warm").await, json!("3"));

    // A reload drops the warm instances of the old version.
    runtime.reload("warm").await.unwrap();
    assert_eq!(calls(&runtime, "warm").await, json!("1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_tool_serves_the_calls_another_plugin_makes() {
    let dir = tempfile::tempdir().unwrap();
    let tool =
        TestPlugin::new("tool", "tool", test_component("plain_tool")).limits("warm-instances = 1");
    let agent = TestPlugin::new("agent", "agent", test_component("caller_agent"))
        .declares(&["plugins"])
        .grants("plugins = [\"tool\"]");
    let runtime = start(dir.path(), "", &[tool, agent]).await;

    assert_eq!(calls_through_agent(&runtime).await, json!("1"));
    assert_eq!(calls_through_agent(&runtime).await, json!("2"));
    // The caller's own call and a direct call share the one warm instance.
    assert_eq!(calls(&runtime, "tool").await, json!("3"));
    assert_eq!(calls_through_agent(&runtime).await, json!("4"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_instance_is_replaced_after_its_max_uses() {
    let dir = tempfile::tempdir().unwrap();
    let warm = TestPlugin::new("warm", "tool", test_component("plain_tool"))
        .limits("warm-instances = 1\nwarm-max-uses = 3");
    let runtime = start(dir.path(), "", &[warm]).await;

    for expected in ["1", "2", "3", "1", "2", "3", "1"] {
        assert_eq!(calls(&runtime, "warm").await, json!(expected));
    }
}

/// An orchestrator's warm instances serve a million steps by default (a
/// replaced one has every run in flight send its snapshot again); a value
/// of the plugin or of `[runtime.default-limits]` wins, and 0 is refused.
#[test]
fn warm_max_uses_defaults_by_kind_and_is_checked() {
    let uses = |runtime: &str, orchestrator_limits: &str| {
        let dir = tempfile::tempdir().unwrap();
        let tool = TestPlugin::new("tool", "tool", test_component("plain_tool"));
        let orchestrator = convergio_tests::orchestrator(&["tool"]).limits(orchestrator_limits);
        let path = convergio_tests::write_platform(dir.path(), runtime, &[tool, orchestrator]);
        let platform = convergio_runtime::Platform::load(&path).map_err(|e| e.to_string())?;
        let of = |id: &str| {
            platform
                .plugins
                .iter()
                .find(|p| p.id == id)
                .map(|p| p.limits.warm_max_uses)
        };
        Ok::<_, String>((of("tool"), of("orchestrator")))
    };
    assert_eq!(uses("", ""), Ok((Some(1_000), Some(1_000_000))));
    assert_eq!(uses("", "warm-max-uses = 50"), Ok((Some(1_000), Some(50))));
    assert_eq!(
        uses("[runtime.default-limits]\nwarm-max-uses = 7", ""),
        Ok((Some(7), Some(7)))
    );
    let refused = uses("", "warm-max-uses = 0").unwrap_err();
    assert!(
        refused.contains("`limits.warm-max-uses` must be at least 1"),
        "{refused}"
    );
}
