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

use convergio_graph::engine::{self, Input, Instance, Refusal, Request, StepError as EngineError};
use convergio_sdk::orchestrator::{Guest, StepError, StepRequest};
use serde_json::Value;

/// The component.
#[derive(Debug)]
pub struct Orchestrator;

thread_local! {
    static INSTANCE: RefCell<Instance> = RefCell::new(Instance::new());
}

fn step(request: StepRequest) -> Result<String, StepError> {
    let snapshot = match request.snapshot.as_deref() {
        Some(text) => Some(
            serde_json::from_str::<Value>(text)
                .map_err(|e| StepError::Corrupt(format!("the snapshot is not JSON: {e}")))?,
        ),
        None => None,
    };
    let inputs: Vec<Input> = serde_json::from_str(&request.inputs)
        .map_err(|e| StepError::Corrupt(format!("the inputs are not step inputs: {e}")))?;
    let decision = INSTANCE
        .with(|instance| {
            instance.borrow_mut().step(Request {
                run: &request.run_id,
                graph_hash: &request.graph_hash,
                graph: request.graph.as_deref(),
                version: request.version,
                snapshot: snapshot.as_ref(),
                inputs: &inputs,
            })
        })
        .map_err(|refusal| match refusal {
            Refusal::UnknownGraph => StepError::UnknownGraph,
            Refusal::NeedSnapshot => StepError::NeedSnapshot,
            Refusal::InvalidGraph(m) => StepError::InvalidGraph(m),
            Refusal::Step(EngineError::BadInput(m)) => StepError::BadInput(m),
            Refusal::Step(EngineError::Corrupt(m)) => StepError::Corrupt(m),
        })?;
    serde_json::to_string(&decision)
        .map_err(|e| StepError::Corrupt(format!("the decision does not serialize: {e}")))
}

impl Guest for Orchestrator {
    fn check(graph: String) -> Vec<String> {
        engine::compile(&graph).err().unwrap_or_default()
    }

    fn step(request: StepRequest) -> Result<String, StepError> {
        step(request)
    }

    fn forget(run_id: String) {
        INSTANCE.with(|instance| instance.borrow_mut().forget(&run_id));
    }
}

/// The component's allocator: talc, for dlmalloc (Rust's default on
/// wasm), which took about a tenth of a graph step's samples.
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

// The export glue only for the component: a native build (tests, docs) of
// a cdylib cannot link symbols named after WIT interfaces.
#[cfg(target_arch = "wasm32")]
convergio_sdk::export_orchestrator!(Orchestrator);
