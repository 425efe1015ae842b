//! The append log in front of the SQLite journal, for
//! [`Durability::Process`](crate::Durability::Process).
//!
//! A SQLite commit in WAL mode costs tens of microseconds on a virtual
//! machine (locks on the `-shm` file, a page and its frame header written
//! and checksummed); a `write` of a few hundred bytes to a file costs a few.
//! With `process` durability an append is acknowledged once it is in the
//! kernel (it then survives `kill -9`, as a WAL commit without `fsync`
//! does), so an append here is one `write` of a checksummed record to this
//! process's log file. A thread of the log's own (the applier) copies what
//! was logged into the SQLite tables in batches, one transaction each, every
//! [`APPLY_EVERY`] while appends come, and truncates the log once it has
//! caught up. Every read of the store first applies what is still only in
//! the log, so the process reads what it appended; another process reads
//! the tables, which lag the log by at most about [`APPLY_EVERY`].
//!
//! The log lives beside the database, in `<db>-log/`: `OWNER.lock`, held
//! locked (`flock`) for the life of the store, and segments
//! `OWNER.N.log`, a new one every [`SEGMENT_BYTES`]. A store that opens
//! the journal, or that claims a run, first applies the logs of owners
//! that are gone (their lock is free and their process has exited) and
//! deletes them: after `kill -9`, nothing acknowledged is lost. Entries are
//! inserted by (run, seq) and skipped when present, so applying a log twice
//! (a crash between the tables' commit and the log's truncation) changes
//! nothing.
//!
//! Checkpoints and statuses of the runs a store appends to go to the log
//! too, in order with their entries (a status reaches the tables after
//! the entries that set it), so a run driven here never waits for SQLite.
//!
//! A record is `len: u32 LE | crc32(body): u32 LE | body`, the body a type
//! byte and the run, then for an append (0) `first seq: u64 | at_ms: u64 |
//! count: u32 | count × (kind | call id + 1, 0 for none | payload)`, for a
//! checkpoint (1) `seq: u64 | state`, for a status (2) `status | at_ms:
//! u64`; integers little-endian, each string and payload prefixed with its
//! length as a `u32`. A record cut short or with a wrong checksum ends the
//! log (the tail of a write the process did not finish).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::broadcast;

use crate::{Entry, Error, NewEntry, Result, RunId, RunStatus, Seq, now_ms};

/// How often the applier copies the log into the tables while appends
/// come: the most another process's reads lag this one's appends.
pub(crate) const APPLY_EVERY: Duration = Duration::from_millis(2);

/// A segment this large is followed by a new one, so the log of a store
/// that never catches up (appends without pause) is still deleted piece by
/// piece.
const SEGMENT_BYTES: u64 = 8 << 20;

/// The logs of the stores open in this process, by directory: a store
/// reads what another store of this process on the same file appended
/// (tests and embedders open one journal twice to play two hosts).
static OPEN: Mutex<Vec<(PathBuf, std::sync::Weak<Shared>)>> = Mutex::new(Vec::new());

/// The append log of one store: see the module's doc.
#[derive(Debug)]
pub(crate) struct AppendLog {
    shared: Arc<Shared>,
    applier: Option<std::thread::JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    owner: String,
    /// The journal's writer connection.
    conn: Arc<Mutex<Connection>>,
    segment: Mutex<Segment>,
    /// Logged, not yet in the tables, in log order.
    pending: Mutex<Vec<Logged>>,
    /// Wakes the applier when `pending` stops being empty, and at close.
    wake: Condvar,
    /// Held by whoever applies (the applier, or a reader catching up).
    applying: Mutex<()>,
    commits: Arc<AtomicU64>,
    closing: AtomicBool,
    /// Locked for the life of the store: says the owner is alive.
    _lock: File,
}

/// The segment appends go to, and what this store knows of runs' ends.
#[derive(Debug)]
struct Segment {
    file: File,
    n: u64,
    /// Bytes in `file`.
    written: u64,
    /// The oldest segment not yet deleted.
    oldest: u64,
    /// Where each run this store appended to since it last claimed it
    /// ends: where the next append must start.
    tails: HashMap<RunId, Tail>,
}

/// Where a run's journal ends, and where its own entries start.
#[derive(Debug, Clone, Copy)]
struct Tail {
    last: Seq,
    /// A fork's fork seq (0 for other runs): no checkpoint before it.
    floor: Seq,
}

/// What one record holds.
#[derive(Debug)]
enum Item {
    /// An append's entries.
    Entries(Vec<Arc<Entry>>),
    /// A checkpoint of a run.
    Checkpoint {
        run: RunId,
        seq: Seq,
        state: Vec<u8>,
    },
    /// A run's new status.
    Status {
        run: RunId,
        status: RunStatus,
        at_ms: u64,
    },
}

