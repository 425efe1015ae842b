//! Agent components: the `convergio:platform/agent-plugin` world.
//!
//! Implement [`Guest`] and register it with [`export_agent!`](crate::export_agent).
//! An agent calls models through [`inference`] and tools through [`tools`];
//! the host links [`tools`] to the one tool plugin the agent's `plugin.toml`
//! names under `requires.plugins`. To call the tools of several plugins by
//! `plugin/tool` name (what a model's tool calls need), use
//! [`crate::tools`] (`convergio:platform/tools`).

use serde::Serialize;
use serde::de::DeserializeOwned;

#[doc(hidden)]
#[allow(missing_docs, unsafe_code, unused_qualifications, clippy::all)]
pub mod bindings {
    crate::world::world_bindings!(
        world: "convergio:platform/agent-plugin@0.1.0",
        export_macro_name: "export",
        module: "convergio_sdk::agent::bindings",
        with: {
            "convergio:platform/types@0.1.0": convergio_sdk::bindings::convergio::platform::types,
            "convergio:platform/inference@0.1.0": convergio_sdk::bindings::convergio::platform::inference,
            "convergio:platform/tool@0.1.0": convergio_sdk::bindings::convergio::platform::tool,
            "convergio:platform/runs@0.1.0": convergio_sdk::bindings::convergio::platform::runs,
            "convergio:platform/tools@0.1.0": convergio_sdk::bindings::convergio::platform::tools,
        }
    );
}

#[doc(inline)]
pub use crate::bindings::convergio::platform::inference;
/// The tools this agent may call (`convergio:platform/tool`, imported).
pub use crate::bindings::convergio::platform::tool as tools;
pub use bindings::exports::convergio::platform::agent::{
    AgentError, AgentInfo, Guest, Outcome, StateEntry, Task,
};

/// What [`Guest::run`] returns.
pub type Result<T, E = AgentError> = core::result::Result<T, E>;

impl AgentInfo {
    /// Describes an agent that declares no input schema.
    pub fn new(name: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            description: description.into(),
            input_schema: None,
        }
    }

    /// Declares the JSON Schema of the task input.
    #[must_use]
    pub fn with_input_schema(mut self, schema: &serde_json::Value) -> Self {
        self.input_schema = Some(schema.to_string());
        self
    }
}

impl Task {
    /// Parses the task input into `T`; a failure becomes [`AgentError::InvalidInput`].
    pub fn input<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_str(&self.input).map_err(|e| AgentError::InvalidInput(e.to_string()))
    }

    /// The JSON text of shared state entry `key`, if present.
    pub fn state_value(&self, key: &str) -> Option<&str> {
        self.state
            .iter()
            .find(|entry| entry.key == key)
            .map(|entry| entry.value.as_str())
    }
}

impl Outcome {
    /// An outcome whose output is `output` serialized to JSON, with no state updates.
    pub fn json<T: Serialize + ?Sized>(output: &T) -> Result<Self> {
        Ok(Self {
            output: to_json(output)?,
            state_updates: Vec::new(),
        })
    }

    /// Adds a shared-state update of `key` to `value` serialized to JSON.
    pub fn with_state<T: Serialize + ?Sized>(
        mut self,
        key: impl Into<String>,
        value: &T,
    ) -> Result<Self> {
        self.state_updates.push(StateEntry {
            key: key.into(),
            value: to_json(value)?,
        });
        Ok(self)
    }
}

/// Calls tool `name` with `arguments` serialized to JSON and parses its JSON result.
///
/// Every failure becomes [`AgentError::ToolFailed`] naming the tool.
pub fn invoke_tool<A, R>(name: &str, arguments: &A) -> Result<R>
where
    A: Serialize + ?Sized,
    R: DeserializeOwned,
{
    let arguments = serde_json::to_string(arguments).map_err(|e| {
        AgentError::ToolFailed(format!("{name}: cannot serialize the arguments: {e}"))
    })?;
    let output = tools::invoke(name, &arguments)
        .map_err(|e| AgentError::ToolFailed(format!("{name}: {}", describe_tool_error(&e))))?;
    serde_json::from_str(&output).map_err(|e| {
        AgentError::ToolFailed(format!("{name}: the result is not the expected JSON: {e}"))
    })
}

fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| AgentError::Failed(format!("cannot serialize: {e}")))
}

/// A one-line description of an error returned by an imported tool.
pub fn describe_tool_error(e: &tools::ToolError) -> String {
    match e {
        tools::ToolError::InvalidArguments(m) => format!("invalid arguments: {m}"),
        tools::ToolError::UnknownTool(m) => format!("unknown tool: {m}"),
        tools::ToolError::Failed(m) => format!("failed: {m}"),
        tools::ToolError::Denied(m) => format!("denied: {m}"),
    }
}

impl From<tools::ToolError> for AgentError {
    fn from(e: tools::ToolError) -> Self {
        AgentError::ToolFailed(describe_tool_error(&e))
    }
}

impl From<crate::types::ModelError> for AgentError {
    fn from(e: crate::types::ModelError) -> Self {
        AgentError::InferenceFailed(format!("{e:?}"))
    }
}

impl From<crate::config::Error> for AgentError {
    fn from(e: crate::config::Error) -> Self {
        AgentError::Failed(crate::config::describe(&e))
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    fn task(input: &str) -> Task {
        Task {
            run_id: "r".into(),
            node_id: "n".into(),
            input: input.into(),
            state: vec![StateEntry {
                key: "k".into(),
                value: "1".into(),
            }],
        }
    }

    #[derive(Debug, Deserialize)]
    struct Input {
        #[allow(dead_code)]
        name: String,
    }

    #[test]
    fn input_reports_what_is_wrong() {
        match task("{}").input::<Input>() {
            Err(AgentError::InvalidInput(m)) => assert!(m.contains("missing field `name`"), "{m}"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn state_value_finds_the_entry() {
        assert_eq!(task("{}").state_value("k"), Some("1"));
        assert_eq!(task("{}").state_value("x"), None);
    }

    #[test]
    fn outcome_json_serializes_output_and_state() {
        let outcome = Outcome::json(&serde_json::json!({"a": 1}))
            .unwrap()
            .with_state("seen", &true)
            .unwrap();
        assert_eq!(outcome.output, r#"{"a":1}"#);
        assert_eq!(outcome.state_updates[0].value, "true");
    }
}
