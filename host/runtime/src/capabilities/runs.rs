//! `convergio:platform/runs`: plugins granted `runs = true` start graph runs
//! on the host's run driver ([`convergio_cap_runs::Runs`]), wait for them,
//! read them, answer their interrupts and cancel them.
//!
//! The driver is made after the runtime (it calls plugins through it), so
//! the capability holds a cell that [`crate::graphs::runs`] fills: until
//! then, and in a process that runs no graphs, every call answers
//! `unavailable`.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use convergio_cap_runs::{Error as RunsError, Runs, Status, WeakRuns};
use convergio_journal::{RunId, RunInfo};
use wasmtime::component::{HasData, Linker};

use super::{CapabilityHost, HostCapability, Services};
use crate::config::{Platform, PluginSpec};
use crate::{Capability, Result};

#[allow(missing_docs, missing_debug_implementations)]
mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        inline: "
            package convergio:runs-host;
            world runs-host {
                import convergio:platform/runs@0.1.0;
            }
        ",
        world: "convergio:runs-host/runs-host",
        imports: { default: async },
    });
}

use bindings::convergio::platform::runs as wit;

/// The run driver the capability serves, once there is one. Weak: the
/// driver holds the runtime (it calls plugins through it), so a strong
/// handle here would keep both alive forever.
pub(crate) type RunsCell = Arc<RwLock<WeakRuns>>;

pub(crate) struct RunsCapability;

/// One plugin's view: the driver, if the plugin is granted `runs`; else
/// why not, for every call's answer.
pub(crate) struct RunsPlugin {
    cell: RunsCell,
    denied: Option<String>,
}

impl HostCapability for RunsCapability {
    // A plugin that imports it as an optional capability and is not granted
    // it gets every call answered `unavailable`, naming the grant to add.
    const CAPABILITY: Option<Capability> = Some(Capability::Runs);
    type Shared = RunsCell;
    type Plugin = RunsPlugin;
    type Store = ();

    fn provides(interface: &str) -> bool {
        interface == "convergio:platform/runs"
    }

    fn open(_: &Platform, services: &Services) -> Result<RunsCell> {
        Ok(Arc::clone(&services.runs))
    }

    fn prepare(
        shared: &RunsCell,
        _: &Services,
        spec: &Arc<PluginSpec>,
    ) -> std::result::Result<RunsPlugin, Vec<String>> {
        let denied = (!spec.grants.grants(Capability::Runs)).then(|| {
            format!(
                "plugin `{}` is not granted `runs`; to allow it, add `runs = true` under [plugin.grants] of the [[plugin]] with id = \"{}\" ({})",
                spec.id, spec.id, spec.config_location
            )
        });
        Ok(RunsPlugin {
            cell: Arc::clone(shared),
            denied,
        })
    }

    fn store(_: &RunsPlugin) {}

    fn add_to_linker<T: CapabilityHost>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        wit::add_to_linker::<T, HasRuns>(linker, view::<T>)
    }
}

/// A store's view for `runs`: the driver's cell, and the node call the
/// store serves (whose report lists the runs it starts).
pub(crate) struct RunsView<'a> {
    plugin: &'a RunsPlugin,
    call: Option<&'a super::CallContext>,
}

struct HasRuns;

impl HasData for HasRuns {
    type Data<'a> = RunsView<'a>;
}

fn view<T: CapabilityHost>(host: &mut T) -> RunsView<'_> {
    let parts = host.parts();
    RunsView {
        plugin: &parts.plugin.runs,
        call: parts.caps.run_context.as_deref(),
    }
}

impl RunsView<'_> {
    /// A run was started (or found) for the node call this store serves.
    fn started(&self, run: &str) {
        if let Some(call) = self.call {
            let mut runs = call.runs.lock().unwrap_or_else(|e| e.into_inner());
            if !runs.iter().any(|r| r == run) {
                runs.push(run.to_owned());
            }
        }
    }

    fn runs(&self) -> std::result::Result<Runs, wit::RunsError> {
        if let Some(denied) = &self.plugin.denied {
            return Err(wit::RunsError::Unavailable(denied.clone()));
        }
        self.plugin
            .cell
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .upgrade()
            .ok_or_else(|| {
                wit::RunsError::Unavailable(
                    "this host runs no graphs: the platform needs an orchestrator plugin, and \
                     graph runs start with `convergio run` or `convergio graph run`"
                        .to_owned(),
                )
            })
    }
}

