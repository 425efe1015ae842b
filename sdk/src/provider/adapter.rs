//! One shape for every adapter of an HTTP API: implement [`Adapter`] (the
//! settings, the models, the mapping of requests, answers, stream events and
//! error responses) and the SDK implements the `provider` interface's
//! [`Guest`] for it: it reads the settings from `wasi:config`, sends each
//! [`Post`] with the key by reference, hands 2xx answers to the mapping and
//! every other status to [`Adapter::error`], and streams through
//! [`SseStream`].
//!
//! Everything an adapter writes is pure, so it is unit-tested natively: a
//! request is a [`Post`] to compare, an answer is bytes to parse, and
//! [`Adapter::embed`] sends through a closure a test answers itself.
//!
//! ```no_run
//! use convergio_sdk::provider::{
//!     self, Adapter, AdapterSettings, Completion, ConfigSource, Delta, Embeddings, ErrorResponse, EventDecoder,
//!     KeyName, ModelError, ModelInfo, Post, ProviderConfig, ProviderInfo, ProviderRequest,
//!     Upstream,
//! };
//! use convergio_sdk::sse::SseEvent;
//!
//! struct Acme;
//!
//! struct Settings { base_url: String, key: KeyName }
//!
//! struct Decoder;
//!
//! impl EventDecoder for Decoder {
//!     // Acme streams `data: {"text": "…"}` events and ends with `data: [DONE]`.
//!     fn event(&mut self, event: &SseEvent) -> provider::Result<Option<Delta>> {
//!         if event.data == "[DONE]" {
//!             return Ok(None);
//!         }
//!         let chunk: serde_json::Value = serde_json::from_str(&event.data)
//!             .map_err(|e| ModelError::MalformedResponse(format!("Acme API event: {e}")))?;
//!         let content = chunk["text"].as_str().unwrap_or_default().to_owned();
//!         Ok(Some(Delta { content, tool_calls: Vec::new(), finish_reason: None, usage: None }))
//!     }
//!     fn finished(&self) -> bool { false }
//!     fn end(&mut self) -> provider::Result<Delta> {
//!         Err(ModelError::MalformedResponse("the Acme API stream ended early".into()))
//!     }
//! }
//!
//! impl AdapterSettings for Settings {
//!     fn load(config: impl ConfigSource) -> provider::Result<Settings> {
//!         let config = ProviderConfig::new("acme", config);
//!         Ok(Settings { base_url: config.base_url("https://api.acme.test")?, key: config.key("acme/default")? })
//!     }
//!     fn upstream(&self) -> Upstream {
//!         Upstream::new("Acme API", &self.base_url, self.key.clone())
//!     }
//! }
//!
//! impl Adapter for Acme {
//!     type Settings = Settings;
//!     type Decoder = Decoder;
//!
//!     fn info(_config: impl ConfigSource) -> ProviderInfo {
//!         ProviderInfo { id: "acme".into(), name: "Acme".into() }
//!     }
//!     fn models(_config: impl ConfigSource) -> provider::Result<Vec<ModelInfo>> { Ok(Vec::new()) }
//!     fn chat(settings: &Settings, request: &ProviderRequest, stream: bool) -> provider::Result<Post> {
//!         let body = serde_json::json!({"model": request.model, "stream": stream});
//!         Post::json(format!("{}/chat", settings.base_url), &body)
//!     }
//!     fn completion(_: &Settings, request: &ProviderRequest, body: &[u8]) -> provider::Result<Completion> {
//!         let answer: serde_json::Value = serde_json::from_slice(body)
//!             .map_err(|e| ModelError::MalformedResponse(format!("Acme API answer: {e}")))?;
//!         Ok(Completion {
//!             provider: "acme".into(),
//!             model: request.model.clone(),
//!             message: provider::Message {
//!                 role: provider::Role::Assistant,
//!                 content: answer["text"].as_str().unwrap_or_default().to_owned(),
//!                 tool_calls: Vec::new(),
//!                 tool_call_id: None,
//!             },
//!             finish_reason: provider::FinishReason::Stop,
//!             usage: provider::Usage::default(),
//!         })
//!     }
//!     fn decoder(_: &Settings, _: &ProviderRequest) -> Decoder { Decoder }
//!     fn error(_: &Settings, failure: &ErrorResponse) -> ModelError {
//!         ModelError::Upstream(format!("Acme API answered HTTP {}", failure.status))
//!     }
//!     fn embed(
//!         _: &Settings,
//!         model: &str,
//!         _inputs: &[String],
//!         _send: &mut dyn FnMut(&Post) -> provider::Result<Vec<u8>>,
//!     ) -> provider::Result<Embeddings> {
//!         Err(ModelError::NoModel(format!("acme/{model}: Acme has no embeddings")))
//!     }
//! }
//!
//! #[cfg(target_arch = "wasm32")]
//! convergio_sdk::export_provider!(Acme);
//! ```

use serde::Serialize;
use serde_json::Value;

use crate::client::Response;
use crate::log::{self, Level};
use crate::provider::{
    Completion, CompletionStream, ConfigSource, Embeddings, ErrorResponse, EventDecoder, Guest,
    ModelError, ModelInfo, ProviderInfo, ProviderRequest, Result, SseStream, Upstream, wasi_config,
};

/// An adapter's settings: read and checked from the plugin's configuration,
/// and the API they point at.
pub trait AdapterSettings: Sized {
    /// Reads and checks the settings (see [`ProviderConfig`](crate::provider::ProviderConfig)):
    /// a bad value is a `bad-request` naming the key and the fix.
    fn load(config: impl ConfigSource) -> Result<Self>;

    /// The API the settings point at: its name, origin and key.
    fn upstream(&self) -> Upstream;
}

