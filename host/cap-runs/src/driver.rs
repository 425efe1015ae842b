//! [`Runs`]: start, drive, resume, answer, cancel, inspect and fork runs.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use convergio_graph::engine::{CallResult, Decision, Input, JsonText, Status, Target, graph_hash};
use convergio_graph::model::Graph;
use convergio_graph::plan::Plan;
use convergio_graph::snapshot::{Op, Patch, Pointer, apply};
use convergio_journal::{BoxFuture, CallStep, RunId, RunInfo, RunStatus, RunStore, Seq};
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::AbortHandle;

use crate::journal::{self, Checkpoint, EntryKind, Measured, Step};
use crate::{
    CallReport, CallUsage, Error, NodeCall, NodeExecutor, Result, StepFailure, StepFunction,
    StepRequest,
};

/// How a [`Runs`] behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// A checkpoint (the whole snapshot) every this many steps, so a resume
    /// folds at most this many decisions.
    pub checkpoint_every: u64,
    /// Who drives runs, for leases: `host:pid` by default, so a run whose
    /// driver died on this host can be taken over at once.
    pub owner: String,
    /// How long a lease lasts without renewal.
    pub lease_ttl: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            checkpoint_every: 64,
            owner: format!("{}:{}", hostname(), std::process::id()),
            lease_ttl: Duration::from_secs(30),
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// A run as it stands: what the store knows and its folded snapshot.
#[derive(Debug, Clone)]
pub struct RunView {
    /// The store's record.
    pub info: RunInfo,
    /// The snapshot (see docs/graphs.md, "Snapshots").
    pub snapshot: Value,
    /// Steps folded into it.
    pub version: u64,
    /// The journal seq it is at.
    pub seq: Seq,
}

impl RunView {
    /// The run's status as its last decision gave it.
    pub fn status(&self) -> &str {
        self.snapshot
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("running")
    }
}

/// The run driver. Cheap to clone; clones drive the same runs.
#[derive(Debug, Clone)]
pub struct Runs {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    store: Arc<dyn RunStore>,
    steps: Arc<dyn StepFunction>,
    exec: Arc<dyn NodeExecutor>,
    options: Options,
    /// Runs driven by this process now, and how to reach their driver.
    live: Mutex<HashMap<RunId, mpsc::UnboundedSender<Command>>>,
    /// Graphs by hash, compiled.
    graphs: Mutex<HashMap<String, Arc<GraphDoc>>>,
    /// One queue per plugin.
    queues: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Notified after every status the drivers record.
    status_changed: tokio::sync::Notify,
    /// The status of each run driven here, for waiters in this process:
    /// sent when it changes, not at every step.
    statuses: Mutex<HashMap<RunId, tokio::sync::watch::Sender<Status>>>,
}

/// A graph ready to start runs of ([`Runs::prepare`]).
#[derive(Debug, Clone)]
pub struct PreparedGraph(Arc<GraphDoc>);

impl PreparedGraph {
    /// SHA-256 (lowercase hex) of the graph's canonical JSON: its id in the
    /// journal.
    pub fn hash(&self) -> &str {
        &self.0.hash
    }
}

#[derive(Debug)]
struct GraphDoc {
    hash: String,
    text: String,
    plan: Plan,
}

#[derive(Debug)]
struct Command {
    input: Input,
    reply: oneshot::Sender<Result<()>>,
}

/// A run being driven: its graph, folded snapshot and journal position.
struct Live {
    run: RunId,
    graph: Arc<GraphDoc>,
    /// The snapshot, but for `pending`: read it with [`Live::snapshot`].
    snap: Value,
    /// Journaled patches not applied to `snap` yet. They are applied when
    /// something reads the snapshot (a checkpoint, an orchestrator that
    /// asks for it, an agent's call) or when [`PENDING_MAX`] wait, so a
    /// step does not parse and apply its patches only for a copy no one
    /// reads before the run ends.
    pending: Vec<Patch>,
    version: u64,
    seq: Seq,
    /// Send the snapshot with the next step (the first of a session).
    send_snapshot: bool,
    /// The status last written to the store.
    stored: RunStatus,
    /// The status last published to this process's waiters
    /// ([`Shared::watch_status`]), if any: a step that leaves it as it
    /// was publishes nothing.
    published: Option<RunStatus>,
}

type Done = (String, CallResult, Measured);

/// Patches a run's driver keeps unapplied at most (see [`Live::pending`]).
const PENDING_MAX: usize = 4096;

impl Live {
    /// The snapshot at `version`: the pending patches applied first.
    fn snapshot(&mut self) -> &Value {
        for patch in self.pending.drain(..) {
            if let Err(e) = apply(&mut self.snap, &patch) {
                tracing::error!(run = %self.run, error = %e, "a journaled patch does not apply");
            }
        }
        &self.snap
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Journal(convergio_journal::Error::Task(e.to_string())))?
}

/// A [`Runs`] that does not keep it alive (for a holder that the driver
/// itself reaches, such as the runtime whose plugins it calls).
#[derive(Debug, Clone, Default)]
pub struct WeakRuns(std::sync::Weak<Shared>);

impl WeakRuns {
    /// The driver, while a [`Runs`] of it exists.
    pub fn upgrade(&self) -> Option<Runs> {
        self.0.upgrade().map(|shared| Runs { shared })
    }
}

impl Runs {
    /// A handle that does not keep this driver alive.
    pub fn downgrade(&self) -> WeakRuns {
        WeakRuns(Arc::downgrade(&self.shared))
    }

