//! The one wasmtime [`Engine`] of a host: pooling allocator, epoch
//! interruption, optional fuel and an on-disk cache of compiled components.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{
    Cache, CacheConfig, Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig,
};

use crate::config::RuntimeSettings;
use crate::{Error, Result};

/// Table elements any one instance may hold at most (per-plugin limits go below this).
pub const POOL_TABLE_ELEMENTS: usize = 100_000;

/// Build the engine. `fuel` turns on fuel metering for every store (plugins
/// without a fuel limit get an unlimited amount).
pub fn build_engine(
    settings: &RuntimeSettings,
    cache_dir: Option<PathBuf>,
    fuel: bool,
) -> Result<Engine> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.consume_fuel(fuel);
    // Async host functions run guest code on fibers; keep the wasm stack well inside the fiber stack.
    config.max_wasm_stack(1 << 20);
    config.async_stack_size(2 << 20);
    // `CONVERGIO_PERFMAP=1`: name guest functions in `perf` profiles
    // (/tmp/perf-PID.map), for profiling plugins (docs/operators.md).
    if std::env::var_os("CONVERGIO_PERFMAP").is_some_and(|v| v == "1") {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }

    let instances = settings.pool_instances.max(1);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(instances)
        .total_core_instances(instances.saturating_mul(8))
        .total_memories(instances.saturating_mul(2))
        .total_tables(instances.saturating_mul(8))
        .total_stacks(instances)
        .max_core_instances_per_component(32)
        .max_memories_per_component(4)
        .max_tables_per_component(16)
        .table_elements(POOL_TABLE_ELEMENTS)
        .max_memory_size(usize::try_from(settings.pool_memory_mib << 20).unwrap_or(usize::MAX));
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));

    if let Some(dir) = cache_dir {
        let mut cache = CacheConfig::new();
        cache.with_directory(dir);
        config.cache(Some(Cache::new(cache)?));
    }
    Ok(Engine::new(&config)?)
}

/// Increments the engine's epoch every tick so deadlines fire; stops on drop.
#[derive(Debug)]
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    /// Start ticking `engine` every `tick`.
    pub fn start(engine: &Engine, tick: Duration) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let weak = engine.weak();
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("convergio-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| Error::Config(format!("cannot start the epoch thread: {e}")))?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
