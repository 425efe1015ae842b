//! The step function, driven the way the host drives it: every node kind and
//! reducer, joins, conditions, loops and their guard, maps with bounded
//! concurrency, retries, error edges, interrupts, resume after a crash and
//! cancel — and, at every step, the host's fold of the journaled patches
//! rebuilding exactly the engine's snapshot.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::VecDeque;

use convergio_graph::engine::{Call, CallResult, Decision, Input, Status, Target, step};
use convergio_graph::model::Graph;
use convergio_graph::plan::Plan;
use convergio_graph::snapshot::apply;
use serde_json::{Value, json};

fn plan(graph: Value) -> Plan {
    let graph: Graph = serde_json::from_value(graph).expect("canonical graph");
    Plan::compile(&graph).expect("compiles")
}

fn tool(name: &str) -> Value {
    json!({"tool": {"plugin": "tools", "tool": name}})
}

/// A run under test: the engine's snapshot and the host's fold of the
/// patches, which must always agree.
struct Harness {
    plan: Plan,
    snap: Value,
    folded: Value,
    in_flight: VecDeque<Call>,
    max_in_flight: usize,
    dispatched: Vec<Call>,
    decisions: Vec<Decision>,
}

impl Harness {
    fn new(plan: Plan) -> Self {
        Self {
            plan,
            snap: json!({}),
            folded: json!({}),
            in_flight: VecDeque::new(),
            max_in_flight: 0,
            dispatched: Vec::new(),
            decisions: Vec::new(),
        }
    }

    fn step(&mut self, inputs: Vec<Input>) -> Decision {
        let decision = step(&self.plan, &mut self.snap, inputs).expect("step");
        for patch in &decision.patches {
            apply(&mut self.folded, patch).expect("patch applies");
        }
        assert_eq!(
            self.folded, self.snap,
            "the fold of the patches is the snapshot"
        );
        // The decision survives the journal's round trip.
        let text = serde_json::to_string(&decision).unwrap();
        assert_eq!(serde_json::from_str::<Decision>(&text).unwrap(), decision);
        for id in &decision.cancel {
            self.in_flight.retain(|c| &c.id != id);
        }
        self.in_flight.extend(decision.calls.iter().cloned());
        self.dispatched.extend(decision.calls.iter().cloned());
        self.max_in_flight = self.max_in_flight.max(self.in_flight.len());
        self.decisions.push(decision.clone());
        decision
    }

    fn start(&mut self, input: Value) -> Decision {
        self.step(vec![Input::Start { input }])
    }

    /// Run calls one at a time (`pick` chooses which) through `exec` until
    /// nothing is in flight.
    fn drive(
        &mut self,
        mut exec: impl FnMut(&Call) -> CallResult,
        pick: impl Fn(usize) -> usize,
    ) -> Status {
        let mut status = self.decisions.last().expect("started").status.clone();
        while !self.in_flight.is_empty() {
            let i = pick(self.in_flight.len());
            let call = self.in_flight.remove(i).unwrap();
            let result = exec(&call);
            status = self
                .step(vec![Input::Result {
                    call: call.id.clone(),
                    result,
                }])
                .status;
        }
        status
    }

    fn nodes_started(&self) -> Vec<String> {
        self.dispatched.iter().map(|c| c.node.clone()).collect()
    }
}

fn ok(output: Value) -> CallResult {
    CallResult::Ok {
        output: output.into(),
        updates: Vec::new(),
    }
}

fn first(_: usize) -> usize {
    0
}

fn last(n: usize) -> usize {
    n - 1
}

fn done(status: &Status) -> &Value {
    match status {
        Status::Done { output } => output,
        other => panic!("expected done, got {other:?}"),
    }
}

fn failed(status: &Status) -> &str {
    match status {
        Status::Failed { error } => error,
        other => panic!("expected failed, got {other:?}"),
    }
}

#[test]
fn a_chain_runs_in_order_and_maps_outputs_into_state() {
    let mut h = Harness::new(plan(json!({
        "state": {"n": {"reducer": "add", "default": 0}, "last": {}},
        "nodes": {
            "a": {"kind": tool("inc"), "input": {"by": 1}, "output": {"map": {"n": "output.by"}}},
            "b": {"kind": tool("inc"), "input": {"by": "{{ state.n + 1 }}"}, "output": {"map": {"n": "output.by"}}},
            "c": {"kind": tool("echo"), "input": {"text": "n is {{ state.n }}"}, "output": {"key": "last"}},
        },
        "edges": [{"from": "a", "to": "b"}, {"from": "b", "to": "c"}],
    })));
    let d = h.start(json!({}));
    assert_eq!(d.calls.len(), 1);
    assert_eq!(
        d.calls[0].target,
        Target::Tool {
            plugin: "tools".into(),
            tool: "inc".into()
        }
    );
    let status = h.drive(|c| ok(c.input.value().unwrap()), first);
    assert_eq!(h.nodes_started(), ["a", "b", "c"]);
    assert_eq!(done(&status), &json!({"n": 3, "last": {"text": "n is 3"}}));
}

