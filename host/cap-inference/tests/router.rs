//! The router against fake providers: selection, retries, failover,
//! circuit breakers, zero-cloud mode, budgets under concurrency (in memory
//! and in the SQLite usage ledger), streams, stalls, configuration checks.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use convergio_cap_inference::*;

type Behaviour = Arc<dyn Fn(usize, &ProviderRequest) -> Result<(), ModelError> + Send + Sync>;

/// A provider whose models answer `ok` or fail as `behaviour` says for the n-th call.
struct Fake {
    id: String,
    local: bool,
    models: Vec<ModelInfo>,
    behaviour: Behaviour,
    calls: AtomicUsize,
    /// For streams: wait this long before the first delta.
    stall: Duration,
    /// For complete calls: wait this long, then fail as the plugin's
    /// deadline would (`timeout`).
    complete_stall: Duration,
}

impl Fake {
    fn new(id: &str, models: Vec<ModelInfo>, behaviour: Behaviour) -> Arc<Self> {
        Arc::new(Self {
            id: id.into(),
            local: models.iter().all(|m| m.local),
            models,
            behaviour,
            calls: AtomicUsize::new(0),
            stall: Duration::ZERO,
            complete_stall: Duration::ZERO,
        })
    }

    /// A provider whose streams send nothing for an hour and whose complete
    /// calls end in `timeout` after `deadline`, as a plugin's deadline ends them.
    fn stalled(id: &str, models: Vec<ModelInfo>, deadline: Duration) -> Arc<Self> {
        Arc::new(Self {
            id: id.into(),
            local: false,
            models,
            behaviour: ok(),
            calls: AtomicUsize::new(0),
            stall: Duration::from_secs(3600),
            complete_stall: deadline,
        })
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn answer(&self, request: &ProviderRequest) -> Result<Completion, ModelError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        (self.behaviour)(n, request)?;
        Ok(Completion {
            provider: self.id.clone(),
            model: request.model.clone(),
            // JSON when JSON is asked for: `{"n": CALL}`, counting from 0.
            message: Message::text(
                Role::Assistant,
                if request.format.is_json() {
                    format!("{{\"n\": {n}}}")
                } else {
                    format!("{} says hi", self.id)
                },
            ),
            finish_reason: FinishReason::Stop,
            // What a provider would report: about the estimate in, the cap out.
            usage: Usage {
                input_tokens: u32::try_from(estimate(&request.messages)).unwrap(),
                output_tokens: request.sampling.max_tokens.unwrap_or(500),
                cost_micro_usd: 999_999,
            },
        })
    }
}

fn estimate(messages: &[Message]) -> u64 {
    ChatRequest {
        model: ModelSelector::Named(String::new()),
        messages: messages.to_vec(),
        tools: vec![],
        sampling: Sampling::default(),
        format: ResponseFormat::Text,
    }
    .estimated_input_tokens()
}

struct Deltas(Vec<Result<Delta, ModelError>>, Duration);

impl DeltaStream for Deltas {
    fn next(&mut self) -> BoxFuture<'_, Option<Result<Delta, ModelError>>> {
        Box::pin(async move {
            tokio::time::sleep(std::mem::take(&mut self.1)).await;
            if self.0.is_empty() {
                None
            } else {
                Some(self.0.remove(0))
            }
        })
    }
}

