//! llama.cpp through `LlamaBackend` with the real test model
//! (SmolLM2-135M-Instruct Q4_1, fetched by `cargo xtask setup`): generation,
//! sampling, stop sequences, length, embeddings, concurrency, bad input.
#![cfg(feature = "llama")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use convergio_cap_inference::{Message, ResponseFormat, Role, Sampling};
use convergio_cap_local_model::{
    Backend, Error, Event, GenerateRequest, LlamaBackend, LlamaOptions, ModelStore, collect,
};

const MODEL: &str = "smollm2";

/// A backend over a fresh cache holding the test model as `smollm2`.
fn backend(options: LlamaOptions) -> (tempfile::TempDir, LlamaBackend) {
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::open(dir.path().join("models")).unwrap();
    store
        .pull(
            convergio_test_model::require().to_str().unwrap(),
            Some(MODEL),
            Some(convergio_test_model::SHA256),
            &mut |_| {},
        )
        .unwrap();
    (dir, LlamaBackend::new(Arc::new(store), options))
}

/// Two threads (the CI machine's cores) and a 1024-token context.
fn options() -> LlamaOptions {
    LlamaOptions {
        threads: Some(2),
        context_length: 1024,
        ..LlamaOptions::default()
    }
}

fn ask(text: &str, sampling: Sampling) -> GenerateRequest {
    GenerateRequest {
        model: MODEL.into(),
        messages: vec![
            Message::text(
                Role::System,
                "You are a helpful assistant. Answer in one short sentence.",
            ),
            Message::text(Role::User, text),
        ],
        sampling,
        format: ResponseFormat::Text,
    }
}

