//! One outgoing request, from the guest's `handle` to the response body.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt as _;
use hyper::client::conn::http1::SendRequest;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, Sleep};
use tracing::Instrument as _;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody};

use crate::keys::{self, AttachedKey};
use crate::{ClientInner, HttpClient, IoFuture, Scheme, restricted};

trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// Where a request goes, taken from its URI.
struct Target {
    scheme: Scheme,
    /// Lowercase, without brackets or a trailing dot.
    host: String,
    port: u16,
}

impl Target {
    fn of(request: &Request<WasiBody>) -> Option<Self> {
        let uri = request.uri();
        let scheme = Scheme::parse(uri.scheme_str()?)?;
        let host = uri.host()?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let port = uri.port_u16().unwrap_or(scheme.default_port());
        Some(Self { scheme, host, port })
    }

    fn origin(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("{}://{host}:{}", self.scheme.as_str(), self.port)
    }
}

pub(crate) async fn send(
    client: HttpClient,
    request: Request<WasiBody>,
    options: Option<RequestOptions>,
) -> Result<(Response<WasiBody>, IoFuture), HttpError> {
    let target = Target::of(&request).ok_or(HttpError::HttpRequestUriInvalid)?;
    // `user@host`: the user part would travel in the `Host` header, which
    // names the host the key and the allow-list were checked against.
    if request
        .uri()
        .authority()
        .is_some_and(|a| a.as_str().contains('@'))
    {
        tracing::warn!(
            plugin = %client.inner.plugin,
            destination = %target.origin(),
            "request refused: its URL has a user name or password (`user@host`) in its authority; send the URL without it (credentials go in headers, or as a key named by the `{}` header)",
            crate::KEY_HEADER
        );
        return Err(HttpError::HttpRequestUriInvalid);
    }
    let span = tracing::debug_span!(
        "convergio.http.request",
        plugin = %client.inner.plugin,
        method = %request.method(),
        scheme = target.scheme.as_str(),
        host = %target.host,
        port = target.port,
        path = request.uri().path(),
        key = tracing::field::Empty,
        status = tracing::field::Empty,
    );
    exchange(client, request, options, target)
        .instrument(span)
        .await
}

