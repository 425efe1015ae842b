//! The provider adapter components against fake provider APIs
//! (`convergio_tests::fake_providers`), through the inference router:
//!
//! - a conformance suite every adapter passes (Anthropic, Gemini, OpenAI and
//!   Azure OpenAI through the OpenAI component): models with prices, plain
//!   chat, tool calls, the tool-result round trip on the wire, streaming of
//!   text and of tool calls, embeddings (or a clear refusal), and costs
//!   rounded up to the next micro-dollar; each case also with every body
//!   cut differently on the wire (a byte per write, random cuts, the whole
//!   stream in one write);
//! - fault scenarios, each with a chain from a failing provider to a healthy
//!   one: rate limits with `Retry-After`, 5xx, overload, refused
//!   connections, timeouts before the headers, cut and stalled streams, a
//!   prompt that is too long, malformed JSON and a refused key.
//!
//! The fakes check what they receive (auth header, paths, body shape) and
//! answer HTTP 400 to anything malformed; every test ends by asserting that
//! nothing was refused. See docs/providers.md.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cell::Cell;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use convergio_cap_keys::Vault;
use convergio_runtime::Runtime;
use convergio_runtime::inference::{
    CallRecord, Caller, ChatRequest, Completion, Delta, FinishReason, Message, ModelError,
    ModelInfo, ModelSelector, NoSink, Provider, ResponseFormat, Role, Router, RouterConfig,
    Sampling, ToolCall, ToolDefinition, Usage, UsageSink,
};
use convergio_tests::fake_providers::{
    self as fake, Chunking, DEFAULT_PAUSE, FakeProvider, Fault, Flavor, INPUT_TOKENS,
    OUTPUT_TOKENS, TEXT, TEXT_PIECES, THOUGHT_SIGNATURE, TOOL_ANSWER,
};
use convergio_tests::{TestPlugin, start, target_dir};
use serde_json::{Value, json};
use tempfile::TempDir;

/// The completion cap every request sets.
const MAX_TOKENS: u32 = 256;
/// What the tool returns in the round trip.
const TOOL_RESULT: &str = r#"{"temp_c":18,"sky":"sunny"}"#;

fn secret(flavor: Flavor) -> String {
    format!("sk-{}-conformance-7f3a9c", flavor.provider())
}

fn caller() -> Caller {
    Caller {
        plugin: "conformance".into(),
        agent: None,
        run: None,
    }
}

fn weather_tool() -> ToolDefinition {
    ToolDefinition {
        name: "get_weather".into(),
        description: "The current weather in a city".into(),
        parameters: json!({
            "type": "object",
            "properties": {"city": {"type": "string", "description": "City name"}},
            "required": ["city"]
        })
        .to_string(),
    }
}

fn chat(model: &str, messages: Vec<Message>, tools: Vec<ToolDefinition>) -> ChatRequest {
    ChatRequest {
        model: ModelSelector::Named(model.into()),
        messages,
        tools,
        sampling: Sampling {
            max_tokens: Some(MAX_TOKENS),
            ..Sampling::default()
        },
        format: ResponseFormat::Text,
    }
}

fn plain_chat(model: &str) -> ChatRequest {
    chat(
        model,
        vec![
            Message::text(Role::System, "Be brief."),
            Message::text(Role::User, "Why is the sky blue?"),
        ],
        vec![],
    )
}

fn weather_chat(model: &str) -> ChatRequest {
    chat(
        model,
        vec![
            Message::text(Role::System, "Be brief."),
            Message::text(Role::User, "What is the weather in Paris?"),
        ],
        vec![weather_tool()],
    )
}

/// The settings of every test platform: compiled components are cached
/// across tests (each test loads the same few components).
fn runtime_settings() -> String {
    format!(
        "compile-cache = true\ncache-dir = {:?}\n",
        target_dir().join("convergio-test-cache").join("providers")
    )
}

