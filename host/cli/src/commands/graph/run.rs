//! `convergio graph run`: start runs of a graph document and drive them.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use convergio_graph::document::Reader;

use super::{DurabilityArg, FollowArgs, driver, json_arg, settle};
use crate::shared::PlatformFile;

/// Run a graph (YAML or JSON) on this platform's orchestrator and plugins,
/// until it finishes or waits for input; print its output. Every step is
/// journaled before it takes effect: if this process dies, `convergio
/// graph resume RUN` (or `convergio run`) goes on where it stopped.
/// Exit 0 when the run is done or waits for input, 1 when it fails.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The graph file.
    file: PathBuf,
    /// The run's input: a JSON object of the graph's state keys.
    #[arg(long, default_value = "{}")]
    input: String,
    /// The run's id (default: a new one, printed).
    #[arg(long, conflicts_with = "repeat")]
    id: Option<String>,
    /// When a journaled step is durable (default: `[graphs] durability`).
    #[arg(long, value_enum)]
    durability: Option<DurabilityArg>,
    /// Start this many runs of the graph at once (a load or crash test);
    /// prints each run's id (one is one too) and one summary line.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    repeat: Option<u32>,
    #[command(flatten)]
    show: FollowArgs,
}

impl RunArgs {
    /// Start the run(s) and wait for them.
    pub fn run(self, platform: &PlatformFile) -> Result<ExitCode> {
        let graph = match Reader::new().read_file(&self.file) {
            Ok(graph) => graph,
            Err(diagnostics) => {
                for d in &diagnostics.0 {
                    eprintln!("{d}");
                }
                bail!(
                    "{} has {} error(s); `convergio graph validate {}` lists them too",
                    self.file.display(),
                    diagnostics.0.len(),
                    self.file.display()
                );
            }
        };
        let input = json_arg("--input", &self.input)?;
        let d = driver(platform, self.durability)?;
        d.rt.block_on(async {
            let Some(repeat) = self.repeat else {
                let run = d.runs.start(&graph, input, self.id).await?;
                if !self.show.json {
                    eprintln!("run {run} started");
                }
                return settle(&d.runs, &run, self.show, 0).await;
            };
            let prepared = d.runs.prepare(&graph)?;
            let mut ids = Vec::new();
            for _ in 0..repeat {
                let run = d
                    .runs
                    .start_prepared(&prepared, input.clone(), None)
                    .await?;
                println!("{run}");
                ids.push(run);
            }
            let (mut done, mut waiting, mut failed) = (0, 0, 0);
            for run in &ids {
                match d.runs.wait(run).await? {
                    convergio_cap_runs::Status::Done { .. } => done += 1,
                    convergio_cap_runs::Status::Waiting => waiting += 1,
                    _ => failed += 1,
                }
            }
            eprintln!(
                "{} runs: {done} done, {waiting} waiting for input, {failed} failed or cancelled",
                ids.len()
            );
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        })
    }
}
