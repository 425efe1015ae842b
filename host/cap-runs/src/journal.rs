//! How a run is written to the journal and read back.
//!
//! Each step is one append: an entry per input (`run.start`, `node.result`,
//! `interrupt.answer`, `run.resume`, `run.cancel`, `run.fork`) and then the
//! `decision`: the step's version, its patches to the snapshot, the calls it
//! stopped, what happened to nodes, and the run's status. The calls it
//! dispatched are in its patches (`calls/ID`), so they are not written
//! twice. A patch value or an input larger than [`BLOB_THRESHOLD`] is stored
//! once, by content hash, and the entry refers to it.

use convergio_graph::engine::{Decision, Input, NodeEvent, Status};
use convergio_graph::snapshot::{Json, Op, Patch, Pointer, apply};
use convergio_journal::{Entry, NewEntry, RunStore};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::{CallReport, CallUsage};

/// Values larger than this (bytes of JSON) go to the blob store.
pub const BLOB_THRESHOLD: usize = 16 * 1024;

/// The kinds of journal entries a run has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// The run started, with its input.
    Start,
    /// A node call finished.
    Result,
    /// An interrupt was answered.
    Answer,
    /// The host resumed the run after a restart.
    Resume,
    /// The run was cancelled.
    Cancel,
    /// The run was forked from another, with a state patch.
    Fork,
    /// The orchestrator's decision.
    Decision,
}

impl EntryKind {
    /// The kind as journaled.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "run.start",
            Self::Result => "node.result",
            Self::Answer => "interrupt.answer",
            Self::Resume => "run.resume",
            Self::Cancel => "run.cancel",
            Self::Fork => "run.fork",
            Self::Decision => "decision",
        }
    }

    /// The kind journaled as `text`.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "run.start" => Self::Start,
            "node.result" => Self::Result,
            "interrupt.answer" => Self::Answer,
            "run.resume" => Self::Resume,
            "run.cancel" => Self::Cancel,
            "run.fork" => Self::Fork,
            "decision" => Self::Decision,
            _ => return None,
        })
    }

    fn of(input: &Input) -> Self {
        match input {
            Input::Start { .. } => Self::Start,
            Input::Result { .. } => Self::Result,
            Input::Answer { .. } => Self::Answer,
            Input::Resume => Self::Resume,
            Input::Cancel { .. } => Self::Cancel,
        }
    }
}

/// A journaled input: what happened, and for a node result how long the
/// call took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournaledInput {
    /// The input.
    pub input: Input,
    /// The call's duration in milliseconds (results only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ms: Option<u64>,
    /// What the call's model calls used (results of metered calls only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<CallUsage>,
    /// The warnings its plugin logged while it ran.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The runs it started.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<String>,
}

/// How a node call went: its duration, and its report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Measured {
    /// Milliseconds.
    pub ms: u64,
    /// What it used and logged.
    pub report: CallReport,
}

/// A patch as journaled: its value inline or by blob hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredPatch {
    op: Op,
    path: Pointer,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    blob: Option<String>,
}

/// A decision as journaled.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredDecision {
    version: u64,
    patches: Vec<StoredPatch>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    cancel: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    events: Vec<NodeEvent>,
    status: Status,
}

/// A payload stored by hash.
#[derive(Debug, Serialize, Deserialize)]
struct BlobRef {
    blob: String,
}

/// One step of a run as read back: a point the run can be inspected at or
/// forked from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// The decision's seq in the journal.
    pub seq: u64,
    /// When it was committed, Unix milliseconds.
    pub at_ms: u64,
    /// The snapshot's version after it.
    pub version: u64,
    /// What happened to nodes in it.
    pub events: Vec<NodeEvent>,
    /// The run's status after it.
    pub status: Status,
}

/// A [`JournaledInput`] to write, borrowed.
#[derive(Serialize)]
struct InputRef<'a> {
    input: &'a Input,
    #[serde(skip_serializing_if = "Option::is_none")]
    ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<CallUsage>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    warnings: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    runs: &'a [String],
}

/// A [`StoredPatch`] to write, borrowed.
struct PatchRef<'a> {
    op: Op,
    path: &'a Pointer,
    value: Option<&'a RawValue>,
    blob: Option<String>,
}

