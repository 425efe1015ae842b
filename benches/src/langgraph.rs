//! The LangGraph side of the benches that compare with it (`graph.rs`,
//! `agent.rs`): the virtualenv `benches/langgraph/setup.sh` makes, and one
//! measurement as a python process that prints a JSON line.

// A bench that cannot measure its anchor stops, saying why.
#![allow(clippy::panic, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The venv's python, ready to run the scripts of `benches/langgraph`.
#[derive(Debug)]
pub struct LangGraph {
    python: PathBuf,
    dir: PathBuf,
}

impl LangGraph {
    /// Set the venv up (installing LangGraph from PyPI the first time) and
    /// print its versions; `None` when `CONVERGIO_BENCH_NO_LANGGRAPH` is
    /// set, after saying loudly what the run then lacks (`missing`).
    pub fn setup(missing: &str) -> Option<Self> {
        if std::env::var_os("CONVERGIO_BENCH_NO_LANGGRAPH").is_some() {
            eprintln!("{}", "!".repeat(72));
            eprintln!("!! CONVERGIO_BENCH_NO_LANGGRAPH is set: LangGraph is NOT measured;");
            eprintln!("!! {missing}");
            eprintln!("{}", "!".repeat(72));
            return None;
        }
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("langgraph");
        let setup = dir.join("setup.sh");
        let out = Command::new(&setup).output().unwrap_or_else(|e| {
            panic!(
                "{}: {e}; set CONVERGIO_BENCH_NO_LANGGRAPH=1 to measure our side alone",
                setup.display()
            )
        });
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "benches/langgraph/setup.sh failed ({}):\n{}{}\nset CONVERGIO_BENCH_NO_LANGGRAPH=1 to measure our side alone",
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
        for line in stdout.lines().filter(|l| !l.starts_with("python: ")) {
            println!("  {line}");
        }
        let python = stdout
            .lines()
            .find_map(|l| l.strip_prefix("python: "))
            .map(PathBuf::from)
            .expect("setup.sh names the venv's python on its last line");
        Some(Self { python, dir })
    }

    /// Run `script` (a file of `benches/langgraph`) with `args` and
    /// `--json`; the JSON of the last line it printed.
    pub fn run(&self, script: &str, args: &[&str]) -> Value {
        let out = Command::new(&self.python)
            .arg(self.dir.join(script))
            .args(args)
            .arg("--json")
            .output()
            .unwrap_or_else(|e| panic!("run {script}: {e}"));
        assert!(
            out.status.success(),
            "{script} {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout
            .lines()
            .last()
            .unwrap_or_else(|| panic!("{script} printed nothing"));
        serde_json::from_str(line).unwrap_or_else(|e| panic!("{script} printed {line:?}: {e}"))
    }
}
