//! The step function's state machine over a snapshot.
//!
//! Snapshot layout (every container an object, so patches address it by
//! keys):
//!
//! ```text
//! status      "running" | "waiting" | "done" | "failed" | "cancelled"
//! values      the graph state
//! nodes       {id: {"output": …} | {"error": "…"}}: what expressions read as `nodes`
//! sched       {id: {"s": "waiting"|"running"|"asking"|"done"|"failed"|"skipped", "r": round, "loop": true?}}
//! edges       {index: "taken" | "not-taken"}: absent while undecided
//! loops       {edge index: times taken}
//! calls       {call id: Call}: dispatched, no result yet
//! maps        {id: {"items": […], "results": {index: output}, "next": n}}
//! interrupts  {id: Interrupt}: raised, not answered
//! output      the run's output once done; error: why it failed
//! ```

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::state::{MapState, NodeState, RunState, RunStatus, Sched, edge_word};
use super::{Call, CallResult, Decision, Input, Interrupt, NodeEvent, Status, Target};
use crate::expr::Scope;
use crate::model::{NodeKind, OnError, Output, Reducer, RetryOnResume};
use crate::plan::{EdgeKind, Plan};
use crate::snapshot::{Op, Patch, Pointer, apply_parts};

/// Why a step could not be taken (the run is unchanged).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// An input that does not fit the run: an unknown interrupt, an answer
    /// that does not match its schema, a start of a started run.
    #[error("{0}")]
    BadInput(String),
    /// The snapshot is not one this engine wrote.
    #[error("corrupt snapshot: {0}")]
    Corrupt(String),
}

/// Take one step of the run whose snapshot is `snap` (an empty object for a
/// run that has not started): apply `inputs`, start whatever became ready,
/// and return the decision. `snap` is updated in place; the decision's
/// patches, applied to the old snapshot, give the same value.
///
/// This reads and writes the snapshot's JSON at each call; an orchestrator
/// that keeps a run between steps keeps its [`RunState`] and calls
/// [`step_state`].
pub fn step(plan: &Plan, snap: &mut Value, inputs: Vec<Input>) -> Result<Decision, StepError> {
    let mut state = RunState::from_json(plan, snap)?;
    let decision = step_state(plan, &mut state, inputs)?;
    *snap = state.to_json(plan);
    Ok(decision)
}

/// [`step`] over the typed snapshot: `state` is updated in place, and the
/// decision's patches make the same change to its JSON.
pub fn step_state(
    plan: &Plan,
    state: &mut RunState,
    inputs: Vec<Input>,
) -> Result<Decision, StepError> {
    for input in &inputs {
        check_input(plan, state, input)?;
    }
    let mut run = Run {
        plan,
        st: state,
        patches: Vec::new(),
        calls: Vec::new(),
        cancel: Vec::new(),
        interrupts: Vec::new(),
        events: Vec::new(),
        work: BTreeSet::new(),
        failure: None,
        cancelled: None,
    };
    for input in inputs {
        run.input(input);
    }
    run.settle();
    let status = run.finish();
    Ok(Decision {
        patches: run.patches,
        calls: run.calls,
        cancel: run.cancel,
        interrupts: run.interrupts,
        events: run.events,
        status,
    })
}

/// Reject inputs that do not fit before anything changes.
fn check_input(plan: &Plan, st: &RunState, input: &Input) -> Result<(), StepError> {
    let started = st.status.is_some();
    match input {
        Input::Start { input } => {
            if started {
                return Err(StepError::BadInput(
                    "the run has started already".to_owned(),
                ));
            }
            let Value::Object(fields) = input else {
                return Err(StepError::BadInput(format!(
                    "a run's input is an object of state keys, not {}",
                    kind_of(input)
                )));
            };
            let unknown: Vec<&str> = fields
                .keys()
                .filter(|k| !plan.graph.state.contains_key(*k))
                .map(String::as_str)
                .collect();
            if !unknown.is_empty() {
                return Err(StepError::BadInput(format!(
                    "the input names state keys the graph does not declare: {}; declared: {}",
                    unknown.join(", "),
                    names(plan.graph.state.keys())
                )));
            }
        }
        Input::Answer { interrupt, value } => {
            let Some(raised) = st.interrupts.get(interrupt) else {
                return Err(StepError::BadInput(format!(
                    "the run has no open interrupt `{interrupt}`; open: {}",
                    names(st.interrupts.keys())
                )));
            };
            if raised.held_call.is_some() {
                check_resolution(interrupt, value)?;
            } else if let Some(schema) = plan
                .node_index(&raised.node)
                .and_then(|n| plan.nodes[n].answer_schema.as_ref())
            {
                schema.validate(value).map_err(|errors| {
                    StepError::BadInput(format!(
                        "the answer to interrupt `{interrupt}` does not match its schema: {}",
                        errors.join("; ")
                    ))
                })?;
            }
        }
        Input::Result { .. } | Input::Resume | Input::Cancel { .. } => {
            if !started {
                return Err(StepError::BadInput("the run has not started".to_owned()));
            }
        }
    }
    Ok(())
}

