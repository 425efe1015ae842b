//! `platform.toml`: the operator's choice of plugins, their grants and limits.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::manifest::{PluginManifest, id_problem};
use crate::{Capability, Error, Result, toml_file};

/// The operator's platform configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PlatformConfig {
    /// Engine-wide settings.
    #[serde(default)]
    pub runtime: RuntimeSettings,
    /// The inference router: fallback chains, retries, prices, budgets.
    #[serde(default)]
    pub inference: InferenceSettings,
    /// The key vault's rotation policy.
    #[serde(default)]
    pub keys: KeySettings,
    /// Local models: the model cache, llama.cpp, an Ollama server.
    #[serde(default)]
    pub local_models: LocalModelSettings,
    /// Agent graphs: the orchestrator plugin and the run journal.
    #[serde(default)]
    pub graphs: GraphSettings,
    /// Plugins to load, in any order.
    #[serde(default, rename = "plugin")]
    pub plugins: Vec<PluginEntry>,
}

/// `[graphs]`: how agent graphs run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct GraphSettings {
    /// The orchestrator plugin (a `[[plugin]]` of kind `orchestrator`);
    /// default: the only one there is.
    pub orchestrator: Option<String>,
    /// The run journal, its own SQLite file; default `runs.db` in the data
    /// directory.
    pub journal: Option<PathBuf>,
    /// When a journaled step is durable, unless a run asks otherwise:
    /// `process` (survives `kill -9` of the host; no fsync per commit),
    /// `sync` (fsync every commit: survives power loss) or `off` (memory
    /// only: nothing survives the process).
    pub durability: GraphDurability,
    /// Write the whole snapshot every this many steps, so a resume folds at
    /// most this many decisions.
    pub checkpoint_every: u64,
}

impl Default for GraphSettings {
    fn default() -> Self {
        Self {
            orchestrator: None,
            journal: None,
            durability: GraphDurability::Process,
            checkpoint_every: 64,
        }
    }
}

/// When a journaled step of a run is durable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum GraphDurability {
    /// fsync every commit: an acknowledged step survives a power loss.
    Sync,
    /// WAL without an fsync per commit: survives `kill -9` of the host.
    #[default]
    Process,
    /// Memory only: nothing survives the process.
    Off,
}

/// `[local-models]`: models that run on this machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct LocalModelSettings {
    /// The model cache (`convergio models pull` writes there); default
    /// `models` in the data directory.
    pub cache_dir: Option<PathBuf>,
    /// Threads llama.cpp uses per generation; default: every core.
    pub threads: Option<u32>,
    /// Context length of each llama.cpp worker, in tokens (never more than
    /// the model was trained for).
    pub context_length: u32,
    /// Concurrent generations per loaded model (each holds its own context).
    pub workers: u32,
    /// Unload a model idle for this many seconds.
    pub idle_unload_secs: u64,
    /// Most MiB of model files in memory at once; unset: no limit.
    pub max_loaded_mib: Option<u64>,
    /// An Ollama server whose models are served too, e.g. `http://127.0.0.1:11434`.
    pub ollama: Option<String>,
}

impl Default for LocalModelSettings {
    fn default() -> Self {
        Self {
            cache_dir: None,
            threads: None,
            context_length: 4096,
            workers: 1,
            idle_unload_secs: 300,
            max_loaded_mib: None,
            ollama: None,
        }
    }
}

/// `[keys]`: how old a provider key may get before `convergio keys list`
/// and the maintenance of `convergio run` warn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct KeySettings {
    /// Maximum age in days per provider, e.g. `{ openai = 90 }`.
    pub max_age_days: BTreeMap<String, u32>,
    /// Maximum age of keys of providers not listed; unset: no limit.
    pub default_max_age_days: Option<u32>,
    /// Warn this many days before a key reaches its maximum age or expiry.
    pub warn_days: u32,
}

impl Default for KeySettings {
    fn default() -> Self {
        Self {
            max_age_days: BTreeMap::new(),
            default_max_age_days: None,
            warn_days: 7,
        }
    }
}

impl KeySettings {
    /// The vault's options with this policy.
    pub fn vault_options(&self) -> convergio_cap_keys::VaultOptions {
        convergio_cap_keys::VaultOptions {
            policy: convergio_cap_keys::KeyPolicy {
                max_age_days: self
                    .max_age_days
                    .iter()
                    .map(|(p, d)| (p.clone(), *d))
                    .collect(),
                default_max_age_days: self.default_max_age_days,
                warn_days: self.warn_days,
            },
            ..convergio_cap_keys::VaultOptions::default()
        }
    }
}

