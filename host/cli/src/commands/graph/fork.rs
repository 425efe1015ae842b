//! `convergio graph fork`: a new run from a step of another.

use std::process::ExitCode;

use anyhow::Result;
use convergio_journal::RunId;

use super::{FollowArgs, driver, json_arg, settle};
use crate::shared::PlatformFile;

/// Start a new run from a run as it stood after the step at SEQ (`graph
/// checkpoints RUN` lists them), optionally with state keys patched, and
/// drive it. The fork shares its parent's journal up to SEQ; the parent is
/// unchanged.
#[derive(Debug, clap::Args)]
pub struct ForkArgs {
    /// The run to fork.
    run: String,
    /// The seq of the step to fork from.
    seq: u64,
    /// State keys to write over the state at SEQ (a JSON object).
    #[arg(long)]
    patch: Option<String>,
    #[command(flatten)]
    show: FollowArgs,
}

impl ForkArgs {
    /// Fork and wait for the new run.
    pub fn run(self, platform: &PlatformFile) -> Result<ExitCode> {
        let patch = self
            .patch
            .as_deref()
            .map(|p| json_arg("--patch", p))
            .transpose()?;
        let d = driver(platform, None)?;
        d.rt.block_on(async {
            let fork = d.runs.fork(&RunId(self.run), self.seq, patch).await?;
            if !self.show.json {
                eprintln!("run {fork} forked");
            }
            settle(&d.runs, &fork, self.show, self.seq).await
        })
    }
}
