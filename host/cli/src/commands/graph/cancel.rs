//! `convergio graph cancel`: stop a run.

use std::process::ExitCode;

use anyhow::Result;
use convergio_journal::RunId;

use super::driver;
use crate::shared::PlatformFile;

/// Cancel a run that this host does not drive elsewhere: its calls in
/// flight are stopped and recorded as cancelled, and it will not run again.
#[derive(Debug, clap::Args)]
pub struct CancelArgs {
    /// The run.
    run: String,
    /// Why, for the record.
    #[arg(long, default_value = "cancelled by the operator")]
    reason: String,
}

impl CancelArgs {
    /// Cancel and wait for the cancellation to be journaled.
    pub fn run(self, platform: &PlatformFile) -> Result<ExitCode> {
        let d = driver(platform, None)?;
        let run = RunId::from(self.run);
        d.rt.block_on(async {
            d.runs.cancel(&run, &self.reason).await?;
            d.runs.wait(&run).await?;
            eprintln!("run {run} cancelled");
            Ok(ExitCode::SUCCESS)
        })
    }
}
