//! Crash tests: a test starts another test of its own binary (marked
//! `#[ignore]`, so it runs only when asked for) as a child process, reads
//! the lines the child prints for each write it had acknowledged, and kills
//! it with SIGKILL — no destructor, no flush, no checkpoint — at a moment of
//! its choosing. It then checks that every acknowledged write is there.
//!
//! ```no_run
//! use std::time::Duration;
//! use convergio_test_child::Child;
//!
//! let dir = std::env::temp_dir();
//! let mut child = Child::spawn("kill_9_writer", &[("MY_TEST_DIR", dir.as_os_str())]);
//! let mut acked = 0;
//! while acked < 50 {
//!     let line = child.next_line(Duration::from_secs(30));
//!     if line.starts_with("acked ") { acked += 1; }
//! }
//! let late = child.kill_9(); // lines printed before it died
//! ```

// A crash test's harness fails the test it serves by panicking, naming why.
#![allow(clippy::panic)]

use std::ffi::OsStr;
use std::io::BufRead;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

/// A child process running one ignored test of this test binary.
#[derive(Debug)]
pub struct Child {
    name: String,
    process: std::process::Child,
    lines: mpsc::Receiver<String>,
    reader: JoinHandle<()>,
}

impl Child {
    /// Run the ignored test `name` of the current test binary in a child
    /// process, with `env` set. Its stdout is read line by line on a thread
    /// (so a child that stalls fails the test instead of hanging it); its
    /// stderr (panics, logs) shows with this test's output.
    ///
    /// # Panics
    ///
    /// If the child cannot be started.
    pub fn spawn(name: &str, env: &[(&str, &OsStr)]) -> Self {
        let exe = std::env::current_exe().unwrap_or_else(|e| panic!("the test binary's path: {e}"));
        let mut command = Command::new(exe);
        command
            .args([
                "--ignored",
                "--exact",
                name,
                "--nocapture",
                "--test-threads=1",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut process = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the child test {name}: {e}"));
        let stdout = process
            .stdout
            .take()
            .unwrap_or_else(|| panic!("the child test {name} has no stdout"));
        let (tx, lines) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            name: name.to_owned(),
            process,
            lines,
            reader,
        }
    }

    /// The next line the child prints, waiting at most `timeout`.
    ///
    /// # Panics
    ///
    /// If none comes in time or the child's output ended: the child is
    /// killed and its exit status is in the message.
    pub fn next_line(&mut self, timeout: Duration) -> String {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => line,
            Err(e) => {
                let _ = self.process.kill();
                let status = self.process.wait().map(|s| s.to_string());
                panic!(
                    "the child test {} printed nothing more ({e}); it exited with {status:?}",
                    self.name
                );
            }
        }
    }

    /// Kill the child with SIGKILL and wait for it; the lines it printed
    /// that were not read yet (acknowledged before it died).
    ///
    /// # Panics
    ///
    /// If the child had exited before (it was not killed).
    pub fn kill_9(mut self) -> Vec<String> {
        let _ = self.process.kill();
        let status = self
            .process
            .wait()
            .unwrap_or_else(|e| panic!("waiting for the child test {}: {e}", self.name));
        assert!(
            killed(status),
            "the child test {} was not killed: {status}",
            self.name
        );
        let _ = self.reader.join();
        self.lines.try_iter().collect()
    }
}

#[cfg(unix)]
fn killed(status: ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(9)
}

#[cfg(not(unix))]
fn killed(status: ExitStatus) -> bool {
    !status.success()
}
