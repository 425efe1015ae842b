//! The models this adapter declares, with their limits and list prices, and
//! the cost of a call computed from them.
//!
//! Source: Anthropic's "Models overview" and per-model pages
//! (<https://platform.claude.com/docs/en/models/overview>), read on
//! 2026-11-25. Operators override prices in `platform.toml`; the router reads
//! the overrides.

use convergio_sdk::provider::{self, ModelFeatures, ModelInfo, QualityTier};

/// A declared model.
pub type ModelSpec = provider::ModelSpec<Api>;

/// What the Messages API needs to know of a model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Api {
    /// Higher prices for long prompts, if the model has them.
    pub long_prompt: Option<LongPrompt>,
    /// Whether the model accepts `temperature`, `top_p` and `top_k`: models
    /// from Claude Opus 4.7 on answer 400 ("`temperature` is deprecated for
    /// this model") when they are sent.
    pub sampling: bool,
}

/// The price tier of prompts longer than `above_input_tokens`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LongPrompt {
    pub above_input_tokens: u64,
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
}

/// Every model reads images, but `message` carries text only, so `vision`
/// is not declared. Anthropic has no JSON mode (see README) and no
/// embeddings.
const FEATURES: ModelFeatures = ModelFeatures::TOOLS.union(ModelFeatures::STREAMING);

const fn model(
    id: &'static str,
    context_window: u32,
    max_output_tokens: u32,
    prices: (f64, f64),
    quality: QualityTier,
) -> ModelSpec {
    provider::ModelSpec::new(
        id,
        context_window,
        Some(max_output_tokens),
        prices,
        FEATURES,
        quality,
    )
    .with_api(Api {
        long_prompt: None,
        sampling: false,
    })
}

const M: u32 = 1_000_000;
const K128: u32 = 128_000;

/// Current models first, then the previous generation that is still served.
pub const MODELS: &[ModelSpec] = &[
    model(
        "claude-fable-5-2",
        M,
        K128,
        (8.0, 40.0),
        QualityTier::Premium,
    ),
    model(
        "claude-opus-5-5",
        M,
        K128,
        (4.0, 20.0),
        QualityTier::Premium,
    ),
    model(
        "claude-sonnet-5-5",
        M,
        K128,
        (2.0, 10.0),
        QualityTier::Standard,
    ),
    ModelSpec {
        api: Api {
            long_prompt: Some(LongPrompt {
                above_input_tokens: 100_000,
                input_per_mtok: 0.50,
                output_per_mtok: 2.50,
            }),
            sampling: false,
        },
        ..model(
            "claude-haiku-5-5",
            M,
            K128,
            (0.10, 0.50),
            QualityTier::Basic,
        )
    },
    model(
        "claude-fable-5-1",
        M,
        K128,
        (10.0, 50.0),
        QualityTier::Premium,
    ),
    model("claude-opus-5", M, K128, (5.0, 25.0), QualityTier::Premium),
    model(
        "claude-sonnet-5",
        M,
        K128,
        (2.0, 10.0),
        QualityTier::Standard,
    ),
    ModelSpec {
        api: Api {
            long_prompt: None,
            sampling: true,
        },
        ..model(
            "claude-haiku-4-5",
            200_000,
            64_000,
            (1.0, 5.0),
            QualityTier::Basic,
        )
    },
];

/// The declared model `id`, also under a dated snapshot id
/// (`claude-haiku-4-5-20251001` finds `claude-haiku-4-5`).
pub fn find(id: &str) -> Option<&'static ModelSpec> {
    ModelSpec::find(MODELS, id)
}

/// The declared models as the `provider` interface lists them.
pub fn model_infos() -> Vec<ModelInfo> {
    ModelSpec::infos(MODELS)
}

/// Tokens of one call, as the API counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    /// Input tokens read neither from nor into the prompt cache.
    pub input: u64,
    /// Input tokens written to the prompt cache (5-minute cache).
    pub cache_write: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read: u64,
    pub output: u64,
}

impl Tokens {
    /// Every input token, cached or not.
    pub fn total_input(&self) -> u64 {
        self.input + self.cache_write + self.cache_read
    }
}

