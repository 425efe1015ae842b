//! Pure mapping between the platform's model types and the Anthropic wire
//! format: requests, responses, stream events and errors. Nothing here does
//! I/O, so all of it is unit-tested natively.

use std::collections::BTreeMap;

use convergio_sdk::log::Level;
use convergio_sdk::provider::{
    self, Completion, Delta, EventDecoder, FinishReason, Message, ModelError, Post,
    ProviderRequest, Role, ToolCall, ToolDefinition, Usage, excerpt, retry_after_ms,
};
use convergio_sdk::sse::SseEvent;
use serde_json::Value;

use crate::config::Settings;
use crate::models::{self, Tokens};
use crate::wire::{
    ApiError, BlockDelta, ErrorBody, MessagesRequest, MessagesResponse, RequestBlock,
    RequestMessage, ResponseBlock, StreamEvent, Tool, WireRole, WireUsage,
};

/// The provider id, the prefix of `provider/model` names.
pub const PROVIDER_ID: &str = "anthropic";

/// What a JSON-mode request adds to the system prompt: the Messages API has
/// no JSON-mode flag, and current models refuse an assistant prefill.
pub const JSON_MODE_INSTRUCTION: &str = "Answer with one valid JSON value and nothing else: no \
     prose before or after it and no Markdown code fences.";

/// The Messages API request for `request` with `settings`: the body of
/// [`build_request`], the `anthropic-version` header, and a warning naming
/// the settings left out.
pub fn chat(
    settings: &Settings,
    request: &ProviderRequest,
    stream: bool,
) -> Result<Post, ModelError> {
    let (body, dropped) = build_request(request, settings.default_max_tokens, stream)?;
    let post = Post::json(settings.messages_url(), &body)?
        .header("anthropic-version", &settings.api_version);
    if dropped.is_empty() {
        return Ok(post);
    }
    Ok(post.note(
        Level::Warn,
        format!(
            "anthropic/{} does not accept {}: left out of the request",
            request.model,
            dropped.join(", ")
        ),
    ))
}

/// The wire request for `request`, and the names of the settings left out
/// because the model does not accept them (for a log line).
///
/// `default_max_tokens` applies when the request sets no `max-tokens`,
/// capped by the model's maximum output when the model is declared.
pub fn build_request(
    request: &ProviderRequest,
    default_max_tokens: u32,
    stream: bool,
) -> Result<(MessagesRequest, Vec<&'static str>), ModelError> {
    let spec = models::find(&request.model);
    let mut system = Vec::new();
    let mut messages: Vec<RequestMessage> = Vec::new();
    for message in &request.messages {
        match message.role {
            Role::System => {
                if has_text(&message.content) {
                    system.push(message.content.clone());
                }
            }
            Role::User => push(&mut messages, WireRole::User, text_blocks(&message.content)),
            Role::Assistant => {
                let mut blocks = text_blocks(&message.content);
                for call in &message.tool_calls {
                    blocks.push(RequestBlock::ToolUse {
                        id: call.id.clone(),
                        name: call.name.clone(),
                        input: provider::tool_call_arguments(call)?,
                    });
                }
                push(&mut messages, WireRole::Assistant, blocks);
            }
            Role::Tool => {
                let Some(id) = message.tool_call_id.clone() else {
                    return Err(ModelError::BadRequest(
                        "a message of role `tool` has no `tool-call-id`: Anthropic needs the id \
                         of the tool call it answers"
                            .to_owned(),
                    ));
                };
                let result = RequestBlock::ToolResult {
                    tool_use_id: id,
                    content: Some(message.content.clone()).filter(|c| !c.is_empty()),
                };
                push(&mut messages, WireRole::User, vec![result]);
            }
        }
    }
    if messages.is_empty() {
        return Err(ModelError::BadRequest(
            "the request has no user or assistant message with content".to_owned(),
        ));
    }
    // In a user turn the API wants the tool results before any text.
    for message in &mut messages {
        if message.role == WireRole::User {
            message
                .content
                .sort_by_key(|b| !matches!(b, RequestBlock::ToolResult { .. }));
        }
    }
    // A schema goes to the API's structured output; plain JSON mode (which
    // the API does not have) is an instruction.
    let output_config = match &request.format {
        provider::ResponseFormat::Text => None,
        provider::ResponseFormat::JsonObject => {
            system.push(JSON_MODE_INSTRUCTION.to_owned());
            None
        }
        provider::ResponseFormat::JsonSchema(schema) => {
            let schema: Value = serde_json::from_str(schema).map_err(|e| {
                ModelError::BadRequest(format!(
                    "the response format's JSON Schema is not JSON: {e}"
                ))
            })?;
            Some(serde_json::json!({"format": {"type": "json_schema", "schema": schema}}))
        }
    };

    let sampling = &request.sampling;
    let mut dropped = Vec::new();
    let accepts_sampling = spec.is_none_or(|m| m.api.sampling);
    let temperature = keep(
        sampling.temperature,
        "temperature",
        accepts_sampling,
        &mut dropped,
    );
    let top_p = keep(sampling.top_p, "top-p", accepts_sampling, &mut dropped);
    let top_k = keep(sampling.top_k, "top-k", accepts_sampling, &mut dropped);
    if sampling.seed.is_some() {
        dropped.push("seed");
    }
    let max_tokens = sampling.max_tokens.unwrap_or_else(|| {
        spec.and_then(|m| m.max_output_tokens)
            .map_or(default_max_tokens, |max| default_max_tokens.min(max))
    });

    let tools = request
        .tools
        .iter()
        .map(tool)
        .collect::<Result<Vec<_>, _>>()?;
    let body = MessagesRequest {
        model: request.model.clone(),
        max_tokens,
        system: Some(system.join("\n\n")).filter(|s| !s.is_empty()),
        messages,
        tools,
        stop_sequences: sampling.stop.clone(),
        temperature,
        top_p,
        top_k,
        stream,
        output_config,
    };
    Ok((body, dropped))
}

