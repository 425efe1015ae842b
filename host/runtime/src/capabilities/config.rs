//! `wasi:config/store`: the values the operator set for a plugin
//! (`config = { … }` under its grants).

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

use super::{HostCapability, Services};
use crate::bindings::config_store;
use crate::config::{Platform, PluginSpec};
use crate::host_state::HostState;
use crate::{Capability, Result};

pub(crate) struct Config;

impl HostCapability for Config {
    const CAPABILITY: Option<Capability> = Some(Capability::Config);
    type Shared = ();
    /// The plugin's values.
    type Plugin = BTreeMap<String, String>;
    type Store = ();

    fn provides(interface: &str) -> bool {
        interface.starts_with("wasi:config/")
    }

    fn open(_: &Platform, _: &Services) -> Result<()> {
        Ok(())
    }

    fn prepare(
        _: &(),
        _: &Services,
        spec: &Arc<PluginSpec>,
    ) -> std::result::Result<Self::Plugin, Vec<String>> {
        Ok(spec.grants.config.clone().unwrap_or_default())
    }

    fn store(_: &Self::Plugin) {}

    fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        config_store::add_to_linker::<_, HasSelf<HostState>>(linker, |s| s)
    }
}

impl config_store::Host for HostState {
    fn get(&mut self, key: String) -> std::result::Result<Option<String>, config_store::Error> {
        let plugin = &self.plugin;
        let _span =
            tracing::trace_span!("convergio.config.get", plugin = %plugin.spec.id, key = ?key)
                .entered();
        Ok(plugin.config.get(&key).cloned())
    }

    fn get_all(&mut self) -> std::result::Result<Vec<(String, String)>, config_store::Error> {
        let plugin = &self.plugin;
        let _span =
            tracing::trace_span!("convergio.config.get_all", plugin = %plugin.spec.id).entered();
        Ok(plugin
            .config
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}
