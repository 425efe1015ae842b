//! `convergio plugin`: the plugins a platform loads.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use crate::shared::PlatformFile;

/// Manage plugins.
#[derive(Debug, clap::Args)]
pub struct PluginArgs {
    #[command(subcommand)]
    command: PluginCommand,
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

impl PluginArgs {
    /// Run the `plugin` subcommand on the platform.
    pub fn run(self, platform: &PlatformFile) -> Result<ExitCode> {
        match self.command {
            PluginCommand::List { json, verbose } => list(platform, json, verbose),
        }
    }
}

fn list(platform: &PlatformFile, json: bool, verbose: bool) -> Result<ExitCode> {
    let (_rt, runtime) = platform.load()?;
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