/// `value` if the model accepts it; else `None`, and `name` noted as dropped.
fn keep<T>(
    value: Option<T>,
    name: &'static str,
    accepted: bool,
    dropped: &mut Vec<&'static str>,
) -> Option<T> {
    if value.is_some() && !accepted {
        dropped.push(name);
        return None;
    }
    value
}

fn has_text(text: &str) -> bool {
    !text.trim().is_empty()
}

/// A text block, or none: the API refuses blank text blocks.
fn text_blocks(text: &str) -> Vec<RequestBlock> {
    if has_text(text) {
        vec![RequestBlock::Text {
            text: text.to_owned(),
        }]
    } else {
        Vec::new()
    }
}

/// Append `blocks` as a turn of `role`, merged into the previous turn if it
/// has the same role: the API wants user and assistant turns to alternate.
fn push(messages: &mut Vec<RequestMessage>, role: WireRole, blocks: Vec<RequestBlock>) {
    if blocks.is_empty() {
        return;
    }
    match messages.last_mut() {
        Some(last) if last.role == role => last.content.extend(blocks),
        _ => messages.push(RequestMessage {
            role,
            content: blocks,
        }),
    }
}

fn tool(definition: &ToolDefinition) -> Result<Tool, ModelError> {
    let input_schema = provider::tool_parameters(definition)?;
    Ok(Tool {
        name: definition.name.clone(),
        description: Some(definition.description.clone()).filter(|d| !d.is_empty()),
        input_schema,
    })
}

/// The completion in a successful non-streamed response body.
pub fn parse_completion(body: &[u8], request_model: &str) -> Result<Completion, ModelError> {
    let response: MessagesResponse = provider::parse_response(body).map_err(|e| match e {
        // Say whose answer it was and what it looked like.
        ModelError::MalformedResponse(why) => ModelError::MalformedResponse(format!(
            "Anthropic API answered with a body that is not a message ({why}): {}",
            excerpt(body)
        )),
        other => other,
    })?;
    let model = response
        .model
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| request_model.to_owned());
    let mut content = String::new();
    let mut tool_calls = Vec::new();
    for block in response.content {
        match block {
            ResponseBlock::Text { text } => content.push_str(&text),
            ResponseBlock::ToolUse { id, name, input } => tool_calls.push(ToolCall {
                id,
                name,
                arguments: arguments(&input),
            }),
            ResponseBlock::Other => {}
        }
    }
    let usage = usage(&tokens(&response.usage), &model, request_model);
    Ok(Completion {
        provider: PROVIDER_ID.to_owned(),
        model,
        message: Message {
            role: Role::Assistant,
            content,
            tool_calls,
            tool_call_id: None,
        },
        finish_reason: finish_reason(response.stop_reason.as_deref()),
        usage,
    })
}

/// A tool call's `input` as JSON object text.
fn arguments(input: &Value) -> String {
    match input {
        Value::Null => "{}".to_owned(),
        other => other.to_string(),
    }
}

/// Why generation ended, from `stop_reason`.
pub fn finish_reason(stop_reason: Option<&str>) -> FinishReason {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => FinishReason::Length,
        Some("tool_use") => FinishReason::ToolCalls,
        Some("refusal") => FinishReason::ContentFilter,
        // `end_turn`, `stop_sequence`, `pause_turn` (server tools, never
        // requested here) and values newer than this adapter.
        _ => FinishReason::Stop,
    }
}

fn tokens(usage: &WireUsage) -> Tokens {
    Tokens {
        input: usage.input_tokens.unwrap_or(0),
        cache_write: usage.cache_creation_input_tokens.unwrap_or(0),
        cache_read: usage.cache_read_input_tokens.unwrap_or(0),
        output: usage.output_tokens.unwrap_or(0),
    }
}

/// Usage with its cost, priced as the answering model if it is declared,
/// else as the requested one (0 if neither is).
fn usage(tokens: &Tokens, model: &str, request_model: &str) -> Usage {
    let priced = if models::find(model).is_some() {
        model
    } else {
        request_model
    };
    Usage::new(
        tokens.total_input(),
        tokens.output,
        models::cost_micro_usd(priced, tokens),
    )
}

/// `embed` on a provider without an embeddings API.
pub fn no_embeddings(model: &str) -> ModelError {
    ModelError::BadRequest(format!(
        "anthropic/{model}: Anthropic has no embeddings API; route embeddings to a provider \
         that has one (e.g. openai, gemini or a local model)"
    ))
}

/// The error of a response with a status other than 2xx.
///
/// The status decides the variant; the documented error body (`{"type":
/// "error", "error": {"type", "message"}}`) supplies the message and tells a
/// prompt that is too long or filtered content from other bad requests.
/// `retry_after` is the `retry-after` header; `now` the Unix time in seconds
/// (for a header given as an HTTP date).
pub fn http_error(status: u16, retry_after: Option<&str>, body: &[u8], now: u64) -> ModelError {
    let api = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .map(|b| b.error);
    let message = match &api {
        Some(e) => format!(
            "Anthropic API answered HTTP {status}: {}: {}",
            e.kind, e.message
        ),
        None => format!(
            "Anthropic API answered HTTP {status} with a body that is not its error format: {}",
            excerpt(body)
        ),
    };
    match (status, &api) {
        (429, _) => ModelError::RateLimited(retry_after.and_then(|v| retry_after_ms(v, now))),
        (503 | 529, _) => ModelError::Overloaded(message),
        (401 | 403, _) => ModelError::Auth(message),
        (400 | 404 | 413 | 422, Some(e)) => invalid_request(&e.message, message),
        (400 | 404 | 413 | 422, None) => ModelError::BadRequest(message),
        (504, _) => ModelError::Timeout(message),
        (500..=599, Some(e)) if e.kind == "timeout_error" => ModelError::Timeout(message),
        (500..=599, _) => ModelError::Upstream(message),
        (_, Some(e)) => by_kind(e, message),
        (_, None) => ModelError::MalformedResponse(message),
    }
}

