//! `http_tool`: sends requests through `wasi:http/outgoing-handler`, to test
//! the host's HTTP policy. One tool, `fetch`, with JSON arguments:
//!
//! ```json
//! {"url": "http://127.0.0.1:8080/path", "method": "POST", "body": "…",
//!  "headers": [["name", "value"]], "key": "key:openai/default",
//!  "count": 1, "between_bytes_ms": 0}
//! ```
//!
//! Only `url` is required. `key` sends the header `convergio-key` (a key
//! reference from the `keys` interface). `count` sends that many copies of
//! the request at once before reading any response (concurrency limits).
//! The result is a JSON array, one entry per request: `{"status": N,
//! "body": "…", "chunks": N}` or `{"error": "<wasi:http error code>"}` —
//! an error while reading the body also names where it happened and gives
//! the error's whole debug string (`{"status": N, "error": …, "after_bytes":
//! N, "debug": "…"}`).

/// Bindings generated from the WIT contract. The export glue that
/// wit-bindgen emits is `unsafe` (raw ABI, `export_name`), so the workspace's
/// `unsafe_code` denial is lifted for this module only.
#[allow(unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "convergio:platform/tool-plugin@0.1.0",
        generate_all,
    });

    use super::HttpTool;

    export!(HttpTool);
}

use bindings::exports::convergio::platform::tool::{Guest, ToolError, ToolInfo};
use bindings::wasi::http::outgoing_handler;
use bindings::wasi::http::types::{
    ErrorCode, Fields, FutureIncomingResponse, IncomingResponse, Method, OutgoingBody,
    OutgoingRequest, RequestOptions, Scheme,
};
use bindings::wasi::io::streams::StreamError;
use serde_json::{Value, json};

struct HttpTool;

impl Guest for HttpTool {
    fn describe() -> Vec<ToolInfo> {
        vec![ToolInfo {
            name: "fetch".to_owned(),
            description: "Send HTTP requests through the host".to_owned(),
            parameters:
                r#"{"type":"object","properties":{"url":{"type":"string"}},"required":["url"]}"#
                    .to_owned(),
        }]
    }

    fn invoke(name: String, arguments: String) -> Result<String, ToolError> {
        if name != "fetch" {
            return Err(ToolError::UnknownTool(name));
        }
        let args: Value = serde_json::from_str(&arguments)
            .map_err(|e| ToolError::InvalidArguments(e.to_string()))?;
        let count = args["count"].as_u64().unwrap_or(1);
        let pending: Vec<Result<FutureIncomingResponse, ErrorCode>> =
            (0..count).map(|_| start(&args)).collect::<Result<_, _>>()?;
        let results: Vec<Value> = pending
            .into_iter()
            .map(|p| match p {
                Err(code) => json!({ "error": format!("{code:?}") }),
                Ok(future) => finish(&future),
            })
            .collect();
        Ok(Value::Array(results).to_string())
    }
}

/// Build and send one request; the outer error is bad arguments.
fn start(args: &Value) -> Result<Result<FutureIncomingResponse, ErrorCode>, ToolError> {
    let url = args["url"]
        .as_str()
        .ok_or_else(|| ToolError::InvalidArguments("`url` is required".to_owned()))?;
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| ToolError::InvalidArguments(format!("`{url}` has no scheme")))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let headers = Fields::new();
    for pair in args["headers"].as_array().into_iter().flatten() {
        let (Some(name), Some(value)) = (pair[0].as_str(), pair[1].as_str()) else {
            return Err(ToolError::InvalidArguments(
                "headers are [name, value] pairs".to_owned(),
            ));
        };
        headers
            .append(name, value.as_bytes())
            .map_err(|e| ToolError::InvalidArguments(format!("header {name}: {e:?}")))?;
    }
    if let Some(key) = args["key"].as_str() {
        headers
            .append("convergio-key", key.as_bytes())
            .map_err(|e| ToolError::Failed(format!("convergio-key: {e:?}")))?;
    }
    let request = OutgoingRequest::new(headers);
    let method = match args["method"].as_str().unwrap_or("GET") {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        other => Method::Other(other.to_owned()),
    };
    let scheme = match scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => Scheme::Other(other.to_owned()),
    };
    let invalid = |what: &str| ToolError::InvalidArguments(format!("invalid {what}"));
    request
        .set_method(&method)
        .map_err(|()| invalid("method"))?;
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| invalid("scheme"))?;
    request
        .set_authority(Some(authority))
        .map_err(|()| invalid("authority"))?;
    request
        .set_path_with_query(Some(path))
        .map_err(|()| invalid("path"))?;
    let body = request.body().map_err(|()| invalid("body"))?;
    let options = args["between_bytes_ms"].as_u64().map(|ms| {
        let options = RequestOptions::new();
        let _ = options.set_between_bytes_timeout(Some(ms * 1_000_000));
        options
    });
    let future = match outgoing_handler::handle(request, options) {
        Ok(future) => future,
        Err(code) => return Ok(Err(code)),
    };
    if let Some(text) = args["body"].as_str() {
        let stream = body.write().map_err(|()| invalid("body stream"))?;
        for chunk in text.as_bytes().chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| ToolError::Failed(format!("writing the body: {e:?}")))?;
        }
    }
    OutgoingBody::finish(body, None).map_err(|e| ToolError::Failed(format!("{e:?}")))?;
    Ok(Ok(future))
}

/// Wait for the response and read its body.
fn finish(future: &FutureIncomingResponse) -> Value {
    let response = loop {
        match future.get() {
            Some(result) => break result,
            None => future.subscribe().block(),
        }
    };
    let response: IncomingResponse = match response {
        Ok(Ok(response)) => response,
        Ok(Err(code)) => return json!({ "error": format!("{code:?}") }),
        Err(()) => return json!({ "error": "response already taken" }),
    };
    let status = response.status();
    let Ok(body) = response.consume() else {
        return json!({ "status": status, "error": "no body" });
    };
    let Ok(stream) = body.stream() else {
        return json!({ "status": status, "error": "no body stream" });
    };
    let mut bytes = Vec::new();
    let mut chunks = 0u32;
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => {
                if !chunk.is_empty() {
                    chunks += 1;
                }
                bytes.extend_from_slice(&chunk);
            }
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                let code = bindings::wasi::http::types::http_error_code(&e);
                let debug = e.to_debug_string();
                return json!({
                    "status": status,
                    // wasmtime-wasi-http 48 keeps the code of a body error only in its
                    // message, so fall back to the message's first line.
                    "error": code.map_or_else(
                        || debug.lines().next().unwrap_or_default().to_owned(),
                        |c| format!("{c:?}"),
                    ),
                    "after_bytes": bytes.len(),
                    // All the host told the guest, to check it leaks nothing.
                    "debug": debug,
                });
            }
        }
    }
    json!({
        "status": status,
        "body": String::from_utf8_lossy(&bytes),
        "chunks": chunks,
    })
}
