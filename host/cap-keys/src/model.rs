//! Public value types: key references, auth schemes, listings, usage, policy.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use secrecy::SecretString;

use crate::error::{Error, Result};
use crate::origin::{BoundOrigin, origins_allow};

/// Prefix of an opaque key reference: `key:PROVIDER/NAME`.
pub const REFERENCE_PREFIX: &str = "key:";

/// The name a key gets when none is given.
pub const DEFAULT_KEY_NAME: &str = "default";

/// A stored key, by provider and name (the WIT `key-ref`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyRef {
    /// Provider, e.g. `openai`, `anthropic`, `azure-openai`, `gemini`.
    pub provider: String,
    /// Key name within the provider; `default` unless named.
    pub name: String,
}

impl KeyRef {
    /// A validated reference.
    pub fn new(provider: &str, name: &str) -> Result<Self> {
        validate_name("provider name", provider)?;
        validate_name("key name", name)?;
        Ok(Self {
            provider: provider.to_owned(),
            name: name.to_owned(),
        })
    }

    /// The opaque token a component puts in the `convergio-key` header.
    pub fn reference(&self) -> String {
        reference(&self.provider, &self.name)
    }
}

impl fmt::Display for KeyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.provider, self.name)
    }
}

/// The opaque reference naming a key: `key:PROVIDER/NAME`. It carries no secret.
pub fn reference(provider: &str, name: &str) -> String {
    format!("{REFERENCE_PREFIX}{provider}/{name}")
}

/// Parse a reference made by [`reference()`]. Refuses anything else, including
/// names that [`KeyRef::new`] would refuse.
pub fn parse_reference(token: &str) -> Result<KeyRef> {
    let bad = |reason: &str| Error::invalid("key reference", reason.to_owned());
    let rest = token
        .strip_prefix(REFERENCE_PREFIX)
        .ok_or_else(|| bad("it must look like key:PROVIDER/NAME"))?;
    let (provider, name) = rest
        .split_once('/')
        .ok_or_else(|| bad("it must look like key:PROVIDER/NAME"))?;
    KeyRef::new(provider, name)
}

/// Check a provider or key name: 1 to 64 characters of `a-z 0-9 . _ -`,
/// starting with a letter or digit.
pub(crate) fn validate_name(what: &'static str, value: &str) -> Result<()> {
    if value.is_empty() || value.len() > 64 {
        return Err(Error::invalid(what, "it must have 1 to 64 characters"));
    }
    let first_ok = value
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest_ok = value
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if !first_ok || !rest_ok {
        return Err(Error::invalid(
            what,
            format!(
                "`{value}` may use only a-z, 0-9, '.', '_' and '-', and must start with a letter or digit"
            ),
        ));
    }
    Ok(())
}

/// Check a key name or version segment of an Azure Key Vault URL:
/// 1 to 127 characters of `A-Z a-z 0-9 -`.
#[cfg_attr(not(feature = "azure"), allow(dead_code))]
pub(crate) fn validate_azure_segment(what: &'static str, value: &str) -> Result<()> {
    if value.is_empty()
        || value.len() > 127
        || !value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(Error::invalid(
            what,
            format!("`{value}` may use only letters, digits and '-'"),
        ));
    }
    Ok(())
}

/// Which header carries the secret upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthScheme {
    /// `Authorization: Bearer SECRET` (OpenAI and most OpenAI-compatible APIs).
    Bearer,
    /// `x-api-key: SECRET` (Anthropic).
    XApiKey,
    /// `api-key: SECRET` (Azure OpenAI).
    ApiKey,
    /// `x-goog-api-key: SECRET` (Google Gemini).
    XGoogApiKey,
}

impl AuthScheme {
    /// Every scheme, for help texts.
    pub const ALL: [AuthScheme; 4] = [Self::Bearer, Self::XApiKey, Self::ApiKey, Self::XGoogApiKey];

    /// The name used in storage, configuration and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bearer => "bearer",
            Self::XApiKey => "x-api-key",
            Self::ApiKey => "api-key",
            Self::XGoogApiKey => "x-goog-api-key",
        }
    }

    /// The HTTP header name (lowercase).
    pub fn header_name(self) -> &'static str {
        match self {
            Self::Bearer => "authorization",
            Self::XApiKey => "x-api-key",
            Self::ApiKey => "api-key",
            Self::XGoogApiKey => "x-goog-api-key",
        }
    }

    /// The scheme a well-known provider uses; `bearer` for any other.
    pub fn for_provider(provider: &str) -> Self {
        match provider {
            "anthropic" => Self::XApiKey,
            "azure-openai" | "azure" => Self::ApiKey,
            "gemini" | "google" => Self::XGoogApiKey,
            _ => Self::Bearer,
        }
    }

    pub(crate) fn header_value(self, secret: &str) -> SecretString {
        match self {
            Self::Bearer => SecretString::from(format!("Bearer {secret}")),
            _ => SecretString::from(secret),
        }
    }
}

