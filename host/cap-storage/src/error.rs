//! The crate's error type. How each variant reaches a guest (which
//! `wasi:keyvalue/store.error` case) is decided in one place:
//! `host::to_wit_error`.

use std::fmt;
use std::path::PathBuf;

use wasmtime::component::ResourceTableError;

use crate::CounterRange;

/// Result with the storage capability's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which quota a write would exceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuotaKind {
    /// Number of keys in the bucket.
    Keys,
    /// Bytes of keys and values in the bucket.
    Bytes,
}

impl QuotaKind {
    /// The quota's name in configuration: `max-keys` or `max-bytes`.
    pub fn name(self) -> &'static str {
        match self {
            QuotaKind::Keys => "max-keys",
            QuotaKind::Bytes => "max-bytes",
        }
    }

    fn unit(self) -> &'static str {
        match self {
            QuotaKind::Keys => "keys",
            QuotaKind::Bytes => "bytes",
        }
    }
}

impl fmt::Display for QuotaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything that can go wrong in the storage capability.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The plugin was not granted the bucket. Guests see `access-denied`.
    #[error(
        "plugin `{plugin}` may not open bucket `{bucket}`; grant it in platform.toml: storage = [\"{bucket}\"] under [plugin.grants]"
    )]
    AccessDenied {
        /// Plugin id.
        plugin: String,
        /// Bucket it asked for.
        bucket: String,
    },

    /// A write would take the bucket past one of its quotas; nothing was
    /// written. Guests see `other(message)`.
    #[error(
        "bucket `{bucket}` is full: its {kind} quota is {limit} {unit}, it holds {usage} and this write would make {after}; delete entries or raise {kind} for the bucket in platform.toml",
        unit = kind.unit()
    )]
    QuotaExceeded {
        /// Bucket.
        bucket: String,
        /// Which quota.
        kind: QuotaKind,
        /// The quota.
        limit: u64,
        /// What the bucket holds now.
        usage: u64,
        /// What it would hold after the write.
        after: u64,
    },

    /// `increment` on a value that is not a decimal `i64`. Guests see `other(message)`.
    #[error(
        "key `{key}` in bucket `{bucket}` does not hold a counter (a decimal i64 in ASCII), so it cannot be incremented"
    )]
    NotACounter {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
    },

    /// `increment` would take the counter out of the range the caller's
    /// interface can represent. Nothing was written. Guests see `other(message)`.
    #[error(
        "incrementing key `{key}` in bucket `{bucket}` (now {current}) by {delta} leaves the counter range {range}; nothing was written"
    )]
    OutOfRange {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// The counter's value.
        current: i64,
        /// The increment asked for.
        delta: i64,
        /// The range.
        range: CounterRange,
    },

    /// `increment` through `wasi:keyvalue@0.2.0-draft` with a delta past
    /// `i64::MAX`. Guests see `other(message)`.
    #[error(
        "increment of key `{key}` in bucket `{bucket}` by {delta}: counters hold at most {max}",
        max = i64::MAX
    )]
    DeltaTooLarge {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// The increment asked for.
        delta: u64,
    },

    /// A `get-many` would hand back more bytes than one batch read may (the
    /// plugin's `host-memory-mib`); nothing is returned. Guests see `other(message)`.
    #[error(
        "get-many of {keys} keys in bucket `{bucket}` stopped at {bytes} bytes of keys and values: one batch read returns at most {limit} bytes (the plugin's host-memory-mib); read fewer keys per call"
    )]
    BatchTooLarge {
        /// Bucket.
        bucket: String,
        /// Keys asked for.
        keys: usize,
        /// Bytes the read had reached.
        bytes: u64,
        /// The most one read returns.
        limit: u64,
    },

    /// The call's deadline passed during a batch read; nothing is returned.
    /// Guests see `other(message)`.
    #[error(
        "get-many in bucket `{bucket}` stopped at the call's deadline after {done} of {keys} keys; read fewer keys per call"
    )]
    DeadlineExceeded {
        /// Bucket.
        bucket: String,
        /// Keys read.
        done: usize,
        /// Keys asked for.
        keys: usize,
    },

    /// A `list-keys` cursor that no `list-keys` call returned. Guests see `other(message)`.
    #[error(
        "list-keys cursor `{cursor}` was not returned by list-keys; pass none to start from the beginning"
    )]
    BadCursor {
        /// The cursor.
        cursor: String,
    },

    /// Opening one more compare-and-swap handle would hold more bytes than
    /// the plugin may hold in open handles. Guests see `other(message)`.
    #[error(
        "plugin `{plugin}` holds {held} bytes in open compare-and-swap handles and may hold {limit}; swap or drop handles before opening more"
    )]
    CasHeldLimit {
        /// Plugin id.
        plugin: String,
        /// Bytes held in open handles, this one included.
        held: u64,
        /// The limit.
        limit: u64,
    },

    /// The folder of the database file could not be created.
    #[error("cannot create the folder of storage database {path}: {source}")]
    CreateDir {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },

    /// The database file could not be opened or set up.
    #[error("cannot open storage database {path}: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// Why.
        source: rusqlite::Error,
    },

    /// SQLite refused write-ahead logging (e.g. on a network filesystem).
    #[error(
        "storage database {path} cannot use write-ahead logging (journal mode stays `{mode}`); put it on a local filesystem"
    )]
    NoWal {
        /// The database file.
        path: PathBuf,
        /// The journal mode SQLite kept.
        mode: String,
    },

    /// An SQLite call failed (I/O, disk full, a value too large, ...).
    /// Guests see `other(message)`.
    #[error("storage database: {0}")]
    Sqlite(#[from] rusqlite::Error),

    /// A failure of another backend. Guests see `other(message)`.
    #[error("storage backend: {0}")]
    Backend(Box<dyn std::error::Error + Send + Sync>),

    /// A bucket handle was not in the store's resource table: a host bug,
    /// not something a guest can cause. Traps the guest.
    #[error("storage bucket handle: {0}")]
    Table(#[from] ResourceTableError),
}
