//! The SQLite schema and the row type. Secrets are stored only as
//! XChaCha20-Poly1305 ciphertext; revoked versions have their ciphertext and
//! wrapped data key wiped, and `secure_delete` overwrites freed pages.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension as _, Row};

use crate::error::{Error, Result};
use crate::model::{AuthScheme, KeyState};

/// Highest schema version this build reads and writes.
///
/// - 1: `bound_hosts` held bare host names, which matched any scheme and port.
/// - 2: `bound_hosts` holds origins, `scheme://host:port` (port may be `*`).
///   [`crate::Vault::open`] migrates a version 1 file (it needs the master
///   key to re-seal each secret under its new origins).
pub(crate) const SCHEMA_VERSION: i64 = 2;

/// The schema version whose bound hosts [`crate::Vault`] migrates to origins.
pub(crate) const SCHEMA_BARE_HOSTS: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS vault_meta (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
) STRICT;

CREATE TABLE IF NOT EXISTS keys (
    provider       TEXT    NOT NULL,
    name           TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    state          TEXT    NOT NULL CHECK (state IN ('active', 'grace', 'revoked')),
    created_ms     INTEGER NOT NULL,
    expires_ms     INTEGER,
    grace_until_ms INTEGER,
    auth_scheme    TEXT    NOT NULL,
    bound_hosts    TEXT    NOT NULL,
    masked         TEXT    NOT NULL,
    master_key_id  TEXT    NOT NULL,
    wrapped_key    BLOB    NOT NULL,
    nonce          BLOB    NOT NULL,
    ciphertext     BLOB    NOT NULL,
    PRIMARY KEY (provider, name, version)
) STRICT;

CREATE UNIQUE INDEX IF NOT EXISTS keys_one_active ON keys (provider, name) WHERE state = 'active';

CREATE TABLE IF NOT EXISTS key_usage (
    provider       TEXT    NOT NULL,
    name           TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    day            INTEGER NOT NULL,
    requests       INTEGER NOT NULL DEFAULT 0,
    input_tokens   INTEGER NOT NULL DEFAULT 0,
    output_tokens  INTEGER NOT NULL DEFAULT 0,
    cost_micro_usd INTEGER NOT NULL DEFAULT 0,
    errors         INTEGER NOT NULL DEFAULT 0,
    last_used_ms   INTEGER NOT NULL,
    PRIMARY KEY (provider, name, version, day)
) STRICT;
";

/// Open (creating if needed) the vault database at `path` with mode 0600.
pub(crate) fn open(path: &Path) -> Result<Connection> {
    create_private(path)?;
    let mut conn = match convergio_sqlite::open_wal(path, convergio_sqlite::Synchronous::Normal) {
        Ok(conn) => conn,
        Err(convergio_sqlite::OpenError::Sqlite(e)) => return Err(e.into()),
        // The vault works in any journal mode; WAL only lets readers and
        // the writer overlap.
        Err(convergio_sqlite::OpenError::NotWal { conn, .. }) => *conn,
    };
    conn.pragma_update(None, "secure_delete", "ON")?;
    let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(Error::Schema {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    // A new file gets the current version; an older one keeps its version
    // until the vault migrates it.
    let schema = if found == 0 {
        format!("{SCHEMA}\nPRAGMA user_version = {SCHEMA_VERSION};")
    } else {
        SCHEMA.to_owned()
    };
    convergio_sqlite::create_schema(&mut conn, &schema)?;
    Ok(conn)
}

fn create_private(path: &Path) -> Result<()> {
    if path.exists() {
        return Ok(());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path).map_err(|source| Error::VaultFile {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(())
}

pub(crate) fn meta_get(conn: &Connection, name: &str) -> Result<Option<Vec<u8>>> {
    Ok(conn
        .query_row(
            "SELECT value FROM vault_meta WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .optional()?)
}

pub(crate) fn meta_set(conn: &Connection, name: &str, value: &[u8]) -> Result<()> {
    conn.execute(
        "INSERT INTO vault_meta (name, value) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        rusqlite::params![name, value],
    )?;
    Ok(())
}

/// All columns of one key version.
pub(crate) struct KeyRow {
    pub provider: String,
    pub name: String,
    pub version: u32,
    pub state: KeyState,
    pub created_ms: i64,
    pub expires_ms: Option<i64>,
    pub grace_until_ms: Option<i64>,
    pub auth_scheme: AuthScheme,
    /// Origins in canonical form (`https://api.openai.com:443`), as sealed.
    pub bound_hosts: Vec<String>,
    pub masked: String,
    pub master_key_id: String,
    pub wrapped_key: Vec<u8>,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

pub(crate) const KEY_COLUMNS: &str = "provider, name, version, state, created_ms, expires_ms, grace_until_ms, \
     auth_scheme, bound_hosts, masked, master_key_id, wrapped_key, nonce, ciphertext";

impl KeyRow {
    pub(crate) fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        let state: String = r.get(3)?;
        let scheme: String = r.get(7)?;
        let hosts: String = r.get(8)?;
        let bad = |col: usize, msg: String| {
            rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Text, msg.into())
        };
        Ok(Self {
            provider: r.get(0)?,
            name: r.get(1)?,
            version: r.get(2)?,
            state: KeyState::parse(&state),
            created_ms: r.get(4)?,
            expires_ms: r.get(5)?,
            grace_until_ms: r.get(6)?,
            auth_scheme: scheme.parse().map_err(|e: Error| bad(7, e.to_string()))?,
            bound_hosts: serde_json::from_str(&hosts).map_err(|e| bad(8, e.to_string()))?,
            masked: r.get(9)?,
            master_key_id: r.get(10)?,
            wrapped_key: r.get(11)?,
            nonce: r.get(12)?,
            ciphertext: r.get(13)?,
        })
    }

    /// The state at `now_ms`: a grace version past its grace period is revoked.
    pub(crate) fn effective_state(&self, now_ms: i64) -> KeyState {
        match (self.state, self.grace_until_ms) {
            (KeyState::Grace, Some(until)) if until <= now_ms => KeyState::Revoked,
            (state, _) => state,
        }
    }

    pub(crate) fn is_expired(&self, now_ms: i64) -> bool {
        self.expires_ms.is_some_and(|e| e <= now_ms)
    }
}

/// Days since the Unix epoch (UTC) of a time in milliseconds.
pub(crate) fn day_of(ms: i64) -> i64 {
    ms.div_euclid(86_400_000)
}

pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}
