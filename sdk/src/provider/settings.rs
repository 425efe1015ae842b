//! An adapter's settings: the `wasi:config` values the operator sets under
//! the plugin's `[plugin.grants]` in `platform.toml`, read and checked before
//! any request is sent.
//!
//! [`ProviderConfig`] reads the values through any getter (the plugin's
//! `wasi:config` store, or a table in unit tests) and words every problem
//! the same way: a `bad-request` error naming the provider, the key, the
//! value and the `platform.toml` line that fixes it.
//!
//! ```
//! use convergio_sdk::provider::ProviderConfig;
//!
//! let config = ProviderConfig::new("acme", |key: &str| {
//!     Ok((key == "key").then(|| "team-b".to_owned()))
//! });
//! assert_eq!(config.base_url("https://api.acme.test/v1")?, "https://api.acme.test/v1");
//! assert_eq!(config.key("acme/default")?.to_string(), "acme/team-b");
//! # Ok::<(), convergio_sdk::provider::ModelError>(())
//! ```

use std::fmt;

use crate::keys::{self, KeyError, KeyRef};
use crate::provider::{ModelError, Result};

/// A key of the vault as the operator names it in an adapter's `key`
/// setting: `PROVIDER/NAME`, or `NAME` of the adapter's default provider.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyName {
    /// The key's provider in the vault, e.g. `openai`.
    pub provider: String,
    /// The key's name, e.g. `default`.
    pub name: String,
}

impl KeyName {
    /// `PROVIDER/NAME`, or `NAME` for a key of `default_provider`; `None`
    /// unless both parts are names the vault accepts (1 to 64 characters of
    /// `a-z 0-9 . _ -`, starting with a letter or digit). Spaces around the
    /// value are ignored.
    pub fn parse(value: &str, default_provider: &str) -> Option<Self> {
        let value = value.trim();
        let (provider, name) = value.split_once('/').unwrap_or((default_provider, value));
        (is_vault_name(provider) && is_vault_name(name)).then(|| Self {
            provider: provider.to_owned(),
            name: name.to_owned(),
        })
    }

    /// The key as the `keys` interface names it.
    pub fn key_ref(&self) -> KeyRef {
        KeyRef {
            provider: self.provider.clone(),
            name: self.name.clone(),
        }
    }

    /// Asks the host for the key's reference (`key:PROVIDER/NAME`), which
    /// the host swaps for the auth header on the way out.
    /// [`Upstream::key_reference`](crate::provider::Upstream::key_reference)
    /// maps the failure to a [`ModelError`].
    pub fn reference(&self) -> core::result::Result<String, KeyError> {
        keys::reference(&self.key_ref())
    }
}

/// `PROVIDER/NAME`.
impl fmt::Display for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.provider, self.name)
    }
}

/// A provider or key name as the vault accepts it.
fn is_vault_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
}

/// `value` as a base URL (`http(s)://host[:port][/prefix]`), without the
/// spaces around it and without trailing slashes; or what is wrong with it.
pub fn check_base_url(value: &str) -> core::result::Result<String, &'static str> {
    let trimmed = value.trim().trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"))
        .ok_or("is not an http:// or https:// URL")?;
    if rest.split('/').next().unwrap_or_default().is_empty() {
        return Err("has no host");
    }
    if trimmed.contains(['?', '#', '@'])
        || trimmed.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err("must be a plain base URL (no query, fragment, user or spaces)");
    }
    Ok(trimmed.to_owned())
}

/// Where an adapter's settings come from: the value of a key, `None` when
/// the operator did not set it, or why it could not be read. [`wasi_config`]
/// in the component, a table in unit tests (any such closure is one).
pub trait ConfigSource: Fn(&str) -> core::result::Result<Option<String>, String> {}

impl<F> ConfigSource for F where F: Fn(&str) -> core::result::Result<Option<String>, String> {}

