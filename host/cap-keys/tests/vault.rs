//! The vault against real SQLite files in temporary directories.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::*;
use convergio_cap_keys::secrecy::{ExposeSecret as _, SecretString};
use convergio_cap_keys::{
    AuthScheme, Error, KeyPolicy, KeyState, KeyWarning, Result, UsageDelta, Vault, VaultOptions,
    parse_reference, reference,
};
use rusqlite::Connection;
use tempfile::TempDir;

fn secret(s: &str) -> SecretString {
    SecretString::from(s)
}

/// A temporary directory and the path of a vault file in it.
fn temp_db() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = db(dir.path());
    (dir, path)
}

/// The vault at `path`, under test key 7.
fn open(path: &Path) -> Vault {
    Vault::open(path, master(7)).unwrap()
}

/// A new vault under test key 7 whose clock the test moves.
fn clocked() -> (TempDir, ManualClock, Vault) {
    let (dir, path) = temp_db();
    let clock = ManualClock::new();
    let vault = open_with_clock(&path, &clock);
    (dir, clock, vault)
}

/// Change the vault file behind the vault's back, as another program could.
fn tamper(path: &Path, sql: &str) {
    Connection::open(path).unwrap().execute_batch(sql).unwrap();
}

/// A key for [`Vault::add`]: `PROVIDER/default`, bound to one host, never
/// expiring, until a method says otherwise.
struct NewKey {
    provider: &'static str,
    name: &'static str,
    secret: String,
    expires: Option<SystemTime>,
    hosts: Vec<String>,
    scheme: AuthScheme,
}

/// `provider/default` holding `secret`, bound to `host`.
fn key(provider: &'static str, secret: &str, host: &str, scheme: AuthScheme) -> NewKey {
    NewKey {
        provider,
        name: "default",
        secret: secret.to_owned(),
        expires: None,
        hosts: hosts(&[host]),
        scheme,
    }
}

/// `openai/default` holding `secret`: bearer, bound to `api.openai.com`.
fn openai(secret: &str) -> NewKey {
    key("openai", secret, "api.openai.com", AuthScheme::Bearer)
}

/// `anthropic/default` holding `secret`: `x-api-key`, bound to `api.anthropic.com`.
fn anthropic(secret: &str) -> NewKey {
    key(
        "anthropic",
        secret,
        "api.anthropic.com",
        AuthScheme::XApiKey,
    )
}

impl NewKey {
    fn provider(self, provider: &'static str) -> Self {
        Self { provider, ..self }
    }

    fn name(self, name: &'static str) -> Self {
        Self { name, ..self }
    }

    fn hosts(self, list: &[&str]) -> Self {
        Self {
            hosts: hosts(list),
            ..self
        }
    }

    fn expires(self, at: SystemTime) -> Self {
        Self {
            expires: Some(at),
            ..self
        }
    }

    /// Add it to `vault`; the version it got.
    fn add(&self, vault: &Vault) -> Result<u32> {
        vault.add(
            self.provider,
            self.name,
            &secret(&self.secret),
            self.expires,
            &self.hosts,
            self.scheme,
        )
    }
}

/// Rotate `openai/default` to `new_secret`, the old version usable for `grace`.
fn rotate_openai(vault: &Vault, new_secret: &str, grace: Duration) -> u32 {
    vault
        .rotate("openai", "default", &secret(new_secret), grace, None)
        .unwrap()
}

/// Usage of `n` requests and nothing else.
fn requests(n: u64) -> UsageDelta {
    UsageDelta {
        requests: n,
        ..UsageDelta::default()
    }
}

