//! `wasi:keyvalue@0.2.0-draft`: what `wasmtime-wasi-keyvalue` and guests
//! built before the platform moved to draft2 import (`wit/keyvalue-0.2.0-draft`
//! in this crate). No compare-and-swap; counters and deltas are unsigned.

use wasmtime::component::Resource;

use super::{Bucket, HasStorage, StorageView, WitError, classify};
use crate::{CounterRange, Error, Result};

mod generated {
    wasmtime::component::bindgen!({
        path: "wit/keyvalue-0.2.0-draft",
        world: "wasi:keyvalue/imports@0.2.0-draft",
        // As in draft2: writes are async, reads synchronous.
        imports: {
            "wasi:keyvalue/store.[method]bucket.set": async | trappable,
            "wasi:keyvalue/store.[method]bucket.delete": async | trappable,
            "wasi:keyvalue/atomics.increment": async | trappable,
            "wasi:keyvalue/batch.get-many": async | trappable,
            "wasi:keyvalue/batch.set-many": async | trappable,
            "wasi:keyvalue/batch.delete-many": async | trappable,
            default: trappable,
        },
        with: {
            "wasi:keyvalue/store.bucket": crate::host::Bucket,
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

    fn list_keys(
        &mut self,
        bucket: Resource<Bucket>,
        cursor: Option<u64>,
    ) -> Result<store::KeyResponse> {
        let page = self.key_page(bucket, cursor)?;
        Ok(store::KeyResponse {
            keys: page.keys,
            cursor: page.cursor,
        })
    }
}

impl atomics::Host for StorageView<'_> {
    /// Counters are `i64` in storage: a delta past `i64::MAX` is refused, and
    /// an increment that would leave a counter below zero (a draft2 guest may
    /// have taken it there) fails without writing.
    async fn increment(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        delta: u64,
    ) -> Result<u64> {
        let Ok(signed) = i64::try_from(delta) else {
            let name = self.table.get(&bucket)?.name.clone();
            return Err(Error::DeltaTooLarge {
                bucket: name,
                key,
                delta,
            });
        };
        let new = self
            .add(bucket, key, signed, CounterRange::NonNegative)
            .await?;
        // The range is 0..=i64::MAX.
        Ok(new.unsigned_abs())
    }
}
