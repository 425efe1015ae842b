//! Pure mapping between Convergio's provider types and the Gemini wire
//! ([`crate::wire`]): requests, responses, stream chunks, embeddings and
//! errors. Nothing here touches the network, so all of it is
//! unit-tested natively.

use convergio_sdk::log::Level;
use convergio_sdk::provider::{
    self, Completion, Delta, Embeddings, EventDecoder, FinishReason, Message, ModelError, Post,
    ProviderRequest, Role, ToolCall, ToolDefinition, Usage, excerpt, retry_after_ms,
};
use convergio_sdk::sse::SseEvent;
use serde_json::{Map, Value};

use crate::config::{PROVIDER_ID, Settings, model_id};
use crate::models;
use crate::schema;
use crate::wire::{
    BatchEmbedContentsRequest, BatchEmbedContentsResponse, Candidate, Content, EmbedContentRequest,
    ErrorBody, ErrorEnvelope, FunctionCall, FunctionDeclaration, FunctionResponse,
    GenerateContentRequest, GenerateContentResponse, GenerationConfig, Part, Tool, UsageMetadata,
};

/// Joins a tool call's id and the thought signature it carries.
pub const SIGNATURE_MARK: &str = "#sig=";
/// Google's documented placeholder for a function call that has no real
/// thought signature (history written by hand or by another model).
pub const SKIP_SIGNATURE: &str = "skip_thought_signature_validator";
/// `batchEmbedContents` takes at most this many requests.
pub const EMBED_BATCH: usize = 100;

/// The `generateContent` request for `request` with `settings`
/// (`streamGenerateContent` with `stream`): the body of [`request_body`],
/// and a debug line for each thing it left out.
pub fn chat(
    settings: &Settings,
    request: &ProviderRequest,
    stream: bool,
) -> Result<Post, ModelError> {
    let (body, notes) = request_body(request)?;
    let method = if stream {
        "streamGenerateContent?alt=sse"
    } else {
        "generateContent"
    };
    let post = Post::json(settings.url(&request.model, method)?, &body)?;
    Ok(notes.into_iter().fold(post, |post, note| {
        post.note(Level::Debug, format!("provider-gemini: {note}"))
    }))
}

/// Embeddings of `inputs` by `model` with `settings`: one
/// `batchEmbedContents` request per [`EMBED_BATCH`] inputs, each posted by
/// `send` once the previous one is answered.
pub fn embed(
    settings: &Settings,
    model: &str,
    inputs: &[String],
    send: &mut dyn FnMut(&Post) -> Result<Vec<u8>, ModelError>,
) -> Result<Embeddings, ModelError> {
    let url = settings.url(model, "batchEmbedContents")?;
    let mut vectors = Vec::with_capacity(inputs.len());
    for batch in inputs.chunks(EMBED_BATCH) {
        let bytes = send(&Post::json(url.as_str(), &embed_body(model, batch)?)?)?;
        vectors.extend(embedding_vectors(&bytes, batch.len())?);
    }
    Ok(embeddings(model, vectors))
}

/// Whether `model` validates thought signatures on function calls
/// (Gemini 3 and later).
pub fn requires_thought_signatures(model: &str) -> bool {
    let id = model.strip_prefix("models/").unwrap_or(model);
    id.strip_prefix("gemini-")
        .and_then(|rest| {
            let major: String = rest.chars().take_while(char::is_ascii_digit).collect();
            major.parse::<u32>().ok()
        })
        .is_some_and(|major| major >= 3)
}

// ---------------------------------------------------------------- requests

/// The JSON body of `generateContent` / `streamGenerateContent` for
/// `request`, and notes worth logging (schema keywords left out).
pub fn request_body(request: &ProviderRequest) -> Result<(Value, Vec<String>), ModelError> {
    let mut notes = Vec::new();
    let (contents, system_instruction) = contents(&request.model, &request.messages)?;
    if contents.is_empty() {
        return Err(ModelError::BadRequest(
            "the request has no user, assistant or tool message with content; Gemini needs at least one"
                .to_owned(),
        ));
    }
    let tools = tools(&request.tools, &mut notes)?;
    let response_schema = match &request.format {
        provider::ResponseFormat::JsonSchema(schema) => {
            let schema: Value = serde_json::from_str(schema).map_err(|e| {
                ModelError::BadRequest(format!(
                    "the response format's JSON Schema is not JSON: {e}"
                ))
            })?;
            let converted = schema::to_gemini(&schema);
            if !converted.dropped.is_empty() {
                notes.push(format!(
                    "response schema: left out schema keywords Gemini does not accept (the host still validates them): {}",
                    converted.dropped.join(", ")
                ));
            }
            converted.parameters
        }
        _ => None,
    };
    let sampling = &request.sampling;
    let config = GenerationConfig {
        temperature: sampling.temperature.and_then(decimal),
        top_p: sampling.top_p.and_then(decimal),
        top_k: sampling.top_k,
        seed: sampling
            .seed
            .map(|seed| i32::try_from(seed & 0x7fff_ffff).unwrap_or(i32::MAX)),
        max_output_tokens: sampling.max_tokens,
        stop_sequences: sampling.stop.clone(),
        response_mime_type: (!matches!(request.format, provider::ResponseFormat::Text))
            .then(|| "application/json".to_owned()),
        response_schema,
    };
    let body = GenerateContentRequest {
        contents,
        system_instruction,
        tools,
        generation_config: (config != GenerationConfig::default()).then_some(config),
    };
    let body = serde_json::to_value(&body)
        .map_err(|e| ModelError::BadRequest(format!("the request cannot be encoded: {e}")))?;
    Ok((body, notes))
}

/// An `f32` as the `f64` of its shortest decimal form (0.9f32 is sent as
/// 0.9, not 0.8999999761581421); `None` if not finite.
fn decimal(value: f32) -> Option<f64> {
    value
        .is_finite()
        .then(|| value.to_string().parse().ok())
        .flatten()
}

fn text_part(text: &str) -> Part {
    Part {
        text: Some(text.to_owned()),
        ..Part::default()
    }
}

