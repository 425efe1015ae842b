//! A recursive-descent parser, one function per grammar rule.

use serde_json::Value;

use super::lex::{Tok, Token, lex};
use super::{BinOp, Expr, Func, Kind, MAX_DEPTH, MAX_LEN, Node, ParseError, Path, Root, Seg, Step};

type Result<T, E = ParseError> = std::result::Result<T, E>;

pub(crate) fn parse(src: &str) -> Result<Expr> {
    if src.len() > MAX_LEN {
        return Err(ParseError::new(
            src,
            0,
            format!(
                "the expression is {} bytes long; the limit is {MAX_LEN}",
                src.len()
            ),
        ));
    }
    let toks = lex(src)?;
    let end = Token {
        tok: Tok::End,
        offset: src.len(),
    };
    let mut p = Parser {
        src,
        toks,
        end,
        pos: 0,
        depth: 0,
    };
    if matches!(p.peek().tok, Tok::End) {
        return Err(ParseError::new(src, 0, "the expression is empty"));
    }
    let root = p.or()?;
    let next = p.peek();
    if !matches!(next.tok, Tok::End) {
        return Err(p.error(
            next.offset,
            format!(
                "expected an operator or the end of the expression, found {}",
                describe(&next.tok)
            ),
        ));
    }
    Ok(Expr {
        source: src.to_owned(),
        root,
    })
}

struct Parser<'s> {
    src: &'s str,
    toks: Vec<Token>,
    end: Token,
    pos: usize,
    /// How many `unary` calls are active: bounds the parser's recursion.
    depth: usize,
}

fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Num(n) => format!("the number {n}"),
        Tok::Str(_) => "a string".to_owned(),
        Tok::Word(w) => format!("'{w}'"),
        Tok::Sym(s) => format!("'{s}'"),
        Tok::End => "the end of the expression".to_owned(),
    }
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        self.toks.get(self.pos).unwrap_or(&self.end)
    }

    fn previous(&self) -> Option<&Token> {
        self.pos.checked_sub(1).and_then(|i| self.toks.get(i))
    }

    fn advance(&mut self) {
        if !matches!(self.peek().tok, Tok::End) {
            self.pos += 1;
        }
    }

    fn at_sym(&self, sym: &str) -> bool {
        matches!(self.peek().tok, Tok::Sym(s) if s == sym)
    }

    fn error(&self, offset: usize, message: String) -> ParseError {
        ParseError::new(self.src, offset, message)
    }

    fn too_deep(&self, offset: usize) -> ParseError {
        self.error(
            offset,
            format!("the expression nests deeper than {MAX_DEPTH} levels"),
        )
    }

    /// Expects `sym`, explaining `why` it was expected otherwise.
    fn expect(&mut self, sym: &str, why: &str) -> Result<()> {
        if self.at_sym(sym) {
            self.advance();
            return Ok(());
        }
        let next = self.peek();
        Err(self.error(
            next.offset,
            format!("expected '{sym}' {why}, found {}", describe(&next.tok)),
        ))
    }

    fn node(&self, kind: Kind, start: usize, depth: usize) -> Result<Node> {
        if depth > MAX_DEPTH {
            return Err(self.too_deep(start));
        }
        Ok(Node { kind, start, depth })
    }

    fn binary(&self, op: BinOp, at: usize, left: Node, right: Node) -> Result<Node> {
        let depth = 1 + left.depth.max(right.depth);
        if depth > MAX_DEPTH {
            return Err(self.too_deep(at));
        }
        let start = left.start;
        self.node(
            Kind::Binary(op, at, Box::new(left), Box::new(right)),
            start,
            depth,
        )
    }

    /// `sub { op sub }` for left-associative operators.
    fn chain(&mut self, ops: &[(&str, BinOp)], sub: fn(&mut Self) -> Result<Node>) -> Result<Node> {
        let mut left = sub(self)?;
        loop {
            let at = self.peek().offset;
            let Some(&(_, op)) = ops.iter().find(|(s, _)| self.at_sym(s)) else {
                return Ok(left);
            };
            self.advance();
            let right = sub(self)?;
            left = self.binary(op, at, left, right)?;
        }
    }

    fn or(&mut self) -> Result<Node> {
        self.chain(&[("||", BinOp::Or)], Self::and)
    }

    fn and(&mut self) -> Result<Node> {
        self.chain(&[("&&", BinOp::And)], Self::comparison)
    }

    fn comparison_op(&self) -> Option<BinOp> {
        match &self.peek().tok {
            Tok::Sym("==") => Some(BinOp::Eq),
            Tok::Sym("!=") => Some(BinOp::Ne),
            Tok::Sym("<") => Some(BinOp::Lt),
            Tok::Sym("<=") => Some(BinOp::Le),
            Tok::Sym(">") => Some(BinOp::Gt),
            Tok::Sym(">=") => Some(BinOp::Ge),
            Tok::Word(w) if w == "in" => Some(BinOp::In),
            _ => None,
        }
    }

    fn comparison(&mut self) -> Result<Node> {
        let left = self.sum()?;
        let Some(op) = self.comparison_op() else {
            return Ok(left);
        };
        let at = self.peek().offset;
        self.advance();
        let right = self.sum()?;
        let node = self.binary(op, at, left, right)?;
        if let Some(next) = self.comparison_op() {
            return Err(self.error(
                self.peek().offset,
                format!(
                    "comparisons do not chain: '{}' after '{}'; join two comparisons with '&&' or use parentheses",
                    next.symbol(),
                    op.symbol()
                ),
            ));
        }
        Ok(node)
    }

    fn sum(&mut self) -> Result<Node> {
        self.chain(&[("+", BinOp::Add), ("-", BinOp::Sub)], Self::product)
    }

    fn product(&mut self) -> Result<Node> {
        self.chain(&[("*", BinOp::Mul), ("/", BinOp::Div)], Self::unary)
    }

    fn unary(&mut self) -> Result<Node> {
        let start = self.peek().offset;
        if self.depth >= MAX_DEPTH {
            return Err(self.too_deep(start));
        }
        self.depth += 1;
        let node = self.unary_inner(start);
        self.depth -= 1;
        node
    }

    fn unary_inner(&mut self, start: usize) -> Result<Node> {
        let wrap: fn(Box<Node>) -> Kind = if self.at_sym("!") {
            Kind::Not
        } else if self.at_sym("-") {
            Kind::Neg
        } else {
            return self.primary();
        };
        self.advance();
        let operand = self.unary()?;
        let depth = operand.depth + 1;
        self.node(wrap(Box::new(operand)), start, depth)
    }

    fn primary(&mut self) -> Result<Node> {
        let Token { tok, offset } = self.peek().clone();
        let lit = |v: Value| {
            Ok(Node {
                kind: Kind::Lit(v),
                start: offset,
                depth: 1,
            })
        };
        match tok {
            Tok::Num(n) => {
                self.advance();
                lit(Value::Number(n))
            }
            Tok::Str(s) => {
                self.advance();
                lit(Value::String(s))
            }
            Tok::Sym("(") => {
                self.advance();
                let inner = self.or()?;
                self.expect(")", "to close the '('")?;
                Ok(inner)
            }
            Tok::Word(w) => match w.as_str() {
                "null" | "true" | "false" => {
                    self.advance();
                    lit(match w.as_str() {
                        "null" => Value::Null,
                        other => Value::Bool(other == "true"),
                    })
                }
                "state" | "nodes" | "item" | "index" | "output" => {
                    let path = self.path()?;
                    self.node(Kind::Path(path), offset, 1)
                }
                "exists" => {
                    self.advance();
                    self.expect("(", "after 'exists'")?;
                    let next = self.peek();
                    if !matches!(&next.tok, Tok::Word(w) if Root::of(w).is_some()) {
                        return Err(self.error(
                            next.offset,
                            format!(
                                "exists() takes a path starting with state, nodes, item, index or output, found {}",
                                describe(&next.tok)
                            ),
                        ));
                    }
                    let path = self.path()?;
                    self.expect(")", "to close exists(")?;
                    self.node(Kind::Exists(path), offset, 1)
                }
                "len" | "lower" | "upper" => {
                    let func = match w.as_str() {
                        "len" => Func::Len,
                        "lower" => Func::Lower,
                        _ => Func::Upper,
                    };
                    self.advance();
                    self.expect("(", &format!("after '{w}'"))?;
                    let arg = self.or()?;
                    self.expect(")", &format!("to close {w}("))?;
                    let depth = arg.depth + 1;
                    self.node(Kind::Call(func, Box::new(arg)), offset, depth)
                }
                "in" => Err(self.expected_value(&Tok::Word(w.clone()), offset)),
                _ => Err(self.error(
                    offset,
                    format!(
                        "unknown name '{w}': a value is null, true, false, a number, a string, \
                         a path starting with state, nodes, item, index or output, or a call of len, exists, lower or upper"
                    ),
                )),
            },
            other => Err(self.expected_value(&other, offset)),
        }
    }

    fn expected_value(&self, found: &Tok, offset: usize) -> ParseError {
        let message = match (self.previous(), found) {
            (Some(prev), Tok::End) => format!("expected a value after {}", describe(&prev.tok)),
            (Some(prev), _) => format!(
                "expected a value after {}, found {}",
                describe(&prev.tok),
                describe(found)
            ),
            (None, _) => format!("expected a value, found {}", describe(found)),
        };
        self.error(offset, message)
    }

    /// `state` or `nodes` followed by `.name`, `[index]` and `["key"]` steps.
    fn path(&mut self) -> Result<Path> {
        let root = match &self.peek().tok {
            Tok::Word(w) => Root::of(w).unwrap_or(Root::State),
            _ => Root::State,
        };
        let start = self.peek().offset;
        self.advance();
        let mut segs = Vec::new();
        loop {
            if self.at_sym(".") {
                self.advance();
                let Token { tok, offset } = self.peek().clone();
                let Tok::Word(name) = tok else {
                    let hint = if matches!(tok, Tok::Num(_)) {
                        "; an index is written in brackets: [0]"
                    } else {
                        ""
                    };
                    return Err(self.error(
                        offset,
                        format!(
                            "expected a key name after '.', found {}{hint}",
                            describe(&tok)
                        ),
                    ));
                };
                self.advance();
                segs.push(Seg {
                    step: Step::Key(name),
                    offset,
                });
            } else if self.at_sym("[") {
                let offset = self.peek().offset;
                self.advance();
                let Token { tok, offset: at } = self.peek().clone();
                let step = match tok {
                    Tok::Str(s) => Step::Key(s),
                    Tok::Num(n) => match n.as_u64().and_then(|i| usize::try_from(i).ok()) {
                        Some(i) => Step::Index(i),
                        None => {
                            return Err(self.error(
                                at,
                                format!("an index is a whole number from 0, found {n}"),
                            ));
                        }
                    },
                    other => {
                        return Err(self.error(
                            at,
                            format!(
                                "expected an index or a quoted key after '[', found {}",
                                describe(&other)
                            ),
                        ));
                    }
                };
                self.advance();
                self.expect("]", "to close the '['")?;
                segs.push(Seg { step, offset });
            } else {
                return Ok(Path { root, start, segs });
            }
        }
    }
}
