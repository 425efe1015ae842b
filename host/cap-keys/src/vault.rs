//! The vault: envelope-encrypted keys in SQLite, a cache of decrypted active
//! keys for the request path, rotation, revocation and usage metering.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use rusqlite::{Connection, OptionalExtension as _, TransactionBehavior, params};
use secrecy::{ExposeSecret as _, SecretString};
use tracing::instrument;

use crate::crypto::{self, DataKey};
use crate::error::{Error, Result};
use crate::model::{
    AuthScheme, KeyInfo, KeyListing, KeyPolicy, KeyRef, KeyState, ResolvedKey, UsageDelta,
    UsageRow, UsageTotals, from_millis, mask, to_millis, validate_name, validate_secret,
};
use crate::origin::BoundOrigin;
use crate::source::{MasterKeySource, WrappedKey};
use crate::store::{self, KEY_COLUMNS, KeyRow, day_of, to_i64, to_u64};

/// The vault's clock; tests and simulations replace it.
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

const CHECK_CONTEXT: &[u8] = b"convergio-cap-keys/v1/check";
const CHECK_PLAINTEXT: &[u8] = b"convergio-cap-keys vault check v1";
const META_CHECK_KEY_ID: &str = "check_key_id";
const META_CHECK_WRAPPED: &str = "check_wrapped";
const META_CHECK_SEALED: &str = "check_sealed";

/// How a vault is opened.
#[derive(Clone)]
pub struct VaultOptions {
    /// Maximum key ages, for warnings.
    pub policy: KeyPolicy,
    /// How often the request path checks whether another process (the CLI)
    /// changed the vault, and drops its cache if so.
    pub revalidate_every: Duration,
    /// The clock; `None` is the system clock.
    pub clock: Option<Clock>,
}

impl Default for VaultOptions {
    fn default() -> Self {
        Self {
            policy: KeyPolicy::default(),
            revalidate_every: Duration::from_secs(1),
            clock: None,
        }
    }
}

impl fmt::Debug for VaultOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultOptions")
            .field("policy", &self.policy)
            .field("revalidate_every", &self.revalidate_every)
            .field("clock", &self.clock.as_ref().map(|_| "custom"))
            .finish()
    }
}

/// Result of re-wrapping data keys under a new master key (version).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MasterRotation {
    /// The master key id everything is wrapped with now.
    pub key_id: String,
    /// How many data keys were re-wrapped.
    pub rewrapped: usize,
}

/// A decrypted active key, ready for the request path.
struct CachedKey {
    version: u32,
    header_name: &'static str,
    header_value: SecretString,
    bound_origins: Arc<[BoundOrigin]>,
    expires_ms: Option<i64>,
}

impl CachedKey {
    fn resolved(&self) -> ResolvedKey {
        ResolvedKey {
            version: self.version,
            header_name: self.header_name,
            header_value: self.header_value.clone(),
            bound_origins: Arc::clone(&self.bound_origins),
            expires: self.expires_ms.map(from_millis),
        }
    }
}

type Cache = HashMap<String, HashMap<String, Arc<CachedKey>>>;

struct Inner {
    path: PathBuf,
    conn: Mutex<Connection>,
    source: RwLock<Arc<dyn MasterKeySource>>,
    cache: RwLock<Cache>,
    /// Bumped on every change that may invalidate a cached key.
    generation: AtomicU64,
    policy: KeyPolicy,
    clock: Clock,
    revalidate_ms: i64,
    last_check_ms: AtomicI64,
    data_version: AtomicI64,
}

/// The BYOK key vault. Cheap to clone (an `Arc`), `Send + Sync`.
#[derive(Clone)]
pub struct Vault {
    inner: Arc<Inner>,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field("path", &self.inner.path)
            .field("master_key", &self.source().describe())
            .finish_non_exhaustive()
    }
}

/// Associated data of a wrapped data key.
fn data_key_context(provider: &str, name: &str, version: u32) -> Vec<u8> {
    format!("convergio-cap-keys/v1/data-key\0{provider}\0{name}\0{version}").into_bytes()
}

/// Associated data of a secret: everything that decides where the secret
/// may go, so a changed origin list or scheme in the file fails
/// authentication. `hosts` are the stored strings (origins since schema 2,
/// bare host names in schema 1).
fn secret_context(
    provider: &str,
    name: &str,
    version: u32,
    scheme: AuthScheme,
    expires_ms: Option<i64>,
    hosts: &[String],
) -> Vec<u8> {
    let expires = expires_ms.map_or_else(|| "-".to_owned(), |e| e.to_string());
    format!(
        "convergio-cap-keys/v1/secret\0{provider}\0{name}\0{version}\0{}\0{expires}\0{}",
        scheme.as_str(),
        hosts.join("\u{1f}")
    )
    .into_bytes()
}

fn row_label(provider: &str, name: &str, version: u32) -> String {
    format!("key {provider}/{name} version {version}")
}

impl Vault {
    /// The platform's vault in `data_dir`: `vault.db`, with the master key
    /// from `CONVERGIO_MASTER_KEY` if set, else from `master.key` beside it
    /// (created with mode 0600 on first use).
    pub fn open_in(data_dir: &Path) -> Result<Self> {
        Self::open_in_with(data_dir, VaultOptions::default())
    }

    /// [`Vault::open_in`] with options (e.g. the operator's key policy).
    pub fn open_in_with(data_dir: &Path, options: VaultOptions) -> Result<Self> {
        let source: Arc<dyn MasterKeySource> =
            if std::env::var_os(crate::DEFAULT_MASTER_KEY_VAR).is_some() {
                Arc::new(crate::EnvSource::from_default_var()?)
            } else {
                let path = data_dir.join("master.key");
                if path.exists() {
                    Arc::new(crate::KeyFileSource::open(&path)?)
                } else {
                    std::fs::create_dir_all(data_dir).map_err(|source| Error::KeyFile {
                        path: data_dir.to_path_buf(),
                        source,
                    })?;
                    Arc::new(crate::KeyFileSource::generate(&path)?)
                }
            };
        Self::open_with(data_dir.join("vault.db"), source, options)
    }

    /// Open (or create) the vault at `path`, sealed with `source`'s master key.
    pub fn open(path: impl AsRef<Path>, source: Arc<dyn MasterKeySource>) -> Result<Self> {
        Self::open_with(path, source, VaultOptions::default())
    }

