//! `wasi:http`: outbound requests to the plugin's granted destinations
//! (`convergio-cap-http`), with keys attached by the host.

use std::sync::Arc;

use convergio_cap_http::{HttpClient, HttpPlatform, HttpPolicy, HttpState};
use wasmtime::component::Linker;

use super::{CapabilityHost, HostCapability, Services};
use crate::config::{Platform, PluginSpec};
use crate::{Capability, Error, Result};

pub(crate) struct Http;

impl HostCapability for Http {
    const CAPABILITY: Option<Capability> = Some(Capability::Http);
    /// Name overrides, trusted certificates, the key vault.
    type Shared = Arc<HttpPlatform>;
    type Plugin = HttpClient;
    type Store = HttpState;

    fn provides(interface: &str) -> bool {
        // The types hold host memory (fields, bodies, streams): only for
        // plugins granted `http`. Components that never touch HTTP do not
        // import them (neither `cargo component` nor `wasm32-wasip2` std does).
        matches!(interface, "wasi:http/types" | "wasi:http/outgoing-handler")
    }

    fn open(platform: &Platform, services: &Services) -> Result<Self::Shared> {
        let settings = &platform.runtime.http;
        HttpPlatform::new(
            settings.resolve.clone(),
            &settings.ca_files,
            services.vault.clone(),
        )
        .map(|http| Arc::new(http.zero_cloud(platform.inference.zero_cloud)))
        .map_err(|e| Error::capability("http", "cannot set up outgoing HTTP", e))
    }

    fn prepare(
        shared: &Self::Shared,
        _: &Services,
        spec: &Arc<PluginSpec>,
    ) -> std::result::Result<HttpClient, Vec<String>> {
        let policy = HttpPolicy::parse(&spec.grants.http, &spec.grants.keys, spec.limits.http)
            .map_err(|problems| problems.iter().map(ToString::to_string).collect::<Vec<_>>())?;
        Ok(HttpClient::new(spec.id.clone(), policy, shared.clone()))
    }

    fn store(client: &HttpClient) -> HttpState {
        HttpState::new(client.clone())
    }

    fn add_to_linker<T: CapabilityHost>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        convergio_cap_http::add_to_linker(linker)
    }
}