impl Item {
    fn run(&self) -> Option<&RunId> {
        match self {
            Self::Entries(entries) => entries.first().map(|e| &e.run),
            Self::Checkpoint { run, .. } | Self::Status { run, .. } => Some(run),
        }
    }
}

/// One logged record: what it holds and where it ends.
#[derive(Debug)]
struct Logged {
    item: Item,
    segment: u64,
    end: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The log directory of the database at `db`.
pub(crate) fn log_dir(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push("-log");
    db.with_file_name(name)
}

fn io_error(what: &str, path: &Path, e: &std::io::Error) -> Error {
    Error::Commit(format!("{what} {}: {e}", path.display()))
}

impl AppendLog {
    /// Open this store's log beside `db`, after applying (with `conn`) the
    /// logs of owners that are gone.
    pub(crate) fn open(
        db: &Path,
        conn: Arc<Mutex<Connection>>,
        commits: Arc<AtomicU64>,
    ) -> Result<Self> {
        let dir = log_dir(db);
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::Open(format!("cannot create {}: {e}", dir.display())))?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let owner = format!("{}-{:x}{nanos:x}", std::process::id(), now_ms());
        // The lock first: a segment without a held lock is a gone owner's.
        let lock_path = dir.join(format!("{owner}.lock"));
        let lock_file = File::create(&lock_path)
            .map_err(|e| Error::Open(format!("cannot create {}: {e}", lock_path.display())))?;
        lock_file
            .try_lock()
            .map_err(|e| Error::Open(format!("cannot lock {}: {e}", lock_path.display())))?;
        recover(&dir, &owner, &conn)?;
        let file = open_segment(&dir, &owner, 0)?;
        let shared = Arc::new(Shared {
            dir,
            owner,
            conn,
            segment: Mutex::new(Segment {
                file,
                n: 0,
                written: 0,
                oldest: 0,
                tails: HashMap::new(),
            }),
            pending: Mutex::new(Vec::new()),
            wake: Condvar::new(),
            applying: Mutex::new(()),
            commits,
            closing: AtomicBool::new(false),
            _lock: lock_file,
        });
        {
            let mut open = lock(&OPEN);
            open.retain(|(_, log)| log.strong_count() > 0);
            open.push((shared.dir.clone(), Arc::downgrade(&shared)));
        }
        let applier = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("convergio-journal-applier".into())
                .spawn(move || shared.run_applier())
                .map_err(|e| Error::Open(format!("cannot start the log's applier: {e}")))?
        };
        Ok(Self {
            shared,
            applier: Some(applier),
        })
    }

    /// Log `entries` after `expected` in `run`, publish them on `events`;
    /// the run's new last seq.
    pub(crate) fn append(
        &self,
        run: &RunId,
        expected: Seq,
        entries: Vec<NewEntry>,
        events: &broadcast::Sender<Arc<Entry>>,
    ) -> Result<Seq> {
        let shared = &*self.shared;
        // A run this store has not appended to: its end is in the tables
        // (read before the segment's lock: reading may apply the log).
        let known = lock(&shared.segment).tails.get(run).copied();
        let stored = match known {
            Some(_) => None,
            None => shared.stored_tail(run)?,
        };
        let mut segment = lock(&shared.segment);
        let Some(tail) = segment.tails.get(run).copied().or(stored) else {
            return Err(Error::NoRun(run.clone()));
        };
        let actual = tail.last;
        if actual != expected {
            return Err(Error::Conflict {
                run: run.clone(),
                expected,
                actual,
            });
        }
        let at_ms = now_ms();
        let entries: Vec<Arc<Entry>> = (actual + 1..)
            .zip(entries)
            .map(|(seq, e)| Arc::new(e.into_entry(run, seq, at_ms)))
            .collect();
        let last = actual + entries.len() as u64;
        let record = encode(run, actual + 1, at_ms, &entries);
        shared.write_record(&mut segment, &record, Item::Entries(entries.clone()))?;
        segment.tails.insert(
            run.clone(),
            Tail {
                last,
                floor: tail.floor,
            },
        );
        for entry in entries {
            // No subscriber is not an error.
            let _ = events.send(entry);
        }
        Ok(last)
    }

    /// Log a checkpoint of `run` at `seq`, when this store knows where the
    /// run ends (it appended to it): whether it did; if not, the caller
    /// writes it to the tables.
    pub(crate) fn checkpoint(&self, run: &RunId, seq: Seq, state: &[u8]) -> Result<bool> {
        let shared = &*self.shared;
        let mut segment = lock(&shared.segment);
        let Some(tail) = segment.tails.get(run).copied() else {
            return Ok(false);
        };
        if seq > tail.last {
            return Err(Error::PastEnd {
                run: run.clone(),
                seq,
                last: tail.last,
            });
        }
        if seq < tail.floor {
            return Err(Error::BeforeFork {
                run: run.clone(),
                seq,
                fork_seq: tail.floor,
            });
        }
        let mut record = header(TYPE_CHECKPOINT, run);
        record.extend_from_slice(&seq.to_le_bytes());
        put_bytes(&mut record, state);
        let item = Item::Checkpoint {
            run: run.clone(),
            seq,
            state: state.to_vec(),
        };
        shared.write_record(&mut segment, &seal(record), item)?;
        Ok(true)
    }

    /// Log `run`'s new status, when this store knows the run (it appended
    /// to it): whether it did; if not, the caller writes it to the tables.
    /// Logged after the run's entries, it reaches the tables after them.
    pub(crate) fn status(&self, run: &RunId, status: RunStatus) -> Result<bool> {
        let shared = &*self.shared;
        let mut segment = lock(&shared.segment);
        if !segment.tails.contains_key(run) {
            return Ok(false);
        }
        let at_ms = now_ms();
        let mut record = header(TYPE_STATUS, run);
        put_bytes(&mut record, status.as_str().as_bytes());
        record.extend_from_slice(&at_ms.to_le_bytes());
        let item = Item::Status {
            run: run.clone(),
            status,
            at_ms,
        };
        shared.write_record(&mut segment, &seal(record), item)?;
        Ok(true)
    }

    /// Copy what is only in the log into the tables, now: this store's
    /// log and those of the other stores of this process on the same file.
    pub(crate) fn apply(&self) -> Result<()> {
        let siblings: Vec<Arc<Shared>> = lock(&OPEN)
            .iter()
            .filter(|(dir, _)| *dir == self.shared.dir)
            .filter_map(|(_, log)| log.upgrade())
            .collect();
        for log in siblings {
            log.apply()?;
        }
        Ok(())
    }

    /// Run `step` in one `IMMEDIATE` transaction on the journal's writer
    /// connection, after inserting what is only in this store's log in the
    /// same transaction: a write costs one commit, and whoever reads it
    /// also reads the appends before it.
    pub(crate) fn write<T>(
        &self,
        step: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        self.shared.write(step)
    }

    /// Apply the logs of owners that are gone (before a claim: the run may
    /// have been driven by one of them).
    pub(crate) fn recover_gone(&self) -> Result<()> {
        recover(&self.shared.dir, &self.shared.owner, &self.shared.conn)
    }

    /// Forget where `run` ends: the next append reads it from the tables
    /// (after a claim or a release, when another host may have appended).
    pub(crate) fn forget(&self, run: &RunId) {
        lock(&self.shared.segment).tails.remove(run);
    }

    /// Forget where every run ends.
    pub(crate) fn forget_all(&self) {
        lock(&self.shared.segment).tails.clear();
    }
}

