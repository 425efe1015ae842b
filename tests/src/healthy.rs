//! A healthy plugin called again and again while something hostile runs
//! beside it in the same process: every call must answer, and promptly.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use convergio_runtime::Runtime;
use serde_json::json;

/// A healthy call must come back within this, whatever runs beside it.
pub const PROMPT: Duration = Duration::from_secs(3);

/// The plugin `healthy` (the `plain_tool` component) echoes; panics if not.
pub async fn answers(runtime: &Runtime) {
    let out = runtime
        .invoke_json(
            "healthy",
            "tool.invoke",
            &json!(["echo", "{\"still\":\"here\"}"]),
        )
        .await
        .expect("the healthy plugin answers");
    assert_eq!(out, json!({"ok": "{\"still\":\"here\"}"}));
}

/// Run `attack` while plugin `healthy` is called every 20 ms; panics unless
/// each of those calls answered within [`PROMPT`] (and at least one ran).
pub async fn throughout<T>(runtime: &Runtime, attack: impl Future<Output = T>) -> T {
    let stop = Arc::new(AtomicBool::new(false));
    let caller = {
        let (runtime, stop) = (runtime.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut calls, mut slowest) = (0u32, Duration::ZERO);
            loop {
                let started = Instant::now();
                answers(&runtime).await;
                slowest = slowest.max(started.elapsed());
                calls += 1;
                if stop.load(Ordering::Relaxed) {
                    break (calls, slowest);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let out = attack.await;
    stop.store(true, Ordering::Relaxed);
    let (calls, slowest) = caller.await.expect("the healthy caller ran");
    assert!(
        slowest < PROMPT,
        "a call of the healthy plugin took {slowest:?} while the attack ran ({calls} calls)"
    );
    out
}
