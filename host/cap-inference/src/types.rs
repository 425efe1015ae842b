//! The model types of `convergio:platform/types`, as plain Rust, so the
//! router does not depend on any one set of generated bindings.

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Instructions.
    System,
    /// The user.
    User,
    /// The model.
    Assistant,
    /// A tool's result.
    Tool,
}

/// A call the model asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    /// Id the tool result must echo.
    pub id: String,
    /// Tool name.
    pub name: String,
    /// Arguments, JSON object text.
    pub arguments: String,
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Author.
    pub role: Role,
    /// Text.
    pub content: String,
    /// Calls made by the assistant.
    pub tool_calls: Vec<ToolCall>,
    /// For a tool result: the call it answers.
    pub tool_call_id: Option<String>,
}

impl Message {
    /// A message of plain text (no tool calls, not a tool result).
    pub fn text(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolDefinition {
    /// Name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// JSON Schema of its arguments.
    pub parameters: String,
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// Natural end or a stop sequence.
    Stop,
    /// The token limit.
    Length,
    /// The model called tools.
    ToolCalls,
    /// The upstream filtered the content.
    ContentFilter,
}

/// Tokens and cost of a call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens.
    pub input_tokens: u32,
    /// Completion tokens.
    pub output_tokens: u32,
    /// Cost in millionths of a US dollar.
    pub cost_micro_usd: u64,
}

/// What a model can do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Features {
    /// Tool calling.
    pub tools: bool,
    /// Image input.
    pub vision: bool,
    /// A JSON-object answer mode.
    pub json_mode: bool,
    /// Streaming.
    pub streaming: bool,
    /// Embeddings.
    pub embeddings: bool,
}

/// A coarse quality ranking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QualityTier {
    /// Small, fast models.
    Basic,
    /// General-purpose models.
    Standard,
    /// The strongest models.
    Premium,
}

/// A model as its provider declares it (prices may be overridden by the operator).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    /// Model id as the provider names it.
    pub id: String,
    /// Prompt plus completion tokens.
    pub context_window: u32,
    /// Completion cap, if separate.
    pub max_output_tokens: Option<u32>,
    /// USD per million input tokens.
    pub input_price_per_mtok: f64,
    /// USD per million output tokens.
    pub output_price_per_mtok: f64,
    /// Features.
    pub features: Features,
    /// Quality tier.
    pub quality: QualityTier,
    /// Runs on this machine.
    pub local: bool,
}

impl ModelInfo {
    /// The cost of `input` and `output` tokens in millionths of a dollar,
    /// rounded up to the next micro-dollar (a budget never undercounts).
    /// Prices count to a millionth of a dollar per million tokens, and the
    /// sum is exact: 30 tokens at $0.1 per million cost 3, not 4. A sum that
    /// is not positive, or a price that is not a number, costs 0. The SDK's
    /// `provider::cost_micro_usd` rounds the same way.
    pub fn cost_micro_usd(&self, input: u64, output: u64) -> u64 {
        let (in_price, out_price) = (self.input_price_per_mtok, self.output_price_per_mtok);
        if !(in_price.is_finite() && out_price.is_finite()) {
            return 0;
        }
        // Dollars per million tokens are micro-dollars per token; × 10⁶:
        // pico-dollars per token, a whole number (`as` saturates).
        let pico = |tokens: u64, usd_per_mtok: f64| {
            i128::from(tokens).saturating_mul((usd_per_mtok * 1e6).round() as i128)
        };
        let total = pico(input, in_price).saturating_add(pico(output, out_price));
        if total <= 0 {
            return 0;
        }
        u64::try_from(total.saturating_add(999_999) / 1_000_000).unwrap_or(u64::MAX)
    }
}

/// Sampling settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sampling {
    /// Temperature.
    pub temperature: Option<f32>,
    /// Nucleus sampling.
    pub top_p: Option<f32>,
    /// Top-k sampling.
    pub top_k: Option<u32>,
    /// Seed.
    pub seed: Option<u64>,
    /// Completion cap.
    pub max_tokens: Option<u32>,
    /// Stop sequences.
    pub stop: Vec<String>,
}

/// The form an answer must take.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ResponseFormat {
    /// Free text.
    #[default]
    Text,
    /// A JSON object of any shape.
    JsonObject,
    /// JSON matching this JSON Schema (its text).
    JsonSchema(String),
}

