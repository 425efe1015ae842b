//! `docs/graph.schema.json`, the JSON Schema of the graph document, is
//! generated from the types below, which mirror the document form the
//! reader (`convergio_graph::document`) accepts. Regenerate it with
//! `CONVERGIO_BLESS=1 cargo test -p convergio-graph --test schema`.
//!
//! The reader, not this schema, is the authority: the schema gives editors
//! completion and a first check; `convergio graph validate` gives the rules
//! (names, cycles, expressions) and positions.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// The mirror types are only read by schemars.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

use convergio_graph::document;
use convergio_graph::schema::Schema;
use schemars::JsonSchema;
use serde_json::{Value, json};

/// A Convergio agent graph: nodes, the edges between them and the state
/// they share (YAML or JSON; reference: docs/graphs.md).
#[derive(JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[schemars(title = "Convergio graph")]
struct GraphDocument {
    /// A name for lists and logs; not unique.
    id: Option<String>,
    /// What the graph does.
    description: Option<String>,
    /// The declared state keys. A run's input is an object of some of
    /// them.
    #[serde(default)]
    state: BTreeMap<String, StateEntry>,
    /// The nodes by id.
    nodes: BTreeMap<String, NodeDoc>,
    /// The edges: `"from -> to"` or a mapping.
    #[serde(default)]
    edges: Vec<EdgeDoc>,
    /// Graphs that `subgraph` nodes name by id.
    #[serde(default)]
    graphs: BTreeMap<String, GraphDocument>,
    /// Agent definitions by name (docs/agent.schema.json; `name` defaults
    /// to the key): an agent node's `input: {agent: NAME, task: …}` gets
    /// the definition in place of its name.
    #[serde(default)]
    agents: BTreeMap<String, Value>,
    /// The state keys a finished run returns (all when absent).
    #[serde(default)]
    output: Vec<String>,
}

/// A state key: its settings, or nothing (`null`) for the defaults.
#[derive(JsonSchema)]
#[serde(untagged)]
enum StateEntry {
    /// The key's settings.
    Settings(StateKey),
    /// No settings: any value, replaced by each write.
    Empty(()),
}

/// A declared state key.
#[derive(JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct StateKey {
    /// JSON Schema every value of the key must match.
    schema: Option<Value>,
    /// How a write combines with the value there (default: replace).
    reducer: Option<Reducer>,
    /// The value before any write.
    default: Option<Value>,
    /// What the key holds.
    description: Option<String>,
}

/// How a write combines with the key's value.
#[derive(JsonSchema)]
#[serde(rename_all = "kebab-case")]
enum Reducer {
    /// The write replaces the value.
    Replace,
    /// The key is a list; a written list is appended item by item.
    Append,
    /// The key is an object; the written object's keys replace its keys.
    Merge,
    /// The key is a number; the written number is added.
    Add,
}

/// One node: exactly one of `tool`, `agent`, `subgraph`, `map`,
/// `condition`, `interrupt`, `planner`, and the fields all nodes share.
#[derive(JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[schemars(extend("oneOf" = [
    {"required": ["tool"]}, {"required": ["agent"]}, {"required": ["subgraph"]},
    {"required": ["map"]}, {"required": ["condition"]}, {"required": ["interrupt"]},
    {"required": ["planner"]}
]))]
struct NodeDoc {
    /// Call a tool: `plugin/tool`.
    tool: Option<ToolRef>,
    /// Run an agent plugin, by id.
    agent: Option<String>,
    /// Run a graph of `graphs` as a child run, by id.
    subgraph: Option<String>,
    /// Run a tool, agent or subgraph once per item of a list.
    map: Option<MapDoc>,
    /// Route by expressions.
    condition: Option<ConditionDoc>,
    /// Pause until a person answers.
    interrupt: Option<InterruptDoc>,
    /// Have a model plan a graph of the listed agents and tools for the
    /// node's input (the goal), and run it.
    planner: Option<PlannerDoc>,
    /// The input: any JSON, with `{{ expr }}` templates (none: the whole
    /// state).
    input: Option<Value>,
    /// Where the output goes: a state key, or a mapping of state keys to
    /// expressions over `output`.
    output: Option<OutputDoc>,
    /// How long one attempt may take: `30s`, `500ms`, `2m`.
    timeout: Option<Duration>,
    /// How a failed attempt is tried again.
    retry: Option<RetryDoc>,
    /// `fail` (the default) or the id of the node the run goes on at.
    on_error: Option<String>,
    /// Whether a call cut by a crash runs again on resume.
    retry_on_resume: Option<RetryOnResume>,
    /// What the node is for.
    description: Option<String>,
}

