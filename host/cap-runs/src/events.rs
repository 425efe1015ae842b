//! A run's journal entries as events: what a live view, the host's event
//! bus and (later) WebSocket clients show.
//!
//! | topic | when | data |
//! |---|---|---|
//! | `run.started` | the run starts | `input` |
//! | `run.resumed`, `run.forked` | a host resumes it; it was forked | `parent`, `seq`, `patch` (fork) |
//! | `run.waiting`, `run.done`, `run.failed`, `run.cancelled` | a step leaves the run so | `output` (`output-blob` for a large one) / `error` / `reason` |
//! | `node.started`, `node.finished`, `node.failed`, `node.retrying`, `node.skipped`, `node.interrupted`, `node.answered`, `node.resumed`, `node.iteration`, `node.item-finished` | the orchestrator decided so | `node`, `call`, `detail` |
//! | `node.result` | a node call returned | `call`, `ms`, `ok`, `error`, `usage` (what its model calls used: `calls`, `input-tokens`, `output-tokens`, `cost-micro-usd`), `warnings` (what its plugin logged as warnings or errors), `runs` (the runs it started: spawned agents, a plan) |
//! | `state.changed` | a step wrote state keys | `keys` |
//!
//! Every event carries the run, the seq of the entry it comes from and the
//! entry's time, so a subscriber that reconnects resumes after the last seq
//! it saw.

use std::borrow::Cow;

use convergio_graph::engine::{CallResult, Input, NodeEvent, Status};
use convergio_graph::snapshot::Pointer;
use convergio_journal::{Entry, RunId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::journal::{EntryKind, JournaledInput};

/// One event of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunEvent {
    /// What happened (`node.finished`, …).
    pub topic: String,
    /// The run.
    pub run: String,
    /// The journal entry it comes from.
    pub seq: u64,
    /// When that entry was committed, Unix milliseconds.
    pub at_ms: u64,
    /// The details.
    pub data: Value,
}

#[derive(Deserialize)]
struct DecisionEvents {
    #[serde(default)]
    patches: Vec<PatchPath>,
    #[serde(default)]
    events: Vec<NodeEvent>,
    status: Status,
}

#[derive(Deserialize)]
struct PatchPath {
    path: Pointer,
}

/// A decision's `output` patch: its value, or that it is a blob.
#[derive(Deserialize)]
struct OutputPatches {
    #[serde(default)]
    patches: Vec<OutputPatch>,
}

#[derive(Deserialize)]
struct OutputPatch {
    path: Pointer,
    #[serde(default)]
    value: Value,
    #[serde(default)]
    blob: Option<String>,
}

/// The run's output as a decision that finished it journaled it (see
/// `journal::encode_step`): `{"output": …}`, or `{"output-blob": hash}`
/// for one stored as a blob.
fn output_of(payload: &[u8], inline: Value) -> Value {
    if !inline.is_null() {
        return json!({ "output": inline });
    }
    let patches = serde_json::from_slice::<OutputPatches>(payload)
        .map(|d| d.patches)
        .unwrap_or_default();
    match patches.into_iter().rev().find(|p| p.path.is_key("output")) {
        Some(OutputPatch {
            blob: Some(hash), ..
        }) => json!({ "output-blob": hash }),
        Some(p) => json!({ "output": p.value }),
        None => json!({ "output": null }),
    }
}

/// The events of one journal entry (none for an entry this crate did not
/// write).
pub fn events_of(entry: &Entry) -> Vec<RunEvent> {
    let event = |topic: String, data: Value| RunEvent {
        topic,
        run: entry.run.to_string(),
        seq: entry.seq,
        at_ms: entry.at_ms,
        data,
    };
    let Some(kind) = EntryKind::parse(&entry.kind) else {
        return Vec::new();
    };
    if kind == EntryKind::Decision {
        let Ok(decision) = serde_json::from_slice::<DecisionEvents>(&entry.payload) else {
            return Vec::new();
        };
        let mut out: Vec<RunEvent> = decision
            .events
            .into_iter()
            .map(|e| {
                event(
                    format!("node.{}", e.event),
                    json!({"node": e.node, "call": e.call, "detail": e.detail}),
                )
            })
            .collect();
        let mut keys: Vec<Cow<'_, str>> = decision
            .patches
            .iter()
            .filter_map(|p| {
                let mut path = p.path.keys();
                (path.next()? == "values").then(|| path.next()).flatten()
            })
            .collect();
        keys.dedup();
        if !keys.is_empty() {
            out.push(event("state.changed".to_owned(), json!({ "keys": keys })));
        }
        match decision.status {
            Status::Running => {}
            Status::Waiting => out.push(event("run.waiting".to_owned(), json!({}))),
            Status::Done { output } => {
                out.push(event(
                    "run.done".to_owned(),
                    output_of(&entry.payload, output),
                ));
            }
            Status::Failed { error } => {
                out.push(event("run.failed".to_owned(), json!({ "error": error })))
            }
            Status::Cancelled { reason } => {
                out.push(event(
                    "run.cancelled".to_owned(),
                    json!({ "reason": reason }),
                ));
            }
        }
        return out;
    }
    if kind == EntryKind::Fork {
        let data = serde_json::from_slice(&entry.payload).unwrap_or(Value::Null);
        return vec![event("run.forked".to_owned(), data)];
    }
    // Inputs: the payload may be a blob reference for a large one; the
    // event then says so instead of reading the blob.
    let Ok(journaled) = serde_json::from_slice::<JournaledInput>(&entry.payload) else {
        return vec![event(
            format!("run.{}", kind.as_str()),
            json!({"call": entry.call_id, "large": true}),
        )];
    };
    match journaled.input {
        Input::Start { input } => vec![event("run.started".to_owned(), json!({ "input": input }))],
        Input::Result { call, result } => {
            let (ok, error) = match result {
                CallResult::Ok { .. } => (true, None),
                CallResult::Err { error } => (false, Some(error)),
            };
            let mut data = json!({"call": call, "ms": journaled.ms, "ok": ok, "error": error});
            if let Some(usage) = journaled.usage {
                data["usage"] = json!(usage);
            }
            if !journaled.warnings.is_empty() {
                data["warnings"] = json!(journaled.warnings);
            }
            if !journaled.runs.is_empty() {
                data["runs"] = json!(journaled.runs);
            }
            vec![event("node.result".to_owned(), data)]
        }
        Input::Answer { interrupt, .. } => {
            vec![event(
                "interrupt.answered".to_owned(),
                json!({ "interrupt": interrupt }),
            )]
        }
        Input::Resume => vec![event("run.resumed".to_owned(), json!({}))],
        Input::Cancel { reason } => vec![event(
            "run.cancel-requested".to_owned(),
            json!({ "reason": reason }),
        )],
    }
}

/// The run an event is about, as a [`RunId`].
impl RunEvent {
    /// The run's id.
    pub fn run_id(&self) -> RunId {
        RunId::from(self.run.clone())
    }
}
