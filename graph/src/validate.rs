//! The rules a graph must follow to run, checked on the typed [`Graph`].
//!
//! [`crate::document::read`] applies them to what it read and places each
//! problem in the file; the orchestrator can apply them to a canonical
//! graph it received, where a problem then carries its JSON pointer only.
//! Pointers name the fields of the *document* form (`/nodes/fetch/retry/attempts`,
//! `/edges/2/when`), so the same problem reads the same either way.
//!
//! Every problem is reported, not only the first. The rules:
//!
//! - ids (nodes, state keys, graphs) are names: a letter or `_`, then
//!   letters, digits, `_` or `-`; `fail` is not a node id (`on-error: fail`);
//! - every name used exists: edge ends, route targets, error targets,
//!   subgraphs, the state keys a node's `output` writes, the graph's `output`;
//! - a condition node has no edges of its own (its routes are its edges);
//! - at least one entry node (no incoming edge other than loop edges);
//! - without its loop edges (those with `max-iterations`), the graph, routes
//!   and error edges included, has no cycle; each loop edge closes a cycle;
//! - `max-iterations`, `retry.attempts`, `max-concurrency` are at least 1, a
//!   timeout more than 0;
//! - a reducer fits its key's default and schema type (`append`: a list,
//!   `add`: a number, `merge`: an object); schemas compile and defaults
//!   match them; interrupt schemas compile;
//! - two nodes that may run at the same time do not both write a `replace`
//!   key;
//! - a subgraph node's input (an object) names state keys of the subgraph;
//! - every expression parses and names only declared state keys and node
//!   ids; `item` and `index` only in a map node's input, `output` only in an
//!   output mapping;
//! - with a [`Catalog`], plugins and tools exist.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use serde_json::Value;

use crate::expr::{Expr, Known, NameKind, UnknownName};
use crate::model::{Graph, Node, NodeKind, OnError, Output, Reducer};
use crate::schema::Schema;
use crate::template::{Template, push_pointer};

/// The most nodes a graph (each subgraph apart) may have.
pub const MAX_NODES: usize = 10_000;

/// What the platform has: plugins and the tools they export.
pub trait Catalog {
    /// Whether a plugin with this id is configured.
    fn plugin_exists(&self, id: &str) -> bool;

    /// The tools a plugin exports, when known (`None`: tools are not
    /// checked).
    fn tools(&self, plugin: &str) -> Option<Vec<String>>;
}

/// A broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// JSON pointer of the value at fault, in the document form
    /// (`/nodes/fetch/input/url`; empty for the whole graph).
    pub pointer: String,
    /// For a problem inside a string (an expression), the byte offset in
    /// that string.
    pub offset: Option<usize>,
    /// What is wrong, and what would be right.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pointer.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.pointer, self.message)
        }
    }
}

/// Checks `graph` and its subgraphs against every rule, without a catalog.
pub fn validate(graph: &Graph) -> Vec<Problem> {
    validate_with(graph, None)
}

/// Checks `graph` and its subgraphs against every rule; with a `catalog`,
/// plugins and tools too.
pub fn validate_with(graph: &Graph, catalog: Option<&dyn Catalog>) -> Vec<Problem> {
    let mut checker = Checker {
        catalog,
        out: Vec::new(),
    };
    checker.graph(graph, "");
    checker.out
}

/// Whether `id` is a well-formed id, and why not.
pub fn id_problem(id: &str) -> Option<String> {
    let mut chars = id.chars();
    match chars.next() {
        None => Some("an id may not be empty".to_owned()),
        Some(c) if !(c.is_ascii_alphabetic() || c == '_') => Some(format!(
            "`{id}` is not an id: an id starts with a letter or `_`"
        )),
        _ if !chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') => Some(format!(
            "`{id}` is not an id: an id has only letters, digits, `_` and `-`"
        )),
        _ => None,
    }
}

fn list<'a>(names: impl IntoIterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.into_iter().map(String::as_str).collect();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

fn path(base: &str, keys: &[&str]) -> String {
    let mut out = base.to_owned();
    for key in keys {
        push_pointer(&mut out, key);
    }
    out
}

