//! `convergio-agent-llm`: the platform's LLM agent.
//!
//! A task's input is an agent definition and the task
//! (`{"agent": {…}, "task": …}`, see `docs/agents.md`). The agent sends the
//! definition's instructions and the task to the model with the tools the
//! definition lists, runs every tool call the model asks for (those of one
//! answer at once, through `convergio:platform/tools`), gives the results
//! back, and repeats until the model answers without calling a tool, or a
//! limit of the definition is reached. The answer is the output: text, or
//! the JSON value of the definition's `output-schema`.
//!
//! A tool the definition does not list is refused here; one whose plugin
//! the agent's plugin is not granted is refused by the host. Either way the
//! model sees the refusal as the tool's error and may go on without it.
//!
//! In a graph run every model answer and every batch of tool results is a
//! step recorded in the run's journal (`run-context`): after a crash of the
//! host the node call runs again, reads the steps it finished and goes on
//! from there, so no finished model call or tool call is made twice.

mod builtins;
mod guardrails;
mod planner;
mod spawn;

use convergio_agent::{AgentInput, Budget, Definition, OnFail, Planner, Policy, Quality, Strategy};
use convergio_sdk::agent::{AgentError, AgentInfo, Guest, Outcome, StateEntry, Task};
use convergio_sdk::inference::{self, ChatRequest, ModelSelector, Requirements};
use convergio_sdk::log;
use convergio_sdk::run::{Steps, fingerprint};
use convergio_sdk::tools::{self, ToolCallError};
use convergio_sdk::types::{
    Completion, FinishReason, Message, ModelError, QualityTier, ResponseFormat, Role, Sampling,
    ToolCall, ToolDefinition, Usage,
};
use serde_json::Value;

/// The component.
#[derive(Debug)]
pub struct AgentLlm;

impl Guest for AgentLlm {
    fn describe() -> AgentInfo {
        AgentInfo::new(
            "agent-llm",
            "An LLM agent configured by an agent definition: a tool-calling loop over the platform's models",
        )
        .with_input_schema(&convergio_agent::input_schema())
    }

    fn run(task: Task) -> Result<Outcome, AgentError> {
        if task.input.contains("\"planner\"")
            && let Ok(Value::Object(fields)) = serde_json::from_str(&task.input)
            && fields.contains_key("planner")
        {
            let PlannerInput { planner, goal } = serde_json::from_value(Value::Object(fields))
                .map_err(|e| {
                    AgentError::InvalidInput(format!(
                        "the task's input is not {{\"planner\": <settings>, \"goal\": …}} (docs/graphs.md, planner nodes): {e}"
                    ))
                })?;
            let output = planner::run(&planner, &goal)?;
            return Ok(Outcome {
                output: output.to_string(),
                state_updates: Vec::new(),
            });
        }
        let input: AgentInput = serde_json::from_str(&task.input).map_err(|e| {
            AgentError::InvalidInput(format!(
                "the task's input is not {{\"agent\": <definition>, \"task\": …}}: {e}"
            ))
        })?;
        let Some(definition) = input.agent else {
            return Err(AgentError::InvalidInput(
                "the task has no agent definition: send {\"agent\": <definition>, \"task\": …} (docs/agents.md)"
                    .to_owned(),
            ));
        };
        definition.check().map_err(AgentError::InvalidInput)?;
        let text = match &input.task {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        let mut conversation = Conversation::new(
            &definition,
            text,
            input.depth,
            input.budget.unwrap_or_default(),
        );
        conversation.check_input(&input.task)?;
        let output = conversation.run()?;
        // A spawned agent reports what it used, for its parent's limits.
        let state_updates = if input.depth > 0 {
            vec![StateEntry {
                key: "usage".to_owned(),
                value: serde_json::json!({
                    "tokens": conversation.tokens,
                    "cost-micro-usd": conversation.cost_micro_usd,
                })
                .to_string(),
            }]
        } else {
            Vec::new()
        };
        Ok(Outcome {
            output: output.to_string(),
            state_updates,
        })
    }
}

/// What a graph's `planner` node sends: its settings and the goal.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PlannerInput {
    planner: Planner,
    goal: Value,
}