#[test]
fn round_trip_through_a_reopened_vault() {
    let (_dir, path) = temp_db();
    assert_eq!(openai(MARKER).add(&open(&path)).unwrap(), 1);
    let vault = open(&path);
    let key = vault.resolve("openai", "default").unwrap();
    assert_eq!(key.version, 1);
    assert_eq!(key.header_name, "authorization");
    assert_eq!(key.header_value.expose_secret(), format!("Bearer {MARKER}"));
    assert!(key.allows("https", "api.openai.com", 443));
    assert!(!key.allows("https", "evil.example.com", 443));
    // A bare host binds https on port 443 only.
    assert!(!key.allows("http", "api.openai.com", 80));
    assert!(!key.allows("http", "api.openai.com", 443));
    assert!(!key.allows("https", "api.openai.com", 8443));

    anthropic("sk-ant-0123456789abcdef").add(&vault).unwrap();
    let ant = vault.resolve("anthropic", "default").unwrap();
    assert_eq!(ant.header_name, "x-api-key");
    assert_eq!(ant.header_value.expose_secret(), "sk-ant-0123456789abcdef");

    let info = vault.info("openai", "default").unwrap();
    assert_eq!(info.version, 1);
    assert_eq!(info.bound_hosts, hosts(&["https://api.openai.com:443"]));

    let r = reference("openai", "default");
    assert_eq!(r, "key:openai/default");
    assert_eq!(parse_reference(&r).unwrap().provider, "openai");
}

