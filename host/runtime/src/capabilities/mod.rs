//! Every host capability in one shape, and the one list of them.
//!
//! A capability ([`HostCapability`]) says which imports it provides, opens
//! its platform-wide state from `platform.toml` once ([`HostCapability::open`]),
//! prepares each plugin's context from the plugin's grants at load
//! ([`HostCapability::prepare`]: grants are parsed here, once, into typed
//! values the call path checks cheaply), makes the per-store state of each
//! call ([`HostCapability::store`]) and links its interfaces
//! ([`HostCapability::add_to_linker`]). The WIT glue lives in the
//! capability's own crate (`convergio-cap-*`) with one naming scheme per
//! level: the shared platform state, the per-plugin `…Ctx`, the per-store
//! `…View` and `add_to_linker`; the module here maps the operator's settings
//! and grants onto that crate's types.
//!
//! [`capabilities!`] below is the list: it makes the [`Shared`],
//! [`PluginCaps`] and [`StoreCaps`] structs (one field per capability), the
//! linking of all of them and the classification of imports. Adding a
//! capability is its crate, its module here and one line in the list
//! (docs/architecture.md, "Adding a capability").

use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::WasiView;
use wasmtime_wasi_http::WasiHttpView;

use crate::config::{Platform, PluginSpec};
use crate::{Capability, Result};

mod config;
mod events;
mod filesystem;
mod http;
mod inference;
mod keys;
mod local_model;
mod logging;
mod run_context;
mod runs;
mod storage;
mod tools;

pub use events::Event;
pub use run_context::CallContext;

/// What several capabilities share, opened before them: the key vault
/// (keys, the HTTP client that attaches keys, metering) and the inference
/// router, which starts once the provider plugins are loaded.
pub(crate) struct Services {
    pub(crate) vault: Option<convergio_cap_keys::Vault>,
    pub(crate) router: convergio_cap_inference::RouterCell,
    /// The run driver, once there is one (`runs`, and `run-context`'s
    /// recorded steps, which live in its journal).
    pub(crate) runs: runs::RunsCell,
}

impl Services {
    /// Open the vault (only when some plugin is granted keys) and make the
    /// cell the router goes in once it starts.
    pub(crate) fn open(platform: &Platform) -> Result<Self> {
        Ok(Self {
            vault: keys::open_vault(platform)?,
            router: convergio_cap_inference::RouterCell::default(),
            runs: runs::RunsCell::default(),
        })
    }
}

pub(crate) use inference::open_ledger;

/// A store's state as the capabilities see it. The runtime's `HostState`
/// implements it; capabilities never name `HostState`, so they sit below it.
pub(crate) trait CapabilityHost: WasiView + WasiHttpView + Send + 'static {
    /// This store's parts.
    fn parts(&mut self) -> StoreParts<'_>;
}

/// What a capability's host functions reach in a store.
pub(crate) struct StoreParts<'a> {
    /// The plugin's capability contexts.
    pub(crate) plugin: &'a PluginCaps,
    /// This store's capability state.
    #[allow(dead_code)]
    pub(crate) caps: &'a mut StoreCaps,
    /// This store's resource table.
    pub(crate) table: &'a mut ResourceTable,
    /// When the current call's deadline passes.
    pub(crate) deadline_at: Instant,
}

/// One host capability: see the module documentation.
pub(crate) trait HostCapability {
    /// The grant that allows it; `None` for baseline WASI, which every
    /// plugin gets (holding nothing unless granted directories or environment).
    const CAPABILITY: Option<Capability>;
    /// Platform-wide state, opened once.
    type Shared: Send + Sync + 'static;
    /// One plugin's context, prepared at load from its grants and limits.
    type Plugin: Send + Sync + 'static;
    /// The state of one store (one call, or one warm instance).
    type Store: Send + 'static;

    /// Whether an import of `interface` (`package/interface`, no version)
    /// is this capability's.
    fn provides(interface: &str) -> bool;

    /// Open the platform-wide state.
    fn open(platform: &Platform, services: &Services) -> Result<Self::Shared>;

    /// Prepare `spec`'s context; each problem is one message naming the
    /// plugin and what to change.
    fn prepare(
        shared: &Self::Shared,
        services: &Services,
        spec: &Arc<PluginSpec>,
    ) -> std::result::Result<Self::Plugin, Vec<String>>;

