//! YAML (and so JSON, its flow syntax) read into a tree that keeps where
//! each value, key and collection starts in the text.
//!
//! The tree is built from `yaml-rust2`'s marked events. Scalars are typed by
//! the YAML 1.2 core schema (`null`, `true`, `12`, `1.5`, the rest strings);
//! quoted scalars are always strings. Duplicate keys, keys that are not
//! scalars, anchors and aliases, a second document, more than
//! [`MAX_BYTES`] of text and nesting deeper than [`MAX_DEPTH`] are errors.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// The largest document read, in bytes.
pub const MAX_BYTES: usize = 4 * 1024 * 1024;

/// The deepest nesting of lists and mappings read.
pub const MAX_DEPTH: usize = 64;

/// A value with the byte offset where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub(crate) value: Tree,
    /// Byte offset of the value's first character (a quoted scalar's
    /// opening quote, a flow collection's bracket).
    pub(crate) at: usize,
    /// For a scalar whose text appears in the source as is (no escapes,
    /// no folded lines), the byte offset of that text: offsets inside the
    /// string map to offsets in the file.
    pub(crate) raw: Option<usize>,
}

/// The value of a [`Node`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tree {
    Scalar(Value),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

/// A mapping key: always text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Key {
    pub(crate) text: String,
    pub(crate) at: usize,
}

impl Node {
    /// The value as plain JSON, positions dropped.
    pub(crate) fn to_json(&self) -> Value {
        match &self.value {
            Tree::Scalar(v) => v.clone(),
            Tree::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            Tree::Map(entries) => {
                let mut map = Map::new();
                for (key, node) in entries {
                    map.insert(key.text.clone(), node.to_json());
                }
                Value::Object(map)
            }
        }
    }

    /// A kind word with its article, for messages: "a string", "a list".
    pub(crate) fn a_type(&self) -> &'static str {
        match &self.value {
            Tree::Scalar(Value::Null) => "null",
            Tree::Scalar(Value::Bool(_)) => "a boolean",
            Tree::Scalar(Value::Number(_)) => "a number",
            Tree::Scalar(_) => "a string",
            Tree::Seq(_) => "a list",
            Tree::Map(_) => "a mapping",
        }
    }
}

/// A problem with the text itself, at a byte offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct YamlError {
    pub(crate) at: usize,
    pub(crate) message: String,
}

/// Line starts of a text: turns byte offsets into lines and columns, and
/// `yaml-rust2`'s markers (which count characters) into byte offsets.
#[derive(Debug, Clone)]
pub(crate) struct Lines<'a> {
    src: &'a str,
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    pub(crate) fn new(src: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(src.match_indices('\n').map(|(i, _)| i + 1));
        Self { src, starts }
    }

    /// Line and column, both from 1, the column in characters.
    pub(crate) fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.src.len());
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        let start = self.starts.get(line - 1).copied().unwrap_or(0);
        let column = 1 + self.src.get(start..offset).map_or(0, |s| s.chars().count());
        (line, column)
    }

    /// The byte offset of a marker (line from 1, column from 0 in
    /// characters), found from its line's start.
    fn offset(&self, line: usize, col: usize) -> usize {
        let Some(&start) = self.starts.get(line.saturating_sub(1)) else {
            return self.src.len();
        };
        let rest = self.src.get(start..).unwrap_or("");
        start + rest.char_indices().nth(col).map_or(rest.len(), |(i, _)| i)
    }
}

/// Reads `src` into a tree. The tree is `None` only when the text is not
/// YAML at all (one error then); otherwise every problem found is
/// returned beside the tree, which keeps the first of duplicate keys.
pub(crate) fn parse(src: &str) -> (Option<Node>, Vec<YamlError>) {
    if src.len() > MAX_BYTES {
        let error = YamlError {
            at: 0,
            message: format!(
                "the document is {} bytes long; the limit is {MAX_BYTES} (4 MiB)",
                src.len()
            ),
        };
        return (None, vec![error]);
    }
    let lines = Lines::new(src);
    let spaced;
    let builder = match load(src, &lines) {
        Ok(builder) => builder,
        // YAML does not take a tab where JSON takes any whitespace (before
        // a line's first token): a JSON text is read again with its tabs
        // as spaces, which keeps every offset, line and column.
        Err(_) if looks_like_json(src) && src.contains('\t') => {
            spaced = tabs_to_spaces(src);
            match load(&spaced, &lines) {
                Ok(builder) => builder,
                Err(error) => return (None, vec![error]),
            }
        }
        Err(error) => return (None, vec![error]),
    };
    let Builder {
        root,
        mut errors,
        fatal,
        ..
    } = builder;
    let root = if fatal { None } else { root };
    if root.is_none() && errors.is_empty() {
        errors.push(YamlError {
            at: 0,
            message: "the document is empty".to_owned(),
        });
    }
    (root, errors)
}

