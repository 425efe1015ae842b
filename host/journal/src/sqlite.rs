//! [`RunStore`] on SQLite: its own file (`runs.db` in the data directory),
//! so the journal does not compete with plugins' storage writes.
//!
//! Appends are committed in groups: whoever commits takes every append that
//! arrived while the previous commit was in flight and commits them all in
//! one transaction. Each append checks its expected seq inside that
//! transaction, in a savepoint of its own, so one that fails leaves the
//! others of the batch alone, and each caller waits for the commit of its
//! own append.
//!
//! Who commits depends on the durability. With `process` an append is
//! written to the store's append log and acknowledged; the log's applier
//! commits batches of them into the tables ([`crate::append_log`]). With
//! `sync` a commit waits for the disk (an `fsync`, up to milliseconds), so
//! appends go to a writer thread of their own, which commits batches and
//! keeps async callers' threads free. With `off` (an in-memory database)
//! the appender commits itself, on its own thread, when no one else is
//! committing (the leader); appends that arrive meanwhile queue, and the
//! leader commits them too before it returns (they are its followers).
//! Every other write goes through the writer's connection too. Reads use a
//! second connection with `sync` (in WAL mode, they do not wait for an
//! `fsync`), the writer's with `process` (its commits are short, and a
//! second connection would drop its page cache after each of them).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::time::{Duration, Instant};

use convergio_sqlite::Synchronous;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tokio::sync::{broadcast, oneshot};

use crate::append_log::AppendLog;
use crate::{
    BoxFuture, CallStep, Checkpoint, Entry, Error, Lease, NewEntry, Pruned, Result, RunId, RunInfo,
    RunStatus, RunStore, Seq, blob_hash, now_ms, ttl_ms,
};

/// How long the writer thread polls for the next append before it parks.
const SPIN: Duration = Duration::from_micros(50);

/// How long a blocking append polls for its reply before it parks.
const REPLY_SPIN: Duration = Duration::from_micros(200);

/// How often the checkpointer copies the WAL into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// WAL pages after which a commit checkpoints itself (SQLite's
/// `wal_autocheckpoint`): only when the checkpointer falls behind.
const WAL_FALLBACK_PAGES: u32 = 16_384;

/// The tables, created where missing. Those that hold payloads are rowid
/// tables with a unique index on their key: their rows (a step's decision,
/// a snapshot, a blob) are larger than a `WITHOUT ROWID` table suits, where
/// every insert moved whole rows about the B-tree (an earlier schema; see
/// [`create_schema`], which converts it).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    id          TEXT    PRIMARY KEY,
    graph_hash  TEXT    NOT NULL,
    -- A fork's parent run and the seq it was forked at: its entries up to
    -- fork_seq are the parent's, read through this link, never copied.
    parent      TEXT,
    fork_seq    INTEGER,
    status      TEXT    NOT NULL,
    created_ms  INTEGER NOT NULL,
    -- Set when the run is made and when its status changes; the time of
    -- its last entry, if later, is its `updated_ms` as read.
    updated_ms  INTEGER NOT NULL,
    -- The seq the run starts after (0, or fork_seq for a fork): its
    -- journal ends at its last entry, or here when it has none. Appends do
    -- not write this row, so a step's commit writes the entries' pages only.
    last_seq    INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS entries (
    run      TEXT    NOT NULL,
    seq      INTEGER NOT NULL,
    kind     TEXT    NOT NULL,
    call_id  TEXT,
    payload  BLOB    NOT NULL,
    at_ms    INTEGER NOT NULL,
    UNIQUE (run, seq)
) STRICT;
CREATE TABLE IF NOT EXISTS checkpoints (
    run    TEXT    NOT NULL,
    seq    INTEGER NOT NULL,
    state  BLOB    NOT NULL,
    UNIQUE (run, seq)
) STRICT;
CREATE TABLE IF NOT EXISTS call_steps (
    run      TEXT    NOT NULL,
    call_id  TEXT    NOT NULL,
    attempt  INTEGER NOT NULL,
    idx      INTEGER NOT NULL,
    kind     TEXT    NOT NULL,
    key      TEXT    NOT NULL,
    result   BLOB    NOT NULL,
    UNIQUE (run, call_id, attempt, idx)
) STRICT;
CREATE TABLE IF NOT EXISTS blobs (
    hash   TEXT    NOT NULL UNIQUE,
    bytes  BLOB    NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS claims (
    run         TEXT    PRIMARY KEY,
    owner       TEXT    NOT NULL,
    expires_ms  INTEGER NOT NULL
) STRICT;
";

/// When a commit is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `fsync` on every commit (WAL, `synchronous = FULL`): an acknowledged
    /// entry survives a power loss.
    Sync,
    /// An append is written to the process's append log (`<db>-log/`) and
    /// copied into the tables (WAL, `synchronous = NORMAL`) in batches; no
    /// `fsync`: an acknowledged entry survives `kill -9` of the process,
    /// not always a crash of the machine. Another process reads an append
    /// about 2 ms after it was acknowledged.
    #[default]
    Process,
    /// Memory only: nothing survives the process. [`crate::open`] gives a
    /// [`crate::MemoryRunStore`]; [`SqliteRunStore`] itself makes an
    /// in-memory SQLite database (the path is not used).
    Off,
}

