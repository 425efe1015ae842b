//! `convergio-provider-anthropic`: the Anthropic Messages API as a Convergio
//! provider adapter component (`convergio:platform/provider`).
//!
//! The component reaches `POST {base-url}/v1/messages` only through
//! [`convergio_sdk::client`] (`wasi:http`), naming its key by reference; the
//! host replaces the reference with the `x-api-key` header, so the component
//! never holds a secret. [`wire`] is the JSON on the wire, [`map`] the pure
//! mapping to and from the platform's types, [`models`] the declared models
//! and prices, [`config`] the operator's settings; this file is the glue.

pub mod config;
pub mod map;
pub mod models;
pub mod wire;

use convergio_sdk::client::Response;
use convergio_sdk::log;
use convergio_sdk::provider::{
    self, Completion, CompletionStream, Embeddings, Guest, ModelInfo, ProviderInfo,
    ProviderRequest, SseStream, Upstream, now_unix_secs, wasi_config,
};

use crate::config::Settings;
use crate::map::StreamDecoder;

/// The component.
#[derive(Debug)]
pub struct Anthropic;

impl Guest for Anthropic {
    type CompletionStream = SseStream<StreamDecoder>;

    fn info() -> ProviderInfo {
        ProviderInfo {
            id: map::PROVIDER_ID.to_owned(),
            name: "Anthropic".to_owned(),
        }
    }

    fn models() -> provider::Result<Vec<ModelInfo>> {
        Ok(models::model_infos())
    }

    fn complete(request: ProviderRequest) -> provider::Result<Completion> {
        let (upstream, response) = send(&request, false)?;
        let body = upstream.read_body(response)?;
        map::parse_completion(&body, &request.model)
    }

    fn stream(request: ProviderRequest) -> provider::Result<CompletionStream> {
        let (upstream, response) = send(&request, true)?;
        let decoder = StreamDecoder::new(&request.model);
        Ok(CompletionStream::new(SseStream::new(
            &upstream,
            response.events(),
            decoder,
        )))
    }

    fn embed(model: String, _inputs: Vec<String>) -> provider::Result<Embeddings> {
        Err(map::no_embeddings(&model))
    }
}

/// Send `request` to the Messages API; a response whose status is not 2xx
/// becomes its error.
fn send(request: &ProviderRequest, stream: bool) -> provider::Result<(Upstream, Response)> {
    let settings = Settings::load(wasi_config)?;
    let (body, dropped) = map::build_request(request, settings.default_max_tokens, stream)?;
    if !dropped.is_empty() {
        log::warn(&format!(
            "anthropic/{} does not accept {}: left out of the request",
            request.model,
            dropped.join(", ")
        ));
    }
    let upstream = settings.upstream();
    let request = upstream
        .post_json(&settings.messages_url(), &body)?
        .header("anthropic-version", &settings.api_version);
    let response = upstream.send(request, |failure| {
        let retry_after = failure.header("retry-after");
        map::http_error(failure.status, retry_after, &failure.body, now_unix_secs())
    })?;
    Ok((upstream, response))
}

// Only the component exports the interface: the export names (`convergio:
// platform/provider@0.1.0#complete`, …) do not fit a native linker's version
// script, and the native build exists for the unit tests.
#[cfg(target_arch = "wasm32")]
convergio_sdk::export_provider!(Anthropic);
