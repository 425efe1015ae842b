//! The crate's error type: one case per `local-model-error` of the WIT.

/// Result with the local-model [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong with a local model. Each case is a case of the WIT
/// `local-model-error` of the same name, with a message that says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No such model in the cache or on the server.
    #[error("{0}")]
    NotFound(String),
    /// The file is corrupt, truncated or not a supported model.
    #[error("{0}")]
    LoadFailed(String),
    /// The prompt does not fit the model's context.
    #[error("{0}")]
    ContextOverflow(String),
    /// A request that cannot be served as asked (bad sampling values, no messages, ...).
    #[error("{0}")]
    InvalidInput(String),
    /// The caller was not granted this model.
    #[error("{0}")]
    AccessDenied(String),
    /// The backend failed (I/O, the server, llama.cpp).
    #[error("{0}")]
    Backend(String),
}
