//! The adapter's settings, read from `wasi:config` (the values the operator
//! sets under the plugin's `[plugin.grants]` in `platform.toml`) and checked
//! before any request is sent.

use convergio_sdk::provider::ModelError;

/// Where the API lives unless `base-url` says otherwise.
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
/// The key used unless `key` says otherwise.
pub const DEFAULT_KEY: &str = "anthropic/default";
/// The `anthropic-version` header unless `anthropic-version` says otherwise.
pub const DEFAULT_API_VERSION: &str = "2023-06-01";
/// `max_tokens` when neither the request nor `default-max-tokens` sets it
/// (capped by the model's maximum output).
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// The configuration keys, as the operator writes them.
pub const KEYS: [&str; 4] = ["base-url", "key", "anthropic-version", "default-max-tokens"];

/// The checked settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `scheme://host[:port][/prefix]`, without a trailing slash.
    pub base_url: String,
    /// The key's provider in the vault (`anthropic` unless named).
    pub key_provider: String,
    /// The key's name (`default` unless named).
    pub key_name: String,
    /// Value of the `anthropic-version` header.
    pub api_version: String,
    /// `max_tokens` for requests that set none.
    pub default_max_tokens: u32,
}

impl Settings {
    /// The Messages endpoint.
    pub fn messages_url(&self) -> String {
        format!("{}/v1/messages", self.base_url)
    }

    /// Read and check every setting; `get` returns the value of a key, `None`
    /// when the operator did not set it, or why it could not be read.
    pub fn load(get: impl Fn(&str) -> Result<Option<String>, String>) -> Result<Self, ModelError> {
        let read = |key: &str| {
            get(key).map_err(|e| {
                ModelError::BadRequest(format!(
                    "configuration `{key}` of the anthropic provider could not be read: {e}"
                ))
            })
        };
        let base_url = match read("base-url")? {
            Some(url) => base_url(&url)?,
            None => DEFAULT_BASE_URL.to_owned(),
        };
        let key = read("key")?.unwrap_or_else(|| DEFAULT_KEY.to_owned());
        let (key_provider, key_name) = key_name(&key)?;
        let api_version = match read("anthropic-version")? {
            Some(v) => api_version(&v)?,
            None => DEFAULT_API_VERSION.to_owned(),
        };
        let default_max_tokens = match read("default-max-tokens")? {
            Some(v) => max_tokens(&v)?,
            None => DEFAULT_MAX_TOKENS,
        };
        Ok(Self {
            base_url,
            key_provider,
            key_name,
            api_version,
            default_max_tokens,
        })
    }
}

/// A config error naming the key, what is wrong and the `platform.toml` line
/// that fixes it.
fn invalid(key: &str, value: &str, problem: &str, example: &str) -> ModelError {
    ModelError::BadRequest(format!(
        "configuration `{key}` = `{value}` of the anthropic provider {problem}; set it under the \
         provider's [plugin.grants] in platform.toml, e.g. config = {{ {key} = {example} }}"
    ))
}

fn base_url(value: &str) -> Result<String, ModelError> {
    let bad = |problem| invalid("base-url", value, problem, "\"https://api.anthropic.com\"");
    let trimmed = value.trim().trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"))
        .ok_or_else(|| bad("is not an http:// or https:// URL"))?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() {
        return Err(bad("has no host"));
    }
    if trimmed.contains(['?', '#']) || trimmed.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(bad(
            "must be a plain base URL (no query, fragment or spaces)",
        ));
    }
    Ok(trimmed.to_owned())
}

/// `PROVIDER/NAME`, or just `NAME` for a key of provider `anthropic`.
fn key_name(value: &str) -> Result<(String, String), ModelError> {
    let (provider, name) = value.split_once('/').unwrap_or(("anthropic", value));
    let valid = |s: &str| {
        (1..=64).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && s.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
            })
    };
    if valid(provider) && valid(name) {
        Ok((provider.to_owned(), name.to_owned()))
    } else {
        Err(invalid(
            "key",
            value,
            "is not a key name: it must be PROVIDER/NAME or NAME, of a-z 0-9 . _ -",
            "\"anthropic/default\"",
        ))
    }
}

fn api_version(value: &str) -> Result<String, ModelError> {
    let v = value.trim();
    if v.is_empty() || !v.chars().all(|c| c.is_ascii_graphic()) {
        return Err(invalid(
            "anthropic-version",
            value,
            "is not a header value",
            "\"2023-06-01\"",
        ));
    }
    Ok(v.to_owned())
}

fn max_tokens(value: &str) -> Result<u32, ModelError> {
    match value.trim().parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(invalid(
            "default-max-tokens",
            value,
            "is not a positive whole number",
            "\"4096\"",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<Settings, ModelError> {
        Settings::load(|key| {
            assert!(KEYS.contains(&key), "undocumented key {key}");
            Ok(pairs
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| (*v).to_owned()))
        })
    }

    fn message(err: ModelError) -> String {
        match err {
            ModelError::BadRequest(m) => m,
            other => panic!("expected bad-request, got {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let s = load(&[]).unwrap();
        assert_eq!(s.messages_url(), "https://api.anthropic.com/v1/messages");
        assert_eq!(
            (s.key_provider.as_str(), s.key_name.as_str()),
            ("anthropic", "default")
        );
        assert_eq!(s.api_version, "2023-06-01");
        assert_eq!(s.default_max_tokens, 4096);
    }

    #[test]
    fn overrides() {
        let s = load(&[
            ("base-url", "http://127.0.0.1:8080/proxy/"),
            ("key", "team-b"),
            ("anthropic-version", "2024-01-01"),
            ("default-max-tokens", "1024"),
        ])
        .unwrap();
        assert_eq!(s.messages_url(), "http://127.0.0.1:8080/proxy/v1/messages");
        assert_eq!(
            (s.key_provider.as_str(), s.key_name.as_str()),
            ("anthropic", "team-b")
        );
        assert_eq!(s.api_version, "2024-01-01");
        assert_eq!(s.default_max_tokens, 1024);
        let s = load(&[("key", "anthropic-eu/prod")]).unwrap();
        assert_eq!(
            (s.key_provider.as_str(), s.key_name.as_str()),
            ("anthropic-eu", "prod")
        );
    }

    #[test]
    fn invalid_values_name_the_key_and_the_fix() {
        for (key, value) in [
            ("base-url", "ftp://example.com"),
            ("base-url", "https://"),
            ("base-url", "https://x/?a=1"),
            ("key", "Anthropic/Default"),
            ("key", "a/b/c"),
            ("anthropic-version", ""),
            ("default-max-tokens", "0"),
            ("default-max-tokens", "lots"),
        ] {
            let m = message(load(&[(key, value)]).unwrap_err());
            assert!(m.contains(&format!("`{key}`")), "{m}");
            assert!(
                m.contains("platform.toml") && m.contains("config = {"),
                "{m}"
            );
        }
    }

    #[test]
    fn unreadable_config_is_a_bad_request() {
        let m = message(Settings::load(|_| Err("store offline".into())).unwrap_err());
        assert!(
            m.contains("`base-url`") && m.contains("store offline"),
            "{m}"
        );
    }
}
