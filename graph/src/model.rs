//! The typed graph: what a graph document means once read and checked.
//!
//! These types are the *canonical* form of a graph. The document a user
//! writes (YAML or JSON, `docs/graphs.md`) is read into them by
//! [`crate::document`], which reports every mistake with its line and
//! column; their serde form (JSON, kebab-case) is what the host sends the
//! orchestrator component, and what a graph's hash is taken over.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A node or state-key identifier as written in the document.
pub type Id = String;

/// An agent graph: nodes, the edges between them and the state they share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Graph {
    /// A name for lists and logs; not unique.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// What the graph does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The declared state keys. A run's input is an object of some of them.
    #[serde(default)]
    pub state: BTreeMap<Id, StateKey>,
    /// The nodes by id.
    pub nodes: BTreeMap<Id, Node>,
    /// The edges between nodes. A node without incoming edges (other than
    /// loop edges) is an entry: it is ready when the run starts.
    #[serde(default)]
    pub edges: Vec<Edge>,
    /// Graphs that `subgraph` nodes name by id, each a graph of its own.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub graphs: BTreeMap<Id, Graph>,
    /// Agent definitions by name: an agent node whose input names one
    /// (`input: {agent: tutor, task: …}`) gets the definition in its place.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub agents: BTreeMap<Id, convergio_agent::Definition>,
    /// The state keys a finished run returns as its output (all when
    /// empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output: Vec<Id>,
}

/// A declared state key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct StateKey {
    /// JSON Schema every value of the key must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    /// How a write combines with the value already there.
    #[serde(default)]
    pub reducer: Reducer,
    /// The value before any write (none: the key is absent until written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// What the key holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// How a write to a state key combines with its current value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reducer {
    /// The write replaces the value. Two nodes that can run at the same
    /// time may not both write a `replace` key.
    #[default]
    Replace,
    /// The key is a list; a list written is appended item by item, any
    /// other value as one item.
    Append,
    /// The key is an object; the written object's keys replace its keys
    /// (shallow merge).
    Merge,
    /// The key is a number; the written number is added to it.
    Add,
}

impl Reducer {
    /// The reducer's name as written in a document.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Replace => "replace",
            Self::Append => "append",
            Self::Merge => "merge",
            Self::Add => "add",
        }
    }
}

/// One node of a graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Node {
    /// What the node does.
    pub kind: NodeKind,
    /// The input sent to the node's tool, agent or subgraph: any JSON, in
    /// which a string `"{{ expr }}"` is replaced by the expression's value
    /// and `{{ expr }}` inside a longer string by its text (see
    /// [`crate::template`]). None sends the whole state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    /// Where the node's output goes in the state.
    #[serde(default, skip_serializing_if = "Output::is_none")]
    pub output: Output,
    /// How long one attempt may take, in milliseconds (none: the plugin's
    /// own call deadline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// How a failed attempt is tried again.
    #[serde(default, skip_serializing_if = "Retry::is_once")]
    pub retry: Retry,
    /// What a failure (after the last attempt) does.
    #[serde(default, skip_serializing_if = "OnError::is_fail")]
    pub on_error: OnError,
    /// Whether a call that started before a crash, with no journaled
    /// result, runs again on resume (with the same idempotency key).
    #[serde(default, skip_serializing_if = "RetryOnResume::is_always")]
    pub retry_on_resume: RetryOnResume,
    /// What the node is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// What a node does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeKind {
    /// Call a tool of a tool plugin.
    Tool {
        /// The plugin's id.
        plugin: String,
        /// The tool's name.
        tool: String,
    },
    /// Run an agent plugin.
    Agent {
        /// The plugin's id.
        plugin: String,
    },
    /// Run another graph as a child run; its input is this node's input
    /// (an object of the subgraph's state keys) and its output the child's
    /// output.
    Subgraph {
        /// The graph, by id in [`Graph::graphs`].
        graph: Id,
    },
    /// Run `node` once per item of a list, at most `max_concurrency` at a
    /// time; the output is the list of results in input order.
    Map(Box<MapSpec>),
    /// Route by expressions: the first route whose `when` holds is taken,
    /// else `default`.
    Condition(ConditionSpec),
    /// Pause the run until someone answers; the answer is the output.
    Interrupt(InterruptSpec),
    /// Ask a model to decompose the node's input (the goal) into a graph of
    /// the listed agents and tools, check it, and run it as a child run;
    /// the output is the plan's output.
    Planner(Box<convergio_agent::Planner>),
}

impl NodeKind {
    /// The kind's name as written in a document.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Tool { .. } => "tool",
            Self::Agent { .. } => "agent",
            Self::Subgraph { .. } => "subgraph",
            Self::Map(_) => "map",
            Self::Condition(_) => "condition",
            Self::Interrupt(_) => "interrupt",
            Self::Planner(_) => "planner",
        }
    }
}

