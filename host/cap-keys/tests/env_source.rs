//! The environment-variable source. One test in its own binary, so setting
//! variables cannot race with another thread reading the environment.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(unsafe_code)]

mod common;

use std::sync::Arc;

use common::*;
use convergio_cap_keys::secrecy::{ExposeSecret as _, SecretString};
use convergio_cap_keys::{
    AuthScheme, DataKey, EnvSource, Error, MasterKeySource, Vault, encode_master_key,
};

#[test]
fn environment_variable_source() {
    let key = DataKey::generate().unwrap();
    let text = encode_master_key(&key);
    // SAFETY: this binary runs this single test; no other thread reads the environment.
    unsafe {
        std::env::set_var("CONVERGIO_TEST_MASTER_KEY", text.as_str());
        std::env::set_var("CONVERGIO_TEST_BAD_KEY", "dG9vIHNob3J0");
        std::env::remove_var("CONVERGIO_TEST_MISSING_KEY");
    }
    let source = EnvSource::from_var("CONVERGIO_TEST_MASTER_KEY").unwrap();
    assert_eq!(source.current_key_id().unwrap(), key.fingerprint());
    assert_eq!(
        source.describe(),
        "environment variable CONVERGIO_TEST_MASTER_KEY"
    );
    assert!(!format!("{source:?}").contains(text.as_str()));

    let err = EnvSource::from_var("CONVERGIO_TEST_MISSING_KEY").unwrap_err();
    assert!(matches!(err, Error::EnvMissing { .. }));
    assert!(
        err.to_string()
            .contains("CONVERGIO_TEST_MISSING_KEY is not set"),
        "{err}"
    );
    let err = EnvSource::from_var("CONVERGIO_TEST_BAD_KEY").unwrap_err();
    assert!(matches!(err, Error::MasterKeyFormat { .. }));
    assert!(!err.to_string().contains("dG9vIHNob3J0"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let vault = Vault::open(db(dir.path()), Arc::new(source)).unwrap();
    vault
        .add(
            "mistral",
            "default",
            &SecretString::from(MARKER),
            None,
            &hosts(&["api.mistral.ai"]),
            AuthScheme::Bearer,
        )
        .unwrap();
    let key = vault.resolve("mistral", "default").unwrap();
    assert_eq!(key.header_value.expose_secret(), format!("Bearer {MARKER}"));
}
