//! The LLM agent component (`components/agent-llm`) against a scripted
//! model: a local server that speaks OpenAI's Chat Completions format,
//! reached through the real `provider-openai` adapter and the router, with
//! real tool plugins called through `convergio:platform/tools`. The script
//! picks its answers from the conversation it receives, and every request
//! is counted at the server.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use convergio_cap_runs::CallUsage;
use convergio_runtime::Runtime;
use convergio_runtime::config::Platform as PlatformFile;
use convergio_tests::fake_providers::{self as fake, Flavor};
use convergio_tests::upstream::{Received, Reply, Upstream};
use convergio_tests::{
    TestPlugin, agent_llm, done, orchestrator, run_graph, target_dir, test_component,
    write_platform,
};
use serde_json::{Value, json};

const SECRET: &str = "sk-openai-agents-5d1e";
const MODEL: &str = "openai/gpt-6-luna";

/// An OpenAI chat completion with `message`.
fn completion(message: Value, finish: &str) -> Reply {
    Reply::json(
        200,
        &json!({
            "id": "chatcmpl-agent",
            "object": "chat.completion",
            "created": 1_765_000_000,
            "model": "gpt-6-luna",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30}
        }),
    )
}

fn text(content: &str) -> Reply {
    completion(json!({"role": "assistant", "content": content}), "stop")
}

fn calls(calls: &[(&str, &str, Value)]) -> Reply {
    let tool_calls: Vec<Value> = calls
        .iter()
        .map(|(id, name, args)| {
            json!({"id": id, "type": "function", "function": {"name": name, "arguments": args.to_string()}})
        })
        .collect();
    completion(
        json!({"role": "assistant", "content": null, "tool_calls": tool_calls}),
        "tool_calls",
    )
}

fn body(received: &Received) -> Value {
    serde_json::from_slice(&received.body).unwrap_or(Value::Null)
}

fn messages(body: &Value) -> Vec<Value> {
    body["messages"].as_array().cloned().unwrap_or_default()
}

/// The model: what it answers depends on the task (the first user message)
/// and on how far the conversation has gone.
fn script(received: &Received) -> Reply {
    let body = body(received);
    let messages = messages(&body);
    let task = messages
        .iter()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_owned();
    let tool_results = messages.iter().filter(|m| m["role"] == "tool").count();
    if let Some(reply) = planning(&messages, &task) {
        return reply;
    }
    match task.as_str() {
        // Two calls at once, then a listed tool its plugin does not have
        // and a tool the definition does not list, then the answer.
        "tools" => match tool_results {
            0 => calls(&[
                ("c1", "echo__echo", json!({"n": 1})),
                ("c2", "echo__echo", json!({"n": 2})),
            ]),
            2 => calls(&[
                ("c3", "echo__nope", json!({})),
                ("c4", "shell__run", json!({"cmd": "rm -rf /"})),
            ]),
            _ => text("all done"),
        },
        // A model that never stops calling tools.
        "loop" => calls(&[(
            &format!("c{tool_results}"),
            "echo__echo",
            json!({"i": tool_results}),
        )]),
        // A tool of a plugin the agent is not granted.
        "denied" => match tool_results {
            0 => calls(&[("c1", "other__echo", json!({}))]),
            _ => text("could not"),
        },
        // An answer that does not match the output schema, then one that does.
        "grade" => {
            let corrected = messages
                .last()
                .and_then(|m| m["content"].as_str())
                .is_some_and(|c| c.contains("does not match"));
            text(if corrected {
                r#"{"grade": 4}"#
            } else {
                r#"{"grade": "four"}"#
            })
        }
        // The agent's own tools: remember, then recall, then answer.
        "memory" => match tool_results {
            0 => calls(&[(
                "m1",
                "agent__remember",
                json!({"key": "colour", "text": "Ada likes green"}),
            )]),
            1 => calls(&[(
                "m2",
                "agent__recall",
                json!({"query": "what does Ada like? green"}),
            )]),
            _ => text("Ada likes green"),
        },
        // The first agent hands over; the second (its own instructions) answers.
        "handoff" => {
            let system = messages[0]["content"].as_str().unwrap_or_default();
            if system.starts_with("You grade") {
                text("graded: 5")
            } else {
                calls(&[(
                    "h1",
                    "agent__handoff",
                    json!({"to": "grader", "note": "please grade"}),
                )])
            }
        }
        // An answer an output guardrail stops, then a revised one.
        "guarded" => {
            let revised = messages
                .last()
                .and_then(|m| m["content"].as_str())
                .is_some_and(|c| c.contains("stopped by the guardrail `polite`"));
            text(if revised { "OK, here it is" } else { "no" })
        }
        // Two helpers at once, then the answer.
        "spawn" => match tool_results {
            0 => calls(&[
                (
                    "s1",
                    "agent__spawn",
                    json!({"agent": "helper", "task": "say hi"}),
                ),
                (
                    "s2",
                    "agent__spawn",
                    json!({"agent": "helper", "task": "say hi"}),
                ),
            ]),
            _ => text("both said hi"),
        },
        // What a spawned helper is asked.
        "say hi" => text("hi from helper"),
        other => Reply::json(
            400,
            &json!({"error": {"message": format!("unscripted task {other}"), "type": "invalid_request_error"}}),
        ),
    }
}