impl ResponseFormat {
    /// Whether the answer must be JSON (the model needs the `json-mode`
    /// feature).
    pub fn is_json(&self) -> bool {
        !matches!(self, Self::Text)
    }

    /// The schema's text, for [`Self::JsonSchema`].
    pub fn schema(&self) -> Option<&str> {
        match self {
            Self::JsonSchema(schema) => Some(schema),
            _ => None,
        }
    }
}

/// What the router sends a provider.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderRequest {
    /// Model id as the provider names it.
    pub model: String,
    /// The chat.
    pub messages: Vec<Message>,
    /// Tools the model may call.
    pub tools: Vec<ToolDefinition>,
    /// Sampling.
    pub sampling: Sampling,
    /// The form of the answer.
    pub format: ResponseFormat,
}

/// A finished completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// Provider that answered.
    pub provider: String,
    /// Model that answered.
    pub model: String,
    /// The answer.
    pub message: Message,
    /// Why it ended.
    pub finish_reason: FinishReason,
    /// Usage.
    pub usage: Usage,
}

/// A piece of a streamed completion.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delta {
    /// Text appended.
    pub content: String,
    /// Completed tool calls.
    pub tool_calls: Vec<ToolCall>,
    /// Set on the last delta.
    pub finish_reason: Option<FinishReason>,
    /// Set on the last delta.
    pub usage: Option<Usage>,
}

/// Embedding vectors, one per input.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// Model used.
    pub model: String,
    /// Vectors in input order.
    pub vectors: Vec<Vec<f32>>,
    /// Usage.
    pub usage: Usage,
}

/// Every failure of a model call: the WIT `model-error`. Each message
/// starts with the case's [`ModelError::kind`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// Slow down; retry after this many milliseconds if known.
    #[error("rate-limited{}", retry_after(.0))]
    RateLimited(Option<u64>),
    /// Temporarily overloaded.
    #[error("overloaded: {0}")]
    Overloaded(String),
    /// The prompt does not fit.
    #[error("context-length-exceeded: {0}")]
    ContextLengthExceeded(String),
    /// The content was refused.
    #[error("content-filtered: {0}")]
    ContentFiltered(String),
    /// The key was refused or not granted.
    #[error("auth: {0}")]
    Auth(String),
    /// The request is wrong.
    #[error("bad-request: {0}")]
    BadRequest(String),
    /// The upstream failed.
    #[error("upstream: {0}")]
    Upstream(String),
    /// No answer in time.
    #[error("timeout: {0}")]
    Timeout(String),
    /// Not the documented format.
    #[error("malformed-response: {0}")]
    MalformedResponse(String),
    /// No model fits, or the model is unknown.
    #[error("no-model: {0}")]
    NoModel(String),
    /// A budget would be exceeded.
    #[error("budget-exceeded: {0}")]
    BudgetExceeded(String),
    /// Not granted.
    #[error("access-denied: {0}")]
    AccessDenied(String),
    /// The answer did not match the requested JSON Schema.
    #[error("invalid-output: {0}")]
    InvalidOutput(String),
}

/// `: retry after MS ms` when the wait is known.
fn retry_after(ms: &Option<u64>) -> String {
    ms.map_or_else(String::new, |ms| format!(": retry after {ms} ms"))
}

impl ModelError {
    /// Whether another try (same or another model) may succeed: rate limits,
    /// overload, upstream failures, timeouts, garbled answers and refused
    /// keys (another provider has its own key). A bad request, a prompt that
    /// does not fit, filtered content, budgets and grants fail the same way
    /// everywhere.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ModelError::RateLimited(_)
                | ModelError::Overloaded(_)
                | ModelError::Upstream(_)
                | ModelError::Timeout(_)
                | ModelError::MalformedResponse(_)
        )
    }

    /// Whether trying another provider may succeed where this one failed.
    pub fn allows_failover(&self) -> bool {
        self.is_retryable() || matches!(self, ModelError::Auth(_) | ModelError::AccessDenied(_))
    }

    /// The kind, for logs and metrics: `rate-limited`, `overloaded`, ….
    pub fn kind(&self) -> &'static str {
        match self {
            ModelError::RateLimited(_) => "rate-limited",
            ModelError::Overloaded(_) => "overloaded",
            ModelError::ContextLengthExceeded(_) => "context-length-exceeded",
            ModelError::ContentFiltered(_) => "content-filtered",
            ModelError::Auth(_) => "auth",
            ModelError::BadRequest(_) => "bad-request",
            ModelError::Upstream(_) => "upstream",
            ModelError::Timeout(_) => "timeout",
            ModelError::MalformedResponse(_) => "malformed-response",
            ModelError::NoModel(_) => "no-model",
            ModelError::BudgetExceeded(_) => "budget-exceeded",
            ModelError::AccessDenied(_) => "access-denied",
            ModelError::InvalidOutput(_) => "invalid-output",
        }
    }
}

