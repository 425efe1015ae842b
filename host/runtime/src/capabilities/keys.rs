//! `convergio:platform/keys`: references to the BYOK keys a plugin is
//! granted (`convergio-cap-keys`), never the secrets.

use std::sync::Arc;

use convergio_cap_keys::{KeyGrants, KeysCtx, KeysView};
use wasmtime::component::Linker;

use super::{HostCapability, Services};
use crate::config::{Platform, PluginSpec};
use crate::host_state::HostState;
use crate::{Capability, Result};

pub(crate) struct Keys;

impl HostCapability for Keys {
    const CAPABILITY: Option<Capability> = Some(Capability::Keys);
    type Shared = ();
    type Plugin = KeysCtx;
    type Store = ();

    fn provides(interface: &str) -> bool {
        interface == "convergio:platform/keys"
    }

    fn open(_: &Platform, _: &Services) -> Result<()> {
        Ok(())
    }

    fn prepare(
        _: &(),
        services: &Services,
        spec: &Arc<PluginSpec>,
    ) -> std::result::Result<KeysCtx, Vec<String>> {
        Ok(KeysCtx::new(
            spec.id.clone(),
            KeyGrants::parse(&spec.grants.keys),
            services.vault.clone(),
        ))
    }

    fn store(_: &KeysCtx) {}

    fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        convergio_cap_keys::add_to_linker(linker, |s| KeysView {
            ctx: &s.plugin.keys,
        })
    }
}
