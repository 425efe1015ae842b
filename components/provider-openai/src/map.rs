//! Pure mapping between the platform's model types and the OpenAI wire
//! format: requests, responses, stream chunks, embeddings and errors. Nothing
//! here does I/O, so all of it is unit-tested natively.

use convergio_sdk::provider::AdapterSettings as _;
use std::collections::BTreeMap;

use convergio_sdk::log::Level;
use convergio_sdk::provider::{
    self, Completion, Delta, Embeddings, EventDecoder, FinishReason, Message, ModelError, Post,
    ProviderRequest, Role, ToolCall, ToolDefinition, Upstream, Usage, excerpt,
};
use convergio_sdk::sse::SseEvent;
use serde_json::Value;

use crate::config::{Flavor, Settings};
use crate::models::{self, ChatTools, Kind, ModelSpec, Tokens};
use crate::wire::{
    ApiError, ChatChunk, ChatRequest, ChatResponse, EmbeddingsRequest, EmbeddingsResponse,
    ErrorBody, FunctionCall, FunctionDefinition, JsonSchemaFormat, RequestMessage, RequestToolCall,
    ResponseFormat, StreamOptions, Tool, WireUsage,
};

/// What a JSON-mode request adds as a system message when no message
/// mentions JSON: the API refuses `json_object` mode otherwise ("'messages'
/// must contain the word 'json'").
pub const JSON_MODE_INSTRUCTION: &str =
    "Answer with one valid JSON object and nothing else: no prose and no Markdown code fences.";

/// Stop sequences the API accepts at most.
pub const MAX_STOP: usize = 4;

/// The API a call goes to, for messages and error hints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Api {
    /// `openai` or `azure-openai`.
    pub provider: &'static str,
    /// `OpenAI API` or `Azure OpenAI API`, its origin and key.
    pub upstream: Upstream,
    /// Completions name the deployment asked for, not the model the
    /// response names (Azure reports the underlying model).
    pub azure: bool,
}

impl Api {
    pub fn new(settings: &Settings) -> Self {
        Self {
            provider: settings.provider_id(),
            upstream: settings.upstream(),
            azure: matches!(settings.flavor, Flavor::Azure { .. }),
        }
    }
}

/// One call: where it goes, the model asked for and what is declared of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub api: Api,
    /// The model (Azure: the deployment) of the request.
    pub model: String,
    /// The declared model behind it, if any.
    pub spec: Option<&'static ModelSpec>,
}

impl Call {
    /// A call to `model` (an Azure deployment) with `settings`.
    pub fn new(settings: &Settings, model: &str) -> Self {
        Self {
            api: Api::new(settings),
            model: model.to_owned(),
            spec: settings.spec(model),
        }
    }

    /// The model to report as having answered.
    fn answered(&self, response_model: Option<&str>) -> String {
        match response_model.filter(|m| !m.is_empty()) {
            Some(m) if !self.api.azure => m.to_owned(),
            _ => self.model.clone(),
        }
    }

    /// Usage with its cost, priced as the requested model if it is
    /// declared, else as the answering one (0 if neither is).
    fn usage(&self, usage: Option<&WireUsage>, response_model: Option<&str>) -> Usage {
        let tokens = tokens(usage);
        let spec = self.spec.or_else(|| response_model.and_then(models::find));
        Usage::new(
            tokens.input,
            tokens.output,
            models::cost_micro_usd(spec, &tokens),
        )
    }

    /// `provider/model` for messages.
    fn label(&self) -> String {
        format!("{}/{}", self.api.provider, self.model)
    }
}

fn tokens(usage: Option<&WireUsage>) -> Tokens {
    let usage = usage.copied().unwrap_or_default();
    Tokens {
        input: usage.prompt_tokens.unwrap_or(0),
        cached: usage
            .prompt_tokens_details
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0),
        output: usage.completion_tokens.unwrap_or(0),
    }
}

/// A request as it goes on the wire, and what was adjusted for the model.
#[derive(Debug, Clone, PartialEq)]
pub struct Built {
    pub body: ChatRequest,
    /// Settings left out because the model does not accept them (for a log line).
    pub dropped: Vec<&'static str>,
    /// `reasoning_effort: "none"` was sent so that the model accepts tools.
    pub reasoning_off: bool,
}

/// The Chat Completions request for `request` with `settings`: the body of
/// [`build_request`], and log lines for what was adjusted for the model.
pub fn chat(
    settings: &Settings,
    request: &ProviderRequest,
    stream: bool,
) -> Result<Post, ModelError> {
    let call = Call::new(settings, &request.model);
    let built = build_request(request, &call, stream)?;
    let mut post = Post::json(settings.chat_url(&request.model)?, &built.body)?;
    if !built.dropped.is_empty() {
        post = post.note(
            Level::Warn,
            format!(
                "{} does not accept {}: left out of the request",
                call.label(),
                built.dropped.join(", ")
            ),
        );
    }
    if built.reasoning_off {
        post = post.note(
            Level::Info,
            format!(
                "{}: reasoning_effort \"none\" sent, the only setting at which Chat Completions \
                 accepts tools for this model",
                call.label()
            ),
        );
    }
    Ok(post)
}

/// The wire request for `request` to the model of `call`.
pub fn build_request(
    request: &ProviderRequest,
    call: &Call,
    stream: bool,
) -> Result<Built, ModelError> {
    let label = call.label();
    let tools_rule = match call.spec.map(|s| s.api.kind) {
        Some(Kind::Embedding) => {
            return Err(ModelError::BadRequest(format!(
                "{label} is an embeddings model: it does not complete chats"
            )));
        }
        Some(Kind::Chat { tools }) => Some(tools),
        None => None,
    };

    let mut messages = Vec::with_capacity(request.messages.len() + 1);
    for message in &request.messages {
        messages.push(message_to_wire(message)?);
    }
    if messages.is_empty() {
        return Err(ModelError::BadRequest(format!(
            "{label}: the request has no message"
        )));
    }
    let response_format = match &request.format {
        provider::ResponseFormat::Text => None,
        provider::ResponseFormat::JsonObject => Some(ResponseFormat {
            kind: "json_object",
            json_schema: None,
        }),
        provider::ResponseFormat::JsonSchema(schema) => Some(ResponseFormat {
            kind: "json_schema",
            json_schema: Some(JsonSchemaFormat {
                name: "answer",
                schema: serde_json::from_str(schema).map_err(|e| {
                    ModelError::BadRequest(format!(
                        "{label}: the response format's JSON Schema is not JSON: {e}"
                    ))
                })?,
                strict: false,
            }),
        }),
    };
    if matches!(request.format, provider::ResponseFormat::JsonObject) {
        let mentions_json = request
            .messages
            .iter()
            .any(|m| m.content.to_ascii_lowercase().contains("json"));
        if !mentions_json {
            messages.insert(
                0,
                RequestMessage::System {
                    content: JSON_MODE_INSTRUCTION.to_owned(),
                },
            );
        }
    }

    let tools = request
        .tools
        .iter()
        .map(tool)
        .collect::<Result<Vec<_>, _>>()?;
    let mut reasoning_effort = None;
    if !tools.is_empty() {
        match tools_rule {
            Some(ChatTools::ResponsesOnly) => {
                return Err(ModelError::BadRequest(format!(
                    "{label} calls tools only through OpenAI's Responses API, which this adapter \
                     does not speak (Chat Completions refuses function tools for it); route tool \
                     requests to a model that declares the `tools` feature, e.g. gpt-6-sol or \
                     gpt-6-luna"
                )));
            }
            Some(ChatTools::WithoutReasoning) => reasoning_effort = Some("none"),
            None => {}
        }
    }

    let sampling = &request.sampling;
    // Reasoning models take no sampling settings unless reasoning is off.
    let reasoning_on = tools_rule.is_some() && reasoning_effort.is_none();
    let mut dropped = Vec::new();
    let mut keep = |value: Option<f32>, name| {
        if value.is_some() && reasoning_on {
            dropped.push(name);
            None
        } else {
            value
        }
    };
    let temperature = keep(sampling.temperature, "temperature");
    let top_p = keep(sampling.top_p, "top-p");
    if sampling.top_k.is_some() {
        dropped.push("top-k");
    }
    if sampling.stop.len() > MAX_STOP {
        return Err(ModelError::BadRequest(format!(
            "{label}: {} stop sequences given; the API accepts at most {MAX_STOP}",
            sampling.stop.len()
        )));
    }

    let body = ChatRequest {
        model: request.model.clone(),
        messages,
        tools,
        temperature,
        top_p,
        seed: sampling.seed,
        max_completion_tokens: sampling.max_tokens,
        stop: sampling.stop.clone(),
        response_format,
        reasoning_effort,
        stream,
        stream_options: stream.then_some(StreamOptions {
            include_usage: true,
        }),
    };
    Ok(Built {
        body,
        dropped,
        reasoning_off: reasoning_effort.is_some(),
    })
}

