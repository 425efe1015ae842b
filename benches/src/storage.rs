//! The storage benchmark's setup: `wasi:keyvalue` get and set through a guest
//! component, beside the same operations on SQLite without the guest.
//!
//! Three ways of doing N operations on keys `k0` … `k{N-1}` of one bucket:
//!
//! - [`StorageBench::guest`]: one call of `storage_bench_tool` (`get BUCKET N`
//!   or `set BUCKET N SIZE SEED`) through Convergio: a fresh instance, `open` of the
//!   bucket, then N host calls, each through `convergio-cap-storage` to its
//!   `SqliteBackend`. The per-operation cost is `(t(N) − t(0)) / N`.
//! - [`Direct`]: rusqlite on a database of its own with the same pragmas
//!   (WAL, `synchronous = FULL`, 5 s busy timeout) and the backend's own
//!   schema ([`SqliteBackend::SCHEMA`]), with the statements the backend
//!   runs, each write in autocommit.
//! - [`StorageBench::backend`]: `convergio-cap-storage`'s `SqliteBackend`
//!   called directly (no guest, no host call), on a database of its own.
//!
//! The three databases sit in one temporary directory, on the same disk
//! (`$CONVERGIO_BENCH_DIR` chooses where: a tmpfs such as `/dev/shm` makes
//! every flush free, which leaves the CPU cost of each path).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use convergio_cap_storage::{Backend, Quota, SqliteBackend};
use convergio_runtime::Runtime;
use convergio_tests::{TestPlugin, bench_test_component, start};
use rusqlite::{Connection, OptionalExtension, params};
use tempfile::TempDir;
use wasmtime::component::Val;

use crate::invoke_params;

/// Any error of the setup.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Plugin id of `storage_bench_tool`, granted [`BUCKET`].
pub const STORE: &str = "store";
/// The bucket every side uses.
pub const BUCKET: &str = "bench";
/// Bytes of each value written.
pub const VALUE_SIZE: usize = 100;

/// The keys of N operations, as the guest makes them.
fn key(i: usize) -> String {
    format!("k{i}")
}

/// The value a set of `seed` writes to key `i`, as the guest makes it:
/// `"{seed}.{i}."` padded with `x` to [`VALUE_SIZE`] bytes. SQLite does not
/// write a row whose new value equals the old one, so every round of sets
/// needs a new seed to measure real, flushed writes.
pub fn value(seed: u64, i: usize) -> Vec<u8> {
    let mut value = format!("{seed}.{i}.").into_bytes();
    value.resize(VALUE_SIZE, b'x');
    value
}

/// A new seed for each round of sets, shared by every side (so no side
/// rewrites a value it already holds).
pub fn next_seed() -> u64 {
    static SEED: AtomicU64 = AtomicU64::new(1);
    SEED.fetch_add(1, Ordering::Relaxed)
}

/// rusqlite on its own database, configured as `SqliteBackend` configures its.
#[derive(Debug)]
pub struct Direct {
    conn: Connection,
}

impl Direct {
    /// Open (or create) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, BoxError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(format!("SQLite refused WAL mode (journal mode {mode})").into());
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(SqliteBackend::SCHEMA)?;
        Ok(Self { conn })
    }

    /// `get` of keys `k0` … `k{n-1}`; the number found.
    pub fn gets(&self, n: usize) -> rusqlite::Result<usize> {
        let mut found = 0;
        for i in 0..n {
            let value: Option<Vec<u8>> = self
                .conn
                .prepare_cached("SELECT value FROM kv WHERE bucket = ?1 AND key = ?2")?
                .query_row(params![BUCKET, key(i)], |row| row.get(0))
                .optional()?;
            found += usize::from(value.is_some());
        }
        Ok(found)
    }

    /// `set` of keys `k0` … `k{n-1}` to [`value`]`(seed, i)`, one
    /// transaction each.
    pub fn sets(&self, n: usize, seed: u64) -> rusqlite::Result<()> {
        for i in 0..n {
            self.conn
                .prepare_cached(
                    "INSERT INTO kv (bucket, key, value) VALUES (?1, ?2, ?3)
                     ON CONFLICT (bucket, key) DO UPDATE SET value = excluded.value",
                )?
                .execute(params![BUCKET, key(i), value(seed, i)])?;
        }
        Ok(())
    }
}

