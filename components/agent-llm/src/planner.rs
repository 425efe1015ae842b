//! Planner nodes: a model decomposes a goal into a graph of the agents and
//! tools the node lists, the plan is checked, and it runs as a run of its
//! own whose output is the node's.
//!
//! The model writes the plan as JSON of a schema made from the lists (on
//! local models the schema constrains the sampling):
//!
//! ```json
//! {"nodes": {"facts": {"agent": "researcher", "task": "…"},
//!            "hello": {"tool": "hello-tool/greet", "input": {"name": "Ada"}},
//!            "card":  {"agent": "writer", "task": "…"}},
//!  "edges": ["facts -> card"]}
//! ```
//!
//! The plan becomes a graph document (`docs/graphs.md`): a state key per
//! node for its output, an agent node's task followed by the goal and the
//! results of the nodes before it, and every node's output as the run's.
//! The graph's own rules (names, cycles, templates) and the plan's (only
//! listed agents and tools, at most `max-nodes`) are checked; a plan that
//! breaks one is sent back to the model with every problem, up to
//! `attempts` plans in all. Every model answer and the accepted plan are
//! recorded steps of the node call, so a call run again after a crash runs
//! the same plan, and the plan's run id comes from the call's idempotency
//! key, so it is found again rather than started twice.

use std::collections::{BTreeMap, BTreeSet};

use convergio_agent::{Definition, Planner};
use convergio_graph::document;
use convergio_sdk::agent::AgentError;
use convergio_sdk::inference::{self, ChatRequest};
use convergio_sdk::log;
use convergio_sdk::run::{self, Steps, fingerprint};
use convergio_sdk::runs;
use convergio_sdk::tools;
use convergio_sdk::types::{Message, ResponseFormat, Sampling};
use serde_json::{Map, Value, json};

use crate::{completion_from_json, completion_json, describe_model_error, selector_for};

/// The state key that holds the goal in a plan's run.
const GOAL: &str = "goal";

/// Plan `goal` with `planner`, run the plan and return its output.
pub fn run(planner: &Planner, goal: &Value) -> Result<Value, AgentError> {
    planner
        .check()
        .map_err(|e| AgentError::InvalidInput(e.replace('\n', "; ")))?;
    let mut steps = Steps::new();
    let graph = plan(planner, goal, &mut steps)?;
    execute(&graph, goal)
}

