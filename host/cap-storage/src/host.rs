//! The `wasi:keyvalue` host: per-store context, bucket resources, the three
//! interfaces and [`add_to_linker`].

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::runtime::RuntimeFlavor;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use crate::{Backend, CounterRange, Error, KeyPage, Quota, ReadLimit, Result, StoragePolicy, Swap};

/// An open bucket: the resource behind a guest's `bucket` handle.
#[derive(Debug)]
pub struct Bucket {
    name: String,
    quota: Quota,
}

/// Most bytes one plugin may hold in open compare-and-swap handles (each
/// holds the value it observed, and its key): 64 MiB.
pub const CAS_HELD_BYTES_LIMIT: u64 = 64 << 20;

/// Most bytes of keys and values one `get-many` returns unless the context
/// says otherwise ([`StorageCtx::with_max_batch_bytes`]): 64 MiB.
pub const DEFAULT_MAX_BATCH_BYTES: u64 = 64 << 20;

/// What one handle counts against [`CAS_HELD_BYTES_LIMIT`] beyond its key
/// and value, so that empty values are not free.
const CAS_HANDLE_OVERHEAD: u64 = 64;

/// An open compare-and-swap: the resource behind a guest's `cas` handle
/// (`wasi:keyvalue@0.2.0-draft2`). It holds the value the key had when the
/// handle was made; `swap` writes only if the key still holds it.
#[derive(Debug)]
pub struct Cas {
    bucket: String,
    quota: Quota,
    key: String,
    observed: Option<Vec<u8>>,
    _held: HeldBytes,
}

/// Bytes counted against a plugin's [`CAS_HELD_BYTES_LIMIT`] until dropped.
#[derive(Debug)]
struct HeldBytes {
    counter: Arc<AtomicU64>,
    bytes: u64,
}

impl HeldBytes {
    fn take(ctx: &StorageCtx, bytes: u64) -> Result<Self> {
        let counter = Arc::clone(&ctx.cas_held);
        let held = counter.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if held > CAS_HELD_BYTES_LIMIT {
            counter.fetch_sub(bytes, Ordering::Relaxed);
            return Err(Error::CasHeldLimit {
                plugin: ctx.plugin.clone(),
                held,
                limit: CAS_HELD_BYTES_LIMIT,
            });
        }
        Ok(Self { counter, bytes })
    }
}

impl Drop for HeldBytes {
    fn drop(&mut self) {
        self.counter.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// What the storage capability needs for one plugin: the backend, the
/// plugin's policy and its id (for spans and messages). Build it once per
/// plugin and share it (e.g. in an `Arc`) between that plugin's stores.
#[derive(Clone)]
pub struct StorageCtx {
    backend: Arc<dyn Backend>,
    policy: Arc<StoragePolicy>,
    plugin: String,
    /// Bytes held in the plugin's open compare-and-swap handles.
    cas_held: Arc<AtomicU64>,
    /// Most bytes of keys and values one `get-many` returns.
    max_batch_bytes: u64,
}

impl StorageCtx {
    /// The context of `plugin`.
    pub fn new(
        plugin: impl Into<String>,
        backend: Arc<dyn Backend>,
        policy: Arc<StoragePolicy>,
    ) -> Self {
        Self {
            backend,
            policy,
            plugin: plugin.into(),
            cas_held: Arc::default(),
            max_batch_bytes: DEFAULT_MAX_BATCH_BYTES,
        }
    }

    /// Let one `get-many` return at most `bytes` of keys and values
    /// (default [`DEFAULT_MAX_BATCH_BYTES`]); the runtime sets the plugin's
    /// host-memory budget.
    #[must_use]
    pub fn with_max_batch_bytes(mut self, bytes: u64) -> Self {
        self.max_batch_bytes = bytes;
        self
    }

    /// The plugin's id.
    pub fn plugin(&self) -> &str {
        &self.plugin
    }

    /// The plugin's policy.
    pub fn policy(&self) -> &StoragePolicy {
        &self.policy
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }
}

impl fmt::Debug for StorageCtx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StorageCtx")
            .field("plugin", &self.plugin)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// The storage context of a store borrowed with the store's resource table,
/// which holds the buckets the guest opened. [`add_to_linker`] takes a
/// function returning this view.
pub struct StorageView<'a> {
    /// The plugin's storage context.
    pub ctx: &'a StorageCtx,
    /// The store's resource table.
    pub table: &'a mut ResourceTable,
    /// When the current call's deadline passes: batch reads stop there.
    pub deadline: Option<std::time::Instant>,
}

impl<'a> StorageView<'a> {
    /// A view of `ctx` with `table`.
    pub fn new(ctx: &'a StorageCtx, table: &'a mut ResourceTable) -> Self {
        Self {
            ctx,
            table,
            deadline: None,
        }
    }

    /// Stop batch reads at `deadline`.
    #[must_use]
    pub fn with_deadline(mut self, deadline: std::time::Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }
}

impl fmt::Debug for StorageView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StorageView")
            .field("ctx", &self.ctx)
            .finish_non_exhaustive()
    }
}

/// Add `wasi:keyvalue/store`, `atomics` and `batch` to `linker`, in both
/// versions a guest may import: `0.2.0-draft2` (the platform's contract, with
/// compare-and-swap, signed counters and string cursors) and `0.2.0-draft`
/// (what `wasmtime-wasi-keyvalue` and older guests speak). Both reach the
/// same buckets.
///
/// The writes (`set`, `delete`, `increment`, `swap`, `set-many`,
/// `delete-many`) are async host functions, so a component that imports
/// them must be instantiated and called with wasmtime's `_async` methods
/// (`instantiate_async`, `call_async`). A durable commit waits for the disk,
/// and must not stall the other tasks of the runtime's few worker threads
/// meanwhile: in a multi-threaded Tokio runtime a write runs in
/// `block_in_place`, in a current-thread runtime on the blocking thread pool,
/// outside Tokio in place. Reads are synchronous.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> StorageView<'_>,
) -> wasmtime::Result<()> {
    draft2::add_to_linker(linker, get)?;
    draft::add_to_linker(linker, get)?;
    Ok(())
}