#[test]
fn independent_branches_start_together_and_a_join_waits_for_both() {
    let mut h = Harness::new(plan(json!({
        "state": {"seen": {"reducer": "append", "default": []}},
        "nodes": {
            "start": {"kind": tool("noop")},
            "left": {"kind": tool("noop"), "input": "L", "output": {"key": "seen"}},
            "right": {"kind": tool("noop"), "input": "R", "output": {"key": "seen"}},
            "join": {"kind": tool("noop"), "input": "{{ state.seen }}"},
        },
        "edges": [
            {"from": "start", "to": "left"}, {"from": "start", "to": "right"},
            {"from": "left", "to": "join"}, {"from": "right", "to": "join"},
        ],
    })));
    h.start(json!({}));
    let d = h.step(vec![Input::Result {
        call: "start".into(),
        result: ok(json!(null)),
    }]);
    let ids: Vec<&str> = d.calls.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["left", "right"], "both branches in one decision");
    h.in_flight.clear();
    let d = h.step(vec![Input::Result {
        call: "right".into(),
        result: ok(json!("R")),
    }]);
    assert!(d.calls.is_empty(), "the join waits for `left`");
    let d = h.step(vec![Input::Result {
        call: "left".into(),
        result: ok(json!("L")),
    }]);
    assert_eq!(d.calls[0].node, "join");
    assert_eq!(
        d.calls[0].input.value().unwrap(),
        json!(["R", "L"]),
        "appended in completion order"
    );
}

#[test]
fn a_slow_branch_does_not_hold_back_an_unrelated_one() {
    // a -> slow ; b -> fast -> after : `after` starts while `slow` runs.
    let mut h = Harness::new(plan(json!({
        "nodes": {
            "a": {"kind": tool("noop")}, "slow": {"kind": tool("noop")},
            "b": {"kind": tool("noop")}, "fast": {"kind": tool("noop")},
            "after": {"kind": tool("noop")},
        },
        "edges": [{"from": "a", "to": "slow"}, {"from": "b", "to": "fast"}, {"from": "fast", "to": "after"}],
    })));
    h.start(json!({}));
    h.step(vec![Input::Result {
        call: "a".into(),
        result: ok(json!(1)),
    }]);
    h.step(vec![Input::Result {
        call: "b".into(),
        result: ok(json!(1)),
    }]);
    let d = h.step(vec![Input::Result {
        call: "fast".into(),
        result: ok(json!(1)),
    }]);
    assert_eq!(d.calls[0].node, "after");
    assert!(h.snap["calls"].get("slow").is_some(), "slow still running");
}

fn routed(score: i64) -> (Harness, Status) {
    let mut h = Harness::new(plan(json!({
        "state": {"score": {"schema": {"type": "integer"}}, "path": {"reducer": "append", "default": []}},
        "nodes": {
            "route": {"kind": {"condition": {"routes": [
                {"when": "state.score >= 50", "to": "high"}
            ], "default": "low"}}},
            "high": {"kind": tool("noop"), "input": "high", "output": {"key": "path"}},
            "low": {"kind": tool("noop"), "input": "low", "output": {"key": "path"}},
            "end": {"kind": tool("noop"), "input": "end", "output": {"key": "path"}},
        },
        "edges": [{"from": "high", "to": "end"}, {"from": "low", "to": "end"}],
    })));
    h.start(json!({"score": score}));
    let status = h.drive(|c| ok(c.input.value().unwrap()), first);
    (h, status)
}

#[test]
fn a_condition_routes_both_ways_and_the_join_skips_the_branch_not_taken() {
    let (h, status) = routed(70);
    assert_eq!(done(&status)["path"], json!(["high", "end"]));
    assert_eq!(h.snap["sched"]["low"]["s"], "skipped");
    assert_eq!(h.snap["nodes"]["route"]["output"], json!({"route": "high"}));
    let (_, status) = routed(10);
    assert_eq!(done(&status)["path"], json!(["low", "end"]));
}

