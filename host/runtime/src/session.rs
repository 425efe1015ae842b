//! Sessions: a live instance of one plugin in a store under its limits,
//! fresh for each call or taken warm from its slot, and the one-line
//! reasons a call failed.

use std::sync::{Arc, Weak};
use std::task::Poll;
use std::time::{Duration, Instant};

use tracing::Instrument;
use wasmtime::component::{ResourceTable, Val};
use wasmtime::{CallHook, Store, StoreLimitsBuilder, Trap, UpdateDeadline};

use crate::capabilities::CallContext;
use crate::config::PluginSpec;
use crate::error::one_line;
use crate::exports::ExportFn;
use crate::host_memory::{HostMemoryExceeded, MAX_HANDLES};
use crate::host_state::HostState;
use crate::inner::Inner;
use crate::slot::{Loaded, Slot, Warm};
use crate::{Error, Result};

/// Run one export under the plugin's limits: in a fresh store, or on an
/// idle warm instance when the plugin keeps some (`warm-instances`), which
/// goes back to the slot after a call that went well.
pub(crate) async fn call_in_store(
    inner: &Inner,
    slot: &Arc<Slot>,
    loaded: &Loaded,
    export: &ExportFn,
    params: &[Val],
    results: &mut [Val],
    context: Option<Arc<CallContext>>,
) -> Result<()> {
    with_export(inner, slot, loaded, export, context, async |store, func| {
        func.call_async(store, params, results).await
    })
    .await
}

/// Run `f` with export `export` of a session of the plugin (see
/// [`call_in_store`]): `f` calls it, with [`wasmtime::component::Val`]s or
/// typed.
pub(crate) async fn with_export<T>(
    inner: &Inner,
    slot: &Arc<Slot>,
    loaded: &Loaded,
    export: &ExportFn,
    context: Option<Arc<CallContext>>,
    f: impl AsyncFnOnce(&mut Store<HostState>, wasmtime::component::Func) -> wasmtime::Result<T>,
) -> Result<T> {
    with_instance(
        inner,
        slot,
        loaded,
        export.qualified(),
        context,
        async |store, instance| {
            let func = instance
                .get_func(&mut *store, export.index)
                .ok_or_else(|| {
                    wasmtime::format_err!("export `{}` is not a function", export.qualified())
                })?;
            f(store, func).await
        },
    )
    .await
}

/// Run `f` in a session of the plugin (see [`call_in_store`]) serving
/// `context`; `function` names what it calls, for the trace.
pub(crate) async fn with_instance<T>(
    inner: &Inner,
    slot: &Arc<Slot>,
    loaded: &Loaded,
    function: &str,
    context: Option<Arc<CallContext>>,
    f: impl AsyncFnOnce(&mut Store<HostState>, &wasmtime::component::Instance) -> wasmtime::Result<T>,
) -> Result<T> {
    let spec = &loaded.spec;
    let span = tracing::debug_span!(
        "convergio.runtime.call",
        plugin = %spec.id,
        function,
        generation = loaded.generation
    );
    async {
        let mut session = Session::open_warm(inner, slot, loaded).await?;
        session.store.data_mut().caps.run_context = context;
        let outcome = session.run(f).await;
        // Kept warm only if the call went well (see `Session::release`),
        // and serving no run's call.
        session.store.data_mut().caps.run_context = None;
        session.release();
        outcome
    }
    .instrument(span)
    .await
}

/// A live instance of one plugin: its store (with the plugin's limits and
/// grants), the instance and the slot it occupies. A call uses one session;
/// a stream keeps its session until it ends. The plugin's deadline counts
/// from the opening.
pub(crate) struct Session {
    pub(crate) store: Store<HostState>,
    pub(crate) instance: wasmtime::component::Instance,
    spec: Arc<PluginSpec>,
    /// Charged with what the host allocates while the session runs.
    account: convergio_host_memory::Account,
    deadline_at: Instant,
    grace: Duration,
    _permit: tokio::sync::OwnedSemaphorePermit,
    /// Where [`Session::release`] returns the instance, if it may be kept warm.
    warm: Option<WarmReturn>,
    /// No call of this session failed, trapped or timed out.
    healthy: bool,
}

