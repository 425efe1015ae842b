//! `convergio-provider-local`: the host's local models as a Convergio
//! provider (`convergio:platform/provider`), so the router treats a model on
//! this machine like any other.
//!
//! Every call goes to `convergio:platform/local-model`, which the host
//! implements natively (llama.cpp in-process, an Ollama server); this
//! component only maps types. Models are the ones the operator granted the
//! plugin (`models = [...]`), declared free (local), with the context length
//! of the model file, streaming and embeddings.

use std::cell::RefCell;

mod tools;

use convergio_sdk::local_model::{self, Generation, LocalModelError, LocalModelInfo, TokenStream};
use convergio_sdk::provider::{
    self, Completion, CompletionStream, Delta, Embeddings, FinishReason, Guest,
    GuestCompletionStream, Message, ModelError, ModelFeatures, ModelInfo, ProviderInfo,
    ProviderRequest, QualityTier, Role, Usage,
};

/// The provider id: models are `local/<name>` in the router.
pub const PROVIDER_ID: &str = "local";

/// The component.
#[derive(Debug)]
pub struct Local;

/// A local model as the router sees it.
pub fn model_info(model: &LocalModelInfo) -> ModelInfo {
    ModelInfo {
        id: model.name.clone(),
        context_window: model.context_length,
        max_output_tokens: None,
        input_price_per_mtok: 0.0,
        output_price_per_mtok: 0.0,
        // JSON answers are grammar-constrained (llama.cpp) or the server's
        // structured output (Ollama).
        // Tool calls too, the same way (see `tools`).
        features: if model.embedding_length > 0 {
            ModelFeatures::STREAMING
                | ModelFeatures::JSON_MODE
                | ModelFeatures::TOOLS
                | ModelFeatures::EMBEDDINGS
        } else {
            ModelFeatures::STREAMING | ModelFeatures::JSON_MODE | ModelFeatures::TOOLS
        },
        quality: QualityTier::Basic,
        local: true,
    }
}

/// A local-model error as a model error the router understands: a missing
/// model is `no-model` (the router may fall back), a prompt too long is
/// `context-length-exceeded`, a refused grant `access-denied`, bad sampling
/// `bad-request`, a backend failure `upstream` (retryable).
pub fn model_error(error: LocalModelError) -> ModelError {
    match error {
        LocalModelError::NotFound(m) => ModelError::NoModel(m),
        LocalModelError::LoadFailed(m) => {
            ModelError::Upstream(format!("the model cannot be loaded: {m}"))
        }
        LocalModelError::ContextOverflow(m) => ModelError::ContextLengthExceeded(m),
        LocalModelError::InvalidInput(m) => ModelError::BadRequest(m),
        LocalModelError::AccessDenied(m) => ModelError::AccessDenied(m),
        LocalModelError::Backend(m) => ModelError::Upstream(m),
    }
}

/// Why a generation ended.
pub fn finish_reason(generation: &Generation) -> FinishReason {
    if generation.stopped {
        FinishReason::Stop
    } else {
        FinishReason::Length
    }
}

/// Streams carry text only: a request with tools is answered whole, by
/// `complete`.
fn check_stream(request: &ProviderRequest) -> provider::Result<()> {
    if !request.tools.is_empty() {
        return Err(ModelError::BadRequest(
            "local models call tools through `complete`, not streams: a tool call is read from the whole answer".into(),
        ));
    }
    Ok(())
}

/// A completion with tools: the model writes a tool call or the answer as
/// JSON under a grammar, read back into the completion.
fn complete_with_tools(request: ProviderRequest) -> provider::Result<Completion> {
    let (messages, format) = tools::prepare(&request).map_err(ModelError::BadRequest)?;
    let generation = local_model::generate(&request.model, &messages, &request.sampling, &format)
        .map_err(model_error)?;
    let calls_so_far = request
        .messages
        .iter()
        .map(|m| m.tool_calls.len())
        .sum::<usize>();
    let reply = tools::read(&generation.text, &request.format, calls_so_far)
        .map_err(ModelError::MalformedResponse)?;
    let (content, tool_calls, finish_reason) = match reply {
        tools::Reply::Call(call) => (String::new(), vec![call], FinishReason::ToolCalls),
        tools::Reply::Answer(text) => (text, Vec::new(), finish_reason(&generation)),
    };
    Ok(Completion {
        provider: PROVIDER_ID.to_owned(),
        model: request.model,
        finish_reason,
        message: Message {
            role: Role::Assistant,
            content,
            tool_calls,
            tool_call_id: None,
        },
        usage: generation.usage,
    })
}

