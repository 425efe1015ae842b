//! Bindings of every interface a plugin may import, generated once from the
//! WIT in `wit/` and shared by all worlds, so that helpers such as [`crate::log`]
//! work in any component.
//!
//! `wit-component` keeps only the imports a component actually calls, so a
//! binding that is never called adds nothing to a component. Calling an
//! interface that your plugin's world does not import makes the host refuse
//! the component when it loads.

#![allow(missing_docs, unsafe_code, unused_qualifications, clippy::all)]

wit_bindgen::generate!({
    inline: "
        package convergio:sdk;

        world imports {
            include convergio:platform/plugin-base@0.1.0;
            import wasi:http/outgoing-handler@0.2.12;
            import convergio:platform/keys@0.1.0;
            import convergio:platform/inference@0.1.0;
            import convergio:platform/local-model@0.1.0;
            import convergio:platform/tool@0.1.0;
            import convergio:platform/agent@0.1.0;
            import convergio:platform/runs@0.1.0;
            import convergio:platform/tools@0.1.0;
        }
    ",
    path: "../wit",
    world: "convergio:sdk/imports",
    generate_all,
    runtime_path: "convergio_sdk::__private::wit_bindgen::rt",
});
