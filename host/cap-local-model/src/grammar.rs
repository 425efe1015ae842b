//! JSON Schemas as GBNF grammars, for llama.cpp's grammar-constrained
//! sampling: a model sampled under the grammar of a schema can only write
//! JSON of that shape, so even a 135M-parameter model answers in the form
//! asked.
//!
//! The grammar follows these keywords: `type` (one or a list), `properties`
//! with `required` (properties are written in the order the schema declares
//! them, the required ones first; no others), `additionalProperties` (of an
//! object without `properties`, with `propertyNames` lengths and
//! `minProperties`/`maxProperties`), `items`, `minItems`, `maxItems`, `enum`,
//! `const`, `anyOf`, `oneOf`, `minLength` and `maxLength` of strings (the
//! bounds of lengths and counts up to 128; longer ones
//! only validated, since llama.cpp spells a bound out rule by rule), the
//! bounds of integers whose range holds at most 256 values, and
//! `$ref` to `#/$defs/…` or `#/definitions/…` (recursion allowed). Other
//! keywords (`pattern`, wider numeric bounds, `format`, `allOf`, …) do not narrow the
//! grammar: the value is any JSON of its `type`, and the host's validation
//! of the answer (which asks the model again with the errors) enforces
//! them.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::{Map, Value};

/// Whitespace between tokens: none, one space, or a newline with a little
/// indentation. Bounded, so a small model cannot loop on whitespace.
const RULES: &str = r#"ws ::= "" | " " | "\n" [ ]{0,8}
string ::= "\"" char* "\""
char ::= [^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})
number ::= integer ("." [0-9]+)? ([eE] [-+]? [0-9]+)?
integer ::= "-"? ([0-9] | [1-9] [0-9]{0,15})
boolean ::= "true" | "false"
null ::= "null"
value ::= object | array | string | number | boolean | null
object ::= "{" ws (string ws ":" ws value ws ("," ws string ws ":" ws value ws)*)? "}"
array ::= "[" ws (value ws ("," ws value ws)*)? "]"
"#;

/// The grammar of any JSON object.
pub fn any_object() -> String {
    format!("root ::= object\n{RULES}")
}

/// The grammar of the JSON values `schema` (a JSON Schema's text) accepts,
/// with the rule `root`; or why it cannot be made.
pub fn from_schema(schema: &str) -> Result<String, String> {
    let schema: Value =
        serde_json::from_str(schema).map_err(|e| format!("the JSON Schema is not JSON: {e}"))?;
    let mut builder = Builder {
        root: &schema,
        rules: Vec::new(),
        refs: BTreeMap::new(),
    };
    let root = builder.rule_for(&schema, "/")?;
    let mut out = format!("root ::= {root}\n");
    for (name, body) in &builder.rules {
        let _ = writeln!(out, "{name} ::= {body}");
    }
    out.push_str(RULES);
    Ok(out)
}

struct Builder<'a> {
    root: &'a Value,
    /// Rules made so far, `(name, body)`.
    rules: Vec<(String, String)>,
    /// `$ref` targets already given a rule.
    refs: BTreeMap<String, String>,
}

impl<'a> Builder<'a> {
    /// A new rule named after its index.
    fn add(&mut self, body: String) -> String {
        let name = format!("r{}", self.rules.len());
        self.rules.push((name.clone(), body));
        name
    }

