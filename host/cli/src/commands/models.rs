//! `convergio models`: the local model cache (pull, list, rm).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Subcommand;
use convergio_runtime::local_models::{ModelStore, PullProgress};

use crate::shared::PlatformFile;

/// Manage the local model cache (GGUF files for llama.cpp).
#[derive(Debug, clap::Args)]
pub struct ModelsArgs {
    #[command(subcommand)]
    command: ModelsCommand,
}

/// `convergio models …`.
#[derive(Debug, Subcommand)]
enum ModelsCommand {
    /// Add a GGUF model to the cache: a local path, an `https://` URL or a
    /// Hugging Face `org/repo/file.gguf` reference. Downloads resume where a
    /// cut one stopped; the file is checked (sha256, GGUF header) before it
    /// is added.
    Pull {
        /// Where the model comes from.
        source: String,
        /// Name in the cache (default: from the file name).
        #[arg(long)]
        name: Option<String>,
        /// Expected sha256 of the file (hex); a mismatch adds nothing.
        #[arg(long)]
        sha256: Option<String>,
    },
    /// The cached models: name, size, quantization, context length, sha256.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove a model from the cache.
    Rm {
        /// Model name.
        name: String,
    },
}

impl ModelsArgs {
    /// Run the subcommand on the platform's model cache.
    pub fn run(self, platform: &PlatformFile) -> Result<ExitCode> {
        let dir = dir(platform)?;
        let store = ModelStore::open(dir.clone())?;
        match self.command {
            ModelsCommand::Pull {
                source,
                name,
                sha256,
            } => {
                let mut bar = Progress::new();
                let model = store.pull(&source, name.as_deref(), sha256.as_deref(), &mut |p| {
                    bar.show(p)
                })?;
                bar.done();
                println!(
                    "added {} ({}, {}, context {}, sha256 {})",
                    model.name,
                    mib(model.size_bytes),
                    model.quantization,
                    model.context_length,
                    model.sha256
                );
            }
            ModelsCommand::List { json } => {
                let models = store.list()?;
                if json {
                    let rows: Vec<serde_json::Value> = models
                        .iter()
                        .map(|m| {
                            serde_json::json!({
                                "name": m.name,
                                "size_bytes": m.size_bytes,
                                "quantization": m.quantization,
                                "context_length": m.context_length,
                                "embedding_length": m.embedding_length,
                                "architecture": m.architecture,
                                "sha256": m.sha256,
                                "path": m.path,
                            })
                        })
                        .collect();
                    println!("{}", serde_json::to_string_pretty(&rows)?);
                } else if models.is_empty() {
                    println!(
                        "no models in {}; add one with `convergio models pull SOURCE`",
                        dir.display()
                    );
                } else {
                    println!(
                        "{:<40} {:>10} {:<8} {:>8}  SHA256",
                        "NAME", "SIZE", "QUANT", "CONTEXT"
                    );
                    for m in models {
                        println!(
                            "{:<40} {:>10} {:<8} {:>8}  {}",
                            m.name,
                            mib(m.size_bytes),
                            m.quantization,
                            m.context_length,
                            m.sha256
                        );
                    }
                }
            }
            ModelsCommand::Rm { name } => {
                store.remove(&name)?;
                println!("removed {name}");
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

/// Download progress on stderr: a bar redrawn in place on a terminal, a line
/// per 10 % otherwise (logs stay readable).
struct Progress {
    terminal: bool,
    started: Instant,
    last_line: u64,
    drawn: bool,
}

impl Progress {
    fn new() -> Self {
        Self {
            terminal: std::io::stderr().is_terminal(),
            started: Instant::now(),
            last_line: u64::MAX,
            drawn: false,
        }
    }

    fn show(&mut self, p: PullProgress) {
        let rate = p.done as f64
            / self
                .started
                .elapsed()
                .max(Duration::from_millis(1))
                .as_secs_f64();
        let text = match p.total {
            Some(total) if total > 0 => {
                let percent = p.done.saturating_mul(100) / total;
                if !self.terminal {
                    let step = percent / 10;
                    if step == self.last_line {
                        return;
                    }
                    self.last_line = step;
                }
                let width = 30u64;
                let filled = (p.done.saturating_mul(width) / total).min(width) as usize;
                format!(
                    "[{}{}] {:>3}% {} / {} at {}/s",
                    "#".repeat(filled),
                    " ".repeat(width as usize - filled),
                    percent,
                    mib(p.done),
                    mib(total),
                    mib(rate as u64)
                )
            }
            _ => format!("{} at {}/s", mib(p.done), mib(rate as u64)),
        };
        let mut err = std::io::stderr().lock();
        if self.terminal {
            let _ = write!(err, "\r{text}\x1b[K");
        } else {
            let _ = writeln!(err, "{text}");
        }
        let _ = err.flush();
        self.drawn = true;
    }

    fn done(&self) {
        if self.terminal && self.drawn {
            eprintln!();
        }
    }
}

/// The model cache of the platform (its `[local-models] cache-dir`), or
/// `models` in the data directory.
fn dir(platform: &PlatformFile) -> Result<PathBuf> {
    if let Some(cache) = platform
        .settings()?
        .and_then(|settings| settings.local_models.cache_dir)
    {
        let base = platform.path().parent().unwrap_or(Path::new("."));
        return Ok(base.join(cache));
    }
    Ok(platform.data_dir()?.join("models"))
}
