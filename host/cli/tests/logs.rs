//! What a plugin logs cannot pass for the host's own log lines.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use convergio_tests::process::output;
use convergio_tests::{TestPlugin, test_component, write_platform};

#[test]
fn a_plugin_cannot_forge_a_host_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let logger = TestPlugin::new("logger", "tool", test_component("host_memory_tool"))
        .declares(&["storage", "http", "logging"])
        .grants("storage = [\"data\"]\nhttp = [\"http://127.0.0.1:9\"]\nlogging = true");
    let config = write_platform(dir.path(), "", &[logger]);
    let forged = "all good\n2026-12-06T00:00:00.000000Z  WARN convergio_cap_keys::maintenance: key openai/default expired\r\x1b[2K";
    let args = serde_json::json!(["log", serde_json::json!({ "message": forged }).to_string()]);
    let out = output(
        Command::new(env!("CARGO_BIN_EXE_convergio"))
            .args(["--config", config.to_str().unwrap(), "--log", "warn"])
            .args(["invoke", "logger", "tool.invoke", &args.to_string()])
            .env("CONVERGIO_HOME", dir.path().join("home"))
            .env_remove("RUST_LOG"),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("all good")).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    let line = lines[0];
    assert!(line.contains("WARN plugin:"), "{line}");
    assert!(
        line.contains("plugin=\"logger\"") || line.contains("plugin=logger"),
        "{line}"
    );
    // The forged text stays inside the plugin's line, escaped.
    assert!(line.contains("all good\\n2026-12-06"), "{line}");
    assert!(!line.contains('\r') && !line.contains('\x1b'), "{line:?}");
    assert!(
        !stderr
            .lines()
            .any(|l| l.trim_start().starts_with("2026-12-06T00:00:00")),
        "{stderr}"
    );
}
