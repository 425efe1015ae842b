//! Graph runs on the runtime: the orchestrator plugin as the step function,
//! tool and agent plugins as the node executors.
//!
//! [`ComponentSteps`] calls the orchestrator plugin's `step` (on a warm
//! instance when it keeps some, so its cache of graphs and snapshots
//! spares the host sending them). [`PluginExecutor`] calls node plugins by
//! id on behalf of the orchestrator plugin — only those its `plugins` grant
//! names — each in its own store under its own grants and limits, with the
//! call's [`CallContext`] (run, node, attempt, idempotency key) served
//! through `convergio:platform/run-context`.

use std::sync::Arc;

use convergio_cap_inference::{RunCaller, Usage, UsageMeter};
use convergio_cap_runs::{
    CallReport, CallUsage, NodeCall, NodeExecutor, StepFailure, StepFunction, StepRequest, Target,
};
use convergio_graph::engine::{
    Call, CallResult, Decision, Input, Interrupt, JsonText, NodeEvent, Status,
};
use convergio_graph::snapshot::{Op, Patch, Pointer};
use convergio_journal::BoxFuture;
use serde_json::Value;
use serde_json::value::RawValue;
use wasmtime::component::Val;

use crate::bindings::node_calls as wit;
use crate::capabilities::CallContext;
use crate::config::{GraphDurability, Platform};
use crate::runtime::Runtime;
use crate::{Error, PluginKind};

/// The orchestrator plugin of `platform`: `[graphs] orchestrator`, or the
/// only plugin of kind `orchestrator`.
pub fn orchestrator_id(platform: &Platform) -> Result<String, Error> {
    if let Some(id) = &platform.graphs.orchestrator {
        return Ok(id.clone());
    }
    let found: Vec<&str> = platform
        .plugins
        .iter()
        .filter(|p| p.manifest.kind == PluginKind::Orchestrator)
        .map(|p| p.id.as_str())
        .collect();
    match found.as_slice() {
        [one] => Ok((*one).to_owned()),
        [] => Err(Error::Invalid(vec![format!(
            "{}: no plugin of kind `orchestrator`: agent graphs need one; add the platform's \
             (`components/orchestrator`) as a [[plugin]] and grant it the plugins its graphs \
             call (`plugins = [...]`)",
            platform.path.display()
        )])),
        many => Err(Error::Invalid(vec![format!(
            "{}: several orchestrator plugins ({}); say which runs graphs with `[graphs] \
             orchestrator = \"…\"`",
            platform.path.display(),
            many.join(", ")
        )])),
    }
}

/// The run journal's file: `[graphs] journal`, or `runs.db` in the data
/// directory.
pub fn journal_path(platform: &Platform) -> std::path::PathBuf {
    platform
        .graphs
        .journal
        .clone()
        .unwrap_or_else(|| crate::capabilities::data_dir(platform).join("runs.db"))
}

/// Open the run journal of `platform` with `durability` (the platform's
/// `[graphs] durability` when none).
pub fn open_journal(
    platform: &Platform,
    durability: Option<GraphDurability>,
) -> Result<Arc<dyn convergio_journal::RunStore>, Error> {
    let mode = match durability.unwrap_or(platform.graphs.durability) {
        GraphDurability::Sync => convergio_journal::Durability::Sync,
        GraphDurability::Process => convergio_journal::Durability::Process,
        GraphDurability::Off => convergio_journal::Durability::Off,
    };
    let path = journal_path(platform);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::Capability {
            capability: "graphs",
            context: format!("cannot create {}", dir.display()),
            source: Box::new(e),
        })?;
    }
    let store = convergio_journal::open(&path, mode).map_err(|e| Error::Capability {
        capability: "graphs",
        context: format!("cannot open the run journal {}", path.display()),
        source: Box::new(e),
    })?;
    Ok(store)
}

