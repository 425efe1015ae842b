//! The typed functions of the interfaces the host calls on every node of
//! a run — the orchestrator's `step`, a tool's `invoke`, an agent's `run`
//! — and on every model call (a provider's), looked up and type-checked
//! once per instance and kept in its store.
//!
//! `Func::typed` walks the WIT types of the function on every call (record
//! fields and variant cases compared by name), and finding the export in
//! the instance is a lookup of its own; on a warm instance serving a
//! million steps both are paid once. An instance's functions belong to its
//! store, so keeping them in the store's data keeps them exactly as long
//! as they are valid: a reload makes new instances in new stores.

use wasmtime::Store;
use wasmtime::component::Instance;

use convergio_cap_inference::wit::provider;

use crate::bindings::node_calls::exports::convergio::platform::{agent, orchestrator, tool};
use crate::host_state::HostState;

/// The interfaces' functions one instance has served so far.
#[derive(Default)]
pub(crate) struct BoundExports {
    orchestrator: Option<orchestrator::Guest>,
    tool: Option<tool::Guest>,
    agent: Option<agent::Guest>,
    provider: Option<provider::Guest>,
}

/// An exported interface whose functions are kept per instance.
pub(crate) trait Bound: Clone + Send + Sync + 'static {
    /// Look the interface's functions up in `instance` and check their
    /// types against this host's WIT.
    fn load(store: &mut Store<HostState>, instance: &Instance) -> wasmtime::Result<Self>;

    /// Where a store keeps them.
    fn kept(bound: &mut BoundExports) -> &mut Option<Self>;

    /// The functions of `instance` in `store`: loaded at the first call,
    /// kept for the next.
    fn of(store: &mut Store<HostState>, instance: &Instance) -> wasmtime::Result<Self> {
        if let Some(funcs) = Self::kept(&mut store.data_mut().bound) {
            return Ok(funcs.clone());
        }
        let funcs = Self::load(store, instance)?;
        *Self::kept(&mut store.data_mut().bound) = Some(funcs.clone());
        Ok(funcs)
    }
}

macro_rules! bound {
    ($module:ident) => {
        impl Bound for $module::Guest {
            fn load(store: &mut Store<HostState>, instance: &Instance) -> wasmtime::Result<Self> {
                let pre = instance.instance_pre(&*store);
                $module::GuestIndices::new(&pre)?.load(&mut *store, instance)
            }

            fn kept(bound: &mut BoundExports) -> &mut Option<Self> {
                &mut bound.$module
            }
        }
    };
}

bound!(orchestrator);
bound!(tool);
bound!(agent);
bound!(provider);