/// The names a graph's expressions may use, by where they are.
struct Names {
    /// Everywhere: state keys and node ids.
    plain: Known,
    /// A map node's input: with `item` and `index`.
    item: Known,
    /// An output mapping: with `output`.
    output: Known,
}

/// How a node leads to another without a loop edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Edge(usize),
    Route(usize, usize),
    Default(usize),
    Error(usize),
}

struct Checker<'c> {
    catalog: Option<&'c dyn Catalog>,
    out: Vec<Problem>,
}

impl Checker<'_> {
    fn report(&mut self, pointer: String, message: impl Into<String>) {
        self.out.push(Problem {
            pointer,
            offset: None,
            message: message.into(),
        });
    }

    fn report_at(&mut self, pointer: String, offset: usize, message: impl Into<String>) {
        self.out.push(Problem {
            pointer,
            offset: Some(offset),
            message: message.into(),
        });
    }

    fn graph(&mut self, graph: &Graph, base: &str) {
        let known = Known::new(graph.state.keys().cloned(), graph.nodes.keys().cloned());
        let names = Names {
            item: known.clone().with_item(),
            output: known.clone().with_output(),
            plain: known,
        };
        if graph.nodes.is_empty() {
            self.report(path(base, &["nodes"]), "a graph needs at least one node");
        }
        for id in graph.nodes.keys() {
            if let Some(problem) = id_problem(id) {
                self.report(path(base, &["nodes", id]), problem);
            } else if id == "fail" {
                self.report(
                    path(base, &["nodes", id]),
                    "`fail` is not a node id: `on-error: fail` means failing the run",
                );
            }
        }
        for id in graph.graphs.keys() {
            if let Some(problem) = id_problem(id) {
                self.report(path(base, &["graphs", id]), problem);
            }
        }
        self.state(graph, base);
        self.agents(graph, base);
        for (id, node) in &graph.nodes {
            self.node(graph, &names, id, node, &path(base, &["nodes", id]));
        }
        self.edges(graph, &names.plain, base);
        for (i, key) in graph.output.iter().enumerate() {
            if !graph.state.contains_key(key) {
                self.report(
                    path(base, &["output", &i.to_string()]),
                    format!(
                        "unknown state key `{key}`; declared: {}",
                        list(graph.state.keys())
                    ),
                );
            }
        }
        Structure::new(graph).check(self, base);
        for (id, sub) in &graph.graphs {
            self.graph(sub, &path(base, &["graphs", id]));
        }
    }

    /// The named agent definitions, and the agent nodes that name one.
    fn agents(&mut self, graph: &Graph, base: &str) {
        for (name, definition) in &graph.agents {
            let at = path(base, &["agents", name]);
            if let Err(problems) = definition.check() {
                for problem in problems.lines() {
                    // At the field the problem names, where there is one.
                    let field = problem
                        .split_once("field `")
                        .and_then(|(_, rest)| rest.split_once('`'))
                        .map(|(field, _)| field);
                    let here = field.map_or_else(|| at.clone(), |f| format!("{at}/{f}"));
                    self.report(here, problem.to_owned());
                }
            }
        }
        for (id, node) in &graph.nodes {
            let (NodeKind::Agent { .. } | NodeKind::Map(_)) = &node.kind else {
                continue;
            };
            if let NodeKind::Map(spec) = &node.kind
                && !matches!(spec.node, NodeKind::Agent { .. })
            {
                continue;
            }
            let Some(Value::String(name)) = node.input.as_ref().and_then(|i| i.get("agent")) else {
                continue;
            };
            if !name.contains("{{") && !graph.agents.contains_key(name) {
                self.report(
                    path(base, &["nodes", id, "input", "agent"]),
                    format!(
                        "no agent definition `{name}` in the graph's `agents`; declared: {}",
                        list(graph.agents.keys())
                    ),
                );
            }
        }
    }

    fn state(&mut self, graph: &Graph, base: &str) {
        for (key, decl) in &graph.state {
            let at = path(base, &["state", key]);
            if let Some(problem) = id_problem(key) {
                self.report(at.clone(), problem);
            }
            let need = match decl.reducer {
                Reducer::Replace => None,
                Reducer::Append => Some(("array", "a list")),
                Reducer::Add => Some(("number", "a number")),
                Reducer::Merge => Some(("object", "an object")),
            };
            if let (Some((_, need)), Some(default)) = (need, &decl.default) {
                let fits = match decl.reducer {
                    Reducer::Append => default.is_array(),
                    Reducer::Add => default.is_number(),
                    Reducer::Merge => default.is_object(),
                    Reducer::Replace => true,
                };
                if !fits {
                    self.report(
                        format!("{at}/default"),
                        format!(
                            "reducer `{}` needs {need} default, not {}",
                            decl.reducer.as_str(),
                            crate::expr::a_type(default)
                        ),
                    );
                }
            }
            let Some(schema) = &decl.schema else { continue };
            if let (Some((ty, _)), Some(Value::String(declared))) = (need, schema.get("type")) {
                let fits = declared == ty || (ty == "number" && declared == "integer");
                if !fits {
                    self.report(
                        format!("{at}/reducer"),
                        format!(
                            "reducer `{}` needs a key of type `{ty}`, but the schema's type is `{declared}`",
                            decl.reducer.as_str()
                        ),
                    );
                }
            }
            match Schema::compile(schema) {
                Err(message) => self.report(format!("{at}/schema"), message),
                Ok(compiled) => {
                    if let Some(default) = &decl.default
                        && let Err(errors) = compiled.validate(default)
                    {
                        for error in errors {
                            self.report(
                                format!("{at}/default"),
                                format!("the default does not match the key's schema: {error}"),
                            );
                        }
                    }
                }
            }
        }
    }

    fn node(&mut self, graph: &Graph, names: &Names, id: &str, node: &Node, at: &str) {
        self.kind(graph, &names.plain, &node.kind, at, false);
        if let Some(input) = &node.input {
            let known = if matches!(node.kind, NodeKind::Map(_)) {
                &names.item
            } else {
                &names.plain
            };
            self.template(Template::parse(input), known, &format!("{at}/input"));
            let subgraph = match &node.kind {
                NodeKind::Subgraph { graph: sub } => Some(sub),
                NodeKind::Map(spec) => match &spec.node {
                    NodeKind::Subgraph { graph: sub } => Some(sub),
                    _ => None,
                },
                _ => None,
            };
            if let (Some(sub_id), Value::Object(fields)) = (subgraph, input)
                && let Some(sub) = graph.graphs.get(sub_id)
            {
                for key in fields.keys() {
                    if !sub.state.contains_key(key) {
                        self.report(
                            path(at, &["input", key]),
                            format!(
                                "graph `{sub_id}` has no state key `{key}`; its keys: {}",
                                list(sub.state.keys())
                            ),
                        );
                    }
                }
            }
        }
        match &node.output {
            Output::None => {}
            Output::Key(key) => {
                if !graph.state.contains_key(key) {
                    self.report(
                        format!("{at}/output"),
                        format!(
                            "unknown state key `{key}`; declared: {}",
                            list(graph.state.keys())
                        ),
                    );
                }
            }
            Output::Map(map) => {
                let known = &names.output;
                for (key, expr) in map {
                    let here = path(at, &["output", key]);
                    if !graph.state.contains_key(key) {
                        self.report(
                            here.clone(),
                            format!(
                                "unknown state key `{key}`; declared: {}",
                                list(graph.state.keys())
                            ),
                        );
                    }
                    self.expr(expr, known, &here, 0);
                }
            }
        }
        if node.timeout_ms == Some(0) {
            self.report(format!("{at}/timeout"), "a timeout must be longer than 0");
        }
        if node.retry.attempts == 0 {
            self.report(
                format!("{at}/retry/attempts"),
                "attempts must be at least 1 (the first attempt counts)",
            );
        }
        if let OnError::Route(target) = &node.on_error {
            if target == id {
                self.report(
                    format!("{at}/on-error"),
                    "a node's error edge cannot lead to itself: use `retry` to try again",
                );
            } else if !graph.nodes.contains_key(target) {
                self.report(format!("{at}/on-error"), unknown_node(graph, target));
            }
        }
    }

    fn kind(&mut self, graph: &Graph, known: &Known, kind: &NodeKind, at: &str, in_map: bool) {
        let here = format!("{at}/{}", kind.name());
        match kind {
            NodeKind::Tool { plugin, tool } => {
                let Some(catalog) = self.catalog else { return };
                if !catalog.plugin_exists(plugin) {
                    self.report(
                        format!("{here}/plugin"),
                        format!("no plugin `{plugin}` in platform.toml"),
                    );
                } else if let Some(tools) = catalog.tools(plugin)
                    && !tools.contains(tool)
                {
                    self.report(
                        format!("{here}/tool"),
                        format!(
                            "plugin `{plugin}` has no tool `{tool}`; it has: {}",
                            list(&tools)
                        ),
                    );
                }
            }
            NodeKind::Agent { plugin } => {
                if let Some(catalog) = self.catalog
                    && !catalog.plugin_exists(plugin)
                {
                    self.report(here, format!("no plugin `{plugin}` in platform.toml"));
                }
            }
            NodeKind::Subgraph { graph: id } => {
                if !graph.graphs.contains_key(id) {
                    self.report(
                        here,
                        format!(
                            "no graph `{id}` in `graphs`; declared: {}",
                            list(graph.graphs.keys())
                        ),
                    );
                }
            }
            NodeKind::Map(spec) => {
                self.expr(&spec.over, known, &format!("{here}/over"), 0);
                if spec.max_concurrency == 0 {
                    self.report(
                        format!("{here}/max-concurrency"),
                        "max-concurrency must be at least 1",
                    );
                }
                match &spec.node {
                    NodeKind::Tool { .. } | NodeKind::Agent { .. } | NodeKind::Subgraph { .. } => {
                        self.kind(graph, known, &spec.node, &here, true);
                    }
                    other => self.report(
                        here,
                        format!(
                            "a map runs a tool, an agent or a subgraph per item, not a {}",
                            other.name()
                        ),
                    ),
                }
            }
            NodeKind::Condition(spec) if !in_map => {
                if spec.routes.is_empty() && spec.default.is_none() {
                    self.report(here.clone(), "a condition needs at least one route");
                }
                for (i, route) in spec.routes.iter().enumerate() {
                    let at = format!("{here}/routes/{i}");
                    self.expr(&route.when, known, &format!("{at}/when"), 0);
                    if !graph.nodes.contains_key(&route.to) {
                        self.report(format!("{at}/to"), unknown_node(graph, &route.to));
                    }
                }
                if let Some(default) = &spec.default
                    && !graph.nodes.contains_key(default)
                {
                    self.report(format!("{here}/default"), unknown_node(graph, default));
                }
            }
            NodeKind::Interrupt(spec) if !in_map => {
                self.template(
                    Template::parse_str(&spec.prompt),
                    known,
                    &format!("{here}/prompt"),
                );
                if let Some(schema) = &spec.schema
                    && let Err(message) = Schema::compile(schema)
                {
                    self.report(format!("{here}/schema"), message);
                }
            }
            NodeKind::Planner(planner) => {
                if let Err(problems) = planner.check() {
                    for problem in problems.lines() {
                        // At the field the problem names, where there is one.
                        let field = problem
                            .strip_prefix("planner: field `")
                            .and_then(|rest| rest.split_once('`'))
                            .map(|(field, _)| field);
                        let at = field.map_or_else(|| here.clone(), |f| format!("{here}/{f}"));
                        self.report(at, problem.to_owned());
                    }
                }
                let Some(catalog) = self.catalog else { return };
                let plugins = std::iter::once(&planner.plugin)
                    .chain(planner.agents.iter().map(|a| &a.plugin));
                for plugin in plugins {
                    if !catalog.plugin_exists(plugin) {
                        self.report(
                            here.clone(),
                            format!("no plugin `{plugin}` in platform.toml"),
                        );
                    }
                }
                for listed in &planner.tools {
                    let Some((plugin, tool)) = listed.split_once('/') else {
                        continue;
                    };
                    if !catalog.plugin_exists(plugin) {
                        self.report(
                            format!("{here}/tools"),
                            format!("no plugin `{plugin}` in platform.toml (tool `{listed}`)"),
                        );
                    } else if let Some(tools) = catalog.tools(plugin)
                        && !tools.iter().any(|t| t == tool)
                    {
                        self.report(
                            format!("{here}/tools"),
                            format!(
                                "plugin `{plugin}` has no tool `{tool}`; it has: {}",
                                list(&tools)
                            ),
                        );
                    }
                }
            }
            NodeKind::Condition(_) | NodeKind::Interrupt(_) => {}
        }
    }

    fn edges(&mut self, graph: &Graph, known: &Known, base: &str) {
        let mut seen: BTreeMap<(&str, &str), usize> = BTreeMap::new();
        for (i, edge) in graph.edges.iter().enumerate() {
            let at = path(base, &["edges", &i.to_string()]);
            let mut ends_known = true;
            for (end, field) in [(&edge.from, "from"), (&edge.to, "to")] {
                if !graph.nodes.contains_key(end) {
                    self.report(format!("{at}/{field}"), unknown_node(graph, end));
                    ends_known = false;
                }
            }
            if let Some(Node {
                kind: NodeKind::Condition(_),
                ..
            }) = graph.nodes.get(&edge.from)
            {
                self.report(
                    at.clone(),
                    format!(
                        "`{}` is a condition: it leads on through its routes, not edges; make this edge a route or remove it",
                        edge.from
                    ),
                );
            }
            if let Some(when) = &edge.when {
                self.expr(when, known, &format!("{at}/when"), 0);
            }
            if edge.max_iterations == Some(0) {
                self.report(
                    format!("{at}/max-iterations"),
                    "max-iterations must be at least 1",
                );
            }
            if ends_known
                && edge.when.is_none()
                && let Some(first) = seen.insert((&edge.from, &edge.to), i)
            {
                self.report(
                    at,
                    format!(
                        "a second edge {} -> {} (the first is edge {first})",
                        edge.from, edge.to
                    ),
                );
            }
        }
    }

    /// Parses an expression and checks its names; `offset` is where its
    /// text starts in the string at `at`.
    fn expr(&mut self, text: &str, known: &Known, at: &str, offset: usize) {
        match Expr::parse(text) {
            Err(err) => self.report_at(at.to_owned(), offset + err.offset, err.message),
            Ok(expr) => self.names(&expr, known, at, offset),
        }
    }

    fn names(&mut self, expr: &Expr, known: &Known, at: &str, offset: usize) {
        for unknown in expr.check(known) {
            let message = unknown_name(&unknown);
            self.report_at(at.to_owned(), offset + unknown.offset, message);
        }
    }

    fn template(
        &mut self,
        parsed: Result<Template, Vec<crate::template::TemplateError>>,
        known: &Known,
        at: &str,
    ) {
        match parsed {
            Err(errors) => {
                for error in errors {
                    self.report_at(
                        format!("{at}{}", error.pointer),
                        error.offset,
                        error.message,
                    );
                }
            }
            Ok(template) => {
                for found in template.expressions() {
                    let here = format!("{at}{}", found.pointer);
                    self.names(found.expr, known, &here, found.offset);
                }
            }
        }
    }
}

