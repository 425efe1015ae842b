//! `greeter-agent`: a Convergio agent component that greets through the
//! `greet` tool of `hello-tool`, which the host links to its `tool` import.

use convergio_sdk::agent::{self, AgentError, AgentInfo, Guest, Outcome, Task};
use convergio_sdk::log;
use convergio_sdk::serde_json::json;
use serde::Deserialize;

#[derive(Deserialize)]
struct Input {
    name: String,
}

struct GreeterAgent;

impl Guest for GreeterAgent {
    fn describe() -> AgentInfo {
        AgentInfo::new(
            "greeter",
            "Greets someone through the hello-tool `greet` tool",
        )
        .with_input_schema(&json!({
            "type": "object",
            "properties": { "name": { "type": "string" } },
            "required": ["name"],
        }))
    }

    fn run(task: Task) -> Result<Outcome, AgentError> {
        let input: Input = task.input()?;
        log::info(&format!("asking the greet tool to greet {}", input.name));
        let arguments = json!({ "name": input.name }).to_string();
        let output = agent::tools::invoke("greet", &arguments)?;
        Ok(Outcome {
            output,
            state_updates: Vec::new(),
        })
    }
}

convergio_sdk::export_agent!(GreeterAgent);
