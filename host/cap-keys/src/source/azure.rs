//! Master key in Azure Key Vault (feature `azure`): data keys are wrapped and
//! unwrapped by the service, the key itself never leaves it.
//!
//! Requests, as documented for api-version 7.4:
//! - `GET {vault}/keys/{name}?api-version=7.4` → `{"key": {"kid": "{vault}/keys/{name}/{version}", …}}`
//!   (the newest version; used when no version is pinned, and by `refresh`);
//! - `POST {vault}/keys/{name}/{version}/wrapkey?api-version=7.4` with
//!   `{"alg": "RSA-OAEP-256", "value": BASE64URL}` → `{"kid": …, "value": BASE64URL}`;
//! - `POST {vault}/keys/{name}/{version}/unwrapkey?api-version=7.4`, same shapes;
//! - errors: an HTTP status with `{"error": {"code": …, "message": …}}`.
//!
//! Every request carries `Authorization: Bearer TOKEN` from a [`TokenProvider`].

use std::fmt;
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::crypto::DataKey;
use crate::error::{Error, Result};
use crate::source::{MasterKeySource, WrappedKey};

/// The Key Vault REST API version used.
pub const API_VERSION: &str = "7.4";

/// The OAuth scope of Azure Key Vault.
pub const KEY_VAULT_SCOPE: &str = "https://vault.azure.net/.default";

const SERVICE: &str = "Azure Key Vault";

/// base64url without padding, decoding with or without it.
const B64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Supplies bearer tokens for Key Vault requests.
pub trait TokenProvider: Send + Sync + fmt::Debug {
    /// A current access token for `https://vault.azure.net`.
    fn token(&self) -> Result<SecretString>;
}

/// A fixed token (from `az account get-access-token --resource https://vault.azure.net`,
/// or a test). Tokens expire after about an hour: prefer [`ClientCredentials`]
/// or [`ManagedIdentity`] for a long-running host.
pub struct StaticToken(SecretString);

impl StaticToken {
    /// Use `token` for every request.
    pub fn new(token: SecretString) -> Self {
        Self(token)
    }
}

impl fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StaticToken([redacted])")
    }
}

impl TokenProvider for StaticToken {
    fn token(&self) -> Result<SecretString> {
        Ok(self.0.clone())
    }
}

/// A token cached until shortly before it expires.
#[derive(Default)]
struct TokenCache(Mutex<Option<(SecretString, Instant)>>);

impl TokenCache {
    fn get_or(
        &self,
        fetch: impl FnOnce() -> Result<(SecretString, Duration)>,
    ) -> Result<SecretString> {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((token, until)) = slot.as_ref()
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let (token, lifetime) = fetch()?;
        // Renew five minutes early (or halfway, for short-lived tokens).
        let margin = Duration::from_secs(300).min(lifetime / 2);
        *slot = Some((token.clone(), Instant::now() + lifetime - margin));
        Ok(token)
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

impl TokenResponse {
    fn into_token(self) -> (SecretString, Duration) {
        let secs = match &self.expires_in {
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            Some(serde_json::Value::String(s)) => s.parse().ok(),
            _ => None,
        }
        .unwrap_or(300);
        (
            SecretString::from(self.access_token),
            Duration::from_secs(secs),
        )
    }
}

/// Microsoft Entra ID client-credentials flow (a service principal with a
/// client secret): `POST {authority}/{tenant}/oauth2/v2.0/token`.
pub struct ClientCredentials {
    token_url: String,
    client_id: String,
    client_secret: SecretString,
    agent: ureq::Agent,
    cache: TokenCache,
}

impl ClientCredentials {
    /// The public cloud's authority.
    pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";

    /// A service principal of `tenant`. `authority` is
    /// [`Self::DEFAULT_AUTHORITY`] unless a sovereign cloud (or a test server) is used.
    pub fn new(
        authority: &str,
        tenant: &str,
        client_id: &str,
        client_secret: SecretString,
        timeout: Duration,
    ) -> Result<Self> {
        let authority = checked_base_url(authority, "authority URL")?;
        Ok(Self {
            token_url: format!("{authority}/{tenant}/oauth2/v2.0/token"),
            client_id: client_id.to_owned(),
            client_secret,
            agent: agent(timeout),
            cache: TokenCache::default(),
        })
    }
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .finish()
    }
}

impl TokenProvider for ClientCredentials {
    fn token(&self) -> Result<SecretString> {
        self.cache.get_or(|| {
            let body = Zeroizing::new(format!(
                "grant_type=client_credentials&client_id={}&client_secret={}&scope={}",
                form_encode(&self.client_id),
                form_encode(self.client_secret.expose_secret()),
                form_encode(KEY_VAULT_SCOPE),
            ));
            let request = self
                .agent
                .post(&self.token_url)
                .header("content-type", "application/x-www-form-urlencoded");
            let (status, text) = exchange(request.send(body.as_bytes()), "Azure AD", "token")?;
            parse_token(status, &text)
        })
    }
}

/// Azure managed identity through the instance metadata endpoint
/// (`GET {endpoint}?api-version=2018-02-01&resource=https://vault.azure.net`
/// with `Metadata: true`).
pub struct ManagedIdentity {
    url: String,
    agent: ureq::Agent,
    cache: TokenCache,
}

impl ManagedIdentity {
    /// The instance metadata service's token endpoint.
    pub const DEFAULT_ENDPOINT: &str = "http://169.254.169.254/metadata/identity/oauth2/token";

