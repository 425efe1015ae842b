//! Input templates: JSON in which `{{ expr }}` takes an expression's value.

use serde_json::{Map, Value};

use crate::expr::{EvalError, Expr, ParseError, Scope};

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template(Part);

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Literal(Value),
    Whole(Expr),
    Text(Vec<Piece>),
    Array(Vec<Part>),
    Object(Vec<(String, Part)>),
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Expr(Expr),
}

/// An expression in a template that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct TemplateError {
    /// The string it is in.
    pub text: String,
    /// Byte offset of the expression in the string.
    pub offset: usize,
    /// Why it does not parse.
    pub error: ParseError,
}

impl Template {
    /// Parse every `{{ … }}` in the strings of `value`.
    pub fn parse(value: &Value) -> Result<Self, Vec<TemplateError>> {
        let mut errors = Vec::new();
        let part = parse_value(value, &mut errors);
        if errors.is_empty() {
            Ok(Self(part))
        } else {
            Err(errors)
        }
    }

    /// The value with every expression evaluated in `scope`.
    pub fn render(&self, scope: &Scope<'_>) -> Result<Value, EvalError> {
        render(&self.0, scope)
    }

    /// Every expression of the template.
    pub fn exprs(&self) -> Vec<&Expr> {
        let mut out = Vec::new();
        collect(&self.0, &mut out);
        out
    }
}

fn parse_value(value: &Value, errors: &mut Vec<TemplateError>) -> Part {
    match value {
        Value::String(s) if s.contains("{{") => parse_string(s, errors),
        Value::Array(items) => {
            let parts: Vec<Part> = items.iter().map(|v| parse_value(v, errors)).collect();
            if parts.iter().all(|p| matches!(p, Part::Literal(_))) {
                Part::Literal(value.clone())
            } else {
                Part::Array(parts)
            }
        }
        Value::Object(map) => {
            let parts: Vec<(String, Part)> = map
                .iter()
                .map(|(k, v)| (k.clone(), parse_value(v, errors)))
                .collect();
            if parts.iter().all(|(_, p)| matches!(p, Part::Literal(_))) {
                Part::Literal(value.clone())
            } else {
                Part::Object(parts)
            }
        }
        other => Part::Literal(other.clone()),
    }
}

fn parse_string(s: &str, errors: &mut Vec<TemplateError>) -> Part {
    let mut pieces = Vec::new();
    let mut rest = s;
    let mut base = 0;
    while let Some(open) = rest.find("{{") {
        let Some(close) = rest[open + 2..].find("}}") else {
            break;
        };
        if open > 0 {
            pieces.push(Piece::Text(rest[..open].to_owned()));
        }
        let inner = &rest[open + 2..open + 2 + close];
        match Expr::parse(inner.trim()) {
            Ok(expr) => pieces.push(Piece::Expr(expr)),
            Err(error) => errors.push(TemplateError {
                text: s.to_owned(),
                offset: base + open + 2 + (inner.len() - inner.trim_start().len()),
                error,
            }),
        }
        let consumed = open + 2 + close + 2;
        base += consumed;
        rest = &rest[consumed..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_owned()));
    }
    match pieces.as_slice() {
        [Piece::Expr(expr)] => Part::Whole(expr.clone()),
        _ => Part::Text(pieces),
    }
}

fn render(part: &Part, scope: &Scope<'_>) -> Result<Value, EvalError> {
    Ok(match part {
        Part::Literal(v) => v.clone(),
        Part::Whole(expr) => expr.eval(scope)?,
        Part::Text(pieces) => {
            let mut out = String::new();
            for piece in pieces {
                match piece {
                    Piece::Text(t) => out.push_str(t),
                    Piece::Expr(expr) => match expr.eval(scope)? {
                        Value::String(s) => out.push_str(&s),
                        other => out.push_str(&other.to_string()),
                    },
                }
            }
            Value::String(out)
        }
        Part::Array(parts) => Value::Array(
            parts
                .iter()
                .map(|p| render(p, scope))
                .collect::<Result<_, _>>()?,
        ),
        Part::Object(parts) => {
            let mut map = Map::new();
            for (k, p) in parts {
                map.insert(k.clone(), render(p, scope)?);
            }
            Value::Object(map)
        }
    })
}

fn collect<'a>(part: &'a Part, out: &mut Vec<&'a Expr>) {
    match part {
        Part::Literal(_) => {}
        Part::Whole(expr) => out.push(expr),
        Part::Text(pieces) => out.extend(pieces.iter().filter_map(|p| match p {
            Piece::Expr(e) => Some(e),
            Piece::Text(_) => None,
        })),
        Part::Array(parts) => parts.iter().for_each(|p| collect(p, out)),
        Part::Object(parts) => parts.iter().for_each(|(_, p)| collect(p, out)),
    }
}
