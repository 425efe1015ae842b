//! Fake model provider APIs on 127.0.0.1, for tests of the provider
//! adapter components: Anthropic Messages, Gemini `generateContent`, OpenAI
//! Chat Completions and Embeddings, and Azure OpenAI (dated deployment
//! URLs). Each fake speaks its provider's wire format, including server-sent
//! events, and checks what it receives:
//!
//! - the method, path and the provider's headers;
//! - the auth header the host injects from the vault (`x-api-key`,
//!   `x-goog-api-key`, `authorization: Bearer`, `api-key`): a missing or
//!   wrong secret gets the provider's own "invalid key" answer;
//! - the body: fields the API does not know, roles and turn order, tool
//!   definitions, tool calls and the tool results that answer them, the
//!   completion cap, the stream flag.
//!
//! A request that the real API would refuse as malformed gets HTTP 400 (404
//! for an unknown endpoint) with the reason in the provider's error format,
//! and is listed by [`FakeProvider::rejections`], so a test fails loudly.
//!
//! Well-formed requests get canned answers: text ([`TEXT`], streamed as
//! [`TEXT_PIECES`]), a call of the first tool offered with
//! [`TOOL_ARGUMENTS`], or, once the conversation carries a tool result,
//! [`TOOL_ANSWER`]. [`Fault`]s make the next (or every) request fail the way
//! the real API fails. Every exchange is recorded ([`FakeProvider::exchanges`]).
//!
//! Streams go out one event per write, [`DEFAULT_PAUSE`] apart, unless
//! [`FakeProvider::set_chunking`] cuts every body otherwise (a byte per
//! write, random cuts, the whole body at once), as proxies and real
//! networks do.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use convergio_cap_keys::secrecy::SecretString;
use convergio_cap_keys::{AuthScheme, Vault};
use serde_json::{Map, Value, json};

pub use crate::upstream::Chunking;
use crate::upstream::{Received, Reply, Upstream};
use crate::{TestPlugin, crate_component};

/// The plain answer, as one text.
pub const TEXT: &str = "The sky is blue.";
/// The plain answer as it is streamed: one event per piece.
pub const TEXT_PIECES: [&str; 4] = ["The", " sky", " is", " blue."];
/// The answer once the conversation carries a tool result.
pub const TOOL_ANSWER: &str = "It is 18 °C in Paris.";
/// [`TOOL_ANSWER`] as it is streamed.
pub const TOOL_ANSWER_PIECES: [&str; 3] = ["It is", " 18 °C", " in Paris."];
/// Text some providers send before a tool call (Anthropic, Gemini).
pub const TOOL_PREAMBLE: &str = "Let me check.";
/// The arguments of every tool call the fakes make.
pub const TOOL_ARGUMENTS: &str = r#"{"city":"Paris"}"#;
/// Prompt tokens every answer reports.
pub const INPUT_TOKENS: u32 = 21;
/// Completion tokens every chat answer reports.
pub const OUTPUT_TOKENS: u32 = 9;
/// The thought signature Gemini's fake puts on function calls, and expects
/// back on them in later turns (Gemini 3 and later refuse calls without it).
pub const THOUGHT_SIGNATURE: &str = "c2lnbmF0dXJlLWZha2UtMQ==";
/// The Azure OpenAI deployments the fake knows, and the declared models the
/// plugin maps them to (`deployments` config).
pub const AZURE_DEPLOYMENTS: &str = "chat=gpt-6-luna, embed=text-embedding-3-small";
/// The Azure deployment for chat.
pub const AZURE_CHAT_DEPLOYMENT: &str = "chat";
/// The Azure deployment for embeddings.
pub const AZURE_EMBED_DEPLOYMENT: &str = "embed";
/// The `api-version` the Azure fake expects (the adapter's default).
pub const AZURE_API_VERSION: &str = "2024-10-21";
/// The pause between two streamed events unless [`FakeProvider::set_pause`] says otherwise.
pub const DEFAULT_PAUSE: Duration = Duration::from_millis(40);

/// The pause between the pieces of a body cut by [`FakeProvider::set_chunking`].
pub const PIECE_PAUSE: Duration = Duration::from_millis(1);

/// Which API a fake speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flavor {
    /// Anthropic Messages API, `POST /v1/messages`, `x-api-key`.
    Anthropic,
    /// Gemini API, `POST /v1beta/models/{model}:generateContent` (…), `x-goog-api-key`.
    Gemini,
    /// OpenAI, `POST /v1/chat/completions` and `/v1/embeddings`, `authorization: Bearer`.
    OpenAi,
    /// Azure OpenAI, `POST /openai/deployments/{deployment}/chat/completions?api-version=…`, `api-key`.
    AzureOpenAi,
}

impl Flavor {
    /// Every flavor.
    pub const ALL: [Flavor; 4] = [
        Flavor::Anthropic,
        Flavor::Gemini,
        Flavor::OpenAi,
        Flavor::AzureOpenAi,
    ];

    /// The provider id the adapter reports (`provider/model` names), and
    /// the vault's provider name of its key.
    pub fn provider(self) -> &'static str {
        match self {
            Flavor::Anthropic => "anthropic",
            Flavor::Gemini => "gemini",
            Flavor::OpenAi => "openai",
            Flavor::AzureOpenAi => "azure-openai",
        }
    }

    /// The header the key travels in.
    pub fn auth_scheme(self) -> AuthScheme {
        AuthScheme::for_provider(self.provider())
    }

    /// The built adapter component.
    pub fn component(self) -> PathBuf {
        crate_component(match self {
            Flavor::Anthropic => "convergio_provider_anthropic",
            Flavor::Gemini => "convergio_provider_gemini",
            Flavor::OpenAi | Flavor::AzureOpenAi => "convergio_provider_openai",
        })
    }

    /// Whether the provider has an embeddings API.
    pub fn has_embeddings(self) -> bool {
        !matches!(self, Flavor::Anthropic)
    }

    /// The adapter's `base-url` for a server at `origin`.
    pub fn base_url(self, origin: &str) -> String {
        match self {
            Flavor::OpenAi => format!("{origin}/v1"),
            _ => origin.to_owned(),
        }
    }
}

/// How a request fails instead of being answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 429 with the provider's rate-limit body and its way of saying
    /// when to retry (`retry-after`; OpenAI and Azure also `retry-after-ms`;
    /// Gemini `RetryInfo.retryDelay` in the body).
    RateLimited(Duration),
    /// HTTP 500 with the provider's internal-error body.
    ServerError,
    /// The provider's "overloaded": Anthropic 529, the others 503.
    Overloaded,
    /// HTTP 503 with the provider's body (Anthropic has 529 for overload; a
    /// 503 comes from its edge).
    Unavailable,
    /// The answer, but only after this long (nothing before the status line).
    SlowHeaders(Duration),
    /// A stream's headers at once, its first event only after this long
    /// (for a whole answer: the same as [`Fault::SlowHeaders`]).
    StallStream(Duration),
    /// A stream that stops after its opening events and this many content
    /// events, without its terminal event (a whole answer is unaffected).
    CutStream {
        /// Content events sent before the cut.
        deltas: usize,
    },
    /// A stream that sends its opening events and this many content events,
    /// then the provider's in-stream error (Anthropic an `error` event of
    /// type `overloaded_error`, Gemini `{"error": {"code": 503, …}}`,
    /// OpenAI and Azure `{"error": {"type": "server_error", …}}`) after
    /// HTTP 200 (a whole answer is unaffected).
    StreamError {
        /// Content events sent before the error.
        deltas: usize,
    },
    /// HTTP 400 with the provider's "prompt too long" error.
    ContextLength,
    /// HTTP 200 whose body (or first stream event) is not valid JSON.
    MalformedJson,
}

