//! A run's snapshot and the patches that change it.
//!
//! The orchestrator keeps everything it knows of a run in one JSON object —
//! the graph state, the outputs of finished nodes, its scheduling records —
//! and every change it makes is a [`Patch`]. The host journals the patches of
//! each step and folds them with [`apply`] to rebuild the snapshot on resume,
//! without calling the orchestrator: what was journaled is what happened,
//! whatever orchestrator version runs next. A patch carries the reducer of a
//! state write (`append`, `merge`, `add`) instead of the value it produced,
//! so the journal grows with what each step added, not with the state.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// What a patch does at its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Op {
    /// Put the value there, replacing what was there.
    Set,
    /// Remove the key (nothing if absent).
    Remove,
    /// The target is a list (created empty when absent): a list value is
    /// appended item by item, anything else as one item.
    Append,
    /// The target is an object (created empty when absent): the value's keys
    /// replace its keys.
    Merge,
    /// The target is a number (0 when absent): the value is added.
    Add,
}

/// A patch's operand: JSON text, checked to be JSON when it was made.
pub type Json = Box<RawValue>;

/// One change to a snapshot: `op` with `value` at `path`, a list of object
/// keys from the snapshot's root. Objects on the way are created.
///
/// The value is JSON text: the orchestrator writes it once, the host checks
/// it, journals it as it is, and parses it only where it applies it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Patch {
    /// The operation.
    pub op: Op,
    /// Object keys from the root.
    pub path: Vec<String>,
    /// Its operand (none for [`Op::Remove`], and for a `null`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Json>,
}

impl Patch {
    /// `op` with `value` at `path`, its JSON text written straight from
    /// `value` (no `Value` tree first); `null` is kept as none.
    pub fn new<T: Serialize + ?Sized>(op: Op, path: Vec<String>, value: &T) -> Self {
        // Serializing a value or one of the engine's records cannot fail.
        let value = serde_json::value::to_raw_value(value)
            .ok()
            .filter(|v| v.get() != "null");
        Self { op, path, value }
    }

    /// The operand as a value (`null` when none).
    pub fn value(&self) -> Result<Value, PatchError> {
        match &self.value {
            None => Ok(Value::Null),
            Some(text) => serde_json::from_str(text.get()).map_err(|e| PatchError {
                op: self.op,
                path: self.path.join("/"),
                message: format!("its value is not JSON: {e}"),
            }),
        }
    }
}

impl PartialEq for Patch {
    fn eq(&self, other: &Self) -> bool {
        self.op == other.op
            && self.path == other.path
            && self.value.as_ref().map(|v| v.get()) == other.value.as_ref().map(|v| v.get())
    }
}

