//! A real HTTP/1.1 server on 127.0.0.1 for tests: it records every request
//! and answers with what the test's handler says, including slow, streamed
//! (SSE-style) and oversized responses. Optionally over TLS with a
//! certificate from a throwaway CA.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// A request as the server received it.
#[derive(Debug, Clone)]
pub struct Received {
    /// Method, e.g. `POST`.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers, names lowercase, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The whole body.
    pub body: Vec<u8>,
}

impl Received {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// How the server answers one request.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Response headers.
    pub headers: Vec<(String, String)>,
    /// Wait this long before sending the status line.
    pub delay: Duration,
    /// Body chunks, each sent after its pause.
    pub chunks: Vec<(Duration, Bytes)>,
}

impl Reply {
    /// `status` with a whole body of `content_type` (with `content-length`).
    pub fn whole(status: u16, content_type: &str, body: impl Into<Bytes>) -> Self {
        let body = body.into();
        Self {
            status,
            headers: vec![
                ("content-type".into(), content_type.into()),
                ("content-length".into(), body.len().to_string()),
            ],
            delay: Duration::ZERO,
            chunks: vec![(Duration::ZERO, body)],
        }
    }

    /// `status` with a JSON body.
    pub fn json(status: u16, body: &serde_json::Value) -> Self {
        Self::whole(status, "application/json", body.to_string())
    }

    /// `200` with a plain-text body.
    pub fn text(body: impl Into<Bytes>) -> Self {
        Self::whole(200, "text/plain", body)
    }

    /// A streamed body: each chunk after `pause` (no `content-length`).
    pub fn stream(content_type: &str, chunks: Vec<Bytes>, pause: Duration) -> Self {
        Self {
            status: 200,
            headers: vec![("content-type".into(), content_type.into())],
            delay: Duration::ZERO,
            chunks: chunks.into_iter().map(|c| (pause, c)).collect(),
        }
    }

    /// Wait `delay` before answering.
    #[must_use]
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Add a response header.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// How a body is cut into the writes that go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunking {
    /// As the handler gave them.
    AsGiven,
    /// Pieces of this many bytes (1: a byte per write).
    Pieces(usize),
    /// Pieces of 1 to `max` bytes, cut where a generator seeded with `seed`
    /// says (the same seed cuts the same way).
    Random {
        /// The generator's seed.
        seed: u64,
        /// The longest piece.
        max: usize,
    },
    /// The whole body in one write.
    Whole,
}

impl Reply {
    /// The same body cut by `chunking`: the first piece keeps the first
    /// chunk's pause, each later piece waits `pause` (a short pause keeps
    /// the pieces apart on the wire rather than merged by the socket).
    #[must_use]
    pub fn rechunked(mut self, chunking: Chunking, pause: Duration) -> Self {
        if chunking == Chunking::AsGiven || self.chunks.is_empty() {
            return self;
        }
        let first_pause = self.chunks[0].0;
        let body: Vec<u8> = self
            .chunks
            .iter()
            .flat_map(|(_, c)| c.iter().copied())
            .collect();
        let mut lengths = Vec::new();
        match chunking {
            Chunking::AsGiven => {}
            Chunking::Whole => lengths.push(body.len()),
            Chunking::Pieces(n) => {
                let n = n.max(1);
                lengths.extend(body.chunks(n).map(<[u8]>::len));
            }
            Chunking::Random { seed, max } => {
                let mut rng = SplitMix64(seed);
                let mut left = body.len();
                while left > 0 {
                    let n = (1 + rng.next() as usize % max.max(1)).min(left);
                    lengths.push(n);
                    left -= n;
                }
            }
        }
        let body = Bytes::from(body);
        let mut at = 0;
        self.chunks = lengths
            .into_iter()
            .enumerate()
            .map(|(i, n)| {
                let piece = body.slice(at..at + n);
                at += n;
                (if i == 0 { first_pause } else { pause }, piece)
            })
            .collect();
        self
    }
}

