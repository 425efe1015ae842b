//! Templates: a node's input and an interrupt's prompt.
//!
//! A template is any JSON value. In it, a string that is exactly
//! `{{ expr }}` becomes the expression's value, of any JSON type; a
//! `{{ expr }}` inside a longer string is replaced by its text (a string as
//! is, any other value as compact JSON). Expressions are those of
//! [`crate::expr`]. There is no escape syntax: a literal `{{` is written as
//! the expression `{{ "{{" }}`. A `}}` outside a `{{ … }}` is plain text.
//!
//! A template is parsed once and rendered for each call; the parts with no
//! expression are kept as ready values.
//!
//! ```
//! use convergio_graph::expr::Scope;
//! use convergio_graph::template::Template;
//! use serde_json::json;
//!
//! let t = Template::parse(&json!({"tags": "{{ state.tags }}", "q": "about {{ state.tags[0] }}"}))
//!     .map_err(|errors| errors[0].message.clone())?;
//! let (state, nodes) = (json!({"tags": ["a", "b"]}), json!({}));
//! let value = t.render(&Scope::new(&state, &nodes))?;
//! assert_eq!(value, json!({"tags": ["a", "b"], "q": "about a"}));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use serde_json::{Map, Value};

use crate::expr::{EvalError, Expr, Scope};

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    root: Part,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    /// A value without expressions, rendered as is.
    Ready(Value),
    /// A string that is exactly one `{{ expr }}`.
    Whole(Placed),
    /// A string with text and expressions.
    Text(Vec<Piece>),
    Array(Vec<Part>),
    Object(Vec<(String, Part)>),
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Expr(Placed),
}

#[derive(Debug, Clone, PartialEq)]
struct Placed {
    expr: Expr,
    pointer: String,
    offset: usize,
}

/// An expression of a template, with where it is.
#[derive(Debug, Clone, Copy)]
pub struct TemplateExpr<'a> {
    /// The expression.
    pub expr: &'a Expr,
    /// JSON pointer of the string that holds it, inside the template value
    /// (empty for the value itself).
    pub pointer: &'a str,
    /// Byte offset in that string where the expression's text starts.
    pub offset: usize,
}

/// Why a template did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    /// JSON pointer of the string with the problem, inside the template
    /// value (empty for the value itself).
    pub pointer: String,
    /// Byte offset of the problem in that string.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

impl Template {
    /// Parses every string of `value`, reporting every problem.
    pub fn parse(value: &Value) -> Result<Self, Vec<TemplateError>> {
        let mut errors = Vec::new();
        let mut pointer = String::new();
        let root = part(value, &mut pointer, &mut errors);
        if errors.is_empty() {
            Ok(Self { root })
        } else {
            Err(errors)
        }
    }

    /// Parses a text template (an interrupt's prompt).
    pub fn parse_str(text: &str) -> Result<Self, Vec<TemplateError>> {
        let mut errors = Vec::new();
        let root = string(text, "", &mut errors);
        if errors.is_empty() {
            Ok(Self { root })
        } else {
            Err(errors)
        }
    }

    /// The template's value over `scope`.
    pub fn render(&self, scope: &Scope<'_>) -> Result<Value, EvalError> {
        render(&self.root, scope)
    }

    /// The template's value over `scope` as text: a string as is, any other
    /// value as compact JSON.
    pub fn render_text(&self, scope: &Scope<'_>) -> Result<String, EvalError> {
        Ok(text_of(self.render(scope)?))
    }

    /// Whether the template has no expression: it renders to one value.
    pub fn is_constant(&self) -> bool {
        matches!(self.root, Part::Ready(_))
    }

    /// Every expression, in document order.
    pub fn expressions(&self) -> Vec<TemplateExpr<'_>> {
        let mut out = Vec::new();
        collect(&self.root, &mut out);
        out
    }
}

fn collect<'a>(part: &'a Part, out: &mut Vec<TemplateExpr<'a>>) {
    let mut push = |p: &'a Placed| {
        out.push(TemplateExpr {
            expr: &p.expr,
            pointer: &p.pointer,
            offset: p.offset,
        });
    };
    match part {
        Part::Ready(_) => {}
        Part::Whole(p) => push(p),
        Part::Text(pieces) => {
            for piece in pieces {
                if let Piece::Expr(p) = piece {
                    push(p);
                }
            }
        }
        Part::Array(items) => items.iter().for_each(|item| collect(item, out)),
        Part::Object(entries) => entries.iter().for_each(|(_, v)| collect(v, out)),
    }
}