fn message_to_wire(message: &Message) -> Result<RequestMessage, ModelError> {
    Ok(match message.role {
        Role::System => RequestMessage::System {
            content: message.content.clone(),
        },
        Role::User => RequestMessage::User {
            content: message.content.clone(),
        },
        Role::Assistant => {
            let tool_calls = message
                .tool_calls
                .iter()
                .map(|call| {
                    Ok(RequestToolCall {
                        id: call.id.clone(),
                        kind: "function",
                        function: FunctionCall {
                            name: call.name.clone(),
                            arguments: arguments_object(call)?,
                        },
                    })
                })
                .collect::<Result<Vec<_>, ModelError>>()?;
            let content = if message.content.is_empty() && !tool_calls.is_empty() {
                None
            } else {
                Some(message.content.clone())
            };
            RequestMessage::Assistant {
                content,
                tool_calls,
            }
        }
        Role::Tool => {
            let Some(id) = message.tool_call_id.clone() else {
                return Err(ModelError::BadRequest(
                    "a message of role `tool` has no `tool-call-id`: the API needs the id of the \
                     tool call it answers"
                        .to_owned(),
                ));
            };
            RequestMessage::Tool {
                tool_call_id: id,
                content: message.content.clone(),
            }
        }
    })
}

/// An earlier tool call's arguments as JSON object text: the caller's
/// text as it is, `{}` for none.
fn arguments_object(call: &ToolCall) -> Result<String, ModelError> {
    provider::tool_call_arguments(call)?;
    Ok(if call.arguments.trim().is_empty() {
        "{}".to_owned()
    } else {
        call.arguments.clone()
    })
}

fn tool(definition: &ToolDefinition) -> Result<Tool, ModelError> {
    let parameters = provider::tool_parameters(definition)?;
    Ok(Tool {
        kind: "function",
        function: FunctionDefinition {
            name: definition.name.clone(),
            description: Some(definition.description.clone()).filter(|d| !d.is_empty()),
            parameters,
        },
    })
}

/// A 2xx body as `T`; one that is not says whose answer it was and what
/// it looked like.
fn parse<T: serde::de::DeserializeOwned>(
    body: &[u8],
    api: &Api,
    what: &str,
) -> Result<T, ModelError> {
    provider::parse_response(body).map_err(|e| match e {
        ModelError::MalformedResponse(why) => ModelError::MalformedResponse(format!(
            "{} answered with a body that is not {what} ({why}): {}",
            api.upstream.name,
            excerpt(body)
        )),
        other => other,
    })
}

/// The completion in a successful non-streamed response body.
pub fn parse_completion(body: &[u8], call: &Call) -> Result<Completion, ModelError> {
    let response: ChatResponse = parse(body, &call.api, "a chat completion")?;
    let model = response.model.as_deref();
    let Some(choice) = response
        .choices
        .iter()
        .find(|c| c.index == 0)
        .or(response.choices.first())
    else {
        return Err(ModelError::MalformedResponse(format!(
            "{} answered a chat completion without any choice",
            call.api.upstream.name
        )));
    };
    let message = &choice.message;
    let mut content = message.content.clone().unwrap_or_default();
    let refused = content.is_empty() && message.refusal.as_deref().is_some_and(|r| !r.is_empty());
    if refused {
        content = message.refusal.clone().unwrap_or_default();
    }
    let mut tool_calls = Vec::new();
    for wire_call in message.tool_calls.iter().flatten() {
        if let Some(function) = &wire_call.function {
            tool_calls.push(ToolCall {
                id: wire_call.id.clone(),
                name: function.name.clone(),
                arguments: if function.arguments.trim().is_empty() {
                    "{}".to_owned()
                } else {
                    function.arguments.clone()
                },
            });
        }
    }
    let finish = if refused {
        FinishReason::ContentFilter
    } else {
        finish_reason(choice.finish_reason.as_deref())
    };
    Ok(Completion {
        provider: call.api.provider.to_owned(),
        model: call.answered(model),
        message: Message {
            role: Role::Assistant,
            content,
            tool_calls,
            tool_call_id: None,
        },
        finish_reason: finish,
        usage: call.usage(response.usage.as_ref(), model),
    })
}

/// Why generation ended, from `finish_reason`.
pub fn finish_reason(reason: Option<&str>) -> FinishReason {
    match reason {
        Some("length") => FinishReason::Length,
        Some("tool_calls" | "function_call") => FinishReason::ToolCalls,
        Some("content_filter") => FinishReason::ContentFilter,
        // `stop` and values newer than this adapter.
        _ => FinishReason::Stop,
    }
}

/// Embeddings of `inputs` by `model` with `settings`, in one request that
/// `send` posts (none for no input).
pub fn embed(
    settings: &Settings,
    model: &str,
    inputs: &[String],
    send: &mut dyn FnMut(&Post) -> Result<Vec<u8>, ModelError>,
) -> Result<Embeddings, ModelError> {
    let call = Call::new(settings, model);
    let body = build_embeddings_request(inputs, &call)?;
    if inputs.is_empty() {
        return Ok(no_embeddings(&call));
    }
    let post = Post::json(settings.embeddings_url(model)?, &body)?;
    parse_embeddings(&send(&post)?, &call, inputs.len())
}

/// The wire request of `embed`.
pub fn build_embeddings_request(
    inputs: &[String],
    call: &Call,
) -> Result<EmbeddingsRequest, ModelError> {
    if let Some(Kind::Chat { .. }) = call.spec.map(|s| s.api.kind) {
        return Err(ModelError::BadRequest(format!(
            "{} is a chat model: embed with an embeddings model, e.g. text-embedding-3-small",
            call.label()
        )));
    }
    Ok(EmbeddingsRequest {
        model: call.model.clone(),
        input: inputs.to_vec(),
        encoding_format: "float",
    })
}

/// The vectors of a successful embeddings response, in input order.
pub fn parse_embeddings(body: &[u8], call: &Call, inputs: usize) -> Result<Embeddings, ModelError> {
    let response: EmbeddingsResponse = parse(body, &call.api, "an embeddings list")?;
    let mut data = response.data;
    data.sort_by_key(|d| d.index);
    let in_order = data.iter().enumerate().all(|(i, d)| d.index == i);
    if data.len() != inputs || !in_order {
        return Err(ModelError::MalformedResponse(format!(
            "{} answered {} embeddings (indexes {:?}) for {inputs} inputs",
            call.api.upstream.name,
            data.len(),
            data.iter().map(|d| d.index).take(8).collect::<Vec<_>>()
        )));
    }
    let model = response.model.as_deref();
    Ok(Embeddings {
        model: call.answered(model),
        vectors: data.into_iter().map(|d| d.embedding).collect(),
        usage: call.usage(response.usage.as_ref(), model),
    })
}

