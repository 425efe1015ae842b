//! The runtime: loads plugins, links them to the host and to each other,
//! calls them in fresh stores under their limits, and hot-reloads them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use convergio_cap_http::{HttpClient, HttpPlatform, HttpPolicy, HttpState};
use convergio_cap_inference::Router;
use convergio_cap_storage::{Backend, BucketGrant, SqliteBackend, StorageCtx, StoragePolicy};
use serde::Serialize;
use tokio::sync::{Semaphore, broadcast};
use tracing::Instrument;
use wasmtime::component::types::{ComponentFunc, ComponentItem};
use wasmtime::component::{
    Component, ComponentExportIndex, InstancePre, Linker, ResourceTable, Val,
};
use wasmtime::{CallHook, Engine, Store, StoreLimitsBuilder, Trap, UpdateDeadline};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use crate::capability::{ImportClass, classify_import};
use crate::config::{Platform, PluginSpec};
use crate::engine::{EpochTicker, build_engine};
use crate::host::{self, Event, HostState};
use crate::host_memory::{HostMemoryExceeded, MAX_HANDLES};
use crate::manifest::PluginManifest;
use crate::values::{is_plain, json_to_params, render_func, val_to_json};
use crate::{Capability, Error, Result};

/// Capabilities this host implements today. A granted capability outside this
/// set fails the load with a clear message instead of a missing-import error.
const PROVIDED: [Capability; 9] = [
    Capability::Logging,
    Capability::Config,
    Capability::Events,
    Capability::Plugins,
    Capability::Storage,
    Capability::Keys,
    Capability::Http,
    Capability::Inference,
    Capability::LocalModel,
];

/// One exported function of a loaded component.
#[derive(Debug, Clone)]
pub struct ExportFn {
    /// Exporting interface, e.g. `convergio:platform/tool@0.1.0`; none for a top-level function.
    pub interface: Option<String>,
    /// Function name.
    pub name: String,
    /// Structural signature.
    pub signature: String,
    ty: ComponentFunc,
    index: ComponentExportIndex,
}

impl ExportFn {
    /// `interface#name`, or `name` for a top-level function.
    pub fn qualified(&self) -> String {
        match &self.interface {
            Some(i) => format!("{i}#{}", self.name),
            None => self.name.clone(),
        }
    }

    /// Whether `query` names this function: `interface#name`, `short.name`
    /// (the interface's name without package and version, e.g. `tool.invoke`), or `name`.
    fn matches(&self, query: &str) -> bool {
        if query == self.name {
            return true;
        }
        let Some(interface) = &self.interface else {
            return false;
        };
        // `interface#name`, compared without building the string.
        if query
            .strip_prefix(interface.as_str())
            .and_then(|rest| rest.strip_prefix('#'))
            == Some(self.name.as_str())
        {
            return true;
        }
        let short = interface
            .split('@')
            .next()
            .and_then(|i| i.rsplit('/').next())
            .unwrap_or(interface);
        query
            .strip_prefix(short)
            .and_then(|rest| rest.strip_prefix('.'))
            == Some(self.name.as_str())
    }
}

/// One compiled and linked version of a plugin.
pub(crate) struct Loaded {
    pub(crate) spec: Arc<PluginSpec>,
    /// The plugin's storage: its granted buckets and quotas on the shared backend.
    storage: StorageCtx,
    /// The plugin's outgoing HTTP: its allow-list, limits and in-flight count.
    http: HttpClient,
    pub(crate) pre: InstancePre<HostState>,
    /// Where the provider interface's functions are, for provider plugins.
    pub(crate) provider: Option<host::wit_provider::GuestIndices>,
    /// What the host holds for this plugin is counted here (every version).
    account: convergio_host_memory::Account,
    exports: Vec<ExportFn>,
    generation: u64,
    loaded_at: SystemTime,
}

/// A plugin's place in the runtime; its current version is swapped atomically.
pub(crate) struct Slot {
    pub(crate) current: ArcSwap<Loaded>,
    permits: Arc<Semaphore>,
    /// Signatures other plugins were linked against (`interface#fn` → signature);
    /// a reload must keep them.
    relied_upon: Mutex<BTreeMap<String, String>>,
    reload_lock: tokio::sync::Mutex<()>,
    last_error: Mutex<Option<String>>,
    /// Idle instances kept for the next call (provider plugins; see [`Session::open_warm`]).
    warm: Mutex<Vec<Warm>>,
}

/// An idle instance kept warm: its store and instance, the version it was
/// made from, and how many calls it has served.
struct Warm {
    store: Store<HostState>,
    instance: wasmtime::component::Instance,
    generation: u64,
    uses: u32,
    idle_since: Instant,
}

/// A warm instance serves at most this many calls, then is dropped, so what
/// a long-lived instance accumulates (heap fragmentation, leaked handles) stays bounded.
const WARM_MAX_USES: u32 = 1_000;

/// A warm instance idle for longer is dropped rather than reused.
const WARM_IDLE_TTL: Duration = Duration::from_secs(60);

impl Slot {
    /// A warm instance of version `generation`, if one is idle; instances of
    /// other versions or idle too long are dropped on the way.
    fn take_warm(&self, generation: u64) -> Option<Warm> {
        let mut warm = self.warm.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(candidate) = warm.pop() {
            if candidate.generation == generation && candidate.idle_since.elapsed() < WARM_IDLE_TTL
            {
                return Some(candidate);
            }
        }
        None
    }

