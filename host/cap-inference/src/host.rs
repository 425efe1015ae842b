//! `convergio:platform/inference` for plugins: every call goes through the
//! router, as the calling plugin (its budgets, its metering).
//! [`InferenceCtx`] is one plugin's context (who it is to the router, and
//! the platform's router once it has started); [`InferenceView`] borrows it
//! with a store's resource table; [`add_to_linker`] links the interface.

use std::sync::{Arc, OnceLock};

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use crate as ci;
use crate::wit::bindings::convergio::platform::inference as wit;
use crate::wit::types as wit_types;
use crate::wit::{FromWit, ToWit};

/// The platform's router, set once every provider plugin is loaded (the
/// plugins that call it are loaded before it exists).
pub type RouterCell = Arc<OnceLock<Arc<ci::Router>>>;

/// A routed stream held in a plugin's resource table.
pub struct InferenceStream(ci::RoutedStream);

impl std::fmt::Debug for InferenceStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InferenceStream").finish_non_exhaustive()
    }
}

/// What the inference capability holds for one plugin.
#[derive(Debug, Clone)]
pub struct InferenceCtx {
    caller: ci::Caller,
    router: RouterCell,
}

impl InferenceCtx {
    /// The context of `caller` on the platform's `router`.
    pub fn new(caller: ci::Caller, router: RouterCell) -> Self {
        Self { caller, router }
    }

    /// Who the plugin is to the router.
    pub fn caller(&self) -> &ci::Caller {
        &self.caller
    }
}

/// A store's view of its plugin's [`InferenceCtx`], with the table that
/// holds its streams.
pub struct InferenceView<'a> {
    /// The plugin's context.
    pub ctx: &'a InferenceCtx,
    /// The graph run the store serves a node call of, if any: its calls
    /// count against the run's budget and add to the node call's usage.
    pub run: Option<&'a ci::RunCaller>,
    /// The store's resource table.
    pub table: &'a mut ResourceTable,
}

impl std::fmt::Debug for InferenceView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InferenceView")
            .field("ctx", &self.ctx)
            .finish_non_exhaustive()
    }
}

struct HasInference;

impl HasData for HasInference {
    type Data<'a> = InferenceView<'a>;
}

/// Add `convergio:platform/inference` to `linker`. Its functions are async:
/// instantiate and call with wasmtime's `_async` methods.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> InferenceView<'_>,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasInference>(linker, get)
}

impl InferenceView<'_> {
    /// The caller of a call made now: the plugin, in the run it serves.
    fn caller(&self) -> std::borrow::Cow<'_, ci::Caller> {
        match self.run {
            None => std::borrow::Cow::Borrowed(&self.ctx.caller),
            Some(run) => std::borrow::Cow::Owned(ci::Caller {
                run: Some(run.clone()),
                ..self.ctx.caller.clone()
            }),
        }
    }

    fn router(&self) -> Result<Arc<ci::Router>, wit_types::ModelError> {
        self.ctx.router.get().cloned().ok_or_else(|| {
            wit_types::ModelError::NoModel(
                "the platform has no inference router yet; it starts once every plugin is loaded"
                    .into(),
            )
        })
    }
}

fn chat_request(request: wit::ChatRequest) -> ci::ChatRequest {
    ci::ChatRequest {
        model: selector(request.model),
        messages: request
            .messages
            .into_iter()
            .map(ci::Message::from_wit)
            .collect(),
        tools: request
            .tools
            .into_iter()
            .map(ci::ToolDefinition::from_wit)
            .collect(),
        sampling: ci::Sampling::from_wit(request.sampling),
        format: ci::ResponseFormat::from_wit(request.format),
    }
}

fn selector(model: wit::ModelSelector) -> ci::ModelSelector {
    match model {
        wit::ModelSelector::Named(name) => ci::ModelSelector::Named(name),
        wit::ModelSelector::Policy((strategy, r)) => ci::ModelSelector::Policy(
            match strategy {
                wit::Strategy::Cheapest => ci::Strategy::Cheapest,
                wit::Strategy::BestQuality => ci::Strategy::BestQuality,
            },
            ci::Requirements {
                tools: r.tools,
                vision: r.vision,
                json_mode: r.json_mode,
                min_context: r.min_context,
                min_quality: r.min_quality.map(ci::QualityTier::from_wit),
                local_only: r.local_only,
            },
        ),
    }
}

impl wit::Host for InferenceView<'_> {
    async fn complete(
        &mut self,
        request: wit::ChatRequest,
    ) -> Result<wit_types::Completion, wit_types::ModelError> {
        let router = self.router()?;
        let caller = self.caller();
        let span = tracing::debug_span!("convergio.inference.complete", plugin = %caller.plugin);
        let _guard = span.enter();
        router
            .complete(&caller, chat_request(request))
            .await
            .map(|c| c.to_wit())
            .map_err(|e| e.to_wit())
    }

    async fn stream(
        &mut self,
        request: wit::ChatRequest,
    ) -> Result<Resource<InferenceStream>, wit_types::ModelError> {
        let router = self.router()?;
        let caller = self.caller().into_owned();
        let stream = router
            .stream(&caller, chat_request(request))
            .await
            .map_err(|e| e.to_wit())?;
        self.table
            .push(InferenceStream(stream))
            .map_err(|e| wit_types::ModelError::Upstream(format!("cannot hold the stream: {e}")))
    }

    async fn embed(
        &mut self,
        model: wit::ModelSelector,
        inputs: Vec<String>,
    ) -> Result<wit_types::Embeddings, wit_types::ModelError> {
        let router = self.router()?;
        let caller = self.caller();
        router
            .embed(&caller, selector(model), inputs)
            .await
            .map(|e| e.to_wit())
            .map_err(|e| e.to_wit())
    }

    async fn models(&mut self) -> Vec<(String, wit_types::ModelInfo)> {
        let Ok(router) = self.router() else {
            return Vec::new();
        };
        router
            .models()
            .await
            .into_iter()
            .map(|(name, info)| (name, info.to_wit()))
            .collect()
    }
}

impl wit::HostCompletionStream for InferenceView<'_> {
    async fn next(
        &mut self,
        stream: Resource<InferenceStream>,
    ) -> Option<Result<wit_types::Delta, wit_types::ModelError>> {
        let stream = match self.table.get_mut(&stream) {
            Ok(s) => s,
            Err(e) => {
                return Some(Err(wit_types::ModelError::BadRequest(format!(
                    "unknown stream: {e}"
                ))));
            }
        };
        stream
            .0
            .next()
            .await
            .map(|item| item.map(|d| d.to_wit()).map_err(|e| e.to_wit()))
    }

    async fn drop(&mut self, stream: Resource<InferenceStream>) -> wasmtime::Result<()> {
        self.table.delete(stream)?;
        Ok(())
    }
}
