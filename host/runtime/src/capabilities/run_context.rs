//! `convergio:platform/run-context`: which graph-run node call a store is
//! serving, and the steps that call recorded in the run's journal. Every
//! plugin may import it (it grants nothing); the run driver sets it for the
//! length of each node call, so a tool can make a side effect once per
//! idempotency key, and an agent can keep its model answers and tool
//! results so that the call, run again after a crash, does not repeat them.

use std::sync::Arc;

use convergio_journal::{CallStep, RunId};
use wasmtime::component::{HasData, Linker};

use super::runs::RunsCell;
use super::{CapabilityHost, HostCapability, Services};
use crate::config::{Platform, PluginSpec};
use crate::{Capability, Result};

#[allow(missing_docs, missing_debug_implementations)]
mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        inline: "
            package convergio:run-context-host;
            world run-context-host {
                import convergio:platform/run-context@0.1.0;
            }
        ",
        world: "convergio:run-context-host/run-context-host",
        imports: { default: async },
    });
}

use bindings::convergio::platform::run_context as wit;

/// A node call, as a plugin sees it through `run-context`.
#[derive(Debug)]
pub struct CallContext {
    /// The run.
    pub run_id: RunId,
    /// The graph node.
    pub node_id: String,
    /// The call (`node`, `node@2`, `node[3]`).
    pub call_id: String,
    /// From 1.
    pub attempt: u32,
    /// The same for a call dispatched again after a crash.
    pub idempotency_key: String,
    /// Its model calls' run (for the run's budget) and meter.
    pub inference: convergio_cap_inference::RunCaller,
    /// The warnings and errors its plugin logged while serving it, for the
    /// run's events (at most [`convergio_cap_runs::MAX_WARNINGS`]).
    pub warnings: std::sync::Mutex<Vec<String>>,
    /// The runs its plugin started (or found again) through `runs`: spawned
    /// agents, a plan.
    pub runs: std::sync::Mutex<Vec<String>>,
}

impl CallContext {
    /// Keep `line` among the call's warnings, if there is room.
    pub fn warn(&self, line: String) {
        let mut warnings = self.warnings.lock().unwrap_or_else(|e| e.into_inner());
        if warnings.len() < convergio_cap_runs::MAX_WARNINGS {
            let line = match line.char_indices().nth(500) {
                Some((cut, _)) => format!("{}…", &line[..cut]),
                None => line,
            };
            warnings.push(line);
        }
    }
}

pub(crate) struct RunContext;

impl HostCapability for RunContext {
    const CAPABILITY: Option<Capability> = None;
    type Shared = ();
    /// The run driver, whose journal keeps the steps.
    type Plugin = RunsCell;
    /// The call the store serves now, if any.
    type Store = Option<Arc<CallContext>>;

    fn provides(interface: &str) -> bool {
        interface == "convergio:platform/run-context"
    }

    fn open(_: &Platform, _: &Services) -> Result<()> {
        Ok(())
    }

    fn prepare(
        _: &(),
        services: &Services,
        _: &Arc<PluginSpec>,
    ) -> std::result::Result<RunsCell, Vec<String>> {
        Ok(Arc::clone(&services.runs))
    }

    fn store(_: &RunsCell) -> Option<Arc<CallContext>> {
        None
    }

    fn add_to_linker<T: CapabilityHost>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        wit::add_to_linker::<T, RunContextView<'static>>(linker, view::<T>)
    }
}

/// A store's view for `run-context`.
pub(crate) struct RunContextView<'a> {
    current: Option<Arc<CallContext>>,
    runs: &'a RunsCell,
}

impl HasData for RunContextView<'static> {
    type Data<'a> = RunContextView<'a>;
}

fn view<T: CapabilityHost>(host: &mut T) -> RunContextView<'_> {
    let parts = host.parts();
    RunContextView {
        current: parts.caps.run_context.clone(),
        runs: &parts.plugin.run_context,
    }
}

impl RunContextView<'_> {
    /// The journal of the run this call belongs to, with the call.
    fn journal(&self) -> Option<(Arc<dyn convergio_journal::RunStore>, Arc<CallContext>)> {
        let call = self.current.clone()?;
        let runs = self
            .runs
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .upgrade()?;
        Some((Arc::clone(runs.store()), call))
    }
}

impl wit::Host for RunContextView<'_> {
    async fn current(&mut self) -> Option<wit::CallContext> {
        self.current.as_deref().map(|c| wit::CallContext {
            run_id: c.run_id.to_string(),
            node_id: c.node_id.clone(),
            call_id: c.call_id.clone(),
            attempt: c.attempt,
            idempotency_key: c.idempotency_key.clone(),
        })
    }

    async fn recorded(&mut self, index: u32) -> Option<wit::RecordedStep> {
        let (store, call) = self.journal()?;
        let step = tokio::task::spawn_blocking(move || {
            store.call_step(&call.run_id, &call.call_id, call.attempt, index)
        })
        .await;
        let step = match step {
            Ok(Ok(step)) => step?,
            Ok(Err(e)) => {
                tracing::warn!("reading a node call's recorded step failed: {e}");
                return None;
            }
            Err(e) => {
                tracing::warn!("reading a node call's recorded step failed: {e}");
                return None;
            }
        };
        Some(wit::RecordedStep {
            index: step.index,
            kind: step.kind,
            key: step.key,
            output: String::from_utf8_lossy(&step.result).into_owned(),
        })
    }

    async fn record(&mut self, step: wit::RecordedStep) -> std::result::Result<bool, String> {
        let Some((store, call)) = self.journal() else {
            return Ok(false);
        };
        let step = CallStep {
            index: step.index,
            kind: step.kind,
            key: step.key,
            result: step.output.into_bytes(),
        };
        tokio::task::spawn_blocking(move || {
            store.record_step(&call.run_id, &call.call_id, call.attempt, &step)
        })
        .await
        .map_err(|e| format!("recording the step failed: {e}"))?
        .map_err(|e| format!("recording the step failed: {e}"))?;
        Ok(true)
    }
}