/// `contents` and `systemInstruction` for `messages`.
fn contents(
    model: &str,
    messages: &[Message],
) -> Result<(Vec<Content>, Option<Content>), ModelError> {
    let needs_signature = requires_thought_signatures(model);
    let mut system = Vec::new();
    let mut contents: Vec<Content> = Vec::new();
    let mut previous_was_tool = false;
    for (index, message) in messages.iter().enumerate() {
        let is_tool = matches!(message.role, Role::Tool);
        match message.role {
            Role::System => {
                if !message.content.is_empty() {
                    system.push(text_part(&message.content));
                }
            }
            Role::User => {
                if !message.content.is_empty() {
                    contents.push(Content {
                        role: Some("user".to_owned()),
                        parts: vec![text_part(&message.content)],
                    });
                }
            }
            Role::Assistant => {
                let mut parts = Vec::new();
                if !message.content.is_empty() {
                    parts.push(text_part(&message.content));
                }
                for (i, call) in message.tool_calls.iter().enumerate() {
                    let (_, signature) = split_call_id(&call.id);
                    let signature = match signature {
                        Some(s) => Some(s.to_owned()),
                        // Gemini 3+ wants a signature on the first call of each step.
                        None if i == 0 && needs_signature => Some(SKIP_SIGNATURE.to_owned()),
                        None => None,
                    };
                    parts.push(Part {
                        function_call: Some(FunctionCall {
                            id: None,
                            name: call.name.clone(),
                            args: Some(provider::tool_call_arguments(call)?),
                        }),
                        thought_signature: signature,
                        ..Part::default()
                    });
                }
                if !parts.is_empty() {
                    contents.push(Content {
                        role: Some("model".to_owned()),
                        parts,
                    });
                }
            }
            Role::Tool => {
                let id = message.tool_call_id.as_deref().ok_or_else(|| {
                    ModelError::BadRequest(format!(
                        "message {index} has role tool but no tool-call-id"
                    ))
                })?;
                let name = answered_call(&messages[..index], id).ok_or_else(|| {
                    ModelError::BadRequest(format!(
                        "message {index} answers tool call `{}`, but no earlier assistant message made a call with that id",
                        short(id)
                    ))
                })?;
                let part = Part {
                    function_response: Some(FunctionResponse {
                        name: name.to_owned(),
                        response: tool_response(&message.content),
                    }),
                    ..Part::default()
                };
                // The results of one step's calls go back together, in one turn.
                match contents.last_mut() {
                    Some(last) if previous_was_tool => last.parts.push(part),
                    _ => contents.push(Content {
                        role: Some("user".to_owned()),
                        parts: vec![part],
                    }),
                }
            }
        }
        previous_was_tool = is_tool;
    }
    let system = (!system.is_empty()).then_some(Content {
        role: None,
        parts: system,
    });
    Ok((contents, system))
}

/// The name of the most recent assistant tool call with `id`.
fn answered_call<'a>(earlier: &'a [Message], id: &str) -> Option<&'a str> {
    earlier
        .iter()
        .rev()
        .filter(|m| matches!(m.role, Role::Assistant))
        .flat_map(|m| m.tool_calls.iter())
        .find(|call| call.id == id)
        .map(|call| call.name.as_str())
}

/// A tool's result as a `functionResponse.response` object: a JSON object
/// as it is, anything else wrapped as `{"output": …}`.
fn tool_response(content: &str) -> Value {
    match serde_json::from_str::<Value>(content) {
        Ok(value @ Value::Object(_)) => value,
        Ok(value) => Value::Object(Map::from_iter([("output".to_owned(), value)])),
        Err(_) => Value::Object(Map::from_iter([(
            "output".to_owned(),
            Value::String(content.to_owned()),
        )])),
    }
}

fn tools(definitions: &[ToolDefinition], notes: &mut Vec<String>) -> Result<Vec<Tool>, ModelError> {
    if definitions.is_empty() {
        return Ok(Vec::new());
    }
    let mut declarations = Vec::with_capacity(definitions.len());
    for tool in definitions {
        let schema: Value = if tool.parameters.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&tool.parameters).map_err(|e| {
                ModelError::BadRequest(format!(
                    "the parameters of tool `{}` are not a JSON Schema: {e}",
                    tool.name
                ))
            })?
        };
        let converted = schema::to_gemini(&schema);
        if !converted.dropped.is_empty() {
            notes.push(format!(
                "tool `{}`: left out schema keywords Gemini does not accept: {}",
                tool.name,
                converted.dropped.join(", ")
            ));
        }
        declarations.push(FunctionDeclaration {
            name: tool.name.clone(),
            description: tool.description.clone(),
            parameters: converted.parameters,
        });
    }
    Ok(vec![Tool {
        function_declarations: declarations,
    }])
}

// ----------------------------------------------------------- tool call ids

/// The id of the `index`-th call of a response: Gemini's own id if it gave
/// one, else `call_{index}`; a thought signature rides along after
/// [`SIGNATURE_MARK`] so that it comes back with the call.
pub fn call_id(upstream_id: Option<&str>, index: usize, signature: Option<&str>) -> String {
    let base = match upstream_id {
        Some(id) if !id.is_empty() => id.to_owned(),
        _ => format!("call_{index}"),
    };
    match signature {
        Some(signature) if !signature.is_empty() => format!("{base}{SIGNATURE_MARK}{signature}"),
        _ => base,
    }
}

/// The id without its signature, and the signature.
pub fn split_call_id(id: &str) -> (&str, Option<&str>) {
    match id.split_once(SIGNATURE_MARK) {
        Some((base, signature)) if !signature.is_empty() => (base, Some(signature)),
        Some((base, _)) => (base, None),
        None => (id, None),
    }
}

/// An id short enough for a message.
fn short(id: &str) -> &str {
    split_call_id(id).0
}

// --------------------------------------------------------------- responses

/// Parses a JSON answer; anything else is a malformed response.
fn parse<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ModelError> {
    serde_json::from_slice(body).map_err(|e| {
        ModelError::MalformedResponse(format!(
            "Gemini's {what} is not the documented JSON ({e}): {}",
            excerpt(body)
        ))
    })
}

/// The answer of `generateContent`.
pub fn completion(model: &str, body: &[u8]) -> Result<Completion, ModelError> {
    let response: GenerateContentResponse = parse(body, "generateContent answer")?;
    blocked(&response)?;
    let candidate = response.candidates.first().ok_or_else(|| {
        ModelError::MalformedResponse(format!(
            "Gemini answered without candidates: {}",
            excerpt(body)
        ))
    })?;
    let mut next_call = 0;
    let (content, tool_calls) = read_parts(candidate, &mut next_call);
    let finish_reason = finish_reason(
        candidate,
        !tool_calls.is_empty(),
        !content.is_empty() || !tool_calls.is_empty(),
    )?;
    Ok(Completion {
        provider: PROVIDER_ID.to_owned(),
        model: model.to_owned(),
        message: Message {
            role: Role::Assistant,
            content,
            tool_calls,
            tool_call_id: None,
        },
        finish_reason,
        usage: usage(model, response.usage_metadata.unwrap_or_default()),
    })
}

/// A prompt blocked before generation (`promptFeedback.blockReason`).
fn blocked(response: &GenerateContentResponse) -> Result<(), ModelError> {
    let Some(feedback) = &response.prompt_feedback else {
        return Ok(());
    };
    match feedback.block_reason.as_deref() {
        None | Some("" | "BLOCK_REASON_UNSPECIFIED") => Ok(()),
        Some(reason) => {
            let detail = feedback
                .block_reason_message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            Err(ModelError::ContentFiltered(format!(
                "Gemini blocked the prompt (blockReason {reason}){detail}"
            )))
        }
    }
}

