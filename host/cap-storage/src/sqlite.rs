//! [`Backend`] on one SQLite file.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use crate::{
    Backend, CounterRange, Error, KeyPage, Quota, QuotaKind, ReadLimit, Result, Swap, Usage,
};

/// Most keys one `list-keys` page returns.
const PAGE_KEYS: usize = 1000;

/// Most key bytes one `list-keys` page returns (at least one key is returned).
const PAGE_BYTES: usize = 1 << 20;

/// Buckets in one SQLite file: table `kv(bucket, key, value)`.
///
/// The database runs in WAL mode with `synchronous=FULL`: every write is one
/// transaction whose commit is flushed to disk before the call returns, so an
/// acknowledged write survives a crash of the host or of the machine.
/// Several hosts may share the file: writes take the database's write lock
/// for the whole read-check-write (`BEGIN IMMEDIATE`), so increments and
/// quota checks stay atomic across processes.
///
/// Two connections, each guarded by a mutex: one for writes, one for reads.
/// In WAL mode a reader does not wait for a writer, so a read never waits
/// for another call's commit (and its flush to disk); it sees every write
/// committed before it started.
#[derive(Debug)]
pub struct SqliteBackend {
    path: PathBuf,
    conn: Mutex<Connection>,
    reader: Mutex<Connection>,
}

impl SqliteBackend {
    /// The schema [`Self::open`] creates (idempotent: every statement is
    /// `IF NOT EXISTS`), for tools that read or compare against the file
    /// with SQLite directly, such as the storage benchmark's baseline.
    ///
    /// The index on `bucket` holds `(bucket, rowid)`, which is what
    /// `list-keys` pages through: the cursor is the last rowid returned, so a
    /// page is a range scan and concurrent writes never make a listing skip a
    /// key that existed throughout.
    pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kv (
    bucket TEXT NOT NULL,
    key    TEXT NOT NULL,
    value  BLOB NOT NULL,
    PRIMARY KEY (bucket, key)
);
CREATE INDEX IF NOT EXISTS kv_bucket ON kv (bucket);
";

    /// Open (or create) the database at `path`, creating its folder if needed.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| Error::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let open_err = |source| Error::Open {
            path: path.clone(),
            source,
        };
        let mut conn = convergio_sqlite::open_wal(&path, convergio_sqlite::Synchronous::Full)
            .map_err(|e| match e {
                convergio_sqlite::OpenError::NotWal { mode, .. } => Error::NoWal {
                    path: path.clone(),
                    mode,
                },
                convergio_sqlite::OpenError::Sqlite(source) => open_err(source),
            })?;
        convergio_sqlite::create_schema(&mut conn, Self::SCHEMA).map_err(open_err)?;
        // The file is in WAL mode now (the mode is persistent).
        let reader = convergio_sqlite::open(&path).map_err(open_err)?;
        Ok(Self {
            path,
            conn: Mutex::new(conn),
            reader: Mutex::new(reader),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The write connection. A panic while it was held cannot leave it
    /// half-used: an open transaction is rolled back when dropped, so
    /// poisoning is ignored.
    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The read connection (poisoning ignored, as for [`Self::conn`]).
    fn reader(&self) -> MutexGuard<'_, Connection> {
        self.reader.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A transaction holding the write lock from its start.
    fn write<R>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<R>) -> Result<R> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }
}

fn get_value(conn: &Connection, bucket: &str, key: &str) -> Result<Option<Vec<u8>>> {
    Ok(conn
        .prepare_cached("SELECT value FROM kv WHERE bucket = ?1 AND key = ?2")?
        .query_row(params![bucket, key], |row| row.get(0))
        .optional()?)
}

/// Bytes `key` takes now (key and value), if it exists.
fn entry_size(conn: &Connection, bucket: &str, key: &str) -> Result<Option<u64>> {
    Ok(conn
        .prepare_cached(
            "SELECT octet_length(key) + octet_length(value) FROM kv WHERE bucket = ?1 AND key = ?2",
        )?
        .query_row(params![bucket, key], |row| row.get::<_, i64>(0).map(count))
        .optional()?)
}

