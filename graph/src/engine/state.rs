//! A run's snapshot as the engine holds it between steps: typed, indexed by
//! the plan's node and edge numbers, so a step reads and writes fields
//! instead of walking a JSON tree.
//!
//! The journal and the host keep the snapshot's JSON layout (documented in
//! `run.rs` and docs/graphs.md); [`RunState::from_json`] reads it and
//! [`RunState::to_json`] writes it, and every change a step makes to a
//! `RunState` is also emitted as the [`crate::snapshot::Patch`] that makes
//! the same change to the JSON, so the two never differ.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{Call, Interrupt, StepError};
use crate::plan::Plan;

/// What the scheduling record says of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NodeState {
    Waiting,
    Running,
    Asking,
    Done,
    Failed,
    Skipped,
}

impl NodeState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Running => "running",
            Self::Asking => "asking",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "running" => Self::Running,
            "asking" => Self::Asking,
            "done" => Self::Done,
            "failed" => Self::Failed,
            "skipped" => Self::Skipped,
            _ => Self::Waiting,
        }
    }
}

/// A node's scheduling record (`sched/ID`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sched {
    pub state: NodeState,
    pub round: u64,
    /// Started again by a loop edge: ready without its forward edges.
    pub looped: bool,
}

impl Sched {
    /// The `sched/ID` record as a value (its layout is the `Serialize` impl's).
    pub(crate) fn to_json(self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// The `sched/ID` record: `{"s": state, "r": round, "loop": true?}`.
impl serde::Serialize for Sched {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut rec = serializer.serialize_map(Some(2 + usize::from(self.looped)))?;
        rec.serialize_entry("s", self.state.as_str())?;
        rec.serialize_entry("r", &self.round)?;
        if self.looped {
            rec.serialize_entry("loop", &true)?;
        }
        rec.end()
    }
}

/// The run's status field (and the tag of a decision's status).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum RunStatus {
    Running,
    Waiting,
    Done,
    Failed,
    Cancelled,
}

impl RunStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Waiting => "waiting",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "running" => Self::Running,
            "waiting" => Self::Waiting,
            "done" => Self::Done,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }
}

/// A running map node (`maps/ID`).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct MapState {
    pub items: Vec<Value>,
    pub results: BTreeMap<u64, Value>,
    pub next: u64,
    pub round: u64,
}

impl MapState {
    /// The `maps/ID` record.
    pub(crate) fn to_json(&self) -> Value {
        let results: Map<String, Value> = self
            .results
            .iter()
            .map(|(i, v)| (i.to_string(), v.clone()))
            .collect();
        let mut rec = Map::new();
        rec.insert("items".to_owned(), Value::Array(self.items.clone()));
        rec.insert("results".to_owned(), Value::Object(results));
        rec.insert("next".to_owned(), Value::from(self.next));
        rec.insert("round".to_owned(), Value::from(self.round));
        Value::Object(rec)
    }
}

/// The snapshot's containers, for keeping one that exists but is empty
/// (the JSON keeps `"calls": {}` once a call was removed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Container {
    Sched = 1,
    Edges = 2,
    Loops = 4,
    Calls = 8,
    Maps = 16,
    Interrupts = 32,
}

impl Container {
    fn of(key: &str) -> Option<Self> {
        Some(match key {
            "sched" => Self::Sched,
            "edges" => Self::Edges,
            "loops" => Self::Loops,
            "calls" => Self::Calls,
            "maps" => Self::Maps,
            "interrupts" => Self::Interrupts,
            _ => return None,
        })
    }
}

