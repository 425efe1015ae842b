//! `convergio graph checkpoints`: the steps of a run, to inspect or fork.

use std::process::ExitCode;

use anyhow::Result;
use convergio_journal::RunId;

use super::{journal, when};
use crate::shared::PlatformFile;

/// List a run's steps: each is a point to see the state at (`graph state
/// RUN --at SEQ`) or to fork from (`graph fork RUN SEQ`), with what
/// happened to nodes in it.
#[derive(Debug, clap::Args)]
pub struct CheckpointsArgs {
    /// The run.
    run: String,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

impl CheckpointsArgs {
    /// Print the steps.
    pub fn run(self, platform: &PlatformFile) -> Result<ExitCode> {
        let store = journal(platform)?;
        let steps = convergio_cap_runs::steps(&*store, &RunId::from(self.run))?;
        for step in steps {
            if self.json {
                println!("{}", serde_json::to_string(&step)?);
                continue;
            }
            let events: Vec<String> = step
                .events
                .iter()
                .map(|e| format!("{} {}", e.node, e.event))
                .collect();
            let status = serde_json::to_value(&step.status)?;
            println!(
                "seq {:<6} {}  step {:<4} {:<8} {}",
                step.seq,
                when(step.at_ms),
                step.version,
                status
                    .get("status")
                    .and_then(|s| s.as_str())
                    .unwrap_or_default(),
                events.join(", ")
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}
