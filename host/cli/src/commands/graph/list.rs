//! `convergio graph list`: the runs in the journal.

use std::process::ExitCode;

use anyhow::Result;

use super::{journal, when};
use crate::shared::PlatformFile;

/// List the runs of this platform's journal, oldest first: id, status,
/// when it last changed, and the run it was forked from.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

impl ListArgs {
    /// Print the runs.
    pub fn run(self, platform: &PlatformFile) -> Result<ExitCode> {
        let store = journal(platform)?;
        let runs = store.list_runs()?;
        if runs.is_empty() && !self.json {
            eprintln!("no runs yet");
        }
        for info in runs {
            let parent = info.parent.as_ref().map(|(p, seq)| format!("{p}@{seq}"));
            if self.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "id": info.id.as_str(), "status": info.status.as_str(), "graph": info.graph_hash,
                        "created-ms": info.created_ms, "updated-ms": info.updated_ms, "forked-from": parent,
                    })
                );
            } else {
                println!(
                    "{:<40} {:<9} {}{}",
                    info.id,
                    info.status.as_str(),
                    when(info.updated_ms),
                    parent
                        .map(|p| format!("  forked from {p}"))
                        .unwrap_or_default()
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
