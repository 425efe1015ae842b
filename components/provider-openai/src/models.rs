//! The models this adapter declares, with their limits, list prices and what
//! the Chat Completions API accepts for each, and the cost of a call computed
//! from them.
//!
//! Source: OpenAI's model pages (`https://developers.openai.com/api/docs/models/…`),
//! its pricing page (`https://developers.openai.com/api/docs/pricing`), the
//! API changelog and the deployment checklist
//! (`https://developers.openai.com/api/docs/guides/deployment-checklist`),
//! read on 2026-11-25. Prices are Standard-tier USD per million tokens.
//! Operators override prices in `platform.toml`; the router reads the
//! overrides.

use convergio_sdk::provider::{self, ModelFeatures, ModelInfo, QualityTier};

/// A declared model.
pub type ModelSpec = provider::ModelSpec<Api>;

/// What Chat Completions and Embeddings need to know of a model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Api {
    pub kind: Kind,
    /// US dollars per million input tokens read from the prompt cache.
    pub cached_input_per_mtok: f64,
    /// Higher prices for the whole request above a prompt length.
    pub long_context: Option<LongContext>,
}

/// What kind of model, and for a chat model what Chat Completions accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A reasoning chat model.
    Chat {
        /// Whether `tools` are accepted in `/chat/completions`.
        tools: ChatTools,
    },
    /// An embeddings model.
    Embedding,
}

/// Function calling through `/chat/completions`. OpenAI's reasoning models
/// from GPT-5.4 on refuse function tools there unless `reasoning_effort` is
/// `"none"` ("Function tools with reasoning_effort are not supported … use
/// /v1/responses or set reasoning_effort to 'none'"), and models that have no
/// `none` effort call tools only through the Responses API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatTools {
    /// Accepted with `reasoning_effort: "none"`, which the adapter then sends.
    WithoutReasoning,
    /// Not accepted: tool calling needs the Responses API.
    ResponsesOnly,
}

/// The price multipliers of long prompts (GPT-6 family: above 272K input
/// tokens, input and cache rates double and output costs 1.5 times as much,
/// for the whole request).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LongContext {
    pub above_input_tokens: u64,
    pub input_factor: f64,
    pub output_factor: f64,
}

const GPT6_LONG: LongContext = LongContext {
    above_input_tokens: 272_000,
    input_factor: 2.0,
    output_factor: 1.5,
};

const CONTEXT: u32 = 1_050_000;
const OUTPUT: u32 = 128_000;

/// `message` carries text only, so `vision` is never declared.
const fn chat(
    id: &'static str,
    tools: ChatTools,
    (input, cached, output): (f64, f64, f64),
    quality: QualityTier,
) -> ModelSpec {
    let base = ModelFeatures::JSON_MODE.union(ModelFeatures::STREAMING);
    let features = match tools {
        WithoutReasoning => base.union(ModelFeatures::TOOLS),
        ResponsesOnly => base,
    };
    provider::ModelSpec::new(
        id,
        CONTEXT,
        Some(OUTPUT),
        (input, output),
        features,
        quality,
    )
    .with_api(Api {
        kind: Kind::Chat { tools },
        cached_input_per_mtok: cached,
        long_context: Some(GPT6_LONG),
    })
}

const fn embedding(id: &'static str, input: f64, quality: QualityTier) -> ModelSpec {
    provider::ModelSpec::new(
        id,
        8_191,
        None,
        (input, 0.0),
        ModelFeatures::EMBEDDINGS,
        quality,
    )
    .with_api(Api {
        kind: Kind::Embedding,
        cached_input_per_mtok: input,
        long_context: None,
    })
}

use ChatTools::{ResponsesOnly, WithoutReasoning};

/// Current models first, then the previous generation that is still served,
/// then the embeddings models.
pub const MODELS: &[ModelSpec] = &[
    chat(
        "gpt-6.2-astra",
        ResponsesOnly,
        (8.0, 0.40, 40.0),
        QualityTier::Premium,
    ),
    chat(
        "gpt-6.2-sol",
        ResponsesOnly,
        (2.0, 0.10, 10.0),
        QualityTier::Standard,
    ),
    chat(
        "gpt-6.1-terra",
        ResponsesOnly,
        (1.0, 0.05, 5.0),
        QualityTier::Standard,
    ),
    chat(
        "gpt-6.1-sol",
        ResponsesOnly,
        (2.0, 0.10, 10.0),
        QualityTier::Standard,
    ),
    chat(
        "gpt-6-astra",
        ResponsesOnly,
        (10.0, 1.0, 50.0),
        QualityTier::Premium,
    ),
    chat(
        "gpt-6-sol",
        WithoutReasoning,
        (2.0, 0.20, 10.0),
        QualityTier::Standard,
    ),
    chat(
        "gpt-6-luna",
        WithoutReasoning,
        (0.10, 0.01, 0.50),
        QualityTier::Basic,
    ),
    embedding("text-embedding-3-large", 0.13, QualityTier::Standard),
    embedding("text-embedding-3-small", 0.02, QualityTier::Basic),
];