impl fmt::Display for AuthScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AuthScheme {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|scheme| scheme.as_str() == s)
            .ok_or_else(|| {
                Error::invalid(
                    "auth scheme",
                    format!("`{s}`; expected one of bearer, x-api-key, api-key, x-goog-api-key"),
                )
            })
    }
}

/// The API hosts of well-known providers, the default binding for their keys
/// (bare hosts: `https` on port 443, see [`BoundOrigin::parse_binding`]).
/// Empty for a provider this crate does not know: the operator must name origins.
pub fn default_bound_hosts(provider: &str) -> Vec<String> {
    let hosts: &[&str] = match provider {
        "openai" => &["api.openai.com"],
        "anthropic" => &["api.anthropic.com"],
        "gemini" | "google" => &["generativelanguage.googleapis.com"],
        "azure-openai" | "azure" => &["*.openai.azure.com", "*.cognitiveservices.azure.com"],
        "mistral" => &["api.mistral.ai"],
        "groq" => &["api.groq.com"],
        "openrouter" => &["openrouter.ai"],
        "together" => &["api.together.xyz"],
        "deepseek" => &["api.deepseek.com"],
        _ => &[],
    };
    hosts.iter().map(|h| (*h).to_owned()).collect()
}

/// The state of one version of a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyState {
    /// The version `resolve` returns.
    Active,
    /// Replaced by a rotation; still accepted until its grace period ends.
    Grace,
    /// Refused; its ciphertext has been wiped (or its grace period ended).
    Revoked,
}

impl KeyState {
    /// The name used in storage and listings.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Grace => "grace",
            Self::Revoked => "revoked",
        }
    }

    pub(crate) fn parse(s: &str) -> Self {
        match s {
            "active" => Self::Active,
            "grace" => Self::Grace,
            _ => Self::Revoked,
        }
    }
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Public facts about the active version of a key (the WIT `key-info`); never
/// the secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    /// Which key.
    pub key: KeyRef,
    /// The active version.
    pub version: u32,
    /// When it stops being accepted.
    pub expires: Option<SystemTime>,
    /// Origins it may be sent to, e.g. `https://api.openai.com:443`.
    pub bound_hosts: Vec<String>,
    /// The header it travels in.
    pub auth_scheme: AuthScheme,
}

/// Counters of upstream use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UsageTotals {
    /// Requests sent with the key.
    pub requests: u64,
    /// Input (prompt) tokens the provider reported.
    pub input_tokens: u64,
    /// Output (completion) tokens the provider reported.
    pub output_tokens: u64,
    /// Cost in millionths of a US dollar.
    pub cost_micro_usd: u64,
    /// Requests that failed.
    pub errors: u64,
}

/// What one or more requests used, to add with [`crate::Vault::record_usage`].
pub type UsageDelta = UsageTotals;

impl UsageTotals {
    pub(crate) fn add(&mut self, other: &UsageTotals) {
        self.requests = self.requests.saturating_add(other.requests);
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
        self.cost_micro_usd = self.cost_micro_usd.saturating_add(other.cost_micro_usd);
        self.errors = self.errors.saturating_add(other.errors);
    }

    /// Cost in US dollars, for display.
    pub fn cost_usd(&self) -> f64 {
        // Precision loss past 2^53 micro-dollars (9 billion USD) is acceptable for display.
        #[allow(clippy::cast_precision_loss)]
        let micro = self.cost_micro_usd as f64;
        micro / 1_000_000.0
    }
}

/// Usage of one version of a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageRow {
    /// Which key.
    pub key: KeyRef,
    /// Which version.
    pub version: u32,
    /// Sums over the period asked for.
    pub totals: UsageTotals,
    /// Last time a request was recorded.
    pub last_used: Option<SystemTime>,
}

