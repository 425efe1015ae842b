//! The vault against real SQLite files in temporary directories.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use convergio_cap_keys::secrecy::{ExposeSecret as _, SecretString};
use convergio_cap_keys::{
    AuthScheme, Error, KeyPolicy, KeyState, KeyWarning, UsageDelta, Vault, VaultOptions,
    parse_reference, reference,
};
use rusqlite::Connection;

fn secret(s: &str) -> SecretString {
    SecretString::from(s)
}

#[test]
fn round_trip_through_a_reopened_vault() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(dir.path());
    {
        let vault = Vault::open(&path, master(7)).unwrap();
        let v = vault
            .add(
                "openai",
                "default",
                &secret(MARKER),
                None,
                &hosts(&["api.openai.com"]),
                AuthScheme::Bearer,
            )
            .unwrap();
        assert_eq!(v, 1);
    }
    let vault = Vault::open(&path, master(7)).unwrap();
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

    vault
        .add(
            "anthropic",
            "default",
            &secret("sk-ant-0123456789abcdef"),
            None,
            &hosts(&["api.anthropic.com"]),
            AuthScheme::XApiKey,
        )
        .unwrap();
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
    let dir = tempfile::tempdir().unwrap();
    let vault = Vault::open(db(dir.path()), master(7)).unwrap();
    let h = hosts(&["api.openai.com"]);
    assert!(matches!(
        vault.add(
            "Open AI",
            "default",
            &secret("x"),
            None,
            &h,
            AuthScheme::Bearer
        ),
        Err(Error::Invalid { .. })
    ));
    assert!(matches!(
        vault.add(
            "openai",
            "default",
            &secret("x"),
            None,
            &[],
            AuthScheme::Bearer
        ),
        Err(Error::Invalid { .. })
    ));
    assert!(matches!(
        vault.add(
            "openai",
            "default",
            &secret("abc\n"),
            None,
            &h,
            AuthScheme::Bearer
        ),
        Err(Error::Invalid { .. })
    ));
    assert!(matches!(
        vault.add(
            "openai",
            "default",
            &secret("ok"),
            None,
            &hosts(&["https://api.openai.com/v1"]),
            AuthScheme::Bearer
        ),
        Err(Error::Invalid { .. })
    ));
    vault
        .add(
            "openai",
            "default",
            &secret("ok"),
            None,
            &h,
            AuthScheme::Bearer,
        )
        .unwrap();
    assert!(matches!(
        vault.add(
            "openai",
            "default",
            &secret("ok2"),
            None,
            &h,
            AuthScheme::Bearer
        ),
        Err(Error::AlreadyExists { .. })
    ));
    assert!(matches!(
        vault.resolve("openai", "other"),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn wrong_master_key_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(dir.path());
    let vault = Vault::open(&path, master(7)).unwrap();
    vault
        .add(
            "openai",
            "default",
            &secret(MARKER),
            None,
            &hosts(&["api.openai.com"]),
            AuthScheme::Bearer,
        )
        .unwrap();
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
    let dir = tempfile::tempdir().unwrap();
    let path = db(dir.path());
    let vault = Vault::open(&path, master(7)).unwrap();
    vault
        .add(
            "openai",
            "default",
            &secret(MARKER),
            None,
            &hosts(&["api.openai.com"]),
            AuthScheme::Bearer,
        )
        .unwrap();
    drop(vault);

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

    let vault = Vault::open(&path, master(7)).unwrap();
    let err = vault.resolve("openai", "default").unwrap_err();
    assert!(matches!(err, Error::Integrity { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "integrity check failed for key openai/default version 1: the stored data was modified or moved from another row"
    );
}

#[test]
fn rows_cannot_be_swapped_or_re_pointed_at_another_host() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(dir.path());
    let vault = Vault::open(&path, master(7)).unwrap();
    vault
        .add(
            "openai",
            "default",
            &secret("sk-first-0123456789"),
            None,
            &hosts(&["api.openai.com"]),
            AuthScheme::Bearer,
        )
        .unwrap();
    vault
        .add(
            "openai",
            "second",
            &secret("sk-second-0123456789"),
            None,
            &hosts(&["api.openai.com"]),
            AuthScheme::Bearer,
        )
        .unwrap();
    drop(vault);

    // Copy the second key's sealed material into the first row.
    let conn = Connection::open(&path).unwrap();
    conn.execute(
        "UPDATE keys SET (wrapped_key, nonce, ciphertext) =
             (SELECT wrapped_key, nonce, ciphertext FROM keys WHERE name = 'second')
         WHERE name = 'default'",
        [],
    )
    .unwrap();
    // Point the second key at an attacker's host.
    conn.execute(
        "UPDATE keys SET bound_hosts = '[\"https://evil.example.com:443\"]' WHERE name = 'second'",
        [],
    )
    .unwrap();
    drop(conn);

    let vault = Vault::open(&path, master(7)).unwrap();
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
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let vault = open_with_clock(&db(dir.path()), &clock);
    let h = hosts(&["api.openai.com"]);
    vault
        .add(
            "openai",
            "default",
            &secret("sk-old-0123456789abcd"),
            None,
            &h,
            AuthScheme::Bearer,
        )
        .unwrap();
    let v2 = vault
        .rotate(
            "openai",
            "default",
            &secret("sk-new-0123456789wxyz"),
            Duration::from_secs(3600),
            None,
        )
        .unwrap();
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
    vault
        .rotate(
            "openai",
            "default",
            &secret("sk-third-0123456789"),
            Duration::ZERO,
            None,
        )
        .unwrap();
    assert!(matches!(
        vault.resolve_version("openai", "default", 2),
        Err(Error::Revoked { .. })
    ));
    assert_eq!(vault.resolve("openai", "default").unwrap().version, 3);
}

#[test]
fn revoke_and_remove() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(dir.path());
    let vault = Vault::open(&path, master(7)).unwrap();
    let h = hosts(&["api.openai.com"]);
    vault
        .add(
            "openai",
            "default",
            &secret(MARKER),
            None,
            &h,
            AuthScheme::Bearer,
        )
        .unwrap();
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
    assert_eq!(
        vault
            .add(
                "openai",
                "default",
                &secret("sk-again-0123456789"),
                None,
                &h,
                AuthScheme::Bearer
            )
            .unwrap(),
        2
    );
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
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let vault = open_with_clock(&db(dir.path()), &clock);
    let expires = clock.now() + Duration::from_secs(86_400 * 3);
    vault
        .add(
            "openai",
            "default",
            &secret("sk-0123456789abcdef"),
            Some(expires),
            &hosts(&["api.openai.com"]),
            AuthScheme::Bearer,
        )
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
        vault.add(
            "openai",
            "x",
            &secret("s"),
            Some(clock.now()),
            &hosts(&["a.com"]),
            AuthScheme::Bearer
        ),
        Err(Error::Invalid { .. })
    ));
}

