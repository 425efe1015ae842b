//! What a [`crate::Runtime`] and its clones share.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::Duration;

use wasmtime::Engine;

use crate::capabilities::{Services, Shared};
use crate::engine::EpochTicker;
use crate::slot::Slot;
use crate::{Error, Result};

pub(crate) struct Inner {
    pub(crate) engine: Engine,
    /// What several capabilities share: the vault, the router.
    pub(crate) services: Services,
    /// Each capability's platform-wide state.
    pub(crate) shared: Shared,
    pub(crate) slots: RwLock<BTreeMap<String, Arc<Slot>>>,
    /// Each plugin's host-memory account, kept across reloads.
    pub(crate) accounts: Mutex<BTreeMap<String, convergio_host_memory::Account>>,
    pub(crate) fuel: bool,
    pub(crate) tick: Duration,
    pub(crate) _epoch: EpochTicker,
    /// The file watcher started by `[runtime] watch = true`.
    pub(crate) watch: Mutex<Option<crate::WatchHandle>>,
    /// Run, in `Runtime::subscribe`, before the subscriber gets its
    /// receiver (see `graphs::forward_events`, which starts following its
    /// journal there, so a subscriber misses no run event after subscribing).
    pub(crate) on_subscribe: Mutex<Vec<Box<dyn Fn() + Send + Sync>>>,
}

impl Inner {
    pub(crate) fn read_slots(&self) -> RwLockReadGuard<'_, BTreeMap<String, Arc<Slot>>> {
        self.slots.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn slot(&self, id: &str) -> Result<Arc<Slot>> {
        self.read_slots()
            .get(id)
            .cloned()
            .ok_or_else(|| Error::UnknownPlugin(id.to_string()))
    }

    /// The host-memory account of plugin `id` (made on first use).
    pub(crate) fn account(&self, id: &str) -> convergio_host_memory::Account {
        *self
            .accounts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(id.to_string())
            .or_insert_with(convergio_host_memory::Account::new)
    }
}