    /// Drop every warm instance (after a reload).
    fn clear_warm(&self) {
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

pub(crate) struct Inner {
    engine: Engine,
    storage: Arc<dyn Backend>,
    vault: Option<convergio_cap_keys::Vault>,
    http: Arc<HttpPlatform>,
    /// The inference router over the provider plugins, set once they are loaded.
    router: std::sync::OnceLock<Arc<Router>>,
    /// Local models (llama.cpp, Ollama), when some plugin is granted `models`.
    local_models: Option<convergio_cap_local_model::LocalModels>,
    slots: RwLock<BTreeMap<String, Arc<Slot>>>,
    /// Each plugin's host-memory account, kept across reloads.
    accounts: Mutex<BTreeMap<String, convergio_host_memory::Account>>,
    events: broadcast::Sender<Event>,
    fuel: bool,
    tick: Duration,
    _epoch: EpochTicker,
    /// The file watcher started by `[runtime] watch = true`.
    watch: Mutex<Option<crate::WatchHandle>>,
}

/// The Convergio host runtime. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("plugins", &self.plugin_ids())
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// Build the engine and load every plugin of `platform`, callees before
    /// callers. Every plugin that fails is reported in one [`Error::Invalid`].
    pub async fn new(platform: &Platform) -> Result<Self> {
        let cache_dir = if platform.runtime.compile_cache {
            Some(
                platform
                    .runtime
                    .cache_dir
                    .clone()
                    .unwrap_or_else(|| crate::paths::home().join("cache")),
            )
        } else {
            None
        };
        let fuel = platform.plugins.iter().any(|p| p.limits.fuel.is_some());
        let engine = build_engine(&platform.runtime, cache_dir, fuel)?;
        let tick = Duration::from_millis(platform.runtime.epoch_tick_ms.max(1));
        let epoch = EpochTicker::start(&engine, tick)?;
        if !convergio_host_memory::installed() {
            tracing::warn!(
                "host memory that plugins cause is not counted against their host-memory-mib: this program's global allocator is not convergio_runtime::HostAllocator"
            );
        }
        let (events, _) = broadcast::channel(1024);
        let storage = open_storage(platform)?;
        let vault = open_vault(platform)?;
        let http = open_http(platform, vault.clone())?;
        let local_models = open_local_models(platform)?;
        let runtime = Self {
            inner: Arc::new(Inner {
                engine,
                storage,
                vault,
                http,
                router: std::sync::OnceLock::new(),
                local_models,
                slots: RwLock::new(BTreeMap::new()),
                accounts: Mutex::new(BTreeMap::new()),
                events,
                fuel,
                tick,
                _epoch: epoch,
                watch: Mutex::new(None),
            }),
        };

        let mut problems = Vec::new();
        let mut failed = BTreeSet::new();
        for spec in load_order(&platform.plugins)? {
            if let Some(dep) = spec.grants.plugins.iter().find(|d| failed.contains(*d)) {
                problems.push(format!(
                    "plugin `{}` ({}): not loaded because plugin `{dep}` it may call failed to load",
                    spec.id, spec.config_location
                ));
                failed.insert(spec.id.clone());
                continue;
            }
            match runtime.load(Arc::new(spec.clone()), 1).await {
                Ok(loaded) => runtime.insert(loaded),
                Err(err) => {
                    problems.push(err.to_string());
                    failed.insert(spec.id.clone());
                }
            }
        }
        if !problems.is_empty() {
            return Err(Error::Invalid(problems));
        }
        let router = runtime.start_router(platform).await?;
        let _ = runtime.inner.router.set(router);
        if platform.runtime.watch {
            let handle = runtime.watch()?;
            *runtime
                .inner
                .watch
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(handle);
        }
        Ok(runtime)
    }

    /// The engine, e.g. for benchmarks that compare against raw wasmtime.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Ids of the loaded plugins.
    pub fn plugin_ids(&self) -> Vec<String> {
        self.read_slots().keys().cloned().collect()
    }

    /// Receive every event plugins publish from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// What is loaded, in id order.
    pub fn plugins(&self) -> Vec<PluginInfo> {
        self.read_slots().values().map(|slot| info(slot)).collect()
    }

    /// One plugin's info.
    pub fn plugin(&self, id: &str) -> Result<PluginInfo> {
        Ok(info(&*self.slot(id)?))
    }

    /// Call `function` of `plugin` with JSON arguments (an array in parameter
    /// order or an object by parameter name); the result is JSON (`null` when
    /// the function returns nothing).
    pub async fn invoke_json(
        &self,
        plugin: &str,
        function: &str,
        args: &serde_json::Value,
    ) -> Result<serde_json::Value> {
        let slot = self.slot(plugin)?;
        let loaded = slot.current.load_full();
        let export = find_export(plugin, &loaded, function)?;
        let params = json_to_params(&export.ty, args).map_err(|message| Error::BadArguments {
            function: export.qualified(),
            message,
        })?;
        let mut results = vec![Val::Bool(false); export.ty.results().len()];
        self.call(&slot, &loaded, export, &params, &mut results)
            .await?;
        Ok(match results.as_slice() {
            [] => serde_json::Value::Null,
            [one] => val_to_json(one),
            many => serde_json::Value::Array(many.iter().map(val_to_json).collect()),
        })
    }

    /// Call `function` of `plugin` with component values.
    pub async fn invoke(&self, plugin: &str, function: &str, params: &[Val]) -> Result<Vec<Val>> {
        let slot = self.slot(plugin)?;
        let loaded = slot.current.load_full();
        let export = find_export(plugin, &loaded, function)?;
        let mut results = vec![Val::Bool(false); export.ty.results().len()];
        self.call(&slot, &loaded, export, params, &mut results)
            .await?;
        Ok(results)
    }

    /// The inference router over the provider plugins; every plugin granted
    /// `inference` calls through it.
    pub fn router(&self) -> Option<Arc<Router>> {
        self.inner.router.get().cloned()
    }

    /// Build the router from `[inference]` and the loaded provider plugins,
    /// with its budgets and metering in the usage ledger. A chain, fallback
    /// or price naming a model no provider lists, or a budget that names no
    /// key, plugin or agent it could apply to, is an error.
    async fn start_router(&self, platform: &Platform) -> Result<Arc<Router>> {
        let providers = self.providers().await?;
        let ledger = open_ledger(platform)?;
        let sink = Arc::new(crate::provider::MeteringSink {
            vault: self.inner.vault.clone(),
        });
        let router = Router::with_store(platform.router_config(), providers, sink, ledger);
        let mut problems = platform.inference_problems(&router.check_config().await);
        problems.extend(platform.budget_problems());
        if !problems.is_empty() {
            return Err(Error::Invalid(problems));
        }
        Ok(Arc::new(router))
    }

    /// The provider plugins (kind `provider`), for the inference router.
    /// Each is named by the id its `info()` reports (`openai/…`), unless
    /// several plugins report the same id (two accounts of one provider):
    /// then each of those is named by its plugin id. Its key is its `key`
    /// config value, else `ID/default` when it is granted keys.
    pub async fn providers(&self) -> Result<Vec<Arc<dyn convergio_cap_inference::Provider>>> {
        let slots: Vec<(String, Arc<Slot>)> = self
            .read_slots()
            .iter()
            .filter(|(_, slot)| {
                slot.current.load().spec.manifest.kind == crate::PluginKind::Provider
            })
            .map(|(id, slot)| (id.clone(), slot.clone()))
            .collect();
        let mut found = Vec::new();
        for (plugin, slot) in slots {
            let mut provider = crate::provider::ComponentProvider {
                inner: Arc::downgrade(&self.inner),
                slot: Arc::downgrade(&slot),
                plugin: plugin.clone(),
                id: String::new(),
                key: None,
            };
            let (mut session, guest) = provider.session().await.map_err(|e| Error::Load {
                plugin: plugin.clone(),
                message: e.to_string(),
            })?;
            let info = session
                .run(async |store, _| guest.call_info(store).await)
                .await?;
            session.release();
            let grants = &slot.current.load().spec.grants;
            provider.key = grants
                .config
                .as_ref()
                .and_then(|c| c.get("key").cloned())
                // `NAME` alone is a key of this provider, as the adapters read it.
                .map(|k| {
                    if k.contains('/') {
                        k
                    } else {
                        format!("{}/{k}", info.id)
                    }
                })
                .or_else(|| (!grants.keys.is_empty()).then(|| format!("{}/default", info.id)));
            provider.id = info.id;
            found.push(provider);
        }
        let found_ids: Vec<String> = found
            .iter()
            .map(|p: &crate::provider::ComponentProvider| p.id.clone())
            .collect();
        let mut out: Vec<Arc<dyn convergio_cap_inference::Provider>> = Vec::new();
        for mut provider in std::mem::take(&mut found) {
            let shared = found_ids.iter().filter(|id| **id == provider.id).count() > 1;
            if shared {
                tracing::info!(plugin = %provider.plugin, provider = %provider.id, "several plugins provide `{}`; this one is named `{}`", provider.id, provider.plugin);
                provider.id = provider.plugin.clone();
            }
            out.push(Arc::new(provider));
        }
        Ok(out)
    }

    /// Recompile `plugin` from its file and swap it in. Calls in flight finish
    /// on the old version; new calls get the new one. On failure the old
    /// version keeps running and the error is returned (and kept for `plugins()`).
    pub async fn reload(&self, plugin: &str) -> Result<PluginInfo> {
        let slot = self.slot(plugin)?;
        let _guard = slot.reload_lock.lock().await;
        let old = slot.current.load_full();
        let span = tracing::info_span!(
            "convergio.runtime.reload",
            plugin,
            generation = old.generation + 1
        );
        let result = self.reload_locked(&slot, &old).instrument(span).await;
        let mut last_error = slot.last_error.lock().unwrap_or_else(|e| e.into_inner());
        match &result {
            Ok(_) => {
                *last_error = None;
                tracing::info!(plugin, "reloaded");
            }
            Err(err) => {
                *last_error = Some(err.to_string());
                tracing::error!(plugin, error = %err, "reload failed; the previous version keeps running");
            }
        }
        drop(last_error);
        result.map(|()| info(&slot))
    }

    async fn reload_locked(&self, slot: &Slot, old: &Loaded) -> Result<()> {
        let mut spec = (*old.spec).clone();
        // The manifest may have changed with the component; grants and limits stay the operator's.
        let manifest = PluginManifest::load(&spec.manifest_path)?;
        if manifest.id != spec.manifest.id {
            return Err(Error::Load {
                plugin: spec.id.clone(),
                message: format!(
                    "{} now says id = \"{}\", but this plugin runs component `{}`; restart the platform to load another component",
                    spec.manifest_path.display(),
                    manifest.id,
                    spec.manifest.id
                ),
            });
        }
        spec.manifest = manifest;
        let new = self.load(Arc::new(spec), old.generation + 1).await?;
        let relied = slot
            .relied_upon
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for (name, signature) in &relied {
            match new.exports.iter().find(|e| &e.qualified() == name) {
                Some(e) if &e.signature == signature => {}
                Some(e) => {
                    return Err(Error::Load {
                        plugin: new.spec.id.clone(),
                        message: format!(
                            "the new version changes `{name}` from {signature} to {}, which other plugins are linked against; restart the platform to change an interface",
                            e.signature
                        ),
                    });
                }
                None => {
                    return Err(Error::Load {
                        plugin: new.spec.id.clone(),
                        message: format!(
                            "the new version no longer exports `{name}`, which other plugins call"
                        ),
                    });
                }
            }
        }
        slot.current.store(Arc::new(new));
        slot.clear_warm();
        Ok(())
    }

    fn insert(&self, loaded: Loaded) {
        let id = loaded.spec.id.clone();
        let permits = Arc::new(Semaphore::new(loaded.spec.limits.max_instances as usize));
        let slot = Slot {
            current: ArcSwap::from_pointee(loaded),
            permits,
            relied_upon: Mutex::new(BTreeMap::new()),
            reload_lock: tokio::sync::Mutex::new(()),
            last_error: Mutex::new(None),
            warm: Mutex::new(Vec::new()),
        };
        self.inner
            .slots
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, Arc::new(slot));
    }

