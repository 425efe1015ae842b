//! Evaluation: a walk of the tree, whose depth the parser bounds.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::{Number, Value};

use super::{
    BinOp, EvalError, EvalErrorKind, Expr, Func, Kind, Node, Path, Root, Scope, Step, a_type,
};

type Result<T, E = EvalError> = std::result::Result<T, E>;

pub(crate) fn eval(expr: &Expr, scope: &Scope<'_>) -> Result<Value> {
    let ctx = Ctx {
        src: &expr.source,
        state: scope.state,
        nodes: scope.nodes,
        item: scope.item,
        output: scope.output,
    };
    ctx.eval(&expr.root).map(Cow::into_owned)
}

struct Ctx<'a> {
    src: &'a str,
    state: &'a Value,
    nodes: &'a Value,
    item: Option<(&'a Value, &'a Value)>,
    output: Option<&'a Value>,
}

/// A number, exact while it is a 64-bit signed integer.
#[derive(Debug, Clone, Copy)]
enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    fn of(v: &Value) -> Option<Self> {
        let Value::Number(n) = v else { return None };
        n.as_i64()
            .map(Self::Int)
            .or_else(|| n.as_f64().map(Self::Float))
    }

    fn float(self) -> f64 {
        match self {
            Self::Int(i) => i as f64,
            Self::Float(f) => f,
        }
    }

    fn cmp(self, other: Self) -> Option<Ordering> {
        match (self, other) {
            (Self::Int(a), Self::Int(b)) => Some(a.cmp(&b)),
            (a, b) => a.float().partial_cmp(&b.float()),
        }
    }
}

/// JSON equality, with numbers compared by value.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => match (Num::of(a), Num::of(b)) {
            (Some(x), Some(y)) => x.cmp(y) == Some(Ordering::Equal),
            _ => false,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, a)| y.get(k).is_some_and(|b| json_eq(a, b)))
        }
        _ => a == b,
    }
}

impl<'a> Ctx<'a> {
    fn error(&self, kind: EvalErrorKind, offset: usize, message: String) -> EvalError {
        EvalError::new(self.src, kind, offset, message)
    }

    fn eval(&self, node: &'a Node) -> Result<Cow<'a, Value>> {
        let owned = |v: Value| Ok(Cow::Owned(v));
        match &node.kind {
            Kind::Lit(v) => Ok(Cow::Borrowed(v)),
            Kind::Path(path) => self.resolve(path).map(Cow::Borrowed),
            Kind::Exists(path) => owned(Value::Bool(self.resolve(path).is_ok())),
            Kind::Not(inner) => owned(Value::Bool(!self.boolean(inner, "the operand of '!'")?)),
            Kind::Neg(inner) => {
                let v = self.eval(inner)?;
                let n = Num::of(&v).ok_or_else(|| {
                    self.error(
                        EvalErrorKind::Type,
                        inner.start,
                        format!("unary '-' takes a number, not {}", a_type(&v)),
                    )
                })?;
                let negated = match n {
                    Num::Int(i) => i.checked_neg().map_or(Num::Float(-(i as f64)), Num::Int),
                    Num::Float(f) => Num::Float(-f),
                };
                owned(self.number(negated, node.start, "-")?)
            }
            Kind::Call(func, arg) => self.call(*func, arg).map(Cow::Owned),
            Kind::Binary(op, at, left, right) => self.binary(*op, *at, left, right),
        }
    }

    fn boolean(&self, node: &'a Node, what: &str) -> Result<bool> {
        match self.eval(node)?.as_ref() {
            Value::Bool(b) => Ok(*b),
            other => Err(self.error(
                EvalErrorKind::Type,
                node.start,
                format!("{what} is {}, not a boolean", a_type(other)),
            )),
        }
    }

    fn binary(
        &self,
        op: BinOp,
        at: usize,
        left: &'a Node,
        right: &'a Node,
    ) -> Result<Cow<'a, Value>> {
        let bool_of = |b: bool| Ok(Cow::Owned(Value::Bool(b)));
        match op {
            BinOp::And => {
                let b = self.boolean(left, "the left side of '&&'")?
                    && self.boolean(right, "the right side of '&&'")?;
                return bool_of(b);
            }
            BinOp::Or => {
                let b = self.boolean(left, "the left side of '||'")?
                    || self.boolean(right, "the right side of '||'")?;
                return bool_of(b);
            }
            _ => {}
        }
        let l = self.eval(left)?;
        let r = self.eval(right)?;
        let (l, r) = (l.as_ref(), r.as_ref());
        match op {
            BinOp::Eq => bool_of(json_eq(l, r)),
            BinOp::Ne => bool_of(!json_eq(l, r)),
            BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                let ord = match (l, r) {
                    (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
                    (Value::Number(_), Value::Number(_)) => {
                        Num::of(l).zip(Num::of(r)).and_then(|(a, b)| a.cmp(b))
                    }
                    _ => None,
                };
                let Some(ord) = ord else {
                    return Err(self.error(
                        EvalErrorKind::Type,
                        at,
                        format!(
                            "'{}' orders two numbers or two strings, not {} and {}",
                            op.symbol(),
                            a_type(l),
                            a_type(r)
                        ),
                    ));
                };
                bool_of(match op {
                    BinOp::Lt => ord == Ordering::Less,
                    BinOp::Le => ord != Ordering::Greater,
                    BinOp::Gt => ord == Ordering::Greater,
                    _ => ord != Ordering::Less,
                })
            }
            BinOp::In => self.contains(at, l, r).map(|b| Cow::Owned(Value::Bool(b))),
            _ => self.arithmetic(op, at, l, r).map(Cow::Owned),
        }
    }