/// How a [`SqliteRunStore`] is opened.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// When a commit is durable.
    pub durability: Durability,
    /// Committed entries the broadcast keeps for subscribers that lag;
    /// one that lags further re-reads from the table.
    pub broadcast_capacity: usize,
    /// The most appends one transaction commits.
    pub max_batch: usize,
    /// With [`Durability::Off`]: once the runs in memory hold more than
    /// this many bytes, the runs that finished longest ago are dropped
    /// until they hold no more (runs still going are never dropped, nor a
    /// run a remaining fork shares entries with).
    pub memory_limit: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            durability: Durability::Process,
            broadcast_capacity: 4096,
            max_batch: 1024,
            memory_limit: crate::memory::MEMORY_LIMIT,
        }
    }
}

/// The built-in [`RunStore`]. Cheap to clone; clones share the store.
#[derive(Debug, Clone)]
pub struct SqliteRunStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Reads (the writer itself in `Off` mode, where the database is one
    /// connection's memory).
    conn: Arc<Mutex<Connection>>,
    /// Appends and every other write.
    writer: Arc<Mutex<Connection>>,
    /// Who commits appends.
    appends: Appends,
    commits: Arc<AtomicU64>,
    events: broadcast::Sender<Arc<Entry>>,
    /// Dropped with the store: stops the checkpointer.
    _checkpointer: Option<mpsc::Sender<()>>,
}

/// Where appends go to be committed.
#[derive(Debug)]
enum Appends {
    /// To the writer thread (`Sender` is `Sync`: appenders send without a
    /// lock).
    Thread(mpsc::Sender<Append>),
    /// To the queue the leader commits.
    Inline(Group),
    /// To this store's append log (`process` durability); the log's
    /// applier copies it into the tables.
    Log(AppendLog),
}

/// Appends committed by their callers, in groups: see the module's doc.
#[derive(Debug)]
struct Group {
    conn: Arc<Mutex<Connection>>,
    /// Appends waiting for a commit.
    queue: Mutex<Vec<Append>>,
    /// Held by the appender that commits (the leader).
    leader: Mutex<()>,
    max_batch: usize,
}

/// One append on its way to the writer thread.
#[derive(Debug)]
struct Append {
    run: RunId,
    /// Create the run in the same commit.
    create: Option<Create>,
    expected: Seq,
    entries: Vec<NewEntry>,
    reply: Reply,
}

/// A run to create with its first append.
#[derive(Debug)]
struct Create {
    graph_hash: String,
    /// Its lease: owner and how long.
    lease: Option<(String, Duration)>,
}

#[derive(Debug)]
enum Reply {
    Async(oneshot::Sender<Result<Seq>>),
    Blocking(mpsc::SyncSender<Result<Seq>>),
}

