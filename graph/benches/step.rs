//! The step function alone, in process: µs per step of a chain of 100
//! no-op tool nodes and of a fan-out of 100 with a join, every call
//! answered at once with `{}` (each node adds 1 to `count`, as in
//! `benches/graph.rs`), alone and with the JSON an orchestrator component
//! adds (inputs encoded and decoded, the decision encoded and decoded).
//! Prints the median and p10–p90 of 200 runs.
//!
//! ```sh
//! cargo bench -p convergio-graph --bench step
//! ```

// A benchmark's setup should fail loudly; there is no caller to return an error to.
#![allow(clippy::expect_used, clippy::cast_precision_loss)]

use std::time::Instant;

use convergio_graph::engine::{CallResult, Decision, Input, Instance, Request, graph_hash};
use serde_json::{Value, json};

fn node() -> Value {
    json!({"kind": {"tool": {"plugin": "tool", "tool": "echo"}}, "output": {"map": {"count": "1"}}})
}

fn graph(fanout: bool) -> String {
    let mut nodes = serde_json::Map::new();
    let mut edges = Vec::new();
    if fanout {
        nodes.insert("start".into(), node());
        nodes.insert("join".into(), node());
        for i in 0..100 {
            nodes.insert(format!("b{i:03}"), node());
            edges.push(json!({"from": "start", "to": format!("b{i:03}")}));
            edges.push(json!({"from": format!("b{i:03}"), "to": "join"}));
        }
    } else {
        for i in 0..100 {
            nodes.insert(format!("n{i:03}"), node());
            if i > 0 {
                edges.push(json!({"from": format!("n{:03}", i - 1), "to": format!("n{i:03}")}));
            }
        }
    }
    let graph: convergio_graph::model::Graph = serde_json::from_value(json!({
        "state": {"count": {"reducer": "add", "default": 0}},
        "nodes": nodes,
        "edges": edges,
    }))
    .expect("a valid graph");
    serde_json::to_string(&graph).expect("json")
}

/// One step, with the JSON the component boundary adds when `json`: the
/// host encodes the inputs, the guest decodes them, steps, encodes the
/// decision, and the host decodes it.
fn step(instance: &mut Instance, request: Request<'_>, json: bool) -> Decision {
    if !json {
        return instance.step(request).expect("a step");
    }
    let text = serde_json::to_string(request.inputs).expect("inputs");
    let inputs: Vec<Input> = serde_json::from_str(&text).expect("inputs");
    let decision = instance
        .step(Request {
            inputs: &inputs,
            ..request
        })
        .expect("a step");
    let text = serde_json::to_string(&decision).expect("decision");
    serde_json::from_str(&text).expect("decision")
}

/// One run to its end; the number of steps it took.
fn run(instance: &mut Instance, id: &str, text: &str, hash: &str, json: bool) -> u64 {
    let mut version = 0;
    let mut inputs = vec![Input::Start { input: json!({}) }];
    let empty = json!({});
    let mut first = true;
    loop {
        let decision = step(
            instance,
            Request {
                run: id,
                graph_hash: hash,
                graph: Some(text),
                version,
                snapshot: first.then_some(&empty),
                inputs: &inputs,
            },
            json,
        );
        first = false;
        version += 1;
        if decision.status.is_final() {
            return version;
        }
        inputs = decision
            .calls
            .into_iter()
            .map(|call| Input::Result {
                call: call.id,
                result: CallResult::Ok {
                    output: json!({}).into(),
                    updates: Vec::new(),
                },
            })
            .collect();
        // A fan-out's results arrive one by one.
        if inputs.len() > 1 {
            let rest = inputs.split_off(1);
            for input in rest {
                let d = step(
                    instance,
                    Request {
                        run: id,
                        graph_hash: hash,
                        graph: None,
                        version,
                        snapshot: None,
                        inputs: &inputs,
                    },
                    json,
                );
                version += 1;
                assert!(d.calls.is_empty() && !d.status.is_final());
                inputs = vec![input];
            }
        }
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let reps = if std::env::args().any(|a| a == "--bench") {
        200
    } else {
        3
    };
    for (name, fanout, json) in [
        ("chain", false, false),
        ("fanout", true, false),
        ("chain, JSON in and out", false, true),
        ("fanout, JSON in and out", true, true),
    ] {
        let text = graph(fanout);
        let hash = graph_hash(&text);
        let mut instance = Instance::new();
        let steps = run(&mut instance, "warm", &text, &hash, json);
        let mut per_step: Vec<f64> = (0..reps)
            .map(|i| {
                let started = Instant::now();
                run(&mut instance, &format!("run{i}"), &text, &hash, json);
                started.elapsed().as_secs_f64() * 1e6 / steps as f64
            })
            .collect();
        per_step.sort_by(f64::total_cmp);
        let q = |p: f64| per_step[((per_step.len() - 1) as f64 * p).round() as usize];
        println!(
            "step {name}-100: {steps} steps, µs per step {:.2} [{:.2}–{:.2}]",
            q(0.5),
            q(0.1),
            q(0.9)
        );
    }
}
