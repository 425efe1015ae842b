//! The router: picks the model for a request (by name or by policy), sends
//! it, retries and fails over along the operator's chain, keeps circuit
//! breakers and budgets, and reports usage.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::RwLock;
use tokio::time::Instant;

use crate::breaker::{Admit, Breakers};
use crate::budget::{BudgetStore, Budgets, MemoryBudgetStore, Reservation, Scope};
use crate::provider::{BoxFuture, DeltaStream, Provider};
use crate::{
    ChatRequest, Completion, Delta, Embeddings, Message, ModelError, ModelInfo, ModelSelector,
    ProviderRequest, Requirements, Role, Strategy, Usage,
};

/// How the router behaves; `[inference]` in `platform.toml`.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// Only local models (no provider that leaves the machine).
    pub zero_cloud: bool,
    /// Fallbacks per named model: `"openai/gpt-4o"` → `["anthropic/claude-…", …]`.
    pub chains: BTreeMap<String, Vec<String>>,
    /// Fallbacks of a named model that has no chain of its own.
    pub fallback: Vec<String>,
    /// Retries of one model before failing over (0: fail over at once).
    /// Only rate limits, overload, 5xx and other upstream failures and
    /// garbled answers are retried; a timeout fails over at once.
    pub retries: u32,
    /// First backoff; doubles per retry, with jitter.
    pub backoff_base: Duration,
    /// Longest backoff; a `Retry-After` longer than this fails over instead of waiting.
    pub backoff_max: Duration,
    /// Failures in a row that open a model's circuit.
    pub breaker_threshold: u32,
    /// How long an open circuit skips the model.
    pub breaker_cooldown: Duration,
    /// A stream that has sent nothing after this long fails over.
    pub first_token_timeout: Duration,
    /// Price overrides, `provider/model` → (input, output) USD per million tokens.
    pub prices: BTreeMap<String, (f64, f64)>,
    /// Budgets in millionths of a dollar.
    pub budgets: Vec<(Scope, u64)>,
    /// What each graph run may spend in all, in millionths of a dollar.
    pub run_budget: Option<u64>,
    /// How long a budget hold lives if its request never settles (its
    /// process was killed): longer than any request may take, see
    /// [`RouterConfig::hold_expiry_for`].
    pub hold_expiry: Duration,
}

impl RouterConfig {
    /// A hold expiry that outlives any request whose provider calls each
    /// end within `call_deadline`: every try of one candidate (`retries` + 1
    /// calls, the longest backoff between them), plus a minute of margin.
    /// With the defaults and a 30 s deadline: 3 × 30 s + 2 × 10 s + 60 s =
    /// 170 s.
    pub fn hold_expiry_for(&self, call_deadline: Duration) -> Duration {
        call_deadline
            .saturating_mul(self.retries.saturating_add(1))
            .saturating_add(self.backoff_max.saturating_mul(self.retries))
            .saturating_add(Duration::from_secs(60))
    }
}

impl Default for RouterConfig {
    fn default() -> Self {
        Self {
            zero_cloud: false,
            chains: BTreeMap::new(),
            fallback: Vec::new(),
            retries: 2,
            backoff_base: Duration::from_millis(250),
            backoff_max: Duration::from_secs(10),
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(30),
            first_token_timeout: Duration::from_secs(30),
            prices: BTreeMap::new(),
            budgets: Vec::new(),
            run_budget: None,
            hold_expiry: Duration::from_secs(170),
        }
    }
}

/// Who is asking: budgets and metering are kept per caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Plugin id.
    pub plugin: String,
    /// Agent id, when the caller runs an agent.
    pub agent: Option<String>,
    /// The graph run the call is made for, when the plugin serves a node
    /// call: the run's budget applies, and the call's usage is added to the
    /// node call's.
    pub run: Option<RunCaller>,
}

impl Caller {
    /// A plugin's calls, outside any agent and run.
    pub fn plugin(id: impl Into<String>) -> Self {
        Self {
            plugin: id.into(),
            agent: None,
            run: None,
        }
    }
}

/// The graph run a model call is made for, and where its usage goes.
#[derive(Clone)]
pub struct RunCaller {
    /// The run's id (budget scope [`Scope::Run`]).
    pub run: Arc<str>,
    /// Told what every call of the node call used.
    pub meter: Arc<dyn UsageMeter>,
}

