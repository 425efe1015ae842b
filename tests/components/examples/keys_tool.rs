//! `keys_tool`: asks the host for key references through
//! `convergio:platform/keys`, to test key grants. Tools:
//!
//! | tool | arguments | does |
//! | --- | --- | --- |
//! | `available` | — | the granted keys, one `provider/name vN` per line |
//! | `reference` | `PROVIDER NAME` | the opaque reference of that key |
//!
//! Key errors come back as `ToolError::Denied` (not granted) or `Failed`.

/// Bindings generated from the WIT contract. The export glue that
/// wit-bindgen emits is `unsafe` (raw ABI, `export_name`), so the workspace's
/// `unsafe_code` denial is lifted for this module only.
#[allow(unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "convergio:platform/tool-plugin@0.1.0",
        generate_all,
    });

    use super::KeysTool;

    export!(KeysTool);
}

use bindings::convergio::platform::keys::{self, KeyError, KeyRef};
use bindings::exports::convergio::platform::tool::{Guest, ToolError, ToolInfo};

struct KeysTool;

impl Guest for KeysTool {
    fn describe() -> Vec<ToolInfo> {
        ["available", "reference"]
            .into_iter()
            .map(|name| ToolInfo {
                name: name.to_owned(),
                description: format!("Key probe: {name}"),
                parameters: r#"{"type":"string"}"#.to_owned(),
            })
            .collect()
    }

    fn invoke(name: String, arguments: String) -> Result<String, ToolError> {
        match name.as_str() {
            "available" => Ok(keys::available()
                .iter()
                .map(|k| format!("{}/{} v{}", k.key.provider, k.key.name, k.version))
                .collect::<Vec<_>>()
                .join("\n")),
            "reference" => {
                let (provider, key_name) = arguments.split_once(' ').ok_or_else(|| {
                    ToolError::InvalidArguments("expected PROVIDER NAME".to_owned())
                })?;
                let key = KeyRef {
                    provider: provider.to_owned(),
                    name: key_name.to_owned(),
                };
                keys::reference(&key).map_err(|e| match e {
                    KeyError::NotGranted(m) => ToolError::Denied(m),
                    KeyError::NotFound(m) | KeyError::Expired(m) | KeyError::Revoked(m) => {
                        ToolError::Failed(m)
                    }
                })
            }
            _ => Err(ToolError::UnknownTool(name)),
        }
    }
}