/// The run driver of `platform` on `runtime`: its orchestrator plugin, its
/// journal (with `durability`, or the platform's), node calls made on the
/// orchestrator's behalf. Plugins granted `runs = true` reach it through
/// `convergio:platform/runs` from then on.
pub fn runs(
    runtime: &Runtime,
    platform: &Platform,
    durability: Option<GraphDurability>,
) -> Result<convergio_cap_runs::Runs, Error> {
    let orchestrator = orchestrator_id(platform)?;
    let store = open_journal(platform, durability)?;
    let options = convergio_cap_runs::Options {
        checkpoint_every: platform.graphs.checkpoint_every,
        ..convergio_cap_runs::Options::default()
    };
    forward_events(runtime, &store);
    let runs = convergio_cap_runs::Runs::new(
        store,
        Arc::new(ComponentSteps::new(runtime.clone(), orchestrator.clone())),
        Arc::new(PluginExecutor::new(runtime.clone(), orchestrator)),
        options,
    );
    runtime.serve_runs(&runs);
    Ok(runs)
}

/// Publish every journal entry of `store` as run events on the runtime's
/// events bus (source `runs`, topics as in `convergio_cap_runs::events_of`,
/// payload the event as JSON), from a task of the current tokio runtime,
/// while the bus has a subscriber ([`Runtime::subscribe`]). With none, the
/// task does not follow the store at all: following it costs a wake-up of
/// the task and a parse of every entry (about a third of a graph node's
/// time with durability `off`) for events nobody receives. A subscriber
/// gets every run event journaled after it subscribed.
pub fn forward_events(runtime: &Runtime, store: &Arc<dyn convergio_journal::RunStore>) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let follow = Arc::new(Follow {
        store: Arc::downgrade(store),
        state: Default::default(),
        wake: tokio::sync::Notify::new(),
    });
    // Subscribing starts following the store, before the subscriber has
    // its receiver; the hook first, then the check, so no subscribe falls
    // between them (one made before this call counts too).
    let hook = Arc::clone(&follow);
    runtime.on_subscribe(Box::new(move || hook.start()));
    if runtime.has_subscribers() {
        follow.start();
    }
    let runtime = runtime.clone();
    handle.spawn(async move {
        loop {
            let taken = {
                let mut state = follow.lock();
                let next = state.next.take();
                state.following = next.is_some();
                next
            };
            let Some(mut entries) = taken else {
                if follow.store.strong_count() == 0 {
                    return; // the runs are gone
                }
                follow.wake.notified().await;
                continue;
            };
            loop {
                match entries.recv().await {
                    Ok(entry) => {
                        for event in convergio_cap_runs::events_of(&entry) {
                            runtime.emit(crate::Event {
                                source: "runs".to_owned(),
                                topic: event.topic.clone(),
                                payload: serde_json::to_string(&event).unwrap_or_default(),
                                timestamp_ms: event.at_ms,
                            });
                        }
                    }
                    // The bus is best-effort: a lagging forwarder skips ahead
                    // (the journal keeps every entry for those who need them).
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(
                            skipped = n,
                            "run events were not forwarded to the events bus"
                        );
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
                // Decided under the lock, so a subscribe either sees the
                // task following or finds it stopped and starts it again.
                let mut state = follow.lock();
                if !runtime.has_subscribers() {
                    state.following = false;
                    break;
                }
            }
        }
    });
}

/// What `forward_events`' task and the runtime's subscribe hook share.
struct Follow {
    store: std::sync::Weak<dyn convergio_journal::RunStore>,
    state: std::sync::Mutex<FollowState>,
    wake: tokio::sync::Notify,
}

#[derive(Default)]
struct FollowState {
    /// The task holds a receiver of the store's entries.
    following: bool,
    /// A receiver made by a subscribe, for the task to take.
    next: Option<tokio::sync::broadcast::Receiver<Arc<convergio_journal::Entry>>>,
}

impl Follow {
    fn lock(&self) -> std::sync::MutexGuard<'_, FollowState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Have the task follow the store, unless it does already.
    fn start(&self) {
        let mut state = self.lock();
        if !state.following && state.next.is_none() {
            state.next = self.store.upgrade().map(|s| s.events());
        }
        drop(state);
        self.wake.notify_one();
    }
}

/// The orchestrator plugin `plugin` as a [`StepFunction`].
#[derive(Debug, Clone)]
pub struct ComponentSteps {
    runtime: Runtime,
    plugin: String,
}

