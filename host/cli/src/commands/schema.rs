//! `convergio schema`: the JSON Schemas of the two configuration files.

use std::process::ExitCode;

use anyhow::Result;
use clap::ValueEnum;
use convergio_runtime::schema::{manifest_schema, platform_schema};

/// Print the JSON Schema of platform.toml or plugin.toml.
#[derive(Debug, clap::Args)]
pub struct SchemaArgs {
    /// Which file.
    file: SchemaFile,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SchemaFile {
    /// platform.toml.
    Platform,
    /// plugin.toml.
    Plugin,
}

impl SchemaArgs {
    /// Print the schema to stdout.
    pub fn run(self) -> Result<ExitCode> {
        print!(
            "{}",
            match self.file {
                SchemaFile::Platform => platform_schema(),
                SchemaFile::Plugin => manifest_schema(),
            }
        );
        Ok(ExitCode::SUCCESS)
    }
}
