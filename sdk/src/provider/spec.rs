//! The models an adapter declares: one [`ModelSpec`] per model, in a
//! `const` table, found by id or by a dated snapshot id.
//!
//! ```
//! use convergio_sdk::provider::{ModelFeatures, ModelSpec, QualityTier};
//!
//! const CHAT: ModelFeatures = ModelFeatures::STREAMING.union(ModelFeatures::TOOLS);
//!
//! /// Nothing beyond the common facts; an adapter whose API treats models
//! /// differently puts what it needs in `api` (a struct of its own).
//! const MODELS: &[ModelSpec] = &[
//!     ModelSpec::new("acme-large", 200_000, Some(32_000), (3.0, 15.0), CHAT, QualityTier::Premium),
//!     ModelSpec::new("acme-small", 200_000, Some(32_000), (0.25, 1.25), CHAT, QualityTier::Basic),
//! ];
//!
//! let small = ModelSpec::find(MODELS, "acme-small-2026-03-01").map(|m| m.id);
//! assert_eq!(small, Some("acme-small"));
//! assert_eq!(ModelSpec::infos(MODELS)[0].id, "acme-large");
//! ```

use crate::provider::{ModelFeatures, ModelInfo, QualityTier};

/// A declared model: what the router is told of it (limits, list prices,
/// features, quality) and, in `api`, what the adapter's mapping needs to
/// know of it (`()` when nothing).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelSpec<A = ()> {
    /// Model id as the API names it: an alias without a date suffix.
    pub id: &'static str,
    /// Prompt plus completion tokens (for embeddings: input tokens).
    pub context_window: u32,
    /// The most output tokens one request may ask for (none for embeddings).
    pub max_output_tokens: Option<u32>,
    /// US dollars per million input tokens (list price).
    pub input_per_mtok: f64,
    /// US dollars per million output tokens (list price).
    pub output_per_mtok: f64,
    /// What the adapter serves of the model through the `provider` interface.
    pub features: ModelFeatures,
    /// How the router ranks it.
    pub quality: QualityTier,
    /// What the adapter's API needs to know of the model.
    pub api: A,
}

impl ModelSpec {
    /// A model with nothing API-specific; add that with [`with_api`](Self::with_api).
    pub const fn new(
        id: &'static str,
        context_window: u32,
        max_output_tokens: Option<u32>,
        (input_per_mtok, output_per_mtok): (f64, f64),
        features: ModelFeatures,
        quality: QualityTier,
    ) -> Self {
        Self {
            id,
            context_window,
            max_output_tokens,
            input_per_mtok,
            output_per_mtok,
            features,
            quality,
            api: (),
        }
    }

    /// The same model with `api`, what the adapter's API needs to know of it.
    pub const fn with_api<A>(self, api: A) -> ModelSpec<A> {
        ModelSpec {
            id: self.id,
            context_window: self.context_window,
            max_output_tokens: self.max_output_tokens,
            input_per_mtok: self.input_per_mtok,
            output_per_mtok: self.output_per_mtok,
            features: self.features,
            quality: self.quality,
            api,
        }
    }
}

impl<A> ModelSpec<A> {
    /// The model of `models` named `id`, also under a dated snapshot id:
    /// `ID-YYYY-MM-DD` (`gpt-6-luna-2026-09-22`) or `ID-YYYYMMDD`
    /// (`claude-haiku-4-5-20251001`).
    pub fn find(models: &'static [Self], id: &str) -> Option<&'static Self> {
        models.iter().find(|m| m.is_named(id))
    }

    /// Whether `id` is this model's id or one of its dated snapshots.
    pub fn is_named(&self, id: &str) -> bool {
        self.id == id
            || id
                .strip_prefix(self.id)
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(is_date)
    }

    /// The model as the `provider` interface lists it.
    pub fn info(&self) -> ModelInfo {
        self.info_as(self.id)
    }

    /// The model's facts listed under `id` (a deployment named by the
    /// operator, say).
    pub fn info_as(&self, id: &str) -> ModelInfo {
        ModelInfo {
            id: id.to_owned(),
            context_window: self.context_window,
            max_output_tokens: self.max_output_tokens,
            input_price_per_mtok: self.input_per_mtok,
            output_price_per_mtok: self.output_per_mtok,
            features: self.features,
            quality: self.quality,
            local: false,
        }
    }

    /// Every model of `models`, in order, as the `provider` interface lists them.
    pub fn infos(models: &[Self]) -> Vec<ModelInfo> {
        models.iter().map(Self::info).collect()
    }
}

/// `YYYY-MM-DD` or `YYYYMMDD`.
fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    match b.len() {
        8 => b.iter().all(u8::is_ascii_digit),
        10 => b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: ModelFeatures = ModelFeatures::STREAMING;

    const MODELS: &[ModelSpec<u8>] = &[
        ModelSpec::new(
            "m-6.2-sol",
            10,
            Some(5),
            (1.0, 2.0),
            F,
            QualityTier::Standard,
        )
        .with_api(1),
        ModelSpec::new("m-6-luna", 10, None, (1.0, 2.0), F, QualityTier::Basic).with_api(2),
        ModelSpec::new("m-6", 10, None, (1.0, 2.0), F, QualityTier::Basic).with_api(3),
    ];

    #[test]
    fn ids_and_dated_snapshots_are_found() {
        let find = |id| ModelSpec::find(MODELS, id).map(|m| m.api);
        assert_eq!(find("m-6-luna"), Some(2));
        assert_eq!(find("m-6-luna-2026-09-22"), Some(2));
        assert_eq!(find("m-6-luna-20260922"), Some(2));
        assert_eq!(find("m-6"), Some(3));
        assert_eq!(find("m-6-luna-pro"), None);
        assert_eq!(find("m-6-luna-2026-9-22"), None);
        assert_eq!(find("m-6-luna-2026092"), None);
        assert_eq!(find("m-6-luna-2026/09/22"), None);
        assert_eq!(find("m-6.2"), None);
    }

    #[test]
    fn infos_carry_the_declared_facts() {
        let infos = ModelSpec::infos(MODELS);
        assert_eq!(infos.len(), 3);
        assert_eq!(infos[0].id, "m-6.2-sol");
        assert_eq!(infos[0].max_output_tokens, Some(5));
        assert_eq!(infos[0].output_price_per_mtok, 2.0);
        assert!(infos.iter().all(|i| !i.local && i.features == F));
        assert_eq!(MODELS[1].info_as("deployment").id, "deployment");
    }
}