/// The entries of one step: `inputs`, with how each node call went
/// (`measured`, beside them; none for other inputs), and `decision`.
pub(crate) fn encode_step(
    store: &dyn RunStore,
    inputs: &[Input],
    measured: &[Option<Measured>],
    version: u64,
    decision: &Decision,
) -> Result<Vec<NewEntry>, String> {
    let mut entries = Vec::with_capacity(inputs.len() + 1);
    for (i, input) in inputs.iter().enumerate() {
        let m = measured.get(i).and_then(Option::as_ref);
        let journaled = InputRef {
            input,
            ms: m.map(|m| m.ms),
            usage: m.and_then(|m| m.report.usage),
            warnings: m.map_or(&[], |m| m.report.warnings.as_slice()),
            runs: m.map_or(&[], |m| m.report.runs.as_slice()),
        };
        let mut payload = serde_json::to_vec(&journaled).map_err(|e| e.to_string())?;
        if payload.len() > BLOB_THRESHOLD {
            let blob = store.put_blob(&payload).map_err(|e| e.to_string())?;
            payload = serde_json::to_vec(&BlobRef { blob }).map_err(|e| e.to_string())?;
        }
        let mut entry = NewEntry::new(EntryKind::of(input).as_str(), payload);
        if let Input::Result { call, .. } = input {
            entry = entry.call(call.clone());
        }
        entries.push(entry);
    }
    // A run's output is in the decision's patches already (`output`): the
    // status says `done` without it, so a large output is stored once, as a
    // blob when it is over the threshold.
    let done = Status::Done {
        output: Value::Null,
    };
    let status = match &decision.status {
        Status::Done { .. } => &done,
        other => other,
    };
    // Every value inline, its text as the orchestrator wrote it: a patch
    // value over the threshold makes the whole payload larger than it, so
    // only then are the patches looked at one by one.
    let inline = decision.patches.iter().map(|p| PatchRef {
        op: p.op,
        path: &p.path,
        value: p.value.as_deref(),
        blob: None,
    });
    let mut payload = write_decision(version, inline, &decision.cancel, &decision.events, status)?;
    if payload.len() > BLOB_THRESHOLD {
        let mut patches = Vec::with_capacity(decision.patches.len());
        for patch in &decision.patches {
            patches.push(store_patch(store, patch)?);
        }
        payload = write_decision(
            version,
            patches.into_iter(),
            &decision.cancel,
            &decision.events,
            status,
        )?;
    }
    entries.push(NewEntry::new(EntryKind::Decision.as_str(), payload));
    Ok(entries)
}

/// `patch` as journaled: a value over [`BLOB_THRESHOLD`] bytes of JSON in
/// the blob store, a smaller one inline.
fn store_patch<'a>(store: &dyn RunStore, patch: &'a Patch) -> Result<PatchRef<'a>, String> {
    let mut stored = PatchRef {
        op: patch.op,
        path: &patch.path,
        value: None,
        blob: None,
    };
    let Some(value) = patch.value.as_deref() else {
        return Ok(stored);
    };
    let bytes = value.get().as_bytes();
    if bytes.len() > BLOB_THRESHOLD {
        stored.blob = Some(store.put_blob(bytes).map_err(|e| e.to_string())?);
    } else {
        stored.value = Some(value);
    }
    Ok(stored)
}

/// A decision's payload: what serializing a [`StoredDecision`] writes,
/// written directly. A step's patches and events are most of the
/// journal's bytes; through serde every one of their field names went
/// through JSON string escaping, which was most of the cost of journaling
/// a step (run 13, docs/benchmarks.md).
fn write_decision<'a>(
    version: u64,
    patches: impl ExactSizeIterator<Item = PatchRef<'a>>,
    cancel: &[String],
    events: &[NodeEvent],
    status: &Status,
) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(64 + patches.len() * 64 + events.len() * 48);
    out.extend_from_slice(b"{\"version\":");
    out.extend_from_slice(version.to_string().as_bytes());
    out.extend_from_slice(b",\"patches\":[");
    for (i, patch) in patches.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"op\":\"");
        out.extend_from_slice(patch.op.as_str().as_bytes());
        out.extend_from_slice(b"\",\"path\":");
        json_str(&mut out, patch.path.as_str())?;
        if let Some(value) = patch.value {
            out.extend_from_slice(b",\"value\":");
            out.extend_from_slice(value.get().as_bytes());
        }
        if let Some(blob) = &patch.blob {
            out.extend_from_slice(b",\"blob\":");
            json_str(&mut out, blob)?;
        }
        out.push(b'}');
    }
    out.push(b']');
    if !cancel.is_empty() {
        out.extend_from_slice(b",\"cancel\":");
        serde_json::to_writer(&mut out, cancel).map_err(|e| e.to_string())?;
    }
    if !events.is_empty() {
        out.extend_from_slice(b",\"events\":[");
        for (i, event) in events.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"node\":");
            json_str(&mut out, &event.node)?;
            out.extend_from_slice(b",\"event\":");
            json_str(&mut out, &event.event)?;
            if let Some(call) = &event.call {
                out.extend_from_slice(b",\"call\":");
                json_str(&mut out, call)?;
            }
            if let Some(detail) = &event.detail {
                out.extend_from_slice(b",\"detail\":");
                json_str(&mut out, detail)?;
            }
            out.push(b'}');
        }
        out.push(b']');
    }
    out.extend_from_slice(b",\"status\":");
    serde_json::to_writer(&mut out, status).map_err(|e| e.to_string())?;
    out.push(b'}');
    Ok(out)
}

/// `text` as a JSON string: copied between quotes when nothing in it needs
/// escaping (the usual ids and paths), else escaped by serde_json.
fn json_str(out: &mut Vec<u8>, text: &str) -> Result<(), String> {
    if text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
        Ok(())
    } else {
        serde_json::to_writer(out, text).map_err(|e| e.to_string())
    }
}

