//! `convergio graph`: agent graph documents. One module per verb.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use crate::shared::PlatformFile;

pub mod validate;

/// Work with agent graphs (YAML or JSON documents; see docs/graphs.md).
#[derive(Debug, clap::Args)]
pub struct GraphArgs {
    #[command(subcommand)]
    command: GraphCommand,
}

/// The verbs of `convergio graph`.
#[derive(Debug, Subcommand)]
enum GraphCommand {
    Validate(validate::ValidateArgs),
}

impl GraphArgs {
    /// Run the `graph` subcommand.
    pub fn run(self, platform: &PlatformFile) -> Result<ExitCode> {
        match self.command {
            GraphCommand::Validate(args) => args.run(platform),
        }
    }
}
