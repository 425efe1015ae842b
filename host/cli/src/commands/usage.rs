//! `convergio usage`: the usage ledger, summed per plugin, agent and model.

use std::process::ExitCode;

use anyhow::Result;
use convergio_runtime::inference::{Ledger, day_of, month_start};

use crate::shared::{self, PlatformFile};

/// Model calls per plugin, agent and model, with tokens and cost (from
/// the usage ledger; this month unless --since is given).
#[derive(Debug, clap::Args)]
pub struct UsageArgs {
    /// Only usage since this date (`2026-11-01` or RFC 3339).
    #[arg(long)]
    since: Option<String>,
}

impl UsageArgs {
    /// Print one line per plugin, agent and model.
    pub fn run(self, platform: &PlatformFile) -> Result<ExitCode> {
        let path = platform.data_dir()?.join("usage.db");
        if !path.is_file() {
            println!(
                "no model calls recorded yet ({} does not exist)",
                path.display()
            );
            return Ok(ExitCode::SUCCESS);
        }
        let since_day = match self.since {
            Some(text) => day_of(shared::date(&text)?),
            None => month_start(day_of(std::time::SystemTime::now())),
        };
        let ledger = Ledger::open(&path)?;
        let lines = ledger.report(since_day)?;
        if lines.is_empty() {
            println!("no model calls in this period");
        }
        for l in lines {
            println!(
                "{}{}  {}  {} calls  {} in  {} out  {}{}",
                l.plugin,
                l.agent.map(|a| format!(" (agent {a})")).unwrap_or_default(),
                l.model,
                l.calls,
                l.input_tokens,
                l.output_tokens,
                shared::usd(l.cost_micro_usd),
                if l.errors > 0 {
                    format!("  {} failed", l.errors)
                } else {
                    String::new()
                }
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}
