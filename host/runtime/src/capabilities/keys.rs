//! `convergio:platform/keys`: references to the BYOK keys a plugin is
//! granted (`convergio-cap-keys`), never the secrets.

use std::sync::Arc;

use convergio_cap_keys::{KeyGrants, KeysCtx, KeysView};
use wasmtime::component::Linker;

use super::{CapabilityHost, HostCapability, Services, data_dir};
use crate::config::{Platform, PluginSpec};
use crate::{Capability, Error, Result};

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

    fn add_to_linker<T: CapabilityHost>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        convergio_cap_keys::add_to_linker(linker, view::<T>)
    }
}

fn view<T: CapabilityHost>(host: &mut T) -> KeysView<'_> {
    KeysView {
        ctx: &host.parts().plugin.keys,
    }
}

/// The key vault, opened only when some plugin is granted keys (so a platform
/// without keys never creates a master key).
pub(super) fn open_vault(platform: &Platform) -> Result<Option<convergio_cap_keys::Vault>> {
    if platform.plugins.iter().all(|p| p.grants.keys.is_empty()) {
        return Ok(None);
    }
    let dir = data_dir(platform);
    convergio_cap_keys::Vault::open_in_with(&dir, platform.keys.vault_options())
        .map(Some)
        .map_err(|e| {
            Error::capability(
                "keys",
                format!("cannot open the key vault in {}", dir.display()),
                e,
            )
        })
}
