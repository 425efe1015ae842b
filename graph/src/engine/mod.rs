//! The step function: decisions from results, with no effects.
//!
//! [`step`] takes a compiled graph, the run's snapshot and what happened
//! since the last step (the run started, node calls finished, an interrupt
//! was answered, the host restarted, a cancel), and returns a [`Decision`]:
//! the node calls to dispatch, the calls to stop, the interrupts raised, the
//! run's status, and the [`Patch`]es it made to the snapshot. It does no I/O
//! and reads no clock, so the same inputs always give the same decision. The
//! host journals the decision before it dispatches anything, and rebuilds a
//! snapshot by folding journaled patches with [`crate::snapshot::apply`].
//!
//! Scheduling is dataflow, with no superstep barrier: a node is ready as
//! soon as every incoming edge is decided (taken or not) and at least one
//! was taken, whatever else is running. A node whose incoming edges are all
//! not taken is skipped, and its own edges are not taken (so joins after a
//! condition do not wait for the branch that did not run). A loop edge, when
//! taken, starts a new iteration of the nodes its target reaches.

mod instance;
mod run;
mod state;
mod wire;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

pub use instance::{Instance, Refusal, Request, check, compile, graph_hash};
pub use run::{StepError, step, step_state};
pub use state::RunState;

use crate::snapshot::Patch;

/// What happened since the last step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "type", try_from = "wire::Input")]
pub enum Input {
    /// The run starts with `input`: an object of state keys.
    Start {
        /// The initial values.
        input: Value,
    },
    /// A node call finished.
    Result {
        /// The call's id, as dispatched.
        call: String,
        /// What it returned.
        result: CallResult,
    },
    /// Someone answered an interrupt.
    Answer {
        /// The interrupt's id.
        interrupt: String,
        /// The answer.
        value: Value,
    },
    /// The host restarted: calls that were in flight are dispatched again
    /// (or held for the operator when their node says so).
    Resume,
    /// Stop the run.
    Cancel {
        /// Why, for the record.
        reason: String,
    },
}

/// A node call's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CallResult {
    /// It returned `output`, and (an agent) asked for `updates` to state
    /// keys, written with their reducers.
    Ok {
        /// The output.
        output: JsonText,
        /// State writes besides the output mapping.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        updates: Vec<(String, Value)>,
    },
    /// It failed.
    Err {
        /// Why.
        error: String,
    },
}

/// JSON text that crosses the engine — a node call's input and output —
/// checked to be JSON where it enters (the host's node executor and step
/// function, the orchestrator component), then kept as it was written on
/// its way between the orchestrator, the journal and the plugin, and
/// parsed only where the engine reads it. (As a `Value` it was parsed and
/// written again at each hop.)
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JsonText(Box<RawValue>);

impl JsonText {
    /// `text`, if it is JSON.
    pub fn from_text(text: String) -> Result<Self, serde_json::Error> {
        RawValue::from_string(text).map(Self)
    }

    /// A copy of `raw` (JSON already checked).
    pub fn from_raw(raw: &RawValue) -> Self {
        Self(raw.to_owned())
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// The text, owned.
    pub fn into_string(self) -> String {
        String::from(Box::<str>::from(self.0))
    }

    /// The JSON as a value.
    pub fn value(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_str(self.0.get())
    }
}

impl From<Value> for JsonText {
    fn from(value: Value) -> Self {
        // Writing a `Value` cannot fail.
        Self(serde_json::value::to_raw_value(&value).unwrap_or_else(|_| RawValue::NULL.to_owned()))
    }
}

impl PartialEq for JsonText {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl std::fmt::Debug for JsonText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a call runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// Tool `tool` of plugin `plugin`.
    Tool {
        /// The plugin.
        plugin: String,
        /// The tool.
        tool: String,
    },
    /// Agent plugin `plugin`.
    Agent {
        /// The plugin.
        plugin: String,
    },
    /// The graph `graph` of the run's graph's `graphs`, as a child run.
    Subgraph {
        /// Its id.
        graph: String,
    },
}

/// A node call to dispatch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Call {
    /// Unique in the run: the node id, `@round` in a loop's later
    /// iterations, `[index]` for a map's item.
    pub id: String,
    /// The node.
    pub node: String,
    /// What runs.
    pub target: Target,
    /// Its input (JSON text).
    pub input: JsonText,
    /// From 1; with the run id and the call id, the idempotency key.
    pub attempt: u32,
    /// How long it may take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Wait this long before starting it (a retry's backoff).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub delay_ms: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// An interrupt raised: the run waits for an answer to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Interrupt {
    /// Its id (the node id, `@round` in a loop's later iterations).
    pub id: String,
    /// The node that raised it.
    pub node: String,
    /// What it asks.
    pub prompt: String,
    /// The schema an answer must match, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    /// For an interrupt that holds a call the host lost in a crash (its
    /// node says `retry-on-resume: never`): that call's id. Its answer is
    /// `{"action": "done", "output": …}`, `{"action": "retry"}` or
    /// `{"action": "fail"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_call: Option<String>,
}

/// Where the run stands after a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "status", try_from = "wire::Status")]
pub enum Status {
    /// Calls are in flight.
    Running,
    /// Nothing runs; interrupts wait for answers.
    Waiting,
    /// Finished with `output`.
    Done {
        /// The run's output. (The host's journal writes it once, as the
        /// snapshot's `output`, and leaves it out here: `null` when absent.)
        #[serde(default, skip_serializing_if = "Value::is_null")]
        output: Value,
    },
    /// Failed.
    Failed {
        /// Why, naming the node.
        error: String,
    },
    /// Cancelled.
    Cancelled {
        /// Why.
        reason: String,
    },
}

impl Status {
    /// Whether the run is over.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Self::Done { .. } | Self::Failed { .. } | Self::Cancelled { .. }
        )
    }
}

/// Something that happened to a node, for the run's events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct NodeEvent {
    /// The node.
    pub node: String,
    /// `started`, `finished`, `failed`, `retrying`, `skipped`,
    /// `interrupted`, `cancelled`.
    pub event: String,
    /// The call, for events of a call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<String>,
    /// An error, a route taken, … .
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// What a step decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Decision {
    /// The changes to the snapshot, in order.
    pub patches: Vec<Patch>,
    /// Calls to dispatch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub calls: Vec<Call>,
    /// In-flight calls to stop (their results will be ignored).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cancel: Vec<String>,
    /// Interrupts raised.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interrupts: Vec<Interrupt>,
    /// What happened to nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<NodeEvent>,
    /// Where the run stands.
    pub status: Status,
}
