//! What one orchestrator instance keeps between steps: the graphs it
//! compiled (by hash) and the snapshots of the runs it stepped (by run id
//! and version). The orchestrator component and the host's in-process step
//! function both step through it, so they behave alike.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{Decision, Input, RunState, StepError, step_state};
use crate::model::Graph;
use crate::plan::Plan;

/// Compiled graphs an instance keeps.
const MAX_GRAPHS: usize = 64;
/// Run snapshots an instance keeps.
const MAX_RUNS: usize = 256;

/// Why an instance did not take a step. The run is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The instance does not hold the graph: send it.
    #[error("unknown graph: send it")]
    UnknownGraph,
    /// The instance holds no copy of the run at this version: send it.
    #[error("no snapshot of the run at this version: send it")]
    NeedSnapshot,
    /// The graph cannot run.
    #[error("invalid graph: {0}")]
    InvalidGraph(String),
    /// The step itself was refused.
    #[error(transparent)]
    Step(#[from] StepError),
}

/// One step's request.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The run.
    pub run: &'a str,
    /// SHA-256 of the graph's canonical JSON, lowercase hex.
    pub graph_hash: &'a str,
    /// The graph's canonical JSON, when sent.
    pub graph: Option<&'a str>,
    /// Steps journaled so far.
    pub version: u64,
    /// The run's snapshot at `version`, when sent.
    pub snapshot: Option<&'a Value>,
    /// What happened since the last step.
    pub inputs: &'a [Input],
}

/// An orchestrator instance's memory.
#[derive(Debug, Default)]
pub struct Instance {
    graphs: HashMap<String, Arc<Plan>>,
    runs: HashMap<String, (u64, RunState)>,
}

/// SHA-256 of `text`, lowercase hex: a graph's hash.
pub fn graph_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let mut out = String::with_capacity(64);
    for byte in digest {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 15)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Read and compile a graph's canonical JSON.
pub fn compile(text: &str) -> Result<Plan, Vec<String>> {
    let graph: Graph = serde_json::from_str(text)
        .map_err(|e| vec![format!("not a canonical graph document: {e}")])?;
    check(&graph)?;
    Plan::compile(&graph).map_err(|e| e.0)
}

/// Every rule `graph` breaks ([`crate::validate`]), as messages.
pub fn check(graph: &Graph) -> Result<(), Vec<String>> {
    let problems = crate::validate::validate(graph);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.iter().map(ToString::to_string).collect())
    }
}

impl Instance {
    /// An instance that holds nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Take one step.
    pub fn step(&mut self, request: Request<'_>) -> Result<Decision, Refusal> {
        let inputs = request.inputs.to_vec();
        self.step_with(request, inputs)
    }

    /// [`Instance::step`] with inputs the caller owns (the component's, just
    /// decoded), taken instead of copied: `request.inputs` is not read.
    pub fn step_with(
        &mut self,
        request: Request<'_>,
        inputs: Vec<Input>,
    ) -> Result<Decision, Refusal> {
        let plan = match (request.graph, self.graphs.get(request.graph_hash)) {
            (_, Some(plan)) => Arc::clone(plan),
            (None, None) => return Err(Refusal::UnknownGraph),
            (Some(text), None) => {
                if graph_hash(text) != request.graph_hash {
                    return Err(Refusal::InvalidGraph(format!(
                        "the graph sent does not have the hash {}",
                        request.graph_hash
                    )));
                }
                let plan =
                    Arc::new(compile(text).map_err(|e| Refusal::InvalidGraph(e.join("; ")))?);
                if self.graphs.len() >= MAX_GRAPHS {
                    self.graphs.clear();
                }
                self.graphs
                    .insert(request.graph_hash.to_owned(), Arc::clone(&plan));
                plan
            }
        };
        if let Some(snap) = request.snapshot {
            let state = RunState::from_json(&plan, snap)?;
            if self.runs.len() >= MAX_RUNS {
                self.runs.clear();
            }
            self.runs
                .insert(request.run.to_owned(), (request.version, state));
        }
        let Some((version, state)) = self
            .runs
            .get_mut(request.run)
            .filter(|(version, _)| *version == request.version)
        else {
            return Err(Refusal::NeedSnapshot);
        };
        // A step that fails leaves its copy unusable: it is dropped, and the
        // next request sends the snapshot.
        let decision = match step_state(&plan, state, inputs) {
            Ok(decision) => decision,
            Err(e) => {
                self.runs.remove(request.run);
                return Err(e.into());
            }
        };
        *version += 1;
        if decision.status.is_final() {
            self.runs.remove(request.run);
        }
        Ok(decision)
    }

    /// Drop what the instance keeps of `run`.
    pub fn forget(&mut self, run: &str) {
        self.runs.remove(run);
    }
}
