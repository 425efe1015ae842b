//! [`OllamaBackend`]: the models of an Ollama server, through its HTTP API
//! (with the `ollama-rs` client).
//!
//! | Call | Ollama endpoint |
//! | --- | --- |
//! | [`Backend::list`] | `GET /api/tags`, then `POST /api/show` once per model (cached) |
//! | [`Backend::generate`] | `POST /api/chat`, streamed (NDJSON) |
//! | [`Backend::embed`] | `POST /api/embed` |
//! | [`OllamaBackend::pull`] | `POST /api/pull`, streamed (NDJSON) |
//!
//! # What `ollama-rs` 0.3.6 cannot read, and what this backend does instead
//!
//! The client deserializes Ollama's answers into its own structs, which drop
//! some fields, and it offers no raw request. So:
//!
//! - `GET /api/tags` comes back as name, `modified_at` and size only: no
//!   `digest`, no `details.quantization_level`. Both are taken from
//!   `POST /api/show` instead, which [`Backend::list`] calls anyway for the
//!   context and embedding lengths: the quantization from `general.file_type`
//!   of `model_info` (the llama.cpp file type Ollama itself names its
//!   `quantization_level` after) and the sha256 from the `FROM` blob of the
//!   modelfile, which is the sha256 of the GGUF file itself (the `digest` of
//!   `/api/tags` is the manifest's). A model without a `FROM` blob (a
//!   remote one) has an empty sha256.
//! - There is no `GET /api/ps`, so `loaded` is always `false`.
//! - The final chat chunk is read without its `done_reason`. A generation is
//!   taken to have hit `max_tokens` (`stopped == false`, Ollama's
//!   `done_reason: "length"`) when `max_tokens` was set and `eval_count`
//!   reached it.
//! - HTTP statuses are not exposed, only the body of an error answer: the
//!   JSON `{"error": "..."}` Ollama sends is classified by its message
//!   ("not found" → [`Error::NotFound`], context length → [`Error::ContextOverflow`]).
//! - An `{"error": ...}` line in the middle of a chat stream is dropped by
//!   the client; the stream then ends without its final chunk, which this
//!   backend reports as a [`Error::Backend`] error in the stream.
//!
//! The `/api/show` answers are cached per model name and modification time,
//! so after the first [`Backend::list`] a listing costs one request.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use convergio_cap_inference::{Message, ResponseFormat, Role, Sampling, Usage};
use ollama_rs::Ollama;
use ollama_rs::error::OllamaError;
use ollama_rs::generation::chat::request::ChatMessageRequest;
use ollama_rs::generation::chat::{ChatMessage, ChatMessageResponseStream, MessageRole};
use ollama_rs::generation::embeddings::request::{EmbeddingsInput, GenerateEmbeddingsRequest};
use ollama_rs::generation::parameters::FormatType;
use ollama_rs::generation::tools::{ToolCall, ToolCallFunction};
use ollama_rs::models::{LocalModel, ModelInfo, ModelOptions};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tracing::Instrument;

use crate::{
    Backend, BoxFuture, Error, Event, Events, GenerateRequest, Generation, LocalModelInfo, Result,
};

/// How many events a generation may run ahead of its reader.
const EVENTS_CAPACITY: usize = 32;

/// One status line of [`OllamaBackend::pull`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullProgress {
    /// What Ollama is doing: `pulling manifest`, `pulling <digest>`,
    /// `verifying sha256 digest`, `success`, ...
    pub status: String,
    /// Bytes of the current layer downloaded so far.
    pub completed: Option<u64>,
    /// Bytes of the current layer.
    pub total: Option<u64>,
}

/// The models of an Ollama server.
///
/// ```no_run
/// # async fn demo() -> convergio_cap_local_model::Result<()> {
/// use convergio_cap_local_model::{Backend, OllamaBackend};
///
/// let ollama = OllamaBackend::new("http://127.0.0.1:11434")?;
/// for model in ollama.list().await? {
///     println!("{} ({} bytes, {})", model.name, model.size_bytes, model.quantization);
/// }
/// # Ok(())
/// # }
/// ```
pub struct OllamaBackend {
    client: Ollama,
    /// The server's URL as configured (no trailing `/`), for messages.
    url: String,
    /// What `/api/show` said, by model name and modification time.
    shown: Mutex<HashMap<(String, String), Shown>>,
}

