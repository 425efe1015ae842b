//! The journal of agent-graph runs: what the run driver records before it
//! acts, so a run resumes after a crash without running a journaled node
//! again.
//!
//! A run is a sequence of entries numbered from 1 (decisions, node calls
//! started, node results, state deltas, interrupts, inputs). A writer
//! appends with the seq it expects to be last, so two hosts driving one run
//! cannot interleave. Checkpoints keep the folded state at a seq. A fork
//! starts a new run at a seq of another and shares its journal prefix
//! instead of copying it. A lease says which host drives a run. Large node
//! outputs are stored once, by content hash. Each committed entry is
//! broadcast; a [`Subscription`] catches up from the store and then follows.
//!
//! [`RunStore`] is the trait another backend (PostgreSQL, NATS JetStream)
//! implements. Two are built in, with the same behaviour (the same tests
//! run against both):
//!
//! - [`SqliteRunStore`]: its own SQLite file, for [`Durability::Sync`]
//!   (group commit of the appends that arrive while a commit is in flight)
//!   and [`Durability::Process`] (an append is one `write` to the process's
//!   append log beside the file, which a thread copies into the tables in
//!   batches; see `append_log.rs`);
//! - [`MemoryRunStore`]: process memory, for [`Durability::Off`] (nothing
//!   survives the process). An append commits on the calling thread, under
//!   a lock, in about a microsecond: no SQLite.
//!
//! [`open`] picks the one a durability asks for; use it rather than naming
//! a store, unless the caller needs what only one offers
//! ([`SqliteRunStore::commits`], [`MemoryRunStore::stored_entries`]).
//!
//! ```no_run
//! use convergio_journal::{Durability, NewEntry, RunId};
//!
//! let store = convergio_journal::open(std::path::Path::new("runs.db"), Durability::Process)?;
//! let run = RunId::from("run-1");
//! store.create_run(&run, "graph-hash")?;
//! let last = store.append_blocking(&run, 0, vec![NewEntry::new("decision", b"{}".to_vec())])?;
//! assert_eq!(last, 1);
//! assert_eq!(store.read_after(&run, 0, 10)?.len(), 1);
//! # Ok::<(), convergio_journal::Error>(())
//! ```
#![deny(missing_docs)]

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

mod append_log;
mod memory;
mod sqlite;
mod subscription;

pub use memory::MemoryRunStore;
pub use sqlite::{Durability, Options, SqliteRunStore};
pub use subscription::Subscription;

/// A boxed future, so [`RunStore`] stays usable as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The position of an entry in its run: the first entry is 1, and 0 means
/// "before the first entry".
pub type Seq = u64;

/// A run's id. Cheap to clone: the driver, the journal's entries and a
/// node call's context all hold it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunId(Arc<str>);

impl RunId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for RunId {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for RunId {
    fn from(id: &str) -> Self {
        Self(id.into())
    }
}

impl From<String> for RunId {
    fn from(id: String) -> Self {
        Self(id.into())
    }
}

impl From<RunId> for Arc<str> {
    fn from(id: RunId) -> Self {
        id.0
    }
}

impl From<RunId> for String {
    fn from(id: RunId) -> Self {
        id.0.as_ref().to_owned()
    }
}

/// An entry to append; the store gives it its seq and time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry {
    /// What happened: `decision`, `node.started`, `node.result`,
    /// `state.delta`, `interrupt`, `input`, … (borrowed for the kinds a
    /// writer names with a constant: no allocation per entry).
    pub kind: Cow<'static, str>,
    /// The node call it belongs to, if any.
    pub call_id: Option<String>,
    /// The entry's content.
    pub payload: Vec<u8>,
}

impl NewEntry {
    /// An entry of `kind` with `payload` and no call id.
    pub fn new(kind: impl Into<Cow<'static, str>>, payload: Vec<u8>) -> Self {
        Self {
            kind: kind.into(),
            call_id: None,
            payload,
        }
    }

    /// The same entry, for the node call `call_id`.
    #[must_use]
    pub fn call(mut self, call_id: impl Into<String>) -> Self {
        self.call_id = Some(call_id.into());
        self
    }

    /// The entry as committed: at `seq` of `run`, at `at_ms`.
    pub(crate) fn into_entry(self, run: &RunId, seq: Seq, at_ms: u64) -> Entry {
        Entry {
            run: run.clone(),
            seq,
            kind: self.kind,
            call_id: self.call_id,
            payload: self.payload,
            at_ms,
        }
    }
}