/// What a fake understood of a well-formed request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    /// `chat` or `embeddings`.
    pub operation: &'static str,
    /// The model (Azure: the deployment).
    pub model: String,
    /// Server-sent events were asked for.
    pub stream: bool,
    /// The completion cap sent (`max_tokens`, `max_completion_tokens`,
    /// `maxOutputTokens`).
    pub max_tokens: Option<u64>,
    /// The names of the tools offered.
    pub tools: Vec<String>,
    /// The wire roles of the conversation, in order.
    pub roles: Vec<String>,
    /// The system prompt, if sent.
    pub system: Option<String>,
    /// The conversation ends with tool results.
    pub after_tool_result: bool,
    /// For embeddings: the inputs.
    pub inputs: Vec<String>,
    /// OpenAI and Azure: `stream_options.include_usage` is true.
    pub include_usage: bool,
}

/// One request and what the fake did with it.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// When it arrived (its body complete).
    pub at: Instant,
    /// Method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers, names lowercase.
    pub headers: Vec<(String, String)>,
    /// The body as JSON (`Null` if it is not JSON).
    pub body: Value,
    /// What the fake understood, for a well-formed request.
    pub seen: Option<Seen>,
    /// `text`, `tool-call`, `tool-answer`, `embeddings` (with ` stream`
    /// for streams), `fault: …`, `unauthorized` or `rejected: <reason>`.
    pub answer: String,
}

impl Exchange {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug)]
struct State {
    secret: String,
    faults: VecDeque<Fault>,
    always: Option<Fault>,
    pause: Duration,
    chunking: Chunking,
    exchanges: Vec<Exchange>,
}

/// A fake provider API on a free port of 127.0.0.1; stops when dropped.
#[derive(Debug)]
pub struct FakeProvider {
    flavor: Flavor,
    upstream: Upstream,
    state: Arc<Mutex<State>>,
}

impl FakeProvider {
    /// Start a fake of `flavor` that accepts the key `secret`.
    pub async fn start(flavor: Flavor, secret: &str) -> Self {
        let state = Arc::new(Mutex::new(State {
            secret: secret.to_owned(),
            faults: VecDeque::new(),
            always: None,
            pause: DEFAULT_PAUSE,
            chunking: Chunking::AsGiven,
            exchanges: Vec::new(),
        }));
        let shared = state.clone();
        let upstream = Upstream::start(move |r| handle(flavor, &shared, r)).await;
        Self {
            flavor,
            upstream,
            state,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The API it speaks.
    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    /// `http://127.0.0.1:PORT`: the `http` grant.
    pub fn origin(&self) -> String {
        self.upstream.origin()
    }

    /// The adapter's `base-url`.
    pub fn base_url(&self) -> String {
        self.flavor.base_url(&self.origin())
    }

    /// The next request fails with `fault` (faults queue up, one per request).
    pub fn fail_next(&self, fault: Fault) {
        self.state().faults.push_back(fault);
    }

    /// Every request fails with `fault` (after the queued ones).
    pub fn fail_always(&self, fault: Fault) {
        self.state().always = Some(fault);
    }

    /// No more faults.
    pub fn heal(&self) {
        let mut state = self.state();
        state.faults.clear();
        state.always = None;
    }

    /// Forget the exchanges so far.
    pub fn forget(&self) {
        self.state().exchanges.clear();
    }

    /// The pause before each streamed event.
    pub fn set_pause(&self, pause: Duration) {
        self.state().pause = pause;
    }

    /// How every later body is cut into writes ([`Chunking::AsGiven`]: one
    /// streamed event per write).
    pub fn set_chunking(&self, chunking: Chunking) {
        self.state().chunking = chunking;
    }

    /// Every request so far.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.state().exchanges.clone()
    }

    /// Why requests were refused as malformed (empty when all were well-formed).
    pub fn rejections(&self) -> Vec<String> {
        self.state()
            .exchanges
            .iter()
            .filter_map(|e| e.answer.strip_prefix("rejected: ").map(ToOwned::to_owned))
            .collect()
    }

    /// The plugin `id` running this fake's adapter against this server.
    pub fn plugin(&self, id: &str) -> TestPlugin {
        plugin(self.flavor, id, &self.origin())
    }
}

/// The adapter of `flavor` as plugin `id`, pointed at a server at `origin`
/// (granted under `http`), with its provider's keys granted and logging on.
pub fn plugin(flavor: Flavor, id: &str, origin: &str) -> TestPlugin {
    let base = flavor.base_url(origin);
    let config = match flavor {
        Flavor::AzureOpenAi => format!(
            "{{ flavor = \"azure\", base-url = \"{base}\", deployments = \"{AZURE_DEPLOYMENTS}\" }}"
        ),
        _ => format!("{{ base-url = \"{base}\" }}"),
    };
    TestPlugin::new(id, "provider", flavor.component())
        .declares(&["http", "keys", "config", "logging"])
        .grants(&format!(
            "http = [\"{origin}\"]\nkeys = [\"{}\"]\nconfig = {config}\nlogging = true",
            flavor.provider()
        ))
}

/// Store `secret` as the `default` key of `flavor`'s provider, bound to
/// 127.0.0.1 and sent in the provider's auth header.
pub fn add_key(vault: &Vault, flavor: Flavor, secret: &str) {
    vault
        .add(
            flavor.provider(),
            "default",
            &SecretString::from(secret.to_owned()),
            None,
            &["127.0.0.1".into()],
            flavor.auth_scheme(),
        )
        .expect("store the test key");
}

/// Store `secret` as [`add_key`] does, in the vault of a test platform in
/// `dir` (its data directory `dir/platform-data`).
pub fn add_platform_key(dir: &std::path::Path, flavor: Flavor, secret: &str) {
    let vault = Vault::open_in(&dir.join("platform-data")).expect("open the test vault");
    add_key(&vault, flavor, secret);
}

// ------------------------------------------------------------------ handling

/// A request refused before it is answered.
struct Refusal {
    status: u16,
    message: String,
}

fn refuse(message: impl Into<String>) -> Refusal {
    Refusal {
        status: 400,
        message: message.into(),
    }
}

fn not_found(message: impl Into<String>) -> Refusal {
    Refusal {
        status: 404,
        message: message.into(),
    }
}

fn handle(flavor: Flavor, state: &Mutex<State>, r: &Received) -> Reply {
    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
    let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    let mut exchange = Exchange {
        at: Instant::now(),
        method: r.method.clone(),
        path: r.path.clone(),
        headers: r.headers.clone(),
        body: body.clone(),
        seen: None,
        answer: String::new(),
    };
    let reply = if !authorized(flavor, r, &state.secret) {
        exchange.answer = "unauthorized".into();
        unauthorized(flavor)
    } else {
        match check(flavor, r, &body) {
            Err(refusal) => {
                exchange.answer = format!("rejected: {}", refusal.message);
                error_reply(
                    flavor,
                    refusal.status,
                    &format!("fake {}: {}", flavor.provider(), refusal.message),
                )
            }
            Ok(seen) => {
                let fault = state.faults.pop_front().or_else(|| state.always.clone());
                let (reply, answer) = respond(flavor, &seen, fault.as_ref(), state.pause);
                exchange.answer = answer;
                exchange.seen = Some(seen);
                reply
            }
        }
    };
    state.exchanges.push(exchange);
    reply.rechunked(state.chunking, PIECE_PAUSE)
}

fn authorized(flavor: Flavor, r: &Received, secret: &str) -> bool {
    if r.header("convergio-key").is_some() {
        return false;
    }
    let scheme = flavor.auth_scheme();
    let expected = match scheme {
        AuthScheme::Bearer => format!("Bearer {secret}"),
        _ => secret.to_owned(),
    };
    // Exactly one auth header, the provider's, and no key in the query.
    let others = AuthScheme::ALL
        .iter()
        .filter(|s| **s != scheme)
        .any(|s| r.header(s.header_name()).is_some());
    r.header(scheme.header_name()) == Some(expected.as_str()) && !others && !r.path.contains("key=")
}

fn respond(flavor: Flavor, seen: &Seen, fault: Option<&Fault>, pause: Duration) -> (Reply, String) {
    let fault_name = |f: &Fault| format!("fault: {f:?}");
    match fault {
        Some(f @ Fault::RateLimited(wait)) => (rate_limited(flavor, *wait), fault_name(f)),
        Some(f @ Fault::ServerError) => (server_error(flavor), fault_name(f)),
        Some(f @ Fault::Overloaded) => (overloaded(flavor), fault_name(f)),
        Some(f @ Fault::Unavailable) => (unavailable(flavor), fault_name(f)),
        Some(f @ Fault::ContextLength) => (context_length(flavor), fault_name(f)),
        Some(f @ Fault::MalformedJson) => (malformed(flavor, seen.stream), fault_name(f)),
        Some(f @ Fault::SlowHeaders(delay)) => {
            let (reply, _) = answer(flavor, seen, pause);
            (reply.after(*delay), fault_name(f))
        }
        Some(f @ Fault::StallStream(stall)) => {
            let (mut reply, _) = answer(flavor, seen, pause);
            match reply.chunks.first_mut() {
                Some(first) if seen.stream => first.0 = *stall,
                _ => reply.delay = *stall,
            }
            (reply, fault_name(f))
        }
        Some(f @ Fault::CutStream { deltas }) if seen.stream => {
            let events = events(flavor, seen);
            let mut cut: Vec<Bytes> = events.head;
            cut.extend(events.deltas.into_iter().take(*deltas));
            (sse_reply(cut, pause), fault_name(f))
        }
        Some(f @ Fault::StreamError { deltas }) if seen.stream => {
            let events = events(flavor, seen);
            let mut cut: Vec<Bytes> = events.head;
            cut.extend(events.deltas.into_iter().take(*deltas));
            cut.push(stream_error(flavor));
            (sse_reply(cut, pause), fault_name(f))
        }
        Some(Fault::CutStream { .. } | Fault::StreamError { .. }) | None => {
            answer(flavor, seen, pause)
        }
    }
}

/// What the conversation calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    ToolCall,
    ToolAnswer,
}

