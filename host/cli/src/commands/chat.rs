//! `convergio chat`: one prompt to a model through the platform's router,
//! tokens printed as they arrive.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use convergio_runtime::inference::{
    Caller, ChatRequest, Message, ModelSelector, Requirements, ResponseFormat, Role, Router,
    Sampling, Strategy,
};

use crate::shared::{self, PlatformFile};

/// How `chat` picks a model when none is named.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Policy {
    /// The cheapest model that can take the prompt.
    Cheapest,
    /// The best model that can take the prompt.
    BestQuality,
}

/// Ask a model through the platform's router, printing tokens as they
/// arrive (usage and cost go to stderr).
#[derive(Debug, clap::Args)]
pub struct ChatArgs {
    /// `provider/model`, e.g. `openai/gpt-6-luna`; default: chosen by --policy.
    #[arg(long, short)]
    model: Option<String>,
    /// How to choose when no model is named.
    #[arg(long, value_enum, default_value = "cheapest")]
    policy: Policy,
    /// A system message.
    #[arg(long)]
    system: Option<String>,
    /// Most tokens to generate.
    #[arg(long)]
    max_tokens: Option<u32>,
    /// Sampling temperature (0: always the most likely token).
    #[arg(long)]
    temperature: Option<f32>,
    /// Seed of the sampler, for repeatable answers.
    #[arg(long)]
    seed: Option<u64>,
    /// Answer with JSON matching the JSON Schema in this file (local models
    /// sample under its grammar; an answer that does not match is asked for
    /// again with the errors). Prints the answer once it is validated.
    #[arg(long, value_name = "FILE")]
    schema: Option<std::path::PathBuf>,
    /// List the models the router can use, with prices, and exit.
    #[arg(long)]
    list: bool,
    /// The prompt (`-` reads it from stdin).
    #[arg(default_value = "", required_unless_present = "list")]
    prompt: String,
}

impl ChatArgs {
    /// Stream the answer to stdout, or list the models with `--list`.
    pub fn run(self, platform: &PlatformFile) -> Result<ExitCode> {
        let (rt, runtime) = platform.load()?;
        let router = runtime
            .router()
            .context("the platform has no inference router")?;
        if self.list {
            for (name, info) in rt.block_on(router.models()) {
                println!(
                    "{name}  context {}  ${}/${} per Mtok  {:?}{}",
                    info.context_window,
                    info.input_price_per_mtok,
                    info.output_price_per_mtok,
                    info.quality,
                    if info.local { "  local" } else { "" }
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
        let request = self.request()?;
        let caller = Caller {
            plugin: "cli".to_owned(),
            agent: None,
            run: None,
        };
        if request.format.is_json() {
            return rt.block_on(complete(&router, &caller, request));
        }
        rt.block_on(stream(&router, &caller, request))
    }

    /// The request the options describe; reads the prompt from stdin for `-`.
    fn request(self) -> Result<ChatRequest> {
        let prompt = if self.prompt == "-" {
            std::io::read_to_string(std::io::stdin()).context("reading the prompt from stdin")?
        } else {
            self.prompt
        };
        if prompt.trim().is_empty() {
            bail!("the prompt is empty; give it as an argument, or `-` to read stdin");
        }
        let format = match &self.schema {
            None => ResponseFormat::Text,
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading the JSON Schema {}", path.display()))?;
                serde_json::from_str::<serde_json::Value>(&text).with_context(|| {
                    format!("{} is not JSON, so not a JSON Schema", path.display())
                })?;
                ResponseFormat::JsonSchema(text)
            }
        };
        let mut messages = Vec::new();
        if let Some(system) = self.system {
            messages.push(Message::text(Role::System, system));
        }
        messages.push(Message::text(Role::User, prompt));
        let model = match self.model {
            Some(name) => ModelSelector::Named(name),
            None => ModelSelector::Policy(
                match self.policy {
                    Policy::Cheapest => Strategy::Cheapest,
                    Policy::BestQuality => Strategy::BestQuality,
                },
                Requirements {
                    json_mode: format.is_json(),
                    ..Requirements::default()
                },
            ),
        };
        Ok(ChatRequest {
            model,
            messages,
            tools: Vec::new(),
            sampling: Sampling {
                max_tokens: self.max_tokens,
                temperature: self.temperature,
                seed: self.seed,
                ..Sampling::default()
            },
            format,
        })
    }
}

/// Print the validated answer, then usage and cost on stderr.
async fn complete(router: &Router, caller: &Caller, request: ChatRequest) -> Result<ExitCode> {
    let done = router
        .complete(caller, request)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("{}", done.message.content);
    eprintln!(
        "[{}/{}: {} tokens in, {} out, {}]",
        done.provider,
        done.model,
        done.usage.input_tokens,
        done.usage.output_tokens,
        shared::usd(done.usage.cost_micro_usd)
    );
    Ok(ExitCode::SUCCESS)
}

/// Print the answer's tokens as they arrive, then usage and cost on stderr.
async fn stream(router: &Router, caller: &Caller, request: ChatRequest) -> Result<ExitCode> {
    let mut stream = router
        .stream(caller, request)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let model = stream.model().to_owned();
    let mut out = std::io::stdout().lock();
    let mut usage = None;
    while let Some(delta) = stream.next().await {
        let delta = delta.map_err(|e| anyhow::anyhow!("{model}: {e}"))?;
        out.write_all(delta.content.as_bytes())?;
        out.flush()?;
        usage = usage.or(delta.usage);
    }
    writeln!(out)?;
    if let Some(u) = usage {
        eprintln!(
            "[{model}: {} tokens in, {} out, {}]",
            u.input_tokens,
            u.output_tokens,
            shared::usd(u.cost_micro_usd)
        );
    }
    Ok(ExitCode::SUCCESS)
}
