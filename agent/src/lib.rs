//! Agent definitions: the document that configures Convergio's LLM agent
//! component (`components/agent-llm`) — its instructions, the model (or a
//! routing policy), the tools it may call, its limits and the JSON Schema of
//! its answer. `docs/agent.schema.json` is generated from [`Definition`];
//! `docs/agents.md` is the reference.
//!
//! ```
//! let definition = convergio_agent::Definition::from_json(&serde_json::json!({
//!     "name": "tutor",
//!     "instructions": "You teach history. Answer in two sentences.",
//!     "model": "local/smollm2",
//!     "tools": ["library/search"],
//! }))?;
//! assert_eq!(definition.max_steps, 8);
//! # Ok::<(), String>(())
//! ```

mod planner;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use planner::{MAX_PLAN_NODES, Planner};

/// How many model calls an agent makes at most, unless its definition says.
pub const DEFAULT_MAX_STEPS: u32 = 8;

/// An agent: what it is told, which model answers, what it may call and how
/// far it may go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[schemars(title = "Convergio agent definition")]
pub struct Definition {
    /// A name, for logs, events and usage lines.
    pub name: String,
    /// What the agent does, for people and for planners.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The system prompt.
    pub instructions: String,
    /// The model, `provider/model` (e.g. `local/smollm2`,
    /// `openai/gpt-6-luna`). Without it, `policy` chooses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// How the router chooses a model when `model` is not set (default: the
    /// cheapest model that can take the request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Policy>,
    /// The tools the model may call, as `plugin/tool`. The agent's plugin
    /// must also be granted each plugin (`plugins = [...]`): a call of any
    /// other tool is refused, and the model sees the refusal as the tool's
    /// error.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<String>,
    /// The most model calls in one run of the agent (each answer that
    /// calls tools is one); reaching it fails the run.
    #[serde(default = "default_max_steps")]
    pub max_steps: u32,
    /// The most tokens (prompt and completion, all calls) one run may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// The most one run may cost, in US dollars (all model calls).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cost_usd: Option<f64>,
    /// The most tokens of each answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
    /// Sampling temperature (0: always the most likely token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Seed of the sampler, for repeatable answers where the model has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// The JSON Schema of the final answer. The answer is then JSON that
    /// matches it (grammar-constrained on local models, validated and asked
    /// for again otherwise), and the agent's output is that JSON value
    /// instead of text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
    /// Long-term memory: the model gets the tools `agent__remember` and
    /// `agent__recall` over this storage bucket (the agent's plugin must be
    /// granted it: `storage = ["…"]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
    /// Agents this one may hand the conversation to (tool `agent__handoff`):
    /// the named agent takes over with its own instructions, tools and
    /// limits, and the whole conversation so far.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub handoffs: Vec<Definition>,
    /// Checks on the task before the first model call and on the final
    /// answer.
    #[serde(default, skip_serializing_if = "Guardrails::is_empty")]
    pub guardrails: Guardrails,
    /// Agents this one may spawn (tool `agent__spawn`): each runs as a run
    /// of its own, journaled, and its answer comes back as the tool's
    /// result. Their `tools` must be among this agent's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sub_agents: Vec<Definition>,
    /// How deep spawned agents may nest (this agent is depth 0; its
    /// sub-agents 1, theirs 2, …).
    #[serde(default = "default_max_depth")]
    pub max_depth: u32,
    /// The most agents this one may spawn in one run.
    #[serde(default = "default_max_spawns")]
    pub max_spawns: u32,
    /// The plugin that runs spawned agents (an instance of the LLM agent
    /// component; the platform's orchestrator must be granted it).
    #[serde(default = "default_plugin")]
    pub plugin: String,
}

fn default_max_depth() -> u32 {
    2
}

fn default_max_spawns() -> u32 {
    8
}

fn default_plugin() -> String {
    "agent-llm".to_owned()
}

/// Long-term memory settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Memory {
    /// The storage bucket the memories are kept in (one per agent, or
    /// shared by agents that should share them).
    pub bucket: String,
    /// The most memories one `agent__recall` returns.
    #[serde(default = "default_recall_limit")]
    pub recall_limit: u32,
}

fn default_recall_limit() -> u32 {
    5
}

/// Guardrails on the way in and out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Guardrails {
    /// Checks on the task, before the first model call: a failure blocks
    /// the run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub input: Vec<Guardrail>,
    /// Checks on the final answer: a failure blocks the run, or asks the
    /// agent to revise its answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output: Vec<Guardrail>,
}

impl Guardrails {
    fn is_empty(&self) -> bool {
        self.input.is_empty() && self.output.is_empty()
    }
}

