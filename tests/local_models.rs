//! Local models through the whole path: the router → the `provider-local`
//! component → `convergio:platform/local-model` in the host → llama.cpp with
//! the real test model. And zero-cloud mode: only local models, no outbound
//! HTTP at all.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use convergio_runtime::inference::{
    Caller, ChatRequest, FinishReason, Message, ModelError, ModelSelector, Requirements, Role,
    Sampling, Strategy, ToolDefinition,
};
use convergio_runtime::local_models::ModelStore;
use convergio_tests::upstream::{Reply, Upstream};
use convergio_tests::{
    TestPlugin, agent_llm, crate_component, done, orchestrator, run_graph, start, test_component,
    test_model, write_platform,
};
use serde_json::json;

const SETTINGS: &str = "
[inference]
zero-cloud = true

[local-models]
threads = 2
context-length = 1024
";

/// Tests that decode take turns: llama.cpp's threads spin while they wait
/// for each other, so six runtimes decoding at once with two threads each on
/// a 2-core machine starved one another past the plugins' 30 s deadline.
static DECODING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A platform dir whose model cache holds the test model as `smollm2`, and
/// this test's turn to decode (held until the test ends).
struct ModelDir {
    dir: tempfile::TempDir,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

impl ModelDir {
    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }
}

async fn with_model() -> ModelDir {
    let turn = DECODING.lock().await;
    let dir = tempfile::tempdir().unwrap();
    ModelStore::open(dir.path().join("platform-data/models"))
        .unwrap()
        .pull(
            test_model().to_str().unwrap(),
            Some("smollm2"),
            None,
            &mut |_| {},
        )
        .unwrap();
    ModelDir { dir, _turn: turn }
}

fn local(grants: &str) -> TestPlugin {
    TestPlugin::new(
        "local",
        "provider",
        crate_component("convergio_provider_local"),
    )
    .declares(&["local-model"])
    .grants(grants)
}

fn ask(model: ModelSelector, text: &str, max_tokens: u32) -> ChatRequest {
    ChatRequest {
        sampling: Sampling {
            temperature: Some(0.0),
            max_tokens: Some(max_tokens),
            ..Sampling::default()
        },
        ..ChatRequest::new(model, vec![Message::text(Role::User, text)])
    }
}