fn kind(seen: &Seen) -> Kind {
    if seen.after_tool_result {
        Kind::ToolAnswer
    } else if !seen.tools.is_empty() {
        Kind::ToolCall
    } else {
        Kind::Text
    }
}

fn answer(flavor: Flavor, seen: &Seen, pause: Duration) -> (Reply, String) {
    if seen.operation == "embeddings" {
        return (embeddings(flavor, seen), "embeddings".into());
    }
    let name = match kind(seen) {
        Kind::Text => "text",
        Kind::ToolCall => "tool-call",
        Kind::ToolAnswer => "tool-answer",
    };
    if seen.stream {
        let e = events(flavor, seen);
        let mut all = e.head;
        all.extend(e.deltas);
        all.extend(e.tail);
        (sse_reply(all, pause), format!("{name} stream"))
    } else {
        (Reply::json(200, &whole(flavor, seen)), name.into())
    }
}

fn sse_reply(events: Vec<Bytes>, pause: Duration) -> Reply {
    Reply::stream("text/event-stream", events, pause).header("cache-control", "no-cache")
}

// ------------------------------------------------------------ request checks

fn check(flavor: Flavor, r: &Received, body: &Value) -> Result<Seen, Refusal> {
    if r.method != "POST" {
        return Err(not_found(format!(
            "{} {} is not an endpoint of this API",
            r.method, r.path
        )));
    }
    let content_type = r.header("content-type").unwrap_or_default();
    if !content_type.starts_with("application/json") {
        return Err(refuse(format!(
            "content-type must be application/json, not `{content_type}`"
        )));
    }
    if body.is_null() {
        return Err(refuse(format!(
            "the body is not JSON: {}",
            String::from_utf8_lossy(&r.body)
        )));
    }
    match flavor {
        Flavor::Anthropic => check_anthropic(r, body),
        Flavor::Gemini => check_gemini(r, body),
        Flavor::OpenAi | Flavor::AzureOpenAi => check_openai(flavor, r, body),
    }
}

fn object<'a>(value: &'a Value, what: &str) -> Result<&'a Map<String, Value>, Refusal> {
    value
        .as_object()
        .ok_or_else(|| refuse(format!("{what} must be a JSON object, not {value}")))
}

fn array<'a>(value: Option<&'a Value>, what: &str) -> Result<&'a Vec<Value>, Refusal> {
    match value {
        Some(Value::Array(items)) => Ok(items),
        Some(other) => Err(refuse(format!("{what} must be an array, not {other}"))),
        None => Err(refuse(format!("{what} is required"))),
    }
}

fn string<'a>(value: Option<&'a Value>, what: &str) -> Result<&'a str, Refusal> {
    match value {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(other) => Err(refuse(format!(
            "{what} must be a non-empty string, not {other}"
        ))),
        None => Err(refuse(format!("{what} is required"))),
    }
}

fn positive(value: Option<&Value>, what: &str) -> Result<Option<u64>, Refusal> {
    match value {
        None => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if n > 0 => Ok(Some(n)),
            _ => Err(refuse(format!(
                "{what} must be a positive integer, not {v}"
            ))),
        },
    }
}

fn boolean(value: Option<&Value>, what: &str) -> Result<bool, Refusal> {
    match value {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(refuse(format!("{what} must be a boolean, not {other}"))),
    }
}

fn known_fields(body: &Map<String, Value>, known: &[&str]) -> Result<(), Refusal> {
    match body.keys().find(|k| !known.contains(&k.as_str())) {
        Some(unknown) => Err(refuse(format!(
            "{unknown}: Extra inputs are not permitted (unknown field)"
        ))),
        None => Ok(()),
    }
}

fn json_object_text(text: &str, what: &str) -> Result<Value, Refusal> {
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(refuse(format!(
            "{what} must be a JSON object, not `{text}`"
        ))),
    }
}

fn check_schema(schema: Option<&Value>, what: &str) -> Result<(), Refusal> {
    let schema = object(schema.unwrap_or(&Value::Null), what)?;
    let kind = schema.get("type").and_then(Value::as_str).unwrap_or("");
    if !kind.eq_ignore_ascii_case("object") {
        return Err(refuse(format!(
            "{what}.type must be `object`, not `{kind}`"
        )));
    }
    Ok(())
}

const ANTHROPIC_FIELDS: &[&str] = &[
    "model",
    "messages",
    "max_tokens",
    "system",
    "tools",
    "tool_choice",
    "stop_sequences",
    "temperature",
    "top_p",
    "top_k",
    "stream",
    "metadata",
    "thinking",
    "service_tier",
    "output_config",
];