impl ComponentSteps {
    /// Step with plugin `plugin` (of kind `orchestrator`).
    pub fn new(runtime: Runtime, plugin: impl Into<String>) -> Self {
        Self {
            runtime,
            plugin: plugin.into(),
        }
    }
}

impl StepFunction for ComponentSteps {
    fn step<'a>(
        &'a self,
        request: StepRequest<'a>,
    ) -> BoxFuture<'a, Result<Decision, StepFailure>> {
        Box::pin(async move {
            let snapshot = match request.snapshot {
                Some(s) => Some(serde_json::to_string(s).map_err(|e| {
                    StepFailure::Failed(format!("cannot encode the snapshot: {e}"))
                })?),
                None => None,
            };
            let request = wit::StepRequest {
                run_id: request.run.to_owned(),
                graph_hash: request.graph_hash.to_owned(),
                graph: request.graph.map(str::to_owned),
                version: request.version,
                snapshot,
                inputs: request.inputs.iter().map(step_input).collect(),
            };
            let reply = self
                .runtime
                .call_bound(
                    None,
                    &self.plugin,
                    "step",
                    None,
                    async |store, funcs: wit::Guest| funcs.call_step(store, &request).await,
                )
                .await
                .map_err(|e| StepFailure::Failed(e.to_string()))?;
            match reply {
                Ok(decision) => decision_of(decision).map_err(|what| {
                    StepFailure::Failed(format!(
                        "`{}` returned a decision whose {what}",
                        self.plugin
                    ))
                }),
                Err(error) => Err(step_error(error)),
            }
        })
    }

    fn forget<'a>(&'a self, run: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            // Only a warm instance keeps anything; a failure here costs
            // memory in an instance that is recycled anyway.
            let _ = self
                .runtime
                .invoke(&self.plugin, "forget", &[Val::String(run.to_owned())])
                .await;
        })
    }
}

/// An input as the interface sends it: values as JSON text.
fn step_input(input: &Input) -> wit::StepInput {
    match input {
        Input::Start { input } => wit::StepInput::Start(json_text(input)),
        Input::Result { call, result } => wit::StepInput::Finished(wit::FinishedCall {
            call: call.clone(),
            outcome: match result {
                CallResult::Ok { output, updates } => wit::CallResult::Ok(wit::CallOutput {
                    output: output.as_str().to_owned(),
                    updates: updates
                        .iter()
                        .map(|(key, value)| (key.clone(), json_text(value)))
                        .collect(),
                }),
                CallResult::Err { error } => wit::CallResult::Err(error.clone()),
            },
        }),
        Input::Answer { interrupt, value } => wit::StepInput::Answer(wit::InterruptAnswer {
            interrupt: interrupt.clone(),
            value: json_text(value),
        }),
        Input::Resume => wit::StepInput::Resume,
        Input::Cancel { reason } => wit::StepInput::Cancel(reason.clone()),
    }
}

/// `value` as JSON text: `serde_json::to_string` writes into one buffer,
/// where `Display` (`to_string()`) goes through the formatting machinery
/// (which showed in profiles of graph runs). Serializing a `Value` cannot
/// fail.
fn json_text(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// `text` as JSON; else what is wrong, naming `what`.
fn json_of(text: &str, what: impl FnOnce() -> String) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|e| format!("{} is not JSON: {e}", what()))
}

