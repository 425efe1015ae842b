//! A graph compiled for execution: nodes and edges by index, expressions
//! and templates parsed once, the loop regions worked out.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use std::sync::Arc;

use crate::expr::Expr;
use crate::model::{Graph, Id, Node, NodeKind, OnError, Output};
use crate::schema::Schema;
use crate::template::Template;

/// Why a graph does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.join("; "))]
pub struct PlanError(pub Vec<String>);

/// How an edge is taken.
#[derive(Debug, Clone, PartialEq)]
pub enum EdgeKind {
    /// An edge of `edges`, with its condition if any.
    Plain(Option<Expr>),
    /// Route `n` of a condition node.
    Route(usize),
    /// The default route of a condition node.
    Default,
    /// A node's error edge (`on-error`).
    Error,
}

/// A compiled edge.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanEdge {
    /// Source node index.
    pub from: usize,
    /// Target node index.
    pub to: usize,
    /// How it is taken.
    pub kind: EdgeKind,
    /// For a loop edge, the most times it may be taken.
    pub max_iterations: Option<u32>,
}

/// A compiled node.
#[derive(Debug, Clone)]
pub struct PlanNode {
    /// Its id.
    pub id: Id,
    /// As written.
    pub node: Node,
    /// Its input template (none: the whole state).
    pub input: Option<Template>,
    /// Parsed output-map expressions, by state key.
    pub output: Vec<(Id, Expr)>,
    /// A map node's `over` expression.
    pub over: Option<Expr>,
    /// A condition node's route expressions, in order.
    pub routes: Vec<Expr>,
    /// An interrupt node's prompt.
    pub prompt: Option<Template>,
    /// An interrupt node's answer schema, compiled.
    pub answer_schema: Option<Arc<Schema>>,
    /// Incoming forward (non-loop) edges.
    pub incoming: Vec<usize>,
    /// Incoming loop edges.
    pub loop_incoming: Vec<usize>,
    /// Outgoing edges, every kind.
    pub outgoing: Vec<usize>,
}

/// A graph ready to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The graph.
    pub graph: Graph,
    /// Nodes in id order.
    pub nodes: Vec<PlanNode>,
    /// Every edge: the document's, then the routes and error edges.
    pub edges: Vec<PlanEdge>,
    /// Node index by id.
    pub index: HashMap<Id, usize>,
    /// For each loop edge, the nodes a new iteration resets: every node its
    /// target reaches by forward edges, the target included.
    pub regions: BTreeMap<usize, Vec<usize>>,
    /// Subgraphs, compiled, by id.
    pub subgraphs: BTreeMap<Id, Plan>,
    /// The state keys' schemas, compiled.
    pub schemas: HashMap<Id, Arc<Schema>>,
}