/// `embed` of no input: nothing to ask.
pub fn no_embeddings(call: &Call) -> Embeddings {
    Embeddings {
        model: call.model.clone(),
        vectors: Vec::new(),
        usage: Usage::default(),
    }
}

/// The error of a response with a status other than 2xx.
///
/// The status decides the variant; the documented error body (`{"error":
/// {"message", "type", "param", "code"}}`) supplies the message and tells a
/// prompt that is too long or filtered content from other bad requests.
/// `retry_after_ms` is what [`retry_after_ms`] read from the headers.
pub fn http_error(api: &Api, status: u16, retry_after_ms: Option<u64>, body: &[u8]) -> ModelError {
    let error = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .map(|b| b.error);
    let message = match &error {
        Some(e) => format!(
            "{} answered HTTP {status}: {}",
            api.upstream.name,
            describe(e)
        ),
        None => format!(
            "{} answered HTTP {status} with a body that is not its error format: {}",
            api.upstream.name,
            excerpt(body)
        ),
    };
    let code = error.as_ref().and_then(ApiError::code);
    match (status, &error) {
        (429, _) if code.as_deref() == Some("insufficient_quota") => ModelError::Auth(format!(
            "{message} (the key's account has no quota left: see its billing)"
        )),
        (429, _) => ModelError::RateLimited(retry_after_ms),
        (503 | 529, _) => ModelError::Overloaded(message),
        (401 | 403, _) => ModelError::Auth(message),
        (400 | 404 | 413 | 422, Some(e)) => invalid_request(e, message),
        (400 | 404 | 413 | 422, None) => ModelError::BadRequest(message),
        (408, _) => ModelError::Timeout(message),
        (500..=599, _) => ModelError::Upstream(message),
        (_, Some(e)) => by_kind(e, message),
        (_, None) => ModelError::MalformedResponse(message),
    }
}

/// The error of an `{"error": …}` chunk in a stream (after HTTP 200).
pub fn stream_error(api: &Api, error: &ApiError) -> ModelError {
    by_kind(
        error,
        format!("{} stream error: {}", api.upstream.name, describe(error)),
    )
}

/// `type (code): message`, with what is known.
fn describe(error: &ApiError) -> String {
    let mut out = String::new();
    if let Some(kind) = &error.kind {
        out.push_str(kind);
    }
    if let Some(code) = error.code() {
        if out.is_empty() {
            out.push_str(&code);
        } else {
            out.push_str(&format!(" ({code})"));
        }
    }
    let message = error.message.as_deref().unwrap_or("").trim();
    match (out.is_empty(), message.is_empty()) {
        (true, true) => "(no message)".to_owned(),
        (true, false) => message.to_owned(),
        (false, true) => out,
        (false, false) => format!("{out}: {message}"),
    }
}

/// Map by the documented error `code` and `type`.
fn by_kind(error: &ApiError, message: String) -> ModelError {
    if let Some(specific) = specific(error, &message) {
        return specific;
    }
    let code = error.code().unwrap_or_default();
    let kind = error.kind.as_deref().unwrap_or_default();
    match (code.as_str(), kind) {
        ("insufficient_quota", _) | (_, "insufficient_quota") => ModelError::Auth(message),
        ("rate_limit_exceeded" | "429", _) | (_, "rate_limit_exceeded" | "rate_limit_error") => {
            ModelError::RateLimited(None)
        }
        ("invalid_api_key", _) | (_, "authentication_error" | "permission_error") => {
            ModelError::Auth(message)
        }
        (_, "invalid_request_error" | "not_found_error") => ModelError::BadRequest(message),
        ("timeout", _) | (_, "timeout") => ModelError::Timeout(message),
        // `server_error` and kinds newer than this adapter.
        _ => ModelError::Upstream(message),
    }
}

/// A request the API refused: too long, filtered, or otherwise wrong.
fn invalid_request(error: &ApiError, message: String) -> ModelError {
    specific(error, &message).unwrap_or(ModelError::BadRequest(message))
}

/// The context-length and content-filter errors, by code or message.
fn specific(error: &ApiError, message: &str) -> Option<ModelError> {
    let code = error.code().unwrap_or_default();
    let inner = error
        .innererror
        .as_ref()
        .and_then(|i| i.code.as_deref())
        .unwrap_or_default();
    let lower = error
        .message
        .as_deref()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if code == "context_length_exceeded" || lower.contains("maximum context length") {
        Some(ModelError::ContextLengthExceeded(message.to_owned()))
    } else if matches!(
        code.as_str(),
        "content_filter" | "content_policy_violation" | "invalid_prompt"
    ) || inner == "ResponsibleAIPolicyViolation"
        || lower.contains("content management policy")
    {
        Some(ModelError::ContentFiltered(message.to_owned()))
    } else {
        None
    }
}

/// Milliseconds to wait before retrying a 429, from its headers (`header`
/// returns a header's value): Azure's `retry-after-ms`, then `retry-after`
/// (delay seconds or an HTTP date, relative to `now` in Unix seconds), then
/// OpenAI's `x-ratelimit-reset-requests` / `-tokens` (durations such as
/// `1s`, `6m0s` or `20ms`) of the limits whose `x-ratelimit-remaining-…`
/// is 0.
pub fn retry_after_ms(header: impl Fn(&str) -> Option<String>, now: u64) -> Option<u64> {
    if let Some(ms) = header("retry-after-ms").and_then(|v| seconds_ms(&v, 1)) {
        return Some(ms);
    }
    if let Some(ms) = header("retry-after").and_then(|v| provider::retry_after_ms(&v, now)) {
        return Some(ms);
    }
    ["requests", "tokens"]
        .iter()
        .filter(|limit| {
            header(&format!("x-ratelimit-remaining-{limit}")).is_some_and(|v| v.trim() == "0")
        })
        .filter_map(|limit| header(&format!("x-ratelimit-reset-{limit}")))
        .filter_map(|v| duration_ms(&v))
        .max()
}

/// A non-negative number (whole or fractional) of units of `unit_ms`.
fn seconds_ms(value: &str, unit_ms: u64) -> Option<u64> {
    let value = value.trim();
    if let Ok(n) = value.parse::<u64>() {
        return Some(n.saturating_mul(unit_ms));
    }
    let n = value.parse::<f64>().ok()?;
    (n.is_finite() && n >= 0.0).then(|| (n * unit_ms as f64).round() as u64)
}

/// A duration such as `1s`, `6m0s`, `1h2m3.5s`, `20ms` or `1.5s`.
fn duration_ms(value: &str) -> Option<u64> {
    let mut rest = value.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0_f64;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|&i| i > 0)?;
        let number: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let (unit_ms, unit_len) = if rest.starts_with("ms") {
            (1.0, 2)
        } else if rest.starts_with('h') {
            (3_600_000.0, 1)
        } else if rest.starts_with('m') {
            (60_000.0, 1)
        } else if rest.starts_with('s') {
            (1_000.0, 1)
        } else {
            return None;
        };
        total += number * unit_ms;
        rest = &rest[unit_len..];
    }
    (total.is_finite() && total >= 0.0).then(|| total.round() as u64)
}

/// Turns the `data:` payloads of a streamed response into deltas: text as it
/// comes, each tool call once its arguments are complete (when the next call
/// starts, or at `finish_reason`), and a last delta with the finish reason
/// and usage at `data: [DONE]`.
#[derive(Debug, Clone)]
pub struct StreamDecoder {
    call: Call,
    response_model: Option<String>,
    usage: Option<WireUsage>,
    finish: Option<String>,
    /// A refusal was streamed: the answer ends as filtered content.
    refused: bool,
    /// Tool calls whose arguments are still arriving, by index.
    tools: BTreeMap<u32, PendingTool>,
    started: bool,
    finished: bool,
}

