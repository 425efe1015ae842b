//! Conversions between the WIT model types (`convergio:platform/types`)
//! and the router's plain Rust types.

use crate as ci;

use super::types as wit;

/// From the router's types to WIT.
pub trait ToWit<T> {
    /// The WIT value.
    fn to_wit(&self) -> T;
}

/// From WIT to the router's types.
pub trait FromWit<T> {
    /// The router's value.
    fn from_wit(value: T) -> Self;
}

impl ToWit<wit::Role> for ci::Role {
    fn to_wit(&self) -> wit::Role {
        match self {
            ci::Role::System => wit::Role::System,
            ci::Role::User => wit::Role::User,
            ci::Role::Assistant => wit::Role::Assistant,
            ci::Role::Tool => wit::Role::Tool,
        }
    }
}

impl FromWit<wit::Role> for ci::Role {
    fn from_wit(value: wit::Role) -> Self {
        match value {
            wit::Role::System => ci::Role::System,
            wit::Role::User => ci::Role::User,
            wit::Role::Assistant => ci::Role::Assistant,
            wit::Role::Tool => ci::Role::Tool,
        }
    }
}

impl ToWit<wit::ToolCall> for ci::ToolCall {
    fn to_wit(&self) -> wit::ToolCall {
        wit::ToolCall {
            id: self.id.clone(),
            name: self.name.clone(),
            arguments: self.arguments.clone(),
        }
    }
}

impl FromWit<wit::ToolCall> for ci::ToolCall {
    fn from_wit(value: wit::ToolCall) -> Self {
        Self {
            id: value.id,
            name: value.name,
            arguments: value.arguments,
        }
    }
}

impl ToWit<wit::Message> for ci::Message {
    fn to_wit(&self) -> wit::Message {
        wit::Message {
            role: self.role.to_wit(),
            content: self.content.clone(),
            tool_calls: self.tool_calls.iter().map(ToWit::to_wit).collect(),
            tool_call_id: self.tool_call_id.clone(),
        }
    }
}

impl FromWit<wit::Message> for ci::Message {
    fn from_wit(value: wit::Message) -> Self {
        Self {
            role: ci::Role::from_wit(value.role),
            content: value.content,
            tool_calls: value
                .tool_calls
                .into_iter()
                .map(ci::ToolCall::from_wit)
                .collect(),
            tool_call_id: value.tool_call_id,
        }
    }
}

impl ToWit<wit::ToolDefinition> for ci::ToolDefinition {
    fn to_wit(&self) -> wit::ToolDefinition {
        wit::ToolDefinition {
            name: self.name.clone(),
            description: self.description.clone(),
            parameters: self.parameters.clone(),
        }
    }
}

impl FromWit<wit::ToolDefinition> for ci::ToolDefinition {
    fn from_wit(value: wit::ToolDefinition) -> Self {
        Self {
            name: value.name,
            description: value.description,
            parameters: value.parameters,
        }
    }
}

impl ToWit<wit::Sampling> for ci::Sampling {
    fn to_wit(&self) -> wit::Sampling {
        wit::Sampling {
            temperature: self.temperature,
            top_p: self.top_p,
            top_k: self.top_k,
            seed: self.seed,
            max_tokens: self.max_tokens,
            stop: self.stop.clone(),
        }
    }
}

impl FromWit<wit::Sampling> for ci::Sampling {
    fn from_wit(value: wit::Sampling) -> Self {
        Self {
            temperature: value.temperature,
            top_p: value.top_p,
            top_k: value.top_k,
            seed: value.seed,
            max_tokens: value.max_tokens,
            stop: value.stop,
        }
    }
}

impl ToWit<wit::ResponseFormat> for ci::ResponseFormat {
    fn to_wit(&self) -> wit::ResponseFormat {
        match self {
            Self::Text => wit::ResponseFormat::Text,
            Self::JsonObject => wit::ResponseFormat::JsonObject,
            Self::JsonSchema(schema) => wit::ResponseFormat::JsonSchema(schema.clone()),
        }
    }
}

impl FromWit<wit::ResponseFormat> for ci::ResponseFormat {
    fn from_wit(value: wit::ResponseFormat) -> Self {
        match value {
            wit::ResponseFormat::Text => Self::Text,
            wit::ResponseFormat::JsonObject => Self::JsonObject,
            wit::ResponseFormat::JsonSchema(schema) => Self::JsonSchema(schema),
        }
    }
}