/// `[inference]`: how model calls are routed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct InferenceSettings {
    /// Only local models: cloud providers are never called.
    pub zero_cloud: bool,
    /// Fallbacks of a named model that has no chain of its own, as
    /// `provider/model`, tried in order.
    pub fallback: Vec<String>,
    /// Fallbacks per named model: `"openai/gpt-4o-mini" = ["anthropic/…"]`.
    pub chains: BTreeMap<String, Vec<String>>,
    /// Retries of one model before failing over, for rate limits, overload,
    /// 5xx and garbled answers (a timeout fails over at once).
    pub retries: u32,
    /// First retry delay in milliseconds; doubles per retry, with jitter.
    pub backoff_base_ms: u64,
    /// Longest retry delay; an upstream asking for a longer pause fails over instead.
    pub backoff_max_ms: u64,
    /// Failures in a row that take a model out of rotation.
    pub breaker_failures: u32,
    /// How long a failing model stays out, in milliseconds.
    pub breaker_cooldown_ms: u64,
    /// A stream that sends nothing for this long fails over, in milliseconds.
    pub first_token_timeout_ms: u64,
    /// Price overrides per `provider/model`, USD per million tokens.
    pub prices: BTreeMap<String, PriceOverride>,
    /// Spending limits in USD.
    pub budgets: BudgetSettings,
    /// How long a budget hold outlives its request if the request never
    /// settles (its process was killed), in milliseconds. Unset: (retries + 1)
    /// × the longest `deadline-ms` of the provider plugins + retries ×
    /// `backoff-max-ms` + 60 s (170 s with the defaults).
    pub hold_expiry_ms: Option<u64>,
}

impl Default for InferenceSettings {
    fn default() -> Self {
        Self {
            zero_cloud: false,
            fallback: Vec::new(),
            chains: BTreeMap::new(),
            retries: 2,
            backoff_base_ms: 250,
            backoff_max_ms: 10_000,
            breaker_failures: 5,
            breaker_cooldown_ms: 30_000,
            first_token_timeout_ms: 30_000,
            prices: BTreeMap::new(),
            budgets: BudgetSettings::default(),
            hold_expiry_ms: None,
        }
    }
}

/// A price override.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PriceOverride {
    /// USD per million input tokens.
    pub input: f64,
    /// USD per million output tokens.
    pub output: f64,
}

/// `[inference.budgets]`: USD limits per key, plugin and agent, per UTC
/// calendar month, and per graph run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct BudgetSettings {
    /// Per provider key, `provider/name` → USD: a key a provider plugin
    /// sends (its `key` config value, else `PROVIDER/default`).
    pub keys: BTreeMap<String, f64>,
    /// Per plugin id → USD: a plugin granted `inference`, or `cli` for
    /// `convergio chat`.
    pub plugins: BTreeMap<String, f64>,
    /// Per agent id → USD: a plugin of kind `agent` or `vertical` granted
    /// `inference`.
    pub agents: BTreeMap<String, f64>,
    /// USD each graph run may spend in all (every model call its node
    /// calls make, whatever the month).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<f64>,
}

impl InferenceSettings {
    /// The router's configuration.
    pub fn router_config(&self) -> convergio_cap_inference::RouterConfig {
        use convergio_cap_inference::Scope;
        let micro = |usd: f64| (usd.max(0.0) * 1_000_000.0).round() as u64;
        let budgets = self
            .budgets
            .keys
            .iter()
            .map(|(k, usd)| (Scope::Key(k.clone()), micro(*usd)))
            .chain(
                self.budgets
                    .plugins
                    .iter()
                    .map(|(p, usd)| (Scope::Plugin(p.clone()), micro(*usd))),
            )
            .chain(
                self.budgets
                    .agents
                    .iter()
                    .map(|(a, usd)| (Scope::Agent(a.clone()), micro(*usd))),
            )
            .collect();
        let mut config = convergio_cap_inference::RouterConfig {
            zero_cloud: self.zero_cloud,
            chains: self.chains.clone(),
            fallback: self.fallback.clone(),
            retries: self.retries,
            backoff_base: Duration::from_millis(self.backoff_base_ms),
            backoff_max: Duration::from_millis(self.backoff_max_ms),
            breaker_threshold: self.breaker_failures,
            breaker_cooldown: Duration::from_millis(self.breaker_cooldown_ms),
            first_token_timeout: Duration::from_millis(self.first_token_timeout_ms),
            prices: self
                .prices
                .iter()
                .map(|(m, p)| (m.clone(), (p.input, p.output)))
                .collect(),
            budgets,
            run_budget: self.budgets.run.map(micro),
            hold_expiry: Duration::ZERO,
        };
        config.hold_expiry = match self.hold_expiry_ms {
            Some(ms) => Duration::from_millis(ms),
            None => config.hold_expiry_for(Duration::from_millis(DEFAULT_DEADLINE_MS)),
        };
        config
    }
}

/// The caller name of `convergio chat` in budgets and the usage ledger.
pub const CLI_CALLER: &str = "cli";

/// `deadline-ms` of a plugin that sets none.
const DEFAULT_DEADLINE_MS: u64 = 30_000;

