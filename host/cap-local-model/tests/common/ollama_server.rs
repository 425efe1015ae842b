//! A fake Ollama server: the endpoints the Ollama backend calls, speaking
//! the wire format of Ollama's API reference (`docs/api.md` of
//! ollama/ollama): JSON answers, NDJSON streams (`application/x-ndjson`,
//! one object a line) for `/api/chat` and `/api/pull`, and
//! `{"error": "..."}` bodies for failures. It records every request it gets.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;

type Body = BoxBody<Bytes, Infallible>;

const CREATED_AT: &str = "2025-01-15T10:20:30.123456789Z";

/// A model the fake server has.
#[derive(Debug, Clone)]
pub struct FakeModel {
    pub name: &'static str,
    pub size: u64,
    /// Digest of the manifest, as `/api/tags` shows it.
    pub digest: &'static str,
    /// sha256 of the GGUF blob, as the modelfile's `FROM` names it.
    pub blob: &'static str,
    pub arch: &'static str,
    pub file_type: u64,
    pub quantization: &'static str,
    pub parameter_size: &'static str,
    pub context_length: u64,
    pub embedding_length: u64,
    pub loaded: bool,
}

/// Two models, as a real server could have them.
pub fn models() -> Vec<FakeModel> {
    vec![
        FakeModel {
            name: "llama3.2:1b",
            size: 1_321_098_329,
            digest: "baf6a787fdffd633537aa2eb51cfd54cb93ff08e28040095462bb63daf552878",
            blob: "74701a8c35f6c8d9a4b91f3f3497643001d63e0c7a84e085bed452548fa88d45",
            arch: "llama",
            file_type: 7,
            quantization: "Q8_0",
            parameter_size: "1.2B",
            context_length: 131_072,
            embedding_length: 2048,
            loaded: true,
        },
        FakeModel {
            name: "all-minilm:latest",
            size: 45_960_996,
            digest: "1b226e2802dbb772b5fc32a58f103ca1804ef7501331012de126ab22f67475ef",
            blob: "797b70c4edf85907fe0a49eb85811256f65fa0f7bf52166b147fd16be2be4662",
            arch: "bert",
            file_type: 1,
            quantization: "F16",
            parameter_size: "23M",
            context_length: 256,
            embedding_length: 384,
            loaded: false,
        },
    ]
}

/// How the chat stream sends its pieces.
#[derive(Debug, Clone)]
pub enum Pace {
    /// All at once.
    Immediate,
    /// The first piece at once, each next one when the test adds a permit.
    Gated(Arc<Semaphore>),
    /// One piece every interval.
    Every(Duration),
}

/// What the fake server answers a chat with.
#[derive(Debug, Clone)]
pub struct ChatScript {
    /// The pieces of the answer, one NDJSON line each. `options.num_predict`
    /// cuts them (with `done_reason: "length"`), as Ollama does.
    pub pieces: Vec<String>,
    pub pace: Pace,
}

impl Default for ChatScript {
    fn default() -> Self {
        Self {
            pieces: ["Hel", "lo", ", ", "world"].map(String::from).to_vec(),
            pace: Pace::Immediate,
        }
    }
}

/// A request the server got.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// The JSON body (`Null` when there was none).
    pub body: Value,
}

/// What happened to the last chat stream.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ChatOutcome {
    /// Pieces written to the connection.
    pub pieces_sent: usize,
    /// The client went away before the stream ended.
    pub closed_early: bool,
    /// The stream ended (either way).
    pub ended: bool,
}

struct State {
    models: Vec<FakeModel>,
    script: ChatScript,
    requests: Mutex<Vec<Recorded>>,
    chat: Mutex<ChatOutcome>,
    chat_ended: Notify,
}

