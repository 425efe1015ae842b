//! `convergio graph validate`: read a graph document and report every
//! mistake at its line and column.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use convergio_graph::document::Reader;
use convergio_graph::model::Graph;
use convergio_graph::validate::Catalog;
use convergio_runtime::PlatformConfig;

use crate::shared::PlatformFile;

/// Check a graph file (YAML or JSON): its fields, names, cycles,
/// expressions, reducers and schemas. Every error is printed as
/// `FILE:line:column: message`. With --config (or CONVERGIO_CONFIG), the
/// plugins the graph names must be in that platform.toml; tools are not
/// checked (their names are known once the component is loaded).
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// The graph file.
    file: PathBuf,
}

/// The plugin ids of a platform.toml.
struct Plugins(BTreeSet<String>);

impl Catalog for Plugins {
    fn plugin_exists(&self, id: &str) -> bool {
        self.0.contains(id)
    }

    fn tools(&self, _plugin: &str) -> Option<Vec<String>> {
        None
    }
}

impl ValidateArgs {
    /// Print a one-line summary, or every error and their count (exit 1).
    pub fn run(self, platform: &PlatformFile) -> Result<ExitCode> {
        let plugins = if platform.is_explicit() {
            platform.require()?;
            let config = PlatformConfig::read(platform.path())?;
            Some(Plugins(config.plugins.into_iter().map(|p| p.id).collect()))
        } else {
            None
        };
        let mut reader = Reader::new();
        if let Some(plugins) = &plugins {
            reader = reader.catalog(plugins);
        }
        let shown = self.file.display().to_string();
        match reader.read_file(&self.file) {
            Ok(graph) => {
                let checked = if plugins.is_some() {
                    format!("plugins checked against {}", platform.path().display())
                } else {
                    "plugins not checked: pass --config platform.toml".to_owned()
                };
                println!("ok: {shown}: {}; {checked}", summary(&graph));
                Ok(ExitCode::SUCCESS)
            }
            Err(diagnostics) => {
                for d in &diagnostics {
                    println!("{d}");
                }
                println!("{} error(s) in {shown}", diagnostics.len());
                Ok(ExitCode::FAILURE)
            }
        }
    }
}

/// `9 nodes, 7 edges, 10 state keys, 1 subgraph`.
fn summary(graph: &Graph) -> String {
    let count =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let mut parts = vec![
        count(graph.nodes.len(), "node", "nodes"),
        count(graph.edges.len(), "edge", "edges"),
        count(graph.state.len(), "state key", "state keys"),
    ];
    if !graph.graphs.is_empty() {
        parts.push(count(graph.graphs.len(), "subgraph", "subgraphs"));
    }
    parts.join(", ")
}
