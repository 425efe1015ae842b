//! `caller_agent`: an agent whose `run` calls the imported
//! `convergio:platform/tool` interface (`invoke("echo", task.input)`) and
//! returns the tool's output. Tests runtime linking (component → host →
//! component) and a call to a tool the agent was not granted. A state entry
//! `tool` names another tool to call instead of `echo` (e.g. `panic`, so
//! the callee traps in the middle of the call).

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

    use super::CallerAgent;

    export!(CallerAgent);
}

use bindings::convergio::platform::tool::{ToolError, invoke};
use bindings::exports::convergio::platform::agent::{AgentError, AgentInfo, Guest, Outcome, Task};

struct CallerAgent;

impl Guest for CallerAgent {
    fn describe() -> AgentInfo {
        AgentInfo {
            name: "caller-agent".to_owned(),
            description:
                "Calls the linked tool's `echo` with the task input and returns its output."
                    .to_owned(),
            input_schema: None,
        }
    }

    fn run(task: Task) -> Result<Outcome, AgentError> {
        let tool = task
            .state
            .iter()
            .find(|entry| entry.key == "tool")
            .map_or("echo", |entry| entry.value.as_str());
        let output = invoke(tool, &task.input).map_err(|e| AgentError::ToolFailed(describe(&e)))?;
        Ok(Outcome {
            output,
            state_updates: Vec::new(),
        })
    }
}

/// The tool error as text, prefixed with its WIT case name.
fn describe(error: &ToolError) -> String {
    match error {
        ToolError::InvalidArguments(m) => format!("invalid-arguments: {m}"),
        ToolError::UnknownTool(m) => format!("unknown-tool: {m}"),
        ToolError::Failed(m) => format!("failed: {m}"),
        ToolError::Denied(m) => format!("denied: {m}"),
    }
}