impl Provider for Fake {
    fn id(&self) -> &str {
        &self.id
    }
    fn key(&self) -> Option<&str> {
        if self.local {
            None
        } else {
            Some("fake/default")
        }
    }
    fn models(&self) -> BoxFuture<'_, Result<Vec<ModelInfo>, ModelError>> {
        Box::pin(async move { Ok(self.models.clone()) })
    }
    fn complete(&self, request: ProviderRequest) -> BoxFuture<'_, Result<Completion, ModelError>> {
        Box::pin(async move {
            if !self.complete_stall.is_zero() {
                self.calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(self.complete_stall).await;
                return Err(ModelError::Timeout(format!(
                    "plugin `{}` was stopped: deadline of {} ms exceeded",
                    self.id,
                    self.complete_stall.as_millis()
                )));
            }
            self.answer(&request)
        })
    }
    fn stream(
        &self,
        request: ProviderRequest,
    ) -> BoxFuture<'_, Result<Box<dyn DeltaStream>, ModelError>> {
        Box::pin(async move {
            let done = self.answer(&request)?;
            let text = |t: &str| {
                Ok(Delta {
                    content: t.into(),
                    ..Delta::default()
                })
            };
            let last = Delta {
                finish_reason: Some(FinishReason::Stop),
                usage: Some(done.usage),
                ..Delta::default()
            };
            let deltas: Vec<Result<Delta, ModelError>> = if request.model.contains("cut") {
                vec![
                    text("Hel"),
                    Err(ModelError::Upstream("connection reset".into())),
                ]
            } else {
                vec![text("Hel"), text("lo"), Ok(last)]
            };
            Ok(Box::new(Deltas(deltas, self.stall)) as Box<dyn DeltaStream>)
        })
    }
    fn embed(
        &self,
        model: String,
        inputs: Vec<String>,
    ) -> BoxFuture<'_, Result<Embeddings, ModelError>> {
        Box::pin(async move {
            Ok(Embeddings {
                model,
                vectors: inputs.iter().map(|i| vec![i.len() as f32]).collect(),
                usage: Usage {
                    input_tokens: 10,
                    ..Usage::default()
                },
            })
        })
    }
}

fn model(id: &str, price: f64, context: u32, quality: QualityTier) -> ModelInfo {
    ModelInfo {
        id: id.into(),
        context_window: context,
        max_output_tokens: Some(1000),
        input_price_per_mtok: price,
        output_price_per_mtok: price * 4.0,
        features: Features {
            tools: true,
            json_mode: true,
            streaming: true,
            ..Features::default()
        },
        quality,
        local: false,
    }
}

fn ok() -> Behaviour {
    Arc::new(|_, _| Ok(()))
}

fn always(e: ModelError) -> Behaviour {
    Arc::new(move |_, _| Err(e.clone()))
}

fn caller() -> Caller {
    Caller {
        plugin: "tutor".into(),
        agent: None,
        run: None,
    }
}

fn chat(model: ModelSelector) -> ChatRequest {
    ChatRequest {
        model,
        messages: vec![Message::text(Role::User, "hello there")],
        tools: vec![],
        sampling: Sampling {
            max_tokens: Some(100),
            ..Sampling::default()
        },
        format: ResponseFormat::Text,
    }
}

fn named(name: &str) -> ChatRequest {
    chat(ModelSelector::Named(name.into()))
}

fn fast() -> RouterConfig {
    RouterConfig {
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_secs(1),
        ..RouterConfig::default()
    }
}

#[tokio::test(start_paused = true)]
async fn named_models_answer_and_cost_comes_from_the_operators_prices() {
    let a = Fake::new(
        "a",
        vec![model("small", 1.0, 8000, QualityTier::Basic)],
        ok(),
    );
    let mut config = fast();
    config.prices.insert("a/small".into(), (2.0, 10.0));
    let router = Router::new(config, vec![a.clone()], Arc::new(NoSink));
    let done = router.complete(&caller(), named("a/small")).await.unwrap();
    assert_eq!(done.message.content, "a says hi");
    // The router made the completion cap explicit and prices usage itself:
    // input × 2.0 + 100 × 10.0 micro-dollars (the provider's own figure is ignored).
    let input = estimate(&named("a/small").messages);
    assert_eq!(done.usage.cost_micro_usd, input * 2 + 1000);

    let err = router
        .complete(&caller(), named("a/huge"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ModelError::NoModel(m) if m.contains("a/small")),
        "{err}"
    );
    let err = router.complete(&caller(), named("zz/x")).await.unwrap_err();
    assert!(
        matches!(&err, ModelError::NoModel(m) if m.contains("no provider `zz`")),
        "{err}"
    );
}

