//! The WIT bindings of the capabilities the runtime implements itself
//! (`wasi:logging`, `wasi:config`, `convergio:platform/events`). The other
//! capabilities' bindings live in their modules or crates.

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