struct HasStorage;

impl HasData for HasStorage {
    type Data<'a> = StorageView<'a>;
}

/// What a crate error is for a guest: the cases of `wasi:keyvalue/store.error`
/// that the host returns (the same in both versions).
enum WitError {
    AccessDenied,
    Other(String),
}

/// How a crate error reaches the guest: the one mapping to the WIT
/// `wasi:keyvalue/store.error` variant.
///
/// - `AccessDenied` → `access-denied` (the case has no payload, so the
///   message with the fix goes to the host log).
/// - `Table` (a handle missing from the table: a host bug) → trap.
/// - everything else (quotas, counters, cursors, database failures) →
///   `other(message)`.
///
/// `no-such-store` is never returned: a granted bucket always exists, and an
/// ungranted one is `access-denied` whether or not it holds data.
fn classify(plugin: &str, err: Error) -> wasmtime::Result<WitError> {
    match err {
        Error::AccessDenied { .. } => {
            tracing::warn!(plugin, "{err}");
            Ok(WitError::AccessDenied)
        }
        Error::Table(_) => Err(wasmtime::Error::new(err)),
        Error::QuotaExceeded { .. } | Error::CasHeldLimit { .. } => {
            tracing::info!(plugin, "{err}");
            Ok(WitError::Other(err.to_string()))
        }
        _ => {
            tracing::debug!(plugin, "{err}");
            Ok(WitError::Other(err.to_string()))
        }
    }
}

/// The span of one host call on a bucket.
macro_rules! bucket_span {
    ($name:literal, $view:expr, $bucket:expr) => {
        tracing::debug_span!($name, plugin = %$view.ctx.plugin, bucket = %$bucket.name)
    };
}

/// Run a write in `span` without stalling the runtime's other tasks.
///
/// A write commits with `synchronous = FULL`: it waits for the disk to flush
/// (from microseconds to milliseconds, more when another process holds the
/// database), and a blocked worker thread stalls every task queued on it.
///
/// - In a multi-threaded Tokio runtime (Convergio's): `block_in_place`. The
///   write runs on the calling thread, which first hands its worker role and
///   queued tasks to another thread. No hand-off of the write itself, so it
///   costs about what the write costs; on the 2-vCPU development machine a
///   `spawn_blocking` round trip added 40–65 µs to each write
///   (`benches/storage.rs`, `docs/benchmarks.md`).
/// - In a current-thread runtime, where `block_in_place` is not allowed: the
///   blocking thread pool, awaited.
/// - Outside Tokio (a caller driving the future with another executor): in
///   place.
///
/// A write that has started runs to completion: if the call's deadline
/// passes meanwhile, the call can fail although the write was applied. As
/// after a crash, only an acknowledged write is guaranteed.
async fn blocking<R: Send + 'static>(
    span: tracing::Span,
    write: impl FnOnce() -> Result<R> + Send + 'static,
) -> Result<R> {
    let write = move || span.in_scope(write);
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) if runtime.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(write)
        }
        Ok(runtime) => runtime
            .spawn_blocking(write)
            .await
            .map_err(|e| Error::Backend(Box::new(e)))?,
        Err(_) => write(),
    }
}

/// One result of `get-many`: the key and its value, or `None` if missing.
type Entry = Option<(String, Vec<u8>)>;

