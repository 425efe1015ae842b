//! `convergio run`: keep the platform loaded and print its events.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::shared::PlatformFile;

/// Keep the platform loaded: hot-reload plugins whose component file
/// changes and print every event plugins (and graph runs) publish, one
/// JSON line each, until Ctrl-C. Graph runs that were running when the
/// platform last stopped are resumed at start. When plugins are granted keys, the key vault is
/// maintained in the background: at start and then periodically, grace
/// periods that ended are swept, a newer master key version is picked up,
/// and keys near their expiry or maximum age are logged as warnings.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// How often to run the key vault's maintenance (`1h`, `30m`, …).
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    key_maintenance_every: Duration,
}

impl RunArgs {
    /// Serve until Ctrl-C.
    pub fn run(self, platform: &PlatformFile) -> Result<ExitCode> {
        let (rt, runtime) = platform.load()?;
        // Stops when dropped, on the way out.
        let _maintenance = runtime
            .vault()
            .map(|vault| {
                vault.spawn_maintenance(self.key_maintenance_every, |pass| match pass {
                    Ok(report) => report.log(),
                    Err(error) => tracing::warn!(%error, "key vault maintenance failed"),
                })
            })
            .transpose()
            .context("cannot start the key vault's maintenance")?;
        let config = convergio_runtime::Platform::load(platform.path())?;
        rt.block_on(async {
            let _watch = runtime.watch()?;
            // Subscribed first, so the events of the runs resumed below are
            // printed from their first.
            let mut events = runtime.subscribe();
            // Runs that were running when this platform last stopped go on.
            let _runs = match convergio_runtime::graphs::orchestrator_id(&config) {
                Ok(_) => {
                    let runs = convergio_runtime::graphs::runs(&runtime, &config, None)?;
                    let resumed = runs.resume_all().await?;
                    if !resumed.is_empty() {
                        eprintln!(
                            "convergio: resumed {} graph run(s) that were running: {}",
                            resumed.len(),
                            resumed.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")
                        );
                    }
                    Some(runs)
                }
                Err(_) => None,
            };
            eprintln!(
                "convergio: {} plugin(s) loaded ({}); watching their component files; Ctrl-C stops",
                runtime.plugin_ids().len(),
                runtime.plugin_ids().join(", ")
            );
            loop {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => break,
                    event = events.recv() => match event {
                        Ok(e) => println!(
                            "{}",
                            serde_json::json!({"source": e.source, "topic": e.topic, "payload": e.payload, "timestamp-ms": e.timestamp_ms})
                        ),
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                            tracing::warn!("{n} events were dropped: the output is too slow");
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    },
                }
            }
            anyhow::Ok(ExitCode::SUCCESS)
        })
    }
}
