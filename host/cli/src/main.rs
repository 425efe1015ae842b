//! `convergio`: the operator's command line. This file parses the command
//! line and dispatches; each verb lives in its own module of [`commands`].

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::commands::{
    agent, chat, check, graph, init, invoke, keys, knowledge, models, new, plugin, run, schema,
    usage,
};
use crate::shared::PlatformFile;

mod commands;
mod log;
mod shared;

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

/// The verbs, in the order `--help` lists them; each one's help is the doc
/// comment of its `Args` struct.
#[derive(Debug, Subcommand)]
enum Command {
    Init(init::InitArgs),
    Check(check::CheckArgs),
    Plugin(plugin::PluginArgs),
    Invoke(invoke::InvokeArgs),
    Run(run::RunArgs),
    Chat(chat::ChatArgs),
    Graph(graph::GraphArgs),
    Agent(agent::AgentArgs),
    Knowledge(knowledge::KnowledgeArgs),
    Usage(usage::UsageArgs),
    Models(models::ModelsArgs),
    Keys(keys::KeysArgs),
    New(new::NewArgs),
    Schema(schema::SchemaArgs),
}

impl Command {
    fn run(self, platform: &PlatformFile) -> Result<ExitCode> {
        match self {
            Self::Init(args) => args.run(platform),
            Self::Check(args) => args.run(platform),
            Self::Plugin(args) => args.run(platform),
            Self::Invoke(args) => args.run(platform),
            Self::Run(args) => args.run(platform),
            Self::Chat(args) => args.run(platform),
            Self::Graph(args) => args.run(platform),
            Self::Agent(args) => args.run(platform),
            Self::Knowledge(args) => args.run(platform),
            Self::Usage(args) => args.run(platform),
            Self::Models(args) => args.run(platform),
            Self::Keys(args) => args.run(platform),
            Self::New(args) => args.run(),
            Self::Schema(args) => args.run(),
        }
    }
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let config_source = matches.value_source("config");
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    log::init(&cli.log);
    let platform = PlatformFile::new(cli.config, config_source);
    match cli.command.run(&platform) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", shared::describe(&err));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    #[test]
    fn every_verb_and_option_is_well_formed() {
        Cli::command().debug_assert();
    }
}
