//! The orchestrator component: the `convergio:platform/orchestrator-plugin` world.
//!
//! Implement [`Guest`] and register it with
//! [`export_orchestrator!`](crate::export_orchestrator). The orchestrator runs
//! agents through [`agents`] and tools through [`tools`], both linked by the host.

#[doc(hidden)]
#[allow(missing_docs, unsafe_code, unused_qualifications, clippy::all)]
pub mod bindings {
    crate::world::world_bindings!(
        world: "convergio:platform/orchestrator-plugin@0.1.0",
        export_macro_name: "export",
        module: "convergio_sdk::orchestrator::bindings",
        with: {
            "convergio:platform/agent@0.1.0": convergio_sdk::bindings::convergio::platform::agent,
            "convergio:platform/tool@0.1.0": convergio_sdk::bindings::convergio::platform::tool,
        }
    );
}

/// The agents the orchestrator runs (`convergio:platform/agent`, imported).
pub use crate::bindings::convergio::platform::agent as agents;
/// The tools the orchestrator calls (`convergio:platform/tool`, imported).
pub use crate::bindings::convergio::platform::tool as tools;
pub use bindings::exports::convergio::platform::orchestrator::{
    Edge, Graph, Guest, Node, NodeKind, NodeStatus, OrchestratorError, RunState, RunStatus,
};
