//! JSON Schema checks of state values and interrupt answers.
//! (Interim: the `type` keyword only, until the full validator lands.)

use serde_json::Value;

/// Check `value` against `schema`; the errors, each naming where.
pub fn check(schema: &Value, value: &Value) -> Result<(), Vec<String>> {
    let Some(ty) = schema.get("type").and_then(Value::as_str) else {
        return Ok(());
    };
    let ok = match ty {
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64(),
        "boolean" => value.is_boolean(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        "null" => value.is_null(),
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(vec![format!("at /: expected {ty}")])
    }
}
