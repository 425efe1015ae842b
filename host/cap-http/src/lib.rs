//! Convergio's outgoing HTTP capability: `wasi:http/outgoing-handler` for
//! plugins, on `wasmtime-wasi-http` with its [`WasiHttpHooks`].
//!
//! Deny by default, in this order for every request:
//!
//! 0. **URL.** An authority with a user name or password (`user@host`) is
//!    refused (`http-request-uri-invalid`): that text would travel in `Host`.
//! 1. **Allow-list.** The destination (`scheme://host:port`) must match one
//!    of the plugin's grants ([`HttpPolicy`], parsed once at load). Else
//!    `http-request-denied`.
//! 2. **Concurrency.** At most `max-concurrent` requests of the plugin are in
//!    flight (a request holds its slot until its body is read or dropped).
//!    Else `connection-limit-reached`.
//! 3. **Keys.** A request may carry the header `convergio-key: key:PROVIDER/NAME`
//!    (a reference from the `keys` interface). The host removes it and adds
//!    the key's auth header only if the plugin is granted that key and the
//!    key is bound to the request's origin (scheme, host and port). Else
//!    `http-request-denied`. The guest never sees the secret.
//! 4. **Addresses.** The host name is resolved (operator overrides first,
//!    then DNS) and every loopback, private, link-local, metadata and other
//!    internal address is dropped ([`restricted`]) unless the grant is that
//!    address literal. Nothing left: `destination-ip-prohibited`. The
//!    connection goes to a checked address, so a second DNS answer cannot
//!    change it (no rebinding).
//! 5. **Limits.** Connect timeout (resolve + TCP + TLS), total timeout (to
//!    the last byte of the body), largest response body. Each ends the
//!    request with its `wasi:http` error code, never a trap.
//!
//! Connections are kept alive per plugin and destination and reused once a
//! response has been read to its end; the address of a kept connection was
//! checked when it was opened.
//!
//! Every denial is logged at `warn` with the plugin, the destination and the
//! `platform.toml` line that would allow it; the guest gets the error code.
//! Every request runs in a tracing span `convergio.http.request` (method,
//! scheme, host, port, path without query, key reference — never a secret).
//!
//! [`HttpPlatform`] holds what every plugin shares; [`HttpClient`] is one
//! plugin's client under its [`HttpPolicy`]; [`HttpState`] is the
//! `wasi:http` state of one store, which the store's host type hands to
//! `wasmtime-wasi-http` as its [`WasiHttpView`]; [`add_to_linker`] links the
//! interfaces.
//!
//! ```no_run
//! use std::collections::BTreeMap;
//! use std::sync::Arc;
//!
//! use convergio_cap_http::{
//!     HttpClient, HttpLimits, HttpPlatform, HttpPolicy, HttpState, add_to_linker,
//! };
//! use wasmtime::component::{Linker, ResourceTable};
//! use wasmtime::{Engine, Store};
//! use wasmtime_wasi_http::{WasiHttpCtxView, WasiHttpView};
//!
//! struct Host {
//!     http: HttpState,
//!     table: ResourceTable,
//! }
//!
//! impl WasiHttpView for Host {
//!     fn http(&mut self) -> WasiHttpCtxView<'_> {
//!         self.http.view(&mut self.table)
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! // The plugin's grants as written in platform.toml, parsed once at load.
//! let grants = ["https://api.openai.com".to_owned()];
//! let keys = ["openai".to_owned()];
//! let policy = HttpPolicy::parse(&grants, &keys, HttpLimits::default()).map_err(|problems| {
//!     let messages: Vec<String> = problems.iter().map(ToString::to_string).collect();
//!     messages.join("; ")
//! })?;
//! // No host overrides, the Mozilla roots only, no key vault.
//! let platform = Arc::new(HttpPlatform::new(BTreeMap::new(), &[], None)?);
//! let client = HttpClient::new("notes-tool", policy, platform);
//!
//! let engine = Engine::default();
//! let mut linker = Linker::<Host>::new(&engine);
//! // A real host links `wasmtime_wasi::p2::add_to_linker_async` first.
//! add_to_linker(&mut linker)?;
//! let store = Store::new(
//!     &engine,
//!     Host { http: HttpState::new(client), table: ResourceTable::new() },
//! );
//! // ... instantiate a component that imports wasi:http/outgoing-handler
//! // with `linker`, using `instantiate_async` and `call_async` ...
//! # drop(store);
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

mod address;
mod error;
mod guest_errors;
mod keys;
mod policy;
mod resolve;
mod send;
mod tls;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::Semaphore;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi_http::{
    RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView,
};