    fn read_slots(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Slot>>> {
        self.inner.slots.read().unwrap_or_else(|e| e.into_inner())
    }

    fn slot(&self, id: &str) -> Result<Arc<Slot>> {
        self.read_slots()
            .get(id)
            .cloned()
            .ok_or_else(|| Error::UnknownPlugin(id.to_string()))
    }

    /// The host-memory account of plugin `id` (made on first use).
    fn account(&self, id: &str) -> convergio_host_memory::Account {
        *self
            .inner
            .accounts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(id.to_string())
            .or_insert_with(convergio_host_memory::Account::new)
    }

    /// Compile, check and link one plugin.
    async fn load(&self, spec: Arc<PluginSpec>, generation: u64) -> Result<Loaded> {
        let span = tracing::info_span!("convergio.runtime.load", plugin = %spec.id, generation);
        self.load_inner(spec, generation).instrument(span).await
    }

    async fn load_inner(&self, spec: Arc<PluginSpec>, generation: u64) -> Result<Loaded> {
        let fail = |message: String| Error::Load {
            plugin: spec.id.clone(),
            message,
        };
        let engine = self.inner.engine.clone();
        let path = spec.component_path.clone();
        let started = Instant::now();
        let component = tokio::task::spawn_blocking(move || compile(&engine, &path))
            .await
            .map_err(|e| fail(format!("compilation task failed: {e}")))?
            .map_err(&fail)?;
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "compiled"
        );

        // Grants first: a component that imports what it may not have is refused whatever else it is.
        let linker = self.link(&spec, &component)?;
        let exports = list_exports(&self.inner.engine, &component);
        let required = spec.manifest.kind.required_export();
        if !exports
            .iter()
            .any(|e| e.interface.as_deref() == Some(required))
        {
            let mut names: Vec<String> =
                exports.iter().filter_map(|e| e.interface.clone()).collect();
            names.dedup();
            return Err(fail(format!(
                "its manifest says kind = \"{}\", so the component must export `{required}`, but it exports: {}",
                spec.manifest.kind.name(),
                if names.is_empty() {
                    "nothing".to_string()
                } else {
                    names.join(", ")
                }
            )));
        }

        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| fail(format!("cannot link: {}", one_line(&e))))?;
        let buckets = spec
            .grants
            .storage
            .iter()
            .map(|name| {
                let mut grant = BucketGrant::new(name.clone());
                if let Some(keys) = spec.limits.bucket_max_keys {
                    grant = grant.with_max_keys(keys);
                }
                if let Some(bytes) = spec.limits.bucket_max_bytes {
                    grant = grant.with_max_bytes(bytes);
                }
                grant
            })
            .collect();
        let storage = StorageCtx::new(
            spec.id.clone(),
            self.inner.storage.clone(),
            Arc::new(StoragePolicy::new(buckets)),
        )
        .with_max_batch_bytes(spec.limits.host_memory_bytes as u64);
        let policy = HttpPolicy::parse(&spec.grants.http, &spec.grants.keys, spec.limits.http)
            .map_err(|problems| {
                fail(
                    problems
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; "),
                )
            })?;
        let http = HttpClient::new(spec.id.clone(), policy, self.inner.http.clone());
        let provider = host::wit_provider::GuestIndices::new(&pre).ok();
        Ok(Loaded {
            account: self.account(&spec.id),
            spec,
            storage,
            http,
            pre,
            provider,
            exports,
            generation,
            loaded_at: SystemTime::now(),
        })
    }

    /// A linker for `spec`'s component: baseline WASI and granted host
    /// capabilities, plus forwarding functions to the granted plugins it imports.
    fn link(&self, spec: &Arc<PluginSpec>, component: &Component) -> Result<Linker<HostState>> {
        let engine = &self.inner.engine;
        let mut linker = Linker::new(engine);
        host::add_to_linker(&mut linker)?;
        let mut problems = Vec::new();
        let declared = &spec.manifest.requires.capabilities;
        let ty = component.component_type();
        for (name, import) in ty.imports(engine) {
            let class = classify_import(name);
            let capability = match class {
                ImportClass::Baseline => continue,
                ImportClass::Sockets => {
                    problems.push(format!(
                        "plugin `{}` imports `{name}`: raw sockets are never granted to plugins; use wasi:http/outgoing-handler with an `http` grant instead",
                        spec.id
                    ));
                    continue;
                }
                ImportClass::Host(cap) => cap,
                ImportClass::Plugin => Capability::Plugins,
            };
            if !capability.is_granted(&spec.grants) {
                problems.push(denied(spec, name, capability));
                continue;
            }
            if !declared.contains(&capability) {
                problems.push(format!(
                    "plugin `{}` imports `{name}` but its manifest {} does not declare it; add \"{capability}\" to `capabilities` under [requires]",
                    spec.id,
                    spec.manifest_path.display()
                ));
                continue;
            }
            if !PROVIDED.contains(&capability) {
                problems.push(format!(
                    "plugin `{}` imports `{name}` (capability `{capability}`), which this host does not provide yet",
                    spec.id
                ));
                continue;
            }
            if class == ImportClass::Plugin
                && let Err(problem) = self.link_plugin_import(&mut linker, spec, name, &import.ty)
            {
                problems.push(problem);
            }
        }
        if problems.is_empty() {
            Ok(linker)
        } else {
            Err(Error::Denied(problems.join("\n")))
        }
    }

    /// Resolve import `name` of `spec` to the one granted plugin that exports
    /// it and define forwarding functions for each of its functions.
    fn link_plugin_import(
        &self,
        linker: &mut Linker<HostState>,
        spec: &Arc<PluginSpec>,
        name: &str,
        item: &ComponentItem,
    ) -> std::result::Result<(), String> {
        let ComponentItem::ComponentInstance(wanted) = item else {
            return Err(format!(
                "plugin `{}` imports `{name}`, which is not an interface; only interfaces can be linked to other plugins",
                spec.id
            ));
        };
        let slots = self.read_slots();
        let exporters: Vec<(&String, &Arc<Slot>)> = slots
            .iter()
            .filter(|(_, s)| {
                s.current
                    .load()
                    .exports
                    .iter()
                    .any(|e| e.interface.as_deref() == Some(name))
            })
            .collect();
        let granted: Vec<_> = exporters
            .iter()
            .filter(|(id, _)| spec.grants.plugins.contains(id))
            .collect();
        let (callee_id, callee) = match granted.as_slice() {
            [one] => **one,
            [] if exporters.is_empty() => {
                return Err(format!(
                    "plugin `{}` imports `{name}`, which neither the host nor any loaded plugin provides; load a plugin that exports it and grant it with plugins = [\"<id>\"] under [plugin.grants] of `{}` ({})",
                    spec.id, spec.id, spec.config_location
                ));
            }
            [] => {
                let ids: Vec<&str> = exporters.iter().map(|(id, _)| id.as_str()).collect();
                return Err(format!(
                    "plugin `{}` imports `{name}`, exported by {}, but may not call {}; grant it in platform.toml with plugins = [\"{}\"] under [plugin.grants] of `{}` ({})",
                    spec.id,
                    ids.join(", "),
                    if ids.len() == 1 { "it" } else { "any of them" },
                    ids[0],
                    spec.id,
                    spec.config_location
                ));
            }
            many => {
                let ids: Vec<&str> = many.iter().map(|(id, _)| id.as_str()).collect();
                return Err(format!(
                    "plugin `{}` imports `{name}`, which several plugins it may call export ({}); keep only one of them in its `plugins` grant",
                    spec.id,
                    ids.join(", ")
                ));
            }
        };
        let callee_loaded = callee.current.load_full();
        let mut instance = linker.instance(name).map_err(|e| {
            format!(
                "plugin `{}`: cannot link `{name}`: {}",
                spec.id,
                one_line(&e)
            )
        })?;
        let mut relied = Vec::new();
        for (func_name, func_item) in wanted.exports(&self.inner.engine) {
            let ComponentItem::ComponentFunc(func_ty) = func_item.ty else {
                continue;
            };
            let signature = render_func(&func_ty);
            let export = callee_loaded
                .exports
                .iter()
                .find(|e| e.interface.as_deref() == Some(name) && e.name == func_name)
                .ok_or_else(|| {
                    format!("plugin `{}` imports `{name}#{func_name}`, which `{callee_id}` does not export", spec.id)
                })?;
            if export.signature != signature {
                return Err(format!(
                    "plugin `{}` expects `{name}#{func_name}` to be {signature}, but `{callee_id}` exports {}; rebuild one of them against the same WIT",
                    spec.id, export.signature
                ));
            }
            let plain = func_ty.params().all(|(_, t)| is_plain(&t))
                && func_ty.results().all(|t| is_plain(&t));
            if !plain {
                return Err(format!(
                    "`{name}#{func_name}` passes resources, streams or futures, which cannot cross between plugins; use plain data in interfaces that plugins export to each other"
                ));
            }
            relied.push((export.qualified(), signature));
            let target = CallTarget {
                runtime: Arc::downgrade(&self.inner),
                caller: spec.id.clone(),
                callee: callee_id.clone(),
                slot: Arc::downgrade(callee),
                interface: name.to_string(),
                function: func_name.to_string(),
            };
            instance
                .func_new_async(func_name, move |_store, _ty, params, results| {
                    let target = target.clone();
                    Box::new(async move { target.call(params, results).await })
                })
                .map_err(|e| {
                    format!(
                        "plugin `{}`: cannot link `{name}#{func_name}`: {}",
                        spec.id,
                        one_line(&e)
                    )
                })?;
        }
        callee
            .relied_upon
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(relied);
        Ok(())
    }

    /// Run one export in a fresh store under the plugin's limits.
    async fn call(
        &self,
        slot: &Slot,
        loaded: &Loaded,
        export: &ExportFn,
        params: &[Val],
        results: &mut [Val],
    ) -> Result<()> {
        call_in_store(&self.inner, slot, loaded, export, params, results).await
    }

    /// The platform's key vault, open when some plugin is granted keys; for
    /// upkeep such as [`convergio_cap_keys::Vault::spawn_maintenance`].
    pub fn vault(&self) -> Option<&convergio_cap_keys::Vault> {
        self.inner.vault.as_ref()
    }
}

