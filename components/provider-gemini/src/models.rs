//! The models this adapter declares, with the Gemini Developer API's
//! Standard (paid tier) prices in US dollars per million tokens.
//!
//! Read on 2026-11-25 from Google's pages (ai.google.dev/gemini-api/docs/pricing,
//! …/docs/models/…, …/docs/generate-content/latest-model and the Gemini 4
//! guides); see the README for the per-model sources and caveats.
//! Introductory prices that end soon are not declared: the declared price is
//! the one that applies after the introduction, so costs are an upper bound
//! until then. Prices over 200k-token prompts and cached-input discounts are
//! not modelled. Operators override prices in `platform.toml`.

use convergio_sdk::provider::{self, ModelFeatures, ModelInfo, QualityTier};

/// A declared model: nothing beyond the common facts matters to the mapping.
pub type ModelSpec = provider::ModelSpec;

/// generateContent: text in (and images), text and function calls out.
const CHAT: ModelFeatures = ModelFeatures::TOOLS
    .union(ModelFeatures::VISION)
    .union(ModelFeatures::JSON_MODE)
    .union(ModelFeatures::STREAMING);

const ONE_M: u32 = 1_048_576;
const OUT_64K: Option<u32> = Some(65_536);

const fn chat(id: &'static str, input: f64, output: f64, quality: QualityTier) -> ModelSpec {
    ModelSpec::new(id, ONE_M, OUT_64K, (input, output), CHAT, quality)
}

/// batchEmbedContents.
const fn embedding(id: &'static str, context_window: u32, input: f64) -> ModelSpec {
    ModelSpec::new(
        id,
        context_window,
        None,
        (input, 0.0),
        ModelFeatures::EMBEDDINGS,
        QualityTier::Standard,
    )
}

/// Newest first within each family.
pub const MODELS: &[ModelSpec] = &[
    // Gemini 4: one 1,048,576-token window shared by input and output;
    // 65,536 output tokens per request (long decode is not used).
    chat("gemini-4-carbon", 4.00, 20.00, QualityTier::Premium),
    chat("gemini-4-argon", 4.00, 20.00, QualityTier::Premium),
    chat("gemini-4-neon", 3.00, 15.00, QualityTier::Premium),
    chat("gemini-4-hydrogen", 1.50, 7.50, QualityTier::Standard),
    // Gemini 3.x
    chat("gemini-3.8-flash", 1.50, 7.50, QualityTier::Standard),
    chat("gemini-3.5-flash", 1.50, 9.00, QualityTier::Standard),
    chat("gemini-3.5-flash-lite", 0.30, 2.50, QualityTier::Basic),
    chat("gemini-3.1-pro-preview", 2.00, 12.00, QualityTier::Premium),
    // Gemini 2.5
    chat("gemini-2.5-pro", 1.25, 10.00, QualityTier::Premium),
    chat("gemini-2.5-flash", 0.30, 2.50, QualityTier::Standard),
    chat("gemini-2.5-flash-lite", 0.10, 0.40, QualityTier::Basic),
    // Embeddings
    embedding("gemini-embedding-2", 8_192, 0.20),
    embedding("gemini-embedding-001", 2_048, 0.15),
];

/// The declared model `model` (`models/` prefix allowed), also under a
/// dated snapshot id.
pub fn find(model: &str) -> Option<&'static ModelSpec> {
    ModelSpec::find(MODELS, model.strip_prefix("models/").unwrap_or(model))
}

/// The declared models as the `provider` interface lists them.
pub fn model_infos() -> Vec<ModelInfo> {
    ModelSpec::infos(MODELS)
}

/// Cost in millionths of a dollar: one token at $1 per million tokens costs
/// exactly one micro-dollar. Unknown models cost 0.
pub fn cost_micro_usd(model: &str, input_tokens: u32, output_tokens: u32) -> u64 {
    match find(model) {
        Some(spec) => provider::cost_micro_usd([
            (input_tokens.into(), spec.input_per_mtok),
            (output_tokens.into(), spec.output_per_mtok),
        ]),
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_prices_sane() {
        let models = model_infos();
        for (i, m) in models.iter().enumerate() {
            assert!(
                models[i + 1..].iter().all(|o| o.id != m.id),
                "duplicate {}",
                m.id
            );
            assert!(m.input_price_per_mtok > 0.0 && m.output_price_per_mtok >= 0.0);
            assert!(!m.local);
            let embeds = m.features.contains(ModelFeatures::EMBEDDINGS);
            assert_eq!(embeds, m.id.contains("embedding"), "{}", m.id);
            assert_eq!(embeds, !m.features.contains(ModelFeatures::STREAMING));
        }
    }

    #[test]
    fn cost_is_tokens_times_price() {
        // 1,000 in × $0.30 + 500 out × $2.50 = 300 + 1,250 micro-dollars.
        assert_eq!(cost_micro_usd("gemini-2.5-flash", 1_000, 500), 1_550);
        assert_eq!(cost_micro_usd("models/gemini-2.5-flash", 1_000, 500), 1_550);
        assert_eq!(cost_micro_usd("gemini-4-argon", 1_000_000, 0), 4_000_000);
        assert_eq!(cost_micro_usd("gemini-unknown", 1_000, 500), 0);
    }
}
