//! The LLM agent's crash test: the real `convergio` process runs an agent
//! (`convergio agent run`, durability `process`) whose model — a scripted
//! server in this test that speaks OpenAI's Chat Completions format — first
//! asks for a tool call, then, on the next call, hangs; the process is
//! killed with SIGKILL while it waits. `convergio graph resume --all` then
//! finishes the run.
//!
//! What it proves: the agent's finished steps are not done again. The
//! model's first answer is not asked for again (the server gets three chat
//! requests in all: the first, the one cut by the kill, and one after the
//! resume, which carries the same conversation as the cut one), and the tool
//! ran once (its counter, in storage, is 1).
//!
//! It runs `target/debug/convergio`, which `cargo test --workspace` builds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use convergio_tests::fake_providers::{self as fake, Flavor};
use convergio_tests::upstream::{Received, Reply, Upstream};
use convergio_tests::{TestPlugin, agent_llm, convergio_binary, crate_component, test_component};
use serde_json::{Value, json};

fn completion(message: Value, finish: &str) -> Reply {
    Reply::json(
        200,
        &json!({
            "id": "chatcmpl-crash",
            "object": "chat.completion",
            "created": 1_765_000_000,
            "model": "gpt-6-luna",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30}
        }),
    )
}

fn chat_bodies(model: &Upstream) -> Vec<Value> {
    model
        .received()
        .iter()
        .filter(|r| r.path.ends_with("/chat/completions"))
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

fn run(bin: &Path, dir: &Path, args: &[&str]) -> Output {
    Command::new(bin)
        .args(["--config", "platform.toml"])
        .args(args)
        .current_dir(dir)
        .env("CONVERGIO_HOME", dir.join("home"))
        .env_remove("CONVERGIO_CONFIG")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_agent_resumes_without_repeating_its_finished_steps() {
    let bin = convergio_binary();
    // The model: a tool call first; once the conversation has the tool's
    // result, hang until the test says the host was restarted, then answer.
    let restarted = Arc::new(AtomicBool::new(false));
    let after_restart = Arc::clone(&restarted);
    let model = Upstream::start(move |received: &Received| {
        let body: Value = serde_json::from_slice(&received.body).unwrap_or(Value::Null);
        let has_result = body["messages"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["role"] == "tool"));
        if !has_result {
            let call = json!({"id": "c1", "type": "function",
                "function": {"name": "counter__bump", "arguments": "{\"counter\":\"agent-tool\"}"}});
            return completion(
                json!({"role": "assistant", "content": null, "tool_calls": [call]}),
                "tool_calls",
            );
        }
        let answer = completion(json!({"role": "assistant", "content": "counted"}), "stop");
        if after_restart.load(Ordering::SeqCst) {
            answer
        } else {
            answer.after(Duration::from_secs(120))
        }
    })
    .await;

    let dir = tempfile::tempdir().unwrap();
    fake::add_platform_key(dir.path(), Flavor::OpenAi, "sk-openai-crash-77");
    let plugins = [
        fake::plugin(Flavor::OpenAi, "openai", &model.origin()),
        TestPlugin::new("counter", "tool", test_component("counter_tool"))
            .declares(&["storage"])
            .grants("storage = [\"counters\"]"),
        agent_llm(
            "agent-llm",
            "inference = true\nplugins = [\"counter\"]\nlogging = true",
        )
        .limits("deadline-ms = 300000"),
        TestPlugin::new(
            "orchestrator",
            "orchestrator",
            crate_component("convergio_orchestrator"),
        )
        .declares(&["plugins"])
        .grants("plugins = [\"agent-llm\"]"),
    ];
    let cache = dir.path().join("cache");
    let path = convergio_tests::write_platform(
        dir.path(),
        &format!("compile-cache = true\ncache-dir = {cache:?}"),
        &plugins,
    );
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        format!("[graphs]\ndurability = \"process\"\n\n{text}"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("counter.yaml"),
        "name: counter\ninstructions: Count with the tool.\nmodel: openai/gpt-6-luna\ntools: [counter/bump]\n",
    )
    .unwrap();

    // The agent runs until its second model call hangs; then SIGKILL.
    let mut child = Command::new(&bin)
        .args([
            "--config",
            "platform.toml",
            "agent",
            "run",
            "counter.yaml",
            "count once",
        ])
        .current_dir(dir.path())
        .env("CONVERGIO_HOME", dir.path().join("home"))
        .env_remove("CONVERGIO_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while chat_bodies(&model).len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the agent did not reach its second model call: {:?}",
            chat_bodies(&model)
        );
        assert!(child.try_wait().unwrap().is_none(), "the agent ended early");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();

    restarted.store(true, Ordering::SeqCst);
    let resumed = run(&bin, dir.path(), &["graph", "resume", "--all"]);
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let list = run(&bin, dir.path(), &["graph", "list"]);
    let listed = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(listed.contains("done"), "{listed}");

    // Three model calls: the first was read back from the journal, not
    // asked again; the one after the restart has the same conversation as
    // the one the kill cut (the tool's result was read back too).
    let bodies = chat_bodies(&model);
    assert_eq!(bodies.len(), 3, "{bodies:#?}");
    assert_eq!(bodies[1]["messages"], bodies[2]["messages"]);
    // The tool ran once.
    let read = run(
        &bin,
        dir.path(),
        &[
            "invoke",
            "counter",
            "tool.invoke",
            r#"["read", "{\"counter\":\"agent-tool\"}"]"#,
        ],
    );
    let value: Value = serde_json::from_slice(&read.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {} {}",
            String::from_utf8_lossy(&read.stdout),
            String::from_utf8_lossy(&read.stderr)
        )
    });
    assert_eq!(value["ok"], "1", "{value}");
}
