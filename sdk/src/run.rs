//! The graph-run call a plugin serves, and side effects made once per call.
//!
//! When the run driver calls a tool or an agent for a graph node, the store
//! serves the call's context (`convergio:platform/run-context`): run, node,
//! call, attempt and an **idempotency key** `{run}:{call}:{attempt}`. A call
//! that was in flight when the host died is dispatched again with the same
//! key; a retry after a failure gets a new one. A side effect keyed by it
//! happens once however often the call is dispatched — effectively once.
//!
//! [`update_once`] does that for a value in storage: a compare-and-swap that
//! records the key beside the value, so the update is skipped when the key
//! is already recorded.
//!
//! ```no_run
//! use convergio_sdk::keyvalue::store;
//! use convergio_sdk::run;
//!
//! # fn bump() -> Result<(), String> {
//! let bucket = store::open("counters").map_err(|e| format!("{e:?}"))?;
//! // +1 per node call, however often the call is dispatched.
//! let now = run::update_once(&bucket, "visits", |n| {
//!     serde_json::json!(n.and_then(|v| v.as_i64()).unwrap_or(0) + 1)
//! })?;
//! # let _ = now; Ok(()) }
//! ```
//!
//! [`Steps`] keeps the steps of a call — a model's answer, a tool's result —
//! in the run's journal: a call run again after a crash reads the steps it
//! finished instead of doing them again, and goes on live from the first
//! one it had not finished.

use serde_json::{Value, json};

use crate::bindings::convergio::platform::run_context;
pub use crate::bindings::convergio::platform::run_context::{CallContext, RecordedStep};
use crate::keyvalue::{atomics, store};

/// Idempotency keys [`update_once`] remembers per storage key: a call
/// dispatched again after a crash is found among the last this many.
pub const REMEMBERED_KEYS: usize = 1024;

/// The node call this instance serves, if it serves one.
pub fn current() -> Option<CallContext> {
    run_context::current()
}

/// The steps of the node call being served, in order: each is done once and
/// recorded, or read back from the run's journal when an earlier execution
/// of the call (cut by a crash of the host) recorded it. Outside a graph
/// run every step is simply done.
#[derive(Debug, Default)]
pub struct Steps {
    next: u32,
}

impl Steps {
    /// The steps of this call, from the first.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next step, of `kind`, asking for what `key` fingerprints: its
    /// recorded output if the call recorded it before with the same key,
    /// else `run()`'s, recorded before it is returned. A recorded step with
    /// another key (the call now asks for something else: the plugin
    /// changed) is an error, and so is a step that cannot be recorded.
    pub fn step(
        &mut self,
        kind: &str,
        key: &str,
        run: impl FnOnce() -> Result<String, String>,
    ) -> Result<String, String> {
        let index = self.next;
        self.next += 1;
        if let Some(recorded) = run_context::recorded(index) {
            if recorded.kind == kind && recorded.key == key {
                return Ok(recorded.output);
            }
            return Err(format!(
                "step {index} of this call was recorded as `{}` {} and is now `{kind}` {key}: the call no longer does what it did before the crash; retry the node instead of resuming it",
                recorded.kind, recorded.key
            ));
        }
        let output = run()?;
        run_context::record(&RecordedStep {
            index,
            kind: kind.to_owned(),
            key: key.to_owned(),
            output: output.clone(),
        })?;
        Ok(output)
    }
}

/// A short, stable fingerprint of `text` (FNV-1a, 64 bits, hex), for the
/// key of a [`Steps::step`].
pub fn fingerprint(text: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// The idempotency key of the node call being served, if any.
pub fn idempotency_key() -> Option<String> {
    current().map(|c| c.idempotency_key)
}

/// Set `key` of `bucket` to `update(current value)`, once per idempotency
/// key of the node call being served (outside a node call: every time).
/// The value is JSON, stored as `{"value": …, "applied": [keys]}` and
/// changed by compare-and-swap, so concurrent updates do not lose each
/// other and a call dispatched again after a crash changes nothing. Returns
/// the value after the update (or as the earlier dispatch left it).
pub fn update_once(
    bucket: &store::Bucket,
    key: &str,
    update: impl Fn(Option<Value>) -> Value,
) -> Result<Value, String> {
    let idempotency = idempotency_key();
    let mut cas = atomics::Cas::new(bucket, key).map_err(describe)?;
    loop {
        let current: Option<Value> = match cas.current().map_err(describe)? {
            Some(bytes) => Some(
                serde_json::from_slice(&bytes)
                    .map_err(|e| format!("`{key}` does not hold an update_once record: {e}"))?,
            ),
            None => None,
        };
        let (value, mut applied) = match current {
            Some(Value::Object(mut record)) => (
                record.remove("value"),
                match record.remove("applied") {
                    Some(Value::Array(keys)) => keys,
                    _ => Vec::new(),
                },
            ),
            Some(other) => return Err(format!("`{key}` holds {other}, not an update_once record")),
            None => (None, Vec::new()),
        };
        if let Some(k) = &idempotency
            && applied.iter().any(|a| a.as_str() == Some(k.as_str()))
        {
            return Ok(value.unwrap_or(Value::Null));
        }
        let next = update(value);
        if let Some(k) = &idempotency {
            applied.push(Value::String(k.clone()));
            if applied.len() > REMEMBERED_KEYS {
                let excess = applied.len() - REMEMBERED_KEYS;
                applied.drain(..excess);
            }
        }
        let record = json!({"value": next, "applied": applied});
        let bytes = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
        match atomics::swap(cas, &bytes) {
            Ok(()) => return Ok(next),
            Err(atomics::CasError::CasFailed(fresh)) => cas = fresh,
            Err(atomics::CasError::StoreError(e)) => return Err(describe(e)),
        }
    }
}

fn describe(e: store::Error) -> String {
    match e {
        store::Error::AccessDenied => "storage: access denied (is the bucket granted?)".to_owned(),
        store::Error::NoSuchStore => "storage: no such bucket".to_owned(),
        store::Error::Other(m) => format!("storage: {m}"),
    }
}