/// A run's snapshot, typed. Build it with [`RunState::default`] (a run not
/// started) or [`RunState::from_json`]; step it with
/// [`super::step_state`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunState {
    pub(crate) status: Option<RunStatus>,
    /// The graph state (an object once started; null before).
    pub(crate) values: Value,
    /// `{id: {"output": …} | {"error": …}}` (null until a node ends).
    pub(crate) nodes: Value,
    /// By node index.
    pub(crate) sched: Vec<Option<Sched>>,
    /// By edge index: taken, not taken, undecided.
    pub(crate) edges: Vec<Option<bool>>,
    /// By edge index: times a loop edge was taken (0: never).
    pub(crate) loops: Vec<u64>,
    pub(crate) calls: BTreeMap<String, Call>,
    /// By node index.
    pub(crate) maps: BTreeMap<usize, MapState>,
    pub(crate) interrupts: BTreeMap<String, Interrupt>,
    pub(crate) output: Option<Value>,
    pub(crate) error: Option<Value>,
    /// Keys this engine does not use, kept as they were.
    pub(crate) other: Map<String, Value>,
    /// Bits of [`Container`]s that exist.
    pub(crate) present: u8,
}

fn corrupt(what: impl std::fmt::Display) -> StepError {
    StepError::Corrupt(what.to_string())
}

fn object<'v>(value: &'v Value, key: &str) -> Result<&'v Map<String, Value>, StepError> {
    value
        .as_object()
        .ok_or_else(|| corrupt(format!("`{key}` is not an object")))
}

impl RunState {
    /// A run that has not started, sized for `plan`.
    pub fn new(plan: &Plan) -> Self {
        Self {
            sched: vec![None; plan.nodes.len()],
            edges: vec![None; plan.edges.len()],
            loops: vec![0; plan.edges.len()],
            ..Self::default()
        }
    }

    /// Read a snapshot in the journal's JSON layout.
    pub fn from_json(plan: &Plan, snap: &Value) -> Result<Self, StepError> {
        let Value::Object(fields) = snap else {
            return Err(corrupt("not an object"));
        };
        let mut st = Self::new(plan);
        let node = |id: &str, key: &str| {
            plan.node_index(id)
                .ok_or_else(|| corrupt(format!("`{key}` names node `{id}`, not in the graph")))
        };
        let edge = |index: &str, key: &str| {
            index
                .parse::<usize>()
                .ok()
                .filter(|&e| e < plan.edges.len())
                .ok_or_else(|| corrupt(format!("`{key}` names edge `{index}`, not in the graph")))
        };
        for (key, value) in fields {
            if let Some(container) = Container::of(key) {
                object(value, key)?;
                st.present |= container as u8;
            }
            match key.as_str() {
                "status" => {
                    st.status = Some(
                        value
                            .as_str()
                            .and_then(RunStatus::parse)
                            .ok_or_else(|| corrupt(format!("status {value}")))?,
                    );
                }
                "values" => st.values = value.clone(),
                "nodes" => {
                    object(value, key)?;
                    st.nodes = value.clone();
                }
                "sched" => {
                    for (id, rec) in object(value, key)? {
                        st.sched[node(id, key)?] = Some(Sched {
                            state: NodeState::parse(
                                rec.get("s").and_then(Value::as_str).unwrap_or("waiting"),
                            ),
                            round: rec.get("r").and_then(Value::as_u64).unwrap_or(0),
                            looped: rec.get("loop").and_then(Value::as_bool).unwrap_or(false),
                        });
                    }
                }
                "edges" => {
                    for (index, taken) in object(value, key)? {
                        st.edges[edge(index, key)?] = Some(taken.as_str() == Some("taken"));
                    }
                }
                "loops" => {
                    for (index, times) in object(value, key)? {
                        st.loops[edge(index, key)?] = times.as_u64().unwrap_or(0);
                    }
                }
                "calls" => {
                    for (id, call) in object(value, key)? {
                        // Through text: a call's input is JSON text, which
                        // a `Value` cannot be read into.
                        let call: Call = serde_json::from_str(&call.to_string())
                            .map_err(|e| corrupt(format!("call `{id}`: {e}")))?;
                        st.calls.insert(id.clone(), call);
                    }
                }
                "maps" => {
                    for (id, rec) in object(value, key)? {
                        let results = match rec.get("results") {
                            Some(Value::Object(r)) => r
                                .iter()
                                .map(|(i, v)| {
                                    i.parse::<u64>()
                                        .map(|i| (i, v.clone()))
                                        .map_err(|_| corrupt(format!("map `{id}`: result `{i}`")))
                                })
                                .collect::<Result<_, _>>()?,
                            _ => BTreeMap::new(),
                        };
                        st.maps.insert(
                            node(id, key)?,
                            MapState {
                                items: rec
                                    .get("items")
                                    .and_then(Value::as_array)
                                    .cloned()
                                    .unwrap_or_default(),
                                results,
                                next: rec.get("next").and_then(Value::as_u64).unwrap_or(0),
                                round: rec.get("round").and_then(Value::as_u64).unwrap_or(0),
                            },
                        );
                    }
                }
                "interrupts" => {
                    for (id, raised) in object(value, key)? {
                        let raised: Interrupt = serde_json::from_value(raised.clone())
                            .map_err(|e| corrupt(format!("interrupt `{id}`: {e}")))?;
                        st.interrupts.insert(id.clone(), raised);
                    }
                }
                "output" => st.output = Some(value.clone()),
                "error" => st.error = Some(value.clone()),
                _ => {
                    st.other.insert(key.clone(), value.clone());
                }
            }
        }
        Ok(st)
    }

