//! Key references through the host: a plugin sees only the keys granted to
//! it, as opaque references; the secret never enters the guest.

// Test helpers outside #[test] functions may panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use convergio_cap_keys::secrecy::SecretString;
use convergio_cap_keys::{AuthScheme, Vault};
use convergio_runtime::Runtime;
use convergio_tests::{TestPlugin, start, test_component};
use serde_json::{Value, json};

const SECRET: &str = "sk-KEYS-MARKER-3b7d1f9e5a2c4e6b";

async fn call(runtime: &Runtime, tool: &str, args: &str) -> Value {
    runtime
        .invoke_json("keyed", "tool.invoke", &json!([tool, args]))
        .await
        .expect("the call itself succeeds")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn granted_keys_are_references_and_others_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let vault = Vault::open_in(&dir.path().join("platform-data")).unwrap();
    for provider in ["openai", "anthropic"] {
        vault
            .add(
                provider,
                "default",
                &SecretString::from(SECRET.to_string()),
                None,
                &[format!("api.{provider}.com")],
                AuthScheme::for_provider(provider),
            )
            .unwrap();
    }
    let plugin = TestPlugin::new("keyed", "tool", test_component("keys_tool"))
        .declares(&["keys"])
        .grants("keys = [\"openai\", \"gemini/team\"]");
    let runtime = start(dir.path(), "", &[plugin]).await;

    assert_eq!(
        call(&runtime, "available", "").await,
        json!({"ok": "openai/default v1"})
    );
    assert_eq!(
        call(&runtime, "reference", "openai default").await,
        json!({"ok": "key:openai/default"})
    );

    let out = call(&runtime, "reference", "anthropic default").await;
    let denied = out["err"]["denied"]
        .as_str()
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        denied.contains("not granted key anthropic/default"),
        "{denied}"
    );

    let out = call(&runtime, "reference", "gemini team").await;
    let failed = out["err"]["failed"]
        .as_str()
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        failed.contains("gemini/team"),
        "granted but not stored: {failed}"
    );

    // Rotation is picked up without a restart: the reference stays, the version moves.
    vault
        .rotate(
            "openai",
            "default",
            &SecretString::from(format!("{SECRET}-2")),
            std::time::Duration::from_secs(60),
            None,
        )
        .unwrap();
    assert_eq!(
        call(&runtime, "available", "").await,
        json!({"ok": "openai/default v2"})
    );

    for out in [
        call(&runtime, "available", "").await,
        call(&runtime, "reference", "openai default").await,
    ] {
        assert!(
            !out.to_string().contains(SECRET),
            "a secret reached the guest"
        );
    }
}