/// The accepted plan as a graph document: recorded, or asked for, checked
/// and recorded.
fn plan(planner: &Planner, goal: &Value, steps: &mut Steps) -> Result<Value, AgentError> {
    let tools = tool_entries(planner);
    let schema = plan_schema(planner, &tools);
    let goal_text = match goal {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    let mut messages = vec![
        Message::system(instructions(planner, &tools)),
        Message::user(format!("The goal: {goal_text}")),
    ];
    let mut problems = Vec::new();
    for attempt in 1..=planner.attempts {
        let request = ChatRequest {
            model: selector_for(
                planner.model.as_deref(),
                planner.policy.as_ref(),
                false,
                true,
            ),
            messages: messages.clone(),
            tools: Vec::new(),
            sampling: Sampling {
                temperature: Some(planner.temperature.unwrap_or(0.0)),
                top_p: None,
                top_k: None,
                seed: planner.seed,
                max_tokens: Some(planner.max_output_tokens.unwrap_or(800)),
                stop: Vec::new(),
            },
            format: ResponseFormat::JsonSchema(schema.to_string()),
        };
        let key = fingerprint(&format!("{:?}", request.messages));
        let answer = steps
            .step("model", &key, || {
                inference::complete(&request)
                    .map(|done| completion_json(&done).to_string())
                    .map_err(|e| describe_model_error(&e))
            })
            .map_err(|e| AgentError::InferenceFailed(format!("planner, plan {attempt}: {e}")))?;
        let done = completion_from_json(&answer).ok_or_else(|| {
            AgentError::Failed(format!(
                "planner, plan {attempt}: the recorded model answer is not one: {answer}"
            ))
        })?;
        let text = done.message.content.clone();
        problems = match serde_json::from_str::<Value>(text.trim()) {
            Ok(plan) => match to_graph(planner, &plan, &goal_text) {
                Ok(graph) => {
                    let text = graph.to_string();
                    let accepted = steps
                        .step("plan", &fingerprint(&text), || Ok(text.clone()))
                        .map_err(|e| AgentError::Failed(format!("planner: {e}")))?;
                    log::info(&format!(
                        "planner: plan {attempt} accepted: {}",
                        summary(&graph)
                    ));
                    return serde_json::from_str(&accepted).map_err(|e| {
                        AgentError::Failed(format!("planner: the recorded plan is not JSON: {e}"))
                    });
                }
                Err(problems) => problems,
            },
            Err(e) => vec![format!("the plan is not JSON: {e}")],
        };
        log::warn(&format!(
            "planner: plan {attempt} of {} is not valid: {}",
            planner.attempts,
            problems.join("; ")
        ));
        messages.push(done.message);
        messages.push(Message::user(format!(
            "That plan cannot run:\n- {}\nWrite the whole plan again, corrected.",
            problems.join("\n- ")
        )));
    }
    Err(AgentError::Failed(format!(
        "planner: no valid plan in {} attempts; the last one's problems: {}",
        planner.attempts,
        problems.join("; ")
    )))
}

/// The listed tools as the host describes them (`plugin/tool` → entry),
/// for those the planner's plugin is granted.
fn tool_entries(planner: &Planner) -> BTreeMap<String, tools::ToolEntry> {
    if planner.tools.is_empty() {
        return BTreeMap::new();
    }
    tools::list()
        .into_iter()
        .filter(|t| planner.tools.contains(&t.name))
        .map(|t| (t.name.clone(), t))
        .collect()
}

/// What the model is told: how to plan, and what it may use.
fn instructions(planner: &Planner, tools: &BTreeMap<String, tools::ToolEntry>) -> String {
    let mut text = format!(
        "You plan work. Break the goal into at most {} steps. Each step is a node, run by one of the agents or tools below. \
Answer with JSON: {{\"nodes\": {{\"first\": {{\"agent\": \"NAME\", \"task\": \"what this agent should do\"}}, \"second\": {{\"tool\": \"plugin/tool\", \"input\": {{...}}}}}}, \"edges\": [\"first -> second\"]}}. \
Node ids are short lowercase words (letters, digits, - and _). An edge \"A -> B\" makes B start after A and gives B the result of A. \
Nodes with no path between them run at the same time. No cycles.",
        planner.max_nodes
    );
    if !planner.agents.is_empty() {
        text.push_str("\nAgents:");
        for agent in &planner.agents {
            text.push_str(&format!("\n- {}: {}", agent.name, about(agent)));
        }
    }
    if !planner.tools.is_empty() {
        text.push_str("\nTools:");
        for tool in &planner.tools {
            match tools.get(tool) {
                Some(entry) => text.push_str(&format!(
                    "\n- {tool}: {} Input: {}",
                    entry.description, entry.parameters
                )),
                None => text.push_str(&format!("\n- {tool}")),
            }
        }
    }
    if let Some(more) = &planner.instructions {
        text.push('\n');
        text.push_str(more);
    }
    text
}

fn about(agent: &Definition) -> &str {
    if agent.description.is_empty() {
        &agent.instructions
    } else {
        &agent.description
    }
}

/// The JSON Schema of a plan over the planner's agents and tools.
fn plan_schema(planner: &Planner, tools: &BTreeMap<String, tools::ToolEntry>) -> Value {
    let mut kinds = Vec::new();
    if !planner.agents.is_empty() {
        let names: Vec<&str> = planner.agents.iter().map(|a| a.name.as_str()).collect();
        kinds.push(json!({
            "type": "object",
            "properties": {
                "agent": {"enum": names},
                "task": {"type": "string", "minLength": 1, "maxLength": 120}
            },
            "required": ["agent", "task"],
            "additionalProperties": false
        }));
    }
    for tool in &planner.tools {
        let input = tools
            .get(tool)
            .and_then(|t| serde_json::from_str::<Value>(&t.parameters).ok())
            .filter(Value::is_object)
            .unwrap_or_else(|| json!({"type": "object"}));
        kinds.push(json!({
            "type": "object",
            "properties": {"tool": {"const": tool}, "input": input},
            "required": ["tool", "input"],
            "additionalProperties": false
        }));
    }
    let node = match kinds.len() {
        1 => kinds.remove(0),
        _ => json!({"anyOf": kinds}),
    };
    let max = planner.max_nodes;
    json!({
        "type": "object",
        "properties": {
            "nodes": {
                "type": "object",
                "additionalProperties": node,
                "propertyNames": {"minLength": 1, "maxLength": 24},
                "minProperties": 1,
                "maxProperties": max
            },
            "edges": {
                "type": "array",
                "items": {"type": "string", "minLength": 4, "maxLength": 60},
                "maxItems": max * max
            }
        },
        "required": ["nodes", "edges"],
        "additionalProperties": false
    })
}

/// The graph document of `plan`, or every reason it cannot run.
pub fn to_graph(planner: &Planner, plan: &Value, goal: &str) -> Result<Value, Vec<String>> {
    let mut problems = Vec::new();
    let Some(nodes) = plan.get("nodes").and_then(Value::as_object) else {
        return Err(vec![
            "the plan has no `nodes` object: {\"nodes\": {...}, \"edges\": [...]}".to_owned(),
        ]);
    };
    if nodes.is_empty() {
        problems.push("the plan has no nodes".to_owned());
    }
    if nodes.len() > planner.max_nodes as usize {
        problems.push(format!(
            "the plan has {} nodes; at most {} are allowed",
            nodes.len(),
            planner.max_nodes
        ));
    }
    let mut edges = Vec::new();
    match plan.get("edges") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for item in items {
                match item.as_str().and_then(|e| e.split_once("->")) {
                    Some((from, to)) => edges.push((from.trim().to_owned(), to.trim().to_owned())),
                    None => problems.push(format!("edge {item} is not \"A -> B\"")),
                }
            }
        }
        Some(other) => problems.push(format!("`edges` is {other}, not a list")),
    }
    let before: BTreeMap<&str, Vec<&str>> = nodes
        .keys()
        .map(|id| {
            let from = edges
                .iter()
                .filter(|(_, to)| to == id)
                .map(|(from, _)| from.as_str())
                .collect();
            (id.as_str(), from)
        })
        .collect();
    let mut graph_nodes = Map::new();
    let mut state = Map::new();
    state.insert(GOAL.to_owned(), json!({"schema": {"type": "string"}}));
    for (id, node) in nodes {
        if id == GOAL {
            problems.push(format!(
                "node id `{GOAL}` is taken (the goal's state key); name the node otherwise"
            ));
            continue;
        }
        state.insert(id.clone(), json!({}));
        let node = node_of(planner, id, node, &before[id.as_str()]).unwrap_or_else(|problem| {
            problems.push(problem);
            // A stand-in, so the graph's rules are checked all the same.
            json!({"tool": "plan/invalid", "output": id})
        });
        graph_nodes.insert(id.clone(), node);
    }
    // Sorted: the same graph whatever order the JSON map keeps.
    let mut outputs: Vec<&String> = nodes.keys().collect();
    outputs.sort();
    let graph = json!({
        "id": "plan",
        "description": format!("a plan for: {}", short(goal, 200)),
        "state": state,
        "nodes": graph_nodes,
        "edges": edges.iter().map(|(from, to)| format!("{from} -> {to}")).collect::<Vec<_>>(),
        "output": outputs,
    });
    // The graph's own rules: ids, edges to known nodes, cycles, templates.
    if let Err(diagnostics) = document::read(&graph.to_string()) {
        problems.extend(
            diagnostics
                .iter()
                .map(|d| where_in_plan(&d.pointer, &d.message)),
        );
    }
    if problems.is_empty() {
        Ok(graph)
    } else {
        Err(problems)
    }
}

