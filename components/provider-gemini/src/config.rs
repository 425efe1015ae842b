//! The adapter's settings, read from `wasi:config` (the values the operator
//! sets under the plugin's `[plugin.grants]` in `platform.toml`) and checked
//! before any request is sent.

use convergio_sdk::provider::{
    AdapterSettings, ConfigSource, KeyName, ModelError, ProviderConfig, Upstream,
};

/// Provider id, the prefix of `gemini/model` names.
pub const PROVIDER_ID: &str = "gemini";
/// The Gemini API (Google AI Studio keys).
pub const DEFAULT_BASE_URL: &str = "https://generativelanguage.googleapis.com";
pub const DEFAULT_API_VERSION: &str = "v1beta";
/// `PROVIDER/NAME` of the key used when the operator names none.
pub const DEFAULT_KEY: &str = "gemini/default";
/// The configuration keys, as the operator writes them.
pub const KEYS: [&str; 3] = ["base-url", "api-version", "key"];

/// The plugin's configuration (`wasi:config`), validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Scheme, host, optional port and path prefix; no trailing `/`.
    pub base_url: String,
    pub api_version: String,
    /// The key (`gemini/default` unless named).
    pub key: KeyName,
}

impl Settings {
    /// `{base}/{version}/models/{model}:{method}`; `method` may carry a query.
    pub fn url(&self, model: &str, method: &str) -> Result<String, ModelError> {
        let model = model_id(model)?;
        Ok(format!(
            "{}/{}/models/{model}:{method}",
            self.base_url, self.api_version
        ))
    }
}

impl AdapterSettings for Settings {
    /// Reads `base-url`, `api-version` and `key` through `get` (the value,
    /// `None` when unset, or why it cannot be read) and checks them.
    fn load(get: impl ConfigSource) -> Result<Self, ModelError> {
        let config = ProviderConfig::new(PROVIDER_ID, get);
        let base_url = config.base_url(DEFAULT_BASE_URL)?;
        let api_version = match config.optional("api-version")? {
            Some(v) => {
                let version = v.trim();
                if version.is_empty()
                    || !version
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                {
                    return Err(config.invalid(
                        "api-version",
                        &v,
                        "must be an API version such as v1beta or v1alpha",
                        DEFAULT_API_VERSION,
                    ));
                }
                version.to_owned()
            }
            None => DEFAULT_API_VERSION.to_owned(),
        };
        let key = config.key(DEFAULT_KEY)?;
        Ok(Self {
            base_url,
            api_version,
            key,
        })
    }

    /// The API, for requests and error messages.
    fn upstream(&self) -> Upstream {
        Upstream::new("Gemini API", &self.base_url, self.key.clone())
    }
}

/// The model id as it goes in the URL path: `models/` prefix removed,
/// letters, digits, `.`, `-` and `_` only.
pub fn model_id(model: &str) -> Result<&str, ModelError> {
    let id = model.strip_prefix("models/").unwrap_or(model);
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return Err(ModelError::NoModel(format!(
            "`{model}` is not a Gemini model id (e.g. gemini-2.5-flash)"
        )));
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use convergio_sdk::client::HttpError;
    use convergio_sdk::http::types::ErrorCode;
    use convergio_sdk::provider::testing::documented_config;

    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<Settings, ModelError> {
        Settings::load(documented_config(&KEYS, pairs))
    }

    #[test]
    fn settings_defaults_and_overrides() {
        let s = load(&[]).unwrap();
        assert_eq!(s.base_url, DEFAULT_BASE_URL);
        assert_eq!(
            (s.key.provider.as_str(), s.key.name.as_str()),
            ("gemini", "default")
        );
        assert_eq!(
            s.url("gemini-2.5-flash", "generateContent").unwrap(),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
        );
        let s = load(&[
            ("base-url", "http://127.0.0.1:8089/"),
            ("api-version", "v1alpha"),
            ("key", "team-b"),
        ])
        .unwrap();
        assert_eq!(
            s.url("models/gemini-4-argon", "streamGenerateContent?alt=sse")
                .unwrap(),
            "http://127.0.0.1:8089/v1alpha/models/gemini-4-argon:streamGenerateContent?alt=sse"
        );
        assert_eq!(
            (s.key.provider.as_str(), s.key.name.as_str()),
            ("gemini", "team-b")
        );
        let s = load(&[("key", "google/prod")]).unwrap();
        assert_eq!(
            (s.key.provider.as_str(), s.key.name.as_str()),
            ("google", "prod")
        );
    }

    #[test]
    fn bad_settings_name_the_key_and_the_fix() {
        for (named, value) in [
            ("base-url", "ftp://x"),
            ("base-url", "https://"),
            ("base-url", "https://h/?key=1"),
            ("api-version", "V1 beta"),
            ("key", "gemini/"),
            ("key", "a/b c"),
        ] {
            let Err(ModelError::BadRequest(message)) = load(&[(named, value)]) else {
                panic!("{named} = {value:?} accepted");
            };
            assert!(message.contains(&format!("config `{named}`")), "{message}");
            assert!(message.contains("platform.toml"), "{message}");
        }
        let s = load(&[]).unwrap();
        assert!(matches!(
            s.url("../admin", "x"),
            Err(ModelError::NoModel(_))
        ));
        assert!(matches!(s.url("", "x"), Err(ModelError::NoModel(_))));
    }

    #[test]
    fn transport_errors() {
        let api = load(&[]).unwrap().upstream();
        let http_error = |e: &HttpError| api.transport_error(e);
        let send_error = |e: &HttpError| api.send_error(e);
        assert!(matches!(
            http_error(&HttpError::Code(ErrorCode::HttpRequestDenied)),
            ModelError::AccessDenied(m) if m.contains("platform.toml")
                && m.contains("https://generativelanguage.googleapis.com")
                && m.contains("keys = [\"gemini\"]")
        ));
        assert!(matches!(
            http_error(&HttpError::Code(ErrorCode::DestinationIpProhibited)),
            ModelError::AccessDenied(_)
        ));
        assert!(matches!(
            http_error(&HttpError::Code(ErrorCode::ConnectionTimeout)),
            ModelError::Timeout(_)
        ));
        assert!(matches!(
            http_error(&HttpError::Stream(
                "HttpResponseTimeout: timeout".to_owned()
            )),
            ModelError::Timeout(_)
        ));
        assert!(matches!(
            http_error(&HttpError::Code(ErrorCode::ConnectionRefused)),
            ModelError::Upstream(_)
        ));
        assert!(matches!(
            http_error(&HttpError::Invalid("no scheme".to_owned())),
            ModelError::BadRequest(_)
        ));
        assert!(matches!(
            send_error(&HttpError::Stream("the stream closed".to_owned())),
            ModelError::Upstream(m) if m.contains("denied") && m.contains("platform.toml")
        ));
        assert!(matches!(
            send_error(&HttpError::Code(ErrorCode::HttpRequestDenied)),
            ModelError::AccessDenied(_)
        ));
    }
}
