//! Constructors for the model types of `convergio:platform/types` and
//! `convergio:platform/inference`, so that a request fits in a few lines.

use crate::inference::{ChatRequest, ModelSelector, Requirements, Strategy};
use crate::types::{Completion, Message, ResponseFormat, Role, Sampling, Usage};

impl Message {
    /// A message of `role` with text `content`, no tool calls.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }

    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new(Role::System, content)
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new(Role::User, content)
    }

    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new(Role::Assistant, content)
    }

    /// The result of tool call `tool_call_id`, as JSON text.
    pub fn tool_result(tool_call_id: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            tool_call_id: Some(tool_call_id.into()),
            ..Self::new(Role::Tool, content)
        }
    }
}

/// The provider's defaults: nothing set, no stop sequences.
impl Default for Sampling {
    fn default() -> Self {
        Self {
            temperature: None,
            top_p: None,
            top_k: None,
            seed: None,
            max_tokens: None,
            stop: Vec::new(),
        }
    }
}

/// No requirement at all: any model the caller may use.
impl Default for Requirements {
    fn default() -> Self {
        Self {
            tools: false,
            vision: false,
            json_mode: false,
            min_context: None,
            min_quality: None,
            local_only: false,
        }
    }
}

impl ModelSelector {
    /// A model by `provider/model` name, e.g. `openai/gpt-4o-mini`.
    pub fn named(name: impl Into<String>) -> Self {
        Self::Named(name.into())
    }

    /// The cheapest model that meets `requirements`.
    pub fn cheapest(requirements: Requirements) -> Self {
        Self::Policy((Strategy::Cheapest, requirements))
    }

    /// The best model that meets `requirements`.
    pub fn best_quality(requirements: Requirements) -> Self {
        Self::Policy((Strategy::BestQuality, requirements))
    }
}

impl ChatRequest {
    /// A chat of `messages` for `model`, with no tools, default sampling and free text.
    pub fn new(model: ModelSelector, messages: Vec<Message>) -> Self {
        Self {
            model,
            messages,
            tools: Vec::new(),
            sampling: Sampling::default(),
            format: ResponseFormat::Text,
        }
    }

    /// Ask for JSON matching `schema` (a JSON Schema's text): local models
    /// sample under its grammar, cloud models get their API's structured
    /// output, and the host asks again with the validation errors when an
    /// answer does not match (`model-error::invalid-output` after the last try).
    pub fn with_schema(mut self, schema: impl Into<String>) -> Self {
        self.format = ResponseFormat::JsonSchema(schema.into());
        self
    }
}

impl Usage {
    /// Token counts as an API reports them (saturated to `u32`) and their
    /// cost, e.g. from [`crate::provider::cost_micro_usd`].
    pub fn new(input_tokens: u64, output_tokens: u64, cost_micro_usd: u64) -> Self {
        let clamp = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        Self {
            input_tokens: clamp(input_tokens),
            output_tokens: clamp(output_tokens),
            cost_micro_usd,
        }
    }
}

/// No tokens, no cost (e.g. an API that reports no usage).
impl Default for Usage {
    fn default() -> Self {
        Self::new(0, 0, 0)
    }
}

impl Completion {
    /// The text of the answer.
    pub fn text(&self) -> &str {
        &self.message.content
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_result_answers_its_call() {
        let m = Message::tool_result("call-1", "{}");
        assert!(matches!(m.role, Role::Tool));
        assert_eq!(m.tool_call_id.as_deref(), Some("call-1"));
    }

    #[test]
    fn chat_request_defaults_to_free_text() {
        let r = ChatRequest::new(
            ModelSelector::cheapest(Requirements::default()),
            vec![Message::user("hi")],
        );
        assert!(
            matches!(r.format, ResponseFormat::Text)
                && r.tools.is_empty()
                && r.sampling.stop.is_empty()
        );
    }
}