/// The planner's model: a plan that breaks the graph's rules, then (told
/// why) a good one; and the plan's agents.
fn planning(messages: &[Value], task: &str) -> Option<Reply> {
    if task.starts_with("The goal:") {
        let told = messages
            .last()
            .and_then(|m| m["content"].as_str())
            .is_some_and(|c| c.starts_with("That plan cannot run"));
        let plan = if told {
            json!({
                "nodes": {
                    "facts": {"agent": "researcher", "task": "Find facts."},
                    "count": {"tool": "echo/echo", "input": {"n": 3}},
                    "card": {"agent": "writer", "task": "Write a card."}
                },
                "edges": ["facts -> card", "count -> card"]
            })
        } else {
            json!({
                "nodes": {
                    "facts": {"agent": "researcher", "task": "Find facts."},
                    "card": {"agent": "writer", "task": "Write a card."}
                },
                "edges": ["facts -> card", "card -> facts", "card -> summary"]
            })
        };
        return Some(text(&plan.to_string()));
    }
    if task.starts_with("Find facts.") {
        return Some(text("water evaporates"));
    }
    if task.starts_with("Write a card.") {
        let saw = task.contains("What `facts` found: water evaporates")
            && task.contains("What `count` found:")
            && task.contains("The overall goal: the water cycle");
        return Some(text(if saw {
            "card: water evaporates"
        } else {
            "card without facts"
        }));
    }
    None
}

struct Platform {
    runtime: Runtime,
    model: Upstream,
    _dir: tempfile::TempDir,
}

/// A platform in a new directory: the scripted model's key in its vault,
/// the OpenAI adapter pointed at the model, and `plugins`. Returns the
/// model, the directory and the loaded `platform.toml`.
async fn files(plugins: Vec<TestPlugin>) -> (Upstream, tempfile::TempDir, PlatformFile) {
    files_with(plugins, "").await
}

/// [`files`], with more settings (`[inference…]` tables) in `platform.toml`.
async fn files_with(
    plugins: Vec<TestPlugin>,
    more: &str,
) -> (Upstream, tempfile::TempDir, PlatformFile) {
    let model = Upstream::start(script).await;
    let dir = tempfile::tempdir().unwrap();
    fake::add_platform_key(dir.path(), Flavor::OpenAi, SECRET);
    let mut all = vec![fake::plugin(Flavor::OpenAi, "openai", &model.origin())];
    all.extend(plugins);
    let settings = format!(
        "compile-cache = true\ncache-dir = {:?}\n{more}",
        target_dir().join("convergio-test-cache").join("agents")
    );
    let path = write_platform(dir.path(), &settings, &all);
    let platform = PlatformFile::load(&path).unwrap();
    (model, dir, platform)
}

async fn platform() -> Platform {
    let (model, dir, platform) = files(vec![
        TestPlugin::new("echo", "tool", test_component("plain_tool")),
        TestPlugin::new("other", "tool", test_component("plain_tool")),
        agent_llm(
            "agent",
            "inference = true\nplugins = [\"echo\"]\nlogging = true\nstorage = [\"memories\"]",
        ),
    ])
    .await;
    Platform {
        runtime: Runtime::new(&platform).await.unwrap(),
        model,
        _dir: dir,
    }
}

