//! The budget of host memory each plugin has: what the host allocates on a
//! plugin's behalf is charged to the plugin's
//! [`Account`](convergio_host_memory::Account) while the runtime runs one of
//! its stores, and a call that takes the plugin past `limits.host-memory-mib`
//! is stopped (see `guard_host_memory` in the runtime).

/// Most resource handles (open buckets, HTTP fields, requests, bodies,
/// streams, pollables, …) one instance may hold at once. wasmtime's default
/// is a million; a plugin that needs more than this is leaking handles.
pub const MAX_HANDLES: usize = 10_000;

/// A call stopped because the host held more memory for the plugin than its budget.
#[derive(Debug, thiserror::Error)]
#[error(
    "host memory limit of {} MiB reached: the host held {} MiB for this plugin (resource handles, HTTP fields and bodies, storage results); release handles sooner, or raise limits.host-memory-mib",
    .limit >> 20,
    .used.div_ceil(1 << 20)
)]
pub struct HostMemoryExceeded {
    /// Bytes held when the call was stopped.
    pub used: usize,
    /// The plugin's budget in bytes.
    pub limit: usize,
}
