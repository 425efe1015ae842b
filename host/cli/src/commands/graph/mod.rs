//! `convergio graph`: agent graphs — validate documents, run them, follow,
//! inspect, resume, answer, cancel, fork and prune runs. One module per verb;
//! what several verbs share is here.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use clap::Subcommand;
use convergio_cap_runs::{RunEvent, Runs, Status, events_of};
use convergio_journal::{RunId, RunStore};
use convergio_runtime::Platform;
use convergio_runtime::config::GraphDurability;

use crate::shared::PlatformFile;

pub mod cancel;
pub mod checkpoints;
pub mod fork;
pub mod list;
pub mod prune;
pub mod resume;
pub mod run;
pub mod state;
pub mod status;
pub mod validate;

/// Work with agent graphs (YAML or JSON documents; see docs/graphs.md) and
/// their runs (journaled in `[graphs] journal`, `runs.db` in the data
/// directory by default).
#[derive(Debug, clap::Args)]
pub struct GraphArgs {
    #[command(subcommand)]
    command: GraphCommand,
}

/// The verbs of `convergio graph`.
#[derive(Debug, Subcommand)]
enum GraphCommand {
    Validate(validate::ValidateArgs),
    Run(run::RunArgs),
    List(list::ListArgs),
    Status(status::StatusArgs),
    Resume(resume::ResumeArgs),
    Cancel(cancel::CancelArgs),
    Checkpoints(checkpoints::CheckpointsArgs),
    State(state::StateArgs),
    Fork(fork::ForkArgs),
    Prune(prune::PruneArgs),
}

impl GraphArgs {
    /// Run the `graph` subcommand.
    pub fn run(self, platform: &PlatformFile) -> Result<ExitCode> {
        match self.command {
            GraphCommand::Validate(args) => args.run(platform),
            GraphCommand::Run(args) => args.run(platform),
            GraphCommand::List(args) => args.run(platform),
            GraphCommand::Status(args) => args.run(platform),
            GraphCommand::Resume(args) => args.run(platform),
            GraphCommand::Cancel(args) => args.run(platform),
            GraphCommand::Checkpoints(args) => args.run(platform),
            GraphCommand::State(args) => args.run(platform),
            GraphCommand::Fork(args) => args.run(platform),
            GraphCommand::Prune(args) => args.run(platform),
        }
    }
}

/// `--durability`: when a journaled step is durable.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum DurabilityArg {
    /// fsync every commit: survives power loss.
    Sync,
    /// No fsync per commit: survives `kill -9` of this process.
    Process,
    /// Memory only: the run ends with this process.
    Off,
}

impl From<DurabilityArg> for GraphDurability {
    fn from(d: DurabilityArg) -> Self {
        match d {
            DurabilityArg::Sync => Self::Sync,
            DurabilityArg::Process => Self::Process,
            DurabilityArg::Off => Self::Off,
        }
    }
}

/// How a verb that drives runs shows them.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct FollowArgs {
    /// Show the run live: nodes started, finished, failed, with timings.
    #[arg(long)]
    follow: bool,
    /// With --follow, one JSON object per event instead.
    #[arg(long, requires = "follow")]
    pub json: bool,
}

/// The platform's run driver, with the async runtime that drives it.
pub struct Driver {
    pub rt: tokio::runtime::Runtime,
    pub runs: Runs,
}

/// Load the platform and its run driver (`durability` over the platform's).
pub fn driver(platform: &PlatformFile, durability: Option<DurabilityArg>) -> Result<Driver> {
    platform.require()?;
    let config = Platform::load(platform.path())?;
    let (rt, runtime) = platform.load()?;
    let runs = {
        let _guard = rt.enter();
        convergio_runtime::graphs::runs(&runtime, &config, durability.map(Into::into))?
    };
    Ok(Driver { rt, runs })
}

/// The platform's run journal, for the verbs that only read it (no plugin
/// is loaded).
pub fn journal(platform: &PlatformFile) -> Result<Arc<dyn RunStore>> {
    platform.require()?;
    let config = Platform::load(platform.path())?;
    let path = convergio_runtime::graphs::journal_path(&config);
    anyhow::ensure!(
        path.exists(),
        "no run journal at {}: no graph has run on this platform yet (`convergio graph run FILE`)",
        path.display()
    );
    Ok(convergio_runtime::graphs::open_journal(
        &config,
        Some(GraphDurability::Process),
    )?)
}

/// Wait for `run` to finish or wait for input, showing it live if asked;
/// print how it ended. Exit 0 when done or waiting, 1 when it failed or was
/// cancelled.
pub async fn settle(runs: &Runs, run: &RunId, show: FollowArgs, after: u64) -> Result<ExitCode> {
    let follower = show.follow.then(|| {
        let store = Arc::clone(runs.store());
        let run = run.clone();
        tokio::spawn(follow(store, run, after, show.json))
    });
    let status = runs.wait(run).await?;
    if let Some(task) = follower {
        // The follower stops at the event of the status `wait` returned.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), task).await;
    }
    let view = runs.view(run).await?;
    Ok(report(run, &status, &view.snapshot, show.json))
}