    /// [`Vault::open`] with options. A vault sealed with another master key is
    /// refused with [`Error::MasterKeyMismatch`].
    #[instrument(name = "convergio.keys.open", skip_all, fields(path = %path.as_ref().display()))]
    pub fn open_with(
        path: impl AsRef<Path>,
        source: Arc<dyn MasterKeySource>,
        options: VaultOptions,
    ) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let mut conn = store::open(&path)?;
        check_master(&conn, source.as_ref())?;
        migrate_bare_hosts(&mut conn, source.as_ref())?;
        let data_version: i64 = conn.pragma_query_value(None, "data_version", |r| r.get(0))?;
        let clock = options.clock.unwrap_or_else(|| Arc::new(SystemTime::now));
        let now_ms = to_millis(clock());
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                conn: Mutex::new(conn),
                source: RwLock::new(source),
                cache: RwLock::new(HashMap::new()),
                generation: AtomicU64::new(0),
                policy: options.policy,
                clock,
                revalidate_ms: i64::try_from(options.revalidate_every.as_millis())
                    .unwrap_or(i64::MAX),
                last_check_ms: AtomicI64::new(now_ms),
                data_version: AtomicI64::new(data_version),
            }),
        })
    }

    /// The vault file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Id of the master key the vault is sealed with.
    pub fn master_key_id(&self) -> Result<String> {
        let conn = self.conn();
        let id = store::meta_get(&conn, META_CHECK_KEY_ID)?.unwrap_or_default();
        Ok(String::from_utf8_lossy(&id).into_owned())
    }

    /// Where the master key comes from, for messages.
    pub fn master_key_source(&self) -> String {
        self.source().describe()
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.inner
            .conn
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn source(&self) -> Arc<dyn MasterKeySource> {
        Arc::clone(
            &self
                .inner
                .source
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    pub(crate) fn now(&self) -> SystemTime {
        (self.inner.clock)()
    }

    /// Drop the cached entry of a key that a transaction is about to change:
    /// call it with the connection held, before the commit. Lookups that miss
    /// the cache then wait for the connection and read the committed change,
    /// and a load that read the database before the change cannot cache what
    /// it read (the generation moved). Invalidating after the commit instead
    /// would leave a window in which one caller reads the new version from
    /// the database and then another (or the same) gets the old one from the
    /// cache.
    fn invalidate_before_commit(&self, provider: &str, name: &str) {
        self.invalidate(provider, name);
    }

    /// Drop the cached entry of a key.
    fn invalidate(&self, provider: &str, name: &str) {
        let mut cache = self
            .inner
            .cache
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        if let Some(names) = cache.get_mut(provider) {
            names.remove(name);
        }
    }

    fn invalidate_all(&self) {
        let mut cache = self
            .inner
            .cache
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        cache.clear();
    }

    /// Store a new key (version 1, or the next version after revoked ones).
    /// Refused if the key already has a usable version: use [`Vault::rotate`].
    /// `bound_hosts` are bindings as [`BoundOrigin::parse_binding`] reads
    /// them (`https://api.openai.com`, `api.openai.com`, `127.0.0.1`); they
    /// are stored as origins.
    #[instrument(
        name = "convergio.keys.add",
        skip(self, secret, bound_hosts, auth_scheme)
    )]
    pub fn add(
        &self,
        provider: &str,
        name: &str,
        secret: &SecretString,
        expires: Option<SystemTime>,
        bound_hosts: &[String],
        auth_scheme: AuthScheme,
    ) -> Result<u32> {
        validate_name("provider name", provider)?;
        validate_name("key name", name)?;
        validate_secret(secret.expose_secret())?;
        let hosts = normalize_bindings(bound_hosts)?;
        let now_ms = to_millis(self.now());
        let expires_ms = check_expiry(expires, now_ms)?;
        let source = self.source();
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let live: i64 = tx.query_row(
            "SELECT COUNT(*) FROM keys WHERE provider = ?1 AND name = ?2 AND state != 'revoked'",
            params![provider, name],
            |r| r.get(0),
        )?;
        if live > 0 {
            return Err(Error::AlreadyExists {
                provider: provider.to_owned(),
                name: name.to_owned(),
            });
        }
        let version = next_version(&tx, provider, name)?;
        let sealed = seal_row(
            source.as_ref(),
            provider,
            name,
            version,
            secret,
            auth_scheme,
            expires_ms,
            &hosts,
        )?;
        insert_row(
            &tx,
            provider,
            name,
            version,
            now_ms,
            expires_ms,
            auth_scheme,
            &hosts,
            &sealed,
        )?;
        self.invalidate_before_commit(provider, name);
        tx.commit()?;
        drop(conn);
        tracing::info!(provider, name, version, "key added");
        Ok(version)
    }

    /// Replace a key's secret: the new version becomes active; the previous
    /// active version stays usable (by [`Vault::resolve_version`] and for usage
    /// records) for `grace`, then counts as revoked. A zero `grace` revokes it
    /// at once. The new version keeps the key's bound hosts and auth scheme.
    #[instrument(name = "convergio.keys.rotate", skip(self, new_secret, expires))]
    pub fn rotate(
        &self,
        provider: &str,
        name: &str,
        new_secret: &SecretString,
        grace: Duration,
        expires: Option<SystemTime>,
    ) -> Result<u32> {
        validate_name("provider name", provider)?;
        validate_name("key name", name)?;
        validate_secret(new_secret.expose_secret())?;
        let now_ms = to_millis(self.now());
        let expires_ms = check_expiry(expires, now_ms)?;
        let source = self.source();
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let active = select_active(&tx, provider, name)?;
        let Some(active) = active else {
            return Err(no_active_error(&tx, provider, name)?);
        };
        let version = next_version(&tx, provider, name)?;
        let sealed = seal_row(
            source.as_ref(),
            provider,
            name,
            version,
            new_secret,
            active.auth_scheme,
            expires_ms,
            &active.bound_hosts,
        )?;
        if grace.is_zero() {
            revoke_row(&tx, provider, name, active.version)?;
        } else {
            let until = now_ms.saturating_add(i64::try_from(grace.as_millis()).unwrap_or(i64::MAX));
            tx.execute(
                "UPDATE keys SET state = 'grace', grace_until_ms = ?4
                 WHERE provider = ?1 AND name = ?2 AND version = ?3",
                params![provider, name, active.version, until],
            )?;
        }
        insert_row(
            &tx,
            provider,
            name,
            version,
            now_ms,
            expires_ms,
            active.auth_scheme,
            &active.bound_hosts,
            &sealed,
        )?;
        self.invalidate_before_commit(provider, name);
        tx.commit()?;
        drop(conn);
        tracing::info!(
            provider,
            name,
            version,
            previous = active.version,
            "key rotated"
        );
        Ok(version)
    }

    /// Revoke one version now and wipe its ciphertext. Revoking the active
    /// version leaves the key without one until it is added again.
    #[instrument(name = "convergio.keys.revoke", skip(self))]
    pub fn revoke(&self, provider: &str, name: &str, version: u32) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if revoke_row(&tx, provider, name, version)? == 0 {
            let any: i64 = tx.query_row(
                "SELECT COUNT(*) FROM keys WHERE provider = ?1 AND name = ?2",
                params![provider, name],
                |r| r.get(0),
            )?;
            return Err(if any == 0 {
                Error::not_found(provider, name)
            } else {
                Error::VersionNotFound {
                    provider: provider.to_owned(),
                    name: name.to_owned(),
                    version,
                }
            });
        }
        self.invalidate_before_commit(provider, name);
        tx.commit()?;
        drop(conn);
        tracing::info!(provider, name, version, "key version revoked");
        Ok(())
    }

    /// Revoke (and wipe) every version whose grace period has ended. Lookups
    /// already treat them as revoked; this sweep removes their ciphertext.
    /// Returns how many versions were revoked.
    #[instrument(name = "convergio.keys.revoke_expired", skip(self))]
    pub fn revoke_expired(&self) -> Result<usize> {
        let now_ms = to_millis(self.now());
        let conn = self.conn();
        let n = conn.execute(
            "UPDATE keys SET state = 'revoked', grace_until_ms = NULL,
                    wrapped_key = x'', nonce = x'', ciphertext = x''
             WHERE state = 'grace' AND grace_until_ms <= ?1",
            [now_ms],
        )?;
        if n > 0 {
            tracing::info!(revoked = n, "grace periods ended");
        }
        Ok(n)
    }

    /// Delete every version of a key (`secure_delete` overwrites the freed
    /// pages). Its usage history stays. Returns how many versions were removed.
    #[instrument(name = "convergio.keys.remove", skip(self))]
    pub fn remove(&self, provider: &str, name: &str) -> Result<usize> {
        let conn = self.conn();
        self.invalidate_before_commit(provider, name);
        let n = conn.execute(
            "DELETE FROM keys WHERE provider = ?1 AND name = ?2",
            params![provider, name],
        )?;
        drop(conn);
        if n == 0 {
            return Err(Error::not_found(provider, name));
        }
        tracing::info!(provider, name, versions = n, "key removed");
        Ok(n)
    }

    /// Every version of every key, masked, with usage and policy warnings;
    /// sorted by provider, name, then newest version first.
    #[instrument(name = "convergio.keys.list", skip(self))]
    pub fn list(&self) -> Result<Vec<KeyListing>> {
        let now = self.now();
        let now_ms = to_millis(now);
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {KEY_COLUMNS}, u.requests, u.input_tokens, u.output_tokens, u.cost, u.errors, u.last_used
             FROM keys k LEFT JOIN (
                 SELECT provider AS p, name AS n, version AS v,
                        SUM(requests) AS requests, SUM(input_tokens) AS input_tokens,
                        SUM(output_tokens) AS output_tokens, SUM(cost_micro_usd) AS cost,
                        SUM(errors) AS errors, MAX(last_used_ms) AS last_used
                 FROM key_usage GROUP BY provider, name, version
             ) u ON u.p = k.provider AND u.n = k.name AND u.v = k.version
             ORDER BY provider, name, version DESC"
        ))?;
        let rows = stmt.query_map([], |r| {
            let row = KeyRow::from_row(r)?;
            let usage = UsageTotals {
                requests: to_u64(r.get::<_, Option<i64>>(14)?.unwrap_or(0)),
                input_tokens: to_u64(r.get::<_, Option<i64>>(15)?.unwrap_or(0)),
                output_tokens: to_u64(r.get::<_, Option<i64>>(16)?.unwrap_or(0)),
                cost_micro_usd: to_u64(r.get::<_, Option<i64>>(17)?.unwrap_or(0)),
                errors: to_u64(r.get::<_, Option<i64>>(18)?.unwrap_or(0)),
            };
            let last_used: Option<i64> = r.get(19)?;
            Ok((row, usage, last_used))
        })?;
        let mut out = Vec::new();
        for item in rows {
            let (row, usage, last_used) = item?;
            let state = row.effective_state(now_ms);
            let created = from_millis(row.created_ms);
            let expires = row.expires_ms.map(from_millis);
            let warnings = if state == KeyState::Active {
                self.inner
                    .policy
                    .warnings(&row.provider, created, expires, now)
            } else {
                Vec::new()
            };
            out.push(KeyListing {
                key: KeyRef {
                    provider: row.provider,
                    name: row.name,
                },
                version: row.version,
                state,
                masked: row.masked,
                created,
                expires,
                grace_until: row
                    .grace_until_ms
                    .filter(|_| state == KeyState::Grace)
                    .map(from_millis),
                bound_hosts: row.bound_hosts,
                auth_scheme: row.auth_scheme,
                master_key_id: row.master_key_id,
                usage,
                last_used: last_used.map(from_millis),
                warnings,
            });
        }
        Ok(out)
    }

    /// Public facts about a key's active version (the WIT `key-info`).
    /// [`Error::NotFound`], [`Error::Revoked`] or [`Error::Expired`] otherwise.
    #[instrument(name = "convergio.keys.info", skip(self))]
    pub fn info(&self, provider: &str, name: &str) -> Result<KeyInfo> {
        let now_ms = to_millis(self.now());
        let conn = self.conn();
        let Some(row) = select_active(&conn, provider, name)? else {
            return Err(no_active_error(&conn, provider, name)?);
        };
        if row.is_expired(now_ms) {
            return Err(Error::Expired {
                provider: provider.to_owned(),
                name: name.to_owned(),
                version: row.version,
            });
        }
        Ok(KeyInfo {
            key: KeyRef {
                provider: row.provider,
                name: row.name,
            },
            version: row.version,
            expires: row.expires_ms.map(from_millis),
            bound_hosts: row.bound_hosts,
            auth_scheme: row.auth_scheme,
        })
    }

    /// The hot path: the active version of a key, decrypted, with the header
    /// to add. Served from a per-process cache after the first call; the cache
    /// is dropped on rotate, revoke and remove, and within
    /// [`VaultOptions::revalidate_every`] of a change by another process.
    #[instrument(name = "convergio.keys.resolve", level = "trace", skip(self))]
    pub fn resolve(&self, provider: &str, name: &str) -> Result<ResolvedKey> {
        let now_ms = to_millis(self.now());
        self.revalidate(now_ms)?;
        let entry = match self.cached(provider, name) {
            Some(entry) => entry,
            None => self.load_active(provider, name, now_ms)?,
        };
        Self::usable(&entry, provider, name, now_ms)
    }

    /// [`Self::resolve`] if it can answer without touching the database (or
    /// the master key): the key is cached and the cache needs no
    /// revalidation now. `None` otherwise; then call [`Self::resolve`],
    /// off the async workers. This is what lets an async caller skip a
    /// thread hand-off on the hot path.
    pub fn resolve_cached(&self, provider: &str, name: &str) -> Option<Result<ResolvedKey>> {
        let now_ms = to_millis(self.now());
        let last = self.inner.last_check_ms.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) >= self.inner.revalidate_ms {
            return None;
        }
        let entry = self.cached(provider, name)?;
        Some(Self::usable(&entry, provider, name, now_ms))
    }

    fn cached(&self, provider: &str, name: &str) -> Option<Arc<CachedKey>> {
        self.inner
            .cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(provider)
            .and_then(|names| names.get(name))
            .cloned()
    }

    fn usable(entry: &CachedKey, provider: &str, name: &str, now_ms: i64) -> Result<ResolvedKey> {
        if entry.expires_ms.is_some_and(|e| e <= now_ms) {
            return Err(Error::Expired {
                provider: provider.to_owned(),
                name: name.to_owned(),
                version: entry.version,
            });
        }
        Ok(entry.resolved())
    }

    /// A specific version: the active one, or one in its grace period (not
    /// cached). Revoked and past-grace versions are [`Error::Revoked`].
    #[instrument(name = "convergio.keys.resolve_version", skip(self))]
    pub fn resolve_version(&self, provider: &str, name: &str, version: u32) -> Result<ResolvedKey> {
        let now_ms = to_millis(self.now());
        let row = {
            let conn = self.conn();
            conn.query_row(
                &format!("SELECT {KEY_COLUMNS} FROM keys WHERE provider = ?1 AND name = ?2 AND version = ?3"),
                params![provider, name, version],
                KeyRow::from_row,
            )
            .optional()?
        };
        let Some(row) = row else {
            return Err(Error::VersionNotFound {
                provider: provider.to_owned(),
                name: name.to_owned(),
                version,
            });
        };
        if row.effective_state(now_ms) == KeyState::Revoked {
            return Err(Error::Revoked {
                provider: provider.to_owned(),
                name: name.to_owned(),
                version: Some(version),
            });
        }
        if row.is_expired(now_ms) {
            return Err(Error::Expired {
                provider: provider.to_owned(),
                name: name.to_owned(),
                version,
            });
        }
        Ok(self.decrypt(&row)?.resolved())
    }

    /// Add what one or more requests with a key version used. Counted per UTC
    /// day, so [`Vault::usage`] can filter by date.
    #[instrument(
        name = "convergio.keys.record_usage",
        level = "trace",
        skip(self, usage)
    )]
    pub fn record_usage(
        &self,
        provider: &str,
        name: &str,
        version: u32,
        usage: &UsageDelta,
    ) -> Result<()> {
        let now_ms = to_millis(self.now());
        self.conn()
            .prepare_cached(
                "INSERT INTO key_usage (provider, name, version, day, requests, input_tokens,
                                    output_tokens, cost_micro_usd, errors, last_used_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT (provider, name, version, day) DO UPDATE SET
                 requests = requests + excluded.requests,
                 input_tokens = input_tokens + excluded.input_tokens,
                 output_tokens = output_tokens + excluded.output_tokens,
                 cost_micro_usd = cost_micro_usd + excluded.cost_micro_usd,
                 errors = errors + excluded.errors,
                 last_used_ms = MAX(last_used_ms, excluded.last_used_ms)",
            )?
            .execute(params![
                provider,
                name,
                version,
                day_of(now_ms),
                to_i64(usage.requests),
                to_i64(usage.input_tokens),
                to_i64(usage.output_tokens),
                to_i64(usage.cost_micro_usd),
                to_i64(usage.errors),
                now_ms
            ])?;
        Ok(())
    }

    /// Usage per key version, for one provider or all, since a date (rounded
    /// down to its UTC day) or ever.
    #[instrument(name = "convergio.keys.usage", skip(self))]
    pub fn usage(
        &self,
        provider: Option<&str>,
        since: Option<SystemTime>,
    ) -> Result<Vec<UsageRow>> {
        let since_day = since.map_or(i64::MIN, |s| day_of(to_millis(s)));
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT provider, name, version, SUM(requests), SUM(input_tokens), SUM(output_tokens),
                    SUM(cost_micro_usd), SUM(errors), MAX(last_used_ms)
             FROM key_usage
             WHERE (?1 IS NULL OR provider = ?1) AND day >= ?2
             GROUP BY provider, name, version
             ORDER BY provider, name, version",
        )?;
        let rows = stmt.query_map(params![provider, since_day], |r| {
            Ok(UsageRow {
                key: KeyRef {
                    provider: r.get(0)?,
                    name: r.get(1)?,
                },
                version: r.get(2)?,
                totals: UsageTotals {
                    requests: to_u64(r.get(3)?),
                    input_tokens: to_u64(r.get(4)?),
                    output_tokens: to_u64(r.get(5)?),
                    cost_micro_usd: to_u64(r.get(6)?),
                    errors: to_u64(r.get(7)?),
                },
                last_used: r.get::<_, Option<i64>>(8)?.map(from_millis),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Usage summed over versions, per key (a convenience over [`Vault::usage`]).
    pub fn usage_by_key(
        &self,
        provider: Option<&str>,
        since: Option<SystemTime>,
    ) -> Result<Vec<(KeyRef, UsageTotals)>> {
        let mut out: Vec<(KeyRef, UsageTotals)> = Vec::new();
        for row in self.usage(provider, since)? {
            match out.last_mut() {
                Some((key, totals)) if *key == row.key => totals.add(&row.totals),
                _ => out.push((row.key, row.totals)),
            }
        }
        Ok(out)
    }

    /// Pick up a new master key version from the source (Azure Key Vault: the
    /// key's newest version) and re-wrap every data key that is wrapped with
    /// another version. Runs while the vault serves; cached keys stay valid.
    #[instrument(name = "convergio.keys.rotate_master", skip(self))]
    pub fn rotate_master(&self) -> Result<MasterRotation> {
        let source = self.source();
        source.refresh()?;
        self.rewrap_with(source.as_ref())
    }

    /// [`Vault::rotate_master`] only when it has something to do: ask the
    /// source for its newest version, and re-wrap if the vault's check value
    /// or any data key is wrapped with another version. `None` when
    /// everything is wrapped with the current version already: no write, so
    /// it is cheap to call periodically (see [`Vault::maintain`]).
    ///
    /// The decision comes from the database, not from whether
    /// [`MasterKeySource::refresh`] saw a change in this call, so a re-wrap
    /// that failed once (the KMS was unreachable) is retried on the next call.
    #[instrument(name = "convergio.keys.refresh_master", skip(self))]
    pub fn refresh_master(&self) -> Result<Option<MasterRotation>> {
        let source = self.source();
        source.refresh()?;
        let current = source.current_key_id()?;
        let stale = {
            let conn = self.conn();
            let check_id = store::meta_get(&conn, META_CHECK_KEY_ID)?;
            let other: i64 = conn.query_row(
                "SELECT COUNT(*) FROM keys WHERE master_key_id != ?1 AND length(wrapped_key) > 0",
                [&current],
                |r| r.get(0),
            )?;
            check_id.as_deref() != Some(current.as_bytes()) || other > 0
        };
        if !stale {
            return Ok(None);
        }
        self.rewrap_with(source.as_ref()).map(Some)
    }

    /// Re-wrap everything not wrapped with `source`'s current version.
    fn rewrap_with(&self, source: &dyn MasterKeySource) -> Result<MasterRotation> {
        let mut conn = self.conn();
        let rotation = rewrap_all(&mut conn, source, source)?;
        if rotation.rewrapped > 0 {
            tracing::info!(key_id = %rotation.key_id, rewrapped = rotation.rewrapped, "master key rotated");
        }
        Ok(rotation)
    }

    /// Move the vault to another master key (for example a new key file):
    /// every data key is unwrapped with the current source and wrapped with
    /// `new_source`, in one transaction; then the vault uses `new_source`.
    #[instrument(name = "convergio.keys.change_master", skip_all)]
    pub fn change_master(&self, new_source: Arc<dyn MasterKeySource>) -> Result<MasterRotation> {
        let old = self.source();
        let mut conn = self.conn();
        let rotation = rewrap_all(&mut conn, old.as_ref(), new_source.as_ref())?;
        *self
            .inner
            .source
            .write()
            .unwrap_or_else(PoisonError::into_inner) = new_source;
        drop(conn);
        tracing::info!(key_id = %rotation.key_id, rewrapped = rotation.rewrapped, "master key changed");
        Ok(rotation)
    }

    /// Drop the cache if another connection changed the database since the
    /// last check (at most once per `revalidate_every`).
    fn revalidate(&self, now_ms: i64) -> Result<()> {
        let last = self.inner.last_check_ms.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) < self.inner.revalidate_ms {
            return Ok(());
        }
        self.inner.last_check_ms.store(now_ms, Ordering::Relaxed);
        let version: i64 = self
            .conn()
            .pragma_query_value(None, "data_version", |r| r.get(0))?;
        if self.inner.data_version.swap(version, Ordering::AcqRel) != version {
            self.invalidate_all();
        }
        Ok(())
    }

    fn load_active(&self, provider: &str, name: &str, now_ms: i64) -> Result<Arc<CachedKey>> {
        let generation = self.inner.generation.load(Ordering::Acquire);
        let row = {
            let conn = self.conn();
            match select_active(&conn, provider, name)? {
                Some(row) => row,
                None => return Err(no_active_error(&conn, provider, name)?),
            }
        };
        if row.is_expired(now_ms) {
            return Err(Error::Expired {
                provider: provider.to_owned(),
                name: name.to_owned(),
                version: row.version,
            });
        }
        let entry = Arc::new(self.decrypt(&row)?);
        let mut cache = self
            .inner
            .cache
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        // A rotation that committed while we decrypted must not be undone by
        // caching the version it replaced.
        if self.inner.generation.load(Ordering::Acquire) == generation {
            cache
                .entry(provider.to_owned())
                .or_default()
                .insert(name.to_owned(), Arc::clone(&entry));
        }
        Ok(entry)
    }

    fn decrypt(&self, row: &KeyRow) -> Result<CachedKey> {
        let label = || row_label(&row.provider, &row.name, row.version);
        let wrapped = WrappedKey {
            key_id: row.master_key_id.clone(),
            bytes: row.wrapped_key.clone(),
        };
        let data_key = self
            .source()
            .unwrap(
                &wrapped,
                &data_key_context(&row.provider, &row.name, row.version),
            )
            .map_err(|e| match e {
                Error::Integrity { .. } => Error::Integrity {
                    what: format!("the data key of {}", label()),
                },
                other => other,
            })?;
        let aad = secret_context(
            &row.provider,
            &row.name,
            row.version,
            row.auth_scheme,
            row.expires_ms,
            &row.bound_hosts,
        );
        let plain = crypto::open(&data_key, &row.nonce, &aad, &row.ciphertext)
            .ok_or_else(|| Error::Integrity { what: label() })?;
        let secret = std::str::from_utf8(&plain).map_err(|_| Error::Integrity { what: label() })?;
        let bound_origins = row
            .bound_hosts
            .iter()
            .map(String::as_str)
            .map(BoundOrigin::parse_canonical)
            .collect::<Result<Vec<_>>>()?;
        Ok(CachedKey {
            version: row.version,
            header_name: row.auth_scheme.header_name(),
            header_value: row.auth_scheme.header_value(secret),
            bound_origins: bound_origins.into(),
            expires_ms: row.expires_ms,
        })
    }
}

/// Verify (or, in a new vault, create) the master key check value.
fn check_master(conn: &Connection, source: &dyn MasterKeySource) -> Result<()> {
    let key_id = store::meta_get(conn, META_CHECK_KEY_ID)?;
    let wrapped = store::meta_get(conn, META_CHECK_WRAPPED)?;
    let sealed = store::meta_get(conn, META_CHECK_SEALED)?;
    match (key_id, wrapped, sealed) {
        (Some(key_id), Some(wrapped), Some(sealed)) => {
            let key_id = String::from_utf8_lossy(&key_id).into_owned();
            let check_key = source
                .unwrap(
                    &WrappedKey {
                        key_id: key_id.clone(),
                        bytes: wrapped,
                    },
                    CHECK_CONTEXT,
                )
                .map_err(|e| match e {
                    Error::Integrity { .. } => Error::MasterKeyMismatch {
                        vault_key_id: key_id.clone(),
                        source_key_id: source
                            .current_key_id()
                            .unwrap_or_else(|_| "unknown".to_owned()),
                        source_desc: source.describe(),
                    },
                    other => other,
                })?;
            match crypto::open_combined(&check_key, CHECK_CONTEXT, &sealed) {
                Some(plain) if plain.as_slice() == CHECK_PLAINTEXT => Ok(()),
                _ => Err(Error::Integrity {
                    what: "the vault check value".to_owned(),
                }),
            }
        }
        _ => write_check(conn, source),
    }
}

fn write_check(conn: &Connection, source: &dyn MasterKeySource) -> Result<()> {
    let check_key = DataKey::generate()?;
    let wrapped = source.wrap(&check_key, CHECK_CONTEXT)?;
    let sealed = crypto::seal_combined(&check_key, CHECK_CONTEXT, CHECK_PLAINTEXT)?;
    store::meta_set(conn, META_CHECK_KEY_ID, wrapped.key_id.as_bytes())?;
    store::meta_set(conn, META_CHECK_WRAPPED, &wrapped.bytes)?;
    store::meta_set(conn, META_CHECK_SEALED, &sealed)?;
    Ok(())
}

/// Re-wrap every data key not yet wrapped with `to`'s current key, in one
/// transaction. `from` unwraps (the same source for a version rotation).
fn rewrap_all(
    conn: &mut Connection,
    from: &dyn MasterKeySource,
    to: &dyn MasterKeySource,
) -> Result<MasterRotation> {
    let target = to.current_key_id()?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let rows: Vec<(String, String, u32, String, Vec<u8>)> = {
        let mut stmt = tx.prepare(
            "SELECT provider, name, version, master_key_id, wrapped_key FROM keys
             WHERE master_key_id != ?1 AND length(wrapped_key) > 0",
        )?;
        let rows = stmt.query_map([&target], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut rewrapped = 0;
    for (provider, name, version, key_id, bytes) in rows {
        let context = data_key_context(&provider, &name, version);
        let data_key = from.unwrap(&WrappedKey { key_id, bytes }, &context)?;
        let new = to.wrap(&data_key, &context)?;
        tx.execute(
            "UPDATE keys SET wrapped_key = ?4, master_key_id = ?5
             WHERE provider = ?1 AND name = ?2 AND version = ?3",
            params![provider, name, version, new.bytes, new.key_id],
        )?;
        rewrapped += 1;
    }
    let check_id = store::meta_get(&tx, META_CHECK_KEY_ID)?
        .map(|id| String::from_utf8_lossy(&id).into_owned());
    if check_id.as_deref() != Some(target.as_str()) {
        let check_id = check_id.unwrap_or_default();
        let wrapped = store::meta_get(&tx, META_CHECK_WRAPPED)?.unwrap_or_default();
        let check_key = from.unwrap(
            &WrappedKey {
                key_id: check_id,
                bytes: wrapped,
            },
            CHECK_CONTEXT,
        )?;
        let new = to.wrap(&check_key, CHECK_CONTEXT)?;
        store::meta_set(&tx, META_CHECK_KEY_ID, new.key_id.as_bytes())?;
        store::meta_set(&tx, META_CHECK_WRAPPED, &new.bytes)?;
    }
    tx.commit()?;
    Ok(MasterRotation {
        key_id: target,
        rewrapped,
    })
}

struct SealedRow {
    masked: String,
    wrapped: WrappedKey,
    nonce: [u8; crypto::NONCE_LEN],
    ciphertext: Vec<u8>,
}

#[allow(clippy::too_many_arguments)]
fn seal_row(
    source: &dyn MasterKeySource,
    provider: &str,
    name: &str,
    version: u32,
    secret: &SecretString,
    scheme: AuthScheme,
    expires_ms: Option<i64>,
    hosts: &[String],
) -> Result<SealedRow> {
    let data_key = DataKey::generate()?;
    let aad = secret_context(provider, name, version, scheme, expires_ms, hosts);
    let (nonce, ciphertext) = crypto::seal(&data_key, &aad, secret.expose_secret().as_bytes())?;
    let wrapped = source.wrap(&data_key, &data_key_context(provider, name, version))?;
    Ok(SealedRow {
        masked: mask(secret.expose_secret()),
        wrapped,
        nonce,
        ciphertext,
    })
}

#[allow(clippy::too_many_arguments)]
fn insert_row(
    conn: &Connection,
    provider: &str,
    name: &str,
    version: u32,
    created_ms: i64,
    expires_ms: Option<i64>,
    scheme: AuthScheme,
    hosts: &[String],
    sealed: &SealedRow,
) -> Result<()> {
    let hosts_json =
        serde_json::to_string(hosts).map_err(|e| Error::invalid("bound host", e.to_string()))?;
    conn.execute(
        "INSERT INTO keys (provider, name, version, state, created_ms, expires_ms, grace_until_ms,
                           auth_scheme, bound_hosts, masked, master_key_id, wrapped_key, nonce, ciphertext)
         VALUES (?1, ?2, ?3, 'active', ?4, ?5, NULL, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            provider,
            name,
            version,
            created_ms,
            expires_ms,
            scheme.as_str(),
            hosts_json,
            sealed.masked,
            sealed.wrapped.key_id,
            sealed.wrapped.bytes,
            sealed.nonce.as_slice(),
            sealed.ciphertext
        ],
    )?;
    Ok(())
}

fn revoke_row(conn: &Connection, provider: &str, name: &str, version: u32) -> Result<usize> {
    Ok(conn.execute(
        "UPDATE keys SET state = 'revoked', grace_until_ms = NULL,
                wrapped_key = x'', nonce = x'', ciphertext = x''
         WHERE provider = ?1 AND name = ?2 AND version = ?3",
        params![provider, name, version],
    )?)
}

fn select_active(conn: &Connection, provider: &str, name: &str) -> Result<Option<KeyRow>> {
    // Made once, kept prepared: it runs on every model call.
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "SELECT {KEY_COLUMNS} FROM keys WHERE provider = ?1 AND name = ?2 AND state = 'active'"
        )
    });
    Ok(conn
        .prepare_cached(&SQL)?
        .query_row(params![provider, name], KeyRow::from_row)
        .optional()?)
}