fn with_schema(schema: serde_json::Value) -> ChatRequest {
    let mut request = named("a/small");
    request.format = ResponseFormat::JsonSchema(schema.to_string());
    request
}

#[tokio::test(start_paused = true)]
async fn an_answer_that_does_not_match_the_schema_is_asked_for_again_with_the_errors() {
    // The fake answers {"n": 0}, then {"n": 1}, …; the schema wants n ≥ 1.
    let a = Fake::new(
        "a",
        vec![model("small", 1.0, 8000, QualityTier::Basic)],
        Arc::new(|n, request| {
            if n == 1 {
                // The second request has the first answer and the correction.
                let last = &request.messages[request.messages.len() - 1];
                assert_eq!(request.messages.len(), 3);
                assert_eq!(request.messages[1].content, r#"{"n": 0}"#);
                assert!(
                    last.content
                        .contains("at /n: 0 is less than the minimum of 1"),
                    "{}",
                    last.content
                );
            }
            Ok(())
        }),
    );
    let router = Router::new(fast(), vec![a.clone()], Arc::new(NoSink));
    let schema = serde_json::json!({
        "type": "object",
        "properties": {"n": {"type": "integer", "minimum": 1}},
        "required": ["n"]
    });
    let done = router
        .complete(&caller(), with_schema(schema))
        .await
        .unwrap();
    assert_eq!(done.message.content, r#"{"n": 1}"#);
    assert_eq!(a.calls(), 2);
    // Both answers' tokens are the caller's.
    assert_eq!(done.usage.output_tokens, 200);

    // Never valid: three answers, then `invalid-output` with the last errors.
    let schema = serde_json::json!({"type": "object", "properties": {"n": {"minimum": 100}}});
    let err = router
        .complete(&caller(), with_schema(schema))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ModelError::InvalidOutput(m)
            if m.contains("a/small answered 3 times") && m.contains("at /n: 4 is less than the minimum of 100")),
        "{err}"
    );
    assert_eq!(a.calls(), 5);

    // A schema that is not one is the caller's mistake, found before any call.
    let err = router
        .complete(&caller(), with_schema(serde_json::json!({"type": "bogus"})))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ModelError::BadRequest(m) if m.contains("JSON Schema is invalid")),
        "{err}"
    );
    assert_eq!(a.calls(), 5);
}

#[tokio::test(start_paused = true)]
async fn retries_honour_retry_after_then_fail_over_along_the_chain_only() {
    // `a` is rate-limited once with a 300 ms Retry-After, then fine.
    let a = Fake::new(
        "a",
        vec![model("m", 1.0, 8000, QualityTier::Standard)],
        Arc::new(|n, _| {
            if n == 0 {
                Err(ModelError::RateLimited(Some(300)))
            } else {
                Ok(())
            }
        }),
    );
    let router = Router::new(fast(), vec![a.clone()], Arc::new(NoSink));
    let started = tokio::time::Instant::now();
    router.complete(&caller(), named("a/m")).await.unwrap();
    assert_eq!(a.calls(), 2);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "waited as asked"
    );

    // `b` is overloaded for good: retried, then `c` (in the chain) answers;
    // `d` is not in the chain and `small` cannot take the request.
    let b = Fake::new(
        "b",
        vec![model("m", 1.0, 8000, QualityTier::Standard)],
        always(ModelError::Overloaded("529".into())),
    );
    let c = Fake::new(
        "c",
        vec![
            model("m", 5.0, 8000, QualityTier::Standard),
            model("small", 0.1, 50, QualityTier::Basic),
        ],
        ok(),
    );
    let d = Fake::new(
        "d",
        vec![model("m", 0.1, 8000, QualityTier::Standard)],
        ok(),
    );
    let mut config = fast();
    config
        .chains
        .insert("b/m".into(), vec!["c/small".into(), "c/m".into()]);
    let router = Router::new(
        config,
        vec![b.clone(), c.clone(), d.clone()],
        Arc::new(NoSink),
    );
    let done = router.complete(&caller(), named("b/m")).await.unwrap();
    assert_eq!((done.provider.as_str(), done.model.as_str()), ("c", "m"));
    assert_eq!(b.calls(), 3, "one try and two retries");
    assert_eq!(d.calls(), 0, "never a model the operator did not list");
}

