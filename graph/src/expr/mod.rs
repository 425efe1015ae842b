//! The condition expression language.
//!
//! A condition is a pure function of its text and two JSON values: the run's
//! `state` and the outputs of earlier `nodes`. Evaluation does no I/O, calls
//! no code outside this module and takes time bounded by the expression's
//! size (at most [`MAX_LEN`] bytes, nested at most [`MAX_DEPTH`] levels) and
//! the size of the values it compares.
//!
//! # Grammar
//!
//! ```text
//! expr       = or ;
//! or         = and , { "||" , and } ;
//! and        = comparison , { "&&" , comparison } ;
//! comparison = sum , [ ( "==" | "!=" | "<" | "<=" | ">" | ">=" | "in" ) , sum ] ;
//! sum        = product , { ( "+" | "-" ) , product } ;
//! product    = unary , { ( "*" | "/" ) , unary } ;
//! unary      = ( "!" | "-" ) , unary | primary ;
//! primary    = literal | path | call | "(" , expr , ")" ;
//! call       = ( "len" | "lower" | "upper" ) , "(" , expr , ")"
//!            | "exists" , "(" , path , ")" ;
//! path       = root , { "." , name | "[" , ( index | string ) , "]" } ;
//! root       = "state" | "nodes" | "item" | "index" | "output" ;
//! literal    = "null" | "true" | "false" | number | string ;
//! name       = ( letter | "_" ) , { letter | digit | "_" } ;
//! index      = digit , { digit } ;
//! number     = digit , { digit } , [ "." , digit , { digit } ]
//!              , [ ( "e" | "E" ) , [ "+" | "-" ] , digit , { digit } ] ;
//! string     = '"' , { any character but '"' or '\' | '\"' | '\\' | '\n' } , '"' ;
//! ```
//!
//! Spaces, tabs and newlines between tokens are ignored. Comparisons do not
//! chain (`a < b < c` is a parse error). `!` and unary `-` bind tighter than
//! every binary operator, so `!a == b` is `(!a) == b`. A key that is not a
//! `name` (a node id with a `-`, a key with a space) is written in brackets:
//! `nodes["fetch-page"].output`, `state.map["a key"]`.
//!
//! # Semantics
//!
//! | form | result |
//! |---|---|
//! | `state.a.b`, `x[0]`, `x["k"]` | the value at the path; a missing key, an index out of range or a step into the wrong type is an error |
//! | `a == b`, `a != b` | JSON equality: same type and same value, arrays element by element, objects key by key; numbers by value (`1 == 1.0`) |
//! | `<` `<=` `>` `>=` | between two numbers, or two strings (by Unicode code points); anything else is an error |
//! | `a && b`, `a \|\| b` | both sides must be booleans; the right side is not evaluated when the left decides |
//! | `!a` | `a` must be a boolean |
//! | `x in list` / `k in object` / `s in string` | element of an array (JSON equality), key of an object, substring of a string |
//! | `+ - * /`, unary `-` | numbers only; integers stay integers while exact, otherwise a float; `/` by zero and results out of range are errors |
//! | `len(x)` | characters of a string, items of an array, keys of an object |
//! | `exists(path)` | `true` when the path resolves, `false` otherwise (never an error) |
//! | `lower(s)`, `upper(s)` | the string in lower or upper case |
//!
//! A condition's result must be a boolean: [`Expr::truthy`] returns an
//! error naming the expression and the type of the value otherwise, so a
//! typo never silently picks a route.
//!
//! ```
//! use convergio_graph::expr::{Expr, Scope};
//! use serde_json::json;
//!
//! let state = json!({"name": "Ada"});
//! let nodes = json!({});
//! let scope = Scope::new(&state, &nodes);
//! let err = Expr::parse("state.nmae == \"Ada\"")?.eval(&scope).unwrap_err();
//! assert_eq!(err.message, r#"state.nmae: no key "nmae" in state"#);
//! assert_eq!(err.column, 7);
//! # Ok::<(), convergio_graph::expr::ParseError>(())
//! ```

