//! The crate's error type, for the router's own bookkeeping: the usage
//! ledger and the [`crate::BudgetStore`] it implements. A model call fails
//! with a [`crate::ModelError`] instead, the WIT `model-error`; where one
//! becomes the other (a budget that cannot be checked refuses the request)
//! is [`crate::ReserveError`]'s conversion.

use std::path::PathBuf;

/// Result with the inference crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in the usage ledger.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The folder of the ledger's database could not be created.
    #[error("usage ledger: cannot create {}: {source}", path.display())]
    CreateDir {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },

    /// The ledger's database could not be opened or set up.
    #[error("usage ledger: cannot open {}: {source}", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// Why.
        source: rusqlite::Error,
    },

    /// SQLite refused write-ahead logging (a read-only or network
    /// filesystem, for instance).
    #[error(
        "usage ledger: cannot open {}: the database stays in journal mode `{mode}` instead of WAL; put it on a local, writable filesystem",
        path.display()
    )]
    NoWal {
        /// The database file.
        path: PathBuf,
        /// The journal mode SQLite kept.
        mode: String,
    },

    /// An SQLite call failed (I/O, disk full, a lock held past the busy
    /// timeout, ...).
    #[error("usage ledger: {0}")]
    Sqlite(#[from] rusqlite::Error),

    /// The blocking task that ran a ledger call did not finish (it panicked,
    /// or the runtime is shutting down).
    #[error("usage ledger: the ledger's task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}
