//! Master key sources: key file permissions and formats.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use convergio_cap_keys::secrecy::SecretString;
use convergio_cap_keys::{AuthScheme, Error, KeyFileSource, MasterKeySource, Vault};

#[cfg(unix)]
#[test]
fn key_file_must_be_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    let generated = KeyFileSource::generate(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(
        matches!(KeyFileSource::generate(&path), Err(Error::KeyFile { .. })),
        "never overwrites"
    );

    let opened = KeyFileSource::open(&path).unwrap();
    assert_eq!(
        opened.current_key_id().unwrap(),
        generated.current_key_id().unwrap()
    );

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = KeyFileSource::open(&path).unwrap_err();
    assert!(
        matches!(err, Error::KeyFilePermissions { mode: 0o644, .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("run `chmod 600 {}`", path.display())),
        "{msg}"
    );
    assert!(msg.contains("mode 0644"), "{msg}");

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert!(matches!(
        KeyFileSource::open(&path),
        Err(Error::KeyFilePermissions { .. })
    ));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
    KeyFileSource::open(&path).unwrap();
}

#[cfg(unix)]
#[test]
fn key_file_formats_and_a_vault_sealed_with_one() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        p
    };
    let raw = write("raw.key", &[7u8; 32]);
    let b64 = write("b64.key", b"BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n");
    let short = write("short.key", b"c2hvcnQ=\n");
    let junk = write("junk.key", b"not base64 at all!\n");
    let a = KeyFileSource::open(&raw).unwrap();
    let b = KeyFileSource::open(&b64).unwrap();
    assert_eq!(a.current_key_id().unwrap(), b.current_key_id().unwrap());
    for p in [&short, &junk] {
        let err = KeyFileSource::open(p).unwrap_err();
        assert!(matches!(err, Error::MasterKeyFormat { .. }), "{err:?}");
    }
    assert!(matches!(
        KeyFileSource::open(dir.path().join("missing.key")),
        Err(Error::KeyFile { .. })
    ));

    let path = db(dir.path());
    let vault = Vault::open(&path, Arc::new(a)).unwrap();
    vault
        .add(
            "openai",
            "default",
            &SecretString::from(MARKER),
            None,
            &hosts(&["api.openai.com"]),
            AuthScheme::Bearer,
        )
        .unwrap();
    drop(vault);
    // The same key through another file opens the vault; a fresh key does not.
    Vault::open(&path, Arc::new(b))
        .unwrap()
        .resolve("openai", "default")
        .unwrap();
    let other = KeyFileSource::generate(dir.path().join("other.key")).unwrap();
    let err = Vault::open(&path, Arc::new(other)).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("the master key does not match this vault (key id "),
        "{err}"
    );
    assert!(err.to_string().contains("other.key"), "{err}");
}