/// The error for a key without an active version: not found, or revoked.
fn no_active_error(conn: &Connection, provider: &str, name: &str) -> Result<Error> {
    let any: i64 = conn.query_row(
        "SELECT COUNT(*) FROM keys WHERE provider = ?1 AND name = ?2",
        params![provider, name],
        |r| r.get(0),
    )?;
    Ok(if any == 0 {
        Error::not_found(provider, name)
    } else {
        Error::Revoked {
            provider: provider.to_owned(),
            name: name.to_owned(),
            version: None,
        }
    })
}

fn next_version(conn: &Connection, provider: &str, name: &str) -> Result<u32> {
    let max: Option<u32> = conn.query_row(
        // Usage rows count too, so a key removed and added again does not
        // reuse a version number that has usage history.
        "SELECT MAX(v) FROM (
             SELECT MAX(version) AS v FROM keys WHERE provider = ?1 AND name = ?2
             UNION ALL
             SELECT MAX(version) AS v FROM key_usage WHERE provider = ?1 AND name = ?2
         )",
        params![provider, name],
        |r| r.get(0),
    )?;
    Ok(max.map_or(1, |v| v.saturating_add(1)))
}

/// The canonical origins of operator-written bindings, without repeats.
fn normalize_bindings(bindings: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::with_capacity(bindings.len());
    for binding in bindings {
        for origin in BoundOrigin::parse_binding(binding)? {
            let origin = origin.to_string();
            if !out.contains(&origin) {
                out.push(origin);
            }
        }
    }
    if out.is_empty() {
        return Err(Error::invalid(
            "bound origins",
            "a key must be bound to at least one origin it may be sent to, e.g. https://api.openai.com",
        ));
    }
    Ok(out)
}