impl Platform {
    /// The router's configuration. Unless `hold-expiry-ms` is set, holds
    /// outlive the longest request the provider plugins' deadlines allow.
    pub fn router_config(&self) -> convergio_cap_inference::RouterConfig {
        let mut config = self.inference.router_config();
        if self.inference.hold_expiry_ms.is_none() {
            let longest = self
                .plugins
                .iter()
                .filter(|p| p.manifest.kind == crate::PluginKind::Provider)
                .map(|p| p.limits.deadline_ms)
                .max()
                .unwrap_or(DEFAULT_DEADLINE_MS);
            config.hold_expiry = config.hold_expiry_for(Duration::from_millis(longest));
        }
        config
    }

    /// The router's findings ([`convergio_cap_inference::Router::check_config`])
    /// as located config errors.
    pub(crate) fn inference_problems(
        &self,
        found: &[convergio_cap_inference::ConfigProblem],
    ) -> Vec<String> {
        let text = std::fs::read_to_string(&self.path).unwrap_or_default();
        found
            .iter()
            .map(|p| {
                format!(
                    "{}: field `inference.{}`: {}",
                    self.inference_location(&text, p.field, &p.name),
                    p.field,
                    p.message
                )
            })
            .collect()
    }

    /// Budgets on plugins and agents that could never apply: the plugin is
    /// not loaded or makes no model calls (not granted `inference`), the
    /// agent is no plugin of kind `agent` or `vertical` granted `inference`.
    /// `cli` is the plugin `convergio chat` calls as.
    pub(crate) fn budget_problems(&self) -> Vec<String> {
        use crate::PluginKind;
        let text = std::fs::read_to_string(&self.path).unwrap_or_default();
        let by_id: BTreeMap<&str, &PluginSpec> =
            self.plugins.iter().map(|p| (p.id.as_str(), p)).collect();
        let callers = || {
            let ids: Vec<&str> = self
                .plugins
                .iter()
                .filter(|p| p.grants.inference)
                .map(|p| p.id.as_str())
                .chain([CLI_CALLER])
                .collect();
            ids.join(", ")
        };
        let mut problems = Vec::new();
        let budgets = &self.inference.budgets;
        for id in budgets.plugins.keys() {
            let why = match by_id.get(id.as_str()) {
                _ if id == CLI_CALLER => continue,
                Some(p) if p.grants.inference => continue,
                Some(p) => format!(
                    "plugin `{id}` is not granted `inference` ({}), so it makes no model calls and this budget would never apply",
                    p.config_location
                ),
                None => format!("no [[plugin]] has id = \"{id}\""),
            };
            problems.push(format!(
                "{}: field `inference.budgets.plugins`: {why}; budgets apply to the plugins that call models: {}",
                self.inference_location(&text, "budgets.plugins", id),
                callers()
            ));
        }
        for id in budgets.agents.keys() {
            let agent = |p: &PluginSpec| {
                matches!(p.manifest.kind, PluginKind::Agent | PluginKind::Vertical)
            };
            let why = match by_id.get(id.as_str()) {
                Some(p) if agent(p) && p.grants.inference => continue,
                Some(p) if agent(p) => format!(
                    "agent `{id}` is not granted `inference` ({}), so it makes no model calls and this budget would never apply",
                    p.config_location
                ),
                Some(p) => format!(
                    "plugin `{id}` is of kind `{}`, not an agent; put its budget under `plugins`",
                    p.manifest.kind.name()
                ),
                None => format!("no [[plugin]] has id = \"{id}\""),
            };
            let agents: Vec<&str> = self
                .plugins
                .iter()
                .filter(|p| agent(p) && p.grants.inference)
                .map(|p| p.id.as_str())
                .collect();
            problems.push(format!(
                "{}: field `inference.budgets.agents`: {why}; the agents that call models are: {}",
                self.inference_location(&text, "budgets.agents", id),
                if agents.is_empty() {
                    "none".to_owned()
                } else {
                    agents.join(", ")
                }
            ));
        }
        problems
    }

    /// `path:line` of `name` under `inference.FIELD` in `text` (the file's
    /// contents), or `path` alone if it cannot be found.
    fn inference_location(&self, text: &str, field: &str, name: &str) -> String {
        match toml_file::line_of_key_value(text, &format!("inference.{field}"), name) {
            Some(line) => format!("{}:{line}", self.path.display()),
            None => self.path.display().to_string(),
        }
    }
}

impl PlatformConfig {
    /// Read `platform.toml` without loading its plugins, for commands that
    /// need only the settings. Relative paths in `[runtime]` are resolved.
    pub fn read(path: &Path) -> Result<Self> {
        let (mut config, _): (Self, _) = toml_file::read(path)?;
        config.runtime.resolve_paths(path);
        Ok(config)
    }
}

