//! The graph document: YAML or JSON, read into a [`Graph`] with every
//! mistake reported at once, each at its line and column.
//!
//! The document is the friendly form users write (`docs/graphs.md` is its
//! reference; `docs/graph.schema.json` its JSON Schema): `tool: web/fetch`,
//! `timeout: 30s`, edges as `"a -> b"`. JSON is read by the same reader
//! (JSON is YAML's flow syntax), so its mistakes have positions too.
//! Reading checks the shape of the document (field names, kinds, types);
//! then [`crate::validate`] checks the graph's rules, and each problem it
//! finds is placed in the file, down to the column inside an expression.
//!
//! ```
//! use convergio_graph::document;
//!
//! let graph = document::read("nodes:\n  a: { agent: writer }\n  b: { agent: critic }\nedges: [a -> b]\n")?;
//! assert_eq!(graph.edges[0].to, "b");
//!
//! let errors = document::read("nodes:\n  a: { agent: writer }\nedges: [a -> c]\n").unwrap_err();
//! assert_eq!(errors.to_string(), "3:14: no node `c`; nodes: a");
//! # Ok::<(), document::Diagnostics>(())
//! ```

mod read;
mod yaml;

use std::fmt;
use std::path::Path;

pub use yaml::{MAX_BYTES, MAX_DEPTH};

use crate::model::Graph;
use crate::validate::Catalog;

/// One mistake in a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file's name, when read from a file.
    pub file: Option<String>,
    /// Line, from 1 (0: no position, e.g. the file could not be read).
    pub line: usize,
    /// Column in characters, from 1 (0: no position).
    pub column: usize,
    /// JSON pointer of the value at fault (`/nodes/fetch/input`).
    pub pointer: String,
    /// What is wrong, and what would be right.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    /// `FILE:line:column: message`, as compilers print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{file}:")?;
        }
        if self.line > 0 {
            write!(f, "{}:{}:", self.line, self.column)?;
        }
        if self.file.is_some() || self.line > 0 {
            f.write_str(" ")?;
        }
        f.write_str(&self.message)
    }
}

/// Every mistake of a document, in the order they appear in it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// How many.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The diagnostics, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }
}

impl fmt::Display for Diagnostics {
    /// One diagnostic a line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

impl<'a> IntoIterator for &'a Diagnostics {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Reads and validates a graph document, without a catalog of plugins.
pub fn read(text: &str) -> Result<Graph, Diagnostics> {
    Reader::new().read(text)
}

/// Reads a YAML or JSON text as plain JSON, with the reader's limits and
/// its errors (duplicate keys, anchors, depth, size), without reading it
/// as a graph: for tools that check a document against
/// `docs/graph.schema.json` or convert it.
pub fn to_json(text: &str) -> Result<serde_json::Value, Diagnostics> {
    let lines = yaml::Lines::new(text);
    let (tree, errors) = yaml::parse(text);
    match tree {
        Some(tree) if errors.is_empty() => Ok(tree.to_json()),
        _ => Err(Diagnostics(
            errors
                .into_iter()
                .map(|e| {
                    let (line, column) = lines.position(e.at);
                    Diagnostic {
                        file: None,
                        line,
                        column,
                        pointer: String::new(),
                        message: e.message,
                    }
                })
                .collect(),
        )),
    }
}

/// Reads and validates a graph file; each diagnostic names the file.
pub fn read_file(path: &Path) -> Result<Graph, Diagnostics> {
    Reader::new().read_file(path)
}

/// How to read a document: the file name to put in diagnostics and the
/// catalog to check plugins and tools against.
#[derive(Default, Clone, Copy)]
pub struct Reader<'a> {
    file: Option<&'a str>,
    catalog: Option<&'a dyn Catalog>,
}

impl fmt::Debug for Reader<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader")
            .field("file", &self.file)
            .field("catalog", &self.catalog.is_some())
            .finish()
    }
}

impl<'a> Reader<'a> {
    /// A reader without file name or catalog.
    pub fn new() -> Self {
        Self::default()
    }

    /// Names `file` in each diagnostic.
    #[must_use]
    pub fn file(mut self, file: &'a str) -> Self {
        self.file = Some(file);
        self
    }

    /// Checks plugins and tools against `catalog`.
    #[must_use]
    pub fn catalog(mut self, catalog: &'a dyn Catalog) -> Self {
        self.catalog = Some(catalog);
        self
    }

    /// Reads `text` and checks the graph's rules.
    pub fn read(&self, text: &str) -> Result<Graph, Diagnostics> {
        read::read(text, self.catalog).map_err(|mut diagnostics| {
            for d in &mut diagnostics.0 {
                d.file = self.file.map(str::to_owned);
            }
            diagnostics
        })
    }

    /// Reads the file at `path` (named in diagnostics as given, unless
    /// [`Reader::file`] set a name).
    pub fn read_file(&self, path: &Path) -> Result<Graph, Diagnostics> {
        let name = path.display().to_string();
        let reader = Reader {
            file: Some(self.file.unwrap_or(&name)),
            catalog: self.catalog,
        };
        match std::fs::metadata(path) {
            Ok(meta) if meta.len() > MAX_BYTES as u64 => {
                return Err(reader.one(format!(
                    "the file is {} bytes long; the limit is {MAX_BYTES} (4 MiB)",
                    meta.len()
                )));
            }
            _ => {}
        }
        match std::fs::read_to_string(path) {
            Ok(text) => reader.read(&text),
            Err(err) => Err(reader.one(format!("cannot read the file: {err}"))),
        }
    }

    fn one(&self, message: String) -> Diagnostics {
        Diagnostics(vec![Diagnostic {
            file: self.file.map(str::to_owned),
            line: 0,
            column: 0,
            pointer: String::new(),
            message,
        }])
    }
}