/// One run of an agent: its messages and what it has used.
struct Conversation<'a> {
    definition: &'a Definition,
    messages: Vec<Message>,
    tools: Vec<ToolDefinition>,
    tokens: u64,
    cost_micro_usd: u64,
    steps: Steps,
    /// How deep among spawned agents (0: not spawned).
    depth: u32,
    /// What the spawning agent left this one.
    budget: Budget,
    /// Agents spawned so far.
    spawned: u32,
}

impl<'a> Conversation<'a> {
    fn new(definition: &'a Definition, task: String, depth: u32, budget: Budget) -> Self {
        Self {
            definition,
            messages: vec![
                Message::system(definition.instructions.clone()),
                Message::user(task),
            ],
            tools: all_tools(definition, depth),
            tokens: 0,
            cost_micro_usd: 0,
            steps: Steps::new(),
            depth,
            budget,
            spawned: 0,
        }
    }

    /// Block the task if an input guardrail says so.
    fn check_input(&mut self, task: &Value) -> Result<(), AgentError> {
        let d = self.definition;
        for guardrail in &d.guardrails.input {
            let verdict = guardrails::check(guardrail, task, &mut self.steps)
                .map_err(|e| AgentError::Failed(format!("agent `{}`: {e}", d.name)))?;
            if let Some(reason) = verdict {
                let blocked = format!(
                    "agent `{}`: input guardrail `{}` blocked the task: {reason}",
                    d.name, guardrail.name
                );
                log::warn(&blocked);
                return Err(AgentError::InvalidInput(blocked));
            }
        }
        Ok(())
    }

