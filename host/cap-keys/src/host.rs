//! `convergio:platform/keys` for plugins: references to the keys a plugin
//! is granted, never the secrets. [`KeysCtx`] is one plugin's context
//! (its grant and the platform's vault), built once at load;
//! [`KeysView`] borrows it for a store; [`add_to_linker`] links the
//! interface.

use std::collections::BTreeSet;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use wasmtime::component::{HasData, Linker};

use crate::{Error, KeyGrants, Vault};

#[allow(missing_docs, missing_debug_implementations)]
mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        inline: "
            package convergio:keys-host;
            world keys-host {
                import convergio:platform/keys@0.1.0;
            }
        ",
        world: "convergio:keys-host/keys-host",
    });
}

use bindings::convergio::platform::keys as wit;

/// What the keys capability holds for one plugin: its id, its `keys` grant
/// and the platform's vault (none when no plugin is granted keys).
#[derive(Clone)]
pub struct KeysCtx {
    plugin: String,
    grants: KeyGrants,
    vault: Option<Vault>,
}

impl KeysCtx {
    /// The context of `plugin`, granted `grants`, over `vault`.
    pub fn new(plugin: impl Into<String>, grants: KeyGrants, vault: Option<Vault>) -> Self {
        Self {
            plugin: plugin.into(),
            grants,
            vault,
        }
    }

    /// The plugin's grant.
    pub fn grants(&self) -> &KeyGrants {
        &self.grants
    }
}

impl fmt::Debug for KeysCtx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeysCtx")
            .field("plugin", &self.plugin)
            .field("grants", &self.grants)
            .finish_non_exhaustive()
    }
}

/// A store's view of its plugin's [`KeysCtx`]; [`add_to_linker`] takes a
/// function returning it.
#[derive(Debug)]
pub struct KeysView<'a> {
    /// The plugin's context.
    pub ctx: &'a KeysCtx,
}

struct HasKeys;

impl HasData for HasKeys {
    type Data<'a> = KeysView<'a>;
}

/// Add `convergio:platform/keys` to `linker`. Whether a plugin may import it
/// is decided before linking, from its grants.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> KeysView<'_>,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasKeys>(linker, get)
}

fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn key_error(err: Error) -> wit::KeyError {
    match err {
        e @ Error::Expired { .. } => wit::KeyError::Expired(e.to_string()),
        e @ Error::Revoked { .. } => wit::KeyError::Revoked(e.to_string()),
        e => wit::KeyError::NotFound(e.to_string()),
    }
}

impl wit::Host for KeysView<'_> {
    fn available(&mut self) -> Vec<wit::KeyInfo> {
        let ctx = self.ctx;
        let _span =
            tracing::debug_span!("convergio.keys.available", plugin = %ctx.plugin).entered();
        let Some(vault) = &ctx.vault else {
            return Vec::new();
        };
        let Ok(listing) = vault.list() else {
            return Vec::new();
        };
        let mut seen = BTreeSet::new();
        listing
            .into_iter()
            .filter(|k| ctx.grants.allows(&k.key.provider, &k.key.name))
            .filter(|k| seen.insert((k.key.provider.clone(), k.key.name.clone())))
            .filter_map(|k| vault.info(&k.key.provider, &k.key.name).ok())
            .map(|info| wit::KeyInfo {
                key: wit::KeyRef {
                    provider: info.key.provider,
                    name: info.key.name,
                },
                version: info.version,
                expires_at: info.expires.map(unix_ms),
                bound_hosts: info.bound_hosts,
            })
            .collect()
    }

    fn reference(&mut self, key: wit::KeyRef) -> Result<String, wit::KeyError> {
        let ctx = self.ctx;
        let plugin = ctx.plugin.as_str();
        let _span = tracing::debug_span!("convergio.keys.reference", plugin, provider = ?key.provider, name = ?key.name).entered();
        if !ctx.grants.allows(&key.provider, &key.name) {
            return Err(wit::KeyError::NotGranted(format!(
                "plugin `{plugin}` is not granted key {}/{}; grant it with keys = [\"{}\"] under its [plugin.grants] in platform.toml",
                key.provider, key.name, key.provider
            )));
        }
        let Some(vault) = &ctx.vault else {
            return Err(wit::KeyError::NotFound(format!(
                "no key {}/{} is stored",
                key.provider, key.name
            )));
        };
        vault.info(&key.provider, &key.name).map_err(key_error)?;
        Ok(crate::reference(&key.provider, &key.name))
    }
}