/// Schema 1 stored bare host names, which let a key go to any scheme and
/// port of its host. Give each row the origins its hosts mean now (a bare
/// host is `https` on port 443; a loopback host `http` or `https` on any
/// port) and re-seal its secret under them, since the origins are part of
/// the secret's associated data. One transaction: a failure (a master key
/// that cannot be reached) leaves the file as it was, for the next open.
///
/// A row whose secret fails authentication (it was tampered with) gets its
/// origins but keeps its ciphertext: it stays refused, as before.
fn migrate_bare_hosts(conn: &mut Connection, source: &dyn MasterKeySource) -> Result<()> {
    let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found != store::SCHEMA_BARE_HOSTS {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Another process may have migrated since the check above.
    let found: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found != store::SCHEMA_BARE_HOSTS {
        return Ok(());
    }
    let rows: Vec<KeyRow> = {
        let mut stmt = tx.prepare(&format!("SELECT {KEY_COLUMNS} FROM keys"))?;
        let rows = stmt.query_map([], KeyRow::from_row)?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut resealed = 0usize;
    for row in &rows {
        let origins = normalize_bindings(&row.bound_hosts)?;
        let origins_json = serde_json::to_string(&origins)
            .map_err(|e| Error::invalid("bound origins", e.to_string()))?;
        let label = row_label(&row.provider, &row.name, row.version);
        let resealed_row = if row.ciphertext.is_empty() {
            None
        } else {
            reseal(source, row, &origins)?
        };
        match resealed_row {
            Some((nonce, ciphertext)) => {
                tx.execute(
                    "UPDATE keys SET bound_hosts = ?4, nonce = ?5, ciphertext = ?6
                     WHERE provider = ?1 AND name = ?2 AND version = ?3",
                    params![
                        row.provider,
                        row.name,
                        row.version,
                        origins_json,
                        nonce.as_slice(),
                        ciphertext
                    ],
                )?;
                resealed += 1;
            }
            None => {
                if !row.ciphertext.is_empty() {
                    tracing::warn!(key = %label, "failed authentication while its bound hosts were migrated to origins; it stays refused");
                }
                tx.execute(
                    "UPDATE keys SET bound_hosts = ?4
                     WHERE provider = ?1 AND name = ?2 AND version = ?3",
                    params![row.provider, row.name, row.version, origins_json],
                )?;
            }
        }
        tracing::info!(key = %label, from = %row.bound_hosts.join(", "), to = %origins.join(", "), "bound hosts migrated to origins");
    }
    tx.pragma_update(None, "user_version", store::SCHEMA_VERSION)?;
    tx.commit()?;
    tracing::info!(
        versions = rows.len(),
        resealed,
        "key vault migrated: keys are bound to origins (scheme, host, port)"
    );
    Ok(())
}

/// The secret of `row`, sealed again with the same data key under
/// `origins`; `None` if it fails authentication under its stored hosts.
fn reseal(
    source: &dyn MasterKeySource,
    row: &KeyRow,
    origins: &[String],
) -> Result<Option<([u8; crypto::NONCE_LEN], Vec<u8>)>> {
    let wrapped = WrappedKey {
        key_id: row.master_key_id.clone(),
        bytes: row.wrapped_key.clone(),
    };
    let data_key = match source.unwrap(
        &wrapped,
        &data_key_context(&row.provider, &row.name, row.version),
    ) {
        Ok(key) => key,
        Err(Error::Integrity { .. }) => return Ok(None),
        Err(other) => return Err(other),
    };
    let context = |hosts: &[String]| {
        secret_context(
            &row.provider,
            &row.name,
            row.version,
            row.auth_scheme,
            row.expires_ms,
            hosts,
        )
    };
    let Some(plain) = crypto::open(
        &data_key,
        &row.nonce,
        &context(&row.bound_hosts),
        &row.ciphertext,
    ) else {
        return Ok(None);
    };
    crypto::seal(&data_key, &context(origins), &plain).map(Some)
}

fn check_expiry(expires: Option<SystemTime>, now_ms: i64) -> Result<Option<i64>> {
    match expires.map(to_millis) {
        Some(e) if e <= now_ms => Err(Error::invalid("expiry", "the date is in the past")),
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret as _;

    use super::*;
    use crate::StaticSource;

    /// The tables of schema 1, as that version created them.
    const SCHEMA_1: &str = "
        CREATE TABLE vault_meta (name TEXT PRIMARY KEY, value BLOB NOT NULL) STRICT;
        CREATE TABLE keys (
            provider TEXT NOT NULL, name TEXT NOT NULL, version INTEGER NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('active', 'grace', 'revoked')),
            created_ms INTEGER NOT NULL, expires_ms INTEGER, grace_until_ms INTEGER,
            auth_scheme TEXT NOT NULL, bound_hosts TEXT NOT NULL, masked TEXT NOT NULL,
            master_key_id TEXT NOT NULL, wrapped_key BLOB NOT NULL, nonce BLOB NOT NULL,
            ciphertext BLOB NOT NULL,
            PRIMARY KEY (provider, name, version)
        ) STRICT;
        CREATE UNIQUE INDEX keys_one_active ON keys (provider, name) WHERE state = 'active';
        CREATE TABLE key_usage (
            provider TEXT NOT NULL, name TEXT NOT NULL, version INTEGER NOT NULL,
            day INTEGER NOT NULL, requests INTEGER NOT NULL DEFAULT 0,
            input_tokens INTEGER NOT NULL DEFAULT 0, output_tokens INTEGER NOT NULL DEFAULT 0,
            cost_micro_usd INTEGER NOT NULL DEFAULT 0, errors INTEGER NOT NULL DEFAULT 0,
            last_used_ms INTEGER NOT NULL,
            PRIMARY KEY (provider, name, version, day)
        ) STRICT;
        PRAGMA user_version = 1;
    ";

    /// Seal and insert one version the way schema 1 did: under bare hosts.
    fn add_v1(
        conn: &Connection,
        source: &dyn MasterKeySource,
        (provider, name, version): (&str, &str, u32),
        secret: &str,
        hosts: &[&str],
    ) {
        let hosts: Vec<String> = hosts.iter().map(|h| (*h).to_owned()).collect();
        let secret = SecretString::from(secret.to_owned());
        let sealed = seal_row(
            source,
            provider,
            name,
            version,
            &secret,
            AuthScheme::Bearer,
            None,
            &hosts,
        )
        .unwrap();
        insert_row(
            conn,
            provider,
            name,
            version,
            0,
            None,
            AuthScheme::Bearer,
            &hosts,
            &sealed,
        )
        .unwrap();
    }

    #[test]
    fn a_schema_1_vault_opens_with_its_hosts_as_origins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault.db");
        let master = DataKey::from_slice(&[9; crate::KEY_LEN], "test").unwrap();
        let source: Arc<dyn MasterKeySource> = Arc::new(StaticSource::new(master, "test key"));
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(SCHEMA_1).unwrap();
            write_check(&conn, source.as_ref()).unwrap();
            let s = source.as_ref();
            add_v1(
                &conn,
                s,
                ("openai", "default", 1),
                "sk-remote-0123456789",
                &["api.openai.com"],
            );
            add_v1(
                &conn,
                s,
                ("azure", "default", 1),
                "az-0123456789abcdef",
                &["*.openai.azure.com"],
            );
            add_v1(
                &conn,
                s,
                ("local", "default", 1),
                "local-0123456789abc",
                &["127.0.0.1"],
            );
            // A version revoked under schema 1: no sealed material left.
            add_v1(
                &conn,
                s,
                ("openai", "old", 1),
                "sk-gone-0123456789ab",
                &["api.openai.com"],
            );
            revoke_row(&conn, "openai", "old", 1).unwrap();
            // A row tampered with before the migration: re-pointed at another host.
            add_v1(
                &conn,
                s,
                ("openai", "moved", 1),
                "sk-moved-0123456789",
                &["api.openai.com"],
            );
            conn.execute(
                "UPDATE keys SET bound_hosts = '[\"evil.example.com\"]' WHERE name = 'moved'",
                [],
            )
            .unwrap();
        }

        let vault = Vault::open(&path, Arc::clone(&source)).unwrap();
        let remote = vault.resolve("openai", "default").unwrap();
        assert_eq!(
            remote.header_value.expose_secret(),
            "Bearer sk-remote-0123456789"
        );
        assert!(remote.allows("https", "api.openai.com", 443));
        assert!(!remote.allows("http", "api.openai.com", 80));
        assert!(!remote.allows("http", "api.openai.com", 443));
        assert!(!remote.allows("https", "api.openai.com", 8443));
        let azure = vault.resolve("azure", "default").unwrap();
        assert!(azure.allows("https", "mine.openai.azure.com", 443));
        assert!(!azure.allows("http", "mine.openai.azure.com", 80));
        let local = vault.resolve("local", "default").unwrap();
        assert!(local.allows("http", "127.0.0.1", 11434));
        assert!(local.allows("https", "127.0.0.1", 8443));
        assert!(!local.allows("http", "10.0.0.1", 11434));
        assert!(matches!(
            vault.resolve("openai", "moved"),
            Err(Error::Integrity { .. })
        ));

        let listed: Vec<(String, Vec<String>)> = vault
            .list()
            .unwrap()
            .into_iter()
            .map(|k| (k.key.to_string(), k.bound_hosts))
            .collect();
        let origins = |key: &str| {
            listed
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, o)| o.clone())
                .unwrap()
        };
        assert_eq!(origins("openai/default"), ["https://api.openai.com:443"]);
        assert_eq!(origins("openai/old"), ["https://api.openai.com:443"]);
        assert_eq!(origins("openai/moved"), ["https://evil.example.com:443"]);
        assert_eq!(origins("azure/default"), ["https://*.openai.azure.com:443"]);
        assert_eq!(
            origins("local/default"),
            ["http://127.0.0.1:*", "https://127.0.0.1:*"]
        );
        drop(vault);

        // Migrated once: the file is schema 2 and opens again unchanged.
        let conn = Connection::open(&path).unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, store::SCHEMA_VERSION);
        drop(conn);
        let vault = Vault::open(&path, source).unwrap();
        assert!(
            vault
                .resolve("openai", "default")
                .unwrap()
                .allows("https", "api.openai.com", 443)
        );
    }

    #[test]
    fn a_schema_1_vault_is_not_migrated_with_the_wrong_master_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault.db");
        let right: Arc<dyn MasterKeySource> = Arc::new(StaticSource::new(
            DataKey::from_slice(&[1; crate::KEY_LEN], "test").unwrap(),
            "right",
        ));
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(SCHEMA_1).unwrap();
            write_check(&conn, right.as_ref()).unwrap();
            add_v1(
                &conn,
                right.as_ref(),
                ("openai", "default", 1),
                "sk-0123456789abcdef",
                &["api.openai.com"],
            );
        }
        let wrong: Arc<dyn MasterKeySource> = Arc::new(StaticSource::new(
            DataKey::from_slice(&[2; crate::KEY_LEN], "test").unwrap(),
            "wrong",
        ));
        assert!(matches!(
            Vault::open(&path, wrong),
            Err(Error::MasterKeyMismatch { .. })
        ));
        let conn = Connection::open(&path).unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, store::SCHEMA_BARE_HOSTS, "left for the right key");
        drop(conn);
        let vault = Vault::open(&path, right).unwrap();
        assert!(
            vault
                .resolve("openai", "default")
                .unwrap()
                .allows("https", "api.openai.com", 443)
        );
    }
}