/// A warning about a key in a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyWarning {
    /// The key is older than the provider's maximum age minus the warning window.
    MaxAgeNear {
        /// Age in whole days.
        age_days: u64,
        /// The policy's maximum.
        max_age_days: u32,
    },
    /// The key is older than the provider's maximum age: rotate it.
    MaxAgeExceeded {
        /// Age in whole days.
        age_days: u64,
        /// The policy's maximum.
        max_age_days: u32,
    },
    /// The key expires within the warning window.
    ExpiresSoon {
        /// Whole days left.
        days_left: u64,
    },
    /// The key is past its expiry date and is refused.
    Expired,
}

impl fmt::Display for KeyWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MaxAgeNear {
                age_days,
                max_age_days,
            } => write!(
                f,
                "{age_days} days old; the policy's maximum age is {max_age_days} days: rotate soon"
            ),
            Self::MaxAgeExceeded {
                age_days,
                max_age_days,
            } => write!(
                f,
                "{age_days} days old, past the policy's maximum age of {max_age_days} days: rotate it"
            ),
            Self::ExpiresSoon { days_left } => write!(f, "expires in {days_left} days"),
            Self::Expired => f.write_str("expired: requests with this key are refused"),
        }
    }
}

/// Key age policy: maximum ages per provider, and how early to warn.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPolicy {
    /// Maximum age in days per provider.
    pub max_age_days: HashMap<String, u32>,
    /// Maximum age for providers not in `max_age_days`; `None` means no limit.
    pub default_max_age_days: Option<u32>,
    /// Warn this many days before the maximum age or the expiry date.
    pub warn_days: u32,
}

impl Default for KeyPolicy {
    fn default() -> Self {
        Self {
            max_age_days: HashMap::new(),
            default_max_age_days: None,
            warn_days: 7,
        }
    }
}

impl KeyPolicy {
    /// The maximum age that applies to `provider`.
    pub fn max_age_for(&self, provider: &str) -> Option<u32> {
        self.max_age_days
            .get(provider)
            .copied()
            .or(self.default_max_age_days)
    }

    /// Warnings for a version created at `created`, expiring at `expires`, at `now`.
    pub fn warnings(
        &self,
        provider: &str,
        created: SystemTime,
        expires: Option<SystemTime>,
        now: SystemTime,
    ) -> Vec<KeyWarning> {
        const DAY: u64 = 86_400;
        let mut out = Vec::new();
        let warn = u64::from(self.warn_days);
        if let Some(max) = self.max_age_for(provider) {
            let age_days = now.duration_since(created).unwrap_or_default().as_secs() / DAY;
            let max_days = u64::from(max);
            if age_days >= max_days {
                out.push(KeyWarning::MaxAgeExceeded {
                    age_days,
                    max_age_days: max,
                });
            } else if age_days + warn >= max_days {
                out.push(KeyWarning::MaxAgeNear {
                    age_days,
                    max_age_days: max,
                });
            }
        }
        if let Some(expires) = expires {
            match expires.duration_since(now) {
                Err(_) | Ok(Duration::ZERO) => out.push(KeyWarning::Expired),
                Ok(left) if left.as_secs() / DAY < warn => out.push(KeyWarning::ExpiresSoon {
                    days_left: left.as_secs() / DAY,
                }),
                Ok(_) => {}
            }
        }
        out
    }
}

/// One version of a key as `list` shows it: masked, with its usage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyListing {
    /// Which key.
    pub key: KeyRef,
    /// Version number (1 for the first secret, +1 per rotation).
    pub version: u32,
    /// Effective state (a grace version past its grace period shows as revoked).
    pub state: KeyState,
    /// The secret masked to its last 4 characters (`…abcd`), or `…` for short secrets.
    pub masked: String,
    /// When this version was added.
    pub created: SystemTime,
    /// When it stops being accepted.
    pub expires: Option<SystemTime>,
    /// End of the grace period, for a version in grace.
    pub grace_until: Option<SystemTime>,
    /// Origins it may be sent to, e.g. `https://api.openai.com:443`.
    pub bound_hosts: Vec<String>,
    /// The header it travels in.
    pub auth_scheme: AuthScheme,
    /// Id of the master key its data key is wrapped with.
    pub master_key_id: String,
    /// All-time usage of this version.
    pub usage: UsageTotals,
    /// Last recorded use.
    pub last_used: Option<SystemTime>,
    /// Age and expiry warnings (only for active versions).
    pub warnings: Vec<KeyWarning>,
}

