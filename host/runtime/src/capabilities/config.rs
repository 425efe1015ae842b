//! `wasi:config/store`: the values the operator set for a plugin
//! (`config = { … }` under its grants).

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{HasData, Linker};

use super::{CapabilityHost, HostCapability, Services};
use crate::bindings::config_store;
use crate::config::{Platform, PluginSpec};
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

    fn add_to_linker<T: CapabilityHost>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        config_store::add_to_linker::<T, ConfigView<'static>>(linker, view::<T>)
    }
}

/// A store's view for `wasi:config`: the plugin's id and values.
pub(crate) struct ConfigView<'a> {
    plugin: &'a str,
    values: &'a BTreeMap<String, String>,
}

impl HasData for ConfigView<'static> {
    type Data<'a> = ConfigView<'a>;
}

fn view<T: CapabilityHost>(host: &mut T) -> ConfigView<'_> {
    let plugin = host.parts().plugin;
    ConfigView {
        plugin: &plugin.spec.id,
        values: &plugin.config,
    }
}

impl config_store::Host for ConfigView<'_> {
    fn get(&mut self, key: String) -> std::result::Result<Option<String>, config_store::Error> {
        let _span = tracing::trace_span!("convergio.config.get", plugin = %self.plugin, key = ?key)
            .entered();
        Ok(self.values.get(&key).cloned())
    }

    fn get_all(&mut self) -> std::result::Result<Vec<(String, String)>, config_store::Error> {
        let _span =
            tracing::trace_span!("convergio.config.get_all", plugin = %self.plugin).entered();
        Ok(self
            .values
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}
