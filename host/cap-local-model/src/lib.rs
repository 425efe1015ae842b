//! Convergio's local inference, native for speed: models that run on this
//! machine, behind one [`Backend`] trait.
//!
//! - [`LocalModels`] is what the host serves the `local-model` WIT interface
//!   from: it asks every backend for its models and routes each call to the
//!   backend that has the model.
//! - `LlamaBackend` (feature `llama`, on by default) runs GGUF models from
//!   the [`ModelStore`] in-process with llama.cpp.
//! - `OllamaBackend` talks to an Ollama server.
//! - [`ModelStore`] is the model cache: GGUF files with their sha256, pulled
//!   from a path, a URL or Hugging Face, verified before they are used.
//!
//! Generation is streamed: [`Backend::generate`] returns a channel of
//! [`Event`]s (text as it is produced, then the finished [`Generation`]);
//! dropping the receiver stops the generation.
#![deny(missing_docs)]

mod backend;
mod error;
pub mod gguf;
mod host;
#[cfg(feature = "llama")]
mod llama;
#[cfg(feature = "ollama")]
mod ollama;
mod store;

pub use backend::{
    Backend, BoxFuture, Event, Events, GenerateRequest, Generation, LocalModelInfo, LocalModels,
    collect,
};
pub use error::{Error, Result};
pub use host::{LocalModelCtx, LocalModelView, LocalStream, ModelGrants, add_to_linker};
#[cfg(feature = "llama")]
pub use llama::{LlamaBackend, LlamaOptions, llama_backend};
#[cfg(feature = "ollama")]
pub use ollama::{OllamaBackend, PullProgress as OllamaPullProgress};
pub use store::{ModelStore, PullProgress, StoredModel};
