//! Local generation through the whole platform against llama.cpp called
//! directly, in one process, with the same model, threads, context and
//! sampling.
//!
//! - **through the platform**: the router → the `provider-local` component
//!   (a warm instance) → `convergio:platform/local-model` in the host →
//!   `LlamaBackend`'s worker thread → llama.cpp; every token crosses the
//!   worker's channel, the host's token stream, the guest's
//!   `completion-stream` and the router's stream.
//! - **direct**: `llama-cpp-2` on this thread: the chat template, one
//!   prompt batch, then sample → piece → decode per token, as a program
//!   that embeds llama.cpp would.
//!
//! Rounds alternate between the paths (each round runs both, in turn
//! first). Reported: generation speed (tokens
//! per second from the first token to the last, greedy, a fixed number of
//! tokens), and time to first token through the platform with a system
//! prompt its worker has evaluated before (cached) and one it has not.
//! Issue target: the platform's tokens per second at least 97% of direct.
//!
//! Run: `cargo bench -p convergio-benches --bench local_model` (after
//! `cargo xtask build-components --release`; `cargo xtask setup` fetches the
//! model). Under `cargo test` (no `--bench` argument) it runs one short
//! round of each as a smoke test.

// A benchmark's setup should fail loudly; there is no caller to return an error to.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use convergio_runtime::inference::{
    Caller, ChatRequest, Message, ModelSelector, Role, Router, Sampling,
};
use convergio_runtime::local_models::{ModelStore, llama_backend};
use convergio_tests::{TestPlugin, bench_crate_component, start, test_model};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;

/// Threads for llama.cpp on both paths (the machine's two cores).
const THREADS: u32 = 2;
/// Context length on both paths.
const CONTEXT: u32 = 2048;

/// Tokens a round generates, rounds per path, system prompt paragraphs
/// (each about 110 tokens), and time-to-first-token calls per case.
struct Plan {
    max_tokens: u32,
    rounds: usize,
    paragraphs: usize,
    ttft_calls: usize,
}

const BENCH: Plan = Plan {
    max_tokens: 128,
    rounds: 40,
    paragraphs: 6,
    ttft_calls: 20,
};

const SMOKE: Plan = Plan {
    max_tokens: 8,
    rounds: 1,
    paragraphs: 1,
    ttft_calls: 2,
};

/// What one generation measured.
struct Run {
    /// Request to first piece of text.
    first: Duration,
    /// First piece to last piece.
    first_to_last: Duration,
    tokens: u32,
    text: String,
}

impl Run {
    /// Generation speed: the tokens after the first over the time they took.
    fn tokens_per_second(&self) -> f64 {
        f64::from(self.tokens.saturating_sub(1)) / self.first_to_last.as_secs_f64()
    }
}

/// A tutor's system prompt of `paragraphs` paragraphs, opened by `opening`
/// (a different opening makes a prompt the worker has not seen).
fn system_prompt(opening: &str, paragraphs: usize) -> String {
    let paragraph = "You are a patient tutor for secondary school students. Explain each idea in \
        plain words, one step at a time, and check that the student follows before moving on. \
        When the student makes a mistake, say what is right in their answer first, then show \
        where it went wrong and ask a question that leads them to the fix. Prefer short \
        examples from everyday life, name the units of every quantity, and never give the \
        final answer to a graded exercise; give a hint instead. ";
    let mut prompt = format!("{opening}\n");
    for _ in 0..paragraphs {
        prompt.push_str(paragraph);
    }
    prompt
}

/// The platform's path: one streamed chat through the router.
async fn through_platform(router: &Router, messages: Vec<Message>, max_tokens: u32) -> Run {
    let caller = Caller {
        plugin: "bench".into(),
        agent: None,
        run: None,
    };
    let request = ChatRequest {
        sampling: Sampling {
            temperature: Some(0.0),
            max_tokens: Some(max_tokens),
            ..Sampling::default()
        },
        ..ChatRequest::new(ModelSelector::Named("local/smollm2".into()), messages)
    };
    let started = Instant::now();
    let mut stream = router.stream(&caller, request).await.expect("stream");
    let (mut first, mut last) = (None, started);
    let mut text = String::new();
    let mut tokens = 0;
    while let Some(delta) = stream.next().await {
        let delta = delta.expect("delta");
        if !delta.content.is_empty() {
            let now = Instant::now();
            first.get_or_insert(now);
            last = now;
            text.push_str(&delta.content);
        }
        if let Some(usage) = delta.usage {
            tokens = usage.output_tokens;
        }
    }
    let first = first.expect("the platform produced no text");
    Run {
        first: first - started,
        first_to_last: last - first,
        tokens,
        text,
    }
}