#[derive(Debug, Clone, Default)]
struct PendingTool {
    id: String,
    name: String,
    arguments: String,
}

/// The payload that ends a stream.
pub const DONE: &str = "[DONE]";

impl StreamDecoder {
    /// A decoder for `call`.
    pub fn new(call: Call) -> Self {
        Self {
            call,
            response_model: None,
            usage: None,
            finish: None,
            refused: false,
            tools: BTreeMap::new(),
            started: false,
            finished: false,
        }
    }

    /// Whether `[DONE]` has arrived: nothing follows.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// Feed one event's `data`; returns the delta it completes, if any.
    pub fn push(&mut self, data: &str) -> Result<Option<Delta>, ModelError> {
        if self.finished {
            return Ok(None);
        }
        if data.trim() == DONE {
            return self.done().map(Some);
        }
        let chunk: ChatChunk = serde_json::from_str(data).map_err(|e| {
            ModelError::MalformedResponse(format!(
                "{} stream chunk is not in its documented format: {e}: {}",
                self.call.api.upstream.name,
                excerpt(data.as_bytes())
            ))
        })?;
        if let Some(error) = &chunk.error {
            return Err(stream_error(&self.call.api, error));
        }
        self.started = true;
        if let Some(model) = chunk.model.filter(|m| !m.is_empty()) {
            self.response_model = Some(model);
        }
        if chunk.usage.is_some() {
            self.usage = chunk.usage;
        }
        let mut content = String::new();
        let mut complete = Vec::new();
        for choice in chunk.choices.iter().flatten().filter(|c| c.index == 0) {
            if let Some(delta) = &choice.delta {
                if let Some(text) = &delta.content {
                    content.push_str(text);
                }
                if let Some(refusal) = delta.refusal.as_deref().filter(|r| !r.is_empty()) {
                    self.refused = true;
                    content.push_str(refusal);
                }
                for fragment in delta.tool_calls.iter().flatten() {
                    // A call starting means the ones before it are whole.
                    if !self.tools.contains_key(&fragment.index) {
                        complete.extend(self.take_complete_before(fragment.index));
                    }
                    let pending = self.tools.entry(fragment.index).or_default();
                    if let Some(id) = fragment.id.as_deref().filter(|id| !id.is_empty()) {
                        pending.id = id.to_owned();
                    }
                    if let Some(function) = &fragment.function {
                        if let Some(name) = function.name.as_deref().filter(|n| !n.is_empty()) {
                            pending.name = name.to_owned();
                        }
                        if let Some(arguments) = &function.arguments {
                            pending.arguments.push_str(arguments);
                        }
                    }
                }
            }
            if let Some(reason) = choice.finish_reason.as_deref() {
                self.finish = Some(reason.to_owned());
                let pending = std::mem::take(&mut self.tools);
                for tool in pending.into_values() {
                    complete.push(tool.finish(&self.call.api)?);
                }
            }
        }
        Ok(
            (!content.is_empty() || !complete.is_empty()).then_some(Delta {
                content,
                tool_calls: complete,
                finish_reason: None,
                usage: None,
            }),
        )
    }

    /// The pending calls before `index` whose arguments are a whole JSON
    /// object; a call still incomplete waits for `finish_reason`.
    fn take_complete_before(&mut self, index: u32) -> Vec<ToolCall> {
        let ready: Vec<u32> = self
            .tools
            .range(..index)
            .filter(|(_, t)| t.is_whole())
            .map(|(i, _)| *i)
            .collect();
        ready
            .into_iter()
            .filter_map(|i| self.tools.remove(&i))
            .filter_map(|t| t.finish(&self.call.api).ok())
            .collect()
    }

    /// The last delta, at `[DONE]`.
    fn done(&mut self) -> Result<Delta, ModelError> {
        self.finished = true;
        let tool_calls = std::mem::take(&mut self.tools)
            .into_values()
            .map(|t| t.finish(&self.call.api))
            .collect::<Result<Vec<_>, _>>()?;
        let finish = match self.finish.as_deref() {
            Some("stop") | None if self.refused => FinishReason::ContentFilter,
            None if !tool_calls.is_empty() => FinishReason::ToolCalls,
            other => finish_reason(other),
        };
        Ok(Delta {
            content: String::new(),
            tool_calls,
            finish_reason: Some(finish),
            usage: Some(
                self.call
                    .usage(self.usage.as_ref(), self.response_model.as_deref()),
            ),
        })
    }

    /// The error for a stream that ended without `[DONE]`.
    pub fn cut_off(&self) -> ModelError {
        if self.started {
            ModelError::Upstream(format!(
                "{} stream ended before data: [DONE]: the connection was cut",
                self.call.api.upstream.name
            ))
        } else {
            ModelError::MalformedResponse(format!(
                "{} answered without any chat.completion.chunk: not a Chat Completions stream",
                self.call.api.upstream.name
            ))
        }
    }
}

/// The glue of [`convergio_sdk::provider::SseStream`]: each event's `data`,
/// and a body that ends before `[DONE]` is [`StreamDecoder::cut_off`].
impl EventDecoder for StreamDecoder {
    fn event(&mut self, event: &SseEvent) -> Result<Option<Delta>, ModelError> {
        self.push(&event.data)
    }

    fn finished(&self) -> bool {
        self.finished
    }

    fn end(&mut self) -> Result<Delta, ModelError> {
        Err(self.cut_off())
    }
}

impl PendingTool {
    fn is_whole(&self) -> bool {
        self.arguments.trim().is_empty()
            || matches!(
                serde_json::from_str::<Value>(&self.arguments),
                Ok(Value::Object(_))
            )
    }

    fn finish(self, api: &Api) -> Result<ToolCall, ModelError> {
        if self.id.is_empty() || self.name.is_empty() {
            return Err(ModelError::MalformedResponse(format!(
                "{} stream: a tool call without id or function name (id `{}`, name `{}`)",
                api.upstream.name, self.id, self.name
            )));
        }
        if !self.is_whole() {
            return Err(ModelError::MalformedResponse(format!(
                "{} stream: the arguments of tool call `{}` ({}) are not a JSON object: {}",
                api.upstream.name,
                self.id,
                self.name,
                excerpt(self.arguments.as_bytes())
            )));
        }
        let arguments = if self.arguments.trim().is_empty() {
            "{}".to_owned()
        } else {
            self.arguments
        };
        Ok(ToolCall {
            id: self.id,
            name: self.name,
            arguments,
        })
    }
}