#[test]
fn add_refuses_bad_input_and_duplicates() {
    let (_dir, path) = temp_db();
    let vault = open(&path);
    for bad in [
        openai("x").provider("Open AI"),
        openai("x").hosts(&[]),
        openai("abc\n"),
        openai("ok").hosts(&["https://api.openai.com/v1"]),
    ] {
        assert!(matches!(bad.add(&vault), Err(Error::Invalid { .. })));
    }
    openai("ok").add(&vault).unwrap();
    assert!(matches!(
        openai("ok2").add(&vault),
        Err(Error::AlreadyExists { .. })
    ));
    assert!(matches!(
        vault.resolve("openai", "other"),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn wrong_master_key_is_a_clear_error() {
    let (_dir, path) = temp_db();
    let vault = open(&path);
    openai(MARKER).add(&vault).unwrap();
    let id = vault.master_key_id().unwrap();
    drop(vault);

    let err = Vault::open(&path, master(8)).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::MasterKeyMismatch { .. }), "{err:?}");
    assert!(
        msg.starts_with(&format!(
            "the master key does not match this vault (key id {id})"
        )),
        "{msg}"
    );
    assert!(msg.contains("test key 8"), "{msg}");
}

#[test]
fn tampered_ciphertext_is_an_integrity_error() {
    let (_dir, path) = temp_db();
    openai(MARKER).add(&open(&path)).unwrap();

    let conn = Connection::open(&path).unwrap();
    let mut ct: Vec<u8> = conn
        .query_row(
            "SELECT ciphertext FROM keys WHERE provider = 'openai'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    ct[3] ^= 0x01;
    conn.execute(
        "UPDATE keys SET ciphertext = ?1 WHERE provider = 'openai'",
        [ct],
    )
    .unwrap();
    drop(conn);

    let err = open(&path).resolve("openai", "default").unwrap_err();
    assert!(matches!(err, Error::Integrity { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "integrity check failed for key openai/default version 1: the stored data was modified or moved from another row"
    );
}

#[test]
fn rows_cannot_be_swapped_or_re_pointed_at_another_host() {
    let (_dir, path) = temp_db();
    let vault = open(&path);
    openai("sk-first-0123456789").add(&vault).unwrap();
    openai("sk-second-0123456789")
        .name("second")
        .add(&vault)
        .unwrap();
    drop(vault);

    // Copy the second key's sealed material into the first row.
    tamper(
        &path,
        "UPDATE keys SET (wrapped_key, nonce, ciphertext) =
             (SELECT wrapped_key, nonce, ciphertext FROM keys WHERE name = 'second')
         WHERE name = 'default'",
    );
    // Point the second key at an attacker's host.
    tamper(
        &path,
        "UPDATE keys SET bound_hosts = '[\"https://evil.example.com:443\"]' WHERE name = 'second'",
    );

    let vault = open(&path);
    assert!(matches!(
        vault.resolve("openai", "default"),
        Err(Error::Integrity { .. })
    ));
    assert!(matches!(
        vault.resolve("openai", "second"),
        Err(Error::Integrity { .. })
    ));
}

#[test]
fn rotation_keeps_the_old_version_for_its_grace_period() {
    let (_dir, clock, vault) = clocked();
    openai("sk-old-0123456789abcd").add(&vault).unwrap();
    let v2 = rotate_openai(&vault, "sk-new-0123456789wxyz", Duration::from_secs(3600));
    assert_eq!(v2, 2);

    let key = vault.resolve("openai", "default").unwrap();
    assert_eq!(key.version, 2);
    assert!(key.header_value.expose_secret().ends_with("wxyz"));
    assert!(
        key.allows("https", "api.openai.com", 443),
        "rotation keeps the bound origins"
    );
    let old = vault.resolve_version("openai", "default", 1).unwrap();
    assert!(old.header_value.expose_secret().ends_with("abcd"));

    let list = vault.list().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!((list[0].version, list[0].state), (2, KeyState::Active));
    assert_eq!((list[1].version, list[1].state), (1, KeyState::Grace));
    assert_eq!(list[0].masked, "…wxyz");
    assert!(list[1].grace_until.is_some());

    // Grace ends: lookups treat version 1 as revoked before any sweep.
    clock.advance(Duration::from_secs(3601));
    assert!(matches!(
        vault.resolve_version("openai", "default", 1),
        Err(Error::Revoked {
            version: Some(1),
            ..
        })
    ));
    assert_eq!(vault.list().unwrap()[1].state, KeyState::Revoked);
    assert_eq!(vault.revoke_expired().unwrap(), 1);
    assert_eq!(vault.revoke_expired().unwrap(), 0);
    assert_eq!(vault.resolve("openai", "default").unwrap().version, 2);

    // A zero grace revokes at once.
    rotate_openai(&vault, "sk-third-0123456789", Duration::ZERO);
    assert!(matches!(
        vault.resolve_version("openai", "default", 2),
        Err(Error::Revoked { .. })
    ));
    assert_eq!(vault.resolve("openai", "default").unwrap().version, 3);
}

#[test]
fn revoke_and_remove() {
    let (_dir, path) = temp_db();
    let vault = open(&path);
    openai(MARKER).add(&vault).unwrap();
    vault.resolve("openai", "default").unwrap();
    vault.revoke("openai", "default", 1).unwrap();
    let err = vault.resolve("openai", "default").unwrap_err();
    assert!(matches!(err, Error::Revoked { .. }), "{err:?}");
    assert!(matches!(
        vault.info("openai", "default"),
        Err(Error::Revoked { .. })
    ));
    assert!(matches!(
        vault.revoke("openai", "default", 9),
        Err(Error::VersionNotFound { .. })
    ));
    // Revoking wipes the sealed material.
    let conn = Connection::open(&path).unwrap();
    let len: i64 = conn
        .query_row(
            "SELECT length(ciphertext) + length(wrapped_key) FROM keys",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(len, 0);
    drop(conn);

    // After a revoke the key can be added again, as the next version.
    assert_eq!(openai("sk-again-0123456789").add(&vault).unwrap(), 2);
    assert_eq!(vault.remove("openai", "default").unwrap(), 2);
    assert!(matches!(
        vault.resolve("openai", "default"),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        vault.remove("openai", "default"),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn expired_keys_are_refused() {
    let (_dir, clock, vault) = clocked();
    let expires = clock.now() + Duration::from_secs(86_400 * 3);
    openai("sk-0123456789abcdef")
        .expires(expires)
        .add(&vault)
        .unwrap();
    vault.resolve("openai", "default").unwrap();
    assert_eq!(
        vault.list().unwrap()[0].warnings,
        vec![KeyWarning::ExpiresSoon { days_left: 3 }]
    );
    clock.advance(Duration::from_secs(86_400 * 3));
    assert!(matches!(
        vault.resolve("openai", "default"),
        Err(Error::Expired { version: 1, .. })
    ));
    assert!(matches!(
        vault.info("openai", "default"),
        Err(Error::Expired { .. })
    ));
    assert!(matches!(
        openai("s")
            .name("x")
            .hosts(&["a.com"])
            .expires(clock.now())
            .add(&vault),
        Err(Error::Invalid { .. })
    ));
}

#[test]
fn max_age_policy_warns_in_list() {
    let (_dir, path) = temp_db();
    let clock = ManualClock::new();
    let mut policy = KeyPolicy::default();
    policy.max_age_days.insert("openai".to_owned(), 30);
    let vault = Vault::open_with(
        path,
        master(7),
        VaultOptions {
            policy,
            clock: Some(clock.clock()),
            ..VaultOptions::default()
        },
    )
    .unwrap();
    openai("sk-0123456789abcdef").add(&vault).unwrap();
    anthropic("sk-0123456789abcdef").add(&vault).unwrap();
    assert!(vault.list().unwrap().iter().all(|k| k.warnings.is_empty()));
    clock.advance(Duration::from_secs(86_400 * 25));
    let list = vault.list().unwrap();
    let openai = list.iter().find(|k| k.key.provider == "openai").unwrap();
    assert_eq!(
        openai.warnings,
        vec![KeyWarning::MaxAgeNear {
            age_days: 25,
            max_age_days: 30
        }]
    );
    clock.advance(Duration::from_secs(86_400 * 10));
    let list = vault.list().unwrap();
    let openai = list.iter().find(|k| k.key.provider == "openai").unwrap();
    assert!(matches!(
        openai.warnings[0],
        KeyWarning::MaxAgeExceeded { age_days: 35, .. }
    ));
    assert!(openai.warnings[0].to_string().contains("rotate it"));
    assert!(
        list.iter()
            .find(|k| k.key.provider == "anthropic")
            .unwrap()
            .warnings
            .is_empty()
    );
}

#[test]
fn usage_accounting_under_concurrency() {
    let (_dir, clock, vault) = clocked();
    openai("sk-0123456789abcdef").add(&vault).unwrap();
    anthropic("sk-0123456789abcdef").add(&vault).unwrap();

    std::thread::scope(|s| {
        for t in 0..8u64 {
            let vault = vault.clone();
            s.spawn(move || {
                for i in 0..50u64 {
                    let key = vault.resolve("openai", "default").unwrap();
                    let delta = UsageDelta {
                        requests: 1,
                        input_tokens: 10,
                        output_tokens: 5,
                        cost_micro_usd: 7,
                        errors: u64::from((t + i) % 10 == 0),
                    };
                    vault
                        .record_usage("openai", "default", key.version, &delta)
                        .unwrap();
                }
            });
        }
    });
    vault
        .record_usage("anthropic", "default", 1, &requests(3))
        .unwrap();

    let all = vault.usage(None, None).unwrap();
    assert_eq!(all.len(), 2);
    let openai = vault.usage(Some("openai"), None).unwrap();
    assert_eq!(openai.len(), 1);
    let t = openai[0].totals;
    assert_eq!(
        (
            t.requests,
            t.input_tokens,
            t.output_tokens,
            t.cost_micro_usd
        ),
        (400, 4000, 2000, 2800)
    );
    assert_eq!(t.errors, 40);
    assert!(openai[0].last_used.is_some());

    let listed = vault.list().unwrap();
    let o = listed.iter().find(|k| k.key.provider == "openai").unwrap();
    assert_eq!(o.usage.requests, 400);
    assert!(o.last_used.is_some());

    // `since` counts whole UTC days.
    clock.advance(Duration::from_secs(86_400 * 2));
    vault
        .record_usage("openai", "default", 1, &requests(1))
        .unwrap();
    let recent = vault.usage(Some("openai"), Some(clock.now())).unwrap();
    assert_eq!(recent[0].totals.requests, 1);
    let by_key = vault.usage_by_key(None, None).unwrap();
    assert_eq!(by_key.len(), 2);
}

#[test]
fn the_secret_never_appears_in_the_files() {
    let (dir, path) = temp_db();
    let vault = open(&path);
    openai(MARKER).add(&vault).unwrap();
    vault.resolve("openai", "default").unwrap();
    vault
        .record_usage("openai", "default", 1, &requests(1))
        .unwrap();
    rotate_openai(&vault, &format!("{MARKER}-2"), Duration::from_secs(60));
    vault.list().unwrap();

    // The masked hint keeps the last 4 characters: scan for everything before them.
    let needle = &MARKER.as_bytes()[..MARKER.len() - 4];
    assert!(
        !contains(&file_bytes(&path), needle),
        "marker found in the live files"
    );
    drop(vault);
    assert!(
        !contains(&file_bytes(&path), needle),
        "marker found after checkpoint"
    );
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!contains(&bytes, needle));
    }

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}

#[test]
fn no_error_or_debug_output_contains_the_secret() {
    let (_dir, path) = temp_db();
    let vault = open(&path);
    let mut outputs = Vec::new();
    openai(MARKER).add(&vault).unwrap();
    let key = vault.resolve("openai", "default").unwrap();
    outputs.push(format!("{key:?}"));
    outputs.push(format!("{vault:?}"));
    outputs.push(format!("{:?}", vault.list().unwrap()));
    outputs.push(format!("{:?}", vault.info("openai", "default").unwrap()));

    // Refused secrets: a duplicate, then bad ones under a new name.
    let refused = |secret: &str| {
        openai(secret)
            .name("x")
            .hosts(&["a.com"])
            .add(&vault)
            .unwrap_err()
    };
    let mut errors: Vec<Error> = vec![
        openai(MARKER).add(&vault).unwrap_err(),
        refused(&format!("{MARKER}\n")),
        refused(&format!(" {MARKER}")),
        refused(&format!("{MARKER}\u{7}")),
        refused(&MARKER.repeat(400)),
        vault
            .rotate("openai", "nope", &secret(MARKER), Duration::ZERO, None)
            .unwrap_err(),
        vault.resolve("openai", "nope").unwrap_err(),
        "bearer-ish".parse::<AuthScheme>().unwrap_err(),
        parse_reference(MARKER).unwrap_err(),
    ];
    drop(vault);
    errors.push(Vault::open(&path, master(9)).unwrap_err());
    tamper(&path, "UPDATE keys SET ciphertext = x'00'");
    errors.push(open(&path).resolve("openai", "default").unwrap_err());

    let needle = &MARKER[3..MARKER.len() - 4];
    for e in &errors {
        outputs.push(format!("{e}"));
        outputs.push(format!("{e:?}"));
    }
    for out in outputs {
        assert!(!out.contains(needle), "secret in output: {out}");
    }
    // ResolvedKey redacts explicitly.
    assert!(format!("{key:?}").contains("[redacted]"));
}

#[test]
fn the_cache_follows_rotation_in_this_and_other_processes() {
    let (_dir, path) = temp_db();
    let server_clock = ManualClock::new();
    let server = open_with_clock(&path, &server_clock);
    openai("sk-one-0123456789").add(&server).unwrap();
    assert_eq!(server.resolve("openai", "default").unwrap().version, 1);

    // Same process: rotate invalidates at once.
    rotate_openai(&server, "sk-two-0123456789", Duration::from_secs(60));
    let key = server.resolve("openai", "default").unwrap();
    assert_eq!(
        (key.version, key.header_value.expose_secret()),
        (2, "Bearer sk-two-0123456789")
    );

    // Another process (the CLI) rotates: seen after the revalidation interval.
    let cli = open(&path);
    rotate_openai(&cli, "sk-three-0123456789", Duration::from_secs(60));
    assert_eq!(
        server.resolve("openai", "default").unwrap().version,
        2,
        "still cached"
    );
    server_clock.advance(Duration::from_secs(2));
    assert_eq!(server.resolve("openai", "default").unwrap().version, 3);

    // Another process removes the key.
    cli.remove("openai", "default").unwrap();
    server_clock.advance(Duration::from_secs(2));
    assert!(matches!(
        server.resolve("openai", "default"),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn rotation_under_load_never_fails_a_caller() {
    let (_dir, path) = temp_db();
    let vault = open(&path);
    openai("sk-v1-0123456789").add(&vault).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    std::thread::scope(|s| {
        for _ in 0..4 {
            let vault = vault.clone();
            let stop = stop.clone();
            s.spawn(move || {
                let mut last = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let key = vault.resolve("openai", "default").unwrap();
                    assert!(
                        key.version >= last,
                        "went back from {last} to {}",
                        key.version
                    );
                    assert_eq!(
                        key.header_value.expose_secret(),
                        format!("Bearer sk-v{}-0123456789", key.version)
                    );
                    last = key.version;
                }
            });
        }
        for v in 2..=20 {
            rotate_openai(
                &vault,
                &format!("sk-v{v}-0123456789"),
                Duration::from_secs(60),
            );
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    assert_eq!(vault.resolve("openai", "default").unwrap().version, 20);
}

#[test]
fn change_master_moves_every_key_to_a_new_master_key() {
    let (_dir, path) = temp_db();
    let vault = open(&path);
    openai("sk-0123456789abcdef").add(&vault).unwrap();
    key(
        "gemini",
        "AIza0123456789abcdef",
        "generativelanguage.googleapis.com",
        AuthScheme::XGoogApiKey,
    )
    .add(&vault)
    .unwrap();
    let rotation = vault.change_master(master(8)).unwrap();
    assert_eq!(rotation.rewrapped, 2);
    assert_eq!(vault.master_key_id().unwrap(), rotation.key_id);
    assert_eq!(
        vault.resolve("gemini", "default").unwrap().header_name,
        "x-goog-api-key"
    );
    // Nothing left to do for a source without versions.
    assert_eq!(vault.rotate_master().unwrap().rewrapped, 0);
    drop(vault);

    assert!(matches!(
        Vault::open(&path, master(7)),
        Err(Error::MasterKeyMismatch { .. })
    ));
    let vault = Vault::open(&path, master(8)).unwrap();
    assert_eq!(
        vault
            .resolve("openai", "default")
            .unwrap()
            .header_value
            .expose_secret(),
        "Bearer sk-0123456789abcdef"
    );
    assert!(
        vault
            .list()
            .unwrap()
            .iter()
            .all(|k| k.master_key_id == rotation.key_id)
    );
}

/// `resolve_cached` answers only from the cache, only while the cache needs
/// no revalidation, and with the same errors as `resolve`.
#[test]
fn resolve_cached_never_touches_the_database() {
    let (_dir, clock, vault) = clocked();
    let in_a_day = clock.now() + Duration::from_secs(86_400);
    openai("sk-cached-0123456789ab")
        .expires(in_a_day)
        .add(&vault)
        .unwrap();
    // Not resolved yet: not cached.
    assert!(vault.resolve_cached("openai", "default").is_none());
    let key = vault.resolve("openai", "default").unwrap();
    let cached = vault.resolve_cached("openai", "default").unwrap().unwrap();
    assert_eq!(cached.version, key.version);
    assert_eq!(
        cached.header_value.expose_secret(),
        "Bearer sk-cached-0123456789ab"
    );
    assert!(vault.resolve_cached("openai", "other").is_none());
    // Revalidation is due: the caller must go through `resolve`.
    clock.advance(Duration::from_secs(2));
    assert!(vault.resolve_cached("openai", "default").is_none());
    vault.resolve("openai", "default").unwrap();
    assert!(vault.resolve_cached("openai", "default").is_some());
    // An expired key is an error from the cache too.
    clock.advance(Duration::from_secs(86_400));
    vault.resolve("openai", "default").unwrap_err();
    vault.resolve("openai", "default").unwrap_err();
    if let Some(result) = vault.resolve_cached("openai", "default") {
        assert!(matches!(result, Err(Error::Expired { .. })));
    }
}
