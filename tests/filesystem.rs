//! Directory grants: a plugin sees only the directories granted to it, with
//! the access granted; `..`, absolute paths and symlinks cannot leave them.

// Test helpers outside #[test] functions may panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use convergio_runtime::Runtime;
use convergio_tests::{TestPlugin, start, start_err, test_component};
use serde_json::{Value, json};

async fn call(runtime: &Runtime, tool: &str, args: &str) -> Value {
    runtime
        .invoke_json("fs", "tool.invoke", &json!([tool, args]))
        .await
        .expect("the call itself succeeds; denials are error values")
}

fn failed(out: &Value) -> String {
    out["err"]["failed"]
        .as_str()
        .unwrap_or_else(|| panic!("expected a failure, got {out}"))
        .to_string()
}

fn fs_plugin(grants: &str) -> TestPlugin {
    TestPlugin::new("fs", "tool", test_component("fs_tool")).grants(grants)
}

/// A data directory with one file, and a symlink inside it pointing out of it.
fn data_dir(root: &std::path::Path) -> std::path::PathBuf {
    let data = root.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("hello.txt"), "hello from the host").unwrap();
    std::fs::write(root.join("secret.txt"), "outside the grant").unwrap();
    std::os::unix::fs::symlink(root, data.join("escape")).unwrap();
    data
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_grant_reads_inside_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    data_dir(dir.path());
    let runtime = start(
        dir.path(),
        "",
        &[fs_plugin(
            "directories = [{ host = \"data\", guest = \"/data\" }]",
        )],
    )
    .await;

    assert_eq!(
        call(&runtime, "read", "/data/hello.txt").await,
        json!({"ok": "hello from the host"})
    );
    assert_eq!(
        call(&runtime, "list", "/data").await,
        json!({"ok": "escape\nhello.txt"})
    );

    for outside in [
        "/etc/passwd",
        "/data/../secret.txt",
        "/data/../../../../etc/passwd",
        "/data/escape/secret.txt",
        "secret.txt",
    ] {
        let out = call(&runtime, "read", outside).await;
        assert!(out.get("err").is_some(), "{outside} was readable: {out}");
    }

    let out = call(&runtime, "write", "/data/new.txt\nnope").await;
    let reason = failed(&out);
    assert!(
        !dir.path().join("data/new.txt").exists(),
        "a read-only grant was written: {reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writable_grant_writes_inside_only() {
    let dir = tempfile::tempdir().unwrap();
    data_dir(dir.path());
    let runtime = start(
        dir.path(),
        "",
        &[fs_plugin(
            "directories = [{ host = \"data\", guest = \"/data\", writable = true }]",
        )],
    )
    .await;
    assert_eq!(
        call(&runtime, "write", "/data/new.txt\nfresh").await,
        json!({"ok": "written"})
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("data/new.txt")).unwrap(),
        "fresh"
    );

    for outside in [
        "/data/../planted.txt\nx",
        "/data/escape/planted.txt\nx",
        "/tmp/planted.txt\nx",
    ] {
        let out = call(&runtime, "write", outside).await;
        failed(&out);
    }
    assert!(!dir.path().join("planted.txt").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_is_empty_unless_granted() {
    let dir = tempfile::tempdir().unwrap();
    data_dir(dir.path());
    // The host process has PATH; the plugin must not see it.
    let runtime = start(
        dir.path(),
        "",
        &[fs_plugin(
            "directories = [{ host = \"data\", guest = \"/data\" }]\nenv = { GREETING = \"hi\" }",
        )],
    )
    .await;
    assert_eq!(call(&runtime, "env", "GREETING").await, json!({"ok": "hi"}));
    failed(&call(&runtime, "env", "PATH").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_directory_grant_no_files() {
    let dir = tempfile::tempdir().unwrap();
    data_dir(dir.path());
    // Importing wasi:filesystem is allowed (cargo component's adapter always
    // does); without a directory grant there is simply nothing to open.
    let runtime = start(dir.path(), "", &[fs_plugin("")]).await;
    for path in ["/", "/etc/passwd", "data/hello.txt", "/data/hello.txt", "."] {
        let out = call(&runtime, "read", path).await;
        assert!(
            out.get("err").is_some(),
            "{path} was readable without a grant: {out}"
        );
    }
    failed(&call(&runtime, "list", "/").await);
    failed(&call(&runtime, "write", "/planted.txt\nx").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_host_directory_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = start_err(
        dir.path(),
        "",
        &[fs_plugin(
            "directories = [{ host = \"nowhere\", guest = \"data\" }]",
        )],
    )
    .await;
    assert!(err.contains("nowhere is not a directory"), "{err}");
    assert!(err.contains("guest path `data` must be absolute"), "{err}");
}

/// The platform's own files (storage, usage ledger, key vault and master
/// key in the data directory; the compile cache; the model cache) are never
/// shared with a plugin: a grant that contains one, or lies inside one, is
/// refused at load, naming the grant's line and the protected path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_overlapping_the_platforms_own_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    for sub in ["platform-data/models", "cache", "my-models", "data"] {
        std::fs::create_dir_all(root.join(sub)).unwrap();
    }
    std::os::unix::fs::symlink(root.join("platform-data"), root.join("innocent")).unwrap();
    let runtime =
        "compile-cache = true\ncache-dir = \"cache\"\n[local-models]\ncache-dir = \"my-models\"";
    let refused = |host: &str| format!("directories = [{{ host = \"{host}\", guest = \"/x\" }}]");

    for (host, protected) in [
        // The data directory itself, a folder inside it, a folder holding it.
        ("platform-data", "platform-data"),
        ("platform-data/models", "platform-data"),
        (".", "cache"),
        // A symlink is judged by where it points.
        ("innocent", "platform-data"),
        ("cache", "cache"),
        ("my-models", "my-models"),
    ] {
        let err = start_err(dir.path(), runtime, &[fs_plugin(&refused(host))]).await;
        let protected = root.join(protected);
        assert!(
            err.contains("overlaps the") && err.contains(&format!(" {}", protected.display())),
            "{host}: {err}"
        );
        assert!(err.contains("plugin `fs` is granted"), "{host}: {err}");
        // The line of the grant in platform.toml.
        let text = std::fs::read_to_string(root.join("platform.toml")).unwrap();
        let line = text
            .lines()
            .position(|l| l.contains(&format!("host = \"{host}\"")))
            .unwrap()
            + 1;
        assert!(
            err.contains(&format!("platform.toml:{line}: field `grants.directories`")),
            "{host}: {err}"
        );
    }

    // A sibling of the protected folders is fine.
    let runtime = start(
        dir.path(),
        "",
        &[fs_plugin(
            "directories = [{ host = \"data\", guest = \"/data\" }]",
        )],
    )
    .await;
    assert!(call(&runtime, "list", "/data").await.get("ok").is_some());
}