fn render(part: &Part, scope: &Scope<'_>) -> Result<Value, EvalError> {
    Ok(match part {
        Part::Ready(v) => v.clone(),
        Part::Whole(p) => p.expr.eval(scope)?,
        Part::Text(pieces) => {
            let mut out = String::new();
            for piece in pieces {
                match piece {
                    Piece::Text(t) => out.push_str(t),
                    Piece::Expr(p) => match p.expr.eval(scope)? {
                        Value::String(s) => out.push_str(&s),
                        other => out.push_str(&other.to_string()),
                    },
                }
            }
            Value::String(out)
        }
        Part::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| render(item, scope))
                .collect::<Result<_, _>>()?,
        ),
        Part::Object(entries) => {
            let mut map = Map::new();
            for (k, v) in entries {
                map.insert(k.clone(), render(v, scope)?);
            }
            Value::Object(map)
        }
    })
}

fn text_of(value: Value) -> String {
    match value {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

/// Appends a key to a JSON pointer, escaped (`~` as `~0`, `/` as `~1`).
pub(crate) fn push_pointer(pointer: &mut String, key: &str) {
    pointer.push('/');
    pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
}

fn part(value: &Value, pointer: &mut String, errors: &mut Vec<TemplateError>) -> Part {
    match value {
        Value::String(s) => string(s, pointer, errors),
        Value::Array(items) => {
            let len = pointer.len();
            let parts: Vec<Part> = items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    push_pointer(pointer, &i.to_string());
                    let p = part(item, pointer, errors);
                    pointer.truncate(len);
                    p
                })
                .collect();
            if parts.iter().all(|p| matches!(p, Part::Ready(_))) {
                Part::Ready(value.clone())
            } else {
                Part::Array(parts)
            }
        }
        Value::Object(map) => {
            let len = pointer.len();
            let parts: Vec<(String, Part)> = map
                .iter()
                .map(|(k, v)| {
                    push_pointer(pointer, k);
                    let p = part(v, pointer, errors);
                    pointer.truncate(len);
                    (k.clone(), p)
                })
                .collect();
            if parts.iter().all(|(_, p)| matches!(p, Part::Ready(_))) {
                Part::Ready(value.clone())
            } else {
                Part::Object(parts)
            }
        }
        other => Part::Ready(other.clone()),
    }
}

