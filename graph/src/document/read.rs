//! The document tree read into the typed graph, every field checked, with
//! the position of each value kept for the problems found later.

use std::collections::BTreeMap;

use serde_json::Value;

use super::yaml::{self, Key, Lines, Node, Tree};
use super::{Diagnostic, Diagnostics};
use crate::model::{
    ConditionSpec, Edge, Graph, InterruptSpec, MapSpec, Node as GraphNode, NodeKind, OnError,
    Output, Reducer, Retry, RetryOnResume, Route, StateKey,
};
use crate::template::push_pointer;
use crate::validate::{self, Catalog};

/// The kinds of node, in the order messages list them.
pub(crate) const KINDS: [&str; 7] = [
    "tool",
    "agent",
    "subgraph",
    "map",
    "condition",
    "interrupt",
    "planner",
];

const NODE_FIELDS: [&str; 7] = [
    "input",
    "output",
    "timeout",
    "retry",
    "on-error",
    "retry-on-resume",
    "description",
];

const GRAPH_FIELDS: [&str; 8] = [
    "id",
    "description",
    "state",
    "nodes",
    "edges",
    "graphs",
    "agents",
    "output",
];

/// The default `max-concurrency` of a map node.
pub(crate) const DEFAULT_MAX_CONCURRENCY: u32 = 4;

/// Where a value is: its key (in a mapping), its start, and for a scalar
/// whose text is in the file as is, where that text starts.
#[derive(Debug, Clone, Copy)]
struct Span {
    key: Option<usize>,
    at: usize,
    raw: Option<usize>,
    scalar: bool,
}

pub(super) fn read(text: &str, catalog: Option<&dyn Catalog>) -> Result<Graph, Diagnostics> {
    let lines = Lines::new(text);
    let (tree, yaml_errors) = yaml::parse(text);
    let mut reader = Reading::default();
    for error in yaml_errors {
        reader.errors.push((error.at, String::new(), error.message));
    }
    let graph = tree.and_then(|tree| reader.graph(&tree, ""));
    if let Some(graph) = &graph {
        for problem in validate::validate_with(graph, catalog) {
            if reader.is_broken(&problem.pointer) {
                continue;
            }
            let at = reader.place(&problem.pointer, problem.offset);
            reader.errors.push((at, problem.pointer, problem.message));
        }
    }
    match graph {
        Some(graph) if reader.errors.is_empty() => Ok(graph),
        _ => {
            let mut errors = reader.errors;
            errors.sort();
            errors.dedup();
            Err(Diagnostics(
                errors
                    .into_iter()
                    .map(|(at, pointer, message)| {
                        let (line, column) = lines.position(at);
                        Diagnostic {
                            file: None,
                            line,
                            column,
                            pointer,
                            message,
                        }
                    })
                    .collect(),
            ))
        }
    }
}

#[derive(Default)]
struct Reading {
    errors: Vec<(usize, String, String)>,
    spans: BTreeMap<String, Span>,
    /// Values that could not be read: the graph holds a stand-in, and
    /// the rules' problems under these pointers are not reported.
    broken: Vec<String>,
    /// The agent definitions of the graph being read, by name, for the
    /// planners that name them.
    agents: BTreeMap<String, Value>,
}

/// A mapping's entries by name.
struct Fields<'t> {
    entries: Vec<(&'t Key, &'t Node)>,
}

impl<'t> Fields<'t> {
    fn get(&self, name: &str) -> Option<&'t Node> {
        self.entries
            .iter()
            .find(|(k, _)| k.text == name)
            .map(|(_, n)| *n)
    }

    fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

fn child(pointer: &str, key: &str) -> String {
    let mut out = pointer.to_owned();
    push_pointer(&mut out, key);
    out
}

fn names(list: &[&str]) -> String {
    list.join(", ")
}

impl Reading {
    fn error(&mut self, at: usize, pointer: &str, message: impl Into<String>) {
        self.errors.push((at, pointer.to_owned(), message.into()));
    }

    fn broke(&mut self, pointer: &str) {
        self.broken.push(pointer.to_owned());
    }

