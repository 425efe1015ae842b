//! Helpers shared by the integration tests.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use convergio_cap_keys::{Clock, DataKey, StaticSource, Vault, VaultOptions};

/// A marker that must never appear in files, errors or debug output.
pub const MARKER: &str = "sk-MARKER-7d1f0c2a9b8e4f6a";

/// A clock the test moves by hand.
#[derive(Clone)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    pub fn new() -> Self {
        // 2026-01-01T00:00:00Z
        Self(Arc::new(AtomicU64::new(1_767_225_600_000)))
    }
    pub fn advance(&self, d: Duration) {
        self.0.fetch_add(d.as_millis() as u64, Ordering::SeqCst);
    }
    pub fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.0.load(Ordering::SeqCst))
    }
    pub fn clock(&self) -> Clock {
        let inner = self.0.clone();
        Arc::new(move || UNIX_EPOCH + Duration::from_millis(inner.load(Ordering::SeqCst)))
    }
}

pub fn master(bytes: u8) -> Arc<StaticSource> {
    Arc::new(StaticSource::new(
        DataKey::from_slice(&[bytes; 32], "test").unwrap(),
        format!("test key {bytes}"),
    ))
}

pub fn db(dir: &Path) -> PathBuf {
    dir.join("vault.db")
}

pub fn open_with_clock(path: &Path, clock: &ManualClock) -> Vault {
    Vault::open_with(
        path,
        master(7),
        VaultOptions {
            clock: Some(clock.clock()),
            ..VaultOptions::default()
        },
    )
    .unwrap()
}

pub fn hosts(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// Every byte of the vault file and its WAL and shared-memory files.
pub fn file_bytes(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        if let Ok(bytes) = std::fs::read(PathBuf::from(p)) {
            out.extend(bytes);
        }
    }
    out
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
