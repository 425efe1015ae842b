//! Master key from an environment variable holding base64 of 32 bytes.

use crate::error::{Error, Result};
use crate::source::{LocalKey, decode_master_key};

/// The variable read by [`EnvSource::from_default_var`].
pub const DEFAULT_MASTER_KEY_VAR: &str = "CONVERGIO_MASTER_KEY";

/// A master key read once from an environment variable (base64 of 32 bytes).
#[derive(Debug)]
pub struct EnvSource {
    key: LocalKey,
}

impl EnvSource {
    /// Read the key from `var`. The variable's value never appears in errors.
    pub fn from_var(var: &str) -> Result<Self> {
        let value = std::env::var(var).map_err(|e| match e {
            std::env::VarError::NotPresent => Error::EnvMissing {
                var: var.to_owned(),
            },
            std::env::VarError::NotUnicode(_) => Error::MasterKeyFormat {
                origin: format!("environment variable {var}"),
                reason: "it is not valid UTF-8".to_owned(),
            },
        })?;
        let value = zeroize::Zeroizing::new(value);
        let origin = format!("environment variable {var}");
        let key = decode_master_key(&value, &origin)?;
        Ok(Self {
            key: LocalKey::new(key, origin),
        })
    }

    /// Read the key from [`DEFAULT_MASTER_KEY_VAR`].
    pub fn from_default_var() -> Result<Self> {
        Self::from_var(DEFAULT_MASTER_KEY_VAR)
    }
}

local_key_source!(EnvSource);