#[cfg(test)]
mod tests {
    use convergio_sdk::client::HttpError;
    use convergio_sdk::http::types::ErrorCode;
    use convergio_sdk::keys::KeyError;
    use convergio_sdk::provider::Sampling;
    use convergio_sdk::provider::testing::{self, request};
    use serde_json::json;

    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        Settings::load(testing::config(pairs)).unwrap()
    }

    fn openai(model: &str) -> Call {
        Call::new(&settings(&[]), model)
    }

    fn azure(model: &str) -> Call {
        Call::new(
            &settings(&[
                ("flavor", "azure"),
                ("base-url", "https://contoso.openai.azure.com"),
                (
                    "deployments",
                    "chat=gpt-6-luna,embed=text-embedding-3-small",
                ),
            ]),
            model,
        )
    }

    fn weather_tool() -> ToolDefinition {
        ToolDefinition {
            name: "get_weather".into(),
            description: "Current weather of a city".into(),
            parameters:
                r#"{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}"#
                    .into(),
        }
    }

    fn wire(built: &Built) -> Value {
        serde_json::to_value(&built.body).unwrap()
    }

    #[test]
    fn api_names_the_grants_it_needs() {
        let api = openai("gpt-6-luna").api;
        assert_eq!(
            (
                api.provider,
                api.upstream.origin.as_str(),
                api.upstream.key.provider.as_str()
            ),
            ("openai", "https://api.openai.com", "openai")
        );
        assert_eq!(api.upstream.name, "OpenAI API");
        let api = azure("chat").api;
        assert_eq!(api.upstream.name, "Azure OpenAI API");
        assert_eq!(
            (
                api.provider,
                api.upstream.origin.as_str(),
                api.upstream.key.provider.as_str()
            ),
            (
                "azure-openai",
                "https://contoso.openai.azure.com",
                "azure-openai"
            )
        );
        let local = Api::new(&settings(&[("base-url", "http://127.0.0.1:8080")]));
        assert_eq!(local.upstream.origin, "http://127.0.0.1:8080");
    }

    #[test]
    fn conversation_with_tools_maps_to_the_documented_request() {
        let mut assistant = Message::assistant("");
        assistant.tool_calls.push(ToolCall {
            id: "call_abc".into(),
            name: "get_weather".into(),
            arguments: r#"{"city":"Paris"}"#.into(),
        });
        let mut req = request(
            "my-fine-tune",
            vec![
                Message::system("Be brief."),
                Message::user("Weather in Paris?"),
                assistant,
                Message::tool_result("call_abc", r#"{"temp_c":21}"#),
            ],
        );
        req.tools.push(weather_tool());
        req.sampling = Sampling {
            temperature: Some(0.5),
            top_p: Some(0.9),
            top_k: Some(40),
            seed: Some(7),
            max_tokens: Some(256),
            stop: vec!["END".into()],
        };
        // An undeclared model: every supported setting passes as given.
        let built = build_request(&req, &openai("my-fine-tune"), false).unwrap();
        assert_eq!(built.dropped, ["top-k"]);
        assert!(!built.reasoning_off);
        assert_eq!(
            wire(&built),
            json!({
                "model": "my-fine-tune",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Weather in Paris?"},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "call_abc", "type": "function",
                         "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}
                    ]},
                    {"role": "tool", "tool_call_id": "call_abc", "content": "{\"temp_c\":21}"}
                ],
                "tools": [{"type": "function", "function": {
                    "name": "get_weather",
                    "description": "Current weather of a city",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
                }}],
                "temperature": 0.5,
                "top_p": 0.8999999761581421,
                "seed": 7,
                "max_completion_tokens": 256,
                "stop": ["END"]
            })
        );
    }

    #[test]
    fn streaming_asks_for_usage() {
        let req = request("gpt-6-luna", vec![Message::user("hi")]);
        let built = build_request(&req, &openai("gpt-6-luna"), true).unwrap();
        let body = wire(&built);
        assert_eq!(body["stream"], json!(true));
        assert_eq!(body["stream_options"], json!({"include_usage": true}));
        let built = build_request(&req, &openai("gpt-6-luna"), false).unwrap();
        let body = wire(&built);
        assert!(body.get("stream").is_none() && body.get("stream_options").is_none());
    }

    #[test]
    fn reasoning_models_follow_the_chat_completions_rules() {
        let mut req = request("gpt-6-luna", vec![Message::user("hi")]);
        req.sampling.temperature = Some(0.2);
        req.sampling.top_p = Some(0.5);
        // No tools: reasoning stays on, so sampling settings are left out.
        let built = build_request(&req, &openai("gpt-6-luna"), false).unwrap();
        assert_eq!(built.dropped, ["temperature", "top-p"]);
        let body = wire(&built);
        assert!(body.get("temperature").is_none() && body.get("reasoning_effort").is_none());
        // Tools: reasoning_effort "none", the only effort that takes tools,
        // and then sampling is accepted.
        req.tools.push(weather_tool());
        let built = build_request(&req, &openai("gpt-6-luna"), false).unwrap();
        assert!(built.reasoning_off && built.dropped.is_empty());
        let body = wire(&built);
        assert_eq!(body["reasoning_effort"], json!("none"));
        assert_eq!(body["temperature"], json!(0.20000000298023224));
        // Same through an Azure deployment of that model.
        req.model = "chat".into();
        let built = build_request(&req, &azure("chat"), false).unwrap();
        assert_eq!(wire(&built)["reasoning_effort"], json!("none"));
        // Models without a `none` effort take tools only on the Responses API.
        req.model = "gpt-6.2-sol".into();
        match build_request(&req, &openai("gpt-6.2-sol"), false) {
            Err(ModelError::BadRequest(m)) => assert!(m.contains("Responses API"), "{m}"),
            other => panic!("{other:?}"),
        }
        req.model = "text-embedding-3-small".into();
        assert!(matches!(
            build_request(&req, &openai("text-embedding-3-small"), false),
            Err(ModelError::BadRequest(_))
        ));
    }

    #[test]
    fn the_post_goes_to_the_flavor_url_and_notes_adjustments() {
        let mut req = request("gpt-6-luna", vec![Message::user("hi")]);
        req.sampling.temperature = Some(0.2);
        let post = chat(&settings(&[]), &req, false).unwrap();
        assert_eq!(post.url, "https://api.openai.com/v1/chat/completions");
        assert!(post.headers.is_empty());
        assert_eq!(post.notes.len(), 1);
        assert_eq!(post.notes[0].0, Level::Warn);
        assert!(
            post.notes[0]
                .1
                .contains("openai/gpt-6-luna does not accept temperature"),
            "{:?}",
            post.notes
        );
        req.tools.push(weather_tool());
        let post = chat(&settings(&[]), &req, true).unwrap();
        assert_eq!(post.json_body().unwrap()["reasoning_effort"], json!("none"));
        assert_eq!(post.notes.len(), 1);
        assert_eq!(post.notes[0].0, Level::Info);
        let azure = settings(&[
            ("flavor", "azure"),
            ("base-url", "https://contoso.openai.azure.com"),
        ]);
        req.model = "a/b".into();
        assert!(matches!(
            chat(&azure, &req, false),
            Err(ModelError::BadRequest(_))
        ));
    }

    #[test]
    fn json_mode_sets_the_format_and_mentions_json() {
        let mut req = request("gpt-6-luna", vec![Message::user("List three colours.")]);
        req.format = provider::ResponseFormat::JsonObject;
        let body = wire(&build_request(&req, &openai("gpt-6-luna"), false).unwrap());
        assert_eq!(body["response_format"], json!({"type": "json_object"}));
        assert_eq!(
            body["messages"][0],
            json!({"role": "system", "content": JSON_MODE_INSTRUCTION})
        );
        assert!(JSON_MODE_INSTRUCTION.to_ascii_lowercase().contains("json"));
        // A prompt that already asks for JSON is left as it is.
        req.messages = vec![Message::user("List three colours as Json.")];
        let body = wire(&build_request(&req, &openai("gpt-6-luna"), false).unwrap());
        assert_eq!(body["messages"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn a_json_schema_is_sent_as_structured_output() {
        let mut req = request("gpt-6-luna", vec![Message::user("Grade it.")]);
        req.format = provider::ResponseFormat::JsonSchema(
            r#"{"type":"object","properties":{"grade":{"type":"integer"}},"required":["grade"]}"#
                .into(),
        );
        let body = wire(&build_request(&req, &openai("gpt-6-luna"), false).unwrap());
        assert_eq!(
            body["response_format"],
            json!({"type": "json_schema", "json_schema": {
                "name": "answer",
                "schema": {"type": "object", "properties": {"grade": {"type": "integer"}}, "required": ["grade"]},
                "strict": false
            }})
        );
        // No instruction is added: the schema is the instruction.
        assert_eq!(body["messages"].as_array().unwrap().len(), 1);
        req.format = provider::ResponseFormat::JsonSchema("{".into());
        assert!(matches!(
            build_request(&req, &openai("gpt-6-luna"), false),
            Err(ModelError::BadRequest(m)) if m.contains("not JSON")
        ));
    }

    #[test]
    fn invalid_requests_are_refused_before_sending() {
        let call = openai("x");
        let bad = |req: ProviderRequest| match build_request(&req, &call, false) {
            Err(ModelError::BadRequest(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(bad(request("x", vec![])).contains("no message"));
        let mut orphan = Message::tool_result("id", "{}");
        orphan.tool_call_id = None;
        assert!(bad(request("x", vec![orphan])).contains("tool-call-id"));
        let mut assistant = Message::assistant("");
        assistant.tool_calls.push(ToolCall {
            id: "c1".into(),
            name: "f".into(),
            arguments: "[1]".into(),
        });
        assert!(bad(request("x", vec![assistant])).contains("not a JSON object"));
        let mut req = request("x", vec![Message::user("hi")]);
        req.tools.push(ToolDefinition {
            parameters: "{".into(),
            ..weather_tool()
        });
        assert!(bad(req).contains("not valid JSON"));
        let mut req = request("x", vec![Message::user("hi")]);
        req.sampling.stop = vec!["a".into(); 5];
        assert!(bad(req).contains("at most 4"));
        // An empty arguments text is an empty object; empty parameters too.
        let mut assistant = Message::assistant("");
        assistant.tool_calls.push(ToolCall {
            id: "c1".into(),
            name: "f".into(),
            arguments: " ".into(),
        });
        let mut req = request("x", vec![assistant]);
        req.tools.push(ToolDefinition {
            name: "f".into(),
            description: String::new(),
            parameters: String::new(),
        });
        let body = wire(&build_request(&req, &call, false).unwrap());
        assert_eq!(
            body["messages"][0]["tool_calls"][0]["function"]["arguments"],
            "{}"
        );
        assert_eq!(
            body["tools"][0]["function"],
            json!({"name": "f", "parameters": {"type": "object", "properties": {}}})
        );
    }

    // The `chat.completion` object of the API reference.
    const COMPLETION: &str = r#"{
        "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
        "object": "chat.completion",
        "created": 1741570283,
        "model": "gpt-6-luna-2026-09-22",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": "Hello there.", "refusal": null, "annotations": []},
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": {
            "prompt_tokens": 1117, "completion_tokens": 46, "total_tokens": 1163,
            "prompt_tokens_details": {"cached_tokens": 1000, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 20, "audio_tokens": 0,
                "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
        },
        "service_tier": "default",
        "system_fingerprint": "fp_fc9f1d7035"
    }"#;

    #[test]
    fn completion_is_parsed_and_priced() {
        let c = parse_completion(COMPLETION.as_bytes(), &openai("gpt-6-luna")).unwrap();
        assert_eq!(c.provider, "openai");
        assert_eq!(c.model, "gpt-6-luna-2026-09-22");
        assert_eq!(c.message.content, "Hello there.");
        assert!(matches!(c.message.role, Role::Assistant));
        assert!(matches!(c.finish_reason, FinishReason::Stop));
        assert_eq!((c.usage.input_tokens, c.usage.output_tokens), (1117, 46));
        // 117 × 0.10 + 1000 × 0.01 + 46 × 0.50 micro-dollars = 44.7.
        assert_eq!(c.usage.cost_micro_usd, 45);
        // Azure reports the underlying model; the completion names the deployment.
        let c = parse_completion(COMPLETION.as_bytes(), &azure("chat")).unwrap();
        assert_eq!(
            (c.provider.as_str(), c.model.as_str()),
            ("azure-openai", "chat")
        );
        assert_eq!(c.usage.cost_micro_usd, 45);
        // An undeclared model costs 0 unless the answering model is declared.
        let c = parse_completion(COMPLETION.as_bytes(), &openai("alias")).unwrap();
        assert_eq!(c.usage.cost_micro_usd, 45);
        let other = COMPLETION.replace("gpt-6-luna-2026-09-22", "ft:custom");
        let c = parse_completion(other.as_bytes(), &openai("ft:custom")).unwrap();
        assert_eq!(c.usage.cost_micro_usd, 0);
    }

    #[test]
    fn tool_calls_refusals_and_finish_reasons() {
        let body = json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-6-sol",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": null,
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "now", "arguments": ""}}
                ]}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        });
        let c = parse_completion(body.to_string().as_bytes(), &openai("gpt-6-sol")).unwrap();
        assert!(matches!(c.finish_reason, FinishReason::ToolCalls));
        assert_eq!(c.message.content, "");
        assert_eq!(c.message.tool_calls.len(), 2);
        assert_eq!(c.message.tool_calls[0].arguments, "{\"city\":\"Paris\"}");
        assert_eq!(c.message.tool_calls[1].arguments, "{}");

        let refusal = json!({"model": "gpt-6-sol", "choices": [{"index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": null, "refusal": "I can't help with that."}}]});
        let c = parse_completion(refusal.to_string().as_bytes(), &openai("gpt-6-sol")).unwrap();
        assert_eq!(c.message.content, "I can't help with that.");
        assert!(matches!(c.finish_reason, FinishReason::ContentFilter));
        assert_eq!(c.usage.cost_micro_usd, 0);

        for (reason, expected) in [
            (Some("length"), FinishReason::Length),
            (Some("content_filter"), FinishReason::ContentFilter),
            (Some("function_call"), FinishReason::ToolCalls),
            (Some("stop"), FinishReason::Stop),
            (Some("something_new"), FinishReason::Stop),
            (None, FinishReason::Stop),
        ] {
            assert_eq!(
                std::mem::discriminant(&finish_reason(reason)),
                std::mem::discriminant(&expected)
            );
        }
    }

    #[test]
    fn malformed_completions() {
        let call = openai("gpt-6-luna");
        for body in [
            "not json",
            r#"{"choices": "x"}"#,
            r#"{"model": "gpt-6-luna", "choices": []}"#,
        ] {
            assert!(
                matches!(
                    parse_completion(body.as_bytes(), &call),
                    Err(ModelError::MalformedResponse(m)) if m.starts_with("OpenAI API answered")
                ),
                "{body}"
            );
        }
        assert!(matches!(
            parse_completion(b"not json", &call),
            Err(ModelError::MalformedResponse(m))
                if m.contains("not a chat completion") && m.ends_with(": not json")
        ));
        assert!(matches!(
            parse_embeddings(b"<html>", &call, 1),
            Err(ModelError::MalformedResponse(m))
                if m.contains("not an embeddings list") && m.ends_with(": <html>")
        ));
    }

    fn feed(decoder: &mut StreamDecoder, data: &[Value]) -> Vec<Delta> {
        data.iter()
            .filter_map(|d| decoder.push(&d.to_string()).unwrap())
            .collect()
    }

    fn chunk(delta: Value, finish: Option<&str>) -> Value {
        json!({
            "id": "chatcmpl-123", "object": "chat.completion.chunk", "created": 1694268190,
            "model": "gpt-6-luna-2026-09-22", "system_fingerprint": "fp_44709d6fcb",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
            "usage": null
        })
    }

    fn usage_chunk() -> Value {
        json!({
            "id": "chatcmpl-123", "object": "chat.completion.chunk", "created": 1694268190,
            "model": "gpt-6-luna-2026-09-22", "choices": [],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
                      "prompt_tokens_details": {"cached_tokens": 0}}
        })
    }

    #[test]
    fn stream_of_text_ends_with_finish_and_usage() {
        let mut d = StreamDecoder::new(openai("gpt-6-luna"));
        let deltas = feed(
            &mut d,
            &[
                chunk(
                    json!({"role": "assistant", "content": "", "refusal": null}),
                    None,
                ),
                chunk(json!({"content": "Hello"}), None),
                chunk(json!({"content": " world"}), None),
                chunk(json!({}), Some("stop")),
                usage_chunk(),
            ],
        );
        let texts: Vec<&str> = deltas.iter().map(|d| d.content.as_str()).collect();
        assert_eq!(texts, ["Hello", " world"]);
        assert!(
            deltas
                .iter()
                .all(|d| d.finish_reason.is_none() && d.usage.is_none())
        );
        assert!(!d.finished());
        let last = d.push("[DONE]").unwrap().unwrap();
        assert!(d.finished());
        assert!(matches!(last.finish_reason, Some(FinishReason::Stop)));
        let usage = last.usage.unwrap();
        assert_eq!((usage.input_tokens, usage.output_tokens), (100, 20));
        // 100 × 0.10 + 20 × 0.50 micro-dollars.
        assert_eq!(usage.cost_micro_usd, 20);
        assert!(d.push("[DONE]").unwrap().is_none());
    }

    #[test]
    fn stream_tool_calls_are_emitted_whole() {
        let mut d = StreamDecoder::new(openai("gpt-6-sol"));
        let first = |index: u32, id: &str, name: &str| {
            chunk(
                json!({"tool_calls": [{"index": index, "id": id, "type": "function",
                                       "function": {"name": name, "arguments": ""}}]}),
                None,
            )
        };
        let args = |index: u32, text: &str| {
            chunk(
                json!({"tool_calls": [{"index": index, "function": {"arguments": text}}]}),
                None,
            )
        };
        let deltas = feed(
            &mut d,
            &[
                chunk(json!({"role": "assistant", "content": null}), None),
                first(0, "call_1", "get_weather"),
                args(0, "{\"ci"),
                args(0, "ty\": \"Paris\"}"),
            ],
        );
        assert!(deltas.is_empty(), "nothing is whole yet");
        // The second call starting completes the first.
        let deltas = feed(&mut d, &[first(1, "call_2", "get_time"), args(1, "{}")]);
        assert_eq!(deltas.len(), 1);
        assert_eq!(deltas[0].tool_calls[0].id, "call_1");
        assert_eq!(deltas[0].tool_calls[0].arguments, "{\"city\": \"Paris\"}");
        // finish_reason completes the rest.
        let deltas = feed(&mut d, &[chunk(json!({}), Some("tool_calls"))]);
        assert_eq!(deltas[0].tool_calls[0].name, "get_time");
        let last = d.push("[DONE]").unwrap().unwrap();
        assert!(last.tool_calls.is_empty());
        assert!(matches!(last.finish_reason, Some(FinishReason::ToolCalls)));
        // Without the usage chunk the usage is zero, not missing.
        assert_eq!(last.usage.unwrap().input_tokens, 0);
    }

    #[test]
    fn broken_tool_calls_in_a_stream_are_malformed() {
        let mut d = StreamDecoder::new(openai("gpt-6-sol"));
        feed(
            &mut d,
            &[chunk(
                json!({"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f", "arguments": "{\"a\":"}}]}),
                None,
            )],
        );
        assert!(matches!(
            d.push(&chunk(json!({}), Some("tool_calls")).to_string()),
            Err(ModelError::MalformedResponse(_))
        ));
        let mut d = StreamDecoder::new(openai("gpt-6-sol"));
        feed(
            &mut d,
            &[chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}),
                None,
            )],
        );
        assert!(matches!(
            d.push("[DONE]"),
            Err(ModelError::MalformedResponse(_))
        ));
    }

    #[test]
    fn azure_filter_chunks_and_refusals() {
        let mut d = StreamDecoder::new(azure("chat"));
        let prompt_filter = json!({"choices": [], "created": 0, "id": "", "model": "",
            "object": "", "prompt_filter_results": [{"prompt_index": 0,
            "content_filter_results": {"hate": {"filtered": false, "severity": "safe"}}}]});
        let filter_only = json!({"choices": [{"index": 0, "finish_reason": null,
            "content_filter_results": {"hate": {"filtered": false, "severity": "safe"}}}],
            "model": "gpt-6-luna"});
        let deltas = feed(
            &mut d,
            &[
                prompt_filter,
                filter_only,
                chunk(json!({"content": "Hi"}), None),
                chunk(json!({}), Some("content_filter")),
            ],
        );
        assert_eq!(deltas.len(), 1);
        let last = d.push("[DONE]").unwrap().unwrap();
        assert!(matches!(
            last.finish_reason,
            Some(FinishReason::ContentFilter)
        ));

        let mut d = StreamDecoder::new(openai("gpt-6-sol"));
        let deltas = feed(
            &mut d,
            &[
                chunk(json!({"refusal": "I can't"}), None),
                chunk(json!({"refusal": " help."}), Some("stop")),
            ],
        );
        assert_eq!(deltas.len(), 2);
        let last = d.push("[DONE]").unwrap().unwrap();
        assert!(matches!(
            last.finish_reason,
            Some(FinishReason::ContentFilter)
        ));
    }

    #[test]
    fn stream_errors_and_cuts_are_never_silent() {
        let mut d = StreamDecoder::new(openai("gpt-6-luna"));
        assert!(matches!(d.cut_off(), ModelError::MalformedResponse(_)));
        feed(&mut d, &[chunk(json!({"content": "Hel"}), None)]);
        assert!(matches!(d.cut_off(), ModelError::Upstream(_)));
        let error = json!({"error": {"message": "The server had an error while processing your request.",
            "type": "server_error", "param": null, "code": null}});
        assert!(matches!(
            d.push(&error.to_string()),
            Err(ModelError::Upstream(m)) if m.contains("server had an error")
        ));
        let limited = json!({"error": {"message": "Rate limit reached", "type": "requests",
            "param": null, "code": "rate_limit_exceeded"}});
        assert!(matches!(
            d.push(&limited.to_string()),
            Err(ModelError::RateLimited(None))
        ));
        let filtered = json!({"error": {"message": "The response was filtered", "type": null,
            "param": "prompt", "code": "content_filter", "status": 400}});
        assert!(matches!(
            d.push(&filtered.to_string()),
            Err(ModelError::ContentFiltered(_))
        ));
        assert!(matches!(
            d.push("{oops"),
            Err(ModelError::MalformedResponse(_))
        ));
    }

    #[test]
    fn embeddings_round_trip() {
        let call = openai("text-embedding-3-small");
        let inputs = vec!["a".to_owned(), "b".to_owned()];
        let body = build_embeddings_request(&inputs, &call).unwrap();
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            json!({"model": "text-embedding-3-small", "input": ["a", "b"], "encoding_format": "float"})
        );
        let response = json!({
            "object": "list",
            "data": [
                {"object": "embedding", "index": 1, "embedding": [0.5, -1.0]},
                {"object": "embedding", "index": 0, "embedding": [0.0023064255, -0.009327292]}
            ],
            "model": "text-embedding-3-small",
            "usage": {"prompt_tokens": 1000, "total_tokens": 1000}
        });
        let e = parse_embeddings(response.to_string().as_bytes(), &call, 2).unwrap();
        assert_eq!(
            e.vectors,
            vec![vec![0.0023064255, -0.009327292], vec![0.5, -1.0]]
        );
        assert_eq!((e.usage.input_tokens, e.usage.cost_micro_usd), (1000, 20));
        assert!(matches!(
            parse_embeddings(response.to_string().as_bytes(), &call, 3),
            Err(ModelError::MalformedResponse(_))
        ));
        let azure_call = azure("embed");
        let e = parse_embeddings(response.to_string().as_bytes(), &azure_call, 2).unwrap();
        assert_eq!(e.model, "embed");
        assert!(no_embeddings(&azure_call).vectors.is_empty());
        assert!(matches!(
            build_embeddings_request(&inputs, &openai("gpt-6-luna")),
            Err(ModelError::BadRequest(_))
        ));
    }

    #[test]
    fn embed_sends_one_request_and_none_for_no_input() {
        let s = settings(&[]);
        let answer = json!({
            "data": [{"object": "embedding", "index": 0, "embedding": [0.5]}],
            "model": "text-embedding-3-small",
            "usage": {"prompt_tokens": 3, "total_tokens": 3}
        });
        let mut sent = Vec::new();
        let e = embed(
            &s,
            "text-embedding-3-small",
            &["hi".to_owned()],
            &mut |post| {
                sent.push(post.clone());
                Ok(answer.to_string().into_bytes())
            },
        )
        .unwrap();
        assert_eq!(e.vectors, vec![vec![0.5]]);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].url, "https://api.openai.com/v1/embeddings");
        assert_eq!(sent[0].json_body().unwrap()["input"], json!(["hi"]));
        let mut sends = 0;
        let none = embed(&s, "text-embedding-3-small", &[], &mut |_| {
            sends += 1;
            Ok(Vec::new())
        })
        .unwrap();
        assert!(none.vectors.is_empty() && sends == 0);
        // A chat model is refused before anything is sent, even for no input.
        assert!(matches!(
            embed(&s, "gpt-6-luna", &[], &mut |_| Ok(Vec::new())),
            Err(ModelError::BadRequest(_))
        ));
    }

    fn error_body(code: Option<&str>, kind: &str, message: &str) -> Vec<u8> {
        json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn http_errors_map_by_status_and_code() {
        let api = openai("x").api;
        let plain = error_body(
            None,
            "invalid_request_error",
            "Unrecognized request argument",
        );
        let kind = |e: ModelError| format!("{e:?}").replace("ModelError::", "");
        let cases: Vec<(u16, Vec<u8>, &str)> = vec![
            (
                429,
                error_body(Some("rate_limit_exceeded"), "requests", "Rate limit reached"),
                "RateLimited(Some(1500))",
            ),
            (
                429,
                error_body(Some("insufficient_quota"), "insufficient_quota", "You exceeded your current quota"),
                "Auth",
            ),
            (503, b"<html>busy</html>".to_vec(), "Overloaded"),
            (529, plain.clone(), "Overloaded"),
            (500, error_body(None, "server_error", "oops"), "Upstream"),
            (502, b"bad gateway".to_vec(), "Upstream"),
            (504, Vec::new(), "Upstream"),
            (401, error_body(Some("invalid_api_key"), "invalid_request_error", "Incorrect API key provided"), "Auth"),
            (403, plain.clone(), "Auth"),
            (400, plain.clone(), "BadRequest"),
            (404, b"Not Found".to_vec(), "BadRequest"),
            (422, plain.clone(), "BadRequest"),
            (408, Vec::new(), "Timeout"),
            (
                400,
                error_body(
                    Some("context_length_exceeded"),
                    "invalid_request_error",
                    "This model's maximum context length is 1050000 tokens.",
                ),
                "ContextLengthExceeded",
            ),
            (
                400,
                json!({"error": {"message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.",
                    "type": null, "param": "prompt", "code": "content_filter", "status": 400,
                    "innererror": {"code": "ResponsibleAIPolicyViolation",
                        "content_filter_result": {"hate": {"filtered": true, "severity": "high"}}}}})
                .to_string()
                .into_bytes(),
                "ContentFiltered",
            ),
            (
                400,
                error_body(Some("invalid_prompt"), "invalid_request_error", "Invalid prompt: flagged"),
                "ContentFiltered",
            ),
            (409, plain.clone(), "BadRequest"),
            (418, b"teapot".to_vec(), "MalformedResponse"),
        ];
        for (status, body, expected) in cases {
            let e = http_error(&api, status, Some(1500), &body);
            assert!(kind(e.clone()).starts_with(expected), "{status}: {e:?}");
        }
        // The upstream's message is carried.
        match http_error(&api, 400, None, &plain) {
            ModelError::BadRequest(m) => {
                assert!(
                    m.contains("HTTP 400") && m.contains("Unrecognized request argument"),
                    "{m}"
                );
            }
            other => panic!("{other:?}"),
        }
        // Azure sends numeric codes.
        let azure_429 = br#"{"error": {"code": "429", "message": "Rate limit is exceeded. Try again in 5 seconds."}}"#;
        assert!(matches!(
            http_error(&azure("chat").api, 429, None, azure_429),
            ModelError::RateLimited(None)
        ));
    }

    #[test]
    fn retry_delays_from_headers() {
        let headers = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let now = 784_111_777; // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(
            retry_after_ms(headers(&[("retry-after-ms", "250")]), now),
            Some(250)
        );
        assert_eq!(
            retry_after_ms(
                headers(&[("retry-after-ms", "12.4"), ("retry-after", "9")]),
                now
            ),
            Some(12)
        );
        assert_eq!(
            retry_after_ms(headers(&[("retry-after", "20")]), now),
            Some(20_000)
        );
        assert_eq!(
            retry_after_ms(headers(&[("retry-after", "0.5")]), now),
            Some(500)
        );
        assert_eq!(
            retry_after_ms(
                headers(&[("retry-after", "Sun, 06 Nov 1994 08:50:07 GMT")]),
                now
            ),
            Some(30_000)
        );
        assert_eq!(
            retry_after_ms(
                headers(&[("retry-after", "Sun, 06 Nov 1994 08:00:00 GMT")]),
                now
            ),
            Some(0)
        );
        assert_eq!(
            retry_after_ms(
                headers(&[
                    ("x-ratelimit-remaining-requests", "0"),
                    ("x-ratelimit-reset-requests", "1m2.5s"),
                    ("x-ratelimit-remaining-tokens", "120"),
                    ("x-ratelimit-reset-tokens", "6m0s"),
                ]),
                now
            ),
            Some(62_500)
        );
        assert_eq!(
            retry_after_ms(
                headers(&[
                    ("x-ratelimit-remaining-tokens", "0"),
                    ("x-ratelimit-reset-tokens", "20ms"),
                ]),
                now
            ),
            Some(20)
        );
        assert_eq!(
            retry_after_ms(headers(&[("retry-after", "soon")]), now),
            None
        );
        assert_eq!(retry_after_ms(headers(&[]), now), None);
        assert_eq!(duration_ms("1h"), Some(3_600_000));
        assert_eq!(duration_ms("5x"), None);
        assert_eq!(duration_ms("s"), None);
    }

    #[test]
    fn transport_and_key_errors() {
        let api = azure("chat").api;
        let denied = api
            .upstream
            .transport_error(&HttpError::Code(ErrorCode::HttpRequestDenied));
        match denied {
            ModelError::AccessDenied(m) => {
                assert!(m.contains("https://contoso.openai.azure.com"), "{m}");
                assert!(
                    m.contains("keys = [\"azure-openai\"]") && m.contains("platform.toml"),
                    "{m}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            api.upstream
                .transport_error(&HttpError::Code(ErrorCode::DestinationIpProhibited)),
            ModelError::AccessDenied(_)
        ));
        assert!(matches!(
            api.upstream
                .transport_error(&HttpError::Code(ErrorCode::ConnectionTimeout)),
            ModelError::Timeout(_)
        ));
        assert!(matches!(
            api.upstream
                .transport_error(&HttpError::Stream("HttpResponseTimeout".into())),
            ModelError::Timeout(_)
        ));
        assert!(matches!(
            api.upstream
                .transport_error(&HttpError::Stream("HttpResponseBodySize(None)".into())),
            ModelError::Upstream(_)
        ));
        assert!(matches!(
            api.upstream
                .transport_error(&HttpError::Stream("read timeout".into())),
            ModelError::Timeout(_)
        ));
        assert!(matches!(
            api.upstream
                .transport_error(&HttpError::Code(ErrorCode::ConnectionRefused)),
            ModelError::Upstream(_)
        ));
        assert!(matches!(
            api.upstream
                .transport_error(&HttpError::Invalid("bad".into())),
            ModelError::BadRequest(_)
        ));
        match api
            .upstream
            .key_error(KeyError::NotGranted("azure-openai/default".into()))
        {
            ModelError::Auth(m) => assert!(m.contains("not granted") && m.contains("Azure"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}