fn check_resolution(interrupt: &str, value: &Value) -> Result<(), StepError> {
    match value.get("action").and_then(Value::as_str) {
        Some("retry" | "fail") => Ok(()),
        Some("done") if value.get("output").is_some() => Ok(()),
        _ => Err(StepError::BadInput(format!(
            "interrupt `{interrupt}` holds a call interrupted by a crash; answer \
             {{\"action\": \"done\", \"output\": …}}, {{\"action\": \"retry\"}} or {{\"action\": \"fail\"}}"
        ))),
    }
}

struct Run<'a> {
    plan: &'a Plan,
    st: &'a mut RunState,
    patches: Vec<Patch>,
    calls: Vec<Call>,
    cancel: Vec<String>,
    interrupts: Vec<Interrupt>,
    events: Vec<NodeEvent>,
    /// Nodes whose readiness may have changed.
    work: BTreeSet<usize>,
    failure: Option<String>,
    cancelled: Option<String>,
}

impl Run<'_> {
    // ---- the snapshot ----------------------------------------------------

    /// Record a change the caller made to the typed snapshot as the patch
    /// that makes it to the JSON.
    ///
    /// The value is written from what the engine holds (a call, a
    /// scheduling record) by [`Patch::new`].
    fn emit<T: Serialize + ?Sized>(&mut self, op: Op, path: &[&str], value: &T) {
        self.st.touch(path);
        self.patches.push(Patch::new(
            op,
            Pointer::from_keys(path.iter().copied()),
            value,
        ));
    }

    fn set_status(&mut self, status: RunStatus) {
        self.st.status = Some(status);
        self.emit(Op::Set, &["status"], status.as_str());
    }

    fn set_error(&mut self, error: String) {
        self.emit(Op::Set, &["error"], &error);
        self.st.error = Some(Value::from(error));
    }

    /// Set `nodes/ID` (an `{"output": …}` or `{"error": …}` record).
    fn set_node_record(&mut self, n: usize, record: Value) {
        let id = &self.plan.nodes[n].id;
        self.emit(Op::Set, &["nodes", id], &record);
        if !self.st.nodes.is_object() {
            self.st.nodes = Value::Object(Map::new());
        }
        if let Value::Object(nodes) = &mut self.st.nodes {
            nodes.insert(id.clone(), record);
        }
    }

    fn node_state(&self, n: usize) -> (NodeState, u64, bool) {
        match self.st.sched[n] {
            Some(s) => (s.state, s.round, s.looped),
            None => (NodeState::Waiting, 0, false),
        }
    }

    fn set_node_state(&mut self, n: usize, state: NodeState, round: u64, looped: bool) {
        let sched = Sched {
            state,
            round,
            looped,
        };
        self.st.sched[n] = Some(sched);
        self.emit(Op::Set, &["sched", &self.plan.nodes[n].id], &sched);
    }

    fn edge_state(&self, e: usize) -> Option<bool> {
        self.st.edges[e]
    }

    fn decide_edge(&mut self, e: usize, taken: bool) {
        self.st.edges[e] = Some(taken);
        let key = e.to_string();
        self.emit(Op::Set, &["edges", &key], edge_word(taken));
        self.work.insert(self.plan.edges[e].to);
    }

    fn remove_call(&mut self, id: &str) -> Option<Call> {
        let call = self.st.calls.remove(id)?;
        self.emit(Op::Remove, &["calls", id], &());
        Some(call)
    }

    fn remove_interrupt(&mut self, id: &str) -> Option<Interrupt> {
        let raised = self.st.interrupts.remove(id)?;
        self.emit(Op::Remove, &["interrupts", id], &());
        Some(raised)
    }

    fn remove_map(&mut self, n: usize) -> Option<MapState> {
        let map = self.st.maps.remove(&n);
        self.emit(Op::Remove, &["maps", &self.plan.nodes[n].id], &());
        map
    }

    fn event(&mut self, node: &str, event: &str, call: Option<&str>, detail: Option<String>) {
        self.events.push(NodeEvent {
            node: node.to_owned(),
            event: event.to_owned(),
            call: call.map(str::to_owned),
            detail,
        });
    }

    fn call_id(&self, n: usize, round: u64) -> String {
        let id = &self.plan.nodes[n].id;
        if round == 0 {
            id.clone()
        } else {
            format!("{id}@{round}")
        }
    }

    // ---- inputs ----------------------------------------------------------

    fn input(&mut self, input: Input) {
        if self.failure.is_some() || self.cancelled.is_some() {
            return;
        }
        match input {
            Input::Start { input } => self.start(input),
            Input::Result { call, result } => self.result(&call, result),
            Input::Answer { interrupt, value } => self.answer(&interrupt, value),
            Input::Resume => self.resume(),
            Input::Cancel { reason } => self.cancelled = Some(reason),
        }
    }

    fn start(&mut self, input: Value) {
        self.set_status(RunStatus::Running);
        let mut values = Map::new();
        for (key, decl) in &self.plan.graph.state {
            if let Some(default) = &decl.default {
                values.insert(key.clone(), default.clone());
            }
        }
        if let Value::Object(fields) = input {
            for (key, value) in fields {
                if let Some(schema) = self.plan.schemas.get(&key)
                    && let Err(errors) = schema.validate(&value)
                {
                    self.fail_run(format!(
                        "input `{key}` does not match the state key's schema: {}",
                        errors.join("; ")
                    ));
                    return;
                }
                values.insert(key, value);
            }
        }
        let values = Value::Object(values);
        self.emit(Op::Set, &["values"], &values);
        self.st.values = values;
        for (n, node) in self.plan.nodes.iter().enumerate() {
            if node.incoming.is_empty() {
                self.work.insert(n);
            }
        }
    }

    fn result(&mut self, call_id: &str, result: CallResult) {
        let Some(call) = self.remove_call(call_id) else {
            // A call this run no longer waits for: stopped by a loop's new
            // iteration, or a duplicate delivery. Nothing to do.
            return;
        };
        let Some(n) = self.plan.node_index(&call.node) else {
            self.fail_run(format!(
                "a result for node `{}`, which the graph does not have",
                call.node
            ));
            return;
        };
        let item = map_item(&call.id);
        match result {
            CallResult::Ok { output, updates } => {
                let output = match output.value() {
                    Ok(value) => value,
                    Err(e) => {
                        self.fail_node(n, format!("its output is not JSON: {e}"));
                        return;
                    }
                };
                if let Some(i) = item {
                    self.event(&call.node, "item-finished", Some(&call.id), None);
                    self.map_item_done(n, i, output);
                } else {
                    self.complete(n, output, updates);
                }
            }
            CallResult::Err { error } => {
                let retry = self.plan.nodes[n].node.retry;
                if call.attempt < retry.attempts {
                    let mut again = call;
                    again.attempt += 1;
                    again.delay_ms = retry.backoff_before(again.attempt);
                    self.event(
                        &again.node,
                        "retrying",
                        Some(&again.id),
                        Some(format!("attempt {} failed: {error}", again.attempt - 1)),
                    );
                    self.dispatch(again);
                    return;
                }
                let attempts = if call.attempt > 1 {
                    format!(" after {} attempts", call.attempt)
                } else {
                    String::new()
                };
                let what = match item {
                    Some(i) => format!("item {i} failed{attempts}: {error}"),
                    None => format!("failed{attempts}: {error}"),
                };
                if item.is_some() {
                    self.stop_map(n);
                }
                self.fail_node(n, what);
            }
        }
    }

    fn answer(&mut self, interrupt_id: &str, value: Value) {
        let Some(raised) = self.remove_interrupt(interrupt_id) else {
            return;
        };
        let Some(n) = self.plan.node_index(&raised.node) else {
            return;
        };
        let Some(held) = raised.held_call else {
            self.event(&raised.node, "answered", None, None);
            self.complete(n, value, Vec::new());
            return;
        };
        let Some(call) = self.st.calls.get(&held).cloned() else {
            return;
        };
        match value.get("action").and_then(Value::as_str) {
            Some("retry") => {
                self.event(
                    &raised.node,
                    "retrying",
                    Some(&held),
                    Some("the operator retried it".to_owned()),
                );
                self.calls.push(call);
            }
            Some("done") => {
                let output = value.get("output").cloned().unwrap_or(Value::Null);
                self.result(
                    &held,
                    CallResult::Ok {
                        output: output.into(),
                        updates: Vec::new(),
                    },
                );
            }
            _ => {
                // One attempt's worth: the operator said it failed.
                let mut last = call;
                last.attempt = self.plan.nodes[n].node.retry.attempts.max(last.attempt);
                self.emit(Op::Set, &["calls", &held], &last);
                self.st.calls.insert(held.clone(), last);
                self.result(
                    &held,
                    CallResult::Err {
                        error: "the operator marked it failed after a crash interrupted it"
                            .to_owned(),
                    },
                );
            }
        }
    }

    fn resume(&mut self) {
        let pending: Vec<Call> = self.st.calls.values().cloned().collect();
        let held: BTreeSet<String> = self
            .st
            .interrupts
            .values()
            .filter_map(|i| i.held_call.clone())
            .collect();
        for call in pending {
            if held.contains(&call.id) {
                continue;
            }
            let Some(n) = self.plan.node_index(&call.node) else {
                continue;
            };
            if self.plan.nodes[n].node.retry_on_resume == RetryOnResume::Never {
                let interrupt = Interrupt {
                    id: format!("resume:{}", call.id),
                    node: call.node.clone(),
                    prompt: format!(
                        "node `{}` (call `{}`, attempt {}) was running when the host stopped, and it \
                         says `retry-on-resume: never`: did it take effect? Mark it done with its \
                         output, retry it, or fail it.",
                        call.node, call.id, call.attempt
                    ),
                    schema: None,
                    held_call: Some(call.id.clone()),
                };
                self.raise(interrupt);
            } else {
                self.event(
                    &call.node,
                    "resumed",
                    Some(&call.id),
                    Some(format!("attempt {}", call.attempt)),
                );
                self.calls.push(call);
            }
        }
    }

    // ---- scheduling ------------------------------------------------------

    /// Start every node that became ready, until nothing changes.
    fn settle(&mut self) {
        while let Some(n) = self.work.pop_first() {
            if self.failure.is_some() || self.cancelled.is_some() {
                return;
            }
            let (state, round, looped) = self.node_state(n);
            if state != NodeState::Waiting {
                continue;
            }
            let node = &self.plan.nodes[n];
            let ready = if looped || node.incoming.is_empty() {
                Some(true)
            } else {
                let mut any_taken = false;
                let mut undecided = false;
                for &e in &node.incoming {
                    match self.edge_state(e) {
                        None => undecided = true,
                        Some(true) => any_taken = true,
                        Some(false) => {}
                    }
                }
                if undecided { None } else { Some(any_taken) }
            };
            match ready {
                None => {}
                Some(true) => self.begin(n, round),
                Some(false) => self.skip(n, round),
            }
        }
    }

    fn skip(&mut self, n: usize, round: u64) {
        self.set_node_state(n, NodeState::Skipped, round, false);
        let id = self.plan.nodes[n].id.clone();
        self.event(&id, "skipped", None, None);
        for e in self.plan.nodes[n].outgoing.clone() {
            if self.plan.edges[e].max_iterations.is_none() {
                self.decide_edge(e, false);
            }
        }
    }

    fn begin(&mut self, n: usize, round: u64) {
        let plan = self.plan;
        let node = &plan.nodes[n];
        let id = node.id.clone();
        match &node.node.kind {
            NodeKind::Tool { .. }
            | NodeKind::Agent { .. }
            | NodeKind::Subgraph { .. }
            | NodeKind::Planner(_) => {
                let input = match self.render_input(n, None) {
                    // A planner's plugin gets its settings and the goal.
                    Ok(goal) if let NodeKind::Planner(planner) = &node.node.kind => {
                        serde_json::json!({"planner": planner, "goal": goal})
                    }
                    Ok(v) => v,
                    Err(e) => {
                        self.set_node_state(n, NodeState::Running, round, false);
                        self.fail_node(n, format!("its input: {e}"));
                        return;
                    }
                };
                self.set_node_state(n, NodeState::Running, round, false);
                let call = Call {
                    id: self.call_id(n, round),
                    node: id,
                    target: target(&node.node.kind),
                    input: input.into(),
                    attempt: 1,
                    timeout_ms: node.node.timeout_ms,
                    delay_ms: 0,
                };
                self.dispatch(call);
            }
            NodeKind::Map(spec) => {
                self.set_node_state(n, NodeState::Running, round, false);
                let over = match node.over.as_ref().map(|e| self.eval(e)) {
                    Some(Ok(Value::Array(items))) => items,
                    Some(Ok(other)) => {
                        self.fail_node(
                            n,
                            format!("`over: {}` gave {}, not a list", spec.over, kind_of(&other)),
                        );
                        return;
                    }
                    Some(Err(e)) => {
                        self.fail_node(n, format!("`over: {}`: {e}", spec.over));
                        return;
                    }
                    None => {
                        self.fail_node(n, "no `over` expression".to_owned());
                        return;
                    }
                };
                let count = over.len();
                let map = MapState {
                    items: over,
                    results: std::collections::BTreeMap::new(),
                    next: 0,
                    round,
                };
                self.emit(Op::Set, &["maps", &id], &map.to_json());
                self.st.maps.insert(n, map);
                self.event(&id, "started", None, Some(format!("{count} items")));
                if count == 0 {
                    self.complete(n, Value::Array(Vec::new()), Vec::new());
                    return;
                }
                let width = usize::try_from(spec.max_concurrency.max(1)).unwrap_or(usize::MAX);
                for _ in 0..width.min(count) {
                    self.dispatch_next_item(n);
                }
            }
            NodeKind::Condition(spec) => {
                let mut chosen = None;
                for (r, expr) in node.routes.iter().enumerate() {
                    match self.truthy(expr) {
                        Ok(true) => {
                            chosen = Some(EdgeKind::Route(r));
                            break;
                        }
                        Ok(false) => {}
                        Err(e) => {
                            self.set_node_state(n, NodeState::Running, round, false);
                            self.fail_node(
                                n,
                                format!("route {r} (`{}`): {e}", spec.routes[r].when),
                            );
                            return;
                        }
                    }
                }
                if chosen.is_none() && spec.default.is_some() {
                    chosen = Some(EdgeKind::Default);
                }
                let Some(chosen) = chosen else {
                    self.set_node_state(n, NodeState::Running, round, false);
                    self.fail_node(n, "no route holds and it has no `default`".to_owned());
                    return;
                };
                let to = node
                    .outgoing
                    .iter()
                    .find(|&&e| plan.edges[e].kind == chosen)
                    .map(|&e| plan.nodes[plan.edges[e].to].id.clone())
                    .unwrap_or_default();
                self.set_node_state(n, NodeState::Running, round, false);
                self.complete(n, json!({ "route": to }), Vec::new());
            }
            NodeKind::Interrupt(spec) => {
                let prompt = match node
                    .prompt
                    .as_ref()
                    .map(|t| t.render(&Scope::new(&self.st.values, &self.st.nodes)))
                {
                    Some(Ok(Value::String(s))) => s,
                    Some(Ok(other)) => other.to_string(),
                    Some(Err(e)) => {
                        self.set_node_state(n, NodeState::Running, round, false);
                        self.fail_node(n, format!("its prompt: {e}"));
                        return;
                    }
                    None => spec.prompt.clone(),
                };
                self.set_node_state(n, NodeState::Asking, round, false);
                let interrupt = Interrupt {
                    id: self.call_id(n, round),
                    node: id,
                    prompt,
                    schema: spec.schema.clone(),
                    held_call: None,
                };
                self.raise(interrupt);
            }
        }
    }

    fn raise(&mut self, interrupt: Interrupt) {
        let id = interrupt.id.clone();
        let node = interrupt.node.clone();
        self.emit(Op::Set, &["interrupts", &id], &interrupt);
        self.st.interrupts.insert(id.clone(), interrupt.clone());
        self.event(&node, "interrupted", None, Some(interrupt.prompt.clone()));
        self.interrupts.push(interrupt);
    }

    fn dispatch(&mut self, call: Call) {
        self.emit(Op::Set, &["calls", &call.id], &call);
        self.st.calls.insert(call.id.clone(), call.clone());
        if call.attempt == 1 && map_item(&call.id).is_none() {
            self.event(&call.node, "started", Some(&call.id), None);
        }
        self.calls.push(call);
    }

    fn dispatch_next_item(&mut self, n: usize) {
        let plan = self.plan;
        let node = &plan.nodes[n];
        let id = &node.id;
        let NodeKind::Map(spec) = &node.node.kind else {
            return;
        };
        let Some(map) = self.st.maps.get_mut(&n) else {
            return;
        };
        let (next, round) = (map.next, map.round);
        let Some(item) = map
            .items
            .get(usize::try_from(next).unwrap_or(usize::MAX))
            .cloned()
        else {
            return;
        };
        map.next = next + 1;
        self.emit(Op::Set, &["maps", id, "next"], &(next + 1));
        let input = match self.render_input(n, Some((&item, next))) {
            Ok(v) => v,
            Err(e) => {
                self.stop_map(n);
                self.fail_node(n, format!("item {next}: its input: {e}"));
                return;
            }
        };
        let call = Call {
            id: format!("{}[{next}]", self.call_id(n, round)),
            node: id.clone(),
            target: target(&spec.node),
            input: input.into(),
            attempt: 1,
            timeout_ms: node.node.timeout_ms,
            delay_ms: 0,
        };
        self.dispatch(call);
    }

    fn map_item_done(&mut self, n: usize, index: u64, output: Value) {
        if !self.st.maps.contains_key(&n) {
            return;
        }
        let id = &self.plan.nodes[n].id;
        self.emit(
            Op::Set,
            &["maps", id, "results", &index.to_string()],
            &output,
        );
        if let Some(map) = self.st.maps.get_mut(&n) {
            map.results.insert(index, output);
        }
        self.dispatch_next_item(n);
        let Some(map) = self.st.maps.get(&n) else {
            return;
        };
        if map.results.len() < map.items.len() {
            return;
        }
        let Some(mut map) = self.remove_map(n) else {
            return;
        };
        let gathered: Vec<Value> = (0..map.items.len() as u64)
            .map(|i| map.results.remove(&i).unwrap_or(Value::Null))
            .collect();
        self.complete(n, Value::Array(gathered), Vec::new());
    }

    /// Stop a map's in-flight items (it failed).
    fn stop_map(&mut self, n: usize) {
        for call in self.calls_of(n) {
            self.remove_call(&call);
            self.cancel.push(call);
        }
        self.remove_map(n);
    }

    /// The ids of node `n`'s calls in flight.
    fn calls_of(&self, n: usize) -> Vec<String> {
        let id = &self.plan.nodes[n].id;
        self.st
            .calls
            .iter()
            .filter(|(_, c)| &c.node == id)
            .map(|(k, _)| k.clone())
            .collect()
    }

    // ---- node outcomes ---------------------------------------------------

    fn complete(&mut self, n: usize, output: Value, updates: Vec<(String, Value)>) {
        let plan = self.plan;
        let node = &plan.nodes[n];
        let id = node.id.clone();
        let (_, round, _) = self.node_state(n);
        // The writes the output asks for, worked out before any is made, so
        // a bad one fails the node without half its writes.
        let mut writes: Vec<(String, Value)> = Vec::new();
        match &node.node.output {
            Output::None => {}
            Output::Key(key) => writes.push((key.clone(), output.clone())),
            Output::Map(_) => {
                let scope = Scope::new(&self.st.values, &self.st.nodes).with_output(&output);
                let mut failed = None;
                for (key, expr) in &node.output {
                    match expr.eval(&scope) {
                        Ok(v) => writes.push((key.clone(), v)),
                        Err(e) => {
                            failed = Some(format!("its output `{key}`: {e}"));
                            break;
                        }
                    }
                }
                if let Some(error) = failed {
                    self.fail_node(n, error);
                    return;
                }
            }
        }
        writes.extend(updates);
        let mut ops = Vec::new();
        for (key, value) in writes {
            match self.write_op(&key, value) {
                Ok(op) => ops.push(op),
                Err(e) => {
                    self.fail_node(n, e);
                    return;
                }
            }
        }
        for (op, key, value) in ops {
            if !self.st.values.is_object() {
                self.st.values = Value::Object(Map::new());
            }
            if let Err(e) = apply_parts(&mut self.st.values, op, &[key.as_str()], &value) {
                self.fail_run(format!("internal: {e}"));
                return;
            }
            self.emit(op, &["values", &key], &value);
        }
        self.set_node_record(n, json!({ "output": output }));
        self.set_node_state(n, NodeState::Done, round, false);
        let detail = match &node.node.kind {
            NodeKind::Condition(_) => output
                .get("route")
                .and_then(Value::as_str)
                .map(|to| format!("route to {to}")),
            _ => None,
        };
        self.event(&id, "finished", None, detail);
        self.take_edges(n);
    }

    /// Check a write to a state key against its declaration: the reducer's
    /// type rules and, when the key has a schema, the value it will hold.
    fn write_op(&self, key: &str, value: Value) -> Result<(Op, String, Value), String> {
        let Some(decl) = self.plan.graph.state.get(key) else {
            return Err(format!(
                "it writes state key `{key}`, which the graph does not declare; declared: {}",
                names(self.plan.graph.state.keys())
            ));
        };
        let current = self.st.values.get(key);
        let mismatch = |what: String| {
            Err(format!(
                "state key `{key}` ({} reducer): {what}",
                decl.reducer.as_str()
            ))
        };
        let op = match (decl.reducer, current, &value) {
            (Reducer::Replace, _, _) => Op::Set,
            (Reducer::Append, None | Some(Value::Array(_)), _) => Op::Append,
            (Reducer::Merge, None | Some(Value::Object(_)), Value::Object(_)) => Op::Merge,
            (Reducer::Add, None | Some(Value::Number(_)), Value::Number(_)) => Op::Add,
            (Reducer::Append, Some(held), _) => {
                return mismatch(format!("it holds {}, not a list", kind_of(held)));
            }
            (Reducer::Merge | Reducer::Add, Some(held), _)
                if !matches!(held, Value::Object(_) | Value::Number(_)) =>
            {
                return mismatch(format!("it holds {}", kind_of(held)));
            }
            (Reducer::Merge, _, v) => {
                return mismatch(format!("a write of {}, not an object", kind_of(v)));
            }
            (Reducer::Add, _, v) => {
                return mismatch(format!("a write of {}, not a number", kind_of(v)));
            }
        };
        if let Some(schema) = self.plan.schemas.get(key) {
            let mut probe = Map::new();
            if let Some(held) = current {
                probe.insert("v".to_owned(), held.clone());
            }
            let mut probe = Value::Object(probe);
            apply_parts(&mut probe, op, &["v"], &value)
                .map_err(|e| format!("state key `{key}`: {}", e.message))?;
            let held = probe.get("v").unwrap_or(&Value::Null);
            schema.validate(held).map_err(|errors| {
                format!(
                    "state key `{key}` would not match its schema: {}",
                    errors.join("; ")
                )
            })?;
        }
        Ok((op, key.to_owned(), value))
    }

    fn fail_node(&mut self, n: usize, error: String) {
        let plan = self.plan;
        let node = &plan.nodes[n];
        let id = node.id.clone();
        let (_, round, _) = self.node_state(n);
        self.set_node_record(n, json!({ "error": error }));
        self.set_node_state(n, NodeState::Failed, round, false);
        self.event(&id, "failed", None, Some(error.clone()));
        match &node.node.on_error {
            OnError::Route(_) => {
                for &e in &node.outgoing {
                    let edge = &plan.edges[e];
                    if edge.max_iterations.is_none() {
                        self.decide_edge(e, edge.kind == EdgeKind::Error);
                    }
                }
            }
            OnError::Fail => self.fail_run(format!("node `{id}` {error}")),
        }
    }

    fn fail_run(&mut self, error: String) {
        if self.failure.is_none() {
            self.failure = Some(error);
        }
    }

    fn take_edges(&mut self, n: usize) {
        let plan = self.plan;
        // Forward edges first: a loop edge taken resets them for the next
        // iteration.
        let mut order = plan.nodes[n].outgoing.clone();
        order.sort_by_key(|&e| plan.edges[e].max_iterations.is_some());
        for e in order {
            let edge = &plan.edges[e];
            let taken = match &edge.kind {
                EdgeKind::Plain(None) => true,
                EdgeKind::Plain(Some(when)) => match self.truthy(when) {
                    Ok(t) => t,
                    Err(err) => {
                        self.fail_run(format!(
                            "edge {} -> {}: `{when}`: {err}",
                            plan.nodes[edge.from].id, plan.nodes[edge.to].id
                        ));
                        return;
                    }
                },
                EdgeKind::Route(_) | EdgeKind::Default => {
                    let chosen = self
                        .st
                        .nodes
                        .get(&plan.nodes[n].id)
                        .and_then(|r| r.get("output")?.get("route"))
                        .and_then(Value::as_str);
                    chosen == Some(plan.nodes[edge.to].id.as_str()) && self.route_is(n, e)
                }
                EdgeKind::Error => false,
            };
            match edge.max_iterations {
                None => self.decide_edge(e, taken),
                Some(max) if taken => self.iterate(e, max),
                Some(_) => {}
            }
        }
    }

    /// Whether edge `e` is the route condition node `n` chose (two routes
    /// may lead to the same node: the first that held is the one taken).
    fn route_is(&self, n: usize, e: usize) -> bool {
        let plan = self.plan;
        let target = plan.edges[e].to;
        plan.nodes[n]
            .outgoing
            .iter()
            .find(|&&o| plan.edges[o].to == target && plan.edges[o].kind != EdgeKind::Error)
            == Some(&e)
    }

    /// Take loop edge `e`: a new iteration of its region.
    fn iterate(&mut self, e: usize, max: u32) {
        let plan = self.plan;
        let edge = &plan.edges[e];
        let taken = self.st.loops[e];
        if taken >= u64::from(max) {
            self.fail_run(format!(
                "loop edge {} -> {} was taken {max} times, its `max-iterations`; the run stops \
                 rather than loop again",
                plan.nodes[edge.from].id, plan.nodes[edge.to].id
            ));
            return;
        }
        self.st.loops[e] = taken + 1;
        self.emit(Op::Set, &["loops", &e.to_string()], &(taken + 1));
        let region = plan.regions.get(&e).cloned().unwrap_or_default();
        let in_region: BTreeSet<usize> = region.iter().copied().collect();
        for &m in &region {
            let (state, round, _) = self.node_state(m);
            if matches!(state, NodeState::Running | NodeState::Asking) {
                self.stop_node_calls(m);
            }
            self.set_node_state(m, NodeState::Waiting, round + 1, m == edge.to);
            for &i in &plan.nodes[m].incoming {
                if in_region.contains(&plan.edges[i].from) && self.edge_state(i).is_some() {
                    self.st.edges[i] = None;
                    self.emit(Op::Remove, &["edges", &i.to_string()], &());
                }
            }
        }
        self.event(
            &plan.nodes[edge.to].id,
            "iteration",
            None,
            Some(format!("{} of {max}", taken + 1)),
        );
        self.work.insert(edge.to);
    }

    /// Forget a node's in-flight calls and open interrupts.
    fn stop_node_calls(&mut self, n: usize) {
        for call in self.calls_of(n) {
            self.remove_call(&call);
            self.cancel.push(call);
        }
        let id = &self.plan.nodes[n].id;
        let raised: Vec<String> = self
            .st
            .interrupts
            .iter()
            .filter(|(_, i)| &i.node == id)
            .map(|(k, _)| k.clone())
            .collect();
        for key in raised {
            self.remove_interrupt(&key);
        }
        if self.st.maps.contains_key(&n) {
            self.remove_map(n);
        }
    }

    // ---- expressions -----------------------------------------------------

    fn eval(&self, expr: &crate::expr::Expr) -> Result<Value, crate::expr::EvalError> {
        expr.eval(&Scope::new(&self.st.values, &self.st.nodes))
    }

    fn truthy(&self, expr: &crate::expr::Expr) -> Result<bool, crate::expr::EvalError> {
        expr.truthy(&Scope::new(&self.st.values, &self.st.nodes))
    }

    fn render_input(&self, n: usize, item: Option<(&Value, u64)>) -> Result<Value, String> {
        let (state, nodes) = (&self.st.values, &self.st.nodes);
        let Some(template) = &self.plan.nodes[n].input else {
            return Ok(match item {
                Some((item, _)) => item.clone(),
                None => state.clone(),
            });
        };
        let index;
        let mut scope = Scope::new(state, nodes);
        if let Some((item, i)) = item {
            index = Value::from(i);
            scope = scope.with_item(item, &index);
        }
        template.render(&scope).map_err(|e| e.to_string())
    }

    // ---- the end of a step -----------------------------------------------

    fn finish(&mut self) -> Status {
        if let Some(reason) = self.cancelled.clone() {
            self.stop_everything();
            self.set_status(RunStatus::Cancelled);
            self.set_error(format!("cancelled: {reason}"));
            return Status::Cancelled { reason };
        }
        if let Some(error) = self.failure.clone() {
            self.stop_everything();
            self.set_status(RunStatus::Failed);
            self.set_error(error.clone());
            return Status::Failed { error };
        }
        let asking = !self.st.interrupts.is_empty();
        // A call held for the operator is not running.
        let held = self
            .st
            .interrupts
            .values()
            .filter(|i| i.held_call.is_some())
            .count();
        let in_flight = self.st.calls.len() > held;
        let status = if in_flight {
            RunStatus::Running
        } else if asking {
            RunStatus::Waiting
        } else {
            let output = self.output();
            self.emit(Op::Set, &["output"], &output);
            self.st.output = Some(output.clone());
            self.set_status(RunStatus::Done);
            return Status::Done { output };
        };
        if self.st.status != Some(status) {
            self.set_status(status);
        }
        if in_flight {
            Status::Running
        } else {
            Status::Waiting
        }
    }

    fn stop_everything(&mut self) {
        let calls: Vec<String> = self.st.calls.keys().cloned().collect();
        for key in calls {
            self.remove_call(&key);
            self.cancel.push(key);
        }
        let raised: Vec<String> = self.st.interrupts.keys().cloned().collect();
        for key in raised {
            self.remove_interrupt(&key);
        }
        // Calls decided in this step are not dispatched after all.
        self.calls.clear();
        self.interrupts.clear();
    }

    fn output(&self) -> Value {
        let Value::Object(values) = &self.st.values else {
            return Value::Object(Map::new());
        };
        if self.plan.graph.output.is_empty() {
            return Value::Object(values.clone());
        }
        let mut out = Map::new();
        for key in &self.plan.graph.output {
            if let Some(v) = values.get(key) {
                out.insert(key.clone(), v.clone());
            }
        }
        Value::Object(out)
    }
}