    /// A driver over `store`, deciding with `steps` and executing with
    /// `exec`.
    pub fn new(
        store: Arc<dyn RunStore>,
        steps: Arc<dyn StepFunction>,
        exec: Arc<dyn NodeExecutor>,
        options: Options,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                store,
                steps,
                exec,
                options,
                live: Mutex::new(HashMap::new()),
                graphs: Mutex::new(HashMap::new()),
                queues: Mutex::new(HashMap::new()),
                status_changed: tokio::sync::Notify::new(),
                statuses: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The journal.
    pub fn store(&self) -> &Arc<dyn RunStore> {
        &self.shared.store
    }

    /// Start a run of `graph` with `input` (an object of state keys), as
    /// `id` (a new unique id when none). Returns once the first step is
    /// journaled; the run goes on in the background ([`Runs::wait`]).
    pub async fn start(&self, graph: &Graph, input: Value, id: Option<String>) -> Result<RunId> {
        let prepared = self.prepare(graph)?;
        self.start_prepared(&prepared, input, id).await
    }

    /// `graph` checked, compiled, written in its canonical form and hashed,
    /// once, for [`Runs::start_prepared`]: what starting many runs of one
    /// graph (a server's, `graph run --repeat`) should not repeat per run.
    pub fn prepare(&self, graph: &Graph) -> Result<PreparedGraph> {
        let text = serde_json::to_string(graph).map_err(|e| Error::InvalidGraph(e.to_string()))?;
        Ok(PreparedGraph(self.shared.graph_doc(text)?))
    }

    /// [`Runs::start`] with a graph from [`Runs::prepare`].
    pub async fn start_prepared(
        &self,
        graph: &PreparedGraph,
        input: Value,
        id: Option<String>,
    ) -> Result<RunId> {
        let run = RunId::from(id.unwrap_or_else(new_run_id));
        self.shared
            .start_run(run, Arc::clone(&graph.0), input)
            .await
    }

    /// Wait until `run` finishes or waits for input; its status then.
    pub async fn wait(&self, run: &RunId) -> Result<Status> {
        self.shared.wait(run, false).await
    }

    /// Wait until `run` finishes (a run waiting for input goes on waiting).
    pub async fn wait_final(&self, run: &RunId) -> Result<Status> {
        self.shared.wait(run, true).await
    }

    /// Answer interrupt `interrupt` of `run` (validated against its
    /// schema); the run goes on.
    pub async fn answer(&self, run: &RunId, interrupt: &str, value: Value) -> Result<()> {
        let input = Input::Answer {
            interrupt: interrupt.to_owned(),
            value,
        };
        Shared::command(&self.shared, run, input).await
    }

    /// Cancel `run`: its calls in flight are stopped and recorded as
    /// cancelled.
    pub async fn cancel(&self, run: &RunId, reason: &str) -> Result<()> {
        let input = Input::Cancel {
            reason: reason.to_owned(),
        };
        Shared::command(&self.shared, run, input).await
    }

    /// Drive `run` again after a restart: the calls that were in flight run
    /// again with their idempotency keys. Nothing if this process drives it
    /// already.
    pub async fn resume(&self, run: &RunId) -> Result<()> {
        Shared::command(&self.shared, run, Input::Resume).await
    }

    /// Resume every run the journal says is running and no one drives;
    /// their ids.
    pub async fn resume_all(&self) -> Result<Vec<RunId>> {
        let runs = self
            .shared
            .on_store(move |store| Ok(store.list_runs()?))
            .await?;
        let mut resumed = Vec::new();
        for info in runs {
            if info.status != RunStatus::Running || lock(&self.shared.live).contains_key(&info.id) {
                continue;
            }
            match self.resume(&info.id).await {
                Ok(()) => resumed.push(info.id),
                // Listed as running but over in its journal (a crash between
                // the last decision and the status): the status is repaired.
                Err(Error::Status { status, .. }) => {
                    tracing::info!(run = %info.id, %status, "the run was over; its listed status is repaired");
                }
                Err(e) => tracing::warn!(run = %info.id, error = %e, "cannot resume the run"),
            }
        }
        Ok(resumed)
    }

    /// Delete the runs that are over and last changed more than `age` ago,
    /// with what only they use (see [`prune`]).
    pub async fn prune(&self, age: Duration) -> Result<convergio_journal::Pruned> {
        self.shared.on_store(move |store| prune(store, age)).await
    }

    /// Every run, oldest first.
    pub async fn list(&self) -> Result<Vec<RunInfo>> {
        self.shared
            .on_store(move |store| Ok(store.list_runs()?))
            .await
    }

    /// `run`'s record in the journal (no fold of its entries).
    pub async fn info(&self, run: &RunId) -> Result<RunInfo> {
        let run = run.clone();
        self.shared
            .on_store(move |store| store.run_info(&run)?.ok_or(Error::NoRun(run)))
            .await
    }

    /// `run` as it stands.
    pub async fn view(&self, run: &RunId) -> Result<RunView> {
        let run = run.clone();
        self.shared
            .on_store(move |store| fold(store, &run, None))
            .await
    }

    /// `run` as it stood after the step at seq `seq`.
    pub async fn view_at(&self, run: &RunId, seq: Seq) -> Result<RunView> {
        let run = run.clone();
        self.shared
            .on_store(move |store| fold(store, &run, Some(seq)))
            .await
    }

    /// Every step of `run`: the points it can be inspected at and forked
    /// from.
    pub async fn steps(&self, run: &RunId) -> Result<Vec<Step>> {
        let run = run.clone();
        self.shared.on_store(move |store| steps(store, &run)).await
    }

    /// Start a new run from `run` as it stood after the step at `seq`, with
    /// `patch` (an object of state keys) written over its state. The fork
    /// shares the parent's journal up to `seq`; calls in flight at that
    /// point run again (under the fork's own idempotency keys).
    pub async fn fork(&self, run: &RunId, seq: Seq, patch: Option<Value>) -> Result<RunId> {
        Shared::fork(&self.shared, run, seq, patch, None).await
    }

    /// [`Runs::fork`], with a step a node call recorded changed: "what if
    /// the model had said…". The call must be in flight at `seq`; its
    /// recorded steps up to `step.index` are copied into the fork, that
    /// one with its result changed, so the call, dispatched again in the
    /// fork, reads them back and goes on live after the changed step.
    pub async fn fork_step(
        &self,
        run: &RunId,
        seq: Seq,
        patch: Option<Value>,
        step: StepPatch,
    ) -> Result<RunId> {
        Shared::fork(&self.shared, run, seq, patch, Some(step)).await
    }
}

/// A recorded step to change in a fork ([`Runs::fork_step`]).
#[derive(Debug, Clone, PartialEq)]
pub struct StepPatch {
    /// The node call (`node`, `node@2`, `node[3]`).
    pub call: String,
    /// The step's index among the call's recorded steps, from 0.
    pub index: u32,
    /// The step's new result: JSON merged over the recorded one when both
    /// are objects (`{"content": "Lyon"}` changes only a model answer's
    /// text), else put in its place.
    pub result: Value,
}

impl StepPatch {
    /// The recorded steps of the call, as the fork records them: those
    /// before `index` as they were, step `index` changed. `recorded` reads
    /// step `i` of the call's attempt.
    fn steps(
        &self,
        parent: &RunId,
        attempt: u32,
        recorded: impl Fn(u32) -> Result<Option<CallStep>>,
    ) -> Result<Vec<CallStep>> {
        let mut steps = Vec::new();
        for i in 0..=self.index {
            let Some(step) = recorded(i)? else {
                return Err(Error::BadInput {
                    run: parent.clone(),
                    message: format!(
                        "call `{}` (attempt {attempt}) recorded {i} step(s), so it has no step {}; `graph status {parent}` lists what each call recorded",
                        self.call, self.index
                    ),
                });
            };
            steps.push(step);
        }
        if let Some(last) = steps.last_mut() {
            let old: Value = serde_json::from_slice(&last.result).unwrap_or(Value::Null);
            let new = match (old, &self.result) {
                (Value::Object(mut old), Value::Object(new)) => {
                    old.extend(new.clone());
                    Value::Object(old)
                }
                (_, new) => new.clone(),
            };
            last.result = match new {
                // A text result stays text (a recorded step is any bytes).
                Value::String(text) => text.into_bytes(),
                other => serde_json::to_vec(&other).unwrap_or_default(),
            };
        }
        Ok(steps)
    }
}

fn new_run_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let ms = convergio_journal::now_ms();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("run-{ms:x}-{:x}-{n}", std::process::id())
}