    /// Tokens from `endpoint` (normally [`Self::DEFAULT_ENDPOINT`]); `client_id`
    /// picks a user-assigned identity.
    pub fn new(endpoint: &str, client_id: Option<&str>, timeout: Duration) -> Self {
        let mut url = format!(
            "{endpoint}?api-version=2018-02-01&resource={}",
            form_encode("https://vault.azure.net")
        );
        if let Some(id) = client_id {
            url.push_str("&client_id=");
            url.push_str(&form_encode(id));
        }
        Self {
            url,
            agent: agent(timeout),
            cache: TokenCache::default(),
        }
    }
}

impl fmt::Debug for ManagedIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagedIdentity")
            .field("url", &self.url)
            .finish()
    }
}

impl TokenProvider for ManagedIdentity {
    fn token(&self) -> Result<SecretString> {
        self.cache.get_or(|| {
            let request = self.agent.get(&self.url).header("metadata", "true");
            let (status, text) = exchange(request.call(), "Azure managed identity", "token")?;
            parse_token(status, &text)
        })
    }
}

fn parse_token(status: u16, text: &str) -> Result<(SecretString, Duration)> {
    if !(200..300).contains(&status) {
        #[derive(Deserialize)]
        struct OAuthError {
            error: Option<String>,
            error_description: Option<String>,
        }
        let parsed: Option<OAuthError> = serde_json::from_str(text).ok();
        return Err(Error::Azure {
            operation: "token",
            status,
            code: parsed.as_ref().and_then(|e| e.error.clone()),
            message: truncate(
                parsed
                    .and_then(|e| e.error_description)
                    .as_deref()
                    .unwrap_or("the token request was refused"),
            ),
        });
    }
    let parsed: TokenResponse = serde_json::from_str(text).map_err(|e| Error::Transport {
        service: "Azure AD",
        operation: "token",
        reason: format!("unexpected response: {e}"),
    })?;
    Ok(parsed.into_token())
}

/// Where and how to reach the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AzureKeyVaultConfig {
    /// `https://NAME.vault.azure.net` (plain `http` is accepted only for loopback test servers).
    pub vault_url: String,
    /// The key's name in the vault.
    pub key_name: String,
    /// A pinned version; `None` follows the newest version (and `refresh` picks up new ones).
    pub key_version: Option<String>,
    /// Wrapping algorithm: `RSA-OAEP-256` for RSA keys, `A256KW` for Managed HSM AES keys.
    pub algorithm: String,
    /// Timeout of each request.
    pub timeout: Duration,
}

impl AzureKeyVaultConfig {
    /// Defaults: newest version, `RSA-OAEP-256`, 10 s timeout.
    pub fn new(vault_url: &str, key_name: &str) -> Self {
        Self {
            vault_url: vault_url.to_owned(),
            key_name: key_name.to_owned(),
            key_version: None,
            algorithm: "RSA-OAEP-256".to_owned(),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Data keys wrapped by a key in Azure Key Vault.
pub struct AzureKeyVaultSource {
    base: String,
    config: AzureKeyVaultConfig,
    token: Box<dyn TokenProvider>,
    agent: ureq::Agent,
    current: RwLock<Option<String>>,
}

impl fmt::Debug for AzureKeyVaultSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureKeyVaultSource")
            .field("vault_url", &self.base)
            .field("key_name", &self.config.key_name)
            .field("current_version", &self.read_current())
            .field("token", &self.token)
            .finish()
    }
}

#[derive(Serialize)]
struct KeyOperation<'a> {
    alg: &'a str,
    value: &'a str,
}