impl Guest for Local {
    type CompletionStream = Tokens;

    fn info() -> ProviderInfo {
        ProviderInfo {
            id: PROVIDER_ID.to_owned(),
            name: "Local models".to_owned(),
        }
    }

    fn models() -> provider::Result<Vec<ModelInfo>> {
        Ok(local_model::list().iter().map(model_info).collect())
    }

    fn complete(request: ProviderRequest) -> provider::Result<Completion> {
        if !request.tools.is_empty() {
            return complete_with_tools(request);
        }
        let generation = local_model::generate(
            &request.model,
            &request.messages,
            &request.sampling,
            &request.format,
        )
        .map_err(model_error)?;
        Ok(Completion {
            provider: PROVIDER_ID.to_owned(),
            model: request.model,
            finish_reason: finish_reason(&generation),
            message: Message {
                role: Role::Assistant,
                content: generation.text,
                tool_calls: Vec::new(),
                tool_call_id: None,
            },
            usage: generation.usage,
        })
    }

    fn stream(request: ProviderRequest) -> provider::Result<CompletionStream> {
        check_stream(&request)?;
        let tokens = local_model::generate_stream(
            &request.model,
            &request.messages,
            &request.sampling,
            &request.format,
        )
        .map_err(model_error)?;
        Ok(CompletionStream::new(Tokens(RefCell::new(Some(tokens)))))
    }

    fn embed(model: String, inputs: Vec<String>) -> provider::Result<Embeddings> {
        let vectors = local_model::embed(&model, &inputs).map_err(model_error)?;
        // `local-model` does not count embedding tokens, and local models
        // cost nothing: the usage stays zero rather than an estimate.
        Ok(Embeddings {
            model,
            vectors,
            usage: Usage {
                input_tokens: 0,
                output_tokens: 0,
                cost_micro_usd: 0,
            },
        })
    }
}

/// The `completion-stream` resource: text deltas as the host produces them,
/// then one last delta with the finish reason and usage.
#[derive(Debug)]
pub struct Tokens(RefCell<Option<TokenStream>>);

impl GuestCompletionStream for Tokens {
    fn next(&self) -> Option<provider::Result<Delta>> {
        let mut slot = self.0.borrow_mut();
        let tokens = slot.as_ref()?;
        match tokens.next() {
            Some(Ok(text)) => Some(Ok(Delta {
                content: text,
                tool_calls: Vec::new(),
                finish_reason: None,
                usage: None,
            })),
            Some(Err(e)) => {
                *slot = None;
                Some(Err(model_error(e)))
            }
            None => {
                let finished = tokens.finished();
                *slot = None;
                let generation = finished?;
                Some(Ok(Delta {
                    content: String::new(),
                    tool_calls: Vec::new(),
                    finish_reason: Some(finish_reason(&generation)),
                    usage: Some(generation.usage),
                }))
            }
        }
    }
}

// Native builds (the unit tests) cannot link the component's export symbols.
#[cfg(target_arch = "wasm32")]
convergio_sdk::export_provider!(Local);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_model_is_free_local_and_streams() {
        let info = model_info(&LocalModelInfo {
            name: "smollm2".into(),
            size_bytes: 1,
            quantization: "Q4_1".into(),
            context_length: 8192,
            embedding_length: 576,
            sha256: String::new(),
            loaded: false,
        });
        assert!(info.local);
        assert_eq!(info.context_window, 8192);
        assert_eq!(info.input_price_per_mtok, 0.0);
        assert!(
            info.features
                .contains(ModelFeatures::STREAMING | ModelFeatures::EMBEDDINGS)
        );
    }

    #[test]
    fn errors_map_to_what_the_router_acts_on() {
        assert!(matches!(
            model_error(LocalModelError::NotFound("x".into())),
            ModelError::NoModel(_)
        ));
        assert!(matches!(
            model_error(LocalModelError::ContextOverflow("x".into())),
            ModelError::ContextLengthExceeded(_)
        ));
        assert!(matches!(
            model_error(LocalModelError::Backend("x".into())),
            ModelError::Upstream(_)
        ));
    }
}