impl Reply {
    fn send(self, result: Result<Seq>) {
        // A caller that stopped waiting does not want the answer.
        let _ = match self {
            Self::Async(tx) => tx.send(result).map_err(|_| ()),
            Self::Blocking(tx) => tx.send(result).map_err(|_| ()),
        };
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves SQLite consistent (an open
    // transaction rolls back when dropped), so the connection stays usable;
    // and the queue of appends is a plain list.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn open_conn(path: &Path, durability: Durability) -> Result<Connection> {
    let sync = match durability {
        Durability::Sync => Synchronous::Full,
        Durability::Process | Durability::Off => Synchronous::Normal,
    };
    let mut conn = convergio_sqlite::open_wal(path, sync)
        .map_err(|e| Error::Open(format!("{}: {e}", path.display())))?;
    create_schema(&mut conn)?;
    Ok(conn)
}

/// The tables that an earlier schema made `WITHOUT ROWID`.
const ROWID_TABLES: [&str; 4] = ["entries", "checkpoints", "call_steps", "blobs"];

/// Create the tables [`SCHEMA`] names where missing, converting those of
/// an earlier schema that were `WITHOUT ROWID` (same columns, rows copied)
/// in the same transaction.
fn create_schema(conn: &mut Connection) -> Result<()> {
    convergio_sqlite::immediate(conn, |tx| {
        let mut old = Vec::new();
        for table in ROWID_TABLES {
            let sql: Option<String> = tx
                .query_row(
                    "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1",
                    [table],
                    |r| r.get(0),
                )
                .optional()?;
            if sql.is_some_and(|sql| sql.contains("WITHOUT ROWID")) {
                tx.execute_batch(&format!("ALTER TABLE {table} RENAME TO {table}_old"))?;
                old.push(table);
            }
        }
        tx.execute_batch(SCHEMA)?;
        for table in old {
            tx.execute_batch(&format!(
                "INSERT INTO {table} SELECT * FROM {table}_old; DROP TABLE {table}_old;"
            ))?;
        }
        Ok(())
    })?;
    Ok(())
}

impl SqliteRunStore {
    /// Open (creating if needed) the journal at `path` with `durability`
    /// and the other [`Options`] at their defaults.
    pub fn open(path: &Path, durability: Durability) -> Result<Self> {
        Self::open_with(
            path,
            Options {
                durability,
                ..Options::default()
            },
        )
    }

    /// Open (creating if needed) the journal at `path`.
    pub fn open_with(path: &Path, options: Options) -> Result<Self> {
        let (writer, conn, checkpointer) = match options.durability {
            Durability::Off => {
                let mut conn = Connection::open_in_memory()?;
                convergio_sqlite::tune(&conn)?;
                create_schema(&mut conn)?;
                let conn = Arc::new(Mutex::new(conn));
                (Arc::clone(&conn), conn, None)
            }
            durability => {
                let writer = open_conn(path, durability)?;
                writer.pragma_update(None, "wal_autocheckpoint", WAL_FALLBACK_PAGES)?;
                let writer = Arc::new(Mutex::new(writer));
                // With `process` every write is short (the log's applier
                // commits no `fsync`), so reads share the writer's
                // connection and its page cache: a second connection
                // drops its whole cache whenever the other one committed,
                // and reads the pages again (tens of microseconds a read).
                let reads = match durability {
                    Durability::Process => Arc::clone(&writer),
                    _ => Arc::new(Mutex::new(open_conn(path, durability)?)),
                };
                (
                    writer,
                    reads,
                    Some(start_checkpointer(open_conn(path, durability)?)?),
                )
            }
        };
        let (events, _) = broadcast::channel(options.broadcast_capacity.max(1));
        let commits = Arc::new(AtomicU64::new(0));
        let max_batch = options.max_batch.max(1);
        let writer_conn = Arc::clone(&writer);
        let appends = if options.durability == Durability::Sync {
            let (tx, rx) = mpsc::channel();
            let thread = Writer {
                conn: writer,
                requests: rx,
                commits: Arc::clone(&commits),
                events: events.clone(),
                max_batch,
            };
            std::thread::Builder::new()
                .name("convergio-journal-writer".into())
                .spawn(move || thread.run())
                .map_err(|e| Error::Open(format!("cannot start the writer thread: {e}")))?;
            Appends::Thread(tx)
        } else if options.durability == Durability::Process {
            Appends::Log(AppendLog::open(path, writer, Arc::clone(&commits))?)
        } else {
            Appends::Inline(Group {
                conn: writer,
                queue: Mutex::new(Vec::new()),
                leader: Mutex::new(()),
                max_batch,
            })
        };
        Ok(Self {
            inner: Arc::new(Inner {
                conn,
                writer: writer_conn,
                appends,
                commits,
                events,
                _checkpointer: checkpointer,
            }),
        })
    }

    /// Transactions the writer has committed (each holds one or more
    /// appends).
    pub fn commits(&self) -> u64 {
        self.inner.commits.load(Ordering::Relaxed)
    }

    /// Follow `run` from after seq `after` (see [`crate::subscribe`]).
    pub fn subscribe(&self, run: RunId, after: Seq) -> crate::Subscription {
        crate::subscribe(Arc::new(self.clone()), run, after)
    }

    /// Rows in the `entries` table (all runs): what the journal holds
    /// itself, without the prefixes forks share.
    pub fn stored_entries(&self) -> Result<u64> {
        self.caught_up()?;
        let conn = lock(&self.inner.conn);
        let n: i64 = conn.query_row("SELECT COUNT(*) FROM entries", [], |r| r.get(0))?;
        Ok(to_u64(n))
    }

    fn send(&self, run: &RunId, expected: Seq, entries: Vec<NewEntry>, reply: Reply) -> Result<()> {
        self.send_append(run, None, expected, entries, reply)
    }

    fn send_append(
        &self,
        run: &RunId,
        create: Option<Create>,
        expected: Seq,
        entries: Vec<NewEntry>,
        reply: Reply,
    ) -> Result<()> {
        let append = Append {
            run: run.clone(),
            create,
            expected,
            entries,
            reply,
        };
        match &self.inner.appends {
            Appends::Thread(tx) => tx.send(append).map_err(|_| Error::Closed),
            Appends::Inline(group) => {
                lock(&group.queue).push(append);
                self.lead(group);
                Ok(())
            }
            // A run is created in the tables at once (once per run), with
            // its first entries.
            Appends::Log(_) if append.create.is_some() => {
                commit(
                    &self.inner.writer,
                    &mut vec![append],
                    &self.inner.commits,
                    &self.inner.events,
                );
                Ok(())
            }
            Appends::Log(log) => {
                let Append {
                    run,
                    expected,
                    entries,
                    reply,
                    ..
                } = append;
                reply.send(log.append(&run, expected, entries, &self.inner.events));
                Ok(())
            }
        }
    }

    /// Create `run` with its first `entries` (and its lease) in one commit.
    fn create(
        &self,
        run: &RunId,
        graph_hash: &str,
        entries: Vec<NewEntry>,
        lease: Option<(String, Duration)>,
    ) -> Result<Seq> {
        let (tx, rx) = mpsc::sync_channel(1);
        let create = Create {
            graph_hash: graph_hash.to_owned(),
            lease,
        };
        self.send_append(run, Some(create), 0, entries, Reply::Blocking(tx))?;
        rx.recv().map_err(|_| Error::Closed)?
    }

    /// Copy what is only in the append log into the tables (`process`
    /// durability), so a read sees every append this store acknowledged.
    fn caught_up(&self) -> Result<()> {
        match &self.inner.appends {
            Appends::Log(log) => log.apply(),
            _ => Ok(()),
        }
    }

    /// The append log, if this store has one.
    pub(crate) fn log(&self) -> Option<&AppendLog> {
        match &self.inner.appends {
            Appends::Log(log) => Some(log),
            _ => None,
        }
    }

    /// Commit the queued appends if no one else is committing: until the
    /// queue is empty. An append queued while another appender leads is
    /// committed by that leader, which checks the queue again after it
    /// stops leading, so none is left behind.
    fn lead(&self, group: &Group) {
        loop {
            let leading = match group.leader.try_lock() {
                Ok(guard) => guard,
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => return,
            };
            loop {
                let mut batch = {
                    let mut queue = lock(&group.queue);
                    let take = queue.len().min(group.max_batch);
                    queue.drain(..take).collect::<Vec<_>>()
                };
                if batch.is_empty() {
                    break;
                }
                commit(
                    &group.conn,
                    &mut batch,
                    &self.inner.commits,
                    &self.inner.events,
                );
            }
            drop(leading);
            if lock(&group.queue).is_empty() {
                return;
            }
        }
    }
}

/// Copy the WAL into the database every [`CHECKPOINT_EVERY`] on a thread
/// of its own (`PASSIVE`: it never waits for a reader or a writer), so a
/// commit does not pay for it: with `process` durability the appender
/// commits on its own thread, which would otherwise copy a thousand pages
/// and `fsync` twice every thousand pages of WAL. Stops when the returned
/// sender is dropped.
fn start_checkpointer(conn: Connection) -> Result<mpsc::Sender<()>> {
    let (stop, stopped) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("convergio-journal-checkpoint".into())
        .spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECKPOINT_EVERY)
            {
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "the journal's WAL checkpoint failed; the next commit past the WAL's limit does it");
                }
            }
        })
        .map_err(|e| Error::Open(format!("cannot start the checkpoint thread: {e}")))?;
    Ok(stop)
}

