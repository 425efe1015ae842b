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

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use convergio_sdk::client::{Events, Request, Response};
use convergio_sdk::keys::{self, KeyRef};
use convergio_sdk::provider::{
    self, Completion, CompletionStream, Delta, Embeddings, Guest, GuestCompletionStream,
    ModelError, ModelInfo, ProviderInfo, ProviderRequest,
};
use convergio_sdk::{config as wasi_config, log};

use crate::config::Settings;
use crate::map::StreamDecoder;

/// The component.
#[derive(Debug)]
pub struct Anthropic;

impl Guest for Anthropic {
    type CompletionStream = AnthropicStream;

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
        let response = send(&request, false)?;
        let body = response.bytes().map_err(|e| map::transport_error(&e))?;
        map::parse_completion(&body, &request.model)
    }

    fn stream(request: ProviderRequest) -> provider::Result<CompletionStream> {
        let response = send(&request, true)?;
        Ok(CompletionStream::new(AnthropicStream(RefCell::new(
            StreamState {
                events: response.events(),
                decoder: StreamDecoder::new(&request.model),
                done: false,
            },
        ))))
    }

    fn embed(model: String, _inputs: Vec<String>) -> provider::Result<Embeddings> {
        Err(map::no_embeddings(&model))
    }
}

/// A streamed completion: the upstream's server-sent events, decoded as
/// [`GuestCompletionStream::next`] asks for them.
#[derive(Debug)]
pub struct AnthropicStream(RefCell<StreamState>);

#[derive(Debug)]
struct StreamState {
    events: Events,
    decoder: StreamDecoder,
    /// The last delta or an error was returned: `next` answers `None`.
    done: bool,
}

impl GuestCompletionStream for AnthropicStream {
    fn next(&self) -> Option<provider::Result<Delta>> {
        let mut state = self.0.borrow_mut();
        let StreamState {
            events,
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
                    return Some(Err(map::transport_error(&e)));
                }
            };
            match decoder.push(event.event.as_deref(), &event.data) {
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

/// Send `request` to the Messages API; a response whose status is not 2xx
/// becomes its error.
fn send(request: &ProviderRequest, stream: bool) -> provider::Result<Response> {
    let settings = Settings::load(|key| wasi_config::get(key).map_err(|e| config_error(&e)))?;
    let (body, dropped) = map::build_request(request, settings.default_max_tokens, stream)?;
    if !dropped.is_empty() {
        log::warn(&format!(
            "anthropic/{} does not accept {}: left out of the request",
            request.model,
            dropped.join(", ")
        ));
    }
    let reference = keys::reference(&KeyRef {
        provider: settings.key_provider.clone(),
        name: settings.key_name.clone(),
    })
    .map_err(map::key_error)?;
    let body = serde_json::to_vec(&body)
        .map_err(|e| ModelError::BadRequest(format!("the request cannot be encoded: {e}")))?;
    let url = settings.messages_url();
    let response = Request::post(url.as_str())
        .header("anthropic-version", &settings.api_version)
        .header("content-type", "application/json")
        // A known length, not a chunked body: simpler for proxies and test servers.
        .header("content-length", body.len().to_string())
        .key(&reference)
        .body(body)
        .send()
        .map_err(|e| map::send_error(&e))?;
    let status = response.status();
    if (200..300).contains(&status) {
        return Ok(response);
    }
    let retry_after = response.header("retry-after").map(str::to_owned);
    // A body that cannot be read still leaves the status to map.
    let body = response.bytes().unwrap_or_default();
    let error = map::http_error(status, retry_after.as_deref(), &body, now_unix_secs());
    log::warn(&format!("POST {url}: HTTP {status}: {error:?}"));
    Err(error)
}

fn config_error(e: &wasi_config::Error) -> String {
    match e {
        wasi_config::Error::Upstream(m) | wasi_config::Error::Io(m) => m.clone(),
    }
}

fn now_unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

// Only the component exports the interface: the export names (`convergio:
// platform/provider@0.1.0#complete`, …) do not fit a native linker's version
// script, and the native build exists for the unit tests.
#[cfg(target_arch = "wasm32")]
convergio_sdk::export_provider!(Anthropic);
