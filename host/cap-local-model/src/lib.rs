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
//!
//! A model from the store, run by llama.cpp behind [`LocalModels`], its text
//! printed as it comes (pull models into the store first, see
//! [`ModelStore::pull`]):
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use convergio_cap_inference::{Message, ResponseFormat, Role, Sampling};
//! # #[cfg(feature = "llama")]
//! use convergio_cap_local_model::{
//!     Event, GenerateRequest, LlamaBackend, LlamaOptions, LocalModels, ModelStore,
//! };
//!
//! # #[cfg(feature = "llama")]
//! # #[tokio::main]
//! # async fn main() -> convergio_cap_local_model::Result<()> {
//! let store = Arc::new(ModelStore::open("/var/lib/convergio/models")?);
//! let llama = LlamaBackend::new(store, LlamaOptions::default());
//! let models = LocalModels::new(vec![Arc::new(llama)]);
//! for model in models.list().await {
//!     println!("{} ({}, {} bytes)", model.name, model.quantization, model.size_bytes);
//! }
//!
//! let mut events = models
//!     .generate(GenerateRequest {
//!         model: "smollm2-135m-instruct.q4_1".into(),
//!         messages: vec![Message::text(Role::User, "Say hello.")],
//!         sampling: Sampling { max_tokens: Some(32), ..Sampling::default() },
//!         format: ResponseFormat::Text,
//!     })
//!     .await?;
//! while let Some(event) = events.recv().await {
//!     match event? {
//!         Event::Text(piece) => print!("{piece}"),
//!         Event::Done(generation) => {
//!             println!("\n({} tokens)", generation.usage.output_tokens);
//!         }
//!     }
//! }
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "llama"))]
//! # fn main() {}
//! ```
#![deny(missing_docs)]

mod backend;
mod error;
pub mod gguf;
pub mod grammar;
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