/// Builds the tree of `text` (`src` itself, or with its tabs as spaces).
fn load<'a>(text: &'a str, lines: &'a Lines<'a>) -> Result<Builder<'a>, YamlError> {
    let mut builder = Builder {
        src: text,
        lines,
        cursor: Cursor::default(),
        stack: Vec::new(),
        root: None,
        errors: Vec::new(),
        skipping: 0,
        documents: 0,
        fatal: false,
    };
    let mut parser = Parser::new_from_str(text);
    match parser.load(&mut builder, true) {
        Ok(()) => Ok(builder),
        Err(err) => Err(YamlError {
            at: lines.offset(err.marker().line(), err.marker().col()),
            message: format!("not valid YAML: {}", err.info()),
        }),
    }
}

/// Whether the text's first character is `{` or `[`: JSON, or YAML
/// written as JSON.
fn looks_like_json(src: &str) -> bool {
    src.trim_start_matches('\u{feff}')
        .trim_start()
        .starts_with(['{', '['])
}

/// Tabs outside double-quoted strings become spaces; offsets, lines and
/// columns stay the same. (A tab inside a JSON string is not valid JSON;
/// it is kept.)
fn tabs_to_spaces(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in src.chars() {
        match c {
            '\t' if !in_string => out.push(' '),
            '"' if !escaped => {
                in_string = !in_string;
                out.push(c);
            }
            _ => out.push(c),
        }
        escaped = in_string && c == '\\' && !escaped;
    }
    out
}

enum Frame {
    Seq {
        at: usize,
        items: Vec<Node>,
    },
    Map {
        at: usize,
        entries: Vec<(Key, Node)>,
        /// Where each key is, to find duplicates.
        seen: HashMap<String, usize>,
        key: Option<Option<Key>>,
    },
}

/// Turns a marker's character index into a byte offset by walking forward
/// from the last one: markers come in order, so a document on one long
/// line (minified JSON) is walked once, not once per value.
#[derive(Default)]
struct Cursor {
    chars: usize,
    bytes: usize,
}

struct Builder<'a> {
    src: &'a str,
    lines: &'a Lines<'a>,
    cursor: Cursor,
    stack: Vec<Frame>,
    root: Option<Node>,
    errors: Vec<YamlError>,
    /// Open collections inside one that is too deep (ignored).
    skipping: usize,
    documents: usize,
    /// Whether the tree is unfit to read on (a value left out); duplicate
    /// keys are not fatal: the first is kept.
    fatal: bool,
}

impl Builder<'_> {
    fn offset(&mut self, mark: &Marker) -> usize {
        let target = mark.index();
        if target < self.cursor.chars {
            // Back to the start of the marker's line.
            self.cursor = Cursor {
                chars: target.saturating_sub(mark.col()),
                bytes: self.lines.offset(mark.line(), 0),
            };
        }
        let rest = self.src.get(self.cursor.bytes..).unwrap_or("");
        let step = target - self.cursor.chars;
        let bytes = rest.char_indices().nth(step).map_or(rest.len(), |(i, _)| i);
        self.cursor = Cursor {
            chars: target,
            bytes: self.cursor.bytes + bytes,
        };
        self.cursor.bytes
    }

    fn fatal(&mut self, at: usize, message: impl Into<String>) {
        self.fatal = true;
        self.error(at, message);
    }

    fn error(&mut self, at: usize, message: impl Into<String>) {
        self.errors.push(YamlError {
            at,
            message: message.into(),
        });
    }

    fn anchor(&mut self, anchor: usize, at: usize) {
        if anchor != 0 {
            self.fatal(
                at,
                "anchors (`&name`) and aliases (`*name`) are not supported; write the value out",
            );
        }
    }

    fn open(&mut self, frame: Frame, at: usize) {
        if self.skipping > 0 {
            self.skipping += 1;
        } else if self.stack.len() >= MAX_DEPTH {
            self.fatal(
                at,
                format!("the document nests deeper than {MAX_DEPTH} levels"),
            );
            self.skipping = 1;
        } else {
            self.stack.push(frame);
        }
    }

    fn close(&mut self, at: usize) {
        if self.skipping > 0 {
            self.skipping -= 1;
            if self.skipping == 0 {
                self.push(Node {
                    value: Tree::Scalar(Value::Null),
                    at,
                    raw: None,
                });
            }
            return;
        }
        let node = match self.stack.pop() {
            Some(Frame::Seq { at, items }) => Node {
                value: Tree::Seq(items),
                at,
                raw: None,
            },
            Some(Frame::Map { at, entries, .. }) => Node {
                value: Tree::Map(entries),
                at,
                raw: None,
            },
            None => return,
        };
        self.push(node);
    }

    fn push(&mut self, node: Node) {
        let Some(top) = self.stack.last_mut() else {
            self.root.get_or_insert(node);
            return;
        };
        match top {
            Frame::Seq { items, .. } => items.push(node),
            Frame::Map {
                entries, seen, key, ..
            } => match key.take() {
                None => {
                    let text = match &node.value {
                        Tree::Scalar(Value::String(s)) => Some(s.clone()),
                        Tree::Scalar(Value::Null) => Some(String::new()),
                        Tree::Scalar(v) => Some(v.to_string()),
                        Tree::Seq(_) | Tree::Map(_) => None,
                    };
                    let is_none = text.is_none();
                    *key = Some(text.map(|text| Key { text, at: node.at }));
                    if is_none {
                        self.error(node.at, "a key must be a name, not a list or a mapping");
                    }
                }
                Some(None) => {}
                Some(Some(k)) => {
                    if let Some(&first) = seen.get(&k.text) {
                        let (line, column) = self.lines.position(first);
                        let message =
                            format!("duplicate key `{}` (first at {line}:{column})", k.text);
                        self.error(k.at, message);
                    } else {
                        seen.insert(k.text.clone(), k.at);
                        entries.push((k, node));
                    }
                }
            },
        }
    }

    fn scalar(&mut self, text: String, style: TScalarStyle, at: usize, tag_str: bool) -> Node {
        let (value, raw) = match style {
            TScalarStyle::Plain => {
                let value = if tag_str {
                    Value::String(text)
                } else {
                    resolve_plain(text)
                };
                let raw = value.as_str().and_then(|s| verbatim(self.src, at, s));
                (value, raw)
            }
            TScalarStyle::SingleQuoted | TScalarStyle::DoubleQuoted => {
                let raw = verbatim(self.src, at + 1, &text);
                (Value::String(text), raw)
            }
            TScalarStyle::Literal | TScalarStyle::Folded => (Value::String(text), None),
        };
        Node {
            value: Tree::Scalar(value),
            at,
            raw,
        }
    }
}

