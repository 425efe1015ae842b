//! The per-store host state and the capabilities implemented in the runtime
//! itself: `wasi:logging`, `wasi:config` and `convergio:platform/events`.
//! Every host call runs in a tracing span named `convergio.<capability>.<fn>`.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::broadcast;
use wasmtime::StoreLimits;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::config::PluginSpec;

mod generated {
    wasmtime::component::bindgen!({
        path: "../../wit",
        inline: "
            package convergio:host;

            /// What the runtime itself implements, and the provider
            /// interface it calls in provider plugins.
            world runtime-capabilities {
                include convergio:platform/plugin-base@0.1.0;
                import convergio:platform/keys@0.1.0;
                import convergio:platform/inference@0.1.0;
                import convergio:platform/local-model@0.1.0;
                export convergio:platform/provider@0.1.0;
            }
        ",
        world: "convergio:host/runtime-capabilities",
        imports: {
            "convergio:platform/inference": async,
            "convergio:platform/local-model": async,
        },
        exports: { default: async },
        with: {
            "convergio:platform/inference.completion-stream": crate::inference_host::InferenceStream,
            "convergio:platform/local-model.token-stream": crate::local_model_host::LocalStream,
        },
    });
}

pub(crate) use generated::convergio::platform::inference as wit_inference;
pub(crate) use generated::convergio::platform::local_model as wit_local_model;

pub(crate) use generated::convergio::platform::types as wit_types;
pub(crate) use generated::exports::convergio::platform::provider as wit_provider;

use generated::convergio::platform::{events, keys};
use generated::wasi::config::store as config_store;
use generated::wasi::logging::logging;

/// Largest event payload a plugin may publish.
pub const MAX_EVENT_PAYLOAD: usize = 64 * 1024;

/// An event published by a plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Plugin that published it.
    pub source: String,
    /// Topic, e.g. `run.node.finished`.
    pub topic: String,
    /// JSON text.
    pub payload: String,
    /// Unix time in milliseconds.
    pub timestamp_ms: u64,
}

/// State of one store: one call of one plugin.
pub struct HostState {
    pub(crate) plugin: Arc<PluginSpec>,
    /// When the current call's deadline passes; host work that could run
    /// long (storage batch reads) stops there.
    pub(crate) deadline_at: Instant,
    pub(crate) storage: convergio_cap_storage::StorageCtx,
    /// The platform's key vault, when some plugin is granted keys.
    pub(crate) vault: Option<convergio_cap_keys::Vault>,
    /// Outgoing HTTP under the plugin's policy.
    pub(crate) http: convergio_cap_http::HttpState,
    /// The inference router, for plugins granted `inference`.
    pub(crate) router: Option<Arc<convergio_cap_inference::Router>>,
    /// The platform's local models, for plugins granted `models`.
    pub(crate) local_models: Option<convergio_cap_local_model::LocalModels>,
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limits: StoreLimits,
    pub(crate) events: broadcast::Sender<Event>,
}

impl std::fmt::Debug for HostState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostState")
            .field("plugin", &self.plugin.id)
            .finish_non_exhaustive()
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wasmtime_wasi_http::WasiHttpView for HostState {
    fn http(&mut self) -> wasmtime_wasi_http::WasiHttpCtxView<'_> {
        self.http.view(&mut self.table)
    }
}

/// Add baseline WASI and the runtime's own capabilities to `linker`. Whether
/// a plugin may use them is decided before linking, from its grants.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    convergio_cap_http::add_to_linker(linker)?;
    logging::add_to_linker::<_, HasSelf<HostState>>(linker, |s| s)?;
    config_store::add_to_linker::<_, HasSelf<HostState>>(linker, |s| s)?;
    events::add_to_linker::<_, HasSelf<HostState>>(linker, |s| s)?;
    keys::add_to_linker::<_, HasSelf<HostState>>(linker, |s| s)?;
    wit_inference::add_to_linker::<_, HasSelf<HostState>>(linker, |s| s)?;
    wit_local_model::add_to_linker::<_, HasSelf<HostState>>(linker, |s| s)?;
    convergio_cap_storage::add_to_linker(linker, |s| {
        convergio_cap_storage::StorageView::new(&s.storage, &mut s.table)
            .with_deadline(s.deadline_at)
    })?;
    Ok(())
}

/// A plugin's message, context and event text are logged as fields printed
/// with `Debug`: quoted, with line breaks and other control characters
/// escaped, so a plugin cannot write a line that passes for the host's own.
impl logging::Host for HostState {
    fn log(&mut self, level: logging::Level, context: String, message: String) {
        let plugin = self.plugin.id.as_str();
        let _span = tracing::trace_span!("convergio.logging.log", plugin).entered();
        match level {
            logging::Level::Trace => {
                tracing::trace!(target: "plugin", plugin, context = ?context, message = ?message)
            }
            logging::Level::Debug => {
                tracing::debug!(target: "plugin", plugin, context = ?context, message = ?message)
            }
            logging::Level::Info => {
                tracing::info!(target: "plugin", plugin, context = ?context, message = ?message)
            }
            logging::Level::Warn => {
                tracing::warn!(target: "plugin", plugin, context = ?context, message = ?message)
            }
            logging::Level::Error | logging::Level::Critical => {
                tracing::error!(target: "plugin", plugin, context = ?context, message = ?message)
            }
        }
    }
}

