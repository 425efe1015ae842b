//! The storage engine behind the capability.

use crate::Result;

/// Limits on what one bucket may hold. `None` means unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Quota {
    /// Most keys the bucket may hold.
    pub max_keys: Option<u64>,
    /// Most bytes the bucket may hold, keys and values together.
    pub max_bytes: Option<u64>,
}

impl Quota {
    /// No limits.
    pub const UNLIMITED: Quota = Quota {
        max_keys: None,
        max_bytes: None,
    };

    /// Whether any limit is set.
    pub fn is_limited(&self) -> bool {
        self.max_keys.is_some() || self.max_bytes.is_some()
    }
}

/// What a bucket holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Usage {
    /// Number of keys.
    pub keys: u64,
    /// Bytes of keys and values together (the measure of `max-bytes`).
    pub bytes: u64,
}

/// One page of [`Backend::list_keys`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPage {
    /// Keys of this page, in no particular order.
    pub keys: Vec<String>,
    /// Pass this to the next call to get the next page; `None` on the last page.
    pub cursor: Option<u64>,
}

/// The values a counter may take: what the caller's interface can represent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CounterRange {
    /// Any `i64` (`wasi:keyvalue@0.2.0-draft2`: signed deltas and values).
    Signed,
    /// `0..=i64::MAX` (`wasi:keyvalue@0.2.0-draft`: unsigned deltas and
    /// values; counters are stored as `i64` for both versions).
    NonNegative,
}

impl CounterRange {
    /// Whether `value` is in the range.
    pub fn contains(self, value: i64) -> bool {
        match self {
            CounterRange::Signed => true,
            CounterRange::NonNegative => value >= 0,
        }
    }
}

impl std::fmt::Display for CounterRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CounterRange::Signed => write!(f, "{}..={}", i64::MIN, i64::MAX),
            CounterRange::NonNegative => write!(f, "0..={}", i64::MAX),
        }
    }
}

/// The outcome of [`Backend::compare_and_swap`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Swap {
    /// The key held the expected value and now holds the new one.
    Done,
    /// The key no longer held the expected value; nothing was written. This
    /// is what it holds now (`None`: missing).
    Changed(Option<Vec<u8>>),
}

/// How much one batch read may hand back, and until when it may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimit {
    /// Most bytes of keys and values found.
    pub max_bytes: u64,
    /// When to give up.
    pub deadline: Option<std::time::Instant>,
}

impl ReadLimit {
    /// No limit.
    pub const NONE: ReadLimit = ReadLimit {
        max_bytes: u64::MAX,
        deadline: None,
    };
}

/// A storage engine: buckets of byte values under string keys.
///
/// Buckets need no creation: a bucket holds what was written to it. Access
/// control is not the backend's job (the host checks grants before calling
/// it), but quotas are: a write that takes a [`Quota`] must check it and
/// write in one atomic step, so that concurrent writers (other instances,
/// other hosts on the same database) cannot together exceed it. A write
/// that would exceed it changes nothing and returns
/// [`Error::QuotaExceeded`](crate::Error::QuotaExceeded).
///
/// A method that returns `Ok` after a write has made it durable.
pub trait Backend: Send + Sync + 'static {
    /// The value of `key`, if any.
    fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>>;

    /// Set `key` to `value`, replacing any value.
    fn set(&self, bucket: &str, key: &str, value: &[u8], quota: Quota) -> Result<()>;

    /// Remove `key`; removing a missing key is not an error.
    fn delete(&self, bucket: &str, key: &str) -> Result<()>;

    /// Whether `key` has a value.
    fn exists(&self, bucket: &str, key: &str) -> Result<bool>;

    /// A page of the bucket's keys, starting after `cursor` (from the start if
    /// `None`). The cursor is opaque to callers: only a value returned in
    /// [`KeyPage::cursor`] is meaningful, and any other value must not fail
    /// worse than with an empty or partial page.
    fn list_keys(&self, bucket: &str, cursor: Option<u64>) -> Result<KeyPage>;

    /// Atomically add `delta` to the counter at `key` (a decimal `i64` in
    /// ASCII; a missing key counts as 0) and return the new value. A new
    /// value outside `range` fails with
    /// [`Error::OutOfRange`](crate::Error::OutOfRange) and changes nothing.
    fn increment(
        &self,
        bucket: &str,
        key: &str,
        delta: i64,
        range: CounterRange,
        quota: Quota,
    ) -> Result<i64>;

    /// Atomically set `key` to `value` if it still holds `expected` (`None`:
    /// if it is still missing). Otherwise change nothing and return what it
    /// holds now. Values are compared by content: a value changed and then
    /// changed back counts as unchanged.
    fn compare_and_swap(
        &self,
        bucket: &str,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
        quota: Quota,
    ) -> Result<Swap>;

    /// The values of `keys`, in the same order (`None` where missing),
    /// within `limit`: past [`ReadLimit::max_bytes`] of keys and values
    /// found it fails with [`Error::BatchTooLarge`](crate::Error::BatchTooLarge),
    /// past [`ReadLimit::deadline`] with
    /// [`Error::DeadlineExceeded`](crate::Error::DeadlineExceeded), before
    /// holding more.
    fn get_many(
        &self,
        bucket: &str,
        keys: &[String],
        limit: ReadLimit,
    ) -> Result<Vec<Option<Vec<u8>>>>;

    /// Set every entry; on error nothing may have been written (the SQLite
    /// backend writes all or nothing; the WIT contract allows partial writes).
    /// If a key appears twice, the last value wins.
    fn set_many(&self, bucket: &str, entries: &[(String, Vec<u8>)], quota: Quota) -> Result<()>;

    /// Remove every key; missing keys are skipped.
    fn delete_many(&self, bucket: &str, keys: &[String]) -> Result<()>;

    /// What the bucket holds now.
    fn usage(&self, bucket: &str) -> Result<Usage>;
}
