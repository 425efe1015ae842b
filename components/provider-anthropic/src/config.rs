//! The adapter's settings, read from `wasi:config` (the values the operator
//! sets under the plugin's `[plugin.grants]` in `platform.toml`) and checked
//! before any request is sent.

use convergio_sdk::provider::{
    AdapterSettings, ConfigSource, KeyName, ModelError, ProviderConfig, Upstream,
};

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
    /// The key (`anthropic/default` unless named).
    pub key: KeyName,
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
}

impl AdapterSettings for Settings {
    /// Read and check every setting; `get` returns the value of a key, `None`
    /// when the operator did not set it, or why it could not be read.
    fn load(get: impl ConfigSource) -> Result<Self, ModelError> {
        let config = ProviderConfig::new("anthropic", get);
        let base_url = config.base_url(DEFAULT_BASE_URL)?;
        let key = config.key(DEFAULT_KEY)?;
        let api_version = match config.optional("anthropic-version")? {
            Some(v) if is_header_value(&v) => v.trim().to_owned(),
            Some(v) => {
                return Err(config.invalid(
                    "anthropic-version",
                    &v,
                    "is not a header value",
                    DEFAULT_API_VERSION,
                ));
            }
            None => DEFAULT_API_VERSION.to_owned(),
        };
        let default_max_tokens = match config.optional("default-max-tokens")? {
            Some(v) => match v.trim().parse::<u32>() {
                Ok(n) if n > 0 => n,
                _ => {
                    return Err(config.invalid(
                        "default-max-tokens",
                        &v,
                        "is not a positive whole number",
                        "4096",
                    ));
                }
            },
            None => DEFAULT_MAX_TOKENS,
        };
        Ok(Self {
            base_url,
            key,
            api_version,
            default_max_tokens,
        })
    }

    /// The API, for requests and error messages.
    fn upstream(&self) -> Upstream {
        Upstream::new("Anthropic API", &self.base_url, self.key.clone())
    }
}

fn is_header_value(value: &str) -> bool {
    let v = value.trim();
    !v.is_empty() && v.chars().all(|c| c.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use convergio_sdk::client::HttpError;
    use convergio_sdk::http::types::ErrorCode;
    use convergio_sdk::keys::KeyError;
    use convergio_sdk::provider::testing::{bad_request, documented_config};

    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<Settings, ModelError> {
        Settings::load(documented_config(&KEYS, pairs))
    }

    #[test]
    fn defaults() {
        let s = load(&[]).unwrap();
        assert_eq!(s.messages_url(), "https://api.anthropic.com/v1/messages");
        assert_eq!(
            (s.key.provider.as_str(), s.key.name.as_str()),
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
            (s.key.provider.as_str(), s.key.name.as_str()),
            ("anthropic", "team-b")
        );
        assert_eq!(s.api_version, "2024-01-01");
        assert_eq!(s.default_max_tokens, 1024);
        let s = load(&[("key", "anthropic-eu/prod")]).unwrap();
        assert_eq!(
            (s.key.provider.as_str(), s.key.name.as_str()),
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
            let m = bad_request(load(&[(key, value)]).unwrap_err());
            assert!(m.contains(&format!("`{key}`")), "{m}");
            assert!(
                m.contains("platform.toml") && m.contains("config = {"),
                "{m}"
            );
        }
    }

    #[test]
    fn the_upstream_names_the_grants_it_needs() {
        let api = load(&[
            ("base-url", "http://127.0.0.1:8080/proxy"),
            ("key", "team-b"),
        ])
        .unwrap()
        .upstream();
        assert_eq!(
            (api.name.as_str(), api.origin.as_str()),
            ("Anthropic API", "http://127.0.0.1:8080")
        );
        assert_eq!(api.key.to_string(), "anthropic/team-b");
    }

    #[test]
    fn transport_errors() {
        let api = load(&[]).unwrap().upstream();
        let text = |err: &ModelError| format!("{err:?}");
        let denied = api.transport_error(&HttpError::Code(ErrorCode::HttpRequestDenied));
        assert!(matches!(denied, ModelError::AccessDenied(_)));
        assert!(
            text(&denied).contains("platform.toml")
                && text(&denied).contains("https://api.anthropic.com"),
            "{denied:?}"
        );
        let internal = api.transport_error(&HttpError::Code(ErrorCode::DestinationIpProhibited));
        assert!(matches!(internal, ModelError::AccessDenied(_)));
        let slow = api.transport_error(&HttpError::Code(ErrorCode::HttpResponseTimeout));
        assert!(matches!(slow, ModelError::Timeout(_)));
        let stalled =
            api.transport_error(&HttpError::Stream("ConnectionReadTimeout timeout".into()));
        assert!(matches!(stalled, ModelError::Timeout(_)));
        let refused = api.transport_error(&HttpError::Code(ErrorCode::ConnectionRefused));
        assert!(matches!(refused, ModelError::Upstream(_)));
        let invalid = api.transport_error(&HttpError::Invalid("unsupported scheme `ftp`".into()));
        assert!(matches!(invalid, ModelError::BadRequest(_)));
        let closed = api.send_error(&HttpError::Stream("the stream closed".into()));
        assert!(matches!(closed, ModelError::Upstream(_)));
        assert!(text(&closed).contains("host log"), "{closed:?}");
        let denied = api.send_error(&HttpError::Code(ErrorCode::HttpRequestDenied));
        assert!(matches!(denied, ModelError::AccessDenied(_)));
    }

    #[test]
    fn key_errors_are_auth_errors_with_the_host_message() {
        let api = load(&[]).unwrap().upstream();
        let err = api.key_error(KeyError::NotGranted(
            "plugin `provider-anthropic` is not granted key anthropic/default".into(),
        ));
        let ModelError::Auth(text) = &err else {
            panic!("{err:?}");
        };
        assert!(text.contains("not granted") && text.contains("anthropic/default"));
        assert!(matches!(
            api.key_error(KeyError::NotFound("x".into())),
            ModelError::Auth(_)
        ));
    }

    #[test]
    fn unreadable_config_is_a_bad_request() {
        let m = bad_request(Settings::load(|_| Err("store offline".into())).unwrap_err());
        assert!(
            m.contains("`base-url`") && m.contains("store offline"),
            "{m}"
        );
    }
}