/// SQLite integers are signed; sizes and counts are never negative.
fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn put(conn: &Connection, bucket: &str, key: &str, value: &[u8]) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO kv (bucket, key, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (bucket, key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![bucket, key, value])?;
    Ok(())
}

fn remove(conn: &Connection, bucket: &str, key: &str) -> Result<()> {
    conn.prepare_cached("DELETE FROM kv WHERE bucket = ?1 AND key = ?2")?
        .execute(params![bucket, key])?;
    Ok(())
}

fn usage(conn: &Connection, bucket: &str) -> Result<Usage> {
    Ok(conn
        .prepare_cached(
            "SELECT count(*), coalesce(sum(octet_length(key) + octet_length(value)), 0)
             FROM kv WHERE bucket = ?1",
        )?
        .query_row(params![bucket], |row| {
            Ok(Usage {
                keys: count(row.get(0)?),
                bytes: count(row.get(1)?),
            })
        })?)
}

/// Quota bookkeeping for the writes of one transaction.
struct QuotaCheck<'a> {
    bucket: &'a str,
    quota: Quota,
    /// Usage when the transaction started (what error messages report).
    start: Usage,
    /// Usage after the writes checked so far.
    now: Usage,
}

impl<'a> QuotaCheck<'a> {
    /// `None` when the quota is unlimited: nothing to count.
    fn new(conn: &Connection, bucket: &'a str, quota: Quota) -> Result<Option<Self>> {
        if !quota.is_limited() {
            return Ok(None);
        }
        let start = usage(conn, bucket)?;
        Ok(Some(Self {
            bucket,
            quota,
            start,
            now: start,
        }))
    }

    /// Account for writing `key` with a value of `value_len` bytes, or fail
    /// if that takes the bucket past a quota. A write that does not grow the
    /// bucket is always allowed, so a bucket over a lowered quota can shrink.
    fn admit(&mut self, conn: &Connection, key: &str, value_len: usize) -> Result<()> {
        let old = entry_size(conn, self.bucket, key)?;
        let new = (key.len() as u64).saturating_add(value_len as u64);
        let after = Usage {
            keys: self.now.keys + u64::from(old.is_none()),
            bytes: self
                .now
                .bytes
                .saturating_sub(old.unwrap_or(0))
                .saturating_add(new),
        };
        let exceeded = |kind, limit: Option<u64>, now: u64, after: u64| match limit {
            Some(limit) if after > limit && after > now => Some(Error::QuotaExceeded {
                bucket: self.bucket.to_string(),
                kind,
                limit,
                usage: match kind {
                    QuotaKind::Keys => self.start.keys,
                    QuotaKind::Bytes => self.start.bytes,
                },
                after,
            }),
            _ => None,
        };
        if let Some(err) = exceeded(
            QuotaKind::Keys,
            self.quota.max_keys,
            self.now.keys,
            after.keys,
        )
        .or_else(|| {
            exceeded(
                QuotaKind::Bytes,
                self.quota.max_bytes,
                self.now.bytes,
                after.bytes,
            )
        }) {
            return Err(err);
        }
        self.now = after;
        Ok(())
    }
}

impl Backend for SqliteBackend {
    fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>> {
        get_value(&self.reader(), bucket, key)
    }

    fn set(&self, bucket: &str, key: &str, value: &[u8], quota: Quota) -> Result<()> {
        self.write(|tx| {
            if let Some(mut check) = QuotaCheck::new(tx, bucket, quota)? {
                check.admit(tx, key, value.len())?;
            }
            put(tx, bucket, key, value)
        })
    }

    fn delete(&self, bucket: &str, key: &str) -> Result<()> {
        remove(&self.conn(), bucket, key)
    }

    fn exists(&self, bucket: &str, key: &str) -> Result<bool> {
        Ok(self
            .reader()
            .prepare_cached("SELECT 1 FROM kv WHERE bucket = ?1 AND key = ?2")?
            .query_row(params![bucket, key], |_| Ok(()))
            .optional()?
            .is_some())
    }