impl Drop for AppendLog {
    fn drop(&mut self) {
        {
            // Under the queue's lock, which the applier holds from its
            // check of `closing` until it waits: set between the two, the
            // flag and its wake-up were missed and the join below never
            // returned (a process hung at exit).
            let _pending = lock(&self.shared.pending);
            self.shared.closing.store(true, Ordering::Release);
        }
        self.shared.wake.notify_one();
        if let Some(applier) = self.applier.take() {
            let _ = applier.join();
        }
        // What is left goes to the tables; the log is deleted only if
        // nothing is left (else the next open applies it).
        match self.shared.apply() {
            Ok(()) if lock(&self.shared.pending).is_empty() => self.shared.delete_all(),
            Ok(()) => {}
            Err(e) => {
                tracing::warn!(error = %e, dir = %self.shared.dir.display(), "the journal's log could not be applied at close; the next open applies it");
            }
        }
    }
}

impl Shared {
    fn segment_path(&self, n: u64) -> PathBuf {
        self.dir.join(format!("{}.{n}.log", self.owner))
    }

    /// Where `run` ends in the tables; none if it does not exist.
    fn stored_tail(&self, run: &RunId) -> Result<Option<Tail>> {
        let conn = lock(&self.conn);
        let tail: Option<(i64, i64)> = conn
            .prepare_cached(
                "SELECT COALESCE((SELECT MAX(seq) FROM entries WHERE run = ?1), last_seq),
                        COALESCE(fork_seq, 0)
                 FROM runs WHERE id = ?1",
            )?
            .query_row([run.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        Ok(tail.map(|(last, floor)| Tail {
            last: u64::try_from(last).unwrap_or(0),
            floor: u64::try_from(floor).unwrap_or(0),
        }))
    }

    /// Write `record` (of `item`) to the log and queue `item` for the
    /// tables, waking the applier if the queue was empty.
    fn write_record(&self, segment: &mut Segment, record: &[u8], item: Item) -> Result<()> {
        if let Err(e) = segment.file.write_all(record) {
            // Nothing of a failed write may stay: the next record starts
            // where this one did.
            let _ = segment.file.set_len(segment.written);
            return Err(io_error(
                "cannot write the journal's log",
                &self.segment_path(segment.n),
                &e,
            ));
        }
        segment.written += record.len() as u64;
        let logged = Logged {
            item,
            segment: segment.n,
            end: segment.written,
        };
        let first = {
            let mut pending = lock(&self.pending);
            pending.push(logged);
            pending.len() == 1
        };
        if first {
            self.wake.notify_one();
        }
        if segment.written >= SEGMENT_BYTES {
            self.rotate(segment)?;
        }
        Ok(())
    }

    /// Start segment `n + 1`.
    fn rotate(&self, segment: &mut Segment) -> Result<()> {
        let next = segment.n + 1;
        segment.file = open_segment(&self.dir, &self.owner, next)?;
        segment.n = next;
        segment.written = 0;
        Ok(())
    }

    fn run_applier(&self) {
        loop {
            {
                let mut pending = lock(&self.pending);
                while pending.is_empty() && !self.closing.load(Ordering::Acquire) {
                    #[cfg(test)]
                    tests::pause_before_waiting();
                    pending = self
                        .wake
                        .wait(pending)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
            }
            if self.closing.load(Ordering::Acquire) {
                return;
            }
            // Let a batch gather: one transaction for every append of the
            // interval.
            std::thread::sleep(APPLY_EVERY);
            if let Err(e) = self.apply() {
                tracing::warn!(error = %e, "cannot copy the journal's log into its tables; retrying");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// Copy the pending appends into the tables in one transaction, then
    /// drop the log that holds only applied records.
    fn apply(&self) -> Result<()> {
        let _applying = lock(&self.applying);
        if lock(&self.pending).is_empty() {
            return Ok(());
        }
        self.write_applying(|_| Ok(()))
    }

    /// [`AppendLog::write`].
    fn write<T>(&self, step: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>) -> Result<T> {
        let _applying = lock(&self.applying);
        self.write_applying(step)
    }

    /// [`AppendLog::write`], with `applying` held.
    fn write_applying<T>(
        &self,
        step: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let batch = std::mem::take(&mut *lock(&self.pending));
        let outcome = {
            let mut conn = lock(&self.conn);
            transaction(&mut conn, |tx| {
                let conflicts = insert(tx, batch.iter().map(|l| &l.item))?;
                Ok((conflicts, step(tx)?))
            })
        };
        match outcome {
            Ok((conflicts, value)) => {
                self.commits.fetch_add(1, Ordering::Relaxed);
                if let Some(last) = batch.last() {
                    self.applied(last.segment, last.end);
                }
                if conflicts > 0 {
                    tracing::warn!(
                        conflicts,
                        "journal entries were already in the tables: another host appended to a run this one drove (its lease lapsed)"
                    );
                    self.segment_forget_tails(&batch);
                }
                Ok(value)
            }
            Err(e) => {
                // Back in front, to be applied first next time.
                let mut pending = lock(&self.pending);
                let later = std::mem::replace(&mut *pending, batch);
                pending.extend(later);
                Err(e)
            }
        }
    }

    fn segment_forget_tails(&self, batch: &[Logged]) {
        let mut segment = lock(&self.segment);
        for logged in batch {
            if let Some(run) = logged.item.run() {
                segment.tails.remove(run);
            }
        }
    }

    /// Everything up to `end` of segment `n` is in the tables: delete the
    /// segments before it, and empty it if nothing was logged after.
    fn applied(&self, n: u64, end: u64) {
        let mut segment = lock(&self.segment);
        while segment.oldest < n {
            let _ = std::fs::remove_file(self.segment_path(segment.oldest));
            segment.oldest += 1;
        }
        if segment.n == n && segment.written == end {
            match segment.file.set_len(0) {
                Ok(()) => segment.written = 0,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot truncate the journal's log; it is applied again (harmlessly) after a crash");
                }
            }
        }
    }

    /// Delete this owner's files (everything is in the tables).
    fn delete_all(&self) {
        let segment = lock(&self.segment);
        for n in segment.oldest..=segment.n {
            let _ = std::fs::remove_file(self.segment_path(n));
        }
        let _ = std::fs::remove_file(self.dir.join(format!("{}.lock", self.owner)));
    }
}

fn open_segment(dir: &Path, owner: &str, n: u64) -> Result<File> {
    let path = dir.join(format!("{owner}.{n}.log"));
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| Error::Open(format!("cannot create {}: {e}", path.display())))
}

/// `step` in one `IMMEDIATE` transaction.
fn transaction<T>(
    conn: &mut Connection,
    step: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>,
) -> Result<T> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let value = step(&tx)?;
    tx.commit()?;
    Ok(value)
}

/// Write `items` to the tables: entries skipped when present (a log
/// applied twice), and nothing for runs that no longer exist (pruned); how
/// many entries were present with another payload (another host's).
fn insert<'a>(tx: &Connection, items: impl Iterator<Item = &'a Item>) -> Result<u64> {
    let mut conflicts = 0;
    for item in items {
        match item {
            Item::Entries(entries) => conflicts += insert_entries(tx, entries)?,
            Item::Checkpoint { run, seq, state } => {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO checkpoints (run, seq, state)
                     SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM runs WHERE id = ?1)",
                )?
                .execute(params![
                    run.as_str(),
                    i64::try_from(*seq).unwrap_or(i64::MAX),
                    state
                ])?;
            }
            Item::Status { run, status, at_ms } => {
                tx.prepare_cached("UPDATE runs SET status = ?2, updated_ms = ?3 WHERE id = ?1")?
                    .execute(params![
                        run.as_str(),
                        status.as_str(),
                        i64::try_from(*at_ms).unwrap_or(i64::MAX)
                    ])?;
            }
        }
    }
    Ok(conflicts)
}