/// `SqliteBackend::get` of keys `k0` … `k{n-1}`; the number found.
pub fn backend_gets(backend: &SqliteBackend, n: usize) -> convergio_cap_storage::Result<usize> {
    let mut found = 0;
    for i in 0..n {
        found += usize::from(backend.get(BUCKET, &key(i))?.is_some());
    }
    Ok(found)
}

/// `SqliteBackend::set` of keys `k0` … `k{n-1}` to [`value`]`(seed, i)`.
pub fn backend_sets(
    backend: &SqliteBackend,
    n: usize,
    seed: u64,
) -> convergio_cap_storage::Result<()> {
    for i in 0..n {
        backend.set(BUCKET, &key(i), &value(seed, i), Quota::UNLIMITED)?;
    }
    Ok(())
}

/// A platform with `storage_bench_tool` granted [`BUCKET`], and the two
/// baselines, each with its own database in one temporary directory.
#[derive(Debug)]
pub struct StorageBench {
    /// The runtime under test (its database: `data/convergio.db`).
    pub runtime: Runtime,
    /// rusqlite directly (`direct.db`).
    pub direct: Direct,
    /// `SqliteBackend` directly (`backend.db`).
    pub backend: SqliteBackend,
    _dir: TempDir,
}

impl StorageBench {
    /// Build the three sides, each holding keys `k0` … `k{keys-1}` with
    /// [`VALUE_SIZE`]-byte values, so gets find what they look for.
    /// `storage_bench_tool` must be built (`cargo xtask build-components --release`).
    ///
    /// The databases go in a temporary directory under
    /// `$CONVERGIO_BENCH_DIR` if set (e.g. `/dev/shm`, to take the disk out
    /// of the measurement), else under the system's temporary directory.
    pub async fn start(keys: usize) -> Result<Self, BoxError> {
        let dir = match std::env::var_os("CONVERGIO_BENCH_DIR") {
            Some(base) => tempfile::tempdir_in(base)?,
            None => tempfile::tempdir()?,
        };
        let plugin = TestPlugin::new(STORE, "tool", bench_test_component("storage_bench_tool"))
            .declares(&["storage"])
            .grants(&format!("storage = [\"{BUCKET}\"]"))
            .limits("max-instances = 64");
        let runtime = start(dir.path(), "data-dir = \"data\"", &[plugin]).await;
        let direct = Direct::open(&dir.path().join("direct.db"))?;
        let backend = SqliteBackend::open(dir.path().join("backend.db"))?;
        let seed = next_seed();
        direct.sets(keys, seed)?;
        backend_sets(&backend, keys, seed)?;
        let bench = Self {
            runtime,
            direct,
            backend,
            _dir: dir,
        };
        bench.guest(&set_params(keys, seed)).await?;
        Ok(bench)
    }

    /// One call of `storage_bench_tool`; its text output.
    pub async fn guest(&self, params: &[Val]) -> Result<String, BoxError> {
        let out = self.runtime.invoke(STORE, "tool.invoke", params).await?;
        match out.first() {
            Some(Val::Result(Ok(Some(text)))) => match text.as_ref() {
                Val::String(text) => Ok(text.clone()),
                other => Err(format!("unexpected output {other:?}").into()),
            },
            other => Err(format!("storage_bench_tool failed: {other:?}").into()),
        }
    }
}

/// Parameters of `get BUCKET n`.
pub fn get_params(n: usize) -> [Val; 2] {
    invoke_params("get", &format!("{BUCKET} {n}"))
}

/// Parameters of `set BUCKET n VALUE_SIZE seed`.
pub fn set_params(n: usize, seed: u64) -> [Val; 2] {
    invoke_params("set", &format!("{BUCKET} {n} {VALUE_SIZE} {seed}"))
}
