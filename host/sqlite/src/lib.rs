//! How the host opens its SQLite databases (storage, the key vault, the
//! usage ledger): WAL mode, a busy timeout, and setup steps that hold when
//! several connections or processes open one database at once.
//!
//! SQLite waits for a lock up to the busy timeout, except where waiting
//! could deadlock (a read lock that must become a write lock, a change of
//! journal mode): there it answers "busy" at once. [`open_wal`] and
//! [`create_schema`] retry those answers for up to [`BUSY_TIMEOUT`].
//!
//! ```no_run
//! let mut conn = convergio_sqlite::open_wal(
//!     std::path::Path::new("data.db"),
//!     convergio_sqlite::Synchronous::Full,
//! )?;
//! convergio_sqlite::create_schema(&mut conn, "CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY);")?;
//! # Ok::<(), convergio_sqlite::OpenError>(())
//! ```
#![deny(missing_docs)]

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, TransactionBehavior};

/// How long a connection waits for a lock, and how long the setup steps
/// retry an immediate "busy".
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// When a commit reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synchronous {
    /// Before the commit returns: an acknowledged write survives a crash of
    /// the machine.
    Full,
    /// At WAL checkpoints: a crash of the machine may lose the last commits,
    /// never corrupt the file.
    Normal,
}

/// Why a database could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// SQLite refused (the file, a lock held past the timeout, the schema).
    Sqlite(rusqlite::Error),
    /// The file would not switch to WAL mode (a read-only or network
    /// filesystem, for instance); it stays in `mode`. `conn` is open and
    /// set up otherwise, for a caller that can work without WAL.
    NotWal {
        /// The journal mode the file kept.
        mode: String,
        /// The connection, with the busy timeout and `synchronous` set.
        conn: Box<Connection>,
    },
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(e) => e.fmt(f),
            Self::NotWal { mode, .. } => write!(
                f,
                "the database stays in journal mode `{mode}` instead of WAL; put it on a local, writable filesystem"
            ),
        }
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Sqlite(e) => Some(e),
            Self::NotWal { .. } => None,
        }
    }
}

impl From<rusqlite::Error> for OpenError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Sqlite(e)
    }
}

/// Open (creating if needed) the database at `path` with [`BUSY_TIMEOUT`],
/// in whatever journal mode it has: a second connection to a database that
/// [`open_wal`] set up.
pub fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    tune(&conn)?;
    Ok(conn)
}

/// Set up `conn` (opened by [`open`], or in memory) for statements that
/// stay prepared: [`STATEMENT_CACHE`] of them, and the query planner's
/// stability guarantee (`SQLITE_DBCONFIG_ENABLE_QPSG`). Without it SQLite
/// marks a statement whose plan could depend on a bound value (a `WHERE
/// key = ?1` on some tables) to be parsed and planned again at every new
/// binding: a read of a journal's last seq cost 6 – 9 µs instead of 1.5 –
/// 1.8 (measured). The plans do not change: no database here is
/// `ANALYZE`d.
pub fn tune(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

/// Statements a connection keeps prepared (`prepare_cached`). rusqlite
/// keeps 16 by default; the run journal alone uses more than 20 on its hot
/// path, and a statement evicted from the cache is parsed and planned again
/// at its next use (a tenth of a journaled agent turn's time, measured).
pub const STATEMENT_CACHE: usize = 128;

/// Open (creating if needed) the database at `path` in WAL mode, with
/// [`BUSY_TIMEOUT`] and `synchronous`.
pub fn open_wal(path: &Path, synchronous: Synchronous) -> Result<Connection, OpenError> {
    let conn = open(path)?;
    let level = match synchronous {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", level)?;
    let mode: String =
        retry_busy(|| conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(OpenError::NotWal {
            mode,
            conn: Box::new(conn),
        });
    }
    Ok(conn)
}

/// Run `schema` (statements that create what is missing) in one
/// transaction that takes the write lock first, so it never has to upgrade
/// a read lock while another connection does the same.
pub fn create_schema(conn: &mut Connection, schema: &str) -> rusqlite::Result<()> {
    immediate(conn, |tx| tx.execute_batch(schema))
}

/// Run `f` in one transaction that takes the write lock first (so it never
/// upgrades a read lock another connection also holds), committed when
/// `f` succeeds; the whole transaction again while SQLite answers "busy"
/// (see [`retry_busy`]). [`create_schema`] is this with a batch of
/// statements; a store that converts an older schema checks and alters in
/// the same transaction.
pub fn immediate<T>(
    conn: &mut Connection,
    mut f: impl FnMut(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    retry_busy(|| {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    })
}

/// Run `step` again while SQLite answers "busy" or "locked" without having
/// waited, for up to [`BUSY_TIMEOUT`].
pub fn retry_busy<T>(mut step: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let started = Instant::now();
    loop {
        match step() {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(e.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
                    && started.elapsed() < BUSY_TIMEOUT =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_in_wal_with_the_asked_synchronous_level() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let mut conn = open_wal(&path, Synchronous::Full).unwrap();
        create_schema(
            &mut conn,
            "CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY);",
        )
        .unwrap();
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 2);
        let conn = open_wal(&path, Synchronous::Normal).unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 1);
    }

    #[test]
    fn retry_busy_gives_up_on_other_errors_at_once() {
        let mut calls = 0;
        let result: rusqlite::Result<()> = retry_busy(|| {
            calls += 1;
            Err(rusqlite::Error::QueryReturnedNoRows)
        });
        assert!(result.is_err());
        assert_eq!(calls, 1);
    }

    #[test]
    fn retry_busy_retries_a_busy_answer() {
        let mut calls = 0;
        let result = retry_busy(|| {
            calls += 1;
            if calls < 3 {
                Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                    None,
                ))
            } else {
                Ok(calls)
            }
        });
        assert_eq!(result.unwrap(), 3);
    }
}