/// The writer thread: one connection, one transaction per batch.
struct Writer {
    conn: Arc<Mutex<Connection>>,
    requests: mpsc::Receiver<Append>,
    commits: Arc<AtomicU64>,
    events: broadcast::Sender<Arc<Entry>>,
    max_batch: usize,
}

impl Writer {
    fn run(self) {
        let mut batch = Vec::new();
        // Ends when every handle on the store is dropped.
        while let Some(first) = self.next() {
            batch.push(first);
            while batch.len() < self.max_batch {
                match self.requests.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            self.commit(&mut batch);
        }
    }

    /// The next append: polled for a moment before the thread parks, since
    /// an appender often sends its next append right after its reply, and
    /// waking a parked thread costs tens of microseconds on a VM.
    fn next(&self) -> Option<Append> {
        let started = Instant::now();
        while started.elapsed() < SPIN {
            match self.requests.try_recv() {
                Ok(append) => return Some(append),
                Err(mpsc::TryRecvError::Empty) => std::thread::yield_now(),
                Err(mpsc::TryRecvError::Disconnected) => return None,
            }
        }
        self.requests.recv().ok()
    }

    fn commit(&self, batch: &mut Vec<Append>) {
        commit(&self.conn, batch, &self.commits, &self.events);
    }
}

/// Commit `batch` in one transaction on `conn`, publish its entries and
/// answer each append.
fn commit(
    conn: &Mutex<Connection>,
    batch: &mut Vec<Append>,
    commits: &AtomicU64,
    events: &broadcast::Sender<Arc<Entry>>,
) {
    let now = now_ms();
    let outcome = {
        let mut conn = lock(conn);
        commit_batch(&mut conn, batch, now)
    };
    match outcome {
        Ok(results) => {
            commits.fetch_add(1, Ordering::Relaxed);
            for (append, result) in batch.drain(..).zip(results) {
                if let Ok(last) = &result {
                    let first = last + 1 - append.entries.len() as u64;
                    for (seq, e) in (first..).zip(append.entries) {
                        // No subscriber is not an error.
                        let _ = events.send(Arc::new(e.into_entry(&append.run, seq, now)));
                    }
                }
                append.reply.send(result);
            }
        }
        Err(e) => {
            let message = e.to_string();
            for append in batch.drain(..) {
                append.reply.send(Err(Error::Commit(message.clone())));
            }
        }
    }
}

/// One transaction for `batch`; each append in a savepoint of its own.
/// The outer error is the transaction's: then nothing was committed.
///
/// The transaction's own statements (`BEGIN IMMEDIATE`, `COMMIT`, the
/// savepoints) are kept prepared like the others: rusqlite's `Transaction`
/// runs them as text, and SQLite parsed them again at every commit (a few
/// percent of a journaled step's time, measured).
fn commit_batch(
    conn: &mut Connection,
    batch: &[Append],
    now: u64,
) -> rusqlite::Result<Vec<Result<Seq>>> {
    // `IMMEDIATE` takes the write lock first, waiting up to the busy
    // timeout for another process's transaction.
    run(conn, "BEGIN IMMEDIATE")?;
    let outcome = appends_in(conn, batch, now);
    if outcome.is_err() || matches!(outcome.as_deref(), Ok([Err(_)])) {
        // Alone in its transaction, a failed append rolls the whole of it
        // back; a failed transaction is rolled back as a whole.
        if !conn.is_autocommit() {
            run(conn, "ROLLBACK")?;
        }
        return outcome;
    }
    if let Err(e) = run(conn, "COMMIT") {
        if !conn.is_autocommit() {
            let _ = run(conn, "ROLLBACK");
        }
        return Err(e);
    }
    outcome
}

/// A statement without parameters, kept prepared.
fn run(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

/// The appends of `batch` inside the open transaction: a lone append as
/// is (no savepoint: two statements fewer per commit), several each in a
/// savepoint of its own, so one that fails leaves the others.
fn appends_in(conn: &Connection, batch: &[Append], now: u64) -> rusqlite::Result<Vec<Result<Seq>>> {
    if let [append] = batch {
        return Ok(vec![append_in(conn, append, now)]);
    }
    let mut results = Vec::with_capacity(batch.len());
    for append in batch {
        run(conn, "SAVEPOINT append")?;
        let result = append_in(conn, append, now);
        if result.is_err() {
            run(conn, "ROLLBACK TO append")?;
        }
        run(conn, "RELEASE append")?;
        results.push(result);
    }
    Ok(results)
}

fn append_in(conn: &Connection, append: &Append, now: u64) -> Result<Seq> {
    if let Some(create) = &append.create {
        if run_row(conn, &append.run)?.is_some() {
            return Err(Error::RunExists(append.run.clone()));
        }
        conn.prepare_cached(
            "INSERT INTO runs (id, graph_hash, status, created_ms, updated_ms, last_seq)
             VALUES (?1, ?2, 'running', ?3, ?3, 0)",
        )?
        .execute(params![append.run.as_str(), create.graph_hash, to_i64(now)])?;
        if let Some((owner, ttl)) = &create.lease {
            SqliteRunStore::set_lease(conn, &append.run, owner, *ttl)?;
        }
    }
    let actual: Option<i64> = conn
        .prepare_cached(
            "SELECT COALESCE((SELECT MAX(seq) FROM entries WHERE run = ?1), last_seq)
             FROM runs WHERE id = ?1",
        )?
        .query_row([append.run.as_str()], |r| r.get(0))
        .optional()?;
    let Some(actual) = actual.map(to_u64) else {
        return Err(Error::NoRun(append.run.clone()));
    };
    if actual != append.expected {
        return Err(Error::Conflict {
            run: append.run.clone(),
            expected: append.expected,
            actual,
        });
    }
    let mut insert = conn.prepare_cached(
        "INSERT INTO entries (run, seq, kind, call_id, payload, at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    let mut last = actual;
    for e in &append.entries {
        last += 1;
        insert.execute(params![
            append.run.as_str(),
            to_i64(last),
            e.kind,
            e.call_id,
            e.payload,
            to_i64(now)
        ])?;
    }
    Ok(last)
}

/// A run's row.
struct RunRow {
    info: RunInfo,
    last_seq: Seq,
}

fn run_row(conn: &Connection, run: &RunId) -> Result<Option<RunRow>> {
    let row = conn
        .prepare_cached(
            "SELECT r.graph_hash, r.parent, r.fork_seq, r.status, r.created_ms,
                    MAX(r.updated_ms, COALESCE(e.at_ms, 0)), COALESCE(e.seq, r.last_seq)
             FROM runs r LEFT JOIN (
                 SELECT seq, at_ms FROM entries WHERE run = ?1 ORDER BY seq DESC LIMIT 1
             ) e ON 1
             WHERE r.id = ?1",
        )?
        .query_row([run.as_str()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, Option<i64>>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, i64>(6)?,
            ))
        })
        .optional()?;
    Ok(row.map(
        |(graph_hash, parent, fork_seq, status, created, updated, last)| RunRow {
            info: RunInfo {
                id: run.clone(),
                graph_hash,
                parent: parent.map(|p| (RunId::from(p), fork_seq.map_or(0, to_u64))),
                // Only this crate writes the column.
                status: RunStatus::parse(&status).unwrap_or(RunStatus::Failed),
                created_ms: to_u64(created),
                updated_ms: to_u64(updated),
            },
            last_seq: to_u64(last),
        },
    ))
}

fn existing(conn: &Connection, run: &RunId) -> Result<RunRow> {
    run_row(conn, run)?.ok_or_else(|| Error::NoRun(run.clone()))
}

/// The runs whose rows make up `run`'s journal, root first: each with the
/// seqs it contributes, `(after, up_to]` (`None`: to the end).
fn lineage(conn: &Connection, run: &RunId) -> Result<Vec<(RunId, Seq, Option<Seq>)>> {
    let mut chain = Vec::new();
    let mut current = existing(conn, run)?;
    let mut up_to = None;
    loop {
        let parent = current.info.parent.clone();
        let after = parent.as_ref().map_or(0, |(_, at)| *at);
        chain.push((current.info.id.clone(), after, up_to));
        let Some((parent, at)) = parent else { break };
        up_to = Some(at);
        current = existing(conn, &parent)?;
    }
    chain.reverse();
    Ok(chain)
}

fn read_entries(conn: &Connection, run: &RunId, after: Seq, limit: usize) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    let mut query = conn.prepare_cached(
        "SELECT seq, kind, call_id, payload, at_ms FROM entries
         WHERE run = ?1 AND seq > ?2 AND seq <= ?3 ORDER BY seq LIMIT ?4",
    )?;
    for (source, from, up_to) in lineage(conn, run)? {
        let remaining = limit.saturating_sub(out.len());
        if remaining == 0 {
            break;
        }
        if up_to.is_some_and(|u| u <= after) {
            continue;
        }
        let rows = query.query_map(
            params![
                source.as_str(),
                to_i64(after.max(from)),
                up_to.map_or(i64::MAX, to_i64),
                i64::try_from(remaining).unwrap_or(i64::MAX)
            ],
            |r| {
                Ok(Entry {
                    run: run.clone(),
                    seq: to_u64(r.get(0)?),
                    kind: r.get::<_, String>(1)?.into(),
                    call_id: r.get(2)?,
                    payload: r.get(3)?,
                    at_ms: to_u64(r.get(4)?),
                })
            },
        )?;
        for row in rows {
            out.push(row?);
        }
    }
    Ok(out)
}