fn check_anthropic(r: &Received, body: &Value) -> Result<Seen, Refusal> {
    if r.path != "/v1/messages" {
        return Err(not_found(format!("POST {} is not an endpoint", r.path)));
    }
    match r.header("anthropic-version") {
        Some("2023-06-01") => {}
        other => {
            return Err(refuse(format!(
                "anthropic-version: the header must be 2023-06-01, not {other:?}"
            )));
        }
    }
    let b = object(body, "the body")?;
    known_fields(b, ANTHROPIC_FIELDS)?;
    let mut seen = Seen {
        operation: "chat",
        model: string(b.get("model"), "model")?.to_owned(),
        stream: boolean(b.get("stream"), "stream")?,
        ..Seen::default()
    };
    seen.max_tokens = positive(b.get("max_tokens"), "max_tokens")?;
    if seen.max_tokens.is_none() {
        return Err(refuse("max_tokens: Field required"));
    }
    seen.system = match b.get("system") {
        None => None,
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(other) => return Err(refuse(format!("system: not a non-empty text: {other}"))),
    };
    for (i, tool) in array(b.get("tools").or(Some(&json!([]))), "tools")?
        .iter()
        .enumerate()
    {
        let t = object(tool, &format!("tools.{i}"))?;
        known_fields(
            t,
            &[
                "name",
                "description",
                "input_schema",
                "type",
                "cache_control",
            ],
        )?;
        seen.tools
            .push(string(t.get("name"), &format!("tools.{i}.name"))?.to_owned());
        check_schema(t.get("input_schema"), &format!("tools.{i}.input_schema"))?;
    }
    let messages = array(b.get("messages"), "messages")?;
    if messages.is_empty() {
        return Err(refuse("messages: at least one message is required"));
    }
    // Tool calls of the previous assistant turn, which tool results must answer.
    let mut open_calls: Vec<String> = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let at = format!("messages.{i}");
        let m = object(message, &at)?;
        let role = string(m.get("role"), &format!("{at}.role"))?;
        let expected = if i % 2 == 0 { "user" } else { "assistant" };
        if role != expected {
            return Err(refuse(format!(
                "{at}.role: roles must alternate between \"user\" and \"assistant\", starting with \"user\"; found \"{role}\""
            )));
        }
        seen.roles.push(role.to_owned());
        let blocks = match m.get("content") {
            Some(Value::String(s)) if !s.is_empty() => vec![json!({"type": "text", "text": s})],
            Some(Value::Array(blocks)) if !blocks.is_empty() => blocks.clone(),
            other => {
                return Err(refuse(format!(
                    "{at}.content: must be a non-empty text or list of blocks, not {other:?}"
                )));
            }
        };
        let mut calls = Vec::new();
        let mut results = Vec::new();
        let mut text_seen = false;
        for (j, block) in blocks.iter().enumerate() {
            let at = format!("{at}.content.{j}");
            let blk = object(block, &at)?;
            match blk.get("type").and_then(Value::as_str) {
                Some("text") => {
                    string(blk.get("text"), &format!("{at}.text")).map_err(|_| {
                        refuse(format!("{at}: text content blocks must be non-empty"))
                    })?;
                    text_seen = true;
                }
                Some("tool_use") if role == "assistant" => {
                    calls.push(string(blk.get("id"), &format!("{at}.id"))?.to_owned());
                    string(blk.get("name"), &format!("{at}.name"))?;
                    object(
                        blk.get("input").unwrap_or(&Value::Null),
                        &format!("{at}.input"),
                    )?;
                }
                Some("tool_result") if role == "user" => {
                    if text_seen {
                        return Err(refuse(format!(
                            "{at}: tool_result blocks must come before any text in a user turn"
                        )));
                    }
                    let id = string(blk.get("tool_use_id"), &format!("{at}.tool_use_id"))?;
                    if !open_calls.iter().any(|c| c == id) {
                        return Err(refuse(format!(
                            "{at}: unexpected `tool_use_id` found in `tool_result` blocks: {id}. Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
                        )));
                    }
                    results.push(id.to_owned());
                }
                other => {
                    return Err(refuse(format!(
                        "{at}.type: {other:?} is not a content block a {role} turn may carry"
                    )));
                }
            }
        }
        if role == "user" {
            if let Some(missing) = open_calls.iter().find(|c| !results.contains(c)) {
                return Err(refuse(format!(
                    "{at}: `tool_use` ids were found without `tool_result` blocks immediately after: {missing}"
                )));
            }
            seen.after_tool_result = !results.is_empty();
        }
        open_calls = calls;
    }
    if seen.roles.last().map(String::as_str) != Some("user") {
        return Err(refuse("the last message must be a user turn"));
    }
    Ok(seen)
}

const GEMINI_FIELDS: &[&str] = &[
    "contents",
    "systemInstruction",
    "tools",
    "toolConfig",
    "safetySettings",
    "generationConfig",
    "cachedContent",
];

fn check_gemini(r: &Received, body: &Value) -> Result<Seen, Refusal> {
    let Some(rest) = r.path.strip_prefix("/v1beta/models/") else {
        return Err(not_found(format!("POST {} is not an endpoint", r.path)));
    };
    let Some((model, method)) = rest.split_once(':') else {
        return Err(not_found(format!("POST {} names no method", r.path)));
    };
    let b = object(body, "the body")?;
    match method {
        "generateContent" | "streamGenerateContent?alt=sse" => {}
        "batchEmbedContents" => return check_gemini_embeddings(model, b),
        other => {
            return Err(not_found(format!(
                "models/{model}:{other} is not a method (streams need ?alt=sse)"
            )));
        }
    }
    known_fields(b, GEMINI_FIELDS).map_err(|_| {
        refuse(format!(
            "Invalid JSON payload received. Unknown name among {:?}: Cannot find field.",
            b.keys().collect::<Vec<_>>()
        ))
    })?;
    let mut seen = Seen {
        operation: "chat",
        model: model.to_owned(),
        stream: method.starts_with("stream"),
        ..Seen::default()
    };
    if let Some(system) = b.get("systemInstruction") {
        let parts = array(
            object(system, "systemInstruction")?.get("parts"),
            "systemInstruction.parts",
        )?;
        let mut texts = Vec::new();
        for part in parts {
            texts.push(
                string(
                    object(part, "systemInstruction part")?.get("text"),
                    "systemInstruction.parts.text",
                )?
                .to_owned(),
            );
        }
        seen.system = Some(texts.join("\n"));
    }
    if let Some(config) = b.get("generationConfig") {
        let config = object(config, "generationConfig")?;
        seen.max_tokens = positive(
            config.get("maxOutputTokens"),
            "generationConfig.maxOutputTokens",
        )?;
    }
    for (i, tool) in array(b.get("tools").or(Some(&json!([]))), "tools")?
        .iter()
        .enumerate()
    {
        let declarations = array(
            object(tool, &format!("tools[{i}]"))?.get("functionDeclarations"),
            &format!("tools[{i}].functionDeclarations"),
        )?;
        for (j, declaration) in declarations.iter().enumerate() {
            let at = format!("tools[{i}].functionDeclarations[{j}]");
            let d = object(declaration, &at)?;
            seen.tools
                .push(string(d.get("name"), &format!("{at}.name"))?.to_owned());
            if d.contains_key("parameters") {
                check_schema(d.get("parameters"), &format!("{at}.parameters"))?;
            }
        }
    }
    let contents = array(b.get("contents"), "contents")?;
    if contents.is_empty() {
        return Err(refuse(
            "* GenerateContentRequest.contents: contents is not specified",
        ));
    }
    // Names of the function calls of the previous model turn.
    let mut open_calls: Vec<String> = Vec::new();
    let signed = model.starts_with("gemini-3") || model.starts_with("gemini-4");
    for (i, content) in contents.iter().enumerate() {
        let at = format!("contents[{i}]");
        let c = object(content, &at)?;
        let role = string(c.get("role"), &format!("{at}.role"))?;
        if role != "user" && role != "model" {
            return Err(refuse(format!(
                "{at}.role: Please use a valid role: user, model. Found \"{role}\""
            )));
        }
        seen.roles.push(role.to_owned());
        let parts = array(c.get("parts"), &format!("{at}.parts"))?;
        if parts.is_empty() {
            return Err(refuse(format!(
                "{at}.parts: must include at least one part"
            )));
        }
        let mut calls = Vec::new();
        let mut responses = 0;
        for (j, part) in parts.iter().enumerate() {
            let at = format!("{at}.parts[{j}]");
            let p = object(part, &at)?;
            known_fields(
                p,
                &[
                    "text",
                    "functionCall",
                    "functionResponse",
                    "thoughtSignature",
                    "thought",
                ],
            )?;
            let data: Vec<&String> = p
                .keys()
                .filter(|k| ["text", "functionCall", "functionResponse"].contains(&k.as_str()))
                .collect();
            if data.len() != 1 {
                return Err(refuse(format!(
                    "{at}: a part must have exactly one data field, found {data:?}"
                )));
            }
            if let Some(text) = p.get("text") {
                string(Some(text), &format!("{at}.text"))?;
            } else if let Some(call) = p.get("functionCall") {
                if role != "model" {
                    return Err(refuse(format!("{at}: functionCall outside a model turn")));
                }
                let call = object(call, &format!("{at}.functionCall"))?;
                calls
                    .push(string(call.get("name"), &format!("{at}.functionCall.name"))?.to_owned());
                object(
                    call.get("args").unwrap_or(&json!({})),
                    &format!("{at}.functionCall.args"),
                )?;
                if signed
                    && calls.len() == 1
                    && p.get("thoughtSignature").and_then(Value::as_str) != Some(THOUGHT_SIGNATURE)
                    && p.get("thoughtSignature").and_then(Value::as_str)
                        != Some("skip_thought_signature_validator")
                {
                    return Err(refuse(format!(
                        "{at}: Function call is missing a thought_signature in functionCall parts. This is required for tools to work correctly (expected {THOUGHT_SIGNATURE:?}, got {:?})",
                        p.get("thoughtSignature")
                    )));
                }
            } else if let Some(response) = p.get("functionResponse") {
                if role != "user" {
                    return Err(refuse(format!(
                        "{at}: functionResponse outside a user turn"
                    )));
                }
                let response = object(response, &format!("{at}.functionResponse"))?;
                let name = string(response.get("name"), &format!("{at}.functionResponse.name"))?;
                object(
                    response.get("response").unwrap_or(&Value::Null),
                    &format!("{at}.functionResponse.response"),
                )?;
                if !open_calls.iter().any(|c| c == name) {
                    return Err(refuse(format!(
                        "{at}: functionResponse `{name}` answers no function call of the previous model turn"
                    )));
                }
                responses += 1;
            }
        }
        if role == "user" {
            if responses > 0 && responses != open_calls.len() {
                return Err(refuse(format!(
                    "{at}: Please ensure that the number of function response parts is equal to the number of function call parts of the function call turn."
                )));
            }
            seen.after_tool_result = responses > 0;
        }
        open_calls = calls;
    }
    if seen.roles.last().map(String::as_str) != Some("user") {
        return Err(refuse("the last content must be a user turn"));
    }
    Ok(seen)
}

