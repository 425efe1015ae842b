//! One agent turn through the platform (issue 15), beside the same loop
//! written directly against the same fake model with a plain HTTP client,
//! and beside LangGraph's prebuilt ReAct agent, in the same run.
//!
//! The turn: the model is asked (instructions, the task "Greet Ada." and the
//! tool `hello/greet`, which the model sees as `hello__greet`), answers with
//! one call of the tool, the tool runs, its result goes back to the model,
//! and the model answers with text. Three steps: model call, tool call,
//! model call (LangGraph's three supersteps: agent, tools, agent).
//!
//! The model is a local HTTP/1.1 server (hyper, on a thread of its own)
//! that speaks OpenAI's Chat Completions and answers at once: a request
//! that carries a tool result (`"tool_call_id"`) gets the final answer,
//! any other gets the tool call. It counts requests, so every measurement
//! checks that each turn made exactly two model calls.
//!
//! - **ours**: `components/agent-llm` run as a one-node graph run, as
//!   `convergio agent run` does (`convergio_runtime::graphs::runs`: the
//!   orchestrator component, the run driver and the journal with durability
//!   `off` or `process`), each model call through the router and the
//!   `provider-openai` component (`wasi:http`, the key from the vault), the
//!   tool call through `convergio:platform/tools` to the `hello-tool`
//!   component; every model answer and the tool's result are steps recorded
//!   in the run's journal. Timed from `Runs::start` to `Runs::wait`
//!   returning `Done`. The orchestrator, the agent and the tool are opted in
//!   to warm instances (the provider is warm by default).
//! - **floor**: the same loop in plain Rust: the same JSON request built
//!   with `serde_json`, POSTed on a kept-alive hyper connection, the answer
//!   parsed, the tool a native function, the result sent back.
//! - **LangGraph**: `benches/langgraph/agent_bench.py`
//!   (`create_react_agent` with an instant fake chat model that makes the
//!   same tool call; one measurement per process, after
//!   `benches/langgraph/setup.sh` installed LangGraph into a virtualenv).
//!   Its model is in process: it has no HTTP round trip to pay.
//!
//! Per pair (our durability, LangGraph's checkpointer) the three alternate —
//! ours, floor, LangGraph, ours, floor, LangGraph, … — and each alternation
//! gives the ratios LangGraph ÷ ours and ours ÷ floor of the medians; the
//! report gives their min–max. Then where our time goes: the turn with
//! `process` and `off`, the agent called without a graph run, the two model
//! calls through the router alone, the tool call alone, and the floor, in
//! rotating order.
//!
//! Run: `cargo bench -p convergio-benches --bench agent` (after `cargo
//! xtask build-components --release`). The platform's directory (its run
//! journal) and LangGraph's SqliteSaver file go to the system's temp dir
//! (`TMPDIR`). Set `CONVERGIO_BENCH_NO_LANGGRAPH=1` to measure our side and
//! the floor alone (when python or PyPI is unavailable);
//! `CONVERGIO_BENCH_REPS` and `CONVERGIO_BENCH_ALTERNATIONS` change the 200
//! turns per measurement and the 5 alternations; `CONVERGIO_BENCH_PROFILE=SECS`
//! only runs turns (durability `process`, or `off` with
//! `CONVERGIO_BENCH_PROFILE_DURABILITY=off`), for a profiler. Under `cargo
//! test` (no `--bench` argument) it runs two turns of each case on the debug
//! components, without LangGraph, as a smoke test. See `docs/benchmarks.md`.

// A benchmark's setup should fail loudly; there is no caller to return an error to.
#![allow(clippy::expect_used, clippy::panic)]