impl std::fmt::Debug for RunCaller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunCaller")
            .field("run", &self.run)
            .finish_non_exhaustive()
    }
}

impl PartialEq for RunCaller {
    fn eq(&self, other: &Self) -> bool {
        self.run == other.run && Arc::ptr_eq(&self.meter, &other.meter)
    }
}

impl Eq for RunCaller {}

/// Adds up what the model calls of one node call used.
pub trait UsageMeter: Send + Sync {
    /// One call ended with `usage` (`failed`: it failed, and `usage` is
    /// what it was booked at).
    fn add(&self, usage: &Usage, failed: bool);
}

/// Report `call` to `sink` and to its run's meter.
fn report(sink: &dyn UsageSink, call: &CallRecord<'_>) {
    sink.record(call);
    if let Some(run) = &call.caller.run {
        run.meter.add(&call.usage, call.error.is_some());
    }
}

/// Where the router reports what every call used.
pub trait UsageSink: Send + Sync {
    /// One call to `provider/model` ended; `error` if it failed.
    fn record(&self, call: &CallRecord<'_>);
}

/// What [`UsageSink::record`] receives.
#[derive(Debug)]
pub struct CallRecord<'a> {
    /// Who asked.
    pub caller: &'a Caller,
    /// Provider that was called.
    pub provider: &'a str,
    /// Its key (`provider/name`), if it has one.
    pub key: Option<&'a str>,
    /// Model that was called.
    pub model: &'a str,
    /// Tokens and cost (cost from the router's prices).
    pub usage: Usage,
    /// The failure, if it failed.
    pub error: Option<&'a ModelError>,
}

/// A sink that drops everything.
#[derive(Debug, Default)]
pub struct NoSink;