/// A running fake Ollama server; stops when dropped.
pub struct FakeOllama {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Drop for FakeOllama {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeOllama {
    /// A server with [`models`] that answers chats with `script`.
    pub async fn start(script: ChatScript) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            models: models(),
            script,
            requests: Mutex::new(Vec::new()),
            chat: Mutex::new(ChatOutcome::default()),
            chat_ended: Notify::new(),
        });
        let served = Arc::clone(&state);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let state = Arc::clone(&served);
                tokio::spawn(async move {
                    let service = service_fn(move |request| handle(Arc::clone(&state), request));
                    // A client that goes away mid-answer is an error here: fine.
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            url: format!("http://{addr}"),
            state,
            task,
        }
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    /// The bodies of the requests to `path`.
    pub fn bodies(&self, path: &str) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .map(|r| r.body)
            .collect()
    }

    /// Wait (up to `limit`) for the chat stream to end; its outcome.
    pub async fn chat_ended(&self, limit: Duration) -> ChatOutcome {
        let wait = async {
            loop {
                let notified = self.state.chat_ended.notified();
                let outcome = *self.state.chat.lock().unwrap();
                if outcome.ended {
                    return outcome;
                }
                notified.await;
            }
        };
        tokio::time::timeout(limit, wait)
            .await
            .unwrap_or_else(|_| panic!("the chat stream did not end within {limit:?}"))
    }
}

async fn handle(
    state: Arc<State>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let bytes = request
        .into_body()
        .collect()
        .await
        .map(|body| body.to_bytes())
        .unwrap_or_default();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    };
    state.requests.lock().unwrap().push(Recorded {
        method: method.clone(),
        path: path.clone(),
        body: body.clone(),
    });
    Ok(match (method.as_str(), path.as_str()) {
        ("GET", "/api/tags") => json_response(StatusCode::OK, &tags(&state)),
        ("GET", "/api/ps") => json_response(StatusCode::OK, &ps(&state)),
        ("POST", "/api/show") => show(&state, &body),
        ("POST", "/api/chat") => chat(&state, &body),
        ("POST", "/api/embed") => embed(&state, &body),
        ("POST", "/api/pull") => pull(&state, &body),
        // What Ollama's router answers for an unknown path.
        _ => Response::builder()
            .status(StatusCode::NOT_FOUND)
            .header("content-type", "text/plain")
            .body(full("404 page not found"))
            .unwrap(),
    })
}

fn full(text: impl Into<Bytes>) -> Body {
    Full::new(text.into()).boxed()
}

fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json; charset=utf-8")
        .body(full(value.to_string()))
        .unwrap()
}

fn error_response(status: StatusCode, message: &str) -> Response<Body> {
    json_response(status, &json!({ "error": message }))
}

