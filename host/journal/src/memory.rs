//! [`RunStore`] in process memory: what [`crate::Durability::Off`] asks
//! for (nothing survives the process), without SQLite and without a writer
//! thread.
//!
//! One lock guards the store. An append checks its expected seq, numbers
//! its entries, keeps them and broadcasts them under that lock, on the
//! calling thread: nothing waits for another thread, the future of
//! [`RunStore::append`] is ready at its first poll, and each run's entries
//! are broadcast in seq order. An entry is kept as the `Arc<Entry>` the
//! broadcast sends, so its payload is moved in once and never copied on
//! the way; reads copy, after taking the `Arc`s they need under the lock
//! and releasing it, so a long read does not hold appenders up.
//!
//! A run keeps only its own entries. A fork keeps its parent's id and fork
//! seq, as [`crate::SqliteRunStore`] does, and reading it walks the chain
//! root first: nothing is copied, and forks of forks work.
//!
//! The store is bounded: once its runs hold more than its limit
//! ([`MEMORY_LIMIT`] by default, [`MemoryRunStore::with_limit`]), the runs
//! that finished longest ago are dropped, as [`RunStore::prune`] would
//! drop them, until they hold no more. A long-lived process whose runs do
//! not survive it would otherwise keep every run it ever drove.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::broadcast;

use crate::{
    BoxFuture, CallStep, Checkpoint, Entry, Error, Lease, NewEntry, Pruned, Result, RunId, RunInfo,
    RunStatus, RunStore, Seq, blob_hash, now_ms, ttl_ms,
};

/// Committed entries the broadcast keeps by default, as
/// [`crate::Options::default`] does.
const BROADCAST_CAPACITY: usize = 4096;

/// The bytes a store's runs may hold before those that finished longest
/// ago are dropped, by default: 64 MiB.
pub const MEMORY_LIMIT: u64 = 64 << 20;

/// What an entry costs besides its payload, kind and call id: its
/// allocation, the `Arc` and the run's slot for it.
const ENTRY_OVERHEAD: u64 = 96;

/// A [`RunStore`] kept in process memory, for runs that need not survive
/// the process ([`crate::Durability::Off`]). It behaves as
/// [`crate::SqliteRunStore`] does (the same errors, seq rules, forks,
/// checkpoints, leases, blobs and broadcast), and an append commits on the
/// calling thread. Cheap to clone; clones share the store.
///
/// ```
/// use convergio_journal::{MemoryRunStore, NewEntry, RunId, RunStore};
///
/// let store = MemoryRunStore::new();
/// let run = RunId::from("run-1");
/// store.create_run(&run, "graph-hash")?;
/// store.append_blocking(&run, 0, vec![NewEntry::new("decision", b"{}".to_vec())])?;
/// store.fork(&run, 1, &RunId::from("run-2"))?;
/// assert_eq!(store.read_after(&RunId::from("run-2"), 0, 10)?.len(), 1);
/// assert_eq!(store.stored_entries(), 1);
/// # Ok::<(), convergio_journal::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct MemoryRunStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    events: broadcast::Sender<Arc<Entry>>,
}

#[derive(Debug)]
struct State {
    runs: HashMap<RunId, Run>,
    /// Leases: run → (owner, expiry in Unix ms).
    claims: HashMap<RunId, (String, u64)>,
    blobs: HashMap<String, Arc<[u8]>>,
    /// Entries kept, all runs together.
    stored: u64,
    /// Bytes the runs hold, all together (see [`Run::bytes`]).
    bytes: u64,
    /// Above this many [`State::bytes`], finished runs are dropped.
    limit: u64,
    /// Runs in the order they finished: the first is dropped first. A run
    /// here may since have been pruned, or run again (a resume): it is
    /// skipped then.
    finished: VecDeque<RunId>,
}

