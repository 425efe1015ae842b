//! Provider adapter components: the `convergio:platform/provider-plugin` world.
//!
//! An adapter of an HTTP API implements [`Adapter`] (its settings, models
//! and the mapping of requests, answers, stream events and errors; see
//! [`adapter`]) and exports it with
//! [`export_provider!`](crate::export_provider): the SDK implements
//! [`Guest`] for every `Adapter`. A provider that is not an HTTP API (the
//! host's local models) implements [`Guest`] and [`GuestCompletionStream`]
//! itself. An adapter reaches its upstream API only through [`crate::http`],
//! naming its key with [`crate::keys::reference`].
//!
//! What every adapter needs besides its API's own mapping is here, so that
//! an adapter keeps only what is specific to its API:
//!
//! | helper | what |
//! | --- | --- |
//! | [`Adapter`], [`Post`] | the one adapter shape, and a request as its mapping builds it |
//! | [`ModelSpec`] | a declared model (limits, prices, features, what the API needs to know of it), found by id or dated snapshot id |
//! | [`ProviderConfig`], [`KeyName`], [`check_base_url`], [`ConfigSource`], [`wasi_config`] | read and check the operator's settings; errors name the key and the `platform.toml` line that fixes it |
//! | [`Upstream`] | the API's name, origin and key: POST JSON with the key by reference ([`Upstream::post_json`], [`Upstream::send`]), and the errors of transport failures, refused keys and broken streams |
//! | [`ErrorResponse`], [`retry_after_ms`], [`http_date`], [`now_unix_secs`] | a response that is not 2xx, its `Retry-After` header (seconds or HTTP date) |
//! | [`SseStream`], [`EventDecoder`] | the `completion-stream` resource over server-sent events |
//! | [`cost_micro_usd`], [`Usage::new`] | usage and its cost from declared prices |
//! | [`tool_parameters`], [`tool_call_arguments`] | a tool's JSON Schema and a call's arguments as JSON objects |
//! | [`parse_response`], [`excerpt`] | a JSON answer, a body quoted in an error message |

use serde::de::DeserializeOwned;
use serde_json::Value;

pub mod adapter;
pub mod settings;
pub mod spec;
pub mod stream;
#[cfg(feature = "testing")]
pub mod testing;
pub mod upstream;

pub use adapter::{Adapter, AdapterSettings, Post};
pub use settings::{ConfigSource, KeyName, ProviderConfig, check_base_url, wasi_config};
pub use spec::ModelSpec;
pub use stream::{EventDecoder, EventSource, SseStream};
pub use upstream::{ErrorResponse, Upstream, excerpt, http_date, now_unix_secs, retry_after_ms};

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
            "convergio:platform/local-model@0.1.0": convergio_sdk::bindings::convergio::platform::local_model,
            "convergio:platform/types@0.1.0": convergio_sdk::bindings::convergio::platform::types,
        }
    );
}

pub use bindings::exports::convergio::platform::provider::{
    CompletionStream, Guest, GuestCompletionStream, ProviderInfo, ProviderRequest,
};

pub use crate::types::{
    Completion, Delta, Embeddings, FinishReason, Message, ModelError, ModelFeatures, ModelInfo,
    QualityTier, ResponseFormat, Role, Sampling, ToolCall, ToolDefinition, Usage,
};

/// What the functions of [`Guest`] return.
pub type Result<T, E = ModelError> = core::result::Result<T, E>;

/// Parses an upstream's JSON answer; a failure becomes [`ModelError::MalformedResponse`].
pub fn parse_response<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| ModelError::MalformedResponse(e.to_string()))
}

/// The parameters of `definition` as a JSON Schema object; empty text is
/// an object schema without properties. Anything else is a `bad-request`.
pub fn tool_parameters(definition: &ToolDefinition) -> Result<Value> {
    if definition.parameters.trim().is_empty() {
        return Ok(serde_json::json!({"type": "object", "properties": {}}));
    }
    match serde_json::from_str::<Value>(&definition.parameters) {
        Ok(schema @ Value::Object(_)) => Ok(schema),
        Ok(_) => Err(ModelError::BadRequest(format!(
            "the parameters of tool `{}` are not a JSON Schema object",
            definition.name
        ))),
        Err(e) => Err(ModelError::BadRequest(format!(
            "the parameters of tool `{}` are not valid JSON: {e}",
            definition.name
        ))),
    }
}

/// The arguments of `call` (an assistant's tool call sent back in a
/// conversation) as a JSON object; empty text is `{}`. Anything else is a
/// `bad-request` naming the call.
pub fn tool_call_arguments(call: &ToolCall) -> Result<Value> {
    if call.arguments.trim().is_empty() {
        return Ok(Value::Object(serde_json::Map::new()));
    }
    match serde_json::from_str::<Value>(&call.arguments) {
        Ok(arguments @ Value::Object(_)) => Ok(arguments),
        Ok(_) => Err(ModelError::BadRequest(format!(
            "the arguments of tool call `{}` ({}) are not a JSON object",
            call.id, call.name
        ))),
        Err(e) => Err(ModelError::BadRequest(format!(
            "the arguments of tool call `{}` ({}) are not valid JSON: {e}",
            call.id, call.name
        ))),
    }
}

