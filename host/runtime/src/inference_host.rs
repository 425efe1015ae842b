//! `convergio:platform/inference` for plugins: every call goes through the
//! router, as the calling plugin (its budgets, its metering).

use convergio_cap_inference as ci;
use wasmtime::component::Resource;

use crate::PluginKind;
use crate::host::{HostState, wit_inference as wit, wit_types};
use crate::model_types::{FromWit, ToWit};

/// A routed stream held in a plugin's resource table.
pub struct InferenceStream(ci::RoutedStream);

impl HostState {
    fn router(&self) -> Result<std::sync::Arc<ci::Router>, wit_types::ModelError> {
        self.router.clone().ok_or_else(|| {
            wit_types::ModelError::NoModel(
                "the platform has no inference router yet; it starts once every plugin is loaded"
                    .into(),
            )
        })
    }

    fn caller(&self) -> ci::Caller {
        let agent = matches!(
            self.plugin.manifest.kind,
            PluginKind::Agent | PluginKind::Vertical
        )
        .then(|| self.plugin.id.clone());
        ci::Caller {
            plugin: self.plugin.id.clone(),
            agent,
        }
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
        json_mode: request.json_mode,
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

impl wit::Host for HostState {
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
        let caller = self.caller();
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
        router
            .embed(&self.caller(), selector(model), inputs)
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

impl wit::HostCompletionStream for HostState {
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
