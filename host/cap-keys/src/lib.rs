//! Convergio's bring-your-own-key vault.
//!
//! Provider API keys are stored encrypted at rest with envelope encryption:
//! each secret is sealed with its own random 256-bit data key
//! (XChaCha20-Poly1305), and the data key is wrapped by a master key from a
//! [`MasterKeySource`]: a key file, an environment variable, the OS keychain
//! (feature `keychain`) or Azure Key Vault (feature `azure`, on by default).
//! The associated data binds each ciphertext to its provider, name, version,
//! auth scheme, expiry and bound origins, so rows cannot be swapped or
//! re-pointed at another origin.
//!
//! A guest never sees a secret: components get opaque references
//! ([`reference()`]), and the host resolves them with [`Vault::resolve`] only to
//! attach an auth header to a request bound for one of the key's origins
//! ([`BoundOrigin`]: scheme, host and port; a bare host name means `https`
//! on port 443).
//!
//! ```
//! use std::sync::Arc;
//! use convergio_cap_keys::{AuthScheme, DataKey, StaticSource, Vault};
//! use secrecy::{ExposeSecret as _, SecretString};
//!
//! # fn main() -> convergio_cap_keys::Result<()> {
//! # let dir = tempfile::tempdir().map_err(|e| convergio_cap_keys::Error::VaultFile { path: "tmp".into(), source: e })?;
//! let master = Arc::new(StaticSource::new(DataKey::generate()?, "example key"));
//! let vault = Vault::open(dir.path().join("vault.db"), master)?;
//! let secret = SecretString::from("sk-example-0123456789abcdef");
//! vault.add("openai", "default", &secret, None, &["api.openai.com".into()], AuthScheme::Bearer)?;
//!
//! let key = vault.resolve("openai", "default")?;
//! assert_eq!(key.header_name, "authorization");
//! assert!(key.header_value.expose_secret().starts_with("Bearer "));
//! assert!(key.allows("https", "api.openai.com", 443));
//! assert!(!key.allows("http", "api.openai.com", 80));
//! assert!(!format!("{key:?}").contains("sk-example"));
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

mod crypto;
mod error;
mod grant;
mod host;
mod maintenance;
mod model;
mod origin;
pub mod source;
mod store;
mod vault;

pub use crypto::{DataKey, KEY_LEN};
pub use error::{Error, Result};
pub use grant::{KeyGrant, KeyGrants};
pub use host::{KeysCtx, KeysView, add_to_linker};
pub use maintenance::{KeyAlert, MaintenanceReport, MaintenanceTask, MasterCheck};
pub use model::{
    AuthScheme, DEFAULT_KEY_NAME, KeyInfo, KeyListing, KeyPolicy, KeyRef, KeyState, KeyWarning,
    REFERENCE_PREFIX, ResolvedKey, UsageDelta, UsageRow, UsageTotals, default_bound_hosts,
    parse_reference, reference,
};
pub use origin::{BoundOrigin, OriginHost, OriginScheme, origins_allow, split_host_port};
#[cfg(feature = "azure")]
pub use source::azure::{
    AzureKeyVaultConfig, AzureKeyVaultSource, ClientCredentials, ManagedIdentity, StaticToken,
    TokenProvider,
};
pub use source::env::{DEFAULT_MASTER_KEY_VAR, EnvSource};
pub use source::file::KeyFileSource;
#[cfg(feature = "keychain")]
pub use source::keychain::KeychainSource;
pub use source::{MasterKeySource, StaticSource, WrappedKey, encode_master_key};
pub use vault::{Clock, MasterRotation, Vault, VaultOptions};

/// Re-exported so callers name the same `SecretString`.
pub use secrecy;