/// A configuration getter for [`ProviderConfig::new`] that reads the
/// plugin's `wasi:config` store (the plugin must request the `config`
/// capability): the value, `None` when unset, or why the store failed.
pub fn wasi_config(key: &str) -> core::result::Result<Option<String>, String> {
    crate::config::get(key).map_err(|e| match e {
        crate::config::Error::Upstream(m) | crate::config::Error::Io(m) => m,
    })
}

/// Reads an adapter's settings through `get` and words their errors.
///
/// `get` returns the value of a key, `None` when the operator did not set
/// it, or why it could not be read: [`wasi_config`] in the component, a
/// table in unit tests.
pub struct ProviderConfig<F> {
    provider: String,
    get: F,
}

impl<F> fmt::Debug for ProviderConfig<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

impl<F> ProviderConfig<F>
where
    F: Fn(&str) -> core::result::Result<Option<String>, String>,
{
    /// Settings of the adapter that messages call `provider` (e.g.
    /// `anthropic`: "config `key` … of the anthropic provider").
    pub fn new(provider: impl Into<String>, get: F) -> Self {
        Self {
            provider: provider.into(),
            get,
        }
    }

    /// The value of `key`, `None` when it is not set.
    pub fn optional(&self, key: &str) -> Result<Option<String>> {
        (self.get)(key).map_err(|e| {
            ModelError::BadRequest(format!(
                "config `{key}` of the {} provider could not be read: {e}",
                self.provider
            ))
        })
    }

    /// The value of `key`; unset, an error saying to set it, e.g. to `example`.
    pub fn required(&self, key: &str, example: &str) -> Result<String> {
        self.optional(key)?
            .ok_or_else(|| self.error(key, None, "is not set", &format!("{key} = \"{example}\"")))
    }

    /// The `base-url` setting, checked with [`check_base_url`]; `default`
    /// when unset (it is also the example of the error message).
    pub fn base_url(&self, default: &str) -> Result<String> {
        match self.optional("base-url")? {
            Some(value) => check_base_url(&value)
                .map_err(|problem| self.invalid("base-url", &value, problem, default)),
            None => Ok(default.to_owned()),
        }
    }

    /// The `key` setting as a [`KeyName`]; `default` (`PROVIDER/NAME`) when
    /// unset, whose provider a bare `NAME` belongs to.
    pub fn key(&self, default: &str) -> Result<KeyName> {
        let value = self.optional("key")?;
        let value = value.as_deref().unwrap_or(default);
        let default_provider = default.split('/').next().unwrap_or(default);
        KeyName::parse(value, default_provider).ok_or_else(|| {
            self.invalid(
                "key",
                value,
                "is not a key name: it must be PROVIDER/NAME or NAME, of a-z 0-9 . _ -",
                default,
            )
        })
    }

    /// `key` = `value` is wrong: `problem` says how (e.g. "is not a positive
    /// whole number"), and the message shows `key = "example"` as the fix.
    pub fn invalid(&self, key: &str, value: &str, problem: &str, example: &str) -> ModelError {
        self.error(key, Some(value), problem, &format!("{key} = \"{example}\""))
    }

    /// The general form of [`invalid`](Self::invalid): `fix` is what goes
    /// inside `config = { … }` (it may set other keys, e.g.
    /// `flavor = "azure"`), `value` is `None` for a key that is not set.
    pub fn error(&self, key: &str, value: Option<&str>, problem: &str, fix: &str) -> ModelError {
        let setting = match value {
            Some(value) => format!("config `{key}` = `{value}`"),
            None => format!("config `{key}`"),
        };
        ModelError::BadRequest(format!(
            "{setting} of the {} provider {problem}; set it under the provider's [plugin.grants] \
             in platform.toml, e.g. config = {{ {fix} }}",
            self.provider
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(
        pairs: &'static [(&'static str, &'static str)],
    ) -> ProviderConfig<impl Fn(&str) -> core::result::Result<Option<String>, String>> {
        ProviderConfig::new("acme", move |key: &str| {
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
    fn key_names_follow_the_vault_rules() {
        let parse = |v: &str| KeyName::parse(v, "acme").map(|k| k.to_string());
        assert_eq!(parse("team-b").as_deref(), Some("acme/team-b"));
        assert_eq!(parse(" acme-eu/prod ").as_deref(), Some("acme-eu/prod"));
        assert_eq!(parse("0.x_y-z/1").as_deref(), Some("0.x_y-z/1"));
        for bad in [
            "",
            "/",
            "acme/",
            "/x",
            "a/b/c",
            "Acme/Default",
            "-x",
            "a b",
            "a/b c",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        assert_eq!(parse(&"k".repeat(64)).map(|k| k.len()), Some(69));
        assert_eq!(parse(&"k".repeat(65)), None);
        let key = KeyName::parse("x", "acme").unwrap().key_ref();
        assert_eq!((key.provider.as_str(), key.name.as_str()), ("acme", "x"));
    }

    #[test]
    fn base_urls_are_plain_http_urls() {
        assert_eq!(
            check_base_url(" https://api.acme.test/v1// ").as_deref(),
            Ok("https://api.acme.test/v1")
        );
        assert_eq!(
            check_base_url("http://127.0.0.1:8080").as_deref(),
            Ok("http://127.0.0.1:8080")
        );
        for bad in [
            "ftp://x",
            "api.acme.test",
            "https://",
            "https:///v1",
            "https://x/?a=1",
            "https://x/#top",
            "https://user@x",
            "https://x y",
        ] {
            assert!(check_base_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn values_defaults_and_keys() {
        let c = config(&[("base-url", "http://127.0.0.1:9/"), ("key", "prod")]);
        assert_eq!(c.base_url("https://d").unwrap(), "http://127.0.0.1:9");
        assert_eq!(c.key("acme/default").unwrap().to_string(), "acme/prod");
        assert_eq!(c.optional("other").unwrap(), None);
        let c = config(&[]);
        assert_eq!(c.base_url("https://d").unwrap(), "https://d");
        assert_eq!(c.key("acme/default").unwrap().to_string(), "acme/default");
        let m = message(c.required("endpoint", "https://x").unwrap_err());
        assert!(
            m.contains("config `endpoint` of the acme provider is not set")
                && m.contains("platform.toml")
                && m.contains("config = { endpoint = \"https://x\" }"),
            "{m}"
        );
    }

    #[test]
    fn errors_name_the_key_the_value_and_the_fix() {
        for (pairs, key) in [
            (&[("base-url", "ftp://x")][..], "base-url"),
            (&[("key", "Acme/Default")][..], "key"),
        ] {
            let c = config(pairs);
            let err = c
                .base_url("https://d")
                .and_then(|_| c.key("acme/default").map(|_| ()));
            let m = message(err.unwrap_err());
            assert!(
                m.contains(&format!("config `{key}` = `{}`", pairs[0].1)),
                "{m}"
            );
            assert!(
                m.contains("of the acme provider")
                    && m.contains("[plugin.grants] in platform.toml")
                    && m.contains(&format!("config = {{ {key} = \"")),
                "{m}"
            );
        }
        let m = message(config(&[]).error(
            "api-version",
            Some("(set)"),
            "applies only to Azure",
            "flavor = \"azure\"",
        ));
        assert!(m.contains("config = { flavor = \"azure\" }"), "{m}");
    }

    #[test]
    fn an_unreadable_store_is_a_bad_request_naming_the_key() {
        let c = ProviderConfig::new("acme", |_: &str| Err("store offline".to_owned()));
        let m = message(c.base_url("https://d").unwrap_err());
        assert!(
            m.contains("`base-url`") && m.contains("store offline"),
            "{m}"
        );
    }
}
