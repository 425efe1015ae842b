//! `convergio`: the operator's command line.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use convergio_runtime::{Platform, Runtime};

mod chat;
mod init;
mod keys;
mod log;
mod models;
mod scaffold;

/// Host memory that plugins cause is counted per plugin (`host-memory-mib`).
#[global_allocator]
static ALLOCATOR: convergio_runtime::HostAllocator = convergio_runtime::HostAllocator;

/// Convergio: a WebAssembly component host for multi-agent LLM systems.
#[derive(Debug, Parser)]
#[command(
    name = "convergio",
    version,
    about = "Convergio: a WebAssembly component host for multi-agent LLM systems"
)]
struct Cli {
    /// The platform configuration to use (`convergio init` writes one).
    #[arg(
        long,
        short,
        global = true,
        env = "CONVERGIO_CONFIG",
        default_value = "platform.toml"
    )]
    config: PathBuf,

    /// Log filter for stderr (e.g. `info`, `convergio_runtime=debug`); also RUST_LOG.
    #[arg(long, global = true, env = "CONVERGIO_LOG", default_value = "warn")]
    log: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a commented default platform.toml (zero-cloud: local models
    /// only, no key needed) at --config, which is ./platform.toml unless
    /// named. An existing file is left alone unless --force.
    Init {
        /// The `components` folder of a Convergio checkout (the one holding
        /// `provider-local/plugin.toml`); default: `components` beside the
        /// new platform.toml.
        #[arg(long)]
        components: Option<PathBuf>,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Validate platform.toml and every plugin manifest, compile and link every
    /// component, and report every problem at once.
    Check,
    /// Manage plugins.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Call an export of a loaded plugin and print the result as JSON.
    ///
    /// FUNCTION is `interface#name` (e.g. `convergio:platform/tool@0.1.0#invoke`),
    /// `short.name` (e.g. `tool.invoke`) or just `name` when unique.
    /// JSON_ARGS is a JSON array of the arguments in order, or an object keyed
    /// by parameter name. Exits with status 1 when the function returns `err`.
    Invoke {
        /// Plugin id.
        plugin: String,
        /// Function to call.
        function: String,
        /// Arguments as JSON.
        #[arg(default_value = "[]")]
        args: String,
    },
    /// Keep the platform loaded: hot-reload plugins whose component file
    /// changes and print every event plugins publish, one JSON line each,
    /// until Ctrl-C. When plugins are granted keys, the key vault is
    /// maintained in the background: at start and then periodically, grace
    /// periods that ended are swept, a newer master key version is picked up,
    /// and keys near their expiry or maximum age are logged as warnings.
    Run {
        /// How often to run the key vault's maintenance (`1h`, `30m`, …).
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        key_maintenance_every: std::time::Duration,
    },
    /// Ask a model through the platform's router, printing tokens as they
    /// arrive (usage and cost go to stderr).
    Chat {
        /// `provider/model`, e.g. `openai/gpt-6-luna`; default: chosen by --policy.
        #[arg(long, short)]
        model: Option<String>,
        /// How to choose when no model is named.
        #[arg(long, value_enum, default_value = "cheapest")]
        policy: chat::Policy,
        /// A system message.
        #[arg(long)]
        system: Option<String>,
        /// Most tokens to generate.
        #[arg(long)]
        max_tokens: Option<u32>,
        /// Sampling temperature (0: always the most likely token).
        #[arg(long)]
        temperature: Option<f32>,
        /// Seed of the sampler, for repeatable answers.
        #[arg(long)]
        seed: Option<u64>,
        /// List the models the router can use, with prices, and exit.
        #[arg(long)]
        list: bool,
        /// The prompt (`-` reads it from stdin).
        #[arg(default_value = "", required_unless_present = "list")]
        prompt: String,
    },
    /// Model calls per plugin, agent and model, with tokens and cost (from
    /// the usage ledger; this month unless --since is given).
    Usage {
        /// Only usage since this date (`2026-11-01` or RFC 3339).
        #[arg(long)]
        since: Option<String>,
    },
    /// Manage the local model cache (GGUF files for llama.cpp).
    Models {
        #[command(subcommand)]
        command: models::ModelsCommand,
    },
    /// Manage BYOK provider keys (encrypted at rest; secrets are never printed).
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Create a new plugin crate from a template.
    New {
        /// What to create.
        kind: NewKind,
        /// Plugin id (lowercase letters, digits, dashes); also the folder name.
        name: String,
        /// Folder to create the crate in (default: ./NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Print the JSON Schema of platform.toml or plugin.toml.
    Schema {
        /// Which file.
        file: SchemaFile,
    },
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// List the plugins platform.toml loads, with grants and the names of
    /// their exports.
    List {
        /// Print JSON (with the type of each export) instead of text.
        #[arg(long)]
        json: bool,
        /// Print the type of each export under its name.
        #[arg(long, short)]
        verbose: bool,
    },
}

/// Kinds of plugin `new` can create.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum NewKind {
    /// A tool component.
    Tool,
    /// A model provider adapter.
    Provider,
    /// An agent.
    Agent,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SchemaFile {
    /// platform.toml.
    Platform,
    /// plugin.toml.
    Plugin,
}

/// Crates whose debug and trace output is about compiling code, not about
/// the platform: millions of lines per component at `trace`.
const COMPILER_TARGETS: [&str; 4] = [
    "cranelift_codegen",
    "cranelift_frontend",
    "regalloc2",
    "wasmtime_internal_cranelift",
];

/// The user's filter, with the compiler's internals kept at `info` unless the
/// filter names them itself.
fn log_filter(filter: &str) -> String {
    let mut out = filter.to_owned();
    for target in COMPILER_TARGETS {
        if !filter.contains(target) {
            out.push_str(&format!(",{target}=info"));
        }
    }
    out
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let config_source = matches.value_source("config");
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| cli.log.clone());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(log_filter(&filter)))
        .with_writer(log::OneLine {
            ansi: std::io::stderr().is_terminal(),
        })
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match run(cli, config_source) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", describe(&err));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, each cause once: a message that
/// already quotes its cause (`cannot read x: No such file`) does not get
/// it again.
fn describe(err: &anyhow::Error) -> String {
    let mut out = err.to_string();
    for cause in err.chain().skip(1) {
        let cause = cause.to_string();
        if !out.contains(&cause) {
            out.push_str(": ");
            out.push_str(&cause);
        }
    }
    out
}

/// Fail with what to do when the platform file does not exist; `source`
/// says how its path was chosen.
fn require_config(config: &std::path::Path, source: Option<ValueSource>) -> Result<()> {
    if config.exists() {
        return Ok(());
    }
    let shown = config.display();
    match source {
        Some(ValueSource::CommandLine) => anyhow::bail!(
            "{shown} does not exist (named by --config); fix the path, or create the file with `convergio --config {shown} init`"
        ),
        Some(ValueSource::EnvVariable) => anyhow::bail!(
            "{shown} does not exist (named by CONVERGIO_CONFIG); fix the variable, or create the file with `convergio init`"
        ),
        _ => {
            let cwd = std::env::current_dir()
                .map(|d| d.display().to_string())
                .unwrap_or_else(|_| "the current directory".into());
            anyhow::bail!(
                "no {shown} in {cwd}: without --config or CONVERGIO_CONFIG, convergio reads ./{shown}. Pass --config FILE, set CONVERGIO_CONFIG=FILE, or write a default platform here with `convergio init`"
            )
        }
    }
}

fn run(cli: Cli, config_source: Option<ValueSource>) -> Result<ExitCode> {
    if matches!(
        cli.command,
        Command::Check
            | Command::Plugin { .. }
            | Command::Invoke { .. }
            | Command::Run { .. }
            | Command::Chat { .. }
    ) {
        require_config(&cli.config, config_source)?;
    }
    match cli.command {
        Command::Init { components, force } => {
            init::run(&cli.config, components.as_deref(), force)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check => check(&cli.config),
        Command::Plugin {
            command: PluginCommand::List { json, verbose },
        } => list(&cli.config, json, verbose),
        Command::Invoke {
            plugin,
            function,
            args,
        } => invoke(&cli.config, &plugin, &function, &args),
        Command::Run {
            key_maintenance_every,
        } => serve(&cli.config, key_maintenance_every),
        Command::Chat {
            model,
            policy,
            system,
            max_tokens,
            temperature,
            seed,
            list,
            prompt,
        } => chat::run(
            &cli.config,
            chat::ChatArgs {
                model,
                policy,
                system,
                max_tokens,
                temperature,
                seed,
                prompt,
                list,
            },
        ),
        Command::Usage { since } => usage(&cli.config, since.as_deref()),
        Command::Models { command } => {
            let dir = models::dir(&cli.config, &data_dir(&cli.config)?)?;
            models::run(command, &dir)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys { command } => {
            let policy = if cli.config.is_file() {
                convergio_runtime::PlatformConfig::read(&cli.config)?.keys
            } else {
                convergio_runtime::KeySettings::default()
            };
            keys::run(command, &data_dir(&cli.config)?, policy.vault_options())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::New { kind, name, dir } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
            scaffold::create(kind, &name, &dir)?;
            println!("created {} in {}", name, dir.display());
            println!(
                "build it:  cd {} && cargo build --target wasm32-wasip2 --release",
                dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema { file } => {
            print!(
                "{}",
                match file {
                    SchemaFile::Platform => convergio_runtime::schema::platform_schema(),
                    SchemaFile::Plugin => convergio_runtime::schema::manifest_schema(),
                }
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The data directory: `[runtime] data-dir` of the platform if its file
/// exists, else `$CONVERGIO_HOME`.
fn data_dir(config: &std::path::Path) -> Result<PathBuf> {
    if config.is_file()
        && let Some(dir) = convergio_runtime::PlatformConfig::read(config)?
            .runtime
            .data_dir
    {
        return Ok(dir);
    }
    Ok(convergio_runtime::paths::home())
}

fn usage(config: &std::path::Path, since: Option<&str>) -> Result<ExitCode> {
    use convergio_runtime::inference::{Ledger, day_of, month_start};
    let path = data_dir(config)?.join("usage.db");
    if !path.is_file() {
        println!(
            "no model calls recorded yet ({} does not exist)",
            path.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let since_day = match since {
        Some(text) => day_of(keys::date(text)?),
        None => month_start(day_of(std::time::SystemTime::now())),
    };
    let ledger = Ledger::open(&path)?;
    let lines = ledger.report(since_day)?;
    if lines.is_empty() {
        println!("no model calls in this period");
    }
    for l in lines {
        println!(
            "{}{}  {}  {} calls  {} in  {} out  ${:.6}{}",
            l.plugin,
            l.agent.map(|a| format!(" (agent {a})")).unwrap_or_default(),
            l.model,
            l.calls,
            l.input_tokens,
            l.output_tokens,
            l.cost_micro_usd as f64 / 1_000_000.0,
            if l.errors > 0 {
                format!("  {} failed", l.errors)
            } else {
                String::new()
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn tokio() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub(crate) fn load(config: &std::path::Path) -> Result<(tokio::runtime::Runtime, Runtime)> {
    let platform = Platform::load(config)?;
    let rt = tokio()?;
    let runtime = rt.block_on(Runtime::new(&platform))?;
    Ok((rt, runtime))
}

fn check(config: &std::path::Path) -> Result<ExitCode> {
    let problems = match Platform::load(config) {
        Ok(platform) => match tokio()?.block_on(Runtime::new(&platform)) {
            Ok(runtime) => {
                println!(
                    "ok: {} plugin(s) load and link: {}",
                    runtime.plugin_ids().len(),
                    runtime.plugin_ids().join(", ")
                );
                return Ok(ExitCode::SUCCESS);
            }
            Err(err) => err.to_string(),
        },
        Err(err) => err.to_string(),
    };
    let count = problems.lines().count();
    for line in problems.lines() {
        println!("error: {line}");
    }
    println!("{count} problem(s) found in {}", config.display());
    Ok(ExitCode::FAILURE)
}

fn list(config: &std::path::Path, json: bool, verbose: bool) -> Result<ExitCode> {
    let (_rt, runtime) = load(config)?;
    let plugins = runtime.plugins();
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &plugins)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    for p in &plugins {
        // An instance named apart from its component shows both.
        let name = if p.id == p.component_id {
            p.id.clone()
        } else {
            format!("{}: {}", p.id, p.component_id)
        };
        writeln!(
            out,
            "{name} {} ({}), generation {}",
            p.version, p.kind, p.generation
        )?;
        let caps = if p.capabilities.is_empty() {
            "none".to_string()
        } else {
            p.capabilities.join(", ")
        };
        writeln!(out, "  granted: {caps}")?;
        for (name, signature) in &p.exports {
            writeln!(out, "  export {name}")?;
            if verbose {
                writeln!(out, "    {signature}")?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn serve(config: &std::path::Path, key_maintenance_every: std::time::Duration) -> Result<ExitCode> {
    let (rt, runtime) = load(config)?;
    // Stops when dropped, on the way out.
    let _maintenance = runtime
        .vault()
        .map(|vault| {
            vault.spawn_maintenance(key_maintenance_every, |pass| match pass {
                Ok(report) => report.log(),
                Err(error) => tracing::warn!(%error, "key vault maintenance failed"),
            })
        })
        .transpose()
        .context("cannot start the key vault's maintenance")?;
    rt.block_on(async {
        let _watch = runtime.watch()?;
        let mut events = runtime.subscribe();
        eprintln!(
            "convergio: {} plugin(s) loaded ({}); watching their component files; Ctrl-C stops",
            runtime.plugin_ids().len(),
            runtime.plugin_ids().join(", ")
        );
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                event = events.recv() => match event {
                    Ok(e) => println!(
                        "{}",
                        serde_json::json!({"source": e.source, "topic": e.topic, "payload": e.payload, "timestamp-ms": e.timestamp_ms})
                    ),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!("{n} events were dropped: the output is too slow");
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                },
            }
        }
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

fn invoke(config: &std::path::Path, plugin: &str, function: &str, args: &str) -> Result<ExitCode> {
    let args: serde_json::Value =
        serde_json::from_str(args).with_context(|| format!("JSON_ARGS is not JSON: {args}"))?;
    let (rt, runtime) = load(config)?;
    let result = rt.block_on(runtime.invoke_json(plugin, function, &args))?;
    println!("{}", serde_json::to_string_pretty(&result)?);
    let failed = result
        .as_object()
        .is_some_and(|o| o.len() == 1 && o.contains_key("err"));
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
