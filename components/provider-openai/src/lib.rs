//! `convergio-provider-openai`: the OpenAI Chat Completions and Embeddings
//! APIs, and Azure OpenAI through the same component, as a Convergio
//! provider adapter (`convergio:platform/provider`).
//!
//! The component reaches `POST {base-url}/chat/completions` and
//! `POST {base-url}/embeddings` (Azure: `{endpoint}/openai/deployments/
//! {deployment}/…?api-version=…`) only through [`convergio_sdk::client`]
//! (`wasi:http`), naming its key by reference; the host replaces the
//! reference with the key's auth header (`authorization: Bearer …` for
//! OpenAI, `api-key` for Azure), so the component never holds a secret.
//! [`config`] is the operator's settings, [`models`] the declared models and
//! prices, [`wire`] the JSON on the wire and [`map`] the pure mapping to and
//! from the platform's types; [`OpenAi`] is the SDK's [`Adapter`] over them.

pub mod config;
pub mod map;
pub mod models;
pub mod wire;

use convergio_sdk::provider::AdapterSettings as _;
use convergio_sdk::provider::{
    self, Adapter, Completion, ConfigSource, Embeddings, ErrorResponse, ModelError, ModelInfo,
    Post, ProviderInfo, ProviderRequest, now_unix_secs,
};

use crate::config::{Flavor, Settings};
use crate::map::{Api, Call, StreamDecoder};

/// The component.
#[derive(Debug)]
pub struct OpenAi;

impl Adapter for OpenAi {
    type Settings = Settings;
    type Decoder = StreamDecoder;

    fn info(config: impl ConfigSource) -> ProviderInfo {
        let azure = Flavor::is_azure(config);
        ProviderInfo {
            id: config::provider_id(azure).to_owned(),
            name: if azure { "Azure OpenAI" } else { "OpenAI" }.to_owned(),
        }
    }

    fn models(config: impl ConfigSource) -> provider::Result<Vec<ModelInfo>> {
        Settings::load(config)?.model_infos()
    }

    fn chat(
        settings: &Settings,
        request: &ProviderRequest,
        stream: bool,
    ) -> provider::Result<Post> {
        map::chat(settings, request, stream)
    }

    fn completion(
        settings: &Settings,
        request: &ProviderRequest,
        body: &[u8],
    ) -> provider::Result<Completion> {
        map::parse_completion(body, &Call::new(settings, &request.model))
    }

    fn decoder(settings: &Settings, request: &ProviderRequest) -> StreamDecoder {
        StreamDecoder::new(Call::new(settings, &request.model))
    }

    fn error(settings: &Settings, failure: &ErrorResponse) -> ModelError {
        let header = |name: &str| failure.header(name).map(str::to_owned);
        let retry_after = map::retry_after_ms(header, now_unix_secs());
        map::http_error(
            &Api::new(settings),
            failure.status,
            retry_after,
            &failure.body,
        )
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

// Native builds (the unit tests) cannot link the component's export symbols.
#[cfg(target_arch = "wasm32")]
convergio_sdk::export_provider!(OpenAi);