fn lease_row(conn: &Connection, run: &RunId) -> Result<Option<(String, u64)>> {
    Ok(conn
        .prepare_cached("SELECT owner, expires_ms FROM claims WHERE run = ?1")?
        .query_row([run.as_str()], |r| {
            Ok((r.get::<_, String>(0)?, to_u64(r.get(1)?)))
        })
        .optional()?)
}

impl SqliteRunStore {
    /// `step` in one `IMMEDIATE` transaction on the writer connection
    /// (two connections of one process that both write make SQLite's busy
    /// handler sleep a millisecond or more; a mutex does not). With an
    /// append log, what is only in the log is inserted in the same
    /// transaction.
    fn write<T>(&self, mut step: impl FnMut(&rusqlite::Transaction<'_>) -> Result<T>) -> Result<T> {
        if let Some(log) = self.log() {
            return log.write(step);
        }
        let mut conn = lock(&self.inner.writer);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let value = step(&tx)?;
        tx.commit()?;
        Ok(value)
    }

    fn set_lease(tx: &Connection, run: &RunId, owner: &str, ttl: Duration) -> Result<Lease> {
        let expires_ms = now_ms().saturating_add(ttl_ms(ttl));
        tx.prepare_cached(
            "INSERT INTO claims (run, owner, expires_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (run) DO UPDATE SET owner = excluded.owner, expires_ms = excluded.expires_ms",
        )?
        .execute(params![run.as_str(), owner, to_i64(expires_ms)])?;
        Ok(Lease {
            run: run.clone(),
            owner: owner.to_owned(),
            expires_ms,
        })
    }
}

impl RunStore for SqliteRunStore {
    fn create_run(&self, run: &RunId, graph_hash: &str) -> Result<RunInfo> {
        self.write(|tx| {
            if run_row(tx, run)?.is_some() {
                return Err(Error::RunExists(run.clone()));
            }
            let now = now_ms();
            tx.prepare_cached(
                "INSERT INTO runs (id, graph_hash, status, created_ms, updated_ms, last_seq)
                 VALUES (?1, ?2, 'running', ?3, ?3, 0)",
            )?
            .execute(params![run.as_str(), graph_hash, to_i64(now)])?;
            Ok(RunInfo {
                id: run.clone(),
                graph_hash: graph_hash.to_owned(),
                parent: None,
                status: RunStatus::Running,
                created_ms: now,
                updated_ms: now,
            })
        })
    }