/// Engine-wide settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct RuntimeSettings {
    /// Keep compiled components on disk so a restart does not recompile them.
    pub compile_cache: bool,
    /// Where compiled components are kept; defaults to `$CONVERGIO_HOME/cache`.
    pub cache_dir: Option<PathBuf>,
    /// Where the platform keeps its data (the SQLite database of storage);
    /// defaults to `$CONVERGIO_HOME`.
    pub data_dir: Option<PathBuf>,
    /// Granularity of deadlines, in milliseconds.
    pub epoch_tick_ms: u64,
    /// Watch component files and hot-reload them when they change.
    pub watch: bool,
    /// Instances that may exist at once across all plugins (pooling allocator slots).
    pub pool_instances: u32,
    /// Largest linear memory any plugin may be granted, in MiB.
    pub pool_memory_mib: u64,
    /// Limits of plugins that do not set their own.
    pub default_limits: Limits,
    /// Outgoing HTTP settings shared by every plugin.
    pub http: HttpSettings,
}

impl RuntimeSettings {
    /// Make the paths of these settings relative to `config`'s folder.
    fn resolve_paths(&mut self, config: &Path) {
        for dir in [&mut self.cache_dir, &mut self.data_dir]
            .into_iter()
            .flatten()
        {
            *dir = dir.join_relative_to(config);
        }
        for file in &mut self.http.ca_files {
            *file = file.join_relative_to(config);
        }
    }
}

/// `[runtime.http]`: what every plugin's outgoing HTTP shares.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct HttpSettings {
    /// Fixed addresses for host names, answered before DNS (like curl's
    /// `--resolve`), e.g. `{ "llm.internal" = ["203.0.113.7"] }`. The answers
    /// pass the same checks as DNS answers: an internal address is still
    /// refused unless a plugin is granted that address itself.
    pub resolve: BTreeMap<String, Vec<std::net::IpAddr>>,
    /// PEM files of certificates to trust besides the Mozilla root
    /// certificates (a private CA), relative to `platform.toml`.
    pub ca_files: Vec<PathBuf>,
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        Self {
            compile_cache: true,
            cache_dir: None,
            data_dir: None,
            epoch_tick_ms: 10,
            watch: false,
            pool_instances: 256,
            pool_memory_mib: 512,
            default_limits: Limits::default(),
            http: HttpSettings::default(),
        }
    }
}

/// Per-plugin limits. Unset fields fall back to `[runtime.default-limits]`,
/// then to the built-in defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Limits {
    /// Wall-clock deadline of one call, in milliseconds (default 30000).
    pub deadline_ms: Option<u64>,
    /// Fuel (roughly, wasm instructions) one call may burn; unlimited if unset.
    pub fuel: Option<u64>,
    /// Maximum linear memory of one instance, in MiB (default 128).
    pub memory_mib: Option<u64>,
    /// Most host memory the host may hold for this plugin at once, in MiB,
    /// across all its instances: resource handles, `wasi:http` fields and
    /// bodies, storage batch results, compare-and-swap handles, streams
    /// (default: the plugin's `memory-mib`). A call that takes the plugin
    /// past it is stopped.
    pub host_memory_mib: Option<u64>,
    /// Maximum table elements of one instance (default 20000).
    pub table_elements: Option<u32>,
    /// Maximum instances of this plugin running at once (default 16).
    pub max_instances: Option<u32>,
    /// How long a call waits for a free instance when all are busy, in
    /// milliseconds, before it fails as busy (default 1000, at most the deadline).
    pub queue_ms: Option<u64>,
    /// Most keys in each storage bucket the plugin writes to (unlimited if unset).
    pub bucket_max_keys: Option<u64>,
    /// Most bytes (keys and values) in each storage bucket the plugin writes to (unlimited if unset).
    pub bucket_max_bytes: Option<u64>,
    /// Outgoing HTTP: time to resolve, connect and finish TLS, in milliseconds (default 10000).
    pub http_connect_timeout_ms: Option<u64>,
    /// Outgoing HTTP: time for a whole request, to the last byte of the
    /// response, in milliseconds (default 300000).
    pub http_timeout_ms: Option<u64>,
    /// Outgoing HTTP: largest response body, in bytes (default 33554432, 32 MiB).
    pub http_max_response_bytes: Option<u64>,
    /// Outgoing HTTP: requests of the plugin in flight at once (default 16).
    pub http_max_concurrent: Option<u32>,
    /// Idle instances kept warm for the next call, at most `max-instances`;
    /// 0 starts every call in a fresh instance. Each holds its memory and a
    /// slot of the instance pool. Provider plugins: default 4 (also from
    /// `[runtime.default-limits]`). Other kinds: 0 unless set in the
    /// plugin's own `[plugin.limits]`, because a warm instance keeps its
    /// guest globals from one call to the next.
    pub warm_instances: Option<u32>,
    /// Calls one warm instance serves before a fresh one replaces it, so
    /// what a long-lived instance accumulates (heap fragmentation, leaked
    /// handles) stays bounded. Default 1000; orchestrator plugins 1000000
    /// (a step is a short call made for every node, and a replaced
    /// orchestrator instance has every run in flight send its whole
    /// snapshot again).
    pub warm_max_uses: Option<u32>,
}