fn read_graph(text: &str) -> std::result::Result<convergio_graph::model::Graph, wit::RunsError> {
    convergio_graph::document::read(text).map_err(|d| {
        wit::RunsError::InvalidGraph(
            d.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
        )
    })
}

fn json_arg(what: &str, text: &str) -> std::result::Result<serde_json::Value, wit::RunsError> {
    serde_json::from_str(text)
        .map_err(|e| wit::RunsError::BadInput(format!("{what} is not JSON: {e}")))
}

fn error(e: RunsError) -> wit::RunsError {
    match e {
        e @ RunsError::NoRun(_) => wit::RunsError::NoRun(e.to_string()),
        RunsError::InvalidGraph(m) => wit::RunsError::InvalidGraph(m),
        e @ RunsError::BadInput { .. } => wit::RunsError::BadInput(e.to_string()),
        e @ RunsError::Status { .. } => wit::RunsError::BadStatus(e.to_string()),
        other => wit::RunsError::Failed(other.to_string()),
    }
}

fn info(info: RunInfo) -> wit::RunInfo {
    wit::RunInfo {
        run_id: info.id.into(),
        status: info.status.as_str().to_owned(),
        parent: info.parent.map(|(p, _)| p.into()),
        created_ms: info.created_ms,
        updated_ms: info.updated_ms,
    }
}

impl wit::Host for RunsView<'_> {
    async fn start(
        &mut self,
        graph: String,
        input: String,
    ) -> std::result::Result<String, wit::RunsError> {
        let runs = self.runs()?;
        let graph = read_graph(&graph)?;
        let input = json_arg("the input", &input)?;
        let run = runs.start(&graph, input, None).await.map_err(error)?;
        self.started(&run);
        Ok(run.into())
    }

    async fn start_as(
        &mut self,
        run_id: String,
        graph: String,
        input: String,
    ) -> std::result::Result<String, wit::RunsError> {
        let runs = self.runs()?;
        if runs.info(&RunId::from(run_id.clone())).await.is_ok() {
            self.started(&run_id);
            return Ok(run_id);
        }
        let graph = read_graph(&graph)?;
        let input = json_arg("the input", &input)?;
        let started = match runs.start(&graph, input, Some(run_id.clone())).await {
            Ok(run) => Ok(run.into()),
            // Started meanwhile by another call with the same id.
            Err(RunsError::Journal(convergio_journal::Error::RunExists(_))) => Ok(run_id),
            Err(e) => Err(error(e)),
        };
        if let Ok(run) = &started {
            self.started(run);
        }
        started
    }

    async fn wait(
        &mut self,
        run_id: String,
        timeout_ms: u32,
    ) -> std::result::Result<Option<String>, wit::RunsError> {
        let runs = self.runs()?;
        let run = RunId::from(run_id);
        let limit = Duration::from_millis(u64::from(timeout_ms));
        match tokio::time::timeout(limit, runs.wait(&run)).await {
            Err(_) => Ok(None),
            Ok(status) => {
                let status: Status = status.map_err(error)?;
                serde_json::to_string(&status)
                    .map(Some)
                    .map_err(|e| wit::RunsError::Failed(e.to_string()))
            }
        }
    }

    async fn info(&mut self, run_id: String) -> std::result::Result<wit::RunInfo, wit::RunsError> {
        let runs = self.runs()?;
        Ok(info(runs.info(&RunId::from(run_id)).await.map_err(error)?))
    }

    async fn snapshot(&mut self, run_id: String) -> std::result::Result<String, wit::RunsError> {
        let runs = self.runs()?;
        let view = runs.view(&RunId::from(run_id)).await.map_err(error)?;
        Ok(view.snapshot.to_string())
    }

    async fn answer(
        &mut self,
        run_id: String,
        interrupt: String,
        value: String,
    ) -> std::result::Result<(), wit::RunsError> {
        let runs = self.runs()?;
        let value = json_arg("the answer", &value)?;
        runs.answer(&RunId::from(run_id), &interrupt, value)
            .await
            .map_err(error)
    }

    async fn cancel(
        &mut self,
        run_id: String,
        reason: String,
    ) -> std::result::Result<(), wit::RunsError> {
        let runs = self.runs()?;
        runs.cancel(&RunId::from(run_id), &reason)
            .await
            .map_err(error)
    }
}