/// The operations of both interface versions; `draft` and `draft2`
/// implement the generated traits with these.
impl StorageView<'_> {
    fn open_bucket(&mut self, identifier: String) -> Result<Resource<Bucket>> {
        let _span = tracing::debug_span!(
            "convergio.storage.open",
            plugin = %self.ctx.plugin,
            bucket = %identifier
        )
        .entered();
        let quota = self.ctx.policy.authorize(&self.ctx.plugin, &identifier)?;
        Ok(self.table.push(Bucket {
            name: identifier,
            quota,
        })?)
    }

    fn get_value(&mut self, bucket: Resource<Bucket>, key: String) -> Result<Option<Vec<u8>>> {
        let bucket = self.table.get(&bucket)?;
        let _span = bucket_span!("convergio.storage.get", self, bucket).entered();
        self.ctx.backend.get(&bucket.name, &key)
    }

    async fn set_value(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        value: Vec<u8>,
    ) -> Result<()> {
        let bucket = self.table.get(&bucket)?;
        let span = bucket_span!("convergio.storage.set", self, bucket);
        let (backend, name, quota) = (self.ctx.backend.clone(), bucket.name.clone(), bucket.quota);
        blocking(span, move || backend.set(&name, &key, &value, quota)).await
    }

    async fn delete_value(&mut self, bucket: Resource<Bucket>, key: String) -> Result<()> {
        let bucket = self.table.get(&bucket)?;
        let span = bucket_span!("convergio.storage.delete", self, bucket);
        let (backend, name) = (self.ctx.backend.clone(), bucket.name.clone());
        blocking(span, move || backend.delete(&name, &key)).await
    }

    fn key_exists(&mut self, bucket: Resource<Bucket>, key: String) -> Result<bool> {
        let bucket = self.table.get(&bucket)?;
        let _span = bucket_span!("convergio.storage.exists", self, bucket).entered();
        self.ctx.backend.exists(&bucket.name, &key)
    }

    fn key_page(&mut self, bucket: Resource<Bucket>, cursor: Option<u64>) -> Result<KeyPage> {
        let bucket = self.table.get(&bucket)?;
        let _span = bucket_span!("convergio.storage.list_keys", self, bucket).entered();
        self.ctx.backend.list_keys(&bucket.name, cursor)
    }

    fn drop_bucket(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }

    async fn add(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        delta: i64,
        range: CounterRange,
    ) -> Result<i64> {
        let bucket = self.table.get(&bucket)?;
        let span = bucket_span!("convergio.storage.increment", self, bucket);
        let (backend, name, quota) = (self.ctx.backend.clone(), bucket.name.clone(), bucket.quota);
        blocking(span, move || {
            backend.increment(&name, &key, delta, range, quota)
        })
        .await
    }

    /// `get-many`: off the async workers like a write (a read of many keys
    /// takes a while), and bounded by the plugin's batch limit and the call's
    /// deadline.
    async fn values(&mut self, bucket: Resource<Bucket>, keys: Vec<String>) -> Result<Vec<Entry>> {
        let bucket = self.table.get(&bucket)?;
        let span = bucket_span!("convergio.storage.get_many", self, bucket);
        let (backend, name) = (self.ctx.backend.clone(), bucket.name.clone());
        let limit = ReadLimit {
            max_bytes: self.ctx.max_batch_bytes,
            deadline: self.deadline,
        };
        let (keys, values) = blocking(span, move || {
            let values = backend.get_many(&name, &keys, limit)?;
            Ok((keys, values))
        })
        .await?;
        Ok(keys
            .into_iter()
            .zip(values)
            .map(|(key, value)| value.map(|value| (key, value)))
            .collect())
    }

    async fn set_values(
        &mut self,
        bucket: Resource<Bucket>,
        entries: Vec<(String, Vec<u8>)>,
    ) -> Result<()> {
        let bucket = self.table.get(&bucket)?;
        let span = bucket_span!("convergio.storage.set_many", self, bucket);
        let (backend, name, quota) = (self.ctx.backend.clone(), bucket.name.clone(), bucket.quota);
        blocking(span, move || backend.set_many(&name, &entries, quota)).await
    }

    async fn delete_values(&mut self, bucket: Resource<Bucket>, keys: Vec<String>) -> Result<()> {
        let bucket = self.table.get(&bucket)?;
        let span = bucket_span!("convergio.storage.delete_many", self, bucket);
        let (backend, name) = (self.ctx.backend.clone(), bucket.name.clone());
        blocking(span, move || backend.delete_many(&name, &keys)).await
    }

    /// A compare-and-swap handle on `key`, holding the value it has now.
    fn cas_open(&mut self, bucket: Resource<Bucket>, key: String) -> Result<Resource<Cas>> {
        let bucket = self.table.get(&bucket)?;
        let _span = bucket_span!("convergio.storage.cas_new", self, bucket).entered();
        let observed = self.ctx.backend.get(&bucket.name, &key)?;
        let cas = self.cas(bucket.name.clone(), bucket.quota, key, observed)?;
        Ok(self.table.push(cas)?)
    }

    fn cas(
        &self,
        bucket: String,
        quota: Quota,
        key: String,
        observed: Option<Vec<u8>>,
    ) -> Result<Cas> {
        let bytes = CAS_HANDLE_OVERHEAD
            + key.len() as u64
            + observed.as_ref().map_or(0, |value| value.len() as u64);
        let held = HeldBytes::take(self.ctx, bytes)?;
        Ok(Cas {
            bucket,
            quota,
            key,
            observed,
            _held: held,
        })
    }

    fn cas_observed(&mut self, cas: Resource<Cas>) -> Result<Option<Vec<u8>>> {
        Ok(self.table.get(&cas)?.observed.clone())
    }

    /// Write `value` if the key still holds what `cas` observed, consuming
    /// `cas`. Otherwise `Err` with a new handle holding the key's value now.
    async fn cas_swap(
        &mut self,
        cas: Resource<Cas>,
        value: Vec<u8>,
    ) -> Result<std::result::Result<(), Resource<Cas>>> {
        let Cas {
            bucket,
            quota,
            key,
            observed,
            _held,
        } = self.table.delete(cas)?;
        let span = tracing::debug_span!(
            "convergio.storage.swap",
            plugin = %self.ctx.plugin,
            bucket = %bucket
        );
        let backend = self.ctx.backend.clone();
        let (name, cas_key) = (bucket.clone(), key.clone());
        let outcome = blocking(span, move || {
            backend.compare_and_swap(&name, &cas_key, observed.as_deref(), &value, quota)
        })
        .await?;
        match outcome {
            Swap::Done => Ok(Ok(())),
            Swap::Changed(now) => {
                // The consumed handle's bytes are released before the new
                // handle counts its own.
                drop(_held);
                let cas = self.cas(bucket, quota, key, now)?;
                Ok(Err(self.table.push(cas)?))
            }
        }
    }

    fn drop_cas(&mut self, cas: Resource<Cas>) -> wasmtime::Result<()> {
        self.table.delete(cas)?;
        Ok(())
    }
}

/// The parts of `store` and `batch` that are the same in both versions:
/// `add_to_linker` (of `store`, `atomics` and `batch`), `convert_error`,
/// `open`, every bucket method but `list-keys` (whose cursor type differs),
/// `drop`, and the three batch functions. Expands in a module that has that
/// version's `store`, `atomics` and `batch` in scope.
macro_rules! common_store_and_batch {
    () => {
        /// Link `store`, `atomics` and `batch` of this version.
        pub(super) fn add_to_linker<T: Send + 'static>(
            linker: &mut wasmtime::component::Linker<T>,
            get: fn(&mut T) -> StorageView<'_>,
        ) -> wasmtime::Result<()> {
            store::add_to_linker::<T, HasStorage>(linker, get)?;
            atomics::add_to_linker::<T, HasStorage>(linker, get)?;
            batch::add_to_linker::<T, HasStorage>(linker, get)?;
            Ok(())
        }

        impl store::Host for StorageView<'_> {
            fn open(&mut self, identifier: String) -> Result<Resource<Bucket>> {
                self.open_bucket(identifier)
            }

            fn convert_error(&mut self, err: Error) -> wasmtime::Result<store::Error> {
                Ok(match classify(&self.ctx.plugin, err)? {
                    WitError::AccessDenied => store::Error::AccessDenied,
                    WitError::Other(message) => store::Error::Other(message),
                })
            }
        }

        impl batch::Host for StorageView<'_> {
            async fn get_many(
                &mut self,
                bucket: Resource<Bucket>,
                keys: Vec<String>,
            ) -> Result<Vec<super::Entry>> {
                self.values(bucket, keys).await
            }

            async fn set_many(
                &mut self,
                bucket: Resource<Bucket>,
                key_values: Vec<(String, Vec<u8>)>,
            ) -> Result<()> {
                self.set_values(bucket, key_values).await
            }

            async fn delete_many(
                &mut self,
                bucket: Resource<Bucket>,
                keys: Vec<String>,
            ) -> Result<()> {
                self.delete_values(bucket, keys).await
            }
        }
    };
}