#[derive(Deserialize)]
struct KeyOperationResult {
    kid: Option<String>,
    value: String,
}

#[derive(Deserialize)]
struct KeyBundle {
    key: JsonWebKey,
}

#[derive(Deserialize)]
struct JsonWebKey {
    kid: String,
}

#[derive(Deserialize)]
struct KeyVaultError {
    error: KeyVaultErrorBody,
}

#[derive(Deserialize)]
struct KeyVaultErrorBody {
    code: Option<String>,
    message: Option<String>,
}

impl AzureKeyVaultSource {
    /// A source for `config`, authenticated by `token`. No request is made yet.
    pub fn new(config: AzureKeyVaultConfig, token: Box<dyn TokenProvider>) -> Result<Self> {
        let base = checked_base_url(&config.vault_url, "Azure Key Vault URL")?;
        crate::model::validate_azure_segment("key name", &config.key_name)?;
        if let Some(v) = &config.key_version {
            crate::model::validate_azure_segment("key version", v)?;
        }
        Ok(Self {
            base,
            agent: agent(config.timeout),
            current: RwLock::new(config.key_version.clone()),
            config,
            token,
        })
    }

    fn read_current(&self) -> Option<String> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn key_url(&self, version: &str, operation: &str) -> String {
        format!(
            "{}/keys/{}/{version}/{operation}?api-version={API_VERSION}",
            self.base, self.config.key_name
        )
    }

    fn kid(&self, version: &str) -> String {
        format!("{}/keys/{}/{version}", self.base, self.config.key_name)
    }

    /// The version named by a stored key id. Only the version is taken from
    /// it: requests always go to the configured vault, never to a host read
    /// from the database.
    fn version_of(&self, key_id: &str) -> Result<String> {
        let marker = format!("/keys/{}/", self.config.key_name);
        let version = key_id
            .rfind(&marker)
            .map(|at| &key_id[at + marker.len()..])
            .filter(|v| crate::model::validate_azure_segment("key version", v).is_ok());
        match version {
            Some(v) => Ok(v.to_owned()),
            None => Err(Error::MasterKeyMismatch {
                vault_key_id: key_id.to_owned(),
                source_key_id: self.kid("*"),
                source_desc: self.describe(),
            }),
        }
    }

    fn fetch_latest(&self) -> Result<String> {
        let url = format!(
            "{}/keys/{}?api-version={API_VERSION}",
            self.base, self.config.key_name
        );
        let token = self.token.token()?;
        let request = self
            .agent
            .get(&url)
            .header("authorization", bearer(&token).as_str());
        let (status, text) = exchange(request.call(), SERVICE, "get key")?;
        check_status(status, &text, "get key")?;
        let bundle: KeyBundle = parse(&text, "get key")?;
        self.version_of(&bundle.key.kid)
    }

    fn operate(
        &self,
        version: &str,
        operation: &'static str,
        value: &[u8],
    ) -> Result<KeyOperationResult> {
        let encoded = Zeroizing::new(B64URL.encode(value));
        let body = Zeroizing::new(
            serde_json::to_string(&KeyOperation {
                alg: &self.config.algorithm,
                value: &encoded,
            })
            .map_err(|e| Error::Transport {
                service: SERVICE,
                operation,
                reason: e.to_string(),
            })?,
        );
        let token = self.token.token()?;
        let request = self
            .agent
            .post(self.key_url(version, operation))
            .header("authorization", bearer(&token).as_str())
            .header("content-type", "application/json");
        let (status, text) = exchange(request.send(body.as_bytes()), SERVICE, operation)?;
        let text = Zeroizing::new(text);
        check_status(status, &text, operation)?;
        parse(&text, operation)
    }
}

impl MasterKeySource for AzureKeyVaultSource {
    fn describe(&self) -> String {
        format!(
            "Azure Key Vault key {}/keys/{}",
            self.base, self.config.key_name
        )
    }

    fn current_key_id(&self) -> Result<String> {
        if let Some(version) = self.read_current() {
            return Ok(self.kid(&version));
        }
        let latest = self.fetch_latest()?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(latest.clone());
        Ok(self.kid(&latest))
    }

