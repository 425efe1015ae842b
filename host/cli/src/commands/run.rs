//! `convergio run`: keep the platform loaded and print its events.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::shared::PlatformFile;

/// Keep the platform loaded: hot-reload plugins whose component file
/// changes and print every event plugins publish, one JSON line each,
/// until Ctrl-C. When plugins are granted keys, the key vault is
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
        rt.block_on(async {
            let _watch = runtime.watch()?;
            let mut events = runtime.subscribe();
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
