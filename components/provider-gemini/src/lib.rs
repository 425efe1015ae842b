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

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use convergio_sdk::client::{Events, HttpError, Request, Response};
use convergio_sdk::keys::{self, KeyError, KeyRef};
use convergio_sdk::provider::{
    self, Completion, CompletionStream, Delta, Embeddings, Guest, GuestCompletionStream,
    ModelError, ModelInfo, ProviderInfo, ProviderRequest,
};
use convergio_sdk::{config, log};
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
    type CompletionStream = GeminiStream;

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
        let upstream = Upstream::configured()?;
        let body = request_body(&request)?;
        let url = upstream.settings.url(&request.model, "generateContent")?;
        let bytes = success_body(upstream.post(&url, &body)?)?;
        map::completion(&request.model, &bytes)
    }

    fn stream(request: ProviderRequest) -> provider::Result<CompletionStream> {
        let upstream = Upstream::configured()?;
        let body = request_body(&request)?;
        let url = upstream
            .settings
            .url(&request.model, "streamGenerateContent?alt=sse")?;
        let response = upstream.post(&url, &body)?;
        if !(200..300).contains(&response.status()) {
            return Err(failure(response));
        }
        Ok(CompletionStream::new(GeminiStream(RefCell::new(
            StreamInner {
                events: response.events(),
                state: map::StreamState::new(&request.model),
                done: false,
            },
        ))))
    }

    fn embed(model: String, inputs: Vec<String>) -> provider::Result<Embeddings> {
        let upstream = Upstream::configured()?;
        let url = upstream.settings.url(&model, "batchEmbedContents")?;
        let mut vectors = Vec::with_capacity(inputs.len());
        for batch in inputs.chunks(map::EMBED_BATCH) {
            let body = map::embed_body(&model, batch)?;
            let bytes = success_body(upstream.post(&url, &body)?)?;
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

/// Where and with which key requests go.
struct Upstream {
    settings: Settings,
    key_reference: String,
}

impl Upstream {
    /// Reads `base-url`, `api-version` and `key` from `wasi:config` and asks
    /// the host for the key's reference.
    fn configured() -> provider::Result<Self> {
        let base_url = config_value("base-url")?;
        let api_version = config_value("api-version")?;
        let key = config_value("key")?;
        let settings =
            Settings::from_values(base_url.as_deref(), api_version.as_deref(), key.as_deref())?;
        let key = KeyRef {
            provider: settings.key_provider.clone(),
            name: settings.key_name.clone(),
        };
        let key_reference = keys::reference(&key).map_err(|e| key_error(&key, e))?;
        Ok(Self {
            settings,
            key_reference,
        })
    }

    /// Sends `body` as JSON with a `content-length` (not chunked), which
    /// every server and test double understands.
    fn post(&self, url: &str, body: &Value) -> provider::Result<Response> {
        let bytes = body.to_string().into_bytes();
        Request::post(url)
            .key(&self.key_reference)
            .header("content-type", "application/json")
            .header("content-length", bytes.len().to_string())
            .body(bytes)
            .send()
            .map_err(|e| map::send_error(&e))
    }
}

/// The whole body of a 2xx response, or the mapped error of any other.
fn success_body(response: Response) -> provider::Result<Vec<u8>> {
    if !(200..300).contains(&response.status()) {
        return Err(failure(response));
    }
    response.bytes().map_err(|e| map::http_error(&e))
}

/// The error a non-2xx response stands for.
fn failure(response: Response) -> ModelError {
    let status = response.status();
    let retry_after = response.header("retry-after").map(str::to_owned);
    // A body that cannot be read still leaves the status to go by.
    let bytes = response.bytes().unwrap_or_default();
    let error = map::status_error(status, retry_after.as_deref(), &bytes, unix_now());
    log::debug(&format!("provider-gemini: HTTP {status}: {error:?}"));
    error
}

fn config_value(key: &str) -> provider::Result<Option<String>> {
    config::get(key).map_err(|e| {
        let why = match e {
            config::Error::Upstream(m) | config::Error::Io(m) => m,
        };
        ModelError::BadRequest(format!(
            "provider-gemini: config `{key}` cannot be read ({why})"
        ))
    })
}

fn key_error(key: &KeyRef, error: KeyError) -> ModelError {
    let name = format!("{}/{}", key.provider, key.name);
    match error {
        KeyError::NotGranted(m) => ModelError::AccessDenied(format!(
            "key `{name}` is not granted to this plugin ({m}); add keys = [\"{name}\"] under \
             [plugin.grants] in platform.toml, or set config `key` to a granted key"
        )),
        KeyError::NotFound(m) => ModelError::Auth(format!(
            "no key `{name}` is stored ({m}); add it with `convergio keys add {} --name {}`",
            key.provider, key.name
        )),
        KeyError::Expired(m) => ModelError::Auth(format!("key `{name}` has expired ({m})")),
        KeyError::Revoked(m) => ModelError::Auth(format!("key `{name}` was revoked ({m})")),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A completion being streamed: the open SSE body and what was seen so far.
#[derive(Debug)]
pub struct GeminiStream(RefCell<StreamInner>);

#[derive(Debug)]
struct StreamInner {
    events: Events,
    state: map::StreamState,
    done: bool,
}

impl GuestCompletionStream for GeminiStream {
    fn next(&self) -> Option<provider::Result<Delta>> {
        let mut inner = self.0.borrow_mut();
        if inner.done {
            return None;
        }
        loop {
            let result = match inner.events.next_event() {
                Err(e) => Err(transport(&e)),
                Ok(None) => inner.state.on_end(),
                Ok(Some(event)) => match inner.state.on_data(&event.data) {
                    Ok(Some(delta)) => Ok(delta),
                    Ok(None) => continue,
                    Err(e) => Err(e),
                },
            };
            let finished = match &result {
                Ok(delta) => delta.finish_reason.is_some(),
                Err(_) => true,
            };
            inner.done = finished;
            return Some(result);
        }
    }
}

/// A failure while reading the stream body.
fn transport(error: &HttpError) -> ModelError {
    match map::http_error(error) {
        ModelError::Upstream(m) => {
            ModelError::Upstream(format!("the Gemini stream broke off: {m}"))
        }
        other => other,
    }
}

// Only the component exports the interface: a native build (the rlib the
// unit tests link) would try to export symbols named after WIT paths.
#[cfg(target_arch = "wasm32")]
convergio_sdk::export_provider!(Gemini);