/// A function of another plugin, as linked into a caller.
#[derive(Clone)]
struct CallTarget {
    runtime: Weak<Inner>,
    caller: String,
    callee: String,
    slot: Weak<Slot>,
    interface: String,
    function: String,
}

impl CallTarget {
    async fn call(&self, params: &[Val], results: &mut [Val]) -> wasmtime::Result<()> {
        let span = tracing::debug_span!(
            "convergio.plugins.call",
            caller = %self.caller,
            callee = %self.callee,
            function = %self.function
        );
        self.call_inner(params, results).instrument(span).await
    }

    async fn call_inner(&self, params: &[Val], results: &mut [Val]) -> wasmtime::Result<()> {
        let (Some(inner), Some(slot)) = (self.runtime.upgrade(), self.slot.upgrade()) else {
            wasmtime::bail!("the runtime is shutting down");
        };
        let loaded = slot.current.load_full();
        let Some(export) = loaded.exports.iter().find(|e| {
            e.interface.as_deref() == Some(self.interface.as_str()) && e.name == self.function
        }) else {
            wasmtime::bail!(
                "plugin `{}` no longer exports `{}#{}`",
                self.callee,
                self.interface,
                self.function
            );
        };
        call_in_store(&inner, &slot, &loaded, export, params, results)
            .await
            .map_err(|e| {
                wasmtime::format_err!(
                    "call from `{}` to `{}#{}` of `{}` failed: {e}",
                    self.caller,
                    self.interface,
                    self.function,
                    self.callee
                )
            })
    }
}

