//! Errors of setting the capability up. Errors of a request are
//! `wasi:http` error codes, returned to the guest (see `send`).

/// A problem with the operator's configuration.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A destination in a plugin's `http` grant is malformed.
    #[error("http grant `{grant}`: {message}")]
    Grant {
        /// The grant as written.
        grant: String,
        /// What is wrong and how to write it.
        message: String,
    },
    /// A `[runtime.http]` setting is wrong.
    #[error("[runtime.http] {setting}: {message}")]
    Setting {
        /// The setting's name.
        setting: String,
        /// What is wrong.
        message: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