/// Limits with every value decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EffectiveLimits {
    /// Wall-clock deadline of one call.
    pub deadline_ms: u64,
    /// Fuel per call, if metered.
    pub fuel: Option<u64>,
    /// Maximum linear memory in bytes.
    pub memory_bytes: usize,
    /// Most host memory held for the plugin, in bytes.
    pub host_memory_bytes: usize,
    /// Maximum table elements.
    pub table_elements: usize,
    /// Maximum concurrent instances.
    pub max_instances: u32,
    /// Longest wait for a free instance.
    pub queue_ms: u64,
    /// Storage quota: keys per bucket.
    pub bucket_max_keys: Option<u64>,
    /// Storage quota: bytes per bucket.
    pub bucket_max_bytes: Option<u64>,
    /// Outgoing HTTP limits.
    pub http: convergio_cap_http::HttpLimits,
    /// Idle instances kept warm for the next call.
    pub warm_instances: u32,
    /// Calls one warm instance serves before it is replaced.
    pub warm_max_uses: u32,
}

impl Limits {
    /// Fill unset values from `defaults`, then from the built-in defaults.
    pub fn resolve(&self, defaults: &Limits) -> EffectiveLimits {
        let memory_mib = self.memory_mib.or(defaults.memory_mib).unwrap_or(128);
        let deadline_ms = self.deadline_ms.or(defaults.deadline_ms).unwrap_or(30_000);
        let max_instances = self.max_instances.or(defaults.max_instances).unwrap_or(16);
        EffectiveLimits {
            deadline_ms,
            queue_ms: self
                .queue_ms
                .or(defaults.queue_ms)
                .unwrap_or(1_000)
                .min(deadline_ms),
            fuel: self.fuel.or(defaults.fuel),
            memory_bytes: mib_to_bytes(memory_mib),
            host_memory_bytes: mib_to_bytes(
                self.host_memory_mib
                    .or(defaults.host_memory_mib)
                    .unwrap_or(memory_mib),
            ),
            table_elements: self
                .table_elements
                .or(defaults.table_elements)
                .unwrap_or(20_000) as usize,
            max_instances,
            warm_instances: self
                .warm_instances
                .or(defaults.warm_instances)
                .unwrap_or(4)
                .min(max_instances),
            warm_max_uses: self
                .warm_max_uses
                .or(defaults.warm_max_uses)
                .unwrap_or(WARM_MAX_USES),
            bucket_max_keys: self.bucket_max_keys.or(defaults.bucket_max_keys),
            bucket_max_bytes: self.bucket_max_bytes.or(defaults.bucket_max_bytes),
            http: {
                let builtin = convergio_cap_http::HttpLimits::default();
                let ms = |own: Option<u64>, default: Option<u64>, fallback: Duration| {
                    own.or(default).map_or(fallback, Duration::from_millis)
                };
                convergio_cap_http::HttpLimits {
                    connect_timeout: ms(
                        self.http_connect_timeout_ms,
                        defaults.http_connect_timeout_ms,
                        builtin.connect_timeout,
                    ),
                    total_timeout: ms(
                        self.http_timeout_ms,
                        defaults.http_timeout_ms,
                        builtin.total_timeout,
                    ),
                    max_response_bytes: self
                        .http_max_response_bytes
                        .or(defaults.http_max_response_bytes)
                        .unwrap_or(builtin.max_response_bytes),
                    max_concurrent: self
                        .http_max_concurrent
                        .or(defaults.http_max_concurrent)
                        .unwrap_or(builtin.max_concurrent),
                }
            },
        }
    }
}

/// Calls a warm instance serves by default ([`Limits::warm_max_uses`]).
pub const WARM_MAX_USES: u32 = 1_000;

/// Calls a warm orchestrator instance serves by default.
pub const ORCHESTRATOR_WARM_MAX_USES: u32 = 1_000_000;

/// `mib` MiB in bytes, saturating.
fn mib_to_bytes(mib: u64) -> usize {
    usize::try_from(mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX)
}

/// What the operator grants one plugin. Every field defaults to "nothing".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Grants {
    /// `wasi:logging`.
    #[serde(default)]
    pub logging: bool,
    /// `wasi:config`: the values the plugin reads. Present (even empty) grants the capability.
    #[serde(default)]
    pub config: Option<BTreeMap<String, String>>,
    /// `wasi:keyvalue`: buckets the plugin may open.
    #[serde(default)]
    pub storage: Vec<String>,
    /// `wasi:http`: outbound destinations, e.g. `https://api.openai.com` or `https://*.example.com:8443`.
    #[serde(default)]
    pub http: Vec<String>,
    /// BYOK keys (by provider or `provider/name`) the plugin may attach to requests.
    #[serde(default)]
    pub keys: Vec<String>,
    /// Model calls through the router.
    #[serde(default)]
    pub inference: bool,
    /// Local models the plugin may use.
    #[serde(default)]
    pub models: Vec<String>,
    /// Event topics the plugin may publish; `*` at the end matches any suffix.
    #[serde(default)]
    pub events: Vec<String>,
    /// Plugin management.
    #[serde(default)]
    pub admin: bool,
    /// Graph runs: start, wait for, read, answer and cancel them
    /// (`convergio:platform/runs`). Their node calls are made under the
    /// orchestrator plugin's `plugins` grant.
    #[serde(default)]
    pub runs: bool,
    /// Plugins whose exports this plugin may call.
    #[serde(default)]
    pub plugins: Vec<String>,
    /// Host directories the plugin sees through `wasi:filesystem`. Nothing
    /// else of the host's filesystem is visible.
    #[serde(default)]
    pub directories: Vec<DirectoryGrant>,
    /// Environment variables the plugin sees (none unless listed).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// One directory shared with a plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DirectoryGrant {
    /// Directory on the host, relative to `platform.toml`.
    pub host: PathBuf,
    /// Where the plugin sees it, e.g. `/data`.
    pub guest: String,
    /// Allow creating, changing and deleting files (default: read-only).
    #[serde(default)]
    pub writable: bool,
}