/// A journaled entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The run it was read from (for a fork, the fork, also for the entries
    /// it shares with its parent).
    pub run: RunId,
    /// Its position in the run, from 1.
    pub seq: Seq,
    /// What happened.
    pub kind: Cow<'static, str>,
    /// The node call it belongs to, if any.
    pub call_id: Option<String>,
    /// The entry's content.
    pub payload: Vec<u8>,
    /// When it was committed, in Unix milliseconds.
    pub at_ms: u64,
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    /// Being driven.
    Running,
    /// Waiting for input (an interrupt).
    Waiting,
    /// Finished.
    Done,
    /// Failed.
    Failed,
    /// Cancelled.
    Cancelled,
}

impl RunStatus {
    /// Whether the run is over (done, failed or cancelled).
    pub fn is_final(self) -> bool {
        matches!(self, Self::Done | Self::Failed | Self::Cancelled)
    }

    /// The status as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Waiting => "waiting",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// The status stored as `text`.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "running" => Self::Running,
            "waiting" => Self::Waiting,
            "done" => Self::Done,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }
}

/// What the store knows of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunInfo {
    /// Its id.
    pub id: RunId,
    /// The hash of the graph it runs.
    pub graph_hash: String,
    /// The run and seq it was forked from, if it is a fork.
    pub parent: Option<(RunId, Seq)>,
    /// Where it stands.
    pub status: RunStatus,
    /// When it was created, in Unix milliseconds.
    pub created_ms: u64,
    /// When it last changed (an append, a status), in Unix milliseconds.
    pub updated_ms: u64,
}

/// What [`RunStore::prune`] deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruned {
    /// The runs deleted.
    pub runs: Vec<RunId>,
    /// Runs old enough that stay because a remaining fork shares their
    /// entries.
    pub kept_for_forks: Vec<RunId>,
    /// Blobs deleted.
    pub blobs: u64,
}

/// The folded state of a run at a seq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The run it was read for.
    pub run: RunId,
    /// The last entry folded into `state`.
    pub seq: Seq,
    /// The state.
    pub state: Vec<u8>,
}

/// A step a node call recorded while it ran (a model's answer, the results
/// of tool calls), so that the same call, run again after a crash of the
/// host, reads it instead of doing it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallStep {
    /// Its place in the call's steps, from 0.
    pub index: u32,
    /// What it was, e.g. `model` or `tools`.
    pub kind: String,
    /// What the call asked for (a fingerprint of the request), so that a
    /// call that asks for something else at that step is told.
    pub key: String,
    /// What it got.
    pub result: Vec<u8>,
}

/// A claim on a run: which host drives it, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The run.
    pub run: RunId,
    /// Who holds it.
    pub owner: String,
    /// When it lapses unless renewed, in Unix milliseconds.
    pub expires_ms: u64,
}

/// Why a journal operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Another writer appended first: the run's last seq is not the one the
    /// append expected.
    #[error("run `{run}`: append expected last seq {expected}, but it is {actual}")]
    Conflict {
        /// The run.
        run: RunId,
        /// The last seq the append expected.
        expected: Seq,
        /// The run's actual last seq.
        actual: Seq,
    },
    /// No run has this id.
    #[error("no run `{0}`")]
    NoRun(RunId),
    /// A run with this id exists already.
    #[error("run `{0}` exists already")]
    RunExists(RunId),
    /// A seq past the run's last entry (a fork or checkpoint point).
    #[error("run `{run}` has no seq {seq}: its last seq is {last}")]
    PastEnd {
        /// The run.
        run: RunId,
        /// The seq asked for.
        seq: Seq,
        /// The run's last seq.
        last: Seq,
    },
    /// A checkpoint, or a fork, of a fork before its fork point.
    #[error("run `{run}` was forked at seq {fork_seq}; seq {seq} is its parent's: use the parent")]
    BeforeFork {
        /// The fork.
        run: RunId,
        /// The seq asked for.
        seq: Seq,
        /// Where it was forked.
        fork_seq: Seq,
    },
    /// Another owner holds the run's lease.
    #[error("run `{run}` is claimed by `{owner}` until {expires_ms} ms")]
    Claimed {
        /// The run.
        run: RunId,
        /// Who holds it.
        owner: String,
        /// When the lease lapses, in Unix milliseconds.
        expires_ms: u64,
    },
    /// A renewal by an owner who no longer holds the lease.
    #[error("`{owner}` does not hold the lease on run `{run}`")]
    NotHeld {
        /// The run.
        run: RunId,
        /// Who tried to renew.
        owner: String,
    },
    /// The journal file could not be opened.
    #[error("cannot open the journal: {0}")]
    Open(String),
    /// SQLite refused.
    #[error("journal database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The batch this append was part of failed to commit.
    #[error("journal commit failed: {0}")]
    Commit(String),
    /// A blocking task of the store's failed.
    #[error("a journal task failed: {0}")]
    Task(String),
    /// The store's writer is gone (the store is closing).
    #[error("the journal's writer has stopped")]
    Closed,
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where runs are journaled. Every method but [`RunStore::append`] blocks
/// on the store; call them from a blocking task in async code.
pub trait RunStore: Send + Sync + fmt::Debug {
    /// Create a run of `graph_hash`, running, with no entries.
    fn create_run(&self, run: &RunId, graph_hash: &str) -> Result<RunInfo>;