/// A small, seedable pseudo-random generator (SplitMix64), enough to cut bodies.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

type Handler = Arc<dyn Fn(&Received) -> Reply + Send + Sync>;

/// A running test server; it stops when dropped.
pub struct Upstream {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    connections: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
    tls: bool,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Upstream {
    /// Serve plain HTTP on a free port of 127.0.0.1.
    pub async fn start(handler: impl Fn(&Received) -> Reply + Send + Sync + 'static) -> Self {
        Self::serve(Arc::new(handler), None).await
    }

    /// Serve HTTPS with `identity` (see [`TestCa`]).
    pub async fn start_tls(
        identity: &TestCa,
        handler: impl Fn(&Received) -> Reply + Send + Sync + 'static,
    ) -> Self {
        Self::serve(Arc::new(handler), Some(identity.acceptor())).await
    }

    async fn serve(handler: Handler, tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a test port");
        let addr = listener.local_addr().expect("local address");
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let accepted = connections.clone();
        let is_tls = tls.is_some();
        let task = tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                // Like production servers: no Nagle delay on small writes.
                let _ = socket.set_nodelay(true);
                let handler = handler.clone();
                let log = log.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        respond(request, handler.clone(), log.clone())
                    });
                    let builder = hyper::server::conn::http1::Builder::new();
                    match tls {
                        None => {
                            let _ = builder
                                .serve_connection(TokioIo::new(socket), service)
                                .await;
                        }
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(socket).await {
                                let _ = builder
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await;
                            }
                        }
                    }
                });
            }
        });
        Self {
            addr,
            received,
            connections,
            task,
            tls: is_tls,
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:PORT` (or `https://`).
    pub fn origin(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.addr.port())
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type ResponseBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

async fn respond(
    request: hyper::Request<hyper::body::Incoming>,
    handler: Handler,
    log: Arc<Mutex<Vec<Received>>>,
) -> Result<hyper::Response<ResponseBody>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let received = Received {
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map_or("/".to_owned(), ToString::to_string),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
    };
    let reply = handler(&received);
    log.lock().unwrap_or_else(|e| e.into_inner()).push(received);
    // A zero sleep still waits for the timer's next millisecond tick.
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }

    let (tx, rx) = mpsc::channel::<Bytes>(4);
    let chunks = reply.chunks;
    tokio::spawn(async move {
        for (pause, chunk) in chunks {
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
            if tx.send(chunk).await.is_err() {
                return;
            }
        }
    });
    let mut response = hyper::Response::builder().status(reply.status);
    for (name, value) in &reply.headers {
        response = response.header(name, value);
    }
    Ok(response
        .body(BodyExt::boxed(ChannelBody(rx)))
        .expect("a valid test response"))
}

/// A response body fed by a channel, so chunks go out as they are sent.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| Ok(Frame::data(c))))
    }
}

/// A throwaway certificate authority and a server certificate it signed for
/// `127.0.0.1`, `::1` and `localhost`.
#[derive(Debug)]
pub struct TestCa {
    /// The CA certificate, PEM: write it to a file and list it in
    /// `[runtime.http] ca-files`.
    pub ca_pem: String,
    cert: rustls::pki_types::CertificateDer<'static>,
    key: Vec<u8>,
}

impl TestCa {
    /// Generate a CA and a server certificate.
    pub fn generate() -> Self {
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Convergio test CA");
        let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
        let issuer = rcgen::Issuer::new(ca_params, ca_key);

        let server_key = rcgen::KeyPair::generate().expect("server key");
        let server_params = rcgen::CertificateParams::new(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ])
        .expect("server params");
        let cert = server_params
            .signed_by(&server_key, &issuer)
            .expect("server certificate");
        Self {
            ca_pem: ca.pem(),
            cert: cert.der().clone(),
            key: server_key.serialize_der(),
        }
    }

    fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(self.key.clone().into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(vec![self.cert.clone()], key)
            .expect("server TLS config");
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }
}