mod check;
mod eval;
mod lex;
mod parse;

use std::fmt;

use serde_json::Value;

pub use check::{Known, NameKind, UnknownName};

/// The longest expression accepted, in bytes.
pub const MAX_LEN: usize = 4096;

/// The deepest nesting accepted: each operator, call or parenthesised group
/// stacked on another adds a level.
pub const MAX_DEPTH: usize = 64;

/// A parsed expression, ready to evaluate any number of times.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    source: String,
    root: Node,
}

impl Expr {
    /// Parses `text`, reporting the first problem with its position and what
    /// was expected there.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        parse::parse(text)
    }

    /// The text the expression was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates the expression over `scope`.
    pub fn eval(&self, scope: &Scope<'_>) -> Result<Value, EvalError> {
        eval::eval(self, scope)
    }

    /// Evaluates the expression as a condition: its value must be a boolean.
    /// Any other value is an error ([`EvalErrorKind::NotBoolean`]) naming the
    /// expression and the value's type.
    pub fn truthy(&self, scope: &Scope<'_>) -> Result<bool, EvalError> {
        match self.eval(scope)? {
            Value::Bool(b) => Ok(b),
            other => Err(EvalError::new(
                &self.source,
                EvalErrorKind::NotBoolean,
                0,
                format!(
                    "condition `{}` gave {} ({}), not a boolean",
                    self.source,
                    a_type(&other),
                    preview(&other)
                ),
            )),
        }
    }

    /// Checks the names the expression uses against the declared state keys
    /// and node ids, returning every unknown one (empty when all are known).
    /// Names inside `exists(...)` are checked too: a declared key may be
    /// unset at run time, an undeclared one is a typo.
    pub fn check(&self, known: &Known) -> Vec<UnknownName> {
        check::check(self, known)
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// What an expression reads: the run's state and the outputs of earlier
/// nodes (an object from node id to `{"output": …}`).
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    state: &'a Value,
    nodes: &'a Value,
    item: Option<(&'a Value, &'a Value)>,
    output: Option<&'a Value>,
}

impl<'a> Scope<'a> {
    /// A scope over `state` and `nodes`.
    pub fn new(state: &'a Value, nodes: &'a Value) -> Self {
        Self {
            state,
            nodes,
            item: None,
            output: None,
        }
    }

    /// The same scope with `item` and `index` (a number) defined: inside a
    /// `map` node's template.
    #[must_use]
    pub fn with_item(mut self, item: &'a Value, index: &'a Value) -> Self {
        self.item = Some((item, index));
        self
    }

    /// The same scope with `output` defined: a node's output mapping.
    #[must_use]
    pub fn with_output(mut self, output: &'a Value) -> Self {
        self.output = Some(output);
        self
    }
}

/// Why an expression did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at {}", at(*.line, *.column))]
pub struct ParseError {
    /// Byte offset of the problem in the expression.
    pub offset: usize,
    /// Line of the problem, from 1.
    pub line: usize,
    /// Column of the problem in characters, from 1.
    pub column: usize,
    /// What is wrong, and what was expected.
    pub message: String,
}

impl ParseError {
    pub(crate) fn new(src: &str, offset: usize, message: impl Into<String>) -> Self {
        let (line, column) = position(src, offset);
        Self {
            offset,
            line,
            column,
            message: message.into(),
        }
    }
}

/// The kinds of evaluation failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EvalErrorKind {
    /// A path did not resolve: a missing key, an index out of range, or a
    /// step into a value of the wrong type.
    MissingPath,
    /// An operator or function got a value of a type it does not take.
    Type,
    /// A division by zero.
    DivisionByZero,
    /// An arithmetic result that is not a finite number.
    OutOfRange,
    /// A condition whose value is not a boolean.
    NotBoolean,
}