/// A `map` node's fan-out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct MapSpec {
    /// An expression that yields the list to map over.
    pub over: String,
    /// The most branches running at once.
    pub max_concurrency: u32,
    /// What runs per item: a `tool`, `agent` or `subgraph` kind. Its
    /// input template may use `item` and `index`.
    pub node: NodeKind,
}

/// A `condition` node's routes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ConditionSpec {
    /// Tried in order.
    pub routes: Vec<Route>,
    /// Taken when no route holds (none: the run fails with an error naming
    /// the node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Id>,
}

/// One route of a `condition` node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Route {
    /// A condition expression.
    pub when: String,
    /// The node it leads to.
    pub to: Id,
}

/// An `interrupt` node: what the person answering sees and may answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct InterruptSpec {
    /// The question (may use `{{ expr }}` templates).
    pub prompt: String,
    /// JSON Schema the answer must match (none: any JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
}

/// Where a node's output goes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Output {
    /// Nowhere (later nodes can still read it as `nodes.ID.output`).
    #[default]
    None,
    /// The whole output is written to this key.
    Key(Id),
    /// Each state key gets the value of an expression over the output
    /// (`output.field`), written with the key's reducer.
    Map(BTreeMap<Id, String>),
}

impl Output {
    /// Whether the output goes nowhere.
    pub fn is_none(&self) -> bool {
        matches!(self, Self::None)
    }

    /// The state keys this output writes.
    pub fn keys(&self) -> Vec<&str> {
        match self {
            Self::None => Vec::new(),
            Self::Key(key) => vec![key.as_str()],
            Self::Map(map) => map.keys().map(String::as_str).collect(),
        }
    }
}

/// How a failed attempt is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Retry {
    /// Attempts in all, the first included (1: no retry).
    pub attempts: u32,
    /// The wait before the second attempt, in milliseconds; it doubles for
    /// each attempt after that, up to `max_backoff_ms`.
    #[serde(default)]
    pub backoff_ms: u64,
    /// The longest wait between attempts, in milliseconds.
    #[serde(default = "Retry::default_max_backoff")]
    pub max_backoff_ms: u64,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            attempts: 1,
            backoff_ms: 0,
            max_backoff_ms: Self::default_max_backoff(),
        }
    }
}

impl Retry {
    fn default_max_backoff() -> u64 {
        30_000
    }

    /// Whether a failure is final at once.
    pub fn is_once(&self) -> bool {
        *self == Self::default()
    }

    /// The wait before attempt `attempt` (from 1; 0 before the first).
    pub fn backoff_before(&self, attempt: u32) -> u64 {
        if attempt <= 1 {
            return 0;
        }
        let doublings = (attempt - 2).min(32);
        self.backoff_ms
            .saturating_mul(1u64 << doublings)
            .min(self.max_backoff_ms)
    }
}

/// What a node's final failure does.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnError {
    /// The run fails with the node's error.
    #[default]
    Fail,
    /// The run goes on at this node (the error edge); the failed node's
    /// other edges are not taken. The error is readable as
    /// `nodes.ID.error`.
    Route(Id),
}

impl OnError {
    /// Whether a failure fails the run.
    pub fn is_fail(&self) -> bool {
        matches!(self, Self::Fail)
    }
}

/// Whether a call interrupted by a crash runs again on resume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RetryOnResume {
    /// Run it again with the same idempotency key.
    #[default]
    Always,
    /// Stop at it with an interrupt that asks the operator to mark it done
    /// (with its output), retry it, or fail it: for an irreversible call
    /// that has no idempotency.
    Never,
}

impl RetryOnResume {
    /// Whether the call runs again.
    pub fn is_always(&self) -> bool {
        matches!(self, Self::Always)
    }
}

/// An edge between two nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Edge {
    /// The node it leaves.
    pub from: Id,
    /// The node it leads to.
    pub to: Id,
    /// A condition over the state and node outputs: the edge is taken only
    /// when it holds (none: always, once `from` finished).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// Makes the edge a loop edge, back to an earlier node, taken at most
    /// this many times in a run; taking it once more fails the run. Cycles
    /// are allowed only through loop edges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_iterations: Option<u32>,
}

impl Edge {
    /// Whether this is a loop edge.
    pub fn is_loop(&self) -> bool {
        self.max_iterations.is_some()
    }
}

impl Graph {
    /// `input` of an agent node with a named definition put in place of
    /// its name (`{agent: tutor, …}` → `{agent: {name: tutor, …}, …}`);
    /// as it is otherwise.
    pub fn with_definition<'a>(&self, input: &'a Value) -> std::borrow::Cow<'a, Value> {
        match input
            .get("agent")
            .and_then(Value::as_str)
            .and_then(|n| self.agents.get(n))
        {
            Some(definition) => {
                let mut input = input.clone();
                input["agent"] = serde_json::to_value(definition).unwrap_or(Value::Null);
                std::borrow::Cow::Owned(input)
            }
            None => std::borrow::Cow::Borrowed(input),
        }
    }
}
