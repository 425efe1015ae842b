//! The Gemini API's JSON, as serde types: what this adapter sends
//! (`GenerateContentRequest`, `BatchEmbedContentsRequest`) and what it reads
//! (`GenerateContentResponse`, also each `data:` event of a stream,
//! `BatchEmbedContentsResponse`, and the `{"error": …}` body of a failure).
//!
//! Field names follow the REST reference (camelCase). Fields this adapter
//! does not use are not declared: serde skips them when reading.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Body of `models/{model}:generateContent` and `:streamGenerateContent`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateContentRequest {
    pub contents: Vec<Content>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_instruction: Option<Content>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Tool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation_config: Option<GenerationConfig>,
}

/// One turn: `role` is `user` or `model` (absent in `systemInstruction`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Content {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default)]
    pub parts: Vec<Part>,
}

/// One part of a turn. The API sets exactly one of `text`, `functionCall`,
/// `functionResponse` (or kinds this adapter ignores, such as `inlineData`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Part {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_call: Option<FunctionCall>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_response: Option<FunctionResponse>,
    /// A summary of the model's reasoning, not part of the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thought: Option<bool>,
    /// Opaque (base64) state of the model's reasoning; Gemini 3 and later
    /// require it back on the function calls of the turn being continued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thought_signature: Option<String>,
}

/// A call the model asks for. Gemini gives no id in most responses.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Value>,
}

/// The result of a call, matched to it by `name` (and order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionResponse {
    pub name: String,
    /// A JSON object; by convention `{"output": …}` or `{"error": …}`.
    pub response: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tool {
    pub function_declarations: Vec<FunctionDeclaration>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunctionDeclaration {
    pub name: String,
    pub description: String,
    /// An OpenAPI-subset `Schema`; absent for a function without arguments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerationConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    /// `int32` in the API.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stop_sequences: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_mime_type: Option<String>,
    /// The answer's schema (with `application/json`), an OpenAPI subset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_schema: Option<Value>,
}

/// The answer of `generateContent`, and each event of a stream.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateContentResponse {
    #[serde(default)]
    pub candidates: Vec<Candidate>,
    #[serde(default)]
    pub prompt_feedback: Option<PromptFeedback>,
    #[serde(default)]
    pub usage_metadata: Option<UsageMetadata>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    #[serde(default)]
    pub content: Option<Content>,
    /// `STOP`, `MAX_TOKENS`, `SAFETY`, … ; absent until the last chunk of a stream.
    #[serde(default)]
    pub finish_reason: Option<String>,
    #[serde(default)]
    pub finish_message: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptFeedback {
    /// `SAFETY`, `OTHER`, `BLOCKLIST`, `PROHIBITED_CONTENT`, `IMAGE_SAFETY`, …
    #[serde(default)]
    pub block_reason: Option<String>,
    #[serde(default)]
    pub block_reason_message: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageMetadata {
    #[serde(default)]
    pub prompt_token_count: u32,
    #[serde(default)]
    pub candidates_token_count: u32,
    /// Reasoning tokens, billed as output.
    #[serde(default)]
    pub thoughts_token_count: u32,
    /// Tokens of the results of built-in tools, billed as input.
    #[serde(default)]
    pub tool_use_prompt_token_count: u32,
}

/// Body of `models/{model}:batchEmbedContents`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchEmbedContentsRequest {
    pub requests: Vec<EmbedContentRequest>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EmbedContentRequest {
    /// `models/{model}`, the same model as in the URL.
    pub model: String,
    pub content: Content,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct BatchEmbedContentsResponse {
    #[serde(default)]
    pub embeddings: Vec<ContentEmbedding>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ContentEmbedding {
    #[serde(default)]
    pub values: Vec<f32>,
}

/// A failure: `{"error": {"code": 429, "message": …, "status": "RESOURCE_EXHAUSTED", "details": […]}}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ErrorBody {
    #[serde(default)]
    pub code: Option<u16>,
    #[serde(default)]
    pub message: String,
    /// The `google.rpc.Code` name: `INVALID_ARGUMENT`, `RESOURCE_EXHAUSTED`, …
    #[serde(default)]
    pub status: Option<String>,
    /// `google.rpc` detail messages, each with an `@type` (`…RetryInfo`, `…ErrorInfo`, …).
    #[serde(default)]
    pub details: Vec<Value>,
}