/// Print how a run ended; the exit code.
pub fn report(run: &RunId, status: &Status, snapshot: &serde_json::Value, quiet: bool) -> ExitCode {
    match status {
        Status::Done { output } => {
            if !quiet {
                eprintln!("run {run}: done");
            }
            println!(
                "{}",
                serde_json::to_string_pretty(output).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Status::Waiting => {
            if !quiet {
                eprintln!("run {run}: waiting for input");
                if let Some(open) = snapshot.get("interrupts").and_then(|i| i.as_object()) {
                    for (id, interrupt) in open {
                        let prompt = interrupt
                            .get("prompt")
                            .and_then(|p| p.as_str())
                            .unwrap_or("");
                        eprintln!("  interrupt `{id}`: {prompt}");
                        if let Some(schema) = interrupt.get("schema") {
                            eprintln!("    answer schema: {schema}");
                        }
                        eprintln!(
                            "    answer: convergio graph resume {run} --interrupt {id} --input JSON"
                        );
                    }
                }
            }
            ExitCode::SUCCESS
        }
        Status::Failed { error } => {
            eprintln!("run {run} failed: {error}");
            ExitCode::FAILURE
        }
        Status::Cancelled { reason } => {
            eprintln!("run {run} was cancelled: {reason}");
            ExitCode::FAILURE
        }
        Status::Running => ExitCode::SUCCESS,
    }
}

/// Print `run`'s events after seq `after` until it finishes or waits.
async fn follow(store: Arc<dyn RunStore>, run: RunId, after: u64, json: bool) {
    let mut sub = convergio_journal::subscribe(store, run, after);
    let mut started_at: Option<u64> = None;
    while let Ok(Some(entry)) = sub.next().await {
        for event in events_of(&entry) {
            let first = *started_at.get_or_insert(event.at_ms);
            if json {
                println!("{}", serde_json::to_string(&event).unwrap_or_default());
            } else if let Some(line) = line(&event, event.at_ms.saturating_sub(first)) {
                eprintln!("{line}");
            }
            if matches!(
                event.topic.as_str(),
                "run.done" | "run.failed" | "run.cancelled" | "run.waiting"
            ) {
                return;
            }
        }
    }
}

/// One event as a line of the live view.
fn line(event: &RunEvent, since_ms: u64) -> Option<String> {
    let d = &event.data;
    let s = |key: &str| d.get(key).and_then(|v| v.as_str()).unwrap_or("");
    let node = s("node");
    let detail = d.get("detail").and_then(|v| v.as_str());
    let with = |text: String| match detail {
        Some(more) => format!("{text}: {more}"),
        None => text,
    };
    let what = match event.topic.as_str() {
        "run.started" => format!("run {} started", event.run),
        "run.resumed" => format!("run {} resumed", event.run),
        "run.forked" => format!(
            "run {} forked from {} at seq {}",
            event.run,
            s("parent"),
            d["seq"]
        ),
        "node.started" => with(format!("▶ {node}")),
        "node.finished" => with(format!("✓ {node}")),
        "node.failed" => with(format!("✗ {node}")),
        "node.retrying" => with(format!("↻ {node}")),
        "node.skipped" => format!("– {node} skipped"),
        "node.interrupted" => with(format!("? {node} asks")),
        "node.answered" => format!("! {node} answered"),
        "node.iteration" => with(format!("⟲ {node} iteration")),
        "node.resumed" => with(format!("▶ {node} again (resumed)")),
        "node.result" => {
            let ms = d.get("ms").and_then(|v| v.as_u64()).unwrap_or(0);
            let call = s("call");
            let used = d
                .get("usage")
                .and_then(|u| {
                    serde_json::from_value::<convergio_cap_runs::CallUsage>(u.clone()).ok()
                })
                .map(|u| format!(" ({})", u.describe()))
                .unwrap_or_default();
            let mut line = if d.get("ok").and_then(|v| v.as_bool()) == Some(true) {
                format!("  {call} returned in {ms} ms{used}")
            } else {
                format!("  {call} failed in {ms} ms{used}: {}", s("error"))
            };
            // The runs it started, and what its plugin warned of (a
            // refused tool call, …), below it.
            for run in d["runs"].as_array().into_iter().flatten() {
                line.push_str(&format!(
                    "\n{:>10}    → run {}",
                    "",
                    run.as_str().unwrap_or_default()
                ));
            }
            for warning in d["warnings"].as_array().into_iter().flatten() {
                line.push_str(&format!(
                    "\n{:>10}    ! {}",
                    "",
                    warning.as_str().unwrap_or_default()
                ));
            }
            line
        }
        "run.done" => "run done".to_owned(),
        "run.waiting" => "run waiting for input".to_owned(),
        "run.failed" => format!("run failed: {}", s("error")),
        "run.cancelled" => format!("run cancelled: {}", s("reason")),
        _ => return None,
    };
    Some(format!("{:>8.3}s  {what}", since_ms as f64 / 1000.0))
}

/// Parse a JSON argument, naming the flag when it is not JSON.
pub fn json_arg(flag: &str, text: &str) -> Result<serde_json::Value> {
    serde_json::from_str(text).with_context(|| format!("{flag} is not JSON: {text}"))
}

/// A time in Unix milliseconds, as RFC 3339 (seconds, UTC).
pub fn when(ms: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
        .to_string()
}
