//! The WIT bindings of the capabilities the runtime implements itself
//! (`wasi:logging`, `wasi:config`, `convergio:platform/events`), and the
//! types of the orchestrator interface it calls. The other capabilities'
//! bindings live in their modules or crates.

wasmtime::component::bindgen!({
    path: "../../wit",
    inline: "
        package convergio:host;

        world runtime-capabilities {
            import wasi:logging/logging@0.1.0-draft;
            import wasi:config/store@0.2.0-rc.1;
            import convergio:platform/events@0.1.0;
        }
    ",
    world: "convergio:host/runtime-capabilities",
});

pub(crate) use convergio::platform::events;
pub(crate) use wasi::config::store as config_store;
pub(crate) use wasi::logging::logging;

/// The types of the interfaces the run driver calls — the orchestrator's
/// `step` (requests, decisions), node calls to tools and agents — lowered
/// and lifted directly, with no `Val`s between.
pub(crate) mod node_calls {
    wasmtime::component::bindgen!({
        path: "../../wit",
        inline: "
            package convergio:host-orchestrator;

            world node-calls {
                export convergio:platform/orchestrator@0.1.0;
                export convergio:platform/tool@0.1.0;
                export convergio:platform/agent@0.1.0;
            }
        ",
        world: "convergio:host-orchestrator/node-calls",
        exports: { default: async },
    });

    pub(crate) use exports::convergio::platform::agent::{
        AgentError, Guest as AgentFuncs, StateEntry, Task,
    };
    pub(crate) use exports::convergio::platform::orchestrator::*;
    pub(crate) use exports::convergio::platform::tool::{Guest as ToolFuncs, ToolError};
}
