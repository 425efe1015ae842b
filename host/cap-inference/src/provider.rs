//! What the router calls: one provider (an adapter component, or a native
//! local backend), behind one trait.

use std::future::Future;
use std::pin::Pin;

use crate::{Completion, Delta, Embeddings, ModelError, ModelInfo, ProviderRequest};

/// A boxed future, as trait objects need.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A completion being streamed.
pub trait DeltaStream: Send {
    /// The next delta; `None` once the stream is finished.
    fn next(&mut self) -> BoxFuture<'_, Option<Result<Delta, ModelError>>>;
}

/// One provider of models.
pub trait Provider: Send + Sync {
    /// Short id used in `provider/model` names, e.g. `openai`.
    fn id(&self) -> &str;
    /// The key it sends upstream (`provider/name`), for metering and key
    /// budgets; `None` for providers without one (local models).
    fn key(&self) -> Option<&str>;
    /// The models it offers, with prices and features.
    fn models(&self) -> BoxFuture<'_, Result<Vec<ModelInfo>, ModelError>>;
    /// Complete a chat.
    fn complete(&self, request: ProviderRequest) -> BoxFuture<'_, Result<Completion, ModelError>>;
    /// Complete a chat, streaming.
    fn stream(
        &self,
        request: ProviderRequest,
    ) -> BoxFuture<'_, Result<Box<dyn DeltaStream>, ModelError>>;
    /// Embed texts.
    fn embed(
        &self,
        model: String,
        inputs: Vec<String>,
    ) -> BoxFuture<'_, Result<Embeddings, ModelError>>;
}
