//! The Anthropic Messages API on the wire (`POST /v1/messages`, API version
//! `2023-06-01`): the request body, the response body, the server-sent events
//! of a streamed response and the error body.
//!
//! Only the fields this adapter sends or reads are modelled. Response types
//! ignore unknown fields, and unknown content block, delta and event types
//! decode to an `Other` variant: Anthropic's versioning policy allows new
//! ones to appear at any time.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The body of `POST /v1/messages`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessagesRequest {
    pub model: String,
    /// Required by the API.
    pub max_tokens: u32,
    /// The system prompt; the API has no `system` role inside `messages`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// Alternating `user` and `assistant` turns.
    pub messages: Vec<RequestMessage>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Tool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stop_sequences: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    /// `true` asks for server-sent events; left out otherwise.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
    /// Structured output: `{"format": {"type": "json_schema", "schema": …}}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_config: Option<Value>,
}

/// A turn of the conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WireRole {
    User,
    Assistant,
}

/// One message of `messages`, its content always in block form.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestMessage {
    pub role: WireRole,
    pub content: Vec<RequestBlock>,
}

/// A content block the adapter sends.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RequestBlock {
    Text {
        text: String,
    },
    /// A tool call the assistant made earlier in the conversation.
    ToolUse {
        id: String,
        name: String,
        /// Always a JSON object.
        input: Value,
    },
    /// The result of a tool call, in a `user` message.
    ToolResult {
        tool_use_id: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        content: Option<String>,
    },
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tool {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the input object.
    pub input_schema: Value,
}

/// The body of a successful non-streamed response (`"type": "message"`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MessagesResponse {
    #[serde(default)]
    pub model: Option<String>,
    pub content: Vec<ResponseBlock>,
    #[serde(default)]
    pub stop_reason: Option<String>,
    #[serde(default)]
    pub usage: WireUsage,
}

/// A content block the API returns.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseBlock {
    Text {
        #[serde(default)]
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    /// `thinking`, `redacted_thinking`, server tool blocks and anything newer.
    #[serde(other)]
    Other,
}

/// Token counts. Every field is optional: `message_delta` events carry only
/// the counts that changed, and cache counts appear only with prompt caching.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct WireUsage {
    #[serde(default)]
    pub input_tokens: Option<u64>,
    #[serde(default)]
    pub output_tokens: Option<u64>,
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
}

/// The error body: `{"type": "error", "error": {"type": ..., "message": ...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ErrorBody {
    pub error: ApiError,
}

/// The `error` object of an error body or an `error` stream event.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ApiError {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub message: String,
}

/// One server-sent event of a streamed response; the SSE `event:` name
/// repeats the `type` of its data.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    MessageStart {
        message: StartMessage,
    },
    ContentBlockStart {
        index: u32,
        content_block: ResponseBlock,
    },
    ContentBlockDelta {
        index: u32,
        delta: BlockDelta,
    },
    ContentBlockStop {
        index: u32,
    },
    MessageDelta {
        delta: MessageDeltaBody,
        #[serde(default)]
        usage: Option<WireUsage>,
    },
    MessageStop,
    Ping,
    Error {
        error: ApiError,
    },
    #[serde(other)]
    Other,
}

/// The message skeleton of `message_start`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StartMessage {
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub usage: WireUsage,
}

/// The `delta` of a `content_block_delta` event.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BlockDelta {
    TextDelta {
        text: String,
    },
    /// A piece of a tool call's input JSON; the pieces concatenate to the object.
    InputJsonDelta {
        partial_json: String,
    },
    /// `thinking_delta`, `signature_delta`, `citations_delta` and anything newer.
    #[serde(other)]
    Other,
}

/// The `delta` of a `message_delta` event.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MessageDeltaBody {
    #[serde(default)]
    pub stop_reason: Option<String>,
}
