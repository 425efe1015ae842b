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
//! swaps it for `x-goog-api-key`. [`config`] is the operator's settings,
//! [`models`] the declared models and prices, [`wire`] the JSON on the wire,
//! [`map`] the pure mapping (unit-tested natively) and [`schema`] the
//! conversion of tools' JSON Schemas to Gemini's OpenAPI subset; [`Gemini`]
//! is the SDK's [`Adapter`] over them.

pub mod config;
pub mod map;
pub mod models;
pub mod schema;
pub mod wire;

use convergio_sdk::provider::{
    self, Adapter, Completion, ConfigSource, Embeddings, ErrorResponse, ModelError, ModelInfo,
    Post, ProviderInfo, ProviderRequest, now_unix_secs,
};

use crate::config::Settings;
use crate::map::StreamState;

/// The component.
#[derive(Debug)]
pub struct Gemini;

impl Adapter for Gemini {
    type Settings = Settings;
    type Decoder = StreamState;

    fn info(_config: impl ConfigSource) -> ProviderInfo {
        ProviderInfo {
            id: config::PROVIDER_ID.to_owned(),
            name: "Google Gemini".to_owned(),
        }
    }

    fn models(_config: impl ConfigSource) -> provider::Result<Vec<ModelInfo>> {
        Ok(models::model_infos())
    }

    fn chat(
        settings: &Settings,
        request: &ProviderRequest,
        stream: bool,
    ) -> provider::Result<Post> {
        map::chat(settings, request, stream)
    }

    fn completion(
        _settings: &Settings,
        request: &ProviderRequest,
        body: &[u8],
    ) -> provider::Result<Completion> {
        map::completion(&request.model, body)
    }

    fn decoder(_settings: &Settings, request: &ProviderRequest) -> StreamState {
        StreamState::new(&request.model)
    }

    fn error(_settings: &Settings, failure: &ErrorResponse) -> ModelError {
        let retry_after = failure.header("retry-after");
        map::status_error(failure.status, retry_after, &failure.body, now_unix_secs())
    }

    fn embed(
        settings: &Settings,
        model: &str,
        inputs: &[String],
        send: &mut dyn FnMut(&Post) -> provider::Result<Vec<u8>>,
    ) -> provider::Result<Embeddings> {
        map::embed(settings, model, inputs, send)
    }
}

// Only the component exports the interface: a native build (the rlib the
// unit tests link) would try to export symbols named after WIT paths.
#[cfg(target_arch = "wasm32")]
convergio_sdk::export_provider!(Gemini);