#[tokio::test(start_paused = true)]
async fn a_long_retry_after_fails_over_instead_of_waiting_and_bad_requests_do_not_fail_over() {
    let a = Fake::new(
        "a",
        vec![model("m", 1.0, 8000, QualityTier::Standard)],
        always(ModelError::RateLimited(Some(60_000))),
    );
    let b = Fake::new(
        "b",
        vec![model("m", 1.0, 8000, QualityTier::Standard)],
        ok(),
    );
    let mut config = fast();
    config.fallback = vec!["b/m".into()];
    let router = Router::new(config, vec![a.clone(), b.clone()], Arc::new(NoSink));
    let started = tokio::time::Instant::now();
    let done = router.complete(&caller(), named("a/m")).await.unwrap();
    assert_eq!(done.provider, "b");
    assert_eq!(a.calls(), 1);
    assert!(started.elapsed() < Duration::from_secs(1));

    let bad = Fake::new(
        "bad",
        vec![model("m", 1.0, 8000, QualityTier::Standard)],
        always(ModelError::BadRequest("no".into())),
    );
    let mut config = fast();
    config.fallback = vec!["b/m".into()];
    let router = Router::new(config, vec![bad.clone(), b.clone()], Arc::new(NoSink));
    let before = b.calls();
    let err = router
        .complete(&caller(), named("bad/m"))
        .await
        .unwrap_err();
    assert!(matches!(err, ModelError::BadRequest(_)));
    assert_eq!(
        (bad.calls(), b.calls()),
        (1, before),
        "a bad request fails the same everywhere"
    );
}

#[tokio::test(start_paused = true)]
async fn an_open_circuit_skips_the_model_until_its_cooldown_ends() {
    let a = Fake::new(
        "a",
        vec![model("m", 1.0, 8000, QualityTier::Standard)],
        always(ModelError::Upstream("500".into())),
    );
    let b = Fake::new(
        "b",
        vec![model("m", 1.0, 8000, QualityTier::Standard)],
        ok(),
    );
    let mut config = fast();
    config.retries = 0;
    config.breaker_threshold = 3;
    config.breaker_cooldown = Duration::from_secs(30);
    config.fallback = vec!["b/m".into()];
    let router = Router::new(config, vec![a.clone(), b.clone()], Arc::new(NoSink));
    for _ in 0..5 {
        assert_eq!(
            router
                .complete(&caller(), named("a/m"))
                .await
                .unwrap()
                .provider,
            "b"
        );
    }
    assert_eq!(a.calls(), 3, "skipped once open");
    tokio::time::advance(Duration::from_secs(31)).await;
    router.complete(&caller(), named("a/m")).await.unwrap();
    assert_eq!(a.calls(), 4, "one trial after the cooldown");
}