#[test]
fn max_age_policy_warns_in_list() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let mut policy = KeyPolicy::default();
    policy.max_age_days.insert("openai".to_owned(), 30);
    let vault = Vault::open_with(
        db(dir.path()),
        master(7),
        VaultOptions {
            policy,
            clock: Some(clock.clock()),
            ..VaultOptions::default()
        },
    )
    .unwrap();
    vault
        .add(
            "openai",
            "default",
            &secret("sk-0123456789abcdef"),
            None,
            &hosts(&["api.openai.com"]),
            AuthScheme::Bearer,
        )
        .unwrap();
    vault
        .add(
            "anthropic",
            "default",
            &secret("sk-0123456789abcdef"),
            None,
            &hosts(&["api.anthropic.com"]),
            AuthScheme::XApiKey,
        )
        .unwrap();
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
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let vault = open_with_clock(&db(dir.path()), &clock);
    vault
        .add(
            "openai",
            "default",
            &secret("sk-0123456789abcdef"),
            None,
            &hosts(&["api.openai.com"]),
            AuthScheme::Bearer,
        )
        .unwrap();
    vault
        .add(
            "anthropic",
            "default",
            &secret("sk-0123456789abcdef"),
            None,
            &hosts(&["api.anthropic.com"]),
            AuthScheme::XApiKey,
        )
        .unwrap();

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
        .record_usage(
            "anthropic",
            "default",
            1,
            &UsageDelta {
                requests: 3,
                ..UsageDelta::default()
            },
        )
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
        .record_usage(
            "openai",
            "default",
            1,
            &UsageDelta {
                requests: 1,
                ..UsageDelta::default()
            },
        )
        .unwrap();
    let recent = vault.usage(Some("openai"), Some(clock.now())).unwrap();
    assert_eq!(recent[0].totals.requests, 1);
    let by_key = vault.usage_by_key(None, None).unwrap();
    assert_eq!(by_key.len(), 2);
}