/// The direct path: llama.cpp through `llama-cpp-2` on this thread.
struct Direct {
    model: &'static LlamaModel,
    ctx: LlamaContext<'static>,
}

impl Direct {
    fn new(path: &std::path::Path) -> Self {
        let backend = llama_backend().expect("llama.cpp");
        let model = LlamaModel::load_from_file(backend, path, &LlamaModelParams::default())
            .expect("load the model");
        // The bench keeps the model for the whole process.
        let model: &'static LlamaModel = Box::leak(Box::new(model));
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(CONTEXT))
            .with_n_batch(512)
            .with_n_threads(THREADS as i32)
            .with_n_threads_batch(THREADS as i32);
        let ctx = model.new_context(backend, params).expect("context");
        Self { model, ctx }
    }

    fn generate(&mut self, messages: &[(&str, &str)], max_tokens: u32) -> Run {
        let started = Instant::now();
        let template = self.model.chat_template(None).expect("chat template");
        let chat: Vec<LlamaChatMessage> = messages
            .iter()
            .map(|(role, content)| {
                LlamaChatMessage::new((*role).into(), (*content).into()).expect("message")
            })
            .collect();
        let prompt = self
            .model
            .apply_chat_template(&template, &chat, true)
            .expect("apply the template");
        let vocab = self.model.vocab();
        let tokens = vocab.tokenize(prompt.as_bytes(), false, true);
        self.ctx.clear_kv_cache();
        let mut batch = LlamaBatch::new(512, 1);
        let last_index = tokens.len() - 1;
        for (i, token) in tokens.iter().enumerate() {
            batch
                .add(*token, i as i32, &[0], i == last_index)
                .expect("batch");
        }
        self.ctx.decode(&mut batch).expect("decode the prompt");
        let mut sampler = LlamaSampler::greedy();
        let mut logits_at = batch.n_tokens() - 1;
        let mut position = tokens.len() as i32;
        let (mut first, mut last) = (None, started);
        let mut bytes = Vec::new();
        let mut produced = 0;
        while produced < max_tokens {
            let token = sampler.sample(&self.ctx, logits_at);
            if vocab.is_eog(token) {
                break;
            }
            produced += 1;
            bytes.extend_from_slice(&vocab.token_to_piece(token, false, None));
            let now = Instant::now();
            first.get_or_insert(now);
            last = now;
            if produced == max_tokens {
                break;
            }
            batch.clear();
            batch.add(token, position, &[0], true).expect("batch");
            self.ctx.decode(&mut batch).expect("decode");
            position += 1;
            logits_at = 0;
        }
        let first = first.expect("llama.cpp produced no token");
        Run {
            first: first - started,
            first_to_last: last - first,
            tokens: produced,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn millis(values: Vec<Duration>) -> String {
    let median = median(values.iter().map(Duration::as_secs_f64).collect());
    format!("{:.1} ms", median * 1e3)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let plan = if std::env::args().any(|a| a == "--bench") {
        BENCH
    } else {
        SMOKE
    };
    let model = test_model();
    let dir = tempfile::tempdir().expect("temp dir");
    ModelStore::open(dir.path().join("platform-data/models"))
        .expect("model store")
        .pull(
            model.to_str().expect("utf-8 path"),
            Some("smollm2"),
            None,
            &mut |_| {},
        )
        .expect("pull the test model");
    let plugin = TestPlugin::new(
        "local",
        "provider",
        bench_crate_component("convergio_provider_local"),
    )
    .declares(&["local-model"])
    .grants("models = [\"smollm2\"]");
    let settings = format!(
        "[inference]\nzero-cloud = true\n\n[local-models]\nthreads = {THREADS}\ncontext-length = {CONTEXT}\nworkers = 1\n"
    );
    let runtime = start(dir.path(), &settings, &[plugin]).await;
    let router = runtime.router().expect("router");
    let mut direct = Direct::new(&model);

    // Generation speed: the same greedy chat on both paths, alternating.
    let question = "Write a long essay about the history of Paris, from the Romans to today.";
    let (mut platform_runs, mut direct_runs) = (Vec::new(), Vec::new());
    for round in 0..=plan.rounds {
        let platform = || {
            through_platform(
                &router,
                vec![Message::text(Role::User, question)],
                plan.max_tokens,
            )
        };
        let mut plain = || {
            tokio::task::block_in_place(|| direct.generate(&[("user", question)], plan.max_tokens))
        };
        // Every other round the direct path goes first, so neither path
        // always runs right after the other.
        let (platform, plain) = if round % 2 == 0 {
            let platform = platform().await;
            (platform, plain())
        } else {
            let plain = plain();
            (platform().await, plain)
        };
        // Round 0 loads the model and warms caches up.
        if round > 0 {
            platform_runs.push(platform);
            direct_runs.push(plain);
        }
    }
    let same_text = platform_runs
        .iter()
        .zip(&direct_runs)
        .filter(|(a, b)| a.text == b.text)
        .count();
    let platform_rate = median(platform_runs.iter().map(Run::tokens_per_second).collect());
    let direct_rate = median(direct_runs.iter().map(Run::tokens_per_second).collect());
    // Each round's two runs were measured back to back: their ratio is free
    // of the machine's slower drifts.
    let mut ratios: Vec<f64> = platform_runs
        .iter()
        .zip(&direct_runs)
        .map(|(p, d)| p.tokens_per_second() / d.tokens_per_second())
        .collect();
    ratios.sort_by(f64::total_cmp);
    let quartile = |q: usize| 100.0 * ratios[(ratios.len() - 1) * q / 4];
    println!(
        "generation: SmolLM2-135M Q4_1, greedy, {} tokens, {THREADS} threads, context {CONTEXT}, {} rounds per path, alternating",
        plan.max_tokens, plan.rounds
    );
    println!("| path | tokens/s (median) | tokens per round | first token |\n|---|---|---|---|");
    for (name, runs, rate) in [
        ("through the platform", &platform_runs, platform_rate),
        ("llama-cpp-2 directly", &direct_runs, direct_rate),
    ] {
        println!(
            "| {name} | {rate:.1} | {} | {} |",
            runs[0].tokens,
            millis(runs.iter().map(|r| r.first).collect())
        );
    }
    println!(
        "platform / direct: {:.1}% of the medians; per round {:.1}% (quartiles {:.1}% – {:.1}%); target ≥ 97%",
        100.0 * platform_rate / direct_rate,
        quartile(2),
        quartile(1),
        quartile(3),
    );
    println!(
        "the same text on both paths in {same_text} of {} rounds",
        platform_runs.len()
    );

    // Time to first token through the platform: a system prompt the worker's
    // context has evaluated before, and one it has not.
    let system = system_prompt("You are Convergio's tutor.", plan.paragraphs);
    let ask = |system: &str, i: usize| {
        vec![
            Message::text(Role::System, system),
            Message::text(Role::User, format!("Question {i}: what is a fraction?")),
        ]
    };
    // The first call evaluates the system prompt; later ones reuse it.
    through_platform(&router, ask(&system, 0), 1).await;
    let mut cached = Vec::new();
    for i in 1..=plan.ttft_calls {
        cached.push(through_platform(&router, ask(&system, i), 1).await.first);
    }
    let mut uncached = Vec::new();
    for i in 1..=plan.ttft_calls {
        let fresh = system_prompt(&format!("Session {i}."), plan.paragraphs);
        uncached.push(through_platform(&router, ask(&fresh, i), 1).await.first);
    }
    let prompt_tokens = {
        let template = direct.model.chat_template(None).expect("template");
        let chat = [
            LlamaChatMessage::new("system".into(), system.clone()).expect("message"),
            LlamaChatMessage::new("user".into(), "Question 1: what is a fraction?".into())
                .expect("message"),
        ];
        let prompt = direct
            .model
            .apply_chat_template(&template, &chat, true)
            .expect("template");
        direct
            .model
            .vocab()
            .tokenize(prompt.as_bytes(), false, true)
            .len()
    };
    println!(
        "time to first token through the platform, a {prompt_tokens}-token prompt, {} calls each",
        plan.ttft_calls
    );
    println!("| system prompt | first token (median) |\n|---|---|");
    println!(
        "| cached (evaluated by the worker before) | {} |",
        millis(cached)
    );
    println!("| uncached | {} |", millis(uncached));
}