fn insert_entries(tx: &Connection, entries: &[Arc<Entry>]) -> Result<u64> {
    let mut conflicts = 0;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT OR IGNORE INTO entries (run, seq, kind, call_id, payload, at_ms)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE EXISTS (SELECT 1 FROM runs WHERE id = ?1)",
        )?;
        let mut exists = tx.prepare_cached(
            "SELECT 1 FROM entries WHERE run = ?1 AND seq = ?2 AND payload IS NOT ?3",
        )?;
        for e in entries {
            let seq = i64::try_from(e.seq).unwrap_or(i64::MAX);
            let at = i64::try_from(e.at_ms).unwrap_or(i64::MAX);
            let n = stmt.execute(params![
                e.run.as_str(),
                seq,
                e.kind,
                e.call_id,
                e.payload,
                at
            ])?;
            // Present with the same payload: a log applied twice. With
            // another: another host's (counted, for the warning).
            if n == 0
                && exists
                    .query_row(params![e.run.as_str(), seq, e.payload], |_| Ok(()))
                    .optional()?
                    .is_some()
            {
                conflicts += 1;
            }
        }
    }
    Ok(conflicts)
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// The record types (the body's first byte).
const TYPE_ENTRIES: u8 = 0;
const TYPE_CHECKPOINT: u8 = 1;
const TYPE_STATUS: u8 = 2;

