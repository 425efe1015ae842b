//! `runs_agent`: an agent that runs graphs through the host's
//! `convergio:platform/runs` interface. Its task input is a JSON command:
//!
//! - `{"start": GRAPH_TEXT, "input": {…}, "wait-ms": N}`: start a run,
//!   wait for it, return `{"run": id, "status": …, "info": {…}, "snapshot-keys": […]}`;
//! - `{"cancel": RUN, "reason": "…"}`, `{"answer": RUN, "interrupt": ID, "value": {…}}`;
//!
//! and every `runs-error` comes back as the agent's error, named by case.

#[allow(unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "convergio:platform/agent-plugin@0.1.0",
        generate_all,
    });

    use super::RunsAgent;

    export!(RunsAgent);
}

use bindings::convergio::platform::runs::{self, RunsError};
use bindings::exports::convergio::platform::agent::{AgentError, AgentInfo, Guest, Outcome, Task};
use serde_json::{Value, json};

struct RunsAgent;

impl Guest for RunsAgent {
    fn describe() -> AgentInfo {
        AgentInfo {
            name: "runs-agent".to_owned(),
            description: "Starts, waits for, answers and cancels graph runs.".to_owned(),
            input_schema: None,
        }
    }

    fn run(task: Task) -> Result<Outcome, AgentError> {
        let command: Value = serde_json::from_str(&task.input)
            .map_err(|e| AgentError::InvalidInput(e.to_string()))?;
        let output = command_output(&command).map_err(|e| AgentError::Failed(describe(&e)))?;
        Ok(Outcome {
            output: output.to_string(),
            state_updates: Vec::new(),
        })
    }
}

fn command_output(command: &Value) -> Result<Value, RunsError> {
    if let Some(graph) = command.get("start").and_then(Value::as_str) {
        let input = command.get("input").cloned().unwrap_or(json!({}));
        let run = runs::start(graph, &input.to_string())?;
        let wait = command
            .get("wait-ms")
            .and_then(Value::as_u64)
            .unwrap_or(5000);
        let status = runs::wait(&run, u32::try_from(wait).unwrap_or(u32::MAX))?
            .map(|s| serde_json::from_str::<Value>(&s).unwrap_or(Value::Null));
        let info = runs::info(&run)?;
        let snapshot: Value = serde_json::from_str(&runs::snapshot(&run)?).unwrap_or(Value::Null);
        let keys: Vec<String> = snapshot
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        return Ok(json!({
            "run": run,
            "status": status,
            "info": {"run-id": info.run_id, "status": info.status, "parent": info.parent},
            "snapshot-keys": keys,
        }));
    }
    if let Some(run) = command.get("cancel").and_then(Value::as_str) {
        let reason = command.get("reason").and_then(Value::as_str).unwrap_or("");
        runs::cancel(run, reason)?;
        return Ok(json!({"cancelled": run}));
    }
    if let Some(run) = command.get("answer").and_then(Value::as_str) {
        let interrupt = command
            .get("interrupt")
            .and_then(Value::as_str)
            .unwrap_or("");
        let value = command.get("value").cloned().unwrap_or(Value::Null);
        runs::answer(run, interrupt, &value.to_string())?;
        return Ok(json!({"answered": interrupt}));
    }
    Err(RunsError::Failed(format!("unknown command {command}")))
}

/// The error as text, prefixed with its WIT case name.
fn describe(error: &RunsError) -> String {
    match error {
        RunsError::Unavailable(m) => format!("unavailable: {m}"),
        RunsError::InvalidGraph(m) => format!("invalid-graph: {m}"),
        RunsError::NoRun(m) => format!("no-run: {m}"),
        RunsError::BadInput(m) => format!("bad-input: {m}"),
        RunsError::BadStatus(m) => format!("bad-status: {m}"),
        RunsError::Failed(m) => format!("failed: {m}"),
    }
}