impl Grants {
    /// Names of the capabilities granted.
    pub fn capabilities(&self) -> Vec<Capability> {
        Capability::ALL
            .into_iter()
            .filter(|c| self.grants(*c))
            .collect()
    }

    /// Whether these grants give `capability`.
    pub fn grants(&self, capability: Capability) -> bool {
        let grants = self;
        match capability {
            Capability::Logging => grants.logging,
            Capability::Config => grants.config.is_some(),
            Capability::Storage => !grants.storage.is_empty(),
            Capability::Http => !grants.http.is_empty(),
            Capability::Keys => !grants.keys.is_empty(),
            Capability::Inference => grants.inference,
            Capability::LocalModel => !grants.models.is_empty(),
            Capability::Events => !grants.events.is_empty(),
            Capability::Admin => grants.admin,
            Capability::Runs => grants.runs,
            Capability::Plugins => !grants.plugins.is_empty(),
        }
    }
}

impl DirectoryGrant {
    /// The host directory, resolved against the folder of `platform`.
    fn path_from(&self, platform: &Path) -> PathBuf {
        self.host.join_relative_to(platform)
    }
}

/// What no directory grant may overlap: the platform's own files, each
/// with a name for messages, canonical.
fn protected_paths(
    config: &Path,
    runtime: &RuntimeSettings,
    local_models: &LocalModelSettings,
) -> Vec<(&'static str, PathBuf)> {
    let data_dir = runtime
        .data_dir
        .as_ref()
        .map_or_else(crate::paths::home, |d| d.join_relative_to(config));
    let mut out = Vec::new();
    if runtime.compile_cache {
        let cache = runtime.cache_dir.as_ref().map_or_else(
            || crate::paths::home().join("cache"),
            |d| d.join_relative_to(config),
        );
        out.push(("the compile cache ([runtime] cache-dir)", canonical(&cache)));
    }
    let models = local_models
        .cache_dir
        .as_ref()
        .map_or_else(|| data_dir.join("models"), |d| d.join_relative_to(config));
    out.push((
        "the model cache ([local-models] cache-dir)",
        canonical(&models),
    ));
    // The storage database, the usage ledger, the key vault and its master
    // key file all live here.
    out.push((
        "the data directory ([runtime] data-dir: storage, usage ledger, key vault, master key)",
        canonical(&data_dir),
    ));
    out
}

/// `path` made absolute with symlinks resolved, also when its last parts
/// do not exist yet (the data directory before its first use): the
/// longest existing ancestor is canonicalized, the rest appended.
fn canonical(path: &Path) -> PathBuf {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .unwrap_or_else(|_| PathBuf::from("/"))
            .join(path)
    };
    let mut rest = Vec::new();
    let mut base = absolute.as_path();
    loop {
        if let Ok(found) = base.canonicalize() {
            let mut out = found;
            for part in rest.iter().rev() {
                match part {
                    std::path::Component::ParentDir => {
                        out.pop();
                    }
                    std::path::Component::CurDir => {}
                    other => out.push(other),
                }
            }
            return out;
        }
        match (base.parent(), base.components().next_back()) {
            (Some(parent), Some(last)) => {
                rest.push(last);
                base = parent;
            }
            _ => return absolute,
        }
    }
}

/// The first line at or after `from` that names `host` as written, for
/// messages about one directory grant; `from` if none does.
fn line_after(text: &str, from: usize, host: &Path) -> usize {
    let after: Vec<&str> = text.lines().skip(from.saturating_sub(1)).collect();
    toml_file::line_of(&after.join("\n"), &format!("\"{}\"", host.display()))
        .map_or(from, |l| l + from.saturating_sub(1))
}

/// Paths in `platform.toml` are relative to the file's folder, and made
/// absolute (the compile cache needs an absolute path, and a path that does
/// not depend on the working directory is what an operator reads in logs).
trait RelativeToConfig {
    fn join_relative_to(&self, config: &Path) -> PathBuf;
}

