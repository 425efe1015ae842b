//! The backend trait, what it returns, and [`LocalModels`], which routes
//! calls to the backend that has the model.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use convergio_cap_inference::{Message, ResponseFormat, Sampling, Usage};

use crate::{Error, Result};

/// A boxed future, as the trait's methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A model a backend can run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalModelInfo {
    /// Name callers use, e.g. `smollm2-135m-instruct-q4_1`.
    pub name: String,
    /// The backend that runs it (`llama`, `ollama`).
    pub backend: String,
    /// Bytes on disk.
    pub size_bytes: u64,
    /// Quantization, e.g. `Q4_1`.
    pub quantization: String,
    /// Context length the model was trained for (tokens).
    pub context_length: u32,
    /// Embedding dimension.
    pub embedding_length: u32,
    /// sha256 of the file, hex (empty if the backend does not report one).
    pub sha256: String,
    /// Currently in memory.
    pub loaded: bool,
}

/// One generation request.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateRequest {
    /// Model name.
    pub model: String,
    /// The chat, rendered with the model's own chat template.
    pub messages: Vec<Message>,
    /// Sampling, length and stop sequences.
    pub sampling: Sampling,
    /// Free text or JSON (of a schema): llama.cpp samples under a grammar,
    /// Ollama passes it as the request's `format`.
    pub format: ResponseFormat,
}

/// A finished generation.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// The whole text (what the [`Event::Text`] pieces add up to).
    pub text: String,
    /// A stop sequence or the end-of-generation token ended it (`false`:
    /// `max-tokens` did).
    pub stopped: bool,
    /// Prompt and generated tokens (no cost: local models are free).
    pub usage: Usage,
}

/// What a generation sends while it runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The next piece of text.
    Text(String),
    /// The end: the whole generation. Nothing follows.
    Done(Generation),
}

/// The stream of a generation. An error ends it. Dropping the receiver
/// stops the generation.
pub type Events = tokio::sync::mpsc::Receiver<Result<Event>>;

/// A local inference engine.
///
/// Methods are async; CPU-bound engines run their work on threads of their
/// own and never block the caller's executor.
pub trait Backend: Send + Sync + 'static {
    /// Short name (`llama`, `ollama`), shown in model lists.
    fn name(&self) -> &str;

    /// The models this backend can run now.
    fn list(&self) -> BoxFuture<'_, Result<Vec<LocalModelInfo>>>;

    /// Whether this backend serves `model` (it may still fail to load it).
    /// Asked on every call, so a backend that can answer without listing
    /// everything (a model already in memory) should override it; the
    /// default looks `model` up in [`Self::list`].
    fn has<'a>(&'a self, model: &'a str) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            self.list()
                .await
                .is_ok_and(|models| models.iter().any(|m| m.name == model))
        })
    }

    /// Start a generation. Errors known before the first token (unknown
    /// model, corrupt file, prompt longer than the context) are returned
    /// here rather than in the stream.
    fn generate(&self, request: GenerateRequest) -> BoxFuture<'_, Result<Events>>;

    /// One embedding vector per input, of the model's embedding dimension.
    fn embed(&self, model: String, inputs: Vec<String>) -> BoxFuture<'_, Result<Vec<Vec<f32>>>>;
}

/// Every configured backend behind one front: a model name is served by the
/// first backend (in configuration order) that lists it.
#[derive(Clone, Default)]
pub struct LocalModels {
    backends: Vec<Arc<dyn Backend>>,
}

impl std::fmt::Debug for LocalModels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.backends.iter().map(|b| b.name()))
            .finish()
    }
}

impl LocalModels {
    /// The backends, in the order they are asked.
    pub fn new(backends: Vec<Arc<dyn Backend>>) -> Self {
        Self { backends }
    }

    /// Whether no backend is configured.
    pub fn is_empty(&self) -> bool {
        self.backends.is_empty()
    }