/// The model a request names (`model`, or the older `name`), as Ollama
/// resolves it: `x` is `x:latest`.
fn find<'a>(state: &'a State, body: &Value) -> (String, Option<&'a FakeModel>) {
    let name = body
        .get("model")
        .or_else(|| body.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let model = state
        .models
        .iter()
        .find(|m| m.name == name || m.name == format!("{name}:latest"));
    (name, model)
}

fn details(model: &FakeModel) -> Value {
    json!({
        "parent_model": "",
        "format": "gguf",
        "family": model.arch,
        "families": [model.arch],
        "parameter_size": model.parameter_size,
        "quantization_level": model.quantization,
    })
}

fn tags(state: &State) -> Value {
    let models: Vec<Value> = state
        .models
        .iter()
        .map(|m| {
            json!({
                "name": m.name,
                "model": m.name,
                "modified_at": "2025-01-10T08:00:00.000000000Z",
                "size": m.size,
                "digest": m.digest,
                "details": details(m),
            })
        })
        .collect();
    json!({ "models": models })
}

fn ps(state: &State) -> Value {
    let models: Vec<Value> = state
        .models
        .iter()
        .filter(|m| m.loaded)
        .map(|m| {
            json!({
                "name": m.name,
                "model": m.name,
                "size": m.size,
                "digest": m.digest,
                "details": details(m),
                "expires_at": "2025-01-15T10:25:30.123456789Z",
                "size_vram": m.size,
            })
        })
        .collect();
    json!({ "models": models })
}

fn show(state: &State, body: &Value) -> Response<Body> {
    let (name, model) = find(state, body);
    let Some(m) = model else {
        return error_response(StatusCode::NOT_FOUND, &format!("model '{name}' not found"));
    };
    let arch = m.arch;
    let modelfile = format!(
        "# Modelfile generated by \"ollama show\"\n# To build a new Modelfile based on this, replace FROM with:\n# FROM {}\n\nFROM /root/.ollama/models/blobs/sha256-{}\nTEMPLATE \"\"\"{{{{ .Prompt }}}}\"\"\"\nPARAMETER stop <|eot_id|>\n",
        m.name, m.blob
    );
    let mut model_info = serde_json::Map::new();
    model_info.insert("general.architecture".into(), json!(arch));
    model_info.insert("general.file_type".into(), json!(m.file_type));
    model_info.insert("general.parameter_count".into(), json!(1_235_814_432_u64));
    model_info.insert("general.quantization_version".into(), json!(2));
    model_info.insert(format!("{arch}.attention.head_count"), json!(32));
    model_info.insert(format!("{arch}.block_count"), json!(16));
    model_info.insert(format!("{arch}.context_length"), json!(m.context_length));
    model_info.insert(
        format!("{arch}.embedding_length"),
        json!(m.embedding_length),
    );
    model_info.insert("tokenizer.ggml.model".into(), json!("gpt2"));
    model_info.insert("tokenizer.ggml.tokens".into(), Value::Null);
    json_response(
        StatusCode::OK,
        &json!({
            "license": "LLAMA 3.2 COMMUNITY LICENSE AGREEMENT",
            "modelfile": modelfile,
            "parameters": "stop                           \"<|eot_id|>\"",
            "template": "{{ .Prompt }}",
            "details": details(m),
            "model_info": model_info,
            "capabilities": ["completion"],
            "modified_at": "2025-01-10T08:00:00.000000000Z",
        }),
    )
}

fn ndjson(lines: mpsc::Receiver<Result<Frame<Bytes>, Infallible>>) -> Response<Body> {
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/x-ndjson")
        .body(StreamBody::new(ReceiverStream::new(lines)).boxed())
        .unwrap()
}

fn line(value: &Value) -> Result<Frame<Bytes>, Infallible> {
    Ok(Frame::data(Bytes::from(format!("{value}\n"))))
}

fn chat(state: &Arc<State>, body: &Value) -> Response<Body> {
    let (name, model) = find(state, body);
    if model.is_none() {
        return error_response(
            StatusCode::NOT_FOUND,
            &format!("model \"{name}\" not found, try pulling it first"),
        );
    }
    // The prompt's size, in words: a stand-in for its tokens.
    let prompt_tokens: usize = body["messages"]
        .as_array()
        .map(|messages| {
            messages
                .iter()
                .map(|m| {
                    m["content"]
                        .as_str()
                        .unwrap_or_default()
                        .split_whitespace()
                        .count()
                })
                .sum()
        })
        .unwrap_or_default();
    let mut pieces = state.script.pieces.clone();
    let mut done_reason = "stop";
    if let Some(limit) = body["options"]["num_predict"].as_u64() {
        let limit = usize::try_from(limit).unwrap();
        if limit < pieces.len() {
            pieces.truncate(limit);
            done_reason = "length";
        }
    }
    *state.chat.lock().unwrap() = ChatOutcome::default();
    let (tx, rx) = mpsc::channel(1);
    let state = Arc::clone(state);
    tokio::spawn(async move {
        let closed_early =
            stream_chat(&state, &tx, &name, &pieces, done_reason, prompt_tokens).await;
        let mut outcome = state.chat.lock().unwrap();
        outcome.closed_early = closed_early;
        outcome.ended = true;
        drop(outcome);
        state.chat_ended.notify_waiters();
    });
    ndjson(rx)
}

/// Send the chat lines; whether the client went away first.
async fn stream_chat(
    state: &State,
    tx: &mpsc::Sender<Result<Frame<Bytes>, Infallible>>,
    model: &str,
    pieces: &[String],
    done_reason: &str,
    prompt_tokens: usize,
) -> bool {
    for (i, piece) in pieces.iter().enumerate() {
        let wait = async {
            match &state.script.pace {
                Pace::Immediate => {}
                Pace::Gated(gate) if i > 0 => gate.acquire().await.unwrap().forget(),
                Pace::Gated(_) => {}
                Pace::Every(interval) => tokio::time::sleep(*interval).await,
            }
        };
        tokio::select! {
            () = tx.closed() => return true,
            () = wait => {}
        }
        let chunk = json!({
            "model": model,
            "created_at": CREATED_AT,
            "message": { "role": "assistant", "content": piece },
            "done": false,
        });
        if tx.send(line(&chunk)).await.is_err() {
            return true;
        }
        state.chat.lock().unwrap().pieces_sent += 1;
    }
    let last = json!({
        "model": model,
        "created_at": CREATED_AT,
        "message": { "role": "assistant", "content": "" },
        "done_reason": done_reason,
        "done": true,
        "total_duration": 4_883_583_458_u64,
        "load_duration": 1_334_875,
        "prompt_eval_count": prompt_tokens,
        "prompt_eval_duration": 342_546_000,
        "eval_count": pieces.len(),
        "eval_duration": 4_535_599_000_u64,
    });
    tx.send(line(&last)).await.is_err()
}

fn embed(state: &State, body: &Value) -> Response<Body> {
    let (name, model) = find(state, body);
    let Some(m) = model else {
        return error_response(
            StatusCode::NOT_FOUND,
            &format!("model \"{name}\" not found, try pulling it first"),
        );
    };
    let inputs: Vec<String> = match &body["input"] {
        Value::String(one) => vec![one.clone()],
        Value::Array(many) => many
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_owned())
            .collect(),
        _ => Vec::new(),
    };
    let truncate = body["truncate"].as_bool().unwrap_or(true);
    let too_long = inputs
        .iter()
        .any(|input| input.split_whitespace().count() as u64 > m.context_length);
    if too_long && !truncate {
        return error_response(
            StatusCode::BAD_REQUEST,
            "the input length exceeds the context length",
        );
    }
    // A vector per input that depends on it: [words, bytes, 0.5].
    let embeddings: Vec<Vec<f32>> = inputs
        .iter()
        .map(|input| {
            #[allow(clippy::cast_precision_loss)]
            let words = input.split_whitespace().count() as f32;
            #[allow(clippy::cast_precision_loss)]
            let bytes = input.len() as f32;
            vec![words, bytes, 0.5]
        })
        .collect();
    json_response(
        StatusCode::OK,
        &json!({
            "model": m.name,
            "embeddings": embeddings,
            "total_duration": 14_143_917,
            "load_duration": 1_019_500,
            "prompt_eval_count": inputs.iter().map(|i| i.split_whitespace().count()).sum::<usize>(),
        }),
    )
}

