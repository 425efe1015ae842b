//! The Ollama backend against a fake Ollama server speaking Ollama's wire
//! format (`common/ollama_server.rs`).
#![cfg(feature = "ollama")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/ollama_server.rs"]
mod ollama_server;

use std::sync::Arc;
use std::time::Duration;

use convergio_cap_inference::{Message, ResponseFormat, Role, Sampling, ToolCall};
use convergio_cap_local_model::{
    Backend, Error, Event, Events, GenerateRequest, Generation, OllamaBackend, OllamaPullProgress,
    collect,
};
use ollama_server::{ChatScript, FakeOllama, PULL_LAYER, PULL_TOTAL, PULLABLE, Pace};
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::sync::mpsc::error::TryRecvError;

const WAIT: Duration = Duration::from_secs(10);

fn request(model: &str, sampling: Sampling) -> GenerateRequest {
    GenerateRequest {
        model: model.to_owned(),
        messages: vec![Message::text(Role::User, "Say hello to the world")],
        sampling,
        format: ResponseFormat::Text,
    }
}

async fn next(events: &mut Events) -> Event {
    tokio::time::timeout(WAIT, events.recv())
        .await
        .expect("an event in time")
        .expect("the stream goes on")
        .expect("no error")
}

async fn started() -> (FakeOllama, OllamaBackend) {
    started_with(ChatScript::default()).await
}

async fn started_with(script: ChatScript) -> (FakeOllama, OllamaBackend) {
    let server = FakeOllama::start(script).await;
    let backend = OllamaBackend::new(&server.url).unwrap();
    (server, backend)
}

#[test]
fn a_bad_url_is_invalid_input() {
    for url in [
        "not a url",
        "ftp://127.0.0.1:11434",
        "http://",
        "http://h:1/?q=1",
    ] {
        match OllamaBackend::new(url) {
            Err(Error::InvalidInput(message)) => {
                assert!(message.contains(url), "{message}");
            }
            other => panic!("{url}: {other:?}"),
        }
    }
    let backend = OllamaBackend::new("http://127.0.0.1:11434/").unwrap();
    assert_eq!(backend.url(), "http://127.0.0.1:11434");
    assert_eq!(backend.name(), "ollama");
}

#[tokio::test]
async fn lists_the_models_with_what_show_tells() {
    let (server, backend) = started().await;
    let models = backend.list().await.unwrap();
    assert_eq!(models.len(), 2);

    let llama = &models[0];
    assert_eq!(llama.name, "llama3.2:1b");
    assert_eq!(llama.backend, "ollama");
    assert_eq!(llama.size_bytes, 1_321_098_329);
    assert_eq!(llama.quantization, "Q8_0");
    assert_eq!(llama.context_length, 131_072);
    assert_eq!(llama.embedding_length, 2048);
    // The GGUF blob's sha256, from the modelfile's `FROM`.
    assert_eq!(
        llama.sha256,
        "74701a8c35f6c8d9a4b91f3f3497643001d63e0c7a84e085bed452548fa88d45"
    );

    let minilm = &models[1];
    assert_eq!(minilm.name, "all-minilm:latest");
    assert_eq!(minilm.quantization, "F16");
    assert_eq!(minilm.context_length, 256);
    assert_eq!(minilm.embedding_length, 384);

    // `/api/show` is asked once per model; a second listing is one request.
    let shown: Vec<_> = server.bodies("/api/show");
    assert_eq!(shown.len(), 2);
    assert_eq!(shown[0]["name"], "llama3.2:1b");
    let again = backend.list().await.unwrap();
    assert_eq!(again, models);
    assert_eq!(server.bodies("/api/show").len(), 2);
    assert_eq!(server.bodies("/api/tags").len(), 2);
    let calls: Vec<_> = server
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        calls,
        [
            "GET /api/tags",
            "POST /api/show",
            "POST /api/show",
            "GET /api/tags"
        ]
    );
}

#[tokio::test]
async fn a_chat_streams_its_pieces_as_they_come() {
    let gate = Arc::new(Semaphore::new(0));
    let (server, backend) = started_with(ChatScript {
        pace: Pace::Gated(Arc::clone(&gate)),
        ..ChatScript::default()
    })
    .await;
    let mut events = backend
        .generate(request("llama3.2:1b", Sampling::default()))
        .await
        .unwrap();

    assert_eq!(next(&mut events).await, Event::Text("Hel".into()));
    // The server holds the next piece: nothing else has arrived.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(events.try_recv().unwrap_err(), TryRecvError::Empty);

    gate.add_permits(1);
    assert_eq!(next(&mut events).await, Event::Text("lo".into()));
    gate.add_permits(2);
    assert_eq!(next(&mut events).await, Event::Text(", ".into()));
    assert_eq!(next(&mut events).await, Event::Text("world".into()));
    let Event::Done(generation) = next(&mut events).await else {
        panic!("no Done");
    };
    assert_eq!(generation.text, "Hello, world");
    assert!(generation.stopped);
    // Prompt: 5 words; answer: 4 pieces.
    assert_eq!(generation.usage.input_tokens, 5);
    assert_eq!(generation.usage.output_tokens, 4);
    assert_eq!(generation.usage.cost_micro_usd, 0);
    assert!(events.recv().await.is_none());

    let outcome = server.chat_ended(WAIT).await;
    assert_eq!(outcome.pieces_sent, 4);
    assert!(!outcome.closed_early);
}