/// The start of a record of `kind` for `run`: room for its length and
/// checksum, its type, its run.
fn header(kind: u8, run: &RunId) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&[0; 8]);
    out.push(kind);
    put_bytes(&mut out, run.0.as_bytes());
    out
}

/// A record with its length and checksum filled in.
fn seal(mut out: Vec<u8>) -> Vec<u8> {
    let body = u32::try_from(out.len() - 8).unwrap_or(u32::MAX);
    let crc = crc32fast::hash(&out[8..]);
    out[..4].copy_from_slice(&body.to_le_bytes());
    out[4..8].copy_from_slice(&crc.to_le_bytes());
    out
}

/// One append's record.
fn encode(run: &RunId, first: Seq, at_ms: u64, entries: &[Arc<Entry>]) -> Vec<u8> {
    let size: usize = entries
        .iter()
        .map(|e| 12 + e.kind.len() + e.call_id.as_ref().map_or(0, String::len) + e.payload.len())
        .sum();
    let mut out = header(TYPE_ENTRIES, run);
    out.reserve(20 + size);
    out.extend_from_slice(&first.to_le_bytes());
    out.extend_from_slice(&at_ms.to_le_bytes());
    out.extend_from_slice(&u32::try_from(entries.len()).unwrap_or(0).to_le_bytes());
    for e in entries {
        put_bytes(&mut out, e.kind.as_bytes());
        match &e.call_id {
            Some(id) => {
                let len = u32::try_from(id.len()).unwrap_or(u32::MAX - 1) + 1;
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(id.as_bytes());
            }
            None => out.extend_from_slice(&0u32.to_le_bytes()),
        }
        put_bytes(&mut out, &e.payload);
    }
    seal(out)
}