async fn call_in_store(
    inner: &Inner,
    slot: &Slot,
    loaded: &Loaded,
    export: &ExportFn,
    params: &[Val],
    results: &mut [Val],
) -> Result<()> {
    let spec = &loaded.spec;
    let span = tracing::debug_span!(
        "convergio.runtime.call",
        plugin = %spec.id,
        function = %export.qualified(),
        generation = loaded.generation
    );
    async {
        let mut session = Session::open(inner, slot, loaded).await?;
        session
            .run(async |store, instance| {
                let func = instance
                    .get_func(&mut *store, export.index)
                    .ok_or_else(|| {
                        wasmtime::format_err!("export `{}` is not a function", export.qualified())
                    })?;
                func.call_async(&mut *store, params, results).await
            })
            .await
    }
    .instrument(span)
    .await
}

/// A live instance of one plugin: its store (with the plugin's limits and
/// grants), the instance and the slot it occupies. A call uses one session;
/// a stream keeps its session until it ends. The plugin's deadline counts
/// from the opening.
pub(crate) struct Session {
    pub(crate) store: Store<HostState>,
    pub(crate) instance: wasmtime::component::Instance,
    spec: Arc<PluginSpec>,
    /// Charged with what the host allocates while the session runs.
    account: convergio_host_memory::Account,
    deadline_at: Instant,
    grace: Duration,
    _permit: tokio::sync::OwnedSemaphorePermit,
    /// Where [`Session::release`] returns the instance, if it may be kept warm.
    warm: Option<WarmReturn>,
    /// No call of this session failed, trapped or timed out.
    healthy: bool,
}

/// Where a session's instance goes back to, and what it has served.
struct WarmReturn {
    slot: Weak<Slot>,
    generation: u64,
    uses: u32,
}