/// `at` when `text` is found there in the source as is.
fn verbatim(src: &str, at: usize, text: &str) -> Option<usize> {
    src.get(at..)
        .is_some_and(|rest| rest.starts_with(text))
        .then_some(at)
}

impl MarkedEventReceiver for Builder<'_> {
    fn on_event(&mut self, event: Event, mark: Marker) {
        let at = self.offset(&mark);
        match event {
            Event::DocumentStart => {
                self.documents += 1;
                if self.documents == 2 {
                    self.fatal(
                        at,
                        "a graph file holds one YAML document; this is a second one",
                    );
                }
            }
            _ if self.documents > 1 => {}
            Event::Alias(_) => {
                self.fatal(
                    at,
                    "anchors (`&name`) and aliases (`*name`) are not supported; write the value out",
                );
                if self.skipping == 0 {
                    self.push(Node {
                        value: Tree::Scalar(Value::Null),
                        at,
                        raw: None,
                    });
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                self.anchor(anchor, at);
                if self.skipping == 0 {
                    let tag_str = tag.is_some_and(|t| t.suffix == "str");
                    let node = self.scalar(text, style, at, tag_str);
                    self.push(node);
                }
            }
            Event::SequenceStart(anchor, _) => {
                self.anchor(anchor, at);
                let frame = Frame::Seq {
                    at,
                    items: Vec::new(),
                };
                self.open(frame, at);
            }
            Event::MappingStart(anchor, _) => {
                self.anchor(anchor, at);
                let frame = Frame::Map {
                    at,
                    entries: Vec::new(),
                    seen: HashMap::new(),
                    key: None,
                };
                self.open(frame, at);
            }
            Event::SequenceEnd | Event::MappingEnd => self.close(at),
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
    }
}

/// A plain scalar typed by the YAML 1.2 core schema.
fn resolve_plain(text: String) -> Value {
    match text.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Some(n) = number(&text) {
        return Value::Number(n);
    }
    Value::String(text)
}

fn number(text: &str) -> Option<Number> {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return None;
    }
    if let Some(hex) = text.strip_prefix("0x") {
        return u64::from_str_radix(hex, 16).ok().map(Number::from);
    }
    if let Some(oct) = text.strip_prefix("0o") {
        return u64::from_str_radix(oct, 8).ok().map(Number::from);
    }
    if digits.bytes().all(|b| b.is_ascii_digit()) {
        let unsigned = text.strip_prefix('+').unwrap_or(text);
        if let Ok(i) = unsigned.parse::<i64>() {
            return Some(Number::from(i));
        }
        if let Ok(u) = unsigned.parse::<u64>() {
            return Some(Number::from(u));
        }
    }
    // [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
    let float_chars = digits
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'));
    if !float_chars || digits == "." {
        return None;
    }
    text.parse::<f64>().ok().and_then(Number::from_f64)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use serde_json::json;

    use super::*;

    fn tree(src: &str) -> Node {
        let (node, errors) = parse(src);
        assert!(errors.is_empty(), "{errors:?}");
        node.unwrap()
    }

    fn map(node: &Node) -> &[(Key, Node)] {
        let Tree::Map(entries) = &node.value else {
            panic!("not a map: {node:?}")
        };
        entries
    }

    #[test]
    fn scalars_are_typed_by_the_core_schema() {
        let node = tree(
            "a: 1\nb: -2.5\nc: true\nd: ~\ne: '1'\nf: x y\ng: 1e3\nh: 0x1f\ni: .5\nj: 1.2.3\n",
        );
        assert_eq!(
            node.to_json(),
            json!({"a": 1, "b": -2.5, "c": true, "d": null, "e": "1", "f": "x y",
                   "g": 1000.0, "h": 31, "i": 0.5, "j": "1.2.3"})
        );
    }

    #[test]
    fn positions_are_byte_offsets_of_keys_and_values() {
        let src = "né: é\nkey:\n  inner: \"quoted\"\n  plain: text here\n";
        let node = tree(src);
        let entries = map(&node);
        assert_eq!(entries[0].0.at, 0);
        assert_eq!(entries[0].1.at, src.find("é\n").unwrap());
        let inner = map(&entries[1].1);
        assert_eq!(inner[0].0.at, src.find("inner").unwrap());
        assert_eq!(inner[0].1.at, src.find("\"quoted").unwrap());
        assert_eq!(inner[0].1.raw, Some(src.find("quoted").unwrap()));
        assert_eq!(inner[1].1.raw, Some(src.find("text here").unwrap()));
        let lines = Lines::new(src);
        assert_eq!(lines.position(inner[1].1.at), (4, 10));
        assert_eq!(lines.position(entries[0].1.at), (1, 5));
    }

    #[test]
    fn escaped_and_block_scalars_have_no_verbatim_text() {
        let node = tree("a: \"x\\ny\"\nb: 'it''s'\nc: |\n  block\n");
        let entries = map(&node);
        assert!(entries.iter().all(|(_, n)| n.raw.is_none()), "{entries:?}");
    }

    #[test]
    fn duplicate_keys_anchors_and_depth_are_errors() {
        let (_, errors) = parse("a: 1\nb: 2\na: 3\n");
        assert_eq!(errors[0].message, "duplicate key `a` (first at 1:1)");
        assert_eq!(errors[0].at, 10);
        let (_, errors) = parse("a: &x 1\nb: *x\n");
        assert_eq!(errors.len(), 2, "{errors:?}");
        let deep = format!("{}{}", "[".repeat(70), "]".repeat(70));
        let (_, errors) = parse(&deep);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(
            errors[0].message,
            "the document nests deeper than 64 levels"
        );
        let (_, errors) = parse("a: 1\n---\nb: 2\n");
        assert_eq!(errors.len(), 1, "{errors:?}");
    }

    #[test]
    fn positions_hold_on_one_long_line_and_with_crlf() {
        let src = "{\"é\": [1, \"ü\", {\"k\": \"v\"}], \"n\": null}";
        let node = tree(src);
        let entries = map(&node);
        assert_eq!(entries[1].0.at, src.find("\"n\"").unwrap());
        let Tree::Seq(items) = &entries[0].1.value else {
            panic!()
        };
        assert_eq!(items[1].at, src.find("\"ü").unwrap());
        assert_eq!(items[2].at, src.find("{\"k").unwrap());
        let src = "a: 1\r\nbé: x\r\nc: [y]\r\n";
        let node = tree(src);
        let entries = map(&node);
        assert_eq!(entries[1].1.at, src.find("x\r").unwrap());
        assert_eq!(entries[2].0.at, src.find("c:").unwrap());
        assert_eq!(Lines::new(src).position(entries[2].0.at), (3, 1));
    }

    #[test]
    fn json_with_tabs_is_read() {
        let src = "{\n\t\"a\": [1,\t2],\n\t\"b\":\"x\\ty\",\n\t\"c\": {\"d\": null}\n}\n";
        let node = tree(src);
        assert_eq!(
            node.to_json(),
            json!({"a": [1, 2], "b": "x\ty", "c": {"d": null}})
        );
        assert_eq!(Lines::new(src).position(map(&node)[1].0.at), (3, 2));
    }

    #[test]
    fn yaml_with_tabs_in_flow_strings_is_read_as_is() {
        let src = "{ a: 'x\ty', b: \"\t\" }";
        assert_eq!(tree(src).to_json(), json!({"a": "x\ty", "b": "\t"}));
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let (node, errors) = parse("a: [1, 2\nb: 3\n");
        assert!(node.is_none());
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].message.starts_with("not valid YAML: "),
            "{errors:?}"
        );
    }
}