impl Plan {
    /// Compile `graph`. The graph should have passed validation; this
    /// reports what it cannot execute (names that do not resolve,
    /// expressions that do not parse, a cycle without a loop edge).
    pub fn compile(graph: &Graph) -> Result<Self, PlanError> {
        let mut errors = Vec::new();
        let index: HashMap<Id, usize> = graph
            .nodes
            .keys()
            .enumerate()
            .map(|(i, id)| (id.clone(), i))
            .collect();
        let find = |id: &str, what: &str, errors: &mut Vec<String>| {
            let found = index.get(id).copied();
            if found.is_none() {
                errors.push(format!(
                    "{what} names node `{id}`, which the graph does not have"
                ));
            }
            found
        };
        let parse = |text: &str, what: &str, errors: &mut Vec<String>| match Expr::parse(text) {
            Ok(e) => Some(e),
            Err(e) => {
                errors.push(format!("{what}: {e}"));
                None
            }
        };
        let template =
            |value: &Value, what: &str, errors: &mut Vec<String>| match Template::parse(value) {
                Ok(t) => Some(t),
                Err(errs) => {
                    errors.extend(errs.into_iter().map(|e| format!("{what}: {e}")));
                    None
                }
            };

        let mut edges = Vec::new();
        for (n, edge) in graph.edges.iter().enumerate() {
            let what = format!("edge {n} ({} -> {})", edge.from, edge.to);
            let from = find(&edge.from, &what, &mut errors);
            let to = find(&edge.to, &what, &mut errors);
            let when = edge
                .when
                .as_deref()
                .and_then(|w| parse(w, &what, &mut errors));
            if let (Some(from), Some(to)) = (from, to) {
                edges.push(PlanEdge {
                    from,
                    to,
                    kind: EdgeKind::Plain(when),
                    max_iterations: edge.max_iterations,
                });
            }
        }

        let mut nodes = Vec::new();
        for (i, (id, node)) in graph.nodes.iter().enumerate() {
            let what = |part: &str| format!("node `{id}` {part}");
            let agent = match &node.kind {
                NodeKind::Agent { .. } => true,
                NodeKind::Map(spec) => matches!(spec.node, NodeKind::Agent { .. }),
                _ => false,
            };
            let input = node.input.as_ref().and_then(|v| {
                let v = if agent {
                    graph.with_definition(v)
                } else {
                    std::borrow::Cow::Borrowed(v)
                };
                template(&v, &what("input"), &mut errors)
            });
            let output = match &node.output {
                Output::Map(map) => map
                    .iter()
                    .filter_map(|(key, text)| {
                        parse(text, &what(&format!("output `{key}`")), &mut errors)
                            .map(|e| (key.clone(), e))
                    })
                    .collect(),
                _ => Vec::new(),
            };
            let mut over = None;
            let mut routes = Vec::new();
            let mut prompt = None;
            let mut answer_schema = None;
            match &node.kind {
                NodeKind::Map(spec) => {
                    over = parse(&spec.over, &what("map over"), &mut errors);
                }
                NodeKind::Condition(spec) => {
                    for (r, route) in spec.routes.iter().enumerate() {
                        if let Some(e) =
                            parse(&route.when, &what(&format!("route {r}")), &mut errors)
                        {
                            routes.push(e);
                        }
                        if let Some(to) = find(&route.to, &what(&format!("route {r}")), &mut errors)
                        {
                            edges.push(PlanEdge {
                                from: i,
                                to,
                                kind: EdgeKind::Route(r),
                                max_iterations: None,
                            });
                        }
                    }
                    if let Some(default) = &spec.default
                        && let Some(to) = find(default, &what("default route"), &mut errors)
                    {
                        edges.push(PlanEdge {
                            from: i,
                            to,
                            kind: EdgeKind::Default,
                            max_iterations: None,
                        });
                    }
                }
                NodeKind::Interrupt(spec) => {
                    prompt = template(
                        &Value::String(spec.prompt.clone()),
                        &what("prompt"),
                        &mut errors,
                    );
                    if let Some(schema) = &spec.schema {
                        match Schema::compile(schema) {
                            Ok(s) => answer_schema = Some(Arc::new(s)),
                            Err(e) => errors.push(format!("{}: {e}", what("schema"))),
                        }
                    }
                }
                NodeKind::Tool { .. }
                | NodeKind::Agent { .. }
                | NodeKind::Subgraph { .. }
                | NodeKind::Planner(_) => {}
            }
            if let OnError::Route(to) = &node.on_error
                && let Some(to) = find(to, &what("on-error"), &mut errors)
            {
                edges.push(PlanEdge {
                    from: i,
                    to,
                    kind: EdgeKind::Error,
                    max_iterations: None,
                });
            }
            nodes.push(PlanNode {
                id: id.clone(),
                node: node.clone(),
                input,
                output,
                over,
                routes,
                prompt,
                answer_schema,
                incoming: Vec::new(),
                loop_incoming: Vec::new(),
                outgoing: Vec::new(),
            });
        }
        for (e, edge) in edges.iter().enumerate() {
            nodes[edge.from].outgoing.push(e);
            if edge.max_iterations.is_some() {
                nodes[edge.to].loop_incoming.push(e);
            } else {
                nodes[edge.to].incoming.push(e);
            }
        }

        let mut subgraphs = BTreeMap::new();
        for (id, sub) in &graph.graphs {
            match Self::compile(sub) {
                Ok(plan) => {
                    subgraphs.insert(id.clone(), plan);
                }
                Err(PlanError(errs)) => {
                    errors.extend(errs.into_iter().map(|e| format!("graph `{id}`: {e}")));
                }
            }
        }
        for node in &nodes {
            let sub = match &node.node.kind {
                NodeKind::Subgraph { graph } => Some(graph),
                NodeKind::Map(spec) => match &spec.node {
                    NodeKind::Subgraph { graph } => Some(graph),
                    _ => None,
                },
                _ => None,
            };
            if let Some(sub) = sub
                && !graph.graphs.contains_key(sub)
            {
                errors.push(format!(
                    "node `{}` runs graph `{sub}`, which `graphs` does not define",
                    node.id
                ));
            }
        }

        let mut schemas = HashMap::new();
        for (key, decl) in &graph.state {
            if let Some(schema) = &decl.schema {
                match Schema::compile(schema) {
                    Ok(s) => {
                        schemas.insert(key.clone(), Arc::new(s));
                    }
                    Err(e) => errors.push(format!("state key `{key}`: {e}")),
                }
            }
        }
        let mut plan = Self {
            schemas,
            graph: graph.clone(),
            nodes,
            edges,
            index,
            regions: BTreeMap::new(),
            subgraphs,
        };
        if let Some(cycle) = plan.forward_cycle() {
            errors.push(format!(
                "the edges {} form a cycle without a loop edge; give one of them `max-iterations`",
                cycle.join(" -> ")
            ));
        }
        if errors.is_empty() && plan.nodes.iter().all(|n| !n.incoming.is_empty()) {
            errors.push("no entry node: every node has an incoming edge".to_owned());
        }
        for (e, edge) in plan.edges.iter().enumerate() {
            if edge.max_iterations.is_some() {
                let region = plan.reach(edge.to);
                plan.regions.insert(e, region);
            }
        }
        if errors.is_empty() {
            Ok(plan)
        } else {
            Err(PlanError(errors))
        }
    }