impl config_store::Host for HostState {
    fn get(&mut self, key: String) -> Result<Option<String>, config_store::Error> {
        let _span =
            tracing::trace_span!("convergio.config.get", plugin = %self.plugin.id, key = ?key)
                .entered();
        Ok(self
            .plugin
            .grants
            .config
            .as_ref()
            .and_then(|values| values.get(&key).cloned()))
    }

    fn get_all(&mut self) -> Result<Vec<(String, String)>, config_store::Error> {
        let _span =
            tracing::trace_span!("convergio.config.get_all", plugin = %self.plugin.id).entered();
        Ok(self
            .plugin
            .grants
            .config
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

/// Milliseconds since the Unix epoch (0 for times before it).
pub(crate) fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Whether `topic` matches a granted pattern (`*` at the end matches any suffix).
pub(crate) fn topic_allowed(patterns: &[String], topic: &str) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => topic.starts_with(prefix),
        None => p == topic,
    })
}

impl events::Host for HostState {
    fn publish(&mut self, topic: String, payload: String) -> Result<(), events::EventError> {
        let plugin = self.plugin.id.clone();
        let _span =
            tracing::debug_span!("convergio.events.publish", plugin, topic = ?topic).entered();
        if !topic_allowed(&self.plugin.grants.events, &topic) {
            return Err(events::EventError::AccessDenied(format!(
                "plugin `{plugin}` may not publish on `{topic}`; grant it with events = [\"{topic}\"] under its [plugin.grants] in platform.toml"
            )));
        }
        if payload.len() > MAX_EVENT_PAYLOAD {
            return Err(events::EventError::Invalid(format!(
                "payload is {} bytes; the limit is {MAX_EVENT_PAYLOAD}",
                payload.len()
            )));
        }
        if let Err(e) = serde_json::from_str::<serde_json::Value>(&payload) {
            return Err(events::EventError::Invalid(format!(
                "payload is not JSON: {e}"
            )));
        }
        let timestamp_ms = unix_ms(SystemTime::now());
        tracing::info!(target: "event", plugin, topic = ?topic, payload = ?payload, "event");
        // No subscriber is not an error: events are fire-and-forget.
        let _ = self.events.send(Event {
            source: plugin,
            topic,
            payload,
            timestamp_ms,
        });
        Ok(())
    }
}

impl HostState {
    /// Whether the plugin's `keys` grant names this key.
    fn key_granted(&self, provider: &str, name: &str) -> bool {
        convergio_cap_keys::grant_allows(&self.plugin.grants.keys, provider, name)
    }
}

fn key_error(err: convergio_cap_keys::Error) -> keys::KeyError {
    use convergio_cap_keys::Error as E;
    match err {
        e @ E::Expired { .. } => keys::KeyError::Expired(e.to_string()),
        e @ E::Revoked { .. } => keys::KeyError::Revoked(e.to_string()),
        e => keys::KeyError::NotFound(e.to_string()),
    }
}

impl keys::Host for HostState {
    fn available(&mut self) -> Vec<keys::KeyInfo> {
        let _span =
            tracing::debug_span!("convergio.keys.available", plugin = %self.plugin.id).entered();
        let Some(vault) = &self.vault else {
            return Vec::new();
        };
        let Ok(listing) = vault.list() else {
            return Vec::new();
        };
        let mut seen = std::collections::BTreeSet::new();
        listing
            .into_iter()
            .filter(|k| self.key_granted(&k.key.provider, &k.key.name))
            .filter(|k| seen.insert((k.key.provider.clone(), k.key.name.clone())))
            .filter_map(|k| vault.info(&k.key.provider, &k.key.name).ok())
            .map(|info| keys::KeyInfo {
                key: keys::KeyRef {
                    provider: info.key.provider,
                    name: info.key.name,
                },
                version: info.version,
                expires_at: info.expires.map(unix_ms),
                bound_hosts: info.bound_hosts,
            })
            .collect()
    }

    fn reference(&mut self, key: keys::KeyRef) -> Result<String, keys::KeyError> {
        let plugin = self.plugin.id.clone();
        let _span = tracing::debug_span!("convergio.keys.reference", plugin, provider = ?key.provider, name = ?key.name).entered();
        if !self.key_granted(&key.provider, &key.name) {
            return Err(keys::KeyError::NotGranted(format!(
                "plugin `{plugin}` is not granted key {}/{}; grant it with keys = [\"{}\"] under its [plugin.grants] in platform.toml",
                key.provider, key.name, key.provider
            )));
        }
        let Some(vault) = &self.vault else {
            return Err(keys::KeyError::NotFound(format!(
                "no key {}/{} is stored",
                key.provider, key.name
            )));
        };
        vault.info(&key.provider, &key.name).map_err(key_error)?;
        Ok(convergio_cap_keys::reference(&key.provider, &key.name))
    }
}

#[cfg(test)]
mod tests {
    use super::topic_allowed;

    #[test]
    fn topics() {
        let granted = vec!["run.*".to_string(), "demo".to_string()];
        assert!(topic_allowed(&granted, "run.node.finished"));
        assert!(topic_allowed(&granted, "demo"));
        assert!(!topic_allowed(&granted, "demo.more"));
        assert!(!topic_allowed(&[], "run"));
    }
}