impl std::fmt::Debug for OllamaBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OllamaBackend")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// The facts of a model that only `/api/show` gives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Shown {
    quantization: String,
    context_length: u32,
    embedding_length: u32,
    sha256: String,
}

impl OllamaBackend {
    /// A backend for the Ollama server at `base_url`, e.g.
    /// `http://127.0.0.1:11434`. Nothing is sent until the first call.
    pub fn new(base_url: &str) -> Result<Self> {
        let trimmed = base_url.trim().trim_end_matches('/');
        let invalid = |why: &str| {
            Error::InvalidInput(format!(
                "`{base_url}` is not an Ollama server URL ({why}); use one like http://127.0.0.1:11434"
            ))
        };
        // ollama-rs appends `api/...` to the URL's text, so it must end with `/`.
        let client = Ollama::try_new(format!("{trimmed}/")).map_err(|e| invalid(&e.to_string()))?;
        let url = client.url();
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("the scheme must be http or https"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid("it has no host"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("it must not have a query or a fragment"));
        }
        Ok(Self {
            client,
            url: trimmed.to_owned(),
            shown: Mutex::new(HashMap::new()),
        })
    }

    /// The server's URL, as configured.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Download `model` (e.g. `llama3.2:1b`) into the server's store, calling
    /// `progress` with every status line Ollama sends. Returns once Ollama
    /// reports `success`.
    pub async fn pull(
        &self,
        model: &str,
        progress: &mut (dyn FnMut(PullProgress) + Send),
    ) -> Result<()> {
        let span = tracing::info_span!("convergio.local_model.ollama.pull", url = %self.url, model);
        async {
            let mut lines = self
                .client
                .pull_model_stream(model.to_owned(), false)
                .await
                .map_err(|e| self.error(e, Some(model)))?;
            let mut last = String::new();
            while let Some(line) = lines.next().await {
                let line = line.map_err(|e| self.error(e, Some(model)))?;
                last.clone_from(&line.message);
                progress(PullProgress {
                    status: line.message,
                    completed: line.completed,
                    total: line.total,
                });
            }
            if last == "success" {
                Ok(())
            } else {
                Err(Error::Backend(format!(
                    "Ollama at {} stopped pulling `{model}` before it succeeded (last status: `{last}`)",
                    self.url
                )))
            }
        }
        .instrument(span)
        .await
    }