#[tokio::test(start_paused = true)]
async fn policies_pick_by_price_or_quality_among_models_that_qualify() {
    let mut local = model("tiny", 0.0, 2048, QualityTier::Basic);
    local.local = true;
    local.features.tools = false;
    let l = Fake::new("local", vec![local], ok());
    let c = Fake::new(
        "cloud",
        vec![
            model("cheap", 0.1, 16_000, QualityTier::Basic),
            model("mid", 1.0, 128_000, QualityTier::Standard),
            model("top", 5.0, 200_000, QualityTier::Premium),
        ],
        ok(),
    );
    let router = Router::new(fast(), vec![l.clone(), c.clone()], Arc::new(NoSink));
    let pick = |s: Strategy, r: Requirements| {
        let router = &router;
        async move {
            router
                .complete(&caller(), chat(ModelSelector::Policy(s, r)))
                .await
                .map(|d| format!("{}/{}", d.provider, d.model))
        }
    };
    assert_eq!(
        pick(Strategy::Cheapest, Requirements::default())
            .await
            .unwrap(),
        "local/tiny"
    );
    assert_eq!(
        pick(
            Strategy::Cheapest,
            Requirements {
                tools: true,
                ..Requirements::default()
            }
        )
        .await
        .unwrap(),
        "cloud/cheap"
    );
    assert_eq!(
        pick(
            Strategy::Cheapest,
            Requirements {
                min_context: Some(100_000),
                ..Requirements::default()
            }
        )
        .await
        .unwrap(),
        "cloud/mid"
    );
    assert_eq!(
        pick(Strategy::BestQuality, Requirements::default())
            .await
            .unwrap(),
        "cloud/top"
    );
    assert_eq!(
        pick(
            Strategy::Cheapest,
            Requirements {
                local_only: true,
                ..Requirements::default()
            }
        )
        .await
        .unwrap(),
        "local/tiny"
    );
    let err = pick(
        Strategy::Cheapest,
        Requirements {
            local_only: true,
            tools: true,
            ..Requirements::default()
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, ModelError::NoModel(m) if m.contains("tools") && m.contains("local only")),
        "{err}"
    );

    // Zero-cloud: cloud models are refused by name and never chosen by policy.
    let router = Router::new(
        RouterConfig {
            zero_cloud: true,
            ..fast()
        },
        vec![l.clone(), c.clone()],
        Arc::new(NoSink),
    );
    let err = router
        .complete(&caller(), named("cloud/top"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ModelError::AccessDenied(m) if m.contains("zero-cloud")),
        "{err}"
    );
    let done = router
        .complete(
            &caller(),
            chat(ModelSelector::Policy(
                Strategy::BestQuality,
                Requirements::default(),
            )),
        )
        .await
        .unwrap();
    assert_eq!(done.provider, "local");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_never_spend_past_a_budget() {
    // Each request may cost up to its ceiling and the provider reports exactly that.
    let info = model("m", 1.0, 100_000, QualityTier::Standard);
    let request = named("a/m");
    let ceiling = info.cost_micro_usd(request.max_input_tokens(), 100);
    let slow: Behaviour = Arc::new(|_, _| {
        std::thread::sleep(Duration::from_millis(2));
        Ok(())
    });
    let a = Fake::new("a", vec![info], slow);
    let config = RouterConfig {
        budgets: vec![(Scope::Plugin("tutor".into()), 10 * ceiling)],
        ..fast()
    };
    let router = Arc::new(Router::new(config, vec![a.clone()], Arc::new(NoSink)));
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let router = router.clone();
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            router.complete(&caller(), request).await
        }));
    }
    let mut ok = 0;
    let mut refused = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(ModelError::BudgetExceeded(_)) => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    let spent = router
        .budgets()
        .spent(&Scope::Plugin("tutor".into()))
        .await
        .unwrap()
        .unwrap();
    assert!(spent <= 10 * ceiling, "spent {spent} of {}", 10 * ceiling);
    // Holds are ceilings; a settled request frees what it did not use.
    assert!(ok >= 10, "{ok} succeeded");
    assert_eq!(ok + refused, 100);
}

#[tokio::test(start_paused = true)]
async fn streams_fail_over_before_the_first_delta_and_not_after() {
    let stalled = Arc::new(Fake {
        id: "slow".into(),
        local: false,
        models: vec![model("m", 1.0, 8000, QualityTier::Standard)],
        behaviour: ok(),
        calls: AtomicUsize::new(0),
        stall: Duration::from_secs(120),
        complete_stall: Duration::ZERO,
    });
    let b = Fake::new(
        "b",
        vec![
            model("m", 1.0, 8000, QualityTier::Standard),
            model("cut", 1.0, 8000, QualityTier::Standard),
        ],
        ok(),
    );
    let mut config = fast();
    config.retries = 0;
    config.first_token_timeout = Duration::from_secs(5);
    config.fallback = vec!["b/m".into()];
    let router = Router::new(config, vec![stalled.clone(), b.clone()], Arc::new(NoSink));
    let mut stream = router.stream(&caller(), named("slow/m")).await.unwrap();
    assert_eq!(stream.model(), "b/m");
    let mut text = String::new();
    let mut usage = None;
    while let Some(delta) = stream.next().await {
        let delta = delta.unwrap();
        text.push_str(&delta.content);
        usage = usage.or(delta.usage);
    }
    assert_eq!(text, "Hello");
    assert!(usage.unwrap().cost_micro_usd > 0);

    // Cut after the first delta: the caller gets the error.
    let mut stream = router.stream(&caller(), named("b/cut")).await.unwrap();
    assert_eq!(stream.next().await.unwrap().unwrap().content, "Hel");
    assert!(matches!(
        stream.next().await,
        Some(Err(ModelError::Upstream(_)))
    ));
    assert!(stream.next().await.is_none());
}