/// One check: a JSON Schema the value must match, or a tool that judges it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Guardrail {
    /// Its name, in the error that a blocked run reports.
    pub name: String,
    /// The value (the task, or the answer: text is a JSON string) must
    /// match this JSON Schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    /// Or this tool (`plugin/tool`) judges it: it gets `{"text": …}` and
    /// answers `{"allow": true}`, or `{"allow": false, "reason": "…"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// What a failure does: `block` (default) fails the run; `revise` (for
    /// output guardrails) gives the reason to the model and asks it to
    /// answer again.
    #[serde(default)]
    pub on_fail: OnFail,
}

/// What a failed guardrail does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OnFail {
    /// Fail the run, naming the guardrail and why.
    #[default]
    Block,
    /// Ask the agent to revise its answer (output guardrails only).
    Revise,
}

/// How the router chooses a model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Policy {
    /// `cheapest` (default) or `best-quality`.
    #[serde(default)]
    pub strategy: Strategy,
    /// Only models that run on this machine.
    #[serde(default)]
    pub local_only: bool,
    /// The lowest acceptable quality tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_quality: Option<Quality>,
    /// The smallest acceptable context window, in tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_context: Option<u32>,
}

/// Which of the models that qualify.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// The lowest price.
    #[default]
    Cheapest,
    /// The highest quality tier, then the lowest price.
    BestQuality,
}

/// A model's quality tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Quality {
    /// Small, fast models.
    Basic,
    /// General-purpose models.
    Standard,
    /// The strongest models.
    Premium,
}

fn default_max_steps() -> u32 {
    DEFAULT_MAX_STEPS
}

impl Definition {
    /// The definition `value` describes, checked; or every problem, one per
    /// line.
    pub fn from_json(value: &Value) -> Result<Self, String> {
        let definition: Self =
            serde_json::from_value(value.clone()).map_err(|e| format!("agent definition: {e}"))?;
        definition.check().map(|()| definition)
    }

    /// The rules the types do not say: every problem, one per line.
    pub fn check(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        let at = |field: &str| format!("agent `{}`: field `{field}`", self.name);
        if self.name.trim().is_empty() {
            problems.push("agent definition: `name` is empty".to_owned());
        }
        if self.instructions.trim().is_empty() {
            problems.push(format!(
                "{}: the instructions are empty",
                at("instructions")
            ));
        }
        if self.model.is_some() && self.policy.is_some() {
            problems.push(format!(
                "agent `{}`: both `model` and `policy` are set; name a model, or let the policy choose",
                self.name
            ));
        }
        if let Some(model) = &self.model
            && !is_pair(model)
        {
            problems.push(format!(
                "{}: `{model}` is not `provider/model`, e.g. `local/smollm2`",
                at("model")
            ));
        }
        for tool in &self.tools {
            if !is_pair(tool) {
                problems.push(format!(
                    "{}: `{tool}` is not `plugin/tool`, e.g. `search/web`",
                    at("tools")
                ));
            }
        }
        if let Some(twice) = self
            .tools
            .iter()
            .enumerate()
            .find(|(i, t)| self.tools[..*i].contains(t))
        {
            problems.push(format!("{}: `{}` is listed twice", at("tools"), twice.1));
        }
        if self.max_steps == 0 {
            problems.push(format!(
                "{}: 0 allows no model call; at least 1",
                at("max-steps")
            ));
        }
        if let Some(cost) = self.max_cost_usd
            && !(cost.is_finite() && cost > 0.0)
        {
            problems.push(format!(
                "{}: {cost} is not a positive amount",
                at("max-cost-usd")
            ));
        }
        if let Some(t) = self.temperature
            && !(t.is_finite() && t >= 0.0)
        {
            problems.push(format!("{}: {t} is not 0 or more", at("temperature")));
        }
        if let Some(schema) = &self.output_schema
            && !(schema.is_object() || schema.is_boolean())
        {
            problems.push(format!(
                "{}: a JSON Schema is an object, not {schema}",
                at("output-schema")
            ));
        }
        if let Some(memory) = &self.memory
            && memory.bucket.trim().is_empty()
        {
            problems.push(format!("{}: the bucket is empty", at("memory")));
        }
        for (side, list) in [
            ("input", &self.guardrails.input),
            ("output", &self.guardrails.output),
        ] {
            for g in list {
                let field = format!("guardrails.{side}");
                match (&g.schema, &g.tool) {
                    (Some(_), Some(_)) | (None, None) => problems.push(format!(
                        "{}: guardrail `{}` needs exactly one of `schema` and `tool`",
                        at(&field),
                        g.name
                    )),
                    (None, Some(tool)) if !is_pair(tool) => problems.push(format!(
                        "{}: guardrail `{}`: `{tool}` is not `plugin/tool`",
                        at(&field),
                        g.name
                    )),
                    _ => {}
                }
                if side == "input" && g.on_fail == OnFail::Revise {
                    problems.push(format!(
                        "{}: guardrail `{}`: `revise` applies to output guardrails; an input guardrail can only `block`",
                        at(&field),
                        g.name
                    ));
                }
            }
        }
        for (i, sub) in self.sub_agents.iter().enumerate() {
            if self.sub_agents[..i].iter().any(|h| h.name == sub.name) {
                problems.push(format!(
                    "{}: two sub-agents are named `{}`",
                    at("sub-agents"),
                    sub.name
                ));
            }
            for tool in &sub.tools {
                if !self.tools.contains(tool) {
                    problems.push(format!(
                        "{}: sub-agent `{}` lists tool `{tool}`, which `{}` does not: a spawned agent gets no tool its parent lacks",
                        at("sub-agents"),
                        sub.name,
                        self.name
                    ));
                }
            }
            if let Err(inner) = sub.check() {
                problems.extend(inner.lines().map(|l| format!("{}: {l}", at("sub-agents"))));
            }
        }
        for (i, handoff) in self.handoffs.iter().enumerate() {
            if self.handoffs[..i].iter().any(|h| h.name == handoff.name) {
                problems.push(format!(
                    "{}: two handoffs are named `{}`",
                    at("handoffs"),
                    handoff.name
                ));
            }
            if let Err(inner) = handoff.check() {
                problems.extend(inner.lines().map(|l| format!("{}: {l}", at("handoffs"))));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n"))
        }
    }

    /// The tool `name` of the model's call as the definition lists it:
    /// model APIs refuse `/` in tool names, so the model sees `plugin__tool`.
    pub fn tool_for_model(tool: &str) -> String {
        tool.replacen('/', "__", 1)
    }

    /// The `plugin/tool` a model's tool name stands for, if the definition
    /// lists it.
    pub fn listed_tool(&self, model_name: &str) -> Option<&str> {
        self.tools
            .iter()
            .map(String::as_str)
            .find(|t| Self::tool_for_model(t) == model_name || *t == model_name)
    }
}

fn is_pair(name: &str) -> bool {
    name.split_once('/')
        .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty())
}