    fn is_broken(&self, pointer: &str) -> bool {
        self.broken.iter().any(|b| {
            pointer == b
                || pointer
                    .strip_prefix(b.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        })
    }

    fn span(&mut self, pointer: &str, key: Option<usize>, node: &Node) {
        let scalar = matches!(node.value, Tree::Scalar(_));
        self.spans.insert(
            pointer.to_owned(),
            Span {
                key,
                at: node.at,
                raw: node.raw,
                scalar,
            },
        );
    }

    /// A span at `offset` inside the raw text of `node`, for a part of a
    /// scalar (`web` in `web/fetch`).
    fn part_span(&mut self, pointer: &str, node: &Node, offset: usize) {
        let at = node.raw.map_or(node.at, |raw| raw + offset);
        self.spans.insert(
            pointer.to_owned(),
            Span {
                key: None,
                at,
                raw: node.raw.map(|raw| raw + offset),
                scalar: true,
            },
        );
    }

    /// Spans for every value inside `node` (a free-form value: an input,
    /// a schema), so problems found in it later have positions.
    fn span_tree(&mut self, pointer: &str, key: Option<usize>, node: &Node) {
        self.span(pointer, key, node);
        match &node.value {
            Tree::Scalar(_) => {}
            Tree::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.span_tree(&child(pointer, &i.to_string()), None, item);
                }
            }
            Tree::Map(entries) => {
                for (k, v) in entries {
                    self.span_tree(&child(pointer, &k.text), Some(k.at), v);
                }
            }
        }
    }

    /// Where in the file the problem at `pointer` (and `offset` inside its
    /// string) is: the nearest value the pointer names.
    fn place(&self, pointer: &str, offset: Option<usize>) -> usize {
        let mut pointer = pointer;
        loop {
            if let Some(span) = self.spans.get(pointer) {
                return match (offset, span.raw) {
                    (Some(offset), Some(raw)) => raw + offset,
                    _ if span.scalar => span.at,
                    _ => span.key.unwrap_or(span.at),
                };
            }
            match pointer.rfind('/') {
                Some(i) => pointer = &pointer[..i],
                None => return 0,
            }
        }
    }

    /// The entries of a mapping, every key checked against `allowed`.
    fn fields<'t>(
        &mut self,
        node: &'t Node,
        pointer: &str,
        what: &str,
        allowed: &[&str],
    ) -> Option<Fields<'t>> {
        let Tree::Map(entries) = &node.value else {
            self.error(
                node.at,
                pointer,
                format!("{what} is a mapping, not {}", node.a_type()),
            );
            return None;
        };
        let mut fields = Fields {
            entries: Vec::new(),
        };
        for (key, value) in entries {
            let here = child(pointer, &key.text);
            if allowed.contains(&key.text.as_str()) {
                self.span(&here, Some(key.at), value);
                fields.entries.push((key, value));
            } else {
                self.error(
                    key.at,
                    &here,
                    format!(
                        "unknown field `{}` in {what}; the fields are: {}",
                        key.text,
                        names(allowed)
                    ),
                );
            }
        }
        Some(fields)
    }

    fn string(&mut self, node: &Node, pointer: &str, what: &str) -> Option<String> {
        match &node.value {
            Tree::Scalar(Value::String(s)) => Some(s.clone()),
            _ => {
                self.error(
                    node.at,
                    pointer,
                    format!("{what} is a string, not {}", node.a_type()),
                );
                None
            }
        }
    }

    fn whole(&mut self, node: &Node, pointer: &str, what: &str) -> Option<u32> {
        let n = match &node.value {
            Tree::Scalar(Value::Number(n)) => n.as_u64(),
            _ => None,
        };
        let n = n.and_then(|n| u32::try_from(n).ok());
        if n.is_none() {
            self.error(
                node.at,
                pointer,
                format!(
                    "{what} is a whole number from 0 to {}, not {}",
                    u32::MAX,
                    describe(node)
                ),
            );
        }
        n
    }

    fn duration(&mut self, node: &Node, pointer: &str, what: &str) -> Option<u64> {
        let text = self.string(node, pointer, what)?;
        match humantime::parse_duration(&text) {
            Ok(d) => Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            Err(err) => {
                self.error(
                    node.at,
                    pointer,
                    format!("`{text}` is not a duration ({err}); write e.g. `30s`, `500ms`, `2m`"),
                );
                None
            }
        }
    }

    fn graph(&mut self, node: &Node, pointer: &str) -> Option<Graph> {
        let what = if pointer.is_empty() {
            "a graph document".to_owned()
        } else {
            "a graph".to_owned()
        };
        let fields = self.fields(node, pointer, &what, &GRAPH_FIELDS)?;
        let text = |r: &mut Self, name: &str| {
            fields
                .get(name)
                .and_then(|n| r.string(n, &child(pointer, name), &format!("`{name}`")))
        };
        let id = text(self, "id");
        let description = text(self, "description");
        let mut graph = Graph {
            id,
            description,
            state: BTreeMap::new(),
            nodes: BTreeMap::new(),
            edges: Vec::new(),
            graphs: BTreeMap::new(),
            agents: BTreeMap::new(),
            output: Vec::new(),
        };
        // This graph's definitions, for its planners (a subgraph has its own).
        let mut agents = BTreeMap::new();
        if let Some(list) = fields.get("agents") {
            let here = child(pointer, "agents");
            for (key, value) in self.entries(list, &here, "`agents`") {
                let at = child(&here, &key.text);
                self.span_tree(&at, Some(key.at), value);
                // The name defaults to the key.
                let mut json = value.to_json();
                if let Value::Object(fields) = &mut json {
                    fields
                        .entry("name")
                        .or_insert_with(|| Value::String(key.text.clone()));
                }
                match serde_json::from_value(json.clone()) {
                    Ok(definition) => {
                        graph.agents.insert(key.text.clone(), definition);
                        agents.insert(key.text.clone(), json);
                    }
                    Err(e) => self.error(value.at, &at, format!("agent `{}`: {e}", key.text)),
                }
            }
        }
        let outer = std::mem::replace(&mut self.agents, agents);
        if let Some(state) = fields.get("state") {
            let here = child(pointer, "state");
            for (key, value) in self.entries(state, &here, "`state`") {
                let at = child(&here, &key.text);
                let decl = self.state_key(value, &at).unwrap_or_else(|| {
                    self.broke(&at);
                    default_state_key()
                });
                graph.state.insert(key.text.clone(), decl);
            }
        }
        match fields.get("nodes") {
            None => {
                let at = node.at;
                self.error(at, &child(pointer, "nodes"), "a graph needs `nodes`");
                self.broke(&child(pointer, "nodes"));
            }
            Some(nodes) => {
                let here = child(pointer, "nodes");
                for (key, value) in self.entries(nodes, &here, "`nodes`") {
                    let at = child(&here, &key.text);
                    let node = self.node(value, &at, &key.text).unwrap_or_else(|| {
                        self.broke(&at);
                        stand_in_node()
                    });
                    graph.nodes.insert(key.text.clone(), node);
                }
            }
        }
        if let Some(edges) = fields.get("edges") {
            let here = child(pointer, "edges");
            for (i, item) in self.items(edges, &here, "`edges`").iter().enumerate() {
                let at = child(&here, &i.to_string());
                if let Some(edge) = self.edge(item, &at) {
                    graph.edges.push(edge);
                } else {
                    self.broke(&at);
                    // Keep the indices of the edges after it.
                    graph.edges.push(Edge {
                        from: String::new(),
                        to: String::new(),
                        when: None,
                        max_iterations: Some(1),
                    });
                }
            }
        }
        if let Some(graphs) = fields.get("graphs") {
            let here = child(pointer, "graphs");
            for (key, value) in self.entries(graphs, &here, "`graphs`") {
                let at = child(&here, &key.text);
                let sub = self.graph(value, &at).unwrap_or_else(|| {
                    self.broke(&at);
                    stand_in_graph()
                });
                graph.graphs.insert(key.text.clone(), sub);
            }
        }
        if let Some(output) = fields.get("output") {
            let here = child(pointer, "output");
            for (i, item) in self.items(output, &here, "`output`").iter().enumerate() {
                let at = child(&here, &i.to_string());
                if let Some(key) = self.string(item, &at, "a state key") {
                    graph.output.push(key);
                }
            }
        }
        self.agents = outer;
        Some(graph)
    }

    /// A mapping's entries, each with its span.
    fn entries<'t>(
        &mut self,
        node: &'t Node,
        pointer: &str,
        what: &str,
    ) -> Vec<(&'t Key, &'t Node)> {
        match &node.value {
            Tree::Map(entries) => {
                for (k, v) in entries {
                    self.span(&child(pointer, &k.text), Some(k.at), v);
                }
                entries.iter().map(|(k, v)| (k, v)).collect()
            }
            Tree::Scalar(Value::Null) => Vec::new(),
            _ => {
                self.error(
                    node.at,
                    pointer,
                    format!("{what} is a mapping, not {}", node.a_type()),
                );
                Vec::new()
            }
        }
    }

    /// A list's items, each with its span.
    fn items<'t>(&mut self, node: &'t Node, pointer: &str, what: &str) -> Vec<&'t Node> {
        match &node.value {
            Tree::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.span(&child(pointer, &i.to_string()), None, item);
                }
                items.iter().collect()
            }
            Tree::Scalar(Value::Null) => Vec::new(),
            _ => {
                self.error(
                    node.at,
                    pointer,
                    format!("{what} is a list, not {}", node.a_type()),
                );
                Vec::new()
            }
        }
    }

    fn state_key(&mut self, node: &Node, pointer: &str) -> Option<StateKey> {
        if matches!(node.value, Tree::Scalar(Value::Null)) {
            return Some(default_state_key());
        }
        let fields = self.fields(
            node,
            pointer,
            "a state key",
            &["schema", "reducer", "default", "description"],
        )?;
        let mut ok = true;
        let mut decl = default_state_key();
        if let Some(schema) = fields.get("schema") {
            self.span_tree(&child(pointer, "schema"), None, schema);
            decl.schema = Some(schema.to_json());
        }
        if let Some(default) = fields.get("default") {
            self.span_tree(&child(pointer, "default"), None, default);
            decl.default = Some(default.to_json());
        }
        if let Some(reducer) = fields.get("reducer") {
            let here = child(pointer, "reducer");
            match self.string(reducer, &here, "`reducer`").as_deref() {
                Some("replace") => decl.reducer = Reducer::Replace,
                Some("append") => decl.reducer = Reducer::Append,
                Some("merge") => decl.reducer = Reducer::Merge,
                Some("add") => decl.reducer = Reducer::Add,
                Some(other) => {
                    self.error(
                        reducer.at,
                        &here,
                        format!(
                            "unknown reducer `{other}`; the reducers are: replace, append, merge, add"
                        ),
                    );
                    ok = false;
                }
                None => ok = false,
            }
        }
        if let Some(d) = fields.get("description") {
            decl.description = self.string(d, &child(pointer, "description"), "`description`");
        }
        ok.then_some(decl)
    }

    fn node(&mut self, node: &Node, pointer: &str, id: &str) -> Option<GraphNode> {
        let what = format!("node `{id}`");
        let Tree::Map(entries) = &node.value else {
            self.error(
                node.at,
                pointer,
                format!("{what} is a mapping, not {}", node.a_type()),
            );
            return None;
        };
        let kinds: Vec<&Key> = entries
            .iter()
            .map(|(k, _)| k)
            .filter(|k| KINDS.contains(&k.text.as_str()))
            .collect();
        let unknown: Vec<&Key> = entries
            .iter()
            .map(|(k, _)| k)
            .filter(|k| {
                !KINDS.contains(&k.text.as_str()) && !NODE_FIELDS.contains(&k.text.as_str())
            })
            .collect();
        let one_of = format!("a node has exactly one of {}", names(&KINDS));
        let mut ok = true;
        if kinds.is_empty() {
            ok = false;
            match unknown.as_slice() {
                [guess] => {
                    self.error(
                        guess.at,
                        &child(pointer, &guess.text),
                        format!("unknown node kind `{}`; {one_of}", guess.text),
                    );
                }
                _ => {
                    let at = node.at;
                    self.error(at, pointer, format!("{what} has no kind; {one_of}"));
                }
            }
        } else if let [first, second, ..] = kinds.as_slice() {
            ok = false;
            self.error(
                second.at,
                &child(pointer, &second.text),
                format!(
                    "{what} has two kinds, `{}` and `{}`; {one_of}",
                    first.text, second.text
                ),
            );
        }
        let mut allowed: Vec<&str> = KINDS.to_vec();
        allowed.extend(NODE_FIELDS);
        if !(kinds.is_empty() && unknown.len() == 1) {
            for key in &unknown {
                self.error(
                    key.at,
                    &child(pointer, &key.text),
                    format!(
                        "unknown field `{}` in {what}; the fields are: {}",
                        key.text,
                        names(&allowed)
                    ),
                );
            }
        }
        let fields = Fields {
            entries: entries
                .iter()
                .filter(|(k, _)| allowed.contains(&k.text.as_str()))
                .map(|(k, v)| (k, v))
                .collect(),
        };
        for (key, value) in &fields.entries {
            self.span(&child(pointer, &key.text), Some(key.at), value);
        }
        let kind = match kinds.first() {
            Some(key) if ok => {
                let value = fields.get(&key.text)?;
                self.kind(&key.text, value, &child(pointer, &key.text))
            }
            _ => None,
        };
        let mut graph_node = stand_in_node();
        if let Some(input) = fields.get("input") {
            self.span_tree(&child(pointer, "input"), None, input);
            graph_node.input = Some(input.to_json());
        }
        if let Some(output) = fields.get("output") {
            graph_node.output = self.output(output, &child(pointer, "output"));
        }
        if let Some(timeout) = fields.get("timeout") {
            graph_node.timeout_ms = self.duration(timeout, &child(pointer, "timeout"), "`timeout`");
        }
        if let Some(retry) = fields.get("retry") {
            let here = child(pointer, "retry");
            graph_node.retry = self.retry(retry, &here).unwrap_or_else(|| {
                self.broke(&here);
                Retry::default()
            });
        }
        if let Some(on_error) = fields.get("on-error") {
            let here = child(pointer, "on-error");
            if let Some(target) = self.string(on_error, &here, "`on-error`") {
                graph_node.on_error = if target == "fail" {
                    OnError::Fail
                } else {
                    OnError::Route(target)
                };
            }
        }
        if let Some(resume) = fields.get("retry-on-resume") {
            let here = child(pointer, "retry-on-resume");
            match self.string(resume, &here, "`retry-on-resume`").as_deref() {
                Some("always") => graph_node.retry_on_resume = RetryOnResume::Always,
                Some("never") => graph_node.retry_on_resume = RetryOnResume::Never,
                Some(other) => self.error(
                    resume.at,
                    &here,
                    format!("`retry-on-resume` is `always` or `never`, not `{other}`"),
                ),
                None => {}
            }
        }
        if let Some(d) = fields.get("description") {
            graph_node.description =
                self.string(d, &child(pointer, "description"), "`description`");
        }
        match kind {
            Some(kind) => {
                graph_node.kind = kind;
                Some(graph_node)
            }
            None => {
                // The node's other fields were read and checked; the rules
                // that depend on its kind would only guess.
                self.broke(pointer);
                Some(graph_node)
            }
        }
    }

    fn kind(&mut self, name: &str, node: &Node, pointer: &str) -> Option<NodeKind> {
        match name {
            "tool" => self.tool(node, pointer),
            "agent" => Some(NodeKind::Agent {
                plugin: self.string(node, pointer, "`agent` (a plugin id)")?,
            }),
            "subgraph" => Some(NodeKind::Subgraph {
                graph: self.string(node, pointer, "`subgraph` (a graph id in `graphs`)")?,
            }),
            "map" => self.map(node, pointer),
            "condition" => self.condition(node, pointer),
            "interrupt" => self.interrupt(node, pointer),
            "planner" => self.planner(node, pointer),
            _ => None,
        }
    }

    fn tool(&mut self, node: &Node, pointer: &str) -> Option<NodeKind> {
        if let Tree::Map(_) = node.value {
            let fields = self.fields(node, pointer, "`tool`", &["plugin", "tool"])?;
            let plugin = fields.get("plugin");
            let tool = fields.get("tool");
            let (Some(plugin), Some(tool)) = (plugin, tool) else {
                self.error(
                    node.at,
                    pointer,
                    "`tool` as a mapping has `plugin` and `tool`: { plugin: web, tool: fetch }",
                );
                return None;
            };
            return Some(NodeKind::Tool {
                plugin: self.string(plugin, &child(pointer, "plugin"), "`plugin`")?,
                tool: self.string(tool, &child(pointer, "tool"), "`tool`")?,
            });
        }
        let text = self.string(node, pointer, "`tool` (`plugin/tool`)")?;
        match text.split_once('/') {
            Some((plugin, tool))
                if !plugin.is_empty() && !tool.is_empty() && !tool.contains('/') =>
            {
                self.part_span(&child(pointer, "plugin"), node, 0);
                self.part_span(&child(pointer, "tool"), node, plugin.len() + 1);
                Some(NodeKind::Tool {
                    plugin: plugin.to_owned(),
                    tool: tool.to_owned(),
                })
            }
            _ => {
                self.error(
                    node.at,
                    pointer,
                    format!("`{text}` is not a tool: write `plugin/tool`, e.g. `web/fetch`"),
                );
                None
            }
        }
    }

    fn map(&mut self, node: &Node, pointer: &str) -> Option<NodeKind> {
        let fields = self.fields(
            node,
            pointer,
            "`map`",
            &["over", "max-concurrency", "tool", "agent", "subgraph"],
        )?;
        let per_item: Vec<&str> = ["tool", "agent", "subgraph"]
            .into_iter()
            .filter(|k| fields.has(k))
            .collect();
        let over = match fields.get("over") {
            Some(over) => self.string(over, &child(pointer, "over"), "`over` (an expression)"),
            None => {
                self.error(
                    node.at,
                    pointer,
                    "a map needs `over`: the expression of its list",
                );
                None
            }
        };
        let max_concurrency = match fields.get("max-concurrency") {
            Some(n) => self.whole(n, &child(pointer, "max-concurrency"), "`max-concurrency`"),
            None => Some(DEFAULT_MAX_CONCURRENCY),
        };
        let inner = match per_item.as_slice() {
            [one] => {
                let value = fields.get(one)?;
                self.kind(one, value, &child(pointer, one))
            }
            [] => {
                self.error(
                    node.at,
                    pointer,
                    "a map needs what it runs per item: one of tool, agent, subgraph",
                );
                None
            }
            [first, second, ..] => {
                let at = fields
                    .entries
                    .iter()
                    .find(|(k, _)| k.text == *second)
                    .map_or(node.at, |(k, _)| k.at);
                self.error(
                    at,
                    &child(pointer, second),
                    format!("a map runs one of tool, agent, subgraph per item, not both `{first}` and `{second}`"),
                );
                None
            }
        };
        Some(NodeKind::Map(Box::new(MapSpec {
            over: over?,
            max_concurrency: max_concurrency?,
            node: inner?,
        })))
    }

    fn condition(&mut self, node: &Node, pointer: &str) -> Option<NodeKind> {
        let fields = self.fields(node, pointer, "`condition`", &["routes", "default"])?;
        let mut ok = true;
        let mut routes = Vec::new();
        if let Some(list) = fields.get("routes") {
            let here = child(pointer, "routes");
            for (i, item) in self.items(list, &here, "`routes`").into_iter().enumerate() {
                let at = child(&here, &i.to_string());
                let Some(route) = self.fields(item, &at, "a route", &["when", "to"]) else {
                    ok = false;
                    continue;
                };
                let when = route
                    .get("when")
                    .and_then(|w| self.string(w, &child(&at, "when"), "`when` (an expression)"));
                let to = route
                    .get("to")
                    .and_then(|t| self.string(t, &child(&at, "to"), "`to` (a node id)"));
                for (name, value) in [("when", route.has("when")), ("to", route.has("to"))] {
                    if !value {
                        self.error(item.at, &at, format!("a route needs `{name}`"));
                    }
                }
                match (when, to) {
                    (Some(when), Some(to)) => routes.push(Route { when, to }),
                    _ => ok = false,
                }
            }
        }
        let default = fields
            .get("default")
            .and_then(|d| self.string(d, &child(pointer, "default"), "`default` (a node id)"));
        if fields.has("default") && default.is_none() {
            ok = false;
        }
        ok.then_some(NodeKind::Condition(ConditionSpec { routes, default }))
    }

    fn interrupt(&mut self, node: &Node, pointer: &str) -> Option<NodeKind> {
        let fields = self.fields(node, pointer, "`interrupt`", &["prompt", "schema"])?;
        let Some(prompt) = fields.get("prompt") else {
            self.error(node.at, pointer, "an interrupt needs `prompt`: what to ask");
            return None;
        };
        let prompt = self.string(prompt, &child(pointer, "prompt"), "`prompt`")?;
        let schema = fields.get("schema").map(|s| {
            self.span_tree(&child(pointer, "schema"), None, s);
            s.to_json()
        });
        Some(NodeKind::Interrupt(InterruptSpec { prompt, schema }))
    }

    /// A planner's settings, as the agent crate's type says (validation
    /// checks their rules).
    fn planner(&mut self, node: &Node, pointer: &str) -> Option<NodeKind> {
        if !matches!(node.value, Tree::Map(_)) {
            self.error(
                node.at,
                pointer,
                "`planner` is a mapping: { model: local/smollm2, agents: [...], tools: [...] }",
            );
            return None;
        }
        self.span_tree(pointer, None, node);
        let mut json = node.to_json();
        // Agents named from the graph's `agents`; an unknown name is reported
        // and left out, so the planner's other rules are still checked.
        if let Some(Value::Array(items)) = json.get_mut("agents") {
            let mut resolved = Vec::with_capacity(items.len());
            for (i, item) in std::mem::take(items).into_iter().enumerate() {
                let Value::String(name) = &item else {
                    resolved.push(item);
                    continue;
                };
                match self.agents.get(name.as_str()) {
                    Some(definition) => resolved.push(definition.clone()),
                    None => {
                        let known: Vec<&str> = self.agents.keys().map(String::as_str).collect();
                        let message = format!(
                            "planner: no agent definition `{name}` in the graph's `agents`; declared: {}",
                            if known.is_empty() {
                                "none".to_owned()
                            } else {
                                known.join(", ")
                            }
                        );
                        self.error(node.at, &format!("{pointer}/agents/{i}"), message);
                    }
                }
            }
            *items = resolved;
        }
        let planner: convergio_agent::Planner = match serde_json::from_value(json) {
            Ok(planner) => planner,
            Err(e) => {
                self.error(node.at, pointer, format!("planner: {e}"));
                return None;
            }
        };
        Some(NodeKind::Planner(Box::new(planner)))
    }

    fn output(&mut self, node: &Node, pointer: &str) -> Output {
        match &node.value {
            Tree::Scalar(Value::Null) => Output::None,
            Tree::Scalar(Value::String(key)) => Output::Key(key.clone()),
            Tree::Map(entries) => {
                let mut map = BTreeMap::new();
                for (key, value) in entries {
                    let here = child(pointer, &key.text);
                    self.span(&here, Some(key.at), value);
                    let expr = match &value.value {
                        Tree::Scalar(Value::String(s)) => Some(s.clone()),
                        Tree::Scalar(v @ (Value::Number(_) | Value::Bool(_))) => {
                            Some(v.to_string())
                        }
                        _ => {
                            self.error(
                                value.at,
                                &here,
                                format!(
                                    "an output mapping's value is an expression over `output`, not {}",
                                    value.a_type()
                                ),
                            );
                            None
                        }
                    };
                    if let Some(expr) = expr {
                        map.insert(key.text.clone(), expr);
                    }
                }
                Output::Map(map)
            }
            _ => {
                self.error(
                    node.at,
                    pointer,
                    format!(
                        "`output` is a state key or a mapping of state keys to expressions, not {}",
                        node.a_type()
                    ),
                );
                Output::None
            }
        }
    }

    fn retry(&mut self, node: &Node, pointer: &str) -> Option<Retry> {
        let fields = self.fields(
            node,
            pointer,
            "`retry`",
            &["attempts", "backoff", "max-backoff"],
        )?;
        let mut retry = Retry::default();
        let mut ok = true;
        match fields.get("attempts") {
            Some(n) => match self.whole(n, &child(pointer, "attempts"), "`attempts`") {
                Some(n) => retry.attempts = n,
                None => ok = false,
            },
            None => {
                self.error(
                    node.at,
                    pointer,
                    "`retry` needs `attempts`: how many in all, the first included",
                );
                ok = false;
            }
        }
        for (name, slot) in [
            ("backoff", &mut retry.backoff_ms),
            ("max-backoff", &mut retry.max_backoff_ms),
        ] {
            if let Some(d) = fields.get(name) {
                match self.duration(d, &child(pointer, name), &format!("`{name}`")) {
                    Some(ms) => *slot = ms,
                    None => ok = false,
                }
            }
        }
        ok.then_some(retry)
    }

    fn edge(&mut self, node: &Node, pointer: &str) -> Option<Edge> {
        if let Tree::Scalar(Value::String(text)) = &node.value {
            let Some((from, to)) = text.split_once("->") else {
                self.error(
                    node.at,
                    pointer,
                    format!("`{text}` is not an edge: write `from -> to`, or a mapping with `from` and `to`"),
                );
                return None;
            };
            let (from_trim, to_trim) = (from.trim(), to.trim());
            if from_trim.is_empty() || to_trim.is_empty() || to_trim.contains("->") {
                self.error(
                    node.at,
                    pointer,
                    format!("`{text}` is not an edge: write `from -> to`, or a mapping with `from` and `to`"),
                );
                return None;
            }
            let from_at = from.len() - from.trim_start().len();
            let to_at = from.len() + 2 + (to.len() - to.trim_start().len());
            self.part_span(&child(pointer, "from"), node, from_at);
            self.part_span(&child(pointer, "to"), node, to_at);
            return Some(Edge {
                from: from_trim.to_owned(),
                to: to_trim.to_owned(),
                when: None,
                max_iterations: None,
            });
        }
        let fields = self.fields(
            node,
            pointer,
            "an edge",
            &["from", "to", "when", "max-iterations"],
        )?;
        let end = |r: &mut Self, name: &str| match fields.get(name) {
            Some(v) => r.string(v, &child(pointer, name), &format!("`{name}` (a node id)")),
            None => {
                r.error(node.at, pointer, format!("an edge needs `{name}`"));
                None
            }
        };
        let from = end(self, "from");
        let to = end(self, "to");
        let mut ok = true;
        let when = match fields.get("when") {
            Some(w) => {
                let when = self.string(w, &child(pointer, "when"), "`when` (an expression)");
                ok &= when.is_some();
                when
            }
            None => None,
        };
        let max_iterations = match fields.get("max-iterations") {
            Some(n) => {
                let n = self.whole(n, &child(pointer, "max-iterations"), "`max-iterations`");
                ok &= n.is_some();
                n
            }
            None => None,
        };
        let edge = Edge {
            from: from?,
            to: to?,
            when,
            max_iterations,
        };
        ok.then_some(edge)
    }
}

fn describe(node: &Node) -> String {
    match &node.value {
        Tree::Scalar(v @ Value::Number(_)) => v.to_string(),
        Tree::Scalar(Value::String(s)) => format!("`{s}`"),
        _ => node.a_type().to_owned(),
    }
}

fn default_state_key() -> StateKey {
    StateKey {
        schema: None,
        reducer: Reducer::Replace,
        default: None,
        description: None,
    }
}

/// What stands in for a node whose kind could not be read: a kind the
/// rules check nothing of.
fn stand_in_node() -> GraphNode {
    GraphNode {
        kind: NodeKind::Interrupt(InterruptSpec {
            prompt: String::new(),
            schema: None,
        }),
        input: None,
        output: Output::None,
        timeout_ms: None,
        retry: Retry::default(),
        on_error: OnError::Fail,
        retry_on_resume: RetryOnResume::Always,
        description: None,
    }
}

fn stand_in_graph() -> Graph {
    Graph {
        id: None,
        description: None,
        state: BTreeMap::new(),
        nodes: BTreeMap::new(),
        edges: Vec::new(),
        graphs: BTreeMap::new(),
        agents: BTreeMap::new(),
        output: Vec::new(),
    }
}
