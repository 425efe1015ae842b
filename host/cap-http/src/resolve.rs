//! Name resolution: the operator's static overrides, then the system resolver.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use wasmtime_wasi_http::Error as HttpError;

/// Resolves host names to addresses. Overrides (`[runtime.http] resolve`)
/// answer first, like curl's `--resolve`; their answers pass the same
/// address checks as DNS answers.
#[derive(Debug, Clone, Default)]
pub struct Resolver {
    overrides: BTreeMap<String, Vec<IpAddr>>,
}

impl Resolver {
    /// A resolver with these overrides (names are matched case-insensitively).
    pub fn new(overrides: BTreeMap<String, Vec<IpAddr>>) -> Self {
        Self {
            overrides: overrides
                .into_iter()
                .map(|(name, ips)| (name.trim_end_matches('.').to_ascii_lowercase(), ips))
                .collect(),
        }
    }

    /// The addresses of `host` (a name or an address literal), within `timeout`.
    pub async fn resolve(
        &self,
        host: &str,
        port: u16,
        timeout: Duration,
    ) -> Result<Vec<SocketAddr>, HttpError> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        if let Some(ips) = self.overrides.get(host) {
            return Ok(ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect());
        }
        match tokio::time::timeout(timeout, tokio::net::lookup_host((host, port))).await {
            Err(_) => Err(HttpError::DnsTimeout),
            Ok(Err(e)) => Err(HttpError::DnsError {
                rcode: Some(format!("cannot resolve `{host}`: {e}")),
                info_code: None,
            }),
            Ok(Ok(addrs)) => {
                let addrs: Vec<SocketAddr> = addrs.collect();
                if addrs.is_empty() {
                    Err(HttpError::DestinationNotFound)
                } else {
                    Ok(addrs)
                }
            }
        }
    }
}