fn unknown_node(graph: &Graph, id: &str) -> String {
    format!("no node `{id}`; nodes: {}", list(graph.nodes.keys()))
}

fn unknown_name(unknown: &UnknownName) -> String {
    match unknown.kind {
        NameKind::Root if unknown.name == "output" => {
            "`output` is defined only in a node's output mapping".to_owned()
        }
        NameKind::Root => format!("`{}` is defined only in a map node's input", unknown.name),
        kind => format!(
            "unknown {kind} `{}`; declared: {}",
            unknown.name,
            list(&unknown.declared)
        ),
    }
}

/// The graph's nodes as indices and its forward links (loop edges aside).
struct Structure<'g> {
    graph: &'g Graph,
    ids: Vec<&'g String>,
    index: BTreeMap<&'g str, usize>,
    /// Forward links out of each node.
    next: Vec<Vec<(usize, Link)>>,
}

impl<'g> Structure<'g> {
    fn new(graph: &'g Graph) -> Self {
        let ids: Vec<&String> = graph.nodes.keys().collect();
        let index: BTreeMap<&str, usize> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), i))
            .collect();
        let mut next = vec![Vec::new(); ids.len()];
        for (i, edge) in graph.edges.iter().enumerate() {
            if edge.is_loop() {
                continue;
            }
            if let (Some(&from), Some(&to)) =
                (index.get(edge.from.as_str()), index.get(edge.to.as_str()))
            {
                next[from].push((to, Link::Edge(i)));
            }
        }
        for (n, node) in graph.nodes.values().enumerate() {
            if let NodeKind::Condition(spec) = &node.kind {
                for (r, route) in spec.routes.iter().enumerate() {
                    if let Some(&to) = index.get(route.to.as_str()) {
                        next[n].push((to, Link::Route(n, r)));
                    }
                }
                if let Some(&to) = spec.default.as_ref().and_then(|d| index.get(d.as_str())) {
                    next[n].push((to, Link::Default(n)));
                }
            }
            if let OnError::Route(target) = &node.on_error
                && let Some(&to) = index.get(target.as_str())
            {
                next[n].push((to, Link::Error(n)));
            }
        }
        Self {
            graph,
            ids,
            index,
            next,
        }
    }

    fn pointer(&self, base: &str, link: Link) -> String {
        match link {
            Link::Edge(i) => path(base, &["edges", &i.to_string()]),
            Link::Route(n, r) => path(
                base,
                &[
                    "nodes",
                    self.ids[n],
                    "condition",
                    "routes",
                    &r.to_string(),
                    "to",
                ],
            ),
            Link::Default(n) => path(base, &["nodes", self.ids[n], "condition", "default"]),
            Link::Error(n) => path(base, &["nodes", self.ids[n], "on-error"]),
        }
    }

    fn check(&self, checker: &mut Checker<'_>, base: &str) {
        let n = self.ids.len();
        if n == 0 {
            return;
        }
        if n > MAX_NODES {
            checker.report(
                path(base, &["nodes"]),
                format!("a graph has at most {MAX_NODES} nodes; this one has {n}: split it into subgraphs"),
            );
            return;
        }
        let mut has_incoming = vec![false; n];
        for links in &self.next {
            for &(to, _) in links {
                has_incoming[to] = true;
            }
        }
        if has_incoming.iter().all(|&b| b) {
            checker.report(
                path(base, &["nodes"]),
                "no entry node: every node has an incoming edge (loop edges aside), so a run has nowhere to start",
            );
        }
        let cyclic = self.cycles(checker, base);
        let mut reach = Reach::new(self);
        self.loop_edges(checker, base, &mut reach);
        if !cyclic {
            self.conflicts(checker, base, &mut reach);
        }
    }

    /// Reports one cycle per strongly connected component; whether any.
    fn cycles(&self, checker: &mut Checker<'_>, base: &str) -> bool {
        let mut found = false;
        for comp in self.components() {
            let self_loop =
                comp.len() == 1 && self.next[comp[0]].iter().any(|&(to, _)| to == comp[0]);
            if comp.len() < 2 && !self_loop {
                continue;
            }
            found = true;
            let start = comp.iter().copied().min().unwrap_or(0);
            let cycle = self.cycle_through(start, &comp);
            let names: Vec<&str> = cycle
                .iter()
                .map(|&(from, _, _)| self.ids[from].as_str())
                .chain(std::iter::once(self.ids[start].as_str()))
                .collect();
            let explicit: Vec<String> = cycle
                .iter()
                .filter(|(_, _, link)| matches!(link, Link::Edge(_)))
                .map(|&(from, to, _)| format!("{} -> {}", self.ids[from], self.ids[to]))
                .collect();
            let shown = names.join(" -> ");
            let message = if explicit.is_empty() {
                format!(
                    "cycle {shown} runs only through routes and error edges, which cannot carry `max-iterations`; loop back with an edge that has `when` and `max-iterations`"
                )
            } else {
                format!(
                    "cycle {shown} has no loop edge; a graph may loop only through an edge with `max-iterations`: add it to one of {}",
                    explicit.join(", ")
                )
            };
            let closing = cycle.last().map_or(Link::Default(start), |&(_, _, l)| l);
            checker.report(self.pointer(base, closing), message);
        }
        found
    }

    /// A shortest cycle from `start` back to it inside `comp`, as links
    /// (from, to, link).
    fn cycle_through(&self, start: usize, comp: &[usize]) -> Vec<(usize, usize, Link)> {
        let mut inside = vec![false; self.ids.len()];
        for &c in comp {
            inside[c] = true;
        }
        let mut parent: Vec<Option<(usize, Link)>> = vec![None; self.ids.len()];
        let mut queue = VecDeque::from([start]);
        let mut last = None;
        'search: while let Some(at) = queue.pop_front() {
            for &(to, link) in &self.next[at] {
                if to == start {
                    last = Some((at, link));
                    break 'search;
                }
                if inside[to] && parent[to].is_none() {
                    parent[to] = Some((at, link));
                    queue.push_back(to);
                }
            }
        }
        let mut cycle = Vec::new();
        let Some((mut at, link)) = last else {
            return cycle;
        };
        cycle.push((at, start, link));
        while at != start {
            let Some((from, link)) = parent[at] else {
                break;
            };
            cycle.push((from, at, link));
            at = from;
        }
        cycle.reverse();
        cycle
    }

    /// Strongly connected components (Kosaraju, without recursion).
    fn components(&self) -> Vec<Vec<usize>> {
        let n = self.ids.len();
        let mut order = Vec::with_capacity(n);
        let mut seen = vec![false; n];
        for root in 0..n {
            if seen[root] {
                continue;
            }
            seen[root] = true;
            let mut stack = vec![(root, 0)];
            while let Some((at, child)) = stack.pop() {
                if let Some(&(to, _)) = self.next[at].get(child) {
                    stack.push((at, child + 1));
                    if !seen[to] {
                        seen[to] = true;
                        stack.push((to, 0));
                    }
                } else {
                    order.push(at);
                }
            }
        }
        let mut prev = vec![Vec::new(); n];
        for (from, links) in self.next.iter().enumerate() {
            for &(to, _) in links {
                prev[to].push(from);
            }
        }
        let mut comp_of = vec![usize::MAX; n];
        let mut comps = Vec::new();
        for &root in order.iter().rev() {
            if comp_of[root] != usize::MAX {
                continue;
            }
            let id = comps.len();
            let mut members = Vec::new();
            comp_of[root] = id;
            let mut stack = vec![root];
            while let Some(at) = stack.pop() {
                members.push(at);
                for &from in &prev[at] {
                    if comp_of[from] == usize::MAX {
                        comp_of[from] = id;
                        stack.push(from);
                    }
                }
            }
            comps.push(members);
        }
        comps
    }

    fn loop_edges(&self, checker: &mut Checker<'_>, base: &str, reach: &mut Reach) {
        for (i, edge) in self.graph.edges.iter().enumerate() {
            if !edge.is_loop() {
                continue;
            }
            let (Some(&from), Some(&to)) = (
                self.index.get(edge.from.as_str()),
                self.index.get(edge.to.as_str()),
            ) else {
                continue;
            };
            if from != to && !reach.leads(self, to, from) {
                checker.report(
                    path(base, &["edges", &i.to_string(), "max-iterations"]),
                    format!(
                        "{} -> {} has `max-iterations` but closes no cycle: `{}` does not lead back to `{}`; a loop edge goes back to an earlier node",
                        edge.from, edge.to, edge.to, edge.from
                    ),
                );
            }
        }
    }

    /// Two nodes that may run at the same time both writing a `replace`
    /// key.
    fn conflicts(&self, checker: &mut Checker<'_>, base: &str, reach: &mut Reach) {
        let mut writers: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (n, node) in self.graph.nodes.values().enumerate() {
            for key in node.output.keys() {
                if self
                    .graph
                    .state
                    .get(key)
                    .is_some_and(|decl| decl.reducer == Reducer::Replace)
                {
                    writers.entry(key).or_default().push(n);
                }
            }
        }
        let mut switches = None;
        for (key, nodes) in writers {
            for (i, &a) in nodes.iter().enumerate() {
                for &b in &nodes[i + 1..] {
                    if reach.leads(self, a, b) || reach.leads(self, b, a) {
                        continue;
                    }
                    let switches = switches.get_or_insert_with(|| self.switches());
                    if switches.iter().any(|s| s.separates(a, b)) {
                        continue;
                    }
                    let output = self.graph.nodes.get(self.ids[b]).map(|n| &n.output);
                    let at = match output {
                        Some(Output::Map(_)) => path(base, &["nodes", self.ids[b], "output", key]),
                        _ => path(base, &["nodes", self.ids[b], "output"]),
                    };
                    checker.report(
                        at,
                        format!(
                            "state key `{key}` (reducer replace) is written by `{}` and `{}`, which may run at the same time: declare a reducer (append, merge, add) or order the nodes with an edge",
                            self.ids[a], self.ids[b]
                        ),
                    );
                }
            }
        }
    }

    /// The nodes that take one of several exclusive ways: a condition (one
    /// route) and a node with an error edge (its edges or its error edge).
    fn switches(&self) -> Vec<Switch> {
        let n = self.ids.len();
        let entries: Vec<usize> = {
            let mut incoming = vec![false; n];
            self.next
                .iter()
                .flatten()
                .for_each(|&(to, _)| incoming[to] = true);
            (0..n).filter(|&i| !incoming[i]).collect()
        };
        let mut out = Vec::new();
        for (s, node) in self.graph.nodes.values().enumerate() {
            let mut ways: Vec<Vec<usize>> = Vec::new();
            if matches!(node.kind, NodeKind::Condition(_)) {
                for &(to, _) in &self.next[s] {
                    if !ways.iter().any(|w| w.contains(&to)) {
                        ways.push(vec![to]);
                    }
                }
            } else if !node.on_error.is_fail() {
                let (errors, edges): (Vec<_>, Vec<_>) = self.next[s]
                    .iter()
                    .partition(|(_, link)| matches!(link, Link::Error(_)));
                ways.push(edges.iter().map(|&(to, _)| to).collect());
                ways.push(errors.iter().map(|&(to, _)| to).collect());
            }
            if ways.len() < 2 {
                continue;
            }
            // The nodes a run reaches only through `s`.
            let mut seen = vec![false; n];
            seen[s] = true;
            let mut stack: Vec<usize> = entries.iter().copied().filter(|&e| e != s).collect();
            while let Some(at) = stack.pop() {
                if !seen[at] {
                    seen[at] = true;
                    stack.extend(self.next[at].iter().map(|&(to, _)| to));
                }
            }
            let dominated: Vec<bool> = seen.iter().map(|&b| !b).collect();
            // For each node, the ways of `s` that lead to it.
            let mut way_of = vec![Vec::new(); n];
            for (w, starts) in ways.iter().enumerate() {
                let mut seen = vec![false; n];
                let mut stack = starts.clone();
                while let Some(at) = stack.pop() {
                    if !seen[at] && at != s {
                        seen[at] = true;
                        way_of[at].push(w);
                        stack.extend(self.next[at].iter().map(|&(to, _)| to));
                    }
                }
            }
            out.push(Switch { dominated, way_of });
        }
        out
    }
}

