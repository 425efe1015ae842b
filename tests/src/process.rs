//! Processes that tests start (the `convergio` binary), finished within a
//! deadline: a process that hangs fails its test, naming the command and
//! what it printed, instead of holding the whole test run until CI's
//! limit.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long a command of a test may take: far above what any takes on a
/// loaded two-core machine, far below a CI run's limit.
pub const DEADLINE: Duration = Duration::from_secs(600);

/// Run `command` to its end, with its output captured, as
/// [`Command::output`] does; panics if it is still running after
/// [`DEADLINE`] (and kills it).
pub fn output(command: &mut Command) -> Output {
    output_within(command, DEADLINE)
}

/// `bin` (a `convergio` binary) with `args`, run in `dir` with its data in
/// `dir/home` and no `CONVERGIO_CONFIG` from the environment, to its end.
pub fn convergio_in(bin: &Path, dir: &Path, args: &[&str]) -> Output {
    output(
        Command::new(bin)
            .args(args)
            .current_dir(dir)
            .env("CONVERGIO_HOME", dir.join("home"))
            .env_remove("CONVERGIO_CONFIG"),
    )
}

/// [`output`] with a deadline of `limit`.
pub fn output_within(command: &mut Command, limit: Duration) -> Output {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    finish_within(child, limit, &format!("{command:?}"))
}

/// Wait for `child` to end and collect its output, as
/// [`Child::wait_with_output`] does; panics if it is still running after
/// [`DEADLINE`] (and kills it).
pub fn finish(child: Child) -> Output {
    let what = format!("process {}", child.id());
    finish_within(child, DEADLINE, &what)
}

/// [`finish`] with a deadline of `limit`; `what` names the process in
/// the panic.
pub fn finish_within(mut child: Child, limit: Duration, what: &str) -> Output {
    // Read both pipes while waiting: a child that fills one would block.
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            let _ = tx.send(bytes);
        });
        rx
    };
    let stdout = reader(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = reader(child.stderr.take().map(|p| Box::new(p) as _));
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < limit => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                // What it printed so far (a process it started may hold
                // the pipe open: do not wait for that).
                let stderr = stderr
                    .recv_timeout(Duration::from_secs(5))
                    .unwrap_or_default();
                panic!(
                    "{what} was still running after {limit:?} (killed); its stderr:\n{}",
                    String::from_utf8_lossy(&stderr)
                );
            }
            Err(e) => panic!("cannot wait for {what}: {e}"),
        }
    };
    Output {
        status,
        stdout: stdout.recv().unwrap_or_default(),
        stderr: stderr.recv().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_captured_and_a_hung_command_fails() {
        let out = output(Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]));
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
        assert_eq!(out.status.code(), Some(3));

        let hung = std::panic::catch_unwind(|| {
            output_within(
                Command::new("sh").args(["-c", "echo waiting >&2; exec sleep 30"]),
                Duration::from_millis(300),
            )
        });
        let message = *hung
            .expect_err("a command past its deadline fails")
            .downcast::<String>()
            .expect("a message");
        assert!(message.contains("still running after 300ms"), "{message}");
        assert!(message.contains("waiting"), "{message}");
    }
}
