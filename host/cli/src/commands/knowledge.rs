//! `convergio knowledge`: fill and query the knowledge buckets of the
//! `knowledge` tool plugin (retrieval for agents; docs/agents.md#retrieval).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use clap::Subcommand;
use serde_json::{Value, json};

use crate::shared::PlatformFile;

/// Fill and search knowledge buckets (text and Markdown documents, chunked
/// and embedded by the `knowledge` plugin).
#[derive(Debug, clap::Args)]
pub struct KnowledgeArgs {
    #[command(subcommand)]
    command: KnowledgeCommand,
    /// The plugin that keeps the knowledge (`components/knowledge`).
    #[arg(long, global = true, default_value = "knowledge")]
    plugin: String,
}

#[derive(Debug, Subcommand)]
enum KnowledgeCommand {
    /// Add documents to BUCKET (a document added again is replaced).
    Add {
        /// The storage bucket (granted to the plugin: storage = ["BUCKET"]).
        bucket: String,
        /// Text or Markdown files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// The passages of BUCKET most relevant to QUERY.
    Search {
        /// The storage bucket.
        bucket: String,
        /// What to look for.
        query: String,
        /// How many passages.
        #[arg(short, default_value_t = 3)]
        k: u32,
    },
}

impl KnowledgeArgs {
    /// Run the `knowledge` subcommand.
    pub fn run(self, platform: &PlatformFile) -> Result<ExitCode> {
        platform.require()?;
        let (rt, runtime) = platform.load()?;
        let call = |tool: &str, args: Value| -> Result<Value> {
            let out = rt.block_on(runtime.invoke_json(
                &self.plugin,
                "tool.invoke",
                &json!([tool, args.to_string()]),
            ))?;
            match (out.get("ok").and_then(Value::as_str), out.get("err")) {
                (Some(ok), _) => Ok(serde_json::from_str(ok)?),
                (_, Some(err)) => bail!("{}: {tool} failed: {err}", self.plugin),
                _ => bail!("{}: {tool} answered {out}", self.plugin),
            }
        };
        match &self.command {
            KnowledgeCommand::Add { bucket, files } => {
                for file in files {
                    let text = std::fs::read_to_string(file)
                        .with_context(|| format!("reading {}", file.display()))?;
                    let document = file.file_name().map_or_else(
                        || file.display().to_string(),
                        |n| n.to_string_lossy().into_owned(),
                    );
                    let added = call(
                        "add",
                        json!({"bucket": bucket, "document": document, "text": text}),
                    )?;
                    println!("{document}: {} chunk(s) in `{bucket}`", added["chunks"]);
                }
            }
            KnowledgeCommand::Search { bucket, query, k } => {
                let hits = call("search", json!({"bucket": bucket, "query": query, "k": k}))?;
                for hit in hits.as_array().into_iter().flatten() {
                    println!(
                        "{:.3}  {}\n{}\n",
                        hit["score"].as_f64().unwrap_or(0.0),
                        hit["document"].as_str().unwrap_or_default(),
                        hit["text"].as_str().unwrap_or_default()
                    );
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