fn check_gemini_embeddings(model: &str, b: &Map<String, Value>) -> Result<Seen, Refusal> {
    known_fields(b, &["requests"])?;
    let requests = array(b.get("requests"), "requests")?;
    if requests.is_empty() || requests.len() > 100 {
        return Err(refuse(format!(
            "requests: between 1 and 100 requests, not {}",
            requests.len()
        )));
    }
    let mut inputs = Vec::new();
    for (i, request) in requests.iter().enumerate() {
        let at = format!("requests[{i}]");
        let r = object(request, &at)?;
        let named = string(r.get("model"), &format!("{at}.model"))?;
        if named != format!("models/{model}") {
            return Err(refuse(format!(
                "{at}.model: `{named}` differs from the model of the URL, models/{model}"
            )));
        }
        let parts = array(
            object(
                r.get("content").unwrap_or(&Value::Null),
                &format!("{at}.content"),
            )?
            .get("parts"),
            &format!("{at}.content.parts"),
        )?;
        let mut text = String::new();
        for part in parts {
            text.push_str(string(
                object(part, "part")?.get("text"),
                &format!("{at}.content.parts.text"),
            )?);
        }
        inputs.push(text);
    }
    Ok(Seen {
        operation: "embeddings",
        model: model.to_owned(),
        inputs,
        ..Seen::default()
    })
}

const OPENAI_FIELDS: &[&str] = &[
    "model",
    "messages",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "temperature",
    "top_p",
    "seed",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "response_format",
    "reasoning_effort",
    "stream",
    "stream_options",
    "n",
    "user",
    "frequency_penalty",
    "presence_penalty",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "store",
    "metadata",
    "service_tier",
    "verbosity",
    "prompt_cache_key",
    "safety_identifier",
];