/// A plan node as a graph node; or what is wrong with it.
fn node_of(planner: &Planner, id: &str, node: &Value, before: &[&str]) -> Result<Value, String> {
    if let Some(name) = node.get("agent") {
        let Some(agent) = planner
            .agents
            .iter()
            .find(|a| Some(a.name.as_str()) == name.as_str())
        else {
            return Err(format!(
                "node `{id}`: no agent {name}; the agents are: {}",
                list(planner.agents.iter().map(|a| a.name.as_str()))
            ));
        };
        let task = match node.get("task") {
            Some(Value::String(task)) if !task.trim().is_empty() => task.trim(),
            _ => return Err(format!("node `{id}`: an agent node needs a `task` (text)")),
        };
        // The agent sees the goal and what the nodes before it found.
        let mut full = format!("{task}\n\nThe overall goal: {{{{ state.{GOAL} }}}}");
        for from in before {
            full.push_str(&format!("\n\nWhat `{from}` found: {{{{ state.{from} }}}}"));
        }
        return Ok(json!({
            "agent": agent.plugin,
            "input": {"agent": agent, "task": full},
            "output": id,
        }));
    }
    if let Some(tool) = node.get("tool") {
        let Some(tool) = tool
            .as_str()
            .filter(|t| planner.tools.iter().any(|l| l == t))
        else {
            return Err(format!(
                "node `{id}`: no tool {tool}; the tools are: {}",
                list(planner.tools.iter().map(String::as_str))
            ));
        };
        return Ok(json!({
            "tool": tool,
            "input": node.get("input").cloned().unwrap_or_else(|| json!({})),
            "output": id,
        }));
    }
    Err(format!(
        "node `{id}` is neither {{\"agent\": …, \"task\": …}} nor {{\"tool\": …, \"input\": …}}"
    ))
}

