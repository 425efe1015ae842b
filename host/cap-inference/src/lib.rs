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

#![deny(missing_docs)]

mod breaker;
mod budget;
mod error;
mod ledger;
mod provider;
mod router;
mod types;

pub use breaker::{Admit, Breakers};
pub use budget::{
    BudgetStore, Budgets, Hold, HoldId, MemoryBudgetStore, Reservation, ReserveError, Scope,
};
pub use error::{Error, Result};
pub use ledger::{Ledger, UsageLine, day_of, month_start};
pub use provider::{BoxFuture, DeltaStream, Provider};
pub use router::{
    CallRecord, Caller, ConfigProblem, NoSink, RoutedStream, Router, RouterConfig, UsageSink,
};
pub use types::*;