fn check_openai(flavor: Flavor, r: &Received, body: &Value) -> Result<Seen, Refusal> {
    let (endpoint, deployment) = match flavor {
        Flavor::AzureOpenAi => {
            let Some(rest) = r.path.strip_prefix("/openai/deployments/") else {
                return Err(not_found(format!("POST {} is not an endpoint", r.path)));
            };
            let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
            if query != format!("api-version={AZURE_API_VERSION}") {
                return Err(refuse(format!(
                    "api-version query parameter must be {AZURE_API_VERSION}, not `{query}`"
                )));
            }
            let Some((deployment, endpoint)) = path.split_once('/') else {
                return Err(not_found(format!("POST {} is not an endpoint", r.path)));
            };
            if deployment != AZURE_CHAT_DEPLOYMENT && deployment != AZURE_EMBED_DEPLOYMENT {
                return Err(Refusal {
                    status: 404,
                    message: format!(
                        "DeploymentNotFound: The API deployment `{deployment}` for this resource does not exist."
                    ),
                });
            }
            (endpoint.to_owned(), Some(deployment.to_owned()))
        }
        _ => match r.path.strip_prefix("/v1/") {
            Some(endpoint) => (endpoint.to_owned(), None),
            None => return Err(not_found(format!("POST {} is not an endpoint", r.path))),
        },
    };
    let b = object(body, "the body")?;
    let model = match (&deployment, b.get("model")) {
        (Some(d), None) => d.clone(),
        (_, model) => string(model, "model")?.to_owned(),
    };
    match endpoint.as_str() {
        "chat/completions" => {}
        "embeddings" => {
            known_fields(
                b,
                &["model", "input", "encoding_format", "dimensions", "user"],
            )?;
            let inputs = match b.get("input") {
                Some(Value::String(s)) => vec![s.clone()],
                Some(Value::Array(items)) if !items.is_empty() => items
                    .iter()
                    .map(|i| string(Some(i), "input[]").map(ToOwned::to_owned))
                    .collect::<Result<_, _>>()?,
                other => {
                    return Err(refuse(format!(
                        "input: must be a text or a non-empty list of texts, not {other:?}"
                    )));
                }
            };
            match b.get("encoding_format").and_then(Value::as_str) {
                None | Some("float") => {}
                Some(other) => {
                    return Err(refuse(format!(
                        "encoding_format `{other}`: the fake sends float only"
                    )));
                }
            }
            return Ok(Seen {
                operation: "embeddings",
                model,
                inputs,
                ..Seen::default()
            });
        }
        other => return Err(not_found(format!("POST …/{other} is not an endpoint"))),
    }
    known_fields(b, OPENAI_FIELDS).map_err(|e| {
        refuse(e.message.replace(
            "Extra inputs are not permitted (unknown field)",
            "Unrecognized request argument supplied",
        ))
    })?;
    let mut seen = Seen {
        operation: "chat",
        model: model.clone(),
        stream: boolean(b.get("stream"), "stream")?,
        ..Seen::default()
    };
    let reasoning = ["gpt-5", "gpt-6", "o1", "o3", "o4"]
        .iter()
        .any(|p| seen.model.starts_with(p))
        || deployment.is_some();
    if reasoning && b.contains_key("max_tokens") {
        return Err(refuse(
            "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.",
        ));
    }
    seen.max_tokens = match positive(b.get("max_completion_tokens"), "max_completion_tokens")? {
        Some(n) => Some(n),
        None => positive(b.get("max_tokens"), "max_tokens")?,
    };
    if let Some(options) = b.get("stream_options") {
        if !seen.stream {
            return Err(refuse(
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            ));
        }
        seen.include_usage = boolean(
            object(options, "stream_options")?.get("include_usage"),
            "stream_options.include_usage",
        )?;
    }
    for (i, tool) in array(b.get("tools").or(Some(&json!([]))), "tools")?
        .iter()
        .enumerate()
    {
        let at = format!("tools[{i}]");
        let t = object(tool, &at)?;
        if t.get("type").and_then(Value::as_str) != Some("function") {
            return Err(refuse(format!("{at}.type: must be \"function\"")));
        }
        let f = object(
            t.get("function").unwrap_or(&Value::Null),
            &format!("{at}.function"),
        )?;
        seen.tools
            .push(string(f.get("name"), &format!("{at}.function.name"))?.to_owned());
        if f.contains_key("parameters") {
            check_schema(f.get("parameters"), &format!("{at}.function.parameters"))?;
        }
    }
    let messages = array(b.get("messages"), "messages")?;
    if messages.is_empty() {
        return Err(refuse("[] is too short - 'messages'"));
    }
    let mut open_calls: Vec<String> = Vec::new();
    let mut answered: Vec<String> = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let at = format!("messages[{i}]");
        let m = object(message, &at)?;
        let role = string(m.get("role"), &format!("{at}.role"))?;
        if role != "tool"
            && let Some(missing) = open_calls.iter().find(|c| !answered.contains(c))
        {
            return Err(refuse(format!(
                "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: {missing}"
            )));
        }
        seen.roles.push(role.to_owned());
        match role {
            "system" | "developer" => {
                known_fields(m, &["role", "content", "name"])?;
                let text = string(m.get("content"), &format!("{at}.content"))?;
                seen.system = Some(match seen.system.take() {
                    Some(s) => format!("{s}\n{text}"),
                    None => text.to_owned(),
                });
            }
            "user" => {
                known_fields(m, &["role", "content", "name"])?;
                match m.get("content") {
                    Some(Value::String(_)) | Some(Value::Array(_)) => {}
                    other => return Err(refuse(format!("{at}.content: required, not {other:?}"))),
                }
            }
            "assistant" => {
                known_fields(m, &["role", "content", "tool_calls", "name", "refusal"])?;
                let calls = match m.get("tool_calls") {
                    None => &Vec::new(),
                    Some(calls) => array(Some(calls), &format!("{at}.tool_calls"))?,
                };
                match m.get("content") {
                    Some(Value::String(_)) => {}
                    None | Some(Value::Null) if !calls.is_empty() => {}
                    other => {
                        return Err(refuse(format!(
                            "{at}.content: an assistant message needs content or tool_calls, got {other:?}"
                        )));
                    }
                }
                open_calls.clear();
                answered.clear();
                for (j, call) in calls.iter().enumerate() {
                    let at = format!("{at}.tool_calls[{j}]");
                    let c = object(call, &at)?;
                    if c.get("type").and_then(Value::as_str) != Some("function") {
                        return Err(refuse(format!("{at}.type: must be \"function\"")));
                    }
                    open_calls.push(string(c.get("id"), &format!("{at}.id"))?.to_owned());
                    let f = object(
                        c.get("function").unwrap_or(&Value::Null),
                        &format!("{at}.function"),
                    )?;
                    string(f.get("name"), &format!("{at}.function.name"))?;
                    let arguments =
                        f.get("arguments").and_then(Value::as_str).ok_or_else(|| {
                            refuse(format!("{at}.function.arguments: must be a string of JSON"))
                        })?;
                    json_object_text(arguments, &format!("{at}.function.arguments"))?;
                }
            }
            "tool" => {
                known_fields(m, &["role", "content", "tool_call_id"])?;
                let id = string(m.get("tool_call_id"), &format!("{at}.tool_call_id"))?;
                if !open_calls.iter().any(|c| c == id) {
                    return Err(refuse(format!(
                        "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls' ({at}: {id})."
                    )));
                }
                match m.get("content") {
                    Some(Value::String(_)) | Some(Value::Array(_)) => {}
                    other => return Err(refuse(format!("{at}.content: required, not {other:?}"))),
                }
                answered.push(id.to_owned());
            }
            other => {
                return Err(refuse(format!(
                    "{at}.role: '{other}' is not one of ['system', 'developer', 'user', 'assistant', 'tool']"
                )));
            }
        }
    }
    if let Some(missing) = open_calls.iter().find(|c| !answered.contains(c)) {
        return Err(refuse(format!(
            "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: {missing}"
        )));
    }
    seen.after_tool_result = seen.roles.last().map(String::as_str) == Some("tool");
    Ok(seen)
}

// ------------------------------------------------------------------- answers

fn arguments() -> Value {
    serde_json::from_str(TOOL_ARGUMENTS).expect("TOOL_ARGUMENTS is JSON")
}

fn tool_name(seen: &Seen) -> String {
    seen.tools.first().cloned().unwrap_or_default()
}

/// A whole (non-streamed) chat answer.
fn whole(flavor: Flavor, seen: &Seen) -> Value {
    let kind = kind(seen);
    let name = tool_name(seen);
    let text = match kind {
        Kind::Text => TEXT,
        Kind::ToolAnswer => TOOL_ANSWER,
        Kind::ToolCall => TOOL_PREAMBLE,
    };
    match flavor {
        Flavor::Anthropic => {
            let mut content = vec![json!({"type": "text", "text": text})];
            if kind == Kind::ToolCall {
                content.push(json!({"type": "tool_use", "id": "toolu_fake_01", "name": name, "input": arguments()}));
            }
            json!({
                "id": "msg_fake_01", "type": "message", "role": "assistant", "model": seen.model,
                "content": content,
                "stop_reason": if kind == Kind::ToolCall { "tool_use" } else { "end_turn" },
                "stop_sequence": null,
                "usage": {"input_tokens": INPUT_TOKENS, "cache_creation_input_tokens": 0,
                          "cache_read_input_tokens": 0, "output_tokens": OUTPUT_TOKENS}
            })
        }
        Flavor::Gemini => {
            let mut parts = vec![json!({"text": text})];
            if kind == Kind::ToolCall {
                parts.push(json!({"functionCall": {"name": name, "args": arguments()}, "thoughtSignature": THOUGHT_SIGNATURE}));
            }
            json!({
                "candidates": [{"content": {"parts": parts, "role": "model"}, "finishReason": "STOP", "index": 0}],
                "usageMetadata": gemini_usage(true),
                "modelVersion": seen.model,
                "responseId": "fake-response-1"
            })
        }
        Flavor::OpenAi | Flavor::AzureOpenAi => {
            let message = if kind == Kind::ToolCall {
                json!({"role": "assistant", "content": null, "refusal": null, "annotations": [],
                       "tool_calls": [{"id": "call_fake_01", "type": "function",
                                       "function": {"name": name, "arguments": TOOL_ARGUMENTS}}]})
            } else {
                json!({"role": "assistant", "content": text, "refusal": null, "annotations": []})
            };
            let mut answer = json!({
                "id": "chatcmpl-fake01", "object": "chat.completion", "created": 1_764_000_000,
                "model": openai_model(flavor, seen),
                "choices": [{"index": 0, "message": message, "logprobs": null,
                             "finish_reason": if kind == Kind::ToolCall { "tool_calls" } else { "stop" }}],
                "usage": openai_usage(),
                "system_fingerprint": "fp_fake"
            });
            if flavor == Flavor::AzureOpenAi {
                answer["prompt_filter_results"] = azure_prompt_filter();
                answer["choices"][0]["content_filter_results"] = json!({});
            }
            answer
        }
    }
}

