//! `echo_provider`: a provider component with no upstream, to test the host's
//! side of `convergio:platform/provider` (sessions, the stream resource, the
//! router) without HTTP. Provider id `echo`, one model `echo-1`
//! (context 4096, $1 / $2 per million tokens, tools and streaming).
//!
//! `complete` answers `echo: <last user message>`; `stream` sends the same
//! text one word per delta, then a last delta with finish reason and usage
//! (input = words of all messages, output = words of the answer). The model
//! `echo-broken` streams one word and then an `upstream` error.
//!
//! Two last user messages are commands, to test how the host keeps
//! instances: `!calls` answers `calls: N`, where N counts the `complete` and
//! `stream` calls this instance has served (this one included), and `!trap`
//! panics, which traps the instance.

/// Bindings generated from the WIT contract. The export glue that
/// wit-bindgen emits is `unsafe` (raw ABI, `export_name`), so the workspace's
/// `unsafe_code` denial is lifted for this module only.
#[allow(unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "convergio:platform/provider-plugin@0.1.0",
        generate_all,
    });

    use super::Echo;

    export!(Echo);
}

use std::cell::RefCell;
use std::sync::atomic::{AtomicU32, Ordering};

use bindings::convergio::platform::types::{
    Completion, Delta, Embeddings, FinishReason, Message, ModelError, ModelFeatures, ModelInfo,
    QualityTier, Role, Usage,
};
use bindings::exports::convergio::platform::provider::{
    CompletionStream, Guest, GuestCompletionStream, ProviderInfo, ProviderRequest,
};

struct Echo;

/// `complete` and `stream` calls this instance has served.
static CALLS: AtomicU32 = AtomicU32::new(0);

// `!trap` panics on purpose: the host must drop a trapped instance.
#[allow(clippy::panic)]
fn answer(request: &ProviderRequest) -> (String, Usage) {
    let calls = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
    let last = request
        .messages
        .iter()
        .rev()
        .find(|m| matches!(m.role, Role::User))
        .map_or("", |m| m.content.as_str());
    let text = match last {
        "!calls" => format!("calls: {calls}"),
        "!trap" => panic!("asked to trap"),
        _ => format!("echo: {last}"),
    };
    let words = |t: &str| u32::try_from(t.split_whitespace().count()).unwrap_or(u32::MAX);
    let input = request.messages.iter().map(|m| words(&m.content)).sum();
    let usage = Usage {
        input_tokens: input,
        output_tokens: words(&text),
        cost_micro_usd: 0,
    };
    (text, usage)
}

impl Guest for Echo {
    type CompletionStream = Words;

    fn info() -> ProviderInfo {
        ProviderInfo {
            id: "echo".to_owned(),
            name: "Echo (test)".to_owned(),
        }
    }

    fn models() -> Result<Vec<ModelInfo>, ModelError> {
        Ok(["echo-1", "echo-broken"]
            .into_iter()
            .map(|id| ModelInfo {
                id: id.to_owned(),
                context_window: 4096,
                max_output_tokens: Some(256),
                input_price_per_mtok: 1.0,
                output_price_per_mtok: 2.0,
                features: ModelFeatures::TOOLS | ModelFeatures::STREAMING,
                quality: QualityTier::Basic,
                local: false,
            })
            .collect())
    }

    fn complete(request: ProviderRequest) -> Result<Completion, ModelError> {
        let (text, usage) = answer(&request);
        Ok(Completion {
            provider: "echo".to_owned(),
            model: request.model,
            message: Message {
                role: Role::Assistant,
                content: text,
                tool_calls: Vec::new(),
                tool_call_id: None,
            },
            finish_reason: FinishReason::Stop,
            usage,
        })
    }

    fn stream(request: ProviderRequest) -> Result<CompletionStream, ModelError> {
        let (text, usage) = answer(&request);
        let mut words: Vec<String> = text.split(' ').map(|w| format!("{w} ")).collect();
        words.reverse();
        Ok(CompletionStream::new(Words(RefCell::new(State {
            words,
            usage: Some(usage),
            broken: request.model == "echo-broken",
        }))))
    }

    fn embed(_model: String, _inputs: Vec<String>) -> Result<Embeddings, ModelError> {
        Err(ModelError::BadRequest(
            "echo makes no embeddings".to_owned(),
        ))
    }
}

struct State {
    words: Vec<String>,
    usage: Option<Usage>,
    broken: bool,
}

struct Words(RefCell<State>);

impl GuestCompletionStream for Words {
    fn next(&self) -> Option<Result<Delta, ModelError>> {
        let mut state = self.0.borrow_mut();
        if state.broken && state.words.len() < 3 {
            state.usage = None;
            state.words.clear();
            return Some(Err(ModelError::Upstream("connection reset".to_owned())));
        }
        if let Some(word) = state.words.pop() {
            return Some(Ok(Delta {
                content: word,
                tool_calls: Vec::new(),
                finish_reason: None,
                usage: None,
            }));
        }
        state.usage.take().map(|usage| {
            Ok(Delta {
                content: String::new(),
                tool_calls: Vec::new(),
                finish_reason: Some(FinishReason::Stop),
                usage: Some(usage),
            })
        })
    }
}