impl Session {
    /// Wait for a free instance slot, then instantiate the plugin.
    pub(crate) async fn open(inner: &Inner, slot: &Slot, loaded: &Loaded) -> Result<Self> {
        let spec = &loaded.spec;
        let limits = spec.limits;
        let deadline = Duration::from_millis(limits.deadline_ms);
        let started = Instant::now();
        let permit = Self::permit(spec, slot, started).await?;
        let deadline_at = Instant::now() + deadline.saturating_sub(started.elapsed());
        let grace = Duration::from_millis(100) + inner.tick * 2;

        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_HANDLES);
        let state = HostState {
            plugin: spec.clone(),
            deadline_at,
            storage: loaded.storage.clone(),
            vault: inner.vault.clone(),
            http: HttpState::new(loaded.http.clone()),
            router: inner.router.get().cloned(),
            local_models: inner.local_models.clone(),
            wasi: wasi_ctx(spec)?,
            table,
            limits: StoreLimitsBuilder::new()
                .memory_size(limits.memory_bytes)
                .table_elements(limits.table_elements)
                .trap_on_grow_failure(true)
                .build(),
            events: inner.events.clone(),
        };
        let mut store = Store::new(&inner.engine, state);
        store.limiter(|s| &mut s.limits);
        guard_host_memory(&mut store, loaded.account, limits.host_memory_bytes);
        arm(&mut store, inner, spec, deadline_at)?;
        // The epoch deadline stops guest code; the timeout also bounds time in host calls.
        let pre = loaded.pre.clone();
        let outcome = tokio::time::timeout(
            deadline_at.saturating_duration_since(Instant::now()) + grace,
            loaded.account.scope(pre.instantiate_async(&mut store)),
        )
        .await;
        let instance = Self::settle(spec, outcome)?;
        Ok(Self {
            store,
            instance,
            spec: spec.clone(),
            account: loaded.account,
            deadline_at,
            grace,
            _permit: permit,
            warm: None,
            healthy: true,
        })
    }

    /// [`Session::open`] for a plugin whose instances may serve several
    /// calls (provider plugins, which hold no state between calls): an idle
    /// instance of the current version is taken if there is one, with a
    /// fresh deadline and fuel. Give the instance back with
    /// [`Session::release`] after a call that went well.
    pub(crate) async fn open_warm(
        inner: &Inner,
        slot: &Arc<Slot>,
        loaded: &Loaded,
    ) -> Result<Self> {
        let spec = &loaded.spec;
        if spec.limits.warm_instances == 0 {
            return Self::open(inner, slot, loaded).await;
        }
        let mut session = match slot.take_warm(loaded.generation) {
            Some(warm) => {
                let started = Instant::now();
                let permit = Self::permit(spec, slot, started).await?;
                let deadline = Duration::from_millis(spec.limits.deadline_ms);
                let deadline_at = Instant::now() + deadline.saturating_sub(started.elapsed());
                let mut store = warm.store;
                arm(&mut store, inner, spec, deadline_at)?;
                Self {
                    store,
                    instance: warm.instance,
                    spec: spec.clone(),
                    account: loaded.account,
                    deadline_at,
                    grace: Duration::from_millis(100) + inner.tick * 2,
                    _permit: permit,
                    warm: Some(WarmReturn {
                        slot: Arc::downgrade(slot),
                        generation: loaded.generation,
                        uses: warm.uses,
                    }),
                    healthy: true,
                }
            }
            None => Self::open(inner, slot, loaded).await?,
        };
        let warm = session.warm.get_or_insert_with(|| WarmReturn {
            slot: Arc::downgrade(slot),
            generation: loaded.generation,
            uses: 0,
        });
        warm.uses += 1;
        Ok(session)
    }

    /// End the session; an instance opened with [`Session::open_warm`] whose
    /// calls all went well goes back to its slot for the next call, unless
    /// the plugin was reloaded meanwhile, enough instances are idle already,
    /// or it has served [`WARM_MAX_USES`] calls.
    pub(crate) fn release(self) {
        let Some(warm) = &self.warm else { return };
        if !self.healthy || warm.uses >= WARM_MAX_USES {
            return;
        }
        let Some(slot) = warm.slot.upgrade() else {
            return;
        };
        if slot.current.load().generation != warm.generation {
            return;
        }
        let keep = self.spec.limits.warm_instances as usize;
        let (generation, uses) = (warm.generation, warm.uses);
        let mut idle = slot.warm.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < keep {
            idle.push(Warm {
                store: self.store,
                instance: self.instance,
                generation,
                uses,
                idle_since: Instant::now(),
            });
        }
    }

    /// Wait (up to the plugin's `queue-ms` from `started`) for one of its
    /// `max-instances` places.
    async fn permit(
        spec: &PluginSpec,
        slot: &Slot,
        started: Instant,
    ) -> Result<tokio::sync::OwnedSemaphorePermit> {
        let limits = spec.limits;
        let queue = Duration::from_millis(limits.queue_ms).saturating_sub(started.elapsed());
        match tokio::time::timeout(queue, slot.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(Error::Busy {
                plugin: spec.id.clone(),
                limit: limits.max_instances,
                waited_ms: started.elapsed().as_millis() as u64,
            }),
        }
    }

    /// Run `f` on the instance, within what is left of the deadline; a trap
    /// or the deadline becomes [`Error::Stopped`] with a one-line reason.
    pub(crate) async fn run<T>(
        &mut self,
        f: impl AsyncFnOnce(
            &mut Store<HostState>,
            &wasmtime::component::Instance,
        ) -> wasmtime::Result<T>,
    ) -> Result<T> {
        let left = self.deadline_at.saturating_duration_since(Instant::now());
        let account = self.account;
        let outcome = tokio::time::timeout(
            left + self.grace,
            account.scope(f(&mut self.store, &self.instance)),
        )
        .await;
        let settled = Self::settle(&self.spec, outcome);
        // A trap or a call cut at its deadline leaves the instance unusable.
        self.healthy &= settled.is_ok();
        settled
    }

    fn settle<T>(
        spec: &PluginSpec,
        outcome: std::result::Result<wasmtime::Result<T>, tokio::time::error::Elapsed>,
    ) -> Result<T> {
        let stopped = |reason: String| {
            tracing::warn!(plugin = %spec.id, %reason, "plugin stopped");
            Error::Stopped {
                plugin: spec.id.clone(),
                reason,
            }
        };
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(stopped(describe_failure(&err, spec))),
            Err(_) => Err(stopped(format!(
                "deadline of {} ms exceeded",
                spec.limits.deadline_ms
            ))),
        }
    }
}