impl RelativeToConfig for PathBuf {
    fn join_relative_to(&self, config: &Path) -> PathBuf {
        let joined = config.parent().unwrap_or(Path::new(".")).join(self);
        std::path::absolute(&joined).unwrap_or(joined)
    }
}

/// One `[[plugin]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PluginEntry {
    /// Plugin id: the name of this instance in the platform (grants, calls,
    /// storage, usage, logs). Usually the manifest's `id`; another id runs
    /// one more instance of the same component, e.g. a second account of
    /// one provider adapter.
    pub id: String,
    /// Path of the plugin's `plugin.toml`, relative to this file.
    pub manifest: PathBuf,
    /// Use this component file instead of the manifest's `component`.
    #[serde(default)]
    pub component: Option<PathBuf>,
    /// Capabilities granted to the plugin.
    #[serde(default)]
    pub grants: Grants,
    /// Limits of the plugin.
    #[serde(default)]
    pub limits: Limits,
}

/// A plugin entry joined with its manifest, paths resolved.
#[derive(Debug, Clone)]
pub struct PluginSpec {
    /// Plugin id: the instance's name, from `[[plugin]] id`.
    pub id: String,
    /// The manifest; its `id` names the component (see [`PluginSpec::component_id`]).
    pub manifest: PluginManifest,
    /// Where the manifest was read from.
    pub manifest_path: PathBuf,
    /// The component file.
    pub component_path: PathBuf,
    /// Grants from `platform.toml`.
    pub grants: Grants,
    /// Decided limits.
    pub limits: EffectiveLimits,
    /// Where this plugin's entry starts in `platform.toml` (`file:line`).
    pub config_location: String,
}

impl PluginSpec {
    /// The component's name, the manifest's `id`: the same for every
    /// instance of one component.
    pub fn component_id(&self) -> &str {
        &self.manifest.id
    }
}

/// A parsed and checked `platform.toml`.
#[derive(Debug, Clone)]
pub struct Platform {
    /// The file it came from.
    pub path: PathBuf,
    /// Settings.
    pub runtime: RuntimeSettings,
    /// The inference router's settings.
    pub inference: InferenceSettings,
    /// The key vault's rotation policy.
    pub keys: KeySettings,
    /// Local models.
    pub local_models: LocalModelSettings,
    /// Agent graphs.
    pub graphs: GraphSettings,
    /// Plugins, in file order.
    pub plugins: Vec<PluginSpec>,
}

impl Platform {
    /// Read `platform.toml` and every manifest it names, and check them.
    /// Every problem found is reported at once in [`Error::Invalid`].
    pub fn load(path: &Path) -> Result<Self> {
        let (config, text): (PlatformConfig, _) = toml_file::read(path)?;
        Self::from_config(path, &text, config)
    }

    /// Check an already parsed configuration; `text` is the file's contents
    /// (used to point at lines).
    pub fn from_config(path: &Path, text: &str, config: PlatformConfig) -> Result<Self> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut problems = Vec::new();
        let mut plugins = Vec::new();
        let mut seen = BTreeSet::new();
        let ids: BTreeSet<&str> = config.plugins.iter().map(|p| p.id.as_str()).collect();

        let protected = protected_paths(path, &config.runtime, &config.local_models);

        if config.runtime.epoch_tick_ms == 0 {
            problems.push(format!(
                "{}: field `runtime.epoch-tick-ms`: must be at least 1",
                path.display()
            ));
        }