#[tokio::test]
async fn max_tokens_that_cut_the_answer_leave_it_unstopped() {
    let (_server, backend) = started().await;
    let cut = |max| Sampling {
        max_tokens: Some(max),
        ..Sampling::default()
    };

    // The server stops after 2 pieces with `done_reason: "length"`.
    let generation = collect(
        backend
            .generate(request("llama3.2:1b", cut(2)))
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(generation.text, "Hello");
    assert!(!generation.stopped);
    assert_eq!(generation.usage.output_tokens, 2);

    // Room for more than the answer: `done_reason: "stop"`.
    let generation = collect(
        backend
            .generate(request("llama3.2:1b", cut(10)))
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(
        generation,
        Generation {
            text: "Hello, world".into(),
            stopped: true,
            usage: convergio_cap_inference::Usage {
                input_tokens: 5,
                output_tokens: 4,
                cost_micro_usd: 0,
            },
        }
    );
}

#[tokio::test]
async fn messages_and_sampling_are_sent_as_ollama_wants_them() {
    let (server, backend) = started().await;
    let mut assistant = Message::text(Role::Assistant, "");
    assistant.tool_calls = vec![ToolCall {
        id: "call-1".into(),
        name: "get_weather".into(),
        arguments: r#"{"city":"Paris"}"#.into(),
    }];
    let mut tool = Message::text(Role::Tool, "sunny, 21 C");
    tool.tool_call_id = Some("call-1".into());
    let request = GenerateRequest {
        model: "llama3.2:1b".into(),
        messages: vec![
            Message::text(Role::System, "You are terse."),
            Message::text(Role::User, "Weather in Paris?"),
            assistant,
            tool,
        ],
        sampling: Sampling {
            temperature: Some(0.25),
            top_p: Some(0.5),
            top_k: Some(40),
            seed: Some(42),
            max_tokens: Some(64),
            stop: vec!["\n\n".into(), "User:".into()],
        },
        format: ResponseFormat::JsonSchema(
            r#"{"type":"object","properties":{"ok":{"type":"boolean"}},"required":["ok"]}"#.into(),
        ),
    };
    collect(backend.generate(request).await.unwrap())
        .await
        .unwrap();

    let sent = server.bodies("/api/chat");
    assert_eq!(sent.len(), 1);
    let body = &sent[0];
    assert_eq!(body["model"], "llama3.2:1b");
    assert_eq!(body["stream"], true);
    let messages = body["messages"].as_array().unwrap();
    let roles: Vec<_> = messages.iter().map(|m| m["role"].clone()).collect();
    assert_eq!(
        roles,
        [
            json!("system"),
            json!("user"),
            json!("assistant"),
            json!("tool")
        ]
    );
    assert_eq!(messages[0]["content"], "You are terse.");
    assert_eq!(messages[1]["content"], "Weather in Paris?");
    assert_eq!(
        messages[2]["tool_calls"],
        json!([{ "function": { "name": "get_weather", "arguments": { "city": "Paris" } } }])
    );
    assert_eq!(messages[3]["content"], "sunny, 21 C");
    assert_eq!(
        body["options"],
        json!({
            "temperature": 0.25,
            "top_p": 0.5,
            "top_k": 40,
            "seed": 42,
            "num_predict": 64,
            "stop": ["\n\n", "User:"],
        })
    );
    // The schema is Ollama's `format`, as a JSON object.
    assert_eq!(
        body["format"],
        json!({"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]})
    );
}

#[tokio::test]
async fn unset_sampling_sends_no_options() {
    let (server, backend) = started().await;
    collect(
        backend
            .generate(request("llama3.2:1b", Sampling::default()))
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    let sent = server.bodies("/api/chat");
    assert!(sent[0].get("options").is_none(), "{}", sent[0]);
}

#[tokio::test]
async fn an_unknown_model_is_not_found_before_the_stream() {
    let (_server, backend) = started().await;
    match backend
        .generate(request("nope:7b", Sampling::default()))
        .await
    {
        Err(Error::NotFound(message)) => {
            assert!(message.contains("nope:7b"), "{message}");
            assert!(message.contains("ollama pull nope:7b"), "{message}");
        }
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("a stream for an unknown model"),
    }
    match backend.embed("nope:7b".into(), vec!["x".into()]).await {
        Err(Error::NotFound(message)) => assert!(message.contains("nope:7b"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn no_messages_is_invalid_input() {
    let (server, backend) = started().await;
    let mut empty = request("llama3.2:1b", Sampling::default());
    empty.messages.clear();
    assert!(matches!(
        backend.generate(empty).await,
        Err(Error::InvalidInput(_))
    ));
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn a_server_that_is_down_is_a_backend_error_naming_its_url() {
    // A port nobody listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let backend = OllamaBackend::new(&url).unwrap();

    let check = |error: Error| match error {
        Error::Backend(message) => {
            assert!(message.contains(&url), "{message}");
            assert!(message.contains("ollama serve"), "{message}");
        }
        other => panic!("{other:?}"),
    };
    check(backend.list().await.unwrap_err());
    check(
        backend
            .generate(request("llama3.2:1b", Sampling::default()))
            .await
            .unwrap_err(),
    );
    check(
        backend
            .embed("all-minilm".into(), vec!["x".into()])
            .await
            .unwrap_err(),
    );
}

#[tokio::test]
async fn a_server_that_is_not_ollama_is_said_so() {
    let (server, _) = started().await;
    // Ollama's routes are not under this path: the server answers 404 in text.
    let backend = OllamaBackend::new(&format!("{}/not-ollama", server.url)).unwrap();
    match backend.list().await {
        Err(Error::Backend(message)) => {
            assert!(message.contains("is it an Ollama server?"), "{message}");
            assert!(message.contains("404 page not found"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(server.requests()[0].path, "/not-ollama/api/tags");
}

#[tokio::test]
async fn embeds_every_input() {
    let (server, backend) = started().await;
    let vectors = backend
        .embed(
            "all-minilm".into(),
            vec!["Why is the sky blue?".into(), "grass".into()],
        )
        .await
        .unwrap();
    assert_eq!(vectors, vec![vec![5.0, 20.0, 0.5], vec![1.0, 5.0, 0.5]]);
    let sent = server.bodies("/api/embed");
    assert_eq!(sent[0]["model"], "all-minilm");
    assert_eq!(sent[0]["input"], json!(["Why is the sky blue?", "grass"]));
    assert_eq!(sent[0]["truncate"], false);

    assert!(
        backend
            .embed("all-minilm".into(), Vec::new())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(server.bodies("/api/embed").len(), 1);
}

#[tokio::test]
async fn an_input_longer_than_the_context_is_context_overflow() {
    let (_server, backend) = started().await;
    let long = "word ".repeat(300);
    match backend.embed("all-minilm".into(), vec![long]).await {
        Err(Error::ContextOverflow(message)) => {
            assert!(message.contains("exceeds the context length"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn pull_reports_its_progress() {
    let (server, backend) = started().await;
    let mut seen = Vec::new();
    backend
        .pull(PULLABLE, &mut |progress| seen.push(progress))
        .await
        .unwrap();
    let short = &PULL_LAYER[..12];
    let status = |status: &str, completed, total| OllamaPullProgress {
        status: status.to_owned(),
        completed,
        total,
    };
    assert_eq!(
        seen,
        vec![
            status("pulling manifest", None, None),
            status(&format!("pulling {short}"), None, Some(PULL_TOTAL)),
            status(
                &format!("pulling {short}"),
                Some(PULL_TOTAL / 2),
                Some(PULL_TOTAL)
            ),
            status(
                &format!("pulling {short}"),
                Some(PULL_TOTAL),
                Some(PULL_TOTAL)
            ),
            status("verifying sha256 digest", None, None),
            status("writing manifest", None, None),
            status("success", None, None),
        ]
    );
    let sent = server.bodies("/api/pull");
    assert_eq!(sent[0]["name"], PULLABLE);
    assert_eq!(sent[0]["stream"], true);
}

#[tokio::test]
async fn pulling_a_model_the_registry_lacks_is_not_found() {
    let (_server, backend) = started().await;
    let mut seen = Vec::new();
    match backend.pull("nope:1b", &mut |p| seen.push(p.status)).await {
        Err(Error::NotFound(message)) => {
            assert!(message.contains("nope:1b"), "{message}");
            assert!(message.contains("file does not exist"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(seen, ["pulling manifest"]);
}

#[tokio::test]
async fn dropping_the_receiver_stops_the_stream() {
    let pieces: Vec<String> = (0..500).map(|i| format!("{i} ")).collect();
    let (server, backend) = started_with(ChatScript {
        pieces,
        pace: Pace::Every(Duration::from_millis(10)),
    })
    .await;
    let mut events = backend
        .generate(request("llama3.2:1b", Sampling::default()))
        .await
        .unwrap();
    assert_eq!(next(&mut events).await, Event::Text("0 ".into()));
    assert_eq!(next(&mut events).await, Event::Text("1 ".into()));
    drop(events);

    // The backend closes the connection: the server's next writes fail.
    let outcome = server.chat_ended(WAIT).await;
    assert!(outcome.closed_early, "{outcome:?}");
    assert!(outcome.pieces_sent < 100, "{outcome:?}");
}