    fn run(&mut self) -> Result<Value, AgentError> {
        let mut step = 0;
        while step < self.definition.max_steps {
            step += 1;
            let name = self.definition.name.clone();
            let done = self.ask_model(step)?;
            self.count(&done)?;
            let calls = done.message.tool_calls.clone();
            self.messages.push(done.message);
            if calls.is_empty() {
                match self.answer()? {
                    Answer::Final(value) => return Ok(value),
                    Answer::Revise(note) => {
                        self.messages.push(Message::user(note));
                        continue;
                    }
                }
            }
            log::info(&format!(
                "agent `{name}`, step {step}: {} calls {}",
                done.model,
                calls
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            self.call_tools(&calls).map_err(|e| match e {
                StepFailure::Limit(limit) => limit,
                other => AgentError::ToolFailed(format!(
                    "agent `{name}`, step {step}: {}",
                    describe(&other)
                )),
            })?;
        }
        Err(AgentError::Failed(format!(
            "agent `{}` reached its max-steps ({}) without a final answer; the model kept calling tools",
            self.definition.name, self.definition.max_steps
        )))
    }

    /// The model's next answer: recorded in the run, or asked for and
    /// recorded.
    fn ask_model(&mut self, step: u32) -> Result<Completion, AgentError> {
        let name = &self.definition.name;
        let request = self.request();
        let key = fingerprint(&conversation_text(&request.messages));
        let mut failure = None;
        let recorded = self.steps.step("model", &key, || {
            inference::complete(&request)
                .map(|done| completion_json(&done).to_string())
                .map_err(|e| {
                    let text = describe_model_error(&e);
                    failure = Some(text.clone());
                    text
                })
        });
        match recorded {
            Ok(text) => completion_from_json(&text).ok_or_else(|| {
                AgentError::Failed(format!(
                    "agent `{name}`, step {step}: the recorded model answer is not one: {text}"
                ))
            }),
            Err(e) if failure.is_some() => Err(AgentError::InferenceFailed(format!(
                "agent `{name}`, step {step}: {e}"
            ))),
            Err(e) => Err(AgentError::Failed(format!(
                "agent `{name}`, step {step}: {e}"
            ))),
        }
    }

    fn request(&self) -> ChatRequest {
        let d = self.definition;
        ChatRequest {
            model: selector(d, !self.tools.is_empty()),
            messages: self.messages.clone(),
            tools: self.tools.clone(),
            sampling: Sampling {
                temperature: d.temperature,
                top_p: None,
                top_k: None,
                seed: d.seed,
                max_tokens: d.max_output_tokens,
                stop: Vec::new(),
            },
            format: match &d.output_schema {
                Some(schema) => ResponseFormat::JsonSchema(schema.to_string()),
                None => ResponseFormat::Text,
            },
        }
    }

    /// Add an answer's usage; fail once a limit is passed.
    fn count(&mut self, done: &Completion) -> Result<(), AgentError> {
        self.add_usage(
            u64::from(done.usage.input_tokens) + u64::from(done.usage.output_tokens),
            done.usage.cost_micro_usd,
        )
    }

    /// The most tokens and cost (µ$) this run may use: the definition's
    /// limits, or what the spawning agent left, whichever is lower.
    fn limits(&self) -> (Option<u64>, Option<u64>) {
        let d = self.definition;
        let own_cost = d.max_cost_usd.map(|usd| (usd * 1e6) as u64);
        (
            [d.max_tokens, self.budget.tokens]
                .into_iter()
                .flatten()
                .min(),
            [own_cost, self.budget.cost_micro_usd]
                .into_iter()
                .flatten()
                .min(),
        )
    }

    /// Add usage (this agent's, or a spawned agent's); fail once the
    /// definition's limits, or what the spawning agent left, are passed.
    fn add_usage(&mut self, tokens: u64, cost_micro_usd: u64) -> Result<(), AgentError> {
        let d = self.definition;
        let children = if d.sub_agents.is_empty() {
            ""
        } else {
            "; its sub-agents' count too"
        };
        self.tokens += tokens;
        self.cost_micro_usd += cost_micro_usd;
        let (max_tokens, max_cost) = self.limits();
        if let Some(max) = max_tokens
            && self.tokens > max
        {
            return Err(AgentError::Failed(format!(
                "agent `{}` used {} tokens, over its max-tokens ({max}{children})",
                d.name, self.tokens
            )));
        }
        if let Some(max) = max_cost
            && self.cost_micro_usd > max
        {
            return Err(AgentError::Failed(format!(
                "agent `{}` spent ${:.6}, over its max-cost-usd (${:.6}{children})",
                d.name,
                self.cost_micro_usd as f64 / 1e6,
                max as f64 / 1e6
            )));
        }
        Ok(())
    }

    /// What is left of the limits, for a spawned agent.
    fn left(&self) -> Budget {
        let (max_tokens, max_cost) = self.limits();
        Budget {
            tokens: max_tokens.map(|m| m.saturating_sub(self.tokens)),
            cost_micro_usd: max_cost.map(|m| m.saturating_sub(self.cost_micro_usd)),
        }
    }

    /// Run the calls of one answer (at once), and add their results.
    fn call_tools(&mut self, calls: &[ToolCall]) -> Result<(), StepFailure> {
        // The calls of listed tools go to the host together; the others
        // are answered here with the refusal.
        let mut results: Vec<Option<String>> = vec![None; calls.len()];
        let mut spent = Vec::new();
        let mut asked = Vec::new();
        let mut positions = Vec::new();
        for (i, call) in calls.iter().enumerate() {
            if (builtins::is_builtin(&call.name) || call.name == spawn::SPAWN)
                && self.offers(&call.name)
            {
                asked.push((call.name.clone(), call.arguments.clone()));
                positions.push(i);
                continue;
            }
            match self.definition.listed_tool(&call.name) {
                Some(tool) => {
                    asked.push((tool.to_owned(), call.arguments.clone()));
                    positions.push(i);
                }
                None => {
                    let refusal = format!(
                        "error: `{}` is not one of this agent's tools; its tools are: {}",
                        call.name,
                        self.offered_names()
                    );
                    log::warn(&format!("agent `{}`: {refusal}", self.definition.name));
                    results[i] = Some(refusal);
                }
            }
        }
        if !asked.is_empty() {
            let key = fingerprint(
                &asked
                    .iter()
                    .map(|(tool, args)| format!("{tool} {args}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
            );
            let name = self.definition.name.clone();
            let definition = self.definition;
            let (depth, first_spawn, budget) = (self.depth, self.spawned, self.left());
            let answered = self.steps.step("tools", &key, || {
                // Spawned agents start first and run meanwhile; the plugins'
                // tools run at once; the agent's own here; then the spawned
                // agents' answers are awaited.
                let mut outputs = vec![Value::Null; asked.len()];
                let mut children = Vec::new();
                let mut plugin = Vec::new();
                for (i, (tool, arguments)) in asked.iter().enumerate() {
                    if tool == spawn::SPAWN {
                        let index = first_spawn + children.len() as u32;
                        children.push((i, spawn::start(definition, arguments, depth, index, budget)));
                    } else if builtins::is_builtin(tool) {
                        outputs[i] = serde_json::json!({"content": builtins::call(definition, tool, arguments)});
                    } else {
                        plugin.push((i, (tool.clone(), arguments.clone())));
                    }
                }
                if !plugin.is_empty() {
                    let batch: Vec<(String, String)> = plugin.iter().map(|(_, c)| c.clone()).collect();
                    for ((i, (tool, _)), result) in plugin.iter().zip(tools::call_all(&batch)) {
                        let content = match result {
                            Ok(output) => output,
                            Err(e) => {
                                let error = format!("error: {}", describe_tool_error(&e));
                                log::warn(&format!("agent `{name}`: tool `{tool}` failed: {error}"));
                                error
                            }
                        };
                        outputs[*i] = serde_json::json!({"content": content});
                    }
                }
                for (i, child) in children {
                    outputs[i] = spawn::finish(child);
                }
                serde_json::to_string(&outputs).map_err(|e| e.to_string())
            })?;
            let outputs: Vec<Value> = serde_json::from_str(&answered)?;
            for (i, output) in positions.into_iter().zip(outputs) {
                results[i] = Some(output["content"].as_str().unwrap_or_default().to_owned());
                let tokens = output["tokens"].as_u64().unwrap_or(0);
                let cost = output["cost-micro-usd"].as_u64().unwrap_or(0);
                if tokens > 0 || cost > 0 {
                    spent.push((tokens, cost));
                }
            }
            self.spawned += asked.iter().filter(|(t, _)| t == spawn::SPAWN).count() as u32;
        }
        for (call, result) in calls.iter().zip(results) {
            self.messages.push(Message {
                role: Role::Tool,
                content: result.unwrap_or_default(),
                tool_calls: Vec::new(),
                tool_call_id: Some(call.id.clone()),
            });
        }
        // A handoff: the named agent takes over the conversation.
        let target = calls
            .iter()
            .rev()
            .filter(|c| c.name == builtins::HANDOFF && self.offers(&c.name))
            .find_map(|c| builtins::handoff_target(self.definition, &c.arguments));
        if let Some(target) = target {
            log::info(&format!(
                "agent `{}` hands the conversation to `{}`",
                self.definition.name, target.name
            ));
            self.definition = target;
            self.messages[0] = Message::system(target.instructions.clone());
            self.tools = all_tools(target, self.depth);
        }
        // What spawned agents used counts against this agent's limits.
        for (tokens, cost) in spent {
            self.add_usage(tokens, cost).map_err(StepFailure::Limit)?;
        }
        Ok(())
    }

    /// Whether the model was offered tool `name`.
    fn offers(&self, name: &str) -> bool {
        self.tools.iter().any(|t| t.name == name)
    }

    fn offered_names(&self) -> String {
        if self.tools.is_empty() {
            return "none".to_owned();
        }
        self.tools
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The final answer: text, or the JSON of the output schema — if the
    /// output guardrails pass it.
    fn answer(&mut self) -> Result<Answer, AgentError> {
        let d = self.definition;
        let text = self
            .messages
            .last()
            .map(|m| m.content.clone())
            .unwrap_or_default();
        let value = if d.output_schema.is_none() {
            Value::String(text)
        } else {
            // The host validated it against the schema.
            serde_json::from_str(text.trim()).map_err(|e| {
                AgentError::Failed(format!(
                    "agent `{}`: the answer is not the JSON its output-schema asks for: {e}",
                    d.name
                ))
            })?
        };
        for guardrail in &d.guardrails.output {
            let verdict = guardrails::check(guardrail, &value, &mut self.steps)
                .map_err(|e| AgentError::Failed(format!("agent `{}`: {e}", d.name)))?;
            let Some(reason) = verdict else {
                continue;
            };
            log::warn(&format!(
                "agent `{}`: output guardrail `{}` stopped the answer: {reason}",
                d.name, guardrail.name
            ));
            return match guardrail.on_fail {
                OnFail::Block => Err(AgentError::Failed(format!(
                    "agent `{}`: output guardrail `{}` blocked the answer: {reason}",
                    d.name, guardrail.name
                ))),
                OnFail::Revise => Ok(Answer::Revise(format!(
                    "Your answer was stopped by the guardrail `{}`: {reason}. Revise it and answer again.",
                    guardrail.name
                ))),
            };
        }
        Ok(Answer::Final(value))
    }
}

/// What an answer without tool calls leads to.
enum Answer {
    /// The run's output.
    Final(Value),
    /// Ask the model again with this note.
    Revise(String),
}

/// The plugins' tools the definition lists and the agent's own it asks for.
fn all_tools(definition: &Definition, depth: u32) -> Vec<ToolDefinition> {
    let mut tools = offered_tools(definition);
    tools.extend(builtins::offered(definition));
    tools.extend(spawn::offered(definition, depth));
    tools
}

/// The tools of the definition that the host lets this plugin call, as the
/// model sees them (`plugin__tool`: model APIs refuse `/` in names).
fn offered_tools(definition: &Definition) -> Vec<ToolDefinition> {
    if definition.tools.is_empty() {
        return Vec::new();
    }
    let granted = tools::list();
    let mut offered = Vec::new();
    for tool in &definition.tools {
        match granted.iter().find(|t| &t.name == tool) {
            Some(entry) => offered.push(ToolDefinition {
                name: Definition::tool_for_model(tool),
                description: entry.description.clone(),
                parameters: entry.parameters.clone(),
            }),
            None => log::warn(&format!(
                "agent `{}`: tool `{tool}` is not offered to the model: this agent's plugin is not granted plugin `{}`, or it has no such tool",
                definition.name,
                tool.split('/').next().unwrap_or_default()
            )),
        }
    }
    offered
}

fn selector(definition: &Definition, tools: bool) -> ModelSelector {
    selector_for(
        definition.model.as_deref(),
        definition.policy.as_ref(),
        tools,
        definition.output_schema.is_some(),
    )
}

/// The model named, or the policy's choice among those that can take
/// tools and JSON of a schema when asked.
fn selector_for(
    model: Option<&str>,
    policy: Option<&Policy>,
    tools: bool,
    json: bool,
) -> ModelSelector {
    if let Some(model) = model {
        return ModelSelector::Named(model.to_owned());
    }
    let policy = policy.cloned().unwrap_or_default();
    let strategy = match policy.strategy {
        Strategy::Cheapest => inference::Strategy::Cheapest,
        Strategy::BestQuality => inference::Strategy::BestQuality,
    };
    ModelSelector::Policy((
        strategy,
        Requirements {
            tools,
            vision: false,
            json_mode: json,
            min_context: policy.min_context,
            min_quality: policy.min_quality.map(|q| match q {
                Quality::Basic => QualityTier::Basic,
                Quality::Standard => QualityTier::Standard,
                Quality::Premium => QualityTier::Premium,
            }),
            local_only: policy.local_only,
        },
    ))
}

/// The conversation as one text, for the fingerprint of a model step.
fn conversation_text(messages: &[Message]) -> String {
    let mut text = String::new();
    for m in messages {
        text.push_str(&format!("{:?}|{}|", m.role, m.content));
        for c in &m.tool_calls {
            text.push_str(&format!("{}:{}:{}|", c.id, c.name, c.arguments));
        }
        if let Some(id) = &m.tool_call_id {
            text.push_str(id);
        }
        text.push('\n');
    }
    text
}

/// A completion as the JSON a step records.
fn completion_json(done: &Completion) -> Value {
    let calls: Vec<Value> = done
        .message
        .tool_calls
        .iter()
        .map(|c| serde_json::json!({"id": c.id, "name": c.name, "arguments": c.arguments}))
        .collect();
    serde_json::json!({
        "provider": done.provider,
        "model": done.model,
        "content": done.message.content,
        "tool-calls": calls,
        "finish-reason": format!("{:?}", done.finish_reason),
        "usage": {
            "input-tokens": done.usage.input_tokens,
            "output-tokens": done.usage.output_tokens,
            "cost-micro-usd": done.usage.cost_micro_usd,
        },
    })
}

/// The completion a step recorded.
fn completion_from_json(text: &str) -> Option<Completion> {
    let v: Value = serde_json::from_str(text).ok()?;
    let s = |key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
    let n = |key: &str| v["usage"].get(key).and_then(Value::as_u64);
    let tool_calls = v
        .get("tool-calls")?
        .as_array()?
        .iter()
        .map(|c| {
            Some(ToolCall {
                id: c.get("id")?.as_str()?.to_owned(),
                name: c.get("name")?.as_str()?.to_owned(),
                arguments: c.get("arguments")?.as_str()?.to_owned(),
            })
        })
        .collect::<Option<Vec<_>>>()?;
    let finish_reason = match s("finish-reason")?.as_str() {
        "Length" => FinishReason::Length,
        "ToolCalls" => FinishReason::ToolCalls,
        "ContentFilter" => FinishReason::ContentFilter,
        _ => FinishReason::Stop,
    };
    Some(Completion {
        provider: s("provider")?,
        model: s("model")?,
        message: Message {
            role: Role::Assistant,
            content: s("content")?,
            tool_calls,
            tool_call_id: None,
        },
        finish_reason,
        usage: Usage {
            input_tokens: u32::try_from(n("input-tokens")?).ok()?,
            output_tokens: u32::try_from(n("output-tokens")?).ok()?,
            cost_micro_usd: n("cost-micro-usd")?,
        },
    })
}

fn describe(e: &StepFailure) -> String {
    match e {
        StepFailure::Record(m) => m.clone(),
        StepFailure::Json(e) => format!("a recorded step is not what it should be: {e}"),
        StepFailure::Limit(e) => format!("{e:?}"),
    }
}

/// Why a step of tool calls could not be taken or read back, or ended the run.
#[derive(Debug)]
enum StepFailure {
    Record(String),
    Json(serde_json::Error),
    Limit(AgentError),
}

impl From<String> for StepFailure {
    fn from(e: String) -> Self {
        Self::Record(e)
    }
}

impl From<serde_json::Error> for StepFailure {
    fn from(e: serde_json::Error) -> Self {
        Self::Json(e)
    }
}

fn describe_tool_error(e: &ToolCallError) -> String {
    match e {
        ToolCallError::InvalidArguments(m) => format!("invalid arguments: {m}"),
        ToolCallError::UnknownTool(m) => format!("unknown tool: {m}"),
        ToolCallError::Failed(m) => format!("failed: {m}"),
        ToolCallError::Denied(m) => format!("denied: {m}"),
    }
}

fn describe_model_error(e: &ModelError) -> String {
    match e {
        ModelError::RateLimited(after) => match after {
            Some(ms) => format!("rate-limited: retry after {ms} ms"),
            None => "rate-limited".to_owned(),
        },
        ModelError::Overloaded(m) => format!("overloaded: {m}"),
        ModelError::ContextLengthExceeded(m) => format!("context-length-exceeded: {m}"),
        ModelError::ContentFiltered(m) => format!("content-filtered: {m}"),
        ModelError::Auth(m) => format!("auth: {m}"),
        ModelError::BadRequest(m) => format!("bad-request: {m}"),
        ModelError::Upstream(m) => format!("upstream: {m}"),
        ModelError::Timeout(m) => format!("timeout: {m}"),
        ModelError::MalformedResponse(m) => format!("malformed-response: {m}"),
        ModelError::NoModel(m) => format!("no-model: {m}"),
        ModelError::BudgetExceeded(m) => format!("budget-exceeded: {m}"),
        ModelError::AccessDenied(m) => format!("access-denied: {m}"),
        ModelError::InvalidOutput(m) => format!("invalid-output: {m}"),
    }
}

// Native builds (doc tests, clippy) cannot link the component's export symbols.
#[cfg(target_arch = "wasm32")]
convergio_sdk::export_agent!(AgentLlm);