impl ToWit<wit::FinishReason> for ci::FinishReason {
    fn to_wit(&self) -> wit::FinishReason {
        match self {
            ci::FinishReason::Stop => wit::FinishReason::Stop,
            ci::FinishReason::Length => wit::FinishReason::Length,
            ci::FinishReason::ToolCalls => wit::FinishReason::ToolCalls,
            ci::FinishReason::ContentFilter => wit::FinishReason::ContentFilter,
        }
    }
}

impl FromWit<wit::FinishReason> for ci::FinishReason {
    fn from_wit(value: wit::FinishReason) -> Self {
        match value {
            wit::FinishReason::Stop => ci::FinishReason::Stop,
            wit::FinishReason::Length => ci::FinishReason::Length,
            wit::FinishReason::ToolCalls => ci::FinishReason::ToolCalls,
            wit::FinishReason::ContentFilter => ci::FinishReason::ContentFilter,
        }
    }
}

impl ToWit<wit::Usage> for ci::Usage {
    fn to_wit(&self) -> wit::Usage {
        wit::Usage {
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cost_micro_usd: self.cost_micro_usd,
        }
    }
}

impl FromWit<wit::Usage> for ci::Usage {
    fn from_wit(value: wit::Usage) -> Self {
        Self {
            input_tokens: value.input_tokens,
            output_tokens: value.output_tokens,
            cost_micro_usd: value.cost_micro_usd,
        }
    }
}

impl ToWit<wit::QualityTier> for ci::QualityTier {
    fn to_wit(&self) -> wit::QualityTier {
        match self {
            ci::QualityTier::Basic => wit::QualityTier::Basic,
            ci::QualityTier::Standard => wit::QualityTier::Standard,
            ci::QualityTier::Premium => wit::QualityTier::Premium,
        }
    }
}

impl FromWit<wit::QualityTier> for ci::QualityTier {
    fn from_wit(value: wit::QualityTier) -> Self {
        match value {
            wit::QualityTier::Basic => ci::QualityTier::Basic,
            wit::QualityTier::Standard => ci::QualityTier::Standard,
            wit::QualityTier::Premium => ci::QualityTier::Premium,
        }
    }
}

impl ToWit<wit::ModelInfo> for ci::ModelInfo {
    fn to_wit(&self) -> wit::ModelInfo {
        let mut features = wit::ModelFeatures::empty();
        let f = self.features;
        for (on, flag) in [
            (f.tools, wit::ModelFeatures::TOOLS),
            (f.vision, wit::ModelFeatures::VISION),
            (f.json_mode, wit::ModelFeatures::JSON_MODE),
            (f.streaming, wit::ModelFeatures::STREAMING),
            (f.embeddings, wit::ModelFeatures::EMBEDDINGS),
        ] {
            if on {
                features |= flag;
            }
        }
        wit::ModelInfo {
            id: self.id.clone(),
            context_window: self.context_window,
            max_output_tokens: self.max_output_tokens,
            input_price_per_mtok: self.input_price_per_mtok,
            output_price_per_mtok: self.output_price_per_mtok,
            features,
            quality: self.quality.to_wit(),
            local: self.local,
        }
    }
}

impl FromWit<wit::ModelInfo> for ci::ModelInfo {
    fn from_wit(value: wit::ModelInfo) -> Self {
        let f = value.features;
        Self {
            id: value.id,
            context_window: value.context_window,
            max_output_tokens: value.max_output_tokens,
            input_price_per_mtok: value.input_price_per_mtok,
            output_price_per_mtok: value.output_price_per_mtok,
            features: ci::Features {
                tools: f.contains(wit::ModelFeatures::TOOLS),
                vision: f.contains(wit::ModelFeatures::VISION),
                json_mode: f.contains(wit::ModelFeatures::JSON_MODE),
                streaming: f.contains(wit::ModelFeatures::STREAMING),
                embeddings: f.contains(wit::ModelFeatures::EMBEDDINGS),
            },
            quality: ci::QualityTier::from_wit(value.quality),
            local: value.local,
        }
    }
}

impl ToWit<wit::Completion> for ci::Completion {
    fn to_wit(&self) -> wit::Completion {
        wit::Completion {
            provider: self.provider.clone(),
            model: self.model.clone(),
            message: self.message.to_wit(),
            finish_reason: self.finish_reason.to_wit(),
            usage: self.usage.to_wit(),
        }
    }
}

impl FromWit<wit::Completion> for ci::Completion {
    fn from_wit(value: wit::Completion) -> Self {
        Self {
            provider: value.provider,
            model: value.model,
            message: ci::Message::from_wit(value.message),
            finish_reason: ci::FinishReason::from_wit(value.finish_reason),
            usage: ci::Usage::from_wit(value.usage),
        }
    }
}