/// A graph diagnostic in the plan's terms.
fn where_in_plan(pointer: &str, message: &str) -> String {
    let parts: Vec<&str> = pointer.split('/').filter(|p| !p.is_empty()).collect();
    match parts.as_slice() {
        ["nodes", id, ..] => format!("node `{id}`: {message}"),
        ["edges", ..] => format!("edges: {message}"),
        _ => message.to_owned(),
    }
}

/// Run the plan as a run of its own and wait for its output.
fn execute(graph: &Value, goal: &Value) -> Result<Value, AgentError> {
    let input = json!({ GOAL: match goal {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }});
    let started = match run::idempotency_key() {
        Some(key) => runs::start_as(
            &format!("{key}:plan"),
            &graph.to_string(),
            &input.to_string(),
        ),
        None => runs::start(&graph.to_string(), &input.to_string()),
    };
    let run = started
        .map_err(|e| AgentError::Failed(format!("planner: the plan could not start: {e:?}")))?;
    log::info(&format!("planner: the plan runs as run {run}"));
    let status = loop {
        match runs::wait(&run, 60_000) {
            Ok(Some(status)) => break status,
            Ok(None) => continue,
            Err(e) => {
                return Err(AgentError::Failed(format!(
                    "planner: plan run {run}: {e:?}"
                )));
            }
        }
    };
    let status: Value = serde_json::from_str(&status).unwrap_or(Value::Null);
    match status["status"].as_str() {
        Some("done") => Ok(status["output"].clone()),
        Some("failed") => Err(AgentError::Failed(format!(
            "planner: plan run {run} failed: {}",
            status["error"].as_str().unwrap_or_default()
        ))),
        _ => Err(AgentError::Failed(format!(
            "planner: plan run {run} ended {status}"
        ))),
    }
}

