//! `convergio-orchestrator`: the platform's orchestrator component.
//!
//! It exports `convergio:platform/orchestrator`, the step function of agent
//! graphs, over the engine of the `convergio-graph` crate. An instance keeps
//! the graphs it compiled (by hash) and the snapshots of the runs it stepped
//! (by run id and version), so on a warm instance a step costs only the
//! inputs and the decision; an instance that lacks either says so
//! (`unknown-graph`, `need-snapshot`) and the host sends it. Nothing here
//! outlives the instance: the host's journal is the record.

use std::cell::RefCell;

use convergio_graph::engine::{
    self, CallResult, Input, Instance, JsonText, Refusal, Request, Status,
    StepError as EngineError, Target,
};
use convergio_graph::snapshot::Op;
use convergio_sdk::orchestrator::{
    CallTarget, Decision, Guest, Interrupt, NodeCall, NodeEvent, Patch, PatchOp, RunStatus,
    StepError, StepInput, StepRequest, ToolTarget,
};
use serde_json::Value;

/// The component.
#[derive(Debug)]
pub struct Orchestrator;

thread_local! {
    static INSTANCE: RefCell<Instance> = RefCell::new(Instance::new());
}

fn step(request: StepRequest) -> Result<Decision, StepError> {
    let snapshot = match request.snapshot.as_deref() {
        Some(text) => Some(json(text, "the snapshot")?),
        None => None,
    };
    let inputs = request
        .inputs
        .into_iter()
        .map(input)
        .collect::<Result<Vec<_>, _>>()?;
    let decision = INSTANCE
        .with(|instance| {
            instance.borrow_mut().step_with(
                Request {
                    run: &request.run_id,
                    graph_hash: &request.graph_hash,
                    graph: request.graph.as_deref(),
                    version: request.version,
                    snapshot: snapshot.as_ref(),
                    inputs: &[],
                },
                inputs,
            )
        })
        .map_err(|refusal| match refusal {
            Refusal::UnknownGraph => StepError::UnknownGraph,
            Refusal::NeedSnapshot => StepError::NeedSnapshot,
            Refusal::InvalidGraph(m) => StepError::InvalidGraph(m),
            Refusal::Step(EngineError::BadInput(m)) => StepError::BadInput(m),
            Refusal::Step(EngineError::Corrupt(m)) => StepError::Corrupt(m),
        })?;
    Ok(decision_of(decision))
}

/// `text` as JSON, or `corrupt` naming `what`.
fn json(text: &str, what: &str) -> Result<Value, StepError> {
    serde_json::from_str(text).map_err(|e| StepError::Corrupt(format!("{what} is not JSON: {e}")))
}

/// A step input as the engine takes it.
fn input(input: StepInput) -> Result<Input, StepError> {
    Ok(match input {
        StepInput::Start(text) => Input::Start {
            input: json(&text, "a start's input")?,
        },
        StepInput::Finished(done) => Input::Result {
            result: match done.outcome {
                convergio_sdk::orchestrator::CallResult::Ok(ok) => CallResult::Ok {
                    output: JsonText::from_text(ok.output).map_err(|e| {
                        StepError::Corrupt(format!("a result's output is not JSON: {e}"))
                    })?,
                    updates: ok
                        .updates
                        .into_iter()
                        .map(|(key, value)| Ok((key, json(&value, "a state update")?)))
                        .collect::<Result<_, StepError>>()?,
                },
                convergio_sdk::orchestrator::CallResult::Err(error) => CallResult::Err { error },
            },
            call: done.call,
        },
        StepInput::Answer(answer) => Input::Answer {
            value: json(&answer.value, "an answer")?,
            interrupt: answer.interrupt,
        },
        StepInput::Resume => Input::Resume,
        StepInput::Cancel(reason) => Input::Cancel { reason },
    })
}

/// JSON text of a value the engine made. `serde_json::to_string` writes
/// into one buffer; `Display` (`to_string()`) goes through the formatting
/// machinery, which was 3 – 4 % of a graph run's samples in this
/// component. Serializing a `Value` cannot fail.
fn text(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// The engine's decision as the interface returns it.
fn decision_of(decision: engine::Decision) -> Decision {
    Decision {
        patches: decision
            .patches
            .into_iter()
            .map(|p| Patch {
                op: match p.op {
                    Op::Set => PatchOp::Set,
                    Op::Remove => PatchOp::Remove,
                    Op::Append => PatchOp::Append,
                    Op::Merge => PatchOp::Merge,
                    Op::Add => PatchOp::Add,
                },
                value: p.value.map(|v| String::from(Box::<str>::from(v))),
                path: p.path.into_string(),
            })
            .collect(),
        calls: decision
            .calls
            .into_iter()
            .map(|c| NodeCall {
                target: match c.target {
                    Target::Tool { plugin, tool } => CallTarget::Tool(ToolTarget { plugin, tool }),
                    Target::Agent { plugin } => CallTarget::Agent(plugin),
                    Target::Subgraph { graph } => CallTarget::Subgraph(graph),
                },
                input: c.input.into_string(),
                id: c.id,
                node: c.node,
                attempt: c.attempt,
                timeout_ms: c.timeout_ms,
                delay_ms: c.delay_ms,
            })
            .collect(),
        cancel: decision.cancel,
        interrupts: decision
            .interrupts
            .into_iter()
            .map(|i| Interrupt {
                schema: i.schema.as_ref().map(text),
                id: i.id,
                node: i.node,
                prompt: i.prompt,
                held_call: i.held_call,
            })
            .collect(),
        events: decision
            .events
            .into_iter()
            .map(|e| NodeEvent {
                node: e.node,
                event: e.event,
                call: e.call,
                detail: e.detail,
            })
            .collect(),
        status: match decision.status {
            Status::Running => RunStatus::Running,
            Status::Waiting => RunStatus::Waiting,
            Status::Done { output } => RunStatus::Done(text(&output)),
            Status::Failed { error } => RunStatus::Failed(error),
            Status::Cancelled { reason } => RunStatus::Cancelled(reason),
        },
    }
}

impl Guest for Orchestrator {
    fn check(graph: String) -> Vec<String> {
        engine::compile(&graph).err().unwrap_or_default()
    }

    fn step(request: StepRequest) -> Result<Decision, StepError> {
        step(request)
    }

    fn forget(run_id: String) {
        INSTANCE.with(|instance| instance.borrow_mut().forget(&run_id));
    }
}

/// The component's allocator: free lists per size class
/// ([`convergio_sdk::alloc::SmallBlocks`]). A step makes a few hundred
/// small allocations (JSON values, strings, the decision's records), and
/// dlmalloc (Rust's default on wasm), then talc, took about a tenth of a
/// graph step's samples in them.
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: convergio_sdk::alloc::SmallBlocks = convergio_sdk::alloc::SmallBlocks::new();

// The export glue only for the component: a native build (tests, docs) of
// a cdylib cannot link symbols named after WIT interfaces.
#[cfg(target_arch = "wasm32")]
convergio_sdk::export_orchestrator!(Orchestrator);