/// Which nodes each node leads to by forward links, found when first
/// asked, one bit a node.
struct Reach {
    from: Vec<Option<Vec<u64>>>,
}

impl Reach {
    fn new(structure: &Structure<'_>) -> Self {
        Self {
            from: vec![None; structure.ids.len()],
        }
    }

    /// Whether a path of forward links leads from `a` to `b`.
    fn leads(&mut self, structure: &Structure<'_>, a: usize, b: usize) -> bool {
        let bits = self.from[a].get_or_insert_with(|| {
            let mut bits = vec![0u64; structure.ids.len().div_ceil(64)];
            let mut stack: Vec<usize> = structure.next[a].iter().map(|&(to, _)| to).collect();
            while let Some(at) = stack.pop() {
                if bits[at / 64] & (1 << (at % 64)) == 0 {
                    bits[at / 64] |= 1 << (at % 64);
                    stack.extend(structure.next[at].iter().map(|&(to, _)| to));
                }
            }
            bits
        });
        bits[b / 64] & (1 << (b % 64)) != 0
    }
}

/// A node that takes one of several ways, with the nodes only it leads to.
struct Switch {
    dominated: Vec<bool>,
    way_of: Vec<Vec<usize>>,
}

impl Switch {
    /// Whether at most one of `a` and `b` runs each time the switch does.
    fn separates(&self, a: usize, b: usize) -> bool {
        self.dominated[a]
            && self.dominated[b]
            && !self.way_of[a].is_empty()
            && !self.way_of[b].is_empty()
            && !self.way_of[a].iter().any(|w| self.way_of[b].contains(w))
    }
}