impl UsageSink for NoSink {
    fn record(&self, _: &CallRecord<'_>) {}
}

/// One routable model.
#[derive(Clone)]
struct Entry {
    name: String,
    provider: Arc<dyn Provider>,
    info: ModelInfo,
}

/// A name in the router's configuration that names nothing it can call,
/// found by [`Router::check_config`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Where it is written, below `[inference]`: `fallback`, `chains`,
    /// `prices` or `budgets.keys`.
    pub field: &'static str,
    /// The name as written.
    pub name: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// The inference router.
pub struct Router {
    config: RouterConfig,
    providers: BTreeMap<String, Arc<dyn Provider>>,
    catalog: RwLock<BTreeMap<String, Vec<ModelInfo>>>,
    breakers: Breakers,
    budgets: Budgets,
    sink: Arc<dyn UsageSink>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("providers", &self.providers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Router {
    /// A router over `providers` whose budgets live in this process's
    /// memory ([`MemoryBudgetStore`]): right for one process; processes that
    /// share budgets use [`Router::with_store`].
    pub fn new(
        config: RouterConfig,
        providers: Vec<Arc<dyn Provider>>,
        sink: Arc<dyn UsageSink>,
    ) -> Self {
        Self::with_store(
            config,
            providers,
            sink,
            Arc::new(MemoryBudgetStore::default()),
        )
    }

    /// A router over `providers` that books every call in `store` and keeps
    /// its budget holds there (the usage [`crate::Ledger`]).
    pub fn with_store(
        config: RouterConfig,
        providers: Vec<Arc<dyn Provider>>,
        sink: Arc<dyn UsageSink>,
        store: Arc<dyn BudgetStore>,
    ) -> Self {
        Self {
            breakers: Breakers::new(config.breaker_threshold, config.breaker_cooldown),
            budgets: Budgets::new(config.budgets.clone(), store, config.hold_expiry)
                .with_run_limit(config.run_budget),
            providers: providers
                .into_iter()
                .map(|p| (p.id().to_owned(), p))
                .collect(),
            catalog: RwLock::new(BTreeMap::new()),
            config,
            sink,
        }
    }

    /// The budgets, e.g. to show what is spent.
    pub fn budgets(&self) -> &Budgets {
        &self.budgets
    }

    /// Check the names of the configuration against what the providers
    /// offer: every model in `fallback`, `chains` (keys and values) and
    /// `prices` must be `provider/model` of a loaded provider that lists
    /// that model, and every key budget must name a key some provider sends
    /// (else it never applies). A provider that cannot list its models now
    /// is logged, and the names of its models are not checked.
    pub async fn check_config(&self) -> Vec<ConfigProblem> {
        let known: BTreeSet<String> = self.entries().await.into_iter().map(|e| e.name).collect();
        let listed: BTreeSet<String> = self.catalog.read().await.keys().cloned().collect();
        let config = &self.config;
        let named = config
            .fallback
            .iter()
            .map(|m| ("fallback", m))
            .chain(config.chains.iter().flat_map(|(from, to)| {
                std::iter::once(("chains", from)).chain(to.iter().map(|m| ("chains", m)))
            }))
            .chain(config.prices.keys().map(|m| ("prices", m)));
        let mut problems = Vec::new();
        let mut seen = BTreeSet::new();
        for (field, model) in named {
            if known.contains(model) || !seen.insert((field, model)) {
                continue;
            }
            let message = match model.split_once('/') {
                None => format!("`{model}` must be written provider/model"),
                Some((provider, _)) if !self.providers.contains_key(provider) => format!(
                    "`{model}` names provider `{provider}`, but the loaded providers are: {}",
                    list(self.providers.keys())
                ),
                Some((provider, _)) if !listed.contains(provider) => continue,
                Some((provider, _)) => format!(
                    "`{model}` is not a model of provider `{provider}`; its models are: {}",
                    list(
                        known
                            .iter()
                            .filter(|k| { k.split_once('/').is_some_and(|(p, _)| p == provider) })
                    )
                ),
            };
            problems.push(ConfigProblem {
                field,
                name: model.clone(),
                message,
            });
        }
        let keys: BTreeSet<&str> = self.providers.values().filter_map(|p| p.key()).collect();
        for scope in self.budgets.scopes() {
            if let Scope::Key(key) = scope
                && !keys.contains(key.as_str())
            {
                problems.push(ConfigProblem {
                    field: "budgets.keys",
                    message: format!(
                        "no loaded provider sends key `{key}`, so this budget would never apply; the providers' keys are: {} (a provider sends its `key` config value, or PROVIDER/default when granted keys)",
                        list(keys.iter())
                    ),
                    name: key,
                });
            }
        }
        problems
    }

    /// Every model, as `provider/model`, with the operator's prices applied.
    /// A provider that cannot list its models is left out (and logged) and
    /// asked again next time.
    pub async fn models(&self) -> Vec<(String, ModelInfo)> {
        self.entries()
            .await
            .into_iter()
            .map(|e| (e.name, e.info))
            .collect()
    }

    async fn entries(&self) -> Vec<Entry> {
        let missing: Vec<Arc<dyn Provider>> = {
            let catalog = self.catalog.read().await;
            self.providers
                .values()
                .filter(|p| !catalog.contains_key(p.id()))
                .cloned()
                .collect()
        };
        for provider in missing {
            match provider.models().await {
                Ok(models) => {
                    self.catalog
                        .write()
                        .await
                        .insert(provider.id().to_owned(), models);
                }
                Err(e) => {
                    tracing::warn!(provider = provider.id(), error = %e, "cannot list the provider's models")
                }
            }
        }
        let catalog = self.catalog.read().await;
        let mut out = Vec::new();
        for (id, models) in catalog.iter() {
            let Some(provider) = self.providers.get(id) else {
                continue;
            };
            for info in models {
                let name = format!("{id}/{}", info.id);
                let mut info = info.clone();
                if let Some((input, output)) = self.config.prices.get(&name) {
                    info.input_price_per_mtok = *input;
                    info.output_price_per_mtok = *output;
                }
                out.push(Entry {
                    name,
                    provider: provider.clone(),
                    info,
                });
            }
        }
        out
    }

    /// The models to try for `request`, best first.
    async fn candidates(&self, request: &ChatRequest) -> Result<Vec<Entry>, ModelError> {
        let entries = self.entries().await;
        let needs = Needs::of(request);
        let allowed = |e: &Entry| !self.config.zero_cloud || e.info.local;
        match &request.model {
            ModelSelector::Named(name) => {
                let find = |name: &str| entries.iter().find(|e| e.name == name);
                let Some(primary) = find(name) else {
                    return Err(self.unknown(name, &entries));
                };
                if !allowed(primary) {
                    return Err(ModelError::AccessDenied(format!(
                        "`{name}` is not a local model and the platform runs in zero-cloud mode ([inference] zero-cloud = true)"
                    )));
                }
                let chain = self
                    .config
                    .chains
                    .get(name)
                    .unwrap_or(&self.config.fallback);
                let mut out = vec![primary.clone()];
                for next in chain {
                    match find(next) {
                        Some(e)
                            if e.name != primary.name && allowed(e) && needs.met_by(&e.info) =>
                        {
                            out.push(e.clone());
                        }
                        Some(e) if e.name != primary.name => tracing::debug!(
                            model = %e.name,
                            "fallback skipped: it lacks what the request needs or is not local"
                        ),
                        Some(_) => {}
                        // Checked at start; a provider that no longer lists it
                        // (or cannot list its models now) lands here.
                        None => tracing::warn!(
                            model = %next,
                            of = %name,
                            "fallback skipped: no loaded provider lists this model now"
                        ),
                    }
                }
                Ok(out)
            }
            ModelSelector::Policy(strategy, requirements) => {
                let mut out: Vec<Entry> = entries
                    .iter()
                    .filter(|e| allowed(e) && needs.met_by(&e.info) && meets(&e.info, requirements))
                    .cloned()
                    .collect();
                if out.is_empty() {
                    return Err(ModelError::NoModel(format!(
                        "no configured model meets the request ({}); models: {}",
                        needs.describe(requirements),
                        entries
                            .iter()
                            .map(|e| e.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
                let price = |e: &Entry| e.info.input_price_per_mtok + e.info.output_price_per_mtok;
                out.sort_by(|a, b| {
                    let by_price = price(a).total_cmp(&price(b));
                    match strategy {
                        Strategy::Cheapest => by_price
                            .then(b.info.quality.cmp(&a.info.quality))
                            .then(a.name.cmp(&b.name)),
                        Strategy::BestQuality => b
                            .info
                            .quality
                            .cmp(&a.info.quality)
                            .then(by_price)
                            .then(a.name.cmp(&b.name)),
                    }
                });
                Ok(out)
            }
        }
    }

    fn unknown(&self, name: &str, entries: &[Entry]) -> ModelError {
        let known: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        let provider = name.split('/').next().unwrap_or(name);
        if !self.providers.contains_key(provider) {
            ModelError::NoModel(format!(
                "no provider `{provider}` is configured (providers: {}); name models as provider/model",
                self.providers
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        } else {
            ModelError::NoModel(format!(
                "`{name}` is not a model of `{provider}`; known models: {}",
                known.join(", ")
            ))
        }
    }

    fn scopes(&self, caller: &Caller, entry: &Entry) -> Vec<Scope> {
        let mut scopes = vec![Scope::Plugin(caller.plugin.clone())];
        if let Some(agent) = &caller.agent {
            scopes.push(Scope::Agent(agent.clone()));
        }
        if let Some(run) = &caller.run {
            scopes.push(Scope::Run(run.run.to_string()));
        }
        if let Some(key) = entry.provider.key() {
            scopes.push(Scope::Key(key.to_owned()));
        }
        scopes
    }

    /// The most completion tokens `request` may produce on `info`: its own
    /// `max-tokens`, else the model's cap, else what the context leaves.
    fn max_output(request: &ChatRequest, info: &ModelInfo) -> u32 {
        request
            .sampling
            .max_tokens
            .or(info.max_output_tokens)
            .unwrap_or_else(|| {
                let left =
                    u64::from(info.context_window).saturating_sub(request.estimated_input_tokens());
                u32::try_from(left).unwrap_or(u32::MAX).max(1)
            })
    }

    /// The most `request` can cost on `info`: the largest prompt it can
    /// count as plus the largest completion it is allowed.
    fn ceiling(request: &ChatRequest, info: &ModelInfo) -> u64 {
        info.cost_micro_usd(
            request.max_input_tokens(),
            u64::from(Self::max_output(request, info)),
        )
    }

    /// The request for the provider, with the completion cap the budget
    /// hold assumed made explicit.
    fn provider_request(request: &ChatRequest, entry: &Entry) -> ProviderRequest {
        let mut sampling = request.sampling.clone();
        sampling.max_tokens = Some(Self::max_output(request, &entry.info));
        ProviderRequest {
            model: entry.info.id.clone(),
            messages: request.messages.clone(),
            tools: request.tools.clone(),
            sampling,
            format: request.format.clone(),
        }
    }

    /// A call ended: report it to the sink, book it in the budget store
    /// and drop its hold.
    async fn book(
        &self,
        reservation: Reservation,
        caller: &Caller,
        entry: &Entry,
        usage: Usage,
        error: Option<&ModelError>,
    ) {
        let call = CallRecord {
            caller,
            provider: entry.provider.id(),
            key: entry.provider.key(),
            model: &entry.info.id,
            usage,
            error,
        };
        report(&*self.sink, &call);
        reservation.settle(&call).await;
    }

    fn priced(entry: &Entry, mut usage: Usage) -> Usage {
        usage.cost_micro_usd = entry.info.cost_micro_usd(
            u64::from(usage.input_tokens),
            u64::from(usage.output_tokens),
        );
        usage
    }

    /// Complete a chat: the first candidate that answers, after retries
    /// and failover.
    pub async fn complete(
        &self,
        caller: &Caller,
        request: ChatRequest,
    ) -> Result<Completion, ModelError> {
        let Some(schema) = request.format.schema() else {
            return self.complete_once(caller, &request).await;
        };
        let validator = output_schema(schema)?;
        let mut request = request;
        let mut used = Usage::default();
        let mut attempt = 1;
        loop {
            let mut completion = self.complete_once(caller, &request).await?;
            used.input_tokens += completion.usage.input_tokens;
            used.output_tokens += completion.usage.output_tokens;
            used.cost_micro_usd += completion.usage.cost_micro_usd;
            completion.usage = used;
            // A turn that calls tools is not the answer yet.
            if !completion.message.tool_calls.is_empty() {
                return Ok(completion);
            }
            let errors = match check_output(&validator, &completion.message.content) {
                Ok(()) => return Ok(completion),
                Err(errors) => errors,
            };
            if attempt >= SCHEMA_ATTEMPTS {
                return Err(ModelError::InvalidOutput(format!(
                    "{}/{} answered {attempt} times and no answer matched the JSON Schema; the last: {errors}",
                    completion.provider, completion.model
                )));
            }
            tracing::debug!(attempt, %errors, "an answer did not match its schema; asking again");
            attempt += 1;
            request.messages.push(completion.message);
            request.messages.push(Message::text(Role::User, format!(
                "That answer does not match the required JSON Schema: {errors}. Answer again with only the corrected JSON."
            )));
        }
    }

    /// One routed completion, booked.
    async fn complete_once(
        &self,
        caller: &Caller,
        request: &ChatRequest,
    ) -> Result<Completion, ModelError> {
        let request = request.clone();
        let (mut completion, entry, reservation) = self
            .route(caller, &request, |entry, provider_request| {
                entry.provider.complete(provider_request)
            })
            .await?;
        // The routed name, which tells two accounts of one provider apart.
        completion.provider = entry.provider.id().to_owned();
        completion.usage = Self::priced(&entry, completion.usage);
        self.book(reservation, caller, &entry, completion.usage, None)
            .await;
        Ok(completion)
    }

    /// Try the candidates of `request` in order: skip open circuits, hold
    /// the budget, call `attempt` with retries, fail over on failures that
    /// another model may not have. The winner comes back with its hold.
    async fn route<T, F>(
        &self,
        caller: &Caller,
        request: &ChatRequest,
        mut attempt: F,
    ) -> Result<(T, Entry, Reservation), ModelError>
    where
        F: for<'a> FnMut(&'a Entry, ProviderRequest) -> BoxFuture<'a, Result<T, ModelError>>,
    {
        let candidates = self.candidates(request).await?;
        let mut last = None;
        for entry in &candidates {
            let reservation = match self.admit(caller, request, entry).await {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            let provider_request = Self::provider_request(request, entry);
            let outcome = self
                .with_retries(entry, || attempt(entry, provider_request.clone()))
                .await;
            match outcome {
                Ok(value) => return Ok((value, entry.clone(), reservation)),
                Err(e) => {
                    self.book(reservation, caller, entry, Usage::default(), Some(&e))
                        .await;
                    if !e.allows_failover() {
                        return Err(e);
                    }
                    tracing::warn!(model = %entry.name, error = %e, "failing over");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| {
            ModelError::Overloaded(format!(
                "every candidate model is cooling down after failures: {}",
                candidates
                    .iter()
                    .map(|e| e.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }))
    }

    /// Check the breaker and reserve the budget; `Ok(None)` skips the model.
    async fn admit(
        &self,
        caller: &Caller,
        request: &ChatRequest,
        entry: &Entry,
    ) -> Result<Option<Reservation>, ModelError> {
        if let Admit::No(left) = self.breakers.admit(&entry.name) {
            tracing::debug!(model = %entry.name, left_ms = left.as_millis() as u64, "circuit open; skipped");
            return Ok(None);
        }
        let ceiling = Self::ceiling(request, &entry.info);
        match self
            .budgets
            .reserve(&self.scopes(caller, entry), ceiling)
            .await
        {
            Ok(r) => Ok(Some(r)),
            Err(e) => {
                self.breakers.release_trial(&entry.name);
                Err(e)
            }
        }
    }

    /// Call `attempt` until it succeeds, fails for good, or retries run out.
    async fn with_retries<'a, T, F>(&self, entry: &Entry, mut attempt: F) -> Result<T, ModelError>
    where
        F: FnMut() -> BoxFuture<'a, Result<T, ModelError>>,
    {
        let mut tries = 0u32;
        loop {
            match attempt().await {
                Ok(value) => {
                    self.breakers.success(&entry.name);
                    return Ok(value);
                }
                Err(e) => {
                    if e.is_retryable() {
                        self.breakers.failure(&entry.name);
                    } else {
                        self.breakers.release_trial(&entry.name);
                    }
                    // A model that stalled would likely stall again: a
                    // timeout moves on to the next candidate at once.
                    let again = e.is_retryable() && !matches!(e, ModelError::Timeout(_));
                    if !again || tries >= self.config.retries {
                        return Err(e);
                    }
                    let Some(wait) = self.backoff(tries, &e) else {
                        return Err(e);
                    };
                    if !matches!(self.breakers.admit(&entry.name), Admit::Yes | Admit::Trial) {
                        return Err(e);
                    }
                    tracing::debug!(model = %entry.name, error = %e, wait_ms = wait.as_millis() as u64, "retrying");
                    tokio::time::sleep(wait).await;
                    tries += 1;
                }
            }
        }
    }

    /// How long to wait before retry `tries` + 1, or `None` to fail over now
    /// (the upstream asked for a longer pause than `backoff-max`).
    fn backoff(&self, tries: u32, error: &ModelError) -> Option<Duration> {
        if let ModelError::RateLimited(Some(ms)) = error {
            let asked = Duration::from_millis(*ms);
            return (asked <= self.config.backoff_max).then_some(asked);
        }
        let exp = self
            .config
            .backoff_base
            .saturating_mul(1u32 << tries.min(16))
            .min(self.config.backoff_max);
        // ±25% jitter so that callers who failed together do not retry together.
        let nanos = Instant::now().elapsed().subsec_nanos() ^ std::process::id();
        let jitter = 0.75 + f64::from(nanos % 1000) / 2000.0;
        Some(exp.mul_f64(jitter))
    }

    /// Complete a chat as a stream. Fails over while no delta has arrived
    /// (an error, a cut stream, or nothing within `first-token-timeout`);
    /// after the first delta, errors reach the caller.
    pub async fn stream(
        &self,
        caller: &Caller,
        request: ChatRequest,
    ) -> Result<RoutedStream, ModelError> {
        let timeout = self.config.first_token_timeout;
        let ((stream, first), entry, reservation) = self
            .route(caller, &request, |entry, provider_request| {
                Box::pin(first_delta(
                    entry.provider.clone(),
                    provider_request,
                    timeout,
                ))
            })
            .await?;
        Ok(RoutedStream {
            stream,
            first: Some(first),
            entry,
            caller: caller.clone(),
            reservation: Some(reservation),
            sink: self.sink.clone(),
            done: false,
        })
    }

    /// Embed texts with a named model, or the cheapest embedding model.
    pub async fn embed(
        &self,
        caller: &Caller,
        model: ModelSelector,
        inputs: Vec<String>,
    ) -> Result<Embeddings, ModelError> {
        let entries = self.entries().await;
        let entry = match &model {
            ModelSelector::Named(name) => entries
                .iter()
                .find(|e| &e.name == name)
                .cloned()
                .ok_or_else(|| self.unknown(name, &entries))?,
            ModelSelector::Policy(_, requirements) => entries
                .iter()
                .filter(|e| {
                    e.info.features.embeddings && (!requirements.local_only || e.info.local)
                })
                .filter(|e| !self.config.zero_cloud || e.info.local)
                .min_by(|a, b| {
                    a.info
                        .input_price_per_mtok
                        .total_cmp(&b.info.input_price_per_mtok)
                })
                .cloned()
                .ok_or_else(|| {
                    ModelError::NoModel("no configured model makes embeddings".into())
                })?,
        };
        if self.config.zero_cloud && !entry.info.local {
            return Err(ModelError::AccessDenied(format!(
                "`{}` is not local and the platform runs in zero-cloud mode",
                entry.name
            )));
        }
        let tokens: u64 = inputs.iter().map(|i| (i.len() as u64).div_ceil(4)).sum();
        let reservation = self
            .budgets
            .reserve(
                &self.scopes(caller, &entry),
                entry.info.cost_micro_usd(tokens, 0),
            )
            .await?;
        let model_id = entry.info.id.clone();
        let result = self
            .with_retries(&entry, || {
                entry.provider.embed(model_id.clone(), inputs.clone())
            })
            .await;
        match result {
            Ok(mut embeddings) => {
                embeddings.usage = Self::priced(&entry, embeddings.usage);
                self.book(reservation, caller, &entry, embeddings.usage, None)
                    .await;
                Ok(embeddings)
            }
            Err(e) => {
                self.book(reservation, caller, &entry, Usage::default(), Some(&e))
                    .await;
                Err(e)
            }
        }
    }
}

/// Open a stream and wait for its first delta.
async fn first_delta(
    provider: Arc<dyn Provider>,
    request: ProviderRequest,
    timeout: Duration,
) -> Result<(Box<dyn DeltaStream>, Delta), ModelError> {
    let deadline = Instant::now() + timeout;
    let mut stream = match tokio::time::timeout_at(deadline, provider.stream(request)).await {
        Err(_) => {
            return Err(ModelError::Timeout(format!(
                "no stream within {} ms",
                timeout.as_millis()
            )));
        }
        Ok(r) => r?,
    };
    match tokio::time::timeout_at(deadline, stream.next()).await {
        Err(_) => Err(ModelError::Timeout(format!(
            "the stream sent nothing within {} ms",
            timeout.as_millis()
        ))),
        Ok(None) => Err(ModelError::Upstream(
            "the stream ended before its first delta".into(),
        )),
        Ok(Some(Err(e))) => Err(e),
        Ok(Some(Ok(delta))) => Ok((stream, delta)),
    }
}

/// How many times a model is asked for an answer that matches a request's
/// JSON Schema: the first answer and two corrections.
pub const SCHEMA_ATTEMPTS: u32 = 3;

/// The validator of a request's output schema, or why it is not one.
fn output_schema(schema: &str) -> Result<jsonschema::Validator, ModelError> {
    let value: serde_json::Value = serde_json::from_str(schema).map_err(|e| {
        ModelError::BadRequest(format!(
            "the response format's JSON Schema is not JSON: {e}"
        ))
    })?;
    jsonschema::validator_for(&value).map_err(|e| {
        ModelError::BadRequest(format!(
            "the response format's JSON Schema is invalid at {}: {e}",
            pointer_or_root(&e.instance_path().to_string())
        ))
    })
}

/// Whether `content` is JSON that `validator` accepts; else every reason it
/// is not, `; `-separated, each with where in the answer.
fn check_output(validator: &jsonschema::Validator, content: &str) -> Result<(), String> {
    let value: serde_json::Value = serde_json::from_str(content.trim())
        .map_err(|e| format!("the answer is not JSON ({e})"))?;
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .map(|e| {
            format!(
                "at {}: {e}",
                pointer_or_root(&e.instance_path().to_string())
            )
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

fn pointer_or_root(pointer: &str) -> &str {
    if pointer.is_empty() { "/" } else { pointer }
}

/// What a request implies beyond its stated requirements.
struct Needs {
    tools: bool,
    json_mode: bool,
    context: u64,
}

impl Needs {
    fn of(request: &ChatRequest) -> Self {
        Self {
            tools: !request.tools.is_empty(),
            json_mode: request.format.is_json(),
            context: request.estimated_input_tokens()
                + u64::from(request.sampling.max_tokens.unwrap_or(0)),
        }
    }

    fn met_by(&self, info: &ModelInfo) -> bool {
        (!self.tools || info.features.tools)
            && (!self.json_mode || info.features.json_mode)
            && u64::from(info.context_window) >= self.context
    }

    fn describe(&self, r: &Requirements) -> String {
        let mut parts = vec![format!("about {} tokens of context", self.context)];
        if self.tools || r.tools {
            parts.push("tools".into());
        }
        if self.json_mode || r.json_mode {
            parts.push("json mode".into());
        }
        if r.vision {
            parts.push("vision".into());
        }
        if let Some(q) = r.min_quality {
            parts.push(format!("quality {q:?} or better"));
        }
        if r.local_only {
            parts.push("local only".into());
        }
        parts.join(", ")
    }
}

fn meets(info: &ModelInfo, r: &Requirements) -> bool {
    (!r.tools || info.features.tools)
        && (!r.vision || info.features.vision)
        && (!r.json_mode || info.features.json_mode)
        && r.min_context.is_none_or(|c| info.context_window >= c)
        && r.min_quality.is_none_or(|q| info.quality >= q)
        && (!r.local_only || info.local)
}

/// A routed stream: deltas from the chosen model; budget and usage settle
/// when the last delta arrives, or at the hold if the stream fails or is
/// dropped before reporting usage (the tokens sent so far may have cost up
/// to the hold).
pub struct RoutedStream {
    stream: Box<dyn DeltaStream>,
    first: Option<Delta>,
    entry: Entry,
    caller: Caller,
    reservation: Option<Reservation>,
    sink: Arc<dyn UsageSink>,
    done: bool,
}

impl std::fmt::Debug for RoutedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoutedStream")
            .field("model", &self.entry.name)
            .finish_non_exhaustive()
    }
}

impl RoutedStream {
    /// `provider/model` that is answering.
    pub fn model(&self) -> &str {
        &self.entry.name
    }

    /// The next delta; `None` at the end.
    pub async fn next(&mut self) -> Option<Result<Delta, ModelError>> {
        if self.done {
            return None;
        }
        let item = match self.first.take() {
            Some(first) => Some(Ok(first)),
            None => self.stream.next().await,
        };
        match item {
            Some(Ok(mut delta)) => {
                if let Some(usage) = delta.usage {
                    let usage = Router::priced(&self.entry, usage);
                    delta.usage = Some(usage);
                    self.finish(usage, None).await;
                }
                Some(Ok(delta))
            }
            Some(Err(e)) => {
                self.fail(&e).await;
                Some(Err(e))
            }
            None => {
                if self.reservation.is_some() {
                    let e = ModelError::MalformedResponse(
                        "the stream ended without its final usage".into(),
                    );
                    self.fail(&e).await;
                }
                self.done = true;
                None
            }
        }
    }

    async fn finish(&mut self, usage: Usage, error: Option<&ModelError>) {
        let Some(reservation) = self.reservation.take() else {
            return;
        };
        let call = CallRecord {
            caller: &self.caller,
            provider: self.entry.provider.id(),
            key: self.entry.provider.key(),
            model: &self.entry.info.id,
            usage,
            error,
        };
        report(&*self.sink, &call);
        reservation.settle(&call).await;
    }

    /// A stream that fails midway may have cost up to its hold: book that.
    async fn fail(&mut self, error: &ModelError) {
        self.done = true;
        if let Some(held) = self.reservation.as_ref().map(Reservation::amount) {
            let usage = Usage {
                cost_micro_usd: held,
                ..Usage::default()
            };
            self.finish(usage, Some(error)).await;
        }
    }
}

impl Drop for RoutedStream {
    /// Dropped before its usage arrived: book the hold (in the background,
    /// on the current Tokio runtime; without one, the hold lapses).
    fn drop(&mut self) {
        let Some(reservation) = self.reservation.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let usage = Usage {
            cost_micro_usd: reservation.amount(),
            ..Usage::default()
        };
        let caller = self.caller.clone();
        let provider = self.entry.provider.clone();
        let model = self.entry.info.id.clone();
        let sink = self.sink.clone();
        runtime.spawn(async move {
            let call = CallRecord {
                caller: &caller,
                provider: provider.id(),
                key: provider.key(),
                model: &model,
                usage,
                error: None,
            };
            report(&*sink, &call);
            reservation.settle(&call).await;
        });
    }
}

/// Names for a message: `a, b, c`, or `none`.
fn list<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> String {
    let names: Vec<String> = names.into_iter().map(|n| n.as_ref().to_owned()).collect();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}