fn caller() -> Caller {
    Caller {
        plugin: "cli".into(),
        agent: None,
        run: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_model_answers_and_streams_through_the_provider_component() {
    let dir = with_model().await;
    let runtime = start(dir.path(), SETTINGS, &[local("models = [\"smollm2\"]")]).await;
    let router = runtime.router().unwrap();
    let models = router.models().await;
    let (name, info) = &models[0];
    assert_eq!(name, "local/smollm2");
    assert!(info.local);
    assert_eq!(info.context_window, 8192);

    let question = "What is the capital of France?";
    let done = router
        .complete(
            &caller(),
            ask(ModelSelector::Named("local/smollm2".into()), question, 32),
        )
        .await
        .unwrap();
    assert!(done.message.content.contains("Paris"), "{done:?}");
    assert_eq!(done.finish_reason, FinishReason::Stop);
    assert!(done.usage.output_tokens > 0);
    assert_eq!(done.usage.cost_micro_usd, 0);

    // Streaming through the component: several deltas, the same text, and
    // a last delta with the finish reason and usage.
    let mut stream = router
        .stream(
            &caller(),
            ask(ModelSelector::Named("local/smollm2".into()), question, 32),
        )
        .await
        .unwrap();
    let mut text = String::new();
    let mut deltas = 0;
    let mut last = None;
    while let Some(delta) = stream.next().await {
        let delta = delta.unwrap();
        deltas += 1;
        text.push_str(&delta.content);
        if delta.finish_reason.is_some() {
            last = Some(delta);
        }
    }
    assert!(deltas >= 3, "{deltas} deltas");
    assert_eq!(text, done.message.content);
    let last = last.expect("a last delta");
    assert_eq!(last.finish_reason, Some(FinishReason::Stop));
    assert_eq!(last.usage.unwrap().output_tokens, done.usage.output_tokens);

    // max-tokens ends it with `length`.
    let cut = router
        .complete(
            &caller(),
            ask(
                ModelSelector::Named("local/smollm2".into()),
                "Tell me a story.",
                4,
            ),
        )
        .await
        .unwrap();
    assert_eq!(cut.finish_reason, FinishReason::Length);
    assert_eq!(cut.usage.output_tokens, 4);

    // Policy selection finds it, local-only.
    let picked = router
        .complete(
            &caller(),
            ask(
                ModelSelector::Policy(
                    Strategy::Cheapest,
                    Requirements {
                        local_only: true,
                        ..Requirements::default()
                    },
                ),
                question,
                8,
            ),
        )
        .await
        .unwrap();
    assert_eq!(picked.model, "smollm2");

    // Embeddings through the component.
    let vectors = router
        .embed(
            &caller(),
            ModelSelector::Named("local/smollm2".into()),
            vec!["hello".into()],
        )
        .await
        .unwrap();
    assert_eq!(vectors.vectors[0].len(), 576);
}

/// A plugin asks for JSON of a schema: the router passes it to the local
/// provider, llama.cpp samples under the schema's grammar, and the host
/// validates the answer. The 135M model answers valid JSON on its first try.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_gets_schema_valid_json_from_the_local_model() {
    let dir = with_model().await;
    let agent = TestPlugin::new("tutor", "agent", test_component("chat_agent"))
        .declares(&["inference"])
        .grants("inference = true");
    let runtime = start(
        dir.path(),
        SETTINGS,
        &[local("models = [\"smollm2\"]"), agent],
    )
    .await;
    let schema = json!({
        "type": "object",
        "properties": {
            "subject": {"enum": ["maths", "history", "biology"]},
            "difficulty": {"type": "integer", "minimum": 1, "maximum": 5},
            "question": {"type": "string", "maxLength": 120}
        },
        "required": ["subject", "difficulty", "question"],
        "additionalProperties": false
    });
    let input = json!({
        "model": "local/smollm2",
        "prompt": "Write one quiz question about the French Revolution.",
        "schema": schema,
    });
    let out = runtime
        .invoke_json(
            "tutor",
            "agent.run",
            &json!([{ "run-id": "r1", "node-id": "n1", "input": input.to_string(), "state": [] }]),
        )
        .await
        .unwrap();
    let output: serde_json::Value = serde_json::from_str(
        out["ok"]["output"]
            .as_str()
            .unwrap_or_else(|| panic!("{out}")),
    )
    .unwrap();
    let answer: serde_json::Value = serde_json::from_str(output["text"].as_str().unwrap())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {output}"));
    let validator = jsonschema::validator_for(&schema).unwrap();
    assert!(validator.is_valid(&answer), "{answer}");
    assert_eq!(output["model"], "local/smollm2");

    // A schema the grammar cannot follow is the caller's error, said so.
    let input = json!({
        "model": "local/smollm2",
        "prompt": "Hi",
        "schema": {"$ref": "https://example.com/elsewhere.json"},
    });
    let out = runtime
        .invoke_json(
            "tutor",
            "agent.run",
            &json!([{ "run-id": "r2", "node-id": "n1", "input": input.to_string(), "state": [] }]),
        )
        .await
        .unwrap();
    let err = out["err"]["inference-failed"]
        .as_str()
        .unwrap_or_else(|| panic!("{out}"));
    assert!(err.contains("BadRequest"), "{err}");
}

/// Tools on a local model: the answer is a call of one of the offered
/// tools with arguments of its schema, or the answer, never anything else;
/// and a conversation that carries a tool's result goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_model_calls_tools_in_form() {
    let dir = with_model().await;
    let runtime = start(dir.path(), SETTINGS, &[local("models = [\"smollm2\"]")]).await;
    let router = runtime.router().unwrap();
    let (_, info) = &router.models().await[0];
    assert!(info.features.tools && info.features.json_mode);
    let mut request = ask(
        ModelSelector::Named("local/smollm2".into()),
        "What is the weather in Paris? Use the tool.",
        80,
    );
    request.tools = vec![ToolDefinition {
        name: "weather__now".into(),
        description: "The weather now in a city.".into(),
        parameters: json!({
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 40}},
            "required": ["city"]
        })
        .to_string(),
    }];
    let done = router.complete(&caller(), request.clone()).await.unwrap();
    match done.message.tool_calls.as_slice() {
        [call] => {
            assert_eq!(call.name, "weather__now");
            assert_eq!(done.finish_reason, FinishReason::ToolCalls);
            let args: serde_json::Value = serde_json::from_str(&call.arguments).unwrap();
            assert!(args["city"].is_string(), "{args}");
            // The result goes back; the model answers or calls again, in form.
            request.messages.push(done.message.clone());
            let mut result = Message::text(Role::Tool, "sunny, 21 °C");
            result.tool_call_id = Some(call.id.clone());
            request.messages.push(result);
            let next = router.complete(&caller(), request).await.unwrap();
            assert!(
                !next.message.content.is_empty() || next.message.tool_calls.len() == 1,
                "{next:?}"
            );
        }
        [] => assert!(!done.message.content.is_empty(), "{done:?}"),
        more => panic!("one call at most: {more:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_not_granted_or_not_installed_are_refused_clearly() {
    let dir = with_model().await;
    // Granted a model that is not in the cache; `smollm2` is installed but not granted.
    let runtime = start(dir.path(), SETTINGS, &[local("models = [\"other\"]")]).await;
    let router = runtime.router().unwrap();
    assert!(
        router.models().await.is_empty(),
        "ungranted models are not listed"
    );
    let err = router
        .complete(
            &caller(),
            ask(ModelSelector::Named("local/smollm2".into()), "hi", 4),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ModelError::NoModel(_)), "{err:?}");
}