/// A planner's settings (docs/graphs.md, "Planner nodes").
#[derive(JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct PlannerDoc {
    /// The model that plans, `provider/model` (or `policy`).
    model: Option<String>,
    /// How the router chooses the planning model when `model` is not set.
    policy: Option<convergio_agent::Policy>,
    /// Guidance added to the planner's own instructions.
    instructions: Option<String>,
    /// The agents a plan may use: definitions, or names of the graph's
    /// `agents`.
    agents: Option<Vec<AgentRef>>,
    /// The tools a plan may call, `plugin/tool`.
    tools: Option<Vec<String>>,
    /// The most nodes a plan may have (default 6, at most 32).
    max_nodes: Option<u32>,
    /// Plans asked for in all (default 3, at most 10).
    attempts: Option<u32>,
    /// Sampling temperature of the planning model (default 0).
    temperature: Option<f32>,
    /// Seed of the sampler.
    seed: Option<u64>,
    /// The most tokens of each plan (default 800).
    max_output_tokens: Option<u32>,
    /// The agent plugin that plans (default `agent-llm`; needs `runs`).
    plugin: Option<String>,
}

/// An agent a planner may use.
#[derive(JsonSchema)]
#[serde(untagged)]
enum AgentRef {
    /// The name of one of the graph's `agents`.
    Name(String),
    /// A definition.
    Definition(Box<convergio_agent::Definition>),
}

/// A tool: `plugin/tool`, or a mapping.
#[derive(JsonSchema)]
#[serde(untagged)]
enum ToolRef {
    /// `plugin/tool`, e.g. `web/fetch`.
    Short(#[schemars(pattern(r"^[^/]+/[^/]+$"))] String),
    /// The plugin and the tool apart.
    Long(ToolLong),
}

/// A tool named by its plugin and its name.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
struct ToolLong {
    /// The plugin's id.
    plugin: String,
    /// The tool's name.
    tool: String,
}

/// A map node's fan-out: exactly one of `tool`, `agent`, `subgraph`.
#[derive(JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[schemars(extend("oneOf" = [
    {"required": ["tool"]}, {"required": ["agent"]}, {"required": ["subgraph"]}
]))]
struct MapDoc {
    /// An expression that yields the list.
    over: String,
    /// The most items running at once (default 4).
    #[schemars(range(min = 1))]
    max_concurrency: Option<u32>,
    /// The tool run per item.
    tool: Option<ToolRef>,
    /// The agent run per item.
    agent: Option<String>,
    /// The subgraph run per item.
    subgraph: Option<String>,
}

/// A condition node's routes.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
struct ConditionDoc {
    /// Tried in order; the first whose `when` holds is taken.
    #[serde(default)]
    routes: Vec<RouteDoc>,
    /// Taken when no route holds (none: the run fails).
    default: Option<String>,
}

/// One route.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
struct RouteDoc {
    /// A condition expression.
    when: String,
    /// The node it leads to.
    to: String,
}

/// What the person answering sees and may answer.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
struct InterruptDoc {
    /// The question, with `{{ expr }}` templates.
    prompt: String,
    /// JSON Schema the answer must match.
    schema: Option<Value>,
}

/// Where a node's output goes.
#[derive(JsonSchema)]
#[serde(untagged)]
enum OutputDoc {
    /// The whole output goes to this state key.
    Key(String),
    /// Each state key gets an expression over `output`.
    Map(BTreeMap<String, String>),
}

/// A duration: a number and a unit, e.g. `30s`, `500ms`, `2m`, `1h 30m`.
#[derive(JsonSchema)]
#[schemars(transparent)]
struct Duration(#[schemars(pattern(r"^\s*\d"))] String);

/// How a failed attempt is tried again.
#[derive(JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RetryDoc {
    /// Attempts in all, the first included.
    #[schemars(range(min = 1))]
    attempts: u32,
    /// The wait before the second attempt; it doubles after each.
    backoff: Option<Duration>,
    /// The longest wait (default 30s).
    max_backoff: Option<Duration>,
}

/// Whether a call cut by a crash runs again on resume.
#[derive(JsonSchema)]
#[serde(rename_all = "kebab-case")]
enum RetryOnResume {
    /// Run it again with the same idempotency key (the default).
    Always,
    /// Ask the operator to mark it done, retry it or fail it.
    Never,
}

