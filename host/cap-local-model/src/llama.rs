//! [`LlamaBackend`]: GGUF models from the [`ModelStore`], run in-process by
//! llama.cpp (through the `llama-cpp-2` crate).
//!
//! Each loaded model has worker threads (`workers`, default 1), each owning
//! one llama.cpp context. A worker keeps the tokens its context has
//! evaluated: the next prompt that starts the same way (the same system
//! prompt, or the conversation so far) evaluates only what is new. Requests
//! queue for a free worker, so any number of concurrent requests complete
//! with the model in memory once. A model whose workers stay idle for
//! `idle_unload` is unloaded; loading a model that would take the loaded
//! total past `max_loaded_bytes` first unloads the least recently used idle
//! models.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use convergio_cap_inference::{Message, ResponseFormat, Role, Sampling, Usage};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::{LlamaContextParams, LlamaPoolingType};
use llama_cpp_2::llama_backend::LlamaBackend as Llama;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use tokio::sync::{mpsc as tmpsc, oneshot};

use crate::backend::{Backend, BoxFuture, Event, Events, GenerateRequest, Generation};
use crate::{Error, LocalModelInfo, ModelStore, Result, grammar};

/// How [`LlamaBackend`] runs models.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlamaOptions {
    /// Threads llama.cpp uses per generation (default: the machine's cores).
    pub threads: Option<u32>,
    /// Context length of each worker, in tokens (default 4096; never more
    /// than the model was trained for).
    pub context_length: u32,
    /// Concurrent generations per model (each has its own context and
    /// prompt cache; default 1).
    pub workers: usize,
    /// A model idle this long is unloaded (default 5 minutes).
    pub idle_unload: Duration,
    /// Most bytes of model files loaded at once (default: unlimited).
    pub max_loaded_bytes: Option<u64>,
}

impl Default for LlamaOptions {
    fn default() -> Self {
        Self {
            threads: None,
            context_length: 4096,
            workers: 1,
            idle_unload: Duration::from_secs(300),
            max_loaded_bytes: None,
        }
    }
}

/// Local GGUF models in llama.cpp.
pub struct LlamaBackend {
    store: Arc<ModelStore>,
    options: LlamaOptions,
    loaded: Arc<Mutex<HashMap<String, Arc<Loaded>>>>,
    /// Models loaded from disk so far (a reload after an unload counts again).
    loads: Arc<AtomicU64>,
    /// One load at a time, so concurrent first calls load a model once.
    load_lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for LlamaBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlamaBackend")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// A model in memory: the queue its workers serve.
struct Loaded {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    size_bytes: u64,
    last_used: Mutex<Instant>,
    in_flight: AtomicUsize,
}

/// Work for a model's workers.
enum Job {
    Generate {
        messages: Vec<Message>,
        sampling: Sampling,
        /// A GBNF grammar (rule `root`) the answer must follow.
        grammar: Option<String>,
        /// Answered once the prompt is evaluated (or refused).
        started: oneshot::Sender<Result<()>>,
        events: tmpsc::Sender<Result<Event>>,
    },
    Embed {
        inputs: Vec<String>,
        reply: oneshot::Sender<Result<Vec<Vec<f32>>>>,
    },
}

/// The process's llama.cpp backend. llama.cpp can be initialized only once
/// per process, so code that calls `llama-cpp-2` beside this crate (a
/// benchmark's direct baseline) takes its backend from here too.
pub fn llama_backend() -> Result<&'static Llama> {
    static BACKEND: OnceLock<std::result::Result<Llama, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            Llama::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| Error::Backend(format!("llama.cpp cannot start: {e}")))
}

