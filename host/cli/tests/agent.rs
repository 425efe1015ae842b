//! `convergio agent validate` and `convergio agent run`, as an operator
//! would use them: the LLM agent component on the real local model.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Output;

use convergio_tests::process::convergio_in;
use convergio_tests::{TestPlugin, agent_llm, crate_component, write_platform};

fn convergio(dir: &Path, args: &[&str]) -> Output {
    convergio_in(Path::new(env!("CARGO_BIN_EXE_convergio")), dir, args)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_bad_definition_gets_every_problem_with_its_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        "name: x\ninstructions: ''\nmodel: gpt\ntools: [web]\nmax-steps: 0\n",
    )
    .unwrap();
    let out = convergio(dir.path(), &["agent", "validate", "bad.yaml"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = text(&out.stderr);
    for problem in [
        "bad.yaml: agent `x`: field `instructions`: the instructions are empty",
        "bad.yaml: agent `x`: field `model`: `gpt` is not `provider/model`",
        "bad.yaml: agent `x`: field `tools`: `web` is not `plugin/tool`",
        "bad.yaml: agent `x`: field `max-steps`: 0 allows no model call",
    ] {
        assert!(err.contains(problem), "{problem} not in {err}");
    }

    std::fs::write(dir.path().join("syntax.yaml"), "name: [x\n").unwrap();
    let out = convergio(dir.path(), &["agent", "validate", "syntax.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("syntax.yaml:"), "{out:?}");

    let tutor = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/agents/tutor.yaml");
    let out = convergio(dir.path(), &["agent", "validate", tutor.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text(&out.stdout).contains("agent `tutor` is valid"),
        "{out:?}"
    );
}

#[test]
fn an_agent_runs_alone_on_the_local_model_as_a_journaled_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_platform(
        dir.path(),
        "[inference]\nzero-cloud = true\n\n[local-models]\nthreads = 2\ncontext-length = 2048\n",
        &[
            TestPlugin::new(
                "local",
                "provider",
                crate_component("convergio_provider_local"),
            )
            .declares(&["local-model"])
            .grants("models = [\"smollm2\"]")
            .limits("deadline-ms = 120000"),
            agent_llm("agent-llm", "inference = true\nlogging = true")
                .limits("deadline-ms = 120000"),
            TestPlugin::new(
                "orchestrator",
                "orchestrator",
                crate_component("convergio_orchestrator"),
            )
            .declares(&["plugins"])
            .grants("plugins = [\"agent-llm\"]"),
        ],
    );
    let config = path.to_str().unwrap();
    let model = convergio_test_model::require();
    let out = convergio(
        dir.path(),
        &[
            "--config",
            config,
            "models",
            "pull",
            model.to_str().unwrap(),
            "--name",
            "smollm2",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    std::fs::write(
        dir.path().join("grader.yaml"),
        "\
name: grader
instructions: You grade answers from 1 to 5. Answer in JSON.
model: local/smollm2
temperature: 0
max-output-tokens: 60
output-schema:
  type: object
  properties:
    grade: { type: integer, minimum: 1, maximum: 5 }
  required: [grade]
",
    )
    .unwrap();
    let out = convergio(
        dir.path(),
        &[
            "--config",
            config,
            "agent",
            "run",
            "grader.yaml",
            "Paris is the capital of France.",
            "--follow",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("started (agent `grader`)"), "{stderr}");
    assert!(stderr.contains("✓ agent"), "{stderr}");
    // The run's output is the grader's JSON answer, in the schema.
    let output: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let grade = output["answer"]["grade"]
        .as_i64()
        .unwrap_or_else(|| panic!("{output}"));
    assert!((1..=5).contains(&grade), "{output}");

    // It is a run like any other: listed, with its output; its status shows
    // the agent's recorded step and what the model used.
    let out = convergio(dir.path(), &["--config", config, "graph", "list"]);
    assert!(text(&out.stdout).contains("done"), "{out:?}");
    let run = stderr
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("{stderr}"))
        .to_owned();
    let out = convergio(dir.path(), &["--config", config, "graph", "status", &run]);
    let status = text(&out.stdout);
    assert!(status.contains("recorded steps"), "{status}");
    assert!(status.contains("attempt 1: 1 model"), "{status}");
    // The node's model calls, metered by the router and journaled with
    // its result (the live view shows them too).
    assert!(status.contains("usage\n  agent "), "{status}");
    assert!(status.contains(" tokens in, "), "{status}");
    assert!(
        stderr.contains("returned in") && stderr.contains("model call"),
        "{stderr}"
    );

    // A plugin that is not there is said so before the run.
    let out = convergio(
        dir.path(),
        &[
            "--config",
            config,
            "agent",
            "run",
            "grader.yaml",
            "x",
            "--plugin",
            "nobody",
        ],
    );
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("nobody"), "{out:?}");
}
