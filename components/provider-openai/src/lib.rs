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
//! [`wire`] is the JSON on the wire, [`map`] the pure mapping to and from the
//! platform's types, [`models`] the declared models and prices, [`config`]
//! the operator's settings; this file is the glue.

pub mod config;
pub mod map;
pub mod models;
pub mod wire;

use convergio_sdk::client::Response;
use convergio_sdk::log;
use convergio_sdk::provider::{
    self, Completion, CompletionStream, Embeddings, Guest, ModelInfo, ProviderInfo,
    ProviderRequest, SseStream, now_unix_secs, wasi_config,
};
use serde::Serialize;

use crate::config::{Flavor, Settings};
use crate::map::{Api, Call, StreamDecoder};

/// The component.
#[derive(Debug)]
pub struct OpenAi;

impl Guest for OpenAi {
    type CompletionStream = SseStream<StreamDecoder>;

    fn info() -> ProviderInfo {
        let azure = Flavor::is_azure(wasi_config);
        ProviderInfo {
            id: config::provider_id(azure).to_owned(),
            name: if azure { "Azure OpenAI" } else { "OpenAI" }.to_owned(),
        }
    }

    fn models() -> provider::Result<Vec<ModelInfo>> {
        settings()?.model_infos()
    }

    fn complete(request: ProviderRequest) -> provider::Result<Completion> {
        let settings = settings()?;
        let call = call(&settings, &request.model);
        let response = send_chat(&settings, &call, &request, false)?;
        let body = call.api.upstream.read_body(response)?;
        map::parse_completion(&body, &call)
    }

    fn stream(request: ProviderRequest) -> provider::Result<CompletionStream> {
        let settings = settings()?;
        let call = call(&settings, &request.model);
        let response = send_chat(&settings, &call, &request, true)?;
        let upstream = call.api.upstream.clone();
        Ok(CompletionStream::new(SseStream::new(
            &upstream,
            response.events(),
            StreamDecoder::new(call),
        )))
    }

    fn embed(model: String, inputs: Vec<String>) -> provider::Result<Embeddings> {
        let settings = settings()?;
        let call = call(&settings, &model);
        let body = map::build_embeddings_request(&inputs, &call)?;
        if inputs.is_empty() {
            return Ok(map::no_embeddings(&call));
        }
        let url = settings.embeddings_url(&model)?;
        let response = post(&call.api, &url, &body)?;
        let bytes = call.api.upstream.read_body(response)?;
        map::parse_embeddings(&bytes, &call, inputs.len())
    }
}

fn settings() -> provider::Result<Settings> {
    Settings::load(wasi_config)
}

fn call(settings: &Settings, model: &str) -> Call {
    Call {
        api: Api::new(settings),
        model: model.to_owned(),
        spec: settings.spec(model),
    }
}

/// Send `request` to Chat Completions.
fn send_chat(
    settings: &Settings,
    call: &Call,
    request: &ProviderRequest,
    stream: bool,
) -> provider::Result<Response> {
    let built = map::build_request(request, call, stream)?;
    if !built.dropped.is_empty() {
        log::warn(&format!(
            "{}/{} does not accept {}: left out of the request",
            call.api.provider,
            request.model,
            built.dropped.join(", ")
        ));
    }
    if built.reasoning_off {
        log::info(&format!(
            "{}/{}: reasoning_effort \"none\" sent, the only setting at which Chat Completions \
             accepts tools for this model",
            call.api.provider, request.model
        ));
    }
    let url = settings.chat_url(&request.model)?;
    post(&call.api, &url, &built.body)
}

/// POST `body` as JSON to `url` with the key attached by reference; a
/// response whose status is not 2xx becomes its error.
fn post(api: &Api, url: &str, body: &impl Serialize) -> provider::Result<Response> {
    let request = api.upstream.post_json(url, body)?;
    api.upstream.send(request, |failure| {
        let header = |name: &str| failure.header(name).map(str::to_owned);
        let retry_after = map::retry_after_ms(header, now_unix_secs());
        map::http_error(api, failure.status, retry_after, &failure.body)
    })
}

// Native builds (the unit tests) cannot link the component's export symbols.
#[cfg(target_arch = "wasm32")]
convergio_sdk::export_provider!(OpenAi);
