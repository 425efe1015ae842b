//! `convergio graph prune`: retention.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;

use super::journal;
use crate::shared::PlatformFile;

/// Delete the runs that are over (done, failed, cancelled) and last changed
/// longer ago than --older-than, with their journal, checkpoints and the
/// large outputs only they used. A run whose journal a remaining fork
/// shares is kept until the fork goes.
#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// The age (`30d`, `12h`, …).
    #[arg(long, value_parser = humantime::parse_duration)]
    older_than: Duration,
}

impl PruneArgs {
    /// Prune and say what went.
    pub fn run(self, platform: &PlatformFile) -> Result<ExitCode> {
        let store = journal(platform)?;
        let pruned = convergio_cap_runs::prune(&*store, self.older_than)?;
        eprintln!(
            "{} run(s) deleted, {} blob(s) freed{}",
            pruned.runs.len(),
            pruned.blobs,
            if pruned.kept_for_forks.is_empty() {
                String::new()
            } else {
                format!(
                    "; kept for their forks: {}",
                    pruned
                        .kept_for_forks
                        .iter()
                        .map(|r| r.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        );
        for run in pruned.runs {
            println!("{run}");
        }
        Ok(ExitCode::SUCCESS)
    }
}
