//! Tool components: the `convergio:platform/tool-plugin` world.
//!
//! Implement [`Guest`] and register it with [`export_tool!`](crate::export_tool).
//! A tool component may call `wasi:http/outgoing-handler` (see [`crate::http`])
//! with BYOK references from [`crate::keys`], besides the `plugin-base`
//! imports ([`crate::log`], [`crate::config`], [`crate::keyvalue`],
//! [`crate::events`]).

use serde::Serialize;
use serde::de::DeserializeOwned;

#[doc(hidden)]
#[allow(missing_docs, unsafe_code, unused_qualifications, clippy::all)]
pub mod bindings {
    crate::world::world_bindings!(
        world: "convergio:platform/tool-plugin@0.1.0",
        export_macro_name: "export",
        module: "convergio_sdk::tool::bindings",
        with: {
            "wasi:io/poll@0.2.12": convergio_sdk::bindings::wasi::io::poll,
            "wasi:io/error@0.2.12": convergio_sdk::bindings::wasi::io::error,
            "wasi:io/streams@0.2.12": convergio_sdk::bindings::wasi::io::streams,
            "wasi:clocks/monotonic-clock@0.2.12": convergio_sdk::bindings::wasi::clocks::monotonic_clock,
            "wasi:http/types@0.2.12": convergio_sdk::bindings::wasi::http::types,
            "wasi:http/outgoing-handler@0.2.12": convergio_sdk::bindings::wasi::http::outgoing_handler,
            "convergio:platform/keys@0.1.0": convergio_sdk::bindings::convergio::platform::keys,
        }
    );
}

pub use bindings::exports::convergio::platform::tool::{Guest, ToolError, ToolInfo};

/// What [`Guest::invoke`] returns.
pub type Result<T, E = ToolError> = core::result::Result<T, E>;

impl ToolInfo {
    /// Describes a tool; `parameters` is the JSON Schema of its arguments object.
    pub fn new(
        name: impl Into<String>,
        description: impl Into<String>,
        parameters: &serde_json::Value,
    ) -> Self {
        Self {
            name: name.into(),
            description: description.into(),
            parameters: parameters.to_string(),
        }
    }
}

/// Parses the JSON arguments of a call into `T`.
///
/// A failure becomes [`ToolError::InvalidArguments`] with serde's message,
/// which names the problem and where it is (e.g. ``missing field `name` at
/// line 1 column 2``).
pub fn parse_args<T: DeserializeOwned>(arguments: &str) -> Result<T> {
    serde_json::from_str(arguments).map_err(|e| ToolError::InvalidArguments(e.to_string()))
}

/// Serializes a tool's result to JSON text; a failure becomes [`ToolError::Failed`].
pub fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|e| ToolError::Failed(format!("cannot serialize the result: {e}")))
}

impl From<crate::config::Error> for ToolError {
    fn from(e: crate::config::Error) -> Self {
        ToolError::Failed(crate::config::describe(&e))
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Args {
        name: String,
    }

    #[test]
    fn parse_args_reads_the_object() {
        let args: Args = parse_args(r#"{"name":"Ada"}"#).unwrap();
        assert_eq!(args, Args { name: "Ada".into() });
    }

    #[test]
    fn parse_args_names_the_missing_field() {
        let err = parse_args::<Args>("{}").unwrap_err();
        match err {
            ToolError::InvalidArguments(m) => assert!(m.contains("missing field `name`"), "{m}"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn parse_args_rejects_non_json() {
        assert!(matches!(
            parse_args::<Args>("name=Ada"),
            Err(ToolError::InvalidArguments(_))
        ));
    }

    #[test]
    fn to_json_writes_json_text() {
        assert_eq!(to_json(&[1, 2]).unwrap(), "[1,2]");
    }

    #[test]
    fn tool_info_holds_the_schema_as_text() {
        let info = ToolInfo::new("t", "d", &serde_json::json!({"type": "object"}));
        assert_eq!(info.parameters, r#"{"type":"object"}"#);
    }
}