fn greedy(max_tokens: u32) -> Sampling {
    Sampling {
        temperature: Some(0.0),
        max_tokens: Some(max_tokens),
        ..Sampling::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_streams_and_respects_length_and_stop() {
    let (_dir, llama) = backend(options());
    // A real answer from the real model.
    let answer = collect(
        llama
            .generate(ask("What is the capital of France?", greedy(32)))
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    assert!(answer.text.contains("Paris"), "{answer:?}");
    assert!(answer.stopped, "a short answer ends by itself: {answer:?}");
    assert!(answer.usage.input_tokens > 10, "{answer:?}");
    assert_eq!(answer.usage.cost_micro_usd, 0);

    // Streaming: the same greedy text, in several pieces.
    let mut events = llama
        .generate(ask("What is the capital of France?", greedy(32)))
        .await
        .unwrap();
    let mut pieces = Vec::new();
    let done = loop {
        match events.recv().await.unwrap().unwrap() {
            Event::Text(text) => pieces.push(text),
            Event::Done(done) => break done,
        }
    };
    assert!(pieces.len() >= 3, "{pieces:?}");
    assert_eq!(pieces.concat(), answer.text);
    assert_eq!(done.text, answer.text);
    assert_eq!(done.usage.output_tokens, answer.usage.output_tokens);

    // max-tokens: cut after exactly that many tokens, not stopped by the model.
    let short = collect(
        llama
            .generate(ask("Tell me a long story about a dragon.", greedy(5)))
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(short.usage.output_tokens, 5, "{short:?}");
    assert!(!short.stopped);

    // A stop sequence taken from the middle of the greedy answer cuts there.
    let word = answer
        .text
        .split_whitespace()
        .nth(2)
        .expect("the answer has three words");
    let stop = format!(" {word}");
    let cut_at = answer.text.find(&stop).unwrap();
    let cut = collect(
        llama
            .generate(ask(
                "What is the capital of France?",
                Sampling {
                    stop: vec![stop.clone()],
                    ..greedy(32)
                },
            ))
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(cut.text, answer.text[..cut_at], "stop {stop:?}");
    assert!(cut.stopped);
}

/// Under the grammar of a schema the 135M model writes JSON of that schema,
/// greedy or sampled, where unconstrained it writes prose.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_schema_constrains_the_answer_to_valid_json() {
    let (_dir, llama) = backend(options());
    let schema = serde_json::json!({
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 40},
            "country": {"type": "string", "maxLength": 40},
            "population-millions": {"type": "number"},
            "languages": {"type": "array", "items": {"type": "string", "maxLength": 20}, "minItems": 1, "maxItems": 3},
            "size": {"enum": ["small", "medium", "large"]}
        },
        "required": ["city", "country", "population-millions", "languages", "size"]
    });
    let validator = jsonschema::validator_for(&schema).unwrap();
    for sampling in [
        greedy(200),
        Sampling {
            temperature: Some(0.9),
            seed: Some(7),
            max_tokens: Some(200),
            ..Sampling::default()
        },
    ] {
        let mut request = ask("Describe Paris as JSON.", sampling);
        request.format = ResponseFormat::JsonSchema(schema.to_string());
        let answer = collect(llama.generate(request).await.unwrap())
            .await
            .unwrap();
        assert!(answer.stopped, "the grammar ends the answer: {answer:?}");
        let value: serde_json::Value = serde_json::from_str(&answer.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", answer.text));
        assert!(validator.is_valid(&value), "{value}");
    }

    // Any JSON object.
    let mut request = ask("List three colours.", greedy(120));
    request.format = ResponseFormat::JsonObject;
    let answer = collect(llama.generate(request).await.unwrap())
        .await
        .unwrap();
    let value: serde_json::Value = serde_json::from_str(&answer.text).unwrap();
    assert!(value.is_object(), "{value}");

    // A schema the grammar cannot follow is refused before generating.
    let mut request = ask("Hi", greedy(8));
    request.format = ResponseFormat::JsonSchema(r#"{"type": "decimal"}"#.into());
    let err = llama.generate(request).await.unwrap_err();
    assert!(
        matches!(&err, Error::InvalidInput(m) if m.contains("`type` at / is `decimal`")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_seed_gives_the_same_text() {
    let (_dir, llama) = backend(options());
    let sampled = |seed| Sampling {
        temperature: Some(0.9),
        seed: Some(seed),
        max_tokens: Some(24),
        ..Sampling::default()
    };
    let mut texts = Vec::new();
    for seed in [7, 7, 8] {
        let g = collect(
            llama
                .generate(ask("Write a line about the sea.", sampled(seed)))
                .await
                .unwrap(),
        )
        .await
        .unwrap();
        texts.push(g.text);
    }
    assert_eq!(texts[0], texts[1], "same seed, same text");
    assert!(!texts[0].is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_have_the_model_dimension_and_are_stable() {
    let (_dir, llama) = backend(options());
    let inputs = vec![
        "The cat sat on the mat.".to_owned(),
        "Quantum chromodynamics describes the strong force.".to_owned(),
    ];
    let first = llama.embed(MODEL.into(), inputs.clone()).await.unwrap();
    let again = llama.embed(MODEL.into(), inputs).await.unwrap();
    assert_eq!(first.len(), 2);
    assert!(
        first.iter().all(|v| v.len() == 576),
        "SmolLM2-135M embeds in 576 dimensions"
    );
    assert_eq!(first, again, "the same input gives the same vector");
    assert_ne!(first[0], first[1]);
    let norm: f32 = first[0].iter().map(|v| v * v).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-3, "normalized: {norm}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_concurrent_requests_share_one_loaded_model() {
    let (_dir, llama) = backend(options());
    let llama = Arc::new(llama);
    let expected = collect(
        llama
            .generate(ask("Name a color.", greedy(12)))
            .await
            .unwrap(),
    )
    .await
    .unwrap()
    .text;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let llama = Arc::clone(&llama);
            tokio::spawn(async move {
                collect(llama.generate(ask("Name a color.", greedy(12))).await?).await
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().text, expected);
    }
    assert_eq!(llama.loads(), 1, "the model is loaded once");
    let listed = llama.list().await.unwrap();
    assert!(listed.iter().any(|m| m.name == MODEL && m.loaded));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_errors_and_the_backend_keeps_serving() {
    let (dir, llama) = backend(LlamaOptions {
        context_length: 256,
        ..options()
    });
    // A model that is not in the cache.
    let err = llama
        .generate(GenerateRequest {
            model: "no-such-model".into(),
            ..ask("hi", greedy(4))
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err}");

    // A prompt longer than the context.
    let long = "word ".repeat(400);
    let err = llama.generate(ask(&long, greedy(4))).await.unwrap_err();
    let Error::ContextOverflow(message) = err else {
        panic!("expected a context overflow, got {err:?}");
    };
    assert!(message.contains("256"), "{message}");

    // Bad sampling values.
    let err = llama
        .generate(ask(
            "hi",
            Sampling {
                temperature: Some(-1.0),
                ..Sampling::default()
            },
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err}");

    // Still serving.
    let ok = collect(
        llama
            .generate(ask("What is 2 + 2?", greedy(8)))
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    assert!(!ok.text.is_empty());

    // A model file corrupted on disk after it was pulled is refused, not loaded.
    let store = ModelStore::open(dir.path().join("models")).unwrap();
    store
        .pull(
            convergio_test_model::require().to_str().unwrap(),
            Some("broken"),
            None,
            &mut |_| {},
        )
        .unwrap();
    let path = store.get("broken").unwrap().path;
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let err = llama
        .generate(GenerateRequest {
            model: "broken".into(),
            ..ask("hi", greedy(4))
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::LoadFailed(_)), "{err}");
}