/// A decision as the engine's type: its JSON values read; else which value
/// is not JSON.
fn decision_of(decision: wit::Decision) -> Result<Decision, String> {
    let mut patches = Vec::with_capacity(decision.patches.len());
    for patch in decision.patches {
        let path = Pointer::parse(patch.path).map_err(|e| format!("patch path {e}"))?;
        // Checked, kept as text: journaled as it is, parsed where applied.
        let value = match patch.value {
            Some(text) => Some(
                RawValue::from_string(text)
                    .map_err(|e| format!("patch value at {path} is not JSON: {e}"))?,
            ),
            None => None,
        };
        patches.push(Patch {
            op: match patch.op {
                wit::PatchOp::Set => Op::Set,
                wit::PatchOp::Remove => Op::Remove,
                wit::PatchOp::Append => Op::Append,
                wit::PatchOp::Merge => Op::Merge,
                wit::PatchOp::Add => Op::Add,
            },
            path,
            value,
        });
    }
    let mut calls = Vec::with_capacity(decision.calls.len());
    for call in decision.calls {
        calls.push(Call {
            input: JsonText::from_text(call.input)
                .map_err(|e| format!("input of call `{}` is not JSON: {e}", call.id))?,
            target: match call.target {
                wit::CallTarget::Tool(t) => Target::Tool {
                    plugin: t.plugin,
                    tool: t.tool,
                },
                wit::CallTarget::Agent(plugin) => Target::Agent { plugin },
                wit::CallTarget::Subgraph(graph) => Target::Subgraph { graph },
            },
            id: call.id,
            node: call.node,
            attempt: call.attempt,
            timeout_ms: call.timeout_ms,
            delay_ms: call.delay_ms,
        });
    }
    let mut interrupts = Vec::with_capacity(decision.interrupts.len());
    for interrupt in decision.interrupts {
        interrupts.push(Interrupt {
            schema: match &interrupt.schema {
                Some(text) => Some(json_of(text, || {
                    format!("schema of interrupt `{}`", interrupt.id)
                })?),
                None => None,
            },
            id: interrupt.id,
            node: interrupt.node,
            prompt: interrupt.prompt,
            held_call: interrupt.held_call,
        });
    }
    Ok(Decision {
        patches,
        calls,
        cancel: decision.cancel,
        interrupts,
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
            wit::RunStatus::Running => Status::Running,
            wit::RunStatus::Waiting => Status::Waiting,
            wit::RunStatus::Done(output) => Status::Done {
                output: json_of(&output, || "run output".to_owned())?,
            },
            wit::RunStatus::Failed(error) => Status::Failed { error },
            wit::RunStatus::Cancelled(reason) => Status::Cancelled { reason },
        },
    })
}

fn step_error(error: wit::StepError) -> StepFailure {
    match error {
        wit::StepError::UnknownGraph => StepFailure::UnknownGraph,
        wit::StepError::NeedSnapshot => StepFailure::NeedSnapshot,
        wit::StepError::InvalidGraph(message) => StepFailure::InvalidGraph(message),
        wit::StepError::BadInput(message) => StepFailure::BadInput(message),
        wit::StepError::Corrupt(message) => StepFailure::Failed(format!("corrupt: {message}")),
    }
}

/// Node calls to tool and agent plugins, made on behalf of the
/// orchestrator plugin `caller`.
#[derive(Debug, Clone)]
pub struct PluginExecutor {
    runtime: Runtime,
    caller: String,
}

impl PluginExecutor {
    /// Calls made on behalf of `caller` (its `plugins` grant says which
    /// plugins a graph may use).
    pub fn new(runtime: Runtime, caller: impl Into<String>) -> Self {
        Self {
            runtime,
            caller: caller.into(),
        }
    }
}

/// Adds up a node call's model calls.
#[derive(Debug, Default)]
struct Meter(std::sync::Mutex<CallUsage>);

impl UsageMeter for Meter {
    fn add(&self, usage: &Usage, _failed: bool) {
        let mut total = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *total = total.plus(CallUsage {
            calls: 1,
            input_tokens: u64::from(usage.input_tokens),
            output_tokens: u64::from(usage.output_tokens),
            cost_micro_usd: usage.cost_micro_usd,
        });
    }
}

impl NodeExecutor for PluginExecutor {
    fn execute<'a>(&'a self, call: &'a NodeCall) -> BoxFuture<'a, CallResult> {
        Box::pin(async move { self.execute_reported(call).await.0 })
    }