fn looping(max: u32, accept_at: i64) -> (Harness, Status) {
    let mut h = Harness::new(plan(json!({
        "state": {"drafts": {"reducer": "add", "default": 0}},
        "nodes": {
            "draft": {"kind": tool("write"), "output": {"map": {"drafts": "1"}}},
            "review": {"kind": tool("review"), "input": "{{ state.drafts }}"},
            "publish": {"kind": tool("publish")},
        },
        "edges": [
            {"from": "draft", "to": "review"},
            {"from": "review", "to": "draft", "when": format!("state.drafts < {accept_at}"), "max-iterations": max},
            {"from": "review", "to": "publish", "when": format!("state.drafts >= {accept_at}")},
        ],
    })));
    h.start(json!({}));
    let status = h.drive(|_| ok(json!("ok")), first);
    (h, status)
}

#[test]
fn a_loop_runs_until_its_exit_condition_and_renumbers_its_calls() {
    let (h, status) = looping(5, 3);
    assert_eq!(done(&status)["drafts"], json!(3));
    let ids: Vec<&str> = h.dispatched.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "draft",
            "review",
            "draft@1",
            "review@1",
            "draft@2",
            "review@2",
            "publish@2"
        ]
    );
}

#[test]
fn a_loop_past_its_guard_fails_the_run_naming_the_edge() {
    let (_, status) = looping(2, 10);
    assert_eq!(
        failed(&status),
        "loop edge review -> draft was taken 2 times, its `max-iterations`; the run stops rather than loop again"
    );
}

#[test]
fn a_map_keeps_at_most_its_concurrency_in_flight_and_gathers_in_input_order() {
    let items: Vec<i64> = (0..50).collect();
    let mut h = Harness::new(plan(json!({
        "state": {"items": {}, "squares": {}},
        "nodes": {
            "each": {
                "kind": {"map": {"over": "state.items", "max-concurrency": 4, "node": tool("square")}},
                "input": {"x": "{{ item }}", "i": "{{ index }}"},
                "output": {"key": "squares"},
            },
        },
    })));
    let d = h.start(json!({"items": items}));
    assert_eq!(d.calls.len(), 4);
    // Finish the newest first, so completion order is not input order.
    let status = h.drive(
        |c| {
            let input = c.input.value().unwrap();
            let x = input["x"].as_i64().unwrap();
            assert_eq!(input["i"], input["x"]);
            ok(json!(x * x))
        },
        last,
    );
    assert_eq!(h.max_in_flight, 4);
    let expected: Vec<i64> = (0..50).map(|x| x * x).collect();
    assert_eq!(done(&status)["squares"], json!(expected));
    assert_eq!(h.dispatched.len(), 50);
}

#[test]
fn a_map_over_an_empty_list_finishes_at_once() {
    let mut h = Harness::new(plan(json!({
        "state": {"items": {}, "out": {}},
        "nodes": {"each": {"kind": {"map": {"over": "state.items", "max-concurrency": 2, "node": tool("x")}}, "output": {"key": "out"}}},
    })));
    let d = h.start(json!({"items": []}));
    assert_eq!(done(&d.status)["out"], json!([]));
}

#[test]
fn every_reducer_combines_writes() {
    let mut h = Harness::new(plan(json!({
        "state": {
            "r": {}, "a": {"reducer": "append"}, "m": {"reducer": "merge"}, "n": {"reducer": "add"},
        },
        "nodes": {
            "one": {"kind": tool("x"), "output": {"map": {"r": "1", "a": "output.list", "m": "output.obj", "n": "2"}}},
            "two": {"kind": tool("x"), "output": {"map": {"r": "2", "a": "\"z\"", "m": "output.more", "n": "0.5"}}},
        },
        "edges": [{"from": "one", "to": "two"}],
    })));
    h.start(json!({}));
    let status = h.drive(
        |_| ok(json!({"list": ["x", "y"], "obj": {"k": 1, "j": 1}, "more": {"j": 2}})),
        first,
    );
    assert_eq!(
        done(&status),
        &json!({"r": 2, "a": ["x", "y", "z"], "m": {"k": 1, "j": 2}, "n": 2.5})
    );
}

