//! Outgoing HTTP through the host (`wasi:http/outgoing-handler`): a guest
//! reaches only its granted destinations, never an internal address through
//! a name, carries keys only to their bound hosts, and every limit ends a
//! request with its `wasi:http` error code. The upstream is a real HTTP
//! server on 127.0.0.1 (`convergio_tests::upstream`).

// Test helpers outside #[test] functions may panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Read as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use convergio_cap_keys::secrecy::SecretString;
use convergio_cap_keys::{AuthScheme, Vault};
use convergio_runtime::Runtime;
use convergio_tests::upstream::{Reply, TestCa, Upstream};
use convergio_tests::{TestPlugin, start, start_err, test_component};
use serde_json::{Value, json};

const SECRET: &str = "sk-HTTP-MARKER-6d0c2b8e4f1a3c5e";

fn plugin(grants: &str, limits: &str) -> TestPlugin {
    TestPlugin::new("fetcher", "tool", test_component("http_tool"))
        .declares(&["http", "keys"])
        .grants(grants)
        .limits(limits)
}

/// Run `fetch` with `args`; the results, one per request.
async fn fetch(runtime: &Runtime, args: Value) -> Vec<Value> {
    let out = runtime
        .invoke_json(
            "fetcher",
            "tool.invoke",
            &json!(["fetch", args.to_string()]),
        )
        .await
        .expect("the call itself succeeds");
    let text = out["ok"].as_str().unwrap_or_else(|| panic!("{out}"));
    serde_json::from_str::<Vec<Value>>(text).unwrap()
}

async fn fetch_one(runtime: &Runtime, args: Value) -> Value {
    fetch(runtime, args).await.remove(0)
}