    /// Create a run of `graph_hash`, running, with its first `entries`, in
    /// one commit: no reader, and no crash, ever sees the run without them
    /// ([`Error::RunExists`] if the id is taken). Returns its last seq.
    fn create_run_with(&self, run: &RunId, graph_hash: &str, entries: Vec<NewEntry>)
    -> Result<Seq>;

    /// [`RunStore::create_run_with`], with `owner` holding the new run's
    /// lease for `ttl` from the same commit (a run's start: one commit,
    /// not two). The default creates, then claims.
    fn create_run_claimed(
        &self,
        run: &RunId,
        graph_hash: &str,
        entries: Vec<NewEntry>,
        owner: &str,
        ttl: Duration,
    ) -> Result<Seq> {
        let seq = self.create_run_with(run, graph_hash, entries)?;
        self.claim(run, owner, ttl)?;
        Ok(seq)
    }

    /// Append `entries` after seq `expected`, which must be the run's last
    /// seq ([`Error::Conflict`] otherwise). Returns the new last seq. Waits
    /// for the commit without blocking the async runtime's threads.
    fn append<'a>(
        &'a self,
        run: &'a RunId,
        expected: Seq,
        entries: Vec<NewEntry>,
    ) -> BoxFuture<'a, Result<Seq>>;

    /// [`RunStore::append`], blocking the calling thread until the commit.
    fn append_blocking(&self, run: &RunId, expected: Seq, entries: Vec<NewEntry>) -> Result<Seq>;

    /// Up to `limit` entries of `run` after seq `after`, in order (for a
    /// fork, its parent's up to the fork point, then its own).
    fn read_after(&self, run: &RunId, after: Seq, limit: usize) -> Result<Vec<Entry>>;

    /// The run's last seq (0 with no entries).
    fn last_seq(&self, run: &RunId) -> Result<Seq>;

    /// Keep `state` as the run's state at `seq` (replacing one kept there).
    fn write_checkpoint(&self, run: &RunId, seq: Seq, state: &[u8]) -> Result<()>;

    /// Whether what this store holds outlives the process (false for one
    /// in memory). A run driver writes checkpoints, which make a resume
    /// after a restart fold few decisions, only to a store that outlives
    /// the process; a fold from a store in memory reads every decision.
    fn outlives_process(&self) -> bool {
        true
    }

    /// Whether its calls may wait on I/O (a file, a server), so an async
    /// caller runs them on a blocking thread; false for a store in memory,
    /// whose calls an async caller makes in place.
    fn blocks(&self) -> bool {
        true
    }

    /// The latest checkpoint at or before `seq` (a fork also sees its
    /// parent's, up to the fork point).
    fn checkpoint_at_or_before(&self, run: &RunId, seq: Seq) -> Result<Option<Checkpoint>>;

    /// Start run `new` from `parent` at seq `at`: it reads the parent's
    /// entries up to `at`, which it shares instead of copying, and appends
    /// its own after them.
    fn fork(&self, parent: &RunId, at: Seq, new: &RunId) -> Result<RunInfo>;

    /// Set the run's status.
    fn set_status(&self, run: &RunId, status: RunStatus) -> Result<()>;

    /// What the store knows of `run`, if it exists.
    fn run_info(&self, run: &RunId) -> Result<Option<RunInfo>>;

    /// Every run, oldest first.
    fn list_runs(&self) -> Result<Vec<RunInfo>>;

    /// Claim `run` for `owner` for `ttl`. Succeeds if nobody holds it, its
    /// lease lapsed, or `owner` holds it (then it is renewed);
    /// [`Error::Claimed`] otherwise.
    fn claim(&self, run: &RunId, owner: &str, ttl: Duration) -> Result<Lease>;

    /// Extend `owner`'s lease on `run` by `ttl` from now; [`Error::NotHeld`]
    /// if it lapsed and someone else claimed the run, or it was released.
    fn renew(&self, run: &RunId, owner: &str, ttl: Duration) -> Result<Lease>;

    /// Give up `owner`'s lease on `run` (nothing if `owner` does not hold it).
    fn release(&self, run: &RunId, owner: &str) -> Result<()>;

    /// Record `step` of attempt `attempt` of call `call` of `run` (replacing
    /// a step recorded at its index). [`Error::NoRun`] if the run does not
    /// exist.
    fn record_step(&self, run: &RunId, call: &str, attempt: u32, step: &CallStep) -> Result<()>;

    /// Step `index` of attempt `attempt` of call `call` of `run`, if it was
    /// recorded.
    fn call_step(
        &self,
        run: &RunId,
        call: &str,
        attempt: u32,
        index: u32,
    ) -> Result<Option<CallStep>>;

    /// Every step recorded in `run`, as `(call, attempt, step)`, by call,
    /// attempt and index.
    fn run_steps(&self, run: &RunId) -> Result<Vec<(String, u32, CallStep)>>;

    /// Store `bytes` once, whatever the number of puts; returns its SHA-256
    /// in lowercase hex.
    fn put_blob(&self, bytes: &[u8]) -> Result<String>;

    /// The bytes stored under `hash`.
    fn get_blob(&self, hash: &str) -> Result<Option<Vec<u8>>>;

    /// Whether bytes are stored under `hash` (without reading them).
    fn has_blob(&self, hash: &str) -> Result<bool> {
        Ok(self.get_blob(hash)?.is_some())
    }

    /// Delete the runs that are over (done, failed, cancelled) and last
    /// changed before `before_ms`, with their entries, checkpoints, call
    /// steps and leases — except a run whose entries a remaining fork shares — and
    /// then the blobs that no remaining entry or run refers to.
    fn prune(&self, before_ms: u64) -> Result<Pruned>;

    /// Every entry this store commits, as it commits, for every run.
    /// Entries that another process appends to the same database are not
    /// broadcast here: once caught up, a [`Subscription`] follows this
    /// process's appends only.
    fn events(&self) -> tokio::sync::broadcast::Receiver<Arc<Entry>>;
}