    /// Every model of every backend (a name listed by an earlier backend
    /// hides the same name in later ones). A backend that cannot answer (an
    /// Ollama server that is down) is logged and skipped, so the others stay
    /// usable.
    pub async fn list(&self) -> Vec<LocalModelInfo> {
        let mut all: Vec<LocalModelInfo> = Vec::new();
        for backend in &self.backends {
            match backend.list().await {
                Ok(models) => {
                    for model in models {
                        if !all.iter().any(|m| m.name == model.name) {
                            all.push(model);
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(backend = backend.name(), error = %e, "local model backend cannot list its models");
                }
            }
        }
        all
    }

    /// The backend that serves `model`: the first that [`Backend::has`] it.
    /// Only when none has it are the models listed, for the error.
    pub async fn backend_of(&self, model: &str) -> Result<Arc<dyn Backend>> {
        for backend in &self.backends {
            if backend.has(model).await {
                return Ok(Arc::clone(backend));
            }
        }
        let names: Vec<String> = self.list().await.into_iter().map(|m| m.name).collect();
        Err(Error::NotFound(if names.is_empty() {
            format!(
                "no local model `{model}`: no model is installed; add one with `convergio models pull SOURCE`"
            )
        } else {
            format!(
                "no local model `{model}`; installed: {}. Add one with `convergio models pull SOURCE`",
                names.join(", ")
            )
        }))
    }

    /// Start a generation on the backend that has the model.
    pub async fn generate(&self, request: GenerateRequest) -> Result<Events> {
        self.backend_of(&request.model)
            .await?
            .generate(request)
            .await
    }

    /// Embeddings from the backend that has the model.
    pub async fn embed(&self, model: String, inputs: Vec<String>) -> Result<Vec<Vec<f32>>> {
        self.backend_of(&model).await?.embed(model, inputs).await
    }
}

/// Drain a generation to its end: the finished [`Generation`].
pub async fn collect(mut events: Events) -> Result<Generation> {
    while let Some(event) = events.recv().await {
        if let Event::Done(generation) = event? {
            return Ok(generation);
        }
    }
    Err(Error::Backend(
        "the generation ended without finishing (its worker stopped)".into(),
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A backend with fixed models that counts how often it is listed, and
    /// optionally answers `has` from memory like the llama backend does.
    struct Fixed {
        name: &'static str,
        models: Vec<&'static str>,
        answers_has: bool,
        lists: AtomicUsize,
    }

    impl Fixed {
        fn new(name: &'static str, models: &[&'static str], answers_has: bool) -> Arc<Self> {
            Arc::new(Self {
                name,
                models: models.to_vec(),
                answers_has,
                lists: AtomicUsize::new(0),
            })
        }
    }

    impl Backend for Fixed {
        fn name(&self) -> &str {
            self.name
        }

        fn list(&self) -> BoxFuture<'_, Result<Vec<LocalModelInfo>>> {
            self.lists.fetch_add(1, Ordering::Relaxed);
            let models = self
                .models
                .iter()
                .map(|m| LocalModelInfo {
                    name: (*m).to_owned(),
                    backend: self.name.to_owned(),
                    size_bytes: 0,
                    quantization: String::new(),
                    context_length: 0,
                    embedding_length: 0,
                    sha256: String::new(),
                    loaded: false,
                })
                .collect();
            Box::pin(async move { Ok(models) })
        }

        fn has<'a>(&'a self, model: &'a str) -> BoxFuture<'a, bool> {
            if self.answers_has {
                let has = self.models.contains(&model);
                Box::pin(async move { has })
            } else {
                Box::pin(async move {
                    self.list()
                        .await
                        .is_ok_and(|models| models.iter().any(|m| m.name == model))
                })
            }
        }

        fn generate(&self, _: GenerateRequest) -> BoxFuture<'_, Result<Events>> {
            Box::pin(async { Err(Error::Backend("not used".into())) })
        }

        fn embed(&self, _: String, _: Vec<String>) -> BoxFuture<'_, Result<Vec<Vec<f32>>>> {
            Box::pin(async { Err(Error::Backend("not used".into())) })
        }
    }

    #[tokio::test]
    async fn calls_route_to_the_first_backend_with_the_model_without_listing() {
        let llama = Fixed::new("llama", &["smollm2", "shared"], true);
        let ollama = Fixed::new("ollama", &["llama3:8b", "shared"], false);
        let models = LocalModels::new(vec![llama.clone(), ollama.clone()]);

        assert_eq!(models.backend_of("smollm2").await.unwrap().name(), "llama");
        assert_eq!(models.backend_of("shared").await.unwrap().name(), "llama");
        // A backend that answers `has` itself is never listed on the call path.
        assert_eq!(llama.lists.load(Ordering::Relaxed), 0);
        assert_eq!(ollama.lists.load(Ordering::Relaxed), 0);

        assert_eq!(
            models.backend_of("llama3:8b").await.unwrap().name(),
            "ollama"
        );
        assert_eq!(ollama.lists.load(Ordering::Relaxed), 1);

        let Err(Error::NotFound(message)) = models.backend_of("missing").await else {
            panic!("expected NotFound");
        };
        assert!(
            message.contains("installed: smollm2, shared, llama3:8b"),
            "{message}"
        );
        assert!(message.contains("convergio models pull"), "{message}");
    }

    #[tokio::test]
    async fn no_backend_or_no_model_says_how_to_add_one() {
        let Err(Error::NotFound(message)) = LocalModels::default().backend_of("x").await else {
            panic!("expected NotFound");
        };
        assert!(message.contains("no model is installed"), "{message}");
    }
}