#[test]
fn the_secret_never_appears_in_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(dir.path());
    let vault = Vault::open(&path, master(7)).unwrap();
    vault
        .add(
            "openai",
            "default",
            &secret(MARKER),
            None,
            &hosts(&["api.openai.com"]),
            AuthScheme::Bearer,
        )
        .unwrap();
    vault.resolve("openai", "default").unwrap();
    vault
        .record_usage(
            "openai",
            "default",
            1,
            &UsageDelta {
                requests: 1,
                ..UsageDelta::default()
            },
        )
        .unwrap();
    vault
        .rotate(
            "openai",
            "default",
            &secret(&format!("{MARKER}-2")),
            Duration::from_secs(60),
            None,
        )
        .unwrap();
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
    let dir = tempfile::tempdir().unwrap();
    let path = db(dir.path());
    let vault = Vault::open(&path, master(7)).unwrap();
    let mut outputs = Vec::new();
    vault
        .add(
            "openai",
            "default",
            &secret(MARKER),
            None,
            &hosts(&["api.openai.com"]),
            AuthScheme::Bearer,
        )
        .unwrap();
    let key = vault.resolve("openai", "default").unwrap();
    outputs.push(format!("{key:?}"));
    outputs.push(format!("{vault:?}"));
    outputs.push(format!("{:?}", vault.list().unwrap()));
    outputs.push(format!("{:?}", vault.info("openai", "default").unwrap()));

    let mut errors: Vec<Error> = vec![
        vault
            .add(
                "openai",
                "default",
                &secret(MARKER),
                None,
                &hosts(&["api.openai.com"]),
                AuthScheme::Bearer,
            )
            .unwrap_err(),
        vault
            .add(
                "openai",
                "x",
                &secret(&format!("{MARKER}\n")),
                None,
                &hosts(&["a.com"]),
                AuthScheme::Bearer,
            )
            .unwrap_err(),
        vault
            .add(
                "openai",
                "x",
                &secret(&format!(" {MARKER}")),
                None,
                &hosts(&["a.com"]),
                AuthScheme::Bearer,
            )
            .unwrap_err(),
        vault
            .add(
                "openai",
                "x",
                &secret(&format!("{MARKER}\u{7}")),
                None,
                &hosts(&["a.com"]),
                AuthScheme::Bearer,
            )
            .unwrap_err(),
        vault
            .add(
                "openai",
                "x",
                &secret(&MARKER.repeat(400)),
                None,
                &hosts(&["a.com"]),
                AuthScheme::Bearer,
            )
            .unwrap_err(),
        vault
            .rotate("openai", "nope", &secret(MARKER), Duration::ZERO, None)
            .unwrap_err(),
        vault.resolve("openai", "nope").unwrap_err(),
        "bearer-ish".parse::<AuthScheme>().unwrap_err(),
        parse_reference(MARKER).unwrap_err(),
    ];
    drop(vault);
    errors.push(Vault::open(&path, master(9)).unwrap_err());
    let conn = Connection::open(&path).unwrap();
    conn.execute("UPDATE keys SET ciphertext = x'00'", [])
        .unwrap();
    drop(conn);
    errors.push(
        Vault::open(&path, master(7))
            .unwrap()
            .resolve("openai", "default")
            .unwrap_err(),
    );

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
    let dir = tempfile::tempdir().unwrap();
    let path = db(dir.path());
    let server_clock = ManualClock::new();
    let server = open_with_clock(&path, &server_clock);
    let h = hosts(&["api.openai.com"]);
    server
        .add(
            "openai",
            "default",
            &secret("sk-one-0123456789"),
            None,
            &h,
            AuthScheme::Bearer,
        )
        .unwrap();
    assert_eq!(server.resolve("openai", "default").unwrap().version, 1);

    // Same process: rotate invalidates at once.
    server
        .rotate(
            "openai",
            "default",
            &secret("sk-two-0123456789"),
            Duration::from_secs(60),
            None,
        )
        .unwrap();
    let key = server.resolve("openai", "default").unwrap();
    assert_eq!(
        (key.version, key.header_value.expose_secret()),
        (2, "Bearer sk-two-0123456789")
    );

    // Another process (the CLI) rotates: seen after the revalidation interval.
    let cli = Vault::open(&path, master(7)).unwrap();
    cli.rotate(
        "openai",
        "default",
        &secret("sk-three-0123456789"),
        Duration::from_secs(60),
        None,
    )
    .unwrap();
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
    let dir = tempfile::tempdir().unwrap();
    let vault = Vault::open(db(dir.path()), master(7)).unwrap();
    vault
        .add(
            "openai",
            "default",
            &secret("sk-v1-0123456789"),
            None,
            &hosts(&["api.openai.com"]),
            AuthScheme::Bearer,
        )
        .unwrap();
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
            vault
                .rotate(
                    "openai",
                    "default",
                    &secret(&format!("sk-v{v}-0123456789")),
                    Duration::from_secs(60),
                    None,
                )
                .unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    assert_eq!(vault.resolve("openai", "default").unwrap().version, 20);
}

#[test]
fn change_master_moves_every_key_to_a_new_master_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(dir.path());
    let vault = Vault::open(&path, master(7)).unwrap();
    vault
        .add(
            "openai",
            "default",
            &secret("sk-0123456789abcdef"),
            None,
            &hosts(&["api.openai.com"]),
            AuthScheme::Bearer,
        )
        .unwrap();
    vault
        .add(
            "gemini",
            "default",
            &secret("AIza0123456789abcdef"),
            None,
            &hosts(&["generativelanguage.googleapis.com"]),
            AuthScheme::XGoogApiKey,
        )
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
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let vault = open_with_clock(&db(dir.path()), &clock);
    let in_a_day = clock.now() + Duration::from_secs(86_400);
    vault
        .add(
            "openai",
            "default",
            &secret("sk-cached-0123456789ab"),
            Some(in_a_day),
            &hosts(&["api.openai.com"]),
            AuthScheme::Bearer,
        )
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
