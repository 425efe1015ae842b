//! `convergio graph resume`: drive runs again; answer interrupts.

use std::process::ExitCode;

use anyhow::{Result, bail};
use convergio_journal::RunId;

use super::{FollowArgs, driver, json_arg, settle};
use crate::shared::PlatformFile;

/// Drive a run again after this host stopped (the calls that were in
/// flight run again with their idempotency keys; nothing journaled runs
/// twice), or answer one of its interrupts with --interrupt and --input.
/// With --all, resume every run the journal says is running.
#[derive(Debug, clap::Args)]
pub struct ResumeArgs {
    /// The run (or --all).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    run: Option<String>,
    /// Every run that is running and that no live host drives.
    #[arg(long)]
    all: bool,
    /// The interrupt to answer.
    #[arg(long, requires = "input", requires = "run")]
    interrupt: Option<String>,
    /// The answer (JSON), validated against the interrupt's schema.
    #[arg(long, requires = "interrupt")]
    input: Option<String>,
    #[command(flatten)]
    show: FollowArgs,
}

impl ResumeArgs {
    /// Resume, then wait for the run(s).
    pub fn run(self, platform: &PlatformFile) -> Result<ExitCode> {
        let d = driver(platform, None)?;
        d.rt.block_on(async {
            if self.all {
                let resumed = d.runs.resume_all().await?;
                if resumed.is_empty() {
                    eprintln!("no run to resume");
                    return Ok(ExitCode::SUCCESS);
                }
                let mut failed = 0;
                for run in &resumed {
                    let status = d.runs.wait(run).await?;
                    eprintln!("run {run}: {}", status_word(&status));
                    if matches!(
                        status,
                        convergio_cap_runs::Status::Failed { .. }
                            | convergio_cap_runs::Status::Cancelled { .. }
                    ) {
                        failed += 1;
                    }
                }
                eprintln!(
                    "{} runs resumed, {failed} failed or cancelled",
                    resumed.len()
                );
                return Ok(if failed == 0 {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                });
            }
            let Some(run) = self.run.map(RunId::from) else {
                bail!("name a run, or pass --all");
            };
            let after = d.runs.view(&run).await?.seq;
            match (&self.interrupt, &self.input) {
                (Some(interrupt), Some(input)) => {
                    let value = json_arg("--input", input)?;
                    d.runs.answer(&run, interrupt, value).await?;
                }
                _ => d.runs.resume(&run).await?,
            }
            settle(&d.runs, &run, self.show, after).await
        })
    }
}

fn status_word(status: &convergio_cap_runs::Status) -> String {
    match status {
        convergio_cap_runs::Status::Done { .. } => "done".to_owned(),
        convergio_cap_runs::Status::Waiting => "waiting for input".to_owned(),
        convergio_cap_runs::Status::Running => "running".to_owned(),
        convergio_cap_runs::Status::Failed { error } => format!("failed: {error}"),
        convergio_cap_runs::Status::Cancelled { reason } => format!("cancelled: {reason}"),
    }
}
