//! The runtime's public face: start a platform, call plugins, reload them.
//! Loading, linking, sessions and export lookup each have their module.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use convergio_cap_inference::Router;
use tokio::sync::{Semaphore, broadcast};
use tracing::Instrument;
use wasmtime::Engine;
use wasmtime::component::Val;

use crate::capabilities::{CallContext, Event, Services, Shared};
use crate::config::Platform;
use crate::engine::{EpochTicker, build_engine};
use crate::host_state::HostState;
use crate::inner::Inner;
use crate::loading;
use crate::manifest::PluginManifest;
use crate::session::call_in_store;
use crate::slot::{Loaded, PluginInfo, Slot, info};
use crate::values::{json_to_params, val_to_json};
use crate::{Error, Result};

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
        let services = Services::open(platform)?;
        let shared = Shared::open(platform, &services)?;
        let runtime = Self {
            inner: Arc::new(Inner {
                engine,
                services,
                shared,
                slots: RwLock::new(BTreeMap::new()),
                accounts: Mutex::new(BTreeMap::new()),
                fuel,
                tick,
                _epoch: epoch,
                watch: Mutex::new(None),
                on_subscribe: Mutex::new(Vec::new()),
            }),
        };

        let _ = runtime
            .inner
            .shared
            .tools
            .set(Arc::downgrade(&runtime.inner));
        let mut problems = Vec::new();
        let mut failed = BTreeSet::new();
        for spec in loading::load_order(&platform.plugins)? {
            if let Some(dep) = spec.grants.plugins.iter().find(|d| failed.contains(*d)) {
                problems.push(format!(
                    "plugin `{}` ({}): not loaded because plugin `{dep}` it may call failed to load",
                    spec.id, spec.config_location
                ));
                failed.insert(spec.id.clone());
                continue;
            }
            match loading::load(&runtime.inner, Arc::new(spec.clone()), 1).await {
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
        let _ = runtime.inner.services.router.set(router);
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

    /// Receive every event plugins publish from now on (and graph runs'
    /// events, which the host forwards to the bus while it has a
    /// subscriber).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        let receiver = self.inner.shared.events.subscribe();
        for hook in self
            .inner
            .on_subscribe
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            hook();
        }
        receiver
    }

    /// Whether anyone receives the events bus now.
    pub fn has_subscribers(&self) -> bool {
        self.inner.shared.events.receiver_count() > 0
    }

    /// Call `hook` in every later [`Runtime::subscribe`], before it returns.
    pub(crate) fn on_subscribe(&self, hook: Box<dyn Fn() + Send + Sync>) {
        self.inner
            .on_subscribe
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(hook);
    }

    /// Publish `event` on the host's events bus, as the host (runs, the
    /// plugin watcher): no grant applies.
    pub fn emit(&self, event: Event) {
        // No subscriber is not an error: nobody is listening.
        let _ = self.inner.shared.events.send(event);
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
        self.call_json(plugin, function, args, None).await
    }

    /// [`Runtime::invoke_json`] on behalf of plugin `caller`: allowed only
    /// when `caller`'s `plugins` grant names `callee`. This is how a run
    /// driver dispatches a graph's node calls for the orchestrator plugin:
    /// to any number of plugins by id, each in a store of its own under its
    /// own grants and limits (on a warm instance when it is opted in), where
    /// an import would link the caller to exactly one exporter.
    pub async fn invoke_as(
        &self,
        caller: &str,
        callee: &str,
        function: &str,
        args: &serde_json::Value,
    ) -> Result<serde_json::Value> {
        self.invoke_in_run(caller, callee, function, args, None)
            .await
    }

    /// [`Runtime::invoke_as`] for a node call of a graph run: the callee's
    /// store serves `context` through `convergio:platform/run-context`
    /// (run, node, call, attempt and idempotency key) for the length of the
    /// call.
    pub async fn invoke_in_run(
        &self,
        caller: &str,
        callee: &str,
        function: &str,
        args: &serde_json::Value,
        context: Option<Arc<CallContext>>,
    ) -> Result<serde_json::Value> {
        let span = tracing::debug_span!("convergio.plugins.call", caller, callee, function);
        async {
            self.check_call_grant(caller, callee)?;
            self.call_json(callee, function, args, context).await
        }
        .instrument(span)
        .await
    }

    /// Whether `caller`'s `plugins` grant names `callee`.
    fn check_call_grant(&self, caller: &str, callee: &str) -> Result<()> {
        let caller_slot = self.slot(caller)?;
        let loaded = caller_slot.current.load();
        if loaded
            .spec
            .grants
            .plugins
            .iter()
            .any(|granted| granted == callee)
        {
            return Ok(());
        }
        Err(Error::CallDenied {
            caller: caller.to_owned(),
            callee: callee.to_owned(),
            location: loaded.spec.config_location.clone(),
        })
    }

    async fn call_json(
        &self,
        plugin: &str,
        function: &str,
        args: &serde_json::Value,
        context: Option<Arc<CallContext>>,
    ) -> Result<serde_json::Value> {
        let slot = self.slot(plugin)?;
        let loaded = slot.current.load_full();
        let export = loaded.exports.find(plugin, function)?;
        let params = json_to_params(&export.ty, args).map_err(|message| Error::BadArguments {
            function: export.qualified().to_owned(),
            message,
        })?;
        let mut results = vec![Val::Bool(false); export.ty.results().len()];
        call_in_store(
            &self.inner,
            &slot,
            &loaded,
            export,
            &params,
            &mut results,
            context,
        )
        .await?;
        Ok(match results.as_slice() {
            [] => serde_json::Value::Null,
            [one] => val_to_json(one),
            many => serde_json::Value::Array(many.iter().map(val_to_json).collect()),
        })
    }

    /// Serve `runs` to the plugins granted `runs = true`
    /// (`convergio:platform/runs`) while it exists; [`crate::graphs::runs`]
    /// does it for the driver it makes.
    pub fn serve_runs(&self, runs: &convergio_cap_runs::Runs) {
        *self
            .inner
            .shared
            .runs
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = runs.downgrade();
    }

    /// The kind of plugin `id`, if it is loaded.
    pub fn plugin_kind(&self, id: &str) -> Option<crate::PluginKind> {
        self.slot(id)
            .ok()
            .map(|slot| slot.current.load().spec.manifest.kind)
    }

    /// How many calls `plugin` serves at once (its `max-instances`).
    pub fn max_instances(&self, plugin: &str) -> Result<u32> {
        Ok(self.slot(plugin)?.current.load().spec.limits.max_instances)
    }

    /// Call `function` of `plugin` with component values.
    pub async fn invoke(&self, plugin: &str, function: &str, params: &[Val]) -> Result<Vec<Val>> {
        let slot = self.slot(plugin)?;
        let loaded = slot.current.load_full();
        let export = loaded.exports.find(plugin, function)?;
        let mut results = vec![Val::Bool(false); export.ty.results().len()];
        call_in_store(
            &self.inner,
            &slot,
            &loaded,
            export,
            params,
            &mut results,
            None,
        )
        .await?;
        Ok(results)
    }

    /// Call `function` of the interface `B` that `plugin` exports, through
    /// `f`, with typed parameters and results: lowered into and lifted out
    /// of the guest directly, with no [`Val`]s between, and the interface's
    /// functions looked up and type-checked once per instance
    /// ([`crate::bound`]). The run driver's steps and node calls, on behalf
    /// of `caller` (checked against its `plugins` grant) when there is one.
    pub(crate) async fn call_bound<B, T>(
        &self,
        caller: Option<&str>,
        plugin: &str,
        function: &str,
        context: Option<Arc<CallContext>>,
        f: impl AsyncFnOnce(&mut wasmtime::Store<HostState>, B) -> wasmtime::Result<T>,
    ) -> Result<T>
    where
        B: crate::bound::Bound,
    {
        let span =
            tracing::debug_span!("convergio.plugins.call", caller, callee = plugin, function);
        async {
            if let Some(caller) = caller {
                self.check_call_grant(caller, plugin)?;
            }
            let slot = self.slot(plugin)?;
            let loaded = slot.current.load_full();
            let export = loaded.exports.find(plugin, function)?;
            crate::session::with_instance(
                &self.inner,
                &slot,
                &loaded,
                export.qualified(),
                context,
                async |store, instance| {
                    let funcs = B::of(store, instance).map_err(|e| {
                        e.context(format!(
                            "`{function}` does not have the type this host calls it with: build \
                             the plugin against this release's WIT"
                        ))
                    })?;
                    f(store, funcs).await
                },
            )
            .await
        }
        .instrument(span)
        .await
    }

    /// The inference router over the provider plugins; every plugin granted
    /// `inference` calls through it.
    pub fn router(&self) -> Option<Arc<Router>> {
        self.inner.services.router.get().cloned()
    }

    /// Build the router from `[inference]` and the loaded provider plugins,
    /// with its budgets and metering in the usage ledger. A chain, fallback
    /// or price naming a model no provider lists, or a budget that names no
    /// key, plugin or agent it could apply to, is an error.
    async fn start_router(&self, platform: &Platform) -> Result<Arc<Router>> {
        let providers = crate::provider::discover(&self.inner).await?;
        let ledger = crate::capabilities::open_ledger(platform)?;
        let sink = Arc::new(crate::provider::MeteringSink {
            vault: self.inner.services.vault.clone(),
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
        crate::provider::discover(&self.inner).await
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
        let new = loading::load(&self.inner, Arc::new(spec), old.generation + 1).await?;
        let relied = slot
            .relied_upon
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for (name, signature) in &relied {
            match new.exports.iter().find(|e| e.qualified() == name) {
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
        self.inner.read_slots()
    }

    fn slot(&self, id: &str) -> Result<Arc<Slot>> {
        self.inner.slot(id)
    }

    /// The platform's key vault, open when some plugin is granted keys; for
    /// upkeep such as [`convergio_cap_keys::Vault::spawn_maintenance`].
    pub fn vault(&self) -> Option<&convergio_cap_keys::Vault> {
        self.inner.services.vault.as_ref()
    }
}
