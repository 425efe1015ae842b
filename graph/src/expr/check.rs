//! The static check behind `graph validate`: every state key and node id an
//! expression names must be declared.

use std::fmt;

use super::{Expr, Kind, Node, Path, Root, Step, at, position};

/// The names a graph declares: its state keys and its node ids, in the
/// order they are declared (the order error messages list them in).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Known {
    /// Declared state keys.
    pub state: Vec<String>,
    /// Declared node ids.
    pub nodes: Vec<String>,
    /// Whether `item` and `index` are defined (a map branch's template).
    pub item: bool,
    /// Whether `output` is defined (a node's output mapping).
    pub output: bool,
}

impl Known {
    /// The declared `state` keys and `nodes` ids.
    pub fn new<S, N>(state: S, nodes: N) -> Self
    where
        S: IntoIterator,
        S::Item: Into<String>,
        N: IntoIterator,
        N::Item: Into<String>,
    {
        Self {
            state: state.into_iter().map(Into::into).collect(),
            nodes: nodes.into_iter().map(Into::into).collect(),
            item: false,
            output: false,
        }
    }

    /// The same names, with `item` and `index` defined.
    #[must_use]
    pub fn with_item(mut self) -> Self {
        self.item = true;
        self
    }

    /// The same names, with `output` defined.
    #[must_use]
    pub fn with_output(mut self) -> Self {
        self.output = true;
        self
    }
}

/// What kind of name is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// A key right after `state`.
    StateKey,
    /// A node id right after `nodes`.
    Node,
    /// `item`, `index` or `output` where it is not defined.
    Root,
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::StateKey => "state key",
            Self::Node => "node",
            Self::Root => "name",
        })
    }
}

/// A name the expression uses that the graph does not declare.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown {kind} {name:?} at {}; declared: {}",
    at(*.line, *.column),
    list(.declared)
)]
pub struct UnknownName {
    /// A state key or a node id.
    pub kind: NameKind,
    /// The name as written.
    pub name: String,
    /// Byte offset of the name in the expression.
    pub offset: usize,
    /// Line of the name, from 1.
    pub line: usize,
    /// Column of the name in characters, from 1.
    pub column: usize,
    /// The names of that kind the graph declares.
    pub declared: Vec<String>,
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

pub(crate) fn check(expr: &Expr, known: &Known) -> Vec<UnknownName> {
    let mut out = Vec::new();
    walk(&expr.source, &expr.root, known, &mut out);
    out
}

fn walk(src: &str, node: &Node, known: &Known, out: &mut Vec<UnknownName>) {
    match &node.kind {
        Kind::Lit(_) => {}
        Kind::Path(path) | Kind::Exists(path) => check_path(src, path, known, out),
        Kind::Not(inner) | Kind::Neg(inner) | Kind::Call(_, inner) => walk(src, inner, known, out),
        Kind::Binary(_, _, left, right) => {
            walk(src, left, known, out);
            walk(src, right, known, out);
        }
    }
}

fn check_path(src: &str, path: &Path, known: &Known, out: &mut Vec<UnknownName>) {
    let defined = match path.root {
        Root::State | Root::Nodes => true,
        Root::Item | Root::Index => known.item,
        Root::Output => known.output,
    };
    if !defined {
        let (line, column) = position(src, path.start);
        let mut declared = vec!["state".to_owned(), "nodes".to_owned()];
        if known.item {
            declared.extend(["item".to_owned(), "index".to_owned()]);
        }
        if known.output {
            declared.push("output".to_owned());
        }
        out.push(UnknownName {
            kind: NameKind::Root,
            name: path.root.name().to_owned(),
            offset: path.start,
            line,
            column,
            declared,
        });
        return;
    }
    let Some(first) = path.segs.first() else {
        return;
    };
    let Step::Key(name) = &first.step else {
        return;
    };
    let (kind, names) = match path.root {
        Root::State => (NameKind::StateKey, &known.state),
        Root::Nodes => (NameKind::Node, &known.nodes),
        Root::Item | Root::Index | Root::Output => return,
    };
    if !names.contains(name) {
        let (line, column) = position(src, first.offset);
        out.push(UnknownName {
            kind,
            name: name.clone(),
            offset: first.offset,
            line,
            column,
            declared: names.clone(),
        });
    }
}