    /// `/api/show` facts of `model`, from the cache or the server. A model
    /// the server cannot describe gets zeros and empty strings (and is asked
    /// again next time).
    async fn shown(&self, model: &LocalModel) -> Shown {
        let key = (model.name.clone(), model.modified_at.clone());
        if let Some(shown) = self.cache().get(&key) {
            return shown.clone();
        }
        match self.client.show_model_info(model.name.clone()).await {
            Ok(info) => {
                let shown = shown_of(&info);
                self.cache().insert(key, shown.clone());
                shown
            }
            Err(e) => {
                let error = self.error(e, Some(&model.name));
                tracing::warn!(model = %model.name, %error, "Ollama cannot describe a model it lists");
                Shown::default()
            }
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Shown>> {
        // The map is only ever replaced entry by entry: a panic elsewhere
        // cannot leave it half-written.
        self.shown.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The crate's error for a failed call to the server, about `model`.
    fn error(&self, error: OllamaError, model: Option<&str>) -> Error {
        match error {
            OllamaError::ReqwestError(e) if e.is_connect() => Error::Backend(format!(
                "cannot reach Ollama at {}: {}. Start Ollama (`ollama serve`) or fix the server URL",
                self.url,
                chain(&e)
            )),
            OllamaError::ReqwestError(e) => Error::Backend(format!(
                "the connection to Ollama at {} failed: {}",
                self.url,
                chain(&e)
            )),
            // The body of an answer with an error status.
            OllamaError::Other(body) => match serde_json::from_str::<ErrorBody>(&body) {
                Ok(body) => self.server_error(&body.error, model),
                Err(_) => Error::Backend(format!(
                    "{} answered `{}`: is it an Ollama server?",
                    self.url,
                    body.trim()
                )),
            },
            // An `{"error": ...}` line in a stream.
            OllamaError::InternalError(e) => self.server_error(&e.message, model),
            OllamaError::JsonError(e) => Error::Backend(format!(
                "Ollama at {} sent an answer this client cannot read: {e}",
                self.url
            )),
            OllamaError::ToolCallError(e) => {
                Error::Backend(format!("Ollama at {}: {}", self.url, chain(&e)))
            }
        }
    }

    /// Classify an error message of Ollama's (`{"error": message}`).
    fn server_error(&self, message: &str, model: Option<&str>) -> Error {
        let lower = message.to_lowercase();
        let model = model.unwrap_or("the model");
        if lower.contains("not found") || lower.contains("does not exist") {
            Error::NotFound(format!(
                "Ollama at {} has no model `{model}` ({message}); pull it with `ollama pull {model}`",
                self.url
            ))
        } else if lower.contains("context length")
            || lower.contains("context window")
            || lower.contains("context size")
        {
            Error::ContextOverflow(format!(
                "the input does not fit the context of `{model}` on Ollama at {} ({message}); shorten it",
                self.url
            ))
        } else {
            Error::Backend(format!("Ollama at {} failed: {message}", self.url))
        }
    }
}

impl Backend for OllamaBackend {
    fn name(&self) -> &str {
        "ollama"
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<LocalModelInfo>>> {
        let span = tracing::debug_span!("convergio.local_model.ollama.list", url = %self.url);
        Box::pin(
            async move {
                let models = self
                    .client
                    .list_local_models()
                    .await
                    .map_err(|e| self.error(e, None))?;
                let mut infos = Vec::with_capacity(models.len());
                for model in models {
                    let shown = self.shown(&model).await;
                    infos.push(LocalModelInfo {
                        name: model.name,
                        backend: "ollama".to_owned(),
                        size_bytes: model.size,
                        quantization: shown.quantization,
                        context_length: shown.context_length,
                        embedding_length: shown.embedding_length,
                        sha256: shown.sha256,
                        // ollama-rs has no `/api/ps` (see the module's docs).
                        loaded: false,
                    });
                }
                Ok(infos)
            }
            .instrument(span),
        )
    }

    fn generate(&self, request: GenerateRequest) -> BoxFuture<'_, Result<Events>> {
        let span = tracing::debug_span!(
            "convergio.local_model.ollama.generate",
            url = %self.url,
            model = %request.model
        );
        Box::pin(
            async move {
                if request.messages.is_empty() {
                    return Err(Error::InvalidInput(format!(
                        "a generation with `{}` needs at least one message",
                        request.model
                    )));
                }
                let messages = request.messages.iter().map(chat_message).collect();
                let mut chat = ChatMessageRequest::new(request.model.clone(), messages);
                let options = model_options(&request.sampling);
                if options != ModelOptions::default() {
                    chat = chat.options(options);
                }
                match &request.format {
                    ResponseFormat::Text => {}
                    ResponseFormat::JsonObject => chat = chat.format(FormatType::Json),
                    // Ollama (0.5 and later) constrains the answer to the schema.
                    ResponseFormat::JsonSchema(schema) => {
                        let format: FormatType = serde_json::from_str(schema).map_err(|e| {
                            Error::InvalidInput(format!(
                                "the answer's JSON Schema is not a JSON object: {e}"
                            ))
                        })?;
                        chat = chat.format(format);
                    }
                }
                let stream = self
                    .client
                    .send_chat_messages_stream(chat)
                    .await
                    .map_err(|e| self.error(e, Some(&request.model)))?;
                let (events, receiver) = mpsc::channel(EVENTS_CAPACITY);
                let relay = Relay {
                    url: self.url.clone(),
                    model: request.model,
                    max_tokens: request.sampling.max_tokens,
                    events,
                };
                tokio::spawn(relay.run(stream).in_current_span());
                Ok(receiver)
            }
            .instrument(span),
        )
    }

    fn embed(&self, model: String, inputs: Vec<String>) -> BoxFuture<'_, Result<Vec<Vec<f32>>>> {
        let span = tracing::debug_span!(
            "convergio.local_model.ollama.embed",
            url = %self.url,
            model = %model,
            inputs = inputs.len()
        );
        Box::pin(
            async move {
                if inputs.is_empty() {
                    return Ok(Vec::new());
                }
                let count = inputs.len();
                // `truncate: false`: an input longer than the context is an
                // error rather than the embedding of its beginning.
                let request = GenerateEmbeddingsRequest::new(
                    model.clone(),
                    EmbeddingsInput::Multiple(inputs),
                )
                .truncate(false);
                let response = self
                    .client
                    .generate_embeddings(request)
                    .await
                    .map_err(|e| self.error(e, Some(&model)))?;
                if response.embeddings.len() != count {
                    return Err(Error::Backend(format!(
                        "Ollama at {} returned {} embeddings for {count} inputs",
                        self.url,
                        response.embeddings.len()
                    )));
                }
                Ok(response.embeddings)
            }
            .instrument(span),
        )
    }
}

/// Moves a chat stream into the events channel, until the stream ends or
/// the receiver is dropped.
struct Relay {
    url: String,
    model: String,
    max_tokens: Option<u32>,
    events: mpsc::Sender<Result<Event>>,
}

impl Relay {
    async fn run(self, mut stream: ChatMessageResponseStream) {
        let mut text = String::new();
        loop {
            // Waiting on `closed` too: a dropped receiver stops the reading
            // even while the server is slow to send the next chunk. Dropping
            // the stream closes the connection, which stops Ollama.
            let chunk = tokio::select! {
                () = self.events.closed() => return,
                chunk = stream.next() => chunk,
            };
            let chunk = match chunk {
                Some(Ok(chunk)) => chunk,
                Some(Err(())) => {
                    return self
                        .fail(format!(
                            "the connection to Ollama at {} broke during a generation with `{}`",
                            self.url, self.model
                        ))
                        .await;
                }
                None => {
                    return self
                        .fail(format!(
                            "Ollama at {} ended a generation with `{}` without its final message \
                             (the server failed mid-generation; its log says why)",
                            self.url, self.model
                        ))
                        .await;
                }
            };
            let piece = chunk.message.content;
            if !piece.is_empty() {
                text.push_str(&piece);
                if self.events.send(Ok(Event::Text(piece))).await.is_err() {
                    return;
                }
            }
            if chunk.done {
                let (input, output) = match &chunk.final_data {
                    Some(data) => (data.prompt_eval_count, data.eval_count),
                    // ollama-rs reads the counts only when every timing of
                    // the final chunk is there.
                    None => (0, 0),
                };
                // `done_reason` is not read by ollama-rs (see the module's docs).
                let stopped = self
                    .max_tokens
                    .is_none_or(|max| chunk.final_data.is_none() || output < u64::from(max));
                let generation = Generation {
                    text,
                    stopped,
                    usage: Usage {
                        input_tokens: saturate(input),
                        output_tokens: saturate(output),
                        cost_micro_usd: 0,
                    },
                };
                // Nothing to do if the receiver is gone.
                let _ = self.events.send(Ok(Event::Done(generation))).await;
                return;
            }
        }
    }

    async fn fail(&self, message: String) {
        let _ = self.events.send(Err(Error::Backend(message))).await;
    }
}

/// The body of an error answer of Ollama's.
#[derive(serde::Deserialize)]
struct ErrorBody {
    error: String,
}

fn saturate(count: u64) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
}

/// An error and its sources, `: `-separated (reqwest's own message is only
/// "error sending request").
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn chat_message(message: &Message) -> ChatMessage {
    let role = match message.role {
        Role::System => MessageRole::System,
        Role::User => MessageRole::User,
        Role::Assistant => MessageRole::Assistant,
        Role::Tool => MessageRole::Tool,
    };
    let mut chat = ChatMessage::new(role, message.content.clone());
    chat.tool_calls = message
        .tool_calls
        .iter()
        .map(|call| ToolCall {
            function: ToolCallFunction {
                name: call.name.clone(),
                // Ollama wants the arguments as a JSON object; text that is
                // not JSON is passed on as a string.
                arguments: serde_json::from_str(&call.arguments)
                    .unwrap_or_else(|_| serde_json::Value::String(call.arguments.clone())),
            },
        })
        .collect();
    chat
}

/// Ollama's `options` for `sampling`. Unset values are left out, so the
/// model's own defaults (its Modelfile's stop sequences, ...) apply.
fn model_options(sampling: &Sampling) -> ModelOptions {
    let mut options = ModelOptions::default();
    if let Some(temperature) = sampling.temperature {
        options = options.temperature(temperature);
    }
    if let Some(top_p) = sampling.top_p {
        options = options.top_p(top_p);
    }
    if let Some(top_k) = sampling.top_k {
        options = options.top_k(top_k);
    }
    if let Some(seed) = sampling.seed {
        // Ollama's seed is a signed 64-bit integer, ollama-rs's an i32: sent
        // as an extra option, with the bits of the u64 (a seed only has to
        // be the same for the same value).
        options = options.extra("seed", i64::from_ne_bytes(seed.to_ne_bytes()));
    }
    if let Some(max_tokens) = sampling.max_tokens {
        options = options.num_predict(i32::try_from(max_tokens).unwrap_or(i32::MAX));
    }
    if !sampling.stop.is_empty() {
        options = options.stop(sampling.stop.clone());
    }
    options
}

/// The facts of an `/api/show` answer.
fn shown_of(info: &ModelInfo) -> Shown {
    let model_info = &info.model_info;
    let arch = model_info
        .get("general.architecture")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    let number = |key: &str| {
        model_info
            .get(key)
            .and_then(serde_json::Value::as_u64)
            .map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX))
    };
    Shown {
        quantization: model_info
            .get("general.file_type")
            .and_then(serde_json::Value::as_u64)
            .and_then(crate::gguf::file_type_name)
            .unwrap_or_default()
            .to_owned(),
        context_length: number(&format!("{arch}.context_length")),
        embedding_length: number(&format!("{arch}.embedding_length")),
        sha256: from_blob_sha256(&info.modelfile).unwrap_or_default(),
    }
}

