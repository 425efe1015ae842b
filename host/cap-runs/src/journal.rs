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
#[derive(Serialize)]
struct PatchRef<'a> {
    op: Op,
    path: &'a Pointer,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    blob: Option<String>,
}

/// A [`StoredDecision`] to write, borrowed.
#[derive(Serialize)]
struct DecisionRef<'a> {
    version: u64,
    patches: Vec<PatchRef<'a>>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    cancel: &'a [String],
    #[serde(skip_serializing_if = "<[NodeEvent]>::is_empty")]
    events: &'a [NodeEvent],
    status: &'a Status,
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
    let stored = |patches| DecisionRef {
        version,
        patches,
        cancel: &decision.cancel,
        events: &decision.events,
        status,
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
    let mut payload = serde_json::to_vec(&stored(inline.collect())).map_err(|e| e.to_string())?;
    if payload.len() > BLOB_THRESHOLD {
        let mut patches = Vec::with_capacity(decision.patches.len());
        for patch in &decision.patches {
            patches.push(store_patch(store, patch)?);
        }
        payload = serde_json::to_vec(&stored(patches)).map_err(|e| e.to_string())?;
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