#[derive(Debug)]
struct Run {
    info: RunInfo,
    /// Its own entries, seqs `fork_seq + 1 ..= last_seq`.
    entries: Vec<Arc<Entry>>,
    /// Its own checkpoints (a fork's from its fork point on).
    checkpoints: BTreeMap<Seq, Arc<[u8]>>,
    /// The steps its node calls recorded, by call, attempt and index.
    steps: BTreeMap<(String, u32, u32), CallStep>,
    /// What its entries, checkpoints and steps take, about.
    bytes: u64,
    /// Runs forked from it: it is not dropped while any remains.
    forks: u32,
}

impl Run {
    fn new(info: RunInfo) -> Self {
        Self {
            info,
            entries: Vec::new(),
            checkpoints: BTreeMap::new(),
            steps: BTreeMap::new(),
            bytes: 0,
            forks: 0,
        }
    }

    /// The seq its own entries follow: its fork point, 0 for a root run.
    fn fork_seq(&self) -> Seq {
        self.info.parent.as_ref().map_or(0, |(_, at)| *at)
    }

    fn last_seq(&self) -> Seq {
        self.fork_seq() + self.entries.len() as u64
    }
}

impl State {
    fn new(limit: u64) -> Self {
        Self {
            runs: HashMap::new(),
            claims: HashMap::new(),
            blobs: HashMap::new(),
            stored: 0,
            bytes: 0,
            limit,
            finished: VecDeque::new(),
        }
    }

    fn run(&self, id: &RunId) -> Result<&Run> {
        self.runs.get(id).ok_or_else(|| Error::NoRun(id.clone()))
    }

    /// Drop `id` with what it holds and its lease.
    fn remove(&mut self, id: &RunId) -> Option<Run> {
        let run = self.runs.remove(id)?;
        self.stored -= run.entries.len() as u64;
        self.bytes -= run.bytes;
        self.claims.remove(id);
        if let Some((parent, _)) = &run.info.parent
            && let Some(parent) = self.runs.get_mut(parent)
        {
            parent.forks = parent.forks.saturating_sub(1);
        }
        Some(run)
    }

    /// Drop the runs that finished longest ago while the runs hold more
    /// than the limit. A run a fork shares entries with is kept, in its
    /// place in the order.
    fn shed(&mut self) {
        let mut shared = Vec::new();
        while self.bytes > self.limit {
            let Some(id) = self.finished.pop_front() else {
                break;
            };
            match self.runs.get(&id) {
                Some(run) if run.info.status.is_final() && run.forks > 0 => shared.push(id),
                Some(run) if run.info.status.is_final() => {
                    self.remove(&id);
                }
                // Pruned already, or running again.
                _ => {}
            }
        }
        for id in shared.into_iter().rev() {
            self.finished.push_front(id);
        }
    }

    /// The runs whose entries make up `id`'s journal, root first: each with
    /// the last seq it contributes (`None`: to its end). Each contributes
    /// the seqs after its own fork point.
    fn lineage(&self, id: &RunId) -> Result<Vec<(&Run, Option<Seq>)>> {
        let mut chain = Vec::new();
        let mut current = self.run(id)?;
        let mut up_to = None;
        loop {
            chain.push((current, up_to));
            let Some((parent, at)) = &current.info.parent else {
                break;
            };
            up_to = Some(*at);
            current = self.run(parent)?;
        }
        chain.reverse();
        Ok(chain)
    }
}

impl Default for MemoryRunStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryRunStore {
    /// An empty store whose broadcast keeps 4096 entries for subscribers
    /// that lag (one that lags further re-reads from the store).
    pub fn new() -> Self {
        Self::with_broadcast_capacity(BROADCAST_CAPACITY)
    }

