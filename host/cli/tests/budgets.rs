//! Budgets and the inference configuration through the `convergio` binary:
//! `convergio chat` processes that share one data directory share its
//! budgets (holds and spending in the usage ledger, `usage.db`), a process
//! killed while it holds money does not keep it past the hold's expiry, and
//! `convergio check` refuses names in `[inference]` that name nothing.

// Test helpers outside #[test] functions may panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use convergio_cap_keys::Vault;
use convergio_runtime::inference::{Ledger, Scope, day_of, month_start};
use convergio_tests::fake_providers::{self as fake, FakeProvider, Fault, Flavor};
use convergio_tests::process::{finish, output};
use convergio_tests::{TestPlugin, target_dir, test_component, write_platform};

const SECRET: &str = "sk-budget-test-0123456789";
const MODEL: &str = "openai/gpt-6-luna";
/// The fake reports 9 completion tokens; at 1000 USD per million output
/// tokens and nothing for input, a call costs 0.009 USD, and with
/// `--max-tokens 9` the router's hold (its ceiling) is exactly that.
const CALL_MICRO_USD: u64 = 9_000;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A platform in `dir` with the OpenAI adapter pointed at `provider`, its key
/// in the vault, and `inference` (TOML tables) appended; compiled once
/// into its own cache so that parallel processes only load it.
fn platform(dir: &Path, provider: &FakeProvider, inference: &str) -> PathBuf {
    let vault = Vault::open_in(&dir.join("platform-data")).unwrap();
    fake::add_key(&vault, Flavor::OpenAi, SECRET);
    drop(vault);
    let cache = target_dir().join("convergio-test-cache").join("budgets");
    let runtime = format!(
        "compile-cache = true\ncache-dir = {cache:?}\npool-instances = 8\n\n\
         [inference.prices]\n\"{MODEL}\" = {{ input = 0.0, output = 1000.0 }}\n\n{inference}\n"
    );
    let path = write_platform(dir, &runtime, &[provider.plugin("openai")]);
    let out = output(&mut convergio(&path, &["check"]));
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    path
}

