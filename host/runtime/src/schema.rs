//! JSON Schemas of `platform.toml` and `plugin.toml`, published in `docs/`.

use crate::config::PlatformConfig;
use crate::manifest::PluginManifest;

/// The JSON Schema of `platform.toml`, pretty-printed.
pub fn platform_schema() -> String {
    pretty(schemars::schema_for!(PlatformConfig))
}

/// The JSON Schema of `plugin.toml`, pretty-printed.
pub fn manifest_schema() -> String {
    pretty(schemars::schema_for!(PluginManifest))
}

fn pretty(schema: schemars::Schema) -> String {
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}