/// The model a response names: OpenAI a dated snapshot of the model asked
/// for, Azure the underlying model of the deployment.
fn openai_model(flavor: Flavor, seen: &Seen) -> String {
    match flavor {
        Flavor::AzureOpenAi => "gpt-6-luna-2026-09-22".to_owned(),
        _ => format!("{}-2026-09-22", seen.model),
    }
}

fn openai_usage() -> Value {
    json!({"prompt_tokens": INPUT_TOKENS, "completion_tokens": OUTPUT_TOKENS,
           "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS,
           "prompt_tokens_details": {"cached_tokens": 0},
           "completion_tokens_details": {"reasoning_tokens": 0}})
}

fn gemini_usage(last: bool) -> Value {
    if last {
        json!({"promptTokenCount": INPUT_TOKENS, "candidatesTokenCount": OUTPUT_TOKENS,
               "totalTokenCount": INPUT_TOKENS + OUTPUT_TOKENS})
    } else {
        json!({"promptTokenCount": INPUT_TOKENS, "totalTokenCount": INPUT_TOKENS})
    }
}

fn azure_prompt_filter() -> Value {
    json!([{"prompt_index": 0, "content_filter_results": {
        "hate": {"filtered": false, "severity": "safe"},
        "self_harm": {"filtered": false, "severity": "safe"},
        "sexual": {"filtered": false, "severity": "safe"},
        "violence": {"filtered": false, "severity": "safe"}}}])
}

/// A stream's events: those before the first content event, the content
/// events, and those after (the terminal ones).
struct Events {
    head: Vec<Bytes>,
    deltas: Vec<Bytes>,
    tail: Vec<Bytes>,
}

fn anthropic_event(data: &Value) -> Bytes {
    let name = data["type"].as_str().unwrap_or("message");
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

fn data_event(data: &Value) -> Bytes {
    Bytes::from(format!("data: {data}\n\n"))
}

/// Gemini separates events with CRLF.
fn gemini_event(data: &Value) -> Bytes {
    Bytes::from(format!("data: {data}\r\n\r\n"))
}

fn events(flavor: Flavor, seen: &Seen) -> Events {
    let kind = kind(seen);
    let pieces: Vec<&str> = match kind {
        Kind::Text => TEXT_PIECES.to_vec(),
        Kind::ToolAnswer => TOOL_ANSWER_PIECES.to_vec(),
        Kind::ToolCall => vec![],
    };
    // The tool call's arguments, in two pieces.
    let (args_a, args_b) = TOOL_ARGUMENTS.split_at(8);
    let name = tool_name(seen);
    match flavor {
        Flavor::Anthropic => {
            let e = |v: Value| anthropic_event(&v);
            let mut head = vec![
                e(
                    json!({"type": "message_start", "message": {"id": "msg_fake_01", "type": "message",
                    "role": "assistant", "model": seen.model, "content": [], "stop_reason": null,
                    "stop_sequence": null, "usage": {"input_tokens": INPUT_TOKENS, "output_tokens": 1}}}),
                ),
                e(
                    json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
                ),
                e(json!({"type": "ping"})),
            ];
            let text_delta = |t: &str| {
                e(json!({"type": "content_block_delta", "index": 0,
                                                 "delta": {"type": "text_delta", "text": t}}))
            };
            let (deltas, stop_reason, tool_block) = if kind == Kind::ToolCall {
                head.push(text_delta(TOOL_PREAMBLE));
                head.push(e(json!({"type": "content_block_stop", "index": 0})));
                head.push(e(
                    json!({"type": "content_block_start", "index": 1, "content_block":
                    {"type": "tool_use", "id": "toolu_fake_01", "name": name, "input": {}}}),
                ));
                let piece = |p: &str| {
                    e(json!({"type": "content_block_delta", "index": 1,
                    "delta": {"type": "input_json_delta", "partial_json": p}}))
                };
                (vec![piece(args_a), piece(args_b)], "tool_use", 1)
            } else {
                (
                    pieces.iter().map(|p| text_delta(p)).collect(),
                    "end_turn",
                    0,
                )
            };
            let tail = vec![
                e(json!({"type": "content_block_stop", "index": tool_block})),
                e(
                    json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null},
                         "usage": {"output_tokens": OUTPUT_TOKENS}}),
                ),
                e(json!({"type": "message_stop"})),
            ];
            Events { head, deltas, tail }
        }
        Flavor::Gemini => {
            let chunk = |parts: Value, finish: Option<&str>| {
                let mut candidate =
                    json!({"content": {"parts": parts, "role": "model"}, "index": 0});
                if let Some(f) = finish {
                    candidate["finishReason"] = json!(f);
                }
                gemini_event(
                    &json!({"candidates": [candidate], "usageMetadata": gemini_usage(finish.is_some()),
                                     "modelVersion": seen.model, "responseId": "fake-response-1"}),
                )
            };
            if kind == Kind::ToolCall {
                Events {
                    head: vec![],
                    deltas: vec![chunk(json!([{"text": TOOL_PREAMBLE}]), None)],
                    tail: vec![chunk(
                        json!([{"functionCall": {"name": name, "args": arguments()}, "thoughtSignature": THOUGHT_SIGNATURE}]),
                        Some("STOP"),
                    )],
                }
            } else {
                let (last, first) = pieces.split_last().unwrap_or((&"", &[]));
                Events {
                    head: vec![],
                    deltas: first
                        .iter()
                        .map(|p| chunk(json!([{"text": p}]), None))
                        .collect(),
                    tail: vec![chunk(json!([{"text": last}]), Some("STOP"))],
                }
            }
        }
        Flavor::OpenAi | Flavor::AzureOpenAi => {
            let model = openai_model(flavor, seen);
            let chunk = |delta: Value, finish: Value| {
                let mut c = json!({"id": "chatcmpl-fake01", "object": "chat.completion.chunk",
                    "created": 1_764_000_000, "model": model, "system_fingerprint": "fp_fake",
                    "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]});
                if seen.include_usage {
                    c["usage"] = Value::Null;
                }
                if flavor == Flavor::AzureOpenAi {
                    c["choices"][0]["content_filter_results"] = json!({});
                }
                data_event(&c)
            };
            let mut head = Vec::new();
            if flavor == Flavor::AzureOpenAi {
                head.push(data_event(
                    &json!({"choices": [], "created": 0, "id": "", "model": "",
                    "object": "", "prompt_filter_results": azure_prompt_filter()}),
                ));
            }
            let (deltas, finish) = if kind == Kind::ToolCall {
                head.push(chunk(json!({"role": "assistant", "content": null, "tool_calls": [{"index": 0,
                    "id": "call_fake_01", "type": "function", "function": {"name": name, "arguments": ""}}]}), Value::Null));
                let piece = |p: &str| {
                    chunk(
                        json!({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}),
                        Value::Null,
                    )
                };
                (vec![piece(args_a), piece(args_b)], "tool_calls")
            } else {
                head.push(chunk(
                    json!({"role": "assistant", "content": "", "refusal": null}),
                    Value::Null,
                ));
                (
                    pieces
                        .iter()
                        .map(|p| chunk(json!({"content": p}), Value::Null))
                        .collect(),
                    "stop",
                )
            };
            let mut tail = vec![chunk(json!({}), json!(finish))];
            if seen.include_usage {
                tail.push(data_event(
                    &json!({"id": "chatcmpl-fake01", "object": "chat.completion.chunk",
                    "created": 1_764_000_000, "model": model, "system_fingerprint": "fp_fake",
                    "choices": [], "usage": openai_usage()}),
                ));
            }
            tail.push(Bytes::from_static(b"data: [DONE]\n\n"));
            Events { head, deltas, tail }
        }
    }
}

