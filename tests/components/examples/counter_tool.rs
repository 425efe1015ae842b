//! `counter_tool`: side effects made once per node call, for the graph
//! tests and the crash test. Arguments are JSON objects.
//!
//! | tool | arguments | does |
//! | --- | --- | --- |
//! | `bump` | `{"counter": NAME, "sleep-ms"?: N}` | sleeps N ms, then adds 1 to counter NAME once per idempotency key (`convergio_sdk::run::update_once`); in a graph run the counter is the run's own, `RUN/NAME`; returns `{"counter", "value", "key"}` |
//! | `read` | `{"counter": KEY}` | the counter's value (0 when never bumped); KEY is `RUN/NAME` for a run's counter |
//! | `context` | `{}` | the run context of the call, or `null` |
//!
//! Counters live in the bucket `counters`.

use convergio_sdk::keyvalue::store;
use convergio_sdk::run;
use convergio_sdk::tool::{Guest, ToolError, ToolInfo};
use serde_json::{Value, json};

struct CounterTool;

fn bucket() -> Result<store::Bucket, ToolError> {
    store::open("counters").map_err(|e| ToolError::Denied(format!("{e:?}")))
}

fn counter(args: &Value) -> Result<&str, ToolError> {
    args.get("counter")
        .and_then(Value::as_str)
        .ok_or_else(|| ToolError::InvalidArguments("`counter` (a string) is required".to_owned()))
}

impl Guest for CounterTool {
    fn describe() -> Vec<ToolInfo> {
        ["bump", "read", "context"]
            .into_iter()
            .map(|name| ToolInfo::new(name, "counter probe", &json!({"type": "object"})))
            .collect()
    }

    fn invoke(name: String, arguments: String) -> Result<String, ToolError> {
        let args: Value = serde_json::from_str(&arguments)
            .map_err(|e| ToolError::InvalidArguments(e.to_string()))?;
        let out = match name.as_str() {
            "bump" => {
                let name = match run::current() {
                    Some(call) => format!("{}/{}", call.run_id, counter(&args)?),
                    None => counter(&args)?.to_owned(),
                };
                let name = name.as_str();
                if let Some(ms) = args.get("sleep-ms").and_then(Value::as_u64) {
                    std::thread::sleep(std::time::Duration::from_millis(ms));
                }
                let value = run::update_once(&bucket()?, name, |n| {
                    json!(n.and_then(|v| v.as_i64()).unwrap_or(0) + 1)
                })
                .map_err(ToolError::Failed)?;
                json!({"counter": name, "value": value, "key": run::idempotency_key()})
            }
            "read" => {
                let name = counter(&args)?;
                let bytes = bucket()?
                    .get(name)
                    .map_err(|e| ToolError::Failed(format!("{e:?}")))?;
                match bytes {
                    Some(b) => serde_json::from_slice::<Value>(&b)
                        .map_err(|e| ToolError::Failed(e.to_string()))?["value"]
                        .clone(),
                    None => json!(0),
                }
            }
            "context" => match run::current() {
                Some(c) => json!({
                    "run-id": c.run_id, "node-id": c.node_id, "call-id": c.call_id,
                    "attempt": c.attempt, "idempotency-key": c.idempotency_key,
                }),
                None => Value::Null,
            },
            other => return Err(ToolError::UnknownTool(other.to_owned())),
        };
        Ok(out.to_string())
    }
}

convergio_sdk::export_tool!(CounterTool);