    fn execute_reported<'a>(
        &'a self,
        call: &'a NodeCall,
    ) -> BoxFuture<'a, (CallResult, CallReport)> {
        Box::pin(async move {
            let meter = Arc::new(Meter::default());
            let context = Arc::new(CallContext {
                run_id: call.run.clone(),
                node_id: call.call.node.clone(),
                call_id: call.call.id.clone(),
                attempt: call.call.attempt,
                idempotency_key: call.idempotency_key.clone(),
                inference: RunCaller {
                    run: call.run.clone().into(),
                    meter: meter.clone(),
                },
                warnings: Default::default(),
                runs: Default::default(),
            });
            let result = self.call(call, Arc::clone(&context)).await;
            let usage = *meter.0.lock().unwrap_or_else(|e| e.into_inner());
            let warnings =
                std::mem::take(&mut *context.warnings.lock().unwrap_or_else(|e| e.into_inner()));
            let runs = std::mem::take(&mut *context.runs.lock().unwrap_or_else(|e| e.into_inner()));
            let report = CallReport {
                usage: (usage.calls > 0).then_some(usage),
                warnings,
                runs,
            };
            (result, report)
        })
    }

    fn concurrency(&self, plugin: &str) -> usize {
        self.runtime
            .max_instances(plugin)
            .map_or(1, |n| usize::try_from(n).unwrap_or(1))
    }
}

impl PluginExecutor {
    /// Make `call` in its plugin's store, serving `context`.
    async fn call(&self, call: &NodeCall, context: Arc<CallContext>) -> CallResult {
        let input = call.call.input.as_str();
        let outcome = match &call.call.target {
            Target::Tool { plugin, tool } => self
                .runtime
                .call_bound(
                    Some(&self.caller),
                    plugin,
                    "invoke",
                    Some(context),
                    async |store, funcs: wit::ToolFuncs| {
                        funcs.call_invoke(store, tool, input).await
                    },
                )
                .await
                .map(|result| match result {
                    Ok(output) => CallResult::Ok {
                        output: node_output(output),
                        updates: Vec::new(),
                    },
                    Err(error) => CallResult::Err {
                        error: tool_error(error),
                    },
                }),
            Target::Agent { plugin } => {
                let task = wit::Task {
                    run_id: call.run.to_string(),
                    node_id: call.call.node.clone(),
                    input: input.to_owned(),
                    state: call
                        .state
                        .as_object()
                        .map(|m| {
                            m.iter()
                                .map(|(key, value)| wit::StateEntry {
                                    key: key.clone(),
                                    value: json_text(value),
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                };
                self.runtime
                    .call_bound(
                        Some(&self.caller),
                        plugin,
                        "run",
                        Some(context),
                        async |store, funcs: wit::AgentFuncs| funcs.call_run(store, &task).await,
                    )
                    .await
                    .map(|result| match result {
                        Ok(outcome) => CallResult::Ok {
                            output: node_output(outcome.output),
                            updates: outcome
                                .state_updates
                                .into_iter()
                                .map(|e| (e.key, output_value(e.value)))
                                .collect(),
                        },
                        Err(error) => CallResult::Err {
                            error: agent_error(error),
                        },
                    })
            }
            Target::Subgraph { .. } => {
                return CallResult::Err {
                    error: "subgraphs run as child runs, not plugin calls".to_owned(),
                };
            }
        };
        outcome.unwrap_or_else(|e| CallResult::Err {
            error: e.to_string(),
        })
    }
}

/// A plugin's output text as a value: its JSON, or the text itself when it
/// is not JSON.
fn output_value(text: String) -> Value {
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

/// A node call's output: the plugin's text when it is JSON (checked once,
/// then kept as it is), else the text as a JSON string.
fn node_output(text: String) -> JsonText {
    match serde_json::from_str::<&RawValue>(&text) {
        Ok(raw) => JsonText::from_raw(raw),
        Err(_) => Value::String(text).into(),
    }
}

/// `failed: why`, as the interface names the case.
fn tool_error(error: wit::ToolError) -> String {
    match error {
        wit::ToolError::InvalidArguments(m) => format!("invalid-arguments: {m}"),
        wit::ToolError::UnknownTool(m) => format!("unknown-tool: {m}"),
        wit::ToolError::Failed(m) => format!("failed: {m}"),
        wit::ToolError::Denied(m) => format!("denied: {m}"),
    }
}

/// `failed: why`, as the interface names the case.
fn agent_error(error: wit::AgentError) -> String {
    match error {
        wit::AgentError::InvalidInput(m) => format!("invalid-input: {m}"),
        wit::AgentError::InferenceFailed(m) => format!("inference-failed: {m}"),
        wit::AgentError::ToolFailed(m) => format!("tool-failed: {m}"),
        wit::AgentError::Failed(m) => format!("failed: {m}"),
    }
}