/// The error of an `error` event in a stream (which arrives after HTTP 200).
pub fn stream_error(error: &ApiError) -> ModelError {
    by_kind(
        error,
        format!(
            "Anthropic API stream error: {}: {}",
            error.kind, error.message
        ),
    )
}

/// Map by the documented error `type`.
fn by_kind(error: &ApiError, message: String) -> ModelError {
    match error.kind.as_str() {
        "overloaded_error" => ModelError::Overloaded(message),
        "rate_limit_error" => ModelError::RateLimited(None),
        "timeout_error" => ModelError::Timeout(message),
        "authentication_error" | "permission_error" | "billing_error" => ModelError::Auth(message),
        "invalid_request_error" | "not_found_error" | "request_too_large" => {
            invalid_request(&error.message, message)
        }
        // `api_error` and types newer than this adapter.
        _ => ModelError::Upstream(message),
    }
}

/// A request the API refused: too long, filtered, or otherwise wrong.
fn invalid_request(api_message: &str, message: String) -> ModelError {
    let lower = api_message.to_ascii_lowercase();
    if lower.contains("prompt is too long")
        || lower.contains("context limit")
        || lower.contains("context window")
    {
        ModelError::ContextLengthExceeded(message)
    } else if lower.contains("content filtering policy") || lower.contains("content policy") {
        ModelError::ContentFiltered(message)
    } else {
        ModelError::BadRequest(message)
    }
}

/// Turns the events of a streamed response into deltas: text as it comes,
/// each tool call once its input JSON is complete (at `content_block_stop`),
/// and a last delta with the finish reason and usage at `message_stop`.
#[derive(Debug, Clone, Default)]
pub struct StreamDecoder {
    request_model: String,
    response_model: Option<String>,
    usage: WireUsage,
    stop_reason: Option<String>,
    /// Tool calls whose input is still arriving, by content block index.
    tools: BTreeMap<u32, PendingTool>,
    started: bool,
    finished: bool,
}

#[derive(Debug, Clone)]
struct PendingTool {
    id: String,
    name: String,
    /// The input given in `content_block_start` (normally `{}`).
    initial: Value,
    /// The concatenated `partial_json` of its `input_json_delta` events.
    json: String,
}

impl StreamDecoder {
    /// A decoder for a request of `request_model`.
    pub fn new(request_model: &str) -> Self {
        Self {
            request_model: request_model.to_owned(),
            ..Self::default()
        }
    }

    /// Whether `message_stop` has arrived: nothing follows.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// Feed one event (its SSE `event:` name and `data:`); returns the delta
    /// it completes, if any.
    pub fn push(&mut self, name: Option<&str>, data: &str) -> Result<Option<Delta>, ModelError> {
        if self.finished {
            return Ok(None);
        }
        let event: StreamEvent = serde_json::from_str(data).map_err(|e| {
            ModelError::MalformedResponse(format!(
                "Anthropic API stream event `{}` is not in its documented format: {e}",
                name.unwrap_or("message")
            ))
        })?;
        match event {
            StreamEvent::MessageStart { message } => {
                self.started = true;
                self.response_model = message.model.filter(|m| !m.is_empty());
                merge(&mut self.usage, &message.usage);
                Ok(None)
            }
            StreamEvent::ContentBlockStart {
                index,
                content_block,
            } => match content_block {
                ResponseBlock::Text { text } => Ok(text_delta(text)),
                ResponseBlock::ToolUse { id, name, input } => {
                    self.tools.insert(
                        index,
                        PendingTool {
                            id,
                            name,
                            initial: input,
                            json: String::new(),
                        },
                    );
                    Ok(None)
                }
                ResponseBlock::Other => Ok(None),
            },
            StreamEvent::ContentBlockDelta { index, delta } => match delta {
                BlockDelta::TextDelta { text } => Ok(text_delta(text)),
                BlockDelta::InputJsonDelta { partial_json } => match self.tools.get_mut(&index) {
                    Some(tool) => {
                        tool.json.push_str(&partial_json);
                        Ok(None)
                    }
                    None => Err(ModelError::MalformedResponse(format!(
                        "Anthropic API stream: input_json_delta for content block {index}, \
                         which is not a tool_use block"
                    ))),
                },
                BlockDelta::Other => Ok(None),
            },
            StreamEvent::ContentBlockStop { index } => match self.tools.remove(&index) {
                Some(tool) => Ok(Some(Delta {
                    content: String::new(),
                    tool_calls: vec![tool.finish()?],
                    finish_reason: None,
                    usage: None,
                })),
                None => Ok(None),
            },
            StreamEvent::MessageDelta { delta, usage } => {
                if delta.stop_reason.is_some() {
                    self.stop_reason = delta.stop_reason;
                }
                if let Some(usage) = usage {
                    merge(&mut self.usage, &usage);
                }
                Ok(None)
            }
            StreamEvent::MessageStop => {
                self.finished = true;
                // Tool blocks never stopped are still complete calls if
                // their JSON is whole.
                let tool_calls = std::mem::take(&mut self.tools)
                    .into_values()
                    .map(PendingTool::finish)
                    .collect::<Result<Vec<_>, _>>()?;
                let model = self
                    .response_model
                    .clone()
                    .unwrap_or_else(|| self.request_model.clone());
                Ok(Some(Delta {
                    content: String::new(),
                    tool_calls,
                    finish_reason: Some(finish_reason(self.stop_reason.as_deref())),
                    usage: Some(usage(&tokens(&self.usage), &model, &self.request_model)),
                }))
            }
            StreamEvent::Error { error } => Err(stream_error(&error)),
            StreamEvent::Ping | StreamEvent::Other => Ok(None),
        }
    }