#[test]
fn a_write_of_the_wrong_type_fails_the_node_with_the_key_and_reducer() {
    let mut h = Harness::new(plan(json!({
        "state": {"n": {"reducer": "add", "default": 0}},
        "nodes": {"x": {"kind": tool("x"), "output": {"key": "n"}}},
    })));
    h.start(json!({}));
    let status = h.drive(|_| ok(json!("three")), first);
    assert_eq!(
        failed(&status),
        "node `x` state key `n` (add reducer): a write of a string, not a number"
    );
}

#[test]
fn a_failed_attempt_is_retried_with_backoff_and_the_same_call_id() {
    let mut h = Harness::new(plan(json!({
        "nodes": {"flaky": {"kind": tool("x"), "retry": {"attempts": 3, "backoff-ms": 100}}},
    })));
    h.start(json!({}));
    let mut failures = 2;
    let status = h.drive(
        |_| {
            if failures > 0 {
                failures -= 1;
                CallResult::Err {
                    error: "busy".into(),
                }
            } else {
                ok(json!("fine"))
            }
        },
        first,
    );
    assert!(matches!(status, Status::Done { .. }));
    let attempts: Vec<(u32, u64)> = h
        .dispatched
        .iter()
        .map(|c| (c.attempt, c.delay_ms))
        .collect();
    assert_eq!(attempts, [(1, 0), (2, 100), (3, 200)]);
    assert!(h.dispatched.iter().all(|c| c.id == "flaky"));
}

#[test]
fn a_final_failure_fails_the_run_or_takes_the_error_edge() {
    let mut h = Harness::new(plan(json!({
        "nodes": {"x": {"kind": tool("x"), "retry": {"attempts": 2}}},
    })));
    h.start(json!({}));
    let status = h.drive(
        |_| CallResult::Err {
            error: "boom".into(),
        },
        first,
    );
    assert_eq!(failed(&status), "node `x` failed after 2 attempts: boom");

    let mut h = Harness::new(plan(json!({
        "nodes": {
            "x": {"kind": tool("x"), "on-error": {"route": "fallback"}},
            "next": {"kind": tool("next")},
            "fallback": {"kind": tool("fallback"), "input": "{{ nodes.x.error }}"},
        },
        "edges": [{"from": "x", "to": "next"}],
    })));
    h.start(json!({}));
    let status = h.drive(
        |c| match c.node.as_str() {
            "x" => CallResult::Err {
                error: "boom".into(),
            },
            _ => ok(c.input.value().unwrap()),
        },
        first,
    );
    assert!(matches!(status, Status::Done { .. }));
    assert_eq!(h.nodes_started(), ["x", "fallback"]);
    assert_eq!(h.snap["nodes"]["fallback"]["output"], json!("failed: boom"));
    assert_eq!(h.snap["sched"]["next"]["s"], "skipped");
}

#[test]
fn interrupts_wait_and_answering_one_resumes_exactly_that_one() {
    let mut h = Harness::new(plan(json!({
        "state": {"a": {}, "b": {}},
        "nodes": {
            "ask-a": {"kind": {"interrupt": {"prompt": "A?", "schema": {"type": "boolean"}}}, "output": {"key": "a"}},
            "ask-b": {"kind": {"interrupt": {"prompt": "B?"}}, "output": {"key": "b"}},
            "after-a": {"kind": tool("x"), "input": "{{ state.a }}"},
        },
        "edges": [{"from": "ask-a", "to": "after-a"}],
    })));
    let d = h.start(json!({}));
    assert_eq!(d.status, Status::Waiting);
    assert_eq!(d.interrupts.len(), 2);
    let bad = step(
        &h.plan,
        &mut h.snap.clone(),
        vec![Input::Answer {
            interrupt: "ask-a".into(),
            value: json!("yes"),
        }],
    )
    .unwrap_err();
    assert!(
        bad.to_string().contains("does not match its schema"),
        "{bad}"
    );
    let unknown = step(
        &h.plan,
        &mut h.snap.clone(),
        vec![Input::Answer {
            interrupt: "ask-c".into(),
            value: json!(1),
        }],
    )
    .unwrap_err();
    assert_eq!(
        unknown.to_string(),
        "the run has no open interrupt `ask-c`; open: ask-a, ask-b"
    );
    let d = h.step(vec![Input::Answer {
        interrupt: "ask-a".into(),
        value: json!(true),
    }]);
    assert_eq!(d.calls.len(), 1);
    assert!(h.snap["interrupts"].get("ask-b").is_some(), "B still open");
    let d = h.step(vec![Input::Result {
        call: "after-a".into(),
        result: ok(json!(1)),
    }]);
    assert_eq!(d.status, Status::Waiting);
    let d = h.step(vec![Input::Answer {
        interrupt: "ask-b".into(),
        value: json!("later"),
    }]);
    assert_eq!(done(&d.status), &json!({"a": true, "b": "later"}));
}