fn definition(extra: Value) -> Value {
    let mut d = json!({
        "name": "helper",
        "instructions": "You help. Use the tools.",
        "model": MODEL,
        "tools": ["echo/echo", "echo/nope", "other/echo"],
    });
    d.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    d
}

impl Platform {
    async fn run(&self, agent: Value, task: &str) -> Value {
        let input = json!({"agent": agent, "task": task});
        self.runtime
            .invoke_json(
                "agent",
                "agent.run",
                &json!([{ "run-id": "r1", "node-id": "n1", "input": input.to_string(), "state": [] }]),
            )
            .await
            .unwrap()
    }

    /// The bodies of the chat requests the model received, in order.
    fn requests(&self) -> Vec<Value> {
        self.model
            .received()
            .iter()
            .filter(|r| r.path.ends_with("/chat/completions"))
            .map(body)
            .collect()
    }
}

fn output(result: &Value) -> Value {
    let text = result["ok"]["output"]
        .as_str()
        .unwrap_or_else(|| panic!("the agent failed: {result}"));
    serde_json::from_str(text).unwrap()
}

/// The error of `kind` the agent answered (a panic shows what it answered
/// instead).
fn error(result: &Value, kind: &str) -> String {
    result["err"][kind]
        .as_str()
        .unwrap_or_else(|| panic!("{result}"))
        .to_owned()
}

