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
use convergio_graph::engine::{CallResult, Decision};
use convergio_journal::BoxFuture;
use serde_json::{Value, json};
use wasmtime::component::Val;

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
    forward_events(runtime, &*store);
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
/// payload the event as JSON), from a task of the current tokio runtime.
pub fn forward_events(runtime: &Runtime, store: &dyn convergio_journal::RunStore) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let mut entries = store.events();
    let runtime = runtime.clone();
    handle.spawn(async move {
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
        }
    });
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

fn opt(text: Option<String>) -> Val {
    Val::Option(text.map(|t| Box::new(Val::String(t))))
}

impl StepFunction for ComponentSteps {
    fn step<'a>(
        &'a self,
        request: StepRequest<'a>,
    ) -> BoxFuture<'a, Result<Decision, StepFailure>> {
        Box::pin(async move {
            let inputs = serde_json::to_string(request.inputs)
                .map_err(|e| StepFailure::Failed(format!("cannot encode the inputs: {e}")))?;
            let snapshot = match request.snapshot {
                Some(s) => Some(serde_json::to_string(s).map_err(|e| {
                    StepFailure::Failed(format!("cannot encode the snapshot: {e}"))
                })?),
                None => None,
            };
            let record = Val::Record(vec![
                ("run-id".into(), Val::String(request.run.to_owned())),
                (
                    "graph-hash".into(),
                    Val::String(request.graph_hash.to_owned()),
                ),
                ("graph".into(), opt(request.graph.map(str::to_owned))),
                ("version".into(), Val::U64(request.version)),
                ("snapshot".into(), opt(snapshot)),
                ("inputs".into(), Val::String(inputs)),
            ]);
            let results = self
                .runtime
                .invoke(&self.plugin, "step", &[record])
                .await
                .map_err(|e| StepFailure::Failed(e.to_string()))?;
            match results.first() {
                Some(Val::Result(Ok(Some(text)))) => match text.as_ref() {
                    Val::String(text) => serde_json::from_str(text).map_err(|e| {
                        StepFailure::Failed(format!(
                            "`{}` returned what is not a decision: {e}",
                            self.plugin
                        ))
                    }),
                    other => Err(StepFailure::Failed(format!(
                        "`{}` returned {other:?}",
                        self.plugin
                    ))),
                },
                Some(Val::Result(Err(Some(error)))) => Err(step_error(error)),
                other => Err(StepFailure::Failed(format!(
                    "`{}` returned {other:?}",
                    self.plugin
                ))),
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

fn step_error(error: &Val) -> StepFailure {
    let Val::Variant(case, payload) = error else {
        return StepFailure::Failed(format!("a step error that is not a variant: {error:?}"));
    };
    let message = match payload.as_deref() {
        Some(Val::String(m)) => m.clone(),
        _ => String::new(),
    };
    match case.as_str() {
        "unknown-graph" => StepFailure::UnknownGraph,
        "need-snapshot" => StepFailure::NeedSnapshot,
        "invalid-graph" => StepFailure::InvalidGraph(message),
        "bad-input" => StepFailure::BadInput(message),
        other => StepFailure::Failed(format!("{other}: {message}")),
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
                run_id: call.run.0.clone(),
                node_id: call.call.node.clone(),
                call_id: call.call.id.clone(),
                attempt: call.call.attempt,
                idempotency_key: call.idempotency_key.clone(),
                inference: RunCaller {
                    run: call.run.0.clone(),
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
        {
            let input = call.call.input.to_string();
            let (plugin, function, args) = match &call.call.target {
                Target::Tool { plugin, tool } => (plugin, "invoke", json!([tool, input])),
                Target::Agent { plugin } => {
                    let state: Vec<Value> = call
                        .state
                        .as_object()
                        .map(|m| {
                            m.iter()
                                .map(|(k, v)| json!({"key": k, "value": v.to_string()}))
                                .collect()
                        })
                        .unwrap_or_default();
                    let task = json!({
                        "run-id": call.run.0,
                        "node-id": call.call.node,
                        "input": input,
                        "state": state,
                    });
                    (plugin, "run", json!([task]))
                }
                Target::Subgraph { .. } => {
                    return CallResult::Err {
                        error: "subgraphs run as child runs, not plugin calls".to_owned(),
                    };
                }
            };
            match self
                .runtime
                .invoke_in_run(&self.caller, plugin, function, &args, Some(context))
                .await
            {
                Ok(value) => outcome(&call.call.target, value),
                Err(e) => CallResult::Err {
                    error: e.to_string(),
                },
            }
        }
    }
}

/// A plugin's `result<…, error>` as a node result.
fn outcome(target: &Target, value: Value) -> CallResult {
    let text_output = |text: &Value| match text.as_str() {
        Some(t) => serde_json::from_str(t).unwrap_or_else(|_| Value::String(t.to_owned())),
        None => text.clone(),
    };
    match (target, value) {
        (_, Value::Object(mut map)) if map.contains_key("err") => CallResult::Err {
            error: describe_error(map.remove("err").unwrap_or(Value::Null)),
        },
        (Target::Tool { .. }, Value::Object(map)) => CallResult::Ok {
            output: map.get("ok").map(text_output).unwrap_or(Value::Null),
            updates: Vec::new(),
        },
        (Target::Agent { .. }, Value::Object(map)) => {
            let ok = map.get("ok").cloned().unwrap_or(Value::Null);
            let output = ok.get("output").map(text_output).unwrap_or(Value::Null);
            let updates = ok
                .get("state-updates")
                .and_then(Value::as_array)
                .map(|entries| {
                    entries
                        .iter()
                        .filter_map(|e| {
                            let key = e.get("key")?.as_str()?.to_owned();
                            Some((key, e.get("value").map(text_output).unwrap_or(Value::Null)))
                        })
                        .collect()
                })
                .unwrap_or_default();
            CallResult::Ok { output, updates }
        }
        (_, other) => CallResult::Err {
            error: format!("an unexpected result: {other}"),
        },
    }
}

/// `{"failed": "why"}` → `failed: why`.
fn describe_error(error: Value) -> String {
    match error {
        Value::Object(map) => map
            .into_iter()
            .map(|(case, payload)| match payload {
                Value::String(m) => format!("{case}: {m}"),
                Value::Null => case,
                other => format!("{case}: {other}"),
            })
            .collect::<Vec<_>>()
            .join("; "),
        Value::String(case) => case,
        other => other.to_string(),
    }
}
