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
//! The same for a graph with a `planner` node killed while its plan's
//! agent waits: after the resume the plan was asked for once, the plan's
//! run was found again (two runs in all), and the agent repeated nothing.
//!
//! It runs `target/debug/convergio`, which `cargo test --workspace` builds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use convergio_tests::fake_providers::{self as fake, Flavor};
use convergio_tests::process::convergio_in;
use convergio_tests::upstream::{Received, Reply, Upstream};
use convergio_tests::{TestPlugin, agent_llm, convergio_binary, orchestrator, test_component};
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
    convergio_in(bin, dir, &[&["--config", "platform.toml"], args].concat())
}

/// A platform in a new directory (durability `process`): the OpenAI
/// adapter pointed at `model`, a counter tool, the LLM agent (granted the
/// counter and `runs`) and the orchestrator.
fn platform(model: &Upstream) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fake::add_platform_key(dir.path(), Flavor::OpenAi, "sk-openai-crash-77");
    let plugins = [
        fake::plugin(Flavor::OpenAi, "openai", &model.origin()),
        TestPlugin::new("counter", "tool", test_component("counter_tool"))
            .declares(&["storage"])
            .grants("storage = [\"counters\"]"),
        agent_llm(
            "agent-llm",
            "inference = true\nplugins = [\"counter\"]\nlogging = true\nruns = true",
        )
        .limits("deadline-ms = 300000"),
        orchestrator(&["agent-llm"]),
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
    dir
}

/// Start `convergio ARGS` in `dir`, wait until `model` has received
/// `requests` chat requests, and SIGKILL it.
async fn kill_at(bin: &Path, dir: &Path, args: &[&str], model: &Upstream, requests: usize) {
    let mut child = Command::new(bin)
        .args(["--config", "platform.toml"])
        .args(args)
        .current_dir(dir)
        .env("CONVERGIO_HOME", dir.join("home"))
        .env_remove("CONVERGIO_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while chat_bodies(model).len() < requests {
        assert!(
            Instant::now() < deadline,
            "the run did not reach model request {requests}: {:?}",
            chat_bodies(model)
        );
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Resume every run and check they all finished.
fn resume_all(bin: &Path, dir: &Path) {
    let resumed = run(bin, dir, &["graph", "resume", "--all"]);
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let list = run(bin, dir, &["graph", "list"]);
    let listed = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(
        listed.contains("done") && !listed.contains("running"),
        "{listed}"
    );
}

/// The counter tool's count, read through the CLI.
fn count(bin: &Path, dir: &Path) -> Value {
    let read = run(
        bin,
        dir,
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
    value["ok"].clone()
}

/// The model of both tests: a planner's request gets a one-node plan; an
/// agent's first request a tool call; once the conversation has the tool's
/// result, the answer — after the test says the host was restarted.
fn model_script(restarted: Arc<AtomicBool>) -> impl Fn(&Received) -> Reply {
    move |received: &Received| {
        let body: Value = serde_json::from_slice(&received.body).unwrap_or(Value::Null);
        let system = body["messages"][0]["content"].as_str().unwrap_or_default();
        if system.starts_with("You plan work.") {
            let plan = json!({"nodes": {"count": {"agent": "counter", "task": "Count once."}}, "edges": []});
            return completion(
                json!({"role": "assistant", "content": plan.to_string()}),
                "stop",
            );
        }
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
        if restarted.load(Ordering::SeqCst) {
            answer
        } else {
            answer.after(Duration::from_secs(120))
        }
    }
}

/// The agent of both tests: it counts with the counter tool.
fn counter() -> Value {
    json!({
        "name": "counter",
        "instructions": "Count with the tool.",
        "model": "openai/gpt-6-luna",
        "tools": ["counter/bump"]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_agent_resumes_without_repeating_its_finished_steps() {
    let bin = convergio_binary();
    let restarted = Arc::new(AtomicBool::new(false));
    let model = Upstream::start(model_script(Arc::clone(&restarted))).await;
    let dir = platform(&model);
    // JSON is YAML too.
    std::fs::write(dir.path().join("counter.yaml"), counter().to_string()).unwrap();

    // The agent runs until its second model call hangs; then SIGKILL.
    let args = ["agent", "run", "counter.yaml", "count once"];
    kill_at(&bin, dir.path(), &args, &model, 2).await;
    restarted.store(true, Ordering::SeqCst);
    resume_all(&bin, dir.path());

    // Three model calls: the first was read back from the journal, not
    // asked again; the one after the restart has the same conversation as
    // the one the kill cut (the tool's result was read back too).
    let bodies = chat_bodies(&model);
    assert_eq!(bodies.len(), 3, "{bodies:#?}");
    assert_eq!(bodies[1]["messages"], bodies[2]["messages"]);
    // The tool ran once.
    assert_eq!(count(&bin, dir.path()), "1");
}

/// A planner node killed while its plan runs: the plan is not asked for
/// again, the plan's run is found again rather than started twice, and the
/// plan's agent does not repeat its finished steps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_planner_resumes_with_the_same_plan() {
    let bin = convergio_binary();
    let restarted = Arc::new(AtomicBool::new(false));
    let model = Upstream::start(model_script(Arc::clone(&restarted))).await;
    let dir = platform(&model);
    let counter = counter();
    let graph = json!({
        "state": {"goal": {}, "result": {}},
        "nodes": {"plan": {
            "planner": {"model": "openai/gpt-6-luna", "agents": [counter]},
            "input": "{{ state.goal }}",
            "output": "result"
        }}
    });
    std::fs::write(dir.path().join("plan.json"), graph.to_string()).unwrap();

    // The plan, then the plan's agent: its tool call, then its answer hangs.
    let args = [
        "graph",
        "run",
        "plan.json",
        "--input",
        r#"{"goal": "count once"}"#,
    ];
    kill_at(&bin, dir.path(), &args, &model, 3).await;
    restarted.store(true, Ordering::SeqCst);
    resume_all(&bin, dir.path());

    // One plan asked for, and the agent's three calls (the cut one twice).
    let bodies = chat_bodies(&model);
    let plans = bodies
        .iter()
        .filter(|b| {
            b["messages"][0]["content"]
                .as_str()
                .is_some_and(|c| c.starts_with("You plan work."))
        })
        .count();
    assert_eq!((plans, bodies.len()), (1, 4), "{bodies:#?}");
    assert_eq!(bodies[2]["messages"], bodies[3]["messages"]);
    assert_eq!(count(&bin, dir.path()), "1");
    // Two runs: the graph's and the plan's.
    let list = run(&bin, dir.path(), &["graph", "list"]);
    let listed = String::from_utf8_lossy(&list.stdout).into_owned();
    assert_eq!(listed.matches("done").count(), 2, "{listed}");
    assert!(listed.contains(":plan:1:plan"), "{listed}");
}