async fn exchange(
    client: HttpClient,
    mut request: Request<WasiBody>,
    options: Option<RequestOptions>,
    target: Target,
) -> Result<(Response<WasiBody>, IoFuture), HttpError> {
    let inner = &client.inner;
    let plugin = inner.plugin.as_str();
    let limits = inner.policy.limits;
    let started = Instant::now();
    let total_deadline = started + limits.total_timeout;
    let origin = target.origin();

    if inner.platform.zero_cloud {
        tracing::warn!(
            plugin,
            destination = %origin,
            "request denied: the platform runs in zero-cloud mode ([inference] zero-cloud = true), which allows no outbound request"
        );
        return Err(HttpError::HttpRequestDenied);
    }
    let Some(grant) = inner
        .policy
        .allowing(target.scheme, &target.host, target.port)
    else {
        tracing::warn!(
            plugin,
            destination = %origin,
            "request denied: `{origin}` is not on the plugin's allow-list; to allow it, add \"{origin}\" to `http` under the plugin's [plugin.grants] in platform.toml"
        );
        return Err(HttpError::HttpRequestDenied);
    };
    let grant = grant.clone();

    let Ok(permit) = inner.in_flight.clone().try_acquire_owned() else {
        tracing::warn!(
            plugin,
            limit = limits.max_concurrent,
            "request refused: the plugin already has {} requests in flight (limits.http-max-concurrent)",
            limits.max_concurrent
        );
        return Err(HttpError::ConnectionLimitReached);
    };

    let key = match keys::attach(
        inner,
        request.headers_mut(),
        (target.scheme, &target.host, target.port),
    )
    .await
    {
        Ok(key) => key,
        Err(reason) => {
            tracing::warn!(plugin, destination = %origin, "request denied: {reason}");
            return Err(HttpError::HttpRequestDenied);
        }
    };
    if let Some(key) = &key {
        tracing::Span::current().record("key", key.reference());
    }
    let vault = inner.platform.vault.as_ref();
    let fail = |err: HttpError| {
        if let Some(key) = &key {
            keys::record(vault, key, true);
        }
        tracing::debug!(plugin, destination = %origin, error = %err, "request failed");
        err
    };

    let connect_timeout = shortest(
        limits.connect_timeout,
        options.and_then(|o| o.connect_timeout),
    );
    let connect_deadline = (Instant::now() + connect_timeout).min(total_deadline);

    // Origin form on the wire: the scheme and authority travel in `Host`.
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    *request.uri_mut() = path
        .parse()
        .map_err(|_| fail(HttpError::HttpRequestUriInvalid))?;

    let first_byte_deadline = options
        .and_then(|o| o.first_byte_timeout)
        .map_or(total_deadline, |t| (Instant::now() + t).min(total_deadline));
    let pool_key = PoolKey {
        scheme: target.scheme,
        host: target.host.clone(),
        port: target.port,
    };
    // A kept-alive connection to this destination if there is one (its
    // address was checked when it was opened), else a new one. A pooled
    // connection that the server closed meanwhile gives the request back
    // unsent; it then goes on a new connection.
    let mut request = Some(request);
    let mut pooled = inner.pool.checkout(&pool_key);
    let (sender, response) = loop {
        let Some(next) = request.take() else {
            return Err(fail(HttpError::InternalError(Some(
                "the request was lost".to_owned(),
            ))));
        };
        let (mut sender, reused) = match pooled.take() {
            Some(sender) => (sender, true),
            None => (
                open_connection(inner, &grant, &target, connect_deadline)
                    .await
                    .map_err(&fail)?,
                false,
            ),
        };
        match tokio::time::timeout_at(first_byte_deadline, sender.try_send_request(next)).await {
            Err(_) => return Err(fail(HttpError::HttpResponseTimeout)),
            Ok(Ok(response)) => break (sender, response),
            Ok(Err(mut e)) => match e.take_message() {
                Some(unsent) if reused => {
                    tracing::debug!(plugin, destination = %origin, "a kept-alive connection was closed; opening a new one");
                    request = Some(unsent);
                }
                _ => return Err(fail(HttpError::Hyper(e.into_error()))),
            },
        }
    };
    let status = response.status();
    tracing::Span::current().record("status", status.as_u16());
    tracing::debug!(
        plugin,
        destination = %origin,
        status = status.as_u16(),
        elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "response"
    );
    if let Some(key) = &key {
        keys::record(
            vault,
            key,
            status.is_client_error() || status.is_server_error(),
        );
    }

    let declared = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_response_bytes) {
        tracing::warn!(
            plugin,
            destination = %origin,
            "response refused: its body of {} bytes is larger than limits.http-max-response-bytes ({})",
            declared.unwrap_or_default(),
            limits.max_response_bytes
        );
        return Err(HttpError::HttpResponseBodySize(declared));
    }

    let between_bytes = options.and_then(|o| o.between_bytes_timeout);
    let plugin = plugin.to_owned();
    let response = response.map(|incoming| {
        LimitedBody {
            inner: incoming,
            plugin,
            key,
            limit: limits.max_response_bytes,
            seen: 0,
            total: Box::pin(tokio::time::sleep_until(total_deadline)),
            between_bytes: between_bytes.map(|d| (d, Box::pin(tokio::time::sleep(d)))),
            _permit: permit,
            failed: false,
            reuse: Some((client.inner.clone(), pool_key, sender)),
        }
        .boxed_unsync()
    });
    // The connection outlives the request when it is kept alive; its task
    // logs its own failure, and the body reports what the guest must know.
    let io: IoFuture = Box::new(async { Ok(()) });
    Ok((response, io))
}

