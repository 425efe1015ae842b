//! `wit_bindgen::generate!` for a world whose imports all come from
//! [`crate::bindings`]; only the world's exports are generated here.

/// Generates the export bindings of one world.
///
/// `with` lists the imports beyond those of `plugin-base`, each mapped to its
/// module in [`crate::bindings`].
macro_rules! world_bindings {
    (
        world: $world:tt,
        export_macro_name: $macro_name:tt,
        module: $module:tt,
        with: { $($with:tt)* }
    ) => {
        wit_bindgen::generate!({
            path: "../wit",
            world: $world,
            runtime_path: "convergio_sdk::__private::wit_bindgen::rt",
            pub_export_macro: true,
            export_macro_name: $macro_name,
            default_bindings_module: $module,
            with: {
                "wasi:logging/logging@0.1.0-draft": convergio_sdk::bindings::wasi::logging::logging,
                "wasi:config/store@0.2.0-rc.1": convergio_sdk::bindings::wasi::config::store,
                "wasi:keyvalue/store@0.2.0-draft2": convergio_sdk::bindings::wasi::keyvalue::store,
                "wasi:keyvalue/atomics@0.2.0-draft2": convergio_sdk::bindings::wasi::keyvalue::atomics,
                "wasi:keyvalue/batch@0.2.0-draft2": convergio_sdk::bindings::wasi::keyvalue::batch,
                "convergio:platform/events@0.1.0": convergio_sdk::bindings::convergio::platform::events,
                "convergio:platform/run-context@0.1.0": convergio_sdk::bindings::convergio::platform::run_context,
                $($with)*
            },
        });
    };
}

pub(crate) use world_bindings;
