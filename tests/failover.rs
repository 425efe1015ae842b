//! Failover timing through the real host: provider adapter components
//! against fake upstreams on 127.0.0.1 that stall, with the router the
//! runtime builds from `platform.toml` (default retries). A stall or a
//! timeout moves to the next model of the chain after one try, not after
//! every retry, and counts toward the stalled model's circuit breaker.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use convergio_cap_keys::Vault;
use convergio_runtime::Runtime;
use convergio_runtime::inference::{
    Caller, ChatRequest, Message, ModelSelector, ResponseFormat, Role, Router, Sampling,
};
use convergio_tests::fake_providers::{self as fake, FakeProvider, Fault, Flavor};
use convergio_tests::{start, target_dir};

const PRIMARY: &str = "openai/gpt-6-luna";
const FALLBACK: &str = "anthropic/claude-haiku-5-5";
/// Longer than any test here runs: the upstream never answers in time.
const FOREVER: Duration = Duration::from_secs(600);
const FIRST_TOKEN_TIMEOUT: Duration = Duration::from_millis(1500);
/// The primary's `http-timeout-ms`: later than the first-token timeout, so
/// that a stalled stream is ended by the router.
const HTTP_TIMEOUT: Duration = Duration::from_millis(2500);

fn secret(flavor: Flavor) -> String {
    format!("sk-{}-failover-51c2", flavor.provider())
}

fn caller() -> Caller {
    Caller {
        plugin: "cli".into(),
        agent: None,
        run: None,
    }
}

fn request() -> ChatRequest {
    ChatRequest {
        model: ModelSelector::Named(PRIMARY.into()),
        messages: vec![Message::text(Role::User, "Why is the sky blue?")],
        tools: vec![],
        sampling: Sampling {
            max_tokens: Some(64),
            ..Sampling::default()
        },
        format: ResponseFormat::Text,
    }
}

struct Chain {
    primary: FakeProvider,
    fallback: FakeProvider,
    runtime: Runtime,
    _dir: tempfile::TempDir,
}

impl Chain {
    /// OpenAI → Anthropic, with the default retries (2) and a breaker that
    /// opens after `breaker_failures` failures in a row.
    async fn start(breaker_failures: u32) -> Self {
        let primary = FakeProvider::start(Flavor::OpenAi, &secret(Flavor::OpenAi)).await;
        let fallback = FakeProvider::start(Flavor::Anthropic, &secret(Flavor::Anthropic)).await;
        let dir = tempfile::tempdir().unwrap();
        let vault = Vault::open_in(&dir.path().join("platform-data")).unwrap();
        for flavor in [Flavor::OpenAi, Flavor::Anthropic] {
            fake::add_key(&vault, flavor, &secret(flavor));
        }
        drop(vault);
        let settings = format!(
            "compile-cache = true\ncache-dir = {:?}\n\n\
             [inference]\nfirst-token-timeout-ms = {}\nbreaker-failures = {breaker_failures}\n\
             breaker-cooldown-ms = 600000\n\n\
             [inference.chains]\n\"{PRIMARY}\" = [\"{FALLBACK}\"]\n",
            target_dir().join("convergio-test-cache").join("failover"),
            FIRST_TOKEN_TIMEOUT.as_millis()
        );
        let plugins = [
            primary
                .plugin("openai")
                .limits(&format!("http-timeout-ms = {}", HTTP_TIMEOUT.as_millis())),
            fallback.plugin("anthropic"),
        ];
        let runtime = start(dir.path(), &settings, &plugins).await;
        Self {
            primary,
            fallback,
            runtime,
            _dir: dir,
        }
    }

    fn router(&self) -> std::sync::Arc<Router> {
        self.runtime.router().unwrap()
    }

    /// Stream the request; the answering model and how long until its first delta.
    async fn stream(&self) -> (String, Duration) {
        let started = Instant::now();
        let mut stream = self.router().stream(&caller(), request()).await.unwrap();
        let took = started.elapsed();
        let model = stream.model().to_owned();
        let mut text = String::new();
        while let Some(delta) = stream.next().await {
            text.push_str(&delta.unwrap().content);
        }
        assert_eq!(text, fake::TEXT);
        (model, took)
    }

    /// Complete the request; the answering provider and how long it took.
    async fn complete(&self) -> (String, Duration) {
        let started = Instant::now();
        let done = self.router().complete(&caller(), request()).await.unwrap();
        assert_eq!(done.message.content, fake::TEXT);
        (done.provider, started.elapsed())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_stalls_before_its_first_token_fails_over_after_one_timeout() {
    let chain = Chain::start(1000).await;
    chain.primary.fail_always(Fault::StallStream(FOREVER));
    let (model, took) = chain.stream().await;
    assert_eq!(model, FALLBACK);
    assert_eq!(
        chain.primary.exchanges().len(),
        1,
        "the stall was not retried"
    );
    assert_eq!(chain.fallback.exchanges().len(), 1);
    // One first-token timeout, not three (the default retries are 2).
    assert!(
        took >= FIRST_TOKEN_TIMEOUT && took < 2 * FIRST_TOKEN_TIMEOUT,
        "{took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_upstream_sends_no_headers_fails_over_after_one_timeout() {
    let chain = Chain::start(1000).await;
    chain.primary.fail_always(Fault::SlowHeaders(FOREVER));
    let (provider, took) = chain.complete().await;
    assert_eq!(provider, "anthropic");
    assert_eq!(
        chain.primary.exchanges().len(),
        1,
        "the timeout was not retried"
    );
    assert!(took >= HTTP_TIMEOUT && took < 2 * HTTP_TIMEOUT, "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalls_count_toward_the_breaker_which_then_skips_the_model() {
    let chain = Chain::start(2).await;
    chain.primary.fail_always(Fault::StallStream(FOREVER));
    for _ in 0..2 {
        assert_eq!(chain.stream().await.0, FALLBACK);
    }
    assert_eq!(chain.primary.exchanges().len(), 2);
    // Open after two stalls: straight to the fallback, without waiting.
    let (model, took) = chain.stream().await;
    assert_eq!(model, FALLBACK);
    assert_eq!(chain.primary.exchanges().len(), 2, "skipped while open");
    assert!(took < FIRST_TOKEN_TIMEOUT, "{took:?}");
    let (provider, _) = chain.complete().await;
    assert_eq!(provider, "anthropic");
    assert_eq!(chain.primary.exchanges().len(), 2);
    assert!(chain.primary.rejections().is_empty());
    assert!(chain.fallback.rejections().is_empty());
}