    /// An empty store whose broadcast keeps `capacity` entries (at least 1).
    pub fn with_broadcast_capacity(capacity: usize) -> Self {
        let (events, _) = broadcast::channel(capacity.max(1));
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State::new(MEMORY_LIMIT)),
                events,
            }),
        }
    }

    /// This store, dropping the runs that finished longest ago once its
    /// runs hold more than `bytes` (see the module's documentation).
    #[must_use]
    pub fn with_limit(self, bytes: u64) -> Self {
        let mut state = self.lock();
        state.limit = bytes;
        state.shed();
        drop(state);
        self
    }

    /// About how many bytes the runs in the store hold.
    pub fn stored_bytes(&self) -> u64 {
        self.lock().bytes
    }

    /// Follow `run` from after seq `after` (see [`crate::subscribe`]).
    pub fn subscribe(&self, run: RunId, after: Seq) -> crate::Subscription {
        crate::subscribe(Arc::new(self.clone()), run, after)
    }

    /// The entries the store keeps, all runs together: what it holds
    /// itself, without the prefixes forks share.
    pub fn stored_entries(&self) -> u64 {
        self.lock().stored
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while the lock is held but a failed allocation,
        // which aborts; a poisoned lock is used as it is.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn commit(&self, run: &RunId, expected: Seq, entries: Vec<NewEntry>) -> Result<Seq> {
        self.commit_in(&mut self.lock(), run, expected, entries)
    }

    /// [`Self::commit`] under the store's lock, held by the caller.
    fn commit_in(
        &self,
        state: &mut State,
        run: &RunId,
        expected: Seq,
        entries: Vec<NewEntry>,
    ) -> Result<Seq> {
        let State {
            runs,
            stored,
            bytes,
            ..
        } = state;
        let Some(row) = runs.get_mut(run) else {
            return Err(Error::NoRun(run.clone()));
        };
        let actual = row.last_seq();
        if actual != expected {
            return Err(Error::Conflict {
                run: run.clone(),
                expected,
                actual,
            });
        }
        let now = now_ms();
        let count = entries.len() as u64;
        let mut added = 0;
        row.entries.reserve(entries.len());
        for (seq, e) in (actual + 1..).zip(entries) {
            let entry = Arc::new(e.into_entry(run, seq, now));
            added += entry_bytes(&entry);
            // No subscriber is not an error.
            let _ = self.inner.events.send(Arc::clone(&entry));
            row.entries.push(entry);
        }
        row.info.updated_ms = now;
        row.bytes += added;
        *bytes += added;
        *stored += count;
        if *bytes > state.limit {
            state.shed();
        }
        Ok(actual + count)
    }

    fn set_lease(state: &mut State, run: &RunId, owner: &str, ttl: Duration) -> Lease {
        let expires_ms = now_ms().saturating_add(ttl_ms(ttl));
        state
            .claims
            .insert(run.clone(), (owner.to_owned(), expires_ms));
        Lease {
            run: run.clone(),
            owner: owner.to_owned(),
            expires_ms,
        }
    }
}

/// What `entry` takes in memory, about.
fn entry_bytes(entry: &Entry) -> u64 {
    (entry.payload.len() + entry.kind.len() + entry.call_id.as_ref().map_or(0, String::len)) as u64
        + ENTRY_OVERHEAD
}

/// What `step` takes in memory, about.
fn step_bytes(call: &str, step: &CallStep) -> u64 {
    (call.len() + step.kind.len() + step.key.len() + step.result.len()) as u64 + ENTRY_OVERHEAD
}

/// `entry` as read through `run` (a fork reads its parent's entries as its
/// own).
fn copy_as(entry: &Entry, run: &RunId) -> Entry {
    Entry {
        run: run.clone(),
        seq: entry.seq,
        kind: entry.kind.clone(),
        call_id: entry.call_id.clone(),
        payload: entry.payload.clone(),
        at_ms: entry.at_ms,
    }
}