impl LlamaBackend {
    /// A backend serving the models of `store`.
    pub fn new(store: Arc<ModelStore>, options: LlamaOptions) -> Self {
        Self {
            store,
            options,
            loaded: Arc::default(),
            loads: Arc::default(),
            load_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// How many times a model file was loaded into memory: once per model
    /// while it stays loaded, however many calls and plugins use it.
    pub fn loads(&self) -> u64 {
        self.loads.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Loaded>>> {
        self.loaded.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queue `job` for `name`, loading the model first if it is not in memory.
    async fn submit(&self, name: &str, job: Job) -> Result<()> {
        let job = match self.try_send(name, job) {
            Ok(()) => return Ok(()),
            Err(job) => *job,
        };
        self.load(name).await?;
        self.try_send(name, job).map_err(|_| {
            Error::Backend(format!(
                "model `{name}` was unloaded while a request waited for it; try again"
            ))
        })
    }

    /// Send to a loaded model's workers; gives the job back if it is not loaded.
    fn try_send(&self, name: &str, job: Job) -> std::result::Result<(), Box<Job>> {
        let models = self.lock();
        let Some(model) = models.get(name) else {
            return Err(Box::new(job));
        };
        *model
            .last_used
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Instant::now();
        let jobs = model.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        match jobs.as_ref() {
            Some(sender) => sender
                .send(job)
                .map_err(|mpsc::SendError(job)| Box::new(job)),
            None => Err(Box::new(job)),
        }
    }

    /// Verify and load `name`, and start its workers.
    async fn load(&self, name: &str) -> Result<()> {
        let store = Arc::clone(&self.store);
        let (name, options, loaded) = (
            name.to_owned(),
            self.options.clone(),
            Arc::clone(&self.loaded),
        );
        let loads = Arc::clone(&self.loads);
        let _one_at_a_time = self.load_lock.lock().await;
        tokio::task::spawn_blocking(move || {
            let fresh = load_blocking(&store, &name, &options, &loaded)?;
            if fresh {
                loads.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        })
        .await
        .map_err(|e| Error::Backend(format!("loading the model failed: {e}")))?
    }
}

fn load_blocking(
    store: &ModelStore,
    name: &str,
    options: &LlamaOptions,
    loaded: &Arc<Mutex<HashMap<String, Arc<Loaded>>>>,
) -> Result<bool> {
    if loaded
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .contains_key(name)
    {
        return Ok(false);
    }
    // Checks the sha256 and the GGUF header: a corrupt or changed file is never loaded.
    let stored = store.verify(name)?;
    make_room(loaded, options, stored.size_bytes);
    let started = Instant::now();
    let model =
        LlamaModel::load_from_file(llama_backend()?, &stored.path, &LlamaModelParams::default())
            .map_err(|e| {
                Error::LoadFailed(format!(
                    "llama.cpp cannot load model `{name}` from {}: {e}",
                    stored.path.display()
                ))
            })?;
    let model = Arc::new(model);
    tracing::info!(
        model = name,
        ms = started.elapsed().as_millis() as u64,
        "local model loaded"
    );

    let (sender, receiver) = mpsc::channel::<Job>();
    let receiver = Arc::new(Mutex::new(receiver));
    let entry = Arc::new(Loaded {
        jobs: Mutex::new(Some(sender)),
        size_bytes: stored.size_bytes,
        last_used: Mutex::new(Instant::now()),
        in_flight: AtomicUsize::new(0),
    });
    let mut models = loaded.lock().unwrap_or_else(PoisonError::into_inner);
    if models.contains_key(name) {
        // Another request loaded it meanwhile; this copy is dropped.
        return Ok(false);
    }
    let workers = options.workers.max(1);
    let live = Arc::new(AtomicUsize::new(workers));
    for index in 0..workers {
        let worker = Worker {
            name: name.to_owned(),
            model: Arc::clone(&model),
            jobs: Arc::clone(&receiver),
            entry: Arc::clone(&entry),
            registry: Arc::clone(loaded),
            live: Arc::clone(&live),
            options: options.clone(),
        };
        std::thread::Builder::new()
            .name(format!("llama-{name}-{index}"))
            .spawn(move || worker.run())
            .map_err(|e| Error::Backend(format!("cannot start a worker thread: {e}")))?;
    }
    models.insert(name.to_owned(), entry);
    Ok(true)
}

/// Unload least recently used idle models until `incoming` more bytes fit
/// under `max_loaded_bytes`.
fn make_room(loaded: &Mutex<HashMap<String, Arc<Loaded>>>, options: &LlamaOptions, incoming: u64) {
    let Some(limit) = options.max_loaded_bytes else {
        return;
    };
    let mut models = loaded.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        let total: u64 = models.values().map(|m| m.size_bytes).sum();
        if total + incoming <= limit {
            return;
        }
        let idle = models
            .iter()
            .filter(|(_, m)| m.in_flight.load(Ordering::Acquire) == 0)
            .min_by_key(|(_, m)| *m.last_used.lock().unwrap_or_else(PoisonError::into_inner))
            .map(|(name, _)| name.clone());
        let Some(name) = idle else {
            tracing::warn!(
                limit,
                total,
                incoming,
                "every loaded model is busy; loading past max-loaded-bytes"
            );
            return;
        };
        if let Some(model) = models.remove(&name) {
            // Workers finish what is queued, then see the queue closed and exit.
            model
                .jobs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            tracing::info!(model = %name, "local model unloaded to make room");
        }
    }
}

/// One worker thread of a loaded model.
struct Worker {
    name: String,
    model: Arc<LlamaModel>,
    jobs: Arc<Mutex<mpsc::Receiver<Job>>>,
    entry: Arc<Loaded>,
    registry: Arc<Mutex<HashMap<String, Arc<Loaded>>>>,
    live: Arc<AtomicUsize>,
    options: LlamaOptions,
}

/// A context with the tokens its KV cache holds (sequence 0).
struct Cached<'m> {
    ctx: LlamaContext<'m>,
    tokens: Vec<LlamaToken>,
}

impl Worker {
    fn run(self) {
        let model: &LlamaModel = &self.model;
        let mut chat: Option<Cached<'_>> = None;
        let mut embed: Option<LlamaContext<'_>> = None;
        while let Some(job) = self.next_job() {
            self.entry.in_flight.fetch_add(1, Ordering::AcqRel);
            match job {
                Job::Generate {
                    messages,
                    sampling,
                    grammar,
                    started,
                    events,
                } => {
                    let cached = match chat.take() {
                        Some(cached) => Ok(cached),
                        None => self.chat_context(model).map(|ctx| Cached {
                            ctx,
                            tokens: Vec::new(),
                        }),
                    };
                    match cached {
                        Ok(mut cached) => {
                            if generate(
                                model,
                                &mut cached,
                                &messages,
                                &sampling,
                                grammar.as_deref(),
                                started,
                                &events,
                            )
                            .is_ok()
                            {
                                chat = Some(cached);
                            }
                            // After a failure the context's state is unknown: a new one next time.
                        }
                        Err(e) => {
                            let _ = started.send(Err(e));
                        }
                    }
                }
                Job::Embed { inputs, reply } => {
                    let ctx = match embed.take() {
                        Some(ctx) => Ok(ctx),
                        None => self.embed_context(model),
                    };
                    let result = ctx.and_then(|mut ctx| {
                        let vectors = embed_all(model, &mut ctx, &inputs);
                        if vectors.is_ok() {
                            embed = Some(ctx);
                        }
                        vectors
                    });
                    let _ = reply.send(result);
                }
            }
            self.entry.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// The next job; `None` when the model is unloaded (queue closed) or idle
    /// for `idle_unload` (then this worker is the one to go, and the last
    /// worker to go removes the model).
    fn next_job(&self) -> Option<Job> {
        let waited = self
            .jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .recv_timeout(self.options.idle_unload);
        match waited {
            Ok(job) => Some(job),
            Err(RecvTimeoutError::Disconnected) => None,
            Err(RecvTimeoutError::Timeout) => {
                // Under the registry lock no job can be queued, so none is lost.
                let mut models = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
                // If another worker holds the queue it is waiting on it, alive,
                // and gets any job; never wait for it while holding the registry.
                if let Ok(jobs) = self.jobs.try_lock()
                    && let Ok(job) = jobs.try_recv()
                {
                    return Some(job);
                }
                if self.live.fetch_sub(1, Ordering::AcqRel) == 1 {
                    if models
                        .get(&self.name)
                        .is_some_and(|m| Arc::ptr_eq(m, &self.entry))
                    {
                        models.remove(&self.name);
                    }
                    tracing::info!(model = %self.name, "local model unloaded after being idle");
                }
                None
            }
        }
    }

    fn threads(&self) -> i32 {
        let threads = self.options.threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(1))
        });
        i32::try_from(threads.max(1)).unwrap_or(1)
    }

    fn n_ctx(&self, model: &LlamaModel) -> u32 {
        let trained = model.n_ctx_train();
        let wanted = self.options.context_length.max(64);
        if trained == 0 {
            wanted
        } else {
            wanted.min(trained)
        }
    }

    fn chat_context<'m>(&self, model: &'m LlamaModel) -> Result<LlamaContext<'m>> {
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(self.n_ctx(model)))
            .with_n_batch(512)
            .with_n_threads(self.threads())
            .with_n_threads_batch(self.threads());
        model
            .new_context(llama_backend()?, params)
            .map_err(|e| Error::Backend(format!("llama.cpp cannot create a context: {e}")))
    }

    fn embed_context<'m>(&self, model: &'m LlamaModel) -> Result<LlamaContext<'m>> {
        let n_ctx = self.n_ctx(model);
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(n_ctx))
            .with_n_batch(n_ctx)
            .with_n_ubatch(n_ctx)
            .with_n_threads(self.threads())
            .with_n_threads_batch(self.threads())
            .with_embeddings(true)
            .with_pooling_type(LlamaPoolingType::Mean);
        model.new_context(llama_backend()?, params).map_err(|e| {
            Error::Backend(format!("llama.cpp cannot create an embedding context: {e}"))
        })
    }
}