/// `HostBucket` methods that are the same in both versions; expands inside
/// an `impl store::HostBucket for StorageView` block.
macro_rules! common_bucket_methods {
    () => {
        fn get(&mut self, bucket: Resource<Bucket>, key: String) -> Result<Option<Vec<u8>>> {
            self.get_value(bucket, key)
        }

        async fn set(
            &mut self,
            bucket: Resource<Bucket>,
            key: String,
            value: Vec<u8>,
        ) -> Result<()> {
            self.set_value(bucket, key, value).await
        }

        async fn delete(&mut self, bucket: Resource<Bucket>, key: String) -> Result<()> {
            self.delete_value(bucket, key).await
        }

        fn exists(&mut self, bucket: Resource<Bucket>, key: String) -> Result<bool> {
            self.key_exists(bucket, key)
        }

        fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
            self.drop_bucket(bucket)
        }
    };
}

mod draft;
mod draft2;

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Mutex, OnceLock};

    use draft2::atomics::{self, Host as _, HostCas as _};
    use draft2::batch::Host as _;
    use draft2::store::{self, Host as _, HostBucket as _};
    use tracing::field::Field;
    use tracing::span;

    use super::*;
    use crate::{BucketGrant, SqliteBackend};

    struct Fixture {
        _dir: tempfile::TempDir,
        ctx: StorageCtx,
        table: ResourceTable,
    }

    impl Fixture {
        fn new(grants: Vec<BucketGrant>) -> Self {
            recorder();
            let dir = tempfile::tempdir().unwrap();
            let backend = SqliteBackend::open(dir.path().join("kv.db")).unwrap();
            let ctx = StorageCtx::new(
                "tutor",
                Arc::new(backend),
                Arc::new(StoragePolicy::new(grants)),
            );
            Self {
                _dir: dir,
                ctx,
                table: ResourceTable::new(),
            }
        }

        fn view(&mut self) -> StorageView<'_> {
            StorageView::new(&self.ctx, &mut self.table)
        }
    }

    /// A borrowed handle to the same resource, as a guest passes `borrow<...>`.
    fn b<T: 'static>(handle: &Resource<T>) -> Resource<T> {
        Resource::new_borrow(handle.rep())
    }

    #[test]
    fn ungranted_bucket_is_access_denied() {
        let mut f = Fixture::new(vec![BucketGrant::new("notes")]);
        let mut view = f.view();
        let err = view.open("secrets".into()).unwrap_err();
        assert!(matches!(&err, Error::AccessDenied { bucket, .. } if bucket == "secrets"));
        assert!(matches!(
            view.convert_error(err).unwrap(),
            store::Error::AccessDenied
        ));
        assert!(f.table.is_empty());
    }

    #[tokio::test]
    async fn interfaces_round_trip() {
        let mut f = Fixture::new(vec![BucketGrant::new("notes")]);
        let mut v = f.view();
        let notes = v.open("notes".into()).unwrap();
        v.set(b(&notes), "a".into(), b"1".to_vec()).await.unwrap();
        assert_eq!(v.get(b(&notes), "a".into()).unwrap(), Some(b"1".to_vec()));
        assert!(v.exists(b(&notes), "a".into()).unwrap());
        assert!(!v.exists(b(&notes), "zz".into()).unwrap());
        v.set_many(
            b(&notes),
            vec![("b".into(), b"2".to_vec()), ("c".into(), vec![])],
        )
        .await
        .unwrap();
        assert_eq!(
            v.get_many(b(&notes), vec!["c".into(), "nope".into(), "a".into()])
                .await
                .unwrap(),
            vec![
                Some(("c".to_string(), vec![])),
                None,
                Some(("a".to_string(), b"1".to_vec()))
            ]
        );
        assert_eq!(v.increment(b(&notes), "n".into(), 5).await.unwrap(), 5);
        assert_eq!(v.increment(b(&notes), "n".into(), 2).await.unwrap(), 7);
        let mut keys = v.list_keys(b(&notes), None).unwrap();
        assert_eq!(keys.cursor, None);
        keys.keys.sort();
        assert_eq!(keys.keys, ["a", "b", "c", "n"]);
        v.delete_many(b(&notes), vec!["a".into(), "b".into(), "missing".into()])
            .await
            .unwrap();
        v.delete(b(&notes), "c".into()).await.unwrap();
        assert_eq!(v.list_keys(b(&notes), None).unwrap().keys, ["n"]);
        store::HostBucket::drop(&mut v, notes).unwrap();
        assert!(f.table.is_empty());
    }

    #[tokio::test]
    async fn quota_is_an_error_value_with_the_numbers() {
        let mut f = Fixture::new(vec![BucketGrant::new("notes").with_max_keys(2)]);
        let mut v = f.view();
        let notes = v.open("notes".into()).unwrap();
        v.set(b(&notes), "a".into(), vec![1]).await.unwrap();
        v.increment(b(&notes), "b".into(), 1).await.unwrap();
        let err = v.set(b(&notes), "c".into(), vec![1]).await.unwrap_err();
        let store::Error::Other(message) = v.convert_error(err).unwrap() else {
            panic!("quota must map to other(message)");
        };
        assert!(message.contains("bucket `notes`"), "{message}");
        assert!(message.contains("max-keys quota is 2 keys"), "{message}");
        assert!(message.contains("holds 2"), "{message}");
        assert!(message.contains("would make 3"), "{message}");
        let err = v.increment(b(&notes), "c".into(), 1).await.unwrap_err();
        assert!(matches!(
            v.convert_error(err).unwrap(),
            store::Error::Other(_)
        ));
        // Overwrites do not add keys.
        v.set(b(&notes), "a".into(), vec![2]).await.unwrap();
        v.increment(b(&notes), "b".into(), 1).await.unwrap();
    }

    /// A backend that records the thread each write runs on.
    /// With a gate, `set` reports that it started and then waits (up to
    /// 5 s) for the gate to open, as a write waits for the disk.
    struct ThreadRecorder {
        inner: SqliteBackend,
        writes: Mutex<Vec<std::thread::ThreadId>>,
        gate: Option<Mutex<Gate>>,
    }

    struct Gate {
        started: std::sync::mpsc::Sender<()>,
        open: std::sync::mpsc::Receiver<()>,
    }

    impl ThreadRecorder {
        fn record(&self) {
            self.writes
                .lock()
                .unwrap()
                .push(std::thread::current().id());
            if let Some(gate) = &self.gate {
                let gate = gate.lock().unwrap();
                gate.started.send(()).unwrap();
                gate.open
                    .recv_timeout(std::time::Duration::from_secs(5))
                    .expect("the gate was not opened: the other task never ran");
            }
        }
    }

    impl Backend for ThreadRecorder {
        fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>> {
            self.inner.get(bucket, key)
        }
        fn set(&self, bucket: &str, key: &str, value: &[u8], quota: Quota) -> Result<()> {
            self.record();
            self.inner.set(bucket, key, value, quota)
        }
        fn delete(&self, bucket: &str, key: &str) -> Result<()> {
            self.record();
            self.inner.delete(bucket, key)
        }
        fn exists(&self, bucket: &str, key: &str) -> Result<bool> {
            self.inner.exists(bucket, key)
        }
        fn list_keys(&self, bucket: &str, cursor: Option<u64>) -> Result<KeyPage> {
            self.inner.list_keys(bucket, cursor)
        }
        fn increment(
            &self,
            bucket: &str,
            key: &str,
            delta: i64,
            range: CounterRange,
            quota: Quota,
        ) -> Result<i64> {
            self.record();
            self.inner.increment(bucket, key, delta, range, quota)
        }
        fn compare_and_swap(
            &self,
            bucket: &str,
            key: &str,
            expected: Option<&[u8]>,
            value: &[u8],
            quota: Quota,
        ) -> Result<Swap> {
            self.record();
            self.inner
                .compare_and_swap(bucket, key, expected, value, quota)
        }
        fn get_many(
            &self,
            bucket: &str,
            keys: &[String],
            limit: ReadLimit,
        ) -> Result<Vec<Option<Vec<u8>>>> {
            self.inner.get_many(bucket, keys, limit)
        }
        fn set_many(
            &self,
            bucket: &str,
            entries: &[(String, Vec<u8>)],
            quota: Quota,
        ) -> Result<()> {
            self.record();
            self.inner.set_many(bucket, entries, quota)
        }
        fn delete_many(&self, bucket: &str, keys: &[String]) -> Result<()> {
            self.record();
            self.inner.delete_many(bucket, keys)
        }
        fn usage(&self, bucket: &str) -> Result<crate::Usage> {
            self.inner.usage(bucket)
        }
    }

    /// Every write of the view, once each.
    async fn write_all(ctx: &StorageCtx) {
        let mut table = ResourceTable::new();
        let mut v = StorageView::new(ctx, &mut table);
        let notes = v.open("notes".into()).unwrap();
        v.set(b(&notes), "a".into(), b"1".to_vec()).await.unwrap();
        v.increment(b(&notes), "n".into(), 1).await.unwrap();
        v.set_many(b(&notes), vec![("b".into(), b"2".to_vec())])
            .await
            .unwrap();
        v.delete(b(&notes), "a".into()).await.unwrap();
        v.delete_many(b(&notes), vec!["b".into()]).await.unwrap();
        let cas = atomics::HostCas::new(&mut v, b(&notes), "c".into()).unwrap();
        v.swap(cas, b"3".to_vec()).await.unwrap().unwrap();
        assert_eq!(v.get(b(&notes), "n".into()).unwrap(), Some(b"1".to_vec()));
    }

    fn recording_ctx() -> (tempfile::TempDir, Arc<ThreadRecorder>, StorageCtx) {
        gated_ctx(None)
    }

    fn gated_ctx(gate: Option<Gate>) -> (tempfile::TempDir, Arc<ThreadRecorder>, StorageCtx) {
        let dir = tempfile::tempdir().unwrap();
        let backend = Arc::new(ThreadRecorder {
            inner: SqliteBackend::open(dir.path().join("kv.db")).unwrap(),
            writes: Mutex::new(Vec::new()),
            gate: gate.map(Mutex::new),
        });
        let policy = Arc::new(StoragePolicy::new(vec![BucketGrant::new("notes")]));
        let ctx = StorageCtx::new("writer", Arc::clone(&backend) as Arc<dyn Backend>, policy);
        (dir, backend, ctx)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn in_a_current_thread_runtime_writes_leave_its_thread() {
        let (_dir, backend, ctx) = recording_ctx();
        write_all(&ctx).await;
        let writes = backend.writes.lock().unwrap();
        assert_eq!(writes.len(), 6);
        // The runtime's only thread is this one: the writes ran elsewhere.
        let here = std::thread::current().id();
        assert!(writes.iter().all(|id| *id != here), "{writes:?}");
    }

    /// One worker thread: a write waiting for the disk must let the other
    /// tasks of that thread run. Here the write waits for a task spawned
    /// after it started; holding the worker would make it wait in vain.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_waiting_write_does_not_stall_the_worker_thread() {
        let (started_tx, started) = std::sync::mpsc::channel();
        let (open, open_rx) = std::sync::mpsc::channel();
        let (_dir, backend, ctx) = gated_ctx(Some(Gate {
            started: started_tx,
            open: open_rx,
        }));
        let writer = tokio::spawn(async move {
            let mut table = ResourceTable::new();
            let mut v = StorageView::new(&ctx, &mut table);
            let notes = v.open("notes".into()).unwrap();
            v.set(b(&notes), "a".into(), b"1".to_vec()).await
        });
        // The write is waiting on the worker thread; only now spawn the task
        // that opens its gate.
        started
            .recv_timeout(std::time::Duration::from_secs(5))
            .unwrap();
        tokio::spawn(async move { open.send(()).unwrap() })
            .await
            .unwrap();
        writer.await.unwrap().unwrap();
        assert_eq!(backend.writes.lock().unwrap().len(), 1);
        assert_eq!(backend.get("notes", "a").unwrap(), Some(b"1".to_vec()));
    }

    #[test]
    fn writes_run_in_place_without_a_runtime() {
        let (_dir, backend, ctx) = recording_ctx();
        // No Tokio runtime: the future completes on its first poll, here.
        let mut call = std::pin::pin!(write_all(&ctx));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(call.as_mut().poll(&mut cx).is_ready());
        let writes = backend.writes.lock().unwrap();
        assert_eq!(writes.len(), 6);
        let here = std::thread::current().id();
        assert!(writes.iter().all(|id| *id == here), "{writes:?}");
    }

    #[test]
    fn a_stale_handle_traps() {
        let mut f = Fixture::new(vec![BucketGrant::new("notes")]);
        let mut v = f.view();
        let err = v.get(Resource::new_borrow(4242), "a".into()).unwrap_err();
        assert!(matches!(err, Error::Table(_)));
        assert!(v.convert_error(err).is_err());
    }

    #[tokio::test]
    async fn counter_errors_are_error_values() {
        let mut f = Fixture::new(vec![BucketGrant::new("notes")]);
        let mut v = f.view();
        let notes = v.open("notes".into()).unwrap();
        v.set(b(&notes), "text".into(), b"hello".to_vec())
            .await
            .unwrap();
        let err = v.increment(b(&notes), "text".into(), 1).await.unwrap_err();
        let store::Error::Other(message) = v.convert_error(err).unwrap() else {
            panic!("expected other");
        };
        assert!(message.contains("does not hold a counter"), "{message}");
    }

    #[tokio::test]
    async fn compare_and_swap_writes_only_over_the_observed_value() {
        let mut f = Fixture::new(vec![BucketGrant::new("notes")]);
        let mut v = f.view();
        let notes = v.open("notes".into()).unwrap();

        // A missing key: the handle observes `none`, and the swap creates it.
        let cas = atomics::HostCas::new(&mut v, b(&notes), "doc".into()).unwrap();
        assert_eq!(v.current(b(&cas)).unwrap(), None);
        v.swap(cas, b"v1".to_vec()).await.unwrap().unwrap();
        assert_eq!(
            v.get(b(&notes), "doc".into()).unwrap(),
            Some(b"v1".to_vec())
        );

        // Someone else writes between the handle and the swap: the swap
        // fails, writes nothing, and hands back a handle on the new value.
        let stale = atomics::HostCas::new(&mut v, b(&notes), "doc".into()).unwrap();
        assert_eq!(v.current(b(&stale)).unwrap(), Some(b"v1".to_vec()));
        v.set(b(&notes), "doc".into(), b"v2".to_vec())
            .await
            .unwrap();
        let Err(atomics::CasError::CasFailed(fresh)) =
            v.swap(stale, b"lost".to_vec()).await.unwrap()
        else {
            panic!("a swap over a changed value must fail with cas-failed");
        };
        assert_eq!(
            v.get(b(&notes), "doc".into()).unwrap(),
            Some(b"v2".to_vec())
        );
        assert_eq!(v.current(b(&fresh)).unwrap(), Some(b"v2".to_vec()));
        v.swap(fresh, b"v3".to_vec()).await.unwrap().unwrap();
        assert_eq!(
            v.get(b(&notes), "doc".into()).unwrap(),
            Some(b"v3".to_vec())
        );

        // A deleted key counts as changed, and the new handle observes `none`.
        let stale = atomics::HostCas::new(&mut v, b(&notes), "doc".into()).unwrap();
        v.delete(b(&notes), "doc".into()).await.unwrap();
        let Err(atomics::CasError::CasFailed(fresh)) = v.swap(stale, b"x".to_vec()).await.unwrap()
        else {
            panic!("expected cas-failed");
        };
        assert_eq!(v.current(b(&fresh)).unwrap(), None);
        atomics::HostCas::drop(&mut v, fresh).unwrap();
        store::HostBucket::drop(&mut v, notes).unwrap();
        // Every handle is gone, and so are the bytes they held.
        assert!(f.table.is_empty());
        assert_eq!(f.ctx.cas_held.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_swap_past_a_quota_is_a_store_error() {
        let mut f = Fixture::new(vec![BucketGrant::new("notes").with_max_bytes(16)]);
        let mut v = f.view();
        let notes = v.open("notes".into()).unwrap();
        let cas = atomics::HostCas::new(&mut v, b(&notes), "k".into()).unwrap();
        let Err(atomics::CasError::StoreError(store::Error::Other(message))) =
            v.swap(cas, vec![0; 64]).await.unwrap()
        else {
            panic!("expected store-error(other)");
        };
        assert!(message.contains("max-bytes quota is 16 bytes"), "{message}");
        assert_eq!(v.get(b(&notes), "k".into()).unwrap(), None);
    }

    #[tokio::test]
    async fn open_cas_handles_hold_a_bounded_number_of_bytes() {
        let mut f = Fixture::new(vec![BucketGrant::new("notes")]);
        let mut v = f.view();
        let notes = v.open("notes".into()).unwrap();
        let big = vec![7; 8 << 20];
        v.set(b(&notes), "big".into(), big).await.unwrap();
        // 8 MiB each: seven fit under 64 MiB with their overhead, the eighth does not.
        let handles: Vec<_> = (0..7)
            .map(|_| atomics::HostCas::new(&mut v, b(&notes), "big".into()).unwrap())
            .collect();
        let err = atomics::HostCas::new(&mut v, b(&notes), "big".into()).unwrap_err();
        let store::Error::Other(message) = v.convert_error(err).unwrap() else {
            panic!("expected other");
        };
        assert!(
            message.contains("compare-and-swap handles and may hold 67108864"),
            "{message}"
        );
        // Dropping a handle gives its bytes back.
        let mut handles = handles.into_iter();
        atomics::HostCas::drop(&mut v, handles.next().unwrap()).unwrap();
        let again = atomics::HostCas::new(&mut v, b(&notes), "big".into()).unwrap();
        // Every instance of the plugin shares the limit: another store's view
        // cannot open one more either.
        let mut other_table = ResourceTable::new();
        let mut other = StorageView::new(&f.ctx, &mut other_table);
        let other_notes = other.open("notes".into()).unwrap();
        assert!(atomics::HostCas::new(&mut other, b(&other_notes), "big".into()).is_err());
        drop((again, handles));
    }

    #[tokio::test]
    async fn counters_are_signed_and_list_cursors_are_strings() {
        let mut f = Fixture::new(vec![BucketGrant::new("notes")]);
        let mut v = f.view();
        let notes = v.open("notes".into()).unwrap();
        assert_eq!(v.increment(b(&notes), "n".into(), -5).await.unwrap(), -5);
        assert_eq!(v.increment(b(&notes), "n".into(), 2).await.unwrap(), -3);
        v.increment(b(&notes), "max".into(), i64::MAX)
            .await
            .unwrap();
        let err = v.increment(b(&notes), "max".into(), 1).await.unwrap_err();
        let store::Error::Other(message) = v.convert_error(err).unwrap() else {
            panic!("expected other");
        };
        assert!(message.contains("leaves the counter range"), "{message}");
        let err = v
            .list_keys(b(&notes), Some("not-a-cursor".into()))
            .unwrap_err();
        let store::Error::Other(message) = v.convert_error(err).unwrap() else {
            panic!("expected other");
        };
        assert!(
            message.contains("cursor `not-a-cursor` was not returned"),
            "{message}"
        );
    }

    /// The `0.2.0-draft` interfaces reach the same buckets, with unsigned
    /// counters and numeric cursors.
    #[tokio::test]
    async fn draft_guests_share_the_buckets() {
        let mut f = Fixture::new(vec![BucketGrant::new("notes")]);
        let mut v = f.view();
        let old = draft::store::Host::open(&mut v, "notes".into()).unwrap();
        let new = store::Host::open(&mut v, "notes".into()).unwrap();
        assert_eq!(
            draft::atomics::Host::increment(&mut v, b(&old), "n".into(), 5)
                .await
                .unwrap(),
            5
        );
        assert_eq!(
            atomics::Host::increment(&mut v, b(&new), "n".into(), -7)
                .await
                .unwrap(),
            -2
        );
        // Below zero for a draft guest: refused, and nothing is written.
        let err = draft::atomics::Host::increment(&mut v, b(&old), "n".into(), 1)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::OutOfRange {
                    current: -2,
                    delta: 1,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(
            draft::atomics::Host::increment(&mut v, b(&old), "n".into(), 2)
                .await
                .unwrap(),
            0
        );
        let err = draft::atomics::Host::increment(&mut v, b(&old), "n".into(), u64::MAX)
            .await
            .unwrap_err();
        let draft::store::Error::Other(message) =
            draft::store::Host::convert_error(&mut v, err).unwrap()
        else {
            panic!("expected other");
        };
        assert!(message.contains("counters hold at most"), "{message}");
        let page = draft::store::HostBucket::list_keys(&mut v, b(&old), None).unwrap();
        assert_eq!(page.keys, ["n"]);
        assert_eq!(page.cursor, None);
        draft::store::HostBucket::drop(&mut v, old).unwrap();
        store::HostBucket::drop(&mut v, new).unwrap();
    }

    /// Records every span and event with its fields.
    #[derive(Clone, Default)]
    struct Recorder {
        seen: Arc<Mutex<Vec<String>>>,
        next: Arc<AtomicU64>,
    }

    /// The process-wide subscriber of this test binary. It is installed
    /// before any host call (every fixture asks for it), so no callsite's
    /// interest is cached as "never" by a test running without it, which a
    /// scoped `with_default` in a multi-threaded test run cannot ensure.
    fn recorder() -> &'static Recorder {
        static RECORDER: OnceLock<Recorder> = OnceLock::new();
        RECORDER.get_or_init(|| {
            let recorder = Recorder::default();
            tracing::subscriber::set_global_default(recorder.clone()).unwrap();
            recorder
        })
    }

    fn fields(record: impl FnOnce(&mut dyn tracing::field::Visit)) -> String {
        let mut out = String::new();
        let mut visit = |field: &Field, value: &dyn fmt::Debug| {
            let _ = write!(out, " {}={value:?}", field.name());
        };
        record(&mut visit);
        out
    }

    impl tracing::Subscriber for Recorder {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, span: &span::Attributes<'_>) -> span::Id {
            let line = format!("{}{}", span.metadata().name(), fields(|v| span.record(v)));
            self.seen.lock().unwrap().push(line);
            span::Id::from_u64(self.next.fetch_add(1, Ordering::Relaxed) + 1)
        }
        fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
        fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            let line = format!("event{}", fields(|v| event.record(v)));
            self.seen.lock().unwrap().push(line);
        }
        fn enter(&self, _: &span::Id) {}
        fn exit(&self, _: &span::Id) {}
    }

    #[tokio::test]
    async fn every_call_has_a_span_without_values() {
        let recorder = recorder();
        let mut f = Fixture::new(vec![BucketGrant::new("notes").with_max_bytes(64)]);
        f.ctx.plugin = "span-test".into();
        {
            let mut v = f.view();
            let notes = v.open("notes".into()).unwrap();
            v.set(b(&notes), "k".into(), b"VALUE-SECRET".to_vec())
                .await
                .unwrap();
            v.get(b(&notes), "k".into()).unwrap();
            v.exists(b(&notes), "k".into()).unwrap();
            v.list_keys(b(&notes), None).unwrap();
            v.increment(b(&notes), "n".into(), 1).await.unwrap();
            v.get_many(b(&notes), vec!["k".into()]).await.unwrap();
            v.set_many(b(&notes), vec![("k".into(), b"VALUE-SECRET".to_vec())])
                .await
                .unwrap();
            let err = v
                .set(b(&notes), "big".into(), b"VALUE-SECRET".repeat(10))
                .await
                .unwrap_err();
            v.convert_error(err).unwrap();
            v.delete_many(b(&notes), vec!["n".into()]).await.unwrap();
            let cas = atomics::HostCas::new(&mut v, b(&notes), "k".into()).unwrap();
            v.swap(cas, b"VALUE-SECRET".to_vec())
                .await
                .unwrap()
                .unwrap();
            v.delete(b(&notes), "k".into()).await.unwrap();
            let err = v.open("other".into()).unwrap_err();
            v.convert_error(err).unwrap();
        }
        let seen: Vec<String> = recorder
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|line| line.contains("span-test"))
            .cloned()
            .collect();
        for name in [
            "open",
            "set",
            "get",
            "exists",
            "list_keys",
            "increment",
            "get_many",
            "set_many",
            "delete_many",
            "cas_new",
            "swap",
            "delete",
        ] {
            let prefix = format!("convergio.storage.{name} plugin=span-test bucket=");
            assert!(
                seen.iter().any(|line| line.starts_with(&prefix)),
                "no span {prefix}…: {seen:#?}"
            );
        }
        assert!(
            seen.iter().all(|line| !line.contains("VALUE-SECRET")),
            "{seen:#?}"
        );
        assert!(
            seen.iter()
                .any(|line| line.starts_with("event")
                    && line.contains("may not open bucket `other`")),
            "{seen:#?}"
        );
    }

    #[test]
    fn links_the_three_interfaces_in_both_versions() {
        struct Host {
            storage: StorageCtx,
            table: ResourceTable,
        }
        let engine = wasmtime::Engine::default();
        let mut linker = Linker::<Host>::new(&engine);
        add_to_linker(&mut linker, |h: &mut Host| {
            StorageView::new(&h.storage, &mut h.table)
        })
        .unwrap();
        // Components importing the three interfaces (a subset of each, as
        // a guest may) link against them, in either version.
        for (version, wat) in [("draft", GUEST_IMPORTS), ("draft2", DRAFT2_GUEST_IMPORTS)] {
            let component = wasmtime::component::Component::new(&engine, wat)
                .unwrap_or_else(|e| panic!("{version}: {e:?}"));
            linker
                .instantiate_pre(&component)
                .unwrap_or_else(|e| panic!("{version}: {e:?}"));
        }
        // Adding twice is refused rather than silently shadowing.
        assert!(
            add_to_linker(&mut linker, |h: &mut Host| {
                StorageView::new(&h.storage, &mut h.table)
            })
            .is_err()
        );
    }

    const GUEST_IMPORTS: &str = r#"