/// With the default settings (2 retries, 30 s first-token timeout), a
/// primary that stalls costs one timeout, not three, before the fallback
/// answers; each stall counts toward its breaker, which then skips it.
#[tokio::test(start_paused = true)]
async fn a_stall_fails_over_after_one_timeout_and_counts_toward_the_breaker() {
    let stalled = Fake::stalled(
        "slow",
        vec![model("m", 1.0, 8000, QualityTier::Standard)],
        Duration::from_secs(30),
    );
    let b = Fake::new(
        "b",
        vec![model("m", 1.0, 8000, QualityTier::Standard)],
        ok(),
    );
    let config = RouterConfig {
        fallback: vec!["b/m".into()],
        breaker_threshold: 3,
        ..RouterConfig::default()
    };
    let timeout = config.first_token_timeout;
    assert_eq!((config.retries, timeout), (2, Duration::from_secs(30)));
    let router = Router::new(config, vec![stalled.clone(), b.clone()], Arc::new(NoSink));

    // Stream: the first-token timeout, once, then the fallback.
    let started = tokio::time::Instant::now();
    let stream = router.stream(&caller(), named("slow/m")).await.unwrap();
    let took = started.elapsed();
    assert_eq!(stream.model(), "b/m");
    assert_eq!(
        stalled.calls(),
        1,
        "a stall is not retried on the same model"
    );
    assert!(
        took >= timeout && took < timeout + Duration::from_secs(1),
        "{took:?}"
    );
    drop(stream);

    // Complete: the provider's own timeout (the plugin's deadline), once.
    let started = tokio::time::Instant::now();
    let done = router.complete(&caller(), named("slow/m")).await.unwrap();
    assert_eq!(done.provider, "b");
    assert_eq!(stalled.calls(), 2);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(30) && took < Duration::from_secs(31),
        "{took:?}"
    );

    // The third stall opens the breaker: the next request goes straight to
    // the fallback without waiting.
    router.complete(&caller(), named("slow/m")).await.unwrap();
    assert_eq!(stalled.calls(), 3);
    let started = tokio::time::Instant::now();
    let done = router.complete(&caller(), named("slow/m")).await.unwrap();
    assert_eq!(done.provider, "b");
    assert_eq!(stalled.calls(), 3, "skipped while its circuit is open");
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn overload_is_still_retried_on_the_same_model() {
    let a = Fake::new(
        "a",
        vec![model("m", 1.0, 8000, QualityTier::Standard)],
        Arc::new(|n, _| {
            if n < 2 {
                Err(ModelError::Overloaded("503".into()))
            } else {
                Ok(())
            }
        }),
    );
    let router = Router::new(RouterConfig::default(), vec![a.clone()], Arc::new(NoSink));
    let done = router.complete(&caller(), named("a/m")).await.unwrap();
    assert_eq!(done.provider, "a");
    assert_eq!(a.calls(), 3, "one try and two retries");
}

