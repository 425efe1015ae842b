//! Convergio's inference router, the host side of the
//! `convergio:platform/inference` interface that agents import.
//!
//! - [`Provider`] is one source of models: a provider adapter component
//!   (OpenAI, Anthropic, Gemini…) or a native local backend. The router treats
//!   them alike.
//! - [`Router`] picks the model: by name (`provider/model`) with the
//!   operator's fallback chain, or by policy (the cheapest or best model that
//!   meets the request's requirements and what the request itself implies:
//!   tools, JSON mode, context length). It retries retryable failures with
//!   exponential backoff that honours `Retry-After`, keeps a circuit breaker
//!   per model, fails over only to models the operator listed and that can
//!   take the request, and in zero-cloud mode uses local models only.
//! - [`Budgets`] hold the largest possible cost of a request before it is
//!   sent and settle with the reported usage, in a [`BudgetStore`]: each
//!   reservation and each settlement is one atomic step, so concurrent
//!   requests never spend past a budget. The [`Ledger`] is that store for
//!   every process of one data directory (SQLite); [`MemoryBudgetStore`]
//!   serves a single process.
//! - A [`UsageSink`] receives the tokens and cost of every call, for
//!   metering per key and per plugin; the [`Ledger`] keeps them in SQLite
//!   per day, and budgets count the current UTC month from it, across
//!   restarts.
//!
//! A model call fails with a [`ModelError`] (the WIT `model-error`); the
//! ledger's own failures are this crate's [`Error`].
//!
//! A router over one provider whose one model repeats the last message:
//!
//! ```
//! use std::sync::Arc;
//!
//! use convergio_cap_inference::{
//!     BoxFuture, Caller, ChatRequest, Completion, DeltaStream, Embeddings, Features,
//!     FinishReason, Message, ModelError, ModelInfo, ModelSelector, NoSink, Provider,
//!     ProviderRequest, QualityTier, Role, Router, RouterConfig, Usage,
//! };
//!
//! struct Echo;
//!
//! impl Provider for Echo {
//!     fn id(&self) -> &str {
//!         "echo"
//!     }
//!
//!     fn key(&self) -> Option<&str> {
//!         None
//!     }
//!
//!     fn models(&self) -> BoxFuture<'_, Result<Vec<ModelInfo>, ModelError>> {
//!         Box::pin(async {
//!             Ok(vec![ModelInfo {
//!                 id: "parrot".into(),
//!                 context_window: 4096,
//!                 max_output_tokens: None,
//!                 input_price_per_mtok: 0.0,
//!                 output_price_per_mtok: 0.0,
//!                 features: Features::default(),
//!                 quality: QualityTier::Basic,
//!                 local: true,
//!             }])
//!         })
//!     }
//!
//!     fn complete(&self, request: ProviderRequest) -> BoxFuture<'_, Result<Completion, ModelError>> {
//!         Box::pin(async move {
//!             let last = request.messages.last().map(|m| m.content.clone());
//!             Ok(Completion {
//!                 provider: "echo".into(),
//!                 model: request.model,
//!                 message: Message::text(Role::Assistant, last.unwrap_or_default()),
//!                 finish_reason: FinishReason::Stop,
//!                 usage: Usage::default(),
//!             })
//!         })
//!     }
//!
//!     fn stream(
//!         &self,
//!         _: ProviderRequest,
//!     ) -> BoxFuture<'_, Result<Box<dyn DeltaStream>, ModelError>> {
//!         Box::pin(async { Err(ModelError::BadRequest("echo does not stream".into())) })
//!     }
//!
//!     fn embed(&self, _: String, _: Vec<String>) -> BoxFuture<'_, Result<Embeddings, ModelError>> {
//!         Box::pin(async { Err(ModelError::BadRequest("echo does not embed".into())) })
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), ModelError> {
//! let router = Router::new(RouterConfig::default(), vec![Arc::new(Echo)], Arc::new(NoSink));
//! let caller = Caller::plugin("notes-tool");
//! let request = ChatRequest::new(
//!     ModelSelector::Named("echo/parrot".into()),
//!     vec![Message::text(Role::User, "hello")],
//! );
//! let completion = router.complete(&caller, request).await?;
//! assert_eq!(completion.message.content, "hello");
//!
//! let unknown = ChatRequest::new(ModelSelector::Named("echo/nope".into()), Vec::new());
//! let err = router.complete(&caller, unknown).await.unwrap_err();
//! assert_eq!(err.kind(), "no-model");
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

mod breaker;
mod budget;
mod error;
mod host;
mod ledger;
mod provider;
mod router;
mod types;
pub mod wit;

pub use breaker::{Admit, Breakers};
pub use budget::{
    BudgetStore, Budgets, Hold, HoldId, MemoryBudgetStore, Reservation, ReserveError, Scope,
};
pub use error::{Error, Result};
pub use host::{InferenceCtx, InferenceStream, InferenceView, RouterCell, add_to_linker};
pub use ledger::{Ledger, UsageLine, day_of, month_start};
pub use provider::{BoxFuture, DeltaStream, Provider};
pub use router::{
    CallRecord, Caller, ConfigProblem, NoSink, RoutedStream, Router, RouterConfig, RunCaller,
    UsageMeter, UsageSink,
};
pub use types::*;
