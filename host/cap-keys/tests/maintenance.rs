//! `Vault::maintain` and its thread: the grace-period sweep, master key
//! versions and the policy's warnings, with the clock moved by hand.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use common::{ManualClock, db, hosts, master, open_with_clock};
use convergio_cap_keys::secrecy::SecretString;
use convergio_cap_keys::{
    AuthScheme, DataKey, Error, KeyPolicy, KeyState, KeyWarning, MasterCheck, MasterKeySource,
    StaticSource, Vault, VaultOptions, WrappedKey,
};

const DAY: Duration = Duration::from_secs(86_400);

fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

fn add(vault: &Vault, provider: &str, expires: Option<std::time::SystemTime>) {
    vault
        .add(
            provider,
            "default",
            &secret("sk-0123456789abcdef"),
            expires,
            &hosts(&[&format!("api.{provider}.com")]),
            AuthScheme::for_provider(provider),
        )
        .unwrap();
}

#[test]
fn a_pass_sweeps_ended_grace_periods() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let vault = open_with_clock(&db(dir.path()), &clock);
    add(&vault, "openai", None);
    vault
        .rotate(
            "openai",
            "default",
            &secret("sk-fedcba9876543210"),
            Duration::from_secs(3600),
            None,
        )
        .unwrap();

    let report = vault.maintain().unwrap();
    assert_eq!(report.revoked, 0);
    assert_eq!(report.master, MasterCheck::Current);
    assert!(report.alerts.is_empty(), "{:?}", report.alerts);

    clock.advance(Duration::from_secs(7200));
    assert_eq!(vault.maintain().unwrap().revoked, 1);
    let states: Vec<(u32, KeyState)> = vault
        .list()
        .unwrap()
        .iter()
        .map(|k| (k.version, k.state))
        .collect();
    assert_eq!(states, [(2, KeyState::Active), (1, KeyState::Revoked)]);
    assert_eq!(
        vault.maintain().unwrap().revoked,
        0,
        "nothing left to sweep"
    );
}

#[test]
fn a_pass_reports_age_and_expiry_with_days_left() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let mut policy = KeyPolicy::default();
    policy.max_age_days.insert("openai".to_owned(), 90);
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
    add(&vault, "openai", None);
    add(&vault, "anthropic", Some(clock.now() + DAY * 90));
    assert!(vault.maintain().unwrap().alerts.is_empty());

    clock.advance(DAY * 85);
    let alerts = vault.maintain().unwrap().alerts;
    let summary: Vec<(String, u32, &str, i64)> = alerts
        .iter()
        .map(|a| (a.key.to_string(), a.version, a.kind(), a.days_left))
        .collect();
    assert_eq!(
        summary,
        [
            ("anthropic/default".to_owned(), 1, "expires-soon", 5),
            ("openai/default".to_owned(), 1, "max-age-near", 5),
        ]
    );
    assert_eq!(alerts[0].warning, KeyWarning::ExpiresSoon { days_left: 5 });
    assert_eq!(
        alerts[1].to_string(),
        "key openai/default v1: 85 days old; the policy's maximum age is 90 days: rotate soon"
    );

    clock.advance(DAY * 10);
    let alerts = vault.maintain().unwrap().alerts;
    let summary: Vec<(&str, i64)> = alerts.iter().map(|a| (a.kind(), a.days_left)).collect();
    assert_eq!(summary, [("expired", -5), ("max-age-exceeded", -5)]);

    // A rotation clears the age warning: the new version is young.
    vault
        .rotate(
            "openai",
            "default",
            &secret("sk-fedcba9876543210"),
            Duration::ZERO,
            None,
        )
        .unwrap();
    let alerts = vault.maintain().unwrap().alerts;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].key.provider, "anthropic");
}

/// A master key with versions, like a KMS key: `offer` makes a newer version
/// available to the next `refresh`; the failure switches make the source's
/// calls fail as an unreachable KMS would.
#[derive(Debug)]
struct Versioned {
    versions: Vec<StaticSource>,
    current: AtomicUsize,
    offered: AtomicUsize,
    refresh_fails: AtomicBool,
    unwrap_fails: AtomicBool,
}

impl Versioned {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            versions: (1..=3u8)
                .map(|v| {
                    StaticSource::new(
                        DataKey::from_slice(&[v; 32], "test").unwrap(),
                        format!("version {v}"),
                    )
                })
                .collect(),
            current: AtomicUsize::new(0),
            offered: AtomicUsize::new(0),
            refresh_fails: AtomicBool::new(false),
            unwrap_fails: AtomicBool::new(false),
        })
    }

    fn id(&self, version: usize) -> String {
        self.versions[version].current_key_id().unwrap()
    }

    fn unreachable() -> Error {
        Error::Transport {
            service: "test KMS",
            operation: "get key",
            reason: "connection refused".to_owned(),
        }
    }
}

impl MasterKeySource for Versioned {
    fn describe(&self) -> String {
        "test KMS key".to_owned()
    }

    fn current_key_id(&self) -> convergio_cap_keys::Result<String> {
        Ok(self.id(self.current.load(Ordering::SeqCst)))
    }