    /// The snapshot in the journal's JSON layout: what folding the run's
    /// patches gives.
    pub fn to_json(&self, plan: &Plan) -> Value {
        let mut out = Map::new();
        if let Some(status) = self.status {
            out.insert("status".to_owned(), Value::from(status.as_str()));
        }
        if !self.values.is_null() {
            out.insert("values".to_owned(), self.values.clone());
        }
        if !self.nodes.is_null() {
            out.insert("nodes".to_owned(), self.nodes.clone());
        }
        let has = |c: Container| self.present & c as u8 != 0;
        if has(Container::Sched) {
            let sched = self
                .sched
                .iter()
                .enumerate()
                .filter_map(|(n, s)| Some((plan.nodes[n].id.clone(), s.as_ref()?.to_json())))
                .collect();
            out.insert("sched".to_owned(), Value::Object(sched));
        }
        if has(Container::Edges) {
            let edges = self
                .edges
                .iter()
                .enumerate()
                .filter_map(|(e, t)| Some((e.to_string(), Value::from(edge_word((*t)?)))))
                .collect();
            out.insert("edges".to_owned(), Value::Object(edges));
        }
        if has(Container::Loops) {
            let loops = self
                .loops
                .iter()
                .enumerate()
                .filter(|(_, t)| **t > 0)
                .map(|(e, t)| (e.to_string(), Value::from(*t)))
                .collect();
            out.insert("loops".to_owned(), Value::Object(loops));
        }
        if has(Container::Calls) {
            let calls = self
                .calls
                .iter()
                .map(|(id, c)| (id.clone(), serde_json::to_value(c).unwrap_or(Value::Null)))
                .collect();
            out.insert("calls".to_owned(), Value::Object(calls));
        }
        if has(Container::Maps) {
            let maps = self
                .maps
                .iter()
                .map(|(n, m)| (plan.nodes[*n].id.clone(), m.to_json()))
                .collect();
            out.insert("maps".to_owned(), Value::Object(maps));
        }
        if has(Container::Interrupts) {
            let interrupts = self
                .interrupts
                .iter()
                .map(|(id, i)| (id.clone(), serde_json::to_value(i).unwrap_or(Value::Null)))
                .collect();
            out.insert("interrupts".to_owned(), Value::Object(interrupts));
        }
        if let Some(output) = &self.output {
            out.insert("output".to_owned(), output.clone());
        }
        if let Some(error) = &self.error {
            out.insert("error".to_owned(), error.clone());
        }
        for (key, value) in &self.other {
            out.insert(key.clone(), value.clone());
        }
        Value::Object(out)
    }

    /// Mark the container a patch at `path` writes into as existing.
    pub(crate) fn touch(&mut self, path: &[&str]) {
        if let Some(container) = path.first().and_then(|k| Container::of(k)) {
            self.present |= container as u8;
        }
    }
}

/// An edge's decision as the snapshot spells it.
pub(crate) fn edge_word(taken: bool) -> &'static str {
    if taken { "taken" } else { "not-taken" }
}