/// Reads a record's body.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    fn text(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }
}

/// What one record's body holds.
fn decode(body: &[u8]) -> Option<Item> {
    let mut r = Reader(body);
    let kind = *r.take(1)?.first()?;
    let run = RunId::from(r.text()?);
    let item = match kind {
        TYPE_ENTRIES => Item::Entries(decode_entries(&mut r, run)?),
        TYPE_CHECKPOINT => Item::Checkpoint {
            run,
            seq: r.u64()?,
            state: r.bytes()?.to_vec(),
        },
        TYPE_STATUS => Item::Status {
            run,
            status: RunStatus::parse(&r.text()?)?,
            at_ms: r.u64()?,
        },
        _ => return None,
    };
    r.0.is_empty().then_some(item)
}

/// An append's entries, after its run.
fn decode_entries(r: &mut Reader<'_>, run: RunId) -> Option<Vec<Arc<Entry>>> {
    let first = r.u64()?;
    let at_ms = r.u64()?;
    let count = r.u32()?;
    let mut entries = Vec::with_capacity(count.min(1024) as usize);
    for i in 0..u64::from(count) {
        let kind = r.text()?;
        let call_id = match r.u32()? {
            0 => None,
            n => Some(String::from_utf8(r.take(n as usize - 1)?.to_vec()).ok()?),
        };
        let payload = r.bytes()?.to_vec();
        let entry = NewEntry {
            kind: kind.into(),
            call_id,
            payload,
        };
        entries.push(Arc::new(entry.into_entry(&run, first + i, at_ms)));
    }
    Some(entries)
}

/// What a segment's complete records hold, in order.
fn read_segment(path: &Path) -> std::io::Result<Vec<Item>> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    let mut items = Vec::new();
    let mut rest = bytes.as_slice();
    while rest.len() >= 8 {
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        let Some(body) = rest.get(8..8 + len) else {
            break; // cut short: the end of what was written
        };
        if crc32fast::hash(body) != crc {
            break;
        }
        let Some(item) = decode(body) else { break };
        items.push(item);
        rest = &rest[8 + len..];
    }
    if !rest.is_empty() {
        tracing::warn!(path = %path.display(), bytes = rest.len(), "the journal's log ends with an incomplete record (a write the process did not finish); it was never acknowledged and is dropped");
    }
    Ok(items)
}

/// Whether process `pid` of this host is running (a zombie, killed but
/// not yet reaped, is not).
fn alive(pid: &str) -> bool {
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // `pid (comm) state …`: the state follows the last `)`.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| !matches!(state, 'Z' | 'X')),
        Err(_) => false,
    }
}

