//! `convergio:platform/local-model` for plugins granted local models
//! (`models = [...]`): the platform's [`LocalModels`] (llama.cpp
//! in-process, an Ollama server), limited to the granted model names.
//! [`LocalModelCtx`] is one plugin's context, [`LocalModelView`] borrows it
//! with a store's resource table, [`add_to_linker`] links the interface.

use std::collections::BTreeSet;

use convergio_cap_inference as ci;
use convergio_cap_inference::wit::{FromWit, ToWit};
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use crate::{self as lm, Event, GenerateRequest, LocalModels};

#[allow(missing_docs, missing_debug_implementations)]
mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        inline: "
            package convergio:local-model-host;
            world local-model-host {
                import convergio:platform/local-model@0.1.0;
            }
        ",
        world: "convergio:local-model-host/local-model-host",
        imports: { default: async },
        with: {
            "convergio:platform/types": convergio_cap_inference::wit::types,
            "convergio:platform/local-model.token-stream": super::LocalStream,
        },
    });
}

use bindings::convergio::platform::local_model as wit;
use convergio_cap_inference::wit::types as wit_types;

/// Which local models a plugin may use: its `models = [...]` grant, parsed
/// once at load (`"*"` grants every model).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelGrants {
    any: bool,
    names: BTreeSet<String>,
}

impl ModelGrants {
    /// Parse a `models = [...]` grant.
    pub fn parse<S: AsRef<str>>(grants: &[S]) -> Self {
        let mut parsed = Self::default();
        for grant in grants {
            match grant.as_ref() {
                "*" => parsed.any = true,
                name => {
                    parsed.names.insert(name.to_owned());
                }
            }
        }
        parsed
    }

    /// Whether the grant names `model` (or every model).
    pub fn allows(&self, model: &str) -> bool {
        self.any || self.names.contains(model)
    }

    /// Whether the grant names no model.
    pub fn is_empty(&self) -> bool {
        !self.any && self.names.is_empty()
    }
}

/// What the local-model capability holds for one plugin: its id, its
/// grant and the platform's local models (none when the platform serves none).
#[derive(Debug, Clone)]
pub struct LocalModelCtx {
    plugin: String,
    grants: ModelGrants,
    models: Option<LocalModels>,
}

impl LocalModelCtx {
    /// The context of `plugin`, granted `grants`, over `models`.
    pub fn new(
        plugin: impl Into<String>,
        grants: ModelGrants,
        models: Option<LocalModels>,
    ) -> Self {
        Self {
            plugin: plugin.into(),
            grants,
            models,
        }
    }
}

/// A store's view of its plugin's [`LocalModelCtx`], with the table that
/// holds its token streams.
pub struct LocalModelView<'a> {
    /// The plugin's context.
    pub ctx: &'a LocalModelCtx,
    /// The store's resource table.
    pub table: &'a mut ResourceTable,
}

impl std::fmt::Debug for LocalModelView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalModelView")
            .field("ctx", &self.ctx)
            .finish_non_exhaustive()
    }
}

struct HasLocalModel;

impl HasData for HasLocalModel {
    type Data<'a> = LocalModelView<'a>;
}

/// Add `convergio:platform/local-model` to `linker`. Its functions are
/// async: instantiate and call with wasmtime's `_async` methods.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> LocalModelView<'_>,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasLocalModel>(linker, get)
}

/// A generation streaming to a plugin, held in its resource table.
#[derive(Debug)]
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

impl LocalModelView<'_> {
    /// The local models, if `model` is granted (`models = ["name"]`, or `"*"`
    /// for every model).
    fn granted(&self, model: &str) -> Result<LocalModels, wit::LocalModelError> {
        let ctx = self.ctx;
        if !ctx.grants.allows(model) {
            return Err(wit::LocalModelError::AccessDenied(format!(
                "plugin `{}` may not use local model `{model}`; grant it with models = [\"{model}\"] under its [plugin.grants] in platform.toml",
                ctx.plugin
            )));
        }
        ctx.models.clone().ok_or_else(|| {
            wit::LocalModelError::NotFound(
                "this platform serves no local models ([local-models] has no backend)".into(),
            )
        })
    }
}

fn request(
    model: String,
    messages: Vec<wit_types::Message>,
    sampling: wit_types::Sampling,
    format: wit_types::ResponseFormat,
) -> GenerateRequest {
    GenerateRequest {
        model,
        messages: messages.into_iter().map(ci::Message::from_wit).collect(),
        sampling: ci::Sampling::from_wit(sampling),
        format: ci::ResponseFormat::from_wit(format),
    }
}

impl wit::Host for LocalModelView<'_> {
    async fn list(&mut self) -> Vec<wit::LocalModelInfo> {
        let ctx = self.ctx;
        let Some(local) = ctx.models.clone() else {
            return Vec::new();
        };
        local
            .list()
            .await
            .into_iter()
            .filter(|m| ctx.grants.allows(&m.name))
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
        format: wit_types::ResponseFormat,
    ) -> Result<wit::Generation, wit::LocalModelError> {
        let local = self.granted(&model)?;
        let _span = tracing::debug_span!("convergio.local_model.generate", plugin = %self.ctx.plugin, model = %model);
        let events = local
            .generate(request(model, messages, sampling, format))
            .await
            .map_err(to_wit)?;
        lm::collect(events).await.map(generation).map_err(to_wit)
    }

    async fn generate_stream(
        &mut self,
        model: String,
        messages: Vec<wit_types::Message>,
        sampling: wit_types::Sampling,
        format: wit_types::ResponseFormat,
    ) -> Result<Resource<LocalStream>, wit::LocalModelError> {
        let local = self.granted(&model)?;
        let events = local
            .generate(request(model, messages, sampling, format))
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

impl wit::HostTokenStream for LocalModelView<'_> {
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