/// The answer text (thought summaries left out) and the function calls.
fn read_parts(candidate: &Candidate, next_call: &mut usize) -> (String, Vec<ToolCall>) {
    let mut text = String::new();
    let mut calls = Vec::new();
    let parts = candidate.content.as_ref().map(|c| c.parts.as_slice());
    for part in parts.unwrap_or_default() {
        if part.thought == Some(true) {
            continue;
        }
        if let Some(t) = &part.text {
            text.push_str(t);
        }
        if let Some(call) = &part.function_call {
            let arguments = match &call.args {
                Some(args) => args.to_string(),
                None => "{}".to_owned(),
            };
            calls.push(ToolCall {
                id: call_id(
                    call.id.as_deref(),
                    *next_call,
                    part.thought_signature.as_deref(),
                ),
                name: call.name.clone(),
                arguments,
            });
            *next_call += 1;
        }
    }
    (text, calls)
}

/// `candidate.finishReason` as a finish reason, or the error it stands for.
fn finish_reason(
    candidate: &Candidate,
    has_calls: bool,
    has_content: bool,
) -> Result<FinishReason, ModelError> {
    let reason = candidate.finish_reason.as_deref().unwrap_or("STOP");
    let detail = candidate
        .finish_message
        .as_deref()
        .map(|m| format!(": {m}"))
        .unwrap_or_default();
    match reason {
        "MAX_TOKENS" | "CONTINUATION" => Ok(FinishReason::Length),
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION" => Ok(FinishReason::ContentFilter),
        "MALFORMED_FUNCTION_CALL"
        | "UNEXPECTED_TOOL_CALL"
        | "TOO_MANY_TOOL_CALLS"
        | "MALFORMED_RESPONSE"
            if !has_content =>
        {
            Err(ModelError::Upstream(format!(
                "Gemini produced no usable output (finishReason {reason}){detail}; a retry may succeed"
            )))
        }
        "MISSING_THOUGHT_SIGNATURE" => Err(ModelError::BadRequest(format!(
            "Gemini wants the thought signatures of earlier function calls (finishReason {reason}){detail}; \
             send assistant tool calls back with the ids this provider gave them"
        ))),
        "LANGUAGE" if !has_content => Err(ModelError::BadRequest(format!(
            "Gemini does not support the language of the prompt (finishReason LANGUAGE){detail}"
        ))),
        _ if has_calls => Ok(FinishReason::ToolCalls),
        _ => Ok(FinishReason::Stop),
    }
}

/// Tokens and cost: reasoning tokens are billed as output, built-in tool
/// results as input.
pub fn usage(model: &str, metadata: UsageMetadata) -> Usage {
    let input_tokens = metadata
        .prompt_token_count
        .saturating_add(metadata.tool_use_prompt_token_count);
    let output_tokens = metadata
        .candidates_token_count
        .saturating_add(metadata.thoughts_token_count);
    Usage {
        input_tokens,
        output_tokens,
        cost_micro_usd: models::cost_micro_usd(model, input_tokens, output_tokens),
    }
}

// ----------------------------------------------------------------- streams

/// What a stream has seen so far. Feed it each SSE `data:` payload with
/// [`StreamState::on_data`] and tell it when the body ends with
/// [`StreamState::on_end`].
#[derive(Debug, Clone)]
pub struct StreamState {
    model: String,
    next_call: usize,
    saw_calls: bool,
    saw_content: bool,
    usage: UsageMetadata,
    /// The last delta, held back until the body ends: usage may still come.
    last: Option<Delta>,
}

impl StreamState {
    pub fn new(model: &str) -> Self {
        Self {
            model: model.to_owned(),
            next_call: 0,
            saw_calls: false,
            saw_content: false,
            usage: UsageMetadata::default(),
            last: None,
        }
    }

    /// A delta to hand out now, `None` to keep reading, or the error the
    /// chunk carries.
    pub fn on_data(&mut self, data: &str) -> Result<Option<Delta>, ModelError> {
        if data.trim().is_empty() {
            return Ok(None);
        }
        let value: Value = parse(data.as_bytes(), "stream event")?;
        if value.get("error").is_some() {
            let envelope: ErrorEnvelope = serde_json::from_value(value).map_err(|e| {
                ModelError::MalformedResponse(format!(
                    "Gemini's stream error is not the documented JSON ({e})"
                ))
            })?;
            return Err(classify(
                envelope.error.code.unwrap_or_else(|| {
                    code_for_status(envelope.error.status.as_deref().unwrap_or_default())
                }),
                None,
                Some(&envelope.error),
                "",
            ));
        }
        let chunk: GenerateContentResponse = serde_json::from_value(value).map_err(|e| {
            ModelError::MalformedResponse(format!(
                "Gemini's stream event is not the documented JSON ({e}): {}",
                excerpt(data.as_bytes())
            ))
        })?;
        blocked(&chunk)?;
        if let Some(usage) = chunk.usage_metadata {
            self.usage = usage;
        }
        let Some(candidate) = chunk.candidates.first() else {
            return Ok(None);
        };
        let (content, tool_calls) = read_parts(candidate, &mut self.next_call);
        self.saw_calls |= !tool_calls.is_empty();
        self.saw_content |= !content.is_empty() || !tool_calls.is_empty();
        let finish = match candidate.finish_reason.as_deref() {
            None | Some("" | "FINISH_REASON_UNSPECIFIED") => None,
            Some(_) => Some(finish_reason(candidate, self.saw_calls, self.saw_content)?),
        };

        if let Some(last) = &mut self.last {
            // After the last chunk: only usage is expected, but keep anything.
            last.content.push_str(&content);
            last.tool_calls.extend(tool_calls);
            if finish.is_some() {
                last.finish_reason = finish;
            }
            return Ok(None);
        }
        let delta = Delta {
            content,
            tool_calls,
            finish_reason: finish,
            usage: None,
        };
        if delta.finish_reason.is_some() {
            self.last = Some(delta);
            return Ok(None);
        }
        if delta.content.is_empty() && delta.tool_calls.is_empty() {
            return Ok(None);
        }
        Ok(Some(delta))
    }

    /// The body ended: the last delta with finish reason and usage, or an
    /// error if Gemini never sent its last chunk.
    pub fn on_end(&mut self) -> Result<Delta, ModelError> {
        match self.last.take() {
            Some(mut last) => {
                last.usage = Some(usage(&self.model, self.usage));
                Ok(last)
            }
            None => Err(ModelError::Upstream(
                "the Gemini stream ended before its last chunk (no finishReason): the connection was cut"
                    .to_owned(),
            )),
        }
    }
}