fn target(kind: &NodeKind) -> Target {
    match kind {
        NodeKind::Tool { plugin, tool } => Target::Tool {
            plugin: plugin.clone(),
            tool: tool.clone(),
        },
        NodeKind::Agent { plugin } => Target::Agent {
            plugin: plugin.clone(),
        },
        NodeKind::Subgraph { graph } => Target::Subgraph {
            graph: graph.clone(),
        },
        NodeKind::Planner(planner) => Target::Agent {
            plugin: planner.plugin.clone(),
        },
        // Validation allows only the three above inside a map, and these
        // kinds never dispatch a call of their own.
        NodeKind::Map(_) | NodeKind::Condition(_) | NodeKind::Interrupt(_) => Target::Agent {
            plugin: String::new(),
        },
    }
}

/// The item index of a map item's call id (`node[3]`, `node@2[3]`).
fn map_item(call: &str) -> Option<u64> {
    let open = call.rfind('[')?;
    call.strip_suffix(']')?.get(open + 1..)?.parse().ok()
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn names<'a>(names: impl IntoIterator<Item = &'a String>) -> String {
    let list: Vec<&str> = names.into_iter().map(String::as_str).collect();
    if list.is_empty() {
        "none".to_owned()
    } else {
        list.join(", ")
    }
}