/// What the LLM agent component receives as a task's input: its definition
/// (unless its plugin is configured with one) and the task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct AgentInput {
    /// The agent's definition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<Definition>,
    /// The task: text is the user's message; anything else is sent as its
    /// JSON text.
    pub task: Value,
    /// How deep this agent is among spawned agents (0: not spawned).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub depth: u32,
    /// What the spawning agent has left of its limits, which bound this one
    /// too: `{"tokens": n, "cost-micro-usd": n}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
}

/// What a spawned agent may still use, from its parent's limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Budget {
    /// Tokens left, if the parent has `max-tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
    /// Cost left in millionths of a dollar, if the parent has `max-cost-usd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_micro_usd: Option<u64>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The JSON Schema of [`AgentInput`], what the LLM agent component takes.
pub fn input_schema() -> Value {
    serde_json::to_value(schemars::schema_for!(AgentInput)).unwrap_or(Value::Null)
}

/// The JSON Schema of [`Definition`], pretty-printed (`docs/agent.schema.json`).
pub fn schema() -> String {
    let schema = serde_json::to_value(schemars::schema_for!(Definition)).unwrap_or(Value::Null);
    let mut text = serde_json::to_string_pretty(&sorted(schema)).unwrap_or_default();
    text.push('\n');
    text
}

/// `value` with every object's keys in order, whatever order the build's
/// `serde_json` keeps (the published schema is the same from every build).
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let ordered: std::collections::BTreeMap<String, Value> =
                map.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            Value::Object(ordered.into_iter().collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = Definition::from_json(&json!({
            "name": "x",
            "instructions": " ",
            "model": "gpt",
            "policy": {},
            "tools": ["web", "a/b", "a/b"],
            "max-steps": 0,
            "max-cost-usd": -1.0,
            "output-schema": "string"
        }))
        .unwrap_err();
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 8, "{err}");
        assert!(err.contains("`gpt` is not `provider/model`"), "{err}");
        assert!(err.contains("`web` is not `plugin/tool`"), "{err}");
        assert!(err.contains("`a/b` is listed twice"), "{err}");
        assert!(err.contains("both `model` and `policy`"), "{err}");
    }

    #[test]
    fn unknown_fields_name_the_known_ones() {
        let err = Definition::from_json(&json!({"name": "x", "instructions": "y", "toolz": []}))
            .unwrap_err();
        assert!(
            err.contains("unknown field `toolz`") && err.contains("`tools`"),
            "{err}"
        );
    }

    #[test]
    fn tool_names_round_trip_through_the_models_form() {
        let d = Definition::from_json(&json!({
            "name": "x", "instructions": "y", "tools": ["search/web"]
        }))
        .unwrap();
        assert_eq!(Definition::tool_for_model("search/web"), "search__web");
        assert_eq!(d.listed_tool("search__web"), Some("search/web"));
        assert_eq!(d.listed_tool("search/web"), Some("search/web"));
        assert_eq!(d.listed_tool("shell__run"), None);
    }
}