/// The glue of [`convergio_sdk::provider::SseStream`]: each event's `data`;
/// the last delta comes when the body ends.
impl EventDecoder for StreamState {
    fn event(&mut self, event: &SseEvent) -> Result<Option<Delta>, ModelError> {
        self.on_data(&event.data)
    }

    /// Usage may follow the finishing chunk: the answer is complete only
    /// when the body ends.
    fn finished(&self) -> bool {
        false
    }

    fn end(&mut self) -> Result<Delta, ModelError> {
        self.on_end()
    }
}

// -------------------------------------------------------------- embeddings

/// The body of `batchEmbedContents` for `inputs` (at most [`EMBED_BATCH`]).
pub fn embed_body(model: &str, inputs: &[String]) -> Result<Value, ModelError> {
    let name = format!("models/{}", model_id(model)?);
    let body = BatchEmbedContentsRequest {
        requests: inputs
            .iter()
            .map(|input| EmbedContentRequest {
                model: name.clone(),
                content: Content {
                    role: None,
                    parts: vec![text_part(input)],
                },
            })
            .collect(),
    };
    serde_json::to_value(&body)
        .map_err(|e| ModelError::BadRequest(format!("the request cannot be encoded: {e}")))
}

/// The vectors of a `batchEmbedContents` answer, checked against the
/// number of inputs sent.
pub fn embedding_vectors(body: &[u8], expected: usize) -> Result<Vec<Vec<f32>>, ModelError> {
    let response: BatchEmbedContentsResponse = parse(body, "batchEmbedContents answer")?;
    if response.embeddings.len() != expected {
        return Err(ModelError::MalformedResponse(format!(
            "Gemini returned {} embeddings for {expected} inputs",
            response.embeddings.len()
        )));
    }
    Ok(response.embeddings.into_iter().map(|e| e.values).collect())
}

/// Embeddings of a whole call. The Gemini API reports no token counts for
/// embeddings, so usage and cost are 0.
pub fn embeddings(model: &str, vectors: Vec<Vec<f32>>) -> Embeddings {
    Embeddings {
        model: model.to_owned(),
        vectors,
        usage: Usage::default(),
    }
}

// ------------------------------------------------------------------ errors

/// The error for a response with a non-2xx `status`: its `retry-after`
/// header, its body, and the current Unix time (for HTTP-date retry-afters).
pub fn status_error(
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    now_unix_secs: u64,
) -> ModelError {
    let error = error_body(body);
    let retry_after_ms = retry_after.and_then(|v| retry_after_ms(v, now_unix_secs));
    classify(status, retry_after_ms, error.as_ref(), &excerpt(body))
}

/// `{"error": …}`, or `[{"error": …}]` as some endpoints wrap it.
pub fn error_body(body: &[u8]) -> Option<ErrorBody> {
    if let Ok(envelope) = serde_json::from_slice::<ErrorEnvelope>(body) {
        return Some(envelope.error);
    }
    serde_json::from_slice::<Vec<ErrorEnvelope>>(body)
        .ok()
        .and_then(|list| list.into_iter().next())
        .map(|envelope| envelope.error)
}

/// One place that turns an upstream failure into a [`ModelError`].
fn classify(
    status: u16,
    retry_after_ms: Option<u64>,
    error: Option<&ErrorBody>,
    raw: &str,
) -> ModelError {
    let rpc_status = error.and_then(|e| e.status.as_deref()).unwrap_or_default();
    let message = match error {
        Some(e) if !e.message.is_empty() => e.message.as_str(),
        _ => raw,
    };
    let description = if rpc_status.is_empty() {
        format!("Gemini answered HTTP {status}: {message}")
    } else {
        format!("Gemini answered HTTP {status} {rpc_status}: {message}")
    };
    match status {
        429 => ModelError::RateLimited(retry_after_ms.or_else(|| error.and_then(retry_delay_ms))),
        503 | 529 => ModelError::Overloaded(description),
        504 | 408 => ModelError::Timeout(description),
        401 | 403 => ModelError::Auth(description),
        400..=499 => {
            if error.is_some_and(is_invalid_key) {
                ModelError::Auth(description)
            } else if is_context_length(message) {
                ModelError::ContextLengthExceeded(description)
            } else if status == 404 && message.to_ascii_lowercase().contains("model") {
                ModelError::NoModel(description)
            } else {
                ModelError::BadRequest(description)
            }
        }
        _ => ModelError::Upstream(description),
    }
}

/// The HTTP status a `google.rpc.Code` name stands for (stream errors may
/// carry only the name).
fn code_for_status(status: &str) -> u16 {
    match status {
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" => 400,
        "UNAUTHENTICATED" => 401,
        "PERMISSION_DENIED" => 403,
        "NOT_FOUND" => 404,
        "ALREADY_EXISTS" | "ABORTED" => 409,
        "RESOURCE_EXHAUSTED" => 429,
        "UNIMPLEMENTED" => 501,
        "UNAVAILABLE" => 503,
        "DEADLINE_EXCEEDED" => 504,
        _ => 500,
    }
}

/// Gemini's wording: "The input token count (1200293) exceeds the maximum
/// number of tokens allowed (1048576)."
fn is_context_length(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    (message.contains("token count") && message.contains("exceeds"))
        || message.contains("exceeds the maximum number of tokens")
}

/// Gemini reports a bad key as 400 INVALID_ARGUMENT with an `ErrorInfo`
/// detail whose reason is `API_KEY_INVALID`.
fn is_invalid_key(error: &ErrorBody) -> bool {
    error.details.iter().any(|detail| {
        detail
            .get("reason")
            .and_then(Value::as_str)
            .is_some_and(|r| r == "API_KEY_INVALID" || r == "API_KEY_SERVICE_BLOCKED")
    }) || error.message.starts_with("API key not valid")
        || error.message.starts_with("API key expired")
}

/// The `retryDelay` of a `google.rpc.RetryInfo` detail, in milliseconds.
fn retry_delay_ms(error: &ErrorBody) -> Option<u64> {
    error
        .details
        .iter()
        .filter(|d| {
            d.get("@type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.ends_with("google.rpc.RetryInfo"))
        })
        .find_map(|d| d.get("retryDelay").and_then(Value::as_str))
        .and_then(parse_duration_ms)
}

/// A protobuf JSON `Duration` (`"12s"`, `"0.250s"`) in milliseconds.
fn parse_duration_ms(value: &str) -> Option<u64> {
    let seconds: f64 = value.trim().strip_suffix('s')?.parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| (seconds * 1000.0).round() as u64)
}

#[cfg(test)]
mod tests {
    use convergio_sdk::provider::AdapterSettings as _;
    use convergio_sdk::provider::Sampling;
    use convergio_sdk::provider::testing::{self, request, tool_call as call};
    use serde_json::json;

