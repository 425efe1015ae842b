//! The guest SDK for Convergio plugins: bindings of the `convergio:platform`
//! WIT worlds, one export macro per world, and typed helpers.
//!
//! A plugin is a `cdylib` crate that depends on this crate (and on `serde`
//! for its own argument types) and builds with
//! `cargo build --target wasm32-wasip2`; `cargo component build` works too.
//! A whole tool component:
//!
//! ```no_run
//! use convergio_sdk::serde_json::json;
//! use convergio_sdk::tool::{self, Guest, ToolError, ToolInfo};
//!
//! #[derive(serde::Deserialize)]
//! struct Args { text: String }
//!
//! struct Shout;
//!
//! impl Guest for Shout {
//!     fn describe() -> Vec<ToolInfo> {
//!         let schema = json!({"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]});
//!         vec![ToolInfo::new("shout", "Upper-cases a text", &schema)]
//!     }
//!
//!     fn invoke(name: String, arguments: String) -> Result<String, ToolError> {
//!         if name != "shout" { return Err(ToolError::UnknownTool(name)); }
//!         let args: Args = tool::parse_args(&arguments)?;
//!         tool::to_json(&json!({ "text": args.text.to_uppercase() }))
//!     }
//! }
//!
//! convergio_sdk::export_tool!(Shout);
//! ```
//!
//! | module | world | export macro |
//! | --- | --- | --- |
//! | [`tool`] | `convergio:platform/tool-plugin` | [`export_tool!`] |
//! | [`provider`] | `convergio:platform/provider-plugin` | [`export_provider!`] |
//! | [`agent`] | `convergio:platform/agent-plugin` | [`export_agent!`] |
//! | [`vertical`] | `convergio:platform/vertical` | [`export_vertical!`] |
//! | [`orchestrator`] | `convergio:platform/orchestrator-plugin` | [`export_orchestrator!`] |
//!
//! Every world includes `plugin-base`: [`log`] (`wasi:logging`), [`config`]
//! (`wasi:config`), [`keyvalue`] (`wasi:keyvalue`) and [`events`]. A
//! component imports only the interfaces it calls; `plugin.toml` must
//! request the matching capabilities (`logging`, `config`, …) or the host
//! refuses to load it.

#![deny(missing_docs)]

// Lets the generated bindings name this crate `convergio_sdk` both here and
// inside the export macros expanded in plugin crates.
extern crate self as convergio_sdk;

#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;
}

pub mod bindings;
mod world;

pub mod agent;
#[cfg(any(test, all(target_family = "wasm", not(target_feature = "atomics"))))]
pub mod alloc;
pub mod client;
pub mod config;
pub mod events;
pub mod log;
mod models;
pub mod orchestrator;
pub mod provider;
pub mod run;
pub mod sse;
pub mod tool;
pub mod vertical;

pub use bindings::convergio::platform::{inference, keys, local_model, runs, tools, types};
pub use bindings::wasi::{http, keyvalue};
pub use serde_json;

/// What most plugins use, whatever their world.
pub mod prelude {
    pub use serde_json::json;

    pub use crate::{config, events, log};
}

/// Exports a type implementing [`tool::Guest`] as the component's
/// `convergio:platform/tool` interface.
/// Call it once, at the top level of the crate: `convergio_sdk::export_tool!(MyTool);`.
#[macro_export]
macro_rules! export_tool {
    ($ty:ident) => {
        #[allow(unsafe_code)]
        const _: () = {
    $crate::tool::bindings::export!($ty with_types_in $crate::tool::bindings);
        };
    };
}

/// Exports a type implementing [`provider::Guest`] as the component's
/// `convergio:platform/provider` interface.
/// Call it once, at the top level of the crate: `convergio_sdk::export_provider!(MyProvider);`.
#[macro_export]
macro_rules! export_provider {
    ($ty:ident) => {
        #[allow(unsafe_code)]
        const _: () = {
    $crate::provider::bindings::export!($ty with_types_in $crate::provider::bindings);
        };
    };
}

/// Exports a type implementing [`agent::Guest`] as the component's
/// `convergio:platform/agent` interface.
/// Call it once, at the top level of the crate: `convergio_sdk::export_agent!(MyAgent);`.
#[macro_export]
macro_rules! export_agent {
    ($ty:ident) => {
        #[allow(unsafe_code)]
        const _: () = {
    $crate::agent::bindings::export!($ty with_types_in $crate::agent::bindings);
        };
    };
}

/// Exports a type implementing [`vertical::Guest`] as a vertical's
/// `convergio:platform/agent` interface; the same as [`export_agent!`].
#[macro_export]
macro_rules! export_vertical {
    ($ty:ident) => {
        $crate::export_agent!($ty);
    };
}

/// Exports a type implementing [`orchestrator::Guest`] as the component's
/// `convergio:platform/orchestrator` interface.
/// Call it once, at the top level of the crate: `convergio_sdk::export_orchestrator!(MyOrchestrator);`.
#[macro_export]
macro_rules! export_orchestrator {
    ($ty:ident) => {
        #[allow(unsafe_code)]
        const _: () = {
            $crate::orchestrator::bindings::export!(
                $ty with_types_in $crate::orchestrator::bindings
            );
        };
    };
}
