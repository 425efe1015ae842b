//! The router against fake providers: selection, retries, failover,
//! circuit breakers, zero-cloud mode, budgets under concurrency, streams.

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
            message: Message::text(Role::Assistant, format!("{} says hi", self.id)),
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
        json_mode: false,
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
        Box::pin(async move { self.answer(&request) })
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
        json_mode: false,
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
