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

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use convergio_sdk::client::{Events, Request, Response};
use convergio_sdk::keys::{self, KeyRef};
use convergio_sdk::provider::{
    self, Completion, CompletionStream, Delta, Embeddings, Guest, GuestCompletionStream,
    ModelError, ModelInfo, ProviderInfo, ProviderRequest,
};
use convergio_sdk::{config as wasi_config, log};
use serde::Serialize;

use crate::config::{Flavor, Settings};
use crate::map::{Api, Call, StreamDecoder};

/// The component.
#[derive(Debug)]
pub struct OpenAi;

impl Guest for OpenAi {
    type CompletionStream = OpenAiStream;

    fn info() -> ProviderInfo {
        let azure = Flavor::is_azure(read_config);
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
        let body = response
            .bytes()
            .map_err(|e| map::transport_error(&call.api, &e))?;
        map::parse_completion(&body, &call)
    }

    fn stream(request: ProviderRequest) -> provider::Result<CompletionStream> {
        let settings = settings()?;
        let call = call(&settings, &request.model);
        let response = send_chat(&settings, &call, &request, true)?;
        Ok(CompletionStream::new(OpenAiStream(RefCell::new(
            StreamState {
                events: response.events(),
                api: call.api.clone(),
                decoder: StreamDecoder::new(call),
                done: false,
            },
        ))))
    }

    fn embed(model: String, inputs: Vec<String>) -> provider::Result<Embeddings> {
        let settings = settings()?;
        let call = call(&settings, &model);
        let body = map::build_embeddings_request(&inputs, &call)?;
        if inputs.is_empty() {
            return Ok(map::no_embeddings(&call));
        }
        let url = settings.embeddings_url(&model)?;
        let response = post(&settings, &call.api, &url, &body)?;
        let bytes = response
            .bytes()
            .map_err(|e| map::transport_error(&call.api, &e))?;
        map::parse_embeddings(&bytes, &call, inputs.len())
    }
}

/// A streamed completion: the upstream's server-sent events, decoded as
/// [`GuestCompletionStream::next`] asks for them.
#[derive(Debug)]
pub struct OpenAiStream(RefCell<StreamState>);

#[derive(Debug)]
struct StreamState {
    events: Events,
    api: Api,
    decoder: StreamDecoder,
    /// The last delta or an error was returned: `next` answers `None`.
    done: bool,
}

impl GuestCompletionStream for OpenAiStream {
    fn next(&self) -> Option<provider::Result<Delta>> {
        let mut state = self.0.borrow_mut();
        let StreamState {
            events,
            api,
            decoder,
            done,
        } = &mut *state;
        if *done {
            return None;
        }
        loop {
            let event = match events.next_event() {
                Ok(Some(event)) => event,
                Ok(None) => {
                    *done = true;
                    return Some(Err(decoder.cut_off()));
                }
                Err(e) => {
                    *done = true;
                    return Some(Err(map::transport_error(api, &e)));
                }
            };
            match decoder.push(&event.data) {
                Ok(Some(delta)) => {
                    *done = decoder.finished();
                    return Some(Ok(delta));
                }
                Ok(None) if decoder.finished() => {
                    *done = true;
                    return None;
                }
                Ok(None) => {}
                Err(e) => {
                    *done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

fn read_config(key: &str) -> Result<Option<String>, String> {
    wasi_config::get(key).map_err(|e| match e {
        wasi_config::Error::Upstream(m) | wasi_config::Error::Io(m) => m,
    })
}

fn settings() -> provider::Result<Settings> {
    Settings::load(read_config)
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
    post(settings, &call.api, &url, &built.body)
}

/// POST `body` as JSON to `url` with the key attached by reference; a
/// response whose status is not 2xx becomes its error.
fn post(
    settings: &Settings,
    api: &Api,
    url: &str,
    body: &impl Serialize,
) -> provider::Result<Response> {
    let reference = keys::reference(&KeyRef {
        provider: settings.key_provider.clone(),
        name: settings.key_name.clone(),
    })
    .map_err(|e| map::key_error(api, e))?;
    let body = serde_json::to_vec(body)
        .map_err(|e| ModelError::BadRequest(format!("the request cannot be encoded: {e}")))?;
    let response = Request::post(url)
        .header("content-type", "application/json")
        .key(&reference)
        .body(body)
        .send()
        .map_err(|e| map::transport_error(api, &e))?;
    let status = response.status();
    if (200..300).contains(&status) {
        return Ok(response);
    }
    let retry_after = map::retry_after_ms(|name| response.header(name).map(str::to_owned), now());
    // A body that cannot be read still leaves the status to map.
    let body = response.bytes().unwrap_or_default();
    let error = map::http_error(api, status, retry_after, &body);
    log::warn(&format!("POST {url}: HTTP {status}: {error:?}"));
    Err(error)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

// Native builds (the unit tests) cannot link the component's export symbols.
#[cfg(target_arch = "wasm32")]
convergio_sdk::export_provider!(OpenAi);
