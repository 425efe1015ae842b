//! Where the master key comes from. Every source implements
//! [`MasterKeySource`]: wrap and unwrap data keys, and name the key version in
//! use. Local sources (key file, environment variable, OS keychain) hold the
//! key bytes in memory and wrap with XChaCha20-Poly1305; a KMS source (Azure
//! Key Vault) never hands out its key and wraps remotely.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use crate::crypto::{self, DataKey, KEY_LEN};
use crate::error::{Error, Result};

#[cfg(feature = "azure")]
/// Implement [`MasterKeySource`] for a source that keeps its key in a
/// `key: LocalKey` field (key file, environment, keychain, static).
macro_rules! local_key_source {
    ($source:ty) => {
        impl $crate::source::MasterKeySource for $source {
            fn describe(&self) -> String {
                self.key.describe()
            }

            fn current_key_id(&self) -> $crate::error::Result<String> {
                Ok(self.key.id().to_owned())
            }

            fn wrap(
                &self,
                data_key: &$crate::crypto::DataKey,
                context: &[u8],
            ) -> $crate::error::Result<$crate::source::WrappedKey> {
                self.key.wrap(data_key, context)
            }

            fn unwrap(
                &self,
                wrapped: &$crate::source::WrappedKey,
                context: &[u8],
            ) -> $crate::error::Result<$crate::crypto::DataKey> {
                self.key.unwrap(wrapped, context)
            }
        }
    };
}

pub mod azure;
pub mod env;
pub mod file;
#[cfg(feature = "keychain")]
pub mod keychain;

/// A data key wrapped by a master key, with the id of the master key version
/// that wrapped it.
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// Id of the master key (version) that wrapped `bytes`.
    pub key_id: String,
    /// The wrapped key; opaque to the vault.
    pub bytes: Vec<u8>,
}

impl fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrappedKey")
            .field("key_id", &self.key_id)
            .field("bytes", &format_args!("<{} bytes>", self.bytes.len()))
            .finish()
    }
}

/// A master key: wraps and unwraps the vault's data keys.
///
/// `context` is associated data naming what the data key protects; sources
/// that can authenticate it (the local ones) must, others may ignore it (the
/// secret's own ciphertext is bound to the same context by the vault).
pub trait MasterKeySource: Send + Sync + fmt::Debug {
    /// Where the key comes from, for messages: `key file /etc/convergio/master.key`.
    fn describe(&self) -> String;

    /// Id of the key version that [`wrap`](Self::wrap) uses now. Public; stored
    /// beside each wrapped key.
    fn current_key_id(&self) -> Result<String>;

    /// Wrap a data key with the current version.
    fn wrap(&self, data_key: &DataKey, context: &[u8]) -> Result<WrappedKey>;

    /// Unwrap a data key wrapped by this source (any version it still has).
    /// A key id this source does not hold is [`Error::MasterKeyMismatch`].
    fn unwrap(&self, wrapped: &WrappedKey, context: &[u8]) -> Result<DataKey>;

    /// Look for a newer key version (a KMS may have rotated its key). Returns
    /// true when [`current_key_id`](Self::current_key_id) changed. Sources
    /// without versions return false.
    fn refresh(&self) -> Result<bool> {
        Ok(false)
    }
}

/// A master key held in memory (from a file, a variable or the keychain).
/// Its id is a fingerprint of the key, so a different key is detected before
/// any decryption is tried.
pub(crate) struct LocalKey {
    key: DataKey,
    id: String,
    describe: String,
}

impl LocalKey {
    pub(crate) fn new(key: DataKey, describe: String) -> Self {
        let id = key.fingerprint();
        Self { key, id, describe }
    }

    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn describe(&self) -> String {
        self.describe.clone()
    }

    pub(crate) fn wrap(&self, data_key: &DataKey, context: &[u8]) -> Result<WrappedKey> {
        let bytes = crypto::seal_combined(&self.key, context, data_key.expose())?;
        Ok(WrappedKey {
            key_id: self.id.clone(),
            bytes,
        })
    }

    pub(crate) fn unwrap(&self, wrapped: &WrappedKey, context: &[u8]) -> Result<DataKey> {
        if wrapped.key_id != self.id {
            return Err(Error::MasterKeyMismatch {
                vault_key_id: wrapped.key_id.clone(),
                source_key_id: self.id.clone(),
                source_desc: self.describe.clone(),
            });
        }
        let plain = crypto::open_combined(&self.key, context, &wrapped.bytes).ok_or_else(|| {
            Error::Integrity {
                what: "a wrapped data key".to_owned(),
            }
        })?;
        DataKey::from_slice(&plain, "a wrapped data key")
    }
}

impl fmt::Debug for LocalKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalKey")
            .field("id", &self.id)
            .field("from", &self.describe)
            .field("key", &"[redacted]")
            .finish()
    }
}

/// Encode a master key as the text kept in files, variables and keychains:
/// standard base64 of the 32 bytes.
pub fn encode_master_key(key: &DataKey) -> Zeroizing<String> {
    Zeroizing::new(STANDARD.encode(key.expose()))
}

/// Decode the text form of a master key; `origin` names it in errors.
pub(crate) fn decode_master_key(text: &str, origin: &str) -> Result<DataKey> {
    let bytes = Zeroizing::new(STANDARD.decode(text.trim()).map_err(|_| {
        Error::MasterKeyFormat {
            origin: origin.to_owned(),
            reason: format!(
                "expected the base64 of {KEY_LEN} bytes (make one with `openssl rand -base64 32`)"
            ),
        }
    })?);
    DataKey::from_slice(&bytes, origin)
}

/// A master key handed over directly: for tests, benches, or an embedding
/// application that fetched the key itself.
#[derive(Debug)]
pub struct StaticSource {
    key: LocalKey,
}

impl StaticSource {
    /// Use `key`; `describe` names it in messages.
    pub fn new(key: DataKey, describe: impl Into<String>) -> Self {
        Self {
            key: LocalKey::new(key, describe.into()),
        }
    }
}

local_key_source!(StaticSource);