use std::convert::Infallible;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use convergio_benches::langgraph::LangGraph;
use convergio_benches::quantile;
use convergio_cap_runs::{Runs, Status};
use convergio_graph::model::Graph;
use convergio_runtime::config::GraphDurability;
use convergio_runtime::inference::{
    Caller, ChatRequest, Message, ModelSelector, ResponseFormat, Role, Router, Sampling, ToolCall,
    ToolDefinition,
};
use convergio_runtime::{Platform, Runtime};
use convergio_tests::fake_providers::{self as fake, Flavor};
use convergio_tests::{TestPlugin, bench_crate_component, measuring, target_dir, write_platform};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// The key the provider sends, from the platform's vault.
const SECRET: &str = "sk-bench-agent-0123456789abcdef";
/// The model, as the agent definition names it.
const MODEL: &str = "openai/gpt-6-luna";
const INSTRUCTIONS: &str = "You greet people. Use the tools.";
const TASK: &str = "Greet Ada.";
/// The model's final answer.
const FINAL: &str = "Ada has been greeted.";
/// The tool as the model sees it (`plugin__tool`).
const TOOL_FOR_MODEL: &str = "hello__greet";
/// The tool call's arguments.
const ARGUMENTS: &str = r#"{"name":"Ada"}"#;
/// What `hello-tool`'s `greet` answers to them.
const GREETING: &str = r#"{"greeting":"Hello, Ada!"}"#;
/// Steps of a turn: model call, tool call, model call.
const STEPS: f64 = 3.0;
/// Timed turns per measurement.
const REPS: usize = 200;
/// Untimed turns before each measurement.
const WARMUP: usize = 20;
/// Alternations ours / floor / LangGraph per pair.
const ALTERNATIONS: usize = 5;
/// `[plugin.limits]` of the orchestrator, the agent and the tool.
const WARM: &str = "warm-instances = 4";

// ---------------------------------------------------------------- the model

/// An OpenAI chat completion with `message`.
fn completion(message: &Value, finish: &str) -> Bytes {
    Bytes::from(
        json!({
            "id": "chatcmpl-bench-agent",
            "object": "chat.completion",
            "created": 1_765_000_000,
            "model": "gpt-6-luna",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30}
        })
        .to_string(),
    )
}

/// What the fake model shares with the bench.
struct ModelState {
    /// The two answers: the tool call, and the final text.
    call: Bytes,
    answer: Bytes,
    auth: String,
    /// Chat requests answered.
    requests: AtomicU64,
    /// The body of the last request that carried a tool result.
    last_tool_result: Mutex<Bytes>,
}

/// The fake model: a hyper server on a thread (and a current-thread tokio
/// runtime) of its own, on a free port of 127.0.0.1, for the process's life.
struct FakeModel {
    port: u16,
    state: Arc<ModelState>,
}