/// `convergio --config PLATFORM ARGS`, outputs piped.
fn convergio(platform: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_convergio"));
    command
        .arg("--config")
        .arg(platform)
        .args(args)
        .env("CONVERGIO_HOME", platform.parent().unwrap().join("home"))
        .env_remove("CONVERGIO_CONFIG")
        .env_remove("CONVERGIO_MASTER_KEY")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn chat(platform: &Path) -> Child {
    convergio(
        platform,
        &["chat", "--model", MODEL, "--max-tokens", "9", "hello"],
    )
    .spawn()
    .unwrap()
}

fn key() -> Scope {
    Scope::Key("openai/default".into())
}

fn ledger(platform: &Path) -> Ledger {
    Ledger::open(&platform.parent().unwrap().join("platform-data/usage.db")).unwrap()
}

fn this_month() -> i64 {
    month_start(day_of(SystemTime::now()))
}

/// Did `out` end in the router's budget refusal?
fn refused(out: &Output) -> bool {
    !out.status.success() && text(&out.stderr).contains("budget-exceeded")
}

#[test]
fn twenty_chat_processes_on_one_data_dir_never_spend_past_the_budget() {
    let server = tokio::runtime::Runtime::new().unwrap();
    let provider = server.block_on(FakeProvider::start(Flavor::OpenAi, SECRET));
    // Each answer streams for about half a second, so the calls overlap.
    provider.set_pause(Duration::from_millis(100));
    let dir = tempfile::tempdir().unwrap();
    // Five calls' worth.
    let platform = platform(
        dir.path(),
        &provider,
        "[inference.budgets]\nkeys = { \"openai/default\" = 0.045 }\n",
    );

    let children: Vec<Child> = (0..20).map(|_| chat(&platform)).collect();
    let outputs: Vec<Output> = children.into_iter().map(finish).collect();

    let answered = outputs.iter().filter(|o| o.status.success()).count();
    let refusals = outputs.iter().filter(|o| refused(o)).count();
    for out in &outputs {
        assert!(
            out.status.success() || refused(out),
            "a call failed for another reason: {}",
            text(&out.stderr)
        );
        if out.status.success() {
            assert_eq!(text(&out.stdout), format!("{}\n", fake::TEXT));
        } else {
            assert!(
                text(&out.stderr).contains("the budget of key openai/default is 0.045000 USD"),
                "{}",
                text(&out.stderr)
            );
        }
    }
    // A hold is the call's exact cost here, so exactly five fit.
    assert_eq!((answered, refusals), (5, 15));
    let ledger = ledger(&platform);
    let spent = ledger.spent(&key(), this_month()).unwrap();
    assert_eq!(spent, 5 * CALL_MICRO_USD, "spent {spent}");
    assert_eq!(ledger.held(&key()).unwrap(), 0, "every hold settled");
    assert_eq!(
        provider.exchanges().len(),
        5,
        "refused calls never reach the upstream"
    );
    assert!(
        provider.rejections().is_empty(),
        "{:?}",
        provider.rejections()
    );
}

#[test]
fn a_process_killed_while_it_holds_money_does_not_hold_it_past_the_expiry() {
    let server = tokio::runtime::Runtime::new().unwrap();
    let provider = server.block_on(FakeProvider::start(Flavor::OpenAi, SECRET));
    let dir = tempfile::tempdir().unwrap();
    let expiry = Duration::from_secs(15);
    // One call's worth; holds lapse 15 s after they are taken.
    let platform = platform(
        dir.path(),
        &provider,
        &format!(
            "[inference]\nhold-expiry-ms = {}\nfirst-token-timeout-ms = 120000\n\n\
             [inference.budgets]\nkeys = {{ \"openai/default\" = 0.009 }}\n",
            expiry.as_millis()
        ),
    );

    // The first call stalls upstream, holding the whole budget, and is killed.
    provider.fail_next(Fault::StallStream(Duration::from_secs(600)));
    let mut stalled = chat(&platform);
    let started = Instant::now();
    while provider.exchanges().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the call never reached the upstream"
        );
        if let Some(status) = stalled.try_wait().unwrap() {
            let out = stalled.wait_with_output().unwrap();
            panic!("the call ended early ({status}): {}", text(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // The hold was taken before the request left.
    let held_since = Instant::now();
    stalled.kill().unwrap();
    let status = stalled.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "{status}");
    let ledger = ledger(&platform);
    assert_eq!(
        ledger.held(&key()).unwrap(),
        CALL_MICRO_USD,
        "the dead process's hold is still there"
    );

    // Until it expires, it still counts: another process is refused.
    let out = finish(chat(&platform));
    assert!(
        held_since.elapsed() < expiry,
        "the machine is too slow for this test"
    );
    assert!(refused(&out), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("0.009000 USD is spent or held"),
        "{}",
        text(&out.stderr)
    );

    // Then it stops counting, and the budget answers again.
    while ledger.held(&key()).unwrap() > 0 {
        assert!(
            held_since.elapsed() < expiry + Duration::from_secs(10),
            "the hold never expired"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = finish(chat(&platform));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        ledger.spent(&key(), this_month()).unwrap(),
        CALL_MICRO_USD,
        "only the answered call is spent"
    );
    assert_eq!(provider.exchanges().len(), 2);
}

#[test]
fn check_refuses_names_in_inference_that_name_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let echo = TestPlugin::new("echo", "provider", test_component("echo_provider"));
    let tool = TestPlugin::new("plain", "tool", test_component("plain_tool"));
    let platform = write_platform(
        dir.path(),
        "\n[inference]\nfallback = [\"echo/gpt-does-not-exist\"]\n\n\
         [inference.chains]\n\"echo/echo-2\" = [\"echo/echo-1\"]\n\n\
         [inference.budgets]\nkeys = { \"openai/default\" = 5.0 }\n\
         plugins = { cli = 1.0, plain = 1.0, ghost = 1.0 }\nagents = { echo = 1.0 }\n",
        &[echo, tool],
    );
    let out = output(&mut convergio(&platform, &["check"]));
    assert!(!out.status.success());
    let stdout = text(&out.stdout);
    let p = platform.display();
    for expected in [
        format!(
            "error: {p}:6: field `inference.fallback`: `echo/gpt-does-not-exist` is not a model of provider `echo`; its models are: echo/echo-1, echo/echo-broken"
        ),
        format!(
            "error: {p}:9: field `inference.chains`: `echo/echo-2` is not a model of provider `echo`"
        ),
        format!(
            "error: {p}:12: field `inference.budgets.keys`: no loaded provider sends key `openai/default`, so this budget would never apply; the providers' keys are: none"
        ),
        format!(
            "error: {p}:13: field `inference.budgets.plugins`: no [[plugin]] has id = \"ghost\"; budgets apply to the plugins that call models: cli"
        ),
        format!(
            "error: {p}:13: field `inference.budgets.plugins`: plugin `plain` is not granted `inference`"
        ),
        format!(
            "error: {p}:14: field `inference.budgets.agents`: plugin `echo` is of kind `provider`, not an agent"
        ),
    ] {
        assert!(
            stdout.contains(&expected),
            "lacks {expected}\nin:\n{stdout}"
        );
    }
    assert!(stdout.contains("6 problem(s) found"), "{stdout}");

    // The same errors stop the platform from starting.
    let out = output(&mut convergio(
        &platform,
        &["chat", "--model", "echo/echo-1", "hi"],
    ));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("`echo/gpt-does-not-exist` is not a model of provider `echo`"),
        "{}",
        text(&out.stderr)
    );
}