    /// The state of a new store of the plugin.
    fn store(plugin: &Self::Plugin) -> Self::Store;

    /// Link the capability's interfaces. Whether a plugin may import them
    /// was decided from its grants before linking.
    fn add_to_linker<T: CapabilityHost>(linker: &mut Linker<T>) -> wasmtime::Result<()>;
}

/// The list: `field: type` for each capability, in linking order (baseline
/// WASI first: `wasi:http` replaces one of its functions).
macro_rules! capabilities {
    ($($field:ident: $ty:ty),* $(,)?) => {
        /// Each capability's platform-wide state.
        pub(crate) struct Shared {
            $(pub(crate) $field: <$ty as HostCapability>::Shared,)*
        }

        impl Shared {
            /// Open every capability.
            pub(crate) fn open(platform: &Platform, services: &Services) -> Result<Self> {
                Ok(Self {
                    $($field: <$ty as HostCapability>::open(platform, services)?,)*
                })
            }
        }

        /// What every capability holds for one loaded plugin, with its spec.
        /// Stores share it through one `Arc`.
        pub(crate) struct PluginCaps {
            pub(crate) spec: Arc<PluginSpec>,
            $(pub(crate) $field: <$ty as HostCapability>::Plugin,)*
        }

        impl PluginCaps {
            /// Prepare every capability for `spec`; all problems at once.
            pub(crate) fn prepare(
                shared: &Shared,
                services: &Services,
                spec: &Arc<PluginSpec>,
            ) -> std::result::Result<Self, Vec<String>> {
                let mut problems = Vec::new();
                $(
                    let $field = <$ty as HostCapability>::prepare(&shared.$field, services, spec)
                        .map_err(|found| problems.extend(found))
                        .ok();
                )*
                match ($($field,)*) {
                    ($(Some($field),)*) => Ok(Self { spec: spec.clone(), $($field,)* }),
                    _ => Err(problems),
                }
            }

            /// The per-store state of a new store.
            pub(crate) fn store(&self) -> StoreCaps {
                StoreCaps {
                    $($field: <$ty as HostCapability>::store(&self.$field),)*
                }
            }
        }

        /// Each capability's state in one store (`()` for those that keep
        /// none: they are here so that every capability has the same shape).
        #[allow(dead_code)]
        pub(crate) struct StoreCaps {
            $(pub(crate) $field: <$ty as HostCapability>::Store,)*
        }

        /// Link every capability.
        pub(crate) fn add_to_linker<T: CapabilityHost>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
            $(<$ty as HostCapability>::add_to_linker(linker)?;)*
            Ok(())
        }

        /// The capability that provides `interface` (unversioned), if one does:
        /// `Some(None)` for baseline WASI.
        pub(crate) fn provider_of(interface: &str) -> Option<Option<Capability>> {
            $(if <$ty as HostCapability>::provides(interface) {
                return Some(<$ty as HostCapability>::CAPABILITY);
            })*
            None
        }

        /// Whether this host implements `capability`.
        pub(crate) fn provided(capability: Capability) -> bool {
            capability == Capability::Plugins
                || [$(<$ty as HostCapability>::CAPABILITY),*].contains(&Some(capability))
        }
    };
}

capabilities! {
    filesystem: filesystem::Filesystem,
    logging: logging::Logging,
    config: config::Config,
    events: events::Events,
    storage: storage::Storage,
    http: http::Http,
    keys: keys::Keys,
    inference: inference::Inference,
    local_model: local_model::LocalModel,
    run_context: run_context::RunContext,
    runs: runs::RunsCapability,
    tools: tools::ToolsCapability,
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
    match provider_of(unversioned) {
        Some(None) => ImportClass::Baseline,
        Some(Some(capability)) => ImportClass::Host(capability),
        None if unversioned == "convergio:platform/admin" => ImportClass::Host(Capability::Admin),
        None => ImportClass::Plugin,
    }
}

/// The data directory of `platform` (default: Convergio's home).
pub(crate) fn data_dir(platform: &Platform) -> std::path::PathBuf {
    platform
        .runtime
        .data_dir
        .clone()
        .unwrap_or_else(crate::paths::home)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Grants;

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
            assert!(!grants.grants(cap), "{cap} granted by default");
        }
    }
}