(component
  (import "wasi:keyvalue/store@0.2.0-draft" (instance $store
    (export "bucket" (type $bucket (sub resource)))
    (type $e (variant (case "no-such-store") (case "access-denied") (case "other" string)))
    (export "error" (type $error (eq $e)))
    (type $kr (record (field "keys" (list string)) (field "cursor" (option u64))))
    (export "key-response" (type $key-response (eq $kr)))
    (export "open" (func (param "identifier" string) (result (result (own $bucket) (error $error)))))
    (export "[method]bucket.get" (func (param "self" (borrow $bucket)) (param "key" string)
      (result (result (option (list u8)) (error $error)))))
    (export "[method]bucket.list-keys" (func (param "self" (borrow $bucket)) (param "cursor" (option u64))
      (result (result $key-response (error $error)))))
  ))
  (alias export $store "bucket" (type $bucket))
  (alias export $store "error" (type $error))
  (import "wasi:keyvalue/atomics@0.2.0-draft" (instance
    (export "bucket" (type $b (eq $bucket)))
    (export "error" (type $e (eq $error)))
    (export "increment" (func (param "bucket" (borrow $b)) (param "key" string) (param "delta" u64)
      (result (result u64 (error $e)))))
  ))
  (import "wasi:keyvalue/batch@0.2.0-draft" (instance
    (export "bucket" (type $b (eq $bucket)))
    (export "error" (type $e (eq $error)))
    (export "get-many" (func (param "bucket" (borrow $b)) (param "keys" (list string))
      (result (result (list (option (tuple string (list u8)))) (error $e)))))
  ))
)
"#;

    const DRAFT2_GUEST_IMPORTS: &str = r#"