impl RunStore for MemoryRunStore {
    fn create_run(&self, run: &RunId, graph_hash: &str) -> Result<RunInfo> {
        let mut state = self.lock();
        if state.runs.contains_key(run) {
            return Err(Error::RunExists(run.clone()));
        }
        let now = now_ms();
        let info = RunInfo {
            id: run.clone(),
            graph_hash: graph_hash.to_owned(),
            parent: None,
            status: RunStatus::Running,
            created_ms: now,
            updated_ms: now,
        };
        state.runs.insert(run.clone(), Run::new(info.clone()));
        Ok(info)
    }

    fn create_run_with(
        &self,
        run: &RunId,
        graph_hash: &str,
        entries: Vec<NewEntry>,
    ) -> Result<Seq> {
        let mut state = self.lock();
        if state.runs.contains_key(run) {
            return Err(Error::RunExists(run.clone()));
        }
        let now = now_ms();
        let info = RunInfo {
            id: run.clone(),
            graph_hash: graph_hash.to_owned(),
            parent: None,
            status: RunStatus::Running,
            created_ms: now,
            updated_ms: now,
        };
        state.runs.insert(run.clone(), Run::new(info));
        self.commit_in(&mut state, run, 0, entries)
    }

    fn append<'a>(
        &'a self,
        run: &'a RunId,
        expected: Seq,
        entries: Vec<NewEntry>,
    ) -> BoxFuture<'a, Result<Seq>> {
        // Commits at the first poll, which returns it.
        Box::pin(async move { self.commit(run, expected, entries) })
    }

    fn append_blocking(&self, run: &RunId, expected: Seq, entries: Vec<NewEntry>) -> Result<Seq> {
        self.commit(run, expected, entries)
    }

    fn read_after(&self, run: &RunId, after: Seq, limit: usize) -> Result<Vec<Entry>> {
        let shared: Vec<Arc<Entry>> = {
            let state = self.lock();
            let mut shared = Vec::new();
            for (source, up_to) in state.lineage(run)? {
                let remaining = limit.saturating_sub(shared.len());
                if remaining == 0 {
                    break;
                }
                let from = source.fork_seq();
                let up_to = up_to.unwrap_or_else(|| source.last_seq());
                if up_to <= after {
                    continue;
                }
                // Indices into `source.entries`: seq `from + 1` is index 0.
                let start = usize::try_from(after.max(from) - from).unwrap_or(usize::MAX);
                let end = usize::try_from(up_to - from).unwrap_or(usize::MAX);
                let own = source.entries.get(start..end).unwrap_or_default();
                shared.extend(own.iter().take(remaining).cloned());
            }
            shared
        };
        Ok(shared.iter().map(|e| copy_as(e, run)).collect())
    }

    fn last_seq(&self, run: &RunId) -> Result<Seq> {
        Ok(self.lock().run(run)?.last_seq())
    }

    fn outlives_process(&self) -> bool {
        false
    }

    fn blocks(&self) -> bool {
        false
    }

    fn write_checkpoint(&self, run: &RunId, seq: Seq, state: &[u8]) -> Result<()> {
        let kept: Arc<[u8]> = Arc::from(state);
        let mut guard = self.lock();
        let Some(row) = guard.runs.get_mut(run) else {
            return Err(Error::NoRun(run.clone()));
        };
        let last = row.last_seq();
        if seq > last {
            return Err(Error::PastEnd {
                run: run.clone(),
                seq,
                last,
            });
        }
        if row.info.parent.is_some() && seq < row.fork_seq() {
            return Err(Error::BeforeFork {
                run: run.clone(),
                seq,
                fork_seq: row.fork_seq(),
            });
        }
        let added = kept.len() as u64 + ENTRY_OVERHEAD;
        let replaced = row
            .checkpoints
            .insert(seq, kept)
            .map_or(0, |old| old.len() as u64 + ENTRY_OVERHEAD);
        row.bytes = row.bytes + added - replaced;
        guard.bytes = guard.bytes + added - replaced;
        Ok(())
    }

    fn record_step(&self, run: &RunId, call: &str, attempt: u32, step: &CallStep) -> Result<()> {
        let mut guard = self.lock();
        let Some(row) = guard.runs.get_mut(run) else {
            return Err(Error::NoRun(run.clone()));
        };
        let added = step_bytes(call, step);
        let replaced = row
            .steps
            .insert((call.to_owned(), attempt, step.index), step.clone())
            .map_or(0, |old| step_bytes(call, &old));
        row.bytes = row.bytes + added - replaced;
        guard.bytes = guard.bytes + added - replaced;
        Ok(())
    }

    fn call_step(
        &self,
        run: &RunId,
        call: &str,
        attempt: u32,
        index: u32,
    ) -> Result<Option<CallStep>> {
        let guard = self.lock();
        Ok(guard
            .runs
            .get(run)
            .and_then(|row| row.steps.get(&(call.to_owned(), attempt, index)))
            .cloned())
    }

    fn run_steps(&self, run: &RunId) -> Result<Vec<(String, u32, CallStep)>> {
        let guard = self.lock();
        Ok(guard
            .runs
            .get(run)
            .map(|row| {
                row.steps
                    .iter()
                    .map(|((call, attempt, _), step)| (call.clone(), *attempt, step.clone()))
                    .collect()
            })
            .unwrap_or_default())
    }

    fn checkpoint_at_or_before(&self, run: &RunId, seq: Seq) -> Result<Option<Checkpoint>> {
        let found = {
            let state = self.lock();
            let mut found = None;
            // Newest first: a fork's own checkpoint at its fork point hides
            // its parent's there.
            for (source, up_to) in state.lineage(run)?.into_iter().rev() {
                let after = source.fork_seq();
                let bound = up_to.map_or(seq, |u| u.min(seq));
                if bound < after {
                    continue;
                }
                if let Some((&at, kept)) = source.checkpoints.range(after..=bound).next_back() {
                    found = Some((at, Arc::clone(kept)));
                    break;
                }
            }
            found
        };
        Ok(found.map(|(seq, state)| Checkpoint {
            run: run.clone(),
            seq,
            state: state.to_vec(),
        }))
    }

    fn fork(&self, parent: &RunId, at: Seq, new: &RunId) -> Result<RunInfo> {
        let mut state = self.lock();
        let row = state.run(parent)?;
        let last = row.last_seq();
        if at > last {
            return Err(Error::PastEnd {
                run: parent.clone(),
                seq: at,
                last,
            });
        }
        if row.info.parent.is_some() && at < row.fork_seq() {
            return Err(Error::BeforeFork {
                run: parent.clone(),
                seq: at,
                fork_seq: row.fork_seq(),
            });
        }
        let graph_hash = row.info.graph_hash.clone();
        if state.runs.contains_key(new) {
            return Err(Error::RunExists(new.clone()));
        }
        let now = now_ms();
        let info = RunInfo {
            id: new.clone(),
            graph_hash,
            parent: Some((parent.clone(), at)),
            status: RunStatus::Running,
            created_ms: now,
            updated_ms: now,
        };
        state.runs.insert(new.clone(), Run::new(info.clone()));
        if let Some(row) = state.runs.get_mut(parent) {
            row.forks += 1;
        }
        Ok(info)
    }

    fn set_status(&self, run: &RunId, status: RunStatus) -> Result<()> {
        let mut state = self.lock();
        let Some(row) = state.runs.get_mut(run) else {
            return Err(Error::NoRun(run.clone()));
        };
        let finishes = status.is_final() && !row.info.status.is_final();
        row.info.status = status;
        row.info.updated_ms = now_ms();
        if finishes {
            state.finished.push_back(run.clone());
            state.shed();
        }
        Ok(())
    }

    fn run_info(&self, run: &RunId) -> Result<Option<RunInfo>> {
        Ok(self.lock().runs.get(run).map(|r| r.info.clone()))
    }

    fn list_runs(&self) -> Result<Vec<RunInfo>> {
        let mut runs: Vec<RunInfo> = self.lock().runs.values().map(|r| r.info.clone()).collect();
        // The order of `SqliteRunStore`'s `ORDER BY created_ms, id`.
        runs.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        Ok(runs)
    }

    fn claim(&self, run: &RunId, owner: &str, ttl: Duration) -> Result<Lease> {
        let mut state = self.lock();
        state.run(run)?;
        if let Some((holder, expires_ms)) = state.claims.get(run)
            && holder != owner
            && *expires_ms > now_ms()
        {
            return Err(Error::Claimed {
                run: run.clone(),
                owner: holder.clone(),
                expires_ms: *expires_ms,
            });
        }
        Ok(Self::set_lease(&mut state, run, owner, ttl))
    }

    fn renew(&self, run: &RunId, owner: &str, ttl: Duration) -> Result<Lease> {
        let mut state = self.lock();
        match state.claims.get(run) {
            Some((holder, _)) if holder == owner => {
                Ok(Self::set_lease(&mut state, run, owner, ttl))
            }
            _ => Err(Error::NotHeld {
                run: run.clone(),
                owner: owner.to_owned(),
            }),
        }
    }

    fn release(&self, run: &RunId, owner: &str) -> Result<()> {
        let mut state = self.lock();
        if state
            .claims
            .get(run)
            .is_some_and(|(holder, _)| holder == owner)
        {
            state.claims.remove(run);
        }
        Ok(())
    }

    fn put_blob(&self, bytes: &[u8]) -> Result<String> {
        let hash = blob_hash(bytes);
        if self.lock().blobs.contains_key(&hash) {
            return Ok(hash);
        }
        // Copied without the lock: blobs are the large outputs.
        let kept: Arc<[u8]> = Arc::from(bytes);
        self.lock().blobs.entry(hash.clone()).or_insert(kept);
        Ok(hash)
    }

    fn get_blob(&self, hash: &str) -> Result<Option<Vec<u8>>> {
        let kept = self.lock().blobs.get(hash).cloned();
        Ok(kept.map(|bytes| bytes.to_vec()))
    }

    fn has_blob(&self, hash: &str) -> Result<bool> {
        Ok(self.lock().blobs.contains_key(hash))
    }

    fn prune(&self, before_ms: u64) -> Result<Pruned> {
        let mut state = self.lock();
        let mut old: Vec<(u64, RunId)> = state
            .runs
            .values()
            .filter(|r| r.info.status.is_final() && r.info.updated_ms < before_ms)
            .map(|r| (r.info.created_ms, r.info.id.clone()))
            .collect();
        // Newest first, so a fork deleted here frees its parent below.
        old.sort_by(|a, b| b.cmp(a));
        let mut pruned = Pruned::default();
        for (_, id) in old {
            if state.runs.get(&id).is_some_and(|r| r.forks > 0) {
                pruned.kept_for_forks.push(id);
                continue;
            }
            state.remove(&id);
            pruned.runs.push(id);
        }
        if !pruned.runs.is_empty() {
            let mut referenced: std::collections::HashSet<String> = state
                .runs
                .values()
                .map(|r| r.info.graph_hash.clone())
                .collect();
            let hashes: Vec<String> = state.blobs.keys().cloned().collect();
            for hash in hashes {
                if referenced.contains(&hash) {
                    continue;
                }
                let used = state.runs.values().any(|r| {
                    r.entries
                        .iter()
                        .any(|e| e.payload.windows(hash.len()).any(|w| w == hash.as_bytes()))
                });
                if used {
                    referenced.insert(hash);
                } else {
                    state.blobs.remove(&hash);
                    pruned.blobs += 1;
                }
            }
        }
        Ok(pruned)
    }

    fn events(&self) -> broadcast::Receiver<Arc<Entry>> {
        self.inner.events.subscribe()
    }
}