/// What `resolve` returns: everything the HTTP capability needs to add the
/// auth header. `Debug` prints `[redacted]` for the header value.
#[derive(Clone)]
pub struct ResolvedKey {
    /// The version resolved (report it back to `record_usage`).
    pub version: u32,
    /// Lowercase header name: `authorization`, `x-api-key`, `api-key`, `x-goog-api-key`.
    pub header_name: &'static str,
    /// The full header value (`Bearer …` for the bearer scheme).
    pub header_value: SecretString,
    /// Origins the key may be sent to; check with [`ResolvedKey::allows`].
    pub bound_origins: Arc<[BoundOrigin]>,
    /// When the key stops being accepted.
    pub expires: Option<SystemTime>,
}

impl ResolvedKey {
    /// Whether the key may be sent to `scheme://host:port`: one of its
    /// origins has that scheme, host (exact, or `*.domain`) and port.
    pub fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        origins_allow(&self.bound_origins, scheme, host, port)
    }
}

impl fmt::Debug for ResolvedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResolvedKey")
            .field("version", &self.version)
            .field("header_name", &self.header_name)
            .field("header_value", &"[redacted]")
            .field("bound_origins", &self.bound_origins)
            .field("expires", &self.expires)
            .finish()
    }
}

/// The masked form of a secret: `…` plus its last 4 characters when it has
/// at least 16, else just `…`.
pub(crate) fn mask(secret: &str) -> String {
    let count = secret.chars().count();
    if count < 16 {
        return "…".to_owned();
    }
    let tail: String = secret.chars().skip(count - 4).collect();
    format!("…{tail}")
}

/// Check a secret before sealing it; the reason never includes the secret.
pub(crate) fn validate_secret(secret: &str) -> Result<()> {
    if secret.is_empty() {
        return Err(Error::invalid("secret", "it is empty"));
    }
    if secret.len() > 8192 {
        return Err(Error::invalid("secret", "it is longer than 8192 bytes"));
    }
    if secret.trim() != secret {
        return Err(Error::invalid(
            "secret",
            "it starts or ends with whitespace (a trailing newline from `echo` is a common cause)",
        ));
    }
    if secret.chars().any(|c| c.is_control() || !c.is_ascii()) {
        return Err(Error::invalid(
            "secret",
            "it contains control or non-ASCII characters, which cannot travel in an HTTP header",
        ));
    }
    Ok(())
}

pub(crate) fn to_millis(t: SystemTime) -> i64 {
    let ms = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
    i64::try_from(ms).unwrap_or(i64::MAX)
}

pub(crate) fn from_millis(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_round_trip_and_refuse_garbage() {
        let r = reference("openai", "default");
        assert_eq!(r, "key:openai/default");
        assert_eq!(
            parse_reference(&r).unwrap(),
            KeyRef::new("openai", "default").unwrap()
        );
        for bad in [
            "openai/default",
            "key:openai",
            "key:Open/x",
            "key:a/b/c",
            "key:/x",
            "key:a/",
        ] {
            assert!(parse_reference(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn masking_and_secret_checks() {
        assert_eq!(mask("sk-1234567890abcdef"), "…cdef");
        assert_eq!(mask("short"), "…");
        assert!(validate_secret("ok-secret").is_ok());
        assert!(validate_secret("").is_err());
        assert!(validate_secret("abc\n").is_err());
        assert!(validate_secret("a\r\nb").is_err());
    }

    #[test]
    fn policy_warnings() {
        let day = Duration::from_secs(86_400);
        let now = UNIX_EPOCH + day * 1000;
        let mut policy = KeyPolicy::default();
        policy.max_age_days.insert("openai".into(), 90);
        assert!(
            policy
                .warnings("openai", now - day * 10, None, now)
                .is_empty()
        );
        assert_eq!(
            policy.warnings("openai", now - day * 85, None, now),
            vec![KeyWarning::MaxAgeNear {
                age_days: 85,
                max_age_days: 90
            }]
        );
        assert_eq!(
            policy.warnings("openai", now - day * 91, None, now),
            vec![KeyWarning::MaxAgeExceeded {
                age_days: 91,
                max_age_days: 90
            }]
        );
        assert!(
            policy
                .warnings("anthropic", now - day * 900, None, now)
                .is_empty()
        );
        assert_eq!(
            policy.warnings("anthropic", now, Some(now + day * 3), now),
            vec![KeyWarning::ExpiresSoon { days_left: 3 }]
        );
        assert_eq!(
            policy.warnings("anthropic", now, Some(now - day), now),
            vec![KeyWarning::Expired]
        );
    }
}
