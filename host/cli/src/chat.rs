//! `convergio chat`: one prompt to a model through the platform's router,
//! tokens printed as they arrive.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use convergio_runtime::inference::{
    Caller, ChatRequest, Message, ModelSelector, Requirements, Role, Sampling, Strategy,
};

/// How `chat` picks a model when none is named.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Policy {
    /// The cheapest model that can take the prompt.
    Cheapest,
    /// The best model that can take the prompt.
    BestQuality,
}

/// What `chat` was asked.
#[derive(Debug)]
pub struct ChatArgs {
    /// `provider/model`, if named.
    pub model: Option<String>,
    /// The policy otherwise.
    pub policy: Policy,
    /// A system message.
    pub system: Option<String>,
    /// Completion cap.
    pub max_tokens: Option<u32>,
    /// Sampling temperature (0: always the most likely token).
    pub temperature: Option<f32>,
    /// Seed of the sampler, for repeatable answers.
    pub seed: Option<u64>,
    /// The prompt; `-` reads it from stdin.
    pub prompt: String,
    /// List the models instead of chatting.
    pub list: bool,
}

/// Run `chat` on the platform of `config`.
pub fn run(config: &Path, args: ChatArgs) -> Result<ExitCode> {
    let (rt, runtime) = crate::load(config)?;
    let router = runtime
        .router()
        .context("the platform has no inference router")?;
    if args.list {
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
    let prompt = if args.prompt == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading the prompt from stdin")?
    } else {
        args.prompt
    };
    if prompt.trim().is_empty() {
        bail!("the prompt is empty; give it as an argument, or `-` to read stdin");
    }
    let mut messages = Vec::new();
    if let Some(system) = args.system {
        messages.push(Message::text(Role::System, system));
    }
    messages.push(Message::text(Role::User, prompt));
    let model = match args.model {
        Some(name) => ModelSelector::Named(name),
        None => ModelSelector::Policy(
            match args.policy {
                Policy::Cheapest => Strategy::Cheapest,
                Policy::BestQuality => Strategy::BestQuality,
            },
            Requirements::default(),
        ),
    };
    let request = ChatRequest {
        model,
        messages,
        tools: Vec::new(),
        sampling: Sampling {
            max_tokens: args.max_tokens,
            temperature: args.temperature,
            seed: args.seed,
            ..Sampling::default()
        },
        json_mode: false,
    };
    let caller = Caller {
        plugin: "cli".to_owned(),
        agent: None,
    };
    rt.block_on(async {
        let mut stream = router
            .stream(&caller, request)
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
                "[{model}: {} tokens in, {} out, ${:.6}]",
                u.input_tokens,
                u.output_tokens,
                u.cost_micro_usd as f64 / 1_000_000.0
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}