    fn contains(&self, at: usize, needle: &Value, hay: &Value) -> Result<bool> {
        let type_error = |message: String| Err(self.error(EvalErrorKind::Type, at, message));
        match (needle, hay) {
            (_, Value::Array(items)) => Ok(items.iter().any(|item| json_eq(needle, item))),
            (Value::String(k), Value::Object(map)) => Ok(map.contains_key(k)),
            (Value::String(s), Value::String(h)) => Ok(h.contains(s.as_str())),
            (other, Value::Object(_)) => type_error(format!(
                "'in' looks up an object's key with a string, not {}",
                a_type(other)
            )),
            (other, Value::String(_)) => type_error(format!(
                "'in' looks for a substring of a string, not for {}",
                a_type(other)
            )),
            (_, other) => type_error(format!(
                "'in' looks in an array, an object or a string, not in {}",
                a_type(other)
            )),
        }
    }

    fn arithmetic(&self, op: BinOp, at: usize, l: &Value, r: &Value) -> Result<Value> {
        let (Some(a), Some(b)) = (Num::of(l), Num::of(r)) else {
            return Err(self.error(
                EvalErrorKind::Type,
                at,
                format!(
                    "'{}' takes two numbers, not {} and {}",
                    op.symbol(),
                    a_type(l),
                    a_type(r)
                ),
            ));
        };
        let exact = match (op, a, b) {
            (BinOp::Add, Num::Int(x), Num::Int(y)) => x.checked_add(y),
            (BinOp::Sub, Num::Int(x), Num::Int(y)) => x.checked_sub(y),
            (BinOp::Mul, Num::Int(x), Num::Int(y)) => x.checked_mul(y),
            (BinOp::Div, Num::Int(x), Num::Int(y)) if x.checked_rem(y) == Some(0) => {
                x.checked_div(y)
            }
            _ => None,
        };
        if let Some(i) = exact {
            return Ok(Value::from(i));
        }
        let (x, y) = (a.float(), b.float());
        let result = match op {
            BinOp::Add => x + y,
            BinOp::Sub => x - y,
            BinOp::Mul => x * y,
            _ => {
                if y == 0.0 {
                    return Err(self.error(
                        EvalErrorKind::DivisionByZero,
                        at,
                        "division by zero".to_owned(),
                    ));
                }
                x / y
            }
        };
        self.number(Num::Float(result), at, op.symbol())
    }

    fn number(&self, n: Num, at: usize, op: &str) -> Result<Value> {
        match n {
            Num::Int(i) => Ok(Value::from(i)),
            Num::Float(f) => Number::from_f64(f).map(Value::Number).ok_or_else(|| {
                self.error(
                    EvalErrorKind::OutOfRange,
                    at,
                    format!("the result of '{op}' is out of range"),
                )
            }),
        }
    }

    fn call(&self, func: Func, arg: &'a Node) -> Result<Value> {
        let v = self.eval(arg)?;
        let result = match (func, v.as_ref()) {
            (Func::Len, Value::String(s)) => Some(Value::from(s.chars().count())),
            (Func::Len, Value::Array(a)) => Some(Value::from(a.len())),
            (Func::Len, Value::Object(o)) => Some(Value::from(o.len())),
            (Func::Lower, Value::String(s)) => Some(Value::String(s.to_lowercase())),
            (Func::Upper, Value::String(s)) => Some(Value::String(s.to_uppercase())),
            _ => None,
        };
        result.ok_or_else(|| {
            let takes = match func {
                Func::Len => "a string, an array or an object",
                Func::Lower | Func::Upper => "a string",
            };
            self.error(
                EvalErrorKind::Type,
                arg.start,
                format!("{}() takes {takes}, not {}", func.name(), a_type(&v)),
            )
        })
    }

    fn resolve(&self, path: &Path) -> Result<&'a Value> {
        let root = match path.root {
            Root::State => Some(self.state),
            Root::Nodes => Some(self.nodes),
            Root::Item => self.item.map(|(item, _)| item),
            Root::Index => self.item.map(|(_, index)| index),
            Root::Output => self.output,
        };
        let Some(mut cur) = root else {
            let where_ = match path.root {
                Root::Output => "in a node's output mapping",
                _ => "in the template of a map node's branch",
            };
            return Err(self.error(
                EvalErrorKind::MissingPath,
                path.start,
                format!("`{}` is defined only {where_}", path.root.name()),
            ));
        };
        for (i, seg) in path.segs.iter().enumerate() {
            let missing =
                |message: String| self.error(EvalErrorKind::MissingPath, seg.offset, message);
            let here = || path.text(i + 1);
            cur = match (&seg.step, cur) {
                (Step::Key(k), Value::Object(map)) => map.get(k).ok_or_else(|| {
                    missing(format!("{}: no key {k:?} in {}", here(), path.text(i)))
                })?,
                (Step::Index(n), Value::Array(items)) => items.get(*n).ok_or_else(|| {
                    missing(format!(
                        "{}: index {n} is out of range; {} has {} items",
                        here(),
                        path.text(i),
                        items.len()
                    ))
                })?,
                (Step::Key(_), other) => {
                    return Err(missing(format!(
                        "{}: {} is {}, not an object",
                        here(),
                        path.text(i),
                        a_type(other)
                    )));
                }
                (Step::Index(_), other) => {
                    return Err(missing(format!(
                        "{}: {} is {}, not an array",
                        here(),
                        path.text(i),
                        a_type(other)
                    )));
                }
            };
        }
        Ok(cur)
    }
}
