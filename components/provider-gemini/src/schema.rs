//! JSON Schema (what Convergio tool definitions carry) to the Gemini
//! `Schema` of a `functionDeclaration`'s `parameters`, an OpenAPI 3.0 subset.
//!
//! Kept: `type` (upper-cased; a `[T, "null"]` list becomes `T` plus
//! `nullable`), `format` (only the values Gemini documents for the type),
//! `title`, `description`, `nullable`, `enum` (strings only), `properties`,
//! `required` (only names that are in `properties`), `items`, `anyOf`,
//! `minItems`, `maxItems`, `minLength`, `maxLength`, `minProperties`,
//! `maxProperties`, `pattern`, `minimum`, `maximum`, `default`, `example`,
//! `propertyOrdering`.
//!
//! Rewritten: local `$ref`s (`#/$defs/…`, `#/definitions/…`) are inlined,
//! `oneOf` becomes `anyOf`, `allOf` is merged into one schema, a string
//! `const` becomes a one-value `enum`.
//!
//! Dropped (and reported, so the adapter can log them): every other keyword,
//! e.g. `$schema`, `$id`, `additionalProperties`, `exclusiveMinimum`,
//! `patternProperties`, non-string `enum`s.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// Keywords copied unchanged.
const COPIED: &[&str] = &[
    "title",
    "description",
    "nullable",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "minProperties",
    "maxProperties",
    "pattern",
    "minimum",
    "maximum",
    "default",
    "example",
    "propertyOrdering",
];

/// How deep `$ref`s are followed (a recursive schema cannot be inlined).
const MAX_DEPTH: usize = 16;

/// The result of [`to_gemini`].
#[derive(Debug, Clone, PartialEq)]
pub struct Converted {
    /// The `parameters` to send; `None` for a function without arguments.
    pub parameters: Option<Value>,
    /// Keywords that Gemini does not accept and were left out, sorted.
    pub dropped: Vec<String>,
}

/// Converts the JSON Schema of a tool's arguments.
pub fn to_gemini(schema: &Value) -> Converted {
    let mut dropped = BTreeSet::new();
    let converted = convert(schema, schema, 0, &mut dropped);
    let has_properties = converted
        .get("properties")
        .and_then(Value::as_object)
        .is_some_and(|p| !p.is_empty());
    let is_object = converted.get("type").and_then(Value::as_str) == Some("OBJECT");
    // Gemini refuses an OBJECT without properties; a function without
    // arguments simply declares no `parameters`.
    let parameters = if has_properties || (!is_object && !is_empty(&converted)) {
        Some(converted)
    } else {
        None
    };
    Converted {
        parameters,
        dropped: dropped.into_iter().collect(),
    }
}

fn is_empty(value: &Value) -> bool {
    value.as_object().is_none_or(Map::is_empty)
}

