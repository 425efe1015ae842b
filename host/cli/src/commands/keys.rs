//! `convergio keys`: the operator's BYOK key vault.
//!
//! Secrets are read from standard input (or a prompt that does not echo),
//! never from the command line, and are never printed.

use std::io::{IsTerminal, Read};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use convergio_cap_keys::secrecy::SecretString;
use convergio_cap_keys::{AuthScheme, BoundOrigin, DEFAULT_KEY_NAME, Vault, default_bound_hosts};

use crate::shared::{self, PlatformFile};

/// Manage BYOK provider keys (encrypted at rest; secrets are never printed).
#[derive(Debug, clap::Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
}

/// Key vault commands.
#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Store a provider key; the secret is read from stdin or a silent prompt.
    Add {
        /// Provider, e.g. `openai`, `anthropic`, `gemini`, `azure-openai`.
        provider: String,
        /// Key name, for several keys of one provider.
        #[arg(long, default_value = DEFAULT_KEY_NAME)]
        name: String,
        /// Date after which the key is refused (`2027-01-31` or RFC 3339).
        #[arg(long)]
        expires: Option<String>,
        /// Origin the key may be sent to, `scheme://host[:port]` (repeatable).
        /// A bare host means https on port 443; a bare loopback host
        /// (`127.0.0.1`, `localhost`, `::1`) http or https on any port.
        /// Defaults to the provider's API hosts over https.
        #[arg(long = "host", visible_alias = "origin")]
        hosts: Vec<String>,
        /// Header the key travels in: bearer, x-api-key, api-key or x-goog-api-key
        /// (default: the provider's).
        #[arg(long)]
        auth_scheme: Option<String>,
    },
    /// List keys, masked, with usage, last use and warnings.
    List,
    /// Replace a key's secret (read from stdin); the old version stays valid for the grace period.
    Rotate {
        /// Provider.
        provider: String,
        /// Key name.
        #[arg(long, default_value = DEFAULT_KEY_NAME)]
        name: String,
        /// How long the old version stays valid, e.g. `24h`, `30m`.
        #[arg(long, default_value = "24h")]
        grace: String,
        /// Expiry of the new version.
        #[arg(long)]
        expires: Option<String>,
    },
    /// Delete a key and all its versions (usage history is kept).
    Remove {
        /// Provider.
        provider: String,
        /// Key name.
        #[arg(long, default_value = DEFAULT_KEY_NAME)]
        name: String,
    },
    /// Requests, tokens, cost and errors per key version.
    Usage {
        /// Only this provider.
        provider: Option<String>,
        /// Only usage since this date (`2026-11-01` or RFC 3339).
        #[arg(long)]
        since: Option<String>,
    },
}

/// Read a secret from stdin (piped) or a prompt that does not echo.
fn read_secret(what: &str) -> Result<SecretString> {
    let text = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("{what}: ")).context("cannot read the secret")?
    } else {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the secret from stdin")?;
        text
    };
    let trimmed = text.trim_end_matches(['\r', '\n']).to_string();
    if trimmed.is_empty() {
        bail!(
            "no secret given: pipe it on stdin (e.g. `convergio keys add openai < key.txt`) or type it at the prompt"
        );
    }
    Ok(SecretString::from(trimmed))
}

fn show(time: Option<SystemTime>) -> String {
    time.map_or_else(
        || "-".to_string(),
        |t| humantime::format_rfc3339_seconds(t).to_string(),
    )
}

impl KeysArgs {
    /// Run the subcommand on the vault in the data directory, under the
    /// `[keys]` policy of platform.toml.
    pub fn run(self, platform: &PlatformFile) -> Result<ExitCode> {
        let policy = platform
            .settings()?
            .map(|settings| settings.keys)
            .unwrap_or_default();
        let vault = Vault::open_in_with(&platform.data_dir()?, policy.vault_options())?;
        match self.command {
            KeysCommand::Add {
                provider,
                name,
                expires,
                hosts,
                auth_scheme,
            } => {
                let hosts = if hosts.is_empty() {
                    default_bound_hosts(&provider)
                } else {
                    hosts
                };
                if hosts.is_empty() {
                    bail!(
                        "provider `{provider}` has no known API host: name the origins the key may go to with --host scheme://host[:port], e.g. --host https://api.example.com or --host http://127.0.0.1:8080"
                    );
                }
                // Checked before the secret is asked for.
                let mut origins: Vec<String> = Vec::new();
                for binding in &hosts {
                    let parsed = BoundOrigin::parse_binding(binding)
                        .with_context(|| format!("--host {binding}"))?;
                    for origin in parsed {
                        let origin = origin.to_string();
                        if !origins.contains(&origin) {
                            origins.push(origin);
                        }
                    }
                }
                let scheme = match auth_scheme {
                    Some(s) => s.parse::<AuthScheme>()?,
                    None => AuthScheme::for_provider(&provider),
                };
                let expires = expires.as_deref().map(shared::date).transpose()?;
                let secret = read_secret(&format!("secret for {provider}/{name}"))?;
                let version = vault.add(&provider, &name, &secret, expires, &hosts, scheme)?;
                println!(
                    "added {provider}/{name} version {version}, sent as {scheme} to {}",
                    origins.join(", ")
                );
            }
            KeysCommand::List => {
                let rows = vault.list()?;
                if rows.is_empty() {
                    println!("no keys; add one with `convergio keys add PROVIDER`");
                }
                for k in rows {
                    println!(
                        "{} v{} {} {} created {} expires {} last used {} | {} requests, {} in / {} out tokens, ${:.4}, {} errors",
                        k.key,
                        k.version,
                        k.state,
                        k.masked,
                        show(Some(k.created)),
                        show(k.expires),
                        show(k.last_used),
                        k.usage.requests,
                        k.usage.input_tokens,
                        k.usage.output_tokens,
                        k.usage.cost_usd(),
                        k.usage.errors
                    );
                    println!("  sent to: {}", k.bound_hosts.join(", "));
                    for warning in &k.warnings {
                        println!("  warning: {warning}");
                    }
                }
            }
            KeysCommand::Rotate {
                provider,
                name,
                grace,
                expires,
            } => {
                let grace: Duration = humantime::parse_duration(&grace)
                    .with_context(|| format!("`{grace}` is not a duration: use e.g. 24h or 30m"))?;
                let expires = expires.as_deref().map(shared::date).transpose()?;
                let secret = read_secret(&format!("new secret for {provider}/{name}"))?;
                let version = vault.rotate(&provider, &name, &secret, grace, expires)?;
                println!(
                    "rotated {provider}/{name}: version {version} is active; the previous one is accepted for {}",
                    humantime::format_duration(grace)
                );
            }
            KeysCommand::Remove { provider, name } => {
                let removed = vault.remove(&provider, &name)?;
                println!("removed {provider}/{name} ({removed} version(s))");
            }
            KeysCommand::Usage { provider, since } => {
                let since = since.as_deref().map(shared::date).transpose()?;
                for row in vault.usage(provider.as_deref(), since)? {
                    println!(
                        "{} v{}: {} requests, {} in / {} out tokens, ${:.4}, {} errors, last used {}",
                        row.key,
                        row.version,
                        row.totals.requests,
                        row.totals.input_tokens,
                        row.totals.output_tokens,
                        row.totals.cost_usd(),
                        row.totals.errors,
                        show(row.last_used)
                    );
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