/// A call the router reported: provider, and the kind and message of its
/// failure (after retries).
type Reported = (String, Option<(&'static str, String)>);

/// Every call the router reported.
#[derive(Debug, Default)]
struct Recorder(Mutex<Vec<Reported>>);

impl UsageSink for Recorder {
    fn record(&self, call: &CallRecord<'_>) {
        self.0.lock().unwrap().push((
            call.provider.to_owned(),
            call.error.map(|e| (e.kind(), e.to_string())),
        ));
    }
}

impl Recorder {
    /// The failures reported for `provider`: kind and message.
    fn failures(&self, provider: &str) -> Vec<(&'static str, String)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == provider)
            .filter_map(|(_, e)| e.clone())
            .collect()
    }

    fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
}

/// A loaded platform with a router over its provider plugins.
struct Platform {
    router: Router,
    calls: Arc<Recorder>,
    providers: Vec<Arc<dyn Provider>>,
    _runtime: Runtime,
    _dir: TempDir,
}

/// Start `plugins` with `keys` (flavor, secret) in the vault; the router is
/// made by `router` from the providers and the models they list.
async fn platform(
    plugins: &[TestPlugin],
    keys: &[(Flavor, String)],
    router: impl FnOnce(&[(String, ModelInfo)]) -> RouterConfig,
) -> Platform {
    let dir = tempfile::tempdir().unwrap();
    let vault = Vault::open_in(&dir.path().join("platform-data")).unwrap();
    for (flavor, secret) in keys {
        fake::add_key(&vault, *flavor, secret);
    }
    drop(vault);
    let runtime = start(dir.path(), &runtime_settings(), plugins).await;
    let providers: Vec<Arc<dyn Provider>> = runtime.providers().await.unwrap();
    let models = Router::new(RouterConfig::default(), providers.clone(), Arc::new(NoSink))
        .models()
        .await;
    let config = router(&models);
    let calls = Arc::new(Recorder::default());
    Platform {
        router: Router::new(config, providers.clone(), calls.clone()),
        calls,
        providers,
        _runtime: runtime,
        _dir: dir,
    }
}

/// The chat model of `provider` the suite uses: the first listed that
/// takes tools and streams.
fn chat_model(models: &[(String, ModelInfo)], provider: &str) -> (String, ModelInfo) {
    models
        .iter()
        .find(|(name, info)| {
            name.starts_with(&format!("{provider}/"))
                && info.features.tools
                && info.features.streaming
        })
        .cloned()
        .unwrap_or_else(|| panic!("{provider} lists no chat model with tools: {models:?}"))
}

fn embedding_model(models: &[(String, ModelInfo)], provider: &str) -> Option<String> {
    models
        .iter()
        .find(|(name, info)| name.starts_with(&format!("{provider}/")) && info.features.embeddings)
        .map(|(name, _)| name.clone())
}

/// What a stream delivered.
#[derive(Debug, Default)]
struct Collected {
    /// Non-empty content pieces, with when each arrived.
    pieces: Vec<(String, Instant)>,
    tool_calls: Vec<ToolCall>,
    finish: Option<FinishReason>,
    usage: Option<Usage>,
    deltas: usize,
    error: Option<ModelError>,
}

impl Collected {
    fn text(&self) -> String {
        self.pieces.iter().map(|(p, _)| p.as_str()).collect()
    }
}

async fn collect(stream: &mut convergio_runtime::inference::RoutedStream) -> Collected {
    let mut out = Collected::default();
    while let Some(item) = stream.next().await {
        match item {
            Ok(Delta {
                content,
                tool_calls,
                finish_reason,
                usage,
            }) => {
                out.deltas += 1;
                if !content.is_empty() {
                    out.pieces.push((content, Instant::now()));
                }
                out.tool_calls.extend(tool_calls);
                out.finish = out.finish.or(finish_reason);
                out.usage = out.usage.or(usage);
            }
            Err(e) => {
                assert!(out.error.is_none(), "a second error after {:?}", out.error);
                out.error = Some(e);
            }
        }
    }
    out
}

fn arguments(call: &ToolCall) -> Value {
    serde_json::from_str(&call.arguments)
        .unwrap_or_else(|e| panic!("tool call arguments are not JSON ({e}): {call:?}"))
}

// ---------------------------------------------------------------- conformance

/// One adapter behind the router, for the conformance cases.
struct Ctx {
    flavor: Flavor,
    fake: FakeProvider,
    platform: Platform,
    /// `provider/model` of the chat model.
    chat: String,
    chat_info: ModelInfo,
    /// `provider/model` of the embeddings model, if the provider has one.
    embed: Option<String>,
    models: Vec<(String, ModelInfo)>,
    /// How the fake cuts its bodies in this round.
    chunking: Cell<Chunking>,
}

impl Ctx {
    fn router(&self) -> &Router {
        &self.platform.router
    }

    /// The last request the fake received, which must have been well-formed.
    fn last(&self) -> fake::Exchange {
        let exchanges = self.fake.exchanges();
        let last = exchanges
            .last()
            .cloned()
            .expect("the fake received a request");
        assert!(
            last.seen.is_some(),
            "{:?}: the fake refused the request: {}",
            self.flavor,
            last.answer
        );
        last
    }

    /// The router's price of the fake's usage ([`INPUT_TOKENS`] = 21 in,
    /// [`OUTPUT_TOKENS`] = 9 out) on the chat model, from the adapter's
    /// declared prices in USD per million tokens (micro-dollars per token).
    fn expected_cost(&self) -> u64 {
        let (model, prices, cost) = match self.flavor {
            // 21 × 8 + 9 × 40
            Flavor::Anthropic => ("anthropic/claude-fable-5-2", (8.0, 40.0), 528),
            // 21 × 4 + 9 × 20
            Flavor::Gemini => ("gemini/gemini-4-carbon", (4.0, 20.0), 264),
            // 21 × 2 + 9 × 10 (gpt-6-sol: the first with tools)
            Flavor::OpenAi => ("openai/gpt-6-sol", (2.0, 10.0), 132),
            // The `chat` deployment of gpt-6-luna: 21 × 0.1 + 9 × 0.5 = 6.6, rounded up
            Flavor::AzureOpenAi => ("azure-openai/chat", (0.1, 0.5), 7),
        };
        assert_eq!(
            (
                self.chat.as_str(),
                (
                    self.chat_info.input_price_per_mtok,
                    self.chat_info.output_price_per_mtok
                )
            ),
            (model, prices),
            "the chat model and prices these costs were worked out for"
        );
        cost
    }
}

type Case = for<'a> fn(&'a Ctx) -> Pin<Box<dyn Future<Output = ()> + 'a>>;

/// Every case, in order; each adapter passes all of them.
const CASES: &[(&str, Case)] = &[
    ("models are listed with prices", |c| {
        Box::pin(lists_models(c))
    }),
    ("a plain chat completes", |c| Box::pin(completes(c))),
    ("a tool definition gets a tool call", |c| {
        Box::pin(calls_tools(c))
    }),
    ("a tool result goes back in the wire shape", |c| {
        Box::pin(round_trips_tool_results(c))
    }),
    ("text streams in pieces", |c| Box::pin(streams_text(c))),
    ("a tool call streams", |c| Box::pin(streams_tool_calls(c))),
    ("embeddings, or a clear refusal", |c| Box::pin(embeds(c))),
];

async fn conformance(flavor: Flavor) {
    let fake = FakeProvider::start(flavor, &secret(flavor)).await;
    let mut picked = None;
    let platform = platform(
        &[fake.plugin(&format!("provider-{}", flavor.provider()))],
        &[(flavor, secret(flavor))],
        |models| {
            picked = Some(models.to_vec());
            RouterConfig::default()
        },
    )
    .await;
    let models = picked.unwrap();
    let (chat, chat_info) = chat_model(&models, flavor.provider());
    let ctx = Ctx {
        flavor,
        embed: embedding_model(&models, flavor.provider()),
        fake,
        platform,
        chat,
        chat_info,
        models,
        chunking: Cell::new(Chunking::AsGiven),
    };
    let started = Instant::now();
    for chunking in chunkings() {
        ctx.fake.set_chunking(chunking);
        ctx.fake.forget();
        ctx.chunking.set(chunking);
        for (name, case) in CASES {
            eprintln!("{flavor:?}, {chunking:?}: {name}");
            case(&ctx).await;
        }
    }
    assert_eq!(
        ctx.fake.rejections(),
        Vec::<String>::new(),
        "{flavor:?}: the fake refused requests"
    );
    eprintln!("{flavor:?}: conformance passed in {:?}", started.elapsed());
}

/// Every way the fakes cut their bodies: one event per write (as the
/// fakes send them), a byte per write, random cuts (the seed is
/// `CONVERGIO_TEST_SEED`, else the clock; it is printed), and the whole
/// body in one write.
fn chunkings() -> [Chunking; 4] {
    let seed = std::env::var("CONVERGIO_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("random cuts with CONVERGIO_TEST_SEED={seed}");
    [
        Chunking::AsGiven,
        Chunking::Pieces(1),
        Chunking::Random { seed, max: 40 },
        Chunking::Whole,
    ]
}

async fn lists_models(c: &Ctx) {
    let prefix = format!("{}/", c.flavor.provider());
    let own: Vec<&(String, ModelInfo)> = c
        .models
        .iter()
        .filter(|(n, _)| n.starts_with(&prefix))
        .collect();
    assert!(!own.is_empty(), "{:?}: no models", c.flavor);
    for (name, info) in &own {
        assert!(info.input_price_per_mtok > 0.0, "{name}: no input price");
        if !info.features.embeddings {
            assert!(info.output_price_per_mtok > 0.0, "{name}: no output price");
            assert!(info.context_window > 0, "{name}: no context window");
        }
        assert!(!info.local, "{name} is not local");
    }
    assert_eq!(
        c.embed.is_some(),
        c.flavor.has_embeddings(),
        "{:?}: embeddings models {:?}",
        c.flavor,
        c.embed
    );
    assert!(
        c.fake.exchanges().is_empty(),
        "listing models sends nothing"
    );
}

async fn completes(c: &Ctx) {
    let done: Completion = c
        .router()
        .complete(&caller(), plain_chat(&c.chat))
        .await
        .unwrap_or_else(|e| panic!("{:?}: {e}", c.flavor));
    assert_eq!(done.provider, c.flavor.provider());
    assert!(!done.model.is_empty());
    assert_eq!(done.message.role, Role::Assistant);
    assert_eq!(done.message.content, TEXT);
    assert!(done.message.tool_calls.is_empty());
    assert_eq!(done.finish_reason, FinishReason::Stop);
    assert_eq!(
        (done.usage.input_tokens, done.usage.output_tokens),
        (INPUT_TOKENS, OUTPUT_TOKENS)
    );
    assert!(done.usage.cost_micro_usd > 0);
    assert_eq!(
        done.usage.cost_micro_usd,
        c.expected_cost(),
        "priced by the router"
    );

    let last = c.last();
    let seen = last.seen.as_ref().unwrap();
    assert_eq!(seen.operation, "chat");
    assert!(!seen.stream);
    assert_eq!(seen.max_tokens, Some(u64::from(MAX_TOKENS)));
    assert!(seen.tools.is_empty());
    assert_eq!(seen.system.as_deref(), Some("Be brief."));
    let roles: Vec<&str> = seen.roles.iter().map(String::as_str).collect();
    match c.flavor {
        Flavor::OpenAi | Flavor::AzureOpenAi => assert_eq!(roles, ["system", "user"]),
        _ => assert_eq!(roles, ["user"]),
    }
    assert!(last.header("convergio-key").is_none());
}

async fn calls_tools(c: &Ctx) {
    let done = c
        .router()
        .complete(&caller(), weather_chat(&c.chat))
        .await
        .unwrap_or_else(|e| panic!("{:?}: {e}", c.flavor));
    assert_eq!(done.finish_reason, FinishReason::ToolCalls, "{done:?}");
    assert_eq!(done.message.tool_calls.len(), 1, "{done:?}");
    let call = &done.message.tool_calls[0];
    assert_eq!(call.name, "get_weather");
    assert!(!call.id.is_empty());
    assert_eq!(arguments(call), json!({"city": "Paris"}));
    assert_eq!(done.usage.cost_micro_usd, c.expected_cost());

    let last = c.last();
    assert_eq!(last.seen.as_ref().unwrap().tools, ["get_weather"]);
    // The parameters schema went out as the provider's tool definition.
    let schema = match c.flavor {
        Flavor::Anthropic => &last.body["tools"][0]["input_schema"],
        Flavor::Gemini => &last.body["tools"][0]["functionDeclarations"][0]["parameters"],
        Flavor::OpenAi | Flavor::AzureOpenAi => &last.body["tools"][0]["function"]["parameters"],
    };
    assert!(
        schema["properties"]["city"].is_object(),
        "{:?}: {}",
        c.flavor,
        last.body
    );
    assert_eq!(schema["required"], json!(["city"]), "{}", last.body);
}

async fn round_trips_tool_results(c: &Ctx) {
    let first = c
        .router()
        .complete(&caller(), weather_chat(&c.chat))
        .await
        .unwrap_or_else(|e| panic!("{:?}: {e}", c.flavor));
    let call = first.message.tool_calls[0].clone();
    let mut request = weather_chat(&c.chat);
    request.messages.push(first.message.clone());
    request.messages.push(Message {
        role: Role::Tool,
        content: TOOL_RESULT.into(),
        tool_calls: vec![],
        tool_call_id: Some(call.id.clone()),
    });
    let done = c
        .router()
        .complete(&caller(), request)
        .await
        .unwrap_or_else(|e| panic!("{:?}: {e}", c.flavor));
    assert_eq!(done.message.content, TOOL_ANSWER);
    assert_eq!(done.finish_reason, FinishReason::Stop);

    let last = c.last();
    assert!(last.seen.as_ref().unwrap().after_tool_result);
    let body = &last.body;
    let result: Value = serde_json::from_str(TOOL_RESULT).unwrap();
    match c.flavor {
        Flavor::Anthropic => {
            let m = &body["messages"];
            assert_eq!(m.as_array().unwrap().len(), 3, "{body}");
            assert_eq!(m[1]["role"], "assistant");
            let tool_use = m[1]["content"]
                .as_array()
                .unwrap()
                .iter()
                .find(|b| b["type"] == "tool_use")
                .unwrap_or_else(|| panic!("no tool_use block: {body}"));
            assert_eq!(tool_use["id"], call.id.as_str());
            assert_eq!(tool_use["name"], "get_weather");
            assert_eq!(tool_use["input"], json!({"city": "Paris"}));
            assert_eq!(m[2]["role"], "user");
            assert_eq!(m[2]["content"][0]["type"], "tool_result", "{body}");
            assert_eq!(m[2]["content"][0]["tool_use_id"], call.id.as_str());
            assert_eq!(m[2]["content"][0]["content"], TOOL_RESULT);
        }
        Flavor::Gemini => {
            let contents = &body["contents"];
            assert_eq!(contents.as_array().unwrap().len(), 3, "{body}");
            assert_eq!(contents[1]["role"], "model");
            let part = contents[1]["parts"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p.get("functionCall").is_some())
                .unwrap_or_else(|| panic!("no functionCall part: {body}"));
            assert_eq!(part["functionCall"]["name"], "get_weather");
            assert_eq!(part["functionCall"]["args"], json!({"city": "Paris"}));
            assert_eq!(
                part["thoughtSignature"], THOUGHT_SIGNATURE,
                "the thought signature comes back: {body}"
            );
            assert_eq!(contents[2]["role"], "user");
            let response = &contents[2]["parts"][0]["functionResponse"];
            assert_eq!(response["name"], "get_weather", "{body}");
            assert_eq!(response["response"], result);
        }
        Flavor::OpenAi | Flavor::AzureOpenAi => {
            let m = &body["messages"];
            assert_eq!(m.as_array().unwrap().len(), 4, "{body}");
            assert_eq!(m[2]["role"], "assistant");
            let wire_call = &m[2]["tool_calls"][0];
            assert_eq!(wire_call["id"], call.id.as_str());
            assert_eq!(wire_call["type"], "function");
            assert_eq!(wire_call["function"]["name"], "get_weather");
            let args: Value =
                serde_json::from_str(wire_call["function"]["arguments"].as_str().unwrap()).unwrap();
            assert_eq!(args, json!({"city": "Paris"}));
            assert_eq!(m[3]["role"], "tool");
            assert_eq!(m[3]["tool_call_id"], call.id.as_str());
            assert_eq!(m[3]["content"], TOOL_RESULT);
        }
    }
}

async fn streams_text(c: &Ctx) {
    let mut stream = c
        .router()
        .stream(&caller(), plain_chat(&c.chat))
        .await
        .unwrap_or_else(|e| panic!("{:?}: {e}", c.flavor));
    assert_eq!(stream.model(), c.chat);
    let got = collect(&mut stream).await;
    assert!(got.error.is_none(), "{:?}: {:?}", c.flavor, got.error);
    let pieces: Vec<&str> = got.pieces.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(pieces, TEXT_PIECES, "each event is its own delta");
    assert_eq!(got.text(), TEXT);
    assert!(got.tool_calls.is_empty());
    assert_eq!(got.finish, Some(FinishReason::Stop));
    let usage = got.usage.expect("the last delta carries usage");
    assert_eq!(
        (usage.input_tokens, usage.output_tokens),
        (INPUT_TOKENS, OUTPUT_TOKENS)
    );
    assert_eq!(usage.cost_micro_usd, c.expected_cost());
    // Handed out as they came, not gathered at the end: the fake pauses
    // DEFAULT_PAUSE before each event (when it sends one event per write).
    if c.chunking.get() == Chunking::AsGiven {
        let spread = got.pieces.last().unwrap().1 - got.pieces[0].1;
        assert!(
            spread >= DEFAULT_PAUSE * 2,
            "{:?}: all pieces arrived within {spread:?}",
            c.flavor
        );
    }

    let seen = c.last().seen.unwrap();
    assert!(seen.stream);
    assert_eq!(seen.max_tokens, Some(u64::from(MAX_TOKENS)));
    if matches!(c.flavor, Flavor::OpenAi | Flavor::AzureOpenAi) {
        assert!(
            seen.include_usage,
            "stream_options.include_usage is asked for"
        );
    }
}

async fn streams_tool_calls(c: &Ctx) {
    let mut stream = c
        .router()
        .stream(&caller(), weather_chat(&c.chat))
        .await
        .unwrap_or_else(|e| panic!("{:?}: {e}", c.flavor));
    let got = collect(&mut stream).await;
    assert!(got.error.is_none(), "{:?}: {:?}", c.flavor, got.error);
    assert_eq!(got.tool_calls.len(), 1, "{:?}: {got:?}", c.flavor);
    let call = &got.tool_calls[0];
    assert_eq!(call.name, "get_weather");
    assert!(!call.id.is_empty());
    assert_eq!(arguments(call), json!({"city": "Paris"}));
    assert_eq!(got.finish, Some(FinishReason::ToolCalls));
    assert!(got.usage.is_some());
    let seen = c.last().seen.unwrap();
    assert!(seen.stream);
    assert_eq!(seen.tools, ["get_weather"]);
}

async fn embeds(c: &Ctx) {
    let inputs = vec!["alpha".to_owned(), "beta gamma".to_owned()];
    match &c.embed {
        Some(model) => {
            let done = c
                .router()
                .embed(
                    &caller(),
                    ModelSelector::Named(model.clone()),
                    inputs.clone(),
                )
                .await
                .unwrap_or_else(|e| panic!("{:?}: {e}", c.flavor));
            assert_eq!(
                done.vectors,
                [vec![0.5, 5.0, -0.25], vec![1.5, 10.0, -0.25]],
                "one vector per input, in order"
            );
            let seen = c.last().seen.unwrap();
            assert_eq!(seen.operation, "embeddings");
            assert_eq!(seen.inputs, inputs);
            // The policy picks an embeddings model too.
            let picked = c
                .router()
                .embed(
                    &caller(),
                    ModelSelector::Policy(
                        convergio_runtime::inference::Strategy::Cheapest,
                        Default::default(),
                    ),
                    vec!["x".into()],
                )
                .await
                .unwrap();
            assert_eq!(picked.vectors.len(), 1);
        }
        None => {
            let before = c.fake.exchanges().len();
            let err = c
                .router()
                .embed(&caller(), ModelSelector::Named(c.chat.clone()), inputs)
                .await
                .unwrap_err();
            assert!(
                matches!(&err, ModelError::BadRequest(m) if m.contains("embeddings")),
                "{:?}: {err}",
                c.flavor
            );
            assert_eq!(c.fake.exchanges().len(), before, "nothing is sent");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_conforms() {
    conformance(Flavor::Anthropic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_conforms() {
    conformance(Flavor::Gemini).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_conforms() {
    conformance(Flavor::OpenAi).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_openai_conforms() {
    conformance(Flavor::AzureOpenAi).await;
}

/// The router prices usage rounded up to the next micro-dollar, from the
/// exact sum: 21 + 9 tokens at $0.04 per million are 1.2 µ$ and cost 2; at
/// $0.1 per million exactly 3 µ$ (3.0000000000000004 in floating point) and
/// cost 3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn costs_round_up_to_the_next_micro_dollar() {
    let flavor = Flavor::OpenAi;
    let fake = FakeProvider::start(flavor, &secret(flavor)).await;
    let mut names = Vec::new();
    let platform = platform(
        &[fake.plugin("provider-openai")],
        &[(flavor, secret(flavor))],
        |models| {
            names = models
                .iter()
                .filter(|(n, i)| {
                    n.starts_with("openai/") && i.features.tools && i.features.streaming
                })
                .map(|(n, _)| n.clone())
                .take(2)
                .collect();
            assert_eq!(names.len(), 2, "two chat models: {models:?}");
            RouterConfig {
                prices: BTreeMap::from([
                    (names[0].clone(), (0.04, 0.04)),
                    (names[1].clone(), (0.1, 0.1)),
                ]),
                ..RouterConfig::default()
            }
        },
    )
    .await;
    assert_eq!(INPUT_TOKENS + OUTPUT_TOKENS, 30);
    for (model, want) in [(&names[0], 2), (&names[1], 3)] {
        let done = platform
            .router
            .complete(&caller(), plain_chat(model))
            .await
            .unwrap();
        assert_eq!(done.usage.cost_micro_usd, want, "{model}");
        let mut stream = platform
            .router
            .stream(&caller(), plain_chat(model))
            .await
            .unwrap();
        let got = collect(&mut stream).await;
        assert_eq!(got.usage.unwrap().cost_micro_usd, want, "{model}, streamed");
    }
    assert_eq!(fake.rejections(), Vec::<String>::new());
}

// ------------------------------------------------------------ fault scenarios

/// Router settings that keep the scenarios short: one retry, short
/// backoff, a first-token timeout of a second, and breakers that stay
/// closed (each scenario counts requests itself).
const RETRIES: usize = 1;
const FIRST_TOKEN_TIMEOUT: Duration = Duration::from_millis(1000);
/// The primary plugin's `http-timeout-ms`.
const HTTP_TIMEOUT: Duration = Duration::from_millis(1000);
/// How long a slow or stalled upstream keeps the caller waiting.
const FOREVER: Duration = Duration::from_secs(8);

/// Each failing provider and the healthy one its model falls back to. Every
/// adapter is a primary once and a fallback once; OpenAI and Azure OpenAI
/// are the same component loaded twice.
const PAIRS: [(Flavor, Flavor); 4] = [
    (Flavor::Anthropic, Flavor::Gemini),
    (Flavor::Gemini, Flavor::OpenAi),
    (Flavor::OpenAi, Flavor::AzureOpenAi),
    (Flavor::AzureOpenAi, Flavor::Anthropic),
];

/// A chain `primary/model → fallback/model`, each adapter with its fake.
struct Chain {
    primary: FakeProvider,
    fallback: FakeProvider,
    platform: Platform,
    /// `provider/model` of the primary's chat model.
    model: String,
}

/// How the primary is set up.
#[derive(Debug, Clone, Copy, Default)]
struct Setup {
    /// The vault holds a key the primary's upstream refuses.
    wrong_key: bool,
    /// The primary's base-url is a port where nothing listens.
    dead_port: bool,
    /// The primary's limits are a short `deadline-ms` (the whole call)
    /// instead of a short `http-timeout-ms`.
    short_deadline: bool,
}

impl Chain {
    async fn start(primary: Flavor, fallback: Flavor, setup: Setup) -> Self {
        let primary_fake = FakeProvider::start(primary, &secret(primary)).await;
        let fallback_fake = FakeProvider::start(fallback, &secret(fallback)).await;
        let primary_origin = if setup.dead_port {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let origin = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
            drop(listener);
            origin
        } else {
            primary_fake.origin()
        };
        let limits = format!("http-timeout-ms = {}", HTTP_TIMEOUT.as_millis());
        let primary_limits = if setup.short_deadline {
            format!("deadline-ms = {}", HTTP_TIMEOUT.as_millis())
        } else {
            limits.clone()
        };
        let plugins = [
            fake::plugin(primary, "primary", &primary_origin).limits(&primary_limits),
            fallback_fake.plugin("fallback").limits(&limits),
        ];
        let primary_secret = if setup.wrong_key {
            "sk-revoked-or-mistyped-0000".to_owned()
        } else {
            secret(primary)
        };
        let keys = [(primary, primary_secret), (fallback, secret(fallback))];
        let mut model = String::new();
        let platform = platform(&plugins, &keys, |models| {
            model = chat_model(models, primary.provider()).0;
            let next = chat_model(models, fallback.provider()).0;
            RouterConfig {
                chains: BTreeMap::from([(model.clone(), vec![next])]),
                retries: RETRIES as u32,
                backoff_base: Duration::from_millis(20),
                backoff_max: Duration::from_secs(2),
                breaker_threshold: 1000,
                first_token_timeout: FIRST_TOKEN_TIMEOUT,
                ..RouterConfig::default()
            }
        })
        .await;
        Self {
            primary: primary_fake,
            fallback: fallback_fake,
            platform,
            model,
        }
    }

    fn name(&self) -> String {
        format!("{:?} → {:?}", self.primary.flavor(), self.fallback.flavor())
    }

    /// Clear faults and logs between the parts of a scenario.
    fn reset(&self) {
        for f in [&self.primary, &self.fallback] {
            f.heal();
            f.forget();
        }
        self.platform.calls.clear();
    }

    /// The kinds of the primary's failures the router reported (one per
    /// call, after its retries), each checked to be `kind`.
    fn primary_failed_as(&self, kind: &str, calls: usize) {
        let failures = self
            .platform
            .calls
            .failures(self.primary.flavor().provider());
        for (k, message) in &failures {
            eprintln!("{}: {kind}: {message}", self.name());
            assert_eq!(*k, kind, "{}: {message}", self.name());
        }
        assert_eq!(failures.len(), calls, "{}: {failures:?}", self.name());
    }

    async fn complete(&self) -> Result<Completion, ModelError> {
        self.platform
            .router
            .complete(&caller(), plain_chat(&self.model))
            .await
    }

    /// Stream the plain chat: the answering model and what arrived; or the
    /// error that kept the stream from opening.
    async fn stream(&self) -> Result<(String, Collected), ModelError> {
        let mut stream = self
            .platform
            .router
            .stream(&caller(), plain_chat(&self.model))
            .await?;
        let model = stream.model().to_owned();
        Ok((model, collect(&mut stream).await))
    }

    /// The plain chat, complete and streamed, is answered by `by`.
    async fn answered_by(&self, by: &FakeProvider) {
        let name = self.name();
        let done = self
            .complete()
            .await
            .unwrap_or_else(|e| panic!("{name}: complete failed: {e}"));
        assert_eq!(done.provider, by.flavor().provider(), "{name}");
        assert_eq!(done.message.content, TEXT, "{name}");
        self.streamed_by(by).await;
    }

    async fn streamed_by(&self, by: &FakeProvider) {
        let name = self.name();
        let (model, got) = self
            .stream()
            .await
            .unwrap_or_else(|e| panic!("{name}: stream failed: {e}"));
        assert!(
            model.starts_with(&format!("{}/", by.flavor().provider())),
            "{name}: streamed by {model}"
        );
        assert!(got.error.is_none(), "{name}: {:?}", got.error);
        assert_eq!(got.text(), TEXT, "{name}");
        assert!(got.usage.is_some(), "{name}");
    }

    fn requests(fake: &FakeProvider) -> usize {
        fake.exchanges().len()
    }

    /// Nothing either fake received was malformed.
    fn well_formed(&self) {
        for f in [&self.primary, &self.fallback] {
            assert_eq!(
                f.rejections(),
                Vec::<String>::new(),
                "{}: {:?} refused requests",
                self.name(),
                f.flavor()
            );
        }
    }
}

/// Run `scenario` on every pair at once, each with its own platform.
async fn on_every_pair<F, Fut>(setup: Setup, scenario: F)
where
    F: Fn(Chain) -> Fut + Copy + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let started = Instant::now();
    let mut runs = tokio::task::JoinSet::new();
    for (primary, fallback) in PAIRS {
        runs.spawn(async move {
            let chain = Chain::start(primary, fallback, setup).await;
            scenario(chain).await;
        });
    }
    while let Some(run) = runs.join_next().await {
        if let Err(e) = run {
            std::panic::resume_unwind(e.into_panic());
        }
    }
    eprintln!("scenario on {} pairs: {:?}", PAIRS.len(), started.elapsed());
}

/// The primary fails with `fault` every time: the caller gets the
/// fallback's answer, complete and streamed, after `tries` requests to the
/// primary each.
async fn fails_over(chain: &Chain, fault: Fault, tries: usize, kind: &str) {
    let name = chain.name();
    chain.reset();
    chain.primary.fail_always(fault.clone());
    chain.answered_by(&chain.fallback).await;
    assert_eq!(
        Chain::requests(&chain.primary),
        2 * tries,
        "{name}: {fault:?}: requests to the primary (complete, then stream): {:?}",
        chain
            .primary
            .exchanges()
            .iter()
            .map(|e| &e.answer)
            .collect::<Vec<_>>()
    );
    assert_eq!(Chain::requests(&chain.fallback), 2, "{name}: {fault:?}");
    chain.primary_failed_as(kind, 2);
    chain.well_formed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_chains_answer_from_the_primary() {
    on_every_pair(Setup::default(), |chain| async move {
        chain.answered_by(&chain.primary).await;
        assert_eq!(Chain::requests(&chain.fallback), 0);
        chain.well_formed();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_retried_after_the_delay_they_ask_for() {
    const WAIT: Duration = Duration::from_millis(700);
    on_every_pair(Setup::default(), |chain| async move {
        let name = chain.name();
        for streamed in [false, true] {
            chain.reset();
            chain.primary.fail_next(Fault::RateLimited(WAIT));
            if streamed {
                chain.streamed_by(&chain.primary).await;
            } else {
                let done = chain
                    .complete()
                    .await
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(done.provider, chain.primary.flavor().provider(), "{name}");
            }
            let seen = chain.primary.exchanges();
            assert_eq!(seen.len(), 2, "{name}: the 429, then the retry");
            let waited = seen[1].at - seen[0].at;
            assert!(
                waited >= WAIT,
                "{name}: retried after {waited:?}, before the {WAIT:?} the upstream asked for"
            );
            assert!(waited < WAIT + Duration::from_secs(3), "{name}: {waited:?}");
            assert_eq!(Chain::requests(&chain.fallback), 0, "{name}: no failover");
            chain.primary_failed_as("rate-limited", 0);
        }
        // A wait longer than backoff-max is not waited for: the fallback answers now.
        chain.reset();
        chain
            .primary
            .fail_always(Fault::RateLimited(Duration::from_secs(30)));
        let started = Instant::now();
        let done = chain
            .complete()
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(done.provider, chain.fallback.flavor().provider(), "{name}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{name}: waited for the 30 s asked: {:?}",
            started.elapsed()
        );
        assert_eq!(Chain::requests(&chain.primary), 1, "{name}: not retried");
        chain.primary_failed_as("rate-limited", 1);
        chain.well_formed();
    })
    .await;
}

/// The kind an adapter gives its provider's in-stream error
/// ([`Fault::StreamError`]).
fn stream_error_kind(flavor: Flavor) -> &'static str {
    match flavor {
        Flavor::Anthropic | Flavor::Gemini => "overloaded",
        Flavor::OpenAi | Flavor::AzureOpenAi => "upstream",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_errors_fail_over_before_the_first_token_and_reach_the_caller_after() {
    on_every_pair(Setup::default(), |chain| async move {
        let name = chain.name();
        let kind = stream_error_kind(chain.primary.flavor());
        // HTTP 200, then the provider's error event: nothing reached the caller yet.
        chain.primary.fail_always(Fault::StreamError { deltas: 0 });
        chain.streamed_by(&chain.fallback).await;
        assert_eq!(Chain::requests(&chain.primary), 1 + RETRIES, "{name}");
        chain.primary_failed_as(kind, 1);
        // After two pieces of text: the error reaches the caller, mapped.
        chain.reset();
        chain.primary.fail_always(Fault::StreamError { deltas: 2 });
        let (_, got) = chain
            .stream()
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got.text(), TEXT_PIECES[..2].concat(), "{name}");
        let err = got
            .error
            .unwrap_or_else(|| panic!("{name}: the stream ended silently"));
        assert_eq!(err.kind(), kind, "{name}: {err}");
        assert_eq!(Chain::requests(&chain.fallback), 0, "{name}");
        chain.well_formed();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried_then_fail_over() {
    on_every_pair(Setup::default(), |chain| async move {
        fails_over(&chain, Fault::ServerError, 1 + RETRIES, "upstream").await;
        // A single 500 is absorbed by the retry.
        chain.reset();
        chain.primary.fail_next(Fault::ServerError);
        let done = chain.complete().await.unwrap();
        assert_eq!(done.provider, chain.primary.flavor().provider());
        assert_eq!(Chain::requests(&chain.primary), 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overloaded_upstreams_fail_over() {
    on_every_pair(Setup::default(), |chain| async move {
        // Anthropic: 529 and 503; the others: 503.
        fails_over(&chain, Fault::Overloaded, 1 + RETRIES, "overloaded").await;
        fails_over(&chain, Fault::Unavailable, 1 + RETRIES, "overloaded").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_fail_over() {
    on_every_pair(
        Setup {
            dead_port: true,
            ..Setup::default()
        },
        |chain| async move {
            chain.answered_by(&chain.fallback).await;
            assert_eq!(Chain::requests(&chain.primary), 0);
            assert_eq!(Chain::requests(&chain.fallback), 2);
            chain.primary_failed_as("upstream", 2);
            chain.well_formed();
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstreams_that_send_no_headers_time_out_and_fail_over() {
    on_every_pair(Setup::default(), |chain| async move {
        let started = Instant::now();
        // A timeout is not retried on the same model: one request each.
        fails_over(&chain, Fault::SlowHeaders(FOREVER), 1, "timeout").await;
        let took = started.elapsed();
        // One try of the complete call, ended by the plugin's
        // http-timeout-ms, and one of the stream, ended by the first-token
        // timeout: well before the upstream would answer.
        assert!(took < FOREVER, "{}: {took:?}", chain.name());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_stopped_by_their_deadline_time_out_and_fail_over() {
    on_every_pair(
        Setup {
            short_deadline: true,
            ..Setup::default()
        },
        |chain| async move {
            let name = chain.name();
            chain.primary.fail_always(Fault::SlowHeaders(FOREVER));
            let started = Instant::now();
            let done = chain
                .complete()
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(done.provider, chain.fallback.flavor().provider(), "{name}");
            assert!(
                started.elapsed() < FOREVER,
                "{name}: {:?}",
                started.elapsed()
            );
            // A timeout moves to the next model at once.
            assert_eq!(Chain::requests(&chain.primary), 1, "{name}");
            chain.primary_failed_as("timeout", 1);
            chain.well_formed();
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_cut_before_the_first_token_fail_over() {
    on_every_pair(Setup::default(), |chain| async move {
        let name = chain.name();
        chain.primary.fail_always(Fault::CutStream { deltas: 0 });
        chain.streamed_by(&chain.fallback).await;
        assert_eq!(Chain::requests(&chain.primary), 1 + RETRIES, "{name}");
        chain.primary_failed_as("upstream", 1);
        chain.well_formed();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_cut_mid_response_end_with_an_upstream_error() {
    on_every_pair(Setup::default(), |chain| async move {
        let name = chain.name();
        chain.primary.fail_always(Fault::CutStream { deltas: 2 });
        let (model, got) = chain
            .stream()
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        // The caller already has text from the primary: the router cannot
        // switch models mid-answer, so the cut reaches the caller.
        assert!(model.starts_with(&format!("{}/", chain.primary.flavor().provider())));
        assert_eq!(got.text(), TEXT_PIECES[..2].concat(), "{name}");
        assert!(
            matches!(got.error, Some(ModelError::Upstream(_))),
            "{name}: {:?}",
            got.error
        );
        assert_eq!(got.finish, None);
        assert_eq!(Chain::requests(&chain.fallback), 0, "{name}");
        chain.primary_failed_as("upstream", 1);
        // The caller asks again and the healthy chain answers.
        chain.primary.heal();
        chain.streamed_by(&chain.primary).await;
        chain.well_formed();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_that_stall_before_the_first_token_fail_over() {
    on_every_pair(Setup::default(), |chain| async move {
        let name = chain.name();
        chain.primary.fail_always(Fault::StallStream(FOREVER));
        let started = Instant::now();
        chain.streamed_by(&chain.fallback).await;
        let took = started.elapsed();
        // A stall fails over after one first-token timeout, not one per retry.
        assert_eq!(Chain::requests(&chain.primary), 1, "{name}");
        assert!(
            took >= FIRST_TOKEN_TIMEOUT && took < FOREVER,
            "{name}: {took:?}"
        );
        chain.primary_failed_as("timeout", 1);
        chain.well_formed();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompts_too_long_fail_the_same_everywhere() {
    on_every_pair(Setup::default(), |chain| async move {
        let name = chain.name();
        chain.primary.fail_always(Fault::ContextLength);
        let err = chain.complete().await.unwrap_err();
        assert_eq!(err.kind(), "context-length-exceeded", "{name}: {err}");
        let err = chain.stream().await.unwrap_err();
        assert_eq!(err.kind(), "context-length-exceeded", "{name}: {err}");
        assert_eq!(Chain::requests(&chain.primary), 2, "{name}: not retried");
        assert_eq!(Chain::requests(&chain.fallback), 0, "{name}: no failover");
        chain.primary_failed_as("context-length-exceeded", 2);
        chain.well_formed();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_retried_then_fails_over() {
    on_every_pair(Setup::default(), |chain| async move {
        fails_over(
            &chain,
            Fault::MalformedJson,
            1 + RETRIES,
            "malformed-response",
        )
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_fails_over_to_a_provider_with_its_own_key() {
    on_every_pair(
        Setup {
            wrong_key: true,
            ..Setup::default()
        },
        |chain| async move {
            let name = chain.name();
            chain.answered_by(&chain.fallback).await;
            let seen = chain.primary.exchanges();
            assert_eq!(seen.len(), 2, "{name}: one try each, not retried");
            assert!(seen.iter().all(|e| e.answer == "unauthorized"), "{name}");
            chain.primary_failed_as("auth", 2);
            // The key the host sent was the stored one, in the provider's header.
            let header = chain.primary.flavor().auth_scheme().header_name();
            assert!(
                seen[0]
                    .header(header)
                    .is_some_and(|v| v.contains("sk-revoked-or-mistyped-0000")),
                "{name}: {:?}",
                seen[0].headers
            );
            // Without the chain, the caller sees the primary's failure as `auth`.
            let alone = Router::new(
                RouterConfig::default(),
                chain.platform.providers.clone(),
                Arc::new(NoSink),
            );
            let err = alone
                .complete(&caller(), plain_chat(&chain.model))
                .await
                .unwrap_err();
            assert_eq!(err.kind(), "auth", "{name}: {err}");
            chain.well_formed();
        },
    )
    .await;
}

/// Two instances of one adapter (two Anthropic accounts, say), each a
/// `[[plugin]]` with its own id over the same component (`provider-anthropic`),
/// report the same provider id from `info()`; each stays reachable, named
/// by its plugin id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_plugins_of_one_adapter_are_both_reachable() {
    let eu = FakeProvider::start(Flavor::Anthropic, &secret(Flavor::Anthropic)).await;
    let us = FakeProvider::start(Flavor::Anthropic, &secret(Flavor::Anthropic)).await;
    let platform = platform(
        &[
            eu.plugin("anthropic-eu").instance_of("provider-anthropic"),
            us.plugin("anthropic-us").instance_of("provider-anthropic"),
        ],
        &[(Flavor::Anthropic, secret(Flavor::Anthropic))],
        |_| RouterConfig::default(),
    )
    .await;
    assert_eq!(platform.providers.len(), 2, "both plugins are providers");
    let ids: std::collections::BTreeSet<&str> = platform.providers.iter().map(|p| p.id()).collect();
    let models = platform.router.models().await;
    // Both report `anthropic`, so each is named by its plugin id.
    for account in ["anthropic-eu", "anthropic-us"] {
        let (model, _) = chat_model(&models, account);
        for _ in 0..2 {
            let done = platform
                .router
                .complete(&caller(), plain_chat(&model))
                .await
                .unwrap();
            assert_eq!(done.provider, account);
        }
    }
    assert!(
        ids.len() == 2 || (!eu.exchanges().is_empty() && !us.exchanges().is_empty()),
        "provider ids {ids:?}: requests reached eu {} times, us {} times; one account is unreachable",
        eu.exchanges().len(),
        us.exchanges().len()
    );
}