    fn wrap(&self, data_key: &DataKey, context: &[u8]) -> convergio_cap_keys::Result<WrappedKey> {
        self.versions[self.current.load(Ordering::SeqCst)].wrap(data_key, context)
    }

    fn unwrap(&self, wrapped: &WrappedKey, context: &[u8]) -> convergio_cap_keys::Result<DataKey> {
        if self.unwrap_fails.load(Ordering::SeqCst) {
            return Err(Self::unreachable());
        }
        let version = (0..self.versions.len())
            .find(|v| self.id(*v) == wrapped.key_id)
            .unwrap_or(0);
        self.versions[version].unwrap(wrapped, context)
    }

    fn refresh(&self) -> convergio_cap_keys::Result<bool> {
        if self.refresh_fails.load(Ordering::SeqCst) {
            return Err(Self::unreachable());
        }
        let offered = self.offered.load(Ordering::SeqCst);
        Ok(self.current.swap(offered, Ordering::SeqCst) != offered)
    }
}

#[test]
fn a_pass_rewraps_when_the_master_key_has_a_newer_version() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let source = Versioned::new();
    let vault = Vault::open_with(
        db(dir.path()),
        source.clone(),
        VaultOptions {
            clock: Some(clock.clock()),
            ..VaultOptions::default()
        },
    )
    .unwrap();
    add(&vault, "openai", None);
    add(&vault, "anthropic", None);
    assert_eq!(vault.maintain().unwrap().master, MasterCheck::Current);

    source.offered.store(1, Ordering::SeqCst);
    let report = vault.maintain().unwrap();
    let MasterCheck::Rotated(rotation) = report.master else {
        panic!("expected a rotation: {report:?}");
    };
    assert_eq!(rotation.key_id, source.id(1));
    assert_eq!(rotation.rewrapped, 2);
    assert_eq!(vault.master_key_id().unwrap(), source.id(1));
    assert_eq!(vault.maintain().unwrap().master, MasterCheck::Current);
    assert_eq!(vault.resolve("openai", "default").unwrap().version, 1);

    // The KMS is out of reach: the pass says so and does the rest anyway.
    vault
        .rotate(
            "openai",
            "default",
            &secret("sk-fedcba9876543210"),
            Duration::from_secs(60),
            None,
        )
        .unwrap();
    clock.advance(Duration::from_secs(120));
    source.refresh_fails.store(true, Ordering::SeqCst);
    let report = vault.maintain().unwrap();
    let MasterCheck::Failed(message) = &report.master else {
        panic!("expected a failure: {report:?}");
    };
    assert!(message.contains("test KMS get key"), "{message}");
    assert_eq!(report.revoked, 1, "the sweep ran despite the failure");
    source.refresh_fails.store(false, Ordering::SeqCst);

    // A newer version appears, but re-wrapping fails half-way through the
    // pass (the source switched, the data keys could not be unwrapped):
    // the next pass re-wraps even though `refresh` then reports no change.
    source.offered.store(2, Ordering::SeqCst);
    source.unwrap_fails.store(true, Ordering::SeqCst);
    assert!(matches!(
        vault.maintain().unwrap().master,
        MasterCheck::Failed(_)
    ));
    assert_eq!(vault.master_key_id().unwrap(), source.id(1));
    source.unwrap_fails.store(false, Ordering::SeqCst);
    let MasterCheck::Rotated(rotation) = vault.maintain().unwrap().master else {
        panic!("the failed re-wrap must be retried");
    };
    assert_eq!(rotation.key_id, source.id(2));
    assert_eq!(rotation.rewrapped, 2, "the two active versions");
    assert_eq!(vault.master_key_id().unwrap(), source.id(2));
    assert_eq!(vault.resolve("openai", "default").unwrap().version, 2);
}

#[test]
fn maintenance_runs_on_its_thread_until_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let vault = Vault::open(db(dir.path()), master(7)).unwrap();
    add(&vault, "openai", None);

    let (tx, rx) = mpsc::channel();
    let task = vault
        .spawn_maintenance(Duration::from_millis(5), move |pass| {
            let _ = tx.send(pass.map(|report| report.revoked));
        })
        .unwrap();
    for _ in 0..3 {
        let pass = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(pass.unwrap(), 0);
    }
    assert!(task.stop());
    // The thread ended, and with it the callback and its sender.
    while rx.recv_timeout(Duration::from_secs(10)).is_ok() {}
    assert!(matches!(
        rx.try_recv(),
        Err(mpsc::TryRecvError::Disconnected)
    ));

    // Dropping the handle stops the thread too, and an hour-long wait
    // between passes does not delay it.
    let (tx, rx) = mpsc::channel();
    let task = vault
        .spawn_maintenance(Duration::from_secs(3600), move |pass| {
            let _ = tx.send(pass.is_ok());
        })
        .unwrap();
    assert!(rx.recv_timeout(Duration::from_secs(10)).unwrap());
    drop(task);
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)),
        Err(mpsc::RecvTimeoutError::Disconnected)
    );
}
