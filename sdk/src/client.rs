//! A small blocking HTTP client on `wasi:http/outgoing-handler`, for
//! components that call web APIs (provider adapters, tools).
//!
//! ```no_run
//! use convergio_sdk::client::Request;
//!
//! # fn main() -> Result<(), convergio_sdk::client::HttpError> {
//! let response = Request::post("https://api.openai.com/v1/chat/completions")
//!     .key("key:openai/default") // a reference from the `keys` interface
//!     .json(&serde_json::json!({"model": "gpt-4o-mini", "messages": []}))
//!     .send()?;
//! if response.status() == 200 {
//!     let body = response.bytes()?;
//! #   drop(body);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! The host adds the key's auth header in place of the reference, only if
//! the operator granted the key and bound it to the host; see the operator's
//! guide, "Outgoing HTTP".

use std::fmt;
use std::time::Duration;

use crate::bindings::wasi::http::outgoing_handler;
use crate::bindings::wasi::http::types::{
    ErrorCode, Fields, IncomingBody, IncomingResponse, InputStream, Method, OutgoingBody,
    OutgoingRequest, RequestOptions, Scheme,
};
use crate::bindings::wasi::io::streams::StreamError;
use crate::sse::{SseEvent, SseParser};

/// The header that names a key by reference; the host replaces it.
pub const KEY_HEADER: &str = "convergio-key";

/// Why a request failed.
#[derive(Debug, Clone)]
pub enum HttpError {
    /// The URL or a header cannot be sent.
    Invalid(String),
    /// The host or the network ended the request (`wasi:http` error code):
    /// e.g. `HttpRequestDenied` when the destination or key is not granted.
    Code(ErrorCode),
    /// Reading or writing a body failed; the message names the cause (e.g.
    /// a size limit or a timeout of the host).
    Stream(String),
}

impl HttpError {
    /// Whether the request timed out (connecting, waiting or reading).
    pub fn is_timeout(&self) -> bool {
        match self {
            HttpError::Code(code) => matches!(
                code,
                ErrorCode::ConnectionTimeout
                    | ErrorCode::ConnectionReadTimeout
                    | ErrorCode::HttpResponseTimeout
                    | ErrorCode::DnsTimeout
            ),
            HttpError::Stream(message) => message.to_ascii_lowercase().contains("timeout"),
            HttpError::Invalid(_) => false,
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Invalid(m) => write!(f, "invalid request: {m}"),
            HttpError::Code(code) => match code {
                ErrorCode::HttpRequestDenied => f.write_str(
                    "request denied by the host (destination or key not granted; the host log says which)",
                ),
                ErrorCode::DestinationIpProhibited => f.write_str(
                    "the destination resolves to an internal address the host refuses",
                ),
                ErrorCode::ConnectionLimitReached => {
                    f.write_str("too many requests of this plugin in flight")
                }
                other => write!(f, "HTTP error: {other:?}"),
            },
            HttpError::Stream(m) => write!(f, "body stream failed: {m}"),
        }
    }
}

impl std::error::Error for HttpError {}

/// An outgoing request, built then sent with [`Request::send`].
#[derive(Debug, Clone)]
pub struct Request {
    method: Method,
    url: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Option<Vec<u8>>,
    connect_timeout: Option<Duration>,
    first_byte_timeout: Option<Duration>,
    between_bytes_timeout: Option<Duration>,
}