/// Follow `run` from after seq `after`: the entries already journaled, then
/// each one as it commits.
pub fn subscribe(store: Arc<dyn RunStore>, run: RunId, after: Seq) -> Subscription {
    Subscription::new(store, run, after)
}

/// Open the journal `durability` asks for, with the other [`Options`] at
/// their defaults: a [`MemoryRunStore`] for [`Durability::Off`] (`path` is
/// not used), a [`SqliteRunStore`] at `path` otherwise.
pub fn open(path: &Path, durability: Durability) -> Result<Arc<dyn RunStore>> {
    open_with(
        path,
        Options {
            durability,
            ..Options::default()
        },
    )
}

/// [`open`] with `options`: a [`MemoryRunStore`] with
/// `options.broadcast_capacity` for [`Durability::Off`], a
/// [`SqliteRunStore`] at `path` otherwise.
///
/// `SqliteRunStore::open_with` itself still takes [`Durability::Off`] (an
/// in-memory SQLite database): it runs the SQL store's own code without a
/// file, which its tests and the journal benchmark use, and callers that
/// name it keep working. Each append there runs SQL, several times what an
/// append to a [`MemoryRunStore`] costs, so this function does not pick it.
pub fn open_with(path: &Path, options: Options) -> Result<Arc<dyn RunStore>> {
    Ok(match options.durability {
        Durability::Off => Arc::new(
            MemoryRunStore::with_broadcast_capacity(options.broadcast_capacity)
                .with_limit(options.memory_limit),
        ),
        Durability::Sync | Durability::Process => {
            Arc::new(SqliteRunStore::open_with(path, options)?)
        }
    })
}

/// Now, in Unix milliseconds: the clock of entry times, leases and run
/// times.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)
}

/// The key a blob is stored under: its SHA-256 in lowercase hex.
fn blob_hash(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(64);
    for b in Sha256::digest(bytes) {
        hex.push(char::from(HEX[usize::from(b >> 4)]));
        hex.push(char::from(HEX[usize::from(b & 15)]));
    }
    hex
}
