//! `convergio agent`: agent definitions (docs/agents.md) — check one, or run
//! one agent alone on a task as a one-node graph run, journaled like any
//! run and shown live.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use clap::Subcommand;
use convergio_agent::Definition;
use serde_json::{Value, json};

use super::graph::{DurabilityArg, FollowArgs, driver, settle};
use crate::shared::PlatformFile;

/// Work with agent definitions (YAML or JSON; see docs/agents.md).
#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    #[command(subcommand)]
    command: AgentCommand,
}

#[derive(Debug, Subcommand)]
enum AgentCommand {
    /// Check a definition: every problem at once; exit 1 if there is one.
    Validate {
        /// The definition file.
        file: PathBuf,
    },
    /// Run one agent on a task: a one-node graph run (journaled, resumable
    /// with `convergio graph resume`), its answer printed at the end.
    Run(RunArgs),
}

/// `convergio agent run`.
#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The definition file.
    file: PathBuf,
    /// The task: text (`-` reads stdin), or JSON with --json-task.
    task: String,
    /// Read the task as JSON instead of text.
    #[arg(long)]
    json_task: bool,
    /// The plugin that runs the agent (an instance of `components/agent-llm`).
    #[arg(long, default_value = "agent-llm")]
    plugin: String,
    /// When a journaled step is durable (default: `[graphs] durability`).
    #[arg(long, value_enum)]
    durability: Option<DurabilityArg>,
    #[command(flatten)]
    show: FollowArgs,
}

impl AgentArgs {
    /// Run the `agent` subcommand.
    pub fn run(self, platform: &PlatformFile) -> Result<ExitCode> {
        match self.command {
            AgentCommand::Validate { file } => {
                let definition = read(&file)?;
                println!(
                    "{}: agent `{}` is valid ({} tool(s), at most {} model calls)",
                    file.display(),
                    definition.name,
                    definition.tools.len(),
                    definition.max_steps
                );
                Ok(ExitCode::SUCCESS)
            }
            AgentCommand::Run(args) => args.run(platform),
        }
    }
}

impl RunArgs {
    fn run(self, platform: &PlatformFile) -> Result<ExitCode> {
        let definition = read(&self.file)?;
        let task = if self.task == "-" {
            std::io::read_to_string(std::io::stdin()).context("reading the task from stdin")?
        } else {
            self.task.clone()
        };
        let task = if self.json_task {
            serde_json::from_str(&task).context("--json-task: the task is not JSON")?
        } else {
            if task.trim().is_empty() {
                bail!("the task is empty; give it as an argument, or `-` to read stdin");
            }
            Value::String(task)
        };
        let graph = one_node_graph(&definition, &self.plugin)
            .with_context(|| format!("making the graph of agent `{}`", definition.name))?;
        let input = json!({"agent": definition, "task": task});
        let d = driver(platform, self.durability)?;
        d.rt.block_on(async {
            let run = d.runs.start(&graph, input, None).await?;
            if !self.show.json {
                eprintln!("run {run} started (agent `{}`)", definition.name);
            }
            settle(&d.runs, &run, self.show, 0).await
        })
    }
}

/// A graph of one `agent` node over `plugin`: the run's input (the state
/// keys `agent` and `task`) is the node's input, its output the run's.
fn one_node_graph(definition: &Definition, plugin: &str) -> Result<convergio_graph::model::Graph> {
    let document = json!({
        "id": format!("agent:{}", definition.name),
        "description": format!("agent `{}` alone", definition.name),
        "state": {"agent": {}, "task": {}, "answer": {}},
        "nodes": {"agent": {"agent": plugin, "output": "answer"}},
        "output": ["answer"]
    });
    convergio_graph::document::read(&document.to_string()).map_err(|d| {
        anyhow::anyhow!(
            "{}",
            d.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}

/// The definition in `path` (YAML or JSON), checked, with its output schema
/// compiled; every problem at once.
fn read(path: &Path) -> Result<Definition> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the agent definition {}", path.display()))?;
    let value = convergio_graph::document::to_json(&text).map_err(|d| {
        anyhow::anyhow!(
            "{}",
            d.iter()
                .map(|d| format!("{}:{d}", path.display()))
                .collect::<Vec<_>>()
                .join("\n")
        )
    })?;
    let definition = Definition::from_json(&value).map_err(|problems| {
        anyhow::anyhow!(
            "{}",
            problems
                .lines()
                .map(|p| format!("{}: {p}", path.display()))
                .collect::<Vec<_>>()
                .join("\n")
        )
    })?;
    if let Some(schema) = &definition.output_schema {
        convergio_graph::schema::Schema::compile(schema).map_err(|e| {
            anyhow::anyhow!(
                "{}: agent `{}`: field `output-schema` is not a valid JSON Schema: {e}",
                path.display(),
                definition.name
            )
        })?;
    }
    Ok(definition)
}
