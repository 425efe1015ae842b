//! Convergio's storage capability: `wasi:keyvalue` (`store`, `atomics` with
//! compare-and-swap, `batch`) for plugins, on a pluggable [`Backend`]. Both
//! `0.2.0-draft2` (the platform's contract) and `0.2.0-draft` (what
//! `wasmtime-wasi-keyvalue` speaks) are linked, over the same buckets.
//!
//! - [`Backend`] is the storage engine. [`SqliteBackend`] keeps every bucket in
//!   one SQLite file (WAL, `synchronous=FULL`: a write that returned `Ok`
//!   survives a crash of the host). Another engine (PostgreSQL) implements the
//!   same trait; nothing else changes.
//! - [`StoragePolicy`] is what the operator granted one plugin: the buckets it
//!   may open and their quotas, parsed once at load. Opening any other bucket
//!   returns the WIT error `access-denied`; a write past a quota returns
//!   `other(message)`. Neither traps.
//! - [`StorageCtx`] holds the backend, the policy and the plugin id;
//!   [`StorageView`] borrows it together with the store's `ResourceTable`
//!   (open buckets are resources in that table), and [`add_to_linker`] links
//!   the three interfaces. Writes are async host functions that keep the
//!   runtime's other tasks running while a durable commit waits for the disk
//!   (`block_in_place`); reads are synchronous, on a connection no writer
//!   holds.
//!
//! Every host call runs in a tracing span `convergio.storage.<function>` with
//! the plugin and the bucket (never keys' values).
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use convergio_cap_storage::{
//!     BucketGrant, SqliteBackend, StorageCtx, StoragePolicy, StorageView, add_to_linker,
//! };
//! use wasmtime::component::{Linker, ResourceTable};
//! use wasmtime::{Engine, Store};
//!
//! struct Host {
//!     storage: Arc<StorageCtx>,
//!     table: ResourceTable,
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let backend = Arc::new(SqliteBackend::open("data/storage.db")?);
//! let policy = Arc::new(StoragePolicy::new(vec![BucketGrant::new("notes").with_max_keys(10_000)]));
//! let storage = Arc::new(StorageCtx::new("notes-tool", backend, policy));
//!
//! let engine = Engine::default();
//! let mut linker = Linker::<Host>::new(&engine);
//! add_to_linker(&mut linker, |h: &mut Host| StorageView::new(&h.storage, &mut h.table))?;
//! let store = Store::new(&engine, Host { storage, table: ResourceTable::new() });
//! // ... instantiate a component that imports wasi:keyvalue with `linker`,
//! // using `instantiate_async` and `call_async` (the writes are async) ...
//! # drop(store);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod backend;
mod error;
mod host;
mod policy;
mod sqlite;

pub use backend::{Backend, CounterRange, KeyPage, Quota, ReadLimit, Swap, Usage};
pub use error::{Error, QuotaKind, Result};
pub use host::{
    CAS_HELD_BYTES_LIMIT, DEFAULT_MAX_BATCH_BYTES, StorageCtx, StorageView, add_to_linker,
};
pub use policy::{BucketGrant, StoragePolicy};
pub use sqlite::SqliteBackend;
