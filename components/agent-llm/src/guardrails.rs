//! Guardrails: checks on the task before the first model call and on the
//! final answer — a JSON Schema the value must match, or a tool that judges
//! it (`{"text": …}` in, `{"allow": bool, "reason": "…"}` out).

use convergio_agent::Guardrail;
use convergio_sdk::run::{Steps, fingerprint};
use convergio_sdk::tools;
use serde_json::{Value, json};

/// Why `value` does not pass `guardrail`, if it does not. A tool
/// guardrail's verdict is a recorded step, so it is not asked twice.
pub fn check(
    guardrail: &Guardrail,
    value: &Value,
    steps: &mut Steps,
) -> Result<Option<String>, String> {
    if let Some(schema) = &guardrail.schema {
        let validator = jsonschema::validator_for(schema).map_err(|e| {
            format!(
                "guardrail `{}`: its schema is not a valid JSON Schema: {e}",
                guardrail.name
            )
        })?;
        let errors: Vec<String> = validator
            .iter_errors(value)
            .map(|e| e.to_string())
            .collect();
        return Ok((!errors.is_empty()).then(|| errors.join("; ")));
    }
    let Some(tool) = &guardrail.tool else {
        return Ok(None);
    };
    let text = match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    let arguments = json!({"text": text}).to_string();
    let verdict = steps.step(
        "guardrail",
        &fingerprint(&format!("{tool} {arguments}")),
        || {
            tools::call(tool, &arguments)
                .map_err(|e| format!("guardrail `{}`: tool `{tool}`: {e:?}", guardrail.name))
        },
    )?;
    let verdict: Value = serde_json::from_str(&verdict).map_err(|e| {
        format!(
            "guardrail `{}`: tool `{tool}` answered {verdict}, not {{\"allow\": …}}: {e}",
            guardrail.name
        )
    })?;
    match verdict.get("allow").and_then(Value::as_bool) {
        Some(true) => Ok(None),
        Some(false) => Ok(Some(
            verdict
                .get("reason")
                .and_then(Value::as_str)
                .unwrap_or("no reason given")
                .to_owned(),
        )),
        None => Err(format!(
            "guardrail `{}`: tool `{tool}` answered {verdict}, without a boolean `allow`",
            guardrail.name
        )),
    }
}