/// A sink that keeps the error kind of every call.
#[derive(Default)]
struct Kinds(std::sync::Mutex<Vec<Option<&'static str>>>);

impl UsageSink for Kinds {
    fn record(&self, call: &CallRecord<'_>) {
        self.0
            .lock()
            .unwrap()
            .push(call.error.map(ModelError::kind));
    }
}

/// Routers that share one usage ledger (as processes sharing a data
/// directory do) never spend past a budget together, and each call is
/// booked once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn routers_sharing_a_ledger_never_spend_past_a_budget_together() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("usage.db");
    let info = model("m", 1.0, 100_000, QualityTier::Standard);
    let request = named("a/m");
    let ceiling = info.cost_micro_usd(request.max_input_tokens(), 100);
    let slow: Behaviour = Arc::new(|_, _| {
        std::thread::sleep(Duration::from_millis(5));
        Ok(())
    });
    let scope = Scope::Plugin("tutor".into());
    let config = RouterConfig {
        budgets: vec![(scope.clone(), 6 * ceiling)],
        ..fast()
    };
    let sink = Arc::new(Kinds::default());
    let routers: Vec<Arc<Router>> = (0..4)
        .map(|_| {
            // Each its own connection, as each process has.
            let ledger = Arc::new(Ledger::open(&path).unwrap());
            let a = Fake::new("a", vec![info.clone()], slow.clone());
            Arc::new(Router::with_store(
                config.clone(),
                vec![a],
                sink.clone(),
                ledger,
            ))
        })
        .collect();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let router = routers[i % routers.len()].clone();
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            router.complete(&caller(), request).await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(ModelError::BudgetExceeded(m)) => assert!(m.contains("plugin tutor"), "{m}"),
            Err(e) => panic!("{e}"),
        }
    }
    let ledger = Ledger::open(&path).unwrap();
    let month = month_start(day_of(std::time::SystemTime::now()));
    let spent = ledger.spent(&scope, month).unwrap();
    assert!(spent <= 6 * ceiling, "spent {spent} of {}", 6 * ceiling);
    assert!(
        ok >= 6,
        "holds are ceilings and settle lower: {ok} succeeded"
    );
    let booked: u64 = ledger.report(month).unwrap().iter().map(|l| l.calls).sum();
    assert_eq!(booked, ok, "each answered call is booked once");
    assert_eq!(ledger.held(&scope).unwrap(), 0, "every hold settled");
    assert_eq!(
        routers[0].budgets().spent(&scope).await.unwrap(),
        Some(spent),
        "every router sees the same spending"
    );
    assert_eq!(sink.0.lock().unwrap().len() as u64, ok);
}

/// A stream dropped before its usage arrived is booked at its hold, so a
/// caller cannot spend past a budget by never reading a stream to its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_dropped_midway_is_booked_at_its_hold() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(Ledger::open(&dir.path().join("usage.db")).unwrap());
    let info = model("m", 1.0, 100_000, QualityTier::Standard);
    let request = named("a/m");
    let ceiling = info.cost_micro_usd(request.max_input_tokens(), 100);
    let scope = Scope::Plugin("tutor".into());
    let config = RouterConfig {
        budgets: vec![(scope.clone(), 10 * ceiling)],
        ..fast()
    };
    let a = Fake::new("a", vec![info], ok());
    let router = Router::with_store(config, vec![a], Arc::new(NoSink), ledger.clone());
    let mut stream = router.stream(&caller(), request).await.unwrap();
    assert_eq!(stream.next().await.unwrap().unwrap().content, "Hel");
    assert_eq!(ledger.held(&scope).unwrap(), ceiling);
    drop(stream);
    let month = month_start(day_of(std::time::SystemTime::now()));
    for _ in 0..200 {
        if ledger.held(&scope).unwrap() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(ledger.held(&scope).unwrap(), 0);
    assert_eq!(ledger.spent(&scope, month).unwrap(), ceiling);
}