/// The cost in millionths of a US dollar of `(tokens, usd_per_mtok)` pairs,
/// e.g. `[(input_tokens, input_price), (output_tokens, output_price)]`
/// with list prices in US dollars per million tokens (which is
/// micro-dollars per token). Rounded up to the next micro-dollar, as the
/// host's router rounds (a budget never undercounts). Prices count to a
/// millionth of a dollar per million tokens, and the sum is exact: 30 tokens
/// at $0.1 per million cost 3, not 4. A sum that is not positive, or a price
/// that is not a number, costs 0.
pub fn cost_micro_usd(priced: impl IntoIterator<Item = (u64, f64)>) -> u64 {
    let mut pico: i128 = 0;
    for (tokens, usd_per_mtok) in priced {
        if !usd_per_mtok.is_finite() {
            return 0;
        }
        // Micro-dollars per token × 10⁶: pico-dollars, a whole number (`as` saturates).
        let per_token = (usd_per_mtok * 1e6).round() as i128;
        pico = pico.saturating_add(i128::from(tokens).saturating_mul(per_token));
    }
    if pico <= 0 {
        return 0;
    }
    u64::try_from(pico.saturating_add(999_999) / 1_000_000).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_is_tokens_times_price_per_million() {
        // 1000 × $4/M + 500 × $20/M = $0.004 + $0.010.
        assert_eq!(cost_micro_usd([(1_000, 4.0), (500, 20.0)]), 14_000);
        assert_eq!(cost_micro_usd([(1, 0.4), (1, 0.4)]), 1);
        assert_eq!(cost_micro_usd([(3, 0.5)]), 2);
        assert_eq!(cost_micro_usd([]), 0);
        assert_eq!(cost_micro_usd([(10, -1.0)]), 0);
        assert_eq!(cost_micro_usd([(10, f64::NAN)]), 0);
        assert_eq!(cost_micro_usd([(10, f64::INFINITY)]), 0);
    }

    #[test]
    fn cost_rounds_up_from_the_exact_sum() {
        // 1.2 micro-dollars: rounded up, not to the nearest.
        assert_eq!(cost_micro_usd([(21, 0.04), (9, 0.04)]), 2);
        // Exactly 3 and 7 (in floating point 3.0000000000000004 and 7.000000000000001).
        assert_eq!(cost_micro_usd([(21, 0.1), (9, 0.1)]), 3);
        assert_eq!(cost_micro_usd([(10, 0.7)]), 7);
        // Any fraction of a micro-dollar costs one.
        assert_eq!(cost_micro_usd([(1, 0.000_001)]), 1);
        assert_eq!(cost_micro_usd([(u64::MAX, 1e30)]), u64::MAX);
    }

    #[test]
    fn tool_schemas_and_arguments_are_json_objects() {
        let tool = |parameters: &str| ToolDefinition {
            name: "f".into(),
            description: String::new(),
            parameters: parameters.into(),
        };
        assert_eq!(
            tool_parameters(&tool(" ")).unwrap(),
            serde_json::json!({"type": "object", "properties": {}})
        );
        assert_eq!(
            tool_parameters(&tool(r#"{"type":"object"}"#)).unwrap(),
            serde_json::json!({"type": "object"})
        );
        for (bad, why) in [("[]", "not a JSON Schema object"), ("{", "not valid JSON")] {
            assert!(
                matches!(tool_parameters(&tool(bad)), Err(ModelError::BadRequest(m)) if m.contains(why) && m.contains("`f`"))
            );
        }
        let call = |arguments: &str| ToolCall {
            id: "call_1".into(),
            name: "f".into(),
            arguments: arguments.into(),
        };
        assert_eq!(
            tool_call_arguments(&call("")).unwrap(),
            serde_json::json!({})
        );
        assert_eq!(
            tool_call_arguments(&call(r#"{"a": 1}"#)).unwrap(),
            serde_json::json!({"a": 1})
        );
        for (bad, why) in [("1", "not a JSON object"), ("{", "not valid JSON")] {
            assert!(
                matches!(tool_call_arguments(&call(bad)), Err(ModelError::BadRequest(m)) if m.contains(why) && m.contains("`call_1` (f)"))
            );
        }
    }

    #[test]
    fn usage_saturates_token_counts() {
        let usage = Usage::new(u64::MAX, 7, 9);
        assert_eq!(
            (
                usage.input_tokens,
                usage.output_tokens,
                usage.cost_micro_usd
            ),
            (u32::MAX, 7, 9)
        );
        let none = Usage::default();
        assert_eq!(
            (none.input_tokens, none.output_tokens, none.cost_micro_usd),
            (0, 0, 0)
        );
    }
}