/// Stop the plugin's call when the host holds more than `limit` bytes for
/// it: checked each time a host call returns to the guest and each time the
/// host calls into the guest, so a plugin overshoots by at most what one host
/// call allocates (and those that could allocate without bound, such as
/// storage batch reads, are capped themselves).
fn guard_host_memory(
    store: &mut Store<HostState>,
    account: convergio_host_memory::Account,
    limit: usize,
) {
    if !account.is_counting() {
        return;
    }
    store.call_hook(move |_, hook| {
        if matches!(hook, CallHook::ReturningFromHost | CallHook::CallingWasm) {
            let used = account.used();
            if used > limit {
                return Err(HostMemoryExceeded { used, limit }.into());
            }
        }
        Ok(())
    });
}

/// Set a store up for one session: the deadline (guest code yields to the
/// executor every epoch tick, so a busy plugin never holds a worker thread,
/// and is interrupted once `deadline_at` has passed) and the fuel of a call.
fn arm(
    store: &mut Store<HostState>,
    inner: &Inner,
    spec: &PluginSpec,
    deadline_at: Instant,
) -> Result<()> {
    // Host calls that could run long (storage batch reads) stop there too.
    store.data_mut().deadline_at = deadline_at;
    store.epoch_deadline_callback(move |_| {
        if Instant::now() >= deadline_at {
            Ok(UpdateDeadline::Interrupt)
        } else {
            Ok(UpdateDeadline::Yield(1))
        }
    });
    store.set_epoch_deadline(1);
    if inner.fuel {
        store.set_fuel(spec.limits.fuel.unwrap_or(u64::MAX))?;
    }
    Ok(())
}

/// The storage backend: the platform's SQLite database in its data directory.
fn open_storage(platform: &Platform) -> Result<Arc<dyn Backend>> {
    let path = platform
        .runtime
        .data_dir
        .clone()
        .unwrap_or_else(crate::paths::home)
        .join("convergio.db");
    let backend = SqliteBackend::open(&path).map_err(|e| {
        Error::Config(format!(
            "cannot open the storage database {}: {e}",
            path.display()
        ))
    })?;
    Ok(Arc::new(backend))
}

/// The usage ledger of model calls and budget holds: `usage.db` in the
/// data directory.
fn open_ledger(platform: &Platform) -> Result<Arc<convergio_cap_inference::Ledger>> {
    let path = platform
        .runtime
        .data_dir
        .clone()
        .unwrap_or_else(crate::paths::home)
        .join("usage.db");
    convergio_cap_inference::Ledger::open(&path)
        .map(Arc::new)
        .map_err(|e| Error::Config(format!("cannot open {}: {e}", path.display())))
}

/// The key vault, opened only when some plugin is granted keys (so a platform
/// without keys never creates a master key).
fn open_vault(platform: &Platform) -> Result<Option<convergio_cap_keys::Vault>> {
    if platform.plugins.iter().all(|p| p.grants.keys.is_empty()) {
        return Ok(None);
    }
    let dir = platform
        .runtime
        .data_dir
        .clone()
        .unwrap_or_else(crate::paths::home);
    convergio_cap_keys::Vault::open_in_with(&dir, platform.keys.vault_options())
        .map(Some)
        .map_err(|e| {
            Error::Config(format!(
                "cannot open the key vault in {}: {e}",
                dir.display()
            ))
        })
}

/// The local model backends, when some plugin is granted `models`: llama.cpp
/// over the model cache (`[local-models] cache-dir`, default `models` in the
/// data directory), then the Ollama server of `[local-models] ollama`.
fn open_local_models(
    platform: &Platform,
) -> Result<Option<convergio_cap_local_model::LocalModels>> {
    use convergio_cap_local_model as lm;
    if platform.plugins.iter().all(|p| p.grants.models.is_empty()) {
        return Ok(None);
    }
    let settings = &platform.local_models;
    let mut backends: Vec<Arc<dyn lm::Backend>> = Vec::new();
    let store = lm::ModelStore::open(models_dir(platform))
        .map_err(|e| Error::Config(format!("cannot open the model cache: {e}")))?;
    backends.push(Arc::new(lm::LlamaBackend::new(
        Arc::new(store),
        lm::LlamaOptions {
            threads: settings.threads,
            context_length: settings.context_length,
            workers: settings.workers.max(1) as usize,
            idle_unload: Duration::from_secs(settings.idle_unload_secs.max(1)),
            max_loaded_bytes: settings
                .max_loaded_mib
                .map(|mib| mib.saturating_mul(1 << 20)),
        },
    )));
    if let Some(url) = &settings.ollama {
        let ollama = lm::OllamaBackend::new(url)
            .map_err(|e| Error::Config(format!("[local-models] ollama: {e}")))?;
        backends.push(Arc::new(ollama));
    }
    Ok(Some(lm::LocalModels::new(backends)))
}

/// The model cache of `platform`.
fn models_dir(platform: &Platform) -> PathBuf {
    platform.local_models.cache_dir.clone().unwrap_or_else(|| {
        platform
            .runtime
            .data_dir
            .clone()
            .unwrap_or_else(crate::paths::home)
            .join("models")
    })
}

/// What every plugin's outgoing HTTP shares: name overrides, trusted
/// certificates, the key vault.
fn open_http(
    platform: &Platform,
    vault: Option<convergio_cap_keys::Vault>,
) -> Result<Arc<HttpPlatform>> {
    let settings = &platform.runtime.http;
    HttpPlatform::new(settings.resolve.clone(), &settings.ca_files, vault)
        .map(|http| Arc::new(http.zero_cloud(platform.inference.zero_cloud)))
        .map_err(|e| Error::Config(e.to_string()))
}

/// The plugin's WASI context: only its granted directories and environment.
fn wasi_ctx(spec: &PluginSpec) -> Result<wasmtime_wasi::WasiCtx> {
    let mut builder = WasiCtxBuilder::new();
    for (name, value) in &spec.grants.env {
        builder.env(name, value);
    }
    for dir in &spec.grants.directories {
        let perms = if dir.writable {
            FsPerms::ReadWrite
        } else {
            FsPerms::ReadOnly
        };
        builder
            .preopened_dir(&dir.host, &dir.guest, perms)
            .map_err(|e| Error::Load {
                plugin: spec.id.clone(),
                message: format!(
                    "cannot open granted directory {}: {}",
                    dir.host.display(),
                    one_line(&e)
                ),
            })?;
    }
    Ok(builder.build())
}

