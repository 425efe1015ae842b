//! What the router and a provider component add to a model call.
//!
//! A local upstream that speaks OpenAI's Chat Completions and answers at
//! once; the same request sent (a) through the platform — router →
//! `provider-openai` component (a warm instance, kept between calls) → `wasi:http`
//! with the key attached by the host → upstream, response parsed back into
//! WIT types — and (b) directly with a keep-alive hyper client that parses
//! the JSON answer. Both paths keep their connection alive. Calls alternate
//! between the paths; the report is the median and p99 of each path and of
//! the added time (issue target: median under 300 µs, p99 under 1 ms).
//!
//! Run: `cargo bench -p convergio-benches --bench router` (after
//! `cargo xtask build-components --release`). Under `cargo test` (no
//! `--bench` argument) it makes a few calls of each path as a smoke test.

// A benchmark's setup should fail loudly; there is no caller to return an error to.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use convergio_cap_keys::secrecy::SecretString;
use convergio_cap_keys::{AuthScheme, Vault};
use convergio_runtime::inference::{
    Caller, ChatRequest, Message, ModelSelector, NoSink, ResponseFormat, Role, Router,
    RouterConfig, Sampling,
};
use convergio_tests::upstream::{Reply, Upstream};
use convergio_tests::{TestPlugin, bench_crate_component, start};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;

/// The upstream's answer, in Chat Completions' shape.
fn completion() -> serde_json::Value {
    serde_json::json!({
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1_764_000_000,
        "model": "gpt-6-luna",
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": "The capital of France is Paris.", "refusal": null },
            "finish_reason": "stop"
        }],
        "usage": { "prompt_tokens": 14, "completion_tokens": 8, "total_tokens": 22 }
    })
}

fn request() -> ChatRequest {
    ChatRequest {
        model: ModelSelector::Named("openai/gpt-6-luna".into()),
        messages: vec![Message::text(Role::User, "What is the capital of France?")],
        tools: vec![],
        sampling: Sampling {
            max_tokens: Some(32),
            ..Sampling::default()
        },
        format: ResponseFormat::Text,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn micros(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let calls = if benchmarking { 3000 } else { 5 };

    let upstream = Upstream::start(|_| Reply::json(200, &completion())).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let vault = Vault::open_in(&dir.path().join("platform-data")).expect("vault");
    vault
        .add(
            "openai",
            "default",
            &SecretString::from("sk-bench-0123456789abcdef".to_owned()),
            None,
            &["127.0.0.1".into()],
            AuthScheme::Bearer,
        )
        .expect("add key");
    let plugin = TestPlugin::new(
        "openai",
        "provider",
        bench_crate_component("convergio_provider_openai"),
    )
    .declares(&["http", "keys", "config", "logging"])
    .grants(&format!(
        "http = [\"{origin}\"]\nkeys = [\"openai\"]\nconfig = {{ base-url = \"{origin}/v1\" }}\nlogging = true",
        origin = upstream.origin()
    ));
    let runtime = start(dir.path(), "", &[plugin]).await;
    let router = Router::new(
        RouterConfig::default(),
        runtime.providers().await.expect("providers"),
        Arc::new(NoSink),
    );
    let caller = Caller {
        plugin: "bench".into(),
        agent: None,
        run: None,
    };

    // The direct path: one kept-alive connection, the same body the adapter sends.
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", upstream.port()))
        .await
        .expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    let body = serde_json::json!({
        "model": "gpt-6-luna",
        "messages": [{ "role": "user", "content": "What is the capital of France?" }],
        "max_completion_tokens": 32
    })
    .to_string();
    let host = format!("127.0.0.1:{}", upstream.port());

    let mut through = Vec::with_capacity(calls);
    let mut direct = Vec::with_capacity(calls);
    // A fresh instance of the provider answering `info()` (a tool-style
    // call through `invoke_json`): what a warm instance saves.
    let mut instance_only = Vec::with_capacity(calls);
    for i in 0..calls + calls / 10 {
        let started = Instant::now();
        let done = router
            .complete(&caller, request())
            .await
            .expect("routed call");
        let routed = started.elapsed();
        assert_eq!(done.message.content, "The capital of France is Paris.");

        let started = Instant::now();
        let request = hyper::Request::post("/v1/chat/completions")
            .header("host", &host)
            .header("content-type", "application/json")
            .header("authorization", "Bearer sk-bench-0123456789abcdef")
            .body(Full::new(Bytes::from(body.clone())))
            .expect("request");
        sender.ready().await.expect("connection ready");
        let response = sender.send_request(request).await.expect("direct call");
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let parsed: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        std::hint::black_box(parsed);
        let plain = started.elapsed();

        let started = Instant::now();
        std::hint::black_box(
            runtime
                .invoke_json("openai", "provider.info", &serde_json::json!([]))
                .await
                .expect("info"),
        );
        let instance = started.elapsed();

        // The first tenth warms caches and connections up.
        if i >= calls / 10 {
            through.push(routed);
            direct.push(plain);
            instance_only.push(instance);
        }
    }
    let mut added: Vec<Duration> = through
        .iter()
        .zip(&direct)
        .map(|(t, d)| t.saturating_sub(*d))
        .collect();
    through.sort();
    direct.sort();
    added.sort();
    instance_only.sort();
    println!(
        "router + provider-openai component vs direct hyper call, {calls} calls each, alternating"
    );
    println!("| path | median | p99 |\n|---|---|---|");
    for (name, sorted) in [
        ("through the platform", &through),
        ("direct", &direct),
        ("added (per call)", &added),
        (
            "for comparison: a fresh provider instance answering info()",
            &instance_only,
        ),
    ] {
        println!(
            "| {name} | {} | {} |",
            micros(percentile(sorted, 0.5)),
            micros(percentile(sorted, 0.99))
        );
    }
    println!(
        "upstream connections: {} (1 direct + the platform's kept-alive)",
        upstream.connections()
    );
}
