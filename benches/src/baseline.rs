//! The raw-wasmtime baseline: the same components on the same engine, linked
//! and called with nothing but wasmtime, `wasmtime-wasi` and a minimal
//! `wasi:config/store`. No grants, limits, semaphore, deadline timer, tracing
//! spans or export lookup by name: what is left is the floor our layers sit on.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::types::ComponentItem;
use wasmtime::component::{
    Component, ComponentExportIndex, Func, HasSelf, InstancePre, Linker, ResourceTable, Val,
};
use wasmtime::{Engine, Result, Store, format_err};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::{AGENT_INTERFACE, CONFIG, Components, TOOL_INTERFACE};

mod generated {
    wasmtime::component::bindgen!({
        path: "../wit",
        inline: "
            package convergio:benches;
            world raw-host {
                import wasi:config/store@0.2.0-rc.1;
            }
        ",
    });
}

use generated::wasi::config::store;

/// Epoch ticks a baseline store may run. The engine has epoch interruption
/// on (it is Convergio's engine), so a store needs a deadline; this one is
/// hours away at Convergio's 10 ms tick and cannot overflow.
const EPOCH_DEADLINE: u64 = u32::MAX as u64;

/// State of one baseline store: WASI (empty, as Convergio's) and the config values.
pub struct RawState {
    wasi: WasiCtx,
    table: ResourceTable,
    config: Arc<BTreeMap<String, String>>,
}

impl std::fmt::Debug for RawState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawState").finish_non_exhaustive()
    }
}

impl WasiView for RawState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// A map lookup, as Convergio's implementation does, without its span.
impl store::Host for RawState {
    fn get(&mut self, key: String) -> Result<Option<String>, store::Error> {
        Ok(self.config.get(&key).cloned())
    }

