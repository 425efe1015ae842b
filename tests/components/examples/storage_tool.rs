//! `storage_tool`: reads and writes `wasi:keyvalue` buckets, to test storage
//! grants, quotas and durability through the host. Arguments are
//! whitespace-separated words:
//!
//! | tool | arguments | does |
//! | --- | --- | --- |
//! | `set` | `BUCKET KEY VALUE` | stores VALUE, returns `"ok"` |
//! | `get` | `BUCKET KEY` | returns the value, or `null` text when absent |
//! | `delete` | `BUCKET KEY` | deletes, returns `"ok"` |
//! | `incr` | `BUCKET KEY DELTA` | atomically adds DELTA (signed), returns the new value |
//! | `append` | `BUCKET KEY TEXT N` | appends TEXT to the value N times, each a compare-and-swap retried until it lands; returns how many swaps failed |
//! | `cas-race` | `BUCKET KEY` | opens a compare-and-swap, writes `theirs` behind its back, swaps `mine` (which must fail), then swaps `mine` on the handle the failure returned; returns `failed:<value the fresh handle saw>` |
//! | `keys` | `BUCKET` | returns the keys, one per line |
//! | `fill` | `BUCKET N SIZE` | stores N values of SIZE bytes (keys `k0`…), returns `"ok"` |
//!
//! Store errors come back as `ToolError::Denied` (access-denied, no-such-store)
//! or `ToolError::Failed` (other, with the host's message).

/// Bindings generated from the WIT contract. The export glue that
/// wit-bindgen emits is `unsafe` (raw ABI, `export_name`), so the workspace's
/// `unsafe_code` denial is lifted for this module only.
#[allow(unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "convergio:platform/tool-plugin@0.1.0",
        generate_all,
    });

    use super::StorageTool;

    export!(StorageTool);
}

use bindings::exports::convergio::platform::tool::{Guest, ToolError, ToolInfo};
use bindings::wasi::keyvalue::{atomics, store};

struct StorageTool;

fn store_error(e: store::Error) -> ToolError {
    match e {
        store::Error::AccessDenied => ToolError::Denied("access-denied".to_owned()),
        store::Error::NoSuchStore => ToolError::Denied("no-such-store".to_owned()),
        store::Error::Other(message) => ToolError::Failed(message),
    }
}

fn words<const N: usize>(arguments: &str) -> Result<[&str; N], ToolError> {
    let parts: Vec<&str> = arguments.split_whitespace().collect();
    parts
        .try_into()
        .map_err(|_| ToolError::InvalidArguments(format!("expected {N} words, got `{arguments}`")))
}

fn number(word: &str) -> Result<u64, ToolError> {
    word.parse()
        .map_err(|_| ToolError::InvalidArguments(format!("`{word}` is not a number")))
}

impl Guest for StorageTool {
    fn describe() -> Vec<ToolInfo> {
        [
            "set", "get", "delete", "incr", "append", "cas-race", "keys", "fill",
        ]
        .into_iter()
        .map(|name| ToolInfo {
            name: name.to_owned(),
            description: format!("Key-value probe: {name}"),
            parameters: r#"{"type":"string"}"#.to_owned(),
        })
        .collect()
    }

    fn invoke(name: String, arguments: String) -> Result<String, ToolError> {
        match name.as_str() {
            "set" => {
                let [bucket, key, value] = words(&arguments)?;
                let bucket = store::open(bucket).map_err(store_error)?;
                bucket.set(key, value.as_bytes()).map_err(store_error)?;
                Ok("ok".to_owned())
            }
            "get" => {
                let [bucket, key] = words(&arguments)?;
                let bucket = store::open(bucket).map_err(store_error)?;
                match bucket.get(key).map_err(store_error)? {
                    Some(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
                    None => Ok("null".to_owned()),
                }
            }
            "delete" => {
                let [bucket, key] = words(&arguments)?;
                let bucket = store::open(bucket).map_err(store_error)?;
                bucket.delete(key).map_err(store_error)?;
                Ok("ok".to_owned())
            }
            "incr" => {
                let [bucket, key, delta] = words(&arguments)?;
                let bucket = store::open(bucket).map_err(store_error)?;
                let delta = delta.parse().map_err(|_| {
                    ToolError::InvalidArguments(format!("`{delta}` is not a signed number"))
                })?;
                let value = atomics::increment(&bucket, key, delta).map_err(store_error)?;
                Ok(value.to_string())
            }
            "append" => {
                let [bucket, key, text, times] = words(&arguments)?;
                let bucket = store::open(bucket).map_err(store_error)?;
                let mut failed = 0u64;
                for _ in 0..number(times)? {
                    let mut cas = atomics::Cas::new(&bucket, key).map_err(store_error)?;
                    loop {
                        let mut value = cas.current().map_err(store_error)?.unwrap_or_default();
                        value.extend_from_slice(text.as_bytes());
                        match atomics::swap(cas, &value) {
                            Ok(()) => break,
                            Err(atomics::CasError::CasFailed(fresh)) => {
                                failed += 1;
                                cas = fresh;
                            }
                            Err(atomics::CasError::StoreError(e)) => return Err(store_error(e)),
                        }
                    }
                }
                Ok(failed.to_string())
            }
            "cas-race" => {
                let [bucket, key] = words(&arguments)?;
                let bucket = store::open(bucket).map_err(store_error)?;
                let cas = atomics::Cas::new(&bucket, key).map_err(store_error)?;
                bucket.set(key, b"theirs").map_err(store_error)?;
                match atomics::swap(cas, b"mine") {
                    Ok(()) => Err(ToolError::Failed(
                        "the swap over a changed value succeeded".to_owned(),
                    )),
                    Err(atomics::CasError::StoreError(e)) => Err(store_error(e)),
                    Err(atomics::CasError::CasFailed(fresh)) => {
                        let seen = fresh.current().map_err(store_error)?.unwrap_or_default();
                        atomics::swap(fresh, b"mine").map_err(|e| match e {
                            atomics::CasError::StoreError(e) => store_error(e),
                            atomics::CasError::CasFailed(_) => {
                                ToolError::Failed("the retry failed too".to_owned())
                            }
                        })?;
                        Ok(format!("failed:{}", String::from_utf8_lossy(&seen)))
                    }
                }
            }
            "keys" => {
                let [bucket] = words(&arguments)?;
                let bucket = store::open(bucket).map_err(store_error)?;
                let mut keys = Vec::new();
                let mut cursor = None;
                loop {
                    let page = bucket.list_keys(cursor.as_deref()).map_err(store_error)?;
                    keys.extend(page.keys);
                    match page.cursor {
                        Some(next) => cursor = Some(next),
                        None => break,
                    }
                }
                keys.sort();
                Ok(keys.join("\n"))
            }
            "fill" => {
                let [bucket, count, size] = words(&arguments)?;
                let bucket = store::open(bucket).map_err(store_error)?;
                let value = vec![b'x'; usize::try_from(number(size)?).unwrap_or(usize::MAX)];
                for i in 0..number(count)? {
                    bucket.set(&format!("k{i}"), &value).map_err(store_error)?;
                }
                Ok("ok".to_owned())
            }
            _ => Err(ToolError::UnknownTool(name)),
        }
    }
}