/// Apply and delete the logs in `dir` of owners other than `me` that are
/// gone: their lock is free and their process has exited.
fn recover(dir: &Path, me: &str, conn: &Mutex<Connection>) -> Result<()> {
    let read = std::fs::read_dir(dir)
        .map_err(|e| Error::Open(format!("cannot read {}: {e}", dir.display())))?;
    let mut owners: HashMap<String, Vec<(u64, PathBuf)>> = HashMap::new();
    for item in read.flatten() {
        let name = item.file_name().to_string_lossy().into_owned();
        if let Some(owner) = name.strip_suffix(".lock") {
            owners.entry(owner.to_owned()).or_default();
        } else if let Some(stem) = name.strip_suffix(".log")
            && let Some((owner, n)) = stem.rsplit_once('.')
            && let Ok(n) = n.parse::<u64>()
        {
            owners
                .entry(owner.to_owned())
                .or_default()
                .push((n, item.path()));
        }
    }
    for (owner, mut segments) in owners {
        if owner == me {
            continue;
        }
        let lock_path = dir.join(format!("{owner}.lock"));
        let Ok(lock_file) = File::create(&lock_path) else {
            continue;
        };
        let pid = owner.split('-').next().unwrap_or_default();
        // Another store of this process holds its lock while it lives.
        if lock_file.try_lock().is_err() || (alive(pid) && pid != std::process::id().to_string()) {
            continue; // its owner is alive
        }
        segments.sort();
        let mut entries = Vec::new();
        for (_, path) in &segments {
            entries
                .extend(read_segment(path).map_err(|e| io_error("cannot read the log", path, &e))?);
        }
        if !entries.is_empty() {
            let mut conn = lock(conn);
            transaction(&mut conn, |tx| insert(tx, entries.iter()))?;
            tracing::info!(
                records = entries.len(),
                owner,
                "applied the journal log of a process that stopped"
            );
        }
        for (_, path) in &segments {
            let _ = std::fs::remove_file(path);
        }
        let _ = std::fs::remove_file(&lock_path);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RunStore, SqliteRunStore};

    fn entry(run: &str, seq: Seq, payload: &str) -> Arc<Entry> {
        Arc::new(Entry {
            run: RunId::from(run),
            seq,
            kind: "decision".into(),
            call_id: seq.is_multiple_of(2).then(|| format!("call-{seq}")),
            payload: payload.as_bytes().to_vec(),
            at_ms: 7,
        })
    }

    /// The log of a process that died is applied by the next store that
    /// opens the journal, up to its last complete record; a record cut
    /// short (a write the kill interrupted) is dropped, and the files are
    /// deleted.
    #[test]
    fn a_gone_owners_log_is_applied_up_to_its_last_whole_record() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("runs.db");
        let run = RunId::from("r");
        {
            let store = SqliteRunStore::open(&db, crate::Durability::Process).unwrap();
            store.create_run(&run, "g").unwrap();
        }
        // No process has this pid (above the kernel's maximum).
        let owner = "4194305-dead";
        let logs = log_dir(&db);
        let mut bytes = encode(&run, 1, 7, &[entry("r", 1, "one"), entry("r", 2, "two")]);
        bytes.extend(encode(&run, 3, 7, &[entry("r", 3, "three")]));
        let mut checkpoint = header(TYPE_CHECKPOINT, &run);
        checkpoint.extend_from_slice(&2u64.to_le_bytes());
        put_bytes(&mut checkpoint, b"state at 2");
        bytes.extend(seal(checkpoint));
        let mut status = header(TYPE_STATUS, &run);
        put_bytes(&mut status, b"done");
        status.extend_from_slice(&9u64.to_le_bytes());
        bytes.extend(seal(status));
        let torn = encode(&run, 4, 7, &[entry("r", 4, "four")]);
        bytes.extend(&torn[..torn.len() - 3]);
        std::fs::write(logs.join(format!("{owner}.0.log")), &bytes).unwrap();
        std::fs::write(logs.join(format!("{owner}.lock")), b"").unwrap();

        let store = SqliteRunStore::open(&db, crate::Durability::Process).unwrap();
        let entries = store.read_after(&run, 0, 10).unwrap();
        let payloads: Vec<_> = entries
            .iter()
            .map(|e| String::from_utf8(e.payload.clone()).unwrap())
            .collect();
        assert_eq!(payloads, ["one", "two", "three"]);
        assert_eq!(entries[1].call_id.as_deref(), Some("call-2"));
        assert_eq!(entries[0].call_id, None);
        assert!(!logs.join(format!("{owner}.0.log")).exists());
        assert!(!logs.join(format!("{owner}.lock")).exists());
        // The journal goes on after the last whole record.
        assert_eq!(store.last_seq(&run).unwrap(), 3);
        // The checkpoint and the status were applied too.
        let checkpoint = store.checkpoint_at_or_before(&run, 3).unwrap().unwrap();
        assert_eq!(
            (checkpoint.seq, checkpoint.state.as_slice()),
            (2, &b"state at 2"[..])
        );
        assert_eq!(
            store.run_info(&run).unwrap().unwrap().status,
            RunStatus::Done
        );
    }

    /// A live owner's log is left alone: its lock is held.
    #[test]
    fn a_live_owners_log_is_not_applied() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("runs.db");
        let a = SqliteRunStore::open(&db, crate::Durability::Process).unwrap();
        let run = RunId::from("r");
        a.create_run(&run, "g").unwrap();
        let owner = a.log().unwrap().shared.owner.clone();
        let logs = log_dir(&db);
        // Recovery by another store skips the files of `a`.
        recover(&logs, "someone-else", &a.log().unwrap().shared.conn).unwrap();
        assert!(logs.join(format!("{owner}.lock")).exists());
        assert!(logs.join(format!("{owner}.0.log")).exists());
        drop(a);
        // Closed cleanly: everything applied, the files deleted.
        assert_eq!(std::fs::read_dir(&logs).unwrap().count(), 0);
    }

    /// Two stores of one process on one file (two hosts in a test): what
    /// one appended, checkpointed or marked is read by the other at once.
    #[test]
    fn a_store_reads_what_another_store_of_its_process_logged() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("runs.db");
        let a = SqliteRunStore::open(&db, crate::Durability::Process).unwrap();
        let b = SqliteRunStore::open(&db, crate::Durability::Process).unwrap();
        let run = RunId::from("r");
        a.create_run(&run, "g").unwrap();
        for seq in 0..3 {
            a.append_blocking(&run, seq, vec![NewEntry::new("decision", vec![7; 10])])
                .unwrap();
        }
        a.write_checkpoint(&run, 3, b"at 3").unwrap();
        a.set_status(&run, RunStatus::Waiting).unwrap();
        assert_eq!(b.last_seq(&run).unwrap(), 3);
        assert_eq!(b.read_after(&run, 0, 10).unwrap().len(), 3);
        assert_eq!(b.checkpoint_at_or_before(&run, 3).unwrap().unwrap().seq, 3);
        assert_eq!(
            b.run_info(&run).unwrap().unwrap().status,
            RunStatus::Waiting
        );
        // `b` goes on where `a` stopped; `a`, claiming the run again,
        // reads where it ends now.
        b.claim(&run, "b", Duration::from_secs(30)).unwrap();
        b.append_blocking(&run, 3, vec![NewEntry::new("decision", vec![])])
            .unwrap();
        b.release(&run, "b").unwrap();
        a.claim(&run, "a", Duration::from_secs(30)).unwrap();
        assert!(matches!(
            a.append_blocking(&run, 3, vec![]),
            Err(Error::Conflict { actual: 4, .. })
        ));
        a.append_blocking(&run, 4, vec![NewEntry::new("decision", vec![])])
            .unwrap();
        assert_eq!(b.last_seq(&run).unwrap(), 5);
    }

    /// How long an applier pauses between its check for work and its wait
    /// (µs), to test what happens in between.
    static PAUSE_BEFORE_WAITING_US: AtomicU64 = AtomicU64::new(0);

    pub(super) fn pause_before_waiting() {
        let us = PAUSE_BEFORE_WAITING_US.load(Ordering::Relaxed);
        if us > 0 {
            std::thread::sleep(Duration::from_micros(us));
        }
    }

    /// A store closed while its applier is between its check for work and
    /// its wait still closes: the close once set its flag and woke the
    /// applier in that gap, the applier slept on, and the process hung at
    /// exit joining it.
    #[test]
    fn a_store_closes_while_its_applier_is_about_to_wait() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("runs.db");
        let (closed, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let store = SqliteRunStore::open(&db, crate::Durability::Process).unwrap();
            PAUSE_BEFORE_WAITING_US.store(200_000, Ordering::Relaxed);
            // An append wakes the applier; it applies within a few
            // milliseconds, checks for more work and pauses: the close
            // comes in the pause.
            let run = RunId::from("r");
            store.create_run(&run, "g").unwrap();
            store
                .append_blocking(&run, 0, vec![NewEntry::new("decision", vec![1])])
                .unwrap();
            std::thread::sleep(Duration::from_millis(100));
            drop(store);
            let _ = closed.send(());
        });
        let outcome = finished.recv_timeout(Duration::from_secs(30));
        PAUSE_BEFORE_WAITING_US.store(0, Ordering::Relaxed);
        outcome.expect("closing the store hung: its applier missed the close");
    }

    /// An append is read back at once by this process, and by another
    /// connection (another process) once the applier has run.
    #[test]
    fn appends_reach_the_tables() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("runs.db");
        let store = SqliteRunStore::open(&db, crate::Durability::Process).unwrap();
        let run = RunId::from("r");
        store.create_run(&run, "g").unwrap();
        let other = Connection::open(&db).unwrap();
        let count = |conn: &Connection| -> i64 {
            conn.query_row("SELECT COUNT(*) FROM entries", [], |r| r.get(0))
                .unwrap()
        };
        for seq in 0..10 {
            store
                .append_blocking(&run, seq, vec![NewEntry::new("decision", vec![1; 100])])
                .unwrap();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while count(&other) < 10 {
            assert!(
                std::time::Instant::now() < deadline,
                "the applier never copied the log"
            );
            std::thread::sleep(APPLY_EVERY);
        }
        assert_eq!(store.read_after(&run, 0, 100).unwrap().len(), 10);
        // A stale expected seq is refused, from what the store knows.
        assert!(matches!(
            store.append_blocking(&run, 3, vec![NewEntry::new("decision", vec![])]),
            Err(Error::Conflict {
                expected: 3,
                actual: 10,
                ..
            })
        ));
        assert!(matches!(
            store.append_blocking(&RunId::from("nope"), 0, vec![]),
            Err(Error::NoRun(_))
        ));
    }
}
