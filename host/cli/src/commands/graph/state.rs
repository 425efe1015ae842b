//! `convergio graph state`: a run's state, now or at a step.

use std::process::ExitCode;

use anyhow::Result;
use convergio_journal::RunId;

use super::journal;
use crate::shared::PlatformFile;

/// Print a run's state (its state keys, as JSON), now or as it stood after
/// the step at seq --at (`graph checkpoints RUN` lists them).
#[derive(Debug, clap::Args)]
pub struct StateArgs {
    /// The run.
    run: String,
    /// The seq of a step.
    #[arg(long)]
    at: Option<u64>,
}

impl StateArgs {
    /// Print the state.
    pub fn run(self, platform: &PlatformFile) -> Result<ExitCode> {
        let store = journal(platform)?;
        let view = convergio_cap_runs::fold(&*store, &RunId::from(self.run), self.at)?;
        let values = view.snapshot.get("values").cloned().unwrap_or_default();
        println!("{}", serde_json::to_string_pretty(&values)?);
        Ok(ExitCode::SUCCESS)
    }
}
