//! The crate's error type. No message ever contains a secret: variants carry
//! key names, paths, versions and key ids, never key material.

use std::path::PathBuf;

/// Result with the vault's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the vault can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The vault was sealed with a different master key than the one given.
    #[error(
        "the master key does not match this vault (key id {vault_key_id}); {source_desc} has key id {source_key_id}"
    )]
    MasterKeyMismatch {
        /// Id of the master key the vault's data keys are wrapped with.
        vault_key_id: String,
        /// Id of the master key that was offered.
        source_key_id: String,
        /// Where the offered key came from (`key file /path`, `environment variable X`).
        source_desc: String,
    },

    /// Stored ciphertext failed authentication: it was modified, truncated, or
    /// moved from another row.
    #[error(
        "integrity check failed for {what}: the stored data was modified or moved from another row"
    )]
    Integrity {
        /// What failed (`key openai/default version 2`, `the vault check value`).
        what: String,
    },

    /// No such key.
    #[error("no key {provider}/{name} is stored")]
    NotFound {
        /// Provider name.
        provider: String,
        /// Key name.
        name: String,
    },

    /// No such version of a key.
    #[error("key {provider}/{name} has no version {version}")]
    VersionNotFound {
        /// Provider name.
        provider: String,
        /// Key name.
        name: String,
        /// The version asked for.
        version: u32,
    },

    /// The key (its active version) is past its expiry date.
    #[error("key {provider}/{name} version {version} expired")]
    Expired {
        /// Provider name.
        provider: String,
        /// Key name.
        name: String,
        /// The expired version.
        version: u32,
    },

    /// The key, or the version asked for, was revoked (or its grace period ended).
    #[error("key {provider}/{name} is revoked{}", version.map(|v| format!(" (version {v})")).unwrap_or_default())]
    Revoked {
        /// Provider name.
        provider: String,
        /// Key name.
        name: String,
        /// The revoked version, when one was asked for.
        version: Option<u32>,
    },

    /// `add` of a key that already has an active version.
    #[error("key {provider}/{name} already exists; use rotate to replace its secret")]
    AlreadyExists {
        /// Provider name.
        provider: String,
        /// Key name.
        name: String,
    },

    /// An argument was refused (bad name, empty secret, bad host, bad reference…).
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What was refused (`provider name`, `secret`, `bound host`, `key reference`).
        what: &'static str,
        /// Why.
        reason: String,
    },

    /// A key file is readable or writable by group or others.
    #[error(
        "the master key file {} is accessible by group or others (mode {mode:04o}); run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    KeyFilePermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },

    /// A key file could not be read or created.
    #[error("master key file {}: {source}", path.display())]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A master key (from a file, a variable or the keychain) is not 32 bytes of base64.
    #[error("the master key from {origin} is not valid: {reason}")]
    MasterKeyFormat {
        /// Where the key came from.
        origin: String,
        /// What is wrong with it (never its value).
        reason: String,
    },

    /// The environment variable holding the master key is not set.
    #[error(
        "environment variable {var} is not set; it must hold the base64 of a 32-byte master key"
    )]
    EnvMissing {
        /// The variable's name.
        var: String,
    },

    /// The OS keychain failed.
    #[error("OS keychain: {0}")]
    Keychain(String),

    /// Azure Key Vault answered with an error.
    #[error("Azure Key Vault {operation} failed with HTTP {status}{}: {message}{}", code.as_ref().map(|c| format!(" ({c})")).unwrap_or_default(), hint(*status))]
    Azure {
        /// `wrapkey`, `unwrapkey`, `get key` or `token`.
        operation: &'static str,
        /// HTTP status.
        status: u16,
        /// The error code from the JSON body, if any.
        code: Option<String>,
        /// The error message from the JSON body (truncated), or the body itself.
        message: String,
    },

    /// An HTTP exchange with a key management service failed before a response.
    #[error("{service} {operation}: {reason}")]
    Transport {
        /// `Azure Key Vault`, `Azure AD`.
        service: &'static str,
        /// What was being done.
        operation: &'static str,
        /// Why it failed.
        reason: String,
    },

    /// The operating system's random number generator failed.
    #[error("the system random number generator failed: {0}")]
    Random(String),

    /// SQLite failed.
    #[error("vault database: {0}")]
    Storage(#[from] rusqlite::Error),

    /// The vault file could not be created.
    #[error("vault file {}: {source}", path.display())]
    VaultFile {
        /// The vault file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The vault file was written by a newer version of Convergio.
    #[error("the vault file has schema version {found}; this build understands up to {supported}")]
    Schema {
        /// Schema version in the file.
        found: i64,
        /// Highest version this build reads.
        supported: i64,
    },
}

fn hint(status: u16) -> &'static str {
    match status {
        401 => {
            " (check the bearer token: it must be current and issued for https://vault.azure.net)"
        }
        403 => " (the identity lacks the key permission: grant keys/wrapKey and keys/unwrapKey)",
        404 => " (check the vault URL, the key name and its version)",
        _ => "",
    }
}

impl Error {
    pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            what,
            reason: reason.into(),
        }
    }

    pub(crate) fn not_found(provider: &str, name: &str) -> Self {
        Self::NotFound {
            provider: provider.to_owned(),
            name: name.to_owned(),
        }
    }
}
