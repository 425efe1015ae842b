//! `convergio check`: load the whole platform and report every problem.

use std::process::ExitCode;

use anyhow::Result;
use convergio_runtime::{Platform, Runtime};

use crate::shared::{self, PlatformFile};

/// Validate platform.toml and every plugin manifest, compile and link every
/// component, and report every problem at once.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {}

impl CheckArgs {
    /// Print `ok` and the plugins, or each problem on its own line (exit 1).
    pub fn run(self, platform: &PlatformFile) -> Result<ExitCode> {
        platform.require()?;
        let config = platform.path();
        let problems = match Platform::load(config) {
            Ok(loaded) => match shared::tokio()?.block_on(Runtime::new(&loaded)) {
                Ok(runtime) => {
                    println!(
                        "ok: {} plugin(s) load and link: {}",
                        runtime.plugin_ids().len(),
                        runtime.plugin_ids().join(", ")
                    );
                    return Ok(ExitCode::SUCCESS);
                }
                Err(err) => err.to_string(),
            },
            Err(err) => err.to_string(),
        };
        let count = problems.lines().count();
        for line in problems.lines() {
            println!("error: {line}");
        }
        println!("{count} problem(s) found in {}", config.display());
        Ok(ExitCode::FAILURE)
    }
}