#[tokio::test]
async fn names_in_the_configuration_must_name_models_and_keys_that_exist() {
    let a = Fake::new(
        "a",
        vec![model("m", 1.0, 8000, QualityTier::Standard)],
        ok(),
    );
    let b = Fake::new(
        "b",
        vec![model("m", 1.0, 8000, QualityTier::Standard)],
        ok(),
    );
    let mut config = fast();
    config.fallback = vec!["b/m".into(), "b/gpt-does-not-exist".into()];
    config
        .chains
        .insert("a/nope".into(), vec!["b/m".into(), "zz/m".into()]);
    config.prices.insert("a/m".into(), (1.0, 2.0));
    config.prices.insert("nameless".into(), (1.0, 2.0));
    config.budgets = vec![
        (Scope::Key("fake/default".into()), 10),
        (Scope::Key("fake/other".into()), 10),
        (Scope::Plugin("p".into()), 10),
    ];
    let router = Router::new(config, vec![a, b], Arc::new(NoSink));
    let problems: Vec<(&str, String, String)> = router
        .check_config()
        .await
        .into_iter()
        .map(|p| (p.field, p.name, p.message))
        .collect();
    let names: Vec<(&str, &str)> = problems.iter().map(|(f, n, _)| (*f, n.as_str())).collect();
    assert_eq!(
        names,
        [
            ("fallback", "b/gpt-does-not-exist"),
            ("chains", "a/nope"),
            ("chains", "zz/m"),
            ("prices", "nameless"),
            ("budgets.keys", "fake/other"),
        ],
        "{problems:#?}"
    );
    assert!(
        problems[0]
            .2
            .contains("is not a model of provider `b`; its models are: b/m"),
        "{}",
        problems[0].2
    );
    assert!(problems[2].2.contains("the loaded providers are: a, b"));
    assert!(problems[3].2.contains("must be written provider/model"));
    assert!(problems[4].2.contains("keys are: fake/default"));
}

/// Adds up what it is told, for the run tests.
#[derive(Default)]
struct Meter(std::sync::Mutex<(u64, u64)>);

impl UsageMeter for Meter {
    fn add(&self, usage: &Usage, _failed: bool) {
        let mut seen = self.0.lock().unwrap();
        seen.0 += 1;
        seen.1 += usage.cost_micro_usd;
    }
}

/// A run's budget bounds what each graph run spends in all (runs apart),
/// and a run's meter hears of every call made for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_run_has_its_budget_and_its_meter() {
    let dir = tempfile::tempdir().unwrap();
    let info = model("m", 1.0, 100_000, QualityTier::Standard);
    let request = named("a/m");
    let ceiling = info.cost_micro_usd(request.max_input_tokens(), 100);
    let a = Fake::new("a", vec![info], ok());
    let config = RouterConfig {
        run_budget: Some(3 * ceiling),
        ..fast()
    };
    let ledger = Arc::new(Ledger::open(&dir.path().join("usage.db")).unwrap());
    let router = Router::with_store(config, vec![a], Arc::new(NoSink), ledger.clone());
    let in_run = |run: &str, meter: &Arc<Meter>| Caller {
        run: Some(RunCaller {
            run: run.into(),
            meter: meter.clone(),
        }),
        ..caller()
    };
    let (m1, m2) = (Arc::new(Meter::default()), Arc::new(Meter::default()));
    for _ in 0..3 {
        router
            .complete(&in_run("r1", &m1), request.clone())
            .await
            .unwrap();
    }
    let err = router
        .complete(&in_run("r1", &m1), request.clone())
        .await
        .unwrap_err();
    let ModelError::BudgetExceeded(message) = err else {
        panic!("{err:?}");
    };
    assert!(message.starts_with("the budget of run r1 is"), "{message}");
    // Another run has its own; calls outside runs have none.
    router
        .complete(&in_run("r2", &m2), request.clone())
        .await
        .unwrap();
    router.complete(&caller(), request.clone()).await.unwrap();

    let spent = |run: &str| ledger.spent(&Scope::Run(run.into()), 0).unwrap();
    assert_eq!(*m1.0.lock().unwrap(), (3, spent("r1")));
    assert_eq!(*m2.0.lock().unwrap(), (1, spent("r2")));
    assert!(spent("r1") > 0 && spent("r1") <= 3 * ceiling);
    assert_eq!(
        router
            .budgets()
            .spent(&Scope::Run("r1".into()))
            .await
            .unwrap(),
        Some(spent("r1"))
    );
}