    /// The error for a stream that ended without `message_stop`.
    pub fn cut_off(&self) -> ModelError {
        if self.started {
            ModelError::Upstream(
                "Anthropic API stream ended before message_stop: the connection was cut".to_owned(),
            )
        } else {
            ModelError::MalformedResponse(
                "Anthropic API answered without any message_start event: not a Messages event \
                 stream"
                    .to_owned(),
            )
        }
    }
}

/// The glue of [`convergio_sdk::provider::SseStream`]: each event by its
/// name, and a body that ends before `message_stop` is [`StreamDecoder::cut_off`].
impl EventDecoder for StreamDecoder {
    fn event(&mut self, event: &SseEvent) -> Result<Option<Delta>, ModelError> {
        self.push(event.event.as_deref(), &event.data)
    }

    fn finished(&self) -> bool {
        self.finished
    }

    fn end(&mut self) -> Result<Delta, ModelError> {
        Err(self.cut_off())
    }
}

impl PendingTool {
    fn finish(self) -> Result<ToolCall, ModelError> {
        let arguments = if self.json.trim().is_empty() {
            arguments(&self.initial)
        } else {
            match serde_json::from_str::<Value>(&self.json) {
                Ok(Value::Object(_)) => self.json,
                _ => {
                    return Err(ModelError::MalformedResponse(format!(
                        "Anthropic API stream: the input of tool call `{}` ({}) is not a JSON \
                         object: {}",
                        self.id,
                        self.name,
                        excerpt(self.json.as_bytes())
                    )));
                }
            }
        };
        Ok(ToolCall {
            id: self.id,
            name: self.name,
            arguments,
        })
    }
}

fn text_delta(text: String) -> Option<Delta> {
    (!text.is_empty()).then(|| Delta {
        content: text,
        tool_calls: Vec::new(),
        finish_reason: None,
        usage: None,
    })
}

/// Counts in a later event replace earlier ones (`message_delta` usage is
/// cumulative); counts it leaves out stay.
fn merge(into: &mut WireUsage, from: &WireUsage) {
    let set = |into: &mut Option<u64>, from: Option<u64>| {
        if from.is_some() {
            *into = from;
        }
    };
    set(&mut into.input_tokens, from.input_tokens);
    set(&mut into.output_tokens, from.output_tokens);
    set(
        &mut into.cache_creation_input_tokens,
        from.cache_creation_input_tokens,
    );
    set(
        &mut into.cache_read_input_tokens,
        from.cache_read_input_tokens,
    );
}

#[cfg(test)]
mod tests {
    use convergio_sdk::provider::AdapterSettings as _;
    use convergio_sdk::provider::Sampling;
    use convergio_sdk::provider::testing::{self, request, tool_call as call};
    use convergio_sdk::sse::SseParser;
    use serde_json::json;

    use super::*;

    /// The JSON the component sends (through bytes, as `send` does: f32
    /// sampling values keep their short form).
    fn json_of(body: &MessagesRequest) -> Value {
        serde_json::from_slice(&serde_json::to_vec(body).unwrap()).unwrap()
    }

    fn wire(request: &ProviderRequest) -> Value {
        json_of(&build_request(request, 4096, false).unwrap().0)
    }

    /// The variant name of an error.
    fn variant(err: &ModelError) -> String {
        let debug = format!("{err:?}");
        let debug = debug.strip_prefix("ModelError::").unwrap_or(&debug);
        debug.split('(').next().unwrap_or_default().to_owned()
    }

    /// The message of any variant that has one.
    fn text(err: &ModelError) -> &str {
        match err {
            ModelError::Overloaded(m)
            | ModelError::ContextLengthExceeded(m)
            | ModelError::ContentFiltered(m)
            | ModelError::Auth(m)
            | ModelError::BadRequest(m)
            | ModelError::Upstream(m)
            | ModelError::Timeout(m)
            | ModelError::MalformedResponse(m)
            | ModelError::NoModel(m)
            | ModelError::BudgetExceeded(m)
            | ModelError::AccessDenied(m)
            | ModelError::InvalidOutput(m) => m,
            ModelError::RateLimited(_) => "",
        }
    }

    #[test]
    fn conversation_with_tools_maps_to_the_wire_format() {
        let mut weather = Message::assistant("Let me check.");
        weather.tool_calls = vec![
            call("toolu_01A", "get_weather", r#"{"location": "Paris"}"#),
            call("toolu_01B", "get_time", ""),
        ];
        let mut req = request(
            "claude-sonnet-5-5",
            vec![
                Message::system("You are terse."),
                Message::system("Use metric units."),
                Message::user("What's the weather"),
                Message::user("in Paris?"),
                weather,
                Message::tool_result("toolu_01A", r#"{"temp_c": 18}"#),
                Message::tool_result("toolu_01B", "12:00"),
                Message::user("Thanks, and tomorrow?"),
            ],
        );
        req.tools = vec![ToolDefinition {
            name: "get_weather".into(),
            description: "Current weather of a city".into(),
            parameters: r#"{"type":"object","properties":{"location":{"type":"string"}},"required":["location"]}"#.into(),
        }, ToolDefinition {
            name: "get_time".into(),
            description: String::new(),
            parameters: String::new(),
        }];
        req.sampling.stop = vec!["\n\nHuman:".into()];
        assert_eq!(
            wire(&req),
            json!({
                "model": "claude-sonnet-5-5",
                "max_tokens": 4096,
                "system": "You are terse.\n\nUse metric units.",
                "messages": [
                    {"role": "user", "content": [
                        {"type": "text", "text": "What's the weather"},
                        {"type": "text", "text": "in Paris?"}
                    ]},
                    {"role": "assistant", "content": [
                        {"type": "text", "text": "Let me check."},
                        {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"location": "Paris"}},
                        {"type": "tool_use", "id": "toolu_01B", "name": "get_time", "input": {}}
                    ]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_01A", "content": "{\"temp_c\": 18}"},
                        {"type": "tool_result", "tool_use_id": "toolu_01B", "content": "12:00"},
                        {"type": "text", "text": "Thanks, and tomorrow?"}
                    ]}
                ],
                "tools": [
                    {"name": "get_weather", "description": "Current weather of a city", "input_schema":
                        {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}},
                    {"name": "get_time", "input_schema": {"type": "object", "properties": {}}}
                ],
                "stop_sequences": ["\n\nHuman:"]
            })
        );
    }