/// Where a session's instance goes back to, and what it has served.
struct WarmReturn {
    slot: Weak<Slot>,
    generation: u64,
    uses: u32,
}

/// A session's place and time: one of the plugin's `max-instances`
/// permits, and when its deadline passes (counted from when the caller
/// started waiting).
struct Admission {
    permit: tokio::sync::OwnedSemaphorePermit,
    /// When the caller started waiting (the clock read once per call).
    started: Instant,
    deadline_at: Instant,
    grace: Duration,
}

impl Session {
    /// Wait for a free instance slot, then instantiate the plugin.
    pub(crate) async fn open(inner: &Inner, slot: &Slot, loaded: &Loaded) -> Result<Self> {
        let admission = Self::admit(inner, &loaded.spec, slot).await?;
        Self::instantiate(inner, loaded, admission).await
    }

    /// [`Session::open`] for a plugin whose instances may serve several
    /// calls (`warm-instances` above 0: provider plugins by default, other
    /// kinds when the operator opts them in): once a slot is free, an idle
    /// instance of the current version is taken if there is one, with a
    /// fresh deadline and fuel. Give the instance back with
    /// [`Session::release`] after a call that went well.
    pub(crate) async fn open_warm(
        inner: &Inner,
        slot: &Arc<Slot>,
        loaded: &Loaded,
    ) -> Result<Self> {
        let spec = &loaded.spec;
        if spec.limits.warm_instances == 0 {
            return Self::open(inner, slot, loaded).await;
        }
        // The permit first: an instance another call gives back while this
        // one waits is then there to take.
        let admission = Self::admit(inner, spec, slot).await?;
        let (mut session, uses) = match slot.take_warm(loaded.generation, admission.started) {
            Some(warm) => {
                let mut store = warm.store;
                arm(&mut store, inner, spec, admission.deadline_at)?;
                let session = Self {
                    store,
                    instance: warm.instance,
                    spec: spec.clone(),
                    account: loaded.account,
                    deadline_at: admission.deadline_at,
                    grace: admission.grace,
                    _permit: admission.permit,
                    warm: None,
                    healthy: true,
                };
                (session, warm.uses)
            }
            None => (Self::instantiate(inner, loaded, admission).await?, 0),
        };
        session.warm = Some(WarmReturn {
            slot: Arc::downgrade(slot),
            generation: loaded.generation,
            uses: uses + 1,
        });
        Ok(session)
    }