/// The layer a pull downloads.
pub const PULL_LAYER: &str = "dde5aa3fc5ffc17176b5e8bdc82f587b24b2678c6c66101bf7da77af9f7ccdff";
/// Its size.
pub const PULL_TOTAL: u64 = 2_019_377_376;
/// The model name the fake registry has.
pub const PULLABLE: &str = "llama3.2:3b";

fn pull(state: &State, body: &Value) -> Response<Body> {
    let (name, _) = find(state, body);
    let short = &PULL_LAYER[..12];
    let digest = format!("sha256:{PULL_LAYER}");
    let lines: Vec<Value> = if name == PULLABLE {
        vec![
            json!({ "status": "pulling manifest" }),
            json!({ "status": format!("pulling {short}"), "digest": digest, "total": PULL_TOTAL }),
            json!({ "status": format!("pulling {short}"), "digest": digest, "total": PULL_TOTAL, "completed": PULL_TOTAL / 2 }),
            json!({ "status": format!("pulling {short}"), "digest": digest, "total": PULL_TOTAL, "completed": PULL_TOTAL }),
            json!({ "status": "verifying sha256 digest" }),
            json!({ "status": "writing manifest" }),
            json!({ "status": "success" }),
        ]
    } else {
        // Ollama starts the stream, then fails in it.
        vec![
            json!({ "status": "pulling manifest" }),
            json!({ "error": "pull model manifest: file does not exist" }),
        ]
    };
    let (tx, rx) = mpsc::channel(lines.len());
    for value in &lines {
        tx.try_send(line(value)).unwrap();
    }
    ndjson(rx)
}
