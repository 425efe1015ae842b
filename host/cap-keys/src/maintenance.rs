//! Upkeep of a vault in a long-running host: the grace-period sweep, master
//! key versions, and the key policy's warnings, once per pass
//! ([`Vault::maintain`]) and on a thread of its own
//! ([`Vault::spawn_maintenance`]).

use std::fmt;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use crate::error::Result;
use crate::model::{KeyListing, KeyRef, KeyState, KeyWarning};
use crate::vault::{MasterRotation, Vault};

const DAY_SECS: u64 = 86_400;

/// A policy warning about the active version of one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyAlert {
    /// Which key.
    pub key: KeyRef,
    /// Its active version.
    pub version: u32,
    /// What the policy says.
    pub warning: KeyWarning,
    /// Whole days until the limit the warning is about (the maximum age or
    /// the expiry date); zero or negative once it has passed.
    pub days_left: i64,
}

impl KeyAlert {
    /// A stable name of the warning, for logs and metrics: `max-age-near`,
    /// `max-age-exceeded`, `expires-soon` or `expired`.
    pub fn kind(&self) -> &'static str {
        match self.warning {
            KeyWarning::MaxAgeNear { .. } => "max-age-near",
            KeyWarning::MaxAgeExceeded { .. } => "max-age-exceeded",
            KeyWarning::ExpiresSoon { .. } => "expires-soon",
            KeyWarning::Expired => "expired",
        }
    }

    fn new(listing: &KeyListing, warning: KeyWarning, now: SystemTime) -> Self {
        let signed = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let days_left = match &warning {
            KeyWarning::MaxAgeNear {
                age_days,
                max_age_days,
            }
            | KeyWarning::MaxAgeExceeded {
                age_days,
                max_age_days,
            } => i64::from(*max_age_days) - signed(*age_days),
            KeyWarning::ExpiresSoon { days_left } => signed(*days_left),
            KeyWarning::Expired => listing
                .expires
                .and_then(|expires| now.duration_since(expires).ok())
                .map_or(0, |past| -signed(past.as_secs() / DAY_SECS)),
        };
        Self {
            key: listing.key.clone(),
            version: listing.version,
            warning,
            days_left,
        }
    }
}

impl fmt::Display for KeyAlert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key {} v{}: {}", self.key, self.version, self.warning)
    }
}

/// What a pass did about the master key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MasterCheck {
    /// Everything is wrapped with the source's newest version: nothing to do.
    Current,
    /// The source offered a newer version; the data keys were re-wrapped.
    Rotated(MasterRotation),
    /// Asking the source or re-wrapping failed (the message names what, never
    /// key material). The vault keeps serving; the next pass tries again.
    Failed(String),
}

/// The outcome of one [`Vault::maintain`] pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaintenanceReport {
    /// Versions whose grace period had ended, revoked and wiped by this pass.
    pub revoked: usize,
    /// The master key check.
    pub master: MasterCheck,
    /// Policy warnings about active keys (age and expiry), sorted by key.
    pub alerts: Vec<KeyAlert>,
}

impl MaintenanceReport {
    /// Log the pass with `tracing`: one `warn` event per alert with the
    /// fields `key` (`provider/name`), `version`, `days_left` and `warning`
    /// (the [`KeyAlert::kind`]), a `warn` event if the master key check
    /// failed, and an `info` summary (`revoked`, `alerts`). Names, versions
    /// and counts only: a report holds no secret.
    pub fn log(&self) {
        for alert in &self.alerts {
            tracing::warn!(
                key = %alert.key,
                version = alert.version,
                days_left = alert.days_left,
                warning = alert.kind(),
                "{alert}"
            );
        }
        match &self.master {
            MasterCheck::Current => {}
            MasterCheck::Rotated(rotation) => tracing::info!(
                key_id = %rotation.key_id,
                rewrapped = rotation.rewrapped,
                "data keys re-wrapped with the master key's newest version"
            ),
            MasterCheck::Failed(error) => tracing::warn!(
                %error,
                "cannot check the master key for a newer version; the vault keeps serving and the next pass retries"
            ),
        }
        tracing::info!(
            revoked = self.revoked,
            alerts = self.alerts.len(),
            "key vault maintenance pass done"
        );
    }
}

impl Vault {
    /// One maintenance pass, for a host that keeps a vault open for days:
    ///
    /// 1. [`Vault::revoke_expired`]: wipe versions whose grace period ended;
    /// 2. [`Vault::refresh_master`]: re-wrap the data keys if the master key
    ///    source offers a newer version (Azure Key Vault rotated its key);
    /// 3. the key policy's warnings about active keys, as [`Vault::list`]
    ///    computes them (age against `KeyPolicy` maximums, expiry dates).
    ///
    /// A failure of step 2 (a KMS out of reach) is reported in
    /// [`MaintenanceReport::master`] and does not stop the other steps; a
    /// database failure of step 1 or 3 is the error.
    #[tracing::instrument(name = "convergio.keys.maintain", skip(self))]
    pub fn maintain(&self) -> Result<MaintenanceReport> {
        let revoked = self.revoke_expired()?;
        let master = match self.refresh_master() {
            Ok(None) => MasterCheck::Current,
            Ok(Some(rotation)) => MasterCheck::Rotated(rotation),
            Err(err) => MasterCheck::Failed(err.to_string()),
        };
        let now = self.now();
        let alerts = self
            .list()?
            .into_iter()
            .filter(|listing| listing.state == KeyState::Active)
            .flat_map(|listing| {
                listing
                    .warnings
                    .iter()
                    .map(|warning| KeyAlert::new(&listing, warning.clone(), now))
                    .collect::<Vec<_>>()
            })
            .collect();
        Ok(MaintenanceReport {
            revoked,
            master,
            alerts,
        })
    }

    /// Run [`Vault::maintain`] now and then every `every` (at least 1 ms),
    /// on a thread of its own (the passes do blocking SQLite and, for a KMS,
    /// network calls), handing each outcome to `on_pass` — for example
    /// [`MaintenanceReport::log`]. The passes stop when the returned handle
    /// is stopped or dropped.
    pub fn spawn_maintenance(
        &self,
        every: Duration,
        mut on_pass: impl FnMut(Result<MaintenanceReport>) + Send + 'static,
    ) -> std::io::Result<MaintenanceTask> {
        let every = every.max(Duration::from_millis(1));
        let vault = self.clone();
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("convergio-vault-maintenance".to_owned())
            .spawn(move || {
                loop {
                    on_pass(vault.maintain());
                    match stopped.recv_timeout(every) {
                        Err(RecvTimeoutError::Timeout) => {}
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
            })?;
        Ok(MaintenanceTask {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

/// The thread of [`Vault::spawn_maintenance`]. Dropping it asks the thread to
/// stop after the pass in progress, without waiting; [`MaintenanceTask::stop`]
/// waits.
#[derive(Debug)]
pub struct MaintenanceTask {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl MaintenanceTask {
    /// Stop the passes and wait for the pass in progress, if any, to end.
    /// Returns false if a pass panicked (in `on_pass`, say).
    pub fn stop(mut self) -> bool {
        self.stop.take();
        self.thread
            .take()
            .is_none_or(|thread| thread.join().is_ok())
    }
}

impl Drop for MaintenanceTask {
    fn drop(&mut self) {
        // Closing the channel wakes the thread, which then ends.
        self.stop.take();
    }
}
