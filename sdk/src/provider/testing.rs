//! Fixtures for adapters' native unit tests (feature `testing`, a
//! dev-dependency: `convergio-sdk = { …, features = ["testing"] }` under
//! `[dev-dependencies]`).
//!
//! ```
//! use convergio_sdk::provider::testing::{bad_request, config, request};
//! use convergio_sdk::provider::{Message, ProviderConfig};
//!
//! let config = ProviderConfig::new("acme", config(&[("base-url", "ftp://x")]));
//! let problem = bad_request(config.base_url("https://api.acme.test").unwrap_err());
//! assert!(problem.contains("`base-url`"));
//! assert_eq!(request("acme-small", vec![Message::user("hi")]).model, "acme-small");
//! ```

// Fixtures fail the test that calls them wrongly, as a test would.
#![allow(clippy::panic)]

use crate::provider::{
    ConfigSource, Message, ModelError, ProviderRequest, ResponseFormat, Sampling, ToolCall,
};

/// A request for `model` with `messages`: no tools, default sampling, free text.
pub fn request(model: &str, messages: Vec<Message>) -> ProviderRequest {
    ProviderRequest {
        model: model.to_owned(),
        messages,
        tools: Vec::new(),
        sampling: Sampling::default(),
        format: ResponseFormat::Text,
    }
}

/// A tool call (`id`, `name`, arguments as JSON text).
pub fn tool_call(id: &str, name: &str, arguments: &str) -> ToolCall {
    ToolCall {
        id: id.to_owned(),
        name: name.to_owned(),
        arguments: arguments.to_owned(),
    }
}

/// Settings from a table of `(key, value)` pairs; a key not in it is unset.
pub fn config<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl ConfigSource + 'a {
    move |key: &str| {
        Ok(pairs
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| (*v).to_owned()))
    }
}

/// [`config`], failing the test when the adapter reads a key that is not
/// in `documented` (the keys its README lists).
pub fn documented_config<'a>(
    documented: &'a [&'a str],
    pairs: &'a [(&'a str, &'a str)],
) -> impl ConfigSource + 'a {
    let table = config(pairs);
    move |key: &str| {
        assert!(documented.contains(&key), "undocumented key {key}");
        table(key)
    }
}

/// The message of a `bad-request`; any other error fails the test.
pub fn bad_request(err: ModelError) -> String {
    match err {
        ModelError::BadRequest(m) => m,
        other => panic!("expected bad-request, got {other:?}"),
    }
}
