//! `convergio invoke`: call one export of a loaded plugin.

use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::shared::PlatformFile;

/// Call an export of a loaded plugin and print the result as JSON.
///
/// FUNCTION is `interface#name` (e.g. `convergio:platform/tool@0.1.0#invoke`),
/// `short.name` (e.g. `tool.invoke`) or just `name` when unique.
/// JSON_ARGS is a JSON array of the arguments in order, or an object keyed
/// by parameter name. Exits with status 1 when the function returns `err`.
#[derive(Debug, clap::Args)]
pub struct InvokeArgs {
    /// Plugin id.
    plugin: String,
    /// Function to call.
    function: String,
    /// Arguments as JSON.
    #[arg(default_value = "[]")]
    args: String,
}

impl InvokeArgs {
    /// Print the result as JSON; exit 1 when it is `err`.
    pub fn run(self, platform: &PlatformFile) -> Result<ExitCode> {
        platform.require()?;
        let args: serde_json::Value = serde_json::from_str(&self.args)
            .with_context(|| format!("JSON_ARGS is not JSON: {}", self.args))?;
        let (rt, runtime) = platform.load()?;
        let result = rt.block_on(runtime.invoke_json(&self.plugin, &self.function, &args))?;
        println!("{}", serde_json::to_string_pretty(&result)?);
        let failed = result
            .as_object()
            .is_some_and(|o| o.len() == 1 && o.contains_key("err"));
        Ok(if failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        })
    }
}
