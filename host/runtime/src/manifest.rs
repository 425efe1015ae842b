//! `plugin.toml`: what a component is and what it needs.

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Capability, Result, toml_file};

/// The WIT package version this host implements.
pub const PLATFORM_PACKAGE: &str = "convergio:platform@0.1.0";

/// What kind of plugin a component is; decides the world it targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PluginKind {
    /// Exports `convergio:platform/tool`.
    Tool,
    /// Exports `convergio:platform/provider`.
    Provider,
    /// Exports `convergio:platform/agent`.
    Agent,
    /// Exports `convergio:platform/orchestrator`.
    Orchestrator,
    /// Exports `wasi:http/incoming-handler`.
    HttpApp,
    /// Exports agents (and tools) of one domain.
    Vertical,
}

impl PluginKind {
    /// The kind as written in `plugin.toml`.
    pub fn name(self) -> &'static str {
        match self {
            PluginKind::Tool => "tool",
            PluginKind::Provider => "provider",
            PluginKind::Agent => "agent",
            PluginKind::Orchestrator => "orchestrator",
            PluginKind::HttpApp => "http-app",
            PluginKind::Vertical => "vertical",
        }
    }

    /// The default world of this kind, e.g. `convergio:platform/tool-plugin@0.1.0`.
    /// (WIT keeps worlds and interfaces in one namespace, so the world that
    /// exports interface `tool` is `tool-plugin`.)
    pub fn world(self) -> String {
        match self {
            PluginKind::HttpApp | PluginKind::Vertical => {
                format!("convergio:platform/{}@0.1.0", self.name())
            }
            _ => format!("convergio:platform/{}-plugin@0.1.0", self.name()),
        }
    }

    /// The export a component of this kind must have.
    pub fn required_export(self) -> &'static str {
        match self {
            PluginKind::Tool => "convergio:platform/tool@0.1.0",
            PluginKind::Provider => "convergio:platform/provider@0.1.0",
            PluginKind::Agent | PluginKind::Vertical => "convergio:platform/agent@0.1.0",
            PluginKind::Orchestrator => "convergio:platform/orchestrator@0.1.0",
            PluginKind::HttpApp => "wasi:http/incoming-handler@0.2.12",
        }
    }
}

/// What a plugin asks for. The operator grants (or not) in `platform.toml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Requirements {
    /// Capabilities the component imports and needs: a plugin not granted
    /// one of them is refused at load.
    #[serde(default)]
    pub capabilities: Vec<Capability>,
    /// Capabilities the component imports but runs without (a feature the
    /// operator may leave off): without the grant they are linked with
    /// nothing granted, so each call is refused (a bucket `access-denied`,
    /// a run `unavailable`, …) with the grant to add.
    #[serde(default)]
    pub optional_capabilities: Vec<Capability>,
    /// Outbound destinations it needs (`https://api.example.com`).
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Key names (providers) it needs references to.
    #[serde(default)]
    pub keys: Vec<String>,
    /// Storage buckets it uses.
    #[serde(default)]
    pub storage: Vec<String>,
    /// Local models it uses.
    #[serde(default)]
    pub models: Vec<String>,
    /// Plugins whose exports it calls.
    #[serde(default)]
    pub plugins: Vec<String>,
    /// Event topics it publishes.
    #[serde(default)]
    pub events: Vec<String>,
}

/// A component's manifest, `plugin.toml`, shipped beside the component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PluginManifest {
    /// The component's name: lowercase letters, digits and dashes. Each
    /// `[[plugin]]` of `platform.toml` that loads it names its own instance
    /// (usually with this same id).
    pub id: String,
    /// Semantic version of the plugin.
    pub version: String,
    /// What the plugin is.
    pub kind: PluginKind,
    /// World the component targets; defaults to the kind's world.
    #[serde(default)]
    pub world: Option<String>,
    /// One-line description.
    #[serde(default)]
    pub description: String,
    /// Path of the component (`.wasm`), relative to this manifest.
    pub component: PathBuf,
    /// What the plugin needs.
    #[serde(default)]
    pub requires: Requirements,
}

impl PluginManifest {
    /// Read a manifest; relative paths in it are resolved against its folder.
    pub fn load(path: &Path) -> Result<Self> {
        let (mut manifest, _): (Self, _) = toml_file::read(path)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        manifest.component = dir.join(&manifest.component);
        Ok(manifest)
    }

    /// The world the component targets.
    pub fn world(&self) -> String {
        self.world.clone().unwrap_or_else(|| self.kind.world())
    }

    /// Problems with the manifest's values, one line each (empty when fine).
    pub fn problems(&self, path: &Path) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(p) = id_problem(&self.id) {
            problems.push(format!("{}: field `id`: {p}", path.display()));
        }
        if !is_semver(&self.version) {
            problems.push(format!(
                "{}: field `version`: `{}` is not a version like 1.2.3",
                path.display(),
                self.version
            ));
        }
        problems
    }
}

/// Why `id` is not a valid plugin id, if it is not.
pub fn id_problem(id: &str) -> Option<String> {
    let valid = !id.is_empty()
        && id.len() <= 64
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    (!valid).then(|| {
        format!("`{id}` is not a plugin id: use 1-64 lowercase letters, digits and dashes, starting with a letter")
    })
}

fn is_semver(v: &str) -> bool {
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<_> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(id_problem("hello-tool").is_none());
        assert!(id_problem("Hello").is_some());
        assert!(id_problem("1tool").is_some());
        assert!(id_problem("").is_some());
    }

    #[test]
    fn versions() {
        assert!(is_semver("0.1.0"));
        assert!(is_semver("1.2.3-rc.1"));
        assert!(!is_semver("1.2"));
    }
}