(component
  (import "wasi:keyvalue/store@0.2.0-draft2" (instance $store
    (export "bucket" (type $bucket (sub resource)))
    (type $e (variant (case "no-such-store") (case "access-denied") (case "other" string)))
    (export "error" (type $error (eq $e)))
    (type $kr (record (field "keys" (list string)) (field "cursor" (option string))))
    (export "key-response" (type $key-response (eq $kr)))
    (export "open" (func (param "identifier" string) (result (result (own $bucket) (error $error)))))
    (export "[method]bucket.list-keys" (func (param "self" (borrow $bucket)) (param "cursor" (option string))
      (result (result $key-response (error $error)))))
  ))
  (alias export $store "bucket" (type $bucket))
  (alias export $store "error" (type $error))
  (import "wasi:keyvalue/atomics@0.2.0-draft2" (instance
    (export "bucket" (type $b (eq $bucket)))
    (export "error" (type $e (eq $error)))
    (export "cas" (type $cas (sub resource)))
    (type $ce (variant (case "store-error" $e) (case "cas-failed" (own $cas))))
    (export "cas-error" (type $cas-error (eq $ce)))
    (export "[static]cas.new" (func (param "bucket" (borrow $b)) (param "key" string)
      (result (result (own $cas) (error $e)))))
    (export "[method]cas.current" (func (param "self" (borrow $cas))
      (result (result (option (list u8)) (error $e)))))
    (export "increment" (func (param "bucket" (borrow $b)) (param "key" string) (param "delta" s64)
      (result (result s64 (error $e)))))
    (export "swap" (func (param "cas" (own $cas)) (param "value" (list u8))
      (result (result (error $cas-error)))))
  ))
  (import "wasi:keyvalue/batch@0.2.0-draft2" (instance
    (export "bucket" (type $b (eq $bucket)))
    (export "error" (type $e (eq $error)))
    (export "get-many" (func (param "bucket" (borrow $b)) (param "keys" (list string))
      (result (result (list (option (tuple string (list u8)))) (error $e)))))
  ))
)
"#;
}