#[derive(Deserialize)]
struct StatusOnly {
    status: Status,
}

impl Shared {
    /// `f` on the store: on a blocking thread for a store whose calls may
    /// wait on I/O, in place for one in memory (a hand-off to another
    /// thread costs more than its calls).
    async fn on_store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn RunStore) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        if !self.store.blocks() {
            return f(&*self.store);
        }
        let store = Arc::clone(&self.store);
        blocking(move || f(&*store)).await
    }

    fn graph_doc(&self, text: String) -> Result<Arc<GraphDoc>> {
        let hash = graph_hash(&text);
        if let Some(doc) = lock(&self.graphs).get(&hash) {
            return Ok(Arc::clone(doc));
        }
        let graph: Graph =
            serde_json::from_str(&text).map_err(|e| Error::InvalidGraph(e.to_string()))?;
        convergio_graph::engine::check(&graph).map_err(|e| Error::InvalidGraph(e.join("; ")))?;
        let plan = Plan::compile(&graph).map_err(|e| Error::InvalidGraph(e.to_string()))?;
        let doc = Arc::new(GraphDoc {
            hash: hash.clone(),
            text,
            plan,
        });
        lock(&self.graphs).insert(hash, Arc::clone(&doc));
        Ok(doc)
    }

    /// The graph with `hash`, from the cache or the journal's blobs.
    fn graph_by_hash(&self, hash: &str) -> Result<Arc<GraphDoc>> {
        if let Some(doc) = lock(&self.graphs).get(hash) {
            return Ok(Arc::clone(doc));
        }
        let bytes = self
            .store
            .get_blob(hash)?
            .ok_or_else(|| Error::InvalidGraph(format!("the journal has no graph {hash}")))?;
        let text = String::from_utf8(bytes).map_err(|e| Error::InvalidGraph(e.to_string()))?;
        self.graph_doc(text)
    }

    async fn start_run(
        self: &Arc<Self>,
        run: RunId,
        doc: Arc<GraphDoc>,
        input: Value,
    ) -> Result<RunId> {
        let mut live = Live {
            run: run.clone(),
            graph: Arc::clone(&doc),
            snap: Value::Object(Map::new()),
            pending: Vec::new(),
            version: 0,
            seq: 0,
            send_snapshot: true,
            stored: RunStatus::Running,
            published: Some(RunStatus::Running),
        };
        let inputs = vec![Input::Start { input }];
        // The first step is taken before the run exists, so an input the
        // graph refuses leaves nothing behind.
        let decision = match self.decide(&mut live, &inputs).await {
            Ok(d) => d,
            Err(StepFailure::BadInput(message)) => return Err(Error::BadInput { run, message }),
            Err(StepFailure::InvalidGraph(message)) => return Err(Error::InvalidGraph(message)),
            Err(e) => return Err(Error::Orchestrator(e.to_string())),
        };
        let entries = journal::encode_step(&*self.store, &inputs, &[], live.version, &decision)
            .map_err(|message| Error::Corrupt {
                run: run.clone(),
                seq: 0,
                message,
            })?;
        // The run is created with its first step in one commit, so a run
        // that exists has its input journaled: a crash right after `start`
        // returned loses nothing, and one before leaves no half-made run.
        live.seq = {
            let (run, doc) = (run.clone(), Arc::clone(&doc));
            let owner = self.options.owner.clone();
            let ttl = self.options.lease_ttl;
            self.on_store(move |store| {
                // The graph's hash is its blob's: stored by its first run.
                if !store.has_blob(&doc.hash)? {
                    store.put_blob(doc.text.as_bytes())?;
                }
                Ok(store.create_run_claimed(&run, &doc.hash, entries, &owner, ttl)?)
            })
            .await?
        };
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.live).insert(run.clone(), tx);
        // Waiters can follow it from now; the driver says what the first
        // decision made of it once the store has it (`Driver::act`).
        self.watch_status(&run, &Status::Running);
        let shared = Arc::clone(self);
        tokio::spawn(async move {
            let mut driver = Driver::new(shared, live, rx);
            // A failure here stopped the driver and was logged; the run is
            // resumed from its journal.
            let _ = driver.act(decision).await;
            driver.run().await;
        });
        Ok(run)
    }

    /// Send `input` to `run`'s driver, starting one if none runs. (Boxed:
    /// drivers send commands to child runs, so the future is recursive.)
    fn command(self: &Arc<Self>, run: &RunId, input: Input) -> BoxFuture<'static, Result<()>> {
        let shared = Arc::clone(self);
        let run = run.clone();
        Box::pin(async move { shared.command_inner(&run, input).await })
    }

    async fn command_inner(self: &Arc<Self>, run: &RunId, input: Input) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        let mut command = Command { input, reply };
        let sent = match lock(&self.live).get(run) {
            Some(tx) => match tx.send(command) {
                Ok(()) => None,
                Err(mpsc::error::SendError(back)) => Some(back),
            },
            None => Some(command),
        };
        match sent {
            None => return answer.await.unwrap_or(Ok(())),
            Some(back) => command = back,
        }
        // No driver: load the run and start one.
        let loaded = {
            let shared = Arc::clone(self);
            let run = run.clone();
            blocking(move || fold(&*shared.store, &run, None)).await?
        };
        let status = loaded.status().to_owned();
        if matches!(status.as_str(), "done" | "failed" | "cancelled") {
            // The driver records the status right after journaling the
            // decision that set it; a crash between the two leaves the
            // store saying `running`. The journal is the truth: repair it.
            if let Some(over) = RunStatus::parse(&status)
                && loaded.info.status != over
            {
                let r = run.clone();
                self.on_store(move |store| Ok(store.set_status(&r, over)?))
                    .await?;
                self.status_changed.notify_waiters();
            }
            return Err(Error::Status {
                run: run.clone(),
                status,
                message: "it is over; `graph fork` starts a new run from any of its steps"
                    .to_owned(),
            });
        }
        {
            let owner = self.options.owner.clone();
            let ttl = self.options.lease_ttl;
            let run = run.clone();
            self.on_store(move |store| claim(store, &run, &owner, ttl))
                .await?;
        }
        let graph = {
            let shared = Arc::clone(self);
            let hash = loaded.info.graph_hash.clone();
            blocking(move || shared.graph_by_hash(&hash)).await?
        };
        let live = Live {
            run: run.clone(),
            graph,
            snap: loaded.snapshot,
            pending: Vec::new(),
            version: loaded.version,
            seq: loaded.seq,
            send_snapshot: true,
            stored: loaded.info.status,
            published: None,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let raced = {
            let mut map = lock(&self.live);
            let raced = map.contains_key(run);
            if !raced {
                map.insert(run.clone(), tx);
                lock(&self.statuses)
                    .entry(run.clone())
                    .or_insert_with(|| tokio::sync::watch::channel(Status::Running).0);
            }
            raced
        };
        if raced {
            // Another caller started a driver meanwhile: use it.
            return self.command(run, command.input).await;
        }
        let needs_resume = !matches!(command.input, Input::Resume);
        let shared = Arc::clone(self);
        tokio::spawn(async move {
            let mut driver = Driver::new(shared, live, rx);
            if needs_resume
                && driver
                    .live
                    .snapshot()
                    .get("calls")
                    .and_then(Value::as_object)
                    .is_some_and(|c| !c.is_empty())
            {
                // Calls were in flight when the last driver stopped.
                driver.step_inputs(vec![(Input::Resume, None)], None).await;
            }
            driver
                .step_inputs(vec![(command.input, None)], Some(command.reply))
                .await;
            driver.run().await;
        });
        answer.await.unwrap_or(Ok(()))
    }

    /// Publish `status` to this process's waiters of `run`.
    fn watch_status(&self, run: &RunId, status: &Status) {
        let mut statuses = lock(&self.statuses);
        let tx = statuses
            .entry(run.clone())
            .or_insert_with(|| tokio::sync::watch::channel(Status::Running).0);
        tx.send_if_modified(|held| {
            let changed = std::mem::discriminant(held) != std::mem::discriminant(status);
            if changed {
                *held = status.clone();
            }
            changed
        });
        if status.is_final() {
            // Waiters hold receivers with the last value; later ones read
            // the journal.
            statuses.remove(run);
        }
    }

    async fn wait(&self, run: &RunId, final_only: bool) -> Result<Status> {
        let settles = |s: &Status| s.is_final() || (!final_only && *s == Status::Waiting);
        let watched = lock(&self.statuses)
            .get(run)
            .map(tokio::sync::watch::Sender::subscribe);
        if let Some(mut rx) = watched {
            // Driven here: woken when its status changes, not at each step.
            // Its driver recorded the status in the store before it said so
            // here (`Driver::act`), so nothing is left to settle.
            loop {
                let status = rx.borrow_and_update().clone();
                if settles(&status) {
                    return Ok(status);
                }
                if rx.changed().await.is_err() {
                    break; // its driver stopped: the journal says the rest
                }
            }
        }
        let r = run.clone();
        let (info, last) = self
            .on_store(move |store| {
                let info = store.run_info(&r)?.ok_or_else(|| Error::NoRun(r.clone()))?;
                let last = store.last_seq(&r)?;
                Ok((info, last))
            })
            .await?;
        let settled = match info.status {
            RunStatus::Running => false,
            RunStatus::Waiting => !final_only,
            RunStatus::Done | RunStatus::Failed | RunStatus::Cancelled => true,
        };
        // The status in the store is written after the decision, so the
        // decisions so far tell the settled status.
        let mut sub = convergio_journal::subscribe(Arc::clone(&self.store), run.clone(), 0);
        let mut latest: Option<Status> = None;
        loop {
            if settled
                && sub.last_seq() >= last
                && let Some(status) = latest
            {
                return Ok(status);
            }
            let Some(entry) = sub.next().await? else {
                return latest.ok_or_else(|| Error::NoRun(run.clone()));
            };
            if entry.kind != EntryKind::Decision.as_str() {
                continue;
            }
            let seq = entry.seq;
            let corrupt = |message: String| Error::Corrupt {
                run: run.clone(),
                seq,
                message,
            };
            let mut status = serde_json::from_slice::<StatusOnly>(&entry.payload)
                .map_err(|e| corrupt(e.to_string()))?
                .status;
            if matches!(status, Status::Done { .. }) {
                // The output is journaled in the decision's patches.
                let entry = entry.clone();
                status = self
                    .on_store(move |store| {
                        journal::read_decision(store, &entry)
                            .map(|d| d.status)
                            .map_err(|m| Error::Corrupt {
                                run: entry.run.clone(),
                                seq,
                                message: m,
                            })
                    })
                    .await?;
            }
            let done = status.is_final() || (!final_only && status == Status::Waiting);
            if done && entry.seq >= last {
                self.settle_status(run, &status).await;
                return Ok(status);
            }
            latest = Some(status);
        }
    }

    /// The driver records a run's status in the store right after the
    /// decision that set it; wait (briefly) for that, so what the caller
    /// reads next (`graph list`) agrees with what `wait` returned.
    async fn settle_status(&self, run: &RunId, status: &Status) {
        let want = run_status(status);
        // The driver notifies after each status it records; a driver in
        // another process does not, so the check repeats on a timer too.
        for _ in 0..100 {
            let notified = self.status_changed.notified();
            let r = run.clone();
            match self.on_store(move |store| Ok(store.run_info(&r)?)).await {
                Ok(Some(info)) if info.status != want => {
                    let _ = tokio::time::timeout(Duration::from_millis(20), notified).await;
                }
                _ => return,
            }
        }
    }

    async fn fork(
        self: &Arc<Self>,
        parent: &RunId,
        seq: Seq,
        patch: Option<Value>,
        step: Option<StepPatch>,
    ) -> Result<RunId> {
        let shared = Arc::clone(self);
        let p = parent.clone();
        let view = blocking(move || fold(&*shared.store, &p, Some(seq))).await?;
        // The changed step's call, with its steps as the fork records them.
        let copied = match &step {
            None => None,
            Some(step) => {
                let Some(attempt) = view
                    .snapshot
                    .pointer(&format!(
                        "/calls/{}/attempt",
                        step.call.replace('~', "~0").replace('/', "~1")
                    ))
                    .and_then(Value::as_u64)
                    .and_then(|a| u32::try_from(a).ok())
                else {
                    return Err(Error::BadInput {
                        run: parent.clone(),
                        message: format!(
                            "call `{}` is not in flight at seq {seq}: fork from a step where it runs (`graph checkpoints {parent}` shows when it started and returned)",
                            step.call
                        ),
                    });
                };
                let (store, p, s) = (Arc::clone(&self.store), parent.clone(), step.clone());
                let steps = blocking(move || {
                    s.steps(&p, attempt, |i| {
                        Ok(store.call_step(&p, &s.call, attempt, i)?)
                    })
                })
                .await?;
                Some((step.call.clone(), attempt, steps))
            }
        };
        let p = parent.clone();
        let entry = self
            .on_store(move |store| Ok(store.read_after(&p, seq.saturating_sub(1), 1)?))
            .await?;
        if entry
            .first()
            .is_none_or(|e| e.seq != seq || e.kind != EntryKind::Decision.as_str())
        {
            return Err(Error::Status {
                run: parent.clone(),
                status: view.status().to_owned(),
                message: format!(
                    "seq {seq} is not a step; `graph checkpoints {parent}` lists the steps to fork from"
                ),
            });
        }
        let graph = {
            let shared = Arc::clone(self);
            let hash = view.info.graph_hash.clone();
            blocking(move || shared.graph_by_hash(&hash)).await?
        };
        let mut patches = Vec::new();
        if let Some(patch) = &patch {
            let Value::Object(fields) = patch else {
                return Err(Error::BadInput {
                    run: parent.clone(),
                    message: "a fork's patch is an object of state keys".to_owned(),
                });
            };
            for (key, value) in fields {
                let Some(decl) = graph.plan.graph.state.get(key) else {
                    return Err(Error::BadInput {
                        run: parent.clone(),
                        message: format!(
                            "the patch names state key `{key}`, which the graph does not declare"
                        ),
                    });
                };
                if let Some(schema) = &decl.schema
                    && let Err(errors) = convergio_graph::schema::check(schema, value)
                {
                    return Err(Error::BadInput {
                        run: parent.clone(),
                        message: format!(
                            "patch `{key}` does not match its schema: {}",
                            errors.join("; ")
                        ),
                    });
                }
                patches.push(Patch::new(
                    Op::Set,
                    Pointer::from_keys(["values", key.as_str()]),
                    value,
                ));
            }
        }
        // A fork of a finished run goes on from where it stood: running.
        patches.push(Patch::new(
            Op::Set,
            Pointer::from_keys(["status"]),
            &Value::from("running"),
        ));
        let fork = RunId::from(new_run_id());
        let mut snap = view.snapshot;
        for p in &patches {
            apply(&mut snap, p).map_err(|e| Error::BadInput {
                run: parent.clone(),
                message: e.to_string(),
            })?;
        }
        let decision = Decision {
            patches,
            calls: Vec::new(),
            cancel: Vec::new(),
            interrupts: Vec::new(),
            events: Vec::new(),
            status: Status::Running,
        };
        {
            let store = Arc::clone(&self.store);
            let (p, f) = (parent.clone(), fork.clone());
            let version = view.version;
            let mut record = serde_json::json!({"parent": p.as_str(), "seq": seq, "patch": patch});
            if let Some(step) = &step {
                record["step"] = serde_json::json!({"call": step.call, "index": step.index});
            }
            let payload = serde_json::to_vec(&record).unwrap_or_default();
            blocking(move || {
                store.fork(&p, seq, &f)?;
                if let Some((call, attempt, steps)) = copied {
                    for s in &steps {
                        store.record_step(&f, &call, attempt, s)?;
                    }
                }
                let mut entries = vec![convergio_journal::NewEntry::new(
                    EntryKind::Fork.as_str(),
                    payload,
                )];
                entries.extend(
                    journal::encode_step(&*store, &[], &[], version, &decision).map_err(
                        |message| Error::Corrupt {
                            run: f.clone(),
                            seq,
                            message,
                        },
                    )?,
                );
                store.append_blocking(&f, seq, entries)?;
                Ok(())
            })
            .await?;
        }
        self.command(&fork, Input::Resume).await?;
        Ok(fork)
    }

    fn queue(&self, plugin: &str) -> Arc<Semaphore> {
        let mut queues = lock(&self.queues);
        if let Some(queue) = queues.get(plugin) {
            return Arc::clone(queue);
        }
        Arc::clone(
            queues
                .entry(plugin.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(self.exec.concurrency(plugin).max(1)))),
        )
    }

    /// One step with the handshake: the graph and the snapshot are sent
    /// when the orchestrator asks for them.
    async fn decide(&self, live: &mut Live, inputs: &[Input]) -> Result<Decision, StepFailure> {
        let mut send_graph = false;
        for _ in 0..3 {
            if live.send_snapshot {
                live.snapshot();
            }
            let request = StepRequest {
                run: live.run.as_str(),
                graph_hash: &live.graph.hash,
                graph: send_graph.then_some(live.graph.text.as_str()),
                version: live.version,
                snapshot: live.send_snapshot.then_some(&live.snap),
                inputs,
            };
            match self.steps.step(request).await {
                Err(StepFailure::UnknownGraph) if !send_graph => send_graph = true,
                Err(StepFailure::NeedSnapshot) if !live.send_snapshot => live.send_snapshot = true,
                other => {
                    live.send_snapshot = false;
                    return other;
                }
            }
        }
        Err(StepFailure::Failed(
            "it asked again for the graph and snapshot it was sent".to_owned(),
        ))
    }
}