/// The declared model `id`, also under a dated snapshot id
/// (`gpt-6-luna-2026-09-22` finds `gpt-6-luna`).
pub fn find(id: &str) -> Option<&'static ModelSpec> {
    ModelSpec::find(MODELS, id)
}

/// The declared models as the `provider` interface lists them.
pub fn model_infos() -> Vec<ModelInfo> {
    ModelSpec::infos(MODELS)
}

/// Token counts of one call, as the API reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    /// Every prompt token, cached ones included (`prompt_tokens`).
    pub input: u64,
    /// Prompt tokens read from the cache (`prompt_tokens_details.cached_tokens`).
    pub cached: u64,
    /// Completion tokens, reasoning included (`completion_tokens`).
    pub output: u64,
}

/// The cost of `tokens` on `spec` in millionths of a US dollar (a price in
/// dollars per million tokens is a price in micro-dollars per token); 0 for
/// an undeclared model.
pub fn cost_micro_usd(spec: Option<&ModelSpec>, tokens: &Tokens) -> u64 {
    let Some(spec) = spec else {
        return 0;
    };
    let (input_factor, output_factor) = match spec.api.long_context {
        Some(long) if tokens.input > long.above_input_tokens => {
            (long.input_factor, long.output_factor)
        }
        _ => (1.0, 1.0),
    };
    let cached = tokens.cached.min(tokens.input);
    provider::cost_micro_usd([
        (tokens.input - cached, spec.input_per_mtok * input_factor),
        (cached, spec.api.cached_input_per_mtok * input_factor),
        (tokens.output, spec.output_per_mtok * output_factor),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_found_with_dates() {
        for (i, m) in MODELS.iter().enumerate() {
            assert!(MODELS[i + 1..].iter().all(|o| o.id != m.id), "{}", m.id);
            assert_eq!(find(m.id).map(|s| s.id), Some(m.id));
        }
        assert_eq!(
            find("gpt-6-luna-2026-09-22").map(|s| s.id),
            Some("gpt-6-luna")
        );
        assert!(find("gpt-6-luna-pro").is_none());
        assert!(find("gpt-6-luna-2026-9-22").is_none());
        // `gpt-6` must not match `gpt-6.2-sol`'s prefix rule by accident.
        assert!(find("gpt-6").is_none());
    }

    #[test]
    fn features_follow_what_chat_completions_accepts() {
        let info = |id| find(id).unwrap().info();
        assert!(info("gpt-6-luna").features.contains(ModelFeatures::TOOLS));
        assert!(!info("gpt-6.2-sol").features.contains(ModelFeatures::TOOLS));
        assert!(
            info("gpt-6.2-sol")
                .features
                .contains(ModelFeatures::JSON_MODE)
        );
        let embed = info("text-embedding-3-small");
        assert_eq!(embed.features, ModelFeatures::EMBEDDINGS);
        assert_eq!(embed.max_output_tokens, None);
        assert!(model_infos().iter().all(|m| !m.local));
    }

    #[test]
    fn cost_counts_cache_reads_and_long_prompts() {
        let sol = find("gpt-6.2-sol");
        // 1M uncached input at $2, 1M output at $10.
        let t = Tokens {
            input: 1_000_000,
            cached: 0,
            output: 1_000_000,
        };
        // Above 272K: input doubles, output × 1.5.
        assert_eq!(cost_micro_usd(sol, &t), 4_000_000 + 15_000_000);
        let t = Tokens {
            input: 1_000,
            cached: 400,
            output: 100,
        };
        // 600 × 2 + 400 × 0.10 + 100 × 10 micro-dollars.
        assert_eq!(cost_micro_usd(sol, &t), 1_200 + 40 + 1_000);
        assert_eq!(cost_micro_usd(None, &t), 0);
        // Cached counts larger than the prompt cannot make the cost negative.
        let odd = Tokens {
            input: 10,
            cached: 50,
            output: 0,
        };
        assert_eq!(cost_micro_usd(sol, &odd), 1);
        let small = find("text-embedding-3-small");
        let t = Tokens {
            input: 1_000_000,
            cached: 0,
            output: 0,
        };
        assert_eq!(cost_micro_usd(small, &t), 20_000);
    }
}
