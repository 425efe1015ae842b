//! What a maintenance pass logs: one `warn` event per key alert with the
//! fields `key`, `version`, `days_left` and `warning`, and never a secret.
//! (A test binary of its own: it installs a process-wide subscriber.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{MARKER, ManualClock, db, hosts, master};
use convergio_cap_keys::secrecy::SecretString;
use convergio_cap_keys::{AuthScheme, KeyPolicy, Vault, VaultOptions};
use tracing::field::{Field, Visit};
use tracing::span;

/// Every event (level and fields) and every span (name and fields).
#[derive(Clone, Default)]
struct Recorder {
    lines: Arc<Mutex<Vec<String>>>,
    next: Arc<AtomicU64>,
}

struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }
}

impl tracing::Subscriber for Recorder {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &span::Attributes<'_>) -> span::Id {
        let mut fields = Fields(format!("span {}", span.metadata().name()));
        span.record(&mut fields);
        self.lines.lock().unwrap().push(fields.0);
        span::Id::from_u64(self.next.fetch_add(1, Ordering::Relaxed) + 1)
    }
    fn record(&self, _: &span::Id, values: &span::Record<'_>) {
        let mut fields = Fields("record".to_owned());
        values.record(&mut fields);
        self.lines.lock().unwrap().push(fields.0);
    }
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = Fields(format!("{}", event.metadata().level()));
        event.record(&mut fields);
        self.lines.lock().unwrap().push(fields.0);
    }
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}

#[test]
fn alerts_are_warn_events_with_fields_and_no_secret() {
    let recorder = Recorder::default();
    tracing::subscriber::set_global_default(recorder.clone()).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let mut policy = KeyPolicy::default();
    policy.max_age_days.insert("anthropic".to_owned(), 12);
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
    let expires = clock.now() + Duration::from_secs(86_400 * 10);
    for provider in ["openai", "anthropic"] {
        vault
            .add(
                provider,
                "default",
                &SecretString::from(MARKER.to_owned()),
                Some(expires),
                &hosts(&["api.example.com"]),
                AuthScheme::Bearer,
            )
            .unwrap();
    }
    vault.resolve("openai", "default").unwrap();
    clock.advance(Duration::from_secs(86_400 * 7));

    let report = vault.maintain().unwrap();
    report.log();

    let lines = recorder.lines.lock().unwrap().clone();
    let warn = |needle: &str| {
        lines
            .iter()
            .find(|l| l.starts_with("WARN") && l.contains(needle))
            .unwrap_or_else(|| panic!("no warn event with {needle}: {lines:#?}"))
    };
    let openai = warn("key=openai/default");
    for field in [
        "version=1",
        "days_left=3",
        "warning=\"expires-soon\"",
        "message=key openai/default v1: expires in 3 days",
    ] {
        assert!(openai.contains(field), "{field} missing in {openai}");
    }
    let anthropic = warn("warning=\"max-age-near\"");
    assert!(anthropic.contains("key=anthropic/default"), "{anthropic}");
    assert!(anthropic.contains("days_left=5"), "{anthropic}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("INFO") && l.contains("revoked=0 alerts=3")),
        "{lines:#?}"
    );
    for line in &lines {
        assert!(
            !line.contains(MARKER) && !line.contains(&MARKER[3..]),
            "a secret was logged: {line}"
        );
    }
}
