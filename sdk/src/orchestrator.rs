//! The orchestrator component: the `convergio:platform/orchestrator-plugin` world.
//!
//! Implement [`Guest`] and register it with
//! [`export_orchestrator!`](crate::export_orchestrator). An orchestrator is a
//! step function: it decides which node calls a run makes next and the host's
//! run driver makes them (`components/orchestrator` is the platform's own,
//! over the `convergio-graph` crate's engine).

#[doc(hidden)]
#[allow(missing_docs, unsafe_code, unused_qualifications, clippy::all)]
pub mod bindings {
    crate::world::world_bindings!(
        world: "convergio:platform/orchestrator-plugin@0.1.0",
        export_macro_name: "export",
        module: "convergio_sdk::orchestrator::bindings",
        with: {}
    );
}

pub use bindings::exports::convergio::platform::orchestrator::*;