pub use address::restricted;
pub use error::{Error, Result};
pub use keys::KEY_HEADER;
pub use policy::{Destination, HostPattern, HttpLimits, HttpPolicy, PortPattern, Scheme};
pub use resolve::Resolver;

/// What every plugin's client shares: the resolver, the TLS configuration
/// and the key vault.
#[derive(Debug)]
pub struct HttpPlatform {
    resolver: Resolver,
    tls: Arc<rustls::ClientConfig>,
    vault: Option<convergio_cap_keys::Vault>,
    /// Zero-cloud mode: every outbound request is refused, whatever the grants.
    zero_cloud: bool,
}

impl HttpPlatform {
    /// Build from the platform-wide settings (`[runtime.http]`): `resolve`
    /// gives fixed answers for host names, checked like DNS answers;
    /// `ca_files` are PEM files of certificates to trust besides the Mozilla
    /// roots; `vault` resolves keys attached to requests.
    pub fn new(
        resolve: BTreeMap<String, Vec<IpAddr>>,
        ca_files: &[PathBuf],
        vault: Option<convergio_cap_keys::Vault>,
    ) -> Result<Self> {
        Ok(Self {
            resolver: Resolver::new(resolve),
            tls: tls::client_config(ca_files)?,
            vault,
            zero_cloud: false,
        })
    }

    /// Refuse every outbound request (the platform's zero-cloud mode): a
    /// plugin's request is `http-request-denied`, logged with the reason.
    pub fn zero_cloud(mut self, on: bool) -> Self {
        self.zero_cloud = on;
        self
    }
}

/// One plugin's HTTP client: its policy, its in-flight counter and the
/// shared platform. Built once per loaded plugin; stores hold cheap clones.
#[derive(Debug, Clone)]
pub struct HttpClient {
    inner: Arc<ClientInner>,
}

#[derive(Debug)]
struct ClientInner {
    plugin: String,
    policy: HttpPolicy,
    in_flight: Arc<Semaphore>,
    platform: Arc<HttpPlatform>,
    /// Kept-alive connections, per destination.
    pool: send::Pool,
}

impl HttpClient {
    /// The client of `plugin` under `policy`.
    pub fn new(plugin: impl Into<String>, policy: HttpPolicy, platform: Arc<HttpPlatform>) -> Self {
        let permits = usize::try_from(policy.limits.max_concurrent.max(1)).unwrap_or(usize::MAX);
        Self {
            inner: Arc::new(ClientInner {
                plugin: plugin.into(),
                policy,
                in_flight: Arc::new(Semaphore::new(permits)),
                platform,
                pool: send::Pool::default(),
            }),
        }
    }

    /// The plugin's policy.
    pub fn policy(&self) -> &HttpPolicy {
        &self.inner.policy
    }

    /// Idle kept-alive connections the plugin holds.
    pub fn idle_connections(&self) -> usize {
        self.inner.pool.idle()
    }
}

/// The `wasi:http` state of one store: the context and the hooks that
/// enforce the plugin's policy.
#[derive(Debug)]
pub struct HttpState {
    ctx: WasiHttpCtx,
    hooks: Hooks,
}

impl HttpState {
    /// State for one store of the plugin that owns `client`.
    pub fn new(client: HttpClient) -> Self {
        Self {
            ctx: WasiHttpCtx::new(),
            hooks: Hooks(client),
        }
    }

    /// Borrow as the view `wasmtime-wasi-http` works on.
    pub fn view<'a>(&'a mut self, table: &'a mut ResourceTable) -> WasiHttpCtxView<'a> {
        WasiHttpCtxView {
            ctx: &mut self.ctx,
            table,
            hooks: &mut self.hooks,
        }
    }
}

/// Add `wasi:http/types` and `wasi:http/outgoing-handler` to `linker`.
/// Whether a plugin may import the handler is decided before linking, from
/// its grants; a plugin without destinations is refused every request.
///
/// Also replaces `wasi:io/error.to-debug-string`, through which body
/// streams report failures, so that a guest reads an error's one-line
/// message and never the host's backtrace (`RUST_BACKTRACE=1`). Call it
/// after `wasmtime_wasi::p2::add_to_linker_async`.
pub fn add_to_linker<T: WasiHttpView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    guest_errors::add_to_linker(linker)
}

#[derive(Debug)]
struct Hooks(HttpClient);

type IoFuture = Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>;

impl WasiHttpHooks for Hooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), wasmtime_wasi_http::Error>>
            + Send,
    > {
        Box::new(send::send(self.0.clone(), request, options))
    }
}