    fn append<'a>(
        &'a self,
        run: &'a RunId,
        expected: Seq,
        entries: Vec<NewEntry>,
    ) -> BoxFuture<'a, Result<Seq>> {
        Box::pin(async move {
            let (tx, rx) = oneshot::channel();
            self.send(run, expected, entries, Reply::Async(tx))?;
            rx.await.map_err(|_| Error::Closed)?
        })
    }

    fn create_run_with(
        &self,
        run: &RunId,
        graph_hash: &str,
        entries: Vec<NewEntry>,
    ) -> Result<Seq> {
        self.create(run, graph_hash, entries, None)
    }

    fn create_run_claimed(
        &self,
        run: &RunId,
        graph_hash: &str,
        entries: Vec<NewEntry>,
        owner: &str,
        ttl: Duration,
    ) -> Result<Seq> {
        self.create(run, graph_hash, entries, Some((owner.to_owned(), ttl)))
    }

    fn append_blocking(&self, run: &RunId, expected: Seq, entries: Vec<NewEntry>) -> Result<Seq> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(run, expected, entries, Reply::Blocking(tx))?;
        if matches!(self.inner.appends, Appends::Inline(_) | Appends::Log(_)) {
            // Committed already (this thread led), or another appender is
            // committing it: spinning would take the CPU that leader needs.
            return rx.recv().map_err(|_| Error::Closed)?;
        }
        // A commit usually takes less than parking and waking this thread would.
        let started = Instant::now();
        while started.elapsed() < REPLY_SPIN {
            match rx.try_recv() {
                Ok(result) => return result,
                Err(mpsc::TryRecvError::Empty) => std::thread::yield_now(),
                Err(mpsc::TryRecvError::Disconnected) => return Err(Error::Closed),
            }
        }
        rx.recv().map_err(|_| Error::Closed)?
    }

    fn read_after(&self, run: &RunId, after: Seq, limit: usize) -> Result<Vec<Entry>> {
        self.caught_up()?;
        read_entries(&lock(&self.inner.conn), run, after, limit)
    }

    fn last_seq(&self, run: &RunId) -> Result<Seq> {
        self.caught_up()?;
        Ok(existing(&lock(&self.inner.conn), run)?.last_seq)
    }

    fn write_checkpoint(&self, run: &RunId, seq: Seq, state: &[u8]) -> Result<()> {
        // A run this store appends to: to the log, like its entries.
        if let Some(log) = self.log()
            && log.checkpoint(run, seq, state)?
        {
            return Ok(());
        }
        self.write(|tx| {
            let row = existing(tx, run)?;
            if seq > row.last_seq {
                return Err(Error::PastEnd {
                    run: run.clone(),
                    seq,
                    last: row.last_seq,
                });
            }
            if let Some((_, fork_seq)) = row.info.parent
                && seq < fork_seq
            {
                return Err(Error::BeforeFork {
                    run: run.clone(),
                    seq,
                    fork_seq,
                });
            }
            tx.prepare_cached(
                "INSERT OR REPLACE INTO checkpoints (run, seq, state) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![run.as_str(), to_i64(seq), state])?;
            Ok(())
        })
    }

    fn record_step(&self, run: &RunId, call: &str, attempt: u32, step: &CallStep) -> Result<()> {
        self.write(|tx| {
            existing(tx, run)?;
            tx.prepare_cached(
                "INSERT OR REPLACE INTO call_steps (run, call_id, attempt, idx, kind, key, result)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                run.as_str(),
                call,
                attempt,
                step.index,
                step.kind,
                step.key,
                step.result
            ])?;
            Ok(())
        })
    }

    fn call_step(
        &self,
        run: &RunId,
        call: &str,
        attempt: u32,
        index: u32,
    ) -> Result<Option<CallStep>> {
        let conn = lock(&self.inner.conn);
        let mut query = conn.prepare_cached(
            "SELECT kind, key, result FROM call_steps
             WHERE run = ?1 AND call_id = ?2 AND attempt = ?3 AND idx = ?4",
        )?;
        Ok(query
            .query_row(params![run.as_str(), call, attempt, index], |r| {
                Ok(CallStep {
                    index,
                    kind: r.get(0)?,
                    key: r.get(1)?,
                    result: r.get(2)?,
                })
            })
            .optional()?)
    }

    fn run_steps(&self, run: &RunId) -> Result<Vec<(String, u32, CallStep)>> {
        let conn = lock(&self.inner.conn);
        let mut query = conn.prepare_cached(
            "SELECT call_id, attempt, idx, kind, key, result FROM call_steps
             WHERE run = ?1 ORDER BY call_id, attempt, idx",
        )?;
        let steps = query
            .query_map(params![run.as_str()], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    CallStep {
                        index: r.get(2)?,
                        kind: r.get(3)?,
                        key: r.get(4)?,
                        result: r.get(5)?,
                    },
                ))
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(steps)
    }

    fn checkpoint_at_or_before(&self, run: &RunId, seq: Seq) -> Result<Option<Checkpoint>> {
        self.caught_up()?;
        let conn = lock(&self.inner.conn);
        let mut query = conn.prepare_cached(
            "SELECT seq, state FROM checkpoints WHERE run = ?1 AND seq >= ?2 AND seq <= ?3
             ORDER BY seq DESC LIMIT 1",
        )?;
        // Newest first: a fork's own checkpoint at its fork point hides
        // its parent's there.
        for (source, after, up_to) in lineage(&conn, run)?.into_iter().rev() {
            let bound = up_to.map_or(seq, |u| u.min(seq));
            if bound < after {
                continue;
            }
            let found = query
                .query_row(
                    params![source.as_str(), to_i64(after), to_i64(bound)],
                    |r| Ok((to_u64(r.get(0)?), r.get::<_, Vec<u8>>(1)?)),
                )
                .optional()?;
            if let Some((seq, state)) = found {
                return Ok(Some(Checkpoint {
                    run: run.clone(),
                    seq,
                    state,
                }));
            }
        }
        Ok(None)
    }

    fn fork(&self, parent: &RunId, at: Seq, new: &RunId) -> Result<RunInfo> {
        self.caught_up()?;
        self.write(|tx| {
            let row = existing(tx, parent)?;
            if at > row.last_seq {
                return Err(Error::PastEnd {
                    run: parent.clone(),
                    seq: at,
                    last: row.last_seq,
                });
            }
            if let Some((_, fork_seq)) = &row.info.parent
                && at < *fork_seq
            {
                return Err(Error::BeforeFork {
                    run: parent.clone(),
                    seq: at,
                    fork_seq: *fork_seq,
                });
            }
            if run_row(tx, new)?.is_some() {
                return Err(Error::RunExists(new.clone()));
            }
            let now = now_ms();
            tx.prepare_cached(
                "INSERT INTO runs (id, graph_hash, parent, fork_seq, status, created_ms, updated_ms, last_seq)
                 VALUES (?1, ?2, ?3, ?4, 'running', ?5, ?5, ?4)",
            )?
            .execute(params![
                new.as_str(),
                row.info.graph_hash,
                parent.as_str(),
                to_i64(at),
                to_i64(now)
            ])?;
            Ok(RunInfo {
                id: new.clone(),
                graph_hash: row.info.graph_hash.clone(),
                parent: Some((parent.clone(), at)),
                status: RunStatus::Running,
                created_ms: now,
                updated_ms: now,
            })
        })
    }

    fn set_status(&self, run: &RunId, status: RunStatus) -> Result<()> {
        // After the entries logged before it (in the log, or with them in
        // `write`'s transaction): a reader that sees the status sees the
        // decision that set it.
        if let Some(log) = self.log()
            && log.status(run, status)?
        {
            return Ok(());
        }
        self.write(|tx| {
            let changed = tx
                .prepare_cached("UPDATE runs SET status = ?2, updated_ms = ?3 WHERE id = ?1")?
                .execute(params![run.as_str(), status.as_str(), to_i64(now_ms())])?;
            if changed == 0 {
                return Err(Error::NoRun(run.clone()));
            }
            Ok(())
        })
    }

    fn run_info(&self, run: &RunId) -> Result<Option<RunInfo>> {
        self.caught_up()?;
        Ok(run_row(&lock(&self.inner.conn), run)?.map(|r| r.info))
    }

    fn list_runs(&self) -> Result<Vec<RunInfo>> {
        self.caught_up()?;
        let conn = lock(&self.inner.conn);
        let ids = conn
            .prepare_cached("SELECT id FROM runs ORDER BY created_ms, id")?
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut runs = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(row) = run_row(&conn, &RunId::from(id))? {
                runs.push(row.info);
            }
        }
        Ok(runs)
    }

    fn prune(&self, before_ms: u64) -> Result<Pruned> {
        self.caught_up()?;
        if let Some(log) = self.log() {
            log.forget_all();
        }
        self.write(|tx| {
            let mut old: Vec<String> = tx
                .prepare_cached(
                    "SELECT id FROM runs WHERE status IN ('done', 'failed', 'cancelled') \
                     AND updated_ms < ?1 ORDER BY created_ms DESC, id DESC",
                )?
                .query_map(params![to_i64(before_ms)], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut pruned = Pruned::default();
            // Newest first, so a fork deleted here frees its parent below.
            old.dedup();
            for id in old {
                let forks: i64 = tx
                    .prepare_cached("SELECT count(*) FROM runs WHERE parent = ?1")?
                    .query_row(params![id], |r| r.get(0))?;
                if forks > 0 {
                    pruned.kept_for_forks.push(RunId::from(id));
                    continue;
                }
                for sql in [
                    "DELETE FROM entries WHERE run = ?1",
                    "DELETE FROM checkpoints WHERE run = ?1",
                    "DELETE FROM call_steps WHERE run = ?1",
                    "DELETE FROM claims WHERE run = ?1",
                    "DELETE FROM runs WHERE id = ?1",
                ] {
                    tx.prepare_cached(sql)?.execute(params![id])?;
                }
                pruned.runs.push(RunId::from(id));
            }
            if !pruned.runs.is_empty() {
                let blobs = tx.execute(
                    "DELETE FROM blobs WHERE hash NOT IN (SELECT graph_hash FROM runs) \
                     AND NOT EXISTS (SELECT 1 FROM entries \
                                     WHERE instr(entries.payload, CAST(blobs.hash AS BLOB)) > 0)",
                    [],
                )?;
                pruned.blobs = u64::try_from(blobs).unwrap_or(0);
            }
            Ok(pruned)
        })
    }

    fn claim(&self, run: &RunId, owner: &str, ttl: Duration) -> Result<Lease> {
        if let Some(log) = self.log() {
            // The run may have been driven by a process that stopped: what
            // it logged goes to the tables first, and this store's idea of
            // where the run ends is read again.
            log.recover_gone()?;
            log.apply()?;
            log.forget(run);
        }
        self.write(|tx| {
            existing(tx, run)?;
            if let Some((holder, expires_ms)) = lease_row(tx, run)?
                && holder != owner
                && expires_ms > now_ms()
            {
                return Err(Error::Claimed {
                    run: run.clone(),
                    owner: holder,
                    expires_ms,
                });
            }
            Self::set_lease(tx, run, owner, ttl)
        })
    }

    fn renew(&self, run: &RunId, owner: &str, ttl: Duration) -> Result<Lease> {
        self.write(|tx| match lease_row(tx, run)? {
            Some((holder, _)) if holder == owner => Self::set_lease(tx, run, owner, ttl),
            _ => Err(Error::NotHeld {
                run: run.clone(),
                owner: owner.to_owned(),
            }),
        })
    }

    fn release(&self, run: &RunId, owner: &str) -> Result<()> {
        if let Some(log) = self.log() {
            // The next holder reads the tables (`write` puts this store's
            // appends there with the release).
            log.forget(run);
        }
        self.write(|tx| {
            tx.prepare_cached("DELETE FROM claims WHERE run = ?1 AND owner = ?2")?
                .execute(params![run.as_str(), owner])?;
            Ok(())
        })
    }

    fn put_blob(&self, bytes: &[u8]) -> Result<String> {
        let hash = blob_hash(bytes);
        // A blob stored already (a graph at each of its runs) costs a read,
        // not a commit.
        if lock(&self.inner.conn)
            .prepare_cached("SELECT 1 FROM blobs WHERE hash = ?1")?
            .exists([&hash])?
        {
            return Ok(hash);
        }
        self.write(|tx| {
            tx.prepare_cached("INSERT OR IGNORE INTO blobs (hash, bytes) VALUES (?1, ?2)")?
                .execute(params![hash, bytes])?;
            Ok(())
        })?;
        Ok(hash)
    }

    fn has_blob(&self, hash: &str) -> Result<bool> {
        Ok(lock(&self.inner.conn)
            .prepare_cached("SELECT 1 FROM blobs WHERE hash = ?1")?
            .exists([hash])?)
    }

    fn get_blob(&self, hash: &str) -> Result<Option<Vec<u8>>> {
        Ok(lock(&self.inner.conn)
            .prepare_cached("SELECT bytes FROM blobs WHERE hash = ?1")?
            .query_row([hash], |r| r.get(0))
            .optional()?)
    }

    fn events(&self) -> broadcast::Receiver<Arc<Entry>> {
        self.inner.events.subscribe()
    }
}