#[test]
fn resume_dispatches_in_flight_calls_again_with_their_attempt() {
    let mut h = Harness::new(plan(json!({
        "nodes": {"a": {"kind": tool("x")}, "b": {"kind": tool("x")}},
    })));
    h.start(json!({}));
    // The host crashed: fold the journal into a fresh snapshot and resume.
    let mut h2 = Harness::new(h.plan.clone());
    h2.snap = h.folded.clone();
    h2.folded = h.folded.clone();
    let d = h2.step(vec![Input::Resume]);
    let ids: Vec<(&str, u32)> = d.calls.iter().map(|c| (c.id.as_str(), c.attempt)).collect();
    assert_eq!(ids, [("a", 1), ("b", 1)]);
    let status = h2.drive(|_| ok(json!(1)), first);
    assert!(matches!(status, Status::Done { .. }));
}

#[test]
fn a_never_retry_node_is_held_for_the_operator_on_resume() {
    let mut h = Harness::new(plan(json!({
        "state": {"paid": {}},
        "nodes": {"pay": {"kind": tool("charge"), "retry-on-resume": "never", "output": {"key": "paid"}}},
    })));
    h.start(json!({}));
    let d = h.step(vec![Input::Resume]);
    assert!(d.calls.is_empty());
    assert_eq!(d.status, Status::Waiting);
    assert_eq!(d.interrupts[0].id, "resume:pay");
    let bad = step(
        &h.plan,
        &mut h.snap.clone(),
        vec![Input::Answer {
            interrupt: "resume:pay".into(),
            value: json!({"action": "maybe"}),
        }],
    );
    assert!(bad.is_err());
    let d = h.step(vec![Input::Answer {
        interrupt: "resume:pay".into(),
        value: json!({"action": "done", "output": "receipt-1"}),
    }]);
    assert_eq!(done(&d.status), &json!({"paid": "receipt-1"}));
}

#[test]
fn cancel_stops_every_call_in_flight() {
    let mut h = Harness::new(plan(json!({
        "nodes": {"a": {"kind": tool("x")}, "b": {"kind": tool("x")}},
    })));
    h.start(json!({}));
    let d = h.step(vec![Input::Cancel {
        reason: "operator".into(),
    }]);
    assert_eq!(
        d.status,
        Status::Cancelled {
            reason: "operator".into()
        }
    );
    assert_eq!(d.cancel, ["a", "b"]);
    // A late result changes nothing.
    let d = h.step(vec![Input::Result {
        call: "a".into(),
        result: ok(json!(1)),
    }]);
    assert!(d.calls.is_empty());
}

#[test]
fn a_subgraph_node_dispatches_a_child_run() {
    let mut h = Harness::new(plan(json!({
        "state": {"text": {}, "summary": {}},
        "nodes": {"sum": {"kind": {"subgraph": {"graph": "summarize"}}, "input": {"text": "{{ state.text }}"}, "output": {"map": {"summary": "output.summary"}}}},
        "graphs": {"summarize": {
            "state": {"text": {}, "summary": {}},
            "nodes": {"s": {"kind": tool("summarize"), "input": "{{ state.text }}", "output": {"key": "summary"}}},
        }},
    })));
    let d = h.start(json!({"text": "long"}));
    assert_eq!(
        d.calls[0].target,
        Target::Subgraph {
            graph: "summarize".into()
        }
    );
    assert_eq!(d.calls[0].input.value().unwrap(), json!({"text": "long"}));
    let status = h.drive(|_| ok(json!({"text": "long", "summary": "short"})), first);
    assert_eq!(done(&status)["summary"], json!("short"));
}

#[test]
fn bad_inputs_are_refused_before_anything_changes() {
    let mut h = Harness::new(plan(json!({
        "state": {"a": {}},
        "nodes": {"x": {"kind": tool("x")}},
    })));
    let err = step(
        &h.plan,
        &mut h.snap,
        vec![Input::Start {
            input: json!({"b": 1}),
        }],
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the input names state keys the graph does not declare: b; declared: a"
    );
    assert_eq!(h.snap, json!({}));
    h.start(json!({}));
    let err = step(
        &h.plan,
        &mut h.snap,
        vec![Input::Start { input: json!({}) }],
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "the run has started already");
}
