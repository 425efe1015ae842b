//! The model types of `convergio:platform/types` as generated for the host,
//! shared by every host crate that speaks them (the `local-model`
//! capability names them with `bindgen!`'s `with:`, the way
//! `wasmtime-wasi` shares `wasi:io`), their conversions to the router's
//! types, and the `provider` interface the host calls in provider plugins.

mod convert;

#[allow(missing_docs, missing_debug_implementations)]
pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        inline: "
            package convergio:inference-host;

            /// The inference interface plugins import, and the provider
            /// interface the host calls in provider plugins.
            world inference-host {
                import convergio:platform/inference@0.1.0;
                export convergio:platform/provider@0.1.0;
            }
        ",
        world: "convergio:inference-host/inference-host",
        imports: { default: async },
        exports: { default: async },
        with: {
            "convergio:platform/inference.completion-stream": crate::host::InferenceStream,
        },
    });
}

pub use bindings::convergio::platform::types;
pub use bindings::exports::convergio::platform::provider;
pub use convert::{FromWit, ToWit};