fn convert(node: &Value, root: &Value, depth: usize, dropped: &mut BTreeSet<String>) -> Value {
    let Some(object) = node.as_object() else {
        // `true`, `false` or garbage: nothing Gemini can use.
        return Value::Object(Map::new());
    };
    if depth > MAX_DEPTH {
        dropped.insert("$ref (recursive)".to_owned());
        return Value::Object(Map::new());
    }
    if let Some(reference) = object.get("$ref").and_then(Value::as_str) {
        return match resolve(root, reference) {
            Some(target) => {
                // Keywords beside `$ref` (often a description) refine the target.
                let mut merged = target.as_object().cloned().unwrap_or_default();
                for (key, value) in object.iter().filter(|(k, _)| k.as_str() != "$ref") {
                    merged.insert(key.clone(), value.clone());
                }
                convert(&Value::Object(merged), root, depth + 1, dropped)
            }
            None => {
                dropped.insert(format!("$ref ({reference})"));
                Value::Object(Map::new())
            }
        };
    }
    if let Some(Value::Array(parts)) = object.get("allOf") {
        let mut merged: Map<String, Value> = object
            .iter()
            .filter(|(k, _)| k.as_str() != "allOf")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for part in parts {
            merge_into(&mut merged, part, root, depth, dropped);
        }
        return convert(&Value::Object(merged), root, depth + 1, dropped);
    }

    let mut out = Map::new();
    let mut nullable = false;
    let mut types: Vec<String> = Vec::new();
    match object.get("type") {
        Some(Value::String(t)) => types.push(t.to_ascii_uppercase()),
        Some(Value::Array(list)) => {
            for t in list.iter().filter_map(Value::as_str) {
                if t == "null" {
                    nullable = true;
                } else {
                    types.push(t.to_ascii_uppercase());
                }
            }
        }
        _ => {}
    }

    for (key, value) in object {
        match key.as_str() {
            "type" | "$defs" | "definitions" => {}
            "properties" => {
                if let Some(properties) = value.as_object() {
                    let converted: Map<String, Value> = properties
                        .iter()
                        .map(|(name, schema)| (name.clone(), convert(schema, root, depth, dropped)))
                        .collect();
                    out.insert("properties".to_owned(), Value::Object(converted));
                }
            }
            "items" => {
                if value.is_object() {
                    out.insert("items".to_owned(), convert(value, root, depth, dropped));
                } else {
                    dropped.insert("items (tuple form)".to_owned());
                }
            }
            "anyOf" | "oneOf" => {
                if let Some(list) = value.as_array() {
                    let converted: Vec<Value> = list
                        .iter()
                        .filter(|s| s.get("type").and_then(Value::as_str) != Some("null"))
                        .map(|s| convert(s, root, depth, dropped))
                        .collect();
                    if list.len() != converted.len() {
                        nullable = true;
                    }
                    out.insert("anyOf".to_owned(), Value::Array(converted));
                }
            }
            "enum" => match value.as_array() {
                Some(values) if values.iter().all(Value::is_string) => {
                    out.insert("enum".to_owned(), value.clone());
                }
                _ => {
                    dropped.insert("enum (non-string values)".to_owned());
                }
            },
            "const" => match value {
                Value::String(_) => {
                    out.insert("enum".to_owned(), Value::Array(vec![value.clone()]));
                }
                _ => {
                    dropped.insert("const (non-string value)".to_owned());
                }
            },
            "required" | "format" => {} // below, once properties and type are known
            other if COPIED.contains(&other) => {
                out.insert(other.to_owned(), value.clone());
            }
            other => {
                dropped.insert(other.to_owned());
            }
        }
    }

    if types.is_empty() && out.contains_key("enum") {
        types.push("STRING".to_owned());
    }
    if types.is_empty() && out.contains_key("properties") {
        types.push("OBJECT".to_owned());
    }
    match types.len() {
        0 => {}
        1 => {
            out.insert("type".to_owned(), Value::String(types.remove(0)));
        }
        _ => {
            // Several types: one alternative per type.
            let alternatives = types
                .into_iter()
                .map(|t| Value::Object(Map::from_iter([("type".to_owned(), Value::String(t))])))
                .collect();
            out.insert("anyOf".to_owned(), Value::Array(alternatives));
        }
    }
    if nullable {
        out.insert("nullable".to_owned(), Value::Bool(true));
    }

    if let Some(format) = object.get("format").and_then(Value::as_str) {
        let allowed = match out.get("type").and_then(Value::as_str) {
            Some("STRING") => matches!(format, "enum" | "date-time"),
            Some("INTEGER") => matches!(format, "int32" | "int64"),
            Some("NUMBER") => matches!(format, "float" | "double"),
            _ => false,
        };
        if allowed {
            out.insert("format".to_owned(), Value::String(format.to_owned()));
        } else {
            dropped.insert(format!("format ({format})"));
        }
    }

    if let Some(required) = object.get("required").and_then(Value::as_array) {
        let properties = out.get("properties").and_then(Value::as_object);
        let kept: Vec<Value> = required
            .iter()
            .filter(|name| {
                name.as_str()
                    .is_some_and(|n| properties.is_some_and(|p| p.contains_key(n)))
            })
            .cloned()
            .collect();
        if kept.len() != required.len() {
            dropped.insert("required (names not in properties)".to_owned());
        }
        if !kept.is_empty() {
            out.insert("required".to_owned(), Value::Array(kept));
        }
    }
    Value::Object(out)
}

/// Merges one `allOf` member into `merged`: properties and required lists
/// are united, other keywords keep the first value seen.
fn merge_into(
    merged: &mut Map<String, Value>,
    part: &Value,
    root: &Value,
    depth: usize,
    dropped: &mut BTreeSet<String>,
) {
    let part = match part.get("$ref").and_then(Value::as_str) {
        Some(reference) => match resolve(root, reference) {
            Some(target) => target,
            None => {
                dropped.insert(format!("$ref ({reference})"));
                return;
            }
        },
        None => part,
    };
    let Some(object) = part.as_object() else {
        return;
    };
    for (key, value) in object {
        match (key.as_str(), merged.get_mut(key)) {
            ("properties", Some(Value::Object(existing))) => {
                if let Some(more) = value.as_object() {
                    for (name, schema) in more {
                        existing
                            .entry(name.clone())
                            .or_insert_with(|| schema.clone());
                    }
                }
            }
            ("required", Some(Value::Array(existing))) => {
                if let Some(more) = value.as_array() {
                    for name in more {
                        if !existing.contains(name) {
                            existing.push(name.clone());
                        }
                    }
                }
            }
            ("allOf", _) if depth < MAX_DEPTH => {
                if let Some(nested) = value.as_array() {
                    for inner in nested {
                        merge_into(merged, inner, root, depth + 1, dropped);
                    }
                }
            }
            (_, Some(_)) => {}
            (_, None) => {
                merged.insert(key.clone(), value.clone());
            }
        }
    }
}