    #[test]
    fn tool_results_go_before_text_in_a_user_turn() {
        let mut assistant = Message::assistant("");
        assistant.tool_calls = vec![call("toolu_1", "f", "{}")];
        let req = request(
            "claude-opus-5-5",
            vec![
                Message::user("go"),
                assistant,
                Message::user("also, hurry"),
                Message::tool_result("toolu_1", ""),
            ],
        );
        let body = wire(&req);
        assert_eq!(
            body["messages"][2]["content"],
            json!([
                {"type": "tool_result", "tool_use_id": "toolu_1"},
                {"type": "text", "text": "also, hurry"}
            ])
        );
        // The assistant turn has no blank text block.
        assert_eq!(body["messages"][1]["content"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn streaming_and_json_mode_are_flagged() {
        let mut req = request(
            "claude-haiku-5-5",
            vec![Message::user("List three colours")],
        );
        req.format = provider::ResponseFormat::JsonObject;
        let (body, _) = build_request(&req, 4096, true).unwrap();
        let body = json_of(&body);
        assert_eq!(body["stream"], json!(true));
        assert_eq!(body["system"], json!(JSON_MODE_INSTRUCTION));
        req.messages.insert(0, Message::system("Be brief."));
        let body = wire(&req);
        assert_eq!(
            body["system"],
            json!(format!("Be brief.\n\n{JSON_MODE_INSTRUCTION}"))
        );
        assert!(body.get("stream").is_none());
        assert!(body.get("output_config").is_none());

        // A schema is the API's structured output, with no instruction.
        req.format = provider::ResponseFormat::JsonSchema(r#"{"type":"object"}"#.into());
        let body = wire(&req);
        assert_eq!(
            body["output_config"],
            json!({"format": {"type": "json_schema", "schema": {"type": "object"}}})
        );
        assert_eq!(body["system"], json!("Be brief."));
    }

    #[test]
    fn sampling_goes_only_to_models_that_accept_it() {
        let sampling = Sampling {
            temperature: Some(0.7),
            top_p: Some(0.9),
            top_k: Some(40),
            seed: Some(7),
            max_tokens: Some(256),
            stop: Vec::new(),
        };
        let mut req = request("claude-haiku-4-5", vec![Message::user("hi")]);
        req.sampling = sampling.clone();
        let (body, dropped) = build_request(&req, 4096, false).unwrap();
        let body = json_of(&body);
        assert_eq!(body["temperature"], json!(0.7));
        assert_eq!(body["top_p"], json!(0.9));
        assert_eq!(body["top_k"], json!(40));
        assert_eq!(body["max_tokens"], json!(256));
        assert_eq!(dropped, ["seed"]);

        // An undeclared model gets what was asked: the API decides.
        req.model = "claude-future-9".into();
        let (body, _) = build_request(&req, 4096, false).unwrap();
        assert_eq!(body.temperature, Some(0.7));

        req.model = "claude-opus-5-5".into();
        let (body, dropped) = build_request(&req, 4096, false).unwrap();
        let body = json_of(&body);
        for field in ["temperature", "top_p", "top_k"] {
            assert!(body.get(field).is_none(), "{field} sent");
        }
        assert_eq!(dropped, ["temperature", "top-p", "top-k", "seed"]);
    }

    #[test]
    fn the_post_carries_the_settings_and_notes_what_was_left_out() {
        let settings = Settings::load(testing::config(&[
            ("base-url", "http://127.0.0.1:8080/proxy"),
            ("anthropic-version", "2024-01-01"),
            ("default-max-tokens", "100"),
        ]))
        .unwrap();
        let mut req = request("claude-opus-5-5", vec![Message::user("hi")]);
        let post = chat(&settings, &req, true).unwrap();
        assert_eq!(post.url, "http://127.0.0.1:8080/proxy/v1/messages");
        assert_eq!(
            post.headers,
            [("anthropic-version".to_owned(), "2024-01-01".to_owned())]
        );
        let body = post.json_body().unwrap();
        assert_eq!(
            (body["max_tokens"].clone(), body["stream"].clone()),
            (json!(100), json!(true))
        );
        assert!(post.notes.is_empty());
        req.sampling.temperature = Some(0.5);
        let post = chat(&settings, &req, false).unwrap();
        assert_eq!(post.notes.len(), 1);
        assert_eq!(post.notes[0].0, Level::Warn);
        assert!(
            post.notes[0]
                .1
                .contains("anthropic/claude-opus-5-5 does not accept temperature")
        );
    }

    #[test]
    fn max_tokens_defaults_within_the_model_limit() {
        let req = request("claude-haiku-4-5", vec![Message::user("hi")]);
        assert_eq!(build_request(&req, 4096, false).unwrap().0.max_tokens, 4096);
        // A configured default above the model's maximum output is capped.
        assert_eq!(
            build_request(&req, 100_000, false).unwrap().0.max_tokens,
            64_000
        );
        let unknown = request("claude-next", vec![Message::user("hi")]);
        assert_eq!(
            build_request(&unknown, 100_000, false)
                .unwrap()
                .0
                .max_tokens,
            100_000
        );
        // What the caller asks for is sent as is.
        let mut asked = req.clone();
        asked.sampling.max_tokens = Some(70_000);
        assert_eq!(
            build_request(&asked, 4096, false).unwrap().0.max_tokens,
            70_000
        );
    }

    #[test]
    fn requests_the_api_cannot_take_are_bad_requests() {
        let mut orphan = Message::tool_result("x", "1");
        orphan.tool_call_id = None;
        let mut bad_args = Message::assistant("");
        bad_args.tool_calls = vec![call("toolu_9", "f", "[1, 2]")];
        let mut broken_args = Message::assistant("");
        broken_args.tool_calls = vec![call("toolu_9", "f", "{\"a\":")];
        for (messages, expect) in [
            (vec![orphan], "tool-call-id"),
            (vec![Message::user("go"), bad_args], "not a JSON object"),
            (vec![Message::user("go"), broken_args], "not valid JSON"),
            (
                vec![Message::system("only a system prompt")],
                "no user or assistant",
            ),
            (vec![Message::user("  ")], "no user or assistant"),
        ] {
            let err =
                build_request(&request("claude-opus-5-5", messages), 4096, false).unwrap_err();
            assert!(matches!(err, ModelError::BadRequest(_)), "{err:?}");
            assert!(text(&err).contains(expect), "{err:?}");
        }
        let mut req = request("claude-opus-5-5", vec![Message::user("hi")]);
        req.tools = vec![ToolDefinition {
            name: "f".into(),
            description: String::new(),
            parameters: "true".into(),
        }];
        let err = build_request(&req, 4096, false).unwrap_err();
        assert!(text(&err).contains("tool `f`"), "{err:?}");
    }

    #[test]
    fn response_with_text_tool_use_and_thinking() {
        let body = json!({
            "id": "msg_01Aq9w938a90dw8q",
            "type": "message",
            "role": "assistant",
            "model": "claude-opus-5-5",
            "content": [
                {"type": "thinking", "thinking": "", "signature": "EqQBCgIYAhIM"},
                {"type": "text", "text": "I'll check "},
                {"type": "text", "text": "the weather."},
                {"type": "tool_use", "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "name": "get_weather",
                 "input": {"location": "San Francisco, CA", "unit": "celsius"}}
            ],
            "stop_reason": "tool_use",
            "stop_sequence": null,
            "usage": {"input_tokens": 2095, "output_tokens": 503,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
        });
        let c = parse_completion(body.to_string().as_bytes(), "claude-opus-5-5").unwrap();
        assert_eq!(c.provider, "anthropic");
        assert_eq!(c.model, "claude-opus-5-5");
        assert!(matches!(c.message.role, Role::Assistant));
        assert_eq!(c.message.content, "I'll check the weather.");
        assert_eq!(c.message.tool_calls.len(), 1);
        let tool = &c.message.tool_calls[0];
        assert_eq!(
            (tool.id.as_str(), tool.name.as_str()),
            ("toolu_01T1x1fJ34qAmk2tNTrN7Up6", "get_weather")
        );
        assert_eq!(
            serde_json::from_str::<Value>(&tool.arguments).unwrap(),
            json!({"location": "San Francisco, CA", "unit": "celsius"})
        );
        assert!(matches!(c.finish_reason, FinishReason::ToolCalls));
        assert_eq!((c.usage.input_tokens, c.usage.output_tokens), (2095, 503));
        // 2095 × $4/M + 503 × $20/M = 8380 + 10060 µ$.
        assert_eq!(c.usage.cost_micro_usd, 18_440);
    }

    #[test]
    fn response_usage_counts_cache_and_prices_snapshots() {
        let body = json!({
            "type": "message",
            "model": "claude-haiku-4-5-20251001",
            "content": [{"type": "text", "text": "Hi!"}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 10, "output_tokens": 4,
                      "cache_creation_input_tokens": 100, "cache_read_input_tokens": 1000}
        });
        let c = parse_completion(body.to_string().as_bytes(), "claude-haiku-4-5").unwrap();
        assert_eq!(c.model, "claude-haiku-4-5-20251001");
        assert!(matches!(c.finish_reason, FinishReason::Stop));
        assert_eq!(c.usage.input_tokens, 1110);
        // $1/M: 10 + 100 × 1.25 + 1000 × 0.1 = 235, output 4 × $5/M = 20.
        assert_eq!(c.usage.cost_micro_usd, 255);

        let unknown = json!({"content": [], "stop_reason": "max_tokens", "usage": {"input_tokens": 5, "output_tokens": 5}});
        let c = parse_completion(unknown.to_string().as_bytes(), "claude-next").unwrap();
        assert_eq!(
            (c.model.as_str(), c.usage.cost_micro_usd),
            ("claude-next", 0)
        );
        assert!(matches!(c.finish_reason, FinishReason::Length));
    }

    #[test]
    fn unparseable_responses_are_malformed() {
        for body in [&b"<html>502</html>"[..], b"{\"content\": 3}", b""] {
            let err = parse_completion(body, "claude-opus-5-5").unwrap_err();
            assert!(
                matches!(&err, ModelError::MalformedResponse(m) if m.starts_with("Anthropic API answered with a body that is not a message")),
                "{err:?}"
            );
        }
        let err = parse_completion(b"<html>502</html>", "claude-opus-5-5").unwrap_err();
        assert!(
            matches!(&err, ModelError::MalformedResponse(m) if m.ends_with(": <html>502</html>")),
            "{err:?}"
        );
    }

    #[test]
    fn stop_reasons_map_to_finish_reasons() {
        let cases = [
            (Some("end_turn"), FinishReason::Stop),
            (Some("stop_sequence"), FinishReason::Stop),
            (Some("pause_turn"), FinishReason::Stop),
            (Some("max_tokens"), FinishReason::Length),
            (Some("model_context_window_exceeded"), FinishReason::Length),
            (Some("tool_use"), FinishReason::ToolCalls),
            (Some("refusal"), FinishReason::ContentFilter),
            (Some("something_new"), FinishReason::Stop),
            (None, FinishReason::Stop),
        ];
        for (stop, expected) in cases {
            assert_eq!(
                std::mem::discriminant(&finish_reason(stop)),
                std::mem::discriminant(&expected),
                "{stop:?}"
            );
        }
    }

    fn error_body(kind: &str, message: &str) -> Vec<u8> {
        json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy"})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn http_errors_map_by_status_and_body() {
        let now = 1_700_000_000;
        let cases: Vec<(u16, Vec<u8>, &str)> = vec![
            (
                529,
                error_body("overloaded_error", "Overloaded"),
                "Overloaded",
            ),
            (503, b"upstream connect error".to_vec(), "Overloaded"),
            (
                500,
                error_body("api_error", "Internal server error"),
                "Upstream",
            ),
            (502, b"<html>Bad gateway</html>".to_vec(), "Upstream"),
            (504, Vec::new(), "Timeout"),
            (
                401,
                error_body("authentication_error", "invalid x-api-key"),
                "Auth",
            ),
            (
                403,
                error_body("permission_error", "no access to this model"),
                "Auth",
            ),
            (
                400,
                error_body(
                    "invalid_request_error",
                    "prompt is too long: 1050000 tokens > 1000000 maximum",
                ),
                "ContextLengthExceeded",
            ),
            (
                400,
                error_body(
                    "invalid_request_error",
                    "input length and `max_tokens` exceed context limit: 197000 + 8192 > 200000, decrease input length or `max_tokens` and try again",
                ),
                "ContextLengthExceeded",
            ),
            (
                400,
                error_body(
                    "invalid_request_error",
                    "Output blocked by content filtering policy",
                ),
                "ContentFiltered",
            ),
            (
                400,
                error_body("invalid_request_error", "messages: roles must alternate"),
                "BadRequest",
            ),
            (400, b"not json".to_vec(), "BadRequest"),
            (
                404,
                error_body("not_found_error", "model: claude-nope"),
                "BadRequest",
            ),
            (
                413,
                error_body(
                    "request_too_large",
                    "Request exceeds the maximum allowed number of bytes.",
                ),
                "BadRequest",
            ),
            (422, Vec::new(), "BadRequest"),
            (
                402,
                error_body("billing_error", "credit balance too low"),
                "Auth",
            ),
            (409, error_body("conflict_error", "conflict"), "Upstream"),
            (418, b"teapot".to_vec(), "MalformedResponse"),
        ];
        for (status, body, expected) in cases {
            let err = http_error(status, None, &body, now);
            assert_eq!(variant(&err), expected, "HTTP {status}: {err:?}");
            assert!(text(&err).contains(&format!("HTTP {status}")), "{err:?}");
        }
        // The upstream's message is carried.
        let err = http_error(
            400,
            None,
            &error_body("invalid_request_error", "max_tokens: 200000 > 128000"),
            now,
        );
        assert!(
            text(&err).contains("max_tokens: 200000 > 128000"),
            "{err:?}"
        );
    }

    #[test]
    fn rate_limits_carry_retry_after() {
        let now = 784_111_777; // Sun, 06 Nov 1994 08:49:37 GMT
        let body = error_body(
            "rate_limit_error",
            "Number of request tokens has exceeded your per-minute rate limit",
        );
        let retry = |header| match http_error(429, header, &body, now) {
            ModelError::RateLimited(ms) => ms,
            other => panic!("{other:?}"),
        };
        assert_eq!(retry(Some("30")), Some(30_000));
        assert_eq!(retry(Some("1.5")), Some(1_500));
        assert_eq!(retry(Some("Sun, 06 Nov 1994 08:50:07 GMT")), Some(30_000));
        assert_eq!(retry(Some("Sun, 06 Nov 1994 08:00:00 GMT")), Some(0));
        assert_eq!(retry(Some("soon")), None);
        assert_eq!(retry(None), None);
    }

    #[test]
    fn embeddings_are_refused() {
        let err = no_embeddings("claude-opus-5-5");
        assert!(matches!(err, ModelError::BadRequest(_)));
        assert!(text(&err).contains("no embeddings API"), "{err:?}");
    }

    /// Feed a raw `text/event-stream` body through the SDK's SSE parser and
    /// the decoder; returns the deltas and the error that ended it, if any.
    fn decode(stream: &str, model: &str) -> (Vec<Delta>, Option<ModelError>, StreamDecoder) {
        let mut parser = SseParser::default();
        let mut decoder = StreamDecoder::new(model);
        let mut deltas = Vec::new();
        // Feed in small chunks, as a network would.
        for chunk in stream.as_bytes().chunks(7) {
            for event in parser.push(chunk) {
                match decoder.push(event.event.as_deref(), &event.data) {
                    Ok(Some(delta)) => deltas.push(delta),
                    Ok(None) => {}
                    Err(e) => return (deltas, Some(e), decoder),
                }
            }
        }
        let end = (!decoder.finished()).then(|| decoder.cut_off());
        (deltas, end, decoder)
    }

    /// A streamed answer with text and a tool call, shaped like the
    /// "Streaming request with tool use" example of Anthropic's streaming guide.
    const TOOL_STREAM: &str = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","type":"message","role":"assistant","model":"claude-opus-5-5","stop_sequence":null,"usage":{"input_tokens":472,"output_tokens":2},"content":[],"stop_reason":null}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCgIYAhIM"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Okay"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":", let's check the weather."}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: content_block_start
data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","name":"get_weather","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"location\":"}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":" \"San Francisco, CA\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":2}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}

event: message_stop
data: {"type":"message_stop"}

"#;

    #[test]
    fn stream_with_text_and_tool_use() {
        let (deltas, end, decoder) = decode(TOOL_STREAM, "claude-opus-5-5");
        assert!(end.is_none(), "{end:?}");
        assert!(decoder.finished());
        let contents: Vec<&str> = deltas.iter().map(|d| d.content.as_str()).collect();
        assert_eq!(contents, ["Okay", ", let's check the weather.", "", ""]);
        // The tool call arrives whole, once, at its content_block_stop.
        assert!(
            deltas[..2]
                .iter()
                .all(|d| d.tool_calls.is_empty() && d.finish_reason.is_none())
        );
        let calls = &deltas[2].tool_calls;
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].id, "toolu_01T1x1fJ34qAmk2tNTrN7Up6");
        assert_eq!(calls[0].name, "get_weather");
        assert_eq!(
            serde_json::from_str::<Value>(&calls[0].arguments).unwrap(),
            json!({"location": "San Francisco, CA"})
        );
        assert!(deltas[2].finish_reason.is_none() && deltas[2].usage.is_none());
        // The last delta carries the finish reason and usage.
        let last = &deltas[3];
        assert!(matches!(last.finish_reason, Some(FinishReason::ToolCalls)));
        let usage = last.usage.as_ref().unwrap();
        assert_eq!((usage.input_tokens, usage.output_tokens), (472, 89));
        // 472 × $4/M + 89 × $20/M = 1888 + 1780 µ$.
        assert_eq!(usage.cost_micro_usd, 3_668);
    }

    #[test]
    fn events_after_message_stop_are_ignored() {
        let mut decoder = StreamDecoder::new("claude-opus-5-5");
        for (name, data) in [
            (
                "message_start",
                r#"{"type":"message_start","message":{"model":"claude-opus-5-5","usage":{"input_tokens":3}}}"#,
            ),
            ("message_stop", r#"{"type":"message_stop"}"#),
        ] {
            decoder.push(Some(name), data).unwrap();
        }
        assert!(decoder.finished());
        let after = decoder.push(Some("content_block_delta"), r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"late"}}"#);
        assert!(matches!(after, Ok(None)));
    }

    #[test]
    fn tool_call_without_input_deltas_has_empty_object_arguments() {
        let stream = concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-haiku-5-5\",\"usage\":{\"input_tokens\":10,\"output_tokens\":1}}}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_x\",\"name\":\"now\",\"input\":{}}}\n\n",
            "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":12}}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        );
        let (deltas, end, _) = decode(stream, "claude-haiku-5-5");
        assert!(end.is_none(), "{end:?}");
        assert_eq!(deltas[0].tool_calls[0].arguments, "{}");
        let usage = deltas[1].usage.as_ref().unwrap();
        assert_eq!((usage.input_tokens, usage.output_tokens), (10, 12));
        // 10 × $0.10/M + 12 × $0.50/M = 1 + 6 µ$.
        assert_eq!(usage.cost_micro_usd, 7);
    }

    #[test]
    fn error_event_ends_the_stream_with_its_error() {
        let stream = concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-opus-5-5\",\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hel\"}}\n\n",
            "event: error\ndata: {\"type\": \"error\", \"error\": {\"type\": \"overloaded_error\", \"message\": \"Overloaded\"}}\n\n",
        );
        let (deltas, end, _) = decode(stream, "claude-opus-5-5");
        assert_eq!(deltas.len(), 1);
        let err = end.unwrap();
        assert!(matches!(err, ModelError::Overloaded(_)), "{err:?}");
        assert!(text(&err).contains("Overloaded"));

        for (kind, expected) in [
            ("rate_limit_error", "RateLimited"),
            ("api_error", "Upstream"),
            ("invalid_request_error", "BadRequest"),
            ("authentication_error", "Auth"),
        ] {
            let err = stream_error(&ApiError {
                kind: kind.into(),
                message: "m".into(),
            });
            assert_eq!(variant(&err), expected, "{kind}: {err:?}");
        }
    }

    #[test]
    fn a_cut_stream_is_an_error_never_a_silent_end() {
        let cut = TOOL_STREAM.split("event: message_delta").next().unwrap();
        let (deltas, end, _) = decode(cut, "claude-opus-5-5");
        assert_eq!(deltas.len(), 3, "text and the tool call came through");
        let err = end.unwrap();
        assert!(matches!(err, ModelError::Upstream(_)), "{err:?}");
        assert!(text(&err).contains("message_stop"));

        // A body that is no event stream at all.
        let (deltas, end, _) = decode("{\"id\": \"msg_1\"}", "claude-opus-5-5");
        assert!(deltas.is_empty());
        assert!(
            matches!(end, Some(ModelError::MalformedResponse(_))),
            "{end:?}"
        );
    }

    #[test]
    fn malformed_events_are_malformed_responses() {
        let mut decoder = StreamDecoder::new("claude-opus-5-5");
        let err = decoder
            .push(Some("content_block_delta"), "{not json")
            .unwrap_err();
        assert!(matches!(err, ModelError::MalformedResponse(_)), "{err:?}");
        assert!(text(&err).contains("content_block_delta"));

        // input_json_delta for a block that is not a tool call.
        let err = decoder
            .push(None, r#"{"type":"content_block_delta","index":4,"delta":{"type":"input_json_delta","partial_json":"{"}}"#)
            .unwrap_err();
        assert!(matches!(err, ModelError::MalformedResponse(_)), "{err:?}");

        // Tool input that never becomes a JSON object.
        let mut decoder = StreamDecoder::new("claude-opus-5-5");
        decoder
            .push(None, r#"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_1","name":"f","input":{}}}"#)
            .unwrap();
        decoder
            .push(None, r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"a\": "}}"#)
            .unwrap();
        let err = decoder
            .push(None, r#"{"type":"content_block_stop","index":0}"#)
            .unwrap_err();
        assert!(matches!(err, ModelError::MalformedResponse(_)), "{err:?}");
    }

    #[test]
    fn unknown_events_and_deltas_are_ignored() {
        let mut decoder = StreamDecoder::new("claude-opus-5-5");
        for data in [
            r#"{"type":"message_start","message":{"model":"claude-opus-5-5","usage":{"input_tokens":1}}}"#,
            r#"{"type":"some_future_event","payload":{}}"#,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"server_tool_use","id":"srvtoolu_1","name":"web_search","input":{}}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"citations_delta","citation":{}}}"#,
            r#"{"type":"content_block_stop","index":0}"#,
            r#"{"type":"ping"}"#,
        ] {
            assert!(matches!(decoder.push(None, data), Ok(None)), "{data}");
        }
        assert!(!decoder.finished());
    }
}
