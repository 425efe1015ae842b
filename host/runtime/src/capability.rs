//! Capabilities: what a component may import, and which `platform.toml` grant allows it.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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
    /// `convergio:platform/runs`: start and drive graph runs.
    Runs,
    /// Calls into other plugins' exports (e.g. an agent calling a tool).
    Plugins,
}

impl Capability {
    /// Every capability, in a stable order.
    pub const ALL: [Capability; 11] = [
        Capability::Logging,
        Capability::Config,
        Capability::Storage,
        Capability::Http,
        Capability::Keys,
        Capability::Inference,
        Capability::LocalModel,
        Capability::Events,
        Capability::Admin,
        Capability::Runs,
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
            Capability::Runs => "runs",
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
            Capability::Runs => "runs = true",
            Capability::Plugins => "plugins = [\"plugin-id\"]",
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
