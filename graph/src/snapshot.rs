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

impl Op {
    /// The op as it is written (its serde name).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Set => "set",
            Self::Remove => "remove",
            Self::Append => "append",
            Self::Merge => "merge",
            Self::Add => "add",
        }
    }
}

/// A patch's operand: JSON text, checked to be JSON when it was made.
pub type Json = Box<RawValue>;

/// Where a patch applies: object keys from the snapshot's root, written as
/// a JSON Pointer (RFC 6901): `/sched/n001`, a `~` in a key as `~0` and a
/// `/` as `~1`. One string crosses the orchestrator's interface and is
/// journaled; the list of keys (`["sched","n001"]`) that earlier journals
/// hold is read too.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pointer(String);

impl Pointer {
    /// The pointer to `keys`, from the root.
    pub fn from_keys<'k>(keys: impl IntoIterator<Item = &'k str>) -> Self {
        let keys = keys.into_iter();
        // The engine's paths are two or three short keys: one allocation.
        let mut text = String::with_capacity(32);
        for key in keys {
            text.push('/');
            if key.bytes().any(|b| b == b'~' || b == b'/') {
                for c in key.chars() {
                    match c {
                        '~' => text.push_str("~0"),
                        '/' => text.push_str("~1"),
                        c => text.push(c),
                    }
                }
            } else {
                text.push_str(key);
            }
        }
        Self(text)
    }

    /// `text` as a pointer: it names at least one key (starts with `/`),
    /// and each `~` in it is `~0` or `~1`.
    pub fn parse(text: String) -> Result<Self, String> {
        if !text.starts_with('/') {
            return Err(format!(
                "`{text}` is not a JSON pointer to a key: it must start with `/` (`/values/name`)"
            ));
        }
        let bytes = text.as_bytes();
        for (i, b) in bytes.iter().enumerate() {
            if *b == b'~' && !matches!(bytes.get(i + 1), Some(b'0' | b'1')) {
                return Err(format!(
                    "`{text}` is not a JSON pointer: `~` at byte {i} is not `~0` (a `~` in a key) or `~1` (a `/`)"
                ));
            }
        }
        Ok(Self(text))
    }

    /// The pointer's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The pointer's text, owned.
    pub fn into_string(self) -> String {
        self.0
    }

    /// Its keys, from the root (borrowed unless escaped).
    pub fn keys(&self) -> impl Iterator<Item = Cow<'_, str>> {
        self.0.split('/').skip(1).map(|key| {
            if key.contains('~') {
                Cow::Owned(key.replace("~1", "/").replace("~0", "~"))
            } else {
                Cow::Borrowed(key)
            }
        })
    }

    /// Whether it points at the one key `key` of the root.
    pub fn is_key(&self, key: &str) -> bool {
        let mut keys = self.keys();
        keys.next().is_some_and(|k| k == key) && keys.next().is_none()
    }
}

impl std::fmt::Display for Pointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Written as its text (`"/sched/n001"`, the journal's form).
impl Serialize for Pointer {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// Read from its text, or from the list of its keys (the form of journals
/// written before paths were journaled as text).
impl<'de> Deserialize<'de> for Pointer {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Pointer;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON pointer (`/values/name`) or a list of object keys")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Pointer, E> {
                Pointer::parse(text.to_owned()).map_err(E::custom)
            }

            fn visit_string<E: serde::de::Error>(self, text: String) -> Result<Pointer, E> {
                Pointer::parse(text).map_err(E::custom)
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Pointer, A::Error> {
                let mut keys: Vec<Cow<'de, str>> = Vec::new();
                while let Some(key) = seq.next_element::<Cow<'de, str>>()? {
                    keys.push(key);
                }
                Ok(Pointer::from_keys(keys.iter().map(|k| &**k)))
            }
        }

        deserializer.deserialize_any(Visitor)
    }
}

/// One change to a snapshot: `op` with `value` at `path`, a pointer to
/// object keys from the snapshot's root. Objects on the way are created.
///
/// The value is JSON text: the orchestrator writes it once, the host checks
/// it, journals it as it is, and parses it only where it applies it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Patch {
    /// The operation.
    pub op: Op,
    /// Where it applies: object keys from the root.
    pub path: Pointer,
    /// Its operand (none for [`Op::Remove`], and for a `null`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Json>,
}