/// Why an expression could not be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at {})", at(*.line, *.column))]
pub struct EvalError {
    /// What failed.
    pub kind: EvalErrorKind,
    /// Byte offset in the expression of the part that failed.
    pub offset: usize,
    /// Line of that part, from 1.
    pub line: usize,
    /// Column of that part in characters, from 1.
    pub column: usize,
    /// What went wrong, naming the path or operator and the values' types.
    pub message: String,
}

impl EvalError {
    pub(crate) fn new(src: &str, kind: EvalErrorKind, offset: usize, message: String) -> Self {
        let (line, column) = position(src, offset);
        Self {
            kind,
            offset,
            line,
            column,
            message,
        }
    }
}

pub(crate) fn at(line: usize, column: usize) -> String {
    if line == 1 {
        format!("column {column}")
    } else {
        format!("line {line}, column {column}")
    }
}

/// Line and column (both from 1, the column in characters) of a byte offset.
pub(crate) fn position(src: &str, offset: usize) -> (usize, usize) {
    let before = src.get(..offset).unwrap_or(src);
    let line = 1 + before.matches('\n').count();
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = 1 + before.get(line_start..).map_or(0, |s| s.chars().count());
    (line, column)
}

/// A value's type with its article, for messages: "a string", "null".
pub(crate) fn a_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A value as JSON, cut to a length that fits in a message.
pub(crate) fn preview(v: &Value) -> String {
    const MAX: usize = 60;
    let text = v.to_string();
    if text.chars().count() <= MAX {
        text
    } else {
        let mut cut: String = text.chars().take(MAX).collect();
        cut.push('…');
        cut
    }
}

// The syntax tree. `start` is the byte offset where a node's text begins.

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub(crate) kind: Kind,
    pub(crate) start: usize,
    pub(crate) depth: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    Lit(Value),
    Path(Path),
    Not(Box<Node>),
    Neg(Box<Node>),
    /// The operator, its byte offset, and the two sides.
    Binary(BinOp, usize, Box<Node>, Box<Node>),
    Call(Func, Box<Node>),
    Exists(Path),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Add,
    Sub,
    Mul,
    Div,
}

impl BinOp {
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            Self::Or => "||",
            Self::And => "&&",
            Self::Eq => "==",
            Self::Ne => "!=",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
            Self::In => "in",
            Self::Add => "+",
            Self::Sub => "-",
            Self::Mul => "*",
            Self::Div => "/",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Func {
    Len,
    Lower,
    Upper,
}

impl Func {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Len => "len",
            Self::Lower => "lower",
            Self::Upper => "upper",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Root {
    State,
    Nodes,
    Item,
    Index,
    Output,
}

impl Root {
    pub(crate) fn of(word: &str) -> Option<Self> {
        Some(match word {
            "state" => Self::State,
            "nodes" => Self::Nodes,
            "item" => Self::Item,
            "index" => Self::Index,
            "output" => Self::Output,
            _ => return None,
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::State => "state",
            Self::Nodes => "nodes",
            Self::Item => "item",
            Self::Index => "index",
            Self::Output => "output",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Path {
    pub(crate) root: Root,
    /// Byte offset of the root word.
    pub(crate) start: usize,
    pub(crate) segs: Vec<Seg>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Seg {
    pub(crate) step: Step,
    /// Byte offset of the key name, or of the `[`.
    pub(crate) offset: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    Key(String),
    Index(usize),
}

impl Path {
    /// The path's root and first `n` steps, as text: `state.a["b c"][0]`.
    pub(crate) fn text(&self, n: usize) -> String {
        let mut out = String::from(self.root.name());
        for seg in self.segs.iter().take(n) {
            match &seg.step {
                Step::Key(k) if lex::is_name(k) => {
                    out.push('.');
                    out.push_str(k);
                }
                Step::Key(k) => {
                    out.push('[');
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(']');
                }
                Step::Index(i) => {
                    out.push('[');
                    out.push_str(&i.to_string());
                    out.push(']');
                }
            }
        }
        out
    }
}
