//! Provider adapter components: the `convergio:platform/provider-plugin` world.
//!
//! Implement [`Guest`] (and [`GuestCompletionStream`] for the stream resource)
//! and register it with [`export_provider!`](crate::export_provider). An
//! adapter reaches its upstream API only through [`crate::http`], naming its
//! key with [`crate::keys::reference`].

use serde::de::DeserializeOwned;

#[doc(hidden)]
#[allow(missing_docs, unsafe_code, unused_qualifications, clippy::all)]
pub mod bindings {
    crate::world::world_bindings!(
        world: "convergio:platform/provider-plugin@0.1.0",
        export_macro_name: "export",
        module: "convergio_sdk::provider::bindings",
        with: {
            "wasi:io/poll@0.2.12": convergio_sdk::bindings::wasi::io::poll,
            "wasi:io/error@0.2.12": convergio_sdk::bindings::wasi::io::error,
            "wasi:io/streams@0.2.12": convergio_sdk::bindings::wasi::io::streams,
            "wasi:clocks/monotonic-clock@0.2.12": convergio_sdk::bindings::wasi::clocks::monotonic_clock,
            "wasi:http/types@0.2.12": convergio_sdk::bindings::wasi::http::types,
            "wasi:http/outgoing-handler@0.2.12": convergio_sdk::bindings::wasi::http::outgoing_handler,
            "convergio:platform/keys@0.1.0": convergio_sdk::bindings::convergio::platform::keys,
            "convergio:platform/types@0.1.0": convergio_sdk::bindings::convergio::platform::types,
        }
    );
}

pub use bindings::exports::convergio::platform::provider::{
    CompletionStream, Guest, GuestCompletionStream, ProviderInfo, ProviderRequest,
};

pub use crate::types::{
    Completion, Delta, Embeddings, FinishReason, Message, ModelError, ModelFeatures, ModelInfo,
    QualityTier, Role, Sampling, ToolCall, ToolDefinition, Usage,
};

/// What the functions of [`Guest`] return.
pub type Result<T, E = ModelError> = core::result::Result<T, E>;

/// Parses an upstream's JSON answer; a failure becomes [`ModelError::MalformedResponse`].
pub fn parse_response<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| ModelError::MalformedResponse(e.to_string()))
}
