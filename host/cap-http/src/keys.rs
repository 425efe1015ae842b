//! Attaching a BYOK key to a request: the guest names a key by reference,
//! the host adds its auth header if the plugin may send it there.

use convergio_cap_keys::secrecy::ExposeSecret as _;
use convergio_cap_keys::{UsageDelta, Vault};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::{ClientInner, Scheme};

/// The request header that names a key: `convergio-key: key:PROVIDER/NAME`.
/// The host removes it before the request leaves.
pub const KEY_HEADER: &str = "convergio-key";

/// The key version a request carries, for usage metering.
#[derive(Debug, Clone)]
pub(crate) struct AttachedKey {
    pub(crate) provider: String,
    pub(crate) name: String,
    pub(crate) version: u32,
}

impl AttachedKey {
    pub(crate) fn reference(&self) -> String {
        convergio_cap_keys::reference(&self.provider, &self.name)
    }
}

/// Take the key header out of `headers`; if it names a key, add that key's
/// auth header, provided the key is bound to the request's origin
/// (`scheme`, `host`, `port`). `Err` carries the reason, for the log.
pub(crate) async fn attach(
    client: &ClientInner,
    headers: &mut HeaderMap,
    (scheme, host, port): (Scheme, &str, u16),
) -> Result<Option<AttachedKey>, String> {
    let named: Vec<HeaderValue> = match headers.remove(KEY_HEADER) {
        None => return Ok(None),
        Some(first) => std::iter::once(first)
            .chain(headers.get_all(KEY_HEADER).iter().cloned())
            .collect(),
    };
    headers.remove(KEY_HEADER);
    let [value] = named.as_slice() else {
        return Err(format!(
            "the request names {} keys; attach one",
            named.len()
        ));
    };
    let text = value
        .to_str()
        .map_err(|_| format!("the `{KEY_HEADER}` header is not text"))?;
    let key = convergio_cap_keys::parse_reference(text).map_err(|e| e.to_string())?;
    let reference = key.reference();
    if !client.policy.key_grants.allows(&key.provider, &key.name) {
        return Err(format!(
            "plugin `{}` is not granted key {reference}; grant it with keys = [\"{}\"] under its [plugin.grants] in platform.toml",
            client.plugin, key.provider
        ));
    }
    let Some(vault) = client.platform.vault.clone() else {
        return Err(format!(
            "no key vault is open, so {reference} cannot be attached"
        ));
    };
    // A cached key is served in place; a miss or a due revalidation reads
    // SQLite (and may unwrap a data key), which belongs off the async workers.
    let resolved = match vault.resolve_cached(&key.provider, &key.name) {
        Some(resolved) => resolved,
        None => {
            let (provider, name) = (key.provider.clone(), key.name.clone());
            tokio::task::spawn_blocking(move || vault.resolve(&provider, &name))
                .await
                .map_err(|e| format!("resolving {reference} failed: {e}"))?
        }
    }
    .map_err(|e| e.to_string())?;
    if !resolved.allows(scheme.as_str(), host, port) {
        let bound: Vec<String> = resolved
            .bound_origins
            .iter()
            .map(ToString::to_string)
            .collect();
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        return Err(format!(
            "key {reference} is bound to {}, not to `{}://{host}:{port}`; a key's origins (scheme://host[:port]) are set with `--host` when it is added (`convergio keys add`)",
            bound.join(", "),
            scheme.as_str()
        ));
    }
    let header_name = HeaderName::from_static(resolved.header_name);
    let mut header_value = HeaderValue::from_str(resolved.header_value.expose_secret())
        .map_err(|_| format!("the stored value of {reference} cannot travel in an HTTP header"))?;
    header_value.set_sensitive(true);
    // Whatever the guest put there is replaced, never sent beside the key.
    headers.remove(&header_name);
    headers.insert(header_name, header_value);
    Ok(Some(AttachedKey {
        provider: key.provider,
        name: key.name,
        version: resolved.version,
    }))
}

/// Count one request (and an error, if it failed) against the key version.
pub(crate) fn record(vault: Option<&Vault>, key: &AttachedKey, failed: bool) {
    let Some(vault) = vault.cloned() else { return };
    let key = key.clone();
    let usage = UsageDelta {
        requests: 1,
        errors: u64::from(failed),
        ..UsageDelta::default()
    };
    // SQLite may wait on a lock: keep it off the async workers.
    tokio::task::spawn_blocking(move || {
        if let Err(e) = vault.record_usage(&key.provider, &key.name, key.version, &usage) {
            tracing::warn!(key = %key.reference(), error = %e, "could not record key usage");
        }
    });
}
