//! The run driver of agent graphs.
//!
//! Decisions and effects are split. An orchestrator ([`StepFunction`]: the
//! orchestrator component, or the same engine in process) decides which
//! node calls a run makes; this crate makes them ([`NodeExecutor`]: each in
//! its plugin's own store, under its grants and limits), concurrently on
//! tokio, with each plugin's calls queued to the plugin's concurrency so a
//! wide fan-out waits instead of failing as busy. Every step's inputs (the
//! results that arrived, an answer, a cancel) and its decision are journaled
//! in one append *before* anything the decision asks for starts: a result is
//! committed before the orchestrator's decision on it takes effect, and a
//! call is journaled as dispatched before it runs.
//!
//! A run resumes by folding its journal — the latest checkpoint, then the
//! patches of every decision after it — without calling the orchestrator for
//! anything already decided; then a `resume` step dispatches the calls that
//! were in flight again, with the same call id and attempt, so with the run
//! id the same **idempotency key**. A node whose result was journaled never
//! runs again.
//!
//! Subgraph nodes run as child runs (`{run}.{call}`), journaled like any
//! run; a resumed parent finds its child and waits for it instead of
//! starting it again.

mod driver;
mod events;
mod journal;
mod native;

use std::fmt;

use convergio_graph::engine::{CallResult, Decision};
use convergio_journal::{BoxFuture, RunId};
use serde_json::Value;

pub use convergio_graph::engine::{Call, Status, Target};
pub use driver::{
    Options, PreparedGraph, RunView, Runs, StepPatch, WeakRuns, children, fold, prune, steps, usage,
};
pub use events::{RunEvent, events_of};
pub use journal::{BLOB_THRESHOLD, EntryKind, JournaledInput, Measured, Step, read_input};
pub use native::NativeSteps;

/// One step's request to a [`StepFunction`]: the engine's own request
/// type (run, graph hash, the graph and snapshot when sent, version,
/// inputs).
pub use convergio_graph::engine::Request as StepRequest;

/// Why a step function did not decide.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepFailure {
    /// It does not hold the graph: send it.
    #[error("the orchestrator does not hold the graph")]
    UnknownGraph,
    /// It holds no copy of the run at this version: send the snapshot.
    #[error("the orchestrator holds no snapshot of the run at this version")]
    NeedSnapshot,
    /// The graph cannot run.
    #[error("the graph cannot run: {0}")]
    InvalidGraph(String),
    /// An input does not fit the run; the run is unchanged.
    #[error("{0}")]
    BadInput(String),
    /// The orchestrator failed (trapped, timed out, returned what is not a
    /// decision, is not loaded): the run fails with this message.
    #[error("the orchestrator failed: {0}")]
    Failed(String),
}

/// An orchestrator: decides a run's next node calls.
pub trait StepFunction: Send + Sync + fmt::Debug {
    /// Take one step.
    fn step<'a>(&'a self, request: StepRequest<'a>)
    -> BoxFuture<'a, Result<Decision, StepFailure>>;

    /// The run finished: drop what is kept of it.
    fn forget<'a>(&'a self, run: &'a str) -> BoxFuture<'a, ()>;
}

/// What the driver journals of a node call beside its result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallReport {
    /// What its model calls used (none: not metered, or none made).
    pub usage: Option<CallUsage>,
    /// The warnings its plugin logged while it ran (at most
    /// [`MAX_WARNINGS`], each cut at 500 characters): a refused tool call,
    /// a blocked answer.
    pub warnings: Vec<String>,
    /// The runs it started (spawned agents, a planner's plan), by id.
    pub runs: Vec<String>,
}

/// The most warnings a node call's report keeps.
pub const MAX_WARNINGS: usize = 20;

/// What a node call's model calls used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CallUsage {
    /// Model calls (failed ones included).
    pub calls: u64,
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
    /// Cost in millionths of a dollar.
    pub cost_micro_usd: u64,
}

impl CallUsage {
    /// Both added up.
    pub fn plus(self, other: Self) -> Self {
        Self {
            calls: self.calls + other.calls,
            input_tokens: self.input_tokens + other.input_tokens,
            output_tokens: self.output_tokens + other.output_tokens,
            cost_micro_usd: self.cost_micro_usd + other.cost_micro_usd,
        }
    }

    /// `3 model calls, 451 tokens in, 122 out, $0.000120`.
    pub fn describe(&self) -> String {
        format!(
            "{} model call{}, {} tokens in, {} out, ${:.6}",
            self.calls,
            if self.calls == 1 { "" } else { "s" },
            self.input_tokens,
            self.output_tokens,
            self.cost_micro_usd as f64 / 1e6
        )
    }
}

/// A node call, as the executor gets it.
#[derive(Debug, Clone)]
pub struct NodeCall {
    /// The run it belongs to.
    pub run: RunId,
    /// The call, as the orchestrator decided it.
    pub call: Call,
    /// `{run}:{call}:{attempt}`: the same for a call dispatched again after
    /// a crash, different for a retry after a failure.
    pub idempotency_key: String,
    /// The run's state when the call was dispatched (agents read it).
    pub state: Value,
}

impl NodeCall {
    /// The idempotency key of attempt `attempt` of `call` in `run`.
    pub fn key(run: &RunId, call: &str, attempt: u32) -> String {
        use std::fmt::Write as _;
        // One allocation, sized up front (`format!` grows its string).
        let mut key = String::with_capacity(run.len() + call.len() + 12);
        key.push_str(run);
        key.push(':');
        key.push_str(call);
        let _ = write!(key, ":{attempt}");
        key
    }
}

/// What runs node calls: tools and agents (subgraphs the driver runs
/// itself, as child runs).
pub trait NodeExecutor: Send + Sync + fmt::Debug {
    /// Run one call to the end.
    fn execute<'a>(&'a self, call: &'a NodeCall) -> BoxFuture<'a, CallResult>;

    /// Run one call to the end, with a report of it: what its model calls
    /// used, the warnings its plugin logged. The driver journals the
    /// report with the result, so it is in the run's events and status.
    fn execute_reported<'a>(
        &'a self,
        call: &'a NodeCall,
    ) -> BoxFuture<'a, (CallResult, CallReport)> {
        Box::pin(async move { (self.execute(call).await, CallReport::default()) })
    }

    /// How many calls to `plugin` may run at once; more wait their turn.
    fn concurrency(&self, plugin: &str) -> usize {
        let _ = plugin;
        16
    }
}

/// Why a run operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No run has this id.
    #[error("no run `{0}`; `convergio graph list` shows the runs")]
    NoRun(RunId),
    /// The operation does not fit the run's status.
    #[error("run `{run}` is {status}: {message}")]
    Status {
        /// The run.
        run: RunId,
        /// Its status.
        status: String,
        /// What cannot be done.
        message: String,
    },
    /// An input the orchestrator refused (the run is unchanged).
    #[error("run `{run}`: {message}")]
    BadInput {
        /// The run.
        run: RunId,
        /// Why.
        message: String,
    },
    /// The graph cannot run.
    #[error("the graph cannot run: {0}")]
    InvalidGraph(String),
    /// The orchestrator failed on the run's first step (trapped, ran past
    /// its deadline, answered what is not a decision).
    #[error("{0}")]
    Orchestrator(String),
    /// The journal failed.
    #[error(transparent)]
    Journal(#[from] convergio_journal::Error),
    /// The journal holds something this driver cannot read.
    #[error("run `{run}`: the journal entry at seq {seq} is unreadable: {message}")]
    Corrupt {
        /// The run.
        run: RunId,
        /// The entry.
        seq: u64,
        /// Why.
        message: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
