//! `chat_agent`: an agent that asks a model through the imported
//! `convergio:platform/inference` interface. `run(task)` reads the task input
//! as `{"model": "provider/model" | null, "prompt": "…", "stream": bool}`:
//! a null model asks the router for the cheapest model. The output is
//! `{"text": …, "model": "provider/model", "deltas": N}` (deltas counted when
//! streaming); a model error becomes `inference-failed("<kind>: <message>")`.

/// Bindings generated from the WIT contract. The export glue that
/// wit-bindgen emits is `unsafe` (raw ABI, `export_name`), so the workspace's
/// `unsafe_code` denial is lifted for this module only.
#[allow(unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "convergio:platform/agent-plugin@0.1.0",
        generate_all,
    });

    use super::ChatAgent;

    export!(ChatAgent);
}

use bindings::convergio::platform::inference::{
    self, ChatRequest, ModelSelector, Requirements, Strategy,
};
use bindings::convergio::platform::types::{Message, ModelError, ResponseFormat, Role, Sampling};
use bindings::exports::convergio::platform::agent::{AgentError, AgentInfo, Guest, Outcome, Task};
use serde_json::{Value, json};

struct ChatAgent;

impl Guest for ChatAgent {
    fn describe() -> AgentInfo {
        AgentInfo {
            name: "chat-agent".to_owned(),
            description: "Asks a model and returns its answer.".to_owned(),
            input_schema: None,
        }
    }

    fn run(task: Task) -> Result<Outcome, AgentError> {
        let input: Value = serde_json::from_str(&task.input)
            .map_err(|e| AgentError::InvalidInput(e.to_string()))?;
        let model = match input["model"].as_str() {
            Some(name) => ModelSelector::Named(name.to_owned()),
            None => ModelSelector::Policy((
                Strategy::Cheapest,
                Requirements {
                    tools: false,
                    vision: false,
                    json_mode: false,
                    min_context: None,
                    min_quality: None,
                    local_only: false,
                },
            )),
        };
        let request = ChatRequest {
            model,
            messages: vec![Message {
                role: Role::User,
                content: input["prompt"].as_str().unwrap_or_default().to_owned(),
                tool_calls: Vec::new(),
                tool_call_id: None,
            }],
            tools: Vec::new(),
            sampling: Sampling {
                temperature: None,
                top_p: None,
                top_k: None,
                seed: None,
                max_tokens: Some(64),
                stop: Vec::new(),
            },
            // `"schema": {…}` asks for JSON matching it.
            format: match &input["schema"] {
                Value::Null => ResponseFormat::Text,
                schema => ResponseFormat::JsonSchema(schema.to_string()),
            },
        };
        let failed = |e: ModelError| AgentError::InferenceFailed(format!("{e:?}"));
        let output = if input["stream"].as_bool() == Some(true) {
            let stream = inference::stream(&request).map_err(failed)?;
            let mut text = String::new();
            let mut deltas = 0;
            while let Some(delta) = stream.next() {
                let delta = delta.map_err(failed)?;
                text.push_str(&delta.content);
                deltas += 1;
            }
            json!({ "text": text, "deltas": deltas })
        } else {
            let done = inference::complete(&request).map_err(failed)?;
            json!({
                "text": done.message.content,
                "model": format!("{}/{}", done.provider, done.model),
                "cost_micro_usd": done.usage.cost_micro_usd,
            })
        };
        Ok(Outcome {
            output: output.to_string(),
            state_updates: Vec::new(),
        })
    }
}
