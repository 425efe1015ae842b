//! `convergio run` maintains the key vault in the background: a key close
//! to its expiry is a `warn` line with the key, version and days left, at
//! start and then at every interval, and never with the secret.

// Test helpers outside #[test] functions may panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use convergio_tests::{TestPlugin, test_component, write_platform};

const MARKER: &str = "sk-MAINTENANCE-MARKER-4c2e8a6f0b1d";

/// Kills the child when the test ends, however it ends.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn run_warns_about_a_key_near_its_expiry_at_start_and_every_interval() {
    let home = tempfile::tempdir().unwrap();
    // Expires in 3 days and an hour: "3 days left".
    let expires = SystemTime::now() + Duration::from_secs(3 * 86_400 + 3600);
    let expires = humantime::format_rfc3339_seconds(expires).to_string();
    let mut add = Command::new(env!("CARGO_BIN_EXE_convergio"))
        .args(["--config", "/nonexistent/platform.toml", "keys", "add"])
        .args(["openai", "--expires", &expires])
        .env("CONVERGIO_HOME", home.path())
        .env_remove("CONVERGIO_MASTER_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    add.stdin
        .take()
        .unwrap()
        .write_all(format!("{MARKER}\n").as_bytes())
        .unwrap();
    let out = add.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A plugin granted the key, so the runtime opens the vault.
    let platform_dir = tempfile::tempdir().unwrap();
    let plugin = TestPlugin::new("keyed", "tool", test_component("keys_tool"))
        .declares(&["keys"])
        .grants("keys = [\"openai\"]");
    let data_dir = format!("data-dir = {:?}\n", home.path());
    let platform = write_platform(platform_dir.path(), &data_dir, &[plugin]);

    let mut child = Command::new(env!("CARGO_BIN_EXE_convergio"))
        .arg("--config")
        .arg(&platform)
        .args(["--log", "info", "run", "--key-maintenance-every", "300ms"])
        .env("CONVERGIO_HOME", home.path())
        .env_remove("CONVERGIO_MASTER_KEY")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let _running = Running(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });

    // Two passes: the one at start and the next one, 300 ms later.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut printed = Vec::new();
    let mut warnings = 0;
    while warnings < 2 {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            panic!("no second maintenance warning; stderr so far:\n{printed:#?}");
        };
        if line.contains("expires-soon") {
            warnings += 1;
            assert!(line.contains("WARN"), "{line}");
            for field in ["key=openai/default", "version=1", "days_left=3"] {
                assert!(line.contains(field), "{field} missing in {line}");
            }
        }
        printed.push(line);
    }
    assert!(
        printed
            .iter()
            .any(|l| l.contains("key vault maintenance pass done")),
        "{printed:#?}"
    );
    for line in &printed {
        assert!(
            !line.contains(MARKER) && !line.contains(&MARKER[3..]),
            "the secret was logged: {line}"
        );
    }
}