impl FakeModel {
    fn start() -> Self {
        let state = Arc::new(ModelState {
            call: completion(
                &json!({"role": "assistant", "content": null, "tool_calls": [{
                    "id": "call_1", "type": "function",
                    "function": {"name": TOOL_FOR_MODEL, "arguments": ARGUMENTS}}]}),
                "tool_calls",
            ),
            answer: completion(&json!({"role": "assistant", "content": FINAL}), "stop"),
            auth: format!("Bearer {SECRET}"),
            requests: AtomicU64::new(0),
            last_tool_result: Mutex::new(Bytes::new()),
        });
        let shared = state.clone();
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("fake-model".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("the fake model's runtime");
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                        .await
                        .expect("bind a port for the fake model");
                    port_tx
                        .send(listener.local_addr().expect("local address").port())
                        .expect("send the port");
                    loop {
                        let (socket, _) = listener.accept().await.expect("accept");
                        // Like production servers: no Nagle delay on small writes.
                        socket.set_nodelay(true).expect("nodelay");
                        let state = shared.clone();
                        tokio::spawn(async move {
                            let service = hyper::service::service_fn(move |request| {
                                answer(request, state.clone())
                            });
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(socket), service)
                                .await;
                        });
                    }
                });
            })
            .expect("start the fake model's thread");
        let port = port_rx.recv().expect("the fake model's port");
        Self { port, state }
    }

    fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::SeqCst)
    }

    fn last_tool_result(&self) -> Bytes {
        self.state
            .last_tool_result
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn answer(
    request: hyper::Request<hyper::body::Incoming>,
    state: Arc<ModelState>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let authorized = parts
        .headers
        .get("authorization")
        .is_some_and(|v| v.as_bytes() == state.auth.as_bytes());
    let (status, reply) = if parts.uri.path() != "/v1/chat/completions" {
        (
            404,
            Bytes::from_static(br#"{"error":{"message":"no such endpoint"}}"#),
        )
    } else if !authorized {
        (
            401,
            Bytes::from_static(br#"{"error":{"message":"invalid key"}}"#),
        )
    } else {
        state.requests.fetch_add(1, Ordering::SeqCst);
        if contains(&body, b"\"tool_call_id\"") {
            *state
                .last_tool_result
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = body;
            (200, state.answer.clone())
        } else {
            (200, state.call.clone())
        }
    };
    Ok(hyper::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(reply))
        .expect("a valid response"))
}

// ---------------------------------------------------------------- the floor

/// The same loop in plain Rust: a kept-alive hyper connection, `serde_json`
/// for the bodies, the tool a native function.
struct Floor {
    client: Client,
    /// The connection, driven by the turn's own task (not spawned): the
    /// client side makes no hop between threads.
    connection: std::pin::Pin<Box<FloorConnection>>,
}

type FloorConnection =
    hyper::client::conn::http1::Connection<TokioIo<tokio::net::TcpStream>, Full<Bytes>>;

struct Client {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    host: String,
    auth: String,
    tools: Value,
}

/// `hello-tool`'s `greet`, natively: the same JSON in and out.
fn greet(arguments: &str) -> String {
    let args: Value = serde_json::from_str(arguments).expect("the call's arguments are JSON");
    let name = args["name"].as_str().expect("a name");
    json!({"greeting": format!("Hello, {name}!")}).to_string()
}

impl Floor {
    async fn connect(port: u16) -> Self {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect to the fake model");
        stream.set_nodelay(true).expect("nodelay");
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        let client = Client {
            sender,
            host: format!("127.0.0.1:{port}"),
            auth: format!("Bearer {SECRET}"),
            // As `hello-tool` describes `greet`.
            tools: json!([{"type": "function", "function": {
                "name": TOOL_FOR_MODEL,
                "description": "Greets someone by name",
                "parameters": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
            }}]),
        };
        Self {
            client,
            connection: Box::pin(connection),
        }
    }

    /// One turn, with the connection polled beside it.
    async fn turn(&mut self) -> String {
        let turn = self.client.turn();
        tokio::pin!(turn);
        tokio::select! {
            biased;
            answer = &mut turn => answer,
            ended = self.connection.as_mut() => panic!("the connection to the fake model ended: {ended:?}"),
        }
    }
}

impl Client {
    async fn chat(&mut self, messages: &[Value]) -> Value {
        let body = json!({"model": "gpt-6-luna", "messages": messages, "tools": self.tools});
        let request = hyper::Request::post("/v1/chat/completions")
            .header("host", &self.host)
            .header("content-type", "application/json")
            .header("authorization", &self.auth)
            .body(Full::new(Bytes::from(body.to_string())))
            .expect("request");
        self.sender.ready().await.expect("connection ready");
        let response = self.sender.send_request(request).await.expect("model call");
        assert!(response.status().is_success(), "{}", response.status());
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        serde_json::from_slice(&bytes).expect("a JSON answer")
    }

    /// One turn: ask, run the tools the answer calls, ask again, until an
    /// answer without calls; returns its text.
    async fn turn(&mut self) -> String {
        let mut messages = vec![
            json!({"role": "system", "content": INSTRUCTIONS}),
            json!({"role": "user", "content": TASK}),
        ];
        for _ in 0..8 {
            let mut answer = self.chat(&messages).await;
            let message = answer["choices"][0]["message"].take();
            let calls = message["tool_calls"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if calls.is_empty() {
                return message["content"].as_str().unwrap_or_default().to_owned();
            }
            messages.push(message);
            for call in calls {
                let arguments = call["function"]["arguments"].as_str().unwrap_or("{}");
                let result = match call["function"]["name"].as_str() {
                    Some(TOOL_FOR_MODEL) => greet(arguments),
                    other => format!("error: no tool {other:?}"),
                };
                messages
                    .push(json!({"role": "tool", "tool_call_id": call["id"], "content": result}));
            }
        }
        panic!("the floor's loop did not end");
    }
}

// ---------------------------------------------------------------- ours

/// The platform: the fake model's key in the vault, the OpenAI adapter
/// pointed at it, `hello-tool`, the agent and the orchestrator; as loaded
/// from its `platform.toml`.
async fn platform(dir: &Path, origin: &str) -> (Runtime, Platform) {
    fake::add_platform_key(dir, Flavor::OpenAi, SECRET);
    let plugins = [
        TestPlugin::new(
            "openai",
            "provider",
            bench_crate_component("convergio_provider_openai"),
        )
        .declares(&["http", "keys", "config", "logging"])
        .grants(&format!(
            "http = [\"{origin}\"]\nkeys = [\"openai\"]\nconfig = {{ base-url = \"{origin}/v1\" }}\nlogging = true"
        )),
        TestPlugin::new("hello", "tool", bench_crate_component("hello_tool"))
            .declares(&["logging", "config"])
            .grants("config = { greeting = \"Hello\" }\nlogging = true")
            .limits(WARM),
        TestPlugin::new(
            "agent-llm",
            "agent",
            bench_crate_component("convergio_agent_llm"),
        )
        .declares(&["inference", "plugins", "logging"])
        .optional(&["storage", "runs"])
        .grants("inference = true\nplugins = [\"hello\"]\nlogging = true")
        .limits(WARM),
        TestPlugin::new(
            "orchestrator",
            "orchestrator",
            bench_crate_component("convergio_orchestrator"),
        )
        .declares(&["plugins"])
        .grants("plugins = [\"agent-llm\"]")
        .limits(WARM),
    ];
    // The compiled components are cached between runs of the bench.
    let profile = if measuring() { "release" } else { "debug" };
    let settings = format!(
        "compile-cache = true\ncache-dir = {:?}\n",
        target_dir()
            .join("convergio-test-cache")
            .join(format!("bench-agent-{profile}"))
    );
    let path = write_platform(dir, &settings, &plugins);
    let platform = Platform::load(&path).unwrap_or_else(|e| panic!("platform: {e}"));
    let runtime = Runtime::new(&platform)
        .await
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    (runtime, platform)
}

fn definition() -> Value {
    json!({"name": "greeter", "instructions": INSTRUCTIONS, "model": MODEL, "tools": ["hello/greet"]})
}

/// The graph `convergio agent run` makes: one `agent` node on `agent-llm`
/// whose input is the run's (`agent` and `task`) and whose output is the
/// run's `answer`.
fn one_node_graph() -> Graph {
    let document = json!({
        "id": "agent:greeter",
        "description": "agent `greeter` alone",
        "state": {"agent": {}, "task": {}, "answer": {}},
        "nodes": {"agent": {"agent": "agent-llm", "output": "answer"}},
        "output": ["answer"]
    });
    convergio_graph::document::read(&document.to_string()).unwrap_or_else(|d| {
        panic!(
            "{}",
            d.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}

/// One agent turn as a graph run, from `start` to `wait` returning `Done`.
async fn run_turn(runs: &Runs, graph: &Graph, input: Value) -> f64 {
    let started = Instant::now();
    let run = runs.start(graph, input, None).await.expect("start");
    let status = runs.wait(&run).await.expect("wait");
    let elapsed = started.elapsed().as_secs_f64() * 1e6;
    match status {
        Status::Done { output } => assert_eq!(output, json!({"answer": FINAL}), "run {run}"),
        other => panic!("run {run} ended {other:?}"),
    }
    elapsed
}

/// The agent's two model requests of a turn, as the agent sends them to
/// the router.
fn model_requests() -> [ChatRequest; 2] {
    let tools = vec![ToolDefinition {
        name: TOOL_FOR_MODEL.into(),
        description: "Greets someone by name".into(),
        parameters:
            r#"{"type":"object","properties":{"name":{"type":"string"}},"required":["name"]}"#
                .into(),
    }];
    let first = vec![
        Message::text(Role::System, INSTRUCTIONS),
        Message::text(Role::User, TASK),
    ];
    let mut second = first.clone();
    second.push(Message {
        role: Role::Assistant,
        content: String::new(),
        tool_calls: vec![ToolCall {
            id: "call_1".into(),
            name: TOOL_FOR_MODEL.into(),
            arguments: ARGUMENTS.into(),
        }],
        tool_call_id: None,
    });
    second.push(Message {
        role: Role::Tool,
        content: GREETING.into(),
        tool_calls: Vec::new(),
        tool_call_id: Some("call_1".into()),
    });
    [first, second].map(|messages| ChatRequest {
        model: ModelSelector::Named(MODEL.into()),
        messages,
        tools: tools.clone(),
        sampling: Sampling::default(),
        format: ResponseFormat::Text,
    })
}

// ---------------------------------------------------------------- measuring

/// Median, p10 and p90 (linear interpolation, as `agent_bench.py`).
#[derive(Clone, Copy, Debug)]
struct Stats {
    median: f64,
    p10: f64,
    p90: f64,
}

fn stats(mut values: Vec<f64>) -> Stats {
    values.sort_by(f64::total_cmp);
    Stats {
        median: quantile(&values, 0.5),
        p10: quantile(&values, 0.1),
        p90: quantile(&values, 0.9),
    }
}

fn cell(s: Stats) -> String {
    format!("{:.0} [{:.0}–{:.0}]", s.median, s.p10, s.p90)
}

fn min_max(values: &[f64]) -> (f64, f64) {
    (
        values.iter().copied().fold(f64::INFINITY, f64::min),
        values.iter().copied().fold(0.0, f64::max),
    )
}

/// What is timed: one op (a turn, or a piece of one), in µs; each op checks
/// its own result.
enum Case<'a> {
    Turn { runs: &'a Runs, name: &'static str },
    AgentAlone,
    ModelCalls,
    ToolCall,
    Floor,
}

/// Everything a measurement needs.
struct Bench {
    runtime: Runtime,
    router: Arc<Router>,
    model: FakeModel,
    graph: Graph,
    input: Value,
    requests: [ChatRequest; 2],
    floor: tokio::sync::Mutex<Floor>,
}

impl Bench {
    /// Model requests one op of `case` makes.
    fn model_calls(case: &Case<'_>) -> u64 {
        match case {
            Case::ToolCall => 0,
            _ => 2,
        }
    }

    async fn op(&self, case: &Case<'_>) -> f64 {
        match case {
            Case::Turn { runs, .. } => run_turn(runs, &self.graph, self.input.clone()).await,
            Case::AgentAlone => {
                let args = json!([{
                    "run-id": "bench", "node-id": "agent",
                    "input": self.input.to_string(), "state": [],
                }]);
                let started = Instant::now();
                let out = self
                    .runtime
                    .invoke_as("orchestrator", "agent-llm", "run", &args)
                    .await
                    .expect("agent.run");
                let elapsed = started.elapsed().as_secs_f64() * 1e6;
                assert_eq!(
                    out["ok"]["output"],
                    json!(json!(FINAL).to_string()),
                    "{out}"
                );
                elapsed
            }
            Case::ModelCalls => {
                let caller = Caller {
                    plugin: "agent-llm".into(),
                    agent: Some("greeter".into()),
                    run: None,
                };
                let [first, second] = self.requests.clone();
                let started = Instant::now();
                let a = self.router.complete(&caller, first).await.expect("call");
                let b = self.router.complete(&caller, second).await.expect("call");
                let elapsed = started.elapsed().as_secs_f64() * 1e6;
                assert_eq!(a.message.tool_calls.len(), 1);
                assert_eq!(b.message.content, FINAL);
                elapsed
            }
            Case::ToolCall => {
                let args = json!(["greet", ARGUMENTS]);
                let started = Instant::now();
                let out = self
                    .runtime
                    .invoke_as("agent-llm", "hello", "invoke", &args)
                    .await
                    .expect("tool call");
                let elapsed = started.elapsed().as_secs_f64() * 1e6;
                assert_eq!(out["ok"], json!(GREETING), "{out}");
                elapsed
            }
            Case::Floor => {
                let mut floor = self.floor.lock().await;
                let started = Instant::now();
                let answer = floor.turn().await;
                let elapsed = started.elapsed().as_secs_f64() * 1e6;
                assert_eq!(answer, FINAL);
                elapsed
            }
        }
    }

    /// µs per op of `reps` ops after `warmup` untimed ones; checks the
    /// model calls they made.
    async fn measure(&self, case: &Case<'_>, reps: usize, warmup: usize) -> Stats {
        if let Case::Turn { runs, .. } = case {
            // The agent records its steps through the driver the runtime serves.
            self.runtime.serve_runs(runs);
        }
        let before = self.model.requests();
        for _ in 0..warmup {
            self.op(case).await;
        }
        let mut times = Vec::with_capacity(reps);
        for _ in 0..reps {
            times.push(self.op(case).await);
        }
        let made = self.model.requests() - before;
        assert_eq!(
            made,
            Self::model_calls(case) * (reps + warmup) as u64,
            "model calls made"
        );
        stats(times)
    }
}

// ---------------------------------------------------------------- LangGraph

/// One `agent_bench.py` measurement with checkpointer `mode`.
fn langgraph_measure(
    lg: &LangGraph,
    mode: &str,
    reps: usize,
    warmup: usize,
    db_dir: &Path,
) -> Stats {
    let (reps, warmup) = (reps.to_string(), warmup.to_string());
    let db_dir = db_dir.display().to_string();
    let r = lg.run(
        "agent_bench.py",
        &[
            "--mode", mode, "--reps", &reps, "--warmup", &warmup, "--db-dir", &db_dir,
        ],
    );
    let get = |k: &str| {
        r[k].as_f64()
            .unwrap_or_else(|| panic!("agent_bench.py: no {k} in {r}"))
    };
    Stats {
        median: get("us_per_turn_median"),
        p10: get("p10"),
        p90: get("p90"),
    }
}

// ---------------------------------------------------------------- main

/// A count from the environment variable `name` (at least 1), else `default`.
fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .map_or(default, |n| n.max(1))
}

fn main() {
    let bench = measuring();
    let (reps, warmup, alternations) = if bench {
        (
            env_count("CONVERGIO_BENCH_REPS", REPS),
            WARMUP,
            env_count("CONVERGIO_BENCH_ALTERNATIONS", ALTERNATIONS),
        )
    } else {
        (2, 1, 1)
    };
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let model = FakeModel::start();
    let dir = tempfile::tempdir().expect("temp dir for the platform");
    let (runtime, platform) = tokio.block_on(platform(dir.path(), &model.origin()));
    let durability = |d| {
        let _guard = tokio.enter();
        convergio_runtime::graphs::runs(&runtime, &platform, Some(d)).expect("the run driver")
    };
    let runs_off = durability(GraphDurability::Off);
    let runs_process = durability(GraphDurability::Process);
    let floor = tokio.block_on(Floor::connect(model.port));
    let b = Bench {
        router: runtime.router().expect("the platform's router"),
        runtime: runtime.clone(),
        model,
        graph: one_node_graph(),
        input: json!({"agent": definition(), "task": TASK}),
        requests: model_requests(),
        floor: tokio::sync::Mutex::new(floor),
    };
    let off = Case::Turn {
        runs: &runs_off,
        name: "off",
    };
    let process = Case::Turn {
        runs: &runs_process,
        name: "process",
    };

    // The tool's result reaches the model, in both loops, and the platform
    // keeps each model answer and the tool's result as steps of the run.
    for case in [&process, &Case::Floor] {
        tokio.block_on(b.measure(case, 1, 0));
        let body = b.model.last_tool_result();
        let body: Value = serde_json::from_slice(&body).expect("the last request was JSON");
        let last = body["messages"].as_array().and_then(|m| m.last()).cloned();
        let last = last.expect("messages");
        assert_eq!(last["role"], "tool", "{body}");
        assert_eq!(last["content"], GREETING, "{body}");
    }
    runtime.serve_runs(&runs_process);
    let steps = tokio.block_on(async {
        let run = runs_process
            .start(&b.graph, b.input.clone(), None)
            .await
            .expect("start");
        let status = runs_process.wait(&run).await.expect("wait");
        assert!(matches!(status, Status::Done { .. }), "{status:?}");
        runs_process.store().run_steps(&run).expect("steps")
    });
    let kinds: Vec<&str> = steps.iter().map(|(_, _, s)| s.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["model", "tools", "model"],
        "the steps a turn records"
    );
    println!(
        "agent: one turn = model call (tool call), tool call, model call (answer); \
         the run's journal keeps them as the node call's steps: {}",
        kinds.join(", ")
    );

    println!(
        "agent: µs per turn, median [p10–p90] of {reps} turns after {warmup} warm-up turns; \
         {STEPS} steps a turn; platform: orchestrator, agent-llm and hello-tool {WARM:?}"
    );
    // For a profiler: `CONVERGIO_BENCH_PROFILE=SECS` runs turns with
    // durability `process` (`CONVERGIO_BENCH_PROFILE_DURABILITY=off` for
    // the other) for SECS seconds, and nothing else.
    if let Some(secs) = std::env::var("CONVERGIO_BENCH_PROFILE")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
        let case = match std::env::var("CONVERGIO_BENCH_PROFILE_DURABILITY").as_deref() {
            Ok("off") => &off,
            _ => &process,
        };
        let until = Instant::now() + std::time::Duration::from_secs(secs);
        while Instant::now() < until {
            let s = tokio.block_on(b.measure(case, reps, 0));
            println!("profile: µs per turn {}", cell(s));
        }
        return;
    }

    let langgraph = if bench {
        LangGraph::setup("there are no LangGraph ratios in this run.")
    } else {
        None
    };
    let db_dir = std::env::temp_dir();
    let pairs = [(&off, "none"), (&off, "memory"), (&process, "sqlite")];
    let mut summary = Vec::new();
    for (ours_case, mode) in pairs {
        let Case::Turn { name, .. } = ours_case else {
            unreachable!("pairs are turns")
        };
        let mut lg_ratios = Vec::new();
        let mut floor_ratios = Vec::new();
        let mut added = Vec::new();
        for a in 0..alternations {
            let ours = tokio.block_on(b.measure(ours_case, reps, warmup));
            let floor = tokio.block_on(b.measure(&Case::Floor, reps, warmup));
            let theirs = langgraph
                .as_ref()
                .map(|lg| langgraph_measure(lg, mode, reps, warmup, &db_dir));
            let lg_ratio = theirs.map(|t| t.median / ours.median);
            floor_ratios.push(ours.median / floor.median);
            added.push(ours.median - floor.median);
            println!(
                "{name:<7} vs {mode:<7} alt {a}: ours {:<20} floor {:<16} langgraph {:<22} \
                 ours÷floor {:.1}×  langgraph÷ours {}",
                cell(ours),
                cell(floor),
                theirs.map_or("-".into(), cell),
                ours.median / floor.median,
                lg_ratio.map_or("-".into(), |r| format!("{r:.2}×"))
            );
            if let Some(r) = lg_ratio {
                lg_ratios.push(r);
            }
        }
        let (fmin, fmax) = min_max(&floor_ratios);
        let (amin, amax) = min_max(&added);
        let lg = if lg_ratios.is_empty() {
            String::new()
        } else {
            let (lmin, lmax) = min_max(&lg_ratios);
            format!("  LangGraph ({mode}) ÷ ours: {lmin:.2}× – {lmax:.2}×")
        };
        summary.push(format!(
            "ours {name:<7} vs {mode:<7}: ours ÷ floor {fmin:.1}× – {fmax:.1}× (ours − floor {amin:.0} – {amax:.0} µs a turn, {:.0} – {:.0} µs a step){lg}",
            amin / STEPS,
            amax / STEPS
        ));
    }
    println!("\nratios (min – max over {alternations} alternations):");
    for line in &summary {
        println!("  {line}");
    }

    // Where a turn's time goes: the pieces in rotating order, so drift
    // hits every case alike.
    println!(
        "\n== where a turn goes (µs per op; median of the measurements' medians, their range) =="
    );
    let cases: [(&str, Case<'_>); 6] = [
        ("turn, graph run, durability process", process),
        ("turn, graph run, durability off", off),
        (
            "agent-llm `run` alone (no graph run, no journal)",
            Case::AgentAlone,
        ),
        ("the turn's 2 model calls via the router", Case::ModelCalls),
        ("the turn's tool call (hello/greet)", Case::ToolCall),
        ("floor: the turn in plain Rust + hyper", Case::Floor),
    ];
    let rounds = alternations.max(1) * 2;
    let mut medians: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    for round in 0..rounds {
        for k in 0..cases.len() {
            let i = (round + k) % cases.len();
            let s = tokio.block_on(b.measure(&cases[i].1, reps, warmup));
            medians[i].push(s.median);
        }
    }
    let mid: Vec<f64> = medians.iter().map(|m| stats(m.clone()).median).collect();
    for ((name, _), (m, all)) in cases.iter().zip(mid.iter().zip(&medians)) {
        let (lo, hi) = min_max(all);
        println!("  {name:<50} {m:>8.0}  ({lo:.0} – {hi:.0})");
    }
    println!(
        "  => journaling (process − off) {:.0}; run driver + orchestrator (off − agent alone) {:.0}; \
         agent's own work and its tool hop (agent alone − model calls − tool call) {:.0}; \
         model calls beyond the floor's HTTP (model calls − floor) {:.0}",
        mid[0] - mid[1],
        mid[1] - mid[2],
        mid[2] - mid[3] - mid[4],
        mid[3] - mid[5],
    );
    if !bench {
        println!(
            "agent: smoke test passed; run `cargo bench -p convergio-benches --bench agent` to measure"
        );
    }
}
