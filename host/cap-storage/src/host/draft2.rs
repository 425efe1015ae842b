//! `wasi:keyvalue@0.2.0-draft2`: the platform's contract (`wit/deps/keyvalue`),
//! with compare-and-swap, signed counters and string cursors.

use wasmtime::component::Resource;

use super::{Bucket, Cas, HasStorage, StorageView, WitError, classify};
use crate::{CounterRange, Error, Result};

mod generated {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "wasi:keyvalue/imports@0.2.0-draft2",
        // Writes wait for a flush to disk: they are async on the host and
        // keep the runtime's other tasks running meanwhile (see
        // `host::blocking`). Reads take microseconds on a connection no
        // writer holds, and stay synchronous.
        imports: {
            "wasi:keyvalue/store.[method]bucket.set": async | trappable,
            "wasi:keyvalue/store.[method]bucket.delete": async | trappable,
            "wasi:keyvalue/atomics.increment": async | trappable,
            "wasi:keyvalue/atomics.swap": async | trappable,
            "wasi:keyvalue/batch.get-many": async | trappable,
            "wasi:keyvalue/batch.set-many": async | trappable,
            "wasi:keyvalue/batch.delete-many": async | trappable,
            default: trappable,
        },
        with: {
            "wasi:keyvalue/store.bucket": crate::host::Bucket,
            "wasi:keyvalue/atomics.cas": crate::host::Cas,
        },
        trappable_error_type: {
            "wasi:keyvalue/store.error" => crate::Error,
        },
    });
}

pub(super) use generated::wasi::keyvalue::{atomics, batch, store};

common_store_and_batch!();

impl store::HostBucket for StorageView<'_> {
    common_bucket_methods!();

    /// The cursor is the backend's, in decimal.
    fn list_keys(
        &mut self,
        bucket: Resource<Bucket>,
        cursor: Option<String>,
    ) -> Result<store::KeyResponse> {
        let cursor = cursor
            .map(|cursor| {
                cursor
                    .parse::<u64>()
                    .map_err(|_| Error::BadCursor { cursor })
            })
            .transpose()?;
        let page = self.key_page(bucket, cursor)?;
        Ok(store::KeyResponse {
            keys: page.keys,
            cursor: page.cursor.map(|cursor| cursor.to_string()),
        })
    }
}

impl atomics::HostCas for StorageView<'_> {
    fn new(&mut self, bucket: Resource<Bucket>, key: String) -> Result<Resource<Cas>> {
        self.cas_open(bucket, key)
    }

    fn current(&mut self, cas: Resource<Cas>) -> Result<Option<Vec<u8>>> {
        self.cas_observed(cas)
    }

    fn drop(&mut self, cas: Resource<Cas>) -> wasmtime::Result<()> {
        self.drop_cas(cas)
    }
}

impl atomics::Host for StorageView<'_> {
    async fn increment(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        delta: i64,
    ) -> Result<i64> {
        self.add(bucket, key, delta, CounterRange::Signed).await
    }

    async fn swap(
        &mut self,
        cas: Resource<Cas>,
        value: Vec<u8>,
    ) -> wasmtime::Result<std::result::Result<(), atomics::CasError>> {
        Ok(match self.cas_swap(cas, value).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(fresh)) => Err(atomics::CasError::CasFailed(fresh)),
            Err(err) => Err(atomics::CasError::StoreError(
                match classify(&self.ctx.plugin, err)? {
                    WitError::AccessDenied => store::Error::AccessDenied,
                    WitError::Other(message) => store::Error::Other(message),
                },
            )),
        })
    }
}