    /// Wait (up to the plugin's `queue-ms`) for one of its `max-instances`
    /// places; the deadline counts from the start of the wait.
    async fn admit(inner: &Inner, spec: &PluginSpec, slot: &Slot) -> Result<Admission> {
        let started = Instant::now();
        // A free place is taken at once, without arming a timer to wait.
        let permit = match Arc::clone(&slot.permits).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => Self::permit(spec, slot, started).await?,
        };
        Ok(Admission {
            permit,
            started,
            deadline_at: started + Duration::from_millis(spec.limits.deadline_ms),
            grace: Duration::from_millis(100) + inner.tick * 2,
        })
    }

    /// A fresh store with the plugin's limits, and the plugin instantiated in it.
    async fn instantiate(inner: &Inner, loaded: &Loaded, admission: Admission) -> Result<Self> {
        let spec = &loaded.spec;
        let limits = spec.limits;
        let Admission {
            permit,
            deadline_at,
            grace,
            ..
        } = admission;
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_HANDLES);
        let state = HostState {
            caps: loaded.caps.store(),
            plugin: loaded.caps.clone(),
            deadline_at,
            table,
            bound: Default::default(),
            limits: StoreLimitsBuilder::new()
                .memory_size(limits.memory_bytes)
                .table_elements(limits.table_elements)
                .trap_on_grow_failure(true)
                .build(),
        };
        let mut store = Store::new(&inner.engine, state);
        store.limiter(|s| &mut s.limits);
        guard_host_memory(&mut store, loaded.account, limits.host_memory_bytes);
        // Set once per store: it reads the deadline of the call at hand
        // from the store's data, which `arm` sets for each call.
        store.epoch_deadline_callback(|store| {
            if Instant::now() >= store.data().deadline_at {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        arm(&mut store, inner, spec, deadline_at)?;
        // The epoch deadline stops guest code; the timeout also bounds time in host calls.
        let outcome = tokio::time::timeout(
            deadline_at.saturating_duration_since(Instant::now()) + grace,
            loaded
                .account
                .scope(loaded.pre.instantiate_async(&mut store)),
        )
        .await;
        let instance = Self::settle(spec, outcome)?;
        Ok(Self {
            store,
            instance,
            spec: spec.clone(),
            account: loaded.account,
            deadline_at,
            grace,
            _permit: permit,
            warm: None,
            healthy: true,
        })
    }

    /// End the session; an instance opened with [`Session::open_warm`] whose
    /// calls all went well goes back to its slot for the next call, unless
    /// the plugin was reloaded meanwhile, enough instances are idle already,
    /// or it has served its plugin's `warm-max-uses` calls.
    pub(crate) fn release(self) {
        let Some(warm) = &self.warm else { return };
        if !self.healthy || warm.uses >= self.spec.limits.warm_max_uses {
            return;
        }
        let Some(slot) = warm.slot.upgrade() else {
            return;
        };
        if slot.current.load().generation != warm.generation {
            return;
        }
        let keep = self.spec.limits.warm_instances as usize;
        let (generation, uses) = (warm.generation, warm.uses);
        let mut idle = slot.warm.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < keep {
            idle.push(Warm {
                store: self.store,
                instance: self.instance,
                generation,
                uses,
                idle_since: Instant::now(),
            });
        }
    }

    /// Wait (up to the plugin's `queue-ms` from `started`) for one of its
    /// `max-instances` places.
    async fn permit(
        spec: &PluginSpec,
        slot: &Slot,
        started: Instant,
    ) -> Result<tokio::sync::OwnedSemaphorePermit> {
        let limits = spec.limits;
        let queue = Duration::from_millis(limits.queue_ms).saturating_sub(started.elapsed());
        match tokio::time::timeout(queue, slot.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(Error::Busy {
                plugin: spec.id.clone(),
                limit: limits.max_instances,
                waited_ms: started.elapsed().as_millis() as u64,
            }),
        }
    }

    /// Run `f` on the instance, within what is left of the deadline; a trap
    /// or the deadline becomes [`Error::Stopped`] with a one-line reason.
    pub(crate) async fn run<T>(
        &mut self,
        f: impl AsyncFnOnce(
            &mut Store<HostState>,
            &wasmtime::component::Instance,
        ) -> wasmtime::Result<T>,
    ) -> Result<T> {
        let account = self.account;
        let mut call = std::pin::pin!(account.scope(f(&mut self.store, &self.instance)));
        // Polled once before a timer is armed: a call that finishes in its
        // first poll (a warm instance's short call, the usual node call or
        // step) costs no timer and no clock read. One that waits (on a
        // host call, or yielding at an epoch tick) is bounded from then on
        // by the same absolute deadline; guest code is stopped at it by
        // the epoch deadline whether or not the timer is armed.
        let first = std::future::poll_fn(|cx| Poll::Ready(call.as_mut().poll(cx))).await;
        let outcome = match first {
            Poll::Ready(result) => Ok(result),
            Poll::Pending => {
                let until = tokio::time::Instant::from_std(self.deadline_at + self.grace);
                tokio::time::timeout_at(until, call).await
            }
        };
        let settled = Self::settle(&self.spec, outcome);
        // A trap or a call cut at its deadline leaves the instance unusable.
        self.healthy &= settled.is_ok();
        settled
    }

    fn settle<T>(
        spec: &PluginSpec,
        outcome: std::result::Result<wasmtime::Result<T>, tokio::time::error::Elapsed>,
    ) -> Result<T> {
        let stopped = |reason: String| {
            tracing::warn!(plugin = %spec.id, %reason, "plugin stopped");
            Error::Stopped {
                plugin: spec.id.clone(),
                reason,
            }
        };
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(stopped(describe_failure(&err, spec))),
            Err(_) => Err(stopped(format!(
                "deadline of {} ms exceeded",
                spec.limits.deadline_ms
            ))),
        }
    }
}

