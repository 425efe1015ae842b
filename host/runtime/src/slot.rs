//! A plugin's place in the runtime: the loaded version (swapped atomically
//! on reload), its instance places and its warm instances.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use serde::Serialize;
use tokio::sync::Semaphore;
use wasmtime::Store;
use wasmtime::component::InstancePre;

use crate::capabilities::PluginCaps;
use crate::config::PluginSpec;
use crate::exports::Exports;
use crate::host_state::HostState;
use crate::time::unix_ms;

/// One compiled and linked version of a plugin.
pub(crate) struct Loaded {
    pub(crate) spec: Arc<PluginSpec>,
    /// Every capability's context for the plugin, from its grants; its
    /// stores share it.
    pub(crate) caps: Arc<PluginCaps>,
    pub(crate) pre: InstancePre<HostState>,
    /// Whether it exports the provider interface (a provider plugin).
    pub(crate) provider: bool,
    /// What the host holds for this plugin is counted here (every version).
    pub(crate) account: convergio_host_memory::Account,
    pub(crate) exports: Exports,
    pub(crate) generation: u64,
    pub(crate) loaded_at: SystemTime,
}

/// A plugin's place in the runtime; its current version is swapped atomically.
pub(crate) struct Slot {
    pub(crate) current: ArcSwap<Loaded>,
    pub(crate) permits: Arc<Semaphore>,
    /// Signatures other plugins were linked against (`interface#fn` → signature);
    /// a reload must keep them.
    pub(crate) relied_upon: Mutex<BTreeMap<String, String>>,
    pub(crate) reload_lock: tokio::sync::Mutex<()>,
    pub(crate) last_error: Mutex<Option<String>>,
    /// Idle instances kept for the next call (`warm-instances`; see `Session::open_warm`).
    pub(crate) warm: Mutex<Vec<Warm>>,
}

/// An idle instance kept warm: its store and instance, the version it was
/// made from, and how many calls it has served.
pub(crate) struct Warm {
    pub(crate) store: Store<HostState>,
    pub(crate) instance: wasmtime::component::Instance,
    pub(crate) generation: u64,
    pub(crate) uses: u32,
    pub(crate) idle_since: Instant,
}

/// A warm instance idle for longer is dropped rather than reused.
const WARM_IDLE_TTL: Duration = Duration::from_secs(60);

impl Slot {
    /// A warm instance of version `generation`, if one is idle; instances of
    /// other versions or idle too long are dropped on the way.
    pub(crate) fn take_warm(&self, generation: u64, now: Instant) -> Option<Warm> {
        let mut warm = self.warm.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(candidate) = warm.pop() {
            if candidate.generation == generation
                && now.saturating_duration_since(candidate.idle_since) < WARM_IDLE_TTL
            {
                return Some(candidate);
            }
        }
        None
    }

    /// Drop every warm instance (after a reload).
    pub(crate) fn clear_warm(&self) {
        let dropped = std::mem::take(&mut *self.warm.lock().unwrap_or_else(|e| e.into_inner()));
        drop(dropped);
    }
}

/// What `plugin list` and the admin interface show of a plugin.
#[derive(Debug, Clone, Serialize)]
pub struct PluginInfo {
    /// Plugin id: the instance's name, from `platform.toml`.
    pub id: String,
    /// The component's name, the manifest's `id` (shared by every instance of one component).
    pub component_id: String,
    /// Manifest version.
    pub version: String,
    /// Kind from the manifest.
    pub kind: String,
    /// World the component targets.
    pub world: String,
    /// Reload count, from 1.
    pub generation: u64,
    /// Capabilities granted in `platform.toml`.
    pub capabilities: Vec<String>,
    /// Exported functions with their signatures.
    pub exports: Vec<(String, String)>,
    /// Component file.
    pub component: PathBuf,
    /// When the running version was loaded, Unix time in milliseconds.
    pub loaded_at_ms: u64,
    /// The last failed reload, if the one after it has not succeeded.
    pub last_error: Option<String>,
}

pub(crate) fn info(slot: &Slot) -> PluginInfo {
    let loaded = slot.current.load();
    let spec = &loaded.spec;
    PluginInfo {
        id: spec.id.clone(),
        component_id: spec.component_id().to_owned(),
        version: spec.manifest.version.clone(),
        kind: spec.manifest.kind.name().to_string(),
        world: spec.manifest.world(),
        generation: loaded.generation,
        capabilities: spec
            .grants
            .capabilities()
            .iter()
            .map(|c| c.name().to_string())
            .collect(),
        exports: loaded
            .exports
            .iter()
            .map(|e| (e.qualified().to_owned(), e.signature.clone()))
            .collect(),
        component: spec.component_path.clone(),
        loaded_at_ms: unix_ms(loaded.loaded_at),
        last_error: slot
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
    }
}