impl Request {
    /// A request with `method` to `url` (`https://host[:port]/path?query`).
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Self {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: None,
            connect_timeout: None,
            first_byte_timeout: None,
            between_bytes_timeout: None,
        }
    }

    /// A GET request.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new(Method::Get, url)
    }

    /// A POST request.
    pub fn post(url: impl Into<String>) -> Self {
        Self::new(Method::Post, url)
    }

    /// Add a header.
    #[must_use]
    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.headers
            .push((name.to_owned(), value.as_ref().to_vec()));
        self
    }

    /// Attach the key `reference` (`key:PROVIDER/NAME`); the host turns it
    /// into the provider's auth header.
    #[must_use]
    pub fn key(self, reference: &str) -> Self {
        self.header(KEY_HEADER, reference)
    }

    /// Send `value` as a JSON body.
    #[must_use]
    pub fn json(self, value: &serde_json::Value) -> Self {
        self.header("content-type", "application/json")
            .body(value.to_string().into_bytes())
    }

    /// Send `bytes` as the body.
    #[must_use]
    pub fn body(mut self, bytes: Vec<u8>) -> Self {
        self.body = Some(bytes);
        self
    }

    /// Give up if the connection is not up within `timeout` (the host's
    /// limit applies if it is shorter).
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Give up if the response headers do not arrive within `timeout`.
    #[must_use]
    pub fn first_byte_timeout(mut self, timeout: Duration) -> Self {
        self.first_byte_timeout = Some(timeout);
        self
    }

    /// Give up if the body pauses for longer than `timeout` (a stalled stream).
    #[must_use]
    pub fn between_bytes_timeout(mut self, timeout: Duration) -> Self {
        self.between_bytes_timeout = Some(timeout);
        self
    }

    /// The URL the request goes to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Send the request and wait for the response headers.
    pub fn send(self) -> Result<Response, HttpError> {
        let (scheme, rest) = self
            .url
            .split_once("://")
            .ok_or_else(|| HttpError::Invalid(format!("`{}` has no scheme", self.url)))?;
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest[i..].starts_with('?') => (&rest[..i], format!("/{}", &rest[i..])),
            Some(i) => (&rest[..i], rest[i..].to_owned()),
            None => (rest, "/".to_owned()),
        };
        let scheme = match scheme {
            "https" => Scheme::Https,
            "http" => Scheme::Http,
            other => return Err(HttpError::Invalid(format!("unsupported scheme `{other}`"))),
        };
        let invalid = |what: &str| HttpError::Invalid(format!("{what} of `{}`", self.url));

        let headers = Fields::new();
        // A known body goes with its length rather than chunked: some servers
        // and proxies accept only that.
        if let Some(body) = &self.body
            && !self
                .headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        {
            headers
                .append("content-length", body.len().to_string().as_bytes())
                .map_err(|e| HttpError::Invalid(format!("header `content-length`: {e:?}")))?;
        }
        for (name, value) in &self.headers {
            headers
                .append(name, value)
                .map_err(|e| HttpError::Invalid(format!("header `{name}`: {e:?}")))?;
        }
        let request = OutgoingRequest::new(headers);
        request
            .set_method(&self.method)
            .map_err(|()| invalid("method"))?;
        request
            .set_scheme(Some(&scheme))
            .map_err(|()| invalid("scheme"))?;
        request
            .set_authority(Some(authority))
            .map_err(|()| invalid("authority"))?;
        request
            .set_path_with_query(Some(&path))
            .map_err(|()| invalid("path"))?;
        let options = self.options();
        let body = request.body().map_err(|()| invalid("body"))?;
        let future = outgoing_handler::handle(request, options).map_err(HttpError::Code)?;
        let wait = || loop {
            match future.get() {
                Some(result) => break result,
                None => future.subscribe().block(),
            }
        };
        if let Err(write_error) = write_body(body, self.body.as_deref()) {
            // A refused request closes the body: the response's error code
            // says why, so prefer it to the write error.
            return match wait() {
                Ok(Err(code)) => Err(HttpError::Code(code)),
                _ => Err(write_error),
            };
        }
        let response = wait();
        match response {
            Ok(Ok(response)) => Response::new(response),
            Ok(Err(code)) => Err(HttpError::Code(code)),
            Err(()) => Err(HttpError::Stream(
                "the response was already taken".to_owned(),
            )),
        }
    }

    fn options(&self) -> Option<RequestOptions> {
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        if self.connect_timeout.is_none()
            && self.first_byte_timeout.is_none()
            && self.between_bytes_timeout.is_none()
        {
            return None;
        }
        let options = RequestOptions::new();
        // A host that does not support an option keeps its own limit.
        let _ = options.set_connect_timeout(self.connect_timeout.map(nanos));
        let _ = options.set_first_byte_timeout(self.first_byte_timeout.map(nanos));
        let _ = options.set_between_bytes_timeout(self.between_bytes_timeout.map(nanos));
        Some(options)
    }
}