fn echo(_: &convergio_tests::upstream::Received) -> Reply {
    Reply::json(200, &json!({"hello": "guest"}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_granted_destination_gets_the_request_as_sent() {
    let upstream = Upstream::start(echo).await;
    let dir = tempfile::tempdir().unwrap();
    let grants = format!("http = [\"{}\"]", upstream.origin());
    let runtime = start(dir.path(), "", &[plugin(&grants, "")]).await;

    let out = fetch_one(
        &runtime,
        json!({
            "url": format!("{}/v1/things?x=1", upstream.origin()),
            "method": "POST",
            "body": "{\"n\":1}",
            "headers": [["content-type", "application/json"], ["x-trace", "abc"]],
        }),
    )
    .await;
    assert_eq!(out["status"], 200, "{out}");
    assert_eq!(out["body"], r#"{"hello":"guest"}"#);

    let received = upstream.received();
    assert_eq!(received.len(), 1);
    let r = &received[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/v1/things?x=1")
    );
    assert_eq!(r.body, b"{\"n\":1}");
    assert_eq!(r.header("x-trace"), Some("abc"));
    assert_eq!(
        r.header("host"),
        Some(format!("127.0.0.1:{}", upstream.port()).as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destinations_off_the_list_are_denied() {
    let upstream = Upstream::start(echo).await;
    let other = Upstream::start(echo).await;
    let dir = tempfile::tempdir().unwrap();
    let grants = format!("http = [\"{}\"]", upstream.origin());
    let runtime = start(dir.path(), "", &[plugin(&grants, "")]).await;

    for url in [
        format!("{}/", other.origin()),
        format!("https://127.0.0.1:{}/", upstream.port()),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://example.com/".to_owned(),
    ] {
        let out = fetch_one(&runtime, json!({ "url": url })).await;
        assert_eq!(out["error"], "ErrorCode::HttpRequestDenied", "{url}: {out}");
    }
    assert!(other.received().is_empty());
    assert!(upstream.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_addresses_behind_allowed_names_are_refused() {
    let upstream = Upstream::start(echo).await;
    let dir = tempfile::tempdir().unwrap();
    // `localhost` resolves to loopback through the system resolver; the
    // override sends `metadata.test` to the cloud metadata address.
    let port = upstream.port();
    let grants = format!(
        "http = [\"http://localhost:{port}\", \"http://metadata.test\", \"http://rebind.test:{port}\"]"
    );
    let runtime_settings = "[runtime.http]\nresolve = { \"metadata.test\" = [\"169.254.169.254\"], \"rebind.test\" = [\"127.0.0.1\", \"10.1.2.3\"] }\n";
    let runtime = start(dir.path(), runtime_settings, &[plugin(&grants, "")]).await;

    for url in [
        format!("http://localhost:{port}/"),
        "http://metadata.test/latest/meta-data/iam".to_owned(),
        format!("http://rebind.test:{port}/"),
    ] {
        let out = fetch_one(&runtime, json!({ "url": url })).await;
        assert_eq!(
            out["error"], "ErrorCode::DestinationIpProhibited",
            "{url}: {out}"
        );
    }
    assert!(upstream.received().is_empty(), "nothing reached the server");
}

/// A vault in the platform's data directory with the test keys.
fn vault_with_keys(dir: &std::path::Path) -> Vault {
    let vault = Vault::open_in(&dir.join("platform-data")).unwrap();
    let secret = SecretString::from(SECRET.to_owned());
    // Bound to the test server.
    vault
        .add(
            "openai",
            "default",
            &secret,
            None,
            &["127.0.0.1".into()],
            AuthScheme::Bearer,
        )
        .unwrap();
    // Bound to the real API only.
    vault
        .add(
            "openai",
            "elsewhere",
            &secret,
            None,
            &["api.openai.com".into()],
            AuthScheme::Bearer,
        )
        .unwrap();
    // Bound to the test server but not granted to the plugin.
    vault
        .add(
            "anthropic",
            "default",
            &secret,
            None,
            &["127.0.0.1".into()],
            AuthScheme::XApiKey,
        )
        .unwrap();
    vault
}

/// An upstream that answers whether the request carried an `authorization` header.
async fn authorization_reporter() -> Upstream {
    Upstream::start(|r| {
        Reply::json(
            200,
            &json!({"authorized": r.header("authorization").is_some()}),
        )
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_travel_only_where_granted_and_bound() {
    let upstream = authorization_reporter().await;
    let dir = tempfile::tempdir().unwrap();
    let vault = vault_with_keys(dir.path());
    let grants = format!("http = [\"{}\"]\nkeys = [\"openai\"]", upstream.origin());
    let runtime = start(dir.path(), "", &[plugin(&grants, "")]).await;
    let url = format!("{}/v1/chat", upstream.origin());

    // Granted and bound: the host adds the header, replacing the guest's own.
    let out = fetch_one(
        &runtime,
        json!({ "url": url, "key": "key:openai/default",
                "headers": [["authorization", "Bearer guest-made-this-up"]] }),
    )
    .await;
    assert_eq!(out["body"], r#"{"authorized":true}"#, "{out}");
    let received = upstream.received();
    let sent: Vec<&str> = received[0]
        .headers
        .iter()
        .filter(|(n, _)| n == "authorization")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(sent, [format!("Bearer {SECRET}")]);
    assert!(
        received[0].header("convergio-key").is_none(),
        "the reference header is removed"
    );
    assert!(!out.to_string().contains(SECRET));

    // Not bound to this host, not granted, malformed, unknown: denied before anything leaves.
    for key in [
        "key:openai/elsewhere",
        "key:anthropic/default",
        "openai",
        "key:openai/missing",
    ] {
        let out = fetch_one(&runtime, json!({ "url": url, "key": key })).await;
        assert_eq!(out["error"], "ErrorCode::HttpRequestDenied", "{key}: {out}");
    }
    assert_eq!(
        upstream.received().len(),
        1,
        "denied requests never reach the server"
    );

    // Metered per key version (recorded off the request path, so poll briefly).
    let mut counted = (0, 0);
    for _ in 0..100 {
        let usage = vault.usage(Some("openai"), None).unwrap();
        if let Some(row) = usage.iter().find(|u| u.key.name == "default") {
            counted = (row.totals.requests, row.totals.errors);
            if counted.0 > 0 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(counted, (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_end_requests_with_their_error_codes() {
    let upstream = Upstream::start(|r| match r.path.as_str() {
        "/big" => Reply::text(vec![b'x'; 4096]),
        "/stream-big" => Reply::stream(
            "application/octet-stream",
            (0..8).map(|_| Bytes::from(vec![b'y'; 512])).collect(),
            Duration::from_millis(5),
        ),
        "/slow" => Reply::text("late").after(Duration::from_secs(5)),
        "/wait" => Reply::text("ok").after(Duration::from_millis(400)),
        "/drip" => Reply::stream(
            "text/event-stream",
            vec![Bytes::from("data: 1\n\n"), Bytes::from("data: 2\n\n")],
            Duration::from_millis(800),
        ),
        _ => Reply::text("small"),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let grants = format!("http = [\"{}\"]", upstream.origin());
    let limits = "http-max-response-bytes = 1024\nhttp-timeout-ms = 1500\nhttp-max-concurrent = 2";
    let runtime = start(dir.path(), "", &[plugin(&grants, limits)]).await;
    let url = |path: &str| format!("{}{path}", upstream.origin());

    let out = fetch_one(&runtime, json!({ "url": url("/small") })).await;
    assert_eq!(out["body"], "small", "{out}");

    // Declared too large: refused at the headers.
    let out = fetch_one(&runtime, json!({ "url": url("/big") })).await;
    assert_eq!(
        out["error"], "ErrorCode::HttpResponseBodySize(Some(4096))",
        "{out}"
    );

    // Streamed past the limit: cut at the limit.
    let out = fetch_one(&runtime, json!({ "url": url("/stream-big") })).await;
    // (wasmtime-wasi-http 48 carries a body error's code only in its message.)
    assert_eq!(
        out["error"], "HTTP response body size exceeds limit: 1024 bytes",
        "{out}"
    );
    assert!(out["after_bytes"].as_u64().unwrap() <= 1024, "{out}");

    // No answer within the total timeout.
    let started = std::time::Instant::now();
    let out = fetch_one(&runtime, json!({ "url": url("/slow") })).await;
    assert_eq!(out["error"], "ErrorCode::HttpResponseTimeout", "{out}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "ended by the limit, not the server"
    );

    // Three at once with room for two.
    let outs = fetch(&runtime, json!({ "url": url("/wait"), "count": 3 })).await;
    let ok = outs.iter().filter(|o| o["body"] == "ok").count();
    let limited = outs
        .iter()
        .filter(|o| o["error"] == "ErrorCode::ConnectionLimitReached")
        .count();
    assert_eq!((ok, limited), (2, 1), "{outs:?}");
    // The slots come back once the bodies are read.
    let outs = fetch(&runtime, json!({ "url": url("/wait"), "count": 2 })).await;
    assert!(outs.iter().all(|o| o["body"] == "ok"), "{outs:?}");

    // The guest's own between-bytes timeout.
    let out = fetch_one(
        &runtime,
        json!({ "url": url("/drip"), "between_bytes_ms": 200 }),
    )
    .await;
    assert_eq!(out["error"], "connection read timeout", "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_bodies_arrive_in_pieces() {
    let events: Vec<Bytes> = (1..=4)
        .map(|i| Bytes::from(format!("data: {{\"n\":{i}}}\n\n")))
        .collect();
    let upstream = Upstream::start(move |_| {
        Reply::stream(
            "text/event-stream",
            events.clone(),
            Duration::from_millis(50),
        )
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let grants = format!("http = [\"{}\"]", upstream.origin());
    let runtime = start(dir.path(), "", &[plugin(&grants, "")]).await;
    let out = fetch_one(
        &runtime,
        json!({ "url": format!("{}/sse", upstream.origin()) }),
    )
    .await;
    let body = out["body"].as_str().unwrap();
    assert_eq!(body.matches("data: ").count(), 4, "{out}");
    assert!(
        out["chunks"].as_u64().unwrap() >= 2,
        "passed through as it came: {out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_trusts_the_operators_ca_and_nothing_else() {
    let ca = TestCa::generate();
    let upstream = Upstream::start_tls(&ca, echo).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("test-ca.pem"), &ca.ca_pem).unwrap();
    let grants = format!("http = [\"{}\"]", upstream.origin());
    let url = format!("{}/secure", upstream.origin());

    let runtime = start(
        dir.path(),
        "[runtime.http]\nca-files = [\"test-ca.pem\"]\n",
        &[plugin(&grants, "")],
    )
    .await;
    let out = fetch_one(&runtime, json!({ "url": url })).await;
    assert_eq!(out["status"], 200, "{out}");
    drop(runtime);

    let untrusting = tempfile::tempdir().unwrap();
    let runtime = start(untrusting.path(), "", &[plugin(&grants, "")]).await;
    let out = fetch_one(&runtime, json!({ "url": url })).await;
    assert_eq!(out["error"], "ErrorCode::TlsProtocolError", "{out}");
    assert_eq!(
        upstream.received().len(),
        1,
        "only the trusted handshake got through"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_grants_and_settings_fail_the_load_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let err = start_err(
        dir.path(),
        "",
        &[plugin(
            "http = [\"api.openai.com\", \"https://example.com/v1\"]",
            "",
        )],
    )
    .await;
    assert!(
        err.contains("http grant `api.openai.com`: no scheme"),
        "{err}"
    );
    assert!(err.contains("a grant names a host, not a path"), "{err}");
    assert!(err.contains("platform.toml:"), "points at the file: {err}");

    let err = start_err(
        dir.path(),
        "[runtime.http]\nca-files = [\"missing.pem\"]\n",
        &[plugin("http = [\"https://api.openai.com\"]", "")],
    )
    .await;
    assert!(err.contains("missing.pem"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_keep_succeeding_while_the_key_rotates() {
    let upstream = Upstream::start(|r| {
        let auth = r.header("authorization").unwrap_or_default();
        let good = auth.starts_with(&format!("Bearer {SECRET}"));
        Reply::json(if good { 200 } else { 401 }, &json!({}))
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let vault = vault_with_keys(dir.path());
    let grants = format!(
        "http = [\"{}\"]\nkeys = [\"openai/default\"]",
        upstream.origin()
    );
    let runtime = start(
        dir.path(),
        "",
        &[plugin(&grants, "http-max-concurrent = 64")],
    )
    .await;
    let url = format!("{}/v1/chat", upstream.origin());

    let done = Arc::new(AtomicUsize::new(0));
    let mut callers = Vec::new();
    for _ in 0..6 {
        let runtime = runtime.clone();
        let url = url.clone();
        let done = done.clone();
        callers.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            while done.load(Ordering::SeqCst) == 0 || statuses.len() < 5 {
                let out =
                    fetch_one(&runtime, json!({ "url": url, "key": "key:openai/default" })).await;
                statuses.push(out["status"].as_u64().unwrap_or(0));
            }
            statuses
        }));
    }
    for round in 1..=5 {
        // Another handle on the vault file, like `convergio keys rotate` in
        // another process: the runtime sees the change within a second.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let vault = vault.clone();
        tokio::task::spawn_blocking(move || {
            vault
                .rotate(
                    "openai",
                    "default",
                    &SecretString::from(format!("{SECRET}-r{round}")),
                    Duration::from_secs(60),
                    None,
                )
                .unwrap();
        })
        .await
        .unwrap();
    }
    done.store(1, Ordering::SeqCst);
    let mut total = 0;
    for caller in callers {
        let statuses = caller.await.unwrap();
        assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
        total += statuses.len();
    }
    let versions: std::collections::BTreeSet<String> = upstream
        .received()
        .iter()
        .filter_map(|r| r.header("authorization").map(ToOwned::to_owned))
        .collect();
    assert!(
        versions.len() >= 2,
        "requests used the rotated key too: {} kinds over {total} requests",
        versions.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_kept_alive_and_replaced_when_closed() {
    let upstream = Upstream::start(|r| {
        if r.path == "/close" {
            Reply::text("bye").header("connection", "close")
        } else if r.path == "/slow" {
            // Long enough that two requests sent together overlap on any machine.
            Reply::text("ok").after(Duration::from_millis(500))
        } else {
            Reply::text("ok")
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let grants = format!("http = [\"{}\"]", upstream.origin());
    let runtime = start(dir.path(), "", &[plugin(&grants, "")]).await;
    let url = |path: &str| format!("{}{path}", upstream.origin());

    for _ in 0..5 {
        let out = fetch_one(&runtime, json!({ "url": url("/a") })).await;
        assert_eq!(out["body"], "ok", "{out}");
    }
    assert_eq!(
        upstream.connections(),
        1,
        "one connection for five requests"
    );

    // The server closes after this answer; the next request opens a new connection.
    let out = fetch_one(&runtime, json!({ "url": url("/close") })).await;
    assert_eq!(out["body"], "bye");
    let out = fetch_one(&runtime, json!({ "url": url("/a") })).await;
    assert_eq!(out["body"], "ok", "{out}");
    assert_eq!(upstream.connections(), 2);

    // Two requests at once: the idle connection serves one, a new one the other.
    let outs = fetch(&runtime, json!({ "url": url("/slow"), "count": 2 })).await;
    assert!(outs.iter().all(|o| o["body"] == "ok"), "{outs:?}");
    assert_eq!(upstream.connections(), 3);
}

/// A port on 127.0.0.1 that nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Keys are bound to origins: scheme, host and port. A key bound to
/// `https://127.0.0.1` (port 443) does not travel over plain `http` to
/// that host, nor over `https` to another port; an `http://` binding holds
/// for its port only; a bare loopback binding allows http on any port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_travel_only_to_their_bound_origin() {
    let upstream = authorization_reporter().await;
    let dir = tempfile::tempdir().unwrap();
    let vault = vault_with_keys(dir.path());
    let secret = SecretString::from(SECRET.to_owned());
    let other_port = closed_port();
    for (name, origin) in [
        ("tls-only", "https://127.0.0.1".to_owned()),
        ("this-port", format!("http://127.0.0.1:{}", upstream.port())),
        ("other-port", format!("http://127.0.0.1:{other_port}")),
    ] {
        vault
            .add("openai", name, &secret, None, &[origin], AuthScheme::Bearer)
            .unwrap();
    }
    let tls_port = closed_port();
    let grants = format!(
        "http = [\"{}\", \"https://127.0.0.1:{tls_port}\"]\nkeys = [\"openai\"]",
        upstream.origin()
    );
    let runtime = start(dir.path(), "", &[plugin(&grants, "")]).await;
    let plain = format!("{}/v1/chat", upstream.origin());
    let tls = format!("https://127.0.0.1:{tls_port}/v1/chat");

    // Bound to https on 443: not over http, not to another https port.
    for url in [&plain, &tls] {
        let out = fetch_one(
            &runtime,
            json!({ "url": url, "key": "key:openai/tls-only" }),
        )
        .await;
        assert_eq!(out["error"], "ErrorCode::HttpRequestDenied", "{url}: {out}");
    }
    // Without the key the same https request goes out (and finds no server):
    // the denial above was the key's binding, not the allow-list.
    let out = fetch_one(&runtime, json!({ "url": tls })).await;
    assert_eq!(out["error"], "ErrorCode::ConnectionRefused", "{out}");
    // Bound to another port of the same host.
    let out = fetch_one(
        &runtime,
        json!({ "url": plain, "key": "key:openai/other-port" }),
    )
    .await;
    assert_eq!(out["error"], "ErrorCode::HttpRequestDenied", "{out}");
    assert!(
        upstream.received().is_empty(),
        "denied requests never leave"
    );

    // Loopback over plain http: an explicit http:// binding of this port,
    // and a bare loopback binding (any port).
    for key in ["key:openai/this-port", "key:openai/default"] {
        let out = fetch_one(&runtime, json!({ "url": plain, "key": key })).await;
        assert_eq!(out["body"], r#"{"authorized":true}"#, "{key}: {out}");
    }
    let received = upstream.received();
    assert_eq!(received.len(), 2);
    for r in &received {
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {SECRET}").as_str())
        );
    }
    // What the guest is told about the keys: their origins.
    let listed: Vec<(String, Vec<String>)> = vault
        .list()
        .unwrap()
        .into_iter()
        .map(|k| (k.key.name, k.bound_hosts))
        .collect();
    assert!(
        listed.contains(&(
            "tls-only".to_owned(),
            vec!["https://127.0.0.1:443".to_owned()]
        )),
        "{listed:?}"
    );
}

/// `http://evil.test@127.0.0.1:PORT/`: the user part would travel in the
/// `Host` header of a request checked against 127.0.0.1. Refused, with or
/// without a key, before anything is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authority_with_a_user_name_is_refused() {
    let upstream = Upstream::start(echo).await;
    let dir = tempfile::tempdir().unwrap();
    vault_with_keys(dir.path());
    let grants = format!("http = [\"{}\"]\nkeys = [\"openai\"]", upstream.origin());
    let runtime = start(dir.path(), "", &[plugin(&grants, "")]).await;
    let port = upstream.port();

    for url in [
        format!("http://evil.test@127.0.0.1:{port}/"),
        format!("http://user:password@127.0.0.1:{port}/v1"),
    ] {
        for args in [
            json!({ "url": url }),
            json!({ "url": url, "key": "key:openai/default" }),
        ] {
            let out = fetch_one(&runtime, args).await;
            assert_eq!(
                out["error"], "ErrorCode::HttpRequestUriInvalid",
                "{url}: {out}"
            );
        }
    }
    assert!(upstream.received().is_empty(), "nothing was sent");
    // The same destination without the user part is served.
    let out = fetch_one(
        &runtime,
        json!({ "url": format!("http://127.0.0.1:{port}/") }),
    )
    .await;
    assert_eq!(out["status"], 200, "{out}");
}

/// Set in the child process of the backtrace test.
const BACKTRACE_CHILD: &str = "CONVERGIO_TEST_BACKTRACE_CHILD";

/// With `RUST_BACKTRACE=1` (and `RUST_LIB_BACKTRACE=1`) in the host's
/// environment, a guest that reads a failing body stream gets the error's
/// one-line message: no stack trace, no cause chain, no host source path.
/// Backtrace capture is decided once per process, so the check runs in a
/// child process started with that environment.
#[test]
fn host_errors_reach_a_guest_without_backtraces() {
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "backtrace_child",
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("RUST_BACKTRACE", "1")
        .env("RUST_LIB_BACKTRACE", "1")
        .env(BACKTRACE_CHILD, "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the child test did not finish within 300 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("test backtrace_child ... ok") && stdout.contains("1 passed"),
        "the child test ran:\n{stdout}\n{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "runs inside host_errors_reach_a_guest_without_backtraces, with RUST_BACKTRACE=1"]
async fn backtrace_child() {
    assert_eq!(
        std::env::var(BACKTRACE_CHILD).as_deref(),
        Ok("1"),
        "run this through host_errors_reach_a_guest_without_backtraces"
    );
    // The environment does make this process capture backtraces, as the
    // host's errors do when they are created.
    assert_eq!(
        std::backtrace::Backtrace::capture().status(),
        std::backtrace::BacktraceStatus::Captured
    );

    let upstream = Upstream::start(|r| match r.path.as_str() {
        "/stream-big" => Reply::stream(
            "application/octet-stream",
            (0..8).map(|_| Bytes::from(vec![b'y'; 512])).collect(),
            Duration::from_millis(5),
        ),
        _ => Reply::stream(
            "text/event-stream",
            vec![Bytes::from("data: 1\n\n"), Bytes::from("data: 2\n\n")],
            Duration::from_millis(800),
        ),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let grants = format!("http = [\"{}\"]", upstream.origin());
    let runtime = start(
        dir.path(),
        "",
        &[plugin(&grants, "http-max-response-bytes = 1024")],
    )
    .await;
    for (args, message) in [
        (
            json!({ "url": format!("{}/stream-big", upstream.origin()) }),
            "HTTP response body size exceeds limit: 1024 bytes",
        ),
        (
            json!({ "url": format!("{}/drip", upstream.origin()), "between_bytes_ms": 200 }),
            "connection read timeout",
        ),
    ] {
        let out = fetch_one(&runtime, args).await;
        let debug = out["debug"]
            .as_str()
            .unwrap_or_else(|| panic!("the body stream failed: {out}"));
        assert_eq!(debug, message, "{out}");
        for leak in [
            "\n",
            "backtrace",
            "Caused by",
            ".rs:",
            "/rustc/",
            "registry",
        ] {
            assert!(!debug.contains(leak), "`{leak}` reached the guest: {debug}");
        }
    }
}