    use super::*;

    fn assistant_calls(calls: Vec<ToolCall>) -> Message {
        Message {
            tool_calls: calls,
            ..Message::assistant("")
        }
    }

    // -------------------------------------------------- thought signatures

    #[test]
    fn thought_signature_generations() {
        assert!(!requires_thought_signatures("gemini-2.5-flash"));
        assert!(requires_thought_signatures("gemini-3.8-flash"));
        assert!(requires_thought_signatures("models/gemini-4-argon"));
        assert!(requires_thought_signatures("gemini-10-x"));
        assert!(!requires_thought_signatures("gemini-embedding-001"));
        assert!(!requires_thought_signatures("gemma-4-31b-it"));
    }

    // ------------------------------------------------------------ requests

    #[test]
    fn a_full_request_maps_to_the_documented_body() {
        let weather = ToolDefinition {
            name: "get_weather".to_owned(),
            description: "Current weather of a city".to_owned(),
            parameters: json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
                "additionalProperties": false
            })
            .to_string(),
        };
        let clock = ToolDefinition {
            name: "now".to_owned(),
            description: "The time".to_owned(),
            parameters: json!({"type": "object", "properties": {}}).to_string(),
        };
        let mut req = request(
            "gemini-2.5-flash",
            vec![
                Message::system("Be brief."),
                Message::system("Answer in French."),
                Message::user("Weather in Paris and Rome?"),
                Message {
                    tool_calls: vec![
                        call("call_0", "get_weather", r#"{"city":"Paris"}"#),
                        call("call_1", "get_weather", r#"{"city":"Rome"}"#),
                    ],
                    ..Message::assistant("Let me check.")
                },
                Message::tool_result("call_0", r#"{"temp_c": 18}"#),
                Message::tool_result("call_1", "sunny"),
                Message::assistant("Paris 18 °C, Rome sunny."),
                Message::user("Merci"),
            ],
        );
        req.tools = vec![weather, clock];
        req.sampling = Sampling {
            temperature: Some(0.5),
            top_p: Some(0.9),
            top_k: Some(40),
            seed: Some(42),
            max_tokens: Some(256),
            stop: vec!["END".to_owned()],
        };
        req.format = provider::ResponseFormat::JsonSchema(
            r#"{"type":"object","properties":{"temp":{"type":"number"}},"required":["temp"],"additionalProperties":false}"#.into(),
        );

        let (body, notes) = request_body(&req).unwrap();
        assert_eq!(
            body,
            json!({
                "contents": [
                    {"role": "user", "parts": [{"text": "Weather in Paris and Rome?"}]},
                    {"role": "model", "parts": [
                        {"text": "Let me check."},
                        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                        {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}}
                    ]},
                    {"role": "user", "parts": [
                        {"functionResponse": {"name": "get_weather", "response": {"temp_c": 18}}},
                        {"functionResponse": {"name": "get_weather", "response": {"output": "sunny"}}}
                    ]},
                    {"role": "model", "parts": [{"text": "Paris 18 °C, Rome sunny."}]},
                    {"role": "user", "parts": [{"text": "Merci"}]}
                ],
                "systemInstruction": {"parts": [{"text": "Be brief."}, {"text": "Answer in French."}]},
                "tools": [{"functionDeclarations": [
                    {"name": "get_weather", "description": "Current weather of a city",
                     "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]}},
                    {"name": "now", "description": "The time"}
                ]}],
                "generationConfig": {
                    "temperature": 0.5, "topP": 0.9, "topK": 40, "seed": 42,
                    "maxOutputTokens": 256, "stopSequences": ["END"],
                    "responseMimeType": "application/json",
                    "responseSchema": {"type": "OBJECT", "properties": {"temp": {"type": "NUMBER"}}, "required": ["temp"]}
                }
            })
        );
        assert_eq!(notes.len(), 2);
        assert!(notes[0].contains("additionalProperties"), "{notes:?}");
        assert!(notes[1].starts_with("response schema:"), "{notes:?}");
    }

    #[test]
    fn defaults_send_no_generation_config_and_seed_fits_int32() {
        let (body, _) =
            request_body(&request("gemini-2.5-flash", vec![Message::user("hi")])).unwrap();
        assert_eq!(
            body,
            json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
        );

        let mut req = request("gemini-2.5-flash", vec![Message::user("hi")]);
        req.sampling.seed = Some(u64::MAX);
        req.sampling.temperature = Some(f32::NAN);
        let (body, _) = request_body(&req).unwrap();
        assert_eq!(body["generationConfig"], json!({"seed": i32::MAX}));
    }

    #[test]
    fn thought_signatures_round_trip_through_call_ids() {
        // A Gemini 3 answer with parallel calls: only the first carries a signature.
        let answer = json!({
            "candidates": [{"content": {"role": "model", "parts": [
                {"functionCall": {"name": "a", "args": {}}, "thoughtSignature": "c2lnLUE="},
                {"functionCall": {"name": "b", "args": {"x": 1}}}
            ]}, "finishReason": "STOP"}]
        });
        let completion = completion("gemini-3.8-flash", answer.to_string().as_bytes()).unwrap();
        let calls = &completion.message.tool_calls;
        assert_eq!(calls[0].id, "call_0#sig=c2lnLUE=");
        assert_eq!(calls[1].id, "call_1");
        assert!(matches!(completion.finish_reason, FinishReason::ToolCalls));

        let req = request(
            "gemini-3.8-flash",
            vec![
                Message::user("go"),
                assistant_calls(calls.clone()),
                Message::tool_result(&calls[0].id, "1"),
                Message::tool_result(&calls[1].id, "2"),
            ],
        );
        let (body, _) = request_body(&req).unwrap();
        assert_eq!(
            body["contents"][1],
            json!({"role": "model", "parts": [
                {"functionCall": {"name": "a", "args": {}}, "thoughtSignature": "c2lnLUE="},
                {"functionCall": {"name": "b", "args": {"x": 1}}}
            ]})
        );
        assert_eq!(
            body["contents"][2]["parts"][1],
            json!({"functionResponse": {"name": "b", "response": {"output": 2}}})
        );
    }

    #[test]
    fn foreign_tool_calls_get_the_placeholder_signature_on_gemini_3() {
        let messages = vec![
            Message::user("go"),
            assistant_calls(vec![call("toolu_01", "a", ""), call("toolu_02", "b", "{}")]),
            Message::tool_result("toolu_01", "ok"),
            Message::tool_result("toolu_02", "ok"),
        ];
        let (body, _) = request_body(&request("gemini-4-argon", messages.clone())).unwrap();
        let parts = &body["contents"][1]["parts"];
        assert_eq!(parts[0]["thoughtSignature"], json!(SKIP_SIGNATURE));
        assert_eq!(parts[0]["functionCall"]["args"], json!({}));
        assert!(parts[1].get("thoughtSignature").is_none());

        let (body, _) = request_body(&request("gemini-2.5-pro", messages)).unwrap();
        assert!(
            body["contents"][1]["parts"][0]
                .get("thoughtSignature")
                .is_none()
        );
    }

    #[test]
    fn tool_results_answer_the_latest_call_with_that_id() {
        // `call_0` is reused by every answer: the nearest earlier one counts.
        let messages = vec![
            Message::user("1"),
            assistant_calls(vec![call("call_0", "first", "{}")]),
            Message::tool_result("call_0", "{}"),
            Message::user("2"),
            assistant_calls(vec![call("call_0", "second", "{}")]),
            Message::tool_result("call_0", "{}"),
        ];
        let (body, _) = request_body(&request("gemini-2.5-flash", messages)).unwrap();
        assert_eq!(
            body["contents"][2]["parts"][0]["functionResponse"]["name"],
            json!("first")
        );
        assert_eq!(
            body["contents"][5]["parts"][0]["functionResponse"]["name"],
            json!("second")
        );
    }

    #[test]
    fn bad_requests_are_refused_before_sending() {
        let unknown = vec![Message::user("x"), Message::tool_result("nope", "1")];
        let Err(ModelError::BadRequest(m)) = request_body(&request("gemini-2.5-flash", unknown))
        else {
            panic!("unknown call id accepted");
        };
        assert!(m.contains("`nope`"), "{m}");

        let bad_args = vec![
            Message::user("x"),
            assistant_calls(vec![call("c", "f", "[1]")]),
        ];
        assert!(matches!(
            request_body(&request("gemini-2.5-flash", bad_args)),
            Err(ModelError::BadRequest(_))
        ));

        let only_system = vec![Message::system("x")];
        assert!(matches!(
            request_body(&request("gemini-2.5-flash", only_system)),
            Err(ModelError::BadRequest(_))
        ));

        let mut bad_schema = request("gemini-2.5-flash", vec![Message::user("x")]);
        bad_schema.tools = vec![ToolDefinition {
            name: "t".to_owned(),
            description: String::new(),
            parameters: "{not json".to_owned(),
        }];
        assert!(matches!(
            request_body(&bad_schema),
            Err(ModelError::BadRequest(_))
        ));
    }

    #[test]
    fn call_ids_split() {
        assert_eq!(split_call_id("call_3"), ("call_3", None));
        assert_eq!(split_call_id("call_3#sig=abc"), ("call_3", Some("abc")));
        assert_eq!(split_call_id("x#sig="), ("x", None));
        assert_eq!(call_id(Some("fc-9"), 2, None), "fc-9");
        assert_eq!(call_id(None, 2, Some("")), "call_2");
    }

    // ----------------------------------------------------------- responses

    /// The shape of the REST reference's generateContent answer.
    const TEXT_ANSWER: &str = r#"{
      "candidates": [{
        "content": {"parts": [{"text": "AI learns "}, {"text": "patterns."}], "role": "model"},
        "finishReason": "STOP",
        "index": 0,
        "safetyRatings": [{"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"}]
      }],
      "usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 4, "totalTokenCount": 40,
                        "thoughtsTokenCount": 28, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 8}]},
      "modelVersion": "gemini-2.5-flash",
      "responseId": "abc123"
    }"#;

    #[test]
    fn a_text_answer_becomes_a_completion_with_cost() {
        let completion = completion("gemini-2.5-flash", TEXT_ANSWER.as_bytes()).unwrap();
        assert_eq!(completion.provider, "gemini");
        assert_eq!(completion.model, "gemini-2.5-flash");
        assert_eq!(completion.message.content, "AI learns patterns.");
        assert!(completion.message.tool_calls.is_empty());
        assert!(matches!(completion.message.role, Role::Assistant));
        assert!(matches!(completion.finish_reason, FinishReason::Stop));
        assert_eq!(completion.usage.input_tokens, 8);
        assert_eq!(completion.usage.output_tokens, 32, "thoughts are output");
        // 8 × 0.30 + 32 × 2.50 = 82.4 micro-dollars, rounded up.
        assert_eq!(completion.usage.cost_micro_usd, 83);
    }

    #[test]
    fn thoughts_are_left_out_and_unknown_models_cost_nothing() {
        let answer = json!({
            "candidates": [{"content": {"parts": [
                {"text": "Let me think", "thought": true},
                {"text": "42", "thoughtSignature": "c2ln"}
            ]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 1}
        });
        let completion = completion("my-tuned-model", answer.to_string().as_bytes()).unwrap();
        assert_eq!(completion.message.content, "42");
        assert_eq!(completion.usage.cost_micro_usd, 0);
    }

    #[test]
    fn finish_reasons_map() {
        let finish = |reason: &str, parts: Value| {
            let answer =
                json!({"candidates": [{"content": {"parts": parts}, "finishReason": reason}]});
            completion("gemini-2.5-flash", answer.to_string().as_bytes())
        };
        let text = json!([{"text": "x"}]);
        assert!(
            matches!(finish("MAX_TOKENS", text.clone()), Ok(c) if matches!(c.finish_reason, FinishReason::Length))
        );
        assert!(
            matches!(finish("CONTINUATION", text.clone()), Ok(c) if matches!(c.finish_reason, FinishReason::Length))
        );
        for reason in [
            "SAFETY",
            "RECITATION",
            "BLOCKLIST",
            "PROHIBITED_CONTENT",
            "SPII",
        ] {
            assert!(
                matches!(finish(reason, json!([])), Ok(c) if matches!(c.finish_reason, FinishReason::ContentFilter)),
                "{reason}"
            );
        }
        assert!(
            matches!(finish("OTHER", text.clone()), Ok(c) if matches!(c.finish_reason, FinishReason::Stop))
        );
        assert!(
            matches!(finish("SOMETHING_NEW", text.clone()), Ok(c) if matches!(c.finish_reason, FinishReason::Stop))
        );
        assert!(matches!(
            finish("MALFORMED_FUNCTION_CALL", json!([])),
            Err(ModelError::Upstream(_))
        ));
        assert!(finish("MALFORMED_FUNCTION_CALL", text).is_ok());
        assert!(matches!(
            finish("MISSING_THOUGHT_SIGNATURE", json!([])),
            Err(ModelError::BadRequest(_))
        ));
        // A candidate without content at all.
        let answer = json!({"candidates": [{"finishReason": "SAFETY"}]});
        let c = completion("gemini-2.5-flash", answer.to_string().as_bytes()).unwrap();
        assert!(matches!(c.finish_reason, FinishReason::ContentFilter));
        assert!(c.message.content.is_empty());
    }

    #[test]
    fn a_blocked_prompt_is_content_filtered() {
        let answer = r#"{"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []},
                         "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7}}"#;
        let Err(ModelError::ContentFiltered(m)) = completion("gemini-2.5-flash", answer.as_bytes())
        else {
            panic!("not filtered");
        };
        assert!(m.contains("SAFETY"), "{m}");
    }

    #[test]
    fn garbage_is_a_malformed_response() {
        for body in [
            &b"<html>oops</html>"[..],
            b"",
            b"{\"candidates\": []}",
            b"{\"candidates\": 3}",
        ] {
            assert!(
                matches!(
                    completion("gemini-2.5-flash", body),
                    Err(ModelError::MalformedResponse(_))
                ),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    // ------------------------------------------------------------- streams

    fn run(model: &str, events: &[&str]) -> Vec<Result<Delta, ModelError>> {
        let mut state = StreamState::new(model);
        let mut out = Vec::new();
        for data in events {
            match state.on_data(data) {
                Ok(Some(delta)) => out.push(Ok(delta)),
                Ok(None) => {}
                Err(e) => {
                    out.push(Err(e));
                    return out;
                }
            }
        }
        out.push(state.on_end());
        out
    }

    #[test]
    fn a_text_stream_yields_deltas_then_finish_and_usage() {
        let events = [
            r#"{"candidates": [{"content": {"parts": [{"text": "The"}], "role": "model"}, "index": 0}],
                "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9}, "modelVersion": "gemini-2.5-flash"}"#,
            r#"{"candidates": [{"content": {"parts": [{"text": " sky is"}], "role": "model"}, "index": 0}],
                "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 3}}"#,
            r#"{"candidates": [{"content": {"parts": [{"text": " blue."}], "role": "model"}, "finishReason": "STOP", "index": 0}],
                "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 5, "totalTokenCount": 14}}"#,
        ];
        let deltas: Vec<Delta> = run("gemini-2.5-flash", &events)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(deltas.len(), 3);
        assert_eq!(deltas[0].content, "The");
        assert!(deltas[0].finish_reason.is_none() && deltas[0].usage.is_none());
        assert_eq!(deltas[1].content, " sky is");
        let last = &deltas[2];
        assert_eq!(last.content, " blue.");
        assert!(matches!(last.finish_reason, Some(FinishReason::Stop)));
        let usage = last.usage.unwrap();
        assert_eq!((usage.input_tokens, usage.output_tokens), (9, 5));
        // 9 × 0.30 + 5 × 2.50 = 15.2, rounded up.
        assert_eq!(usage.cost_micro_usd, 16);
    }

    #[test]
    fn a_stream_with_function_calls_and_late_usage() {
        let events = [
            r#"{"candidates": [{"content": {"parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "U0lH"}], "role": "model"}}]}"#,
            r#"{"candidates": [{"content": {"parts": [{"functionCall": {"name": "get_time", "args": {}}}], "role": "model"}, "finishReason": "STOP"}]}"#,
            r#"{"usageMetadata": {"promptTokenCount": 20, "candidatesTokenCount": 10, "thoughtsTokenCount": 5}}"#,
        ];
        let deltas: Vec<Delta> = run("gemini-3.8-flash", &events)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(deltas.len(), 2);
        assert_eq!(deltas[0].tool_calls[0].id, "call_0#sig=U0lH");
        assert_eq!(deltas[0].tool_calls[0].arguments, r#"{"city":"Paris"}"#);
        assert_eq!(deltas[1].tool_calls[0].id, "call_1");
        assert!(matches!(
            deltas[1].finish_reason,
            Some(FinishReason::ToolCalls)
        ));
        assert_eq!(deltas[1].usage.unwrap().output_tokens, 15);
    }

    #[test]
    fn cut_streams_errors_and_blocks_are_never_silent() {
        let cut = run(
            "gemini-2.5-flash",
            &[r#"{"candidates": [{"content": {"parts": [{"text": "Hal"}]}}]}"#],
        );
        assert!(matches!(cut.last(), Some(Err(ModelError::Upstream(m))) if m.contains("cut")));

        let error = run(
            "gemini-2.5-flash",
            &[
                r#"{"candidates": [{"content": {"parts": [{"text": "Hal"}]}}]}"#,
                r#"{"error": {"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}}"#,
            ],
        );
        assert!(
            matches!(error.last(), Some(Err(ModelError::Overloaded(m))) if m.contains("overloaded"))
        );

        let by_name = run(
            "gemini-2.5-flash",
            &[r#"{"error": {"message": "slow down", "status": "RESOURCE_EXHAUSTED"}}"#],
        );
        assert!(matches!(
            by_name.last(),
            Some(Err(ModelError::RateLimited(None)))
        ));

        let blocked = run(
            "gemini-2.5-flash",
            &[r#"{"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}}"#],
        );
        assert!(matches!(
            blocked.last(),
            Some(Err(ModelError::ContentFiltered(_)))
        ));

        let garbage = run("gemini-2.5-flash", &["{\"candidates\": ["]);
        assert!(matches!(
            garbage.last(),
            Some(Err(ModelError::MalformedResponse(_)))
        ));
    }

    #[test]
    fn safety_stop_mid_stream_is_content_filter() {
        let deltas = run(
            "gemini-2.5-flash",
            &[
                r#"{"candidates": [{"content": {"parts": [{"text": "Once"}]}}]}"#,
                r#"{"candidates": [{"finishReason": "SAFETY"}]}"#,
            ],
        );
        assert!(matches!(
            deltas.last(),
            Some(Ok(Delta {
                finish_reason: Some(FinishReason::ContentFilter),
                ..
            }))
        ));
    }

    // ---------------------------------------------------------- embeddings

    #[test]
    fn the_post_picks_the_method_and_notes_what_was_left_out() {
        let settings =
            Settings::load(testing::config(&[("base-url", "http://127.0.0.1:8089")])).unwrap();
        let mut req = request("gemini-2.5-flash", vec![Message::user("hi")]);
        let post = chat(&settings, &req, false).unwrap();
        assert_eq!(
            post.url,
            "http://127.0.0.1:8089/v1beta/models/gemini-2.5-flash:generateContent"
        );
        assert!(post.headers.is_empty() && post.notes.is_empty());
        req.tools.push(ToolDefinition {
            name: "f".to_owned(),
            description: String::new(),
            parameters: json!({"type": "object", "additionalProperties": false}).to_string(),
        });
        let post = chat(&settings, &req, true).unwrap();
        assert!(
            post.url.ends_with(":streamGenerateContent?alt=sse"),
            "{}",
            post.url
        );
        assert!(!post.notes.is_empty());
        assert!(
            post.notes.iter().all(
                |(level, note)| *level == Level::Debug && note.starts_with("provider-gemini: ")
            )
        );
        req.model = "../admin".to_owned();
        assert!(matches!(
            chat(&settings, &req, false),
            Err(ModelError::NoModel(_))
        ));
    }

    #[test]
    fn embed_sends_a_request_per_batch_in_turn() {
        let settings = Settings::load(testing::config(&[])).unwrap();
        let inputs: Vec<String> = (0..EMBED_BATCH + 1).map(|i| i.to_string()).collect();
        let mut sizes = Vec::new();
        let e = embed(&settings, "gemini-embedding-001", &inputs, &mut |post| {
            let n = post.json_body()?["requests"].as_array().map_or(0, Vec::len);
            sizes.push(n);
            let vectors: Vec<Value> = (0..n).map(|_| json!({"values": [0.5]})).collect();
            Ok(json!({"embeddings": vectors}).to_string().into_bytes())
        })
        .unwrap();
        assert_eq!(sizes, [EMBED_BATCH, 1]);
        assert_eq!(e.vectors.len(), EMBED_BATCH + 1);
        // A malformed answer stops before the next batch is sent.
        let mut sent = 0;
        let err = embed(&settings, "gemini-embedding-001", &inputs, &mut |_| {
            sent += 1;
            Ok(b"{}".to_vec())
        });
        assert!(matches!(err, Err(ModelError::MalformedResponse(_))));
        assert_eq!(sent, 1);
    }

    #[test]
    fn embeddings_batch_request_and_answer() {
        let body = embed_body("gemini-embedding-001", &["a".to_owned(), "b".to_owned()]).unwrap();
        assert_eq!(
            body,
            json!({"requests": [
                {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "a"}]}},
                {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "b"}]}}
            ]})
        );
        let answer = br#"{"embeddings": [{"values": [0.1, -0.2]}, {"values": [0.3, 0.4]}]}"#;
        assert_eq!(
            embedding_vectors(answer, 2).unwrap(),
            vec![vec![0.1, -0.2], vec![0.3, 0.4]]
        );
        assert!(matches!(
            embedding_vectors(answer, 3),
            Err(ModelError::MalformedResponse(_))
        ));
    }

    // -------------------------------------------------------------- errors

    const NOW: u64 = 1_445_412_480; // Wed, 21 Oct 2015 07:28:00 GMT

    #[test]
    fn rate_limits_carry_the_delay() {
        let body = br#"{"error": {"code": 429,
            "message": "You exceeded your current quota, please check your plan and billing details.",
            "status": "RESOURCE_EXHAUSTED",
            "details": [
              {"@type": "type.googleapis.com/google.rpc.QuotaFailure",
               "violations": [{"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                               "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}]},
              {"@type": "type.googleapis.com/google.rpc.Help", "links": [{"description": "Learn more", "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]},
              {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "12s"}
            ]}}"#;
        assert!(matches!(
            status_error(429, None, body, NOW),
            ModelError::RateLimited(Some(12_000))
        ));
        // The header wins over the body.
        assert!(matches!(
            status_error(429, Some("3"), body, NOW),
            ModelError::RateLimited(Some(3_000))
        ));
        assert!(matches!(
            status_error(429, Some("Wed, 21 Oct 2015 07:28:30 GMT"), b"", NOW),
            ModelError::RateLimited(Some(30_000))
        ));
        assert!(matches!(
            status_error(429, Some("soon"), b"", NOW),
            ModelError::RateLimited(None)
        ));
        let fractional = br#"{"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "x",
            "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0.250s"}]}}"#;
        assert!(matches!(
            status_error(429, None, fractional, NOW),
            ModelError::RateLimited(Some(250))
        ));
    }

    #[test]
    fn statuses_map_to_the_error_set() {
        let body = |code: u16, status: &str, message: &str| {
            json!({"error": {"code": code, "message": message, "status": status}}).to_string()
        };
        let map = |code: u16, status: &str, message: &str| {
            status_error(code, None, body(code, status, message).as_bytes(), NOW)
        };
        assert!(matches!(
            map(503, "UNAVAILABLE", "The model is overloaded."),
            ModelError::Overloaded(_)
        ));
        assert!(matches!(
            map(529, "", "overloaded"),
            ModelError::Overloaded(_)
        ));
        assert!(matches!(
            map(504, "DEADLINE_EXCEEDED", "Deadline expired"),
            ModelError::Timeout(_)
        ));
        assert!(matches!(
            map(500, "INTERNAL", "An internal error has occurred."),
            ModelError::Upstream(_)
        ));
        assert!(matches!(
            map(502, "", "bad gateway"),
            ModelError::Upstream(_)
        ));
        assert!(matches!(
            map(401, "UNAUTHENTICATED", "no key"),
            ModelError::Auth(_)
        ));
        assert!(matches!(
            map(403, "PERMISSION_DENIED", "denied"),
            ModelError::Auth(_)
        ));
        assert!(matches!(map(422, "", "bad"), ModelError::BadRequest(_)));
        assert!(matches!(
            map(
                404,
                "NOT_FOUND",
                "models/gemini-9 is not found for API version v1beta"
            ),
            ModelError::NoModel(_)
        ));
        let ModelError::BadRequest(m) = map(
            400,
            "INVALID_ARGUMENT",
            "Request contains an invalid argument.",
        ) else {
            panic!("not a bad request");
        };
        assert_eq!(
            m,
            "Gemini answered HTTP 400 INVALID_ARGUMENT: Request contains an invalid argument."
        );
        assert!(matches!(
            map(400, "INVALID_ARGUMENT", "The input token count (1200293) exceeds the maximum number of tokens allowed (1048576)."),
            ModelError::ContextLengthExceeded(m) if m.contains("1048576")
        ));
    }

    #[test]
    fn an_invalid_key_is_auth_even_as_400() {
        let body = br#"{"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.",
            "status": "INVALID_ARGUMENT",
            "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                         "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}}]}}"#;
        assert!(matches!(
            status_error(400, None, body, NOW),
            ModelError::Auth(_)
        ));
    }

    #[test]
    fn unparseable_error_bodies_keep_their_status_and_text() {
        let ModelError::Upstream(m) = status_error(502, None, b"<html>Bad Gateway</html>", NOW)
        else {
            panic!("not upstream");
        };
        assert!(m.contains("502") && m.contains("Bad Gateway"), "{m}");
        // An array-wrapped error (as `streamGenerateContent` without alt=sse answers).
        let wrapped = br#"[{"error": {"code": 400, "message": "The input token count (5) exceeds the maximum number of tokens allowed (4).", "status": "INVALID_ARGUMENT"}}]"#;
        assert!(matches!(
            status_error(400, None, wrapped, NOW),
            ModelError::ContextLengthExceeded(_)
        ));
    }
}
