//! Provider plugins behind the inference router: the router calls a
//! provider component through `convergio:platform/provider`, each call in
//! its own session under the plugin's limits, a stream in a session that
//! lives until the stream ends.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use convergio_runtime::inference::{
    Caller, ChatRequest, Message, ModelError, ModelSelector, NoSink, ResponseFormat, Role, Router,
    RouterConfig, Sampling, Strategy,
};
use convergio_tests::{TestPlugin, start, test_component};

fn chat(model: &str, text: &str) -> ChatRequest {
    ChatRequest {
        model: ModelSelector::Named(model.into()),
        messages: vec![
            Message::text(Role::System, "be brief"),
            Message::text(Role::User, text),
        ],
        tools: vec![],
        sampling: Sampling::default(),
        format: ResponseFormat::Text,
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
async fn a_provider_component_answers_and_streams_through_the_router() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = TestPlugin::new("echo", "provider", test_component("echo_provider"))
        .limits("max-instances = 2");
    let runtime = start(dir.path(), "", &[plugin]).await;
    let providers = runtime.providers().await.unwrap();
    assert_eq!(providers.len(), 1);
    assert_eq!(providers[0].id(), "echo");
    assert_eq!(providers[0].key(), None, "no keys granted");
    let router = Router::new(RouterConfig::default(), providers, Arc::new(NoSink));

    let models = router.models().await;
    assert_eq!(
        models.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["echo/echo-1", "echo/echo-broken"]
    );

    let done = router
        .complete(&caller(), chat("echo/echo-1", "hello world"))
        .await
        .unwrap();
    assert_eq!(done.message.content, "echo: hello world");
    // 4 words in, 3 out, at $1 and $2 per million: 4 + 6 micro-dollars.
    assert_eq!(
        (
            done.usage.input_tokens,
            done.usage.output_tokens,
            done.usage.cost_micro_usd
        ),
        (4, 3, 10)
    );

    // A policy request picks the same model.
    let picked = router
        .complete(
            &caller(),
            ChatRequest {
                model: ModelSelector::Policy(Strategy::Cheapest, Default::default()),
                ..chat("", "hi")
            },
        )
        .await
        .unwrap();
    assert_eq!(picked.provider, "echo");

    // Streams: one delta per word, then usage; more streams than instance slots
    // work one after the other because a finished stream frees its slot.
    for _ in 0..3 {
        let mut stream = router
            .stream(&caller(), chat("echo/echo-1", "one two three"))
            .await
            .unwrap();
        let mut pieces = Vec::new();
        let mut usage = None;
        while let Some(delta) = stream.next().await {
            let delta = delta.unwrap();
            if !delta.content.is_empty() {
                pieces.push(delta.content);
            }
            usage = usage.or(delta.usage);
        }
        assert_eq!(pieces.concat(), "echo: one two three ");
        assert_eq!(pieces.len(), 4, "streamed word by word");
        assert_eq!(usage.unwrap().output_tokens, 4);
    }

    // A stream that breaks after its first delta reports the error, then ends.
    let mut stream = router
        .stream(&caller(), chat("echo/echo-broken", "a b c d"))
        .await
        .unwrap();
    let mut failed = false;
    while let Some(delta) = stream.next().await {
        if let Err(e) = delta {
            assert!(matches!(e, ModelError::Upstream(_)), "{e}");
            failed = true;
        }
    }
    assert!(failed);

    let err = router
        .embed(
            &caller(),
            ModelSelector::Named("echo/echo-1".into()),
            vec!["x".into()],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ModelError::BadRequest(m) if m.contains("no embeddings")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_asks_models_through_the_inference_interface() {
    let dir = tempfile::tempdir().unwrap();
    let provider = TestPlugin::new("echo", "provider", test_component("echo_provider"));
    let agent = TestPlugin::new("tutor", "agent", test_component("chat_agent"))
        .declares(&["inference"])
        .grants("inference = true");
    // A budget that pays for one small call and not for a second.
    let settings = "[inference.budgets]\nagents = { tutor = 0.001 }\n";
    let path = convergio_tests::write_platform(dir.path(), "", &[provider, agent]);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{settings}\n{text}")).unwrap();
    let platform = convergio_runtime::Platform::load(&path).unwrap();
    let runtime = convergio_runtime::Runtime::new(&platform).await.unwrap();

    let run = |input: serde_json::Value| {
        let runtime = runtime.clone();
        async move {
            runtime
                .invoke_json(
                    "tutor",
                    "agent.run",
                    &serde_json::json!([{ "run-id": "r1", "node-id": "n1", "input": input.to_string(), "state": [] }]),
                )
                .await
                .unwrap()
        }
    };
    let out = run(serde_json::json!({ "model": "echo/echo-1", "prompt": "what is 2+2" })).await;
    let output: serde_json::Value =
        serde_json::from_str(out["ok"]["output"].as_str().unwrap()).unwrap();
    assert_eq!(output["text"], "echo: what is 2+2");
    assert_eq!(output["model"], "echo/echo-1");

    let out = run(serde_json::json!({ "prompt": "stream me", "stream": true })).await;
    let output: serde_json::Value =
        serde_json::from_str(out["ok"]["output"].as_str().unwrap()).unwrap();
    assert_eq!(output["text"], "echo: stream me ");
    assert!(output["deltas"].as_u64().unwrap() >= 3, "{output}");

    // The agent's budget ($0.001 = 1000 µ$) is spent by holds of up to
    // (prompt bytes + overhead) × $1/M + 64 × $2/M each; keep asking until refused.
    let mut refused = None;
    for _ in 0..200 {
        let out =
            run(serde_json::json!({ "model": "echo/echo-1", "prompt": "x".repeat(2000) })).await;
        if let Some(err) = out["err"]["inference-failed"].as_str() {
            refused = Some(err.to_owned());
            break;
        }
    }
    let refused = refused.expect("the budget ran out");
    assert!(
        refused.contains("BudgetExceeded") && refused.contains("agent tutor"),
        "{refused}"
    );

    // What was spent is in the ledger: a restarted platform still refuses.
    drop(runtime);
    let runtime = convergio_runtime::Runtime::new(&platform).await.unwrap();
    let input = serde_json::json!({ "model": "echo/echo-1", "prompt": "x".repeat(2000) });
    let out = runtime
        .invoke_json(
            "tutor",
            "agent.run",
            &serde_json::json!([{ "run-id": "r2", "node-id": "n1", "input": input.to_string(), "state": [] }]),
        )
        .await
        .unwrap();
    let err = out["err"]["inference-failed"]
        .as_str()
        .unwrap_or_else(|| panic!("{out}"));
    assert!(err.contains("BudgetExceeded"), "{err}");

    // Without the grant the agent does not load.
    let denied =
        TestPlugin::new("sneaky", "agent", test_component("chat_agent")).declares(&["inference"]);
    let err = convergio_tests::start_err(tempfile::tempdir().unwrap().path(), "", &[denied]).await;
    assert!(err.contains("not granted `inference`"), "{err}");
}

/// Provider instances hold no state between calls, so the host keeps them
/// warm: the next call (complete or stream) runs in the instance the last
/// one used, unless that call trapped, and not at all with `warm-instances = 0`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_instances_stay_warm_unless_a_call_fails() {
    async fn calls(router: &Router) -> String {
        router
            .complete(&caller(), chat("echo/echo-1", "!calls"))
            .await
            .unwrap()
            .message
            .content
    }
    let dir = tempfile::tempdir().unwrap();
    let warm = TestPlugin::new("echo", "provider", test_component("echo_provider"));
    let runtime = start(dir.path(), "", &[warm]).await;
    let router = Router::new(
        RouterConfig::default(),
        runtime.providers().await.unwrap(),
        Arc::new(NoSink),
    );
    assert_eq!(calls(&router).await, "calls: 1");
    assert_eq!(calls(&router).await, "calls: 2");
    // A stream that ran to its end gives its instance back too.
    let mut stream = router
        .stream(&caller(), chat("echo/echo-1", "hello there"))
        .await
        .unwrap();
    while let Some(delta) = stream.next().await {
        delta.unwrap();
    }
    drop(stream);
    assert_eq!(calls(&router).await, "calls: 4");
    // A trap ends the instance: the next call starts a fresh one.
    let err = router
        .complete(&caller(), chat("echo/echo-1", "!trap"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("panicked"), "{err}");
    assert_eq!(calls(&router).await, "calls: 1");
    assert_eq!(calls(&router).await, "calls: 2");
    // A reload drops the warm instances of the old version.
    runtime.reload("echo").await.unwrap();
    assert_eq!(calls(&router).await, "calls: 1");

    let dir = tempfile::tempdir().unwrap();
    let cold = TestPlugin::new("echo", "provider", test_component("echo_provider"))
        .limits("warm-instances = 0");
    let runtime = start(dir.path(), "", &[cold]).await;
    let router = Router::new(
        RouterConfig::default(),
        runtime.providers().await.unwrap(),
        Arc::new(NoSink),
    );
    assert_eq!(calls(&router).await, "calls: 1");
    assert_eq!(calls(&router).await, "calls: 1");
}