/// Stop the plugin's call when the host holds more than `limit` bytes for
/// it: checked each time a host call returns to the guest and each time the
/// host calls into the guest, so a plugin overshoots by at most what one host
/// call allocates (and those that could allocate without bound, such as
/// storage batch reads, are capped themselves).
fn guard_host_memory(
    store: &mut Store<HostState>,
    account: convergio_host_memory::Account,
    limit: usize,
) {
    if !account.is_counting() {
        return;
    }
    store.call_hook(move |_, hook| {
        if matches!(hook, CallHook::ReturningFromHost | CallHook::CallingWasm) {
            let used = account.used();
            if used > limit {
                return Err(HostMemoryExceeded { used, limit }.into());
            }
        }
        Ok(())
    });
}

/// Set a store up for one session: the deadline (guest code yields to the
/// executor every epoch tick, so a busy plugin never holds a worker thread,
/// and is interrupted once `deadline_at` has passed) and the fuel of a call.
fn arm(
    store: &mut Store<HostState>,
    inner: &Inner,
    spec: &PluginSpec,
    deadline_at: Instant,
) -> Result<()> {
    // The store's epoch callback reads it (see `instantiate`); host calls
    // that could run long (storage batch reads) stop there too.
    store.data_mut().deadline_at = deadline_at;
    store.set_epoch_deadline(1);
    if inner.fuel {
        store.set_fuel(spec.limits.fuel.unwrap_or(u64::MAX))?;
    }
    Ok(())
}

/// A one-line reason for a failed call (the wasm backtrace goes to the debug log).
pub(crate) fn describe_failure(err: &wasmtime::Error, spec: &PluginSpec) -> String {
    tracing::debug!(plugin = %spec.id, "call failed: {err:?}");
    let limits = spec.limits;
    if let Some(exceeded) = err
        .chain()
        .find_map(|cause| cause.downcast_ref::<HostMemoryExceeded>())
    {
        return exceeded.to_string();
    }
    if err.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<wasmtime::component::ResourceTableError>(),
            Some(wasmtime::component::ResourceTableError::Full)
        )
    }) {
        return format!(
            "more than {MAX_HANDLES} resource handles open at once (the host's limit per instance); drop handles (fields, bodies, buckets, streams) sooner"
        );
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => format!("deadline of {} ms exceeded", limits.deadline_ms),
        Some(Trap::OutOfFuel) => format!("fuel limit of {} exhausted", limits.fuel.unwrap_or(0)),
        Some(Trap::StackOverflow) => "call stack exhausted (unbounded recursion?)".to_string(),
        Some(Trap::MemoryOutOfBounds) => "trapped: out-of-bounds memory access (a stack overflow in the plugin's shadow stack, e.g. unbounded recursion, or a memory bug)".to_string(),
        Some(Trap::UnreachableCodeReached) => {
            "trapped: unreachable code reached (the plugin panicked or aborted)".to_string()
        }
        Some(trap) => format!("trapped: {trap}"),
        None => {
            let text = one_line(err);
            if text.contains("forcing trap when growing memory") {
                format!("memory limit of {} MiB reached", limits.memory_bytes >> 20)
            } else if text.contains("forcing trap when growing table") {
                format!("table limit of {} elements reached", limits.table_elements)
            } else {
                text
            }
        }
    }
}
