//! Planner settings: what a graph's `planner` node gives the model that
//! writes the plan — the goal comes from the node's input — and what the
//! plan may use (`docs/graphs.md`, "Planner nodes").

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Definition, Policy, is_pair};

/// The most nodes a plan may have, whatever a planner says.
pub const MAX_PLAN_NODES: u32 = 32;

/// A `planner` node: a model decomposes the node's goal into a graph of
/// the agents and tools listed here, the plan is checked (and asked for
/// again with the problems), then run as a child run of the node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Planner {
    /// The model that plans, `provider/model`. Without it, `policy`
    /// chooses (a model that can answer in JSON of a schema).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// How the router chooses the planning model when `model` is not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Policy>,
    /// Guidance added to the planner's own instructions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// The agents a plan may use, as agent definitions; the model sees
    /// their names and descriptions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<Definition>,
    /// The tools a plan may call, as `plugin/tool`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<String>,
    /// The most nodes a plan may have (at most 32).
    #[serde(default = "default_max_nodes")]
    pub max_nodes: u32,
    /// Plans asked for in all: an invalid plan is sent back with its
    /// problems, this many times less one.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// Sampling temperature of the planning model (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Seed of the sampler, where the model has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// The most tokens of each plan the model writes (default 800).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
    /// The agent plugin that plans: an instance of the LLM agent
    /// component, granted `runs` (the plan runs as a run of its own).
    #[serde(default = "default_plugin")]
    pub plugin: String,
}

fn default_max_nodes() -> u32 {
    6
}

fn default_attempts() -> u32 {
    3
}

fn default_plugin() -> String {
    "agent-llm".to_owned()
}

impl Planner {
    /// The rules the types do not say: every problem, one per line.
    pub fn check(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        if self.agents.is_empty() && self.tools.is_empty() {
            problems.push(
                "planner: `agents` and `tools` are both empty: list what a plan may use".to_owned(),
            );
        }
        if self.model.is_some() && self.policy.is_some() {
            problems.push(
                "planner: both `model` and `policy` are set; name a model, or let the policy choose"
                    .to_owned(),
            );
        }
        if let Some(model) = &self.model
            && !is_pair(model)
        {
            problems.push(format!(
                "planner: field `model`: `{model}` is not `provider/model`, e.g. `local/smollm2`"
            ));
        }
        for (i, agent) in self.agents.iter().enumerate() {
            if self.agents[..i].iter().any(|a| a.name == agent.name) {
                problems.push(format!(
                    "planner: field `agents`: two agents are named `{}`",
                    agent.name
                ));
            }
            if let Err(inner) = agent.check() {
                problems.extend(
                    inner
                        .lines()
                        .map(|l| format!("planner: field `agents`: {l}")),
                );
            }
        }
        for (i, tool) in self.tools.iter().enumerate() {
            if !is_pair(tool) {
                problems.push(format!(
                    "planner: field `tools`: `{tool}` is not `plugin/tool`, e.g. `search/web`"
                ));
            } else if self.tools[..i].contains(tool) {
                problems.push(format!("planner: field `tools`: `{tool}` is listed twice"));
            }
        }
        if !(1..=MAX_PLAN_NODES).contains(&self.max_nodes) {
            problems.push(format!(
                "planner: field `max-nodes`: {} is not between 1 and {MAX_PLAN_NODES}",
                self.max_nodes
            ));
        }
        if !(1..=10).contains(&self.attempts) {
            problems.push(format!(
                "planner: field `attempts`: {} is not between 1 and 10",
                self.attempts
            ));
        }
        if let Some(t) = self.temperature
            && !(t.is_finite() && t >= 0.0)
        {
            problems.push(format!(
                "planner: field `temperature`: {t} is not 0 or more"
            ));
        }
        if self.plugin.trim().is_empty() {
            problems.push("planner: field `plugin` is empty".to_owned());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_problem_is_reported_at_once() {
        let planner: Planner = serde_json::from_value(json!({
            "model": "gpt",
            "agents": [
                {"name": "a", "instructions": "x"},
                {"name": "a", "instructions": " "}
            ],
            "tools": ["web", "x/y", "x/y"],
            "max-nodes": 0,
            "attempts": 11
        }))
        .unwrap();
        let err = planner.check().unwrap_err();
        for needle in [
            "`gpt` is not `provider/model`",
            "two agents are named `a`",
            "the instructions are empty",
            "`web` is not `plugin/tool`",
            "`x/y` is listed twice",
            "`max-nodes`: 0",
            "`attempts`: 11",
        ] {
            assert!(err.contains(needle), "{needle}: {err}");
        }
    }

    #[test]
    fn defaults_plan_with_the_llm_agent() {
        let planner: Planner =
            serde_json::from_value(json!({"model": "local/smollm2", "tools": ["a/b"]})).unwrap();
        assert_eq!(
            (planner.max_nodes, planner.attempts, planner.plugin.as_str()),
            (6, 3, "agent-llm")
        );
        planner.check().unwrap();
    }
}