    /// An expression for the values `schema` accepts (`at` is where it is,
    /// for errors).
    fn rule_for(&mut self, schema: &'a Value, at: &str) -> Result<String, String> {
        let schema = match schema {
            Value::Bool(true) => return Ok("value".to_owned()),
            Value::Bool(false) => {
                return Err(format!("the schema at {at} accepts nothing"));
            }
            Value::Object(schema) => schema,
            other => return Err(format!("the schema at {at} is {other}, not an object")),
        };
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            return self.reference(reference, at);
        }
        if let Some(constant) = schema.get("const") {
            return Ok(literal(constant));
        }
        if let Some(options) = schema.get("enum") {
            let Some(options) = options.as_array().filter(|o| !o.is_empty()) else {
                return Err(format!("`enum` at {at} is not a list of values"));
            };
            let parts: Vec<String> = options.iter().map(literal).collect();
            return Ok(format!("({})", parts.join(" | ")));
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(options) = schema.get(key) {
                let Some(options) = options.as_array().filter(|o| !o.is_empty()) else {
                    return Err(format!("`{key}` at {at} is not a list of schemas"));
                };
                let parts = options
                    .iter()
                    .enumerate()
                    .map(|(i, s)| self.rule_for(s, &format!("{at}{key}/{i}/")))
                    .collect::<Result<Vec<_>, _>>()?;
                return Ok(format!("({})", parts.join(" | ")));
            }
        }
        match schema.get("type") {
            Some(Value::String(kind)) => self.typed(kind, schema, at),
            Some(Value::Array(kinds)) if !kinds.is_empty() => {
                let parts = kinds
                    .iter()
                    .map(|k| match k.as_str() {
                        Some(kind) => self.typed(kind, schema, at),
                        None => Err(format!("`type` at {at} lists {k}, not a type name")),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(format!("({})", parts.join(" | ")))
            }
            Some(other) => Err(format!("`type` at {at} is {other}, not a type name")),
            // No type: an object if it describes properties, else anything.
            None if schema.contains_key("properties") => self.typed("object", schema, at),
            None => Ok("value".to_owned()),
        }
    }

    fn typed(
        &mut self,
        kind: &str,
        schema: &'a Map<String, Value>,
        at: &str,
    ) -> Result<String, String> {
        Ok(match kind {
            "object" => self.object(schema, at)?,
            "array" => self.array(schema, at)?,
            "string" => string(schema),
            "number" => "number".to_owned(),
            "integer" => integer(schema),
            "boolean" => "boolean".to_owned(),
            "null" => "null".to_owned(),
            other => {
                return Err(format!(
                    "`type` at {at} is `{other}`, not a JSON Schema type"
                ));
            }
        })
    }

    fn object(&mut self, schema: &'a Map<String, Value>, at: &str) -> Result<String, String> {
        let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
            return match schema.get("additionalProperties") {
                Some(Value::Object(_)) => {
                    let value = self.rule_for(
                        &schema["additionalProperties"],
                        &format!("{at}additionalProperties/"),
                    )?;
                    let key = match schema.get("propertyNames").and_then(Value::as_object) {
                        Some(names) => string(names),
                        None => "string".to_owned(),
                    };
                    let pair = format!("{key} ws \":\" ws {value}");
                    Ok(self.add(repeated(
                        schema,
                        ("{", "}"),
                        &pair,
                        ("minProperties", "maxProperties"),
                    )))
                }
                Some(Value::Bool(false)) => Ok(r#""{" ws "}""#.to_owned()),
                _ => Ok("object".to_owned()),
            };
        };
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut must = Vec::new();
        let mut may = Vec::new();
        for (name, property) in properties {
            let value = self.rule_for(property, &format!("{at}properties/{name}/"))?;
            let pair = format!(
                "{} ws \":\" ws {value} ws",
                literal(&Value::String(name.clone()))
            );
            if required.contains(&name.as_str()) {
                must.push(pair);
            } else {
                may.push(pair);
            }
        }
        if let Some(missing) = required.iter().find(|r| !properties.contains_key(**r)) {
            return Err(format!(
                "`required` at {at} names `{missing}`, which `properties` does not describe"
            ));
        }
        // Optional pairs after at least one pair: each its own `("," ws pair)?`.
        let tail: String = may.iter().map(|p| format!(" (\",\" ws {p})?")).collect();
        let body = if must.is_empty() {
            if may.is_empty() {
                r#""{" ws "}""#.to_owned()
            } else {
                // Some non-empty subset in order, or none: the first one
                // present starts the list, the later ones follow it.
                let mut starts = Vec::new();
                for (i, pair) in may.iter().enumerate() {
                    let rest: String = may[i + 1..]
                        .iter()
                        .map(|p| format!(" (\",\" ws {p})?"))
                        .collect();
                    starts.push(format!("{pair}{rest}"));
                }
                format!("\"{{\" ws ({})? \"}}\"", starts.join(" | "))
            }
        } else {
            format!("\"{{\" ws {}{tail} \"}}\"", must.join(" \",\" ws "))
        };
        Ok(self.add(body))
    }

    fn array(&mut self, schema: &'a Map<String, Value>, at: &str) -> Result<String, String> {
        let item = match schema.get("items") {
            Some(items) => self.rule_for(items, &format!("{at}items/"))?,
            None => "value".to_owned(),
        };
        Ok(self.add(repeated(
            schema,
            ("[", "]"),
            &item,
            ("minItems", "maxItems"),
        )))
    }

    fn reference(&mut self, reference: &str, at: &str) -> Result<String, String> {
        if let Some(name) = self.refs.get(reference) {
            return Ok(name.clone());
        }
        let target = reference
            .strip_prefix('#')
            .and_then(|pointer| self.root.pointer(pointer))
            .ok_or_else(|| {
                format!("`$ref` at {at} is `{reference}`; only references inside the schema (`#/$defs/…`) are followed")
            })?;
        // Named before it is built, so a recursive reference finds it.
        let name = format!("ref{}", self.refs.len());
        self.refs.insert(reference.to_owned(), name.clone());
        let body = self.rule_for(target, reference)?;
        self.rules.push((name.clone(), body));
        Ok(name)
    }
}

/// The most values of an integer range the grammar lists one by one.
const MAX_LISTED_INTEGERS: i64 = 256;

/// An integer; one of the values of a small range (`minimum`, `maximum`,
/// `exclusiveMinimum`, `exclusiveMaximum`), listed, where both ends are given.
fn integer(schema: &Map<String, Value>) -> String {
    let bound = |key: &str| schema.get(key).and_then(Value::as_f64);
    let low = match (bound("minimum"), bound("exclusiveMinimum")) {
        (Some(m), None) => Some(m.ceil()),
        (None, Some(x)) => Some(x.floor() + 1.0),
        (Some(m), Some(x)) => Some(m.ceil().max(x.floor() + 1.0)),
        (None, None) => None,
    };
    let high = match (bound("maximum"), bound("exclusiveMaximum")) {
        (Some(m), None) => Some(m.floor()),
        (None, Some(x)) => Some(x.ceil() - 1.0),
        (Some(m), Some(x)) => Some(m.floor().min(x.ceil() - 1.0)),
        (None, None) => None,
    };
    match (low, high) {
        (Some(low), Some(high))
            if high >= low
                && high - low < MAX_LISTED_INTEGERS as f64
                && low.abs() < 1e15
                && high.abs() < 1e15 =>
        {
            // Within ±1e15 the bounds are whole numbers an i64 holds exactly.
            #[allow(clippy::cast_possible_truncation)]
            let (low, high) = (low as i64, high as i64);
            let values: Vec<String> = (low..=high).map(|n| format!("\"{n}\"")).collect();
            format!("({})", values.join(" | "))
        }
        _ => "integer".to_owned(),
    }
}

/// `open item ("," item)* close`, with as many items as the schema's
/// `bounds` keywords allow (where short enough to spell out).
fn repeated(
    schema: &Map<String, Value>,
    (open, close): (&str, &str),
    item: &str,
    (min_key, max_key): (&str, &str),
) -> String {
    let bound = |key: &str| {
        schema
            .get(key)
            .and_then(Value::as_u64)
            .filter(|n| *n <= MAX_SPELLED_REPEAT)
    };
    let min = bound(min_key).unwrap_or(0);
    let max = bound(max_key);
    if max == Some(0) {
        return format!(r#""{open}" ws "{close}""#);
    }
    let more = match max {
        Some(max) => format!("{{{},{}}}", min.saturating_sub(1), max - 1),
        None => format!("{{{},}}", min.saturating_sub(1)),
    };
    let list = format!("{item} ws (\",\" ws {item} ws){more}");
    if min == 0 {
        format!(r#""{open}" ws ({list})? "{close}""#)
    } else {
        format!(r#""{open}" ws {list} "{close}""#)
    }
}

/// The longest bound of a repetition the grammar spells out: llama.cpp
/// expands `x{m,n}` into a rule per repetition, and sampling under
/// hundreds of them crawls. Longer bounds are left to the validation of
/// the answer.
const MAX_SPELLED_REPEAT: u64 = 128;

/// A string, bounded by `minLength`/`maxLength` where given (and short).
fn string(schema: &Map<String, Value>) -> String {
    let bounded = |key: &str| {
        schema
            .get(key)
            .and_then(Value::as_u64)
            .filter(|n| *n <= MAX_SPELLED_REPEAT)
    };
    let (min, max) = (bounded("minLength"), bounded("maxLength"));
    match (min, max) {
        (None, None) => "string".to_owned(),
        (min, Some(max)) => format!("\"\\\"\" char{{{},{max}}} \"\\\"\"", min.unwrap_or(0)),
        (Some(min), None) => format!("\"\\\"\" char{{{min},}} \"\\\"\""),
    }
}

/// A GBNF literal that matches exactly the JSON text of `value`.
fn literal(value: &Value) -> String {
    let json = value.to_string();
    let mut out = String::with_capacity(json.len() + 2);
    out.push('"');
    for c in json.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_object_lists_required_properties_first_then_optional_ones() {
        let grammar = from_schema(
            &json!({
                "type": "object",
                "properties": {
                    "note": {"type": "string"},
                    "score": {"type": "integer"},
                    "tags": {"type": "array", "items": {"enum": ["a", "b\"c"]}, "maxItems": 3}
                },
                "required": ["score"]
            })
            .to_string(),
        )
        .unwrap();
        assert!(grammar.starts_with("root ::= r1\n"), "{grammar}");
        assert!(
            grammar.contains(r#"r0 ::= "[" ws (("\"a\"" | "\"b\\\"c\"") ws ("," ws ("\"a\"" | "\"b\\\"c\"") ws){0,2})? "]""#),
            "{grammar}"
        );
        assert!(
            grammar.contains(r#"r1 ::= "{" ws "\"score\"" ws ":" ws integer ws ("," ws "\"note\"" ws ":" ws string ws)? ("," ws "\"tags\"" ws ":" ws r0 ws)? "}""#),
            "{grammar}"
        );
    }

    #[test]
    fn optional_only_properties_start_with_whichever_comes_first() {
        let grammar = from_schema(
            &json!({"properties": {"a": {"type": "null"}, "b": {"type": "boolean"}}}).to_string(),
        )
        .unwrap();
        assert!(
            grammar.contains(r#"r0 ::= "{" ws ("\"a\"" ws ":" ws null ws ("," ws "\"b\"" ws ":" ws boolean ws)? | "\"b\"" ws ":" ws boolean ws)? "}""#),
            "{grammar}"
        );
    }

    #[test]
    fn references_types_lists_and_bounds() {
        let grammar = from_schema(
            &json!({
                "$defs": {"node": {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}}}},
                "type": "object",
                "properties": {
                    "tree": {"$ref": "#/$defs/node"},
                    "name": {"type": ["string", "null"], "maxLength": 4},
                    "k": {"const": 3}
                },
                "required": ["tree", "name", "k"]
            })
            .to_string(),
        )
        .unwrap();
        // The recursive reference names its own rule.
        assert!(grammar.contains("ref0 ::= r1\n"), "{grammar}");
        assert!(
            grammar.contains(r#"r0 ::= "[" ws (ref0 ws ("," ws ref0 ws){0,})? "]""#),
            "{grammar}"
        );
        assert!(
            grammar.contains(r#"("\"" char{0,4} "\"" | null)"#),
            "{grammar}"
        );
        assert!(grammar.contains(r#""\"k\"" ws ":" ws "3" ws"#), "{grammar}");
    }

    #[test]
    fn maps_bound_their_keys_and_their_size() {
        let g = from_schema(
            r#"{"type": "object", "additionalProperties": {"type": "integer"},
                "propertyNames": {"maxLength": 8}, "minProperties": 1, "maxProperties": 3}"#,
        )
        .unwrap();
        assert!(
            g.contains(r#"r0 ::= "{" ws "\"" char{0,8} "\"" ws ":" ws integer ws ("," ws "\"" char{0,8} "\"" ws ":" ws integer ws){0,2} "}""#),
            "{g}"
        );
    }

    #[test]
    fn long_bounds_are_left_to_validation() {
        let g = from_schema(
            r#"{"type": "object", "properties": {
                "a": {"type": "string", "minLength": 1, "maxLength": 600},
                "b": {"type": "array", "maxItems": 1000}
            }, "required": ["a", "b"]}"#,
        )
        .unwrap();
        assert!(g.contains(r#"char{1,}"#), "{g}");
        assert!(!g.contains("599") && !g.contains("999"), "{g}");
    }

    #[test]
    fn small_integer_ranges_are_listed() {
        let grammar =
            from_schema(r#"{"type": "integer", "minimum": 1, "exclusiveMaximum": 4}"#).unwrap();
        assert!(
            grammar.starts_with(r#"root ::= ("1" | "2" | "3")"#),
            "{grammar}"
        );
        let grammar = from_schema(r#"{"type": "integer", "minimum": 1}"#).unwrap();
        assert!(grammar.starts_with("root ::= integer\n"), "{grammar}");
        let grammar =
            from_schema(r#"{"type": "integer", "minimum": 0, "maximum": 100000}"#).unwrap();
        assert!(grammar.starts_with("root ::= integer\n"), "{grammar}");
    }

    #[test]
    fn schemas_the_grammar_cannot_follow_say_where() {
        let err = from_schema(r#"{"properties": {"a": {"type": "decimal"}}}"#).unwrap_err();
        assert_eq!(
            err,
            "`type` at /properties/a/ is `decimal`, not a JSON Schema type"
        );
        let err = from_schema(r#"{"$ref": "https://example.com/s.json"}"#).unwrap_err();
        assert!(err.contains("only references inside the schema"), "{err}");
        let err = from_schema(r#"{"properties": {}, "required": ["x"]}"#).unwrap_err();
        assert!(err.contains("names `x`"), "{err}");
        assert!(
            from_schema("{")
                .unwrap_err()
                .starts_with("the JSON Schema is not JSON")
        );
    }
}
