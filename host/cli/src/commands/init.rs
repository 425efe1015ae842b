//! `convergio init`: a commented default `platform.toml`, zero-cloud, with
//! the local model provider, so a first platform needs no key.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use crate::shared::PlatformFile;

/// The file `init` writes; `{manifest}` is the TOML string of the local
/// model provider's `plugin.toml`.
const TEMPLATE: &str = r#"# A Convergio platform, written by `convergio init`.
#
# Zero-cloud: models run on this machine (llama.cpp inside the host, behind
# the provider-local component). No key is needed and nothing leaves the
# machine. Every setting is described in docs/operators.md.
#
#   convergio models pull <file.gguf | https://… | org/repo/file.gguf> --name NAME
#   convergio check
#   convergio chat --model local/NAME "Hello"

[runtime]
# Compiled components are cached, and data (storage, usage ledger, key vault,
# model cache) kept, under $CONVERGIO_HOME (default ~/.local/share/convergio).
compile-cache = true
# data-dir = "data"                  # relative to this file

[runtime.default-limits]
# For plugins that set no [plugin.limits] of their own.
deadline-ms = 30000
memory-mib = 128
max-instances = 16

[inference]
# Only local models: the router never calls a cloud provider, and every
# plugin's outgoing HTTP is refused. Set to false before adding a cloud
# provider (docs/operators.md, "Inference").
zero-cloud = true

[local-models]
# cache-dir = "models"               # default: `models` in the data directory
context-length = 4096
# ollama = "http://127.0.0.1:11434"  # also serve an Ollama server's models

# The local model provider: the router names its models `local/<name>`.
[[plugin]]
id = "provider-local"
# Its manifest, relative to this file: the `components` folder of a
# Convergio checkout after `cargo xtask build-components`.
manifest = {manifest}

[plugin.grants]
# Every model of the cache (`convergio models list`); or name them: ["smollm2"].
models = ["*"]

[plugin.limits]
# A generation on a small CPU can take a while; a stream holds its instance until it ends.
deadline-ms = 120000
"#;

/// Folder of the provider's manifest under the components folder.
const PROVIDER: &str = "provider-local";

/// Write a commented default platform.toml (zero-cloud: local models
/// only, no key needed) at --config, which is ./platform.toml unless
/// named. An existing file is left alone unless --force.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// The `components` folder of a Convergio checkout (the one holding
    /// `provider-local/plugin.toml`); default: `components` beside the
    /// new platform.toml.
    #[arg(long)]
    components: Option<PathBuf>,
    /// Replace an existing file.
    #[arg(long)]
    force: bool,
}

impl InitArgs {
    /// Write the default platform to the platform file.
    pub fn run(self, platform: &PlatformFile) -> Result<ExitCode> {
        write(platform.path(), self.components.as_deref(), self.force)?;
        Ok(ExitCode::SUCCESS)
    }
}

/// Write the default platform to `config`. `components` is the folder that
/// holds `provider-local/plugin.toml` (default: `components` beside
/// `config`). Refuses to replace an existing file unless `force`.
fn write(config: &Path, components: Option<&Path>, force: bool) -> Result<()> {
    if config.exists() && !force {
        bail!(
            "{} already exists; `convergio init` does not overwrite it (add --force to replace it, or --config to write another file)",
            config.display()
        );
    }
    let cwd = std::env::current_dir().context("cannot tell the current directory")?;
    let folder = cwd.join(config.parent().unwrap_or(Path::new("")));
    let manifest = match components {
        Some(dir) => relative_to(&cwd.join(dir).join(PROVIDER).join("plugin.toml"), &folder),
        None => PathBuf::from("components")
            .join(PROVIDER)
            .join("plugin.toml"),
    };
    let manifest_text = manifest.to_str().with_context(|| {
        format!(
            "{} is not UTF-8; choose a --components folder whose path is",
            manifest.display()
        )
    })?;
    let text = TEMPLATE.replace("{manifest}", &serde_json::to_string(manifest_text)?);
    if !folder.is_dir() {
        std::fs::create_dir_all(&folder)
            .with_context(|| format!("cannot create {}", folder.display()))?;
    }
    std::fs::write(config, text).with_context(|| format!("cannot write {}", config.display()))?;

    println!(
        "wrote {}: zero-cloud, local models through provider-local, no key needed",
        config.display()
    );
    let found = folder.join(&manifest);
    if !found.is_file() {
        println!(
            "note: {} does not exist yet: point --components at the `components` folder of a Convergio checkout, or edit `manifest` in {}",
            found.display(),
            config.display()
        );
    }
    let flag = if config == Path::new("platform.toml") {
        String::new()
    } else {
        format!(" --config {}", config.display())
    };
    println!("next:");
    println!("  cargo xtask build-components        # in the Convergio checkout, once");
    println!(
        "  convergio{flag} models pull <file.gguf | https://… | org/repo/file.gguf> --name NAME"
    );
    println!("  convergio{flag} check");
    println!("  convergio{flag} chat --model local/NAME \"Hello\"");
    Ok(())
}

/// `path` relative to `base` when it lies under it, else `path` itself
/// (both absolute).
fn relative_to(path: &Path, base: &Path) -> PathBuf {
    let clean = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    let (path, base) = (clean(path), clean(base));
    path.strip_prefix(&base)
        .map(Path::to_path_buf)
        .unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_under_the_platform_folder_stay_relative() {
        let base = Path::new("/srv/convergio");
        assert_eq!(
            relative_to(&base.join("components/provider-local/plugin.toml"), base),
            Path::new("components/provider-local/plugin.toml")
        );
        assert_eq!(
            relative_to(Path::new("/opt/c/components/x.toml"), base),
            Path::new("/opt/c/components/x.toml")
        );
    }
}
