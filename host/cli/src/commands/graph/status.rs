//! `convergio graph status`: where a run stands.

use std::process::ExitCode;

use anyhow::Result;
use convergio_journal::RunId;
use serde_json::Value;

use super::{journal, when};
use crate::shared::PlatformFile;

/// Show a run: its status, each node's state (with its output or error),
/// the calls in flight, the interrupts waiting for an answer, the steps
/// node calls recorded and what their model calls used.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The run.
    run: String,
    /// The whole snapshot as JSON.
    #[arg(long)]
    json: bool,
    /// Every step node calls recorded, by index (what `graph fork --step
    /// CALL:INDEX` changes), with its result.
    #[arg(long)]
    steps: bool,
}

impl StatusArgs {
    /// Print the run's status.
    pub fn run(self, platform: &PlatformFile) -> Result<ExitCode> {
        let store = journal(platform)?;
        let run = RunId::from(self.run);
        let view = convergio_cap_runs::fold(&*store, &run, None)?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&view.snapshot)?);
            return Ok(ExitCode::SUCCESS);
        }
        let snap = &view.snapshot;
        println!("run       {run}");
        println!("status    {}", view.status());
        println!("updated   {}", when(view.info.updated_ms));
        println!("steps     {} (journal seq {})", view.version, view.seq);
        if let Some((parent, seq)) = &view.info.parent {
            println!("forked    from {parent} at seq {seq}");
        }
        if let Some(error) = snap.get("error").and_then(Value::as_str) {
            println!("error     {error}");
        }
        if let Some(nodes) = snap.get("sched").and_then(Value::as_object) {
            println!("nodes");
            for (id, rec) in nodes {
                let state = rec.get("s").and_then(Value::as_str).unwrap_or("waiting");
                let round = rec.get("r").and_then(Value::as_u64).unwrap_or(0);
                let round = if round > 0 {
                    format!(" (iteration {round})")
                } else {
                    String::new()
                };
                let detail = snap
                    .pointer(&format!(
                        "/nodes/{}",
                        id.replace('~', "~0").replace('/', "~1")
                    ))
                    .map(|n| match (n.get("error"), n.get("output")) {
                        (Some(e), _) => format!("  error: {}", e.as_str().unwrap_or_default()),
                        (None, Some(o)) => format!("  output: {}", short(o)),
                        _ => String::new(),
                    })
                    .unwrap_or_default();
                println!("  {id:<24} {state:<8}{round}{detail}");
            }
        }
        if let Some(calls) = snap
            .get("calls")
            .and_then(Value::as_object)
            .filter(|c| !c.is_empty())
        {
            println!("in flight");
            for (id, call) in calls {
                println!(
                    "  {id:<24} attempt {}",
                    call.get("attempt").and_then(Value::as_u64).unwrap_or(1)
                );
            }
        }
        if let Some(open) = snap
            .get("interrupts")
            .and_then(Value::as_object)
            .filter(|i| !i.is_empty())
        {
            println!("waiting for");
            for (id, interrupt) in open {
                println!(
                    "  {id:<24} {}",
                    interrupt
                        .get("prompt")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                );
            }
        }
        steps(&*store, &run, self.steps)?;
        usage(&*store, &run)?;
        children(&*store, &run)?;
        if let Some(output) = snap.get("output") {
            println!("output    {}", short(output));
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// What the run's node calls' model calls used, per node, and in all.
fn usage(store: &dyn convergio_journal::RunStore, run: &RunId) -> Result<()> {
    let per_node = convergio_cap_runs::usage(store, run)?;
    if per_node.is_empty() {
        return Ok(());
    }
    println!("usage");
    let mut total = convergio_cap_runs::CallUsage::default();
    for (node, used) in &per_node {
        println!("  {node:<24} {}", used.describe());
        total = total.plus(*used);
    }
    if per_node.len() > 1 {
        println!("  {:<24} {}", "(all)", total.describe());
    }
    Ok(())
}

/// The runs the run's node calls started (subgraphs, spawned agents, a
/// planner's plan), with where they stand and what they used.
fn children(store: &dyn convergio_journal::RunStore, run: &RunId) -> Result<()> {
    let children = convergio_cap_runs::children(store, run)?;
    if children.is_empty() {
        return Ok(());
    }
    println!("child runs");
    for child in children {
        let used = convergio_cap_runs::usage(store, &child.id)?
            .into_iter()
            .map(|(_, u)| u)
            .reduce(convergio_cap_runs::CallUsage::plus)
            .map(|u| format!("  {}", u.describe()))
            .unwrap_or_default();
        let line = format!(
            "  {:<40} {:<9}{used}",
            child.id.as_str(),
            child.status.as_str()
        );
        println!("{}", line.trim_end());
    }
    Ok(())
}

/// The steps node calls recorded (an agent's model answers, tool batches,
/// guardrail verdicts), per call, with the models' usage.
fn steps(store: &dyn convergio_journal::RunStore, run: &RunId, each: bool) -> Result<()> {
    let steps = store.run_steps(run)?;
    if steps.is_empty() {
        return Ok(());
    }
    println!("recorded steps");
    let mut i = 0;
    while i < steps.len() {
        let (call, attempt, first) = (&steps[i].0, steps[i].1, i);
        let mut kinds: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
        let mut usage = (0u64, 0u64, 0u64);
        let mut plan = None;
        while i < steps.len() && &steps[i].0 == call && steps[i].1 == attempt {
            let step = &steps[i].2;
            *kinds.entry(step.kind.as_str()).or_default() += 1;
            if step.kind == "plan" {
                plan = serde_json::from_slice::<Value>(&step.result).ok();
            }
            // A model answer the LLM agent recorded carries its usage.
            if let Ok(answer) = serde_json::from_slice::<Value>(&step.result) {
                let n = |key: &str| answer["usage"][key].as_u64().unwrap_or(0);
                usage.0 += n("input-tokens");
                usage.1 += n("output-tokens");
                usage.2 += n("cost-micro-usd");
            }
            i += 1;
        }
        let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
        let used = if usage == (0, 0, 0) {
            String::new()
        } else {
            format!(
                "  ({} tokens in, {} out, ${:.6})",
                usage.0,
                usage.1,
                usage.2 as f64 / 1e6
            )
        };
        println!("  {call:<24} attempt {attempt}: {}{used}", kinds.join(", "));
        if each {
            for (_, _, step) in steps[first..i].iter() {
                let result = match serde_json::from_slice::<Value>(&step.result) {
                    Ok(value) => short(&value),
                    Err(_) => short(&Value::String(
                        String::from_utf8_lossy(&step.result).into_owned(),
                    )),
                };
                println!("    {call}:{:<4} {:<10} {result}", step.index, step.kind);
            }
        }
        if let Some(plan) = plan {
            print_plan(&plan, &format!("{}:{call}:{attempt}:plan", run));
        }
    }
    Ok(())
}

/// A planner's accepted plan (a graph document): its nodes, what each
/// runs, and its edges.
fn print_plan(plan: &Value, run: &str) {
    println!("    plan (run {run})");
    if let Some(nodes) = plan["nodes"].as_object() {
        for (id, node) in nodes {
            let what = match (
                node["tool"].as_str(),
                node["input"]["agent"]["name"].as_str(),
            ) {
                (Some(tool), _) => format!("tool {tool} {}", short(&node["input"])),
                (None, Some(agent)) => {
                    let task = node["input"]["task"].as_str().unwrap_or_default();
                    let first = task.lines().next().unwrap_or_default();
                    format!("agent {agent}: {}", short(&Value::String(first.to_owned())))
                }
                _ => short(node),
            };
            println!("      {id:<16} {what}");
        }
    }
    let edges: Vec<&str> = plan["edges"]
        .as_array()
        .map(|e| e.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !edges.is_empty() {
        println!("      edges            {}", edges.join(", "));
    }
}

/// A value on one line, cut at 100 characters.
fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 100 {
        format!("{}…", text.chars().take(100).collect::<String>())
    } else {
        text
    }
}