impl Patch {
    /// `op` with `value` at `path`, its JSON text written straight from
    /// `value` (no `Value` tree first); `null` is kept as none.
    pub fn new<T: Serialize + ?Sized>(op: Op, path: Pointer, value: &T) -> Self {
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
                path: self.path.to_string(),
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
#[error("patch {op:?} at {path}: {message}")]
pub struct PatchError {
    /// The operation.
    pub op: Op,
    /// Its path, as a JSON Pointer.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// Apply `patch` to `root` (parsing its value).
pub fn apply(root: &mut Value, patch: &Patch) -> Result<(), PatchError> {
    let value = patch.value()?;
    apply_value(
        root,
        patch.op,
        patch.path.keys(),
        || patch.path.to_string(),
        Cow::Owned(value),
    )
}

/// Apply `op` with `value` at the keys `path` of `root` (what [`apply`]
/// does, without building a [`Patch`]).
pub fn apply_parts(
    root: &mut Value,
    op: Op,
    path: &[&str],
    value: &Value,
) -> Result<(), PatchError> {
    apply_value(
        root,
        op,
        path.iter().map(|k| Cow::Borrowed(*k)),
        || Pointer::from_keys(path.iter().copied()).into_string(),
        Cow::Borrowed(value),
    )
}

fn apply_value<'k>(
    root: &mut Value,
    op: Op,
    mut keys: impl Iterator<Item = Cow<'k, str>>,
    path: impl Fn() -> String,
    value: Cow<'_, Value>,
) -> Result<(), PatchError> {
    let fail = |message: String| PatchError {
        op,
        path: path(),
        message,
    };
    let Some(mut last) = keys.next() else {
        return Err(fail("an empty path".to_owned()));
    };
    let mut cur = root;
    // Every key but the last is a parent.
    for next in keys {
        let key = std::mem::replace(&mut last, next);
        let Value::Object(map) = cur else {
            return Err(fail(format!(
                "`{key}` is under a value that is not an object"
            )));
        };
        // Looked up before inserting: most parents exist, and a key is
        // copied only for one that does not.
        if !map.contains_key(key.as_ref()) {
            map.insert(key.clone().into_owned(), Value::Object(Map::new()));
        }
        cur = map
            .get_mut(key.as_ref())
            .ok_or_else(|| fail(format!("`{key}` vanished")))?;
    }
    let last = last.as_ref();
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
                map.insert(last.to_owned(), value.into_owned());
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
        map.insert(last.to_owned(), empty);
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
        Patch::new(op, Pointer::from_keys(path.iter().copied()), &value)
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

    /// A key with `/` or `~` is escaped in the pointer and comes back
    /// whole; it is journaled as its text, and the list of keys that
    /// earlier journals hold reads alike.
    #[test]
    fn pointers_escape_their_keys_and_read_both_forms() {
        let p = Pointer::from_keys(["values", "a/b~c", "n"]);
        assert_eq!(p.as_str(), "/values/a~1b~0c/n");
        assert_eq!(
            p.keys().collect::<Vec<_>>(),
            ["values", "a/b~c", "n"].map(Cow::Borrowed)
        );
        assert_eq!(serde_json::to_string(&p).unwrap(), r#""/values/a~1b~0c/n""#);
        let from_keys: Pointer = serde_json::from_str(r#"["values","a/b~c","n"]"#).unwrap();
        let from_text: Pointer = serde_json::from_str(r#""/values/a~1b~0c/n""#).unwrap();
        assert_eq!((&from_keys, &from_text), (&p, &p));
        // `~01` is a `~` then a `1`, not a `/`.
        let tricky = Pointer::parse("/~01".to_owned()).unwrap();
        assert_eq!(tricky.keys().collect::<Vec<_>>(), ["~1"]);
        assert!(Pointer::from_keys(["output"]).is_key("output"));
        assert!(!Pointer::from_keys(["output", "x"]).is_key("output"));

        let mut root = json!({});
        apply(&mut root, &Patch::new(Op::Set, p, &json!(1))).unwrap();
        assert_eq!(root, json!({"values": {"a/b~c": {"n": 1}}}));
    }

    #[test]
    fn an_op_is_written_as_serde_names_it() {
        for op in [Op::Set, Op::Remove, Op::Append, Op::Merge, Op::Add] {
            assert_eq!(serde_json::to_value(op).unwrap(), op.as_str());
        }
    }

    #[test]
    fn a_bad_pointer_says_what_is_wrong() {
        let err = Pointer::parse("values/x".to_owned()).unwrap_err();
        assert!(err.contains("must start with `/`"), "{err}");
        let err = Pointer::parse("/values/a~2".to_owned()).unwrap_err();
        assert!(err.contains("`~` at byte 9"), "{err}");
        assert!(serde_json::from_str::<Pointer>(r#""nope""#).is_err());
        let mut root = json!({});
        let empty = Patch::new(Op::Set, Pointer::from_keys([]), &json!(1));
        assert!(
            apply(&mut root, &empty)
                .unwrap_err()
                .to_string()
                .contains("an empty path")
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