fn tool_messages(request: &Value) -> Vec<(String, String)> {
    messages(request)
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| {
            (
                m["tool_call_id"].as_str().unwrap_or_default().to_owned(),
                m["content"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_runs_the_tools_the_model_asks_for_until_it_answers() {
    let p = platform().await;
    let result = p.run(definition(json!({})), "tools").await;
    assert_eq!(output(&result), json!("all done"));

    let requests = p.requests();
    assert_eq!(requests.len(), 3, "three model calls");
    // The model is offered the listed tools the agent may call and that
    // exist: not `echo/nope` (no such tool) nor `other/echo` (not granted).
    let offered: Vec<&str> = requests[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(offered, ["echo__echo"]);
    assert_eq!(
        messages(&requests[0])[0],
        json!({"role": "system", "content": "You help. Use the tools."})
    );
    // Both calls of one answer ran, and their results answer their ids.
    let results = tool_messages(&requests[1]);
    assert_eq!(
        results,
        [
            ("c1".to_owned(), r#"{"n":1}"#.to_owned()),
            ("c2".to_owned(), r#"{"n":2}"#.to_owned())
        ]
    );
    // A failing tool and a tool the agent may not call are errors the
    // model reads, and the loop goes on.
    let results = tool_messages(&requests[2]);
    assert_eq!(results.len(), 4);
    assert!(
        results[2].1.starts_with("error: unknown tool"),
        "{results:?}"
    );
    assert!(
        results[3]
            .1
            .contains("`shell__run` is not one of this agent's tools; its tools are: echo__echo"),
        "{results:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_grants_stop_what_the_definition_does_not_allow() {
    let p = platform().await;
    // The step limit ends a model that never stops calling tools.
    let result = p.run(definition(json!({"max-steps": 3})), "loop").await;
    let err = error(&result, "failed");
    assert!(err.contains("reached its max-steps (3)"), "{err}");
    assert_eq!(p.requests().len(), 3);

    // The token limit: each answer reports 30 tokens.
    let result = p.run(definition(json!({"max-tokens": 50})), "loop").await;
    let err = error(&result, "failed");
    assert!(
        err.contains("used 60 tokens, over its max-tokens (50)"),
        "{err}"
    );

    // A listed tool of a plugin the agent's plugin is not granted: the
    // host refuses it and says which grant would allow it.
    let before = p.requests().len();
    let result = p.run(definition(json!({})), "denied").await;
    assert_eq!(output(&result), json!("could not"));
    let requests = p.requests();
    let results = tool_messages(&requests[before + 1]);
    assert!(
        results[0]
            .1
            .contains("denied: plugin `agent` may not call tools of `other`")
            && results[0].1.contains("plugins = [...]"),
        "{results:?}"
    );

    // A definition that is not one is refused before any model call.
    let before = p.requests().len();
    let result = p
        .run(
            json!({"name": "x", "instructions": "y", "tools": ["web"]}),
            "tools",
        )
        .await;
    let err = error(&result, "invalid-input");
    assert!(err.contains("`web` is not `plugin/tool`"), "{err}");
    assert_eq!(p.requests().len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_schema_makes_the_answer_json_and_a_wrong_one_is_asked_again() {
    let p = platform().await;
    let schema = json!({
        "type": "object",
        "properties": {"grade": {"type": "integer", "minimum": 1, "maximum": 5}},
        "required": ["grade"]
    });
    let result = p
        .run(
            definition(json!({"tools": [], "output-schema": schema})),
            "grade",
        )
        .await;
    assert_eq!(output(&result), json!({"grade": 4}));
    let requests = p.requests();
    assert_eq!(requests.len(), 2, "the first answer did not match");
    assert_eq!(requests[0]["response_format"]["type"], "json_schema");
    assert_eq!(
        requests[0]["response_format"]["json_schema"]["schema"],
        schema
    );
    let correction = messages(&requests[1]).last().cloned().unwrap();
    assert!(
        correction["content"]
            .as_str()
            .unwrap()
            .contains(r#"at /grade: "four" is not of type "integer""#),
        "{correction}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_handoffs_and_guardrails() {
    let p = platform().await;
    // Memory: what the agent remembers it recalls, from its bucket.
    let result = p
        .run(
            definition(json!({"tools": [], "memory": {"bucket": "memories"}})),
            "memory",
        )
        .await;
    assert_eq!(output(&result), json!("Ada likes green"));
    let requests = p.requests();
    let offered: Vec<&str> = requests[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(offered, ["agent__remember", "agent__recall"]);
    assert_eq!(tool_messages(&requests[1])[0].1, "remembered `colour`");
    assert_eq!(tool_messages(&requests[2])[1].1, "colour: Ada likes green");

    // A handoff: the grader takes over with its own instructions and tools.
    let before = p.requests().len();
    let grader = json!({"name": "grader", "description": "grades", "instructions": "You grade answers.", "model": MODEL});
    let result = p
        .run(
            definition(json!({"tools": [], "handoffs": [grader]})),
            "handoff",
        )
        .await;
    assert_eq!(output(&result), json!("graded: 5"));
    let requests = &p.requests()[before..];
    assert_eq!(requests.len(), 2);
    assert_eq!(messages(&requests[1])[0]["content"], "You grade answers.");
    assert!(
        requests[1].get("tools").is_none(),
        "the grader has no tools"
    );
    assert_eq!(tool_messages(&requests[1])[0].1, "handed over to `grader`");

    // An input guardrail blocks a task before any model call.
    let before = p.requests().len();
    let short = json!({"input": [{"name": "short", "schema": {"type": "string", "maxLength": 5}}]});
    let result = p
        .run(
            definition(json!({"guardrails": short})),
            "a task far too long",
        )
        .await;
    let err = error(&result, "invalid-input");
    assert!(
        err.contains("input guardrail `short` blocked the task"),
        "{err}"
    );
    assert_eq!(p.requests().len(), before);

    // A tool guardrail is called with the text; a tool that does not answer
    // `{"allow": …}` (the echo tool answers its arguments) is an error that
    // names the guardrail and the tool.
    let judge = json!({"input": [{"name": "judge", "tool": "echo/echo"}]});
    let result = p
        .run(
            definition(json!({"tools": [], "guardrails": judge})),
            "guarded",
        )
        .await;
    let err = error(&result, "failed");
    assert!(
        err.contains("guardrail `judge`: tool `echo/echo` answered {\"text\":\"guarded\"}, without a boolean `allow`"),
        "{err}"
    );

    // An output guardrail asks for a revision, then passes it.
    let polite = json!({"output": [{"name": "polite", "schema": {"type": "string", "pattern": "^OK"}, "on-fail": "revise"}]});
    let result = p
        .run(
            definition(json!({"tools": [], "guardrails": polite})),
            "guarded",
        )
        .await;
    assert_eq!(output(&result), json!("OK, here it is"));
    // Or blocks the run, naming itself and why.
    let strict =
        json!({"output": [{"name": "polite", "schema": {"type": "string", "pattern": "^OK"}}]});
    let result = p
        .run(
            definition(json!({"tools": [], "guardrails": strict})),
            "guarded",
        )
        .await;
    let err = error(&result, "failed");
    assert!(
        err.contains("output guardrail `polite` blocked the answer")
            && err.contains("does not match"),
        "{err}"
    );
}

/// An agent spawns two helpers at once: each runs as a run of its own on
/// the host's run driver, their answers come back as tool results, and what
/// they used counts against the spawning agent's limits; depth is bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_spawn_agents_within_depth_and_budget() {
    let (model, dir, platform) = files(vec![
        agent_llm("agent", "inference = true\nlogging = true\nruns = true"),
        orchestrator(&["agent"]),
    ])
    .await;
    let runtime = Runtime::new(&platform).await.unwrap();
    let runs = convergio_runtime::graphs::runs(&runtime, &platform, None).unwrap();
    let p = Platform {
        runtime,
        model,
        _dir: dir,
    };
    let helper = json!({"name": "helper", "description": "says hi", "instructions": "You say hi.", "model": MODEL});
    let parent = |extra: Value| {
        let mut d = json!({
            "name": "boss",
            "instructions": "You delegate.",
            "model": MODEL,
            "sub-agents": [helper.clone()],
            "plugin": "agent"
        });
        d.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        d
    };
    let result = p.run(parent(json!({})), "spawn").await;
    assert_eq!(output(&result), json!("both said hi"));
    let requests = p.requests();
    // The boss's two calls and one per helper.
    assert_eq!(requests.len(), 4);
    let last = requests
        .iter()
        .rev()
        .find(|r| messages(r)[1]["content"] == "spawn")
        .unwrap();
    let results = tool_messages(last);
    assert_eq!(
        results,
        [
            ("s1".to_owned(), "hi from helper".to_owned()),
            ("s2".to_owned(), "hi from helper".to_owned())
        ]
    );
    // Each helper was a run of its own, journaled and done.
    let listed = runs.store().list_runs().unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(
        listed.iter().all(|r| r.status.as_str() == "done"),
        "{listed:?}"
    );

    // The helpers' tokens count: 30 + 2 × 30 is within 100, the boss's
    // second answer (30 more) is not.
    let result = p.run(parent(json!({"max-tokens": 100})), "spawn").await;
    let err = error(&result, "failed");
    assert!(
        err.contains("used 120 tokens, over its max-tokens (100; its sub-agents' count too)"),
        "{err}"
    );

    // At its max-depth an agent is not offered the spawn tool, and a call
    // of it anyway is refused.
    let before = p.requests().len();
    let result = p.run(parent(json!({"max-depth": 0})), "spawn").await;
    assert_eq!(output(&result), json!("both said hi"));
    let requests = &p.requests()[before..];
    assert!(requests[0].get("tools").is_none());
    assert!(
        tool_messages(&requests[1])[0]
            .1
            .contains("`agent__spawn` is not one of this agent's tools"),
        "{:?}",
        tool_messages(&requests[1])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planner_node_plans_is_told_what_is_wrong_and_runs_the_plan() {
    let (model, _dir, platform) = files(vec![
        TestPlugin::new("echo", "tool", test_component("plain_tool")),
        agent_llm(
            "agent",
            "inference = true\nlogging = true\nruns = true\nplugins = [\"echo\"]",
        ),
        orchestrator(&["agent", "echo"]),
    ])
    .await;
    let runtime = Runtime::new(&platform).await.unwrap();
    let runs = convergio_runtime::graphs::runs(&runtime, &platform, None).unwrap();
    let graph = json!({
            "state": {"goal": {}, "result": {}},
            "nodes": {"plan": {
                "planner": {
                    "model": MODEL,
                    "agents": [
                        {"name": "researcher", "description": "finds facts", "instructions": "You find facts.", "model": MODEL, "plugin": "agent"},
                        {"name": "writer", "description": "writes cards", "instructions": "You write.", "model": MODEL, "plugin": "agent"}
                    ],
                    "tools": ["echo/echo"],
                    "plugin": "agent"
                },
                "input": "{{ state.goal }}",
                "output": "result"
            }}
    });
    let (run, status) =
        run_graph(&runs, &graph, json!({"goal": "the water cycle"}), "planned").await;
    let output = done(status);
    let result = &output["result"];
    assert_eq!(result["facts"], "water evaporates", "{output}");
    assert_eq!(result["card"], "card: water evaporates", "{output}");
    assert_eq!(result["count"], json!({"n": 3}), "{output}");

    // Two plans asked for, the second after every problem of the first.
    let requests: Vec<Value> = model
        .received()
        .iter()
        .filter(|r| r.path.ends_with("/chat/completions"))
        .map(body)
        .collect();
    let plans: Vec<&Value> = requests
        .iter()
        .filter(|r| {
            messages(r)[1]["content"]
                .as_str()
                .is_some_and(|c| c.starts_with("The goal:"))
        })
        .collect();
    assert_eq!((plans.len(), requests.len()), (2, 4));
    let system = messages(plans[0])[0]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        system.contains("- researcher: finds facts") && system.contains("- echo/echo"),
        "{system}"
    );
    assert_eq!(plans[0]["response_format"]["type"], "json_schema");
    let told = messages(plans[1]).last().unwrap()["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(told.contains("summary") && told.contains("cycle"), "{told}");

    // The model answers and the accepted plan are steps of the call; the
    // plan ran as a run of its own, named after the call.
    let steps = runs.store().run_steps(&run).unwrap();
    let kinds: Vec<&str> = steps.iter().map(|s| s.2.kind.as_str()).collect();
    assert_eq!(kinds, ["model", "model", "plan"]);
    let plan: Value = serde_json::from_slice(&steps[2].2.result).unwrap();
    assert_eq!(plan["edges"], json!(["facts -> card", "count -> card"]));
    let child = convergio_journal::RunId::from("planned:plan:1:plan".to_owned());
    assert_eq!(runs.info(&child).await.unwrap().status.as_str(), "done");

    // What each node's model calls used is in the journal (and the run's
    // events): the planner's two answers, and one answer per plan agent.
    // (At the fake model's price, 20 tokens in and 10 out cost 7 µ$.)
    let used = |calls, input_tokens, output_tokens| CallUsage {
        calls,
        input_tokens,
        output_tokens,
        cost_micro_usd: 7 * calls,
    };
    let store = runs.store();
    assert_eq!(
        convergio_cap_runs::usage(&**store, &run).unwrap(),
        [("plan".to_owned(), used(2, 40, 20))]
    );
    assert_eq!(
        convergio_cap_runs::usage(&**store, &child).unwrap(),
        [
            ("card".to_owned(), used(1, 20, 10)),
            ("facts".to_owned(), used(1, 20, 10))
        ]
    );
    let events: Vec<_> = store
        .read_after(&child, 0, 100)
        .unwrap()
        .iter()
        .flat_map(convergio_cap_runs::events_of)
        .filter(|e| e.topic == "node.result")
        .map(|e| (e.data["call"].clone(), e.data["usage"].clone()))
        .collect();
    assert!(
        events.contains(&(
            json!("card"),
            json!({"calls": 1, "input-tokens": 20, "output-tokens": 10, "cost-micro-usd": 7})
        )),
        "{events:?}"
    );
    // The tool's call used no model.
    assert!(
        events.contains(&(json!("count"), Value::Null)),
        "{events:?}"
    );
    // The plan's run is the planner's child.
    let children: Vec<String> = convergio_cap_runs::children(&**store, &run)
        .unwrap()
        .into_iter()
        .map(|r| String::from(r.id))
        .collect();
    assert_eq!(children, std::slice::from_ref(&child.to_string()));
    // And the planner's call says so in the parent's events.
    let started: Vec<Value> = store
        .read_after(&run, 0, 100)
        .unwrap()
        .iter()
        .flat_map(convergio_cap_runs::events_of)
        .filter(|e| e.topic == "node.result")
        .map(|e| e.data["runs"].clone())
        .collect();
    assert_eq!(started, [json!([child.as_str()])]);
}

/// `[inference.budgets] run`: what one run may spend in all; a model call
/// that would go past it is refused, naming the run's budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_budget_stops_the_model_calls_that_would_pass_it() {
    let (_model, _dir, platform) = files_with(
        vec![
            agent_llm("agent", "inference = true\nlogging = true"),
            orchestrator(&["agent"]),
        ],
        "\n[inference.prices]\n\"openai/gpt-6-luna\" = { input = 1.0, output = 1.0 }\n\n[inference.budgets]\nrun = 0.000001\n",
    )
    .await;
    let runtime = Runtime::new(&platform).await.unwrap();
    let runs = convergio_runtime::graphs::runs(&runtime, &platform, None).unwrap();
    // (The definition is named from the graph's `agents`.)
    let graph = json!({
        "agents": {"helper": definition(json!({}))},
        "nodes": {"ask": {"agent": "agent", "input": {"agent": "helper", "task": "tools"}}}
    });
    let (_, status) = run_graph(&runs, &graph, json!({}), "thrifty").await;
    let convergio_graph::engine::Status::Failed { error } = status else {
        panic!("{status:?}");
    };
    assert!(
        error.contains("budget-exceeded: the budget of run thrifty is 0.000001 USD"),
        "{error}"
    );
}

/// "What if the model had said…": a fork changes a model answer the agent
/// recorded and the agent goes on from there, asking no model for what it
/// recorded up to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_changes_a_recorded_model_answer_and_the_agent_goes_on_from_it() {
    let (model, _dir, platform) = files(vec![
        TestPlugin::new("echo", "tool", test_component("plain_tool")),
        agent_llm(
            "agent",
            "inference = true\nplugins = [\"echo\"]\nlogging = true",
        ),
        orchestrator(&["agent"]),
    ])
    .await;
    let runtime = Runtime::new(&platform).await.unwrap();
    let runs = convergio_runtime::graphs::runs(&runtime, &platform, None).unwrap();
    let graph = json!({
        "state": {"answer": {}},
        "nodes": {"agent": {
            "agent": "agent",
            "input": {"agent": definition(json!({})), "task": "tools"},
            "output": "answer"
        }}
    });
    let (run, status) = run_graph(&runs, &graph, json!({}), "original").await;
    assert_eq!(done(status)["answer"], "all done");
    // The tool it was refused is in the run's events, as its warning.
    let warnings: Vec<Value> = runs
        .store()
        .read_after(&run, 0, 100)
        .unwrap()
        .iter()
        .flat_map(convergio_cap_runs::events_of)
        .filter(|e| e.topic == "node.result")
        .flat_map(|e| e.data["warnings"].as_array().cloned().unwrap_or_default())
        .collect();
    assert!(
        warnings.iter().any(|w| w
            .as_str()
            .is_some_and(|w| w.contains("`shell__run` is not one of this agent's tools"))),
        "{warnings:?}"
    );
    let asked = model.received().len();
    // The step that dispatched the agent's call: the call is in flight there.
    let seq = runs.steps(&run).await.unwrap()[0].seq;

    // Its first answer (two tool calls) becomes a final answer.
    let step = |index, result| convergio_cap_runs::StepPatch {
        call: "agent".to_owned(),
        index,
        result,
    };
    let fork = runs
        .fork_step(
            &run,
            seq,
            None,
            step(0, json!({"content": "Paris", "tool-calls": []})),
        )
        .await
        .unwrap();
    assert_eq!(
        done(runs.wait_final(&fork).await.unwrap())["answer"],
        "Paris"
    );
    // Its second (after the tools) says something else: the first answer
    // and the tools' results are read back, not asked for again.
    let fork = runs
        .fork_step(
            &run,
            seq,
            None,
            step(2, json!({"content": "changed my mind", "tool-calls": []})),
        )
        .await
        .unwrap();
    assert_eq!(
        done(runs.wait_final(&fork).await.unwrap())["answer"],
        "changed my mind"
    );
    assert_eq!(model.received().len(), asked, "no model was asked again");
    let kinds: Vec<String> = runs
        .store()
        .run_steps(&fork)
        .unwrap()
        .iter()
        .map(|s| s.2.kind.clone())
        .collect();
    assert_eq!(kinds, ["model", "tools", "model"]);

    // A step the call did not record, or a call not in flight, is said so.
    let err = runs
        .fork_step(&run, seq, None, step(9, json!({})))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("has no step 9"), "{err}");
    let last = runs.steps(&run).await.unwrap().last().unwrap().seq;
    let err = runs
        .fork_step(&run, last, None, step(0, json!({})))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("call `agent` is not in flight at seq"),
        "{err}"
    );
}