/// Resolve, check the addresses, connect, do TLS and the HTTP/1.1
/// handshake; the connection is driven by a task of its own.
async fn open_connection(
    inner: &ClientInner,
    grant: &crate::Destination,
    target: &Target,
    deadline: Instant,
) -> Result<SendRequest<WasiBody>, HttpError> {
    let plugin = inner.plugin.as_str();
    let origin = target.origin();
    let addresses = match grant.ip() {
        // An address literal in the grant is the operator's explicit permission.
        Some(ip) => vec![SocketAddr::new(ip, target.port)],
        None => {
            let resolved = inner
                .platform
                .resolver
                .resolve(&target.host, target.port, deadline - Instant::now())
                .await?;
            let (allowed, refused): (Vec<SocketAddr>, Vec<SocketAddr>) = resolved
                .into_iter()
                .partition(|a| restricted(a.ip()).is_none());
            if allowed.is_empty() {
                let reasons: Vec<String> = refused
                    .iter()
                    .map(|a| {
                        format!(
                            "{} is {}",
                            a.ip(),
                            restricted(a.ip()).unwrap_or("restricted")
                        )
                    })
                    .collect();
                tracing::warn!(
                    plugin,
                    destination = %origin,
                    "request denied: `{}` resolves only to internal addresses ({}); only a grant of the address itself, e.g. \"{}://{}:{}\", allows that",
                    target.host,
                    reasons.join(", "),
                    target.scheme.as_str(),
                    refused.first().map(|a| a.ip().to_string()).unwrap_or_default(),
                    target.port
                );
                return Err(HttpError::DestinationIpProhibited);
            }
            allowed
        }
    };

    let stream = connect(&addresses, deadline).await?;
    let stream: Box<dyn Stream> = match target.scheme {
        Scheme::Http => Box::new(stream),
        Scheme::Https => {
            let name = match target.host.parse::<std::net::IpAddr>() {
                Ok(ip) => ServerName::IpAddress(ip.into()),
                Err(_) => ServerName::try_from(target.host.clone())
                    .map_err(|_| HttpError::HttpRequestUriInvalid)?,
            };
            let connector = tokio_rustls::TlsConnector::from(inner.platform.tls.clone());
            match tokio::time::timeout_at(deadline, connector.connect(name, stream)).await {
                Err(_) => return Err(HttpError::ConnectionTimeout),
                Ok(Err(e)) => {
                    tracing::warn!(plugin, destination = %origin, error = %e, "TLS handshake failed");
                    return Err(HttpError::Tls(e));
                }
                Ok(Ok(tls)) => Box::new(tls),
            }
        }
    };
    let (sender, connection) = match tokio::time::timeout_at(
        deadline,
        hyper::client::conn::http1::handshake(TokioIo::new(stream)),
    )
    .await
    {
        Err(_) => return Err(HttpError::ConnectionTimeout),
        Ok(Err(e)) => return Err(HttpError::Hyper(e)),
        Ok(Ok(parts)) => parts,
    };
    let plugin = plugin.to_owned();
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(plugin, destination = %origin, error = %e, "connection ended with an error");
        }
    });
    Ok(sender)
}

/// Where a kept-alive connection may be reused: the same destination.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct PoolKey {
    scheme: Scheme,
    host: String,
    port: u16,
}

/// Idle connections per destination, each with the time it became idle.
type IdleConnections = HashMap<PoolKey, Vec<(SendRequest<WasiBody>, Instant)>>;

/// Idle kept-alive connections of one plugin, per destination.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    idle: std::sync::Mutex<IdleConnections>,
}

/// Most idle connections kept per destination.
const MAX_IDLE_PER_DESTINATION: usize = 8;
/// How long an idle connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