/// Write `bytes` (if any) into `body` and finish it.
fn write_body(body: OutgoingBody, bytes: Option<&[u8]>) -> Result<(), HttpError> {
    if let Some(bytes) = bytes {
        let stream = body
            .write()
            .map_err(|()| HttpError::Invalid("the body stream was already taken".to_owned()))?;
        for chunk in bytes.chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| HttpError::Stream(stream_error(e)))?;
        }
    }
    OutgoingBody::finish(body, None).map_err(HttpError::Code)
}

/// A response whose body has not been read yet.
#[derive(Debug)]
pub struct Response {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    // Field order is drop order: the stream before the body that owns it.
    stream: InputStream,
    _body: IncomingBody,
    _response: IncomingResponse,
}

impl Response {
    fn new(response: IncomingResponse) -> Result<Self, HttpError> {
        let status = response.status();
        let headers = response.headers().entries();
        let body = response
            .consume()
            .map_err(|()| HttpError::Stream("the body was already taken".to_owned()))?;
        let stream = body
            .stream()
            .map_err(|()| HttpError::Stream("the body stream was already taken".to_owned()))?;
        Ok(Self {
            status,
            headers,
            stream,
            _body: body,
            _response: response,
        })
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The first value of header `name` (case-insensitive), as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// Every header, in the order received (names as sent, values as bytes).
    pub fn headers(&self) -> &[(String, Vec<u8>)] {
        &self.headers
    }

    /// The next piece of the body as it arrives; `None` at the end.
    pub fn chunk(&mut self) -> Result<Option<Vec<u8>>, HttpError> {
        loop {
            match self.stream.blocking_read(64 * 1024) {
                Ok(bytes) if bytes.is_empty() => {}
                Ok(bytes) => return Ok(Some(bytes)),
                Err(StreamError::Closed) => return Ok(None),
                Err(e) => return Err(HttpError::Stream(stream_error(e))),
            }
        }
    }

    /// The whole body.
    pub fn bytes(mut self) -> Result<Vec<u8>, HttpError> {
        let mut out = Vec::new();
        while let Some(chunk) = self.chunk()? {
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// The body as server-sent events, each returned as soon as it is complete.
    pub fn events(self) -> Events {
        Events {
            response: self,
            parser: SseParser::default(),
            ready: std::collections::VecDeque::new(),
            done: false,
        }
    }
}

/// Server-sent events of a streaming response.
#[derive(Debug)]
pub struct Events {
    response: Response,
    parser: SseParser,
    ready: std::collections::VecDeque<SseEvent>,
    done: bool,
}

impl Events {
    /// The next event; `None` when the stream has ended.
    pub fn next_event(&mut self) -> Result<Option<SseEvent>, HttpError> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Ok(Some(event));
            }
            if self.done {
                return Ok(None);
            }
            match self.response.chunk()? {
                Some(bytes) => self.ready.extend(self.parser.push(&bytes)),
                None => self.done = true,
            }
        }
    }
}

/// The text of a stream error: the `wasi:http` code if the host gave one,
/// else the first line of the message.
fn stream_error(err: StreamError) -> String {
    match err {
        StreamError::Closed => "the stream closed".to_owned(),
        StreamError::LastOperationFailed(e) => {
            match crate::bindings::wasi::http::types::http_error_code(&e) {
                Some(code) => format!("{code:?}"),
                None => e
                    .to_debug_string()
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            }
        }
    }
}
