//! `convergio graph fork`: a new run from a step of another.

use std::process::ExitCode;

use anyhow::Result;
use convergio_cap_runs::StepPatch;
use convergio_journal::RunId;

use super::{FollowArgs, driver, json_arg, settle};
use crate::shared::PlatformFile;

/// Start a new run from a run as it stood after the step at SEQ (`graph
/// checkpoints RUN` lists them), optionally with state keys patched or a
/// step a node call recorded changed, and drive it. The fork shares its parent's journal up to SEQ; the parent is
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
    /// A step a node call in flight at SEQ recorded, to change in the
    /// fork: `CALL:INDEX` (`graph status RUN` lists the steps per call).
    /// The call goes on live after it.
    #[arg(long, value_name = "CALL:INDEX", requires = "result")]
    step: Option<String>,
    /// The changed step's result (JSON; an object is merged over the
    /// recorded one: `{"content": "…"}` changes a model answer's text).
    #[arg(long, value_name = "JSON", requires = "step")]
    result: Option<String>,
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
        let step = match (&self.step, &self.result) {
            (Some(step), Some(result)) => {
                let (call, index) = step
                    .rsplit_once(':')
                    .and_then(|(call, i)| Some((call, i.parse::<u32>().ok()?)))
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "--step {step}: write CALL:INDEX, e.g. `agent:0` for the first step call `agent` recorded"
                        )
                    })?;
                Some(StepPatch {
                    call: call.to_owned(),
                    index,
                    result: json_arg("--result", result)?,
                })
            }
            _ => None,
        };
        let d = driver(platform, None)?;
        d.rt.block_on(async {
            let run = RunId::from(self.run);
            let fork = match step {
                Some(step) => d.runs.fork_step(&run, self.seq, patch, step).await?,
                None => d.runs.fork(&run, self.seq, patch).await?,
            };
            if !self.show.json {
                eprintln!("run {fork} forked");
            }
            settle(&d.runs, &fork, self.show, self.seq).await
        })
    }
}