impl Pool {
    fn lock(&self) -> std::sync::MutexGuard<'_, IdleConnections> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A usable idle connection to `key`, most recently used first.
    fn checkout(&self, key: &PoolKey) -> Option<SendRequest<WasiBody>> {
        let mut idle = self.lock();
        let list = idle.get_mut(key)?;
        while let Some((sender, since)) = list.pop() {
            if since.elapsed() < IDLE_TIMEOUT && sender.is_ready() && !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }

    /// Keep `sender` for the next request to `key`.
    fn checkin(&self, key: PoolKey, sender: SendRequest<WasiBody>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.lock();
        let list = idle.entry(key).or_default();
        list.retain(|(s, since)| since.elapsed() < IDLE_TIMEOUT && !s.is_closed());
        if list.len() < MAX_IDLE_PER_DESTINATION {
            list.push((sender, Instant::now()));
        }
    }

    /// Idle connections kept, for tests and metrics.
    pub(crate) fn idle(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }
}

/// The shorter of the plugin's limit and the guest's own option.
fn shortest(limit: Duration, asked: Option<Duration>) -> Duration {
    asked.map_or(limit, |a| a.min(limit))
}

/// Connect to the first address that answers before `deadline`.
async fn connect(addresses: &[SocketAddr], deadline: Instant) -> Result<TcpStream, HttpError> {
    let mut last = HttpError::ConnectionRefused;
    for address in addresses {
        match tokio::time::timeout_at(deadline, TcpStream::connect(address)).await {
            Err(_) => return Err(HttpError::ConnectionTimeout),
            Ok(Ok(stream)) => {
                // Requests are small and latency-bound.
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                last = HttpError::ConnectionRefused;
            }
            Ok(Err(e)) => last = HttpError::Connect(e),
        }
    }
    Err(last)
}

/// The response body as the guest reads it: frames pass through as they
/// arrive (streams stay streams) until the size limit or a timeout ends it.
struct LimitedBody {
    inner: hyper::body::Incoming,
    plugin: String,
    key: Option<AttachedKey>,
    limit: u64,
    seen: u64,
    total: Pin<Box<Sleep>>,
    between_bytes: Option<(Duration, Pin<Box<Sleep>>)>,
    /// The plugin's in-flight slot, released when the body is done or dropped.
    _permit: OwnedSemaphorePermit,
    failed: bool,
    /// The connection, kept alive for the next request once the body has
    /// been read to its end (never after an error or an early drop).
    reuse: Option<(Arc<ClientInner>, PoolKey, SendRequest<WasiBody>)>,
}

impl LimitedBody {
    /// Return the connection to the pool: the whole body has arrived.
    fn give_back(&mut self) {
        if let Some((client, key, sender)) = self.reuse.take() {
            client.pool.checkin(key, sender);
        }
    }

    fn fail(&mut self, err: HttpError, why: &str) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        self.failed = true;
        tracing::warn!(plugin = %self.plugin, key = self.key.as_ref().map(AttachedKey::reference), "response body ended: {why}");
        Poll::Ready(Some(Err(err)))
    }
}

impl Body for LimitedBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        if self.failed {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.seen = self.seen.saturating_add(data.len() as u64);
                    if self.seen > self.limit {
                        let limit = self.limit;
                        return self.fail(
                            HttpError::HttpResponseBodySize(Some(limit)),
                            &format!("larger than limits.http-max-response-bytes ({limit})"),
                        );
                    }
                }
                if let Some((every, sleep)) = &mut self.between_bytes {
                    sleep.as_mut().reset(Instant::now() + *every);
                }
                // The last frame of a body of known length: the connection is
                // free for the next request before the guest reads this one.
                if self.inner.is_end_stream() {
                    self.give_back();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                let err = if e.is_timeout() {
                    HttpError::HttpResponseTimeout
                } else {
                    HttpError::Hyper(e)
                };
                self.failed = true;
                Poll::Ready(Some(Err(err)))
            }
            Poll::Ready(None) => {
                self.give_back();
                Poll::Ready(None)
            }
            Poll::Pending => {
                if self.total.as_mut().poll(cx).is_ready() {
                    return self.fail(
                        HttpError::HttpResponseTimeout,
                        "limits.http-timeout-ms reached",
                    );
                }
                if let Some((_, sleep)) = &mut self.between_bytes {
                    ready!(sleep.as_mut().poll(cx));
                    return self.fail(
                        HttpError::ConnectionReadTimeout,
                        "the guest's between-bytes timeout passed",
                    );
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