    fn list_keys(&self, bucket: &str, cursor: Option<u64>) -> Result<KeyPage> {
        // Rowids of this table are positive; a cursor past i64::MAX is past the end.
        let Ok(after) = i64::try_from(cursor.unwrap_or(0)) else {
            return Ok(KeyPage::default());
        };
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT rowid, key FROM kv WHERE bucket = ?1 AND rowid > ?2 ORDER BY rowid LIMIT ?3",
        )?;
        let mut rows = stmt.query(params![bucket, after, PAGE_KEYS as i64 + 1])?;
        let mut page = KeyPage::default();
        let (mut bytes, mut last) = (0, after);
        while let Some(row) = rows.next()? {
            let key: String = row.get(1)?;
            if page.keys.len() == PAGE_KEYS
                || (!page.keys.is_empty() && bytes + key.len() > PAGE_BYTES)
            {
                page.cursor = u64::try_from(last).ok();
                break;
            }
            bytes += key.len();
            last = row.get(0)?;
            page.keys.push(key);
        }
        Ok(page)
    }

    fn increment(
        &self,
        bucket: &str,
        key: &str,
        delta: i64,
        range: CounterRange,
        quota: Quota,
    ) -> Result<i64> {
        self.write(|tx| {
            let current = match get_value(tx, bucket, key)? {
                None => 0,
                Some(value) => std::str::from_utf8(&value)
                    .ok()
                    .and_then(|text| text.parse::<i64>().ok())
                    .ok_or_else(|| Error::NotACounter {
                        bucket: bucket.to_string(),
                        key: key.to_string(),
                    })?,
            };
            let new = current
                .checked_add(delta)
                .filter(|new| range.contains(*new))
                .ok_or_else(|| Error::OutOfRange {
                    bucket: bucket.to_string(),
                    key: key.to_string(),
                    current,
                    delta,
                    range,
                })?;
            let value = new.to_string();
            if let Some(mut check) = QuotaCheck::new(tx, bucket, quota)? {
                check.admit(tx, key, value.len())?;
            }
            put(tx, bucket, key, value.as_bytes())?;
            Ok(new)
        })
    }

    fn compare_and_swap(
        &self,
        bucket: &str,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
        quota: Quota,
    ) -> Result<Swap> {
        self.write(|tx| {
            let current = get_value(tx, bucket, key)?;
            if current.as_deref() != expected {
                return Ok(Swap::Changed(current));
            }
            if let Some(mut check) = QuotaCheck::new(tx, bucket, quota)? {
                check.admit(tx, key, value.len())?;
            }
            put(tx, bucket, key, value)?;
            Ok(Swap::Done)
        })
    }

    fn get_many(
        &self,
        bucket: &str,
        keys: &[String],
        limit: ReadLimit,
    ) -> Result<Vec<Option<Vec<u8>>>> {
        let mut conn = self.reader();
        // One read transaction: every value comes from the same snapshot.
        let tx = conn.transaction()?;
        let mut values = Vec::with_capacity(keys.len().min(1024));
        let mut bytes = 0u64;
        {
            let mut select =
                tx.prepare_cached("SELECT value FROM kv WHERE bucket = ?1 AND key = ?2")?;
            for (done, key) in keys.iter().enumerate() {
                if let Some(deadline) = limit.deadline
                    && done % 64 == 0
                    && std::time::Instant::now() >= deadline
                {
                    return Err(Error::DeadlineExceeded {
                        bucket: bucket.to_string(),
                        done,
                        keys: keys.len(),
                    });
                }
                // The size is checked on SQLite's copy, before one is made here.
                let value = select
                    .query_row(params![bucket, key], |row| {
                        let blob = match row.get_ref(0)? {
                            ValueRef::Blob(bytes) | ValueRef::Text(bytes) => bytes,
                            _ => &[],
                        };
                        let after = bytes
                            .saturating_add(blob.len() as u64)
                            .saturating_add(key.len() as u64);
                        Ok((after <= limit.max_bytes)
                            .then(|| blob.to_vec())
                            .ok_or(after))
                    })
                    .optional()?;
                match value {
                    None => values.push(None),
                    Some(Ok(value)) => {
                        bytes += (value.len() + key.len()) as u64;
                        values.push(Some(value));
                    }
                    Some(Err(after)) => {
                        return Err(Error::BatchTooLarge {
                            bucket: bucket.to_string(),
                            keys: keys.len(),
                            bytes: after,
                            limit: limit.max_bytes,
                        });
                    }
                }
            }
        }
        tx.finish()?;
        Ok(values)
    }

    fn set_many(&self, bucket: &str, entries: &[(String, Vec<u8>)], quota: Quota) -> Result<()> {
        self.write(|tx| {
            let mut check = QuotaCheck::new(tx, bucket, quota)?;
            for (key, value) in entries {
                if let Some(check) = &mut check {
                    check.admit(tx, key, value.len())?;
                }
                put(tx, bucket, key, value)?;
            }
            Ok(())
        })
    }

    fn delete_many(&self, bucket: &str, keys: &[String]) -> Result<()> {
        self.write(|tx| keys.iter().try_for_each(|key| remove(tx, bucket, key)))
    }

    fn usage(&self, bucket: &str) -> Result<Usage> {
        usage(&self.reader(), bucket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend() -> (tempfile::TempDir, SqliteBackend) {
        let dir = tempfile::tempdir().unwrap();
        let backend = SqliteBackend::open(dir.path().join("sub/dir/storage.db")).unwrap();
        (dir, backend)
    }

    #[test]
    fn durability_settings() {
        let (_dir, backend) = backend();
        let conn = backend.conn();
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 2, "synchronous must be FULL");
        let mode: String = backend
            .reader()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn reads_do_not_wait_for_a_write_in_progress() {
        let (_dir, backend) = backend();
        backend.set("b", "k", b"old", Quota::UNLIMITED).unwrap();
        let mut conn = backend.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .unwrap();
        put(&tx, "b", "k", b"new").unwrap();
        // The writer holds the write lock and has not committed: reads
        // answer at once, from the last commit.
        assert_eq!(backend.get("b", "k").unwrap().unwrap(), b"old");
        assert!(backend.exists("b", "k").unwrap());
        assert_eq!(backend.list_keys("b", None).unwrap().keys, ["k"]);
        tx.commit().unwrap();
        drop(conn);
        assert_eq!(backend.get("b", "k").unwrap().unwrap(), b"new");
    }

    #[test]
    fn listing_uses_the_bucket_index() {
        let (_dir, backend) = backend();
        let conn = backend.conn();
        let plan: Vec<String> = conn
            .prepare(
                "EXPLAIN QUERY PLAN SELECT rowid, key FROM kv WHERE bucket = ?1 AND rowid > ?2 ORDER BY rowid LIMIT ?3",
            )
            .unwrap()
            .query_map(params!["b", 0, 10], |r| r.get(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let plan = plan.join("; ");
        assert!(plan.contains("kv_bucket"), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
    }

    #[test]
    fn pages_are_bounded_by_count_and_bytes() {
        let (_dir, backend) = backend();
        let entries: Vec<(String, Vec<u8>)> = (0..2500)
            .map(|i| (format!("k{i:05}"), Vec::new()))
            .collect();
        backend.set_many("b", &entries, Quota::UNLIMITED).unwrap();
        let mut seen = Vec::new();
        let mut cursor = None;
        let mut pages = 0;
        loop {
            let page = backend.list_keys("b", cursor).unwrap();
            assert!(page.keys.len() <= PAGE_KEYS);
            pages += 1;
            seen.extend(page.keys);
            match page.cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(pages, 3);
        seen.sort();
        let mut want: Vec<String> = entries.into_iter().map(|(k, _)| k).collect();
        want.sort();
        assert_eq!(seen, want);

        // Large keys: the byte bound cuts the page, but never to zero keys.
        let big = "x".repeat(PAGE_BYTES / 2 + 1);
        for i in 0..3 {
            backend
                .set("big", &format!("{big}{i}"), b"", Quota::UNLIMITED)
                .unwrap();
        }
        let first = backend.list_keys("big", None).unwrap();
        assert_eq!(first.keys.len(), 1);
        let second = backend.list_keys("big", first.cursor).unwrap();
        assert_eq!(second.keys.len(), 1);
        let third = backend.list_keys("big", second.cursor).unwrap();
        assert_eq!(third.keys.len(), 1);
        assert_eq!(third.cursor, None);
    }

    #[test]
    fn a_batch_read_stops_at_its_byte_limit() {
        let (_dir, backend) = backend();
        backend
            .set("b", "big", &[7u8; 1000], Quota::UNLIMITED)
            .unwrap();
        let keys = vec!["big".to_string(); 10_000];
        let limit = ReadLimit {
            max_bytes: 10_000,
            deadline: None,
        };
        // Nine copies (1003 bytes each with the key) fit; the tenth does not.
        let fits = backend.get_many("b", &keys[..9], limit).unwrap();
        assert_eq!(fits.len(), 9);
        match backend.get_many("b", &keys, limit) {
            Err(Error::BatchTooLarge {
                keys: 10_000,
                bytes: 10_030,
                limit: 10_000,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        // Missing keys cost nothing.
        let missing = vec!["nope".to_string(); 10_000];
        assert_eq!(
            backend.get_many("b", &missing, limit).unwrap().len(),
            10_000
        );
    }

    #[test]
    fn a_batch_read_stops_at_its_deadline() {
        let (_dir, backend) = backend();
        backend.set("b", "k", b"v", Quota::UNLIMITED).unwrap();
        let keys = vec!["k".to_string(); 1000];
        let limit = ReadLimit {
            max_bytes: u64::MAX,
            deadline: Some(std::time::Instant::now()),
        };
        match backend.get_many("b", &keys, limit) {
            Err(Error::DeadlineExceeded {
                done: 0,
                keys: 1000,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn foreign_cursors_do_not_fail() {
        let (_dir, backend) = backend();
        backend.set("b", "k", b"v", Quota::UNLIMITED).unwrap();
        for cursor in [u64::MAX, i64::MAX as u64, 1 << 40, 12345] {
            let page = backend.list_keys("b", Some(cursor)).unwrap();
            assert!(page.keys.is_empty());
            assert_eq!(page.cursor, None);
        }
        assert_eq!(backend.list_keys("b", Some(0)).unwrap().keys, ["k"]);
    }

    #[test]
    fn usage_counts_bytes_not_characters() {
        let (_dir, backend) = backend();
        backend
            .set("b", "é", "ü".as_bytes(), Quota::UNLIMITED)
            .unwrap();
        assert_eq!(backend.usage("b").unwrap(), Usage { keys: 1, bytes: 4 });
    }

    #[test]
    fn over_quota_bucket_may_shrink() {
        let (_dir, backend) = backend();
        backend.set("b", "k", &[0; 100], Quota::UNLIMITED).unwrap();
        // The operator lowered the quota below what the bucket holds.
        let quota = Quota {
            max_keys: Some(1),
            max_bytes: Some(10),
        };
        backend.set("b", "k", &[0; 50], quota).unwrap();
        let err = backend.set("b", "k", &[0; 60], quota).unwrap_err();
        assert!(matches!(
            err,
            Error::QuotaExceeded {
                kind: QuotaKind::Bytes,
                limit: 10,
                usage: 51,
                after: 61,
                ..
            }
        ));
        backend.set("b", "k", &[0; 5], quota).unwrap();
        assert_eq!(backend.usage("b").unwrap(), Usage { keys: 1, bytes: 6 });
    }

    #[test]
    fn a_batch_counts_its_own_duplicates() {
        let (_dir, backend) = backend();
        let quota = Quota {
            max_keys: Some(2),
            max_bytes: None,
        };
        let entries = vec![
            ("a".to_string(), b"1".to_vec()),
            ("a".to_string(), b"2".to_vec()),
            ("b".to_string(), b"3".to_vec()),
            ("a".to_string(), b"4".to_vec()),
        ];
        backend.set_many("q", &entries, quota).unwrap();
        assert_eq!(backend.get("q", "a").unwrap().unwrap(), b"4");
        assert_eq!(backend.usage("q").unwrap().keys, 2);
    }
}