/// A one-line reason for a failed call (the wasm backtrace goes to the debug log).
fn describe_failure(err: &wasmtime::Error, spec: &PluginSpec) -> String {
    tracing::debug!(plugin = %spec.id, "call failed: {err:?}");
    let limits = spec.limits;
    if let Some(exceeded) = err
        .chain()
        .find_map(|cause| cause.downcast_ref::<HostMemoryExceeded>())
    {
        return exceeded.to_string();
    }
    if err.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<wasmtime::component::ResourceTableError>(),
            Some(wasmtime::component::ResourceTableError::Full)
        )
    }) {
        return format!(
            "more than {MAX_HANDLES} resource handles open at once (the host's limit per instance); drop handles (fields, bodies, buckets, streams) sooner"
        );
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => format!("deadline of {} ms exceeded", limits.deadline_ms),
        Some(Trap::OutOfFuel) => format!("fuel limit of {} exhausted", limits.fuel.unwrap_or(0)),
        Some(Trap::StackOverflow) => "call stack exhausted (unbounded recursion?)".to_string(),
        Some(Trap::MemoryOutOfBounds) => "trapped: out-of-bounds memory access (a stack overflow in the plugin's shadow stack, e.g. unbounded recursion, or a memory bug)".to_string(),
        Some(Trap::UnreachableCodeReached) => {
            "trapped: unreachable code reached (the plugin panicked or aborted)".to_string()
        }
        Some(trap) => format!("trapped: {trap}"),
        None => {
            let text = one_line(err);
            if text.contains("forcing trap when growing memory") {
                format!("memory limit of {} MiB reached", limits.memory_bytes >> 20)
            } else if text.contains("forcing trap when growing table") {
                format!("table limit of {} elements reached", limits.table_elements)
            } else {
                text
            }
        }
    }
}

/// The error and its causes on one line.
pub(crate) fn one_line(err: &wasmtime::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string().replace('\n', " ");
        if text.contains("wasm backtrace:") {
            continue;
        }
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

fn denied(spec: &PluginSpec, import: &str, capability: Capability) -> String {
    format!(
        "plugin `{}` imports `{import}` but is not granted `{capability}`; to allow it, add `{}` under [plugin.grants] of the [[plugin]] with id = \"{}\" ({})",
        spec.id,
        capability.grant_example(),
        spec.id,
        spec.config_location
    )
}

fn compile(engine: &Engine, path: &Path) -> std::result::Result<Component, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Component::new(engine, &bytes).map_err(|e| {
        format!(
            "{} is not a valid component: {}",
            path.display(),
            one_line(&e)
        )
    })
}

fn list_exports(engine: &Engine, component: &Component) -> Vec<ExportFn> {
    let mut out = Vec::new();
    for (name, export) in component.component_type().exports(engine) {
        match export.ty {
            ComponentItem::ComponentFunc(ty) => {
                if let Some(index) = component.get_export_index(None, name) {
                    out.push(ExportFn {
                        interface: None,
                        name: name.to_string(),
                        signature: render_func(&ty),
                        ty,
                        index,
                    });
                }
            }
            ComponentItem::ComponentInstance(instance) => {
                let Some(instance_index) = component.get_export_index(None, name) else {
                    continue;
                };
                for (func_name, item) in instance.exports(engine) {
                    let ComponentItem::ComponentFunc(ty) = item.ty else {
                        continue;
                    };
                    if let Some(index) =
                        component.get_export_index(Some(&instance_index), func_name)
                    {
                        out.push(ExportFn {
                            interface: Some(name.to_string()),
                            name: func_name.to_string(),
                            signature: render_func(&ty),
                            ty,
                            index,
                        });
                    }
                }
            }
            _ => {}
        }
    }
    out
}

fn find_export<'a>(plugin: &str, loaded: &'a Loaded, function: &str) -> Result<&'a ExportFn> {
    let matches: Vec<&ExportFn> = loaded
        .exports
        .iter()
        .filter(|e| e.matches(function))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        _ => Err(Error::UnknownFunction {
            plugin: plugin.to_string(),
            function: if matches.is_empty() {
                function.to_string()
            } else {
                format!("{function}` (ambiguous; qualify it as `interface#function`)`")
            },
            available: loaded
                .exports
                .iter()
                .map(ExportFn::qualified)
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

fn info(slot: &Slot) -> PluginInfo {
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
            .map(|e| (e.qualified(), e.signature.clone()))
            .collect(),
        component: spec.component_path.clone(),
        loaded_at_ms: host::unix_ms(loaded.loaded_at),
        last_error: slot
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
    }
}

/// Callees before callers (by `plugins` grants); a cycle is an error.
fn load_order(plugins: &[PluginSpec]) -> Result<Vec<&PluginSpec>> {
    let mut order = Vec::new();
    let mut done = BTreeSet::new();
    let by_id: BTreeMap<&str, &PluginSpec> = plugins.iter().map(|p| (p.id.as_str(), p)).collect();
    fn visit<'a>(
        spec: &'a PluginSpec,
        by_id: &BTreeMap<&str, &'a PluginSpec>,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
        order: &mut Vec<&'a PluginSpec>,
    ) -> Result<()> {
        if done.contains(&spec.id) {
            return Ok(());
        }
        if path.contains(&spec.id) {
            path.push(spec.id.clone());
            return Err(Error::Config(format!(
                "plugins call each other in a cycle ({}); break it in their `plugins` grants",
                path.join(" -> ")
            )));
        }
        path.push(spec.id.clone());
        for callee in &spec.grants.plugins {
            if let Some(dep) = by_id.get(callee.as_str()) {
                visit(dep, by_id, done, path, order)?;
            }
        }
        path.pop();
        done.insert(spec.id.clone());
        order.push(spec);
        Ok(())
    }
    for spec in plugins {
        visit(spec, &by_id, &mut done, &mut Vec::new(), &mut order)?;
    }
    Ok(order)
}