/// The sha256 of the model blob a modelfile names on its `FROM` line
/// (`FROM /…/blobs/sha256-<hex>`, or `sha256:<hex>` in older servers).
fn from_blob_sha256(modelfile: &str) -> Option<String> {
    let from = modelfile
        .lines()
        .find_map(|line| line.trim_start().strip_prefix("FROM "))?;
    let at = from.find("sha256")?;
    let hex = from.get(at + "sha256-".len()..at + "sha256-".len() + 64)?;
    let separator = from.get(at + "sha256".len()..at + "sha256-".len())?;
    (matches!(separator, "-" | ":") && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| hex.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_from_blob_is_the_sha256() {
        let hex = "74701a8c35f6c8d9a4b91f3f3497643001d63e0c7a84e085bed452548fa88d45";
        let modelfile = format!(
            "# Modelfile generated by \"ollama show\"\n# FROM llama3.2:1b\n\nFROM /root/.ollama/models/blobs/sha256-{hex}\nTEMPLATE x\n"
        );
        assert_eq!(from_blob_sha256(&modelfile).as_deref(), Some(hex));
        let old = format!(
            "FROM /Users/m/.ollama/models/blobs/sha256:{}\n",
            hex.to_uppercase()
        );
        assert_eq!(from_blob_sha256(&old).as_deref(), Some(hex));
        assert_eq!(from_blob_sha256("FROM llama3.2:1b\n"), None);
        assert_eq!(from_blob_sha256("FROM /blobs/sha256-abc\n"), None);
        assert_eq!(from_blob_sha256(""), None);
    }

    #[test]
    fn unset_sampling_sends_no_options() {
        assert_eq!(model_options(&Sampling::default()), ModelOptions::default());
    }

    #[test]
    fn a_seed_beyond_i64_keeps_its_bits() {
        let options = model_options(&Sampling {
            seed: Some(u64::MAX),
            ..Sampling::default()
        });
        let json = serde_json::to_value(&options).unwrap_or_default();
        assert_eq!(json["seed"], serde_json::json!(-1));
    }
}