/// An adapter of one upstream API: what is specific to that API. The SDK
/// implements [`Guest`] for every `Adapter`, so
/// `convergio_sdk::export_provider!(MyAdapter)` exports it.
///
/// `config` is where settings come from ([`wasi_config`] in the component,
/// a table in unit tests).
pub trait Adapter {
    /// The operator's settings.
    type Settings: AdapterSettings;
    /// Turns the events of a streamed answer into deltas.
    type Decoder: EventDecoder + 'static;

    /// The adapter's id (the prefix of `provider/model` names) and name.
    fn info(config: impl ConfigSource) -> ProviderInfo;

    /// The models it serves, with prices, limits and features (read the
    /// settings only if the list depends on them).
    fn models(config: impl ConfigSource) -> Result<Vec<ModelInfo>>;

    /// The request for `request` (`stream` asks for server-sent events), or
    /// why it cannot be sent.
    fn chat(settings: &Self::Settings, request: &ProviderRequest, stream: bool) -> Result<Post>;

    /// The completion in a 2xx answer to [`chat`](Self::chat).
    fn completion(
        settings: &Self::Settings,
        request: &ProviderRequest,
        body: &[u8],
    ) -> Result<Completion>;

    /// The decoder of a streamed answer to [`chat`](Self::chat).
    fn decoder(settings: &Self::Settings, request: &ProviderRequest) -> Self::Decoder;

    /// The error an answer that is not 2xx stands for (the SDK logs it).
    fn error(settings: &Self::Settings, failure: &ErrorResponse) -> ModelError;

    /// Embeddings of `inputs` by `model`: `send` posts one request and
    /// returns its 2xx body (any other answer is already its
    /// [`error`](Self::error)). An API without embeddings returns the error
    /// that says so.
    fn embed(
        settings: &Self::Settings,
        model: &str,
        inputs: &[String],
        send: &mut dyn FnMut(&Post) -> Result<Vec<u8>>,
    ) -> Result<Embeddings>;
}

/// A JSON POST to the upstream, as an adapter's mapping builds it: the
/// key's reference and `content-type` are added when it is sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Post {
    /// The whole URL.
    pub url: String,
    /// The JSON body, encoded.
    pub body: Vec<u8>,
    /// Headers besides `content-type` and the key.
    pub headers: Vec<(String, String)>,
    /// What the mapping changed or left out, logged when it is sent.
    pub notes: Vec<(Level, String)>,
}

impl Post {
    /// A POST of `body` as JSON to `url`.
    pub fn json(url: impl Into<String>, body: &impl Serialize) -> Result<Self> {
        let body = serde_json::to_vec(body)
            .map_err(|e| ModelError::BadRequest(format!("the request cannot be encoded: {e}")))?;
        Ok(Self {
            url: url.into(),
            body,
            headers: Vec::new(),
            notes: Vec::new(),
        })
    }

    /// Adds header `name: value`.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Adds a line to log at `level` when the request is sent.
    pub fn note(mut self, level: Level, message: impl Into<String>) -> Self {
        self.notes.push((level, message.into()));
        self
    }

    /// The body as JSON, as the upstream reads it (for tests and messages).
    pub fn json_body(&self) -> Result<Value> {
        serde_json::from_slice(&self.body)
            .map_err(|e| ModelError::BadRequest(format!("the request is not JSON: {e}")))
    }
}

/// Logs `post`'s notes, sends it, and hands back a 2xx response; any other
/// status is [`Adapter::error`].
fn send<A: Adapter>(settings: &A::Settings, upstream: &Upstream, post: &Post) -> Result<Response> {
    for (level, note) in &post.notes {
        log::log(*level, "", note);
    }
    let request = upstream.post(post)?;
    upstream.send(request, |failure| A::error(settings, failure))
}

impl<A: Adapter> Guest for A {
    type CompletionStream = SseStream<A::Decoder>;

    fn info() -> ProviderInfo {
        A::info(wasi_config)
    }

    fn models() -> Result<Vec<ModelInfo>> {
        A::models(wasi_config)
    }

    fn complete(request: ProviderRequest) -> Result<Completion> {
        let settings = A::Settings::load(wasi_config)?;
        let upstream = settings.upstream();
        let post = A::chat(&settings, &request, false)?;
        let body = upstream.read_body(send::<A>(&settings, &upstream, &post)?)?;
        A::completion(&settings, &request, &body)
    }

    fn stream(request: ProviderRequest) -> Result<CompletionStream> {
        let settings = A::Settings::load(wasi_config)?;
        let upstream = settings.upstream();
        let post = A::chat(&settings, &request, true)?;
        let response = send::<A>(&settings, &upstream, &post)?;
        let decoder = A::decoder(&settings, &request);
        Ok(CompletionStream::new(SseStream::new(
            &upstream,
            response.events(),
            decoder,
        )))
    }

    fn embed(model: String, inputs: Vec<String>) -> Result<Embeddings> {
        let settings = A::Settings::load(wasi_config)?;
        let upstream = settings.upstream();
        A::embed(&settings, &model, &inputs, &mut |post| {
            upstream.read_body(send::<A>(&settings, &upstream, post)?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_post_carries_its_json_headers_and_notes() {
        let post = Post::json("https://api.acme.test/chat", &("hi", 2))
            .unwrap()
            .header("acme-version", "1")
            .note(Level::Warn, "seed left out");
        assert_eq!(post.body, br#"["hi",2]"#);
        assert_eq!(post.json_body().unwrap(), serde_json::json!(["hi", 2]));
        assert_eq!(post.headers, [("acme-version".to_owned(), "1".to_owned())]);
        assert_eq!(post.notes.len(), 1);
    }
}
