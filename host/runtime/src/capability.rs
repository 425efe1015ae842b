//! Capabilities: what a component may import, and which `platform.toml` grant allows it.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::Grants;

/// A capability a plugin can be granted. Deny by default: a plugin holds only
/// what its `[plugin.grants]` table in `platform.toml` gives it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    /// `wasi:logging/logging`: log lines into the host's tracing output.
    Logging,
    /// `wasi:config/store`: read the configuration values the operator set.
    Config,
    /// `wasi:keyvalue/*`: buckets of the platform's storage.
    Storage,
    /// `wasi:http/outgoing-handler`: outbound HTTP to allowed hosts.
    Http,
    /// `convergio:platform/keys`: references to BYOK keys (never the secrets).
    Keys,
    /// `convergio:platform/inference`: model calls through the router.
    Inference,
    /// `convergio:platform/local-model`: native local models.
    LocalModel,
    /// `convergio:platform/events`: publish platform events.
    Events,
    /// `convergio:platform/admin`: manage plugins.
    Admin,
    /// Calls into other plugins' exports (e.g. an agent calling a tool).
    Plugins,
}

impl Capability {
    /// Every capability, in a stable order.
    pub const ALL: [Capability; 10] = [
        Capability::Logging,
        Capability::Config,
        Capability::Storage,
        Capability::Http,
        Capability::Keys,
        Capability::Inference,
        Capability::LocalModel,
        Capability::Events,
        Capability::Admin,
        Capability::Plugins,
    ];

    /// The name used in `plugin.toml` and `platform.toml`.
    pub fn name(self) -> &'static str {
        match self {
            Capability::Logging => "logging",
            Capability::Config => "config",
            Capability::Storage => "storage",
            Capability::Http => "http",
            Capability::Keys => "keys",
            Capability::Inference => "inference",
            Capability::LocalModel => "local-model",
            Capability::Events => "events",
            Capability::Admin => "admin",
            Capability::Plugins => "plugins",
        }
    }

    /// The `[plugin.grants]` line that grants this capability.
    pub fn grant_example(self) -> &'static str {
        match self {
            Capability::Logging => "logging = true",
            Capability::Config => "config = { some-key = \"value\" }",
            Capability::Storage => "storage = [\"bucket-name\"]",
            Capability::Http => "http = [\"https://api.example.com\"]",
            Capability::Keys => "keys = [\"provider-name\"]",
            Capability::Inference => "inference = true",
            Capability::LocalModel => "models = [\"model-name\"]",
            Capability::Events => "events = [\"topic.*\"]",
            Capability::Admin => "admin = true",
            Capability::Plugins => "plugins = [\"plugin-id\"]",
        }
    }

    /// Whether `grants` gives this capability.
    pub fn is_granted(self, grants: &Grants) -> bool {
        match self {
            Capability::Logging => grants.logging,
            Capability::Config => grants.config.is_some(),
            Capability::Storage => !grants.storage.is_empty(),
            Capability::Http => !grants.http.is_empty(),
            Capability::Keys => !grants.keys.is_empty(),
            Capability::Inference => grants.inference,
            Capability::LocalModel => !grants.models.is_empty(),
            Capability::Events => !grants.events.is_empty(),
            Capability::Admin => grants.admin,
            Capability::Plugins => !grants.plugins.is_empty(),
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What an import of a component needs from the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportClass {
    /// Baseline WASI that Rust components import (clocks, random, stdio,
    /// environment, exit, streams, filesystem: the WASI preview 1 adapter
    /// that `cargo component` uses always imports the filesystem). Always
    /// linked, but holding nothing unless granted: no directories, no
    /// environment variables, no arguments.
    Baseline,
    /// A host capability that must be granted.
    Host(Capability),
    /// Raw sockets: never available to plugins (use `wasi:http`).
    Sockets,
    /// Not provided by the host: must be another plugin's export, which needs
    /// the `plugins` grant.
    Plugin,
}

/// Classify an import name such as `wasi:logging/logging@0.1.0-draft`, by
/// the host's list of capabilities.
pub fn classify_import(name: &str) -> ImportClass {
    let unversioned = name.split('@').next().unwrap_or(name);
    if unversioned.starts_with("wasi:sockets/") {
        return ImportClass::Sockets;
    }
    match crate::capabilities::provider_of(unversioned) {
        Some(None) => ImportClass::Baseline,
        Some(Some(capability)) => ImportClass::Host(capability),
        None if unversioned == "convergio:platform/admin" => ImportClass::Host(Capability::Admin),
        None => ImportClass::Plugin,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_imports() {
        assert_eq!(
            classify_import("wasi:io/streams@0.2.12"),
            ImportClass::Baseline
        );
        assert_eq!(
            classify_import("wasi:logging/logging@0.1.0-draft"),
            ImportClass::Host(Capability::Logging)
        );
        assert_eq!(
            classify_import("wasi:http/outgoing-handler@0.2.12"),
            ImportClass::Host(Capability::Http)
        );
        assert_eq!(
            classify_import("wasi:http/types@0.2.12"),
            ImportClass::Host(Capability::Http)
        );
        assert_eq!(
            classify_import("wasi:sockets/tcp@0.2.12"),
            ImportClass::Sockets
        );
        assert_eq!(
            classify_import("convergio:platform/tool@0.1.0"),
            ImportClass::Plugin
        );
        assert_eq!(classify_import("acme:math/calc@1.0.0"), ImportClass::Plugin);
        assert_eq!(
            classify_import("convergio:platform/local-model@0.1.0"),
            ImportClass::Host(Capability::LocalModel)
        );
    }

    #[test]
    fn empty_grants_grant_nothing() {
        let grants = Grants::default();
        for cap in Capability::ALL {
            assert!(!cap.is_granted(&grants), "{cap} granted by default");
        }
    }
}