impl ToWit<wit::Delta> for ci::Delta {
    fn to_wit(&self) -> wit::Delta {
        wit::Delta {
            content: self.content.clone(),
            tool_calls: self.tool_calls.iter().map(ToWit::to_wit).collect(),
            finish_reason: self.finish_reason.map(|r| r.to_wit()),
            usage: self.usage.map(|u| u.to_wit()),
        }
    }
}

impl FromWit<wit::Delta> for ci::Delta {
    fn from_wit(value: wit::Delta) -> Self {
        Self {
            content: value.content,
            tool_calls: value
                .tool_calls
                .into_iter()
                .map(ci::ToolCall::from_wit)
                .collect(),
            finish_reason: value.finish_reason.map(ci::FinishReason::from_wit),
            usage: value.usage.map(ci::Usage::from_wit),
        }
    }
}

impl ToWit<wit::Embeddings> for ci::Embeddings {
    fn to_wit(&self) -> wit::Embeddings {
        wit::Embeddings {
            model: self.model.clone(),
            vectors: self.vectors.clone(),
            usage: self.usage.to_wit(),
        }
    }
}

impl FromWit<wit::Embeddings> for ci::Embeddings {
    fn from_wit(value: wit::Embeddings) -> Self {
        Self {
            model: value.model,
            vectors: value.vectors,
            usage: ci::Usage::from_wit(value.usage),
        }
    }
}

impl ToWit<wit::ModelError> for ci::ModelError {
    fn to_wit(&self) -> wit::ModelError {
        use ci::ModelError as E;
        use wit::ModelError as W;
        match self.clone() {
            E::RateLimited(ms) => W::RateLimited(ms),
            E::Overloaded(m) => W::Overloaded(m),
            E::ContextLengthExceeded(m) => W::ContextLengthExceeded(m),
            E::ContentFiltered(m) => W::ContentFiltered(m),
            E::Auth(m) => W::Auth(m),
            E::BadRequest(m) => W::BadRequest(m),
            E::Upstream(m) => W::Upstream(m),
            E::Timeout(m) => W::Timeout(m),
            E::MalformedResponse(m) => W::MalformedResponse(m),
            E::NoModel(m) => W::NoModel(m),
            E::BudgetExceeded(m) => W::BudgetExceeded(m),
            E::AccessDenied(m) => W::AccessDenied(m),
            E::InvalidOutput(m) => W::InvalidOutput(m),
        }
    }
}

impl FromWit<wit::ModelError> for ci::ModelError {
    fn from_wit(value: wit::ModelError) -> Self {
        use ci::ModelError as E;
        use wit::ModelError as W;
        match value {
            W::RateLimited(ms) => E::RateLimited(ms),
            W::Overloaded(m) => E::Overloaded(m),
            W::ContextLengthExceeded(m) => E::ContextLengthExceeded(m),
            W::ContentFiltered(m) => E::ContentFiltered(m),
            W::Auth(m) => E::Auth(m),
            W::BadRequest(m) => E::BadRequest(m),
            W::Upstream(m) => E::Upstream(m),
            W::Timeout(m) => E::Timeout(m),
            W::MalformedResponse(m) => E::MalformedResponse(m),
            W::NoModel(m) => E::NoModel(m),
            W::BudgetExceeded(m) => E::BudgetExceeded(m),
            W::AccessDenied(m) => E::AccessDenied(m),
            W::InvalidOutput(m) => E::InvalidOutput(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let info = ci::ModelInfo {
            id: "m".into(),
            context_window: 8192,
            max_output_tokens: Some(1024),
            input_price_per_mtok: 0.5,
            output_price_per_mtok: 1.5,
            features: ci::Features {
                tools: true,
                streaming: true,
                ..ci::Features::default()
            },
            quality: ci::QualityTier::Standard,
            local: false,
        };
        assert_eq!(ci::ModelInfo::from_wit(info.to_wit()), info);
        let delta = ci::Delta {
            content: "hi".into(),
            tool_calls: vec![ci::ToolCall {
                id: "1".into(),
                name: "f".into(),
                arguments: "{}".into(),
            }],
            finish_reason: Some(ci::FinishReason::ToolCalls),
            usage: Some(ci::Usage {
                input_tokens: 1,
                output_tokens: 2,
                cost_micro_usd: 3,
            }),
        };
        assert_eq!(ci::Delta::from_wit(delta.to_wit()), delta);
        let e = ci::ModelError::RateLimited(Some(5));
        assert_eq!(ci::ModelError::from_wit(e.to_wit()), e);
    }
}
