//! Agents that spawn agents: the tool `agent__spawn {agent, task}` runs one
//! of the definition's sub-agents as a run of its own (a one-node graph on
//! the agent's plugin, through `convergio:platform/runs`), journaled like
//! any run, and gives its answer back as the tool's result. The run's id
//! comes from the spawning call's idempotency key, so a call dispatched
//! again after a crash finds the runs it started instead of starting more.

use convergio_agent::{Budget, Definition};
use convergio_sdk::run;
use convergio_sdk::runs;
use convergio_sdk::types::ToolDefinition;
use serde_json::{Value, json};

/// Spawn a sub-agent.
pub const SPAWN: &str = "agent__spawn";

/// The tool, if `definition` has sub-agents and `depth` allows one more level.
pub fn offered(definition: &Definition, depth: u32) -> Option<ToolDefinition> {
    if definition.sub_agents.is_empty() || depth >= definition.max_depth {
        return None;
    }
    let names: Vec<&str> = definition
        .sub_agents
        .iter()
        .map(|a| a.name.as_str())
        .collect();
    let who: Vec<String> = definition
        .sub_agents
        .iter()
        .map(|a| format!("{} ({})", a.name, a.description))
        .collect();
    Some(ToolDefinition {
        name: SPAWN.to_owned(),
        description: format!(
            "Give a task to a helper agent and get its answer; several calls in one answer run at once. Helpers: {}",
            who.join("; ")
        ),
        parameters: json!({
            "type": "object",
            "properties": {
                "agent": {"enum": names},
                "task": {"type": "string", "maxLength": 4000}
            },
            "required": ["agent", "task"]
        })
        .to_string(),
    })
}

/// A spawned run, started.
pub struct Child {
    run: Result<String, String>,
    name: String,
}

/// Start sub-agent `arguments.agent` of `definition` at `depth + 1`, as the
/// `index`-th spawn of this call, within `budget`.
pub fn start(
    definition: &Definition,
    arguments: &str,
    depth: u32,
    index: u32,
    budget: Budget,
) -> Child {
    let args: Value = serde_json::from_str(arguments).unwrap_or(Value::Null);
    let name = args
        .get("agent")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let run = (|| {
        if depth >= definition.max_depth {
            return Err(format!(
                "agent `{}` is at depth {depth}, its max-depth: it may not spawn agents",
                definition.name
            ));
        }
        if index >= definition.max_spawns {
            return Err(format!(
                "agent `{}` has spawned {index} agents, its max-spawns",
                definition.name
            ));
        }
        let Some(sub) = definition.sub_agents.iter().find(|a| a.name == name) else {
            return Err(format!(
                "no sub-agent `{name}`; the sub-agents are: {}",
                definition
                    .sub_agents
                    .iter()
                    .map(|a| a.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        };
        let task = args.get("task").cloned().unwrap_or(Value::Null);
        let input = json!({"agent": sub, "task": task, "depth": depth + 1, "budget": budget});
        let graph = json!({
            "id": format!("agent:{}", sub.name),
            "description": format!("agent `{}`, spawned by `{}`", sub.name, definition.name),
            "state": {"agent": {}, "task": {}, "depth": {}, "budget": {}, "answer": {}, "usage": {}},
            "nodes": {"agent": {"agent": definition.plugin, "output": "answer"}},
            "output": ["answer", "usage"]
        })
        .to_string();
        let started = match run::idempotency_key() {
            Some(key) => {
                runs::start_as(&format!("{key}:spawn:{index}"), &graph, &input.to_string())
            }
            None => runs::start(&graph, &input.to_string()),
        };
        started.map_err(|e| format!("sub-agent `{name}` could not start: {e:?}"))
    })();
    Child { run, name }
}

/// Wait for `child`; what the spawning model gets back, with the tokens and
/// cost the child used.
pub fn finish(child: Child) -> Value {
    let run = match child.run {
        Ok(run) => run,
        Err(e) => return json!({"content": format!("error: {e}")}),
    };
    let status = loop {
        match runs::wait(&run, 60_000) {
            Ok(Some(status)) => break status,
            Ok(None) => continue,
            Err(e) => {
                return json!({"content": format!("error: sub-agent `{}` (run {run}): {e:?}", child.name)});
            }
        }
    };
    let status: Value = serde_json::from_str(&status).unwrap_or(Value::Null);
    match status["status"].as_str() {
        Some("done") => {
            let output = &status["output"];
            let content = match &output["answer"] {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            json!({
                "content": content,
                "tokens": output["usage"]["tokens"].as_u64().unwrap_or(0),
                "cost-micro-usd": output["usage"]["cost-micro-usd"].as_u64().unwrap_or(0),
            })
        }
        Some("failed") => json!({"content": format!(
            "error: sub-agent `{}` failed (run {run}): {}",
            child.name,
            status["error"].as_str().unwrap_or_default()
        )}),
        _ => json!({"content": format!(
            "error: sub-agent `{}` (run {run}) ended {status}",
            child.name
        )}),
    }
}
