//! `convergio:platform/local-model` for plugins granted local models
//! (`models = [...]`): the host's [`LocalModels`] (llama.cpp in-process, an
//! Ollama server), limited to the granted model names.

use convergio_cap_inference as ci;
use convergio_cap_local_model::{self as lm, Event, GenerateRequest, LocalModels};
use wasmtime::component::Resource;

use crate::host::{HostState, wit_local_model as wit, wit_types};
use crate::model_types::{FromWit, ToWit};

/// A generation streaming to a plugin, held in its resource table.
pub struct LocalStream {
    events: lm::Events,
    finished: Option<lm::Generation>,
}

fn to_wit(err: lm::Error) -> wit::LocalModelError {
    match err {
        lm::Error::NotFound(m) => wit::LocalModelError::NotFound(m),
        lm::Error::LoadFailed(m) => wit::LocalModelError::LoadFailed(m),
        lm::Error::ContextOverflow(m) => wit::LocalModelError::ContextOverflow(m),
        lm::Error::InvalidInput(m) => wit::LocalModelError::InvalidInput(m),
        lm::Error::AccessDenied(m) => wit::LocalModelError::AccessDenied(m),
        other => wit::LocalModelError::Backend(other.to_string()),
    }
}

fn generation(g: lm::Generation) -> wit::Generation {
    wit::Generation {
        text: g.text,
        stopped: g.stopped,
        usage: g.usage.to_wit(),
    }
}

impl HostState {
    /// The local models, if `model` is granted (`models = ["name"]`, or `"*"`
    /// for every model).
    fn granted(&self, model: &str) -> Result<LocalModels, wit::LocalModelError> {
        let grants = &self.plugin.grants.models;
        if !grants.iter().any(|g| g == "*" || g == model) {
            return Err(wit::LocalModelError::AccessDenied(format!(
                "plugin `{}` may not use local model `{model}`; grant it with models = [\"{model}\"] under its [plugin.grants] in platform.toml",
                self.plugin.id
            )));
        }
        self.local_models.clone().ok_or_else(|| {
            wit::LocalModelError::NotFound(
                "this platform serves no local models ([local-models] has no backend)".into(),
            )
        })
    }

    fn request(
        model: String,
        messages: Vec<wit_types::Message>,
        sampling: wit_types::Sampling,
    ) -> GenerateRequest {
        GenerateRequest {
            model,
            messages: messages.into_iter().map(ci::Message::from_wit).collect(),
            sampling: ci::Sampling::from_wit(sampling),
        }
    }
}

impl wit::Host for HostState {
    async fn list(&mut self) -> Vec<wit::LocalModelInfo> {
        let Some(local) = self.local_models.clone() else {
            return Vec::new();
        };
        let grants = &self.plugin.grants.models;
        local
            .list()
            .await
            .into_iter()
            .filter(|m| grants.iter().any(|g| g == "*" || *g == m.name))
            .map(|m| wit::LocalModelInfo {
                name: m.name,
                size_bytes: m.size_bytes,
                quantization: m.quantization,
                context_length: m.context_length,
                embedding_length: m.embedding_length,
                sha256: m.sha256,
                loaded: m.loaded,
            })
            .collect()
    }

    async fn generate(
        &mut self,
        model: String,
        messages: Vec<wit_types::Message>,
        sampling: wit_types::Sampling,
    ) -> Result<wit::Generation, wit::LocalModelError> {
        let local = self.granted(&model)?;
        let _span = tracing::debug_span!("convergio.local_model.generate", plugin = %self.plugin.id, model = %model);
        let events = local
            .generate(Self::request(model, messages, sampling))
            .await
            .map_err(to_wit)?;
        lm::collect(events).await.map(generation).map_err(to_wit)
    }

    async fn generate_stream(
        &mut self,
        model: String,
        messages: Vec<wit_types::Message>,
        sampling: wit_types::Sampling,
    ) -> Result<Resource<LocalStream>, wit::LocalModelError> {
        let local = self.granted(&model)?;
        let events = local
            .generate(Self::request(model, messages, sampling))
            .await
            .map_err(to_wit)?;
        self.table
            .push(LocalStream {
                events,
                finished: None,
            })
            .map_err(|e| wit::LocalModelError::Backend(format!("cannot hold the stream: {e}")))
    }

    async fn embed(
        &mut self,
        model: String,
        inputs: Vec<String>,
    ) -> Result<Vec<Vec<f32>>, wit::LocalModelError> {
        let local = self.granted(&model)?;
        local.embed(model, inputs).await.map_err(to_wit)
    }
}

impl wit::HostTokenStream for HostState {
    async fn next(
        &mut self,
        stream: Resource<LocalStream>,
    ) -> Option<Result<String, wit::LocalModelError>> {
        let stream = match self.table.get_mut(&stream) {
            Ok(stream) => stream,
            Err(e) => {
                return Some(Err(wit::LocalModelError::InvalidInput(format!(
                    "unknown token stream: {e}"
                ))));
            }
        };
        if stream.finished.is_some() {
            return None;
        }
        match stream.events.recv().await {
            Some(Ok(Event::Text(text))) => Some(Ok(text)),
            Some(Ok(Event::Done(done))) => {
                stream.finished = Some(done);
                None
            }
            Some(Err(e)) => Some(Err(to_wit(e))),
            None => Some(Err(wit::LocalModelError::Backend(
                "the generation stopped without finishing".into(),
            ))),
        }
    }

    async fn finished(&mut self, stream: Resource<LocalStream>) -> Option<wit::Generation> {
        let stream = self.table.get(&stream).ok()?;
        stream.finished.clone().map(generation)
    }

    async fn drop(&mut self, stream: Resource<LocalStream>) -> wasmtime::Result<()> {
        // Dropping the receiver stops the generation.
        self.table.delete(stream)?;
        Ok(())
    }
}
