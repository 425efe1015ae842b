//! `wasi:keyvalue`: buckets of the platform's storage (`convergio-cap-storage`),
//! on the SQLite database `convergio.db` in the data directory.

use std::sync::Arc;

use convergio_cap_storage::{
    Backend, BucketGrant, SqliteBackend, StorageCtx, StoragePolicy, StorageView,
};
use wasmtime::component::Linker;

use super::{CapabilityHost, HostCapability, Services, data_dir};
use crate::config::{Platform, PluginSpec};
use crate::{Capability, Error, Result};

pub(crate) struct Storage;

impl HostCapability for Storage {
    const CAPABILITY: Option<Capability> = Some(Capability::Storage);
    type Shared = Arc<dyn Backend>;
    type Plugin = StorageCtx;
    type Store = ();

    fn provides(interface: &str) -> bool {
        interface.starts_with("wasi:keyvalue/")
    }

    fn open(platform: &Platform, _: &Services) -> Result<Self::Shared> {
        let path = data_dir(platform).join("convergio.db");
        let backend = SqliteBackend::open(&path).map_err(|e| {
            Error::capability(
                "storage",
                format!("cannot open the storage database {}", path.display()),
                e,
            )
        })?;
        Ok(Arc::new(backend))
    }

    fn prepare(
        backend: &Self::Shared,
        _: &Services,
        spec: &Arc<PluginSpec>,
    ) -> std::result::Result<StorageCtx, Vec<String>> {
        let buckets = spec
            .grants
            .storage
            .iter()
            .map(|name| {
                let mut grant = BucketGrant::new(name.clone());
                if let Some(keys) = spec.limits.bucket_max_keys {
                    grant = grant.with_max_keys(keys);
                }
                if let Some(bytes) = spec.limits.bucket_max_bytes {
                    grant = grant.with_max_bytes(bytes);
                }
                grant
            })
            .collect();
        Ok(StorageCtx::new(
            spec.id.clone(),
            backend.clone(),
            Arc::new(StoragePolicy::new(buckets)),
        )
        .with_max_batch_bytes(spec.limits.host_memory_bytes as u64))
    }

    fn store(_: &StorageCtx) {}

    fn add_to_linker<T: CapabilityHost>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        convergio_cap_storage::add_to_linker(linker, view::<T>)
    }
}

fn view<T: CapabilityHost>(host: &mut T) -> StorageView<'_> {
    let parts = host.parts();
    StorageView::new(&parts.plugin.storage, parts.table).with_deadline(parts.deadline_at)
}
