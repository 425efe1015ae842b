//! Master key in the OS keychain through the `keyring` crate (feature `keychain`).
//!
//! macOS Keychain and Windows Credential Manager persist the key for the user.
//! On Linux this build uses the kernel keyring (keyutils): it works only after
//! the process has joined a session keyring (`keyctl(KEYCTL_JOIN_SESSION_KEYRING)`,
//! as a login session does) and it does not survive a reboot, so it is not the
//! default on headless servers: use a key file or an environment variable there.

use zeroize::Zeroizing;

use crate::crypto::DataKey;
use crate::error::{Error, Result};
use crate::source::{LocalKey, decode_master_key, encode_master_key};

/// Service name used for the keychain entry unless another is given.
pub const DEFAULT_SERVICE: &str = "convergio";
/// User (account) name used for the keychain entry unless another is given.
pub const DEFAULT_USER: &str = "master-key";

/// A master key read from the OS keychain entry (service, user).
#[derive(Debug)]
pub struct KeychainSource {
    key: LocalKey,
}

impl KeychainSource {
    /// Read the key (base64 of 32 bytes) from the entry `service`/`user`.
    pub fn open(service: &str, user: &str) -> Result<Self> {
        let entry = keyring::Entry::new(service, user).map_err(keychain_error)?;
        let text = Zeroizing::new(entry.get_password().map_err(keychain_error)?);
        let origin = format!("OS keychain entry {service}/{user}");
        let key = decode_master_key(&text, &origin)?;
        Ok(Self {
            key: LocalKey::new(key, origin),
        })
    }

    /// Create a random key and store it in the entry `service`/`user`,
    /// refusing to replace an entry that exists.
    pub fn generate(service: &str, user: &str) -> Result<Self> {
        let entry = keyring::Entry::new(service, user).map_err(keychain_error)?;
        match entry.get_password() {
            Ok(_) => {
                return Err(Error::Keychain(format!(
                    "entry {service}/{user} already holds a key; refusing to replace it"
                )));
            }
            Err(keyring::Error::NoEntry) => {}
            Err(e) => return Err(keychain_error(e)),
        }
        let key = DataKey::generate()?;
        entry
            .set_password(&encode_master_key(&key))
            .map_err(keychain_error)?;
        let origin = format!("OS keychain entry {service}/{user}");
        Ok(Self {
            key: LocalKey::new(key, origin),
        })
    }
}

fn keychain_error(e: keyring::Error) -> Error {
    Error::Keychain(e.to_string())
}

local_key_source!(KeychainSource);
