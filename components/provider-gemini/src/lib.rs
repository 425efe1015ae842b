//! `convergio-provider-gemini`: the Google Gemini API as a Convergio
//! provider adapter (`convergio:platform/provider`).
//!
//! - `complete`: `POST {base-url}/{api-version}/models/{model}:generateContent`
//! - `stream`: `POST …/models/{model}:streamGenerateContent?alt=sse`, one
//!   delta per upstream event, held in the `completion-stream` resource
//! - `embed`: `POST …/models/{model}:batchEmbedContents`, 100 inputs a request
//!
//! The API key never enters the component: requests carry the reference of
//! the configured key (`convergio-key: key:gemini/default`) and the host
//! swaps it for `x-goog-api-key`. The wire types are in [`wire`], the pure
//! mapping (unit-tested natively) in [`map`], the declared models in
//! [`models`], and JSON Schema conversion in [`schema`]; this file is the glue.

use convergio_sdk::client::Response;
use convergio_sdk::log;
use convergio_sdk::provider::{
    self, Completion, CompletionStream, Embeddings, Guest, ModelInfo, ProviderInfo,
    ProviderRequest, SseStream, Upstream, now_unix_secs, wasi_config,
};
use serde_json::Value;

pub mod map;
pub mod models;
pub mod schema;
pub mod wire;

use map::Settings;

/// The component.
#[derive(Debug)]
pub struct Gemini;

impl Guest for Gemini {
    type CompletionStream = SseStream<map::StreamState>;

    fn info() -> ProviderInfo {
        ProviderInfo {
            id: map::PROVIDER_ID.to_owned(),
            name: "Google Gemini".to_owned(),
        }
    }

    fn models() -> provider::Result<Vec<ModelInfo>> {
        Ok(models::declared())
    }

    fn complete(request: ProviderRequest) -> provider::Result<Completion> {
        let (settings, upstream) = configured()?;
        let body = request_body(&request)?;
        let url = settings.url(&request.model, "generateContent")?;
        let bytes = upstream.read_body(post(&upstream, &url, &body)?)?;
        map::completion(&request.model, &bytes)
    }

    fn stream(request: ProviderRequest) -> provider::Result<CompletionStream> {
        let (settings, upstream) = configured()?;
        let body = request_body(&request)?;
        let url = settings.url(&request.model, "streamGenerateContent?alt=sse")?;
        let response = post(&upstream, &url, &body)?;
        Ok(CompletionStream::new(SseStream::new(
            &upstream,
            response.events(),
            map::StreamState::new(&request.model),
        )))
    }

    fn embed(model: String, inputs: Vec<String>) -> provider::Result<Embeddings> {
        let (settings, upstream) = configured()?;
        let url = settings.url(&model, "batchEmbedContents")?;
        let mut vectors = Vec::with_capacity(inputs.len());
        for batch in inputs.chunks(map::EMBED_BATCH) {
            let body = map::embed_body(&model, batch)?;
            let bytes = upstream.read_body(post(&upstream, &url, &body)?)?;
            vectors.extend(map::embedding_vectors(&bytes, batch.len())?);
        }
        Ok(map::embeddings(&model, vectors))
    }
}

/// The body for `request`, logging what had to be left out.
fn request_body(request: &ProviderRequest) -> provider::Result<Value> {
    let (body, notes) = map::request_body(request)?;
    for note in notes {
        log::debug(&format!("provider-gemini: {note}"));
    }
    Ok(body)
}

/// The settings from `wasi:config`, and the API they point at.
fn configured() -> provider::Result<(Settings, Upstream)> {
    let settings = Settings::load(wasi_config)?;
    let upstream = settings.upstream();
    Ok((settings, upstream))
}

/// POSTs `body` with the key attached; a response whose status is not 2xx
/// becomes its error.
fn post(upstream: &Upstream, url: &str, body: &Value) -> provider::Result<Response> {
    let request = upstream.post_json(url, body)?;
    upstream.send(request, |failure| {
        let retry_after = failure.header("retry-after");
        map::status_error(failure.status, retry_after, &failure.body, now_unix_secs())
    })
}

// Only the component exports the interface: a native build (the rlib the
// unit tests link) would try to export symbols named after WIT paths.
#[cfg(target_arch = "wasm32")]
convergio_sdk::export_provider!(Gemini);