    fn get_all(&mut self) -> Result<Vec<(String, String)>, store::Error> {
        Ok(self
            .config
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

/// One exported function of a linked component: everything needed to run it
/// in a fresh store.
#[derive(Clone)]
pub struct Target {
    engine: Engine,
    pre: InstancePre<RawState>,
    index: ComponentExportIndex,
    config: Arc<BTreeMap<String, String>>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target").finish_non_exhaustive()
    }
}

impl Target {
    fn new(
        pre: &InstancePre<RawState>,
        interface: &str,
        function: &str,
        config: &Arc<BTreeMap<String, String>>,
    ) -> Result<Self> {
        let component = pre.component();
        let instance = component
            .get_export_index(None, interface)
            .ok_or_else(|| format_err!("the component does not export `{interface}`"))?;
        let index = component
            .get_export_index(Some(&instance), function)
            .ok_or_else(|| format_err!("the component does not export `{interface}#{function}`"))?;
        Ok(Self {
            engine: component.engine().clone(),
            pre: pre.clone(),
            index,
            config: config.clone(),
        })
    }

    /// A fresh store as [`call`](Self::call) makes it: empty WASI context,
    /// the config values, an epoch deadline.
    pub fn store(&self) -> Store<RawState> {
        let state = RawState {
            wasi: WasiCtxBuilder::new().build(),
            table: ResourceTable::new(),
            config: self.config.clone(),
        };
        let mut store = Store::new(&self.engine, state);
        store.set_epoch_deadline(EPOCH_DEADLINE);
        store
    }

    /// What Convergio does per call, minus its layers: a fresh store,
    /// instantiate from the `InstancePre`, look up the function, call it.
    pub async fn call(&self, params: &[Val], results: &mut [Val]) -> Result<()> {
        let mut store = self.store();
        let instance = self.pre.instantiate_async(&mut store).await?;
        let func = instance
            .get_func(&mut store, self.index)
            .ok_or_else(|| format_err!("the export is not a function"))?;
        func.call_async(&mut store, params, results).await
    }

    /// Instantiate once, for calls into a live instance.
    pub async fn instantiate(&self) -> Result<Warm> {
        let mut store = self.store();
        let instance = self.pre.instantiate_async(&mut store).await?;
        let func = instance
            .get_func(&mut store, self.index)
            .ok_or_else(|| format_err!("the export is not a function"))?;
        Ok(Warm { store, func })
    }
}

/// A live instance and one of its functions.
#[derive(Debug)]
pub struct Warm {
    store: Store<RawState>,
    func: Func,
}

impl Warm {
    /// Call the function again in the same store: one host→guest hop.
    pub async fn call(&mut self, params: &[Val], results: &mut [Val]) -> Result<()> {
        self.func.call_async(&mut self.store, params, results).await
    }
}

/// The benchmark components linked by hand on a given engine.
#[derive(Debug)]
pub struct Raw {
    /// `bench_tool`'s `tool.invoke`.
    pub bench_invoke: Target,
    /// `plain_tool`'s `tool.invoke`.
    pub tool_invoke: Target,
    /// `caller_agent`'s `agent.run`; its `tool` import runs `plain_tool`.
    pub agent_run: Target,
    /// `caller_agent`'s `agent.describe` (does not call the tool).
    pub agent_describe: Target,
}

impl Raw {
    /// Compile and link the components on `engine` (pass Convergio's engine
    /// for an identical configuration: pooling, epochs, same code).
    pub fn new(engine: &Engine, components: &Components) -> Result<Self> {
        let (key, value) = CONFIG;
        let config = Arc::new(BTreeMap::from([(key.to_owned(), value.to_owned())]));

        let bench = Component::from_file(engine, &components.bench)?;
        let bench = base_linker(engine)?.instantiate_pre(&bench)?;
        let tool = Component::from_file(engine, &components.tool)?;
        let tool = base_linker(engine)?.instantiate_pre(&tool)?;

        let agent = Component::from_file(engine, &components.agent)?;
        let mut linker = base_linker(engine)?;
        link_tool_import(&mut linker, &agent, &tool, &config)?;
        let agent = linker.instantiate_pre(&agent)?;

        Ok(Self {
            bench_invoke: Target::new(&bench, TOOL_INTERFACE, "invoke", &config)?,
            tool_invoke: Target::new(&tool, TOOL_INTERFACE, "invoke", &config)?,
            agent_run: Target::new(&agent, AGENT_INTERFACE, "run", &config)?,
            agent_describe: Target::new(&agent, AGENT_INTERFACE, "describe", &config)?,
        })
    }
}

/// WASI p2 and `wasi:config/store`.
fn base_linker(engine: &Engine) -> Result<Linker<RawState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    store::add_to_linker::<_, HasSelf<RawState>>(&mut linker, |s| s)?;
    Ok(linker)
}

/// Define each function of the caller's `tool` import as a forwarder that
/// runs the callee's export in a fresh store, as Convergio's runtime linking
/// does (`func_new_async`), without its grant, signature and limit checks.
fn link_tool_import(
    linker: &mut Linker<RawState>,
    caller: &Component,
    callee: &InstancePre<RawState>,
    config: &Arc<BTreeMap<String, String>>,
) -> Result<()> {
    let engine = caller.engine();
    let ty = caller.component_type();
    let import = ty
        .imports(engine)
        .find_map(|(name, item)| match item.ty {
            ComponentItem::ComponentInstance(instance) if name == TOOL_INTERFACE => Some(instance),
            _ => None,
        })
        .ok_or_else(|| format_err!("the caller does not import `{TOOL_INTERFACE}`"))?;
    let mut instance = linker.instance(TOOL_INTERFACE)?;
    for (name, item) in import.exports(engine) {
        if !matches!(item.ty, ComponentItem::ComponentFunc(_)) {
            continue;
        }
        let target = Arc::new(Target::new(callee, TOOL_INTERFACE, name, config)?);
        instance.func_new_async(name, move |_store, _ty, params, results| {
            let target = Arc::clone(&target);
            Box::new(async move { target.call(params, results).await })
        })?;
    }
    Ok(())
}