/// Multipliers of the input price for prompt-cache writes (5-minute cache)
/// and reads, from Anthropic's pricing page.
const CACHE_WRITE_FACTOR: f64 = 1.25;
const CACHE_READ_FACTOR: f64 = 0.1;

/// The cost of `tokens` on `model` in millionths of a US dollar; 0 for an
/// undeclared model.
pub fn cost_micro_usd(model: &str, tokens: &Tokens) -> u64 {
    let Some(spec) = find(model) else {
        return 0;
    };
    let (input_price, output_price) = match spec.api.long_prompt {
        Some(tier) if tokens.total_input() > tier.above_input_tokens => {
            (tier.input_per_mtok, tier.output_per_mtok)
        }
        _ => (spec.input_per_mtok, spec.output_per_mtok),
    };
    provider::cost_micro_usd([
        (tokens.input, input_price),
        (tokens.cache_write, input_price * CACHE_WRITE_FACTOR),
        (tokens.cache_read, input_price * CACHE_READ_FACTOR),
        (tokens.output, output_price),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_limits_sane() {
        for (i, m) in MODELS.iter().enumerate() {
            assert!(MODELS[..i].iter().all(|other| other.id != m.id), "{}", m.id);
            assert!(
                m.max_output_tokens
                    .is_some_and(|max| max < m.context_window),
                "{}",
                m.id
            );
            assert!(m.input_per_mtok > 0.0 && m.output_per_mtok >= m.input_per_mtok);
        }
        let infos = model_infos();
        assert_eq!(infos.len(), MODELS.len());
        assert!(infos.iter().all(|i| {
            !i.local
                && i.features
                    .contains(ModelFeatures::TOOLS | ModelFeatures::STREAMING)
                && !i.features.contains(ModelFeatures::EMBEDDINGS)
                && !i.features.contains(ModelFeatures::JSON_MODE)
        }));
    }

    #[test]
    fn dated_snapshots_find_their_alias() {
        assert_eq!(
            find("claude-haiku-4-5-20251001").map(|m| m.id),
            Some("claude-haiku-4-5")
        );
        assert_eq!(
            find("claude-opus-5-5").map(|m| m.id),
            Some("claude-opus-5-5")
        );
        // `claude-opus-5` is not a prefix match of `claude-opus-5-5`.
        assert_eq!(find("claude-opus-5").map(|m| m.id), Some("claude-opus-5"));
        assert_eq!(find("claude-opus-5-x"), None);
        assert_eq!(find("gpt-4o"), None);
    }

    #[test]
    fn cost_uses_declared_prices() {
        let tokens = Tokens {
            input: 1_000,
            output: 500,
            ..Tokens::default()
        };
        // 1000 × $4/M + 500 × $20/M = $0.004 + $0.010 = 14000 µ$.
        assert_eq!(cost_micro_usd("claude-opus-5-5", &tokens), 14_000);
        assert_eq!(cost_micro_usd("unknown-model", &tokens), 0);
    }

    #[test]
    fn cache_tokens_are_priced_by_their_factor() {
        let tokens = Tokens {
            input: 100,
            cache_write: 1_000,
            cache_read: 10_000,
            output: 0,
        };
        // Haiku 4.5 at $1/M: 100 + 1000 × 1.25 + 10000 × 0.1 = 2350 µ$.
        assert_eq!(cost_micro_usd("claude-haiku-4-5", &tokens), 2_350);
    }

    #[test]
    fn long_prompts_switch_tier() {
        let short = Tokens {
            input: 100_000,
            output: 1_000,
            ..Tokens::default()
        };
        // 100000 × $0.10/M + 1000 × $0.50/M = 10000 + 500.
        assert_eq!(cost_micro_usd("claude-haiku-5-5", &short), 10_500);
        let long = Tokens {
            input: 100_001,
            ..short
        };
        // 100001 × $0.50/M + 1000 × $2.50/M = 50000.5 + 2500, rounded up.
        assert_eq!(cost_micro_usd("claude-haiku-5-5", &long), 52_501);
    }
}