/// A decision entry read back: its version, patches (blobs resolved) and
/// the rest.
pub(crate) struct ReadDecision {
    pub version: u64,
    pub patches: Vec<Patch>,
    pub events: Vec<NodeEvent>,
    pub status: Status,
}

pub(crate) fn read_decision(store: &dyn RunStore, entry: &Entry) -> Result<ReadDecision, String> {
    let stored: StoredDecision =
        serde_json::from_slice(&entry.payload).map_err(|e| format!("a decision: {e}"))?;
    let mut patches = Vec::with_capacity(stored.patches.len());
    for p in stored.patches {
        let value = match (p.value, p.blob) {
            (Some(v), _) => Some(v),
            (None, Some(hash)) => {
                let bytes = store
                    .get_blob(&hash)
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("blob {hash} is missing"))?;
                Some(serde_json::from_slice(&bytes).map_err(|e| format!("blob {hash}: {e}"))?)
            }
            (None, None) => None,
        };
        patches.push(Patch {
            op: p.op,
            path: p.path,
            value,
        });
    }
    let mut status = stored.status;
    if let Status::Done { output } = &mut status
        && output.is_null()
    {
        // Journaled once, as the snapshot's `output` (see `encode_step`).
        if let Some(p) = patches
            .iter()
            .rev()
            .find(|p| p.op == Op::Set && p.path.is_key("output"))
        {
            *output = p.value().map_err(|e| e.to_string())?;
        }
    }
    Ok(ReadDecision {
        version: stored.version,
        patches,
        events: stored.events,
        status,
    })
}

/// An input entry (`run.start`, `node.result`, …) read back.
pub fn read_input(store: &dyn RunStore, entry: &Entry) -> Result<JournaledInput, String> {
    let bytes = match serde_json::from_slice::<BlobRef>(&entry.payload) {
        Ok(blob) => store
            .get_blob(&blob.blob)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("blob {} is missing", blob.blob))?,
        Err(_) => entry.payload.clone(),
    };
    serde_json::from_slice(&bytes).map_err(|e| format!("an input: {e}"))
}

/// A checkpoint's content: the snapshot and its version.
#[derive(Debug, Deserialize)]
pub(crate) struct Checkpoint {
    pub version: u64,
    pub snapshot: Value,
}

/// A [`Checkpoint`] to write, borrowed.
#[derive(Serialize)]
pub(crate) struct CheckpointRef<'a> {
    pub version: u64,
    pub snapshot: &'a Value,
}

/// Apply a read decision's patches to `snap`.
pub(crate) fn fold(snap: &mut Value, decision: &ReadDecision) -> Result<(), String> {
    for patch in &decision.patches {
        apply(snap, patch).map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The payload written directly reads back as the same decision serde
    /// writes, with escapes, blobs, cancels, events and every status.
    #[test]
    fn a_written_decision_is_what_serde_writes() {
        let value = RawValue::from_string(r#"{"a": [1, "x\"y"]}"#.to_owned()).unwrap();
        let path = Pointer::from_keys(["values", "q\"uo/te~", "tab\t"]);
        let events = vec![
            NodeEvent {
                node: "n\"1".into(),
                event: "failed".into(),
                call: Some("n1[2]".into()),
                detail: Some("line\nbreak".into()),
            },
            NodeEvent {
                node: "n2".into(),
                event: "started".into(),
                call: None,
                detail: None,
            },
        ];
        let statuses = [
            Status::Running,
            Status::Waiting,
            Status::Done {
                output: Value::Null,
            },
            Status::Failed {
                error: "it \"broke\"".into(),
            },
            Status::Cancelled {
                reason: "stop".into(),
            },
        ];
        for status in statuses {
            for cancel in [vec![], vec!["a".to_owned(), "b\\c".to_owned()]] {
                let patches = || {
                    [
                        PatchRef {
                            op: Op::Set,
                            path: &path,
                            value: Some(&value),
                            blob: None,
                        },
                        PatchRef {
                            op: Op::Remove,
                            path: &path,
                            value: None,
                            blob: None,
                        },
                        PatchRef {
                            op: Op::Append,
                            path: &path,
                            value: None,
                            blob: Some("ab12".into()),
                        },
                    ]
                    .into_iter()
                };
                let written = write_decision(7, patches(), &cancel, &events, &status).unwrap();
                let expected = serde_json::to_value(StoredDecision {
                    version: 7,
                    patches: patches()
                        .map(|p| StoredPatch {
                            op: p.op,
                            path: p.path.clone(),
                            value: p
                                .value
                                .map(|v| RawValue::from_string(v.get().to_owned()).unwrap()),
                            blob: p.blob,
                        })
                        .collect(),
                    cancel: cancel.clone(),
                    events: events.clone(),
                    status: status.clone(),
                })
                .unwrap();
                let read: Value = serde_json::from_slice(&written).unwrap();
                assert_eq!(read, expected, "{}", String::from_utf8_lossy(&written));
                let back: StoredDecision = serde_json::from_slice(&written).unwrap();
                assert_eq!(back.patches[0].path, path);
            }
        }
    }
}
