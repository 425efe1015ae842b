//! `convergio-provider-anthropic`: the Anthropic Messages API as a Convergio
//! provider adapter component (`convergio:platform/provider`).
//!
//! The component reaches `POST {base-url}/v1/messages` only through
//! [`convergio_sdk::client`] (`wasi:http`), naming its key by reference; the
//! host replaces the reference with the `x-api-key` header, so the component
//! never holds a secret. [`config`] is the operator's settings, [`models`]
//! the declared models and prices, [`wire`] the JSON on the wire and [`map`]
//! the pure mapping to and from the platform's types; [`Anthropic`] is the
//! SDK's [`Adapter`] over them.

pub mod config;
pub mod map;
pub mod models;
pub mod wire;

use convergio_sdk::provider::{
    self, Adapter, Completion, ConfigSource, Embeddings, ErrorResponse, ModelError, ModelInfo,
    Post, ProviderInfo, ProviderRequest, now_unix_secs,
};

use crate::config::Settings;
use crate::map::StreamDecoder;

/// The component.
#[derive(Debug)]
pub struct Anthropic;

impl Adapter for Anthropic {
    type Settings = Settings;
    type Decoder = StreamDecoder;

    fn info(_config: impl ConfigSource) -> ProviderInfo {
        ProviderInfo {
            id: map::PROVIDER_ID.to_owned(),
            name: "Anthropic".to_owned(),
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
        map::parse_completion(body, &request.model)
    }

    fn decoder(_settings: &Settings, request: &ProviderRequest) -> StreamDecoder {
        StreamDecoder::new(&request.model)
    }

    fn error(_settings: &Settings, failure: &ErrorResponse) -> ModelError {
        let retry_after = failure.header("retry-after");
        map::http_error(failure.status, retry_after, &failure.body, now_unix_secs())
    }

    fn embed(
        _settings: &Settings,
        model: &str,
        _inputs: &[String],
        _send: &mut dyn FnMut(&Post) -> provider::Result<Vec<u8>>,
    ) -> provider::Result<Embeddings> {
        Err(map::no_embeddings(model))
    }
}

// Only the component exports the interface: the export names (`convergio:
// platform/provider@0.1.0#complete`, …) do not fit a native linker's version
// script, and the native build exists for the unit tests.
#[cfg(target_arch = "wasm32")]
convergio_sdk::export_provider!(Anthropic);