    fn wrap(&self, data_key: &DataKey, _context: &[u8]) -> Result<WrappedKey> {
        let id = self.current_key_id()?;
        let version = self.version_of(&id)?;
        let result = self.operate(&version, "wrapkey", data_key.expose())?;
        let bytes = B64URL
            .decode(result.value.as_bytes())
            .map_err(|_| Error::Transport {
                service: SERVICE,
                operation: "wrapkey",
                reason: "the wrapped key is not base64url".to_owned(),
            })?;
        // Keep our own canonical id; the service's kid names the same version.
        if let Some(kid) = &result.kid {
            let answered = self.version_of(kid)?;
            if answered != version {
                return Err(Error::Transport {
                    service: SERVICE,
                    operation: "wrapkey",
                    reason: format!("asked for key version {version}, the answer names {answered}"),
                });
            }
        }
        Ok(WrappedKey { key_id: id, bytes })
    }

    fn unwrap(&self, wrapped: &WrappedKey, _context: &[u8]) -> Result<DataKey> {
        let version = self.version_of(&wrapped.key_id)?;
        let result = self.operate(&version, "unwrapkey", &wrapped.bytes)?;
        let value = Zeroizing::new(result.value);
        let bytes =
            Zeroizing::new(
                B64URL
                    .decode(value.as_bytes())
                    .map_err(|_| Error::Transport {
                        service: SERVICE,
                        operation: "unwrapkey",
                        reason: "the unwrapped key is not base64url".to_owned(),
                    })?,
            );
        DataKey::from_slice(&bytes, "Azure Key Vault unwrapkey")
    }

    fn refresh(&self) -> Result<bool> {
        if self.config.key_version.is_some() {
            return Ok(false);
        }
        let latest = self.fetch_latest()?;
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        let changed = current.as_deref() != Some(latest.as_str());
        *current = Some(latest);
        Ok(changed)
    }
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .max_redirects_will_error(false)
        .build()
        .into()
}

fn bearer(token: &SecretString) -> Zeroizing<String> {
    Zeroizing::new(format!("Bearer {}", token.expose_secret()))
}

/// Trim a base URL and refuse plain `http` except to loopback test servers.
fn checked_base_url(url: &str, what: &'static str) -> Result<String> {
    let url = url.trim().trim_end_matches('/');
    let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
        .iter()
        .any(|p| {
            url.starts_with(p) && matches!(url.as_bytes().get(p.len()), None | Some(b':' | b'/'))
        });
    if !url.starts_with("https://") && !loopback {
        return Err(Error::invalid(
            what,
            format!(
                "`{url}` must start with https:// (plain http is allowed only to 127.0.0.1 or localhost)"
            ),
        ));
    }
    Ok(url.to_owned())
}

fn exchange(
    result: std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    service: &'static str,
    operation: &'static str,
) -> Result<(u16, String)> {
    let transport = |reason: String| Error::Transport {
        service,
        operation,
        reason,
    };
    let mut response = result.map_err(|e| transport(e.to_string()))?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .read_to_string()
        .map_err(|e| transport(format!("reading the response: {e}")))?;
    Ok((status, text))
}

fn check_status(status: u16, text: &str, operation: &'static str) -> Result<()> {
    if (200..300).contains(&status) {
        return Ok(());
    }
    let parsed: Option<KeyVaultError> = serde_json::from_str(text).ok();
    let (code, message) = match parsed {
        Some(KeyVaultError { error }) => (
            error.code,
            error.message.unwrap_or_else(|| "no message".to_owned()),
        ),
        None if text.trim().is_empty() => (None, "empty response body".to_owned()),
        None => (None, text.to_owned()),
    };
    Err(Error::Azure {
        operation,
        status,
        code,
        message: truncate(&message),
    })
}

fn parse<T: for<'de> Deserialize<'de>>(text: &str, operation: &'static str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| Error::Transport {
        service: SERVICE,
        operation,
        reason: format!("unexpected response: {e}"),
    })
}

fn truncate(message: &str) -> String {
    const MAX: usize = 300;
    match message.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &message[..at]),
        None => message.to_owned(),
    }
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(byte));
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        assert!(checked_base_url("https://x.vault.azure.net/", "u").is_ok());
        assert!(checked_base_url("http://127.0.0.1:8080", "u").is_ok());
        assert!(checked_base_url("http://x.vault.azure.net", "u").is_err());
        assert!(checked_base_url("http://127.0.0.1.evil.com", "u").is_err());
        assert!(checked_base_url("http://localhost.evil.com", "u").is_err());
    }

    #[test]
    fn encoding() {
        assert_eq!(form_encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
        assert_eq!(truncate("short"), "short");
    }
}