/// `facts, quiz -> card` — the plan's nodes and edges, for logs.
pub fn summary(graph: &Value) -> String {
    let mut nodes: Vec<&str> = graph["nodes"]
        .as_object()
        .map(|n| n.keys().map(String::as_str).collect())
        .unwrap_or_default();
    nodes.sort_unstable();
    let edges: Vec<&str> = graph["edges"]
        .as_array()
        .map(|e| e.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut text = format!("nodes {}", nodes.join(", "));
    if !edges.is_empty() {
        text.push_str(&format!("; edges {}", edges.join(", ")));
    }
    text
}

fn list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: BTreeSet<&str> = names.collect();
    if names.is_empty() {
        return "none".to_owned();
    }
    names.into_iter().collect::<Vec<_>>().join(", ")
}

fn short(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn planner() -> Planner {
        serde_json::from_value(json!({
            "model": "local/smollm2",
            "agents": [
                {"name": "researcher", "instructions": "You find facts."},
                {"name": "writer", "instructions": "You write.", "plugin": "writer-llm"}
            ],
            "tools": ["hello-tool/greet"],
            "max-nodes": 3
        }))
        .unwrap()
    }

    #[test]
    fn a_plan_becomes_a_graph_whose_agents_see_the_goal_and_earlier_results() {
        let plan = json!({
            "nodes": {
                "facts": {"agent": "researcher", "task": "Find three facts."},
                "hi": {"tool": "hello-tool/greet", "input": {"name": "Ada"}},
                "card": {"agent": "writer", "task": "Write a card."}
            },
            "edges": ["facts -> card", "hi->card"]
        });
        let graph = to_graph(&planner(), &plan, "the water cycle").unwrap();
        let read = document::read(&graph.to_string()).unwrap();
        assert_eq!(read.nodes.len(), 3);
        assert_eq!(graph["edges"], json!(["facts -> card", "hi -> card"]));
        assert_eq!(graph["nodes"]["card"]["agent"], "writer-llm");
        assert_eq!(graph["nodes"]["facts"]["agent"], "agent-llm");
        let task = graph["nodes"]["card"]["input"]["task"].as_str().unwrap();
        assert!(task.starts_with("Write a card."), "{task}");
        for part in [
            "{{ state.goal }}",
            "What `facts` found: {{ state.facts }}",
            "What `hi` found: {{ state.hi }}",
        ] {
            assert!(task.contains(part), "{part}: {task}");
        }
        assert_eq!(graph["nodes"]["hi"]["input"], json!({"name": "Ada"}));
        assert_eq!(graph["output"], json!(["card", "facts", "hi"]));
        assert_eq!(
            summary(&graph),
            "nodes card, facts, hi; edges facts -> card, hi -> card"
        );
    }

    #[test]
    fn every_problem_of_a_plan_is_reported_at_once() {
        let plan = json!({
            "nodes": {
                "facts": {"agent": "poet", "task": "Rhyme."},
                "card": {"agent": "writer", "task": "Use {{ state.nope }}."},
                "goal": {"tool": "hello-tool/greet", "input": {}},
                "rm": {"tool": "shell/run", "input": {}}
            },
            "edges": ["facts -> card", "card -> facts", "card -> summary", "card"]
        });
        let problems = to_graph(&planner(), &plan, "x").unwrap_err();
        let text = problems.join("\n");
        for needle in [
            "4 nodes; at most 3",
            "edge \"card\" is not \"A -> B\"",
            "node `facts`: no agent \"poet\"; the agents are: researcher, writer",
            "node id `goal` is taken",
            "node `rm`: no tool \"shell/run\"; the tools are: hello-tool/greet",
            "summary",
            "cycle",
            "nope",
        ] {
            assert!(text.contains(needle), "{needle}:\n{text}");
        }
    }

    #[test]
    fn the_schema_offers_only_the_listed_agents_and_tools() {
        let schema = plan_schema(&planner(), &BTreeMap::new());
        let node = &schema["properties"]["nodes"]["additionalProperties"]["anyOf"];
        assert_eq!(
            node[0]["properties"]["agent"]["enum"],
            json!(["researcher", "writer"])
        );
        assert_eq!(node[1]["properties"]["tool"]["const"], "hello-tool/greet");
        assert_eq!(schema["properties"]["nodes"]["maxProperties"], 3);
    }
}