/// The schema a local reference (`#/$defs/Name`, `#/definitions/Name`, any
/// JSON pointer into the root) points at.
fn resolve<'a>(root: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    if pointer.is_empty() {
        return Some(root);
    }
    root.pointer(pointer)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn plain_object_schema_is_upper_cased_and_stripped() {
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "city": {"type": "string", "description": "City name", "minLength": 1},
                "unit": {"type": "string", "enum": ["c", "f"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7, "exclusiveMaximum": 8}
            },
            "required": ["city"]
        });
        let converted = to_gemini(&schema);
        assert_eq!(
            converted.parameters,
            Some(json!({
                "type": "OBJECT",
                "properties": {
                    "city": {"type": "STRING", "description": "City name", "minLength": 1},
                    "unit": {"type": "STRING", "enum": ["c", "f"]},
                    "days": {"type": "INTEGER", "minimum": 1, "maximum": 7}
                },
                "required": ["city"]
            }))
        );
        assert_eq!(
            converted.dropped,
            vec!["$schema", "additionalProperties", "exclusiveMaximum"]
        );
    }

    #[test]
    fn no_arguments_means_no_parameters() {
        for schema in [
            json!({"type": "object", "properties": {}}),
            json!({"type": "object"}),
            json!({}),
            Value::Null,
        ] {
            assert_eq!(to_gemini(&schema).parameters, None, "{schema}");
        }
    }

    #[test]
    fn nullable_types_refs_one_of_and_const() {
        let schema = json!({
            "type": "object",
            "$defs": {
                "Point": {"type": "object", "properties": {"x": {"type": "number", "format": "double"}}, "required": ["x"]}
            },
            "properties": {
                "note": {"type": ["string", "null"], "format": "uri"},
                "at": {"$ref": "#/$defs/Point", "description": "Where"},
                "shape": {"oneOf": [{"type": "string"}, {"type": "null"}]},
                "mode": {"const": "fast"},
                "level": {"enum": [1, 2]},
                "any": {"type": ["string", "integer"]}
            },
            "required": ["at", "missing"]
        });
        let converted = to_gemini(&schema);
        assert_eq!(
            converted.parameters,
            Some(json!({
                "type": "OBJECT",
                "properties": {
                    "note": {"type": "STRING", "nullable": true},
                    "at": {"type": "OBJECT", "description": "Where",
                           "properties": {"x": {"type": "NUMBER", "format": "double"}}, "required": ["x"]},
                    "shape": {"anyOf": [{"type": "STRING"}], "nullable": true},
                    "mode": {"type": "STRING", "enum": ["fast"]},
                    "level": {},
                    "any": {"anyOf": [{"type": "STRING"}, {"type": "INTEGER"}]}
                },
                "required": ["at"]
            }))
        );
        assert_eq!(
            converted.dropped,
            vec![
                "enum (non-string values)",
                "format (uri)",
                "required (names not in properties)"
            ]
        );
    }

    #[test]
    fn all_of_is_merged_and_recursion_stops() {
        let schema = json!({
            "allOf": [
                {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
                {"properties": {"b": {"type": "boolean"}}, "required": ["b"]}
            ]
        });
        assert_eq!(
            to_gemini(&schema).parameters,
            Some(json!({
                "type": "OBJECT",
                "properties": {"a": {"type": "STRING"}, "b": {"type": "BOOLEAN"}},
                "required": ["a", "b"]
            }))
        );

        let recursive = json!({
            "type": "object",
            "$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}},
            "properties": {"head": {"$ref": "#/$defs/Node"}}
        });
        let converted = to_gemini(&recursive);
        assert!(converted.parameters.is_some());
        assert!(converted.dropped.contains(&"$ref (recursive)".to_owned()));

        let dangling = json!({"type": "object", "properties": {"x": {"$ref": "other.json#/X"}}});
        assert_eq!(
            to_gemini(&dangling).dropped,
            vec!["$ref (other.json#/X)".to_owned()]
        );
    }

    #[test]
    fn arrays_keep_their_items() {
        let schema = json!({
            "type": "object",
            "properties": {"tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "uniqueItems": true}}
        });
        assert_eq!(
            to_gemini(&schema).parameters,
            Some(json!({
                "type": "OBJECT",
                "properties": {"tags": {"type": "ARRAY", "items": {"type": "STRING"}, "minItems": 1}}
            }))
        );
    }
}
