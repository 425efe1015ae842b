//! What several verbs share: the platform file and the runtime it loads,
//! the data directory, and the formatting of errors, dates and money.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context as _, Result};
use clap::parser::ValueSource;
use convergio_runtime::{Platform, PlatformConfig, Runtime};

/// The platform file (`--config`) and how its path was chosen.
#[derive(Debug)]
pub struct PlatformFile {
    path: PathBuf,
    source: Option<ValueSource>,
}

impl PlatformFile {
    /// `path`, chosen by `source` (the command line, the environment or the default).
    pub fn new(path: PathBuf, source: Option<ValueSource>) -> Self {
        Self { path, source }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file was named (by --config or CONVERGIO_CONFIG) rather
    /// than taken by default.
    pub fn is_explicit(&self) -> bool {
        matches!(
            self.source,
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        )
    }

    /// Fail with what to do when the file does not exist.
    pub fn require(&self) -> Result<()> {
        if self.path.exists() {
            return Ok(());
        }
        let shown = self.path.display();
        match self.source {
            Some(ValueSource::CommandLine) => anyhow::bail!(
                "{shown} does not exist (named by --config); fix the path, or create the file with `convergio --config {shown} init`"
            ),
            Some(ValueSource::EnvVariable) => anyhow::bail!(
                "{shown} does not exist (named by CONVERGIO_CONFIG); fix the variable, or create the file with `convergio init`"
            ),
            _ => {
                let cwd = std::env::current_dir()
                    .map(|d| d.display().to_string())
                    .unwrap_or_else(|_| "the current directory".into());
                anyhow::bail!(
                    "no {shown} in {cwd}: without --config or CONVERGIO_CONFIG, convergio reads ./{shown}. Pass --config FILE, set CONVERGIO_CONFIG=FILE, or write a default platform here with `convergio init`"
                )
            }
        }
    }

    /// The platform, compiled and linked, with the async runtime that drives
    /// it; fails with what to do when the file does not exist.
    pub fn load(&self) -> Result<(tokio::runtime::Runtime, Runtime)> {
        self.require()?;
        let platform = Platform::load(&self.path)?;
        let rt = tokio()?;
        let runtime = rt.block_on(Runtime::new(&platform))?;
        Ok((rt, runtime))
    }

    /// The file's settings if it exists: verbs that work without a platform
    /// (`models`, `keys`, `usage`) then use the defaults.
    pub fn settings(&self) -> Result<Option<PlatformConfig>> {
        if !self.path.is_file() {
            return Ok(None);
        }
        Ok(Some(PlatformConfig::read(&self.path)?))
    }

    /// The data directory: `[runtime] data-dir` of the platform if its file
    /// exists, else `$CONVERGIO_HOME`.
    pub fn data_dir(&self) -> Result<PathBuf> {
        Ok(self
            .settings()?
            .and_then(|settings| settings.runtime.data_dir)
            .unwrap_or_else(convergio_runtime::paths::home))
    }
}

/// A multi-threaded async runtime.
pub fn tokio() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// The error and its causes on one line, each cause once: a message that
/// already quotes its cause (`cannot read x: No such file`) does not get
/// it again.
pub fn describe(err: &anyhow::Error) -> String {
    let mut out = err.to_string();
    for cause in err.chain().skip(1) {
        let cause = cause.to_string();
        if !out.contains(&cause) {
            out.push_str(": ");
            out.push_str(&cause);
        }
    }
    out
}

/// A date given on the command line: `2027-01-31` (midnight UTC) or RFC 3339.
pub fn date(text: &str) -> Result<SystemTime> {
    let full = if text.len() == 10 {
        format!("{text}T00:00:00Z")
    } else {
        text.to_string()
    };
    humantime::parse_rfc3339_weak(&full)
        .with_context(|| format!("`{text}` is not a date: use 2027-01-31 or 2027-01-31T12:00:00Z"))
}

/// Micro-dollars as dollars with six decimals: `$0.000123`.
pub fn usd(micro_usd: u64) -> String {
    format!("${:.6}", micro_usd as f64 / 1_000_000.0)
}