        for entry in &config.plugins {
            let line = toml_file::line_of(text, &format!("id = \"{}\"", entry.id)).unwrap_or(1);
            let at = format!("{}:{line}", path.display());
            if let Some(p) = id_problem(&entry.id) {
                problems.push(format!("{at}: field `id`: {p}"));
            }
            if !seen.insert(entry.id.clone()) {
                problems.push(format!(
                    "{at}: plugin `{}` is listed twice; each [[plugin]] needs its own id",
                    entry.id
                ));
            }
            for callee in &entry.grants.plugins {
                if !ids.contains(callee.as_str()) {
                    problems.push(format!(
                        "{at}: field `grants.plugins`: plugin `{}` may call `{callee}`, but no [[plugin]] has id = \"{callee}\"",
                        entry.id
                    ));
                }
            }
            let mut grants = entry.grants.clone();
            for dir in &mut grants.directories {
                dir.host = dir.path_from(path);
                if !dir.host.is_dir() {
                    problems.push(format!(
                        "{at}: field `grants.directories`: {} is not a directory; create it or fix `host`",
                        dir.host.display()
                    ));
                }
                if !dir.guest.starts_with('/') {
                    problems.push(format!(
                        "{at}: field `grants.directories`: guest path `{}` must be absolute, e.g. \"/data\"",
                        dir.guest
                    ));
                }
            }
            for (written, dir) in entry.grants.directories.iter().zip(&grants.directories) {
                let granted = canonical(&dir.host);
                for (what, protected) in &protected {
                    if granted.starts_with(protected) || protected.starts_with(&granted) {
                        let grant_line = line_after(text, line, &written.host);
                        problems.push(format!(
                            "{}:{grant_line}: field `grants.directories`: plugin `{}` is granted {} (as `{}`), which overlaps {what} {}; a plugin must never see the platform's own files: grant a directory outside it, or move {what} elsewhere",
                            path.display(),
                            entry.id,
                            granted.display(),
                            dir.guest,
                            protected.display()
                        ));
                        // One message per grant: the most specific path first.
                        break;
                    }
                }
            }
            if let Err(bad) = convergio_cap_http::HttpPolicy::parse(
                &grants.http,
                &grants.keys,
                convergio_cap_http::HttpLimits::default(),
            ) {
                for e in bad {
                    problems.push(format!("{at}: field `grants.http`: {e}"));
                }
            }
            let limits = entry.limits.resolve(&config.runtime.default_limits);
            if limits.http.max_concurrent == 0 {
                problems.push(format!(
                    "{at}: field `limits.http-max-concurrent` must be at least 1"
                ));
            }
            let pool_bytes = config.runtime.pool_memory_mib.saturating_mul(1 << 20);
            if limits.memory_bytes as u64 > pool_bytes {
                problems.push(format!(
                    "{at}: field `limits.memory-mib`: plugin `{}` asks for {} MiB but [runtime] pool-memory-mib is {}; raise pool-memory-mib or lower memory-mib",
                    entry.id,
                    limits.memory_bytes >> 20,
                    config.runtime.pool_memory_mib
                ));
            }
            if limits.host_memory_bytes == 0 {
                problems.push(format!(
                    "{at}: field `limits.host-memory-mib` must be at least 1 (the host needs some memory to call a plugin at all)"
                ));
            }
            if limits.max_instances == 0 || limits.deadline_ms == 0 || limits.warm_max_uses == 0 {
                problems.push(format!(
                    "{at}: fields `limits.max-instances`, `limits.deadline-ms` and `limits.warm-max-uses` must be at least 1"
                ));
            }

            let manifest_path = dir.join(&entry.manifest);
            let manifest = match PluginManifest::load(&manifest_path) {
                Ok(m) => m,
                Err(err) => {
                    problems.push(format!("{at}: plugin `{}`: {err}", entry.id));
                    continue;
                }
            };
            problems.extend(manifest.problems(&manifest_path));
            let component_path = match &entry.component {
                Some(c) => dir.join(c),
                None => manifest.component.clone(),
            };
            if !component_path.is_file() {
                problems.push(format!(
                    "{at}: plugin `{}`: component file {} does not exist (build it with `cargo xtask build-components`, or fix `component` in {})",
                    entry.id,
                    component_path.display(),
                    manifest_path.display()
                ));
            }
            let mut limits = limits;
            if manifest.kind == crate::PluginKind::Orchestrator
                && entry.limits.warm_max_uses.is_none()
                && config.runtime.default_limits.warm_max_uses.is_none()
            {
                limits.warm_max_uses = ORCHESTRATOR_WARM_MAX_USES;
            }
            if manifest.kind != crate::PluginKind::Provider {
                // A warm instance keeps guest globals between calls: each
                // tool or agent plugin opts in on its own.
                limits.warm_instances = entry
                    .limits
                    .warm_instances
                    .unwrap_or(0)
                    .min(limits.max_instances);
            }
            plugins.push(PluginSpec {
                id: entry.id.clone(),
                manifest,
                manifest_path,
                component_path,
                grants,
                limits,
                config_location: at,
            });
        }

        let mut runtime = config.runtime;
        runtime.resolve_paths(path);
        let mut local_models = config.local_models;
        if let Some(cache) = local_models.cache_dir.take() {
            local_models.cache_dir = Some(dir.join(cache));
        }
        let mut graphs = config.graphs;
        if let Some(journal) = graphs.journal.take() {
            graphs.journal = Some(dir.join(journal));
        }
        if graphs.checkpoint_every == 0 {
            problems.push(format!(
                "{}: field `graphs.checkpoint-every`: must be at least 1",
                path.display()
            ));
        }
        if let Some(id) = &graphs.orchestrator {
            match plugins.iter().find(|p: &&PluginSpec| &p.id == id) {
                None => problems.push(format!(
                    "{}: field `graphs.orchestrator`: no [[plugin]] has id = {id:?}",
                    path.display()
                )),
                Some(p) if p.manifest.kind != crate::PluginKind::Orchestrator => problems.push(format!(
                    "{}: field `graphs.orchestrator`: plugin `{id}` is a {} plugin, not an orchestrator",
                    path.display(),
                    p.manifest.kind.name()
                )),
                Some(_) => {}
            }
        }
        if problems.is_empty() {
            Ok(Self {
                path: path.to_path_buf(),
                runtime,
                inference: config.inference,
                keys: config.keys,
                local_models,
                graphs,
                plugins,
            })
        } else {
            Err(Error::Invalid(problems))
        }
    }
}