/// In zero-cloud mode no plugin reaches the network, whatever its grants.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_cloud_refuses_every_outbound_request() {
    let upstream = Upstream::start(|_| Reply::json(200, &json!({"ok": true}))).await;
    let dir = tempfile::tempdir().unwrap();
    let fetcher = TestPlugin::new("fetcher", "tool", test_component("http_tool"))
        .declares(&["http"])
        .grants(&format!("http = [\"{}\"]", upstream.origin()));
    let runtime = start(dir.path(), "\n[inference]\nzero-cloud = true\n", &[fetcher]).await;
    let out = runtime
        .invoke_json(
            "fetcher",
            "tool.invoke",
            &json!([
                "fetch",
                json!({ "url": format!("{}/", upstream.origin()) }).to_string()
            ]),
        )
        .await
        .unwrap();
    let results: Vec<serde_json::Value> =
        serde_json::from_str(out["ok"].as_str().unwrap()).unwrap();
    assert_eq!(results[0]["error"], "ErrorCode::HttpRequestDenied", "{out}");
    assert!(upstream.received().is_empty(), "nothing left the machine");
}

/// A planner node on the local model: the plan is JSON of the plan schema
/// (grammar-constrained), passes the graph's rules, and runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_model_writes_a_plan_that_runs() {
    let dir = with_model().await;
    let plugins = [
        local("models = [\"smollm2\"]"),
        agent_llm("agent-llm", "inference = true\nruns = true\nlogging = true"),
        orchestrator(&["agent-llm"]),
    ];
    let path = write_platform(dir.path(), SETTINGS, &plugins);
    let platform = convergio_runtime::config::Platform::load(&path).unwrap();
    let runtime = convergio_runtime::Runtime::new(&platform).await.unwrap();
    let runs = convergio_runtime::graphs::runs(&runtime, &platform, None).unwrap();
    let agent = |name: &str, about: &str| {
        json!({"name": name, "description": about, "instructions": about,
               "model": "local/smollm2", "temperature": 0, "max-output-tokens": 40})
    };
    let graph = json!({
            "state": {"goal": {}, "result": {}},
            "nodes": {"plan": {
                "planner": {
                    "model": "local/smollm2",
                    "max-nodes": 2,
                    "max-output-tokens": 200,
                    "agents": [
                        agent("researcher", "You give short facts about a topic."),
                        agent("writer", "You write a short study card from facts.")
                    ]
                },
                "input": "{{ state.goal }}",
                "output": "result"
            }}
    });
    let goal = json!({"goal": "a study card on volcanoes"});
    let (run, status) = run_graph(&runs, &graph, goal, "local-plan").await;
    let output = done(status);
    let steps = runs.store().run_steps(&run).unwrap();
    let kinds: Vec<&str> = steps.iter().map(|s| s.2.kind.as_str()).collect();
    assert_eq!(kinds.last(), Some(&"plan"), "{kinds:?}");
    assert!(kinds.len() <= 4, "at most 3 plans asked for: {kinds:?}");
    let plan: serde_json::Value = serde_json::from_slice(&steps.last().unwrap().2.result).unwrap();
    let nodes = plan["nodes"].as_object().unwrap();
    assert!((1..=2).contains(&nodes.len()), "{plan}");
    for node in nodes.values() {
        let name = node["input"]["agent"]["name"].as_str().unwrap();
        assert!(["researcher", "writer"].contains(&name), "{plan}");
    }
    // Every node of the plan answered.
    let result = output["result"].as_object().unwrap();
    assert_eq!(result.len(), nodes.len(), "{output}");
    assert!(
        result
            .values()
            .all(|v| v.as_str().is_some_and(|t| !t.is_empty())),
        "{output}"
    );
}
