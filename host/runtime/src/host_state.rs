//! The state of one store: one call (or one warm instance) of one plugin.

use std::sync::Arc;
use std::time::Instant;

use wasmtime::StoreLimits;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtxView, WasiView};

use crate::capabilities::{CapabilityHost, PluginCaps, StoreCaps, StoreParts};

/// State of one store: the plugin's capability contexts (shared by its
/// stores), this store's resource table, limits and per-store capability
/// state, and the current call's deadline.
pub struct HostState {
    pub(crate) plugin: Arc<PluginCaps>,
    /// When the current call's deadline passes; host work that could run
    /// long (storage batch reads) stops there.
    pub(crate) deadline_at: Instant,
    pub(crate) table: ResourceTable,
    pub(crate) limits: StoreLimits,
    pub(crate) caps: StoreCaps,
    /// The node-call interfaces' functions, once this instance served one.
    pub(crate) bound: crate::bound::BoundExports,
}

impl std::fmt::Debug for HostState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostState")
            .field("plugin", &self.plugin.spec.id)
            .finish_non_exhaustive()
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.caps.filesystem,
            table: &mut self.table,
        }
    }
}

impl wasmtime_wasi_http::WasiHttpView for HostState {
    fn http(&mut self) -> wasmtime_wasi_http::WasiHttpCtxView<'_> {
        self.caps.http.view(&mut self.table)
    }
}

impl CapabilityHost for HostState {
    fn parts(&mut self) -> StoreParts<'_> {
        StoreParts {
            plugin: &self.plugin,
            caps: &mut self.caps,
            table: &mut self.table,
            deadline_at: self.deadline_at,
        }
    }
}
