//! Reading the tagged enums of the step function's JSON ([`super::Input`]
//! by `type`, [`super::Status`] by `status`) in one pass. serde's derive
//! for an internally tagged enum buffers each value into an intermediate
//! tree before reading it, which was a fifth of a step's JSON time; these
//! flat records read the same documents directly, and say what is missing
//! or unknown as the derive did.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::CallResult;
use super::state::RunStatus;

/// A field that may hold `null`: absent is `None`, present (even `null`)
/// is `Some`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

fn missing(field: &str, of: &str) -> String {
    format!("missing field `{field}` of {of}")
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
enum InputType {
    Start,
    Result,
    Answer,
    Resume,
    Cancel,
}

/// [`super::Input`] as its JSON spells it.
#[derive(Deserialize)]
pub(super) struct Input {
    #[serde(rename = "type")]
    kind: InputType,
    #[serde(default, deserialize_with = "present")]
    input: Option<Value>,
    #[serde(default)]
    call: Option<String>,
    #[serde(default)]
    result: Option<CallResult>,
    #[serde(default)]
    interrupt: Option<String>,
    #[serde(default, deserialize_with = "present")]
    value: Option<Value>,
    #[serde(default)]
    reason: Option<String>,
}

impl TryFrom<Input> for super::Input {
    type Error = String;

    fn try_from(w: Input) -> Result<Self, String> {
        Ok(match w.kind {
            InputType::Start => Self::Start {
                input: w.input.ok_or_else(|| missing("input", "a start"))?,
            },
            InputType::Result => Self::Result {
                call: w.call.ok_or_else(|| missing("call", "a result"))?,
                result: w.result.ok_or_else(|| missing("result", "a result"))?,
            },
            InputType::Answer => Self::Answer {
                interrupt: w
                    .interrupt
                    .ok_or_else(|| missing("interrupt", "an answer"))?,
                value: w.value.ok_or_else(|| missing("value", "an answer"))?,
            },
            InputType::Resume => Self::Resume,
            InputType::Cancel => Self::Cancel {
                reason: w.reason.ok_or_else(|| missing("reason", "a cancel"))?,
            },
        })
    }
}

/// [`super::Status`] as its JSON spells it.
#[derive(Deserialize)]
pub(super) struct Status {
    status: RunStatus,
    #[serde(default)]
    output: Value,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

impl TryFrom<Status> for super::Status {
    type Error = String;

    fn try_from(w: Status) -> Result<Self, String> {
        Ok(match w.status {
            RunStatus::Running => Self::Running,
            RunStatus::Waiting => Self::Waiting,
            RunStatus::Done => Self::Done { output: w.output },
            RunStatus::Failed => Self::Failed {
                error: w.error.ok_or_else(|| missing("error", "a failed status"))?,
            },
            RunStatus::Cancelled => Self::Cancelled {
                reason: w
                    .reason
                    .ok_or_else(|| missing("reason", "a cancelled status"))?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::super::{CallResult, Input, Status};

    #[test]
    fn inputs_and_statuses_read_back_what_they_write() {
        let inputs = [
            Input::Start {
                input: json!({"a": 1}),
            },
            Input::Result {
                call: "n".into(),
                result: CallResult::Ok {
                    output: json!(null).into(),
                    updates: vec![("k".into(), json!(2))],
                },
            },
            Input::Answer {
                interrupt: "i".into(),
                value: json!(null),
            },
            Input::Resume,
            Input::Cancel { reason: "r".into() },
        ];
        for input in inputs {
            let text = serde_json::to_string(&input).unwrap();
            assert_eq!(
                serde_json::from_str::<Input>(&text).unwrap(),
                input,
                "{text}"
            );
        }
        let statuses = [
            Status::Running,
            Status::Waiting,
            Status::Done {
                output: json!({"x": 1}),
            },
            Status::Done {
                output: json!(null),
            },
            Status::Failed { error: "e".into() },
            Status::Cancelled { reason: "r".into() },
        ];
        for status in statuses {
            let text = serde_json::to_string(&status).unwrap();
            assert_eq!(
                serde_json::from_str::<Status>(&text).unwrap(),
                status,
                "{text}"
            );
        }
    }

    #[test]
    fn a_missing_or_unknown_field_is_named() {
        let err = serde_json::from_str::<Input>(r#"{"type": "answer", "interrupt": "i"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing field `value`"), "{err}");
        let err = serde_json::from_str::<Input>(r#"{"type": "restart"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown variant `restart`"), "{err}");
        let err = serde_json::from_str::<Status>(r#"{"status": "failed"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing field `error`"), "{err}");
    }
}