fn string(s: &str, pointer: &str, errors: &mut Vec<TemplateError>) -> Part {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut rest = 0;
    while let Some(found) = s.get(rest..).and_then(|r| r.find("{{")) {
        let open = rest + found;
        text.push_str(s.get(rest..open).unwrap_or(""));
        let start = open + 2;
        let Some(close) = closing(s, start) else {
            errors.push(TemplateError {
                pointer: pointer.to_owned(),
                offset: open,
                message: "`{{` is not closed by `}}` (a literal `{{` is written `{{ \"{{\" }}`)"
                    .to_owned(),
            });
            return Part::Ready(Value::String(s.to_owned()));
        };
        let inner = s.get(start..close).unwrap_or("");
        let lead = inner.len() - inner.trim_start().len();
        match Expr::parse(inner.trim()) {
            Ok(expr) => {
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(Piece::Expr(Placed {
                    expr,
                    pointer: pointer.to_owned(),
                    offset: start + lead,
                }));
            }
            Err(err) => errors.push(TemplateError {
                pointer: pointer.to_owned(),
                offset: start + lead + err.offset,
                message: if inner.trim().is_empty() {
                    "empty `{{ }}`: write an expression between the braces".to_owned()
                } else {
                    err.message
                },
            }),
        }
        rest = close + 2;
    }
    text.push_str(s.get(rest..).unwrap_or(""));
    if pieces.is_empty() {
        return Part::Ready(Value::String(s.to_owned()));
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    match <[Piece; 1]>::try_from(pieces) {
        Ok([Piece::Expr(p)]) if s.starts_with("{{") && s.ends_with("}}") => Part::Whole(p),
        Ok(one) => Part::Text(one.into()),
        Err(pieces) => Part::Text(pieces),
    }
}

/// The byte offset of the `}}` that closes an expression starting at
/// `start`, skipping string literals.
fn closing(s: &str, start: usize) -> Option<usize> {
    let bytes = s.as_bytes();
    let (mut i, mut in_string) = (start, false);
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_string => i += 1,
            b'"' => in_string = !in_string,
            b'}' if !in_string && bytes.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use serde_json::json;

    use super::*;

    fn render_with(template: Value, state: Value) -> Value {
        let nodes = json!({"fetch": {"output": {"status": 200}}});
        Template::parse(&template)
            .unwrap()
            .render(&Scope::new(&state, &nodes))
            .unwrap()
    }

    #[test]
    fn a_whole_expression_keeps_its_type() {
        let state = json!({"n": 3, "tags": ["a"], "obj": {"k": true}});
        assert_eq!(render_with(json!("{{ state.n }}"), state.clone()), json!(3));
        assert_eq!(
            render_with(json!("{{state.tags}}"), state.clone()),
            json!(["a"])
        );
        assert_eq!(
            render_with(json!({"x": ["{{ state.obj }}", 1]}), state),
            json!({"x": [{"k": true}, 1]})
        );
    }

    #[test]
    fn expressions_inside_text_give_text() {
        let state = json!({"n": 3, "name": "Ada", "tags": ["a", "b"]});
        assert_eq!(
            render_with(
                json!(
                    "{{ state.name }} has {{ state.n }} tags: {{ state.tags }}, status {{ nodes.fetch.output.status }}"
                ),
                state
            ),
            json!("Ada has 3 tags: [\"a\",\"b\"], status 200")
        );
        assert_eq!(
            render_with(json!("{{ state.n }}{{ state.n }}"), json!({"n": 1})),
            json!("11")
        );
    }

    #[test]
    fn a_literal_brace_pair_is_an_expression() {
        assert_eq!(
            render_with(json!("{{ \"{{\" }} x }} {{ \"}}\" }}"), json!({})),
            json!("{{ x }} }}")
        );
    }

    #[test]
    fn constant_parts_are_ready() {
        let t = Template::parse(&json!({"a": [1, "b"], "c": "}} {"})).unwrap();
        assert!(t.is_constant());
        assert!(t.expressions().is_empty());
    }

    #[test]
    fn errors_carry_pointer_and_offset() {
        let errors =
            Template::parse(&json!({"a": ["ok", "x {{ state.a = 1 }}"], "b/c": "{{ state"}))
                .unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(errors[0].pointer, "/a/1");
        assert_eq!(errors[0].offset, "x {{ state.a ".len());
        assert_eq!(
            errors[0].message,
            "expected '==' (a single '=' is not an operator)"
        );
        assert_eq!(errors[1].pointer, "/b~1c");
        assert_eq!(errors[1].offset, 0);
        let errors = Template::parse_str("{{  }}").unwrap_err();
        assert_eq!(
            errors[0].message,
            "empty `{{ }}`: write an expression between the braces"
        );
    }

    #[test]
    fn expressions_are_listed_with_offsets() {
        let t = Template::parse(&json!({"q": "x {{ state.a }} {{item}}"})).unwrap();
        let found: Vec<_> = t
            .expressions()
            .iter()
            .map(|e| (e.expr.source().to_owned(), e.pointer.to_owned(), e.offset))
            .collect();
        assert_eq!(
            found,
            vec![
                ("state.a".to_owned(), "/q".to_owned(), 5),
                ("item".to_owned(), "/q".to_owned(), 18)
            ]
        );
    }

    #[test]
    fn evaluation_errors_come_back() {
        let t = Template::parse(&json!("{{ state.missing }}")).unwrap();
        let (state, nodes) = (json!({}), json!({}));
        assert!(t.render(&Scope::new(&state, &nodes)).is_err());
        assert_eq!(
            Template::parse_str("n={{ 1 + 1 }}")
                .unwrap()
                .render_text(&Scope::new(&state, &nodes))
                .unwrap(),
            "n=2"
        );
    }
}