    /// The node `id`'s index.
    pub fn node_index(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// Nodes reachable from `start` by forward edges, `start` included, in
    /// index order.
    pub fn reach(&self, start: usize) -> Vec<usize> {
        let mut seen = vec![false; self.nodes.len()];
        let mut stack = vec![start];
        seen[start] = true;
        while let Some(n) = stack.pop() {
            for &e in &self.nodes[n].outgoing {
                let edge = &self.edges[e];
                if edge.max_iterations.is_none() && !seen[edge.to] {
                    seen[edge.to] = true;
                    stack.push(edge.to);
                }
            }
        }
        seen.iter()
            .enumerate()
            .filter_map(|(i, s)| s.then_some(i))
            .collect()
    }

    /// A cycle of forward edges, as node ids (first repeated at the end).
    fn forward_cycle(&self) -> Option<Vec<String>> {
        // 0 unvisited, 1 on the stack, 2 done
        let mut mark = vec![0u8; self.nodes.len()];
        let mut path: Vec<usize> = Vec::new();
        for start in 0..self.nodes.len() {
            if mark[start] != 0 {
                continue;
            }
            // iterative DFS with an explicit edge cursor per frame
            let mut frames: Vec<(usize, usize)> = vec![(start, 0)];
            mark[start] = 1;
            path.push(start);
            while let Some(&mut (n, ref mut cursor)) = frames.last_mut() {
                let outgoing = &self.nodes[n].outgoing;
                if *cursor < outgoing.len() {
                    let edge = &self.edges[outgoing[*cursor]];
                    *cursor += 1;
                    if edge.max_iterations.is_some() {
                        continue;
                    }
                    match mark[edge.to] {
                        0 => {
                            mark[edge.to] = 1;
                            path.push(edge.to);
                            frames.push((edge.to, 0));
                        }
                        1 => {
                            let at = path.iter().position(|&p| p == edge.to).unwrap_or(0);
                            let mut ids: Vec<String> = path[at..]
                                .iter()
                                .map(|&p| self.nodes[p].id.clone())
                                .collect();
                            ids.push(self.nodes[edge.to].id.clone());
                            return Some(ids);
                        }
                        _ => {}
                    }
                } else {
                    mark[n] = 2;
                    path.pop();
                    frames.pop();
                }
            }
        }
        None
    }
}
