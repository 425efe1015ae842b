//! The Convergio host runtime.
//!
//! One wasmtime [`Engine`](wasmtime::Engine) (pooling allocator, epoch
//! interruption, compiled-component cache) runs every plugin. Each plugin is
//! compiled once to an `InstancePre`; every call gets a fresh `Store` with the
//! plugin's limits, so instances keep no state between calls. A plugin
//! imports only what `platform.toml` grants it; imports of another plugin's
//! interface are linked at run time through the host, each side in its own
//! store. Plugins are swapped atomically on reload.
//!
//! What the host allocates on a plugin's behalf counts against the plugin's
//! `host-memory-mib` only in a process whose global allocator is
//! [`HostAllocator`]; install it in the binary that embeds the runtime:
//!
//! ```
//! #[global_allocator]
//! static ALLOCATOR: convergio_runtime::HostAllocator = convergio_runtime::HostAllocator;
//! ```
//!
//! ```no_run
//! # async fn demo() -> Result<(), convergio_runtime::Error> {
//! use convergio_runtime::{Platform, Runtime};
//!
//! let platform = Platform::load("platform.toml".as_ref())?;
//! let runtime = Runtime::new(&platform).await?;
//! let out = runtime
//!     .invoke_json("hello-tool", "tool.invoke", &serde_json::json!(["greet", "{\"name\":\"Ada\"}"]))
//!     .await?;
//! println!("{out}");
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod bindings;
mod bound;
mod capabilities;
mod capability;
pub mod config;
mod engine;
mod error;
mod exports;
pub mod graphs;
mod host_memory;
mod host_state;
mod inner;
mod linking;
mod loading;
pub mod manifest;
pub mod paths;
mod provider;
mod runtime;
pub mod schema;
mod session;
mod slot;
mod time;
mod toml_file;
pub mod values;
mod watch;

pub use capabilities::{CallContext, Event};
pub use capabilities::{ImportClass, classify_import};
pub use capability::Capability;
pub use config::{
    Grants, InferenceSettings, KeySettings, Limits, LocalModelSettings, Platform, PlatformConfig,
    PluginSpec,
};
pub use convergio_host_memory::HostAllocator;
pub use error::{Error, Result};
pub use exports::ExportFn;
pub use host_memory::{HostMemoryExceeded, MAX_HANDLES};
pub use host_state::HostState;
pub use manifest::{PluginKind, PluginManifest};
pub use runtime::Runtime;
pub use slot::PluginInfo;
pub use watch::WatchHandle;

/// The inference router's types, as [`Runtime::providers`] returns them.
pub use convergio_cap_inference as inference;

/// Local models: the model cache and the backends the `local-model`
/// interface is served from.
pub use convergio_cap_local_model as local_models;