/// Take the lease on `run`, taking over one whose holder is a process of
/// this host that is gone.
fn claim(store: &dyn RunStore, run: &RunId, owner: &str, ttl: Duration) -> Result<()> {
    match store.claim(run, owner, ttl) {
        Ok(_) => Ok(()),
        Err(convergio_journal::Error::Claimed { owner: holder, .. })
            if holder_is_gone(&holder, owner) =>
        {
            store.release(run, &holder)?;
            store.claim(run, owner, ttl)?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

fn holder_is_gone(holder: &str, me: &str) -> bool {
    let (Some((host, pid)), Some((my_host, _))) = (holder.rsplit_once(':'), me.rsplit_once(':'))
    else {
        return false;
    };
    host == my_host
        && pid
            .parse::<u32>()
            .is_ok_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
}

/// The task that drives one run.
struct Driver {
    shared: Arc<Shared>,
    live: Live,
    commands: mpsc::UnboundedReceiver<Command>,
    done_tx: mpsc::UnboundedSender<Done>,
    done_rx: mpsc::UnboundedReceiver<Done>,
    /// Results of calls that finished when they were dispatched (see
    /// [`Driver::dispatch`]), for the next step.
    ready: Vec<Done>,
    in_flight: HashMap<String, (AbortHandle, Option<RunId>)>,
    over: bool,
}

impl Driver {
    fn new(shared: Arc<Shared>, live: Live, commands: mpsc::UnboundedReceiver<Command>) -> Self {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        Self {
            shared,
            live,
            commands,
            done_tx,
            done_rx,
            ready: Vec::new(),
            in_flight: HashMap::new(),
            over: false,
        }
    }

    async fn run(&mut self) {
        // One timer for the lease's renewal, reset only when it fires: a
        // timer made afresh at every step costs a wake-up of the timer
        // driver per step.
        let renewal = tokio::time::sleep(self.shared.options.lease_ttl / 3);
        tokio::pin!(renewal);
        loop {
            if (self.over || (self.in_flight.is_empty() && self.is_waiting()))
                && self.stop_if_idle()
            {
                return;
            }
            if !self.ready.is_empty() {
                // Results of calls that finished as they were dispatched:
                // stepped without a round through the channel. A command
                // goes first (a cancel is not held up by a run whose calls
                // all finish at once), and the lease is renewed when due.
                if let Ok(command) = self.commands.try_recv() {
                    self.command(command).await;
                } else if tokio::time::Instant::now() >= renewal.deadline() {
                    self.renew(renewal.as_mut()).await;
                } else {
                    let done = std::mem::take(&mut self.ready);
                    self.step_results(done).await;
                }
                continue;
            }
            tokio::select! {
                Some(first) = self.done_rx.recv() => self.step_results(vec![first]).await,
                Some(command) = self.commands.recv() => self.command(command).await,
                () = &mut renewal => self.renew(renewal.as_mut()).await,
            }
        }
    }

    /// Step with the results of finished calls: `done`, and those waiting
    /// in the channel.
    async fn step_results(&mut self, mut done: Vec<Done>) {
        while let Ok(more) = self.done_rx.try_recv() {
            done.push(more);
        }
        let inputs = done
            .into_iter()
            .map(|(call, result, measured)| {
                self.in_flight.remove(&call);
                (Input::Result { call, result }, Some(measured))
            })
            .collect();
        self.step_inputs(inputs, None).await;
    }

    /// Act on a command: step with its input (a resume has nothing to do
    /// here: the driver runs).
    async fn command(&mut self, command: Command) {
        if matches!(command.input, Input::Resume) {
            let _ = command.reply.send(Ok(()));
        } else {
            self.step_inputs(vec![(command.input, None)], Some(command.reply))
                .await;
        }
    }

    fn is_waiting(&self) -> bool {
        self.live.stored == RunStatus::Waiting
    }

    /// Stop driving if nothing is pending; whether it stopped.
    fn stop_if_idle(&mut self) -> bool {
        let mut live = lock(&self.shared.live);
        if !self.commands.is_empty() || !self.done_rx.is_empty() || !self.ready.is_empty() {
            return false;
        }
        live.remove(&self.live.run);
        drop(live);
        let store = Arc::clone(&self.shared.store);
        if !store.blocks() {
            let _ = store.release(&self.live.run, &self.shared.options.owner);
            return true;
        }
        let run = self.live.run.clone();
        let owner = self.shared.options.owner.clone();
        tokio::task::spawn_blocking(move || {
            let _ = store.release(&run, &owner);
        });
        true
    }

    /// Renew the run's lease, and set `timer` for the next renewal.
    async fn renew(&mut self, timer: std::pin::Pin<&mut tokio::time::Sleep>) {
        let run = self.live.run.clone();
        let owner = self.shared.options.owner.clone();
        let ttl = self.shared.options.lease_ttl;
        if let Err(e) = self
            .shared
            .on_store(move |store| Ok(store.renew(&run, &owner, ttl)?))
            .await
        {
            tracing::error!(run = %self.live.run, error = %e, "lost the run's lease; stopping");
            self.abandon();
        }
        timer.reset(tokio::time::Instant::now() + self.shared.options.lease_ttl / 3);
    }

    /// Stop driving without touching the journal (another host has the
    /// run, or the journal failed): in-flight calls are stopped, their
    /// results never journaled, and a resume runs them again.
    fn abandon(&mut self) {
        for (handle, _) in self.in_flight.values() {
            handle.abort();
        }
        self.in_flight.clear();
        self.over = true;
    }

    /// Step with `inputs`, journal, then act.
    async fn step_inputs(
        &mut self,
        inputs: Vec<(Input, Option<Measured>)>,
        reply: Option<oneshot::Sender<Result<()>>>,
    ) {
        if self.over {
            if let Some(reply) = reply {
                let _ = reply.send(Err(Error::Status {
                    run: self.live.run.clone(),
                    status: self
                        .live
                        .snapshot()
                        .get("status")
                        .and_then(Value::as_str)
                        .unwrap_or("over")
                        .to_owned(),
                    message: "it is over".to_owned(),
                }));
            }
            return;
        }
        let (inputs, ms): (Vec<Input>, Vec<Option<Measured>>) = inputs.into_iter().unzip();
        let decision = match self.shared.decide(&mut self.live, &inputs).await {
            Ok(d) => d,
            Err(StepFailure::BadInput(message)) => {
                if let Some(reply) = reply {
                    let _ = reply.send(Err(Error::BadInput {
                        run: self.live.run.clone(),
                        message,
                    }));
                }
                return;
            }
            Err(failure) => self.host_failure(&failure),
        };
        let ok = self.after_decision(&inputs, &ms, decision).await;
        if let Some(reply) = reply {
            let _ = reply.send(ok);
        }
    }

    /// The orchestrator could not decide: the run fails, and the host
    /// writes that decision itself.
    fn host_failure(&mut self, failure: &StepFailure) -> Decision {
        let error = failure.to_string();
        tracing::error!(run = %self.live.run, %error, "the orchestrator failed; the run fails");
        let mut patches = Vec::new();
        if let Some(calls) = self.live.snapshot().get("calls").and_then(Value::as_object) {
            for id in calls.keys() {
                patches.push(Patch::new(
                    Op::Remove,
                    Pointer::from_keys(["calls", id.as_str()]),
                    &Value::Null,
                ));
            }
        }
        patches.push(Patch::new(
            Op::Set,
            Pointer::from_keys(["status"]),
            &Value::from("failed"),
        ));
        patches.push(Patch::new(
            Op::Set,
            Pointer::from_keys(["error"]),
            &Value::from(error.clone()),
        ));
        Decision {
            patches,
            calls: Vec::new(),
            cancel: self.in_flight.keys().cloned().collect(),
            interrupts: Vec::new(),
            events: Vec::new(),
            status: Status::Failed { error },
        }
    }

    /// Journal the step, then act on the decision.
    async fn after_decision(
        &mut self,
        inputs: &[Input],
        ms: &[Option<Measured>],
        decision: Decision,
    ) -> Result<()> {
        let entries = match journal::encode_step(
            &*self.shared.store,
            inputs,
            ms,
            self.live.version,
            &decision,
        ) {
            Ok(e) => e,
            Err(message) => {
                tracing::error!(run = %self.live.run, %message, "cannot encode a step; stopping");
                self.abandon();
                return Err(Error::Corrupt {
                    run: self.live.run.clone(),
                    seq: self.live.seq,
                    message,
                });
            }
        };
        match self
            .shared
            .store
            .append(&self.live.run, self.live.seq, entries)
            .await
        {
            Ok(seq) => self.live.seq = seq,
            Err(e) => {
                tracing::error!(run = %self.live.run, error = %e, "cannot journal a step; stopping");
                self.abandon();
                return Err(e.into());
            }
        }
        self.act(decision).await
    }

    /// Act on a journaled decision: fold it, start its calls, stop those it
    /// cancels, record the run's status.
    async fn act(&mut self, mut decision: Decision) -> Result<()> {
        self.live.pending.append(&mut decision.patches);
        if self.live.pending.len() > PENDING_MAX {
            self.live.snapshot();
        }
        self.live.version += 1;
        if self
            .live
            .version
            .is_multiple_of(self.shared.options.checkpoint_every.max(1))
            && self.shared.store.outlives_process()
        {
            self.checkpoint().await;
        }
        for id in &decision.cancel {
            if let Some((handle, child)) = self.in_flight.remove(id) {
                handle.abort();
                if let Some(child) = child {
                    let shared = Arc::clone(&self.shared);
                    tokio::spawn(async move {
                        let _ = Shared::command(
                            &shared,
                            &child,
                            Input::Cancel {
                                reason: "its parent run stopped".to_owned(),
                            },
                        )
                        .await;
                    });
                }
            }
        }
        for call in decision.calls {
            self.dispatch(call).await;
        }
        // The status is recorded in the store before this process's waiters
        // hear it, so what they read next (`graph list`) agrees.
        let status = run_status(&decision.status);
        if status != self.live.stored {
            self.live.stored = status;
            let run = self.live.run.clone();
            if let Err(e) = self
                .shared
                .on_store(move |store| Ok(store.set_status(&run, status)?))
                .await
            {
                tracing::error!(run = %self.live.run, error = %e, "cannot record the run's status");
            }
            self.shared.status_changed.notify_waiters();
        }
        if self.live.published != Some(status) {
            self.live.published = Some(status);
            self.shared.watch_status(&self.live.run, &decision.status);
        }
        if decision.status.is_final() {
            for (handle, _) in self.in_flight.values() {
                handle.abort();
            }
            self.in_flight.clear();
            self.over = true;
            self.shared.steps.forget(self.live.run.as_str()).await;
        }
        Ok(())
    }

    async fn checkpoint(&mut self) {
        let store = Arc::clone(&self.shared.store);
        let run = self.live.run.clone();
        let seq = self.live.seq;
        let version = self.live.version;
        let state = serde_json::to_vec(&journal::CheckpointRef {
            version,
            snapshot: self.live.snapshot(),
        });
        let Ok(state) = state else { return };
        if let Err(e) = blocking(move || Ok(store.write_checkpoint(&run, seq, &state)?)).await {
            tracing::warn!(run = %self.live.run, error = %e, "cannot write a checkpoint");
        }
    }

    /// Start `call`. It is polled once here, in the driver's task: a call
    /// that finishes at once (a warm no-op tool) costs no task and no
    /// thread hand-off, and its result waits in [`Driver::ready`] for the
    /// next step; one that waits (on I/O, a queue, a timer, or after
    /// an epoch tick of guest code) goes on in a task of its own, so calls
    /// run in parallel on every core.
    async fn dispatch(&mut self, call: convergio_graph::engine::Call) {
        let shared = Arc::clone(&self.shared);
        let run = self.live.run.clone();
        let key = call.id.clone();
        let mut child = None;
        let sub_graph = match &call.target {
            Target::Subgraph { graph } => {
                let c = RunId::from(format!("{run}.{}.{}", call.id, call.attempt));
                child = Some(c.clone());
                let text = self
                    .live
                    .graph
                    .plan
                    .subgraphs
                    .get(graph)
                    .and_then(|p| serde_json::to_string(&p.graph).ok());
                Some((c, text))
            }
            _ => None,
        };
        let state = match &call.target {
            Target::Agent { .. } => self
                .live
                .snapshot()
                .get("values")
                .cloned()
                .unwrap_or(Value::Null),
            _ => Value::Null,
        };
        let mut task: std::pin::Pin<Box<dyn Future<Output = Option<Done>> + Send>> =
            Box::pin(async move {
                if call.delay_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(call.delay_ms)).await;
                }
                let started = Instant::now();
                let timeout = call.timeout_ms.map(Duration::from_millis);
                let (id, (result, report)) = match sub_graph {
                    Some((child, text)) => {
                        let child = Shared::run_child(&shared, child, text, call.input.clone());
                        let outcome =
                            with_timeout(timeout, async { (child.await, CallReport::default()) })
                                .await;
                        (call.id, outcome)
                    }
                    None => {
                        let queue = shared.queue(match &call.target {
                            Target::Tool { plugin, .. } | Target::Agent { plugin } => plugin,
                            Target::Subgraph { .. } => "",
                        });
                        let node_call = NodeCall {
                            idempotency_key: NodeCall::key(&run, &call.id, call.attempt),
                            run,
                            call,
                            state,
                        };
                        // A free place is taken without a wait (which would
                        // also spend the task's cooperative budget).
                        let _permit = match Arc::clone(&queue).try_acquire_owned() {
                            Ok(permit) => permit,
                            Err(_) => match queue.acquire_owned().await {
                                Ok(permit) => permit,
                                Err(_) => return None,
                            },
                        };
                        let outcome =
                            with_timeout(timeout, shared.exec.execute_reported(&node_call)).await;
                        (node_call.call.id, outcome)
                    }
                };
                let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                Some((id, result, Measured { ms, report }))
            });
        let first = std::future::poll_fn(|cx| std::task::Poll::Ready(task.as_mut().poll(cx))).await;
        match first {
            std::task::Poll::Ready(done) => self.ready.extend(done),
            std::task::Poll::Pending => {
                let done = self.done_tx.clone();
                let handle = tokio::spawn(async move {
                    if let Some(result) = task.await {
                        let _ = done.send(result);
                    }
                });
                self.in_flight.insert(key, (handle.abort_handle(), child));
            }
        }
    }
}

/// `call`, or a timeout error once `timeout` has passed (its report then
/// unknown).
async fn with_timeout(
    timeout: Option<Duration>,
    call: impl Future<Output = (CallResult, CallReport)>,
) -> (CallResult, CallReport) {
    match timeout {
        None => call.await,
        Some(limit) => match tokio::time::timeout(limit, call).await {
            Ok(result) => result,
            Err(_) => (
                CallResult::Err {
                    error: format!("timed out after {} ms", limit.as_millis()),
                },
                CallReport::default(),
            ),
        },
    }
}

impl Shared {
    /// Run the subgraph child `child` (or wait for it, when a resumed
    /// parent finds it started) and give its outcome as a call result.
    fn run_child(
        self: &Arc<Self>,
        child: RunId,
        text: Option<String>,
        input: JsonText,
    ) -> BoxFuture<'static, CallResult> {
        // Boxed: a child run's driver may run children of its own.
        let shared = Arc::clone(self);
        Box::pin(async move { shared.child_outcome(child, text, input).await })
    }

    async fn child_outcome(
        self: &Arc<Self>,
        child: RunId,
        text: Option<String>,
        input: JsonText,
    ) -> CallResult {
        let Some(text) = text else {
            return CallResult::Err {
                error: "the subgraph is not in the graph's `graphs`".to_owned(),
            };
        };
        let input = match input.value() {
            Ok(input) => input,
            Err(e) => {
                return CallResult::Err {
                    error: format!("the subgraph's input is not JSON: {e}"),
                };
            }
        };
        let c = child.clone();
        let exists = self.on_store(move |store| Ok(store.run_info(&c)?)).await;
        let started = match exists {
            Ok(Some(_)) => match Shared::command(self, &child, Input::Resume).await {
                Ok(()) | Err(Error::Status { .. }) => Ok(()),
                Err(e) => Err(e),
            },
            Ok(None) => match self.graph_doc(text) {
                Ok(doc) => Box::pin(self.start_run(child.clone(), doc, input))
                    .await
                    .map(|_| ()),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        if let Err(e) = started {
            return CallResult::Err {
                error: format!("subgraph run `{child}`: {e}"),
            };
        }
        match self.wait(&child, true).await {
            Ok(Status::Done { output }) => CallResult::Ok {
                output: output.into(),
                updates: Vec::new(),
            },
            Ok(Status::Failed { error }) => CallResult::Err {
                error: format!("subgraph run `{child}` failed: {error}"),
            },
            Ok(Status::Cancelled { reason }) => CallResult::Err {
                error: format!("subgraph run `{child}` was cancelled: {reason}"),
            },
            Ok(other) => CallResult::Err {
                error: format!("subgraph run `{child}` stopped {other:?}"),
            },
            Err(e) => CallResult::Err {
                error: format!("subgraph run `{child}`: {e}"),
            },
        }
    }
}

/// `run` as its journal in `store` says it stood after seq `upto` (at its
/// end when none): the latest checkpoint, then the patches of each decision
/// after it. Reads only: no orchestrator, no plugin.
pub fn fold(store: &dyn RunStore, run: &RunId, upto: Option<Seq>) -> Result<RunView> {
    let info = store
        .run_info(run)?
        .ok_or_else(|| Error::NoRun(run.clone()))?;
    let last = store.last_seq(run)?;
    let end = upto.unwrap_or(last).min(last);
    let (mut snap, mut version, mut after) = match store.checkpoint_at_or_before(run, end)? {
        Some(cp) => {
            let parsed: Checkpoint =
                serde_json::from_slice(&cp.state).map_err(|e| Error::Corrupt {
                    run: run.clone(),
                    seq: cp.seq,
                    message: format!("checkpoint: {e}"),
                })?;
            (parsed.snapshot, parsed.version, cp.seq)
        }
        None => (Value::Object(Map::new()), 0, 0),
    };
    while after < end {
        let page = store.read_after(run, after, 512)?;
        if page.is_empty() {
            break;
        }
        for entry in page {
            if entry.seq > end {
                break;
            }
            after = entry.seq;
            if entry.kind != EntryKind::Decision.as_str() {
                continue;
            }
            let corrupt = |message: String| Error::Corrupt {
                run: run.clone(),
                seq: entry.seq,
                message,
            };
            let decision = journal::read_decision(store, &entry).map_err(corrupt)?;
            journal::fold(&mut snap, &decision).map_err(|m| Error::Corrupt {
                run: run.clone(),
                seq: entry.seq,
                message: m,
            })?;
            version = decision.version + 1;
        }
    }
    Ok(RunView {
        info,
        snapshot: snap,
        version,
        seq: end,
    })
}

/// Every step of `run` in `store`: the points it can be inspected at and
/// forked from. Reads only.
pub fn steps(store: &dyn RunStore, run: &RunId) -> Result<Vec<Step>> {
    if store.run_info(run)?.is_none() {
        return Err(Error::NoRun(run.clone()));
    }
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = store.read_after(run, after, 512)?;
        if page.is_empty() {
            return Ok(out);
        }
        for entry in page {
            after = entry.seq;
            if entry.kind != EntryKind::Decision.as_str() {
                continue;
            }
            let decision =
                journal::read_decision(store, &entry).map_err(|message| Error::Corrupt {
                    run: run.clone(),
                    seq: entry.seq,
                    message,
                })?;
            out.push(Step {
                seq: entry.seq,
                at_ms: entry.at_ms,
                version: decision.version + 1,
                events: decision.events,
                status: decision.status,
            });
        }
    }
}

/// What the model calls of `run`'s node calls used, per node (a node's
/// loop iterations, map items and attempts added up), in node order; from
/// the journaled results of metered calls. Reads only.
pub fn usage(store: &dyn RunStore, run: &RunId) -> Result<Vec<(String, CallUsage)>> {
    if store.run_info(run)?.is_none() {
        return Err(Error::NoRun(run.clone()));
    }
    let mut per_node: std::collections::BTreeMap<String, CallUsage> = Default::default();
    let mut after = 0;
    loop {
        let page = store.read_after(run, after, 512)?;
        if page.is_empty() {
            return Ok(per_node.into_iter().collect());
        }
        for entry in page {
            after = entry.seq;
            if entry.kind != EntryKind::Result.as_str() {
                continue;
            }
            let journaled =
                journal::read_input(store, &entry).map_err(|message| Error::Corrupt {
                    run: run.clone(),
                    seq: entry.seq,
                    message,
                })?;
            if let (Some(usage), Input::Result { call, .. }) = (journaled.usage, journaled.input) {
                let node = call_node(&call).to_owned();
                let total = per_node.entry(node).or_default();
                *total = total.plus(usage);
            }
        }
    }
}

/// The runs `run`'s node calls started — subgraphs (`{run}.{call}.{attempt}`),
/// agents an agent spawned (`{run}:{call}:{attempt}:spawn:{n}`), a
/// planner's plan (`{run}:{call}:{attempt}:plan`) — and theirs in turn,
/// oldest first. Reads only.
pub fn children(store: &dyn RunStore, run: &RunId) -> Result<Vec<RunInfo>> {
    let (a, b) = (format!("{run}:"), format!("{run}."));
    let mut children: Vec<RunInfo> = store
        .list_runs()?
        .into_iter()
        .filter(|r| r.id.starts_with(&a) || r.id.starts_with(&b))
        .collect();
    children.sort_by(|x, y| (x.created_ms, x.id.as_str()).cmp(&(y.created_ms, y.id.as_str())));
    Ok(children)
}

/// The node of call id `call` (`node`, `node@2`, `node[3]`, `node@2[3]`).
fn call_node(call: &str) -> &str {
    let end = call.find(['@', '[']).unwrap_or(call.len());
    &call[..end]
}

/// The store's status of a run whose last decision left it `status`.
fn run_status(status: &Status) -> RunStatus {
    match status {
        Status::Running => RunStatus::Running,
        Status::Waiting => RunStatus::Waiting,
        Status::Done { .. } => RunStatus::Done,
        Status::Failed { .. } => RunStatus::Failed,
        Status::Cancelled { .. } => RunStatus::Cancelled,
    }
}

/// Delete the runs of `store` that are over and last changed more than
/// `age` ago, with what only they use ([`RunStore::prune`]). Reads and
/// writes the journal only: no orchestrator, no plugin.
pub fn prune(store: &dyn RunStore, age: Duration) -> Result<convergio_journal::Pruned> {
    let age_ms = u64::try_from(age.as_millis()).unwrap_or(u64::MAX);
    Ok(store.prune(convergio_journal::now_ms().saturating_sub(age_ms))?)
}