fn embeddings(flavor: Flavor, seen: &Seen) -> Reply {
    let vector = |i: usize, text: &str| vec![i as f64 + 0.5, text.len() as f64, -0.25];
    let tokens: usize = seen
        .inputs
        .iter()
        .map(|i| i.split_whitespace().count().max(1))
        .sum();
    match flavor {
        Flavor::Gemini => Reply::json(
            200,
            &json!({"embeddings": seen.inputs.iter().enumerate()
                .map(|(i, t)| json!({"values": vector(i, t)})).collect::<Vec<_>>()}),
        ),
        _ => Reply::json(
            200,
            &json!({
                "object": "list",
                "data": seen.inputs.iter().enumerate()
                    .map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": vector(i, t)}))
                    .collect::<Vec<_>>(),
                "model": seen.model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}
            }),
        ),
    }
}

// -------------------------------------------------------------------- errors

/// The provider's error body for `status` with `message`.
fn error_reply(flavor: Flavor, status: u16, message: &str) -> Reply {
    match flavor {
        Flavor::Anthropic => {
            let kind = match status {
                400 => "invalid_request_error",
                401 => "authentication_error",
                403 => "permission_error",
                404 => "not_found_error",
                413 => "request_too_large",
                429 => "rate_limit_error",
                529 => "overloaded_error",
                _ => "api_error",
            };
            Reply::json(
                status,
                &json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_fake_01"}),
            )
            .header("request-id", "req_fake_01")
        }
        Flavor::Gemini => {
            let rpc = match status {
                400 => "INVALID_ARGUMENT",
                401 => "UNAUTHENTICATED",
                403 => "PERMISSION_DENIED",
                404 => "NOT_FOUND",
                429 => "RESOURCE_EXHAUSTED",
                503 => "UNAVAILABLE",
                504 => "DEADLINE_EXCEEDED",
                _ => "INTERNAL",
            };
            Reply::json(
                status,
                &json!({"error": {"code": status, "message": message, "status": rpc}}),
            )
        }
        Flavor::OpenAi | Flavor::AzureOpenAi => {
            let (kind, code) = match status {
                400 | 404 => ("invalid_request_error", Value::Null),
                401 => ("invalid_request_error", json!("invalid_api_key")),
                429 => ("requests", json!("rate_limit_exceeded")),
                _ => ("server_error", Value::Null),
            };
            Reply::json(
                status,
                &json!({"error": {"message": message, "type": kind, "param": null, "code": code}}),
            )
        }
    }
}

fn unauthorized(flavor: Flavor) -> Reply {
    match flavor {
        Flavor::Anthropic => error_reply(flavor, 401, "invalid x-api-key"),
        // Gemini answers a bad key with 400 and the reason in ErrorInfo.
        Flavor::Gemini => Reply::json(
            400,
            &json!({"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.",
                "status": "INVALID_ARGUMENT", "details": [
                    {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                     "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}},
                    {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US",
                     "message": "API key not valid. Please pass a valid API key."}]}}),
        ),
        Flavor::OpenAi => error_reply(
            flavor,
            401,
            "Incorrect API key provided: sk-fake***. You can find your API key at https://platform.openai.com/account/api-keys.",
        ),
        Flavor::AzureOpenAi => Reply::json(
            401,
            &json!({"error": {"code": "401", "message": "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."}}),
        ),
    }
}

fn rate_limited(flavor: Flavor, wait: Duration) -> Reply {
    let seconds = wait.as_secs_f64();
    let whole_seconds = wait.as_millis().div_ceil(1000).to_string();
    match flavor {
        Flavor::Anthropic => error_reply(
            flavor,
            429,
            "This request would exceed the rate limit for your organization of 50 requests per minute.",
        )
        .header("retry-after", &whole_seconds),
        // Gemini says when in the body (google.rpc.RetryInfo), not in a header.
        Flavor::Gemini => Reply::json(
            429,
            &json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED",
                "message": "You exceeded your current quota, please check your plan and billing details.",
                "details": [
                    {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [
                        {"quotaMetric": "generativelanguage.googleapis.com/generate_content_paid_tier_input_token_count",
                         "quotaId": "GenerateContentPaidTierInputTokensPerModelPerMinute"}]},
                    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": format!("{seconds:.3}s")}]}}),
        ),
        // OpenAI says when the exhausted limit resets.
        Flavor::OpenAi => error_reply(
            flavor,
            429,
            "Rate limit reached for requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again shortly.",
        )
        .header("x-ratelimit-limit-requests", "3")
        .header("x-ratelimit-remaining-requests", "0")
        .header("x-ratelimit-reset-requests", &format!("{}ms", wait.as_millis()))
        .header("x-ratelimit-limit-tokens", "40000")
        .header("x-ratelimit-remaining-tokens", "39950")
        .header("x-ratelimit-reset-tokens", "75ms"),
        // Azure in milliseconds and in whole seconds.
        Flavor::AzureOpenAi => Reply::json(
            429,
            &json!({"error": {"code": "429", "message": "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 1 second."}}),
        )
        .header("retry-after-ms", &wait.as_millis().to_string())
        .header("retry-after", &whole_seconds),
    }
}

/// The error a provider sends inside a stream, after HTTP 200.
fn stream_error(flavor: Flavor) -> Bytes {
    match flavor {
        Flavor::Anthropic => anthropic_event(
            &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        ),
        Flavor::Gemini => gemini_event(
            &json!({"error": {"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}}),
        ),
        Flavor::OpenAi | Flavor::AzureOpenAi => data_event(
            &json!({"error": {"message": "The server had an error while processing your request. Sorry about that!",
                              "type": "server_error", "param": null, "code": null}}),
        ),
    }
}

fn server_error(flavor: Flavor) -> Reply {
    let message = match flavor {
        Flavor::Anthropic => "Internal server error",
        Flavor::Gemini => {
            "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting"
        }
        _ => "The server had an error while processing your request. Sorry about that!",
    };
    error_reply(flavor, 500, message)
}

fn overloaded(flavor: Flavor) -> Reply {
    match flavor {
        Flavor::Anthropic => error_reply(flavor, 529, "Overloaded"),
        Flavor::Gemini => error_reply(
            flavor,
            503,
            "The model is overloaded. Please try again later.",
        ),
        _ => error_reply(
            flavor,
            503,
            "The engine is currently overloaded, please try again later.",
        ),
    }
}

fn unavailable(flavor: Flavor) -> Reply {
    match flavor {
        Flavor::Anthropic => error_reply(flavor, 503, "Service unavailable"),
        _ => overloaded(flavor),
    }
}

fn context_length(flavor: Flavor) -> Reply {
    match flavor {
        Flavor::Anthropic => error_reply(
            flavor,
            400,
            "prompt is too long: 1050000 tokens > 1000000 maximum",
        ),
        Flavor::Gemini => error_reply(
            flavor,
            400,
            "The input token count (1200293) exceeds the maximum number of tokens allowed (1048576).",
        ),
        Flavor::OpenAi | Flavor::AzureOpenAi => Reply::json(
            400,
            &json!({"error": {"message": "This model's maximum context length is 1050000 tokens. However, your messages resulted in 1200293 tokens. Please reduce the length of the messages.",
                "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}),
        ),
    }
}

fn malformed(flavor: Flavor, stream: bool) -> Reply {
    if stream {
        let broken = match flavor {
            Flavor::Anthropic => {
                "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\n\n"
            }
            Flavor::Gemini => "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\r\n\r\n",
            _ => "data: {\"id\":\"chatcmpl-fake01\",\"choices\":[{\"delta\":{\"content\n\n",
        };
        sse_reply(vec![Bytes::from_static(broken.as_bytes())], Duration::ZERO)
    } else {
        Reply::whole(
            200,
            "application/json",
            "{\"id\": \"fake\", \"content\": [{\"type\": \"te",
        )
    }
}
