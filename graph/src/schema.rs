//! JSON Schemas in graphs: of state keys, their defaults, and interrupt
//! answers. A thin wrapper over the `jsonschema` crate (no remote or file
//! references are fetched: a `$ref` outside the schema is an error).
//!
//! ```
//! use convergio_graph::schema::Schema;
//! use serde_json::json;
//!
//! let schema = Schema::compile(&json!({"type": "array", "items": {"type": "string"}}))?;
//! assert!(schema.validate(&json!(["a"])).is_ok());
//! assert_eq!(
//!     schema.validate(&json!(["a", 2])).unwrap_err(),
//!     vec![r#"at /1: 2 is not of type "string""#.to_owned()]
//! );
//! # Ok::<(), String>(())
//! ```

use std::fmt;

use serde_json::Value;

/// A compiled JSON Schema.
pub struct Schema {
    validator: jsonschema::Validator,
}

impl fmt::Debug for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schema").finish_non_exhaustive()
    }
}

impl Schema {
    /// Compiles `schema` (any draft the `$schema` keyword names; 2020-12 by
    /// default), failing with what is wrong with it.
    pub fn compile(schema: &Value) -> Result<Self, String> {
        jsonschema::validator_for(schema)
            .map(|validator| Self { validator })
            .map_err(|err| {
                let path = err.instance_path().to_string();
                if path.is_empty() {
                    format!("not a valid JSON Schema: {err}")
                } else {
                    format!("not a valid JSON Schema: at {path}: {err}")
                }
            })
    }

    /// Checks `value`, returning every mismatch, each naming where in the
    /// value it is (`at /items/0: …`; `at the top: …` for the value itself).
    pub fn validate(&self, value: &Value) -> Result<(), Vec<String>> {
        let errors: Vec<String> = self
            .validator
            .iter_errors(value)
            .map(|err| {
                let path = err.instance_path().to_string();
                if path.is_empty() {
                    format!("at the top: {err}")
                } else {
                    format!("at {path}: {err}")
                }
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Whether `value` matches.
    pub fn is_valid(&self, value: &Value) -> bool {
        self.validator.is_valid(value)
    }
}

/// Compile `schema` and check `value` against it: for a check made once
/// (a fork's patch); keep a [`Schema`] for checks made often.
pub fn check(schema: &Value, value: &Value) -> Result<(), Vec<String>> {
    Schema::compile(schema)
        .map_err(|e| vec![e])?
        .validate(value)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use serde_json::json;

    use super::*;

    #[test]
    fn an_invalid_schema_is_refused() {
        let err = Schema::compile(&json!({"type": "strin"})).unwrap_err();
        assert!(err.starts_with("not a valid JSON Schema: "), "{err}");
        assert!(err.contains("strin"), "{err}");
    }

    #[test]
    fn every_mismatch_is_reported_with_its_path() {
        let schema = Schema::compile(&json!({
            "type": "object",
            "properties": {"a": {"type": "number"}, "b": {"type": "string"}},
            "required": ["c"]
        }))
        .unwrap();
        let errors = schema.validate(&json!({"a": "x", "b": 1})).unwrap_err();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(
            errors.iter().any(|e| e.starts_with("at /a: ")),
            "{errors:?}"
        );
        assert!(
            errors.iter().any(|e| e.starts_with("at the top: ")),
            "{errors:?}"
        );
        assert!(schema.is_valid(&json!({"c": 1})));
    }

    #[test]
    fn remote_references_are_not_fetched() {
        assert!(Schema::compile(&json!({"$ref": "https://example.com/s.json"})).is_err());
    }
}