/// What a request needs from a model, for policy selection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requirements {
    /// Tool calling.
    pub tools: bool,
    /// Image input.
    pub vision: bool,
    /// JSON mode.
    pub json_mode: bool,
    /// Smallest context window.
    pub min_context: Option<u32>,
    /// Lowest quality tier.
    pub min_quality: Option<QualityTier>,
    /// Only local models.
    pub local_only: bool,
}

/// How to choose among the models that qualify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Lowest price.
    Cheapest,
    /// Highest tier, then lowest price.
    BestQuality,
}

/// Which model answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSelector {
    /// `provider/model`.
    Named(String),
    /// Let the router choose.
    Policy(Strategy, Requirements),
}

/// A chat request from a plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    /// Which model.
    pub model: ModelSelector,
    /// The chat.
    pub messages: Vec<Message>,
    /// Tools.
    pub tools: Vec<ToolDefinition>,
    /// Sampling.
    pub sampling: Sampling,
    /// The form of the answer.
    pub format: ResponseFormat,
}

impl ChatRequest {
    /// A chat with `model`: no tools, default sampling, no JSON mode.
    pub fn new(model: ModelSelector, messages: Vec<Message>) -> Self {
        Self {
            model,
            messages,
            tools: Vec::new(),
            sampling: Sampling::default(),
            format: ResponseFormat::Text,
        }
    }

    /// The most prompt tokens this request can count as: a token of a
    /// byte-level tokenizer covers at least one byte, plus a few tokens of
    /// chat formatting per message. Budgets hold this much, so that no
    /// request can cost more than it held.
    pub fn max_input_tokens(&self) -> u64 {
        let bytes: usize = self
            .messages
            .iter()
            .map(|m| {
                m.content.len()
                    + m.tool_calls
                        .iter()
                        .map(|c| c.id.len() + c.name.len() + c.arguments.len())
                        .sum::<usize>()
            })
            .sum::<usize>()
            + self
                .tools
                .iter()
                .map(|t| t.name.len() + t.description.len() + t.parameters.len())
                .sum::<usize>();
        bytes as u64 + 8 * self.messages.len() as u64 + 16
    }

    /// A rough count of prompt tokens (4 characters per token), for
    /// admission checks before the provider reports the real count.
    pub fn estimated_input_tokens(&self) -> u64 {
        let chars: usize = self
            .messages
            .iter()
            .map(|m| {
                m.content.len()
                    + m.tool_calls
                        .iter()
                        .map(|c| c.name.len() + c.arguments.len())
                        .sum::<usize>()
            })
            .sum::<usize>()
            + self
                .tools
                .iter()
                .map(|t| t.name.len() + t.description.len() + t.parameters.len())
                .sum::<usize>();
        // Per-message overhead of chat formats, roughly.
        (chars as u64).div_ceil(4) + 4 * self.messages.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model error reads `KIND: MESSAGE` (the texts users and tests see).
    #[test]
    fn model_errors_read_kind_then_message() {
        assert_eq!(
            ModelError::RateLimited(Some(1500)).to_string(),
            "rate-limited: retry after 1500 ms"
        );
        assert_eq!(ModelError::RateLimited(None).to_string(), "rate-limited");
        let cases = [
            ModelError::Overloaded("m".into()),
            ModelError::ContextLengthExceeded("m".into()),
            ModelError::ContentFiltered("m".into()),
            ModelError::Auth("m".into()),
            ModelError::BadRequest("m".into()),
            ModelError::Upstream("m".into()),
            ModelError::Timeout("m".into()),
            ModelError::MalformedResponse("m".into()),
            ModelError::NoModel("m".into()),
            ModelError::BudgetExceeded("m".into()),
            ModelError::AccessDenied("m".into()),
        ];
        for e in cases {
            assert_eq!(e.to_string(), format!("{}: m", e.kind()));
        }
    }
}
