//! `convergio:platform/run-context`: which graph-run node call a store is
//! serving. Every plugin may import it (it grants nothing); the run driver
//! sets it for the length of each node call, so a tool can make a side
//! effect once per idempotency key.

use std::sync::Arc;

use wasmtime::component::{HasData, Linker};

use super::{CapabilityHost, HostCapability, Services};
use crate::bindings::run_context;
use crate::config::{Platform, PluginSpec};
use crate::{Capability, Result};

/// A node call, as a plugin sees it through `run-context`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallContext {
    /// The run.
    pub run_id: String,
    /// The graph node.
    pub node_id: String,
    /// The call (`node`, `node@2`, `node[3]`).
    pub call_id: String,
    /// From 1.
    pub attempt: u32,
    /// The same for a call dispatched again after a crash.
    pub idempotency_key: String,
}

pub(crate) struct RunContext;

impl HostCapability for RunContext {
    const CAPABILITY: Option<Capability> = None;
    type Shared = ();
    type Plugin = ();
    /// The call the store serves now, if any.
    type Store = Option<Arc<CallContext>>;

    fn provides(interface: &str) -> bool {
        interface == "convergio:platform/run-context"
    }

    fn open(_: &Platform, _: &Services) -> Result<()> {
        Ok(())
    }

    fn prepare(_: &(), _: &Services, _: &Arc<PluginSpec>) -> std::result::Result<(), Vec<String>> {
        Ok(())
    }

    fn store(_: &()) -> Option<Arc<CallContext>> {
        None
    }

    fn add_to_linker<T: CapabilityHost>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        run_context::add_to_linker::<T, RunContextView<'static>>(linker, view::<T>)
    }
}

/// A store's view for `run-context`.
pub(crate) struct RunContextView<'a> {
    current: &'a Option<Arc<CallContext>>,
}

impl HasData for RunContextView<'static> {
    type Data<'a> = RunContextView<'a>;
}

fn view<T: CapabilityHost>(host: &mut T) -> RunContextView<'_> {
    RunContextView {
        current: &host.parts().caps.run_context,
    }
}

impl run_context::Host for RunContextView<'_> {
    fn current(&mut self) -> Option<run_context::CallContext> {
        self.current.as_deref().map(|c| run_context::CallContext {
            run_id: c.run_id.clone(),
            node_id: c.node_id.clone(),
            call_id: c.call_id.clone(),
            attempt: c.attempt,
            idempotency_key: c.idempotency_key.clone(),
        })
    }
}