/// Why a patch does not apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("patch {op:?} at /{path}: {message}")]
pub struct PatchError {
    /// The operation.
    pub op: Op,
    /// Its path, joined with `/`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// Apply `patch` to `root` (parsing its value).
pub fn apply(root: &mut Value, patch: &Patch) -> Result<(), PatchError> {
    let value = patch.value()?;
    apply_value(root, patch.op, &patch.path, Cow::Owned(value))
}

/// Apply `op` with `value` at `path` of `root` (what [`apply`] does, without
/// building a [`Patch`]).
pub fn apply_parts(
    root: &mut Value,
    op: Op,
    path: &[String],
    value: &Value,
) -> Result<(), PatchError> {
    apply_value(root, op, path, Cow::Borrowed(value))
}

fn apply_value(
    root: &mut Value,
    op: Op,
    path: &[String],
    value: Cow<'_, Value>,
) -> Result<(), PatchError> {
    let fail = |message: String| PatchError {
        op,
        path: path.join("/"),
        message,
    };
    let Some((last, parents)) = path.split_last() else {
        return Err(fail("an empty path".to_owned()));
    };
    let mut cur = root;
    for key in parents {
        let Value::Object(map) = cur else {
            return Err(fail(format!(
                "`{key}` is under a value that is not an object"
            )));
        };
        // Looked up before inserting: most parents exist, and a key is
        // copied only for one that does not.
        if !map.contains_key(key) {
            map.insert(key.clone(), Value::Object(Map::new()));
        }
        cur = map
            .get_mut(key)
            .ok_or_else(|| fail(format!("`{key}` vanished")))?;
    }
    let Value::Object(map) = cur else {
        return Err(fail("the parent is not an object".to_owned()));
    };
    if op == Op::Remove {
        map.remove(last);
        return Ok(());
    }
    if op == Op::Set {
        match map.get_mut(last) {
            Some(slot) => *slot = value.into_owned(),
            None => {
                map.insert(last.clone(), value.into_owned());
            }
        }
        return Ok(());
    }
    if op == Op::Merge && !value.is_object() {
        return Err(fail(format!("merge of {}, not an object", kind(&value))));
    }
    if !map.contains_key(last) {
        let empty = match op {
            Op::Append => Value::Array(Vec::new()),
            Op::Merge => Value::Object(Map::new()),
            _ => Value::from(0),
        };
        map.insert(last.clone(), empty);
    }
    let target = map
        .get_mut(last)
        .ok_or_else(|| fail(format!("`{last}` vanished")))?;
    match op {
        Op::Append => {
            let Value::Array(items) = target else {
                return Err(fail(format!("append to {}, not a list", kind(target))));
            };
            match value {
                Cow::Owned(Value::Array(more)) => items.extend(more),
                Cow::Borrowed(Value::Array(more)) => items.extend(more.iter().cloned()),
                one => items.push(one.into_owned()),
            }
        }
        Op::Merge => {
            let Value::Object(fields) = target else {
                return Err(fail(format!("merge into {}, not an object", kind(target))));
            };
            match value {
                Cow::Owned(Value::Object(incoming)) => fields.extend(incoming),
                Cow::Borrowed(Value::Object(incoming)) => {
                    for (k, v) in incoming {
                        fields.insert(k.clone(), v.clone());
                    }
                }
                _ => {}
            }
        }
        Op::Add => {
            let sum = add(target, &value)
                .ok_or_else(|| fail(format!("add of {} to {}", kind(&value), kind(target))))?;
            *target = sum;
        }
        Op::Set | Op::Remove => {}
    }
    Ok(())
}

/// `a + b` for two JSON numbers: an integer while exact, else a float.
pub fn add(a: &Value, b: &Value) -> Option<Value> {
    let (Value::Number(x), Value::Number(y)) = (a, b) else {
        return None;
    };
    if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64())
        && let Some(sum) = x.checked_add(y)
    {
        return Some(Value::from(sum));
    }
    let sum = x.as_f64()? + y.as_f64()?;
    serde_json::Number::from_f64(sum).map(Value::Number)
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    fn patch(op: Op, path: &[&str], value: Value) -> Patch {
        Patch::new(op, path.iter().map(|s| (*s).to_owned()).collect(), &value)
    }

    #[test]
    fn every_op_applies_and_creates_what_is_missing() {
        let mut root = json!({});
        for p in [
            patch(Op::Set, &["values", "a"], json!(1)),
            patch(Op::Append, &["values", "list"], json!([1, 2])),
            patch(Op::Append, &["values", "list"], json!(3)),
            patch(Op::Merge, &["values", "obj"], json!({"x": 1})),
            patch(Op::Merge, &["values", "obj"], json!({"y": 2, "x": 3})),
            patch(Op::Add, &["values", "n"], json!(2)),
            patch(Op::Add, &["values", "n"], json!(0.5)),
            patch(Op::Set, &["values", "gone"], json!(true)),
            patch(Op::Remove, &["values", "gone"], Value::Null),
        ] {
            apply(&mut root, &p).unwrap();
        }
        assert_eq!(
            root,
            json!({"values": {"a": 1, "list": [1, 2, 3], "obj": {"x": 3, "y": 2}, "n": 2.5}})
        );
    }

    #[test]
    fn a_mismatched_target_is_an_error_naming_the_path() {
        let mut root = json!({"values": {"s": "text"}});
        let err = apply(&mut root, &patch(Op::Append, &["values", "s"], json!(1))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "patch Append at /values/s: append to a string, not a list"
        );
        let err = apply(&mut root, &patch(Op::Add, &["values", "s"], json!(1))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "patch Add at /values/s: add of a number to a string"
        );
    }

    #[test]
    fn integers_stay_exact_until_they_overflow() {
        assert_eq!(add(&json!(2), &json!(3)), Some(json!(5)));
        assert_eq!(
            add(&json!(i64::MAX), &json!(1)),
            Some(json!(9.223372036854776e18))
        );
        assert_eq!(add(&json!("a"), &json!(1)), None);
    }
}