/// The chat rendered with the model's own template (ChatML if it has none).
fn render(model: &LlamaModel, messages: &[Message]) -> Result<String> {
    if messages.is_empty() {
        return Err(Error::InvalidInput("the request has no messages".into()));
    }
    let template = match model.chat_template(None) {
        Ok(template) => template,
        Err(_) => LlamaChatTemplate::new("chatml")
            .map_err(|e| Error::Backend(format!("chat template: {e}")))?,
    };
    let chat = messages
        .iter()
        .map(|m| {
            let role = match m.role {
                Role::System => "system",
                Role::User => "user",
                Role::Assistant => "assistant",
                Role::Tool => "tool",
            };
            LlamaChatMessage::new(role.to_owned(), m.content.clone()).map_err(|e| {
                Error::InvalidInput(format!("a message cannot be passed to llama.cpp: {e}"))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    model
        .apply_chat_template(&template, &chat, true)
        .map_err(|e| Error::Backend(format!("applying the model's chat template failed: {e}")))
}

/// How the tokens of one answer are chosen: the sampling chain for
/// `sampling`, under a grammar when there is one.
struct Sampler {
    choose: LlamaSampler,
    grammar: Option<LlamaSampler>,
}

impl Sampler {
    fn new(model: &LlamaModel, sampling: &Sampling, grammar: Option<&str>) -> Result<Self> {
        let grammar = match grammar {
            Some(grammar) => Some(LlamaSampler::grammar(model, grammar, "root").map_err(|e| {
                Error::InvalidInput(format!("llama.cpp refused the answer's grammar: {e}"))
            })?),
            None => None,
        };
        Ok(Self {
            choose: choose(sampling)?,
            grammar,
        })
    }

    /// The next token, from the logits of batch position `at`, accepted
    /// into the samplers' state. Under a grammar the token is first chosen
    /// freely and only that one token is put to the grammar; the grammar
    /// filters the whole vocabulary only when it refuses it (as llama.cpp's
    /// own common sampler does), so a model that writes the form asked for
    /// is not checked against it candidate by candidate.
    fn sample(&mut self, ctx: &LlamaContext<'_>, at: i32) -> LlamaToken {
        let Some(grammar) = &mut self.grammar else {
            // `sample` also accepts the token into the chain's state.
            return self.choose.sample(ctx, at);
        };
        let mut all = ctx.token_data_array_ith(at);
        all.apply_sampler(&mut self.choose);
        let free = all.selected_token();
        let allowed = free.is_some_and(|token| {
            let mut one =
                LlamaTokenDataArray::new(vec![LlamaTokenData::new(token, 0.0, 0.0)], false);
            one.apply_sampler(grammar);
            one.data.first().is_some_and(|d| d.logit().is_finite())
        });
        let token = match free {
            Some(token) if allowed => token,
            _ => {
                let mut all = ctx.token_data_array_ith(at);
                all.apply_sampler(grammar);
                all.apply_sampler(&mut self.choose);
                all.selected_token().unwrap_or(LlamaToken::new(0))
            }
        };
        grammar.accept(token);
        self.choose.accept(token);
        token
    }
}

/// How the next token is chosen from the candidates.
fn choose(sampling: &Sampling) -> Result<LlamaSampler> {
    let temperature = sampling.temperature.unwrap_or(0.8);
    if !(temperature.is_finite() && temperature >= 0.0) {
        return Err(Error::InvalidInput(format!(
            "temperature {temperature} is not a number of 0 or more"
        )));
    }
    if let Some(p) = sampling.top_p
        && !(p > 0.0 && p <= 1.0)
    {
        return Err(Error::InvalidInput(format!("top-p {p} is not in (0, 1]")));
    }
    if temperature == 0.0 {
        return Ok(LlamaSampler::greedy());
    }
    let seed = sampling.seed.map_or(u32::MAX, |seed| {
        // Fold the 64-bit seed into llama.cpp's 32 bits (u32::MAX means "random").
        let folded = (seed ^ (seed >> 32)) as u32;
        if folded == u32::MAX { 0 } else { folded }
    });
    let top_k = sampling
        .top_k
        .map_or(40, |k| i32::try_from(k).unwrap_or(i32::MAX));
    Ok(LlamaSampler::chain_simple([
        LlamaSampler::top_k(top_k),
        LlamaSampler::top_p(sampling.top_p.unwrap_or(0.95), 1),
        LlamaSampler::temp(temperature),
        LlamaSampler::dist(seed),
    ]))
}

/// Run one generation on `cached`, streaming into `events`. `Err` means the
/// context's state is no longer known (and it must be dropped).
fn generate(
    model: &LlamaModel,
    cached: &mut Cached<'_>,
    messages: &[Message],
    sampling: &Sampling,
    grammar: Option<&str>,
    started: oneshot::Sender<Result<()>>,
    events: &tmpsc::Sender<Result<Event>>,
) -> std::result::Result<(), ()> {
    let refuse = |started: oneshot::Sender<Result<()>>, e: Error| {
        let _ = started.send(Err(e));
    };
    let prompt = match render(model, messages) {
        Ok(prompt) => prompt,
        Err(e) => {
            refuse(started, e);
            return Ok(());
        }
    };
    let mut sampler = match Sampler::new(model, sampling, grammar) {
        Ok(sampler) => sampler,
        Err(e) => {
            refuse(started, e);
            return Ok(());
        }
    };
    let vocab = model.vocab();
    // The template already holds the special tokens (BOS included).
    let tokens = vocab.tokenize(prompt.as_bytes(), false, true);
    let n_ctx = cached.ctx.n_ctx() as usize;
    if tokens.is_empty() || tokens.len() >= n_ctx {
        refuse(
            started,
            Error::ContextOverflow(format!(
                "the prompt is {} tokens and the context holds {n_ctx}; shorten the conversation or raise the context length",
                tokens.len()
            )),
        );
        return Ok(());
    }

    // Reuse what the context already evaluated: keep the common prefix and
    // evaluate only the rest (at least the last token, for its logits).
    let common = cached
        .tokens
        .iter()
        .zip(&tokens)
        .take_while(|(a, b)| a == b)
        .count()
        .min(tokens.len() - 1);
    let kept = cached
        .ctx
        .clear_kv_cache_seq(Some(0), u32::try_from(common).ok(), None)
        .unwrap_or(false);
    let common = if kept {
        common
    } else {
        cached.ctx.clear_kv_cache();
        0
    };
    cached.tokens.truncate(common);
    tracing::debug!(prompt = tokens.len(), reused = common, "llama prompt");
    let batch_size = 512usize;
    let mut batch = LlamaBatch::new(batch_size, 1);
    let rest = &tokens[common..];
    for (chunk_index, chunk) in rest.chunks(batch_size).enumerate() {
        batch.clear();
        let base = common + chunk_index * batch_size;
        for (i, token) in chunk.iter().enumerate() {
            let pos = i32::try_from(base + i).unwrap_or(i32::MAX);
            let last = base + i == tokens.len() - 1;
            if batch.add(*token, pos, &[0], last).is_err() {
                refuse(started, Error::Backend("llama batch overflow".into()));
                return Err(());
            }
        }
        if let Err(e) = cached.ctx.decode(&mut batch) {
            refuse(
                started,
                Error::Backend(format!("llama.cpp could not evaluate the prompt: {e}")),
            );
            return Err(());
        }
        cached.tokens.extend_from_slice(chunk);
    }
    if started.send(Ok(())).is_err() {
        return Ok(());
    }

    let room = n_ctx - tokens.len();
    let max_tokens = sampling.max_tokens.map_or(room, |m| (m as usize).min(room));
    let mut out = TextOut::new(&sampling.stop);
    let mut produced = 0usize;
    let mut stopped = true;
    let mut logits_at = batch.n_tokens() - 1;
    loop {
        if produced >= max_tokens {
            stopped = false;
            break;
        }
        let token = sampler.sample(&cached.ctx, logits_at);
        if vocab.is_eog(token) {
            break;
        }
        produced += 1;
        let piece = vocab.token_to_piece(token, false, None);
        let (text, hit_stop) = out.push(&piece);
        if !text.is_empty() && events.blocking_send(Ok(Event::Text(text))).is_err() {
            // The caller went away: stop, the context stays usable.
            return Ok(());
        }
        // Nothing follows the last token: it is not evaluated.
        if hit_stop {
            break;
        }
        if produced >= max_tokens {
            stopped = false;
            break;
        }
        batch.clear();
        let pos = i32::try_from(cached.tokens.len()).unwrap_or(i32::MAX);
        if batch.add(token, pos, &[0], true).is_err() {
            return Err(());
        }
        if let Err(e) = cached.ctx.decode(&mut batch) {
            let _ = events.blocking_send(Err(Error::Backend(format!(
                "llama.cpp failed while generating: {e}"
            ))));
            return Err(());
        }
        cached.tokens.push(token);
        logits_at = 0;
    }
    let (tail, _) = out.finish();
    if !tail.is_empty() && events.blocking_send(Ok(Event::Text(tail))).is_err() {
        return Ok(());
    }
    let generation = Generation {
        text: out.text,
        stopped,
        usage: Usage {
            input_tokens: u32::try_from(tokens.len()).unwrap_or(u32::MAX),
            output_tokens: u32::try_from(produced).unwrap_or(u32::MAX),
            cost_micro_usd: 0,
        },
    };
    let _ = events.blocking_send(Ok(Event::Done(generation)));
    Ok(())
}

/// Generated text as it streams out: bytes decoded as UTF-8 once whole, stop
/// sequences cut, and text that may still turn into a stop sequence held back.
struct TextOut<'s> {
    stop: &'s [String],
    pending: Vec<u8>,
    /// The text so far (cut at a stop sequence once one appeared).
    text: String,
    /// Bytes of `text` already handed out.
    emitted: usize,
    done: bool,
}

impl<'s> TextOut<'s> {
    fn new(stop: &'s [String]) -> Self {
        Self {
            stop,
            pending: Vec::new(),
            text: String::new(),
            emitted: 0,
            done: false,
        }
    }

    /// Add a token's bytes; the text safe to hand out now, and whether a stop
    /// sequence appeared (the text is then cut before it).
    fn push(&mut self, bytes: &[u8]) -> (String, bool) {
        if self.done {
            return (String::new(), true);
        }
        self.pending.extend_from_slice(bytes);
        let valid = match std::str::from_utf8(&self.pending) {
            Ok(_) => self.pending.len(),
            Err(e) => e.valid_up_to(),
        };
        let whole: Vec<u8> = self.pending.drain(..valid).collect();
        self.text.push_str(&String::from_utf8_lossy(&whole));
        if let Some(at) = self
            .stop
            .iter()
            .filter(|s| !s.is_empty())
            .filter_map(|s| {
                self.text[self.emitted.saturating_sub(s.len())..]
                    .find(s.as_str())
                    .map(|i| i + self.emitted.saturating_sub(s.len()))
            })
            .min()
        {
            self.text.truncate(at);
            self.done = true;
            return (self.take(self.text.len()), true);
        }
        let hold = self
            .stop
            .iter()
            .map(|s| longest_prefix_suffix(&self.text, s))
            .max()
            .unwrap_or(0);
        let mut until = self.text.len() - hold;
        while !self.text.is_char_boundary(until) {
            until -= 1;
        }
        (self.take(until), false)
    }

    /// What is left to hand out at the end.
    fn finish(&mut self) -> (String, bool) {
        if !self.done && !self.pending.is_empty() {
            let rest = String::from_utf8_lossy(&self.pending).into_owned();
            self.text.push_str(&rest);
            self.pending.clear();
        }
        let end = self.text.len();
        (self.take(end), self.done)
    }

    fn take(&mut self, until: usize) -> String {
        let until = until.max(self.emitted);
        let piece = self.text[self.emitted..until].to_owned();
        self.emitted = until;
        piece
    }
}

/// The length of the longest proper prefix of `stop` that `text` ends with.
fn longest_prefix_suffix(text: &str, stop: &str) -> usize {
    (1..stop.len())
        .rev()
        .find(|&k| stop.is_char_boundary(k) && text.ends_with(&stop[..k]))
        .unwrap_or(0)
}

/// Mean-pooled, L2-normalized embeddings, one per input.
fn embed_all(
    model: &LlamaModel,
    ctx: &mut LlamaContext<'_>,
    inputs: &[String],
) -> Result<Vec<Vec<f32>>> {
    let vocab = model.vocab();
    let n_ctx = ctx.n_ctx() as usize;
    let mut out = Vec::with_capacity(inputs.len());
    for (index, input) in inputs.iter().enumerate() {
        let tokens = vocab.tokenize(input.as_bytes(), true, false);
        if tokens.is_empty() {
            return Err(Error::InvalidInput(format!("input {index} is empty")));
        }
        if tokens.len() > n_ctx {
            return Err(Error::ContextOverflow(format!(
                "input {index} is {} tokens and the context holds {n_ctx}",
                tokens.len()
            )));
        }
        ctx.clear_kv_cache();
        let mut batch = LlamaBatch::new(tokens.len(), 1);
        batch
            .add_sequence(&tokens, 0, true)
            .map_err(|e| Error::Backend(format!("llama batch: {e}")))?;
        ctx.decode(&mut batch)
            .map_err(|e| Error::Backend(format!("llama.cpp could not embed input {index}: {e}")))?;
        let vector = ctx.embeddings_seq_ith(0).map_err(|e| {
            Error::Backend(format!(
                "llama.cpp gave no embedding for input {index}: {e}"
            ))
        })?;
        let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
        out.push(if norm > 0.0 {
            vector.iter().map(|v| v / norm).collect()
        } else {
            vector.to_vec()
        });
    }
    Ok(out)
}

impl Backend for LlamaBackend {
    fn name(&self) -> &str {
        "llama"
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<LocalModelInfo>>> {
        Box::pin(async move {
            let store = Arc::clone(&self.store);
            let stored = tokio::task::spawn_blocking(move || store.list())
                .await
                .map_err(|e| Error::Backend(format!("listing models failed: {e}")))??;
            let loaded = self.lock();
            Ok(stored
                .iter()
                .map(|m| m.to_info(loaded.contains_key(&m.name)))
                .collect())
        })
    }

    /// A model in memory is answered from memory; otherwise its record in
    /// the store decides (a damaged one still routes here, so the call
    /// reports what is wrong with it).
    fn has<'a>(&'a self, model: &'a str) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            if self.lock().contains_key(model) {
                return true;
            }
            let (store, name) = (Arc::clone(&self.store), model.to_owned());
            tokio::task::spawn_blocking(move || store.contains(&name))
                .await
                .unwrap_or(false)
        })
    }

    fn generate(&self, request: GenerateRequest) -> BoxFuture<'_, Result<Events>> {
        Box::pin(async move {
            let (events, receiver) = tmpsc::channel(64);
            let (started, ready) = oneshot::channel();
            let grammar = match &request.format {
                ResponseFormat::Text => None,
                ResponseFormat::JsonObject => Some(grammar::any_object()),
                ResponseFormat::JsonSchema(schema) => {
                    Some(grammar::from_schema(schema).map_err(|e| {
                        Error::InvalidInput(format!(
                            "the answer's JSON Schema cannot be followed: {e}"
                        ))
                    })?)
                }
            };
            let job = Job::Generate {
                messages: request.messages,
                sampling: request.sampling,
                grammar,
                started,
                events,
            };
            self.submit(&request.model, job).await?;
            ready.await.map_err(|_| {
                Error::Backend(format!(
                    "the worker of model `{}` stopped before answering",
                    request.model
                ))
            })??;
            Ok(receiver)
        })
    }

    fn embed(&self, model: String, inputs: Vec<String>) -> BoxFuture<'_, Result<Vec<Vec<f32>>>> {
        Box::pin(async move {
            if inputs.is_empty() {
                return Ok(Vec::new());
            }
            let (reply, answer) = oneshot::channel();
            self.submit(&model, Job::Embed { inputs, reply }).await?;
            answer.await.map_err(|_| {
                Error::Backend(format!(
                    "the worker of model `{model}` stopped before answering"
                ))
            })?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(stop: &[&str], pieces: &[&str]) -> (Vec<String>, String, bool) {
        let stop: Vec<String> = stop.iter().map(|s| (*s).to_owned()).collect();
        let mut out = TextOut::new(&stop);
        let mut sent = Vec::new();
        let mut hit = false;
        for piece in pieces {
            let (text, stopped) = out.push(piece.as_bytes());
            if !text.is_empty() {
                sent.push(text);
            }
            if stopped {
                hit = true;
                break;
            }
        }
        let (tail, _) = out.finish();
        if !tail.is_empty() {
            sent.push(tail);
        }
        (sent, out.text, hit)
    }

    #[test]
    fn stop_sequences_cut_the_text_and_are_never_streamed() {
        let (sent, text, hit) = stream(&["\nUser:"], &["Paris", ".", "\n", "User", ":", " more"]);
        assert!(hit);
        assert_eq!(text, "Paris.");
        assert_eq!(sent.concat(), "Paris.");
        // The newline was held back until it was clear it starts the stop sequence.
        assert_eq!(sent, ["Paris", "."]);
    }

    #[test]
    fn held_back_text_is_released_when_it_is_not_a_stop() {
        let (sent, text, hit) = stream(&["END"], &["the E", "ND", "x"]);
        assert!(hit);
        assert_eq!(text, "the ");
        assert_eq!(sent.concat(), "the ");
        let (sent, text, hit) = stream(&["END"], &["the E", "nd"]);
        assert!(!hit);
        assert_eq!(text, "the End");
        assert_eq!(sent, ["the ", "End"]);
    }

    #[test]
    fn utf8_split_across_tokens_is_whole_when_handed_out() {
        let e_acute = "é".as_bytes();
        let stop: Vec<String> = Vec::new();
        let mut out = TextOut::new(&stop);
        assert_eq!(out.push(&e_acute[..1]).0, "");
        assert_eq!(out.push(&e_acute[1..]).0, "é");
    }

    #[test]
    fn sampling_values_are_checked() {
        let bad = Sampling {
            temperature: Some(-1.0),
            ..Sampling::default()
        };
        assert!(matches!(choose(&bad), Err(Error::InvalidInput(_))));
        let bad = Sampling {
            top_p: Some(1.5),
            ..Sampling::default()
        };
        assert!(matches!(choose(&bad), Err(Error::InvalidInput(_))));
    }
}