/// An edge: `"from -> to"`, or a mapping.
#[derive(JsonSchema)]
#[serde(untagged)]
enum EdgeDoc {
    /// `from -> to`.
    Short(#[schemars(pattern(r"^\s*\S+\s*->\s*\S+\s*$"))] String),
    /// An edge with a condition or a loop bound.
    Long(EdgeLong),
}

/// An edge as a mapping.
#[derive(JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct EdgeLong {
    /// The node it leaves.
    from: String,
    /// The node it leads to.
    to: String,
    /// Taken only when this expression holds.
    when: Option<String>,
    /// Makes it a loop edge, taken at most this many times in a run.
    #[schemars(range(min = 1))]
    max_iterations: Option<u32>,
}

fn generated() -> String {
    let mut schema = serde_json::to_value(schemars::schema_for!(GraphDocument)).unwrap();
    no_null_fields(&mut schema);
    let mut text = serde_json::to_string_pretty(&sorted(schema)).unwrap();
    text.push('\n');
    text
}

/// `value` with every object's keys in order: the file is the same whether
/// serde_json keeps insertion order (its `preserve_order` feature, which
/// another crate of the workspace turns on in `cargo test --workspace`) or
/// not (`cargo test -p convergio-graph`).
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// An optional field may be left out, not set to null (the reader takes
/// `description: null` as a mistake): `null` is taken out of the types of
/// properties, where schemars puts it for an `Option`.
fn no_null_fields(value: &mut Value) {
    let null = json!({"type": "null"});
    if let Some(Value::Object(props)) = value.get_mut("properties") {
        for prop in props.values_mut() {
            let Value::Object(prop) = prop else { continue };
            if let Some(Value::Array(types)) = prop.get_mut("type") {
                types.retain(|t| t != "null");
                if let [one] = types.as_slice() {
                    let one = one.clone();
                    prop.insert("type".to_owned(), one);
                }
            }
            if let Some(Value::Array(any)) = prop.get_mut("anyOf") {
                any.retain(|s| *s != null);
                if let [Value::Object(one)] = any.as_slice() {
                    let one = one.clone();
                    prop.remove("anyOf");
                    prop.extend(one);
                }
            }
        }
    }
    match value {
        Value::Object(map) => map.values_mut().for_each(no_null_fields),
        Value::Array(items) => items.iter_mut().for_each(no_null_fields),
        _ => {}
    }
}

fn published_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/graph.schema.json")
}

#[test]
fn the_document_schema_is_published() {
    let current = generated();
    let path = published_path();
    if std::env::var_os("CONVERGIO_BLESS").is_some() {
        std::fs::write(&path, &current).unwrap();
        return;
    }
    let published = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        published == current,
        "{} is out of date; regenerate it with CONVERGIO_BLESS=1 cargo test -p convergio-graph --test schema",
        path.display()
    );
}

fn schema() -> Schema {
    Schema::compile(&serde_json::from_str(&generated()).unwrap()).unwrap()
}

#[test]
fn every_example_graph_matches_the_schema() {
    let schema = schema();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/graphs");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let value = document::to_json(&text).unwrap();
        if let Err(errors) = schema.validate(&value) {
            panic!("{}: {errors:#?}", path.display());
        }
        checked += 1;
    }
    assert!(checked >= 4);
}

#[test]
fn the_schema_refuses_what_the_reader_refuses() {
    let schema = schema();
    let bad = [
        json!({"nodes": {"a": {"tol": "w/f"}}}),
        json!({"nodes": {"a": {"agent": "x", "tool": "w/f"}}}),
        json!({"nodes": {"a": {"agent": "x", "timout": "1s"}}}),
        json!({"nodes": {"a": {"tool": "webfetch"}}}),
        json!({"nodes": {"a": {"agent": "x", "retry": {"attempts": 0}}}}),
        json!({"nodes": {"a": {"map": {"over": "state.x", "tool": "w/f", "agent": "y"}}}}),
        json!({"nodes": {"a": {"agent": "x"}}, "edges": ["a - b"]}),
        json!({"nodes": {"a": {"agent": "x"}}, "state": {"k": {"reducer": "sum"}}}),
        json!({"nodes": {"a": {"agent": "x"}}, "edge": []}),
        json!({"nodes": {"a": {"agent": "x", "description": null}}}),
    ];
    for doc in bad {
        assert!(!schema.is_valid(&doc), "{doc}");
        assert!(document::read(&doc.to_string()).is_err(), "{doc}");
    }
}
